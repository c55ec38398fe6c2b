/* th_sheet.c -- rows of cells to reports: every rule after tokenising
 * (th_sheet.h, schema/APPENDIX-FILES.md). */
#include "th_sheet.h"
#include "th_xnum.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unicase.h>
#include <uninorm.h>

/* --- metadata keys ---------------------------------------------------------- */

enum { M_APPENDIX, M_VERSION, M_UNIT, M_PERIOD, M_ASOF, M_UNITS, NMETA };

/* Accepted spellings (compared case-insensitively after NFC); the first is
 * the name used in messages. */
static const char *const meta_names[NMETA][8] = {
	{"appendix", "phu_luc", "phụ lục", "phu luc", NULL},
	{"version", "phien_ban", "phiên bản", "phien ban", NULL},
	{"unit", "don_vi", "đơn vị", "don vi", "mã đơn vị", "ma don vi", "ma_don_vi", NULL},
	{"period", "ky", "kỳ", "kỳ báo cáo", "ky bao cao", "ky_bao_cao", NULL},
	{"as_of", "ngay_bao_cao", "ngày báo cáo", "ngay bao cao", NULL},
	{"units", NULL},   /* workbook metadata only */
};

/* Header cells that are not columns of the definition. */
enum { COL_NONE = -1, COL_STT = -2, COL_UNIT = -3, COL_NAME = -4 };
static const char *const special_names[3][8] = {
	/* COL_STT */  {"stt", "tt", "số tt", "so tt", "số thứ tự", "so thu tu", "so_thu_tu", NULL},
	/* COL_UNIT */ {"unit", "mã đơn vị", "ma don vi", "ma_don_vi", "don_vi", "đơn vị", NULL},
	/* COL_NAME */ {"unit_name", "tên đơn vị", "ten don vi", "ten_don_vi", NULL},
};
#define UNIT_TITLE "Mã đơn vị"

typedef struct {
	char *v;
	int src;             /* 0 unset, 1 a cell or line of the table, 2 the workbook */
	long line;           /* CSV line / sheet row of the cell */
	char where[96];      /* XLSX: "PL1!B3" or the workbook's place */
} meta_t;

typedef struct {
	th_report *r;
	long *where;         /* report row -> line / sheet row */
	uint8_t *bad;        /* row * n_cols + col: the cell had a problem already */
	size_t cap;
} rep_t;

typedef struct {
	char *text;
	long idx;
} enum_memo;

struct th_sheet {
	char *file, *sheet;
	const th_defset *defs;
	const th_read_opts *opts;
	th_diag *diag;       /* the problems, handed over by finish */
	int date1904;
	meta_t meta[NMETA];
	char **units;        /* from meta "units" */
	size_t n_units;
	const th_def *def;   /* set at the header */
	int state;           /* 0 before the header, 1 just after it, 2 among the rows */
	int failed;          /* stop reading rows */
	long *colmap;        /* sheet column -> definition column or COL_* */
	size_t ncolmap;
	long *colpos;        /* definition column -> sheet column, -1 */
	long unit_col;
	long first_col, last_col;
	long first_row;      /* first row before the header that was neither metadata nor header */
	char first_text[160];
	rep_t *reps;
	size_t n_reps, cap_reps;
	enum_memo **memo;    /* per definition column: a few enum texts already resolved */
	size_t *n_memo;
	char *buf;           /* trimmed copies of a row's cells */
	size_t buf_cap;
	th_sheet_cell *cells;
	size_t cells_cap;
};

/* --- small helpers ------------------------------------------------------------ */

static int fold_eq(const char *a, const char *b)
{
	int r = 1;
	if (u8_casecmp((const uint8_t *)a, strlen(a), (const uint8_t *)b, strlen(b), NULL, UNINORM_NFC,
	               &r) != 0)
		return strcmp(a, b) == 0;
	return r == 0;
}

static int name_in(const char *const *names, const char *s)
{
	for (int i = 0; names[i]; i++)
		if (fold_eq(names[i], s))
			return 1;
	return 0;
}

/* Index of a metadata key ("Phụ lục", "phu_luc", "appendix:"), or -1. */
static int meta_index(const char *k)
{
	char key[96];
	size_t n = strlen(k);
	while (n && (k[n - 1] == ':' || k[n - 1] == ' ' || k[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof key)
		return -1;
	memcpy(key, k, n);
	key[n] = 0;
	for (int i = 0; i < M_UNITS; i++)
		if (name_in(meta_names[i], key))
			return i;
	return -1;
}

static long special_index(const char *h)
{
	for (int i = 0; i < 3; i++)
		if (name_in(special_names[i], h))
			return COL_STT - i;
	return COL_NONE;
}

/* A unit code: 1..64 bytes of printable ASCII without blanks (UNITS.md). */
static int code_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > TH_CODE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* "001 - Quận Ba Đình" -> "001" (in place): the code before a dash. */
static char *unit_code_of(char *v)
{
	static const char *const dashes[] = {" - ", " \xe2\x80\x93 ", " \xe2\x80\x94 "};
	for (size_t i = 0; i < 3; i++) {
		char *d = strstr(v, dashes[i]);
		if (d) {
			*d = 0;
			break;
		}
	}
	size_t n = strlen(v);
	while (n && v[n - 1] == ' ')
		v[--n] = 0;
	return v;
}

/* Column letters of a 0-based column: 0 -> A, 26 -> AA. */
static void col_letters(long c, char *out)
{
	char tmp[8];
	int n = 0;
	c++;
	while (c > 0 && n < 7) {
		long m = (c - 1) % 26;
		tmp[n++] = (char)('A' + m);
		c = (c - 1) / 26;
	}
	for (int i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = 0;
}

/* The sheet's name as a formula would write it: quoted when it is not plain. */
static void sheet_ref(const char *sheet, char *out, size_t cap)
{
	int plain = *sheet != 0 && !isdigit((unsigned char)*sheet);
	for (const char *p = sheet; *p && plain; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && (unsigned char)*p < 0x80)
			plain = 0;
	if (plain) {
		snprintf(out, cap, "%s", sheet);
		return;
	}
	size_t o = 0;
	if (o + 1 < cap)
		out[o++] = '\'';
	for (const char *p = sheet; *p && o + 3 < cap; p++) {
		if (*p == '\'')
			out[o++] = '\'';
		out[o++] = *p;
	}
	out[o++] = '\'';
	out[o] = 0;
}

void th_sheet_cell_name(const char *sheet, long row, long col, char *buf, size_t cap)
{
	char sh[160], a[8];
	sheet_ref(sheet, sh, sizeof sh);
	if (row > 0 && col >= 0) {
		col_letters(col, a);
		snprintf(buf, cap, "%s!%s%ld", sh, a, row);
	} else if (row > 0) {
		snprintf(buf, cap, "%s!%ld:%ld", sh, row, row);
	} else {
		snprintf(buf, cap, "%s", sh);
	}
}

static const char *col_title(const th_sheet *s, long dcol)
{
	if (dcol >= 0 && s->def)
		return s->def->cols[dcol].title;
	if (dcol == COL_UNIT)
		return UNIT_TITLE;
	return NULL;
}

/* XLSX place: "PL1!D7 (title)", "PL1!A7:M7", "PL1". */
static void place(const th_sheet *s, long row, long scol, long dcol, char *out, size_t cap)
{
	const char *t = col_title(s, dcol);
	char ref[240];
	if (row > 0 && scol < 0 && s->last_col >= 0) {
		char a[200], b[8];
		th_sheet_cell_name(s->sheet, row, s->first_col, a, sizeof a);
		col_letters(s->last_col, b);
		snprintf(ref, sizeof ref, "%s:%s%ld", a, b, row);
	} else {
		th_sheet_cell_name(s->sheet, row, scol, ref, sizeof ref);
	}
	snprintf(out, cap, "%s%s%s%s", ref, t ? " (" : "", t ? t : "", t ? ")" : "");
}

/* One problem at a place: CSV "file:line: column:", XLSX "file: SHEET!D7 (title):". */
static void vproblem(th_sheet *s, th_severity sev, int code, long row, long scol, long dcol,
                     const char *fmt, va_list ap)
{
	if (!s->sheet) {
		const char *id = dcol >= 0 && s->def ? s->def->cols[dcol].id
		                 : dcol == COL_UNIT ? "unit" : NULL;
		th_diag_vadd(s->diag, sev, code, s->file, row, 0, id, fmt, ap);
		return;
	}
	char where[640];
	place(s, row, scol, dcol, where, sizeof where);
	th_diag_vadd(s->diag, sev, code, s->file, 0, 0, where, fmt, ap);
}

static void __attribute__((format(printf, 6, 7)))
problem(th_sheet *s, int code, long row, long scol, long dcol, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vproblem(s, TH_SEV_ERROR, code, row, scol, dcol, fmt, ap);
	va_end(ap);
}

/* A problem at a metadata value (its line, or its cell / workbook place). */
static void __attribute__((format(printf, 4, 5)))
meta_problem(th_sheet *s, const meta_t *m, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (!s->sheet || !m->where[0]) {
		vproblem(s, TH_SEV_ERROR, code, m->line, -1, COL_NONE, fmt, ap);
	} else {
		th_diag_vadd(s->diag, TH_SEV_ERROR, code, s->file, 0, 0, m->where, fmt, ap);
	}
	va_end(ap);
}

/* --- life cycle --------------------------------------------------------------- */

th_sheet *th_sheet_new(const char *file, const char *sheet, const th_defset *defs,
                       const th_read_opts *opts)
{
	th_sheet *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->file = strdup(file ? file : "input");
	s->sheet = sheet ? strdup(sheet) : NULL;
	s->diag = th_diag_new();
	s->defs = defs;
	s->opts = opts;
	s->unit_col = -1;
	s->first_col = s->last_col = -1;
	if (!s->file || (sheet && !s->sheet) || !s->diag)
		th_sheet_destroy(&s);
	return s;
}

void th_reports_free(th_report ***reports, size_t n)
{
	if (!reports || !*reports)
		return;
	for (size_t i = 0; i < n; i++)
		th_report_destroy(&(*reports)[i]);
	free(*reports);
	*reports = NULL;
}

int th_reports_take_one(th_report **reports, size_t n, const char *name, th_report **out,
                        th_diag *diag)
{
	if (n == 1) {
		*out = reports[0];
		free(reports);
		return TH_OK;
	}
	char list[200] = "";
	size_t o = 0;
	for (size_t i = 0; i < n && o + 70 < sizeof list; i++)
		o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", i ? ", " : "", reports[i]->unit);
	if (n > 0 && o + 70 >= sizeof list)
		snprintf(list + o, sizeof list - o, ", ...");
	th_reports_free(&reports, n);
	return th_diag_add(diag, TH_SEV_ERROR, TH_EINVAL, name, 0, 0, NULL,
	                   "holds the reports of %zu units (%s): read it for one unit (--unit CODE) "
	                   "or as a file of several reports", n, list);
}

void th_sheet_destroy(th_sheet **ps)
{
	if (!ps || !*ps)
		return;
	th_sheet *s = *ps;
	for (int k = 0; k < NMETA; k++)
		free(s->meta[k].v);
	for (size_t i = 0; i < s->n_units; i++)
		free(s->units[i]);
	free(s->units);
	for (size_t i = 0; i < s->n_reps; i++) {
		th_report_destroy(&s->reps[i].r);
		free(s->reps[i].where);
		free(s->reps[i].bad);
	}
	free(s->reps);
	if (s->memo && s->def)
		for (size_t c = 0; c < s->def->n_cols; c++) {
			for (size_t k = 0; s->memo[c] && k < s->n_memo[c]; k++)
				free(s->memo[c][k].text);
			free(s->memo[c]);
		}
	free(s->memo);
	free(s->n_memo);
	free(s->colmap);
	free(s->colpos);
	free(s->buf);
	free(s->cells);
	th_diag_destroy(&s->diag);
	free(s->file);
	free(s->sheet);
	free(s);
	*ps = NULL;
}

void th_sheet_set_date1904(th_sheet *s, int on)
{
	s->date1904 = on != 0;
}

th_diag *th_sheet_diag(th_sheet *s)
{
	return s->diag;
}

int th_sheet_has_header(const th_sheet *s)
{
	return s->state > 0;
}

static int set_units(th_sheet *s, const char *list)
{
	char *copy = strdup(list);
	if (!copy)
		return TH_ENOMEM;
	for (char *save = NULL, *t = strtok_r(copy, " \t,;", &save); t; t = strtok_r(NULL, " \t,;", &save)) {
		char **nu = realloc(s->units, (s->n_units + 1) * sizeof *nu);
		if (!nu || !(nu[s->n_units] = strdup(t))) {
			if (nu)
				s->units = nu;
			free(copy);
			return TH_ENOMEM;
		}
		s->units = nu;
		s->n_units++;
	}
	free(copy);
	return TH_OK;
}

int th_sheet_set_meta(th_sheet *s, const char *key, const char *value, const char *where)
{
	int k = strcmp(key, "units") == 0 ? M_UNITS : meta_index(key);
	if (k < 0 || !value)
		return TH_OK;
	meta_t *m = &s->meta[k];
	free(m->v);
	m->v = strdup(value);
	if (!m->v)
		return TH_ENOMEM;
	if (k == M_UNIT)
		unit_code_of(m->v);
	if (k == M_APPENDIX)
		for (char *p = m->v; *p; p++)
			*p = (char)toupper((unsigned char)*p);
	m->src = 2;
	m->line = 0;
	snprintf(m->where, sizeof m->where, "%s", where ? where : "");
	if (k == M_UNITS)
		return set_units(s, value);
	return TH_OK;
}

/* A metadata value from a cell or line of the table. */
static int set_meta_cell(th_sheet *s, int k, const char *v, long row, long scol)
{
	meta_t *m = &s->meta[k];
	char where[96] = "";
	if (s->sheet)
		place(s, row, scol, COL_NONE, where, sizeof where);
	char *val = strdup(v);
	if (!val)
		return TH_ENOMEM;
	if (k == M_UNIT)
		unit_code_of(val);
	if (k == M_APPENDIX)
		for (char *p = val; *p; p++)
			*p = (char)toupper((unsigned char)*p);
	if (m->src == 1) {
		meta_t here = {0};
		here.line = row;
		snprintf(here.where, sizeof here.where, "%s", where);
		if (s->sheet)
			meta_problem(s, &here, TH_ESYNTAX, "%s given twice (first at %s)", meta_names[k][0],
			             m->where);
		else
			meta_problem(s, &here, TH_ESYNTAX, "%s given twice (first at line %ld)",
			             meta_names[k][0], m->line);
		free(val);
		return TH_OK;
	}
	if (m->src == 2) {
		if (strcmp(m->v, val) != 0) {
			meta_t here = {0};
			here.line = row;
			snprintf(here.where, sizeof here.where, "%s", where);
			meta_problem(s, &here, TH_EINVAL,
			             "the sheet says %s %s but the workbook's own record (%s) says %s",
			             meta_names[k][0], val, m->where, m->v);
		}
		free(val);
		return TH_OK;
	}
	free(m->v);
	m->v = val;
	m->src = 1;
	m->line = row;
	snprintf(m->where, sizeof m->where, "%s", where);
	return TH_OK;
}

/* The text a cell stands for, for metadata values, text columns and
 * headers: numbers in plain form, dates as dd/mm/yyyy (iso: yyyy-mm-dd).
 * NULL for an error cell. */
static const char *cell_text(const th_sheet *s, const th_sheet_cell *c, int iso, char *buf, size_t cap)
{
	switch (c->kind) {
	case TH_SHEET_TEXT:
		return c->text;
	case TH_SHEET_NUMBER: {
		if (c->date) {
			int32_t ymd;
			const char *why;
			if (th_xnum_serial_date(c->text, s->date1904, &ymd, &why) == 0) {
				char b[32];
				snprintf(buf, cap, "%s", th_fmt_date(ymd, iso, b));
				return buf;
			}
		}
		th_xnum x;
		if (th_xnum_parse(c->text, &x))
			return c->text;
		th_xnum_text(&x, buf, cap);
		return buf;
	}
	case TH_SHEET_BOOL:
		return c->text[0] == '1' ? "TRUE" : "FALSE";
	default:
		return NULL;
	}
}

/* --- the header ------------------------------------------------------------------ */

/* The definition the table is for, from the options, the metadata so far
 * or (weakest) the sheet's name; NULL while unknown.  An appendix or version
 * that names no definition is an error (once) and stops the table. */
static const th_def *candidate_def(th_sheet *s)
{
	const char *app = s->opts && s->opts->appendix ? s->opts->appendix : s->meta[M_APPENDIX].v;
	int from_sheet = 0;
	if (!app && s->sheet) {
		char up[32];
		size_t n = strlen(s->sheet);
		if (n < sizeof up) {
			for (size_t i = 0; i <= n; i++)
				up[i] = (char)toupper((unsigned char)s->sheet[i]);
			const th_def *d = th_defset_latest(s->defs, up);
			if (d && !s->meta[M_VERSION].v)
				return d;
			if (d) {
				app = d->id;
				from_sheet = 1;
			}
		}
	}
	if (!app)
		return NULL;
	const meta_t *mv = &s->meta[M_VERSION];
	const meta_t *ma = &s->meta[M_APPENDIX];
	if (mv->v) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(mv->v, &end, 10);
		if (errno || *end || end == mv->v || v == 0 || v > UINT32_MAX) {
			meta_problem(s, mv, TH_ESYNTAX, "version \"%s\" is not a number", mv->v);
			s->failed = 1;
			return NULL;
		}
		const th_def *d = th_defset_get(s->defs, app, (uint32_t)v);
		if (!d) {
			meta_problem(s, mv, TH_EAPPENDIX, "%s version %lu is not a known definition", app, v);
			s->failed = 1;
		}
		return d;
	}
	const th_def *d = th_defset_latest(s->defs, app);
	if (!d && !from_sheet) {
		if (ma->v && !(s->opts && s->opts->appendix))
			meta_problem(s, ma, TH_EAPPENDIX, "unknown appendix \"%s\"", app);
		else
			problem(s, TH_EAPPENDIX, 0, -1, COL_NONE, "unknown appendix \"%s\"", app);
		s->failed = 1;
	}
	return d;
}

/* How many cells of the row name columns of d. */
static size_t header_matches(const th_def *d, const th_sheet_cell *c, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (c[i].kind == TH_SHEET_TEXT && th_def_column(d, c[i].text) >= 0)
			k++;
	return k;
}

/* Levenshtein distance between two short strings; SIZE_MAX when either is
 * longer than 64 bytes (a suggestion would be noise then). */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t row[65];
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t best = diag + (a[i - 1] != b[j - 1]);
			if (up + 1 < best)
				best = up + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = up;
		}
	}
	return row[lb];
}

/* The column id nearest to h (case-insensitive for ASCII), or NULL when none is close. */
static const char *nearest_column(const th_def *d, const char *h)
{
	char low[65];
	size_t n = strlen(h);
	if (n > 64)
		return NULL;
	for (size_t i = 0; i <= n; i++)
		low[i] = (h[i] >= 'A' && h[i] <= 'Z') ? (char)(h[i] - 'A' + 'a') : h[i];
	const char *best = NULL;
	size_t bestd = n / 3 > 2 ? n / 3 : 2;
	for (size_t c = 0; c < d->n_cols; c++) {
		size_t e = edit_distance(low, d->cols[c].id);
		if (e <= bestd) {
			bestd = e;
			best = d->cols[c].id;
		}
	}
	return best;
}

static rep_t *add_report(th_sheet *s, const char *unit, const char *period)
{
	if (s->n_reps == s->cap_reps) {
		size_t cap = s->cap_reps ? s->cap_reps * 2 : 4;
		rep_t *nr = realloc(s->reps, cap * sizeof *nr);
		if (!nr)
			return NULL;
		s->reps = nr;
		s->cap_reps = cap;
	}
	const th_def *d = s->def;
	rep_t *r = &s->reps[s->n_reps];
	memset(r, 0, sizeof *r);
	r->r = th_report_new(unit, d->id, d->version, period, s->opts ? s->opts->rev : 0, d->n_cols);
	if (!r->r)
		return NULL;
	if (s->meta[M_ASOF].v) {
		int32_t ymd;
		const char *why;
		if (th_parse_date(s->meta[M_ASOF].v, &ymd, &why) == 0)
			r->r->as_of = ymd;
	}
	s->n_reps++;
	return r;
}

/* Checks the metadata against the options once the header is found. */
static void check_meta(th_sheet *s, long row)
{
	const th_read_opts *o = s->opts;
	static const int keys[3] = {M_APPENDIX, M_UNIT, M_PERIOD};
	const char *given[3] = {o ? o->appendix : NULL, o ? o->unit : NULL, o ? o->period : NULL};
	for (int i = 0; i < 3; i++) {
		meta_t *m = &s->meta[keys[i]];
		if (!given[i] || !m->v || strcmp(given[i], m->v) == 0)
			continue;
		if (keys[i] == M_UNIT && s->unit_col >= 0)
			continue;   /* the unit column decides, the option selects */
		meta_problem(s, m, TH_EINVAL, "the file says %s %s but %s was asked for",
		             meta_names[keys[i]][0], m->v, given[i]);
	}
	const char *period = o && o->period ? o->period : s->meta[M_PERIOD].v;
	const char *unit = o && o->unit ? o->unit : s->meta[M_UNIT].v;
	if (!period)
		problem(s, TH_EMISSING, row, -1, COL_NONE, s->sheet
		        ? "which period? add a cell \"Kỳ: 2021\" above the header"
		        : "which period? add a line \"#period: 2021\"");
	else if (!th_period_valid(period)) {
		if (s->meta[M_PERIOD].v && !(o && o->period))
			meta_problem(s, &s->meta[M_PERIOD], TH_EPERIOD,
			             "period \"%s\" is not yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm", period);
		else
			problem(s, TH_EPERIOD, 0, -1, COL_NONE,
			        "period \"%s\" is not yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm", period);
	}
	if (unit && !code_ok(unit)) {
		if (s->meta[M_UNIT].v && !(o && o->unit))
			meta_problem(s, &s->meta[M_UNIT], TH_EUNIT,
			             "unit \"%s\" is not a unit code: write the code (e.g. SNV, 001); its "
			             "name may follow after \" - \"", unit);
		else
			problem(s, TH_EUNIT, 0, -1, COL_NONE, "unit \"%s\" is not a unit code", unit);
	}
	if (!unit && s->unit_col < 0)
		problem(s, TH_EMISSING, row, -1, COL_NONE, s->sheet
		        ? "which unit is this for? add a cell \"Đơn vị: CODE\" above the header, or a "
		          "column \"" UNIT_TITLE "\""
		        : "which unit is this for? add a line \"#unit: CODE\"");
	const meta_t *ma = &s->meta[M_ASOF];
	if (ma->v) {
		int32_t ymd;
		const char *why;
		if (th_parse_date(ma->v, &ymd, &why))
			meta_problem(s, ma, TH_ETYPE, "as_of: %s", why);
	}
}

static int on_header(th_sheet *s, long row, const th_sheet_cell *c, size_t n)
{
	const th_def *d = s->def;
	size_t width = n ? (size_t)c[n - 1].col + 1 : 0;
	s->colmap = malloc((width ? width : 1) * sizeof *s->colmap);
	s->colpos = malloc(d->n_cols * sizeof *s->colpos);
	s->memo = calloc(d->n_cols, sizeof *s->memo);
	s->n_memo = calloc(d->n_cols, sizeof *s->n_memo);
	if (!s->colmap || !s->colpos || !s->memo || !s->n_memo)
		return TH_ENOMEM;
	s->ncolmap = width;
	for (size_t i = 0; i < width; i++)
		s->colmap[i] = COL_NONE;
	for (size_t i = 0; i < d->n_cols; i++)
		s->colpos[i] = -1;
	s->state = 1;
	for (size_t i = 0; i < n; i++) {
		const char *h = c[i].kind == TH_SHEET_TEXT ? c[i].text : NULL;
		char nb[64];
		if (!h)
			h = cell_text(s, &c[i], 0, nb, sizeof nb);
		if (!h || !*h)
			continue;
		long col = c[i].col;
		if (s->first_col < 0)
			s->first_col = col;
		s->last_col = col;
		long dc = th_def_column(d, h);
		if (dc < 0)
			dc = special_index(h);
		if (dc == COL_NONE) {
			const char *near = nearest_column(d, h);
			problem(s, TH_ESYNTAX, row, col, COL_NONE,
			        "header \"%s\" is not a column of %s version %u%s%s%s", h, d->id, d->version,
			        near ? "; did you mean \"" : "", near ? near : "", near ? "\"?" : "");
			continue;
		}
		if (dc >= 0 && s->colpos[dc] >= 0) {
			problem(s, TH_EDUPKEY, row, col, dc, "column appears twice in the header");
			continue;
		}
		if (dc == COL_UNIT && s->unit_col >= 0) {
			problem(s, TH_EDUPKEY, row, col, COL_UNIT, "column appears twice in the header");
			continue;
		}
		s->colmap[col] = dc;
		if (dc >= 0)
			s->colpos[dc] = col;
		if (dc == COL_UNIT)
			s->unit_col = col;
	}
	for (size_t k = 0; k < d->n_cols; k++)
		if (s->colpos[k] < 0 && d->cols[k].required)
			problem(s, TH_EMISSING, row, -1, (long)k, "required column \"%s\" is missing from the "
			        "header", d->cols[k].title);
	check_meta(s, row);
	if (s->unit_col < 0) {
		const th_read_opts *o = s->opts;
		const char *unit = o && o->unit ? o->unit : s->meta[M_UNIT].v;
		const char *period = o && o->period ? o->period : s->meta[M_PERIOD].v;
		if (!add_report(s, unit ? unit : "", period ? period : ""))
			return TH_ENOMEM;
	}
	return TH_OK;
}

/* "(1)", "(2)" ... or 1, 2, 3 ... in successive columns: a numbering row. */
static int numbering_row(const th_sheet_cell *c, size_t n)
{
	int paren = 1, seq = n >= 2;
	for (size_t i = 0; i < n; i++) {
		const char *t = c[i].text;
		size_t len = strlen(t);
		if (!(len >= 3 && len <= 6 && t[0] == '(' && t[len - 1] == ')'))
			paren = 0;
		else
			for (size_t k = 1; k + 1 < len; k++)
				if (!isalnum((unsigned char)t[k]))
					paren = 0;
		char *end;
		long v = strtol(t, &end, 10);
		if (c[i].kind == TH_SHEET_BOOL || c[i].kind >= TH_SHEET_ERROR || *end || v != (long)i + 1 ||
		    (i && c[i].col != c[i - 1].col + 1))
			seq = 0;
	}
	return paren || seq;
}

/* The header again (the template's titles under its column ids), or a
 * numbering row. */
static int header_again(th_sheet *s, const th_sheet_cell *c, size_t n)
{
	if (numbering_row(c, n))
		return 1;
	for (size_t i = 0; i < n; i++) {
		if (c[i].kind != TH_SHEET_TEXT || c[i].col >= s->ncolmap)
			return 0;
		long dc = th_def_column(s->def, c[i].text);
		if (dc < 0)
			dc = special_index(c[i].text);
		if (dc == COL_NONE || dc != s->colmap[c[i].col])
			return 0;
	}
	return 1;
}

/* --- metadata rows ------------------------------------------------------------ */

/* "key: value" -> index and value (in the row's scratch copy), or -1. */
static int key_colon_value(char *t, char **val)
{
	char *colon = strchr(t, ':');
	if (!colon || colon == t)
		return -1;
	*colon = 0;
	int k = meta_index(t);
	*colon = ':';
	if (k < 0)
		return -1;
	char *v = colon + 1;
	while (*v == ' ' || *v == '\t')
		v++;
	if (!*v)
		return -1;
	*val = v;
	return k;
}

/* Metadata rows before the header: "#key: value", "key | value" or cells
 * "key: value".  1 when the row was metadata or a comment. */
static int meta_row(th_sheet *s, long row, th_sheet_cell *c, size_t n, int *rc)
{
	*rc = TH_OK;
	if (n == 1 && c[0].kind == TH_SHEET_TEXT && c[0].text[0] == '#') {
		char *t = (char *)c[0].text + 1;
		char *v;
		int k = key_colon_value(t, &v);
		if (k >= 0)
			*rc = set_meta_cell(s, k, v, row, c[0].col);
		return 1;   /* an unknown "#x: y" is a comment */
	}
	/* "key" | value (the key may end with ':') */
	if (n == 2 && c[0].kind == TH_SHEET_TEXT) {
		int k = meta_index(c[0].text);
		char nb[64];
		const char *v = cell_text(s, &c[1], 1, nb, sizeof nb);
		if (k >= 0 && v) {
			*rc = set_meta_cell(s, k, v, row, c[1].col);
			return 1;
		}
	}
	/* every cell "key: value" */
	for (size_t i = 0; i < n; i++) {
		char *v;
		if (c[i].kind != TH_SHEET_TEXT || key_colon_value((char *)c[i].text, &v) < 0)
			return 0;
	}
	for (size_t i = 0; i < n && *rc == TH_OK; i++) {
		char *v;
		int k = key_colon_value((char *)c[i].text, &v);
		*rc = set_meta_cell(s, k, v, row, c[i].col);
	}
	return 1;
}

/* --- rows ----------------------------------------------------------------------- */

static int memo_enum(th_sheet *s, size_t dc, const char *text, long *idx)
{
	const th_column *col = &s->def->cols[dc];
	for (size_t k = 0; k < s->n_memo[dc]; k++)
		if (strcmp(s->memo[dc][k].text, text) == 0) {
			*idx = s->memo[dc][k].idx;
			return TH_OK;
		}
	long e = th_def_enum(col, text);
	*idx = e;
	size_t cap = 2 * col->n_values + 4;
	if (s->n_memo[dc] >= cap || e < 0)
		return TH_OK;
	if (!s->memo[dc] && !(s->memo[dc] = calloc(cap, sizeof *s->memo[dc])))
		return TH_ENOMEM;
	enum_memo *m = &s->memo[dc][s->n_memo[dc]];
	if (!(m->text = strdup(text)))
		return TH_ENOMEM;
	m->idx = e;
	s->n_memo[dc]++;
	return TH_OK;
}

static void enum_problem(th_sheet *s, long row, long scol, size_t dc, const char *text)
{
	const th_column *col = &s->def->cols[dc];
	if (s->sheet)
		problem(s, TH_ERANGE, row, scol, (long)dc, "\"%s\" is not one of its values (choose from "
		        "the list, e.g. \"%s\")", text, col->n_values ? col->values[0].title : "");
	else
		problem(s, TH_ERANGE, row, scol, (long)dc, "\"%s\" is not one of its values (%s%s%s)", text,
		        col->n_values ? col->values[0].code : "", col->n_values > 1 ? ", " : "",
		        col->n_values > 1 ? col->values[1].code : "");
}

/* One cell into its report value; problems at the cell. */
static int parse_cell(th_sheet *s, size_t dc, const th_sheet_cell *c, th_value *v, long row)
{
	const th_column *col = &s->def->cols[dc];
	long scol = c->col;
	const char *why = NULL;
	char b[64];
	int rc = 0;
	if (c->kind == TH_SHEET_ERROR) {
		problem(s, TH_ETYPE, row, scol, (long)dc, "the cell shows the error %s (a formula that "
		        "failed or a value not available): correct it or type the value", c->text);
		return TH_OK;
	}
	if (c->kind == TH_SHEET_INVALID) {
		problem(s, TH_EUTF8, row, scol, (long)dc, "the text is not valid UTF-8 or holds a control "
		        "character: type it again");
		return TH_OK;
	}
	if (c->kind == TH_SHEET_NOVALUE) {
		problem(s, TH_ETYPE, row, scol, (long)dc, "the formula =%s has no saved result (the "
		        "program that wrote the file does not calculate): open and save the file in Excel "
		        "or LibreOffice, or type the value", c->text);
		return TH_OK;
	}
	if (c->kind == TH_SHEET_NUMBER && c->date && col->type != TH_T_DATE && col->type != TH_T_TEXT) {
		const char *t = cell_text(s, c, 0, b, sizeof b);
		problem(s, TH_ETYPE, row, scol, (long)dc, "is a date (%s), not %s: the spreadsheet turned "
		        "what was typed into a date; format the cell as %s and type it again", t,
		        col->type == TH_T_BOOL ? "a yes/no value" : col->type == TH_T_ENUM ? "one of its values"
		        : "a number", col->type == TH_T_INT || col->type == TH_T_DEC ? "Number" : "Text");
		return TH_OK;
	}
	if (c->kind == TH_SHEET_BOOL && col->type != TH_T_BOOL && col->type != TH_T_TEXT) {
		problem(s, TH_ETYPE, row, scol, (long)dc, "is %s, a yes/no value, not %s",
		        c->text[0] == '1' ? "TRUE" : "FALSE",
		        col->type == TH_T_DATE ? "a date" : col->type == TH_T_ENUM ? "one of its values"
		        : "a number");
		return TH_OK;
	}
	if (c->kind == TH_SHEET_NUMBER && !(c->date && col->type == TH_T_TEXT)) {
		th_xnum x;
		if (th_xnum_parse(c->text, &x)) {
			problem(s, TH_ETYPE, row, scol, (long)dc, "\"%s\" is not a number", c->text);
			return TH_OK;
		}
		switch (col->type) {
		case TH_T_INT:
		case TH_T_DEC:
			rc = th_xnum_scaled(&x, col->type == TH_T_DEC ? col->scale : 0, &v->i, &why);
			if (rc) {
				th_xnum_text(&x, b, sizeof b);
				problem(s, rc, row, scol, (long)dc, "%s %s", b, why);
				return TH_OK;
			}
			v->null = 0;
			return TH_OK;
		case TH_T_DATE: {
			if (!c->date) {
				th_xnum_text(&x, b, sizeof b);
				problem(s, TH_ETYPE, row, scol, (long)dc, "%s is a number, not a date: format "
				        "the cell as a date or type dd/mm/yyyy", b);
				return TH_OK;
			}
			int32_t ymd;
			if ((rc = th_xnum_serial_date(c->text, s->date1904, &ymd, &why))) {
				problem(s, rc, row, scol, (long)dc, "the date %s", why);
				return TH_OK;
			}
			v->i = ymd;
			v->null = 0;
			return TH_OK;
		}
		case TH_T_BOOL:
			if (x.nd == 1 && x.exp == 0 && x.dig[0] == '1' && !x.neg)
				v->i = 1;
			else if (x.nd == 0)
				v->i = 0;
			else {
				th_xnum_text(&x, b, sizeof b);
				problem(s, TH_ETYPE, row, scol, (long)dc, "%s is not a yes/no value (write 1 or "
				        "0, có or không)", b);
				return TH_OK;
			}
			v->null = 0;
			return TH_OK;
		default:
			break;   /* enum, text: by the number's text */
		}
	}
	const char *text = c->kind == TH_SHEET_TEXT ? c->text : cell_text(s, c, 0, b, sizeof b);
	switch (col->type) {
	case TH_T_INT:
		rc = th_parse_int(text, &v->i, &why);
		break;
	case TH_T_DEC:
		rc = th_parse_dec(text, col->scale, &v->i, &why);
		break;
	case TH_T_DATE: {
		int32_t d;
		rc = th_parse_date(text, &d, &why);
		v->i = d;
		break;
	}
	case TH_T_BOOL:
		rc = th_parse_bool(text, &v->i, &why);
		break;
	case TH_T_ENUM: {
		long e;
		if ((rc = memo_enum(s, dc, text, &e)))
			return rc;
		if (e < 0) {
			enum_problem(s, row, scol, dc, text);
			return TH_OK;
		}
		v->i = e;
		break;
	}
	case TH_T_TEXT:
		v->s = strdup(text);
		if (!v->s)
			return TH_ENOMEM;
		v->len = (uint32_t)strlen(text);
		break;
	}
	if (rc) {
		problem(s, rc, row, scol, (long)dc, "\"%s\" %s", text, why ? why : th_strerror(rc));
		return TH_OK;
	}
	v->null = 0;
	return TH_OK;
}

static int unit_listed(const th_sheet *s, const char *u)
{
	for (size_t i = 0; i < s->n_units; i++)
		if (strcmp(s->units[i], u) == 0)
			return 1;
	return 0;
}

/* The report a row belongs to (by its unit cell), NULL to skip the row. */
static rep_t *row_report(th_sheet *s, long row, const th_sheet_cell *uc, int *rc)
{
	*rc = TH_OK;
	if (s->unit_col < 0)
		return &s->reps[0];
	char code[TH_CODE_MAX + 64];
	const char *u = NULL;
	if (uc && uc->kind == TH_SHEET_NUMBER) {
		char b[64];
		problem(s, TH_EUNIT, row, uc->col, COL_UNIT, "unit code %s is a number: unit codes keep "
		        "their leading zeros (00001); format the column as Text and type the code",
		        cell_text(s, uc, 0, b, sizeof b));
		return NULL;
	}
	if (uc && uc->kind == TH_SHEET_TEXT) {
		snprintf(code, sizeof code, "%s", uc->text);
		u = unit_code_of(code);
	}
	if (!u || !*u)
		u = s->meta[M_UNIT].v;
	if (!u) {
		problem(s, TH_EMISSING, row, s->unit_col, COL_UNIT, "the row has figures but no unit "
		        "code");
		return NULL;
	}
	if (!code_ok(u)) {
		problem(s, TH_EUNIT, row, s->unit_col, COL_UNIT, "\"%s\" is not a unit code", u);
		return NULL;
	}
	if (s->opts && s->opts->unit && strcmp(s->opts->unit, u) != 0)
		return NULL;
	if (s->n_units && !unit_listed(s, u)) {
		problem(s, TH_EUNIT, row, s->unit_col, COL_UNIT, "unit %s is not one of the %zu units "
		        "this workbook was made for", u, s->n_units);
		return NULL;
	}
	for (size_t i = 0; i < s->n_reps; i++)
		if (strcmp(s->reps[i].r->unit, u) == 0)
			return &s->reps[i];
	const char *period = s->opts && s->opts->period ? s->opts->period : s->meta[M_PERIOD].v;
	rep_t *r = add_report(s, u, period ? period : "");
	if (!r)
		*rc = TH_ENOMEM;
	return r;
}

static int data_row(th_sheet *s, long row, const th_sheet_cell *c, size_t n)
{
	const th_def *d = s->def;
	const th_sheet_cell *uc = NULL;
	int any = 0, stray = 0;
	for (size_t i = 0; i < n; i++) {
		long m = c[i].col < s->ncolmap ? s->colmap[c[i].col] : COL_NONE;
		if (m >= 0)
			any = 1;
		else if (m == COL_UNIT)
			uc = &c[i];
		else if (m == COL_NONE && s->sheet)
			problem(s, TH_ESYNTAX, row, c[i].col, COL_NONE, "a value in a column that has no "
			        "header above it");
		else if (m == COL_NONE && c[i].col < s->ncolmap)
			problem(s, TH_ESYNTAX, row, -1, COL_NONE, "a value in field %u, which has no header",
			        c[i].col + 1);
		else if (m == COL_NONE && !stray++)
			problem(s, TH_ESYNTAX, row, -1, COL_NONE, "%zu cells but the header has %zu",
			        (size_t)c[n - 1].col + 1, s->ncolmap);
	}
	if (!any)
		return TH_OK;   /* only an STT, a unit or a name: an empty row */
	int rc;
	rep_t *rp = row_report(s, row, uc, &rc);
	if (!rp)
		return rc;
	th_report *r = rp->r;
	uint32_t max_rows = d->n_key == 0 ? 1 : d->max_rows;
	if (r->n_rows >= max_rows) {
		if (s->unit_col >= 0)
			problem(s, TH_ETOOBIG, row, -1, COL_NONE, "more than %u data rows for unit %s",
			        max_rows, r->unit);
		else
			problem(s, TH_ETOOBIG, row, -1, COL_NONE, "more than %u data rows", max_rows);
		s->failed = 1;
		return TH_OK;
	}
	long ri = th_report_add_row(r);
	if (ri < 0)
		return (int)ri;
	if ((size_t)ri >= rp->cap) {
		size_t cap = rp->cap ? rp->cap * 2 : 16;
		long *nw = realloc(rp->where, cap * sizeof *nw);
		if (nw)
			rp->where = nw;
		uint8_t *nb = nw ? realloc(rp->bad, cap * d->n_cols) : NULL;
		if (!nb)
			return TH_ENOMEM;
		rp->bad = nb;
		rp->cap = cap;
	}
	rp->where[ri] = row;
	memset(rp->bad + (size_t)ri * d->n_cols, 0, d->n_cols);
	for (size_t i = 0; i < n; i++) {
		long dc = c[i].col < s->ncolmap ? s->colmap[c[i].col] : COL_NONE;
		if (dc < 0)
			continue;
		size_t before = th_diag_count(s->diag);
		if ((rc = parse_cell(s, (size_t)dc, &c[i], th_report_cell(r, (size_t)ri, (size_t)dc), row)))
			return rc;
		if (th_diag_count(s->diag) > before)
			rp->bad[(size_t)ri * d->n_cols + (size_t)dc] = 1;
	}
	return TH_OK;
}

/* Copies the row's non-empty cells, trimmed, into the sheet's scratch. */
static int trim_row(th_sheet *s, const th_sheet_cell *in, size_t n, size_t *out_n)
{
	size_t need = 0;
	for (size_t i = 0; i < n; i++)
		need += strlen(in[i].text) + 1;
	if (need > s->buf_cap) {
		size_t cap = need > 2 * s->buf_cap ? need : 2 * s->buf_cap;
		char *nb = realloc(s->buf, cap);
		if (!nb)
			return TH_ENOMEM;
		s->buf = nb;
		s->buf_cap = cap;
	}
	if (n > s->cells_cap) {
		size_t cap = n > 2 * s->cells_cap ? n : 2 * s->cells_cap;
		th_sheet_cell *nc = realloc(s->cells, cap * sizeof *nc);
		if (!nc)
			return TH_ENOMEM;
		s->cells = nc;
		s->cells_cap = cap;
	}
	size_t o = 0, k = 0;
	for (size_t i = 0; i < n; i++) {
		const char *t = in[i].text;
		while (*t == ' ' || *t == '\t' || *t == '\r' || *t == '\n' ||
		       ((unsigned char)t[0] == 0xC2 && (unsigned char)t[1] == 0xA0))
			t += (unsigned char)t[0] == 0xC2 ? 2 : 1;
		size_t len = strlen(t);
		for (;;) {
			if (len && (t[len - 1] == ' ' || t[len - 1] == '\t' || t[len - 1] == '\r' ||
			            t[len - 1] == '\n'))
				len--;
			else if (len >= 2 && (unsigned char)t[len - 2] == 0xC2 && (unsigned char)t[len - 1] == 0xA0)
				len -= 2;
			else
				break;
		}
		if (len == 0 && in[i].kind == TH_SHEET_TEXT)
			continue;
		memcpy(s->buf + o, t, len);
		s->buf[o + len] = 0;
		s->cells[k] = in[i];
		s->cells[k].text = s->buf + o;
		o += len + 1;
		k++;
	}
	*out_n = k;
	return TH_OK;
}

int th_sheet_row(th_sheet *s, long row, const th_sheet_cell *cells, size_t n)
{
	if (s->failed)
		return TH_OK;
	size_t k;
	int rc = trim_row(s, cells, n, &k);
	if (rc)
		return rc;
	th_sheet_cell *c = s->cells;
	if (k == 0)
		return TH_OK;
	if (s->state == 0) {
		if (k == 1 && c[0].kind == TH_SHEET_TEXT && c[0].text[0] == '#') {
			meta_row(s, row, c, k, &rc);
			return rc;
		}
		const th_def *d = candidate_def(s);
		if (s->failed)
			return TH_OK;
		if (d && header_matches(d, c, k) > 0) {
			s->def = d;
			return on_header(s, row, c, k);
		}
		if (meta_row(s, row, c, k, &rc))
			return rc;
		if (!s->first_row) {
			s->first_row = row;
			size_t o = 0;
			for (size_t i = 0; i < k && o + 8 < sizeof s->first_text; i++) {
				int w = snprintf(s->first_text + o, sizeof s->first_text - o, "%s\"%s\"",
				                 i ? ", " : "", c[i].text);
				if (w < 0)
					break;
				o += (size_t)w;
			}
			if (o >= sizeof s->first_text)
				strcpy(s->first_text + sizeof s->first_text - 5, "...");
		}
		return TH_OK;   /* a title row */
	}
	if (!s->sheet && k == 1 && c[0].col == 0 && c[0].text[0] == '#')
		return TH_OK;   /* a comment line among the rows */
	if (s->state == 1) {
		if (header_again(s, c, k))
			return TH_OK;
		s->state = 2;
	}
	return data_row(s, row, c, k);
}

/* --- the end ----------------------------------------------------------------------- */

/* A validation problem about a cell whose value was already refused (it
 * reads as empty), or about a column missing from the header (said once):
 * not said again. */
static int already_said(const th_sheet *s, const rep_t *rp, const th_diag_entry *e)
{
	const th_def *d = s->def;
	if (e->row <= 0 || (size_t)e->row > rp->r->n_rows)
		return 0;
	size_t row = (size_t)e->row - 1;
	long dc = e->column ? th_def_column(d, e->column) : -1;
	if (dc >= 0 && (s->colpos[dc] < 0 || rp->bad[row * d->n_cols + (size_t)dc]))
		return 1;
	if (e->code == TH_EDUPKEY) {
		size_t other;
		if (sscanf(e->msg, "row key repeats row %zu", &other) != 1 || other < 1 ||
		    other > rp->r->n_rows)
			other = e->row;
		for (size_t k = 0; k < d->n_key; k++)
			if (rp->bad[row * d->n_cols + d->key_cols[k]] ||
			    rp->bad[(other - 1) * d->n_cols + d->key_cols[k]])
				return 1;
	}
	return 0;
}

/* Places the report's own validation problems back on the table. */
static void place_validation(th_sheet *s, rep_t *rp, th_diag *scratch)
{
	const th_def *d = s->def;
	for (size_t i = 0; i < th_diag_count(scratch); i++) {
		const th_diag_entry *e = th_diag_at(scratch, i);
		long where = e->row > 0 && (size_t)e->row <= rp->r->n_rows ? rp->where[e->row - 1] : 0;
		if (already_said(s, rp, e))
			continue;
		if (!s->sheet) {
			th_diag_add(s->diag, e->sev, e->code, s->file, where, e->row, e->column, "%s", e->msg);
			continue;
		}
		long dc = e->column ? th_def_column(d, e->column) : -1;
		long scol = dc >= 0 ? s->colpos[dc] : -1;
		char at[640];
		place(s, where, scol, dc, at, sizeof at);
		size_t other;
		if (e->code == TH_EDUPKEY && sscanf(e->msg, "row key repeats row %zu", &other) == 1 &&
		    other >= 1 && other <= rp->r->n_rows)
			th_diag_add(s->diag, e->sev, e->code, s->file, 0, 0, at,
			            "the same row key as row %ld", rp->where[other - 1]);
		else
			th_diag_add(s->diag, e->sev, e->code, s->file, 0, 0, at, "%s", e->msg);
	}
}

int th_sheet_finish(th_sheet *s, th_report ***out, size_t *n, th_diag *diag)
{
	int rc = TH_OK;
	if (s->state == 0 && !s->failed && th_diag_errors(s->diag) == 0) {
		const char *app = s->opts && s->opts->appendix ? s->opts->appendix : s->meta[M_APPENDIX].v;
		const th_def *d = candidate_def(s);
		if (!app && !d)
			problem(s, TH_EMISSING, s->first_row, -1, COL_NONE, s->sheet
			        ? "which appendix is this? add a cell \"Phụ lục: PL1\" above the header"
			        : "which appendix is this? add a line \"#appendix: PL1\" before the header");
		else if (d && s->first_row)
			problem(s, TH_EMISSING, 0, -1, COL_NONE, "no header row naming the columns of %s "
			        "version %u (ids such as \"%s\" or titles such as \"%s\"); the first row "
			        "that is not metadata (%s %ld) has %s", d->id, d->version, d->cols[0].id,
			        d->cols[0].title, s->sheet ? "row" : "line", s->first_row, s->first_text);
		else if (d)
			problem(s, TH_EMISSING, 0, -1, COL_NONE, "no header row (column ids or titles) found");
	}
	if (s->state > 0 && !s->failed) {
		size_t reading_errors = th_diag_errors(s->diag);
		th_diag *scratch = th_diag_new();
		if (!scratch)
			return TH_ENOMEM;
		for (size_t i = 0; i < s->n_reps; i++) {
			th_diag_clear(scratch);
			th_report_validate(s->reps[i].r, s->def, scratch);
			place_validation(s, &s->reps[i], scratch);
		}
		th_diag_destroy(&scratch);
		if (reading_errors)
			;   /* the problems say enough */
		else if (s->unit_col >= 0 && s->n_reps == 0)
			problem(s, TH_EMISSING, 0, -1, COL_NONE, s->opts && s->opts->unit
			        ? "no row for unit %s" : "no unit has any figures filled in%s",
			        s->opts && s->opts->unit ? s->opts->unit : "");
		else if (s->n_units > 0 && !(s->opts && s->opts->unit)) {
			char list[400] = "";
			size_t o = 0, missing = 0;
			for (size_t u = 0; u < s->n_units; u++) {
				int found = 0;
				for (size_t i = 0; i < s->n_reps && !found; i++)
					found = strcmp(s->reps[i].r->unit, s->units[u]) == 0;
				if (found)
					continue;
				if (o + 80 < sizeof list)
					o += (size_t)snprintf(list + o, sizeof list - o, "%s%s", missing ? ", " : "",
					                      s->units[u]);
				else if (o + 5 < sizeof list && list[o - 1] != '.')
					o += (size_t)snprintf(list + o, sizeof list - o, ", ...");
				missing++;
			}
			if (missing) {
				char where[400];
				sheet_ref(s->sheet ? s->sheet : "", where, sizeof where);
				th_diag_add(s->diag, TH_SEV_WARNING, TH_EMISSING, s->file, 0, 0,
				            s->sheet ? where : NULL, "%zu of the %zu units have no figures filled "
				            "in, so no report is made for them: %s", missing, s->n_units, list);
			}
		}
	}
	size_t errors = th_diag_errors(s->diag);
	for (size_t i = 0; i < th_diag_count(s->diag); i++) {
		const th_diag_entry *e = th_diag_at(s->diag, i);
		th_diag_add(diag, e->sev, e->code, e->file, e->line, e->row, e->column, "%s", e->msg);
	}
	th_diag_clear(s->diag);
	if (errors || s->failed || s->state == 0)
		return TH_EINVAL;
	th_report **v = malloc((s->n_reps ? s->n_reps : 1) * sizeof *v);
	if (!v)
		return TH_ENOMEM;
	for (size_t i = 0; i < s->n_reps; i++) {
		v[i] = s->reps[i].r;
		s->reps[i].r = NULL;
	}
	*out = v;
	*n = s->n_reps;
	return rc;
}

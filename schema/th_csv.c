/* th_csv.c -- appendix files from Excel / LibreOffice (APPENDIX-FILES.md). */
#include "th_csv.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (64u << 20)
#define MAX_FIELDS 4096

/* --- tokenizer ------------------------------------------------------------------ */

static char detect_sep(const char *data, size_t len)
{
	/* first line that is not a '#' metadata line */
	size_t i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && data[e] != '\n')
			e++;
		if (data[i] != '#') {
			int nc = 0, ns = 0, nt = 0, q = 0;
			for (size_t k = i; k < e; k++) {
				if (data[k] == '"')
					q = !q;
				else if (!q && data[k] == ',')
					nc++;
				else if (!q && data[k] == ';')
					ns++;
				else if (!q && data[k] == '\t')
					nt++;
			}
			if (nc || ns || nt)
				return ns > nc && ns >= nt ? ';' : nt > nc ? '\t' : ',';
		}
		i = e + 1;
	}
	return ',';
}

int th_csv_tokenize(const char *data, size_t len, char sep, th_csv_record_cb cb, void *ctx,
                    const char *name, th_diag *diag)
{
	if (!sep)
		sep = detect_sep(data, len);
	char **fields = malloc(MAX_FIELDS * sizeof *fields);
	char *buf = malloc(len + 1);   /* field bytes, unquoted, NUL-separated */
	int rc = TH_OK;
	if (!fields || !buf) {
		rc = TH_ENOMEM;
		goto out;
	}
	size_t i = 0;
	long line = 1;
	while (i < len) {
		long rec_line = line;
		size_t nf = 0, o = 0;
		int end_rec = 0;
		/* a '#' line is one field, kept whole */
		if (data[i] == '#') {
			size_t e = i;
			while (e < len && data[e] != '\n')
				e++;
			size_t n = e - i;
			if (n && data[e - 1] == '\r')
				n--;
			memcpy(buf, data + i, n);
			buf[n] = 0;
			fields[0] = buf;
			i = e < len ? e + 1 : e;
			line++;
			if ((rc = cb(ctx, fields, 1, rec_line)))
				goto out;
			continue;
		}
		while (!end_rec) {
			if (nf >= MAX_FIELDS) {
				rc = th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, name, rec_line, 0, NULL,
				                 "more than %d fields in a row", MAX_FIELDS);
				goto out;
			}
			fields[nf++] = buf + o;
			if (i < len && data[i] == '"') {
				long qline = line;
				i++;
				for (;;) {
					if (i >= len) {
						rc = th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, qline, 0, NULL,
						                 "a quoted field is never closed (missing \")");
						goto out;
					}
					char c = data[i++];
					if (c == '"') {
						if (i < len && data[i] == '"') {
							buf[o++] = '"';
							i++;
							continue;
						}
						break;
					}
					if (c == '\n')
						line++;
					buf[o++] = c;
				}
				/* after the closing quote: separator, end of line or junk */
				while (i < len && data[i] != sep && data[i] != '\n' && data[i] != '\r') {
					if (data[i] != ' ') {
						rc = th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, line, 0, NULL,
						                 "text after a closing quote");
						goto out;
					}
					i++;
				}
			} else {
				while (i < len && data[i] != sep && data[i] != '\n') {
					buf[o++] = data[i];
					i++;
				}
				/* drop a CR before LF */
				if (o && buf[o - 1] == '\r' && (i >= len || data[i] == '\n'))
					o--;
			}
			buf[o++] = 0;
			if (i < len && data[i] == '\r')
				i++;
			if (i >= len) {
				end_rec = 1;
			} else if (data[i] == sep) {
				i++;
				if (i >= len) {
					fields[nf++] = buf + o;
					buf[o++] = 0;
					end_rec = 1;
				}
			} else if (data[i] == '\n') {
				i++;
				line++;
				end_rec = 1;
			}
		}
		if ((rc = cb(ctx, fields, nf, rec_line)))
			goto out;
	}
out:
	free(fields);
	free(buf);
	return rc;
}

/* --- encodings ---------------------------------------------------------------- */

static int convert(const char *from, const char *in, size_t len, char **out, size_t *outlen)
{
	iconv_t cd = iconv_open("UTF-8", from);
	if (cd == (iconv_t)-1)
		return TH_EENCODING;
	size_t cap = len * 4 + 16;
	char *buf = malloc(cap);
	if (!buf) {
		iconv_close(cd);
		return TH_ENOMEM;
	}
	char *ip = (char *)in, *op = buf;
	size_t il = len, ol = cap;
	size_t r = iconv(cd, &ip, &il, &op, &ol);
	iconv_close(cd);
	if (r == (size_t)-1) {
		free(buf);
		return TH_EENCODING;
	}
	*out = buf;
	*outlen = (size_t)(op - buf);
	return TH_OK;
}

/* Produces NFC UTF-8 text from the raw file bytes. */
static int to_utf8(const char *data, size_t len, const char *name, const char *enc, char **out,
                   size_t *outlen, th_diag *diag)
{
	char *conv = NULL;
	size_t clen = 0;
	int rc;
	if (enc && *enc) {
		rc = convert(enc, data, len, &conv, &clen);
		if (rc)
			return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL,
			                   "cannot convert from %s (unknown encoding name or bytes that are "
			                   "not %s)", enc, enc);
	} else if (len >= 2 && ((unsigned char)data[0] == 0xFF && (unsigned char)data[1] == 0xFE)) {
		if ((rc = convert("UTF-16LE", data + 2, len - 2, &conv, &clen)))
			return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL,
			                   "broken UTF-16 text");
	} else if (len >= 2 && ((unsigned char)data[0] == 0xFE && (unsigned char)data[1] == 0xFF)) {
		if ((rc = convert("UTF-16BE", data + 2, len - 2, &conv, &clen)))
			return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL,
			                   "broken UTF-16 text");
	}
	const char *t = conv ? conv : data;
	size_t tl = conv ? clen : len;
	if (tl >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0) {
		t += 3;
		tl -= 3;
	}
	if (!th_utf8_valid(t, tl)) {
		long line = 1;
		size_t s = 0;
		for (size_t k = 0; k <= tl; k++)
			if (k == tl || t[k] == '\n') {
				if (!th_utf8_valid(t + s, k - s))
					break;
				line++;
				s = k + 1;
			}
		free(conv);
		return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, line, 0, NULL,
		                   "the file is not UTF-8 text; if it is Windows-1258 or TCVN3 (ABC), "
		                   "give its encoding (--encoding CP1258 or --encoding TCVN5712-1) or save "
		                   "it as \"CSV UTF-8\"");
	}
	rc = th_utf8_nfc(t, tl, out, outlen);
	free(conv);
	return rc;
}

/* --- appendix files ------------------------------------------------------------- */

typedef struct {
	const char *name;
	const th_defset *defs;
	const th_csv_opts *opts;
	th_diag *diag;
	size_t errors;
	char *meta[5];               /* appendix version unit period as_of */
	long meta_line[5];
	const th_def *def;
	long *colmap;                /* header field index -> column, -1 ignored */
	size_t ncolmap;
	int header_done;
	int failed;                  /* fatal: stop reading rows */
	th_report *r;
	long *row_line;              /* report row -> file line */
	size_t row_cap;
} reader;

static const char *meta_names[5][3] = {
	{"appendix", "phu_luc", "phụ lục"},
	{"version", "phien_ban", "phiên bản"},
	{"unit", "don_vi", "đơn vị"},
	{"period", "ky", "kỳ"},
	{"as_of", "ngay_bao_cao", "ngày báo cáo"},
};

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

static int meta_index(const char *k)
{
	char low[64];
	size_t n = strlen(k);
	if (n >= sizeof low)
		return -1;
	for (size_t i = 0; i <= n; i++)
		low[i] = (char)tolower((unsigned char)k[i]);
	for (int i = 0; i < 5; i++)
		for (int j = 0; j < 3; j++)
			if (strcmp(low, meta_names[i][j]) == 0)
				return i;
	return -1;
}

#define ERR(rd, line, col, code, ...) \
	((rd)->errors++, th_diag_add((rd)->diag, TH_SEV_ERROR, (code), (rd)->name, (line), 0, (col), __VA_ARGS__))

static int set_meta(reader *rd, int k, const char *v, long line)
{
	if (rd->meta[k]) {
		ERR(rd, line, NULL, TH_ESYNTAX, "%s given twice (first at line %ld)", meta_names[k][0],
		    rd->meta_line[k]);
		return TH_OK;
	}
	rd->meta[k] = strdup(v);
	rd->meta_line[k] = line;
	return rd->meta[k] ? TH_OK : TH_ENOMEM;
}

/* Resolves the definition and creates the report once the header arrives. */
static int start_report(reader *rd, long line)
{
	const th_csv_opts *o = rd->opts;
	const char *vals[4] = {o ? o->appendix : NULL, NULL, o ? o->unit : NULL, o ? o->period : NULL};
	const char *final[4];
	for (int k = 0; k < 4; k++) {
		if (vals[k] && rd->meta[k] && strcmp(vals[k], rd->meta[k]) != 0)
			ERR(rd, rd->meta_line[k], NULL, TH_EINVAL,
			    "the file says %s %s but %s was asked for", meta_names[k][0], rd->meta[k], vals[k]);
		final[k] = vals[k] ? vals[k] : rd->meta[k];
	}
	if (!final[0]) {
		ERR(rd, line, NULL, TH_EMISSING, "which appendix is this? add a line \"#appendix: PL1\" "
		                                 "before the header");
		return TH_EAPPENDIX;
	}
	const th_def *d;
	if (rd->meta[1]) {
		char *end;
		unsigned long v = strtoul(rd->meta[1], &end, 10);
		if (*end || v == 0 || v > UINT32_MAX) {
			ERR(rd, rd->meta_line[1], NULL, TH_ESYNTAX, "version \"%s\" is not a number",
			    rd->meta[1]);
			return TH_ESYNTAX;
		}
		d = th_defset_get(rd->defs, final[0], (uint32_t)v);
		if (!d) {
			ERR(rd, rd->meta_line[1], NULL, TH_EAPPENDIX, "%s version %lu is not a known definition",
			    final[0], v);
			return TH_EAPPENDIX;
		}
	} else {
		d = th_defset_latest(rd->defs, final[0]);
		if (!d) {
			ERR(rd, rd->meta_line[0] ? rd->meta_line[0] : line, NULL, TH_EAPPENDIX,
			    "unknown appendix \"%s\"", final[0]);
			return TH_EAPPENDIX;
		}
	}
	if (!final[2])
		ERR(rd, line, NULL, TH_EMISSING, "which unit is this for? add a line \"#unit: CODE\"");
	if (!final[3])
		ERR(rd, line, NULL, TH_EMISSING, "which period? add a line \"#period: 2021\"");
	else if (!th_period_valid(final[3]))
		ERR(rd, rd->meta_line[3], NULL, TH_EPERIOD,
		    "period \"%s\" is not yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm", final[3]);
	rd->def = d;
	rd->r = th_report_new(final[2] ? final[2] : "", d->id, d->version, final[3] ? final[3] : "",
	                      o ? o->rev : 0, d->n_cols);
	if (!rd->r)
		return TH_ENOMEM;
	if (rd->meta[4]) {
		int32_t ymd;
		const char *why;
		if (th_parse_date(rd->meta[4], &ymd, &why))
			ERR(rd, rd->meta_line[4], NULL, TH_ETYPE, "as_of: %s", why);
		else
			rd->r->as_of = ymd;
	}
	return TH_OK;
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

static int on_header(reader *rd, char **f, size_t n, long line)
{
	int rc = start_report(rd, line);
	if (rc) {
		rd->failed = 1;
		return rc == TH_ENOMEM ? rc : TH_OK;
	}
	const th_def *d = rd->def;
	rd->colmap = malloc(n * sizeof *rd->colmap);
	char *seen = calloc(d->n_cols, 1);
	if (!rd->colmap || !seen) {
		free(seen);
		return TH_ENOMEM;
	}
	rd->ncolmap = n;
	for (size_t i = 0; i < n; i++) {
		char *h = trim(f[i]);
		rd->colmap[i] = -1;
		if (!*h)
			continue;
		long c = th_def_column(d, h);
		if (c < 0) {
			const char *near = nearest_column(d, h);
			ERR(rd, line, NULL, TH_ESYNTAX, "header \"%s\" is not a column of %s version %u%s%s%s",
			    h, d->id, d->version, near ? "; did you mean \"" : "", near ? near : "",
			    near ? "\"?" : "");
			continue;
		}
		if (seen[c]) {
			ERR(rd, line, d->cols[c].id, TH_EDUPKEY, "column appears twice in the header");
			continue;
		}
		seen[c] = 1;
		rd->colmap[i] = c;
	}
	for (size_t c = 0; c < d->n_cols; c++)
		if (!seen[c] && d->cols[c].required)
			ERR(rd, line, d->cols[c].id, TH_EMISSING,
			    "required column \"%s\" is missing from the header", d->cols[c].title);
	free(seen);
	return TH_OK;
}

static void parse_cell(reader *rd, const th_column *col, const char *text, th_value *v, long line)
{
	const char *why = NULL;
	int rc = 0;
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
		long e = th_def_enum(col, text);
		if (e < 0) {
			rc = TH_ERANGE;
			ERR(rd, line, col->id, rc, "\"%s\" is not one of its values (%s%s%s)", text,
			    col->n_values ? col->values[0].code : "", col->n_values > 1 ? ", " : "",
			    col->n_values > 1 ? col->values[1].code : "");
			return;
		}
		v->i = e;
		break;
	}
	case TH_T_TEXT:
		v->s = strdup(text);
		if (!v->s) {
			rc = TH_ENOMEM;
			why = "out of memory";
		} else {
			v->len = (uint32_t)strlen(text);
		}
		break;
	}
	if (rc) {
		ERR(rd, line, col->id, rc, "\"%s\" %s", text, why ? why : th_strerror(rc));
		return;
	}
	v->null = 0;
}

static int on_record(void *ctx, char **f, size_t n, long line)
{
	reader *rd = ctx;
	if (rd->failed)
		return TH_OK;
	/* blank line */
	int blank = 1;
	for (size_t i = 0; i < n && blank; i++)
		if (*trim(f[i]))
			blank = 0;
	if (blank)
		return TH_OK;
	if (!rd->header_done) {
		if (f[0][0] == '#') {
			char *s = f[0] + 1;
			char *colon = strchr(s, ':');
			if (!colon)
				return TH_OK;        /* a plain comment */
			*colon = 0;
			int k = meta_index(trim(s));
			if (k < 0)
				return TH_OK;        /* unknown "#x: y" is a comment */
			return set_meta(rd, k, trim(colon + 1), line);
		}
		int k = meta_index(trim(f[0]));
		if (k >= 0 && n >= 2) {
			int rest_blank = 1;
			for (size_t i = 2; i < n; i++)
				if (*trim(f[i]))
					rest_blank = 0;
			if (rest_blank)
				return set_meta(rd, k, trim(f[1]), line);
		}
		rd->header_done = 1;
		return on_header(rd, f, n, line);
	}
	if (f[0][0] == '#' && n == 1)
		return TH_OK;             /* comment line among rows */
	const th_def *d = rd->def;
	if (n > rd->ncolmap) {
		int extra = 0;
		for (size_t i = rd->ncolmap; i < n; i++)
			if (*trim(f[i]))
				extra = 1;
		if (extra) {
			ERR(rd, line, NULL, TH_ESYNTAX, "%zu cells but the header has %zu", n, rd->ncolmap);
			return TH_OK;
		}
	}
	uint32_t max_rows = d->n_key == 0 ? 1 : d->max_rows;
	if (rd->r->n_rows >= max_rows) {
		ERR(rd, line, NULL, TH_ETOOBIG, "more than %u data rows", max_rows);
		rd->failed = 1;
		return TH_OK;
	}
	long row = th_report_add_row(rd->r);
	if (row < 0)
		return (int)row;
	if ((size_t)row >= rd->row_cap) {
		size_t cap = rd->row_cap ? rd->row_cap * 2 : 64;
		long *nl = realloc(rd->row_line, cap * sizeof *nl);
		if (!nl)
			return TH_ENOMEM;
		rd->row_line = nl;
		rd->row_cap = cap;
	}
	rd->row_line[row] = line;
	for (size_t i = 0; i < n && i < rd->ncolmap; i++) {
		if (rd->colmap[i] < 0)
			continue;
		char *t = trim(f[i]);
		if (!*t)
			continue;
		const th_column *col = &d->cols[rd->colmap[i]];
		parse_cell(rd, col, t, th_report_cell(rd->r, (size_t)row, (size_t)rd->colmap[i]), line);
	}
	return TH_OK;
}

int th_csv_parse_report(const char *data, size_t len, const char *name, const th_defset *defs,
                        const th_csv_opts *opts, th_report **out, th_diag *diag)
{
	reader rd = {0};
	rd.name = name ? name : "input";
	rd.defs = defs;
	rd.opts = opts;
	rd.diag = diag;
	char *text = NULL;
	size_t tlen = 0;
	int rc;
	if (len > MAX_FILE)
		return th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, rd.name, 0, 0, NULL,
		                   "file larger than %u MiB", MAX_FILE >> 20);
	rc = to_utf8(data, len, rd.name, opts ? opts->encoding : NULL, &text, &tlen, diag);
	if (rc)
		return rc;
	rc = th_csv_tokenize(text, tlen, 0, on_record, &rd, rd.name, diag);
	if (rc) {
		if (rc != TH_ENOMEM)
			rd.errors++;
		goto done;
	}
	if (!rd.header_done && !rd.failed) {
		ERR(&rd, 0, NULL, TH_EMISSING, "no header row (column ids or titles) found");
		goto done;
	}
	if (rd.failed || !rd.r)
		goto done;
	if (rd.errors == 0) {
		th_diag *scratch = th_diag_new();
		if (!scratch) {
			rc = TH_ENOMEM;
			goto done;
		}
		th_report_validate(rd.r, rd.def, scratch);
		for (size_t i = 0; i < th_diag_count(scratch); i++) {
			const th_diag_entry *e = th_diag_at(scratch, i);
			long line = e->row > 0 && (size_t)e->row <= rd.r->n_rows ? rd.row_line[e->row - 1] : 0;
			if (e->sev == TH_SEV_ERROR)
				rd.errors++;
			th_diag_add(diag, e->sev, e->code, rd.name, line, e->row, e->column, "%s", e->msg);
		}
		th_diag_destroy(&scratch);
	}
done:
	free(text);
	for (int k = 0; k < 5; k++)
		free(rd.meta[k]);
	free(rd.colmap);
	free(rd.row_line);
	if (rc == TH_OK && rd.errors == 0 && rd.r) {
		*out = rd.r;
		return TH_OK;
	}
	th_report_destroy(&rd.r);
	return rc ? rc : TH_EINVAL;
}

int th_csv_read_report(const char *path, const th_defset *defs, const th_csv_opts *opts,
                       th_report **out, th_diag *diag)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot open: %s",
		                   strerror(errno));
	char *data = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536 * 4;
			if (cap > MAX_FILE + 65536 * 4) {
				free(data);
				fclose(f);
				return th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, path, 0, 0, NULL,
				                   "file larger than %u MiB", MAX_FILE >> 20);
			}
			char *nd = realloc(data, cap);
			if (!nd) {
				free(data);
				fclose(f);
				return TH_ENOMEM;
			}
			data = nd;
		}
		size_t got = fread(data + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(data);
		return th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "read error");
	}
	int rc = th_csv_parse_report(data, len, path, defs, opts, out, diag);
	free(data);
	return rc;
}

/* --- writing ------------------------------------------------------------------- */

static void put_field(FILE *f, const char *s)
{
	if (strpbrk(s, ",;\"\n\r\t") || (s[0] == '#') || s[0] == ' ' ||
	    (*s && s[strlen(s) - 1] == ' ')) {
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
}

int th_csv_write_report(const char *path, const th_report *r, const th_def *d)
{
	if (r->n_cols != d->n_cols)
		return TH_EINVAL;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return TH_EIO;
	char b[64];
	fprintf(f, "#appendix: %s\n#version: %u\n#unit: %s\n#period: %s\n", r->appendix, r->version,
	        r->unit, r->period);
	if (r->as_of)
		fprintf(f, "#as_of: %s\n", th_fmt_date(r->as_of, 1, b));
	for (size_t c = 0; c < d->n_cols; c++) {
		if (c)
			fputc(',', f);
		fputs(d->cols[c].id, f);
	}
	fputc('\n', f);
	for (size_t i = 0; i < r->n_rows; i++) {
		for (size_t c = 0; c < d->n_cols; c++) {
			if (c)
				fputc(',', f);
			const th_value *v = th_report_cell(r, i, c);
			const th_column *col = &d->cols[c];
			if (v->null)
				continue;
			switch (col->type) {
			case TH_T_INT:
				fputs(th_fmt_int(v->i, b), f);
				break;
			case TH_T_DEC: {
				/* Vietnamese decimal comma; a fraction of exactly three
				 * digits gets a trailing 0 so it cannot read as thousands */
				th_fmt_dec(v->i, col->scale, 1, b);
				char *comma = strchr(b, ',');
				if (comma && strlen(comma + 1) == 3)
					strcat(b, "0");
				put_field(f, b);
				break;
			}
			case TH_T_DATE:
				fputs(th_fmt_date((int32_t)v->i, 1, b), f);
				break;
			case TH_T_BOOL:
				fputs(v->i ? "1" : "0", f);
				break;
			case TH_T_ENUM:
				if (v->i >= 0 && (size_t)v->i < col->n_values)
					fputs(col->values[v->i].code, f);
				break;
			case TH_T_TEXT:
				put_field(f, v->s ? v->s : "");
				break;
			}
		}
		fputc('\n', f);
	}
	int rc = TH_OK;
	if (fflush(f) != 0 || ferror(f))
		rc = TH_EIO;
	if (fclose(f) != 0)
		rc = TH_EIO;
	if (rc == TH_OK && rename(tmp, path) != 0)
		rc = TH_EIO;
	if (rc)
		remove(tmp);
	return rc;
}

/* tonghop -- the command line for inspectors and the central team: rollups per
 * level, completeness, history, validation, exports. */
#include "out.h"
#include "th_csv.h"
#include "th_def.h"
#include "th_rollup.h"
#include "th_store.h"
#include "th_units.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
	const char *db, *defs, *units, *appendix, *period, *unit, *parent, *columns, *out, *format;
	const char *encoding, *tree;
	int level, own, history, versions, excel;
	th_format fmt;
} opts;

static void usage(FILE *f)
{
	fprintf(f,
	"usage: tonghop COMMAND [options]\n"
	"\n"
	"commands:\n"
	"  rollup    --db DIR -a APPENDIX -p PERIOD [--level N | --parent CODE] [--own] [--columns a,b]\n"
	"            one row per unit at a level (or per child of CODE) with subtree totals, plus a total row\n"
	"  status    --db DIR -a APPENDIX -p PERIOD [--level N] [--unit CODE]\n"
	"            completeness: expected / reported / on time / late / missing, and who is missing\n"
	"  report    --db DIR UNIT APPENDIX PERIOD [--history]\n"
	"            a unit's current report; --history: every revision, when, who, what changed\n"
	"  units     (--units FILE | --db DIR) [--tree CODE]   list units, or draw a subtree\n"
	"  validate  FILE... [--defs DIR] [--unit CODE] [--period P] [--encoding NAME]\n"
	"            check appendix files exactly as the agent and the collector do\n"
	"  check     --db DIR   verify the store: incremental rollups equal a recomputation\n"
	"\n"
	"common options:\n"
	"  --db DIR            the collector's store, opened read-only (safe while it runs)\n"
	"  --defs DIR          appendix definitions (default: %s)\n"
	"  -a, --appendix ID   PL1, PL2, PL3\n"
	"  -p, --period P      2021, 2021-Q2, 2021-H1, 2021-06\n"
	"  -f, --format F      table (default), csv, json, xlsx (needs -o)\n"
	"  -o, --output FILE   write to FILE instead of standard output\n"
	"  --excel             csv with a UTF-8 BOM, for Excel\n"
	"  -h, --help          this text;  -V, --version\n"
	"\n"
	"Exit codes: 0 ok, 1 a check failed or a file is invalid, 2 usage, 3 data unavailable.\n",
	TH_SOURCE_APPENDICES);
}

static const struct option long_opts[] = {
	{"db", 1, 0, 'd'}, {"defs", 1, 0, 'D'}, {"units", 1, 0, 'U'}, {"appendix", 1, 0, 'a'},
	{"period", 1, 0, 'p'}, {"unit", 1, 0, 'u'}, {"parent", 1, 0, 'P'}, {"level", 1, 0, 'l'},
	{"own", 0, 0, 'O'}, {"columns", 1, 0, 'c'}, {"format", 1, 0, 'f'}, {"output", 1, 0, 'o'},
	{"history", 0, 0, 'H'}, {"tree", 1, 0, 't'}, {"versions", 0, 0, 'v'}, {"encoding", 1, 0, 'e'},
	{"excel", 0, 0, 'x'}, {"help", 0, 0, 'h'}, {"version", 0, 0, 'V'}, {0, 0, 0, 0}};

static th_defset *load_defs(const opts *o)
{
	th_defset *defs = NULL;
	th_diag *d = th_diag_new();
	if (th_defset_load_dir(o->defs, &defs, d) != 0) {
		for (size_t i = 0; i < th_diag_count(d); i++)
			fprintf(stderr, "tonghop: %s\n", th_diag_text(d, i));
		fprintf(stderr, "tonghop: cannot load the appendix definitions of %s\n", o->defs);
	}
	th_diag_destroy(&d);
	return defs;
}

static th_store *open_store(const opts *o, const th_defset *defs)
{
	if (!o->db) {
		fprintf(stderr, "tonghop: --db DIR is required (the collector's store directory)\n");
		return NULL;
	}
	th_store_opts so = {.readonly = 1};
	th_store *s = NULL;
	int rc = th_store_open(o->db, &so, &s);
	if (rc != 0) {
		fprintf(stderr, "tonghop: cannot open the store %s: %s\n", o->db, th_strerror(rc));
		return NULL;
	}
	th_store_set_defs(s, defs);
	return s;
}

static FILE *open_out(const opts *o)
{
	if (!o->out || o->fmt == TH_FMT_XLSX)
		return stdout;
	FILE *f = fopen(o->out, "w");
	if (!f)
		fprintf(stderr, "tonghop: cannot write %s: %s\n", o->out, strerror(errno));
	return f;
}

static int emit(const opts *o, th_table *t, const char *const *keys, const char *sheet)
{
	FILE *f = open_out(o);
	if (!f)
		return 3;
	int rc = th_table_write(t, o->fmt, f, o->out, o->excel, keys, sheet);
	if (f != stdout)
		fclose(f);
	return rc ? 3 : 0;
}

/* --- value formatting ----------------------------------------------------------- */

static void fmt_scaled(int64_t v, int scale, char *buf, size_t cap)
{
	char b[32];
	th_fmt_dec(v, scale, 0, b);
	snprintf(buf, cap, "%s", b);
}

static void fmt_ratio(int64_t num, int64_t den, char *buf, size_t cap)
{
	if (den == 0) {
		snprintf(buf, cap, "—");
		return;
	}
	/* one decimal, rounded half away from zero, in integer arithmetic */
	__int128 x = (__int128)num * 1000 / den;
	__int128 r = (__int128)num * 1000 % den;
	if (2 * (r < 0 ? -r : r) >= (den < 0 ? -den : den))
		x += (x < 0 || (x == 0 && num < 0)) ? -1 : 1;
	long long q = (long long)x;
	snprintf(buf, cap, "%s%lld.%lld%%", q < 0 ? "-" : "", (q < 0 ? -q : q) / 10, (q < 0 ? -q : q) % 10);
}

/* --- rollup ---------------------------------------------------------------------- */

typedef struct {
	int kind;       /* 0 column value, 1 count_by value, 2 ratio */
	size_t idx;     /* column or ratio index */
	size_t k;       /* enum value for count_by */
	char id[160];
	char title[512];
} colspec;

static int add_spec(colspec **cs, size_t *n, colspec c)
{
	colspec *x = realloc(*cs, (*n + 1) * sizeof *x);
	if (!x)
		return -1;
	*cs = x;
	x[(*n)++] = c;
	return 0;
}

static void spec_for_column(const th_def *d, size_t c, colspec **cs, size_t *n)
{
	const th_column *col = &d->cols[c];
	if (col->rollup == TH_ROLL_COUNT_BY) {
		for (size_t k = 0; k < col->n_values; k++) {
			colspec s = {.kind = 1, .idx = c, .k = k};
			snprintf(s.id, sizeof s.id, "%s:%s", col->id, col->values[k].code);
			snprintf(s.title, sizeof s.title, "%s", col->values[k].title);
			add_spec(cs, n, s);
		}
	} else if (col->rollup != TH_ROLL_NONE) {
		colspec s = {.kind = 0, .idx = c};
		snprintf(s.id, sizeof s.id, "%s", col->id);
		snprintf(s.title, sizeof s.title, "%s", col->id);
		add_spec(cs, n, s);
	}
}

static int choose_columns(const th_def *d, const char *list, colspec **cs, size_t *n)
{
	if (list) {
		char *copy = strdup(list), *save = NULL;
		for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
			long c = th_def_column(d, t);
			int found = 0;
			if (c >= 0) {
				spec_for_column(d, (size_t)c, cs, n);
				found = 1;
			}
			for (size_t r = 0; !found && r < d->n_ratios; r++)
				if (strcmp(d->ratios[r].id, t) == 0) {
					colspec s = {.kind = 2, .idx = r};
					snprintf(s.id, sizeof s.id, "%s", d->ratios[r].id);
					snprintf(s.title, sizeof s.title, "%s", d->ratios[r].id);
					add_spec(cs, n, s);
					found = 1;
				}
			if (!found) {
				fprintf(stderr, "tonghop: --columns: %s is not a column or ratio of %s\n", t, d->id);
				free(copy);
				return -1;
			}
		}
		free(copy);
		return 0;
	}
	/* default: the first six summed or counted columns, then every ratio */
	size_t shown = 0;
	for (size_t c = 0; c < d->n_cols && shown < 6; c++)
		if (d->cols[c].rollup == TH_ROLL_SUM || d->cols[c].rollup == TH_ROLL_COUNT_BY ||
		    d->cols[c].rollup == TH_ROLL_COUNT_TRUE) {
			spec_for_column(d, c, cs, n);
			shown++;
		}
	for (size_t r = 0; r < d->n_ratios; r++) {
		colspec s = {.kind = 2, .idx = r};
		snprintf(s.id, sizeof s.id, "%s", d->ratios[r].id);
		snprintf(s.title, sizeof s.title, "%s", d->ratios[r].id);
		add_spec(cs, n, s);
	}
	return 0;
}

static void fill_values(th_table *t, long row, size_t first, const th_def *d, const colspec *cs,
                        size_t n, const int64_t *v)
{
	char buf[64];
	for (size_t i = 0; i < n; i++) {
		const colspec *s = &cs[i];
		if (s->kind == 2) {
			int64_t num, den;
			if (th_rollup_ratio(d, v, s->idx, &num, &den) == 0) {
				fmt_ratio(num, den, buf, sizeof buf);
				th_table_set(t, (size_t)row, first + i, buf);
			}
			continue;
		}
		const th_column *col = &d->cols[s->idx];
		int is_null = 0;
		int64_t x = th_rollup_value(d, v, s->idx, &is_null);
		if (is_null)
			continue;
		if (s->kind == 1)
			x = v[col->slot + s->k];
		if (col->type == TH_T_DEC)
			fmt_scaled(x, col->scale, buf, sizeof buf);
		else if (col->type == TH_T_DATE && (col->rollup == TH_ROLL_MIN || col->rollup == TH_ROLL_MAX))
			th_fmt_date((int32_t)x, 1, buf);
		else
			snprintf(buf, sizeof buf, "%lld", (long long)x);
		th_table_set(t, (size_t)row, first + i, buf);
	}
}

typedef struct {
	th_table *t;
	const th_def *d;
	const colspec *cs;
	size_t n;
	int own;
	int64_t *sum;
	int overflow;
} rollup_ctx;

static int rollup_cb(void *ctx, const th_unit *u, const th_node *node)
{
	rollup_ctx *c = ctx;
	long row = th_table_row(c->t);
	if (row < 0)
		return TH_ENOMEM;
	th_table_set(c->t, (size_t)row, 0, u->code);
	th_table_set(c->t, (size_t)row, 1, u->name);
	th_table_setf(c->t, (size_t)row, 2, "%u/%u", node->reported, node->expected);
	const int64_t *v = c->own ? node->own : node->total;
	if (v) {
		fill_values(c->t, row, 3, c->d, c->cs, c->n, v);
		if (th_rollup_add(c->d, c->sum, v) != 0)
			c->overflow = 1;
	}
	return 0;
}

static int cmd_rollup(opts *o)
{
	if (!o->appendix || !o->period) {
		fprintf(stderr, "tonghop rollup: --appendix and --period are required\n");
		return 2;
	}
	th_defset *defs = load_defs(o);
	if (!defs)
		return 3;
	const th_def *d = th_defset_latest(defs, o->appendix);
	if (!d) {
		fprintf(stderr, "tonghop: unknown appendix %s\n", o->appendix);
		th_defset_destroy(&defs);
		return 2;
	}
	th_store *s = open_store(o, defs);
	if (!s) {
		th_defset_destroy(&defs);
		return 3;
	}
	colspec *cs = NULL;
	size_t n = 0;
	int rc = 0;
	if (choose_columns(d, o->columns, &cs, &n) != 0) {
		rc = 2;
		goto out;
	}
	th_table *t = th_table_new(3 + n);
	const char **keys = calloc(3 + n, sizeof *keys);
	th_table_header(t, 0, "unit", 0);
	th_table_header(t, 1, "name", 0);
	th_table_header(t, 2, "reported", 1);
	keys[0] = "unit";
	keys[1] = "name";
	keys[2] = "reported";
	for (size_t i = 0; i < n; i++) {
		th_table_header(t, 3 + i, cs[i].id, 1);
		keys[3 + i] = cs[i].id;
	}
	rollup_ctx c = {.t = t, .d = d, .cs = cs, .n = n, .own = o->own};
	c.sum = calloc(d->n_slots, sizeof *c.sum);
	th_rollup_zero(d, c.sum);
	int level = o->level ? o->level : 2;
	int r = th_store_level(s, o->appendix, o->period, (uint32_t)level, o->parent, rollup_cb, &c);
	if (r != 0) {
		fprintf(stderr, "tonghop: %s %s: %s\n", o->appendix, o->period, th_strerror(r));
		rc = 3;
	} else {
		long row = th_table_row(t);
		th_table_set(t, (size_t)row, 0, "TOTAL");
		th_table_setf(t, (size_t)row, 1, "%s (%zu units)", o->parent ? o->parent : "all",
		              th_table_rows(t) - 1);
		if (!c.overflow)
			fill_values(t, row, 3, d, cs, n, c.sum);
		if (o->fmt == TH_FMT_TABLE && !o->out)
			printf("%s %s, %s, %s\n", d->id, o->period, o->own ? "own figures" : "subtree totals",
			       o->parent ? o->parent : "by level");
		rc = emit(o, t, keys, d->id);
	}
	free(c.sum);
	free(keys);
	th_table_destroy(&t);
out:
	free(cs);
	th_store_close(&s);
	th_defset_destroy(&defs);
	return rc;
}

/* --- status ---------------------------------------------------------------------- */

static int status_cb(void *ctx, const th_unit *u, const th_node *n)
{
	th_table *t = ctx;
	long row = th_table_row(t);
	th_table_set(t, (size_t)row, 0, u->code);
	th_table_set(t, (size_t)row, 1, u->name);
	th_table_setf(t, (size_t)row, 2, "%u", n->expected);
	th_table_setf(t, (size_t)row, 3, "%u", n->reported);
	th_table_setf(t, (size_t)row, 4, "%u", n->on_time);
	th_table_setf(t, (size_t)row, 5, "%u", n->late);
	th_table_setf(t, (size_t)row, 6, "%u", n->expected > n->reported ? n->expected - n->reported : 0);
	return 0;
}

static int missing_cb(void *ctx, const th_unit *u, const th_node *n)
{
	(void)n;
	th_table *t = ctx;
	long row = th_table_row(t);
	th_table_set(t, (size_t)row, 0, u->code);
	th_table_set(t, (size_t)row, 1, u->name);
	th_table_set(t, (size_t)row, 2, u->parent_code);
	th_table_set(t, (size_t)row, 3, u->person);
	th_table_set(t, (size_t)row, 4, u->phone);
	th_table_set(t, (size_t)row, 5, u->email);
	return 0;
}

static int cmd_status(opts *o)
{
	if (!o->appendix || !o->period) {
		fprintf(stderr, "tonghop status: --appendix and --period are required\n");
		return 2;
	}
	th_defset *defs = load_defs(o);
	if (!defs)
		return 3;
	th_store *s = open_store(o, defs);
	if (!s) {
		th_defset_destroy(&defs);
		return 3;
	}
	int rc = 0;
	th_table *t = th_table_new(7);
	const char *h[] = {"unit", "name", "expected", "reported", "on_time", "late", "missing"};
	for (int i = 0; i < 7; i++)
		th_table_header(t, (size_t)i, h[i], i >= 2);
	int r = th_store_level(s, o->appendix, o->period, (uint32_t)(o->level ? o->level : 2), o->parent,
	                       status_cb, t);
	th_table *m = th_table_new(6);
	const char *mh[] = {"unit", "name", "parent", "person", "phone", "email"};
	for (int i = 0; i < 6; i++)
		th_table_header(m, (size_t)i, mh[i], 0);
	if (r == 0)
		r = th_store_missing(s, o->appendix, o->period, o->unit, missing_cb, m);
	if (r != 0) {
		fprintf(stderr, "tonghop: %s %s: %s\n", o->appendix, o->period, th_strerror(r));
		rc = 3;
	} else if (o->fmt == TH_FMT_TABLE) {
		printf("Completeness of %s %s by level %d\n", o->appendix, o->period, o->level ? o->level : 2);
		th_table_write(t, TH_FMT_TABLE, stdout, NULL, 0, NULL, NULL);
		printf("\nMissing units (%zu):\n", th_table_rows(m));
		th_table_write(m, TH_FMT_TABLE, stdout, NULL, 0, NULL, NULL);
	} else if (o->fmt == TH_FMT_JSON) {
		FILE *f = open_out(o);
		if (f) {
			fputs("{\"levels\": ", f);
			th_table_write(t, TH_FMT_JSON, f, NULL, 0, NULL, NULL);
			fputs(", \"missing\": ", f);
			th_table_write(m, TH_FMT_JSON, f, NULL, 0, NULL, NULL);
			fputs("}\n", f);
			if (f != stdout)
				fclose(f);
		}
	} else {
		/* csv / xlsx: the missing list, the part people act on */
		rc = emit(o, m, NULL, "missing");
	}
	th_table_destroy(&t);
	th_table_destroy(&m);
	th_store_close(&s);
	th_defset_destroy(&defs);
	return rc;
}

/* --- report / history ------------------------------------------------------------ */

static void cell_text(const th_def *d, size_t c, const th_value *v, char *buf, size_t cap)
{
	const th_column *col = &d->cols[c];
	if (v->null) {
		buf[0] = 0;
		return;
	}
	switch (col->type) {
	case TH_T_INT: snprintf(buf, cap, "%lld", (long long)v->i); break;
	case TH_T_DEC: fmt_scaled(v->i, col->scale, buf, cap); break;
	case TH_T_DATE: { char b[32]; th_fmt_date((int32_t)v->i, 0, b); snprintf(buf, cap, "%s", b); break; }
	case TH_T_BOOL: snprintf(buf, cap, "%s", v->i ? "có" : "không"); break;
	case TH_T_ENUM:
		snprintf(buf, cap, "%s", v->i >= 0 && (size_t)v->i < col->n_values ? col->values[v->i].code : "?");
		break;
	case TH_T_TEXT: snprintf(buf, cap, "%s", v->s ? v->s : ""); break;
	}
}

static int row_key_eq(const th_def *d, const th_report *a, size_t ra, const th_report *b, size_t rb)
{
	for (size_t k = 0; k < d->n_key; k++) {
		size_t c = d->key_cols[k];
		if (th_value_cmp(th_report_cell(a, ra, c), th_report_cell(b, rb, c), d->cols[c].type))
			return 0;
	}
	return 1;
}

static void row_label(const th_def *d, const th_report *r, size_t row, char *buf, size_t cap)
{
	if (!d->n_key) {
		snprintf(buf, cap, "row");
		return;
	}
	size_t o = 0;
	buf[0] = 0;
	for (size_t k = 0; k < d->n_key && o < cap; k++) {
		char v[256];
		cell_text(d, d->key_cols[k], th_report_cell(r, row, d->key_cols[k]), v, sizeof v);
		o += (size_t)snprintf(buf + o, cap - o, "%s%s", k ? "/" : "", v);
	}
}

typedef struct {
	const th_def *d;
	th_report *prev;
	int n;
} hist_ctx;

static int hist_cb(void *ctx, const th_revision_info *info, const th_report *r)
{
	hist_ctx *h = ctx;
	char when[64];
	time_t t = (time_t)(info->commit_time / 1000000);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
	printf("rev %llu  %s  commit %llu  by %s%s\n", (unsigned long long)info->rev, when,
	       (unsigned long long)info->commit, info->sender, info->tombstone ? "  WITHDRAWN" : "");
	const th_def *d = h->d;
	if (!h->prev) {
		printf("    first revision: %zu rows\n", r ? r->n_rows : 0);
	} else if (r) {
		int changes = 0;
		for (size_t i = 0; i < r->n_rows; i++) {
			long match = -1;
			for (size_t j = 0; j < h->prev->n_rows && match < 0; j++)
				if (row_key_eq(d, r, i, h->prev, j))
					match = (long)j;
			char label[256];
			row_label(d, r, i, label, sizeof label);
			if (match < 0) {
				printf("    + %s added\n", label);
				changes++;
				continue;
			}
			for (size_t c = 0; c < d->n_cols; c++) {
				const th_value *a = th_report_cell(h->prev, (size_t)match, c), *b = th_report_cell(r, i, c);
				if (a->null == b->null && (a->null || th_value_cmp(a, b, d->cols[c].type) == 0))
					continue;
				char x[256], y[256];
				cell_text(d, c, a, x, sizeof x);
				cell_text(d, c, b, y, sizeof y);
				printf("    ~ %s %s: %s -> %s\n", label, d->cols[c].id, a->null ? "(empty)" : x,
				       b->null ? "(empty)" : y);
				changes++;
			}
		}
		for (size_t j = 0; j < h->prev->n_rows; j++) {
			int found = 0;
			for (size_t i = 0; i < r->n_rows && !found; i++)
				found = row_key_eq(d, r, i, h->prev, j);
			if (!found) {
				char label[256];
				row_label(d, h->prev, j, label, sizeof label);
				printf("    - %s removed\n", label);
				changes++;
			}
		}
		if (!changes)
			printf("    no change of content\n");
	}
	th_report_destroy(&h->prev);
	h->prev = r ? th_report_clone(r) : NULL;
	h->n++;
	return 0;
}

static int cmd_report(opts *o, int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: tonghop report --db DIR UNIT APPENDIX PERIOD [--history]\n");
		return 2;
	}
	const char *unit = argv[0], *app = argv[1], *period = argv[2];
	th_defset *defs = load_defs(o);
	if (!defs)
		return 3;
	th_store *s = open_store(o, defs);
	if (!s) {
		th_defset_destroy(&defs);
		return 3;
	}
	int rc = 0;
	th_report *r = NULL;
	th_revision_info info;
	memset(&info, 0, sizeof info);
	int g = th_store_get_report(s, unit, app, period, &r, &info);
	const th_def *d = r ? th_defset_get(defs, r->appendix, r->version) : th_defset_latest(defs, app);
	if (g != 0 || !d) {
		fprintf(stderr, "tonghop: no report of %s %s %s in the store (%s)\n", unit, app, period,
		        th_strerror(g));
		rc = 3;
	} else if (o->history) {
		hist_ctx h = {.d = d};
		rc = th_store_history(s, unit, app, period, hist_cb, &h) ? 3 : 0;
		th_report_destroy(&h.prev);
	} else {
		if (o->fmt == TH_FMT_TABLE)
			printf("%s %s %s, rev %llu, by %s%s\n", unit, app, period, (unsigned long long)info.rev,
			       info.sender, info.tombstone ? " (withdrawn)" : "");
		th_table *t;
		char buf[4096];
		if (d->n_key == 0 && o->fmt == TH_FMT_TABLE) {
			t = th_table_new(3);
			th_table_header(t, 0, "column", 0);
			th_table_header(t, 1, "title", 0);
			th_table_header(t, 2, "value", 1);
			for (size_t c = 0; c < d->n_cols && r->n_rows; c++) {
				long row = th_table_row(t);
				th_table_set(t, (size_t)row, 0, d->cols[c].id);
				th_table_set(t, (size_t)row, 1, d->cols[c].title);
				cell_text(d, c, th_report_cell(r, 0, c), buf, sizeof buf);
				th_table_set(t, (size_t)row, 2, th_report_cell(r, 0, c)->null ? NULL : buf);
			}
		} else {
			t = th_table_new(d->n_cols);
			for (size_t c = 0; c < d->n_cols; c++)
				th_table_header(t, c, d->cols[c].id,
				                d->cols[c].type == TH_T_INT || d->cols[c].type == TH_T_DEC);
			for (size_t i = 0; i < r->n_rows; i++) {
				long row = th_table_row(t);
				for (size_t c = 0; c < d->n_cols; c++) {
					cell_text(d, c, th_report_cell(r, i, c), buf, sizeof buf);
					th_table_set(t, (size_t)row, c, th_report_cell(r, i, c)->null ? NULL : buf);
				}
			}
		}
		rc = emit(o, t, NULL, d->id);
		th_table_destroy(&t);
	}
	th_report_destroy(&r);
	th_store_close(&s);
	th_defset_destroy(&defs);
	return rc;
}

/* --- units ------------------------------------------------------------------------ */

static void draw(const th_units *u, size_t i, const char *prefix, int last, int root)
{
	const th_unit *x = th_units_at(u, i);
	printf("%s%s%s  %s  [%s]", prefix, root ? "" : (last ? "└─ " : "├─ "), x->code, x->name, x->kind);
	if (x->person[0] || x->phone[0] || x->email[0])
		printf("  %s %s %s", x->person, x->phone, x->email);
	printf("\n");
	char np[1024];
	snprintf(np, sizeof np, "%s%s", prefix, root ? "" : (last ? "   " : "│  "));
	for (uint32_t k = 0; k < x->n_children; k++)
		draw(u, x->children[k], np, k + 1 == x->n_children, 0);
}

static int cmd_units(opts *o)
{
	th_units *own = NULL;
	const th_units *u = NULL;
	th_store *s = NULL;
	th_defset *defs = NULL;
	if (o->units) {
		th_diag *d = th_diag_new();
		if (th_units_load(o->units, &own, d) != 0) {
			for (size_t i = 0; i < th_diag_count(d); i++)
				fprintf(stderr, "tonghop: %s\n", th_diag_text(d, i));
			th_diag_destroy(&d);
			return 1;
		}
		th_diag_destroy(&d);
		u = own;
	} else {
		defs = load_defs(o);
		s = defs ? open_store(o, defs) : NULL;
		if (!s) {
			th_defset_destroy(&defs);
			return 3;
		}
		u = th_store_current_hierarchy(s);
		if (!u) {
			fprintf(stderr, "tonghop: the store holds no hierarchy yet\n");
			th_store_close(&s);
			th_defset_destroy(&defs);
			return 3;
		}
	}
	int rc = 0;
	if (o->tree) {
		long i = th_units_find(u, o->tree);
		if (i < 0) {
			fprintf(stderr, "tonghop: unknown unit %s in hierarchy %s\n", o->tree, th_units_version(u));
			rc = 1;
		} else {
			printf("hierarchy %s\n", th_units_version(u));
			draw(u, (size_t)i, "", 1, 1);
		}
	} else {
		th_table *t = th_table_new(7);
		const char *h[] = {"code", "parent", "kind", "level", "name", "person", "phone"};
		for (int k = 0; k < 7; k++)
			th_table_header(t, (size_t)k, h[k], k == 3);
		for (size_t i = 0; i < th_units_count(u); i++) {
			const th_unit *x = th_units_at(u, i);
			long row = th_table_row(t);
			th_table_set(t, (size_t)row, 0, x->code);
			th_table_set(t, (size_t)row, 1, x->parent_code);
			th_table_set(t, (size_t)row, 2, x->kind);
			th_table_setf(t, (size_t)row, 3, "%u", x->depth);
			th_table_set(t, (size_t)row, 4, x->name);
			th_table_set(t, (size_t)row, 5, x->person);
			th_table_set(t, (size_t)row, 6, x->phone);
		}
		rc = emit(o, t, NULL, "units");
		th_table_destroy(&t);
	}
	th_units_destroy(&own);
	th_store_close(&s);
	th_defset_destroy(&defs);
	return rc;
}

/* --- validate / check ---------------------------------------------------------------- */

static int cmd_validate(opts *o, int argc, char **argv)
{
	if (argc < 1) {
		fprintf(stderr, "usage: tonghop validate FILE... [--defs DIR] [--unit CODE] [--period P]\n");
		return 2;
	}
	th_defset *defs = load_defs(o);
	if (!defs)
		return 3;
	int bad = 0;
	for (int i = 0; i < argc; i++) {
		th_diag *d = th_diag_new();
		th_report *r = NULL;
		th_csv_opts co = {.unit = o->unit, .period = o->period, .appendix = o->appendix,
		                  .encoding = o->encoding};
		int rc = th_csv_read_report(argv[i], defs, &co, &r, d);
		for (size_t k = 0; k < th_diag_count(d); k++)
			fprintf(rc ? stderr : stdout, "%s\n", th_diag_text(d, k));
		if (rc) {
			fprintf(stderr, "%s: INVALID (%zu problems)\n", argv[i], th_diag_errors(d));
			bad = 1;
		} else {
			printf("%s: OK (%s version %u, unit %s, period %s, %zu rows)\n", argv[i], r->appendix,
			       r->version, r->unit, r->period, r->n_rows);
		}
		th_report_destroy(&r);
		th_diag_destroy(&d);
	}
	th_defset_destroy(&defs);
	return bad;
}

static int cmd_check(opts *o)
{
	th_defset *defs = load_defs(o);
	if (!defs)
		return 3;
	th_store *s = open_store(o, defs);
	if (!s) {
		th_defset_destroy(&defs);
		return 3;
	}
	th_diag *d = th_diag_new();
	int rc = th_store_verify(s, d);
	for (size_t i = 0; i < th_diag_count(d); i++)
		printf("%s\n", th_diag_text(d, i));
	th_store_stats st = {0};
	th_store_stats_get(s, &st);
	if (rc == 0)
		printf("store OK: %llu reports, %llu revisions, %llu commits; rollups equal a recomputation\n",
		       (unsigned long long)st.reports, (unsigned long long)st.revisions,
		       (unsigned long long)st.commits);
	else
		printf("store has PROBLEMS (%s)\n", th_strerror(rc));
	th_diag_destroy(&d);
	th_store_close(&s);
	th_defset_destroy(&defs);
	return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("tonghop %s\n", TH_VERSION);
		return 0;
	}
	const char *cmd = argv[1];
	opts o = {0};
	o.defs = TH_SOURCE_APPENDICES;
	const char *env = getenv("TONGHOP_DB");
	if (env && *env)
		o.db = env;
	optind = 2;
	int ch;
	while ((ch = getopt_long(argc, argv, "a:p:u:l:f:o:hV", long_opts, NULL)) != -1) {
		switch (ch) {
		case 'd': o.db = optarg; break;
		case 'D': o.defs = optarg; break;
		case 'U': o.units = optarg; break;
		case 'a': o.appendix = optarg; break;
		case 'p': o.period = optarg; break;
		case 'u': o.unit = optarg; break;
		case 'P': o.parent = optarg; break;
		case 'l': o.level = atoi(optarg); if (o.level < 1) { fprintf(stderr, "tonghop: --level is 1 (root) or more\n"); return 2; } break;
		case 'O': o.own = 1; break;
		case 'c': o.columns = optarg; break;
		case 'f': o.format = optarg; break;
		case 'o': o.out = optarg; break;
		case 'H': o.history = 1; break;
		case 't': o.tree = optarg; break;
		case 'v': o.versions = 1; break;
		case 'e': o.encoding = optarg; break;
		case 'x': o.excel = 1; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("tonghop %s\n", TH_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (o.format) {
		int f = th_format_parse(o.format);
		if (f < 0) {
			fprintf(stderr, "tonghop: --format is table, csv, json or xlsx\n");
			return 2;
		}
		o.fmt = (th_format)f;
	}
	if (o.fmt == TH_FMT_XLSX && !o.out) {
		fprintf(stderr, "tonghop: --format xlsx needs -o FILE\n");
		return 2;
	}
	int rest = argc - optind;
	char **rv = argv + optind;
	if (!strcmp(cmd, "rollup"))
		return rest ? 2 : cmd_rollup(&o);
	if (!strcmp(cmd, "status"))
		return rest ? 2 : cmd_status(&o);
	if (!strcmp(cmd, "report"))
		return cmd_report(&o, rest, rv);
	if (!strcmp(cmd, "units"))
		return rest ? 2 : cmd_units(&o);
	if (!strcmp(cmd, "validate"))
		return cmd_validate(&o, rest, rv);
	if (!strcmp(cmd, "check"))
		return rest ? 2 : cmd_check(&o);
	fprintf(stderr, "tonghop: unknown command \"%s\" (see tonghop --help)\n", cmd);
	return 2;
}

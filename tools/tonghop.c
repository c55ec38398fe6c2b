/* tonghop -- the command line for inspectors and leaders: rollup tables per
 * level, completeness, a unit's reports and their history, the hierarchy,
 * offline validation of appendix files, and a store integrity check.
 *
 * Data source: --db DIR opens the collector's LMDB store read-only (LMDB
 * allows readers in other processes while the collector writes).
 * Exit codes: 0 ok, 1 a problem was found or a runtime failure, 2 usage. */
#include "out.h"
#include "tonghop.h"
#include "th_csv.h"
#include "th_def.h"
#include "th_report.h"
#include "th_rollup.h"
#include "th_store.h"
#include "th_units.h"
#include "th_value.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EXIT_USAGE 2

/* --- shared state and helpers ------------------------------------------------ */
typedef struct opts {
	const char *db, *defs_dir, *units_file, *appendix, *period, *parent, *columns, *out_path;
	const char *unit, *tree, *sheet, *pub, *key, *server_key, *collector, *submit;
	long level, count;
	int level_set, insecure;
	int own, history, versions, excel;
	th_format fmt;
} opts;

static const char *prog = "tonghop";

static void die_usage(const char *cmd, const char *msg)
{
	fprintf(stderr, "%s %s: %s\n(try `%s %s --help')\n", prog, cmd, msg, prog, cmd);
	exit(EXIT_USAGE);
}

static th_defset *load_defs(const char *dir)
{
	th_diag *diag = th_diag_new();
	th_defset *defs = NULL;
	int rc = th_defset_load_dir(dir ? dir : th_def_default_dir(), &defs, diag);
	if (rc != 0) {
		for (size_t i = 0; diag && i < th_diag_count(diag); i++)
			fprintf(stderr, "%s\n", th_diag_text(diag, i));
		fprintf(stderr, "%s: cannot load definitions from %s: %s\n", prog,
		        dir ? dir : th_def_default_dir(), th_strerror(rc));
		defs = NULL;
	}
	th_diag_destroy(&diag);
	return defs;
}

static th_store *open_store(const char *dir, const th_defset *defs)
{
	th_store_opts so = {.readonly = 1};
	th_store *s = NULL;
	int rc = th_store_open(dir, &so, &s);
	if (rc != 0) {
		fprintf(stderr, "%s: cannot open store %s: %s\n", prog, dir, th_strerror(rc));
		return NULL;
	}
	if (defs && (rc = th_store_set_defs(s, defs)) != 0) {
		fprintf(stderr, "%s: store %s: definitions: %s\n", prog, dir, th_strerror(rc));
		th_store_close(&s);
	}
	return s;
}

/* The hierarchy a period uses (its binding, else the newest version). */
static const th_units *hierarchy_of(th_store *s, const char *period)
{
	const th_units *u = NULL;
	if (period && th_store_hierarchy_for(s, period, &u) == 0 && u)
		return u;
	return th_store_current_hierarchy(s);
}

static void fmt_time(int64_t us, char *buf, size_t cap)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, cap, "%" PRId64, us);
}

/* Text of a cell for people (vn != 0: decimal comma, dd/mm/yyyy) or for
 * programs (machine form).  NULL for null. buf holds 32 bytes. */
static const char *cell_text(const th_column *c, const th_value *v, int vn, char *buf)
{
	if (v->null)
		return NULL;
	switch (c->type) {
	case TH_T_INT:
		return th_fmt_int(v->i, buf);
	case TH_T_DEC:
		return th_fmt_dec(v->i, c->scale, vn, buf);
	case TH_T_DATE:
		return th_fmt_date((int32_t)v->i, !vn, buf);
	case TH_T_BOOL:
		return vn ? (v->i ? "có" : "không") : (v->i ? "true" : "false");
	case TH_T_ENUM:
		if (v->i >= 0 && (size_t)v->i < c->n_values)
			return c->values[v->i].code;
		return th_fmt_int(v->i, buf);
	case TH_T_TEXT:
		return v->s ? v->s : "";
	}
	return NULL;
}

static int output_table(const th_table *t, const opts *o, const char *const *keys)
{
	FILE *f = stdout;
	if (o->out_path && o->fmt != TH_FMT_XLSX) {
		f = fopen(o->out_path, "w");
		if (!f) {
			fprintf(stderr, "%s: cannot write %s\n", prog, o->out_path);
			return 1;
		}
	}
	int rc = th_table_write(t, o->fmt, f, o->out_path, o->excel, keys,
	                        o->sheet ? o->sheet : "tonghop");
	if (f != stdout && fclose(f) != 0)
		rc = -1;
	fflush(stdout);
	return rc ? 1 : 0;
}

/* --- data source: the store (--db) or the collector's query socket ------ */
typedef struct src {
	th_store *s;
	th_qc *q;
	const th_def *d;
} src;

static int src_open(src *x, const opts *o, const th_defset *defs, const th_def *d)
{
	x->d = d;
	if (o->collector) {
		char why[300];
		x->q = th_qc_new(o->collector, o->key, o->server_key, o->insecure, why, sizeof why);
		if (!x->q)
			fprintf(stderr, "%s: collector %s: %s\n", prog, o->collector, why);
		return x->q ? 0 : -1;
	}
	x->s = open_store(o->db, defs);
	return x->s ? 0 : -1;
}

/* The definition a period's rollups are laid out by: the version the period is bound to
 * (a later version of the appendix may be loaded), else d. */
static const th_def *src_def(src *x, const th_defset *defs, const opts *o, const th_def *d)
{
	if (!o->appendix || !o->period)
		return d;
	if (x->s) {
		const th_def *b = th_store_def_for(x->s, o->appendix, o->period);
		return b ? b : d;
	}
	uint32_t v;
	if (x->q && th_qc_definition(x->q, o->appendix, o->period, &v) == 0) {
		const th_def *b = th_defset_get(defs, o->appendix, v);
		if (b)
			return b;
		fprintf(stderr, "%s: the collector uses %s version %u for %s, which --defs lacks\n", prog,
		        o->appendix, v, o->period);
	}
	return d;
}

static void src_close(src *x)
{
	th_qc_destroy(&x->q);
	th_store_close(&x->s);
}

static const char *src_error(const src *x, int rc)
{
	return x->q ? th_qc_error(x->q) : th_strerror(rc);
}

static int src_level(src *x, const char *a, const char *p, uint32_t level, const char *parent,
                     th_node_cb cb, void *ctx)
{
	return x->q ? th_qc_level(x->q, x->d, a, p, level, parent, cb, ctx)
	            : th_store_level(x->s, a, p, level, parent, cb, ctx);
}

static int src_missing(src *x, const char *a, const char *p, const char *unit, th_node_cb cb,
                       void *ctx)
{
	return x->q ? th_qc_missing(x->q, a, p, unit, cb, ctx) : th_store_missing(x->s, a, p, unit, cb, ctx);
}

static int src_node(src *x, const char *a, const char *p, const char *unit, th_node *out)
{
	memset(out, 0, sizeof *out);
	return x->q ? th_qc_node(x->q, x->d, a, p, unit, out, NULL) : th_store_get_node(x->s, a, p, unit, out);
}

/* The unit a table is about: CODE (--parent/--unit) or the root; its name
 * and depth, and the depth of the rows (child_level).  Checks level against
 * the hierarchy.  Returns 0, 1 (failure) or EXIT_USAGE. */
typedef struct topinfo {
	char code[TH_CODE_MAX + 1];
	char name[512];
	uint32_t depth;
	const th_units *u;      /* store mode only */
} topinfo;

static int root_cb(void *ctx, const th_unit *u, const th_node *n)
{
	(void)n;
	topinfo *t = ctx;
	snprintf(t->code, sizeof t->code, "%s", u->code);
	snprintf(t->name, sizeof t->name, "%s", u->name);
	t->depth = 1;
	return 1;    /* the first row is enough */
}

static int find_top(src *x, const opts *o, const char *code, uint32_t *level, topinfo *t)
{
	memset(t, 0, sizeof *t);
	if (x->q) {
		if (code) {
			th_node n;
			char *name = NULL;
			int rc = th_qc_node(x->q, x->d, o->appendix, o->period, code, &n, &name);
			if (rc) {
				fprintf(stderr, "%s: %s: %s\n", prog, code, th_qc_error(x->q));
				return 1;
			}
			snprintf(t->code, sizeof t->code, "%s", code);
			/* the node answer may carry no name: show the code then */
			snprintf(t->name, sizeof t->name, "%s", name && *name ? name : code);
			t->depth = n.level;
			*level = n.level + 1;
			free(name);
			th_node_free(&n);
			return 0;
		}
		int rc = th_qc_level(x->q, x->d, o->appendix, o->period, 1, NULL, root_cb, t);
		if (rc < 0 || !t->code[0]) {
			fprintf(stderr, "%s: reading the root: %s\n", prog, th_qc_error(x->q));
			return 1;
		}
		return 0;
	}
	const th_units *u = hierarchy_of(x->s, o->period);
	if (!u) {
		fprintf(stderr, "%s: store %s has no hierarchy\n", prog, o->db);
		return 1;
	}
	t->u = u;
	long i = code ? th_units_find(u, code) : (long)th_units_root(u);
	if (i < 0) {
		fprintf(stderr, "%s: unknown unit %s\n", prog, code);
		return 1;
	}
	const th_unit *n = th_units_at(u, (size_t)i);
	snprintf(t->code, sizeof t->code, "%s", n->code);
	snprintf(t->name, sizeof t->name, "%s", n->name);
	t->depth = n->depth;
	if (code)
		*level = n->depth + 1;
	if (*level < 1 || *level > th_units_max_depth(u)) {
		fprintf(stderr, "%s: level %u: the hierarchy has levels 1 to %u\n", prog, *level,
		        th_units_max_depth(u));
		return code ? 1 : EXIT_USAGE;
	}
	return 0;
}

/* --- rollup ------------------------------------------------------------------- */
/* An output column of a rollup table. */
typedef struct rcol {
	enum { RC_COL, RC_ENUMVAL, RC_RATIO } kind;
	size_t idx;      /* column or ratio index */
	size_t val;      /* enum value index */
	char *key;       /* json key */
	char *title;
} rcol;

typedef struct rollup_ctx {
	const th_def *d;
	const opts *o;
	th_table *t;
	rcol *cols;
	size_t n_cols;
	int64_t *acc;    /* --own: sum of the rows shown */
	int err;
} rollup_ctx;

#define RFIXED 4     /* unit, name, expected, reported */

static int add_rcol(rollup_ctx *x, int kind, size_t idx, size_t val)
{
	rcol *n = realloc(x->cols, (x->n_cols + 1) * sizeof *n);
	if (!n)
		return -1;
	x->cols = n;
	rcol *c = &x->cols[x->n_cols];
	c->kind = kind;
	c->idx = idx;
	c->val = val;
	const th_def *d = x->d;
	int a = -1, b = -1;
	if (kind == RC_COL) {
		a = asprintf(&c->key, "%s", d->cols[idx].id);
		b = asprintf(&c->title, "%s", d->cols[idx].title);
	} else if (kind == RC_ENUMVAL) {
		const th_column *col = &d->cols[idx];
		a = asprintf(&c->key, "%s:%s", col->id, col->values[val].code);
		b = asprintf(&c->title, "%s: %s", col->title, col->values[val].title);
	} else {
		a = asprintf(&c->key, "%s", d->ratios[idx].id);
		b = asprintf(&c->title, "%s (%%)", d->ratios[idx].title);
	}
	if (a < 0 || b < 0)
		return -1;
	x->n_cols++;
	return 0;
}

static int add_column_by_id(rollup_ctx *x, const char *id)
{
	const th_def *d = x->d;
	for (size_t r = 0; r < d->n_ratios; r++)
		if (!strcmp(d->ratios[r].id, id))
			return add_rcol(x, RC_RATIO, r, 0);
	const char *colon = strchr(id, ':');
	char name[TH_CODE_MAX + 1];
	size_t n = colon ? (size_t)(colon - id) : strlen(id);
	if (n > TH_CODE_MAX)
		return 1;
	memcpy(name, id, n);
	name[n] = 0;
	long c = th_def_column(d, name);
	if (c < 0 || d->cols[c].rollup == TH_ROLL_NONE)
		return 1;
	if (d->cols[c].rollup == TH_ROLL_COUNT_BY) {
		if (colon) {
			long v = th_def_enum(&d->cols[c], colon + 1);
			return v < 0 ? 1 : add_rcol(x, RC_ENUMVAL, (size_t)c, (size_t)v);
		}
		for (size_t v = 0; v < d->cols[c].n_values; v++)
			if (add_rcol(x, RC_ENUMVAL, (size_t)c, v))
				return -1;
		return 0;
	}
	return colon ? 1 : add_rcol(x, RC_COL, (size_t)c, 0);
}

/* Default: the summed columns the ratios are made of (up to 5; else the first
 * 5 summed columns; else the values of the first count_by column), then every
 * ratio. */
static int default_columns(rollup_ctx *x)
{
	const th_def *d = x->d;
	char *used = calloc(d->n_cols ? d->n_cols : 1, 1);
	size_t n = 0;
	if (!used)
		return -1;
	for (size_t r = 0; r < d->n_ratios && n < 5; r++) {
		const th_ratio *ra = &d->ratios[r];
		for (size_t k = 0; k < ra->n_num + ra->n_den && n < 5; k++) {
			size_t c = k < ra->n_num ? ra->num[k] : ra->den[k - ra->n_num];
			if (c < d->n_cols && !used[c] && d->cols[c].rollup == TH_ROLL_SUM) {
				used[c] = 1;
				n++;
			}
		}
	}
	for (size_t c = 0; c < d->n_cols && n == 0; c++)
		if (d->cols[c].rollup == TH_ROLL_SUM) {
			for (size_t k = c; k < d->n_cols && n < 5; k++)
				if (d->cols[k].rollup == TH_ROLL_SUM) {
					used[k] = 1;
					n++;
				}
		}
	int rc = 0;
	for (size_t c = 0; c < d->n_cols && !rc; c++)
		if (used[c])
			rc = add_rcol(x, RC_COL, c, 0);
	/* no summed column (e.g. PL2, one row per task): the rows per value of
	 * the derived status column, else of the first count_by column */
	if (n == 0 && d->derive && d->derive->status_col < d->n_cols &&
	    d->cols[d->derive->status_col].rollup == TH_ROLL_COUNT_BY) {
		size_t c = d->derive->status_col;
		for (size_t v = 0; v < d->cols[c].n_values && !rc; v++)
			rc = add_rcol(x, RC_ENUMVAL, c, v);
		n = 1;
	}
	for (size_t c = 0; c < d->n_cols && n == 0 && !rc; c++)
		if (d->cols[c].rollup == TH_ROLL_COUNT_BY) {
			for (size_t v = 0; v < d->cols[c].n_values && !rc; v++)
				rc = add_rcol(x, RC_ENUMVAL, c, v);
			n = 1;
		}
	for (size_t r = 0; r < d->n_ratios && !rc; r++)
		rc = add_rcol(x, RC_RATIO, r, 0);
	free(used);
	return rc;
}

/* Percentage with one decimal, rounded half up, as text. */
static void fmt_pct(int64_t num, int64_t den, int vn, char *buf, size_t cap)
{
	__int128 n = num, q = den;
	int neg = (n < 0) != (q < 0);
	if (n < 0)
		n = -n;
	if (q < 0)
		q = -q;
	__int128 t = (n * 2000 + q) / (2 * q);     /* tenths of a percent */
	snprintf(buf, cap, "%s%lld%c%d", neg && t ? "-" : "", (long long)(t / 10), vn ? ',' : '.',
	         (int)(t % 10));
}

static void fill_row(rollup_ctx *x, long row, const int64_t *v)
{
	const th_def *d = x->d;
	int vn = x->o->fmt == TH_FMT_TABLE;
	char buf[64];
	for (size_t i = 0; i < x->n_cols; i++) {
		const rcol *c = &x->cols[i];
		size_t tc = RFIXED + i;
		if (c->kind == RC_RATIO) {
			int64_t num, den;
			if (th_rollup_ratio(d, v, c->idx, &num, &den) != 0)
				continue;
			if (den == 0) {
				th_table_set(x->t, (size_t)row, tc, x->o->fmt == TH_FMT_JSON ? NULL : "—");
			} else {
				fmt_pct(num, den, vn, buf, sizeof buf);
				th_table_set(x->t, (size_t)row, tc, buf);
			}
		} else if (c->kind == RC_ENUMVAL) {
			if (v[0] == 0)
				continue;     /* no rows: null */
			th_table_set(x->t, (size_t)row, tc, th_fmt_int(v[d->cols[c->idx].slot + c->val], buf));
		} else {
			const th_column *col = &d->cols[c->idx];
			int is_null = 1;
			int64_t val = th_rollup_value(d, v, c->idx, &is_null);
			if (is_null)
				continue;
			if (col->type == TH_T_DEC)
				th_fmt_dec(val, col->scale, vn, buf);
			else if (col->type == TH_T_DATE)
				th_fmt_date((int32_t)val, !vn, buf);
			else
				th_fmt_int(val, buf);
			th_table_set(x->t, (size_t)row, tc, buf);
		}
	}
}

static void fill_fixed(rollup_ctx *x, long row, const char *code, const char *name,
                       const th_node *n)
{
	th_table_set(x->t, (size_t)row, 0, code);
	th_table_set(x->t, (size_t)row, 1, name);
	th_table_setf(x->t, (size_t)row, 2, "%" PRIu32, n->expected);
	th_table_setf(x->t, (size_t)row, 3, "%" PRIu32, n->reported);
}

static int rollup_cb(void *ctx, const th_unit *u, const th_node *n)
{
	rollup_ctx *x = ctx;
	long row = th_table_row(x->t);
	if (row < 0)
		return TH_ENOMEM;
	fill_fixed(x, row, u->code, u->name, n);
	const int64_t *v = x->o->own ? n->own : n->total;
	if (v)
		fill_row(x, row, v);
	if (x->o->own && x->acc && n->own && th_rollup_add(x->d, x->acc, n->own) != 0)
		x->err = TH_EOVERFLOW;
	return 0;
}

static int cmd_rollup(const opts *o)
{
	int ret = 1, rc;
	th_defset *defs = NULL;
	src sx = {0};
	rollup_ctx x = {.o = o};
	const char **keys = NULL;

	if (!(defs = load_defs(o->defs_dir)))
		goto out;
	x.d = th_defset_latest(defs, o->appendix);
	if (!x.d) {
		fprintf(stderr, "%s: unknown appendix %s\n", prog, o->appendix);
		goto out;
	}
	if (src_open(&sx, o, defs, x.d))
		goto out;
	sx.d = x.d = src_def(&sx, defs, o, x.d);
	if (o->columns) {
		char *list = strdup(o->columns), *save = NULL;
		if (!list)
			goto out;
		for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			rc = add_column_by_id(&x, tok);
			if (rc) {
				if (rc > 0)
					fprintf(stderr, "%s rollup: %s has no column or ratio `%s' that rolls up\n",
					        prog, x.d->id, tok);
				free(list);
				ret = rc > 0 ? EXIT_USAGE : 1;
				goto out;
			}
		}
		free(list);
	} else if (default_columns(&x)) {
		goto out;
	}
	x.t = th_table_new(RFIXED + x.n_cols);
	keys = calloc(RFIXED + x.n_cols, sizeof *keys);
	x.acc = calloc(x.d->n_slots, sizeof *x.acc);
	if (!x.t || !keys || !x.acc)
		goto out;
	th_rollup_zero(x.d, x.acc);
	static const char *fixed_keys[RFIXED] = {"unit", "name", "expected", "reported"};
	static const char *fixed_titles[RFIXED] = {"Mã", "Đơn vị", "Phải nộp", "Đã nộp"};
	for (size_t i = 0; i < RFIXED; i++) {
		th_table_header(x.t, i, fixed_titles[i], i >= 2);
		keys[i] = fixed_keys[i];
	}
	for (size_t i = 0; i < x.n_cols; i++) {
		th_table_header(x.t, RFIXED + i, o->fmt == TH_FMT_TABLE ? x.cols[i].key : x.cols[i].title, 1);
		keys[RFIXED + i] = x.cols[i].key;
	}
	/* Machine formats: header = the title (ids are the json keys); table: ids
	 * keep it narrow, titles are listed below. */
	const char *parent = o->parent;
	uint32_t level = (uint32_t)o->level;
	topinfo top;
	if ((rc = find_top(&sx, o, parent, &level, &top)) != 0) {
		ret = rc;
		goto out;
	}
	rc = src_level(&sx, o->appendix, o->period, level, parent, rollup_cb, &x);
	if (rc != 0 || x.err) {
		fprintf(stderr, "%s: reading rollups: %s\n", prog, rc ? src_error(&sx, rc) : th_strerror(x.err));
		goto out;
	}
	/* The total row: the parent's (or, for a level, the root's) subtree total;
	 * with --own the sum of the rows shown. */
	if (level > 1 || o->own) {
		th_node tn;
		if ((rc = src_node(&sx, o->appendix, o->period, top.code, &tn)) != 0) {
			fprintf(stderr, "%s: reading %s: %s\n", prog, top.code, src_error(&sx, rc));
			goto out;
		}
		long row = th_table_row(x.t);
		char label[600];
		snprintf(label, sizeof label, "%s %s", o->own ? "Cộng" : "Tổng", top.name);
		if (row >= 0) {
			fill_fixed(&x, row, o->own ? "" : top.code, label, &tn);
			fill_row(&x, row, o->own ? x.acc : tn.total);
		}
		th_node_free(&tn);
	}
	if (o->fmt == TH_FMT_TABLE) {
		printf("%s — %s, kỳ %s, %s\n", x.d->id, x.d->title, o->period,
		       o->own ? "số liệu riêng của đơn vị" : "tổng hợp cả đơn vị trực thuộc");
		printf("%s cấp %u%s%s\n\n", parent ? "Các đơn vị trực thuộc" : "Các đơn vị",
		       level, parent ? " của " : "", parent ? top.name : "");
	}
	ret = output_table(x.t, o, keys);
	if (o->fmt == TH_FMT_TABLE) {
		printf("\n");
		for (size_t i = 0; i < x.n_cols; i++)
			printf("  %-28s %s\n", x.cols[i].key, x.cols[i].title);
		printf("Empty: no unit reported the figure; —: ratio with a zero denominator.\n");
	}
out:
	for (size_t i = 0; i < x.n_cols; i++) {
		free(x.cols[i].key);
		free(x.cols[i].title);
	}
	free(x.cols);
	free(x.acc);
	free(keys);
	th_table_destroy(&x.t);
	src_close(&sx);
	th_defset_destroy(&defs);
	return ret;
}

/* --- status ------------------------------------------------------------------- */
typedef struct status_ctx {
	th_table *t;
	const th_units *u;
	int err;
} status_ctx;

static void status_row(th_table *t, long row, const char *code, const char *name, const th_node *n)
{
	th_table_set(t, (size_t)row, 0, code);
	th_table_set(t, (size_t)row, 1, name);
	th_table_setf(t, (size_t)row, 2, "%" PRIu32, n->expected);
	th_table_setf(t, (size_t)row, 3, "%" PRIu32, n->reported);
	th_table_setf(t, (size_t)row, 4, "%" PRIu32, n->on_time);
	th_table_setf(t, (size_t)row, 5, "%" PRIu32, n->late);
	th_table_setf(t, (size_t)row, 6, "%" PRIu32,
	              n->expected > n->reported ? n->expected - n->reported : 0);
	th_table_setf(t, (size_t)row, 7, "%" PRIu32, n->corrections);
}

static int status_cb(void *ctx, const th_unit *u, const th_node *n)
{
	status_ctx *x = ctx;
	long row = th_table_row(x->t);
	if (row < 0)
		return TH_ENOMEM;
	status_row(x->t, row, u->code, u->name, n);
	return 0;
}

static int missing_cb(void *ctx, const th_unit *u, const th_node *n)
{
	(void)n;
	status_ctx *x = ctx;
	long row = th_table_row(x->t);
	if (row < 0)
		return TH_ENOMEM;
	th_table_set(x->t, (size_t)row, 0, u->code);
	th_table_set(x->t, (size_t)row, 1, u->name);
	th_table_set(x->t, (size_t)row, 2, u->parent_code);
	long p = x->u ? th_units_find(x->u, u->parent_code) : -1;
	th_table_set(x->t, (size_t)row, 3, p >= 0 ? th_units_at(x->u, (size_t)p)->name : NULL);
	th_table_set(x->t, (size_t)row, 4, u->person && *u->person ? u->person : NULL);
	th_table_set(x->t, (size_t)row, 5, u->phone && *u->phone ? u->phone : NULL);
	th_table_set(x->t, (size_t)row, 6, u->email && *u->email ? u->email : NULL);
	return 0;
}

static int cmd_status(const opts *o)
{
	int ret = 1, rc;
	th_defset *defs = NULL;
	src sx = {0};
	th_table *t = NULL, *m = NULL;
	static const char *skeys[] = {"unit", "name", "expected", "reported", "on_time", "late",
	                              "missing", "corrections"};
	static const char *stitles[] = {"Mã", "Đơn vị", "Phải nộp", "Đã nộp", "Đúng hạn", "Trễ hạn",
	                                "Chưa nộp", "Sửa đổi"};
	static const char *mkeys[] = {"unit", "name", "parent", "parent_name", "person", "phone",
	                              "email"};
	static const char *mtitles[] = {"Mã", "Đơn vị chưa nộp", "Cấp trên", "Tên cấp trên",
	                                "Người liên hệ", "Điện thoại", "Thư điện tử"};

	if (!(defs = load_defs(o->defs_dir)))
		goto out;
	const th_def *d = th_defset_latest(defs, o->appendix);
	if (!d) {
		fprintf(stderr, "%s: unknown appendix %s\n", prog, o->appendix);
		goto out;
	}
	if (src_open(&sx, o, defs, d))
		goto out;
	sx.d = d = src_def(&sx, defs, o, d);
	uint32_t level = (uint32_t)o->level;
	topinfo top;
	if ((rc = find_top(&sx, o, o->unit, &level, &top)) != 0) {
		ret = rc;
		goto out;
	}
	t = th_table_new(8);
	m = th_table_new(7);
	if (!t || !m)
		goto out;
	for (size_t i = 0; i < 8; i++)
		th_table_header(t, i, o->fmt == TH_FMT_TABLE ? stitles[i] : skeys[i], i >= 2);
	for (size_t i = 0; i < 7; i++)
		th_table_header(m, i, o->fmt == TH_FMT_TABLE ? mtitles[i] : mkeys[i], 0);
	status_ctx x = {.t = t, .u = top.u};
	rc = src_level(&sx, o->appendix, o->period, level, o->unit, status_cb, &x);
	if (rc == 0) {
		th_node tn;
		rc = src_node(&sx, o->appendix, o->period, top.code, &tn);
		long row = rc == 0 ? th_table_row(t) : -1;
		if (row >= 0) {
			char label[600];
			snprintf(label, sizeof label, "Tổng %s", top.name);
			status_row(t, row, top.code, label, &tn);
		}
		if (rc == 0)
			th_node_free(&tn);
	}
	x.t = m;
	if (rc == 0)
		rc = src_missing(&sx, o->appendix, o->period, top.code, missing_cb, &x);
	if (rc != 0) {
		fprintf(stderr, "%s: reading completeness: %s\n", prog, src_error(&sx, rc));
		goto out;
	}
	if (o->fmt == TH_FMT_JSON) {
		printf("{\"appendix\": ");
		th_json_string(stdout, o->appendix);
		printf(", \"period\": ");
		th_json_string(stdout, o->period);
		printf(", \"units\": ");
		ret = output_table(t, o, skeys);
		printf(", \"missing\": ");
		ret |= output_table(m, o, mkeys);
		printf("}\n");
	} else if (o->fmt == TH_FMT_CSV) {
		ret = output_table(t, o, skeys);
		printf("\r\n");        /* an empty record between the two tables */
		ret |= output_table(m, o, mkeys);
	} else if (o->fmt == TH_FMT_XLSX) {
		fprintf(stderr, "%s status: xlsx is not supported here; use csv\n", prog);
		ret = EXIT_USAGE;
	} else {
		printf("Tình hình nộp %s kỳ %s, cấp %u%s%s\n\n", o->appendix, o->period, level,
		       o->unit ? " của " : "", o->unit ? top.name : "");
		ret = output_table(t, o, NULL);
		printf("\nĐơn vị chưa nộp (%zu):\n\n", th_table_rows(m));
		if (th_table_rows(m))
			ret |= output_table(m, o, NULL);
		else
			printf("(none)\n");
	}
out:
	th_table_destroy(&t);
	th_table_destroy(&m);
	src_close(&sx);
	th_defset_destroy(&defs);
	return ret;
}

/* --- report ------------------------------------------------------------------- */
/* Row key of row r as text ("row N" for keyless appendices). */
static void row_key_text(const th_def *d, const th_report *r, size_t row, char *buf, size_t cap)
{
	if (d->n_key == 0) {
		snprintf(buf, cap, "row %zu", row + 1);
		return;
	}
	size_t pos = 0;
	buf[0] = 0;
	for (size_t k = 0; k < d->n_key; k++) {
		char tmp[32];
		size_t c = d->key_cols[k];
		const char *s = c < r->n_cols ? cell_text(&d->cols[c], th_report_cell(r, row, c), 0, tmp)
		                              : NULL;
		int w = snprintf(buf + pos, cap - pos, "%s%s", k ? "/" : "", s ? s : "");
		if (w < 0 || (size_t)w >= cap - pos)
			return;
		pos += (size_t)w;
	}
}

static int row_key_cmp(const th_def *d, const th_report *a, size_t ra, const th_report *b, size_t rb)
{
	if (d->n_key == 0)
		return ra < rb ? -1 : ra > rb;
	for (size_t k = 0; k < d->n_key; k++) {
		size_t c = d->key_cols[k];
		int x = th_value_cmp(th_report_cell(a, ra, c), th_report_cell(b, rb, c), d->cols[c].type);
		if (x)
			return x;
	}
	return 0;
}

static int value_eq(const th_column *c, const th_value *a, const th_value *b)
{
	if (a->null || b->null)
		return a->null == b->null;
	return th_value_cmp(a, b, c->type) == 0;
}

typedef struct hist_ctx {
	const th_defset *defs;
	th_report *prev;
	int err;
	size_t n;
} hist_ctx;

static void print_diff(const th_def *d, const th_report *old, const th_report *cur)
{
	size_t added = 0, removed = 0, changed = 0;
	char key[256], b1[32], b2[32];
	/* rows of cur: match in old */
	for (size_t i = 0; i < cur->n_rows; i++) {
		size_t j = 0;
		int found = 0;
		for (j = 0; old && j < old->n_rows; j++)
			if (row_key_cmp(d, cur, i, old, j) == 0) {
				found = 1;
				break;
			}
		row_key_text(d, cur, i, key, sizeof key);
		if (!found) {
			printf("    %s: added\n", key);
			added++;
			continue;
		}
		for (size_t c = 0; c < d->n_cols && c < cur->n_cols && c < old->n_cols; c++) {
			const th_value *a = th_report_cell(old, j, c), *b = th_report_cell(cur, i, c);
			if (value_eq(&d->cols[c], a, b))
				continue;
			const char *sa = cell_text(&d->cols[c], a, 0, b1), *sb = cell_text(&d->cols[c], b, 0, b2);
			printf("    %s: %s: %s -> %s\n", key, d->cols[c].id, sa ? sa : "(empty)",
			       sb ? sb : "(empty)");
			changed++;
		}
	}
	for (size_t j = 0; old && j < old->n_rows; j++) {
		int found = 0;
		for (size_t i = 0; i < cur->n_rows && !found; i++)
			found = row_key_cmp(d, cur, i, old, j) == 0;
		if (!found) {
			row_key_text(d, old, j, key, sizeof key);
			printf("    %s: removed\n", key);
			removed++;
		}
	}
	printf("    (%zu rows added, %zu removed, %zu cells changed)\n", added, removed, changed);
}

static int hist_cb(void *ctx, const th_revision_info *info, const th_report *r)
{
	hist_ctx *x = ctx;
	char when[64];
	fmt_time(info->commit_time, when, sizeof when);
	printf("rev %" PRIu64 "  %s  sender %s  commit %" PRIu64 "%s  %zu rows\n", info->rev, when,
	       info->sender[0] ? info->sender : "-", info->commit, info->tombstone ? "  WITHDRAWN" : "",
	       r ? r->n_rows : (size_t)0);
	x->n++;
	if (!r)
		return 0;
	const th_def *d = th_defset_get(x->defs, r->appendix, r->version);
	if (!d) {
		printf("    (definition %s v%u not available)\n", r->appendix, r->version);
	} else if (!x->prev) {
		printf("    first revision\n");
	} else if (x->prev->version != r->version) {
		printf("    definition version changed: %u -> %u\n", x->prev->version, r->version);
	} else {
		print_diff(d, x->prev, r);
	}
	th_report *c = th_report_clone(r);
	if (!c) {
		x->err = TH_ENOMEM;
		return TH_ENOMEM;
	}
	th_report_destroy(&x->prev);
	x->prev = c;
	return 0;
}

static int cmd_report(const opts *o, const char *unit, const char *app, const char *period)
{
	int ret = 1, rc;
	th_defset *defs = NULL;
	th_store *s = NULL;
	th_report *r = NULL;
	th_table *t = NULL;
	const char **keys = NULL;
	th_revision_info info;
	memset(&info, 0, sizeof info);

	if (!(defs = load_defs(o->defs_dir)) || !(s = open_store(o->db, defs)))
		goto out;
	rc = th_store_get_report(s, unit, app, period, &r, &info);
	if (rc == TH_ENOTFOUND) {
		fprintf(stderr, "%s: no report %s %s %s in %s\n", prog, unit, app, period, o->db);
		goto out;
	} else if (rc != 0) {
		fprintf(stderr, "%s: reading %s %s %s: %s\n", prog, unit, app, period, th_strerror(rc));
		goto out;
	}
	const th_def *d = th_defset_get(defs, r->appendix, r->version);
	if (!d) {
		fprintf(stderr, "%s: definition %s version %u not found in --defs\n", prog, r->appendix,
		        r->version);
		goto out;
	}
	if (o->fmt == TH_FMT_TABLE) {
		char when[64];
		fmt_time(info.commit_time, when, sizeof when);
		printf("%s %s %s: %s v%u, rev %" PRIu64 ", committed %s by %s, %zu rows%s\n\n", unit, app,
		       period, d->title, r->version, info.rev, when, info.sender[0] ? info.sender : "-",
		       r->n_rows, info.tombstone ? " (WITHDRAWN)" : "");
	}
	int vn = o->fmt == TH_FMT_TABLE;
	char buf[32];
	if (o->fmt == TH_FMT_TABLE && r->n_rows <= 1) {
		/* one row: one line per column */
		t = th_table_new(3);
		if (!t)
			goto out;
		th_table_header(t, 0, "Cột", 0);
		th_table_header(t, 1, "Tiêu đề", 0);
		th_table_header(t, 2, "Giá trị", 0);
		for (size_t c = 0; c < d->n_cols; c++) {
			long row = th_table_row(t);
			if (row < 0)
				goto out;
			th_table_set(t, (size_t)row, 0, d->cols[c].id);
			th_table_set(t, (size_t)row, 1, d->cols[c].title);
			if (r->n_rows == 1 && c < r->n_cols) {
				const char *txt = cell_text(&d->cols[c], th_report_cell(r, 0, c), vn, buf);
				/* keep long texts on one line of the table */
				if (txt && strchr(txt, '\n')) {
					char *cp = strdup(txt);
					for (char *p = cp; p && *p; p++)
						if (*p == '\n' || *p == '\r')
							*p = ' ';
					th_table_set(t, (size_t)row, 2, cp);
					free(cp);
				} else {
					th_table_set(t, (size_t)row, 2, txt);
				}
			}
		}
		ret = output_table(t, o, NULL);
	} else {
		t = th_table_new(d->n_cols);
		keys = calloc(d->n_cols ? d->n_cols : 1, sizeof *keys);
		if (!t || !keys)
			goto out;
		for (size_t c = 0; c < d->n_cols; c++) {
			th_table_header(t, c, o->fmt == TH_FMT_JSON ? d->cols[c].id : d->cols[c].title,
			                d->cols[c].type == TH_T_INT || d->cols[c].type == TH_T_DEC);
			keys[c] = d->cols[c].id;
		}
		for (size_t i = 0; i < r->n_rows; i++) {
			long row = th_table_row(t);
			if (row < 0)
				goto out;
			for (size_t c = 0; c < d->n_cols && c < r->n_cols; c++)
				th_table_set(t, (size_t)row, c, cell_text(&d->cols[c], th_report_cell(r, i, c), vn, buf));
		}
		ret = output_table(t, o, keys);
	}
	if (o->history && ret == 0) {
		printf("\nHistory (oldest first):\n");
		hist_ctx hx = {.defs = defs};
		rc = th_store_history(s, unit, app, period, hist_cb, &hx);
		th_report_destroy(&hx.prev);
		if (rc != 0 || hx.err) {
			fprintf(stderr, "%s: reading history: %s\n", prog, th_strerror(rc ? rc : hx.err));
			ret = 1;
		}
	}
out:
	free(keys);
	th_table_destroy(&t);
	th_report_destroy(&r);
	th_store_close(&s);
	th_defset_destroy(&defs);
	return ret;
}

/* --- units -------------------------------------------------------------------- */
static void draw_tree(const th_units *u, size_t i, char *prefix, size_t plen, size_t cap, int last,
                      int root)
{
	const th_unit *n = th_units_at(u, i);
	printf("%s%s%s (%s, %s)", prefix, root ? "" : (last ? "└─ " : "├─ "), n->name, n->code, n->kind);
	if (n->person && *n->person)
		printf(" — %s", n->person);
	if (n->phone && *n->phone)
		printf(", %s", n->phone);
	if (n->email && *n->email)
		printf(", %s", n->email);
	printf("\n");
	size_t add = root ? 0 : strlen(last ? "   " : "│  ");
	if (plen + add + 1 > cap)
		return;
	if (!root)
		memcpy(prefix + plen, last ? "   " : "│  ", add + 1);
	for (uint32_t k = 0; k < n->n_children; k++)
		draw_tree(u, n->children[k], prefix, plen + add, cap, k + 1 == n->n_children, 0);
	prefix[plen] = 0;
}

/* --versions from a store or the collector: one row per hierarchy version. */
typedef struct vlist {
	th_table *t;
	const opts *o;
	/* --db: the bindings */
	char (*period)[TH_PERIOD_MAX + 1];
	char (*version)[65];
	size_t nb;
	th_store *s;
	const th_units **u;   /* --db: the stored versions */
	size_t nu;
} vlist;

#define VCOLS 8

static int vrow_cb(void *ctx, const th_hier_row *r)
{
	vlist *v = ctx;
	long row = th_table_row(v->t);
	if (row < 0)
		return TH_ENOMEM;
	char buf[64];
	int32_t e = r->effective;
	th_table_set(v->t, (size_t)row, 0, r->version);
	th_table_setf(v->t, (size_t)row, 1, "%04d-%02d-%02d", (int)(e / 10000), (int)(e / 100 % 100),
	              (int)(e % 100));
	th_table_setf(v->t, (size_t)row, 2, "%" PRIu64, r->units);
	th_table_setf(v->t, (size_t)row, 3, "%" PRIu32, r->levels);
	th_table_set(v->t, (size_t)row, 4, r->root);
	if (r->loaded) {
		fmt_time(r->loaded, buf, sizeof buf);
		th_table_set(v->t, (size_t)row, 5, buf);
	}
	if (r->origin[0])
		th_table_set(v->t, (size_t)row, 6, r->origin);
	size_t len = 1;
	for (size_t i = 0; i < r->n_periods; i++)
		len += strlen(r->periods[i]) + 2;
	char *list = calloc(len, 1);
	if (!list)
		return TH_ENOMEM;
	for (size_t i = 0; i < r->n_periods; i++) {
		if (i)
			strcat(list, ", ");
		strcat(list, r->periods[i]);
	}
	if (r->n_periods)
		th_table_set(v->t, (size_t)row, 7, list);
	free(list);
	return 0;
}

static int vbind_cb(void *ctx, const char *period, const char *version)
{
	vlist *v = ctx;
	void *np = realloc(v->period, (v->nb + 1) * sizeof *v->period);
	if (np)
		v->period = np;
	void *nv = np ? realloc(v->version, (v->nb + 1) * sizeof *v->version) : NULL;
	if (!nv)
		return TH_ENOMEM;
	v->version = nv;
	snprintf(v->period[v->nb], sizeof *v->period, "%s", period);
	snprintf(v->version[v->nb], sizeof *v->version, "%s", version);
	v->nb++;
	return 0;
}

static int vstore_cb(void *ctx, const th_units *u)
{
	vlist *v = ctx;
	const th_units **n = realloc(v->u, (v->nu + 1) * sizeof *n);
	if (!n)
		return TH_ENOMEM;
	v->u = n;
	v->u[v->nu++] = u;
	return 0;
}

/* A stored version as the row the collector's answer gives (no read
 * transaction may be open: the origin is read in one). */
static int vstore_row(vlist *v, const th_units *u)
{
	th_hier_row r;
	memset(&r, 0, sizeof r);
	snprintf(r.version, sizeof r.version, "%s", th_units_version(u));
	r.effective = th_units_effective(u);
	r.units = th_units_count(u);
	r.levels = th_units_max_depth(u);
	snprintf(r.root, sizeof r.root, "%s", th_units_at(u, th_units_root(u))->code);
	th_store_hierarchy_origin(v->s, r.version, &r.loaded, r.origin, sizeof r.origin);
	char *periods[v->nb ? v->nb : 1];
	for (size_t i = 0; i < v->nb; i++)
		if (!strcmp(v->version[i], r.version))
			periods[r.n_periods++] = v->period[i];
	r.periods = periods;
	return vrow_cb(v, &r);
}

static int cmd_versions(const opts *o)
{
	static const char *keys[VCOLS] = {"version", "effective", "units", "levels", "root", "loaded",
	                                  "origin", "periods"};
	static const char *titles[VCOLS] = {"Phiên bản", "Hiệu lực", "Số đơn vị", "Số cấp", "Gốc",
	                                    "Nạp lúc", "Nguồn", "Các kỳ gắn với phiên bản"};
	vlist v = {.o = o};
	th_qc *q = NULL;
	int ret = 1, rc;
	if (!(v.t = th_table_new(VCOLS)))
		return 1;
	for (size_t c = 0; c < VCOLS; c++)
		th_table_header(v.t, c, o->fmt == TH_FMT_TABLE ? titles[c] : keys[c], c == 2 || c == 3);
	if (o->collector) {
		char why[300];
		if (!(q = th_qc_new(o->collector, o->key, o->server_key, o->insecure, why, sizeof why))) {
			fprintf(stderr, "%s: collector %s: %s\n", prog, o->collector, why);
			goto out;
		}
		if ((rc = th_qc_hierarchies(q, vrow_cb, &v)) != 0) {
			fprintf(stderr, "%s units: collector %s: %s\n", prog, o->collector, th_qc_error(q));
			goto out;
		}
	} else {
		if (!(v.s = open_store(o->db, NULL)))
			goto out;
		if ((rc = th_store_bindings(v.s, vbind_cb, &v)) != 0 ||
		    (rc = th_store_hierarchies(v.s, vstore_cb, &v)) != 0) {
			fprintf(stderr, "%s units: store %s: %s\n", prog, o->db, th_strerror(rc));
			goto out;
		}
		for (size_t i = 0; i < v.nu; i++)
			if (vstore_row(&v, v.u[i]) != 0)
				goto out;
	}
	ret = output_table(v.t, o, keys);
out:
	th_qc_destroy(&q);
	th_store_close(&v.s);
	th_table_destroy(&v.t);
	free(v.period);
	free(v.version);
	free(v.u);
	return ret;
}

static void print_problem(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "%s\n", line);
}

/* --submit FILE: validated here with the collector's parser, then sent. */
static int cmd_units_submit(const opts *o)
{
	th_diag *diag = th_diag_new();
	th_units *u = NULL;
	th_qc *q = NULL;
	int ret = 1;
	int rc = diag ? th_units_load(o->submit, &u, diag) : TH_ENOMEM;
	for (size_t i = 0; diag && i < th_diag_count(diag); i++)
		fprintf(stderr, "%s\n", th_diag_text(diag, i));
	if (rc != 0) {
		if (!diag || th_diag_count(diag) == 0)
			fprintf(stderr, "%s: %s\n", o->submit, th_strerror(rc));
		fprintf(stderr, "%s units: %s is not a valid hierarchy file; nothing was sent\n", prog,
		        o->submit);
		goto out;
	}
	char why[300];
	if (!(q = th_qc_new(o->collector, o->key, o->server_key, o->insecure, why, sizeof why))) {
		fprintf(stderr, "%s: collector %s: %s\n", prog, o->collector, why);
		goto out;
	}
	size_t len;
	const char *text = th_units_source(u, &len);
	const char *slash = strrchr(o->submit, '/');
	th_hier_row r;
	char path[4096] = "";
	rc = th_qc_units_submit(q, slash ? slash + 1 : o->submit, text, len, &r, path, sizeof path,
	                        print_problem, NULL);
	if (rc != 0) {
		fprintf(stderr, "%s units: %s refused by the collector: %s\n", prog, o->submit,
		        th_qc_error(q));
		goto out;
	}
	printf("%s: hierarchy version %s (effective %04d-%02d-%02d, %" PRIu64 " units, %" PRIu32
	       " levels) written by the collector to %s and loaded\n",
	       o->submit, r.version, (int)(r.effective / 10000), (int)(r.effective / 100 % 100),
	       (int)(r.effective % 100), r.units, r.levels, path);
	th_hier_row_free(&r);
	ret = 0;
out:
	th_qc_destroy(&q);
	th_units_destroy(&u);
	th_diag_destroy(&diag);
	return ret;
}

static int cmd_units(const opts *o)
{
	int ret = 1;
	th_units *own = NULL;
	th_store *s = NULL;
	th_table *t = NULL;
	const th_units *u = NULL;
	static const char *keys[] = {"code", "parent", "kind", "level", "name", "person", "phone",
	                             "email"};
	static const char *titles[] = {"Mã", "Cấp trên", "Loại", "Cấp", "Tên", "Người liên hệ",
	                               "Điện thoại", "Thư điện tử"};

	if (o->submit)
		return cmd_units_submit(o);
	if (o->versions && !o->units_file)
		return cmd_versions(o);
	if (o->units_file) {
		th_diag *diag = th_diag_new();
		int rc = th_units_load(o->units_file, &own, diag);
		for (size_t i = 0; diag && i < th_diag_count(diag); i++)
			fprintf(stderr, "%s\n", th_diag_text(diag, i));
		th_diag_destroy(&diag);
		if (rc != 0) {
			fprintf(stderr, "%s: cannot load %s: %s\n", prog, o->units_file, th_strerror(rc));
			goto out;
		}
		u = own;
	} else {
		if (!(s = open_store(o->db, NULL)))
			goto out;
		u = hierarchy_of(s, o->period);
		if (!u) {
			fprintf(stderr, "%s: store %s has no hierarchy\n", prog, o->db);
			goto out;
		}
	}
	if (o->versions) {
		printf("hierarchy version %s, effective %d, %zu units, %u levels\n", th_units_version(u),
		       th_units_effective(u), th_units_count(u), th_units_max_depth(u));
		ret = 0;
		goto out;
	}
	if (o->tree) {
		long i = th_units_find(u, o->tree);
		if (i < 0) {
			fprintf(stderr, "%s: unknown unit %s\n", prog, o->tree);
			goto out;
		}
		char prefix[1024] = "";
		draw_tree(u, (size_t)i, prefix, 0, sizeof prefix, 1, 1);
		ret = 0;
		goto out;
	}
	if (!(t = th_table_new(8)))
		goto out;
	for (size_t c = 0; c < 8; c++)
		th_table_header(t, c, o->fmt == TH_FMT_TABLE ? titles[c] : keys[c], c == 3);
	for (size_t i = 0; i < th_units_count(u); i++) {
		const th_unit *n = th_units_at(u, i);
		long row = th_table_row(t);
		if (row < 0)
			goto out;
		th_table_set(t, (size_t)row, 0, n->code);
		th_table_set(t, (size_t)row, 1, n->parent_code);
		th_table_set(t, (size_t)row, 2, n->kind);
		th_table_setf(t, (size_t)row, 3, "%" PRIu32, n->depth);
		th_table_set(t, (size_t)row, 4, n->name);
		th_table_set(t, (size_t)row, 5, n->person);
		th_table_set(t, (size_t)row, 6, n->phone);
		th_table_set(t, (size_t)row, 7, n->email);
	}
	ret = output_table(t, o, keys);
out:
	th_table_destroy(&t);
	th_units_destroy(&own);
	th_store_close(&s);
	return ret;
}

/* --- validate ----------------------------------------------------------------- */
static int cmd_validate(const opts *o, char **files, int n)
{
	th_defset *defs = load_defs(o->defs_dir);
	if (!defs)
		return 1;
	int bad = 0;
	for (int i = 0; i < n; i++) {
		th_diag *diag = th_diag_new();
		th_report *r = NULL;
		th_csv_opts co = {.unit = o->unit, .period = o->period, .appendix = o->appendix};
		int rc = diag ? th_csv_read_report(files[i], defs, &co, &r, diag) : TH_ENOMEM;
		for (size_t k = 0; diag && k < th_diag_count(diag); k++) {
			const th_diag_entry *e = th_diag_at(diag, k);
			const char *txt = th_diag_text(diag, k);
			/* name the file when the entry does not */
			if (e && !e->file)
				fprintf(stderr, "%s: %s\n", files[i], txt);
			else
				fprintf(stderr, "%s\n", txt);
		}
		if (rc == 0 && r) {
			printf("%s: OK (%s v%u, unit %s, period %s, %zu rows)\n", files[i], r->appendix,
			       r->version, r->unit ? r->unit : "?", r->period ? r->period : "?", r->n_rows);
		} else {
			if (diag && th_diag_errors(diag) == 0)
				fprintf(stderr, "%s: %s\n", files[i], th_strerror(rc));
			printf("%s: INVALID\n", files[i]);
			bad = 1;
		}
		th_report_destroy(&r);
		th_diag_destroy(&diag);
	}
	th_defset_destroy(&defs);
	return bad;
}

/* --- check -------------------------------------------------------------------- */
static int cmd_check(const opts *o)
{
	int ret = 1;
	th_defset *defs = load_defs(o->defs_dir);
	th_store *s = defs ? open_store(o->db, defs) : NULL;
	th_diag *diag = th_diag_new();
	if (!s || !diag)
		goto out;
	th_store_stats st;
	if (th_store_stats_get(s, &st) == 0)
		printf("store %s: %" PRIu64 " reports, %" PRIu64 " revisions, %" PRIu64
		       " commits, %zu of %zu bytes used\n",
		       o->db, st.reports, st.revisions, st.commits, st.used_bytes, st.map_size);
	int rc = th_store_verify(s, diag);
	for (size_t i = 0; i < th_diag_count(diag); i++)
		printf("%s\n", th_diag_text(diag, i));
	if (rc == 0 && th_diag_errors(diag) == 0) {
		printf("OK: rollups equal a recomputation from the latest revisions; every report valid\n");
		ret = 0;
	} else {
		printf("PROBLEM: %s\n", rc ? th_strerror(rc) : "integrity check failed");
	}
out:
	th_diag_destroy(&diag);
	th_store_close(&s);
	th_defset_destroy(&defs);
	return ret;
}

/* --- rebuild ------------------------------------------------------------------- */
static int cmd_rebuild(const opts *o)
{
	int ret = 1;
	th_defset *defs = load_defs(o->defs_dir);
	th_store *s = NULL;
	if (!defs)
		return 1;
	if (!o->db) {
		fprintf(stderr, "%s rebuild: --db DIR is required\n", prog);
		th_defset_destroy(&defs);
		return EXIT_USAGE;
	}
	th_store_opts so = {0};
	int rc = th_store_open(o->db, &so, &s);
	if (rc) {
		fprintf(stderr, "%s rebuild: cannot open %s for writing: %s\n", prog, o->db, th_strerror(rc));
		goto out;
	}
	th_store_set_defs(s, defs);
	rc = th_store_rebuild(s);
	if (rc) {
		fprintf(stderr, "%s rebuild: %s\n", prog, th_strerror(rc));
		goto out;
	}
	th_diag *diag = th_diag_new();
	rc = th_store_verify(s, diag);
	for (size_t i = 0; i < th_diag_count(diag); i++)
		printf("%s\n", th_diag_text(diag, i));
	th_diag_destroy(&diag);
	if (rc == 0) {
		printf("rebuilt: every rollup recomputed from the latest revisions, and verified\n");
		ret = 0;
	}
out:
	th_store_close(&s);
	th_defset_destroy(&defs);
	return ret;
}

/* --- main --------------------------------------------------------------------- */
static const char *usage_main =
	"usage: tonghop COMMAND [options]\n"
	"\n"
	"Read the figures the collector gathered: rollups per level, who has not reported,\n"
	"a unit's reports and their history; check appendix files offline.\n"
	"\n"
	"commands:\n"
	"  rollup    one row per unit of a level (or children of a unit) with subtree totals\n"
	"  status    completeness per unit: expected, reported, on time, late, missing\n"
	"  report    a unit's current report, and with --history every revision and its changes\n"
	"  units     the hierarchy: a list, a tree with contacts, its versions; submit a new one\n"
	"  validate  check appendix files exactly as the agent and the collector do\n"
	"  check     verify a store: rollups equal a recomputation, every report valid\n"
	"  rebuild   recompute every rollup of a store from the latest revisions (writes)\n"
	"  watch     follow the collector's rollup stream live\n"
	"\n"
	"`tonghop COMMAND --help` describes each command.  Exit codes: 0 ok, 1 problem found\n"
	"or failure, 2 usage error.\n";

static const char *usage_common =
	"  --db DIR            the collector's store, opened read-only\n"
	"  --collector EP      rollup, status, units --versions: ask the collector's query\n"
	"                      socket instead (with --key FILE --server-key FILE, or --insecure)\n"
	"  --defs DIR          appendix definitions (default: $TONGHOP_DEFS, the installed\n"
	"                      share/tonghop/appendices, or the source tree's)\n";
static const char *usage_format =
	"  --format FMT        table (default), csv, json or xlsx (xlsx needs -o)\n"
	"  -o, --output FILE   write to FILE instead of standard output\n"
	"  --excel             csv: start with a UTF-8 BOM so Excel reads Vietnamese\n"
	"  --sheet NAME        xlsx: the sheet's name (default tonghop)\n";

static void usage_cmd(const char *cmd, FILE *f)
{
	if (!strcmp(cmd, "rollup"))
		fprintf(f, "usage: tonghop rollup --db DIR --appendix ID --period P [--level N | --parent CODE]\n"
		           "                      [--own] [--columns a,b,c] [--format FMT] [-o FILE]\n\n"
		           "One row per unit at depth N (default 2; 1 = the root) or per child of CODE,\n"
		           "then the total row (the root's or CODE's subtree total).  Sums are subtree\n"
		           "totals unless --own.  Ratios are ratios of sums, in percent; — when the\n"
		           "denominator is 0.  Empty cells: nobody reported that figure (not 0).\n"
		           "--columns takes column ids, ratio ids and enum values as col:code; a count_by\n"
		           "column gives one column per value.\n\n%s%s"
		           "  -a, --appendix ID   PL1, PL2, PL3 ...\n  -p, --period P      2021, 2021-Q2 ...\n"
		           "  -l, --level N       depth of the rows (1 = the root; default 2)\n",
		        usage_common, usage_format);
	else if (!strcmp(cmd, "status"))
		fprintf(f, "usage: tonghop status --db DIR --appendix ID --period P [--level N | --unit CODE]\n"
		           "                      [--format table|csv|json]\n\n"
		           "Completeness per unit at depth N (default 2) or per child of CODE: expected,\n"
		           "reported, on time, late, missing, corrections; then every unit of the subtree\n"
		           "that has not reported, with its parent and contact person.\n\n%s%s"
		           "  -a, --appendix ID, -p, --period P, -l, --level N, --unit CODE\n",
		        usage_common, usage_format);
	else if (!strcmp(cmd, "report"))
		fprintf(f, "usage: tonghop report --db DIR UNIT APPENDIX PERIOD [--history] [--format FMT]\n\n"
		           "The unit's current report (column titles and values); --history lists every\n"
		           "revision (rev, commit time in local time, sender) and what changed from the\n"
		           "previous one, cell by cell.\n\n%s%s",
		        usage_common, usage_format);
	else if (!strcmp(cmd, "units"))
		fprintf(f, "usage: tonghop units (--units FILE | --db DIR) [--tree CODE] [--period P] [--format FMT]\n"
		           "       tonghop units (--db DIR | --collector EP) --versions [--format FMT]\n"
		           "       tonghop units --collector EP --key FILE --server-key FILE --submit FILE\n\n"
		           "Lists the units of a hierarchy file or of a store (the version --period uses,\n"
		           "else the newest); --tree draws CODE's subtree with contact details.\n"
		           "--versions lists every hierarchy version of the store or the collector: id,\n"
		           "effective date, units, levels, root, when and from where it was loaded, and the\n"
		           "periods bound to it (their rollups use that version only).\n"
		           "--submit FILE checks FILE here as the collector does, then sends it as a new\n"
		           "version (admin key only); the collector writes it to its --units-dir and loads\n"
		           "it.  Periods already bound to a version keep it.\n\n%s%s"
		           "  --units FILE        a hierarchy file (with --versions: its version line)\n"
		           "  --tree CODE         CODE's subtree as a tree with contact details\n"
		           "  --versions          every hierarchy version and the periods bound to it\n"
		           "  --submit FILE       send FILE to the collector as a new hierarchy version\n"
		           "  --key FILE          this tool's keypair (tonghop-collector keygen)\n"
		           "  --server-key FILE   the collector's public key (.pub)\n"
		           "  --insecure          no CURVE (a collector started with --insecure)\n",
		        usage_common, usage_format);
	else if (!strcmp(cmd, "validate"))
		fprintf(f, "usage: tonghop validate [--defs DIR] [--unit CODE] [--period P] [--appendix ID] FILE...\n\n"
		           "Reads each appendix file and validates it as the agent and the collector do;\n"
		           "prints every problem as file:line: column: problem.  Exit 0 when every file\n"
		           "is valid, 1 otherwise.\n\n%s",
		        usage_common);
	else if (!strcmp(cmd, "watch"))
		fprintf(f, "usage: tonghop watch --pub ENDPOINT (--key FILE --server-key FILE | --insecure)\n"
		           "                     [--level N] [--unit CODE] [--count N]\n\n"
		           "Follows the collector's rollup stream: one line per changed node (level, unit,\n"
		           "appendix, period, version, commit, completeness).  --level N follows a level,\n"
		           "--unit CODE one unit (with --level, the unit at that level).  A jump in a\n"
		           "node's version is flagged as a gap.  --count N stops after N messages.\n"
		           "  --key FILE          this tool's keypair (tonghop-collector keygen), role reader\n"
		           "  --server-key FILE   the collector's public key (.pub)\n");
	else if (!strcmp(cmd, "rebuild"))
		fprintf(f, "usage: tonghop rebuild --db DIR [--defs DIR]\n\n"
		           "Recomputes every rollup node from the latest revision of every report, in one\n"
		           "transaction, then verifies the store.  Safe while the collector runs (LMDB\n"
		           "serialises writers); use it after changing the appendix version in force.\n");
	else if (!strcmp(cmd, "check"))
		fprintf(f, "usage: tonghop check --db DIR [--defs DIR]\n\n"
		           "Recomputes every rollup from the latest revisions and compares it with the\n"
		           "stored one, and validates every stored report.  Exit 1 on a problem.\n\n%s",
		        usage_common);
}

enum { O_DB = 256, O_DEFS, O_UNITS, O_PARENT, O_OWN, O_COLUMNS,
       O_FORMAT, O_HISTORY, O_TREE, O_VERSIONS, O_UNIT, O_EXCEL, O_SHEET, O_PUB, O_KEY,
       O_SERVER_KEY, O_INSECURE, O_COUNT, O_COLLECTOR, O_SUBMIT };

static const struct option long_opts[] = {
	{"db", 1, 0, O_DB}, {"defs", 1, 0, O_DEFS}, {"units", 1, 0, O_UNITS},
	{"appendix", 1, 0, 'a'}, {"period", 1, 0, 'p'}, {"level", 1, 0, 'l'},
	{"parent", 1, 0, O_PARENT}, {"own", 0, 0, O_OWN}, {"columns", 1, 0, O_COLUMNS},
	{"format", 1, 0, O_FORMAT}, {"output", 1, 0, 'o'}, {"history", 0, 0, O_HISTORY},
	{"tree", 1, 0, O_TREE}, {"versions", 0, 0, O_VERSIONS}, {"unit", 1, 0, O_UNIT},
	{"excel", 0, 0, O_EXCEL}, {"sheet", 1, 0, O_SHEET}, {"help", 0, 0, 'h'},
	{"pub", 1, 0, O_PUB}, {"key", 1, 0, O_KEY}, {"server-key", 1, 0, O_SERVER_KEY},
	{"insecure", 0, 0, O_INSECURE}, {"count", 1, 0, O_COUNT}, {"collector", 1, 0, O_COLLECTOR},
	{"submit", 1, 0, O_SUBMIT},
	{0, 0, 0, 0}};

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs(usage_main, stderr);
		return EXIT_USAGE;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		fputs(usage_main, stdout);
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-V")) {
		printf("tonghop %s\n", TH_VERSION);
		return 0;
	}
	static const char *cmds[] = {"rollup", "status", "report", "units", "validate", "check",
	                             "rebuild", "watch"};
	int known = 0;
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
		known |= !strcmp(cmd, cmds[i]);
	if (!known) {
		fprintf(stderr, "%s: unknown command `%s'\n\n%s", prog, cmd, usage_main);
		return EXIT_USAGE;
	}
	opts o = {.level = 2, .fmt = TH_FMT_TABLE};
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc - 1, argv + 1, "ho:a:p:l:", long_opts, NULL)) != -1) {
		char *end;
		switch (ch) {
		case O_DB: o.db = optarg; break;
		case O_DEFS: o.defs_dir = optarg; break;
		case O_UNITS: o.units_file = optarg; break;
		case 'a': o.appendix = optarg; break;
		case 'p': o.period = optarg; break;
		case 'l':
			o.level = strtol(optarg, &end, 10);
			if (*end || o.level < 1 || o.level > 1000)
				die_usage(cmd, "--level takes a positive number (1 = the root)");
			o.level_set = 1;
			break;
		case O_PARENT: o.parent = optarg; break;
		case O_OWN: o.own = 1; break;
		case O_COLUMNS: o.columns = optarg; break;
		case O_FORMAT: {
			int f = th_format_parse(optarg);
			if (f < 0)
				die_usage(cmd, "--format takes table, csv, json or xlsx");
			o.fmt = (th_format)f;
			break;
		}
		case 'o': o.out_path = optarg; break;
		case O_HISTORY: o.history = 1; break;
		case O_TREE: o.tree = optarg; break;
		case O_VERSIONS: o.versions = 1; break;
		case O_UNIT: o.unit = optarg; break;
		case O_EXCEL: o.excel = 1; break;
		case O_SHEET: o.sheet = optarg; break;
		case O_PUB: o.pub = optarg; break;
		case O_KEY: o.key = optarg; break;
		case O_SERVER_KEY: o.server_key = optarg; break;
		case O_INSECURE: o.insecure = 1; break;
		case O_COLLECTOR: o.collector = optarg; break;
		case O_SUBMIT: o.submit = optarg; break;
		case O_COUNT:
			o.count = strtol(optarg, &end, 10);
			if (*end || o.count < 0)
				die_usage(cmd, "--count takes a number");
			break;
		case 'h': usage_cmd(cmd, stdout); return 0;
		default:
			fprintf(stderr, "(try `%s %s --help')\n", prog, cmd);
			return EXIT_USAGE;
		}
	}
	char **rest = argv + 1 + optind;
	int nrest = argc - 1 - optind;
	if (o.fmt == TH_FMT_XLSX && !o.out_path)
		die_usage(cmd, "--format xlsx needs -o FILE");
	if (o.appendix && strlen(o.appendix) > TH_CODE_MAX)
		die_usage(cmd, "--appendix is too long");
	if (o.period && !th_period_valid(o.period))
		die_usage(cmd, "--period takes yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm");

	if (!strcmp(cmd, "validate")) {
		if (nrest < 1)
			die_usage(cmd, "give at least one FILE");
		return cmd_validate(&o, rest, nrest);
	}
	if (!strcmp(cmd, "watch")) {
		if (nrest)
			die_usage(cmd, "unexpected argument");
		if (!o.pub)
			die_usage(cmd, "--pub ENDPOINT is required");
		return th_cmd_watch(o.pub, o.key, o.server_key, o.insecure, o.level_set ? o.level : 0,
		                    o.unit, o.count);
	}
	if (!strcmp(cmd, "units")) {
		if (nrest)
			die_usage(cmd, "unexpected argument");
		if (o.submit && !o.collector)
			die_usage(cmd, "--submit FILE sends FILE to the collector: give --collector ENDPOINT "
			               "(with --key FILE --server-key FILE of an admin key)");
		if (o.submit && (o.db || o.units_file || o.versions || o.tree))
			die_usage(cmd, "--submit FILE goes with --collector only");
		if (o.collector && o.db)
			die_usage(cmd, "give --db DIR or --collector ENDPOINT, not both");
		if (o.collector && !o.submit && !o.versions)
			die_usage(cmd, "--collector works with --versions and --submit; use --db DIR to list units");
		if (!o.units_file && !o.db && !o.collector)
			die_usage(cmd, "give --units FILE, --db DIR or --collector ENDPOINT");
		if (o.units_file && (o.db || o.collector))
			die_usage(cmd, "give --units FILE or a store, not both");
		return cmd_units(&o);
	}
	int remote_ok = !strcmp(cmd, "rollup") || !strcmp(cmd, "status");
	if (o.collector && !remote_ok)
		die_usage(cmd, "--collector works with rollup and status; use --db DIR");
	if (o.collector && o.db)
		die_usage(cmd, "give --db DIR or --collector ENDPOINT, not both");
	if (!o.db && !o.collector)
		die_usage(cmd, remote_ok ? "--db DIR (or --collector ENDPOINT) is required"
		                         : "--db DIR is required");
	if (!strcmp(cmd, "check")) {
		if (nrest)
			die_usage(cmd, "unexpected argument");
		return cmd_check(&o);
	}
	if (!strcmp(cmd, "rebuild")) {
		if (nrest)
			die_usage(cmd, "unexpected argument");
		return cmd_rebuild(&o);
	}
	if (!strcmp(cmd, "report")) {
		if (nrest != 3)
			die_usage(cmd, "give UNIT APPENDIX PERIOD");
		if (!th_period_valid(rest[2]))
			die_usage(cmd, "PERIOD takes yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm");
		if (o.fmt == TH_FMT_XLSX && o.history)
			die_usage(cmd, "--history prints text; use --format table");
		return cmd_report(&o, rest[0], rest[1], rest[2]);
	}
	if (nrest)
		die_usage(cmd, "unexpected argument");
	if (!o.appendix || !o.period)
		die_usage(cmd, "--appendix and --period are required");
	if (!strcmp(cmd, "status"))
		return cmd_status(&o);
	if (o.parent && o.level_set)
		die_usage(cmd, "give --level or --parent, not both");
	return cmd_rollup(&o);
}

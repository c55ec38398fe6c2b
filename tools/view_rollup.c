/* view_rollup.c -- the rollup table of a level (th_view.h): the column
 * choice, sums, counts, min/max and ratios of sums, the total row. */
#include "view_private.h"
#include "th_rollup.h"

#include <stdlib.h>
#include <string.h>

/* An output column of a rollup table. */
typedef struct rcol {
	enum { RC_COL, RC_ENUMVAL, RC_RATIO } kind;
	size_t idx;      /* column or ratio index */
	size_t val;      /* enum value index */
	char *key;       /* json key, and the aligned table's head */
	char *title;
} rcol;

typedef struct rollup_ctx {
	const th_def *d;
	int own;
	th_table *t;
	rcol *cols;
	size_t n_cols;
	int64_t *acc;    /* own: sum of the rows shown */
	int err;
} rollup_ctx;

#define RFIXED 4     /* unit, name, expected, reported */

static int add_rcol(rollup_ctx *x, int kind, size_t idx, size_t val)
{
	rcol *n = realloc(x->cols, (x->n_cols + 1) * sizeof *n);
	if (!n)
		return TH_ENOMEM;
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
	if (a < 0 || b < 0) {
		if (a >= 0)
			free(c->key);
		if (b >= 0)
			free(c->title);
		return TH_ENOMEM;
	}
	x->n_cols++;
	return 0;
}

/* 0, TH_ENOMEM, or 1 when id names nothing that rolls up. */
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
				return TH_ENOMEM;
		return 0;
	}
	return colon ? 1 : add_rcol(x, RC_COL, (size_t)c, 0);
}

static int enum_columns(rollup_ctx *x, size_t c)
{
	int rc = 0;
	for (size_t v = 0; v < x->d->cols[c].n_values && !rc; v++)
		rc = add_rcol(x, RC_ENUMVAL, c, v);
	return rc;
}

/* Default: the summed columns the ratios are made of (up to 5; else the first
 * 5 summed columns; else the values of the derived status column, else of the
 * first count_by column), then every ratio. */
static int default_columns(rollup_ctx *x)
{
	const th_def *d = x->d;
	char *used = calloc(d->n_cols ? d->n_cols : 1, 1);
	size_t n = 0;
	if (!used)
		return TH_ENOMEM;
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
		if (!rc)
			rc = enum_columns(x, d->derive->status_col);
		n = 1;
	}
	for (size_t c = 0; c < d->n_cols && n == 0 && !rc; c++)
		if (d->cols[c].rollup == TH_ROLL_COUNT_BY) {
			rc = enum_columns(x, c);
			n = 1;
		}
	for (size_t r = 0; r < d->n_ratios && !rc; r++)
		rc = add_rcol(x, RC_RATIO, r, 0);
	free(used);
	return rc;
}

/* The chosen columns' cells of row from vector v. */
static void fill_row(rollup_ctx *x, long row, const int64_t *v)
{
	const th_def *d = x->d;
	for (size_t i = 0; i < x->n_cols; i++) {
		const rcol *c = &x->cols[i];
		size_t tc = RFIXED + i;
		if (c->kind == RC_RATIO) {
			int64_t num, den;
			if (th_rollup_ratio(d, v, c->idx, &num, &den) == 0)
				th_table_set_ratio(x->t, (size_t)row, tc, num, den);
		} else if (c->kind == RC_ENUMVAL) {
			if (v[0] != 0)         /* no rows: null */
				th_table_set_int(x->t, (size_t)row, tc, v[d->cols[c->idx].slot + c->val]);
		} else {
			const th_column *col = &d->cols[c->idx];
			int is_null = 1;
			int64_t val = th_rollup_value(d, v, c->idx, &is_null);
			if (is_null)
				continue;
			if (col->type == TH_T_DEC)
				th_table_set_dec(x->t, (size_t)row, tc, val, col->scale);
			else if (col->type == TH_T_DATE)
				th_table_set_date(x->t, (size_t)row, tc, (int32_t)val);
			else
				th_table_set_int(x->t, (size_t)row, tc, val);
		}
	}
}

static void fill_fixed(th_table *t, long row, const char *code, const char *name, const th_node *n)
{
	th_table_set(t, (size_t)row, 0, code);
	th_table_set(t, (size_t)row, 1, name);
	th_table_set_int(t, (size_t)row, 2, n->expected);
	th_table_set_int(t, (size_t)row, 3, n->reported);
}

static int rollup_cb(void *ctx, const th_unit *u, const th_node *n)
{
	rollup_ctx *x = ctx;
	long row = th_table_row(x->t);
	if (row < 0)
		return TH_ENOMEM;
	fill_fixed(x->t, row, u->code, u->name, n);
	const int64_t *v = x->own ? n->own : n->total;
	if (v)
		fill_row(x, row, v);
	if (x->own && n->own && th_rollup_add(x->d, x->acc, n->own) != 0)
		x->err = TH_EOVERFLOW;
	return 0;
}

/* The columns req asks for (or the default). */
static int choose_columns(rollup_ctx *x, const char *columns, th_diag *diag)
{
	if (!columns)
		return default_columns(x) ? th_view_fail(diag, TH_ENOMEM, "out of memory") : 0;
	char *list = strdup(columns), *save = NULL;
	int rc = list ? 0 : TH_ENOMEM;
	for (char *tok = list ? strtok_r(list, ",", &save) : NULL; tok && !rc;
	     tok = strtok_r(NULL, ",", &save)) {
		rc = add_column_by_id(x, tok);
		if (rc > 0)
			rc = th_view_fail(diag, TH_EINVAL, "%s has no column or ratio `%s' that rolls up",
			                  x->d->id, tok);
	}
	free(list);
	return rc == TH_ENOMEM ? th_view_fail(diag, rc, "out of memory") : rc;
}

static void make_table(rollup_ctx *x)
{
	static const char *fixed_keys[RFIXED] = {"unit", "name", "expected", "reported"};
	static const char *fixed_titles[RFIXED] = {"Mã", "Đơn vị", "Phải nộp", "Đã nộp"};
	for (size_t i = 0; i < RFIXED; i++)
		th_table_column(x->t, i, fixed_keys[i], fixed_titles[i], NULL, i >= 2);
	/* the aligned table heads the columns by id (narrow) and lists the titles below */
	for (size_t i = 0; i < x->n_cols; i++) {
		th_table_column(x->t, RFIXED + i, x->cols[i].key, x->cols[i].title, x->cols[i].key, 1);
		th_table_add_note(x->t, x->cols[i].key, x->cols[i].title);
	}
	th_table_add_note(x->t, NULL, "Empty: no unit reported the figure; —: ratio with a zero denominator.");
}

int th_view_rollup(th_source *src, const th_rollup_req *req, th_doc **out, th_diag *diag)
{
	rollup_ctx x = {.own = req->own};
	th_source_unit top;
	int rc;
	uint32_t level = req->level;
	if (!(x.d = th_view_def(src, req->appendix, req->period, diag)))
		return TH_EAPPENDIX;
	if ((rc = choose_columns(&x, req->columns, diag)) != 0)
		goto out;
	x.t = th_table_new(RFIXED + x.n_cols);
	x.acc = calloc(x.d->n_slots ? x.d->n_slots : 1, sizeof *x.acc);
	if (!x.t || !x.acc) {
		rc = th_view_fail(diag, TH_ENOMEM, "out of memory");
		goto out;
	}
	th_rollup_zero(x.d, x.acc);
	make_table(&x);
	if ((rc = th_view_top(src, x.d, req->appendix, req->period, req->parent, &level, &top, diag)))
		goto out;
	rc = th_source_level(src, x.d, req->appendix, req->period, level, req->parent, rollup_cb, &x);
	if (rc != 0 || x.err) {
		rc = th_view_fail(diag, rc ? rc : x.err, "reading rollups: %s",
		                  rc ? th_source_error(src) : th_strerror(x.err));
		goto out;
	}
	/* The total row: the parent's (or, for a level, the root's) subtree total;
	 * with own the sum of the rows shown. */
	if (level > 1 || req->own) {
		th_node tn;
		if ((rc = th_source_node(src, x.d, req->appendix, req->period, top.code, &tn)) != 0) {
			th_view_fail(diag, rc, "reading %s: %s", top.code, th_source_error(src));
			goto out;
		}
		long row = th_table_row(x.t);
		char label[600];
		snprintf(label, sizeof label, "%s %s", req->own ? "Cộng" : "Tổng", top.name);
		if (row >= 0) {
			fill_fixed(x.t, row, req->own ? "" : top.code, label, &tn);
			fill_row(&x, row, req->own ? x.acc : tn.total);
		}
		th_node_free(&tn);
	}
	th_table_add_title(x.t, "%s — %s, kỳ %s, %s", x.d->id, x.d->title, req->period,
	                   req->own ? "số liệu riêng của đơn vị" : "tổng hợp cả đơn vị trực thuộc");
	th_table_add_title(x.t, "%s cấp %u%s%s", req->parent ? "Các đơn vị trực thuộc" : "Các đơn vị",
	                   level, req->parent ? " của " : "", req->parent ? top.name : "");
	th_table_heads(x.t, TH_HEAD_TITLE);
	if (!(*out = th_doc_of(x.t)))
		rc = th_view_fail(diag, TH_ENOMEM, "out of memory");
	x.t = NULL;
out:
	for (size_t i = 0; i < x.n_cols; i++) {
		free(x.cols[i].key);
		free(x.cols[i].title);
	}
	free(x.cols);
	free(x.acc);
	th_table_destroy(&x.t);
	return rc;
}

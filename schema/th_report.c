/* th_report.c -- reports: construction, validation, row order (the canonical form and
 * its hash are th_canon.c). */
#include "th_report.h"

#include <stdlib.h>
#include <string.h>

th_report *th_report_new(const char *unit, const char *appendix, uint32_t version,
                         const char *period, uint64_t rev, size_t n_cols)
{
	th_report *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->unit = strdup(unit ? unit : "");
	r->appendix = strdup(appendix ? appendix : "");
	r->period = strdup(period ? period : "");
	r->version = version;
	r->rev = rev;
	r->n_cols = n_cols;
	if (!r->unit || !r->appendix || !r->period)
		th_report_destroy(&r);
	return r;
}

static void free_cells(th_report *r)
{
	for (size_t i = 0; r->cells && i < r->n_rows * r->n_cols; i++)
		free(r->cells[i].s);
	free(r->cells);
	r->cells = NULL;
}

void th_report_destroy(th_report **pr)
{
	if (!pr || !*pr)
		return;
	th_report *r = *pr;
	free_cells(r);
	free(r->unit);
	free(r->appendix);
	free(r->period);
	free(r);
	*pr = NULL;
}

long th_report_add_row(th_report *r)
{
	if (r->n_rows >= 10000000)
		return TH_ETOOBIG;
	size_t n = (r->n_rows + 1) * r->n_cols;
	/* grow geometrically: capacity is the next power of two of rows */
	size_t rows = r->n_rows + 1;
	if ((rows & (rows - 1)) == 0 || r->n_rows == 0) {
		size_t cap = rows < 4 ? 4 : rows * 2;
		size_t ncell = cap * r->n_cols;
		th_value *c = realloc(r->cells, (ncell ? ncell : 1) * sizeof *c);
		if (!c)
			return TH_ENOMEM;
		r->cells = c;
	}
	for (size_t i = r->n_rows * r->n_cols; i < n; i++) {
		memset(&r->cells[i], 0, sizeof r->cells[i]);
		r->cells[i].null = 1;
	}
	return (long)r->n_rows++;
}

th_report *th_report_clone(const th_report *src)
{
	th_report *r = th_report_new(src->unit, src->appendix, src->version, src->period, src->rev,
	                             src->n_cols);
	if (!r)
		return NULL;
	r->as_of = src->as_of;
	r->tombstone = src->tombstone;
	for (size_t i = 0; i < src->n_rows; i++) {
		if (th_report_add_row(r) < 0)
			goto fail;
		for (size_t c = 0; c < src->n_cols; c++)
			if (th_value_copy(th_report_cell(r, i, c), th_report_cell(src, i, c)))
				goto fail;
	}
	return r;
fail:
	th_report_destroy(&r);
	return NULL;
}

static int code_valid(const char *s)
{
	if (!s)
		return 0;
	size_t n = strlen(s);
	if (n == 0 || n > TH_CODE_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

/* --- validation ------------------------------------------------------------ */

static int cmp_rows(const th_report *r, const th_def *d, size_t a, size_t b)
{
	for (size_t k = 0; k < d->n_key; k++) {
		size_t c = d->key_cols[k];
		int x = th_value_cmp(th_report_cell(r, a, c), th_report_cell(r, b, c), d->cols[c].type);
		if (x)
			return x;
	}
	return 0;
}

struct sort_ctx {
	const th_report *r;
	const th_def *d;
};

static int cmp_idx(const void *pa, const void *pb, void *ctx)
{
	const struct sort_ctx *c = ctx;
	size_t a = *(const size_t *)pa, b = *(const size_t *)pb;
	int x = cmp_rows(c->r, c->d, a, b);
	return x ? x : (a < b ? -1 : a > b);
}

size_t *th_report_key_order(const th_report *r, const th_def *d)
{
	size_t *idx = malloc((r->n_rows ? r->n_rows : 1) * sizeof *idx);
	if (!idx)
		return NULL;
	for (size_t i = 0; i < r->n_rows; i++)
		idx[i] = i;
	if (d->n_key && r->n_rows > 1) {
		struct sort_ctx c = {r, d};
		qsort_r(idx, r->n_rows, sizeof *idx, cmp_idx, &c);
	}
	return idx;
}

static int check_cell(th_report *r, const th_def *d, size_t row, size_t c, th_diag *diag)
{
	const th_column *col = &d->cols[c];
	th_value *v = th_report_cell(r, row, c);
	const char *f = NULL;
	long rw = (long)row + 1;
	if (v->null) {
		if (col->required)
			return th_diag_add(diag, TH_SEV_ERROR, TH_EMISSING, f, 0, rw, col->id,
			                   "a value is required");
		return TH_OK;
	}
	switch (col->type) {
	case TH_T_INT:
	case TH_T_DEC:
		if (col->has_min && v->i < col->min)
			return th_diag_add(diag, TH_SEV_ERROR, TH_ERANGE, f, 0, rw, col->id,
			                   "%lld is below the minimum %lld", (long long)v->i, (long long)col->min);
		if (col->has_max && v->i > col->max)
			return th_diag_add(diag, TH_SEV_ERROR, TH_ERANGE, f, 0, rw, col->id,
			                   "%lld is above the maximum %lld", (long long)v->i, (long long)col->max);
		break;
	case TH_T_DATE:
		if (v->i > INT32_MAX || v->i < 0 || !th_date_valid((int32_t)v->i))
			return th_diag_add(diag, TH_SEV_ERROR, TH_ERANGE, f, 0, rw, col->id,
			                   "%lld is not a calendar date (yyyymmdd)", (long long)v->i);
		if ((col->has_min && v->i < col->min) || (col->has_max && v->i > col->max))
			return th_diag_add(diag, TH_SEV_ERROR, TH_ERANGE, f, 0, rw, col->id,
			                   "date %lld outside the allowed range", (long long)v->i);
		break;
	case TH_T_ENUM:
		if (v->i < 0 || (uint64_t)v->i >= col->n_values)
			return th_diag_add(diag, TH_SEV_ERROR, TH_ERANGE, f, 0, rw, col->id,
			                   "enum index %lld out of range", (long long)v->i);
		break;
	case TH_T_BOOL:
		if (v->i != 0 && v->i != 1)
			return th_diag_add(diag, TH_SEV_ERROR, TH_ETYPE, f, 0, rw, col->id,
			                   "not a boolean");
		break;
	case TH_T_TEXT: {
		if (!v->s)
			return th_diag_add(diag, TH_SEV_ERROR, TH_ETYPE, f, 0, rw, col->id, "text missing");
		int ok = v->nfc ? 1 : th_utf8_check(v->s, v->len);
		if (ok < 0)
			return th_diag_add(diag, TH_SEV_ERROR, TH_EUTF8, f, 0, rw, col->id,
			                   "invalid UTF-8 or control characters");
		if (ok == 0) {   /* only text outside the NFC-stable ranges is normalised */
			char *nfc;
			size_t nlen;
			int rc = th_utf8_nfc(v->s, v->len, &nfc, &nlen);
			if (rc)
				return th_diag_add(diag, TH_SEV_ERROR, rc, f, 0, rw, col->id, "%s", th_strerror(rc));
			free(v->s);
			v->s = nfc;
			v->len = (uint32_t)nlen;
			v->nfc = 1;
		}
		uint32_t max = col->max_len ? col->max_len : 2000;
		if (v->len > max)
			return th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, f, 0, rw, col->id,
			                   "text of %u bytes is longer than %u", v->len, max);
		break;
	}
	default:
		return th_diag_add(diag, TH_SEV_ERROR, TH_ETYPE, f, 0, rw, col->id, "unknown type");
	}
	return TH_OK;
}

static int sum_terms(const th_report *r, size_t row, const size_t *cols, size_t n, int64_t *out,
                     int *has_null)
{
	int64_t s = 0;
	for (size_t k = 0; k < n; k++) {
		const th_value *v = th_report_cell(r, row, cols[k]);
		if (v->null) {
			*has_null = 1;
			return TH_OK;
		}
		if (__builtin_add_overflow(s, v->i, &s))
			return TH_EOVERFLOW;
	}
	*out = s;
	return TH_OK;
}

static const char *task_code(const th_def *d, int status)
{
	const th_column *c = &d->cols[d->derive->status_col];
	int idx = d->derive->code_of[status];
	return idx >= 0 && (size_t)idx < c->n_values ? c->values[idx].code : "?";
}

static void derive_status(th_report *r, const th_def *d, size_t row, th_diag *diag)
{
	const th_derive *dv = d->derive;
	const th_value *dl = th_report_cell(r, row, dv->deadline_col);
	const th_value *dn = th_report_cell(r, row, dv->done_col);
	th_value *st = th_report_cell(r, row, dv->status_col);
	int32_t asof = r->as_of ? r->as_of : th_date_today();
	int derived;
	if (!dn->null)
		derived = (!dl->null && dn->i > dl->i) ? TH_TASK_DONE_LATE : TH_TASK_DONE_ON_TIME;
	else if (dl->null)
		derived = TH_TASK_NO_DEADLINE;
	else if (asof > dl->i)
		derived = TH_TASK_OVERDUE;
	else
		derived = TH_TASK_IN_PROGRESS;
	int code = dv->code_of[derived];
	if (code < 0)
		return;
	if (!st->null && st->i != code) {
		/* a declared "not started" agrees with "in progress within deadline" */
		if (derived == TH_TASK_IN_PROGRESS && st->i == dv->code_of[TH_TASK_NOT_STARTED])
			return;
		const th_column *sc = &d->cols[dv->status_col];
		const char *declared = st->i >= 0 && (size_t)st->i < sc->n_values ? sc->values[st->i].code : "?";
		th_diag_add(diag, TH_SEV_WARNING, TH_ERULE, NULL, 0, (long)row + 1, sc->id,
		            "declared status %s disagrees with the dates; derived %s", declared,
		            task_code(d, derived));
	}
	st->null = 0;
	st->i = code;
}

int th_report_validate(th_report *r, const th_def *d, th_diag *diag)
{
	size_t errors = 0;
#define ERR(...) (errors++, th_diag_add(diag, TH_SEV_ERROR, __VA_ARGS__))
	if (!r || !d)
		return TH_EINVAL;
	if (strcmp(r->appendix, d->id) != 0 || r->version != d->version)
		ERR(TH_EAPPENDIX, NULL, 0, 0, NULL, "report is %s version %u, definition is %s version %u",
		    r->appendix, r->version, d->id, d->version);
	if (!code_valid(r->unit))
		ERR(TH_EUNIT, NULL, 0, 0, NULL, "unit code \"%.64s\" is empty, too long or has blanks",
		    r->unit);
	if (!th_period_valid(r->period))
		ERR(TH_EPERIOD, NULL, 0, 0, NULL,
		    "period \"%.32s\" is not yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm", r->period);
	if (r->as_of && !th_date_valid(r->as_of))
		ERR(TH_ERANGE, NULL, 0, 0, NULL, "as-of date %d is not a calendar date", r->as_of);
	if (r->n_cols != d->n_cols) {
		ERR(TH_ETYPE, NULL, 0, 0, NULL, "report has %zu columns, %s version %u has %zu",
		    r->n_cols, d->id, d->version, d->n_cols);
		return TH_ETYPE;
	}
	if (r->tombstone && r->n_rows)
		ERR(TH_EINVAL, NULL, 0, 0, NULL, "a withdrawal carries no rows");
	uint32_t max_rows = d->n_key == 0 ? 1 : d->max_rows;
	if (r->n_rows > max_rows) {
		ERR(TH_ETOOBIG, NULL, 0, 0, NULL, "%zu rows, at most %u allowed", r->n_rows, max_rows);
		return TH_ETOOBIG;
	}
	for (size_t row = 0; row < r->n_rows; row++) {
		for (size_t c = 0; c < d->n_cols; c++)
			if (check_cell(r, d, row, c, diag))
				errors++;
		for (size_t k = 0; k < d->n_rules; k++) {
			const th_rule *ru = &d->rules[k];
			int64_t a = 0, b = 0;
			int nul = 0;
			if (sum_terms(r, row, ru->left, ru->n_left, &a, &nul) ||
			    sum_terms(r, row, ru->right, ru->n_right, &b, &nul)) {
				ERR(TH_EOVERFLOW, NULL, 0, (long)row + 1, d->cols[ru->left[0]].id,
				    "rule %s: sum overflows", ru->id);
				continue;
			}
			if (!nul && a != b)
				ERR(TH_ERULE, NULL, 0, (long)row + 1, d->cols[ru->left[0]].id,
				    "rule %s (%s) does not hold: %lld on the left, %lld on the right", ru->id,
				    ru->title ? ru->title : "", (long long)a, (long long)b);
		}
	}
	if (errors == 0 && d->derive)
		for (size_t row = 0; row < r->n_rows; row++)
			derive_status(r, d, row, diag);
	if (d->n_key && r->n_rows > 1 && errors == 0) {
		size_t *idx = th_report_key_order(r, d);
		if (!idx)
			return TH_ENOMEM;
		for (size_t i = 1; i < r->n_rows; i++)
			if (cmp_rows(r, d, idx[i - 1], idx[i]) == 0)
				ERR(TH_EDUPKEY, NULL, 0, (long)idx[i] + 1, d->cols[d->key_cols[0]].id,
				    "row key repeats row %zu", idx[i - 1] + 1);
		free(idx);
	}
#undef ERR
	return errors ? TH_EINVAL : TH_OK;
}

void th_report_sort(th_report *r, const th_def *d)
{
	if (!d->n_key || r->n_rows < 2)
		return;
	size_t *idx = th_report_key_order(r, d);
	th_value *nc = malloc(r->n_rows * r->n_cols * sizeof *nc);
	if (!idx || !nc) {
		free(idx);
		free(nc);
		return;     /* leave unsorted; canonical form sorts on its own */
	}
	for (size_t i = 0; i < r->n_rows; i++)
		memcpy(&nc[i * r->n_cols], &r->cells[idx[i] * r->n_cols], r->n_cols * sizeof *nc);
	free(r->cells);
	r->cells = nc;
	free(idx);
}

int th_report_key(const char *unit, const char *appendix, const char *period, char *buf, size_t cap)
{
	size_t a = strlen(unit), b = strlen(appendix), c = strlen(period);
	size_t n = a + b + c + 2;
	if (n > cap)
		return TH_ETOOBIG;
	memcpy(buf, unit, a);
	buf[a] = 0;
	memcpy(buf + a + 1, appendix, b);
	buf[a + b + 1] = 0;
	memcpy(buf + a + b + 2, period, c);
	return (int)n;
}

/* th_rollup.c -- rollup vectors (DESIGN section 6); layout in th_def.h.
 *
 * Additive slots (row count, sums, non-null counts, count_true, count_by,
 * ratio slots) add and subtract exactly with overflow checks; th_rollup_add
 * and th_rollup_sub check everything first and change acc only when the whole
 * operation succeeds.  min/max value slots merge on add; on sub, removing a
 * value equal to (or beyond) the extremum while values remain asks the
 * caller to recompute.
 */
#include "th_rollup.h"

#include <stdlib.h>
#include <string.h>

void th_rollup_zero(const th_def *d, int64_t *v)
{
	if (d && v)
		memset(v, 0, d->n_slots * sizeof *v);
}

static int is_minmax(th_rollup_kind k)
{
	return k == TH_ROLL_MIN || k == TH_ROLL_MAX;
}

/* 1 when a is a better extremum than b for kind k. */
static int better(th_rollup_kind k, int64_t a, int64_t b)
{
	return k == TH_ROLL_MIN ? a < b : a > b;
}

/* Value of one ratio term in a row; 0 with *null = 1 when the cell is null. */
static int64_t term(const th_report *r, size_t row, size_t col, long code, int *null)
{
	const th_value *c = th_report_cell(r, row, col);
	if (c->null) {
		*null = 1;
		return 0;
	}
	if (code >= 0)
		return c->i == code;
	return c->i;
}

static int terms_sum(const th_def *d, const th_report *r, size_t row, const size_t *cols,
                     const long *codes, size_t n, int64_t *sum, int *null)
{
	int64_t s = 0;
	for (size_t i = 0; i < n; i++) {
		long code = codes ? codes[i] : -1;
		int64_t t = term(r, row, cols[i], code, null);
		if (*null)
			return 0;
		if (code < 0 && d->cols[cols[i]].type == TH_T_BOOL)
			t = t != 0;
		if (__builtin_add_overflow(s, t, &s))
			return TH_EOVERFLOW;
	}
	*sum = s;
	return 0;
}

static int contrib_rows(const th_def *d, const th_report *r, int64_t *v)
{
	if (r->n_rows > (uint64_t)INT64_MAX)
		return TH_EOVERFLOW;
	v[0] = (int64_t)r->n_rows;
	for (size_t row = 0; row < r->n_rows; row++) {
		for (size_t ci = 0; ci < d->n_cols; ci++) {
			const th_column *c = &d->cols[ci];
			const th_value *x = th_report_cell(r, row, ci);
			int64_t *s = v + c->slot;
			if (c->rollup == TH_ROLL_NONE || x->null)
				continue;
			switch (c->rollup) {
			case TH_ROLL_SUM:
				if (__builtin_add_overflow(s[0], x->i, &s[0]))
					return TH_EOVERFLOW;
				s[1]++;
				break;
			case TH_ROLL_COUNT_TRUE:
				s[0] += x->i != 0;
				s[1]++;
				break;
			case TH_ROLL_COUNT_BY:
				if (x->i < 0 || (uint64_t)x->i >= c->n_values)
					return TH_ERANGE;
				s[x->i]++;
				break;
			case TH_ROLL_MIN:
			case TH_ROLL_MAX:
				if (s[1] == 0 || better(c->rollup, x->i, s[0]))
					s[0] = x->i;
				s[1]++;
				break;
			case TH_ROLL_NONE:
				break;
			}
		}
		for (size_t qi = 0; qi < d->n_ratios; qi++) {
			const th_ratio *q = &d->ratios[qi];
			int64_t num = 0, den = 0, *s = v + q->slot;
			int null = 0, rc;
			rc = terms_sum(d, r, row, q->num, q->num_code, q->n_num, &num, &null);
			if (rc == 0 && !null)
				rc = terms_sum(d, r, row, q->den, q->den_code, q->n_den, &den, &null);
			if (rc != 0)
				return rc;
			if (null)
				continue;
			if (__builtin_add_overflow(s[0], num, &s[0]) ||
			    __builtin_add_overflow(s[1], den, &s[1]))
				return TH_EOVERFLOW;
			s[2]++;
		}
	}
	return 0;
}

int th_rollup_contrib(const th_def *d, const th_report *r, int64_t *v)
{
	int rc;
	if (!d || !r || !v || (!r->tombstone && r->n_rows > 0 && r->n_cols != d->n_cols))
		return TH_EINVAL;
	th_rollup_zero(d, v);
	if (r->tombstone)
		return 0;
	rc = contrib_rows(d, r, v);
	if (rc != 0)
		th_rollup_zero(d, v);
	return rc;
}

/* Calls f on every additive slot index; min/max value slots are skipped. */
#define FOR_ADDITIVE(d, s, body)                                                   \
	do {                                                                       \
		if ((d)->slot_kind) {                                              \
			for (size_t s = 0; s < (d)->n_slots; s++)                  \
				if ((d)->slot_kind[s] != TH_SLOT_EXTREMUM) {       \
					body;                                      \
				}                                                  \
			break;                                                     \
		}                                                                  \
		size_t s = 0;                                                      \
		body;                                                              \
		for (size_t ci_ = 0; ci_ < (d)->n_cols; ci_++) {                   \
			const th_column *c_ = &(d)->cols[ci_];                     \
			for (size_t k_ = 0; k_ < c_->n_slots; k_++) {              \
				if (is_minmax(c_->rollup) && k_ == 0)              \
					continue;                                  \
				s = c_->slot + k_;                                 \
				body;                                              \
			}                                                          \
		}                                                                  \
		for (size_t qi_ = 0; qi_ < (d)->n_ratios; qi_++)                   \
			for (size_t k_ = 0; k_ < 3; k_++) {                        \
				s = (d)->ratios[qi_].slot + k_;                    \
				body;                                              \
			}                                                          \
	} while (0)

int th_rollup_add(const th_def *d, int64_t *acc, const int64_t *v)
{
	int64_t tmp;
	int bad = 0;
	if (!d || !acc || !v)
		return TH_EINVAL;
	FOR_ADDITIVE(d, s, if (__builtin_add_overflow(acc[s], v[s], &tmp)) bad = 1);
	if (bad)
		return TH_EOVERFLOW;
	for (size_t ci = 0; ci < d->n_cols; ci++) {
		const th_column *c = &d->cols[ci];
		if (is_minmax(c->rollup) && v[c->slot + 1] > 0 &&
		    (acc[c->slot + 1] == 0 || better(c->rollup, v[c->slot], acc[c->slot])))
			acc[c->slot] = v[c->slot];
	}
	FOR_ADDITIVE(d, s, acc[s] += v[s]);
	return 0;
}

/* 1 when slot s holds a count (may not go negative), 0 for sums. */
static int is_count_slot(const th_def *d, size_t s)
{
	if (d->slot_kind)
		return d->slot_kind[s] == TH_SLOT_COUNT;
	if (s == 0)
		return 1;
	for (size_t ci = 0; ci < d->n_cols; ci++) {
		const th_column *c = &d->cols[ci];
		if (s >= c->slot && s < c->slot + c->n_slots)
			return !(c->rollup == TH_ROLL_SUM && s == c->slot);
	}
	for (size_t qi = 0; qi < d->n_ratios; qi++)
		if (s == d->ratios[qi].slot + 2)
			return 1;
	return 0;
}

int th_rollup_sub(const th_def *d, int64_t *acc, const int64_t *v, int *need_recompute)
{
	if (!d || !acc || !v)
		return TH_EINVAL;
	/* removing v is replacing it with nothing */
	int64_t *zero = calloc(d->n_slots ? d->n_slots : 1, sizeof *zero);
	if (!zero)
		return TH_ENOMEM;
	int rc = th_rollup_replace(d, acc, v, zero, need_recompute);
	free(zero);
	return rc;
}

/* The min/max columns of th_rollup_replace: acc's values from the old counts
 * in acc (not yet updated), written to out. */
static int replace_extrema(const th_def *d, const int64_t *acc, const int64_t *vold,
                           const int64_t *vnew, int64_t *out)
{
	int need = 0;
	for (size_t ci = 0; ci < d->n_cols; ci++) {
		const th_column *c = &d->cols[ci];
		if (!is_minmax(c->rollup))
			continue;
		size_t v = c->slot, n = c->slot + 1;
		int64_t others = acc[n] - vold[n];
		int held = vold[n] > 0 && !better(c->rollup, acc[v], vold[v]);
		if (others == 0) {
			out[v] = vnew[n] > 0 ? vnew[v] : 0;
		} else if (held) {
			/* the extremum came from vold: vnew keeps it only if at least as good */
			if (vnew[n] > 0 && !better(c->rollup, vold[v], vnew[v]))
				out[v] = vnew[v];
			else
				need = 1;
		} else if (vnew[n] > 0 && better(c->rollup, vnew[v], acc[v])) {
			out[v] = vnew[v];
		}
	}
	return need;
}

/* th_rollup_replace for a parsed definition (slot_kind known): one pass that
 * computes every additive slot into a scratch vector with its checks, then the
 * extrema, then one copy; acc is untouched on error. */
static int replace_fast(const th_def *d, int64_t *acc, const int64_t *vold, const int64_t *vnew,
                        int *need_recompute)
{
	int64_t out[512];
	int over = 0, range = 0;
	const uint8_t *kind = d->slot_kind;
	for (size_t s = 0; s < d->n_slots; s++) {
		int64_t a;
		if (kind[s] == TH_SLOT_EXTREMUM) {
			out[s] = acc[s];
			continue;
		}
		over |= __builtin_sub_overflow(acc[s], vold[s], &a);
		range |= (a < 0) & (kind[s] == TH_SLOT_COUNT);
		over |= __builtin_add_overflow(a, vnew[s], &out[s]);
	}
	if (over)
		return TH_EOVERFLOW;
	if (range)
		return TH_ERANGE;
	int need = replace_extrema(d, acc, vold, vnew, out);
	memcpy(acc, out, d->n_slots * sizeof *acc);
	if (need_recompute)
		*need_recompute = need;
	return 0;
}

int th_rollup_replace(const th_def *d, int64_t *acc, const int64_t *vold, const int64_t *vnew,
                      int *need_recompute)
{
	int64_t tmp;
	int bad = 0, need = 0;
	if (!d || !acc || !vold || !vnew)
		return TH_EINVAL;
	if (d->slot_kind && d->n_slots <= 512)
		return replace_fast(d, acc, vold, vnew, need_recompute);
	FOR_ADDITIVE(d, s, {
		if (__builtin_sub_overflow(acc[s], vold[s], &tmp) ||
		    __builtin_add_overflow(tmp, vnew[s], &tmp))
			bad = TH_EOVERFLOW;
		else if (!bad && acc[s] - vold[s] < 0 && is_count_slot(d, s))
			bad = TH_ERANGE;
	});
	if (bad)
		return bad;
	/* in place: each column reads and writes only its own two slots */
	need = replace_extrema(d, acc, vold, vnew, acc);
	FOR_ADDITIVE(d, s, acc[s] = acc[s] - vold[s] + vnew[s]);
	if (need_recompute)
		*need_recompute = need;
	return 0;
}

void th_rollup_merge_extrema(const th_def *d, int64_t *acc, const int64_t *v)
{
	for (size_t ci = 0; ci < d->n_cols; ci++) {
		const th_column *c = &d->cols[ci];
		if (!is_minmax(c->rollup) || v[c->slot + 1] <= 0)
			continue;
		if (acc[c->slot + 1] == 0 || better(c->rollup, v[c->slot], acc[c->slot]))
			acc[c->slot] = v[c->slot];
		acc[c->slot + 1] += v[c->slot + 1];
	}
}

int th_rollup_equal(const th_def *d, const int64_t *a, const int64_t *b)
{
	if (!d || !a || !b)
		return 0;
	for (size_t s = 0; s < d->n_slots; s++) {
		int skip = 0;
		for (size_t ci = 0; ci < d->n_cols; ci++) {
			const th_column *c = &d->cols[ci];
			if (is_minmax(c->rollup) && s == c->slot) {
				skip = a[s + 1] == 0 && b[s + 1] == 0;
				break;
			}
		}
		if (!skip && a[s] != b[s])
			return 0;
	}
	return 1;
}

int64_t th_rollup_value(const th_def *d, const int64_t *v, size_t col, int *is_null)
{
	int null = 1;
	int64_t r = 0;
	if (d && v && col < d->n_cols) {
		const th_column *c = &d->cols[col];
		switch (c->rollup) {
		case TH_ROLL_SUM:
		case TH_ROLL_COUNT_TRUE:
		case TH_ROLL_MIN:
		case TH_ROLL_MAX:
			null = v[c->slot + 1] == 0;
			r = null ? 0 : v[c->slot];
			break;
		case TH_ROLL_COUNT_BY:
			for (size_t k = 0; k < c->n_values; k++)
				r += v[c->slot + k];
			null = r == 0;
			break;
		case TH_ROLL_NONE:
			break;
		}
	}
	if (is_null)
		*is_null = null;
	return r;
}

int th_rollup_ratio(const th_def *d, const int64_t *v, size_t ratio, int64_t *num, int64_t *den)
{
	if (!d || !v || !num || !den || ratio >= d->n_ratios)
		return TH_EINVAL;
	*num = v[d->ratios[ratio].slot];
	*den = v[d->ratios[ratio].slot + 1];
	return 0;
}

/* test_rollup.c -- rollup vectors: contributions, exact add/sub, null vs 0,
 * overflow, min/max recomputation, ratios, and a randomized property. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "th_def.h"
#include "th_report.h"
#include "th_rollup.h"
#include "testutil.h"

/* Slots: 0 rows; a 1,2; b 3,4; x 5,6; f 7,8; e 9..11; lo 12,13; hi 14,15;
 * ratio q 16..18; ratio s 19..21. */
static const char DEF[] =
	"[appendix]\nid = RT\nversion = 1\ntitle = Thử cộng dồn\nsubmitters = district\n"
	"key = k\nmax_rows = 100\n"
	"[column k]\ntitle = Mã\ntype = text\nrequired = yes\nrollup = none\n"
	"[column a]\ntitle = A\ntype = integer\nrollup = sum\n"
	"[column b]\ntitle = B\ntype = integer\nrollup = sum\n"
	"[column x]\ntitle = X\ntype = decimal\nscale = 2\nrollup = sum\n"
	"[column f]\ntitle = F\ntype = bool\nrollup = count_true\n"
	"[column e]\ntitle = E\ntype = enum\nrollup = count_by\n"
	"value = p | P\nvalue = q | Q\nvalue = r | R\n"
	"[column lo]\ntitle = Lo\ntype = integer\nrollup = min\n"
	"[column hi]\ntitle = Hi\ntype = date\nrollup = max\n"
	"[column t]\ntitle = T\ntype = text\nrollup = none\n"
	"[ratio q]\ntitle = Q\nnum = a\nden = a + b\n"
	"[ratio s]\ntitle = S\nnum = e:p + f\nden = e:p + e:q + e:r\n";

enum { C_K, C_A, C_B, C_X, C_F, C_E, C_LO, C_HI, C_T, NCOLS };
#define NS 22
#define NUL INT64_MIN   /* "null" in the row helper */

static th_def *def_new(void)
{
	th_diag *dg = th_diag_new();
	th_def *d = NULL;
	int rc = th_def_parse(DEF, sizeof DEF - 1, "rt.def", &d, dg);
	for (size_t i = 0; i < th_diag_count(dg); i++)
		fprintf(stderr, "%s\n", th_diag_text(dg, i));
	assert_int_equal(rc, 0);
	th_diag_destroy(&dg);
	assert_int_equal(d->n_cols, NCOLS);
	assert_int_equal(d->n_slots, NS);
	return d;
}

static th_report *rep_new(void)
{
	th_report *r = th_report_new("U1", "RT", 1, "2021", 1, NCOLS);
	assert_non_null(r);
	return r;
}

static void set_int(th_report *r, size_t row, size_t col, int64_t v)
{
	th_value *c = th_report_cell(r, row, col);
	if (v == NUL) {
		c->null = 1;
		return;
	}
	c->null = 0;
	c->i = v;
}

static void set_text(th_report *r, size_t row, size_t col, const char *s)
{
	th_value *c = th_report_cell(r, row, col);
	c->null = 0;
	c->s = strdup(s);
	assert_non_null(c->s);
	c->len = (uint32_t)strlen(s);
}

/* Appends a row: a, b, x, f, e, lo, hi (NUL = null). */
static void row(th_report *r, int64_t a, int64_t b, int64_t x, int64_t f, int64_t e,
                int64_t lo, int64_t hi)
{
	long i = th_report_add_row(r);
	assert_true(i >= 0);
	char key[32];
	snprintf(key, sizeof key, "k%ld", i);
	set_text(r, (size_t)i, C_K, key);
	set_int(r, (size_t)i, C_A, a);
	set_int(r, (size_t)i, C_B, b);
	set_int(r, (size_t)i, C_X, x);
	set_int(r, (size_t)i, C_F, f);
	set_int(r, (size_t)i, C_E, e);
	set_int(r, (size_t)i, C_LO, lo);
	set_int(r, (size_t)i, C_HI, hi);
	set_int(r, (size_t)i, C_T, NUL);
}

static void contrib_of(const th_def *d, th_report *r, int64_t *v)
{
	assert_int_equal(th_rollup_contrib(d, r, v), 0);
}

/* ------------------------------------------------------------------ */

static void contrib_basic(void **state)
{
	(void)state;
	th_def *d = def_new();
	th_report *r = rep_new();
	int64_t v[NS];
	row(r, 10, 5, 150, 1, 0, 7, 20210405);
	row(r, 3, 0, -25, 0, 2, 4, 20210101);
	row(r, NUL, 2, NUL, 1, 0, NUL, 20211231);
	set_text(r, 0, C_T, "ghi chú");
	contrib_of(d, r, v);
	int64_t want[NS] = {
		3,                 /* rows */
		13, 2,             /* a */
		7, 3,              /* b */
		125, 2,            /* x (scaled) */
		2, 3,              /* f */
		2, 0, 1,           /* e */
		4, 2,              /* lo */
		20211231, 3,       /* hi */
		13, 18, 2,         /* q: rows 1 and 2 (row 3 has a null a) */
		4, 3, 3,           /* s: (e:p + f) / (e:p + e:q + e:r) */
	};
	assert_memory_equal(v, want, sizeof want);
	int null = -1;
	assert_int_equal(th_rollup_value(d, v, C_A, &null), 13);
	assert_int_equal(null, 0);
	assert_int_equal(th_rollup_value(d, v, C_X, &null), 125);
	assert_int_equal(th_rollup_value(d, v, C_F, &null), 2);
	assert_int_equal(th_rollup_value(d, v, C_LO, &null), 4);
	assert_int_equal(th_rollup_value(d, v, C_HI, &null), 20211231);
	assert_int_equal(th_rollup_value(d, v, C_E, &null), 3);   /* non-null rows */
	assert_int_equal(null, 0);
	th_rollup_value(d, v, C_T, &null);
	assert_int_equal(null, 1);
	th_rollup_value(d, v, NCOLS + 5, &null);
	assert_int_equal(null, 1);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void null_is_not_zero(void **state)
{
	(void)state;
	th_def *d = def_new();
	th_report *r = rep_new();
	int64_t v[NS], acc[NS];
	row(r, NUL, 0, NUL, NUL, NUL, NUL, NUL);
	row(r, NUL, 0, NUL, NUL, NUL, NUL, NUL);
	contrib_of(d, r, v);
	int null = -1;
	assert_int_equal(th_rollup_value(d, v, C_A, &null), 0);
	assert_int_equal(null, 1);                      /* sum over no values: null */
	assert_int_equal(th_rollup_value(d, v, C_B, &null), 0);
	assert_int_equal(null, 0);                      /* sum of zeros: 0 */
	th_rollup_value(d, v, C_LO, &null);
	assert_int_equal(null, 1);
	th_rollup_value(d, v, C_E, &null);
	assert_int_equal(null, 1);
	th_rollup_value(d, v, C_F, &null);
	assert_int_equal(null, 1);
	assert_int_equal(v[0], 2);
	/* adding an all-null contribution keeps a column null */
	th_rollup_zero(d, acc);
	assert_int_equal(th_rollup_add(d, acc, v), 0);
	assert_int_equal(th_rollup_add(d, acc, v), 0);
	th_rollup_value(d, acc, C_A, &null);
	assert_int_equal(null, 1);
	assert_int_equal(acc[0], 4);
	/* an empty report is a report: zero rows, everything null */
	th_report *e = rep_new();
	contrib_of(d, e, v);
	for (size_t s = 0; s < NS; s++)
		assert_int_equal(v[s], 0);
	th_report_destroy(&e);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void contrib_tombstone(void **state)
{
	(void)state;
	th_def *d = def_new();
	th_report *r = rep_new();
	int64_t v[NS];
	memset(v, 0x5a, sizeof v);
	r->tombstone = 1;
	contrib_of(d, r, v);
	for (size_t s = 0; s < NS; s++)
		assert_int_equal(v[s], 0);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void contrib_overflow(void **state)
{
	(void)state;
	th_def *d = def_new();
	th_report *r = rep_new();
	int64_t v[NS];
	row(r, INT64_MAX, 1, NUL, NUL, NUL, NUL, NUL);
	row(r, 1, 1, NUL, NUL, NUL, NUL, NUL);
	assert_int_equal(th_rollup_contrib(d, r, v), TH_EOVERFLOW);
	th_report_destroy(&r);
	/* negative overflow too, and in a ratio numerator only */
	r = rep_new();
	row(r, INT64_MIN + 1, NUL, NUL, NUL, NUL, NUL, NUL);
	row(r, -2, NUL, NUL, NUL, NUL, NUL, NUL);
	assert_int_equal(th_rollup_contrib(d, r, v), TH_EOVERFLOW);
	th_report_destroy(&r);
	r = rep_new();
	row(r, INT64_MAX, INT64_MAX, NUL, NUL, NUL, NUL, NUL);   /* den a + b overflows */
	assert_int_equal(th_rollup_contrib(d, r, v), TH_EOVERFLOW);
	th_report_destroy(&r);
	/* the extremes themselves are fine */
	r = rep_new();
	row(r, INT64_MAX, NUL, NUL, NUL, NUL, INT64_MIN + 1, NUL);   /* NUL is INT64_MIN */
	row(r, INT64_MIN + 1, NUL, NUL, NUL, NUL, INT64_MAX, NUL);
	contrib_of(d, r, v);
	assert_int_equal(v[1], 0);
	assert_int_equal(v[2], 2);
	assert_int_equal(v[12], INT64_MIN + 1);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void add_sub_exact(void **state)
{
	(void)state;
	th_def *d = def_new();
	th_report *ra = rep_new(), *rb = rep_new();
	int64_t va[NS], vb[NS], acc[NS], zero[NS];
	int need = -1;
	row(ra, 10, 5, 150, 1, 0, 7, 20210405);
	row(rb, -3, 8, 1, 0, 1, 9, 20210101);
	row(rb, NUL, 8, NUL, 1, 2, NUL, NUL);
	contrib_of(d, ra, va);
	contrib_of(d, rb, vb);
	th_rollup_zero(d, acc);
	th_rollup_zero(d, zero);
	assert_int_equal(th_rollup_add(d, acc, va), 0);
	assert_int_equal(th_rollup_add(d, acc, vb), 0);
	assert_int_equal(acc[0], 3);
	assert_int_equal(acc[1], 7);
	assert_int_equal(acc[2], 2);
	assert_int_equal(acc[3], 21);
	assert_int_equal(acc[12], 7);           /* min(7, 9) */
	assert_int_equal(acc[14], 20210405);    /* max date */
	assert_int_equal(th_rollup_sub(d, acc, vb, &need), 0);
	assert_int_equal(need, 0);              /* 9 was not the min, 20210101 not the max */
	assert_true(th_rollup_equal(d, acc, va));
	assert_int_equal(th_rollup_sub(d, acc, va, &need), 0);
	assert_int_equal(need, 0);              /* counts went to 0: nothing to recompute */
	assert_true(th_rollup_equal(d, acc, zero));
	th_report_destroy(&ra);
	th_report_destroy(&rb);
	th_def_destroy(&d);
}

static void add_overflow_leaves_acc(void **state)
{
	(void)state;
	th_def *d = def_new();
	int64_t acc[NS], v[NS], before[NS];
	th_rollup_zero(d, acc);
	th_rollup_zero(d, v);
	acc[0] = 1;
	acc[1] = 5;                       /* a */
	acc[2] = 1;
	acc[3] = INT64_MAX - 1;           /* b */
	acc[4] = 1;
	acc[12] = 50;                     /* lo */
	acc[13] = 1;
	v[0] = 1;
	v[1] = 7;                         /* a: fine, and comes before b */
	v[2] = 1;
	v[3] = 2;                         /* b: overflows */
	v[4] = 1;
	v[12] = 3;                        /* lo: a better min */
	v[13] = 1;
	memcpy(before, acc, sizeof acc);
	assert_int_equal(th_rollup_add(d, acc, v), TH_EOVERFLOW);
	assert_memory_equal(acc, before, sizeof acc);
	v[3] = 1;
	assert_int_equal(th_rollup_add(d, acc, v), 0);
	assert_int_equal(acc[3], INT64_MAX);
	assert_int_equal(acc[1], 12);
	assert_int_equal(acc[12], 3);
	/* sub that would overflow a sum (acc - negative) is refused too */
	memcpy(before, acc, sizeof acc);
	th_rollup_zero(d, v);
	v[3] = -1;
	assert_int_equal(th_rollup_sub(d, acc, v, NULL), TH_EOVERFLOW);
	assert_memory_equal(acc, before, sizeof acc);
	th_def_destroy(&d);
}

static void sub_negative_count(void **state)
{
	(void)state;
	th_def *d = def_new();
	th_report *r = rep_new();
	int64_t v[NS], acc[NS], before[NS];
	int need = 0;
	row(r, 1, 1, 1, 1, 1, 1, 20210101);
	contrib_of(d, r, v);
	th_rollup_zero(d, acc);
	memcpy(before, acc, sizeof acc);
	assert_int_equal(th_rollup_sub(d, acc, v, &need), TH_ERANGE);
	assert_memory_equal(acc, before, sizeof acc);
	/* a sum may legitimately go negative (values may be negative) */
	th_rollup_zero(d, v);
	v[1] = 5;                           /* a's sum only, count 0 */
	assert_int_equal(th_rollup_sub(d, acc, v, &need), 0);
	assert_int_equal(acc[1], -5);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void minmax_need_recompute(void **state)
{
	(void)state;
	th_def *d = def_new();
	th_report *r1 = rep_new(), *r2 = rep_new(), *r3 = rep_new();
	int64_t v1[NS], v2[NS], v3[NS], acc[NS];
	int need = -1;
	row(r1, NUL, NUL, NUL, NUL, NUL, 5, 20210301);
	row(r2, NUL, NUL, NUL, NUL, NUL, 9, 20210601);
	row(r3, NUL, NUL, NUL, NUL, NUL, 5, 20210101);
	contrib_of(d, r1, v1);
	contrib_of(d, r2, v2);
	contrib_of(d, r3, v3);
	th_rollup_zero(d, acc);
	assert_int_equal(th_rollup_add(d, acc, v1), 0);
	assert_int_equal(th_rollup_add(d, acc, v2), 0);
	assert_int_equal(th_rollup_add(d, acc, v3), 0);
	assert_int_equal(acc[12], 5);
	assert_int_equal(acc[13], 3);
	assert_int_equal(acc[14], 20210601);
	/* removing the max date (v2) while others remain: recompute */
	assert_int_equal(th_rollup_sub(d, acc, v2, &need), 0);
	assert_int_equal(need, 1);
	assert_int_equal(acc[13], 2);
	assert_int_equal(acc[15], 2);
	/* the caller recomputes from the parts */
	th_rollup_zero(d, acc);
	assert_int_equal(th_rollup_add(d, acc, v1), 0);
	assert_int_equal(th_rollup_add(d, acc, v3), 0);
	assert_int_equal(acc[14], 20210301);
	/* removing a value equal to the min (v1's 5; v3 also has 5): recompute asked */
	need = -1;
	assert_int_equal(th_rollup_sub(d, acc, v1, &need), 0);
	assert_int_equal(need, 1);
	/* removing the last value: count 0, nothing to recompute, value null */
	th_rollup_zero(d, acc);
	assert_int_equal(th_rollup_add(d, acc, v2), 0);
	need = -1;
	assert_int_equal(th_rollup_sub(d, acc, v2, &need), 0);
	assert_int_equal(need, 0);
	int null = 0;
	th_rollup_value(d, acc, C_LO, &null);
	assert_int_equal(null, 1);
	/* a contribution without min/max values never asks */
	th_report *r4 = rep_new();
	int64_t v4[NS];
	row(r4, 1, NUL, NUL, NUL, NUL, NUL, NUL);
	contrib_of(d, r4, v4);
	th_rollup_zero(d, acc);
	assert_int_equal(th_rollup_add(d, acc, v1), 0);
	assert_int_equal(th_rollup_add(d, acc, v4), 0);
	need = -1;
	assert_int_equal(th_rollup_sub(d, acc, v4, &need), 0);
	assert_int_equal(need, 0);
	assert_true(th_rollup_equal(d, acc, v1));
	th_report_destroy(&r1);
	th_report_destroy(&r2);
	th_report_destroy(&r3);
	th_report_destroy(&r4);
	th_def_destroy(&d);
}

static void equal_ignores_empty_extremes(void **state)
{
	(void)state;
	th_def *d = def_new();
	int64_t a[NS], b[NS];
	th_rollup_zero(d, a);
	th_rollup_zero(d, b);
	a[12] = 42;             /* stale min value with count 0 */
	assert_true(th_rollup_equal(d, a, b));
	a[13] = b[13] = 1;      /* with a count the value matters */
	assert_false(th_rollup_equal(d, a, b));
	b[12] = 42;
	assert_true(th_rollup_equal(d, a, b));
	b[1] = 1;               /* an ordinary slot always matters */
	assert_false(th_rollup_equal(d, a, b));
	th_def_destroy(&d);
}

static void ratio_zero_denominator(void **state)
{
	(void)state;
	th_def *d = def_new();
	th_report *r = rep_new();
	int64_t v[NS], num = -1, den = -1;
	row(r, 0, 0, NUL, NUL, NUL, NUL, NUL);
	contrib_of(d, r, v);
	assert_int_equal(th_rollup_ratio(d, v, 0, &num, &den), 0);
	assert_int_equal(num, 0);
	assert_int_equal(den, 0);                   /* undefined: shown as "—" */
	assert_int_equal(v[18], 1);                 /* but the row was counted */
	assert_int_equal(th_rollup_ratio(d, v, 2, &num, &den), TH_EINVAL);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void ratio_paired_sums(void **state)
{
	(void)state;
	th_def *d = def_new();
	th_report *r = rep_new();
	int64_t v[NS], num, den;
	/* a unit that filled in only b must not drag the rate down */
	row(r, 8, 2, NUL, 1, 0, NUL, NUL);     /* q: 8/10 */
	row(r, NUL, 90, NUL, NUL, 1, NUL, NUL); /* q: not counted (a null) */
	row(r, 1, 1, NUL, 0, NUL, NUL, NUL);   /* q: 1/2; s: not counted (e null) */
	row(r, 0, 0, NUL, 1, 2, NUL, NUL);     /* q: 0/0 */
	contrib_of(d, r, v);
	assert_int_equal(th_rollup_ratio(d, v, 0, &num, &den), 0);
	assert_int_equal(num, 9);
	assert_int_equal(den, 12);
	assert_int_equal(v[18], 3);
	/* s = (e:p + f) / (e:p + e:q + e:r) over rows with e and f non-null */
	assert_int_equal(th_rollup_ratio(d, v, 1, &num, &den), 0);
	assert_int_equal(num, 2 + 1);   /* row 1: p + true; row 4: r + true */
	assert_int_equal(den, 1 + 1);
	assert_int_equal(v[21], 2);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

/* Ratio over count_by slots in the real PL2: on-time rate. */
static void ratio_pl2_on_time(void **state)
{
	(void)state;
	th_diag *dg = th_diag_new();
	th_def *d = NULL;
	assert_int_equal(th_def_load(tu_src("schema/appendices/PL2-v1.def"), &d, dg), 0);
	th_diag_destroy(&dg);
	long st = th_def_column(d, "trang_thai");
	assert_true(st >= 0);
	const th_derive *dv = d->derive;
	assert_non_null(dv);
	th_report *r = th_report_new("SNV", "PL2", 1, "2021", 7, d->n_cols);
	assert_non_null(r);
	int statuses[] = { TH_TASK_DONE_ON_TIME, TH_TASK_DONE_ON_TIME, TH_TASK_DONE_ON_TIME,
	                   TH_TASK_DONE_LATE, TH_TASK_OVERDUE, TH_TASK_IN_PROGRESS,
	                   TH_TASK_NOT_STARTED, TH_TASK_NO_DEADLINE, -1 };
	for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
		long k = th_report_add_row(r);
		assert_true(k >= 0);
		char code[16];
		snprintf(code, sizeof code, "NV%02zu", i);
		th_value *c = th_report_cell(r, (size_t)k, (size_t)th_def_column(d, "ma_nhiem_vu"));
		c->null = 0;
		c->s = strdup(code);
		c->len = (uint32_t)strlen(code);
		c = th_report_cell(r, (size_t)k, (size_t)st);
		if (statuses[i] >= 0) {
			c->null = 0;
			c->i = dv->code_of[statuses[i]];
		}
	}
	int64_t *v = calloc(d->n_slots, sizeof *v), num, den;
	assert_non_null(v);
	contrib_of(d, r, v);
	assert_int_equal(v[0], 9);
	const th_column *sc = &d->cols[st];
	assert_int_equal(v[sc->slot + dv->code_of[TH_TASK_DONE_ON_TIME]], 3);
	assert_int_equal(v[sc->slot + dv->code_of[TH_TASK_OVERDUE]], 1);
	int null = 1;
	assert_int_equal(th_rollup_value(d, v, (size_t)st, &null), 8);
	assert_int_equal(null, 0);
	assert_string_equal(d->ratios[0].id, "ty_le_dung_han");
	assert_int_equal(th_rollup_ratio(d, v, 0, &num, &den), 0);
	assert_int_equal(num, 3);
	assert_int_equal(den, 5);           /* 3 on time + 1 late + 1 overdue */
	assert_string_equal(d->ratios[1].id, "ty_le_hoan_thanh");
	assert_int_equal(th_rollup_ratio(d, v, 1, &num, &den), 0);
	assert_int_equal(num, 4);
	assert_int_equal(den, 8);           /* the null status is not counted */
	free(v);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

/* PL1: one row, the file-balance columns sum; index score min is decimal. */
static void contrib_pl1_row(void **state)
{
	(void)state;
	th_diag *dg = th_diag_new();
	th_def *d = NULL;
	assert_int_equal(th_def_load(tu_src("schema/appendices/PL1-v1.def"), &d, dg), 0);
	th_diag_destroy(&dg);
	th_report *r = th_report_new("00001", "PL1", 1, "2021", 1, d->n_cols);
	assert_non_null(r);
	assert_int_equal(th_report_add_row(r), 0);
	long tt = th_def_column(d, "ho_so_truc_tiep"), tn = th_def_column(d, "ho_so_truc_tuyen");
	long bc = th_def_column(d, "ho_so_buu_chinh"), dg2 = th_def_column(d, "diem_tu_danh_gia");
	long tq = th_def_column(d, "tthc_tham_quyen");
	struct { long c; int64_t v; } cells[] = { { tt, 70 }, { tn, 30 }, { bc, 0 }, { dg2, 8750 },
	                                          { tq, 312 } };
	for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
		assert_true(cells[i].c >= 0);
		th_value *c = th_report_cell(r, 0, (size_t)cells[i].c);
		c->null = 0;
		c->i = cells[i].v;
	}
	int64_t *v = calloc(d->n_slots, sizeof *v), *acc = calloc(d->n_slots, sizeof *acc);
	int64_t num, den;
	assert_non_null(v);
	assert_non_null(acc);
	contrib_of(d, r, v);
	assert_int_equal(th_rollup_add(d, acc, v), 0);
	assert_int_equal(th_rollup_add(d, acc, v), 0);   /* two identical communes */
	int null = 1;
	assert_int_equal(th_rollup_value(d, acc, (size_t)tt, &null), 140);
	assert_int_equal(th_rollup_value(d, acc, (size_t)tq, &null), 312);   /* max, not sum */
	assert_int_equal(th_rollup_value(d, acc, (size_t)dg2, &null), 8750);
	assert_int_equal(th_rollup_value(d, acc, (size_t)th_def_column(d, "rut_tra_lai"), &null), 0);
	assert_int_equal(null, 1);
	/* ty_le_truc_tuyen: online / (in person + online + post) */
	size_t qi = 0;
	while (qi < d->n_ratios && strcmp(d->ratios[qi].id, "ty_le_truc_tuyen") != 0)
		qi++;
	assert_true(qi < d->n_ratios);
	assert_int_equal(th_rollup_ratio(d, acc, qi, &num, &den), 0);
	assert_int_equal(num, 60);
	assert_int_equal(den, 200);
	free(v);
	free(acc);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

/* ------------------------------------------------------------------ */
/* randomized: add N contributions, remove a random subset; the additive
 * slots equal the sum of the rest, and when no recompute was asked the
 * min/max values equal those of the rest too. */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}
static int64_t rval(int64_t lo, int64_t hi)
{
	if (rnd() % 5 == 0)
		return NUL;
	return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* A random vector of up to 3 rows, or a tombstone's zero vector. */
static void random_part(const th_def *d, int64_t *v)
{
	th_report *r = rep_new();
	int nrows = (int)(rnd() % 4);
	if (rnd() % 10 == 0)
		r->tombstone = 1;
	for (int k = 0; k < nrows && !r->tombstone; k++) {
		int64_t date = rval(0, 364);
		row(r, rval(-1000000, 1000000), rval(0, 1000), rval(-99999, 99999), rval(0, 1),
		    rval(0, 2), rval(-50, 50), date == NUL ? NUL : 20210101 + (date % 12) * 100 + date % 28);
	}
	contrib_of(d, r, v);
	th_report_destroy(&r);
}

static void randomized_add_sub(void **state)
{
	(void)state;
	th_def *d = def_new();
	enum { N = 60, ROUNDS = 40 };
	static int64_t v[N][NS];
	for (int round = 0; round < ROUNDS; round++) {
		int64_t acc[NS], rest[NS];
		int removed[N];
		int any_need = 0;
		th_rollup_zero(d, acc);
		for (int i = 0; i < N; i++) {
			random_part(d, v[i]);
			assert_int_equal(th_rollup_add(d, acc, v[i]), 0);
		}
		/* add in another order: same result */
		th_rollup_zero(d, rest);
		for (int i = N - 1; i >= 0; i--)
			assert_int_equal(th_rollup_add(d, rest, v[i]), 0);
		assert_true(th_rollup_equal(d, acc, rest));
		/* remove a random subset */
		for (int i = 0; i < N; i++) {
			removed[i] = rnd() % 3 == 0;
			if (removed[i]) {
				int need = -1;
				assert_int_equal(th_rollup_sub(d, acc, v[i], &need), 0);
				assert_true(need == 0 || need == 1);
				any_need |= need;
			}
		}
		th_rollup_zero(d, rest);
		for (int i = 0; i < N; i++)
			if (!removed[i])
				assert_int_equal(th_rollup_add(d, rest, v[i]), 0);
		for (size_t s = 0; s < NS; s++) {
			if (s == 12 || s == 14)
				continue;   /* min/max values */
			assert_int_equal(acc[s], rest[s]);
		}
		if (!any_need)
			assert_true(th_rollup_equal(d, acc, rest));
	}
	th_def_destroy(&d);
}

/* th_rollup_replace against the sum of the parts, step by step: after every
 * replacement (recomputing extrema from the parts when asked) the accumulator
 * equals a from-scratch sum; a part that only gains rows never asks. */
static void randomized_replace(void **state)
{
	(void)state;
	th_def *d = def_new();
	enum { N = 25, STEPS = 400 };
	static int64_t part[N][NS];
	int64_t acc[NS], want[NS], vnew[NS], extra[NS];
	int asked = 0, grown = 0;
	th_rollup_zero(d, acc);
	for (int i = 0; i < N; i++) {
		random_part(d, part[i]);
		assert_int_equal(th_rollup_add(d, acc, part[i]), 0);
	}
	for (int step = 0; step < STEPS; step++) {
		int i = (int)(rnd() % N), grow = rnd() % 2, need = -1;
		if (grow) {
			memcpy(vnew, part[i], sizeof vnew);
			random_part(d, extra);
			assert_int_equal(th_rollup_add(d, vnew, extra), 0);
		} else {
			random_part(d, vnew);
		}
		assert_int_equal(th_rollup_replace(d, acc, part[i], vnew, &need), 0);
		assert_true(need == 0 || need == 1);
		if (grow && need)
			fail_msg("step %d: a part that only gained rows asked for a recompute", step);
		memcpy(part[i], vnew, sizeof vnew);
		grown += grow;
		if (need) {
			asked++;
			int64_t tmp[NS];
			th_rollup_zero(d, tmp);
			for (int k = 0; k < N; k++)
				th_rollup_merge_extrema(d, tmp, part[k]);
			acc[12] = tmp[12];
			acc[14] = tmp[14];
			assert_int_equal(acc[13], tmp[13]);
			assert_int_equal(acc[15], tmp[15]);
		}
		th_rollup_zero(d, want);
		for (int k = 0; k < N; k++)
			assert_int_equal(th_rollup_add(d, want, part[k]), 0);
		if (!th_rollup_equal(d, acc, want))
			fail_msg("step %d (part %d, %s): accumulator differs from the sum of the parts", step,
			         i, grow ? "grown" : "replaced");
	}
	/* both paths were exercised */
	assert_true(asked > 0);
	assert_true(grown > 0);
	th_def_destroy(&d);
}

/* The flat slot loops (slot_kind from th_def_parse) and the column walk used
 * for a definition without slot_kind give the same results and errors. */
static void slot_kinds_match_column_walk(void **state)
{
	(void)state;
	th_def *d = def_new();
	assert_non_null(d->slot_kind);
	assert_int_equal(d->slot_kind[0], TH_SLOT_COUNT);
	assert_int_equal(d->slot_kind[12], TH_SLOT_EXTREMUM);   /* lo's value */
	assert_int_equal(d->slot_kind[13], TH_SLOT_COUNT);      /* lo's count */
	assert_int_equal(d->slot_kind[1], TH_SLOT_SUM);         /* a's sum */
	uint8_t *kinds = d->slot_kind;
	for (int i = 0; i < 2000; i++) {
		int64_t acc[2][NS], a[NS], b[NS];
		int rc[2], need[2];
		random_part(d, a);
		random_part(d, b);
		for (int walk = 0; walk < 2; walk++) {
			d->slot_kind = walk ? NULL : kinds;
			memcpy(acc[walk], a, sizeof a);
			th_rollup_add(d, acc[walk], a);
			need[walk] = -1;
			rc[walk] = i % 3 == 0 ? th_rollup_sub(d, acc[walk], b, &need[walk])
			           : i % 3 == 1 ? th_rollup_replace(d, acc[walk], a, b, &need[walk])
			                        : th_rollup_add(d, acc[walk], b);
		}
		d->slot_kind = kinds;
		assert_int_equal(rc[0], rc[1]);
		assert_int_equal(need[0], need[1]);
		assert_memory_equal(acc[0], acc[1], sizeof acc[0]);
	}
	th_def_destroy(&d);
}

static void replace_overflow_leaves_acc(void **state)
{
	(void)state;
	th_def *d = def_new();
	int64_t acc[NS], vold[NS], vnew[NS], before[NS];
	int need = 0;
	th_rollup_zero(d, acc);
	th_rollup_zero(d, vold);
	th_rollup_zero(d, vnew);
	acc[0] = 2;
	acc[3] = INT64_MAX - 1;   /* b */
	acc[4] = 2;
	vold[0] = 1;
	vold[3] = 1;
	vold[4] = 1;
	vnew[0] = 1;
	vnew[3] = 3;              /* INT64_MAX - 1 - 1 + 3 overflows */
	vnew[4] = 1;
	memcpy(before, acc, sizeof acc);
	assert_int_equal(th_rollup_replace(d, acc, vold, vnew, &need), TH_EOVERFLOW);
	assert_memory_equal(acc, before, sizeof acc);
	/* removing more rows than acc holds is a bug, refused */
	vold[0] = 3;
	vnew[3] = 1;
	assert_int_equal(th_rollup_replace(d, acc, vold, vnew, &need), TH_ERANGE);
	assert_memory_equal(acc, before, sizeof acc);
	th_def_destroy(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(contrib_basic),
		cmocka_unit_test(null_is_not_zero),
		cmocka_unit_test(contrib_tombstone),
		cmocka_unit_test(contrib_overflow),
		cmocka_unit_test(add_sub_exact),
		cmocka_unit_test(add_overflow_leaves_acc),
		cmocka_unit_test(sub_negative_count),
		cmocka_unit_test(minmax_need_recompute),
		cmocka_unit_test(equal_ignores_empty_extremes),
		cmocka_unit_test(ratio_zero_denominator),
		cmocka_unit_test(ratio_paired_sums),
		cmocka_unit_test(ratio_pl2_on_time),
		cmocka_unit_test(contrib_pl1_row),
		cmocka_unit_test(randomized_add_sub),
		cmocka_unit_test(randomized_replace),
		cmocka_unit_test(replace_overflow_leaves_acc),
		cmocka_unit_test(slot_kinds_match_column_walk),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

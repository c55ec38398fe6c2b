/* test_gen.c -- th-gen (tools/gen.c): deterministic, valid, consistent files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_csv.h"
#include "th_def.h"
#include "th_input.h"
#include "th_report.h"
#include "th_units.h"

/* Runs th-gen with the given extra arguments (NULL-terminated list). */
static int gen(const char *units, const char *out, const char *seed, ...)
{
	char *argv[40];
	int n = 0;
	argv[n++] = (char *)tu_bin("tools/th-gen");
	argv[n++] = "--units";
	argv[n++] = (char *)units;
	argv[n++] = "--defs";
	argv[n++] = (char *)tu_src("schema/appendices");
	argv[n++] = "--out";
	argv[n++] = (char *)out;
	argv[n++] = "--seed";
	argv[n++] = (char *)seed;
	argv[n++] = "--period";
	argv[n++] = "2021";
	argv[n++] = "--quiet";
	va_list ap;
	va_start(ap, seed);
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL && n < 39)
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	return tu_run(argv, NULL);
}

static int same_file(const char *a, const char *b)
{
	size_t la = 0, lb = 0;
	char *x = tu_read_file(a, &la), *y = tu_read_file(b, &lb);
	int same = x && y && la == lb && memcmp(x, y, la) == 0;
	free(x);
	free(y);
	return same;
}

static int exists(const char *path)
{
	FILE *f = fopen(path, "r");
	if (f)
		fclose(f);
	return f != NULL;
}

/* Reads path back, validates it again and checks every rule and the task
 * status independently of th_report_validate.  Returns the report. */
static th_report *check_file(const char *path, const th_defset *defs, const char *unit)
{
	th_diag *d = th_diag_new();
	th_report *r = NULL;
	th_csv_opts o = {0};
	int rc = th_csv_read_report(path, defs, &o, &r, d);
	if (rc || th_diag_count(d))
		fail_msg("%s: rc %d, %s", path, rc, th_diag_count(d) ? th_diag_text(d, 0) : "");
	assert_string_equal(r->unit, unit);
	assert_string_equal(r->period, "2021");
	assert_int_equal(r->as_of, 20210630);
	const th_def *def = th_defset_get(defs, r->appendix, r->version);
	assert_non_null(def);
	th_diag_clear(d);
	assert_int_equal(th_report_validate(r, def, d), 0);
	if (th_diag_count(d))
		fail_msg("%s: %s", path, th_diag_text(d, 0));   /* not even a warning */
	for (size_t row = 0; row < r->n_rows; row++) {
		for (size_t k = 0; k < def->n_rules; k++) {
			const th_rule *ru = &def->rules[k];
			int64_t l = 0, rr = 0;
			int nulls = 0;
			for (size_t j = 0; j < ru->n_left; j++) {
				nulls |= th_report_cell(r, row, ru->left[j])->null;
				l += th_report_cell(r, row, ru->left[j])->i;
			}
			for (size_t j = 0; j < ru->n_right; j++) {
				nulls |= th_report_cell(r, row, ru->right[j])->null;
				rr += th_report_cell(r, row, ru->right[j])->i;
			}
			assert_false(nulls);   /* the generator fills every rule term */
			if (l != rr)
				fail_msg("%s row %zu: rule %s: %lld != %lld", path, row + 1, ru->id, (long long)l,
				         (long long)rr);
		}
		for (size_t c = 0; c < def->n_cols; c++) {
			const th_column *col = &def->cols[c];
			const th_value *v = th_report_cell(r, row, c);
			if (v->null)
				continue;
			if (col->has_min && col->type != TH_T_TEXT && col->type != TH_T_ENUM)
				assert_true(v->i >= col->min);
			if (col->has_max && col->type != TH_T_TEXT && col->type != TH_T_ENUM)
				assert_true(v->i <= col->max);
		}
		if (def->derive) {
			const th_derive *dv = def->derive;
			const th_value *dl = th_report_cell(r, row, dv->deadline_col);
			const th_value *dn = th_report_cell(r, row, dv->done_col);
			const th_value *st = th_report_cell(r, row, dv->status_col);
			assert_false(st->null);
			int want;
			if (!dn->null) {
				assert_true(dn->i <= r->as_of);   /* nothing done in the future */
				want = !dl->null && dn->i > dl->i ? TH_TASK_DONE_LATE : TH_TASK_DONE_ON_TIME;
			} else if (dl->null) {
				want = TH_TASK_NO_DEADLINE;
			} else {
				want = r->as_of > dl->i ? TH_TASK_OVERDUE : TH_TASK_IN_PROGRESS;
			}
			if (!(want == TH_TASK_IN_PROGRESS && st->i == dv->code_of[TH_TASK_NOT_STARTED]))
				assert_int_equal(st->i, dv->code_of[want]);
		}
	}
	th_diag_destroy(&d);
	return r;
}

static th_defset *load_defs(void)
{
	th_defset *defs = NULL;
	th_diag *d = th_diag_new();
	if (th_defset_load_dir(tu_src("schema/appendices"), &defs, d))
		fail_msg("definitions: %s", th_diag_count(d) ? th_diag_text(d, 0) : "?");
	th_diag_destroy(&d);
	return defs;
}

static void deterministic(void **state)
{
	(void)state;
	char *a = tu_tmpdir(), *b = tu_tmpdir(), *c = tu_tmpdir();
	const char *units = tu_src("data/hanoi-2021.units");
	assert_int_equal(gen(units, a, "7", NULL), 0);
	assert_int_equal(gen(units, b, "7", NULL), 0);
	assert_int_equal(gen(units, c, "8", NULL), 0);
	th_units *u = NULL;
	assert_int_equal(th_units_load(units, &u, NULL), 0);
	static const char *apps[] = {"PL1", "PL2", "PL3"};
	size_t files = 0, differ = 0;
	for (size_t i = 0; i < th_units_count(u); i++) {
		for (size_t k = 0; k < 3; k++) {
			char pa[4200], pb[4200], pc[4200];
			const char *code = th_units_at(u, i)->code;
			snprintf(pa, sizeof pa, "%s/%s/%s-2021.csv", a, code, apps[k]);
			snprintf(pb, sizeof pb, "%s/%s/%s-2021.csv", b, code, apps[k]);
			snprintf(pc, sizeof pc, "%s/%s/%s-2021.csv", c, code, apps[k]);
			if (!exists(pa)) {
				assert_false(exists(pb));
				continue;
			}
			files++;
			if (!same_file(pa, pb))
				fail_msg("%s differs between two runs with the same seed", pa);
			differ += !same_file(pa, pc);
		}
	}
	/* 22 + 9 + 30 + 579 PL1, 22 + 30 PL2, 6 PL3 */
	assert_int_equal(files, 640 + 52 + 6);
	assert_true(differ > files / 2);   /* another seed, other figures */
	th_units_destroy(&u);
	tu_rmrf(a);
	tu_rmrf(b);
	tu_rmrf(c);
}

static void who_gets_what(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	assert_int_equal(gen(tu_src("data/hanoi-2021.units"), dir, "1", "--unit", "01", "--unit", "SNV",
	                     "--unit", "SXD", "--unit", "001", "--unit", "00001", "--unit", "SNV.BTG", NULL), 0);
	static const struct { const char *unit, *app; int want; } cases[] = {
		{"01", "PL1", 0}, {"01", "PL2", 0},       /* the city files nothing itself */
		{"SNV", "PL1", 1}, {"SNV", "PL2", 1}, {"SNV", "PL3", 1},   /* a lead department */
		{"SXD", "PL1", 1}, {"SXD", "PL2", 1}, {"SXD", "PL3", 0},
		{"001", "PL1", 1}, {"001", "PL2", 1}, {"001", "PL3", 0},
		{"00001", "PL1", 1}, {"00001", "PL2", 0},
		{"SNV.BTG", "PL1", 1}, {"SNV.BTG", "PL2", 0},
		{"002", "PL1", 0},                        /* not asked for */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char p[4200];
		snprintf(p, sizeof p, "%s/%s/%s-2021.csv", dir, cases[i].unit, cases[i].app);
		if (exists(p) != cases[i].want)
			fail_msg("%s: expected %s", p, cases[i].want ? "a file" : "no file");
	}
	/* --appendix limits the set */
	char *d2 = tu_tmpdir();
	assert_int_equal(gen(tu_src("data/hanoi-2021.units"), d2, "1", "--unit", "SNV", "--appendix", "PL3", NULL), 0);
	char p[4200];
	snprintf(p, sizeof p, "%s/SNV/PL3-2021.csv", d2);
	assert_true(exists(p));
	snprintf(p, sizeof p, "%s/SNV/PL1-2021.csv", d2);
	assert_false(exists(p));
	/* an unknown unit, appendix, seed or revision is an error */
	assert_int_equal(gen(tu_src("data/hanoi-2021.units"), d2, "1", "--unit", "NOPE", NULL), 1);
	assert_int_equal(gen(tu_src("data/hanoi-2021.units"), d2, "1", "--appendix", "PL9", NULL), 1);
	assert_int_equal(gen(tu_src("data/hanoi-2021.units"), d2, "x1", NULL), 2);
	assert_int_equal(gen(tu_src("data/hanoi-2021.units"), d2, "1", "--revision", "0", NULL), 2);
	tu_rmrf(dir);
	tu_rmrf(d2);
}

/* Every file of the whole Hanoi day reads back, validates without a warning,
 * satisfies every rule, and the subtree totals can be computed from it. */
static void hanoi_files_validate(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	const char *units = tu_src("data/hanoi-2021.units");
	assert_int_equal(gen(units, dir, "3", NULL), 0);
	th_defset *defs = load_defs();
	th_units *u = NULL;
	assert_int_equal(th_units_load(units, &u, NULL), 0);
	const th_def *pl1 = th_defset_latest(defs, "PL1");
	long recv = th_def_column(pl1, "ho_so_truc_tuyen");
	assert_true(recv >= 0);
	int64_t total = 0, ba_dinh = 0;
	size_t nonnull = 0, pl2_rows = 0, statuses[TH_TASK_NSTATUS] = {0};
	long bd = th_units_find(u, "001");
	static const char *apps[] = {"PL1", "PL2", "PL3"};
	for (size_t i = 0; i < th_units_count(u); i++) {
		const th_unit *un = th_units_at(u, i);
		for (size_t k = 0; k < 3; k++) {
			char p[4200];
			snprintf(p, sizeof p, "%s/%s/%s-2021.csv", dir, un->code, apps[k]);
			if (!exists(p))
				continue;
			th_report *r = check_file(p, defs, un->code);
			if (k == 0) {
				assert_int_equal(r->n_rows, 1);
				const th_value *v = th_report_cell(r, 0, (size_t)recv);
				if (!v->null) {
					total += v->i;
					nonnull++;
					if (th_units_in_subtree(u, (size_t)bd, i))
						ba_dinh += v->i;
				}
			} else if (k == 1) {
				const th_def *pl2 = th_defset_latest(defs, "PL2");
				pl2_rows += r->n_rows;
				for (size_t row = 0; row < r->n_rows; row++)
					for (int s = 0; s < TH_TASK_NSTATUS; s++)
						statuses[s] += th_report_cell(r, row, pl2->derive->status_col)->i ==
						               pl2->derive->code_of[s];
			}
			th_report_destroy(&r);
		}
	}
	assert_int_equal(nonnull, 640);   /* a rule term: never null */
	assert_true(total > 0 && ba_dinh > 0 && ba_dinh < total);
	/* realistic task lists: every status occurs over the city */
	assert_true(pl2_rows > 52 * 3);
	for (int s = 0; s < TH_TASK_NSTATUS; s++)
		if (statuses[s] == 0)
			fail_msg("no task with status %d among %zu", s, pl2_rows);
	th_units_destroy(&u);
	th_defset_destroy(&defs);
	tu_rmrf(dir);
}

static void revision_differs_and_validates(void **state)
{
	(void)state;
	char *a = tu_tmpdir(), *b = tu_tmpdir(), *c = tu_tmpdir();
	const char *units = tu_src("data/hanoi-2021.units");
	static const char *pick[] = {"SNV", "STP", "001", "00001", "SNV.BTG", "268"};
	for (int k = 0; k < 3; k++) {
		char *dir = k == 0 ? a : k == 1 ? b : c;
		const char *rev = k == 0 ? "1" : k == 1 ? "2" : "3";
		assert_int_equal(gen(units, dir, "5", "--revision", rev, "--unit", pick[0], "--unit", pick[1],
		                     "--unit", pick[2], "--unit", pick[3], "--unit", pick[4], "--unit", pick[5],
		                     NULL), 0);
	}
	th_defset *defs = load_defs();
	static const char *apps[] = {"PL1", "PL2", "PL3"};
	size_t files = 0;
	for (size_t i = 0; i < sizeof pick / sizeof pick[0]; i++)
		for (size_t k = 0; k < 3; k++) {
			char pa[4200], pb[4200], pc[4200];
			snprintf(pa, sizeof pa, "%s/%s/%s-2021.csv", a, pick[i], apps[k]);
			snprintf(pb, sizeof pb, "%s/%s/%s-2021.csv", b, pick[i], apps[k]);
			snprintf(pc, sizeof pc, "%s/%s/%s-2021.csv", c, pick[i], apps[k]);
			if (!exists(pa))
				continue;
			files++;
			if (same_file(pa, pb) || same_file(pb, pc))
				fail_msg("%s: a correction must change something", pb);
			th_report *ra = check_file(pa, defs, pick[i]);
			th_report *rb = check_file(pb, defs, pick[i]);
			th_report *rc = check_file(pc, defs, pick[i]);
			/* same report, other figures: the key is unchanged */
			assert_string_equal(ra->appendix, rb->appendix);
			assert_int_equal(ra->n_cols, rb->n_cols);
			th_report_destroy(&ra);
			th_report_destroy(&rb);
			th_report_destroy(&rc);
		}
	assert_int_equal(files, 2 * 3 + 1 + 2 + 1 + 1 + 2 - 1);   /* SNV 3, STP 3, 001 2, 00001 1, BTG 1, 268 2 */
	th_defset_destroy(&defs);
	tu_rmrf(a);
	tu_rmrf(b);
	tu_rmrf(c);
}

/* A sample of the national hierarchy (4 levels, province departments). */
static void national_sample(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	static const char *pick[] = {"79", "79.SNV", "760", "26734", "96.SYT", "01.STP"};
	assert_int_equal(gen(tu_src("data/vn-2021.units"), dir, "11", "--unit", pick[0], "--unit", pick[1],
	                     "--unit", pick[2], "--unit", pick[3], "--unit", pick[4], "--unit", pick[5], NULL),
	                 0);
	th_defset *defs = load_defs();
	static const char *apps[] = {"PL1", "PL2", "PL3"};
	size_t files = 0;
	for (size_t i = 0; i < sizeof pick / sizeof pick[0]; i++)
		for (size_t k = 0; k < 3; k++) {
			char p[4200];
			snprintf(p, sizeof p, "%s/%s/%s-2021.csv", dir, pick[i], apps[k]);
			if (!exists(p))
				continue;
			files++;
			th_report *r = check_file(p, defs, pick[i]);
			th_report_destroy(&r);
		}
	/* provinces file nothing; 79.SNV, 96.SYT, 01.STP: PL1+PL2 (PL3 is Hanoi's lead departments);
	 * district 760: PL1+PL2; commune 26734: PL1 */
	assert_int_equal(files, 2 + 2 + 2 + 2 + 1);
	th_defset_destroy(&defs);
	tu_rmrf(dir);
}

/* The whole national reporting day: one file per expected (unit, appendix),
 * every one of them reads back and validates. */
static void national_day(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	const char *units = tu_src("data/vn-2021.units");
	assert_int_equal(gen(units, dir, "2021", NULL), 0);
	th_defset *defs = load_defs();
	th_units *u = NULL;
	assert_int_equal(th_units_load(units, &u, NULL), 0);
	size_t files = 0, expected = 0;
	th_diag *d = th_diag_new();
	for (size_t i = 0; i < th_units_count(u); i++) {
		const th_unit *un = th_units_at(u, i);
		for (size_t k = 0; k < th_defset_count(defs); k++) {
			const th_def *def = th_defset_at(defs, k);
			char p[4200];
			snprintf(p, sizeof p, "%s/%s/%s-2021.csv", dir, un->code, def->id);
			int want = th_def_expects(def, un->kind, un->code);
			expected += (size_t)want;
			if (!exists(p)) {
				if (want)
					fail_msg("%s missing", p);
				continue;
			}
			assert_true(want);
			files++;
			th_report *r = NULL;
			th_csv_opts o = {0};
			th_diag_clear(d);
			if (th_csv_read_report(p, defs, &o, &r, d) || th_diag_count(d))
				fail_msg("%s: %s", p, th_diag_count(d) ? th_diag_text(d, 0) : "?");
			th_report_destroy(&r);
		}
	}
	/* PL1: 1386 departments + 705 districts + 10,603 communes; PL2: 1386 + 705 */
	assert_int_equal(files, 12694 + 2091);
	assert_int_equal(files, expected);
	th_diag_destroy(&d);
	th_units_destroy(&u);
	th_defset_destroy(&defs);
	tu_rmrf(dir);
}

/* --format both: each unit's filled-in workbook holds the same report as
 * its CSV twin; --format xlsx writes workbooks only; a bad format is a
 * usage error. */
static void xlsx_next_to_csv(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	th_diag *d = th_diag_new();
	th_defset *defs = NULL;
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &defs, d), 0);
	assert_int_equal(gen(tu_src("data/hanoi-2021.units"), dir, "5", "--format", "both", "--unit",
	                     "SNV", "--unit", "001", "--unit", "00001", NULL), 0);
	static const char *files[] = {"SNV/PL1", "SNV/PL2", "SNV/PL3", "001/PL1", "001/PL2",
	                              "00001/PL1"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char c[4200], x[4200];
		snprintf(c, sizeof c, "%s/%s-2021.csv", dir, files[i]);
		snprintf(x, sizeof x, "%s/%s-2021.xlsx", dir, files[i]);
		th_report *a = NULL, *b = NULL;
		th_diag_clear(d);
		if (th_input_read_report(c, defs, NULL, &a, d) || th_input_read_report(x, defs, NULL, &b, d))
			fail_msg("%s: %s", files[i], th_diag_count(d) ? th_diag_text(d, 0) : "?");
		const th_def *def = th_defset_get(defs, a->appendix, a->version);
		uint8_t h1[TH_HASH_LEN], h2[TH_HASH_LEN];
		assert_int_equal(th_report_hash(a, def, h1), 0);
		assert_int_equal(th_report_hash(b, def, h2), 0);
		assert_memory_equal(h1, h2, TH_HASH_LEN);
		th_report_destroy(&a);
		th_report_destroy(&b);
	}
	char *d2 = tu_tmpdir();
	assert_int_equal(gen(tu_src("data/hanoi-2021.units"), d2, "5", "--format", "xlsx", "--unit",
	                     "SNV", NULL), 0);
	char p[4200];
	snprintf(p, sizeof p, "%s/SNV/PL1-2021.xlsx", d2);
	assert_true(exists(p));
	snprintf(p, sizeof p, "%s/SNV/PL1-2021.csv", d2);
	assert_false(exists(p));
	assert_int_equal(gen(tu_src("data/hanoi-2021.units"), d2, "5", "--format", "ods", NULL), 2);
	th_diag_destroy(&d);
	th_defset_destroy(&defs);
	tu_rmrf(d2);
	tu_rmrf(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(deterministic),
		cmocka_unit_test(who_gets_what),
		cmocka_unit_test(hanoi_files_validate),
		cmocka_unit_test(revision_differs_and_validates),
		cmocka_unit_test(national_sample),
		cmocka_unit_test(national_day),
		cmocka_unit_test(xlsx_next_to_csv),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

/* test_intake.c -- what enters the outbox (publisher/intake.h): appendix files
 * read and validated with their content hash, withdrawals' tombstones, the
 * definitions in use. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intake.h"
#include "outbox_fixture.h"
#include "testutil.h"

typedef struct fx {
	char *dir;
	th_defset *defs;
} fx;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->dir = tu_tmpdir();
	th_diag *d = th_diag_new();
	assert_int_equal(th_intake_defs(tu_src("schema/appendices"), NULL, &f->defs, d), 0);
	th_diag_destroy(&d);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	th_defset_destroy(&f->defs);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* A valid file: its report and the hash of its canonical form (the same as the
 * same content in another layout); an invalid one: every problem with its
 * line, no report. */
static void files(void **state)
{
	fx *f = *state;
	char a[4300], b[4300], bad[4300], missing[4300];
	snprintf(a, sizeof a, "%s/a.csv", f->dir);
	snprintf(b, sizeof b, "%s/b.csv", f->dir);
	snprintf(bad, sizeof bad, "%s/bad.csv", f->dir);
	snprintf(missing, sizeof missing, "%s/none.csv", f->dir);
	of_pl1_file(a, "SNV", 1);
	/* the same figures, columns in another order, a blank line */
	static const char other[] = "#appendix: PL1\n#version: 1\n#unit: SNV\n#period: 2021\n"
	                            "nhiem_vu_hoan_thanh,co_ke_hoach_cchc,nhiem_vu_ke_hoach\n"
	                            "11,có,21\n\n";
	assert_int_equal(tu_write_file(b, other, strlen(other)), 0);
	th_report *ra = NULL, *rb = NULL;
	uint8_t ha[TH_HASH_LEN], hb[TH_HASH_LEN];
	th_diag *d = th_diag_new();
	assert_int_equal(th_intake_file(a, f->defs, &ra, ha, d), 0);
	assert_int_equal(th_intake_file(b, f->defs, &rb, hb, d), 0);
	assert_int_equal(th_diag_errors(d), 0);
	assert_string_equal(ra->unit, "SNV");
	assert_string_equal(ra->appendix, "PL1");
	assert_string_equal(ra->period, "2021");
	assert_memory_equal(ha, hb, TH_HASH_LEN);
	th_report_destroy(&ra);
	th_report_destroy(&rb);
	static const char broken[] = "#appendix: PL1\n#version: 1\n#unit: Q01\n#period: 2021\n"
	                             "co_ke_hoach_cchc,nhiem_vu_ke_hoach,nhiem_vu_hoan_thanh\n"
	                             "maybe,12a,1/2\n";
	assert_int_equal(tu_write_file(bad, broken, strlen(broken)), 0);
	th_diag_clear(d);
	assert_true(th_intake_file(bad, f->defs, &ra, ha, d) != 0);
	assert_null(ra);
	assert_true(th_diag_errors(d) >= 3);
	char needle[4400];
	snprintf(needle, sizeof needle, "%s:6: ", bad);
	assert_non_null(strstr(th_diag_text(d, 0), needle));
	th_diag_clear(d);
	assert_true(th_intake_file(missing, f->defs, &ra, ha, d) != 0);
	assert_true(th_diag_errors(d) >= 1);   /* always at least one line for the operator */
	assert_non_null(strstr(th_diag_text(d, 0), missing));
	th_diag_destroy(&d);
}

/* A tombstone: no rows, the latest version of the appendix, the same hash for
 * every withdrawal of a key; an unknown appendix named. */
static void tombstones(void **state)
{
	fx *f = *state;
	th_report *r1 = NULL, *r2 = NULL, *r3 = NULL;
	uint8_t h1[TH_HASH_LEN], h2[TH_HASH_LEN], h3[TH_HASH_LEN];
	th_diag *d = th_diag_new();
	assert_int_equal(th_intake_tombstone("P0101", "PL1", "2021", f->defs, &r1, h1, d), 0);
	assert_int_equal(th_intake_tombstone("P0101", "PL1", "2021", f->defs, &r2, h2, d), 0);
	assert_int_equal(th_intake_tombstone("P0101", "PL2", "2021", f->defs, &r3, h3, d), 0);
	assert_int_equal(r1->tombstone, 1);
	assert_int_equal(r1->n_rows, 0);
	assert_int_equal(r1->version, th_defset_latest(f->defs, "PL1")->version);
	assert_memory_equal(h1, h2, TH_HASH_LEN);
	assert_memory_not_equal(h1, h3, TH_HASH_LEN);
	th_report *rx = NULL;
	assert_int_equal(th_intake_tombstone("P0101", "PL99", "2021", f->defs, &rx, h3, d),
	                 TH_EAPPENDIX);
	assert_null(rx);
	assert_non_null(strstr(th_diag_text(d, 0), "unknown appendix \"PL99\""));
	th_report_destroy(&r1);
	th_report_destroy(&r2);
	th_report_destroy(&r3);
	th_diag_destroy(&d);
}

/* The definitions in use without --defs: those in force in the outbox, else
 * every cached one; nothing cached is TH_ENOTFOUND. */
static void definitions_in_use(void **state)
{
	fx *f = *state;
	char ob_dir[4300];
	snprintf(ob_dir, sizeof ob_dir, "%s/outbox", f->dir);
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(ob_dir, &ob, NULL), 0);
	th_defset *d = NULL;
	assert_int_equal(th_intake_defs(NULL, ob, &d, NULL), TH_ENOTFOUND);
	char *pl1 = tu_read_file(tu_src("schema/appendices/PL1-v1.def"), NULL);
	char *pl2 = tu_read_file(tu_src("schema/appendices/PL2-v1.def"), NULL);
	char *both[2] = {pl1, pl2};
	assert_int_equal(th_outbox_set_defs(ob, both, 2), 0);
	assert_int_equal(th_outbox_set_defs(ob, both + 1, 1), 0);
	assert_int_equal(th_intake_defs(NULL, ob, &d, NULL), 0);
	assert_int_equal(th_defset_count(d), 1);   /* in force: PL2 */
	assert_non_null(th_defset_get(d, "PL2", 1));
	th_defset_destroy(&d);
	/* a welcome that named nothing in force: every cached one */
	assert_int_equal(th_outbox_set_defs(ob, NULL, 0), 0);
	assert_int_equal(th_intake_defs(NULL, ob, &d, NULL), 0);
	assert_int_equal(th_defset_count(d), 2);
	th_defset_destroy(&d);
	/* a --defs directory that does not exist */
	th_diag *dg = th_diag_new();
	char none[4400];
	snprintf(none, sizeof none, "%s/no-such-dir", f->dir);
	assert_true(th_intake_defs(none, ob, &d, dg) != 0);
	th_diag_destroy(&dg);
	th_outbox_close(&ob);
	free(pl1);
	free(pl2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(files, setup, teardown),
		cmocka_unit_test_setup_teardown(tombstones, setup, teardown),
		cmocka_unit_test_setup_teardown(definitions_in_use, setup, teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

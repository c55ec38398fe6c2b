/* test_store_scale.c -- the store at the size of the Hanoi sample: every
 * generated PL1/PL2/PL3 report of the 641 units, then rebuild and verify
 * (a rebuild bug only showed on a store this size). */
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
#include "th_rollup.h"
#include "store_fixture.h"
#include "th_store.h"

static void hanoi_rebuild_equals_incremental(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	char cmd[8192], path[4096];
	snprintf(cmd, sizeof cmd, "'%s' --units '%s' --defs '%s' --out '%s/files' --seed 5 --quiet",
	         tu_bin("tools/th-gen"), tu_src("data/hanoi-2021.units"), tu_src("schema/appendices"), dir);
	int st;
	free(tu_capture(cmd, &st));
	assert_int_equal(st, 0);
	th_defset *defs = NULL;
	th_units *u = NULL;
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &defs, NULL), 0);
	assert_int_equal(th_units_load(tu_src("data/hanoi-2021.units"), &u, NULL), 0);
	snprintf(path, sizeof path, "%s/store", dir);
	th_store *s = NULL;
	th_store_opts so = {.map_size = 1 << 20};
	assert_int_equal(th_store_open(path, &so, &s), 0);
	th_store_set_defs(s, defs);
	assert_int_equal(th_store_add_hierarchy(s, u), 0);
	/* read every file, submit in groups of 100 */
	snprintf(cmd, sizeof cmd, "find '%s/files' -name '*.csv' | sort", dir);
	char *list = tu_capture(cmd, &st);
	assert_non_null(list);
	th_ack_result res[100];
	th_report *reps[100];
	size_t n = 0, total = 0;
	uint64_t rev = 1;
	char *save = NULL;
	for (char *f = strtok_r(list, "\n", &save);; f = strtok_r(NULL, "\n", &save)) {
		if (f) {
			th_report *r = NULL;
			th_csv_opts o = {.rev = rev++};
			assert_int_equal(th_csv_read_report(f, defs, &o, &r, NULL), 0);
			reps[n++] = r;
		}
		if ((!f && n) || n == 100) {
			th_changed_node *ch = NULL;
			size_t nch = 0;
			assert_int_equal(sf_submit(s, reps, n, "test", res, &ch, &nch, NULL), 0);
			for (size_t i = 0; i < n; i++) {
				assert_int_equal(res[i].status, TH_ACK_ACCEPTED);
				th_ack_result_free(&res[i]);
				th_report_destroy(&reps[i]);
			}
			free(ch);
			total += n;
			n = 0;
		}
		if (!f)
			break;
	}
	free(list);
	assert_true(total > 600);
	th_diag *d = th_diag_new();
	assert_int_equal(th_store_verify(s, d), 0);
	th_node before;
	assert_int_equal(th_store_get_node(s, "PL1", "2021", "01", &before), 0);
	assert_int_equal(th_store_rebuild(s), 0);
	int rc = th_store_verify(s, d);
	for (size_t i = 0; i < th_diag_count(d) && i < 5; i++)
		print_message("%s\n", th_diag_text(d, i));
	assert_int_equal(rc, 0);
	th_node after;
	assert_int_equal(th_store_get_node(s, "PL1", "2021", "01", &after), 0);
	const th_def *pl1 = th_defset_latest(defs, "PL1");
	assert_true(th_rollup_equal(pl1, before.total, after.total));
	assert_int_equal(before.reported, after.reported);
	assert_true(after.reported > 600);
	th_node_free(&before);
	th_node_free(&after);
	th_diag_destroy(&d);
	th_store_close(&s);
	th_units_destroy(&u);
	th_defset_destroy(&defs);
	tu_rmrf(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(hanoi_rebuild_equals_incremental),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

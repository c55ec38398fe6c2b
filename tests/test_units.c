/* test_units.c -- the unit hierarchy (schema/th_units.c) and the bundled data. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_units.h"

#define HEAD "@version t1\n@effective 2021-02-01\ncode\tparent\tkind\tname\n"

static int parse(const char *text, th_units **u, char *msgs, size_t cap)
{
	th_diag *d = th_diag_new();
	int rc = th_units_parse(text, strlen(text), "u.units", u, d);
	msgs[0] = 0;
	for (size_t i = 0; i < th_diag_count(d); i++) {
		strncat(msgs, th_diag_text(d, i), cap - strlen(msgs) - 2);
		strcat(msgs, "\n");
	}
	th_diag_destroy(&d);
	return rc;
}

static void small_tree(void **state)
{
	(void)state;
	char m[4096];
	th_units *u = NULL;
	assert_int_equal(parse(HEAD "R\t\tcity\tThành phố\nD1\tR\tdistrict\tQuận 1\nC1\tD1\tcommune\tPhường 1\t"
	                            "Nguyễn A\t0241\ta@b.vn\nC2\tD1\tcommune\tPhường 2\nD2\tR\tdistrict\tQuận 2\n",
	                       &u, m, sizeof m), 0);
	assert_string_equal(th_units_version(u), "t1");
	assert_int_equal(th_units_effective(u), 20210201);
	assert_int_equal(th_units_count(u), 5);
	assert_int_equal(th_units_max_depth(u), 3);
	long c1 = th_units_find(u, "C1"), d1 = th_units_find(u, "D1"), d2 = th_units_find(u, "D2");
	assert_true(c1 >= 0 && d1 >= 0 && d2 >= 0);
	assert_int_equal(th_units_at(u, (size_t)c1)->depth, 3);
	assert_string_equal(th_units_at(u, (size_t)c1)->person, "Nguyễn A");
	assert_true(th_units_in_subtree(u, (size_t)d1, (size_t)c1));
	assert_false(th_units_in_subtree(u, (size_t)d2, (size_t)c1));
	assert_false(th_units_in_subtree(u, (size_t)c1, (size_t)d1));
	assert_int_equal(th_units_at(u, (size_t)d1)->n_children, 2);
	assert_int_equal(th_units_find(u, "nope"), -1);
	th_units_destroy(&u);
	assert_null(u);
}

static void error_cycle(void **state)
{
	(void)state;
	char m[4096];
	th_units *u = NULL;
	assert_int_not_equal(parse(HEAD "R\t\tcity\tX\nA\tB\tdistrict\tA\nB\tA\tdistrict\tB\n", &u, m, sizeof m), 0);
	assert_null(u);
	assert_non_null(strstr(m, "u.units:5:"));
	assert_non_null(strstr(m, "cycle"));
}

static void error_unknown_parent(void **state)
{
	(void)state;
	char m[4096];
	th_units *u = NULL;
	assert_int_not_equal(parse(HEAD "R\t\tcity\tX\nA\tZZ\tdistrict\tA\n", &u, m, sizeof m), 0);
	assert_non_null(strstr(m, "u.units:5: unit A: unknown parent ZZ"));
}

static void error_duplicate_code(void **state)
{
	(void)state;
	char m[4096];
	th_units *u = NULL;
	assert_int_not_equal(parse(HEAD "R\t\tcity\tX\nA\tR\tdistrict\tA\nA\tR\tdistrict\tA2\n", &u, m, sizeof m), 0);
	assert_non_null(strstr(m, "u.units:6: duplicate unit code A (first at line 5)"));
}

static void error_two_roots(void **state)
{
	(void)state;
	char m[4096];
	th_units *u = NULL;
	assert_int_not_equal(parse(HEAD "R\t\tcity\tX\nS\t\tcity\tY\n", &u, m, sizeof m), 0);
	assert_non_null(strstr(m, "u.units:5: second root S"));
}

static void error_bad_utf8(void **state)
{
	(void)state;
	char m[4096];
	th_units *u = NULL;
	assert_int_equal(parse(HEAD "R\t\tcity\tH\xE0 N\xF4i\n", &u, m, sizeof m), TH_EUTF8);
	assert_non_null(strstr(m, "u.units:4: invalid UTF-8"));
}

static void error_missing_directives_and_fields(void **state)
{
	(void)state;
	char m[4096];
	th_units *u = NULL;
	assert_int_not_equal(parse("code\tparent\tkind\tname\nR\t\tcity\nA\tR\tdistrict\tA\n", &u, m, sizeof m), 0);
	assert_non_null(strstr(m, "@version"));
	assert_non_null(strstr(m, "@effective"));
	assert_non_null(strstr(m, "u.units:2: 3 tab-separated fields"));
}

static void names_nfc(void **state)
{
	(void)state;
	char m[4096];
	th_units *u = NULL;
	assert_int_equal(parse(HEAD "R\t\tcity\tHa\xCC\x80 No\xCC\xA3\xCC\x82i\n", &u, m, sizeof m), 0);
	assert_string_equal(th_units_at(u, 0)->name, "H\xC3\xA0 N\xE1\xBB\x99i");
	th_units_destroy(&u);
}

static void bundled_hanoi(void **state)
{
	(void)state;
	th_units *u = NULL;
	th_diag *d = th_diag_new();
	assert_int_equal(th_units_load(tu_src("data/hanoi-2021.units"), &u, d), 0);
	size_t city = 0, dep = 0, dist = 0, comm = 0, agency = 0;
	for (size_t i = 0; i < th_units_count(u); i++) {
		const char *k = th_units_at(u, i)->kind;
		city += !strcmp(k, "city");
		dep += !strcmp(k, "department");
		dist += !strcmp(k, "district");
		comm += !strcmp(k, "commune");
		agency += !strcmp(k, "agency");
	}
	assert_int_equal(city, 1);
	assert_int_equal(dep, 22);
	assert_int_equal(dist, 30);
	assert_int_equal(comm, 579);
	assert_true(agency > 0);
	assert_int_equal(th_units_count(u), 1 + 22 + 30 + 579 + agency);
	assert_string_equal(th_units_at(u, th_units_root(u))->code, "01");
	long bd = th_units_find(u, "001"), px = th_units_find(u, "00001");
	assert_string_equal(th_units_at(u, (size_t)bd)->name, "Quận Ba Đình");
	assert_true(th_units_in_subtree(u, (size_t)bd, (size_t)px));
	th_units_destroy(&u);
	th_diag_destroy(&d);
}

static void bundled_national(void **state)
{
	(void)state;
	th_units *u = NULL;
	assert_int_equal(th_units_load(tu_src("data/vn-2021.units"), &u, NULL), 0);
	size_t prov = 0, dist = 0, comm = 0;
	for (size_t i = 0; i < th_units_count(u); i++) {
		const char *k = th_units_at(u, i)->kind;
		prov += !strcmp(k, "province");
		dist += !strcmp(k, "district");
		comm += !strcmp(k, "commune");
	}
	assert_int_equal(prov, 63);
	assert_int_equal(dist, 705);
	assert_int_equal(comm, 10603);
	assert_int_equal(th_units_max_depth(u), 4);
	th_units_destroy(&u);
}

static void bundled_file_is_reproducible(void **state)
{
	(void)state;
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "cd '%s' && test -d ../shared/data && ./scripts/mkunits.sh hanoi | cmp - data/hanoi-2021.units && echo same",
	         tu_source_dir());
	int st;
	char *out = tu_capture(cmd, &st);
	if (out && strstr(out, "same") == NULL) {
		/* ../shared/data absent in this checkout: nothing to compare with */
		char chk[8192];
		snprintf(chk, sizeof chk, "test -d '%s/../shared/data'", tu_source_dir());
		if (system(chk) == 0)
			fail_msg("scripts/mkunits.sh hanoi no longer reproduces data/hanoi-2021.units");
	}
	free(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(small_tree),
		cmocka_unit_test(error_cycle),
		cmocka_unit_test(error_unknown_parent),
		cmocka_unit_test(error_duplicate_code),
		cmocka_unit_test(error_two_roots),
		cmocka_unit_test(error_bad_utf8),
		cmocka_unit_test(error_missing_directives_and_fields),
		cmocka_unit_test(names_nfc),
		cmocka_unit_test(bundled_hanoi),
		cmocka_unit_test(bundled_national),
		cmocka_unit_test(bundled_file_is_reproducible),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

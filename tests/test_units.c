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

static void expect_error(const char *text, int code, const char *needle)
{
	char m[8192];
	th_units *u = (th_units *)1;
	int rc = parse(text, &u, m, sizeof m);
	if (rc == 0 || !strstr(m, needle))
		fail_msg("rc %d, expected \"%s\" in:\n%s", rc, needle, m);
	assert_null(u);
	if (code)
		assert_int_equal(rc, code);
}

static void error_cycle(void **state)
{
	(void)state;
	expect_error(HEAD "R\t\tcity\tX\nA\tB\tdistrict\tA\nB\tA\tdistrict\tB\nC\tA\tcommune\tC\n", TH_ECYCLE,
	             "u.units:5: unit A: its chain of parents (B, ...) loops and never reaches the root R");
	expect_error(HEAD "R\t\tcity\tX\nA\tB\tdistrict\tA\nB\tA\tdistrict\tB\n", TH_ECYCLE, "u.units:6: unit B:");
	expect_error(HEAD "R\t\tcity\tX\nA\tA\tdistrict\tA\n", TH_ECYCLE, "u.units:5: unit A is its own parent");
}

static void error_unknown_parent(void **state)
{
	(void)state;
	expect_error(HEAD "R\t\tcity\tX\nA\tZZ\tdistrict\tA\n", TH_EPARENT, "u.units:5: unit A: unknown parent ZZ");
}

static void error_duplicate_code(void **state)
{
	(void)state;
	expect_error(HEAD "R\t\tcity\tX\nA\tR\tdistrict\tA\nA\tR\tdistrict\tA2\n", TH_EDUPKEY,
	             "u.units:6: duplicate unit code A (first at line 5)");
}

static void error_two_roots(void **state)
{
	(void)state;
	expect_error(HEAD "R\t\tcity\tX\nS\t\tcity\tY\n", 0, "u.units:5: second root S (the root is R at line 4)");
}

static void error_no_root(void **state)
{
	(void)state;
	expect_error(HEAD "A\tB\tdistrict\tA\nB\tA\tdistrict\tB\n", 0, "u.units:4: no root unit");
	expect_error(HEAD, 0, "no units");
}

static void error_bad_utf8(void **state)
{
	(void)state;
	/* Windows-1258 bytes on line 4, a control character on line 6: both reported */
	expect_error(HEAD "R\t\tcity\tH\xE0 N\xF4i\nA\tR\tdistrict\tA\nB\tR\tdistrict\tB\x01\n", TH_EUTF8,
	             "u.units:4: invalid UTF-8");
	expect_error(HEAD "R\t\tcity\tH\xE0 N\xF4i\nA\tR\tdistrict\tA\nB\tR\tdistrict\tB\x01\n", TH_EUTF8,
	             "u.units:6: invalid UTF-8");
	/* an embedded NUL does not cut the file short */
	char m[4096];
	th_units *u = NULL;
	static const char nul[] = HEAD "R\t\tcity\tX\0\nA\tQ\tdistrict\tA\n";
	th_diag *d = th_diag_new();
	assert_int_not_equal(th_units_parse(nul, sizeof nul - 1, "u.units", &u, d), 0);
	m[0] = 0;
	for (size_t i = 0; i < th_diag_count(d); i++) {
		strncat(m, th_diag_text(d, i), sizeof m - strlen(m) - 2);
		strcat(m, "\n");
	}
	assert_non_null(strstr(m, "u.units:4: invalid UTF-8"));
	assert_non_null(strstr(m, "u.units:5: unit A: unknown parent Q"));
	th_diag_destroy(&d);
	assert_null(u);
}

static void error_missing_version(void **state)
{
	(void)state;
	expect_error("@effective 2021-02-01\ncode\tparent\tkind\tname\nR\t\tcity\tX\n", TH_EMISSING,
	             "u.units:1: missing \"@version ID\" line");
	expect_error("@version\n@effective 2021-02-01\ncode\tparent\tkind\tname\nR\t\tcity\tX\n", 0,
	             "u.units:1: @version: the id is missing");
	expect_error("@version a b\n@effective 2021-02-01\ncode\tparent\tkind\tname\nR\t\tcity\tX\n", 0,
	             "u.units:1: @version: the id contains a blank");
}

static void error_missing_effective(void **state)
{
	(void)state;
	expect_error("@version v\ncode\tparent\tkind\tname\nR\t\tcity\tX\n", TH_EMISSING,
	             "u.units:1: missing \"@effective yyyy-mm-dd\" line");
}

static void error_bad_date(void **state)
{
	(void)state;
	expect_error("@version v\n@effective 2021-02-30\ncode\tparent\tkind\tname\nR\t\tcity\tX\n", TH_ESYNTAX,
	             "u.units:2: @effective 2021-02-30:");
	expect_error("@version v\n@effective soon\ncode\tparent\tkind\tname\nR\t\tcity\tX\n", TH_ESYNTAX,
	             "u.units:2: @effective soon:");
	expect_error("@version v\n@effective 2021-02-01\n@when 2021\ncode\tparent\tkind\tname\nR\t\tcity\tX\n",
	             TH_ESYNTAX, "u.units:3: unknown directive @when");
}

static void error_bad_field_count(void **state)
{
	(void)state;
	expect_error(HEAD "R\t\tcity\nA\tR\tdistrict\tA\n", TH_ESYNTAX,
	             "u.units:4: 3 tab-separated fields; expected 4");
	expect_error(HEAD "R\t\tcity\tX\t1\t2\t3\t4\n", TH_ESYNTAX, "u.units:4: 8 tab-separated fields");
	expect_error("@version v\n@effective 2021-02-01\ncode,parent,kind,name\nR\t\tcity\tX\n", TH_ESYNTAX,
	             "u.units:3: expected the header line");
}

static void error_bad_codes(void **state)
{
	(void)state;
	expect_error(HEAD "R\t\tcity\tX\n\tR\tdistrict\tA\n", 0, "u.units:5: unit code \"\" is empty");
	expect_error(HEAD "R\t\tcity\tX\nA B\tR\tdistrict\tA\n", 0, "u.units:5: unit code \"A B\" contains a blank");
	expect_error(HEAD "R\t\tcity\tX\nA\x7f\tR\tdistrict\tA\n", 0, "u.units:5: invalid UTF-8 or a control");
	expect_error(HEAD "R\t\tcity\tX\nĐ\tR\tdistrict\tA\n", 0, "u.units:5: unit code \"Đ\" contains a non-ASCII");
	expect_error(HEAD "R\t\tcity\tX\nA\tR\t\tA\n", 0, "u.units:5: unit kind \"\" is empty");
	expect_error(HEAD "R\t\tcity\tX\nA\tR\tdistrict\t \n", TH_EMISSING, "u.units:5: unit A has no name");
	char text[512];
	snprintf(text, sizeof text, HEAD "R\t\tcity\tX\n%065d\tR\tdistrict\tA\n", 7);
	expect_error(text, 0, "is longer than 64 bytes");
	snprintf(text, sizeof text, HEAD "R\t\tcity\tX\n%064d\tR\tdistrict\tA\n", 7);
	th_units *u = NULL;
	char m[4096];
	assert_int_equal(parse(text, &u, m, sizeof m), 0);   /* exactly 64 bytes is fine */
	th_units_destroy(&u);
}

static void errors_all_at_once(void **state)
{
	(void)state;
	th_units *u = NULL;
	th_diag *d = th_diag_new();
	assert_int_not_equal(th_units_load(tu_src("tests/data/units/errors.units"), &u, d), 0);
	assert_null(u);
	char m[8192] = "";
	for (size_t i = 0; i < th_diag_count(d); i++) {
		strncat(m, th_diag_text(d, i), sizeof m - strlen(m) - 2);
		strcat(m, "\n");
	}
	static const char *want[] = {
		"errors.units:2: @effective 2021-02-31",
		"errors.units:6: duplicate unit code A (first at line 5)",
		"errors.units:7: unit B: unknown parent ZZ",
		"errors.units:8: unit C: its chain of parents",
		"errors.units:9: unit D: its chain of parents",
		"errors.units:10: unit code \"E F\" contains a blank",
		"errors.units:11: 3 tab-separated fields",
		"errors.units:12: second root S",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!strstr(m, want[i]))
			fail_msg("missing \"%s\" in:\n%s", want[i], m);
	assert_int_equal(th_diag_errors(d), 8);
	th_diag_destroy(&d);
}

static void variant_file(void **state)
{
	(void)state;
	th_units *u = NULL;
	th_diag *d = th_diag_new();
	int rc = th_units_load(tu_src("tests/data/units/hanoi-mini-2025.units"), &u, d);
	if (rc)
		fail_msg("%s", th_diag_count(d) ? th_diag_text(d, 0) : "?");
	assert_string_equal(th_units_version(u), "hanoi-mini-2025");
	assert_int_equal(th_units_effective(u), 20250701);
	assert_int_equal(th_units_count(u), 7);
	assert_int_equal(th_units_max_depth(u), 3);
	const th_unit *root = th_units_at(u, th_units_root(u));
	assert_string_equal(root->code, "01");
	assert_string_equal(root->name, "Thành phố Hà Nội");   /* no BOM, no CR */
	assert_int_equal(root->n_children, 5);
	/* children in file order */
	static const char *order[] = {"SNV", "STP", "00004", "00008", "00091"};
	for (size_t i = 0; i < 5; i++)
		assert_string_equal(th_units_at(u, root->children[i])->code, order[i]);
	long c = th_units_find(u, "00004"), a = th_units_find(u, "SNV.BTG"), s = th_units_find(u, "SNV");
	assert_int_equal(th_units_at(u, (size_t)c)->depth, 2);
	assert_string_equal(th_units_at(u, (size_t)c)->person, "Trần Thị Bình");
	assert_string_equal(th_units_at(u, (size_t)c)->phone, "0243000002");
	assert_string_equal(th_units_at(u, (size_t)c)->email, "");
	assert_string_equal(th_units_at(u, (size_t)s)->email, "snv@hanoi.gov.vn");
	assert_int_equal(th_units_at(u, (size_t)a)->depth, 3);
	assert_true(th_units_in_subtree(u, (size_t)s, (size_t)a));
	assert_false(th_units_in_subtree(u, (size_t)c, (size_t)a));
	size_t len = 0;
	const char *src = th_units_source(u, &len);
	assert_true(len > 3 && memcmp(src, "\xEF\xBB\xBF", 3) == 0);   /* the file as is */
	th_units_destroy(&u);
	th_diag_destroy(&d);
}

/* A long chain (and parents listed after their children) loads in linear time. */
static void deep_chain(void **state)
{
	(void)state;
	enum { N = 50000 };
	size_t cap = (size_t)N * 40 + 200;
	char *t = malloc(cap);
	assert_non_null(t);
	size_t o = (size_t)snprintf(t, cap, "%s", HEAD);
	for (long i = N - 1; i >= 1; i--)   /* children first */
		o += (size_t)snprintf(t + o, cap - o, "U%ld\tU%ld\tlevel\tĐơn vị %ld\n", i, i - 1, i);
	o += (size_t)snprintf(t + o, cap - o, "U0\t\troot\tGốc\n");
	th_units *u = NULL;
	th_diag *d = th_diag_new();
	assert_int_equal(th_units_parse(t, o, "chain", &u, d), 0);
	assert_int_equal(th_units_count(u), N);
	assert_int_equal(th_units_max_depth(u), N);
	long last = th_units_find(u, "U49999");
	assert_int_equal(last, 0);
	assert_int_equal(th_units_at(u, 0)->depth, N);
	assert_int_equal(th_units_root(u), N - 1);
	assert_true(th_units_in_subtree(u, th_units_root(u), 0));
	assert_false(th_units_in_subtree(u, 0, 1));
	th_units_destroy(&u);
	/* close the chain into a loop: every unit of it is reported, at its line */
	t[o - strlen("U0\t\troot\tGốc\n")] = 0;
	o = strlen(t);
	o += (size_t)snprintf(t + o, cap - o, "U0\tU49999\troot\tGốc\nR\t\tcity\tX\n");
	assert_int_equal(th_units_parse(t, o, "chain", &u, d), TH_ECYCLE);
	assert_null(u);
	assert_int_equal(th_diag_errors(d), N);
	assert_non_null(strstr(th_diag_text(d, 0), "chain:4: unit U49999: its chain of parents"));
	th_diag_destroy(&d);
	free(t);
}

static void error_missing_file(void **state)
{
	(void)state;
	th_units *u = NULL;
	th_diag *d = th_diag_new();
	assert_int_equal(th_units_load("/nonexistent/x.units", &u, d), TH_EIO);
	assert_null(u);
	assert_non_null(strstr(th_diag_text(d, 0), "/nonexistent/x.units: cannot open: No such file"));
	th_diag_destroy(&d);
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
	assert_true(th_units_in_subtree(u, th_units_root(u), (size_t)px));
	assert_true(th_units_in_subtree(u, (size_t)px, (size_t)px));
	/* 00091 Phường Phú Thượng is in Tây Hồ (003), not Ba Đình */
	long hk = th_units_find(u, "003"), pt = th_units_find(u, "00091");
	assert_true(hk >= 0 && pt >= 0);
	assert_true(th_units_in_subtree(u, (size_t)hk, (size_t)pt));
	assert_false(th_units_in_subtree(u, (size_t)bd, (size_t)pt));
	assert_false(th_units_in_subtree(u, (size_t)px, (size_t)bd));
	assert_int_equal(th_units_max_depth(u), 3);
	assert_int_equal(th_units_at(u, (size_t)px)->depth, 3);
	assert_int_equal(th_units_at(u, (size_t)bd)->depth, 2);
	assert_int_equal(agency, 9);
	long btg = th_units_find(u, "SNV.BTG");
	assert_true(btg >= 0);
	assert_string_equal(th_units_at(u, (size_t)btg)->parent_code, "SNV");
	assert_int_equal(th_units_at(u, (size_t)btg)->depth, 3);
	assert_string_equal(th_units_version(u), "hanoi-2021");
	assert_int_equal(th_units_effective(u), 20210201);
	assert_true(th_units_at(u, (size_t)bd)->person[0] && strchr(th_units_at(u, (size_t)bd)->email, '@'));
	/* Ba Đình's 14 wards, in file order, the first being Phúc Xá */
	assert_int_equal(th_units_at(u, (size_t)bd)->n_children, 14);
	assert_int_equal(th_units_at(u, (size_t)bd)->children[0], (uint32_t)px);
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
	size_t leaves = 0;
	for (size_t i = 0; i < th_units_count(u); i++)
		leaves += !strcmp(th_units_at(u, i)->kind, "district") && th_units_at(u, i)->n_children == 0;
	assert_int_equal(leaves, 5);   /* the five districts without communes are kept */
	assert_string_equal(th_units_at(u, th_units_root(u))->code, "VN");
	long hn = th_units_find(u, "01"), snv = th_units_find(u, "01.SNV"), tan_dinh = th_units_find(u, "26734");
	assert_true(hn >= 0 && snv >= 0 && tan_dinh >= 0);
	assert_int_equal(th_units_at(u, (size_t)snv)->depth, 3);
	assert_int_equal(th_units_at(u, (size_t)tan_dinh)->depth, 4);
	assert_true(th_units_in_subtree(u, (size_t)hn, (size_t)snv));
	assert_false(th_units_in_subtree(u, (size_t)hn, (size_t)tan_dinh));   /* Hồ Chí Minh City */
	assert_int_equal(prov, 63);
	assert_int_equal(dist, 705);
	assert_int_equal(comm, 10603);
	assert_int_equal(th_units_max_depth(u), 4);
	th_units_destroy(&u);
}

/* th-mkunits rebuilds both bundled files byte for byte from ../shared/data. */
static void bundled_files_are_reproducible(void **state)
{
	(void)state;
	char vn[4096], deps[4096];
	snprintf(vn, sizeof vn, "%s/../shared/data/vn-units-2021-02-01.csv", tu_source_dir());
	snprintf(deps, sizeof deps, "%s/../shared/data/hanoi-departments-2021.csv", tu_source_dir());
	FILE *f = fopen(vn, "r");
	if (!f) {
		skip();   /* the official lists are not in this checkout */
		return;
	}
	fclose(f);
	char *dir = tu_tmpdir();
	static const char *modes[] = {"hanoi", "national"};
	static const char *files[] = {"data/hanoi-2021.units", "data/vn-2021.units"};
	for (int k = 0; k < 2; k++) {
		char out[4096];
		snprintf(out, sizeof out, "%s/%s.units", dir, modes[k]);
		char *argv[] = {(char *)tu_bin("tools/th-mkunits"), (char *)modes[k], "--vn", vn,
		                "--departments", deps, "--out", out, NULL};
		assert_int_equal(tu_run(argv, NULL), 0);
		size_t la = 0, lb = 0;
		char *a = tu_read_file(out, &la), *b = tu_read_file(tu_src(files[k]), &lb);
		assert_non_null(a);
		assert_non_null(b);
		if (la != lb || memcmp(a, b, la) != 0)
			fail_msg("th-mkunits %s no longer reproduces %s (see data/README.md)", modes[k], files[k]);
		free(a);
		free(b);
	}
	tu_rmrf(dir);
}

static void mkunits_usage(void **state)
{
	(void)state;
	int st = 0;
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "'%s' --help", tu_bin("tools/th-mkunits"));
	char *out = tu_capture(cmd, &st);
	assert_int_equal(st, 0);
	assert_non_null(out);
	assert_non_null(strstr(out, "usage: th-mkunits hanoi|national"));
	free(out);
	snprintf(cmd, sizeof cmd, "'%s' nowhere 2>/dev/null", tu_bin("tools/th-mkunits"));
	out = tu_capture(cmd, &st);
	assert_int_equal(st, 2);
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
		cmocka_unit_test(error_no_root),
		cmocka_unit_test(error_bad_utf8),
		cmocka_unit_test(error_missing_version),
		cmocka_unit_test(error_missing_effective),
		cmocka_unit_test(error_bad_date),
		cmocka_unit_test(error_bad_field_count),
		cmocka_unit_test(error_bad_codes),
		cmocka_unit_test(errors_all_at_once),
		cmocka_unit_test(variant_file),
		cmocka_unit_test(deep_chain),
		cmocka_unit_test(error_missing_file),
		cmocka_unit_test(names_nfc),
		cmocka_unit_test(bundled_hanoi),
		cmocka_unit_test(bundled_national),
		cmocka_unit_test(bundled_files_are_reproducible),
		cmocka_unit_test(mkunits_usage),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

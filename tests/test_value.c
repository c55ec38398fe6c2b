/* test_value.c -- the value model and spreadsheet parsers (schema/th_value.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_error.h"
#include "th_value.h"

static void int_vietnamese_grouping(void **state)
{
	(void)state;
	int64_t v;
	assert_int_equal(th_parse_int("1.234", &v, NULL), 0);
	assert_int_equal(v, 1234);
	assert_int_equal(th_parse_int("1.234.567", &v, NULL), 0);
	assert_int_equal(v, 1234567);
	assert_int_equal(th_parse_int(" 12 345 ", &v, NULL), 0);
	assert_int_equal(v, 12345);
	assert_int_equal(th_parse_int("-7", &v, NULL), 0);
	assert_int_equal(v, -7);
	assert_int_equal(th_parse_int("1\xC2\xA0" "000", &v, NULL), 0);   /* NBSP */
	assert_int_equal(v, 1000);
}

static void int_refusals(void **state)
{
	(void)state;
	int64_t v = 99;
	const char *why = NULL;
	assert_int_equal(th_parse_int("1,234", &v, &why), TH_EAMBIGUOUS);
	assert_non_null(strstr(why, "ambiguous"));
	assert_int_equal(v, 99);   /* untouched on failure */
	assert_int_equal(th_parse_int("1,5", &v, &why), TH_ETYPE);
	assert_int_equal(th_parse_int("12.34", &v, &why), TH_ETYPE);
	assert_int_equal(th_parse_int("12a", &v, &why), TH_ETYPE);
	assert_int_equal(th_parse_int("", &v, &why), TH_ETYPE);
	assert_int_equal(th_parse_int("1..2", &v, &why), TH_ETYPE);
	assert_int_equal(th_parse_int("9223372036854775808", &v, &why), TH_ERANGE);
	assert_int_equal(th_parse_int("-9223372036854775808", &v, &why), 0);
	assert_int_equal(v, INT64_MIN);
}

static void dec_unambiguous_forms(void **state)
{
	(void)state;
	struct { const char *s; int64_t v; } ok[] = {
		{"1,5", 150}, {"1.5", 150}, {"1.234,5", 123450}, {"1,234.5", 123450},
		{"-0,25", -25}, {"12", 1200}, {"1.234.567,89", 123456789}, {"1,2300", 123},
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		int64_t v;
		const char *why = NULL;
		int rc = th_parse_dec(ok[i].s, 2, &v, &why);
		if (rc)
			print_message("%s: %s\n", ok[i].s, why);
		assert_int_equal(rc, 0);
		assert_int_equal(v, ok[i].v);
	}
}

static void dec_ambiguous_refused(void **state)
{
	(void)state;
	int64_t v;
	const char *why = NULL;
	assert_int_equal(th_parse_dec("1.234", 3, &v, &why), TH_EAMBIGUOUS);
	assert_non_null(strstr(why, "1234"));
	assert_int_equal(th_parse_dec("1,234", 3, &v, &why), TH_EAMBIGUOUS);
	assert_int_equal(th_parse_dec("1,234", 2, &v, &why), TH_EAMBIGUOUS);
	assert_int_equal(th_parse_dec("1,2345", 2, &v, &why), TH_ERANGE);   /* no silent rounding */
	assert_int_equal(th_parse_dec("1,2.3", 2, &v, &why), TH_ETYPE);
}

static void dates(void **state)
{
	(void)state;
	int32_t d;
	assert_int_equal(th_parse_date("05/04/2021", &d, NULL), 0);
	assert_int_equal(d, 20210405);
	assert_int_equal(th_parse_date("5/4/2021", &d, NULL), 0);
	assert_int_equal(d, 20210405);
	assert_int_equal(th_parse_date("2021-04-05", &d, NULL), 0);
	assert_int_equal(d, 20210405);
	assert_int_equal(th_parse_date("05.04.2021", &d, NULL), 0);
	assert_int_equal(th_parse_date("29/02/2024", &d, NULL), 0);
	assert_int_equal(th_parse_date("29/02/2021", &d, NULL), TH_ERANGE);
	assert_int_equal(th_parse_date("29/02/1900", &d, NULL), TH_ERANGE);
	assert_int_equal(th_parse_date("29/02/2000", &d, NULL), 0);
	assert_int_equal(th_parse_date("31/04/2021", &d, NULL), TH_ERANGE);
	assert_int_equal(th_parse_date("2021/04/05", &d, NULL), TH_ETYPE);
	assert_int_equal(th_parse_date("04/05", &d, NULL), TH_ETYPE);
	assert_int_equal(th_date_days(19700101), 0);
	assert_int_equal(th_date_days(20210101) - th_date_days(20201231), 1);
}

static void bools(void **state)
{
	(void)state;
	const char *yes[] = {"1", "x", "X", "có", "Có", "true", "Yes", "đúng"};
	const char *no[] = {"0", "không", "false", "no", "sai", "KHONG"};
	int64_t v;
	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		assert_int_equal(th_parse_bool(yes[i], &v, NULL), 0);
		assert_int_equal(v, 1);
	}
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
		assert_int_equal(th_parse_bool(no[i], &v, NULL), 0);
		assert_int_equal(v, 0);
	}
	assert_int_equal(th_parse_bool("maybe", &v, NULL), TH_ETYPE);
}

static void nfc_normalisation(void **state)
{
	(void)state;
	/* "Hà Nội" decomposed: a + U+0300, o + U+0323 + U+0302 */
	const char *nfd = "Ha\xCC\x80 No\xCC\xA3\xCC\x82i";
	const char *nfc = "H\xC3\xA0 N\xE1\xBB\x99i";
	char *out;
	size_t len;
	assert_int_equal(th_utf8_nfc(nfd, strlen(nfd), &out, &len), 0);
	assert_string_equal(out, nfc);
	assert_int_equal(len, strlen(nfc));
	free(out);
	assert_int_equal(th_utf8_nfc("\xC3\x28", 2, &out, &len), TH_EUTF8);
}

static void utf8_validity(void **state)
{
	(void)state;
	assert_true(th_utf8_valid("Sở Nội vụ", strlen("Sở Nội vụ")));
	assert_false(th_utf8_valid("\xC3\x28", 2));
	assert_false(th_utf8_valid("a\0b", 3));
	assert_false(th_utf8_valid("\xED\xA0\x80", 3));   /* surrogate */
	assert_false(th_utf8_valid("a\x01", 2));
	assert_true(th_utf8_valid("a\tb\n", 4));
}

static void display_width(void **state)
{
	(void)state;
	assert_int_equal(th_utf8_width("Hà Nội"), 6);
	assert_int_equal(th_utf8_width("Ha\xCC\x80 No\xCC\xA3\xCC\x82i"), 6);   /* combining marks are 0 wide */
	assert_int_equal(th_utf8_width(""), 0);
}

static void formatting(void **state)
{
	(void)state;
	char b[32];
	assert_string_equal(th_fmt_dec(-5, 2, 1, b), "-0,05");
	assert_string_equal(th_fmt_dec(123456, 3, 0, b), "123.456");
	assert_string_equal(th_fmt_date(20210405, 0, b), "05/04/2021");
	assert_string_equal(th_fmt_date(20210405, 1, b), "2021-04-05");
	assert_string_equal(th_fmt_int(INT64_MIN, b), "-9223372036854775808");
}

static void value_order_null_first(void **state)
{
	(void)state;
	th_value n = {.null = 1}, a = {.i = 1}, b = {.i = 2};
	assert_true(th_value_cmp(&n, &a, TH_T_INT) < 0);
	assert_true(th_value_cmp(&a, &b, TH_T_INT) < 0);
	assert_int_equal(th_value_cmp(&n, &n, TH_T_INT), 0);
	th_value s1 = {.s = "ab", .len = 2}, s2 = {.s = "abc", .len = 3};
	assert_true(th_value_cmp(&s1, &s2, TH_T_TEXT) < 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(int_vietnamese_grouping),
		cmocka_unit_test(int_refusals),
		cmocka_unit_test(dec_unambiguous_forms),
		cmocka_unit_test(dec_ambiguous_refused),
		cmocka_unit_test(dates),
		cmocka_unit_test(bools),
		cmocka_unit_test(nfc_normalisation),
		cmocka_unit_test(utf8_validity),
		cmocka_unit_test(display_width),
		cmocka_unit_test(formatting),
		cmocka_unit_test(value_order_null_first),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

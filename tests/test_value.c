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

#include <unictype.h>
#include <unistr.h>
#include <uninorm.h>

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

/* The NFC fast path's ranges, checked against libunistring's tables for every
 * code point: a stable code point is a starter, has no canonical decomposition
 * to a single code point (NFC would replace it), and is never the second half
 * of a canonical pair (NFC could compose it with what precedes it). */
static void nfc_stable_ranges_hold(void **state)
{
	(void)state;
	size_t stable = 0;
	for (ucs4_t c = 0; c <= 0x10FFFF; c++) {
		if (c >= 0xD800 && c <= 0xDFFF)
			continue;
		ucs4_t dec[UC_DECOMPOSITION_MAX_LENGTH];
		int n = uc_canonical_decomposition(c, dec);
		if (th_nfc_stable_cp(c)) {
			stable++;
			if (uc_combining_class(c) != 0)
				fail_msg("U+%04X is stable but has combining class %d", (unsigned)c,
				         uc_combining_class(c));
			if (n == 1)
				fail_msg("U+%04X is stable but NFC maps it to U+%04X", (unsigned)c, (unsigned)dec[0]);
		}
		if (n == 2 && th_nfc_stable_cp(dec[1]))
			fail_msg("U+%04X decomposes to U+%04X U+%04X: U+%04X may compose", (unsigned)c,
			         (unsigned)dec[0], (unsigned)dec[1], (unsigned)dec[1]);
	}
	assert_true(stable > 1000);
	/* and the fast path gives what the normaliser gives */
	const char *samples[] = {"Ủy ban nhân dân phường Điện Biên", "Sở Nội vụ — “CCHC” … 100‰",
	                         "Thị trấn Chúc Sơn", "Ha\xCC\x80 No\xCC\xA3\xCC\x82i",
	                         "\xE1\xBA\xA0\xCC\x82" /* U+1EA0 + U+0302 composes to U+1EAC */,
	                         "Ω \xE2\x84\xA6" /* U+2126 OHM SIGN is a singleton */};
	for (size_t i = 0; i < sizeof samples / sizeof *samples; i++) {
		size_t n = strlen(samples[i]), want_len = 0, got_len = 0;
		uint8_t *want = u8_normalize(UNINORM_NFC, (const uint8_t *)samples[i], n, NULL, &want_len);
		char *got = NULL;
		assert_non_null(want);
		assert_int_equal(th_utf8_nfc(samples[i], n, &got, &got_len), 0);
		assert_int_equal(got_len, want_len);
		assert_memory_equal(got, want, want_len);
		free(want);
		free(got);
	}
	assert_int_equal(th_utf8_check("Sở Nội vụ", strlen("Sở Nội vụ")), 1);
	assert_int_equal(th_utf8_check("Ha\xCC\x80", 4), 0);
	assert_int_equal(th_utf8_check("Ha\xCC", 3), -1);
}

/* The old definition of validity: libunistring's u8_check, then no C0
 * control but TAB/LF/CR and no DEL. */
static int ref_valid(const uint8_t *s, size_t n)
{
	if (u8_check(s, n) != NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		if ((s[i] < 0x20 && s[i] != '\t' && s[i] != '\n' && s[i] != '\r') || s[i] == 0x7f)
			return 0;
	return 1;
}

/* th_utf8_check agrees with the reference on every string of up to 3 bytes and
 * on a million random 4- to 6-byte strings built to hit 4-byte sequences. */
static void utf8_check_matches_reference(void **state)
{
	(void)state;
	uint8_t b[6];
	size_t valid = 0;
	for (size_t n = 1; n <= 3; n++)
		for (uint32_t x = 0; x < (1u << (8 * n)); x++) {
			for (size_t k = 0; k < n; k++)
				b[k] = (uint8_t)(x >> (8 * (n - 1 - k)));
			int got = th_utf8_check((const char *)b, n) >= 0, want = ref_valid(b, n);
			if (got != want)
				fail_msg("%zu bytes %02X %02X %02X: check says %d, u8_check %d", n, b[0],
				         n > 1 ? b[1] : 0, n > 2 ? b[2] : 0, got, want);
			valid += (size_t)got;
		}
	srand(7);
	for (int i = 0; i < 1000000; i++) {
		size_t n = 4 + (size_t)(rand() % 3);
		b[0] = (uint8_t)(0xEE + rand() % 10);   /* EE..F7 */
		for (size_t k = 1; k < n; k++)
			b[k] = (uint8_t)(rand() % 3 ? 0x80 + rand() % 0x40 : rand());
		int got = th_utf8_check((const char *)b, n) >= 0, want = ref_valid(b, n);
		if (got != want)
			fail_msg("%02X %02X %02X %02X: check says %d, u8_check %d", b[0], b[1], b[2], b[3], got,
			         want);
	}
	/* longer strings, mostly ASCII, for the eight-bytes-at-a-time path */
	static const uint8_t pick[] = {'a', 'Z', ' ', '0', '~', '\t', '\n', '\r', 0x01, 0x1f, 0x7f,
	                               0x7e, 0x20, 0xC3, 0xA0, 0xE1, 0xBB, 0x99, 0x80, 0xFF};
	uint8_t l[40];
	for (int i = 0; i < 300000; i++) {
		size_t n = 8 + (size_t)(rand() % 33);
		for (size_t k = 0; k < n; k++)
			l[k] = rand() % 8 ? (uint8_t)(0x20 + rand() % 0x5f) : pick[rand() % sizeof pick];
		int got = th_utf8_check((const char *)l, n) >= 0, want = ref_valid(l, n);
		if (got != want)
			fail_msg("a %zu-byte string: check says %d, u8_check %d", n, got, want);
	}
	assert_true(valid > 60000);
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
		cmocka_unit_test(nfc_stable_ranges_hold),
		cmocka_unit_test(utf8_check_matches_reference),
		cmocka_unit_test(utf8_validity),
		cmocka_unit_test(display_width),
		cmocka_unit_test(formatting),
		cmocka_unit_test(value_order_null_first),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

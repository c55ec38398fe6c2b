/* test_xnum.c -- numbers and date serials as a workbook stores them (schema/th_xnum.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "testutil.h"
#include "th_error.h"
#include "th_xnum.h"

static int64_t scaled(const char *lit, int scale, int *rc)
{
	th_xnum x;
	int64_t v = -777;
	const char *why = NULL;
	*rc = th_xnum_parse(lit, &x);
	if (*rc == 0)
		*rc = th_xnum_scaled(&x, scale, &v, &why);
	return v;
}

static void exact_and_rounded(void **state)
{
	(void)state;
	int rc;
	assert_int_equal(scaled("1234", 0, &rc), 1234);
	assert_int_equal(rc, 0);
	assert_int_equal(scaled("-0", 0, &rc), 0);
	assert_int_equal(scaled("1E3", 0, &rc), 1000);
	assert_int_equal(scaled("1.5E-1", 2, &rc), 15);
	/* a double's noise is rounded away at 15 significant digits */
	assert_int_equal(scaled("0.30000000000000004", 1, &rc), 3);
	assert_int_equal(scaled("91.230000000000004", 2, &rc), 9123);
	assert_int_equal(scaled("1234.9999999999998", 0, &rc), 1235);
	/* a plain integer is exact, whatever its length */
	assert_int_equal(scaled("12345678901234567", 0, &rc), INT64_C(12345678901234567));
	assert_int_equal(scaled("9223372036854775807", 0, &rc), INT64_MAX);
	assert_int_equal(rc, 0);
	assert_int_equal(scaled("-9223372036854775808", 0, &rc), INT64_MIN);
	assert_int_equal(rc, 0);
	/* what does not fit is refused, never rounded */
	scaled("12.345", 2, &rc);
	assert_int_equal(rc, TH_ERANGE);
	scaled("1.5", 0, &rc);
	assert_int_equal(rc, TH_ERANGE);
	scaled("9223372036854775808", 0, &rc);
	assert_int_equal(rc, TH_ERANGE);
	scaled("1E30", 0, &rc);
	assert_int_equal(rc, TH_ERANGE);
	/* not a number */
	const char *bad[] = {"", "-", "1,5", "1.2.3", "E5", "1E", "0x10", " 1"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		th_xnum x;
		assert_int_equal(th_xnum_parse(bad[i], &x), TH_ETYPE);
	}
}

static void plain_text(void **state)
{
	(void)state;
	const char *in[] = {"1234", "0.5", "0.001", "1E3", "-12.50", "0.30000000000000004", "0"};
	const char *out[] = {"1234", "0.5", "0.001", "1000", "-12.5", "0.3", "0"};
	for (size_t i = 0; i < sizeof in / sizeof in[0]; i++) {
		th_xnum x;
		char b[64];
		assert_int_equal(th_xnum_parse(in[i], &x), 0);
		th_xnum_text(&x, b, sizeof b);
		assert_string_equal(b, out[i]);
	}
}

static int32_t serial(const char *s, int d1904, int *rc)
{
	int32_t ymd = 0;
	const char *why = NULL;
	*rc = th_xnum_serial_date(s, d1904, &ymd, &why);
	return ymd;
}

static void date_serials(void **state)
{
	(void)state;
	int rc;
	/* the 1900 system and its fictitious 29 February */
	assert_int_equal(serial("1", 0, &rc), 19000101);
	assert_int_equal(serial("59", 0, &rc), 19000228);
	serial("60", 0, &rc);
	assert_int_equal(rc, TH_ERANGE);
	assert_int_equal(serial("61", 0, &rc), 19000301);
	assert_int_equal(serial("44291", 0, &rc), 20210405);
	assert_int_equal(serial("2958465", 0, &rc), 0);   /* 9999-12-31: beyond 2999 */
	assert_int_not_equal(rc, 0);
	serial("0", 0, &rc);
	assert_int_not_equal(rc, 0);
	/* the 1904 system */
	assert_int_equal(serial("0", 1, &rc), 19040101);
	assert_int_equal(serial("42829", 1, &rc), 20210405);
	/* a time of day, a negative serial */
	serial("44291.25", 0, &rc);
	assert_int_equal(rc, TH_ETYPE);
	serial("-1", 0, &rc);
	assert_int_not_equal(rc, 0);
	/* a whole day written with a fraction of zeros is a date */
	assert_int_equal(serial("44291.0", 0, &rc), 20210405);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exact_and_rounded),
		cmocka_unit_test(plain_text),
		cmocka_unit_test(date_serials),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

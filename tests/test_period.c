/* test_period.c -- the period grammar and its first and last days
 * (schema/th_period.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "th_period.h"

static void grammar(void **state)
{
	(void)state;
	const char *good[] = {"2021", "1900", "2999", "2021-Q1", "2021-Q4", "2021-H1", "2021-H2",
	                      "2021-01", "2021-12"};
	const char *bad[] = {"", "21", "20210", "1899", "3000", "2021-", "2021-Q0", "2021-Q5",
	                     "2021-H0", "2021-H3", "2021-00", "2021-13", "2021-6", "2021/06",
	                     "2021-06-01", "abcd", "2021-q1", "２０２１"};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		assert_true(th_period_valid(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_false(th_period_valid(bad[i]));
	assert_false(th_period_valid(NULL));
}

static void first_and_last_days(void **state)
{
	(void)state;
	struct { const char *p; int32_t start, end; } c[] = {
		{"2021", 20210101, 20211231},    {"2021-Q1", 20210101, 20210331},
		{"2021-Q2", 20210401, 20210630}, {"2021-Q3", 20210701, 20210930},
		{"2021-Q4", 20211001, 20211231}, {"2021-H1", 20210101, 20210630},
		{"2021-H2", 20210701, 20211231}, {"2021-06", 20210601, 20210630},
		{"2021-02", 20210201, 20210228}, {"2024-02", 20240201, 20240229},
		{"2000-02", 20000201, 20000229}, {"1900-02", 19000201, 19000228},
		{"2040-01", 20400101, 20400131}, {"2021-11", 20211101, 20211130},
	};
	for (size_t i = 0; i < sizeof c / sizeof *c; i++) {
		assert_int_equal(th_period_start(c[i].p), c[i].start);
		assert_int_equal(th_period_end(c[i].p), c[i].end);
	}
	assert_int_equal(th_period_start("2021-13"), 0);
	assert_int_equal(th_period_end("2021-Q5"), 0);
	assert_int_equal(th_period_start(NULL), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(grammar),
		cmocka_unit_test(first_and_last_days),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

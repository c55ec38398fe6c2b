/* test_error.c -- error names and diagnostics (common/th_error.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "testutil.h"
#include "th_error.h"

static void every_code_named(void **state)
{
	(void)state;
	for (int c = TH_ERR_MIN; c <= 0; c++) {
		assert_string_not_equal(th_strerror(c), "unknown error");
		assert_string_not_equal(th_errname(c), "unknown");
		if (c < 0)
			assert_int_equal(th_errcode(th_errname(c)), c);
	}
	assert_string_equal(th_strerror(-1000), "unknown error");
	assert_int_equal(th_errcode("no-such-name"), 0);
}

static void diag_formats(void **state)
{
	(void)state;
	th_diag *d = th_diag_new();
	th_diag_add(d, TH_SEV_ERROR, TH_ETYPE, "PL1_2021.csv", 14, 3, "ho_so_dung_han",
	            "\"%s\" is not an integer", "12a");
	th_diag_add(d, TH_SEV_WARNING, TH_ERULE, NULL, 0, 2, "trang_thai", "disagrees");
	th_diag_add(d, TH_SEV_ERROR, TH_EIO, "x.def", 0, 0, NULL, "cannot open");
	assert_int_equal(th_diag_count(d), 3);
	assert_int_equal(th_diag_errors(d), 2);
	assert_string_equal(th_diag_text(d, 0), "PL1_2021.csv:14: ho_so_dung_han: \"12a\" is not an integer");
	assert_string_equal(th_diag_text(d, 1), "row 2: trang_thai: warning: disagrees");
	assert_string_equal(th_diag_text(d, 2), "x.def: cannot open");
	assert_int_equal(th_diag_at(d, 0)->row, 3);
	th_diag_clear(d);
	assert_int_equal(th_diag_count(d), 0);
	th_diag_destroy(&d);
	assert_null(d);
	th_diag_destroy(&d);   /* NULL is fine */
	assert_int_equal(th_diag_add(NULL, TH_SEV_ERROR, TH_EIO, NULL, 0, 0, NULL, "x"), TH_EIO);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_code_named),
		cmocka_unit_test(diag_formats),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

/* test_json.c -- JSON output conventions (common/th_json.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_json.h"

static char *dump(const json_t *v, int pretty)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(th_json_print(f, v, pretty), 0);
	fclose(f);
	return buf;
}

static void text_is_always_utf8(void **state)
{
	(void)state;
	json_t *o = json_object();
	th_json_set(o, "name", th_json_str("Sở Nội vụ \"SNV\"\n"));
	th_json_set(o, "bad", th_json_strn("a\xff" "b\xc3", 4));   /* 0xff, a cut sequence */
	th_json_set(o, "fffd", th_json_str("\xef\xbf\xbd"));      /* a real U+FFFD stays */
	th_json_set(o, "none", th_json_str(NULL));
	char *s = dump(o, 0);
	assert_string_equal(s, "{\"name\":\"Sở Nội vụ \\\"SNV\\\"\\n\",\"bad\":\"a\xef\xbf\xbd" "b\xef\xbf\xbd\","
	                       "\"fffd\":\"\xef\xbf\xbd\",\"none\":null}\n");
	free(s);
	json_decref(o);
}

static void numbers_exact(void **state)
{
	(void)state;
	json_t *a = json_array();
	json_array_append_new(a, json_integer(INT64_MAX));
	json_array_append_new(a, json_integer(INT64_MIN));
	json_array_append_new(a, th_json_decimal(996, 1));          /* 99.6 */
	json_array_append_new(a, th_json_decimal(-12345, 2));       /* -123.45 */
	json_array_append_new(a, th_json_decimal(123456789012345, 3));   /* 15 digits */
	json_array_append_new(a, th_json_decimal(7, 0));
	char *s = dump(a, 0);
	assert_string_equal(s, "[9223372036854775807,-9223372036854775808,99.6,-123.45,123456789012.345,7]\n");
	free(s);
	json_decref(a);
}

static void pretty_is_indented(void **state)
{
	(void)state;
	json_t *o = json_pack("{s:i}", "a", 1);
	char *s = dump(o, 1);
	assert_string_equal(s, "{\n  \"a\": 1\n}\n");
	free(s);
	json_decref(o);
	assert_int_equal(th_json_set(o = json_object(), "x", NULL), 0);   /* NULL sets nothing */
	assert_int_equal(json_object_size(o), 0);
	json_decref(o);
}

static void inline_is_spaced_one_line(void **state)
{
	(void)state;
	json_t *o = json_object();
	th_json_set(o, "unit", th_json_str("C12"));
	th_json_set(o, "n", json_null());
	th_json_set(o, "ratio", th_json_decimal(1000, 1));     /* 100.0 stays a real */
	th_json_set(o, "list", json_pack("[ii]", 1, 2));
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(th_json_print_inline(f, o), 0);
	fclose(f);
	/* insertion order, a blank after ',' and ':', no newline */
	assert_string_equal(buf, "{\"unit\": \"C12\", \"n\": null, \"ratio\": 100.0, \"list\": [1, 2]}");
	free(buf);
	json_decref(o);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(text_is_always_utf8),
		cmocka_unit_test(numbers_exact),
		cmocka_unit_test(pretty_is_indented),
		cmocka_unit_test(inline_is_spaced_one_line),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

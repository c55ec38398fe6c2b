/* test_out.c -- the output formats of the view library (tools/render*.c):
 * table widths with Vietnamese text (NFC and decomposed), csv quoting, json
 * escaping, null versus 0, the ratio dash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "testutil.h"
#include "th_render.h"
#include "th_table.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Renders t in fmt into a malloc'd string; keys (NULL: none) become the
 * columns' keys for this rendering only. */
static char *render(th_table *t, th_format fmt, int bom, const char *const *keys)
{
	char *buf = NULL, why[200];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	th_render_opts o = {.fmt = fmt, .bom = bom, .sheet = "s"};
	for (size_t c = 0; keys && c < th_table_cols(t); c++)
		th_table_column(t, c, keys[c], th_table_title(t, c), NULL, th_table_numeric(t, c));
	assert_int_equal(th_render_table(t, &o, f, why, sizeof why), 0);
	for (size_t c = 0; keys && c < th_table_cols(t); c++)
		th_table_column(t, c, NULL, th_table_title(t, c), NULL, th_table_numeric(t, c));
	fclose(f);
	return buf;
}

static th_table *two_cols(void)
{
	th_table *t = th_table_new(2);
	assert_non_null(t);
	th_table_header(t, 0, "Đơn vị", 0);
	th_table_header(t, 1, "Số hồ sơ", 1);
	return t;
}

static void add(th_table *t, const char *a, const char *b)
{
	long r = th_table_row(t);
	assert_true(r >= 0);
	th_table_set(t, (size_t)r, 0, a);
	th_table_set(t, (size_t)r, 1, b);
}

/* Every line of a table has the same display width (the last column is
 * numeric, so right-aligned), and the numbers end in the same column. */
static void table_widths_vietnamese(void **state)
{
	(void)state;
	th_table *t = two_cols();
	add(t, "Thành phố Hà Nội", "12345");
	/* "Hà Nội" decomposed: a + U+0300, o + U+0323 + U+0302 */
	add(t, "Ha\xCC\x80 No\xCC\xA3\xCC\x82i", "7");
	add(t, "Quận Ba Đình", "0");
	add(t, "X", NULL);
	char *s = render(t, TH_FMT_TABLE, 0, NULL);
	size_t w0 = 0, lines = 0;
	for (char *save = NULL, *l = strtok_r(s, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		size_t w = th_utf8_width(l);
		if (lines == 5) {
			/* the null row: empty cell, no trailing blanks */
			assert_int_equal(w, 1);
		} else if (lines == 0) {
			w0 = w;
		} else {
			assert_int_equal(w, w0);
		}
		lines++;
	}
	assert_int_equal(lines, 6);   /* header, rule, 4 rows */
	/* "Thành phố Hà Nội" is 16 columns wide: name column 16 + 2 + 8 */
	assert_int_equal(w0, 16 + 2 + 8);
	free(s);
	th_table_destroy(&t);
	assert_null(t);
}

static void table_header_underlined(void **state)
{
	(void)state;
	th_table *t = two_cols();
	add(t, "Sở Nội vụ", "5");
	char *s = render(t, TH_FMT_TABLE, 0, NULL);
	/* widths: "Sở Nội vụ" = 9 columns, "Số hồ sơ" = 8 */
	assert_string_equal(s, "Đơn vị     Số hồ sơ\n"
	                       "---------  --------\n"
	                       "Sở Nội vụ         5\n");
	free(s);
	th_table_destroy(&t);
}

static void csv_quoting(void **state)
{
	(void)state;
	th_table *t = two_cols();
	add(t, "a,b", "1");
	add(t, "say \"hi\"", "2");
	add(t, "two\nlines", "3");
	add(t, "semi;colon", "4");
	add(t, " padded", "5");
	add(t, "Hà Nội", "6");
	char *s = render(t, TH_FMT_CSV, 0, NULL);
	assert_string_equal(s, "Đơn vị,Số hồ sơ\r\n"
	                       "\"a,b\",1\r\n"
	                       "\"say \"\"hi\"\"\",2\r\n"
	                       "\"two\nlines\",3\r\n"
	                       "\"semi;colon\",4\r\n"
	                       "\" padded\",5\r\n"
	                       "Hà Nội,6\r\n");
	free(s);
	th_table_destroy(&t);
}

static void csv_bom_only_when_asked(void **state)
{
	(void)state;
	th_table *t = two_cols();
	add(t, "x", "1");
	char *plain = render(t, TH_FMT_CSV, 0, NULL);
	char *excel = render(t, TH_FMT_CSV, 1, NULL);
	assert_memory_not_equal(plain, "\xEF\xBB\xBF", 3);
	assert_memory_equal(excel, "\xEF\xBB\xBF", 3);
	assert_string_equal(excel + 3, plain);
	free(plain);
	free(excel);
	th_table_destroy(&t);
}

static void json_escaping(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	th_json_string(f, "a\"b\\c\nd\te\x01" "f Hà Nội");
	fclose(f);
	assert_string_equal(buf, "\"a\\\"b\\\\c\\nd\\te\\u0001f Hà Nội\"");
	free(buf);
}

static void null_vs_zero(void **state)
{
	(void)state;
	th_table *t = two_cols();
	add(t, "zero", "0");
	add(t, "null", NULL);
	static const char *const keys[] = {"unit", "n"};
	char *js = render(t, TH_FMT_JSON, 0, keys);
	assert_string_equal(js, "[\n {\"unit\": \"zero\", \"n\": 0},\n {\"unit\": \"null\", \"n\": null}\n]\n");
	char *csv = render(t, TH_FMT_CSV, 0, NULL);
	assert_string_equal(csv, "Đơn vị,Số hồ sơ\r\nzero,0\r\nnull,\r\n");
	char *tab = render(t, TH_FMT_TABLE, 0, NULL);
	assert_non_null(strstr(tab, "\nzero           0\n"));
	assert_non_null(strstr(tab, "\nnull\n"));      /* nothing printed for null */
	free(js);
	free(csv);
	free(tab);
	th_table_destroy(&t);
}

static void ratio_dash(void **state)
{
	(void)state;
	th_table *t = two_cols();
	add(t, "a", "87.5");
	add(t, "b", "—");
	char *js = render(t, TH_FMT_JSON, 0, NULL);
	/* a number stays a number; the dash is a string, never a bogus number */
	assert_non_null(strstr(js, "\"Số hồ sơ\": 87.5}"));
	assert_non_null(strstr(js, "\"Số hồ sơ\": \"—\"}"));
	char *tab = render(t, TH_FMT_TABLE, 0, NULL);
	/* right-aligned by display width: the dash is one column wide */
	assert_non_null(strstr(tab, "\na           87.5\n"));
	assert_non_null(strstr(tab, "\nb              —\n"));
	free(js);
	free(tab);
	th_table_destroy(&t);
}

static void json_numbers_strict(void **state)
{
	(void)state;
	assert_true(th_text_is_number("0"));
	assert_true(th_text_is_number("-12.5"));
	assert_true(th_text_is_number("1234567890123"));
	assert_false(th_text_is_number("007"));
	assert_false(th_text_is_number("1e5"));
	assert_false(th_text_is_number("1."));
	assert_false(th_text_is_number("1,5"));
	assert_false(th_text_is_number(""));
	assert_false(th_text_is_number("-"));
}

static void format_names(void **state)
{
	(void)state;
	assert_int_equal(th_format_parse("table"), TH_FMT_TABLE);
	assert_int_equal(th_format_parse("csv"), TH_FMT_CSV);
	assert_int_equal(th_format_parse("json"), TH_FMT_JSON);
	assert_int_equal(th_format_parse("xlsx"), TH_FMT_XLSX);
	assert_int_equal(th_format_parse("xls"), -1);
	assert_int_equal(th_format_parse(""), -1);
}

static void cells_bounds_and_setf(void **state)
{
	(void)state;
	th_table *t = th_table_new(3);
	assert_non_null(t);
	for (int i = 0; i < 200; i++) {          /* grows past the first allocation */
		long r = th_table_row(t);
		assert_int_equal(r, i);
		th_table_setf(t, (size_t)r, 2, "%d", i * 3);
	}
	th_table_set(t, 500, 0, "ignored");      /* out of range: no effect */
	th_table_set(t, 0, 7, "ignored");
	assert_int_equal(th_table_rows(t), 200);
	assert_string_equal(th_table_get(t, 199, 2), "597");
	assert_null(th_table_get(t, 199, 0));
	assert_null(th_table_get(t, 0, 9));
	th_table_destroy(&t);
	th_table_destroy(&t);                    /* NULL-safe */
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_widths_vietnamese),
		cmocka_unit_test(table_header_underlined),
		cmocka_unit_test(csv_quoting),
		cmocka_unit_test(csv_bom_only_when_asked),
		cmocka_unit_test(json_escaping),
		cmocka_unit_test(null_vs_zero),
		cmocka_unit_test(ratio_dash),
		cmocka_unit_test(json_numbers_strict),
		cmocka_unit_test(format_names),
		cmocka_unit_test(cells_bounds_and_setf),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

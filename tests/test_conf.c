/* test_conf.c -- the configuration-file parser (common/th_conf.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "testutil.h"
#include "th_conf.h"

typedef struct {
	char seen[16][2][128];
	int n;
} lines;

/* Takes every setting except "bad"; a setting "why" is refused with a message. */
static int take(void *ctx, const char *name, const char *value, char *why, size_t cap)
{
	lines *l = ctx;
	if (!strcmp(name, "bad"))
		return -1;
	if (!strcmp(name, "why")) {
		snprintf(why, cap, "why takes nothing, not \"%s\"", value);
		return -1;
	}
	if (l->n < 16) {
		snprintf(l->seen[l->n][0], 128, "%s", name);
		snprintf(l->seen[l->n][1], 128, "%s", value);
		l->n++;
	}
	return 0;
}

static void grammar(void **state)
{
	(void)state;
	const char *text = "\xef\xbb\xbf# comment\n"
	                   "   ; another comment\n"
	                   "\n"
	                   "db = /var/lib/tonghop/store\r\n"
	                   "  server_key=/etc/tonghop/collector.key  \n"
	                   "insecure\n"
	                   "deadline = PL1:2021:2021-06-30\n"
	                   "deadline = PL2:2021:2021-06-30\n"
	                   "path = /srv/a#b;c\n"
	                   "empty =\n";
	lines l = {0};
	th_diag *d = th_diag_new();
	assert_int_equal(th_conf_parse_text(text, strlen(text), "x.conf", take, &l, d), 0);
	assert_int_equal(th_diag_count(d), 0);
	assert_int_equal(l.n, 7);
	assert_string_equal(l.seen[0][0], "db");
	assert_string_equal(l.seen[0][1], "/var/lib/tonghop/store");
	assert_string_equal(l.seen[1][0], "server-key");        /* '_' is '-' */
	assert_string_equal(l.seen[1][1], "/etc/tonghop/collector.key");
	assert_string_equal(l.seen[2][0], "insecure");          /* a bare name is "yes" */
	assert_string_equal(l.seen[2][1], "yes");
	assert_string_equal(l.seen[3][1], "PL1:2021:2021-06-30");   /* repeats, in order */
	assert_string_equal(l.seen[4][1], "PL2:2021:2021-06-30");
	assert_string_equal(l.seen[5][1], "/srv/a#b;c");         /* no inline comments */
	assert_string_equal(l.seen[6][0], "empty");
	assert_string_equal(l.seen[6][1], "");
	th_diag_destroy(&d);
}

static void every_bad_line_reported(void **state)
{
	(void)state;
	const char *text = "a = 1\n"
	                   "bad = 2\n"
	                   "[section]\n"
	                   "= value\n"
	                   "why = 3\n"
	                   "two words = 4\n"
	                   "b = 5";   /* no final newline */
	lines l = {0};
	th_diag *d = th_diag_new();
	assert_int_equal(th_conf_parse_text(text, strlen(text), "y.conf", take, &l, d), TH_ESYNTAX);
	assert_int_equal(l.n, 2);   /* the good lines were still taken */
	assert_string_equal(l.seen[1][0], "b");
	assert_int_equal(th_diag_count(d), 5);
	assert_string_equal(th_diag_text(d, 0), "y.conf:2: bad: unknown setting or bad value \"2\"");
	assert_int_equal(th_diag_at(d, 1)->line, 3);
	assert_non_null(strstr(th_diag_text(d, 1), "expected `name = value`"));
	assert_int_equal(th_diag_at(d, 2)->line, 4);
	assert_string_equal(th_diag_text(d, 3), "y.conf:5: why takes nothing, not \"3\"");
	assert_int_equal(th_diag_at(d, 4)->line, 6);
	th_diag_destroy(&d);
}

static void long_lines_and_files(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	char path[4200], value[3000];
	memset(value, 'v', sizeof value - 1);
	value[sizeof value - 1] = 0;
	char text[3100];
	snprintf(text, sizeof text, "long = %s\n", value);
	snprintf(path, sizeof path, "%s/c.conf", dir);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
	lines l = {0};
	th_diag *d = th_diag_new();
	assert_int_equal(th_conf_parse(path, take, &l, d), 0);
	assert_int_equal(l.n, 1);
	assert_int_equal(strlen(l.seen[0][1]), 127);   /* the test copy is cut, not the parser's */
	snprintf(path, sizeof path, "%s/missing.conf", dir);
	assert_int_equal(th_conf_parse(path, take, &l, d), TH_EIO);
	assert_non_null(strstr(th_diag_text(d, 0), "missing.conf: cannot open: No such file"));
	const char nul[] = "a = 1\nb\0c = 2\n";
	assert_int_equal(th_conf_parse_text(nul, sizeof nul - 1, "n.conf", take, &l, d), TH_ESYNTAX);
	th_diag_destroy(&d);
	tu_rmrf(dir);
}

static int count_long(void *ctx, const char *name, const char *value, char *why, size_t cap)
{
	*(size_t *)ctx = strlen(value);
	return 0;
}

static void value_not_cut(void **state)
{
	(void)state;
	static char text[20000];
	memcpy(text, "k = ", 4);
	memset(text + 4, 'x', 15000);
	size_t got = 0;
	assert_int_equal(th_conf_parse_text(text, 4 + 15000, "l.conf", count_long, &got, NULL), 0);
	assert_int_equal(got, 15000);
}

static void booleans(void **state)
{
	(void)state;
	assert_int_equal(th_conf_bool("yes"), 1);
	assert_int_equal(th_conf_bool("TRUE"), 1);
	assert_int_equal(th_conf_bool("on"), 1);
	assert_int_equal(th_conf_bool("1"), 1);
	assert_int_equal(th_conf_bool("No"), 0);
	assert_int_equal(th_conf_bool("off"), 0);
	assert_int_equal(th_conf_bool("0"), 0);
	assert_int_equal(th_conf_bool("maybe"), -1);
	assert_int_equal(th_conf_bool(""), -1);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(grammar),
		cmocka_unit_test(every_bad_line_reported),
		cmocka_unit_test(long_lines_and_files),
		cmocka_unit_test(value_not_cut),
		cmocka_unit_test(booleans),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

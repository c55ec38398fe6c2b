/* it_tools.c -- the `tonghop` command line against a real store.
 *
 * The fixture builds a store directly with th_store (a small hierarchy, PL1
 * reports whose totals this file computes on its own, a late unit, a
 * missing unit, a correction), closes it, and runs the built tools/tonghop
 * binary on it with --db. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

/* The tool links the store library (collector/store*.c); until it exists
 * the tool is not built and these cases have nothing to run. */
#if !__has_include("th_store.h")
int main(void)
{
	puts("it_tools: the store library (thstore) is not built; nothing to test");
	return 0;
}
#else

#include "testutil.h"
#include "th_csv.h"
#include "th_def.h"
#include "th_report.h"
#include "store_fixture.h"
#include "th_store.h"
#include "th_units.h"
#include "th_wire.h"

#include <inttypes.h>
#include <msgpack.h>
#include <signal.h>
#include <zmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char hierarchy[] =
	"@version test-1\n"
	"@effective 2021-01-01\n"
	"code\tparent\tkind\tname\tperson\tphone\temail\n"
	"01\t\tcity\tThành phố Thử\tTrần An\t0241\tcity@x.vn\n"
	"D1\t01\tdistrict\tQuận Một\tLê Bình\t0242\td1@x.vn\n"
	"C11\tD1\tcommune\tPhường Một Một\t\t\t\n"
	"C12\tD1\tcommune\tPhường Một Hai\t\t\t\n"
	"D2\t01\tdistrict\tQuận Hai\tPhạm Chi\t0243\td2@x.vn\n"
	"C21\tD2\tcommune\tXã Hai Một\tHoàng Dũng\t0244\tc21@x.vn\n"
	"S1\t01\tdepartment\tSở Nội vụ\tVũ Em\t0245\ts1@x.vn\n";

/* The figures: -1 is null.  Columns as in FIG_COLS. */
#define NFIG 6
static const char *FIG_COLS[NFIG] = {"ho_so_truc_tiep", "ho_so_truc_tuyen", "ho_so_buu_chinh",
                                     "giai_quyet_truoc_han", "giai_quyet_dung_han",
                                     "giai_quyet_tre_han"};
typedef struct fig {
	const char *unit, *parent;
	uint64_t rev;
	int64_t v[NFIG];
} fig;
/* Latest revisions (D1 has rev 1 in history, see D1_REV1). C21 is missing. */
static const fig FIGS[] = {
	{"D1", "01", 2, {120, 50, 0, 10, 80, 10}},
	{"C11", "D1", 1, {20, 5, 0, 1, 20, 4}},
	{"C12", "D1", 1, {7, -1, 0, 0, 7, 0}},
	{"D2", "01", 1, {0, 0, 0, 0, 0, 0}},
	{"S1", "01", 1, {30, 10, 0, 5, 5, 0}},
};
#define NFIGS (sizeof FIGS / sizeof *FIGS)
static const fig D1_REV1 = {"D1", "01", 1, {100, 50, 0, 10, 80, 10}};

static char *g_dir;       /* temp dir */
static char g_db[512];
static th_defset *g_defs;

static int in_subtree(const char *unit, const char *top)
{
	/* two levels below the root at most in this hierarchy */
	if (!strcmp(top, "01") || !strcmp(unit, top))
		return 1;
	for (size_t i = 0; i < NFIGS; i++)
		if (!strcmp(FIGS[i].unit, unit))
			return !strcmp(FIGS[i].parent, top);
	return 0;
}

/* Expected subtree sum of figure k (null when no unit has it). */
static int64_t expect_sum(const char *top, int k, int *is_null)
{
	int64_t s = 0;
	*is_null = 1;
	for (size_t i = 0; i < NFIGS; i++)
		if (in_subtree(FIGS[i].unit, top) && FIGS[i].v[k] >= 0) {
			s += FIGS[i].v[k];
			*is_null = 0;
		}
	return s;
}

/* Expected ratio of sums as the tool prints it in csv ("89.4" or "—"). */
static void expect_ratio(const char *top, const int *num, int nn, const int *den, int nd, char *buf)
{
	int64_t n = 0, d = 0;
	for (size_t i = 0; i < NFIGS; i++) {
		if (!in_subtree(FIGS[i].unit, top))
			continue;
		int ok = 1;
		for (int k = 0; k < nn; k++)
			ok &= FIGS[i].v[num[k]] >= 0;
		for (int k = 0; k < nd; k++)
			ok &= FIGS[i].v[den[k]] >= 0;
		if (!ok)
			continue;
		for (int k = 0; k < nn; k++)
			n += FIGS[i].v[num[k]];
		for (int k = 0; k < nd; k++)
			d += FIGS[i].v[den[k]];
	}
	if (d == 0) {
		strcpy(buf, "—");
		return;
	}
	int64_t t = (n * 2000 + d) / (2 * d);
	sprintf(buf, "%" PRId64 ".%d", t / 10, (int)(t % 10));
}

static th_report *make_report(const th_def *d, const fig *f)
{
	th_report *r = th_report_new(f->unit, "PL1", d->version, "2021", f->rev, d->n_cols);
	assert_non_null(r);
	assert_int_equal(th_report_add_row(r), 0);
	for (int k = 0; k < NFIG; k++) {
		long c = th_def_column(d, FIG_COLS[k]);
		assert_true(c >= 0);
		th_value *v = th_report_cell(r, 0, (size_t)c);
		v->null = f->v[k] < 0;
		v->i = f->v[k] < 0 ? 0 : f->v[k];
	}
	if (!strcmp(f->unit, "S1")) {
		long c = th_def_column(d, "muc_tu_chu");
		assert_true(c >= 0);
		th_report_cell(r, 0, (size_t)c)->null = 0;
		th_report_cell(r, 0, (size_t)c)->i = 1;   /* chi_thuong_xuyen */
	}
	th_diag *diag = th_diag_new();
	int rc = th_report_validate(r, d, diag);
	for (size_t i = 0; rc && i < th_diag_count(diag); i++)
		fprintf(stderr, "%s\n", th_diag_text(diag, i));
	assert_int_equal(rc, 0);
	th_diag_destroy(&diag);
	return r;
}

static void apply_one(th_store *s, th_report *r)
{
	th_ack_result res;
	assert_int_equal(sf_submit(s, &r, 1, "test-agent", &res, NULL, NULL, NULL), 0);
	assert_int_equal(res.status, TH_ACK_ACCEPTED);
	th_ack_result_free(&res);
}

static void cleanup_fixture(void)
{
	th_defset_destroy(&g_defs);
	tu_rmrf(g_dir);
	g_dir = NULL;
}

/* Builds the store once per process. */
static void fixture(void)
{
	if (g_dir)
		return;
	g_dir = tu_tmpdir();
	assert_non_null(g_dir);
	atexit(cleanup_fixture);
	snprintf(g_db, sizeof g_db, "%s/store", g_dir);
	assert_int_equal(mkdir(g_db, 0700), 0);
	th_diag *diag = th_diag_new();
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &g_defs, diag), 0);
	th_units *u = NULL;
	assert_int_equal(th_units_parse(hierarchy, strlen(hierarchy), "test.units", &u, diag), 0);
	th_diag_destroy(&diag);
	const th_def *d = th_defset_latest(g_defs, "PL1");
	assert_non_null(d);

	th_store_opts so = {0};
	th_store *s = NULL;
	assert_int_equal(th_store_open(g_db, &so, &s), 0);
	assert_int_equal(th_store_set_defs(s, g_defs), 0);
	assert_int_equal(th_store_add_hierarchy(s, u), 0);
	assert_int_equal(th_store_set_deadline(s, "PL1", "2021", NULL, 29991231), 0);
	assert_int_equal(th_store_set_deadline(s, "PL1", "2021", "S1", 20200101), 0);  /* late */
	th_report *r = make_report(d, &D1_REV1);
	apply_one(s, r);
	th_report_destroy(&r);
	for (size_t i = 0; i < NFIGS; i++) {
		r = make_report(d, &FIGS[i]);
		apply_one(s, r);
		th_report_destroy(&r);
	}
	th_store_close(&s);
	th_units_destroy(&u);
	/* the units file, for `units --units` */
	char path[600];
	snprintf(path, sizeof path, "%s/test.units", g_dir);
	assert_int_equal(tu_write_file(path, hierarchy, strlen(hierarchy)), 0);
}

/* Runs `tonghop ARGS` (shell words); stdout captured, stderr to *err file. */
static char *tool(int *status, const char *fmt, ...)
{
	char args[2048], cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s/stderr'", tu_bin("tools/tonghop"), args, g_dir);
	char *out = tu_capture(cmd, status);
	assert_non_null(out);
	if (*status != 0) {       /* for the test log */
		char path[600];
		snprintf(path, sizeof path, "%s/stderr", g_dir);
		char *err = tu_read_file(path, NULL);
		fprintf(stderr, "tonghop %s: exit %d: %s", args, *status, err ? err : "");
		free(err);
	}
	return out;
}

static char *tool_stderr(void)
{
	char path[600];
	snprintf(path, sizeof path, "%s/stderr", g_dir);
	char *s = tu_read_file(path, NULL);
	assert_non_null(s);
	return s;
}

/* --- csv parsing through the schema tokenizer ----------------------------- */
typedef struct grid {
	char *cell[32][16];
	size_t n_rows, n_cols[32];
} grid;

static int grid_cb(void *ctx, char **fields, size_t n, long line)
{
	(void)line;
	grid *g = ctx;
	if (g->n_rows >= 32)
		return 0;
	for (size_t i = 0; i < n && i < 16; i++)
		g->cell[g->n_rows][i] = strdup(fields[i]);
	g->n_cols[g->n_rows++] = n < 16 ? n : 16;
	return 0;
}

static void grid_parse(grid *g, const char *csv)
{
	memset(g, 0, sizeof *g);
	assert_int_equal(th_csv_tokenize(csv, strlen(csv), ',', grid_cb, g, "out.csv", NULL), 0);
}

static void grid_free(grid *g)
{
	for (size_t r = 0; r < 32; r++)
		for (size_t c = 0; c < 16; c++)
			free(g->cell[r][c]);
}

static long grid_find(const grid *g, const char *unit)
{
	for (size_t r = 1; r < g->n_rows; r++)
		if (g->cell[r][0] && !strcmp(g->cell[r][0], unit))
			return (long)r;
	return -1;
}

#define COLS "ho_so_truc_tiep,ho_so_truc_tuyen,ty_le_dung_han,ty_le_truc_tuyen,muc_tu_chu"

/* Checks one csv row (unit, name, expected, reported, 2 sums, 2 ratios). */
static void check_row(const grid *g, long r, const char *top)
{
	static const int dn[] = {3, 4}, dd[] = {3, 4, 5}, tn[] = {1}, td[] = {0, 1, 2};
	char buf[64];
	assert_true(r > 0);
	for (int k = 0; k < 2; k++) {
		int is_null;
		int64_t v = expect_sum(top, k, &is_null);
		if (is_null) {
			assert_string_equal(g->cell[r][4 + k], "");
		} else {
			sprintf(buf, "%" PRId64, v);
			assert_string_equal(g->cell[r][4 + k], buf);
		}
	}
	expect_ratio(top, dn, 2, dd, 3, buf);
	assert_string_equal(g->cell[r][6], buf);
	expect_ratio(top, tn, 1, td, 3, buf);
	assert_string_equal(g->cell[r][7], buf);
}

/* --- cases ---------------------------------------------------------------- */
static void rollup_level_csv_matches_own_totals(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "rollup --db '%s' --appendix PL1 --period 2021 --level 2 --format csv --columns " COLS, g_db);
	assert_int_equal(st, 0);
	grid g;
	grid_parse(&g, out);
	assert_int_equal(g.n_rows, 1 + 3 + 1);      /* header, D1 D2 S1, total */
	assert_int_equal(g.n_cols[0], 4 + 4 + 4);   /* muc_tu_chu: one column per value */
	assert_string_equal(g.cell[1][0], "D1");
	assert_string_equal(g.cell[2][0], "D2");
	assert_string_equal(g.cell[3][0], "S1");
	assert_string_equal(g.cell[4][0], "01");
	check_row(&g, 1, "D1");
	check_row(&g, 2, "D2");
	check_row(&g, 3, "S1");
	check_row(&g, 4, "01");
	/* expected / reported: D1 3/3, D2 2/1 (C21 missing), root 6/5 */
	assert_string_equal(g.cell[1][2], "3");
	assert_string_equal(g.cell[1][3], "3");
	assert_string_equal(g.cell[2][2], "2");
	assert_string_equal(g.cell[2][3], "1");
	assert_string_equal(g.cell[4][2], "6");
	assert_string_equal(g.cell[4][3], "5");
	/* count_by: S1 has one unit "chi_thuong_xuyen" (2nd value) */
	assert_string_equal(g.cell[3][8], "0");
	assert_string_equal(g.cell[3][9], "1");
	assert_string_equal(g.cell[1][9], "0");
	grid_free(&g);
	free(out);
}

static void rollup_parent_shows_null_not_zero(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "rollup --db '%s' -a PL1 -p 2021 --parent D1 --format csv --columns " COLS, g_db);
	assert_int_equal(st, 0);
	grid g;
	grid_parse(&g, out);
	assert_int_equal(g.n_rows, 1 + 2 + 1);
	long c12 = grid_find(&g, "C12");
	check_row(&g, grid_find(&g, "C11"), "C11");
	check_row(&g, c12, "C12");
	check_row(&g, grid_find(&g, "D1"), "D1");   /* the total row is D1's subtree */
	assert_string_equal(g.cell[c12][5], "");    /* null truc_tuyen: empty, not 0 */
	assert_string_equal(g.cell[c12][7], "—");   /* its ratio has no complete row */
	grid_free(&g);
	free(out);
}

static void rollup_json_nulls_and_numbers(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "rollup --db '%s' -a PL1 -p 2021 --parent D1 --format json --columns " COLS, g_db);
	assert_int_equal(st, 0);
	assert_int_equal(out[0], '[');
	assert_non_null(strstr(out, "{\"unit\": \"C12\", \"name\": \"Phường Một Hai\", \"expected\": 1, "
	                            "\"reported\": 1, \"ho_so_truc_tiep\": 7, \"ho_so_truc_tuyen\": null, "
	                            "\"ty_le_dung_han\": 100.0, \"ty_le_truc_tuyen\": null, "));
	assert_non_null(strstr(out, "\"ho_so_truc_tiep\": 147,"));
	/* balanced brackets and braces: one object per row */
	long depth = 0, objects = 0;
	for (const char *p = out; *p; p++) {
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++)
				if (*p == '\\' && p[1])
					p++;
			continue;
		}
		if (*p == '{' && ++depth == 1)
			objects++;
		if (*p == '}')
			depth--;
	}
	assert_int_equal(depth, 0);
	assert_int_equal(objects, 3);
	free(out);
}

static void rollup_own_figures(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "rollup --db '%s' -a PL1 -p 2021 --level 2 --own --format csv --columns ho_so_truc_tiep", g_db);
	assert_int_equal(st, 0);
	grid g;
	grid_parse(&g, out);
	assert_string_equal(g.cell[grid_find(&g, "D1")][4], "120");   /* not the subtree's 147 */
	assert_string_equal(g.cell[grid_find(&g, "S1")][4], "30");
	/* the "Cộng" row adds the rows shown */
	assert_string_equal(g.cell[g.n_rows - 1][4], "150");
	grid_free(&g);
	free(out);
}

static void rollup_table_aligned(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "rollup --db '%s' -a PL1 -p 2021 --level 2 --columns ho_so_truc_tiep,ty_le_dung_han", g_db);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "Quận Một"));
	assert_non_null(strstr(out, "89,4"));   /* 118 / 132, people's decimal comma */
	/* header, rule and rows share one width */
	char *rule = strstr(out, "\n--");
	assert_non_null(rule);
	char *hdr_end = rule, *hdr = rule;
	while (hdr > out && hdr[-1] != '\n')
		hdr--;
	char *rule_end = strchr(rule + 1, '\n');
	assert_non_null(rule_end);
	char *row = rule_end + 1, *row_end = strchr(row, '\n');
	assert_non_null(row_end);
	*hdr_end = 0;
	*rule_end = 0;
	*row_end = 0;
	assert_int_equal(th_utf8_width(hdr), th_utf8_width(rule + 1));
	assert_int_equal(th_utf8_width(row), th_utf8_width(rule + 1));
	free(out);
}

static void rollup_unknown_column_is_usage(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "rollup --db '%s' -a PL1 -p 2021 --columns no_such_column", g_db);
	assert_int_equal(st, 2);
	free(out);
	char *err = tool_stderr();
	assert_non_null(strstr(err, "no_such_column"));
	free(err);
}

static void status_lists_exactly_missing(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "status --db '%s' -a PL1 -p 2021 --format csv", g_db);
	assert_int_equal(st, 0);
	char *blank = strstr(out, "\r\n\r\n");
	assert_non_null(blank);
	blank[2] = 0;
	grid g, m;
	grid_parse(&g, out);
	grid_parse(&m, blank + 4);
	/* per unit: expected, reported, on time, late, missing */
	long s1 = grid_find(&g, "S1"), d2 = grid_find(&g, "D2"), root = grid_find(&g, "01");
	assert_string_equal(g.cell[s1][4], "0");
	assert_string_equal(g.cell[s1][5], "1");     /* S1's own deadline had passed */
	assert_string_equal(g.cell[d2][6], "1");
	assert_string_equal(g.cell[root][2], "6");
	assert_string_equal(g.cell[root][3], "5");
	assert_string_equal(g.cell[root][4], "4");
	assert_string_equal(g.cell[root][5], "1");
	assert_string_equal(g.cell[root][6], "1");
	/* missing: exactly C21, with its parent and contact */
	assert_int_equal(m.n_rows, 2);
	assert_string_equal(m.cell[1][0], "C21");
	assert_string_equal(m.cell[1][1], "Xã Hai Một");
	assert_string_equal(m.cell[1][2], "D2");
	assert_string_equal(m.cell[1][3], "Quận Hai");
	assert_string_equal(m.cell[1][4], "Hoàng Dũng");
	assert_string_equal(m.cell[1][5], "0244");
	grid_free(&g);
	grid_free(&m);
	free(out);
}

/* -o FILE gets the whole output: both of status's tables and (json) the object
 * around them, the headings of an aligned table; standard output stays empty. */
static void output_file_holds_everything(void **state)
{
	(void)state;
	fixture();
	int st;
	char path[600];
	snprintf(path, sizeof path, "%s/out.txt", g_dir);
	static const char *const fmts[] = {"csv --excel", "json", "table"};
	for (size_t i = 0; i < 3; i++) {
		char *out = tool(&st, "status --db '%s' -a PL1 -p 2021 --format %s -o '%s'", g_db, fmts[i], path);
		assert_int_equal(st, 0);
		assert_string_equal(out, "");
		free(out);
		char *file = tu_read_file(path, NULL);
		assert_non_null(file);
		assert_non_null(strstr(file, "C21"));            /* the missing table */
		assert_non_null(strstr(file, "Quận Hai"));
		if (i == 0) {
			assert_memory_equal(file, "\xEF\xBB\xBF" "unit,", 8);   /* one BOM, at the start */
			assert_null(strstr(file + 3, "\xEF\xBB\xBF"));
			assert_non_null(strstr(file, "\r\n\r\nunit,name,parent,"));
		} else if (i == 1) {
			assert_memory_equal(file, "{\"appendix\": \"PL1\", \"period\": \"2021\", \"units\": [", 48);
			assert_string_equal(file + strlen(file) - 2, "}\n");
		} else {
			assert_memory_equal(file, "Tình hình nộp PL1 kỳ 2021, cấp 2\n\n", strlen("Tình hình nộp PL1 kỳ 2021, cấp 2\n\n"));
			assert_non_null(strstr(file, "\nĐơn vị chưa nộp (1):\n"));
		}
		free(file);
	}
	char *out = tool(&st, "report --db '%s' D1 PL1 2021 --history --format csv -o '%s'", g_db, path);
	assert_int_equal(st, 0);
	assert_string_equal(out, "");
	free(out);
	char *file = tu_read_file(path, NULL);
	assert_non_null(file);
	assert_non_null(strstr(file, "\r\n\nHistory (oldest first):\nrev 1 "));
	free(file);
}

static void report_history_every_revision(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "report --db '%s' D1 PL1 2021 --history", g_db);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "rev 2, committed"));
	char *h = strstr(out, "History");
	assert_non_null(h);
	char *r1 = strstr(h, "\nrev 1 "), *r2 = strstr(h, "\nrev 2 ");
	assert_non_null(r1);
	assert_non_null(r2);
	assert_true(r1 < r2);                                    /* oldest first */
	assert_non_null(strstr(r2, "sender test-agent"));
	assert_non_null(strstr(r2, "row 1: ho_so_truc_tiep: 100 -> 120"));
	assert_non_null(strstr(r2, "0 rows added, 0 removed, 1 cells changed"));
	free(out);
	out = tool(&st, "report --db '%s' C21 PL1 2021", g_db);   /* never reported */
	assert_int_equal(st, 1);
	free(out);
}

static void validate_exit_codes_and_messages(void **state)
{
	(void)state;
	fixture();
	const th_def *d = th_defset_latest(g_defs, "PL1");
	th_report *r = make_report(d, &FIGS[0]);
	char good[600], bad[600];
	snprintf(good, sizeof good, "%s/good.csv", g_dir);
	snprintf(bad, sizeof bad, "%s/bad.csv", g_dir);
	assert_int_equal(th_csv_write_report(good, r, d), 0);
	th_report_destroy(&r);
	char *text = tu_read_file(good, NULL);
	assert_non_null(text);
	char *p = strstr(text, ",120,");
	assert_non_null(p);
	memcpy(p + 1, "12a", 3);
	assert_int_equal(tu_write_file(bad, text, strlen(text)), 0);
	free(text);

	int st;
	char *out = tool(&st, "validate '%s'", good);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "OK"));
	free(out);
	out = tool(&st, "validate '%s' '%s'", good, bad);
	assert_int_equal(st, 1);
	assert_non_null(strstr(out, "INVALID"));
	free(out);
	char *err = tool_stderr();
	char want[700];
	snprintf(want, sizeof want, "%s:", bad);
	char *at = strstr(err, want);
	assert_non_null(at);                              /* file:line: column: problem */
	assert_non_null(strstr(at, ": ho_so_truc_tiep: "));
	free(err);
	out = tool(&st, "validate");
	assert_int_equal(st, 2);
	free(out);
}

static void xlsx_numbers_in_sheet(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tu_capture("command -v unzip >/dev/null && echo yes", &st);
	int have_unzip = out && !strncmp(out, "yes", 3);
	free(out);
	if (!have_unzip)
		skip();
	char x[600];
	snprintf(x, sizeof x, "%s/r.xlsx", g_dir);
	out = tool(&st, "rollup --db '%s' -a PL1 -p 2021 --format xlsx -o '%s' --columns ho_so_truc_tiep", g_db, x);
	free(out);
	if (st != 0) {
		char *err = tool_stderr();
		int no_lib = strstr(err, "without libxlsxwriter") != NULL;
		free(err);
		if (no_lib)
			skip();
	}
	assert_int_equal(st, 0);
	char cmd[700];
	snprintf(cmd, sizeof cmd, "unzip -p '%s' xl/worksheets/sheet1.xml", x);
	char *xml = tu_capture(cmd, &st);
	assert_non_null(xml);
	assert_int_equal(st, 0);
	assert_non_null(strstr(xml, "<v>147</v>"));   /* D1's subtree, a number */
	assert_non_null(strstr(xml, "<v>177</v>"));   /* the city */
	free(xml);
	snprintf(cmd, sizeof cmd, "unzip -p '%s' xl/sharedStrings.xml", x);
	xml = tu_capture(cmd, &st);
	assert_non_null(xml);
	assert_non_null(strstr(xml, "Quận Một"));
	free(xml);
}

static void readonly_while_writer_holds_store(void **state)
{
	(void)state;
	fixture();
	th_store_opts so = {0};
	th_store *s = NULL;
	assert_int_equal(th_store_open(g_db, &so, &s), 0);   /* a writer, like the collector */
	assert_int_equal(th_store_set_defs(s, g_defs), 0);
	int st;
	char *out = tool(&st, "rollup --db '%s' -a PL1 -p 2021 --format csv --columns ho_so_truc_tiep", g_db);
	assert_int_equal(st, 0);
	grid g;
	grid_parse(&g, out);
	assert_string_equal(g.cell[grid_find(&g, "D1")][4], "147");
	grid_free(&g);
	free(out);
	out = tool(&st, "check --db '%s'", g_db);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "OK"));
	free(out);
	th_store_close(&s);
}

static void units_tree_and_list(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "units --db '%s' --tree D1", g_db);
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "Quận Một (D1, district) — Lê Bình, 0242, d1@x.vn\n"));
	assert_non_null(strstr(out, "├─ Phường Một Một (C11, commune)\n"));
	assert_non_null(strstr(out, "└─ Phường Một Hai (C12, commune)\n"));
	assert_null(strstr(out, "C21"));
	free(out);
	out = tool(&st, "units --units '%s/test.units' --format csv", g_dir);
	assert_int_equal(st, 0);
	grid g;
	grid_parse(&g, out);
	assert_int_equal(g.n_rows, 1 + 7);
	assert_string_equal(g.cell[grid_find(&g, "C21")][1], "D2");
	assert_string_equal(g.cell[grid_find(&g, "C21")][3], "3");   /* level */
	grid_free(&g);
	free(out);
}

static void usage_help_version(void **state)
{
	(void)state;
	fixture();
	int st;
	char *out = tool(&st, "");
	assert_int_equal(st, 2);
	free(out);
	out = tool(&st, "--version");
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "tonghop "));
	free(out);
	out = tool(&st, "rollup --help");
	assert_int_equal(st, 0);
	assert_non_null(strstr(out, "usage: tonghop rollup"));
	free(out);
	out = tool(&st, "rollup -a PL1 -p 2021");          /* no --db */
	assert_int_equal(st, 2);
	free(out);
	out = tool(&st, "rollup --db x -a PL1 -p 20x1");   /* bad period */
	assert_int_equal(st, 2);
	free(out);
	out = tool(&st, "frobnicate");
	assert_int_equal(st, 2);
	free(out);
	out = tool(&st, "status --db '%s/nonexistent' -a PL1 -p 2021", g_dir);
	assert_int_equal(st, 1);
	free(out);
}

/* Publishes one rollup-stream message (collector/QUERY.md). */
static void publish(void *pub, uint32_t level, const char *unit, uint64_t version)
{
	char topic[128];
	int tl = snprintf(topic, sizeof topic, "L%u\x1f%s\x1fPL1\x1f" "2021\x1f", level, unit);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 8);
	const char *sk[] = {"unit", "appendix", "period"};
	const char *sv[] = {unit, "PL1", "2021"};
	for (int i = 0; i < 3; i++) {
		msgpack_pack_str_with_body(&pk, sk[i], strlen(sk[i]));
		msgpack_pack_str_with_body(&pk, sv[i], strlen(sv[i]));
	}
	const char *uk[] = {"level", "version", "commit", "expected", "reported"};
	uint64_t uv[] = {level, version, 40 + version, 3, 2};
	for (int i = 0; i < 5; i++) {
		msgpack_pack_str_with_body(&pk, uk[i], strlen(uk[i]));
		msgpack_pack_uint64(&pk, uv[i]);
	}
	assert_int_equal(zmq_send(pub, topic, (size_t)tl, ZMQ_SNDMORE), tl);
	assert_int_equal(zmq_send(pub, sb.data, sb.size, 0), (int)sb.size);
	msgpack_sbuffer_destroy(&sb);
}

static int log_has(const char *path, const char *needle)
{
	char *s = tu_read_file(path, NULL);
	int r = s && strstr(s, needle);
	free(s);
	return r;
}

static void watch_filters_level_and_flags_gaps(void **state)
{
	(void)state;
	fixture();
	char ep[600], logp[600];
	snprintf(ep, sizeof ep, "ipc://%s/pub.sock", g_dir);
	snprintf(logp, sizeof logp, "%s/watch.log", g_dir);
	void *ctx = zmq_ctx_new();
	void *pub = zmq_socket(ctx, ZMQ_PUB);
	assert_int_equal(zmq_bind(pub, ep), 0);
	char *argv[] = {(char *)tu_bin("tools/tonghop"), "watch", "--insecure", "--pub", ep,
	                "--level", "2", NULL};
	pid_t pid = tu_spawn(argv, logp);
	assert_true(pid > 0);
	/* the subscription takes a moment to arrive: repeat until seen */
	int seen = 0;
	for (int i = 0; i < 200 && !seen; i++) {
		publish(pub, 3, "C11", 1);          /* another level: filtered out */
		publish(pub, 2, "D1", 1);
		usleep(50000);
		seen = log_has(logp, "version 1 ");
	}
	assert_true(seen);
	publish(pub, 2, "D1", 4);               /* versions 2 and 3 were missed */
	for (int i = 0; i < 200 && !log_has(logp, "version 4 "); i++)
		usleep(20000);
	kill(pid, SIGTERM);
	assert_int_equal(tu_wait(pid, 10000), 0);
	char *out = tu_read_file(logp, NULL);
	assert_non_null(out);
	assert_non_null(strstr(out, "L2 D1       PL1 2021  version 1  commit 41  reported 2/3"));
	char *v4 = strstr(out, "version 4 ");
	assert_non_null(v4);
	assert_non_null(strstr(v4, "GAP"));
	assert_null(strstr(out, "C11"));
	free(out);
	zmq_close(pub);
	zmq_ctx_term(ctx);
}

/* --- a stand-in for the collector's query socket, answering from the store */
static void pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

typedef struct qserve {
	msgpack_packer *pk;
	const th_def *d;
	int missing;
} qserve;

static int qserve_cb(void *ctx, const th_unit *u, const th_node *n)
{
	qserve *q = ctx;
	if (q->missing) {
		msgpack_pack_map(q->pk, 7);
		pk_str(q->pk, "unit"); pk_str(q->pk, u->code);
		pk_str(q->pk, "name"); pk_str(q->pk, u->name);
		pk_str(q->pk, "parent"); pk_str(q->pk, u->parent_code);
		pk_str(q->pk, "kind"); pk_str(q->pk, u->kind);
		pk_str(q->pk, "person"); pk_str(q->pk, u->person);
		pk_str(q->pk, "phone"); pk_str(q->pk, u->phone);
		pk_str(q->pk, "email"); pk_str(q->pk, u->email);
		return 0;
	}
	msgpack_pack_map(q->pk, 12);
	pk_str(q->pk, "unit"); pk_str(q->pk, u->code);
	pk_str(q->pk, "name"); pk_str(q->pk, u->name);
	pk_str(q->pk, "level"); msgpack_pack_uint32(q->pk, u->depth);
	pk_str(q->pk, "version"); msgpack_pack_uint64(q->pk, n->version);
	pk_str(q->pk, "commit"); msgpack_pack_uint64(q->pk, n->commit);
	pk_str(q->pk, "expected"); msgpack_pack_uint32(q->pk, n->expected);
	pk_str(q->pk, "reported"); msgpack_pack_uint32(q->pk, n->reported);
	pk_str(q->pk, "on_time"); msgpack_pack_uint32(q->pk, n->on_time);
	pk_str(q->pk, "late"); msgpack_pack_uint32(q->pk, n->late);
	pk_str(q->pk, "corrections"); msgpack_pack_uint32(q->pk, n->corrections);
	const char *vk[] = {"own", "total"};
	const int64_t *vv[] = {n->own, n->total};
	for (int k = 0; k < 2; k++) {
		pk_str(q->pk, vk[k]);
		msgpack_pack_array(q->pk, q->d->n_slots);
		for (size_t i = 0; i < q->d->n_slots; i++)
			msgpack_pack_int64(q->pk, vv[k][i]);
	}
	return 0;
}

static char *mp_str(const msgpack_object *m, const char *key)
{
	for (uint32_t i = 0; m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key, *v = &m->via.map.ptr[i].val;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(key) &&
		    !memcmp(k->via.str.ptr, key, k->via.str.size)) {
			if (v->type == MSGPACK_OBJECT_STR)
				return strndup(v->via.str.ptr, v->via.str.size);
			if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
				char *x = NULL;
				assert_true(asprintf(&x, "%" PRIu64, v->via.u64) > 0);
				return x;
			}
		}
	}
	return NULL;
}

/* Answers one query from store s. */
static void qserve_one(void *router, th_store *s)
{
	zmq_msg_t id, body;
	zmq_msg_init(&id);
	zmq_msg_init(&body);
	assert_true(zmq_msg_recv(&id, router, 0) >= 0);
	assert_true(zmq_msg_recv(&body, router, 0) >= 0);
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	size_t off = 0;
	assert_int_equal(msgpack_unpack_next(&up, zmq_msg_data(&body), zmq_msg_size(&body), &off),
	                 MSGPACK_UNPACK_SUCCESS);
	char *q = mp_str(&up.data, "q"), *qid = mp_str(&up.data, "id"), *a = mp_str(&up.data, "appendix");
	char *p = mp_str(&up.data, "period"), *unit = mp_str(&up.data, "unit");
	char *parent = mp_str(&up.data, "parent"), *level = mp_str(&up.data, "level");
	assert_non_null(q);
	assert_non_null(qid);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	qserve x = {.pk = &pk, .d = th_defset_latest(g_defs, a)};
	msgpack_pack_map(&pk, 5);
	pk_str(&pk, "v"); msgpack_pack_uint32(&pk, 1);
	pk_str(&pk, "t"); pk_str(&pk, "result");
	pk_str(&pk, "id"); msgpack_pack_uint64(&pk, strtoull(qid, NULL, 10));
	pk_str(&pk, "ok"); msgpack_pack_true(&pk);
	if (!strcmp(q, "node")) {
		th_node n;
		memset(&n, 0, sizeof n);
		assert_int_equal(th_store_get_node(s, a, p, unit, &n), 0);
		const th_units *u = th_store_current_hierarchy(s);
		pk_str(&pk, "node");
		qserve_cb(&x, th_units_at(u, (size_t)th_units_find(u, unit)), &n);
		th_node_free(&n);
	} else {
		/* the rows are packed into a second buffer to count them first */
		msgpack_sbuffer rows;
		msgpack_sbuffer_init(&rows);
		msgpack_packer rp;
		msgpack_packer_init(&rp, &rows, msgpack_sbuffer_write);
		x.pk = &rp;
		x.missing = !strcmp(q, "missing");
		int rc = x.missing ? th_store_missing(s, a, p, unit, qserve_cb, &x)
		                   : th_store_level(s, a, p, level ? (uint32_t)atoi(level) : 0, parent,
		                                    qserve_cb, &x);
		assert_int_equal(rc, 0);
		/* count the packed objects */
		msgpack_unpacked ru;
		msgpack_unpacked_init(&ru);
		size_t roff = 0, nrows = 0;
		while (msgpack_unpack_next(&ru, rows.data, rows.size, &roff) == MSGPACK_UNPACK_SUCCESS)
			nrows++;
		msgpack_unpacked_destroy(&ru);
		pk_str(&pk, x.missing ? "missing" : "rows");
		msgpack_pack_array(&pk, nrows);
		msgpack_sbuffer_write(&sb, rows.data, rows.size);
		msgpack_sbuffer_destroy(&rows);
	}
	assert_true(zmq_msg_send(&id, router, ZMQ_SNDMORE) >= 0);
	assert_int_equal(zmq_send(router, sb.data, sb.size, 0), (int)sb.size);
	msgpack_sbuffer_destroy(&sb);
	msgpack_unpacked_destroy(&up);
	zmq_msg_close(&body);
	free(q); free(qid); free(a); free(p); free(unit); free(parent); free(level);
}

/* Runs `tonghop ARGS --collector EP --insecure` while answering its queries. */
static char *tool_remote(void *router, th_store *s, const char *ep, const char *args, int *status)
{
	char outp[600], cmd[2048];
	snprintf(outp, sizeof outp, "%s/remote.out", g_dir);
	unlink(outp);
	snprintf(cmd, sizeof cmd, "exec '%s' %s --collector '%s' --insecure > '%s' 2>&1",
	         tu_bin("tools/tonghop"), args, ep, outp);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	pid_t pid = tu_spawn(argv, NULL);
	assert_true(pid > 0);
	int st = -1;
	for (int i = 0; i < 3000; i++) {
		zmq_pollitem_t it = {router, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 10) > 0)
			qserve_one(router, s);
		int w;
		if (waitpid(pid, &w, WNOHANG) == pid) {
			st = WIFEXITED(w) ? WEXITSTATUS(w) : 128;
			break;
		}
	}
	*status = st;
	char *out = tu_read_file(outp, NULL);
	assert_non_null(out);
	return out;
}

static void collector_socket_gives_same_answers(void **state)
{
	(void)state;
	fixture();
	th_store_opts so = {.readonly = 1};
	th_store *s = NULL;
	assert_int_equal(th_store_open(g_db, &so, &s), 0);
	assert_int_equal(th_store_set_defs(s, g_defs), 0);
	char ep[600];
	snprintf(ep, sizeof ep, "ipc://%s/query.sock", g_dir);
	void *ctx = zmq_ctx_new();
	void *router = zmq_socket(ctx, ZMQ_ROUTER);
	assert_int_equal(zmq_bind(router, ep), 0);
	static const char *const cmds[] = {
		"rollup -a PL1 -p 2021 --level 2 --format csv --columns " COLS,
		"rollup -a PL1 -p 2021 --parent D1 --format json --columns " COLS,
		"status -a PL1 -p 2021 --format csv",
	};
	for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
		int st1, st2;
		char *local = tool(&st1, "%s --db '%s'", cmds[i], g_db);
		char *remote = tool_remote(router, s, ep, cmds[i], &st2);
		assert_int_equal(st1, 0);
		assert_int_equal(st2, 0);
		if (i < 2) {
			assert_string_equal(remote, local);
		} else {
			/* the socket's missing list has no parent names (no hierarchy) */
			assert_non_null(strstr(remote, "C21,Xã Hai Một,D2,"));
			char *cut1 = strstr(local, "\r\n\r\n"), *cut2 = strstr(remote, "\r\n\r\n");
			assert_non_null(cut1);
			assert_non_null(cut2);
			*cut1 = *cut2 = 0;
			assert_string_equal(remote, local);
		}
		free(local);
		free(remote);
	}
	zmq_close(router);
	zmq_ctx_term(ctx);
	th_store_close(&s);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(rollup_level_csv_matches_own_totals),
		cmocka_unit_test(rollup_parent_shows_null_not_zero),
		cmocka_unit_test(rollup_json_nulls_and_numbers),
		cmocka_unit_test(rollup_own_figures),
		cmocka_unit_test(rollup_table_aligned),
		cmocka_unit_test(rollup_unknown_column_is_usage),
		cmocka_unit_test(status_lists_exactly_missing),
		cmocka_unit_test(output_file_holds_everything),
		cmocka_unit_test(report_history_every_revision),
		cmocka_unit_test(validate_exit_codes_and_messages),
		cmocka_unit_test(xlsx_numbers_in_sheet),
		cmocka_unit_test(readonly_while_writer_holds_store),
		cmocka_unit_test(units_tree_and_list),
		cmocka_unit_test(usage_help_version),
		cmocka_unit_test(watch_filters_level_and_flags_gaps),
		cmocka_unit_test(collector_socket_gives_same_answers),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}
#endif

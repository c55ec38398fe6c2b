/* test_view.c -- the view library (tools/view*.c) on a small store: the
 * rollup table's columns, sums and ratios of sums, null versus 0, own versus
 * subtree totals and their labels, the "Cộng" row, completeness and the
 * missing units with their contacts, a report and its history, the
 * hierarchy; and what the renderers make of those tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store_fixture.h"
#include "testutil.h"
#include "th_render.h"
#include "th_source.h"
#include "th_store.h"
#include "th_view.h"

/* A small appendix: three summed figures and their ratio, a decimal min, a
 * date max, an enum counted by value, a bool counted, a text. */
static const char DEF[] =
	"[appendix]\nid = PLT\nversion = 1\ntitle = Phụ lục thử\n"
	"submitters = district commune department\n"
	"[column nhan]\ntitle = Hồ sơ nhận\ntype = integer\nmin = 0\nrollup = sum\n"
	"[column dung_han]\ntitle = Giải quyết đúng hạn\ntype = integer\nmin = 0\nrollup = sum\n"
	"[column tre_han]\ntitle = Giải quyết trễ hạn\ntype = integer\nmin = 0\nrollup = sum\n"
	"[column diem]\ntitle = Điểm\ntype = decimal\nscale = 1\nrollup = min\n"
	"[column ngay]\ntitle = Ngày ban hành\ntype = date\nrollup = max\n"
	"[column muc]\ntitle = Mức\ntype = enum\nrollup = count_by\n"
	"value = a | Loại A\nvalue = b | Loại B\n"
	"[column co_iso]\ntitle = Áp dụng ISO\ntype = bool\nrollup = count_true\n"
	"[column ghi_chu]\ntitle = Ghi chú\ntype = text\nrollup = none\n"
	"[ratio ty_le]\ntitle = Tỷ lệ đúng hạn\nnum = dung_han\nden = dung_han + tre_han\n";
enum { NHAN, DUNG, TRE, DIEM, NGAY, MUC, ISO, GHI, NCOL };

static const char UNITS[] =
	"@version v-test\n@effective 2021-01-01\n"
	"code\tparent\tkind\tname\tperson\tphone\temail\n"
	"R\t\tcity\tThành phố\t\t\t\n"
	"D1\tR\tdistrict\tQuận 1\tLê Bình\t0242\td1@x.vn\n"
	"C1\tD1\tcommune\tPhường 1\t\t\t\n"
	"C2\tD1\tcommune\tPhường 2\t\t\t\n"
	"C3\tD1\tcommune\tPhường 3\tTrần Ba\t0243\tc3@x.vn\n"
	"S1\tR\tdepartment\tSở Một\t\t\t\n";

#define NUL INT64_MIN      /* a null figure */

/* The latest revisions (C1 has an earlier one, C1_REV1); C3 never reports. */
typedef struct fig {
	const char *unit;
	uint64_t rev;
	int64_t v[NCOL];       /* GHI: 0 = null, else "ghi chú" */
} fig;
static const fig FIGS[] = {
	{"D1", 1, {10, 8, 2, 705, 20210301, 0, 1, 0}},
	{"C1", 2, {5, 5, 0, 900, NUL, 1, 0, 1}},
	{"C2", 1, {NUL, NUL, NUL, NUL, NUL, 0, NUL, 0}},
	{"S1", 1, {0, 0, 0, NUL, 20210415, NUL, NUL, 0}},
};
static const fig C1_REV1 = {"C1", 1, {4, 5, 0, 900, NUL, 1, 0, 0}};

typedef struct fx {
	char *dir;
	char db[512];
	th_defset *defs;
	th_source *src;
	th_diag *diag;
} fx;

static th_report *make_report(const th_def *d, const fig *f)
{
	th_report *r = th_report_new(f->unit, "PLT", d->version, "2021", f->rev, d->n_cols);
	assert_non_null(r);
	assert_true(th_report_add_row(r) >= 0);
	for (int c = 0; c < NCOL; c++) {
		th_value *v = th_report_cell(r, 0, (size_t)c);
		if (c == GHI) {
			if (f->v[c]) {
				v->null = 0;
				v->s = strdup("ghi chú");
				v->len = (uint32_t)strlen(v->s);
			}
			continue;
		}
		v->null = f->v[c] == NUL;
		v->i = f->v[c] == NUL ? 0 : f->v[c];
	}
	th_diag *diag = th_diag_new();
	int rc = th_report_validate(r, d, diag);
	for (size_t i = 0; rc && i < th_diag_count(diag); i++)
		fprintf(stderr, "%s\n", th_diag_text(diag, i));
	assert_int_equal(rc, 0);
	th_diag_destroy(&diag);
	return r;
}

static void apply(th_store *s, const th_def *d, const fig *f)
{
	th_report *r = make_report(d, f);
	th_ack_result res;
	assert_int_equal(sf_submit(s, &r, 1, "agent-test", &res, NULL, NULL, NULL), 0);
	assert_int_equal(res.status, TH_ACK_ACCEPTED);
	th_ack_result_free(&res);
	th_report_destroy(&r);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->dir = tu_tmpdir();
	snprintf(f->db, sizeof f->db, "%s/store", f->dir);
	assert_int_equal(mkdir(f->db, 0700), 0);
	th_def *d = NULL;
	assert_int_equal(th_def_parse(DEF, strlen(DEF), "plt.def", &d, NULL), 0);
	f->defs = th_defset_new();
	assert_int_equal(th_defset_add(f->defs, d), 0);
	th_units *u = NULL;
	assert_int_equal(th_units_parse(UNITS, strlen(UNITS), "test.units", &u, NULL), 0);

	th_store_opts so = {0};
	th_store *s = NULL;
	assert_int_equal(th_store_open(f->db, &so, &s), 0);
	assert_int_equal(th_store_set_defs(s, f->defs), 0);
	assert_int_equal(th_store_add_hierarchy(s, u), 0);
	apply(s, d, &C1_REV1);
	for (size_t i = 0; i < sizeof FIGS / sizeof *FIGS; i++)
		apply(s, d, &FIGS[i]);
	th_store_close(&s);
	th_units_destroy(&u);

	th_source_opts o = {.db = f->db, .defs = f->defs};
	char why[600];
	assert_int_equal(th_source_open(&o, &f->src, why, sizeof why), 0);
	f->diag = th_diag_new();
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	th_source_destroy(&f->src);
	th_defset_destroy(&f->defs);
	th_diag_destroy(&f->diag);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* --- helpers ------------------------------------------------------------------ */
static long find_row(const th_table *t, const char *code)
{
	for (size_t r = 0; r < th_table_rows(t); r++)
		if (th_table_get(t, r, 0) && !strcmp(th_table_get(t, r, 0), code))
			return (long)r;
	return -1;
}

static long find_col(const th_table *t, const char *key)
{
	for (size_t c = 0; c < th_table_cols(t); c++)
		if (!strcmp(th_table_key(t, c), key))
			return (long)c;
	fail_msg("no column %s", key);
	return -1;
}

static const th_cell *cell(const th_table *t, long row, const char *key)
{
	assert_true(row >= 0);
	const th_cell *c = th_table_cell(t, (size_t)row, (size_t)find_col(t, key));
	assert_non_null(c);
	return c;
}

static void assert_int_cell(const th_table *t, long row, const char *key, int64_t v)
{
	const th_cell *c = cell(t, row, key);
	assert_int_equal(c->kind, TH_CELL_INT);
	assert_int_equal(c->v, v);
}

static void assert_null_cell(const th_table *t, long row, const char *key)
{
	assert_int_equal(cell(t, row, key)->kind, TH_CELL_NULL);
}

static void assert_ratio_cell(const th_table *t, long row, const char *key, int64_t num, int64_t den)
{
	const th_cell *c = cell(t, row, key);
	assert_int_equal(c->kind, TH_CELL_RATIO);
	assert_int_equal(c->v, num);
	assert_int_equal(c->den, den);
}

static th_table *rollup(fx *f, const char *parent, uint32_t level, int own, const char *columns,
                        th_doc **doc)
{
	th_rollup_req req = {.appendix = "PLT", .period = "2021", .level = level, .parent = parent,
	                     .own = own, .columns = columns};
	int rc = th_view_rollup(f->src, &req, doc, f->diag);
	for (size_t i = 0; rc && i < th_diag_count(f->diag); i++)
		fprintf(stderr, "%s\n", th_diag_text(f->diag, i));
	assert_int_equal(rc, 0);
	assert_int_equal(th_doc_count(*doc), 1);
	return th_doc_table(*doc, 0);
}

/* s begins with prefix. */
static void assert_prefix(const char *s, const char *prefix)
{
	if (strncmp(s, prefix, strlen(prefix)) != 0)
		fail_msg("\"%.*s\" does not begin with \"%s\"", (int)strlen(prefix), s, prefix);
}

static char *render(const th_doc *d, th_format fmt)
{
	char *buf = NULL, why[200];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	th_render_opts o = {.fmt = fmt};
	assert_int_equal(th_render_doc(d, &o, f, why, sizeof why), 0);
	fclose(f);
	return buf;
}

/* What follows the last run of two or more blanks on the line that starts
 * with start (the last column of an aligned line); kept in a static buffer. */
static const char *line_after(const char *text, const char *start)
{
	static char buf[256];
	const char *p = strstr(text, start);
	assert_non_null(p);
	p += strlen(start);
	const char *e = strchr(p, '\n');
	size_t n = e ? (size_t)(e - p) : strlen(p);
	size_t b = 0;
	for (size_t i = 0; i + 1 < n; i++)
		if (p[i] == ' ' && p[i + 1] == ' ')
			b = i + 2;
	while (b < n && p[b] == ' ')
		b++;
	snprintf(buf, sizeof buf, "%.*s", (int)(n - b), p + b);
	return buf;
}

/* --- rollup ------------------------------------------------------------------------ */
/* Without --columns: the summed columns the ratio is made of, then the ratio;
 * ids head the aligned table, titles the CSV, and the legend lists them. */
static void rollup_default_columns_and_heads(void **state)
{
	fx *f = *state;
	th_doc *doc = NULL;
	const th_table *t = rollup(f, NULL, 2, 0, NULL, &doc);
	static const char *keys[] = {"unit", "name", "expected", "reported", "dung_han", "tre_han", "ty_le"};
	assert_int_equal(th_table_cols(t), 7);
	for (size_t c = 0; c < 7; c++)
		assert_string_equal(th_table_key(t, c), keys[c]);
	assert_string_equal(th_table_title(t, 0), "Mã");
	assert_string_equal(th_table_label(t, 0), "Mã");
	assert_string_equal(th_table_title(t, 4), "Giải quyết đúng hạn");
	assert_string_equal(th_table_label(t, 4), "dung_han");
	assert_string_equal(th_table_title(t, 6), "Tỷ lệ đúng hạn (%)");
	assert_false(th_table_numeric(t, 1));
	assert_true(th_table_numeric(t, 2));
	assert_true(th_table_numeric(t, 6));
	const char *term, *text = th_table_note(t, 2, &term);
	assert_string_equal(term, "ty_le");
	assert_string_equal(text, "Tỷ lệ đúng hạn (%)");
	assert_null((th_table_note(t, 3, &term), term));     /* the plain last line */
	assert_string_equal(th_table_title_line(t, 0), "PLT — Phụ lục thử, kỳ 2021, tổng hợp cả đơn vị trực thuộc");
	assert_string_equal(th_table_title_line(t, 1), "Các đơn vị cấp 2");
	char *csv = render(doc, TH_FMT_CSV);
	assert_prefix(csv, "Mã,Đơn vị,Phải nộp,Đã nộp,Giải quyết đúng hạn,Giải quyết trễ hạn,"
	                   "Tỷ lệ đúng hạn (%)\r\n");
	free(csv);
	th_doc_destroy(&doc);
}

/* Level 2: subtree totals; the ratio is the ratio of the sums over the rows
 * that have both parts (C2 has none: left out, not counted as 0). */
static void rollup_subtree_totals_and_ratio_of_sums(void **state)
{
	fx *f = *state;
	th_doc *doc = NULL;
	const th_table *t = rollup(f, NULL, 2, 0, "nhan,dung_han,ty_le,diem,ngay,muc,co_iso", &doc);
	assert_int_equal(th_table_rows(t), 3);          /* D1, S1, the total */
	long d1 = find_row(t, "D1"), s1 = find_row(t, "S1"), tot = find_row(t, "R");
	assert_int_equal(d1, 0);
	assert_int_equal(s1, 1);
	assert_int_equal(tot, 2);
	assert_int_cell(t, d1, "expected", 4);          /* D1, C1, C2, C3 */
	assert_int_cell(t, d1, "reported", 3);
	assert_int_cell(t, d1, "nhan", 15);             /* 10 + 5; C2 is null */
	assert_ratio_cell(t, d1, "ty_le", 13, 15);      /* (8 + 5) / (8 + 2 + 5 + 0) */
	const th_cell *diem = cell(t, d1, "diem");
	assert_int_equal(diem->kind, TH_CELL_DEC);
	assert_int_equal(diem->v, 705);                 /* min(70.5, 90.0) */
	assert_int_equal(diem->scale, 1);
	const th_cell *ngay = cell(t, d1, "ngay");
	assert_int_equal(ngay->kind, TH_CELL_DATE);
	assert_int_equal(ngay->v, 20210301);
	assert_int_cell(t, d1, "muc:a", 2);             /* D1 and C2 */
	assert_int_cell(t, d1, "muc:b", 1);
	assert_int_cell(t, d1, "co_iso", 1);
	/* S1 reported zeros: 0, not null; its ratio has a zero denominator */
	assert_int_cell(t, s1, "nhan", 0);
	assert_ratio_cell(t, s1, "ty_le", 0, 0);
	assert_null_cell(t, s1, "diem");
	/* the total row: the root's subtree, labelled "Tổng" */
	assert_string_equal(th_table_get(t, (size_t)tot, 1), "Tổng Thành phố");
	assert_int_cell(t, tot, "expected", 5);
	assert_int_cell(t, tot, "reported", 4);
	assert_int_cell(t, tot, "nhan", 15);
	assert_ratio_cell(t, tot, "ty_le", 13, 15);
	/* people: 86,7 and the dash; programs: 86.7 and null */
	char *tab = render(doc, TH_FMT_TABLE), *js = render(doc, TH_FMT_JSON);
	assert_non_null(strstr(tab, "86,7"));
	assert_non_null(strstr(tab, "01/03/2021"));
	assert_non_null(strstr(tab, "70,5"));
	assert_non_null(strstr(js, "\"nhan\": 15, \"dung_han\": 13, \"ty_le\": 86.7, \"diem\": 70.5, "
	                           "\"ngay\": \"2021-03-01\""));
	assert_non_null(strstr(js, "{\"unit\": \"S1\", \"name\": \"Sở Một\", \"expected\": 1, "
	                           "\"reported\": 1, \"nhan\": 0, \"dung_han\": 0, \"ty_le\": null, "
	                           "\"diem\": null,"));
	free(tab);
	free(js);
	th_doc_destroy(&doc);
}

/* --parent D1: D1's children with their own subtree (a commune's = its own
 * figures); null stays null; the never-reported C3 is a row of nulls; the
 * total row is D1's. */
static void rollup_children_null_not_zero(void **state)
{
	fx *f = *state;
	th_doc *doc = NULL;
	const th_table *t = rollup(f, "D1", 0, 0, "nhan,ty_le,muc:b", &doc);
	assert_int_equal(th_table_rows(t), 4);
	long c2 = find_row(t, "C2"), c3 = find_row(t, "C3"), tot = find_row(t, "D1");
	assert_null_cell(t, c2, "nhan");
	assert_ratio_cell(t, c2, "ty_le", 0, 0);        /* no row with both parts */
	assert_int_cell(t, c2, "muc:b", 0);             /* one row, not b: 0 */
	assert_int_cell(t, c3, "reported", 0);
	assert_null_cell(t, c3, "nhan");
	assert_null_cell(t, c3, "muc:b");               /* no rows at all: null */
	assert_int_cell(t, tot, "nhan", 15);
	assert_string_equal(th_table_get(t, (size_t)tot, 1), "Tổng Quận 1");
	assert_string_equal(th_table_title_line(t, 1), "Các đơn vị trực thuộc cấp 3 của Quận 1");
	char *csv = render(doc, TH_FMT_CSV);
	assert_non_null(strstr(csv, "\r\nC2,Phường 2,1,1,,—,0\r\n"));
	free(csv);
	th_doc_destroy(&doc);
}

/* --own: each unit's own figures, and the "Cộng" row adds the rows shown. */
static void rollup_own_and_sum_row(void **state)
{
	fx *f = *state;
	th_doc *doc = NULL;
	const th_table *t = rollup(f, NULL, 2, 1, "nhan,ty_le", &doc);
	long d1 = find_row(t, "D1");
	assert_int_cell(t, d1, "nhan", 10);             /* not the subtree's 15 */
	assert_ratio_cell(t, d1, "ty_le", 8, 10);
	long sum = (long)th_table_rows(t) - 1;
	assert_string_equal(th_table_get(t, (size_t)sum, 0), "");
	assert_string_equal(th_table_get(t, (size_t)sum, 1), "Cộng Thành phố");
	assert_int_cell(t, sum, "nhan", 10);            /* D1 10 + S1 0 */
	assert_ratio_cell(t, sum, "ty_le", 8, 10);
	assert_string_equal(th_table_title_line(t, 0), "PLT — Phụ lục thử, kỳ 2021, số liệu riêng của đơn vị");
	th_doc_destroy(&doc);
}

/* Level 1 (the root alone) has no total row; a column that does not roll up,
 * an unknown column and a level outside the hierarchy are the question's fault. */
static void rollup_root_and_bad_requests(void **state)
{
	fx *f = *state;
	th_doc *doc = NULL;
	const th_table *t = rollup(f, NULL, 1, 0, "nhan", &doc);
	assert_int_equal(th_table_rows(t), 1);
	assert_int_cell(t, 0, "nhan", 15);
	th_doc_destroy(&doc);
	th_rollup_req req = {.appendix = "PLT", .period = "2021", .level = 2, .columns = "ghi_chu"};
	assert_int_equal(th_view_rollup(f->src, &req, &doc, f->diag), TH_EINVAL);
	assert_non_null(strstr(th_diag_at(f->diag, 0)->msg, "PLT has no column or ratio `ghi_chu'"));
	req.columns = "muc:c";
	assert_int_equal(th_view_rollup(f->src, &req, &doc, f->diag), TH_EINVAL);
	req.columns = NULL;
	req.level = 4;
	assert_int_equal(th_view_rollup(f->src, &req, &doc, f->diag), TH_EINVAL);
	assert_string_equal(th_diag_at(f->diag, 2)->msg, "level 4: the hierarchy has levels 1 to 3");
	req.parent = "C1";                              /* a leaf: its children would be level 4 */
	assert_int_equal(th_view_rollup(f->src, &req, &doc, f->diag), TH_ERANGE);
	req.parent = "NOPE";
	assert_int_equal(th_view_rollup(f->src, &req, &doc, f->diag), TH_EUNIT);
	assert_string_equal(th_diag_at(f->diag, 4)->msg, "unknown unit NOPE");
	req.appendix = "PLX";
	assert_int_equal(th_view_rollup(f->src, &req, &doc, f->diag), TH_EAPPENDIX);
	assert_null(doc);
}

/* --- status ------------------------------------------------------------------------- */
static void status_counts_and_missing_contacts(void **state)
{
	fx *f = *state;
	th_doc *doc = NULL;
	th_status_req req = {.appendix = "PLT", .period = "2021", .level = 2};
	assert_int_equal(th_view_status(f->src, &req, &doc, f->diag), 0);
	assert_int_equal(th_doc_count(doc), 2);
	assert_string_equal(th_doc_name(doc, 0), "units");
	assert_string_equal(th_doc_name(doc, 1), "missing");
	const char *v;
	assert_string_equal(th_doc_field_at(doc, 0, &v), "appendix");
	assert_string_equal(v, "PLT");
	const th_table *t = th_doc_table(doc, 0), *m = th_doc_table(doc, 1);
	long d1 = find_row(t, "D1"), tot = find_row(t, "R");
	assert_int_cell(t, d1, "expected", 4);
	assert_int_cell(t, d1, "reported", 3);
	assert_int_cell(t, d1, "missing", 1);
	assert_int_cell(t, d1, "corrections", 1);       /* C1's second revision */
	assert_int_cell(t, tot, "missing", 1);
	assert_string_equal(th_table_get(t, (size_t)tot, 1), "Tổng Thành phố");
	/* exactly C3, with its parent's name and its contacts; empty contacts are null */
	assert_int_equal(th_table_rows(m), 1);
	assert_string_equal(th_table_get(m, 0, 0), "C3");
	assert_string_equal(th_table_get(m, 0, 2), "D1");
	assert_string_equal(th_table_get(m, 0, 3), "Quận 1");
	assert_string_equal(th_table_get(m, 0, 4), "Trần Ba");
	assert_string_equal(th_table_get(m, 0, 6), "c3@x.vn");
	assert_string_equal(th_table_title_line(m, 0), "Đơn vị chưa nộp (1):");
	/* machine formats head by key; one JSON object holds both tables */
	char *csv = render(doc, TH_FMT_CSV), *js = render(doc, TH_FMT_JSON);
	assert_prefix(csv, "unit,name,expected,reported,on_time,late,missing,corrections\r\n");
	assert_non_null(strstr(csv, "\r\n\r\nunit,name,parent,parent_name,person,phone,email\r\n"
	                            "C3,Phường 3,D1,Quận 1,Trần Ba,0243,c3@x.vn\r\n"));
	assert_prefix(js, "{\"appendix\": \"PLT\", \"period\": \"2021\", \"units\": [\n {");
	assert_non_null(strstr(js, "\n]\n, \"missing\": [\n {\"unit\": \"C3\""));
	assert_string_equal(js + strlen(js) - 4, "]\n}\n");
	free(csv);
	free(js);
	th_doc_destroy(&doc);
}

/* A unit whose subtree has nobody missing says so; a leaf has no children's
 * level; a period nobody reported has everyone missing. */
static void status_none_missing_and_unreported_period(void **state)
{
	fx *f = *state;
	th_doc *doc = NULL;
	th_status_req req = {.appendix = "PLT", .period = "2021", .unit = "S1"};
	assert_int_equal(th_view_status(f->src, &req, &doc, f->diag), 0);
	const th_table *t = th_doc_table(doc, 0);
	assert_int_equal(th_table_rows(t), 1);                    /* no children: the total row */
	assert_string_equal(th_table_get(t, 0, 1), "Tổng Sở Một");
	assert_int_equal(th_table_rows(th_doc_table(doc, 1)), 0);
	char *tab = render(doc, TH_FMT_TABLE);
	assert_non_null(strstr(tab, "\nĐơn vị chưa nộp (0):\n\n(none)\n"));
	assert_non_null(strstr(tab, "Tình hình nộp PLT kỳ 2021, cấp 3 của Sở Một\n\n"));
	free(tab);
	th_doc_destroy(&doc);
	req.unit = "C2";
	assert_int_equal(th_view_status(f->src, &req, &doc, f->diag), TH_ERANGE);
	assert_null(doc);
	th_status_req r2 = {.appendix = "PLT", .period = "2022", .level = 2};
	assert_int_equal(th_view_status(f->src, &r2, &doc, f->diag), 0);
	tab = render(doc, TH_FMT_TABLE);
	assert_non_null(strstr(tab, "Đơn vị chưa nộp (5):"));
	free(tab);
	th_doc_destroy(&doc);
}

/* --- report and history ---------------------------------------------------------------- */
static void report_table_and_record_layout(void **state)
{
	fx *f = *state;
	th_doc *doc = NULL;
	assert_int_equal(th_view_report(f->src, "C1", "PLT", "2021", &doc, f->diag), 0);
	const th_table *t = th_doc_table(doc, 0);
	assert_int_equal(th_table_rows(t), 1);
	assert_int_equal(th_table_cols(t), NCOL);
	assert_string_equal(th_table_key(t, DIEM), "diem");
	assert_true(th_table_numeric(t, DIEM));
	assert_false(th_table_numeric(t, NGAY));
	assert_int_equal(th_table_cell(t, 0, DIEM)->kind, TH_CELL_DEC);
	assert_string_equal(th_table_get(t, 0, MUC), "b");        /* an enum as its code */
	assert_int_equal(th_table_cell(t, 0, ISO)->kind, TH_CELL_BOOL);
	assert_int_equal(th_table_cell(t, 0, NGAY)->kind, TH_CELL_NULL);
	assert_non_null(strstr(th_table_title_line(t, 0), "C1 PLT 2021: Phụ lục thử v1, rev 2, committed "));
	assert_non_null(strstr(th_table_title_line(t, 0), " by agent-test, 1 rows"));
	/* one row for people: one line per column */
	char *tab = render(doc, TH_FMT_TABLE), *js = render(doc, TH_FMT_JSON);
	assert_non_null(strstr(tab, "\n\nCột  "));
	assert_string_equal(line_after(tab, "\ndiem "), "90,0");
	assert_string_equal(line_after(tab, "\nco_iso "), "không");
	assert_string_equal(line_after(tab, "\nngay "), "Ngày ban hành");    /* null: nothing after */
	assert_non_null(strstr(js, "\"diem\": 90.0, \"ngay\": null, \"muc\": \"b\", \"co_iso\": \"false\", "
	                           "\"ghi_chu\": \"ghi chú\"}"));
	free(tab);
	free(js);
	th_doc_destroy(&doc);
	assert_int_equal(th_view_report(f->src, "C3", "PLT", "2021", &doc, f->diag), TH_ENOTFOUND);
	assert_non_null(strstr(th_diag_at(f->diag, 0)->msg, "no report C3 PLT 2021 in store "));
}

static void history_compares_revisions(void **state)
{
	fx *f = *state;
	th_history *h = NULL;
	assert_int_equal(th_view_history(f->src, "C1", "PLT", "2021", &h, f->diag), 0);
	assert_int_equal(h->n, 2);
	assert_int_equal(h->revs[0].info.rev, 1);
	assert_int_equal(h->revs[0].kind, TH_REV_FIRST);
	const th_revision *v = &h->revs[1];
	assert_int_equal(v->kind, TH_REV_COMPARED);
	assert_int_equal(v->n_changes, 2);
	assert_int_equal(v->changed, 2);
	assert_int_equal(v->added + v->removed, 0);
	assert_int_equal(v->changes[0].kind, TH_CHANGE_CELL);
	assert_string_equal(v->changes[0].row, "row 1");
	assert_string_equal(v->changes[0].column, "nhan");
	assert_string_equal(v->changes[0].before, "4");
	assert_string_equal(v->changes[0].after, "5");
	assert_string_equal(v->changes[1].column, "ghi_chu");
	assert_null(v->changes[1].before);                        /* null, not "" */
	assert_string_equal(v->changes[1].after, "ghi chú");
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_int_equal(th_history_write(h, out), 0);
	fclose(out);
	assert_non_null(strstr(buf, "\nHistory (oldest first):\nrev 1  "));
	assert_non_null(strstr(buf, "  sender agent-test  commit "));
	assert_non_null(strstr(buf, "    first revision\n"));
	assert_non_null(strstr(buf, "    row 1: nhan: 4 -> 5\n    row 1: ghi_chu: (empty) -> ghi chú\n"
	                            "    (0 rows added, 0 removed, 2 cells changed)\n"));
	free(buf);
	th_history_destroy(&h);
	assert_null(h);
}

/* --- the hierarchy ----------------------------------------------------------------------- */
static void units_list_tree_and_versions(void **state)
{
	fx *f = *state;
	const th_units *u = NULL;
	assert_int_equal(th_source_hierarchy(f->src, "2021", &u), 0);
	th_doc *doc = NULL;
	assert_int_equal(th_view_units(u, &doc), 0);
	const th_table *t = th_doc_table(doc, 0);
	assert_int_equal(th_table_rows(t), 6);
	long c3 = find_row(t, "C3");
	assert_string_equal(th_table_get(t, (size_t)c3, 1), "D1");
	assert_int_cell(t, c3, "level", 3);
	char *csv = render(doc, TH_FMT_CSV);
	assert_prefix(csv, "code,parent,kind,level,name,person,phone,email\r\n");
	free(csv);
	th_doc_destroy(&doc);

	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_int_equal(th_view_tree(u, "D1", out), 0);
	assert_int_equal(th_view_tree(u, "NOPE", out), TH_EUNIT);
	fclose(out);
	assert_string_equal(buf, "Quận 1 (D1, district) — Lê Bình, 0242, d1@x.vn\n"
	                         "├─ Phường 1 (C1, commune)\n"
	                         "├─ Phường 2 (C2, commune)\n"
	                         "└─ Phường 3 (C3, commune) — Trần Ba, 0243, c3@x.vn\n");
	free(buf);

	assert_int_equal(th_view_versions(f->src, &doc, f->diag), 0);
	t = th_doc_table(doc, 0);
	assert_int_equal(th_table_rows(t), 1);
	assert_string_equal(th_table_get(t, 0, 0), "v-test");
	assert_string_equal(th_table_get(t, 0, 1), "2021-01-01");
	assert_int_cell(t, 0, "units", 6);
	assert_int_cell(t, 0, "levels", 3);
	assert_string_equal(th_table_get(t, 0, 4), "R");
	assert_string_equal(th_table_get(t, 0, 7), "2021");       /* the period its reports bound */
	th_doc_destroy(&doc);
}

/* A store serves no hierarchy submission; a source that does not serve
 * something says so. */
static void store_source_limits(void **state)
{
	fx *f = *state;
	th_hier_row r;
	char path[64];
	assert_int_equal(th_source_submit_units(f->src, "x.units", "x", 1, &r, path, sizeof path, NULL, NULL),
	                 TH_EINVAL);
	assert_non_null(strstr(th_source_error(f->src), "does not serve hierarchy submissions"));
	assert_int_equal(th_source_rebuild(f->src), TH_EINVAL);    /* opened read-only */
	assert_false(th_source_is_remote(f->src));
	assert_string_equal(th_source_name(f->src) + strlen(th_source_name(f->src)) - 6, "/store");
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(rollup_default_columns_and_heads, setup, teardown),
		cmocka_unit_test_setup_teardown(rollup_subtree_totals_and_ratio_of_sums, setup, teardown),
		cmocka_unit_test_setup_teardown(rollup_children_null_not_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(rollup_own_and_sum_row, setup, teardown),
		cmocka_unit_test_setup_teardown(rollup_root_and_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(status_counts_and_missing_contacts, setup, teardown),
		cmocka_unit_test_setup_teardown(status_none_missing_and_unreported_period, setup, teardown),
		cmocka_unit_test_setup_teardown(report_table_and_record_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(history_compares_revisions, setup, teardown),
		cmocka_unit_test_setup_teardown(units_list_tree_and_versions, setup, teardown),
		cmocka_unit_test_setup_teardown(store_source_limits, setup, teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

/* test_def.c -- appendix definitions: the real files and broken ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "th_def.h"
#include "testutil.h"

/* ------------------------------------------------------------------ */
/* helpers */

static th_def *parse_ok(const char *text)
{
	th_diag *dg = th_diag_new();
	th_def *d = NULL;
	int rc = th_def_parse(text, strlen(text), "t.def", &d, dg);
	if (rc != 0)
		for (size_t i = 0; i < th_diag_count(dg); i++)
			fprintf(stderr, "unexpected: %s\n", th_diag_text(dg, i));
	assert_int_equal(rc, 0);
	assert_non_null(d);
	assert_int_equal(th_diag_count(dg), 0);
	th_diag_destroy(&dg);
	return d;
}

/* Parses text expecting failure; returns the diag (caller destroys). */
static th_diag *parse_bad(const char *text, size_t len)
{
	th_diag *dg = th_diag_new();
	th_def *d = (th_def *)(uintptr_t)1;   /* must stay untouched */
	int rc = th_def_parse(text, len, "bad.def", &d, dg);
	assert_int_equal(rc, TH_ESYNTAX);
	assert_ptr_equal(d, (th_def *)(uintptr_t)1);
	assert_true(th_diag_errors(dg) > 0);
	return dg;
}

/* 1 when some entry's text contains both needles. */
static int has_diag(th_diag *dg, const char *where, const char *what)
{
	for (size_t i = 0; i < th_diag_count(dg); i++) {
		const char *t = th_diag_text(dg, i);
		if (strstr(t, where) && (!what || strstr(t, what)))
			return 1;
	}
	return 0;
}

static void expect_diag(th_diag *dg, const char *where, const char *what)
{
	if (!has_diag(dg, where, what)) {
		for (size_t i = 0; i < th_diag_count(dg); i++)
			fprintf(stderr, "diag: %s\n", th_diag_text(dg, i));
		fail_msg("no diagnostic with '%s' and '%s'", where, what ? what : "");
	}
}

#define HEAD "[appendix]\nid = PLX\nversion = 3\ntitle = Phụ lục thử\n" \
	"submitters = district commune\n"   /* lines 1-5 */

/* ------------------------------------------------------------------ */
/* the real definitions */

static th_defset *real_set(void)
{
	th_diag *dg = th_diag_new();
	th_defset *s = NULL;
	int rc = th_defset_load_dir(tu_src("schema/appendices"), &s, dg);
	for (size_t i = 0; i < th_diag_count(dg); i++)
		fprintf(stderr, "%s\n", th_diag_text(dg, i));
	assert_int_equal(rc, 0);
	assert_int_equal(th_diag_count(dg), 0);
	th_diag_destroy(&dg);
	return s;
}

/* Recomputes the slot layout independently and checks d against it. */
static void check_slots(const th_def *d)
{
	size_t s = 1;
	for (size_t i = 0; i < d->n_cols; i++) {
		const th_column *c = &d->cols[i];
		size_t want = c->rollup == TH_ROLL_NONE ? 0 :
		              c->rollup == TH_ROLL_COUNT_BY ? c->n_values : 2;
		assert_int_equal(c->slot, s);
		assert_int_equal(c->n_slots, want);
		s += want;
	}
	for (size_t i = 0; i < d->n_ratios; i++) {
		assert_int_equal(d->ratios[i].slot, s);
		s += 3;
	}
	assert_int_equal(d->n_slots, s);
}

static void real_load_dir(void **state)
{
	(void)state;
	th_defset *s = real_set();
	assert_int_equal(th_defset_count(s), 3);
	/* sorted file order */
	assert_string_equal(th_defset_at(s, 0)->id, "PL1");
	assert_string_equal(th_defset_at(s, 1)->id, "PL2");
	assert_string_equal(th_defset_at(s, 2)->id, "PL3");
	assert_null(th_defset_at(s, 3));
	const th_def *d = th_defset_get(s, "PL2", 1);
	assert_non_null(d);
	assert_ptr_equal(th_defset_latest(s, "PL2"), d);
	assert_null(th_defset_get(s, "PL2", 2));
	assert_null(th_defset_latest(s, "PL9"));
	assert_non_null(strstr(d->file, "PL2-v1.def"));
	assert_true(d->source_len > 100);
	assert_int_equal(strlen(d->source), d->source_len);
	th_defset_destroy(&s);
	assert_null(s);
	th_defset_destroy(&s);   /* NULL-safe */
}

static void real_pl1(void **state)
{
	(void)state;
	th_defset *s = real_set();
	const th_def *d = th_defset_get(s, "PL1", 1);
	assert_non_null(d);
	assert_true(d->n_cols >= 35);
	assert_int_equal(d->n_key, 0);
	assert_int_equal(d->max_rows, 1);
	assert_null(d->derive);
	check_slots(d);
	int kinds[7] = { 0 };
	for (size_t i = 0; i < d->n_cols; i++) {
		kinds[d->cols[i].rollup]++;
		assert_false(d->cols[i].key);
	}
	assert_true(kinds[TH_ROLL_SUM] >= 30);
	assert_true(kinds[TH_ROLL_MIN] >= 1);
	assert_true(kinds[TH_ROLL_MAX] >= 1);
	assert_true(kinds[TH_ROLL_COUNT_TRUE] >= 1);
	assert_true(kinds[TH_ROLL_COUNT_BY] >= 1);
	assert_true(kinds[TH_ROLL_NONE] >= 4);
	long c = th_def_column(d, "tthc_tham_quyen");
	assert_true(c >= 0);
	assert_int_equal(d->cols[c].rollup, TH_ROLL_MAX);
	c = th_def_column(d, "diem_tu_danh_gia");
	assert_true(c >= 0);
	assert_int_equal(d->cols[c].type, TH_T_DEC);
	assert_int_equal(d->cols[c].scale, 2);
	assert_int_equal(d->cols[c].max, 10000);
	c = th_def_column(d, "ngay_ban_hanh_ke_hoach");
	assert_int_equal(d->cols[c].type, TH_T_DATE);
	assert_int_equal(d->cols[c].min, 20200101);
	/* the file-balance rule */
	const th_rule *r = NULL;
	for (size_t i = 0; i < d->n_rules; i++)
		if (strcmp(d->rules[i].id, "can_doi_ho_so") == 0)
			r = &d->rules[i];
	assert_non_null(r);
	assert_int_equal(r->n_left, 4);
	assert_int_equal(r->n_right, 6);
	assert_int_equal(r->left[0], (size_t)th_def_column(d, "ho_so_ton_ky_truoc"));
	assert_int_equal(r->right[5], (size_t)th_def_column(d, "rut_tra_lai"));
	/* the on-time ratio */
	assert_true(d->n_ratios >= 3);
	assert_string_equal(d->ratios[0].id, "ty_le_dung_han");
	assert_int_equal(d->ratios[0].n_num, 2);
	assert_int_equal(d->ratios[0].n_den, 3);
	assert_int_equal(d->ratios[0].num_code[0], -1);
	/* submitters */
	assert_true(th_def_requires_kind(d, "commune"));
	assert_false(th_def_requires_kind(d, "city"));
	assert_true(th_def_expects(d, "department", "SYT"));
	th_defset_destroy(&s);
}

static void real_pl2(void **state)
{
	(void)state;
	th_defset *s = real_set();
	const th_def *d = th_defset_get(s, "PL2", 1);
	assert_non_null(d);
	check_slots(d);
	assert_int_equal(d->n_key, 1);
	long k = th_def_column(d, "ma_nhiem_vu");
	assert_int_equal(d->key_cols[0], (size_t)k);
	assert_true(d->cols[k].key);
	assert_true(d->cols[k].required);
	long st = th_def_column(d, "trang_thai");
	assert_true(st >= 0);
	assert_int_equal(d->cols[st].rollup, TH_ROLL_COUNT_BY);
	assert_int_equal(d->cols[st].n_values, 6);
	assert_int_equal(d->cols[st].n_slots, 6);
	assert_non_null(d->derive);
	assert_int_equal(d->derive->status_col, (size_t)st);
	assert_int_equal(d->derive->deadline_col, (size_t)th_def_column(d, "han_hoan_thanh"));
	assert_int_equal(d->derive->done_col, (size_t)th_def_column(d, "ngay_hoan_thanh"));
	assert_int_equal(d->derive->code_of[TH_TASK_DONE_ON_TIME],
	                 th_def_enum(&d->cols[st], "hoan_thanh_dung_han"));
	assert_int_equal(d->derive->code_of[TH_TASK_NO_DEADLINE],
	                 th_def_enum(&d->cols[st], "khong_co_thoi_han"));
	/* ratio over count_by slots */
	const th_ratio *q = &d->ratios[0];
	assert_string_equal(q->id, "ty_le_dung_han");
	assert_int_equal(q->n_num, 1);
	assert_int_equal(q->num[0], (size_t)st);
	assert_int_equal(q->num_code[0], d->derive->code_of[TH_TASK_DONE_ON_TIME]);
	assert_int_equal(q->n_den, 3);
	assert_int_equal(q->den_code[2], d->derive->code_of[TH_TASK_OVERDUE]);
	assert_true(th_def_requires_kind(d, "district"));
	assert_false(th_def_requires_kind(d, "commune"));
	char who[64];
	th_def_submitters_text(d, who, sizeof who);
	assert_string_equal(who, "department, district");
	th_defset_destroy(&s);
}

static void real_pl3(void **state)
{
	(void)state;
	th_defset *s = real_set();
	const th_def *d = th_defset_get(s, "PL3", 1);
	assert_non_null(d);
	check_slots(d);
	assert_int_equal(d->n_key, 2);
	assert_int_equal(d->key_cols[0], (size_t)th_def_column(d, "linh_vuc"));
	assert_int_equal(d->key_cols[1], (size_t)th_def_column(d, "ma_nhiem_vu"));
	assert_int_equal(d->n_rules, 1);
	assert_int_equal(d->rules[0].n_left, 1);
	assert_int_equal(d->rules[0].n_right, 3);
	assert_true(d->n_units >= 5);
	assert_true(th_def_expects(d, "department", "SNV"));
	assert_false(th_def_expects(d, "department", "SYT"));
	assert_false(th_def_expects(d, "district", "SNV"));
	assert_false(th_def_expects(d, "department", NULL));
	th_defset_destroy(&s);
}

/* The submitters as text for messages: the submitter_units when set, else
 * the kinds; a small buffer is cut with "..." and always terminated. */
static void submitters_text(void **state)
{
	(void)state;
	th_defset *s = real_set();
	const th_def *d = th_defset_get(s, "PL3", 1);
	assert_non_null(d);
	char buf[256];
	th_def_submitters_text(d, buf, sizeof buf);
	assert_string_equal(buf, "only SNV, STP, VP, STC, STTTT, SKHCN");
	char small[12];
	memset(small, 'x', sizeof small);
	th_def_submitters_text(d, small, sizeof small);
	assert_string_equal(small, "only SNV...");
	char tiny[3];
	th_def_submitters_text(d, tiny, sizeof tiny);
	assert_string_equal(tiny, "..");
	char one[1] = {'x'};
	th_def_submitters_text(d, one, sizeof one);
	assert_int_equal(one[0], '\0');
	th_def_submitters_text(d, NULL, 10);   /* no crash */
	/* exactly fitting: no cut */
	char fit[sizeof "only SNV, STP, VP, STC, STTTT, SKHCN"];
	th_def_submitters_text(d, fit, sizeof fit);
	assert_string_equal(fit, "only SNV, STP, VP, STC, STTTT, SKHCN");
	d = th_defset_get(s, "PL1", 1);
	assert_non_null(d);
	th_def_submitters_text(d, buf, sizeof buf);
	assert_string_equal(buf, "department, district, commune, agency");
	th_def_submitters_text(NULL, buf, sizeof buf);
	assert_string_equal(buf, "nobody");
	th_defset_destroy(&s);
}

/* ------------------------------------------------------------------ */
/* parsing details */

static void lookup_by_title(void **state)
{
	(void)state;
	/* title in NFD (decomposed) in the file: stored as NFC */
	const char *text = HEAD "key = ma\nmax_rows = 10\n"
		"[column ma]\ntitle = Mã\ntype = text\nrequired = yes\nrollup = none\n"
		"[column so_ho_so]\ntitle = So\xcc\x82\xcc\x81 ho\xcc\x82\xcc\x80 so\xcc\x9b\n"
		"type = integer\nrollup = sum\n"
		"[column tt]\ntitle = Tình trạng\ntype = enum\nrollup = count_by\n"
		"value = xong | Đã hoàn thành\nvalue = chua | Chưa xong\n";
	th_def *d = parse_ok(text);
	assert_string_equal(d->cols[1].title, "Số hồ sơ");
	assert_int_equal(th_def_column(d, "so_ho_so"), 1);
	assert_int_equal(th_def_column(d, "  SỐ HỒ SƠ\t"), 1);
	assert_int_equal(th_def_column(d, "số hồ sơ"), 1);
	/* NFD query */
	assert_int_equal(th_def_column(d, "so\xcc\x82\xcc\x81 ho\xcc\x82\xcc\x80 so\xcc\x9b"), 1);
	assert_int_equal(th_def_column(d, "SO_HO_SO"), -1);   /* ids are exact */
	assert_int_equal(th_def_column(d, "Số hồ"), -1);
	assert_int_equal(th_def_column(d, "tt"), 2);
	assert_int_equal(th_def_enum(&d->cols[2], "chua"), 1);
	assert_int_equal(th_def_enum(&d->cols[2], "ĐÃ HOÀN THÀNH"), 0);
	assert_int_equal(th_def_enum(&d->cols[2], "xong "), 0);
	assert_int_equal(th_def_enum(&d->cols[2], "khac"), -1);
	assert_int_equal(d->max_rows, 10);
	assert_int_equal(d->cols[0].max_len, 2000);
	assert_int_equal(d->n_kinds, 2);
	assert_string_equal(d->kinds[1], "commune");
	th_def_destroy(&d);
	assert_null(d);
}

static void continuation_and_comments(void **state)
{
	(void)state;
	const char *text = "\xEF\xBB\xBF# a comment\r\n" HEAD
		"[column a]\r\ntitle = A # not a comment\r\ntype = integer\r\nrollup = sum\r\n"
		"min = -5\r\nmax = 1000\r\n"
		"[column b]\ntitle = B\ntype = decimal\nscale = 2\nrollup = max\nmin = -1.5\nmax = 7\n"
		"[column c]\ntitle = C\ntype = integer\nrollup = sum\n"
		"# rule on three lines\n"
		"[rule r]\ntitle = A = C\ncheck = a\n"
		"\t= c\n"
		"  + a\n"
		"[ratio q]\ntitle = tỷ lệ\nnum = a\nden = a +\n  c\n";
	th_def *d = parse_ok(text);
	assert_string_equal(d->cols[0].title, "A # not a comment");
	assert_int_equal(d->cols[0].min, -5);
	assert_int_equal(d->cols[1].min, -150);
	assert_int_equal(d->cols[1].max, 700);
	assert_int_equal(d->rules[0].n_left, 1);
	assert_int_equal(d->rules[0].n_right, 2);
	assert_int_equal(d->ratios[0].n_den, 2);
	assert_int_equal(d->n_slots, 1 + 2 + 2 + 2 + 3);
	assert_int_equal(d->ratios[0].slot, 7);
	th_def_destroy(&d);
}

/* ------------------------------------------------------------------ */
/* broken definitions: each names file:line */

static void bad_unknown_type(void **state)
{
	(void)state;
	const char *t = HEAD "[column a]\ntitle = A\ntype = number\nrollup = sum\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:8: a:", "unknown type 'number'");
	th_diag_destroy(&dg);
}

static void bad_rollup_for_type(void **state)
{
	(void)state;
	const char *t = HEAD "[column a]\ntitle = A\ntype = text\nrollup = sum\n"
		"[column b]\ntitle = B\ntype = integer\nrollup = count_by\n"
		"[column c]\ntitle = C\ntype = bool\nrollup = max\n"
		"[column d]\ntitle = D\ntype = integer\nrollup = average\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:9: a:", "rollup sum does not fit type text");
	expect_diag(dg, "bad.def:13: b:", "rollup count_by does not fit type integer");
	expect_diag(dg, "bad.def:17: c:", "rollup max does not fit type bool");
	expect_diag(dg, "bad.def:21: d:", "unknown rollup 'average'");
	th_diag_destroy(&dg);
}

static void bad_duplicate_column(void **state)
{
	(void)state;
	const char *t = HEAD "[column a]\ntitle = A\ntype = integer\nrollup = sum\n"
		"[column a]\ntitle = A2\ntype = integer\nrollup = sum\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:10: a:", "duplicate column id 'a' (first defined at line 6)");
	th_diag_destroy(&dg);
}

static void bad_unknown_column_in_rule(void **state)
{
	(void)state;
	const char *t = HEAD "[column a]\ntitle = A\ntype = integer\nrollup = sum\n"
		"[rule r]\ntitle = a = b\ncheck = a = b\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:12: r:", "unknown column 'b'");
	th_diag_destroy(&dg);
}

static void bad_enum_without_values(void **state)
{
	(void)state;
	const char *t = HEAD "[column e]\ntitle = E\ntype = enum\nrollup = count_by\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:8: e:", "enum column has no values");
	th_diag_destroy(&dg);
}

static void bad_enum_duplicate_code(void **state)
{
	(void)state;
	const char *t = HEAD "[column e]\ntitle = E\ntype = enum\nrollup = count_by\n"
		"value = x | Một\nvalue = x | Hai\nvalue = y | MỘT\nvalue = z\nvalue = Bad | Ba\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:11: e:", "enum code 'x' is listed twice");
	expect_diag(dg, "bad.def:12: e:", "enum label");
	expect_diag(dg, "bad.def:13: e:", "expected 'value = code | Vietnamese label'");
	expect_diag(dg, "bad.def:14: e:", "snake_case");
	th_diag_destroy(&dg);
}

static void bad_missing_version(void **state)
{
	(void)state;
	const char *t = "# header\n[appendix]\nid = PLX\ntitle = T\n"
		"[column a]\ntitle = A\ntype = integer\nrollup = sum\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:2: appendix:", "missing 'version'");
	assert_int_equal(th_diag_errors(dg), 1);
	th_diag_destroy(&dg);
}

static void bad_utf8_title(void **state)
{
	(void)state;
	/* Windows-1258 bytes in a title: "S\xf4" is not UTF-8 */
	const char *t = HEAD "[column a]\ntitle = S\xf4 h\xf4 s\xa1\ntype = integer\nrollup = sum\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:7: a:", "UTF-8");
	th_diag_destroy(&dg);
}

static void bad_key_and_terms(void **state)
{
	(void)state;
	const char *t = HEAD "key = a zz\n"
		"[column a]\ntitle = A\ntype = text\nrollup = none\n"      /* 7..10 */
		"[column n]\ntitle = N\ntype = integer\nrollup = max\n"    /* 11..14 */
		"[column e]\ntitle = E\ntype = enum\nrollup = count_by\nvalue = x | X\n" /* 15..19 */
		"[ratio q]\ntitle = Q\nnum = n + e:y\nden = a + + e\n";    /* 20..23 */
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:6: appendix:", "key: unknown column 'zz'");
	expect_diag(dg, "bad.def:7: a:", "key column must have 'required = yes'");
	expect_diag(dg, "bad.def:22: q:", "column n must be an integer column with rollup sum");
	expect_diag(dg, "bad.def:22: q:", "column e has no value 'y'");
	expect_diag(dg, "bad.def:23: q:", "a term is missing");
	th_diag_destroy(&dg);
}

static void bad_derive(void **state)
{
	(void)state;
	const char *t = HEAD "key = k\n"
		"[column k]\ntitle = K\ntype = text\nrequired = yes\nrollup = none\n"  /* 7..11 */
		"[column s]\ntitle = S\ntype = enum\nrollup = count_by\nvalue = a | A\nvalue = b | B\n"
		"[derive]\nstatus = s\ndeadline = k\ndone = k\n"          /* 18..21 */
		"done_on_time = a\ndone_late = b\nin_progress = a\noverdue = c\n"
		"not_started = b\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:18: derive:", "missing 'no_deadline'");
	th_diag_destroy(&dg);
	const char *t2 = HEAD "key = k\n"
		"[column k]\ntitle = K\ntype = date\nrequired = yes\nrollup = none\n"
		"[column s]\ntitle = S\ntype = enum\nrollup = count_by\nvalue = a | A\nvalue = b | B\n"
		"[derive]\nstatus = s\ndeadline = k\ndone = k\n"
		"done_on_time = a\ndone_late = b\nin_progress = a\noverdue = c\n"
		"not_started = b\nno_deadline = b\n";
	dg = parse_bad(t2, strlen(t2));
	expect_diag(dg, "bad.def:25: derive:", "column s has no value 'c'");
	expect_diag(dg, "bad.def:24: derive:", "map to the same value 'a'");
	th_diag_destroy(&dg);
}

static void bad_several_at_once(void **state)
{
	(void)state;
	const char *t = "[appendix]\nid = pl1\nversion = x\ntitle = T\nmax_rows = 5\ncolour = red\n"
		"[column a]\ntitle = A\ntype = integer\nrollup = sum\nmin = 10\nmax = 5\n"   /* 7 */
		"[column b]\ntype = date\nrollup = min\nmin = 2021-02-30\nscale = 2\n"      /* 13 */
		"[table x]\n   orphan\nfoo = bar\n"                                     /* 18 */
		"[column c]\ntitle = a\ntype = decimal\nrollup = sum\n"                     /* 21 */
		"[rule r]\ntitle = R\ncheck = a = b = c\n"                                 /* 25 */
		"no equals sign here\n";                                                  /* 28 */
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:2: appendix:", "id 'pl1' must be upper-case");
	expect_diag(dg, "bad.def:3: appendix:", "version 'x'");
	expect_diag(dg, "bad.def:6: appendix:", "unknown key 'colour'");
	expect_diag(dg, "bad.def:12: a:", "max 5 is below min 10");
	expect_diag(dg, "bad.def:13: b:", "missing 'title'");
	expect_diag(dg, "bad.def:16: b:", "'2021-02-30' is not a date");
	expect_diag(dg, "bad.def:17: b:", "scale applies only to decimal");
	expect_diag(dg, "bad.def:18:", "unknown section [table x]");
	expect_diag(dg, "bad.def:19:", "continues nothing");
	expect_diag(dg, "bad.def:21: c:", "same title as column a");
	expect_diag(dg, "bad.def:23: c:", "decimal column needs 'scale'");
	expect_diag(dg, "bad.def:27: r:", "exactly one '='");
	expect_diag(dg, "bad.def:28: r:", "expected 'key = value'");
	expect_diag(dg, "bad.def:1: appendix:", "max_rows is 5 but the appendix has no key");
	assert_true(th_diag_errors(dg) >= 14);
	/* 'foo = bar' inside the unknown section is not reported separately */
	assert_false(has_diag(dg, "bad.def:20", NULL));
	th_diag_destroy(&dg);
}

static void bad_structure(void **state)
{
	(void)state;
	const char *t = "title = before\n[appendix]\nid = PLX\nversion = 1\ntitle = T\n"
		"[appendix]\n[column 1x]\ntitle = X\n[derive]\n[derive]\n";
	th_diag *dg = parse_bad(t, strlen(t));
	expect_diag(dg, "bad.def:1:", "outside a section");
	expect_diag(dg, "bad.def:6: appendix:", "a second [appendix] section (first at line 2)");
	expect_diag(dg, "bad.def:7: 1x:", "the id must be snake_case");
	expect_diag(dg, "bad.def:10: derive:", "a second [derive]");
	expect_diag(dg, "bad.def:9: derive:", "missing 'status'");
	expect_diag(dg, "bad.def:", "no [column ...] section");
	th_diag_destroy(&dg);
	/* NUL byte and empty input */
	static const char nul[] = HEAD "[column a]\ntitle = A\0B\ntype = integer\nrollup = sum\n";
	dg = parse_bad(nul, sizeof nul - 1);
	expect_diag(dg, "bad.def:7:", "not valid UTF-8");
	th_diag_destroy(&dg);
	dg = parse_bad("", 0);
	expect_diag(dg, "bad.def:1: appendix:", "missing [appendix] section");
	th_diag_destroy(&dg);
}

/* The fixture files of tests/data/def: load by path, errors name the file. */
static void fixture_files(void **state)
{
	(void)state;
	static const struct { const char *file, *where, *what; } cases[] = {
		{ "wrong-rollup.def", "wrong-rollup.def:11: ghi_chu:", "rollup sum does not fit type text" },
		{ "wrong-rollup.def", "wrong-rollup.def:16: so_ho_so:", "rollup count_by does not fit" },
		{ "unknown-reference.def", "unknown-reference.def:23: ty_le:",
		  "den: unknown column 'ho_so_tiep_nhan'" },
		{ "unknown-reference.def", "unknown-reference.def:27: can_doi:",
		  "check: unknown column 'ho_so_tiep_nhan'" },
		{ "not-utf8.def", "not-utf8.def:5: appendix:", "not valid UTF-8" },
		{ "not-utf8.def", "not-utf8.def:2: appendix:", "missing 'title'" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char rel[256];
		th_diag *dg = th_diag_new();
		th_def *d = NULL;
		snprintf(rel, sizeof rel, "tests/data/def/%s", cases[i].file);
		assert_int_equal(th_def_load(tu_src(rel), &d, dg), TH_ESYNTAX);
		assert_null(d);
		expect_diag(dg, cases[i].where, cases[i].what);
		th_diag_destroy(&dg);
	}
}

/* ------------------------------------------------------------------ */
/* sets and directories */

static void defset_duplicates_and_dirs(void **state)
{
	(void)state;
	const char *t = HEAD "[column a]\ntitle = A\ntype = integer\nrollup = sum\n";
	th_defset *s = th_defset_new();
	th_def *d1 = parse_ok(t), *d2 = parse_ok(t);
	assert_int_equal(th_defset_add(s, d1), 0);
	assert_int_equal(th_defset_add(s, d2), TH_EEXIST);
	th_def_destroy(&d2);
	assert_int_equal(th_defset_count(s), 1);
	assert_ptr_equal(th_defset_get(s, "PLX", 3), d1);
	th_defset_destroy(&s);

	/* a directory: a good file, a version 4, a non-.def file, a broken file */
	char *dir = tu_tmpdir();
	char path[4200];
	assert_non_null(dir);
	snprintf(path, sizeof path, "%s/b.def", dir);
	assert_int_equal(tu_write_file(path, t, strlen(t)), 0);
	char t4[1024];
	snprintf(t4, sizeof t4, "%s", t);
	memcpy(strstr(t4, "version = 3"), "version = 4", 11);
	snprintf(path, sizeof path, "%s/a.def", dir);
	assert_int_equal(tu_write_file(path, t4, strlen(t4)), 0);
	snprintf(path, sizeof path, "%s/notes.txt", dir);
	assert_int_equal(tu_write_file(path, "junk", 4), 0);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_defset_load_dir(dir, &s, dg), 0);
	assert_int_equal(th_defset_count(s), 2);
	assert_int_equal(th_defset_at(s, 0)->version, 4);      /* a.def first */
	assert_int_equal(th_defset_latest(s, "PLX")->version, 4);
	th_defset_destroy(&s);

	/* same (id, version) in two files, and a broken file: whole load fails */
	snprintf(path, sizeof path, "%s/c.def", dir);
	assert_int_equal(tu_write_file(path, t, strlen(t)), 0);
	snprintf(path, sizeof path, "%s/d.def", dir);
	assert_int_equal(tu_write_file(path, "[appendix]\nid = PLY\n", 20), 0);
	s = (th_defset *)(uintptr_t)1;
	assert_int_not_equal(th_defset_load_dir(dir, &s, dg), 0);
	assert_ptr_equal(s, (th_defset *)(uintptr_t)1);
	expect_diag(dg, "/c.def:", "PLX version 3 is also defined in");
	expect_diag(dg, "/d.def:1: appendix:", "missing 'version'");
	th_diag_destroy(&dg);
	tu_rmrf(dir);

	dg = th_diag_new();
	s = NULL;
	assert_int_equal(th_defset_load_dir("/nonexistent/dir", &s, dg), TH_ENOTFOUND);
	assert_null(s);
	assert_int_equal(th_def_load("/nonexistent/x.def", &d1, dg), TH_ENOTFOUND);
	th_diag_destroy(&dg);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_load_dir),
		cmocka_unit_test(real_pl1),
		cmocka_unit_test(real_pl2),
		cmocka_unit_test(real_pl3),
		cmocka_unit_test(submitters_text),
		cmocka_unit_test(lookup_by_title),
		cmocka_unit_test(continuation_and_comments),
		cmocka_unit_test(bad_unknown_type),
		cmocka_unit_test(bad_rollup_for_type),
		cmocka_unit_test(bad_duplicate_column),
		cmocka_unit_test(bad_unknown_column_in_rule),
		cmocka_unit_test(bad_enum_without_values),
		cmocka_unit_test(bad_enum_duplicate_code),
		cmocka_unit_test(bad_missing_version),
		cmocka_unit_test(bad_utf8_title),
		cmocka_unit_test(bad_key_and_terms),
		cmocka_unit_test(bad_derive),
		cmocka_unit_test(bad_several_at_once),
		cmocka_unit_test(bad_structure),
		cmocka_unit_test(fixture_files),
		cmocka_unit_test(defset_duplicates_and_dirs),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

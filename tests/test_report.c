/* test_report.c -- reports: validation, task status, canonical form and hash
 * (schema/th_report.c), including the test vectors of schema/PROTOCOL.md. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_report.h"

/* The vector definition of PROTOCOL.md, section "Test vectors". */
static const char *VDEF =
	"[appendix]\n"
	"id = TV\n"
	"version = 1\n"
	"title = Vector\n"
	"submitters = district\n"
	"key = ma\n"
	"[column ma]\n"
	"title = Mã\n"
	"type = text\n"
	"required = yes\n"
	"rollup = none\n"
	"[column so]\n"
	"title = Số\n"
	"type = integer\n"
	"rollup = sum\n"
	"[column ty_le]\n"
	"title = Tỷ lệ\n"
	"type = decimal\n"
	"scale = 2\n"
	"rollup = max\n"
	"[column loai]\n"
	"title = Loại\n"
	"type = enum\n"
	"rollup = count_by\n"
	"value = a | A\n"
	"value = b | B\n"
	"[column ngay]\n"
	"title = Ngày\n"
	"type = date\n"
	"rollup = none\n"
	"[column co]\n"
	"title = Có\n"
	"type = bool\n"
	"rollup = count_true\n";

static th_def *vdef(void)
{
	th_def *d = NULL;
	th_diag *dg = th_diag_new();
	int rc = th_def_parse(VDEF, strlen(VDEF), "vector.def", &d, dg);
	for (size_t i = 0; i < th_diag_count(dg); i++)
		print_message("%s\n", th_diag_text(dg, i));
	th_diag_destroy(&dg);
	assert_int_equal(rc, 0);
	return d;
}

static void set_text(th_value *v, const char *s)
{
	v->null = 0;
	v->s = strdup(s);
	v->len = (uint32_t)strlen(s);
}

static void set_int(th_value *v, int64_t i)
{
	v->null = 0;
	v->i = i;
}

/* Vector 1: two rows given out of key order, one with nulls. */
static th_report *vector1(const th_def *d)
{
	th_report *r = th_report_new("001", "TV", 1, "2021", 7, d->n_cols);
	r->as_of = 20210630;
	th_report_add_row(r);
	set_text(th_report_cell(r, 0, 0), "T2");
	set_int(th_report_cell(r, 0, 1), -5);
	th_report_add_row(r);
	set_text(th_report_cell(r, 1, 0), "T1");
	set_int(th_report_cell(r, 1, 1), 300);
	set_int(th_report_cell(r, 1, 2), 125);        /* 1.25 */
	set_int(th_report_cell(r, 1, 3), 1);          /* b */
	set_int(th_report_cell(r, 1, 4), 20210405);
	set_int(th_report_cell(r, 1, 5), 1);
	return r;
}

static void hexs(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

static void protocol_vectors(void **state)
{
	(void)state;
	th_def *d = vdef();
	th_report *r = vector1(d);
	assert_int_equal(th_report_validate(r, d, NULL), 0);
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_canon_encode(r, d, &buf, &len), 0);
	char hex[1024], hh[65];
	hexs(buf, len, hex);
	uint8_t h[TH_HASH_LEN];
	assert_int_equal(th_canon_hash(r, d, h), 0);
	hexs(h, TH_HASH_LEN, hh);
	print_message("vector 1 canonical %s\nvector 1 hash %s\n", hex, hh);
	/* the same values as in schema/PROTOCOL.md */
	char *doc = tu_read_file(tu_src("schema/PROTOCOL.md"), NULL);
	assert_non_null(doc);
	assert_non_null(strstr(doc, hex));
	assert_non_null(strstr(doc, hh));
	/* vector 2: the withdrawal (tombstone) of the same key */
	th_report *t = th_report_new("001", "TV", 1, "2021", 8, d->n_cols);
	t->tombstone = 1;
	free(buf);
	assert_int_equal(th_canon_encode(t, d, &buf, &len), 0);
	hexs(buf, len, hex);
	assert_int_equal(th_canon_hash(t, d, h), 0);
	hexs(h, TH_HASH_LEN, hh);
	print_message("vector 2 canonical %s\nvector 2 hash %s\n", hex, hh);
	assert_non_null(strstr(doc, hex));
	assert_non_null(strstr(doc, hh));
	free(doc);
	free(buf);
	th_report_destroy(&t);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void hash_independent_of_row_order_and_nfd(void **state)
{
	(void)state;
	th_def *d = vdef();
	th_report *a = vector1(d), *b = vector1(d);
	/* swap b's rows */
	th_value tmp[6];
	memcpy(tmp, &b->cells[0], sizeof tmp);
	memcpy(&b->cells[0], &b->cells[6], sizeof tmp);
	memcpy(&b->cells[6], tmp, sizeof tmp);
	/* a text in NFD in b, NFC in a */
	th_value_clear(th_report_cell(a, 0, 0));
	set_text(th_report_cell(a, 0, 0), "H\xC3\xA0");
	th_value_clear(th_report_cell(b, 1, 0));
	set_text(th_report_cell(b, 1, 0), "Ha\xCC\x80");
	assert_int_equal(th_report_validate(a, d, NULL), 0);
	assert_int_equal(th_report_validate(b, d, NULL), 0);
	uint8_t ha[TH_HASH_LEN], hb[TH_HASH_LEN];
	th_canon_hash(a, d, ha);
	th_canon_hash(b, d, hb);
	assert_memory_equal(ha, hb, TH_HASH_LEN);
	/* and a change of one value changes it */
	th_report_cell(b, 0, 1)->i += 1;
	th_canon_hash(b, d, hb);
	assert_memory_not_equal(ha, hb, TH_HASH_LEN);
	th_report_destroy(&a);
	th_report_destroy(&b);
	th_def_destroy(&d);
}

static void duplicate_row_key(void **state)
{
	(void)state;
	th_def *d = vdef();
	th_report *r = vector1(d);
	th_value_clear(th_report_cell(r, 1, 0));
	set_text(th_report_cell(r, 1, 0), "T2");
	th_diag *dg = th_diag_new();
	assert_int_not_equal(th_report_validate(r, d, dg), 0);
	assert_int_equal(th_diag_at(dg, 0)->code, TH_EDUPKEY);
	th_diag_destroy(&dg);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void cell_checks(void **state)
{
	(void)state;
	th_def *d = vdef();
	th_report *r = vector1(d);
	th_value_clear(th_report_cell(r, 0, 0));                   /* required key null */
	set_int(th_report_cell(r, 1, 3), 7);                        /* enum out of range */
	set_int(th_report_cell(r, 1, 4), 20210231);                 /* not a date */
	set_int(th_report_cell(r, 1, 5), 2);                        /* not a bool */
	th_diag *dg = th_diag_new();
	assert_int_not_equal(th_report_validate(r, d, dg), 0);
	assert_int_equal(th_diag_errors(dg), 4);
	assert_int_equal(th_diag_at(dg, 0)->row, 1);
	assert_string_equal(th_diag_at(dg, 0)->column, "ma");
	th_diag_destroy(&dg);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void identity_checks(void **state)
{
	(void)state;
	th_def *d = vdef();
	th_report *r = vector1(d);
	free(r->period);
	r->period = strdup("2021-13");
	free(r->unit);
	r->unit = strdup("has space");
	th_diag *dg = th_diag_new();
	assert_int_not_equal(th_report_validate(r, d, dg), 0);
	assert_int_equal(th_diag_errors(dg), 2);
	th_diag_destroy(&dg);
	assert_true(th_period_valid("2021"));
	assert_true(th_period_valid("2021-Q4"));
	assert_true(th_period_valid("2021-H2"));
	assert_true(th_period_valid("2021-06"));
	assert_false(th_period_valid("2021-Q5"));
	assert_false(th_period_valid("21"));
	assert_false(th_period_valid("2021-6"));
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static th_defset *real(void)
{
	th_defset *s = NULL;
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &s, NULL), 0);
	return s;
}

/* PL2 task status: derived from the dates and as_of; disagreement warned. */
static void task_status_derivation(void **state)
{
	(void)state;
	th_defset *s = real();
	const th_def *d = th_defset_latest(s, "PL2");
	assert_non_null(d->derive);
	const th_derive *dv = d->derive;
	struct { int32_t deadline, done; int expect; } cases[] = {
		{20210301, 20210215, TH_TASK_DONE_ON_TIME},
		{20210301, 20210301, TH_TASK_DONE_ON_TIME},
		{20210301, 20210302, TH_TASK_DONE_LATE},
		{20211231, 0, TH_TASK_IN_PROGRESS},
		{20210301, 0, TH_TASK_OVERDUE},
		{0, 0, TH_TASK_NO_DEADLINE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		th_report *r = th_report_new("SNV", "PL2", d->version, "2021", 1, d->n_cols);
		r->as_of = 20210630;
		th_report_add_row(r);
		for (size_t c = 0; c < d->n_cols; c++)
			if (d->cols[c].required) {
				if (d->cols[c].type == TH_T_TEXT)
					set_text(th_report_cell(r, 0, c), "NV1");
				else if (d->cols[c].type == TH_T_ENUM)
					set_int(th_report_cell(r, 0, c), 0);
				else if (d->cols[c].type == TH_T_DATE)
					set_int(th_report_cell(r, 0, c), 20210101);
				else
					set_int(th_report_cell(r, 0, c), 0);
			}
		th_value_clear(th_report_cell(r, 0, dv->status_col));
		th_value_clear(th_report_cell(r, 0, dv->deadline_col));
		th_value_clear(th_report_cell(r, 0, dv->done_col));
		if (cases[i].deadline)
			set_int(th_report_cell(r, 0, dv->deadline_col), cases[i].deadline);
		if (cases[i].done)
			set_int(th_report_cell(r, 0, dv->done_col), cases[i].done);
		/* declare "done on time" everywhere: disagreeing cases get a warning */
		set_int(th_report_cell(r, 0, dv->status_col), dv->code_of[TH_TASK_DONE_ON_TIME]);
		th_diag *dg = th_diag_new();
		int rc = th_report_validate(r, d, dg);
		for (size_t k = 0; rc && k < th_diag_count(dg); k++)
			print_message("%s\n", th_diag_text(dg, k));
		assert_int_equal(rc, 0);
		assert_int_equal(th_report_cell(r, 0, dv->status_col)->i, dv->code_of[cases[i].expect]);
		size_t warnings = th_diag_count(dg) - th_diag_errors(dg);
		assert_int_equal(warnings, cases[i].expect == TH_TASK_DONE_ON_TIME ? 0 : 1);
		th_diag_destroy(&dg);
		th_report_destroy(&r);
	}
	th_defset_destroy(&s);
}

static void rule_checked_and_skipped_on_null(void **state)
{
	(void)state;
	th_defset *s = real();
	const th_def *d = th_defset_latest(s, "PL3");
	th_report *r = th_report_new("SNV", "PL3", d->version, "2021", 1, d->n_cols);
	th_report_add_row(r);
	set_int(th_report_cell(r, 0, (size_t)th_def_column(d, "linh_vuc")), 0);
	set_text(th_report_cell(r, 0, (size_t)th_def_column(d, "ma_nhiem_vu")), "T1");
	set_int(th_report_cell(r, 0, (size_t)th_def_column(d, "so_nhiem_vu_ke_hoach")), 10);
	set_int(th_report_cell(r, 0, (size_t)th_def_column(d, "da_hoan_thanh")), 3);
	/* in progress / not started null: rule not checked */
	assert_int_equal(th_report_validate(r, d, NULL), 0);
	set_int(th_report_cell(r, 0, (size_t)th_def_column(d, "dang_thuc_hien")), 3);
	set_int(th_report_cell(r, 0, (size_t)th_def_column(d, "chua_thuc_hien")), 3);
	th_diag *dg = th_diag_new();
	assert_int_not_equal(th_report_validate(r, d, dg), 0);
	assert_int_equal(th_diag_at(dg, 0)->code, TH_ERULE);
	th_diag_destroy(&dg);
	set_int(th_report_cell(r, 0, (size_t)th_def_column(d, "chua_thuc_hien")), 4);
	assert_int_equal(th_report_validate(r, d, NULL), 0);
	th_report_destroy(&r);
	th_defset_destroy(&s);
}

static void single_row_appendix_limit(void **state)
{
	(void)state;
	th_defset *s = real();
	const th_def *d = th_defset_latest(s, "PL1");
	th_report *r = th_report_new("SNV", "PL1", d->version, "2021", 1, d->n_cols);
	th_report_add_row(r);
	th_report_add_row(r);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_report_validate(r, d, dg), TH_ETOOBIG);
	th_diag_destroy(&dg);
	th_report *c = th_report_clone(r);
	assert_int_equal(c->n_rows, 2);
	th_report_destroy(&c);
	th_report_destroy(&r);
	th_defset_destroy(&s);
}

static void report_key_layout(void **state)
{
	(void)state;
	char buf[64];
	int n = th_report_key("SNV", "PL1", "2021", buf, sizeof buf);
	assert_int_equal(n, 12);
	assert_memory_equal(buf, "SNV\0PL1\0" "2021", 12);
	assert_int_equal(th_report_key("SNV", "PL1", "2021", buf, 5), TH_ETOOBIG);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(protocol_vectors),
		cmocka_unit_test(hash_independent_of_row_order_and_nfd),
		cmocka_unit_test(duplicate_row_key),
		cmocka_unit_test(cell_checks),
		cmocka_unit_test(identity_checks),
		cmocka_unit_test(task_status_derivation),
		cmocka_unit_test(rule_checked_and_skipped_on_null),
		cmocka_unit_test(single_row_appendix_limit),
		cmocka_unit_test(report_key_layout),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

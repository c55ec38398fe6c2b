/* test_canon.c -- the canonical form (schema/th_canon.c): a report decodes back
 * to what was encoded, whatever its row order, and a damaged form or one of
 * another definition is refused without reading outside it.  The encoder's
 * byte-exact vectors are in test_report.c (protocol_vectors). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_canon.h"

#define DEF(version, extra)                                                              \
	"[appendix]\nid = CT\nversion = " version "\ntitle = Canon\nsubmitters = district\n"  \
	"key = ma\n"                                                                        \
	"[column ma]\ntitle = Mã\ntype = text\nrequired = yes\nrollup = none\n"              \
	"[column so]\ntitle = Số\ntype = integer\nrollup = sum\n"                           \
	"[column tl]\ntitle = Tỷ lệ\ntype = decimal\nscale = 2\nrollup = max\n"             \
	"[column loai]\ntitle = Loại\ntype = enum\nrollup = count_by\n"                      \
	"value = a | A\nvalue = b | B\n"                                                    \
	"[column ngay]\ntitle = Ngày\ntype = date\nrollup = none\n"                          \
	"[column co]\ntitle = Có\ntype = bool\nrollup = count_true\n" extra

static th_def *def(const char *text)
{
	th_def *d = NULL;
	assert_int_equal(th_def_parse(text, strlen(text), "ct.def", &d, NULL), 0);
	return d;
}

static void text(th_value *v, const char *s)
{
	v->null = 0;
	v->s = strdup(s);
	v->len = (uint32_t)strlen(s);
}

static void num(th_value *v, int64_t i)
{
	v->null = 0;
	v->i = i;
}

/* Three rows out of key order: every type, nulls, extreme integers. */
static th_report *sample(const th_def *d)
{
	th_report *r = th_report_new("D7", "CT", 1, "2021-Q3", 42, d->n_cols);
	assert_non_null(r);
	r->as_of = 20210930;
	for (int i = 0; i < 3; i++)
		assert_int_equal(th_report_add_row(r), i);
	text(th_report_cell(r, 0, 0), "Z-cuối");
	num(th_report_cell(r, 0, 1), INT64_MAX);
	num(th_report_cell(r, 0, 3), 1);
	text(th_report_cell(r, 1, 0), "A-đầu");
	num(th_report_cell(r, 1, 1), INT64_MIN + 1);
	num(th_report_cell(r, 1, 2), -12345);
	num(th_report_cell(r, 1, 4), 20210704);
	num(th_report_cell(r, 1, 5), 0);
	text(th_report_cell(r, 2, 0), "M");
	num(th_report_cell(r, 2, 5), 1);
	assert_int_equal(th_report_validate(r, d, NULL), 0);
	return r;
}

/* The decoded report has the original's rows in key order. */
static void same_content(const th_report *orig, const th_report *back, const th_def *d)
{
	assert_string_equal(back->unit, orig->unit);
	assert_string_equal(back->appendix, orig->appendix);
	assert_string_equal(back->period, orig->period);
	assert_int_equal(back->rev, orig->rev);
	assert_int_equal(back->version, orig->version);
	assert_int_equal(back->as_of, orig->as_of);
	assert_int_equal(back->tombstone, orig->tombstone);
	assert_int_equal(back->n_rows, orig->n_rows);
	assert_int_equal(back->n_cols, d->n_cols);
	size_t *order = th_report_key_order(orig, d);
	assert_non_null(order);
	for (size_t i = 0; i < orig->n_rows; i++)
		for (size_t c = 0; c < d->n_cols; c++) {
			const th_value *a = th_report_cell(orig, order[i], c), *b = th_report_cell(back, i, c);
			assert_int_equal(a->null, b->null);
			if (a->null)
				continue;
			if (d->cols[c].type == TH_T_TEXT) {
				assert_int_equal(a->len, b->len);
				assert_memory_equal(a->s, b->s, a->len);
			} else {
				assert_int_equal(a->i, b->i);
			}
		}
	free(order);
}

static void round_trip_every_type(void **state)
{
	(void)state;
	th_def *d = def(DEF("1", ""));
	th_report *r = sample(d);
	uint8_t *buf = NULL, hash[TH_HASH_LEN], h2[TH_HASH_LEN];
	size_t len = 0;
	assert_int_equal(th_canon_encode_hash(r, d, &buf, &len, hash), 0);
	th_report *back = NULL;
	assert_int_equal(th_canon_decode(buf, len, d, "D7", "2021-Q3", 42, &back), 0);
	same_content(r, back, d);
	/* the decoded report encodes to the same bytes, so to the same hash */
	uint8_t *again = NULL;
	size_t alen = 0;
	assert_int_equal(th_canon_encode(back, d, &again, &alen), 0);
	assert_int_equal(alen, len);
	assert_memory_equal(again, buf, len);
	assert_int_equal(th_canon_hash(back, d, h2), 0);
	assert_memory_equal(h2, hash, TH_HASH_LEN);
	free(again);
	free(buf);
	th_report_destroy(&back);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

static void tombstone_and_empty_round_trip(void **state)
{
	(void)state;
	th_def *d = def(DEF("1", ""));
	for (int tomb = 0; tomb < 2; tomb++) {
		th_report *r = th_report_new("D7", "CT", 1, "2021", 9, d->n_cols);
		r->tombstone = (uint8_t)tomb;
		uint8_t *buf = NULL;
		size_t len = 0;
		assert_int_equal(th_canon_encode(r, d, &buf, &len), 0);
		th_report *back = NULL;
		assert_int_equal(th_canon_decode(buf, len, d, "D7", "2021", 9, &back), 0);
		same_content(r, back, d);
		free(buf);
		th_report_destroy(&back);
		th_report_destroy(&r);
	}
	th_def_destroy(&d);
}

/* Every prefix of a form, a form with bytes after it, a form of another
 * definition version or appendix: refused (TH_ESTORE), *out untouched. */
static void damaged_or_foreign_forms_refused(void **state)
{
	(void)state;
	th_def *d = def(DEF("1", ""));
	th_def *d2 = def(DEF("2", "[column them]\ntitle = Thêm\ntype = integer\nrollup = sum\n"));
	th_def *same_cols = def(DEF("2", ""));
	th_report *r = sample(d);
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(th_canon_encode(r, d, &buf, &len), 0);
	th_report *out = (th_report *)0x1;
	for (size_t n = 0; n < len; n++) {
		uint8_t *cut = malloc(n ? n : 1);   /* exactly n bytes: ASan sees any overread */
		memcpy(cut, buf, n);
		assert_int_equal(th_canon_decode(cut, n, d, "D7", "2021-Q3", 42, &out), TH_ESTORE);
		assert_ptr_equal(out, (th_report *)0x1);
		free(cut);
	}
	uint8_t *longer = malloc(len + 1);
	memcpy(longer, buf, len);
	longer[len] = 0xc0;   /* a nil after the form */
	assert_int_equal(th_canon_decode(longer, len + 1, d, "D7", "2021-Q3", 42, &out), TH_ESTORE);
	free(longer);
	/* another version: its column count, or its version number, differs */
	assert_int_equal(th_canon_decode(buf, len, d2, "D7", "2021-Q3", 42, &out), TH_ESTORE);
	assert_int_equal(th_canon_decode(buf, len, same_cols, "D7", "2021-Q3", 42, &out), TH_ESTORE);
	assert_ptr_equal(out, (th_report *)0x1);
	/* an enum code the definition does not have */
	char *p = memmem(buf, len, "\xa1" "b", 2);
	assert_non_null(p);
	p[1] = 'q';
	assert_int_equal(th_canon_decode(buf, len, d, "D7", "2021-Q3", 42, &out), TH_ESTORE);
	free(buf);
	th_report_destroy(&r);
	th_def_destroy(&same_cols);
	th_def_destroy(&d2);
	th_def_destroy(&d);
}

/* Rows sort by key; rows with equal keys (not valid, but the order must still be
 * defined) keep their order. */
static void key_order_stable(void **state)
{
	(void)state;
	th_def *d = def(DEF("1", ""));
	th_report *r = th_report_new("D7", "CT", 1, "2021", 1, d->n_cols);
	const char *keys[] = {"c", "a", "b", "a"};
	for (int i = 0; i < 4; i++) {
		th_report_add_row(r);
		text(th_report_cell(r, (size_t)i, 0), keys[i]);
	}
	size_t *o = th_report_key_order(r, d);
	assert_non_null(o);
	size_t want[] = {1, 3, 2, 0};
	assert_memory_equal(o, want, sizeof want);
	free(o);
	th_report_destroy(&r);
	th_def_destroy(&d);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(round_trip_every_type),
		cmocka_unit_test(tombstone_and_empty_round_trip),
		cmocka_unit_test(damaged_or_foreign_forms_refused),
		cmocka_unit_test(key_order_stable),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

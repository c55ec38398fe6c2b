/* test_wire.c -- protocol messages (schema/th_wire.c, th_wire_submit.c, th_wire_query.c,
 * th_mp.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_mp.h"
#include "th_wire.h"

static th_defset *defs;

static const th_def *def(const char *id)
{
	if (!defs) {
		assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &defs, NULL), 0);
	}
	return th_defset_latest(defs, id);
}

static void save_corpus(const char *name, const uint8_t *buf, size_t len)
{
	const char *dir = getenv("TH_WRITE_CORPUS");
	if (!dir)
		return;
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	tu_write_file(path, buf, len);
}

/* A PL3 report with every kind of cell PL3 has, two rows. */
static th_report *pl3_report(void)
{
	const th_def *d = def("PL3");
	th_report *r = th_report_new("SNV", "PL3", d->version, "2021", 1637000000000000ULL, d->n_cols);
	for (int i = 0; i < 2; i++) {
		long row = th_report_add_row(r);
		for (size_t c = 0; c < d->n_cols; c++) {
			th_value *v = th_report_cell(r, (size_t)row, c);
			const th_column *col = &d->cols[c];
			v->null = 0;
			if (col->type == TH_T_ENUM)
				v->i = i;
			else if (col->type == TH_T_TEXT) {
				v->s = strdup(i ? "Hà Nội" : "T1");
				v->len = (uint32_t)strlen(v->s);
			} else
				v->i = 0;
		}
		/* planned = done + in progress + not started */
		th_report_cell(r, (size_t)row, (size_t)th_def_column(d, "so_nhiem_vu_ke_hoach"))->i = 7 + i;
		th_report_cell(r, (size_t)row, (size_t)th_def_column(d, "da_hoan_thanh"))->i = 7 + i;
	}
	return r;
}

static void submit_round_trip(void **state)
{
	(void)state;
	th_report *r = pl3_report();
	const th_def *d = def("PL3");
	assert_int_equal(th_report_validate(r, d, NULL), 0);
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(77, &r, 1, defs, &buf, &len), 0);
	save_corpus("submit_pl3", buf, len);
	th_submit_decoded s;
	const char *why = NULL;
	assert_int_equal(th_wire_decode_submit(buf, len, defs, NULL, &s, &why), 0);
	assert_int_equal(s.id, 77);
	assert_int_equal(s.n_reports, 1);
	th_report *b = s.reports[0];
	assert_non_null(b);
	assert_string_equal(b->unit, "SNV");
	assert_int_equal(b->rev, 1637000000000000ULL);
	assert_int_equal(b->n_rows, 2);
	for (size_t i = 0; i < r->n_rows * r->n_cols; i++) {
		assert_int_equal(r->cells[i].null, b->cells[i].null);
		assert_int_equal(th_value_cmp(&r->cells[i], &b->cells[i], d->cols[i % d->n_cols].type), 0);
	}
	th_submit_decoded_free(&s);
	free(buf);
	th_report_destroy(&r);
}

static void every_pl1_type_and_null(void **state)
{
	(void)state;
	const th_def *d = def("PL1");
	th_report *r = th_report_new("001", "PL1", d->version, "2021", 5, d->n_cols);
	th_report_add_row(r);
	/* leave everything null except one cell of each type */
	int seen[7] = {0};
	for (size_t c = 0; c < d->n_cols; c++) {
		const th_column *col = &d->cols[c];
		if (seen[col->type]++)
			continue;
		th_value *v = th_report_cell(r, 0, c);
		v->null = 0;
		switch (col->type) {
		case TH_T_INT: v->i = col->has_max ? col->max : INT64_MAX / 2; break;
		case TH_T_DEC: v->i = -12345; break;
		case TH_T_ENUM: v->i = (int64_t)col->n_values - 1; break;
		case TH_T_DATE: v->i = 20210405; break;
		case TH_T_BOOL: v->i = 1; break;
		case TH_T_TEXT: v->s = strdup("Tiếng Việt"); v->len = (uint32_t)strlen(v->s); break;
		}
	}
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(1, &r, 1, defs, &buf, &len), 0);
	save_corpus("submit_pl1", buf, len);
	th_submit_decoded s;
	const char *why;
	assert_int_equal(th_wire_decode_submit(buf, len, defs, NULL, &s, &why), 0);
	for (size_t c = 0; c < d->n_cols; c++) {
		th_value *a = th_report_cell(r, 0, c), *b = th_report_cell(s.reports[0], 0, c);
		assert_int_equal(a->null, b->null);
		if (!a->null)
			assert_int_equal(th_value_cmp(a, b, d->cols[c].type), 0);
		/* decoded text is marked checked (NFC, valid): validation skips it */
		assert_int_equal(b->nfc, !b->null && d->cols[c].type == TH_T_TEXT);
	}
	th_submit_decoded_free(&s);
	free(buf);
	th_report_destroy(&r);
}

static void truncated_everywhere(void **state)
{
	(void)state;
	th_report *r = pl3_report();
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(3, &r, 1, defs, &buf, &len), 0);
	for (size_t cut = 0; cut < len; cut++) {
		th_submit_decoded s;
		const char *why = NULL;
		uint8_t *copy = malloc(cut ? cut : 1);
		memcpy(copy, buf, cut);
		int rc = th_wire_decode_submit(copy, cut, defs, NULL, &s, &why);
		if (rc == 0) {
			/* a cut inside the report body may leave a decodable envelope only
			 * when it is not truncated: must not happen */
			fail_msg("truncated message of %zu/%zu bytes decoded", cut, len);
		}
		assert_non_null(why);
		free(copy);
	}
	free(buf);
	th_report_destroy(&r);
}

static void huge_claimed_array(void **state)
{
	(void)state;
	/* {"v":1,"t":"submit","id":1,"reports": array32 of 2^32-1} and nothing after */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "v", 1); msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "t", 1);
	msgpack_pack_str(&pk, 6); msgpack_pack_str_body(&pk, "submit", 6);
	msgpack_pack_str(&pk, 2); msgpack_pack_str_body(&pk, "id", 2); msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str(&pk, 7); msgpack_pack_str_body(&pk, "reports", 7);
	const uint8_t huge[] = {0xdd, 0xff, 0xff, 0xff, 0xff};
	msgpack_sbuffer_write(&sb, (const char *)huge, sizeof huge);
	save_corpus("huge_array", (uint8_t *)sb.data, sb.size);
	th_submit_decoded s;
	const char *why = NULL;
	assert_int_not_equal(th_wire_decode_submit((uint8_t *)sb.data, sb.size, defs ? defs : (def("PL1"), defs), NULL, &s, &why), 0);
	/* the cursor itself refuses the header */
	th_mp m;
	th_mp_init(&m, huge, sizeof huge);
	uint32_t n;
	assert_int_equal(th_mp_array(&m, &n), TH_ETRUNC);
	msgpack_sbuffer_destroy(&sb);
}

static uint8_t *submit_with(const char *field, void (*packv)(msgpack_packer *), size_t *len)
{
	/* a one-report submit where report field `field` is packed by packv */
	const th_def *d = def("PL3");
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
#define S(x) (msgpack_pack_str(&pk, strlen(x)), msgpack_pack_str_body(&pk, x, strlen(x)))
	msgpack_pack_map(&pk, 4);
	S("v"); msgpack_pack_uint8(&pk, 1);
	S("t"); S("submit");
	S("id"); msgpack_pack_uint8(&pk, 9);
	S("reports");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 6);
	const char *names[] = {"unit", "appendix", "version", "period", "rev", "rows"};
	for (int i = 0; i < 6; i++) {
		S(names[i]);
		if (strcmp(names[i], field) == 0) {
			packv(&pk);
			continue;
		}
		switch (i) {
		case 0: S("SNV"); break;
		case 1: S("PL3"); break;
		case 2: msgpack_pack_uint32(&pk, d->version); break;
		case 3: S("2021"); break;
		case 4: msgpack_pack_uint8(&pk, 1); break;
		case 5: msgpack_pack_array(&pk, 0); break;
		}
	}
#undef S
	*len = sb.size;
	return (uint8_t *)sb.data;
}

static void pack_float(msgpack_packer *pk) { msgpack_pack_double(pk, 1.0 / 0.0); }
static void pack_bad_utf8(msgpack_packer *pk) { msgpack_pack_str(pk, 2); msgpack_pack_str_body(pk, "\xC3\x28", 2); }
static void pack_int(msgpack_packer *pk) { msgpack_pack_int(pk, -3); }
static void pack_rows_wrong_cells(msgpack_packer *pk)
{
	msgpack_pack_array(pk, 1);
	msgpack_pack_array(pk, 2);
	msgpack_pack_nil(pk);
	msgpack_pack_nil(pk);
}

static void per_report_errors(void **state)
{
	(void)state;
	struct { const char *field; void (*packv)(msgpack_packer *); int err; } cases[] = {
		{"rev", pack_float, TH_ETYPE},
		{"unit", pack_bad_utf8, TH_EUTF8},
		{"period", pack_int, TH_ETYPE},
		{"rev", pack_int, TH_ERANGE},
		{"rows", pack_rows_wrong_cells, TH_ETYPE},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t len;
		uint8_t *buf = submit_with(cases[i].field, cases[i].packv, &len);
		th_submit_decoded s;
		const char *why = NULL;
		int rc = th_wire_decode_submit(buf, len, defs, NULL, &s, &why);
		assert_int_equal(rc, 0);                  /* the envelope is fine */
		assert_int_equal(s.n_reports, 1);
		assert_null(s.reports[0]);
		if (s.err[0] != cases[i].err)
			print_message("case %zu: got %s (%s)\n", i, th_errname(s.err[0]), s.why[0]);
		assert_int_equal(s.err[0], cases[i].err);
		assert_non_null(s.why[0]);
		th_submit_decoded_free(&s);
		free(buf);
	}
}

static void unknown_appendix_and_version(void **state)
{
	(void)state;
	th_report *r = pl3_report();
	free(r->appendix);
	r->appendix = strdup("PL9");
	uint8_t *buf;
	size_t len;
	/* encode needs the definition: encode as PL3 then patch the name */
	free(r->appendix);
	r->appendix = strdup("PL3");
	r->version = 99;
	assert_int_not_equal(th_wire_encode_submit(1, &r, 1, defs, &buf, &len), 0);
	r->version = def("PL3")->version;
	assert_int_equal(th_wire_encode_submit(1, &r, 1, defs, &buf, &len), 0);
	/* patch "PL3" -> "PL9" in the bytes */
	for (size_t i = 0; i + 3 <= len; i++)
		if (memcmp(buf + i, "PL3", 3) == 0)
			buf[i + 2] = '9';
	th_submit_decoded s;
	const char *why;
	assert_int_equal(th_wire_decode_submit(buf, len, defs, NULL, &s, &why), 0);
	assert_int_equal(s.err[0], TH_EAPPENDIX);
	assert_string_equal(s.appendix[0], "PL9");
	th_submit_decoded_free(&s);
	free(buf);
	th_report_destroy(&r);
}

static void deep_nesting_refused(void **state)
{
	(void)state;
	uint8_t buf[2100];
	size_t n = 0;
	buf[n++] = 0x81;          /* map of 1 */
	buf[n++] = 0xa1; buf[n++] = 'x';
	for (int i = 0; i < 1000; i++)
		buf[n++] = 0x91;      /* array of 1, nested */
	buf[n++] = 0xc0;
	th_msg_type t;
	const char *why = NULL;
	assert_int_equal(th_wire_type(buf, n, &t, &why), TH_EPROTO);
	assert_non_null(why);
}

static void duplicate_keys_refused(void **state)
{
	(void)state;
	const uint8_t msg[] = {0x83, 0xa1, 'v', 0x01, 0xa1, 't', 0xa5, 'h', 'e', 'l', 'l', 'o',
	                       0xa1, 'v', 0x01};
	th_msg_type t;
	const char *why = NULL;
	assert_int_equal(th_wire_type(msg, sizeof msg, &t, &why), TH_EPROTO);
}

static void unknown_fields_ignored(void **state)
{
	(void)state;
	const uint8_t msg[] = {0x84, 0xa1, 'v', 0x01, 0xa1, 't', 0xa5, 'h', 'e', 'l', 'l', 'o',
	                       0xa3, 'z', 'z', 'z', 0x92, 0x01, 0xc0, 0xa4, 'u', 'n', 'i', 't',
	                       0xa3, 'S', 'N', 'V'};
	th_hello h;
	const char *why = NULL;
	assert_int_equal(th_wire_decode_hello(msg, sizeof msg, &h, &why), 0);
	assert_string_equal(h.unit, "SNV");
	th_hello_free(&h);
}

static void wrong_version_refused(void **state)
{
	(void)state;
	const uint8_t msg[] = {0x82, 0xa1, 'v', 0x02, 0xa1, 't', 0xa5, 'h', 'e', 'l', 'l', 'o'};
	th_msg_type t;
	const char *why = NULL;
	assert_int_equal(th_wire_type(msg, sizeof msg, &t, &why), TH_EPROTO);
	assert_non_null(strstr(why, "version"));
}

static void welcome_round_trip(void **state)
{
	(void)state;
	th_welcome w = {0};
	w.id = 4;
	for (int i = 0; i < 16; i++)
		w.store[i] = (uint8_t)i;
	w.unit = "001";
	w.limits = th_limits_default;
	w.limits.max_rows = 123;
	char *dt[] = {def("PL1")->source};
	w.defs = dt;
	w.n_defs = 1;
	th_rev_entry e = {"00001", "PL1", "2021", 99};
	w.revs = &e;
	w.n_revs = 1;
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_welcome(&w, &buf, &len), 0);
	save_corpus("welcome", buf, len);
	th_welcome b;
	const char *why;
	assert_int_equal(th_wire_decode_welcome(buf, len, &b, &why), 0);
	assert_memory_equal(b.store, w.store, 16);
	assert_string_equal(b.unit, "001");
	assert_int_equal(b.limits.max_rows, 123);
	assert_int_equal(b.n_defs, 1);
	th_def *pd = NULL;
	assert_int_equal(th_def_parse(b.defs[0], strlen(b.defs[0]), "wire", &pd, NULL), 0);
	assert_int_equal(pd->n_cols, def("PL1")->n_cols);
	th_def_destroy(&pd);
	assert_int_equal(b.n_revs, 1);
	assert_int_equal(b.revs[0].rev, 99);
	assert_string_equal(b.revs[0].unit, "00001");
	th_welcome_free(&b);
	free(buf);
}

static void ack_round_trip(void **state)
{
	(void)state;
	th_ack a = {0};
	a.id = 8;
	a.commit = 12;
	a.commit_time = 1637000000123456LL;
	th_ack_result r[2] = {{0}, {0}};
	r[0].status = TH_ACK_ACCEPTED;
	r[0].stored_rev = 5;
	r[0].unit = "SNV";
	r[0].appendix = "PL1";
	r[0].period = "2021";
	r[0].rev = 5;
	char *warn[] = {"row 2: trang_thai: warning"};
	r[0].warnings = warn;
	r[0].n_warnings = 1;
	r[1].status = TH_ACK_REJECTED;
	r[1].code = TH_ERULE;
	r[1].message = "rule does not hold";
	r[1].row = 3;
	r[1].column = "ho_so";
	r[1].unit = "SNV";
	r[1].appendix = "PL2";
	r[1].period = "2021";
	a.results = r;
	a.n_results = 2;
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_ack(&a, &buf, &len), 0);
	save_corpus("ack", buf, len);
	th_ack b;
	const char *why;
	assert_int_equal(th_wire_decode_ack(buf, len, &b, &why), 0);
	assert_int_equal(b.commit, 12);
	assert_int_equal(b.commit_time, a.commit_time);
	assert_int_equal(b.n_results, 2);
	assert_int_equal(b.results[0].status, TH_ACK_ACCEPTED);
	assert_int_equal(b.results[0].n_warnings, 1);
	assert_int_equal(b.results[1].status, TH_ACK_REJECTED);
	assert_int_equal(b.results[1].code, TH_ERULE);
	assert_int_equal(b.results[1].row, 3);
	assert_string_equal(b.results[1].column, "ho_so");
	assert_string_equal(b.results[1].message, "rule does not hold");
	th_ack_free(&b);
	free(buf);
}

static void error_round_trip(void **state)
{
	(void)state;
	th_error_msg e = {.id = 3, .code = TH_EAUTH, .message = "no", .retry = 0};
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_error(&e, &buf, &len), 0);
	save_corpus("error", buf, len);
	th_error_msg b;
	const char *why;
	assert_int_equal(th_wire_decode_error(buf, len, &b, &why), 0);
	assert_int_equal(b.code, TH_EAUTH);
	assert_int_equal(b.id, 3);
	th_error_msg_free(&b);
	free(buf);
}

static void too_many_reports(void **state)
{
	(void)state;
	th_report *r = pl3_report();
	th_report *arr[3] = {r, r, r};
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(1, arr, 3, defs, &buf, &len), 0);
	th_limits lim = th_limits_default;
	lim.max_reports = 2;
	th_submit_decoded s;
	const char *why;
	assert_int_equal(th_wire_decode_submit(buf, len, defs, &lim, &s, &why), TH_ETOOBIG);
	lim = th_limits_default;
	lim.max_text = 3;   /* "Hà Nội" is longer */
	assert_int_equal(th_wire_decode_submit(buf, len, defs, &lim, &s, &why), 0);
	assert_int_equal(s.err[0], TH_ETOOBIG);
	th_submit_decoded_free(&s);
	free(buf);
	th_report_destroy(&r);
}

static void too_many_rows(void **state)
{
	(void)state;
	th_report *r = pl3_report();   /* two rows */
	th_report *arr[1] = {r};
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(1, arr, 1, defs, &buf, &len), 0);
	th_limits lim = th_limits_default;
	lim.max_rows = 1;
	th_submit_decoded s;
	const char *why;
	assert_int_equal(th_wire_decode_submit(buf, len, defs, &lim, &s, &why), 0);
	assert_int_equal(s.err[0], TH_ETOOBIG);
	th_submit_decoded_free(&s);
	free(buf);
	th_report_destroy(&r);
}

static void hello_round_trip(void **state)
{
	(void)state;
	th_hello h = {.agent = "tonghop-publish 1.0", .unit = "Sở Nội vụ", .id = 77};
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_hello(&h, &buf, &len), 0);
	th_msg_type t;
	const char *why = NULL;
	assert_int_equal(th_wire_type(buf, len, &t, &why), 0);
	assert_int_equal(t, TH_MSG_HELLO);
	th_hello b;
	assert_int_equal(th_wire_decode_hello(buf, len, &b, &why), 0);
	assert_string_equal(b.agent, h.agent);
	assert_string_equal(b.unit, h.unit);
	assert_int_equal(b.id, 77);
	th_hello_free(&b);
	free(buf);
}

static void mp_cursor_bounds(void **state)
{
	(void)state;
	th_mp m;
	uint32_t n;
	const char *s;
	int64_t i;
	/* str32 claiming 2^32-1 bytes with 2 present */
	const uint8_t big_str[] = {0xdb, 0xff, 0xff, 0xff, 0xff, 'a', 'b'};
	th_mp_init(&m, big_str, sizeof big_str);
	assert_int_equal(th_mp_str(&m, &s, &n), TH_ETRUNC);
	/* map32 claiming 2^31 pairs */
	const uint8_t big_map[] = {0xdf, 0x80, 0x00, 0x00, 0x00, 0xc0, 0xc0};
	th_mp_init(&m, big_map, sizeof big_map);
	assert_int_equal(th_mp_map(&m, &n), TH_ETRUNC);
	/* a float64 is not an int and is not consumed */
	const uint8_t f64[] = {0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0};
	th_mp_init(&m, f64, sizeof f64);
	assert_int_equal(th_mp_peek(&m), TH_MP_FLOAT);
	assert_int_equal(th_mp_int(&m, &i), TH_ETYPE);
	assert_int_equal(th_mp_left(&m), sizeof f64);
	/* uint64 above INT64_MAX does not fit int64 */
	const uint8_t u64[] = {0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	th_mp_init(&m, u64, sizeof u64);
	assert_int_equal(th_mp_int(&m, &i), TH_ERANGE);
	/* negative fixint and int64 minimum */
	const uint8_t neg[] = {0xe0, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0};
	th_mp_init(&m, neg, sizeof neg);
	assert_int_equal(th_mp_int(&m, &i), 0);
	assert_int_equal(i, -32);
	assert_int_equal(th_mp_int(&m, &i), 0);
	assert_true(i == INT64_MIN);
	assert_int_equal(th_mp_left(&m), 0);
}

/* The recursive descent th_mp_skip used to be, written with the typed readers:
 * the reference the one-pass skip must agree with. */
static int ref_skip(th_mp *m, int depth)
{
	if (depth <= 0)
		return TH_EDEPTH;
	int k = th_mp_peek(m);
	if (k < 0)
		return k;
	uint32_t n;
	const char *s;
	const uint8_t *b;
	int rc, x;
	int64_t i;
	uint64_t u;
	switch (k) {
	case TH_MP_NIL: return th_mp_nil(m);
	case TH_MP_BOOL: return th_mp_bool(m, &x);
	case TH_MP_INT:
		rc = th_mp_int(m, &i);
		return rc == TH_ERANGE ? th_mp_uint(m, &u) : rc;
	case TH_MP_STR: return th_mp_str(m, &s, &n);
	case TH_MP_BIN: return th_mp_bin(m, &b, &n);
	case TH_MP_ARRAY:
	case TH_MP_MAP:
		if ((rc = k == TH_MP_ARRAY ? th_mp_array(m, &n) : th_mp_map(m, &n)))
			return rc;
		for (uint64_t j = 0; j < (uint64_t)n * (k == TH_MP_MAP ? 2 : 1); j++)
			if ((rc = ref_skip(m, depth - 1)))
				return rc;
		return 0;
	default: {
		/* float and ext: fixed or explicit lengths */
		static const struct { uint8_t b; int hl, lb, fixed; } t[] = {
			{0xca, 0, 0, 5}, {0xcb, 0, 0, 9}, {0xd4, 0, 0, 3}, {0xd5, 0, 0, 4}, {0xd6, 0, 0, 6},
			{0xd7, 0, 0, 10}, {0xd8, 0, 0, 18}, {0xc7, 3, 1, 0}, {0xc8, 4, 2, 0}, {0xc9, 6, 4, 0}};
		for (size_t j = 0; j < sizeof t / sizeof *t; j++) {
			if (*m->p != t[j].b)
				continue;
			uint64_t need = (uint64_t)t[j].fixed;
			if (!need) {
				if (th_mp_left(m) < (size_t)t[j].hl)
					return TH_ETRUNC;
				uint64_t len = 0;
				for (int q = 0; q < t[j].lb; q++)
					len = len << 8 | m->p[1 + q];
				need = (uint64_t)t[j].hl + len;
			}
			if (th_mp_left(m) < need)
				return TH_ETRUNC;
			m->p += need;
			return 0;
		}
		return TH_ETYPE;
	}
	}
}

/* Random msgpack of every kind, nested up to `nest` deep. */
static void random_item(msgpack_packer *pk, int nest)
{
	static const char bytes[40] = "0123456789abcdefghijklmnopqrstuvwxyzABCD";
	switch (rand() % (nest > 0 ? 12 : 10)) {
	case 0: msgpack_pack_nil(pk); break;
	case 1: rand() % 2 ? msgpack_pack_true(pk) : msgpack_pack_false(pk); break;
	case 2: msgpack_pack_int64(pk, (int64_t)rand() - RAND_MAX / 2); break;
	case 3: msgpack_pack_uint64(pk, (uint64_t)rand() << 40 | (uint64_t)rand()); break;
	case 4: msgpack_pack_double(pk, rand() / 7.0); break;
	case 5: msgpack_pack_float(pk, (float)rand()); break;
	case 6: {
		size_t n = (size_t)(rand() % 3 == 0 ? rand() % 300 : rand() % 40);
		char buf[300];
		for (size_t j = 0; j < n; j++)
			buf[j] = bytes[j % sizeof bytes];
		msgpack_pack_str_with_body(pk, buf, n);
		break;
	}
	case 7: msgpack_pack_bin_with_body(pk, bytes, (size_t)(rand() % 40)); break;
	case 8: {
		static const size_t ext[] = {1, 2, 4, 8, 16, 3, 20, 300};
		size_t n = ext[rand() % 8];
		char buf[300] = {0};
		msgpack_pack_ext_with_body(pk, buf, n, 7);
		break;
	}
	case 9: msgpack_pack_int8(pk, (int8_t)rand()); break;
	case 10: {
		uint32_t n = (uint32_t)(rand() % (rand() % 5 == 0 ? 40 : 5));
		msgpack_pack_array(pk, n);
		for (uint32_t j = 0; j < n; j++)
			random_item(pk, nest - 1);
		break;
	}
	default: {
		uint32_t n = (uint32_t)(rand() % (rand() % 5 == 0 ? 20 : 4));
		msgpack_pack_map(pk, n);
		for (uint32_t j = 0; j < 2 * n; j++)
			random_item(pk, nest - 1);
		break;
	}
	}
}

/* th_mp_skip gives the reference's answer (error code, or the end position) on
 * random well-formed items and on their truncations and byte mutations, at
 * every depth bound. */
static void mp_skip_matches_reference(void **state)
{
	(void)state;
	srand(20261127);
	size_t agreed_ok = 0, agreed_err = 0;
	for (int iter = 0; iter < 3000; iter++) {
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		random_item(&pk, 1 + rand() % 6);
		uint8_t *buf = (uint8_t *)sb.data;
		size_t len = sb.size;
		for (int variant = 0; variant < 6; variant++) {
			size_t l = len;
			if (variant == 1)
				l = len ? (size_t)rand() % len : 0;           /* truncated */
			if (variant >= 2 && len)
				buf[(size_t)rand() % len] = (uint8_t)rand();  /* mutated */
			for (int depth = 0; depth <= 9; depth += 1 + (variant > 1)) {
				th_mp a, b;
				th_mp_init(&a, buf, l);
				th_mp_init(&b, buf, l);
				int ra = th_mp_skip(&a, depth), rb = ref_skip(&b, depth);
				if (ra != rb)
					fail_msg("iter %d variant %d depth %d: skip %d, reference %d", iter, variant,
					         depth, ra, rb);
				if (ra == 0 && a.p != b.p)
					fail_msg("iter %d variant %d depth %d: ends at %td, reference at %td", iter,
					         variant, depth, a.p - buf, b.p - buf);
				ra ? agreed_err++ : agreed_ok++;
			}
		}
		msgpack_sbuffer_destroy(&sb);
	}
	/* both outcomes were exercised plenty */
	assert_true(agreed_ok > 5000);
	assert_true(agreed_err > 5000);
}

/* th_wire_peek_id finds a submit's id wherever it is in the map, and says 0 for
 * anything that is not a map with an unsigned id. */
static void peek_id(void **state)
{
	(void)state;
	th_report *r = th_report_new("SNV", "PL3", def("PL3")->version, "2021", 7, def("PL3")->n_cols);
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(987654321, &r, 1, defs, &buf, &len), 0);
	assert_int_equal(th_wire_peek_id(buf, len), 987654321);
	free(buf);
	th_report_destroy(&r);
	/* id after a field to skip; id as a string; not a map; truncated; empty */
	static const uint8_t late[] = {0x82, 0xa1, 'x', 0x92, 0x01, 0x02, 0xa2, 'i', 'd', 0xcd, 0x30, 0x39};
	assert_int_equal(th_wire_peek_id(late, sizeof late), 12345);
	static const uint8_t str[] = {0x81, 0xa2, 'i', 'd', 0xa1, '5'};
	assert_int_equal(th_wire_peek_id(str, sizeof str), 0);
	static const uint8_t arr[] = {0x91, 0x05};
	assert_int_equal(th_wire_peek_id(arr, sizeof arr), 0);
	assert_int_equal(th_wire_peek_id(late, 5), 0);
	assert_int_equal(th_wire_peek_id(late, 0), 0);
}

/* The query message: every field round-trips (text as bin), a string longer than its
 * field is refused, and a message of another type is not a query. */
static void query_round_trip(void **state)
{
	(void)state;
	th_query q;
	memset(&q, 0, sizeof q);
	q.id = 123456789;
	snprintf(q.q, sizeof q.q, "units_submit");
	snprintf(q.appendix, sizeof q.appendix, "PL1");
	snprintf(q.period, sizeof q.period, "2021-Q3");
	snprintf(q.unit, sizeof q.unit, "SNV");
	snprintf(q.parent, sizeof q.parent, "01");
	q.level = 4;
	snprintf(q.name, sizeof q.name, "vn-2025.units");
	static const char text[] = "@version v\n\0binary\xff";
	q.text = text;
	q.text_len = sizeof text;
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_query(&q, &buf, &len), 0);
	th_msg_type t;
	assert_int_equal(th_wire_type(buf, len, &t, NULL), 0);
	assert_int_equal(t, TH_MSG_QUERY);
	th_query b;
	const char *why = NULL;
	assert_int_equal(th_wire_decode_query(buf, len, &b, &why), 0);
	assert_int_equal(b.id, q.id);
	assert_string_equal(b.q, q.q);
	assert_string_equal(b.appendix, "PL1");
	assert_string_equal(b.period, "2021-Q3");
	assert_string_equal(b.unit, "SNV");
	assert_string_equal(b.parent, "01");
	assert_int_equal(b.level, 4);
	assert_string_equal(b.name, q.name);
	assert_int_equal(b.text_len, sizeof text);
	assert_memory_equal(b.text, text, sizeof text);
	assert_true((const uint8_t *)b.text >= buf && (const uint8_t *)b.text < buf + len);
	for (size_t cut = 0; cut < len; cut++)   /* never past the end */
		assert_int_not_equal(th_wire_decode_query(buf, cut, &b, &why), 0);
	free(buf);
	/* a period longer than any period */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "v", 1); msgpack_pack_uint8(&pk, 1);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "t", 1);
	msgpack_pack_str(&pk, 5); msgpack_pack_str_body(&pk, "query", 5);
	msgpack_pack_str(&pk, 1); msgpack_pack_str_body(&pk, "q", 1);
	msgpack_pack_str(&pk, 4); msgpack_pack_str_body(&pk, "node", 4);
	msgpack_pack_str(&pk, 6); msgpack_pack_str_body(&pk, "period", 6);
	msgpack_pack_str(&pk, 17); msgpack_pack_str_body(&pk, "20210101202101012", 17);
	assert_int_equal(th_wire_decode_query((uint8_t *)sb.data, sb.size, &b, &why), TH_EPROTO);
	assert_string_equal(why, "a field has the wrong type or is too long");
	msgpack_sbuffer_destroy(&sb);
	th_hello h = {.agent = "a", .unit = "", .id = 1};
	assert_int_equal(th_wire_encode_hello(&h, &buf, &len), 0);
	assert_int_equal(th_wire_decode_query(buf, len, &b, &why), TH_EPROTO);
	free(buf);
}

/* The node map: what the rollup stream and the node answers send, back as sent; its
 * required fields; a prefix is never read past. */
static void node_round_trip(void **state)
{
	(void)state;
	int64_t own[3] = {1, INT64_MIN, -7}, total[3] = {5, 0, INT64_MAX};
	th_wire_node n = {.unit = "00037", .name = "Phường Phúc Tân", .appendix = "PL1",
	                  .period = "2021", .level = 4, .version = 9, .commit = 77, .own = own,
	                  .total = total, .n_slots = 3, .expected = 2, .reported = 1, .on_time = 1,
	                  .late = 0, .corrections = 3};
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_node(&n, &buf, &len), 0);
	th_node_msg m;
	const char *why = NULL;
	assert_int_equal(th_wire_decode_node(buf, len, &m, &why), 0);
	assert_string_equal(m.unit, "00037");
	assert_string_equal(m.name, "Phường Phúc Tân");
	assert_string_equal(m.appendix, "PL1");
	assert_string_equal(m.period, "2021");
	assert_int_equal(m.level, 4);
	assert_int_equal(m.version, 9);
	assert_int_equal(m.commit, 77);
	assert_int_equal(m.n_slots, 3);
	assert_memory_equal(m.own, own, sizeof own);
	assert_memory_equal(m.total, total, sizeof total);
	assert_int_equal(m.expected, 2);
	assert_int_equal(m.reported, 1);
	assert_int_equal(m.on_time, 1);
	assert_int_equal(m.late, 0);
	assert_int_equal(m.corrections, 3);
	th_node_msg_free(&m);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *part = malloc(cut ? cut : 1);
		memcpy(part, buf, cut);
		assert_int_not_equal(th_wire_decode_node(part, cut, &m, &why), 0);
		free(part);
	}
	free(buf);
	/* own and total of different lengths; a map without its unit */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str(&pk, 3); msgpack_pack_str_body(&pk, "own", 3);
	msgpack_pack_array(&pk, 1); msgpack_pack_int(&pk, 1);
	msgpack_pack_str(&pk, 5); msgpack_pack_str_body(&pk, "total", 5);
	msgpack_pack_array(&pk, 2); msgpack_pack_int(&pk, 1); msgpack_pack_int(&pk, 2);
	assert_int_equal(th_wire_decode_node((uint8_t *)sb.data, sb.size, &m, &why), TH_EPROTO);
	msgpack_sbuffer_destroy(&sb);
}

/* A result: its envelope, its fields in order; a refusal: reason and message. */
static void result_and_refusal(void **state)
{
	(void)state;
	th_result *r = th_result_new(42);
	th_result_str(r, "appendix", "PL2");
	th_result_uint(r, "version", 3);
	th_wire_list *l = th_wire_list_new();
	th_wire_list_str(l, "a");
	th_wire_list_str(l, "b");
	assert_int_equal(th_wire_list_count(l), 2);
	th_result_list(r, "problems", l);
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_result_finish(r, &buf, &len), 0);
	th_result_destroy(&r);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, len, NULL), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
	assert_int_equal(u.data.via.map.size, 7);
	const char *keys[] = {"v", "t", "id", "ok", "appendix", "version", "problems"};
	for (int i = 0; i < 7; i++) {
		const msgpack_object *k = &u.data.via.map.ptr[i].key;
		assert_int_equal(k->via.str.size, strlen(keys[i]));
		assert_memory_equal(k->via.str.ptr, keys[i], strlen(keys[i]));
	}
	assert_true(u.data.via.map.ptr[3].val.via.boolean);
	assert_int_equal(u.data.via.map.ptr[2].val.via.u64, 42);
	assert_int_equal(u.data.via.map.ptr[6].val.via.array.size, 2);
	msgpack_unpacked_destroy(&u);
	free(buf);
	assert_int_equal(th_wire_encode_refusal(9, TH_EPERIOD, NULL, l, &buf, &len), 0);
	th_wire_list_destroy(&l);
	assert_null(l);
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)buf, len, NULL), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(u.data.via.map.size, 7);
	assert_false(u.data.via.map.ptr[3].val.via.boolean);
	const msgpack_object *reason = &u.data.via.map.ptr[4].val, *msg = &u.data.via.map.ptr[5].val;
	assert_int_equal(reason->via.str.size, strlen("period"));
	assert_memory_equal(reason->via.str.ptr, "period", 6);
	assert_int_equal(msg->via.str.size, strlen(th_strerror(TH_EPERIOD)));
	msgpack_unpacked_destroy(&u);
	free(buf);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(submit_round_trip),
		cmocka_unit_test(every_pl1_type_and_null),
		cmocka_unit_test(truncated_everywhere),
		cmocka_unit_test(huge_claimed_array),
		cmocka_unit_test(per_report_errors),
		cmocka_unit_test(unknown_appendix_and_version),
		cmocka_unit_test(deep_nesting_refused),
		cmocka_unit_test(duplicate_keys_refused),
		cmocka_unit_test(unknown_fields_ignored),
		cmocka_unit_test(wrong_version_refused),
		cmocka_unit_test(welcome_round_trip),
		cmocka_unit_test(ack_round_trip),
		cmocka_unit_test(error_round_trip),
		cmocka_unit_test(too_many_reports),
		cmocka_unit_test(too_many_rows),
		cmocka_unit_test(hello_round_trip),
		cmocka_unit_test(mp_cursor_bounds),
		cmocka_unit_test(mp_skip_matches_reference),
		cmocka_unit_test(peek_id),
		cmocka_unit_test(query_round_trip),
		cmocka_unit_test(node_round_trip),
		cmocka_unit_test(result_and_refusal),
	};
	def("PL1");
	int rc = TH_RUN_TESTS(tests, argc, argv);
	th_defset_destroy(&defs);
	return rc;
}

/* it_hostile.c -- hostile input against a live collector with CURVE: every attack gets
 * its error reply or per-report rejection, the collector keeps serving, and the stored
 * data (node, report and history queries of every unit) is byte-identical afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "collector_fixture.h"
#include "testutil.h"
#include "th_mp.h"
#include <msgpack.h>
#include "th_wire.h"

/* Every case runs against a fresh collector taking at most 4 submits in flight per
 * connection. */
static int setup(void **state)
{
	static const char *const extra[] = {"--max-inflight", "4", NULL};
	return cf_setup_with(state, extra);
}

/* The same with at most 2 live connections per key. */
static int setup_two_conns(void **state)
{
	static const char *const extra[] = {"--max-inflight", "4", "--max-conns-per-key", "2", NULL};
	return cf_setup_with(state, extra);
}

/* --- raw messages ---------------------------------------------------------------- */

typedef struct {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} mp;

static void mp_init(mp *m)
{
	msgpack_sbuffer_init(&m->sb);
	msgpack_packer_init(&m->pk, &m->sb, msgpack_sbuffer_write);
}

static void mp_str(mp *m, const char *s)
{
	msgpack_pack_str(&m->pk, strlen(s));
	msgpack_pack_str_body(&m->pk, s, strlen(s));
}

static void mp_strn(mp *m, const char *s, size_t n)
{
	msgpack_pack_str(&m->pk, n);
	msgpack_pack_str_body(&m->pk, s, n);
}

/* {v:1, t:"submit", id, reports:[ ...n ]} (+extra top-level keys the caller packs after). */
static void mp_submit(mp *m, uint64_t id, uint32_t n_reports, uint32_t extra)
{
	msgpack_pack_map(&m->pk, 4 + extra);
	mp_str(m, "v");
	msgpack_pack_uint8(&m->pk, 1);
	mp_str(m, "t");
	mp_str(m, "submit");
	mp_str(m, "id");
	msgpack_pack_uint64(&m->pk, id);
	mp_str(m, "reports");
	msgpack_pack_array(&m->pk, n_reports);
}

/* One valid PL3 row (area 0, task, planned = done + a + b). */
static void mp_row(cf_fixture *f, mp *m, const char *task, int64_t done, int64_t a, int64_t b)
{
	const th_def *d = th_defset_latest(f->defs, "PL3");
	msgpack_pack_array(&m->pk, d->n_cols);
	for (size_t c = 0; c < d->n_cols; c++) {
		const char *id = d->cols[c].id;
		if (!strcmp(id, "linh_vuc"))
			mp_str(m, d->cols[c].values[0].code);
		else if (!strcmp(id, "ma_nhiem_vu"))
			mp_str(m, task);
		else if (!strcmp(id, "so_nhiem_vu_ke_hoach"))
			msgpack_pack_int64(&m->pk, done + a + b);
		else if (!strcmp(id, "da_hoan_thanh"))
			msgpack_pack_int64(&m->pk, done);
		else if (!strcmp(id, "dang_thuc_hien"))
			msgpack_pack_int64(&m->pk, a);
		else if (!strcmp(id, "chua_thuc_hien"))
			msgpack_pack_int64(&m->pk, b);
		else
			msgpack_pack_nil(&m->pk);
	}
}

/* The head of a PL3 report map for unit/2021 with n_more further keys after rev; the
 * caller packs those keys (normally "rows"). */
static void mp_report_head(cf_fixture *f, mp *m, const char *unit, uint64_t rev, uint32_t n_more)
{
	const th_def *d = th_defset_latest(f->defs, "PL3");
	msgpack_pack_map(&m->pk, 5 + n_more);
	mp_str(m, "unit");
	mp_str(m, unit);
	mp_str(m, "appendix");
	mp_str(m, "PL3");
	mp_str(m, "version");
	msgpack_pack_uint32(&m->pk, d->version);
	mp_str(m, "period");
	mp_str(m, "2021");
	mp_str(m, "rev");
	msgpack_pack_uint64(&m->pk, rev);
}

typedef struct {
	int error;              /* 1: an error reply refused the whole message */
	int code;               /* its code, or the first result's */
	th_ack_status status;   /* first result's status (acks) */
	long row;
	char column[64];
	char message[256];
	uint64_t id;            /* the id the reply answers */
} outcome;

static int got_reply(void *s, int ms, outcome *o)
{
	memset(o, 0, sizeof *o);
	zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
	if (zmq_poll(&it, 1, ms) <= 0)
		return 0;
	zmq_msg_t m;
	zmq_msg_init(&m);
	assert_true(zmq_msg_recv(&m, s, 0) >= 0);
	const uint8_t *rep = zmq_msg_data(&m);
	size_t rlen = zmq_msg_size(&m);
	const char *why = NULL;
	th_error_msg e;
	th_ack a;
	if (th_wire_decode_error(rep, rlen, &e, &why) == 0) {
		o->error = 1;
		o->code = e.code;
		o->id = e.id;
		snprintf(o->message, sizeof o->message, "%s", e.message ? e.message : "");
		th_error_msg_free(&e);
	} else {
		assert_int_equal(th_wire_decode_ack(rep, rlen, &a, &why), 0);
		assert_true(a.n_results >= 1);
		o->id = a.id;
		o->status = a.results[0].status;
		o->code = a.results[0].code;
		o->row = a.results[0].row;
		snprintf(o->column, sizeof o->column, "%s", a.results[0].column ? a.results[0].column : "");
		snprintf(o->message, sizeof o->message, "%s",
		         a.results[0].message ? a.results[0].message : "");
		th_ack_free(&a);
	}
	zmq_msg_close(&m);
	return 1;
}

static outcome send_raw(void *s, const void *buf, size_t len)
{
	outcome o;
	assert_true(zmq_send(s, buf, len, 0) >= 0);
	assert_true(got_reply(s, 10000, &o));
	print_message("  -> %s %s: %s\n", o.error ? "error" : "ack", th_errname(o.code), o.message);
	return o;
}

static outcome send_mp(void *s, mp *m)
{
	outcome o = send_raw(s, m->sb.data, m->sb.size);
	msgpack_sbuffer_destroy(&m->sb);
	return o;
}

/* A refusal: an error reply with code, or a rejected result with code. */
static void assert_refused(const outcome *o, int code)
{
	if (!o->error)
		assert_int_equal(o->status, TH_ACK_REJECTED);
	assert_int_equal(o->code, code);
}

/* --- helpers -------------------------------------------------------------------- */

/* Seeds SNV and C1 so that the snapshot has content; returns it in before. */
static void seed(cf_fixture *f, msgpack_sbuffer *before)
{
	void *s = cf_dealer(f, f->ingest, &f->snv), *d = cf_dealer(f, f->ingest, &f->d1);
	th_report *a = cf_pl3(f, "SNV", 10, 3, 1, 1), *b = cf_pl3(f, "C1", 10, 2, 0, 1);
	assert_int_equal(cf_submit_status(f, s, a, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(cf_submit_status(f, d, b, NULL), TH_ACK_ACCEPTED);
	th_report_destroy(&a);
	th_report_destroy(&b);
	zmq_close(s);
	zmq_close(d);
	cf_snapshot(f, before);
}

/* The collector still serves: a hello from another key is welcomed. */
static void still_serving(cf_fixture *f)
{
	void *s = cf_dealer(f, f->ingest, &f->d1);
	th_welcome w;
	assert_int_equal(cf_hello(s, &w, NULL), 0);
	th_welcome_free(&w);
	zmq_close(s);
}

/* Seeds the store, takes the snapshot into before and returns an SNV connection. */
static void *attack_begin(cf_fixture *f, msgpack_sbuffer *before)
{
	seed(f, before);
	return cf_dealer(f, f->ingest, &f->snv);
}

/* The stored data is unchanged, another agent is still served; frees before, closes s. */
static void attack_end(cf_fixture *f, msgpack_sbuffer *before, void *s)
{
	cf_assert_same_snapshot(f, before);
	still_serving(f);
	msgpack_sbuffer_destroy(before);
	zmq_close(s);
}

/* An SNV report at rev that breaks PL3's rule (done 99 of planned 7): rejected. */
static th_report *rule_broken(cf_fixture *f, uint64_t rev)
{
	th_report *r = cf_pl3(f, "SNV", rev, 5, 1, 1);
	const th_def *d = th_defset_latest(f->defs, "PL3");
	th_report_cell(r, 0, (size_t)th_def_column(d, "da_hoan_thanh"))->i = 99;
	return r;
}

/* A valid submit of one SNV report at rev (not sent). */
static void valid_submit(cf_fixture *f, uint64_t rev, uint8_t **buf, size_t *len)
{
	th_report *r = cf_pl3(f, "SNV", rev, 9, 0, 0);
	assert_int_equal(th_wire_encode_submit(77, &r, 1, f->defs, buf, len), 0);
	th_report_destroy(&r);
}

/* --- cases ------------------------------------------------------------------------- */

static void truncated_frames(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	uint8_t *buf;
	size_t len;
	valid_submit(f, 20, &buf, &len);
	size_t cuts[] = {1, 2, len / 3, len / 2, len - 1};
	for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
		outcome o = send_raw(s, buf, cuts[i]);
		assert_true(o.error);
		assert_int_equal(o.code, TH_EPROTO);
	}
	outcome o = send_raw(s, "", 0);   /* a missing (empty) body */
	assert_true(o.error);
	assert_int_equal(o.code, TH_EPROTO);
	free(buf);
	attack_end(f, &before, s);
}

static void extra_frames(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	uint8_t *buf;
	size_t len;
	valid_submit(f, 21, &buf, &len);
	assert_true(zmq_send(s, buf, len, ZMQ_SNDMORE) >= 0);
	assert_true(zmq_send(s, "x", 1, ZMQ_SNDMORE) >= 0);
	outcome o = send_raw(s, buf, len);   /* a valid submit as the third frame */
	assert_true(o.error);
	assert_int_equal(o.code, TH_EPROTO);
	free(buf);
	attack_end(f, &before, s);
}

static void wrong_types(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	mp m;
	/* id as a string */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_str(&m, "v"); msgpack_pack_uint8(&m.pk, 1);
	mp_str(&m, "t"); mp_str(&m, "submit");
	mp_str(&m, "id"); mp_str(&m, "seven");
	mp_str(&m, "reports"); msgpack_pack_array(&m.pk, 0);
	outcome o = send_mp(s, &m);
	assert_true(o.error);
	assert_int_equal(o.code, TH_EPROTO);
	/* reports as a map */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 4);
	mp_str(&m, "v"); msgpack_pack_uint8(&m.pk, 1);
	mp_str(&m, "t"); mp_str(&m, "submit");
	mp_str(&m, "id"); msgpack_pack_uint8(&m.pk, 1);
	mp_str(&m, "reports"); msgpack_pack_map(&m.pk, 0);
	o = send_mp(s, &m);
	assert_true(o.error);
	assert_int_equal(o.code, TH_EPROTO);
	/* t as an integer */
	mp_init(&m);
	msgpack_pack_map(&m.pk, 2);
	mp_str(&m, "v"); msgpack_pack_uint8(&m.pk, 1);
	mp_str(&m, "t"); msgpack_pack_uint8(&m.pk, 3);
	o = send_mp(s, &m);
	assert_true(o.error);
	assert_int_equal(o.code, TH_EPROTO);
	/* unit as an integer */
	mp_init(&m);
	mp_submit(&m, 2, 1, 0);
	msgpack_pack_map(&m.pk, 6);
	mp_str(&m, "unit"); msgpack_pack_uint8(&m.pk, 5);
	mp_str(&m, "appendix"); mp_str(&m, "PL3");
	mp_str(&m, "version"); msgpack_pack_uint32(&m.pk, th_defset_latest(f->defs, "PL3")->version);
	mp_str(&m, "period"); mp_str(&m, "2021");
	mp_str(&m, "rev"); msgpack_pack_uint8(&m.pk, 30);
	mp_str(&m, "rows"); msgpack_pack_array(&m.pk, 1); mp_row(f, &m, "T1", 1, 0, 0);
	o = send_mp(s, &m);
	assert_refused(&o, TH_ETYPE);
	/* rev as a string */
	mp_init(&m);
	mp_submit(&m, 3, 1, 0);
	msgpack_pack_map(&m.pk, 6);
	mp_str(&m, "unit"); mp_str(&m, "SNV");
	mp_str(&m, "appendix"); mp_str(&m, "PL3");
	mp_str(&m, "version"); msgpack_pack_uint32(&m.pk, th_defset_latest(f->defs, "PL3")->version);
	mp_str(&m, "period"); mp_str(&m, "2021");
	mp_str(&m, "rev"); mp_str(&m, "31");
	mp_str(&m, "rows"); msgpack_pack_array(&m.pk, 1); mp_row(f, &m, "T1", 1, 0, 0);
	o = send_mp(s, &m);
	assert_refused(&o, TH_ETYPE);
	/* rows as a map */
	mp_init(&m);
	mp_submit(&m, 4, 1, 0);
	mp_report_head(f, &m, "SNV", 32, 1);
	mp_str(&m, "rows"); msgpack_pack_map(&m.pk, 0);
	o = send_mp(s, &m);
	assert_refused(&o, TH_ETYPE);
	/* a string where an integer cell goes */
	mp_init(&m);
	mp_submit(&m, 5, 1, 0);
	mp_report_head(f, &m, "SNV", 33, 1);
	mp_str(&m, "rows");
	msgpack_pack_array(&m.pk, 1);
	{
		const th_def *d = th_defset_latest(f->defs, "PL3");
		msgpack_pack_array(&m.pk, d->n_cols);
		for (size_t c = 0; c < d->n_cols; c++)
			if (!strcmp(d->cols[c].id, "ma_nhiem_vu"))
				mp_str(&m, "T1");
			else
				mp_str(&m, "12");
	}
	o = send_mp(s, &m);
	assert_refused(&o, TH_ERANGE);
	/* a row with too few cells */
	mp_init(&m);
	mp_submit(&m, 6, 1, 0);
	mp_report_head(f, &m, "SNV", 34, 1);
	mp_str(&m, "rows");
	msgpack_pack_array(&m.pk, 1);
	msgpack_pack_array(&m.pk, 1);
	msgpack_pack_int8(&m.pk, 1);
	o = send_mp(s, &m);
	assert_refused(&o, TH_ETYPE);
	attack_end(f, &before, s);
}

static void huge_claimed_lengths(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	/* a str32 claiming 4 GiB as a key; an array32 of 4G reports; a map32 of 4G keys */
	const uint8_t a[] = {0x84, 0xa1, 'v', 0x01, 0xa1, 't', 0xa6, 's', 'u', 'b', 'm', 'i', 't',
	                     0xdb, 0xff, 0xff, 0xff, 0xff, 'i', 'd'};
	const uint8_t b[] = {0x84, 0xa1, 'v', 0x01, 0xa1, 't', 0xa6, 's', 'u', 'b', 'm', 'i', 't',
	                     0xa2, 'i', 'd', 0x01, 0xa7, 'r', 'e', 'p', 'o', 'r', 't', 's',
	                     0xdd, 0xff, 0xff, 0xff, 0xff};
	const uint8_t c[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01};
	const uint8_t d[] = {0x84, 0xa1, 'v', 0x01, 0xa1, 't', 0xa6, 's', 'u', 'b', 'm', 'i', 't',
	                     0xa2, 'i', 'd', 0x01, 0xa7, 'r', 'e', 'p', 'o', 'r', 't', 's',
	                     0x91, 0xc6, 0x7f, 0xff, 0xff, 0xff};   /* bin32 of 2 GiB as a report */
	const uint8_t *msgs[] = {a, b, c, d};
	size_t lens[] = {sizeof a, sizeof b, sizeof c, sizeof d};
	for (int i = 0; i < 4; i++) {
		outcome o = send_raw(s, msgs[i], lens[i]);
		assert_true(o.error);
		assert_true(o.code == TH_EPROTO || o.code == TH_ETOOBIG);
	}
	attack_end(f, &before, s);
}

/* A report for SNV whose text cell (ma_nhiem_vu) is text[0..n) and unit/period are given. */
static outcome send_text_report(cf_fixture *f, void *s, const char *unit, const char *period,
                                const char *text, size_t n, uint64_t rev)
{
	mp m;
	mp_init(&m);
	mp_submit(&m, rev, 1, 0);
	msgpack_pack_map(&m.pk, 6);
	mp_str(&m, "unit"); mp_str(&m, unit);
	mp_str(&m, "appendix"); mp_str(&m, "PL3");
	mp_str(&m, "version"); msgpack_pack_uint32(&m.pk, th_defset_latest(f->defs, "PL3")->version);
	mp_str(&m, "period"); mp_str(&m, period);
	mp_str(&m, "rev"); msgpack_pack_uint64(&m.pk, rev);
	mp_str(&m, "rows");
	msgpack_pack_array(&m.pk, 1);
	const th_def *d = th_defset_latest(f->defs, "PL3");
	msgpack_pack_array(&m.pk, d->n_cols);
	for (size_t c = 0; c < d->n_cols; c++) {
		const char *id = d->cols[c].id;
		if (!strcmp(id, "linh_vuc"))
			mp_str(&m, d->cols[c].values[0].code);
		else if (!strcmp(id, "ma_nhiem_vu"))
			mp_strn(&m, text, n);
		else if (!strcmp(id, "so_nhiem_vu_ke_hoach") || !strcmp(id, "da_hoan_thanh"))
			msgpack_pack_int64(&m.pk, 1);
		else if (!strcmp(id, "dang_thuc_hien") || !strcmp(id, "chua_thuc_hien"))
			msgpack_pack_int64(&m.pk, 0);
		else
			msgpack_pack_nil(&m.pk);
	}
	return send_mp(s, &m);
}

static void invalid_utf8(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	outcome o = send_text_report(f, s, "SN\xff", "2021", "T1", 2, 40);     /* unit */
	assert_refused(&o, TH_EUTF8);
	o = send_text_report(f, s, "SNV", "20\xc3", "T1", 2, 41);              /* period */
	assert_refused(&o, TH_EUTF8);
	o = send_text_report(f, s, "SNV", "2021", "T\xc0\xaf", 3, 42);         /* overlong in text */
	assert_refused(&o, TH_EUTF8);
	o = send_text_report(f, s, "SNV", "2021", "T\xed\xa0\x80", 4, 43);     /* surrogate */
	assert_refused(&o, TH_EUTF8);
	o = send_text_report(f, s, "SNV", "2021", "T1\0x", 4, 44);             /* NUL inside */
	assert_refused(&o, TH_EUTF8);
	attack_end(f, &before, s);
}

static void megabyte_string(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	size_t n = 1u << 20;
	char *big = malloc(n);
	memset(big, 'a', n);
	outcome o = send_text_report(f, s, "SNV", "2021", big, n, 50);
	free(big);
	assert_refused(&o, TH_ETOOBIG);
	attack_end(f, &before, s);
}

static void nan_where_numbers_go(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	const th_def *d = th_defset_latest(f->defs, "PL3");
	double bad[] = {0.0 / 0.0, 1.0 / 0.0, -1.0 / 0.0, 2.5};
	for (int k = 0; k < 4; k++) {
		/* as a count cell */
		mp m;
		mp_init(&m);
		mp_submit(&m, 60 + (uint64_t)k, 1, 0);
		mp_report_head(f, &m, "SNV", 60 + (uint64_t)k, 1);
		mp_str(&m, "rows");
		msgpack_pack_array(&m.pk, 1);
		msgpack_pack_array(&m.pk, d->n_cols);
		for (size_t c = 0; c < d->n_cols; c++) {
			const char *id = d->cols[c].id;
			if (!strcmp(id, "linh_vuc"))
				mp_str(&m, d->cols[c].values[0].code);
			else if (!strcmp(id, "ma_nhiem_vu"))
				mp_str(&m, "T1");
			else if (!strcmp(id, "da_hoan_thanh"))
				msgpack_pack_double(&m.pk, bad[k]);
			else if (d->cols[c].type == TH_T_INT)
				msgpack_pack_int64(&m.pk, 0);
			else
				msgpack_pack_nil(&m.pk);
		}
		outcome o = send_mp(s, &m);
		assert_refused(&o, TH_ETYPE);
		/* as the rev */
		mp_init(&m);
		mp_submit(&m, 70 + (uint64_t)k, 1, 0);
		msgpack_pack_map(&m.pk, 6);
		mp_str(&m, "unit"); mp_str(&m, "SNV");
		mp_str(&m, "appendix"); mp_str(&m, "PL3");
		mp_str(&m, "version"); msgpack_pack_uint32(&m.pk, d->version);
		mp_str(&m, "period"); mp_str(&m, "2021");
		mp_str(&m, "rev"); msgpack_pack_double(&m.pk, bad[k]);
		mp_str(&m, "rows"); msgpack_pack_array(&m.pk, 1); mp_row(f, &m, "T1", 1, 0, 0);
		o = send_mp(s, &m);
		assert_refused(&o, TH_ETYPE);
	}
	attack_end(f, &before, s);
}

static void negative_counts(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	th_report *r = cf_pl3(f, "SNV", 80, -1, 2, 0);   /* rule holds (1 = -1 + 2), min=0 does not */
	th_ack a;
	cf_submit(f, s, r, &a);
	assert_int_equal(a.results[0].status, TH_ACK_REJECTED);
	assert_int_equal(a.results[0].code, TH_ERANGE);
	assert_int_equal(a.results[0].row, 1);
	assert_non_null(a.results[0].column);
	assert_string_equal(a.results[0].column, "da_hoan_thanh");
	th_ack_free(&a);
	th_report_destroy(&r);
	cf_assert_same_snapshot(f, &before);
	msgpack_sbuffer_destroy(&before);
	zmq_close(s);
}

static void hundred_thousand_rows(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	mp m;
	mp_init(&m);
	mp_submit(&m, 90, 1, 0);
	mp_report_head(f, &m, "SNV", 90, 1);
	mp_str(&m, "rows");
	msgpack_pack_array(&m.pk, 100000);
	for (int i = 0; i < 100000; i++) {
		char task[16];
		snprintf(task, sizeof task, "T%d", i);
		mp_row(f, &m, task, 1, 0, 0);
	}
	outcome o = send_mp(s, &m);
	assert_refused(&o, TH_ETOOBIG);
	attack_end(f, &before, s);
}

static void deeply_nested(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	/* 10000 nested maps as an unknown top-level field, then as a cell */
	mp m;
	mp_init(&m);
	mp_submit(&m, 100, 0, 1);
	mp_str(&m, "deep");
	for (int i = 0; i < 10000; i++) {
		msgpack_pack_map(&m.pk, 1);
		mp_str(&m, "k");
	}
	msgpack_pack_nil(&m.pk);
	outcome o = send_mp(s, &m);
	assert_true(o.error);
	assert_true(o.code == TH_EPROTO || o.code == TH_EDEPTH);
	mp_init(&m);
	mp_submit(&m, 101, 1, 0);
	mp_report_head(f, &m, "SNV", 101, 1);
	mp_str(&m, "rows");
	msgpack_pack_array(&m.pk, 1);
	for (int i = 0; i < 10000; i++)
		msgpack_pack_array(&m.pk, 1);
	msgpack_pack_nil(&m.pk);
	o = send_mp(s, &m);
	assert_refused(&o, TH_EPROTO);
	attack_end(f, &before, s);
}

static void duplicate_map_keys(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	/* "unit" twice: SNV (in scope) then R (out of scope) -- must not be half-applied */
	mp m;
	mp_init(&m);
	mp_submit(&m, 110, 1, 0);
	mp_report_head(f, &m, "SNV", 110, 2);
	mp_str(&m, "unit"); mp_str(&m, "R");
	mp_str(&m, "rows"); msgpack_pack_array(&m.pk, 1); mp_row(f, &m, "T1", 1, 0, 0);
	outcome o = send_mp(s, &m);
	assert_refused(&o, TH_EPROTO);
	/* "id" twice at the top */
	mp_init(&m);
	mp_submit(&m, 111, 0, 1);
	mp_str(&m, "id"); msgpack_pack_uint8(&m.pk, 112);
	o = send_mp(s, &m);
	assert_true(o.error);
	assert_int_equal(o.code, TH_EPROTO);
	attack_end(f, &before, s);
}

static void unknown_fields_ignored(void **state)
{
	cf_fixture *f = *state;
	void *s = cf_dealer(f, f->ingest, &f->snv);
	mp m;
	mp_init(&m);
	mp_submit(&m, 120, 1, 1);
	mp_report_head(f, &m, "SNV", 120, 2);
	mp_str(&m, "rows"); msgpack_pack_array(&m.pk, 1); mp_row(f, &m, "T1", 6, 0, 0);
	mp_str(&m, "x-future"); msgpack_pack_array(&m.pk, 2); msgpack_pack_nil(&m.pk); mp_str(&m, "?");
	mp_str(&m, "x-top"); msgpack_pack_map(&m.pk, 1); mp_str(&m, "a"); msgpack_pack_true(&m.pk);
	outcome o = send_mp(s, &m);
	assert_false(o.error);
	assert_int_equal(o.status, TH_ACK_ACCEPTED);
	assert_int_equal(cf_query_total(f, "SNV", "da_hoan_thanh", NULL), 6);
	zmq_close(s);
}

static void replay_under_other_key(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	seed(f, &before);
	/* SNV's own message (a new rev), captured and sent by SNVX and by C1 */
	uint8_t *buf;
	size_t len;
	valid_submit(f, 130, &buf, &len);
	void *x = cf_dealer(f, f->ingest, &f->snvx), *c = cf_dealer(f, f->ingest, &f->c1);
	outcome o = send_raw(x, buf, len);
	assert_refused(&o, TH_ESCOPE);
	o = send_raw(c, buf, len);
	assert_refused(&o, TH_ESCOPE);
	/* and a reader key may not submit at all */
	void *r = cf_dealer(f, f->ingest, &f->reader);
	o = send_raw(r, buf, len);
	assert_refused(&o, TH_EAUTH);
	free(buf);
	cf_assert_same_snapshot(f, &before);
	msgpack_sbuffer_destroy(&before);
	zmq_close(x);
	zmq_close(c);
	zmq_close(r);
}

/* 2000 submits from SNV without waiting (all refused by validation, or beyond
 * --max-inflight 4 in one group: retry_later "too many in flight"), while D1 keeps being
 * served: every flood message is answered, D1's report is accepted. */
static void flood_from_one_key(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	int hwm = 0;
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
	th_report *bad = rule_broken(f, 140);
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(1, &bad, 1, f->defs, &buf, &len), 0);
	enum { N = 2000 };
	for (int i = 0; i < N; i++)
		assert_true(zmq_send(s, buf, len, 0) >= 0);
	free(buf);
	void *d1 = cf_dealer(f, f->ingest, &f->d1);
	th_report *ok = cf_pl3(f, "C2", 5, 1, 0, 0);
	msgpack_sbuffer mid;
	cf_snapshot(f, &mid);   /* the queries are served during the flood as well */
	msgpack_sbuffer_destroy(&mid);
	int answered = 0, other = 0, busy = 0;
	for (; answered < N; answered++) {
		outcome o;
		if (!got_reply(s, 10000, &o))
			break;
		if (o.error && o.code == TH_EBUSY && strstr(o.message, "in flight"))
			busy++;
		else if (o.error || o.status != TH_ACK_REJECTED || o.code != TH_ERULE)
			other++;
	}
	assert_int_equal(answered, N);
	assert_int_equal(other, 0);   /* each one rejected by its rule, or "too many in flight" */
	print_message("flood: %d of %d refused as too many in flight\n", busy, N);
	cf_assert_same_snapshot(f, &before);
	assert_int_equal(cf_submit_status(f, d1, ok, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(cf_query_total(f, "C2", "da_hoan_thanh", NULL), 1);
	th_report_destroy(&bad);
	th_report_destroy(&ok);
	msgpack_sbuffer_destroy(&before);
	zmq_close(s);
	zmq_close(d1);
}

/* A frame over max_msg_bytes (8 MiB): libzmq drops the connection without a reply. */
static void frame_over_max_size(void **state)
{
	cf_fixture *f = *state;
	msgpack_sbuffer before;
	void *s = attack_begin(f, &before);
	size_t n = (9u << 20);
	uint8_t *big = calloc(1, n);
	big[0] = 0xc4;   /* whatever: it is never parsed */
	assert_true(zmq_send(s, big, n, 0) >= 0);
	free(big);
	outcome o;
	assert_false(got_reply(s, 2000, &o));
	attack_end(f, &before, s);
}

/* A hello on a new connection of key k is welcomed. */
static void *welcomed(cf_fixture *f, const cf_keypair *k)
{
	void *s = cf_dealer(f, f->ingest, k);
	th_welcome w;
	assert_int_equal(cf_hello(s, &w, NULL), 0);
	th_welcome_free(&w);
	return s;
}

/* The error a hello on s gets: "too many connections for this key", retry later. */
static void assert_conn_refused(void *s)
{
	th_welcome w;
	th_error_msg e;
	int rc = cf_hello(s, &w, &e);
	assert_true(rc != 0 && rc != -1);   /* an answer, not a welcome */
	assert_int_equal(e.code, TH_EBUSY);
	assert_true(e.retry);
	assert_non_null(strstr(e.message, "too many connections for this key"));
	th_error_msg_free(&e);
}

/* --max-conns-per-key 2: a third live connection of SNV is refused with retry_later (and
 * counted) while D1 is served; once one of the two closes, the third is admitted. */
static void connections_per_key_limited(void **state)
{
	cf_fixture *f = *state;
	void *a = welcomed(f, &f->snv), *b = welcomed(f, &f->snv);
	void *c = cf_dealer(f, f->ingest, &f->snv);
	assert_conn_refused(c);
	uint64_t refused = 1;
	assert_conn_refused(c);   /* checked again at its next message */
	refused++;
	void *d = welcomed(f, &f->d1);
	assert_int_equal(cf_stat(f, "conns_refused"), refused);
	zmq_close(a);
	int admitted = 0;
	for (int i = 0; i < 50 && !admitted; i++) {
		th_welcome w;
		th_error_msg e;
		int rc = cf_hello(c, &w, &e);
		if (rc == 0) {
			th_welcome_free(&w);
			admitted = 1;
		} else {
			assert_true(rc != -1);
			assert_int_equal(e.code, TH_EBUSY);
			th_error_msg_free(&e);
			refused++;
			usleep(100000);
		}
	}
	assert_true(admitted);
	assert_int_equal(cf_stat(f, "conns_refused"), refused);
	assert_true(cf_stat(f, "ingest_disconnects") >= 1);
	/* the admitted connection submits normally */
	th_report *r = cf_pl3(f, "SNV", 5, 1, 0, 0);
	assert_int_equal(cf_submit_status(f, c, r, NULL), TH_ACK_ACCEPTED);
	th_report_destroy(&r);
	zmq_close(b);
	zmq_close(c);
	zmq_close(d);
}

/* 64 submits queued on one connection while the collector is stopped (SIGSTOP) arrive
 * together at SIGCONT: those beyond --max-inflight 4 in a group are refused with "too
 * many in flight", and the stats query counts exactly those. */
static void inflight_refused_counted(void **state)
{
	cf_fixture *f = *state;
	assert_int_equal(cf_stat(f, "inflight_refused"), 0);
	void *s = welcomed(f, &f->snv);
	th_report *bad = rule_broken(f, 150);
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(4242, &bad, 1, f->defs, &buf, &len), 0);
	enum { N = 64 };
	assert_int_equal(kill(f->pid, SIGSTOP), 0);
	for (int i = 0; i < N; i++)
		assert_true(zmq_send(s, buf, len, 0) >= 0);
	usleep(300000);   /* into the collector's socket buffer */
	assert_int_equal(kill(f->pid, SIGCONT), 0);
	free(buf);
	uint64_t busy = 0;
	for (int i = 0; i < N; i++) {
		outcome o;
		assert_true(got_reply(s, 10000, &o));
		assert_int_equal(o.id, 4242);   /* refused or not, answered under its own id */
		if (o.error) {
			assert_int_equal(o.code, TH_EBUSY);
			assert_non_null(strstr(o.message, "too many in flight"));
			busy++;
		} else {
			assert_int_equal(o.code, TH_ERULE);
		}
	}
	print_message("%llu of %d refused as too many in flight\n", (unsigned long long)busy, N);
	assert_true(busy > 0);
	assert_int_equal(cf_stat(f, "inflight_refused"), busy);
	th_report_destroy(&bad);
	zmq_close(s);
}

/* A frame over max_msg_bytes: libzmq closes the connection without telling why; the
 * collector counts it among ingest_disconnects (the only connection that ever ended). */
static void oversize_frame_counted(void **state)
{
	cf_fixture *f = *state;
	void *s = welcomed(f, &f->snv);
	assert_int_equal(cf_stat(f, "ingest_disconnects"), 0);
	size_t n = (9u << 20);
	uint8_t *big = calloc(1, n);
	assert_non_null(big);
	assert_true(zmq_send(s, big, n, 0) >= 0);
	free(big);
	outcome o;
	assert_false(got_reply(s, 2000, &o));
	uint64_t drops = 0;
	for (int i = 0; i < 50 && (drops = cf_stat(f, "ingest_disconnects")) == 0; i++)
		usleep(100000);
	assert_int_equal(drops, 1);   /* s is still open on this side */
	still_serving(f);
	zmq_close(s);
}

static void insecure_only_on_loopback(void **state)
{
	cf_fixture *f = *state;
	char db[4096], units[4096], ep[64];
	snprintf(db, sizeof db, "%s/store2", f->dir);
	snprintf(units, sizeof units, "%s/units", f->dir);
	snprintf(ep, sizeof ep, "tcp://0.0.0.0:%d", tu_free_port());
	char *argv[] = {(char *)tu_bin("collector/tonghop-collector"), "--db", db, "--units", units,
	                "--defs", (char *)tu_src("schema/appendices"), "--insecure", "--bind", ep,
	                "--allow-root", NULL};
	pid_t pid = tu_spawn(argv, "/dev/null");
	assert_true(pid > 0);
	int rc = tu_wait(pid, 5000);
	if (rc < 0) {
		kill(pid, SIGKILL);
		tu_wait(pid, 5000);
	}
	assert_true(rc > 0);   /* refused to start */
}

static void refuses_root(void **state)
{
	cf_fixture *f = *state;
	if (geteuid() != 0) {
		skip();
		return;
	}
	char db[4096], units[4096], keys[4096], skey[4096], log[4096], ep[64];
	snprintf(db, sizeof db, "%s/store3", f->dir);
	snprintf(units, sizeof units, "%s/units", f->dir);
	snprintf(keys, sizeof keys, "%s/keys", f->dir);
	snprintf(skey, sizeof skey, "%s/server.key", f->dir);
	snprintf(log, sizeof log, "%s/root.log", f->dir);
	snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", tu_free_port());
	char *argv[] = {(char *)tu_bin("collector/tonghop-collector"), "--db", db, "--units", units,
	                "--defs", (char *)tu_src("schema/appendices"), "--keys", keys, "--server-key",
	                skey, "--bind", ep, NULL};
	pid_t pid = tu_spawn(argv, log);
	assert_true(pid > 0);
	int rc = tu_wait(pid, 5000);
	if (rc < 0) {
		kill(pid, SIGKILL);
		tu_wait(pid, 5000);
	}
	assert_int_equal(rc, 2);
	char *text = tu_read_file(log, NULL);
	assert_non_null(text);
	assert_non_null(strstr(text, "--allow-root"));
	free(text);
	struct stat st;
	assert_int_not_equal(stat(db, &st), 0);   /* nothing created */
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(truncated_frames, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(extra_frames, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(wrong_types, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(huge_claimed_lengths, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(invalid_utf8, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(megabyte_string, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(nan_where_numbers_go, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(negative_counts, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(hundred_thousand_rows, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(deeply_nested, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(duplicate_map_keys, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(unknown_fields_ignored, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(replay_under_other_key, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(flood_from_one_key, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(frame_over_max_size, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(oversize_frame_counted, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(inflight_refused_counted, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(connections_per_key_limited, setup_two_conns, cf_teardown),
		cmocka_unit_test_setup_teardown(insecure_only_on_loopback, setup, cf_teardown),
		cmocka_unit_test_setup_teardown(refuses_root, setup, cf_teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

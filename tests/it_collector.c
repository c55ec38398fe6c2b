/* it_collector.c -- the collector as a real process on loopback: keys, dedup,
 * validation, scope, revocation, hostile bytes, PUB prefixes, restarts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <fcntl.h>
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

static void report_and_history_queries(void **state)
{
	cf_fixture *f = *state;
	void *s = cf_dealer(f, f->ingest, &f->snv);
	th_report *a = cf_pl3(f, "SNV", 60, 4, 1, 0), *b = cf_pl3(f, "SNV", 61, 5, 0, 0);
	assert_int_equal(cf_submit_status(f, s, a, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(cf_submit_status(f, s, b, NULL), TH_ACK_ACCEPTED);
	msgpack_unpacked u;
	char *raw;
	cf_query_unpacked(f, "history", "SNV", &u, &raw);
	const msgpack_object *revs = cf_field(&u.data, "revisions");
	assert_non_null(revs);
	assert_int_equal(revs->via.array.size, 2);
	assert_int_equal(cf_field(&revs->via.array.ptr[0], "rev")->via.u64, 60);
	assert_int_equal(cf_field(&revs->via.array.ptr[1], "rev")->via.u64, 61);
	assert_true(cf_field(&revs->via.array.ptr[1], "sender")->via.str.size > 0);
	msgpack_unpacked_destroy(&u);
	free(raw);
	cf_query_unpacked(f, "report", "SNV", &u, &raw);
	const msgpack_object *rep = cf_field(&u.data, "report");
	assert_non_null(rep);
	assert_int_equal(cf_field(rep, "rev")->via.u64, 61);
	const msgpack_object *rows = cf_field(rep, "rows");
	assert_int_equal(rows->via.array.size, 1);
	const th_def *d = th_defset_latest(f->defs, "PL3");
	const msgpack_object *done = &rows->via.array.ptr[0].via.array.ptr[th_def_column(d, "da_hoan_thanh")];
	assert_int_equal(done->via.i64, 5);
	msgpack_unpacked_destroy(&u);
	free(raw);
	cf_query_unpacked(f, "report", "C2", &u, &raw);       /* nothing stored */
	assert_false(cf_field(&u.data, "ok")->via.boolean);
	msgpack_unpacked_destroy(&u);
	free(raw);
	th_report_destroy(&a);
	th_report_destroy(&b);
	zmq_close(s);
}

/* --- cases ------------------------------------------------------------------------- */

static void hello_welcome(void **state)
{
	cf_fixture *f = *state;
	void *s = cf_dealer(f, f->ingest, &f->d1);
	th_welcome w;
	assert_int_equal(cf_hello(s, &w, NULL), 0);
	assert_string_equal(w.unit, "D1");
	assert_int_equal(w.n_defs, 3);
	uint8_t zero[16] = {0};
	assert_memory_not_equal(w.store, zero, 16);
	th_welcome_free(&w);
	zmq_close(s);
}

static void dedup_rules(void **state)
{
	cf_fixture *f = *state;
	void *s = cf_dealer(f, f->ingest, &f->snv);
	th_report *r = cf_pl3(f, "SNV", 10, 5, 1, 1);
	int code = 0;
	assert_int_equal(cf_submit_status(f, s, r, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(cf_submit_status(f, s, r, NULL), TH_ACK_DUPLICATE);
	th_report *c = cf_pl3(f, "SNV", 10, 6, 1, 1);
	assert_int_equal(cf_submit_status(f, s, c, &code), TH_ACK_REJECTED);
	assert_int_equal(code, TH_ECONFLICT);
	th_report *old = cf_pl3(f, "SNV", 5, 9, 9, 9);
	assert_int_equal(cf_submit_status(f, s, old, NULL), TH_ACK_STALE);
	assert_int_equal(cf_query_total(f, "SNV", "da_hoan_thanh", NULL), 5);
	assert_int_equal(cf_query_total(f, "R", "da_hoan_thanh", NULL), 5);
	th_report *newer = cf_pl3(f, "SNV", 11, 2, 0, 0);
	assert_int_equal(cf_submit_status(f, s, newer, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(cf_query_total(f, "R", "da_hoan_thanh", NULL), 2);
	th_report_destroy(&r);
	th_report_destroy(&c);
	th_report_destroy(&old);
	th_report_destroy(&newer);
	zmq_close(s);
}

static void invalid_report_rejected_with_place(void **state)
{
	cf_fixture *f = *state;
	void *s = cf_dealer(f, f->ingest, &f->snv);
	th_report *r = cf_pl3(f, "SNV", 20, 5, 1, 1);
	const th_def *d = th_defset_latest(f->defs, "PL3");
	th_report_cell(r, 0, (size_t)th_def_column(d, "da_hoan_thanh"))->i = 99;   /* breaks the rule */
	th_ack a;
	cf_submit(f, s, r, &a);
	assert_int_equal(a.results[0].status, TH_ACK_REJECTED);
	assert_int_equal(a.results[0].code, TH_ERULE);
	assert_int_equal(a.results[0].row, 1);
	assert_non_null(a.results[0].column);
	th_ack_free(&a);
	assert_int_equal(cf_query_total(f, "SNV", "da_hoan_thanh", NULL), -1);   /* nothing stored */
	th_report_destroy(&r);
	zmq_close(s);
}

static void scope_rules(void **state)
{
	cf_fixture *f = *state;
	int code = 0;
	void *c1 = cf_dealer(f, f->ingest, &f->c1);
	th_report *r = cf_pl3(f, "C2", 1, 1, 0, 0);           /* a commune for its neighbour */
	assert_int_equal(cf_submit_status(f, c1, r, &code), TH_ACK_REJECTED);
	assert_int_equal(code, TH_ESCOPE);
	th_report *up = cf_pl3(f, "D1", 1, 1, 0, 0);          /* a commune for its district */
	assert_int_equal(cf_submit_status(f, c1, up, &code), TH_ACK_REJECTED);
	assert_int_equal(code, TH_ESCOPE);
	void *d1 = cf_dealer(f, f->ingest, &f->d1);
	assert_int_equal(cf_submit_status(f, d1, r, NULL), TH_ACK_ACCEPTED);   /* district for its commune */
	void *rd = cf_dealer(f, f->ingest, &f->reader);
	th_report *x = cf_pl3(f, "C1", 1, 1, 0, 0);
	assert_int_equal(cf_submit_status(f, rd, x, &code), TH_ACK_REJECTED);
	assert_int_equal(code, TH_EAUTH);
	uint32_t reported = 0;
	assert_int_equal(cf_query_total(f, "D1", "da_hoan_thanh", &reported), 1);
	assert_int_equal(reported, 1);
	th_report_destroy(&r);
	th_report_destroy(&up);
	th_report_destroy(&x);
	zmq_close(c1);
	zmq_close(d1);
	zmq_close(rd);
}

/* PL3/2021 completeness at unit over the query socket: expected and reported. */
static void pl3_counts(cf_fixture *f, const char *unit, uint32_t *expected, uint32_t *reported)
{
	msgpack_unpacked u;
	char *raw;
	cf_query_unpacked(f, "node", unit, &u, &raw);
	const msgpack_object *node = cf_field(&u.data, "node");
	assert_non_null(node);
	const msgpack_object *e = cf_field(node, "expected"), *r = cf_field(node, "reported");
	assert_non_null(e);
	assert_non_null(r);
	*expected = (uint32_t)e->via.u64;
	*reported = (uint32_t)r->via.u64;
	msgpack_unpacked_destroy(&u);
	free(raw);
}

/* Submits r over s and returns the raw ack (caller frees), which must hold one result. */
static uint8_t *submit_raw(cf_fixture *f, void *s, th_report *r, size_t *rlen)
{
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(7001, &r, 1, f->defs, &buf, &len), 0);
	uint8_t *rep = cf_request(s, buf, len, 5000, rlen);
	free(buf);
	assert_non_null(rep);
	return rep;
}

static int has_bytes(const uint8_t *b, size_t n, const char *s)
{
	size_t k = strlen(s);
	for (size_t i = 0; i + k <= n; i++)
		if (!memcmp(b + i, s, k))
			return 1;
	return 0;
}

/* A unit that is not among an appendix's submitters is turned away with reason
 * not_expected, whatever its key may do: the city (admin key) filing PL3, a commune
 * filing PL2 (departments and districts). Nothing counts; the admin may still
 * withdraw; completeness never shows more reported than expected. */
static void not_expected_rejected(void **state)
{
	cf_fixture *f = *state;
	void *adm = cf_dealer(f, f->ingest, &f->admin), *c1 = cf_dealer(f, f->ingest, &f->c1);
	uint32_t exp0 = 0, rep0 = 0;
	pl3_counts(f, "R", &exp0, &rep0);
	assert_int_equal(exp0, 5);   /* SNV SNVX D1 C1 C2: the city is not a submitter */
	assert_int_equal(rep0, 0);

	th_report *r = cf_pl3(f, "R", 1, 4, 0, 0);
	size_t rlen;
	uint8_t *raw = submit_raw(f, adm, r, &rlen);
	assert_true(has_bytes(raw, rlen, "not_expected"));   /* the reason on the wire */
	th_ack a;
	const char *why = NULL;
	assert_int_equal(th_wire_decode_ack(raw, rlen, &a, &why), 0);
	free(raw);
	assert_int_equal(a.n_results, 1);
	assert_int_equal(a.results[0].status, TH_ACK_REJECTED);
	assert_int_equal(a.results[0].code, TH_ENOTEXPECTED);
	assert_string_equal(a.results[0].message,
	                    "R (city) is not expected to file PL3: it is filed by department, district, commune");
	th_ack_free(&a);
	assert_int_equal(cf_query_total(f, "R", "da_hoan_thanh", NULL), -1);   /* nothing stored */

	/* a commune filing PL2 (an empty report: valid, so only the rule refuses it) */
	const th_def *d2 = th_defset_latest(f->defs, "PL2");
	assert_non_null(d2);
	th_report *p2 = th_report_new("C1", "PL2", d2->version, "2021", 1, d2->n_cols);
	assert_non_null(p2);
	cf_submit(f, c1, p2, &a);
	assert_int_equal(a.results[0].status, TH_ACK_REJECTED);
	assert_int_equal(a.results[0].code, TH_ENOTEXPECTED);
	assert_string_equal(a.results[0].message,
	                    "C1 (commune) is not expected to file PL2: it is filed by department, district");
	th_ack_free(&a);
	/* the same empty PL2 from the district is taken: the rule, not the report, refused it */
	void *d1 = cf_dealer(f, f->ingest, &f->d1);
	free(p2->unit);
	p2->unit = strdup("D1");
	assert_int_equal(cf_submit_status(f, d1, p2, NULL), TH_ACK_ACCEPTED);

	/* the admin withdraws for the city: a tombstone is never turned away */
	th_report *t = th_report_new("R", "PL3", r->version, "2021", 2, r->n_cols);
	assert_non_null(t);
	t->tombstone = 1;
	int code = -1;
	assert_int_equal(cf_submit_status(f, adm, t, &code), TH_ACK_ACCEPTED);
	assert_int_equal(code, 0);

	/* every expected unit files, the city tries again: reported stops at expected */
	const struct {
		void *s;
		const char *unit;
	} all[] = {{adm, "SNV"}, {adm, "SNVX"}, {d1, "D1"}, {c1, "C1"}, {d1, "C2"}, {adm, "R"}};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
		th_report *x = cf_pl3(f, all[i].unit, 3, 1, 0, 0);
		th_ack_status want = strcmp(all[i].unit, "R") ? TH_ACK_ACCEPTED : TH_ACK_REJECTED;
		assert_int_equal(cf_submit_status(f, all[i].s, x, NULL), want);
		th_report_destroy(&x);
	}
	uint32_t e = 0, rp = 0;
	pl3_counts(f, "R", &e, &rp);
	assert_int_equal(e, 5);
	assert_int_equal(rp, 5);
	assert_int_equal(cf_query_total(f, "R", "da_hoan_thanh", NULL), 5);
	th_report_destroy(&r);
	th_report_destroy(&p2);
	th_report_destroy(&t);
	zmq_close(adm);
	zmq_close(c1);
	zmq_close(d1);
}

static void unknown_key_refused(void **state)
{
	cf_fixture *f = *state;
	cf_keypair stranger;
	assert_int_equal(zmq_curve_keypair(stranger.pub, stranger.sec), 0);
	void *s = cf_dealer(f, f->ingest, &stranger);
	th_welcome w;
	assert_int_not_equal(cf_hello(s, &w, NULL), 0);   /* no welcome: refused at the handshake */
	zmq_close(s);
}

static void revoked_after_sighup(void **state)
{
	cf_fixture *f = *state;
	void *s = cf_dealer(f, f->ingest, &f->c1);
	th_welcome w;
	assert_int_equal(cf_hello(s, &w, NULL), 0);
	th_welcome_free(&w);
	cf_write_keys(f, &f->c1);                 /* C1 removed */
	kill(f->pid, SIGHUP);
	th_report *r = cf_pl3(f, "C1", 1, 1, 0, 0);
	uint8_t *buf, *rep;
	size_t len, rlen;
	th_wire_encode_submit(1, &r, 1, f->defs, &buf, &len);
	/* the reload happens between groups: until it has, C1's submits are still taken
	 * (the same revision: accepted once, then duplicate); after it, refused */
	int refused = 0;
	for (int tries = 0; tries < 50 && !refused; tries++) {
		usleep(100000);
		rep = cf_request(s, buf, len, 3000, &rlen);   /* same open connection */
		assert_non_null(rep);
		th_error_msg e;
		const char *why;
		if (th_wire_decode_error(rep, rlen, &e, &why) == 0) {
			assert_int_equal(e.code, TH_EAUTH);
			th_error_msg_free(&e);
			refused = 1;
		}
		free(rep);
	}
	assert_true(refused);
	free(buf);
	th_report_destroy(&r);
	zmq_close(s);
}

/* A reader removed from the keys file keeps its open query connection (ZAP ran
 * at connect) but gets "auth" answers after the reload, not data. */
static void revoked_reader_query_refused(void **state)
{
	cf_fixture *f = *state;
	void *q = cf_dealer(f, f->query, &f->reader);
	size_t len;
	uint8_t *rep = cf_query(f, q, "node", "R", &len);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)rep, len, NULL), MSGPACK_UNPACK_SUCCESS);
	const msgpack_object *ok = cf_field(&u.data, "ok");
	assert_non_null(ok);
	assert_true(ok->via.boolean);
	msgpack_unpacked_destroy(&u);
	free(rep);
	cf_write_keys(f, &f->reader);               /* the reader removed */
	kill(f->pid, SIGHUP);
	int refused = 0;
	for (int tries = 0; tries < 50 && !refused; tries++) {
		usleep(100000);
		rep = cf_query(f, q, "node", "R", &len);   /* same open connection */
		msgpack_unpacked_init(&u);
		assert_int_equal(msgpack_unpack_next(&u, (const char *)rep, len, NULL), MSGPACK_UNPACK_SUCCESS);
		ok = cf_field(&u.data, "ok");
		assert_non_null(ok);
		if (!ok->via.boolean) {
			const msgpack_object *reason = cf_field(&u.data, "reason");
			assert_non_null(reason);
			assert_int_equal(reason->via.str.size, 4);
			assert_memory_equal(reason->via.str.ptr, "auth", 4);
			assert_null(cf_field(&u.data, "node"));
			refused = 1;
		}
		msgpack_unpacked_destroy(&u);
		free(rep);
	}
	assert_true(refused);
	zmq_close(q);
}

static void hostile_bytes(void **state)
{
	cf_fixture *f = *state;
	void *s = cf_dealer(f, f->ingest, &f->snv);
	const uint8_t garbage[][12] = {
		{0xc1, 0xff, 0x00},                                     /* never-used byte */
		{0xdd, 0xff, 0xff, 0xff, 0xff},                         /* huge array */
		{0x81, 0xa1, 'v', 0xcb, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, /* NaN as version */
		{0x93, 0x01, 0x02, 0x03},                               /* array, not map */
	};
	size_t lens[] = {3, 5, 12, 4};
	for (int i = 0; i < 4; i++) {
		size_t rlen;
		uint8_t *rep = cf_request(s, garbage[i], lens[i], 3000, &rlen);
		assert_non_null(rep);
		th_error_msg e;
		const char *why;
		assert_int_equal(th_wire_decode_error(rep, rlen, &e, &why), 0);
		assert_int_equal(e.code, TH_EPROTO);
		th_error_msg_free(&e);
		free(rep);
	}
	/* after the garbage, a valid report on the same connection is still accepted */
	th_report *r = cf_pl3(f, "SNV", 30, 1, 0, 0);
	th_ack a;
	cf_submit(f, s, r, &a);
	assert_int_equal(a.results[0].status, TH_ACK_ACCEPTED);
	th_ack_free(&a);
	/* still serving */
	th_welcome w;
	assert_int_equal(cf_hello(s, &w, NULL), 0);
	th_welcome_free(&w);
	th_report_destroy(&r);
	zmq_close(s);
}

/* A SUB socket (linger 0) of context ctx with key k on f's PUB endpoint, filtered by
 * prefix; NULL on failure.  No cmocka assertion: a forked child uses it too. */
static void *subscriber(cf_fixture *f, void *ctx, const cf_keypair *k, const char *prefix)
{
	void *sub = zmq_socket(ctx, ZMQ_SUB);
	int linger = 0;
	if (!sub)
		return NULL;
	if (zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger) ||
	    zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, f->server.pub, 40) ||
	    zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, k->pub, 40) ||
	    zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, k->sec, 40) ||
	    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix)) || zmq_connect(sub, f->pubep)) {
		zmq_close(sub);
		return NULL;
	}
	return sub;
}

static void pub_prefix_terminated(void **state)
{
	cf_fixture *f = *state;
	void *sub = subscriber(f, f->ctx, &f->reader, "L2\x1fSNV\x1f");
	assert_non_null(sub);
	usleep(300000);
	void *x = cf_dealer(f, f->ingest, &f->snvx);
	th_report *rx = cf_pl3(f, "SNVX", 1, 1, 0, 0);
	assert_int_equal(cf_submit_status(f, x, rx, NULL), TH_ACK_ACCEPTED);
	void *s = cf_dealer(f, f->ingest, &f->snv);
	th_report *r = cf_pl3(f, "SNV", 40, 3, 0, 0);
	assert_int_equal(cf_submit_status(f, s, r, NULL), TH_ACK_ACCEPTED);
	int got_snv = 0, got_other = 0;
	for (;;) {
		zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 1000) <= 0)
			break;
		char topic[256];
		int n = zmq_recv(sub, topic, sizeof topic - 1, 0);
		assert_true(n > 0);
		topic[n] = 0;
		char body[65536];
		int bn = zmq_recv(sub, body, sizeof body, 0);
		if (strncmp(topic, "L2\x1fSNV\x1fPL3\x1f" "2021\x1f", (size_t)n) == 0) {
			got_snv++;
			/* the body: the node map of QUERY.md, every field */
			th_node_msg m;
			const char *why = NULL;
			assert_true(bn > 0);
			assert_int_equal(th_wire_decode_node((uint8_t *)body, (size_t)bn, &m, &why), 0);
			assert_string_equal(m.unit, "SNV");
			assert_string_equal(m.name, "Sở Nội vụ");
			assert_string_equal(m.appendix, "PL3");
			assert_string_equal(m.period, "2021");
			assert_int_equal(m.level, 2);
			assert_int_equal(m.version, 1);
			assert_true(m.commit > 0);
			assert_int_equal(m.n_slots, th_defset_latest(f->defs, "PL3")->n_slots);
			assert_int_equal(m.expected, 1);
			assert_int_equal(m.reported, 1);
			assert_int_equal(m.on_time + m.late, 1);
			assert_int_equal(m.corrections, 0);
			th_node_msg_free(&m);
		} else {
			got_other++;
		}
	}
	assert_int_equal(got_snv, 1);
	assert_int_equal(got_other, 0);
	th_report_destroy(&r);
	th_report_destroy(&rx);
	zmq_close(s);
	zmq_close(x);
	zmq_close(sub);
}

/* Drains sub for a second; counts messages whose topic equals want, and any other. */
static void drain_topics(void *sub, const char *want, int *same, int *other)
{
	*same = *other = 0;
	for (;;) {
		zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 1000) <= 0)
			break;
		char topic[256];
		int n = zmq_recv(sub, topic, sizeof topic - 1, 0);
		assert_true(n > 0 && n < (int)sizeof topic);
		topic[n] = 0;
		int more = 0;
		size_t ml = sizeof more;
		zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &ml);
		assert_true(more);   /* a body frame follows every topic */
		char body[65536];
		assert_true(zmq_recv(sub, body, sizeof body, 0) > 0);
		if (strcmp(topic, want) == 0)
			(*same)++;
		else
			(*other)++;
	}
}

static void *level_sub(cf_fixture *f, const char *prefix)
{
	void *sub = subscriber(f, f->ctx, &f->reader, prefix);
	assert_non_null(sub);
	return sub;
}

/* A report for C1 changes C1 (level 3), D1 (level 2) and R (level 1): a subscriber to
 * one level gets exactly that level's changed node. */
static void pub_level_prefix(void **state)
{
	cf_fixture *f = *state;
	void *l3 = level_sub(f, "L3\x1f"), *l2 = level_sub(f, "L2\x1f");
	usleep(300000);
	void *d1 = cf_dealer(f, f->ingest, &f->d1);
	th_report *r = cf_pl3(f, "C1", 7, 2, 0, 0);
	assert_int_equal(cf_submit_status(f, d1, r, NULL), TH_ACK_ACCEPTED);
	int same = 0, other = 0;
	drain_topics(l3, "L3\x1f" "C1\x1fPL3\x1f" "2021\x1f", &same, &other);
	assert_int_equal(same, 1);
	assert_int_equal(other, 0);
	drain_topics(l2, "L2\x1f" "D1\x1fPL3\x1f" "2021\x1f", &same, &other);
	assert_int_equal(same, 1);
	assert_int_equal(other, 0);
	th_report_destroy(&r);
	zmq_close(d1);
	zmq_close(l3);
	zmq_close(l2);
}

/* --- a reader revoked at SIGHUP is cut off from the PUB stream -------------------------- */

/* A subscriber in a forked child process, with its own ZeroMQ context (an in-process
 * subscriber whose connection the collector refuses can hang zmq_ctx_term). */
typedef struct {
	pid_t pid;
	int ctl;              /* write end: a byte on it tells the child to finish */
	int reports;          /* read end: the commit id of every message, 8 bytes each */
	uint64_t commits[512];
	size_t n;
} sub_proc;

/* The child: subscribes to everything with key k, writes the commit of each message to
 * report_fd until a byte arrives on ctl_fd; exits 0, 1 on a failure, killed by SIGALRM after 60 s. */
static void sub_child(cf_fixture *f, const cf_keypair *k, int ctl_fd, int report_fd)
{
	static char body[1 << 16];
	alarm(60);
	void *ctx = zmq_ctx_new();
	void *sub = ctx ? subscriber(f, ctx, k, "") : NULL;
	int rc = sub ? 0 : 1;
	while (sub) {
		zmq_pollitem_t it[2] = {{sub, 0, ZMQ_POLLIN, 0}, {NULL, ctl_fd, ZMQ_POLLIN, 0}};
		if (zmq_poll(it, 2, 1000) < 0) {
			rc = 1;
			break;
		}
		if (it[1].revents & ZMQ_POLLIN)
			break;
		if (!(it[0].revents & ZMQ_POLLIN))
			continue;
		int more = 0;
		size_t ml = sizeof more;
		int n = zmq_recv(sub, body, sizeof body, 0);
		if (n < 0 || zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &ml) || !more ||
		    (n = zmq_recv(sub, body, sizeof body, 0)) < 0 || (size_t)n > sizeof body) {
			rc = 1;
			break;
		}
		msgpack_unpacked u;
		msgpack_unpacked_init(&u);
		uint64_t commit = 0;
		if (msgpack_unpack_next(&u, body, (size_t)n, NULL) == MSGPACK_UNPACK_SUCCESS) {
			const msgpack_object *c = cf_field(&u.data, "commit");
			if (c && c->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
				commit = c->via.u64;
		}
		msgpack_unpacked_destroy(&u);
		if (write(report_fd, &commit, sizeof commit) != (ssize_t)sizeof commit) {
			rc = 1;
			break;
		}
	}
	if (sub)
		zmq_close(sub);
	if (ctx)
		zmq_ctx_term(ctx);
	_exit(rc);
}

/* Forks a subscriber with key k: before the parent opens any socket of its own. */
static void sub_spawn(cf_fixture *f, const cf_keypair *k, sub_proc *p)
{
	int ctl[2], rep[2];
	memset(p, 0, sizeof *p);
	assert_int_equal(pipe(ctl), 0);
	assert_int_equal(pipe(rep), 0);
	p->pid = fork();
	assert_true(p->pid >= 0);
	if (p->pid == 0) {
		close(ctl[1]);
		close(rep[0]);
		sub_child(f, k, ctl[0], rep[1]);
	}
	close(ctl[0]);
	close(rep[1]);
	p->ctl = ctl[1];
	p->reports = rep[0];
}

/* Collects the child's reports for up to ms (less when one arrives). */
static void sub_read(sub_proc *p, int ms)
{
	struct pollfd pf = {p->reports, POLLIN, 0};
	while (poll(&pf, 1, ms) > 0 && (pf.revents & POLLIN)) {
		uint64_t c;
		if (read(p->reports, &c, sizeof c) != (ssize_t)sizeof c)
			break;
		if (p->n < sizeof p->commits / sizeof *p->commits)
			p->commits[p->n++] = c;
		ms = 0;
	}
}

/* How many reported commits are >= from. */
static size_t sub_got(const sub_proc *p, uint64_t from)
{
	size_t n = 0;
	for (size_t i = 0; i < p->n; i++)
		n += p->commits[i] >= from;
	return n;
}

/* Tells the child to finish; returns its exit status. */
static int sub_finish(sub_proc *p)
{
	/* a byte, not only EOF: zmq_poll reports POLLIN, but not POLLHUP, of a plain fd */
	assert_int_equal(write(p->ctl, "q", 1), 1);
	close(p->ctl);
	int st = tu_wait(p->pid, 10000);
	if (st < 0) {
		kill(p->pid, SIGKILL);
		tu_wait(p->pid, 5000);
	}
	close(p->reports);
	return st;
}

/* Submits new SNV revisions until every subscriber of subs has received a change of this
 * round (a subscription takes a moment to reach the PUB socket); returns the first commit
 * of the round. */
static uint64_t publish_until_received(cf_fixture *f, void *s, uint64_t *rev, sub_proc **subs,
                                       size_t n)
{
	uint64_t from = 0;
	for (int attempt = 0; attempt < 40; attempt++) {
		th_report *r = cf_pl3(f, "SNV", *rev, (int64_t)*rev, 0, 0);
		(*rev)++;
		th_ack a;
		cf_submit(f, s, r, &a);
		assert_int_equal(a.results[0].status, TH_ACK_ACCEPTED);
		if (!from)
			from = a.commit;
		th_ack_free(&a);
		th_report_destroy(&r);
		size_t done = 0;
		for (size_t i = 0; i < n; i++) {
			sub_read(subs[i], 250);
			done += sub_got(subs[i], from) > 0;
		}
		if (done == n)
			return from;
	}
	fail_msg("a subscriber received nothing in 40 commits");
	return 0;
}

static void revoked_reader_cut_off_from_pub(void **state)
{
	cf_fixture *f = *state;
	sub_proc revoked, kept;
	sub_spawn(f, &f->reader, &revoked);
	sub_spawn(f, &f->reader2, &kept);
	void *s = cf_dealer(f, f->ingest, &f->snv);
	void *probe = cf_dealer(f, f->ingest, &f->reader);   /* sees when the reload is done */
	th_welcome w;
	assert_int_equal(cf_hello(probe, &w, NULL), 0);
	th_welcome_free(&w);
	uint64_t rev = 1;
	sub_proc *both[] = {&revoked, &kept}, *only_kept[] = {&kept};
	publish_until_received(f, s, &rev, both, 2);
	/* revoke the first reader; the reload is done when its key is refused on ingest */
	cf_write_keys(f, &f->reader);
	kill(f->pid, SIGHUP);
	int reloaded = 0;
	for (int i = 0; i < 50 && !reloaded; i++) {
		th_error_msg e;
		int rc = cf_hello(probe, &w, &e);
		if (rc == 0) {
			th_welcome_free(&w);
			usleep(100000);
		} else {
			assert_true(rc != -1);
			assert_int_equal(e.code, TH_EAUTH);
			th_error_msg_free(&e);
			reloaded = 1;
		}
	}
	assert_true(reloaded);
	uint64_t from = publish_until_received(f, s, &rev, only_kept, 1);
	sub_read(&revoked, 1000);
	print_message("after the reload: kept reader got %zu changes, revoked reader %zu\n",
	              sub_got(&kept, from), sub_got(&revoked, from));
	assert_int_equal(sub_got(&revoked, from), 0);
	assert_true(sub_got(&kept, from) >= 1);
	zmq_close(probe);
	zmq_close(s);
	assert_int_equal(sub_finish(&revoked), 0);
	assert_int_equal(sub_finish(&kept), 0);
}

/* Submits a one-row PL3 report of unit on s and asserts it is accepted. */
static void accept_pl3(cf_fixture *f, void *s, const char *unit, uint64_t rev, int64_t done)
{
	th_report *r = cf_pl3(f, unit, rev, done, 0, 0);
	assert_int_equal(cf_submit_status(f, s, r, NULL), TH_ACK_ACCEPTED);
	th_report_destroy(&r);
}

/* The XPUB socket knows what is subscribed: with no subscriber nothing is
 * published; with one level's subscriber, exactly that level's node per report
 * (before, every changed node was read and encoded for nobody); when it leaves,
 * publishing stops again.  Subscriptions travel asynchronously, so the test
 * waits for them by sending revisions until the effect shows (bounded). */
static void pub_builds_only_what_is_subscribed(void **state)
{
	cf_fixture *f = *state;
	void *d1 = cf_dealer(f, f->ingest, &f->d1);
	uint64_t rev = 7;
	accept_pl3(f, d1, "C1", rev, 2);
	assert_int_equal(cf_stat(f, "published"), 0);
	void *l2 = level_sub(f, "L2\x1f");
	int same = 0, other = 0;
	for (int tries = 0; tries < 20 && !same; tries++) {
		accept_pl3(f, d1, "C1", ++rev, 2);
		drain_topics(l2, "L2\x1f" "D1\x1fPL3\x1f" "2021\x1f", &same, &other);
		assert_int_equal(other, 0);
	}
	assert_int_equal(same, 1);
	uint64_t before = cf_stat(f, "published");
	accept_pl3(f, d1, "C1", ++rev, 3);
	drain_topics(l2, "L2\x1f" "D1\x1fPL3\x1f" "2021\x1f", &same, &other);
	assert_int_equal(same, 1);
	assert_int_equal(other, 0);
	assert_int_equal(cf_stat(f, "published"), before + 1);   /* not L1, not L3 */
	/* the subscriber leaves: a revision eventually publishes nothing */
	zmq_close(l2);
	int quiet = 0;
	for (int tries = 0; tries < 20 && !quiet; tries++) {
		usleep(200000);
		before = cf_stat(f, "published");
		accept_pl3(f, d1, "C1", ++rev, 4);
		quiet = cf_stat(f, "published") == before;
	}
	assert_true(quiet);
	zmq_close(d1);
}

static void acked_survives_sigkill(void **state)
{
	cf_fixture *f = *state;
	void *s = cf_dealer(f, f->ingest, &f->snv);
	th_report *r = cf_pl3(f, "SNV", 50, 7, 1, 0);
	assert_int_equal(cf_submit_status(f, s, r, NULL), TH_ACK_ACCEPTED);
	zmq_close(s);
	kill(f->pid, SIGKILL);
	tu_wait(f->pid, 5000);
	cf_start(f);
	assert_int_equal(cf_query_total(f, "SNV", "da_hoan_thanh", NULL), 7);
	s = cf_dealer(f, f->ingest, &f->snv);
	assert_int_equal(cf_submit_status(f, s, r, NULL), TH_ACK_DUPLICATE);
	th_report_destroy(&r);
	zmq_close(s);
}

static void sigterm_exits_cleanly(void **state)
{
	cf_fixture *f = *state;
	kill(f->pid, SIGTERM);
	assert_int_equal(tu_wait(f->pid, 5000), 0);
	f->pid = 0;
}

static void keygen_and_check(void **state)
{
	cf_fixture *f = *state;
	char prefix[4096], cmd[8192];
	snprintf(prefix, sizeof prefix, "%s/agent", f->dir);
	char *argv[] = {(char *)tu_bin("collector/tonghop-collector"), "keygen", prefix, NULL};
	assert_int_equal(tu_run(argv, "/dev/null"), 0);
	char key[4200];
	snprintf(key, sizeof key, "%s.key", prefix);
	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_not_equal(tu_run(argv, "/dev/null"), 0);   /* refuses to overwrite */
	/* --check on the fixture's configuration */
	snprintf(cmd, sizeof cmd,
	         "'%s' --check --db %s/store --units %s/units --keys %s/keys --server-key %s/server.key "
	         "--defs '%s' 2>&1",
	         tu_bin("collector/tonghop-collector"), f->dir, f->dir, f->dir, f->dir,
	         tu_src("schema/appendices"));
	int status;
	char *out = tu_capture(cmd, &status);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "configuration OK"));
	free(out);
	/* a broken keys file: file:line and exit 3 */
	char bad[4200];
	snprintf(bad, sizeof bad, "%s/badkeys", f->dir);
	tu_write_file(bad, "# x\nnot-a-key SNV agent\n", 23);
	snprintf(cmd, sizeof cmd,
	         "'%s' --check --db %s/store --units %s/units --keys %s --server-key %s/server.key "
	         "--defs '%s' 2>&1",
	         tu_bin("collector/tonghop-collector"), f->dir, f->dir, bad, f->dir,
	         tu_src("schema/appendices"));
	out = tu_capture(cmd, &status);
	assert_int_equal(status, 3);
	assert_non_null(strstr(out, "badkeys:2:"));
	free(out);
}

/* --- reads are pure, and answered while a commit is held ------------------------------ */

/* A query of PL3 for period (q: node, level, missing, definition) with a reader key over
 * q; its decoded answer must be ok. */
static void reader_query(cf_fixture *f, void *q, const char *what, const char *period)
{
	th_query qu;
	memset(&qu, 0, sizeof qu);
	qu.id = 9;
	snprintf(qu.q, sizeof qu.q, "%s", what);
	snprintf(qu.appendix, sizeof qu.appendix, "PL3");
	snprintf(qu.period, sizeof qu.period, "%s", period);
	snprintf(qu.unit, sizeof qu.unit, "C1");
	qu.level = 3;
	uint8_t *buf;
	size_t len, rlen;
	assert_int_equal(th_wire_encode_query(&qu, &buf, &len), 0);
	uint8_t *rep = cf_request(q, buf, len, 5000, &rlen);
	free(buf);
	assert_non_null(rep);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)rep, rlen, NULL), MSGPACK_UNPACK_SUCCESS);
	const msgpack_object *ok = cf_field(&u.data, "ok");
	assert_non_null(ok);
	assert_true(ok->type == MSGPACK_OBJECT_BOOLEAN && ok->via.boolean);
	msgpack_unpacked_destroy(&u);
	free(rep);
}

/* The hierarchies answer: versions, and how many periods are bound to version (or to
 * any when version is NULL); *has (may be NULL) whether period is one of them. */
static size_t bound_periods(cf_fixture *f, const char *version, size_t *versions,
                            const char *period, int *has)
{
	msgpack_unpacked u;
	char *raw;
	cf_query_unpacked(f, "hierarchies", "", &u, &raw);
	const msgpack_object *h = cf_field(&u.data, "hierarchies");
	assert_non_null(h);
	assert_int_equal(h->type, MSGPACK_OBJECT_ARRAY);
	size_t n = 0;
	if (has)
		*has = 0;
	for (uint32_t i = 0; i < h->via.array.size; i++) {
		const msgpack_object *v = cf_field(&h->via.array.ptr[i], "version");
		const msgpack_object *ps = cf_field(&h->via.array.ptr[i], "periods");
		assert_non_null(v);
		assert_non_null(ps);
		if (version && (v->via.str.size != strlen(version) ||
		                memcmp(v->via.str.ptr, version, v->via.str.size)))
			continue;
		n += ps->via.array.size;
		for (uint32_t k = 0; has && period && k < ps->via.array.size; k++)
			if (ps->via.array.ptr[k].via.str.size == strlen(period) &&
			    !memcmp(ps->via.array.ptr[k].via.str.ptr, period, strlen(period)))
				*has = 1;
	}
	if (versions)
		*versions = h->via.array.size;
	msgpack_unpacked_destroy(&u);
	free(raw);
	return n;
}

/* The bug of issue #14: a reader key's queries of 140 future months (2040-01..2051-08)
 * bound them all; a version effective 2040-01-01 adding NEW1 was then loaded, and
 * NEW1's 2040-01 report was refused as unknown in the version 2040-01 was bound to.
 * Reads bind nothing now: the same queries leave the bindings as they were, and the
 * report is accepted under the new version, which its period is bound to. */
static void reader_queries_bind_nothing(void **state)
{
	cf_fixture *f = *state;
	void *d1 = cf_dealer(f, f->ingest, &f->d1);
	th_report *r = cf_pl3(f, "C1", 1, 2, 0, 0);
	assert_int_equal(cf_submit_status(f, d1, r, NULL), TH_ACK_ACCEPTED);   /* binds 2021 */
	th_report_destroy(&r);
	assert_int_equal(bound_periods(f, NULL, NULL, NULL, NULL), 1);
	void *q = cf_dealer(f, f->query, &f->reader);
	static const char *const verbs[] = {"node", "level", "missing", "definition"};
	for (int i = 0; i < 140; i++) {
		char per[8];
		snprintf(per, sizeof per, "%04d-%02d", 2040 + i / 12, i % 12 + 1);
		for (size_t v = 0; v < sizeof verbs / sizeof *verbs; v++)
			reader_query(f, q, verbs[v], per);
	}
	zmq_close(q);
	assert_int_equal(bound_periods(f, NULL, NULL, NULL, NULL), 1);
	/* a version effective 2040-01-01 with a new commune NEW1 under D1, loaded at SIGHUP */
	static const char units2040[] =
		"@version it-2040\n@effective 2040-01-01\ncode\tparent\tkind\tname\n"
		"R\t\tcity\tThành phố\nSNV\tR\tdepartment\tSở Nội vụ\nD1\tR\tdistrict\tQuận 1\n"
		"C1\tD1\tcommune\tPhường 1\nNEW1\tD1\tcommune\tPhường mới\n";
	char path[4096];
	snprintf(path, sizeof path, "%s/units", f->dir);
	assert_int_equal(tu_write_file(path, units2040, strlen(units2040)), 0);
	kill(f->pid, SIGHUP);
	size_t versions = 0;
	for (int i = 0; i < 100 && versions < 2; i++) {
		usleep(50000);
		bound_periods(f, NULL, &versions, NULL, NULL);
	}
	assert_int_equal(versions, 2);
	void *admin = cf_dealer(f, f->ingest, &f->admin);
	r = cf_pl3_report(f->defs, "NEW1", "2040-01", 1, 5, 0, 0);
	int code = 0;
	assert_int_equal(cf_submit_status(f, admin, r, &code), TH_ACK_ACCEPTED);
	th_report_destroy(&r);
	int has = 0;
	assert_int_equal(bound_periods(f, "it-2040", NULL, "2040-01", &has), 1);
	assert_true(has);
	assert_int_equal(bound_periods(f, "it-1", NULL, NULL, NULL), 1);   /* 2021 */
	zmq_close(admin);
	zmq_close(d1);
}

static char hold_fifo[4096];

/* A collector whose every commit waits on a FIFO (committer.h's test hook). */
static int hold_setup(void **state)
{
	char *dir = tu_tmpdir();
	snprintf(hold_fifo, sizeof hold_fifo, "%s/hold", dir);
	free(dir);
	assert_int_equal(mkfifo(hold_fifo, 0600), 0);
	setenv("TH_TEST_COMMIT_HOLD", hold_fifo, 1);
	int rc = cf_setup(state);
	unsetenv("TH_TEST_COMMIT_HOLD");
	return rc;
}

static int hold_teardown(void **state)
{
	/* a commit still waiting is let go, so the collector can stop */
	int fd = open(hold_fifo, O_WRONLY | O_NONBLOCK);
	if (fd >= 0) {
		ssize_t w = write(fd, "x", 1);
		(void)w;   /* nothing waited: nothing to let go */
		close(fd);
	}
	int rc = cf_teardown(state);
	unlink(hold_fifo);
	char *slash = strrchr(hold_fifo, '/');
	if (slash) {
		*slash = 0;
		rmdir(hold_fifo);
	}
	return rc;
}

/* While a group is written but not committed (the committer holds it), a query and a
 * hello are answered, from the store as it was before the group; the group's ack comes
 * once it is let go, and then the query sees it.  Before, both waited for the commit. */
static void query_and_hello_answered_while_commit_held(void **state)
{
	cf_fixture *f = *state;
	void *d1 = cf_dealer(f, f->ingest, &f->d1);
	th_report *r = cf_pl3(f, "C1", 3, 4, 0, 0);
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_submit(77, &r, 1, f->defs, &buf, &len), 0);
	assert_true(zmq_send(d1, buf, len, 0) >= 0);
	free(buf);
	/* opening the FIFO for writing succeeds once the committer waits on it */
	int fd = -1;
	for (int i = 0; i < 2000 && fd < 0; i++) {
		fd = open(hold_fifo, O_WRONLY | O_NONBLOCK);
		if (fd < 0)
			usleep(10000);
	}
	assert_true(fd >= 0);
	uint32_t reported = 99;
	assert_int_equal(cf_query_total(f, "D1", "da_hoan_thanh", &reported), -1);
	assert_int_equal(reported, 0);
	assert_int_equal(cf_stat(f, "commits"), 0);
	void *other = cf_dealer(f, f->ingest, &f->d1);   /* C1 is in its scope */
	th_welcome w;
	assert_int_equal(cf_hello(other, &w, NULL), 0);
	assert_int_equal(w.n_revs, 0);
	th_welcome_free(&w);
	/* the ack has not come: the group is not durable yet */
	zmq_pollitem_t it = {d1, 0, ZMQ_POLLIN, 0};
	assert_int_equal(zmq_poll(&it, 1, 0), 0);
	assert_int_equal(write(fd, "g", 1), 1);
	close(fd);
	assert_int_equal(zmq_poll(&it, 1, 10000), 1);
	uint8_t ackbuf[65536];
	int n = zmq_recv(d1, ackbuf, sizeof ackbuf, 0);
	assert_true(n > 0);
	th_ack a;
	const char *why = NULL;
	assert_int_equal(th_wire_decode_ack(ackbuf, (size_t)n, &a, &why), 0);
	assert_int_equal(a.id, 77);
	assert_int_equal(a.n_results, 1);
	assert_int_equal(a.results[0].status, TH_ACK_ACCEPTED);
	assert_true(a.commit > 0);
	th_ack_free(&a);
	assert_int_equal(cf_query_total(f, "D1", "da_hoan_thanh", &reported), 4);
	assert_int_equal(reported, 1);
	assert_int_equal(cf_hello(other, &w, NULL), 0);
	assert_int_equal(w.n_revs, 1);
	assert_int_equal(w.revs[0].rev, 3);
	th_welcome_free(&w);
	th_report_destroy(&r);
	zmq_close(other);
	zmq_close(d1);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(hello_welcome, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(dedup_rules, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(invalid_report_rejected_with_place, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(scope_rules, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(not_expected_rejected, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(unknown_key_refused, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(revoked_after_sighup, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(revoked_reader_query_refused, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(hostile_bytes, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(pub_prefix_terminated, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(pub_level_prefix, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(pub_builds_only_what_is_subscribed, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(revoked_reader_cut_off_from_pub, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(acked_survives_sigkill, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(sigterm_exits_cleanly, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(keygen_and_check, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(report_and_history_queries, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(reader_queries_bind_nothing, cf_setup, cf_teardown),
		cmocka_unit_test_setup_teardown(query_and_hello_answered_while_commit_held, hold_setup,
		                                hold_teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

/* test_agent.c -- the agent's protocol client (publisher/agent.h) against a fake
 * collector in this process: a ROUTER socket on ipc:// that answers hello and
 * submit as the test says (welcome, accepted, duplicate, stale, rejected,
 * retry_later, busy, silence, a dropped connection), and CURVE servers that
 * refuse the agent's key or hold another key.  Every wait is bounded; no case
 * asserts how long anything took. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "agent.h"
#include "intake.h"
#include "outbox.h"
#include "outbox_fixture.h"
#include "testutil.h"
#include "th_clock.h"
#include "th_wire.h"

#define WAIT_MS 20000   /* the bound of every wait (a hold is at most 2.5 s) */

typedef struct msg {
	th_msg_type type;
	th_hello hello;
	th_submit_decoded sub;
} msg;

typedef struct fx {
	char *dir;
	char outbox[4200], ep[4300];
	th_outbox *ob;
	th_agent *ag;
	th_agent_opts opts;
	th_defset *defs;              /* schema/appendices, to make and decode reports */
	char *pl1, *pl2;              /* definition texts */
	/* the fake collector */
	void *ctx, *router, *zap;
	uint8_t peer[256];
	size_t peer_len;
	int auto_welcome;             /* answer every hello with the welcome below */
	char *w_defs[2];
	size_t w_n_defs;
	th_rev_entry *w_revs;
	size_t w_n_revs;
	th_limits w_lim;
	uint8_t store[TH_STORE_UUID_LEN];
	int hellos;
	char zap_status[4];           /* the ZAP handler's answer ("400": refused) */
	int zap_requests;
	/* what the agent said */
	char log[16384];
	size_t log_len;
	int results, last_status, last_code;
} fx;

static int64_t now_ms(void) { return th_mono_us() / 1000; }

/* --- the agent's hooks ------------------------------------------------------------- */
static void on_log(void *ctx, int level, const char *m)
{
	fx *f = ctx;
	static const char *names[] = {"error", "warn", "info", "debug"};
	int n = snprintf(f->log + f->log_len, sizeof f->log - f->log_len, "%s: %s\n",
	                 level >= 0 && level < 4 ? names[level] : "?", m);
	if (n > 0 && f->log_len + (size_t)n < sizeof f->log)
		f->log_len += (size_t)n;
}

static void on_result(void *ctx, const th_ack *a, const th_ack_result *r)
{
	(void)a;
	fx *f = ctx;
	f->results++;
	f->last_status = r->status;
	f->last_code = r->code;
}

/* --- the fake collector ------------------------------------------------------------ */
static void router_open(fx *f)
{
	f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
	assert_non_null(f->router);
	int linger = 0;
	zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof linger);
	assert_int_equal(zmq_bind(f->router, f->ep), 0);
}

/* Drops every connection: the ROUTER goes, a new one binds the endpoint. */
static void router_restart(fx *f)
{
	zmq_close(f->router);
	router_open(f);
}

static void send_frame(fx *f, uint8_t *buf, size_t len)
{
	assert_true(zmq_send(f->router, f->peer, f->peer_len, ZMQ_SNDMORE) >= 0);
	assert_true(zmq_send(f->router, buf, len, 0) >= 0);
	free(buf);
}

static void send_welcome(fx *f, uint64_t id)
{
	th_welcome w;
	memset(&w, 0, sizeof w);
	w.id = id;
	memcpy(w.store, f->store, TH_STORE_UUID_LEN);
	w.unit = "U1";
	w.limits = f->w_lim;
	w.defs = f->w_defs;
	w.n_defs = f->w_n_defs;
	w.revs = f->w_revs;
	w.n_revs = f->w_n_revs;
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(th_wire_encode_welcome(&w, &buf, &len), 0);
	send_frame(f, buf, len);
}

/* The ack of every report of s: statuses[i] (one status for all when n == 1). */
static void send_ack(fx *f, uint64_t id, const th_submit_decoded *s, const th_ack_status *st,
                     size_t n, int code, const char *message)
{
	th_ack a;
	memset(&a, 0, sizeof a);
	a.id = id;
	memcpy(a.store, f->store, TH_STORE_UUID_LEN);
	a.commit = 42;
	a.commit_time = th_now_us();
	th_ack_result *res = calloc(s->n_reports, sizeof *res);
	assert_non_null(res);
	for (size_t i = 0; i < s->n_reports; i++) {
		res[i].status = st[n == 1 ? 0 : i];
		res[i].unit = s->unit[i];
		res[i].appendix = s->appendix[i];
		res[i].period = s->period[i];
		res[i].rev = s->rev[i];
		res[i].stored_rev = s->rev[i];
		if (res[i].status != TH_ACK_ACCEPTED && res[i].status != TH_ACK_DUPLICATE) {
			res[i].code = code;
			res[i].message = (char *)message;
		}
	}
	a.results = res;
	a.n_results = s->n_reports;
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(th_wire_encode_ack(&a, &buf, &len), 0);
	free(res);
	send_frame(f, buf, len);
}

static void accept_all(fx *f, const msg *m)
{
	th_ack_status st = TH_ACK_ACCEPTED;
	send_ack(f, m->sub.id, &m->sub, &st, 1, 0, NULL);
}

static void send_error(fx *f, uint64_t id, int code, int retry, const char *message)
{
	th_error_msg e = {id, code, (char *)message, retry};
	uint8_t *buf = NULL;
	size_t len = 0;
	assert_int_equal(th_wire_encode_error(&e, &buf, &len), 0);
	send_frame(f, buf, len);
}

static void msg_free(msg *m)
{
	th_hello_free(&m->hello);
	th_submit_decoded_free(&m->sub);
	memset(m, 0, sizeof *m);
}

/* Answers the ZAP requests of a CURVE server with f->zap_status. */
static void serve_zap(fx *f)
{
	zmq_pollitem_t it = {f->zap, 0, ZMQ_POLLIN, 0};
	while (zmq_poll(&it, 1, 0) > 0) {
		char frames[8][256];
		int lens[8], nf = 0, more = 1;
		while (more && nf < 8) {
			lens[nf] = zmq_recv(f->zap, frames[nf], sizeof frames[nf], 0);
			nf++;
			size_t ml = sizeof more;
			zmq_getsockopt(f->zap, ZMQ_RCVMORE, &more, &ml);
		}
		zmq_send(f->zap, "1.0", 3, ZMQ_SNDMORE);
		zmq_send(f->zap, frames[1], lens[1] > 0 ? (size_t)lens[1] : 0, ZMQ_SNDMORE);
		zmq_send(f->zap, f->zap_status, 3, ZMQ_SNDMORE);
		zmq_send(f->zap, "unknown key", 11, ZMQ_SNDMORE);
		zmq_send(f->zap, "", 0, ZMQ_SNDMORE);
		zmq_send(f->zap, "", 0, 0);
		f->zap_requests++;
	}
}

/* One turn of both sides.  1 when the collector got a message for the test in
 * *m (a hello answered by auto_welcome is not one). */
static int turn(fx *f, msg *m)
{
	th_agent_poll(f->ag, 10, NULL, 0);
	if (f->zap)
		serve_zap(f);
	zmq_pollitem_t it = {f->router, 0, ZMQ_POLLIN, 0};
	if (zmq_poll(&it, 1, 0) <= 0)
		return 0;
	int n = zmq_recv(f->router, f->peer, sizeof f->peer, 0);
	assert_true(n > 0);
	f->peer_len = (size_t)n;
	zmq_msg_t z;
	zmq_msg_init(&z);
	assert_true(zmq_msg_recv(&z, f->router, 0) >= 0);
	const uint8_t *buf = zmq_msg_data(&z);
	size_t len = zmq_msg_size(&z);
	memset(m, 0, sizeof *m);
	const char *why = NULL;
	assert_int_equal(th_wire_type(buf, len, &m->type, &why), 0);
	if (m->type == TH_MSG_HELLO) {
		assert_int_equal(th_wire_decode_hello(buf, len, &m->hello, &why), 0);
		f->hellos++;
	} else {
		assert_int_equal(m->type, TH_MSG_SUBMIT);
		assert_int_equal(th_wire_decode_submit(buf, len, f->defs, &th_limits_default, &m->sub, &why),
		                 0);
	}
	zmq_msg_close(&z);
	if (m->type == TH_MSG_HELLO && f->auto_welcome) {
		send_welcome(f, m->hello.id);
		msg_free(m);
		return 0;
	}
	return 1;
}

/* Turns until the collector gets a message of type t (into *m).  Fails the
 * test after WAIT_MS. */
static void expect(fx *f, th_msg_type t, msg *m)
{
	int64_t end = now_ms() + WAIT_MS;
	while (now_ms() < end) {
		if (!turn(f, m))
			continue;
		if (m->type == t)
			return;
		fail_msg("the collector got message type %d, expected %d", (int)m->type, (int)t);
	}
	fail_msg("no message of type %d from the agent within %d ms", (int)t, WAIT_MS);
}

/* Turns until pred(f) holds; fails after WAIT_MS.  Any message the collector
 * gets meanwhile fails the test. */
static void until(fx *f, int (*pred)(fx *f), const char *what)
{
	int64_t end = now_ms() + WAIT_MS;
	while (now_ms() < end) {
		if (pred(f))
			return;
		msg m;
		if (turn(f, &m)) {
			int t = (int)m.type;
			msg_free(&m);
			fail_msg("unexpected message type %d while waiting for %s", t, what);
		}
	}
	fail_msg("not within %d ms: %s", WAIT_MS, what);
}

/* Turns for n rounds, collecting the submits that arrive (none answered). */
static size_t gather(fx *f, int rounds, msg *out, size_t cap)
{
	size_t n = 0;
	for (int i = 0; i < rounds; i++) {
		msg m;
		if (!turn(f, &m))
			continue;
		assert_int_equal(m.type, TH_MSG_SUBMIT);
		assert_true(n < cap);
		out[n++] = m;
	}
	return n;
}

static int welcomed(fx *f) { return th_agent_welcomed(f->ag); }
static int nothing_pending(fx *f) { return th_outbox_count(f->ob, TH_OB_TPENDING) == 0; }

/* --- set-up ------------------------------------------------------------------------- */
static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->dir = tu_tmpdir();
	assert_non_null(f->dir);
	snprintf(f->outbox, sizeof f->outbox, "%s/outbox", f->dir);
	snprintf(f->ep, sizeof f->ep, "ipc://%s/collector.sock", f->dir);
	assert_int_equal(th_outbox_open(f->outbox, &f->ob, NULL), 0);
	th_diag *d = th_diag_new();
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &f->defs, d), 0);
	th_diag_destroy(&d);
	f->pl1 = tu_read_file(tu_src("schema/appendices/PL1-v1.def"), NULL);
	f->pl2 = tu_read_file(tu_src("schema/appendices/PL2-v1.def"), NULL);
	assert_non_null(f->pl1);
	assert_non_null(f->pl2);
	f->w_defs[0] = f->pl1;
	f->w_n_defs = 1;
	f->w_lim = th_limits_default;
	memset(f->store, 0x11, sizeof f->store);
	f->auto_welcome = 1;
	memcpy(f->zap_status, "200", 4);
	f->ctx = zmq_ctx_new();
	assert_non_null(f->ctx);
	f->opts.endpoint = f->ep;
	f->opts.unit = "U1";
	f->opts.insecure = 1;
	f->opts.reconnect_max_ms = 200;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	th_agent_destroy(&f->ag);
	th_outbox_close(&f->ob);
	if (f->router)
		zmq_close(f->router);
	if (f->zap)
		zmq_close(f->zap);
	zmq_ctx_term(f->ctx);
	th_defset_destroy(&f->defs);
	free(f->pl1);
	free(f->pl2);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static void start(fx *f)
{
	if (!f->router)
		router_open(f);
	th_agent_hooks h = {f, on_log, on_result};
	assert_int_equal(th_agent_new(&f->opts, f->ob, &h, &f->ag), 0);
}

/* A valid PL1 2021 file of unit (content from seed) queued; its rev.  file:
 * whether the entry remembers the file (for revalidation). */
static uint64_t queue_pl1(fx *f, const char *unit, int seed, int file)
{
	char path[4400];
	snprintf(path, sizeof path, "%s/%s-%d.csv", f->dir, unit, seed);
	of_pl1_file(path, unit, seed);
	th_report *r = NULL;
	uint8_t hash[TH_HASH_LEN];
	th_diag *d = th_diag_new();
	int rc = th_intake_file(path, f->defs, &r, hash, d);
	if (rc)
		fail_msg("%s: %s", path, th_diag_count(d) ? th_diag_text(d, 0) : th_strerror(rc));
	th_diag_destroy(&d);
	th_ob_enqueued e;
	const th_def *def = th_defset_get(f->defs, r->appendix, r->version);
	assert_int_equal(th_outbox_enqueue(f->ob, r, def, hash, file ? path : NULL, 0, th_now_us(), &e),
	                 0);
	assert_int_equal(e.outcome, TH_OB_NEW);
	th_report_destroy(&r);
	if (f->ag)
		th_agent_kick(f->ag);
	return e.rev;
}

static int count_table(fx *f, th_ob_table t) { return (int)th_outbox_count(f->ob, t); }

/* The pending entry of (unit, rev): attempts and the last answer. */
static th_ob_entry pending_entry(fx *f, const char *unit, uint64_t rev)
{
	th_ob_entry e;
	assert_int_equal(th_outbox_get_pending(f->ob, unit, "PL1", "2021", rev, f->defs, &e), 0);
	return e;
}

/* --- cases -------------------------------------------------------------------------- */

/* Hello on every handshake, then the welcome: definitions cached as in force,
 * the collector's revs raise the next stamp, the contact recorded. */
static void hello_welcome(void **state)
{
	fx *f = *state;
	th_rev_entry rv = {"U1", "PL1", "2021", 5000};
	f->w_revs = &rv;
	f->w_n_revs = 1;
	f->auto_welcome = 0;
	start(f);
	msg m;
	expect(f, TH_MSG_HELLO, &m);
	assert_string_equal(m.hello.unit, "U1");
	assert_non_null(strstr(m.hello.agent, "tonghop-publish"));
	assert_false(th_agent_welcomed(f->ag));
	send_welcome(f, m.hello.id);
	msg_free(&m);
	until(f, welcomed, "the welcome");
	th_defset *d = NULL;
	assert_int_equal(th_outbox_load_defs(f->ob, 1, &d), 0);
	assert_non_null(th_defset_get(d, "PL1", 1));
	th_defset_destroy(&d);
	th_ob_meta meta;
	assert_int_equal(th_outbox_meta(f->ob, &meta), 0);
	assert_string_equal(meta.collector, f->ep);
	assert_true(meta.last_contact > 0);
	assert_string_equal(meta.last_error, "");
	assert_non_null(strstr(f->log, "connected to"));
	/* a stamp after the welcome is above the collector's rev, even with a clock at 1 */
	const th_def *def = th_defset_get(f->defs, "PL1", 1);
	th_report *r = th_report_new("U1", "PL1", 1, "2021", 0, def->n_cols);
	assert_true(th_report_add_row(r) >= 0);
	uint8_t h[TH_HASH_LEN] = {1};
	th_ob_enqueued e;
	assert_int_equal(th_outbox_enqueue(f->ob, r, def, h, NULL, 0, 1, &e), 0);
	assert_int_equal(e.rev, 5001);
	th_report_destroy(&r);
	assert_int_equal(f->hellos, 1);
}

/* Pending reports go in one submit; accepted acks move them to `acked` with
 * the receipt and tell the result hook. */
static void submit_accepted(void **state)
{
	fx *f = *state;
	uint64_t r1 = queue_pl1(f, "U1", 1, 1), r2 = queue_pl1(f, "U2", 2, 1);
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	assert_int_equal(m.sub.n_reports, 2);
	for (size_t i = 0; i < 2; i++) {
		assert_non_null(m.sub.reports[i]);
		assert_int_equal(m.sub.rev[i], !strcmp(m.sub.unit[i], "U1") ? r1 : r2);
	}
	accept_all(f, &m);
	msg_free(&m);
	until(f, nothing_pending, "both acknowledged");
	assert_int_equal(count_table(f, TH_OB_TACKED), 2);
	assert_int_equal(f->results, 2);
	assert_int_equal(f->last_status, TH_ACK_ACCEPTED);
	th_ob_meta meta;
	assert_int_equal(th_outbox_meta(f->ob, &meta), 0);
	assert_int_equal(meta.has_store, 1);
	assert_memory_equal(meta.store, f->store, TH_STORE_UUID_LEN);
}

/* duplicate, stale and rejected are final: nothing stays pending, the
 * rejection keeps the reason. */
static void final_answers(void **state)
{
	fx *f = *state;
	queue_pl1(f, "U1", 1, 0);
	queue_pl1(f, "U2", 2, 0);
	queue_pl1(f, "U3", 3, 0);
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	assert_int_equal(m.sub.n_reports, 3);
	th_ack_status st[3];
	for (size_t i = 0; i < 3; i++)
		st[i] = !strcmp(m.sub.unit[i], "U1") ? TH_ACK_DUPLICATE
		        : !strcmp(m.sub.unit[i], "U2") ? TH_ACK_STALE : TH_ACK_REJECTED;
	send_ack(f, m.sub.id, &m.sub, st, 3, TH_ESCOPE, "U3 is outside this key's subtree");
	msg_free(&m);
	until(f, nothing_pending, "the answers");
	assert_int_equal(count_table(f, TH_OB_TACKED), 2);
	assert_int_equal(count_table(f, TH_OB_TREJECTED), 1);
	assert_int_equal(f->results, 3);
}

/* retry_later keeps the report pending with the reason; the agent sends the
 * same rev again after its hold. */
static void retry_later_resent(void **state)
{
	fx *f = *state;
	uint64_t rev = queue_pl1(f, "U1", 1, 0);
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	th_ack_status st = TH_ACK_RETRY_LATER;
	send_ack(f, m.sub.id, &m.sub, &st, 1, TH_ENOSPC, "the collector's disk is full");
	uint64_t first_id = m.sub.id;
	msg_free(&m);
	expect(f, TH_MSG_SUBMIT, &m);
	assert_int_equal(m.sub.n_reports, 1);
	assert_int_equal(m.sub.rev[0], rev);       /* not stamped again */
	assert_true(m.sub.id != first_id);
	th_ob_entry e = pending_entry(f, "U1", rev);
	assert_string_equal(e.message, "the collector's disk is full");
	assert_int_equal(e.code, TH_ENOSPC);
	assert_int_equal(e.attempts, 2);
	th_ob_entry_free(&e);
	accept_all(f, &m);
	msg_free(&m);
	until(f, nothing_pending, "the second answer");
}

/* A submit refused whole (busy: too many in flight) is sent again, same revs. */
static void busy_resent(void **state)
{
	fx *f = *state;
	uint64_t rev = queue_pl1(f, "U1", 1, 0);
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	send_error(f, m.sub.id, TH_EBUSY, 1, "too many submits in flight");
	msg_free(&m);
	expect(f, TH_MSG_SUBMIT, &m);
	assert_int_equal(m.sub.rev[0], rev);
	assert_int_equal(count_table(f, TH_OB_TPENDING), 1);
	accept_all(f, &m);
	msg_free(&m);
	until(f, nothing_pending, "the answer");
	assert_non_null(strstr(f->log, "too many submits in flight"));
}

/* The collector goes away before it answers: the agent reconnects, says
 * hello again and sends the same rev; it is counted once. */
static void dropped_connection_resent(void **state)
{
	fx *f = *state;
	uint64_t rev = queue_pl1(f, "U1", 1, 0);
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	msg_free(&m);
	router_restart(f);
	expect(f, TH_MSG_SUBMIT, &m);
	assert_int_equal(f->hellos, 2);
	assert_int_equal(m.sub.rev[0], rev);
	accept_all(f, &m);
	msg_free(&m);
	until(f, nothing_pending, "the answer");
	assert_int_equal(count_table(f, TH_OB_TACKED), 1);
	assert_non_null(strstr(f->log, "lost the connection"));
}

/* No ack before the ack timeout: the same rev goes again. */
static void ack_timeout_resent(void **state)
{
	fx *f = *state;
	f->opts.ack_timeout_ms = 300;
	uint64_t rev = queue_pl1(f, "U1", 1, 0);
	start(f);
	msg m1, m2;
	expect(f, TH_MSG_SUBMIT, &m1);
	expect(f, TH_MSG_SUBMIT, &m2);   /* m1 never answered */
	assert_int_equal(m2.sub.rev[0], rev);
	assert_true(m2.sub.id != m1.sub.id);
	assert_non_null(strstr(f->log, "no ack from the collector in time"));
	accept_all(f, &m2);
	msg_free(&m1);
	msg_free(&m2);
	until(f, nothing_pending, "the answer");
}

/* Acks are matched by key and rev: an ack carrying the id of a submit sent on
 * an earlier connection still counts. */
static void ack_of_earlier_connection(void **state)
{
	fx *f = *state;
	queue_pl1(f, "U1", 1, 0);
	start(f);
	msg m1, m2;
	expect(f, TH_MSG_SUBMIT, &m1);
	router_restart(f);
	expect(f, TH_MSG_SUBMIT, &m2);
	th_ack_status st = TH_ACK_ACCEPTED;
	send_ack(f, m1.sub.id, &m2.sub, &st, 1, 0, NULL);   /* the old id */
	msg_free(&m1);
	msg_free(&m2);
	until(f, nothing_pending, "the answer");
	assert_int_equal(f->results, 1);
}

/* The welcome's limits: at most max_inflight submits unanswered, at most
 * max_reports reports each; an answer frees room for the next. */
static void inflight_limits(void **state)
{
	fx *f = *state;
	f->w_lim.max_inflight = 2;
	f->w_lim.max_reports = 1;
	for (int i = 0; i < 4; i++) {
		char unit[8];
		snprintf(unit, sizeof unit, "U%d", i);
		queue_pl1(f, unit, i, 0);
	}
	start(f);
	msg got[8];
	expect(f, TH_MSG_SUBMIT, &got[0]);
	expect(f, TH_MSG_SUBMIT, &got[1]);
	/* a while longer (far below the ack timeout): no third before an answer */
	assert_int_equal(gather(f, 50, got + 2, 6), 0);
	assert_true(th_agent_busy(f->ag));
	for (size_t i = 0; i < 2; i++)
		assert_int_equal(got[i].sub.n_reports, 1);
	accept_all(f, &got[0]);
	expect(f, TH_MSG_SUBMIT, &got[2]);
	assert_int_equal(got[2].sub.n_reports, 1);
	accept_all(f, &got[1]);
	accept_all(f, &got[2]);
	expect(f, TH_MSG_SUBMIT, &got[3]);
	accept_all(f, &got[3]);
	until(f, nothing_pending, "all four answered");
	assert_int_equal(count_table(f, TH_OB_TACKED), 4);
	assert_false(th_agent_busy(f->ag));
	for (size_t i = 0; i < 4; i++)
		msg_free(&got[i]);
}

/* A report larger than the collector's frame limit is rejected by the agent
 * itself (too_big, the sizes named) instead of being sent forever; a submit
 * refused as too big is split. */
static void size_limits(void **state)
{
	fx *f = *state;
	f->w_lim.max_msg_bytes = 64;
	queue_pl1(f, "U1", 1, 0);
	start(f);
	until(f, nothing_pending, "the agent's rejection");
	assert_int_equal(count_table(f, TH_OB_TREJECTED), 1);
	assert_non_null(strstr(f->log, "over the collector's limit of 64 bytes"));
	assert_int_equal(f->last_code, 0);   /* no collector answer: the hook was not told */

	th_agent_destroy(&f->ag);
	f->w_lim = th_limits_default;
	f->w_lim.max_reports = 4;
	for (int i = 0; i < 4; i++) {
		char unit[8];
		snprintf(unit, sizeof unit, "V%d", i);
		queue_pl1(f, unit, i, 0);
	}
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	assert_int_equal(m.sub.n_reports, 4);
	send_error(f, m.sub.id, TH_ETOOBIG, 1, "message too big");
	msg_free(&m);
	/* each report waits out its own (jittered) hold, then goes in submits of
	 * at most half as many */
	size_t seen = 0;
	while (seen < 4) {
		expect(f, TH_MSG_SUBMIT, &m);
		assert_true(m.sub.n_reports >= 1 && m.sub.n_reports <= 2);
		seen += m.sub.n_reports;
		accept_all(f, &m);
		msg_free(&m);
	}
	assert_int_equal(seen, 4);
	until(f, nothing_pending, "the answers");
	assert_int_equal(count_table(f, TH_OB_TACKED), 4);
}

/* retry_later "definition changed": the agent asks for the definitions again
 * (a new hello); a welcome without the report's version turns it into a
 * rejection that says what happened (the file no longer passes, or is
 * unknown). */
static void definition_changed(void **state)
{
	fx *f = *state;
	uint64_t with_file = queue_pl1(f, "U1", 1, 1);
	uint64_t without = queue_pl1(f, "U2", 2, 0);
	(void)with_file;
	(void)without;
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	th_ack_status st = TH_ACK_RETRY_LATER;
	send_ack(f, m.sub.id, &m.sub, &st, 1, TH_EDEFCHANGED, "PL1 version 2 is in force");
	msg_free(&m);
	/* the next welcome has PL2 only */
	f->w_defs[0] = f->pl2;
	f->auto_welcome = 0;
	expect(f, TH_MSG_HELLO, &m);
	send_welcome(f, m.hello.id);
	msg_free(&m);
	until(f, nothing_pending, "the revalidation");
	assert_int_equal(count_table(f, TH_OB_TREJECTED), 2);
	assert_non_null(strstr(f->log, "the collector says a definition changed"));
	assert_non_null(strstr(f->log, "no longer in force and the file no longer passes"));
	assert_non_null(strstr(f->log, "(the original file is unknown)"));
	assert_int_equal(f->last_status, TH_ACK_REJECTED);
	assert_int_equal(f->last_code, TH_EDEFCHANGED);
}

/* A welcome from another store (restored from a backup) gets the latest
 * acknowledged revisions again, same revs. */
static void store_change_resent(void **state)
{
	fx *f = *state;
	uint64_t rev = queue_pl1(f, "U1", 1, 0);
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	accept_all(f, &m);
	msg_free(&m);
	until(f, nothing_pending, "the answer");
	memset(f->store, 0x22, sizeof f->store);
	router_restart(f);
	expect(f, TH_MSG_SUBMIT, &m);
	assert_int_equal(m.sub.rev[0], rev);
	assert_non_null(strstr(f->log, "not the one that acknowledged our reports"));
	accept_all(f, &m);
	msg_free(&m);
	until(f, nothing_pending, "the answer from the new store");
	th_ob_meta meta;
	assert_int_equal(th_outbox_meta(f->ob, &meta), 0);
	assert_memory_equal(meta.store, f->store, TH_STORE_UUID_LEN);
}

/* The same store but without an acknowledged revision (an older backup of
 * it): the welcome's revs show it, the revision goes again. */
static void revs_behind_resent(void **state)
{
	fx *f = *state;
	uint64_t rev = queue_pl1(f, "U1", 1, 0);
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	accept_all(f, &m);
	msg_free(&m);
	until(f, nothing_pending, "the answer");
	th_rev_entry rv = {"U1", "PL1", "2021", rev - 1};
	f->w_revs = &rv;
	f->w_n_revs = 1;
	router_restart(f);
	expect(f, TH_MSG_SUBMIT, &m);
	assert_int_equal(m.sub.rev[0], rev);
	assert_non_null(strstr(f->log, "lacks 1 report(s) it acknowledged before"));
	accept_all(f, &m);
	msg_free(&m);
	until(f, nothing_pending, "the answer");
	f->w_revs = NULL;
	f->w_n_revs = 0;
}

/* A CURVE server: the agent's keypair and the server's public key. */
static void curve_setup(fx *f, const char *server_sec, const char *told_pub)
{
	f->zap = zmq_socket(f->ctx, ZMQ_REP);
	assert_non_null(f->zap);
	int linger = 0;
	zmq_setsockopt(f->zap, ZMQ_LINGER, &linger, sizeof linger);
	assert_int_equal(zmq_bind(f->zap, "inproc://zeromq.zap.01"), 0);
	f->router = zmq_socket(f->ctx, ZMQ_ROUTER);
	int one = 1;
	zmq_setsockopt(f->router, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(f->router, ZMQ_CURVE_SERVER, &one, sizeof one);
	zmq_setsockopt(f->router, ZMQ_CURVE_SECRETKEY, server_sec, 40);
	assert_int_equal(zmq_bind(f->router, f->ep), 0);
	f->opts.insecure = 0;
	assert_int_equal(zmq_curve_keypair(f->opts.public_key, f->opts.secret_key), 0);
	memcpy(f->opts.server_key, told_pub, 41);
}

static int auth_refused(fx *f) { return th_agent_auth_refusals(f->ag) > 0; }
static int handshake_failed(fx *f) { return th_agent_handshake_failures(f->ag) > 0; }

/* The collector's ZAP handler refuses the key: the handshake event is counted
 * and recorded for status, nothing is sent. */
static void key_refused(void **state)
{
	fx *f = *state;
	char spub[41], ssec[41];
	assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
	curve_setup(f, ssec, spub);
	memcpy(f->zap_status, "400", 4);
	queue_pl1(f, "U1", 1, 0);
	start(f);
	until(f, auth_refused, "the refusal");
	assert_true(f->zap_requests >= 1);
	assert_int_equal(f->hellos, 0);
	assert_false(th_agent_welcomed(f->ag));
	th_ob_meta meta;
	assert_int_equal(th_outbox_meta(f->ob, &meta), 0);
	assert_non_null(strstr(meta.last_error, "refused this key"));
	assert_non_null(strstr(f->log, "refused this key"));
	assert_int_equal(count_table(f, TH_OB_TPENDING), 1);   /* kept for when it is registered */
}

/* The agent holds another server key than the collector's: the handshake
 * fails, counted and said, instead of a silent timeout. */
static void wrong_server_key(void **state)
{
	fx *f = *state;
	char spub[41], ssec[41], opub[41], osec[41];
	assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
	assert_int_equal(zmq_curve_keypair(opub, osec), 0);
	curve_setup(f, ssec, opub);
	start(f);
	until(f, handshake_failed, "the handshake failure");
	assert_int_equal(f->hellos, 0);
	assert_int_equal(th_agent_auth_refusals(f->ag), 0);
	assert_non_null(strstr(f->log, "--server-key"));
}

/* With the right keys the same CURVE server welcomes the agent. */
static void curve_accepted(void **state)
{
	fx *f = *state;
	char spub[41], ssec[41];
	assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
	curve_setup(f, ssec, spub);
	uint64_t rev = queue_pl1(f, "U1", 1, 0);
	start(f);
	msg m;
	expect(f, TH_MSG_SUBMIT, &m);
	assert_int_equal(m.sub.rev[0], rev);
	accept_all(f, &m);
	msg_free(&m);
	until(f, nothing_pending, "the answer");
	assert_true(f->zap_requests >= 1);
	assert_int_equal(th_agent_handshake_failures(f->ag), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(hello_welcome, setup, teardown),
		cmocka_unit_test_setup_teardown(submit_accepted, setup, teardown),
		cmocka_unit_test_setup_teardown(final_answers, setup, teardown),
		cmocka_unit_test_setup_teardown(retry_later_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(busy_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(dropped_connection_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(ack_timeout_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(ack_of_earlier_connection, setup, teardown),
		cmocka_unit_test_setup_teardown(inflight_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(size_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(definition_changed, setup, teardown),
		cmocka_unit_test_setup_teardown(store_change_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(revs_behind_resent, setup, teardown),
		cmocka_unit_test_setup_teardown(key_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(wrong_server_key, setup, teardown),
		cmocka_unit_test_setup_teardown(curve_accepted, setup, teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

/* agent.c -- connection, hello / welcome, delivery and acks (agent.h). */
#include "agent.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "th_clock.h"
#include "intake.h"
#include "th_sock.h"

#define AG_HELLO_MIN_MS 1000
#define AG_HELLO_MAX_MS 30000
#define AG_RETRY_MIN_MS 1000
#define AG_RETRY_MAX_MS 60000

typedef struct ag_item {
	char *unit, *appendix, *period;
	uint64_t rev;
} ag_item;

typedef struct ag_flight {
	uint64_t id;
	int64_t deadline;          /* mono ms */
	ag_item *items;
	size_t n;
} ag_flight;

typedef struct ag_hold {
	ag_item it;
	int64_t until;             /* mono ms */
} ag_hold;

struct th_agent {
	th_agent_opts o;
	th_agent_hooks h;
	th_outbox *ob;
	void *zctx, *sock, *mon;
	int connected, welcomed;
	uint64_t next_id;
	int64_t next_hello;        /* mono ms, 0 = now */
	int hello_backoff;
	th_limits lim;
	th_defset *defs_all;       /* every cached definition (to encode) */
	th_defset *defs_inforce;   /* the welcome's (to revalidate) */
	ag_flight *fl;
	size_t n_fl, cap_fl;
	ag_hold *hold;
	size_t n_hold, cap_hold;
	int ack_backoff;           /* ms, grows on ack timeouts */
	int kicked;
	int auth_refusals, hs_failures;
	int tcp_up, hs_drops;      /* connections dropped during the handshake, in a row */
	char mon_ep[64];
};

static int jitter(int ms)
{
	/* +-25 % */
	if (ms < 4)
		return ms;
	return ms - ms / 4 + (int)(random() % (ms / 2 + 1));
}

static void logf_(th_agent *a, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void logf_(th_agent *a, int level, const char *fmt, ...)
{
	if (!a->h.log)
		return;
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	a->h.log(a->h.ctx, level, buf);
}

/* --- items --------------------------------------------------------------------- */
static void item_free(ag_item *it)
{
	free(it->unit);
	free(it->appendix);
	free(it->period);
	memset(it, 0, sizeof *it);
}

static int item_set(ag_item *it, const char *u, const char *ap, const char *p, uint64_t rev)
{
	it->unit = strdup(u);
	it->appendix = strdup(ap);
	it->period = strdup(p);
	it->rev = rev;
	if (!it->unit || !it->appendix || !it->period) {
		item_free(it);
		return TH_ENOMEM;
	}
	return 0;
}

static int item_eq(const ag_item *it, const char *u, const char *ap, const char *p, uint64_t rev)
{
	return it->rev == rev && !strcmp(it->unit, u) && !strcmp(it->appendix, ap) &&
	       !strcmp(it->period, p);
}

static void flight_drop(th_agent *a, size_t i)
{
	for (size_t j = 0; j < a->fl[i].n; j++)
		item_free(&a->fl[i].items[j]);
	free(a->fl[i].items);
	a->fl[i] = a->fl[--a->n_fl];
}

static void flights_clear(th_agent *a)
{
	while (a->n_fl)
		flight_drop(a, a->n_fl - 1);
}

static int in_flight(const th_agent *a, const th_ob_entry *e)
{
	for (size_t i = 0; i < a->n_fl; i++)
		for (size_t j = 0; j < a->fl[i].n; j++)
			if (item_eq(&a->fl[i].items[j], e->unit, e->appendix, e->period, e->rev))
				return 1;
	return 0;
}

static int held(th_agent *a, const th_ob_entry *e, int64_t now)
{
	for (size_t i = 0; i < a->n_hold; i++)
		if (item_eq(&a->hold[i].it, e->unit, e->appendix, e->period, e->rev)) {
			if (a->hold[i].until > now)
				return 1;
			item_free(&a->hold[i].it);
			a->hold[i] = a->hold[--a->n_hold];
			return 0;
		}
	return 0;
}

static void hold_add(th_agent *a, const char *u, const char *ap, const char *p, uint64_t rev,
                     int ms)
{
	int64_t until = (th_mono_us() / 1000) + jitter(ms);
	for (size_t i = 0; i < a->n_hold; i++)
		if (item_eq(&a->hold[i].it, u, ap, p, rev)) {
			a->hold[i].until = until;
			return;
		}
	if (a->n_hold == a->cap_hold) {
		size_t nc = a->cap_hold ? a->cap_hold * 2 : 16;
		ag_hold *nh = realloc(a->hold, nc * sizeof *nh);
		if (!nh)
			return;
		a->hold = nh;
		a->cap_hold = nc;
	}
	if (item_set(&a->hold[a->n_hold].it, u, ap, p, rev) == 0) {
		a->hold[a->n_hold].until = until;
		a->n_hold++;
	}
}

/* --- socket -------------------------------------------------------------------- */
static void reload_defs(th_agent *a)
{
	th_defset *all = NULL, *inforce = NULL;
	if (th_outbox_load_defs(a->ob, 0, &all) == 0) {
		th_defset_destroy(&a->defs_all);
		a->defs_all = all;
	}
	if (th_outbox_load_defs(a->ob, 1, &inforce) == 0) {
		th_defset_destroy(&a->defs_inforce);
		a->defs_inforce = inforce;
	}
}

int th_agent_new(const th_agent_opts *o, th_outbox *ob, const th_agent_hooks *h, th_agent **out)
{
	if (!o || !ob || !out || !o->endpoint)
		return TH_EINVAL;
	th_agent *a = calloc(1, sizeof *a);
	if (!a)
		return TH_ENOMEM;
	a->o = *o;
	if (h)
		a->h = *h;
	a->ob = ob;
	a->lim = th_limits_default;
	a->next_id = (uint64_t)th_now_us();
	a->hello_backoff = AG_HELLO_MIN_MS;
	a->ack_backoff = o->ack_timeout_ms > 0 ? o->ack_timeout_ms : 10000;
	srandom((unsigned)(th_now_us() ^ (int64_t)getpid()));
	int hb = o->heartbeat_ms > 0 ? o->heartbeat_ms : 2000;
	a->zctx = zmq_ctx_new();
	if (!a->zctx)
		goto fail;
	a->sock = zmq_socket(a->zctx, ZMQ_DEALER);
	if (!a->sock)
		goto fail;
	th_sockopts so = TH_SOCKOPTS_INIT;
	so.linger_ms = 0;
	so.immediate = 1;
	so.heartbeat_ivl_ms = hb;
	so.heartbeat_timeout_ms = so.heartbeat_ttl_ms = hb * 3;
	so.reconnect_ivl_ms = 100;
	so.reconnect_ivl_max_ms = o->reconnect_max_ms > 0 ? o->reconnect_max_ms : 5000;
	th_sock_set(a->sock, &so);
	if (!o->insecure) {
		if (th_sock_curve_client(a->sock, o->server_key, o->public_key, o->secret_key) != 0) {
			zmq_close(a->sock);
			a->sock = NULL;
			zmq_ctx_term(a->zctx);
			free(a);
			return TH_EKEY;
		}
	}
	snprintf(a->mon_ep, sizeof a->mon_ep, "inproc://th-agent-mon-%p", (void *)a);
	if (zmq_socket_monitor(a->sock, a->mon_ep,
	                       ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_CLOSED |
	                       ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
	                       ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
	                       ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) != 0)
		goto fail;
	a->mon = zmq_socket(a->zctx, ZMQ_PAIR);
	th_sockopts mo = TH_SOCKOPTS_INIT;
	mo.linger_ms = 0;
	if (!a->mon || th_sock_set(a->mon, &mo) || zmq_connect(a->mon, a->mon_ep) != 0)
		goto fail;
	if (zmq_connect(a->sock, o->endpoint) != 0) {
		logf_(a, TH_LOG_ERROR, "cannot connect to %s: %s", o->endpoint, zmq_strerror(errno));
		th_agent_destroy(&a);
		return TH_EINVAL;
	}
	reload_defs(a);
	*out = a;
	return 0;
fail:
	th_agent_destroy(&a);
	return TH_ENET;
}

void th_agent_destroy(th_agent **pa)
{
	if (!pa || !*pa)
		return;
	th_agent *a = *pa;
	flights_clear(a);
	free(a->fl);
	for (size_t i = 0; i < a->n_hold; i++)
		item_free(&a->hold[i].it);
	free(a->hold);
	if (a->sock) {
		zmq_socket_monitor(a->sock, NULL, 0);
		zmq_close(a->sock);
	}
	if (a->mon)
		zmq_close(a->mon);
	if (a->zctx)
		zmq_ctx_term(a->zctx);
	th_defset_destroy(&a->defs_all);
	th_defset_destroy(&a->defs_inforce);
	free(a);
	*pa = NULL;
}

void th_agent_kick(th_agent *a) { a->kicked = 1; }
int th_agent_welcomed(const th_agent *a) { return a->welcomed; }
int th_agent_auth_refusals(const th_agent *a) { return a->auth_refusals; }
int th_agent_handshake_failures(const th_agent *a) { return a->hs_failures; }
int th_agent_busy(const th_agent *a) { return a->n_fl > 0; }

/* --- hello --------------------------------------------------------------------- */
static void send_hello(th_agent *a)
{
	th_hello h = {0};
	char agent[64];
	snprintf(agent, sizeof agent, "tonghop-publish %s", TH_VERSION);
	h.agent = agent;
	h.unit = (char *)(a->o.unit ? a->o.unit : "");
	h.id = a->next_id++;
	uint8_t *buf = NULL;
	size_t len = 0;
	int64_t now = (th_mono_us() / 1000);
	int sent = 0;
	if (th_wire_encode_hello(&h, &buf, &len) == 0) {
		if (zmq_send(a->sock, buf, len, ZMQ_DONTWAIT) >= 0)
			sent = 1;
		else if (errno != EAGAIN)
			logf_(a, TH_LOG_WARN, "sending hello: %s", zmq_strerror(errno));
		free(buf);
	}
	if (!sent) {
		/* no connection yet (ZMQ_IMMEDIATE): try again soon; libzmq
		 * itself reconnects with backoff */
		a->next_hello = now + 250;
		return;
	}
	a->next_hello = now + jitter(a->hello_backoff);
	a->hello_backoff = a->hello_backoff * 2 > AG_HELLO_MAX_MS ? AG_HELLO_MAX_MS
	                                                          : a->hello_backoff * 2;
}

/* A pending report whose definition is not in force: read its file again
 * with the definitions in force; queue the result, else reject it. */
typedef struct stale_def {
	ag_item it;
	uint32_t version;
	char *file;
} stale_def;

typedef struct collect_ctx {
	th_agent *a;
	stale_def *v;
	size_t n, cap;
	int oom;
} collect_ctx;

static int collect_stale_defs(void *vctx, const th_ob_entry *e)
{
	collect_ctx *c = vctx;
	if (!c->a->defs_inforce || th_defset_get(c->a->defs_inforce, e->appendix, e->version))
		return 0;
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 8;
		stale_def *nv = realloc(c->v, nc * sizeof *nv);
		if (!nv) {
			c->oom = 1;
			return 0;
		}
		c->v = nv;
		c->cap = nc;
	}
	stale_def *s = &c->v[c->n];
	if (item_set(&s->it, e->unit, e->appendix, e->period, e->rev) != 0)
		return 0;
	s->version = e->version;
	s->file = strdup(e->file ? e->file : "");
	c->n++;
	return 0;
}

static void revalidate(th_agent *a)
{
	collect_ctx c = {a, NULL, 0, 0, 0};
	th_outbox_list(a->ob, TH_OB_TPENDING, 0, collect_stale_defs, &c);
	for (size_t i = 0; i < c.n; i++) {
		stale_def *s = &c.v[i];
		char msg[600];
		th_report *r = NULL;
		th_diag *d = th_diag_new();
		int ok = 0;
		if (s->file && *s->file && d) {
			uint8_t hash[TH_HASH_LEN];
			if (th_intake_file(s->file, a->defs_inforce, &r, hash, d) == 0 &&
			    !strcmp(r->unit, s->it.unit) && !strcmp(r->appendix, s->it.appendix) &&
			    !strcmp(r->period, s->it.period)) {
				th_ob_enqueued res;
				const th_def *def = th_defset_get(a->defs_inforce, r->appendix, r->version);
				if (th_outbox_enqueue(a->ob, r, def, hash, s->file, 1, th_now_us(), &res) == 0) {
					ok = 1;
					snprintf(msg, sizeof msg,
					         "definition %s version %u is no longer in force; %s was read "
					         "again as version %u and queued as rev %llu",
					         s->it.appendix, s->version, s->file, r->version,
					         (unsigned long long)res.rev);
				}
			}
		}
		if (!ok) {
			size_t ne = d ? th_diag_count(d) : 0;
			snprintf(msg, sizeof msg,
			         "definition %s version %u is no longer in force%s%s%s; fix the file "
			         "and send it again",
			         s->it.appendix, s->version, ne ? " and the file no longer passes: " : "",
			         ne ? th_diag_text(d, 0) : "",
			         (!s->file || !*s->file) ? " (the original file is unknown)" : "");
		}
		th_outbox_reject_pending(a->ob, s->it.unit, s->it.appendix, s->it.period, s->it.rev,
		                         TH_EDEFCHANGED, msg);
		logf_(a, ok ? TH_LOG_WARN : TH_LOG_ERROR, "%s %s %s: %s", s->it.unit,
		      s->it.appendix, s->it.period, msg);
		if (a->h.result) {
			th_ack fake = {0};
			th_ack_result res = {0};
			res.status = TH_ACK_REJECTED;
			res.code = TH_EDEFCHANGED;
			res.message = msg;
			res.unit = s->it.unit;
			res.appendix = s->it.appendix;
			res.period = s->it.period;
			res.rev = s->it.rev;
			a->h.result(a->h.ctx, &fake, &res);
		}
		th_report_destroy(&r);
		th_diag_destroy(&d);
		item_free(&s->it);
		free(s->file);
	}
	free(c.v);
	if (c.n)
		a->kicked = 1;
}

static void on_welcome(th_agent *a, const uint8_t *buf, size_t len)
{
	th_welcome w;
	const char *why = NULL;
	memset(&w, 0, sizeof w);
	int rc = th_wire_decode_welcome(buf, len, &w, &why);
	if (rc) {
		logf_(a, TH_LOG_WARN, "bad welcome from the collector: %s", why ? why : th_strerror(rc));
		return;
	}
	a->lim = w.limits;
	if (!a->lim.max_msg_bytes)
		a->lim.max_msg_bytes = th_limits_default.max_msg_bytes;
	if (!a->lim.max_reports)
		a->lim.max_reports = th_limits_default.max_reports;
	if (!a->lim.max_inflight)
		a->lim.max_inflight = th_limits_default.max_inflight;
	if (w.n_defs)
		th_outbox_set_defs(a->ob, w.defs, w.n_defs);
	reload_defs(a);
	th_outbox_learn_revs(a->ob, w.revs, w.n_revs);
	size_t n = 0;
	if (th_outbox_store_seen(a->ob, w.store, &n) == 0 && n)
		logf_(a, TH_LOG_WARN,
		      "the collector's store is not the one that acknowledged our reports "
		      "(restored from a backup?): sending %zu acknowledged report(s) again", n);
	size_t behind = 0;
	if (th_outbox_requeue_behind(a->ob, w.revs, w.n_revs, &behind) == 0 && behind)
		logf_(a, TH_LOG_WARN,
		      "the collector lacks %zu report(s) it acknowledged before (restored from a "
		      "backup?): sending them again", behind);
	th_outbox_set_contact(a->ob, a->o.endpoint, th_now_us(), "");
	if (a->o.unit && w.unit && *a->o.unit && strcmp(a->o.unit, w.unit))
		logf_(a, TH_LOG_WARN, "this key is bound to unit %s, not %s", w.unit, a->o.unit);
	logf_(a, TH_LOG_INFO, "connected to %s (unit %s, %zu definition(s), %zu key(s) in scope)",
	      a->o.endpoint, w.unit ? w.unit : "?", w.n_defs, w.n_revs);
	th_welcome_free(&w);
	flights_clear(a);
	a->welcomed = 1;
	a->hello_backoff = AG_HELLO_MIN_MS;
	a->kicked = 1;
	revalidate(a);
}

static void on_ack(th_agent *a, const uint8_t *buf, size_t len)
{
	th_ack k;
	const char *why = NULL;
	memset(&k, 0, sizeof k);
	int rc = th_wire_decode_ack(buf, len, &k, &why);
	if (rc) {
		logf_(a, TH_LOG_WARN, "bad ack from the collector: %s", why ? why : th_strerror(rc));
		return;
	}
	int *changed = k.n_results ? calloc(k.n_results, sizeof *changed) : NULL;
	rc = th_outbox_apply_ack(a->ob, &k, th_now_us(), changed);
	if (rc) {
		/* not recorded: the reports stay pending and are sent again */
		logf_(a, TH_LOG_ERROR, "cannot record an ack in the outbox: %s", th_strerror(rc));
		free(changed);
		th_ack_free(&k);
		return;
	}
	int defchanged = 0;
	for (size_t i = 0; i < k.n_results; i++) {
		th_ack_result *r = &k.results[i];
		if (r->status == TH_ACK_RETRY_LATER && r->unit && r->appendix && r->period) {
			if (r->code == TH_EDEFCHANGED)
				defchanged = 1;
			hold_add(a, r->unit, r->appendix, r->period, r->rev,
			         r->code == TH_EDEFCHANGED ? AG_RETRY_MAX_MS : 2 * AG_RETRY_MIN_MS);
		}
		if (changed && changed[i] && a->h.result)
			a->h.result(a->h.ctx, &k, r);
		/* the item is answered: out of every flight */
		for (size_t f = 0; f < a->n_fl && r->unit && r->appendix && r->period; f++)
			for (size_t j = 0; j < a->fl[f].n; j++)
				if (item_eq(&a->fl[f].items[j], r->unit, r->appendix, r->period, r->rev)) {
					item_free(&a->fl[f].items[j]);
					a->fl[f].items[j] = a->fl[f].items[--a->fl[f].n];
					break;
				}
	}
	for (size_t f = 0; f < a->n_fl;) {
		if (a->fl[f].id == k.id || a->fl[f].n == 0)
			flight_drop(a, f);
		else
			f++;
	}
	a->ack_backoff = a->o.ack_timeout_ms > 0 ? a->o.ack_timeout_ms : 10000;
	free(changed);
	th_ack_free(&k);
	a->kicked = 1;
	if (defchanged) {
		/* fetch the definitions in force: a new hello brings a welcome */
		logf_(a, TH_LOG_WARN, "the collector says a definition changed: fetching definitions");
		a->welcomed = 0;
		a->next_hello = 0;
	}
}

static void on_error(th_agent *a, const uint8_t *buf, size_t len)
{
	th_error_msg e;
	const char *why = NULL;
	memset(&e, 0, sizeof e);
	if (th_wire_decode_error(buf, len, &e, &why) != 0) {
		logf_(a, TH_LOG_WARN, "bad error message from the collector");
		return;
	}
	logf_(a, e.retry ? TH_LOG_WARN : TH_LOG_ERROR, "the collector refused a message: %s (%s)",
	      e.message ? e.message : th_strerror(e.code), th_errname(e.code));
	th_outbox_set_contact(a->ob, NULL, th_now_us(), e.message ? e.message : th_strerror(e.code));
	if (e.code == TH_EAUTH || e.code == TH_EKEY)
		a->auth_refusals++;
	for (size_t f = 0; f < a->n_fl; f++)
		if (a->fl[f].id == e.id) {
			for (size_t j = 0; j < a->fl[f].n; j++)
				hold_add(a, a->fl[f].items[j].unit, a->fl[f].items[j].appendix,
				         a->fl[f].items[j].period, a->fl[f].items[j].rev,
				         e.retry ? 2 * AG_RETRY_MIN_MS : AG_RETRY_MAX_MS);
			if (e.code == TH_ETOOBIG && a->lim.max_reports > 1)
				a->lim.max_reports = (uint32_t)(a->fl[f].n > 1 ? a->fl[f].n / 2 : 1);
			flight_drop(a, f);
			break;
		}
	if (e.id == 0 && !a->welcomed)
		a->next_hello = (th_mono_us() / 1000) + jitter(a->hello_backoff);
	th_error_msg_free(&e);
}

static void on_message(th_agent *a, const uint8_t *buf, size_t len)
{
	th_msg_type t;
	const char *why = NULL;
	if (th_wire_type(buf, len, &t, &why) != 0) {
		logf_(a, TH_LOG_WARN, "unreadable message from the collector: %s", why ? why : "?");
		return;
	}
	if (t != TH_MSG_ERROR)
		th_outbox_set_contact(a->ob, NULL, th_now_us(), NULL);
	switch (t) {
	case TH_MSG_WELCOME: on_welcome(a, buf, len); break;
	case TH_MSG_ACK: on_ack(a, buf, len); break;
	case TH_MSG_ERROR: on_error(a, buf, len); break;
	default:
		logf_(a, TH_LOG_WARN, "unexpected message type %d from the collector", (int)t);
	}
}

static void on_monitor(th_agent *a)
{
	for (;;) {
		zmq_msg_t m1, m2;
		zmq_msg_init(&m1);
		if (zmq_msg_recv(&m1, a->mon, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m1);
			return;
		}
		uint16_t ev = 0;
		uint32_t val = 0;
		if (zmq_msg_size(&m1) >= 6) {
			const uint8_t *p = zmq_msg_data(&m1);
			memcpy(&ev, p, 2);
			memcpy(&val, p + 2, 4);
		}
		int more = zmq_msg_more(&m1);
		zmq_msg_close(&m1);
		if (more) {
			zmq_msg_init(&m2);
			zmq_msg_recv(&m2, a->mon, 0);
			zmq_msg_close(&m2);
		}
		switch (ev) {
		case ZMQ_EVENT_CONNECTED:
			a->tcp_up = 1;
			break;
		case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
			a->tcp_up = 0;
			a->hs_drops = 0;
			a->connected = 1;
			a->welcomed = 0;
			a->hello_backoff = AG_HELLO_MIN_MS;
			send_hello(a);
			break;
		case ZMQ_EVENT_DISCONNECTED:
		case ZMQ_EVENT_CLOSED:
			/* without CURVE there is no key to refuse: a hang-up during the
			 * (NULL) handshake is a collector going away, retried */
			if (!a->o.insecure && a->tcp_up && !a->connected && ++a->hs_drops >= 3) {
				/* the collector hangs up before the handshake completes:
				 * it cannot read our hello (wrong --server-key, or CURVE
				 * on one side only) */
				const char *msg = "the collector closes the connection during the handshake: "
				                  "--server-key is probably not the collector's key (or one "
				                  "side uses --insecure)";
				a->hs_failures++;
				a->hs_drops = 0;
				logf_(a, TH_LOG_ERROR, "%s", msg);
				th_outbox_set_contact(a->ob, a->o.endpoint, 0, msg);
			}
			a->tcp_up = 0;
			if (a->connected)
				logf_(a, TH_LOG_WARN, "lost the connection to %s; reconnecting",
				      a->o.endpoint);
			a->connected = 0;
			a->welcomed = 0;
			flights_clear(a);
			break;
		case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH: {
			char msg[200];
			snprintf(msg, sizeof msg, "the collector refused this key (ZAP status %u)", val);
			a->auth_refusals++;
			logf_(a, TH_LOG_ERROR, "%s", msg);
			th_outbox_set_contact(a->ob, a->o.endpoint, 0, msg);
			break;
		}
		case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
		case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL: {
			const char *msg = "the handshake with the collector failed: the collector "
			                  "refused this key, or --server-key is not the collector's key";
			a->hs_failures++;
			logf_(a, TH_LOG_ERROR, "%s", msg);
			th_outbox_set_contact(a->ob, a->o.endpoint, 0, msg);
			break;
		}
		default:
			break;
		}
	}
}

/* --- sending ------------------------------------------------------------------------ */
typedef struct cand_ctx {
	th_agent *a;
	int64_t now;
	ag_item *v;
	size_t n, cap, limit;
} cand_ctx;

static int collect_cand(void *vctx, const th_ob_entry *e)
{
	cand_ctx *c = vctx;
	if (in_flight(c->a, e) || held(c->a, e, c->now))
		return 0;
	if (c->n == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 64;
		ag_item *nv = realloc(c->v, nc * sizeof *nv);
		if (!nv)
			return 1;
		c->v = nv;
		c->cap = nc;
	}
	if (item_set(&c->v[c->n], e->unit, e->appendix, e->period, e->rev) == 0)
		c->n++;
	return c->n >= c->limit;
}

/* Sends one submit of the candidates [*pos, ...); advances *pos.  Returns 1
 * when sent, 0 when nothing was sendable, -1 when the socket would block. */
static int send_batch(th_agent *a, ag_item *cand, size_t n_cand, size_t *pos)
{
	size_t want = n_cand - *pos;
	if (want > a->lim.max_reports)
		want = a->lim.max_reports;
	th_ob_entry *ents = calloc(want, sizeof *ents);
	th_report **reps = calloc(want, sizeof *reps);
	th_ob_entry **eps = calloc(want, sizeof *eps);
	size_t n = 0, used = 0;
	int out = 0;
	if (!ents || !reps || !eps)
		goto done;
	while (n < want && *pos + used < n_cand) {
		ag_item *it = &cand[*pos + used];
		used++;
		th_ob_entry *e = &ents[n];
		if (th_outbox_get_pending(a->ob, it->unit, it->appendix, it->period, it->rev,
		                          a->defs_all, e) != 0)
			continue;
		if (!e->report) {
			/* no definition to encode it: wait for a welcome */
			hold_add(a, e->unit, e->appendix, e->period, e->rev, AG_RETRY_MAX_MS);
			th_ob_entry_free(e);
			continue;
		}
		reps[n] = e->report;
		eps[n] = e;
		n++;
	}
	if (n == 0) {
		*pos += used;
		goto done;
	}
	uint8_t *buf = NULL;
	size_t len = 0;
	uint64_t id = a->next_id++;
	size_t k = n;
	for (;;) {
		int rc = th_wire_encode_submit(id, reps, k, a->defs_all, &buf, &len);
		if (rc) {
			logf_(a, TH_LOG_ERROR, "cannot encode %s %s %s rev %llu: %s", eps[0]->unit,
			      eps[0]->appendix, eps[0]->period, (unsigned long long)eps[0]->rev,
			      th_strerror(rc));
			th_outbox_reject_pending(a->ob, eps[0]->unit, eps[0]->appendix, eps[0]->period,
			                         eps[0]->rev, rc, "the agent cannot encode this report");
			*pos += 1;
			out = 1;
			goto done;
		}
		if (len <= a->lim.max_msg_bytes || k == 1)
			break;
		free(buf);
		buf = NULL;
		k = k / 2;
	}
	if (len > a->lim.max_msg_bytes) {
		char msg[200];
		snprintf(msg, sizeof msg, "the report is %zu bytes encoded, over the collector's "
		         "limit of %u bytes per message", len, a->lim.max_msg_bytes);
		free(buf);
		th_outbox_reject_pending(a->ob, eps[0]->unit, eps[0]->appendix, eps[0]->period,
		                         eps[0]->rev, TH_ETOOBIG, msg);
		logf_(a, TH_LOG_ERROR, "%s %s %s: %s", eps[0]->unit, eps[0]->appendix,
		      eps[0]->period, msg);
		*pos += 1;
		out = 1;
		goto done;
	}
	if (zmq_send(a->sock, buf, len, ZMQ_DONTWAIT) < 0) {
		free(buf);
		out = -1;
		goto done;
	}
	free(buf);
	/* where did the k-th sent entry come from: advance over the used
	 * candidates up to and including it */
	size_t adv = 0, seen = 0;
	while (seen < k && *pos + adv < n_cand) {
		ag_item *it = &cand[*pos + adv];
		for (size_t j = 0; j < k; j++)
			if (item_eq(it, eps[j]->unit, eps[j]->appendix, eps[j]->period, eps[j]->rev)) {
				seen++;
				break;
			}
		adv++;
	}
	*pos += adv;
	if (a->n_fl == a->cap_fl) {
		size_t nc = a->cap_fl ? a->cap_fl * 2 : 8;
		ag_flight *nf = realloc(a->fl, nc * sizeof *nf);
		if (!nf)
			goto sent;
		a->fl = nf;
		a->cap_fl = nc;
	}
	ag_flight *fl = &a->fl[a->n_fl];
	fl->id = id;
	fl->deadline = (th_mono_us() / 1000) + jitter(a->ack_backoff);
	fl->items = calloc(k, sizeof *fl->items);
	fl->n = 0;
	if (fl->items) {
		for (size_t j = 0; j < k; j++)
			if (item_set(&fl->items[fl->n], eps[j]->unit, eps[j]->appendix, eps[j]->period,
			             eps[j]->rev) == 0)
				fl->n++;
		a->n_fl++;
	}
sent:
	th_outbox_note_sent(a->ob, eps, k);
	out = 1;
done:
	for (size_t i = 0; i < n; i++)
		th_ob_entry_free(&ents[i]);
	free(ents);
	free(reps);
	free(eps);
	return out;
}

static void deliver(th_agent *a)
{
	if (!a->welcomed)
		return;
	size_t room = a->lim.max_inflight > a->n_fl ? a->lim.max_inflight - a->n_fl : 0;
	if (!room)
		return;
	cand_ctx c = {a, (th_mono_us() / 1000), NULL, 0, 0, room * (size_t)a->lim.max_reports};
	th_outbox_list(a->ob, TH_OB_TPENDING, 0, collect_cand, &c);
	size_t pos = 0;
	while (pos < c.n && a->n_fl < a->lim.max_inflight) {
		int r = send_batch(a, c.v, c.n, &pos);
		if (r < 0)
			break;
	}
	for (size_t i = 0; i < c.n; i++)
		item_free(&c.v[i]);
	free(c.v);
	a->kicked = 0;
}

static void check_timeouts(th_agent *a, int64_t now)
{
	int timed_out = 0;
	for (size_t f = 0; f < a->n_fl;) {
		if (a->fl[f].deadline <= now) {
			flight_drop(a, f);
			timed_out = 1;
		} else {
			f++;
		}
	}
	if (timed_out) {
		logf_(a, TH_LOG_WARN, "no ack from the collector in time; sending again");
		a->ack_backoff = a->ack_backoff * 2 > AG_RETRY_MAX_MS ? AG_RETRY_MAX_MS
		                                                     : a->ack_backoff * 2;
		a->kicked = 1;
	}
}

static int64_t next_deadline(th_agent *a, int64_t now)
{
	int64_t t = now + 1000;   /* holds expire: look again every second */
	if (!a->welcomed && a->next_hello < t)
		t = a->next_hello;
	for (size_t f = 0; f < a->n_fl; f++)
		if (a->fl[f].deadline < t)
			t = a->fl[f].deadline;
	return t < now ? now : t;
}

int th_agent_poll(th_agent *a, int timeout_ms, zmq_pollitem_t *extra, size_t n_extra)
{
	zmq_pollitem_t items[2 + 8];
	if (n_extra > 8)
		n_extra = 8;
	int64_t now = (th_mono_us() / 1000);
	if (a->kicked)
		deliver(a);
	int64_t dl = next_deadline(a, now);
	long wait = (long)(dl - now);
	if (timeout_ms >= 0 && wait > timeout_ms)
		wait = timeout_ms;
	items[0] = (zmq_pollitem_t){a->sock, 0, ZMQ_POLLIN, 0};
	items[1] = (zmq_pollitem_t){a->mon, 0, ZMQ_POLLIN, 0};
	for (size_t i = 0; i < n_extra; i++) {
		items[2 + i] = extra[i];
		items[2 + i].revents = 0;
	}
	int rc = zmq_poll(items, (int)(2 + n_extra), wait);
	if (rc < 0 && errno != EINTR)
		return TH_ENET;
	for (size_t i = 0; i < n_extra; i++)
		extra[i].revents = rc > 0 ? items[2 + i].revents : 0;
	if (rc > 0 && (items[1].revents & ZMQ_POLLIN))
		on_monitor(a);
	if (rc > 0 && (items[0].revents & ZMQ_POLLIN)) {
		for (int k = 0; k < 64; k++) {
			zmq_msg_t m;
			zmq_msg_init(&m);
			if (zmq_msg_recv(&m, a->sock, ZMQ_DONTWAIT) < 0) {
				zmq_msg_close(&m);
				break;
			}
			int more = zmq_msg_more(&m);
			on_message(a, zmq_msg_data(&m), zmq_msg_size(&m));
			zmq_msg_close(&m);
			while (more) {   /* a tonghop message is one frame: drop the rest */
				zmq_msg_t x;
				zmq_msg_init(&x);
				if (zmq_msg_recv(&x, a->sock, 0) < 0) {
					zmq_msg_close(&x);
					break;
				}
				more = zmq_msg_more(&x);
				zmq_msg_close(&x);
			}
		}
	}
	now = (th_mono_us() / 1000);
	if (!a->welcomed && now >= a->next_hello)
		send_hello(a);
	check_timeouts(a, now);
	if (a->welcomed)
		deliver(a);   /* cheap when nothing is pending; holds expire here */
	return 0;
}

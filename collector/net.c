/* net.c -- the collector's sockets and poll loop (net.h). */
#include "net.h"
#include "conns.h"
#include "ingest.h"
#include "publish.h"
#include "th_clock.h"
#include "th_hash.h"
#include "th_log.h"
#include "th_sock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

volatile sig_atomic_t th_stop_flag, th_reload_flag;

/* One submit of a group: its reports' ingest results, and those that passed. */
typedef struct {
	zmq_msg_t id;
	uint64_t idhash;     /* of the routing id: counting in-flight submits compares these */
	uint64_t msg_id;
	th_submit_decoded dec;
	th_ack_result *results;
	th_checked *chk;     /* per report: what passed ingest (ok[i] set) */
	uint8_t *ok;
	size_t n;
	th_key key;
} pending;

/* A group of submits: filling, with the committer, or waiting for its acks. */
typedef struct {
	pending *p;
	size_t n, bytes;
	/* with the committer: the job, its submissions and whose results they are */
	th_job job;
	th_submission *subs;
	th_ack_result **dst;
} group;

struct th_server {
	th_server_conf conf;
	th_store *store;
	th_committer *committer;
	const th_defset *defs;
	th_zap *zap;
	void *ctx;
	void *ingest, *query;
	th_publish *pub;
	th_stats stats;
	th_conns *conns;
	group ga, gb;        /* ga: with the committer (ga.job.type set), gb: filling */
	int applying;
};

/* The options every collector socket gets, and CURVE unless insecure.
 * backlog: after a restart every agent reconnects at once; libzmq's default
 * listen backlog (100) overflows and the dropped connections wait for the TCP
 * SYN retransmission backoff (1, 3, 7, 15 s...).  The kernel caps it at
 * net.core.somaxconn. */
static int setup_socket(const th_server_conf *conf, void *sock, int is_pub)
{
	th_sockopts so = TH_SOCKOPTS_INIT;
	so.linger_ms = 2000;
	so.sndhwm = so.rcvhwm = 100000;
	so.heartbeat_ivl_ms = 5000;
	so.heartbeat_timeout_ms = 30000;
	so.backlog = 4096;
	if (!is_pub) {
		so.max_msg = (int64_t)conf->limits.max_msg_bytes;
		so.router_mandatory = 1;
	}
	if (th_sock_set(sock, &so) != 0) {
		th_log(TH_LOG_ERROR, "net", "cannot set socket options: %s", zmq_strerror(zmq_errno()));
		return TH_ENET;
	}
	if (!conf->insecure && th_sock_curve_server(sock, conf->server_sec, "tonghop") != 0) {
		th_log(TH_LOG_ERROR, "net", "cannot enable CURVE: %s", zmq_strerror(zmq_errno()));
		return TH_ENET;
	}
	return TH_OK;
}

static int setup_pub(void *ctx, void *sock)
{
	return setup_socket(ctx, sock, 1);
}

static void close_now(void *sock)
{
	int zero = 0;
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
	zmq_close(sock);
}

static int group_init(group *g, size_t cap)
{
	memset(g, 0, sizeof *g);
	g->p = calloc(cap, sizeof *g->p);
	return g->p ? TH_OK : TH_ENOMEM;
}

int th_server_new(const th_server_conf *conf, th_store *store, th_committer *c,
                  const th_defset *defs, th_zap *zap, void *zmq_ctx, th_server **out)
{
	th_server *s = calloc(1, sizeof *s);
	if (!s)
		return TH_ENOMEM;
	s->conf = *conf;
	if (s->conf.group_max <= 0)
		s->conf.group_max = 1024;
	s->store = store;
	s->committer = c;
	s->defs = defs;
	s->zap = zap;
	s->ctx = zmq_ctx;
	if (group_init(&s->ga, (size_t)s->conf.group_max) || group_init(&s->gb, (size_t)s->conf.group_max)) {
		th_server_destroy(&s);
		return TH_ENOMEM;
	}
	s->ingest = zmq_socket(s->ctx, ZMQ_ROUTER);
	s->query = zmq_socket(s->ctx, ZMQ_ROUTER);
	if (!s->ingest || !s->query)
		goto fail;
	void *socks[2] = {s->ingest, s->query};
	const char *eps[2] = {conf->bind, conf->query};
	for (int i = 0; i < 2; i++) {
		if (setup_socket(conf, socks[i], 0) != 0)
			goto fail;
		if (zmq_bind(socks[i], eps[i]) != 0) {
			th_log(TH_LOG_ERROR, "net", "cannot bind %s: %s", eps[i], zmq_strerror(zmq_errno()));
			goto fail;
		}
	}
	if (th_publish_new(s->ctx, conf->pub, setup_pub, &s->conf, &s->pub) != 0) {
		th_log(TH_LOG_ERROR, "net", "cannot bind %s: %s", conf->pub, zmq_strerror(zmq_errno()));
		goto fail;
	}
	if (th_conns_new(s->ctx, s->ingest, conf->insecure ? 0 : conf->max_conns_per_key, &s->conns) != 0) {
		th_log(TH_LOG_ERROR, "net", "cannot monitor the ingest socket: %s", zmq_strerror(zmq_errno()));
		goto fail;
	}
	*out = s;
	return TH_OK;
fail:
	th_server_destroy(&s);
	return TH_ENET;
}

void th_server_destroy(th_server **ps)
{
	if (!ps || !*ps)
		return;
	th_server *s = *ps;
	th_conns_destroy(&s->conns);
	if (s->ingest)
		close_now(s->ingest);
	th_publish_destroy(&s->pub);
	if (s->query)
		close_now(s->query);
	free(s->ga.p);
	free(s->gb.p);
	free(s);
	*ps = NULL;
}

const th_stats *th_server_stats(const th_server *s) { return &s->stats; }

/* --- replies -------------------------------------------------------------------- */

static void send_to(void *sock, zmq_msg_t *id, const uint8_t *buf, size_t len)
{
	zmq_msg_t copy;
	zmq_msg_init(&copy);
	zmq_msg_copy(&copy, id);
	if (zmq_msg_send(&copy, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&copy);
		th_log(TH_LOG_DEBUG, "net", "reply dropped: peer gone (%s)", zmq_strerror(zmq_errno()));
		return;
	}
	if (zmq_send(sock, buf, len, ZMQ_DONTWAIT) < 0)
		th_log(TH_LOG_DEBUG, "net", "reply dropped: %s", zmq_strerror(zmq_errno()));
}

static void send_error(th_server *s, void *sock, zmq_msg_t *id, uint64_t msg_id, int code,
                       const char *message, int retry)
{
	th_error_msg e = {.id = msg_id, .code = code, .message = (char *)message, .retry = retry};
	uint8_t *buf;
	size_t len;
	s->stats.refused_msgs++;
	if (th_wire_encode_error(&e, &buf, &len) == 0) {
		send_to(sock, id, buf, len);
		free(buf);
	}
}

/* --- hello ---------------------------------------------------------------------- */

typedef struct {
	th_rev_entry *e;
	size_t n, cap;
} revs;

static int rev_cb(void *ctx, const char *unit, const char *appendix, const char *period, uint64_t rev)
{
	revs *r = ctx;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		th_rev_entry *ne = realloc(r->e, cap * sizeof *ne);
		if (!ne)
			return TH_ENOMEM;
		r->e = ne;
		r->cap = cap;
	}
	th_rev_entry *e = &r->e[r->n];
	e->unit = strdup(unit);
	e->appendix = strdup(appendix);
	e->period = strdup(period);
	e->rev = rev;
	if (!e->unit || !e->appendix || !e->period) {
		free(e->unit);
		free(e->appendix);
		free(e->period);
		return TH_ENOMEM;
	}
	r->n++;
	return 0;
}

static void on_hello(th_server *s, zmq_msg_t *id, const uint8_t *buf, size_t len, const th_key *key)
{
	th_hello h;
	const char *why = NULL;
	if (th_wire_decode_hello(buf, len, &h, &why) != 0) {
		th_log(TH_LOG_WARN, "ingest", "malformed hello from %s: %s", key->unit, why);
		send_error(s, s->ingest, id, 0, TH_EPROTO, why, 0);
		return;
	}
	s->stats.hellos++;
	th_welcome w = {0};
	w.id = h.id;
	memcpy(w.store, th_store_uuid(s->store), TH_STORE_UUID_LEN);
	w.unit = (char *)key->unit;
	w.limits = s->conf.limits;
	size_t nd = th_defset_count(s->defs);
	w.defs = calloc(nd ? nd : 1, sizeof *w.defs);
	for (size_t i = 0; w.defs && i < nd; i++) {
		const th_def *d = th_defset_at(s->defs, i);
		w.defs[w.n_defs++] = d->source;   /* older versions serve their bound periods */
	}
	revs r = {0};
	th_store_revs_in_scope(s->store, key->unit, rev_cb, &r);
	w.revs = r.e;
	w.n_revs = r.n;
	uint8_t *out;
	size_t olen;
	if (h.unit && h.unit[0] && strcmp(h.unit, key->unit) != 0)
		th_log(TH_LOG_WARN, "ingest", "agent says it is %s but its key belongs to %s", h.unit,
		       key->unit);
	if (th_wire_encode_welcome(&w, &out, &olen) == 0) {
		send_to(s->ingest, id, out, olen);
		free(out);
	}
	th_log(TH_LOG_INFO, "ingest", "hello from %s (%s, %s): %zu keys in scope", key->unit,
	       th_role_name(key->role), h.agent ? h.agent : "?", r.n);
	for (size_t i = 0; i < r.n; i++) {
		free(r.e[i].unit);
		free(r.e[i].appendix);
		free(r.e[i].period);
	}
	free(r.e);
	free(w.defs);
	th_hello_free(&h);
}

/* --- submits and groups ------------------------------------------------------------------ */

static void pending_free(pending *p)
{
	for (size_t k = 0; k < p->n; k++) {
		th_ack_result_free(&p->results[k]);
		if (p->ok && p->ok[k])
			th_checked_release(&p->chk[k]);
	}
	free(p->results);
	free(p->chk);
	free(p->ok);
	th_submit_decoded_free(&p->dec);
	zmq_msg_close(&p->id);
}

static void group_clear(group *g)
{
	for (size_t i = 0; i < g->n; i++)
		pending_free(&g->p[i]);
	g->n = g->bytes = 0;
	free(g->subs);
	free(g->dst);
	free(g->job.changed);
	g->subs = NULL;
	g->dst = NULL;
	memset(&g->job, 0, sizeof g->job);
}

static void count_result(th_server *s, const th_ack_result *r, const th_key *key)
{
	switch (r->status) {
	case TH_ACK_ACCEPTED: s->stats.accepted++; break;
	case TH_ACK_DUPLICATE: s->stats.duplicate++; break;
	case TH_ACK_STALE: s->stats.stale++; break;
	case TH_ACK_RETRY_LATER:
		s->stats.retry_later++;
		th_log(TH_LOG_WARN, "ingest", "retry later: %s %s %s rev %llu from %s: %s",
		       r->unit ? r->unit : "?", r->appendix ? r->appendix : "?", r->period ? r->period : "?",
		       (unsigned long long)r->rev, key->unit, r->message ? r->message : "");
		break;
	case TH_ACK_REJECTED:
		if (r->code == TH_ECONFLICT)
			s->stats.conflict++;
		else
			s->stats.rejected++;
		th_log(TH_LOG_WARN, "ingest", "rejected %s %s %s rev %llu from %s: %s: %s%s%s%s",
		       r->unit ? r->unit : "?", r->appendix ? r->appendix : "?",
		       r->period ? r->period : "?", (unsigned long long)r->rev, key->unit,
		       th_errname(r->code), r->message ? r->message : "", r->column ? " (column " : "",
		       r->column ? r->column : "", r->column ? ")" : "");
		break;
	}
}

/* Hands g's reports that passed ingest to the committer.  0 when none did (the
 * group is answered at once), 1 when the committer has it. */
static int group_start(th_server *s, group *g)
{
	size_t total = 0;
	for (size_t i = 0; i < g->n; i++)
		for (size_t k = 0; k < g->p[i].n; k++)
			total += g->p[i].ok[k];
	if (!total)
		return 0;
	g->subs = calloc(total, sizeof *g->subs);
	g->dst = calloc(total, sizeof *g->dst);
	if (!g->subs || !g->dst) {
		for (size_t i = 0; i < g->n; i++)
			for (size_t k = 0; k < g->p[i].n; k++)
				if (g->p[i].ok[k])
					th_ingest_answer(s->store, &(th_store_result){.status = TH_STORE_RETRY,
					                 .code = TH_ENOMEM, .message = "out of memory"},
					                 NULL, NULL, NULL, 0, &g->p[i].results[k]);
		free(g->subs);
		free(g->dst);
		g->subs = NULL;
		g->dst = NULL;
		return 0;
	}
	size_t ns = 0;
	for (size_t i = 0; i < g->n; i++)
		for (size_t k = 0; k < g->p[i].n; k++)
			if (g->p[i].ok[k]) {
				g->dst[ns] = &g->p[i].results[k];
				g->subs[ns++] = g->p[i].chk[k].sub;
			}
	memset(&g->job, 0, sizeof g->job);
	g->job.type = TH_JOB_APPLY;
	g->job.subs = g->subs;
	g->job.n = ns;
	g->job.owner = g;
	th_committer_push(s->committer, &g->job);
	return 1;
}

/* The group's job is back: its results into the acks, counters, publishing. */
static void group_results(th_server *s, group *g)
{
	th_job *j = &g->job;
	if (!j->type)
		return;   /* nothing went to the store */
	if (j->rc != 0) {
		th_log(TH_LOG_ERROR, "store", "group of %zu reports not committed: %s", j->n,
		       th_strerror(j->rc));
		th_store_result fail = {.status = TH_STORE_RETRY,
		                        .code = j->rc == TH_ENOSPC ? TH_ENOSPC : TH_ESTORE};
		snprintf(fail.message, sizeof fail.message, "%s", j->rc == TH_ENOSPC
		         ? "the collector cannot write to its store now (disk full or a size limit); "
		           "your report is kept and will be retried"
		         : "the collector could not store the report; it will be retried");
		for (size_t k = 0; k < j->n; k++)
			th_ingest_answer(s->store, &fail, NULL, NULL, NULL, 0, g->dst[k]);
		return;
	}
	int64_t dt = j->duration_us;
	s->stats.commits++;
	s->stats.group_reports_sum += j->n;
	if (j->n > s->stats.group_reports_max)
		s->stats.group_reports_max = j->n;
	s->stats.commit_us_sum += (uint64_t)dt;
	if ((uint64_t)dt > s->stats.commit_us_max)
		s->stats.commit_us_max = (uint64_t)dt;
	th_metrics_observe_commit(dt);
	for (size_t k = 0; k < j->n; k++) {
		th_ingest_answer(s->store, &j->subs[k].result, NULL, NULL, NULL, 0, g->dst[k]);
		if (j->subs[k].result.status == TH_STORE_ACCEPTED)
			s->stats.records += j->subs[k].report->n_rows;
	}
	th_log(TH_LOG_DEBUG, "store", "commit %llu: %zu reports in %lld us",
	       (unsigned long long)j->commit, j->n, (long long)dt);
	if (j->n_changed)
		s->stats.published += th_publish_changes(s->pub, s->store, j->changed, j->n_changed);
}

/* The acks of a group (only once it is durable): one per submit. */
static void group_acks(th_server *s, group *g)
{
	const uint8_t *uuid = th_store_uuid(s->store);
	uint64_t commit = g->job.type && !g->job.rc ? g->job.commit : 0;
	int64_t ctime = g->job.type && !g->job.rc ? g->job.commit_time : 0;
	for (size_t i = 0; i < g->n; i++) {
		pending *p = &g->p[i];
		th_ack a = {.id = p->msg_id, .commit = commit, .commit_time = ctime,
		            .results = p->results, .n_results = p->n};
		memcpy(a.store, uuid, TH_STORE_UUID_LEN);
		for (size_t k = 0; k < p->n; k++) {
			const th_submit_decoded *d = &p->dec;
			th_ingest_answer(s->store, NULL, d->unit[k], d->appendix[k], d->period[k], d->rev[k],
			                 &p->results[k]);
			count_result(s, &p->results[k], &p->key);
		}
		uint8_t *buf;
		size_t len;
		if (th_wire_encode_ack(&a, &buf, &len) == 0) {
			send_to(s->ingest, &p->id, buf, len);
			free(buf);
		}
	}
}

static uint64_t id_hash(zmq_msg_t *id)
{
	return th_fnv1a(zmq_msg_data(id), zmq_msg_size(id));
}

/* How many submits of the group g[0..ng) came from routing id (hash h). */
static uint32_t inflight(pending *g, size_t ng, zmq_msg_t *id, uint64_t h)
{
	uint32_t n = 0;
	for (size_t i = 0; i < ng; i++)
		if (g[i].idhash == h && zmq_msg_size(&g[i].id) == zmq_msg_size(id) &&
		    memcmp(zmq_msg_data(&g[i].id), zmq_msg_data(id), zmq_msg_size(id)) == 0)
			n++;
	return n;
}

/* The key a message came from, looked up in the table in force now (every
 * peer is an admin of the root in insecure mode).  1 when known. */
static int peer_key(th_server *s, zmq_msg_t *body, th_key *key, const char **uid_out)
{
	memset(key, 0, sizeof *key);
	if (s->conf.insecure) {
		key->role = TH_ROLE_ADMIN;
		snprintf(key->unit, sizeof key->unit, "%s", s->conf.root_unit ? s->conf.root_unit : "");
		snprintf(key->comment, sizeof key->comment, "insecure peer");
		return 1;
	}
	const char *uid = zmq_msg_gets(body, "User-Id");
	if (uid_out)
		*uid_out = uid;
	return uid && th_zap_lookup(s->zap, uid, key) == 0;
}

/* Counts the connection of a message from key against --max-conns-per-key; when it is
 * one too many, answers with a retry_later error and returns 1. */
static int too_many_conns(th_server *s, zmq_msg_t *id, zmq_msg_t *body, const th_key *key)
{
	if (th_conns_admit(s->conns, id, body, s->conf.insecure ? "insecure" : key->pub) == 0)
		return 0;
	uint64_t n = ++s->stats.conns_refused;
	if ((n & (n - 1)) == 0)   /* 1, 2, 4, 8...: a flood does not flood the log */
		th_log(TH_LOG_WARN, "ingest", "the key of %s (%s) has %u live connections already; a "
		       "message on another one refused (retry later; %llu refused so far)", key->unit,
		       key->pub, (unsigned)s->conf.max_conns_per_key, (unsigned long long)n);
	send_error(s, s->ingest, id, th_wire_peek_id(zmq_msg_data(body), zmq_msg_size(body)), TH_EBUSY,
	           "too many connections for this key", 1);
	return 1;
}

/* Receives one message from the ingest socket; answers a hello or a refused
 * message at once; a submit is decoded, its reports checked (ingest.h) and it is
 * appended to the filling group.  Returns 1 when a message was read, 0 when none
 * was waiting, -1 on a socket error. */
static int receive_one(th_server *s, group *grp)
{
	zmq_msg_t id, body;
	uint64_t idh = 0;
	zmq_msg_init(&id);
	if (zmq_msg_recv(&id, s->ingest, ZMQ_DONTWAIT) < 0) {
		zmq_msg_close(&id);
		return errno == EAGAIN ? 0 : -1;
	}
	zmq_msg_init(&body);
	if (!zmq_msg_more(&id) || zmq_msg_recv(&body, s->ingest, 0) < 0) {
		zmq_msg_close(&id);
		zmq_msg_close(&body);
		return 1;
	}
	int extra = 0;
	while (zmq_msg_more(&body)) {
		zmq_msg_t x;
		zmq_msg_init(&x);
		int more = zmq_msg_recv(&x, s->ingest, 0) >= 0 && zmq_msg_more(&x);
		zmq_msg_close(&x);
		extra = 1;
		if (!more)
			break;
	}
	th_key key;
	const char *uid = NULL;
	int known = peer_key(s, &body, &key, &uid);
	const uint8_t *buf = zmq_msg_data(&body);
	size_t len = zmq_msg_size(&body);
	s->stats.bytes += len;
	th_msg_type t = 0;
	const char *why = NULL;
	if (!known) {
		th_log(TH_LOG_WARN, "auth", "message from a key that is no longer authorised (%s)",
		       uid ? uid : "?");
		send_error(s, s->ingest, &id, 0, TH_EAUTH, "this key is not (or no longer) authorised", 0);
	} else if (too_many_conns(s, &id, &body, &key)) {
		/* answered */
	} else if (extra) {
		th_log(TH_LOG_WARN, "ingest", "message from %s has extra frames; refused", key.unit);
		send_error(s, s->ingest, &id, 0, TH_EPROTO, "a message is exactly one frame", 0);
	} else if (th_wire_type(buf, len, &t, &why) != 0) {
		th_log(TH_LOG_WARN, "ingest", "malformed message from %s (%zu bytes): %s", key.unit, len, why);
		send_error(s, s->ingest, &id, 0, TH_EPROTO, why, 0);
	} else if (t == TH_MSG_HELLO) {
		/* read transactions: answered at once, also while a group is committed */
		on_hello(s, &id, buf, len, &key);
	} else if (t == TH_MSG_SUBMIT && inflight(grp->p, grp->n, &id, idh = id_hash(&id)) >= s->conf.limits.max_inflight) {
		uint64_t n = ++s->stats.inflight_refused;
		if ((n & (n - 1)) == 0)   /* 1, 2, 4, 8...: a flood does not flood the log */
			th_log(TH_LOG_WARN, "ingest", "%s has more than %u submits in flight; refused "
			       "(retry later; %llu refused so far)", key.unit,
			       (unsigned)s->conf.limits.max_inflight, (unsigned long long)n);
		/* under the submit's own id: the agent knows which batch to send again */
		send_error(s, s->ingest, &id, th_wire_peek_id(buf, len), TH_EBUSY, "too many in flight", 1);
	} else if (t == TH_MSG_SUBMIT) {
		pending *p = &grp->p[grp->n];
		memset(p, 0, sizeof *p);
		int rc = th_wire_decode_submit(buf, len, s->defs, &s->conf.limits, &p->dec, &why);
		if (rc != 0) {
			th_log(TH_LOG_WARN, "ingest", "malformed submit from %s: %s", key.unit, why);
			send_error(s, s->ingest, &id, 0, rc == TH_ENOMEM ? TH_EBUSY : rc, why, rc == TH_ENOMEM);
		} else {
			s->stats.submits++;
			p->msg_id = p->dec.id;
			p->key = key;
			p->n = p->dec.n_reports;
			p->results = calloc(p->n ? p->n : 1, sizeof *p->results);
			p->chk = calloc(p->n ? p->n : 1, sizeof *p->chk);
			p->ok = calloc(p->n ? p->n : 1, sizeof *p->ok);
			if (!p->results || !p->chk || !p->ok) {
				free(p->results);
				free(p->chk);
				free(p->ok);
				th_submit_decoded_free(&p->dec);
				send_error(s, s->ingest, &id, p->msg_id, TH_EBUSY, "out of memory", 1);
			} else {
				zmq_msg_init(&p->id);
				zmq_msg_move(&p->id, &id);
				p->idhash = idh;
				/* every rule, as it arrives: the committer may be writing meanwhile */
				for (size_t k = 0; k < p->n; k++)
					p->ok[k] = (uint8_t)th_ingest_check(s->store, &p->key, s->conf.insecure,
					                                    p->dec.reports[k], p->dec.err[k],
					                                    p->dec.why[k], &p->chk[k], &p->results[k]);
				grp->n++;
				grp->bytes += len;
			}
		}
	} else {
		send_error(s, s->ingest, &id, 0, TH_EPROTO, "this socket takes hello and submit messages", 0);
	}
	zmq_msg_close(&id);
	zmq_msg_close(&body);
	return 1;
}

/* Answers the queries waiting (at most 64 at a time, so ingest is not starved). */
static void serve_query(th_server *s)
{
	for (int k = 0; k < 64; k++) {
		zmq_msg_t id, body;
		zmq_msg_init(&id);
		if (zmq_msg_recv(&id, s->query, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&id);
			return;
		}
		zmq_msg_init(&body);
		if (!zmq_msg_more(&id) || zmq_msg_recv(&body, s->query, 0) < 0) {
			zmq_msg_close(&id);
			zmq_msg_close(&body);
			continue;
		}
		while (zmq_msg_more(&body)) {
			zmq_msg_t x;
			zmq_msg_init(&x);
			zmq_msg_recv(&x, s->query, 0);
			int more = zmq_msg_more(&x);
			zmq_msg_close(&x);
			if (!more)
				break;
		}
		s->stats.queries++;
		th_key key;
		const char *uid = NULL;
		int known = peer_key(s, &body, &key, &uid);
		if (!known)
			th_log(TH_LOG_WARN, "auth", "query from a key that is no longer authorised (%s); "
			       "refused", uid ? uid : "?");
		th_query_env env = {.store = s->store, .defs = s->defs, .stats = &s->stats,
		                    .key = known ? &key : NULL, .units_submit = s->conf.units_submit,
		                    .units_ctx = s->conf.units_ctx};
		uint8_t *out = NULL;
		size_t olen = 0;
		if (th_query_answer(&env, zmq_msg_data(&body), zmq_msg_size(&body), &out, &olen) == 0) {
			send_to(s->query, &id, out, olen);
			free(out);
		}
		zmq_msg_close(&id);
		zmq_msg_close(&body);
	}
}

/* The committer gave back a job: a group (its acks), or nothing else is handed over
 * by this loop (configuration jobs run through th_committer_run). */
static void take_jobs(th_server *s)
{
	th_job *j;
	while ((j = th_committer_take(s->committer))) {
		group *g = j->owner;
		if (g != &s->ga)
			continue;
		s->applying = 0;
		group_results(s, &s->ga);
		/* the next group goes to the committer before this one's acks are encoded */
		group done = s->ga;
		s->ga = s->gb;
		s->gb = done;
		s->gb.job.owner = NULL;
		if (s->ga.n)
			s->applying = group_start(s, &s->ga);
		group_acks(s, &s->gb);
		group_clear(&s->gb);
		if (s->ga.n && !s->applying) {   /* nothing of it went to the store */
			group_acks(s, &s->ga);
			group_clear(&s->ga);
		}
	}
}

static void summary(th_server *s, int64_t *last, uint64_t *last_commits)
{
	int64_t t = th_mono_us();
	if (t - *last <= 60 * 1000000LL)
		return;
	if (s->stats.commits != *last_commits)
		th_log(TH_LOG_INFO, "stats",
		       "accepted %llu duplicate %llu stale %llu conflict %llu retry %llu rejected %llu "
		       "refused %llu commits %llu",
		       (unsigned long long)s->stats.accepted, (unsigned long long)s->stats.duplicate,
		       (unsigned long long)s->stats.stale, (unsigned long long)s->stats.conflict,
		       (unsigned long long)s->stats.retry_later, (unsigned long long)s->stats.rejected,
		       (unsigned long long)s->stats.refused_msgs, (unsigned long long)s->stats.commits);
	*last_commits = s->stats.commits;
	*last = t;
}

int th_server_run(th_server *s, void (*reload)(void *ctx), void *ctx)
{
	size_t gmax = (size_t)s->conf.group_max;
	int64_t last_summary = th_mono_us();
	uint64_t last_commits = 0;
	while (!th_stop_flag) {
		if (th_reload_flag) {
			/* configuration goes through the committer too, behind its group */
			th_reload_flag = 0;
			if (reload)
				reload(ctx);
			if (th_publish_rebind(s->pub) == 0)
				th_log(TH_LOG_INFO, "net", "PUB socket %s recreated: subscribers pass the new "
				       "keys again", s->conf.pub);
			else
				th_log(TH_LOG_ERROR, "net", "cannot recreate the PUB socket on %s: %s; the old "
				       "one stays", s->conf.pub, zmq_strerror(zmq_errno()));
		}
		/* an idle committer takes the group filled so far */
		if (!s->applying && s->gb.n) {
			group t = s->ga;
			s->ga = s->gb;
			s->gb = t;
			if (!(s->applying = group_start(s, &s->ga))) {
				group_acks(s, &s->ga);
				group_clear(&s->ga);
			}
		}
		group *g = &s->gb;
		int room = g->n < gmax && g->bytes < s->conf.group_bytes;
		zmq_pollitem_t items[3] = {{s->ingest, 0, room ? ZMQ_POLLIN : 0, 0},
		                           {s->query, 0, ZMQ_POLLIN, 0},
		                           {NULL, th_committer_fd(s->committer), ZMQ_POLLIN, 0}};
		int rc = zmq_poll(items, 3, 200);
		if (rc < 0) {
			if (zmq_errno() == EINTR)
				continue;
			if (zmq_errno() == ETERM)
				break;
			th_log(TH_LOG_ERROR, "net", "poll: %s", zmq_strerror(zmq_errno()));
			continue;
		}
		if (items[2].revents & ZMQ_POLLIN)
			take_jobs(s);
		if (items[0].revents & ZMQ_POLLIN) {
			/* drain what has arrived, bounded by count and bytes */
			g = &s->gb;
			while (g->n < gmax && g->bytes < s->conf.group_bytes && receive_one(s, g) > 0)
				;
		}
		if (items[1].revents & ZMQ_POLLIN)
			serve_query(s);
		th_conns_poll(s->conns);
		s->stats.disconnects = th_conns_disconnects(s->conns);
		s->stats.conns_live = th_conns_live(s->conns);
		th_metrics_tick(&s->stats);
		summary(s, &last_summary, &last_commits);
	}
	/* stopping: the group with the committer is committed and acknowledged; the one
	 * being filled is not acknowledged (its agents send it again) */
	while (s->applying) {
		zmq_pollitem_t it = {NULL, th_committer_fd(s->committer), ZMQ_POLLIN, 0};
		zmq_poll(&it, 1, 1000);
		th_job *j = th_committer_take(s->committer);
		if (j && j->owner == &s->ga) {
			s->applying = 0;
			group_results(s, &s->ga);
			group_acks(s, &s->ga);
			group_clear(&s->ga);
		}
	}
	group_clear(&s->gb);
	return TH_OK;
}

/* net.c -- sockets, group commit, acks, publishing (DESIGN sections 4-6, 8). */
#include "net.h"
#include "conns.h"
#include "th_clock.h"
#include "th_hash.h"
#include "th_log.h"
#include "th_sock.h"
#include "ingest.h"
#include "metrics.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <zmq.h>

volatile sig_atomic_t th_stop_flag, th_reload_flag;

struct th_server {
	th_server_conf conf;
	th_store *store;
	const th_defset *defs;
	th_zap *zap;
	void *ctx;
	void *ingest, *pub, *query;
	th_stats stats;
	/* prefixes subscribed on the XPUB socket (libzmq passes each topic's first
	 * subscribe and last unsubscribe): publish builds only what someone wants */
	char **subs;
	size_t *sublen, nsubs, capsubs;
	/* hellos that arrived while the committer held the store, answered after it */
	int committing;
	struct deferred_hello *dh;
	size_t ndh, capdh;
	th_conns *conns;
};

static void subs_clear(th_server *s);

typedef struct deferred_hello {
	zmq_msg_t id, body;
	th_key key;
} deferred_hello;


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

int th_server_new(const th_server_conf *conf, th_store *store, const th_defset *defs,
                  th_zap *zap, void *zmq_ctx, th_server **out)
{
	th_server *s = calloc(1, sizeof *s);
	if (!s)
		return TH_ENOMEM;
	s->conf = *conf;
	s->store = store;
	s->defs = defs;
	s->zap = zap;
	s->ctx = zmq_ctx;
	s->ingest = zmq_socket(s->ctx, ZMQ_ROUTER);
	s->pub = zmq_socket(s->ctx, ZMQ_XPUB);
	s->query = zmq_socket(s->ctx, ZMQ_ROUTER);
	if (!s->ingest || !s->pub || !s->query)
		goto fail;
	void *socks[3] = {s->ingest, s->pub, s->query};
	const char *eps[3] = {conf->bind, conf->pub, conf->query};
	for (int i = 0; i < 3; i++) {
		if (setup_socket(conf, socks[i], i == 1) != 0)
			goto fail;
		if (zmq_bind(socks[i], eps[i]) != 0) {
			th_log(TH_LOG_ERROR, "net", "cannot bind %s: %s", eps[i], zmq_strerror(zmq_errno()));
			goto fail;
		}
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
	int zero = 0;
	th_conns_destroy(&s->conns);
	if (s->ingest) {
		zmq_setsockopt(s->ingest, ZMQ_LINGER, &zero, sizeof zero);
		zmq_close(s->ingest);
	}
	if (s->pub)
		zmq_close(s->pub);
	if (s->query) {
		zmq_setsockopt(s->query, ZMQ_LINGER, &zero, sizeof zero);
		zmq_close(s->query);
	}
	subs_clear(s);
	for (size_t i = 0; i < s->ndh; i++) {
		zmq_msg_close(&s->dh[i].id);
		zmq_msg_close(&s->dh[i].body);
	}
	free(s->dh);
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

/* --- submit / group commit ----------------------------------------------------------- */

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

static void result_reject(th_ack_result *r, th_ack_status st, int code, long row, const char *column,
                          const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void result_reject(th_ack_result *r, th_ack_status st, int code, long row, const char *column,
                          const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = NULL;
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	r->status = st;
	r->code = code;
	r->row = row;
	free(r->message);
	r->message = m;
	free(r->column);
	r->column = column ? strdup(column) : NULL;
}

static void subs_clear(th_server *s)
{
	for (size_t i = 0; i < s->nsubs; i++)
		free(s->subs[i]);
	free(s->subs);
	free(s->sublen);
	s->subs = NULL;
	s->sublen = NULL;
	s->nsubs = s->capsubs = 0;
}

/* Reads the (un)subscriptions waiting on the XPUB socket into s->subs. */
static void subs_read(th_server *s)
{
	if (!s->pub)
		return;
	for (;;) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, s->pub, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		const uint8_t *d = zmq_msg_data(&m);
		size_t n = zmq_msg_size(&m);
		if (n >= 1 && (d[0] == 0 || d[0] == 1)) {
			size_t i = 0;
			while (i < s->nsubs && !(s->sublen[i] == n - 1 && !memcmp(s->subs[i], d + 1, n - 1)))
				i++;
			if (d[0] == 0 && i < s->nsubs) {
				free(s->subs[i]);
				s->subs[i] = s->subs[s->nsubs - 1];
				s->sublen[i] = s->sublen[s->nsubs - 1];
				s->nsubs--;
			} else if (d[0] == 1 && i == s->nsubs) {
				if (s->nsubs == s->capsubs) {
					size_t cap = s->capsubs ? s->capsubs * 2 : 8;
					char **ns = realloc(s->subs, cap * sizeof *ns);
					if (ns)
						s->subs = ns;
					size_t *nl = realloc(s->sublen, cap * sizeof *nl);
					if (nl)
						s->sublen = nl;
					if (ns && nl)
						s->capsubs = cap;
				}
				char *copy = s->nsubs < s->capsubs ? malloc(n) : NULL;
				if (copy) {
					memcpy(copy, d + 1, n - 1);
					s->subs[s->nsubs] = copy;
					s->sublen[s->nsubs++] = n - 1;
				}
			}
		}
		zmq_msg_close(&m);
	}
}

static int subs_want(const th_server *s, const char *topic, size_t tl)
{
	for (size_t i = 0; i < s->nsubs; i++)
		if (s->sublen[i] <= tl && !memcmp(s->subs[i], topic, s->sublen[i]))
			return 1;
	return 0;
}

static void publish_changes(th_server *s, th_changed_node *ch, size_t n)
{
	subs_read(s);
	for (size_t i = 0; i < n && s->nsubs; i++) {
		const th_def *d = th_store_def_for(s->store, ch[i].appendix, ch[i].period);
		if (!d)
			continue;
		char topic[256];
		int tl = snprintf(topic, sizeof topic, "L%u\x1f%s\x1f%s\x1f%s\x1f", ch[i].level, ch[i].unit,
		                  ch[i].appendix, ch[i].period);
		if (tl <= 0 || (size_t)tl >= sizeof topic || !subs_want(s, topic, (size_t)tl))
			continue;   /* nobody listens to this node: not even read */
		th_node node;
		memset(&node, 0, sizeof node);
		if (th_store_get_node(s->store, ch[i].appendix, ch[i].period, ch[i].unit, &node) != 0)
			continue;
		msgpack_sbuffer sb;
		msgpack_sbuffer_init(&sb);
		msgpack_packer pk;
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, 12);
#define KS(k) (msgpack_pack_str(&pk, strlen(k)), msgpack_pack_str_body(&pk, k, strlen(k)))
		KS("unit"); KS(ch[i].unit);
		KS("appendix"); KS(ch[i].appendix);
		KS("period"); KS(ch[i].period);
		KS("level"); msgpack_pack_uint32(&pk, ch[i].level);
		KS("version"); msgpack_pack_uint64(&pk, node.version);
		KS("commit"); msgpack_pack_uint64(&pk, node.commit);
		KS("own");
		msgpack_pack_array(&pk, d->n_slots);
		for (size_t k = 0; k < d->n_slots; k++)
			msgpack_pack_int64(&pk, node.own ? node.own[k] : 0);
		KS("total");
		msgpack_pack_array(&pk, d->n_slots);
		for (size_t k = 0; k < d->n_slots; k++)
			msgpack_pack_int64(&pk, node.total ? node.total[k] : 0);
		KS("expected"); msgpack_pack_uint32(&pk, node.expected);
		KS("reported"); msgpack_pack_uint32(&pk, node.reported);
		KS("on_time"); msgpack_pack_uint32(&pk, node.on_time);
		KS("late"); msgpack_pack_uint32(&pk, node.late);
#undef KS
		if (tl > 0 && s->pub && zmq_send(s->pub, topic, (size_t)tl, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
		    zmq_send(s->pub, sb.data, sb.size, ZMQ_DONTWAIT) >= 0)
			s->stats.published++;
		msgpack_sbuffer_destroy(&sb);
		th_node_free(&node);
	}
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

/* --- the committer: th_store_apply on its own thread ----------------------------------
 * While a group is applied and fsync'd, the network thread keeps receiving and decoding the
 * next group; it touches the store only while the committer is idle (check_report, hellos,
 * queries, publishing), so the store is never used from two threads at once. */
typedef struct committer {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int efd;                 /* eventfd: the committer adds 1 when a job is done */
	int job, quit, started;
	th_store *store;
	/* the job */
	th_submission *subs;
	size_t ns;
	th_ack_result **dst;     /* the ack result of each submission */
	/* its outcome */
	int rc;
	uint64_t commit;
	int64_t ctime, dt;
	th_changed_node *changed;
	size_t nchanged;
} committer;

static void *committer_main(void *arg)
{
	committer *c = arg;
	pthread_setname_np(pthread_self(), "th-committer");
	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->job && !c->quit)
			pthread_cond_wait(&c->cv, &c->mu);
		if (!c->job)
			break;
		pthread_mutex_unlock(&c->mu);
		int64_t t0 = th_now_us();
		c->changed = NULL;
		c->nchanged = 0;
		c->rc = th_store_apply(c->store, c->subs, c->ns, &c->commit, &c->ctime, &c->changed,
		                       &c->nchanged);
		c->dt = th_now_us() - t0;
		pthread_mutex_lock(&c->mu);
		c->job = 0;
		pthread_cond_broadcast(&c->cv);   /* committer_wait */
		uint64_t one = 1;
		if (write(c->efd, &one, sizeof one) != sizeof one)
			th_log(TH_LOG_ERROR, "store", "committer cannot signal: %s", strerror(errno));
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Checks a received group and hands the reports that pass to the committer.  Returns the
 * submissions array (NULL when nothing is to be stored: the group can be finished at once). */
static th_submission *group_start(th_server *s, committer *c, pending *g, size_t ng, size_t *ns_out)
{
	size_t total = 0;
	for (size_t i = 0; i < ng; i++)
		total += g[i].n;
	th_submission *subs = calloc(total ? total : 1, sizeof *subs);
	free(c->dst);
	c->dst = calloc(total ? total : 1, sizeof *c->dst);
	if (!c->dst) {
		free(subs);
		subs = NULL;
	}
	size_t ns = 0;
	for (size_t i = 0; i < ng && subs; i++)
		for (size_t k = 0; k < g[i].n; k++)
			if ((g[i].ok[k] = (uint8_t)th_ingest_check(s->store, &g[i].key, s->conf.insecure,
			                                           g[i].dec.reports[k], g[i].dec.err[k],
			                                           g[i].dec.why[k], &g[i].chk[k],
			                                           &g[i].results[k]))) {
				c->dst[ns] = &g[i].results[k];
				subs[ns++] = g[i].chk[k].sub;
			}
	*ns_out = ns;
	if (!ns || !subs)
		return subs;
	pthread_mutex_lock(&c->mu);
	c->subs = subs;
	c->ns = ns;
	c->job = 1;
	pthread_cond_signal(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return subs;
}

/* Waits until the committer is idle, and consumes its signal. */
static void committer_wait(committer *c)
{
	uint64_t v;
	pthread_mutex_lock(&c->mu);
	while (c->job)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	while (read(c->efd, &v, sizeof v) == sizeof v)
		;
}

/* After the committer finished the group's job (or when there was none): results of a failed
 * commit, counters, publishing (which reads the store).  *commit and *ctime are for the acks
 * (group_acks), sent once the committer has the next group. */
static void group_results(th_server *s, committer *c, th_submission *subs, size_t ns,
                          uint64_t *commit_out, int64_t *ctime_out)
{
	uint64_t commit = 0;
	int64_t ctime = 0;
	th_changed_node *changed = NULL;
	size_t nchanged = 0;
	if (ns) {
		int rc = c->rc;
		int64_t dt = c->dt;
		changed = c->changed;
		nchanged = c->nchanged;
		c->changed = NULL;
		if (rc != 0) {
			th_log(TH_LOG_ERROR, "store", "group of %zu reports not committed: %s", ns,
			       th_strerror(rc));
			for (size_t k = 0; k < ns; k++)
				result_reject(c->dst[k], TH_ACK_RETRY_LATER, rc == TH_ENOSPC ? TH_ENOSPC : TH_ESTORE,
				              0, NULL, "%s", rc == TH_ENOSPC
				                  ? "the collector cannot write to its store now (disk full or a size limit); your report is kept and will be retried"
				                  : "the collector could not store the report; it will be retried");
		} else {
			commit = c->commit;
			ctime = c->ctime;
			s->stats.commits++;
			s->stats.group_reports_sum += ns;
			if (ns > s->stats.group_reports_max)
				s->stats.group_reports_max = ns;
			s->stats.commit_us_sum += (uint64_t)dt;
			if ((uint64_t)dt > s->stats.commit_us_max)
				s->stats.commit_us_max = (uint64_t)dt;
			th_metrics_observe_commit(dt);
			for (size_t k = 0; k < ns; k++) {
				th_ingest_answer(s->store, &subs[k].result, NULL, NULL, NULL, 0, c->dst[k]);
				if (subs[k].result.status == TH_STORE_ACCEPTED)
					s->stats.records += subs[k].report->n_rows;
			}
			th_log(TH_LOG_DEBUG, "store", "commit %llu: %zu reports in %lld us",
			       (unsigned long long)commit, ns, (long long)dt);
		}
	}
	if (nchanged)
		publish_changes(s, changed, nchanged);
	free(changed);
	free(subs);
	*commit_out = commit;
	*ctime_out = ctime;
}

/* The acks of a group (only once it is durable): one per submit. */
static void group_acks(th_server *s, pending *g, size_t ng, uint64_t commit, int64_t ctime)
{
	const uint8_t *uuid = th_store_uuid(s->store);
	for (size_t i = 0; i < ng; i++) {
		th_ack a = {0};
		a.id = g[i].msg_id;
		memcpy(a.store, uuid, TH_STORE_UUID_LEN);
		a.commit = commit;
		a.commit_time = ctime;
		a.results = g[i].results;
		a.n_results = g[i].n;
		for (size_t k = 0; k < g[i].n; k++) {
			const th_submit_decoded *d = &g[i].dec;
			/* the store's result is merged already (group_results) */
			th_ingest_answer(s->store, NULL, d->unit[k], d->appendix[k], d->period[k], d->rev[k],
			                 &g[i].results[k]);
			count_result(s, &g[i].results[k], &g[i].key);
		}
		uint8_t *buf;
		size_t len;
		if (th_wire_encode_ack(&a, &buf, &len) == 0) {
			send_to(s->ingest, &g[i].id, buf, len);
			free(buf);
		}
	}
}

static void group_finish(th_server *s, committer *c, pending *g, size_t ng, th_submission *subs,
                         size_t ns)
{
	uint64_t commit;
	int64_t ctime;
	group_results(s, c, subs, ns, &commit, &ctime);
	group_acks(s, g, ng, commit, ctime);
}

static void pending_free(pending *p)
{
	for (size_t k = 0; k < p->n; k++)
		th_ack_result_free(&p->results[k]);
	free(p->results);
	for (size_t k = 0; p->ok && k < p->n; k++)
		if (p->ok[k])
			th_checked_release(&p->chk[k]);
	free(p->chk);
	free(p->ok);
	th_submit_decoded_free(&p->dec);
	zmq_msg_close(&p->id);
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

/* Reads the ingest socket's monitor: closed connections stop counting. */
static void conns_tick(th_server *s)
{
	th_conns_poll(s->conns);
	s->stats.disconnects = th_conns_disconnects(s->conns);
	s->stats.conns_live = th_conns_live(s->conns);
}

/* Receives one message from the ingest socket; handles hello and errors at
 * once; a decoded submit is appended to the group. Returns 1 when a message
 * was read, 0 when none was waiting, -1 on a socket error. */
static int receive_one(th_server *s, pending *g, size_t *ng, size_t *bytes)
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
	} else if (t == TH_MSG_HELLO && s->committing) {
		/* the welcome reads the store: answered when the committer is done */
		if (s->ndh == s->capdh) {
			size_t cap = s->capdh ? s->capdh * 2 : 64;
			deferred_hello *n = cap <= 65536 ? realloc(s->dh, cap * sizeof *n) : NULL;
			if (n) {
				s->dh = n;
				s->capdh = cap;
			}
		}
		if (s->ndh < s->capdh) {
			deferred_hello *d = &s->dh[s->ndh++];
			zmq_msg_init(&d->id);
			zmq_msg_init(&d->body);
			zmq_msg_move(&d->id, &id);
			zmq_msg_move(&d->body, &body);
			d->key = key;
		} else {
			send_error(s, s->ingest, &id, 0, TH_EBUSY, "too many hellos waiting", 1);
		}
	} else if (t == TH_MSG_HELLO) {
		on_hello(s, &id, buf, len, &key);
	} else if (t == TH_MSG_SUBMIT && inflight(g, *ng, &id, idh = id_hash(&id)) >= s->conf.limits.max_inflight) {
		uint64_t n = ++s->stats.inflight_refused;
		if ((n & (n - 1)) == 0)   /* 1, 2, 4, 8...: a flood does not flood the log */
			th_log(TH_LOG_WARN, "ingest", "%s has more than %u submits in flight; refused "
			       "(retry later; %llu refused so far)", key.unit,
			       (unsigned)s->conf.limits.max_inflight, (unsigned long long)n);
		/* under the submit's own id: the agent knows which batch to send again */
		send_error(s, s->ingest, &id, th_wire_peek_id(buf, len), TH_EBUSY, "too many in flight", 1);
	} else if (t == TH_MSG_SUBMIT) {
		pending *p = &g[*ng];
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
				(*ng)++;
				*bytes += len;
			}
		}
	} else {
		send_error(s, s->ingest, &id, 0, TH_EPROTO, "this socket takes hello and submit messages", 0);
	}
	zmq_msg_close(&id);
	zmq_msg_close(&body);
	return 1;
}

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

/* Recreates the PUB socket on the same endpoint, so that every subscriber reconnects and
 * passes ZAP again under the keys now in force: a revoked reader is cut off.  The old
 * socket stays in use when the new one cannot be set up. */
static void pub_rebind(th_server *s)
{
	if (!s->conf.pub)
		return;
	int zero = 0;
	zmq_unbind(s->pub, s->conf.pub);
	zmq_setsockopt(s->pub, ZMQ_LINGER, &zero, sizeof zero);
	zmq_close(s->pub);
	s->pub = NULL;
	subs_clear(s);   /* the subscribers reconnect and subscribe again */
	for (int attempt = 0; attempt < 100 && !s->pub; attempt++) {
		void *p = zmq_socket(s->ctx, ZMQ_XPUB);
		if (!p)
			break;
		if (setup_socket(&s->conf, p, 1) == 0 && zmq_bind(p, s->conf.pub) == 0) {
			s->pub = p;
			break;
		}
		zmq_setsockopt(p, ZMQ_LINGER, &zero, sizeof zero);
		zmq_close(p);
		usleep(20000);   /* the old listener is closed asynchronously */
	}
	if (s->pub)
		th_log(TH_LOG_INFO, "net", "PUB socket %s recreated: subscribers pass the new keys again",
		       s->conf.pub);
	else
		th_log(TH_LOG_ERROR, "net", "cannot recreate the PUB socket on %s: %s; publishing stops",
		       s->conf.pub, zmq_strerror(zmq_errno()));
}

static void answer_deferred_hellos(th_server *s)
{
	for (size_t i = 0; i < s->ndh; i++) {
		deferred_hello *d = &s->dh[i];
		on_hello(s, &d->id, zmq_msg_data(&d->body), zmq_msg_size(&d->body), &d->key);
		zmq_msg_close(&d->id);
		zmq_msg_close(&d->body);
	}
	s->ndh = 0;
}

int th_server_run(th_server *s, void (*reload)(void *ctx), void *ctx)
{
	int gmax = s->conf.group_max > 0 ? s->conf.group_max : 1024;
	/* three groups: one with the committer, one filling, and the one just committed
	 * whose acks go out once the committer has the next */
	pending *ga = calloc((size_t)gmax, sizeof *ga), *gb = calloc((size_t)gmax, sizeof *gb),
	        *gc = calloc((size_t)gmax, sizeof *gc);
	committer c;
	memset(&c, 0, sizeof c);
	c.store = s->store;
	c.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (!ga || !gb || !gc || c.efd < 0 || pthread_mutex_init(&c.mu, NULL) ||
	    pthread_cond_init(&c.cv, NULL) || pthread_create(&c.th, NULL, committer_main, &c)) {
		th_log(TH_LOG_ERROR, "main", "cannot start the committer thread");
		free(ga);
		free(gb);
		free(gc);
		if (c.efd >= 0)
			close(c.efd);
		return TH_ENOMEM;
	}
	size_t na = 0, nb = 0, bytes = 0, ns = 0;   /* na: the committing group's size */
	th_submission *subs = NULL;
	int64_t last_summary = th_now_us();
	uint64_t last_commits = 0;
	while (!th_stop_flag) {
		if (th_reload_flag && !s->committing) {
			th_reload_flag = 0;
			if (reload)
				reload(ctx);
			pub_rebind(s);
		}
		int room = nb < (size_t)gmax && bytes < s->conf.group_bytes;
		zmq_pollitem_t items[3] = {{s->ingest, 0, room ? ZMQ_POLLIN : 0, 0},
		                           {s->query, 0, s->committing ? 0 : ZMQ_POLLIN, 0},
		                           {NULL, c.efd, s->committing ? ZMQ_POLLIN : 0, 0}};
		/* a group waiting for an idle committer must not wait for the poll */
		int rc = zmq_poll(items, 3, !s->committing && nb && !th_reload_flag ? 0 : 200);
		if (rc < 0) {
			if (zmq_errno() == EINTR)
				continue;
			if (zmq_errno() == ETERM)
				break;
			th_log(TH_LOG_ERROR, "net", "poll: %s", zmq_strerror(zmq_errno()));
			continue;
		}
		/* the committer first: it gets the next group before this thread encodes the
		 * acks of the one it finished or decodes what has arrived since */
		size_t nc = 0;   /* gc: the group just committed, acks still to send */
		uint64_t c_commit = 0;
		int64_t c_time = 0;
		if (s->committing && (items[2].revents & ZMQ_POLLIN)) {
			committer_wait(&c);
			s->committing = 0;
			group_results(s, &c, subs, ns, &c_commit, &c_time);
			pending *t = gc;
			gc = ga;
			ga = t;
			nc = na;
			na = 0;
			subs = NULL;
			/* between groups the store is free: what waited for it goes first */
			answer_deferred_hellos(s);
			serve_query(s);
		}
		if (!s->committing && nb && !th_reload_flag) {
			subs = group_start(s, &c, gb, nb, &ns);
			pending *t = ga;
			ga = gb;
			gb = t;
			na = nb;
			nb = bytes = 0;
			if (ns && subs) {
				s->committing = 1;
			} else {
				group_finish(s, &c, ga, na, subs, 0);
				for (size_t i = 0; i < na; i++)
					pending_free(&ga[i]);
				na = 0;
				subs = NULL;
			}
		}
		if (nc) {
			group_acks(s, gc, nc, c_commit, c_time);
			for (size_t i = 0; i < nc; i++)
				pending_free(&gc[i]);
		}
		if (items[0].revents & ZMQ_POLLIN) {
			/* drain what has arrived, bounded by count and bytes */
			while (nb < (size_t)gmax && bytes < s->conf.group_bytes) {
				int r = receive_one(s, gb, &nb, &bytes);
				if (r <= 0)
					break;
			}
		}
		if (!s->committing && (items[1].revents & ZMQ_POLLIN))
			serve_query(s);
		conns_tick(s);
		th_metrics_tick(&s->stats);
		int64_t t = th_now_us();
		if (t - last_summary > 60 * 1000000LL) {
			if (s->stats.commits != last_commits)
				th_log(TH_LOG_INFO, "stats",
				       "accepted %llu duplicate %llu stale %llu conflict %llu retry %llu rejected %llu "
				       "refused %llu commits %llu",
				       (unsigned long long)s->stats.accepted, (unsigned long long)s->stats.duplicate,
				       (unsigned long long)s->stats.stale, (unsigned long long)s->stats.conflict,
				       (unsigned long long)s->stats.retry_later, (unsigned long long)s->stats.rejected,
				       (unsigned long long)s->stats.refused_msgs, (unsigned long long)s->stats.commits);
			last_commits = s->stats.commits;
			last_summary = t;
		}
	}
	/* stopping: the group with the committer is committed and acknowledged; the one
	 * being filled is not acknowledged (its agents send it again) */
	if (s->committing) {
		committer_wait(&c);
		s->committing = 0;
		group_finish(s, &c, ga, na, subs, ns);
		for (size_t i = 0; i < na; i++)
			pending_free(&ga[i]);
	}
	for (size_t i = 0; i < nb; i++)
		pending_free(&gb[i]);
	answer_deferred_hellos(s);
	pthread_mutex_lock(&c.mu);
	c.quit = 1;
	pthread_cond_signal(&c.cv);
	pthread_mutex_unlock(&c.mu);
	pthread_join(c.th, NULL);
	pthread_mutex_destroy(&c.mu);
	free(c.dst);
	pthread_cond_destroy(&c.cv);
	close(c.efd);
	free(ga);
	free(gb);
	free(gc);
	return TH_OK;
}

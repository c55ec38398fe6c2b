/* server.c -- sockets, group commit, acks, publishing (DESIGN sections 4-6, 8). */
#include "server.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/time.h>
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
};

static int64_t now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static int curve_server(void *sock, const th_server_conf *c)
{
	if (c->insecure)
		return 0;
	int one = 1;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, c->server_sec, TH_Z85_LEN) ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "tonghop", 7))
		return -1;
	return 0;
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
	s->pub = zmq_socket(s->ctx, ZMQ_PUB);
	s->query = zmq_socket(s->ctx, ZMQ_ROUTER);
	if (!s->ingest || !s->pub || !s->query)
		goto fail;
	int64_t maxmsg = conf->limits.max_msg_bytes;
	/* backlog: after a restart every agent reconnects at once; libzmq's
	 * default listen backlog (100) overflows and the dropped connections wait
	 * for the TCP SYN retransmission backoff (1, 3, 7, 15 s...).  The kernel
	 * caps it at net.core.somaxconn. */
	int hwm = 100000, one = 1, linger = 2000, hb = 5000, hbt = 30000, backlog = 4096;
	void *socks[3] = {s->ingest, s->pub, s->query};
	const char *eps[3] = {conf->bind, conf->pub, conf->query};
	for (int i = 0; i < 3; i++) {
		zmq_setsockopt(socks[i], ZMQ_LINGER, &linger, sizeof linger);
		zmq_setsockopt(socks[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
		zmq_setsockopt(socks[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
		zmq_setsockopt(socks[i], ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
		zmq_setsockopt(socks[i], ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
		zmq_setsockopt(socks[i], ZMQ_BACKLOG, &backlog, sizeof backlog);
		if (i != 1)
			zmq_setsockopt(socks[i], ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
		if (i != 1)
			zmq_setsockopt(socks[i], ZMQ_ROUTER_MANDATORY, &one, sizeof one);
		if (curve_server(socks[i], conf) != 0) {
			th_log(TH_LOG_ERROR, "net", "cannot enable CURVE: %s", zmq_strerror(zmq_errno()));
			goto fail;
		}
		if (zmq_bind(socks[i], eps[i]) != 0) {
			th_log(TH_LOG_ERROR, "net", "cannot bind %s: %s", eps[i], zmq_strerror(zmq_errno()));
			goto fail;
		}
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
		if (th_defset_latest(s->defs, d->id) == d)
			w.defs[w.n_defs++] = d->source;
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
	uint64_t msg_id;
	th_submit_decoded dec;
	th_ack_result *results;
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

static void add_warning(th_ack_result *r, const char *text)
{
	char **w = realloc(r->warnings, (r->n_warnings + 1) * sizeof *w);
	if (!w)
		return;
	r->warnings = w;
	if ((w[r->n_warnings] = strdup(text)))
		r->n_warnings++;
}

/* Checks one decoded report; returns 1 when it may go to the store. */
static int check_report(th_server *s, pending *p, size_t i, th_ack_result *res)
{
	th_report *r = p->dec.reports[i];
	const th_key *key = &p->key;
	if (!r) {
		int code = p->dec.err[i];
		th_ack_status st = code == TH_EDEFCHANGED ? TH_ACK_RETRY_LATER : TH_ACK_REJECTED;
		result_reject(res, st, code, 0, NULL, "%s", p->dec.why[i] ? p->dec.why[i] : th_strerror(code));
		return 0;
	}
	if (key->role == TH_ROLE_READER) {
		result_reject(res, TH_ACK_REJECTED, TH_EAUTH, 0, NULL,
		              "this key has the reader role and cannot submit");
		return 0;
	}
	if (r->tombstone && key->role != TH_ROLE_ADMIN) {
		result_reject(res, TH_ACK_REJECTED, TH_EAUTH, 0, NULL, "only an admin key may withdraw a report");
		return 0;
	}
	const th_def *d = th_defset_get(s->defs, r->appendix, r->version);
	if (!d || th_defset_latest(s->defs, r->appendix) != d) {
		result_reject(res, TH_ACK_RETRY_LATER, TH_EDEFCHANGED, 0, NULL,
		              "%s version %u is not the version in force; fetch the current definitions",
		              r->appendix, r->version);
		return 0;
	}
	th_diag *diag = th_diag_new();
	if (!diag) {
		result_reject(res, TH_ACK_RETRY_LATER, TH_ENOMEM, 0, NULL, "out of memory");
		return 0;
	}
	th_report_validate(r, d, diag);
	int ok = 1;
	size_t nerr = 0;
	for (size_t k = 0; k < th_diag_count(diag); k++) {
		const th_diag_entry *e = th_diag_at(diag, k);
		if (e->sev == TH_SEV_WARNING) {
			add_warning(res, th_diag_text(diag, k));
		} else if (nerr++ == 0) {
			result_reject(res, TH_ACK_REJECTED, e->code, e->row, e->column, "%s", e->msg);
			ok = 0;
		}
	}
	if (nerr > 1 && res->message) {
		char *m = NULL;
		if (asprintf(&m, "%s (and %zu more problems)", res->message, nerr - 1) >= 0) {
			free(res->message);
			res->message = m;
		}
	}
	th_diag_destroy(&diag);
	if (!ok)
		return 0;
	const th_units *h = NULL;
	if (th_store_hierarchy_for(s->store, r->period, &h) != 0 || !h) {
		result_reject(res, TH_ACK_RETRY_LATER, TH_ESTORE, 0, NULL,
		              "no hierarchy is loaded for period %s", r->period);
		return 0;
	}
	long u = th_units_find(h, r->unit);
	if (u < 0) {
		result_reject(res, TH_ACK_REJECTED, TH_EUNIT, 0, NULL,
		              "unit %s is not in hierarchy %s (bound to period %s)", r->unit,
		              th_units_version(h), r->period);
		return 0;
	}
	if (!s->conf.insecure || key->role != TH_ROLE_ADMIN) {
		long k = th_units_find(h, key->unit);
		if (k < 0 || !th_units_in_subtree(h, (size_t)k, (size_t)u)) {
			result_reject(res, TH_ACK_REJECTED, TH_ESCOPE, 0, NULL,
			              "the key of %s may not file for %s (outside its subtree)", key->unit,
			              r->unit);
			return 0;
		}
	}
	return 1;
}

static void fill_identity(th_ack_result *res, const pending *p, size_t i)
{
	if (!res->unit)
		res->unit = strdup(p->dec.unit[i] ? p->dec.unit[i] : "");
	if (!res->appendix)
		res->appendix = strdup(p->dec.appendix[i] ? p->dec.appendix[i] : "");
	if (!res->period)
		res->period = strdup(p->dec.period[i] ? p->dec.period[i] : "");
	if (!res->rev)
		res->rev = p->dec.rev[i];
}

static void publish_changes(th_server *s, th_changed_node *ch, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const th_def *d = th_defset_latest(s->defs, ch[i].appendix);
		if (!d)
			continue;
		th_node node;
		memset(&node, 0, sizeof node);
		if (th_store_get_node(s->store, ch[i].appendix, ch[i].period, ch[i].unit, &node) != 0)
			continue;
		char topic[256];
		int tl = snprintf(topic, sizeof topic, "L%u\x1f%s\x1f%s\x1f%s\x1f", ch[i].level, ch[i].unit,
		                  ch[i].appendix, ch[i].period);
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

static void process_group(th_server *s, pending *g, size_t ng)
{
	size_t total = 0;
	for (size_t i = 0; i < ng; i++)
		total += g[i].n;
	th_submission *subs = calloc(total ? total : 1, sizeof *subs);
	size_t ns = 0;
	for (size_t i = 0; i < ng && subs; i++)
		for (size_t k = 0; k < g[i].n; k++)
			if (check_report(s, &g[i], k, &g[i].results[k])) {
				subs[ns].report = g[i].dec.reports[k];
				subs[ns].sender = g[i].key.comment[0] ? g[i].key.comment : g[i].key.unit;
				subs[ns].result = &g[i].results[k];
				ns++;
			}
	uint64_t commit = 0;
	int64_t ctime = 0;
	th_changed_node *changed = NULL;
	size_t nchanged = 0;
	if (ns) {
		int64_t t0 = now_us();
		int rc = th_store_apply(s->store, subs, ns, &commit, &ctime, &changed, &nchanged);
		int64_t dt = now_us() - t0;
		if (rc != 0) {
			th_log(TH_LOG_ERROR, "store", "group of %zu reports not committed: %s", ns,
			       th_strerror(rc));
			for (size_t k = 0; k < ns; k++)
				result_reject(subs[k].result, TH_ACK_RETRY_LATER, rc == TH_ENOSPC ? TH_ENOSPC : TH_ESTORE,
				              0, NULL, "%s", rc == TH_ENOSPC
				                  ? "the collector cannot write to its store now (disk full or a size limit); your report is kept and will be retried"
				                  : "the collector could not store the report; it will be retried");
			commit = 0;
		} else {
			s->stats.commits++;
			s->stats.group_reports_sum += ns;
			if (ns > s->stats.group_reports_max)
				s->stats.group_reports_max = ns;
			s->stats.commit_us_sum += (uint64_t)dt;
			if ((uint64_t)dt > s->stats.commit_us_max)
				s->stats.commit_us_max = (uint64_t)dt;
			th_metrics_observe_commit(dt);
			for (size_t k = 0; k < ns; k++)
				if (subs[k].result->status == TH_ACK_ACCEPTED)
					s->stats.records += subs[k].report->n_rows;
			th_log(TH_LOG_DEBUG, "store", "commit %llu: %zu reports in %lld us",
			       (unsigned long long)commit, ns, (long long)dt);
		}
	}
	/* acks, only now that the group is durable */
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
			fill_identity(&g[i].results[k], &g[i], k);
			count_result(s, &g[i].results[k], &g[i].key);
		}
		uint8_t *buf;
		size_t len;
		if (th_wire_encode_ack(&a, &buf, &len) == 0) {
			send_to(s->ingest, &g[i].id, buf, len);
			free(buf);
		}
	}
	if (nchanged)
		publish_changes(s, changed, nchanged);
	free(changed);
	free(subs);
}

static void pending_free(pending *p)
{
	for (size_t k = 0; k < p->n; k++)
		th_ack_result_free(&p->results[k]);
	free(p->results);
	th_submit_decoded_free(&p->dec);
	zmq_msg_close(&p->id);
}

/* How many submits of the group g[0..ng) came from routing id. */
static uint32_t inflight(pending *g, size_t ng, zmq_msg_t *id)
{
	uint32_t n = 0;
	for (size_t i = 0; i < ng; i++)
		if (zmq_msg_size(&g[i].id) == zmq_msg_size(id) &&
		    memcmp(zmq_msg_data(&g[i].id), zmq_msg_data(id), zmq_msg_size(id)) == 0)
			n++;
	return n;
}

/* Receives one message from the ingest socket; handles hello and errors at
 * once; a decoded submit is appended to the group. Returns 1 when a message
 * was read, 0 when none was waiting, -1 on a socket error. */
static int receive_one(th_server *s, pending *g, size_t *ng, size_t *bytes)
{
	zmq_msg_t id, body;
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
	memset(&key, 0, sizeof key);
	const char *uid = zmq_msg_gets(&body, "User-Id");
	int known;
	if (s->conf.insecure) {
		key.role = TH_ROLE_ADMIN;
		snprintf(key.unit, sizeof key.unit, "%s", s->conf.root_unit ? s->conf.root_unit : "");
		snprintf(key.comment, sizeof key.comment, "insecure peer");
		known = 1;
	} else {
		known = uid && th_zap_lookup(s->zap, uid, &key) == 0;
	}
	const uint8_t *buf = zmq_msg_data(&body);
	size_t len = zmq_msg_size(&body);
	s->stats.bytes += len;
	th_msg_type t = 0;
	const char *why = NULL;
	if (!known) {
		th_log(TH_LOG_WARN, "auth", "message from a key that is no longer authorised (%s)",
		       uid ? uid : "?");
		send_error(s, s->ingest, &id, 0, TH_EAUTH, "this key is not (or no longer) authorised", 0);
	} else if (extra) {
		th_log(TH_LOG_WARN, "ingest", "message from %s has extra frames; refused", key.unit);
		send_error(s, s->ingest, &id, 0, TH_EPROTO, "a message is exactly one frame", 0);
	} else if (th_wire_type(buf, len, &t, &why) != 0) {
		th_log(TH_LOG_WARN, "ingest", "malformed message from %s (%zu bytes): %s", key.unit, len, why);
		send_error(s, s->ingest, &id, 0, TH_EPROTO, why, 0);
	} else if (t == TH_MSG_HELLO) {
		on_hello(s, &id, buf, len, &key);
	} else if (t == TH_MSG_SUBMIT && inflight(g, *ng, &id) >= s->conf.limits.max_inflight) {
		uint64_t n = ++s->stats.inflight_refused;
		if ((n & (n - 1)) == 0)   /* 1, 2, 4, 8...: a flood does not flood the log */
			th_log(TH_LOG_WARN, "ingest", "%s has more than %u submits in flight; refused "
			       "(retry later; %llu refused so far)", key.unit,
			       (unsigned)s->conf.limits.max_inflight, (unsigned long long)n);
		send_error(s, s->ingest, &id, 0, TH_EBUSY, "too many in flight", 1);
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
			if (!p->results) {
				th_submit_decoded_free(&p->dec);
				send_error(s, s->ingest, &id, p->msg_id, TH_EBUSY, "out of memory", 1);
			} else {
				zmq_msg_init(&p->id);
				zmq_msg_move(&p->id, &id);
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
		uint8_t *out = NULL;
		size_t olen = 0;
		if (th_query_answer(s->store, s->defs, &s->stats, zmq_msg_data(&body), zmq_msg_size(&body),
		                    &out, &olen) == 0) {
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
	int zero = 0, hwm = 100000, linger = 2000, hb = 5000, hbt = 30000;
	zmq_unbind(s->pub, s->conf.pub);
	zmq_setsockopt(s->pub, ZMQ_LINGER, &zero, sizeof zero);
	zmq_close(s->pub);
	s->pub = NULL;
	for (int attempt = 0; attempt < 100 && !s->pub; attempt++) {
		void *p = zmq_socket(s->ctx, ZMQ_PUB);
		if (!p)
			break;
		zmq_setsockopt(p, ZMQ_LINGER, &linger, sizeof linger);
		zmq_setsockopt(p, ZMQ_SNDHWM, &hwm, sizeof hwm);
		zmq_setsockopt(p, ZMQ_HEARTBEAT_IVL, &hb, sizeof hb);
		zmq_setsockopt(p, ZMQ_HEARTBEAT_TIMEOUT, &hbt, sizeof hbt);
		if (curve_server(p, &s->conf) == 0 && zmq_bind(p, s->conf.pub) == 0) {
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

int th_server_run(th_server *s, void (*reload)(void *ctx), void *ctx)
{
	int gmax = s->conf.group_max > 0 ? s->conf.group_max : 256;
	pending *g = calloc((size_t)gmax, sizeof *g);
	if (!g)
		return TH_ENOMEM;
	int64_t last_summary = now_us();
	uint64_t last_commits = 0;
	while (!th_stop_flag) {
		if (th_reload_flag) {
			th_reload_flag = 0;
			if (reload)
				reload(ctx);
			pub_rebind(s);
		}
		zmq_pollitem_t items[2] = {{s->ingest, 0, ZMQ_POLLIN, 0}, {s->query, 0, ZMQ_POLLIN, 0}};
		int rc = zmq_poll(items, 2, 200);
		if (rc < 0) {
			if (zmq_errno() == EINTR)
				continue;
			if (zmq_errno() == ETERM)
				break;
			th_log(TH_LOG_ERROR, "net", "poll: %s", zmq_strerror(zmq_errno()));
			continue;
		}
		if (items[0].revents & ZMQ_POLLIN) {
			size_t ng = 0, bytes = 0;
			/* drain what has arrived, bounded by count and bytes */
			while (ng < (size_t)gmax && bytes < s->conf.group_bytes) {
				int r = receive_one(s, g, &ng, &bytes);
				if (r <= 0)
					break;
			}
			if (ng)
				process_group(s, g, ng);
			for (size_t i = 0; i < ng; i++)
				pending_free(&g[i]);
		}
		if (items[1].revents & ZMQ_POLLIN)
			serve_query(s);
		th_metrics_tick(&s->stats);
		int64_t t = now_us();
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
	free(g);
	return TH_OK;
}

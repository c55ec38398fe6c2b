/* client.c -- the client side of the collector's protocols (th_client.h,
 * collector/QUERY.md): queries over a CURVE-authenticated DEALER socket, and
 * the rollup stream over a SUB socket.  The only file of the tools that
 * encodes or decodes the collector's messages. */
#include "th_client.h"
#include "th_keyfile.h"
#include "th_sock.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

struct th_qc {
	void *ctx, *sock;
	uint64_t next_id;
	char err[1200];
	char *reply;       /* the last answer's bytes: unpacked strings point into it */
};

/* Closes a socket and ends its context (either may be NULL). */
static void release(void *ctx, void *sock)
{
	if (sock)
		zmq_close(sock);
	if (ctx)
		zmq_ctx_term(ctx);
}

/* A context and a socket of type with linger 0, the receive timeout and, unless
 * insecure, CURVE from the key files (nokeys: the sentence when they are not
 * given).  0, or TH_EINVAL (no keys), TH_EIO / TH_EKEY (the files), TH_ENET,
 * with why; nothing is left open on failure. */
static int open_socket(int type, int rcvtimeo_ms, const char *key_file, const char *server_key,
                       int insecure, const char *nokeys, void **ctx, void **sock, char *why,
                       size_t cap)
{
	int rc = TH_ENET;
	*ctx = zmq_ctx_new();
	*sock = *ctx ? zmq_socket(*ctx, type) : NULL;
	if (!*sock) {
		snprintf(why, cap, "cannot create a socket: %s", zmq_strerror(zmq_errno()));
		goto fail;
	}
	th_sockopts so = TH_SOCKOPTS_INIT;
	so.rcvtimeo_ms = rcvtimeo_ms;
	so.linger_ms = 0;
	th_sock_set(*sock, &so);
	if (!insecure && (!key_file || !server_key)) {
		snprintf(why, cap, "%s", nokeys);
		rc = TH_EINVAL;
		goto fail;
	}
	if (!insecure && (rc = th_keyfile_curve_client(*sock, server_key, key_file, why, cap)) != 0)
		goto fail;
	return 0;
fail:
	release(*ctx, *sock);
	*ctx = *sock = NULL;
	return rc;
}

th_qc *th_qc_new(const char *endpoint, const char *key_file, const char *server_key, int insecure,
                 char *why, size_t why_cap)
{
	th_qc *q = calloc(1, sizeof *q);
	if (!q) {
		snprintf(why, why_cap, "out of memory");
		return NULL;
	}
	q->next_id = 1;
	if (open_socket(ZMQ_DEALER, 10000, key_file, server_key, insecure,
	                "give --key FILE and --server-key FILE (or --insecure)", &q->ctx, &q->sock, why,
	                why_cap) != 0)
		goto fail;
	if (zmq_connect(q->sock, endpoint)) {
		snprintf(why, why_cap, "%s: %s", endpoint, zmq_strerror(zmq_errno()));
		goto fail;
	}
	return q;
fail:
	th_qc_destroy(&q);
	return NULL;
}

void th_qc_destroy(th_qc **pq)
{
	if (!pq || !*pq)
		return;
	th_qc *q = *pq;
	release(q->ctx, q->sock);
	free(q->reply);
	free(q);
	*pq = NULL;
}

const char *th_qc_error(const th_qc *q)
{
	return q->err;
}

static void ks(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static const msgpack_object *get(const msgpack_object *m, const char *key)
{
	if (!m || m->type != MSGPACK_OBJECT_MAP)
		return NULL;
	size_t kl = strlen(key);
	for (uint32_t i = 0; i < m->via.map.size; i++) {
		const msgpack_object *k = &m->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == kl &&
		    !memcmp(k->via.str.ptr, key, kl))
			return &m->via.map.ptr[i].val;
	}
	return NULL;
}

static uint64_t get_uint(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = get(m, key);
	return v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? v->via.u64 : 0;
}

/* Copies a string field into buf (cap bytes, cut to fit), control bytes
 * replaced by repl; "" when absent. */
static void get_str_buf(const msgpack_object *m, const char *key, char *buf, size_t cap, char repl)
{
	const msgpack_object *v = get(m, key);
	size_t n = v && v->type == MSGPACK_OBJECT_STR ? v->via.str.size : 0;
	if (n > cap - 1)
		n = cap - 1;
	if (n)
		memcpy(buf, v->via.str.ptr, n);
	buf[n] = 0;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)buf[i] < 0x20)
			buf[i] = repl;
}

/* Copies a string field (control bytes replaced by blanks) to a malloc'd string. */
static char *get_str(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = get(m, key);
	size_t n = v && v->type == MSGPACK_OBJECT_STR ? v->via.str.size : 0;
	char *s = malloc(n + 1);
	if (s)
		get_str_buf(m, key, s, n + 1, ' ');
	return s;
}

/* A vector of exactly n int64. */
static int64_t *get_vec(const msgpack_object *m, const char *key, size_t n)
{
	const msgpack_object *v = get(m, key);
	int64_t *out = calloc(n ? n : 1, sizeof *out);
	if (!out)
		return NULL;
	if (!v || v->type != MSGPACK_OBJECT_ARRAY || v->via.array.size != n) {
		if (v && v->type == MSGPACK_OBJECT_ARRAY && v->via.array.size == 0)
			return out;       /* nothing reported: zero vector */
		free(out);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const msgpack_object *e = &v->via.array.ptr[i];
		if (e->type == MSGPACK_OBJECT_POSITIVE_INTEGER && e->via.u64 <= INT64_MAX)
			out[i] = (int64_t)e->via.u64;
		else if (e->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			out[i] = e->via.i64;
		else {
			free(out);
			return NULL;
		}
	}
	return out;
}

/* Starts a query map of 4 + extra fields (v, t, id, q); returns its id. */
static uint64_t begin(th_qc *q, msgpack_packer *pk, const char *what, size_t extra)
{
	uint64_t id = q->next_id++;
	msgpack_pack_map(pk, 4 + extra);
	ks(pk, "v"); msgpack_pack_uint32(pk, 1);
	ks(pk, "t"); ks(pk, "query");
	ks(pk, "id"); msgpack_pack_uint64(pk, id);
	ks(pk, "q"); ks(pk, what);
	return id;
}

/* Sends the query in sb (destroyed) and waits for the result with its id;
 * up is initialised by the caller.  On a refusal the answer stays in up. */
static int exchange(th_qc *q, msgpack_sbuffer *sb, uint64_t id, msgpack_unpacked *up,
                    const msgpack_object **res)
{
	int rc = zmq_send(q->sock, sb->data, sb->size, 0) == (int)sb->size ? 0 : TH_ENET;
	msgpack_sbuffer_destroy(sb);
	if (rc) {
		snprintf(q->err, sizeof q->err, "send: %s", zmq_strerror(zmq_errno()));
		return rc;
	}
	for (;;) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, q->sock, 0) < 0) {
			snprintf(q->err, sizeof q->err, "no answer from the collector (%s)",
			         zmq_strerror(zmq_errno()));
			zmq_msg_close(&m);
			return TH_ETIMEOUT;
		}
		size_t off = 0;
		msgpack_unpacked_destroy(up);
		msgpack_unpacked_init(up);
		/* the unpacked strings point into the bytes: keep a copy until the next answer */
		free(q->reply);
		q->reply = malloc(zmq_msg_size(&m) ? zmq_msg_size(&m) : 1);
		if (!q->reply) {
			zmq_msg_close(&m);
			snprintf(q->err, sizeof q->err, "out of memory");
			return TH_ENOMEM;
		}
		memcpy(q->reply, zmq_msg_data(&m), zmq_msg_size(&m));
		int ok = msgpack_unpack_next(up, q->reply, zmq_msg_size(&m), &off) ==
		         MSGPACK_UNPACK_SUCCESS;
		zmq_msg_close(&m);
		if (!ok || up->data.type != MSGPACK_OBJECT_MAP) {
			snprintf(q->err, sizeof q->err, "malformed answer");
			return TH_EPROTO;
		}
		if (get_uint(&up->data, "id") != id)
			continue;      /* an old answer */
		const msgpack_object *okv = get(&up->data, "ok");
		if (!okv || okv->type != MSGPACK_OBJECT_BOOLEAN || !okv->via.boolean) {
			char *r = get_str(&up->data, "reason"), *msg = get_str(&up->data, "message");
			snprintf(q->err, sizeof q->err, "%s: %s", r ? r : "error", msg ? msg : "");
			int code = r ? th_errcode(r) : 0;
			free(r);
			free(msg);
			return code ? code : TH_EPROTO;
		}
		*res = &up->data;
		return 0;
	}
}

/* Sends a query about an appendix and period and waits for its result. */
static int ask(th_qc *q, const char *what, const char *appendix, const char *period,
               const char *unit, const char *parent, uint64_t level, msgpack_unpacked *up,
               const msgpack_object **res)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	uint64_t id = begin(q, &pk, what, 2 + (unit != NULL) + (parent != NULL) + (level > 0));
	ks(&pk, "appendix"); ks(&pk, appendix);
	ks(&pk, "period"); ks(&pk, period);
	if (unit) { ks(&pk, "unit"); ks(&pk, unit); }
	if (parent) { ks(&pk, "parent"); ks(&pk, parent); }
	if (level > 0) { ks(&pk, "level"); msgpack_pack_uint64(&pk, level); }
	return exchange(q, &sb, id, up, res);
}

/* Fills u (strings malloc'd) and n from a node map. */
static int node_of(const th_def *d, const msgpack_object *o, th_unit *u, th_node *n)
{
	memset(u, 0, sizeof *u);
	memset(n, 0, sizeof *n);
	u->code = get_str(o, "unit");
	u->name = get_str(o, "name");
	u->parent_code = get_str(o, "parent");
	u->kind = get_str(o, "kind");
	u->person = get_str(o, "person");
	u->phone = get_str(o, "phone");
	u->email = get_str(o, "email");
	u->depth = (uint32_t)get_uint(o, "level");
	u->parent = -1;
	if (u->code)
		snprintf(n->unit, sizeof n->unit, "%s", u->code);
	n->level = u->depth;
	n->version = get_uint(o, "version");
	n->commit = get_uint(o, "commit");
	n->expected = (uint32_t)get_uint(o, "expected");
	n->reported = (uint32_t)get_uint(o, "reported");
	n->on_time = (uint32_t)get_uint(o, "on_time");
	n->late = (uint32_t)get_uint(o, "late");
	n->corrections = (uint32_t)get_uint(o, "corrections");
	if (d) {
		n->own = get_vec(o, "own", d->n_slots);
		n->total = get_vec(o, "total", d->n_slots);
		if (!n->own || !n->total)
			return TH_EPROTO;
	}
	return u->code && u->name && u->parent_code && u->kind && u->person && u->phone && u->email
	               ? 0
	               : TH_ENOMEM;
}

static void unit_free(th_unit *u)
{
	free(u->code);
	free(u->name);
	free(u->parent_code);
	free(u->kind);
	free(u->person);
	free(u->phone);
	free(u->email);
}

static int each(th_qc *q, const th_def *d, const msgpack_object *res, const char *field,
                th_node_cb cb, void *ctx)
{
	const msgpack_object *rows = get(res, field);
	if (!rows || rows->type != MSGPACK_OBJECT_ARRAY) {
		snprintf(q->err, sizeof q->err, "answer without %s", field);
		return TH_EPROTO;
	}
	int rc = 0;
	for (uint32_t i = 0; i < rows->via.array.size && !rc; i++) {
		th_unit u;
		th_node n;
		rc = node_of(d, &rows->via.array.ptr[i], &u, &n);
		if (!rc)
			rc = cb(ctx, &u, &n);
		else
			snprintf(q->err, sizeof q->err, "malformed row in the answer");
		unit_free(&u);
		th_node_free(&n);
	}
	return rc;
}

int th_qc_level(th_qc *q, const th_def *d, const char *appendix, const char *period, uint32_t level,
                const char *parent, th_node_cb cb, void *ctx)
{
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	const msgpack_object *res = NULL;
	int rc = ask(q, "level", appendix, period, NULL, parent, parent ? 0 : level, &up, &res);
	if (!rc)
		rc = each(q, d, res, "rows", cb, ctx);
	msgpack_unpacked_destroy(&up);
	return rc;
}

int th_qc_missing(th_qc *q, const char *appendix, const char *period, const char *unit,
                  th_node_cb cb, void *ctx)
{
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	const msgpack_object *res = NULL;
	int rc = ask(q, "missing", appendix, period, unit, NULL, 0, &up, &res);
	if (!rc)
		rc = each(q, NULL, res, "missing", cb, ctx);
	msgpack_unpacked_destroy(&up);
	return rc;
}

int th_qc_definition(th_qc *q, const char *appendix, const char *period, uint32_t *version)
{
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	const msgpack_object *res = NULL;
	int rc = ask(q, "definition", appendix, period, NULL, NULL, 0, &up, &res);
	if (!rc) {
		const msgpack_object *v = get(res, "version");
		if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= UINT32_MAX)
			*version = (uint32_t)v->via.u64;
		else
			rc = TH_EPROTO;
	}
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* A node and its unit's name / level (name malloc'd into *name). */
int th_qc_node(th_qc *q, const th_def *d, const char *appendix, const char *period,
               const char *unit, th_node *out, char **name)
{
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	const msgpack_object *res = NULL;
	int rc = ask(q, "node", appendix, period, unit, NULL, 0, &up, &res);
	if (!rc) {
		th_unit u;
		rc = node_of(d, get(res, "node"), &u, out);
		if (!rc && name) {
			*name = u.name;
			u.name = NULL;
		}
		if (rc) {
			snprintf(q->err, sizeof q->err, "malformed node in the answer");
			th_node_free(out);
		}
		unit_free(&u);
	}
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* --- hierarchy versions ---------------------------------------------------- */

static int64_t get_int(const msgpack_object *m, const char *key)
{
	const msgpack_object *v = get(m, key);
	if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
		return (int64_t)v->via.u64;
	if (v && v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
		return v->via.i64;
	return 0;
}

/* Fills r from a version map (QUERY.md); 0 or TH_EPROTO / TH_ENOMEM. */
static int row_of(const msgpack_object *o, th_hier_row *r)
{
	memset(r, 0, sizeof *r);
	if (!o || o->type != MSGPACK_OBJECT_MAP)
		return TH_EPROTO;
	char *version = get_str(o, "version"), *root = get_str(o, "root"), *origin = get_str(o, "origin");
	int rc = version && root && origin && *version ? 0 : TH_EPROTO;
	if (!rc) {
		snprintf(r->version, sizeof r->version, "%s", version);
		snprintf(r->root, sizeof r->root, "%s", root);
		snprintf(r->origin, sizeof r->origin, "%s", origin);
		r->effective = (int32_t)get_int(o, "effective");
		r->units = get_uint(o, "units");
		r->levels = (uint32_t)get_uint(o, "levels");
		r->loaded = get_int(o, "loaded");
	}
	free(version);
	free(root);
	free(origin);
	const msgpack_object *p = get(o, "periods");
	if (!rc && (!p || p->type != MSGPACK_OBJECT_ARRAY))
		rc = TH_EPROTO;
	if (!rc && p->via.array.size) {
		r->periods = calloc(p->via.array.size, sizeof *r->periods);
		if (!r->periods)
			return TH_ENOMEM;
		for (uint32_t i = 0; i < p->via.array.size && !rc; i++) {
			const msgpack_object *e = &p->via.array.ptr[i];
			if (e->type != MSGPACK_OBJECT_STR || e->via.str.size > 32)
				rc = TH_EPROTO;
			else if (!(r->periods[r->n_periods++] = strndup(e->via.str.ptr, e->via.str.size)))
				rc = TH_ENOMEM;
		}
	}
	if (rc)
		th_hier_row_free(r);
	return rc;
}

int th_qc_hierarchies(th_qc *q, th_hier_row_cb cb, void *ctx)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	uint64_t id = begin(q, &pk, "hierarchies", 0);
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	const msgpack_object *res = NULL;
	int rc = exchange(q, &sb, id, &up, &res);
	const msgpack_object *list = rc ? NULL : get(res, "hierarchies");
	if (!rc && (!list || list->type != MSGPACK_OBJECT_ARRAY)) {
		snprintf(q->err, sizeof q->err, "answer without hierarchies");
		rc = TH_EPROTO;
	}
	for (uint32_t i = 0; !rc && i < list->via.array.size; i++) {
		th_hier_row r;
		rc = row_of(&list->via.array.ptr[i], &r);
		if (rc) {
			snprintf(q->err, sizeof q->err, "malformed hierarchy version in the answer");
			break;
		}
		rc = cb(ctx, &r);
		th_hier_row_free(&r);
	}
	msgpack_unpacked_destroy(&up);
	return rc;
}

int th_qc_units_submit(th_qc *q, const char *name, const char *text, size_t len,
                       th_hier_row *loaded, char *path, size_t cap,
                       void (*problem)(void *ctx, const char *line), void *ctx)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	uint64_t id = begin(q, &pk, "units_submit", 2);
	ks(&pk, "name"); ks(&pk, name);
	ks(&pk, "text");
	msgpack_pack_str(&pk, len);
	msgpack_pack_str_body(&pk, text, len);
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	const msgpack_object *res = NULL;
	int rc = exchange(q, &sb, id, &up, &res);
	if (rc) {
		const msgpack_object *pr = up.data.type == MSGPACK_OBJECT_MAP ? get(&up.data, "problems") : NULL;
		for (uint32_t i = 0; problem && pr && pr->type == MSGPACK_OBJECT_ARRAY && i < pr->via.array.size;
		     i++) {
			const msgpack_object *e = &pr->via.array.ptr[i];
			if (e->type != MSGPACK_OBJECT_STR)
				continue;
			char *line = strndup(e->via.str.ptr, e->via.str.size);
			if (line) {
				for (char *c = line; *c; c++)
					if ((unsigned char)*c < 0x20)
						*c = ' ';
				problem(ctx, line);
			}
			free(line);
		}
	} else {
		char *p = get_str(res, "path"), *w = get_str(res, "warning");
		rc = row_of(get(res, "loaded"), loaded);
		if (rc)
			snprintf(q->err, sizeof q->err, "malformed answer");
		else if (path && cap)
			snprintf(path, cap, "%s", p ? p : "");
		char *line = NULL;
		if (!rc && w && *w && problem && asprintf(&line, "warning: %s", w) > 0)
			problem(ctx, line);
		free(line);
		free(p);
		free(w);
	}
	msgpack_unpacked_destroy(&up);
	return rc;
}

/* --- rollup stream ------------------------------------------------------------ */
struct th_stream {
	void *ctx, *sub;
	char only_unit[TH_CODE_MAX + 1];   /* without a level: the unit to keep ("" = all) */
};

int th_stream_open(const char *pub, const char *key_file, const char *server_key, int insecure,
                   long level, const char *unit, th_stream **out, char *why, size_t cap)
{
	th_stream *s = calloc(1, sizeof *s);
	if (!s) {
		snprintf(why, cap, "out of memory");
		return TH_ENOMEM;
	}
	int rc = open_socket(ZMQ_SUB, 200, key_file, server_key, insecure,
	                     "give --key FILE and --server-key FILE (or --insecure for a local demo "
	                     "collector)", &s->ctx, &s->sub, why, cap);
	if (rc)
		goto fail;
	rc = TH_ENET;
	/* topics (QUERY.md): L<level>\x1f<unit>\x1f..., every segment terminated */
	char topic[160] = "";
	if (level > 0 && unit)
		snprintf(topic, sizeof topic, "L%ld\x1f%s\x1f", level, unit);
	else if (level > 0)
		snprintf(topic, sizeof topic, "L%ld\x1f", level);
	else if (unit)
		snprintf(s->only_unit, sizeof s->only_unit, "%s", unit);
	if (zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, topic, strlen(topic)) || zmq_connect(s->sub, pub)) {
		snprintf(why, cap, "%s: %s", pub, zmq_strerror(zmq_errno()));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	th_stream_destroy(&s);
	return rc;
}

void th_stream_destroy(th_stream **ps)
{
	if (!ps || !*ps)
		return;
	th_stream *s = *ps;
	release(s->ctx, s->sub);
	free(s);
	*ps = NULL;
}

int th_stream_next(th_stream *s, int timeout_ms, th_stream_msg *out)
{
	zmq_pollitem_t it = {s->sub, 0, ZMQ_POLLIN, 0};
	if (zmq_poll(&it, 1, timeout_ms) <= 0)
		return TH_ETIMEOUT;      /* nothing, or a signal: the caller checks its flags */
	zmq_msg_t t, b;
	zmq_msg_init(&t);
	zmq_msg_init(&b);
	int rc = TH_ETIMEOUT;
	if (zmq_msg_recv(&t, s->sub, 0) < 0 || !zmq_msg_more(&t) || zmq_msg_recv(&b, s->sub, 0) < 0)
		goto out;
	while (zmq_msg_more(&b)) {       /* drop unexpected extra frames */
		zmq_msg_t x;
		zmq_msg_init(&x);
		int r = zmq_msg_recv(&x, s->sub, 0);
		int m = r >= 0 && zmq_msg_more(&x);
		zmq_msg_close(&x);
		if (!m)
			break;
	}
	msgpack_unpacked up;
	msgpack_unpacked_init(&up);
	size_t off = 0;
	rc = TH_EPROTO;
	if (msgpack_unpack_next(&up, zmq_msg_data(&b), zmq_msg_size(&b), &off) == MSGPACK_UNPACK_SUCCESS &&
	    up.data.type == MSGPACK_OBJECT_MAP) {
		const msgpack_object *m = &up.data;
		memset(out, 0, sizeof *out);
		get_str_buf(m, "unit", out->unit, sizeof out->unit, '?');
		get_str_buf(m, "appendix", out->appendix, sizeof out->appendix, '?');
		get_str_buf(m, "period", out->period, sizeof out->period, '?');
		out->level = get_uint(m, "level");
		out->version = get_uint(m, "version");
		out->commit = get_uint(m, "commit");
		out->expected = get_uint(m, "expected");
		out->reported = get_uint(m, "reported");
		out->on_time = get_uint(m, "on_time");
		out->late = get_uint(m, "late");
		/* an exact unit filter when only a unit was asked for */
		rc = s->only_unit[0] && strcmp(s->only_unit, out->unit) ? TH_ETIMEOUT : 0;
	}
	msgpack_unpacked_destroy(&up);
out:
	zmq_msg_close(&t);
	zmq_msg_close(&b);
	return rc;
}

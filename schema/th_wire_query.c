/* th_wire_query.c -- the query socket's messages and the rollup stream's node
 * message (collector/QUERY.md): queries, results, and the one node map both send. */
#include "th_wire_private.h"

#include <stdio.h>
#include <stdlib.h>

/* --- query -------------------------------------------------------------------- */

int th_wire_encode_query(const th_query *q, uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	size_t n = 2 + !!q->appendix[0] + !!q->period[0] + !!q->unit[0] + !!q->parent[0] +
	           !!q->level + !!q->name[0] + !!q->text;
	tw_header(&p, TH_MSG_QUERY, n);
	pk_kuint(&p, "id", q->id);
	pk_kstr(&p, "q", q->q);
	if (q->appendix[0])
		pk_kstr(&p, "appendix", q->appendix);
	if (q->period[0])
		pk_kstr(&p, "period", q->period);
	if (q->unit[0])
		pk_kstr(&p, "unit", q->unit);
	if (q->parent[0])
		pk_kstr(&p, "parent", q->parent);
	if (q->level)
		pk_kuint(&p, "level", q->level);
	if (q->name[0])
		pk_kstr(&p, "name", q->name);
	if (q->text) {
		pk_str(&p, "text");
		msgpack_pack_bin(&p.pk, q->text_len);
		msgpack_pack_bin_body(&p.pk, q->text, q->text_len);
	}
	return tw_done(&p, out, len);
}

/* A string field copied into dst (cap bytes with the NUL). */
static int copy_str(th_mp *m, char *dst, size_t cap)
{
	const char *s;
	uint32_t n;
	if (th_mp_str(m, &s, &n) || n >= cap)
		return TH_EPROTO;
	memcpy(dst, s, n);
	dst[n] = 0;
	return 0;
}

static const char *const query_names[] = {"id", "q", "appendix", "period", "unit", "parent",
                                          "level", "name", "text"};

static int query_field(void *ctx, int idx, th_mp *m, const char **why)
{
	th_query *q = ctx;
	int rc = 0;
	switch (idx) {
	case 0: rc = th_mp_uint(m, &q->id); break;
	case 1: rc = copy_str(m, q->q, sizeof q->q); break;
	case 2: rc = copy_str(m, q->appendix, sizeof q->appendix); break;
	case 3: rc = copy_str(m, q->period, sizeof q->period); break;
	case 4: rc = copy_str(m, q->unit, sizeof q->unit); break;
	case 5: rc = copy_str(m, q->parent, sizeof q->parent); break;
	case 6: rc = th_mp_uint(m, &q->level); break;
	case 7: rc = copy_str(m, q->name, sizeof q->name); break;
	case 8: {
		const uint8_t *b;
		if (th_mp_peek(m) == TH_MP_BIN && th_mp_bin(m, &b, &q->text_len) == 0)
			q->text = (const char *)b;
		else
			rc = th_mp_str(m, &q->text, &q->text_len);
		break;
	}
	}
	return rc ? tw_why(why, "a field has the wrong type or is too long", TH_EPROTO) : TH_OK;
}

int th_wire_decode_query(const uint8_t *buf, size_t len, th_query *q, const char **why)
{
	memset(q, 0, sizeof *q);
	return tw_decode_msg(buf, len, TH_MSG_QUERY, query_names, 9, query_field, q, 0, why);
}

/* --- node ------------------------------------------------------------------------ */

static void pk_vec(packer *p, const int64_t *v, size_t n)
{
	msgpack_pack_array(&p->pk, v ? n : 0);
	for (size_t i = 0; v && i < n; i++)
		msgpack_pack_int64(&p->pk, v[i]);
}

#define NODE_FIELDS 14

static void pk_node(packer *p, const th_wire_node *n)
{
	msgpack_pack_map(&p->pk, NODE_FIELDS);
	pk_kstr(p, "unit", n->unit);
	pk_kstr(p, "name", n->name);
	pk_kstr(p, "appendix", n->appendix);
	pk_kstr(p, "period", n->period);
	pk_kuint(p, "level", n->level);
	pk_kuint(p, "version", n->version);
	pk_kuint(p, "commit", n->commit);
	pk_str(p, "own");
	pk_vec(p, n->own, n->n_slots);
	pk_str(p, "total");
	pk_vec(p, n->total, n->n_slots);
	pk_kuint(p, "expected", n->expected);
	pk_kuint(p, "reported", n->reported);
	pk_kuint(p, "on_time", n->on_time);
	pk_kuint(p, "late", n->late);
	pk_kuint(p, "corrections", n->corrections);
}

int th_wire_encode_node(const th_wire_node *n, uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	pk_node(&p, n);
	return tw_done(&p, out, len);
}

static const char *const node_names[NODE_FIELDS] = {
	"unit", "appendix", "period", "level", "version", "commit", "own", "total", "expected",
	"reported", "on_time", "late", "corrections", "name"};

static int vec(th_mp *m, int64_t **out, size_t *n, size_t max)
{
	uint32_t k;
	if (th_mp_array(m, &k) || k > max)
		return TH_EPROTO;
	if (*out && *n != k)
		return TH_EPROTO;   /* own and total have one length */
	int64_t *v = *out ? *out : calloc(k ? k : 1, sizeof *v);
	if (!v)
		return TH_ENOMEM;
	*out = v;
	*n = k;
	for (uint32_t i = 0; i < k; i++)
		if (th_mp_int(m, &v[i]))
			return TH_EPROTO;
	return TH_OK;
}

int th_wire_decode_node(const uint8_t *buf, size_t len, th_node_msg *n, const char **why)
{
	memset(n, 0, sizeof *n);
	th_mp m;
	th_mp_init(&m, buf, len);
	uint32_t pairs;
	if (th_mp_map(&m, &pairs) || pairs > MAX_FIELDS)
		return tw_why(why, "a node message is a msgpack map", TH_EPROTO);
	uint64_t seen = 0, u;
	size_t nt = 0;
	int rc = TH_OK;
	for (uint32_t i = 0; i < pairs && rc == TH_OK; i++) {
		const char *k;
		uint32_t kn;
		if (th_mp_str(&m, &k, &kn)) {
			rc = TH_EPROTO;
			break;
		}
		int idx = -1;
		for (int j = 0; j < NODE_FIELDS && idx < 0; j++)
			if (tw_key_is(k, kn, node_names[j]))
				idx = j;
		if (idx >= 0 && (seen & (1ULL << idx))) {
			rc = TH_EPROTO;
			break;
		}
		if (idx >= 0)
			seen |= 1ULL << idx;
		uint32_t *c32[] = {[8] = &n->expected, [9] = &n->reported, [10] = &n->on_time,
		                   [11] = &n->late, [12] = &n->corrections};
		switch (idx) {
		case 0: rc = tw_dup_str(&m, TH_CODE_MAX, &n->unit); break;
		case 1: rc = tw_dup_str(&m, TH_CODE_MAX, &n->appendix); break;
		case 2: rc = tw_dup_str(&m, TH_PERIOD_MAX, &n->period); break;
		case 3: rc = th_mp_uint(&m, &u) || u > UINT32_MAX ? TH_EPROTO : ((n->level = (uint32_t)u), 0); break;
		case 4: rc = th_mp_uint(&m, &n->version); break;
		case 5: rc = th_mp_uint(&m, &n->commit); break;
		case 6: rc = vec(&m, &n->own, &n->n_slots, 65536); break;
		case 7: rc = vec(&m, &n->total, &nt, 65536); break;
		case 8: case 9: case 10: case 11: case 12:
			rc = th_mp_uint(&m, &u) || u > UINT32_MAX ? TH_EPROTO : ((*c32[idx] = (uint32_t)u), 0);
			break;
		case 13: rc = tw_dup_str(&m, 1024, &n->name); break;
		default: rc = th_mp_skip(&m, MAX_DEPTH) ? TH_EPROTO : TH_OK;
		}
	}
	if (rc == TH_OK && (m.p != m.end || (seen & 0xff) != 0xff || (n->own && nt != n->n_slots)))
		rc = TH_EPROTO;   /* unit..total are required; nothing after the map */
	if (rc) {
		th_node_msg_free(n);
		return tw_bad(why, "malformed node message", rc);
	}
	if (!n->name && !(n->name = strdup(""))) {
		th_node_msg_free(n);
		return TH_ENOMEM;
	}
	return TH_OK;
}

void th_node_msg_free(th_node_msg *n)
{
	free(n->unit);
	free(n->name);
	free(n->appendix);
	free(n->period);
	free(n->own);
	free(n->total);
	memset(n, 0, sizeof *n);
}

/* --- results ------------------------------------------------------------------- */

struct th_wire_list {
	packer p;
	size_t n;
};

struct th_result {
	uint64_t id;
	packer p;       /* the fields after v, t, id, ok */
	size_t n;
};

th_wire_list *th_wire_list_new(void)
{
	th_wire_list *l = calloc(1, sizeof *l);
	if (l)
		pk_init(&l->p);
	return l;
}

void th_wire_list_destroy(th_wire_list **l)
{
	if (!l || !*l)
		return;
	msgpack_sbuffer_destroy(&(*l)->p.sb);
	free(*l);
	*l = NULL;
}

size_t th_wire_list_count(const th_wire_list *l) { return l->n; }

void th_wire_list_node(th_wire_list *l, const th_wire_node *n)
{
	pk_node(&l->p, n);
	l->n++;
}

void th_wire_list_unit(th_wire_list *l, const th_unit *u)
{
	msgpack_pack_map(&l->p.pk, 7);
	pk_kstr(&l->p, "unit", u->code);
	pk_kstr(&l->p, "name", u->name);
	pk_kstr(&l->p, "parent", u->parent_code);
	pk_kstr(&l->p, "kind", u->kind);
	pk_kstr(&l->p, "person", u->person);
	pk_kstr(&l->p, "phone", u->phone);
	pk_kstr(&l->p, "email", u->email);
	l->n++;
}

/* A revision's fields (the first 6 of a report map). */
static void pk_revision(packer *p, const th_wire_revision *v)
{
	char hex[2 * TH_HASH_LEN + 1];
	for (int i = 0; i < TH_HASH_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", v->hash[i]);
	pk_kuint(p, "rev", v->rev);
	pk_kuint(p, "commit", v->commit);
	pk_kint(p, "time", v->time);
	pk_kstr(p, "sender", v->sender);
	pk_str(p, "tombstone");
	if (v->tombstone)
		msgpack_pack_true(&p->pk);
	else
		msgpack_pack_false(&p->pk);
	pk_kstr(p, "hash", hex);
}

void th_wire_list_revision(th_wire_list *l, const th_wire_revision *v)
{
	msgpack_pack_map(&l->p.pk, 6);
	pk_revision(&l->p, v);
	l->n++;
}

static void pk_version(packer *p, const th_wire_version *v)
{
	msgpack_pack_map(&p->pk, 8);
	pk_kstr(p, "version", v->version);
	pk_kint(p, "effective", v->effective);
	pk_kuint(p, "units", v->units);
	pk_kuint(p, "levels", v->levels);
	pk_kstr(p, "root", v->root);
	pk_kstr(p, "origin", v->origin);
	pk_kint(p, "loaded", v->loaded);
	pk_str(p, "periods");
	msgpack_pack_array(&p->pk, v->n_periods);
	for (size_t i = 0; i < v->n_periods; i++)
		pk_str(p, v->periods[i]);
}

void th_wire_list_version(th_wire_list *l, const th_wire_version *v)
{
	pk_version(&l->p, v);
	l->n++;
}

void th_wire_list_str(th_wire_list *l, const char *s)
{
	pk_str(&l->p, s);
	l->n++;
}

th_result *th_result_new(uint64_t id)
{
	th_result *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->id = id;
	pk_init(&r->p);
	return r;
}

void th_result_destroy(th_result **r)
{
	if (!r || !*r)
		return;
	msgpack_sbuffer_destroy(&(*r)->p.sb);
	free(*r);
	*r = NULL;
}

void th_result_str(th_result *r, const char *key, const char *val)
{
	pk_kstr(&r->p, key, val);
	r->n++;
}

void th_result_uint(th_result *r, const char *key, uint64_t val)
{
	pk_kuint(&r->p, key, val);
	r->n++;
}

void th_result_node(th_result *r, const char *key, const th_wire_node *n)
{
	pk_str(&r->p, key);
	pk_node(&r->p, n);
	r->n++;
}

void th_result_version(th_result *r, const char *key, const th_wire_version *v)
{
	pk_str(&r->p, key);
	pk_version(&r->p, v);
	r->n++;
}

void th_result_list(th_result *r, const char *key, const th_wire_list *l)
{
	pk_str(&r->p, key);
	msgpack_pack_array(&r->p.pk, l->n);
	msgpack_sbuffer_write(&r->p.sb, l->p.sb.data, l->p.sb.size);
	r->n++;
}

void th_result_counters(th_result *r, const char *key, const char *const *names,
                        const uint64_t *values, size_t n)
{
	pk_str(&r->p, key);
	msgpack_pack_map(&r->p.pk, n);
	for (size_t i = 0; i < n; i++)
		pk_kuint(&r->p, names[i], values[i]);
	r->n++;
}

/* A report's rows, each cell as in a submit (PROTOCOL.md): codes for enums,
 * booleans, strings, integers, nil for null. */
static void pk_cells(packer *p, const th_def *d, const th_report *rep)
{
	msgpack_pack_array(&p->pk, rep->n_rows);
	for (size_t i = 0; i < rep->n_rows; i++) {
		msgpack_pack_array(&p->pk, rep->n_cols);
		for (size_t c = 0; c < rep->n_cols; c++) {
			const th_value *v = th_report_cell(rep, i, c);
			const th_column *col = c < d->n_cols ? &d->cols[c] : NULL;
			if (v->null || !col) {
				msgpack_pack_nil(&p->pk);
			} else if (col->type == TH_T_ENUM && v->i >= 0 && (size_t)v->i < col->n_values) {
				pk_str(p, col->values[v->i].code);
			} else if (col->type == TH_T_BOOL) {
				if (v->i)
					msgpack_pack_true(&p->pk);
				else
					msgpack_pack_false(&p->pk);
			} else if (col->type == TH_T_TEXT) {
				msgpack_pack_str(&p->pk, v->len);
				msgpack_pack_str_body(&p->pk, v->s ? v->s : "", v->len);
			} else {
				msgpack_pack_int64(&p->pk, v->i);
			}
		}
	}
}

void th_result_report(th_result *r, const char *key, const th_wire_revision *info,
                      const th_report *rep, const th_def *d)
{
	pk_str(&r->p, key);
	msgpack_pack_map(&r->p.pk, 10);
	pk_revision(&r->p, info);
	pk_kuint(&r->p, "version", rep->version);
	pk_kint(&r->p, "as_of", rep->as_of);
	pk_str(&r->p, "columns");
	msgpack_pack_array(&r->p.pk, d->n_cols);
	for (size_t c = 0; c < d->n_cols; c++)
		pk_str(&r->p, d->cols[c].id);
	pk_str(&r->p, "rows");
	pk_cells(&r->p, d, rep);
	r->n++;
}

/* {v, t: "result", id, ok} then n_more pairs. */
static void pk_result_head(packer *p, uint64_t id, int ok, size_t n_more)
{
	tw_header(p, TH_MSG_RESULT, 2 + n_more);
	pk_kuint(p, "id", id);
	pk_str(p, "ok");
	if (ok)
		msgpack_pack_true(&p->pk);
	else
		msgpack_pack_false(&p->pk);
}

int th_result_finish(th_result *r, uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	pk_result_head(&p, r->id, 1, r->n);
	msgpack_sbuffer_write(&p.sb, r->p.sb.data, r->p.sb.size);
	return tw_done(&p, out, len);
}

int th_wire_encode_refusal(uint64_t id, int code, const char *message, const th_wire_list *problems,
                           uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	pk_result_head(&p, id, 0, problems ? 3 : 2);
	pk_kstr(&p, "reason", th_errname(code));
	pk_kstr(&p, "message", message ? message : th_strerror(code));
	if (problems) {
		pk_str(&p, "problems");
		msgpack_pack_array(&p.pk, problems->n);
		msgpack_sbuffer_write(&p.sb, problems->p.sb.data, problems->p.sb.size);
	}
	return tw_done(&p, out, len);
}

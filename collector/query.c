/* query.c -- the query socket's request/response protocol (QUERY.md). */
#include "net.h"
#include "th_mp.h"

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	uint64_t id;
	char q[16], appendix[TH_CODE_MAX + 1], period[TH_PERIOD_MAX + 1], unit[TH_CODE_MAX + 1];
	char parent[TH_CODE_MAX + 1];
	uint64_t level;
	char name[256];            /* units_submit: the file's name */
	const char *text;          /* units_submit: the file's bytes, inside the frame */
	uint32_t text_len;
} request;

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

static int parse(const uint8_t *buf, size_t len, request *r, const char **why)
{
	th_msg_type t;
	if (th_wire_type(buf, len, &t, why) != 0)
		return TH_EPROTO;
	if (t != TH_MSG_QUERY) {
		*why = "expected a query message";
		return TH_EPROTO;
	}
	th_mp m;
	th_mp_init(&m, buf, len);
	uint32_t n;
	th_mp_map(&m, &n);
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (th_mp_str(&m, &k, &kn)) {
			*why = "keys must be strings";
			return TH_EPROTO;
		}
		int rc = 0;
#define IS(name) (kn == strlen(name) && memcmp(k, name, kn) == 0)
		if (IS("id"))
			rc = th_mp_uint(&m, &r->id);
		else if (IS("q"))
			rc = copy_str(&m, r->q, sizeof r->q);
		else if (IS("appendix"))
			rc = copy_str(&m, r->appendix, sizeof r->appendix);
		else if (IS("period"))
			rc = copy_str(&m, r->period, sizeof r->period);
		else if (IS("unit"))
			rc = copy_str(&m, r->unit, sizeof r->unit);
		else if (IS("parent"))
			rc = copy_str(&m, r->parent, sizeof r->parent);
		else if (IS("level"))
			rc = th_mp_uint(&m, &r->level);
		else if (IS("name"))
			rc = copy_str(&m, r->name, sizeof r->name);
		else if (IS("text")) {
			const uint8_t *b;
			if (th_mp_peek(&m) == TH_MP_BIN && th_mp_bin(&m, &b, &r->text_len) == 0)
				r->text = (const char *)b;
			else
				rc = th_mp_str(&m, &r->text, &r->text_len);
		}
		else
			rc = th_mp_skip(&m, 8);
#undef IS
		if (rc) {
			*why = "a field has the wrong type or is too long";
			return TH_EPROTO;
		}
	}
	return 0;
}

static void ks(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void pack_vec(msgpack_packer *pk, const int64_t *v, size_t n)
{
	msgpack_pack_array(pk, v ? n : 0);
	for (size_t i = 0; v && i < n; i++)
		msgpack_pack_int64(pk, v[i]);
}

static void pack_node(msgpack_packer *pk, const th_def *d, const th_unit *u, const th_node *n)
{
	msgpack_pack_map(pk, 12);
	ks(pk, "unit"); ks(pk, u ? u->code : n->unit);
	ks(pk, "name"); ks(pk, u ? u->name : "");
	ks(pk, "level"); msgpack_pack_uint32(pk, u ? u->depth : n->level);
	ks(pk, "version"); msgpack_pack_uint64(pk, n->version);
	ks(pk, "commit"); msgpack_pack_uint64(pk, n->commit);
	ks(pk, "own"); pack_vec(pk, n->own, d->n_slots);
	ks(pk, "total"); pack_vec(pk, n->total, d->n_slots);
	ks(pk, "expected"); msgpack_pack_uint32(pk, n->expected);
	ks(pk, "reported"); msgpack_pack_uint32(pk, n->reported);
	ks(pk, "on_time"); msgpack_pack_uint32(pk, n->on_time);
	ks(pk, "late"); msgpack_pack_uint32(pk, n->late);
	ks(pk, "corrections"); msgpack_pack_uint32(pk, n->corrections);
}

typedef struct {
	msgpack_sbuffer rows;
	msgpack_packer pk;
	const th_def *d;
	size_t n;
	int missing;
} collect;

static int node_cb(void *ctx, const th_unit *u, const th_node *n)
{
	collect *c = ctx;
	if (c->missing) {
		msgpack_pack_map(&c->pk, 7);
		ks(&c->pk, "unit"); ks(&c->pk, u->code);
		ks(&c->pk, "name"); ks(&c->pk, u->name);
		ks(&c->pk, "parent"); ks(&c->pk, u->parent_code);
		ks(&c->pk, "kind"); ks(&c->pk, u->kind);
		ks(&c->pk, "person"); ks(&c->pk, u->person);
		ks(&c->pk, "phone"); ks(&c->pk, u->phone);
		ks(&c->pk, "email"); ks(&c->pk, u->email);
	} else {
		pack_node(&c->pk, c->d, u, n);
	}
	c->n++;
	return 0;
}


static void pack_cells(msgpack_packer *pk, const th_def *d, const th_report *r)
{
	msgpack_pack_array(pk, r->n_rows);
	for (size_t i = 0; i < r->n_rows; i++) {
		msgpack_pack_array(pk, r->n_cols);
		for (size_t c = 0; c < r->n_cols; c++) {
			const th_value *v = th_report_cell(r, i, c);
			const th_column *col = c < d->n_cols ? &d->cols[c] : NULL;
			if (v->null || !col) {
				msgpack_pack_nil(pk);
			} else if (col->type == TH_T_ENUM && v->i >= 0 && (size_t)v->i < col->n_values) {
				ks(pk, col->values[v->i].code);
			} else if (col->type == TH_T_BOOL) {
				if (v->i)
					msgpack_pack_true(pk);
				else
					msgpack_pack_false(pk);
			} else if (col->type == TH_T_TEXT) {
				msgpack_pack_str(pk, v->len);
				msgpack_pack_str_body(pk, v->s ? v->s : "", v->len);
			} else {
				msgpack_pack_int64(pk, v->i);
			}
		}
	}
}

static void pack_info(msgpack_packer *pk, const th_revision_info *in, int extra)
{
	char hex[2 * TH_HASH_LEN + 1];
	for (int i = 0; i < TH_HASH_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", in->hash[i]);
	msgpack_pack_map(pk, 6 + (size_t)extra);
	ks(pk, "rev"); msgpack_pack_uint64(pk, in->rev);
	ks(pk, "commit"); msgpack_pack_uint64(pk, in->commit);
	ks(pk, "time"); msgpack_pack_int64(pk, in->commit_time);
	ks(pk, "sender"); ks(pk, in->sender);
	ks(pk, "tombstone"); if (in->tombstone) msgpack_pack_true(pk); else msgpack_pack_false(pk);
	ks(pk, "hash"); ks(pk, hex);
}

typedef struct {
	msgpack_packer *pk;
	size_t n;
} hist_ctx;

static int hist_cb(void *ctx, const th_revision_info *info, const th_report *r)
{
	(void)r;
	hist_ctx *h = ctx;
	pack_info(h->pk, info, 0);
	h->n++;
	return 0;
}

/* --- hierarchy versions ------------------------------------------------------ */

typedef struct {
	const th_units **u;
	size_t n;
	char (*period)[TH_PERIOD_MAX + 1];
	char (*version)[65];
	size_t nb;
	int oom;
} versions;

static int version_cb(void *ctx, const th_units *u)
{
	versions *v = ctx;
	const th_units **nu = realloc(v->u, (v->n + 1) * sizeof *nu);
	if (!nu) {
		v->oom = 1;
		return TH_ENOMEM;
	}
	v->u = nu;
	v->u[v->n++] = u;
	return 0;
}

static int binding_cb(void *ctx, const char *period, const char *version)
{
	versions *v = ctx;
	void *np = realloc(v->period, (v->nb + 1) * sizeof *v->period);
	if (np)
		v->period = np;
	void *nv = np ? realloc(v->version, (v->nb + 1) * sizeof *v->version) : NULL;
	if (nv)
		v->version = nv;
	if (!np || !nv) {
		v->oom = 1;
		return TH_ENOMEM;
	}
	snprintf(v->period[v->nb], sizeof *v->period, "%s", period);
	snprintf(v->version[v->nb], sizeof *v->version, "%s", version);
	v->nb++;
	return 0;
}

/* One hierarchy version as a map (QUERY.md): its description, where it came
 * from and the periods bound to it. */
static void pack_version(msgpack_packer *pk, th_store *store, const th_units *u, const versions *b)
{
	const char *id = th_units_version(u);
	char origin[TH_ORIGIN_MAX] = "";
	int64_t loaded = 0;
	th_store_hierarchy_origin(store, id, &loaded, origin, sizeof origin);
	msgpack_pack_map(pk, 8);
	ks(pk, "version"); ks(pk, id);
	ks(pk, "effective"); msgpack_pack_int32(pk, th_units_effective(u));
	ks(pk, "units"); msgpack_pack_uint64(pk, th_units_count(u));
	ks(pk, "levels"); msgpack_pack_uint32(pk, th_units_max_depth(u));
	ks(pk, "root"); ks(pk, th_units_at(u, th_units_root(u))->code);
	ks(pk, "origin"); ks(pk, origin);
	ks(pk, "loaded"); msgpack_pack_int64(pk, loaded);
	size_t np = 0;
	for (size_t i = 0; b && i < b->nb; i++)
		np += strcmp(b->version[i], id) == 0;
	ks(pk, "periods");
	msgpack_pack_array(pk, np);
	for (size_t i = 0; b && i < b->nb; i++)
		if (strcmp(b->version[i], id) == 0)
			ks(pk, b->period[i]);
}

static void versions_free(versions *v)
{
	free(v->u);
	free(v->period);
	free(v->version);
}

static void pack_head(msgpack_packer *pk, uint64_t id, size_t fields, int ok)
{
	msgpack_pack_map(pk, fields);
	ks(pk, "v"); msgpack_pack_uint32(pk, TH_WIRE_VERSION);
	ks(pk, "t"); ks(pk, "result");
	ks(pk, "id"); msgpack_pack_uint64(pk, id);
	ks(pk, "ok");
	if (ok)
		msgpack_pack_true(pk);
	else
		msgpack_pack_false(pk);
}

static void answer_hierarchies(msgpack_packer *pk, th_store *store, uint64_t id)
{
	versions v;
	memset(&v, 0, sizeof v);
	int rc = th_store_hierarchies(store, version_cb, &v);
	if (!rc)
		rc = th_store_bindings(store, binding_cb, &v);
	if (rc) {
		pack_head(pk, id, 6, 0);
		ks(pk, "reason"); ks(pk, th_errname(rc));
		ks(pk, "message"); ks(pk, th_strerror(rc));
	} else {
		pack_head(pk, id, 5, 1);
		ks(pk, "hierarchies");
		msgpack_pack_array(pk, v.n);
		for (size_t i = 0; i < v.n; i++)
			pack_version(pk, store, v.u[i], &v);
	}
	versions_free(&v);
}

static void answer_units_submit(msgpack_packer *pk, const th_query_env *env, request *r)
{
	/* the name goes into log lines and messages: no control bytes */
	for (char *c = r->name; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	th_units_submit sub;
	memset(&sub, 0, sizeof sub);
	sub.key = env->key;
	sub.name = r->name[0] ? r->name : "submitted.units";
	sub.text = r->text;
	sub.len = r->text_len;
	sub.diag = th_diag_new();
	int rc;
	if (!r->text) {
		rc = TH_EMISSING;
		snprintf(sub.message, sizeof sub.message, "units_submit needs the file's bytes in \"text\"");
	} else if (!sub.diag) {
		rc = TH_ENOMEM;
		snprintf(sub.message, sizeof sub.message, "out of memory");
	} else if (!env->units_submit) {
		rc = TH_EINVAL;
		snprintf(sub.message, sizeof sub.message, "this collector does not take hierarchy files");
	} else {
		rc = env->units_submit(env->units_ctx, &sub);
	}
	if (rc == 0 && sub.loaded) {
		pack_head(pk, r->id, 7, 1);
		ks(pk, "path"); ks(pk, sub.path);
		ks(pk, "warning"); ks(pk, sub.warning);
		ks(pk, "loaded"); pack_version(pk, env->store, sub.loaded, NULL);
	} else {
		if (rc == 0)
			rc = TH_ESTORE;
		size_t nd = sub.diag ? th_diag_count(sub.diag) : 0;
		pack_head(pk, r->id, 7, 0);
		ks(pk, "reason"); ks(pk, th_errname(rc));
		ks(pk, "message"); ks(pk, sub.message[0] ? sub.message : th_strerror(rc));
		ks(pk, "problems");
		msgpack_pack_array(pk, nd);
		for (size_t i = 0; i < nd; i++)
			ks(pk, th_diag_text(sub.diag, i));
	}
	th_diag_destroy(&sub.diag);
}

int th_query_answer(const th_query_env *env, const uint8_t *buf, size_t len, uint8_t **out,
                    size_t *outlen)
{
	th_store *store = env->store;
	const th_defset *defs = env->defs;
	const th_stats *st = env->stats;
	request r;
	memset(&r, 0, sizeof r);
	const char *why = NULL;
	int rc = parse(buf, len, &r, &why);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	/* the version the period is bound to (a newer one may be loaded) */
	const th_def *d = !r.appendix[0] ? NULL
	                  : th_period_valid(r.period) ? th_store_def_for(store, r.appendix, r.period)
	                                              : th_defset_latest(defs, r.appendix);
	/* the verbs that are not about one appendix and period */
	int general = !strcmp(r.q, "stats") || !strcmp(r.q, "hierarchies") ||
	              !strcmp(r.q, "units_submit");
	if (!rc && !env->key) {
		/* a key removed from the keys file since its connection was made: the
		 * connection stays up (ZAP ran once) but no longer gets answers */
		rc = TH_EAUTH;
		why = "this key is not (or no longer) authorised";
	}
	if (!rc && !general && !d) {
		rc = TH_EAPPENDIX;
		why = "unknown or missing appendix";
	}
	if (!rc && !general && !th_period_valid(r.period)) {
		rc = TH_EPERIOD;
		why = "missing or malformed period";
	}
	if (rc) {
		msgpack_pack_map(&pk, 6);
		ks(&pk, "v"); msgpack_pack_uint32(&pk, TH_WIRE_VERSION);
		ks(&pk, "t"); ks(&pk, "result");
		ks(&pk, "id"); msgpack_pack_uint64(&pk, r.id);
		ks(&pk, "ok"); msgpack_pack_false(&pk);
		ks(&pk, "reason"); ks(&pk, th_errname(rc));
		ks(&pk, "message"); ks(&pk, why ? why : th_strerror(rc));
		goto done;
	}
	if (strcmp(r.q, "definition") == 0) {
		pack_head(&pk, r.id, 6, 1);
		ks(&pk, "appendix"); ks(&pk, d->id);
		ks(&pk, "version"); msgpack_pack_uint32(&pk, d->version);
		goto done;
	}
	if (strcmp(r.q, "hierarchies") == 0) {
		answer_hierarchies(&pk, store, r.id);
		goto done;
	}
	if (strcmp(r.q, "units_submit") == 0) {
		answer_units_submit(&pk, env, &r);
		goto done;
	}
	if (strcmp(r.q, "stats") == 0) {
		th_store_stats ss = {0};
		th_store_stats_get(store, &ss);
		msgpack_pack_map(&pk, 5);
		ks(&pk, "v"); msgpack_pack_uint32(&pk, TH_WIRE_VERSION);
		ks(&pk, "t"); ks(&pk, "result");
		ks(&pk, "id"); msgpack_pack_uint64(&pk, r.id);
		ks(&pk, "ok"); msgpack_pack_true(&pk);
		ks(&pk, "stats");
		struct { const char *k; uint64_t v; } f[] = {
			{"accepted", st->accepted}, {"duplicate", st->duplicate}, {"stale", st->stale},
			{"conflict", st->conflict}, {"retry_later", st->retry_later}, {"rejected", st->rejected},
			{"refused_messages", st->refused_msgs}, {"hellos", st->hellos}, {"submits", st->submits},
			{"queries", st->queries}, {"records", st->records}, {"bytes", st->bytes},
			{"commits", st->commits}, {"group_reports_max", st->group_reports_max},
			{"group_reports_sum", st->group_reports_sum}, {"commit_us_max", st->commit_us_max},
			{"commit_us_sum", st->commit_us_sum}, {"published", st->published},
			{"inflight_refused", st->inflight_refused}, {"conns_refused", st->conns_refused},
			{"ingest_disconnects", st->disconnects}, {"ingest_connections", st->conns_live},
			{"store_reports", ss.reports}, {"store_revisions", ss.revisions},
			{"store_map_size", ss.map_size}, {"store_used_bytes", ss.used_bytes}};
		size_t nf = sizeof f / sizeof f[0];
		msgpack_pack_map(&pk, nf);
		for (size_t i = 0; i < nf; i++) {
			ks(&pk, f[i].k);
			msgpack_pack_uint64(&pk, f[i].v);
		}
		goto done;
	}
	if (strcmp(r.q, "node") == 0) {
		th_node n;
		memset(&n, 0, sizeof n);
		rc = th_store_get_node(store, r.appendix, r.period, r.unit, &n);
		msgpack_pack_map(&pk, rc ? 6 : 5);
		ks(&pk, "v"); msgpack_pack_uint32(&pk, TH_WIRE_VERSION);
		ks(&pk, "t"); ks(&pk, "result");
		ks(&pk, "id"); msgpack_pack_uint64(&pk, r.id);
		if (rc) {
			ks(&pk, "ok"); msgpack_pack_false(&pk);
			ks(&pk, "reason"); ks(&pk, th_errname(rc));
			ks(&pk, "message"); ks(&pk, th_strerror(rc));
		} else {
			const th_units *h = NULL;
			long ui = -1;
			if (th_store_hierarchy_for(store, r.period, &h) == 0 && h)
				ui = th_units_find(h, r.unit);
			ks(&pk, "ok"); msgpack_pack_true(&pk);
			ks(&pk, "node"); pack_node(&pk, d, ui >= 0 ? th_units_at(h, (size_t)ui) : NULL, &n);
			th_node_free(&n);
		}
		goto done;
	}
	if (strcmp(r.q, "level") == 0 || strcmp(r.q, "missing") == 0) {
		collect c;
		memset(&c, 0, sizeof c);
		msgpack_sbuffer_init(&c.rows);
		msgpack_packer_init(&c.pk, &c.rows, msgpack_sbuffer_write);
		c.d = d;
		c.missing = r.q[0] == 'm';
		if (c.missing)
			rc = th_store_missing(store, r.appendix, r.period, r.unit[0] ? r.unit : NULL, node_cb, &c);
		else
			rc = th_store_level(store, r.appendix, r.period, (uint32_t)r.level,
			                    r.parent[0] ? r.parent : NULL, node_cb, &c);
		msgpack_pack_map(&pk, rc ? 6 : 5);
		ks(&pk, "v"); msgpack_pack_uint32(&pk, TH_WIRE_VERSION);
		ks(&pk, "t"); ks(&pk, "result");
		ks(&pk, "id"); msgpack_pack_uint64(&pk, r.id);
		if (rc) {
			ks(&pk, "ok"); msgpack_pack_false(&pk);
			ks(&pk, "reason"); ks(&pk, th_errname(rc));
			ks(&pk, "message"); ks(&pk, th_strerror(rc));
		} else {
			ks(&pk, "ok"); msgpack_pack_true(&pk);
			ks(&pk, c.missing ? "missing" : "rows");
			msgpack_pack_array(&pk, c.n);
			msgpack_sbuffer_write(&sb, c.rows.data, c.rows.size);
		}
		msgpack_sbuffer_destroy(&c.rows);
		goto done;
	}
	if (strcmp(r.q, "report") == 0 || strcmp(r.q, "history") == 0) {
		th_report *rep = NULL;
		th_revision_info info;
		memset(&info, 0, sizeof info);
		int history = r.q[0] == 'h';
		msgpack_sbuffer hs;
		msgpack_sbuffer_init(&hs);
		msgpack_packer hpk;
		msgpack_packer_init(&hpk, &hs, msgpack_sbuffer_write);
		hist_ctx hc = {&hpk, 0};
		if (history)
			rc = th_store_history(store, r.unit, r.appendix, r.period, hist_cb, &hc);
		else
			rc = th_store_get_report(store, r.unit, r.appendix, r.period, &rep, &info);
		const th_def *rd = rep ? th_defset_get(defs, rep->appendix, rep->version) : NULL;
		if (!rc && !history && !rd)
			rc = TH_EAPPENDIX;
		msgpack_pack_map(&pk, rc ? 6 : 5);
		ks(&pk, "v"); msgpack_pack_uint32(&pk, TH_WIRE_VERSION);
		ks(&pk, "t"); ks(&pk, "result");
		ks(&pk, "id"); msgpack_pack_uint64(&pk, r.id);
		if (rc) {
			ks(&pk, "ok"); msgpack_pack_false(&pk);
			ks(&pk, "reason"); ks(&pk, th_errname(rc));
			ks(&pk, "message"); ks(&pk, rc == TH_ENOTFOUND ? "no such report" : th_strerror(rc));
		} else if (history) {
			ks(&pk, "ok"); msgpack_pack_true(&pk);
			ks(&pk, "revisions");
			msgpack_pack_array(&pk, hc.n);
			msgpack_sbuffer_write(&sb, hs.data, hs.size);
		} else {
			ks(&pk, "ok"); msgpack_pack_true(&pk);
			ks(&pk, "report");
			pack_info(&pk, &info, 4);
			ks(&pk, "version"); msgpack_pack_uint32(&pk, rep->version);
			ks(&pk, "as_of"); msgpack_pack_int32(&pk, rep->as_of);
			ks(&pk, "columns");
			msgpack_pack_array(&pk, rd->n_cols);
			for (size_t c = 0; c < rd->n_cols; c++)
				ks(&pk, rd->cols[c].id);
			ks(&pk, "rows");
			pack_cells(&pk, rd, rep);
		}
		msgpack_sbuffer_destroy(&hs);
		th_report_destroy(&rep);
		goto done;
	}
	msgpack_pack_map(&pk, 6);
	ks(&pk, "v"); msgpack_pack_uint32(&pk, TH_WIRE_VERSION);
	ks(&pk, "t"); ks(&pk, "result");
	ks(&pk, "id"); msgpack_pack_uint64(&pk, r.id);
	ks(&pk, "ok"); msgpack_pack_false(&pk);
	ks(&pk, "reason"); ks(&pk, "invalid");
	ks(&pk, "message"); ks(&pk, "unknown query; q is one of node, level, missing, report, history, stats, "
	                       "hierarchies, units_submit");
done:
	*out = (uint8_t *)sb.data;
	*outlen = sb.size;
	return 0;
}

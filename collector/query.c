/* query.c -- the query socket's answers (query.h, collector/QUERY.md). */
#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

th_wire_node th_query_wire_node(const th_node *n, const th_unit *u, const th_def *d,
                                const char *appendix, const char *period)
{
	th_wire_node w = {
		.unit = u ? u->code : n->unit, .name = u ? u->name : "", .appendix = appendix,
		.period = period, .level = u ? u->depth : n->level, .version = n->version,
		.commit = n->commit, .own = n->own, .total = n->total, .n_slots = d->n_slots,
		.expected = n->expected, .reported = n->reported, .on_time = n->on_time,
		.late = n->late, .corrections = n->corrections};
	return w;
}

/* --- nodes, levels, missing units ------------------------------------------------ */

typedef struct {
	th_wire_list *l;
	const th_def *d;
	const char *appendix, *period;
	int missing;
} collect;

static int node_cb(void *ctx, const th_unit *u, const th_node *n)
{
	collect *c = ctx;
	if (c->missing) {
		th_wire_list_unit(c->l, u);
	} else {
		th_wire_node w = th_query_wire_node(n, u, c->d, c->appendix, c->period);
		th_wire_list_node(c->l, &w);
	}
	return 0;
}

static int answer_node(const th_query_env *env, const th_query *q, const th_def *d, th_result *r)
{
	th_node n;
	memset(&n, 0, sizeof n);
	int rc = th_store_get_node(env->store, q->appendix, q->period, q->unit, &n);
	if (rc)
		return rc;
	const th_units *h = NULL;
	long ui = -1;
	if (th_store_hierarchy_for(env->store, q->period, &h) == 0 && h)
		ui = th_units_find(h, q->unit);
	th_wire_node w = th_query_wire_node(&n, ui >= 0 ? th_units_at(h, (size_t)ui) : NULL, d,
	                                    q->appendix, q->period);
	th_result_node(r, "node", &w);
	th_node_free(&n);
	return TH_OK;
}

static int answer_rows(const th_query_env *env, const th_query *q, const th_def *d, th_result *r)
{
	collect c = {th_wire_list_new(), d, q->appendix, q->period, q->q[0] == 'm'};
	if (!c.l)
		return TH_ENOMEM;
	int rc = c.missing
	             ? th_store_missing(env->store, q->appendix, q->period, q->unit[0] ? q->unit : NULL,
	                                node_cb, &c)
	             : th_store_level(env->store, q->appendix, q->period, (uint32_t)q->level,
	                              q->parent[0] ? q->parent : NULL, node_cb, &c);
	if (rc == TH_OK)
		th_result_list(r, c.missing ? "missing" : "rows", c.l);
	th_wire_list_destroy(&c.l);
	return rc;
}

/* --- reports and history ------------------------------------------------------------ */

static th_wire_revision revision(const th_revision_info *in)
{
	th_wire_revision v = {.rev = in->rev, .commit = in->commit, .time = in->commit_time,
	                      .sender = in->sender, .tombstone = in->tombstone, .hash = in->hash};
	return v;
}

static int hist_cb(void *ctx, const th_revision_info *info, const th_report *rep)
{
	(void)rep;
	th_wire_revision v = revision(info);
	th_wire_list_revision(ctx, &v);
	return 0;
}

static int answer_report(const th_query_env *env, const th_query *q, th_result *r)
{
	th_report *rep = NULL;
	th_revision_info info;
	int rc = th_store_get_report(env->store, q->unit, q->appendix, q->period, &rep, &info);
	const th_def *d = rc ? NULL : th_defset_get(env->defs, rep->appendix, rep->version);
	if (!rc && !d)
		rc = TH_EAPPENDIX;
	if (!rc) {
		th_wire_revision v = revision(&info);
		th_result_report(r, "report", &v, rep, d);
	}
	th_report_destroy(&rep);
	return rc;
}

static int answer_history(const th_query_env *env, const th_query *q, th_result *r)
{
	th_wire_list *l = th_wire_list_new();
	if (!l)
		return TH_ENOMEM;
	int rc = th_store_history(env->store, q->unit, q->appendix, q->period, hist_cb, l);
	if (rc == TH_OK)
		th_result_list(r, "revisions", l);
	th_wire_list_destroy(&l);
	return rc;
}

/* --- hierarchy versions -------------------------------------------------------------- */

typedef struct {
	const th_units **u;
	size_t n;
	char (*period)[TH_PERIOD_MAX + 1];
	char (*version)[65];
	size_t nb;
} versions;

static int version_cb(void *ctx, const th_units *u)
{
	versions *v = ctx;
	const th_units **nu = realloc(v->u, (v->n + 1) * sizeof *nu);
	if (!nu)
		return TH_ENOMEM;
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
	if (!np || !nv)
		return TH_ENOMEM;
	snprintf(v->period[v->nb], sizeof *v->period, "%s", period);
	snprintf(v->version[v->nb], sizeof *v->version, "%s", version);
	v->nb++;
	return 0;
}

/* One version with where it came from and the periods bound to it (b may be NULL:
 * none); calls add(ctx, map). */
static void with_version(th_store *store, const th_units *u, const versions *b,
                         void (*add)(void *ctx, const th_wire_version *v), void *ctx)
{
	const char *id = th_units_version(u);
	char origin[TH_ORIGIN_MAX] = "";
	int64_t loaded = 0;
	th_store_hierarchy_origin(store, id, &loaded, origin, sizeof origin);
	const char **periods = calloc(b && b->nb ? b->nb : 1, sizeof *periods);
	size_t np = 0;
	for (size_t i = 0; periods && b && i < b->nb; i++)
		if (strcmp(b->version[i], id) == 0)
			periods[np++] = b->period[i];
	th_wire_version v = {.version = id, .root = th_units_at(u, th_units_root(u))->code,
	                     .origin = origin, .effective = th_units_effective(u),
	                     .units = th_units_count(u), .levels = th_units_max_depth(u),
	                     .loaded = loaded, .periods = periods, .n_periods = np};
	add(ctx, &v);
	free(periods);
}

static void add_to_list(void *ctx, const th_wire_version *v) { th_wire_list_version(ctx, v); }
static void add_loaded(void *ctx, const th_wire_version *v) { th_result_version(ctx, "loaded", v); }

static int answer_hierarchies(const th_query_env *env, th_result *r)
{
	versions v;
	memset(&v, 0, sizeof v);
	th_wire_list *l = th_wire_list_new();
	int rc = l ? th_store_hierarchies(env->store, version_cb, &v) : TH_ENOMEM;
	if (!rc)
		rc = th_store_bindings(env->store, binding_cb, &v);
	for (size_t i = 0; !rc && i < v.n; i++)   /* each reads the store: not inside a callback */
		with_version(env->store, v.u[i], &v, add_to_list, l);
	if (!rc)
		th_result_list(r, "hierarchies", l);
	th_wire_list_destroy(&l);
	free(v.u);
	free(v.period);
	free(v.version);
	return rc;
}

/* units_submit (QUERY.md): decided by env->units_submit.  A refusal carries the
 * parser's problems, so it is encoded here (*out); 0 with r filled on success. */
static int answer_units_submit(const th_query_env *env, th_query *q, th_result *r, uint8_t **out,
                               size_t *outlen)
{
	/* the name goes into log lines and messages: no control bytes */
	for (char *c = q->name; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	th_units_submit sub;
	memset(&sub, 0, sizeof sub);
	sub.key = env->key;
	sub.name = q->name[0] ? q->name : "submitted.units";
	sub.text = q->text;
	sub.len = q->text_len;
	sub.diag = th_diag_new();
	int rc;
	if (!q->text) {
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
		th_result_str(r, "path", sub.path);
		th_result_str(r, "warning", sub.warning);
		with_version(env->store, sub.loaded, NULL, add_loaded, r);
	} else {
		if (rc == 0)
			rc = TH_ESTORE;
		th_wire_list *problems = th_wire_list_new();
		for (size_t i = 0; problems && sub.diag && i < th_diag_count(sub.diag); i++)
			th_wire_list_str(problems, th_diag_text(sub.diag, i));
		int erc = problems ? th_wire_encode_refusal(q->id, rc, sub.message[0] ? sub.message : NULL,
		                                            problems, out, outlen)
		                   : TH_ENOMEM;
		th_wire_list_destroy(&problems);
		rc = erc ? erc : 1;   /* 1: answered */
	}
	th_diag_destroy(&sub.diag);
	return rc;
}

static void answer_stats(const th_query_env *env, th_result *r)
{
	const th_stats *st = env->stats;
	th_store_stats ss = {0};
	th_store_stats_get(env->store, &ss);
	static const char *const names[] = {
		"accepted", "duplicate", "stale", "conflict", "retry_later", "rejected",
		"refused_messages", "hellos", "submits", "queries", "records", "bytes", "commits",
		"group_reports_max", "group_reports_sum", "commit_us_max", "commit_us_sum", "published",
		"inflight_refused", "conns_refused", "ingest_disconnects", "ingest_connections",
		"store_reports", "store_revisions", "store_map_size", "store_used_bytes"};
	const uint64_t values[] = {
		st->accepted, st->duplicate, st->stale, st->conflict, st->retry_later, st->rejected,
		st->refused_msgs, st->hellos, st->submits, st->queries, st->records, st->bytes,
		st->commits, st->group_reports_max, st->group_reports_sum, st->commit_us_max,
		st->commit_us_sum, st->published, st->inflight_refused, st->conns_refused,
		st->disconnects, st->conns_live, ss.reports, ss.revisions, ss.map_size, ss.used_bytes};
	_Static_assert(sizeof names / sizeof *names == sizeof values / sizeof *values, "stats");
	th_result_counters(r, "stats", names, values, sizeof values / sizeof *values);
}

int th_query_answer(const th_query_env *env, const uint8_t *buf, size_t len, uint8_t **out,
                    size_t *outlen)
{
	th_query q;
	const char *why = NULL;
	int rc = th_wire_decode_query(buf, len, &q, &why);
	th_store *store = env->store;
	/* the version the period is bound to (a newer one may be loaded) */
	const th_def *d = !q.appendix[0] ? NULL
	                  : th_period_valid(q.period) ? th_store_def_for(store, q.appendix, q.period)
	                                              : th_store_def_for(store, q.appendix, NULL);
	/* the verbs that are not about one appendix and period */
	int general = !strcmp(q.q, "stats") || !strcmp(q.q, "hierarchies") ||
	              !strcmp(q.q, "units_submit");
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
	if (!rc && !general && !th_period_valid(q.period)) {
		rc = TH_EPERIOD;
		why = "missing or malformed period";
	}
	if (rc)
		return th_wire_encode_refusal(q.id, rc, why, NULL, out, outlen);
	th_result *r = th_result_new(q.id);
	if (!r)
		return TH_ENOMEM;
	if (!strcmp(q.q, "definition")) {
		th_result_str(r, "appendix", d->id);
		th_result_uint(r, "version", d->version);
	} else if (!strcmp(q.q, "hierarchies")) {
		rc = answer_hierarchies(env, r);
	} else if (!strcmp(q.q, "units_submit")) {
		rc = answer_units_submit(env, &q, r, out, outlen);
		if (rc) {
			th_result_destroy(&r);
			return rc == 1 ? TH_OK : rc;
		}
	} else if (!strcmp(q.q, "stats")) {
		answer_stats(env, r);
	} else if (!strcmp(q.q, "node")) {
		rc = answer_node(env, &q, d, r);
	} else if (!strcmp(q.q, "level") || !strcmp(q.q, "missing")) {
		rc = answer_rows(env, &q, d, r);
	} else if (!strcmp(q.q, "report")) {
		rc = answer_report(env, &q, r);
		why = rc == TH_ENOTFOUND ? "no such report" : NULL;
	} else if (!strcmp(q.q, "history")) {
		rc = answer_history(env, &q, r);
		why = rc == TH_ENOTFOUND ? "no such report" : NULL;
	} else {
		rc = TH_EINVAL;
		why = "unknown query; q is one of node, level, missing, report, history, stats, "
		      "hierarchies, units_submit";
	}
	if (rc == TH_OK)
		rc = th_result_finish(r, out, outlen);
	else
		rc = th_wire_encode_refusal(q.id, rc, why, NULL, out, outlen);
	th_result_destroy(&r);
	return rc;
}

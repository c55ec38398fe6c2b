/* source.c -- the store (read-only, or writable for rebuild) or the
 * collector's query socket behind one interface (th_source.h). */
#include "th_source.h"
#include "th_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct th_source {
	th_store *store;
	th_qc *qc;
	const th_defset *defs;
	char name[600];
	char err[1400];
};

static int fail(th_source *s, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(th_source *s, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
	return rc;
}

/* The sentence for a failed call rc: the collector's own, or the store's code. */
static int failed(th_source *s, int rc)
{
	if (rc >= 0)
		return rc;           /* a callback's stop */
	return s->qc ? fail(s, rc, "%s", th_qc_error(s->qc)) : fail(s, rc, "%s", th_strerror(rc));
}

static int not_served(th_source *s, const char *what)
{
	return fail(s, TH_EINVAL, "the %s does not serve %s; use %s", s->qc ? "collector's query socket"
	            : "store", what, s->qc ? "--db DIR" : "--collector ENDPOINT");
}

int th_source_open(const th_source_opts *o, th_source **out, char *why, size_t cap)
{
	th_source *s = calloc(1, sizeof *s);
	int rc;
	if (!s) {
		snprintf(why, cap, "out of memory");
		return TH_ENOMEM;
	}
	s->defs = o->defs;
	if (o->collector) {
		char w[600];
		snprintf(s->name, sizeof s->name, "collector %s", o->collector);
		s->qc = th_qc_new(o->collector, o->key, o->server_key, o->insecure, w, sizeof w);
		if (!s->qc) {
			snprintf(why, cap, "collector %s: %s", o->collector, w);
			rc = TH_ENET;
			goto fail;
		}
		*out = s;
		return 0;
	}
	snprintf(s->name, sizeof s->name, "store %s", o->db ? o->db : "");
	th_store_opts so = {.readonly = !o->writable};
	if ((rc = th_store_open(o->db, &so, &s->store)) != 0) {
		if (o->writable)
			snprintf(why, cap, "cannot open %s for writing: %s", o->db, th_strerror(rc));
		else
			snprintf(why, cap, "cannot open store %s: %s", o->db, th_strerror(rc));
		goto fail;
	}
	if (o->defs && (rc = th_store_set_defs(s->store, o->defs)) != 0) {
		snprintf(why, cap, "store %s: definitions: %s", o->db, th_strerror(rc));
		goto fail;
	}
	*out = s;
	return 0;
fail:
	th_source_destroy(&s);
	return rc;
}

void th_source_destroy(th_source **ps)
{
	if (!ps || !*ps)
		return;
	th_qc_destroy(&(*ps)->qc);
	th_store_close(&(*ps)->store);
	free(*ps);
	*ps = NULL;
}

const char *th_source_error(const th_source *s) { return s->err; }
const char *th_source_name(const th_source *s) { return s->name; }
int th_source_is_remote(const th_source *s) { return s->qc != NULL; }
const th_defset *th_source_defs(const th_source *s) { return s->defs; }

/* The hierarchy a period uses (its binding, else the newest version). */
static const th_units *hierarchy_of(th_source *s, const char *period)
{
	const th_units *u = NULL;
	if (period && th_store_hierarchy_for(s->store, period, &u) == 0 && u)
		return u;
	return th_store_current_hierarchy(s->store);
}

const th_def *th_source_def(th_source *s, const char *appendix, const char *period, th_diag *diag)
{
	const th_def *latest = th_defset_latest(s->defs, appendix);
	if (!latest || !period)
		return latest;
	if (s->store) {
		const th_def *b = th_store_def_for(s->store, appendix, period);
		return b ? b : latest;
	}
	uint32_t v;
	if (th_qc_definition(s->qc, appendix, period, &v) == 0) {
		const th_def *b = th_defset_get(s->defs, appendix, v);
		if (b)
			return b;
		th_diag_add(diag, TH_SEV_WARNING, TH_EAPPENDIX, NULL, 0, 0, NULL,
		            "the collector uses %s version %u for %s, which --defs lacks", appendix, v, period);
	}
	return latest;
}

static int root_cb(void *ctx, const th_unit *u, const th_node *n)
{
	(void)n;
	th_source_unit *t = ctx;
	snprintf(t->code, sizeof t->code, "%s", u->code);
	snprintf(t->name, sizeof t->name, "%s", u->name);
	t->depth = 1;
	return 1;    /* the first row is enough */
}

int th_source_find_unit(th_source *s, const th_def *d, const char *appendix, const char *period,
                        const char *code, th_source_unit *out)
{
	th_source_unit t;
	memset(&t, 0, sizeof t);
	if (s->qc) {
		if (!code) {
			int rc = th_qc_level(s->qc, d, appendix, period, 1, NULL, root_cb, &t);
			if (rc < 0 || !t.code[0])
				return fail(s, rc < 0 ? rc : TH_ENOTFOUND, "reading the root: %s", th_qc_error(s->qc));
		} else {
			th_node n;
			char *name = NULL;
			int rc = th_qc_node(s->qc, d, appendix, period, code, &n, &name);
			if (rc)
				return fail(s, rc, "%s: %s", code, th_qc_error(s->qc));
			snprintf(t.code, sizeof t.code, "%s", code);
			/* the node answer may carry no name: show the code then */
			snprintf(t.name, sizeof t.name, "%s", name && *name ? name : code);
			t.depth = n.level;
			free(name);
			th_node_free(&n);
		}
		*out = t;
		return 0;
	}
	const th_units *u = hierarchy_of(s, period);
	if (!u)
		return fail(s, TH_ENOTFOUND, "%s has no hierarchy", s->name);
	long i = code ? th_units_find(u, code) : (long)th_units_root(u);
	if (i < 0)
		return fail(s, TH_EUNIT, "unknown unit %s", code);
	const th_unit *n = th_units_at(u, (size_t)i);
	snprintf(t.code, sizeof t.code, "%s", n->code);
	snprintf(t.name, sizeof t.name, "%s", n->name);
	t.depth = n->depth;
	t.levels = th_units_max_depth(u);
	*out = t;
	return 0;
}

int th_source_level(th_source *s, const th_def *d, const char *appendix, const char *period,
                    uint32_t level, const char *parent, th_node_cb cb, void *ctx)
{
	int rc = s->qc ? th_qc_level(s->qc, d, appendix, period, level, parent, cb, ctx)
	               : th_store_level(s->store, appendix, period, level, parent, cb, ctx);
	return failed(s, rc);
}

int th_source_node(th_source *s, const th_def *d, const char *appendix, const char *period,
                   const char *unit, th_node *out)
{
	memset(out, 0, sizeof *out);
	int rc = s->qc ? th_qc_node(s->qc, d, appendix, period, unit, out, NULL)
	               : th_store_get_node(s->store, appendix, period, unit, out);
	return failed(s, rc);
}

typedef struct missing_ctx {
	th_missing_cb cb;
	void *ctx;
	const th_units *u;     /* store: the period's hierarchy, for parent names */
} missing_ctx;

static int missing_cb(void *ctx, const th_unit *u, const th_node *n)
{
	(void)n;
	missing_ctx *m = ctx;
	long p = m->u ? th_units_find(m->u, u->parent_code) : -1;
	return m->cb(m->ctx, u, p >= 0 ? th_units_at(m->u, (size_t)p)->name : NULL);
}

int th_source_missing(th_source *s, const char *appendix, const char *period, const char *unit,
                      th_missing_cb cb, void *ctx)
{
	missing_ctx m = {.cb = cb, .ctx = ctx};
	if (s->qc)
		return failed(s, th_qc_missing(s->qc, appendix, period, unit, missing_cb, &m));
	m.u = hierarchy_of(s, period);
	return failed(s, th_store_missing(s->store, appendix, period, unit, missing_cb, &m));
}

int th_source_report(th_source *s, const char *unit, const char *appendix, const char *period,
                     th_report **out, th_revision_info *info)
{
	if (!s->store)
		return not_served(s, "report contents");
	return failed(s, th_store_get_report(s->store, unit, appendix, period, out, info));
}

int th_source_history(th_source *s, const char *unit, const char *appendix, const char *period,
                      th_revision_cb cb, void *ctx)
{
	if (!s->store)
		return not_served(s, "report contents");
	return failed(s, th_store_history(s->store, unit, appendix, period, cb, ctx));
}

int th_source_hierarchy(th_source *s, const char *period, const th_units **out)
{
	if (!s->store)
		return not_served(s, "the hierarchy's units");
	const th_units *u = hierarchy_of(s, period);
	if (!u)
		return fail(s, TH_ENOTFOUND, "%s has no hierarchy", s->name);
	*out = u;
	return 0;
}

void th_hier_row_free(th_hier_row *r)
{
	for (size_t i = 0; i < r->n_periods; i++)
		free(r->periods[i]);
	free(r->periods);
	r->periods = NULL;
	r->n_periods = 0;
}

/* The store's versions and bindings, gathered first: a version's origin is read
 * in a transaction of its own, which may not run inside the listing's. */
typedef struct vlist {
	char (*period)[TH_PERIOD_MAX + 1];
	char (*version)[65];
	size_t nb;
	const th_units **u;
	size_t nu;
} vlist;

static int vbind_cb(void *ctx, const char *period, const char *version)
{
	vlist *v = ctx;
	void *np = realloc(v->period, (v->nb + 1) * sizeof *v->period);
	if (np)
		v->period = np;
	void *nv = np ? realloc(v->version, (v->nb + 1) * sizeof *v->version) : NULL;
	if (!nv)
		return TH_ENOMEM;
	v->version = nv;
	snprintf(v->period[v->nb], sizeof *v->period, "%s", period);
	snprintf(v->version[v->nb], sizeof *v->version, "%s", version);
	v->nb++;
	return 0;
}

static int vstore_cb(void *ctx, const th_units *u)
{
	vlist *v = ctx;
	const th_units **n = realloc(v->u, (v->nu + 1) * sizeof *n);
	if (!n)
		return TH_ENOMEM;
	v->u = n;
	v->u[v->nu++] = u;
	return 0;
}

/* A stored version as the row the collector's answer gives. */
static int vstore_row(th_source *s, const vlist *v, const th_units *u, th_hier_row_cb cb, void *ctx)
{
	th_hier_row r;
	memset(&r, 0, sizeof r);
	snprintf(r.version, sizeof r.version, "%s", th_units_version(u));
	r.effective = th_units_effective(u);
	r.units = th_units_count(u);
	r.levels = th_units_max_depth(u);
	snprintf(r.root, sizeof r.root, "%s", th_units_at(u, th_units_root(u))->code);
	th_store_hierarchy_origin(s->store, r.version, &r.loaded, r.origin, sizeof r.origin);
	char **periods = calloc(v->nb ? v->nb : 1, sizeof *periods);
	if (!periods)
		return TH_ENOMEM;
	for (size_t i = 0; i < v->nb; i++)
		if (!strcmp(v->version[i], r.version))
			periods[r.n_periods++] = v->period[i];
	r.periods = periods;
	int rc = cb(ctx, &r);
	free(periods);
	return rc;
}

int th_source_hierarchies(th_source *s, th_hier_row_cb cb, void *ctx)
{
	if (s->qc)
		return failed(s, th_qc_hierarchies(s->qc, cb, ctx));
	vlist v;
	memset(&v, 0, sizeof v);
	int rc = th_store_bindings(s->store, vbind_cb, &v);
	if (!rc)
		rc = th_store_hierarchies(s->store, vstore_cb, &v);
	for (size_t i = 0; i < v.nu && !rc; i++)
		rc = vstore_row(s, &v, v.u[i], cb, ctx);
	free(v.period);
	free(v.version);
	free(v.u);
	return failed(s, rc);
}

int th_source_submit_units(th_source *s, const char *name, const char *text, size_t len,
                           th_hier_row *loaded, char *path, size_t cap,
                           void (*problem)(void *ctx, const char *line), void *ctx)
{
	if (!s->qc)
		return not_served(s, "hierarchy submissions");
	return failed(s, th_qc_units_submit(s->qc, name, text, len, loaded, path, cap, problem, ctx));
}

int th_source_stats(th_source *s, th_store_stats *out)
{
	if (!s->store)
		return not_served(s, "store statistics");
	return failed(s, th_store_stats_get(s->store, out));
}

int th_source_verify(th_source *s, th_diag *diag)
{
	if (!s->store)
		return not_served(s, "the integrity check");
	return failed(s, th_store_verify(s->store, diag));
}

int th_source_rebuild(th_source *s)
{
	if (!s->store)
		return not_served(s, "rebuilds");
	return failed(s, th_store_rebuild(s->store));
}

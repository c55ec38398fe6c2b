/* hierarchy.c -- hierarchy versions, period bindings, appendix versions in force,
 * deadlines, and the expected counts derived from them (STORAGE.md). */
#include "store_private.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int st_load_hierarchies(th_store *s, MDB_txn *txn)
{
	MDB_cursor *c;
	if (mdb_cursor_open(txn, s->hier, &c))
		return TH_ESTORE;
	MDB_val k, v;
	int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		th_units *u = NULL;
		if (th_units_parse(v.mv_data, v.mv_size, "store", &u, NULL) == 0) {
			th_units **nh = realloc(s->h, (s->nh + 1) * sizeof *nh);
			if (!nh) {
				th_units_destroy(&u);
				mdb_cursor_close(c);
				return TH_ENOMEM;
			}
			s->h = nh;
			s->h[s->nh++] = u;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return TH_OK;
}

/* Appends (appendix, period, version) to a list of versions in force (lengths checked
 * by the caller). */
int st_in_force_append(struct in_force **v, size_t *n, const char *appendix,
                           const char *period, uint32_t version)
{
	struct in_force *nv = realloc(*v, (*n + 1) * sizeof *nv);
	if (!nv)
		return TH_ENOMEM;
	*v = nv;
	snprintf(nv[*n].appendix, sizeof nv->appendix, "%s", appendix);
	snprintf(nv[*n].period, sizeof nv->period, "%s", period);
	nv[(*n)++].version = version;
	return TH_OK;
}


/* --- appendix versions bound to periods --------------------------------------------
 * meta "dv:" appendix NUL period -> uint32 version: the definition version a period's
 * reports were first accepted with.  Rollups of that period keep using it after a newer
 * version of the appendix is loaded. */
#define DV_PREFIX "dv:"

static size_t dv_key(char *key, const char *appendix, const char *period)
{
	size_t a = strlen(appendix), p = strlen(period);
	memcpy(key, DV_PREFIX, 3);
	memcpy(key + 3, appendix, a);
	key[3 + a] = 0;
	memcpy(key + 4 + a, period, p);
	return 4 + a + p;
}

static const struct in_force *bound_find(const th_store *s, const char *appendix, const char *period)
{
	for (size_t i = 0; i < s->nbound; i++)
		if (!strcmp(s->bound[i].period, period) && !strcmp(s->bound[i].appendix, appendix))
			return &s->bound[i];
	return NULL;
}

static int bound_add(th_store *s, const char *appendix, const char *period, uint32_t version)
{
	if (strlen(appendix) > TH_CODE_MAX || strlen(period) > TH_PERIOD_MAX)
		return TH_EINVAL;
	if (bound_find(s, appendix, period))
		return TH_OK;
	return st_in_force_append(&s->bound, &s->nbound, appendix, period, version);
}

int st_bind_version(th_store *s, MDB_txn *txn, const char *appendix, const char *period,
                    uint32_t version, int *added)
{
	*added = 0;
	pthread_mutex_lock(&s->mu);
	int known = bound_find(s, appendix, period) != NULL;
	pthread_mutex_unlock(&s->mu);
	if (known)
		return TH_OK;
	char key[4 + 2 * (TH_CODE_MAX + 1) + TH_PERIOD_MAX];
	MDB_val k = {dv_key(key, appendix, period), key}, v = {sizeof version, &version};
	int rc = mdb_put(txn, s->meta, &k, &v, MDB_NOOVERWRITE);
	if (rc && rc != MDB_KEYEXIST)
		return th_lmdb_error(rc);
	*added = rc == 0;
	return TH_OK;
}

int st_bound_add(th_store *s, const char *appendix, const char *period, uint32_t version)
{
	pthread_mutex_lock(&s->mu);
	int rc = bound_add(s, appendix, period, version);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* Loads the bindings; a writer opening a store made before they existed binds every
 * (appendix, period) that has reports to the version of its records, once. */
int st_load_bindings(th_store *s, MDB_txn *txn)
{
	MDB_cursor *c;
	if (mdb_cursor_open(txn, s->meta, &c))
		return TH_ESTORE;
	MDB_val k = {3, DV_PREFIX}, v;
	int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size > 3 && !memcmp(k.mv_data, DV_PREFIX, 3)) {
		const char *a = (const char *)k.mv_data + 3;
		size_t al = strnlen(a, k.mv_size - 3);
		char app[TH_CODE_MAX + 1], per[TH_PERIOD_MAX + 1];
		if (al <= TH_CODE_MAX && k.mv_size - 4 - al <= TH_PERIOD_MAX && v.mv_size == 4) {
			uint32_t ver;
			memcpy(app, a, al);
			app[al] = 0;
			memcpy(per, a + al + 1, k.mv_size - 4 - al);
			per[k.mv_size - 4 - al] = 0;
			memcpy(&ver, v.mv_data, 4);
			if (bound_add(s, app, per, ver)) {
				mdb_cursor_close(c);
				return TH_ENOMEM;
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	MDB_val sk = {10, "dv-scanned"}, sv;
	if (s->readonly || mdb_get(txn, s->meta, &sk, &sv) == 0)
		return TH_OK;
	if (mdb_cursor_open(txn, s->reports, &c))
		return TH_ESTORE;
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	int ret = TH_OK;
	while (rc == 0 && ret == TH_OK) {
		/* key unit NUL appendix NUL period; value a record header first */
		const char *p = k.mv_data, *end = p + k.mv_size;
		const char *app = memchr(p, 0, k.mv_size);
		const char *per = app ? memchr(app + 1, 0, (size_t)(end - app - 1)) : NULL;
		if (per && v.mv_size >= sizeof(rec_header)) {
			char a[TH_CODE_MAX + 1], q[TH_PERIOD_MAX + 1];
			size_t al = (size_t)(per - app - 1), ql = (size_t)(end - per - 1);
			if (al <= TH_CODE_MAX && ql <= TH_PERIOD_MAX) {
				rec_header h;
				memcpy(&h, v.mv_data, sizeof h);
				memcpy(a, app + 1, al);
				a[al] = 0;
				memcpy(q, per + 1, ql);
				q[ql] = 0;
				int added;
				ret = st_bind_version(s, txn, a, q, h.version, &added);
				if (ret == TH_OK && added)
					ret = bound_add(s, a, q, h.version);   /* at open: no other thread yet */
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (ret == TH_OK && mdb_put(txn, s->meta, &sk, &(MDB_val){1, "1"}, 0))
		ret = TH_ESTORE;
	return ret;
}


int th_store_set_in_force(th_store *s, const char *appendix, const char *period, uint32_t version)
{
	if (!appendix || strlen(appendix) > TH_CODE_MAX || (period && strlen(period) > TH_PERIOD_MAX))
		return TH_EINVAL;
	pthread_mutex_lock(&s->mu);
	int rc = TH_OK, found = 0;
	for (size_t i = 0; i < s->ncfg && !found; i++)
		if (!strcmp(s->cfg[i].appendix, appendix) && !strcmp(s->cfg[i].period, period ? period : "")) {
			s->cfg[i].version = version;
			found = 1;
		}
	if (!found)
		rc = st_in_force_append(&s->cfg, &s->ncfg, appendix, period ? period : "", version);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

const th_def *th_store_def_for(th_store *s, const char *appendix, const char *period)
{
	return s ? st_def_in_force(s, appendix, period) : NULL;
}

/* st_def_in_force with s->mu held. */
static const th_def *in_force_locked(th_store *s, const char *appendix, const char *period)
{
	const struct in_force *any = NULL;
	for (size_t i = 0; i < s->ncfg; i++)
		if (!strcmp(s->cfg[i].appendix, appendix)) {
			if (period && !strcmp(s->cfg[i].period, period))
				return th_defset_get(s->defs, appendix, s->cfg[i].version);
			if (!s->cfg[i].period[0])
				any = &s->cfg[i];
		}
	const struct in_force *b = period ? bound_find(s, appendix, period) : NULL;
	if (b)
		return th_defset_get(s->defs, appendix, b->version);
	if (any)
		return th_defset_get(s->defs, appendix, any->version);
	return th_defset_latest(s->defs, appendix);
}

const th_def *st_def_in_force(th_store *s, const char *appendix, const char *period)
{
	if (!s->defs || !appendix)
		return NULL;
	pthread_mutex_lock(&s->mu);
	const th_def *d = in_force_locked(s, appendix, period);
	pthread_mutex_unlock(&s->mu);
	return d;
}


/* --- hierarchies and periods ---------------------------------------------------------- */

/* Appends u (taken) to the versions in memory; s->mu held. */
static int units_append(th_store *s, th_units *u)
{
	th_units **nh = realloc(s->h, (s->nh + 1) * sizeof *nh);
	if (!nh)
		return TH_ENOMEM;
	s->h = nh;
	s->h[s->nh++] = u;
	return TH_OK;
}

th_units **st_hier_snapshot(th_store *s, size_t *n)
{
	pthread_mutex_lock(&s->mu);
	th_units **v = malloc((s->nh ? s->nh : 1) * sizeof *v);
	if (v) {
		memcpy(v, s->h, s->nh * sizeof *v);
		*n = s->nh;
	}
	pthread_mutex_unlock(&s->mu);
	return v;
}

/* The version stored under id (n bytes) in txn as a version in memory: known, or
 * parsed from hier and kept (a version another process stored after this handle
 * was opened). */
static int version_of(th_store *s, MDB_txn *txn, const char *id, size_t n, th_units **out)
{
	pthread_mutex_lock(&s->mu);
	th_units *u = st_find_version(s, id, n);
	pthread_mutex_unlock(&s->mu);
	if (u) {
		*out = u;
		return TH_OK;
	}
	MDB_val k = {n, (void *)id}, hv;
	if (mdb_get(txn, s->hier, &k, &hv) || th_units_parse(hv.mv_data, hv.mv_size, "store", &u, NULL))
		return TH_ESTORE;
	pthread_mutex_lock(&s->mu);
	th_units *again = st_find_version(s, id, n);   /* another reader may have kept it */
	int rc = again ? TH_OK : units_append(s, u);
	pthread_mutex_unlock(&s->mu);
	if (again || rc)
		th_units_destroy(&u);
	if (rc == TH_OK)
		*out = again ? again : u;
	return rc;
}

th_units *st_find_version(th_store *s, const char *id, size_t n)
{
	for (size_t i = 0; i < s->nh; i++)
		if (strlen(th_units_version(s->h[i])) == n && !memcmp(th_units_version(s->h[i]), id, n))
			return s->h[i];
	return NULL;
}

/* The meta key recording where hierarchy version id came from. */
static size_t origin_key(char *buf, const char *id, size_t n)
{
	if (n > MAX_KEY - 8)
		return 0;
	memcpy(buf, "origin:", 7);
	memcpy(buf + 7, id, n);
	return 7 + n;
}

int th_store_add_hierarchy(th_store *s, const th_units *u)
{
	return th_store_add_hierarchy_from(s, u, NULL);
}

int th_store_add_hierarchy_from(th_store *s, const th_units *u, const char *origin)
{
	const char *id = th_units_version(u);
	size_t len;
	const char *src = th_units_source(u, &len);
	pthread_mutex_lock(&s->mu);
	th_units *have = st_find_version(s, id, strlen(id));
	pthread_mutex_unlock(&s->mu);
	if (have) {
		size_t hl;
		const char *hs = th_units_source(have, &hl);
		return hl == len && memcmp(hs, src, len) == 0 ? TH_OK : TH_EEXIST;
	}
	if (s->readonly)
		return TH_EINVAL;
	th_units *copy = NULL;
	int rc = th_units_parse(src, len, id, &copy, NULL);
	if (rc)
		return rc;
	MDB_val k = {strlen(id), (void *)id}, v = {len, (void *)src};
	/* the version and where it came from, in one transaction */
	char okey[MAX_KEY], oval[8 + TH_ORIGIN_MAX];
	size_t on = origin ? strnlen(origin, TH_ORIGIN_MAX - 1) : 0;
	int64_t now = th_now_us();
	memcpy(oval, &now, 8);
	memcpy(oval + 8, origin ? origin : "", on);
	MDB_val ok = {origin_key(okey, id, strlen(id)), okey}, ov = {8 + on, oval};
	MDB_dbi dbis[2] = {s->hier, s->meta};
	MDB_val *ks[2] = {&k, &ok}, *vs[2] = {&v, &ov};
	if ((rc = st_putn(s, dbis, ks, vs, ok.mv_size ? 2 : 1))) {
		th_units_destroy(&copy);
		return rc;
	}
	/* stored: the version is the store's now, even if the copy cannot be kept in
	 * memory (a read finds it in hier then) */
	pthread_mutex_lock(&s->mu);
	rc = units_append(s, copy);
	pthread_mutex_unlock(&s->mu);
	if (rc)
		th_units_destroy(&copy);
	return rc;
}

const th_units *th_store_current_hierarchy(th_store *s)
{
	th_units *best = NULL;
	pthread_mutex_lock(&s->mu);
	for (size_t i = 0; i < s->nh; i++)
		if (!best || th_units_effective(s->h[i]) >= th_units_effective(best))
			best = s->h[i];
	pthread_mutex_unlock(&s->mu);
	return best;
}

/* The version in force at the period's start: the latest effective on or before it;
 * when none is effective yet, the earliest.  s->mu held. */
static th_units *choose_version(th_store *s, const char *period)
{
	int32_t start = th_period_start(period);
	th_units *best = NULL, *earliest = NULL;
	for (size_t i = 0; i < s->nh; i++) {
		int32_t e = th_units_effective(s->h[i]);
		if (!earliest || e < th_units_effective(earliest))
			earliest = s->h[i];
		if (e <= start && (!best || e >= th_units_effective(best)))
			best = s->h[i];
	}
	return best ? best : earliest;
}

int st_hier_lookup(th_store *s, MDB_txn *txn, const char *period, th_units **out, int *is_bound)
{
	MDB_val k = {strlen(period), (void *)period}, v;
	int rc = mdb_get(txn, s->bind, &k, &v);
	if (rc == 0) {
		rc = version_of(s, txn, v.mv_data, v.mv_size, out);
		if (rc == TH_OK && is_bound)
			*is_bound = 1;
		return rc;
	}
	if (rc != MDB_NOTFOUND)
		return th_lmdb_error(rc);
	pthread_mutex_lock(&s->mu);
	th_units *u = choose_version(s, period);
	pthread_mutex_unlock(&s->mu);
	if (!u)
		return TH_ENOTFOUND;
	if (is_bound)
		*is_bound = 0;
	*out = u;
	return TH_OK;
}

int st_hier_bind(th_store *s, MDB_txn *txn, const char *period, const th_units *u)
{
	const char *id = th_units_version(u);
	MDB_val k = {strlen(period), (void *)period}, v = {strlen(id), (void *)id};
	return th_lmdb_error(mdb_put(txn, s->bind, &k, &v, MDB_NOOVERWRITE));
}

int th_store_hierarchy_for(th_store *s, const char *period, const th_units **out)
{
	if (!period || !th_period_valid(period))
		return TH_EPERIOD;
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	th_units *u = NULL;
	rc = st_hier_lookup(s, txn, period, &u, NULL);
	st_read_end(s, txn);
	if (rc == 0)
		*out = u;
	return rc;
}

int th_store_set_deadline(th_store *s, const char *appendix, const char *period, const char *unit,
                          int32_t deadline)
{
	if (s->readonly)
		return TH_EINVAL;
	char key[MAX_KEY];
	size_t kl = st_key3(key, appendix, period, unit ? unit : "");
	if (!kl)
		return TH_ETOOBIG;
	MDB_val k = {kl, key}, v = {4, &deadline};
	return st_put1(s, s->deadlines, &k, &v);
}

/* 1 on time, 0 late, for a first acceptance at time t (unix µs). */
int st_on_time(th_store *s, MDB_txn *txn, const char *appendix, const char *period,
                   const char *unit, int64_t t)
{
	char key[MAX_KEY];
	int32_t dl = 0;
	MDB_val v;
	size_t kl = st_key3(key, appendix, period, unit);
	MDB_val k = {kl, key};
	if (kl && mdb_get(txn, s->deadlines, &k, &v) == 0 && v.mv_size == 4) {
		memcpy(&dl, v.mv_data, 4);
	} else {
		kl = st_key3(key, appendix, period, "");
		k.mv_size = kl;
		if (kl && mdb_get(txn, s->deadlines, &k, &v) == 0 && v.mv_size == 4)
			memcpy(&dl, v.mv_data, 4);
	}
	if (!dl)
		return 1;
	time_t sec = (time_t)(t / 1000000);
	struct tm tm;
	localtime_r(&sec, &tm);
	int32_t day = (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
	return day <= dl;
}

int th_store_hierarchies(th_store *s, th_hier_cb cb, void *ctx)
{
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, s->hier, &c))) {
		st_read_end(s, txn);
		return th_lmdb_error(rc);
	}
	MDB_val k, v;
	int ret = TH_OK;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		th_units *u = NULL;
		if ((ret = version_of(s, txn, k.mv_data, k.mv_size, &u)) != TH_OK)
			break;
		ret = cb(ctx, u);
	}
	mdb_cursor_close(c);
	st_read_end(s, txn);
	return ret;
}

int th_store_hierarchy_origin(th_store *s, const char *version, int64_t *loaded_at, char *origin,
                              size_t cap)
{
	char key[MAX_KEY];
	size_t kl = version ? origin_key(key, version, strlen(version)) : 0;
	if (!kl)
		return TH_EINVAL;
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_val k = {kl, key}, v;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == 0 && v.mv_size >= 8) {
		int64_t t;
		memcpy(&t, v.mv_data, 8);
		size_t n = v.mv_size - 8;
		if (origin && cap) {
			if (n >= cap)
				n = cap - 1;
			memcpy(origin, (const char *)v.mv_data + 8, n);
			origin[n] = 0;
		}
		if (loaded_at)
			*loaded_at = t;
		rc = TH_OK;
	} else {
		rc = rc == MDB_NOTFOUND || rc == 0 ? TH_ENOTFOUND : th_lmdb_error(rc);
	}
	st_read_end(s, txn);
	return rc;
}

int th_store_bindings(th_store *s, th_binding_cb cb, void *ctx)
{
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, s->bind, &c))) {
		st_read_end(s, txn);
		return th_lmdb_error(rc);
	}
	MDB_val k, v;
	int ret = TH_OK;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char p[TH_PERIOD_MAX + 1], id[256];
		if (k.mv_size > TH_PERIOD_MAX || v.mv_size >= sizeof id)
			continue;
		memcpy(p, k.mv_data, k.mv_size);
		p[k.mv_size] = 0;
		memcpy(id, v.mv_data, v.mv_size);
		id[v.mv_size] = 0;
		ret = cb(ctx, p, id);
	}
	mdb_cursor_close(c);
	st_read_end(s, txn);
	return ret;
}


/* expected[i] = units in i's subtree expected to submit d. malloc'd. */
static uint32_t *expected_counts(const th_units *u, const th_def *d)
{
	size_t n = th_units_count(u);
	uint32_t *e = calloc(n ? n : 1, sizeof *e);
	size_t *order = malloc((n ? n : 1) * sizeof *order);
	if (!e || !order) {
		free(e);
		free(order);
		return NULL;
	}
	/* deepest first */
	size_t k = 0;
	for (uint32_t depth = th_units_max_depth(u); depth >= 1; depth--)
		for (size_t i = 0; i < n; i++)
			if (th_units_at(u, i)->depth == depth)
				order[k++] = i;
	for (size_t j = 0; j < k; j++) {
		const th_unit *x = th_units_at(u, order[j]);
		e[order[j]] += (uint32_t)th_def_expects(d, x->kind, x->code);
		if (x->parent >= 0)
			e[x->parent] += e[order[j]];
	}
	free(order);
	return e;
}

/* expected_counts, cached per (hierarchy, definition); s->mu held. */
static const uint32_t *expected_locked(th_store *s, const th_units *u, const th_def *d)
{
	for (size_t i = 0; i < EXP_CACHE; i++)
		if (s->exp[i].e && s->exp[i].u == u && s->exp[i].d == d)
			return s->exp[i].e;
	uint32_t *e = expected_counts(u, d);
	if (!e)
		return NULL;
	size_t slot = s->exp_next++ % EXP_CACHE;
	free(s->exp[slot].e);
	s->exp[slot].u = u;
	s->exp[slot].d = d;
	s->exp[slot].e = e;
	return e;
}

int st_expected_at(th_store *s, const th_units *u, const th_def *d, size_t i, uint32_t *out)
{
	pthread_mutex_lock(&s->mu);
	const uint32_t *e = expected_locked(s, u, d);
	if (e)
		*out = e[i];
	pthread_mutex_unlock(&s->mu);
	return e ? TH_OK : TH_ENOMEM;
}

uint32_t *st_expected_copy(th_store *s, const th_units *u, const th_def *d)
{
	size_t n = th_units_count(u);
	uint32_t *out = malloc((n ? n : 1) * sizeof *out);
	if (!out)
		return NULL;
	pthread_mutex_lock(&s->mu);
	const uint32_t *e = expected_locked(s, u, d);
	if (e)
		memcpy(out, e, n * sizeof *out);
	pthread_mutex_unlock(&s->mu);
	if (!e) {
		free(out);
		return NULL;
	}
	return out;
}

void st_expected_clear(th_store *s)
{
	for (size_t i = 0; i < EXP_CACHE; i++) {
		free(s->exp[i].e);
		s->exp[i].e = NULL;
	}
}

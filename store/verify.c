/* verify.c -- recomputation from the latest records: th_store_rebuild and
 * th_store_verify. */
#include "store_private.h"
#include "th_rollup.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- recomputation, rebuild, verify ------------------------------------------------------- */

typedef struct {
	char appendix[TH_CODE_MAX + 1], period[TH_PERIOD_MAX + 1];
} pair;

/* For every (appendix, period) with reports: computes own, total and counts of
 * every unit from the latest revisions, and calls emit for units with state. */
typedef int (*emit_fn)(void *ctx, MDB_txn *txn, const th_def *d, const char *appendix,
                       const char *period, const th_unit *x, const node *computed);

static int recompute_all(th_store *s, MDB_txn *txn, emit_fn emit, void *ctx, th_diag *diag)
{
	pair *pairs = NULL;
	size_t np = 0;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->reports, &c);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val k, v;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char key[MAX_KEY + 1];
		const char *ru, *ra, *rp;
		if (st_split3(&k, key, &ru, &ra, &rp)) {
			th_diag_add(diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL, "a malformed report key");
			continue;
		}
		int seen = 0;
		for (size_t i = 0; i < np && !seen; i++)
			seen = !strcmp(pairs[i].appendix, ra) && !strcmp(pairs[i].period, rp);
		if (!seen) {
			pair *npairs = realloc(pairs, (np + 1) * sizeof *npairs);
			if (!npairs) {
				free(pairs);
				mdb_cursor_close(c);
				return TH_ENOMEM;
			}
			pairs = npairs;
			snprintf(pairs[np].appendix, sizeof pairs[np].appendix, "%.64s", ra);
			snprintf(pairs[np].period, sizeof pairs[np].period, "%.16s", rp);
			np++;
		}
	}
	int ret = TH_OK;
	for (size_t p = 0; p < np && ret == TH_OK; p++) {
		const th_def *d = st_def_in_force(s, pairs[p].appendix, pairs[p].period);
		th_units *u = NULL;
		if (!d || st_hier_lookup(s, txn, pairs[p].period, &u, NULL) != 0) {
			th_diag_add(diag, TH_SEV_ERROR, TH_EAPPENDIX, NULL, 0, 0, NULL,
			            "%s %s: no definition or hierarchy to recompute with", pairs[p].appendix,
			            pairs[p].period);
			ret = TH_ESTORE;
			break;
		}
		size_t nu = th_units_count(u);
		node *nodes = calloc(nu, sizeof *nodes);
		char *has = calloc(nu, 1);
		if (!nodes || !has) {
			free(nodes);
			free(has);
			ret = TH_ENOMEM;
			break;
		}
		for (size_t i = 0; i < nu && ret == TH_OK; i++)
			ret = st_node_alloc(&nodes[i], d);
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == TH_OK;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			char key[MAX_KEY + 1];
			const char *ru, *ra, *rp;
			if (st_split3(&k, key, &ru, &ra, &rp))
				continue;
			if (strcmp(ra, pairs[p].appendix) || strcmp(rp, pairs[p].period))
				continue;
			long ui = th_units_find(u, ru);
			rec_header h;
			th_report *r = NULL;
			int drc = st_decode_record(s, &v, ru, ra, rp, &r, &h);
			if (ui < 0 || drc) {
				th_diag_add(diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
				            "report %s %s %s: %s", ru, ra, rp,
				            ui < 0 ? "unit not in the bound hierarchy" : "cannot be decoded");
				th_report_destroy(&r);
				continue;
			}
			const th_def *rd = th_defset_get(s->defs, ra, h.version);
			uint8_t hh[TH_HASH_LEN];
			if (diag && rd && (th_canon_hash(r, rd, hh) || memcmp(hh, h.hash, TH_HASH_LEN)))
				th_diag_add(diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
				            "report %s %s %s rev %llu: stored content does not match its hash",
				            ru, ra, rp, (unsigned long long)h.rev);
			if (diag && rd) {
				th_diag *vd = th_diag_new();
				if (th_report_validate(r, rd, vd) != 0)
					th_diag_add(diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
					            "report %s %s %s rev %llu no longer validates: %s", ru, ra, rp,
					            (unsigned long long)h.rev, th_diag_count(vd) ? th_diag_text(vd, 0) : "");
				th_diag_destroy(&vd);
			}
			node *n = &nodes[ui];
			has[ui] = 1;
			if (!h.tombstone && rd == d)
				th_rollup_contrib(d, r, n->own);
			if (!h.tombstone) {
				n->h.reported = 1;
				if (!h.late)
					n->h.on_time = 1;
				else
					n->h.late = 1;
			}
			n->h.corrections = h.corrections;
			th_report_destroy(&r);
		}
		/* totals: deepest first */
		for (size_t i = 0; i < nu; i++)
			memcpy(nodes[i].total, nodes[i].own, d->n_slots * sizeof(int64_t));
		for (uint32_t depth = th_units_max_depth(u); depth >= 2 && ret == TH_OK; depth--)
			for (size_t i = 0; i < nu; i++) {
				const th_unit *x = th_units_at(u, i);
				if (x->depth != depth || x->parent < 0)
					continue;
				node *pn = &nodes[x->parent];
				if (th_rollup_add(d, pn->total, nodes[i].total))
					ret = TH_EOVERFLOW;
				pn->h.reported += nodes[i].h.reported;
				pn->h.on_time += nodes[i].h.on_time;
				pn->h.late += nodes[i].h.late;
				pn->h.corrections += nodes[i].h.corrections;
				if (has[i])
					has[x->parent] = 1;
			}
		for (size_t i = 0; i < nu && ret == TH_OK; i++)
			if (has[i])
				ret = emit(ctx, txn, d, pairs[p].appendix, pairs[p].period, th_units_at(u, i), &nodes[i]);
		for (size_t i = 0; i < nu; i++)
			st_node_release(&nodes[i]);
		free(nodes);
		free(has);
	}
	mdb_cursor_close(c);
	free(pairs);
	return ret;
}

typedef struct {
	th_store *s;
	uint64_t commit;
} rebuild_ctx;

static int rebuild_emit(void *ctx, MDB_txn *txn, const th_def *d, const char *appendix,
                        const char *period, const th_unit *x, const node *computed)
{
	rebuild_ctx *c = ctx;
	node n = *computed;
	node old;
	/* keep version numbers increasing for subscribers */
	if (st_node_read(c->s, txn, d, appendix, period, x->code, &old) == 0) {
		n.h.version = old.h.version + 1;
		st_node_release(&old);
	}
	n.h.commit = c->commit;
	n.h.n_slots = (uint32_t)d->n_slots;
	return st_node_write(c->s, txn, d, appendix, period, x->code, &n);
}

/* Clears every stored node (keeping, and bumping, its version) so that nodes no
 * report explains any more end up zero. */
static int zero_nodes(th_store *s, MDB_txn *txn, uint64_t commit)
{
	/* collect first, write after the cursor is closed */
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->rollups, &c);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val k, v;
	struct zn { char key[MAX_KEY]; size_t kl; node_header h; } *all = NULL;
	size_t n = 0, cap = 0;
	int ret = TH_OK;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		node_header h;
		if (st_node_head(&v, &h) || k.mv_size > MAX_KEY)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			struct zn *na = realloc(all, cap * sizeof *na);
			if (!na) {
				ret = TH_ENOMEM;
				break;
			}
			all = na;
		}
		memcpy(all[n].key, k.mv_data, k.mv_size);
		all[n].kl = k.mv_size;
		all[n].h = h;
		n++;
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < n && ret == TH_OK; i++) {
		node_header h = all[i].h;
		h.version++;
		h.commit = commit;
		h.reported = h.on_time = h.late = h.corrections = 0;
		h.enc = NODE_SAME;   /* own == total == 0: one byte each */
		MDB_val kk = {all[i].kl, all[i].key}, nv = {sizeof h + (size_t)h.n_slots, NULL};
		if ((rc = mdb_put(txn, s->rollups, &kk, &nv, MDB_RESERVE))) {
			ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
			break;
		}
		memset(nv.mv_data, 0, nv.mv_size);
		memcpy(nv.mv_data, &h, sizeof h);
	}
	free(all);
	return ret;
}

int th_store_rebuild(th_store *s)
{
	if (s->readonly)
		return TH_EINVAL;
	if (!s->env)
		return TH_ESTORE;
	for (;;) {
		MDB_txn *txn;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc)
			return th_lmdb_error(rc);
		/* node versions survive: read them before dropping (copy into a scratch db is
		 * not needed: rebuild_emit reads the old node before overwriting) */
		uint64_t last = th_store_last_commit(s);
		rebuild_ctx c = {s, last};
		rc = zero_nodes(s, txn, last);
		if (rc == TH_OK)
			rc = recompute_all(s, txn, rebuild_emit, &c, NULL);
		if (rc == TH_OK) {
			rc = mdb_txn_commit(txn);
			if (rc == 0)
				return TH_OK;
			rc = rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
		} else {
			mdb_txn_abort(txn);
		}
		if (rc != TH_EMAPFULL || st_grow(s) != TH_OK)
			return rc;
	}
}

typedef struct {
	th_store *s;
	th_diag *diag;
	size_t problems, nodes;
	char **keys;           /* rollup keys the recomputation produced, NUL-separated parts */
	size_t *klen, nkeys, cap;
} verify_ctx;

typedef struct {
	const char *p;
	size_t n;
} bkey;

static int cmp_bkey(const void *a, const void *b)
{
	const bkey *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
	return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int verify_emit(void *ctx, MDB_txn *txn, const th_def *d, const char *appendix,
                       const char *period, const th_unit *x, const node *computed)
{
	verify_ctx *c = ctx;
	node stored;
	if (c->nkeys == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		char **nk = realloc(c->keys, cap * sizeof *nk);
		if (!nk)
			return TH_ENOMEM;
		c->keys = nk;
		size_t *nl = realloc(c->klen, cap * sizeof *nl);
		if (!nl)
			return TH_ENOMEM;
		c->klen = nl;
		c->cap = cap;
	}
	char key[MAX_KEY];
	size_t kl = st_key3(key, appendix, period, x->code);
	if (!kl || !(c->keys[c->nkeys] = malloc(kl)))
		return TH_ENOMEM;
	memcpy(c->keys[c->nkeys], key, kl);
	c->klen[c->nkeys++] = kl;
	int rc = st_node_get(c->s, txn, d, appendix, period, x->code, &stored);
	if (rc)
		return rc;
	c->nodes++;
	if (!th_rollup_equal(d, stored.own, computed->own) ||
	    !th_rollup_equal(d, stored.total, computed->total) ||
	    stored.h.reported != computed->h.reported || stored.h.on_time != computed->h.on_time ||
	    stored.h.late != computed->h.late || stored.h.corrections != computed->h.corrections) {
		c->problems++;
		th_diag_add(c->diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
		            "rollup %s %s %s differs from a recomputation", appendix, period, x->code);
	}
	st_node_release(&stored);
	return TH_OK;
}

/* Every history entry decodes and matches its hash, and is older than its
 * key's latest record (history holds the superseded revisions; a format-1
 * store not yet upgraded also holds the latest). */
static int verify_history(th_store *s, MDB_txn *txn, th_diag *dg)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->history, &c);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val k, v;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char key[MAX_KEY + 1];
		const char *ru, *ra, *rp;
		MDB_val pk = {k.mv_size >= 9 ? k.mv_size - 9 : 0, k.mv_data};
		if (k.mv_size < 9 || ((const char *)k.mv_data)[k.mv_size - 9] != 0 ||
		    st_split3(&pk, key, &ru, &ra, &rp)) {
			th_diag_add(dg, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL, "a malformed history key");
			continue;
		}
		uint64_t krev = 0;
		for (size_t i = k.mv_size - 8; i < k.mv_size; i++)
			krev = krev << 8 | ((const uint8_t *)k.mv_data)[i];
		rec_header h;
		th_report *r = NULL;
		uint8_t hh[TH_HASH_LEN];
		int drc = st_decode_record(s, &v, ru, ra, rp, &r, &h);
		if (drc == TH_EAPPENDIX)
			continue;   /* a definition no longer loaded: cannot check */
		const th_def *d = drc ? NULL : th_defset_get(s->defs, ra, h.version);
		if (drc || h.rev != krev || !d || th_canon_hash(r, d, hh) ||
		    memcmp(hh, h.hash, TH_HASH_LEN))
			th_diag_add(dg, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
			            "history %s %s %s rev %llu: damaged (does not decode or match its hash)",
			            ru, ra, rp, (unsigned long long)krev);
		th_report_destroy(&r);
		MDB_val lv;
		rec_header lh;
		if (mdb_get(txn, s->reports, &pk, &lv) || lv.mv_size < sizeof lh ||
		    (memcpy(&lh, lv.mv_data, sizeof lh), lh.rev < krev || (lh.rev == krev && s->format != 1)))
			th_diag_add(dg, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
			            "history %s %s %s rev %llu: no newer latest revision stands for it", ru, ra,
			            rp, (unsigned long long)krev);
	}
	mdb_cursor_close(c);
	return TH_OK;
}

int th_store_verify(th_store *s, th_diag *diag)
{
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	th_diag *local = diag ? NULL : th_diag_new();
	th_diag *dg = diag ? diag : local;
	size_t before = th_diag_errors(dg);
	verify_ctx c = {s, dg, 0, 0, NULL, NULL, 0, 0};
	rc = recompute_all(s, txn, verify_emit, &c, dg);
	if (rc == TH_OK)
		rc = verify_history(s, txn, dg);
	/* stored nodes with state that the recomputation does not produce */
	MDB_cursor *cur;
	bkey *bk = NULL;
	if (rc == TH_OK && !(bk = malloc((c.nkeys ? c.nkeys : 1) * sizeof *bk)))
		rc = TH_ENOMEM;
	if (rc == TH_OK && mdb_cursor_open(txn, s->rollups, &cur) == 0) {
		for (size_t i = 0; i < c.nkeys; i++) {
			bk[i].p = c.keys[i];
			bk[i].n = c.klen[i];
		}
		qsort(bk, c.nkeys, sizeof *bk, cmp_bkey);
		MDB_val k, v;
		for (int r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0; r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			node_header h;
			int nonzero = 1;   /* a malformed node is a problem too */
			int64_t *vals = NULL;
			if (st_node_head(&v, &h) == 0 && (vals = malloc((2 * (size_t)h.n_slots + 1) * sizeof *vals)) &&
			    st_node_vals(&v, &h, vals) == 0) {
				nonzero = h.reported || h.on_time || h.late || h.corrections;
				for (size_t i = 0; i < 2 * (size_t)h.n_slots && !nonzero; i++)
					nonzero = vals[i] != 0;
			}
			free(vals);
			bkey want = {k.mv_data, k.mv_size};
			if (nonzero && !bsearch(&want, bk, c.nkeys, sizeof *bk, cmp_bkey)) {
				c.problems++;
				th_diag_add(dg, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
				            "a stored rollup node (%.*s) holds data that no report explains",
				            (int)strnlen(k.mv_data, k.mv_size), (const char *)k.mv_data);
			}
		}
		mdb_cursor_close(cur);
	}
	free(bk);
	for (size_t i = 0; i < c.nkeys; i++)
		free(c.keys[i]);
	free(c.keys);
	free(c.klen);
	st_read_end(s, txn);
	size_t errs = th_diag_errors(dg) - before;
	th_diag_destroy(&local);
	if (rc)
		return rc;
	return errs ? TH_ESTORE : TH_OK;
}

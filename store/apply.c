/* apply.c -- a group of submissions in one write transaction: dedup, revisions,
 * rollups by exact delta, completeness, history (DESIGN sections 4-6). */
#include "store_private.h"
#include "th_rollup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


/* Sets the min/max slots of acc from own and the children's totals; the child
 * `path_child` (may be -1) uses path_total instead of its stored value. */
static int recompute_extrema(th_store *s, MDB_txn *txn, const th_def *d, const th_units *u,
                             size_t unit, const char *appendix, const char *period,
                             const int64_t *own, long path_child, const int64_t *path_total,
                             int64_t *acc)
{
	int64_t *tmp = malloc(d->n_slots * sizeof *tmp);
	if (!tmp)
		return TH_ENOMEM;
	th_rollup_zero(d, tmp);
	th_rollup_merge_extrema(d, tmp, own);
	const th_unit *x = th_units_at(u, unit);
	for (uint32_t i = 0; i < x->n_children; i++) {
		size_t c = x->children[i];
		if ((long)c == path_child) {
			th_rollup_merge_extrema(d, tmp, path_total);
			continue;
		}
		node cn;
		int rc = st_node_read(s, txn, d, appendix, period, th_units_at(u, c)->code, &cn);
		if (rc) {
			free(tmp);
			return rc;
		}
		th_rollup_merge_extrema(d, tmp, cn.total);
		st_node_release(&cn);
	}
	for (size_t c = 0; c < d->n_cols; c++)
		if (d->cols[c].rollup == TH_ROLL_MIN || d->cols[c].rollup == TH_ROLL_MAX) {
			acc[d->cols[c].slot] = tmp[d->cols[c].slot];
			acc[d->cols[c].slot + 1] = tmp[d->cols[c].slot + 1];
		}
	free(tmp);
	return TH_OK;
}

/* --- apply ------------------------------------------------------------------------------ */

static const char *str_or(const char *p) { return p ? p : ""; }

static int cmp_sub(const void *a, const void *b)
{
	const th_submission *x = *(th_submission *const *)a, *y = *(th_submission *const *)b;
	if (!x->report || !y->report)
		return !x->report - !y->report;
	int c = strcmp(str_or(x->report->unit), str_or(y->report->unit));
	if (!c)
		c = strcmp(str_or(x->report->appendix), str_or(y->report->appendix));
	if (!c)
		c = strcmp(str_or(x->report->period), str_or(y->report->period));
	if (!c)
		c = x->report->rev < y->report->rev ? -1 : x->report->rev > y->report->rev;
	if (!c)
		c = x < y ? -1 : x > y;
	return c;
}

static void result_set(th_store_result *r, th_store_status st, int code, uint64_t stored,
                       const char *msg)
{
	r->status = st;
	r->code = code;
	r->stored_rev = stored;
	snprintf(r->message, sizeof r->message, "%s", msg ? msg : "");
}

static void result_reset(th_store_result *r)
{
	memset(r, 0, sizeof *r);
}

/* The nodes a group changed, each once: a list in first-change order and an
 * open-addressing index over it (a group of 1,000 reports changes ~4,000 path
 * nodes; a linear search per note was most of the strcmp time of a commit). */
typedef struct {
	th_changed_node *v;
	size_t n, cap;
	uint32_t *slot;     /* index + 1 into v, 0 = empty; hcap entries */
	size_t hcap;
} changes;

static void copy_bounded(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = 0;
}

static uint64_t change_hash(const char *unit, const char *appendix, const char *period)
{
	/* the three strings, each ended by 0x1f (no code contains it) */
	uint64_t h = TH_FNV1A_INIT;
	for (const char *p[3] = {unit, appendix, period}, **q = p; q < p + 3; q++)
		h = th_fnv1a_step(th_fnv1a_step(h, *q, strlen(*q)), "\x1f", 1);
	return h;
}

static int change_index_grow(changes *c)
{
	size_t hcap = c->hcap ? c->hcap * 2 : 128;
	uint32_t *slot = calloc(hcap, sizeof *slot);
	if (!slot)
		return -1;
	for (size_t i = 0; i < c->n; i++) {
		const th_changed_node *x = &c->v[i];
		size_t j = change_hash(x->unit, x->appendix, x->period) & (hcap - 1);
		while (slot[j])
			j = (j + 1) & (hcap - 1);
		slot[j] = (uint32_t)i + 1;
	}
	free(c->slot);
	c->slot = slot;
	c->hcap = hcap;
	return 0;
}

static void changes_free_index(changes *c)
{
	free(c->slot);
	c->slot = NULL;
	c->hcap = 0;
}

static void note_change(changes *c, const char *unit, const char *appendix, const char *period,
                        uint32_t level, uint64_t version)
{
	if ((c->n + 1) * 2 > c->hcap && change_index_grow(c))
		return;
	size_t j = change_hash(unit, appendix, period) & (c->hcap - 1);
	for (; c->slot[j]; j = (j + 1) & (c->hcap - 1)) {
		th_changed_node *x = &c->v[c->slot[j] - 1];
		if (!strcmp(x->unit, unit) && !strcmp(x->appendix, appendix) && !strcmp(x->period, period)) {
			x->node_version = version;
			return;
		}
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		th_changed_node *nv = realloc(c->v, cap * sizeof *nv);
		if (!nv)
			return;
		c->v = nv;
		c->cap = cap;
	}
	th_changed_node *x = &c->v[c->n];
	copy_bounded(x->unit, sizeof x->unit, unit);
	copy_bounded(x->appendix, sizeof x->appendix, appendix);
	copy_bounded(x->period, sizeof x->period, period);
	x->level = level;
	x->node_version = version;
	c->slot[j] = (uint32_t)++c->n;
}

/* Moves the latest record of report key k (rev) into history before a newer
 * revision replaces it.  The record is copied out first: a put may spill the
 * page it lives on. */
static int supersede(th_store *s, MDB_txn *txn, MDB_val *k, uint64_t rev)
{
	MDB_val v;
	int rc = mdb_get(txn, s->reports, k, &v);
	if (rc)
		return th_lmdb_error(rc);
	void *copy = malloc(v.mv_size ? v.mv_size : 1);
	if (!copy)
		return TH_ENOMEM;
	memcpy(copy, v.mv_data, v.mv_size);
	uint8_t hk[MAX_KEY + 9];
	MDB_val hkv = {st_history_key(hk, k, rev), hk}, hv = {v.mv_size, copy};
	rc = mdb_put(txn, s->history, &hkv, &hv, 0);
	free(copy);
	return rc == 0 ? TH_OK : rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
}

/* The store's own defence: a submission that does not carry what ingest hands
 * over (its definition, hierarchy and canonical form), or whose report does
 * not match that definition, was not checked; it is refused, whatever it holds. */
static int unchecked(const th_submission *sub)
{
	const th_report *r = sub->report;
	const th_def *d = sub->def;
	return !r || !d || !sub->hier || !sub->canon || !r->unit || !*r->unit ||
	       !r->appendix || !r->period || !th_period_valid(r->period) || strcmp(r->appendix, d->id) ||
	       r->version != d->version || r->n_cols != d->n_cols || (r->n_rows && !r->cells);
}

/* Applies one submission inside txn.  Returns TH_OK (result set, maybe a
 * rejection), or TH_EMAPFULL / other store errors that abort the group. */
/* The (appendix, period) definition bindings a group's transaction wrote: kept in
 * memory once it has committed. */
typedef struct {
	struct in_force *v;
	size_t n;
} pending;

static int apply_one(th_store *s, MDB_txn *txn, th_submission *sub, uint64_t commit, int64_t now,
                     changes *ch, pending *pb)
{
	const th_report *r = sub->report;
	th_store_result *res = &sub->result;
	char key[MAX_KEY];
	size_t kl = unchecked(sub) ? 0 : st_key3(key, r->unit, r->appendix, r->period);
	if (!kl) {
		result_set(res, TH_STORE_REJECTED, TH_EINVAL, 0,
		           "the submission was not checked before it reached the store (no definition, "
		           "hierarchy or canonical form, or a report that does not match them): nothing "
		           "of it is stored");
		return TH_OK;
	}
	/* the key's stored rev, for every answer (0 when none) */
	uint64_t cur_rev = 0;
	{
		MDB_val k0 = {kl, key}, v0;
		int g = mdb_get(txn, s->reports, &k0, &v0);
		if (g == 0 && v0.mv_size >= sizeof(rec_header)) {
			rec_header h0;
			memcpy(&h0, v0.mv_data, sizeof h0);
			cur_rev = h0.rev;
		} else if (g && g != MDB_NOTFOUND) {
			return th_lmdb_error(g);
		}
	}
	/* what may have changed since ingest checked it: the definition in force and the
	 * hierarchy of the period (compared, not checked again) */
	const th_def *d = st_def_in_force(s, r->appendix, r->period);
	if (d != sub->def) {
		char m[TH_STORE_MSG_MAX];
		snprintf(m, sizeof m,
		         "%s version %u is not the one in force for %s (version %u): fetch the current "
		         "definitions and check the file again",
		         r->appendix, (unsigned)r->version, r->period, d ? (unsigned)d->version : 0u);
		result_set(res, TH_STORE_RETRY, TH_EDEFCHANGED, cur_rev, m);
		return TH_OK;
	}
	th_units *u = NULL;
	int is_bound = 0;
	int rc = st_hier_lookup(s, txn, r->period, &u, &is_bound);
	if (rc == TH_ENOTFOUND) {
		result_set(res, TH_STORE_RETRY, TH_ESTORE, cur_rev, "no hierarchy is loaded");
		return TH_OK;
	}
	if (rc)
		return rc;
	if (u != sub->hier) {
		char m[TH_STORE_MSG_MAX];
		snprintf(m, sizeof m, "the hierarchy of period %s is %s, not %s which the report was "
		         "checked against: it is checked again when it is sent again", r->period,
		         th_units_version(u), th_units_version(sub->hier));
		result_set(res, TH_STORE_RETRY, TH_EBUSY, cur_rev, m);
		return TH_OK;
	}
	long ui = th_units_find(u, r->unit);
	if (ui < 0) {
		result_set(res, TH_STORE_REJECTED, TH_EINVAL, cur_rev,
		           "the submission was not checked before it reached the store (its unit is not "
		           "in its hierarchy): nothing of it is stored");
		return TH_OK;
	}
	const uint8_t *hash = sub->hash, *cf = sub->canon;
	size_t clen = sub->canon_len;
	MDB_val k = {kl, key}, v;
	rec_header old;
	int have_old = 0;
	rc = mdb_get(txn, s->reports, &k, &v);
	if (rc == 0 && v.mv_size >= sizeof old) {
		memcpy(&old, v.mv_data, sizeof old);
		have_old = 1;
	} else if (rc && rc != MDB_NOTFOUND) {
		return th_lmdb_error(rc);
	}
	if (have_old) {
		if (r->rev == old.rev) {
			if (!memcmp(hash, old.hash, TH_HASH_LEN))
				result_set(res, TH_STORE_DUPLICATE, 0, old.rev, NULL);
			else
				result_set(res, TH_STORE_REJECTED, TH_ECONFLICT, old.rev,
				           "the same revision was stored with other content; a new revision needs a higher rev");
			return TH_OK;
		}
		if (r->rev < old.rev) {
			result_set(res, TH_STORE_STALE, TH_ESTALE, old.rev, "a newer revision is stored");
			return TH_OK;
		}
	}
	/* contributions */
	int64_t *cnew = calloc(d->n_slots, sizeof *cnew), *oldtot = NULL;
	node *path = NULL;
	size_t depth = th_units_at(u, (size_t)ui)->depth;
	int ret = TH_OK;
	if (!cnew) {
		ret = TH_ENOMEM;
		goto out;
	}
	if (th_rollup_contrib(d, r, cnew) != 0) {
		result_set(res, TH_STORE_REJECTED, TH_EOVERFLOW, have_old ? old.rev : 0,
		           "a sum of this report overflows 64 bits");
		goto out;
	}
	/* the old revision's contribution is the unit node's own vector (the same
	 * numbers th_rollup_contrib gave when it was applied): no need to decode it */
	/* completeness deltas */
	int was = have_old && !old.tombstone, is = !r->tombstone;
	int64_t first = have_old ? old.first_time : now;
	/* decided once, at the key's first accepted revision, and kept in the record */
	int ot = have_old ? !old.late : st_on_time(s, txn, r->appendix, r->period, r->unit, now);
	int d_rep = is - was;
	int d_corr = (have_old && is) ? 1 : 0;
	/* compute every node on the path in memory first */
	path = calloc(depth, sizeof *path);
	if (!path) {
		ret = TH_ENOMEM;
		goto out;
	}
	long cur = ui, child = -1;
	/* each level replaces the child's total as it was before this report (kept
	 * from the level below: nothing is written until the whole path is done) */
	oldtot = malloc(2 * d->n_slots * sizeof *oldtot);
	if (!oldtot) {
		ret = TH_ENOMEM;
		goto out;
	}
	int64_t *was_child = oldtot, *was_this = oldtot + d->n_slots;
	for (size_t i = 0; i < depth && cur >= 0; i++) {
		const th_unit *x = th_units_at(u, (size_t)cur);
		if ((rc = st_node_read(s, txn, d, r->appendix, r->period, x->code, &path[i]))) {
			ret = rc;
			goto out;
		}
		node *n = &path[i];
		int need = 0;
		memcpy(was_this, n->total, d->n_slots * sizeof *was_this);
		if (i == 0) {
			if (th_rollup_replace(d, n->total, n->own, cnew, &need)) {
				result_set(res, TH_STORE_REJECTED, TH_EOVERFLOW, have_old ? old.rev : 0,
				           "a rollup sum would overflow 64 bits");
				goto out;
			}
			memcpy(n->own, cnew, d->n_slots * sizeof *cnew);
		} else {
			int bad = th_rollup_replace(d, n->total, was_child, path[i - 1].total, &need);
			if (bad) {
				result_set(res, TH_STORE_REJECTED, TH_EOVERFLOW, have_old ? old.rev : 0,
				           "a rollup sum would overflow 64 bits");
				goto out;
			}
		}
		if (need) {
			if ((rc = recompute_extrema(s, txn, d, u, (size_t)cur, r->appendix, r->period, n->own,
			                            child, i ? path[i - 1].total : NULL, n->total))) {
				ret = rc;
				goto out;
			}
		}
		n->h.reported = (uint32_t)((int64_t)n->h.reported + d_rep);
		if (d_rep) {
			if (ot)
				n->h.on_time = (uint32_t)((int64_t)n->h.on_time + d_rep);
			else
				n->h.late = (uint32_t)((int64_t)n->h.late + d_rep);
		}
		n->h.corrections += (uint32_t)d_corr;
		n->h.version++;
		n->h.commit = commit;
		n->h.n_slots = (uint32_t)d->n_slots;
		int64_t *t = was_child;   /* this level's old total is the next level's child's */
		was_child = was_this;
		was_this = t;
		child = cur;
		cur = x->parent;
	}
	/* write: nodes, report, history */
	cur = ui;
	for (size_t i = 0; i < depth && cur >= 0; i++) {
		const th_unit *x = th_units_at(u, (size_t)cur);
		if ((rc = st_node_write(s, txn, d, r->appendix, r->period, x->code, &path[i]))) {
			ret = rc;
			goto out;
		}
		note_change(ch, x->code, r->appendix, r->period, x->depth, path[i].h.version);
		cur = x->parent;
	}
	rec_header h;
	memset(&h, 0, sizeof h);
	h.fmt = 1;
	h.tombstone = r->tombstone;
	h.version = r->version;
	h.as_of = r->as_of;
	h.late = (uint8_t)!ot;
	h.corrections = have_old ? old.corrections + (uint32_t)d_corr : 0;
	h.rev = r->rev;
	h.commit = commit;
	h.commit_time = now;
	h.first_time = first;
	memcpy(h.hash, hash, TH_HASH_LEN);
	snprintf(h.sender, sizeof h.sender, "%s", sub->sender ? sub->sender : "");
	/* the revision it replaces becomes history (the latest lives only in reports) */
	if (have_old && (rc = supersede(s, txn, &k, old.rev))) {
		ret = rc;
		goto out;
	}
	MDB_val rv;
	rv.mv_size = sizeof h + clen;
	if ((rc = mdb_put(txn, s->reports, &k, &rv, MDB_RESERVE))) {
		ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
		goto out;
	}
	memcpy(rv.mv_data, &h, sizeof h);
	memcpy((char *)rv.mv_data + sizeof h, cf, clen);
	/* the period keeps this version after a newer one is loaded */
	/* only an accepted report binds: its period to the hierarchy it was checked in,
	 * the (appendix, period) to its definition version */
	int added = 0;
	if ((!is_bound && (rc = st_hier_bind(s, txn, r->period, u))) ||
	    (rc = st_bind_version(s, txn, r->appendix, r->period, d->version, &added)) ||
	    (added && (rc = st_in_force_append(&pb->v, &pb->n, r->appendix, r->period, d->version)))) {
		ret = rc;
		goto out;
	}
	result_set(res, TH_STORE_ACCEPTED, 0, r->rev, NULL);
out:
	for (size_t i = 0; path && i < depth; i++)
		st_node_release(&path[i]);
	free(path);
	free(cnew);
	free(oldtot);
	return ret;
}

int th_store_apply(th_store *s, th_submission *subs, size_t n, uint64_t *commit_id,
                   int64_t *commit_time, th_changed_node **changed, size_t *n_changed)
{
	if (s->readonly || (n && !subs))
		return TH_EINVAL;
	if (!s->env)
		return TH_ESTORE;
	if (n == 0) {
		*commit_id = th_store_last_commit(s);
		*commit_time = th_now_us();
		if (changed) {
			*changed = NULL;
			*n_changed = 0;
		}
		return TH_OK;
	}
	th_submission **order = malloc((n ? n : 1) * sizeof *order);
	if (!order)
		return TH_ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = &subs[i];
	qsort(order, n, sizeof *order, cmp_sub);
	if (!s->ncmem && !(s->ncmem = st_ncache_new())) {
		free(order);
		return TH_ENOMEM;
	}
	int ret, reopened = 0;
	pending pb = {0};
	for (;;) {
		changes ch = {0};
		pb.n = 0;
		st_ncache_clear(s->ncmem);
		s->nc = s->ncmem;
		uint64_t commit = th_store_last_commit(s) + 1;
		int64_t now = th_now_us();
		MDB_txn *txn;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc == MDB_PANIC && !reopened) {
			reopened = 1;
			if ((ret = st_reopen(s)) == TH_OK)
				continue;
			break;
		}
		if (rc) {
			ret = th_lmdb_error(rc);
			break;
		}
		ret = TH_OK;
		for (size_t i = 0; i < n && ret == TH_OK; i++) {
			result_reset(&order[i]->result);
			ret = apply_one(s, txn, order[i], commit, now, &ch, &pb);
		}
		if (ret == TH_OK)
			ret = st_ncache_flush(s, txn);
		s->nc = NULL;
		/* every result names the key's rev after the whole group */
		for (size_t i = 0; i < n && ret == TH_OK; i++) {
			const th_report *r = order[i]->report;
			char key[MAX_KEY];
			size_t kl = r ? st_key3(key, r->unit, r->appendix, r->period) : 0;
			MDB_val k = {kl, key}, v;
			if (kl && mdb_get(txn, s->reports, &k, &v) == 0 && v.mv_size >= sizeof(rec_header)) {
				rec_header h;
				memcpy(&h, v.mv_data, sizeof h);
				order[i]->result.stored_rev = h.rev;
			}
		}
		if (ret == TH_OK) {
			MDB_val k = {6, "commit"}, v = {8, &commit};
			rc = mdb_put(txn, s->meta, &k, &v, 0);
			if (rc == 0 && s->hook)
				s->hook(s->hook_ctx);   /* the group written, not committed: tests hold it here */
			if (rc == 0)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
			if (rc == 0) {
				changes_free_index(&ch);
				/* what readers see in memory follows what they see in LMDB */
				for (size_t i = 0; i < pb.n; i++)
					st_bound_add(s, pb.v[i].appendix, pb.v[i].period, pb.v[i].version);
				__atomic_store_n(&s->last_commit, commit, __ATOMIC_RELEASE);
				*commit_id = commit;
				*commit_time = now;
				if (changed) {
					*changed = ch.v;
					*n_changed = ch.n;
				} else {
					free(ch.v);
				}
				break;
			}
			/* a short write at commit (disk full, a file-size limit) is EIO in
			 * LMDB: the store cannot take the group now; retry later */
			ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : rc == EIO ? TH_ENOSPC : th_lmdb_error(rc);
		} else {
			mdb_txn_abort(txn);
		}
		free(ch.v);
		changes_free_index(&ch);
		if (ret == TH_ESTORE && !reopened) {
			/* MDB_PANIC: the environment must be reopened; replay the group once */
			MDB_txn *probe;
			int pr = mdb_txn_begin(s->env, NULL, 0, &probe);
			if (pr == 0) {
				mdb_txn_abort(probe);
			} else if (pr == MDB_PANIC) {
				reopened = 1;
				if ((ret = st_reopen(s)) == TH_OK)
					continue;
				break;
			}
		}
		if (ret != TH_EMAPFULL)
			break;
		/* abort, grow, replay the whole group */
		if ((ret = st_grow(s)) != TH_OK)
			break;
	}
	s->nc = NULL;
	st_ncache_clear(s->ncmem);
	free(pb.v);
	if (ret != TH_OK)
		for (size_t i = 0; i < n; i++) {
			result_reset(&subs[i].result);
			result_set(&subs[i].result, TH_STORE_RETRY, ret == TH_ENOSPC ? TH_ENOSPC : ret, 0,
			           ret == TH_ENOSPC ? "the collector's store is full" : "store error");
		}
	free(order);
	return ret;
}

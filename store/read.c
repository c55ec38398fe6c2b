/* read.c -- reads: nodes, level tables, missing units, reports, history, revs in
 * scope, statistics. */
#include "store_private.h"
#include "th_rollup.h"
#include "th_canon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- reads --------------------------------------------------------------------------- */

void th_node_free(th_node *n)
{
	free(n->own);
	free(n->total);
	n->own = n->total = NULL;
}


static int fill_from(const th_def *d, const th_unit *x, uint32_t expected, node n, th_node *out);

static int fill_node(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                     const char *period, const th_unit *x, uint32_t expected, th_node *out)
{
	node n;
	int rc = st_node_get(s, txn, d, appendix, period, x->code, &n);
	if (rc)
		return rc;
	return fill_from(d, x, expected, n, out);
}

/* out from a node read (n is handed over). */
static int fill_from(const th_def *d, const th_unit *x, uint32_t expected, node n, th_node *out)
{
	memset(out, 0, sizeof *out);
	/* th_node's own and total are separate blocks (th_node_free) */
	if (!(out->total = malloc(d->n_slots * sizeof *out->total))) {
		st_node_release(&n);
		return TH_ENOMEM;
	}
	memcpy(out->total, n.total, d->n_slots * sizeof *out->total);
	snprintf(out->unit, sizeof out->unit, "%s", x->code);
	out->level = x->depth;
	out->own = n.own;
	out->expected = expected;
	out->reported = n.h.reported;
	out->on_time = n.h.on_time;
	out->late = n.h.late;
	out->corrections = n.h.corrections;
	out->version = n.h.version;
	out->commit = n.h.commit;
	return TH_OK;
}


int th_store_get_node(th_store *s, const char *appendix, const char *period, const char *unit,
                      th_node *out)
{
	if (!unit || !out)
		return TH_EINVAL;
	const th_def *d = st_def_in_force(s, appendix, period);
	if (!d)
		return TH_EAPPENDIX;
	if (!period || !th_period_valid(period))
		return TH_EPERIOD;
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	th_units *u = NULL;
	if ((rc = st_hier_lookup(s, txn, period, &u, NULL)) == 0) {
		long i = th_units_find(u, unit);
		uint32_t e = 0;
		if (i < 0)
			rc = TH_EUNIT;
		else if ((rc = st_expected_at(s, u, d, (size_t)i, &e)) == TH_OK)
			rc = fill_node(s, txn, d, appendix, period, th_units_at(u, (size_t)i), e, out);
	}
	st_read_end(s, txn);
	return rc;
}

int th_store_level(th_store *s, const char *appendix, const char *period, uint32_t level,
                   const char *parent, th_node_cb cb, void *ctx)
{
	const th_def *d = st_def_in_force(s, appendix, period);
	if (!d)
		return TH_EAPPENDIX;
	if (!period || !th_period_valid(period))
		return TH_EPERIOD;
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	th_units *u = NULL;
	uint32_t *e = NULL;
	MDB_val *val = NULL;
	if ((rc = st_hier_lookup(s, txn, period, &u, NULL)))
		goto out;
	if (!(e = st_expected_copy(s, u, d))) {
		rc = TH_ENOMEM;
		goto out;
	}
	long pi = -1;
	if (parent && (pi = th_units_find(u, parent)) < 0) {
		rc = TH_EUNIT;
		goto out;
	}
	/* one cursor pass over the appendix and period's nodes (a contiguous key
	 * range) instead of a B-tree lookup per unit; values stay valid until the
	 * read transaction ends */
	size_t nu = th_units_count(u);
	val = calloc(nu ? nu : 1, sizeof *val);
	MDB_cursor *c = NULL;
	char key[MAX_KEY];
	size_t pl = st_key3(key, appendix, period, "");
	if (!val || !pl) {
		rc = val ? TH_ETOOBIG : TH_ENOMEM;
		goto out;
	}
	if ((rc = mdb_cursor_open(txn, s->rollups, &c))) {
		rc = th_lmdb_error(rc);
		goto out;
	}
	MDB_val k = {pl, key}, v;
	for (int g = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); g == 0 && k.mv_size >= pl &&
	     !memcmp(k.mv_data, key, pl); g = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char code[TH_CODE_MAX + 1];
		size_t cl = k.mv_size - pl;
		if (cl > TH_CODE_MAX)
			continue;
		memcpy(code, (const char *)k.mv_data + pl, cl);
		code[cl] = 0;
		long i = th_units_find(u, code);
		if (i >= 0)
			val[i] = v;
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < nu && rc == 0; i++) {
		const th_unit *x = th_units_at(u, i);
		if (parent ? x->parent != pi : x->depth != level)
			continue;
		node n;
		th_node tn;
		if ((rc = st_node_from_val(d, val[i].mv_data ? &val[i] : NULL, &n)) ||
		    (rc = fill_from(d, x, e[i], n, &tn)))
			break;
		rc = cb(ctx, x, &tn);
		th_node_free(&tn);
	}
out:
	free(val);
	free(e);
	st_read_end(s, txn);
	return rc;
}

static int live_report(th_store *s, MDB_txn *txn, const char *unit, const char *appendix,
                       const char *period)
{
	char key[MAX_KEY];
	size_t kl = st_key3(key, unit, appendix, period);
	MDB_val k = {kl, key}, v;
	if (!kl || mdb_get(txn, s->reports, &k, &v) || v.mv_size < sizeof(rec_header))
		return 0;
	rec_header h;
	memcpy(&h, v.mv_data, sizeof h);
	return !h.tombstone;
}

int th_store_missing(th_store *s, const char *appendix, const char *period, const char *unit,
                     th_node_cb cb, void *ctx)
{
	const th_def *d = st_def_in_force(s, appendix, period);
	if (!d)
		return TH_EAPPENDIX;
	if (!period || !th_period_valid(period))
		return TH_EPERIOD;
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	th_units *u = NULL;
	if ((rc = st_hier_lookup(s, txn, period, &u, NULL)) == 0) {
		long top = unit ? th_units_find(u, unit) : (long)th_units_root(u);
		if (top < 0)
			rc = TH_EUNIT;
		for (size_t i = 0; top >= 0 && i < th_units_count(u) && rc == 0; i++) {
			const th_unit *x = th_units_at(u, i);
			if (!th_def_expects(d, x->kind, x->code) || !th_units_in_subtree(u, (size_t)top, i) ||
			    live_report(s, txn, x->code, appendix, period))
				continue;
			th_node n;
			memset(&n, 0, sizeof n);
			snprintf(n.unit, sizeof n.unit, "%s", x->code);
			n.level = x->depth;
			rc = cb(ctx, x, &n);
		}
	}
	st_read_end(s, txn);
	return rc;
}

static void info_from(const rec_header *h, th_revision_info *info)
{
	memset(info, 0, sizeof *info);
	info->rev = h->rev;
	info->commit_time = h->commit_time;
	info->commit = h->commit;
	snprintf(info->sender, sizeof info->sender, "%s", h->sender);
	memcpy(info->hash, h->hash, TH_HASH_LEN);
	info->tombstone = h->tombstone;
}

int st_decode_record(th_store *s, const MDB_val *v, const char *unit, const char *appendix,
                        const char *period, th_report **out, rec_header *h)
{
	if (v->mv_size < sizeof *h)
		return TH_ESTORE;
	memcpy(h, v->mv_data, sizeof *h);
	const th_def *d = s->defs ? th_defset_get(s->defs, appendix, h->version) : NULL;
	if (!d)
		return TH_EAPPENDIX;
	return th_canon_decode((const uint8_t *)v->mv_data + sizeof *h, v->mv_size - sizeof *h, d, unit,
	                        period, h->rev, out);
}

int th_store_rev(th_store *s, const char *unit, const char *appendix, const char *period,
                 uint64_t *rev)
{
	char key[MAX_KEY];
	size_t kl = st_key3(key, unit, appendix, period);
	if (!kl || !rev)
		return TH_EINVAL;
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_val k = {kl, key}, v;
	rc = mdb_get(txn, s->reports, &k, &v);
	rc = rc ? th_lmdb_error(rc) : v.mv_size < sizeof(rec_header) ? TH_ESTORE : TH_OK;
	if (rc == TH_OK) {
		rec_header h;
		memcpy(&h, v.mv_data, sizeof h);
		*rev = h.rev;
	}
	st_read_end(s, txn);
	return rc;
}

int th_store_get_report(th_store *s, const char *unit, const char *appendix, const char *period,
                        th_report **out, th_revision_info *info)
{
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	char key[MAX_KEY];
	size_t kl = st_key3(key, unit, appendix, period);
	MDB_val k = {kl, key}, v;
	rc = kl ? mdb_get(txn, s->reports, &k, &v) : MDB_NOTFOUND;
	if (rc) {
		st_read_end(s, txn);
		return th_lmdb_error(rc);
	}
	rec_header h;
	th_report *r = NULL;
	rc = st_decode_record(s, &v, unit, appendix, period, &r, &h);
	st_read_end(s, txn);
	if (rc)
		return rc;
	if (info)
		info_from(&h, info);
	*out = r;
	return TH_OK;
}

int th_store_history(th_store *s, const char *unit, const char *appendix, const char *period,
                     th_revision_cb cb, void *ctx)
{
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	char key[MAX_KEY + 1];
	size_t kl = st_key3(key, unit, appendix, period);
	if (!kl) {
		st_read_end(s, txn);
		return TH_ETOOBIG;
	}
	key[kl++] = 0;
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, s->history, &c))) {
		st_read_end(s, txn);
		return th_lmdb_error(rc);
	}
	MDB_val k = {kl, key}, v;
	int found = 0;
	uint64_t last = 0;
	/* the superseded revisions in rev order, then the latest (from reports) */
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == kl + 8 && memcmp(k.mv_data, key, kl) == 0) {
		rec_header h;
		th_report *r = NULL;
		if (st_decode_record(s, &v, unit, appendix, period, &r, &h) == 0) {
			th_revision_info info;
			info_from(&h, &info);
			int cr = cb(ctx, &info, r);
			th_report_destroy(&r);
			found++;
			last = h.rev;
			if (cr) {
				rc = cr;
				break;
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND || rc == 0) {
		MDB_val rk = {kl - 1, key}, rv;
		rc = mdb_get(txn, s->reports, &rk, &rv);
		rec_header h;
		th_report *r = NULL;
		/* a format-1 store not yet upgraded also keeps the latest in history */
		if (rc == 0 && st_decode_record(s, &rv, unit, appendix, period, &r, &h) == 0 &&
		    (!found || h.rev > last)) {
			th_revision_info info;
			info_from(&h, &info);
			rc = cb(ctx, &info, r);
			found++;
		}
		th_report_destroy(&r);
	}
	st_read_end(s, txn);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc)
		return rc < 0 ? rc : th_lmdb_error(rc);
	return found ? TH_OK : TH_ENOTFOUND;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int th_store_revs_in_scope(th_store *s, const char *unit, th_rev_cb cb, void *ctx)
{
	if (!unit || !cb)
		return TH_EINVAL;
	MDB_txn *txn;
	size_t nh = 0;
	th_units **hv = st_hier_snapshot(s, &nh);   /* the versions as they are now */
	if (!hv)
		return TH_ENOMEM;
	int rc = st_read_txn(s, &txn);
	if (rc) {
		free(hv);
		return rc;
	}
	int ret = TH_OK;
	/* the root of every version (an admin or the insecure demo peer): every
	 * stored report is in scope; one sequential scan */
	int all = nh > 0;
	for (size_t h = 0; h < nh && all; h++)
		all = th_units_find(hv[h], unit) == (long)th_units_root(hv[h]);
	if (all) {
		MDB_cursor *ac;
		if ((rc = mdb_cursor_open(txn, s->reports, &ac))) {
			st_read_end(s, txn);
			free(hv);
			return th_lmdb_error(rc);
		}
		MDB_val k, v;
		for (rc = mdb_cursor_get(ac, &k, &v, MDB_FIRST); rc == 0 && ret == TH_OK;
		     rc = mdb_cursor_get(ac, &k, &v, MDB_NEXT)) {
			char key[MAX_KEY + 1];
			const char *ru, *ra, *rp;
			if (st_split3(&k, key, &ru, &ra, &rp) || v.mv_size < sizeof(rec_header))
				continue;
			rec_header h;
			memcpy(&h, v.mv_data, sizeof h);
			ret = cb(ctx, ru, ra, rp, h.rev);
		}
		if (rc && rc != MDB_NOTFOUND && ret == TH_OK)
			ret = th_lmdb_error(rc);
		mdb_cursor_close(ac);
		st_read_end(s, txn);
		free(hv);
		return ret;
	}
	/* candidate units: the subtree of unit in any known hierarchy version; each
	 * is a prefix scan of `reports` (keys start with the unit) */
	const char **codes = NULL;
	size_t nc = 0, cap = 0;
	for (size_t h = 0; h < nh && ret == TH_OK; h++) {
		long top = th_units_find(hv[h], unit);
		for (size_t i = 0; top >= 0 && i < th_units_count(hv[h]); i++) {
			if (!th_units_in_subtree(hv[h], (size_t)top, i))
				continue;
			if (nc == cap) {
				cap = cap ? cap * 2 : 64;
				const char **n = realloc(codes, cap * sizeof *n);
				if (!n) {
					ret = TH_ENOMEM;
					break;
				}
				codes = n;
			}
			codes[nc++] = th_units_at(hv[h], i)->code;
		}
	}
	if (nc)
		qsort(codes, nc, sizeof *codes, cmp_str);
	MDB_cursor *c = NULL;
	if (ret == TH_OK && (rc = mdb_cursor_open(txn, s->reports, &c)))
		ret = th_lmdb_error(rc);
	for (size_t i = 0; i < nc && ret == TH_OK; i++) {
		if (i && !strcmp(codes[i], codes[i - 1]))
			continue;
		size_t pl = strlen(codes[i]) + 1;   /* "code\0" */
		MDB_val k = {pl, (void *)codes[i]}, v;
		for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		     rc == 0 && k.mv_size > pl && !memcmp(k.mv_data, codes[i], pl) && ret == TH_OK;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			char key[MAX_KEY + 1];
			const char *ru, *ra, *rp;
			if (st_split3(&k, key, &ru, &ra, &rp) || v.mv_size < sizeof(rec_header))
				continue;
			th_units *u = NULL;
			if (st_hier_lookup(s, txn, rp, &u, NULL) != 0)
				continue;
			long top = th_units_find(u, unit), me = th_units_find(u, ru);
			if (top < 0 || me < 0 || !th_units_in_subtree(u, (size_t)top, (size_t)me))
				continue;
			rec_header h;
			memcpy(&h, v.mv_data, sizeof h);
			ret = cb(ctx, ru, ra, rp, h.rev);
		}
		if (rc && rc != MDB_NOTFOUND && ret == TH_OK)
			ret = th_lmdb_error(rc);
	}
	if (c)
		mdb_cursor_close(c);
	free(codes);
	st_read_end(s, txn);
	free(hv);
	return ret;
}


int th_store_stats_get(th_store *s, th_store_stats *out)
{
	memset(out, 0, sizeof *out);
	MDB_txn *txn;
	int rc = st_read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_stat st;
	if (mdb_stat(txn, s->reports, &st) == 0)
		out->reports = st.ms_entries;
	if (mdb_stat(txn, s->history, &st) == 0)   /* superseded ones (format 1: all) */
		out->revisions = st.ms_entries + (s->format == 1 ? 0 : out->reports);
	MDB_val k = {6, "commit"}, v;
	if (mdb_get(txn, s->meta, &k, &v) == 0 && v.mv_size == 8)
		memcpy(&out->commits, v.mv_data, 8);
	/* inside the read's lock: the map is not resized meanwhile */
	MDB_envinfo info;
	MDB_stat es;
	if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &es) == 0) {
		out->map_size = info.me_mapsize;
		out->used_bytes = (info.me_last_pgno + 1) * (size_t)es.ms_psize;
	}
	st_read_end(s, txn);
	return TH_OK;
}

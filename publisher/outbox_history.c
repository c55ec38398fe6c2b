/* outbox_history.c -- the history of every content ever stamped (OUTBOX.md
 * "Keys": history) and its retention ("Retention"): bounded, durable pruning
 * passes that never remove what the agent needs. */
#include "outbox_private.h"
#include "th_lmdb.h"

#include <stdlib.h>
#include <string.h>

/* history value: u64 LE rev, u8 state, u64 LE stamped-at (µs) */
int ob_history_read(const MDB_val *v, uint64_t *rev, th_ob_state *st, int64_t *created)
{
	if (v->mv_size < 17)
		return TH_ESTORE;
	ob_rd r = {v->mv_data, v->mv_size, 0, 0};
	*rev = ob_get_u64(&r);
	*st = (th_ob_state)ob_get_u8(&r);
	*created = (int64_t)ob_get_u64(&r);
	return r.bad ? TH_ESTORE : 0;
}

int ob_put_history(th_outbox *ob, MDB_txn *txn, const uint8_t *prefix, size_t plen,
                   const uint8_t *hash, uint64_t rev, th_ob_state st, int64_t created)
{
	uint8_t k[OB_KEY_MAX];
	memcpy(k, prefix, plen);
	memcpy(k + plen, hash, TH_HASH_LEN);
	ob_buf b = {0};
	ob_put_u64(&b, rev);
	ob_put_u8(&b, (uint8_t)st);
	ob_put_u64(&b, (uint64_t)created);
	if (b.oom)
		return TH_ENOMEM;
	int rc = ob_put(txn, ob->history, k, plen + TH_HASH_LEN, b.p, b.len);
	free(b.p);
	return rc;
}

int th_outbox_history_get(th_outbox *ob, const char *unit, const char *appendix,
                          const char *period, const uint8_t hash[TH_HASH_LEN], th_ob_hist *out)
{
	uint8_t k[OB_KEY_MAX];
	int kl = ob_key(k, unit, appendix, period, hash, TH_HASH_LEN);
	if (kl < 0)
		return kl;
	MDB_txn *txn;
	int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val v;
	th_ob_hist h;
	rc = ob_get(txn, ob->history, k, (size_t)kl, &v);
	if (rc == 0)
		rc = ob_history_read(&v, &h.rev, &h.state, &h.created);
	mdb_txn_abort(txn);
	if (rc == 0)
		*out = h;
	return rc;
}

/* --- retention: pruning the history ---------------------------------------------------- */
#define OB_PRUNE_BATCH 1000
#define OB_PRUNE_SCAN 20000

typedef struct hent {
	uint8_t hash[TH_HASH_LEN];
	uint64_t rev;
	int64_t created;
	int ok;                     /* the value was readable */
} hent;

typedef struct prune_ctx {
	const th_ob_retention *rt;
	int64_t cutoff;             /* entries stamped before this may go */
	size_t batch, scan;
	/* where the next transaction starts (len 0: the first key) and what
	 * is done, as of the last commit */
	uint8_t resume[512];
	size_t resume_len;
	int done;
	th_ob_prune_stats st;
	/* the same during a transaction (copied back after its commit) */
	uint8_t t_resume[512];
	size_t t_resume_len;
	int t_done;
	th_ob_prune_stats t_st;
	/* scratch */
	hent *h;
	size_t h_cap;
	uint64_t *keep;
	size_t keep_cap;
} prune_ctx;

static int cmp_u64_desc(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

static int keep_add(prune_ctx *x, size_t *n, uint64_t rev)
{
	if (*n == x->keep_cap) {
		size_t nc = x->keep_cap ? x->keep_cap * 2 : 16;
		uint64_t *nk = realloc(x->keep, nc * sizeof *nk);
		if (!nk)
			return TH_ENOMEM;
		x->keep = nk;
		x->keep_cap = nc;
	}
	x->keep[(*n)++] = rev;
	return 0;
}

/* The revs of a key held in pending or rejected (key RK be64(rev)). */
static int table_revs(prune_ctx *x, MDB_txn *txn, MDB_dbi dbi, const uint8_t *pk, size_t pl,
                      size_t *n)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, dbi, &c);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val k = {pl, (void *)pk}, v;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= pl && memcmp(k.mv_data, pk, pl) == 0) {
		if (k.mv_size == pl + 8) {
			int arc = keep_add(x, n, ob_rd_be64((const uint8_t *)k.mv_data + pl));
			if (arc) {
				mdb_cursor_close(c);
				return arc;
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : th_lmdb_error(rc);
}

/* One bounded transaction: whole keys (their history entries) from
 * t_resume on, until batch deletions or scan entries looked at. */
static int prune_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	prune_ctx *x = vctx;
	memcpy(x->t_resume, x->resume, x->resume_len);
	x->t_resume_len = x->resume_len;
	x->t_done = 0;
	x->t_st = x->st;
	size_t deleted = 0, scanned = 0;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, ob->history, &c);
	if (rc)
		return th_lmdb_error(rc);
	while (deleted < x->batch && scanned < x->scan) {
		MDB_val k = {x->t_resume_len, x->t_resume}, v;
		int mrc = x->t_resume_len ? mdb_cursor_get(c, &k, &v, MDB_SET_RANGE)
		                          : mdb_cursor_get(c, &k, &v, MDB_FIRST);
		if (mrc == MDB_NOTFOUND) {
			x->t_done = 1;
			break;
		}
		if (mrc) {
			rc = th_lmdb_error(mrc);
			goto out;
		}
		/* the key's prefix [u8 n][n bytes] */
		uint8_t pk[OB_KEY_MAX];
		const uint8_t *kd = k.mv_data;
		size_t pl = k.mv_size ? 1 + (size_t)kd[0] : 0;
		if (!pl || pl > k.mv_size || pl > sizeof pk)
			goto skip;
		memcpy(pk, kd, pl);
		size_t nh = 0;
		while (mrc == 0 && k.mv_size >= pl && memcmp(k.mv_data, pk, pl) == 0) {
			if (nh == x->h_cap) {
				size_t nc = x->h_cap ? x->h_cap * 2 : 64;
				hent *nhp = realloc(x->h, nc * sizeof *nhp);
				if (!nhp) {
					rc = TH_ENOMEM;
					goto out;
				}
				x->h = nhp;
				x->h_cap = nc;
			}
			hent *h = &x->h[nh];
			memset(h, 0, sizeof *h);
			th_ob_state hst;
			if (k.mv_size == pl + TH_HASH_LEN &&
			    ob_history_read(&v, &h->rev, &hst, &h->created) == 0) {
				memcpy(h->hash, (const uint8_t *)k.mv_data + pl, TH_HASH_LEN);
				h->ok = 1;
			}
			nh++;
			mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		}
		scanned += nh;
		x->t_st.scanned += nh;
		x->t_st.keys++;
		/* the next key, copied before any deletion moves page contents */
		uint8_t nextk[512];
		size_t nextl = 0;
		if (mrc == 0) {
			if (k.mv_size > sizeof nextk) {
				rc = TH_ESTORE;
				goto out;
			}
			memcpy(nextk, k.mv_data, k.mv_size);
			nextl = k.mv_size;
		} else if (mrc != MDB_NOTFOUND) {
			rc = th_lmdb_error(mrc);
			goto out;
		}
		/* what the agent needs: the acknowledged, pending and rejected
		 * revisions of the key, and the `revs` most recent contents */
		size_t nk = 0;
		MDB_val av;
		int grc = ob_get(txn, ob->acked, pk, pl, &av);
		if (grc == 0) {
			th_ob_entry e;
			if (ob_dec_entry(&av, &e, NULL) == 0) {
				grc = keep_add(x, &nk, e.rev);
				th_ob_entry_free(&e);
			}
		}
		if (grc && grc != TH_ENOTFOUND) {
			rc = grc;
			goto out;
		}
		if ((rc = table_revs(x, txn, ob->pending, pk, pl, &nk)) != 0 ||
		    (rc = table_revs(x, txn, ob->rejected, pk, pl, &nk)) != 0)
			goto out;
		uint64_t top = 0;   /* contents with rev >= top are among the most recent */
		int any_top = 0;
		if (x->rt->revs > 0) {
			uint64_t *rs = malloc((nh ? nh : 1) * sizeof *rs);
			if (!rs) {
				rc = TH_ENOMEM;
				goto out;
			}
			size_t nr = 0;
			for (size_t i = 0; i < nh; i++)
				if (x->h[i].ok)
					rs[nr++] = x->h[i].rev;
			qsort(rs, nr, sizeof *rs, cmp_u64_desc);
			any_top = 1;
			top = nr > x->rt->revs ? rs[x->rt->revs - 1] : 0;
			free(rs);
		}
		int partial = 0;
		for (size_t i = 0; i < nh; i++) {
			const hent *h = &x->h[i];
			if (!h->ok || (any_top && h->rev >= top) || h->created >= x->cutoff)
				continue;
			int needed = 0;
			for (size_t j = 0; j < nk && !needed; j++)
				needed = x->keep[j] == h->rev;
			if (needed)
				continue;
			if (deleted == x->batch) {
				partial = 1;   /* the rest of this key in the next transaction */
				break;
			}
			uint8_t hk[OB_KEY_MAX];
			memcpy(hk, pk, pl);
			memcpy(hk + pl, h->hash, TH_HASH_LEN);
			if ((rc = ob_del(txn, ob->history, hk, pl + TH_HASH_LEN)) != 0)
				goto out;
			deleted++;
			x->t_st.pruned++;
		}
		if (partial) {
			memcpy(x->t_resume, pk, pl);
			x->t_resume_len = pl;
			x->t_st.keys--;   /* visited again */
			break;
		}
		if (mrc == MDB_NOTFOUND) {
			x->t_done = 1;
			break;
		}
		memcpy(x->t_resume, nextk, nextl);
		x->t_resume_len = nextl;
		continue;
skip:
		/* a key this agent does not write: kept, stepped over */
		scanned++;
		x->t_st.scanned++;
		mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
		if (mrc == MDB_NOTFOUND) {
			x->t_done = 1;
			break;
		}
		if (mrc || k.mv_size > sizeof x->t_resume) {
			rc = mrc ? th_lmdb_error(mrc) : TH_ESTORE;
			goto out;
		}
		memcpy(x->t_resume, k.mv_data, k.mv_size);
		x->t_resume_len = k.mv_size;
	}
out:
	mdb_cursor_close(c);
	if (rc)
		return rc;
	return deleted ? 0 : 1;
}

int th_outbox_prune(th_outbox *ob, const th_ob_retention *rt, int64_t now_us,
                    th_ob_prune_stats *stats)
{
	if (!ob || !rt || rt->days < 0)
		return TH_EINVAL;
	prune_ctx *x = calloc(1, sizeof *x);
	if (!x)
		return TH_ENOMEM;
	x->rt = rt;
	int64_t span = rt->days > INT64_MAX / 86400000000LL ? INT64_MAX : rt->days * 86400000000LL;
	x->cutoff = now_us > INT64_MIN + span ? now_us - span : INT64_MIN;
	x->batch = rt->batch ? rt->batch : OB_PRUNE_BATCH;
	x->scan = rt->scan ? rt->scan : OB_PRUNE_SCAN;
	int rc = 0;
	while (!x->done) {
		rc = ob_write(ob, prune_fn, x);
		if (rc < 0)
			break;
		/* committed (0) or nothing to delete (1): either way this stretch
		 * of keys is done */
		memcpy(x->resume, x->t_resume, x->t_resume_len);
		x->resume_len = x->t_resume_len;
		x->done = x->t_done;
		x->st = x->t_st;
		if (rc == 0) {
			x->st.txns++;
			if (rt->progress && rt->progress(rt->ctx, &x->st)) {
				rc = 0;
				break;
			}
		}
		rc = 0;
	}
	if (stats)
		*stats = x->st;
	free(x->h);
	free(x->keep);
	free(x);
	return rc;
}


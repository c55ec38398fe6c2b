/* outbox_records.c -- stamping and queueing reports (one report, or many in
 * one transaction), listing the tables, pending lookups (OUTBOX.md "Life of a
 * report", "Decisions"). */
#include "outbox_private.h"
#include "th_lmdb.h"

#include <stdlib.h>
#include <string.h>

typedef struct enq_ctx {
	const th_report *r;
	const th_def *def;
	const uint8_t *hash;
	const char *file;
	int force;
	int64_t now;
	th_ob_enqueued *res;
} enq_ctx;

/* The highest pending rev of a key (0 when none), its hash and state. */
static int last_pending(th_outbox *ob, MDB_txn *txn, const uint8_t *prefix, size_t plen,
                        uint64_t *rev, uint8_t hash[TH_HASH_LEN], th_ob_state *st)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, ob->pending, &c);
	if (rc)
		return th_lmdb_error(rc);
	*rev = 0;
	MDB_val k = {plen, (void *)prefix}, v;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == plen + 8 && memcmp(k.mv_data, prefix, plen) == 0) {
		th_ob_entry e;
		if (ob_dec_entry(&v, &e, NULL) == 0) {
			if (e.rev >= *rev) {
				*rev = e.rev;
				memcpy(hash, e.hash, TH_HASH_LEN);
				*st = e.state;
			}
			th_ob_entry_free(&e);
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : th_lmdb_error(rc);
}

/* Writes the stamped entry (pending, revs, history) of x->r as rev. */
static int stamp(th_outbox *ob, MDB_txn *txn, const enq_ctx *x, const uint8_t *pk, size_t pl,
                 uint64_t rev)
{
	const th_report *r = x->r;
	th_ob_entry e = {0};
	e.unit = r->unit;
	e.appendix = r->appendix;
	e.period = r->period;
	e.rev = rev;
	e.version = r->version;
	memcpy(e.hash, x->hash, TH_HASH_LEN);
	e.created = x->now;
	e.updated = x->now;
	e.file = (char *)(x->file ? x->file : "");
	e.message = "";
	e.column = "";
	e.state = TH_OB_PENDING;
	ob_buf rb = {0};
	int rc = ob_enc_blob(&rb, r, x->def);
	if (rc) {
		free(rb.p);
		return rc;
	}
	ob_blob blob = {rb.p, rb.len, OB_BLOB_CANON};
	ob_buf b = {0};
	ob_enc_entry(&b, &e, &blob);
	free(rb.p);
	if (b.oom) {
		free(b.p);
		return TH_ENOMEM;
	}
	uint8_t k[OB_KEY_MAX];
	memcpy(k, pk, pl);
	ob_be64(k + pl, rev);
	rc = ob_put(txn, ob->pending, k, pl + 8, b.p, b.len);
	free(b.p);
	if (!rc)
		rc = ob_put_u64_val(txn, ob->revs, pk, pl, rev);
	if (!rc)
		rc = ob_put_history(ob, txn, pk, pl, x->hash, rev, TH_OB_PENDING, x->now);
	return rc;
}

/* One report in txn: 0 stamped and written, 1 nothing to write (x->res
 * says why), or a negative TH_E*. */
static int enq_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	enq_ctx *x = vctx;
	const th_report *r = x->r;
	uint8_t pk[OB_KEY_MAX];
	int pl = ob_key(pk, r->unit, r->appendix, r->period, NULL, 0);
	if (pl < 0)
		return pl;
	memset(x->res, 0, sizeof *x->res);

	/* the latest revision we hold: pending or acknowledged */
	uint64_t prev = 0, arev = 0;
	uint8_t phash[TH_HASH_LEN], ahash[TH_HASH_LEN];
	th_ob_state pst = TH_OB_PENDING, ast = TH_OB_PENDING;
	int rc = last_pending(ob, txn, pk, (size_t)pl, &prev, phash, &pst);
	if (rc)
		return rc;
	MDB_val v;
	rc = ob_get(txn, ob->acked, pk, (size_t)pl, &v);
	if (rc == 0) {
		th_ob_entry e;
		if (ob_dec_entry(&v, &e, NULL) == 0) {
			arev = e.rev;
			ast = e.state;
			memcpy(ahash, e.hash, TH_HASH_LEN);
			th_ob_entry_free(&e);
		}
	} else if (rc != TH_ENOTFOUND) {
		return rc;
	}
	if (prev && prev >= arev && memcmp(phash, x->hash, TH_HASH_LEN) == 0) {
		x->res->outcome = TH_OB_SAME_PENDING;
		x->res->rev = prev;
		x->res->state = TH_OB_PENDING;
		return 1;   /* nothing to write */
	}
	if (arev && arev > prev && ast != TH_OB_STALE &&
	    memcmp(ahash, x->hash, TH_HASH_LEN) == 0) {
		x->res->outcome = TH_OB_SAME_DELIVERED;
		x->res->rev = arev;
		x->res->state = ast;
		return 1;
	}
	uint8_t hk[OB_KEY_MAX];
	memcpy(hk, pk, (size_t)pl);
	memcpy(hk + pl, x->hash, TH_HASH_LEN);
	rc = ob_get(txn, ob->history, hk, (size_t)pl + TH_HASH_LEN, &v);
	uint64_t hrev;
	th_ob_state hst;
	int64_t hwhen;
	if (rc == 0 && ob_history_read(&v, &hrev, &hst, &hwhen) == 0 && !x->force) {
		x->res->rev = hrev;
		x->res->state = hst;
		x->res->when = hwhen;
		x->res->latest_rev = prev > arev ? prev : arev;
		x->res->outcome = hst == TH_OB_STALE ? TH_OB_SAME_STALE : TH_OB_OLD_CONTENT;
		/* content rejected before may be sent again (the collector's
		 * rules or the hierarchy may have changed); otherwise refuse */
		if (hst != TH_OB_REJECTED)
			return 1;
	} else if (rc != 0 && rc != TH_ENOTFOUND) {
		return rc;
	}

	/* stamp: rev = max(last + 1, now) */
	uint64_t last = 0;
	rc = ob_get(txn, ob->revs, pk, (size_t)pl, &v);
	if (rc == 0)
		last = (uint64_t)ob_val_i64(&v);
	else if (rc != TH_ENOTFOUND)
		return rc;
	if (prev > last)
		last = prev;
	if (arev > last)
		last = arev;
	uint64_t rev = (uint64_t)x->now > last + 1 ? (uint64_t)x->now : last + 1;
	rc = stamp(ob, txn, x, pk, (size_t)pl, rev);
	if (rc)
		return rc;
	x->res->outcome = TH_OB_NEW;
	x->res->rev = rev;
	x->res->state = TH_OB_PENDING;
	return 0;
}

int th_outbox_enqueue(th_outbox *ob, const th_report *r, const th_def *def,
                      const uint8_t hash[TH_HASH_LEN], const char *file, int force, int64_t now_us,
                      th_ob_enqueued *res)
{
	if (!ob || !r || !def || !hash || !res)
		return TH_EINVAL;
	th_ob_enqueued tmp;
	enq_ctx x = {r, def, hash, file, force, now_us, &tmp};
	int rc = ob_write(ob, enq_fn, &x);
	if (rc == 1)
		rc = 0;   /* nothing written: the transaction was aborted on purpose */
	if (rc == 0)
		*res = tmp;
	return rc;
}

/* --- enqueue many ------------------------------------------------------------------- */
typedef struct many_ctx {
	th_ob_item *items;
	size_t n;
	int force;
	int64_t now;
} many_ctx;

/* Every item in the one transaction.  An item whose key cannot be built
 * fails alone (nothing of it was written); any other failure aborts the
 * whole transaction.  1 when nothing was written. */
static int many_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	many_ctx *x = vctx;
	int wrote = 0;
	for (size_t i = 0; i < x->n; i++) {
		th_ob_item *it = &x->items[i];
		memset(&it->res, 0, sizeof it->res);
		it->rc = 0;
		if (!it->r || !it->def || !it->hash) {
			it->rc = TH_EINVAL;
			continue;
		}
		uint8_t pk[OB_KEY_MAX];
		int pl = ob_key(pk, it->r->unit, it->r->appendix, it->r->period, NULL, 0);
		if (pl < 0) {
			it->rc = pl;
			continue;
		}
		enq_ctx e = {it->r, it->def, it->hash, it->file, x->force, x->now, &it->res};
		int rc = enq_fn(ob, txn, &e);
		if (rc == TH_EINVAL || rc == TH_ERANGE) {
			it->rc = rc;   /* the report does not fit its definition: nothing of it written */
			continue;
		}
		if (rc < 0)
			return rc;
		wrote |= rc == 0;
	}
	return wrote ? 0 : 1;
}

int th_outbox_enqueue_many(th_outbox *ob, th_ob_item *items, size_t n, int force,
                           int64_t now_us)
{
	if (!ob || (!items && n))
		return TH_EINVAL;
	if (!n)
		return 0;
	many_ctx x = {items, n, force, now_us};
	int rc = ob_write(ob, many_fn, &x);
	if (rc == 1)
		rc = 0;
	if (rc == 0)
		return 0;
	/* the shared transaction failed: nothing of it was written.  Each item
	 * in a transaction of its own, so that one that cannot be written does
	 * not hold back the others (slow, but only on this error path). */
	int any = 0;
	for (size_t i = 0; i < n; i++) {
		th_ob_item *it = &items[i];
		it->rc = th_outbox_enqueue(ob, it->r, it->def, it->hash, it->file, force, now_us,
		                           &it->res);
		any |= it->rc == 0;
	}
	return any ? 0 : rc;
}

/* --- listing ------------------------------------------------------------------------ */
int th_outbox_list(th_outbox *ob, th_ob_table t, const th_defset *defs, th_ob_cb cb, void *ctx)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return th_lmdb_error(rc);
	MDB_cursor *c;
	rc = mdb_cursor_open(txn, ob_table_dbi(ob, t), &c);
	if (rc) {
		mdb_txn_abort(txn);
		return th_lmdb_error(rc);
	}
	MDB_val k, v;
	int out = 0;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		th_ob_entry e;
		ob_blob blob;
		if (ob_dec_entry(&v, &e, &blob) != 0)
			continue;   /* unreadable entry: skipped (OUTBOX.md) */
		if (ob_entry_report(&e, &blob, defs) != 0) {
			th_ob_entry_free(&e);
			continue;
		}
		out = cb(ctx, &e);
		th_ob_entry_free(&e);
		if (out)
			break;
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (out)
		return out;
	return rc == 0 || rc == MDB_NOTFOUND ? 0 : th_lmdb_error(rc);
}

int th_outbox_get_pending(th_outbox *ob, const char *unit, const char *appendix,
                          const char *period, uint64_t rev, const th_defset *defs,
                          th_ob_entry *out)
{
	uint8_t k[OB_KEY_MAX], r8[8];
	ob_be64(r8, rev);
	int kl = ob_key(k, unit, appendix, period, r8, 8);
	if (kl < 0)
		return kl;
	MDB_txn *txn;
	int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val v;
	th_ob_entry e;
	ob_blob blob;
	rc = ob_get(txn, ob->pending, k, (size_t)kl, &v);
	if (rc == 0)
		rc = ob_dec_entry(&v, &e, &blob);
	if (rc == 0 && (rc = ob_entry_report(&e, &blob, defs)) != 0)
		th_ob_entry_free(&e);
	mdb_txn_abort(txn);
	if (rc == 0)
		*out = e;
	return rc;
}

/* outbox_acks.c -- what the collector's answers do to the outbox (OUTBOX.md
 * "Life of a report" 2.): acks, the agent's own rejections, sends counted,
 * revs learned from a welcome, and the acknowledged revisions queued again
 * after the collector's store changed ("Decisions": restored collector). */
#include "outbox_private.h"
#include "th_lmdb.h"

#include <stdlib.h>
#include <string.h>

static char *dup0(const char *s) { return strdup(s ? s : ""); }

/* Removes rejected entries of a key with a rev below rev. */
static int clear_rejected(th_outbox *ob, MDB_txn *txn, const uint8_t *pk, size_t pl, uint64_t rev)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, ob->rejected, &c);
	if (rc)
		return th_lmdb_error(rc);
	uint64_t revs[64];
	size_t n = 0;
	MDB_val k = {pl, (void *)pk}, v;
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && n < 64 && k.mv_size == pl + 8 && memcmp(k.mv_data, pk, pl) == 0) {
		uint64_t r = ob_rd_be64((const uint8_t *)k.mv_data + pl);
		if (r < rev)
			revs[n++] = r;
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return th_lmdb_error(rc);
	for (size_t i = 0; i < n; i++) {
		uint8_t key[OB_KEY_MAX];
		memcpy(key, pk, pl);
		ob_be64(key + pl, revs[i]);
		rc = ob_del(txn, ob->rejected, key, pl + 8);
		if (rc)
			return rc;
	}
	return 0;
}

/* accepted / duplicate / stale: e (the answered entry, its report blob)
 * leaves pending; acked[RK] keeps the highest acknowledged rev. */
static int ack_final(th_outbox *ob, MDB_txn *txn, const th_ack *a, const th_ack_result *res,
                     th_ob_entry *e, const ob_blob *blob, const uint8_t *pk, size_t pl,
                     const uint8_t *k, size_t kl)
{
	e->state = res->status == TH_ACK_ACCEPTED ? TH_OB_ACCEPTED :
	           res->status == TH_ACK_DUPLICATE ? TH_OB_DUPLICATE : TH_OB_STALE;
	memcpy(e->store, a->store, TH_STORE_UUID_LEN);
	e->commit = a->commit;
	e->commit_time = a->commit_time;
	e->resend = 0;
	/* the acked table keeps the highest acknowledged rev of the key; a stale
	 * answer only fills it when nothing else is there */
	int keep = 1, rc = 0;
	MDB_val av;
	int grc = ob_get(txn, ob->acked, pk, pl, &av);
	if (grc == 0) {
		th_ob_entry old;
		if (ob_dec_entry(&av, &old, NULL) == 0) {
			if (old.rev > e->rev || (e->state == TH_OB_STALE && old.state != TH_OB_STALE))
				keep = 0;
			th_ob_entry_free(&old);
		}
	} else if (grc != TH_ENOTFOUND) {
		return grc;
	}
	if (keep) {
		ob_buf b = {0};
		ob_enc_entry(&b, e, blob);
		rc = b.oom ? TH_ENOMEM : ob_put(txn, ob->acked, pk, pl, b.p, b.len);
		free(b.p);
	}
	if (!rc)
		rc = ob_del(txn, ob->pending, k, kl);
	if (!rc)
		rc = ob_put_history(ob, txn, pk, pl, e->hash, e->rev, e->state, e->created);
	if (!rc && e->state != TH_OB_STALE)
		rc = clear_rejected(ob, txn, pk, pl, e->rev);
	if (!rc && e->state != TH_OB_STALE)
		rc = ob_put(txn, ob->meta, "store", 5, a->store, TH_STORE_UUID_LEN);
	if (!rc && res->stored_rev) {
		MDB_val rv;
		uint64_t last = 0;
		if (ob_get(txn, ob->revs, pk, pl, &rv) == 0)
			last = (uint64_t)ob_val_i64(&rv);
		if (res->stored_rev > last)
			rc = ob_put_u64_val(txn, ob->revs, pk, pl, res->stored_rev);
	}
	return rc;
}

int ob_ack_one(th_outbox *ob, MDB_txn *txn, const th_ack *a, const th_ack_result *res,
               int64_t now, int *changed)
{
	*changed = 0;
	if (!res->unit || !res->appendix || !res->period)
		return 0;
	uint8_t pk[OB_KEY_MAX], k[OB_KEY_MAX], r8[8];
	int pl = ob_key(pk, res->unit, res->appendix, res->period, NULL, 0);
	if (pl < 0)
		return 0;   /* not a key we could have sent */
	ob_be64(r8, res->rev);
	memcpy(k, pk, (size_t)pl);
	memcpy(k + pl, r8, 8);
	size_t kl = (size_t)pl + 8;
	MDB_val v;
	int rc = ob_get(txn, ob->pending, k, kl, &v);
	if (rc == TH_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	th_ob_entry e;
	ob_blob stored;
	if (ob_dec_entry(&v, &e, &stored) != 0)
		return ob_del(txn, ob->pending, k, kl);
	/* keep the report's bytes: copy before writes move pages */
	uint8_t *bcopy = stored.len ? malloc(stored.len) : NULL;
	if (stored.len && !bcopy) {
		th_ob_entry_free(&e);
		return TH_ENOMEM;
	}
	if (stored.len)
		memcpy(bcopy, stored.p, stored.len);
	ob_blob blob = {bcopy, stored.len, stored.format};

	free(e.message);
	free(e.column);
	e.message = dup0(res->message);
	e.column = dup0(res->column);
	e.code = res->code;
	e.row = res->row;
	e.updated = now;
	e.stored_rev = res->stored_rev;
	rc = 0;
	if (!e.message || !e.column) {
		rc = TH_ENOMEM;
		goto done;
	}
	*changed = 1;
	ob_buf b = {0};
	switch (res->status) {
	case TH_ACK_RETRY_LATER:
		e.state = TH_OB_PENDING;
		ob_enc_entry(&b, &e, &blob);
		rc = b.oom ? TH_ENOMEM : ob_put(txn, ob->pending, k, kl, b.p, b.len);
		break;
	case TH_ACK_REJECTED:
		e.state = TH_OB_REJECTED;
		ob_enc_entry(&b, &e, NULL);
		rc = b.oom ? TH_ENOMEM : ob_put(txn, ob->rejected, k, kl, b.p, b.len);
		if (!rc)
			rc = ob_del(txn, ob->pending, k, kl);
		if (!rc)
			rc = ob_put_history(ob, txn, pk, (size_t)pl, e.hash, e.rev, TH_OB_REJECTED,
			                    e.created);
		break;
	case TH_ACK_ACCEPTED:
	case TH_ACK_DUPLICATE:
	case TH_ACK_STALE:
	default:
		rc = ack_final(ob, txn, a, res, &e, &blob, pk, (size_t)pl, k, kl);
		break;
	}
	free(b.p);
done:
	free(bcopy);
	th_ob_entry_free(&e);
	return rc;
}

typedef struct ack_ctx {
	const th_ack *a;
	int64_t now;
	int *outcome;
} ack_ctx;

static int ack_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	ack_ctx *x = vctx;
	for (size_t i = 0; i < x->a->n_results; i++) {
		int changed = 0;
		int rc = ob_ack_one(ob, txn, x->a, &x->a->results[i], x->now, &changed);
		if (rc)
			return rc;
		if (x->outcome)
			x->outcome[i] = changed;
	}
	return ob_put_u64_val(txn, ob->meta, "contact", 7, (uint64_t)x->now);
}

int th_outbox_apply_ack(th_outbox *ob, const th_ack *a, int64_t now_us, int *outcome)
{
	if (!ob || !a)
		return TH_EINVAL;
	ack_ctx x = {a, now_us, outcome};
	return ob_write(ob, ack_fn, &x);
}

/* --- sends counted, the agent's own rejections, revs learned ------------------------- */
typedef struct sent_ctx {
	th_ob_entry *const *e;
	size_t n;
} sent_ctx;

static int sent_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	sent_ctx *x = vctx;
	for (size_t i = 0; i < x->n; i++) {
		const th_ob_entry *e = x->e[i];
		uint8_t k[OB_KEY_MAX], r8[8];
		ob_be64(r8, e->rev);
		int kl = ob_key(k, e->unit, e->appendix, e->period, r8, 8);
		if (kl < 0)
			continue;
		MDB_val v;
		int rc = ob_get(txn, ob->pending, k, (size_t)kl, &v);
		if (rc == TH_ENOTFOUND)
			continue;
		if (rc)
			return rc;
		/* bump attempts in place: offset of the field in the value */
		size_t off = OB_ENTRY_ATTEMPTS_OFF;
		if (v.mv_size < off + 4)
			continue;
		uint8_t *copy = malloc(v.mv_size);
		if (!copy)
			return TH_ENOMEM;
		memcpy(copy, v.mv_data, v.mv_size);
		ob_rd r = {copy + off, 4, 0, 0};
		uint32_t att = ob_get_u32(&r) + 1;
		for (int j = 0; j < 4; j++)
			copy[off + (size_t)j] = (uint8_t)(att >> (8 * j));
		rc = ob_put(txn, ob->pending, k, (size_t)kl, copy, v.mv_size);
		free(copy);
		if (rc)
			return rc;
	}
	return 0;
}

int th_outbox_note_sent(th_outbox *ob, th_ob_entry *const *e, size_t n)
{
	sent_ctx x = {e, n};
	return ob_write(ob, sent_fn, &x);
}

typedef struct rej_ctx {
	const char *unit, *appendix, *period;
	uint64_t rev;
	int code;
	const char *message;
} rej_ctx;

static int rej_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	rej_ctx *x = vctx;
	th_ack_result res = {0};
	res.status = TH_ACK_REJECTED;
	res.code = x->code;
	res.message = (char *)x->message;
	res.unit = (char *)x->unit;
	res.appendix = (char *)x->appendix;
	res.period = (char *)x->period;
	res.rev = x->rev;
	th_ack a = {0};
	int changed;
	int rc = ob_ack_one(ob, txn, &a, &res, 0, &changed);
	if (rc)
		return rc;
	return changed ? 0 : TH_ENOTFOUND;
}

int th_outbox_reject_pending(th_outbox *ob, const char *unit, const char *appendix,
                             const char *period, uint64_t rev, int code, const char *message)
{
	rej_ctx x = {unit, appendix, period, rev, code, message};
	return ob_write(ob, rej_fn, &x);
}

typedef struct revs_ctx {
	const th_rev_entry *revs;
	size_t n;
} revs_ctx;

static int revs_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	revs_ctx *x = vctx;
	for (size_t i = 0; i < x->n; i++) {
		uint8_t pk[OB_KEY_MAX];
		int pl = ob_key(pk, x->revs[i].unit, x->revs[i].appendix, x->revs[i].period, NULL, 0);
		if (pl < 0)
			continue;
		MDB_val v;
		uint64_t last = 0;
		int rc = ob_get(txn, ob->revs, pk, (size_t)pl, &v);
		if (rc == 0)
			last = (uint64_t)ob_val_i64(&v);
		else if (rc != TH_ENOTFOUND)
			return rc;
		if (x->revs[i].rev <= last)
			continue;
		rc = ob_put_u64_val(txn, ob->revs, pk, (size_t)pl, x->revs[i].rev);
		if (rc)
			return rc;
	}
	return 0;
}

int th_outbox_learn_revs(th_outbox *ob, const th_rev_entry *revs, size_t n)
{
	revs_ctx x = {revs, n};
	return ob_write(ob, revs_fn, &x);
}

/* --- acknowledged revisions sent again ----------------------------------------------- */
/* Puts an acknowledged entry back in `pending` (same rev, same content,
 * resend = 1) unless it is pending already.  1 queued, 0 already there, or a
 * negative TH_E*. */
static int requeue(th_outbox *ob, MDB_txn *txn, th_ob_entry *e, const ob_blob *blob,
                   const char *why)
{
	uint8_t pk[OB_KEY_MAX], r8[8];
	ob_be64(r8, e->rev);
	int kl = ob_key(pk, e->unit, e->appendix, e->period, r8, 8);
	MDB_val pv;
	if (kl <= 0 || ob_get(txn, ob->pending, pk, (size_t)kl, &pv) != TH_ENOTFOUND)
		return 0;
	e->state = TH_OB_PENDING;
	e->resend = 1;
	free(e->message);
	e->message = strdup(why);
	ob_buf b = {0};
	ob_enc_entry(&b, e, blob);   /* copied into b before the put moves pages */
	int rc = b.oom ? TH_ENOMEM : ob_put(txn, ob->pending, pk, (size_t)kl, b.p, b.len);
	free(b.p);
	return rc ? rc : 1;
}

/* Queues again every acked entry that lost(e, ctx) says the collector lacks;
 * *n gets their number.  0 when some were queued, 1 when none. */
typedef int (*lost_fn)(const th_ob_entry *e, void *ctx);

static int requeue_lost(th_outbox *ob, MDB_txn *txn, lost_fn lost, void *ctx, const char *why,
                        size_t *n)
{
	*n = 0;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, ob->acked, &c);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val k, v;
	int mrc;
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		th_ob_entry e;
		ob_blob blob;
		if (ob_dec_entry(&v, &e, &blob) != 0)
			continue;
		if ((e.state == TH_OB_ACCEPTED || e.state == TH_OB_DUPLICATE) && blob.len &&
		    lost(&e, ctx)) {
			int q = requeue(ob, txn, &e, &blob, why);
			if (q < 0) {
				th_ob_entry_free(&e);
				mdb_cursor_close(c);
				return q;
			}
			*n += (size_t)q;
		}
		th_ob_entry_free(&e);
	}
	mdb_cursor_close(c);
	return *n ? 0 : 1;
}

typedef struct store_ctx {
	const uint8_t *store;
	size_t n;
} store_ctx;

static int other_store(const th_ob_entry *e, void *ctx)
{
	return memcmp(e->store, ((store_ctx *)ctx)->store, TH_STORE_UUID_LEN) != 0;
}

static int store_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	store_ctx *x = vctx;
	x->n = 0;
	MDB_val v;
	int rc = ob_get(txn, ob->meta, "store", 5, &v);
	if (rc == TH_ENOTFOUND)
		return 1;   /* never acknowledged: nothing to compare */
	if (rc)
		return rc;
	if (v.mv_size == TH_STORE_UUID_LEN && memcmp(v.mv_data, x->store, TH_STORE_UUID_LEN) == 0)
		return 1;
	return requeue_lost(ob, txn, other_store, x,
	                    "the collector's store changed (restored backup?): sent again", &x->n);
}

int th_outbox_store_seen(th_outbox *ob, const uint8_t store[TH_STORE_UUID_LEN], size_t *n)
{
	store_ctx x = {store, 0};
	int rc = ob_write(ob, store_fn, &x);
	if (rc == 1)
		rc = 0;
	if (rc == 0 && n)
		*n = x.n;
	return rc;
}

typedef struct behind_ctx {
	const th_rev_entry *revs;
	size_t nrevs;
	size_t n;
} behind_ctx;

/* The collector's highest rev of e's key is below e's (or absent). */
static int behind(const th_ob_entry *e, void *ctx)
{
	const behind_ctx *x = ctx;
	uint64_t have = 0;
	for (size_t i = 0; i < x->nrevs; i++)
		if (!strcmp(x->revs[i].unit, e->unit) && !strcmp(x->revs[i].appendix, e->appendix) &&
		    !strcmp(x->revs[i].period, e->period) && x->revs[i].rev > have)
			have = x->revs[i].rev;
	return have < e->rev;
}

static int behind_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	behind_ctx *x = vctx;
	return requeue_lost(ob, txn, behind, x,
	                    "the collector no longer holds this acknowledged revision "
	                    "(restored from a backup?): sent again",
	                    &x->n);
}

int th_outbox_requeue_behind(th_outbox *ob, const th_rev_entry *revs, size_t nrevs, size_t *n)
{
	behind_ctx x = {revs, nrevs, 0};
	int rc = ob_write(ob, behind_fn, &x);
	if (rc == 1)
		rc = 0;
	if (rc == 0 && n)
		*n = x.n;
	return rc;
}

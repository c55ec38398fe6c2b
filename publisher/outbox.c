/* outbox.c -- the agent's durable outbox (LMDB); layout in OUTBOX.md. */
#include "outbox.h"
#include "th_lmdb.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OB_DBS 6
#define OB_MAP_INITIAL (16u << 20)
#define OB_KEY_MAX 480

struct th_outbox {
	MDB_env *env;
	MDB_dbi meta, pending, acked, rejected, revs, history, defs;
	size_t map_size;
};

const char *th_ob_state_name(th_ob_state s)
{
	switch (s) {
	case TH_OB_PENDING: return "pending";
	case TH_OB_ACCEPTED: return "accepted";
	case TH_OB_DUPLICATE: return "duplicate";
	case TH_OB_STALE: return "stale";
	case TH_OB_REJECTED: return "rejected";
	}
	return "?";
}

/* --- byte buffers ----------------------------------------------------------- */
typedef struct buf {
	uint8_t *p;
	size_t len, cap;
	int oom;
} buf;

static void b_put(buf *b, const void *d, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap * 2 : 256;
		while (nc < b->len + n)
			nc *= 2;
		uint8_t *np = realloc(b->p, nc);
		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = nc;
	}
	if (n)
		memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void b_u64(buf *b, uint64_t v)
{
	uint8_t t[8];
	for (int i = 0; i < 8; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	b_put(b, t, 8);
}
static void b_u32(buf *b, uint32_t v)
{
	uint8_t t[4];
	for (int i = 0; i < 4; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	b_put(b, t, 4);
}
static void b_u8(buf *b, uint8_t v) { b_put(b, &v, 1); }
static void b_str(buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	b_u32(b, (uint32_t)n);
	b_put(b, s ? s : "", n);
}

typedef struct rd {
	const uint8_t *p;
	size_t len, off;
	int bad;
} rd;

static const uint8_t *r_take(rd *r, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}
static uint64_t r_u64(rd *r)
{
	const uint8_t *p = r_take(r, 8);
	uint64_t v = 0;
	for (int i = 0; p && i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}
static uint32_t r_u32(rd *r)
{
	const uint8_t *p = r_take(r, 4);
	uint32_t v = 0;
	for (int i = 0; p && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}
static uint8_t r_u8(rd *r)
{
	const uint8_t *p = r_take(r, 1);
	return p ? *p : 0;
}
static char *r_str(rd *r)
{
	uint32_t n = r_u32(r);
	const uint8_t *p = r_take(r, n);
	if (!p)
		return NULL;
	char *s = malloc((size_t)n + 1);
	if (!s) {
		r->bad = 1;
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = 0;
	return s;
}

/* --- report blob (definition-independent) -------------------------------- */
static void enc_report(buf *b, const th_report *r)
{
	b_u8(b, 1);
	b_u32(b, r->version);
	b_u32(b, (uint32_t)r->as_of);
	b_u8(b, r->tombstone);
	b_u64(b, r->rev);
	b_u32(b, (uint32_t)r->n_rows);
	b_u32(b, (uint32_t)r->n_cols);
	b_str(b, r->unit);
	b_str(b, r->appendix);
	b_str(b, r->period);
	for (size_t i = 0; i < r->n_rows * r->n_cols; i++) {
		const th_value *v = &r->cells[i];
		if (v->null) {
			b_u8(b, 0);
		} else if (v->s) {
			b_u8(b, 2);
			b_u32(b, v->len);
			b_put(b, v->s, v->len);
		} else {
			b_u8(b, 1);
			b_u64(b, (uint64_t)v->i);
		}
	}
}

static th_report *dec_report(rd *r)
{
	if (r_u8(r) != 1) {
		r->bad = 1;
		return NULL;
	}
	uint32_t version = r_u32(r);
	int32_t as_of = (int32_t)r_u32(r);
	uint8_t tomb = r_u8(r);
	uint64_t rev = r_u64(r);
	uint32_t nr = r_u32(r), nc = r_u32(r);
	char *unit = r_str(r), *app = r_str(r), *per = r_str(r);
	th_report *rep = NULL;
	if (r->bad || nc > 4096 || (uint64_t)nr * (nc ? nc : 1) > (r->len - r->off))
		goto fail;
	rep = th_report_new(unit, app, version, per, rev, nc);
	if (!rep)
		goto fail;
	rep->as_of = as_of;
	rep->tombstone = tomb;
	for (uint32_t i = 0; i < nr; i++) {
		long row = th_report_add_row(rep);
		if (row < 0)
			goto fail;
		for (uint32_t c = 0; c < nc; c++) {
			th_value *v = th_report_cell(rep, (size_t)row, c);
			uint8_t tag = r_u8(r);
			if (tag == 0) {
				v->null = 1;
			} else if (tag == 1) {
				v->null = 0;
				v->i = (int64_t)r_u64(r);
			} else if (tag == 2) {
				uint32_t n = r_u32(r);
				const uint8_t *p = r_take(r, n);
				if (!p)
					goto fail;
				v->s = malloc((size_t)n + 1);
				if (!v->s)
					goto fail;
				memcpy(v->s, p, n);
				v->s[n] = 0;
				v->len = n;
				v->null = 0;
			} else {
				goto fail;
			}
			if (r->bad)
				goto fail;
		}
	}
	free(unit);
	free(app);
	free(per);
	return rep;
fail:
	r->bad = 1;
	th_report_destroy(&rep);
	free(unit);
	free(app);
	free(per);
	return NULL;
}

/* --- entries ----------------------------------------------------------------- */
void th_ob_entry_free(th_ob_entry *e)
{
	if (!e)
		return;
	free(e->unit);
	free(e->appendix);
	free(e->period);
	free(e->file);
	free(e->message);
	free(e->column);
	th_report_destroy(&e->report);
	memset(e, 0, sizeof *e);
}

static void enc_entry(buf *b, const th_ob_entry *e, const th_report *r)
{
	b_u8(b, 1);
	b_u64(b, e->rev);
	b_u32(b, e->version);
	b_put(b, e->hash, TH_HASH_LEN);
	b_u64(b, (uint64_t)e->created);
	b_u8(b, (uint8_t)e->state);
	b_u32(b, e->attempts);
	b_u32(b, (uint32_t)e->code);
	b_u64(b, (uint64_t)(int64_t)e->row);
	b_u64(b, e->stored_rev);
	b_put(b, e->store, TH_STORE_UUID_LEN);
	b_u64(b, e->commit);
	b_u64(b, (uint64_t)e->commit_time);
	b_u64(b, (uint64_t)e->updated);
	b_u8(b, e->resend);
	b_str(b, e->unit);
	b_str(b, e->appendix);
	b_str(b, e->period);
	b_str(b, e->file);
	b_str(b, e->message);
	b_str(b, e->column);
	if (r) {
		buf rb = {0};
		enc_report(&rb, r);
		if (rb.oom)
			b->oom = 1;
		b_u32(b, (uint32_t)rb.len);
		b_put(b, rb.p, rb.len);
		free(rb.p);
	} else {
		b_u32(b, 0);
	}
}

/* Decodes an entry value; with want_report also the report (when stored).
 * *blob / *blob_len (optional) point at the stored report inside v. */
static int dec_entry(const MDB_val *v, int want_report, th_ob_entry *e,
                     const uint8_t **blob, size_t *blob_len)
{
	rd r = {v->mv_data, v->mv_size, 0, 0};
	memset(e, 0, sizeof *e);
	if (r_u8(&r) != 1)
		return TH_ESTORE;
	e->rev = r_u64(&r);
	e->version = r_u32(&r);
	const uint8_t *h = r_take(&r, TH_HASH_LEN);
	if (h)
		memcpy(e->hash, h, TH_HASH_LEN);
	e->created = (int64_t)r_u64(&r);
	e->state = (th_ob_state)r_u8(&r);
	e->attempts = r_u32(&r);
	e->code = (int32_t)r_u32(&r);
	e->row = (long)(int64_t)r_u64(&r);
	e->stored_rev = r_u64(&r);
	const uint8_t *st = r_take(&r, TH_STORE_UUID_LEN);
	if (st)
		memcpy(e->store, st, TH_STORE_UUID_LEN);
	e->commit = r_u64(&r);
	e->commit_time = (int64_t)r_u64(&r);
	e->updated = (int64_t)r_u64(&r);
	e->resend = r_u8(&r);
	e->unit = r_str(&r);
	e->appendix = r_str(&r);
	e->period = r_str(&r);
	e->file = r_str(&r);
	e->message = r_str(&r);
	e->column = r_str(&r);
	uint32_t bl = r_u32(&r);
	const uint8_t *bp = r_take(&r, bl);
	if (r.bad || e->state > TH_OB_REJECTED)
		goto bad;
	if (blob)
		*blob = bp;
	if (blob_len)
		*blob_len = bl;
	if (want_report && bl) {
		rd rr = {bp, bl, 0, 0};
		e->report = dec_report(&rr);
		if (!e->report)
			goto bad;
	}
	return 0;
bad:
	th_ob_entry_free(e);
	return TH_ESTORE;
}

/* --- keys ----------------------------------------------------------------------- */
/* [u8 len][unit\0appendix\0period][suffix] */
static int mk_key(uint8_t *k, const char *unit, const char *app, const char *per,
                  const void *suffix, size_t slen)
{
	int n = th_report_key(unit, app, per, (char *)k + 1, OB_KEY_MAX - 1 - 40);
	if (n < 0 || n > 255)
		return TH_ETOOBIG;
	k[0] = (uint8_t)n;
	if (slen)
		memcpy(k + 1 + n, suffix, slen);
	return 1 + n + (int)slen;
}

static void be64(uint8_t *o, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		o[i] = (uint8_t)(v >> (56 - 8 * i));
}

static int64_t rd_i64(const MDB_val *v)
{
	if (v->mv_size != 8)
		return 0;
	rd r = {v->mv_data, 8, 0, 0};
	return (int64_t)r_u64(&r);
}

/* --- environment ----------------------------------------------------------------- */
typedef int (*ob_txn_fn)(th_outbox *ob, MDB_txn *txn, void *ctx);

/* Runs fn in a write transaction and commits durably; on MDB_MAP_FULL
 * aborts, doubles the map and runs fn again. */
static int ob_write(th_outbox *ob, ob_txn_fn fn, void *ctx)
{
	for (int tries = 0; tries < 8; tries++) {
		MDB_txn *txn = NULL;
		int rc = mdb_txn_begin(ob->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED) {
			mdb_env_set_mapsize(ob->env, 0);
			rc = mdb_txn_begin(ob->env, NULL, 0, &txn);
		}
		if (rc)
			return th_lmdb_error(rc);
		rc = fn(ob, txn, ctx);
		if (rc == 0) {
			int mrc = mdb_txn_commit(txn);
			if (mrc == 0)
				return 0;
			rc = mrc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(mrc);
		} else {
			mdb_txn_abort(txn);
		}
		if (rc != TH_EMAPFULL)
			return rc;
		MDB_envinfo info;
		mdb_env_info(ob->env, &info);
		ob->map_size = info.me_mapsize * 2;
		if (mdb_env_set_mapsize(ob->env, ob->map_size))
			return TH_ENOSPC;
	}
	return TH_ENOSPC;
}

static int put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, const void *v, size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	int rc = mdb_put(txn, dbi, &key, &val, 0);
	return rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
}

static int get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, MDB_val *v)
{
	MDB_val key = {kl, (void *)k};
	return th_lmdb_error(mdb_get(txn, dbi, &key, v));
}

static int del(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl)
{
	MDB_val key = {kl, (void *)k};
	int rc = mdb_del(txn, dbi, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : th_lmdb_error(rc);
}

static int ob_init(th_outbox *ob, MDB_txn *txn, void *ctx)
{
	const char **why = ctx;
	int rc;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &ob->meta)) ||
	    (rc = mdb_dbi_open(txn, "pending", MDB_CREATE, &ob->pending)) ||
	    (rc = mdb_dbi_open(txn, "acked", MDB_CREATE, &ob->acked)) ||
	    (rc = mdb_dbi_open(txn, "rejected", MDB_CREATE, &ob->rejected)) ||
	    (rc = mdb_dbi_open(txn, "revs", MDB_CREATE, &ob->revs)) ||
	    (rc = mdb_dbi_open(txn, "history", MDB_CREATE, &ob->history)) ||
	    (rc = mdb_dbi_open(txn, "defs", MDB_CREATE, &ob->defs)))
		return th_lmdb_error(rc);
	MDB_val v;
	rc = get(txn, ob->meta, "format", 6, &v);
	if (rc == TH_ENOTFOUND) {
		char f[16];
		int n = snprintf(f, sizeof f, "%d", TH_OUTBOX_FORMAT);
		return put(txn, ob->meta, "format", 6, f, (size_t)n);
	}
	if (rc)
		return rc;
	char f[16];
	size_t n = v.mv_size < sizeof f - 1 ? v.mv_size : sizeof f - 1;
	memcpy(f, v.mv_data, n);
	f[n] = 0;
	if (atoi(f) != TH_OUTBOX_FORMAT) {
		*why = "the outbox was written by an agent of another format version";
		return TH_ESTORE;
	}
	return 0;
}

int th_outbox_open(const char *dir, th_outbox **out, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*why = NULL;
	if (!dir || !out)
		return TH_EINVAL;
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		*why = "cannot create the outbox directory";
		return TH_EIO;
	}
	th_outbox *ob = calloc(1, sizeof *ob);
	if (!ob)
		return TH_ENOMEM;
	int rc = mdb_env_create(&ob->env);
	if (rc) {
		free(ob);
		return th_lmdb_error(rc);
	}
	mdb_env_set_maxdbs(ob->env, OB_DBS + 2);
	ob->map_size = OB_MAP_INITIAL;
	mdb_env_set_mapsize(ob->env, ob->map_size);
	/* durable: no MDB_NOSYNC, no MDB_WRITEMAP */
	rc = mdb_env_open(ob->env, dir, 0, 0640);
	if (rc) {
		*why = "cannot open the outbox environment";
		rc = th_lmdb_error(rc);
		goto fail;
	}
	int dead = 0;
	mdb_reader_check(ob->env, &dead);
	MDB_envinfo info;
	if (mdb_env_info(ob->env, &info) == 0 && info.me_mapsize > ob->map_size)
		ob->map_size = info.me_mapsize;
	rc = ob_write(ob, ob_init, why);
	if (rc) {
		if (!*why)
			*why = th_strerror(rc);
		goto fail;
	}
	*out = ob;
	return 0;
fail:
	mdb_env_close(ob->env);
	free(ob);
	return rc;
}

void th_outbox_close(th_outbox **pob)
{
	if (!pob || !*pob)
		return;
	mdb_env_close((*pob)->env);
	free(*pob);
	*pob = NULL;
}

/* --- enqueue ----------------------------------------------------------------------- */
typedef struct enq_ctx {
	const th_report *r;
	const uint8_t *hash;
	const char *file;
	int force;
	int64_t now;
	th_ob_enqueued *res;
} enq_ctx;

/* The highest pending rev of a key (0 when none) and its entry hash. */
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
		if (dec_entry(&v, 0, &e, NULL, NULL) == 0) {
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

/* history value: u64 rev, u8 state, u64 created */
static int put_history(th_outbox *ob, MDB_txn *txn, const uint8_t *prefix, size_t plen,
                       const uint8_t *hash, uint64_t rev, th_ob_state st, int64_t created)
{
	uint8_t k[OB_KEY_MAX];
	memcpy(k, prefix, plen);
	memcpy(k + plen, hash, TH_HASH_LEN);
	buf b = {0};
	b_u64(&b, rev);
	b_u8(&b, (uint8_t)st);
	b_u64(&b, (uint64_t)created);
	if (b.oom)
		return TH_ENOMEM;
	int rc = put(txn, ob->history, k, plen + TH_HASH_LEN, b.p, b.len);
	free(b.p);
	return rc;
}

static int enq_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	enq_ctx *x = vctx;
	const th_report *r = x->r;
	uint8_t pk[OB_KEY_MAX];
	int pl = mk_key(pk, r->unit, r->appendix, r->period, NULL, 0);
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
	rc = get(txn, ob->acked, pk, (size_t)pl, &v);
	if (rc == 0) {
		th_ob_entry e;
		if (dec_entry(&v, 0, &e, NULL, NULL) == 0) {
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
	rc = get(txn, ob->history, hk, (size_t)pl + TH_HASH_LEN, &v);
	if (rc == 0 && v.mv_size >= 17 && !x->force) {
		rd hr = {v.mv_data, v.mv_size, 0, 0};
		uint64_t hrev = r_u64(&hr);
		th_ob_state hst = (th_ob_state)r_u8(&hr);
		x->res->rev = hrev;
		x->res->state = hst;
		x->res->when = (int64_t)r_u64(&hr);
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
	rc = get(txn, ob->revs, pk, (size_t)pl, &v);
	if (rc == 0)
		last = (uint64_t)rd_i64(&v);
	else if (rc != TH_ENOTFOUND)
		return rc;
	if (prev > last)
		last = prev;
	if (arev > last)
		last = arev;
	uint64_t rev = (uint64_t)x->now > last + 1 ? (uint64_t)x->now : last + 1;

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
	th_report *stamped = th_report_clone(r);
	if (!stamped)
		return TH_ENOMEM;
	stamped->rev = rev;
	buf b = {0};
	enc_entry(&b, &e, stamped);
	th_report_destroy(&stamped);
	if (b.oom) {
		free(b.p);
		return TH_ENOMEM;
	}
	uint8_t k[OB_KEY_MAX];
	memcpy(k, pk, (size_t)pl);
	be64(k + pl, rev);
	rc = put(txn, ob->pending, k, (size_t)pl + 8, b.p, b.len);
	free(b.p);
	if (rc)
		return rc;
	buf rb = {0};
	b_u64(&rb, rev);
	if (rb.oom)
		return TH_ENOMEM;
	rc = put(txn, ob->revs, pk, (size_t)pl, rb.p, rb.len);
	free(rb.p);
	if (rc)
		return rc;
	rc = put_history(ob, txn, pk, (size_t)pl, x->hash, rev, TH_OB_PENDING, x->now);
	if (rc)
		return rc;
	x->res->outcome = TH_OB_NEW;
	x->res->rev = rev;
	x->res->state = TH_OB_PENDING;
	return 0;
}

int th_outbox_enqueue(th_outbox *ob, const th_report *r, const uint8_t hash[TH_HASH_LEN],
                      const char *file, int force, int64_t now_us, th_ob_enqueued *res)
{
	if (!ob || !r || !hash || !res)
		return TH_EINVAL;
	th_ob_enqueued tmp;
	enq_ctx x = {r, hash, file, force, now_us, &tmp};
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
		if (!it->r || !it->hash) {
			it->rc = TH_EINVAL;
			continue;
		}
		uint8_t pk[OB_KEY_MAX];
		int pl = mk_key(pk, it->r->unit, it->r->appendix, it->r->period, NULL, 0);
		if (pl < 0) {
			it->rc = pl;
			continue;
		}
		enq_ctx e = {it->r, it->hash, it->file, x->force, x->now, &it->res};
		int rc = enq_fn(ob, txn, &e);
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
		if (!it->r || !it->hash) {
			it->rc = TH_EINVAL;
			continue;
		}
		it->rc = th_outbox_enqueue(ob, it->r, it->hash, it->file, force, now_us, &it->res);
		any |= it->rc == 0;
	}
	return any ? 0 : rc;
}

/* --- listing ------------------------------------------------------------------------ */
static MDB_dbi table_dbi(th_outbox *ob, th_ob_table t)
{
	return t == TH_OB_TPENDING ? ob->pending : t == TH_OB_TACKED ? ob->acked : ob->rejected;
}

int th_outbox_list(th_outbox *ob, th_ob_table t, int want_report, th_ob_cb cb, void *ctx)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return th_lmdb_error(rc);
	MDB_cursor *c;
	rc = mdb_cursor_open(txn, table_dbi(ob, t), &c);
	if (rc) {
		mdb_txn_abort(txn);
		return th_lmdb_error(rc);
	}
	MDB_val k, v;
	int out = 0;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		th_ob_entry e;
		if (dec_entry(&v, want_report, &e, NULL, NULL) != 0)
			continue;   /* unreadable entry: skipped (OUTBOX.md) */
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
                          const char *period, uint64_t rev, th_ob_entry *out)
{
	uint8_t k[OB_KEY_MAX], r8[8];
	be64(r8, rev);
	int kl = mk_key(k, unit, appendix, period, r8, 8);
	if (kl < 0)
		return kl;
	MDB_txn *txn;
	int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val v;
	rc = get(txn, ob->pending, k, (size_t)kl, &v);
	if (rc == 0)
		rc = dec_entry(&v, 1, out, NULL, NULL);
	mdb_txn_abort(txn);
	return rc;
}

size_t th_outbox_count(th_outbox *ob, th_ob_table t)
{
	MDB_txn *txn;
	if (mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn))
		return 0;
	MDB_stat st;
	size_t n = mdb_stat(txn, table_dbi(ob, t), &st) == 0 ? st.ms_entries : 0;
	mdb_txn_abort(txn);
	return n;
}

/* --- acks ---------------------------------------------------------------------------- */
typedef struct ack_ctx {
	const th_ack *a;
	int64_t now;
	int *outcome;
} ack_ctx;

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
		uint64_t r = 0;
		for (int i = 0; i < 8; i++)
			r = (r << 8) | ((const uint8_t *)k.mv_data)[pl + i];
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
		be64(key + pl, revs[i]);
		rc = del(txn, ob->rejected, key, pl + 8);
		if (rc)
			return rc;
	}
	return 0;
}

static int ack_one(th_outbox *ob, MDB_txn *txn, const th_ack *a, const th_ack_result *res,
                   int64_t now, int *changed)
{
	*changed = 0;
	if (!res->unit || !res->appendix || !res->period)
		return 0;
	uint8_t pk[OB_KEY_MAX], k[OB_KEY_MAX], r8[8];
	int pl = mk_key(pk, res->unit, res->appendix, res->period, NULL, 0);
	if (pl < 0)
		return 0;   /* not a key we could have sent */
	be64(r8, res->rev);
	memcpy(k, pk, (size_t)pl);
	memcpy(k + pl, r8, 8);
	size_t kl = (size_t)pl + 8;
	MDB_val v;
	int rc = get(txn, ob->pending, k, kl, &v);
	if (rc == TH_ENOTFOUND)
		return 0;
	if (rc)
		return rc;
	th_ob_entry e;
	const uint8_t *blob;
	size_t blen;
	if (dec_entry(&v, 0, &e, &blob, &blen) != 0)
		return del(txn, ob->pending, k, kl);
	/* keep the blob: copy before writes move pages */
	uint8_t *bcopy = blen ? malloc(blen) : NULL;
	if (blen && !bcopy) {
		th_ob_entry_free(&e);
		return TH_ENOMEM;
	}
	if (blen)
		memcpy(bcopy, blob, blen);
	rd rr = {bcopy, blen, 0, 0};
	th_report *rep = blen ? dec_report(&rr) : NULL;
	free(bcopy);

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
	buf b = {0};
	switch (res->status) {
	case TH_ACK_RETRY_LATER:
		e.state = TH_OB_PENDING;
		enc_entry(&b, &e, rep);
		rc = b.oom ? TH_ENOMEM : put(txn, ob->pending, k, kl, b.p, b.len);
		break;
	case TH_ACK_REJECTED:
		e.state = TH_OB_REJECTED;
		enc_entry(&b, &e, NULL);
		rc = b.oom ? TH_ENOMEM : put(txn, ob->rejected, k, kl, b.p, b.len);
		if (!rc)
			rc = del(txn, ob->pending, k, kl);
		if (!rc)
			rc = put_history(ob, txn, pk, (size_t)pl, e.hash, e.rev, TH_OB_REJECTED, e.created);
		break;
	case TH_ACK_ACCEPTED:
	case TH_ACK_DUPLICATE:
	case TH_ACK_STALE:
	default: {
		e.state = res->status == TH_ACK_ACCEPTED ? TH_OB_ACCEPTED :
		          res->status == TH_ACK_DUPLICATE ? TH_OB_DUPLICATE : TH_OB_STALE;
		memcpy(e.store, a->store, TH_STORE_UUID_LEN);
		e.commit = a->commit;
		e.commit_time = a->commit_time;
		e.resend = 0;
		/* the acked table keeps the highest acknowledged rev of the key;
		 * a stale answer only fills it when nothing else is there */
		int keep = 1;
		MDB_val av;
		int grc = get(txn, ob->acked, pk, (size_t)pl, &av);
		if (grc == 0) {
			th_ob_entry old;
			if (dec_entry(&av, 0, &old, NULL, NULL) == 0) {
				if (old.rev > e.rev || (e.state == TH_OB_STALE && old.state != TH_OB_STALE))
					keep = 0;
				th_ob_entry_free(&old);
			}
		} else if (grc != TH_ENOTFOUND) {
			rc = grc;
			break;
		}
		if (keep) {
			enc_entry(&b, &e, rep);
			rc = b.oom ? TH_ENOMEM : put(txn, ob->acked, pk, (size_t)pl, b.p, b.len);
		}
		if (!rc)
			rc = del(txn, ob->pending, k, kl);
		if (!rc)
			rc = put_history(ob, txn, pk, (size_t)pl, e.hash, e.rev, e.state, e.created);
		if (!rc && e.state != TH_OB_STALE)
			rc = clear_rejected(ob, txn, pk, (size_t)pl, e.rev);
		if (!rc && e.state != TH_OB_STALE)
			rc = put(txn, ob->meta, "store", 5, a->store, TH_STORE_UUID_LEN);
		if (!rc && res->stored_rev) {
			MDB_val rv;
			uint64_t last = 0;
			if (get(txn, ob->revs, pk, (size_t)pl, &rv) == 0)
				last = (uint64_t)rd_i64(&rv);
			if (res->stored_rev > last) {
				buf rb = {0};
				b_u64(&rb, res->stored_rev);
				rc = rb.oom ? TH_ENOMEM : put(txn, ob->revs, pk, (size_t)pl, rb.p, rb.len);
				free(rb.p);
			}
		}
		break;
	}
	}
	free(b.p);
done:
	th_report_destroy(&rep);
	th_ob_entry_free(&e);
	return rc;
}

static int ack_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	ack_ctx *x = vctx;
	for (size_t i = 0; i < x->a->n_results; i++) {
		int changed = 0;
		int rc = ack_one(ob, txn, x->a, &x->a->results[i], x->now, &changed);
		if (rc)
			return rc;
		if (x->outcome)
			x->outcome[i] = changed;
	}
	buf b = {0};
	b_u64(&b, (uint64_t)x->now);
	int rc = b.oom ? TH_ENOMEM : put(txn, ob->meta, "contact", 7, b.p, b.len);
	free(b.p);
	return rc;
}

int th_outbox_apply_ack(th_outbox *ob, const th_ack *a, int64_t now_us, int *outcome)
{
	if (!ob || !a)
		return TH_EINVAL;
	ack_ctx x = {a, now_us, outcome};
	return ob_write(ob, ack_fn, &x);
}

/* --- small updates ------------------------------------------------------------------- */
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
		be64(r8, e->rev);
		int kl = mk_key(k, e->unit, e->appendix, e->period, r8, 8);
		if (kl < 0)
			continue;
		MDB_val v;
		int rc = get(txn, ob->pending, k, (size_t)kl, &v);
		if (rc == TH_ENOTFOUND)
			continue;
		if (rc)
			return rc;
		/* bump attempts in place: offset of the field in the value */
		size_t off = 1 + 8 + 4 + TH_HASH_LEN + 8 + 1;
		if (v.mv_size < off + 4)
			continue;
		uint8_t *copy = malloc(v.mv_size);
		if (!copy)
			return TH_ENOMEM;
		memcpy(copy, v.mv_data, v.mv_size);
		rd r = {copy + off, 4, 0, 0};
		uint32_t att = r_u32(&r) + 1;
		for (int j = 0; j < 4; j++)
			copy[off + (size_t)j] = (uint8_t)(att >> (8 * j));
		rc = put(txn, ob->pending, k, (size_t)kl, copy, v.mv_size);
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
	int rc = ack_one(ob, txn, &a, &res, 0, &changed);
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
		int pl = mk_key(pk, x->revs[i].unit, x->revs[i].appendix, x->revs[i].period, NULL, 0);
		if (pl < 0)
			continue;
		MDB_val v;
		uint64_t last = 0;
		int rc = get(txn, ob->revs, pk, (size_t)pl, &v);
		if (rc == 0)
			last = (uint64_t)rd_i64(&v);
		else if (rc != TH_ENOTFOUND)
			return rc;
		if (x->revs[i].rev <= last)
			continue;
		buf b = {0};
		b_u64(&b, x->revs[i].rev);
		rc = b.oom ? TH_ENOMEM : put(txn, ob->revs, pk, (size_t)pl, b.p, b.len);
		free(b.p);
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

/* --- definitions cache ---------------------------------------------------------------- */
typedef struct defs_ctx {
	char *const *texts;
	size_t n;
} defs_ctx;

static int defs_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	defs_ctx *x = vctx;
	buf list = {0};
	for (size_t i = 0; i < x->n; i++) {
		th_def *d = NULL;
		if (!x->texts[i] || th_def_parse(x->texts[i], strlen(x->texts[i]), "welcome", &d, NULL))
			continue;   /* the agent cannot read it: not cached */
		char k[TH_CODE_MAX + 8];
		size_t il = strlen(d->id);
		if (il > TH_CODE_MAX) {
			th_def_destroy(&d);
			continue;
		}
		memcpy(k, d->id, il + 1);
		uint8_t *vk = (uint8_t *)k + il + 1;
		for (int j = 0; j < 4; j++)
			vk[j] = (uint8_t)(d->version >> (24 - 8 * j));
		int rc = put(txn, ob->defs, k, il + 5, x->texts[i], strlen(x->texts[i]));
		char line[TH_CODE_MAX + 24];
		int ln = snprintf(line, sizeof line, "%s\t%u\n", d->id, d->version);
		b_put(&list, line, (size_t)ln);
		th_def_destroy(&d);
		if (rc) {
			free(list.p);
			return rc;
		}
	}
	int rc = list.oom ? TH_ENOMEM : put(txn, ob->meta, "inforce", 7, list.p ? (void *)list.p : "", list.len);
	free(list.p);
	return rc;
}

int th_outbox_set_defs(th_outbox *ob, char *const *texts, size_t n)
{
	defs_ctx x = {texts, n};
	return ob_write(ob, defs_fn, &x);
}

static int in_force(const char *list, size_t len, const char *id, uint32_t version)
{
	char line[TH_CODE_MAX + 24];
	int ln = snprintf(line, sizeof line, "%s\t%u\n", id, version);
	if (ln <= 0 || (size_t)ln >= sizeof line)
		return 0;
	for (size_t off = 0; off + (size_t)ln <= len;) {
		if (memcmp(list + off, line, (size_t)ln) == 0)
			return 1;
		const char *nl = memchr(list + off, '\n', len - off);
		if (!nl)
			break;
		off = (size_t)(nl - list) + 1;
	}
	return 0;
}

int th_outbox_load_defs(th_outbox *ob, int in_force_only, th_defset **out)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return th_lmdb_error(rc);
	th_defset *set = th_defset_new();
	MDB_cursor *c = NULL;
	char *list = NULL;
	size_t list_len = 0;
	if (!set) {
		rc = TH_ENOMEM;
		goto done;
	}
	MDB_val v;
	if (get(txn, ob->meta, "inforce", 7, &v) == 0) {
		list = malloc(v.mv_size + 1);
		if (!list) {
			rc = TH_ENOMEM;
			goto done;
		}
		memcpy(list, v.mv_data, v.mv_size);
		list_len = v.mv_size;
		list[list_len] = 0;
	}
	rc = th_lmdb_error(mdb_cursor_open(txn, ob->defs, &c));
	if (rc)
		goto done;
	MDB_val k;
	int mrc;
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		th_def *d = NULL;
		if (th_def_parse(v.mv_data, v.mv_size, "cached definition", &d, NULL) != 0)
			continue;
		if (in_force_only && !in_force(list ? list : "", list_len, d->id, d->version)) {
			th_def_destroy(&d);
			continue;
		}
		if (th_defset_add(set, d) != 0)
			th_def_destroy(&d);
	}
	if (th_defset_count(set) == 0)
		rc = TH_ENOTFOUND;
done:
	if (c)
		mdb_cursor_close(c);
	mdb_txn_abort(txn);
	free(list);
	if (rc == 0)
		*out = set;
	else
		th_defset_destroy(&set);
	return rc;
}

/* --- store changes ----------------------------------------------------------------------- */
/* Puts an acknowledged entry back in `pending` (same rev, same content,
 * resend = 1) unless it is pending already.  1 queued, 0 already there, or a
 * negative TH_E*. */
static int requeue(th_outbox *ob, MDB_txn *txn, th_ob_entry *e, const char *why)
{
	uint8_t pk[OB_KEY_MAX], r8[8];
	be64(r8, e->rev);
	int kl = mk_key(pk, e->unit, e->appendix, e->period, r8, 8);
	MDB_val pv;
	if (kl <= 0 || get(txn, ob->pending, pk, (size_t)kl, &pv) != TH_ENOTFOUND)
		return 0;
	e->state = TH_OB_PENDING;
	e->resend = 1;
	free(e->message);
	e->message = strdup(why);
	buf b = {0};
	enc_entry(&b, e, e->report);
	int rc = b.oom ? TH_ENOMEM : put(txn, ob->pending, pk, (size_t)kl, b.p, b.len);
	free(b.p);
	return rc ? rc : 1;
}

typedef struct store_ctx {
	const uint8_t *store;
	size_t n;
} store_ctx;

static int store_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	store_ctx *x = vctx;
	x->n = 0;
	MDB_val v;
	int rc = get(txn, ob->meta, "store", 5, &v);
	if (rc == TH_ENOTFOUND)
		return 1;   /* never acknowledged: nothing to compare */
	if (rc)
		return rc;
	if (v.mv_size == TH_STORE_UUID_LEN && memcmp(v.mv_data, x->store, TH_STORE_UUID_LEN) == 0)
		return 1;
	MDB_cursor *c;
	rc = mdb_cursor_open(txn, ob->acked, &c);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val k;
	int mrc;
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		th_ob_entry e;
		if (dec_entry(&v, 1, &e, NULL, NULL) != 0)
			continue;
		if ((e.state == TH_OB_ACCEPTED || e.state == TH_OB_DUPLICATE) && e.report &&
		    memcmp(e.store, x->store, TH_STORE_UUID_LEN) != 0) {
			int q = requeue(ob, txn, &e,
			                "the collector's store changed (restored backup?): sent again");
			if (q < 0) {
				th_ob_entry_free(&e);
				mdb_cursor_close(c);
				return q;
			}
			x->n += (size_t)q;
		}
		th_ob_entry_free(&e);
	}
	mdb_cursor_close(c);
	return x->n ? 0 : 1;
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

/* --- acknowledged revisions the collector no longer has --------------------------- */
typedef struct behind_ctx {
	const th_rev_entry *revs;
	size_t nrevs;
	size_t n;
} behind_ctx;

static int behind_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	behind_ctx *x = vctx;
	x->n = 0;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, ob->acked, &c);
	if (rc)
		return th_lmdb_error(rc);
	MDB_val k, v;
	int mrc;
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		th_ob_entry e;
		if (dec_entry(&v, 1, &e, NULL, NULL) != 0)
			continue;
		int lost = 0;
		if ((e.state == TH_OB_ACCEPTED || e.state == TH_OB_DUPLICATE) && e.report) {
			uint64_t have = 0;
			for (size_t i = 0; i < x->nrevs; i++)
				if (!strcmp(x->revs[i].unit, e.unit) && !strcmp(x->revs[i].appendix, e.appendix) &&
				    !strcmp(x->revs[i].period, e.period) && x->revs[i].rev > have)
					have = x->revs[i].rev;
			lost = have < e.rev;
		}
		if (lost) {
			int q = requeue(ob, txn, &e,
			                "the collector no longer holds this acknowledged revision "
			                "(restored from a backup?): sent again");
			if (q < 0) {
				th_ob_entry_free(&e);
				mdb_cursor_close(c);
				return q;
			}
			x->n += (size_t)q;
		}
		th_ob_entry_free(&e);
	}
	mdb_cursor_close(c);
	return x->n ? 0 : 1;
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

/* --- meta ---------------------------------------------------------------------------------- */
static void copy_str(char *dst, size_t cap, const MDB_val *v)
{
	size_t n = v->mv_size < cap - 1 ? v->mv_size : cap - 1;
	memcpy(dst, v->mv_data, n);
	dst[n] = 0;
}

int th_outbox_meta(th_outbox *ob, th_ob_meta *out)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return th_lmdb_error(rc);
	th_ob_meta m;
	memset(&m, 0, sizeof m);
	MDB_val v;
	if (get(txn, ob->meta, "store", 5, &v) == 0 && v.mv_size == TH_STORE_UUID_LEN) {
		m.has_store = 1;
		memcpy(m.store, v.mv_data, TH_STORE_UUID_LEN);
	}
	if (get(txn, ob->meta, "contact", 7, &v) == 0)
		m.last_contact = rd_i64(&v);
	if (get(txn, ob->meta, "error", 5, &v) == 0)
		copy_str(m.last_error, sizeof m.last_error, &v);
	if (get(txn, ob->meta, "collector", 9, &v) == 0)
		copy_str(m.collector, sizeof m.collector, &v);
	mdb_txn_abort(txn);
	*out = m;
	return 0;
}

typedef struct contact_ctx {
	const char *collector;
	int64_t when;
	const char *error;
} contact_ctx;

static int contact_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	contact_ctx *x = vctx;
	int rc = 0;
	if (x->collector)
		rc = put(txn, ob->meta, "collector", 9, x->collector, strlen(x->collector));
	if (!rc && x->when) {
		buf b = {0};
		b_u64(&b, (uint64_t)x->when);
		rc = b.oom ? TH_ENOMEM : put(txn, ob->meta, "contact", 7, b.p, b.len);
		free(b.p);
	}
	if (!rc && x->error)
		rc = put(txn, ob->meta, "error", 5, x->error, strlen(x->error));
	return rc;
}

int th_outbox_set_contact(th_outbox *ob, const char *collector, int64_t when, const char *error)
{
	contact_ctx x = {collector, when, error};
	return ob_write(ob, contact_fn, &x);
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
			uint64_t r = 0;
			for (int i = 0; i < 8; i++)
				r = (r << 8) | ((const uint8_t *)k.mv_data)[pl + (size_t)i];
			int arc = keep_add(x, n, r);
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
			if (k.mv_size == pl + TH_HASH_LEN && v.mv_size >= 17) {
				memcpy(h->hash, (const uint8_t *)k.mv_data + pl, TH_HASH_LEN);
				rd hr = {v.mv_data, v.mv_size, 0, 0};
				h->rev = r_u64(&hr);
				r_u8(&hr);
				h->created = (int64_t)r_u64(&hr);
				h->ok = !hr.bad;
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
		int grc = get(txn, ob->acked, pk, pl, &av);
		if (grc == 0) {
			th_ob_entry e;
			if (dec_entry(&av, 0, &e, NULL, NULL) == 0) {
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
			if ((rc = del(txn, ob->history, hk, pl + TH_HASH_LEN)) != 0)
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

size_t th_outbox_history_count(th_outbox *ob)
{
	MDB_txn *txn;
	if (mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn))
		return 0;
	MDB_stat st;
	size_t n = mdb_stat(txn, ob->history, &st) == 0 ? st.ms_entries : 0;
	mdb_txn_abort(txn);
	return n;
}

/* outbox_codec.c -- the outbox's byte layouts (OUTBOX.md "Keys", "Entry"):
 * byte buffers, the report blob (the canonical form of schema/th_canon.h and
 * the file's row order), entries, keys. */
#include "outbox_private.h"

#include <stdlib.h>
#include <string.h>

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
void ob_put_bytes(ob_buf *b, const void *d, size_t n)
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

void ob_put_u64(ob_buf *b, uint64_t v)
{
	uint8_t t[8];
	for (int i = 0; i < 8; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	ob_put_bytes(b, t, 8);
}

void ob_put_u32(ob_buf *b, uint32_t v)
{
	uint8_t t[4];
	for (int i = 0; i < 4; i++)
		t[i] = (uint8_t)(v >> (8 * i));
	ob_put_bytes(b, t, 4);
}

void ob_put_u8(ob_buf *b, uint8_t v) { ob_put_bytes(b, &v, 1); }

void ob_put_str(ob_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	ob_put_u32(b, (uint32_t)n);
	ob_put_bytes(b, s ? s : "", n);
}

const uint8_t *ob_take(ob_rd *r, size_t n)
{
	if (r->bad || n > r->len - r->off) {
		r->bad = 1;
		return NULL;
	}
	const uint8_t *p = r->p + r->off;
	r->off += n;
	return p;
}

uint64_t ob_get_u64(ob_rd *r)
{
	const uint8_t *p = ob_take(r, 8);
	uint64_t v = 0;
	for (int i = 0; p && i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint32_t ob_get_u32(ob_rd *r)
{
	const uint8_t *p = ob_take(r, 4);
	uint32_t v = 0;
	for (int i = 0; p && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

uint8_t ob_get_u8(ob_rd *r)
{
	const uint8_t *p = ob_take(r, 1);
	return p ? *p : 0;
}

char *ob_get_str(ob_rd *r)
{
	uint32_t n = ob_get_u32(r);
	const uint8_t *p = ob_take(r, n);
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

/* --- report blob: the canonical form and the file's row order ----------------- */
int ob_enc_blob(ob_buf *b, const th_report *r, const th_def *d)
{
	uint8_t *canon = NULL;
	size_t clen = 0;
	int rc = th_canon_encode(r, d, &canon, &clen);
	if (rc)
		return rc;
	size_t *order = th_report_key_order(r, d);
	if (!order) {
		free(canon);
		return TH_ENOMEM;
	}
	int sorted = 1;
	for (size_t i = 0; i < r->n_rows && sorted; i++)
		sorted = order[i] == i;
	ob_put_u32(b, sorted ? 0 : (uint32_t)r->n_rows);
	for (size_t i = 0; !sorted && i < r->n_rows; i++)
		ob_put_u32(b, (uint32_t)order[i]);
	ob_put_bytes(b, canon, clen);
	free(order);
	free(canon);
	return b->oom ? TH_ENOMEM : 0;
}

int ob_dec_blob(const ob_blob *blob, const th_def *d, const th_ob_entry *e, th_report **out)
{
	ob_rd r = {blob->p, blob->len, 0, 0};
	uint32_t n = ob_get_u32(&r);
	const uint8_t *order = ob_take(&r, (size_t)n * 4);
	if (r.bad)
		return TH_ESTORE;
	th_report *rep = NULL;
	int rc = th_canon_decode(blob->p + r.off, blob->len - r.off, d, e->unit, e->period, e->rev,
	                         &rep);
	if (rc)
		return rc;
	if (n) {
		/* canonical row i was the file's row order[i] */
		th_value *cells = n == rep->n_rows ? calloc((size_t)n * rep->n_cols + 1, sizeof *cells)
		                                   : NULL;
		uint8_t *seen = cells ? calloc(n, 1) : NULL;
		ob_rd o = {order, (size_t)n * 4, 0, 0};
		for (uint32_t i = 0; seen && i < n; i++) {
			uint32_t to = ob_get_u32(&o);
			if (to >= n || seen[to])
				break;
			seen[to] = 1;
			memcpy(&cells[(size_t)to * rep->n_cols], th_report_cell(rep, i, 0),
			       rep->n_cols * sizeof *cells);
			if (i + 1 == n) {
				free(rep->cells);   /* the values moved, their strings with them */
				rep->cells = cells;
				cells = NULL;
			}
		}
		int done = cells == NULL;
		free(seen);
		free(cells);
		if (!done) {
			th_report_destroy(&rep);
			return TH_ESTORE;
		}
	}
	*out = rep;
	return 0;
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

void ob_enc_entry(ob_buf *b, const th_ob_entry *e, const ob_blob *blob)
{
	ob_put_u8(b, (uint8_t)(blob && blob->len ? blob->format : OB_BLOB_CANON));
	ob_put_u64(b, e->rev);
	ob_put_u32(b, e->version);
	ob_put_bytes(b, e->hash, TH_HASH_LEN);
	ob_put_u64(b, (uint64_t)e->created);
	ob_put_u8(b, (uint8_t)e->state);
	ob_put_u32(b, e->attempts);
	ob_put_u32(b, (uint32_t)e->code);
	ob_put_u64(b, (uint64_t)(int64_t)e->row);
	ob_put_u64(b, e->stored_rev);
	ob_put_bytes(b, e->store, TH_STORE_UUID_LEN);
	ob_put_u64(b, e->commit);
	ob_put_u64(b, (uint64_t)e->commit_time);
	ob_put_u64(b, (uint64_t)e->updated);
	ob_put_u8(b, e->resend);
	ob_put_str(b, e->unit);
	ob_put_str(b, e->appendix);
	ob_put_str(b, e->period);
	ob_put_str(b, e->file);
	ob_put_str(b, e->message);
	ob_put_str(b, e->column);
	size_t n = blob ? blob->len : 0;
	ob_put_u32(b, (uint32_t)n);
	ob_put_bytes(b, n ? blob->p : (const uint8_t *)"", n);
}

int ob_dec_entry(const MDB_val *v, th_ob_entry *e, ob_blob *blob)
{
	ob_rd r = {v->mv_data, v->mv_size, 0, 0};
	memset(e, 0, sizeof *e);
	uint8_t format = ob_get_u8(&r);
	if (format != OB_BLOB_LEGACY && format != OB_BLOB_CANON)
		return TH_ESTORE;
	e->rev = ob_get_u64(&r);
	e->version = ob_get_u32(&r);
	const uint8_t *h = ob_take(&r, TH_HASH_LEN);
	if (h)
		memcpy(e->hash, h, TH_HASH_LEN);
	e->created = (int64_t)ob_get_u64(&r);
	e->state = (th_ob_state)ob_get_u8(&r);
	e->attempts = ob_get_u32(&r);
	e->code = (int32_t)ob_get_u32(&r);
	e->row = (long)(int64_t)ob_get_u64(&r);
	e->stored_rev = ob_get_u64(&r);
	const uint8_t *st = ob_take(&r, TH_STORE_UUID_LEN);
	if (st)
		memcpy(e->store, st, TH_STORE_UUID_LEN);
	e->commit = ob_get_u64(&r);
	e->commit_time = (int64_t)ob_get_u64(&r);
	e->updated = (int64_t)ob_get_u64(&r);
	e->resend = ob_get_u8(&r);
	e->unit = ob_get_str(&r);
	e->appendix = ob_get_str(&r);
	e->period = ob_get_str(&r);
	e->file = ob_get_str(&r);
	e->message = ob_get_str(&r);
	e->column = ob_get_str(&r);
	uint32_t bl = ob_get_u32(&r);
	const uint8_t *bp = ob_take(&r, bl);
	if (r.bad || e->state > TH_OB_REJECTED) {
		th_ob_entry_free(e);
		return TH_ESTORE;
	}
	if (blob)
		*blob = (ob_blob){bp, bl, format};
	return 0;
}

int ob_entry_report(th_ob_entry *e, const ob_blob *blob, const th_defset *defs)
{
	if (!defs || !blob->len || blob->format != OB_BLOB_CANON)
		return 0;
	const th_def *d = th_defset_get(defs, e->appendix, e->version);
	return d ? ob_dec_blob(blob, d, e, &e->report) : 0;
}

/* --- keys ----------------------------------------------------------------------- */
int ob_key(uint8_t *k, const char *unit, const char *app, const char *per, const void *suffix,
           size_t slen)
{
	int n = th_report_key(unit, app, per, (char *)k + 1, OB_KEY_MAX - 1 - 40);
	if (n < 0 || n > 255)
		return TH_ETOOBIG;
	k[0] = (uint8_t)n;
	if (slen)
		memcpy(k + 1 + n, suffix, slen);
	return 1 + n + (int)slen;
}

void ob_be64(uint8_t *o, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		o[i] = (uint8_t)(v >> (56 - 8 * i));
}

uint64_t ob_rd_be64(const uint8_t *p)
{
	uint64_t r = 0;
	for (int i = 0; i < 8; i++)
		r = (r << 8) | p[i];
	return r;
}

int64_t ob_val_i64(const MDB_val *v)
{
	if (v->mv_size != 8)
		return 0;
	ob_rd r = {v->mv_data, 8, 0, 0};
	return (int64_t)ob_get_u64(&r);
}

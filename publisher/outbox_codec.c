/* outbox_codec.c -- the outbox's byte layouts (OUTBOX.md "Keys", "Entry"):
 * byte buffers, the definition-independent report blob, entries, keys. */
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

/* --- report blob (definition-independent) -------------------------------- */
void ob_enc_report(ob_buf *b, const th_report *r)
{
	ob_put_u8(b, 1);
	ob_put_u32(b, r->version);
	ob_put_u32(b, (uint32_t)r->as_of);
	ob_put_u8(b, r->tombstone);
	ob_put_u64(b, r->rev);
	ob_put_u32(b, (uint32_t)r->n_rows);
	ob_put_u32(b, (uint32_t)r->n_cols);
	ob_put_str(b, r->unit);
	ob_put_str(b, r->appendix);
	ob_put_str(b, r->period);
	for (size_t i = 0; i < r->n_rows * r->n_cols; i++) {
		const th_value *v = &r->cells[i];
		if (v->null) {
			ob_put_u8(b, 0);
		} else if (v->s) {
			ob_put_u8(b, 2);
			ob_put_u32(b, v->len);
			ob_put_bytes(b, v->s, v->len);
		} else {
			ob_put_u8(b, 1);
			ob_put_u64(b, (uint64_t)v->i);
		}
	}
}

/* One cell: u8 0 (null), u8 1 + i64, u8 2 + u32 len + bytes.  0 or -1. */
static int dec_cell(ob_rd *r, th_value *v)
{
	uint8_t tag = ob_get_u8(r);
	if (tag == 0) {
		v->null = 1;
	} else if (tag == 1) {
		v->null = 0;
		v->i = (int64_t)ob_get_u64(r);
	} else if (tag == 2) {
		uint32_t n = ob_get_u32(r);
		const uint8_t *p = ob_take(r, n);
		if (!p)
			return -1;
		v->s = malloc((size_t)n + 1);
		if (!v->s)
			return -1;
		memcpy(v->s, p, n);
		v->s[n] = 0;
		v->len = n;
		v->null = 0;
	} else {
		return -1;
	}
	return r->bad ? -1 : 0;
}

th_report *ob_dec_report(ob_rd *r)
{
	if (ob_get_u8(r) != 1) {
		r->bad = 1;
		return NULL;
	}
	uint32_t version = ob_get_u32(r);
	int32_t as_of = (int32_t)ob_get_u32(r);
	uint8_t tomb = ob_get_u8(r);
	uint64_t rev = ob_get_u64(r);
	uint32_t nr = ob_get_u32(r), nc = ob_get_u32(r);
	char *unit = ob_get_str(r), *app = ob_get_str(r), *per = ob_get_str(r);
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
		for (uint32_t c = 0; c < nc; c++)
			if (dec_cell(r, th_report_cell(rep, (size_t)row, c)) != 0)
				goto fail;
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

void ob_enc_entry(ob_buf *b, const th_ob_entry *e, const th_report *r)
{
	ob_put_u8(b, 1);
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
	if (r) {
		ob_buf rb = {0};
		ob_enc_report(&rb, r);
		if (rb.oom)
			b->oom = 1;
		ob_put_u32(b, (uint32_t)rb.len);
		ob_put_bytes(b, rb.p, rb.len);
		free(rb.p);
	} else {
		ob_put_u32(b, 0);
	}
}

int ob_dec_entry(const MDB_val *v, int want_report, th_ob_entry *e, const uint8_t **blob,
                 size_t *blob_len)
{
	ob_rd r = {v->mv_data, v->mv_size, 0, 0};
	memset(e, 0, sizeof *e);
	if (ob_get_u8(&r) != 1)
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
	if (r.bad || e->state > TH_OB_REJECTED)
		goto bad;
	if (blob)
		*blob = bp;
	if (blob_len)
		*blob_len = bl;
	if (want_report && bl) {
		ob_rd rr = {bp, bl, 0, 0};
		e->report = ob_dec_report(&rr);
		if (!e->report)
			goto bad;
	}
	return 0;
bad:
	th_ob_entry_free(e);
	return TH_ESTORE;
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

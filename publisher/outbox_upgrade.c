/* outbox_upgrade.c -- outboxes of format 1 brought to format 2 in place
 * (OUTBOX.md "Format history").
 *
 * Format 1 stored each report as its own definition-independent blob; format 2
 * stores the canonical form (schema/th_canon.h) with the file's row order, which
 * needs the report's definition.  At open, in the transaction that checks the
 * format, every pending and acknowledged entry whose definition is in the
 * outbox's cache is rewritten and the format becomes "2".  An entry whose
 * definition the outbox never received (queued with --defs, never connected)
 * keeps its format 1 blob, counted in meta "legacy"; it is rewritten in the
 * transaction that caches its definition from a welcome.  Until then it is
 * listed without its report, which is also when the agent could not send it. */
#include "outbox_private.h"
#include "th_lmdb.h"

#include <stdlib.h>
#include <string.h>

/* The format 1 report blob: u8 1, u32 version, i32 as_of, u8 tombstone, u64
 * rev, u32 rows, u32 cols, str unit, str appendix, str period, then rows x cols
 * cells, each u8 0 (null), u8 1 + i64, or u8 2 + u32 len + bytes (text). */
static int legacy_cell(ob_rd *r, th_value *v)
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
		if (!p || !(v->s = malloc((size_t)n + 1)))
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

static th_report *legacy_report(const ob_blob *blob)
{
	ob_rd r = {blob->p, blob->len, 0, 0};
	if (ob_get_u8(&r) != 1)
		return NULL;
	uint32_t version = ob_get_u32(&r);
	int32_t as_of = (int32_t)ob_get_u32(&r);
	uint8_t tomb = ob_get_u8(&r);
	uint64_t rev = ob_get_u64(&r);
	uint32_t nr = ob_get_u32(&r), nc = ob_get_u32(&r);
	char *unit = ob_get_str(&r), *app = ob_get_str(&r), *per = ob_get_str(&r);
	th_report *rep = NULL;
	if (r.bad || nc > 4096 || (uint64_t)nr * (nc ? nc : 1) > (r.len - r.off))
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
			if (legacy_cell(&r, th_report_cell(rep, (size_t)row, c)) != 0)
				goto fail;
	}
	free(unit);
	free(app);
	free(per);
	return rep;
fail:
	th_report_destroy(&rep);
	free(unit);
	free(app);
	free(per);
	return NULL;
}

/* The format 2 value of a format 1 entry, when its definition is in defs.
 * 1 converted (*nv), 0 left as it is, or a negative TH_E*. */
static int convert(const MDB_val *v, const th_defset *defs, ob_buf *nv)
{
	th_ob_entry e;
	ob_blob blob;
	if (ob_dec_entry(v, &e, &blob) != 0)
		return 0;   /* unreadable: skipped by listings, left alone */
	int out = 0;
	if (blob.format != OB_BLOB_LEGACY) {
		th_ob_entry_free(&e);
		return 0;
	}
	const th_def *d = defs ? th_defset_get(defs, e.appendix, e.version) : NULL;
	th_report *r = blob.len && d ? legacy_report(&blob) : NULL;
	ob_buf cb = {0};
	if (!blob.len) {
		ob_enc_entry(nv, &e, NULL);   /* no report: only the entry's format changes */
		out = 1;
	} else if (r && ob_enc_blob(&cb, r, d) == 0) {
		ob_blob canon = {cb.p, cb.len, OB_BLOB_CANON};
		ob_enc_entry(nv, &e, &canon);
		out = 1;
	}
	if (out && nv->oom)
		out = TH_ENOMEM;
	free(cb.p);
	th_report_destroy(&r);
	th_ob_entry_free(&e);
	return out;
}

/* A rewritten entry, put after the walk over its table. */
typedef struct rewrite {
	uint8_t key[OB_KEY_MAX];
	size_t kl;
	ob_buf v;
} rewrite;

/* Rewrites the convertible format 1 entries of one table; *left counts the
 * others.  The new values are gathered under the cursor and written after it
 * closes (a put of another size moves the very key the cursor points at). */
static int convert_table(MDB_txn *txn, MDB_dbi dbi, const th_defset *defs, size_t *left)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, dbi, &c);
	if (rc)
		return th_lmdb_error(rc);
	rewrite *rw = NULL;
	size_t n = 0, cap = 0;
	MDB_val k, v;
	int mrc;
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0 && rc == 0;
	     mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (!v.mv_size || ((const uint8_t *)v.mv_data)[0] != OB_BLOB_LEGACY)
			continue;
		if (k.mv_size > OB_KEY_MAX) {
			(*left)++;
			continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			rewrite *nr = realloc(rw, nc * sizeof *nr);
			if (!nr) {
				rc = TH_ENOMEM;
				break;
			}
			rw = nr;
			cap = nc;
		}
		memset(&rw[n], 0, sizeof rw[n]);
		int cv = convert(&v, defs, &rw[n].v);
		if (cv == 1) {
			memcpy(rw[n].key, k.mv_data, k.mv_size);
			rw[n].kl = k.mv_size;
			n++;
		} else {
			free(rw[n].v.p);
			if (cv == 0)
				(*left)++;
			else
				rc = cv;
		}
	}
	mdb_cursor_close(c);
	if (!rc && mrc != MDB_NOTFOUND)
		rc = th_lmdb_error(mrc);
	for (size_t i = 0; i < n; i++) {
		if (!rc)
			rc = ob_put(txn, dbi, rw[i].key, rw[i].kl, rw[i].v.p, rw[i].v.len);
		free(rw[i].v.p);
	}
	free(rw);
	return rc;
}

int ob_upgrade_entries(th_outbox *ob, MDB_txn *txn, int from_open)
{
	MDB_val v;
	if (!from_open) {
		int grc = ob_get(txn, ob->meta, "legacy", 6, &v);
		if (grc == TH_ENOTFOUND || (grc == 0 && ob_val_i64(&v) == 0))
			return 0;   /* nothing waits for a definition */
		if (grc)
			return grc;
	}
	th_defset *defs = NULL;
	int rc = ob_cached_defs(ob, txn, 0, &defs);
	if (rc && rc != TH_ENOTFOUND)
		return rc;
	size_t left = 0;
	rc = convert_table(txn, ob->pending, defs, &left);
	if (!rc)
		rc = convert_table(txn, ob->acked, defs, &left);
	if (!rc)
		rc = convert_table(txn, ob->rejected, defs, &left);   /* no reports: always */
	th_defset_destroy(&defs);
	if (rc)
		return rc;
	return left ? ob_put_u64_val(txn, ob->meta, "legacy", 6, left)
	            : ob_del(txn, ob->meta, "legacy", 6);
}

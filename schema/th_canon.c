/* th_canon.c -- the canonical form of a report (schema/PROTOCOL.md section 4):
 * encoder, decoder and content hash. */
#include "th_canon.h"
#include "th_mp.h"

#include <msgpack.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static void pack_str(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

int th_canon_encode(const th_report *r, const th_def *d, uint8_t **out, size_t *len)
{
	if (r->n_cols != d->n_cols)
		return TH_EINVAL;
	size_t *idx = th_report_key_order(r, d);
	if (!idx)
		return TH_ENOMEM;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 5);
	pack_str(&pk, r->appendix, strlen(r->appendix));
	msgpack_pack_uint64(&pk, r->version);
	msgpack_pack_int64(&pk, r->as_of);
	if (r->tombstone)
		msgpack_pack_true(&pk);
	else
		msgpack_pack_false(&pk);
	msgpack_pack_array(&pk, r->n_rows);
	int rc = TH_OK;
	for (size_t i = 0; i < r->n_rows; i++) {
		msgpack_pack_array(&pk, r->n_cols);
		for (size_t c = 0; c < r->n_cols; c++) {
			const th_value *v = th_report_cell(r, idx[i], c);
			const th_column *col = &d->cols[c];
			if (v->null) {
				msgpack_pack_nil(&pk);
				continue;
			}
			switch (col->type) {
			case TH_T_ENUM:
				if (v->i < 0 || (uint64_t)v->i >= col->n_values) {
					rc = TH_ERANGE;
					goto done;
				}
				pack_str(&pk, col->values[v->i].code, strlen(col->values[v->i].code));
				break;
			case TH_T_BOOL:
				if (v->i)
					msgpack_pack_true(&pk);
				else
					msgpack_pack_false(&pk);
				break;
			case TH_T_TEXT:
				pack_str(&pk, v->s ? v->s : "", v->len);
				break;
			default:
				msgpack_pack_int64(&pk, v->i);
			}
		}
	}
done:
	free(idx);
	if (rc) {
		msgpack_sbuffer_destroy(&sb);
		return rc;
	}
	*out = (uint8_t *)sb.data;
	*len = sb.size;
	return TH_OK;
}

int th_canon_encode_hash(const th_report *r, const th_def *d, uint8_t **out, size_t *len,
                         uint8_t hash[TH_HASH_LEN])
{
	int rc = th_canon_encode(r, d, out, len);
	if (rc == TH_OK)
		crypto_generichash(hash, TH_HASH_LEN, *out, *len, NULL, 0);
	return rc;
}

int th_canon_hash(const th_report *r, const th_def *d, uint8_t out[TH_HASH_LEN])
{
	uint8_t *buf;
	size_t len;
	int rc = th_canon_encode_hash(r, d, &buf, &len, out);
	free(rc == TH_OK ? buf : NULL);
	return rc;
}

int th_canon_decode(const uint8_t *buf, size_t len, const th_def *d, const char *unit,
                    const char *period, uint64_t rev, th_report **out)
{
	th_mp m;
	th_mp_init(&m, buf, len);
	uint32_t n, nrows;
	const char *s;
	uint32_t sn;
	uint64_t version;
	int64_t as_of;
	int tomb;
	if (th_mp_array(&m, &n) || n != 5 || th_mp_str(&m, &s, &sn) || th_mp_uint(&m, &version) ||
	    th_mp_int(&m, &as_of) || th_mp_bool(&m, &tomb) || th_mp_array(&m, &nrows))
		return TH_ESTORE;
	/* a form of another appendix or version is not this definition's */
	if (sn != strlen(d->id) || memcmp(s, d->id, sn) || version != d->version || as_of < INT32_MIN ||
	    as_of > INT32_MAX)
		return TH_ESTORE;
	th_report *r = th_report_new(unit, d->id, (uint32_t)version, period, rev, d->n_cols);
	if (!r)
		return TH_ENOMEM;
	r->as_of = (int32_t)as_of;
	r->tombstone = (uint8_t)tomb;
	for (uint32_t i = 0; i < nrows; i++) {
		uint32_t nc;
		if (th_mp_array(&m, &nc) || nc != d->n_cols || th_report_add_row(r) < 0)
			goto bad;
		for (uint32_t c = 0; c < nc; c++) {
			th_value *v = th_report_cell(r, i, c);
			const th_column *col = &d->cols[c];
			if (th_mp_peek(&m) == TH_MP_NIL) {
				th_mp_nil(&m);
				continue;
			}
			v->null = 0;
			switch (col->type) {
			case TH_T_BOOL: {
				int b;
				if (th_mp_bool(&m, &b))
					goto bad;
				v->i = b;
				break;
			}
			case TH_T_ENUM:
				if (th_mp_str(&m, &s, &sn))
					goto bad;
				v->i = -1;
				for (size_t k = 0; k < col->n_values; k++)
					if (strlen(col->values[k].code) == sn && !memcmp(col->values[k].code, s, sn))
						v->i = (int64_t)k;
				if (v->i < 0)
					goto bad;
				break;
			case TH_T_TEXT:
				if (th_mp_str(&m, &s, &sn) || !(v->s = strndup(s, sn)))
					goto bad;
				v->len = sn;
				break;
			default:
				if (th_mp_int(&m, &v->i))
					goto bad;
			}
		}
	}
	if (th_mp_left(&m))
		goto bad;   /* bytes after the form */
	*out = r;
	return TH_OK;
bad:
	th_report_destroy(&r);
	return TH_ESTORE;
}

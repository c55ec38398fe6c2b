/* th_wire.c -- encoding and decoding of protocol messages (PROTOCOL.md). */
#include "th_wire.h"
#include "th_mp.h"

#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const th_limits th_limits_default = {
	.max_msg_bytes = 8u << 20,
	.max_reports = 1000,
	.max_rows = 10000,
	.max_text = 8000,
	.max_inflight = 64,
};

#define MAX_DEPTH 8
#define MAX_FIELDS 64      /* map pairs in any envelope or report map */
#define MAX_STR 65536      /* identity strings, messages */

static const char *type_names[] = {NULL, "hello", "welcome", "submit", "ack", "error", "query", "result"};

const char *th_ack_status_name(th_ack_status s)
{
	static const char *n[] = {"accepted", "duplicate", "stale", "retry_later", "rejected"};
	return (unsigned)s <= TH_ACK_REJECTED ? n[s] : "unknown";
}

static int ack_status_parse(const char *s, uint32_t n, th_ack_status *out)
{
	for (int i = 0; i <= TH_ACK_REJECTED; i++) {
		const char *name = th_ack_status_name((th_ack_status)i);
		if (strlen(name) == n && memcmp(name, s, n) == 0) {
			*out = (th_ack_status)i;
			return 0;
		}
	}
	return TH_EPROTO;
}

/* --- packing helpers ---------------------------------------------------------- */

typedef struct {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} packer;

static void pk_init(packer *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void pk_str(packer *p, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	msgpack_pack_str(&p->pk, n);
	msgpack_pack_str_body(&p->pk, s ? s : "", n);
}

static void pk_kstr(packer *p, const char *k, const char *v)
{
	pk_str(p, k);
	pk_str(p, v);
}

static void pk_kuint(packer *p, const char *k, uint64_t v)
{
	pk_str(p, k);
	msgpack_pack_uint64(&p->pk, v);
}

static void pk_kint(packer *p, const char *k, int64_t v)
{
	pk_str(p, k);
	msgpack_pack_int64(&p->pk, v);
}

static void pk_header(packer *p, th_msg_type t, size_t n_more)
{
	msgpack_pack_map(&p->pk, 2 + n_more);
	pk_kuint(p, "v", TH_WIRE_VERSION);
	pk_kstr(p, "t", type_names[t]);
}

static int pk_done(packer *p, uint8_t **out, size_t *len)
{
	if (!p->sb.data && p->sb.size) {
		msgpack_sbuffer_destroy(&p->sb);
		return TH_ENOMEM;
	}
	*out = (uint8_t *)p->sb.data;
	*len = p->sb.size;
	return TH_OK;
}

/* --- decoding helpers --------------------------------------------------------- */

static int why_set(const char **why, const char *msg, int code)
{
	if (why)
		*why = msg;
	return code;
}

static int key_is(const char *k, uint32_t n, const char *name)
{
	return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* Copies a msgpack string, checking UTF-8 and length, NFC-normalised. */
static int dup_str(th_mp *m, uint32_t max, char **out)
{
	const char *s;
	uint32_t n;
	int rc = th_mp_str(m, &s, &n);
	if (rc)
		return rc;
	if (n > max)
		return TH_ETOOBIG;
	size_t l;
	return th_utf8_nfc(s, n, out, &l);   /* TH_EUTF8 when invalid */
}

/* Reads the envelope map header and checks "v" and "t".  On success m is
 * positioned at the start of the map's pairs (rewound) and *npairs set. */
static int envelope(th_mp *m, const uint8_t *buf, size_t len, th_msg_type *type, uint32_t *npairs,
                    const char **why)
{
	th_mp_init(m, buf, len);
	uint32_t n;
	int rc = th_mp_map(m, &n);
	if (rc)
		return why_set(why, "message is not a msgpack map", TH_EPROTO);
	if (n > MAX_FIELDS)
		return why_set(why, "too many fields in the message", TH_EPROTO);
	const uint8_t *start = m->p;
	int have_v = 0, have_t = 0;
	uint64_t v = 0;
	*type = 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (th_mp_str(m, &k, &kn))
			return why_set(why, "message map keys must be strings", TH_EPROTO);
		if (key_is(k, kn, "v")) {
			if (have_v++ || th_mp_uint(m, &v))
				return why_set(why, "field v: must be one unsigned integer", TH_EPROTO);
		} else if (key_is(k, kn, "t")) {
			const char *t;
			uint32_t tn;
			if (have_t++ || th_mp_str(m, &t, &tn))
				return why_set(why, "field t: must be one string", TH_EPROTO);
			for (int j = TH_MSG_HELLO; j <= TH_MSG_RESULT; j++)
				if (key_is(t, tn, type_names[j]))
					*type = (th_msg_type)j;
			if (!*type)
				return why_set(why, "field t: unknown message type", TH_EPROTO);
		} else if (th_mp_skip(m, MAX_DEPTH)) {
			return why_set(why, "malformed or too deeply nested value", TH_EPROTO);
		}
	}
	if (!have_v || !have_t)
		return why_set(why, "message lacks field v or t", TH_EPROTO);
	if (v != TH_WIRE_VERSION)
		return why_set(why, "unsupported protocol version", TH_EPROTO);
	if (m->p != m->end)
		return why_set(why, "trailing bytes after the message", TH_EPROTO);
	m->p = start;
	*npairs = n;
	return TH_OK;
}

int th_wire_type(const uint8_t *buf, size_t len, th_msg_type *type, const char **why)
{
	th_mp m;
	uint32_t n;
	return envelope(&m, buf, len, type, &n, why);
}

uint64_t th_wire_peek_id(const uint8_t *buf, size_t len)
{
	th_mp m;
	uint32_t n;
	th_mp_init(&m, buf, len);
	if (th_mp_map(&m, &n) || n > MAX_FIELDS)
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		uint64_t id;
		if (th_mp_str(&m, &k, &kn))
			return 0;
		if (key_is(k, kn, "id"))
			return th_mp_uint(&m, &id) ? 0 : id;
		if (th_mp_skip(&m, MAX_DEPTH))
			return 0;
	}
	return 0;
}

static int next_field(th_mp *m, const char *const *names, int nnames, uint64_t *seen, int *err)
{
	const char *k;
	uint32_t kn;
	if (th_mp_str(m, &k, &kn)) {
		*err = TH_EPROTO;
		return -2;
	}
	for (int j = 0; j < nnames; j++)
		if (key_is(k, kn, names[j])) {
			if (*seen & (1ULL << j)) {
				*err = TH_EPROTO;
				return -3;      /* duplicate */
			}
			*seen |= 1ULL << j;
			return j;
		}
	return -1;
}

/* --- hello ------------------------------------------------------------------ */

int th_wire_encode_hello(const th_hello *h, uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	pk_header(&p, TH_MSG_HELLO, 3);
	pk_kuint(&p, "id", h->id);
	pk_kstr(&p, "agent", h->agent ? h->agent : "");
	pk_kstr(&p, "unit", h->unit ? h->unit : "");
	return pk_done(&p, out, len);
}

/* Common decode loop for a message: validates the envelope type, then calls
 * field(ctx, index, m) for each known key. */
typedef int (*field_fn)(void *ctx, int idx, th_mp *m, const char **why);

static int decode_msg(const uint8_t *buf, size_t len, th_msg_type want, const char *const *names,
                      int nnames, field_fn fn, void *ctx, uint64_t required, const char **why)
{
	th_mp m;
	th_msg_type t;
	uint32_t n;
	int rc = envelope(&m, buf, len, &t, &n, why);
	if (rc)
		return rc;
	if (t != want)
		return why_set(why, "unexpected message type", TH_EPROTO);
	uint64_t seen = 0;
	for (uint32_t i = 0; i < n; i++) {
		int err = 0;
		int idx = next_field(&m, names, nnames, &seen, &err);
		if (idx == -3)
			return why_set(why, "duplicate field in message", TH_EPROTO);
		if (idx == -2)
			return why_set(why, "message map keys must be strings", TH_EPROTO);
		if (idx < 0) {
			/* "v", "t" and unknown fields */
			if (th_mp_skip(&m, MAX_DEPTH))
				return why_set(why, "malformed value", TH_EPROTO);
			continue;
		}
		rc = fn(ctx, idx, &m, why);
		if (rc)
			return rc;
	}
	if ((seen & required) != required)
		return why_set(why, "a required field is missing", TH_EPROTO);
	return TH_OK;
}

static int bad(const char **why, const char *msg, int rc)
{
	if (rc == TH_EUTF8)
		return why_set(why, "invalid UTF-8 in a string field", TH_EUTF8);
	if (rc == TH_ETOOBIG)
		return why_set(why, "a string field is too long", TH_ETOOBIG);
	return why_set(why, msg, rc == TH_ENOMEM ? TH_ENOMEM : TH_EPROTO);
}

static const char *const hello_names[] = {"id", "agent", "unit"};

static int hello_field(void *ctx, int idx, th_mp *m, const char **why)
{
	th_hello *h = ctx;
	int rc;
	switch (idx) {
	case 0: rc = th_mp_uint(m, &h->id); if (rc) return bad(why, "hello.id: expected an unsigned integer", rc); break;
	case 1: rc = dup_str(m, 256, &h->agent); if (rc) return bad(why, "hello.agent: expected a string", rc); break;
	case 2: rc = dup_str(m, TH_CODE_MAX, &h->unit); if (rc) return bad(why, "hello.unit: expected a string", rc); break;
	}
	return TH_OK;
}

int th_wire_decode_hello(const uint8_t *buf, size_t len, th_hello *h, const char **why)
{
	memset(h, 0, sizeof *h);
	int rc = decode_msg(buf, len, TH_MSG_HELLO, hello_names, 3, hello_field, h, 0, why);
	if (rc)
		th_hello_free(h);
	return rc;
}

void th_hello_free(th_hello *h)
{
	free(h->agent);
	free(h->unit);
	memset(h, 0, sizeof *h);
}

/* --- welcome ------------------------------------------------------------------ */

int th_wire_encode_welcome(const th_welcome *w, uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	pk_header(&p, TH_MSG_WELCOME, 6);
	pk_kuint(&p, "id", w->id);
	pk_str(&p, "store");
	msgpack_pack_bin(&p.pk, TH_STORE_UUID_LEN);
	msgpack_pack_bin_body(&p.pk, w->store, TH_STORE_UUID_LEN);
	pk_kstr(&p, "unit", w->unit);
	pk_str(&p, "limits");
	msgpack_pack_map(&p.pk, 5);
	pk_kuint(&p, "max_msg_bytes", w->limits.max_msg_bytes);
	pk_kuint(&p, "max_reports", w->limits.max_reports);
	pk_kuint(&p, "max_rows", w->limits.max_rows);
	pk_kuint(&p, "max_text", w->limits.max_text);
	pk_kuint(&p, "max_inflight", w->limits.max_inflight);
	pk_str(&p, "defs");
	msgpack_pack_array(&p.pk, w->n_defs);
	for (size_t i = 0; i < w->n_defs; i++)
		pk_str(&p, w->defs[i]);
	pk_str(&p, "revs");
	msgpack_pack_array(&p.pk, w->n_revs);
	for (size_t i = 0; i < w->n_revs; i++) {
		msgpack_pack_array(&p.pk, 4);
		pk_str(&p, w->revs[i].unit);
		pk_str(&p, w->revs[i].appendix);
		pk_str(&p, w->revs[i].period);
		msgpack_pack_uint64(&p.pk, w->revs[i].rev);
	}
	return pk_done(&p, out, len);
}

static const char *const welcome_names[] = {"id", "store", "unit", "limits", "defs", "revs"};
static const char *const limit_names[] = {"max_msg_bytes", "max_reports", "max_rows", "max_text",
                                          "max_inflight"};

static int welcome_field(void *ctx, int idx, th_mp *m, const char **why)
{
	th_welcome *w = ctx;
	int rc;
	uint32_t n;
	switch (idx) {
	case 0:
		if ((rc = th_mp_uint(m, &w->id)))
			return bad(why, "welcome.id: expected an unsigned integer", rc);
		break;
	case 1: {
		const uint8_t *b;
		if ((rc = th_mp_bin(m, &b, &n)) || n != TH_STORE_UUID_LEN)
			return bad(why, "welcome.store: expected 16 bytes", TH_EPROTO);
		memcpy(w->store, b, TH_STORE_UUID_LEN);
		break;
	}
	case 2:
		if ((rc = dup_str(m, TH_CODE_MAX, &w->unit)))
			return bad(why, "welcome.unit: expected a string", rc);
		break;
	case 3: {
		if ((rc = th_mp_map(m, &n)) || n > MAX_FIELDS)
			return bad(why, "welcome.limits: expected a map", TH_EPROTO);
		uint64_t seen = 0;
		w->limits = th_limits_default;
		uint32_t *dst[] = {&w->limits.max_msg_bytes, &w->limits.max_reports, &w->limits.max_rows,
		                   &w->limits.max_text, &w->limits.max_inflight};
		for (uint32_t i = 0; i < n; i++) {
			int err = 0;
			int k = next_field(m, limit_names, 5, &seen, &err);
			if (k < -1)
				return bad(why, "welcome.limits: malformed", TH_EPROTO);
			if (k < 0) {
				if (th_mp_skip(m, MAX_DEPTH))
					return bad(why, "welcome.limits: malformed", TH_EPROTO);
				continue;
			}
			uint64_t v;
			if (th_mp_uint(m, &v) || v > UINT32_MAX)
				return bad(why, "welcome.limits: values must be uint32", TH_EPROTO);
			*dst[k] = (uint32_t)v;
		}
		break;
	}
	case 4:
		if ((rc = th_mp_array(m, &n)) || n > 1000)
			return bad(why, "welcome.defs: expected an array of at most 1000 strings", TH_EPROTO);
		w->defs = calloc(n ? n : 1, sizeof *w->defs);
		if (!w->defs)
			return TH_ENOMEM;
		for (uint32_t i = 0; i < n; i++) {
			if ((rc = dup_str(m, 1u << 20, &w->defs[i])))
				return bad(why, "welcome.defs: expected strings", rc);
			w->n_defs++;
		}
		break;
	case 5:
		if ((rc = th_mp_array(m, &n)))
			return bad(why, "welcome.revs: expected an array", TH_EPROTO);
		w->revs = calloc(n ? n : 1, sizeof *w->revs);
		if (!w->revs)
			return TH_ENOMEM;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t k;
			th_rev_entry *e = &w->revs[i];
			if (th_mp_array(m, &k) || k != 4)
				return bad(why, "welcome.revs: entries are [unit, appendix, period, rev]", TH_EPROTO);
			w->n_revs++;
			if ((rc = dup_str(m, TH_CODE_MAX, &e->unit)) ||
			    (rc = dup_str(m, TH_CODE_MAX, &e->appendix)) ||
			    (rc = dup_str(m, TH_PERIOD_MAX, &e->period)) || (rc = th_mp_uint(m, &e->rev)))
				return bad(why, "welcome.revs: entries are [unit, appendix, period, rev]", rc);
		}
		break;
	}
	return TH_OK;
}

int th_wire_decode_welcome(const uint8_t *buf, size_t len, th_welcome *w, const char **why)
{
	memset(w, 0, sizeof *w);
	w->limits = th_limits_default;
	int rc = decode_msg(buf, len, TH_MSG_WELCOME, welcome_names, 6, welcome_field, w, 0x3, why);
	if (rc)
		th_welcome_free(w);
	return rc;
}

void th_welcome_free(th_welcome *w)
{
	for (size_t i = 0; i < w->n_defs; i++)
		free(w->defs[i]);
	free(w->defs);
	for (size_t i = 0; i < w->n_revs; i++) {
		free(w->revs[i].unit);
		free(w->revs[i].appendix);
		free(w->revs[i].period);
	}
	free(w->revs);
	free(w->unit);
	memset(w, 0, sizeof *w);
}

/* --- submit ------------------------------------------------------------------- */

static int pack_report(packer *p, const th_report *r, const th_def *d)
{
	msgpack_pack_map(&p->pk, 8);
	pk_kstr(p, "unit", r->unit);
	pk_kstr(p, "appendix", r->appendix);
	pk_kuint(p, "version", r->version);
	pk_kstr(p, "period", r->period);
	pk_kuint(p, "rev", r->rev);
	pk_kint(p, "as_of", r->as_of);
	pk_str(p, "tomb");
	if (r->tombstone)
		msgpack_pack_true(&p->pk);
	else
		msgpack_pack_false(&p->pk);
	pk_str(p, "rows");
	msgpack_pack_array(&p->pk, r->n_rows);
	for (size_t i = 0; i < r->n_rows; i++) {
		msgpack_pack_array(&p->pk, r->n_cols);
		for (size_t c = 0; c < r->n_cols; c++) {
			const th_value *v = th_report_cell(r, i, c);
			const th_column *col = &d->cols[c];
			if (v->null) {
				msgpack_pack_nil(&p->pk);
				continue;
			}
			switch (col->type) {
			case TH_T_ENUM:
				if (v->i < 0 || (uint64_t)v->i >= col->n_values)
					return TH_ERANGE;
				pk_str(p, col->values[v->i].code);
				break;
			case TH_T_BOOL:
				if (v->i)
					msgpack_pack_true(&p->pk);
				else
					msgpack_pack_false(&p->pk);
				break;
			case TH_T_TEXT:
				msgpack_pack_str(&p->pk, v->len);
				msgpack_pack_str_body(&p->pk, v->s ? v->s : "", v->len);
				break;
			default:
				msgpack_pack_int64(&p->pk, v->i);
			}
		}
	}
	return TH_OK;
}

int th_wire_encode_submit(uint64_t id, th_report *const *reports, size_t n, const th_defset *defs,
                          uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	pk_header(&p, TH_MSG_SUBMIT, 2);
	pk_kuint(&p, "id", id);
	pk_str(&p, "reports");
	msgpack_pack_array(&p.pk, n);
	for (size_t i = 0; i < n; i++) {
		const th_def *d = th_defset_get(defs, reports[i]->appendix, reports[i]->version);
		int rc = d && d->n_cols == reports[i]->n_cols ? pack_report(&p, reports[i], d) : TH_EAPPENDIX;
		if (rc) {
			msgpack_sbuffer_destroy(&p.sb);
			return rc;
		}
	}
	return pk_done(&p, out, len);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = NULL;
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Decodes the rows array at m against d into r. Returns 0 or TH_E* with *msg. */
static int decode_rows(th_mp *m, const th_def *d, const th_limits *lim, th_report *r, char **msg)
{
	uint32_t nrows;
	if (th_mp_array(m, &nrows)) {
		*msg = fmt("rows: expected an array");
		return TH_ETYPE;
	}
	uint32_t max_rows = d->n_key == 0 ? 1 : d->max_rows;
	if (lim->max_rows < max_rows)
		max_rows = lim->max_rows;
	if (nrows > max_rows) {
		*msg = fmt("%u rows, at most %u allowed", nrows, max_rows);
		return TH_ETOOBIG;
	}
	for (uint32_t i = 0; i < nrows; i++) {
		uint32_t nc;
		if (th_mp_array(m, &nc) || nc != d->n_cols) {
			*msg = fmt("row %u: expected an array of %zu cells", i + 1, d->n_cols);
			return TH_ETYPE;
		}
		long row = th_report_add_row(r);
		if (row < 0)
			return (int)row;
		for (uint32_t c = 0; c < nc; c++) {
			const th_column *col = &d->cols[c];
			th_value *v = th_report_cell(r, (size_t)row, c);
			int k = th_mp_peek(m);
			if (k == TH_MP_NIL) {
				th_mp_nil(m);
				continue;
			}
			int rc = TH_ETYPE;
			const char *s;
			uint32_t sn;
			switch (col->type) {
			case TH_T_INT:
			case TH_T_DEC:
			case TH_T_DATE:
				if (k == TH_MP_INT)
					rc = th_mp_int(m, &v->i);
				if (rc == TH_ERANGE) {
					*msg = fmt("row %u: column %s: integer out of range", i + 1, col->id);
					return TH_ERANGE;
				}
				break;
			case TH_T_BOOL:
				if (k == TH_MP_BOOL) {
					int b;
					rc = th_mp_bool(m, &b);
					v->i = b;
				}
				break;
			case TH_T_ENUM:
				if (k == TH_MP_STR && (rc = th_mp_str(m, &s, &sn)) == 0) {
					long e = -1;
					for (size_t j = 0; j < col->n_values; j++)
						if (strlen(col->values[j].code) == sn &&
						    memcmp(col->values[j].code, s, sn) == 0)
							e = (long)j;
					if (e < 0) {
						*msg = fmt("row %u: column %s: \"%.*s\" is not one of its codes", i + 1,
						           col->id, (int)(sn > 64 ? 64 : sn), s);
						return TH_ERANGE;
					}
					v->i = e;
				}
				break;
			case TH_T_TEXT:
				if (k == TH_MP_STR && (rc = th_mp_str(m, &s, &sn)) == 0) {
					if (sn > lim->max_text) {
						*msg = fmt("row %u: column %s: text of %u bytes exceeds the limit %u",
						           i + 1, col->id, sn, lim->max_text);
						return TH_ETOOBIG;
					}
					size_t l;
					int nrc = th_utf8_nfc(s, sn, &v->s, &l);
					if (nrc == TH_EUTF8) {
						*msg = fmt("row %u: column %s: invalid UTF-8", i + 1, col->id);
						return TH_EUTF8;
					}
					if (nrc)
						return TH_ENOMEM;
					v->len = (uint32_t)l;
					v->nfc = 1;   /* validation need not check it again */
				}
				break;
			}
			if (rc) {
				if (rc == TH_ETRUNC) {
					*msg = fmt("row %u: truncated", i + 1);
					return TH_ETRUNC;
				}
				*msg = fmt("row %u: column %s: expected %s (%s), got another msgpack type", i + 1,
				           col->id, th_type_name(col->type),
				           col->type == TH_T_ENUM ? "a code string"
				           : col->type == TH_T_DATE ? "an integer yyyymmdd"
				           : col->type == TH_T_DEC ? "a scaled integer"
				           : col->type == TH_T_BOOL ? "true/false"
				           : col->type == TH_T_TEXT ? "a string" : "an integer");
				return TH_ETYPE;
			}
			v->null = 0;
		}
	}
	return TH_OK;
}

static const char *const report_names[] = {"unit", "appendix", "version", "period", "rev",
                                           "as_of", "tomb", "rows"};

/* Decodes one report map; identity is written to s's arrays at index i even
 * when the body fails.  Returns TH_OK, or a per-report error (set in s), or
 * TH_EPROTO when the envelope structure itself is broken (whole message). */
static int decode_report(th_mp *m, size_t i, const th_defset *defs, const th_limits *lim,
                         th_submit_decoded *s)
{
	uint32_t n;
	const uint8_t *start = m->p;
	if (th_mp_map(m, &n) || n > MAX_FIELDS) {
		/* not a map: skip it, error for this report only */
		m->p = start;
		if (th_mp_skip(m, MAX_DEPTH))
			return TH_EPROTO;
		s->err[i] = TH_EPROTO;
		s->why[i] = fmt("report %zu: expected a map", i + 1);
		return TH_OK;
	}
	uint64_t seen = 0;
	const uint8_t *rows_at = NULL;
	uint64_t version = 0, rev = 0;
	int64_t as_of = 0;
	int tomb = 0;
	int ferr = 0;
	char *ferrmsg = NULL;
	for (uint32_t j = 0; j < n; j++) {
		int err = 0;
		int k = next_field(m, report_names, 8, &seen, &err);
		if (k == -2)
			goto proto;
		if (k == -3) {
			if (!ferr) {
				ferr = TH_EPROTO;
				ferrmsg = fmt("report %zu: duplicate field", i + 1);
			}
			if (th_mp_skip(m, MAX_DEPTH))
				goto proto;
			continue;
		}
		int rc = 0;
		const char *what = NULL;
		switch (k) {
		case -1: rc = th_mp_skip(m, MAX_DEPTH); if (rc) goto proto; break;
		case 0: rc = dup_str(m, TH_CODE_MAX, &s->unit[i]); what = "unit: expected a string of at most 64 bytes"; break;
		case 1: rc = dup_str(m, TH_CODE_MAX, &s->appendix[i]); what = "appendix: expected a string"; break;
		case 2: rc = th_mp_uint(m, &version); what = "version: expected an unsigned integer"; break;
		case 3: rc = dup_str(m, TH_PERIOD_MAX, &s->period[i]); what = "period: expected a short string"; break;
		case 4: rc = th_mp_uint(m, &rev); what = "rev: expected an unsigned integer"; break;
		case 5: rc = th_mp_int(m, &as_of); what = "as_of: expected an integer yyyymmdd"; break;
		case 6: rc = th_mp_bool(m, &tomb); what = "tomb: expected a boolean"; break;
		case 7:
			rows_at = m->p;
			rc = th_mp_skip(m, 4);
			if (rc == TH_ETRUNC)
				goto proto;
			what = "rows: expected an array of arrays of cells";
			break;
		}
		if (rc) {
			/* skip the bad value so the envelope can go on */
			if (rc == TH_ETYPE || rc == TH_ERANGE || rc == TH_ETOOBIG || rc == TH_EUTF8) {
				if (rc == TH_ETYPE || rc == TH_ERANGE) {
					if (th_mp_skip(m, MAX_DEPTH))
						goto proto;
				}
				if (!ferr) {
					ferr = rc == TH_ERANGE ? TH_ERANGE : rc == TH_ETOOBIG ? TH_ETOOBIG
					       : rc == TH_EUTF8 ? TH_EUTF8 : TH_ETYPE;
					ferrmsg = fmt("report %zu: %s", i + 1, what);
				}
			} else if (rc == TH_EDEPTH) {
				if (!ferr) {
					ferr = TH_EDEPTH;
					ferrmsg = fmt("report %zu: %s (nesting too deep)", i + 1, what);
				}
				goto proto;
			} else {
				goto proto;
			}
		}
	}
	s->rev[i] = rev;
	if (!s->unit[i]) s->unit[i] = strdup("");
	if (!s->appendix[i]) s->appendix[i] = strdup("");
	if (!s->period[i]) s->period[i] = strdup("");
	if (!s->unit[i] || !s->appendix[i] || !s->period[i]) {
		free(ferrmsg);
		return TH_ENOMEM;
	}
	if (ferr) {
		s->err[i] = ferr;
		s->why[i] = ferrmsg;
		return TH_OK;
	}
	if ((seen & 0x9f) != 0x9f) {   /* unit appendix version period rev rows */
		s->err[i] = TH_EMISSING;
		s->why[i] = fmt("report %zu: lacks one of unit, appendix, version, period, rev, rows", i + 1);
		return TH_OK;
	}
	if (version > UINT32_MAX || as_of < 0 || as_of > INT32_MAX) {
		s->err[i] = TH_ERANGE;
		s->why[i] = fmt("report %zu: version or as_of out of range", i + 1);
		return TH_OK;
	}
	const th_def *d = th_defset_get(defs, s->appendix[i], (uint32_t)version);
	if (!d) {
		if (th_defset_latest(defs, s->appendix[i])) {
			s->err[i] = TH_EDEFCHANGED;
			s->why[i] = fmt("%s version %llu is not known here; fetch the current definitions",
			                s->appendix[i], (unsigned long long)version);
		} else {
			s->err[i] = TH_EAPPENDIX;
			s->why[i] = fmt("unknown appendix \"%s\"", s->appendix[i]);
		}
		return TH_OK;
	}
	th_report *r = th_report_new(s->unit[i], s->appendix[i], (uint32_t)version, s->period[i], rev,
	                             d->n_cols);
	if (!r)
		return TH_ENOMEM;
	r->as_of = (int32_t)as_of;
	r->tombstone = (uint8_t)tomb;
	th_mp rm = {rows_at, m->p};
	char *msg = NULL;
	int rc = decode_rows(&rm, d, lim, r, &msg);
	if (rc) {
		th_report_destroy(&r);
		if (rc == TH_ENOMEM) {
			free(msg);
			return TH_ENOMEM;
		}
		s->err[i] = rc;
		s->why[i] = msg ? msg : fmt("report %zu: rows malformed", i + 1);
		return TH_OK;
	}
	s->reports[i] = r;
	return TH_OK;
proto:
	free(ferrmsg);
	return TH_EPROTO;
}

static const char *const submit_names[] = {"id", "reports"};

int th_wire_decode_submit(const uint8_t *buf, size_t len, const th_defset *defs,
                          const th_limits *lim, th_submit_decoded *s, const char **why)
{
	memset(s, 0, sizeof *s);
	if (!lim)
		lim = &th_limits_default;
	th_mp m;
	th_msg_type t;
	uint32_t n;
	int rc = envelope(&m, buf, len, &t, &n, why);
	if (rc)
		return rc;
	if (t != TH_MSG_SUBMIT)
		return why_set(why, "expected a submit message", TH_EPROTO);
	uint64_t seen = 0;
	int have_reports = 0;
	for (uint32_t i = 0; i < n; i++) {
		int err = 0;
		int idx = next_field(&m, submit_names, 2, &seen, &err);
		if (idx == -3 || idx == -2) {
			rc = why_set(why, "duplicate or non-string key in the message", TH_EPROTO);
			goto fail;
		}
		if (idx == -1) {
			if (th_mp_skip(&m, MAX_DEPTH)) {
				rc = why_set(why, "malformed value", TH_EPROTO);
				goto fail;
			}
		} else if (idx == 0) {
			if (th_mp_uint(&m, &s->id)) {
				rc = why_set(why, "submit.id: expected an unsigned integer", TH_EPROTO);
				goto fail;
			}
		} else {
			uint32_t nr;
			if (th_mp_array(&m, &nr)) {
				rc = why_set(why, "submit.reports: expected an array", TH_EPROTO);
				goto fail;
			}
			if (nr > lim->max_reports) {
				rc = why_set(why, "submit.reports: more reports than the limit", TH_ETOOBIG);
				goto fail;
			}
			size_t cap = nr ? nr : 1;
			s->reports = calloc(cap, sizeof *s->reports);
			s->err = calloc(cap, sizeof *s->err);
			s->why = calloc(cap, sizeof *s->why);
			s->unit = calloc(cap, sizeof *s->unit);
			s->appendix = calloc(cap, sizeof *s->appendix);
			s->period = calloc(cap, sizeof *s->period);
			s->rev = calloc(cap, sizeof *s->rev);
			if (!s->reports || !s->err || !s->why || !s->unit || !s->appendix || !s->period ||
			    !s->rev) {
				rc = TH_ENOMEM;
				goto fail;
			}
			s->n_reports = nr;
			for (uint32_t j = 0; j < nr; j++) {
				rc = decode_report(&m, j, defs, lim, s);
				if (rc) {
					rc = why_set(why, rc == TH_ENOMEM ? "out of memory"
					                                  : "submit.reports: malformed report", rc);
					goto fail;
				}
			}
			have_reports = 1;
		}
	}
	if (!have_reports || !(seen & 1)) {
		rc = why_set(why, "submit lacks id or reports", TH_EPROTO);
		goto fail;
	}
	return TH_OK;
fail:
	th_submit_decoded_free(s);
	return rc;
}

void th_submit_decoded_free(th_submit_decoded *s)
{
	for (size_t i = 0; i < s->n_reports; i++) {
		if (s->reports)
			th_report_destroy(&s->reports[i]);
		if (s->why)
			free(s->why[i]);
		if (s->unit)
			free(s->unit[i]);
		if (s->appendix)
			free(s->appendix[i]);
		if (s->period)
			free(s->period[i]);
	}
	free(s->reports);
	free(s->err);
	free(s->why);
	free(s->unit);
	free(s->appendix);
	free(s->period);
	free(s->rev);
	memset(s, 0, sizeof *s);
}

/* --- ack ---------------------------------------------------------------------- */

int th_wire_encode_ack(const th_ack *a, uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	pk_header(&p, TH_MSG_ACK, 5);
	pk_kuint(&p, "id", a->id);
	pk_str(&p, "store");
	msgpack_pack_bin(&p.pk, TH_STORE_UUID_LEN);
	msgpack_pack_bin_body(&p.pk, a->store, TH_STORE_UUID_LEN);
	pk_kuint(&p, "commit", a->commit);
	pk_kint(&p, "time", a->commit_time);
	pk_str(&p, "results");
	msgpack_pack_array(&p.pk, a->n_results);
	for (size_t i = 0; i < a->n_results; i++) {
		const th_ack_result *r = &a->results[i];
		msgpack_pack_map(&p.pk, 11);
		pk_kstr(&p, "status", th_ack_status_name(r->status));
		pk_kstr(&p, "reason", r->code ? th_errname(r->code) : "");
		pk_kstr(&p, "message", r->message ? r->message : "");
		pk_kint(&p, "row", r->row);
		pk_kstr(&p, "column", r->column ? r->column : "");
		pk_kuint(&p, "stored_rev", r->stored_rev);
		pk_kstr(&p, "unit", r->unit ? r->unit : "");
		pk_kstr(&p, "appendix", r->appendix ? r->appendix : "");
		pk_kstr(&p, "period", r->period ? r->period : "");
		pk_kuint(&p, "rev", r->rev);
		pk_str(&p, "warnings");
		msgpack_pack_array(&p.pk, r->n_warnings);
		for (size_t w = 0; w < r->n_warnings; w++)
			pk_str(&p, r->warnings[w]);
	}
	return pk_done(&p, out, len);
}

static const char *const ack_names[] = {"id", "store", "commit", "time", "results"};
static const char *const result_names[] = {"status", "reason", "message", "row", "column",
                                           "stored_rev", "unit", "appendix", "period", "rev",
                                           "warnings"};

static int opt_str(th_mp *m, uint32_t max, char **out)
{
	int rc = dup_str(m, max, out);
	if (rc)
		return rc;
	if (!**out) {
		free(*out);
		*out = NULL;
	}
	return TH_OK;
}

static int decode_result(th_mp *m, th_ack_result *r)
{
	uint32_t n;
	if (th_mp_map(m, &n) || n > MAX_FIELDS)
		return TH_EPROTO;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < n; i++) {
		int err = 0;
		int k = next_field(m, result_names, 11, &seen, &err);
		if (k < -1)
			return TH_EPROTO;
		int rc = 0;
		const char *s;
		uint32_t sn;
		int64_t row;
		switch (k) {
		case -1: rc = th_mp_skip(m, MAX_DEPTH); break;
		case 0:
			rc = th_mp_str(m, &s, &sn);
			if (!rc)
				rc = ack_status_parse(s, sn, &r->status);
			break;
		case 1: {
			rc = th_mp_str(m, &s, &sn);
			if (!rc && sn) {
				char name[64];
				snprintf(name, sizeof name, "%.*s", (int)(sn < 63 ? sn : 63), s);
				r->code = th_errcode(name);
				if (!r->code)
					r->code = TH_EINVAL;
			}
			break;
		}
		case 2: rc = opt_str(m, MAX_STR, &r->message); break;
		case 3: rc = th_mp_int(m, &row); r->row = (long)row; break;
		case 4: rc = opt_str(m, 256, &r->column); break;
		case 5: rc = th_mp_uint(m, &r->stored_rev); break;
		case 6: rc = dup_str(m, TH_CODE_MAX, &r->unit); break;
		case 7: rc = dup_str(m, TH_CODE_MAX, &r->appendix); break;
		case 8: rc = dup_str(m, TH_PERIOD_MAX, &r->period); break;
		case 9: rc = th_mp_uint(m, &r->rev); break;
		case 10:
			rc = th_mp_array(m, &sn);
			if (rc || sn > 10000)
				return TH_EPROTO;
			r->warnings = calloc(sn ? sn : 1, sizeof *r->warnings);
			if (!r->warnings)
				return TH_ENOMEM;
			for (uint32_t w = 0; w < sn && !rc; w++)
				if (!(rc = dup_str(m, MAX_STR, &r->warnings[w])))
					r->n_warnings++;
			break;
		}
		if (rc)
			return rc == TH_ENOMEM ? rc : TH_EPROTO;
	}
	if (!(seen & 1))
		return TH_EPROTO;
	return TH_OK;
}

static int ack_field(void *ctx, int idx, th_mp *m, const char **why)
{
	th_ack *a = ctx;
	uint32_t n;
	int rc;
	switch (idx) {
	case 0:
		if (th_mp_uint(m, &a->id))
			return bad(why, "ack.id: expected an unsigned integer", TH_EPROTO);
		break;
	case 1: {
		const uint8_t *b;
		if (th_mp_bin(m, &b, &n) || n != TH_STORE_UUID_LEN)
			return bad(why, "ack.store: expected 16 bytes", TH_EPROTO);
		memcpy(a->store, b, TH_STORE_UUID_LEN);
		break;
	}
	case 2:
		if (th_mp_uint(m, &a->commit))
			return bad(why, "ack.commit: expected an unsigned integer", TH_EPROTO);
		break;
	case 3:
		if (th_mp_int(m, &a->commit_time))
			return bad(why, "ack.time: expected an integer", TH_EPROTO);
		break;
	case 4:
		if (th_mp_array(m, &n) || n > 100000)
			return bad(why, "ack.results: expected an array", TH_EPROTO);
		a->results = calloc(n ? n : 1, sizeof *a->results);
		if (!a->results)
			return TH_ENOMEM;
		for (uint32_t i = 0; i < n; i++) {
			a->n_results++;
			if ((rc = decode_result(m, &a->results[i])))
				return bad(why, "ack.results: malformed result", rc);
		}
		break;
	}
	return TH_OK;
}

int th_wire_decode_ack(const uint8_t *buf, size_t len, th_ack *a, const char **why)
{
	memset(a, 0, sizeof *a);
	int rc = decode_msg(buf, len, TH_MSG_ACK, ack_names, 5, ack_field, a, 0x13, why);
	if (rc)
		th_ack_free(a);
	return rc;
}

void th_ack_result_free(th_ack_result *r)
{
	free(r->message);
	free(r->column);
	free(r->unit);
	free(r->appendix);
	free(r->period);
	for (size_t w = 0; w < r->n_warnings; w++)
		free(r->warnings[w]);
	free(r->warnings);
	memset(r, 0, sizeof *r);
}

void th_ack_free(th_ack *a)
{
	for (size_t i = 0; i < a->n_results; i++)
		th_ack_result_free(&a->results[i]);
	free(a->results);
	memset(a, 0, sizeof *a);
}

/* --- error -------------------------------------------------------------------- */

int th_wire_encode_error(const th_error_msg *e, uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	pk_header(&p, TH_MSG_ERROR, 4);
	pk_kuint(&p, "id", e->id);
	pk_kstr(&p, "reason", th_errname(e->code));
	pk_kstr(&p, "message", e->message ? e->message : "");
	pk_str(&p, "retry");
	if (e->retry)
		msgpack_pack_true(&p.pk);
	else
		msgpack_pack_false(&p.pk);
	return pk_done(&p, out, len);
}

static const char *const error_names[] = {"id", "reason", "message", "retry"};

static int error_field(void *ctx, int idx, th_mp *m, const char **why)
{
	th_error_msg *e = ctx;
	const char *s;
	uint32_t n;
	switch (idx) {
	case 0:
		if (th_mp_uint(m, &e->id))
			return bad(why, "error.id: expected an unsigned integer", TH_EPROTO);
		break;
	case 1: {
		if (th_mp_str(m, &s, &n))
			return bad(why, "error.reason: expected a string", TH_EPROTO);
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), s);
		e->code = th_errcode(name);
		if (!e->code)
			e->code = TH_EPROTO;
		break;
	}
	case 2: {
		int rc = dup_str(m, MAX_STR, &e->message);
		if (rc)
			return bad(why, "error.message: expected a string", rc);
		break;
	}
	case 3:
		if (th_mp_bool(m, &e->retry))
			return bad(why, "error.retry: expected a boolean", TH_EPROTO);
		break;
	}
	return TH_OK;
}

int th_wire_decode_error(const uint8_t *buf, size_t len, th_error_msg *e, const char **why)
{
	memset(e, 0, sizeof *e);
	int rc = decode_msg(buf, len, TH_MSG_ERROR, error_names, 4, error_field, e, 0x2, why);
	if (rc)
		th_error_msg_free(e);
	return rc;
}

void th_error_msg_free(th_error_msg *e)
{
	free(e->message);
	memset(e, 0, sizeof *e);
}

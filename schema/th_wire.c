/* th_wire.c -- the protocol's envelope (PROTOCOL.md) and its hello, welcome and
 * error messages; the helpers every message codec shares (th_wire_private.h).
 * Submit and ack: th_wire_submit.c; query, result and node: th_wire_query.c. */
#include "th_wire_private.h"

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


static const char *type_names[] = {NULL, "hello", "welcome", "submit", "ack", "error", "query", "result"};

const char *th_ack_status_name(th_ack_status s)
{
	static const char *n[] = {"accepted", "duplicate", "stale", "retry_later", "rejected"};
	return (unsigned)s <= TH_ACK_REJECTED ? n[s] : "unknown";
}

int tw_ack_status_parse(const char *s, uint32_t n, th_ack_status *out)
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

void tw_header(packer *p, th_msg_type t, size_t n_more)
{
	msgpack_pack_map(&p->pk, 2 + n_more);
	pk_kuint(p, "v", TH_WIRE_VERSION);
	pk_kstr(p, "t", type_names[t]);
}

int tw_done(packer *p, uint8_t **out, size_t *len)
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

int tw_why(const char **why, const char *msg, int code)
{
	if (why)
		*why = msg;
	return code;
}

int tw_key_is(const char *k, uint32_t n, const char *name)
{
	return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* Copies a msgpack string, checking UTF-8 and length, NFC-normalised. */
int tw_dup_str(th_mp *m, uint32_t max, char **out)
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
int tw_envelope(th_mp *m, const uint8_t *buf, size_t len, th_msg_type *type, uint32_t *npairs,
                    const char **why)
{
	th_mp_init(m, buf, len);
	uint32_t n;
	int rc = th_mp_map(m, &n);
	if (rc)
		return tw_why(why, "message is not a msgpack map", TH_EPROTO);
	if (n > MAX_FIELDS)
		return tw_why(why, "too many fields in the message", TH_EPROTO);
	const uint8_t *start = m->p;
	int have_v = 0, have_t = 0;
	uint64_t v = 0;
	*type = 0;
	for (uint32_t i = 0; i < n; i++) {
		const char *k;
		uint32_t kn;
		if (th_mp_str(m, &k, &kn))
			return tw_why(why, "message map keys must be strings", TH_EPROTO);
		if (tw_key_is(k, kn, "v")) {
			if (have_v++ || th_mp_uint(m, &v))
				return tw_why(why, "field v: must be one unsigned integer", TH_EPROTO);
		} else if (tw_key_is(k, kn, "t")) {
			const char *t;
			uint32_t tn;
			if (have_t++ || th_mp_str(m, &t, &tn))
				return tw_why(why, "field t: must be one string", TH_EPROTO);
			for (int j = TH_MSG_HELLO; j <= TH_MSG_RESULT; j++)
				if (tw_key_is(t, tn, type_names[j]))
					*type = (th_msg_type)j;
			if (!*type)
				return tw_why(why, "field t: unknown message type", TH_EPROTO);
		} else if (th_mp_skip(m, MAX_DEPTH)) {
			return tw_why(why, "malformed or too deeply nested value", TH_EPROTO);
		}
	}
	if (!have_v || !have_t)
		return tw_why(why, "message lacks field v or t", TH_EPROTO);
	if (v != TH_WIRE_VERSION)
		return tw_why(why, "unsupported protocol version", TH_EPROTO);
	if (m->p != m->end)
		return tw_why(why, "trailing bytes after the message", TH_EPROTO);
	m->p = start;
	*npairs = n;
	return TH_OK;
}

int th_wire_type(const uint8_t *buf, size_t len, th_msg_type *type, const char **why)
{
	th_mp m;
	uint32_t n;
	return tw_envelope(&m, buf, len, type, &n, why);
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
		if (tw_key_is(k, kn, "id"))
			return th_mp_uint(&m, &id) ? 0 : id;
		if (th_mp_skip(&m, MAX_DEPTH))
			return 0;
	}
	return 0;
}

int tw_next_field(th_mp *m, const char *const *names, int nnames, uint64_t *seen, int *err)
{
	const char *k;
	uint32_t kn;
	if (th_mp_str(m, &k, &kn)) {
		*err = TH_EPROTO;
		return -2;
	}
	for (int j = 0; j < nnames; j++)
		if (tw_key_is(k, kn, names[j])) {
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
	tw_header(&p, TH_MSG_HELLO, 3);
	pk_kuint(&p, "id", h->id);
	pk_kstr(&p, "agent", h->agent ? h->agent : "");
	pk_kstr(&p, "unit", h->unit ? h->unit : "");
	return tw_done(&p, out, len);
}

/* Common decode loop for a message: validates the envelope type, then calls
 * field(ctx, index, m) for each known key. */

int tw_decode_msg(const uint8_t *buf, size_t len, th_msg_type want, const char *const *names,
                      int nnames, field_fn fn, void *ctx, uint64_t required, const char **why)
{
	th_mp m;
	th_msg_type t;
	uint32_t n;
	int rc = tw_envelope(&m, buf, len, &t, &n, why);
	if (rc)
		return rc;
	if (t != want)
		return tw_why(why, "unexpected message type", TH_EPROTO);
	uint64_t seen = 0;
	for (uint32_t i = 0; i < n; i++) {
		int err = 0;
		int idx = tw_next_field(&m, names, nnames, &seen, &err);
		if (idx == -3)
			return tw_why(why, "duplicate field in message", TH_EPROTO);
		if (idx == -2)
			return tw_why(why, "message map keys must be strings", TH_EPROTO);
		if (idx < 0) {
			/* "v", "t" and unknown fields */
			if (th_mp_skip(&m, MAX_DEPTH))
				return tw_why(why, "malformed value", TH_EPROTO);
			continue;
		}
		rc = fn(ctx, idx, &m, why);
		if (rc)
			return rc;
	}
	if ((seen & required) != required)
		return tw_why(why, "a required field is missing", TH_EPROTO);
	return TH_OK;
}

int tw_bad(const char **why, const char *msg, int rc)
{
	if (rc == TH_EUTF8)
		return tw_why(why, "invalid UTF-8 in a string field", TH_EUTF8);
	if (rc == TH_ETOOBIG)
		return tw_why(why, "a string field is too long", TH_ETOOBIG);
	return tw_why(why, msg, rc == TH_ENOMEM ? TH_ENOMEM : TH_EPROTO);
}

static const char *const hello_names[] = {"id", "agent", "unit"};

static int hello_field(void *ctx, int idx, th_mp *m, const char **why)
{
	th_hello *h = ctx;
	int rc;
	switch (idx) {
	case 0: rc = th_mp_uint(m, &h->id); if (rc) return tw_bad(why, "hello.id: expected an unsigned integer", rc); break;
	case 1: rc = tw_dup_str(m, 256, &h->agent); if (rc) return tw_bad(why, "hello.agent: expected a string", rc); break;
	case 2: rc = tw_dup_str(m, TH_CODE_MAX, &h->unit); if (rc) return tw_bad(why, "hello.unit: expected a string", rc); break;
	}
	return TH_OK;
}

int th_wire_decode_hello(const uint8_t *buf, size_t len, th_hello *h, const char **why)
{
	memset(h, 0, sizeof *h);
	int rc = tw_decode_msg(buf, len, TH_MSG_HELLO, hello_names, 3, hello_field, h, 0, why);
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
	tw_header(&p, TH_MSG_WELCOME, 6);
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
	return tw_done(&p, out, len);
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
			return tw_bad(why, "welcome.id: expected an unsigned integer", rc);
		break;
	case 1: {
		const uint8_t *b;
		if ((rc = th_mp_bin(m, &b, &n)) || n != TH_STORE_UUID_LEN)
			return tw_bad(why, "welcome.store: expected 16 bytes", TH_EPROTO);
		memcpy(w->store, b, TH_STORE_UUID_LEN);
		break;
	}
	case 2:
		if ((rc = tw_dup_str(m, TH_CODE_MAX, &w->unit)))
			return tw_bad(why, "welcome.unit: expected a string", rc);
		break;
	case 3: {
		if ((rc = th_mp_map(m, &n)) || n > MAX_FIELDS)
			return tw_bad(why, "welcome.limits: expected a map", TH_EPROTO);
		uint64_t seen = 0;
		w->limits = th_limits_default;
		uint32_t *dst[] = {&w->limits.max_msg_bytes, &w->limits.max_reports, &w->limits.max_rows,
		                   &w->limits.max_text, &w->limits.max_inflight};
		for (uint32_t i = 0; i < n; i++) {
			int err = 0;
			int k = tw_next_field(m, limit_names, 5, &seen, &err);
			if (k < -1)
				return tw_bad(why, "welcome.limits: malformed", TH_EPROTO);
			if (k < 0) {
				if (th_mp_skip(m, MAX_DEPTH))
					return tw_bad(why, "welcome.limits: malformed", TH_EPROTO);
				continue;
			}
			uint64_t v;
			if (th_mp_uint(m, &v) || v > UINT32_MAX)
				return tw_bad(why, "welcome.limits: values must be uint32", TH_EPROTO);
			*dst[k] = (uint32_t)v;
		}
		break;
	}
	case 4:
		if ((rc = th_mp_array(m, &n)) || n > 1000)
			return tw_bad(why, "welcome.defs: expected an array of at most 1000 strings", TH_EPROTO);
		w->defs = calloc(n ? n : 1, sizeof *w->defs);
		if (!w->defs)
			return TH_ENOMEM;
		for (uint32_t i = 0; i < n; i++) {
			if ((rc = tw_dup_str(m, 1u << 20, &w->defs[i])))
				return tw_bad(why, "welcome.defs: expected strings", rc);
			w->n_defs++;
		}
		break;
	case 5:
		if ((rc = th_mp_array(m, &n)))
			return tw_bad(why, "welcome.revs: expected an array", TH_EPROTO);
		w->revs = calloc(n ? n : 1, sizeof *w->revs);
		if (!w->revs)
			return TH_ENOMEM;
		for (uint32_t i = 0; i < n; i++) {
			uint32_t k;
			th_rev_entry *e = &w->revs[i];
			if (th_mp_array(m, &k) || k != 4)
				return tw_bad(why, "welcome.revs: entries are [unit, appendix, period, rev]", TH_EPROTO);
			w->n_revs++;
			if ((rc = tw_dup_str(m, TH_CODE_MAX, &e->unit)) ||
			    (rc = tw_dup_str(m, TH_CODE_MAX, &e->appendix)) ||
			    (rc = tw_dup_str(m, TH_PERIOD_MAX, &e->period)) || (rc = th_mp_uint(m, &e->rev)))
				return tw_bad(why, "welcome.revs: entries are [unit, appendix, period, rev]", rc);
		}
		break;
	}
	return TH_OK;
}

int th_wire_decode_welcome(const uint8_t *buf, size_t len, th_welcome *w, const char **why)
{
	memset(w, 0, sizeof *w);
	w->limits = th_limits_default;
	int rc = tw_decode_msg(buf, len, TH_MSG_WELCOME, welcome_names, 6, welcome_field, w, 0x3, why);
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

/* --- error -------------------------------------------------------------------- */

int th_wire_encode_error(const th_error_msg *e, uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	tw_header(&p, TH_MSG_ERROR, 4);
	pk_kuint(&p, "id", e->id);
	pk_kstr(&p, "reason", th_errname(e->code));
	pk_kstr(&p, "message", e->message ? e->message : "");
	pk_str(&p, "retry");
	if (e->retry)
		msgpack_pack_true(&p.pk);
	else
		msgpack_pack_false(&p.pk);
	return tw_done(&p, out, len);
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
			return tw_bad(why, "error.id: expected an unsigned integer", TH_EPROTO);
		break;
	case 1: {
		if (th_mp_str(m, &s, &n))
			return tw_bad(why, "error.reason: expected a string", TH_EPROTO);
		char name[64];
		snprintf(name, sizeof name, "%.*s", (int)(n < 63 ? n : 63), s);
		e->code = th_errcode(name);
		if (!e->code)
			e->code = TH_EPROTO;
		break;
	}
	case 2: {
		int rc = tw_dup_str(m, MAX_STR, &e->message);
		if (rc)
			return tw_bad(why, "error.message: expected a string", rc);
		break;
	}
	case 3:
		if (th_mp_bool(m, &e->retry))
			return tw_bad(why, "error.retry: expected a boolean", TH_EPROTO);
		break;
	}
	return TH_OK;
}

int th_wire_decode_error(const uint8_t *buf, size_t len, th_error_msg *e, const char **why)
{
	memset(e, 0, sizeof *e);
	int rc = tw_decode_msg(buf, len, TH_MSG_ERROR, error_names, 4, error_field, e, 0x2, why);
	if (rc)
		th_error_msg_free(e);
	return rc;
}

void th_error_msg_free(th_error_msg *e)
{
	free(e->message);
	memset(e, 0, sizeof *e);
}

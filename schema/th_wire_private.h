/* th_wire_private.h -- what the protocol's codecs share (th_wire.c,
 * th_wire_submit.c, th_wire_query.c): msgpack packing helpers, the envelope and
 * field-by-field decoding.  Private to schema/. */
#ifndef TH_WIRE_PRIVATE_H
#define TH_WIRE_PRIVATE_H

#include <msgpack.h>
#include <stdint.h>
#include <string.h>
#include "th_mp.h"
#include "th_wire.h"

#define MAX_DEPTH 8
#define MAX_FIELDS 64      /* map pairs in any envelope or report map */
#define MAX_STR 65536      /* identity strings, messages */

/* --- packing helpers ---------------------------------------------------------- */

typedef struct {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} packer;

static inline void pk_init(packer *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static inline void pk_str(packer *p, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	msgpack_pack_str(&p->pk, n);
	msgpack_pack_str_body(&p->pk, s ? s : "", n);
}

static inline void pk_kstr(packer *p, const char *k, const char *v)
{
	pk_str(p, k);
	pk_str(p, v);
}

static inline void pk_kuint(packer *p, const char *k, uint64_t v)
{
	pk_str(p, k);
	msgpack_pack_uint64(&p->pk, v);
}

static inline void pk_kint(packer *p, const char *k, int64_t v)
{
	pk_str(p, k);
	msgpack_pack_int64(&p->pk, v);
}

/* The envelope's first pairs ("v", "t") of a map of 2 + n_more pairs. */
void tw_header(packer *p, th_msg_type t, size_t n_more);
/* The packed bytes into *out (malloc'd) and *len; TH_ENOMEM when packing ran out. */
int tw_done(packer *p, uint8_t **out, size_t *len);

/* *why = msg (when why is not NULL); returns code. */
int tw_why(const char **why, const char *msg, int code);
int tw_key_is(const char *k, uint32_t n, const char *name);
/* Copies a msgpack string, checking UTF-8 and length (max bytes), NFC-normalised. */
int tw_dup_str(th_mp *m, uint32_t max, char **out);
/* A decoding failure of rc as the reason to give: UTF-8, length, or msg. */
int tw_bad(const char **why, const char *msg, int rc);
int tw_ack_status_parse(const char *s, uint32_t n, th_ack_status *out);

/* Reads the envelope map header and checks "v" and "t": m at the map's first pair,
 * *npairs pairs. */
int tw_envelope(th_mp *m, const uint8_t *buf, size_t len, th_msg_type *type, uint32_t *npairs,
                const char **why);
/* The index in names of the next key (marked in *seen), -1 for another key, -2 when
 * the key is not a string, -3 when it repeats (*err set). */
int tw_next_field(th_mp *m, const char *const *names, int nnames, uint64_t *seen, int *err);
/* Decodes a message of type want: checks the envelope, then calls fn(ctx, index, m)
 * for each field named in names (unknown fields skipped); every field whose bit is
 * in required must be there. */
typedef int (*field_fn)(void *ctx, int idx, th_mp *m, const char **why);
int tw_decode_msg(const uint8_t *buf, size_t len, th_msg_type want, const char *const *names,
                  int nnames, field_fn fn, void *ctx, uint64_t required, const char **why);

#endif

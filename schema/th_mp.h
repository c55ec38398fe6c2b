/* th_mp.h -- a bounds-checked msgpack cursor for decoding untrusted input.
 *
 * msgpack-c's unpacker allocates what a header claims before reading it (a
 * 5-byte array32 header claiming 2^32-1 elements asks for ~100 GB) and has no
 * per-field limits; this cursor reads one item at a time, checks every claimed
 * length against the bytes that remain before using it, and never allocates.
 * Encoding uses msgpack-c's packer.  Floats and ext types are reported as such
 * so callers can refuse them.
 */
#ifndef TH_MP_H
#define TH_MP_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
	TH_MP_NIL = 1, TH_MP_BOOL, TH_MP_INT, TH_MP_STR, TH_MP_BIN, TH_MP_ARRAY,
	TH_MP_MAP, TH_MP_FLOAT, TH_MP_EXT
} th_mp_kind;

typedef struct th_mp {
	const uint8_t *p, *end;
} th_mp;

static inline void th_mp_init(th_mp *m, const void *buf, size_t len)
{
	m->p = (const uint8_t *)buf;
	m->end = m->p + len;
}
static inline size_t th_mp_left(const th_mp *m) { return (size_t)(m->end - m->p); }

/* Kind of the next item, or TH_ETRUNC at the end.  Does not consume. */
int th_mp_peek(const th_mp *m);
/* Each reader consumes one item of the expected kind and returns 0, or
 * TH_ETYPE (wrong kind; nothing consumed) / TH_ETRUNC / TH_ERANGE. */
int th_mp_nil(th_mp *m);
int th_mp_bool(th_mp *m, int *out);
int th_mp_int(th_mp *m, int64_t *out);        /* any int fitting int64 */
int th_mp_uint(th_mp *m, uint64_t *out);      /* non-negative int */
int th_mp_str(th_mp *m, const char **s, uint32_t *n);   /* not NUL-terminated */
int th_mp_bin(th_mp *m, const uint8_t **b, uint32_t *n);
/* Container headers: the count is checked against the bytes left (each
 * element takes at least one byte, each map pair two). */
int th_mp_array(th_mp *m, uint32_t *n);
int th_mp_map(th_mp *m, uint32_t *n);
/* Skips one item of any kind; depth bounds nesting (TH_EDEPTH). */
int th_mp_skip(th_mp *m, int depth);

#endif

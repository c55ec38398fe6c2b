/* th_canon.h -- the canonical form of a report (schema/PROTOCOL.md section 4):
 * msgpack of [appendix, version, as_of, tombstone, [[cells...]...]] with rows
 * sorted by key, smallest integer encodings, NFC strings, decimals as scaled
 * ints, enums as codes.  The content hash (BLAKE2b-256) is computed over it and
 * the store keeps it as a record's body (store/STORAGE.md), so one report has
 * one form wherever it is encoded or decoded. */
#ifndef TH_CANON_H
#define TH_CANON_H

#include <stddef.h>
#include <stdint.h>
#include "th_def.h"
#include "th_report.h"

/* The canonical form of r, which must have been validated against d (TH_EINVAL
 * when the column counts differ, TH_ERANGE for an enum index out of range).
 * *out malloc'd (*len bytes); written only on success. */
int th_canon_encode(const th_report *r, const th_def *d, uint8_t **out, size_t *len);
/* The BLAKE2b-256 hash of r's canonical form. */
int th_canon_hash(const th_report *r, const th_def *d, uint8_t out[TH_HASH_LEN]);
/* Both at once: the canonical form (malloc'd into *out, *len) and its hash. */
int th_canon_encode_hash(const th_report *r, const th_def *d, uint8_t **out, size_t *len,
                         uint8_t hash[TH_HASH_LEN]);
/* A report back from a canonical form made with d; unit, period and rev are not
 * part of the form and are given.  Every item is bounds- and type-checked:
 * TH_ESTORE when buf is not a canonical form of d (damaged, or another
 * version's), TH_ENOMEM.  *out (th_report_destroy) only on success. */
int th_canon_decode(const uint8_t *buf, size_t len, const th_def *d, const char *unit,
                    const char *period, uint64_t rev, th_report **out);

/* The name of th_canon_hash before th_canon existed, kept for the callers outside
 * schema/ and store/ (publisher/, fuzz_wire.c, tests) until they move to it. */
static inline int th_report_hash(const th_report *r, const th_def *d, uint8_t out[TH_HASH_LEN])
{
	return th_canon_hash(r, d, out);
}

#endif

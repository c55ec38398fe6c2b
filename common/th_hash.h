/* th_hash.h -- FNV-1a, 64 bits: the one non-cryptographic hash (hash tables,
 * caches, connection ids).  Not for content identity: reports are hashed with
 * BLAKE2b (schema/th_canon.h). */
#ifndef TH_HASH_H
#define TH_HASH_H

#include <stddef.h>
#include <stdint.h>

#define TH_FNV1A_INIT 14695981039346656037ULL   /* the FNV-1a 64 offset basis */

/* Continues hash h over n bytes at p (start with TH_FNV1A_INIT). */
static inline uint64_t th_fnv1a_step(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 1099511628211ULL;
	return h;
}

static inline uint64_t th_fnv1a(const void *p, size_t n)
{
	return th_fnv1a_step(TH_FNV1A_INIT, p, n);
}

/* Over a NUL-terminated string (the NUL not included). */
static inline uint64_t th_fnv1a_str(const char *s)
{
	uint64_t h = TH_FNV1A_INIT;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

#endif

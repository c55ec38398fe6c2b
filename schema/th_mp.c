/* th_mp.c -- bounds-checked msgpack cursor (see th_mp.h). */
#include "th_mp.h"
#include "th_error.h"

#include <string.h>

static uint64_t be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

int th_mp_peek(const th_mp *m)
{
	if (m->p >= m->end)
		return TH_ETRUNC;
	uint8_t b = *m->p;
	if (b <= 0x7f || b >= 0xe0)
		return TH_MP_INT;
	if (b >= 0x80 && b <= 0x8f)
		return TH_MP_MAP;
	if (b >= 0x90 && b <= 0x9f)
		return TH_MP_ARRAY;
	if (b >= 0xa0 && b <= 0xbf)
		return TH_MP_STR;
	switch (b) {
	case 0xc0: return TH_MP_NIL;
	case 0xc2: case 0xc3: return TH_MP_BOOL;
	case 0xc4: case 0xc5: case 0xc6: return TH_MP_BIN;
	case 0xca: case 0xcb: return TH_MP_FLOAT;
	case 0xcc: case 0xcd: case 0xce: case 0xcf:
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: return TH_MP_INT;
	case 0xd9: case 0xda: case 0xdb: return TH_MP_STR;
	case 0xdc: case 0xdd: return TH_MP_ARRAY;
	case 0xde: case 0xdf: return TH_MP_MAP;
	case 0xc7: case 0xc8: case 0xc9:
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: return TH_MP_EXT;
	default: return TH_ETYPE;   /* 0xc1 is never used */
	}
}

int th_mp_nil(th_mp *m)
{
	if (m->p >= m->end)
		return TH_ETRUNC;
	if (*m->p != 0xc0)
		return TH_ETYPE;
	m->p++;
	return 0;
}

int th_mp_bool(th_mp *m, int *out)
{
	if (m->p >= m->end)
		return TH_ETRUNC;
	if (*m->p != 0xc2 && *m->p != 0xc3)
		return TH_ETYPE;
	*out = *m->p == 0xc3;
	m->p++;
	return 0;
}

/* Reads an integer as sign + magnitude. */
static int read_int(th_mp *m, int *neg, uint64_t *mag)
{
	if (m->p >= m->end)
		return TH_ETRUNC;
	uint8_t b = *m->p;
	size_t left = th_mp_left(m);
	if (b <= 0x7f) {
		*neg = 0;
		*mag = b;
		m->p++;
		return 0;
	}
	if (b >= 0xe0) {
		*neg = 1;
		*mag = (uint64_t)(-(int64_t)(int8_t)b);
		m->p++;
		return 0;
	}
	int n;
	int sgn;
	switch (b) {
	case 0xcc: n = 1; sgn = 0; break;
	case 0xcd: n = 2; sgn = 0; break;
	case 0xce: n = 4; sgn = 0; break;
	case 0xcf: n = 8; sgn = 0; break;
	case 0xd0: n = 1; sgn = 1; break;
	case 0xd1: n = 2; sgn = 1; break;
	case 0xd2: n = 4; sgn = 1; break;
	case 0xd3: n = 8; sgn = 1; break;
	default: return TH_ETYPE;
	}
	if (left < (size_t)n + 1)
		return TH_ETRUNC;
	uint64_t v = be(m->p + 1, n);
	if (sgn) {
		int64_t s;
		switch (n) {
		case 1: s = (int8_t)v; break;
		case 2: s = (int16_t)v; break;
		case 4: s = (int32_t)v; break;
		default: s = (int64_t)v; break;
		}
		*neg = s < 0;
		*mag = s < 0 ? (uint64_t)0 - (uint64_t)s : (uint64_t)s;
	} else {
		*neg = 0;
		*mag = v;
	}
	m->p += n + 1;
	return 0;
}

int th_mp_int(th_mp *m, int64_t *out)
{
	const uint8_t *save = m->p;
	int neg;
	uint64_t mag;
	int rc = read_int(m, &neg, &mag);
	if (rc)
		return rc;
	if (!neg && mag > (uint64_t)INT64_MAX) {
		m->p = save;
		return TH_ERANGE;
	}
	*out = neg ? (int64_t)((uint64_t)0 - mag) : (int64_t)mag;
	return 0;
}

int th_mp_uint(th_mp *m, uint64_t *out)
{
	const uint8_t *save = m->p;
	int neg;
	uint64_t mag;
	int rc = read_int(m, &neg, &mag);
	if (rc)
		return rc;
	if (neg && mag) {
		m->p = save;
		return TH_ERANGE;
	}
	*out = mag;
	return 0;
}

static int read_len(th_mp *m, uint8_t b8, uint8_t b16, uint8_t b32, uint8_t fixlo, uint8_t fixhi,
                    uint32_t *n)
{
	if (m->p >= m->end)
		return TH_ETRUNC;
	uint8_t b = *m->p;
	size_t left = th_mp_left(m);
	int hl;
	uint64_t v;
	if (fixhi && b >= fixlo && b <= fixhi) {
		hl = 1;
		v = b - fixlo;
	} else if (b8 && b == b8) {
		hl = 2;
		if (left < 2)
			return TH_ETRUNC;
		v = m->p[1];
	} else if (b == b16) {
		hl = 3;
		if (left < 3)
			return TH_ETRUNC;
		v = be(m->p + 1, 2);
	} else if (b == b32) {
		hl = 5;
		if (left < 5)
			return TH_ETRUNC;
		v = be(m->p + 1, 4);
	} else {
		return TH_ETYPE;
	}
	m->p += hl;
	*n = (uint32_t)v;
	return 0;
}

int th_mp_str(th_mp *m, const char **s, uint32_t *n)
{
	const uint8_t *save = m->p;
	int rc = read_len(m, 0xd9, 0xda, 0xdb, 0xa0, 0xbf, n);
	if (rc)
		return rc;
	if (*n > th_mp_left(m)) {
		m->p = save;
		return TH_ETRUNC;
	}
	*s = (const char *)m->p;
	m->p += *n;
	return 0;
}

int th_mp_bin(th_mp *m, const uint8_t **b, uint32_t *n)
{
	const uint8_t *save = m->p;
	int rc = read_len(m, 0xc4, 0xc5, 0xc6, 0, 0, n);
	if (rc)
		return rc;
	if (*n > th_mp_left(m)) {
		m->p = save;
		return TH_ETRUNC;
	}
	*b = m->p;
	m->p += *n;
	return 0;
}

int th_mp_array(th_mp *m, uint32_t *n)
{
	const uint8_t *save = m->p;
	int rc = read_len(m, 0, 0xdc, 0xdd, 0x90, 0x9f, n);
	if (rc)
		return rc;
	if (*n > th_mp_left(m)) {
		m->p = save;
		return TH_ETRUNC;
	}
	return 0;
}

int th_mp_map(th_mp *m, uint32_t *n)
{
	const uint8_t *save = m->p;
	int rc = read_len(m, 0, 0xde, 0xdf, 0x80, 0x8f, n);
	if (rc)
		return rc;
	if ((uint64_t)*n * 2 > th_mp_left(m)) {
		m->p = save;
		return TH_ETRUNC;
	}
	return 0;
}

/* Skips one item without recursion: a stack of "items left" per open
 * container.  One pass over the bytes with no per-item calls; the messages'
 * rows are skipped this way while the envelope is read (it was a sixth of
 * the collector's ingest CPU as a recursive descent).  Errors are those of
 * the typed readers: TH_ETRUNC (m->p left at the item whose bytes run out),
 * TH_ETYPE (0xc1), TH_EDEPTH (an item nested deeper than depth allows). */
int th_mp_skip(th_mp *m, int depth)
{
	enum { MAXD = 64 };
	uint64_t left[MAXD];
	if (depth > MAXD)
		depth = MAXD;
	int top = 0;
	left[0] = 1;
	const uint8_t *p = m->p, *end = m->end;
	for (;;) {
		while (left[top] == 0) {
			if (top == 0) {
				m->p = p;
				return 0;
			}
			top--;
		}
		if (top >= depth) {
			m->p = p;
			return TH_EDEPTH;
		}
		left[top]--;
		if (p >= end) {
			m->p = p;
			return TH_ETRUNC;
		}
		size_t avail = (size_t)(end - p);
		uint8_t b = *p;
		uint64_t skip, n = 0;   /* bytes of this item; items it opens */
		int hl = 0;             /* for str/bin/ext/containers: header length */
		if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
			skip = 1;
		} else if (b >= 0xa0 && b <= 0xbf) {
			skip = 1 + (uint64_t)(b - 0xa0);
		} else if (b >= 0x80 && b <= 0x8f) {
			hl = 1, n = (uint64_t)(b - 0x80) * 2;
			skip = 1;
		} else if (b >= 0x90 && b <= 0x9f) {
			hl = 1, n = b - 0x90;
			skip = 1;
		} else {
			switch (b) {
			case 0xcc: case 0xd0: skip = 2; break;
			case 0xcd: case 0xd1: skip = 3; break;
			case 0xca: case 0xce: case 0xd2: skip = 5; break;
			case 0xcb: case 0xcf: case 0xd3: skip = 9; break;
			case 0xd4: skip = 3; break;
			case 0xd5: skip = 4; break;
			case 0xd6: skip = 6; break;
			case 0xd7: skip = 10; break;
			case 0xd8: skip = 18; break;
			case 0xc4: case 0xd9: hl = 2; break;
			case 0xc5: case 0xda: hl = 3; break;
			case 0xc6: case 0xdb: hl = 5; break;
			case 0xc7: hl = 3; break;    /* ext 8: length, type */
			case 0xc8: hl = 4; break;
			case 0xc9: hl = 6; break;
			case 0xdc: case 0xde: hl = 3; break;
			case 0xdd: case 0xdf: hl = 5; break;
			default: m->p = p; return TH_ETYPE;   /* 0xc1 */
			}
			if (hl) {
				if (avail < (size_t)hl) {
					m->p = p;
					return TH_ETRUNC;
				}
				int lb = b == 0xc7 || b == 0xc4 || b == 0xd9 ? 1
				         : b == 0xc8 || b == 0xc5 || b == 0xda || b == 0xdc || b == 0xde ? 2 : 4;
				uint64_t len = be(p + 1, lb);
				if (b == 0xdc || b == 0xdd)
					n = len, skip = (uint64_t)hl;
				else if (b == 0xde || b == 0xdf)
					n = len * 2, skip = (uint64_t)hl;
				else
					skip = (uint64_t)hl + len;
			}
		}
		if (skip > avail) {
			m->p = p;
			return TH_ETRUNC;
		}
		p += skip;
		if (n) {
			/* every item is at least one byte: a count beyond the bytes left is a lie */
			if (n > (uint64_t)(end - p)) {
				m->p = p - skip;
				return TH_ETRUNC;
			}
			if (top + 1 >= MAXD || top + 1 >= depth) {
				m->p = p;
				return TH_EDEPTH;
			}
			left[++top] = n;
		}
	}
}

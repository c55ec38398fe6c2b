/* test_mp.c -- the bounds-checked msgpack cursor (schema/th_mp.c): every encoding
 * of every kind it reads, the wrong kind refused without consuming, lengths checked
 * against what is left before use, ranges, nesting.  Encodings made with msgpack-c's
 * packer (what every encoder here uses) and by hand for the hostile ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_error.h"
#include "th_mp.h"

static void integers_of_every_width(void **state)
{
	(void)state;
	static const int64_t vals[] = {0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295LL,
	                               4294967296LL, INT64_MAX, -1, -32, -33, -128, -129, -32768,
	                               -32769, -2147483648LL, -2147483649LL, INT64_MIN};
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	size_t n = sizeof vals / sizeof *vals;
	for (size_t i = 0; i < n; i++)
		msgpack_pack_int64(&pk, vals[i]);
	msgpack_pack_uint64(&pk, UINT64_MAX);
	th_mp m;
	th_mp_init(&m, sb.data, sb.size);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(th_mp_peek(&m), TH_MP_INT);
		const uint8_t *at = m.p;
		uint64_t u;
		if (vals[i] < 0) {
			assert_int_equal(th_mp_uint(&m, &u), TH_ERANGE);   /* negative: not consumed */
			assert_ptr_equal(m.p, at);
		}
		int64_t v;
		assert_int_equal(th_mp_int(&m, &v), 0);
		assert_int_equal(v, vals[i]);
		if (vals[i] >= 0) {
			m.p = at;
			assert_int_equal(th_mp_uint(&m, &u), 0);
			assert_int_equal(u, (uint64_t)vals[i]);
		}
	}
	const uint8_t *at = m.p;
	int64_t v;
	assert_int_equal(th_mp_int(&m, &v), TH_ERANGE);   /* UINT64_MAX does not fit int64 */
	assert_ptr_equal(m.p, at);
	uint64_t u;
	assert_int_equal(th_mp_uint(&m, &u), 0);
	assert_int_equal(u, UINT64_MAX);
	assert_int_equal(th_mp_left(&m), 0);
	assert_int_equal(th_mp_peek(&m), TH_ETRUNC);
	assert_int_equal(th_mp_int(&m, &v), TH_ETRUNC);
	msgpack_sbuffer_destroy(&sb);
	/* every header cut short */
	static const uint8_t cut[][9] = {{0xcc}, {0xcd, 1}, {0xce, 1, 2, 3}, {0xcf, 1, 2, 3, 4, 5, 6, 7},
	                                 {0xd0}, {0xd1, 1}, {0xd2, 1, 2}, {0xd3, 1, 2, 3, 4, 5, 6, 7}};
	static const size_t cutlen[] = {1, 2, 4, 8, 1, 2, 3, 8};
	for (size_t i = 0; i < sizeof cutlen / sizeof *cutlen; i++) {
		th_mp_init(&m, cut[i], cutlen[i]);
		assert_int_equal(th_mp_int(&m, &v), TH_ETRUNC);
		assert_ptr_equal(m.p, cut[i]);
	}
}

static void strings_bins_and_kinds(void **state)
{
	(void)state;
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	size_t lens[] = {0, 31, 32, 255, 256, 65535, 65536};
	char *big = malloc(65536);
	memset(big, 'x', 65536);
	for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
		msgpack_pack_str(&pk, lens[i]);
		msgpack_pack_str_body(&pk, big, lens[i]);
		msgpack_pack_bin(&pk, lens[i]);
		msgpack_pack_bin_body(&pk, big, lens[i]);
	}
	msgpack_pack_nil(&pk);
	msgpack_pack_true(&pk);
	msgpack_pack_false(&pk);
	msgpack_pack_double(&pk, 1.5);
	msgpack_pack_float(&pk, 2.5f);
	msgpack_pack_ext(&pk, 1, 5);
	msgpack_pack_ext_body(&pk, "abcde", 1);
	th_mp m;
	th_mp_init(&m, sb.data, sb.size);
	for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
		const char *s;
		const uint8_t *b;
		uint32_t n;
		assert_int_equal(th_mp_peek(&m), TH_MP_STR);
		assert_int_equal(th_mp_bin(&m, &b, &n), TH_ETYPE);   /* wrong kind: not consumed */
		assert_int_equal(th_mp_str(&m, &s, &n), 0);
		assert_int_equal(n, lens[i]);
		assert_int_equal(th_mp_peek(&m), TH_MP_BIN);
		assert_int_equal(th_mp_str(&m, &s, &n), TH_ETYPE);
		assert_int_equal(th_mp_bin(&m, &b, &n), 0);
		assert_int_equal(n, lens[i]);
	}
	int bv;
	assert_int_equal(th_mp_peek(&m), TH_MP_NIL);
	assert_int_equal(th_mp_bool(&m, &bv), TH_ETYPE);
	assert_int_equal(th_mp_nil(&m), 0);
	assert_int_equal(th_mp_bool(&m, &bv), 0);
	assert_int_equal(bv, 1);
	assert_int_equal(th_mp_bool(&m, &bv), 0);
	assert_int_equal(bv, 0);
	int64_t v;
	assert_int_equal(th_mp_peek(&m), TH_MP_FLOAT);
	assert_int_equal(th_mp_int(&m, &v), TH_ETYPE);   /* floats are refused by the readers */
	assert_int_equal(th_mp_skip(&m, 1), 0);
	assert_int_equal(th_mp_peek(&m), TH_MP_FLOAT);
	assert_int_equal(th_mp_skip(&m, 1), 0);
	assert_int_equal(th_mp_peek(&m), TH_MP_EXT);
	assert_int_equal(th_mp_skip(&m, 1), 0);
	assert_int_equal(th_mp_left(&m), 0);
	free(big);
	msgpack_sbuffer_destroy(&sb);
	/* 0xc1 is never used */
	uint8_t c1 = 0xc1;
	th_mp_init(&m, &c1, 1);
	assert_int_equal(th_mp_peek(&m), TH_ETYPE);
	assert_int_equal(th_mp_skip(&m, 4), TH_ETYPE);
}

/* A length is checked against the bytes left before anything is used: a 5-byte
 * header claiming 2^32 - 1 elements or bytes is refused, not allocated for. */
static void claimed_lengths_checked(void **state)
{
	(void)state;
	static const uint8_t arr32[] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0x01};
	static const uint8_t map32[] = {0xdf, 0x00, 0x00, 0x00, 0x02, 0x01, 0x01, 0x01};   /* 2 pairs, 3 bytes */
	static const uint8_t str32[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a'};
	static const uint8_t bin8[] = {0xc4, 0x05, 'a', 'b'};
	static const uint8_t fixstr[] = {0xa3, 'a'};
	uint32_t n;
	const char *s;
	const uint8_t *b;
	th_mp m;
	th_mp_init(&m, arr32, sizeof arr32);
	assert_int_equal(th_mp_array(&m, &n), TH_ETRUNC);
	assert_ptr_equal(m.p, arr32);
	th_mp_init(&m, map32, sizeof map32);
	assert_int_equal(th_mp_map(&m, &n), TH_ETRUNC);
	th_mp_init(&m, str32, sizeof str32);
	assert_int_equal(th_mp_str(&m, &s, &n), TH_ETRUNC);
	assert_ptr_equal(m.p, str32);
	th_mp_init(&m, bin8, sizeof bin8);
	assert_int_equal(th_mp_bin(&m, &b, &n), TH_ETRUNC);
	th_mp_init(&m, fixstr, sizeof fixstr);
	assert_int_equal(th_mp_str(&m, &s, &n), TH_ETRUNC);
	th_mp_init(&m, fixstr, sizeof fixstr);
	assert_int_equal(th_mp_skip(&m, 4), TH_ETRUNC);
	/* a map of one pair needs two bytes, an array of three items three */
	static const uint8_t okmap[] = {0x81, 0x01, 0x02}, okarr[] = {0x93, 1, 2, 3};
	th_mp_init(&m, okmap, sizeof okmap);
	assert_int_equal(th_mp_map(&m, &n), 0);
	assert_int_equal(n, 1);
	th_mp_init(&m, okarr, sizeof okarr);
	assert_int_equal(th_mp_array(&m, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(th_mp_left(&m), 3);
}

/* skip walks any nesting within depth, refuses deeper, and stops where the bytes end. */
static void skip_bounded_by_depth(void **state)
{
	(void)state;
	uint8_t deep[80];
	for (int i = 0; i < 79; i++)
		deep[i] = 0x91;   /* [[[...]]] */
	deep[79] = 0xc0;
	th_mp m;
	th_mp_init(&m, deep, sizeof deep);
	assert_int_equal(th_mp_skip(&m, 8), TH_EDEPTH);
	th_mp_init(&m, deep + 74, 6);   /* five arrays and the nil */
	assert_int_equal(th_mp_skip(&m, 8), 0);
	assert_int_equal(th_mp_left(&m), 0);
	/* a map with mixed values, skipped whole, then the item after it */
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "a", 1);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int(&pk, -70000);
	msgpack_pack_bin(&pk, 2);
	msgpack_pack_bin_body(&pk, "xy", 2);
	msgpack_pack_map(&pk, 0);
	msgpack_pack_uint64(&pk, 7);
	msgpack_pack_nil(&pk);
	msgpack_pack_int(&pk, 42);
	th_mp_init(&m, sb.data, sb.size);
	assert_int_equal(th_mp_skip(&m, 8), 0);
	int64_t v;
	assert_int_equal(th_mp_int(&m, &v), 0);
	assert_int_equal(v, 42);
	/* every prefix of it: never past the end */
	for (size_t cut = 0; cut + 1 < sb.size; cut++) {
		uint8_t *part = malloc(cut ? cut : 1);
		memcpy(part, sb.data, cut);
		th_mp_init(&m, part, cut);
		assert_int_equal(th_mp_skip(&m, 8), TH_ETRUNC);
		free(part);
	}
	msgpack_sbuffer_destroy(&sb);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(integers_of_every_width),
		cmocka_unit_test(strings_bins_and_kinds),
		cmocka_unit_test(claimed_lengths_checked),
		cmocka_unit_test(skip_bounded_by_depth),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

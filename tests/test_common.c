/* test_common.c -- the small common modules: hash, clocks, LMDB error
 * translation, socket options (common/th_hash.h, th_clock.c, th_lmdb.c, th_sock.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <lmdb.h>
#include <string.h>
#include <sys/time.h>
#include <zmq.h>

#include "testutil.h"
#include "th_clock.h"
#include "th_error.h"
#include "th_hash.h"
#include "th_lmdb.h"
#include "th_sock.h"

static void fnv1a_vectors(void **state)
{
	(void)state;
	/* the published FNV-1a 64 test vectors */
	assert_true(th_fnv1a("", 0) == 0xcbf29ce484222325ULL);
	assert_true(th_fnv1a("a", 1) == 0xaf63dc4c8601ec8cULL);
	assert_true(th_fnv1a_str("foobar") == 0x85944171f73967e8ULL);
	assert_true(th_fnv1a_step(th_fnv1a("foo", 3), "bar", 3) == th_fnv1a_str("foobar"));
}

static void clocks(void **state)
{
	(void)state;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	int64_t wall = (int64_t)tv.tv_sec * 1000000 + tv.tv_usec, now = th_now_us();
	assert_true(now >= wall && now - wall < 5000000);
	int64_t m1 = th_mono_us(), m2 = th_mono_us();
	assert_true(m2 >= m1);
}

static void lmdb_errors(void **state)
{
	(void)state;
	assert_int_equal(th_lmdb_error(0), TH_OK);
	assert_int_equal(th_lmdb_error(MDB_NOTFOUND), TH_ENOTFOUND);
	assert_int_equal(th_lmdb_error(MDB_MAP_FULL), TH_EMAPFULL);
	assert_int_equal(th_lmdb_error(ENOSPC), TH_ENOSPC);
	assert_int_equal(th_lmdb_error(EDQUOT), TH_ENOSPC);
	assert_int_equal(th_lmdb_error(ENOMEM), TH_ENOMEM);
	assert_int_equal(th_lmdb_error(EACCES), TH_EIO);
	assert_int_equal(th_lmdb_error(EROFS), TH_EIO);
	assert_int_equal(th_lmdb_error(MDB_CORRUPTED), TH_ESTORE);
	assert_int_equal(th_lmdb_error(MDB_PANIC), TH_ESTORE);
	assert_int_equal(th_lmdb_error(MDB_VERSION_MISMATCH), TH_ESTORE);
}

static int get_int(void *s, int opt)
{
	int v = -12345;
	size_t l = sizeof v;
	assert_int_equal(zmq_getsockopt(s, opt, &v, &l), 0);
	return v;
}

static void socket_options(void **state)
{
	(void)state;
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_ROUTER);
	int linger0 = get_int(s, ZMQ_LINGER);
	th_sockopts o = TH_SOCKOPTS_INIT;
	o.sndhwm = 777;
	o.max_msg = 1 << 20;
	o.router_mandatory = 1;
	o.rcvtimeo_ms = 250;
	assert_int_equal(th_sock_set(s, &o), 0);
	assert_int_equal(get_int(s, ZMQ_SNDHWM), 777);
	assert_int_equal(get_int(s, ZMQ_RCVTIMEO), 250);
	assert_int_equal(get_int(s, ZMQ_LINGER), linger0);   /* -1: left as it was */
	int64_t mm = 0;
	size_t l = sizeof mm;
	assert_int_equal(zmq_getsockopt(s, ZMQ_MAXMSGSIZE, &mm, &l), 0);
	assert_true(mm == 1 << 20);
	char pub[41], sec[41];
	assert_int_equal(zmq_curve_keypair(pub, sec), 0);
	assert_int_equal(th_sock_curve_server(s, sec, "tonghop"), 0);
	assert_int_equal(get_int(s, ZMQ_CURVE_SERVER), 1);
	char dom[32] = "";
	l = sizeof dom;
	assert_int_equal(zmq_getsockopt(s, ZMQ_ZAP_DOMAIN, dom, &l), 0);
	assert_string_equal(dom, "tonghop");
	assert_int_equal(th_sock_curve_server(s, "not a key", NULL), TH_ENET);
	zmq_close(s);
	zmq_ctx_term(ctx);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fnv1a_vectors),
		cmocka_unit_test(clocks),
		cmocka_unit_test(lmdb_errors),
		cmocka_unit_test(socket_options),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

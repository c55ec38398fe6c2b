/* test_conns.c -- collector/conns.c against real ZeroMQ sockets in this process: live
 * connections per key, the end of a connection seen on the monitor, untracked inproc. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "conns.h"
#include "testutil.h"
#include "th_error.h"

typedef struct {
	void *ctx, *router;
	char ep[64];
	th_conns *conns;
} fx;

static int setup(void **state)
{
	static fx f;
	memset(&f, 0, sizeof f);
	f.ctx = zmq_ctx_new();
	f.router = zmq_socket(f.ctx, ZMQ_ROUTER);
	int zero = 0;
	zmq_setsockopt(f.router, ZMQ_LINGER, &zero, sizeof zero);
	snprintf(f.ep, sizeof f.ep, "tcp://127.0.0.1:%d", tu_free_port());
	assert_int_equal(zmq_bind(f.router, f.ep), 0);
	assert_int_equal(zmq_bind(f.router, "inproc://test-conns"), 0);
	assert_int_equal(th_conns_new(f.ctx, f.router, 2, &f.conns), 0);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	th_conns_destroy(&f->conns);
	assert_null(f->conns);
	zmq_close(f->router);
	zmq_ctx_term(f->ctx);
	return 0;
}

static void *dealer(fx *f, const char *ep)
{
	void *s = zmq_socket(f->ctx, ZMQ_DEALER);
	int zero = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
	assert_int_equal(zmq_connect(s, ep), 0);
	return s;
}

/* Sends one frame on s and admits it at the router as coming from key. */
static int admit(fx *f, void *s, const char *key)
{
	assert_int_equal(zmq_send(s, "x", 1, 0), 1);
	zmq_msg_t id, body;
	zmq_msg_init(&id);
	zmq_msg_init(&body);
	assert_true(zmq_msg_recv(&id, f->router, 0) >= 0);
	assert_true(zmq_msg_recv(&body, f->router, 0) >= 0);
	int rc = th_conns_admit(f->conns, &id, &body, key);
	zmq_msg_close(&id);
	zmq_msg_close(&body);
	return rc;
}

static void limit_per_key(void **state)
{
	fx *f = *state;
	void *a1 = dealer(f, f->ep), *a2 = dealer(f, f->ep), *a3 = dealer(f, f->ep);
	void *b1 = dealer(f, f->ep);
	assert_int_equal(admit(f, a1, "A"), 0);
	assert_int_equal(admit(f, a2, "A"), 0);
	assert_int_equal(admit(f, a1, "A"), 0);          /* the same connection again */
	assert_int_equal(admit(f, a3, "A"), TH_EBUSY);   /* a third of key A */
	assert_int_equal(admit(f, b1, "B"), 0);          /* another key has its own count */
	assert_int_equal(admit(f, a3, "A"), TH_EBUSY);   /* still refused, not counted */
	assert_int_equal(th_conns_live(f->conns), 3);
	assert_int_equal(th_conns_disconnects(f->conns), 0);
	zmq_close(a1);
	for (int i = 0; i < 100 && th_conns_disconnects(f->conns) == 0; i++) {
		usleep(50000);
		th_conns_poll(f->conns);
	}
	assert_int_equal(th_conns_disconnects(f->conns), 1);
	assert_int_equal(th_conns_live(f->conns), 2);
	assert_int_equal(admit(f, a3, "A"), 0);          /* its place is free now */
	assert_int_equal(th_conns_live(f->conns), 3);
	zmq_close(a2);
	zmq_close(a3);
	zmq_close(b1);
}

/* A connection that closes and a new one on the same port: the new one counts, the old
 * one is forgotten, whatever descriptor the kernel hands out again. */
static void reconnects_do_not_accumulate(void **state)
{
	fx *f = *state;
	for (int round = 0; round < 5; round++) {
		void *s = dealer(f, f->ep);
		assert_int_equal(admit(f, s, "A"), 0);
		zmq_close(s);
		for (int i = 0; i < 100 && th_conns_disconnects(f->conns) < (uint64_t)round + 1; i++) {
			usleep(50000);
			th_conns_poll(f->conns);
		}
		assert_int_equal(th_conns_disconnects(f->conns), (uint64_t)round + 1);
		assert_int_equal(th_conns_live(f->conns), 0);
	}
}

/* inproc:// gives no file descriptor: such messages are never refused nor counted. */
static void inproc_untracked(void **state)
{
	fx *f = *state;
	void *s[3];
	for (int i = 0; i < 3; i++) {
		s[i] = dealer(f, "inproc://test-conns");
		assert_int_equal(admit(f, s[i], "A"), 0);
	}
	assert_int_equal(th_conns_live(f->conns), 0);
	for (int i = 0; i < 3; i++)
		zmq_close(s[i]);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(limit_per_key, setup, teardown),
		cmocka_unit_test_setup_teardown(reconnects_do_not_accumulate, setup, teardown),
		cmocka_unit_test_setup_teardown(inproc_untracked, setup, teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

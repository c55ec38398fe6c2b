/* zmq_ceiling.c -- raw ZeroMQ throughput of the same submit messages: one
 * DEALER sends every encoded submit (batch B reports each) to a ROUTER over
 * tcp loopback, with CURVE or without; the time from the first send to the
 * last message received.  No decoding, no store.
 * usage: th-bench-zmq DEFS DATA_DIR BATCH curve|plain PORT  (prints key=value) */
#include "common.h"
#include "th_sock.h"
#include "th_wire.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

typedef struct job {
	void *ctx;
	const char *ep;
	int curve;
	char spub[41], ssec[41];
	size_t expect;
	double t_end;
	int ready;
} job;

static void *receiver(void *p)
{
	job *j = p;
	void *s = zmq_socket(j->ctx, ZMQ_ROUTER);
	int hwm = 0;
	zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
	if (j->curve)
		th_sock_curve_server(s, j->ssec, NULL);
	if (zmq_bind(s, j->ep) != 0) {
		fprintf(stderr, "th-bench-zmq: bind %s: %s\n", j->ep, zmq_strerror(zmq_errno()));
		exit(1);
	}
	__atomic_store_n(&j->ready, 1, __ATOMIC_SEQ_CST);
	zmq_msg_t m;
	zmq_msg_init(&m);
	size_t got = 0;
	while (got < j->expect) {
		if (zmq_msg_recv(&m, s, 0) < 0)
			break;
		if (!zmq_msg_more(&m))
			got++;
	}
	j->t_end = bench_now();
	zmq_msg_close(&m);
	zmq_close(s);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: th-bench-zmq DEFS DATA_DIR BATCH curve|plain PORT\n");
		return 2;
	}
	size_t batch = (size_t)atol(argv[3]);
	int curve = strcmp(argv[4], "curve") == 0;
	char ep[64];
	snprintf(ep, sizeof ep, "tcp://127.0.0.1:%s", argv[5]);
	bench_set set;
	if (batch < 1 || bench_load(argv[1], argv[2], 1, &set) != 0)
		return 1;
	size_t n_msgs = (set.n + batch - 1) / batch, bytes = 0;
	uint8_t **buf = calloc(n_msgs, sizeof *buf);
	size_t *len = calloc(n_msgs, sizeof *len);
	for (size_t i = 0; i < n_msgs; i++) {
		size_t r = i * batch, k = set.n - r < batch ? set.n - r : batch;
		if (th_wire_encode_submit(i, set.reports + r, k, set.defs, &buf[i], &len[i]) != 0)
			return 1;
		bytes += len[i];
	}
	void *ctx = zmq_ctx_new();
	job j = {.ctx = ctx, .ep = ep, .curve = curve, .expect = n_msgs};
	char cpub[41], csec[41];
	if (curve && (zmq_curve_keypair(j.spub, j.ssec) != 0 || zmq_curve_keypair(cpub, csec) != 0)) {
		fprintf(stderr, "th-bench-zmq: no CURVE in this libzmq\n");
		return 1;
	}
	pthread_t th;
	pthread_create(&th, NULL, receiver, &j);
	while (!__atomic_load_n(&j.ready, __ATOMIC_SEQ_CST))
		;
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	int hwm = 0;
	zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
	if (curve) {
		zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, j.spub, 40);
		zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, cpub, 40);
		zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, csec, 40);
	}
	zmq_connect(s, ep);
	double t0 = bench_now();
	for (size_t i = 0; i < n_msgs; i++)
		zmq_send(s, buf[i], len[i], 0);
	pthread_join(th, NULL);
	double secs = j.t_end - t0;
	printf("zmq_%s_msgs=%zu zmq_%s_bytes=%zu zmq_%s_secs=%.4f zmq_%s_reports_s=%.0f "
	       "zmq_%s_records_s=%.0f zmq_%s_mb_s=%.1f\n",
	       argv[4], n_msgs, argv[4], bytes, argv[4], secs, argv[4], (double)set.n / secs,
	       argv[4], (double)set.records / secs, argv[4], (double)bytes / secs / 1e6);
	zmq_close(s);
	zmq_ctx_term(ctx);
	for (size_t i = 0; i < n_msgs; i++)
		free(buf[i]);
	free(buf);
	free(len);
	bench_free(&set);
	return 0;
}

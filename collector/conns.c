/* conns.c -- live ingest connections per key, from ZMQ_SRCFD and the socket monitor. */
#include "conns.h"
#include "th_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	int used;
	uint8_t rid_len;
	uint8_t rid[255];
	char key[65];
} conn;

struct th_conns {
	void *monitor;          /* PAIR connected to the ROUTER's monitor endpoint */
	void *router;
	uint32_t max_per_key;
	conn *by_fd;            /* indexed by file descriptor */
	size_t cap, live;
	uint64_t disconnects;
};

int th_conns_new(void *zmq_ctx, void *router, uint32_t max_per_key, th_conns **out)
{
	th_conns *c = calloc(1, sizeof *c);
	if (!c)
		return TH_ENOMEM;
	char ep[64];
	snprintf(ep, sizeof ep, "inproc://th-conns-%p", (void *)c);
	c->router = router;
	c->max_per_key = max_per_key;
	if (zmq_socket_monitor(router, ep, ZMQ_EVENT_DISCONNECTED) != 0)
		goto fail;
	c->monitor = zmq_socket(zmq_ctx, ZMQ_PAIR);
	int zero = 0;
	if (!c->monitor || zmq_setsockopt(c->monitor, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
	    zmq_connect(c->monitor, ep) != 0) {
		zmq_socket_monitor(router, NULL, 0);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	if (c->monitor)
		zmq_close(c->monitor);
	free(c);
	return TH_ENET;
}

void th_conns_destroy(th_conns **pc)
{
	if (!pc || !*pc)
		return;
	th_conns *c = *pc;
	/* libzmq sends monitor events blocking, under the lock that stopping the monitor
	 * takes: drain first so that no sender waits on a full pipe meanwhile */
	th_conns_poll(c);
	zmq_socket_monitor(c->router, NULL, 0);
	zmq_close(c->monitor);
	free(c->by_fd);
	free(c);
	*pc = NULL;
}

static void forget(th_conns *c, int fd)
{
	if (fd >= 0 && (size_t)fd < c->cap && c->by_fd[fd].used) {
		c->by_fd[fd].used = 0;
		c->live--;
	}
}

void th_conns_poll(th_conns *c)
{
	for (;;) {
		zmq_msg_t ev, addr;
		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, c->monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		/* frame 1: uint16 event, uint32 value (the fd), host order; frame 2: endpoint */
		uint16_t event = 0;
		uint32_t value = 0;
		if (zmq_msg_size(&ev) >= 6) {
			memcpy(&event, zmq_msg_data(&ev), 2);
			memcpy(&value, (const uint8_t *)zmq_msg_data(&ev) + 2, 4);
		}
		int more = zmq_msg_more(&ev);
		zmq_msg_close(&ev);
		while (more) {
			zmq_msg_init(&addr);
			more = zmq_msg_recv(&addr, c->monitor, 0) >= 0 && zmq_msg_more(&addr);
			zmq_msg_close(&addr);
		}
		if (event == ZMQ_EVENT_DISCONNECTED) {
			c->disconnects++;
			forget(c, (int)value);
		}
	}
}

static size_t live_of(const th_conns *c, const char *key)
{
	size_t n = 0;
	for (size_t i = 0; i < c->cap; i++)
		n += c->by_fd[i].used && strcmp(c->by_fd[i].key, key) == 0;
	return n;
}

int th_conns_admit(th_conns *c, zmq_msg_t *rid, zmq_msg_t *body, const char *key)
{
	int fd = zmq_msg_get(body, ZMQ_SRCFD);
	size_t rl = zmq_msg_size(rid);
	if (fd < 0 || rl == 0 || rl > sizeof c->by_fd[0].rid)
		return 0;
	if ((size_t)fd < c->cap) {
		conn *e = &c->by_fd[fd];
		if (e->used && e->rid_len == rl && memcmp(e->rid, zmq_msg_data(rid), rl) == 0)
			return 0;
	}
	/* A new connection on fd.  libzmq reports the end of the connection that used fd
	 * before closing that fd, so reading the monitor now forgets it for sure. */
	th_conns_poll(c);
	if ((size_t)fd >= c->cap) {
		size_t cap = c->cap ? c->cap : 64;
		while (cap <= (size_t)fd)
			cap *= 2;
		conn *nb = realloc(c->by_fd, cap * sizeof *nb);
		if (!nb)
			return 0;   /* untracked rather than refused */
		memset(nb + c->cap, 0, (cap - c->cap) * sizeof *nb);
		c->by_fd = nb;
		c->cap = cap;
	}
	forget(c, fd);   /* only when an event was lost: fd cannot be open twice */
	if (c->max_per_key && live_of(c, key) >= c->max_per_key)
		return TH_EBUSY;
	conn *e = &c->by_fd[fd];
	e->used = 1;
	e->rid_len = (uint8_t)rl;
	memcpy(e->rid, zmq_msg_data(rid), rl);
	snprintf(e->key, sizeof e->key, "%s", key);
	c->live++;
	return 0;
}

uint64_t th_conns_disconnects(const th_conns *c) { return c->disconnects; }

size_t th_conns_live(const th_conns *c) { return c->live; }

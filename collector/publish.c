/* publish.c -- the rollup stream (publish.h). */
#include "publish.h"
#include "query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

struct th_publish {
	void *ctx, *sock;
	char *endpoint;
	th_publish_setup setup;
	void *setup_ctx;
	/* prefixes subscribed (libzmq passes each topic's first subscribe and last
	 * unsubscribe): only what someone wants is read and encoded */
	char **subs;
	size_t *sublen, nsubs, capsubs;
};

static void close_now(void *sock)
{
	int zero = 0;
	zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
	zmq_close(sock);
}

static void subs_clear(th_publish *p)
{
	for (size_t i = 0; i < p->nsubs; i++)
		free(p->subs[i]);
	free(p->subs);
	free(p->sublen);
	p->subs = NULL;
	p->sublen = NULL;
	p->nsubs = p->capsubs = 0;
}

static void *make_socket(th_publish *p)
{
	void *sock = zmq_socket(p->ctx, ZMQ_XPUB);
	if (!sock)
		return NULL;
	if (p->setup(p->setup_ctx, sock) != 0 || zmq_bind(sock, p->endpoint) != 0) {
		close_now(sock);
		return NULL;
	}
	return sock;
}

int th_publish_new(void *zmq_ctx, const char *endpoint, th_publish_setup setup, void *setup_ctx,
                   th_publish **out)
{
	th_publish *p = calloc(1, sizeof *p);
	if (!p || !(p->endpoint = strdup(endpoint))) {
		free(p);
		return TH_ENOMEM;
	}
	p->ctx = zmq_ctx;
	p->setup = setup;
	p->setup_ctx = setup_ctx;
	if (!(p->sock = make_socket(p))) {
		th_publish_destroy(&p);
		return TH_ENET;
	}
	*out = p;
	return TH_OK;
}

void th_publish_destroy(th_publish **pp)
{
	if (!pp || !*pp)
		return;
	th_publish *p = *pp;
	if (p->sock)
		zmq_close(p->sock);
	subs_clear(p);
	free(p->endpoint);
	free(p);
	*pp = NULL;
}

int th_publish_rebind(th_publish *p)
{
	zmq_unbind(p->sock, p->endpoint);
	void *fresh = NULL;
	for (int attempt = 0; attempt < 100 && !fresh; attempt++)
		if (!(fresh = make_socket(p)))
			usleep(20000);   /* the old listener is closed asynchronously */
	if (!fresh) {
		zmq_bind(p->sock, p->endpoint);   /* keep the old one */
		return TH_ENET;
	}
	close_now(p->sock);
	p->sock = fresh;
	subs_clear(p);   /* the subscribers reconnect and subscribe again */
	return TH_OK;
}

/* Reads the (un)subscriptions waiting on the socket. */
static void subs_read(th_publish *p)
{
	for (;;) {
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_msg_recv(&m, p->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&m);
			return;
		}
		const uint8_t *d = zmq_msg_data(&m);
		size_t n = zmq_msg_size(&m);
		if (n >= 1 && (d[0] == 0 || d[0] == 1)) {
			size_t i = 0;
			while (i < p->nsubs && !(p->sublen[i] == n - 1 && !memcmp(p->subs[i], d + 1, n - 1)))
				i++;
			if (d[0] == 0 && i < p->nsubs) {
				free(p->subs[i]);
				p->subs[i] = p->subs[p->nsubs - 1];
				p->sublen[i] = p->sublen[p->nsubs - 1];
				p->nsubs--;
			} else if (d[0] == 1 && i == p->nsubs) {
				if (p->nsubs == p->capsubs) {
					size_t cap = p->capsubs ? p->capsubs * 2 : 8;
					char **ns = realloc(p->subs, cap * sizeof *ns);
					if (ns)
						p->subs = ns;
					size_t *nl = realloc(p->sublen, cap * sizeof *nl);
					if (nl)
						p->sublen = nl;
					if (ns && nl)
						p->capsubs = cap;
				}
				char *copy = p->nsubs < p->capsubs ? malloc(n) : NULL;
				if (copy) {
					memcpy(copy, d + 1, n - 1);
					p->subs[p->nsubs] = copy;
					p->sublen[p->nsubs++] = n - 1;
				}
			}
		}
		zmq_msg_close(&m);
	}
}

static int wanted(const th_publish *p, const char *topic, size_t tl)
{
	for (size_t i = 0; i < p->nsubs; i++)
		if (p->sublen[i] <= tl && !memcmp(p->subs[i], topic, p->sublen[i]))
			return 1;
	return 0;
}

size_t th_publish_changes(th_publish *p, th_store *s, const th_changed_node *ch, size_t n)
{
	subs_read(p);
	size_t sent = 0;
	for (size_t i = 0; i < n && p->nsubs; i++) {
		char topic[256];
		int tl = snprintf(topic, sizeof topic, "L%u\x1f%s\x1f%s\x1f%s\x1f", ch[i].level, ch[i].unit,
		                  ch[i].appendix, ch[i].period);
		if (tl <= 0 || (size_t)tl >= sizeof topic || !wanted(p, topic, (size_t)tl))
			continue;   /* nobody listens to this node: not even read */
		const th_def *d = th_store_def_for(s, ch[i].appendix, ch[i].period);
		const th_units *h = NULL;
		th_node node;
		memset(&node, 0, sizeof node);
		if (!d || th_store_hierarchy_for(s, ch[i].period, &h) != 0 ||
		    th_store_get_node(s, ch[i].appendix, ch[i].period, ch[i].unit, &node) != 0)
			continue;
		long ui = th_units_find(h, ch[i].unit);
		th_wire_node w = th_query_wire_node(&node, ui >= 0 ? th_units_at(h, (size_t)ui) : NULL, d,
		                                    ch[i].appendix, ch[i].period);
		uint8_t *body = NULL;
		size_t blen = 0;
		if (th_wire_encode_node(&w, &body, &blen) == 0 &&
		    zmq_send(p->sock, topic, (size_t)tl, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0 &&
		    zmq_send(p->sock, body, blen, ZMQ_DONTWAIT) >= 0)
			sent++;
		free(body);
		th_node_free(&node);
	}
	return sent;
}

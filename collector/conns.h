/* conns.h -- the ingest socket's live connections per key (collector/KEYS.md,
 * "Connections per key"), and how many connections have ended.
 *
 * A connection is known by the file descriptor libzmq read its message from
 * (ZMQ_SRCFD) and its ROUTER routing id.  It counts as live from its first message
 * until libzmq reports it closed on the socket monitor (ZMQ_EVENT_DISCONNECTED on
 * that descriptor).  Messages without a descriptor (inproc://) are not tracked
 * and never refused.  Used by the server thread only. */
#ifndef TH_CONNS_H
#define TH_CONNS_H

#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

typedef struct th_conns th_conns;

/* Starts monitoring router (a ROUTER socket of zmq_ctx) for closed connections;
 * max_per_key 0 means no limit.  0, TH_ENOMEM or TH_ENET. */
int th_conns_new(void *zmq_ctx, void *router, uint32_t max_per_key, th_conns **out);
/* Stops the monitor and frees; NULL-safe, nulls *c.  Call before closing router. */
void th_conns_destroy(th_conns **c);

/* Reads the monitor events waiting now: forgets closed connections, counts them. */
void th_conns_poll(th_conns *c);

/* Accounts the message body (the frame after the routing id rid) from the connection
 * of key (a NUL-terminated key name): 0 when its connection is live (counted now if
 * it is new), TH_EBUSY when it is a new connection and key already has max_per_key
 * live ones (it is not counted then, and is checked again at its next message). */
int th_conns_admit(th_conns *c, zmq_msg_t *rid, zmq_msg_t *body, const char *key);

/* Connections of the socket closed since the start, for any reason (see KEYS.md). */
uint64_t th_conns_disconnects(const th_conns *c);
/* Live connections tracked now. */
size_t th_conns_live(const th_conns *c);

#endif

/* agent.h -- the agent's connection to the collector: hello / welcome,
 * delivery of the outbox's pending reports, acks (schema/th_wire.h).
 *
 * One DEALER socket (CURVE client unless insecure) with heartbeats; libzmq
 * reconnects forever with capped exponential backoff and jitter.  A socket
 * monitor turns handshake failures into operator messages ("the collector
 * refused this key") instead of silent timeouts.  Several submits are in
 * flight (up to the welcome's max_inflight); each is resent after an ack
 * timeout with backoff and jitter; acks are matched by (key, rev), so an ack
 * from an earlier connection still counts.
 */
#ifndef TH_AGENT_H
#define TH_AGENT_H

#include <stdint.h>
#include <stddef.h>
#include <zmq.h>
#include "th_error.h"
#include "th_keyfile.h"
#include "th_wire.h"
#include "outbox.h"


typedef struct th_agent_opts {
	const char *endpoint;          /* tcp://host:port */
	const char *unit;              /* the unit the agent believes it is */
	int insecure;                  /* 1: no CURVE */
	char public_key[TH_Z85_LEN + 1];
	char secret_key[TH_Z85_LEN + 1];
	char server_key[TH_Z85_LEN + 1];
	int heartbeat_ms;              /* 0: 2000 */
	int ack_timeout_ms;            /* 0: 10000 */
	int reconnect_max_ms;          /* 0: 5000 */
} th_agent_opts;

enum { TH_AGENT_INFO = 0, TH_AGENT_WARN, TH_AGENT_ERROR };

typedef struct th_agent_hooks {
	void *ctx;
	/* one line for the operator */
	void (*log)(void *ctx, int level, const char *msg);
	/* a result that changed a pending entry of the outbox */
	void (*result)(void *ctx, const th_ack *a, const th_ack_result *r);
} th_agent_hooks;

typedef struct th_agent th_agent;

/* Creates the socket and connects (asynchronously).  The outbox stays the
 * caller's and must outlive the agent.  *out only on success. */
int th_agent_new(const th_agent_opts *o, th_outbox *ob, const th_agent_hooks *h, th_agent **out);
void th_agent_destroy(th_agent **a);

/* One turn: waits at most timeout_ms for the collector (and the extra poll
 * items, whose revents are filled in), handles what arrived, and sends what
 * is due.  Returns 0, or TH_ENET when polling itself failed. */
int th_agent_poll(th_agent *a, int timeout_ms, zmq_pollitem_t *extra, size_t n_extra);
/* Tells the agent new reports are pending (sent at the next turn). */
void th_agent_kick(th_agent *a);
/* 1 once a welcome arrived on the current connection. */
int th_agent_welcomed(const th_agent *a);
/* Handshakes the collector refused (ZAP: unknown key) and handshakes that
 * failed otherwise (wrong server key, protocol), since the agent started. */
int th_agent_auth_refusals(const th_agent *a);
int th_agent_handshake_failures(const th_agent *a);
/* 1 when pending (unit, appendix, period, rev) waits in a retry hold or is
 * in flight; for status output. */
int th_agent_busy(const th_agent *a);

#endif

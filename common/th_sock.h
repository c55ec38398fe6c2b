/* th_sock.h -- ZeroMQ socket options and CURVE set-up, written once for every
 * socket the programs open (collector ingest/PUB/query, agent, tools, bench). */
#ifndef TH_SOCK_H
#define TH_SOCK_H

#include <stdint.h>

/* Each field left at -1 keeps libzmq's default. */
typedef struct th_sockopts {
	int linger_ms;                 /* ZMQ_LINGER */
	int sndhwm, rcvhwm;            /* ZMQ_SNDHWM, ZMQ_RCVHWM (messages) */
	int heartbeat_ivl_ms;          /* ZMQ_HEARTBEAT_IVL */
	int heartbeat_timeout_ms;      /* ZMQ_HEARTBEAT_TIMEOUT */
	int heartbeat_ttl_ms;          /* ZMQ_HEARTBEAT_TTL */
	int handshake_ivl_ms;          /* ZMQ_HANDSHAKE_IVL */
	int backlog;                   /* ZMQ_BACKLOG */
	int64_t max_msg;               /* ZMQ_MAXMSGSIZE (bytes) */
	int router_mandatory;          /* ZMQ_ROUTER_MANDATORY (1) */
	int immediate;                 /* ZMQ_IMMEDIATE (1) */
	int reconnect_ivl_ms;          /* ZMQ_RECONNECT_IVL */
	int reconnect_ivl_max_ms;      /* ZMQ_RECONNECT_IVL_MAX */
	int rcvtimeo_ms, sndtimeo_ms;  /* ZMQ_RCVTIMEO, ZMQ_SNDTIMEO */
} th_sockopts;

#define TH_SOCKOPTS_INIT                                                                        \
	{ .linger_ms = -1, .sndhwm = -1, .rcvhwm = -1, .heartbeat_ivl_ms = -1,                      \
	  .heartbeat_timeout_ms = -1, .heartbeat_ttl_ms = -1, .handshake_ivl_ms = -1, .backlog = -1, \
	  .max_msg = -1, .router_mandatory = -1, .immediate = -1, .reconnect_ivl_ms = -1,           \
	  .reconnect_ivl_max_ms = -1, .rcvtimeo_ms = -1, .sndtimeo_ms = -1 }

/* Sets every field that is not -1.  0, or TH_ENET (zmq_errno() says why). */
int th_sock_set(void *sock, const th_sockopts *o);

/* Makes sock a CURVE server with the Z85 secret key, authenticated through the
 * ZAP domain (NULL: none).  0 or TH_ENET. */
int th_sock_curve_server(void *sock, const char *secret_z85, const char *zap_domain);
/* Makes sock a CURVE client of the server's Z85 public key with its own
 * keypair.  0 or TH_ENET. */
int th_sock_curve_client(void *sock, const char *server_pub, const char *pub, const char *sec);

#endif

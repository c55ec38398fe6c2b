/* th_sock.c -- socket options and CURVE (th_sock.h). */
#include "th_sock.h"
#include "th_error.h"

#include <string.h>
#include <zmq.h>

static int set_int(void *s, int opt, int v)
{
	return v < 0 ? 0 : zmq_setsockopt(s, opt, &v, sizeof v);
}

int th_sock_set(void *sock, const th_sockopts *o)
{
	int rc = set_int(sock, ZMQ_LINGER, o->linger_ms) | set_int(sock, ZMQ_SNDHWM, o->sndhwm) |
	         set_int(sock, ZMQ_RCVHWM, o->rcvhwm) |
	         set_int(sock, ZMQ_HEARTBEAT_IVL, o->heartbeat_ivl_ms) |
	         set_int(sock, ZMQ_HEARTBEAT_TIMEOUT, o->heartbeat_timeout_ms) |
	         set_int(sock, ZMQ_HEARTBEAT_TTL, o->heartbeat_ttl_ms) |
	         set_int(sock, ZMQ_HANDSHAKE_IVL, o->handshake_ivl_ms) |
	         set_int(sock, ZMQ_BACKLOG, o->backlog) |
	         set_int(sock, ZMQ_ROUTER_MANDATORY, o->router_mandatory) |
	         set_int(sock, ZMQ_IMMEDIATE, o->immediate) |
	         set_int(sock, ZMQ_RECONNECT_IVL, o->reconnect_ivl_ms) |
	         set_int(sock, ZMQ_RECONNECT_IVL_MAX, o->reconnect_ivl_max_ms) |
	         set_int(sock, ZMQ_RCVTIMEO, o->rcvtimeo_ms) | set_int(sock, ZMQ_SNDTIMEO, o->sndtimeo_ms);
	if (o->max_msg >= 0)
		rc |= zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &o->max_msg, sizeof o->max_msg);
	return rc ? TH_ENET : TH_OK;
}

int th_sock_curve_server(void *sock, const char *secret_z85, const char *zap_domain)
{
	int one = 1;
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret_z85, strlen(secret_z85)) ||
	    (zap_domain && zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, zap_domain, strlen(zap_domain))))
		return TH_ENET;
	return TH_OK;
}

int th_sock_curve_client(void *sock, const char *server_pub, const char *pub, const char *sec)
{
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_pub, strlen(server_pub)) ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub, strlen(pub)) ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, sec, strlen(sec)))
		return TH_ENET;
	return TH_OK;
}

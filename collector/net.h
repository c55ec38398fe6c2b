/* net.h -- the collector's sockets and main loop (group commit, acks,
 * publishing, queries). */
#ifndef TH_NET_H
#define TH_NET_H

#include <signal.h>
#include <stdint.h>
#include "keys.h"
#include "th_def.h"
#include "th_store.h"
#include "th_wire.h"

typedef struct th_stats {
	uint64_t accepted, duplicate, stale, conflict, retry_later, rejected;
	uint64_t refused_msgs;        /* whole messages refused (malformed, unauthorised) */
	uint64_t hellos, submits, queries;
	uint64_t records, bytes;
	uint64_t commits, group_reports_max, group_reports_sum;
	uint64_t commit_us_max, commit_us_sum;
	uint64_t published;
	uint64_t inflight_refused;    /* submits refused: too many in flight on one connection */
	uint64_t conns_refused;       /* messages refused: too many live connections for one key */
	uint64_t disconnects;         /* ingest connections ended, for any reason (KEYS.md) */
	uint64_t conns_live;          /* ingest connections tracked as live now (a gauge) */
} th_stats;

/* An admin's new hierarchy version, sent over the query socket
 * (collector/QUERY.md, units_submit); decided by the collector's main module. */
typedef struct th_units_submit {
	const th_key *key;          /* the sender; NULL when its key is not (or no longer) authorised */
	const char *name;           /* the file's name as the tool gave it, for messages */
	const char *text;           /* the file's bytes (not NUL-terminated) */
	size_t len;
	/* the answer */
	char message[1024];         /* why it was refused */
	th_diag *diag;              /* the parser's problems (file:line), owned by the caller */
	char path[4096];            /* where it was written */
	char warning[1024];         /* on success: something the sender should know, or "" */
	const th_units *loaded;     /* the version as stored (owned by the store) */
} th_units_submit;
/* Returns 0 when the version was written and loaded (path and loaded set),
 * else a TH_E* code with message (and diag for a file that does not parse). */
typedef int (*th_units_submit_fn)(void *ctx, th_units_submit *sub);

typedef struct th_server_conf {
	const char *bind, *pub, *query;
	int insecure;
	char server_pub[TH_Z85_LEN + 1], server_sec[TH_Z85_LEN + 1];
	int group_max;                /* messages per commit group */
	size_t group_bytes;           /* bytes per commit group */
	th_limits limits;
	const char *root_unit;        /* scope of peers in insecure mode */
	th_units_submit_fn units_submit;   /* NULL: submissions refused */
	void *units_ctx;
	uint32_t max_conns_per_key;   /* live ingest connections per key; 0: no limit */
} th_server_conf;

typedef struct th_server th_server;

extern volatile sig_atomic_t th_stop_flag, th_reload_flag;

/* Creates sockets (binding them) on a new ZeroMQ context; zap may be NULL in
 * insecure mode. */
int th_server_new(const th_server_conf *conf, th_store *store, const th_defset *defs,
                  th_zap *zap, void *zmq_ctx, th_server **out);
/* Runs until th_stop_flag; calls reload(ctx) when th_reload_flag is set. */
int th_server_run(th_server *s, void (*reload)(void *ctx), void *ctx);
const th_stats *th_server_stats(const th_server *s);
void th_server_destroy(th_server **s);

/* What a query is answered from. */
typedef struct th_query_env {
	th_store *store;
	const th_defset *defs;
	const th_stats *stats;
	const th_key *key;                 /* the asking key; NULL when unknown (revoked) */
	th_units_submit_fn units_submit;   /* NULL: units_submit refused */
	void *units_ctx;
} th_query_env;

/* query.c: answers one query frame; *out malloc'd msgpack reply. */
int th_query_answer(const th_query_env *env, const uint8_t *buf, size_t len, uint8_t **out,
                    size_t *outlen);

#endif

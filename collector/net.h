/* net.h -- the collector's sockets and poll loop (DESIGN sections 4-6, 8): the
 * ingest ROUTER (hello, submit; group commit through the committer; acks once a
 * group is durable), the query ROUTER (query.h) and the rollup stream
 * (publish.h).  Every report is checked as it arrives (ingest.h); hellos and
 * queries are answered at once, also while the committer writes a group (they
 * read the store through read transactions). */
#ifndef TH_NET_H
#define TH_NET_H

#include <signal.h>
#include <stdint.h>
#include "committer.h"
#include "keys.h"
#include "metrics.h"
#include "query.h"
#include "th_def.h"
#include "th_store.h"
#include "th_wire.h"

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

/* Creates the sockets (binding them) on zmq_ctx; zap may be NULL in insecure
 * mode.  Groups go to the committer c, which writes store (both outlive the
 * server). */
int th_server_new(const th_server_conf *conf, th_store *store, th_committer *c,
                  const th_defset *defs, th_zap *zap, void *zmq_ctx, th_server **out);
/* Runs until th_stop_flag; calls reload(ctx) when th_reload_flag is set.  At
 * the stop the group with the committer is committed and acknowledged; the one
 * being filled is not (its agents send it again). */
int th_server_run(th_server *s, void (*reload)(void *ctx), void *ctx);
const th_stats *th_server_stats(const th_server *s);
void th_server_destroy(th_server **s);

#endif

/* publish.h -- the rollup stream (collector/QUERY.md): the XPUB socket, the
 * subscriptions its subscribers sent, and after each commit one message per
 * changed node that some subscription matches (its topic, then the node map of
 * schema/th_wire_query.c, read from the store).  Used by the network thread. */
#ifndef TH_PUBLISH_H
#define TH_PUBLISH_H

#include <stddef.h>
#include "th_store.h"

/* Sets the options (and CURVE) of a new XPUB socket before it is bound; 0 or TH_E*. */
typedef int (*th_publish_setup)(void *ctx, void *sock);

typedef struct th_publish th_publish;

/* Makes the XPUB socket of zmq_ctx (setup(setup_ctx, sock), then bound to
 * endpoint).  0, TH_ENOMEM, or TH_ENET (zmq_errno() says why). */
int th_publish_new(void *zmq_ctx, const char *endpoint, th_publish_setup setup, void *setup_ctx,
                   th_publish **out);
void th_publish_destroy(th_publish **p);
/* Recreates the socket on the same endpoint, so that every subscriber reconnects
 * and passes ZAP again under the keys now in force (a revoked reader is cut off).
 * The old socket stays when the new one cannot be set up.  0 or TH_ENET. */
int th_publish_rebind(th_publish *p);
/* Reads the subscriptions waiting, then publishes each of ch[0..n) someone
 * subscribed to, read from s (a node changed since is sent as it is now).
 * Returns the number of messages sent. */
size_t th_publish_changes(th_publish *p, th_store *s, const th_changed_node *ch, size_t n);

#endif

/* th_client.h -- the client side of the collector's query socket and rollup
 * stream (collector/QUERY.md): every message the tools send to or read from a
 * collector is encoded and decoded in client.c, and nowhere else.
 *
 * The query client is used through the source interface (th_source.h);
 * `tonghop watch` reads the stream with th_stream_*.
 */
#ifndef TH_CLIENT_H
#define TH_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "th_def.h"
#include "th_source.h"
#include "th_store.h"

/* --- query socket ----------------------------------------------------------- */
typedef struct th_qc th_qc;

/* Connects a DEALER to endpoint (CURVE with the keypair file key_file and the
 * collector's public key file server_key, unless insecure).  NULL with a
 * sentence in why (cap bytes) on failure.  Each answer is awaited 10 s. */
th_qc *th_qc_new(const char *endpoint, const char *key_file, const char *server_key, int insecure,
                 char *why, size_t why_cap);
void th_qc_destroy(th_qc **q);
/* The last failure's text ("no answer from the collector (...)", "reason:
 * message" of a refusal, ...); valid until the next call. */
const char *th_qc_error(const th_qc *q);

/* The queries of QUERY.md.  Each returns 0, or a TH_E* code: a refusal's
 * reason (th_errcode), TH_ETIMEOUT, TH_ENET, TH_EPROTO (a malformed answer).
 * A th_unit given to cb has code, name, depth (and for missing: parent_code,
 * kind, person, phone, email; parent is -1, no children); it and the node are
 * valid during the call only.  d lays out the rollup vectors (n_slots). */
int th_qc_definition(th_qc *q, const char *appendix, const char *period, uint32_t *version);
int th_qc_level(th_qc *q, const th_def *d, const char *appendix, const char *period, uint32_t level,
                const char *parent, th_node_cb cb, void *ctx);
int th_qc_missing(th_qc *q, const char *appendix, const char *period, const char *unit,
                  th_node_cb cb, void *ctx);
/* A node (release with th_node_free) and its unit's name (malloc'd into *name
 * when name is not NULL; "" when the answer has none). */
int th_qc_node(th_qc *q, const th_def *d, const char *appendix, const char *period,
               const char *unit, th_node *out, char **name);
/* Every hierarchy version, in version-id order; cb's row is valid during the call. */
int th_qc_hierarchies(th_qc *q, th_hier_row_cb cb, void *ctx);
/* Submits a hierarchy file (name: for messages; text: its bytes) as a new
 * version (admin keys only).  0: *loaded (release with th_hier_row_free) and
 * path (where the collector wrote it) are set, and problem(ctx, text) gets
 * the collector's warning ("warning: ...") if it has one.  Else a TH_E* code,
 * th_qc_error() has the reason and problem(ctx, line) gets each of the
 * collector's file:line problems. */
int th_qc_units_submit(th_qc *q, const char *name, const char *text, size_t len,
                       th_hier_row *loaded, char *path, size_t cap,
                       void (*problem)(void *ctx, const char *line), void *ctx);

/* --- rollup stream ------------------------------------------------------------ */
typedef struct th_stream th_stream;

/* One message of the stream: a node's new completeness and version. */
typedef struct th_stream_msg {
	char unit[TH_CODE_MAX + 1], appendix[TH_CODE_MAX + 1], period[TH_PERIOD_MAX + 1];
	uint64_t level, version, commit, expected, reported, on_time, late;
} th_stream_msg;

/* Subscribes to the stream at pub (CURVE as th_qc_new, or plain when
 * insecure) for level (0 = every level) and, with a level, unit (NULL =
 * every unit); without a level, messages of other units than unit are
 * skipped by th_stream_next.  0, or TH_EINVAL (no keys and not insecure),
 * TH_EKEY/TH_EIO (key files), TH_ENET, with why. */
int th_stream_open(const char *pub, const char *key_file, const char *server_key, int insecure,
                   long level, const char *unit, th_stream **out, char *why, size_t cap);
void th_stream_destroy(th_stream **s);
/* Waits up to timeout_ms for the next message: 0 (*out filled), TH_ETIMEOUT
 * (nothing, or a signal interrupted the wait), TH_EPROTO (a message that is
 * not a rollup map: skipped). */
int th_stream_next(th_stream *s, int timeout_ms, th_stream_msg *out);

#endif

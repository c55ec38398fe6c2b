/* tonghop.h -- commands of the tonghop tool that live in their own file. */
#ifndef TH_TONGHOP_H
#define TH_TONGHOP_H

#include <inttypes.h>
#include <stddef.h>
#include "th_def.h"
#include "th_keyfile.h"
#include "th_sock.h"
#include "th_store.h"

/* `tonghop watch`: subscribes to the collector's rollup stream at pub
 * (CURVE with the keypair file key_file and the collector's public key file
 * server_key, or plain when insecure), filtered by level (0 = all) and unit,
 * and prints one line per message; stops after count messages (0 = never)
 * or at SIGINT/SIGTERM.  Returns the exit code. */
int th_cmd_watch(const char *pub, const char *key_file, const char *server_key, int insecure,
                 long level, const char *unit, long count);

/* A client of the collector's query socket (collector/QUERY.md). */
typedef struct th_qc th_qc;
/* Connects (CURVE with key_file and server_key unless insecure); NULL with a
 * reason in why on failure. */
th_qc *th_qc_new(const char *endpoint, const char *key_file, const char *server_key, int insecure,
                 char *why, size_t why_cap);
void th_qc_destroy(th_qc **q);
/* The last error's text. */
const char *th_qc_error(const th_qc *q);
/* As th_store_level / th_store_missing / th_store_get_node, over the socket.
 * The th_unit passed to cb has code, name, depth (and for missing: parent,
 * kind, contacts); it is valid during the call only.  th_qc_node also
 * returns the unit's name (malloc'd) in *name when name is not NULL. */
/* The appendix version in force for a period at the collector (query "definition"). */
int th_qc_definition(th_qc *q, const char *appendix, const char *period, uint32_t *version);
int th_qc_level(th_qc *q, const th_def *d, const char *appendix, const char *period, uint32_t level,
                const char *parent, th_node_cb cb, void *ctx);
int th_qc_missing(th_qc *q, const char *appendix, const char *period, const char *unit,
                  th_node_cb cb, void *ctx);
int th_qc_node(th_qc *q, const th_def *d, const char *appendix, const char *period,
               const char *unit, th_node *out, char **name);

/* One hierarchy version as `tonghop units --versions` lists it, from the
 * store or from the collector's `hierarchies` answer (collector/QUERY.md). */
typedef struct th_hier_row {
	char version[65];
	int32_t effective;           /* yyyymmdd */
	uint64_t units;
	uint32_t levels;
	char root[TH_CODE_MAX + 1];
	char origin[512];            /* "" when the store has no record */
	int64_t loaded;              /* unix µs the store first took it; 0 = unknown */
	char **periods;              /* periods bound to it, in period order (malloc'd) */
	size_t n_periods;
} th_hier_row;
void th_hier_row_free(th_hier_row *r);
typedef int (*th_hier_row_cb)(void *ctx, const th_hier_row *r);
/* Every hierarchy version the collector has, in version-id order; cb's row is
 * valid during the call. */
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

#endif

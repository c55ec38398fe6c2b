/* query.h -- the query socket's answers (collector/QUERY.md; the messages are
 * encoded by schema/th_wire_query.c).  Every answer reads the store through its
 * read functions, so a query is answered while the committer writes. */
#ifndef TH_QUERY_H
#define TH_QUERY_H

#include <stddef.h>
#include <stdint.h>
#include "keys.h"
#include "metrics.h"
#include "th_store.h"
#include "th_wire.h"

/* An admin's new hierarchy version, sent over the query socket (units_submit);
 * decided by the collector's main module. */
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

/* What a query is answered from. */
typedef struct th_query_env {
	th_store *store;
	const th_defset *defs;             /* the definitions the store was given */
	const th_stats *stats;
	const th_key *key;                 /* the asking key; NULL when unknown (revoked) */
	th_units_submit_fn units_submit;   /* NULL: units_submit refused */
	void *units_ctx;
} th_query_env;

/* Answers one query frame: *out (malloc'd) is the result frame, always (a
 * malformed query gets a refusal).  TH_ENOMEM when no answer could be encoded. */
int th_query_answer(const th_query_env *env, const uint8_t *buf, size_t len, uint8_t **out,
                    size_t *outlen);

/* The node map of n (unit u of hierarchy version, may be NULL: code and level from
 * n, name "") for appendix and period under definition d: what both the query
 * socket and the rollup stream send. */
th_wire_node th_query_wire_node(const th_node *n, const th_unit *u, const th_def *d,
                                const char *appendix, const char *period);

#endif

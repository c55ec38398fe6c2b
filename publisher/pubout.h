/* pubout.h -- what tonghop-publish tells its operator: the one output module
 * of the commands.  The other modules of publisher/ never print; they hand
 * their messages to hooks, and the commands route those here.
 *
 * Messages go to stderr as "LEVEL publish: text" with LEVEL error, warning or
 * info (the levels of common/th_log.h; not th_log's own lines, whose
 * timestamps and upper-case levels would change what operators and scripts
 * read); results of deliveries go to stdout, one line each. */
#ifndef TH_PUBOUT_H
#define TH_PUBOUT_H

#include <stdint.h>
#include <stdio.h>

#include "th_error.h"
#include "th_log.h"
#include "th_wire.h"

/* Whether the agent's TH_LOG_INFO lines are shown (--verbose); the commands'
 * own info lines always are. */
void th_pubout_set_verbose(int verbose);

/* One line on stderr: "error publish: ...", "warning publish: ...",
 * "info publish: ..." for TH_LOG_ERROR, TH_LOG_WARN, TH_LOG_INFO. */
void th_pubout_say(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Every entry of d as "file:line: column: message", one a line (d may be NULL). */
void th_pubout_diag(FILE *f, th_diag *d);

/* A th_agent_hooks.log: the agent's line, its info lines only when verbose. */
void th_pubout_agent_log(void *ctx, int level, const char *msg);
/* A th_drop_hooks.log and .problems: every line; the problems of a file. */
void th_pubout_log(void *ctx, int level, const char *msg);
void th_pubout_problems(void *ctx, th_diag *d);

/* The receipt of one result on stdout: "[file: ]UNIT APPENDIX PERIOD rev N:
 * accepted (store UUID, commit C)", duplicate, stale, retry later or the
 * rejection with its row, column and reason code; then its warnings. */
void th_pubout_result(const th_ack *a, const th_ack_result *r, const char *file);

/* The store UUID as 8-4-4-4-12 lower-case hex. */
void th_pubout_uuid(const uint8_t u[TH_STORE_UUID_LEN], char out[37]);
/* Unix µs as "YYYY-MM-DDTHH:MM:SSZ" (UTC), 0 as "never". */
void th_pubout_time(int64_t us, char out[32]);

#endif

/* drop.h -- the drop folder's workflow (OUTBOX.md "The drop folder"): every
 * access of `run --drop DIR` to the files in DIR, DIR/.work and DIR/.done.
 *
 * A complete file (th_watch_ready) is taken out of the folder into
 * DIR/.work/NAME, read and validated; the valid files of one scan are queued
 * in one durable transaction (up to TH_DROP_BATCH per transaction) and moved to
 * DIR/.done/NAME.  An invalid file goes back to DIR/NAME with the sidecar
 * DIR/NAME.errors.txt listing every problem, and holds back nothing; it is
 * kept as DIR/.done/NAME.invalid when a newer file took its name meanwhile.
 * With keep, files stay where they are.  A file left in DIR/.work by an agent
 * killed while handling it goes back to DIR/NAME at start (th_drop_recover),
 * or to DIR/.done/NAME.interrupted when a newer file has the name.
 *
 * The module never prints: what happens to each file is told through the
 * hooks.  It is used by one thread.
 */
#ifndef TH_DROP_H
#define TH_DROP_H

#include <signal.h>
#include <stddef.h>

#include "outbox.h"
#include "th_def.h"
#include "th_error.h"
#include "watch.h"

/* At most this many files of a scan share one transaction (bounds the memory
 * of a mass drop; still one fsync per this many files). */
#define TH_DROP_BATCH 256

typedef struct th_drop_opts {
	const char *dir;                     /* the drop folder */
	const char *outbox;                  /* the outbox's path, for messages (may be NULL) */
	int keep;                            /* 1: processed files stay in place */
	int force;                           /* 1: queue superseded content (send --force) */
	const volatile sig_atomic_t *stop;   /* may be NULL; when set, a scan stops between files */
} th_drop_opts;

typedef struct th_drop_hooks {
	void *ctx;
	/* one line for the operator: level TH_LOG_ERROR / TH_LOG_WARN / TH_LOG_INFO
	 * (common/th_log.h); msg is valid during the call */
	void (*log)(void *ctx, int level, const char *msg);
	/* the problems of an invalid file, or the warnings of a valid one, as
	 * DIR/NAME:line: column: message entries */
	void (*problems)(void *ctx, th_diag *d);
} th_drop_hooks;

typedef struct th_drop th_drop;

/* The workflow on o->dir (which must exist; .work and .done are made when first
 * needed).  The hooks may be NULL.  *out only on success: 0, TH_EINVAL,
 * TH_ENOMEM. */
int th_drop_new(const th_drop_opts *o, const th_drop_hooks *h, th_drop **out);
void th_drop_destroy(th_drop **d);

/* Puts back the files an interrupted agent left in DIR/.work (nothing with
 * keep).  Call before the watch opens, so that they count as present. */
void th_drop_recover(th_drop *d);

/* Handles the complete files names[0..n) of one scan: each read and
 * validated on its own, the valid ones queued into ob in transactions of up
 * to TH_DROP_BATCH files, then moved to DIR/.done.  w learns the files it must
 * not return again until they change (invalid ones, and every one with keep).
 * A file that cannot be queued (the outbox cannot be written) goes back to
 * DIR/NAME and is read again at a later scan.  Returns how many files were
 * handed to the outbox (0: nothing new to deliver). */
size_t th_drop_process(th_drop *d, th_outbox *ob, th_watch *w, const th_defset *defs,
                       char **names, size_t n);

#endif

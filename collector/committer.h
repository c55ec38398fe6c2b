/* committer.h -- the collector's one writer: a thread that runs jobs against the
 * store, in the manner of Redis bio.c.  The network thread hands a job over (a
 * group of checked submissions, a hierarchy version, a deadline) and takes it back
 * finished, with its results and, for a group, the nodes it changed.  Between the
 * two the job and everything it points to are the committer's: the network thread
 * does not touch them, and touches the store only through its read functions
 * (store/th_store.h, "Threads").  Jobs run one at a time, in the order handed over,
 * and come back in that order.
 *
 * Test hook: when the environment variable TH_TEST_COMMIT_HOLD names a FIFO as the
 * committer starts, every group is held after it is written and before it commits
 * (th_store_set_commit_hook) until a byte can be read from the FIFO: opening it
 * blocks until a test opens it for writing, which tells the test that a commit is
 * held. */
#ifndef TH_COMMITTER_H
#define TH_COMMITTER_H

#include <stddef.h>
#include <stdint.h>
#include "th_store.h"

typedef enum {
	TH_JOB_APPLY = 1,        /* th_store_apply of subs */
	TH_JOB_HIERARCHY,        /* th_store_add_hierarchy_from of units, origin */
	TH_JOB_DEADLINE          /* th_store_set_deadline */
} th_job_type;

typedef struct th_job {
	th_job_type type;
	/* TH_JOB_APPLY: the group (each result is written) and what came of it */
	th_submission *subs;
	size_t n;
	uint64_t commit;         /* commit id when rc is 0 */
	int64_t commit_time;     /* unix µs */
	int64_t duration_us;     /* the apply, fsync included */
	th_changed_node *changed;    /* malloc'd, the taker's to free */
	size_t n_changed;
	/* TH_JOB_HIERARCHY */
	const th_units *units;
	const char *origin;
	/* TH_JOB_DEADLINE */
	const char *appendix, *period, *unit;   /* unit NULL: the default */
	int32_t deadline;
	/* every job */
	int rc;                  /* the store function's code */
	void *owner;             /* the caller's, left alone */
	struct th_job *next;     /* the committer's */
} th_job;

typedef struct th_committer th_committer;

/* Starts the committer thread on s (which must outlive it).  0, TH_ENOMEM, or
 * TH_EIO (no thread, no eventfd, or a TH_TEST_COMMIT_HOLD that cannot be used). */
int th_committer_new(th_store *s, th_committer **out);
/* Runs the jobs handed over and not run yet, stops the thread, frees; jobs not
 * taken back are the caller's (its memory, its results unread).  NULL-safe. */
void th_committer_destroy(th_committer **c);

/* Hands job over; it comes back through th_committer_take. */
void th_committer_push(th_committer *c, th_job *job);
/* The oldest finished job not taken back yet, or NULL. */
th_job *th_committer_take(th_committer *c);
/* Readable (poll) while a finished job waits to be taken. */
int th_committer_fd(const th_committer *c);
/* Jobs handed over and not taken back yet. */
size_t th_committer_pending(th_committer *c);
/* Hands job over and waits until it is done (behind the jobs handed over before);
 * returns job->rc.  Other jobs finished meanwhile stay for th_committer_take. */
int th_committer_run(th_committer *c, th_job *job);

#endif

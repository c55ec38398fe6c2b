/* outbox.h -- the agent's durable outbox (LMDB), layout in publisher/OUTBOX.md.
 *
 * A report gets its rev and is written to the pending table in one durable
 * write transaction before it is ever sent; it leaves the pending table only
 * on an ack: accepted / duplicate / stale move it to the acked table (the
 * latest acknowledged revision of each key, with its full report and the
 * collector's receipt), rejected moves it to the rejected table with the
 * reason, retry_later keeps it pending with the reason.
 *
 * The environment is durable (no MDB_NOSYNC) and never MDB_WRITEMAP; several
 * processes may open it at once (LMDB serialises the writers).  One handle
 * per process and outbox (LMDB's rule); a handle is used by one thread at a
 * time.  Every function returns 0 or a TH_E*; LMDB's codes are translated
 * (common/th_lmdb.h).
 */
#ifndef TH_OUTBOX_H
#define TH_OUTBOX_H

#include <stdint.h>
#include <stddef.h>
#include "th_error.h"
#include "th_def.h"
#include "th_report.h"
#include "th_wire.h"

#define TH_OUTBOX_FORMAT 2   /* format 1 outboxes are upgraded in place at open */

typedef struct th_outbox th_outbox;

typedef enum {
	TH_OB_PENDING = 0,
	TH_OB_ACCEPTED,
	TH_OB_DUPLICATE,
	TH_OB_STALE,
	TH_OB_REJECTED
} th_ob_state;
const char *th_ob_state_name(th_ob_state s);

typedef enum { TH_OB_TPENDING = 0, TH_OB_TACKED, TH_OB_TREJECTED } th_ob_table;

/* One outbox entry.  Strings are malloc'd and owned by the entry. */
typedef struct th_ob_entry {
	char *unit, *appendix, *period;
	uint64_t rev;
	uint32_t version;
	uint8_t hash[TH_HASH_LEN];
	int64_t created;            /* unix µs when it was stamped */
	char *file;                 /* the file it was read from ("" when none) */
	th_ob_state state;
	uint32_t attempts;          /* sends so far */
	int code;                   /* TH_E* of the last answer (retry / reject) */
	char *message;              /* the collector's (or the agent's) reason, "" when none */
	long row;                   /* offending row, 0 = none */
	char *column;               /* offending column, "" = none */
	uint64_t stored_rev;        /* the collector's rev for the key after the ack */
	uint8_t store[TH_STORE_UUID_LEN];
	uint64_t commit;
	int64_t commit_time;        /* unix µs, the collector's */
	int64_t updated;            /* unix µs of the last change here */
	uint8_t resend;             /* 1: queued again after a store change */
	th_report *report;          /* only when asked for: th_outbox_list / th_outbox_get_pending
	                             * with the definitions, the entry's among them */
} th_ob_entry;
void th_ob_entry_free(th_ob_entry *e);

/* Opens (creating dir and the environment when absent) the outbox; checks
 * the format version.  TH_ESTORE when dir holds another format version, an
 * LMDB environment that is not an outbox, or a damaged file; TH_EIO when it
 * cannot be created or opened.  *why (may be NULL) gets a static sentence
 * naming the problem and the fix.  *out only on success. */
int th_outbox_open(const char *dir, th_outbox **out, const char **why);
void th_outbox_close(th_outbox **ob);

/* What th_outbox_enqueue did. */
typedef enum {
	TH_OB_NEW = 0,          /* stamped rev and stored in pending */
	TH_OB_SAME_PENDING,     /* identical content already pending (rev = that one) */
	TH_OB_SAME_DELIVERED,   /* identical content is the latest acknowledged revision */
	TH_OB_OLD_CONTENT,      /* content delivered before and superseded since (not sent) */
	TH_OB_SAME_STALE        /* content already answered stale (final; not sent) */
} th_ob_outcome;

typedef struct th_ob_enqueued {
	th_ob_outcome outcome;
	uint64_t rev;               /* the rev that carries this content */
	th_ob_state state;          /* its state */
	uint64_t latest_rev;        /* OLD_CONTENT: the rev that superseded it */
	int64_t when;               /* when that rev was stamped (µs) */
} th_ob_enqueued;

/* Stamps r (validated against def; its rev is ignored) with rev = max(last
 * rev known for the key + 1, now_us) and stores it in pending -- its canonical
 * form (th_canon.h) with the file's row order -- all in one durable
 * transaction, unless the same content (hash: th_canon_hash(r, def)) is
 * already pending, is the latest acknowledged revision, was answered stale,
 * or was delivered before and superseded (history) -- then nothing is
 * written; force skips the history checks (not the pending / latest ones).
 * file may be NULL.  TH_EINVAL / TH_ERANGE when r does not fit def. */
int th_outbox_enqueue(th_outbox *ob, const th_report *r, const th_def *def,
                      const uint8_t hash[TH_HASH_LEN], const char *file, int force, int64_t now_us,
                      th_ob_enqueued *res);

/* One report of th_outbox_enqueue_many: r, its definition, hash and file (may
 * be NULL) in, rc and res out. */
typedef struct th_ob_item {
	const th_report *r;
	const th_def *def;
	const uint8_t *hash;        /* TH_HASH_LEN bytes */
	const char *file;
	int rc;                     /* 0, or TH_E* for this report (nothing of it written) */
	th_ob_enqueued res;         /* when rc == 0 */
} th_ob_item;

/* th_outbox_enqueue for every item in ONE durable transaction (one fsync):
 * the same rules and results as n calls in that order (a later item sees
 * the earlier ones: two files of one key get increasing revs), all stamped
 * with now_us.  An item whose key is unusable fails alone (items[i].rc).
 * When the shared transaction cannot be written, each item is tried in a
 * transaction of its own, so one that cannot be written does not hold
 * back the others.  Returns 0 when every item has its answer in rc, or a
 * TH_E* when nothing could be written at all (then each rc says why). */
int th_outbox_enqueue_many(th_outbox *ob, th_ob_item *items, size_t n, int force,
                           int64_t now_us);

/* Calls cb for each entry of a table in key order (pending: key then rev).
 * The entry is valid during the call only.  With defs (may be NULL) the
 * report of an entry whose (appendix, version) is in defs is decoded into
 * e->report; an entry that does not decode is skipped.  A non-zero cb return
 * stops and is returned. */
typedef int (*th_ob_cb)(void *ctx, const th_ob_entry *e);
int th_outbox_list(th_outbox *ob, th_ob_table t, const th_defset *defs, th_ob_cb cb, void *ctx);
/* One pending entry (*out filled; release with th_ob_entry_free), its report
 * decoded when defs (may be NULL) has its definition (else out->report is
 * NULL: the agent waits for a welcome to bring it).  TH_ENOTFOUND when it is no
 * longer pending. */
int th_outbox_get_pending(th_outbox *ob, const char *unit, const char *appendix,
                          const char *period, uint64_t rev, const th_defset *defs,
                          th_ob_entry *out);
size_t th_outbox_count(th_outbox *ob, th_ob_table t);

/* Applies every result of an ack in one transaction.  For each result,
 * outcome[i] (array of a->n_results, may be NULL) gets 1 when it changed a
 * pending entry, 0 when it answered nothing pending (a repeated ack). */
int th_outbox_apply_ack(th_outbox *ob, const th_ack *a, int64_t now_us, int *outcome);
/* Counts one more send of the entries (attempts). */
int th_outbox_note_sent(th_outbox *ob, th_ob_entry *const *e, size_t n);
/* Moves a pending entry to rejected with a reason decided by the agent
 * (e.g. its definition is no longer in force, too big for the limits). */
int th_outbox_reject_pending(th_outbox *ob, const char *unit, const char *appendix,
                             const char *period, uint64_t rev, int code, const char *message);

/* Raises the last known rev of each key to the collector's (welcome). */
int th_outbox_learn_revs(th_outbox *ob, const th_rev_entry *revs, size_t n);
/* Caches the definition texts of a welcome (parsed: id and version) and
 * records them as the set in force. */
int th_outbox_set_defs(th_outbox *ob, char *const *texts, size_t n);
/* A defset of the cached definitions: in force only, or every cached one.
 * TH_ENOTFOUND when nothing is cached. */
int th_outbox_load_defs(th_outbox *ob, int in_force_only, th_defset **out);

/* When a store uuid was recorded at an ack and differs from store, queues
 * the latest acknowledged (accepted or duplicate) revision of every key
 * again (same rev, same content) and returns their number in *n; the new
 * uuid is recorded when they are acknowledged. */
int th_outbox_store_seen(th_outbox *ob, const uint8_t store[TH_STORE_UUID_LEN], size_t *n);

/* Queues again the latest acknowledged revision of every key whose rev the
 * collector's welcome (revs: every key in the agent's scope) shows lower or
 * absent: a store restored from a backup keeps its uuid but lost the later
 * acknowledged revisions.  *n gets their number. */
int th_outbox_requeue_behind(th_outbox *ob, const th_rev_entry *revs, size_t nrevs, size_t *n);

/* Retention (OUTBOX.md "Retention").  What the agent needs is never
 * pruned: pending, acked (the latest acknowledged revision of every key,
 * with its report) and rejected stay as they are.  What grows with every
 * revision is the history (one entry per content ever stamped, used to
 * refuse superseded content); an entry goes when ALL hold: it was stamped
 * more than `days` days ago, it is not among the `revs` most recent
 * contents of its key, and its rev is not the key's acknowledged, a
 * pending or a rejected rev. */
typedef struct th_ob_prune_stats {
	size_t scanned;             /* history entries looked at */
	size_t keys;                /* report keys looked at */
	size_t pruned;              /* history entries deleted */
	size_t txns;                /* transactions committed */
} th_ob_prune_stats;

typedef struct th_ob_retention {
	int64_t days;               /* >= 0 */
	uint32_t revs;              /* 0: the count keeps nothing by itself */
	size_t batch;               /* deletions per transaction (0: 1000) */
	size_t scan;                /* entries looked at per transaction (0: 20000) */
	/* after each committed transaction (may be NULL); non-zero stops */
	int (*progress)(void *ctx, const th_ob_prune_stats *st);
	void *ctx;
} th_ob_retention;

#define TH_OB_HISTORY_DAYS 400
#define TH_OB_HISTORY_REVS 10

/* Prunes the history in bounded transactions (each commits durably; a kill
 * between or inside them leaves a consistent outbox, and the next pass
 * starts over).  *stats (may be NULL) says what was done. */
int th_outbox_prune(th_outbox *ob, const th_ob_retention *rt, int64_t now_us,
                    th_ob_prune_stats *stats);
/* Entries of the history table. */
size_t th_outbox_history_count(th_outbox *ob);

/* The history record of one content of a key: the rev that carried it, its
 * last state and when it was stamped.  TH_ENOTFOUND when the content was
 * never stamped (or its record was pruned); *out only on success. */
typedef struct th_ob_hist {
	uint64_t rev;
	th_ob_state state;
	int64_t created;            /* unix µs */
} th_ob_hist;
int th_outbox_history_get(th_outbox *ob, const char *unit, const char *appendix,
                          const char *period, const uint8_t hash[TH_HASH_LEN], th_ob_hist *out);

/* Contact bookkeeping for `status`. */
typedef struct th_ob_meta {
	int has_store;
	uint8_t store[TH_STORE_UUID_LEN];
	int64_t last_contact;       /* unix µs of the last message from the collector, 0 = never */
	char last_error[256];       /* the last connection problem, "" = none */
	char collector[256];        /* endpoint of the last contact */
} th_ob_meta;
int th_outbox_meta(th_outbox *ob, th_ob_meta *out);
/* Records the endpoint (NULL: unchanged), the time of the last message from
 * the collector (0: unchanged) and the last connection problem (NULL:
 * unchanged, "": none). */
int th_outbox_set_contact(th_outbox *ob, const char *collector, int64_t when, const char *error);

/* The environment's size: the map, the bytes in use, the id of the last
 * committed transaction (each write transaction adds one; a call that
 * writes nothing adds none). */
typedef struct th_ob_info {
	size_t map_size;
	size_t used_bytes;
	uint64_t last_txn;
} th_ob_info;
int th_outbox_info(th_outbox *ob, th_ob_info *out);

#endif

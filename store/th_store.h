/* th_store.h -- the LMDB store: reports, history, rollups, hierarchy versions,
 * period bindings, completeness (DESIGN sections 4-7).  The on-disk layout is
 * written down in store/STORAGE.md.
 *
 * Writes and reads.  The write functions are th_store_apply,
 * th_store_add_hierarchy(_from), th_store_set_deadline and th_store_rebuild;
 * th_store_open may write too (a new store, a format upgrade).  Every other
 * function reads and never writes: a read of a period no report has bound
 * answers from the version that would be chosen, without binding it; only
 * th_store_apply binds, at a period's first accepted report.
 *
 * Threads.  One thread at a time writes (the collector's committer).  Any
 * number of other threads may read at the same time, each read in an LMDB read
 * transaction of its own (a snapshot: a read during a commit sees the store as
 * it was before the commit, and does not wait for it).  th_store_set_defs and
 * th_store_set_in_force are configuration: call them before other threads use
 * the handle.  th_store_open and th_store_close have the handle to themselves.
 * A thread holds one read at a time: a callback (th_node_cb, th_hier_cb...) must
 * not call this handle's functions.  Pointers the store returns (th_units, the
 * definitions) stay valid until th_store_close.
 *
 * Processes.  Any number of other processes may read (tools open the store
 * with readonly); LMDB forbids one process opening one environment twice.
 */
#ifndef TH_STORE_H
#define TH_STORE_H

#include <stdint.h>
#include <stddef.h>
#include "th_error.h"
#include "th_def.h"
#include "th_report.h"
#include "th_units.h"

typedef struct th_store th_store;

typedef struct th_store_opts {
	int readonly;            /* open for reading only (tools) */
	size_t map_size;         /* initial map size in bytes, 0 = default (64 MiB); grown on MAP_FULL */
	size_t max_map_size;     /* growth stops here (0 = 1 TiB): beyond it, TH_ENOSPC */
} th_store_opts;

/* Opens (creating when absent and not readonly) the store in directory dir.
 * Checks the format version; runs mdb_reader_check.  *out only on success. */
int th_store_open(const char *dir, const th_store_opts *opts, th_store **out);
/* Same, and on failure writes a one-line explanation naming the directory
 * and the fix (e.g. a format version mismatch: found vs expected) to why
 * (cap bytes, may be NULL). (added) */
int th_store_open_why(const char *dir, const th_store_opts *opts, th_store **out, char *why,
                      size_t cap);
void th_store_close(th_store **s);
const uint8_t *th_store_uuid(const th_store *s);       /* 16 bytes */
uint64_t th_store_last_commit(const th_store *s);
/* A test hook: fn(ctx) is called by th_store_apply on the writer's thread once a
 * group is written in its transaction, just before the commit (readers still see
 * the store without it).  NULL removes it.  For tests and instrumentation. */
typedef void (*th_store_commit_hook)(void *ctx);
void th_store_set_commit_hook(th_store *s, th_store_commit_hook fn, void *ctx);

/* Configuration.  The store keeps a pointer to defs (caller keeps it alive).
 * Hierarchy versions are stored in the store (so periods bound to an old
 * version keep it after the file changes); adding a version whose id exists
 * with different text is TH_EEXIST.  A period is bound, at its first accepted report,
 * to the version whose effective date is the latest not after the period's
 * start ("2021" starts 2021-01-01, "2021-Q3" 2021-07-01, "2021-H2" 2021-07-01,
 * "2021-06" 2021-06-01); when no version is effective yet, to the earliest
 * one (hanoi-2021, effective 2021-02-01, serves "2021").  Adding a version
 * never rebinds a period; a period reads as the version that would be chosen
 * until it is bound. */
int th_store_set_defs(th_store *s, const th_defset *defs);
/* Configures the appendix version in force for (appendix, period), or for
 * every period of the appendix when period is NULL (a period-specific entry
 * wins).  Unconfigured: th_defset_latest.  Reports of another version get
 * retry_later / TH_EDEFCHANGED; reads and rollups use the version in force.
 * Kept in memory (the collector sets it from its config at start). (added) */
int th_store_set_in_force(th_store *s, const char *appendix, const char *period,
                          uint32_t version);
int th_store_add_hierarchy(th_store *s, const th_units *u);
/* Same, and records where the version came from (origin: free text such as
 * "file /etc/tonghop/hanoi-2021.units", at most TH_ORIGIN_MAX - 1 bytes kept;
 * NULL = nothing) and the time it was stored, in the same transaction.  A
 * version that exists already with the same text keeps its first record. (added) */
#define TH_ORIGIN_MAX 512
int th_store_add_hierarchy_from(th_store *s, const th_units *u, const char *origin);
/* Where version came from and when it was stored (unix µs), as recorded by
 * th_store_add_hierarchy_from; TH_ENOTFOUND when nothing was recorded (a
 * version stored by an older collector).  origin (cap bytes) may be NULL. (added) */
int th_store_hierarchy_origin(th_store *s, const char *version, int64_t *loaded_at, char *origin,
                              size_t cap);
/* The hierarchy a period is bound to, or, for a period not bound yet, the
 * version that would be chosen (it is not bound by this read: only an accepted
 * report binds).  Pointer owned by the store, valid until close. */
int th_store_hierarchy_for(th_store *s, const char *period, const th_units **out);
/* The appendix definition in force for a period: configured (th_store_set_in_force), else
 * the version the period's first accepted report was made with (kept in the store, so a
 * newer version loaded later does not change the period), else the latest loaded. NULL
 * when that version is not loaded.  period NULL: the version in force for a period neither
 * configured nor bound (NULL only for an appendix the definitions do not have). */
const th_def *th_store_def_for(th_store *s, const char *appendix, const char *period);
/* The newest hierarchy version (by effective date). NULL when none. */
const th_units *th_store_current_hierarchy(th_store *s);

/* Deadlines for completeness: per appendix and period, overridable per unit.
 * yyyymmdd; a report committed on or before the deadline date (collector's
 * local date) is on time.  Decided once per key, at its first accepted
 * revision; no deadline configured = on time. TH_EINVAL when read-only. */
int th_store_set_deadline(th_store *s, const char *appendix, const char *period,
                          const char *unit /* NULL = default */, int32_t deadline);

/* Every stored hierarchy version (in version-id order), and every period
 * binding (in period order). cb returning non-zero stops and is returned. (added) */
typedef int (*th_hier_cb)(void *ctx, const th_units *u);
int th_store_hierarchies(th_store *s, th_hier_cb cb, void *ctx);
typedef int (*th_binding_cb)(void *ctx, const char *period, const char *version);
int th_store_bindings(th_store *s, th_binding_cb cb, void *ctx);

/* --- ingest ---------------------------------------------------------------- */
/* What became of one submission (DESIGN sections 4-5). */
typedef enum th_store_status {
	TH_STORE_ACCEPTED = 0,     /* stored (a new revision) */
	TH_STORE_DUPLICATE,        /* the same rev with the same content is stored: nothing changed */
	TH_STORE_STALE,            /* a higher rev is stored: nothing changed; final */
	TH_STORE_RETRY,            /* not stored now (store full, definition changed...): send again */
	TH_STORE_REJECTED          /* not stored, and never will be as it is; final */
} th_store_status;

#define TH_STORE_MSG_MAX 320
typedef struct th_store_result {
	th_store_status status;
	int code;                  /* TH_E* reason: 0 when accepted or duplicate */
	uint64_t stored_rev;       /* the key's rev after the whole group, 0 when none */
	char message[TH_STORE_MSG_MAX];      /* for people, "" when none */
} th_store_result;

/* A report checked before it reaches the store: every rule a report must pass
 * (validation against the definition in force, its unit in the period's
 * hierarchy, scope, submitters...) is the caller's, written once where reports
 * enter (the collector's ingest module, collector/ingest.h).  The store trusts
 * what it is handed and does not check the report again.  Its own defence: a
 * submission without def, hier and canon, or whose report does not match
 * def, is refused (TH_EINVAL, nothing stored); a def or hier that is no longer
 * the one of the period (a binding or a version came in between) is answered
 * retry_later, never applied under another version. */
typedef struct th_submission {
	const th_report *report;   /* validated against def; not taken, not changed */
	const char *sender;        /* who sent it (key comment or unit), recorded in history */
	const th_def *def;         /* th_store_def_for(appendix, period) it was validated against */
	const th_units *hier;      /* th_store_hierarchy_for(period) its unit was found in */
	const uint8_t *canon;      /* th_canon_encode(report, def): stored as the record; not owned */
	size_t canon_len;
	uint8_t hash[TH_HASH_LEN]; /* the hash of canon */
	th_store_result result;    /* written by th_store_apply, whatever was there before */
} th_submission;

/* A node whose rollup changed in the last apply, for publishing. */
typedef struct th_changed_node {
	char unit[TH_CODE_MAX + 1], appendix[TH_CODE_MAX + 1], period[TH_PERIOD_MAX + 1];
	uint32_t level;
	uint64_t node_version;
} th_changed_node;

/* Applies a group of checked submissions in one write transaction and commits
 * durably: dedup/revision rules of DESIGN section 4 (revisions of one key
 * applied in rev order), history, rollups by exact delta, completeness.
 * Writes each submission's result.  On MDB_MAP_FULL aborts, grows the map and
 * replays.  Returns 0 when committed (*commit_id set), TH_ENOSPC when the map
 * cannot grow (every result then retry_later), or another TH_E*.  The changed
 * nodes are appended to *changed (malloc'd array, *n_changed).
 * Details: every result's stored_rev is the key's rev after the whole group
 * (0 when none); a sum that would overflow rejects its report (TH_EOVERFLOW)
 * and writes nothing of it; an empty group (n == 0) commits nothing and
 * returns the last commit id; a group that changes nothing (all duplicates)
 * still commits (new commit id, no changed nodes); on MDB_PANIC the
 * environment is reopened and the group replayed once.  TH_EINVAL on a
 * read-only store.  changed may be NULL. */
int th_store_apply(th_store *s, th_submission *subs, size_t n, uint64_t *commit_id,
                   int64_t *commit_time, th_changed_node **changed, size_t *n_changed);

/* --- reads ----------------------------------------------------------------- */
typedef struct th_node {
	char unit[TH_CODE_MAX + 1];
	uint32_t level;
	int64_t *own;              /* d->n_slots; malloc'd, released by th_node_free */
	int64_t *total;
	uint32_t expected, reported, on_time, late, corrections;
	uint64_t version;          /* bumps on every change of this node */
	uint64_t commit;           /* commit id of the last change */
} th_node;
void th_node_free(th_node *n);

/* The rollup node (zero vectors when nothing was reported). */
int th_store_get_node(th_store *s, const char *appendix, const char *period,
                      const char *unit, th_node *out);
/* Calls cb for every unit at depth `level` (or every child of `parent` when
 * parent != NULL) in hierarchy order. */
typedef int (*th_node_cb)(void *ctx, const th_unit *u, const th_node *n);
int th_store_level(th_store *s, const char *appendix, const char *period, uint32_t level,
                   const char *parent, th_node_cb cb, void *ctx);
/* Units expected to submit appendix for period in unit's subtree that have
 * no live report; cb with each (node fields zero). */
int th_store_missing(th_store *s, const char *appendix, const char *period, const char *unit,
                     th_node_cb cb, void *ctx);

typedef struct th_revision_info {
	uint64_t rev;
	int64_t commit_time;       /* unix microseconds */
	uint64_t commit;
	char sender[128];
	uint8_t hash[TH_HASH_LEN];
	int tombstone;
} th_revision_info;
/* The rev of a key's latest record (*rev), TH_ENOTFOUND when it has none. */
int th_store_rev(th_store *s, const char *unit, const char *appendix, const char *period,
                 uint64_t *rev);
/* The current report of a key (*out malloc'd) and its info. */
int th_store_get_report(th_store *s, const char *unit, const char *appendix, const char *period,
                        th_report **out, th_revision_info *info);
/* Every stored revision of a key, oldest first. */
typedef int (*th_revision_cb)(void *ctx, const th_revision_info *info, const th_report *r);
int th_store_history(th_store *s, const char *unit, const char *appendix, const char *period,
                     th_revision_cb cb, void *ctx);
/* Highest stored rev of every report key whose unit is in unit's subtree. */
typedef int (*th_rev_cb)(void *ctx, const char *unit, const char *appendix, const char *period,
                         uint64_t rev);
int th_store_revs_in_scope(th_store *s, const char *unit, th_rev_cb cb, void *ctx);

/* Recomputes every rollup from the latest revisions, in one transaction. */
int th_store_rebuild(th_store *s);
/* Recomputes into memory and compares with the stored rollups bit for bit,
 * and validates every stored report against its definition; problems to
 * diag.  0 when consistent. */
int th_store_verify(th_store *s, th_diag *diag);

typedef struct th_store_stats {
	uint64_t reports, revisions, commits;
	size_t map_size, used_bytes;
} th_store_stats;
int th_store_stats_get(th_store *s, th_store_stats *out);

#endif

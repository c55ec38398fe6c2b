/* th_view.h -- the tables tonghop shows, built from a source (th_source.h)
 * into the table model (th_table.h), ready for any renderer (th_render.h).
 * A web front end links the same library to serve the same tables.
 *
 * Views read only: they never write to the terminal, never exit, and take
 * their questions as plain structs.  Each returns 0 and a document, or a
 * TH_E* code; every problem (and every warning, such as a definition version
 * the collector uses but the local definitions lack) is added to diag with
 * a sentence naming the thing and the fix.  TH_EINVAL means the question
 * itself is wrong (an unknown column, a level the hierarchy does not have):
 * a usage error for a command line.
 */
#ifndef TH_VIEW_H
#define TH_VIEW_H

#include <stdio.h>
#include "th_source.h"
#include "th_table.h"

/* --- rollup: one row per unit of a level, with its totals ------------------- */
typedef struct th_rollup_req {
	const char *appendix, *period;
	uint32_t level;            /* depth of the rows (1 = the root); ignored with parent */
	const char *parent;        /* the rows are parent's children */
	int own;                   /* the units' own figures, not their subtrees' totals */
	const char *columns;       /* comma-separated column ids, ratio ids and enum values
	                            * col:code (a count_by column gives one column per value);
	                            * NULL: the default choice */
} th_rollup_req;
/* One table: unit, name, expected, reported, then the chosen columns (sums,
 * counts, min/max, ratios of sums in percent); then the total row: the
 * parent's (or, for a level below the root, the root's) subtree total
 * ("Tổng NAME"), or with own the sum of the rows shown ("Cộng NAME").  Null
 * stays null (nobody reported the figure); a ratio with a zero denominator is
 * undefined.  Column keys are the ids (JSON), titles the definition's; the
 * aligned table heads them by id and lists the titles below.
 * Default columns: the summed columns the ratios are made of (up to 5; else
 * the first 5 summed columns; else the values of the derived status column,
 * else of the first count_by column), then every ratio. */
int th_view_rollup(th_source *src, const th_rollup_req *req, th_doc **out, th_diag *diag);

/* --- status: completeness, and who has not reported --------------------------- */
typedef struct th_status_req {
	const char *appendix, *period;
	uint32_t level;            /* depth of the rows; ignored with unit */
	const char *unit;          /* the rows are unit's children; the missing list is its subtree */
} th_status_req;
/* A document with fields appendix and period and two tables: "units"
 * (expected, reported, on time, late, missing, corrections per unit, then the
 * total row) and "missing" (every unit of the subtree expected to report that
 * has not, with its parent and contacts). */
int th_view_status(th_source *src, const th_status_req *req, th_doc **out, th_diag *diag);

/* --- a report and its history ------------------------------------------------------ */
/* One table: the report's rows, one column per definition column (keys: the
 * ids); a title line with its definition, revision, commit time and sender.
 * Marked as a record: the aligned table shows a one-row report as one line
 * per column. */
int th_view_report(th_source *src, const char *unit, const char *appendix, const char *period,
                   th_doc **out, th_diag *diag);

/* One difference between a revision and the one before it. */
typedef enum { TH_CHANGE_ADDED, TH_CHANGE_REMOVED, TH_CHANGE_CELL } th_change_kind;
typedef struct th_change {
	th_change_kind kind;
	char *row;                 /* the row key as text ("row N" for appendices without a key) */
	char *column;              /* TH_CHANGE_CELL: the column id */
	char *before, *after;      /* TH_CHANGE_CELL: machine-form values, NULL = null */
} th_change;

/* How a revision relates to the one before it. */
typedef enum {
	TH_REV_NO_REPORT,          /* the revision has no report contents */
	TH_REV_NO_DEFINITION,      /* its definition version is not loaded: not compared */
	TH_REV_FIRST,
	TH_REV_NEW_VERSION,        /* another definition version than the one before: not compared */
	TH_REV_COMPARED            /* changes[] */
} th_rev_kind;

typedef struct th_revision {
	th_revision_info info;
	char when[64];             /* commit time, local time */
	size_t n_rows;
	th_rev_kind kind;
	char appendix[TH_CODE_MAX + 1];
	uint32_t version, prev_version;
	th_change *changes;
	size_t n_changes, added, removed, changed;
} th_revision;

typedef struct th_history {
	th_revision *revs;         /* oldest first */
	size_t n;
} th_history;

/* Every revision of a report, compared with the one before it row by row
 * (by row key) and cell by cell. */
int th_view_history(th_source *src, const char *unit, const char *appendix, const char *period,
                    th_history **out, th_diag *diag);
void th_history_destroy(th_history **h);
/* Writes h for people: "History (oldest first):", one line per revision, its
 * changes indented below it. 0 or TH_EIO. */
int th_history_write(const th_history *h, FILE *f);

/* --- the hierarchy ------------------------------------------------------------------ */
/* One row per unit: code, parent, kind, level, name, contacts. */
int th_view_units(const th_units *u, th_doc **out);
/* Writes code's subtree as a tree with contact details. TH_EUNIT when the
 * hierarchy has no such unit. */
int th_view_tree(const th_units *u, const char *code, FILE *f);
/* One row per hierarchy version of the source: id, effective date, units,
 * levels, root, when and from where it was loaded, the periods bound to it. */
int th_view_versions(th_source *src, th_doc **out, th_diag *diag);

/* A time in unix µs as local "yyyy-mm-dd hh:mm:ss" in buf (cap bytes). */
void th_view_time(int64_t us, char *buf, size_t cap);

#endif

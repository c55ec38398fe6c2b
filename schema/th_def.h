/* th_def.h -- appendix definitions (templates), loaded from data files.
 *
 * One file per appendix version under schema/appendices/ (format documented
 * in schema/appendices/FORMAT.md): the appendix id (PL1, PL2, PL3), its
 * version, Vietnamese title, which unit kinds must submit it, the row key,
 * each column (id, title, type, constraints, roll-up kind), derived ratios
 * and cross-field rules, and (PL2) how the task status is derived.
 *
 * Roll-up slots: th_def_load computes, for each column, where its aggregate
 * lives in a rollup vector of int64 (see th_rollup.h):
 *   slot 0 of every vector: number of rows aggregated
 *   sum        2 slots: sum, count of non-null values
 *   count_true 2 slots: number of true values, count of non-null values
 *   count_by   n_values slots: rows per enum value (nulls are not counted)
 *   min, max   2 slots: value, count of non-null values (value meaningless
 *              while the count is 0)
 *   none       0 slots
 * then, after the columns, each ratio in order (laid out by th_def_resolve.c):
 *   ratio      3 slots: numerator sum, denominator sum, rows counted (rows
 *              where every term of num and den is non-null)
 */
#ifndef TH_DEF_H
#define TH_DEF_H

#include <stdint.h>
#include <stddef.h>
#include "th_error.h"
#include "th_value.h"

typedef enum {
	TH_ROLL_NONE = 0,
	TH_ROLL_SUM,
	TH_ROLL_COUNT_BY,
	TH_ROLL_COUNT_TRUE,
	TH_ROLL_MIN,
	TH_ROLL_MAX
} th_rollup_kind;

const char *th_rollup_name(th_rollup_kind k);

typedef struct th_enum_value {
	char *code;        /* ASCII id, e.g. "hoan_thanh_dung_han" */
	char *title;       /* Vietnamese label */
} th_enum_value;

typedef struct th_column {
	char *id;          /* ASCII snake_case, unique in the appendix */
	char *title;       /* Vietnamese title (NFC), also accepted as CSV header */
	th_type type;
	th_rollup_kind rollup;
	int scale;         /* decimal: digits after the point (0..9) */
	int has_min, has_max;
	int64_t min, max;  /* int, decimal (scaled), date (yyyymmdd) */
	uint32_t max_len;  /* text: max bytes (default 2000) */
	int required;      /* 1: null is an error */
	int key;           /* 1: part of the row key */
	th_enum_value *values; /* enum */
	size_t n_values;
	size_t slot;       /* first rollup slot */
	size_t n_slots;    /* rollup slots used */
	long line;         /* where it was defined */
} th_column;

/* A derived ratio: (sum of num terms) / (sum of den terms), computed at
 * read time from the ratio's own rollup slots, which add the terms of every
 * row where all terms of num and den are non-null.  A term is a column:
 *   integer column with rollup sum: its value     (code -1)
 *   bool column with rollup count_true: 1 if true (code -1)
 *   enum column with rollup count_by: 1 if the value is enum index code
 *                                     (code >= 0; written "col:code") */
typedef struct th_ratio {
	char *id, *title;
	size_t *num, n_num;   /* column indices */
	size_t *den, n_den;
	long *num_code;       /* per num term: enum index, or -1 (added) */
	long *den_code;       /* per den term: enum index, or -1 (added) */
	size_t slot;          /* first of the ratio's 3 rollup slots (added) */
	long line;
} th_ratio;

/* A cross-field rule: sum(left) == sum(right), checked per row when every
 * term is non-null (a row with a null term is not checked). */
typedef struct th_rule {
	char *id, *title;
	size_t *left, n_left;   /* column indices */
	size_t *right, n_right;
	long line;
} th_rule;

/* Task-status derivation (PL2).  The status column is an enum whose codes
 * are mapped to the six statuses below by the definition file. */
enum th_task_status {
	TH_TASK_DONE_ON_TIME = 0,
	TH_TASK_DONE_LATE,
	TH_TASK_IN_PROGRESS,      /* within deadline */
	TH_TASK_OVERDUE,          /* in progress past deadline */
	TH_TASK_NOT_STARTED,
	TH_TASK_NO_DEADLINE,
	TH_TASK_NSTATUS
};
typedef struct th_derive {
	size_t status_col, deadline_col, done_col;
	int code_of[TH_TASK_NSTATUS];  /* enum index of each status in status_col */
} th_derive;

typedef struct th_def {
	char *id;            /* "PL1" */
	uint32_t version;    /* 1, 2, ... */
	char *title;
	char **kinds;        /* unit kinds that must submit */
	size_t n_kinds;
	char **units;        /* submitter_units: when n_units > 0, only these unit
	                      * codes (of a kind in kinds) must submit (added) */
	size_t n_units;
	th_column *cols;
	size_t n_cols;
	size_t *key_cols;    /* indices of the row key columns, in key order */
	size_t n_key;        /* 0: single-row appendix (at most one row) */
	uint32_t max_rows;   /* rows per report (default 10000) */
	th_ratio *ratios;
	size_t n_ratios;
	th_rule *rules;
	size_t n_rules;
	th_derive *derive;   /* NULL when no status is derived */
	size_t n_slots;      /* rollup vector width (slot 0 = row count) */
	uint8_t *slot_kind;  /* n_slots entries, TH_SLOT_*; NULL for a hand-built def */
	char *file;          /* path or name it was loaded from */
	char *source;        /* the file's text, NUL-terminated (sent to agents) */
	size_t source_len;
} th_def;

/* What a rollup slot holds: a count (never negative), a sum (any sign), or
 * the value of a min/max column (merged, not added). */
enum { TH_SLOT_COUNT = 1, TH_SLOT_SUM = 2, TH_SLOT_EXTREMUM = 3 };

/* Parses a definition from text.  name is used in diagnostics ("name:line").
 * On failure every problem found is added to diag (may be NULL) and a
 * TH_E* code returned; *out is written only on success. */
int th_def_parse(const char *text, size_t len, const char *name, th_def **out, th_diag *diag);
/* Reads and parses a file. */
int th_def_load(const char *path, th_def **out, th_diag *diag);
void th_def_destroy(th_def **d);

/* Column index by id, or by Vietnamese title (case-insensitive after NFC,
 * surrounding blanks ignored); -1 when none. */
long th_def_column(const th_def *d, const char *id_or_title);
/* Enum value index of code (or title) in column c; -1 when none. */
long th_def_enum(const th_column *c, const char *code_or_title);
/* 1 when units of this kind must submit the appendix. */
int th_def_requires_kind(const th_def *d, const char *kind);
/* 1 when the unit (kind, code) is expected to submit the appendix: its kind
 * is in d->kinds and, when d->n_units > 0, its code is in d->units. (added) */
int th_def_expects(const th_def *d, const char *kind, const char *code);
/* Who is expected to submit, for messages: "department, district" (the
 * kinds) or "only SNV, STP, VP" (the submitter_units when there are any);
 * "nobody" when the definition names no submitter.  Always NUL-terminates a
 * buffer of cap > 0 bytes; a text that does not fit ends in "...". */
void th_def_submitters_text(const th_def *d, char *buf, size_t cap);

/* The default definitions directory: $TONGHOP_DEFS when set, else the
 * installed share/tonghop/appendices when it exists, else the source tree's
 * schema/appendices (a build that was not installed).  Static string. */
const char *th_def_default_dir(void);

/* A set of definitions, e.g. a directory of *.def files. */
typedef struct th_defset th_defset;
th_defset *th_defset_new(void);
void th_defset_destroy(th_defset **s);
/* Takes ownership of d. TH_EEXIST when (id, version) is present. */
int th_defset_add(th_defset *s, th_def *d);
/* Loads every *.def file of dir; problems of all files go to diag. */
int th_defset_load_dir(const char *dir, th_defset **out, th_diag *diag);
/* The definition (id, version) or NULL.  Pointer valid while s lives. */
const th_def *th_defset_get(const th_defset *s, const char *id, uint32_t version);
/* Highest version of id, or NULL. */
const th_def *th_defset_latest(const th_defset *s, const char *id);
size_t th_defset_count(const th_defset *s);
const th_def *th_defset_at(const th_defset *s, size_t i);

#endif

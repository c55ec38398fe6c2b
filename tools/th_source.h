/* th_source.h -- where the tools read the collector's figures: its store,
 * opened read-only (`--db DIR`; LMDB lets readers in other processes work
 * while the collector writes), or its query socket (`--collector EP`,
 * collector/QUERY.md).  Both give the same answers; the views (th_view.h)
 * and the commands read through this interface only.
 *
 * What each source serves:
 *                                      store   collector
 *   definition in force, unit, level,  yes     yes
 *   node, missing units, hierarchies
 *   a report and its history           yes     no (the query socket does not
 *                                              serve report contents)
 *   the hierarchy itself, statistics,  yes     no
 *   verify
 *   rebuild                            writable store only
 *   submit a hierarchy version         no      yes (admin key)
 * An operation a source does not serve returns TH_EINVAL with a sentence.
 *
 * Every failing call leaves a sentence in th_source_error() naming what
 * failed; the library writes nothing to the terminal.
 */
#ifndef TH_SOURCE_H
#define TH_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include "th_def.h"
#include "th_error.h"
#include "th_report.h"
#include "th_store.h"
#include "th_units.h"

typedef struct th_source th_source;

typedef struct th_source_opts {
	const char *db;              /* the store's directory, or NULL and: */
	const char *collector;       /* the collector's query endpoint */
	const char *key, *server_key; /* collector: this tool's keypair file, the collector's .pub */
	int insecure;                /* collector: no CURVE (a collector started with --insecure) */
	int writable;                /* store: open for writing (rebuild only) */
	const th_defset *defs;       /* appendix definitions, kept by the source (may be NULL
	                              * when only hierarchies are read) */
} th_source_opts;

/* Opens a source.  0 and *out, or a TH_E* code with a sentence in why (cap
 * bytes): "cannot open store DIR: ...", "collector EP: ...". */
int th_source_open(const th_source_opts *o, th_source **out, char *why, size_t cap);
void th_source_destroy(th_source **s);
/* The last failure's sentence ("" before any); valid until the next call. */
const char *th_source_error(const th_source *s);
/* "store DIR" or "collector EP", for messages. */
const char *th_source_name(const th_source *s);
/* 1 for the collector's query socket. */
int th_source_is_remote(const th_source *s);
/* The definitions given at open (may be NULL). */
const th_defset *th_source_defs(const th_source *s);

/* The definition a period's rollups are laid out by: the version the period
 * is bound to (a later version of the appendix may be loaded), else the
 * latest of defs.  NULL when defs has no such appendix.  A collector using a
 * version defs lacks gets a warning in diag (may be NULL). */
const th_def *th_source_def(th_source *s, const char *appendix, const char *period, th_diag *diag);

/* A unit as a period's hierarchy has it. */
typedef struct th_source_unit {
	char code[TH_CODE_MAX + 1];
	char name[512];
	uint32_t depth;              /* 1 = the root */
	uint32_t levels;             /* the hierarchy's depth; 0 when the source does not say */
} th_source_unit;
/* The unit code (NULL: the root) of the hierarchy period uses.  d and appendix
 * are what a collector is asked about.  0, TH_EUNIT, TH_ENOTFOUND (no
 * hierarchy), or the collector's error. */
int th_source_find_unit(th_source *s, const th_def *d, const char *appendix, const char *period,
                        const char *code, th_source_unit *out);

/* As th_store_level: cb for every unit at depth level, or every child of
 * parent when parent is not NULL, in hierarchy order, with its node (laid out
 * by d).  cb returning non-zero stops and is returned. */
int th_source_level(th_source *s, const th_def *d, const char *appendix, const char *period,
                    uint32_t level, const char *parent, th_node_cb cb, void *ctx);
/* The node of unit (release with th_node_free). */
int th_source_node(th_source *s, const th_def *d, const char *appendix, const char *period,
                   const char *unit, th_node *out);
/* Every unit of unit's subtree expected to submit appendix for period that
 * has no live report, with its contacts and its parent's name (NULL when the
 * source does not know it: the collector's answer has only the code). */
typedef int (*th_missing_cb)(void *ctx, const th_unit *u, const char *parent_name);
int th_source_missing(th_source *s, const char *appendix, const char *period, const char *unit,
                      th_missing_cb cb, void *ctx);

/* A unit's current report (*out malloc'd) and its revision; TH_ENOTFOUND when
 * there is none.  Every revision, oldest first (as th_store_history). */
int th_source_report(th_source *s, const char *unit, const char *appendix, const char *period,
                     th_report **out, th_revision_info *info);
int th_source_history(th_source *s, const char *unit, const char *appendix, const char *period,
                      th_revision_cb cb, void *ctx);

/* The hierarchy period is bound to (NULL: the newest version); owned by the
 * source, valid until it is destroyed. */
int th_source_hierarchy(th_source *s, const char *period, const th_units **out);

/* One hierarchy version as `tonghop units --versions` lists it. */
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
/* Every hierarchy version, in version-id order; cb's row is valid during the call. */
int th_source_hierarchies(th_source *s, th_hier_row_cb cb, void *ctx);

/* Submits a hierarchy file to the collector (th_qc_units_submit in th_client.h
 * says what comes back). */
int th_source_submit_units(th_source *s, const char *name, const char *text, size_t len,
                           th_hier_row *loaded, char *path, size_t cap,
                           void (*problem)(void *ctx, const char *line), void *ctx);

/* Store maintenance: counters; the integrity check (problems to diag, 0 when
 * consistent); recomputing every rollup (a writable store). */
int th_source_stats(th_source *s, th_store_stats *out);
int th_source_verify(th_source *s, th_diag *diag);
int th_source_rebuild(th_source *s);

#endif

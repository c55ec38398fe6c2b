/* intake.h -- what enters the outbox: an appendix file read and validated, or
 * the tombstone of a withdrawal, each with its content hash; and the
 * definitions they are validated with.  Problems go to a th_diag; nothing is
 * printed. */
#ifndef TH_INTAKE_H
#define TH_INTAKE_H

#include <stdint.h>

#include "outbox.h"
#include "th_def.h"
#include "th_report.h"

/* Reads and validates the appendix file at path against defs
 * (schema/APPENDIX-FILES.md).  On success *r (th_report_destroy) and hash.
 * Otherwise the error code, and every problem in d as FILE:LINE: column:
 * message (at least one). */
int th_intake_file(const char *path, const th_defset *defs, th_report **r,
                   uint8_t hash[TH_HASH_LEN], th_diag *d);

/* The tombstone (withdrawal: no rows) of (unit, appendix, period) for the
 * latest version of appendix in defs, validated, with its content hash.
 * TH_EAPPENDIX when defs do not know the appendix; problems in d. */
int th_intake_tombstone(const char *unit, const char *appendix, const char *period,
                        const th_defset *defs, th_report **r, uint8_t hash[TH_HASH_LEN],
                        th_diag *d);

/* The definitions to validate with: those of the directory dir (*.def) when
 * dir is not NULL (its problems in d), else those cached in the outbox, the
 * ones in force first (all cached ones when none is marked in force).
 * TH_ENOTFOUND when nothing is cached. */
int th_intake_defs(const char *dir, th_outbox *ob, th_defset **out, th_diag *d);

#endif

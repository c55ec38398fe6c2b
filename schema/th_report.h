/* th_report.h -- reports (one appendix of one unit for one period) and their
 * validation (DESIGN section 4); their canonical form and content hash are
 * th_canon.h.
 *
 * Identity: (unit, appendix, period).  Cells are row-major,
 * n_rows * n_cols, in the definition's column order.
 */
#ifndef TH_REPORT_H
#define TH_REPORT_H

#include <stdint.h>
#include <stddef.h>
#include "th_error.h"
#include "th_value.h"
#include "th_def.h"
#include "th_period.h"

#define TH_HASH_LEN 32          /* BLAKE2b-256 */
#define TH_CODE_MAX 64          /* unit code, appendix id: bytes */

typedef struct th_report {
	char *unit;          /* unit code */
	char *appendix;      /* "PL1" */
	uint32_t version;    /* appendix definition version */
	char *period;        /* "2021", "2021-Q2", "2021-H1", "2021-06" */
	uint64_t rev;        /* strictly increasing per key, assigned by the agent */
	int32_t as_of;       /* report's as-of date yyyymmdd, 0 = none */
	uint8_t tombstone;   /* 1: withdrawal (admin); no rows */
	size_t n_rows;
	size_t n_cols;
	th_value *cells;     /* n_rows * n_cols */
} th_report;

/* A new empty report (strings copied). NULL on ENOMEM. */
th_report *th_report_new(const char *unit, const char *appendix, uint32_t version,
                         const char *period, uint64_t rev, size_t n_cols);
void th_report_destroy(th_report **r);
/* Appends a row of null cells; returns its index or TH_ENOMEM/TH_ETOOBIG. */
long th_report_add_row(th_report *r);
static inline th_value *th_report_cell(const th_report *r, size_t row, size_t col)
{
	return &r->cells[row * r->n_cols + col];
}
th_report *th_report_clone(const th_report *r);

/* Validates r completely against d: column count, types and ranges,
 * required cells, text length and UTF-8/NFC, row count limit, unique row keys,
 * cross-field rules; derives the task status (d->derive) from the dates and
 * as_of, overwriting the status cell and adding a TH_SEV_WARNING entry when
 * the declared status disagrees.  Every problem goes to diag with its row
 * and column.  Returns 0 when there is no error. */
int th_report_validate(th_report *r, const th_def *d, th_diag *diag);

/* Sorts the rows by row key (th_value_cmp on the key columns in order). */
void th_report_sort(th_report *r, const th_def *d);

/* The rows' order by row key (th_value_cmp on the key columns in order, ties in
 * row order): a malloc'd array of n_rows row indices, NULL when out of memory.
 * The canonical form (th_canon.h) lists rows in this order. */
size_t *th_report_key_order(const th_report *r, const th_def *d);

/* The key as one byte string "unit\0appendix\0period" (no trailing NUL);
 * returns its length, or TH_ETOOBIG when buf (size cap) is too small. */
int th_report_key(const char *unit, const char *appendix, const char *period,
                  char *buf, size_t cap);

/* The canonical form and hash moved to th_canon.h; included here so that the
 * callers of th_report_hash outside schema/ keep building. */
#include "th_canon.h"

#endif

/* th_input.h -- reading an appendix file of any supported kind.
 *
 * The kind is told by the file's content, never its name: "PK\3\4" is an
 * .xlsx workbook (th_xlsx.h), D0 CF 11 E0 an Excel 97-2003 .xls (refused by
 * name, with how to convert it), "%PDF" a PDF (refused), anything else CSV
 * text (th_csv.h).  Both kinds go through the same table reader
 * (th_sheet.h), so the same cells give the same reports and the same rules.
 * Same calling convention as th_csv_read_report: every problem goes to diag,
 * *out is written only when there is none.
 */
#ifndef TH_INPUT_H
#define TH_INPUT_H

#include <stddef.h>
#include "th_error.h"
#include "th_def.h"
#include "th_report.h"
#include "th_sheet.h"

/* Largest appendix file read, whatever its kind. */
#define TH_INPUT_MAX_FILE (64u << 20)

/* One report.  A file that holds several units' reports (a sheet with a
 * unit column) needs opts->unit, else it is refused by name. */
int th_input_read_report(const char *path, const th_defset *defs, const th_read_opts *opts,
                         th_report **out, th_diag *diag);
/* Every report of the file (one per unit of a unit column): *out is a
 * malloc'd array of *n reports (th_reports_free). */
int th_input_read_reports(const char *path, const th_defset *defs, const th_read_opts *opts,
                          th_report ***out, size_t *n, th_diag *diag);
/* The same from memory; name is used in messages. */
int th_input_parse_reports(const void *data, size_t len, const char *name, const th_defset *defs,
                           const th_read_opts *opts, th_report ***out, size_t *n, th_diag *diag);

#endif

/* th_csv.h -- reading appendix files saved as CSV by Excel and LibreOffice.
 *
 * This module only turns bytes into records: UTF-8 with or without BOM,
 * UTF-16 with BOM, or a legacy encoding named by the caller (iconv; a file
 * that is not UTF-8 is refused by name, never guessed; a workbook, a .xls
 * or a PDF is refused by what it is); ',' or ';' or TAB separators
 * (detected from the first line that is not a '#' line); RFC 4180 quoting
 * with embedded separators, quotes and newlines.  The records go to the
 * shared table reader (th_sheet.h), which holds every rule of an appendix
 * file (schema/APPENDIX-FILES.md): metadata, title rows, the header by
 * column ids or Vietnamese titles, one line per row, values by type,
 * validation, problems as "file:line: column: problem".
 * th_input.h (schema/xlsx) reads a file of any kind, CSV included.
 */
#ifndef TH_CSV_H
#define TH_CSV_H

#include <stddef.h>
#include "th_error.h"
#include "th_def.h"
#include "th_report.h"
#include "th_sheet.h"

/* The readers' common options (th_sheet.h). */
typedef th_read_opts th_csv_opts;

/* Reads an appendix file into a validated report.  defs supplies the
 * definition (the file's version, or the latest of the appendix when the
 * file names none).  Every problem found is added to diag as
 * "file:line: column: problem"; returns 0 and writes *out only when there is
 * no error (warnings allowed). */
int th_csv_read_report(const char *path, const th_defset *defs, const th_csv_opts *opts,
                       th_report **out, th_diag *diag);
/* Same from memory; name is used in diagnostics. */
int th_csv_parse_report(const char *data, size_t len, const char *name, const th_defset *defs,
                        const th_csv_opts *opts, th_report **out, th_diag *diag);
/* Same for a table with a unit column (one report per unit): *out is a
 * malloc'd array of *n reports (th_reports_free), written only on success.
 * The single-report calls refuse such a table unless opts->unit picks one. */
int th_csv_parse_reports(const char *data, size_t len, const char *name, const th_defset *defs,
                         const th_csv_opts *opts, th_report ***out, size_t *n, th_diag *diag);

/* Low-level tokenizer, exposed for other tabular files and tests: splits
 * UTF-8 text into records; calls cb for each record with its fields
 * (NUL-terminated, unquoted), their count, and the 1-based line where the
 * record starts.  A non-zero return from cb stops and is returned.
 * sep 0 = detect from the first line. */
typedef int (*th_csv_record_cb)(void *ctx, char **fields, size_t n, long line);
int th_csv_tokenize(const char *data, size_t len, char sep, th_csv_record_cb cb, void *ctx,
                    const char *name, th_diag *diag);

/* Writes r as an appendix file (UTF-8, ',' separator, metadata lines, header
 * of column ids) that th_csv_read_report reads back to an equal report. */
int th_csv_write_report(const char *path, const th_report *r, const th_def *d);

#endif

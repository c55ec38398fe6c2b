/* th_xlsx.h -- reading appendix files saved as Excel workbooks (.xlsx).
 *
 * The workbook (Office Open XML: a ZIP archive of XML parts) is read with
 * libzip and expat, streaming: the chosen worksheet is parsed as it
 * inflates and handed row by row to the shared table reader (th_sheet.h),
 * which applies every rule of an appendix file (schema/APPENDIX-FILES.md),
 * so a workbook and a CSV file with the same cells give the same reports.
 * Problems are placed as "file: SHEET!D7 (Vietnamese title): problem".
 *
 * Cells: shared strings (rich text runs joined, phonetic runs skipped) and
 * inline strings, numbers (as written in the XML, never through a double),
 * booleans, error values (a problem naming the error), formulas' cached
 * values (a formula with none is a problem), dates as serial numbers in the
 * 1900 system (with its fictitious 1900-02-29) or the 1904 system
 * (workbook.xml date1904), recognised by the cell's number format
 * (built-in formats 14-17, 22, 27-36, 50-58 and custom formats with a day or
 * a year; styles.xml).
 *
 * Which sheet: the one the template's hidden sheet "_tonghop" names (its
 * appendix, version, unit(s) and period are the workbook's metadata), else
 * the first visible sheet with a header row naming the appendix's columns.
 *
 * Hostile files are refused with a clear error, never a crash: more than
 * TH_XLSX_MAX_FILE bytes, more than TH_XLSX_MAX_PARTS parts, part names
 * with "..", a leading "/", a backslash, a NUL or a control character, a
 * part declared or found (counting the real inflated bytes) larger than
 * TH_XLSX_MAX_PART, any DTD (<!DOCTYPE>: entities are never expanded),
 * more than TH_XLSX_MAX_STRINGS shared strings or TH_XLSX_MAX_STRING_BYTES
 * of them, cells beyond XFD1048576, a cell of more than TH_XLSX_MAX_CELL
 * bytes, rows or cells out of order, XML nested deeper than 64.
 */
#ifndef TH_XLSX_H
#define TH_XLSX_H

#include <stddef.h>
#include "th_error.h"
#include "th_def.h"
#include "th_report.h"
#include "th_sheet.h"

#define TH_XLSX_MAX_FILE          (64u << 20)   /* bytes of the .xlsx file */
#define TH_XLSX_MAX_PARTS         10000u        /* members of the archive */
#define TH_XLSX_MAX_PART          (128u << 20)  /* inflated bytes of one part */
#define TH_XLSX_MAX_STRINGS       1000000u      /* shared strings */
#define TH_XLSX_MAX_STRING_BYTES  (64u << 20)   /* bytes of all shared strings */
#define TH_XLSX_MAX_CELL          (1u << 20)    /* bytes of one cell's text */

/* The name of the template's hidden sheet. */
#define TH_XLSX_META_SHEET "_tonghop"
/* The template layout version written in it ("format" key). */
#define TH_XLSX_TEMPLATE_FORMAT 1

/* Reads a workbook (in memory; name is used in messages) into its
 * reports: one, or one per unit for a sheet with a unit column.  *out is
 * a malloc'd array of *n reports (th_reports_free), written only when
 * there is no error.  Every problem goes to diag.  A multi-unit workbook
 * read with opts->unit gives that unit's report only. */
int th_xlsx_parse_reports(const void *data, size_t len, const char *name, const th_defset *defs,
                          const th_read_opts *opts, th_report ***out, size_t *n, th_diag *diag);
/* (Files: th_input_read_report / th_input_read_reports, which tell an
 * .xlsx from a CSV file by its content.) */

#endif

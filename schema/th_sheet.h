/* th_sheet.h -- one path from a table of cells to reports.
 *
 * The CSV reader (th_csv.c) and the XLSX reader (xlsx/th_xlsx.c) only
 * tokenise: they hand their rows of cells here, in order, and every rule
 * after that is written once, in th_sheet.c (schema/APPENDIX-FILES.md):
 *   - metadata above the header: "#key: value" lines, "key | value" rows,
 *     or cells "key: value" (Vietnamese keys with or without accents:
 *     "Phụ lục: PL1", "Don vi: 001", "Kỳ: 2021"), and the workbook's own
 *     metadata (the template's hidden sheet, th_sheet_set_meta);
 *   - title rows above the header (skipped), the header row (column ids or
 *     Vietnamese titles), a repeated header row or a "(1) (2) (3)" numbering
 *     row just below it (skipped), an STT column and a unit-name column
 *     (ignored), a unit column (one report per unit);
 *   - one report row per sheet row; each cell by its column's type: text
 *     through th_value.h's parsers (Vietnamese numbers under the same
 *     unambiguity rule, dd/mm/yyyy dates), real numbers, date cells (serials
 *     of the 1900 or 1904 system), booleans, error cells;
 *   - th_report_validate on every report, its problems placed back on the
 *     sheet; every problem of the file at once.
 *
 * Places.  CSV (sheet name NULL): "file:line: column: problem"; the entry
 * has the line and the column id.  XLSX: "file: SHEET!D7 (Vietnamese
 * title): problem"; the entry has line 0, row 0 and column
 * "SHEET!D7 (title)" (a problem of a whole row names the row's range,
 * "SHEET!A7:M7"), so th_diag_text prints exactly that.
 */
#ifndef TH_SHEET_H
#define TH_SHEET_H

#include <stddef.h>
#include <stdint.h>
#include "th_error.h"
#include "th_def.h"
#include "th_report.h"

/* What the caller already knows about a file; each given value must agree
 * with the file's own metadata.  Shared by every reader (th_csv_opts is the
 * same struct). */
typedef struct th_read_opts {
	const char *unit;      /* NULL: from the file.  With a unit column: read only this unit's rows */
	const char *appendix;  /* NULL: from the file's metadata */
	const char *period;    /* NULL: from the file's metadata */
	uint64_t rev;          /* stored in the report(s) as is (0 is fine: the agent stamps it) */
	const char *encoding;  /* CSV only: NULL = detect; else an iconv name to force */
} th_read_opts;

typedef enum {
	TH_SHEET_TEXT = 1,   /* text: NUL-terminated UTF-8 */
	TH_SHEET_NUMBER,     /* a number cell: text is the number as stored ("1234", "0.1", "1E-3") */
	TH_SHEET_BOOL,       /* a boolean cell: "0" or "1" */
	TH_SHEET_ERROR,      /* an error value: "#N/A", "#DIV/0!", ... */
	TH_SHEET_NOVALUE,    /* a formula with no saved result: text is the formula */
	TH_SHEET_INVALID     /* text that is not valid UTF-8 or holds a control character */
} th_sheet_cell_kind;

typedef struct th_sheet_cell {
	uint32_t col;       /* 0-based column (CSV: field index); increasing within a row */
	uint8_t kind;       /* th_sheet_cell_kind */
	uint8_t date;       /* NUMBER: the cell's number format shows a date (text is a serial) */
	const char *text;   /* never NULL; valid during th_sheet_row only */
} th_sheet_cell;

typedef struct th_sheet th_sheet;

/* A reader of one table.  file names the file in messages; sheet is the
 * worksheet's name (XLSX places), NULL for CSV places.  defs and opts (may
 * be NULL) must outlive the sheet.  NULL on ENOMEM. */
th_sheet *th_sheet_new(const char *file, const char *sheet, const th_defset *defs,
                       const th_read_opts *opts);
void th_sheet_destroy(th_sheet **s);

/* Dates stored as serial numbers count from 1904-01-01 (workbook.xml
 * date1904) instead of the 1900 system (default). */
void th_sheet_set_date1904(th_sheet *s, int on);

/* Metadata that comes with the workbook rather than from cells (the
 * template's hidden sheet).  key: appendix, version, unit, period, as_of,
 * or units (the space-separated unit codes a multi-unit workbook covers).
 * A cell above the header that says the same is fine; one that says
 * otherwise is an error.  where names the place for messages
 * ("_tonghop!B3").  Unknown keys are ignored.  TH_OK or TH_ENOMEM. */
int th_sheet_set_meta(th_sheet *s, const char *key, const char *value, const char *where);

/* The problems found so far, for the tokeniser's own (an unclosed quote,
 * a broken XML part); they are handed over by th_sheet_finish in order. */
th_diag *th_sheet_diag(th_sheet *s);

/* One row, in increasing row order (CSV: the line where the record starts;
 * XLSX: the 1-based sheet row).  cells are the row's non-empty cells in
 * increasing column order (empty ones may be included).  TH_OK, or
 * TH_ENOMEM (then stop). */
int th_sheet_row(th_sheet *s, long row, const th_sheet_cell *cells, size_t n);

/* 1 once a header row has been found. */
int th_sheet_has_header(const th_sheet *s);

/* Ends the table: validates every report and places its problems, then
 * moves every problem (errors and warnings) to diag.  Returns TH_OK and
 * writes *out (malloc'd array of *n reports, owned by the caller, in order
 * of first appearance) only when there is no error; else TH_EINVAL (or
 * TH_ENOMEM).  A table without a unit column gives exactly one report. */
int th_sheet_finish(th_sheet *s, th_report ***out, size_t *n, th_diag *diag);

/* Frees an array from th_sheet_finish (or the readers' *_reports calls). */
void th_reports_free(th_report ***reports, size_t n);

/* "SHEET!D7" (the sheet quoted as in a formula when it is not plain) for a
 * 1-based row and 0-based column; col < 0: "SHEET!7:7"; row <= 0: "SHEET".
 * Always NUL-terminates a buffer of cap > 0 bytes. */
void th_sheet_cell_name(const char *sheet, long row, long col, char *buf, size_t cap);

/* The one report of an array from th_sheet_finish: when n == 1 moves it to
 * *out; else adds "holds the reports of N units (...)" and returns
 * TH_EINVAL.  Frees the array either way. */
int th_reports_take_one(th_report **reports, size_t n, const char *name, th_report **out,
                        th_diag *diag);

#endif

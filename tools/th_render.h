/* th_render.h -- tables (th_table.h) written for people and for programs.
 *
 * Formats:
 *   table  aligned by display width (th_utf8_width: Vietnamese combining marks
 *          are zero-wide), numeric columns right-aligned, the header
 *          underlined, null cells empty, no trailing blanks; the table's
 *          title lines above it, its legend below it.  Cells for people:
 *          decimals and ratios with a decimal comma ("99,6"), dates
 *          dd/mm/yyyy, bools có/không, an undefined ratio "—".
 *   csv    RFC 4180 (CRLF, quotes doubled), null = empty field, optionally a
 *          UTF-8 BOM (Excel); cells in machine form: "99.6", yyyy-mm-dd,
 *          true/false, an undefined ratio "—".  Titles and legend left out.
 *   json   an array of one object per row keyed by the column keys: integers
 *          and decimals as JSON numbers (common/th_json.h: integers exact,
 *          decimals to 15 significant digits), null and an undefined ratio as
 *          null, dates and bools as strings (yyyy-mm-dd, "true"/"false").
 *   xlsx   one sheet, a bold header row, numbers as numbers.
 * A text cell of a numeric column that is a number in machine form
 * (th_text_is_number) counts as a number in json and xlsx.
 *
 * A document (th_doc) of several tables: the aligned tables one after the
 * other with a blank line between; the CSV tables with an empty record
 * between; in JSON one object holding the document's fields, then each table
 * under its name (a document of one unnamed table and no field is that
 * table's array).  XLSX holds one table.
 *
 * Output goes to a FILE* (for a buffer: open_memstream(3)); xlsx to a path.
 * Nothing is written to stderr: a failure returns a TH_E* code and a sentence
 * in why (cap bytes).
 */
#ifndef TH_RENDER_H
#define TH_RENDER_H

#include <stdio.h>
#include <stddef.h>
#include "th_table.h"

typedef enum { TH_FMT_TABLE = 0, TH_FMT_CSV, TH_FMT_JSON, TH_FMT_XLSX } th_format;

/* "table", "csv", "json", "xlsx"; -1 when unknown. */
int th_format_parse(const char *s);

typedef struct th_render_opts {
	th_format fmt;
	int bom;              /* csv: begin with a UTF-8 BOM so that Excel reads UTF-8 */
	const char *path;     /* xlsx: the workbook to write (required) */
	const char *sheet;    /* xlsx: the sheet's name (NULL: "tonghop") */
} th_render_opts;

/* Writes t (xlsx: to o->path; else to f).  0, or TH_ENOMEM (t lost a cell or
 * memory ran out), TH_EIO (cannot write), TH_EINVAL (xlsx without a path, or
 * without libxlsxwriter in this build), with why. */
int th_render_table(const th_table *t, const th_render_opts *o, FILE *f, char *why, size_t cap);
/* Writes every table of d as one output; same returns. */
int th_render_doc(const th_doc *d, const th_render_opts *o, FILE *f, char *why, size_t cap);

/* A cell as text: for people (people != 0: "12,5", dd/mm/yyyy, có/không) or
 * in machine form.  NULL for null.  The result is c's text or buf (64 bytes). */
const char *th_cell_text(const th_cell *c, int people, char *buf);
/* The percentage num/den * 100 in tenths, rounded half away from zero
 * (den != 0). */
int64_t th_ratio_tenths(int64_t num, int64_t den);

/* 1 when s is a number in machine form: -?digits(.digits)?, no leading zero
 * before another digit, no exponent. */
int th_text_is_number(const char *s);
/* Writes s as a JSON string, with its quotes, to f (invalid UTF-8 becomes
 * U+FFFD). */
void th_json_string(FILE *f, const char *s);

#endif

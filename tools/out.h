/* out.h -- tables for people (aligned, Vietnamese-width aware) and for
 * programs (csv, json, xlsx). */
#ifndef TH_OUT_H
#define TH_OUT_H

#include <stdio.h>
#include <stddef.h>

typedef enum { TH_FMT_TABLE = 0, TH_FMT_CSV, TH_FMT_JSON, TH_FMT_XLSX } th_format;

typedef struct th_table th_table;

/* A table of ncols columns; headers are copied. numeric[i] right-aligns
 * column i in tables and writes it as a number in json/xlsx when the cell
 * parses as one. */
th_table *th_table_new(size_t ncols);
void th_table_destroy(th_table **t);
void th_table_header(th_table *t, size_t col, const char *title, int numeric);
/* Appends an empty row (all cells null); returns its index or -1. */
long th_table_row(th_table *t);
/* Sets a cell (copied); NULL = null (empty in table/csv, null in json). */
void th_table_set(th_table *t, size_t row, size_t col, const char *text);
void th_table_setf(th_table *t, size_t row, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
size_t th_table_rows(const th_table *t);
const char *th_table_get(const th_table *t, size_t row, size_t col);

/* Parses "table", "csv", "json", "xlsx"; -1 when unknown. */
int th_format_parse(const char *s);
/* Writes t.  xlsx needs path (others write to f).
 *   table: aligned by display width (th_utf8_width: Vietnamese combining
 *          marks are zero-wide), numeric columns right-aligned, the header
 *          underlined, null cells empty, no trailing blanks;
 *   csv:   RFC 4180 (CRLF, quotes doubled), null = empty field; bom adds a
 *          UTF-8 BOM (Excel);
 *   json:  an array of objects keyed by json_keys (NULL: headers); null
 *          cells are null, numeric cells that are JSON numbers are numbers;
 *   xlsx:  one sheet, a bold header row, numeric cells as numbers.
 * Returns 0 or -1 (message on stderr). */
int th_table_write(const th_table *t, th_format fmt, FILE *f, const char *path, int bom,
                   const char *const *json_keys, const char *sheet);

/* Escapes s as a JSON string (with quotes) to f. */
void th_json_string(FILE *f, const char *s);

#endif

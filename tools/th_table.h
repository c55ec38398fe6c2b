/* th_table.h -- the table model: what a view (th_view.h) fills and a renderer
 * (th_render.h) writes.
 *
 * A table has columns (a key for programs, a title for people, a short label
 * for the aligned table, numeric or not) and rows of typed cells.  A cell is a
 * value, not text: an integer, a fixed-point decimal, a ratio of two sums, a
 * date, a bool, a text, or null.  Each renderer formats cells for its readers
 * (the aligned table with a decimal comma, CSV and JSON in machine form), so a
 * view never chooses a separator or a JSON type.
 *
 * Around the rows, the lines people read with the table: title lines above, a
 * legend below, and a caption shown instead of an empty table.  Renderers for
 * programs (CSV, JSON) leave them out.
 *
 * A document (th_doc) is one output holding one or more tables, plus fields
 * that JSON writes before them.
 *
 * Allocation failures do not stop the setters: the table remembers them
 * (th_table_error) and renderers refuse a table that lost a cell.
 */
#ifndef TH_TABLE_H
#define TH_TABLE_H

#include <stddef.h>
#include <stdint.h>
#include "th_def.h"
#include "th_value.h"

typedef enum {
	TH_CELL_NULL = 0,   /* nobody reported it: empty cell, JSON null (never 0) */
	TH_CELL_TEXT,       /* UTF-8 text */
	TH_CELL_INT,        /* v */
	TH_CELL_DEC,        /* v / 10^scale (fixed point) */
	TH_CELL_RATIO,      /* 100 * v / den, shown with one decimal; den == 0: undefined */
	TH_CELL_DATE,       /* v = yyyymmdd */
	TH_CELL_BOOL        /* v = 0 or 1 */
} th_cell_kind;

typedef struct th_cell {
	th_cell_kind kind;
	int scale;          /* TH_CELL_DEC */
	int64_t v;
	int64_t den;        /* TH_CELL_RATIO */
	char *s;            /* TH_CELL_TEXT (owned by the table) */
} th_cell;

/* Which name heads a column in CSV and XLSX: its title (default) or its key. */
typedef enum { TH_HEAD_TITLE = 0, TH_HEAD_KEY } th_head;

typedef struct th_table th_table;

/* A table of ncols columns with no rows; NULL when out of memory. */
th_table *th_table_new(size_t ncols);
void th_table_destroy(th_table **t);

/* Column col: key (JSON key, and the CSV head with TH_HEAD_KEY; NULL: the
 * title), title (people's name, the CSV head by default), label (the aligned
 * table's head; NULL: the title).  numeric right-aligns the column in the
 * aligned table, and a text cell of it that is a number in machine form
 * (th_text_is_number) is written as a number in JSON and XLSX.  Strings are
 * copied. */
void th_table_column(th_table *t, size_t col, const char *key, const char *title,
                     const char *label, int numeric);
/* th_table_column(t, col, NULL, title, NULL, numeric). */
void th_table_header(th_table *t, size_t col, const char *title, int numeric);
/* What heads the columns in CSV and XLSX (default TH_HEAD_TITLE). */
void th_table_heads(th_table *t, th_head sheet);
/* Marks the table as one record: the aligned table shows a table of at most
 * one row as one line per column (key, title, value). */
void th_table_record(th_table *t, int on);

/* Appends a row of null cells; returns its index, or -1 when out of memory. */
long th_table_row(th_table *t);
/* Setters; a row or column out of range is ignored. */
void th_table_set(th_table *t, size_t row, size_t col, const char *text);   /* NULL: null */
void th_table_setf(th_table *t, size_t row, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void th_table_set_int(th_table *t, size_t row, size_t col, int64_t v);
void th_table_set_dec(th_table *t, size_t row, size_t col, int64_t v, int scale);
void th_table_set_ratio(th_table *t, size_t row, size_t col, int64_t num, int64_t den);
void th_table_set_date(th_table *t, size_t row, size_t col, int32_t ymd);
void th_table_set_bool(th_table *t, size_t row, size_t col, int v);
/* A report cell of column c as its type says: integer, decimal, date and bool
 * as themselves, an enum as its code, a text as text, null as null. */
void th_table_set_value(th_table *t, size_t row, size_t col, const th_column *c,
                        const th_value *v);
/* The same as a cell in *out, its text (if any) borrowed from c and v. */
void th_cell_of_value(th_cell *out, const th_column *c, const th_value *v);

/* Lines around the table (copied): a title line above it; a legend entry
 * below it (term NULL: a plain line; else the term and its meaning); the text
 * shown instead of the table when it has no rows (NULL: the empty table). */
void th_table_add_title(th_table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void th_table_add_note(th_table *t, const char *term, const char *text);
void th_table_set_empty(th_table *t, const char *text);

/* Reading (for renderers and tests); pointers valid until the table changes. */
size_t th_table_cols(const th_table *t);
size_t th_table_rows(const th_table *t);
const char *th_table_key(const th_table *t, size_t col);     /* key, else title */
const char *th_table_title(const th_table *t, size_t col);
const char *th_table_label(const th_table *t, size_t col);   /* label, else title */
int th_table_numeric(const th_table *t, size_t col);
th_head th_table_sheet_heads(const th_table *t);
int th_table_is_record(const th_table *t);
/* The cell, or NULL out of range. */
const th_cell *th_table_cell(const th_table *t, size_t row, size_t col);
/* A text cell's text; NULL for any other cell and out of range. */
const char *th_table_get(const th_table *t, size_t row, size_t col);
size_t th_table_n_titles(const th_table *t);
const char *th_table_title_line(const th_table *t, size_t i);
size_t th_table_n_notes(const th_table *t);
/* Note i: its term (NULL for a plain line) and text. */
const char *th_table_note(const th_table *t, size_t i, const char **term);
const char *th_table_empty(const th_table *t);
/* 0, or TH_ENOMEM when a setter could not keep what it was given. */
int th_table_error(const th_table *t);

/* A document: tables written as one output (th_render_doc), and fields JSON
 * writes before them. */
typedef struct th_doc th_doc;
th_doc *th_doc_new(void);
void th_doc_destroy(th_doc **d);
/* A JSON field (key and text value, copied). 0 or TH_ENOMEM. */
int th_doc_field(th_doc *d, const char *key, const char *value);
/* Appends t (the document takes it, also on failure) under name (its JSON key
 * when the document is an object).  0 or TH_ENOMEM. */
int th_doc_add(th_doc *d, const char *name, th_table *t);
/* A document of the one table t (taken); NULL when out of memory. */
th_doc *th_doc_of(th_table *t);
size_t th_doc_count(const th_doc *d);
th_table *th_doc_table(const th_doc *d, size_t i);
const char *th_doc_name(const th_doc *d, size_t i);
size_t th_doc_n_fields(const th_doc *d);
/* Field i's key, and its value in *value. */
const char *th_doc_field_at(const th_doc *d, size_t i, const char **value);

#endif

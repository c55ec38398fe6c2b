/* out_table.c -- aligned tables, csv, json and xlsx output. */
#include "out.h"
#include "th_value.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#ifdef TH_HAVE_XLSX
#include <xlsxwriter.h>
#endif

struct th_table {
	size_t ncols, nrows, cap;
	char **head;
	int *numeric;
	char **cells;
};

th_table *th_table_new(size_t ncols)
{
	th_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ncols = ncols;
	t->head = calloc(ncols ? ncols : 1, sizeof *t->head);
	t->numeric = calloc(ncols ? ncols : 1, sizeof *t->numeric);
	if (!t->head || !t->numeric)
		th_table_destroy(&t);
	return t;
}

void th_table_destroy(th_table **pt)
{
	if (!pt || !*pt)
		return;
	th_table *t = *pt;
	for (size_t i = 0; i < t->ncols; i++)
		free(t->head[i]);
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->head);
	free(t->numeric);
	free(t->cells);
	free(t);
	*pt = NULL;
}

void th_table_header(th_table *t, size_t col, const char *title, int numeric)
{
	if (col >= t->ncols)
		return;
	free(t->head[col]);
	t->head[col] = strdup(title ? title : "");
	t->numeric[col] = numeric;
}

long th_table_row(th_table *t)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **c = realloc(t->cells, cap * (t->ncols ? t->ncols : 1) * sizeof *c);
		if (!c)
			return -1;
		t->cells = c;
		t->cap = cap;
	}
	memset(&t->cells[t->nrows * t->ncols], 0, t->ncols * sizeof *t->cells);
	return (long)t->nrows++;
}

void th_table_set(th_table *t, size_t row, size_t col, const char *text)
{
	if (row >= t->nrows || col >= t->ncols)
		return;
	char **c = &t->cells[row * t->ncols + col];
	free(*c);
	*c = text ? strdup(text) : NULL;
}

void th_table_setf(th_table *t, size_t row, size_t col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (row < t->nrows && col < t->ncols) {
		free(t->cells[row * t->ncols + col]);
		t->cells[row * t->ncols + col] = s;
	} else {
		free(s);
	}
}

size_t th_table_rows(const th_table *t) { return t->nrows; }

const char *th_table_get(const th_table *t, size_t row, size_t col)
{
	return row < t->nrows && col < t->ncols ? t->cells[row * t->ncols + col] : NULL;
}

int th_format_parse(const char *s)
{
	static const char *names[] = {"table", "csv", "json", "xlsx"};
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

/* Writes one cell: line breaks and tabs become blanks so a row stays one
 * line.  Blanks are held back in *pending and written only before visible
 * text, so lines carry no trailing blanks. */
static void put_text(FILE *f, const char *s, size_t *pending)
{
	for (; *s; s++) {
		if (*s == ' ' || *s == '\n' || *s == '\r' || *s == '\t') {
			(*pending)++;
			continue;
		}
		for (; *pending; (*pending)--)
			fputc(' ', f);
		fputc(*s, f);
	}
}

/* Display width of a cell as put_text writes it. */
static size_t cell_width(const char *s)
{
	if (!s)
		return 0;
	if (!strpbrk(s, "\n\r\t"))
		return th_utf8_width(s);
	char *c = strdup(s);
	if (!c)
		return th_utf8_width(s);
	for (char *p = c; *p; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	size_t w = th_utf8_width(c);
	free(c);
	return w;
}

static void write_line(const th_table *t, FILE *f, const size_t *w, char *const *cells)
{
	size_t pending = 0;
	for (size_t c = 0; c < t->ncols; c++) {
		const char *s = cells[c] ? cells[c] : "";
		size_t x = cell_width(s);
		if (c)
			pending += 2;
		if (t->numeric[c])
			pending += w[c] > x ? w[c] - x : 0;
		put_text(f, s, &pending);
		if (!t->numeric[c])
			pending += w[c] > x ? w[c] - x : 0;
	}
	fputc('\n', f);
}

static void write_table(const th_table *t, FILE *f)
{
	size_t *w = calloc(t->ncols ? t->ncols : 1, sizeof *w);
	if (!w)
		return;
	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = cell_width(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t x = cell_width(t->cells[r * t->ncols + c]);
			if (x > w[c])
				w[c] = x;
		}
	}
	write_line(t, f, w, t->head);
	for (size_t c = 0; c < t->ncols; c++) {
		if (c)
			fputs("  ", f);
		for (size_t k = 0; k < w[c]; k++)
			fputc('-', f);
	}
	fputc('\n', f);
	for (size_t r = 0; r < t->nrows; r++)
		write_line(t, f, w, &t->cells[r * t->ncols]);
	free(w);
}

static void csv_field(FILE *f, const char *s)
{
	if (!s)
		return;
	/* RFC 4180: quote fields holding a separator (',' or Excel's ';'), a
	 * quote, a line break, or blanks at the ends (which readers trim) */
	size_t n = strlen(s);
	if (strpbrk(s, ",\"\n\r;") || (n && (s[0] == ' ' || s[n - 1] == ' '))) {
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
}

void th_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c == '\r')
			fputs("\\r", f);
		else if (c == '\t')
			fputs("\\t", f);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* A JSON number: -?digits(.digits)? */
static int is_number(const char *s)
{
	if (*s == '-')
		s++;
	if (!*s || *s < '0' || *s > '9')
		return 0;
	if (s[0] == '0' && s[1] >= '0' && s[1] <= '9')
		return 0;
	while (*s >= '0' && *s <= '9')
		s++;
	if (*s == '.') {
		s++;
		if (!*s)
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == 0;
}

int th_table_write(const th_table *t, th_format fmt, FILE *f, const char *path, int bom,
                   const char *const *json_keys, const char *sheet)
{
	switch (fmt) {
	case TH_FMT_TABLE:
		write_table(t, f);
		return 0;
	case TH_FMT_CSV:
		if (bom)
			fputs("\xEF\xBB\xBF", f);
		for (size_t c = 0; c < t->ncols; c++) {
			if (c)
				fputc(',', f);
			csv_field(f, t->head[c]);
		}
		fputs("\r\n", f);
		for (size_t r = 0; r < t->nrows; r++) {
			for (size_t c = 0; c < t->ncols; c++) {
				if (c)
					fputc(',', f);
				csv_field(f, t->cells[r * t->ncols + c]);
			}
			fputs("\r\n", f);
		}
		return 0;
	case TH_FMT_JSON:
		fputs("[", f);
		for (size_t r = 0; r < t->nrows; r++) {
			fputs(r ? ",\n {" : "\n {", f);
			for (size_t c = 0; c < t->ncols; c++) {
				if (c)
					fputs(", ", f);
				th_json_string(f, json_keys && json_keys[c] ? json_keys[c] : t->head[c]);
				fputs(": ", f);
				const char *s = t->cells[r * t->ncols + c];
				if (!s)
					fputs("null", f);
				else if (t->numeric[c] && is_number(s))
					fputs(s, f);
				else
					th_json_string(f, s);
			}
			fputs("}", f);
		}
		fputs("\n]\n", f);
		return 0;
	case TH_FMT_XLSX: {
#ifdef TH_HAVE_XLSX
		if (!path) {
			fprintf(stderr, "tonghop: --format xlsx needs -o FILE\n");
			return -1;
		}
		lxw_workbook *wb = workbook_new(path);
		if (!wb) {
			fprintf(stderr, "tonghop: cannot create %s\n", path);
			return -1;
		}
		lxw_worksheet *ws = workbook_add_worksheet(wb, sheet);
		lxw_format *bold = workbook_add_format(wb);
		format_set_bold(bold);
		for (size_t c = 0; c < t->ncols; c++) {
			worksheet_write_string(ws, 0, (lxw_col_t)c, t->head[c] ? t->head[c] : "", bold);
			/* a readable width: the widest cell, bounded */
			size_t w = t->numeric[c] ? 8 : cell_width(t->head[c]);
			for (size_t r = 0; r < t->nrows; r++) {
				size_t x = cell_width(t->cells[r * t->ncols + c]);
				if (x > w)
					w = x;
			}
			worksheet_set_column(ws, (lxw_col_t)c, (lxw_col_t)c, (double)(w > 60 ? 60 : w) + 2, NULL);
		}
		for (size_t r = 0; r < t->nrows; r++)
			for (size_t c = 0; c < t->ncols; c++) {
				const char *s = t->cells[r * t->ncols + c];
				if (!s)
					continue;
				if (t->numeric[c] && is_number(s))
					worksheet_write_number(ws, (lxw_row_t)(r + 1), (lxw_col_t)c, strtod(s, NULL), NULL);
				else
					worksheet_write_string(ws, (lxw_row_t)(r + 1), (lxw_col_t)c, s, NULL);
			}
		if (workbook_close(wb) != LXW_NO_ERROR) {
			fprintf(stderr, "tonghop: cannot write %s\n", path);
			return -1;
		}
		return 0;
#else
		(void)path;
		(void)sheet;
		fprintf(stderr, "tonghop: built without libxlsxwriter; use --format csv\n");
		return -1;
#endif
	}
	}
	return -1;
}

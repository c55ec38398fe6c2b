/* render_text.c -- the aligned table for people (th_render.h): widths by
 * display columns, numeric columns right-aligned, titles above, legend below. */
#include "render_private.h"
#include "th_error.h"
#include "th_value.h"

#include <stdlib.h>
#include <string.h>

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

size_t th_render_width(const char *s)
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

/* A grid of texts to align: head[ncols], cells[nrows * ncols] (NULL = empty). */
typedef struct grid {
	size_t ncols, nrows;
	const char **head;
	const char **cells;
	const int *numeric;
} grid;

static void write_line(const grid *g, FILE *f, const size_t *w, const char *const *cells)
{
	size_t pending = 0;
	for (size_t c = 0; c < g->ncols; c++) {
		const char *s = cells[c] ? cells[c] : "";
		size_t x = th_render_width(s);
		if (c)
			pending += 2;
		if (g->numeric[c])
			pending += w[c] > x ? w[c] - x : 0;
		put_text(f, s, &pending);
		if (!g->numeric[c])
			pending += w[c] > x ? w[c] - x : 0;
	}
	fputc('\n', f);
}

static int write_grid(const grid *g, FILE *f)
{
	size_t *w = calloc(g->ncols ? g->ncols : 1, sizeof *w);
	if (!w)
		return TH_ENOMEM;
	for (size_t c = 0; c < g->ncols; c++) {
		w[c] = th_render_width(g->head[c]);
		for (size_t r = 0; r < g->nrows; r++) {
			size_t x = th_render_width(g->cells[r * g->ncols + c]);
			if (x > w[c])
				w[c] = x;
		}
	}
	write_line(g, f, w, g->head);
	for (size_t c = 0; c < g->ncols; c++) {
		if (c)
			fputs("  ", f);
		for (size_t k = 0; k < w[c]; k++)
			fputc('-', f);
	}
	fputc('\n', f);
	for (size_t r = 0; r < g->nrows; r++)
		write_line(g, f, w, &g->cells[r * g->ncols]);
	free(w);
	return 0;
}

/* The table's texts for people, or (a record of at most one row) one line per
 * column: key, title, value. */
static int write_body(const th_table *t, FILE *f)
{
	size_t nc = th_table_cols(t), nr = th_table_rows(t);
	int record = th_table_is_record(t) && nr <= 1;
	static const int left[3] = {0, 0, 0};
	static const char *rhead[3] = {"Cột", "Tiêu đề", "Giá trị"};
	grid g = {.ncols = record ? 3 : nc, .nrows = record ? nc : nr};
	size_t ncells = g.ncols * g.nrows;
	char (*bufs)[64] = calloc(ncells ? ncells : 1, sizeof *bufs);
	const char **cells = calloc(ncells ? ncells : 1, sizeof *cells);
	const char **head = calloc(g.ncols ? g.ncols : 1, sizeof *head);
	int *numeric = calloc(g.ncols ? g.ncols : 1, sizeof *numeric);
	int rc = TH_ENOMEM;
	if (!bufs || !cells || !head || !numeric)
		goto out;
	if (record) {
		memcpy(head, rhead, sizeof rhead);
		memcpy(numeric, left, sizeof left);
		for (size_t c = 0; c < nc; c++) {
			cells[c * 3] = th_table_key(t, c);
			cells[c * 3 + 1] = th_table_title(t, c);
			cells[c * 3 + 2] = nr ? th_cell_text(th_table_cell(t, 0, c), 1, bufs[c]) : NULL;
		}
	} else {
		for (size_t c = 0; c < nc; c++) {
			head[c] = th_table_label(t, c);
			numeric[c] = th_table_numeric(t, c);
		}
		for (size_t i = 0; i < ncells; i++)
			cells[i] = th_cell_text(th_table_cell(t, i / nc, i % nc), 1, bufs[i]);
	}
	g.head = head;
	g.cells = cells;
	g.numeric = numeric;
	rc = write_grid(&g, f);
out:
	free(bufs);
	free(cells);
	free(head);
	free(numeric);
	return rc;
}

int th_render_text(const th_table *t, FILE *f)
{
	size_t nt = th_table_n_titles(t), nn = th_table_n_notes(t);
	for (size_t i = 0; i < nt; i++)
		fprintf(f, "%s\n", th_table_title_line(t, i));
	if (nt)
		fputc('\n', f);
	int rc = 0;
	if (th_table_rows(t) == 0 && th_table_empty(t))
		fprintf(f, "%s\n", th_table_empty(t));
	else
		rc = write_body(t, f);
	if (nn)
		fputc('\n', f);
	for (size_t i = 0; i < nn; i++) {
		const char *term, *text = th_table_note(t, i, &term);
		if (term)
			fprintf(f, "  %-28s %s\n", term, text);
		else
			fprintf(f, "%s\n", text);
	}
	return rc;
}

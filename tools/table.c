/* table.c -- the table model and documents (th_table.h). */
#include "th_table.h"
#include "th_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tcol {
	char *key, *title, *label;
	int numeric;
} tcol;

typedef struct strv {
	char **v;
	size_t n;
} strv;

struct th_table {
	size_t ncols, nrows, cap;
	tcol *cols;
	th_cell *cells;
	th_head sheet;
	int record;
	strv titles;
	struct note { char *term, *text; } *notes;   /* term NULL: a plain line */
	size_t n_notes;
	char *empty;
	int err;
};

th_table *th_table_new(size_t ncols)
{
	th_table *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->ncols = ncols;
	t->cols = calloc(ncols ? ncols : 1, sizeof *t->cols);
	if (!t->cols)
		th_table_destroy(&t);
	return t;
}

static void cell_clear(th_cell *c)
{
	free(c->s);
	memset(c, 0, sizeof *c);
}

static void strv_free(strv *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	s->v = NULL;
	s->n = 0;
}

void th_table_destroy(th_table **pt)
{
	if (!pt || !*pt)
		return;
	th_table *t = *pt;
	for (size_t i = 0; i < t->ncols; i++) {
		free(t->cols[i].key);
		free(t->cols[i].title);
		free(t->cols[i].label);
	}
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		cell_clear(&t->cells[i]);
	free(t->cols);
	free(t->cells);
	strv_free(&t->titles);
	for (size_t i = 0; i < t->n_notes; i++) {
		free(t->notes[i].term);
		free(t->notes[i].text);
	}
	free(t->notes);
	free(t->empty);
	free(t);
	*pt = NULL;
}

/* A copy of s (NULL stays NULL); a failed copy marks the table. */
static char *dup_or_mark(th_table *t, const char *s)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		t->err = TH_ENOMEM;
	return d;
}

void th_table_column(th_table *t, size_t col, const char *key, const char *title,
                     const char *label, int numeric)
{
	if (col >= t->ncols)
		return;
	tcol *c = &t->cols[col];
	/* copies first: the arguments may be the column's own strings */
	char *k = dup_or_mark(t, key), *ti = dup_or_mark(t, title ? title : ""), *l = dup_or_mark(t, label);
	free(c->key);
	free(c->title);
	free(c->label);
	c->key = k;
	c->title = ti;
	c->label = l;
	c->numeric = numeric;
}

void th_table_header(th_table *t, size_t col, const char *title, int numeric)
{
	th_table_column(t, col, NULL, title, NULL, numeric);
}

void th_table_heads(th_table *t, th_head sheet) { t->sheet = sheet; }
void th_table_record(th_table *t, int on) { t->record = on; }

long th_table_row(th_table *t)
{
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		th_cell *c = realloc(t->cells, cap * (t->ncols ? t->ncols : 1) * sizeof *c);
		if (!c) {
			t->err = TH_ENOMEM;
			return -1;
		}
		t->cells = c;
		t->cap = cap;
	}
	memset(&t->cells[t->nrows * t->ncols], 0, t->ncols * sizeof *t->cells);
	return (long)t->nrows++;
}

/* The cell to set (cleared), or NULL out of range. */
static th_cell *slot(th_table *t, size_t row, size_t col)
{
	if (row >= t->nrows || col >= t->ncols)
		return NULL;
	th_cell *c = &t->cells[row * t->ncols + col];
	cell_clear(c);
	return c;
}

void th_table_set(th_table *t, size_t row, size_t col, const char *text)
{
	th_cell *c = slot(t, row, col);
	if (!c || !text)
		return;
	if ((c->s = dup_or_mark(t, text)))
		c->kind = TH_CELL_TEXT;
}

/* The formatted text (malloc'd); NULL, and the table marked, when out of memory. */
static char *vformat(th_table *t, const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0) {
		s = NULL;
		t->err = TH_ENOMEM;
	}
	return s;
}

void th_table_setf(th_table *t, size_t row, size_t col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = vformat(t, fmt, ap);
	va_end(ap);
	th_cell *c = slot(t, row, col);
	if (c && s) {
		c->kind = TH_CELL_TEXT;
		c->s = s;
	} else {
		free(s);
	}
}

static void set_num(th_table *t, size_t row, size_t col, th_cell_kind kind, int64_t v, int64_t den,
                    int scale)
{
	th_cell *c = slot(t, row, col);
	if (!c)
		return;
	c->kind = kind;
	c->v = v;
	c->den = den;
	c->scale = scale;
}

void th_table_set_int(th_table *t, size_t row, size_t col, int64_t v)
{
	set_num(t, row, col, TH_CELL_INT, v, 0, 0);
}

void th_table_set_dec(th_table *t, size_t row, size_t col, int64_t v, int scale)
{
	set_num(t, row, col, TH_CELL_DEC, v, 0, scale);
}

void th_table_set_ratio(th_table *t, size_t row, size_t col, int64_t num, int64_t den)
{
	set_num(t, row, col, TH_CELL_RATIO, num, den, 0);
}

void th_table_set_date(th_table *t, size_t row, size_t col, int32_t ymd)
{
	set_num(t, row, col, TH_CELL_DATE, ymd, 0, 0);
}

void th_table_set_bool(th_table *t, size_t row, size_t col, int v)
{
	set_num(t, row, col, TH_CELL_BOOL, v != 0, 0, 0);
}

void th_cell_of_value(th_cell *out, const th_column *c, const th_value *v)
{
	memset(out, 0, sizeof *out);
	if (v->null)
		return;
	out->v = v->i;
	switch (c->type) {
	case TH_T_INT: out->kind = TH_CELL_INT; return;
	case TH_T_DEC: out->kind = TH_CELL_DEC; out->scale = c->scale; return;
	case TH_T_DATE: out->kind = TH_CELL_DATE; return;
	case TH_T_BOOL: out->kind = TH_CELL_BOOL; out->v = v->i != 0; return;
	case TH_T_ENUM:
		if (v->i >= 0 && (size_t)v->i < c->n_values) {
			out->kind = TH_CELL_TEXT;
			out->s = c->values[v->i].code;
		} else {
			out->kind = TH_CELL_INT;     /* not a value of the list: its index */
		}
		return;
	case TH_T_TEXT:
		out->kind = TH_CELL_TEXT;
		out->s = v->s ? v->s : (char *)"";
		return;
	}
}

void th_table_set_value(th_table *t, size_t row, size_t col, const th_column *c, const th_value *v)
{
	th_cell x;
	th_cell_of_value(&x, c, v);
	if (x.kind == TH_CELL_TEXT)
		th_table_set(t, row, col, x.s);
	else if (x.kind == TH_CELL_NULL)
		slot(t, row, col);
	else
		set_num(t, row, col, x.kind, x.v, x.den, x.scale);
}

void th_table_add_title(th_table *t, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = vformat(t, fmt, ap);
	va_end(ap);
	char **n = s ? realloc(t->titles.v, (t->titles.n + 1) * sizeof *n) : NULL;
	if (!n) {
		free(s);
		t->err = TH_ENOMEM;
		return;
	}
	t->titles.v = n;
	t->titles.v[t->titles.n++] = s;
}

void th_table_add_note(th_table *t, const char *term, const char *text)
{
	char *tm = dup_or_mark(t, term), *tx = dup_or_mark(t, text ? text : "");
	struct note *n = (tx && (tm || !term)) ? realloc(t->notes, (t->n_notes + 1) * sizeof *n) : NULL;
	if (!n) {
		free(tm);
		free(tx);
		t->err = TH_ENOMEM;
		return;
	}
	t->notes = n;
	t->notes[t->n_notes].term = tm;
	t->notes[t->n_notes].text = tx;
	t->n_notes++;
}

void th_table_set_empty(th_table *t, const char *text)
{
	free(t->empty);
	t->empty = dup_or_mark(t, text);
}

size_t th_table_cols(const th_table *t) { return t->ncols; }
size_t th_table_rows(const th_table *t) { return t->nrows; }
th_head th_table_sheet_heads(const th_table *t) { return t->sheet; }
int th_table_is_record(const th_table *t) { return t->record; }
int th_table_error(const th_table *t) { return t->err; }
size_t th_table_n_titles(const th_table *t) { return t->titles.n; }
size_t th_table_n_notes(const th_table *t) { return t->n_notes; }
const char *th_table_empty(const th_table *t) { return t->empty; }

const char *th_table_title(const th_table *t, size_t col)
{
	return col < t->ncols && t->cols[col].title ? t->cols[col].title : "";
}

const char *th_table_key(const th_table *t, size_t col)
{
	return col < t->ncols && t->cols[col].key ? t->cols[col].key : th_table_title(t, col);
}

const char *th_table_label(const th_table *t, size_t col)
{
	return col < t->ncols && t->cols[col].label ? t->cols[col].label : th_table_title(t, col);
}

int th_table_numeric(const th_table *t, size_t col)
{
	return col < t->ncols && t->cols[col].numeric;
}

const th_cell *th_table_cell(const th_table *t, size_t row, size_t col)
{
	return row < t->nrows && col < t->ncols ? &t->cells[row * t->ncols + col] : NULL;
}

const char *th_table_get(const th_table *t, size_t row, size_t col)
{
	const th_cell *c = th_table_cell(t, row, col);
	return c && c->kind == TH_CELL_TEXT ? c->s : NULL;
}

const char *th_table_title_line(const th_table *t, size_t i)
{
	return i < t->titles.n ? t->titles.v[i] : NULL;
}

const char *th_table_note(const th_table *t, size_t i, const char **term)
{
	if (i >= t->n_notes)
		return NULL;
	if (term)
		*term = t->notes[i].term;
	return t->notes[i].text;
}

/* --- documents -------------------------------------------------------------- */
struct th_doc {
	th_table **tables;
	char **names;
	size_t n;
	char **keys, **values;
	size_t n_fields;
};

th_doc *th_doc_new(void) { return calloc(1, sizeof(th_doc)); }

void th_doc_destroy(th_doc **pd)
{
	if (!pd || !*pd)
		return;
	th_doc *d = *pd;
	for (size_t i = 0; i < d->n; i++) {
		th_table_destroy(&d->tables[i]);
		free(d->names[i]);
	}
	for (size_t i = 0; i < d->n_fields; i++) {
		free(d->keys[i]);
		free(d->values[i]);
	}
	free(d->tables);
	free(d->names);
	free(d->keys);
	free(d->values);
	free(d);
	*pd = NULL;
}

/* Appends a and b to the parallel arrays *va and *vb (n entries); takes both. */
static int pair_add(char ***va, char ***vb, size_t *n, char *a, char *b)
{
	char **na = NULL, **nb = NULL;
	if (!a || !b)
		goto fail;
	if (!(na = realloc(*va, (*n + 1) * sizeof *na)))
		goto fail;
	*va = na;
	if (!(nb = realloc(*vb, (*n + 1) * sizeof *nb)))
		goto fail;
	*vb = nb;
	(*va)[*n] = a;
	(*vb)[*n] = b;
	(*n)++;
	return 0;
fail:
	free(a);
	free(b);
	return TH_ENOMEM;
}

int th_doc_field(th_doc *d, const char *key, const char *value)
{
	return pair_add(&d->keys, &d->values, &d->n_fields, strdup(key), strdup(value ? value : ""));
}

int th_doc_add(th_doc *d, const char *name, th_table *t)
{
	char *nm = name ? strdup(name) : NULL;
	th_table **nt = NULL;
	char **nn = NULL;
	if (!t || (name && !nm))
		goto fail;
	if (!(nt = realloc(d->tables, (d->n + 1) * sizeof *nt)))
		goto fail;
	d->tables = nt;
	if (!(nn = realloc(d->names, (d->n + 1) * sizeof *nn)))
		goto fail;
	d->names = nn;
	d->tables[d->n] = t;
	d->names[d->n] = nm;
	d->n++;
	return 0;
fail:
	free(nm);
	th_table_destroy(&t);
	return TH_ENOMEM;
}

th_doc *th_doc_of(th_table *t)
{
	th_doc *d = th_doc_new();
	if (!d)
		th_table_destroy(&t);
	else if (th_doc_add(d, NULL, t) != 0)
		th_doc_destroy(&d);
	return d;
}

size_t th_doc_count(const th_doc *d) { return d->n; }
th_table *th_doc_table(const th_doc *d, size_t i) { return i < d->n ? d->tables[i] : NULL; }
const char *th_doc_name(const th_doc *d, size_t i) { return i < d->n ? d->names[i] : NULL; }
size_t th_doc_n_fields(const th_doc *d) { return d->n_fields; }

const char *th_doc_field_at(const th_doc *d, size_t i, const char **value)
{
	if (i >= d->n_fields)
		return NULL;
	if (value)
		*value = d->values[i];
	return d->keys[i];
}

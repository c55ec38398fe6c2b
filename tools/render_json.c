/* render_json.c -- a table as a JSON array of row objects, one per line
 * (th_render.h), through libjansson (common/th_json.h). */
#include "render_private.h"
#include "th_error.h"
#include "th_json.h"
#include "th_value.h"

#include <stdlib.h>
#include <string.h>

void th_json_string(FILE *f, const char *s)
{
	json_t *j = th_json_str(s ? s : "");
	if (j)
		th_json_print_inline(f, j);
	json_decref(j);
}

/* The number a machine-form text (th_text_is_number) stands for, exactly:
 * an integer, or a decimal with as many fraction digits as it has; NULL when
 * it does not fit in int64. */
static json_t *number_of(const char *s)
{
	int64_t v = 0;
	int scale = -1, neg = *s == '-';
	for (const char *p = s + neg; *p; p++) {
		if (*p == '.') {
			scale = 0;
			continue;
		}
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return NULL;
		v = v * 10 + (*p - '0');
		if (scale >= 0)
			scale++;
	}
	if (scale > 18)
		return NULL;
	return th_json_decimal(neg ? -v : v, scale < 0 ? 0 : scale);
}

/* A cell as a JSON value (a new reference; NULL when out of memory). */
static json_t *cell_json(const th_cell *c, int numeric)
{
	char buf[64];
	switch (c->kind) {
	case TH_CELL_NULL:
		return json_null();
	case TH_CELL_TEXT: {
		json_t *n = numeric && th_text_is_number(c->s) ? number_of(c->s) : NULL;
		return n ? n : th_json_str(c->s);
	}
	case TH_CELL_INT:
		return json_integer((json_int_t)c->v);
	case TH_CELL_DEC:
		return th_json_decimal(c->v, c->scale);
	case TH_CELL_RATIO:
		return c->den ? th_json_decimal(th_ratio_tenths(c->v, c->den), 1) : json_null();
	case TH_CELL_DATE:
		return th_json_str(th_cell_text(c, 0, buf));
	case TH_CELL_BOOL:
		/* issue #16: a JSON boolean would be json_boolean(c->v) */
		return th_json_str(th_cell_text(c, 0, buf));
	}
	return json_null();
}

int th_render_json(const th_table *t, FILE *f)
{
	size_t nc = th_table_cols(t);
	int rc = 0;
	fputs("[", f);
	for (size_t r = 0; r < th_table_rows(t) && !rc; r++) {
		json_t *row = json_object();
		for (size_t c = 0; c < nc && row && !rc; c++) {
			json_t *v = cell_json(th_table_cell(t, r, c), th_table_numeric(t, c));
			rc = v ? th_json_set(row, th_table_key(t, c), v) : TH_ENOMEM;
		}
		fputs(r ? ",\n " : "\n ", f);
		if (!row)
			rc = TH_ENOMEM;
		if (!rc)
			rc = th_json_print_inline(f, row);
		json_decref(row);
	}
	fputs("\n]\n", f);
	return rc;
}

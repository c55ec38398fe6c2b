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

/* Column c's key as a JSON string with its quotes (malloc'd); NULL when out of memory. */
static char *encoded_key(const th_table *t, size_t c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return NULL;
	th_json_string(m, th_table_key(t, c));
	if (fclose(m) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int th_render_json(const th_table *t, FILE *f)
{
	size_t nc = th_table_cols(t);
	int rc = 0;
	/* the keys are the same in every row: encoded once */
	char **keys = calloc(nc ? nc : 1, sizeof *keys);
	for (size_t c = 0; keys && c < nc && !rc; c++)
		if (!(keys[c] = encoded_key(t, c)))
			rc = TH_ENOMEM;
	if (!keys)
		rc = TH_ENOMEM;
	fputs("[", f);
	/* each row an object on its own line, keys in column order, every key and
	 * value encoded by jansson */
	for (size_t r = 0; r < th_table_rows(t) && !rc; r++) {
		fputs(r ? ",\n {" : "\n {", f);
		for (size_t c = 0; c < nc && !rc; c++) {
			json_t *v = cell_json(th_table_cell(t, r, c), th_table_numeric(t, c));
			fprintf(f, "%s%s: ", c ? ", " : "", keys[c]);
			rc = v ? th_json_print_inline(f, v) : TH_ENOMEM;
			json_decref(v);
		}
		fputc('}', f);
	}
	fputs("\n]\n", f);
	for (size_t c = 0; keys && c < nc; c++)
		free(keys[c]);
	free(keys);
	return rc;
}

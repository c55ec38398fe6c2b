/* render.c -- cell texts, CSV, and the dispatch of tables and documents to
 * the renderers (th_render.h). */
#include "render_private.h"
#include "th_error.h"
#include "th_value.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

int th_format_parse(const char *s)
{
	static const char *names[] = {"table", "csv", "json", "xlsx"};
	for (int i = 0; i < 4; i++)
		if (strcmp(s, names[i]) == 0)
			return i;
	return -1;
}

int64_t th_ratio_tenths(int64_t num, int64_t den)
{
	__int128 n = num, q = den;
	int neg = (n < 0) != (q < 0);
	if (n < 0)
		n = -n;
	if (q < 0)
		q = -q;
	__int128 t = (n * 2000 + q) / (2 * q);     /* tenths of a percent, half up */
	return (int64_t)(neg ? -t : t);
}

const char *th_cell_text(const th_cell *c, int people, char *buf)
{
	switch (c->kind) {
	case TH_CELL_NULL:
		return NULL;
	case TH_CELL_TEXT:
		return c->s;
	case TH_CELL_INT:
		return th_fmt_int(c->v, buf);
	case TH_CELL_DEC:
		return th_fmt_dec(c->v, c->scale, people, buf);
	case TH_CELL_RATIO: {
		if (c->den == 0)
			return "—";
		int64_t t = th_ratio_tenths(c->v, c->den);
		uint64_t a = t < 0 ? (uint64_t)0 - (uint64_t)t : (uint64_t)t;
		snprintf(buf, 64, "%s%" PRIu64 "%c%d", t < 0 ? "-" : "", a / 10, people ? ',' : '.',
		         (int)(a % 10));
		return buf;
	}
	case TH_CELL_DATE:
		return th_fmt_date((int32_t)c->v, !people, buf);
	case TH_CELL_BOOL:
		return people ? (c->v ? "có" : "không") : (c->v ? "true" : "false");
	}
	return NULL;
}

int th_text_is_number(const char *s)
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

/* --- csv ------------------------------------------------------------------ */
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

static void write_csv(const th_table *t, FILE *f)
{
	size_t nc = th_table_cols(t);
	int keys = th_table_sheet_heads(t) == TH_HEAD_KEY;
	char buf[64];
	for (size_t c = 0; c < nc; c++) {
		if (c)
			fputc(',', f);
		csv_field(f, keys ? th_table_key(t, c) : th_table_title(t, c));
	}
	fputs("\r\n", f);
	for (size_t r = 0; r < th_table_rows(t); r++) {
		for (size_t c = 0; c < nc; c++) {
			if (c)
				fputc(',', f);
			csv_field(f, th_cell_text(th_table_cell(t, r, c), 0, buf));
		}
		fputs("\r\n", f);
	}
}

/* --- dispatch --------------------------------------------------------------- */
static int finish(FILE *f, char *why, size_t cap)
{
	if (f && (fflush(f) != 0 || ferror(f))) {
		snprintf(why, cap, "write error: %s", strerror(errno));
		return TH_EIO;
	}
	return 0;
}

/* One table of a document (bom already written). */
static int one(const th_table *t, const th_render_opts *o, FILE *f, char *why, size_t cap)
{
	if (th_table_error(t)) {
		snprintf(why, cap, "out of memory while building the table");
		return TH_ENOMEM;
	}
	switch (o->fmt) {
	case TH_FMT_TABLE:
		return th_render_text(t, f);
	case TH_FMT_CSV:
		write_csv(t, f);
		return 0;
	case TH_FMT_JSON:
		return th_render_json(t, f);
	case TH_FMT_XLSX:
		return th_render_xlsx(t, o, why, cap);
	}
	snprintf(why, cap, "unknown output format");
	return TH_EINVAL;
}

int th_render_table(const th_table *t, const th_render_opts *o, FILE *f, char *why, size_t cap)
{
	if (o->fmt == TH_FMT_CSV && o->bom)
		fputs("\xEF\xBB\xBF", f);
	int rc = one(t, o, f, why, cap);
	return rc ? rc : o->fmt == TH_FMT_XLSX ? 0 : finish(f, why, cap);
}

int th_render_doc(const th_doc *d, const th_render_opts *o, FILE *f, char *why, size_t cap)
{
	size_t n = th_doc_count(d), nf = th_doc_n_fields(d);
	int rc = 0;
	if (o->fmt == TH_FMT_XLSX) {
		if (n != 1 || nf) {
			snprintf(why, cap, "xlsx holds one table; use --format csv");
			return TH_EINVAL;
		}
		return one(th_doc_table(d, 0), o, f, why, cap);
	}
	if (o->fmt == TH_FMT_JSON && (nf || n > 1)) {
		fputc('{', f);
		for (size_t i = 0; i < nf; i++) {
			const char *v, *k = th_doc_field_at(d, i, &v);
			if (i)
				fputs(", ", f);
			th_json_string(f, k);
			fputs(": ", f);
			th_json_string(f, v);
		}
		for (size_t i = 0; i < n && !rc; i++) {
			const char *name = th_doc_name(d, i);
			if (i || nf)
				fputs(", ", f);
			th_json_string(f, name ? name : "");
			fputs(": ", f);
			rc = one(th_doc_table(d, i), o, f, why, cap);
		}
		fputs("}\n", f);
		return rc ? rc : finish(f, why, cap);
	}
	if (o->fmt == TH_FMT_CSV && o->bom)
		fputs("\xEF\xBB\xBF", f);
	for (size_t i = 0; i < n && !rc; i++) {
		if (i)
			fputs(o->fmt == TH_FMT_CSV ? "\r\n" : "\n", f);   /* an empty record / line between */
		rc = one(th_doc_table(d, i), o, f, why, cap);
	}
	return rc ? rc : finish(f, why, cap);
}

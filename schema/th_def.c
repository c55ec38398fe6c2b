/* th_def.c -- appendix definitions: the model's look-ups, its destruction,
 * the default directory, and the small helpers the definition files share.
 * The file parser is th_def_parse.c (and th_def_resolve.c), sets th_defset.c;
 * the format is documented in schema/appendices/FORMAT.md. */
#include "th_def_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <unicase.h>
#include <uninorm.h>

const char *th_rollup_name(th_rollup_kind k)
{
	switch (k) {
	case TH_ROLL_NONE: return "none";
	case TH_ROLL_SUM: return "sum";
	case TH_ROLL_COUNT_BY: return "count_by";
	case TH_ROLL_COUNT_TRUE: return "count_true";
	case TH_ROLL_MIN: return "min";
	case TH_ROLL_MAX: return "max";
	}
	return "?";
}

/* ------------------------------------------------------------------ */
/* helpers shared by the definition files */

char *td_dupn(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

int td_title_eq(const char *a, const char *b)
{
	int r = 1;
	if (u8_casecmp((const uint8_t *)a, strlen(a), (const uint8_t *)b, strlen(b),
	               NULL, UNINORM_NFC, &r) != 0)
		return strcmp(a, b) == 0;
	return r == 0;
}

const char *td_type_name(th_type t)
{
	switch (t) {
	case TH_T_INT: return "integer";
	case TH_T_DEC: return "decimal";
	case TH_T_ENUM: return "enum";
	case TH_T_DATE: return "date";
	case TH_T_BOOL: return "bool";
	case TH_T_TEXT: return "text";
	}
	return "?";
}

long td_col_by_id(const th_def *d, const char *id)
{
	for (size_t i = 0; i < d->n_cols; i++)
		if (strcmp(d->cols[i].id, id) == 0)
			return (long)i;
	return -1;
}

long td_enum_by_code(const th_column *c, const char *code)
{
	for (size_t i = 0; i < c->n_values; i++)
		if (strcmp(c->values[i].code, code) == 0)
			return (long)i;
	return -1;
}

/* Grows *arr (element size sz) so it holds n + 1 elements. */
int td_grow(void **arr, size_t *cap, size_t n, size_t sz)
{
	if (n < *cap)
		return 0;
	size_t nc = *cap ? *cap * 2 : 8;
	void *q = realloc(*arr, nc * sz);
	if (!q)
		return -1;
	memset((char *)q + *cap * sz, 0, (nc - *cap) * sz);
	*arr = q;
	*cap = nc;
	return 0;
}

/* ------------------------------------------------------------------ */

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void th_def_destroy(th_def **dp)
{
	th_def *d;
	if (!dp || !(d = *dp))
		return;
	free(d->id);
	free(d->title);
	free_strv(d->kinds, d->n_kinds);
	free_strv(d->units, d->n_units);
	for (size_t i = 0; i < d->n_cols; i++) {
		th_column *c = &d->cols[i];
		free(c->id);
		free(c->title);
		for (size_t j = 0; j < c->n_values; j++) {
			free(c->values[j].code);
			free(c->values[j].title);
		}
		free(c->values);
	}
	free(d->cols);
	free(d->slot_kind);
	free(d->key_cols);
	for (size_t i = 0; i < d->n_ratios; i++) {
		th_ratio *q = &d->ratios[i];
		free(q->id);
		free(q->title);
		free(q->num);
		free(q->den);
		free(q->num_code);
		free(q->den_code);
	}
	free(d->ratios);
	for (size_t i = 0; i < d->n_rules; i++) {
		free(d->rules[i].id);
		free(d->rules[i].title);
		free(d->rules[i].left);
		free(d->rules[i].right);
	}
	free(d->rules);
	free(d->derive);
	free(d->file);
	free(d->source);
	free(d);
	*dp = NULL;
}

/* ------------------------------------------------------------------ */
/* look-ups */

long th_def_column(const th_def *d, const char *s)
{
	char *t = NULL, *nfc = NULL;
	size_t nl;
	long r = -1;
	if (!d || !s)
		return -1;
	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	if (!(t = td_dupn(s, n)))
		return -1;
	long c = td_col_by_id(d, t);
	if (c >= 0) {
		free(t);
		return c;
	}
	if (th_utf8_nfc(t, n, &nfc, &nl) == 0) {
		for (size_t i = 0; i < d->n_cols; i++)
			if (d->cols[i].title && td_title_eq(d->cols[i].title, nfc)) {
				r = (long)i;
				break;
			}
	}
	free(nfc);
	free(t);
	return r;
}

long th_def_enum(const th_column *c, const char *s)
{
	char *t = NULL, *nfc = NULL;
	size_t nl;
	long r = -1;
	if (!c || !s)
		return -1;
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		n--;
	if (!(t = td_dupn(s, n)))
		return -1;
	r = td_enum_by_code(c, t);
	if (r < 0 && th_utf8_nfc(t, n, &nfc, &nl) == 0) {
		for (size_t i = 0; i < c->n_values; i++)
			if (td_title_eq(c->values[i].title, nfc)) {
				r = (long)i;
				break;
			}
	}
	free(nfc);
	free(t);
	return r;
}

int th_def_requires_kind(const th_def *d, const char *kind)
{
	if (!d || !kind)
		return 0;
	for (size_t i = 0; i < d->n_kinds; i++)
		if (strcmp(d->kinds[i], kind) == 0)
			return 1;
	return 0;
}

int th_def_expects(const th_def *d, const char *kind, const char *code)
{
	if (!th_def_requires_kind(d, kind))
		return 0;
	if (d->n_units == 0)
		return 1;
	if (!code)
		return 0;
	for (size_t i = 0; i < d->n_units; i++)
		if (strcmp(d->units[i], code) == 0)
			return 1;
	return 0;
}

/* Appends s to buf (length *len, capacity cap); on overflow ends the text in
 * "..." and returns 0 (nothing more is appended). */
static int subm_append(char *buf, size_t cap, size_t *len, const char *s)
{
	size_t n = strlen(s);
	if (*len + n < cap) {
		memcpy(buf + *len, s, n + 1);
		*len += n;
		return 1;
	}
	/* does not fit: fill the buffer, then mark the cut with "..." */
	size_t room = cap - 1 - *len;
	memcpy(buf + *len, s, room);
	*len = cap - 1;
	buf[*len] = '\0';
	size_t dots = *len < 3 ? *len : 3;
	memcpy(buf + *len - dots, "...", dots);
	return 0;
}

void th_def_submitters_text(const th_def *d, char *buf, size_t cap)
{
	if (!buf || cap == 0)
		return;
	buf[0] = '\0';
	size_t len = 0;
	if (!d || (d->n_kinds == 0 && d->n_units == 0)) {
		subm_append(buf, cap, &len, "nobody");
		return;
	}
	char **names = d->n_units > 0 ? d->units : d->kinds;
	size_t n = d->n_units > 0 ? d->n_units : d->n_kinds;
	if (d->n_units > 0 && !subm_append(buf, cap, &len, "only "))
		return;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && !subm_append(buf, cap, &len, ", "))
			return;
		if (!subm_append(buf, cap, &len, names[i] ? names[i] : "?"))
			return;
	}
}

const char *th_def_default_dir(void)
{
	const char *e = getenv("TONGHOP_DEFS");
	if (e && *e)
		return e;
	struct stat st;
	if (stat(TH_INSTALLED_APPENDICES, &st) == 0 && S_ISDIR(st.st_mode) &&
	    stat(TH_SOURCE_APPENDICES, &st) != 0)
		return TH_INSTALLED_APPENDICES;
	return TH_SOURCE_APPENDICES;
}

/* th_def_parse.c -- the definition file parser (th_def.h; the format is
 * documented in schema/appendices/FORMAT.md).
 *
 * Parsing is line based: physical lines are joined into logical "key = value"
 * lines (continuations start with a blank), each logical line is applied to
 * the current section, and references between sections (row key, ratio terms,
 * rule terms, derive) are resolved once the whole file has been read
 * (th_def_resolve.c), so sections may come in any order and every problem is
 * reported at once.
 */
#include "th_def_private.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const td_dv_keys[DV_N] = {
	"status", "deadline", "done",
	"done_on_time", "done_late", "in_progress", "overdue", "not_started", "no_deadline",
};

static int rollup_parse(const char *s, th_rollup_kind *out)
{
	static const char *names[] = { "none", "sum", "count_by", "count_true", "min", "max" };
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (strcmp(s, names[i]) == 0) {
			*out = (th_rollup_kind)i;
			return 1;
		}
	return 0;
}

/* Own table (same names as th_type_name) so the parser has no hidden order
 * dependency on the value module. */
static th_type type_parse(const char *s)
{
	static const struct { const char *n; th_type t; } tab[] = {
		{ "integer", TH_T_INT }, { "decimal", TH_T_DEC }, { "enum", TH_T_ENUM },
		{ "date", TH_T_DATE }, { "bool", TH_T_BOOL }, { "text", TH_T_TEXT },
	};
	for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++)
		if (strcmp(s, tab[i].n) == 0)
			return tab[i].t;
	return (th_type)0;
}

static int rollup_fits(th_rollup_kind k, th_type t)
{
	switch (k) {
	case TH_ROLL_NONE: return 1;
	case TH_ROLL_SUM: return t == TH_T_INT || t == TH_T_DEC;
	case TH_ROLL_COUNT_BY: return t == TH_T_ENUM;
	case TH_ROLL_COUNT_TRUE: return t == TH_T_BOOL;
	case TH_ROLL_MIN:
	case TH_ROLL_MAX: return t == TH_T_INT || t == TH_T_DEC || t == TH_T_DATE;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* lexical helpers */

char *td_trim(char *s)
{
	while (td_is_blank(*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && (td_is_blank(s[n - 1]) || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

int td_is_snake_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > DEF_MAX_ID || !(s[0] >= 'a' && s[0] <= 'z'))
		return 0;
	for (size_t i = 1; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
			return 0;
	}
	return 1;
}

static int is_appendix_id(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 16 || !(s[0] >= 'A' && s[0] <= 'Z'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

static int is_code(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > DEF_MAX_ID)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return 0;
	}
	return 1;
}

/* Unsigned decimal number in [lo, hi]; 1 on success. */
static int parse_u(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	unsigned long v = 0;
	if (!*s)
		return 0;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		if (v > (hi - (unsigned long)(*s - '0')) / 10)
			return 0;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	if (v < lo)
		return 0;
	*out = v;
	return 1;
}

/* Machine-form integer "-123"; 1 on success. */
static int parse_i64(const char *s, int64_t *out)
{
	int neg = 0;
	uint64_t v = 0, lim;
	if (*s == '-') {
		neg = 1;
		s++;
	}
	if (!*s)
		return 0;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return 0;
		unsigned d = (unsigned)(*s - '0');
		if (v > (lim - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	*out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
	return 1;
}

/* Machine-form decimal "-12.5" with at most scale fractional digits. */
static int parse_scaled(const char *s, int scale, int64_t *out)
{
	char buf[64];
	const char *dot = strchr(s, '.');
	size_t ip = dot ? (size_t)(dot - s) : strlen(s);
	size_t fp = dot ? strlen(dot + 1) : 0;
	if ((int)fp > scale || (dot && fp == 0) || ip + (size_t)scale + 1 >= sizeof buf)
		return 0;
	if (ip == 0 || (ip == 1 && s[0] == '-'))
		return 0;
	memcpy(buf, s, ip);
	if (dot)
		memcpy(buf + ip, dot + 1, fp);
	for (size_t i = fp; i < (size_t)scale; i++)
		buf[ip + i] = '0';
	buf[ip + (size_t)scale] = '\0';
	return parse_i64(buf, out);
}

static int leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* ISO date yyyy-mm-dd to yyyymmdd (years 1900..2999). */
static int parse_iso_date(const char *s, int64_t *out)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return 0;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return 0;
	int y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
	int m = (s[5] - '0') * 10 + (s[6] - '0');
	int d = (s[8] - '0') * 10 + (s[9] - '0');
	if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1)
		return 0;
	if (d > mdays[m - 1] + (m == 2 && leap(y)))
		return 0;
	*out = (int64_t)y * 10000 + m * 100 + d;
	return 1;
}

/* ------------------------------------------------------------------ */
/* parser state */

void td_perr(struct parser *p, int code, long line, const char *col, const char *fmt, ...)
{
	va_list ap;
	p->nerr++;
	if (code == TH_ENOMEM)
		p->oom = 1;
	va_start(ap, fmt);
	th_diag_vadd(p->diag, TH_SEV_ERROR, code, p->name, line, 0, col, fmt, ap);
	va_end(ap);
}

void td_oom(struct parser *p, long line)
{
	td_perr(p, TH_ENOMEM, line, NULL, "out of memory");
}

/* Validates and NFC-normalises a Vietnamese title into *out. */
static int set_title(struct parser *p, long line, const char *what, const char *v, char **out)
{
	size_t n = strlen(v), outlen = 0;
	char *nfc = NULL;
	if (n == 0) {
		td_perr(p, TH_EMISSING, line, p->secid, "%s is empty", what);
		return -1;
	}
	if (n > 4000) {
		td_perr(p, TH_ETOOBIG, line, p->secid, "%s is longer than 4000 bytes", what);
		return -1;
	}
	if (!th_utf8_valid(v, n)) {
		td_perr(p, TH_EUTF8, line, p->secid, "%s is not valid UTF-8 (save the file as UTF-8)", what);
		return -1;
	}
	int rc = th_utf8_nfc(v, n, &nfc, &outlen);
	if (rc != 0) {
		if (rc == TH_ENOMEM)
			td_oom(p, line);
		else
			td_perr(p, TH_EUTF8, line, p->secid, "%s cannot be normalised to NFC: %s",
			     what, th_strerror(rc));
		return -1;
	}
	free(*out);
	*out = nfc;
	return 0;
}

/* Splits a blank-separated list into a new string vector. */
int td_split_words(struct parser *p, long line, const char *v, int (*ok)(const char *),
                       const char *what, char ***out, size_t *n)
{
	char *copy = td_dupn(v, strlen(v)), *save = NULL, *w;
	char **vec = NULL;
	size_t cnt = 0, cap = 0;
	int bad = 0;
	if (!copy) {
		td_oom(p, line);
		return -1;
	}
	for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (!ok(w)) {
			td_perr(p, TH_ESYNTAX, line, p->secid, "'%s' is not a valid %s", w, what);
			bad = 1;
			continue;
		}
		int dup = 0;
		for (size_t i = 0; i < cnt; i++)
			if (strcmp(vec[i], w) == 0)
				dup = 1;
		if (dup) {
			td_perr(p, TH_EDUPKEY, line, p->secid, "%s '%s' is listed twice", what, w);
			bad = 1;
			continue;
		}
		if (cnt >= DEF_MAX_ITEMS) {
			td_perr(p, TH_ETOOBIG, line, p->secid, "more than %d entries", DEF_MAX_ITEMS);
			bad = 1;
			break;
		}
		char *s = td_dupn(w, strlen(w));
		if (!s || td_grow((void **)&vec, &cap, cnt, sizeof *vec) != 0) {
			free(s);
			td_oom(p, line);
			bad = 1;
			break;
		}
		vec[cnt++] = s;
	}
	free(copy);
	if (bad) {
		for (size_t i = 0; i < cnt; i++)
			free(vec[i]);
		free(vec);
		return -1;
	}
	for (size_t i = 0; i < *n; i++)
		free((*out)[i]);
	free(*out);
	*out = vec;
	*n = cnt;
	return 0;
}

static int keep_raw(struct parser *p, struct raw *r, const char *v, long line)
{
	char *s = td_dupn(v, strlen(v));
	if (!s) {
		td_oom(p, line);
		return -1;
	}
	free(r->s);
	r->s = s;
	r->line = line;
	return 0;
}

/* Marks key bit `bit` as seen in *seen; reports a repeated key. */
static int once(struct parser *p, unsigned *seen, unsigned bit, const char *key, long line)
{
	if (*seen & (1u << bit)) {
		td_perr(p, TH_EDUPKEY, line, p->secid, "'%s' is given twice in this section", key);
		return 0;
	}
	*seen |= 1u << bit;
	return 1;
}

/* ------------------------------------------------------------------ */
/* sections */

static void kv_appendix(struct parser *p, const char *k, const char *v, long line)
{
	th_def *d = p->d;
	unsigned long u;
	if (strcmp(k, "id") == 0) {
		if (!once(p, &p->seen, 0, k, line))
			return;
		if (!is_appendix_id(v)) {
			td_perr(p, TH_ESYNTAX, line, p->secid,
			     "id '%s' must be upper-case letters and digits, e.g. PL1", v);
			return;
		}
		free(d->id);
		if (!(d->id = td_dupn(v, strlen(v))))
			td_oom(p, line);
	} else if (strcmp(k, "version") == 0) {
		if (!once(p, &p->seen, 1, k, line))
			return;
		if (!parse_u(v, 1, 1000000, &u)) {
			td_perr(p, TH_ESYNTAX, line, p->secid,
			     "version '%s' must be a whole number from 1 to 1000000", v);
			return;
		}
		d->version = (uint32_t)u;
	} else if (strcmp(k, "title") == 0) {
		if (once(p, &p->seen, 2, k, line))
			set_title(p, line, "title", v, &d->title);
	} else if (strcmp(k, "submitters") == 0) {
		if (once(p, &p->seen, 3, k, line))
			td_split_words(p, line, v, is_code, "unit kind", &d->kinds, &d->n_kinds);
	} else if (strcmp(k, "submitter_units") == 0) {
		if (once(p, &p->seen, 4, k, line))
			td_split_words(p, line, v, is_code, "unit code", &d->units, &d->n_units);
	} else if (strcmp(k, "key") == 0) {
		if (once(p, &p->seen, 5, k, line))
			keep_raw(p, &p->key, v, line);
	} else if (strcmp(k, "max_rows") == 0) {
		if (!once(p, &p->seen, 6, k, line))
			return;
		if (!parse_u(v, 1, DEF_MAX_ROWS, &u)) {
			td_perr(p, TH_ESYNTAX, line, p->secid,
			     "max_rows '%s' must be a whole number from 1 to %u", v, DEF_MAX_ROWS);
			return;
		}
		d->max_rows = (uint32_t)u;
	} else {
		td_perr(p, TH_ESYNTAX, line, p->secid,
		     "unknown key '%s' (expected id, version, title, submitters, "
		     "submitter_units, key, max_rows)", k);
	}
}

static void kv_enum_value(struct parser *p, th_column *c, const char *v, long line)
{
	const char *bar = strchr(v, '|');
	char *code = NULL, *title = NULL, *ctitle = NULL;
	if (!bar) {
		td_perr(p, TH_ESYNTAX, line, p->secid, "expected 'value = code | Vietnamese label'");
		return;
	}
	code = td_dupn(v, (size_t)(bar - v));
	ctitle = td_dupn(bar + 1, strlen(bar + 1));
	if (!code || !ctitle) {
		td_oom(p, line);
		goto out;
	}
	char *tc = td_trim(code), *tt = td_trim(ctitle);
	int bad = 0;
	if (!td_is_snake_id(tc)) {
		td_perr(p, TH_ESYNTAX, line, p->secid,
		     "enum code '%s' must be snake_case (a-z, 0-9, _; a letter first)", tc);
		bad = 1;
	}
	if (set_title(p, line, "enum label", tt, &title) != 0)
		bad = 1;
	for (size_t i = 0; !bad && i < c->n_values; i++) {
		if (strcmp(c->values[i].code, tc) == 0) {
			td_perr(p, TH_EDUPKEY, line, p->secid, "enum code '%s' is listed twice", tc);
			bad = 1;
		} else if (td_title_eq(c->values[i].title, title)) {
			td_perr(p, TH_EDUPKEY, line, p->secid, "enum label '%s' is listed twice", title);
			bad = 1;
		}
	}
	if (bad)
		goto out;
	if (c->n_values >= DEF_MAX_VALUES) {
		td_perr(p, TH_ETOOBIG, line, p->secid, "more than %d enum values", DEF_MAX_VALUES);
		goto out;
	}
	th_enum_value *nv = realloc(c->values, (c->n_values + 1) * sizeof *nv);
	char *cc = td_dupn(tc, strlen(tc));
	if (!nv || !cc) {
		if (nv)
			c->values = nv;
		free(cc);
		td_oom(p, line);
		goto out;
	}
	c->values = nv;
	nv[c->n_values].code = cc;
	nv[c->n_values].title = title;
	title = NULL;
	c->n_values++;
out:
	free(code);
	free(ctitle);
	free(title);
}

static void kv_column(struct parser *p, const char *k, const char *v, long line)
{
	th_column *c = &p->d->cols[p->d->n_cols - 1];
	struct colaux *a = &p->caux[p->d->n_cols - 1];
	unsigned long u;
	if (strcmp(k, "title") == 0) {
		if (once(p, &a->seen, 0, k, line))
			set_title(p, line, "title", v, &c->title);
	} else if (strcmp(k, "type") == 0) {
		if (!once(p, &a->seen, 1, k, line))
			return;
		a->type_line = line;
		c->type = type_parse(v);
		if (!c->type) {
			a->bad_type = 1;
			td_perr(p, TH_ESYNTAX, line, p->secid,
			     "unknown type '%s' (expected integer, decimal, enum, date, bool, text)", v);
		}
	} else if (strcmp(k, "rollup") == 0) {
		if (!once(p, &a->seen, 2, k, line))
			return;
		a->rollup_line = line;
		if (!rollup_parse(v, &c->rollup)) {
			a->bad_type = 1;
			td_perr(p, TH_ESYNTAX, line, p->secid,
			     "unknown rollup '%s' (expected sum, count_by, count_true, min, max, none)", v);
		}
	} else if (strcmp(k, "required") == 0) {
		if (!once(p, &a->seen, 3, k, line))
			return;
		if (strcmp(v, "yes") == 0)
			c->required = 1;
		else if (strcmp(v, "no") == 0)
			c->required = 0;
		else
			td_perr(p, TH_ESYNTAX, line, p->secid, "required must be yes or no, not '%s'", v);
	} else if (strcmp(k, "min") == 0) {
		if (once(p, &a->seen, 4, k, line))
			keep_raw(p, &a->min, v, line);
	} else if (strcmp(k, "max") == 0) {
		if (once(p, &a->seen, 5, k, line))
			keep_raw(p, &a->max, v, line);
	} else if (strcmp(k, "scale") == 0) {
		if (!once(p, &a->seen, 6, k, line))
			return;
		a->scale_line = line;
		if (!parse_u(v, 0, 9, &u)) {
			td_perr(p, TH_ESYNTAX, line, p->secid, "scale '%s' must be 0 to 9", v);
			return;
		}
		a->has_scale = 1;
		c->scale = (int)u;
	} else if (strcmp(k, "max_len") == 0) {
		if (!once(p, &a->seen, 7, k, line))
			return;
		a->maxlen_line = line;
		if (!parse_u(v, 1, DEF_MAX_LEN, &u)) {
			td_perr(p, TH_ESYNTAX, line, p->secid, "max_len '%s' must be 1 to %u", v, DEF_MAX_LEN);
			return;
		}
		a->has_maxlen = 1;
		c->max_len = (uint32_t)u;
	} else if (strcmp(k, "value") == 0) {
		if (!a->value_line)
			a->value_line = line;
		kv_enum_value(p, c, v, line);
	} else {
		td_perr(p, TH_ESYNTAX, line, p->secid,
		     "unknown key '%s' (expected title, type, rollup, required, min, max, "
		     "scale, max_len, value)", k);
	}
}

static int parse_bound(struct parser *p, const th_column *c, const struct raw *r, int64_t *out)
{
	int ok = 0;
	const char *form = "";
	switch (c->type) {
	case TH_T_INT: ok = parse_i64(r->s, out); form = "a whole number like -5 or 100"; break;
	case TH_T_DEC: ok = parse_scaled(r->s, c->scale, out);
		form = "a number like 12.5 with at most 'scale' digits after the point"; break;
	case TH_T_DATE: ok = parse_iso_date(r->s, out); form = "a date yyyy-mm-dd"; break;
	default:
		td_perr(p, TH_ETYPE, r->line, p->secid, "min and max apply only to integer, decimal "
		     "and date columns, not %s", td_type_name(c->type));
		return -1;
	}
	if (!ok) {
		td_perr(p, TH_ESYNTAX, r->line, p->secid, "'%s' is not %s", r->s, form);
		return -1;
	}
	return 0;
}

/* Checks a column once its section is complete. */
static void finish_column(struct parser *p)
{
	th_column *c = &p->d->cols[p->d->n_cols - 1];
	struct colaux *a = &p->caux[p->d->n_cols - 1];
	if (!(a->seen & 1u))
		td_perr(p, TH_EMISSING, a->line, p->secid, "missing 'title'");
	if (!(a->seen & 2u))
		td_perr(p, TH_EMISSING, a->line, p->secid, "missing 'type'");
	if (!(a->seen & 4u))
		td_perr(p, TH_EMISSING, a->line, p->secid,
		     "missing 'rollup' (sum, count_by, count_true, min, max or none)");
	if (!c->type || a->bad_type || !(a->seen & 4u))
		goto bounds;
	if (!rollup_fits(c->rollup, c->type))
		td_perr(p, TH_ETYPE, a->rollup_line, p->secid,
		     "rollup %s does not fit type %s (sum: integer, decimal; count_by: enum; "
		     "count_true: bool; min, max: integer, decimal, date; none: any)",
		     th_rollup_name(c->rollup), td_type_name(c->type));
bounds:
	if (c->type == TH_T_DEC && !a->has_scale && !(a->seen & (1u << 6)))
		td_perr(p, TH_EMISSING, a->type_line, p->secid, "decimal column needs 'scale'");
	if (c->type && c->type != TH_T_DEC && (a->seen & (1u << 6)))
		td_perr(p, TH_ETYPE, a->scale_line, p->secid, "scale applies only to decimal columns");
	if (c->type && c->type != TH_T_TEXT && (a->seen & (1u << 7)))
		td_perr(p, TH_ETYPE, a->maxlen_line, p->secid, "max_len applies only to text columns");
	if (!a->has_maxlen)
		c->max_len = 2000;
	if (c->type == TH_T_ENUM && c->n_values == 0 && !a->value_line)
		td_perr(p, TH_EMISSING, a->type_line, p->secid,
		     "enum column has no values (add lines 'value = code | label')");
	if (c->type && c->type != TH_T_ENUM && a->value_line)
		td_perr(p, TH_ETYPE, a->value_line, p->secid, "'value' lines apply only to enum columns");
	if (c->type && (c->type != TH_T_DEC || a->has_scale)) {
		if (a->min.s && parse_bound(p, c, &a->min, &c->min) == 0)
			c->has_min = 1;
		if (a->max.s && parse_bound(p, c, &a->max, &c->max) == 0)
			c->has_max = 1;
		if (c->has_min && c->has_max && c->min > c->max)
			td_perr(p, TH_ERANGE, a->max.line, p->secid, "max %s is below min %s",
			     a->max.s, a->min.s);
	}
}

static void kv_item(struct parser *p, struct itemaux *a, char **title, const char *k,
                    const char *v, long line, int is_rule)
{
	if (strcmp(k, "title") == 0) {
		if (once(p, &a->seen, 0, k, line))
			set_title(p, line, "title", v, title);
	} else if (!is_rule && strcmp(k, "num") == 0) {
		if (once(p, &a->seen, 1, k, line))
			keep_raw(p, &a->a, v, line);
	} else if (!is_rule && strcmp(k, "den") == 0) {
		if (once(p, &a->seen, 2, k, line))
			keep_raw(p, &a->b, v, line);
	} else if (is_rule && strcmp(k, "check") == 0) {
		if (once(p, &a->seen, 1, k, line))
			keep_raw(p, &a->a, v, line);
	} else {
		td_perr(p, TH_ESYNTAX, line, p->secid, "unknown key '%s' (expected %s)", k,
		     is_rule ? "title, check" : "title, num, den");
	}
}

static void kv_derive(struct parser *p, const char *k, const char *v, long line)
{
	for (int i = 0; i < DV_N; i++)
		if (strcmp(k, td_dv_keys[i]) == 0) {
			if (once(p, &p->seen, (unsigned)i, k, line))
				keep_raw(p, &p->dv[i], v, line);
			return;
		}
	td_perr(p, TH_ESYNTAX, line, p->secid, "unknown key '%s' (expected status, deadline, done, "
	     "done_on_time, done_late, in_progress, overdue, not_started, no_deadline)", k);
}

void td_end_section(struct parser *p)
{
	if (p->sec == SEC_COLUMN)
		finish_column(p);
	p->sec = SEC_NONE;
	p->secid = NULL;
}

static void start_section(struct parser *p, char *hdr, long line)
{
	char *name = hdr, *id = hdr;
	th_def *d = p->d;
	td_end_section(p);
	while (*id && !td_is_blank(*id))
		id++;
	if (*id)
		*id++ = '\0';
	id = td_trim(id);
	p->sec = SEC_SKIP;
	if (strcmp(name, "appendix") == 0 || strcmp(name, "derive") == 0) {
		int app = name[0] == 'a';
		p->secid = app ? "appendix" : "derive";
		if (*id) {
			td_perr(p, TH_ESYNTAX, line, p->secid, "[%s] takes no id", name);
			return;
		}
		if (app ? p->have_appendix : p->have_derive) {
			td_perr(p, TH_EDUPKEY, line, p->secid, "a second [%s] section (first at line %ld)",
			     name, app ? p->appendix_line : p->derive_line);
			return;
		}
		if (app) {
			p->have_appendix = 1;
			p->appendix_line = line;
		} else {
			p->have_derive = 1;
			p->derive_line = line;
		}
		p->seen = 0;
		p->sec = app ? SEC_APPENDIX : SEC_DERIVE;
		return;
	}
	if (strcmp(name, "column") && strcmp(name, "ratio") && strcmp(name, "rule")) {
		td_perr(p, TH_ESYNTAX, line, NULL, "unknown section [%s%s%s] (expected appendix, "
		     "column, ratio, rule, derive)", name, *id ? " " : "", id);
		return;
	}
	snprintf(p->secbuf, sizeof p->secbuf, "%.*s", DEF_MAX_ID, *id ? id : name);
	p->secid = p->secbuf;
	if (!td_is_snake_id(id)) {
		td_perr(p, TH_ESYNTAX, line, p->secid, "[%s %s]: the id must be snake_case "
		     "(a-z, 0-9, _; a letter first; at most %d bytes)", name, id, DEF_MAX_ID);
		return;
	}
	char *idc = td_dupn(id, strlen(id));
	if (!idc) {
		td_oom(p, line);
		return;
	}
	if (name[1] == 'o') {          /* column */
		for (size_t i = 0; i < d->n_cols; i++)
			if (strcmp(d->cols[i].id, id) == 0)
				td_perr(p, TH_EDUPKEY, line, p->secid,
				     "duplicate column id '%s' (first defined at line %ld)", id,
				     d->cols[i].line);
		if (d->n_cols >= DEF_MAX_COLS) {
			free(idc);
			td_perr(p, TH_ETOOBIG, line, p->secid, "more than %d columns", DEF_MAX_COLS);
			return;
		}
		if (td_grow((void **)&d->cols, &p->cols_cap, d->n_cols, sizeof *d->cols) != 0 ||
		    td_grow((void **)&p->caux, &p->caux_cap, d->n_cols, sizeof *p->caux) != 0) {
			free(idc);
			td_oom(p, line);
			return;
		}
		th_column *c = &d->cols[d->n_cols];
		memset(c, 0, sizeof *c);
		memset(&p->caux[d->n_cols], 0, sizeof *p->caux);
		c->id = idc;
		c->line = line;
		p->caux[d->n_cols].line = line;
		d->n_cols++;
		p->sec = SEC_COLUMN;
	} else if (name[1] == 'a') {   /* ratio */
		for (size_t i = 0; i < d->n_ratios; i++)
			if (strcmp(d->ratios[i].id, id) == 0)
				td_perr(p, TH_EDUPKEY, line, p->secid,
				     "duplicate ratio id '%s' (first defined at line %ld)", id,
				     d->ratios[i].line);
		if (d->n_ratios >= DEF_MAX_ITEMS) {
			free(idc);
			td_perr(p, TH_ETOOBIG, line, p->secid, "too many ratios");
			return;
		}
		size_t acap = p->ratios_cap;
		if (td_grow((void **)&d->ratios, &p->ratios_cap, d->n_ratios, sizeof *d->ratios) != 0 ||
		    td_grow((void **)&p->raux, &acap, d->n_ratios, sizeof *p->raux) != 0) {
			free(idc);
			td_oom(p, line);
			return;
		}
		memset(&d->ratios[d->n_ratios], 0, sizeof *d->ratios);
		memset(&p->raux[d->n_ratios], 0, sizeof *p->raux);
		d->ratios[d->n_ratios].id = idc;
		d->ratios[d->n_ratios].line = line;
		d->n_ratios++;
		p->sec = SEC_RATIO;
	} else {                       /* rule */
		for (size_t i = 0; i < d->n_rules; i++)
			if (strcmp(d->rules[i].id, id) == 0)
				td_perr(p, TH_EDUPKEY, line, p->secid,
				     "duplicate rule id '%s' (first defined at line %ld)", id,
				     d->rules[i].line);
		if (d->n_rules >= DEF_MAX_ITEMS) {
			free(idc);
			td_perr(p, TH_ETOOBIG, line, p->secid, "too many rules");
			return;
		}
		size_t acap = p->rules_cap;
		if (td_grow((void **)&d->rules, &p->rules_cap, d->n_rules, sizeof *d->rules) != 0 ||
		    td_grow((void **)&p->uaux, &acap, d->n_rules, sizeof *p->uaux) != 0) {
			free(idc);
			td_oom(p, line);
			return;
		}
		memset(&d->rules[d->n_rules], 0, sizeof *d->rules);
		memset(&p->uaux[d->n_rules], 0, sizeof *p->uaux);
		d->rules[d->n_rules].id = idc;
		d->rules[d->n_rules].line = line;
		d->n_rules++;
		p->sec = SEC_RULE;
	}
}

/* One logical line "key = value" (already joined). */
static void apply_kv(struct parser *p, char *text, long line)
{
	char *eq = strchr(text, '=');
	if (!eq) {
		td_perr(p, TH_ESYNTAX, line, p->secid, "expected 'key = value' or '[section]'");
		return;
	}
	*eq = '\0';
	char *k = td_trim(text), *v = td_trim(eq + 1);
	if (!td_is_snake_id(k)) {
		td_perr(p, TH_ESYNTAX, line, p->secid, "'%s' is not a valid key", k);
		return;
	}
	switch (p->sec) {
	case SEC_NONE:
		td_perr(p, TH_ESYNTAX, line, NULL, "'%s' outside a section (start with [appendix])", k);
		break;
	case SEC_APPENDIX: kv_appendix(p, k, v, line); break;
	case SEC_COLUMN: kv_column(p, k, v, line); break;
	case SEC_RATIO:
		kv_item(p, &p->raux[p->d->n_ratios - 1], &p->d->ratios[p->d->n_ratios - 1].title,
		        k, v, line, 0);
		break;
	case SEC_RULE:
		kv_item(p, &p->uaux[p->d->n_rules - 1], &p->d->rules[p->d->n_rules - 1].title,
		        k, v, line, 1);
		break;
	case SEC_DERIVE: kv_derive(p, k, v, line); break;
	case SEC_SKIP: break;
	}
}

/* ------------------------------------------------------------------ */

static void parser_free(struct parser *p)
{
	if (p->d)
		for (size_t i = 0; i < p->d->n_cols && p->caux; i++) {
			free(p->caux[i].min.s);
			free(p->caux[i].max.s);
		}
	for (size_t i = 0; p->d && i < p->d->n_ratios; i++) {
		free(p->raux[i].a.s);
		free(p->raux[i].b.s);
	}
	for (size_t i = 0; p->d && i < p->d->n_rules; i++)
		free(p->uaux[i].a.s);
	free(p->caux);
	free(p->raux);
	free(p->uaux);
	free(p->key.s);
	for (int i = 0; i < DV_N; i++)
		free(p->dv[i].s);
}

int th_def_parse(const char *text, size_t len, const char *name, th_def **out, th_diag *diag)
{
	struct parser p;
	char *buf = NULL;        /* current logical line */
	size_t blen = 0, bcap = 0;
	long bline = 0;
	int have_kv = 0, rc;
	long lineno = 0;

	if (!text || !out)
		return TH_EINVAL;
	memset(&p, 0, sizeof p);
	p.name = name ? name : "(definition)";
	p.diag = diag;
	if (len > DEF_MAX_FILE) {
		th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, p.name, 0, 0, NULL,
		            "definition is larger than %u bytes", DEF_MAX_FILE);
		return TH_ETOOBIG;
	}
	p.d = calloc(1, sizeof *p.d);
	if (!p.d)
		return TH_ENOMEM;
	p.d->file = td_dupn(p.name, strlen(p.name));
	p.d->source = td_dupn(text, len);
	p.d->source_len = len;
	if (!p.d->file || !p.d->source) {
		rc = TH_ENOMEM;
		goto fail;
	}

	size_t pos = 0;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		pos = 3;
	while (pos <= len && !p.oom) {
		if (pos == len && (len == 0 || text[len - 1] == '\n'))
			break;
		const char *ls = text + pos;
		const char *nl = memchr(ls, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - ls) : len - pos;
		pos += n + 1;
		lineno++;
		if (n > 0 && ls[n - 1] == '\r')
			n--;
		if (!th_utf8_valid(ls, n)) {
			if (have_kv && ls[0] != ' ' && ls[0] != '\t') {
				apply_kv(&p, buf, bline);
				have_kv = 0;
			}
			td_perr(&p, TH_EUTF8, lineno, p.secid, "line is not valid UTF-8 text (save the "
			     "file as UTF-8; no control characters)");
			continue;
		}
		size_t i = 0;
		while (i < n && td_is_blank(ls[i]))
			i++;
		int blank = i == n, comment = !blank && ls[i] == '#';
		if (blank || comment)
			continue;       /* neither ends a value being continued */
		if (i > 0) {            /* continuation */
			if (!have_kv) {
				td_perr(&p, TH_ESYNTAX, lineno, p.secid, "indented line continues nothing "
				     "(only a 'key = value' line can be continued)");
				continue;
			}
			if (blen + 1 + (n - i) + 1 > bcap) {
				size_t nc = (blen + 1 + (n - i) + 1) * 2;
				char *q = realloc(buf, nc);
				if (!q) {
					td_oom(&p, lineno);
					break;
				}
				buf = q;
				bcap = nc;
			}
			buf[blen++] = ' ';
			memcpy(buf + blen, ls + i, n - i);
			blen += n - i;
			buf[blen] = '\0';
			continue;
		}
		if (have_kv) {
			apply_kv(&p, buf, bline);
			have_kv = 0;
		}
		if (ls[0] == '[') {
			size_t e = n;
			while (e > 0 && td_is_blank(ls[e - 1]))
				e--;
			if (e < 2 || ls[e - 1] != ']') {
				td_perr(&p, TH_ESYNTAX, lineno, p.secid, "section header must end with ']'");
				td_end_section(&p);
				p.sec = SEC_SKIP;
				continue;
			}
			char *hdr = td_dupn(ls + 1, e - 2);
			if (!hdr) {
				td_oom(&p, lineno);
				break;
			}
			start_section(&p, td_trim(hdr), lineno);
			free(hdr);
			continue;
		}
		if (n + 1 > bcap) {
			char *q = realloc(buf, (n + 1) * 2);
			if (!q) {
				td_oom(&p, lineno);
				break;
			}
			buf = q;
			bcap = (n + 1) * 2;
		}
		memcpy(buf, ls, n);
		buf[n] = '\0';
		blen = n;
		bline = lineno;
		have_kv = 1;
	}
	if (have_kv && !p.oom)
		apply_kv(&p, buf, bline);
	free(buf);
	buf = NULL;
	if (p.oom) {
		rc = TH_ENOMEM;
		goto fail;
	}
	td_resolve(&p, lineno);
	if (p.oom) {
		rc = TH_ENOMEM;
		goto fail;
	}
	if (p.nerr) {
		rc = TH_ESYNTAX;
		goto fail;
	}
	parser_free(&p);
	*out = p.d;
	return 0;
fail:
	free(buf);
	parser_free(&p);
	th_def_destroy(&p.d);
	return rc;
}

int th_def_load(const char *path, th_def **out, th_diag *diag)
{
	FILE *f;
	char *text = NULL;
	size_t len = 0, cap = 0;
	int rc;
	if (!path || !out)
		return TH_EINVAL;
	f = fopen(path, "rb");
	if (!f)
		return th_diag_add(diag, TH_SEV_ERROR, errno == ENOENT ? TH_ENOTFOUND : TH_EIO, path,
		                   0, 0, NULL, "cannot open: %s", strerror(errno));
	for (;;) {
		if (len + 4096 > cap) {
			if (cap > DEF_MAX_FILE) {
				rc = th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, path, 0, 0, NULL,
				                 "definition is larger than %u bytes", DEF_MAX_FILE);
				goto out;
			}
			size_t nc = cap ? cap * 2 : 16384;
			char *q = realloc(text, nc);
			if (!q) {
				rc = TH_ENOMEM;
				goto out;
			}
			text = q;
			cap = nc;
		}
		size_t r = fread(text + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	if (ferror(f)) {
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "read error");
		goto out;
	}
	rc = th_def_parse(text, len, path, out, diag);
out:
	free(text);
	fclose(f);
	return rc;
}

/* th_def.c -- appendix definitions: parser, validation, look-ups, sets.
 *
 * The file format is documented in schema/appendices/FORMAT.md.  Parsing is
 * line based: physical lines are joined into logical "key = value" lines
 * (continuations start with a blank), each logical line is applied to the
 * current section, and references between sections (row key, ratio terms,
 * rule terms, derive) are resolved once the whole file has been read, so
 * sections may come in any order and every problem is reported at once.
 */
#include "th_def.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <unicase.h>
#include <uninorm.h>

#define DEF_MAX_FILE   (1u << 20)
#define DEF_MAX_COLS   1000
#define DEF_MAX_VALUES 1000
#define DEF_MAX_TERMS  100
#define DEF_MAX_ID     64
#define DEF_MAX_ROWS   1000000u
#define DEF_MAX_LEN    1000000u
#define DEF_MAX_ITEMS  1000   /* ratios, rules, kinds, units */

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

static const char *type_name(th_type t)
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
/* small helpers */

static int is_blank(char c) { return c == ' ' || c == '\t'; }

static char *dupn(const char *s, size_t n)
{
	char *p = malloc(n + 1);
	if (p) {
		memcpy(p, s, n);
		p[n] = '\0';
	}
	return p;
}

static char *trim(char *s)
{
	while (is_blank(*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && (is_blank(s[n - 1]) || s[n - 1] == '\r'))
		s[--n] = '\0';
	return s;
}

static int is_snake_id(const char *s)
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

static int title_eq(const char *a, const char *b)
{
	int r = 1;
	if (u8_casecmp((const uint8_t *)a, strlen(a), (const uint8_t *)b, strlen(b),
	               NULL, UNINORM_NFC, &r) != 0)
		return strcmp(a, b) == 0;
	return r == 0;
}

/* ------------------------------------------------------------------ */
/* parser state */

enum sec { SEC_NONE, SEC_APPENDIX, SEC_COLUMN, SEC_RATIO, SEC_RULE, SEC_DERIVE, SEC_SKIP };

enum { DV_STATUS, DV_DEADLINE, DV_DONE, DV_CODES };   /* then the 6 codes */
#define DV_N (DV_CODES + TH_TASK_NSTATUS)
static const char *dv_keys[DV_N] = {
	"status", "deadline", "done",
	"done_on_time", "done_late", "in_progress", "overdue", "not_started", "no_deadline",
};

struct raw {          /* a value kept for later resolution */
	char *s;
	long line;
};

struct colaux {
	unsigned seen;    /* bit per key */
	long line;
	struct raw min, max;
	int has_scale;
	long type_line, rollup_line, scale_line, maxlen_line, value_line;
	int has_maxlen;
	int bad_type;
};

struct itemaux {      /* ratio or rule */
	unsigned seen;
	struct raw a, b;  /* num, den / check */
};

struct parser {
	const char *name;
	th_diag *diag;
	int nerr;
	int oom;
	th_def *d;
	enum sec sec;
	const char *secid;       /* diag column for the current section */
	char secbuf[DEF_MAX_ID + 16];
	unsigned seen;           /* keys seen in [appendix] / [derive] */
	long appendix_line, derive_line;
	int have_appendix, have_derive;
	struct raw key;
	struct raw dv[DV_N];
	struct colaux *caux;
	size_t caux_cap;
	struct itemaux *raux, *uaux;   /* ratios, rules */
	size_t cols_cap, ratios_cap, rules_cap;
};

static void perr(struct parser *p, int code, long line, const char *col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static void perr(struct parser *p, int code, long line, const char *col, const char *fmt, ...)
{
	va_list ap;
	p->nerr++;
	if (code == TH_ENOMEM)
		p->oom = 1;
	va_start(ap, fmt);
	th_diag_vadd(p->diag, TH_SEV_ERROR, code, p->name, line, 0, col, fmt, ap);
	va_end(ap);
}

static void oom(struct parser *p, long line)
{
	perr(p, TH_ENOMEM, line, NULL, "out of memory");
}

/* Grows *arr (element size sz) so it holds n + 1 elements. */
static int grow(void **arr, size_t *cap, size_t n, size_t sz)
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

/* Validates and NFC-normalises a Vietnamese title into *out. */
static int set_title(struct parser *p, long line, const char *what, const char *v, char **out)
{
	size_t n = strlen(v), outlen = 0;
	char *nfc = NULL;
	if (n == 0) {
		perr(p, TH_EMISSING, line, p->secid, "%s is empty", what);
		return -1;
	}
	if (n > 4000) {
		perr(p, TH_ETOOBIG, line, p->secid, "%s is longer than 4000 bytes", what);
		return -1;
	}
	if (!th_utf8_valid(v, n)) {
		perr(p, TH_EUTF8, line, p->secid, "%s is not valid UTF-8 (save the file as UTF-8)", what);
		return -1;
	}
	int rc = th_utf8_nfc(v, n, &nfc, &outlen);
	if (rc != 0) {
		if (rc == TH_ENOMEM)
			oom(p, line);
		else
			perr(p, TH_EUTF8, line, p->secid, "%s cannot be normalised to NFC: %s",
			     what, th_strerror(rc));
		return -1;
	}
	free(*out);
	*out = nfc;
	return 0;
}

/* Splits a blank-separated list into a new string vector. */
static int split_words(struct parser *p, long line, const char *v, int (*ok)(const char *),
                       const char *what, char ***out, size_t *n)
{
	char *copy = dupn(v, strlen(v)), *save = NULL, *w;
	char **vec = NULL;
	size_t cnt = 0, cap = 0;
	int bad = 0;
	if (!copy) {
		oom(p, line);
		return -1;
	}
	for (w = strtok_r(copy, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
		if (!ok(w)) {
			perr(p, TH_ESYNTAX, line, p->secid, "'%s' is not a valid %s", w, what);
			bad = 1;
			continue;
		}
		int dup = 0;
		for (size_t i = 0; i < cnt; i++)
			if (strcmp(vec[i], w) == 0)
				dup = 1;
		if (dup) {
			perr(p, TH_EDUPKEY, line, p->secid, "%s '%s' is listed twice", what, w);
			bad = 1;
			continue;
		}
		if (cnt >= DEF_MAX_ITEMS) {
			perr(p, TH_ETOOBIG, line, p->secid, "more than %d entries", DEF_MAX_ITEMS);
			bad = 1;
			break;
		}
		char *s = dupn(w, strlen(w));
		if (!s || grow((void **)&vec, &cap, cnt, sizeof *vec) != 0) {
			free(s);
			oom(p, line);
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
	char *s = dupn(v, strlen(v));
	if (!s) {
		oom(p, line);
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
		perr(p, TH_EDUPKEY, line, p->secid, "'%s' is given twice in this section", key);
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
			perr(p, TH_ESYNTAX, line, p->secid,
			     "id '%s' must be upper-case letters and digits, e.g. PL1", v);
			return;
		}
		free(d->id);
		if (!(d->id = dupn(v, strlen(v))))
			oom(p, line);
	} else if (strcmp(k, "version") == 0) {
		if (!once(p, &p->seen, 1, k, line))
			return;
		if (!parse_u(v, 1, 1000000, &u)) {
			perr(p, TH_ESYNTAX, line, p->secid,
			     "version '%s' must be a whole number from 1 to 1000000", v);
			return;
		}
		d->version = (uint32_t)u;
	} else if (strcmp(k, "title") == 0) {
		if (once(p, &p->seen, 2, k, line))
			set_title(p, line, "title", v, &d->title);
	} else if (strcmp(k, "submitters") == 0) {
		if (once(p, &p->seen, 3, k, line))
			split_words(p, line, v, is_code, "unit kind", &d->kinds, &d->n_kinds);
	} else if (strcmp(k, "submitter_units") == 0) {
		if (once(p, &p->seen, 4, k, line))
			split_words(p, line, v, is_code, "unit code", &d->units, &d->n_units);
	} else if (strcmp(k, "key") == 0) {
		if (once(p, &p->seen, 5, k, line))
			keep_raw(p, &p->key, v, line);
	} else if (strcmp(k, "max_rows") == 0) {
		if (!once(p, &p->seen, 6, k, line))
			return;
		if (!parse_u(v, 1, DEF_MAX_ROWS, &u)) {
			perr(p, TH_ESYNTAX, line, p->secid,
			     "max_rows '%s' must be a whole number from 1 to %u", v, DEF_MAX_ROWS);
			return;
		}
		d->max_rows = (uint32_t)u;
	} else {
		perr(p, TH_ESYNTAX, line, p->secid,
		     "unknown key '%s' (expected id, version, title, submitters, "
		     "submitter_units, key, max_rows)", k);
	}
}

static void kv_enum_value(struct parser *p, th_column *c, const char *v, long line)
{
	const char *bar = strchr(v, '|');
	char *code = NULL, *title = NULL, *ctitle = NULL;
	if (!bar) {
		perr(p, TH_ESYNTAX, line, p->secid, "expected 'value = code | Vietnamese label'");
		return;
	}
	code = dupn(v, (size_t)(bar - v));
	ctitle = dupn(bar + 1, strlen(bar + 1));
	if (!code || !ctitle) {
		oom(p, line);
		goto out;
	}
	char *tc = trim(code), *tt = trim(ctitle);
	int bad = 0;
	if (!is_snake_id(tc)) {
		perr(p, TH_ESYNTAX, line, p->secid,
		     "enum code '%s' must be snake_case (a-z, 0-9, _; a letter first)", tc);
		bad = 1;
	}
	if (set_title(p, line, "enum label", tt, &title) != 0)
		bad = 1;
	for (size_t i = 0; !bad && i < c->n_values; i++) {
		if (strcmp(c->values[i].code, tc) == 0) {
			perr(p, TH_EDUPKEY, line, p->secid, "enum code '%s' is listed twice", tc);
			bad = 1;
		} else if (title_eq(c->values[i].title, title)) {
			perr(p, TH_EDUPKEY, line, p->secid, "enum label '%s' is listed twice", title);
			bad = 1;
		}
	}
	if (bad)
		goto out;
	if (c->n_values >= DEF_MAX_VALUES) {
		perr(p, TH_ETOOBIG, line, p->secid, "more than %d enum values", DEF_MAX_VALUES);
		goto out;
	}
	th_enum_value *nv = realloc(c->values, (c->n_values + 1) * sizeof *nv);
	char *cc = dupn(tc, strlen(tc));
	if (!nv || !cc) {
		if (nv)
			c->values = nv;
		free(cc);
		oom(p, line);
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
			perr(p, TH_ESYNTAX, line, p->secid,
			     "unknown type '%s' (expected integer, decimal, enum, date, bool, text)", v);
		}
	} else if (strcmp(k, "rollup") == 0) {
		if (!once(p, &a->seen, 2, k, line))
			return;
		a->rollup_line = line;
		if (!rollup_parse(v, &c->rollup)) {
			a->bad_type = 1;
			perr(p, TH_ESYNTAX, line, p->secid,
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
			perr(p, TH_ESYNTAX, line, p->secid, "required must be yes or no, not '%s'", v);
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
			perr(p, TH_ESYNTAX, line, p->secid, "scale '%s' must be 0 to 9", v);
			return;
		}
		a->has_scale = 1;
		c->scale = (int)u;
	} else if (strcmp(k, "max_len") == 0) {
		if (!once(p, &a->seen, 7, k, line))
			return;
		a->maxlen_line = line;
		if (!parse_u(v, 1, DEF_MAX_LEN, &u)) {
			perr(p, TH_ESYNTAX, line, p->secid, "max_len '%s' must be 1 to %u", v, DEF_MAX_LEN);
			return;
		}
		a->has_maxlen = 1;
		c->max_len = (uint32_t)u;
	} else if (strcmp(k, "value") == 0) {
		if (!a->value_line)
			a->value_line = line;
		kv_enum_value(p, c, v, line);
	} else {
		perr(p, TH_ESYNTAX, line, p->secid,
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
		perr(p, TH_ETYPE, r->line, p->secid, "min and max apply only to integer, decimal "
		     "and date columns, not %s", type_name(c->type));
		return -1;
	}
	if (!ok) {
		perr(p, TH_ESYNTAX, r->line, p->secid, "'%s' is not %s", r->s, form);
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
		perr(p, TH_EMISSING, a->line, p->secid, "missing 'title'");
	if (!(a->seen & 2u))
		perr(p, TH_EMISSING, a->line, p->secid, "missing 'type'");
	if (!(a->seen & 4u))
		perr(p, TH_EMISSING, a->line, p->secid,
		     "missing 'rollup' (sum, count_by, count_true, min, max or none)");
	if (!c->type || a->bad_type || !(a->seen & 4u))
		goto bounds;
	if (!rollup_fits(c->rollup, c->type))
		perr(p, TH_ETYPE, a->rollup_line, p->secid,
		     "rollup %s does not fit type %s (sum: integer, decimal; count_by: enum; "
		     "count_true: bool; min, max: integer, decimal, date; none: any)",
		     th_rollup_name(c->rollup), type_name(c->type));
bounds:
	if (c->type == TH_T_DEC && !a->has_scale && !(a->seen & (1u << 6)))
		perr(p, TH_EMISSING, a->type_line, p->secid, "decimal column needs 'scale'");
	if (c->type && c->type != TH_T_DEC && (a->seen & (1u << 6)))
		perr(p, TH_ETYPE, a->scale_line, p->secid, "scale applies only to decimal columns");
	if (c->type && c->type != TH_T_TEXT && (a->seen & (1u << 7)))
		perr(p, TH_ETYPE, a->maxlen_line, p->secid, "max_len applies only to text columns");
	if (!a->has_maxlen)
		c->max_len = 2000;
	if (c->type == TH_T_ENUM && c->n_values == 0 && !a->value_line)
		perr(p, TH_EMISSING, a->type_line, p->secid,
		     "enum column has no values (add lines 'value = code | label')");
	if (c->type && c->type != TH_T_ENUM && a->value_line)
		perr(p, TH_ETYPE, a->value_line, p->secid, "'value' lines apply only to enum columns");
	if (c->type && (c->type != TH_T_DEC || a->has_scale)) {
		if (a->min.s && parse_bound(p, c, &a->min, &c->min) == 0)
			c->has_min = 1;
		if (a->max.s && parse_bound(p, c, &a->max, &c->max) == 0)
			c->has_max = 1;
		if (c->has_min && c->has_max && c->min > c->max)
			perr(p, TH_ERANGE, a->max.line, p->secid, "max %s is below min %s",
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
		perr(p, TH_ESYNTAX, line, p->secid, "unknown key '%s' (expected %s)", k,
		     is_rule ? "title, check" : "title, num, den");
	}
}

static void kv_derive(struct parser *p, const char *k, const char *v, long line)
{
	for (int i = 0; i < DV_N; i++)
		if (strcmp(k, dv_keys[i]) == 0) {
			if (once(p, &p->seen, (unsigned)i, k, line))
				keep_raw(p, &p->dv[i], v, line);
			return;
		}
	perr(p, TH_ESYNTAX, line, p->secid, "unknown key '%s' (expected status, deadline, done, "
	     "done_on_time, done_late, in_progress, overdue, not_started, no_deadline)", k);
}

static void end_section(struct parser *p)
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
	end_section(p);
	while (*id && !is_blank(*id))
		id++;
	if (*id)
		*id++ = '\0';
	id = trim(id);
	p->sec = SEC_SKIP;
	if (strcmp(name, "appendix") == 0 || strcmp(name, "derive") == 0) {
		int app = name[0] == 'a';
		p->secid = app ? "appendix" : "derive";
		if (*id) {
			perr(p, TH_ESYNTAX, line, p->secid, "[%s] takes no id", name);
			return;
		}
		if (app ? p->have_appendix : p->have_derive) {
			perr(p, TH_EDUPKEY, line, p->secid, "a second [%s] section (first at line %ld)",
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
		perr(p, TH_ESYNTAX, line, NULL, "unknown section [%s%s%s] (expected appendix, "
		     "column, ratio, rule, derive)", name, *id ? " " : "", id);
		return;
	}
	snprintf(p->secbuf, sizeof p->secbuf, "%.*s", DEF_MAX_ID, *id ? id : name);
	p->secid = p->secbuf;
	if (!is_snake_id(id)) {
		perr(p, TH_ESYNTAX, line, p->secid, "[%s %s]: the id must be snake_case "
		     "(a-z, 0-9, _; a letter first; at most %d bytes)", name, id, DEF_MAX_ID);
		return;
	}
	char *idc = dupn(id, strlen(id));
	if (!idc) {
		oom(p, line);
		return;
	}
	if (name[1] == 'o') {          /* column */
		for (size_t i = 0; i < d->n_cols; i++)
			if (strcmp(d->cols[i].id, id) == 0)
				perr(p, TH_EDUPKEY, line, p->secid,
				     "duplicate column id '%s' (first defined at line %ld)", id,
				     d->cols[i].line);
		if (d->n_cols >= DEF_MAX_COLS) {
			free(idc);
			perr(p, TH_ETOOBIG, line, p->secid, "more than %d columns", DEF_MAX_COLS);
			return;
		}
		if (grow((void **)&d->cols, &p->cols_cap, d->n_cols, sizeof *d->cols) != 0 ||
		    grow((void **)&p->caux, &p->caux_cap, d->n_cols, sizeof *p->caux) != 0) {
			free(idc);
			oom(p, line);
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
				perr(p, TH_EDUPKEY, line, p->secid,
				     "duplicate ratio id '%s' (first defined at line %ld)", id,
				     d->ratios[i].line);
		if (d->n_ratios >= DEF_MAX_ITEMS) {
			free(idc);
			perr(p, TH_ETOOBIG, line, p->secid, "too many ratios");
			return;
		}
		size_t acap = p->ratios_cap;
		if (grow((void **)&d->ratios, &p->ratios_cap, d->n_ratios, sizeof *d->ratios) != 0 ||
		    grow((void **)&p->raux, &acap, d->n_ratios, sizeof *p->raux) != 0) {
			free(idc);
			oom(p, line);
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
				perr(p, TH_EDUPKEY, line, p->secid,
				     "duplicate rule id '%s' (first defined at line %ld)", id,
				     d->rules[i].line);
		if (d->n_rules >= DEF_MAX_ITEMS) {
			free(idc);
			perr(p, TH_ETOOBIG, line, p->secid, "too many rules");
			return;
		}
		size_t acap = p->rules_cap;
		if (grow((void **)&d->rules, &p->rules_cap, d->n_rules, sizeof *d->rules) != 0 ||
		    grow((void **)&p->uaux, &acap, d->n_rules, sizeof *p->uaux) != 0) {
			free(idc);
			oom(p, line);
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
		perr(p, TH_ESYNTAX, line, p->secid, "expected 'key = value' or '[section]'");
		return;
	}
	*eq = '\0';
	char *k = trim(text), *v = trim(eq + 1);
	if (!is_snake_id(k)) {
		perr(p, TH_ESYNTAX, line, p->secid, "'%s' is not a valid key", k);
		return;
	}
	switch (p->sec) {
	case SEC_NONE:
		perr(p, TH_ESYNTAX, line, NULL, "'%s' outside a section (start with [appendix])", k);
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
/* resolution of references */

static long col_by_id(const th_def *d, const char *id)
{
	for (size_t i = 0; i < d->n_cols; i++)
		if (strcmp(d->cols[i].id, id) == 0)
			return (long)i;
	return -1;
}

static long enum_by_code(const th_column *c, const char *code)
{
	for (size_t i = 0; i < c->n_values; i++)
		if (strcmp(c->values[i].code, code) == 0)
			return (long)i;
	return -1;
}

/* Parses "a + b + c:x" into column indices (and codes when codes != NULL).
 * Returns the number of terms, or -1 after reporting. */
static long parse_terms(struct parser *p, const char *sec, const char *what, const struct raw *r,
                        size_t **cols, long **codes)
{
	char *copy = dupn(r->s, strlen(r->s)), *s, *save = NULL;
	size_t n = 0;
	int bad = 0;
	size_t *cv = NULL;
	long *kv = NULL;
	if (!copy) {
		oom(p, r->line);
		return -1;
	}
	size_t maxn = 1;
	for (s = copy; *s; s++)
		maxn += *s == '+';
	if (maxn > DEF_MAX_TERMS) {
		perr(p, TH_ETOOBIG, r->line, sec, "%s has more than %d terms", what, DEF_MAX_TERMS);
		free(copy);
		return -1;
	}
	cv = calloc(maxn, sizeof *cv);
	kv = calloc(maxn, sizeof *kv);
	if (!cv || !kv) {
		oom(p, r->line);
		bad = 1;
		goto out;
	}
	/* empty terms: leading, trailing or doubled '+' */
	{
		const char *q = r->s;
		int need = 1;
		for (; *q; q++) {
			if (*q == '+') {
				if (need)
					break;
				need = 1;
			} else if (!is_blank(*q)) {
				need = 0;
			}
		}
		if (need) {
			perr(p, TH_ESYNTAX, r->line, sec, "%s: a term is missing around '+' in '%s'",
			     what, r->s);
			bad = 1;
			goto out;
		}
	}
	for (s = strtok_r(copy, "+", &save); s; s = strtok_r(NULL, "+", &save)) {
		char *t = trim(s), *colon = strchr(t, ':');
		if (colon)
			*colon++ = '\0';
		long ci = col_by_id(p->d, t);
		if (ci < 0) {
			perr(p, TH_ENOTFOUND, r->line, sec, "%s: unknown column '%s'", what, t);
			bad = 1;
			continue;
		}
		const th_column *c = &p->d->cols[ci];
		kv[n] = -1;
		if (colon) {
			if (!codes) {
				perr(p, TH_ESYNTAX, r->line, sec, "%s: '%s:%s': a value code is not "
				     "allowed here", what, t, colon);
				bad = 1;
				continue;
			}
			if (c->type != TH_T_ENUM || c->rollup != TH_ROLL_COUNT_BY) {
				perr(p, TH_ETYPE, r->line, sec, "%s: '%s:%s': column %s is not an enum "
				     "column with rollup count_by", what, t, colon, t);
				bad = 1;
				continue;
			}
			long e = enum_by_code(c, trim(colon));
			if (e < 0) {
				perr(p, TH_ENOTFOUND, r->line, sec, "%s: column %s has no value '%s'",
				     what, t, trim(colon));
				bad = 1;
				continue;
			}
			kv[n] = e;
		} else if (codes && !((c->type == TH_T_INT && c->rollup == TH_ROLL_SUM) ||
		                      (c->type == TH_T_BOOL && c->rollup == TH_ROLL_COUNT_TRUE))) {
			perr(p, TH_ETYPE, r->line, sec, "%s: column %s must be an integer column with "
			     "rollup sum, a bool column with rollup count_true, or written "
			     "column:code for a count_by enum", what, t);
			bad = 1;
			continue;
		}
		cv[n++] = (size_t)ci;
	}
out:
	free(copy);
	if (bad) {
		free(cv);
		free(kv);
		return -1;
	}
	*cols = cv;
	if (codes)
		*codes = kv;
	else
		free(kv);
	return (long)n;
}

static void resolve_rule(struct parser *p, th_rule *u, struct itemaux *a)
{
	const char *sec = u->id;
	if (!(a->seen & 1u))
		perr(p, TH_EMISSING, u->line, sec, "missing 'title'");
	if (!a->a.s) {
		perr(p, TH_EMISSING, u->line, sec, "missing 'check = a + b = c + d'");
		return;
	}
	char *eq = strchr(a->a.s, '=');
	if (!eq || strchr(eq + 1, '=')) {
		perr(p, TH_ESYNTAX, a->a.line, sec, "check needs exactly one '=' (a + b = c + d)");
		return;
	}
	*eq = '\0';
	struct raw l = { a->a.s, a->a.line }, r = { eq + 1, a->a.line };
	long nl = parse_terms(p, sec, "check", &l, &u->left, NULL);
	long nr = parse_terms(p, sec, "check", &r, &u->right, NULL);
	*eq = '=';
	if (nl < 0 || nr < 0)
		return;
	u->n_left = (size_t)nl;
	u->n_right = (size_t)nr;
	const th_column *first = NULL;
	for (size_t i = 0; i < u->n_left + u->n_right; i++) {
		const th_column *c = &p->d->cols[i < u->n_left ? u->left[i] : u->right[i - u->n_left]];
		if (c->type != TH_T_INT && c->type != TH_T_DEC) {
			perr(p, TH_ETYPE, a->a.line, sec, "check: column %s is %s; rules add "
			     "integer or decimal columns", c->id, type_name(c->type));
			continue;
		}
		if (!first)
			first = c;
		else if (c->type != first->type || c->scale != first->scale)
			perr(p, TH_ETYPE, a->a.line, sec, "check: columns %s and %s differ in type "
			     "or scale", first->id, c->id);
	}
}

static void resolve_ratio(struct parser *p, th_ratio *q, struct itemaux *a)
{
	const char *sec = q->id;
	long n;
	if (!(a->seen & 1u))
		perr(p, TH_EMISSING, q->line, sec, "missing 'title'");
	if (!a->a.s)
		perr(p, TH_EMISSING, q->line, sec, "missing 'num'");
	else if ((n = parse_terms(p, sec, "num", &a->a, &q->num, &q->num_code)) >= 0)
		q->n_num = (size_t)n;
	if (!a->b.s)
		perr(p, TH_EMISSING, q->line, sec, "missing 'den'");
	else if ((n = parse_terms(p, sec, "den", &a->b, &q->den, &q->den_code)) >= 0)
		q->n_den = (size_t)n;
}

static void resolve_key(struct parser *p)
{
	th_def *d = p->d;
	char **ids = NULL;
	size_t n = 0;
	if (!p->key.s || !*p->key.s)
		return;
	p->secid = "appendix";
	if (split_words(p, p->key.line, p->key.s, is_snake_id, "column id", &ids, &n) != 0)
		return;
	d->key_cols = calloc(n, sizeof *d->key_cols);
	if (!d->key_cols) {
		oom(p, p->key.line);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		long c = col_by_id(d, ids[i]);
		if (c < 0) {
			perr(p, TH_ENOTFOUND, p->key.line, "appendix", "key: unknown column '%s'", ids[i]);
			continue;
		}
		if (!d->cols[c].required)
			perr(p, TH_ESYNTAX, d->cols[c].line, d->cols[c].id,
			     "key column must have 'required = yes'");
		d->cols[c].key = 1;
		d->key_cols[d->n_key++] = (size_t)c;
	}
out:
	for (size_t i = 0; i < n; i++)
		free(ids[i]);
	free(ids);
}

static void resolve_derive(struct parser *p)
{
	th_def *d = p->d;
	th_derive dv;
	int bad = 0;
	const char *sec = "derive";
	long ln = p->derive_line;
	memset(&dv, 0, sizeof dv);
	for (int i = 0; i < DV_N; i++)
		if (!p->dv[i].s || !*p->dv[i].s) {
			perr(p, TH_EMISSING, ln, sec, "missing '%s'", dv_keys[i]);
			bad = 1;
		}
	if (bad)
		return;
	long cs = col_by_id(d, p->dv[DV_STATUS].s);
	long cd = col_by_id(d, p->dv[DV_DEADLINE].s);
	long cf = col_by_id(d, p->dv[DV_DONE].s);
	if (cs < 0)
		perr(p, TH_ENOTFOUND, p->dv[DV_STATUS].line, sec, "status: unknown column '%s'",
		     p->dv[DV_STATUS].s);
	else if (d->cols[cs].type != TH_T_ENUM)
		perr(p, TH_ETYPE, p->dv[DV_STATUS].line, sec, "status: column %s is not an enum",
		     p->dv[DV_STATUS].s);
	for (int i = DV_DEADLINE; i <= DV_DONE; i++) {
		long c = i == DV_DEADLINE ? cd : cf;
		if (c < 0)
			perr(p, TH_ENOTFOUND, p->dv[i].line, sec, "%s: unknown column '%s'",
			     dv_keys[i], p->dv[i].s);
		else if (d->cols[c].type != TH_T_DATE)
			perr(p, TH_ETYPE, p->dv[i].line, sec, "%s: column %s is not a date",
			     dv_keys[i], p->dv[i].s);
	}
	if (cs < 0 || cd < 0 || cf < 0 || d->cols[cs].type != TH_T_ENUM ||
	    d->cols[cd].type != TH_T_DATE || d->cols[cf].type != TH_T_DATE)
		return;
	dv.status_col = (size_t)cs;
	dv.deadline_col = (size_t)cd;
	dv.done_col = (size_t)cf;
	for (int i = 0; i < TH_TASK_NSTATUS; i++) {
		const struct raw *r = &p->dv[DV_CODES + i];
		long e = enum_by_code(&d->cols[cs], r->s);
		if (e < 0) {
			perr(p, TH_ENOTFOUND, r->line, sec, "%s: column %s has no value '%s'",
			     dv_keys[DV_CODES + i], d->cols[cs].id, r->s);
			bad = 1;
			continue;
		}
		for (int j = 0; j < i; j++)
			if (dv.code_of[j] == e) {
				perr(p, TH_EDUPKEY, r->line, sec, "%s and %s map to the same value '%s'",
				     dv_keys[DV_CODES + j], dv_keys[DV_CODES + i], r->s);
				bad = 1;
			}
		dv.code_of[i] = (int)e;
	}
	if (bad)
		return;
	d->derive = malloc(sizeof *d->derive);
	if (!d->derive) {
		oom(p, ln);
		return;
	}
	*d->derive = dv;
}

static void finish_file(struct parser *p, long last_line)
{
	th_def *d = p->d;
	end_section(p);
	if (!p->have_appendix) {
		perr(p, TH_EMISSING, 1, "appendix", "missing [appendix] section");
	} else {
		if (!d->id)
			perr(p, TH_EMISSING, p->appendix_line, "appendix", "missing 'id' (e.g. id = PL1)");
		if (d->version == 0)
			perr(p, TH_EMISSING, p->appendix_line, "appendix",
			     "missing 'version' (e.g. version = 1)");
		if (!d->title)
			perr(p, TH_EMISSING, p->appendix_line, "appendix", "missing 'title'");
	}
	if (d->n_cols == 0)
		perr(p, TH_EMISSING, last_line, NULL, "no [column ...] section");
	/* titles compared case-folded (as title_eq does), each folded once: the pairwise
	 * u8_casecmp was most of a definition's load time */
	uint8_t **fold = calloc(d->n_cols ? d->n_cols : 1, sizeof *fold);
	size_t *flen = calloc(d->n_cols ? d->n_cols : 1, sizeof *flen);
	for (size_t i = 0; fold && flen && i < d->n_cols; i++)
		if (d->cols[i].title)
			fold[i] = u8_casefold((const uint8_t *)d->cols[i].title, strlen(d->cols[i].title),
			                      NULL, UNINORM_NFC, NULL, &flen[i]);
	for (size_t i = 1; i < d->n_cols; i++)
		for (size_t j = 0; j < i; j++) {
			if (!d->cols[i].title || !d->cols[j].title)
				continue;
			int same = fold && flen && fold[i] && fold[j]
			               ? flen[i] == flen[j] && memcmp(fold[i], fold[j], flen[i]) == 0
			               : title_eq(d->cols[i].title, d->cols[j].title);
			if (same) {
				perr(p, TH_EDUPKEY, d->cols[i].line, d->cols[i].id,
				     "same title as column %s (line %ld): titles name CSV columns",
				     d->cols[j].id, d->cols[j].line);
				break;
			}
		}
	for (size_t i = 0; fold && i < d->n_cols; i++)
		free(fold[i]);
	free(fold);
	free(flen);
	resolve_key(p);
	if (d->n_key == 0) {
		if (p->have_appendix && d->max_rows > 1)
			perr(p, TH_ESYNTAX, p->appendix_line, "appendix",
			     "max_rows is %u but the appendix has no key (at most one row)", d->max_rows);
		d->max_rows = 1;
	} else if (d->max_rows == 0) {
		d->max_rows = 10000;
	}
	for (size_t i = 0; i < d->n_ratios; i++)
		resolve_ratio(p, &d->ratios[i], &p->raux[i]);
	for (size_t i = 0; i < d->n_rules; i++)
		resolve_rule(p, &d->rules[i], &p->uaux[i]);
	if (p->have_derive)
		resolve_derive(p);
	/* slots */
	size_t s = 1;
	for (size_t i = 0; i < d->n_cols; i++) {
		th_column *c = &d->cols[i];
		c->slot = s;
		switch (c->rollup) {
		case TH_ROLL_NONE: c->n_slots = 0; break;
		case TH_ROLL_COUNT_BY: c->n_slots = c->n_values; break;
		default: c->n_slots = 2; break;
		}
		s += c->n_slots;
	}
	for (size_t i = 0; i < d->n_ratios; i++) {
		d->ratios[i].slot = s;
		s += 3;
	}
	d->n_slots = s;
	/* what each slot holds, for the rollup arithmetic's flat loops (left NULL
	 * when out of memory: th_rollup.c then walks the columns) */
	d->slot_kind = calloc(s, 1);
	if (d->slot_kind) {
		d->slot_kind[0] = TH_SLOT_COUNT;
		for (size_t i = 0; i < d->n_cols; i++) {
			const th_column *c = &d->cols[i];
			for (size_t k = 0; k < c->n_slots; k++)
				d->slot_kind[c->slot + k] =
				    (c->rollup == TH_ROLL_MIN || c->rollup == TH_ROLL_MAX) && k == 0 ? TH_SLOT_EXTREMUM
				    : c->rollup == TH_ROLL_SUM && k == 0                              ? TH_SLOT_SUM
				                                                                      : TH_SLOT_COUNT;
		}
		for (size_t i = 0; i < d->n_ratios; i++) {
			d->slot_kind[d->ratios[i].slot] = TH_SLOT_SUM;
			d->slot_kind[d->ratios[i].slot + 1] = TH_SLOT_SUM;
			d->slot_kind[d->ratios[i].slot + 2] = TH_SLOT_COUNT;
		}
	}
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
	p.d->file = dupn(p.name, strlen(p.name));
	p.d->source = dupn(text, len);
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
			perr(&p, TH_EUTF8, lineno, p.secid, "line is not valid UTF-8 text (save the "
			     "file as UTF-8; no control characters)");
			continue;
		}
		size_t i = 0;
		while (i < n && is_blank(ls[i]))
			i++;
		int blank = i == n, comment = !blank && ls[i] == '#';
		if (blank || comment)
			continue;       /* neither ends a value being continued */
		if (i > 0) {            /* continuation */
			if (!have_kv) {
				perr(&p, TH_ESYNTAX, lineno, p.secid, "indented line continues nothing "
				     "(only a 'key = value' line can be continued)");
				continue;
			}
			if (blen + 1 + (n - i) + 1 > bcap) {
				size_t nc = (blen + 1 + (n - i) + 1) * 2;
				char *q = realloc(buf, nc);
				if (!q) {
					oom(&p, lineno);
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
			while (e > 0 && is_blank(ls[e - 1]))
				e--;
			if (e < 2 || ls[e - 1] != ']') {
				perr(&p, TH_ESYNTAX, lineno, p.secid, "section header must end with ']'");
				end_section(&p);
				p.sec = SEC_SKIP;
				continue;
			}
			char *hdr = dupn(ls + 1, e - 2);
			if (!hdr) {
				oom(&p, lineno);
				break;
			}
			start_section(&p, trim(hdr), lineno);
			free(hdr);
			continue;
		}
		if (n + 1 > bcap) {
			char *q = realloc(buf, (n + 1) * 2);
			if (!q) {
				oom(&p, lineno);
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
	finish_file(&p, lineno);
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
	if (!(t = dupn(s, n)))
		return -1;
	long c = col_by_id(d, t);
	if (c >= 0) {
		free(t);
		return c;
	}
	if (th_utf8_nfc(t, n, &nfc, &nl) == 0) {
		for (size_t i = 0; i < d->n_cols; i++)
			if (d->cols[i].title && title_eq(d->cols[i].title, nfc)) {
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
	if (!(t = dupn(s, n)))
		return -1;
	r = enum_by_code(c, t);
	if (r < 0 && th_utf8_nfc(t, n, &nfc, &nl) == 0) {
		for (size_t i = 0; i < c->n_values; i++)
			if (title_eq(c->values[i].title, nfc)) {
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

/* ------------------------------------------------------------------ */
/* sets */

struct th_defset {
	th_def **defs;
	size_t n, cap;
};

th_defset *th_defset_new(void)
{
	return calloc(1, sizeof(th_defset));
}

void th_defset_destroy(th_defset **sp)
{
	th_defset *s;
	if (!sp || !(s = *sp))
		return;
	for (size_t i = 0; i < s->n; i++)
		th_def_destroy(&s->defs[i]);
	free(s->defs);
	free(s);
	*sp = NULL;
}

int th_defset_add(th_defset *s, th_def *d)
{
	if (!s || !d || !d->id)
		return TH_EINVAL;
	if (th_defset_get(s, d->id, d->version))
		return TH_EEXIST;
	if (grow((void **)&s->defs, &s->cap, s->n, sizeof *s->defs) != 0)
		return TH_ENOMEM;
	s->defs[s->n++] = d;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int th_defset_load_dir(const char *dir, th_defset **out, th_diag *diag)
{
	DIR *dh = NULL;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	th_defset *s = NULL;
	int rc = 0, first = 0;
	if (!dir || !out)
		return TH_EINVAL;
	dh = opendir(dir);
	if (!dh)
		return th_diag_add(diag, TH_SEV_ERROR, errno == ENOENT ? TH_ENOTFOUND : TH_EIO, dir,
		                   0, 0, NULL, "cannot open directory: %s", strerror(errno));
	while ((e = readdir(dh)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 5 || e->d_name[0] == '.' || strcmp(e->d_name + l - 4, ".def") != 0)
			continue;
		char *nm = dupn(e->d_name, l);
		if (!nm || grow((void **)&names, &cap, n, sizeof *names) != 0) {
			free(nm);
			rc = TH_ENOMEM;
			goto out;
		}
		names[n++] = nm;
	}
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	if (!(s = th_defset_new())) {
		rc = TH_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t pl = strlen(dir) + 1 + strlen(names[i]) + 1;
		char *path = malloc(pl);
		th_def *d = NULL;
		struct stat st;
		if (!path) {
			rc = TH_ENOMEM;
			goto out;
		}
		snprintf(path, pl, "%s/%s", dir, names[i]);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		int r = th_def_load(path, &d, diag);
		if (r == 0) {
			const th_def *o = th_defset_get(s, d->id, d->version);
			if (o) {
				r = th_diag_add(diag, TH_SEV_ERROR, TH_EEXIST, path, 0, 0, NULL,
				                "%s version %u is also defined in %s", d->id, d->version,
				                o->file);
				th_def_destroy(&d);
			} else if ((r = th_defset_add(s, d)) != 0) {
				th_def_destroy(&d);
			}
		}
		free(path);
		if (r == TH_ENOMEM) {
			rc = r;
			goto out;
		}
		if (r != 0 && !first)
			first = r;
	}
	rc = first;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dh);
	if (rc != 0) {
		th_defset_destroy(&s);
		return rc;
	}
	*out = s;
	return 0;
}

const th_def *th_defset_get(const th_defset *s, const char *id, uint32_t version)
{
	if (!s || !id)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->defs[i]->version == version && strcmp(s->defs[i]->id, id) == 0)
			return s->defs[i];
	return NULL;
}

const th_def *th_defset_latest(const th_defset *s, const char *id)
{
	const th_def *best = NULL;
	if (!s || !id)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->defs[i]->id, id) == 0 && (!best || s->defs[i]->version > best->version))
			best = s->defs[i];
	return best;
}

size_t th_defset_count(const th_defset *s)
{
	return s ? s->n : 0;
}

const th_def *th_defset_at(const th_defset *s, size_t i)
{
	return s && i < s->n ? s->defs[i] : NULL;
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

/* th_def_resolve.c -- the second pass of the definition parser
 * (th_def_parse.c): once the whole file is read, the references between
 * sections (the row key, ratio and rule terms, the [derive] columns and
 * codes) are resolved and checked, duplicate column titles reported, and the
 * rollup slots laid out (th_def.h). */
#include "th_def_private.h"

#include <stdlib.h>
#include <string.h>

#include <unicase.h>
#include <uninorm.h>

/* Parses "a + b + c:x" into column indices (and codes when codes != NULL).
 * Returns the number of terms, or -1 after reporting. */
static long parse_terms(struct parser *p, const char *sec, const char *what, const struct raw *r,
                        size_t **cols, long **codes)
{
	char *copy = td_dupn(r->s, strlen(r->s)), *s, *save = NULL;
	size_t n = 0;
	int bad = 0;
	size_t *cv = NULL;
	long *kv = NULL;
	if (!copy) {
		td_oom(p, r->line);
		return -1;
	}
	size_t maxn = 1;
	for (s = copy; *s; s++)
		maxn += *s == '+';
	if (maxn > DEF_MAX_TERMS) {
		td_perr(p, TH_ETOOBIG, r->line, sec, "%s has more than %d terms", what, DEF_MAX_TERMS);
		free(copy);
		return -1;
	}
	cv = calloc(maxn, sizeof *cv);
	kv = calloc(maxn, sizeof *kv);
	if (!cv || !kv) {
		td_oom(p, r->line);
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
			} else if (!td_is_blank(*q)) {
				need = 0;
			}
		}
		if (need) {
			td_perr(p, TH_ESYNTAX, r->line, sec, "%s: a term is missing around '+' in '%s'",
			     what, r->s);
			bad = 1;
			goto out;
		}
	}
	for (s = strtok_r(copy, "+", &save); s; s = strtok_r(NULL, "+", &save)) {
		char *t = td_trim(s), *colon = strchr(t, ':');
		if (colon)
			*colon++ = '\0';
		long ci = td_col_by_id(p->d, t);
		if (ci < 0) {
			td_perr(p, TH_ENOTFOUND, r->line, sec, "%s: unknown column '%s'", what, t);
			bad = 1;
			continue;
		}
		const th_column *c = &p->d->cols[ci];
		kv[n] = -1;
		if (colon) {
			if (!codes) {
				td_perr(p, TH_ESYNTAX, r->line, sec, "%s: '%s:%s': a value code is not "
				     "allowed here", what, t, colon);
				bad = 1;
				continue;
			}
			if (c->type != TH_T_ENUM || c->rollup != TH_ROLL_COUNT_BY) {
				td_perr(p, TH_ETYPE, r->line, sec, "%s: '%s:%s': column %s is not an enum "
				     "column with rollup count_by", what, t, colon, t);
				bad = 1;
				continue;
			}
			long e = td_enum_by_code(c, td_trim(colon));
			if (e < 0) {
				td_perr(p, TH_ENOTFOUND, r->line, sec, "%s: column %s has no value '%s'",
				     what, t, td_trim(colon));
				bad = 1;
				continue;
			}
			kv[n] = e;
		} else if (codes && !((c->type == TH_T_INT && c->rollup == TH_ROLL_SUM) ||
		                      (c->type == TH_T_BOOL && c->rollup == TH_ROLL_COUNT_TRUE))) {
			td_perr(p, TH_ETYPE, r->line, sec, "%s: column %s must be an integer column with "
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
		td_perr(p, TH_EMISSING, u->line, sec, "missing 'title'");
	if (!a->a.s) {
		td_perr(p, TH_EMISSING, u->line, sec, "missing 'check = a + b = c + d'");
		return;
	}
	char *eq = strchr(a->a.s, '=');
	if (!eq || strchr(eq + 1, '=')) {
		td_perr(p, TH_ESYNTAX, a->a.line, sec, "check needs exactly one '=' (a + b = c + d)");
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
			td_perr(p, TH_ETYPE, a->a.line, sec, "check: column %s is %s; rules add "
			     "integer or decimal columns", c->id, td_type_name(c->type));
			continue;
		}
		if (!first)
			first = c;
		else if (c->type != first->type || c->scale != first->scale)
			td_perr(p, TH_ETYPE, a->a.line, sec, "check: columns %s and %s differ in type "
			     "or scale", first->id, c->id);
	}
}

static void resolve_ratio(struct parser *p, th_ratio *q, struct itemaux *a)
{
	const char *sec = q->id;
	long n;
	if (!(a->seen & 1u))
		td_perr(p, TH_EMISSING, q->line, sec, "missing 'title'");
	if (!a->a.s)
		td_perr(p, TH_EMISSING, q->line, sec, "missing 'num'");
	else if ((n = parse_terms(p, sec, "num", &a->a, &q->num, &q->num_code)) >= 0)
		q->n_num = (size_t)n;
	if (!a->b.s)
		td_perr(p, TH_EMISSING, q->line, sec, "missing 'den'");
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
	if (td_split_words(p, p->key.line, p->key.s, td_is_snake_id, "column id", &ids, &n) != 0)
		return;
	d->key_cols = calloc(n, sizeof *d->key_cols);
	if (!d->key_cols) {
		td_oom(p, p->key.line);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		long c = td_col_by_id(d, ids[i]);
		if (c < 0) {
			td_perr(p, TH_ENOTFOUND, p->key.line, "appendix", "key: unknown column '%s'", ids[i]);
			continue;
		}
		if (!d->cols[c].required)
			td_perr(p, TH_ESYNTAX, d->cols[c].line, d->cols[c].id,
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
			td_perr(p, TH_EMISSING, ln, sec, "missing '%s'", td_dv_keys[i]);
			bad = 1;
		}
	if (bad)
		return;
	long cs = td_col_by_id(d, p->dv[DV_STATUS].s);
	long cd = td_col_by_id(d, p->dv[DV_DEADLINE].s);
	long cf = td_col_by_id(d, p->dv[DV_DONE].s);
	if (cs < 0)
		td_perr(p, TH_ENOTFOUND, p->dv[DV_STATUS].line, sec, "status: unknown column '%s'",
		     p->dv[DV_STATUS].s);
	else if (d->cols[cs].type != TH_T_ENUM)
		td_perr(p, TH_ETYPE, p->dv[DV_STATUS].line, sec, "status: column %s is not an enum",
		     p->dv[DV_STATUS].s);
	for (int i = DV_DEADLINE; i <= DV_DONE; i++) {
		long c = i == DV_DEADLINE ? cd : cf;
		if (c < 0)
			td_perr(p, TH_ENOTFOUND, p->dv[i].line, sec, "%s: unknown column '%s'",
			     td_dv_keys[i], p->dv[i].s);
		else if (d->cols[c].type != TH_T_DATE)
			td_perr(p, TH_ETYPE, p->dv[i].line, sec, "%s: column %s is not a date",
			     td_dv_keys[i], p->dv[i].s);
	}
	if (cs < 0 || cd < 0 || cf < 0 || d->cols[cs].type != TH_T_ENUM ||
	    d->cols[cd].type != TH_T_DATE || d->cols[cf].type != TH_T_DATE)
		return;
	dv.status_col = (size_t)cs;
	dv.deadline_col = (size_t)cd;
	dv.done_col = (size_t)cf;
	for (int i = 0; i < TH_TASK_NSTATUS; i++) {
		const struct raw *r = &p->dv[DV_CODES + i];
		long e = td_enum_by_code(&d->cols[cs], r->s);
		if (e < 0) {
			td_perr(p, TH_ENOTFOUND, r->line, sec, "%s: column %s has no value '%s'",
			     td_dv_keys[DV_CODES + i], d->cols[cs].id, r->s);
			bad = 1;
			continue;
		}
		for (int j = 0; j < i; j++)
			if (dv.code_of[j] == e) {
				td_perr(p, TH_EDUPKEY, r->line, sec, "%s and %s map to the same value '%s'",
				     td_dv_keys[DV_CODES + j], td_dv_keys[DV_CODES + i], r->s);
				bad = 1;
			}
		dv.code_of[i] = (int)e;
	}
	if (bad)
		return;
	d->derive = malloc(sizeof *d->derive);
	if (!d->derive) {
		td_oom(p, ln);
		return;
	}
	*d->derive = dv;
}

void td_resolve(struct parser *p, long last_line)
{
	th_def *d = p->d;
	td_end_section(p);
	if (!p->have_appendix) {
		td_perr(p, TH_EMISSING, 1, "appendix", "missing [appendix] section");
	} else {
		if (!d->id)
			td_perr(p, TH_EMISSING, p->appendix_line, "appendix", "missing 'id' (e.g. id = PL1)");
		if (d->version == 0)
			td_perr(p, TH_EMISSING, p->appendix_line, "appendix",
			     "missing 'version' (e.g. version = 1)");
		if (!d->title)
			td_perr(p, TH_EMISSING, p->appendix_line, "appendix", "missing 'title'");
	}
	if (d->n_cols == 0)
		td_perr(p, TH_EMISSING, last_line, NULL, "no [column ...] section");
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
			               : td_title_eq(d->cols[i].title, d->cols[j].title);
			if (same) {
				td_perr(p, TH_EDUPKEY, d->cols[i].line, d->cols[i].id,
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
			td_perr(p, TH_ESYNTAX, p->appendix_line, "appendix",
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

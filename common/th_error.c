/* th_error.c -- error names and the diagnostics list. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "th_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	int code;
	const char *name;
	const char *text;
} errors[] = {
	{TH_OK, "ok", "success"},
	{TH_ENOMEM, "nomem", "out of memory"},
	{TH_EINVAL, "invalid", "invalid argument"},
	{TH_EIO, "io", "input/output error"},
	{TH_ENOTFOUND, "not_found", "not found"},
	{TH_EEXIST, "exists", "already exists"},
	{TH_ESYNTAX, "syntax", "syntax error"},
	{TH_ETYPE, "type", "value of the wrong type"},
	{TH_ERANGE, "range", "value out of range"},
	{TH_EUTF8, "utf8", "invalid UTF-8"},
	{TH_ETOOBIG, "too_big", "limit exceeded"},
	{TH_ETRUNC, "truncated", "input truncated"},
	{TH_EDEPTH, "depth", "nesting too deep"},
	{TH_ERULE, "rule", "cross-field rule does not hold"},
	{TH_EOVERFLOW, "overflow", "integer overflow in an aggregate"},
	{TH_EENCODING, "encoding", "unsupported text encoding"},
	{TH_EAMBIGUOUS, "ambiguous", "ambiguous number"},
	{TH_EUNIT, "unknown_unit", "unknown unit"},
	{TH_EAPPENDIX, "unknown_appendix", "unknown appendix or version"},
	{TH_EPERIOD, "period", "malformed period"},
	{TH_EDUPKEY, "duplicate_key", "duplicate key"},
	{TH_ECYCLE, "cycle", "cycle in the unit hierarchy"},
	{TH_EPARENT, "unknown_parent", "unknown parent unit"},
	{TH_ESCOPE, "scope", "unit outside the sender's scope"},
	{TH_ECONFLICT, "conflict", "same revision with different content"},
	{TH_ESTALE, "stale", "a newer revision is stored"},
	{TH_EDEFCHANGED, "definition_changed", "another appendix version is in force"},
	{TH_EPROTO, "protocol", "malformed protocol message"},
	{TH_EAUTH, "auth", "not allowed"},
	{TH_EMAPFULL, "map_full", "store map full"},
	{TH_ENOSPC, "no_space", "no space left for the store"},
	{TH_ESTORE, "store", "store error"},
	{TH_EBUSY, "busy", "busy, retry later"},
	{TH_ETIMEOUT, "timeout", "timed out"},
	{TH_EMISSING, "missing", "required value missing"},
	{TH_ENET, "network", "network error"},
	{TH_EKEY, "key", "bad or unknown key"},
	{TH_ENOTEXPECTED, "not_expected", "the unit is not among the appendix's submitters"},
};

#define N_ERRORS (sizeof errors / sizeof errors[0])

const char *th_strerror(int err)
{
	for (size_t i = 0; i < N_ERRORS; i++)
		if (errors[i].code == err)
			return errors[i].text;
	return "unknown error";
}

const char *th_errname(int err)
{
	for (size_t i = 0; i < N_ERRORS; i++)
		if (errors[i].code == err)
			return errors[i].name;
	return "unknown";
}

int th_errcode(const char *name)
{
	if (!name)
		return 0;
	for (size_t i = 1; i < N_ERRORS; i++)
		if (strcmp(errors[i].name, name) == 0)
			return errors[i].code;
	return 0;
}

struct th_diag {
	th_diag_entry *e;
	char **text;       /* formatted lazily */
	size_t n, cap;
};

th_diag *th_diag_new(void)
{
	return calloc(1, sizeof(th_diag));
}

static void entry_free(th_diag_entry *e)
{
	free((char *)e->file);
	free((char *)e->column);
	free((char *)e->msg);
}

void th_diag_clear(th_diag *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		entry_free(&d->e[i]);
		free(d->text[i]);
	}
	d->n = 0;
}

void th_diag_destroy(th_diag **pd)
{
	if (!pd || !*pd)
		return;
	th_diag_clear(*pd);
	free((*pd)->e);
	free((*pd)->text);
	free(*pd);
	*pd = NULL;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int th_diag_vadd(th_diag *d, th_severity sev, int code, const char *file, long line,
                 long row, const char *column, const char *fmt, va_list ap)
{
	if (!d)
		return code;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		th_diag_entry *e = realloc(d->e, cap * sizeof *e);
		if (!e)
			return code;
		d->e = e;
		char **t = realloc(d->text, cap * sizeof *t);
		if (!t)
			return code;
		d->text = t;
		d->cap = cap;
	}
	char *msg = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		return code;
	th_diag_entry *e = &d->e[d->n];
	e->sev = sev;
	e->code = code;
	e->file = dup_or_null(file);
	e->line = line;
	e->row = row;
	e->column = dup_or_null(column);
	e->msg = msg;
	d->text[d->n] = NULL;
	d->n++;
	return code;
}

int th_diag_add(th_diag *d, th_severity sev, int code, const char *file, long line,
                long row, const char *column, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int rc = th_diag_vadd(d, sev, code, file, line, row, column, fmt, ap);
	va_end(ap);
	return rc;
}

size_t th_diag_count(const th_diag *d)
{
	return d ? d->n : 0;
}

size_t th_diag_errors(const th_diag *d)
{
	size_t k = 0;
	for (size_t i = 0; d && i < d->n; i++)
		k += d->e[i].sev == TH_SEV_ERROR;
	return k;
}

const th_diag_entry *th_diag_at(const th_diag *d, size_t i)
{
	return d && i < d->n ? &d->e[i] : NULL;
}

const char *th_diag_text(th_diag *d, size_t i)
{
	if (!d || i >= d->n)
		return "";
	if (d->text[i])
		return d->text[i];
	const th_diag_entry *e = &d->e[i];
	char where[512] = "";
	size_t w = 0;
	if (e->file && e->line > 0)
		w = (size_t)snprintf(where, sizeof where, "%s:%ld: ", e->file, e->line);
	else if (e->file && e->row > 0)
		w = (size_t)snprintf(where, sizeof where, "%s: row %ld: ", e->file, e->row);
	else if (e->file)
		w = (size_t)snprintf(where, sizeof where, "%s: ", e->file);
	else if (e->row > 0)
		w = (size_t)snprintf(where, sizeof where, "row %ld: ", e->row);
	if (w >= sizeof where)
		w = sizeof where - 1;
	if (e->column)
		snprintf(where + w, sizeof where - w, "%s: ", e->column);
	char *t = NULL;
	if (asprintf(&t, "%s%s%s", where, e->sev == TH_SEV_WARNING ? "warning: " : "", e->msg) < 0)
		return e->msg;
	d->text[i] = t;
	return t;
}

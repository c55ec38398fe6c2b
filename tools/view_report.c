/* view_report.c -- a unit's report, and its history with the differences
 * between revisions (th_view.h). */
#include "view_private.h"
#include "th_render.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

/* Machine-form text of a report cell; NULL for null.  buf holds 64 bytes. */
static const char *value_text(const th_column *c, const th_value *v, char *buf)
{
	th_cell x;
	th_cell_of_value(&x, c, v);
	return th_cell_text(&x, 0, buf);
}

int th_view_report(th_source *src, const char *unit, const char *appendix, const char *period,
                   th_doc **out, th_diag *diag)
{
	th_report *r = NULL;
	th_table *t = NULL;
	th_revision_info info;
	memset(&info, 0, sizeof info);
	int rc = th_source_report(src, unit, appendix, period, &r, &info);
	if (rc == TH_ENOTFOUND)
		return th_view_fail(diag, rc, "no report %s %s %s in %s", unit, appendix, period,
		                    th_source_name(src));
	if (rc)
		return th_view_fail(diag, rc, "reading %s %s %s: %s", unit, appendix, period,
		                    th_source_error(src));
	const th_def *d = th_defset_get(th_source_defs(src), r->appendix, r->version);
	if (!d) {
		rc = th_view_fail(diag, TH_EAPPENDIX, "definition %s version %u not found in --defs",
		                  r->appendix, r->version);
		goto out;
	}
	if (!(t = th_table_new(d->n_cols))) {
		rc = th_view_fail(diag, TH_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t c = 0; c < d->n_cols; c++)
		th_table_column(t, c, d->cols[c].id, d->cols[c].title, NULL,
		                d->cols[c].type == TH_T_INT || d->cols[c].type == TH_T_DEC);
	for (size_t i = 0; i < r->n_rows; i++) {
		long row = th_table_row(t);
		for (size_t c = 0; row >= 0 && c < d->n_cols && c < r->n_cols; c++)
			th_table_set_value(t, (size_t)row, c, &d->cols[c], th_report_cell(r, i, c));
	}
	char when[64];
	th_view_time(info.commit_time, when, sizeof when);
	th_table_add_title(t, "%s %s %s: %s v%u, rev %" PRIu64 ", committed %s by %s, %zu rows%s", unit,
	                   appendix, period, d->title, r->version, info.rev, when,
	                   info.sender[0] ? info.sender : "-", r->n_rows,
	                   info.tombstone ? " (WITHDRAWN)" : "");
	th_table_record(t, 1);
	if (!(*out = th_doc_of(t)))
		rc = th_view_fail(diag, TH_ENOMEM, "out of memory");
	t = NULL;
out:
	th_table_destroy(&t);
	th_report_destroy(&r);
	return rc;
}

/* --- history -------------------------------------------------------------------- */
/* Row key of row r as text ("row N" for keyless appendices). */
static void row_key_text(const th_def *d, const th_report *r, size_t row, char *buf, size_t cap)
{
	if (d->n_key == 0) {
		snprintf(buf, cap, "row %zu", row + 1);
		return;
	}
	size_t pos = 0;
	buf[0] = 0;
	for (size_t k = 0; k < d->n_key; k++) {
		char tmp[64];
		size_t c = d->key_cols[k];
		const char *s = c < r->n_cols ? value_text(&d->cols[c], th_report_cell(r, row, c), tmp) : NULL;
		int w = snprintf(buf + pos, cap - pos, "%s%s", k ? "/" : "", s ? s : "");
		if (w < 0 || (size_t)w >= cap - pos)
			return;
		pos += (size_t)w;
	}
}

static int row_key_cmp(const th_def *d, const th_report *a, size_t ra, const th_report *b, size_t rb)
{
	if (d->n_key == 0)
		return ra < rb ? -1 : ra > rb;
	for (size_t k = 0; k < d->n_key; k++) {
		size_t c = d->key_cols[k];
		int x = th_value_cmp(th_report_cell(a, ra, c), th_report_cell(b, rb, c), d->cols[c].type);
		if (x)
			return x;
	}
	return 0;
}

static int value_eq(const th_column *c, const th_value *a, const th_value *b)
{
	if (a->null || b->null)
		return a->null == b->null;
	return th_value_cmp(a, b, c->type) == 0;
}

static char *dup_or_null(const char *s, int *oom)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*oom = 1;
	return d;
}

static int add_change(th_revision *v, th_change_kind kind, const char *row, const char *col,
                      const char *before, const char *after)
{
	th_change *n = realloc(v->changes, (v->n_changes + 1) * sizeof *n);
	if (!n)
		return TH_ENOMEM;
	v->changes = n;
	int oom = 0;
	th_change c = {.kind = kind, .row = dup_or_null(row, &oom), .column = dup_or_null(col, &oom),
	               .before = dup_or_null(before, &oom), .after = dup_or_null(after, &oom)};
	v->changes[v->n_changes++] = c;
	if (kind == TH_CHANGE_ADDED)
		v->added++;
	else if (kind == TH_CHANGE_REMOVED)
		v->removed++;
	else
		v->changed++;
	return oom ? TH_ENOMEM : 0;
}

/* The changes from old to cur: rows of cur in order (added, or their changed
 * cells), then the rows of old that cur lacks. */
static int compare(th_revision *v, const th_def *d, const th_report *old, const th_report *cur)
{
	char key[256], b1[64], b2[64];
	int rc = 0;
	for (size_t i = 0; i < cur->n_rows && !rc; i++) {
		size_t j = 0;
		int found = 0;
		for (j = 0; j < old->n_rows; j++)
			if (row_key_cmp(d, cur, i, old, j) == 0) {
				found = 1;
				break;
			}
		row_key_text(d, cur, i, key, sizeof key);
		if (!found) {
			rc = add_change(v, TH_CHANGE_ADDED, key, NULL, NULL, NULL);
			continue;
		}
		for (size_t c = 0; c < d->n_cols && c < cur->n_cols && c < old->n_cols && !rc; c++) {
			const th_value *a = th_report_cell(old, j, c), *b = th_report_cell(cur, i, c);
			if (!value_eq(&d->cols[c], a, b))
				rc = add_change(v, TH_CHANGE_CELL, key, d->cols[c].id,
				                value_text(&d->cols[c], a, b1), value_text(&d->cols[c], b, b2));
		}
	}
	for (size_t j = 0; j < old->n_rows && !rc; j++) {
		int found = 0;
		for (size_t i = 0; i < cur->n_rows && !found; i++)
			found = row_key_cmp(d, cur, i, old, j) == 0;
		if (!found) {
			row_key_text(d, old, j, key, sizeof key);
			rc = add_change(v, TH_CHANGE_REMOVED, key, NULL, NULL, NULL);
		}
	}
	return rc;
}

typedef struct hist_ctx {
	const th_defset *defs;
	th_history *h;
	th_report *prev;
} hist_ctx;

static int hist_cb(void *ctx, const th_revision_info *info, const th_report *r)
{
	hist_ctx *x = ctx;
	th_revision *n = realloc(x->h->revs, (x->h->n + 1) * sizeof *n);
	if (!n)
		return TH_ENOMEM;
	x->h->revs = n;
	th_revision *v = &n[x->h->n++];
	memset(v, 0, sizeof *v);
	v->info = *info;
	th_view_time(info->commit_time, v->when, sizeof v->when);
	v->n_rows = r ? r->n_rows : 0;
	if (!r) {
		v->kind = TH_REV_NO_REPORT;
		return 0;
	}
	snprintf(v->appendix, sizeof v->appendix, "%s", r->appendix);
	v->version = r->version;
	const th_def *d = th_defset_get(x->defs, r->appendix, r->version);
	int rc = 0;
	if (!d) {
		v->kind = TH_REV_NO_DEFINITION;
	} else if (!x->prev) {
		v->kind = TH_REV_FIRST;
	} else if (x->prev->version != r->version) {
		v->kind = TH_REV_NEW_VERSION;
		v->prev_version = x->prev->version;
	} else {
		v->kind = TH_REV_COMPARED;
		rc = compare(v, d, x->prev, r);
	}
	th_report *c = rc ? NULL : th_report_clone(r);
	if (!c)
		return TH_ENOMEM;
	th_report_destroy(&x->prev);
	x->prev = c;
	return 0;
}

void th_history_destroy(th_history **ph)
{
	if (!ph || !*ph)
		return;
	th_history *h = *ph;
	for (size_t i = 0; i < h->n; i++) {
		th_revision *v = &h->revs[i];
		for (size_t k = 0; k < v->n_changes; k++) {
			free(v->changes[k].row);
			free(v->changes[k].column);
			free(v->changes[k].before);
			free(v->changes[k].after);
		}
		free(v->changes);
	}
	free(h->revs);
	free(h);
	*ph = NULL;
}

int th_view_history(th_source *src, const char *unit, const char *appendix, const char *period,
                    th_history **out, th_diag *diag)
{
	hist_ctx x = {.defs = th_source_defs(src), .h = calloc(1, sizeof(th_history))};
	if (!x.h)
		return th_view_fail(diag, TH_ENOMEM, "out of memory");
	int rc = th_source_history(src, unit, appendix, period, hist_cb, &x);
	th_report_destroy(&x.prev);
	if (rc) {
		th_history_destroy(&x.h);
		return th_view_fail(diag, rc, "reading history: %s",
		                    rc == TH_ENOMEM ? th_strerror(rc) : th_source_error(src));
	}
	*out = x.h;
	return 0;
}

int th_history_write(const th_history *h, FILE *f)
{
	fprintf(f, "\nHistory (oldest first):\n");
	for (size_t i = 0; i < h->n; i++) {
		const th_revision *v = &h->revs[i];
		fprintf(f, "rev %" PRIu64 "  %s  sender %s  commit %" PRIu64 "%s  %zu rows\n", v->info.rev,
		        v->when, v->info.sender[0] ? v->info.sender : "-", v->info.commit,
		        v->info.tombstone ? "  WITHDRAWN" : "", v->n_rows);
		switch (v->kind) {
		case TH_REV_NO_REPORT:
			break;
		case TH_REV_NO_DEFINITION:
			fprintf(f, "    (definition %s v%u not available)\n", v->appendix, v->version);
			break;
		case TH_REV_FIRST:
			fprintf(f, "    first revision\n");
			break;
		case TH_REV_NEW_VERSION:
			fprintf(f, "    definition version changed: %u -> %u\n", v->prev_version, v->version);
			break;
		case TH_REV_COMPARED:
			for (size_t k = 0; k < v->n_changes; k++) {
				const th_change *c = &v->changes[k];
				if (c->kind == TH_CHANGE_CELL)
					fprintf(f, "    %s: %s: %s -> %s\n", c->row, c->column,
					        c->before ? c->before : "(empty)", c->after ? c->after : "(empty)");
				else
					fprintf(f, "    %s: %s\n", c->row, c->kind == TH_CHANGE_ADDED ? "added" : "removed");
			}
			fprintf(f, "    (%zu rows added, %zu removed, %zu cells changed)\n", v->added, v->removed,
			        v->changed);
			break;
		}
	}
	return fflush(f) == 0 && !ferror(f) ? 0 : TH_EIO;
}

/* drop.c -- the drop folder's workflow (drop.h). */
#include "drop.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "intake.h"
#include "th_clock.h"
#include "th_log.h"

#define PATH_CAP 4096

struct th_drop {
	char *dir, *outbox;
	int keep, force;
	const volatile sig_atomic_t *stop;
	th_drop_hooks h;
};

/* One valid file of a scan batch, read and waiting for the outbox. */
typedef struct drop_item {
	char *name, *src, *work, *done_, *errs;   /* malloc'd */
	th_report *r;
	uint8_t hash[TH_HASH_LEN];
} drop_item;

static void say(th_drop *d, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(th_drop *d, int level, const char *fmt, ...)
{
	if (!d->h.log)
		return;
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	d->h.log(d->h.ctx, level, buf);
}

static void problems(th_drop *d, th_diag *diag)
{
	if (d->h.problems && th_diag_count(diag))
		d->h.problems(d->h.ctx, diag);
}

static char *fmtdup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmtdup(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_CAP)
		return NULL;
	char *p = malloc((size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

int th_drop_new(const th_drop_opts *o, const th_drop_hooks *h, th_drop **out)
{
	if (!o || !o->dir || !out)
		return TH_EINVAL;
	th_drop *d = calloc(1, sizeof *d);
	if (!d || !(d->dir = strdup(o->dir)) ||
	    !(d->outbox = strdup(o->outbox ? o->outbox : "(outbox)"))) {
		if (d)
			free(d->dir);
		free(d);
		return TH_ENOMEM;
	}
	d->keep = o->keep;
	d->force = o->force;
	d->stop = o->stop;
	if (h)
		d->h = *h;
	*out = d;
	return 0;
}

void th_drop_destroy(th_drop **pd)
{
	if (!pd || !*pd)
		return;
	free((*pd)->dir);
	free((*pd)->outbox);
	free(*pd);
	*pd = NULL;
}

/* The sidecar listing every problem (written aside, then renamed into place). */
static int write_errors(const char *path, th_diag *diag)
{
	char tmp[PATH_CAP + 8];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
		return -1;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	for (size_t i = 0; i < th_diag_count(diag); i++)
		fprintf(f, "%s\n", th_diag_text(diag, i));
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* A file taken to .work goes back to its place unless a newer one took the
 * name meanwhile (then it stays where it is: 0 / -1). */
static int put_back(const char *work, const char *src)
{
	if (link(work, src) != 0)
		return -1;
	unlink(work);
	return 0;
}

static void item_free(drop_item *it)
{
	free(it->name);
	free(it->src);
	free(it->work);
	free(it->done_);
	free(it->errs);
	th_report_destroy(&it->r);
	memset(it, 0, sizeof *it);
}

/* The diagnostics of a file read as DIR/.work/NAME, named DIR/NAME. */
static th_diag *renamed_diag(th_diag *diag, const char *src)
{
	th_diag *d2 = th_diag_new();
	for (size_t i = 0; d2 && i < th_diag_count(diag); i++) {
		const th_diag_entry *e = th_diag_at(diag, i);
		th_diag_add(d2, e->sev, e->code, e->file ? src : NULL, e->line, e->row, e->column, "%s",
		            e->msg);
	}
	return d2;
}

/* An invalid file: the sidecar, the problems told, the file back in place. */
static void invalid(th_drop *d, th_watch *w, drop_item *it, th_diag *diag)
{
	write_errors(it->errs, diag);
	say(d, TH_LOG_ERROR, "%s: invalid, not sent (%zu problem(s), see %s)", it->src,
	    th_diag_errors(diag), it->errs);
	problems(d, diag);
	if (!d->keep && put_back(it->work, it->src) != 0) {
		char *inval = fmtdup("%s/.done/%s.invalid", d->dir, it->name);
		if (inval)
			rename(it->work, inval);
		free(inval);
	}
	th_watch_done(w, it->name);
}

/* Takes one complete file of the drop folder and reads it.  An invalid one is
 * handled here; a valid one fills *it and returns 1 (to be queued with the rest
 * of the batch); 0 otherwise. */
static int prepare(th_drop *d, th_watch *w, const th_defset *defs, const char *name,
                   drop_item *it)
{
	memset(it, 0, sizeof *it);
	it->name = strdup(name);
	it->src = fmtdup("%s/%s", d->dir, name);
	it->errs = fmtdup("%s/%s.errors.txt", d->dir, name);
	it->done_ = fmtdup("%s/.done/%s", d->dir, name);
	it->work = fmtdup("%s/.work/%s", d->dir, name);
	if (!it->name || !it->src || !it->errs || !it->done_ || !it->work) {
		say(d, TH_LOG_ERROR, "%s/%s: path too long (or out of memory)", d->dir, name);
		item_free(it);
		return 0;
	}
	const char *path = it->src;
	if (!d->keep) {
		/* take the file out of the folder first: a newer file dropped under
		 * the same name while we read this one is a new event */
		char sub[PATH_CAP + 8];
		if ((size_t)snprintf(sub, sizeof sub, "%s/.work", d->dir) < sizeof sub)
			mkdir(sub, 0750);
		if ((size_t)snprintf(sub, sizeof sub, "%s/.done", d->dir) < sizeof sub)
			mkdir(sub, 0750);
		if (rename(it->src, it->work) != 0) {
			item_free(it);
			return 0;   /* gone already */
		}
		path = it->work;
	}
	th_diag *diag = th_diag_new();
	if (!diag) {
		if (!d->keep)
			put_back(it->work, it->src);
		item_free(it);
		return 0;
	}
	if (th_intake_file(path, defs, &it->r, it->hash, diag) != 0) {
		th_diag *named = renamed_diag(diag, it->src);
		if (named) {
			th_diag_destroy(&diag);
			diag = named;
		}
		invalid(d, w, it, diag);
		th_diag_destroy(&diag);
		item_free(it);
		return 0;
	}
	problems(d, diag);   /* warnings */
	th_diag_destroy(&diag);
	return 1;
}

/* After the batch's transaction: says what happened to one file and moves it
 * to .done (or back in place when it could not be queued). */
static void finish(th_drop *d, th_watch *w, drop_item *it, int rc, const th_ob_enqueued *res)
{
	const th_report *r = it->r;
	const char *src = it->src;
	if (rc) {
		say(d, TH_LOG_ERROR, "%s: cannot write to the outbox: %s; will try again", src,
		    th_strerror(rc));
		if (!d->keep)
			put_back(it->work, src);
		return;
	}
	switch (res->outcome) {
	case TH_OB_NEW:
		say(d, TH_LOG_INFO, "%s: %s %s %s queued as rev %llu", src, r->unit, r->appendix,
		    r->period, (unsigned long long)res->rev);
		break;
	case TH_OB_SAME_PENDING:
		say(d, TH_LOG_INFO, "%s: %s %s %s: the same content is already queued (rev %llu)", src,
		    r->unit, r->appendix, r->period, (unsigned long long)res->rev);
		break;
	case TH_OB_SAME_DELIVERED:
		say(d, TH_LOG_INFO, "%s: %s %s %s: already delivered (rev %llu)", src, r->unit,
		    r->appendix, r->period, (unsigned long long)res->rev);
		break;
	case TH_OB_SAME_STALE:
	case TH_OB_OLD_CONTENT:
		say(d, TH_LOG_WARN, "%s: %s %s %s: this content was sent before as rev %llu and has "
		                    "been superseded since%s; not sent (send it with --force to make it "
		                    "current again)",
		    src, r->unit, r->appendix, r->period, (unsigned long long)res->rev,
		    res->outcome == TH_OB_SAME_STALE ? " (answered stale)" : "");
		break;
	}
	unlink(it->errs);
	if (!d->keep)
		rename(it->work, it->done_);
	else
		th_watch_done(w, it->name);
}

static int stopped(const th_drop *d) { return d->stop && *d->stop; }

size_t th_drop_process(th_drop *d, th_outbox *ob, th_watch *w, const th_defset *defs,
                       char **names, size_t n)
{
	drop_item *items = calloc(TH_DROP_BATCH, sizeof *items);
	th_ob_item *q = calloc(TH_DROP_BATCH, sizeof *q);
	size_t handed = 0;
	if (!items || !q) {
		free(items);
		free(q);
		return 0;   /* the files stay where they are and come back at the next scan */
	}
	size_t i = 0;
	while (i < n && !stopped(d)) {
		size_t k = 0;
		for (; i < n && k < TH_DROP_BATCH && !stopped(d); i++)
			if (prepare(d, w, defs, names[i], &items[k])) {
				memset(&q[k], 0, sizeof q[k]);
				q[k].r = items[k].r;
				q[k].def = th_defset_get(defs, items[k].r->appendix, items[k].r->version);
				q[k].hash = items[k].hash;
				q[k].file = d->keep ? items[k].src : items[k].done_;
				k++;
			}
		if (!k)
			continue;
		int rc = th_outbox_enqueue_many(ob, q, k, d->force, th_now_us());
		if (rc)
			say(d, TH_LOG_ERROR, "cannot write to the outbox %s: %s", d->outbox, th_strerror(rc));
		for (size_t j = 0; j < k; j++) {
			finish(d, w, &items[j], q[j].rc, &q[j].res);
			item_free(&items[j]);
		}
		handed += k;
	}
	free(items);
	free(q);
	return handed;
}

void th_drop_recover(th_drop *d)
{
	if (d->keep)
		return;
	char wd[PATH_CAP + 8];
	if ((size_t)snprintf(wd, sizeof wd, "%s/.work", d->dir) >= sizeof wd)
		return;
	DIR *dir = opendir(wd);
	if (!dir)
		return;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char from[2 * PATH_CAP], to[2 * PATH_CAP];
		if ((size_t)snprintf(from, sizeof from, "%s/%s", wd, de->d_name) >= sizeof from ||
		    (size_t)snprintf(to, sizeof to, "%s/%s", d->dir, de->d_name) >= sizeof to)
			continue;
		if (put_back(from, to) == 0) {
			say(d, TH_LOG_INFO, "%s: taken back from an interrupted run", to);
		} else if (errno == EEXIST &&
		           (size_t)snprintf(to, sizeof to, "%s/.done/%s.interrupted", d->dir,
		                            de->d_name) < sizeof to) {
			rename(from, to);
			say(d, TH_LOG_WARN, "%s/%s: a newer file has the name; the one an interrupted run "
			                    "was handling is kept as %s", d->dir, de->d_name, to);
		}
	}
	closedir(dir);
}

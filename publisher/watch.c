/* watch.c -- drop folder readiness (watch.h): inotify + polling. */
#include "watch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "th_error.h"

#ifdef __linux__
#include <sys/inotify.h>
#define TH_HAVE_INOTIFY 1
#endif

typedef struct sig {
	int valid;
	off_t size;
	int64_t mtime_ns;
	ino_t ino;
} sig;

typedef struct cand {
	char *name;
	sig cur;            /* seen at the last scan */
	int stable;         /* scans in a row with the same signature */
	int closed;         /* inotify: closed after writing / moved in */
	int64_t last_event; /* mono ms of the last inotify event */
	sig done;           /* handled with this signature */
	int seen;           /* present at the last scan */
} cand;

struct th_watch {
	char *dir;
	int quiet_ms, poll_ms;
	int fd;             /* inotify or -1 */
	int64_t next_scan;
	cand *c;
	size_t n, cap;
};

int th_watch_ignored(const char *name)
{
	size_t n = strlen(name);
	static const char *const suffix[] = {".errors.txt", ".tmp", ".part", ".swp", "~"};
	if (n == 0 || name[0] == '.')
		return 1;
	for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
		size_t l = strlen(suffix[i]);
		if (n >= l && strcmp(name + n - l, suffix[i]) == 0)
			return 1;
	}
	return 0;
}

static int get_sig(const th_watch *w, const char *name, sig *s)
{
	char path[4096];
	struct stat st;
	memset(s, 0, sizeof *s);
	if ((size_t)snprintf(path, sizeof path, "%s/%s", w->dir, name) >= sizeof path)
		return -1;
	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	s->valid = 1;
	s->size = st.st_size;
	s->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	s->ino = st.st_ino;
	return 0;
}

static int sig_eq(const sig *a, const sig *b)
{
	return a->valid && b->valid && a->size == b->size && a->mtime_ns == b->mtime_ns &&
	       a->ino == b->ino;
}

static cand *find(th_watch *w, const char *name, int create)
{
	for (size_t i = 0; i < w->n; i++)
		if (!strcmp(w->c[i].name, name))
			return &w->c[i];
	if (!create)
		return NULL;
	if (w->n == w->cap) {
		size_t nc = w->cap ? w->cap * 2 : 16;
		cand *nv = realloc(w->c, nc * sizeof *nv);
		if (!nv)
			return NULL;
		w->c = nv;
		w->cap = nc;
	}
	cand *c = &w->c[w->n];
	memset(c, 0, sizeof *c);
	c->name = strdup(name);
	if (!c->name)
		return NULL;
	w->n++;
	return c;
}

int th_watch_open(const th_watch_opts *o, th_watch **out, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	struct stat st;
	if (!o || !o->dir || stat(o->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		*why = "the drop folder does not exist or is not a directory";
		return TH_ENOTFOUND;
	}
	th_watch *w = calloc(1, sizeof *w);
	if (!w || !(w->dir = strdup(o->dir))) {
		free(w);
		return TH_ENOMEM;
	}
	w->quiet_ms = o->quiet_ms > 0 ? o->quiet_ms : 500;
	w->poll_ms = (o->poll_s > 0 ? o->poll_s : 2) * 1000;
	w->fd = -1;
#ifdef TH_HAVE_INOTIFY
	if (!o->force_poll) {
		w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
		if (w->fd >= 0 &&
		    inotify_add_watch(w->fd, o->dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY |
		                                         IN_CREATE | IN_DELETE | IN_MOVED_FROM) < 0) {
			close(w->fd);
			w->fd = -1;
		}
	}
#endif
	w->next_scan = 0;
	*out = w;
	return 0;
}

void th_watch_destroy(th_watch **pw)
{
	if (!pw || !*pw)
		return;
	th_watch *w = *pw;
	if (w->fd >= 0)
		close(w->fd);
	for (size_t i = 0; i < w->n; i++)
		free(w->c[i].name);
	free(w->c);
	free(w->dir);
	free(w);
	*pw = NULL;
}

int th_watch_fd(const th_watch *w) { return w->fd; }
const char *th_watch_backend(const th_watch *w) { return w->fd >= 0 ? "inotify" : "polling"; }

int th_watch_timeout(const th_watch *w, int64_t now_ms)
{
	int64_t t = w->next_scan;
	for (size_t i = 0; i < w->n; i++)
		if (w->c[i].closed && w->c[i].last_event + w->quiet_ms < t)
			t = w->c[i].last_event + w->quiet_ms;
	t -= now_ms;
	return t < 0 ? 0 : t > 60000 ? 60000 : (int)t;
}

static void read_events(th_watch *w, int64_t now)
{
#ifdef TH_HAVE_INOTIFY
	if (w->fd < 0)
		return;
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof buf);
		if (n <= 0)
			return;
		for (char *p = buf; p < buf + n;) {
			struct inotify_event *ev = (struct inotify_event *)p;
			p += sizeof *ev + ev->len;
			if (ev->mask & IN_Q_OVERFLOW) {
				w->next_scan = now;   /* lost events: scan, trust the scan */
				for (size_t i = 0; i < w->n; i++)
					w->c[i].last_event = 0;
				continue;
			}
			if (!ev->len || th_watch_ignored(ev->name))
				continue;
			if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
				continue;   /* the next scan forgets it */
			cand *c = find(w, ev->name, 1);
			if (!c)
				continue;
			c->last_event = now;
			if (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO))
				c->closed = 1;
			else
				c->closed = 0;   /* being written: wait for the close */
		}
	}
#else
	(void)w;
	(void)now;
#endif
}

static void scan(th_watch *w)
{
	DIR *d = opendir(w->dir);
	if (!d)
		return;
	for (size_t i = 0; i < w->n; i++)
		w->c[i].seen = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (th_watch_ignored(de->d_name))
			continue;
		sig s;
		if (get_sig(w, de->d_name, &s) != 0)
			continue;
		cand *c = find(w, de->d_name, 1);
		if (!c)
			continue;
		c->seen = 1;
		if (sig_eq(&c->cur, &s)) {
			c->stable++;
		} else {
			c->cur = s;
			c->stable = 0;
		}
	}
	closedir(d);
	/* forget the files that went away (moved to .done, deleted) */
	for (size_t i = 0; i < w->n;) {
		if (!w->c[i].seen && !w->c[i].closed) {
			free(w->c[i].name);
			w->c[i] = w->c[--w->n];
		} else {
			i++;
		}
	}
}

int th_watch_ready(th_watch *w, int64_t now, char ***names, size_t *n_out)
{
	*names = NULL;
	*n_out = 0;
	read_events(w, now);
	int scanned = 0;
	if (now >= w->next_scan) {
		scan(w);
		scanned = 1;
		w->next_scan = now + w->poll_ms;
	}
	char **out = NULL;
	size_t n = 0;
	for (size_t i = 0; i < w->n;) {
		cand *c = &w->c[i];
		int ready = 0;
		if (c->closed && now - c->last_event >= w->quiet_ms)
			ready = 1;
		else if (scanned && c->seen && c->stable >= 1 && (w->fd < 0 || c->last_event == 0))
			ready = 1;   /* polling; or no event ever seen for it (present at start) */
		if (!ready) {
			i++;
			continue;
		}
		sig s;
		c->closed = 0;
		if (get_sig(w, c->name, &s) != 0) {
			free(c->name);
			*c = w->c[--w->n];
			continue;
		}
		if (sig_eq(&s, &c->done)) {
			i++;
			continue;
		}
		char **nv = realloc(out, (n + 1) * sizeof *nv);
		if (!nv)
			break;
		out = nv;
		out[n] = strdup(c->name);
		if (!out[n])
			break;
		n++;
		c->cur = s;
		c->done = s;   /* returned once per content */
		i++;
	}
	*names = out;
	*n_out = n;
	return 0;
}

void th_watch_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void th_watch_done(th_watch *w, const char *name)
{
	sig s;
	if (get_sig(w, name, &s) != 0)
		return;
	cand *c = find(w, name, 1);
	if (c) {
		c->done = s;
		c->cur = s;
		c->closed = 0;
	}
}

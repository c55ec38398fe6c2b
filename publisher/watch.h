/* watch.h -- the drop folder: which files are complete and ready to read.
 *
 * The platform seam of the agent: inotify on Linux (a file is ready after
 * IN_CLOSE_WRITE or IN_MOVED_TO plus a quiet period without further events),
 * and everywhere a polling scan every poll_s seconds (a file is ready when
 * its size, mtime and inode are the same in two scans in a row).  With
 * inotify the scan still runs as a safety net (missed or overflowed events,
 * files present at start).
 *
 * Ignored names: hidden files (".x", so DIR/.done and DIR/.work), and names
 * ending in ".errors.txt", ".tmp", ".part", ".swp" or "~" (editors and
 * copy tools write those before renaming into place).
 */
#ifndef TH_WATCH_H
#define TH_WATCH_H

#include <stdint.h>
#include <stddef.h>

typedef struct th_watch th_watch;

typedef struct th_watch_opts {
	const char *dir;
	int quiet_ms;      /* 0: 500 */
	int poll_s;        /* 0: 2 */
	int force_poll;    /* 1: no inotify even where available */
} th_watch_opts;

/* Opens the watch (creating nothing: dir must exist).  *why on failure. */
int th_watch_open(const th_watch_opts *o, th_watch **out, const char **why);
void th_watch_destroy(th_watch **w);
/* The descriptor to poll for readability, or -1 when polling only. */
int th_watch_fd(const th_watch *w);
/* "inotify" or "polling". */
const char *th_watch_backend(const th_watch *w);
/* Milliseconds until th_watch_ready has something to do (>= 0). */
int th_watch_timeout(const th_watch *w, int64_t now_ms);
/* Reads pending events, scans when due, and returns the names (not paths)
 * of files that are complete: *names malloc'd array of malloc'd strings
 * (free with th_watch_names_free).  A name is returned once per content:
 * after handling it the caller moves it away or calls th_watch_done. */
int th_watch_ready(th_watch *w, int64_t now_ms, char ***names, size_t *n);
void th_watch_names_free(char **names, size_t n);
/* Remembers name's current size/mtime/inode as handled: it is not returned
 * again until it changes. */
void th_watch_done(th_watch *w, const char *name);
/* 1 when the drop folder would ignore this name. */
int th_watch_ignored(const char *name);

#endif

/* cmd_watch.c -- `tonghop watch`: follow the collector's rollup stream
 * (collector/QUERY.md, "Rollup stream") and print one line per changed node.
 * A jump of more than one in a node's version means messages were missed:
 * the line says so (re-read the node with `tonghop rollup`). */
#include "tonghop.h"
#include "th_client.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Last version seen per node (unit+appendix+period), for gap detection. */
typedef struct seen {
	char key[3 * 65 + 4];
	uint64_t version;
} seen;

/* "  GAP: ..." when m's version skips one after the last seen for its node. */
static const char *gap_of(seen **tab, size_t *n_tab, const th_stream_msg *m)
{
	char key[sizeof (*tab)->key];
	snprintf(key, sizeof key, "%s\x1f%s\x1f%s", m->unit, m->appendix, m->period);
	size_t i;
	for (i = 0; i < *n_tab && strcmp((*tab)[i].key, key); i++)
		;
	if (i == *n_tab) {
		seen *nt = realloc(*tab, (*n_tab + 1) * sizeof *nt);
		if (nt) {
			*tab = nt;
			snprintf(nt[*n_tab].key, sizeof nt[*n_tab].key, "%s", key);
			nt[*n_tab].version = m->version;
			(*n_tab)++;
		}
		return "";
	}
	const char *gap = m->version > (*tab)[i].version + 1
	                      ? "  GAP: missed updates, re-read with `tonghop rollup`" : "";
	(*tab)[i].version = m->version;
	return gap;
}

int th_cmd_watch(const th_opts *o)
{
	long level = o->level_set ? o->level : 0;
	th_stream *s = NULL;
	seen *tab = NULL;
	size_t n_tab = 0;
	char why[600];
	int rc = th_stream_open(o->pub, o->key, o->server_key, o->insecure, level, o->unit, &s, why,
	                        sizeof why);
	if (rc) {
		fprintf(stderr, "%s watch: %s\n", th_prog, why);
		return rc == TH_EINVAL ? EXIT_USAGE : 1;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	fprintf(stderr, "%s watch: following %s%s (Ctrl-C stops)\n", th_prog, o->pub,
	        level > 0 ? " (filtered)" : "");
	long got = 0;
	while (!stop && (o->count <= 0 || got < o->count)) {
		th_stream_msg m;
		rc = th_stream_next(s, 200, &m);
		if (rc == TH_EPROTO)
			fprintf(stderr, "%s watch: a message that is not a rollup map, ignored\n", th_prog);
		if (rc)
			continue;      /* timeout or signal: check the flags */
		char when[32];
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		strftime(when, sizeof when, "%H:%M:%S", &tm);
		printf("%s  L%" PRIu64 " %-8s %s %s  version %" PRIu64 "  commit %" PRIu64
		       "  reported %" PRIu64 "/%" PRIu64 "  on time %" PRIu64 "  late %" PRIu64 "%s\n",
		       when, m.level, m.unit, m.appendix, m.period, m.version, m.commit, m.reported,
		       m.expected, m.on_time, m.late, gap_of(&tab, &n_tab, &m));
		fflush(stdout);
		got++;
	}
	free(tab);
	th_stream_destroy(&s);
	return 0;
}

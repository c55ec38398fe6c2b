/* metrics.h -- the collector's counters and commit latency in Prometheus text
 * exposition format (version 0.0.4), written atomically to a file for
 * node_exporter's textfile collector.  Every metric is described in
 * docs/metrics.md.
 *
 * The module keeps one process-wide state: configure it once, then call
 * th_metrics_observe_commit() and th_metrics_tick() from the server thread and
 * th_metrics_write() at shutdown, from one thread at a time. */
#ifndef TH_METRICS_H
#define TH_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* The collector's counters (docs/metrics.md; the stats query of collector/QUERY.md). */
typedef struct th_stats {
	uint64_t accepted, duplicate, stale, conflict, retry_later, rejected;
	uint64_t refused_msgs;        /* whole messages refused (malformed, unauthorised) */
	uint64_t hellos, submits, queries;
	uint64_t records, bytes;
	uint64_t commits, group_reports_max, group_reports_sum;
	uint64_t commit_us_max, commit_us_sum;
	uint64_t published;
	uint64_t inflight_refused;    /* submits refused: too many in flight on one connection */
	uint64_t conns_refused;       /* messages refused: too many live connections for one key */
	uint64_t disconnects;         /* ingest connections ended, for any reason (KEYS.md) */
	uint64_t conns_live;          /* ingest connections tracked as live now (a gauge) */
} th_stats;

/* Number of finite commit-latency histogram buckets. */
#define TH_METRICS_BUCKETS 12

/* Enables the textfile at path (NULL disables; the string must outlive the
 * module's use), written every interval_s seconds (>= 1) by th_metrics_tick(). */
void th_metrics_configure(const char *path, int interval_s);

/* Records one committed group's latency in microseconds (negative counts as 0). */
void th_metrics_observe_commit(int64_t us);

/* Writes the file when enabled and interval_s seconds have passed since the
 * last write (the first call writes at once).  Returns 0, or the error of
 * th_metrics_write().  A failure is logged once per streak of failures. */
int th_metrics_tick(const th_stats *st);

/* Writes the file now: path.tmp then rename(2), so that readers see either the
 * old or the new file.  Returns 0, TH_EINVAL when disabled, TH_EIO on failure. */
int th_metrics_write(const th_stats *st);

/* Formats the exposition text into buf (NUL-terminated).  Returns the length,
 * or TH_ETOOBIG when cap is too small (buf then holds a truncated text). */
int th_metrics_format(const th_stats *st, char *buf, size_t cap);

#endif

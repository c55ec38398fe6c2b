/* metrics.c -- Prometheus text exposition of th_stats (docs/metrics.md). */
#include "metrics.h"
#include "th_wire.h"
#include "th_clock.h"
#include "th_log.h"
#include "th_error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* upper bounds of the commit-latency buckets, in microseconds */
static const uint64_t bucket_us[TH_METRICS_BUCKETS] = {
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};

static struct {
	const char *path;
	int interval_s;
	time_t started;
	int64_t last_write;            /* monotonic seconds, -1: never */
	int failing;
	uint64_t bucket[TH_METRICS_BUCKETS];   /* non-cumulative counts */
	uint64_t count, sum_us;
} M = {NULL, 10, 0, -1, 0, {0}, 0, 0};

static int64_t mono_s(void) { return th_mono_us() / 1000000; }

void th_metrics_configure(const char *path, int interval_s)
{
	M.path = path;
	M.interval_s = interval_s >= 1 ? interval_s : 10;
	M.started = time(NULL);
	M.last_write = -1;
	M.failing = 0;
}

void th_metrics_observe_commit(int64_t us)
{
	uint64_t u = us > 0 ? (uint64_t)us : 0;
	for (int i = 0; i < TH_METRICS_BUCKETS; i++)
		if (u <= bucket_us[i]) {
			M.bucket[i]++;
			break;
		}
	M.count++;
	M.sum_us += u;
}

typedef struct {
	char *buf;
	size_t cap, len;
	int over;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
	if (b->over)
		return;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->buf + b->len, b->cap - b->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= b->cap - b->len) {
		b->over = 1;
		return;
	}
	b->len += (size_t)n;
}

static void head(sbuf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void counter(sbuf *b, const char *name, const char *help, uint64_t v)
{
	head(b, name, "counter", help);
	put(b, "%s %llu\n", name, (unsigned long long)v);
}

static void gauge(sbuf *b, const char *name, const char *help, double v)
{
	head(b, name, "gauge", help);
	put(b, "%s %.17g\n", name, v);
}

int th_metrics_format(const th_stats *st, char *buf, size_t cap)
{
	if (!st || !buf || cap == 0)
		return TH_EINVAL;
	sbuf b = {buf, cap, 0, 0};
	buf[0] = 0;
	head(&b, "tonghop_collector_info", "gauge", "Constant 1, labelled with the collector's version.");
	put(&b, "tonghop_collector_info{version=\"%s\",protocol=\"%d\"} 1\n", TH_VERSION, TH_WIRE_VERSION);
	gauge(&b, "tonghop_collector_start_time_seconds", "Start time of the collector, seconds since the Unix epoch.",
	      (double)M.started);
	gauge(&b, "tonghop_collector_metrics_time_seconds", "When this file was written, seconds since the Unix epoch.",
	      (double)time(NULL));
	head(&b, "tonghop_collector_reports_total", "counter",
	     "Reports answered, by acknowledgement status.");
	const struct {
		const char *l;
		uint64_t v;
	} rs[] = {{"accepted", st->accepted}, {"duplicate", st->duplicate}, {"stale", st->stale},
	          {"conflict", st->conflict}, {"retry_later", st->retry_later}, {"rejected", st->rejected}};
	for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++)
		put(&b, "tonghop_collector_reports_total{status=\"%s\"} %llu\n", rs[i].l,
		    (unsigned long long)rs[i].v);
	head(&b, "tonghop_collector_messages_total", "counter", "Messages received, by type.");
	put(&b, "tonghop_collector_messages_total{type=\"hello\"} %llu\n", (unsigned long long)st->hellos);
	put(&b, "tonghop_collector_messages_total{type=\"submit\"} %llu\n", (unsigned long long)st->submits);
	put(&b, "tonghop_collector_messages_total{type=\"query\"} %llu\n", (unsigned long long)st->queries);
	counter(&b, "tonghop_collector_refused_messages_total",
	        "Whole messages refused (malformed, wrong protocol version, unauthorised).", st->refused_msgs);
	head(&b, "tonghop_collector_limit_refused_total", "counter",
	     "Messages refused with retry_later because a limit was reached, by limit.");
	put(&b, "tonghop_collector_limit_refused_total{limit=\"inflight\"} %llu\n",
	    (unsigned long long)st->inflight_refused);
	put(&b, "tonghop_collector_limit_refused_total{limit=\"connections_per_key\"} %llu\n",
	    (unsigned long long)st->conns_refused);
	counter(&b, "tonghop_collector_ingest_disconnects_total",
	        "Ingest connections ended for any reason (peer closed, heartbeat timeout, refused "
	        "handshake, frame over the size limit).", st->disconnects);
	gauge(&b, "tonghop_collector_ingest_connections", "Ingest connections live now (seen, not yet closed).",
	      (double)st->conns_live);
	counter(&b, "tonghop_collector_received_bytes_total", "Bytes of submit messages received.", st->bytes);
	counter(&b, "tonghop_collector_records_total", "Rows of accepted reports committed.", st->records);
	counter(&b, "tonghop_collector_commits_total", "Group commits made durable in the store.", st->commits);
	counter(&b, "tonghop_collector_published_total", "Rollup change messages published on the PUB socket.",
	        st->published);
	head(&b, "tonghop_collector_commit_group_reports", "summary", "Reports per group commit.");
	put(&b, "tonghop_collector_commit_group_reports_sum %llu\n", (unsigned long long)st->group_reports_sum);
	put(&b, "tonghop_collector_commit_group_reports_count %llu\n", (unsigned long long)st->commits);
	gauge(&b, "tonghop_collector_commit_group_reports_max", "Largest group commit so far, in reports.",
	      (double)st->group_reports_max);
	head(&b, "tonghop_collector_commit_duration_seconds", "histogram",
	     "Time to make one group of reports durable (store transaction and sync).");
	uint64_t cum = 0;
	for (int i = 0; i < TH_METRICS_BUCKETS; i++) {
		cum += M.bucket[i];
		put(&b, "tonghop_collector_commit_duration_seconds_bucket{le=\"%g\"} %llu\n",
		    (double)bucket_us[i] / 1e6, (unsigned long long)cum);
	}
	put(&b, "tonghop_collector_commit_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
	    (unsigned long long)M.count);
	put(&b, "tonghop_collector_commit_duration_seconds_sum %.6f\n", (double)M.sum_us / 1e6);
	put(&b, "tonghop_collector_commit_duration_seconds_count %llu\n", (unsigned long long)M.count);
	gauge(&b, "tonghop_collector_commit_duration_max_seconds", "Slowest group commit so far.",
	      (double)st->commit_us_max / 1e6);
	if (b.over)
		return TH_ETOOBIG;
	return (int)b.len;
}

int th_metrics_write(const th_stats *st)
{
	if (!M.path || !st)
		return TH_EINVAL;
	char text[8192];
	int n = th_metrics_format(st, text, sizeof text);
	if (n < 0)
		return n;
	char tmp[4200];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", M.path) >= sizeof tmp)
		return TH_EINVAL;
	FILE *f = fopen(tmp, "w");
	if (!f)
		goto fail;
	if (fwrite(text, 1, (size_t)n, f) != (size_t)n || fflush(f) != 0) {
		fclose(f);
		unlink(tmp);
		goto fail;
	}
	if (fclose(f) != 0 || rename(tmp, M.path) != 0) {
		unlink(tmp);
		goto fail;
	}
	if (M.failing)
		th_log(TH_LOG_INFO, "metrics", "%s written again", M.path);
	M.failing = 0;
	M.last_write = mono_s();
	return 0;
fail:
	if (!M.failing)
		th_log(TH_LOG_WARN, "metrics", "cannot write %s: %s", M.path, strerror(errno));
	M.failing = 1;
	M.last_write = mono_s();   /* retry at the next interval, not at every poll */
	return TH_EIO;
}

int th_metrics_tick(const th_stats *st)
{
	if (!M.path)
		return 0;
	int64_t t = mono_s();
	if (M.last_write >= 0 && t - M.last_write < M.interval_s)
		return 0;
	return th_metrics_write(st);
}

/* test_metrics.c -- the collector's Prometheus textfile (collector/metrics.c,
 * docs/metrics.md): the counters as they are, the commit-latency histogram, and a
 * file that is replaced whole (written beside it, then renamed) or not at all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metrics.h"
#include "testutil.h"
#include "th_error.h"

static th_stats sample(void)
{
	th_stats st;
	memset(&st, 0, sizeof st);
	st.accepted = 11;
	st.duplicate = 2;
	st.stale = 3;
	st.conflict = 4;
	st.retry_later = 5;
	st.rejected = 6;
	st.refused_msgs = 7;
	st.hellos = 8;
	st.submits = 9;
	st.queries = 10;
	st.records = 123456789012ULL;
	st.bytes = 99;
	st.commits = 12;
	st.group_reports_sum = 300;
	st.group_reports_max = 64;
	st.commit_us_max = 1500000;
	st.published = 13;
	st.inflight_refused = 14;
	st.conns_refused = 15;
	st.disconnects = 16;
	st.conns_live = 17;
	return st;
}

static void has_line(const char *text, const char *line)
{
	char want[512];
	snprintf(want, sizeof want, "\n%s\n", line);
	if (!strstr(text, want))
		fail_msg("no line \"%s\" in:\n%s", line, text);
}

static uint64_t value_of(const char *text, const char *series)
{
	char want[512];
	snprintf(want, sizeof want, "\n%s ", series);
	const char *p = strstr(text, want);
	assert_non_null(p);
	return strtoull(p + strlen(want), NULL, 10);
}

static void counters_exposed(void **state)
{
	(void)state;
	th_metrics_configure(NULL, 10);
	th_stats st = sample();
	char buf[8192];
	int n = th_metrics_format(&st, buf, sizeof buf);
	assert_true(n > 0 && (size_t)n == strlen(buf));
	has_line(buf, "tonghop_collector_reports_total{status=\"accepted\"} 11");
	has_line(buf, "tonghop_collector_reports_total{status=\"duplicate\"} 2");
	has_line(buf, "tonghop_collector_reports_total{status=\"stale\"} 3");
	has_line(buf, "tonghop_collector_reports_total{status=\"conflict\"} 4");
	has_line(buf, "tonghop_collector_reports_total{status=\"retry_later\"} 5");
	has_line(buf, "tonghop_collector_reports_total{status=\"rejected\"} 6");
	has_line(buf, "tonghop_collector_refused_messages_total 7");
	has_line(buf, "tonghop_collector_messages_total{type=\"hello\"} 8");
	has_line(buf, "tonghop_collector_messages_total{type=\"submit\"} 9");
	has_line(buf, "tonghop_collector_messages_total{type=\"query\"} 10");
	has_line(buf, "tonghop_collector_records_total 123456789012");
	has_line(buf, "tonghop_collector_commits_total 12");
	has_line(buf, "tonghop_collector_commit_group_reports_sum 300");
	has_line(buf, "tonghop_collector_commit_group_reports_count 12");
	has_line(buf, "tonghop_collector_commit_group_reports_max 64");
	has_line(buf, "tonghop_collector_commit_duration_max_seconds 1.5");
	has_line(buf, "tonghop_collector_published_total 13");
	has_line(buf, "tonghop_collector_limit_refused_total{limit=\"inflight\"} 14");
	has_line(buf, "tonghop_collector_limit_refused_total{limit=\"connections_per_key\"} 15");
	has_line(buf, "tonghop_collector_ingest_disconnects_total 16");
	has_line(buf, "tonghop_collector_ingest_connections 17");
	has_line(buf, "# TYPE tonghop_collector_commits_total counter");
	/* every metric has its HELP and TYPE */
	size_t helps = 0, types = 0;
	for (const char *p = buf; (p = strstr(p, "# HELP ")); p++)
		helps++;
	for (const char *p = buf; (p = strstr(p, "# TYPE ")); p++)
		types++;
	assert_true(helps > 15);
	assert_int_equal(helps, types);
	/* too small a buffer: refused, never a cut file */
	assert_int_equal(th_metrics_format(&st, buf, 100), TH_ETOOBIG);
	assert_int_equal(th_metrics_format(NULL, buf, sizeof buf), TH_EINVAL);
}

static void latency_histogram(void **state)
{
	(void)state;
	th_metrics_configure(NULL, 10);
	th_stats st = sample();
	char before[8192], after[8192];
	assert_true(th_metrics_format(&st, before, sizeof before) > 0);
	th_metrics_observe_commit(300);        /* 0.3 ms: first in the 0.5 ms bucket */
	th_metrics_observe_commit(2000000);    /* 2 s: beyond every finite bucket */
	th_metrics_observe_commit(-5);         /* counts as 0 */
	assert_true(th_metrics_format(&st, after, sizeof after) > 0);
	static const struct { const char *le; uint64_t more; } b[] = {
		{"0.0001", 1}, {"0.00025", 1}, {"0.0005", 2}, {"0.001", 2}, {"1", 2}, {"+Inf", 3}};
	for (size_t i = 0; i < sizeof b / sizeof *b; i++) {
		char series[128];
		snprintf(series, sizeof series, "tonghop_collector_commit_duration_seconds_bucket{le=\"%s\"}",
		         b[i].le);
		assert_int_equal(value_of(after, series) - value_of(before, series), b[i].more);
	}
	assert_int_equal(value_of(after, "tonghop_collector_commit_duration_seconds_count") -
	                     value_of(before, "tonghop_collector_commit_duration_seconds_count"),
	                 3);
}

/* The file is written beside and renamed over: complete or the old one, no .tmp left;
 * written at once by the first tick, then not again within the interval. */
static void file_replaced_whole(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	static char path[4200];
	snprintf(path, sizeof path, "%s/tonghop.prom", dir);
	th_stats st = sample();
	assert_int_equal(th_metrics_write(&st), TH_EINVAL);   /* not configured */
	th_metrics_configure(path, 3600);
	assert_int_equal(th_metrics_tick(&st), 0);
	char *text = tu_read_file(path, NULL);
	assert_non_null(text);
	has_line(text, "tonghop_collector_reports_total{status=\"accepted\"} 11");
	char tmp[4300];
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	assert_int_not_equal(access(tmp, F_OK), 0);
	free(text);
	st.accepted = 12;
	assert_int_equal(th_metrics_tick(&st), 0);   /* within the interval: not written */
	text = tu_read_file(path, NULL);
	has_line(text, "tonghop_collector_reports_total{status=\"accepted\"} 11");
	free(text);
	assert_int_equal(th_metrics_write(&st), 0);  /* at exit: written now */
	text = tu_read_file(path, NULL);
	has_line(text, "tonghop_collector_reports_total{status=\"accepted\"} 12");
	free(text);
	/* the directory cannot be written: TH_EIO, the last file stays as it was */
	assert_int_equal(chmod(dir, 0500), 0);
	if (geteuid() != 0) {   /* root writes anyway */
		st.accepted = 13;
		assert_int_equal(th_metrics_write(&st), TH_EIO);
		text = tu_read_file(path, NULL);
		has_line(text, "tonghop_collector_reports_total{status=\"accepted\"} 12");
		free(text);
	}
	chmod(dir, 0700);
	/* a path in a directory that does not exist */
	static char gone[4300];
	snprintf(gone, sizeof gone, "%s/no/such/dir/x.prom", dir);
	th_metrics_configure(gone, 10);
	assert_int_equal(th_metrics_write(&st), TH_EIO);
	th_metrics_configure(NULL, 10);
	tu_rmrf(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(counters_exposed),
		cmocka_unit_test(latency_histogram),
		cmocka_unit_test(file_replaced_whole),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

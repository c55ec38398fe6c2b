/* query.c -- read latencies on a store with th_store (read-only), and the
 * full rebuild time (read-write; run it with the collector stopped).
 * usage: th-bench-query query DB DEFS APPENDIX PERIOD UNIT LEVEL REPS
 *        th-bench-query rebuild DB DEFS          (prints key=value) */
#include "common.h"
#include "th_store.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_cb(void *ctx, const th_unit *u, const th_node *n)
{
	(void)u;
	(void)n;
	(*(size_t *)ctx)++;
	return 0;
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof *v, bench_cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: th-bench-query query|rebuild DB DEFS ...\n");
		return 2;
	}
	int rebuild = strcmp(argv[1], "rebuild") == 0;
	if (!rebuild && argc != 9) {
		fprintf(stderr, "usage: th-bench-query query DB DEFS APPENDIX PERIOD UNIT LEVEL REPS\n");
		return 2;
	}
	th_defset *defs = NULL;
	th_diag *d = th_diag_new();
	if (th_defset_load_dir(argv[3], &defs, d) != 0) {
		fprintf(stderr, "th-bench-query: bad definitions %s\n", argv[3]);
		return 1;
	}
	th_diag_destroy(&d);
	th_store_opts so = {.readonly = !rebuild};
	th_store *s = NULL;
	double t_open = bench_now();
	char why[512] = "";
	int rc = th_store_open_why(argv[2], &so, &s, why, sizeof why);
	if (rc)
		fprintf(stderr, "th-bench-query: %s\n", why);
	if (!rc)
		rc = th_store_set_defs(s, defs);
	t_open = bench_now() - t_open;
	if (rc) {
		fprintf(stderr, "th-bench-query: cannot open %s: %s\n", argv[2], th_strerror(rc));
		return 1;
	}
	if (rebuild) {
		double t0 = bench_now();
		rc = th_store_rebuild(s);
		double secs = bench_now() - t0;
		if (rc) {
			fprintf(stderr, "th-bench-query: rebuild: %s\n", th_strerror(rc));
			return 1;
		}
		printf("rebuild_s=%.3f\n", secs);
	} else {
		const char *app = argv[4], *per = argv[5], *unit = argv[6];
		uint32_t level = (uint32_t)atol(argv[7]);
		int reps = atoi(argv[8]);
		if (reps < 1)
			reps = 1;
		double *t = calloc((size_t)reps * 10, sizeof *t);
		th_node n;
		int nreps = reps * 10;
		for (int i = 0; i < nreps && !rc; i++) {
			double t0 = bench_now();
			rc = th_store_get_node(s, app, per, unit, &n);
			t[i] = (bench_now() - t0) * 1000;
			if (!rc)
				th_node_free(&n);
		}
		double node_ms = median(t, (size_t)nreps);
		size_t rows = 0;
		for (int i = 0; i < reps && !rc; i++) {
			rows = 0;
			double t0 = bench_now();
			rc = th_store_level(s, app, per, level, NULL, count_cb, &rows);
			t[i] = (bench_now() - t0) * 1000;
		}
		double level_ms = median(t, (size_t)reps);
		size_t missing = 0;
		const th_units *hu = th_store_current_hierarchy(s);
		const char *root = hu ? th_units_at(hu, th_units_root(hu))->code : NULL;
		for (int i = 0; i < reps && !rc; i++) {
			missing = 0;
			double t0 = bench_now();
			rc = th_store_missing(s, app, per, root, count_cb, &missing);
			t[i] = (bench_now() - t0) * 1000;
		}
		double miss_ms = median(t, (size_t)reps);
		if (rc) {
			fprintf(stderr, "th-bench-query: query failed (node %s level %u): %s\n", unit,
			        level, th_strerror(rc));
			return 1;
		}
		th_store_stats st;
		memset(&st, 0, sizeof st);
		th_store_stats_get(s, &st);
		printf("open_ms=%.2f node_ms=%.4f level_ms=%.2f level_rows=%zu missing_ms=%.2f "
		       "missing_units=%zu store_reports=%llu store_used_bytes=%zu store_map_size=%zu\n",
		       t_open * 1000, node_ms, level_ms, rows, miss_ms, missing,
		       (unsigned long long)st.reports, st.used_bytes, st.map_size);
		free(t);
	}
	th_store_close(&s);
	th_defset_destroy(&defs);
	return 0;
}

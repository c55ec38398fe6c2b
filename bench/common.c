/* common.c -- see common.h. */
#include "common.h"
#include "th_csv.h"
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bench_set *g_set;
static uint64_t g_rev;
static size_t g_cap;
static int g_err;

static int visit(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)f;
	size_t l = strlen(path);
	if (flag != FTW_F || l < 4 || strcmp(path + l - 4, ".csv") != 0)
		return 0;
	th_csv_opts o = {.rev = g_rev};
	th_report *r = NULL;
	th_diag *d = th_diag_new();
	int rc = th_csv_read_report(path, g_set->defs, &o, &r, d);
	th_diag_destroy(&d);
	if (rc != 0) {
		fprintf(stderr, "bench: cannot read %s (%d)\n", path, rc);
		g_err = 1;
		return 1;
	}
	if (g_set->n == g_cap) {
		size_t nc = g_cap ? g_cap * 2 : 4096;
		th_report **nr = realloc(g_set->reports, nc * sizeof *nr);
		if (!nr) {
			th_report_destroy(&r);
			g_err = 1;
			return 1;
		}
		g_set->reports = nr;
		g_cap = nc;
	}
	g_set->reports[g_set->n++] = r;
	g_set->records += r->n_rows;
	return 0;
}

static int cmp_report(const void *a, const void *b)
{
	const th_report *x = *(th_report *const *)a, *y = *(th_report *const *)b;
	int c = strcmp(x->unit, y->unit);
	if (!c)
		c = strcmp(x->appendix, y->appendix);
	if (!c)
		c = strcmp(x->period, y->period);
	return c;
}

int bench_load(const char *defs_dir, const char *dir, uint64_t rev, bench_set *out)
{
	memset(out, 0, sizeof *out);
	th_diag *d = th_diag_new();
	int rc = th_defset_load_dir(defs_dir, &out->defs, d);
	th_diag_destroy(&d);
	if (rc != 0) {
		fprintf(stderr, "bench: cannot load definitions from %s\n", defs_dir);
		return -1;
	}
	g_set = out;
	g_rev = rev;
	g_cap = 0;
	g_err = 0;
	if (nftw(dir, visit, 32, FTW_PHYS) != 0 || g_err) {
		fprintf(stderr, "bench: cannot walk %s\n", dir);
		bench_free(out);
		return -1;
	}
	if (out->n == 0) {
		fprintf(stderr, "bench: no .csv under %s\n", dir);
		bench_free(out);
		return -1;
	}
	qsort(out->reports, out->n, sizeof *out->reports, cmp_report);
	return 0;
}

void bench_free(bench_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		th_report_destroy(&s->reports[i]);
	free(s->reports);
	th_defset_destroy(&s->defs);
	memset(s, 0, sizeof *s);
}

double bench_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

long long bench_write_bytes(long pid)
{
	char path[64], line[128];
	if (pid)
		snprintf(path, sizeof path, "/proc/%ld/io", pid);
	else
		snprintf(path, sizeof path, "/proc/self/io");
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	long long v = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "write_bytes: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int bench_record(const bench_set *s, const th_report *r, uint8_t **out, size_t *len)
{
	const th_def *d = th_defset_get(s->defs, r->appendix, r->version);
	uint8_t *can = NULL;
	size_t cl = 0;
	if (!d || th_canon_encode(r, d, &can, &cl) != 0)
		return -1;
	uint8_t *b = calloc(1, 216 + cl);
	if (!b) {
		free(can);
		return -1;
	}
	b[0] = 1;
	memcpy(b + 8, &r->rev, sizeof r->rev);
	memcpy(b + 216, can, cl);
	free(can);
	*out = b;
	*len = 216 + cl;
	return 0;
}

/* xlsx_read.c (th-bench-xlsx) -- how fast the agent reads a filled-in
 * .xlsx appendix: a PL2 of N task rows (default 10,000) written by the
 * template writer with its values, then read back through th_input (unzip,
 * stream the XML, every rule, validation) R times, each read in a child
 * process so its peak RSS is its own.  The same report as CSV is read the
 * same way for comparison.  PL2's definition allows 1000 rows; the bench
 * uses a copy of it with max_rows raised to N.  Each read runs in a fresh
 * process (this program again, --read), timed from fork to exit: start-up,
 * the definitions and the whole read.
 *
 *   th-bench-xlsx DEFS_DIR [ROWS [RUNS]]
 * prints one line per file: rows, bytes, median and best wall seconds,
 * median CPU seconds, rows/s of each, peak RSS of the reading process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "th_csv.h"
#include "th_input.h"
#include "th_template.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* PL2 of the definitions directory with max_rows = rows. */
static th_def *big_pl2(const char *dir, unsigned rows)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/PL2-v1.def", dir);
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof text - 64, f);
	fclose(f);
	text[n] = 0;
	char *m = strstr(text, "max_rows = ");
	if (!m)
		return NULL;
	char *eol = strchr(m, '\n');
	char tail[1 << 16];
	snprintf(tail, sizeof tail, "%s", eol ? eol : "");
	sprintf(m, "max_rows = %u%s", rows, tail);
	th_def *d = NULL;
	return th_def_parse(text, strlen(text), "PL2-v1.def", &d, NULL) == 0 ? d : NULL;
}

static void set_text(th_value *v, const char *s)
{
	v->s = strdup(s);
	v->len = (uint32_t)strlen(s);
	v->null = 0;
}

/* N tasks: codes, Vietnamese text, dates, enums; statuses left to derive. */
static th_report *tasks(const th_def *d, unsigned rows)
{
	static const char *what[] = {
		"Rà soát, đơn giản hóa thủ tục hành chính thuộc thẩm quyền giải quyết",
		"Triển khai dịch vụ công trực tuyến mức độ 3, 4 trên Cổng dịch vụ công",
		"Số hóa hồ sơ, kết quả giải quyết thủ tục hành chính tại bộ phận một cửa",
		"Đánh giá sự hài lòng của người dân, tổ chức đối với sự phục vụ",
	};
	th_report *r = th_report_new("SNV", d->id, d->version, "2021", 0, d->n_cols);
	r->as_of = 20210630;
	for (unsigned i = 0; i < rows; i++) {
		long row = th_report_add_row(r);
		char b[64];
		for (size_t c = 0; c < d->n_cols; c++) {
			const th_column *col = &d->cols[c];
			th_value *v = th_report_cell(r, (size_t)row, c);
			if (strcmp(col->id, "ma_nhiem_vu") == 0) {
				snprintf(b, sizeof b, "NV%05u", i + 1);
				set_text(v, b);
			} else if (strcmp(col->id, "noi_dung") == 0) {
				set_text(v, what[i % 4]);
			} else if (strcmp(col->id, "so_van_ban") == 0) {
				snprintf(b, sizeof b, "%u/KH-UBND", 10 + i % 400);
				set_text(v, b);
			} else if (strcmp(col->id, "don_vi_chu_tri") == 0) {
				set_text(v, "Sở Nội vụ");
			} else if (col->type == TH_T_ENUM && col->id != d->cols[d->derive->status_col].id) {
				v->i = (int64_t)(i % col->n_values);
				v->null = 0;
			} else if ((size_t)c == d->derive->deadline_col) {
				v->i = th_date_from_days(th_date_days(20210301) + (long)(i % 90));
				v->null = 0;
			} else if ((size_t)c == d->derive->done_col && i % 3) {
				v->i = th_date_from_days(th_date_days(20210201) + (long)(i % 120));
				v->null = 0;
			} else if (strcmp(col->id, "ngay_van_ban") == 0) {
				v->i = th_date_from_days(th_date_days(20210105) + (long)(i % 20));
				v->null = 0;
			}
		}
	}
	return r;
}

/* Reads path in a fresh process; returns its wall seconds, *cpu its CPU
 * seconds (user + system: what a loaded machine does not inflate), *rss its
 * peak KiB. */
static double read_once(const char *self, const char *path, const char *defs_dir, unsigned rows,
                        double *cpu, long *rss)
{
	char n[32];
	snprintf(n, sizeof n, "%u", rows);
	int fd[2];
	if (pipe(fd) != 0)
		exit(1);
	double t0 = now();
	pid_t pid = fork();
	if (pid == 0) {
		dup2(fd[1], 1);
		close(fd[0]);
		execl(self, self, "--read", defs_dir, n, path, (char *)NULL);
		_exit(127);
	}
	close(fd[1]);
	int st;
	struct rusage ru;
	if (pid < 0 || wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "th-bench-xlsx: reading %s failed\n", path);
		exit(1);
	}
	/* the child's own high-water mark (ru_maxrss would include the
	 * parent's pages it had until exec) */
	char out[64] = "";
	ssize_t got = read(fd[0], out, sizeof out - 1);
	close(fd[0]);
	out[got > 0 ? got : 0] = 0;
	*rss = atol(out);
	*cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
	return now() - t0;
}

/* --read DEFS_DIR ROWS FILE: the child. */
static int child(const char *defs_dir, unsigned rows, const char *path)
{
	th_def *d = big_pl2(defs_dir, rows);
	th_defset *defs = th_defset_new();
	if (!d || !defs || th_defset_add(defs, d))
		return 1;
	th_diag *dg = th_diag_new();
	th_report *r = NULL;
	int rc = th_input_read_report(path, defs, NULL, &r, dg);
	if (rc || r->n_rows != rows) {
		fprintf(stderr, "%s: rc %d %s\n", path, rc, th_diag_count(dg) ? th_diag_text(dg, 0) : "");
		return 1;
	}
	th_report_destroy(&r);
	th_diag_destroy(&dg);
	th_defset_destroy(&defs);
	/* VmHWM: this process's peak resident set, in KiB */
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	while (f && fgets(line, sizeof line, f))
		if (strncmp(line, "VmHWM:", 6) == 0)
			printf("%ld\n", atol(line + 6));
	if (f)
		fclose(f);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "--read") == 0)
		return child(argv[2], (unsigned)atoi(argv[3]), argv[4]);
	if (argc < 2) {
		fprintf(stderr, "usage: th-bench-xlsx DEFS_DIR [ROWS [RUNS]]\n");
		return 2;
	}
	unsigned rows = argc > 2 ? (unsigned)atoi(argv[2]) : 10000;
	int runs = argc > 3 ? atoi(argv[3]) : 5;
	if (runs < 1 || runs > 100)
		runs = 5;
	th_def *d = big_pl2(argv[1], rows);
	th_defset *defs = th_defset_new();
	if (!d || !defs || th_defset_add(defs, d)) {
		fprintf(stderr, "th-bench-xlsx: cannot load PL2 from %s\n", argv[1]);
		return 1;
	}
	const th_def *def = th_defset_get(defs, "PL2", 1);
	th_report *r = tasks(def, rows);
	th_diag *dg = th_diag_new();
	if (th_report_validate(r, def, dg)) {
		fprintf(stderr, "th-bench-xlsx: %s\n", th_diag_text(dg, 0));
		return 1;
	}
	char dir[] = "/tmp/th-bench-xlsx.XXXXXX";
	if (!mkdtemp(dir))
		return 1;
	char xl[64], csv[64];
	snprintf(xl, sizeof xl, "%s/PL2-2021.xlsx", dir);
	snprintf(csv, sizeof csv, "%s/PL2-2021.csv", dir);
	const th_report *filled[] = {r};
	th_template_opts o = {.period = "2021", .unit = "SNV", .filled = filled, .n_filled = 1};
	double tw = now();
	if (th_template_write(xl, def, &o, dg) || th_csv_write_report(csv, r, def)) {
		fprintf(stderr, "th-bench-xlsx: cannot write the files\n");
		return 1;
	}
	tw = now() - tw;
	const char *paths[2] = {xl, csv};
	for (int k = 0; k < 2; k++) {
		double t[100], c[100];
		long rss = 0, peak = 0;
		for (int i = 0; i < runs; i++) {
			t[i] = read_once("/proc/self/exe", paths[k], argv[1], rows, &c[i], &rss);
			if (rss > peak)
				peak = rss;
		}
		qsort(t, (size_t)runs, sizeof t[0], cmp_d);
		qsort(c, (size_t)runs, sizeof c[0], cmp_d);
		FILE *f = fopen(paths[k], "rb");
		fseek(f, 0, SEEK_END);
		long bytes = ftell(f);
		fclose(f);
		printf("%s read: %u rows, %ld bytes; wall median %.3f s (best %.3f s) = %.0f rows/s; "
		       "CPU median %.3f s = %.0f rows/s; peak RSS %ld KiB\n", k ? "csv " : "xlsx", rows,
		       bytes, t[runs / 2], t[0], (double)rows / t[runs / 2], c[runs / 2],
		       (double)rows / c[runs / 2], peak);
	}
	printf("xlsx write (template with the values): %.3f s\n", tw);
	th_report_destroy(&r);
	th_diag_destroy(&dg);
	th_defset_destroy(&defs);
	if (getenv("BENCH_KEEP")) {
		printf("files kept in %s\n", dir);
	} else {
		remove(xl);
		remove(csv);
		rmdir(dir);
	}
	return 0;
}

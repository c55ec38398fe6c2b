/* common.h -- shared by the bench programs: loads a th-gen output directory
 * into reports, sorted by report key, and encodes them. Bench code only. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include "th_def.h"
#include "th_report.h"

typedef struct bench_set {
	th_defset *defs;
	th_report **reports;   /* sorted by (unit, appendix, period) */
	size_t n;
	size_t records;        /* total rows */
} bench_set;

/* Loads every *.csv under dir (recursively) with rev; 0 or -1 (message on stderr). */
int bench_load(const char *defs_dir, const char *dir, uint64_t rev, bench_set *out);
void bench_free(bench_set *s);
double bench_now(void);        /* monotonic seconds */
/* Bytes a process (0 = this one) has caused to be written to storage so far:
 * write_bytes of /proc/PID/io (what reaches the disk, not what write() got); -1
 * when unknown. */
long long bench_write_bytes(long pid);
int bench_cmp_double(const void *a, const void *b);
/* The record bytes the store would write: 216-byte header + canonical form. */
int bench_record(const bench_set *s, const th_report *r, uint8_t **out, size_t *len);

#endif

/* pgdump.c -- writes the same reports for PostgreSQL COPY:
 *   OUT/units.tsv    code, parent ('\N' for the root), depth
 *   OUT/anc.tsv      unit, ancestor, ancestor depth (closure, self included)
 *   OUT/records.tsv  unit, appendix, period, rev, row number, bigint[] of the
 *                    row's numeric cells (int, scaled decimal, bool, enum index)
 * usage: th-bench-pgdump DEFS DATA_DIR UNITS_FILE OUT_DIR */
#include "common.h"
#include "th_units.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static FILE *open_out(const char *dir, const char *name)
{
	char p[4096];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	if (!f)
		perror(p);
	return f;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: th-bench-pgdump DEFS DATA_DIR UNITS_FILE OUT_DIR\n");
		return 2;
	}
	bench_set set;
	if (bench_load(argv[1], argv[2], 1, &set) != 0)
		return 1;
	th_units *u = NULL;
	th_diag *d = th_diag_new();
	if (th_units_load(argv[3], &u, d) != 0) {
		fprintf(stderr, "th-bench-pgdump: bad units %s\n", argv[3]);
		return 1;
	}
	th_diag_destroy(&d);
	mkdir(argv[4], 0755);
	FILE *fu = open_out(argv[4], "units.tsv"), *fa = open_out(argv[4], "anc.tsv"),
	     *fr = open_out(argv[4], "records.tsv");
	if (!fu || !fa || !fr)
		return 1;
	for (size_t i = 0; i < th_units_count(u); i++) {
		const th_unit *x = th_units_at(u, i);
		fprintf(fu, "%s\t%s\t%u\n", x->code, x->parent < 0 ? "\\N" : x->parent_code, x->depth);
		for (long a = (long)i; a >= 0; a = th_units_at(u, (size_t)a)->parent) {
			const th_unit *y = th_units_at(u, (size_t)a);
			fprintf(fa, "%s\t%s\t%u\n", x->code, y->code, y->depth);
		}
	}
	for (size_t i = 0; i < set.n; i++) {
		const th_report *r = set.reports[i];
		const th_def *df = th_defset_get(set.defs, r->appendix, r->version);
		for (size_t row = 0; row < r->n_rows; row++) {
			fprintf(fr, "%s\t%s\t%s\t%llu\t%zu\t{", r->unit, r->appendix, r->period,
			        (unsigned long long)r->rev, row + 1);
			int first = 1;
			for (size_t c = 0; c < r->n_cols; c++) {
				th_type t = df->cols[c].type;
				if (t == TH_T_TEXT || t == TH_T_DATE)
					continue;
				const th_value *v = th_report_cell(r, row, c);
				if (v->null)
					fprintf(fr, "%sNULL", first ? "" : ",");
				else
					fprintf(fr, "%s%lld", first ? "" : ",", (long long)v->i);
				first = 0;
			}
			fputs("}\n", fr);
		}
	}
	fclose(fu);
	fclose(fa);
	fclose(fr);
	printf("pg_records=%zu\n", set.records);
	th_units_destroy(&u);
	bench_free(&set);
	return 0;
}

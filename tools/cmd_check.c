/* cmd_check.c -- `tonghop validate` (appendix files offline), `check` (a
 * store's integrity) and `rebuild` (every rollup recomputed). */
#include "tonghop.h"
#include "th_csv.h"

#include <inttypes.h>

int th_cmd_validate(const th_opts *o, char **files, int n)
{
	th_defset *defs = th_cli_defs(o->defs_dir);
	if (!defs)
		return 1;
	int bad = 0;
	for (int i = 0; i < n; i++) {
		th_diag *diag = th_diag_new();
		th_report *r = NULL;
		th_csv_opts co = {.unit = o->unit, .period = o->period, .appendix = o->appendix};
		int rc = diag ? th_csv_read_report(files[i], defs, &co, &r, diag) : TH_ENOMEM;
		for (size_t k = 0; diag && k < th_diag_count(diag); k++) {
			const th_diag_entry *e = th_diag_at(diag, k);
			const char *txt = th_diag_text(diag, k);
			/* name the file when the entry does not */
			if (e && !e->file)
				fprintf(stderr, "%s: %s\n", files[i], txt);
			else
				fprintf(stderr, "%s\n", txt);
		}
		if (rc == 0 && r) {
			printf("%s: OK (%s v%u, unit %s, period %s, %zu rows)\n", files[i], r->appendix,
			       r->version, r->unit ? r->unit : "?", r->period ? r->period : "?", r->n_rows);
		} else {
			if (diag && th_diag_errors(diag) == 0)
				fprintf(stderr, "%s: %s\n", files[i], th_strerror(rc));
			printf("%s: INVALID\n", files[i]);
			bad = 1;
		}
		th_report_destroy(&r);
		th_diag_destroy(&diag);
	}
	th_defset_destroy(&defs);
	return bad;
}

/* Prints diag's entries to standard output. */
static void print_diag(th_diag *diag)
{
	for (size_t i = 0; diag && i < th_diag_count(diag); i++)
		printf("%s\n", th_diag_text(diag, i));
}

int th_cmd_check(const th_opts *o)
{
	int ret = 1;
	th_defset *defs = th_cli_defs(o->defs_dir);
	th_source *src = defs ? th_cli_source(o, defs, 0) : NULL;
	th_diag *diag = th_diag_new();
	if (!src || !diag)
		goto out;
	th_store_stats st;
	if (th_source_stats(src, &st) == 0)
		printf("store %s: %" PRIu64 " reports, %" PRIu64 " revisions, %" PRIu64
		       " commits, %zu of %zu bytes used\n",
		       o->db, st.reports, st.revisions, st.commits, st.used_bytes, st.map_size);
	int rc = th_source_verify(src, diag);
	print_diag(diag);
	if (rc == 0 && th_diag_errors(diag) == 0) {
		printf("OK: rollups equal a recomputation from the latest revisions; every report valid\n");
		ret = 0;
	} else {
		printf("PROBLEM: %s\n", rc ? th_strerror(rc) : "integrity check failed");
	}
out:
	th_diag_destroy(&diag);
	th_source_destroy(&src);
	th_defset_destroy(&defs);
	return ret;
}

int th_cmd_rebuild(const th_opts *o)
{
	int ret = 1;
	th_defset *defs = th_cli_defs(o->defs_dir);
	th_source *src = NULL;
	th_diag *diag = NULL;
	if (!defs || !(src = th_cli_source(o, defs, 1)))
		goto out;
	if (th_source_rebuild(src) != 0) {
		fprintf(stderr, "%s rebuild: %s\n", th_prog, th_source_error(src));
		goto out;
	}
	diag = th_diag_new();
	int rc = th_source_verify(src, diag);
	print_diag(diag);
	if (rc == 0) {
		printf("rebuilt: every rollup recomputed from the latest revisions, and verified\n");
		ret = 0;
	}
out:
	th_diag_destroy(&diag);
	th_source_destroy(&src);
	th_defset_destroy(&defs);
	return ret;
}

/* cmd_units.c -- `tonghop units`: the hierarchy as a list or a tree, its
 * versions, and submitting a new version to the collector. */
#include "tonghop.h"

#include <inttypes.h>
#include <string.h>

static void print_problem(void *ctx, const char *line)
{
	(void)ctx;
	fprintf(stderr, "%s\n", line);
}

/* A hierarchy file, its problems printed (*told: how many); NULL when it
 * does not load (*rc says why). */
static th_units *load_units(const char *path, int *rc, size_t *told)
{
	th_diag *diag = th_diag_new();
	th_units *u = NULL;
	*rc = diag ? th_units_load(path, &u, diag) : TH_ENOMEM;
	*told = diag ? th_diag_count(diag) : 0;
	for (size_t i = 0; i < *told; i++)
		fprintf(stderr, "%s\n", th_diag_text(diag, i));
	th_diag_destroy(&diag);
	return u;
}

/* --submit FILE: validated here with the collector's parser, then sent. */
static int units_submit(const th_opts *o)
{
	th_source *src = NULL;
	int ret = 1, rc;
	size_t told;
	th_units *u = load_units(o->submit, &rc, &told);
	if (rc != 0) {
		if (!told)
			fprintf(stderr, "%s: %s\n", o->submit, th_strerror(rc));
		fprintf(stderr, "%s units: %s is not a valid hierarchy file; nothing was sent\n", th_prog,
		        o->submit);
		goto out;
	}
	if (!(src = th_cli_source(o, NULL, 0)))
		goto out;
	size_t len;
	const char *text = th_units_source(u, &len);
	const char *slash = strrchr(o->submit, '/');
	th_hier_row r;
	char path[4096] = "";
	rc = th_source_submit_units(src, slash ? slash + 1 : o->submit, text, len, &r, path, sizeof path,
	                            print_problem, NULL);
	if (rc != 0) {
		fprintf(stderr, "%s units: %s refused by the collector: %s\n", th_prog, o->submit,
		        th_source_error(src));
		goto out;
	}
	printf("%s: hierarchy version %s (effective %04d-%02d-%02d, %" PRIu64 " units, %" PRIu32
	       " levels) written by the collector to %s and loaded\n",
	       o->submit, r.version, (int)(r.effective / 10000), (int)(r.effective / 100 % 100),
	       (int)(r.effective % 100), r.units, r.levels, path);
	th_hier_row_free(&r);
	ret = 0;
out:
	th_source_destroy(&src);
	th_units_destroy(&u);
	return ret;
}

/* --versions from a store or the collector: one row per hierarchy version. */
static int units_versions(const th_opts *o)
{
	th_source *src = th_cli_source(o, NULL, 0);
	th_doc *doc = NULL;
	th_diag *diag = th_diag_new();
	int ret = 1;
	if (src && diag) {
		int rc = th_view_versions(src, &doc, diag);
		/* "tonghop units: store DIR: ..." */
		for (size_t i = 0; i < th_diag_count(diag); i++)
			fprintf(stderr, "%s units: %s\n", th_prog, th_diag_at(diag, i)->msg);
		ret = rc ? 1 : th_cli_output(o, doc);
	}
	th_doc_destroy(&doc);
	th_diag_destroy(&diag);
	th_source_destroy(&src);
	return ret;
}

int th_cmd_units(const th_opts *o)
{
	int ret = 1, rc;
	size_t told;
	th_units *own = NULL;
	th_source *src = NULL;
	th_doc *doc = NULL;
	const th_units *u = NULL;

	if (o->submit)
		return units_submit(o);
	if (o->versions && !o->units_file)
		return units_versions(o);
	if (o->units_file) {
		if (!(own = load_units(o->units_file, &rc, &told))) {
			fprintf(stderr, "%s: cannot load %s: %s\n", th_prog, o->units_file, th_strerror(rc));
			goto out;
		}
		u = own;
	} else {
		if (!(src = th_cli_source(o, NULL, 0)))
			goto out;
		if (th_source_hierarchy(src, o->period, &u) != 0) {
			fprintf(stderr, "%s: %s\n", th_prog, th_source_error(src));
			goto out;
		}
	}
	if (o->versions) {
		printf("hierarchy version %s, effective %d, %zu units, %u levels\n", th_units_version(u),
		       th_units_effective(u), th_units_count(u), th_units_max_depth(u));
		ret = 0;
	} else if (o->tree) {
		if ((rc = th_view_tree(u, o->tree, stdout)) == TH_EUNIT)
			fprintf(stderr, "%s: unknown unit %s\n", th_prog, o->tree);
		ret = rc ? 1 : 0;
	} else if (th_view_units(u, &doc) != 0) {
		fprintf(stderr, "%s: out of memory\n", th_prog);
	} else {
		ret = th_cli_output(o, doc);
	}
out:
	th_doc_destroy(&doc);
	th_units_destroy(&own);
	th_source_destroy(&src);
	return ret;
}

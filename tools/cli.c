/* cli.c -- what every tonghop command shares: usage errors, definitions,
 * the source, problems on stderr, output to a file or standard output. */
#include "tonghop.h"

#include <stdlib.h>
#include <string.h>

const char *const th_prog = "tonghop";

void th_cli_usage(const char *cmd, const char *msg)
{
	fprintf(stderr, "%s %s: %s\n(try `%s %s --help')\n", th_prog, cmd, msg, th_prog, cmd);
	exit(EXIT_USAGE);
}

th_defset *th_cli_defs(const char *dir)
{
	th_diag *diag = th_diag_new();
	th_defset *defs = NULL;
	const char *d = dir ? dir : th_def_default_dir();
	int rc = th_defset_load_dir(d, &defs, diag);
	if (rc != 0) {
		for (size_t i = 0; diag && i < th_diag_count(diag); i++)
			fprintf(stderr, "%s\n", th_diag_text(diag, i));
		fprintf(stderr, "%s: cannot load definitions from %s: %s\n", th_prog, d, th_strerror(rc));
		defs = NULL;
	}
	th_diag_destroy(&diag);
	return defs;
}

th_source *th_cli_source(const th_opts *o, const th_defset *defs, int writable)
{
	th_source_opts so = {.db = o->db, .collector = o->collector, .key = o->key,
	                     .server_key = o->server_key, .insecure = o->insecure,
	                     .writable = writable, .defs = defs};
	th_source *s = NULL;
	char why[1200];
	if (th_source_open(&so, &s, why, sizeof why) != 0) {
		if (writable)
			fprintf(stderr, "%s %s: %s\n", th_prog, o->cmd, why);
		else
			fprintf(stderr, "%s: %s\n", th_prog, why);
		return NULL;
	}
	return s;
}

int th_cli_report(const th_opts *o, th_diag *diag, int rc)
{
	for (size_t i = 0; diag && i < th_diag_count(diag); i++) {
		const th_diag_entry *e = th_diag_at(diag, i);
		if (rc == TH_EINVAL && e->sev == TH_SEV_ERROR)
			fprintf(stderr, "%s %s: %s\n", th_prog, o->cmd, e->msg);
		else
			fprintf(stderr, "%s: %s\n", th_prog, e->msg);
	}
	return rc == 0 ? 0 : rc == TH_EINVAL ? EXIT_USAGE : 1;
}

FILE *th_cli_out(const th_opts *o)
{
	if (!o->out_path || o->fmt == TH_FMT_XLSX)
		return stdout;
	FILE *f = fopen(o->out_path, "w");
	if (!f)
		fprintf(stderr, "%s: cannot write %s\n", th_prog, o->out_path);
	return f;
}

int th_cli_render(const th_opts *o, const th_doc *d, FILE *f)
{
	th_render_opts ro = {.fmt = o->fmt, .bom = o->excel, .path = o->out_path, .sheet = o->sheet};
	char why[1200] = "";
	if (th_render_doc(d, &ro, f, why, sizeof why) != 0) {
		fprintf(stderr, "%s: %s\n", th_prog, why);
		return 1;
	}
	return 0;
}

int th_cli_close(const th_opts *o, FILE *f)
{
	if (f == stdout)
		return fflush(stdout) == 0 ? 0 : 1;
	if (fclose(f) != 0) {
		fprintf(stderr, "%s: cannot write %s\n", th_prog, o->out_path);
		return 1;
	}
	return 0;
}

int th_cli_output(const th_opts *o, const th_doc *d)
{
	FILE *f = th_cli_out(o);
	if (!f)
		return 1;
	int ret = th_cli_render(o, d, f);
	return th_cli_close(o, f) | ret;
}

int th_cli_view(const th_opts *o, th_cli_view_fn view)
{
	th_defset *defs = NULL;
	th_source *src = NULL;
	th_doc *doc = NULL;
	th_diag *diag = th_diag_new();
	int ret = 1;
	if (!diag || !(defs = th_cli_defs(o->defs_dir)))
		goto out;
	/* an unknown appendix is told before anything is opened */
	if (o->appendix && !th_defset_latest(defs, o->appendix)) {
		fprintf(stderr, "%s: unknown appendix %s\n", th_prog, o->appendix);
		goto out;
	}
	if (!(src = th_cli_source(o, defs, 0)))
		goto out;
	int rc = view(src, o, &doc, diag);
	ret = th_cli_report(o, diag, rc);
	if (rc == 0)
		ret = th_cli_output(o, doc);
out:
	th_doc_destroy(&doc);
	th_source_destroy(&src);
	th_defset_destroy(&defs);
	th_diag_destroy(&diag);
	return ret;
}

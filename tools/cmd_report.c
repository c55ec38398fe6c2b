/* cmd_report.c -- `tonghop report`: a unit's current report, and with
 * --history every revision and what changed from the one before. */
#include "tonghop.h"

int th_cmd_report(const th_opts *o, const char *unit, const char *appendix, const char *period)
{
	th_defset *defs = NULL;
	th_source *src = NULL;
	th_doc *doc = NULL;
	th_history *h = NULL;
	th_diag *diag = th_diag_new();
	FILE *f = NULL;
	int ret = 1, rc;
	if (!diag || !(defs = th_cli_defs(o->defs_dir)) || !(src = th_cli_source(o, defs, 0)))
		goto out;
	if ((rc = th_view_report(src, unit, appendix, period, &doc, diag)) != 0) {
		ret = th_cli_report(o, diag, rc);
		goto out;
	}
	if (!(f = th_cli_out(o)))
		goto out;
	ret = th_cli_render(o, doc, f);
	if (o->history && ret == 0) {
		/* the history goes where the report went */
		if ((rc = th_view_history(src, unit, appendix, period, &h, diag)) != 0)
			ret = th_cli_report(o, diag, rc);
		else if (th_history_write(h, f) != 0)
			ret = 1;
	}
	ret |= th_cli_close(o, f);
out:
	th_history_destroy(&h);
	th_doc_destroy(&doc);
	th_source_destroy(&src);
	th_defset_destroy(&defs);
	th_diag_destroy(&diag);
	return ret;
}

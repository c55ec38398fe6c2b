/* cmd_status.c -- `tonghop status`: completeness per unit, then every unit
 * that has not reported, with its contacts. */
#include "tonghop.h"

static int status(th_source *src, const th_opts *o, th_doc **out, th_diag *diag)
{
	th_status_req req = {.appendix = o->appendix, .period = o->period, .level = (uint32_t)o->level,
	                     .unit = o->unit};
	return th_view_status(src, &req, out, diag);
}

int th_cmd_status(const th_opts *o)
{
	if (o->fmt == TH_FMT_XLSX) {      /* two tables: a workbook holds one here */
		fprintf(stderr, "%s status: xlsx is not supported here; use csv\n", th_prog);
		return EXIT_USAGE;
	}
	return th_cli_view(o, status);
}

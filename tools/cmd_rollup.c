/* cmd_rollup.c -- `tonghop rollup`: one row per unit of a level (or per child
 * of a unit) with its totals. */
#include "tonghop.h"

static int rollup(th_source *src, const th_opts *o, th_doc **out, th_diag *diag)
{
	th_rollup_req req = {.appendix = o->appendix, .period = o->period, .level = (uint32_t)o->level,
	                     .parent = o->parent, .own = o->own, .columns = o->columns};
	return th_view_rollup(src, &req, out, diag);
}

int th_cmd_rollup(const th_opts *o)
{
	return th_cli_view(o, rollup);
}

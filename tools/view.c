/* view.c -- what the views share: errors, the definition in force, the unit a
 * table is about, times for people. */
#include "view_private.h"

#include <inttypes.h>
#include <stdarg.h>
#include <time.h>

int th_view_fail(th_diag *diag, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	th_diag_vadd(diag, TH_SEV_ERROR, code, NULL, 0, 0, NULL, fmt, ap);
	va_end(ap);
	return code;
}

const th_def *th_view_def(th_source *src, const char *appendix, const char *period, th_diag *diag)
{
	const th_def *d = th_source_def(src, appendix, period, diag);
	if (!d)
		th_view_fail(diag, TH_EAPPENDIX, "unknown appendix %s", appendix);
	return d;
}

int th_view_top(th_source *src, const th_def *d, const char *appendix, const char *period,
                const char *code, uint32_t *level, th_source_unit *top, th_diag *diag)
{
	int rc = th_source_find_unit(src, d, appendix, period, code, top);
	if (rc)
		return th_view_fail(diag, rc, "%s", th_source_error(src));
	if (code)
		*level = top->depth + 1;
	if (top->levels && (*level < 1 || *level > top->levels))
		return th_view_fail(diag, code ? TH_ERANGE : TH_EINVAL,
		                    "level %u: the hierarchy has levels 1 to %u", *level, top->levels);
	return 0;
}

void th_view_time(int64_t us, char *buf, size_t cap)
{
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	if (!localtime_r(&t, &tm) || !strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, cap, "%" PRId64, us);
}

/* pubout.c -- what tonghop-publish tells its operator (pubout.h). */
#include "pubout.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static int g_verbose;

void th_pubout_set_verbose(int verbose) { g_verbose = verbose; }

static const char *level_name(int level)
{
	return level == TH_LOG_ERROR ? "error" : level == TH_LOG_WARN ? "warning" : "info";
}

void th_pubout_say(int level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s publish: %s\n", level_name(level), buf);
}

void th_pubout_diag(FILE *f, th_diag *d)
{
	for (size_t i = 0; d && i < th_diag_count(d); i++)
		fprintf(f, "%s\n", th_diag_text(d, i));
}

void th_pubout_agent_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	if (level >= TH_LOG_INFO && !g_verbose)
		return;
	th_pubout_say(level, "%s", msg);
}

void th_pubout_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	th_pubout_say(level, "%s", msg);
}

void th_pubout_problems(void *ctx, th_diag *d)
{
	(void)ctx;
	th_pubout_diag(stderr, d);
}

void th_pubout_uuid(const uint8_t u[TH_STORE_UUID_LEN], char out[37])
{
	static const char hx[] = "0123456789abcdef";
	size_t o = 0;
	for (int i = 0; i < TH_STORE_UUID_LEN; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hx[u[i] >> 4];
		out[o++] = hx[u[i] & 15];
	}
	out[o] = 0;
}

void th_pubout_time(int64_t us, char out[32])
{
	if (!us) {
		strcpy(out, "never");
		return;
	}
	time_t t = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void th_pubout_result(const th_ack *a, const th_ack_result *r, const char *file)
{
	char where[200] = "";
	if (r->row && r->column && *r->column)
		snprintf(where, sizeof where, " (row %ld, column %s)", r->row, r->column);
	else if (r->row)
		snprintf(where, sizeof where, " (row %ld)", r->row);
	else if (r->column && *r->column)
		snprintf(where, sizeof where, " (column %s)", r->column);
	const char *pfx = file ? file : "";
	const char *sep = file ? ": " : "";
	char id[37];
	th_pubout_uuid(a->store, id);
	switch (r->status) {
	case TH_ACK_ACCEPTED:
		printf("%s%s%s %s %s rev %llu: accepted (store %s, commit %llu)\n", pfx, sep, r->unit,
		       r->appendix, r->period, (unsigned long long)r->rev, id,
		       (unsigned long long)a->commit);
		break;
	case TH_ACK_DUPLICATE:
		printf("%s%s%s %s %s rev %llu: already stored (duplicate; store %s)\n", pfx, sep,
		       r->unit, r->appendix, r->period, (unsigned long long)r->rev, id);
		break;
	case TH_ACK_STALE:
		printf("%s%s%s %s %s rev %llu: stale: a newer revision is already stored (rev %llu); "
		       "this one is final and will not be sent again\n",
		       pfx, sep, r->unit, r->appendix, r->period, (unsigned long long)r->rev,
		       (unsigned long long)r->stored_rev);
		break;
	case TH_ACK_RETRY_LATER:
		printf("%s%s%s %s %s rev %llu: the collector asks to retry later: %s\n", pfx, sep,
		       r->unit, r->appendix, r->period, (unsigned long long)r->rev,
		       r->message ? r->message : th_strerror(r->code));
		break;
	case TH_ACK_REJECTED:
	default:
		printf("%s%s%s %s %s rev %llu: rejected: %s%s [%s]\n", pfx, sep, r->unit, r->appendix,
		       r->period, (unsigned long long)r->rev, r->message ? r->message : th_strerror(r->code),
		       where, th_errname(r->code));
		break;
	}
	for (size_t i = 0; i < r->n_warnings; i++)
		if (r->warnings[i])
			printf("%s%s%s %s %s: warning: %s\n", pfx, sep, r->unit, r->appendix, r->period,
			       r->warnings[i]);
	fflush(stdout);
}

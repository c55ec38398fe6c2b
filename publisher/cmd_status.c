/* cmd_status.c -- `tonghop-publish status [--format text|json]`: the outbox's
 * pending reports, receipts, rejections, last contact and history size. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "outbox.h"
#include "pubout.h"
#include "steps.h"

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if (*p == '\t')
			fputs("\\t", f);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

typedef struct status_ctx {
	int json;
	int first;
	th_ob_table t;
} status_ctx;

static int status_row(void *vctx, const th_ob_entry *e)
{
	status_ctx *s = vctx;
	char t1[32], t2[32], id[37];
	if (s->json) {
		printf("%s\n    {\"unit\": ", s->first ? "" : ",");
		s->first = 0;
		json_str(stdout, e->unit);
		printf(", \"appendix\": ");
		json_str(stdout, e->appendix);
		printf(", \"period\": ");
		json_str(stdout, e->period);
		printf(", \"rev\": %llu, \"version\": %u, \"state\": \"%s\", \"file\": ",
		       (unsigned long long)e->rev, e->version, th_ob_state_name(e->state));
		json_str(stdout, e->file);
		th_pubout_time(e->created, t1);
		th_pubout_time(e->updated, t2);
		printf(", \"created\": \"%s\", \"updated\": \"%s\"", t1, t2);
		if (s->t == TH_OB_TPENDING)
			printf(", \"attempts\": %u, \"resend\": %s", e->attempts, e->resend ? "true" : "false");
		if (s->t != TH_OB_TACKED || e->state == TH_OB_STALE) {
			printf(", \"code\": \"%s\", \"message\": ", e->code ? th_errname(e->code) : "");
			json_str(stdout, e->message);
			printf(", \"row\": %ld, \"column\": ", e->row);
			json_str(stdout, e->column);
		}
		if (s->t == TH_OB_TACKED) {
			th_pubout_uuid(e->store, id);
			th_pubout_time(e->commit_time, t1);
			printf(", \"store\": \"%s\", \"commit\": %llu, \"commit_time\": \"%s\", "
			       "\"stored_rev\": %llu",
			       id, (unsigned long long)e->commit, t1, (unsigned long long)e->stored_rev);
		}
		printf("}");
		return 0;
	}
	printf("  %-12s %-5s %-8s rev %llu  v%u", e->unit, e->appendix, e->period,
	       (unsigned long long)e->rev, e->version);
	if (s->t == TH_OB_TPENDING) {
		printf("  attempts %u", e->attempts);
		if (e->resend)
			printf("  (re-sent: store changed)");
		if (e->message && *e->message && !e->resend)
			printf("  retrying: %s [%s]", e->message, th_errname(e->code));
	} else if (s->t == TH_OB_TACKED) {
		th_pubout_uuid(e->store, id);
		th_pubout_time(e->commit_time, t1);
		printf("  %s  store %s commit %llu at %s", th_ob_state_name(e->state), id,
		       (unsigned long long)e->commit, t1);
		if (e->state == TH_OB_STALE)
			printf(" (a newer revision, rev %llu, is stored)", (unsigned long long)e->stored_rev);
	} else {
		printf("  %s", e->message && *e->message ? e->message : th_strerror(e->code));
		if (e->row)
			printf(" (row %ld", e->row);
		if (e->column && *e->column)
			printf("%scolumn %s", e->row ? ", " : " (", e->column);
		if (e->row || (e->column && *e->column))
			printf(")");
		printf(" [%s]", th_errname(e->code));
	}
	if (e->file && *e->file)
		printf("\n      file %s", e->file);
	printf("\n");
	return 0;
}

int cmd_status(th_pubconf *c, int nargs, char **args)
{
	if (nargs) {
		fprintf(stderr, "tonghop-publish status: unexpected argument %s\n", args[0]);
		return EX_USAGE;
	}
	int json = c->format && !strcmp(c->format, "json");
	if (c->format && !json && strcmp(c->format, "text")) {
		fprintf(stderr, "tonghop-publish status: --format text|json\n");
		return EX_USAGE;
	}
	struct stat st;
	if (stat(c->outbox, &st) != 0) {
		th_pubout_say(TH_LOG_ERROR, "%s: no outbox here (nothing was ever queued; --outbox DIR?)",
		              c->outbox);
		return EX_REJECTED;
	}
	th_outbox *ob = NULL;
	if (th_steps_outbox(c, &ob) != 0)
		return EX_REJECTED;
	th_ob_meta m;
	th_outbox_meta(ob, &m);
	char id[37] = "", when[32];
	if (m.has_store)
		th_pubout_uuid(m.store, id);
	th_pubout_time(m.last_contact, when);
	static const char *names[3] = {"pending", "acked", "rejected"};
	if (json) {
		printf("{\n  \"outbox\": ");
		json_str(stdout, c->outbox);
		printf(",\n  \"format\": %d,\n  \"collector\": ", TH_OUTBOX_FORMAT);
		json_str(stdout, m.collector);
		printf(",\n  \"store\": ");
		if (m.has_store)
			printf("\"%s\"", id);
		else
			printf("null");
		printf(",\n  \"last_contact\": ");
		if (m.last_contact)
			printf("\"%s\"", when);
		else
			printf("null");
		printf(",\n  \"last_error\": ");
		json_str(stdout, m.last_error);
		printf(",\n  \"history\": %zu", th_outbox_history_count(ob));
		for (int t = 0; t < 3; t++) {
			printf(",\n  \"%s\": [", names[t]);
			status_ctx s = {1, 1, (th_ob_table)t};
			th_outbox_list(ob, (th_ob_table)t, 0, status_row, &s);
			printf("%s]", s.first ? "" : "\n  ");
		}
		printf("\n}\n");
	} else {
		printf("outbox     %s (format %d)\n", c->outbox, TH_OUTBOX_FORMAT);
		printf("collector  %s, last contact %s%s%s\n", *m.collector ? m.collector : "-", when,
		       m.has_store ? ", store " : "", id);
		if (*m.last_error)
			printf("problem    %s\n", m.last_error);
		for (int t = 0; t < 3; t++) {
			printf("%s: %zu\n", names[t], th_outbox_count(ob, (th_ob_table)t));
			status_ctx s = {0, 1, (th_ob_table)t};
			th_outbox_list(ob, (th_ob_table)t, 0, status_row, &s);
		}
		printf("history: %zu content record(s) (to refuse superseded content; see prune)\n",
		       th_outbox_history_count(ob));
	}
	th_outbox_close(&ob);
	return 0;
}


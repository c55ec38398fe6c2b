/* cmd_status.c -- `tonghop-publish status [--format text|json]`: the outbox's
 * pending reports, receipts, rejections, last contact and history size.
 *
 * The JSON is made with libjansson (common/th_json.h: text always UTF-8, null
 * is null) and laid out as it always was: one top-level key a line, one
 * report a line inside the three arrays, so that `grep` on a report's line
 * keeps working.  Each value is dumped as it is made (an outbox of 20,000
 * entries does not become one document in memory). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "outbox.h"
#include "pubout.h"
#include "steps.h"
#include "th_json.h"

static const char *const table_names[3] = {"pending", "acked", "rejected"};

/* An unsigned counter as a JSON number (jansson's integers are int64: the
 * rare value above is a real, still a number). */
static json_t *json_u64(uint64_t v)
{
	return v <= INT64_MAX ? json_integer((json_int_t)v) : json_real((double)v);
}

static json_t *json_time(int64_t us)
{
	char t[32];
	th_pubout_time(us, t);
	return json_string(t);
}

/* One entry of table t as a JSON object (NULL when out of memory). */
static json_t *entry_json(const th_ob_entry *e, th_ob_table t)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	int rc = th_json_set(o, "unit", th_json_str(e->unit ? e->unit : "")) ||
	         th_json_set(o, "appendix", th_json_str(e->appendix ? e->appendix : "")) ||
	         th_json_set(o, "period", th_json_str(e->period ? e->period : "")) ||
	         th_json_set(o, "rev", json_u64(e->rev)) ||
	         th_json_set(o, "version", json_integer(e->version)) ||
	         th_json_set(o, "state", json_string(th_ob_state_name(e->state))) ||
	         th_json_set(o, "file", th_json_str(e->file ? e->file : "")) ||
	         th_json_set(o, "created", json_time(e->created)) ||
	         th_json_set(o, "updated", json_time(e->updated));
	if (!rc && t == TH_OB_TPENDING)
		rc = th_json_set(o, "attempts", json_integer(e->attempts)) ||
		     th_json_set(o, "resend", json_boolean(e->resend));
	if (!rc && (t != TH_OB_TACKED || e->state == TH_OB_STALE))
		rc = th_json_set(o, "code", json_string(e->code ? th_errname(e->code) : "")) ||
		     th_json_set(o, "message", th_json_str(e->message ? e->message : "")) ||
		     th_json_set(o, "row", json_integer(e->row)) ||
		     th_json_set(o, "column", th_json_str(e->column ? e->column : ""));
	if (!rc && t == TH_OB_TACKED) {
		char id[37];
		th_pubout_uuid(e->store, id);
		rc = th_json_set(o, "store", json_string(id)) ||
		     th_json_set(o, "commit", json_u64(e->commit)) ||
		     th_json_set(o, "commit_time", json_time(e->commit_time)) ||
		     th_json_set(o, "stored_rev", json_u64(e->stored_rev));
	}
	if (rc)
		json_decref(o);
	return rc ? NULL : o;
}

typedef struct status_ctx {
	th_ob_table t;
	FILE *f;         /* json: where the entries go */
	size_t n;        /* json: entries written */
	int err;         /* json: TH_ENOMEM / TH_EIO */
} status_ctx;

/* Writes v (taking its reference) on one line (th_json_print_inline);
 * 0 or TH_ENOMEM / TH_EIO. */
static int dump(FILE *f, json_t *v)
{
	if (!v)
		return TH_ENOMEM;
	int rc = th_json_print_inline(f, v);
	json_decref(v);
	return rc;
}

/* One top-level "key": value line of the document. */
static int member(FILE *f, int *first, const char *key, json_t *v)
{
	fprintf(f, "%s\n  \"%s\": ", *first ? "" : ",", key);   /* keys: our own ASCII names */
	*first = 0;
	return dump(f, v);
}

/* Each entry on a line of its own as it is listed: the document never has
 * to be held whole. */
static int json_row(void *vctx, const th_ob_entry *e)
{
	status_ctx *s = vctx;
	fputs(s->n++ ? ",\n    " : "\n    ", s->f);
	s->err = dump(s->f, entry_json(e, s->t));
	return s->err ? 1 : 0;
}

static int status_json(const th_pubconf *c, th_outbox *ob, const th_ob_meta *m)
{
	FILE *f = stdout;
	char id[37];
	if (m->has_store)
		th_pubout_uuid(m->store, id);
	int first = 1;
	fputc('{', f);
	int rc = member(f, &first, "outbox", th_json_str(c->outbox));
	if (!rc)
		rc = member(f, &first, "format", json_integer(TH_OUTBOX_FORMAT));
	if (!rc)
		rc = member(f, &first, "collector", th_json_str(m->collector));
	if (!rc)
		rc = member(f, &first, "store", m->has_store ? json_string(id) : json_null());
	if (!rc)
		rc = member(f, &first, "last_contact",
		            m->last_contact ? json_time(m->last_contact) : json_null());
	if (!rc)
		rc = member(f, &first, "last_error", th_json_str(m->last_error));
	if (!rc)
		rc = member(f, &first, "history", json_u64(th_outbox_history_count(ob)));
	for (int t = 0; !rc && t < 3; t++) {
		fprintf(f, ",\n  \"%s\": [", table_names[t]);
		status_ctx s = {(th_ob_table)t, f, 0, 0};
		th_outbox_list(ob, (th_ob_table)t, 0, json_row, &s);
		rc = s.err;
		fputs(s.n ? "\n  ]" : "]", f);
	}
	fputs("\n}\n", f);
	if (!rc && (fflush(f) != 0 || ferror(f)))
		rc = TH_EIO;
	if (rc)
		th_pubout_say(TH_LOG_ERROR, "%s: cannot write the status: %s", c->outbox,
		              th_strerror(rc));
	return rc ? EX_REJECTED : EX_OK;
}

static int text_row(void *vctx, const th_ob_entry *e)
{
	status_ctx *s = vctx;
	char t1[32], id[37];
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

static int status_text(const th_pubconf *c, th_outbox *ob, const th_ob_meta *m)
{
	char id[37] = "", when[32];
	if (m->has_store)
		th_pubout_uuid(m->store, id);
	th_pubout_time(m->last_contact, when);
	printf("outbox     %s (format %d)\n", c->outbox, TH_OUTBOX_FORMAT);
	printf("collector  %s, last contact %s%s%s\n", *m->collector ? m->collector : "-", when,
	       m->has_store ? ", store " : "", id);
	if (*m->last_error)
		printf("problem    %s\n", m->last_error);
	for (int t = 0; t < 3; t++) {
		printf("%s: %zu\n", table_names[t], th_outbox_count(ob, (th_ob_table)t));
		status_ctx s = {(th_ob_table)t, NULL, 0, 0};
		th_outbox_list(ob, (th_ob_table)t, 0, text_row, &s);
	}
	printf("history: %zu content record(s) (to refuse superseded content; see prune)\n",
	       th_outbox_history_count(ob));
	return EX_OK;
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
	int ex = json ? status_json(c, ob, &m) : status_text(c, ob, &m);
	th_outbox_close(&ob);
	return ex;
}

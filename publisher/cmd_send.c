/* cmd_send.c -- `tonghop-publish send FILE...` and the delivery path it
 * shares with `withdraw`: validate, queue in one durable transaction, deliver,
 * wait for the acknowledgements. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "commands.h"
#include "intake.h"
#include "outbox.h"
#include "pubout.h"
#include "steps.h"
#include "th_clock.h"

/* A report this command queued (or found queued), until its final answer. */
typedef struct track {
	char *file;
	char *unit, *appendix, *period;
	uint64_t rev;
	int done;                /* 1 when final */
	int ok;                  /* accepted / duplicate / already delivered */
} track;

typedef struct send_state {
	th_pubconf *c;
	th_outbox *ob;
	th_agent *ag;
	th_agent_opts ao;
	th_agent_hooks hooks;
	th_defset *defs;
	size_t n;                /* reports */
	th_report **reps;
	uint8_t (*hashes)[TH_HASH_LEN];
	track *t;
	size_t n_t;
	int refused, unqueued;   /* answered superseded / stale; could not be queued */
	int64_t deadline;        /* mono ms */
} send_state;

static int64_t now_ms(void) { return th_mono_us() / 1000; }

static void send_result(void *ctx, const th_ack *a, const th_ack_result *r)
{
	send_state *s = ctx;
	const char *file = NULL;
	for (size_t i = 0; i < s->n_t; i++) {
		track *t = &s->t[i];
		if (t->rev == r->rev && r->unit && !strcmp(t->unit, r->unit) && r->appendix &&
		    !strcmp(t->appendix, r->appendix) && r->period && !strcmp(t->period, r->period)) {
			file = file ? file : t->file;
			if (r->status == TH_ACK_RETRY_LATER)
				continue;
			t->done = 1;
			t->ok = r->status == TH_ACK_ACCEPTED || r->status == TH_ACK_DUPLICATE;
		}
	}
	th_pubout_result(a, r, file);
}

/* Was a tracked report finished by someone else (another agent process on
 * this outbox)?  Looks in the acked and rejected tables. */
typedef struct final_ctx {
	track *t;
	int found, ok;
} final_ctx;

static int find_final(void *vctx, const th_ob_entry *e)
{
	final_ctx *f = vctx;
	if (e->rev == f->t->rev && !strcmp(e->unit, f->t->unit) &&
	    !strcmp(e->appendix, f->t->appendix) && !strcmp(e->period, f->t->period)) {
		f->found = 1;
		f->ok = e->state == TH_OB_ACCEPTED || e->state == TH_OB_DUPLICATE;
		return 1;
	}
	return 0;
}

static void check_elsewhere(th_outbox *ob, track *t)
{
	th_ob_entry e;
	if (th_outbox_get_pending(ob, t->unit, t->appendix, t->period, t->rev, NULL, &e) == 0) {
		th_ob_entry_free(&e);
		return;
	}
	final_ctx f = {t, 0, 0};
	th_outbox_list(ob, TH_OB_TACKED, 0, find_final, &f);
	if (!f.found)
		th_outbox_list(ob, TH_OB_TREJECTED, 0, find_final, &f);
	t->done = 1;
	t->ok = f.found ? f.ok : 1;   /* superseded in the acked table: delivered */
	printf("%s: %s %s %s rev %llu: finished by another agent process (%s)\n", t->file, t->unit,
	       t->appendix, t->period, (unsigned long long)t->rev, t->ok ? "delivered" : "rejected");
}

static int track_add(send_state *s, const char *file, const th_report *r, uint64_t rev)
{
	track *nt = realloc(s->t, (s->n_t + 1) * sizeof *nt);
	if (!nt)
		return TH_ENOMEM;
	s->t = nt;
	track *t = &s->t[s->n_t];
	memset(t, 0, sizeof *t);
	t->file = strdup(file);
	t->unit = strdup(r->unit);
	t->appendix = strdup(r->appendix);
	t->period = strdup(r->period);
	t->rev = rev;
	if (!t->file || !t->unit || !t->appendix || !t->period) {
		free(t->file);
		free(t->unit);
		free(t->appendix);
		free(t->period);
		return TH_ENOMEM;
	}
	s->n_t++;
	return 0;
}

static int start_agent(send_state *s)
{
	if (s->ag)
		return 0;
	if (th_agent_new(&s->ao, s->ob, &s->hooks, &s->ag) != 0) {
		th_pubout_say(TH_LOG_ERROR, "cannot create the connection to %s", s->c->collector);
		return EX_UNDELIVERED;
	}
	return 0;
}

/* Waits for a welcome to fill the definitions cache. */
static int fetch_defs(send_state *s)
{
	while (!th_pub_stop && !th_agent_welcomed(s->ag) && now_ms() < s->deadline) {
		if (th_agent_auth_refusals(s->ag) || th_agent_handshake_failures(s->ag) >= 2)
			return EX_REFUSED;
		th_agent_poll(s->ag, 200, NULL, 0);
	}
	return th_agent_welcomed(s->ag) ? 0 : EX_UNDELIVERED;
}

/* The definitions to validate with: --defs, the cached ones, or those of the
 * collector's welcome (nothing cached yet). */
static int get_defs(send_state *s)
{
	th_pubconf *c = s->c;
	int rc = th_steps_defs(c, s->ob, &s->defs);
	if (!rc)
		return 0;
	if (c->defs)
		return EX_USAGE;
	int ex = start_agent(s);
	if (ex)
		return ex;
	th_pubout_say(TH_LOG_INFO, "no definitions cached yet: fetching them from %s", c->collector);
	ex = fetch_defs(s);
	if (ex == EX_REFUSED) {
		th_pubout_say(TH_LOG_ERROR, "the collector refused this key: ask the central team to "
		                            "register %s (or check --server-key)",
		              c->key ? c->key : "the key");
		return ex;
	}
	if (ex || th_steps_defs(c, s->ob, &s->defs) != 0) {
		th_pubout_say(TH_LOG_ERROR, "no definitions: the collector %s was not reachable to "
		                            "provide them; nothing was queued (pass --defs DIR to "
		                            "validate offline)",
		              c->collector);
		return EX_UNDELIVERED;
	}
	return 0;
}

/* Validates everything first: one bad file and nothing is sent. */
static int validate(send_state *s, char **files, const th_withdrawal *w)
{
	int invalid = 0;
	for (size_t i = 0; i < s->n; i++) {
		th_diag *d = th_diag_new();
		if (!d)
			return EX_UNDELIVERED;
		int rc;
		if (w) {
			rc = th_intake_tombstone(w->unit, w->appendix, w->period, s->defs, &s->reps[i],
			                         s->hashes[i], d);
			th_pubout_diag(stderr, d);
			th_diag_destroy(&d);
			if (rc) {
				/* only the arguments make the tombstone: they are what is wrong */
				fprintf(stderr, "tonghop-publish withdraw: nothing was sent\n");
				return rc == TH_ENOMEM ? EX_UNDELIVERED : EX_USAGE;
			}
			continue;
		}
		if (th_intake_file(files[i], s->defs, &s->reps[i], s->hashes[i], d) != 0)
			invalid++;
		th_pubout_diag(stderr, d);
		th_diag_destroy(&d);
	}
	if (invalid) {
		fprintf(stderr, "%d of %zu file(s) invalid: nothing was sent\n", invalid, s->n);
		return EX_INVALID;
	}
	return 0;
}

/* What queueing did to report i (labelled file). */
static void say_queued(send_state *s, const char *file, const th_report *r,
                       const th_ob_enqueued *res)
{
	char when[32];
	th_pubout_time(res->when, when);
	switch (res->outcome) {
	case TH_OB_NEW:
		printf("%s: %s %s %s queued as rev %llu\n", file, r->unit, r->appendix, r->period,
		       (unsigned long long)res->rev);
		track_add(s, file, r, res->rev);
		break;
	case TH_OB_SAME_PENDING:
		printf("%s: %s %s %s: the same content is already queued as rev %llu\n", file, r->unit,
		       r->appendix, r->period, (unsigned long long)res->rev);
		track_add(s, file, r, res->rev);
		break;
	case TH_OB_SAME_DELIVERED:
		printf("%s: %s %s %s: already delivered (rev %llu, %s)\n", file, r->unit, r->appendix,
		       r->period, (unsigned long long)res->rev, th_ob_state_name(res->state));
		break;
	case TH_OB_SAME_STALE:
		printf("%s: %s %s %s: this content was answered stale (rev %llu): a newer revision is "
		       "already stored; not sent\n",
		       file, r->unit, r->appendix, r->period, (unsigned long long)res->rev);
		s->refused++;
		break;
	case TH_OB_OLD_CONTENT:
		printf("%s: %s %s %s: this content was sent before as rev %llu (%s) and has been "
		       "superseded since by rev %llu; not sent (use --force to make it current "
		       "again)\n",
		       file, r->unit, r->appendix, r->period, (unsigned long long)res->rev, when,
		       (unsigned long long)res->latest_rev);
		s->refused++;
		break;
	}
}

/* Every report in one durable transaction (one fsync), before any send. */
static int queue(send_state *s, char **files, const th_withdrawal *w)
{
	th_ob_item *items = calloc(s->n, sizeof *items);
	char **fpaths = calloc(s->n, sizeof *fpaths);
	if (!items || !fpaths) {
		free(items);
		free(fpaths);
		return EX_UNDELIVERED;
	}
	for (size_t i = 0; i < s->n; i++) {
		items[i].r = s->reps[i];
		items[i].def = th_defset_get(s->defs, s->reps[i]->appendix, s->reps[i]->version);
		items[i].hash = s->hashes[i];
		fpaths[i] = w ? NULL : realpath(files[i], NULL);
		items[i].file = w ? NULL : fpaths[i] ? fpaths[i] : files[i];
	}
	/* a withdrawal may repeat an earlier one (withdrawn, filed again,
	 * withdrawn again): the history does not refuse it */
	int rc = th_outbox_enqueue_many(s->ob, items, s->n, s->c->force || w != NULL,
	                                th_now_us());
	if (rc)
		th_pubout_say(TH_LOG_ERROR, "cannot write to the outbox %s: %s", s->c->outbox,
		              th_strerror(rc));
	for (size_t i = 0; i < s->n; i++) {
		th_report *r = s->reps[i];
		if (items[i].rc) {
			th_pubout_say(TH_LOG_ERROR, "%s: %s %s %s: cannot write to the outbox: %s; not queued",
			              files[i], r->unit, r->appendix, r->period, th_strerror(items[i].rc));
			s->unqueued++;
			continue;
		}
		say_queued(s, files[i], r, &items[i].res);
	}
	for (size_t i = 0; i < s->n; i++)
		free(fpaths[i]);
	free(fpaths);
	free(items);
	fflush(stdout);
	return rc ? EX_UNDELIVERED : 0;
}

static size_t open_tracks(const send_state *s)
{
	size_t open_ = 0;
	for (size_t i = 0; i < s->n_t; i++)
		open_ += !s->t[i].done;
	return open_;
}

/* Delivers until every tracked report has its final answer (and everything
 * else pending went), the deadline, a stop or a refused key. */
static int deliver(send_state *s)
{
	/* connect even when every file was delivered before: the welcome tells
	 * whether the collector still holds what it acknowledged (a store restored
	 * from a backup), and the agent sends those again */
	int ex = start_agent(s);
	if (ex)
		return ex;
	th_agent_kick(s->ag);
	int64_t next_check = now_ms() + 1000;
	int64_t welcome_by = now_ms() + 5000;
	for (;;) {
		size_t open_ = open_tracks(s);
		/* everything pending goes, not only these files' reports; with nothing
		 * left, wait (briefly) for the welcome's check of acknowledged reports */
		if ((!open_ && th_outbox_count(s->ob, TH_OB_TPENDING) == 0 &&
		     (th_agent_welcomed(s->ag) || now_ms() >= welcome_by)) || th_pub_stop)
			break;
		int64_t now = now_ms();
		if (now >= s->deadline)
			break;
		if (th_agent_auth_refusals(s->ag) || th_agent_handshake_failures(s->ag) >= 2) {
			th_pubout_say(TH_LOG_ERROR, "the collector refused this key (or --server-key is "
			                            "wrong): ask the central team to register %s; %zu "
			                            "report(s) stay in the outbox",
			              s->c->key ? s->c->key : "the key", open_);
			return EX_REFUSED;
		}
		long wait = (long)(s->deadline - now);
		th_agent_poll(s->ag, wait > 500 ? 500 : (int)wait, NULL, 0);
		if (now_ms() >= next_check) {
			for (size_t i = 0; i < s->n_t; i++)
				if (!s->t[i].done)
					check_elsewhere(s->ob, &s->t[i]);
			next_check = now_ms() + 1000;
		}
	}
	return 0;
}

/* The exit status from the answers, with the closing lines. */
static int summary(send_state *s)
{
	size_t undelivered = 0, bad = 0;
	for (size_t i = 0; i < s->n_t; i++) {
		undelivered += !s->t[i].done;
		bad += s->t[i].done && !s->t[i].ok;
	}
	size_t others = th_outbox_count(s->ob, TH_OB_TPENDING);
	if (!undelivered && others)
		printf("%zu other report(s) still pending in the outbox %s (see status)\n", others,
		       s->c->outbox);
	if (undelivered) {
		printf("%zu report(s) not acknowledged before the deadline: they stay in the outbox "
		       "%s and will be sent next time\n", undelivered, s->c->outbox);
		return EX_UNDELIVERED;
	}
	if (s->unqueued) {
		printf("%d report(s) could not be queued (see the errors above): send them again\n",
		       s->unqueued);
		return EX_UNDELIVERED;
	}
	return bad || s->refused ? EX_REJECTED : EX_OK;
}

int cmd_deliver(th_pubconf *c, int n, char **files, const th_withdrawal *w)
{
	if (n < 1)
		return EX_USAGE;
	send_state s;
	memset(&s, 0, sizeof s);
	s.c = c;
	s.n = (size_t)n;
	s.hooks = (th_agent_hooks){&s, th_pubout_agent_log, send_result};
	if (th_steps_agent_opts(c, &s.ao) != 0)
		return EX_USAGE;
	if (th_steps_outbox(c, &s.ob) != 0)
		return EX_UNDELIVERED;
	int ex;
	s.reps = calloc(s.n, sizeof *s.reps);
	s.hashes = calloc(s.n, sizeof *s.hashes);
	s.deadline = now_ms() + (int64_t)(c->timeout * 1000);
	if (!s.reps || !s.hashes) {
		ex = EX_UNDELIVERED;
		goto done;
	}
	if ((ex = get_defs(&s)) || (ex = validate(&s, files, w)) || (ex = queue(&s, files, w)) ||
	    (ex = deliver(&s)))
		goto done;
	ex = summary(&s);
	/* the retention, as `run` does daily (cheap when nothing is due) */
	th_ob_prune_stats pst;
	th_steps_prune(c, s.ob, &pst);
done:
	for (size_t i = 0; s.reps && i < s.n; i++)
		th_report_destroy(&s.reps[i]);
	free(s.reps);
	free(s.hashes);
	for (size_t i = 0; i < s.n_t; i++) {
		free(s.t[i].file);
		free(s.t[i].unit);
		free(s.t[i].appendix);
		free(s.t[i].period);
	}
	free(s.t);
	th_agent_destroy(&s.ag);
	th_defset_destroy(&s.defs);
	th_outbox_close(&s.ob);
	fflush(stdout);
	return ex;
}

int cmd_send(th_pubconf *c, int nargs, char **args)
{
	if (nargs < 1) {
		fprintf(stderr, "tonghop-publish send: no file given\n");
		th_pub_usage(stderr);
		return EX_USAGE;
	}
	return cmd_deliver(c, nargs, args, NULL);
}

/* cmd_run.c -- `tonghop-publish run --drop DIR`: the service mode.  Watches the
 * drop folder (watch.h), queues what is dropped (drop.h), delivers and
 * reconnects forever (agent.h), prunes the history daily. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "commands.h"
#include "drop.h"
#include "outbox.h"
#include "pubout.h"
#include "steps.h"
#include "th_clock.h"
#include "watch.h"

/* the history retention at start and then this often */
#define PRUNE_EVERY_MS (24LL * 3600 * 1000)

static int64_t now_ms(void) { return th_mono_us() / 1000; }

static void run_result(void *ctx, const th_ack *a, const th_ack_result *r)
{
	(void)ctx;
	th_pubout_result(a, r, NULL);
}

int cmd_run(th_pubconf *c, int nargs, char **args)
{
	if (nargs) {
		fprintf(stderr, "tonghop-publish run: unexpected argument %s\n", args[0]);
		return EX_USAGE;
	}
	if (!c->drop) {
		fprintf(stderr, "tonghop-publish run: --drop DIR is required\n");
		return EX_USAGE;
	}
	char *abs = realpath(c->drop, NULL);
	if (abs) {
		free(c->drop);
		c->drop = abs;
	}
	th_agent_opts ao;
	if (th_steps_agent_opts(c, &ao) != 0)
		return EX_USAGE;
	th_outbox *ob = NULL;
	th_watch *w = NULL;
	th_agent *ag = NULL;
	th_drop *dr = NULL;
	th_defset *defs = NULL;
	int ex = EX_OK;
	if (th_steps_outbox(c, &ob) != 0)
		return EX_UNDELIVERED;
	th_drop_opts dopts = {c->drop, c->outbox, c->keep, c->force, &th_pub_stop};
	th_drop_hooks dhooks = {NULL, th_pubout_log, th_pubout_problems};
	if (th_drop_new(&dopts, &dhooks, &dr) != 0) {
		ex = EX_UNDELIVERED;
		goto done;
	}
	th_drop_recover(dr);   /* before the watch: they count as present at start */
	const char *why = NULL;
	th_watch_opts wo = {c->drop, c->quiet_ms, c->poll_s, c->force_poll};
	if (th_watch_open(&wo, &w, &why) != 0) {
		th_pubout_say(TH_LOG_ERROR, "%s: %s", c->drop, why ? why : "cannot watch");
		ex = EX_USAGE;
		goto done;
	}
	th_agent_hooks hooks = {NULL, th_pubout_agent_log, run_result};
	if (th_agent_new(&ao, ob, &hooks, &ag) != 0) {
		th_pubout_say(TH_LOG_ERROR, "cannot create the connection to %s", c->collector);
		ex = EX_UNDELIVERED;
		goto done;
	}
	th_pubout_say(TH_LOG_INFO, "watching %s (%s), delivering to %s, outbox %s", c->drop,
	              th_watch_backend(w), c->collector, c->outbox);
	th_ob_prune_stats pst;
	th_steps_prune(c, ob, &pst);
	int64_t next_prune = now_ms() + PRUNE_EVERY_MS;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = th_pub_on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	int welcomed_before = 0;
	while (!th_pub_stop) {
		zmq_pollitem_t it = {NULL, th_watch_fd(w), ZMQ_POLLIN, 0};
		int tmo = th_watch_timeout(w, now_ms());
		th_agent_poll(ag, tmo, &it, th_watch_fd(w) >= 0 ? 1 : 0);
		/* definitions: local ones, or the cache refreshed by each welcome */
		if (!defs || (!c->defs && th_agent_welcomed(ag) && !welcomed_before)) {
			th_defset *nd = NULL;
			if (th_steps_defs(c, ob, &nd) == 0) {
				th_defset_destroy(&defs);
				defs = nd;
			} else if (c->defs) {
				ex = EX_USAGE;
				goto done;
			}
		}
		welcomed_before = th_agent_welcomed(ag);
		if (now_ms() >= next_prune) {
			th_steps_prune(c, ob, &pst);
			next_prune = now_ms() + PRUNE_EVERY_MS;
		}
		if (!defs)
			continue;   /* files wait until the collector sends the definitions */
		char **names = NULL;
		size_t n = 0;
		th_watch_ready(w, now_ms(), &names, &n);
		if (n && th_drop_process(dr, ob, w, defs, names, n))
			th_agent_kick(ag);
		th_watch_names_free(names, n);
	}
	th_pubout_say(TH_LOG_INFO, "stopping: %zu report(s) pending in the outbox",
	              th_outbox_count(ob, TH_OB_TPENDING));
done:
	th_agent_destroy(&ag);
	th_watch_destroy(&w);
	th_drop_destroy(&dr);
	th_defset_destroy(&defs);
	th_outbox_close(&ob);
	return ex;
}

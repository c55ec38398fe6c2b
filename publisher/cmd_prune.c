/* cmd_prune.c -- `tonghop-publish prune`: the history retention now. */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "outbox.h"
#include "pubout.h"
#include "steps.h"

int cmd_prune(th_pubconf *c, int nargs, char **args)
{
	if (nargs) {
		fprintf(stderr, "tonghop-publish prune: unexpected argument %s\n", args[0]);
		return EX_USAGE;
	}
	struct stat st;
	if (stat(c->outbox, &st) != 0) {
		th_pubout_say(TH_LOG_ERROR, "%s: no outbox here (--outbox DIR?)", c->outbox);
		return EX_REJECTED;
	}
	th_outbox *ob = NULL;
	if (th_steps_outbox(c, &ob) != 0)
		return EX_UNDELIVERED;
	size_t before = th_outbox_history_count(ob);
	th_ob_prune_stats ps;
	memset(&ps, 0, sizeof ps);
	int rc = th_steps_prune(c, ob, &ps);
	if (rc == 0)
		printf("history: %zu of %zu content record(s) removed (%zu report key(s) looked at, "
		       "%zu transaction(s)); %zu kept\n",
		       ps.pruned, before, ps.keys, ps.txns, th_outbox_history_count(ob));
	th_outbox_close(&ob);
	return rc ? EX_UNDELIVERED : EX_OK;
}

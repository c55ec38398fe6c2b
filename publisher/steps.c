/* steps.c -- the steps the commands share (steps.h). */
#include "steps.h"

#include <string.h>

#include "intake.h"
#include "pubout.h"
#include "th_clock.h"

int th_steps_outbox(const th_pubconf *c, th_outbox **ob)
{
	const char *why = NULL;
	int rc = th_outbox_open(c->outbox, ob, &why);
	if (rc)
		th_pubout_say(TH_LOG_ERROR, "%s: cannot open the outbox: %s", c->outbox,
		              why ? why : th_strerror(rc));
	return rc;
}

int th_steps_agent_opts(const th_pubconf *c, th_agent_opts *o)
{
	char why[600];
	int rc = th_pubconf_agent_opts(c, o, why, sizeof why);
	if (rc)
		th_pubout_say(TH_LOG_ERROR, "%s", why);
	else if (c->insecure)
		th_pubout_say(TH_LOG_WARN, "--insecure: no encryption and no authentication; for "
		                           "loopback demos only");
	return rc;
}

int th_steps_defs(const th_pubconf *c, th_outbox *ob, th_defset **out)
{
	th_diag *d = c->defs ? th_diag_new() : NULL;
	int rc = th_intake_defs(c->defs, ob, out, d);
	if (rc && c->defs) {
		th_pubout_diag(stderr, d);
		th_pubout_say(TH_LOG_ERROR, "%s: cannot load the definitions: %s", c->defs,
		              th_strerror(rc));
	}
	th_diag_destroy(&d);
	return rc;
}

int th_steps_prune(const th_pubconf *c, th_outbox *ob, th_ob_prune_stats *st)
{
	th_ob_retention rt;
	th_pubconf_retention(c, &rt);
	int rc = th_outbox_prune(ob, &rt, th_now_us(), st);
	if (rc)
		th_pubout_say(TH_LOG_WARN, "%s: pruning the history failed: %s (nothing needed was "
		                           "removed; tried again later)",
		              c->outbox, th_strerror(rc));
	else if (st->pruned)
		th_pubout_say(TH_LOG_INFO, "%s: history pruned: %zu old content record(s) of %zu report "
		                           "key(s) removed (older than %lld days and beyond the last %u "
		                           "of their key)",
		              c->outbox, st->pruned, st->keys, (long long)rt.days, rt.revs);
	return rc;
}

/* steps.h -- the steps the commands of tonghop-publish share, each telling the
 * operator (pubout.h) what went wrong, so that every command words a failure
 * the same way. */
#ifndef TH_STEPS_H
#define TH_STEPS_H

#include "agent.h"
#include "outbox.h"
#include "pubconf.h"
#include "th_def.h"

/* Opens c->outbox; on failure says "OUTBOX: cannot open the outbox: WHY" and
 * returns the error. */
int th_steps_outbox(const th_pubconf *c, th_outbox **ob);
/* The agent's options from c (th_pubconf_agent_opts); warns about --insecure;
 * on failure says why and returns the error. */
int th_steps_agent_opts(const th_pubconf *c, th_agent_opts *o);
/* The definitions to validate with (th_intake_defs): with --defs every problem
 * of the directory is shown and a failure said; TH_ENOTFOUND (nothing cached
 * yet) is returned without a word. */
int th_steps_defs(const th_pubconf *c, th_outbox *ob, th_defset **out);
/* The history retention of c (th_outbox_prune); says what was pruned (info),
 * or warns when it failed.  *st gets the counts. */
int th_steps_prune(const th_pubconf *c, th_outbox *ob, th_ob_prune_stats *st);

#endif

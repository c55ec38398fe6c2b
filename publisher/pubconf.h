/* pubconf.h -- tonghop-publish's settings: the command-line options and the
 * `name = value` lines of a --config file (grammar: common/th_conf.h), one
 * table for both, and what the commands derive from them (the agent's options,
 * the history retention). */
#ifndef TH_PUBCONF_H
#define TH_PUBCONF_H

#include <stddef.h>

#include "agent.h"
#include "outbox.h"
#include "th_error.h"

typedef struct th_pubconf {
	char *outbox, *collector, *unit, *key, *server_key, *defs, *drop, *format;
	int insecure, keep, poll_s, quiet_ms, force_poll, force, verbose;
	double timeout;                    /* seconds */
	long history_days, history_revs;   /* retention (OUTBOX.md); -1: the default */
} th_pubconf;

/* Nothing set: timeout 60 s, the default retention. */
void th_pubconf_init(th_pubconf *c);
/* Sets one option by its long name ('_' and '-' alike; flags take
 * yes/no, true/false, on/off, 1/0).  0; TH_ENOTFOUND for an unknown name;
 * TH_EINVAL for a value out of its range (the option keeps its old value);
 * TH_ENOMEM. */
int th_pubconf_set(th_pubconf *c, const char *name, const char *value);
/* Reads a --config file into c; every bad line goes to d (FILE:LINE:
 * message).  0, or th_conf_parse's error. */
int th_pubconf_load(th_pubconf *c, const char *path, th_diag *d);
/* Fills in the defaults of what was not set: outbox ./tonghop-outbox,
 * collector tcp://127.0.0.1:7701, poll 2 s, quiet 500 ms.  0 or TH_ENOMEM. */
int th_pubconf_finish(th_pubconf *c);
void th_pubconf_free(th_pubconf *c);

/* The agent's options: endpoint, unit and, unless insecure, the keypair and the
 * collector's public key read from their files.  o->endpoint and o->unit point
 * into c.  0; TH_EINVAL when --key / --server-key are missing, TH_EIO / TH_EKEY
 * when a key file cannot be read; why (cap bytes) gets a sentence naming the
 * file and the fix. */
int th_pubconf_agent_opts(const th_pubconf *c, th_agent_opts *o, char *why, size_t cap);
/* The history retention of --history-days / --history-revs. */
void th_pubconf_retention(const th_pubconf *c, th_ob_retention *rt);

#endif

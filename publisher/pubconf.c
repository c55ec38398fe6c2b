/* pubconf.c -- tonghop-publish's settings (pubconf.h). */
#include "pubconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th_conf.h"
#include "th_keyfile.h"

void th_pubconf_init(th_pubconf *c)
{
	memset(c, 0, sizeof *c);
	c->timeout = 60;
	c->history_days = -1;
	c->history_revs = -1;
}

static int set_str(char **dst, const char *v)
{
	char *s = strdup(v);
	if (!s)
		return TH_ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

/* A whole-string integer in [lo, hi]. */
static int parse_long(const char *v, long lo, long hi, long *out)
{
	char *end;
	long x = strtol(v, &end, 10);
	if (end == v || *end || x < lo || x > hi)
		return TH_EINVAL;
	*out = x;
	return 0;
}

/* The options that are a string or a yes/no flag, by long name. */
static const struct {
	const char *name;
	size_t off;
	int flag;
} simple[] = {
	{"outbox", offsetof(th_pubconf, outbox), 0},
	{"collector", offsetof(th_pubconf, collector), 0},
	{"unit", offsetof(th_pubconf, unit), 0},
	{"key", offsetof(th_pubconf, key), 0},
	{"server-key", offsetof(th_pubconf, server_key), 0},
	{"defs", offsetof(th_pubconf, defs), 0},
	{"drop", offsetof(th_pubconf, drop), 0},
	{"format", offsetof(th_pubconf, format), 0},
	{"insecure", offsetof(th_pubconf, insecure), 1},
	{"keep", offsetof(th_pubconf, keep), 1},
	{"polling", offsetof(th_pubconf, force_poll), 1},
	{"force", offsetof(th_pubconf, force), 1},
	{"verbose", offsetof(th_pubconf, verbose), 1},
};

int th_pubconf_set(th_pubconf *c, const char *name, const char *value)
{
	char k[32];
	size_t n = strlen(name);
	if (n >= sizeof k)
		return TH_ENOTFOUND;
	for (size_t i = 0; i <= n; i++)
		k[i] = name[i] == '_' ? '-' : name[i];
	for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
		if (strcmp(k, simple[i].name))
			continue;
		void *field = (char *)c + simple[i].off;
		if (!simple[i].flag)
			return set_str(field, value);
		*(int *)field = th_conf_bool(value) == 1;
		return 0;
	}
	long x;
	if (!strcmp(k, "timeout")) {
		char *end;
		double t = strtod(value, &end);
		if (end == value || *end || t < 0)
			return TH_EINVAL;
		c->timeout = t;
	} else if (!strcmp(k, "poll")) {
		if (parse_long(value, 1, 3600, &x))
			return TH_EINVAL;
		c->poll_s = (int)x;
	} else if (!strcmp(k, "history-days")) {
		if (parse_long(value, 0, 100000, &c->history_days))
			return TH_EINVAL;
	} else if (!strcmp(k, "history-revs")) {
		if (parse_long(value, 0, 1000000, &c->history_revs))
			return TH_EINVAL;
	} else if (!strcmp(k, "quiet-ms")) {
		if (parse_long(value, 0, 600000, &x))
			return TH_EINVAL;
		c->quiet_ms = (int)x;
	} else {
		return TH_ENOTFOUND;
	}
	return 0;
}

static int config_line(void *ctx, const char *name, const char *value, char *why, size_t cap)
{
	return th_pubconf_set(ctx, name, value);
}

int th_pubconf_load(th_pubconf *c, const char *path, th_diag *d)
{
	return th_conf_parse(path, config_line, c, d);
}

int th_pubconf_finish(th_pubconf *c)
{
	if ((!c->outbox && set_str(&c->outbox, "./tonghop-outbox")) ||
	    (!c->collector && set_str(&c->collector, "tcp://127.0.0.1:7701")))
		return TH_ENOMEM;
	if (!c->poll_s)
		c->poll_s = 2;
	if (!c->quiet_ms)
		c->quiet_ms = 500;
	return 0;
}

void th_pubconf_free(th_pubconf *c)
{
	free(c->outbox);
	free(c->collector);
	free(c->unit);
	free(c->key);
	free(c->server_key);
	free(c->defs);
	free(c->drop);
	free(c->format);
	memset(c, 0, sizeof *c);
}

int th_pubconf_agent_opts(const th_pubconf *c, th_agent_opts *o, char *why, size_t cap)
{
	memset(o, 0, sizeof *o);
	o->endpoint = c->collector;
	o->unit = c->unit;
	o->insecure = c->insecure;
	if (c->insecure)
		return 0;
	if (!c->key || !c->server_key) {
		snprintf(why, cap, "--key FILE and --server-key FILE are required (or --insecure for a "
		                   "loopback demo)");
		return TH_EINVAL;
	}
	const char *kwhy = NULL;
	int rc = th_keyfile_read(c->key, o->public_key, o->secret_key, &kwhy);
	if (rc) {
		snprintf(why, cap, "%s: %s", c->key, kwhy);
		return rc;
	}
	rc = th_keyfile_read(c->server_key, o->server_key, NULL, &kwhy);
	if (rc) {
		snprintf(why, cap, "%s: %s", c->server_key, kwhy);
		return rc;
	}
	return 0;
}

void th_pubconf_retention(const th_pubconf *c, th_ob_retention *rt)
{
	memset(rt, 0, sizeof *rt);
	rt->days = c->history_days >= 0 ? c->history_days : TH_OB_HISTORY_DAYS;
	rt->revs = c->history_revs >= 0 ? (uint32_t)c->history_revs : TH_OB_HISTORY_REVS;
}

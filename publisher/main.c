/* main.c -- tonghop-publish: a unit's agent (send, run, status). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "outbox.h"
#include "th_clock.h"
#include "th_conf.h"
#include "th_csv.h"
#include "watch.h"

enum {
	EX_OK = 0,          /* every report accepted, duplicate or already delivered */
	EX_REJECTED = 1,    /* some report rejected, stale or refused as old content */
	EX_USAGE = 2,
	EX_UNDELIVERED = 3, /* not acknowledged before the deadline: stays in the outbox */
	EX_INVALID = 4,     /* some file invalid: nothing was sent */
	EX_REFUSED = 5      /* the collector refused this key at the handshake */
};

typedef struct conf {
	char *outbox, *collector, *unit, *key, *server_key, *defs, *drop, *format;
	int insecure, keep, poll_s, quiet_ms, force_poll, force, verbose;
	double timeout;
	long history_days, history_revs;   /* retention (OUTBOX.md); -1: the default */
} conf;

/* run: the history retention at start and then this often */
#define PRUNE_EVERY_MS (24LL * 3600 * 1000)

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) { (void)sig; g_stop = 1; }

static void say(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(const char *level, const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s publish: %s\n", level, buf);
}

static void usage(FILE *f)
{
	fputs(
"usage: tonghop-publish send [options] FILE...\n"
"       tonghop-publish run [options] --drop DIR\n"
"       tonghop-publish status [options] [--format text|json]\n"
"       tonghop-publish prune [options]\n"
"       tonghop-publish withdraw [options] UNIT APPENDIX PERIOD\n"
"\n"
"send    validates each appendix file, stamps a revision, stores it durably in the\n"
"        outbox, delivers everything pending and waits for the acknowledgements.\n"
"run     service mode: watches the drop folder, delivers, reconnects forever.\n"
"status  shows the outbox: pending, acknowledged (receipts), rejected, last contact.\n"
"prune   applies the history retention now (run does it at start and daily).\n"
"withdraw  withdraws the report UNIT APPENDIX PERIOD (needs an admin key): a tombstone\n"
"        revision, stamped, stored and delivered like send, removes it from rollups.\n"
"\n"
"options (also as `key = value` lines of a --config file, without the dashes):\n"
"  --config FILE       read options from FILE (command-line options win)\n"
"  --outbox DIR        the outbox (LMDB environment), default ./tonghop-outbox\n"
"  --collector EP      the collector, default tcp://127.0.0.1:7701\n"
"  --unit CODE         the unit this agent belongs to (informative: the key decides)\n"
"  --key FILE          this agent's CURVE keypair (line 1 public, line 2 secret, Z85)\n"
"  --server-key FILE   the collector's public key (.pub file, Z85)\n"
"  --insecure          no CURVE (loopback demos only)\n"
"  --defs DIR          local definitions (*.def); default: those cached from the collector\n"
"  --timeout SECONDS   send, withdraw: give up waiting after this long (default 60)\n"
"  --force             send: send content even when it was delivered before and\n"
"                      superseded since (making the old content current again)\n"
"  --drop DIR          run: the drop folder\n"
"  --keep              run: leave processed files in place (default: move to DIR/.done)\n"
"  --poll SECONDS      run: scan the drop folder every SECONDS (default 2)\n"
"  --polling           run: do not use inotify, only scan\n"
"  --quiet-ms MS       run: quiet period after a file is closed (default 500)\n"
"  --format FMT        status: text (default) or json\n"
"  --history-days N    keep the history of sent contents at least N days (default 400)\n"
"  --history-revs K    and the last K contents of every report key (default 10); the\n"
"                      latest acknowledged, pending and rejected reports are always kept\n"
"  -v, --verbose       more messages\n"
"  -h, --help          this text;  -V, --version  the version\n"
"\n"
"exit codes (send, withdraw): 0 all accepted / duplicate / already delivered, 1 some\n"
"rejected (withdraw with a key that is not an admin key: auth), stale or refused as\n"
"superseded content, 2 usage (withdraw: unknown appendix, malformed period), 3 not\n"
"acknowledged before the deadline (kept in the outbox, sent next time), 4 files invalid\n"
"(nothing sent), 5 the collector refused this key.\n", f);
}

/* --- configuration ------------------------------------------------------------ */
static void set_str(char **dst, const char *v)
{
	free(*dst);
	*dst = strdup(v);
}

static int parse_bool(const char *v) { return th_conf_bool(v) == 1; }

/* Sets one option by its long name; 0 or -1 when unknown / bad value. */
static int set_opt(conf *c, const char *k, const char *v)
{
	char *end;
	if (!strcmp(k, "outbox")) set_str(&c->outbox, v);
	else if (!strcmp(k, "collector")) set_str(&c->collector, v);
	else if (!strcmp(k, "unit")) set_str(&c->unit, v);
	else if (!strcmp(k, "key")) set_str(&c->key, v);
	else if (!strcmp(k, "server-key") || !strcmp(k, "server_key")) set_str(&c->server_key, v);
	else if (!strcmp(k, "defs")) set_str(&c->defs, v);
	else if (!strcmp(k, "drop")) set_str(&c->drop, v);
	else if (!strcmp(k, "format")) set_str(&c->format, v);
	else if (!strcmp(k, "insecure")) c->insecure = parse_bool(v);
	else if (!strcmp(k, "keep")) c->keep = parse_bool(v);
	else if (!strcmp(k, "polling")) c->force_poll = parse_bool(v);
	else if (!strcmp(k, "force")) c->force = parse_bool(v);
	else if (!strcmp(k, "verbose")) c->verbose = parse_bool(v);
	else if (!strcmp(k, "timeout")) {
		c->timeout = strtod(v, &end);
		if (end == v || *end || c->timeout < 0)
			return -1;
	} else if (!strcmp(k, "poll")) {
		long p = strtol(v, &end, 10);
		if (end == v || *end || p < 1 || p > 3600)
			return -1;
		c->poll_s = (int)p;
	} else if (!strcmp(k, "history-days") || !strcmp(k, "history_days")) {
		long d = strtol(v, &end, 10);
		if (end == v || *end || d < 0 || d > 100000)
			return -1;
		c->history_days = d;
	} else if (!strcmp(k, "history-revs") || !strcmp(k, "history_revs")) {
		long r = strtol(v, &end, 10);
		if (end == v || *end || r < 0 || r > 1000000)
			return -1;
		c->history_revs = r;
	} else if (!strcmp(k, "quiet-ms") || !strcmp(k, "quiet_ms")) {
		long q = strtol(v, &end, 10);
		if (end == v || *end || q < 0 || q > 600000)
			return -1;
		c->quiet_ms = (int)q;
	} else
		return -1;
	return 0;
}

static int config_line(void *ctx, const char *name, const char *value, char *why, size_t cap)
{
	return set_opt(ctx, name, value);
}

/* A --config file (grammar: common/th_conf.h); every bad line is shown. */
static int load_config(conf *c, const char *path)
{
	th_diag *d = th_diag_new();
	if (!d)
		return -1;
	int rc = th_conf_parse(path, config_line, c, d);
	for (size_t i = 0; i < th_diag_count(d); i++)
		fprintf(stderr, "%s\n", th_diag_text(d, i));
	th_diag_destroy(&d);
	return rc ? -1 : 0;
}

static void conf_free(conf *c)
{
	free(c->outbox);
	free(c->collector);
	free(c->unit);
	free(c->key);
	free(c->server_key);
	free(c->defs);
	free(c->drop);
	free(c->format);
}

/* --- shared helpers ------------------------------------------------------------------ */
static void fmt_uuid(const uint8_t u[TH_STORE_UUID_LEN], char out[37])
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

static void fmt_time(int64_t us, char out[32])
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

/* ctx: a send_state or run_state, both starting with their conf pointer */
static void agent_log(void *ctx, int level, const char *msg)
{
	conf *c = *(conf **)ctx;
	if (level == TH_AGENT_INFO && !c->verbose)
		return;
	say(level == TH_AGENT_ERROR ? "error" : level == TH_AGENT_WARN ? "warning" : "info", "%s",
	    msg);
}

static int open_outbox(const conf *c, th_outbox **ob)
{
	const char *why = NULL;
	int rc = th_outbox_open(c->outbox, ob, &why);
	if (rc)
		say("error", "%s: cannot open the outbox: %s", c->outbox, why ? why : th_strerror(rc));
	return rc;
}

static int make_agent_opts(const conf *c, th_agent_opts *o)
{
	memset(o, 0, sizeof *o);
	o->endpoint = c->collector;
	o->unit = c->unit;
	o->insecure = c->insecure;
	const char *why = NULL;
	if (c->insecure) {
		say("warning", "--insecure: no encryption and no authentication; for loopback demos only");
		return 0;
	}
	if (!c->key || !c->server_key) {
		say("error", "--key FILE and --server-key FILE are required (or --insecure for a "
		             "loopback demo)");
		return -1;
	}
	if (th_keyfile_read(c->key, o->public_key, o->secret_key, &why) != 0) {
		say("error", "%s: %s", c->key, why);
		return -1;
	}
	if (th_keyfile_read(c->server_key, o->server_key, NULL, &why) != 0) {
		say("error", "%s: %s", c->server_key, why);
		return -1;
	}
	return 0;
}

/* Definitions to validate with: --defs, else the cached ones in force. */
static int load_defs(const conf *c, th_outbox *ob, th_defset **out)
{
	if (c->defs) {
		th_diag *d = th_diag_new();
		int rc = th_defset_load_dir(c->defs, out, d);
		if (rc) {
			for (size_t i = 0; d && i < th_diag_count(d); i++)
				fprintf(stderr, "%s\n", th_diag_text(d, i));
			say("error", "%s: cannot load the definitions: %s", c->defs, th_strerror(rc));
		}
		th_diag_destroy(&d);
		return rc;
	}
	int rc = th_outbox_load_defs(ob, 1, out);
	if (rc == TH_ENOTFOUND)
		rc = th_outbox_load_defs(ob, 0, out);
	return rc;
}

static void print_diag(th_diag *d, FILE *f)
{
	for (size_t i = 0; d && i < th_diag_count(d); i++)
		fprintf(f, "%s\n", th_diag_text(d, i));
}

/* Reads and validates one file; *r and *hash on success. */
static int read_file(const char *path, const th_defset *defs, th_report **r,
                     uint8_t hash[TH_HASH_LEN], th_diag *d)
{
	th_csv_opts co;
	memset(&co, 0, sizeof co);
	int rc = th_csv_read_report(path, defs, &co, r, d);
	if (rc) {
		if (th_diag_errors(d) == 0)
			th_diag_add(d, TH_SEV_ERROR, rc, path, 0, 0, NULL, "%s", th_strerror(rc));
		return rc;
	}
	const th_def *def = th_defset_get(defs, (*r)->appendix, (*r)->version);
	if (!def || (rc = th_report_hash(*r, def, hash)) != 0) {
		th_diag_add(d, TH_SEV_ERROR, rc ? rc : TH_EAPPENDIX, path, 0, 0, NULL,
		            "cannot compute the content hash of %s version %u", (*r)->appendix,
		            (*r)->version);
		th_report_destroy(r);
		return rc ? rc : TH_EAPPENDIX;
	}
	return 0;
}

/* --- send ------------------------------------------------------------------------------ */
typedef struct track {
	char *file;
	char *unit, *appendix, *period;
	uint64_t rev;
	int done;                /* 1 when final */
	int ok;                  /* accepted / duplicate / already delivered */
} track;

typedef struct send_state {
	conf *c;
	track *t;
	size_t n;
} send_state;

static void print_result(const th_ack *a, const th_ack_result *r, const char *file)
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
	fmt_uuid(a->store, id);
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

static void send_result(void *ctx, const th_ack *a, const th_ack_result *r)
{
	send_state *s = ctx;
	const char *file = NULL;
	for (size_t i = 0; i < s->n; i++) {
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
	print_result(a, r, file);
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
	if (th_outbox_get_pending(ob, t->unit, t->appendix, t->period, t->rev, &e) == 0) {
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
	track *nt = realloc(s->t, (s->n + 1) * sizeof *nt);
	if (!nt)
		return TH_ENOMEM;
	s->t = nt;
	track *t = &s->t[s->n];
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
	s->n++;
	return 0;
}

/* Waits for a welcome to fill the definitions cache. */
static int fetch_defs(conf *c, th_outbox *ob, th_agent *ag, double deadline_ms)
{
	while (!g_stop && !th_agent_welcomed(ag) && (th_mono_us() / 1000) < deadline_ms) {
		if (th_agent_auth_refusals(ag) || th_agent_handshake_failures(ag) >= 2)
			return EX_REFUSED;
		th_agent_poll(ag, 200, NULL, 0);
	}
	return th_agent_welcomed(ag) ? 0 : EX_UNDELIVERED;
}

static int prune_outbox(const conf *c, th_outbox *ob, th_ob_prune_stats *st);

/* The withdrawal of one report key (`withdraw`); NULL for `send`. */
typedef struct withdrawal {
	const char *unit, *appendix, *period;
} withdrawal;

/* A tombstone of w's key for the version of its appendix known from defs
 * (the one in force / the local one): validated, with its content hash.
 * TH_EAPPENDIX when defs do not know the appendix. */
static int make_tombstone(const withdrawal *w, const th_defset *defs, th_report **r,
                          uint8_t hash[TH_HASH_LEN], th_diag *d)
{
	const th_def *def = th_defset_latest(defs, w->appendix);
	if (!def) {
		th_diag_add(d, TH_SEV_ERROR, TH_EAPPENDIX, NULL, 0, 0, NULL,
		            "unknown appendix \"%.64s\": the definitions in use do not have it",
		            w->appendix);
		return TH_EAPPENDIX;
	}
	*r = th_report_new(w->unit, def->id, def->version, w->period, 0, def->n_cols);
	if (!*r)
		return TH_ENOMEM;
	(*r)->tombstone = 1;
	int rc = th_report_validate(*r, def, d);
	if (!rc)
		rc = th_report_hash(*r, def, hash);
	if (rc) {
		if (th_diag_errors(d) == 0)
			th_diag_add(d, TH_SEV_ERROR, rc, NULL, 0, 0, NULL, "%s", th_strerror(rc));
		th_report_destroy(r);
	}
	return rc;
}

/* send FILE... or, with w, withdraw UNIT APPENDIX PERIOD (files[0] is the
 * label printed for it): the same queueing, delivery and exit codes. */
static int cmd_send(conf *c, int nfiles, char **files, const withdrawal *w)
{
	if (nfiles < 1) {
		fprintf(stderr, "tonghop-publish send: no file given\n");
		usage(stderr);
		return EX_USAGE;
	}
	th_agent_opts ao;
	if (make_agent_opts(c, &ao) != 0)
		return EX_USAGE;
	th_outbox *ob = NULL;
	if (open_outbox(c, &ob) != 0)
		return EX_UNDELIVERED;
	int ex = EX_OK;
	send_state s = {c, NULL, 0};
	th_agent_hooks hooks = {&s, agent_log, send_result};
	th_agent *ag = NULL;
	th_defset *defs = NULL;
	th_report **reps = calloc((size_t)nfiles, sizeof *reps);
	uint8_t (*hashes)[TH_HASH_LEN] = calloc((size_t)nfiles, sizeof *hashes);
	int64_t deadline = (th_mono_us() / 1000) + (int64_t)(c->timeout * 1000);
	if (!reps || !hashes) {
		ex = EX_UNDELIVERED;
		goto done;
	}

	int rc = load_defs(c, ob, &defs);
	if (rc && c->defs) {
		ex = EX_USAGE;
		goto done;
	}
	if (rc) {
		/* nothing cached yet: the collector's welcome brings the definitions */
		if (th_agent_new(&ao, ob, &hooks, &ag) != 0) {
			say("error", "cannot create the connection to %s", c->collector);
			ex = EX_UNDELIVERED;
			goto done;
		}
		say("info", "no definitions cached yet: fetching them from %s", c->collector);
		ex = fetch_defs(c, ob, ag, (double)deadline);
		if (ex == EX_REFUSED) {
			say("error", "the collector refused this key: ask the central team to register "
			             "%s (or check --server-key)", c->key ? c->key : "the key");
			goto done;
		}
		if (ex || load_defs(c, ob, &defs) != 0) {
			say("error", "no definitions: the collector %s was not reachable to provide them; "
			             "nothing was queued (pass --defs DIR to validate offline)",
			    c->collector);
			ex = EX_UNDELIVERED;
			goto done;
		}
	}

	/* validate everything first: one bad file and nothing is sent */
	int invalid = 0;
	for (int i = 0; i < nfiles; i++) {
		th_diag *d = th_diag_new();
		if (!d) {
			ex = EX_UNDELIVERED;
			goto done;
		}
		if (w) {
			rc = make_tombstone(w, defs, &reps[i], hashes[i], d);
			if (rc)
				invalid++;
			print_diag(d, stderr);
			th_diag_destroy(&d);
			if (rc) {
				/* only the arguments make the tombstone: they are what is wrong */
				fprintf(stderr, "tonghop-publish withdraw: nothing was sent\n");
				ex = rc == TH_ENOMEM ? EX_UNDELIVERED : EX_USAGE;
				goto done;
			}
			continue;
		}
		if (read_file(files[i], defs, &reps[i], hashes[i], d) != 0)
			invalid++;
		print_diag(d, stderr);
		th_diag_destroy(&d);
	}
	if (invalid) {
		fprintf(stderr, "%d of %d file(s) invalid: nothing was sent\n", invalid, nfiles);
		ex = EX_INVALID;
		goto done;
	}
	/* every report in one durable transaction (one fsync), before any send */
	int refused = 0, unqueued = 0;
	th_ob_item *items = calloc((size_t)nfiles, sizeof *items);
	char **fpaths = calloc((size_t)nfiles, sizeof *fpaths);
	if (!items || !fpaths) {
		free(items);
		free(fpaths);
		ex = EX_UNDELIVERED;
		goto done;
	}
	for (int i = 0; i < nfiles; i++) {
		items[i].r = reps[i];
		items[i].hash = hashes[i];
		fpaths[i] = w ? NULL : realpath(files[i], NULL);
		items[i].file = w ? NULL : fpaths[i] ? fpaths[i] : files[i];
	}
	/* a withdrawal may repeat an earlier one (withdrawn, filed again,
	 * withdrawn again): the history does not refuse it */
	rc = th_outbox_enqueue_many(ob, items, (size_t)nfiles, c->force || w != NULL,
	                            th_now_us());
	if (rc)
		say("error", "cannot write to the outbox %s: %s", c->outbox, th_strerror(rc));
	for (int i = 0; i < nfiles; i++) {
		th_report *r = reps[i];
		const th_ob_enqueued *res = &items[i].res;
		if (items[i].rc) {
			say("error", "%s: %s %s %s: cannot write to the outbox: %s; not queued", files[i],
			    r->unit, r->appendix, r->period, th_strerror(items[i].rc));
			unqueued++;
			continue;
		}
		char when[32];
		fmt_time(res->when, when);
		switch (res->outcome) {
		case TH_OB_NEW:
			printf("%s: %s %s %s queued as rev %llu\n", files[i], r->unit, r->appendix,
			       r->period, (unsigned long long)res->rev);
			track_add(&s, files[i], r, res->rev);
			break;
		case TH_OB_SAME_PENDING:
			printf("%s: %s %s %s: the same content is already queued as rev %llu\n",
			       files[i], r->unit, r->appendix, r->period, (unsigned long long)res->rev);
			track_add(&s, files[i], r, res->rev);
			break;
		case TH_OB_SAME_DELIVERED:
			printf("%s: %s %s %s: already delivered (rev %llu, %s)\n", files[i], r->unit,
			       r->appendix, r->period, (unsigned long long)res->rev,
			       th_ob_state_name(res->state));
			break;
		case TH_OB_SAME_STALE:
			printf("%s: %s %s %s: this content was answered stale (rev %llu): a newer "
			       "revision is already stored; not sent\n",
			       files[i], r->unit, r->appendix, r->period, (unsigned long long)res->rev);
			refused++;
			break;
		case TH_OB_OLD_CONTENT:
			printf("%s: %s %s %s: this content was sent before as rev %llu (%s) and has been "
			       "superseded since by rev %llu; not sent (use --force to make it current "
			       "again)\n",
			       files[i], r->unit, r->appendix, r->period, (unsigned long long)res->rev, when,
			       (unsigned long long)res->latest_rev);
			refused++;
			break;
		}
	}
	for (int i = 0; i < nfiles; i++)
		free(fpaths[i]);
	free(fpaths);
	free(items);
	if (rc) {
		ex = EX_UNDELIVERED;
		goto done;
	}
	fflush(stdout);

	/* connect even when every file was delivered before: the welcome tells
	 * whether the collector still holds what it acknowledged (a store restored
	 * from a backup), and the agent sends those again */
	if (!ag) {
		if (th_agent_new(&ao, ob, &hooks, &ag) != 0) {
			say("error", "cannot create the connection to %s", c->collector);
			ex = EX_UNDELIVERED;
			goto done;
		}
	}
	if (ag)
		th_agent_kick(ag);
	int64_t next_check = (th_mono_us() / 1000) + 1000;
	int64_t welcome_by = (th_mono_us() / 1000) + 5000;
	for (;;) {
		size_t open_ = 0;
		for (size_t i = 0; i < s.n; i++)
			open_ += !s.t[i].done;
		/* everything pending goes, not only these files' reports; with nothing
		 * left, wait (briefly) for the welcome's check of acknowledged reports */
		if ((!open_ && (!ag || th_outbox_count(ob, TH_OB_TPENDING) == 0) &&
		     (!ag || th_agent_welcomed(ag) || (th_mono_us() / 1000) >= welcome_by)) || g_stop)
			break;
		int64_t now = (th_mono_us() / 1000);
		if (now >= deadline)
			break;
		if (th_agent_auth_refusals(ag) || th_agent_handshake_failures(ag) >= 2) {
			say("error", "the collector refused this key (or --server-key is wrong): ask the "
			             "central team to register %s; %zu report(s) stay in the outbox",
			    c->key ? c->key : "the key", open_);
			ex = EX_REFUSED;
			goto done;
		}
		long wait = (long)(deadline - now);
		th_agent_poll(ag, wait > 500 ? 500 : (int)wait, NULL, 0);
		if ((th_mono_us() / 1000) >= next_check) {
			for (size_t i = 0; i < s.n; i++)
				if (!s.t[i].done)
					check_elsewhere(ob, &s.t[i]);
			next_check = (th_mono_us() / 1000) + 1000;
		}
	}
	size_t undelivered = 0, bad = 0;
	for (size_t i = 0; i < s.n; i++) {
		undelivered += !s.t[i].done;
		bad += s.t[i].done && !s.t[i].ok;
	}
	size_t others = th_outbox_count(ob, TH_OB_TPENDING);
	if (!undelivered && others)
		printf("%zu other report(s) still pending in the outbox %s (see status)\n", others,
		       c->outbox);
	if (undelivered) {
		printf("%zu report(s) not acknowledged before the deadline: they stay in the outbox "
		       "%s and will be sent next time\n", undelivered, c->outbox);
		ex = EX_UNDELIVERED;
	} else if (unqueued) {
		printf("%d report(s) could not be queued (see the errors above): send them again\n",
		       unqueued);
		ex = EX_UNDELIVERED;
	} else if (bad || refused) {
		ex = EX_REJECTED;
	}
	{
		/* the retention, as `run` does daily (cheap when nothing is due) */
		th_ob_prune_stats pst;
		prune_outbox(c, ob, &pst);
	}
done:
	for (int i = 0; reps && i < nfiles; i++)
		th_report_destroy(&reps[i]);
	free(reps);
	free(hashes);
	for (size_t i = 0; i < s.n; i++) {
		free(s.t[i].file);
		free(s.t[i].unit);
		free(s.t[i].appendix);
		free(s.t[i].period);
	}
	free(s.t);
	th_agent_destroy(&ag);
	th_defset_destroy(&defs);
	th_outbox_close(&ob);
	fflush(stdout);
	return ex;
}

/* --- withdraw ---------------------------------------------------------------------------- */
static int cmd_withdraw(conf *c, int nargs, char **args)
{
	if (nargs != 3) {
		fprintf(stderr, "tonghop-publish withdraw: expected UNIT APPENDIX PERIOD (%s)\n",
		        nargs < 3 ? "too few arguments" : "too many arguments");
		usage(stderr);
		return EX_USAGE;
	}
	withdrawal w = {args[0], args[1], args[2]};
	if (!*w.unit || strlen(w.unit) > TH_CODE_MAX || strpbrk(w.unit, " \t\r\n")) {
		fprintf(stderr, "tonghop-publish withdraw: unit code \"%.64s\" is empty, too long or "
		                "has blanks\n", w.unit);
		return EX_USAGE;
	}
	if (!*w.appendix || strlen(w.appendix) > TH_CODE_MAX) {
		fprintf(stderr, "tonghop-publish withdraw: appendix \"%.64s\" is empty or too long\n",
		        w.appendix);
		return EX_USAGE;
	}
	if (!th_period_valid(w.period)) {
		fprintf(stderr, "tonghop-publish withdraw: period \"%.32s\" is not yyyy, yyyy-Qn, "
		                "yyyy-Hn or yyyy-mm\n", w.period);
		return EX_USAGE;
	}
	char label[] = "withdrawal";
	char *files[1] = {label};
	return cmd_send(c, 1, files, &w);
}

/* --- run --------------------------------------------------------------------------------- */
typedef struct run_state {
	conf *c;
} run_state;

static void run_result(void *ctx, const th_ack *a, const th_ack_result *r)
{
	(void)ctx;
	print_result(a, r, NULL);
}

static int write_errors(const char *path, th_diag *d)
{
	char tmp[4200];
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", path) >= sizeof tmp)
		return -1;
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -1;
	for (size_t i = 0; i < th_diag_count(d); i++)
		fprintf(f, "%s\n", th_diag_text(d, i));
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* One valid file of a scan batch, read and waiting for the outbox. */
typedef struct drop_item {
	char *name, *src, *work, *done_, *errs;   /* malloc'd */
	th_report *r;
	uint8_t hash[TH_HASH_LEN];
} drop_item;

/* At most this many files of a scan share one transaction (bounds the
 * memory of a mass drop; still one fsync per this many files). */
#define DROP_BATCH 256

static char *fmtdup(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmtdup(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= 4096)
		return NULL;
	char *p = malloc((size_t)n + 1);
	if (!p)
		return NULL;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	return p;
}

static void drop_item_free(drop_item *it)
{
	free(it->name);
	free(it->src);
	free(it->work);
	free(it->done_);
	free(it->errs);
	th_report_destroy(&it->r);
	memset(it, 0, sizeof *it);
}

/* Takes one complete file of the drop folder and reads it.  An invalid one
 * is handled here (sidecar, back in place); a valid one fills *it and
 * returns 1 (to be queued with the rest of the batch); 0 otherwise. */
static int drop_prepare(conf *c, th_watch *w, const th_defset *defs, const char *name,
                        drop_item *it)
{
	memset(it, 0, sizeof *it);
	it->name = strdup(name);
	it->src = fmtdup("%s/%s", c->drop, name);
	it->errs = fmtdup("%s/%s.errors.txt", c->drop, name);
	it->done_ = fmtdup("%s/.done/%s", c->drop, name);
	it->work = fmtdup("%s/.work/%s", c->drop, name);
	if (!it->name || !it->src || !it->errs || !it->done_ || !it->work) {
		say("error", "%s/%s: path too long (or out of memory)", c->drop, name);
		drop_item_free(it);
		return 0;
	}
	const char *path = it->src;
	if (!c->keep) {
		/* take the file out of the folder first: a newer file dropped under
		 * the same name while we read this one is a new event */
		char d1[4200];
		if ((size_t)snprintf(d1, sizeof d1, "%s/.work", c->drop) < sizeof d1)
			mkdir(d1, 0750);
		if ((size_t)snprintf(d1, sizeof d1, "%s/.done", c->drop) < sizeof d1)
			mkdir(d1, 0750);
		if (rename(it->src, it->work) != 0) {
			drop_item_free(it);
			return 0;   /* gone already */
		}
		path = it->work;
	}
	th_diag *d = th_diag_new();
	if (!d) {
		if (!c->keep && link(it->work, it->src) == 0)
			unlink(it->work);
		drop_item_free(it);
		return 0;
	}
	if (read_file(path, defs, &it->r, it->hash, d) != 0) {
		/* rename the diagnostics' file name back to the drop path */
		th_diag *d2 = th_diag_new();
		for (size_t i = 0; d2 && i < th_diag_count(d); i++) {
			const th_diag_entry *e = th_diag_at(d, i);
			th_diag_add(d2, e->sev, e->code, e->file ? it->src : NULL, e->line, e->row,
			            e->column, "%s", e->msg);
		}
		if (d2) {
			th_diag_destroy(&d);
			d = d2;
		}
		write_errors(it->errs, d);
		say("error", "%s: invalid, not sent (%zu problem(s), see %s)", it->src,
		    th_diag_errors(d), it->errs);
		print_diag(d, stderr);
		if (!c->keep) {
			/* back into place unless a newer file took the name meanwhile */
			if (link(it->work, it->src) == 0) {
				unlink(it->work);
			} else {
				char *inval = fmtdup("%s/.done/%s.invalid", c->drop, name);
				if (inval)
					rename(it->work, inval);
				free(inval);
			}
		}
		th_watch_done(w, name);
		th_diag_destroy(&d);
		drop_item_free(it);
		return 0;
	}
	print_diag(d, stderr);   /* warnings */
	th_diag_destroy(&d);
	return 1;
}

/* After the batch's transaction: says what happened to one file and moves
 * it to .done (or back in place when it could not be queued). */
static void drop_finish(conf *c, th_watch *w, drop_item *it, int rc, const th_ob_enqueued *res)
{
	const th_report *r = it->r;
	const char *src = it->src;
	if (rc) {
		say("error", "%s: cannot write to the outbox: %s; will try again", src, th_strerror(rc));
		if (!c->keep && link(it->work, src) == 0)
			unlink(it->work);
		return;
	}
	switch (res->outcome) {
	case TH_OB_NEW:
		say("info", "%s: %s %s %s queued as rev %llu", src, r->unit, r->appendix, r->period,
		    (unsigned long long)res->rev);
		break;
	case TH_OB_SAME_PENDING:
		say("info", "%s: %s %s %s: the same content is already queued (rev %llu)", src,
		    r->unit, r->appendix, r->period, (unsigned long long)res->rev);
		break;
	case TH_OB_SAME_DELIVERED:
		say("info", "%s: %s %s %s: already delivered (rev %llu)", src, r->unit, r->appendix,
		    r->period, (unsigned long long)res->rev);
		break;
	case TH_OB_SAME_STALE:
	case TH_OB_OLD_CONTENT:
		say("warning", "%s: %s %s %s: this content was sent before as rev %llu and has been "
		               "superseded since%s; not sent (send it with --force to make it current "
		               "again)",
		    src, r->unit, r->appendix, r->period, (unsigned long long)res->rev,
		    res->outcome == TH_OB_SAME_STALE ? " (answered stale)" : "");
		break;
	}
	unlink(it->errs);
	if (!c->keep)
		rename(it->work, it->done_);
	else
		th_watch_done(w, it->name);
}

/* Handles the complete files of one scan: each is read and validated on its
 * own (an invalid one holds back nothing), then every valid one is queued in
 * one durable transaction, then they move to .done. */
static void process_drops(conf *c, th_outbox *ob, th_agent *ag, th_watch *w,
                          const th_defset *defs, char **names, size_t n)
{
	drop_item *items = calloc(DROP_BATCH, sizeof *items);
	th_ob_item *q = calloc(DROP_BATCH, sizeof *q);
	if (!items || !q) {
		free(items);
		free(q);
		return;   /* the files stay where they are and come back at the next scan */
	}
	size_t i = 0;
	while (i < n && !g_stop) {
		size_t k = 0;
		for (; i < n && k < DROP_BATCH && !g_stop; i++)
			if (drop_prepare(c, w, defs, names[i], &items[k])) {
				memset(&q[k], 0, sizeof q[k]);
				q[k].r = items[k].r;
				q[k].hash = items[k].hash;
				q[k].file = c->keep ? items[k].src : items[k].done_;
				k++;
			}
		if (!k)
			continue;
		int rc = th_outbox_enqueue_many(ob, q, k, c->force, th_now_us());
		if (rc)
			say("error", "cannot write to the outbox %s: %s", c->outbox, th_strerror(rc));
		for (size_t j = 0; j < k; j++) {
			drop_finish(c, w, &items[j], q[j].rc, &q[j].res);
			drop_item_free(&items[j]);
		}
		th_agent_kick(ag);
	}
	free(items);
	free(q);
}

/* Files left in DIR/.work by an agent killed while handling them go back
 * into the drop folder (read again: if they were queued already, the same
 * content is recognised); when a newer file took the name meanwhile, the
 * older one is kept aside as DIR/.done/NAME.interrupted. */
static void recover_work(const conf *c)
{
	if (c->keep)
		return;
	char wd[4200];
	if ((size_t)snprintf(wd, sizeof wd, "%s/.work", c->drop) >= sizeof wd)
		return;
	DIR *d = opendir(wd);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		char from[4500], to[4500];
		if ((size_t)snprintf(from, sizeof from, "%s/%s", wd, de->d_name) >= sizeof from ||
		    (size_t)snprintf(to, sizeof to, "%s/%s", c->drop, de->d_name) >= sizeof to)
			continue;
		if (link(from, to) == 0) {
			unlink(from);
			say("info", "%s: taken back from an interrupted run", to);
		} else if (errno == EEXIST &&
		           (size_t)snprintf(to, sizeof to, "%s/.done/%s.interrupted", c->drop,
		                            de->d_name) < sizeof to) {
			rename(from, to);
			say("warning", "%s/%s: a newer file has the name; the one an interrupted run was "
			               "handling is kept as %s", c->drop, de->d_name, to);
		}
	}
	closedir(d);
}

/* The retention of OUTBOX.md with the configured bounds. */
static int prune_outbox(const conf *c, th_outbox *ob, th_ob_prune_stats *st)
{
	th_ob_retention rt;
	memset(&rt, 0, sizeof rt);
	rt.days = c->history_days >= 0 ? c->history_days : TH_OB_HISTORY_DAYS;
	rt.revs = c->history_revs >= 0 ? (uint32_t)c->history_revs : TH_OB_HISTORY_REVS;
	int rc = th_outbox_prune(ob, &rt, th_now_us(), st);
	if (rc)
		say("warning", "%s: pruning the history failed: %s (nothing needed was removed; "
		               "tried again later)", c->outbox, th_strerror(rc));
	else if (st->pruned)
		say("info", "%s: history pruned: %zu old content record(s) of %zu report key(s) "
		            "removed (older than %lld days and beyond the last %u of their key)",
		    c->outbox, st->pruned, st->keys, (long long)rt.days, rt.revs);
	return rc;
}

static int cmd_run(conf *c)
{
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
	if (make_agent_opts(c, &ao) != 0)
		return EX_USAGE;
	th_outbox *ob = NULL;
	th_watch *w = NULL;
	th_agent *ag = NULL;
	th_defset *defs = NULL;
	int ex = EX_OK;
	if (open_outbox(c, &ob) != 0)
		return EX_UNDELIVERED;
	const char *why = NULL;
	recover_work(c);   /* before the watch: they count as present at start */
	th_watch_opts wo = {c->drop, c->quiet_ms, c->poll_s, c->force_poll};
	if (th_watch_open(&wo, &w, &why) != 0) {
		say("error", "%s: %s", c->drop, why ? why : "cannot watch");
		ex = EX_USAGE;
		goto done;
	}
	run_state rs = {c};
	th_agent_hooks hooks = {&rs, agent_log, run_result};
	(void)rs;
	if (th_agent_new(&ao, ob, &hooks, &ag) != 0) {
		say("error", "cannot create the connection to %s", c->collector);
		ex = EX_UNDELIVERED;
		goto done;
	}
	say("info", "watching %s (%s), delivering to %s, outbox %s", c->drop, th_watch_backend(w),
	    c->collector, c->outbox);
	th_ob_prune_stats pst;
	prune_outbox(c, ob, &pst);
	int64_t next_prune = (th_mono_us() / 1000) + PRUNE_EVERY_MS;
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	int welcomed_before = 0;
	while (!g_stop) {
		zmq_pollitem_t it = {NULL, th_watch_fd(w), ZMQ_POLLIN, 0};
		int64_t now = (th_mono_us() / 1000);
		int tmo = th_watch_timeout(w, now);
		th_agent_poll(ag, tmo, &it, th_watch_fd(w) >= 0 ? 1 : 0);
		/* definitions: local ones, or the cache refreshed by each welcome */
		if (!defs || (!c->defs && th_agent_welcomed(ag) && !welcomed_before)) {
			th_defset *nd = NULL;
			if (load_defs(c, ob, &nd) == 0) {
				th_defset_destroy(&defs);
				defs = nd;
			} else if (c->defs) {
				ex = EX_USAGE;
				goto done;
			}
		}
		welcomed_before = th_agent_welcomed(ag);
		if ((th_mono_us() / 1000) >= next_prune) {
			prune_outbox(c, ob, &pst);
			next_prune = (th_mono_us() / 1000) + PRUNE_EVERY_MS;
		}
		if (!defs)
			continue;   /* files wait until the collector sends the definitions */
		char **names = NULL;
		size_t n = 0;
		th_watch_ready(w, (th_mono_us() / 1000), &names, &n);
		if (n)
			process_drops(c, ob, ag, w, defs, names, n);
		th_watch_names_free(names, n);
	}
	say("info", "stopping: %zu report(s) pending in the outbox", th_outbox_count(ob, TH_OB_TPENDING));
done:
	th_agent_destroy(&ag);
	th_watch_destroy(&w);
	th_defset_destroy(&defs);
	th_outbox_close(&ob);
	return ex;
}

/* --- status ----------------------------------------------------------------------------- */
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
		fmt_time(e->created, t1);
		fmt_time(e->updated, t2);
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
			fmt_uuid(e->store, id);
			fmt_time(e->commit_time, t1);
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
		fmt_uuid(e->store, id);
		fmt_time(e->commit_time, t1);
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

static int cmd_status(conf *c)
{
	int json = c->format && !strcmp(c->format, "json");
	if (c->format && !json && strcmp(c->format, "text")) {
		fprintf(stderr, "tonghop-publish status: --format text|json\n");
		return EX_USAGE;
	}
	struct stat st;
	if (stat(c->outbox, &st) != 0) {
		say("error", "%s: no outbox here (nothing was ever queued; --outbox DIR?)", c->outbox);
		return EX_REJECTED;
	}
	th_outbox *ob = NULL;
	if (open_outbox(c, &ob) != 0)
		return EX_REJECTED;
	th_ob_meta m;
	th_outbox_meta(ob, &m);
	char id[37] = "", when[32];
	if (m.has_store)
		fmt_uuid(m.store, id);
	fmt_time(m.last_contact, when);
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

/* --- prune ------------------------------------------------------------------------------- */
static int cmd_prune(conf *c)
{
	struct stat st;
	if (stat(c->outbox, &st) != 0) {
		say("error", "%s: no outbox here (--outbox DIR?)", c->outbox);
		return EX_REJECTED;
	}
	th_outbox *ob = NULL;
	if (open_outbox(c, &ob) != 0)
		return EX_UNDELIVERED;
	size_t before = th_outbox_history_count(ob);
	th_ob_prune_stats ps;
	memset(&ps, 0, sizeof ps);
	int rc = prune_outbox(c, ob, &ps);
	if (rc == 0)
		printf("history: %zu of %zu content record(s) removed (%zu report key(s) looked at, "
		       "%zu transaction(s)); %zu kept\n",
		       ps.pruned, before, ps.keys, ps.txns, th_outbox_history_count(ob));
	th_outbox_close(&ob);
	return rc ? EX_UNDELIVERED : EX_OK;
}

/* --- main -------------------------------------------------------------------------------- */
int main(int argc, char **argv)
{
	conf c;
	memset(&c, 0, sizeof c);
	c.timeout = 60;
	c.history_days = -1;
	c.history_revs = -1;
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"outbox", required_argument, NULL, 'o'},
		{"collector", required_argument, NULL, 'C'},
		{"unit", required_argument, NULL, 'u'},
		{"key", required_argument, NULL, 'k'},
		{"server-key", required_argument, NULL, 'K'},
		{"insecure", no_argument, NULL, 'I'},
		{"defs", required_argument, NULL, 'd'},
		{"timeout", required_argument, NULL, 't'},
		{"force", no_argument, NULL, 'F'},
		{"drop", required_argument, NULL, 'D'},
		{"keep", no_argument, NULL, 'E'},
		{"poll", required_argument, NULL, 'P'},
		{"polling", no_argument, NULL, 'L'},
		{"quiet-ms", required_argument, NULL, 'Q'},
		{"format", required_argument, NULL, 'f'},
		{"history-days", required_argument, NULL, 'H'},
		{"history-revs", required_argument, NULL, 'R'},
		{"verbose", no_argument, NULL, 'v'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	/* the config file first, so that command-line options win */
	for (int i = 1; i < argc; i++) {
		const char *path = NULL;
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			path = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
		if (path && load_config(&c, path) != 0) {
			conf_free(&c);
			return EX_USAGE;
		}
	}
	int ch;
	while ((ch = getopt_long(argc, argv, "+vhV", opts, NULL)) != -1) {
		const char *name = NULL;
		for (const struct option *o = opts; o->name; o++)
			if (o->val == ch)
				name = o->name;
		switch (ch) {
		case 'c':
			break;
		case 'h':
			usage(stdout);
			conf_free(&c);
			return 0;
		case 'V':
			printf("tonghop-publish %s (outbox format %d, protocol %d)\n", TH_VERSION,
			       TH_OUTBOX_FORMAT, TH_WIRE_VERSION);
			conf_free(&c);
			return 0;
		case 'I': case 'F': case 'E': case 'L': case 'v':
			set_opt(&c, name, "1");
			break;
		case '?':
			usage(stderr);
			conf_free(&c);
			return EX_USAGE;
		default:
			if (!name || set_opt(&c, name, optarg) != 0) {
				fprintf(stderr, "tonghop-publish: --%s: bad value \"%s\"\n", name ? name : "?",
				        optarg ? optarg : "");
				conf_free(&c);
				return EX_USAGE;
			}
		}
	}
	if (optind >= argc) {
		usage(stderr);
		conf_free(&c);
		return EX_USAGE;
	}
	const char *cmd = argv[optind++];
	/* options may also follow the command */
	int rest_start = optind;
	optind = rest_start;
	char **files = calloc((size_t)argc + 1, sizeof *files);
	int nfiles = 0;
	if (!files) {
		conf_free(&c);
		return EX_UNDELIVERED;
	}
	while (optind < argc) {
		ch = getopt_long(argc, argv, "+vhV", opts, NULL);
		if (ch == -1) {
			files[nfiles++] = argv[optind++];
			continue;
		}
		const char *name = NULL;
		for (const struct option *o = opts; o->name; o++)
			if (o->val == ch)
				name = o->name;
		if (ch == 'h') {
			usage(stdout);
			free(files);
			conf_free(&c);
			return 0;
		}
		if (ch == '?' || (ch != 'c' && !name)) {
			usage(stderr);
			free(files);
			conf_free(&c);
			return EX_USAGE;
		}
		if (ch == 'c')
			continue;
		if (ch == 'I' || ch == 'F' || ch == 'E' || ch == 'L' || ch == 'v' || ch == 'V') {
			if (ch == 'V') {
				printf("tonghop-publish %s\n", TH_VERSION);
				free(files);
				conf_free(&c);
				return 0;
			}
			set_opt(&c, name, "1");
		} else if (set_opt(&c, name, optarg) != 0) {
			fprintf(stderr, "tonghop-publish: --%s: bad value \"%s\"\n", name, optarg);
			free(files);
			conf_free(&c);
			return EX_USAGE;
		}
	}
	if (!c.outbox)
		c.outbox = strdup("./tonghop-outbox");
	if (!c.collector)
		c.collector = strdup("tcp://127.0.0.1:7701");
	if (!c.poll_s)
		c.poll_s = 2;
	if (!c.quiet_ms)
		c.quiet_ms = 500;
	signal(SIGPIPE, SIG_IGN);
	int ex;
	if (!strcmp(cmd, "send")) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		ex = cmd_send(&c, nfiles, files, NULL);
	} else if (!strcmp(cmd, "withdraw")) {
		struct sigaction sa;
		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_signal;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		ex = cmd_withdraw(&c, nfiles, files);
	} else if (!strcmp(cmd, "run")) {
		ex = nfiles ? EX_USAGE : cmd_run(&c);
		if (nfiles)
			fprintf(stderr, "tonghop-publish run: unexpected argument %s\n", files[0]);
	} else if (!strcmp(cmd, "prune")) {
		ex = nfiles ? EX_USAGE : cmd_prune(&c);
		if (nfiles)
			fprintf(stderr, "tonghop-publish prune: unexpected argument %s\n", files[0]);
	} else if (!strcmp(cmd, "status")) {
		ex = nfiles ? EX_USAGE : cmd_status(&c);
		if (nfiles)
			fprintf(stderr, "tonghop-publish status: unexpected argument %s\n", files[0]);
	} else {
		fprintf(stderr, "tonghop-publish: unknown command \"%s\"\n", cmd);
		usage(stderr);
		ex = EX_USAGE;
	}
	free(files);
	conf_free(&c);
	return ex;
}

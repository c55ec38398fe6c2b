/* main.c -- tonghop-publish: a unit's agent.  Options (getopt_long, then a
 * --config file under them) and the dispatch to the commands, one file each:
 * cmd_send.c, cmd_withdraw.c, cmd_run.c, cmd_status.c, cmd_prune.c. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "outbox.h"
#include "pubconf.h"
#include "pubout.h"
#include "th_wire.h"

volatile sig_atomic_t th_pub_stop;
void th_pub_on_signal(int sig)
{
	(void)sig;
	th_pub_stop = 1;
}

void th_pub_usage(FILE *f)
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

static const char *opt_name(int ch)
{
	for (const struct option *o = opts; o->name; o++)
		if (o->val == ch)
			return o->name;
	return NULL;
}

static int is_flag(int ch) { return ch == 'I' || ch == 'F' || ch == 'E' || ch == 'L' || ch == 'v'; }

/* Reads every --config FILE of argv first, so that command-line options win. */
static int load_configs(th_pubconf *c, int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		const char *path = NULL;
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			path = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
		if (!path)
			continue;
		th_diag *d = th_diag_new();
		if (!d)
			return -1;
		int rc = th_pubconf_load(c, path, d);
		th_pubout_diag(stderr, d);
		th_diag_destroy(&d);
		if (rc)
			return -1;
	}
	return 0;
}

/* One option of getopt (not --help / --version / --config): 0, or EX_USAGE
 * with the message said. */
static int take_option(th_pubconf *c, int ch)
{
	const char *name = opt_name(ch);
	if (!name)
		return EX_USAGE;
	if (is_flag(ch)) {
		th_pubconf_set(c, name, "1");
		return 0;
	}
	if (th_pubconf_set(c, name, optarg) != 0) {
		fprintf(stderr, "tonghop-publish: --%s: bad value \"%s\"\n", name, optarg ? optarg : "");
		return EX_USAGE;
	}
	return 0;
}

typedef struct command {
	const char *name;
	int (*run)(th_pubconf *c, int nargs, char **args);
	int stop_on_signal;   /* SIGTERM / SIGINT end it between steps (run sets its own) */
} command;

static const command commands[] = {
	{"send", cmd_send, 1},
	{"withdraw", cmd_withdraw, 1},
	{"run", cmd_run, 0},
	{"prune", cmd_prune, 0},
	{"status", cmd_status, 0},
};

static int dispatch(th_pubconf *c, const char *name, int nargs, char **args)
{
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(name, commands[i].name))
			continue;
		if (commands[i].stop_on_signal) {
			struct sigaction sa;
			memset(&sa, 0, sizeof sa);
			sa.sa_handler = th_pub_on_signal;
			sigaction(SIGTERM, &sa, NULL);
			sigaction(SIGINT, &sa, NULL);
		}
		return commands[i].run(c, nargs, args);
	}
	fprintf(stderr, "tonghop-publish: unknown command \"%s\"\n", name);
	th_pub_usage(stderr);
	return EX_USAGE;
}

/* Options before the command, the command, then options and operands mixed.
 * Returns the exit status; *done when it is final (help, version, usage). */
static int parse_args(th_pubconf *c, int argc, char **argv, const char **cmd, char **args,
                      int *nargs, int *done)
{
	*done = 1;
	int ch;
	while ((ch = getopt_long(argc, argv, "+vhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			break;
		case 'h':
			th_pub_usage(stdout);
			return EX_OK;
		case 'V':
			printf("tonghop-publish %s (outbox format %d, protocol %d)\n", TH_VERSION,
			       TH_OUTBOX_FORMAT, TH_WIRE_VERSION);
			return EX_OK;
		case '?':
			th_pub_usage(stderr);
			return EX_USAGE;
		default:
			if (take_option(c, ch) != 0)
				return EX_USAGE;
		}
	}
	if (optind >= argc) {
		th_pub_usage(stderr);
		return EX_USAGE;
	}
	*cmd = argv[optind++];
	/* options may also follow the command */
	while (optind < argc) {
		ch = getopt_long(argc, argv, "+vhV", opts, NULL);
		if (ch == -1) {
			args[(*nargs)++] = argv[optind++];
			continue;
		}
		if (ch == 'h') {
			th_pub_usage(stdout);
			return EX_OK;
		}
		if (ch == 'V') {
			printf("tonghop-publish %s\n", TH_VERSION);
			return EX_OK;
		}
		if (ch == '?' || (ch != 'c' && !opt_name(ch))) {
			th_pub_usage(stderr);
			return EX_USAGE;
		}
		if (ch != 'c' && take_option(c, ch) != 0)
			return EX_USAGE;
	}
	*done = 0;
	return EX_OK;
}

int main(int argc, char **argv)
{
	th_pubconf c;
	th_pubconf_init(&c);
	if (load_configs(&c, argc, argv) != 0) {
		th_pubconf_free(&c);
		return EX_USAGE;
	}
	char **args = calloc((size_t)argc + 1, sizeof *args);
	if (!args) {
		th_pubconf_free(&c);
		return EX_UNDELIVERED;
	}
	const char *cmd = NULL;
	int nargs = 0, done = 0;
	int ex = parse_args(&c, argc, argv, &cmd, args, &nargs, &done);
	if (!done) {
		if (th_pubconf_finish(&c) != 0)
			ex = EX_UNDELIVERED;
		else {
			th_pubout_set_verbose(c.verbose);
			ex = dispatch(&c, cmd, nargs, args);
		}
	}
	free(args);
	th_pubconf_free(&c);
	return ex;
}

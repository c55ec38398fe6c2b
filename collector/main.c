/* tonghop-collector -- the central server: authenticated ingest, dedup,
 * durable group commit, incremental rollups, PUB stream, queries. */
#include "keys.h"
#include "th_conf.h"
#include "th_log.h"
#include "metrics.h"
#include "net.h"
#include "th_def.h"
#include "th_store.h"
#include "th_units.h"
#include "unitsdir.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_UNITS_FILES 16
#define MAX_DEADLINES 1024

typedef struct {
	const char *db, *defs, *bind, *pub, *query, *keys, *server_key, *metrics, *units_dir;
	const char *units[MAX_UNITS_FILES];
	int n_units;
	const char *deadlines[MAX_DEADLINES];
	int n_deadlines;
	int insecure, check, group_max, allow_root, max_inflight, max_conns_per_key;
	size_t map_size;
} conf;

static void usage(FILE *f)
{
	fprintf(f,
	"usage: tonghop-collector [options]\n"
	"       tonghop-collector keygen PREFIX   (writes PREFIX.key, mode 0600, and PREFIX.pub)\n"
	"\n"
	"The central server: agents submit appendix reports, the collector deduplicates them,\n"
	"stores every revision durably in LMDB, keeps rollups per unit and level, acknowledges,\n"
	"and publishes rollup changes.\n"
	"\n"
	"options (also `name = value` lines of a --config file, without the dashes):\n"
	"  --db DIR             store directory (created when absent)          [required]\n"
	"  --units FILE         unit hierarchy file; repeat for several versions\n"
	"  --units-dir DIR      also load every DIR/*.units; an admin's submitted version is\n"
	"                       written there (at least one hierarchy file is required)\n"
	"  --defs DIR           appendix definitions (default: %s)\n"
	"  --bind ENDPOINT      ingest socket for agents (default tcp://127.0.0.1:7701)\n"
	"  --pub ENDPOINT       rollup change stream (default tcp://127.0.0.1:7702)\n"
	"  --query ENDPOINT     query socket for tools (default tcp://127.0.0.1:7703)\n"
	"  --keys FILE          authorised keys: \"<public-key> <unit> <agent|reader|admin> [comment]\"\n"
	"  --server-key FILE    the collector's keypair (from `keygen`)\n"
	"  --insecure           no CURVE, no authentication: loopback/ipc endpoints only, demos only\n"
	"  --deadline SPEC      APPENDIX:PERIOD:yyyy-mm-dd, or APPENDIX:PERIOD:UNIT:yyyy-mm-dd; repeatable\n"
	"  --group-max N        messages per commit group (default 1024)\n"
	"  --map-size MIB       initial LMDB map size in MiB (default 64; grows when full)\n"
	"  --log-level LEVEL    error, warn, info (default) or debug\n"
	"  --metrics FILE       write Prometheus metrics to FILE every 10 s and at exit\n"
	"  --config FILE        read options from FILE\n"
	"  --max-inflight N     unacknowledged submits per connection in one commit group (default 64)\n"
	"  --max-conns-per-key N  live ingest connections per key (default 16)\n"
	"  --allow-root         allow running as root (refused otherwise; not recommended)\n"
	"  -n, --check          check configuration, hierarchy, definitions and keys, then exit\n"
	"  -h, --help           this text\n"
	"  -V, --version        version\n"
	"\n"
	"Signals: SIGTERM/SIGINT finish the current group and exit; SIGHUP reloads keys and\n"
	"hierarchy files (the --units files and --units-dir).\n"
	"Exit codes: 0 ok, 1 runtime failure, 2 usage, 3 bad configuration.\n",
	th_def_default_dir());
}

static const struct option long_opts[] = {
	{"db", 1, 0, 'd'}, {"units", 1, 0, 'u'}, {"defs", 1, 0, 'D'}, {"bind", 1, 0, 'b'},
	{"pub", 1, 0, 'p'}, {"query", 1, 0, 'q'}, {"keys", 1, 0, 'k'}, {"server-key", 1, 0, 'K'},
	{"insecure", 0, 0, 'I'}, {"deadline", 1, 0, 'L'}, {"group-max", 1, 0, 'g'},
	{"map-size", 1, 0, 'm'}, {"log-level", 1, 0, 'l'}, {"config", 1, 0, 'c'},
	{"allow-root", 0, 0, 'R'}, {"metrics", 1, 0, 'M'}, {"check", 0, 0, 'n'}, {"help", 0, 0, 'h'},
	{"version", 0, 0, 'V'}, {"max-inflight", 1, 0, 'F'}, {"units-dir", 1, 0, 'U'},
	{"max-conns-per-key", 1, 0, 'P'},
	{0, 0, 0, 0}};

static int set_opt(conf *c, int ch, const char *arg, char *why, size_t cap);

/* Values read from config files live until exit; kept here to be freed. */
static char **config_values;
static size_t n_config_values;

static const char *keep_value(const char *v)
{
	char *d = strdup(v);
	char **nv = d ? realloc(config_values, (n_config_values + 1) * sizeof *nv) : NULL;
	if (!nv) {
		free(d);
		return NULL;
	}
	config_values = nv;
	config_values[n_config_values++] = d;
	return d;
}

static void free_config_values(void)
{
	for (size_t i = 0; i < n_config_values; i++)
		free(config_values[i]);
	free(config_values);
	config_values = NULL;
	n_config_values = 0;
}

typedef struct {
	conf *c;
	int rc;        /* the worst exit code a line asked for */
} conf_ctx;

/* One `name = value` line of a --config file (grammar: common/th_conf.h). */
static int config_line(void *vctx, const char *name, const char *value, char *why, size_t cap)
{
	conf_ctx *x = vctx;
	const struct option *o = NULL;
	for (int i = 0; long_opts[i].name; i++)
		if (strcmp(long_opts[i].name, name) == 0)
			o = &long_opts[i];
	if (!o || o->val == 'c' || o->val == 'h' || o->val == 'V') {
		snprintf(why, cap, "unknown setting \"%s\"", name);
		x->rc = 3;
		return -1;
	}
	if (!o->has_arg) {
		int b = th_conf_bool(value);
		if (b < 0) {
			snprintf(why, cap, "%s takes yes or no, not \"%s\"", name, value);
			x->rc = 3;
			return -1;
		}
		if (!b)
			return 0;   /* "insecure = no" */
		value = NULL;
	} else if (!*value) {
		snprintf(why, cap, "%s needs a value (\"%s = ...\")", name, name);
		x->rc = 3;
		return -1;
	}
	const char *v = value ? keep_value(value) : NULL;
	if (value && !v) {
		snprintf(why, cap, "out of memory");
		x->rc = 1;
		return -1;
	}
	int r = set_opt(x->c, o->val, v, why, cap);
	if (r && r > x->rc)
		x->rc = r;
	return r ? -1 : 0;
}

static int read_config(conf *c, const char *path)
{
	conf_ctx x = {c, 0};
	th_diag *d = th_diag_new();
	if (!d)
		return 1;
	int rc = th_conf_parse(path, config_line, &x, d);
	for (size_t i = 0; i < th_diag_count(d); i++)
		fprintf(stderr, "tonghop-collector: %s\n", th_diag_text(d, i));
	th_diag_destroy(&d);
	if (rc == TH_EIO || rc == TH_ETOOBIG || rc == TH_ENOMEM)
		return 3;
	return rc ? (x.rc ? x.rc : 3) : 0;
}

static int set_opt(conf *c, int ch, const char *arg, char *why, size_t cap)
{
	switch (ch) {
	case 'd': c->db = arg; break;
	case 'u':
		if (c->n_units >= MAX_UNITS_FILES) {
			snprintf(why, cap, "at most %d --units files", MAX_UNITS_FILES);
			return 2;
		}
		c->units[c->n_units++] = arg;
		break;
	case 'U': c->units_dir = arg; break;
	case 'D': c->defs = arg; break;
	case 'b': c->bind = arg; break;
	case 'p': c->pub = arg; break;
	case 'q': c->query = arg; break;
	case 'k': c->keys = arg; break;
	case 'K': c->server_key = arg; break;
	case 'I': c->insecure = 1; break;
	case 'L':
		if (c->n_deadlines >= MAX_DEADLINES) {
			snprintf(why, cap, "at most %d --deadline settings", MAX_DEADLINES);
			return 2;
		}
		c->deadlines[c->n_deadlines++] = arg;
		break;
	case 'g': c->group_max = atoi(arg); if (c->group_max < 1 || c->group_max > 100000) {
			snprintf(why, cap, "--group-max must be 1..100000");
			return 2;
		}
		break;
	case 'm': c->map_size = (size_t)strtoull(arg, NULL, 10) << 20; break;
	case 'l':
		if (th_log_parse_level(arg) < 0) {
			snprintf(why, cap, "log level must be error, warn, info or debug");
			return 2;
		}
		th_log_level = th_log_parse_level(arg);
		break;
	case 'R': c->allow_root = 1; break;
	case 'F': c->max_inflight = atoi(arg); if (c->max_inflight < 1 || c->max_inflight > 100000) {
			snprintf(why, cap, "--max-inflight must be 1..100000");
			return 2;
		}
		break;
	case 'P': c->max_conns_per_key = atoi(arg);
		if (c->max_conns_per_key < 1 || c->max_conns_per_key > 100000) {
			snprintf(why, cap, "--max-conns-per-key must be 1..100000");
			return 2;
		}
		break;
	case 'M': c->metrics = arg; break;
	case 'n': c->check = 1; break;
	case 'c': return read_config(c, arg);
	default: return 2;
	}
	return 0;
}

static int loopback_only(const char *ep)
{
	return strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0 ||
	       strncmp(ep, "tcp://127.", 10) == 0 || strncmp(ep, "tcp://localhost:", 16) == 0 ||
	       strncmp(ep, "tcp://[::1]:", 12) == 0;
}

static void print_diag(th_diag *d)
{
	for (size_t i = 0; i < th_diag_count(d); i++)
		th_log(th_diag_at(d, i)->sev == TH_SEV_ERROR ? TH_LOG_ERROR : TH_LOG_WARN, "config", "%s",
		       th_diag_text(d, i));
}

typedef struct {
	conf *c;
	th_store *store;
	th_committer *committer;  /* the store's one writer: every write goes through it */
	th_zap *zap;
	th_units **hier;          /* the files parsed at start (for --check and the first load) */
	int n_hier;
	char **paths;             /* their paths: the --units files, then --units-dir by name */
	size_t n_paths;
} runtime;

/* Every hierarchy file: the --units files, then the *.units files of --units-dir
 * by name.  *paths malloc'd (th_unitsdir_free).  Logs and returns non-zero when
 * the directory cannot be read. */
static int units_paths(const conf *c, char ***paths, size_t *n)
{
	char **dir = NULL;
	size_t nd = 0;
	/* a directory not created yet (it is at start) holds no file */
	if (c->units_dir && th_unitsdir_list(c->units_dir, &dir, &nd) != 0 && errno != ENOENT) {
		th_log(TH_LOG_ERROR, "config", "--units-dir %s: cannot read it: %s", c->units_dir,
		       strerror(errno));
		return -1;
	}
	char **v = calloc((size_t)c->n_units + nd + 1, sizeof *v);
	if (!v) {
		th_unitsdir_free(dir, nd);
		return -1;
	}
	size_t k = 0;
	for (int i = 0; i < c->n_units; i++)
		if (!(v[k++] = strdup(c->units[i]))) {
			th_unitsdir_free(v, k);
			th_unitsdir_free(dir, nd);
			return -1;
		}
	for (size_t i = 0; i < nd; i++)
		v[k++] = dir[i];
	free(dir);
	*paths = v;
	*n = k;
	return 0;
}

struct find_version {
	const char *id;
	const th_units *found;
};

static int find_version_cb(void *ctx, const th_units *u)
{
	struct find_version *f = ctx;
	if (strcmp(th_units_version(u), f->id) != 0)
		return 0;
	f->found = u;
	return 1;
}

/* The store's copy of hierarchy version id, or NULL. */
static const th_units *stored_version(th_store *s, const char *id)
{
	struct find_version f = {id, NULL};
	th_store_hierarchies(s, find_version_cb, &f);
	return f.found;
}

/* Stores a hierarchy version through the committer (behind the group it may be
 * writing). */
static int add_hierarchy(runtime *rt, const th_units *u, const char *origin)
{
	th_job j = {.type = TH_JOB_HIERARCHY, .units = u, .origin = origin};
	return th_committer_run(rt->committer, &j);
}

/* Loads one hierarchy file into the store, as at start and on SIGHUP: parse,
 * then th_store_add_hierarchy_from with origin "file PATH" (a version the store
 * has already keeps its first origin).  Problems go to the log and, when
 * diag is not NULL, to diag.  *loaded (may be NULL): the stored version. */
static int load_units_file(runtime *rt, const char *path, const char *origin, th_diag *diag,
                           const th_units **loaded)
{
	th_diag *d = diag ? diag : th_diag_new();
	th_units *u = NULL;
	char org[TH_ORIGIN_MAX];
	int rc = th_units_load(path, &u, d);
	if (rc != 0) {
		print_diag(d);
		th_log(TH_LOG_ERROR, "units", "%s: not loaded: %s", path, th_strerror(rc));
		goto out;
	}
	snprintf(org, sizeof org, "%s%sfile %s", origin ? origin : "", origin ? ", " : "", path);
	rc = add_hierarchy(rt, u, org);
	if (rc != 0) {
		th_log(TH_LOG_ERROR, "units", "%s: hierarchy %s not loaded: %s%s", path, th_units_version(u),
		       th_strerror(rc), rc == TH_EEXIST ? " (the store has another text under this "
		                                         "@version; a changed hierarchy needs a new @version)" : "");
		goto out;
	}
	th_log(TH_LOG_INFO, "units", "hierarchy %s (%zu units, %u levels) loaded from %s",
	       th_units_version(u), th_units_count(u), th_units_max_depth(u), path);
	if (loaded)
		*loaded = stored_version(rt->store, th_units_version(u));   /* outlives u */
out:
	th_units_destroy(&u);
	if (!diag)
		th_diag_destroy(&d);
	return rc;
}

/* Parses every deadline spec; stores them through committer when it is not NULL. */
static int apply_deadlines(const conf *c, th_committer *committer)
{
	int bad = 0;
	for (int i = 0; i < c->n_deadlines; i++) {
		char buf[256];
		snprintf(buf, sizeof buf, "%s", c->deadlines[i]);
		char *parts[4];
		int n = 0;
		char *save = NULL;
		for (char *t = strtok_r(buf, ":", &save); t && n < 4; t = strtok_r(NULL, ":", &save))
			parts[n++] = t;
		int32_t ymd;
		const char *why;
		if ((n != 3 && n != 4) || !th_period_valid(parts[1]) ||
		    th_parse_date(parts[n - 1], &ymd, &why) != 0) {
			th_log(TH_LOG_ERROR, "config", "--deadline %s: expected APPENDIX:PERIOD[:UNIT]:yyyy-mm-dd",
			       c->deadlines[i]);
			bad = 1;
			continue;
		}
		th_job j = {.type = TH_JOB_DEADLINE, .appendix = parts[0], .period = parts[1],
		            .unit = n == 4 ? parts[2] : NULL, .deadline = ymd};
		if (committer && th_committer_run(committer, &j) != 0) {
			th_log(TH_LOG_ERROR, "config", "--deadline %s: cannot store it", c->deadlines[i]);
			bad = 1;
		}
	}
	return bad;
}

static void do_reload(void *ctx)
{
	runtime *rt = ctx;
	th_log(TH_LOG_INFO, "main", "SIGHUP: reloading keys and hierarchy files");
	th_diag *d = th_diag_new();
	if (rt->c->keys && rt->zap) {
		th_keys *k = NULL;
		if (th_keys_load(rt->c->keys, &k, d) == 0) {
			th_log(TH_LOG_INFO, "auth", "%zu authorised keys loaded", th_keys_count(k));
			th_zap_set_keys(rt->zap, k);
		} else {
			print_diag(d);
			th_log(TH_LOG_ERROR, "auth", "keys file not reloaded; the old keys stay in force");
		}
	}
	th_diag_destroy(&d);
	char **paths = NULL;
	size_t n = 0;
	if (units_paths(rt->c, &paths, &n) != 0) {
		th_log(TH_LOG_ERROR, "units", "hierarchy files not reloaded");
		return;
	}
	for (size_t i = 0; i < n; i++)
		load_units_file(rt, paths[i], NULL, NULL, NULL);
	th_unitsdir_free(paths, n);
}

static void ymd_text(int32_t ymd, char *buf, size_t cap)
{
	snprintf(buf, cap, "%04d-%02d-%02d", (int)(ymd / 10000), (int)(ymd / 100 % 100), (int)(ymd % 100));
}

typedef struct {
	int32_t effective;
	char *list;
	size_t len, cap;
} late_periods;

/* Collects the bound periods that start on or after the new version's date. */
static int late_cb(void *ctx, const char *period, const char *version)
{
	late_periods *l = ctx;
	if (th_period_start(period) < l->effective)
		return 0;
	size_t add = strlen(period) + strlen(version) + 8;
	if (l->len + add >= l->cap) {
		size_t cap = (l->cap + add) * 2;
		char *n = realloc(l->list, cap);
		if (!n)
			return 0;
		l->list = n;
		l->cap = cap;
	}
	l->len += (size_t)snprintf(l->list + l->len, l->cap - l->len, "%s%s (%s)", l->len ? ", " : "",
	                           period, version);
	return 0;
}

/* units_submit on the query socket (collector/QUERY.md): an admin's new
 * hierarchy version is checked, written durably into --units-dir, then
 * loaded from there exactly as a SIGHUP reload loads it. */
static int submit_units(void *ctx, th_units_submit *sub)
{
	runtime *rt = ctx;
	const th_key *k = sub->key;
	const char *who = !k ? "an unknown key" : k->comment[0] ? k->comment : k->unit;
	char eff[16], ceff[16], why[600];
	th_units *u = NULL;
	int rc;
	if (!k || k->role != TH_ROLE_ADMIN) {
		snprintf(sub->message, sizeof sub->message, "forbidden: admin role required (%s)",
		         k ? (k->role == TH_ROLE_READER ? "this key has the reader role"
		                                        : "this key has the agent role")
		           : "this key is not, or no longer, authorised");
		th_log(TH_LOG_WARN, "units", "hierarchy file %s from %s (%s, %s) refused: admin role required",
		       sub->name, who, k ? k->unit : "?", k ? th_role_name(k->role) : "unknown key");
		return TH_EAUTH;
	}
	if (!rt->c->units_dir) {
		snprintf(sub->message, sizeof sub->message, "this collector has no --units-dir, so it cannot "
		         "keep a submitted hierarchy file; its operator must add one");
		rc = TH_EINVAL;
		goto refused;
	}
	rc = th_units_parse(sub->text, sub->len, sub->name, &u, sub->diag);
	if (rc != 0) {
		snprintf(sub->message, sizeof sub->message, "%s is not a valid hierarchy file (%zu problems)",
		         sub->name, th_diag_count(sub->diag));
		goto refused;
	}
	const char *id = th_units_version(u);
	ymd_text(th_units_effective(u), eff, sizeof eff);
	const th_units *have = stored_version(rt->store, id);
	if (have) {
		ymd_text(th_units_effective(have), ceff, sizeof ceff);
		snprintf(sub->message, sizeof sub->message, "hierarchy version %s exists already (effective "
		         "%s, %zu units); a new hierarchy needs a new @version", id, ceff,
		         th_units_count(have));
		rc = TH_EEXIST;
		goto refused;
	}
	const th_units *cur = th_store_current_hierarchy(rt->store);
	if (cur && th_units_effective(u) <= th_units_effective(cur)) {
		ymd_text(th_units_effective(cur), ceff, sizeof ceff);
		snprintf(sub->message, sizeof sub->message, "@effective %s is not after %s, the date the "
		         "current version %s came into force; a new version must come into force later",
		         eff, ceff, th_units_version(cur));
		rc = TH_ERANGE;
		goto refused;
	}
	if (!th_unitsdir_name_ok(id)) {
		snprintf(sub->message, sizeof sub->message, "@version %s cannot name a file: use letters, "
		         "digits, '.', '_' and '-' (not starting with '.')", id);
		rc = TH_EINVAL;
		goto refused;
	}
	rc = th_unitsdir_write(rt->c->units_dir, id, sub->text, sub->len, sub->path, sizeof sub->path,
	                       why, sizeof why);
	if (rc != 0) {
		snprintf(sub->message, sizeof sub->message, "the collector cannot write the file: %s", why);
		goto refused;
	}
	char origin[300];
	snprintf(origin, sizeof origin, "submitted by %s (%s, admin)", who, k->unit);
	rc = load_units_file(rt, sub->path, origin, sub->diag, &sub->loaded);
	if (rc != 0 || !sub->loaded) {
		th_unitsdir_remove(rt->c->units_dir, sub->path);
		snprintf(sub->message, sizeof sub->message, "written to %.600s but not loaded (%s); the file "
		         "was removed again", sub->path, th_strerror(rc ? rc : TH_ESTORE));
		sub->path[0] = 0;
		rc = rc ? rc : TH_ESTORE;
		goto refused;
	}
	th_log(TH_LOG_INFO, "units", "hierarchy %s (effective %s, %zu units) submitted by %s (%s): "
	       "written to %s and loaded", id, eff, th_units_count(u), who, k->unit, sub->path);
	late_periods lp = {.effective = th_units_effective(u)};
	th_store_bindings(rt->store, late_cb, &lp);
	if (lp.len) {
		snprintf(sub->warning, sizeof sub->warning, "periods already bound to an older version keep "
		         "it although they start on or after %s: %.700s", eff, lp.list);
		th_log(TH_LOG_WARN, "units", "hierarchy %s: %s", id, sub->warning);
	}
	free(lp.list);
	th_units_destroy(&u);
	return 0;
refused:
	th_log(TH_LOG_WARN, "units", "hierarchy file %s from %s (%s) refused: %s", sub->name, who,
	       k->unit, sub->message);
	for (size_t i = 0; i < th_diag_count(sub->diag); i++)
		th_log(TH_LOG_WARN, "units", "  %s", th_diag_text(sub->diag, i));
	th_units_destroy(&u);
	return rc;
}

static void on_signal(int sig)
{
	if (sig == SIGHUP)
		th_reload_flag = 1;
	else
		th_stop_flag = 1;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "keygen") == 0) {
		if (argc != 3 || argv[2][0] == '-') {
			if (argc == 3 && (!strcmp(argv[2], "-h") || !strcmp(argv[2], "--help"))) {
				printf("usage: tonghop-collector keygen PREFIX\nWrites PREFIX.key (keypair, mode 0600) and PREFIX.pub.\n");
				return 0;
			}
			fprintf(stderr, "usage: tonghop-collector keygen PREFIX\n");
			return 2;
		}
		char pub[TH_Z85_LEN + 1];
		const char *why = NULL;
		if (th_keyfile_generate(argv[2], pub, &why) != 0) {
			fprintf(stderr, "tonghop-collector keygen: %s: %s\n", argv[2], why);
			return 1;
		}
		printf("%s\n", pub);
		return 0;
	}
	conf c = {0};
	c.bind = "tcp://127.0.0.1:7701";
	c.pub = "tcp://127.0.0.1:7702";
	c.query = "tcp://127.0.0.1:7703";
	c.defs = th_def_default_dir();
	c.group_max = 1024;
	c.max_conns_per_key = 16;
	int ch;
	while ((ch = getopt_long(argc, argv, "nhV", long_opts, NULL)) != -1) {
		if (ch == 'h') {
			usage(stdout);
			return 0;
		}
		if (ch == 'V') {
			printf("tonghop-collector %s (protocol %d)\n", TH_VERSION, TH_WIRE_VERSION);
			return 0;
		}
		if (ch == '?') {
			usage(stderr);
			return 2;
		}
		char why[512] = "";
		int r = set_opt(&c, ch, optarg, why, sizeof why);
		if (r) {
			if (why[0])
				fprintf(stderr, "tonghop-collector: %s\n", why);
			return r;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "tonghop-collector: unexpected argument \"%s\" (see --help)\n", argv[optind]);
		return 2;
	}
	if (!c.db || (!c.n_units && !c.units_dir)) {
		fprintf(stderr, "tonghop-collector: --db and --units FILE (or --units-dir DIR) are required "
		                "(see --help)\n");
		return 2;
	}
	if (geteuid() == 0 && !c.allow_root && !c.check) {
		if (!c.insecure) {
			th_log(TH_LOG_ERROR, "main", "refusing to run as root; run the collector as an "
			                             "unprivileged user (or pass --allow-root)");
			return 2;
		}
		th_log(TH_LOG_WARN, "main", "running as root (insecure loopback demo); run the collector "
		                            "as an unprivileged user (--allow-root silences this)");
	}
	int bad = 0, exit_code = 1;
	th_diag *d = th_diag_new();
	th_defset *defs = NULL;
	th_keys *keys = NULL;
	runtime rt = {.c = &c};
	th_server_conf sc = {0};
	if (th_defset_load_dir(c.defs, &defs, d) != 0 || th_defset_count(defs) == 0) {
		print_diag(d);
		th_log(TH_LOG_ERROR, "config", "no usable appendix definitions in %s", c.defs);
		bad = 1;
	}
	th_diag_clear(d);
	if (c.units_dir && !c.check && mkdir(c.units_dir, 0750) != 0 && errno != EEXIST) {
		th_log(TH_LOG_ERROR, "config", "--units-dir %s: cannot create it: %s", c.units_dir,
		       strerror(errno));
		bad = 1;
	}
	if (units_paths(&c, &rt.paths, &rt.n_paths) != 0) {
		bad = 1;
	} else if (rt.n_paths == 0) {
		th_log(TH_LOG_ERROR, "config", "no hierarchy file: --units-dir %s has no *.units file and "
		                               "no --units FILE is given", c.units_dir);
		bad = 1;
	} else if (c.units_dir && !c.check && access(c.units_dir, W_OK) != 0) {
		th_log(TH_LOG_WARN, "config", "--units-dir %s is not writable: submitted hierarchy "
		                              "versions will be refused", c.units_dir);
	}
	for (size_t i = 0; i < rt.n_paths; i++) {
		th_units *u = NULL;
		if (th_units_load(rt.paths[i], &u, d) != 0) {
			print_diag(d);
			bad = 1;
		} else {
			th_units **nh = realloc(rt.hier, (size_t)(rt.n_hier + 1) * sizeof *nh);
			if (!nh)
				return 1;
			rt.hier = nh;
			rt.hier[rt.n_hier++] = u;
		}
		th_diag_clear(d);
	}
	if (c.insecure) {
		const char *eps[3] = {c.bind, c.pub, c.query};
		for (int i = 0; i < 3; i++)
			if (!loopback_only(eps[i])) {
				th_log(TH_LOG_ERROR, "config", "--insecure refuses endpoint %s: only loopback or ipc",
				       eps[i]);
				bad = 1;
			}
	} else {
		if (!c.keys || !c.server_key) {
			th_log(TH_LOG_ERROR, "config", "--keys and --server-key are required (or --insecure for a local demo)");
			bad = 1;
		} else {
			if (th_keys_load(c.keys, &keys, d) != 0) {
				print_diag(d);
				bad = 1;
			}
			const char *why = NULL;
			if (th_keyfile_read(c.server_key, sc.server_pub, sc.server_sec, &why) != 0) {
				th_log(TH_LOG_ERROR, "config", "%s: %s", c.server_key, why);
				bad = 1;
			}
		}
	}
	if (apply_deadlines(&c, NULL))
		bad = 1;
	if (bad) {
		th_log(TH_LOG_ERROR, "config", "configuration has errors");
		th_keys_destroy(&keys);
		exit_code = 3;
		goto cleanup_early;
	}
	if (c.check) {
		printf("configuration OK: %zu appendix definitions, %d hierarchy version(s) (%s, %zu units), "
		       "%zu keys%s\n",
		       th_defset_count(defs), rt.n_hier, th_units_version(rt.hier[rt.n_hier - 1]),
		       th_units_count(rt.hier[rt.n_hier - 1]), th_keys_count(keys),
		       c.insecure ? ", INSECURE mode" : "");
		th_keys_destroy(&keys);
		exit_code = 0;
		goto cleanup_early;
	}
	if (c.insecure)
		th_log(TH_LOG_WARN, "main", "INSECURE MODE: no encryption, no authentication; every peer "
		                            "may submit for every unit. For local demos only.");
	th_store_opts so = {.map_size = c.map_size};
	int rc = th_store_open(c.db, &so, &rt.store);
	if (rc != 0) {
		th_log(TH_LOG_ERROR, "store", "cannot open %s: %s", c.db, th_strerror(rc));
		th_keys_destroy(&keys);
		goto cleanup_early;
	}
	th_store_set_defs(rt.store, defs);
	if ((rc = th_committer_new(rt.store, &rt.committer)) != 0) {
		th_log(TH_LOG_ERROR, "store", "cannot start the committer thread: %s", th_strerror(rc));
		th_keys_destroy(&keys);
		goto cleanup;
	}
	for (int i = 0; i < rt.n_hier; i++) {
		char org[TH_ORIGIN_MAX];
		snprintf(org, sizeof org, "file %s", rt.paths[i]);
		rc = add_hierarchy(&rt, rt.hier[i], org);
		if (rc != 0) {
			th_log(TH_LOG_ERROR, "units", "%s: cannot add hierarchy %s: %s", rt.paths[i],
			       th_units_version(rt.hier[i]), th_strerror(rc));
			th_keys_destroy(&keys);
			goto cleanup;
		}
	}
	if (apply_deadlines(&c, rt.committer)) {
		th_keys_destroy(&keys);
		goto cleanup;
	}
	void *ctx = zmq_ctx_new();
	if (!c.insecure && th_zap_start(ctx, keys, &rt.zap) != 0) {
		th_log(TH_LOG_ERROR, "auth", "cannot start the ZAP handler");
		th_keys_destroy(&keys);
		zmq_ctx_term(ctx);
		goto cleanup;
	}
	keys = NULL;   /* owned by the ZAP handler */
	sc.bind = c.bind;
	sc.pub = c.pub;
	sc.query = c.query;
	sc.insecure = c.insecure;
	sc.group_max = c.group_max;
	sc.group_bytes = 64u << 20;
	sc.limits = th_limits_default;
	sc.max_conns_per_key = (uint32_t)c.max_conns_per_key;
	if (c.max_inflight > 0)
		sc.limits.max_inflight = (uint32_t)c.max_inflight;
	const th_units *cur = th_store_current_hierarchy(rt.store);
	sc.root_unit = cur ? th_units_at(cur, th_units_root(cur))->code : "";
	sc.units_submit = submit_units;
	sc.units_ctx = &rt;
	/* before the sockets are bound: a SIGTERM as soon as the port answers is a clean stop */
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	th_server *srv = NULL;
	if (th_server_new(&sc, rt.store, rt.committer, defs, rt.zap, ctx, &srv) != 0) {
		zmq_ctx_shutdown(ctx);
		th_zap_join(&rt.zap);
		zmq_ctx_term(ctx);
		goto cleanup;
	}
	char hex[33];
	const uint8_t *uu = th_store_uuid(rt.store);
	for (int i = 0; i < 16; i++)
		snprintf(hex + 2 * i, 3, "%02x", uu[i]);
	th_log(TH_LOG_INFO, "main", "tonghop-collector %s: store %s (uuid %s, last commit %llu), "
	                            "ingest %s, pub %s, query %s%s",
	       TH_VERSION, c.db, hex, (unsigned long long)th_store_last_commit(rt.store), c.bind, c.pub,
	       c.query, c.insecure ? " [INSECURE]" : " [CURVE]");
	th_metrics_configure(c.metrics, 10);
	th_server_run(srv, do_reload, &rt);
	const th_stats *st = th_server_stats(srv);
	if (c.metrics)
		th_metrics_write(st);
	th_log(TH_LOG_INFO, "main", "stopping: %llu accepted, %llu duplicate, %llu stale, %llu rejected, "
	                            "%llu commits",
	       (unsigned long long)st->accepted, (unsigned long long)st->duplicate,
	       (unsigned long long)st->stale, (unsigned long long)st->rejected,
	       (unsigned long long)st->commits);
	th_server_destroy(&srv);
	zmq_ctx_shutdown(ctx);
	th_zap_join(&rt.zap);
	zmq_ctx_term(ctx);
	th_committer_destroy(&rt.committer);
	th_store_close(&rt.store);
	for (int i = 0; i < rt.n_hier; i++)
		th_units_destroy(&rt.hier[i]);
	free(rt.hier);
	th_unitsdir_free(rt.paths, rt.n_paths);
	th_defset_destroy(&defs);
	th_diag_destroy(&d);
	free_config_values();
	return 0;
cleanup:
	th_committer_destroy(&rt.committer);
	th_store_close(&rt.store);
cleanup_early:
	for (int i = 0; i < rt.n_hier; i++)
		th_units_destroy(&rt.hier[i]);
	free(rt.hier);
	th_unitsdir_free(rt.paths, rt.n_paths);
	th_defset_destroy(&defs);
	th_diag_destroy(&d);
	free_config_values();
	return exit_code;
}

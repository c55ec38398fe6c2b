/* it_ops.c -- operations: the collector's Prometheus metrics file from a real
 * run (checked by a small text-format parser), the systemd units, the default
 * configuration files and the docker start-up script run without Docker. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

/* ---- a small Prometheus text-format (0.0.4) parser ---- */

#define MAXF 64
#define MAXS 256

typedef struct {
	char name[128], type[16];
	int has_help, has_type, n_samples;
} family;

typedef struct {
	char name[128], labels[256];
	double value;
} sample;

typedef struct {
	family f[MAXF];
	int nf;
	sample s[MAXS];
	int ns;
	char err[256];
} expo;

static int valid_name(const char *p, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)p[0]) || p[0] == '_' || p[0] == ':'))
		return 0;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == ':'))
			return 0;
	return 1;
}

static family *find_family(expo *e, const char *name, size_t n)
{
	for (int i = 0; i < e->nf; i++)
		if (strlen(e->f[i].name) == n && strncmp(e->f[i].name, name, n) == 0)
			return &e->f[i];
	return NULL;
}

static family *get_family(expo *e, const char *name, size_t n)
{
	family *f = find_family(e, name, n);
	if (f || e->nf >= MAXF || n >= sizeof f->name)
		return f;
	f = &e->f[e->nf++];
	memset(f, 0, sizeof *f);
	memcpy(f->name, name, n);
	return f;
}

/* The family a sample belongs to: its name, or without _sum/_count/_bucket for
 * a summary or histogram declared before. */
static family *sample_family(expo *e, const char *name)
{
	static const char *suf[] = {"_bucket", "_sum", "_count"};
	size_t n = strlen(name);
	for (int i = 0; i < 3; i++) {
		size_t k = strlen(suf[i]);
		if (n > k && strcmp(name + n - k, suf[i]) == 0) {
			family *f = find_family(e, name, n - k);
			if (f && (!strcmp(f->type, "histogram") || (!strcmp(f->type, "summary") && i > 0)))
				return f;
		}
	}
	return find_family(e, name, n);
}

static int perr(expo *e, int ln, const char *why)
{
	snprintf(e->err, sizeof e->err, "line %d: %s", ln, why);
	return -1;
}

/* Parses "name="value",..." up to the closing brace; returns the position after it. */
static const char *parse_labels(const char *p)
{
	p++;   /* '{' */
	while (*p && *p != '}') {
		const char *n = p;
		while (isalnum((unsigned char)*p) || *p == '_')
			p++;
		if (p == n || !valid_name(n, (size_t)(p - n)) || *p != '=' || p[1] != '"')
			return NULL;
		p += 2;
		while (*p && *p != '"') {
			if (*p == '\\') {
				if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
					return NULL;
				p++;
			}
			if (*p == '\n')
				return NULL;
			p++;
		}
		if (*p != '"')
			return NULL;
		p++;
		if (*p == ',')
			p++;
		else if (*p != '}')
			return NULL;
	}
	return *p == '}' ? p + 1 : NULL;
}

static int parse_expo(const char *text, expo *e)
{
	memset(e, 0, sizeof *e);
	int ln = 0;
	const char *p = text;
	if (!*p)
		return perr(e, 0, "empty");
	while (*p) {
		ln++;
		const char *end = strchr(p, '\n');
		if (!end)
			return perr(e, ln, "last line has no newline");
		char line[1024];
		size_t len = (size_t)(end - p);
		if (len >= sizeof line)
			return perr(e, ln, "line too long");
		memcpy(line, p, len);
		line[len] = 0;
		p = end + 1;
		if (len == 0)
			continue;
		if (line[0] == '#') {
			char kw[8], name[200];
			int off = 0;
			if (sscanf(line, "# %7s %199s %n", kw, name, &off) < 2)
				continue;   /* a plain comment */
			if (strcmp(kw, "HELP") && strcmp(kw, "TYPE"))
				continue;
			if (!valid_name(name, strlen(name)))
				return perr(e, ln, "bad metric name in HELP/TYPE");
			family *f = get_family(e, name, strlen(name));
			if (!f)
				return perr(e, ln, "too many families");
			if (f->n_samples)
				return perr(e, ln, "HELP/TYPE after the family's samples");
			if (!strcmp(kw, "HELP")) {
				if (f->has_help++ || !line[off])
					return perr(e, ln, "second or empty HELP");
			} else {
				const char *t = line + off;
				if (f->has_type++ || (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "summary") &&
				                      strcmp(t, "histogram") && strcmp(t, "untyped")))
					return perr(e, ln, "second TYPE or unknown type");
				snprintf(f->type, sizeof f->type, "%s", t);
			}
			continue;
		}
		const char *q = line;
		while (*q && *q != '{' && *q != ' ')
			q++;
		if (!valid_name(line, (size_t)(q - line)) || (size_t)(q - line) >= sizeof e->s[0].name)
			return perr(e, ln, "bad sample name");
		if (e->ns >= MAXS)
			return perr(e, ln, "too many samples");
		sample *s = &e->s[e->ns++];
		memcpy(s->name, line, (size_t)(q - line));
		s->name[q - line] = 0;
		const char *lab = q;
		if (*q == '{') {
			q = parse_labels(q);
			if (!q)
				return perr(e, ln, "bad labels");
			if ((size_t)(q - lab) >= sizeof s->labels)
				return perr(e, ln, "labels too long");
			memcpy(s->labels, lab, (size_t)(q - lab));
		}
		if (*q != ' ')
			return perr(e, ln, "no space before the value");
		q++;
		char *vend;
		if (!strcmp(q, "+Inf"))
			s->value = INFINITY;
		else {
			s->value = strtod(q, &vend);
			if (vend == q || (*vend && *vend != ' '))
				return perr(e, ln, "bad value");
		}
		family *f = sample_family(e, s->name);
		if (!f || !f->has_help || !f->has_type)
			return perr(e, ln, "sample without HELP and TYPE before it");
		f->n_samples++;
		if (!strcmp(f->type, "counter") && !(s->value >= 0))
			return perr(e, ln, "negative counter");
	}
	for (int i = 0; i < e->nf; i++)
		if (!e->f[i].n_samples)
			return perr(e, 0, "a family without samples");
	return 0;
}

/* The value of name{labels} ("" for none); fails the test when absent. */
static double val(const expo *e, const char *name, const char *labels)
{
	for (int i = 0; i < e->ns; i++)
		if (!strcmp(e->s[i].name, name) && !strcmp(e->s[i].labels, labels))
			return e->s[i].value;
	fail_msg("metric %s%s is missing", name, labels);
	return NAN;
}

static void parser_rejects_bad_text(void **state)
{
	expo e;
	assert_int_equal(parse_expo("# HELP a x\n# TYPE a counter\na 1\n", &e), 0);
	assert_int_equal(parse_expo("a 1\n", &e), -1);                                  /* no HELP/TYPE */
	assert_int_equal(parse_expo("# HELP a x\n# TYPE a counter\na 1", &e), -1);      /* no newline */
	assert_int_equal(parse_expo("# HELP a x\n# TYPE a countr\na 1\n", &e), -1);     /* type */
	assert_int_equal(parse_expo("# HELP a x\n# TYPE a gauge\na{b=\"c} 1\n", &e), -1);
	assert_int_equal(parse_expo("# HELP a x\n# TYPE a gauge\n1a 1\n", &e), -1);
	assert_int_equal(parse_expo("# HELP a x\n# TYPE a counter\na -1\n", &e), -1);
	assert_int_equal(parse_expo("# HELP a x\n# TYPE a gauge\na x\n", &e), -1);
	assert_int_equal(parse_expo("# HELP h x\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1.5\nh_count 2\n",
	                            &e), 0);
	assert_true(val(&e, "h_bucket", "{le=\"+Inf\"}") == 2);
	assert_int_equal(parse_expo("# HELP a x\n# TYPE a gauge\na +Inf\n", &e), 0);
	assert_true(isinf(val(&e, "a", "")));
}

/* ---- a real collector run ---- */

static void sh(const char *cmd)
{
	int st = -1;
	char *out = tu_capture(cmd, &st);
	if (st != 0)
		fail_msg("`%s` exited %d: %s", cmd, st, out ? out : "");
	free(out);
}

static void metrics_from_collector_run(void **state)
{
	char *dir = tu_tmpdir();
	char db[4096], prom[4096], log[4096], ingest[64], pubep[64], query[64], cmd[16384];
	snprintf(db, sizeof db, "%s/store", dir);
	snprintf(prom, sizeof prom, "%s/tonghop.prom", dir);
	snprintf(log, sizeof log, "%s/collector.log", dir);
	snprintf(ingest, sizeof ingest, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(pubep, sizeof pubep, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(query, sizeof query, "tcp://127.0.0.1:%d", tu_free_port());
	char *argv[] = {(char *)tu_bin("collector/tonghop-collector"), "--db", db, "--units",
	                (char *)tu_src("data/hanoi-2021.units"), "--defs", (char *)tu_src("schema/appendices"),
	                "--insecure", "--bind", ingest, "--pub", pubep, "--query", query, "--metrics", prom,
	                "--allow-root", NULL};
	pid_t pid = tu_spawn(argv, log);
	assert_true(pid > 0);
	/* the first write happens as soon as the loop runs */
	struct stat sb;
	for (int i = 0; i < 100 && stat(prom, &sb) != 0; i++)
		usleep(50000);
	assert_int_equal(stat(prom, &sb), 0);
	size_t len;
	char *text = tu_read_file(prom, &len);
	assert_non_null(text);
	expo e;
	if (parse_expo(text, &e) != 0)
		fail_msg("%s: %s", prom, e.err);
	assert_true(val(&e, "tonghop_collector_reports_total", "{status=\"accepted\"}") == 0);
	free(text);

	/* two units' appendix files, then one resend of a changed file set */
	snprintf(cmd, sizeof cmd,
	         "'%s' --units '%s' --defs '%s' --out '%s/files' --unit SNV --unit STP --quiet && "
	         "'%s' send --insecure --outbox '%s/ob' --collector %s --timeout 30 '%s'/files/SNV/*.csv "
	         "'%s'/files/STP/*.csv >>'%s/agent.log' 2>&1",
	         tu_bin("tools/th-gen"), tu_src("data/hanoi-2021.units"), tu_src("schema/appendices"), dir,
	         tu_bin("publisher/tonghop-publish"), dir, ingest, dir, dir, dir);
	sh(cmd);
	kill(pid, SIGTERM);
	assert_int_equal(tu_wait(pid, 10000), 0);
	text = tu_read_file(prom, &len);
	assert_non_null(text);
	if (parse_expo(text, &e) != 0)
		fail_msg("%s: %s", prom, e.err);
	snprintf(cmd, sizeof cmd, "ls '%s'/files/SNV/*.csv '%s'/files/STP/*.csv | wc -l", dir, dir);
	int st;
	char *nfiles = tu_capture(cmd, &st);
	assert_non_null(nfiles);
	double n = atof(nfiles);
	free(nfiles);
	assert_true(n >= 2);
	assert_true(val(&e, "tonghop_collector_reports_total", "{status=\"accepted\"}") == n);
	assert_true(val(&e, "tonghop_collector_reports_total", "{status=\"rejected\"}") == 0);
	assert_true(val(&e, "tonghop_collector_messages_total", "{type=\"submit\"}") >= 1);
	assert_true(val(&e, "tonghop_collector_records_total", "") > 0);
	assert_true(val(&e, "tonghop_collector_received_bytes_total", "") > 0);
	double commits = val(&e, "tonghop_collector_commits_total", "");
	assert_true(commits >= 1);
	/* histogram: cumulative, +Inf == count == commits, sum consistent with max */
	const char *hname = "tonghop_collector_commit_duration_seconds";
	family *hf = find_family(&e, hname, strlen(hname));
	assert_non_null(hf);
	assert_string_equal(hf->type, "histogram");
	double prev = 0;
	int buckets = 0;
	for (int i = 0; i < e.ns; i++)
		if (!strcmp(e.s[i].name, "tonghop_collector_commit_duration_seconds_bucket")) {
			assert_true(e.s[i].value >= prev);
			prev = e.s[i].value;
			buckets++;
		}
	assert_true(buckets >= 2);
	assert_true(val(&e, "tonghop_collector_commit_duration_seconds_bucket", "{le=\"+Inf\"}") == commits);
	assert_true(val(&e, "tonghop_collector_commit_duration_seconds_count", "") == commits);
	double sum = val(&e, "tonghop_collector_commit_duration_seconds_sum", "");
	double mx = val(&e, "tonghop_collector_commit_duration_max_seconds", "");
	assert_true(mx > 0 && sum >= mx - 1e-6 && sum <= mx * commits + 1e-6);
	assert_true(val(&e, "tonghop_collector_commit_group_reports_sum", "") == n);
	assert_true(val(&e, "tonghop_collector_commit_group_reports_count", "") == commits);
	assert_true(val(&e, "tonghop_collector_info", "{version=\"" TH_VERSION "\",protocol=\"1\"}") == 1);
	/* every family is documented in docs/metrics.md */
	char *doc = tu_read_file(tu_src("docs/metrics.md"), &len);
	assert_non_null(doc);
	for (int i = 0; i < e.nf; i++)
		if (!strstr(doc, e.f[i].name))
			fail_msg("%s is not documented in docs/metrics.md", e.f[i].name);
	free(doc);
	free(text);
	/* no temporary file is left behind */
	snprintf(cmd, sizeof cmd, "%s.tmp", prom);
	assert_int_not_equal(stat(cmd, &sb), 0);
	tu_rmrf(dir);
}

static char *out_of(const char *cmd);

static void metrics_unwritable_keeps_running(void **state)
{
	char *dir = tu_tmpdir();
	char db[4096], prom[4096], log[4096], ingest[64], pubep[64], query[64];
	snprintf(db, sizeof db, "%s/store", dir);
	snprintf(prom, sizeof prom, "%s/no-such-dir/tonghop.prom", dir);
	snprintf(log, sizeof log, "%s/collector.log", dir);
	snprintf(ingest, sizeof ingest, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(pubep, sizeof pubep, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(query, sizeof query, "tcp://127.0.0.1:%d", tu_free_port());
	char *argv[] = {(char *)tu_bin("collector/tonghop-collector"), "--db", db, "--units",
	                (char *)tu_src("data/hanoi-2021.units"), "--defs", (char *)tu_src("schema/appendices"),
	                "--insecure", "--bind", ingest, "--pub", pubep, "--query", query, "--metrics", prom,
	                "--allow-root", NULL};
	pid_t pid = tu_spawn(argv, log);
	assert_true(pid > 0);
	usleep(1000000);
	assert_int_equal(tu_wait(pid, 0), -1);   /* still running */
	kill(pid, SIGTERM);
	assert_int_equal(tu_wait(pid, 10000), 0);
	char cmd[8192];
	/* one warning for the streak of failures, naming the file */
	snprintf(cmd, sizeof cmd, "grep -c 'WARN metrics: cannot write .*no-such-dir/tonghop.prom' '%s'", log);
	char *n = out_of(cmd);
	assert_int_equal(atoi(n), 1);
	free(n);
	tu_rmrf(dir);
}

/* ---- shell helpers ---- */

/* (The Debian packages, debian/, are built, linted, installed, run and upgraded by
 * scripts/pkg-test.sh, the packaging stage of scripts/test.sh: it needs root and a
 * machine it may change.) */

static int have(const char *prog)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
	int st = -1;
	free(tu_capture(cmd, &st));
	return st == 0;
}

/* Output of a shell command that must succeed (malloc'd). */
static char *out_of(const char *cmd)
{
	int st = -1;
	char *out = tu_capture(cmd, &st);
	if (!out || st != 0)
		fail_msg("`%s` exited %d: %s", cmd, st, out ? out : "");
	return out;
}

static void must_contain(const char *text, const char *what, const char *where)
{
	if (!strstr(text, what))
		fail_msg("%s lacks \"%s\":\n%s", where, what, text);
}

/* ---- systemd units and default configuration files ---- */

/* Copies a packaged unit into dir with /usr/bin/PROG replaced by the build's program. */
static void unit_copy(const char *dir, const char *unit, const char *prog, const char *binrel, char *out, size_t cap)
{
	char cmd[16384];
	snprintf(out, cap, "%s/%s", dir, strrchr(unit, '/') + 1);
	snprintf(cmd, sizeof cmd, "sed 's|/usr/bin/%s|%s|g' '%s' > '%s'", prog, tu_bin(binrel),
	         tu_src(unit), out);
	free(out_of(cmd));
}

static void systemd_units_verify(void **state)
{
	static const struct {
		const char *unit, *prog, *bin;
	} units[] = {{"packaging/tonghop-collector.service", "tonghop-collector", "collector/tonghop-collector"},
	             {"packaging/tonghop-publish.service", "tonghop-publish", "publisher/tonghop-publish"}};
	size_t len;
	for (size_t i = 0; i < 2; i++) {
		char *text = tu_read_file(tu_src(units[i].unit), &len);
		assert_non_null(text);
		static const char *need[] = {"\nUser=tonghop\n", "\nStateDirectory=tonghop\n", "\nRestart=on-failure\n",
		                             "\nNoNewPrivileges=yes\n", "\nProtectSystem=strict\n", "\nProtectHome=yes\n",
		                             "\nPrivateTmp=yes\n", "\nCapabilityBoundingSet=\n", "\nWantedBy=multi-user.target\n"};
		for (size_t k = 0; k < sizeof need / sizeof *need; k++)
			must_contain(text, need[k], units[i].unit);
		free(text);
	}
	if (!have("systemd-analyze")) {
		print_message("systemd-analyze missing: the units were not verified\n");
		skip();
	}
	char *dir = tu_tmpdir();
	char cmd[16384], path[4096];
	for (size_t i = 0; i < 2; i++) {
		unit_copy(dir, units[i].unit, units[i].prog, units[i].bin, path, sizeof path);
	}
	for (size_t i = 0; i < 2; i++) {
		const char *name = strrchr(units[i].unit, '/') + 1;
		snprintf(cmd, sizeof cmd, "cd '%s' && systemd-analyze verify --man=no ./%s 2>&1", dir, name);
		int st = -1;
		char *out = tu_capture(cmd, &st);
		assert_non_null(out);
		/* verify exits 0 on mere warnings: every complaint names the file */
		if (st != 0 || strstr(out, name))
			fail_msg("systemd-analyze verify %s (exit %d):\n%s", name, st, out);
		free(out);
	}
	/* the same check catches a broken unit */
	snprintf(cmd, sizeof cmd,
	         "cd '%s' && sed 's/^NoNewPrivileges=yes/NoNewPrivileges=maybe/' tonghop-collector.service > broken.service"
	         " && systemd-analyze verify --man=no ./broken.service 2>&1", dir);
	int st = -1;
	char *out = tu_capture(cmd, &st);
	assert_non_null(out);
	assert_non_null(strstr(out, "broken.service"));
	free(out);
	tu_rmrf(dir);
}

static void default_configs_are_valid(void **state)
{
	char *dir = tu_tmpdir();
	char cmd[16384];
	/* the packaged files with /etc, /var/lib, /usr/share paths moved into a temp dir */
	snprintf(cmd, sizeof cmd,
	         "D='%s' && mkdir -p $D/share && cp -r '%s' $D/share/appendices && mkdir $D/share/units && "
	         "cp '%s' $D/share/units/ && '%s' keygen $D/collector >/dev/null && '%s' keygen $D/agent >/dev/null && "
	         "echo \"$(sed -n 's/^public //p' $D/agent.pub) SNV agent\" > $D/authorized_keys && "
	         "sed -e \"s|/etc/tonghop/|$D/|g; s|/var/lib/tonghop|$D/var|g; s|/usr/share/tonghop|$D/share|g; "
	         "s|/srv/tonghop|$D/srv|g\" '%s' > $D/collector.conf && "
	         "sed -e \"s|/etc/tonghop/|$D/|g; s|/var/lib/tonghop|$D/var|g; s|/srv/tonghop|$D/srv|g\" '%s' > $D/publish.conf",
	         dir, tu_src("schema/appendices"), tu_src("data/hanoi-2021.units"),
	         tu_bin("collector/tonghop-collector"), tu_bin("collector/tonghop-collector"),
	         tu_src("packaging/collector.conf"), tu_src("packaging/publish.conf"));
	free(out_of(cmd));
	/* detect_leaks=0: main.c's read_config() keeps its strdup'd values to the end (reported) */
	snprintf(cmd, sizeof cmd, "ASAN_OPTIONS=detect_leaks=0 '%s' --config '%s/collector.conf' -n 2>&1",
	         tu_bin("collector/tonghop-collector"), dir);
	char *out = out_of(cmd);
	must_contain(out, "configuration OK", "collector -n on packaging/collector.conf");
	must_contain(out, "hanoi-2021", "collector -n on packaging/collector.conf");
	free(out);
	/* the agent reads every setting (exit 2 and "unknown setting" for a bad one);
	 * status on a never-used outbox exits 1 */
	snprintf(cmd, sizeof cmd, "'%s' status --config '%s/publish.conf' 2>&1", tu_bin("publisher/tonghop-publish"), dir);
	int st = -1;
	out = tu_capture(cmd, &st);
	assert_non_null(out);
	if (st == 2 || strstr(out, "unknown setting"))
		fail_msg("packaging/publish.conf: %s", out);
	free(out);
	snprintf(cmd, sizeof cmd, "echo 'bogus = 1' >> '%s/publish.conf' && '%s' status --config '%s/publish.conf' 2>&1",
	         dir, tu_bin("publisher/tonghop-publish"), dir);
	out = tu_capture(cmd, &st);
	assert_int_equal(st, 2);
	free(out);
	tu_rmrf(dir);
}

/* ---- docker/start.sh without Docker ---- */

static int wait_file(const char *path, int ms)
{
	struct stat sb;
	for (int t = 0; t < ms; t += 50) {
		if (stat(path, &sb) == 0)
			return 0;
		usleep(50000);
	}
	return -1;
}

static pid_t start_role(const char *env, const char *role, const char *log)
{
	char cmd[16384];
	snprintf(cmd, sizeof cmd, "%s exec '%s' %s", env, tu_src("docker/start.sh"), role);
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	pid_t pid = tu_spawn(argv, log);
	assert_true(pid > 0);
	return pid;
}

static void stop(pid_t pid)
{
	kill(pid, SIGTERM);
	int st = tu_wait(pid, 10000);
	if (st < 0) {
		kill(pid, SIGKILL);
		tu_wait(pid, 5000);
	}
	assert_int_equal(st, 0);
}

static void start_script_without_docker(void **state)
{
	if (have("shellcheck")) {
		char c[8192];
		snprintf(c, sizeof c, "shellcheck '%s' '%s'/debian/*.post* '%s'/debian/*.prerm '%s'/scripts/pkg-test.sh 2>&1",
		         tu_src("docker/start.sh"), tu_source_dir(), tu_source_dir(), tu_source_dir());
		free(out_of(c));
	}
	char *dir = tu_tmpdir();
	char cmd[20000], env[8192], path[4096], log_c[4096], log_a[4096];
	snprintf(cmd, sizeof cmd,
	         "mkdir '%s/bin' && ln -s '%s' '%s' '%s' '%s' '%s/bin/'", dir, tu_bin("collector/tonghop-collector"),
	         tu_bin("publisher/tonghop-publish"), tu_bin("tools/tonghop"), tu_bin("tools/th-gen"), dir);
	free(out_of(cmd));
	int port = tu_free_port();
	snprintf(env, sizeof env,
	         "PATH='%s/bin':\"$PATH\" TH_KEYS='%s/keys' TH_UNITS='%s' TH_DEFS='%s' TH_AGENTS='SNV 001' "
	         "TH_BIND=tcp://127.0.0.1:%d TH_PUB=tcp://127.0.0.1:%d TH_QUERY=tcp://127.0.0.1:%d "
	         "TH_COLLECTOR=tcp://127.0.0.1:%d TH_WAIT=20",
	         dir, dir, tu_src("data/hanoi-2021.units"), tu_src("schema/appendices"), port, tu_free_port(),
	         tu_free_port(), port);
	char env_c[9000], env_a[9000];
	snprintf(env_c, sizeof env_c, "export %s TH_DATA='%s/c';", env, dir);
	snprintf(env_a, sizeof env_a, "export %s TH_DATA='%s/a' TH_SAMPLE=1;", env, dir);
	snprintf(log_c, sizeof log_c, "%s/collector.log", dir);
	snprintf(log_a, sizeof log_a, "%s/agent.log", dir);

	/* the agent may start first: it waits for its key */
	pid_t agent = start_role(env_a, "agent SNV", log_a);
	usleep(300000);
	pid_t coll = start_role(env_c, "collector", log_c);
	snprintf(path, sizeof path, "%s/keys/agents/001.key", dir);
	assert_int_equal(wait_file(path, 10000), 0);
	/* the keys are complete when the collector runs: its start line names the store */
	snprintf(cmd, sizeof cmd, "grep -c 'CURVE' '%s'", log_c);
	int started = 0;
	for (int i = 0; i < 200 && !started; i++) {
		int st;
		char *n = tu_capture(cmd, &st);
		started = n && atoi(n) >= 1;
		free(n);
		if (!started)
			usleep(50000);
	}
	assert_true(started);
	size_t len;
	snprintf(path, sizeof path, "%s/keys/collector.pub", dir);
	char *pub1 = tu_read_file(path, &len);
	assert_non_null(pub1);
	snprintf(path, sizeof path, "%s/keys/collector.key", dir);
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 077, 0);   /* the secret stays private */
	snprintf(path, sizeof path, "%s/keys/authorized_keys", dir);
	char *ak = tu_read_file(path, &len);
	assert_non_null(ak);
	must_contain(ak, " SNV agent ", "authorized_keys");
	must_contain(ak, " 001 agent ", "authorized_keys");
	free(ak);

	/* the agent delivers its unit's three sample files */
	snprintf(cmd, sizeof cmd, "'%s' status --outbox '%s/a/outbox' 2>&1", tu_bin("publisher/tonghop-publish"), dir);
	char *out = NULL;
	for (int i = 0; i < 300; i++) {
		free(out);
		int st;
		out = tu_capture(cmd, &st);
		if (out && strstr(out, "acked: 3") && strstr(out, "pending: 0"))
			break;
		usleep(100000);
	}
	if (!out || !strstr(out, "acked: 3"))
		fail_msg("the agent did not deliver: %s", out ? out : "");
	must_contain(out, "rejected: 0", "agent status");
	free(out);
	/* health checks pass for both roles */
	snprintf(cmd, sizeof cmd, "%s exec '%s' health collector", env_c, tu_src("docker/start.sh"));
	free(out_of(cmd));
	snprintf(cmd, sizeof cmd, "%s exec '%s' health agent", env_a, tu_src("docker/start.sh"));
	free(out_of(cmd));
	stop(agent);
	stop(coll);
	snprintf(path, sizeof path, "%s/c/tonghop.prom", dir);
	char *text = tu_read_file(path, &len);
	assert_non_null(text);
	expo e;
	if (parse_expo(text, &e) != 0)
		fail_msg("%s: %s", path, e.err);
	assert_true(val(&e, "tonghop_collector_reports_total", "{status=\"accepted\"}") == 3);
	free(text);

	/* a second start keeps the keys and the store */
	coll = start_role(env_c, "collector", log_c);
	snprintf(cmd, sizeof cmd, "grep -c 'last commit 1' '%s'", log_c);
	int ok = 0;
	for (int i = 0; i < 100 && !ok; i++) {
		int st;
		char *n = tu_capture(cmd, &st);
		ok = n && atoi(n) == 1;
		free(n);
		if (!ok)
			usleep(100000);
	}
	stop(coll);
	assert_true(ok);
	snprintf(path, sizeof path, "%s/keys/collector.pub", dir);
	char *pub2 = tu_read_file(path, &len);
	assert_non_null(pub2);
	assert_string_equal(pub1, pub2);
	snprintf(cmd, sizeof cmd, "wc -l < '%s/keys/authorized_keys'", dir);
	out = out_of(cmd);
	assert_int_equal(atoi(out), 2);
	free(out);
	free(pub1);
	free(pub2);
	/* compose.yaml: every agent service's unit gets its key from the collector service */
	snprintf(cmd, sizeof cmd,
	         "F='%s'; agents=$(sed -n 's/.*TH_AGENTS: \"\\(.*\\)\"/\\1/p' \"$F\"); n=0; "
	         "for u in $(sed -n 's/.*command: \\[\"agent\", \"\\([^\"]*\\)\"\\]/\\1/p' \"$F\"); do "
	         "n=$((n+1)); case \" $agents \" in *\" $u \"*) ;; *) echo \"agent $u has no key\"; exit 1;; esac; done; "
	         "echo agents=$n",
	         tu_src("docker/compose.yaml"));
	out = out_of(cmd);
	must_contain(out, "agents=3", "docker/compose.yaml");
	free(out);
	/* a usage error is an error */
	snprintf(cmd, sizeof cmd, "'%s' agent 2>/dev/null", tu_src("docker/start.sh"));
	int st;
	free(tu_capture(cmd, &st));
	assert_int_equal(st, 2);
	tu_rmrf(dir);
}

/* ---- manual pages ---- */

static void man_pages_render_cleanly(void **state)
{
	static const char *pages[] = {"tonghop-collector.8", "tonghop-publish.1", "tonghop.1", "tonghop-units.5",
	                              "tonghop-appendix.5"};
	if (!have("groff")) {
		print_message("groff missing: skipped\n");
		skip();
	}
	char cmd[8192];
	for (size_t i = 0; i < sizeof pages / sizeof *pages; i++) {
		char rel[256];
		snprintf(rel, sizeof rel, "docs/man/%s", pages[i]);
		/* -ww: every warning; the text must render and name the program */
		snprintf(cmd, sizeof cmd, "groff -k -man -Tutf8 -ww '%s' 2>&1 >/dev/null", tu_src(rel));
		char *warn = out_of(cmd);
		if (warn[0])
			fail_msg("%s: groff warnings:\n%s", rel, warn);
		free(warn);
		snprintf(cmd, sizeof cmd, "groff -k -man -Tutf8 '%s' 2>/dev/null | col -b", tu_src(rel));
		char *text = out_of(cmd);
		must_contain(text, "NAME", rel);
		must_contain(text, "SEE ALSO", rel);
		free(text);
	}
	/* every option of --help is in the program's page */
	static const struct {
		const char *bin, *page;
	} progs[] = {{"collector/tonghop-collector", "docs/man/tonghop-collector.8"},
	             {"publisher/tonghop-publish", "docs/man/tonghop-publish.1"}};
	for (size_t i = 0; i < 2; i++) {
		snprintf(cmd, sizeof cmd, "'%s' --help | grep -o -- '--[a-z][a-z-]*' | sort -u", tu_bin(progs[i].bin));
		char *opts = out_of(cmd);
		size_t len;
		char *page = tu_read_file(tu_src(progs[i].page), &len);
		assert_non_null(page);
		char *save = NULL;
		for (char *o = strtok_r(opts, "\n", &save); o; o = strtok_r(NULL, "\n", &save)) {
			char roff[128];
			snprintf(roff, sizeof roff, "\\-\\-%s", o + 2);
			if (!strstr(page, roff))
				fail_msg("%s does not document %s", progs[i].page, o);
		}
		free(page);
		free(opts);
	}
}

/* ---- cmake --install ---- */

static void cmake_install_standard_paths(void **state)
{
	if (!have("cmake")) {
		print_message("cmake missing: skipped\n");
		skip();
	}
	char *dir = tu_tmpdir();
	char cmd[8192];
	snprintf(cmd, sizeof cmd, "DESTDIR='%s' cmake --install '%s' --prefix /usr 2>&1", dir, tu_build_dir());
	free(out_of(cmd));
	static const char *files[] = {
		"usr/bin/tonghop-collector", "usr/bin/tonghop-publish", "usr/bin/tonghop",
		"usr/share/tonghop/appendices/PL1-v1.def", "usr/share/tonghop/appendices/PL3-v1.def",
		"usr/share/tonghop/units/hanoi-2021.units", "usr/share/man/man8/tonghop-collector.8",
		"usr/share/man/man1/tonghop-publish.1", "usr/share/man/man1/tonghop.1",
		"usr/share/man/man5/tonghop-units.5", "usr/lib/systemd/system/tonghop-collector.service",
		"usr/lib/systemd/system/tonghop-publish.service", "etc/tonghop/collector.conf",
		"etc/tonghop/publish.conf", "usr/share/doc/tonghop-collector/metrics.md"};
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		char path[4096];
		struct stat sb;
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		if (stat(path, &sb) != 0)
			fail_msg("cmake --install did not install /%s", files[i]);
		if (strncmp(files[i], "usr/bin/", 8) == 0)
			assert_true(sb.st_mode & S_IXUSR);
	}
	snprintf(cmd, sizeof cmd, "'%s/usr/bin/tonghop-collector' --version", dir);
	char *out = out_of(cmd);
	must_contain(out, TH_VERSION, "installed tonghop-collector --version");
	free(out);
	tu_rmrf(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parser_rejects_bad_text),
		cmocka_unit_test(metrics_from_collector_run),
		cmocka_unit_test(metrics_unwritable_keeps_running),
		cmocka_unit_test(systemd_units_verify),
		cmocka_unit_test(default_configs_are_valid),
		cmocka_unit_test(start_script_without_docker),
		cmocka_unit_test(man_pages_render_cleanly),
		cmocka_unit_test(cmake_install_standard_paths),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

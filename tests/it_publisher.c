/* it_publisher.c -- tonghop-publish against a real tonghop-collector on
 * loopback: delivery, crashes of either side, validation, rejections,
 * revisions, the drop folder, a restored collector store. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "testutil.h"
#include "th_csv.h"
#include "th_def.h"
#include "th_report.h"
#if __has_include("th_store.h")
#include "th_store.h"
#define HAVE_STORE 1
#endif

#include "outbox.h"
#include "outbox_fixture.h"

#define MAXF 64

typedef struct fx {
	char *dir;
	char units[4200], db[4200], outbox[4200], files[4200], log[4200], drop[4200];
	char ep[64], pub[64], query[64];
	pid_t coll;
	pid_t agent;
} fx;

static void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Small hierarchy: a city, a department, a district with two communes. */
static const char units_text[] =
	"# test hierarchy\n"
	"@version test-2021\n"
	"@effective 2021-01-01\n"
	"code\tparent\tkind\tname\n"
	"HN\t\tcity\tThành phố Hà Nội\n"
	"SNV\tHN\tdepartment\tSở Nội vụ\n"
	"Q01\tHN\tdistrict\tQuận Một\n"
	"P0101\tQ01\tcommune\tPhường Một\n"
	"P0102\tQ01\tcommune\tPhường Hai\n"
	"P0103\tQ01\tcommune\tPhường Ba\n"
	"P0104\tQ01\tcommune\tPhường Bốn\n"
	"P0105\tQ01\tcommune\tPhường Năm\n"
	"P0106\tQ01\tcommune\tPhường Sáu\n"
	"P0107\tQ01\tcommune\tPhường Bảy\n"
	"P0108\tQ01\tcommune\tPhường Tám\n"
	"P0109\tQ01\tcommune\tPhường Chín\n"
	"P0110\tQ01\tcommune\tPhường Mười\n";

/* the units that file PL1 (the city does not) */
static const char *const filers[] = {"SNV", "Q01", "P0101", "P0102", "P0103", "P0104",
                                     "P0105", "P0106", "P0107", "P0108", "P0109", "P0110"};


static const char *defs_dir(void) { return tu_src("schema/appendices"); }

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->dir = tu_tmpdir();
	assert_non_null(f->dir);
	snprintf(f->units, sizeof f->units, "%s/units.tsv", f->dir);
	snprintf(f->db, sizeof f->db, "%s/db", f->dir);
	snprintf(f->outbox, sizeof f->outbox, "%s/outbox", f->dir);
	snprintf(f->files, sizeof f->files, "%s/files", f->dir);
	snprintf(f->log, sizeof f->log, "%s/log.txt", f->dir);
	snprintf(f->drop, sizeof f->drop, "%s/drop", f->dir);
	mkdir(f->files, 0755);
	mkdir(f->drop, 0755);
	assert_int_equal(tu_write_file(f->units, units_text, strlen(units_text)), 0);
	int p1 = tu_free_port(), p2 = tu_free_port(), p3 = tu_free_port();
	snprintf(f->ep, sizeof f->ep, "tcp://127.0.0.1:%d", p1);
	snprintf(f->pub, sizeof f->pub, "tcp://127.0.0.1:%d", p2);
	snprintf(f->query, sizeof f->query, "tcp://127.0.0.1:%d", p3);
	*state = f;
	return 0;
}

static void kill_wait(pid_t *pid, int sig)
{
	if (*pid <= 0)
		return;
	kill(*pid, sig);
	if (tu_wait(*pid, 10000) < 0) {
		kill(*pid, SIGKILL);
		tu_wait(*pid, 5000);
	}
	*pid = 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	kill_wait(&f->agent, SIGTERM);
	kill_wait(&f->coll, SIGTERM);
	if (getenv("TH_KEEP_TMP"))
		fprintf(stderr, "kept %s\n", f->dir), free(f->dir);
	else
		tu_rmrf(f->dir);
	free(f);
	return 0;
}

static int port_of(const char *ep)
{
	const char *c = strrchr(ep, ':');
	return c ? atoi(c + 1) : -1;
}

static int port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	struct sockaddr_in a = {0};
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
	close(fd);
	return ok;
}

static void coll_start_with(fx *f, const char *keys, const char *server_key);
static void coll_start(fx *f) { coll_start_with(f, NULL, NULL); }

static void coll_start_with(fx *f, const char *keys, const char *server_key)
{
	/* TH_IT_COLLECTOR: another collector binary with the same options */
	const char *bin = getenv("TH_IT_COLLECTOR");
	if (!bin || !*bin)
		bin = tu_bin("collector/tonghop-collector");
	if (access(bin, X_OK) != 0)
		skip();   /* the collector is not built */
	char *argv[] = {(char *)bin, "--db", f->db, "--units",
	                f->units, "--defs", (char *)defs_dir(), "--bind", f->ep, "--pub", f->pub,
	                "--query", f->query, "--allow-root", "--insecure", NULL, NULL, NULL, NULL};
	if (keys) {
		argv[14] = "--keys";
		argv[15] = (char *)keys;
		argv[16] = "--server-key";
		argv[17] = (char *)server_key;
	}
	char clog[4300];
	snprintf(clog, sizeof clog, "%s/collector.log", f->dir);
	f->coll = tu_spawn(argv, clog);
	assert_true(f->coll > 0);
	for (int i = 0; i < 1000 && !port_open(port_of(f->ep)); i++)
		msleep(10);
	assert_true(port_open(port_of(f->ep)));
}

/* Runs tonghop-publish with args (NULL-terminated), output to f->log
 * (truncated first).  Returns the exit status. */
static int pub(fx *f, ...)
{
	char *argv[64];
	int n = 0;
	argv[n++] = (char *)tu_bin("publisher/tonghop-publish");
	va_list ap;
	va_start(ap, f);
	char *a = va_arg(ap, char *);
	assert_non_null(a);
	argv[n++] = a;   /* the command */
	argv[n++] = "--outbox";
	argv[n++] = f->outbox;
	argv[n++] = "--collector";
	argv[n++] = f->ep;
	argv[n++] = "--insecure";
	while ((a = va_arg(ap, char *)) && n < 62)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	unlink(f->log);
	int rc = tu_run(argv, f->log);
	char *log = tu_read_file(f->log, NULL);
	if (log && (strstr(log, "Sanitizer") || strstr(log, "runtime error:")))
		fail_msg("the agent's sanitizer report:\n%s", log);
	free(log);
	return rc;
}

static pid_t pub_spawn(fx *f, char **extra)
{
	char *argv[64];
	int n = 0;
	argv[n++] = (char *)tu_bin("publisher/tonghop-publish");
	argv[n++] = extra[0];
	argv[n++] = "--outbox";
	argv[n++] = f->outbox;
	argv[n++] = "--collector";
	argv[n++] = f->ep;
	argv[n++] = "--insecure";
	for (int i = 1; extra[i] && n < 62; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	unlink(f->log);
	return tu_spawn(argv, f->log);
}

static char *read_log(fx *f)
{
	char *s = tu_read_file(f->log, NULL);
	if (s && (strstr(s, "Sanitizer") || strstr(s, "runtime error:")))
		fail_msg("the agent's sanitizer report:\n%s", s);
	return s ? s : strdup("");
}

static char *status_json(fx *f)
{
	char cmd[9000];
	snprintf(cmd, sizeof cmd, "'%s' status --outbox '%s' --format json",
	         tu_bin("publisher/tonghop-publish"), f->outbox);
	int st = -1;
	char *out = tu_capture(cmd, &st);
	assert_non_null(out);
	assert_int_equal(st, 0);
	return out;
}

static int count_str(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The JSON array "name": [...] of a status output (a copy). */
static char *json_section(const char *js, const char *name)
{
	char key[64];
	snprintf(key, sizeof key, "\"%s\": [", name);
	const char *s = strstr(js, key);
	assert_non_null(s);
	const char *e = strchr(s, ']');
	while (e && e[1] != '\n' && e[1] != ',' && e[1])
		e = strchr(e + 1, ']');
	assert_non_null(e);
	return strndup(s, (size_t)(e - s + 1));
}

/* --- appendix files ----------------------------------------------------------- */
static th_defset *g_defs;

static const th_defset *defs(void)
{
	if (!g_defs) {
		th_diag *d = th_diag_new();
		assert_int_equal(th_defset_load_dir(defs_dir(), &g_defs, d), 0);
		th_diag_destroy(&d);
	}
	return g_defs;
}

/* Writes a PL1 file of unit (content from seed and revision) to path
 * (schema/appendices/FORMAT.md: metadata lines, header of column ids). */
static void write_pl1(const char *path, const char *unit, int seed, int revision)
{
	int plan = 20 + (seed * 7 + revision * 13) % 50;
	int done = plan - 1 - revision % 3;
	char text[1024];
	int n = snprintf(text, sizeof text,
	                 "#appendix: PL1\n#version: 1\n#unit: %s\n#period: 2021\n"
	                 "co_ke_hoach_cchc,nhiem_vu_ke_hoach,nhiem_vu_hoan_thanh\n"
	                 "%s,%d,%d\n",
	                 unit, (seed + revision) % 2 ? "có" : "không", plan, done);
	assert_int_equal(tu_write_file(path, text, (size_t)n), 0);
}

/* One file per filing unit (or only unit) into dir (created); returns how
 * many. */
static int gen(fx *f, const char *dir, const char *unit, int seed, int revision)
{
	(void)f;
	mkdir(dir, 0755);
	int count = 0;
	for (size_t i = 0; i < sizeof filers / sizeof filers[0]; i++) {
		if (unit && strcmp(unit, filers[i]))
			continue;
		char path[4300];
		snprintf(path, sizeof path, "%s/%s-PL1-2021.csv", dir, filers[i]);
		write_pl1(path, filers[i], seed, revision);
		count++;
	}
	if (unit && !count) {
		char path[4300];
		snprintf(path, sizeof path, "%s/%s-PL1-2021.csv", dir, unit);
		write_pl1(path, unit, seed, revision);
		count++;
	}
	return count;
}

/* Sorted paths of the regular files of dir (max MAXF); returns the count. */
static int list_files(const char *dir, char paths[][4200])
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < MAXF) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(paths[n], 4200, "%s/%s", dir, de->d_name);
		n++;
	}
	closedir(d);
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			if (strcmp(paths[i], paths[j]) > 0) {
				char t[4200];
				memcpy(t, paths[i], 4200);
				memcpy(paths[i], paths[j], 4200);
				memcpy(paths[j], t, 4200);
			}
	return n;
}

/* One generated file of unit for appendix (NULL: any), into out. */
static void one_file(fx *f, const char *unit, const char *appendix, int seed, int revision,
                     char *out)
{
	char dir[4300];
	snprintf(dir, sizeof dir, "%s/gen-%s-%d-%d", f->dir, unit, seed, revision);
	gen(f, dir, unit, seed, revision);
	static char paths[MAXF][4200];
	int n = list_files(dir, paths);
	for (int i = 0; i < n; i++) {
		th_report *r = NULL;
		th_diag *d = th_diag_new();
		th_csv_opts co = {0};
		int rc = th_csv_read_report(paths[i], defs(), &co, &r, d);
		th_diag_destroy(&d);
		if (rc == 0 && !strcmp(r->unit, unit) && (!appendix || !strcmp(r->appendix, appendix))) {
			strcpy(out, paths[i]);
			th_report_destroy(&r);
			return;
		}
		th_report_destroy(&r);
	}
	fail_msg("th-gen made no %s file for %s", appendix ? appendix : "", unit);
}

/* The content hash and identity of a file. */
static void file_hash(const char *path, uint8_t hash[TH_HASH_LEN], char *unit, char *app,
                      char *period)
{
	th_report *r = NULL;
	th_diag *d = th_diag_new();
	th_csv_opts co = {0};
	assert_int_equal(th_csv_read_report(path, defs(), &co, &r, d), 0);
	th_diag_destroy(&d);
	const th_def *def = th_defset_get(defs(), r->appendix, r->version);
	assert_non_null(def);
	assert_int_equal(th_report_hash(r, def, hash), 0);
	if (unit)
		strcpy(unit, r->unit);
	if (app)
		strcpy(app, r->appendix);
	if (period)
		strcpy(period, r->period);
	th_report_destroy(&r);
}

/* --- the collector's store, read after stopping it ------------------------------- */
#ifdef HAVE_STORE
static int count_rev(void *ctx, const th_revision_info *info, const th_report *r)
{
	(void)info;
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

/* Checks that the store holds exactly the file's content as the current
 * revision of its key; returns how many revisions the key has. */
static int store_check(fx *f, const char *path, int expect_current)
{
	uint8_t h[TH_HASH_LEN];
	char unit[TH_CODE_MAX + 1], app[TH_CODE_MAX + 1], per[TH_PERIOD_MAX + 1];
	file_hash(path, h, unit, app, per);
	th_store *s = NULL;
	th_store_opts so = {0};
	/* the collector is stopped: open as the only user (a read-only open
	 * is what tools do; here the writer path is as good) */
	so.readonly = getenv("TH_IT_STORE_RO") != NULL;
	assert_int_equal(th_store_open(f->db, &so, &s), 0);
	assert_int_equal(th_store_set_defs(s, defs()), 0);
	th_report *r = NULL;
	th_revision_info info;
	int rc = th_store_get_report(s, unit, app, per, &r, &info);
	int n = 0;
	if (rc == 0) {
		if (expect_current)
			assert_memory_equal(info.hash, h, TH_HASH_LEN);
		else
			assert_memory_not_equal(info.hash, h, TH_HASH_LEN);
		th_report_destroy(&r);
		assert_int_equal(th_store_history(s, unit, app, per, count_rev, &n), 0);
	} else {
		if (expect_current)
			fail_msg("%s %s %s not in the store: %s", unit, app, per, th_strerror(rc));
	}
	th_store_close(&s);
	return n;
}
#else
static int store_check(fx *f, const char *path, int expect_current)
{
	(void)f;
	(void)path;
	(void)expect_current;
	skip();   /* built without the collector's store library */
	return 0;
}
#endif

static void coll_stop(fx *f) { kill_wait(&f->coll, SIGTERM); }

/* Waits until pred(status json) holds (up to ms). */
static int wait_status(fx *f, const char *needle, int times, int ms)
{
	for (int waited = 0; waited <= ms; waited += 200) {
		char *js = status_json(f);
		int n = count_str(js, needle);
		free(js);
		if (n >= times)
			return 1;
		msleep(200);
	}
	return 0;
}

/* --- cases ----------------------------------------------------------------------- */

/* The collector is down: send keeps the report (exit 3); a second send of the
 * same file, with the collector starting meanwhile, delivers it once. */
static void send_collector_down_then_up(void **state)
{
	fx *f = *state;
	char file[4200];
	one_file(f, "P0101", NULL, 1, 0, file);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "1", file, NULL), 3);
	char *js = status_json(f);
	char *pending = json_section(js, "pending");
	assert_int_equal(count_str(pending, "\"unit\": \"P0101\""), 1);
	free(pending);
	free(js);
	char *extra[] = {"send", "--defs", (char *)defs_dir(), "--timeout", "60", file, NULL};
	f->agent = pub_spawn(f, extra);
	msleep(1500);   /* the agent is retrying against nothing */
	coll_start(f);
	assert_int_equal(tu_wait(f->agent, 60000), 0);
	f->agent = 0;
	char *log = read_log(f);
	assert_non_null(strstr(log, "already queued"));   /* same rev, not a new one */
	free(log);
	js = status_json(f);
	pending = json_section(js, "pending");
	char *acked = json_section(js, "acked");
	assert_int_equal(count_str(pending, "\"unit\""), 0);
	assert_int_equal(count_str(acked, "\"state\": \"accepted\""), 1);
	free(pending);
	free(acked);
	free(js);
	coll_stop(f);
	assert_int_equal(store_check(f, file, 1), 1);
}

/* Many files; the agent is killed -9 at some point of its send; a second send
 * of the same files ends with each report stored exactly once. */
static void kill9_agent_mid_send(void **state)
{
	fx *f = *state;
	gen(f, f->files, NULL, 7, 0);
	static char paths[MAXF][4200];
	int n = list_files(f->files, paths);
	assert_true(n >= 5);
	coll_start(f);
	char *extra[MAXF + 8] = {"send", "--defs", (char *)defs_dir(), "--timeout", "60"};
	int k = 5;
	for (int i = 0; i < n; i++)
		extra[k++] = paths[i];
	extra[k] = NULL;
	for (int delay = 5; delay <= 80; delay *= 4) {
		f->agent = pub_spawn(f, extra);
		msleep(delay);
		kill(f->agent, SIGKILL);
		tu_wait(f->agent, 5000);
		f->agent = 0;
	}
	f->agent = pub_spawn(f, extra);
	assert_int_equal(tu_wait(f->agent, 60000), 0);
	f->agent = 0;
	coll_stop(f);
	for (int i = 0; i < n; i++)
		assert_int_equal(store_check(f, paths[i], 1), 1);
}

/* The collector is killed -9 while the agent sends; once restarted, every
 * report is stored exactly once. */
static void kill9_collector_mid_send(void **state)
{
	fx *f = *state;
	gen(f, f->files, NULL, 9, 0);
	static char paths[MAXF][4200];
	int n = list_files(f->files, paths);
	assert_true(n >= 5);
	coll_start(f);
	char *extra[MAXF + 8] = {"send", "--defs", (char *)defs_dir(), "--timeout", "90"};
	int k = 5;
	for (int i = 0; i < n; i++)
		extra[k++] = paths[i];
	extra[k] = NULL;
	f->agent = pub_spawn(f, extra);
	msleep(30);
	kill_wait(&f->coll, SIGKILL);
	msleep(500);
	coll_start(f);
	assert_int_equal(tu_wait(f->agent, 90000), 0);
	f->agent = 0;
	coll_stop(f);
	for (int i = 0; i < n; i++)
		assert_int_equal(store_check(f, paths[i], 1), 1);
}

/* A file with several errors: nothing is queued, every problem is printed as
 * file:line: ..., exit 4. */
static void invalid_file_not_sent(void **state)
{
	fx *f = *state;
	char good[4200], bad[4300];
	one_file(f, "Q01", "PL1", 3, 0, good);
	/* three bad cells in its one row */
	static const char bad_text[] = "#appendix: PL1\n#version: 1\n#unit: Q01\n#period: 2021\n"
	                               "co_ke_hoach_cchc,nhiem_vu_ke_hoach,nhiem_vu_hoan_thanh\n"
	                               "maybe,12a,1/2\n";
	snprintf(bad, sizeof bad, "%s/bad.csv", f->dir);
	assert_int_equal(tu_write_file(bad, bad_text, strlen(bad_text)), 0);
	coll_start(f);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "10", good, bad, NULL), 4);
	char *log = read_log(f);
	char needle[4400];
	snprintf(needle, sizeof needle, "%s:", bad);
	assert_true(count_str(log, needle) >= 3);   /* all problems, each with its line */
	snprintf(needle, sizeof needle, "%s:6:", bad);
	assert_non_null(strstr(log, needle));
	assert_non_null(strstr(log, "nothing was sent"));
	free(log);
	char *js = status_json(f);
	assert_int_equal(count_str(js, "\"unit\""), 0);   /* not even the good file */
	free(js);
	coll_stop(f);
	assert_int_equal(store_check(f, good, 0), 0);
}

/* Replaces the unit code in the metadata of a generated file. */
static void retarget(const char *src, const char *from, const char *to, const char *dst)
{
	size_t len;
	char *text = tu_read_file(src, &len);
	assert_non_null(text);
	FILE *o = fopen(dst, "w");
	assert_non_null(o);
	/* metadata lines come before the header; replace whole-field matches */
	size_t fl = strlen(from);
	int replaced = 0;
	for (size_t i = 0; i < len; i++) {
		if (!replaced && i + fl <= len && !memcmp(text + i, from, fl) &&
		    (i == 0 || strchr(":, ;\t\"", text[i - 1])) &&
		    (i + fl == len || strchr("\r\n,;\t\"", text[i + fl]))) {
			fputs(to, o);
			i += fl - 1;
			replaced = 1;
			continue;
		}
		fputc(text[i], o);
	}
	fclose(o);
	free(text);
	assert_true(replaced);
}

/* A report the collector rejects (a unit it does not know): exit 1, the
 * reason is printed and shown by status. */
static void rejected_reason_in_status(void **state)
{
	fx *f = *state;
	char file[4200], bad[4300];
	one_file(f, "P0102", NULL, 4, 0, file);
	snprintf(bad, sizeof bad, "%s/unknown-unit.csv", f->dir);
	retarget(file, "P0102", "ZZ999", bad);
	coll_start(f);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", bad, NULL), 1);
	char *log = read_log(f);
	assert_non_null(strstr(log, "rejected"));
	free(log);
	char *js = status_json(f);
	char *rej = json_section(js, "rejected");
	assert_int_equal(count_str(rej, "\"unit\": \"ZZ999\""), 1);
	assert_null(strstr(rej, "\"message\": \"\""));   /* a reason is there */
	char *pending = json_section(js, "pending");
	assert_int_equal(count_str(pending, "\"unit\""), 0);
	free(pending);
	free(rej);
	free(js);
}

/* A corrected file (new content, same key) supersedes the first one. */
static void corrected_file_supersedes(void **state)
{
	fx *f = *state;
	char a[4200], b[4200];
	one_file(f, "SNV", "PL1", 11, 0, a);
	one_file(f, "SNV", "PL1", 11, 1, b);
	uint8_t ha[TH_HASH_LEN], hb[TH_HASH_LEN];
	file_hash(a, ha, NULL, NULL, NULL);
	file_hash(b, hb, NULL, NULL, NULL);
	assert_memory_not_equal(ha, hb, TH_HASH_LEN);
	coll_start(f);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", a, NULL), 0);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", b, NULL), 0);
	/* the same corrected file again: no new revision */
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", b, NULL), 0);
	char *log = read_log(f);
	assert_non_null(strstr(log, "already delivered"));
	free(log);
	coll_stop(f);
	assert_int_equal(store_check(f, b, 1), 2);
}

/* An older file dropped again after a newer one: the newer stays current
 * (the agent recognises old content by its hash and does not re-stamp it);
 * --force makes the old content current on purpose. */
static void older_file_after_newer(void **state)
{
	fx *f = *state;
	char a[4200], b[4200];
	one_file(f, "Q01", "PL1", 12, 0, a);
	one_file(f, "Q01", "PL1", 12, 1, b);
	coll_start(f);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", a, NULL), 0);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", b, NULL), 0);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", a, NULL), 1);
	char *log = read_log(f);
	assert_non_null(strstr(log, "superseded"));
	free(log);
	coll_stop(f);
	assert_int_equal(store_check(f, b, 1), 2);
	coll_start(f);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", "--force", a, NULL), 0);
	coll_stop(f);
	assert_int_equal(store_check(f, a, 1), 3);
}

static pid_t run_agent(fx *f, const char *extra1)
{
	char *extra[] = {"run", "--defs", (char *)defs_dir(), "--drop", f->drop, "--quiet-ms", "300",
	                 "--poll", "1", (char *)extra1, NULL};
	return pub_spawn(f, extra);
}

/* A file written slowly into the drop folder is read once complete. */
static void drop_slow_write(void **state)
{
	fx *f = *state;
	char file[4200], dst[4300];
	one_file(f, "P0101", NULL, 21, 0, file);
	coll_start(f);
	f->agent = run_agent(f, NULL);
	msleep(500);
	size_t len;
	char *text = tu_read_file(file, &len);
	assert_non_null(text);
	snprintf(dst, sizeof dst, "%s/slow.csv", f->drop);
	int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	size_t half = len / 2;
	assert_int_equal(write(fd, text, half), (ssize_t)half);
	msleep(2500);   /* longer than the quiet period and two polls */
	assert_int_equal(write(fd, text + half, len - half), (ssize_t)(len - half));
	close(fd);
	free(text);
	assert_true(wait_status(f, "\"state\": \"accepted\"", 1, 20000));
	char errs[4400];
	snprintf(errs, sizeof errs, "%s.errors.txt", dst);
	assert_int_not_equal(access(errs, F_OK), 0);   /* the half file was never read */
	kill_wait(&f->agent, SIGTERM);
	char *js = status_json(f);
	assert_int_equal(count_str(js, "\"unit\""), 1);
	free(js);
	coll_stop(f);
	assert_int_equal(store_check(f, file, 1), 1);
}

/* A file renamed into place is picked up; an invalid one gets a sidecar
 * FILE.errors.txt and stays. */
static void drop_rename_into_place(void **state)
{
	fx *f = *state;
	char file[4200], tmp[4300], dst[4300], bad[4300];
	one_file(f, "P0102", NULL, 22, 0, file);
	coll_start(f);
	f->agent = run_agent(f, NULL);
	msleep(300);
	size_t len;
	char *text = tu_read_file(file, &len);
	snprintf(tmp, sizeof tmp, "%s/.incoming.tmp", f->drop);
	snprintf(dst, sizeof dst, "%s/report.csv", f->drop);
	assert_int_equal(tu_write_file(tmp, text, len), 0);
	assert_int_equal(rename(tmp, dst), 0);
	snprintf(bad, sizeof bad, "%s/broken.csv", f->drop);
	assert_int_equal(tu_write_file(bad, "this,is\nnot,an appendix\n", 24), 0);
	free(text);
	assert_true(wait_status(f, "\"state\": \"accepted\"", 1, 20000));
	char errs[4400], done_[4400];
	snprintf(errs, sizeof errs, "%s.errors.txt", bad);
	for (int i = 0; i < 100 && access(errs, F_OK) != 0; i++)
		msleep(100);
	assert_int_equal(access(errs, F_OK), 0);
	assert_int_equal(access(bad, F_OK), 0);
	snprintf(done_, sizeof done_, "%s/.done/report.csv", f->drop);
	assert_int_equal(access(done_, F_OK), 0);
	kill_wait(&f->agent, SIGTERM);
	coll_stop(f);
	assert_int_equal(store_check(f, file, 1), 1);
}

/* A file replaced twice quickly under the same name ends at the last content. */
static void drop_replaced_twice(void **state)
{
	fx *f = *state;
	char v1[4200], v2[4200], v3[4200], tmp[4300], dst[4300];
	one_file(f, "Q01", "PL1", 23, 0, v1);
	one_file(f, "Q01", "PL1", 23, 1, v2);
	one_file(f, "Q01", "PL1", 23, 2, v3);
	coll_start(f);
	f->agent = run_agent(f, NULL);
	msleep(300);
	snprintf(tmp, sizeof tmp, "%s/.x.tmp", f->drop);
	snprintf(dst, sizeof dst, "%s/hn.csv", f->drop);
	const char *vs[3] = {v1, v2, v3};
	for (int i = 0; i < 3; i++) {
		size_t len;
		char *text = tu_read_file(vs[i], &len);
		assert_int_equal(tu_write_file(tmp, text, len), 0);
		assert_int_equal(rename(tmp, dst), 0);
		free(text);
		msleep(i == 0 ? 50 : 10);
	}
	/* wait until the folder is empty and nothing is pending */
	for (int i = 0; i < 200 && access(dst, F_OK) == 0; i++)
		msleep(100);
	assert_true(wait_status(f, "\"state\": \"accepted\"", 1, 20000));
	for (int i = 0; i < 100; i++) {
		char *js = status_json(f);
		char *p = json_section(js, "pending");
		int n = count_str(p, "\"unit\"");
		free(p);
		free(js);
		if (!n)
			break;
		msleep(100);
	}
	kill_wait(&f->agent, SIGTERM);
	coll_stop(f);
	int revs = store_check(f, v3, 1);
	assert_true(revs >= 1 && revs <= 3);
}

/* The polling fallback picks files up without inotify. */
static void drop_polling_fallback(void **state)
{
	fx *f = *state;
	char file[4200], dst[4300];
	one_file(f, "SNV", NULL, 24, 0, file);
	coll_start(f);
	f->agent = run_agent(f, "--polling");
	msleep(300);
	size_t len;
	char *text = tu_read_file(file, &len);
	snprintf(dst, sizeof dst, "%s/snv.csv", f->drop);
	assert_int_equal(tu_write_file(dst, text, len), 0);
	free(text);
	assert_true(wait_status(f, "\"state\": \"accepted\"", 1, 20000));
	kill_wait(&f->agent, SIGTERM);
	coll_stop(f);
	assert_int_equal(store_check(f, file, 1), 1);
}

/* The collector comes back with another store (restored from an empty
 * backup): the agent sends its acknowledged reports again. */
static void store_change_resends(void **state)
{
	fx *f = *state;
	char a[4200], b[4200];
	one_file(f, "P0101", NULL, 31, 0, a);
	one_file(f, "P0102", NULL, 31, 0, b);
	coll_start(f);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", a, NULL), 0);
	coll_stop(f);
	char moved[4300];
	snprintf(moved, sizeof moved, "%s/db-old", f->dir);
	assert_int_equal(rename(f->db, moved), 0);
	coll_start(f);
	assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "30", b, NULL), 0);
	/* the resend of a goes with b or right after it */
	char *log = read_log(f);
	assert_non_null(strstr(log, "store"));
	free(log);
	for (int i = 0; i < 100; i++) {
		char *js = status_json(f);
		char *p = json_section(js, "pending");
		int n = count_str(p, "\"unit\"");
		free(p);
		free(js);
		if (!n)
			break;
		f->agent = 0;
		assert_int_equal(pub(f, "send", "--defs", defs_dir(), "--timeout", "5", b, NULL), 0);
	}
	coll_stop(f);
	assert_int_equal(store_check(f, a, 1), 1);
	assert_int_equal(store_check(f, b, 1), 1);
}

/* Without --defs the agent takes the definitions from the collector's
 * welcome and caches them in the outbox: later files are validated offline. */
static void defs_cached_from_welcome(void **state)
{
	fx *f = *state;
	char a[4200], b[4200];
	one_file(f, "SNV", NULL, 41, 0, a);
	one_file(f, "Q01", NULL, 41, 0, b);
	/* nothing cached and no collector: nothing can be validated or queued */
	assert_int_equal(pub(f, "send", "--timeout", "1", a, NULL), 3);
	char *log = read_log(f);
	assert_non_null(strstr(log, "no definitions"));
	free(log);
	coll_start(f);
	assert_int_equal(pub(f, "send", "--timeout", "30", a, NULL), 0);
	coll_stop(f);
	/* offline: validated with the cached definitions, queued, exit 3 */
	assert_int_equal(pub(f, "send", "--timeout", "1", b, NULL), 3);
	log = read_log(f);
	assert_non_null(strstr(log, "queued as rev"));
	free(log);
	coll_start(f);
	assert_int_equal(pub(f, "send", "--timeout", "30", b, NULL), 0);
	coll_stop(f);
	assert_int_equal(store_check(f, a, 1), 1);
	assert_int_equal(store_check(f, b, 1), 1);
}

/* A CURVE server whose ZAP handler refuses every key: send says so and
 * exits 5 instead of waiting for its timeout. */
static void refused_key_exit5(void **state)
{
	fx *f = *state;
	char file[4200];
	one_file(f, "P0101", NULL, 51, 0, file);
	char spub[41], ssec[41], apub[41], asec[41];
	assert_int_equal(zmq_curve_keypair(spub, ssec), 0);
	assert_int_equal(zmq_curve_keypair(apub, asec), 0);
	char akey[4300], spubf[4300], text[200];
	snprintf(akey, sizeof akey, "%s/agent.key", f->dir);
	snprintf(spubf, sizeof spubf, "%s/server.pub", f->dir);
	snprintf(text, sizeof text, "%s\n%s\n", apub, asec);
	assert_int_equal(tu_write_file(akey, text, strlen(text)), 0);
	snprintf(text, sizeof text, "%s\n", spub);
	assert_int_equal(tu_write_file(spubf, text, strlen(text)), 0);

	void *ctx = zmq_ctx_new();
	void *zap = zmq_socket(ctx, ZMQ_REP);
	assert_int_equal(zmq_bind(zap, "inproc://zeromq.zap.01"), 0);
	void *srv = zmq_socket(ctx, ZMQ_ROUTER);
	int one = 1, linger = 0;
	zmq_setsockopt(srv, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(zap, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(srv, ZMQ_CURVE_SERVER, &one, sizeof one);
	zmq_setsockopt(srv, ZMQ_CURVE_SECRETKEY, ssec, 40);
	assert_int_equal(zmq_bind(srv, f->ep), 0);

	char *argv[] = {(char *)tu_bin("publisher/tonghop-publish"), "send", "--outbox", f->outbox,
	                "--collector", f->ep, "--key", akey, "--server-key", spubf, "--defs",
	                (char *)defs_dir(), "--timeout", "30", file, NULL};
	unlink(f->log);
	f->agent = tu_spawn(argv, f->log);
	int status = -1, refusals = 0;
	for (int i = 0; i < 400 && status < 0; i++) {
		zmq_pollitem_t it = {zap, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 50) > 0) {
			/* version, request id, domain, address, identity, mechanism, key */
			char frames[8][256];
			size_t lens[8];
			int nf = 0, more = 1;
			while (more && nf < 8) {
				int n = zmq_recv(zap, frames[nf], sizeof frames[nf], 0);
				lens[nf] = n > 0 ? (size_t)n : 0;
				nf++;
				size_t ml = sizeof more;
				zmq_getsockopt(zap, ZMQ_RCVMORE, &more, &ml);
			}
			zmq_send(zap, "1.0", 3, ZMQ_SNDMORE);
			zmq_send(zap, frames[1], lens[1], ZMQ_SNDMORE);
			zmq_send(zap, "400", 3, ZMQ_SNDMORE);
			zmq_send(zap, "unknown key", 11, ZMQ_SNDMORE);
			zmq_send(zap, "", 0, ZMQ_SNDMORE);
			zmq_send(zap, "", 0, 0);
			refusals++;
		}
		status = tu_wait(f->agent, 0);
	}
	if (status >= 0)
		f->agent = 0;
	zmq_close(srv);
	zmq_close(zap);
	zmq_ctx_term(ctx);
	assert_true(refusals >= 1);
	assert_int_equal(status, 5);
	char *log = read_log(f);
	assert_non_null(strstr(log, "refused this key"));
	free(log);
	/* the report is kept for when the key is registered */
	char *js = status_json(f);
	char *pending = json_section(js, "pending");
	assert_int_equal(count_str(pending, "\"unit\": \"P0101\""), 1);
	assert_non_null(strstr(js, "refused this key"));   /* last_error */
	free(pending);
	free(js);
}

/* `send` of many files against a stopped collector queues them all (one
 * rev each, increasing per key) before exiting 3; a second send of the same
 * files queues nothing new. */
static void send_many_files_queued(void **state)
{
	fx *f = *state;
	char dir[4300];
	snprintf(dir, sizeof dir, "%s/many", f->dir);
	int n = gen(f, dir, NULL, 61, 0);
	static char paths[MAXF][4200];
	assert_int_equal(list_files(dir, paths), n);
	char *argv[MAXF + 16];
	int k = 0;
	argv[k++] = (char *)tu_bin("publisher/tonghop-publish");
	argv[k++] = "send";
	argv[k++] = "--outbox";
	argv[k++] = f->outbox;
	argv[k++] = "--collector";
	argv[k++] = f->ep;   /* nothing listens */
	argv[k++] = "--insecure";
	argv[k++] = "--defs";
	argv[k++] = (char *)defs_dir();
	argv[k++] = "--timeout";
	argv[k++] = "1";
	for (int i = 0; i < n; i++)
		argv[k++] = paths[i];
	argv[k] = NULL;
	unlink(f->log);
	assert_int_equal(tu_run(argv, f->log), 3);
	char *log = read_log(f);
	assert_int_equal(count_str(log, " 2021 queued as rev"), n);
	free(log);
	char *js = status_json(f);
	char *pending = json_section(js, "pending");
	assert_int_equal(count_str(pending, "\"unit\""), n);
	for (int i = 0; i < n; i++) {
		char needle[64];
		snprintf(needle, sizeof needle, "\"unit\": \"%s\"", filers[i]);
		assert_int_equal(count_str(pending, needle), 1);
	}
	free(pending);
	free(js);
	unlink(f->log);
	assert_int_equal(tu_run(argv, f->log), 3);
	log = read_log(f);
	assert_int_equal(count_str(log, "already queued"), n);
	assert_int_equal(count_str(log, " 2021 queued as rev"), 0);
	free(log);
	/* delivered once the collector is there */
	coll_start(f);
	argv[10] = "30";
	unlink(f->log);
	assert_int_equal(tu_run(argv, f->log), 0);
	coll_stop(f);
	for (int i = 0; i < n; i++)
		assert_int_equal(store_check(f, paths[i], 1), 1);
}

/* A scan of the drop folder that finds several files at once: the valid
 * ones are queued together and delivered, an invalid one among them gets
 * its sidecar and holds back nothing; a file left in .work by a killed
 * agent is taken back. */
static void drop_batch_with_invalid(void **state)
{
	fx *f = *state;
	int n = gen(f, f->drop, NULL, 62, 0);
	/* one file as an agent killed while handling it left it */
	char work[4300], from[4300], to[4400];
	snprintf(work, sizeof work, "%s/.work", f->drop);
	assert_int_equal(mkdir(work, 0750), 0);
	snprintf(from, sizeof from, "%s/%s-PL1-2021.csv", f->drop, filers[0]);
	snprintf(to, sizeof to, "%s/%s-PL1-2021.csv", work, filers[0]);
	assert_int_equal(rename(from, to), 0);
	static const char bad_text[] = "#appendix: PL1\n#version: 1\n#unit: Q01\n#period: 2021\n"
	                               "co_ke_hoach_cchc,nhiem_vu_ke_hoach,nhiem_vu_hoan_thanh\n"
	                               "maybe,12a,1/2\n";
	char bad[4300], errs[4400];
	snprintf(bad, sizeof bad, "%s/broken.csv", f->drop);
	snprintf(errs, sizeof errs, "%s/broken.csv.errors.txt", f->drop);
	assert_int_equal(tu_write_file(bad, bad_text, strlen(bad_text)), 0);
	coll_start(f);
	f->agent = run_agent(f, NULL);
	char data[4300];
	snprintf(data, sizeof data, "%s/data.mdb", f->outbox);
	for (int i = 0; i < 500 && access(data, F_OK) != 0; i++)
		msleep(20);
	assert_true(wait_status(f, "\"state\": \"accepted\"", n, 30000));
	kill_wait(&f->agent, SIGTERM);
	assert_int_equal(access(errs, F_OK), 0);
	assert_int_equal(access(bad, F_OK), 0);   /* back in place for the operator */
	char *js = status_json(f);
	char *acked = json_section(js, "acked");
	assert_int_equal(count_str(acked, "\"unit\""), n);
	free(acked);
	free(js);
	coll_stop(f);
	char done[4300];
	snprintf(done, sizeof done, "%s/.done", f->drop);
	static char paths[MAXF][4200];
	assert_int_equal(list_files(done, paths), n);
	for (int i = 0; i < n; i++)
		assert_int_equal(store_check(f, paths[i], 1), 1);
}

/* The retention case of test_outbox.c through the commands: after a pass with
 * N days / K contents, `status` shows the latest acknowledged, the rejected
 * and the pending revisions and the history's size; `prune` with the
 * strictest bounds keeps only what the agent needs. */
static void history_retention(void **state)
{
	fx *f = *state;
	of_retention c;
	of_retention_fill(f->outbox, &c);
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	th_ob_retention rt;
	memset(&rt, 0, sizeof rt);
	rt.days = OF_DAYS;
	rt.revs = OF_KEEP;
	th_ob_prune_stats st;
	assert_int_equal(th_outbox_prune(ob, &rt, OF_NOW, &st), 0);
	assert_int_equal(th_outbox_history_count(ob), c.kept);
	th_outbox_close(&ob);

	/* status shows the latest acknowledged, the rejected and the pending */
	char *js = status_json(f);
	char needle[128];
	char *acked = json_section(js, "acked");
	snprintf(needle, sizeof needle, "\"rev\": %llu,", (unsigned long long)c.rev[OF_LATEST_ACKED]);
	assert_int_equal(count_str(acked, needle), 1);
	snprintf(needle, sizeof needle, "\"rev\": %llu,", (unsigned long long)c.grev[2]);
	assert_int_equal(count_str(acked, needle), 1);
	assert_int_equal(count_str(acked, "\"unit\""), 2);
	char *rej = json_section(js, "rejected");
	snprintf(needle, sizeof needle, "\"rev\": %llu,", (unsigned long long)c.rev[OF_NREV - 2]);
	assert_int_equal(count_str(rej, needle), 1);
	assert_non_null(strstr(rej, "bad figures"));
	char *pend = json_section(js, "pending");
	snprintf(needle, sizeof needle, "\"rev\": %llu,", (unsigned long long)c.rev[OF_NREV - 1]);
	assert_int_equal(count_str(pend, needle), 1);
	snprintf(needle, sizeof needle, "\"history\": %zu,", c.kept);
	assert_non_null(strstr(js, needle));
	free(acked);
	free(rej);
	free(pend);
	free(js);

	/* the strictest bounds, through the command: only what is needed stays */
	assert_int_equal(pub(f, "prune", "--history-days", "0", "--history-revs", "0", NULL), 0);
	char *log = read_log(f);
	assert_non_null(strstr(log, "removed"));
	free(log);
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	for (int i = 0; i < OF_NREV; i++)
		assert_int_equal(of_hist_has(ob, "U1", c.h[i]), i >= OF_LATEST_ACKED);
	assert_true(of_hist_has(ob, "U2", c.g[2]));
	assert_false(of_hist_has(ob, "U2", c.g[0]));
	assert_int_equal(th_outbox_history_count(ob), 4);
	th_outbox_close(&ob);
}

/* `status --format json` is JSON a program can read whatever the stored text
 * holds (quotes, control characters, bytes that are not UTF-8): numbers are
 * numbers, a store never seen is null, text is valid UTF-8. */
static void status_json_typed(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	uint8_t h1[TH_HASH_LEN], h2[TH_HASH_LEN];
	of_hash(h1, 1, 0);
	of_hash(h2, 2, 0);
	th_report *r1 = of_report("U1", 1), *r2 = of_report("U2", 2);
	th_ob_enqueued e1, e2;
	assert_int_equal(th_outbox_enqueue(ob, r1, h1, "/tmp/\"q\"/Phường.csv", 0, 1000, &e1), 0);
	assert_int_equal(th_outbox_enqueue(ob, r2, h2, NULL, 0, 2000, &e2), 0);
	th_ack a;
	memset(&a, 0, sizeof a);
	th_ack_result res;
	memset(&res, 0, sizeof res);
	res.status = TH_ACK_REJECTED;
	res.code = TH_ERULE;
	res.message = "tab\there, \"quoted\", back\\slash, \x01 and \xff\xfe bytes";
	res.row = 7;
	res.column = "ho_so";
	res.unit = "U2";
	res.appendix = "PL1";
	res.period = "2021";
	res.rev = e2.rev;
	a.results = &res;
	a.n_results = 1;
	int oc = 0;
	assert_int_equal(th_outbox_apply_ack(ob, &a, 3000000, &oc), 0);
	assert_int_equal(oc, 1);
	th_outbox_close(&ob);
	th_report_destroy(&r1);
	th_report_destroy(&r2);

	char *js = status_json(f);
	json_error_t err;
	json_t *doc = json_loads(js, 0, &err);
	if (!doc)
		fail_msg("status JSON does not parse: %s (line %d)\n%s", err.text, err.line, js);
	assert_true(json_is_integer(json_object_get(doc, "format")));
	assert_true(json_is_null(json_object_get(doc, "store")));
	assert_true(json_is_string(json_object_get(doc, "last_contact")));
	assert_int_equal(json_integer_value(json_object_get(doc, "history")), 2);
	json_t *p = json_array_get(json_object_get(doc, "pending"), 0);
	assert_non_null(p);
	assert_string_equal(json_string_value(json_object_get(p, "file")), "/tmp/\"q\"/Phường.csv");
	assert_int_equal(json_integer_value(json_object_get(p, "rev")), (json_int_t)e1.rev);
	assert_true(json_is_false(json_object_get(p, "resend")));
	assert_true(json_is_integer(json_object_get(p, "attempts")));
	json_t *rj = json_array_get(json_object_get(doc, "rejected"), 0);
	assert_non_null(rj);
	assert_string_equal(json_string_value(json_object_get(rj, "code")), "rule");
	assert_int_equal(json_integer_value(json_object_get(rj, "row")), 7);
	assert_string_equal(json_string_value(json_object_get(rj, "message")),
	                    "tab\there, \"quoted\", back\\slash, \x01 and \xef\xbf\xbd\xef\xbf\xbd bytes");
	assert_int_equal(json_array_size(json_object_get(doc, "acked")), 0);
	/* one report a line, as before */
	assert_int_equal(count_str(js, "\n    {\"unit\": "), 2);
	json_decref(doc);
	free(js);
}

/* The public key in a keygen .pub file ("public Z85" line). */
static void read_pub(const char *path, char out[41])
{
	char *t = tu_read_file(path, NULL);
	assert_non_null(t);
	/* a line "public Z85" (comment lines may mention "public key") */
	char *p = strncmp(t, "public ", 7) ? strstr(t, "\npublic ") : t - 1;
	assert_non_null(p);
	p += 8;
	while (*p == ' ')
		p++;
	memcpy(out, p, 40);
	out[40] = 0;
	free(t);
}

/* A keypair made by `tonghop-collector keygen`: f->dir/NAME.key and .pub. */
typedef struct curve_id {
	char key[4400], pub[4400];
} curve_id;

/* Makes the keypairs names[0..n) (names[0] is the collector's), registers each
 * names[i] (i > 0) whose reg[i] is not NULL as "PUBLIC reg[i]" in a keys file,
 * and starts the collector with them. */
static void curve_collector(fx *f, const char *const *names, const char *const *reg, size_t n,
                            curve_id *ids)
{
	char keysf[4300], lines[1024];
	size_t at = 0;
	for (size_t i = 0; i < n; i++) {
		char pfx[4300];
		snprintf(pfx, sizeof pfx, "%s/%s", f->dir, names[i]);
		char *argv[] = {(char *)tu_bin("collector/tonghop-collector"), "keygen", pfx, NULL};
		assert_int_equal(tu_run(argv, f->log), 0);
		snprintf(ids[i].key, sizeof ids[i].key, "%s.key", pfx);
		snprintf(ids[i].pub, sizeof ids[i].pub, "%s.pub", pfx);
		if (i > 0 && reg[i]) {
			char z85[41];
			read_pub(ids[i].pub, z85);
			at += (size_t)snprintf(lines + at, sizeof lines - at, "%s %s\n", z85, reg[i]);
			assert_true(at < sizeof lines);
		}
	}
	snprintf(keysf, sizeof keysf, "%s/keys.txt", f->dir);
	assert_int_equal(tu_write_file(keysf, lines, at), 0);
	coll_start_with(f, keysf, ids[0].key);
}

/* With CURVE: a registered agent key files for its subtree (accepted), not
 * outside it (rejected, reason in status); an unregistered key is told
 * "refused this key" and exits 5. */
static void curve_scope_and_refusal(void **state)
{
	fx *f = *state;
	const char *coll = getenv("TH_IT_COLLECTOR");
	if (coll && *coll)
		skip();   /* needs the real collector's keys */
	if (access(tu_bin("collector/tonghop-collector"), X_OK) != 0)
		skip();
	static const char *const names[] = {"server", "agent", "other"};
	static const char *const reg[] = {NULL, "Q01 agent district agent", NULL};   /* other: unregistered */
	curve_id id[3];
	curve_collector(f, names, reg, 3, id);
	char *spub = id[0].pub, *akey = id[1].key, *okey = id[2].key;
	char inside[4200], outside[4200];
	one_file(f, "P0103", NULL, 61, 0, inside);
	one_file(f, "SNV", NULL, 61, 0, outside);
	char *base[] = {(char *)tu_bin("publisher/tonghop-publish"), "send", "--outbox", f->outbox,
	                "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	                (char *)defs_dir(), "--timeout", "30", inside, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(base, f->log), 0);
	base[14] = outside;
	unlink(f->log);
	assert_int_equal(tu_run(base, f->log), 1);
	char *js = status_json(f);
	char *rej = json_section(js, "rejected");
	assert_int_equal(count_str(rej, "\"unit\": \"SNV\""), 1);
	free(rej);
	free(js);
	/* an unregistered key */
	char other_outbox[4300];
	snprintf(other_outbox, sizeof other_outbox, "%s/outbox-other", f->dir);
	base[3] = other_outbox;
	base[7] = okey;
	base[14] = inside;
	unlink(f->log);
	assert_int_equal(tu_run(base, f->log), 5);
	char *log = read_log(f);
	assert_non_null(strstr(log, "refused this key"));
	free(log);
	coll_stop(f);
	assert_int_equal(store_check(f, inside, 1), 1);
}

#ifdef HAVE_STORE
/* The current revision of a key in the stopped collector's store: rc of
 * th_store_get_report, *tomb whether it is a withdrawal, *nrevs how many
 * revisions the key has. */
static int store_key(fx *f, const char *unit, const char *app, const char *per, int *tomb,
                     int *nrevs)
{
	th_store *s = NULL;
	th_store_opts so = {0};
	assert_int_equal(th_store_open(f->db, &so, &s), 0);
	assert_int_equal(th_store_set_defs(s, defs()), 0);
	th_report *r = NULL;
	th_revision_info info;
	memset(&info, 0, sizeof info);
	*tomb = 0;
	*nrevs = 0;
	int rc = th_store_get_report(s, unit, app, per, &r, &info);
	if (rc == 0) {
		*tomb = info.tombstone;
		th_report_destroy(&r);
		assert_int_equal(th_store_history(s, unit, app, per, count_rev, nrevs), 0);
	}
	th_store_close(&s);
	return rc;
}
#endif

/* `withdraw UNIT APPENDIX PERIOD` with CURVE keys: the agent key that filed
 * the report is refused (`auth`, exit 1, the store keeps the report), the
 * admin key withdraws it (accepted, exit 0, the store's current revision is
 * a tombstone). */
static void withdraw_admin_only(void **state)
{
#ifndef HAVE_STORE
	(void)state;
	skip();
#else
	fx *f = *state;
	const char *coll = getenv("TH_IT_COLLECTOR");
	if (coll && *coll)
		skip();   /* needs the real collector's keys */
	if (access(tu_bin("collector/tonghop-collector"), X_OK) != 0)
		skip();
	static const char *const names[] = {"server", "agent", "admin"};
	static const char *const reg[] = {NULL, "Q01 agent district agent", "HN admin central admin"};
	curve_id id[3];
	curve_collector(f, names, reg, 3, id);
	char *spub = id[0].pub, *akey = id[1].key, *adkey = id[2].key;
	char file[4200], unit[TH_CODE_MAX + 1], app[TH_CODE_MAX + 1], per[TH_PERIOD_MAX + 1];
	uint8_t h[TH_HASH_LEN];
	char other[4200];
	one_file(f, "P0103", "PL1", 71, 0, file);
	one_file(f, "P0104", "PL1", 73, 0, other);
	file_hash(file, h, unit, app, per);
	char *sendv[] = {(char *)tu_bin("publisher/tonghop-publish"), "send", "--outbox", f->outbox,
	                 "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	                 (char *)defs_dir(), "--timeout", "30", file, other, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(sendv, f->log), 0);
	/* the agent key may not withdraw: auth, exit 1, recorded as rejected */
	char *wv[] = {(char *)tu_bin("publisher/tonghop-publish"), "withdraw", "--outbox", f->outbox,
	              "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	              (char *)defs_dir(), "--timeout", "30", unit, app, per, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(wv, f->log), 1);
	char *log = read_log(f);
	assert_non_null(strstr(log, "rejected"));
	assert_non_null(strstr(log, "[auth]"));
	free(log);
	char *js = status_json(f);
	char *rej = json_section(js, "rejected");
	assert_int_equal(count_str(rej, "\"unit\": \"P0103\""), 1);
	free(rej);
	free(js);
	/* the admin key (its own outbox) withdraws it */
	char adout[4300];
	snprintf(adout, sizeof adout, "%s/outbox-admin", f->dir);
	wv[3] = adout;
	wv[7] = adkey;
	unlink(f->log);
	assert_int_equal(tu_run(wv, f->log), 0);
	log = read_log(f);
	assert_non_null(strstr(log, "withdrawal: P0103"));
	assert_non_null(strstr(log, "accepted"));
	free(log);
	/* the same withdrawal again: already delivered, nothing new */
	unlink(f->log);
	assert_int_equal(tu_run(wv, f->log), 0);
	log = read_log(f);
	assert_non_null(strstr(log, "already delivered"));
	free(log);
	coll_stop(f);
	int tomb = 0, nrevs = 0;
	assert_int_equal(store_key(f, unit, app, per, &tomb, &nrevs), 0);
	assert_int_equal(tomb, 1);
	assert_int_equal(nrevs, 2);   /* the report, then its withdrawal; not the refused one */
	/* the rollup: Q01 counts only P0104 now, and its totals are P0104's own */
	th_store *st = NULL;
	th_store_opts so = {0};
	assert_int_equal(th_store_open(f->db, &so, &st), 0);
	assert_int_equal(th_store_set_defs(st, defs()), 0);
	const th_def *def = th_defset_latest(defs(), "PL1");
	assert_non_null(def);
	th_node q, gone, kept;
	memset(&q, 0, sizeof q);
	memset(&gone, 0, sizeof gone);
	memset(&kept, 0, sizeof kept);
	assert_int_equal(th_store_get_node(st, "PL1", per, "Q01", &q), 0);
	assert_int_equal(th_store_get_node(st, "PL1", per, "P0103", &gone), 0);
	assert_int_equal(th_store_get_node(st, "PL1", per, "P0104", &kept), 0);
	assert_int_equal(q.reported, 1);
	assert_int_equal(gone.reported, 0);
	assert_int_equal(kept.reported, 1);
	assert_true(kept.total[0] > 0);   /* P0104's rows */
	for (size_t i = 0; i < def->n_slots; i++) {
		assert_int_equal(gone.total[i], 0);
		assert_int_equal(q.total[i], kept.total[i]);
	}
	th_node_free(&q);
	th_node_free(&gone);
	th_node_free(&kept);
	th_store_close(&st);
#endif
}

/* A refused withdrawal changes nothing in the store. */
static void withdraw_refused_store_unchanged(void **state)
{
#ifndef HAVE_STORE
	(void)state;
	skip();
#else
	fx *f = *state;
	const char *coll = getenv("TH_IT_COLLECTOR");
	if (coll && *coll)
		skip();
	if (access(tu_bin("collector/tonghop-collector"), X_OK) != 0)
		skip();
	static const char *const names[] = {"server", "agent"};
	static const char *const reg[] = {NULL, "Q01 agent district agent"};
	curve_id id[2];
	curve_collector(f, names, reg, 2, id);
	char *spub = id[0].pub, *akey = id[1].key;
	char file[4200], unit[TH_CODE_MAX + 1], app[TH_CODE_MAX + 1], per[TH_PERIOD_MAX + 1];
	uint8_t h[TH_HASH_LEN];
	one_file(f, "P0104", NULL, 72, 0, file);
	file_hash(file, h, unit, app, per);
	char *sendv[] = {(char *)tu_bin("publisher/tonghop-publish"), "send", "--outbox", f->outbox,
	                 "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	                 (char *)defs_dir(), "--timeout", "30", file, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(sendv, f->log), 0);
	char *wv[] = {(char *)tu_bin("publisher/tonghop-publish"), "withdraw", "--outbox", f->outbox,
	              "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	              (char *)defs_dir(), "--timeout", "30", unit, app, per, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(wv, f->log), 1);
	char *log = read_log(f);
	assert_non_null(strstr(log, "only an admin key may withdraw"));
	free(log);
	coll_stop(f);
	int tomb = 1, nrevs = 0;
	assert_int_equal(store_key(f, unit, app, per, &tomb, &nrevs), 0);
	assert_int_equal(tomb, 0);
	assert_int_equal(nrevs, 1);
	assert_int_equal(store_check(f, file, 1), 1);
#endif
}

/* withdraw's usage errors: exit 2 with a specific message, nothing queued. */
static void withdraw_usage(void **state)
{
	fx *f = *state;
	struct {
		const char *a[3];
		int n;
		const char *msg;
	} cases[] = {
		{{"P0101", "PL1", NULL}, 2, "expected UNIT APPENDIX PERIOD"},
		{{"P0101", "PL1", "2021-13"}, 3, "period \"2021-13\" is not"},
		{{"P0101", "PL1", "20x1"}, 3, "period \"20x1\" is not"},
		{{"P0101", "PL99", "2021"}, 3, "unknown appendix \"PL99\""},
		{{"P 01", "PL1", "2021"}, 3, "unit code \"P 01\""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char *argv[32];
		int n = 0;
		argv[n++] = (char *)tu_bin("publisher/tonghop-publish");
		argv[n++] = "withdraw";
		argv[n++] = "--outbox";
		argv[n++] = f->outbox;
		argv[n++] = "--collector";
		argv[n++] = f->ep;   /* nobody listens: nothing may be sent anyway */
		argv[n++] = "--insecure";
		argv[n++] = "--defs";
		argv[n++] = (char *)defs_dir();
		argv[n++] = "--timeout";
		argv[n++] = "5";
		for (int k = 0; k < cases[i].n; k++)
			argv[n++] = (char *)cases[i].a[k];
		argv[n] = NULL;
		unlink(f->log);
		assert_int_equal(tu_run(argv, f->log), 2);
		char *log = read_log(f);
		if (!strstr(log, cases[i].msg))
			fail_msg("case %zu: no \"%s\" in:\n%s", i, cases[i].msg, log);
		assert_null(strstr(log, "queued"));
		free(log);
	}
	/* nothing was ever queued */
	struct stat st;
	if (stat(f->outbox, &st) == 0) {
		th_outbox *ob = NULL;
		const char *why = NULL;
		assert_int_equal(th_outbox_open(f->outbox, &ob, &why), 0);
		assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 0);
		assert_int_equal(th_outbox_history_count(ob), 0);
		th_outbox_close(&ob);
	}
}

/* Usage errors and a missing key file are exit 2; a broken outbox format is
 * refused. */
static void usage_and_keys(void **state)
{
	fx *f = *state;
	char *argv1[] = {(char *)tu_bin("publisher/tonghop-publish"), "bogus", NULL};
	assert_int_equal(tu_run(argv1, f->log), 2);
	char *argv2[] = {(char *)tu_bin("publisher/tonghop-publish"), "--help", NULL};
	assert_int_equal(tu_run(argv2, f->log), 0);
	char keyf[4300];
	snprintf(keyf, sizeof keyf, "%s/agent.key", f->dir);
	assert_int_equal(tu_write_file(keyf, "public short\nsecret short\n", 26), 0);
	char *argv3[] = {(char *)tu_bin("publisher/tonghop-publish"), "send", "--outbox", f->outbox,
	                 "--key", keyf, "--server-key", keyf, "x.csv", NULL};
	assert_int_equal(tu_run(argv3, f->log), 2);
	char *log = read_log(f);
	assert_non_null(strstr(log, "Z85"));
	free(log);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(send_collector_down_then_up, setup, teardown),
		cmocka_unit_test_setup_teardown(kill9_agent_mid_send, setup, teardown),
		cmocka_unit_test_setup_teardown(kill9_collector_mid_send, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_file_not_sent, setup, teardown),
		cmocka_unit_test_setup_teardown(rejected_reason_in_status, setup, teardown),
		cmocka_unit_test_setup_teardown(corrected_file_supersedes, setup, teardown),
		cmocka_unit_test_setup_teardown(older_file_after_newer, setup, teardown),
		cmocka_unit_test_setup_teardown(drop_slow_write, setup, teardown),
		cmocka_unit_test_setup_teardown(drop_rename_into_place, setup, teardown),
		cmocka_unit_test_setup_teardown(drop_replaced_twice, setup, teardown),
		cmocka_unit_test_setup_teardown(drop_polling_fallback, setup, teardown),
		cmocka_unit_test_setup_teardown(store_change_resends, setup, teardown),
		cmocka_unit_test_setup_teardown(defs_cached_from_welcome, setup, teardown),
		cmocka_unit_test_setup_teardown(refused_key_exit5, setup, teardown),
		cmocka_unit_test_setup_teardown(curve_scope_and_refusal, setup, teardown),
		cmocka_unit_test_setup_teardown(usage_and_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(withdraw_admin_only, setup, teardown),
		cmocka_unit_test_setup_teardown(withdraw_refused_store_unchanged, setup, teardown),
		cmocka_unit_test_setup_teardown(withdraw_usage, setup, teardown),
		cmocka_unit_test_setup_teardown(send_many_files_queued, setup, teardown),
		cmocka_unit_test_setup_teardown(drop_batch_with_invalid, setup, teardown),
		cmocka_unit_test_setup_teardown(history_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(status_json_typed, setup, teardown),
	};
	int rc = TH_RUN_TESTS(tests, argc, argv);
	th_defset_destroy(&g_defs);
	return rc;
}

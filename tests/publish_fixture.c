/* publish_fixture.c -- tonghop-publish and a collector on loopback (see the
 * header). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "publish_fixture.h"
#include "testutil.h"
#include "th_canon.h"
#include "th_csv.h"

void pf_msleep(int ms)
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
const char *const pf_filers[PF_NFILERS] = {"SNV", "Q01", "P0101", "P0102", "P0103", "P0104",
                                     "P0105", "P0106", "P0107", "P0108", "P0109", "P0110"};


const char *pf_defs_dir(void) { return tu_src("schema/appendices"); }

int pf_setup(void **state)
{
	pf_fx *f = calloc(1, sizeof *f);
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

void pf_kill_wait(pid_t *pid, int sig)
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

int pf_teardown(void **state)
{
	pf_fx *f = *state;
	pf_kill_wait(&f->agent, SIGTERM);
	pf_kill_wait(&f->coll, SIGTERM);
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

void pf_coll_start(pf_fx *f) { pf_coll_start_with(f, NULL, NULL); }

void pf_coll_start_with(pf_fx *f, const char *keys, const char *server_key)
{
	/* TH_IT_COLLECTOR: another collector binary with the same options */
	const char *bin = getenv("TH_IT_COLLECTOR");
	if (!bin || !*bin)
		bin = tu_bin("collector/tonghop-collector");
	if (access(bin, X_OK) != 0)
		skip();   /* the collector is not built */
	char *argv[] = {(char *)bin, "--db", f->db, "--units",
	                f->units, "--defs", (char *)pf_defs_dir(), "--bind", f->ep, "--pub", f->pub,
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
		pf_msleep(10);
	assert_true(port_open(port_of(f->ep)));
}

/* Runs tonghop-publish with args (NULL-terminated), output to f->log
 * (truncated first).  Returns the exit status. */
int pf_pub(pf_fx *f, ...)
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

pid_t pf_pub_spawn(pf_fx *f, char **extra)
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

char *pf_read_log(pf_fx *f)
{
	char *s = tu_read_file(f->log, NULL);
	if (s && (strstr(s, "Sanitizer") || strstr(s, "runtime error:")))
		fail_msg("the agent's sanitizer report:\n%s", s);
	return s ? s : strdup("");
}

char *pf_status_json(pf_fx *f)
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

int pf_count_str(const char *hay, const char *needle)
{
	int n = 0;
	for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
		n++;
	return n;
}

/* The JSON array "name": [...] of a status output (a copy). */
char *pf_json_section(const char *js, const char *name)
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
static th_defset *pf_g_defs;

void pf_cleanup(void) { th_defset_destroy(&pf_g_defs); }


const th_defset *pf_defs(void)
{
	if (!pf_g_defs) {
		th_diag *d = th_diag_new();
		assert_int_equal(th_defset_load_dir(pf_defs_dir(), &pf_g_defs, d), 0);
		th_diag_destroy(&d);
	}
	return pf_g_defs;
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
int pf_gen(pf_fx *f, const char *dir, const char *unit, int seed, int revision)
{
	(void)f;
	mkdir(dir, 0755);
	int count = 0;
	for (size_t i = 0; i < sizeof pf_filers / sizeof pf_filers[0]; i++) {
		if (unit && strcmp(unit, pf_filers[i]))
			continue;
		char path[4300];
		snprintf(path, sizeof path, "%s/%s-PL1-2021.csv", dir, pf_filers[i]);
		write_pl1(path, pf_filers[i], seed, revision);
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

/* Sorted paths of the regular files of dir (max PF_MAXF); returns the count. */
int pf_list_files(const char *dir, char paths[][4200])
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) && n < PF_MAXF) {
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
void pf_one_file(pf_fx *f, const char *unit, const char *appendix, int seed, int revision,
                     char *out)
{
	char dir[4300];
	snprintf(dir, sizeof dir, "%s/gen-%s-%d-%d", f->dir, unit, seed, revision);
	pf_gen(f, dir, unit, seed, revision);
	static char paths[PF_MAXF][4200];
	int n = pf_list_files(dir, paths);
	for (int i = 0; i < n; i++) {
		th_report *r = NULL;
		th_diag *d = th_diag_new();
		th_csv_opts co = {0};
		int rc = th_csv_read_report(paths[i], pf_defs(), &co, &r, d);
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
void pf_file_hash(const char *path, uint8_t hash[TH_HASH_LEN], char *unit, char *app,
                      char *period)
{
	th_report *r = NULL;
	th_diag *d = th_diag_new();
	th_csv_opts co = {0};
	assert_int_equal(th_csv_read_report(path, pf_defs(), &co, &r, d), 0);
	th_diag_destroy(&d);
	const th_def *def = th_defset_get(pf_defs(), r->appendix, r->version);
	assert_non_null(def);
	assert_int_equal(th_canon_hash(r, def, hash), 0);
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
int pf_count_rev(void *ctx, const th_revision_info *info, const th_report *r)
{
	(void)info;
	(void)r;
	(*(int *)ctx)++;
	return 0;
}

/* Checks that the store holds exactly the file's content as the current
 * revision of its key; returns how many revisions the key has. */
int pf_store_check(pf_fx *f, const char *path, int expect_current)
{
	uint8_t h[TH_HASH_LEN];
	char unit[TH_CODE_MAX + 1], app[TH_CODE_MAX + 1], per[TH_PERIOD_MAX + 1];
	pf_file_hash(path, h, unit, app, per);
	th_store *s = NULL;
	th_store_opts so = {0};
	/* the collector is stopped: open as the only user (a read-only open
	 * is what tools do; here the writer path is as good) */
	so.readonly = getenv("TH_IT_STORE_RO") != NULL;
	assert_int_equal(th_store_open(f->db, &so, &s), 0);
	assert_int_equal(th_store_set_defs(s, pf_defs()), 0);
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
		assert_int_equal(th_store_history(s, unit, app, per, pf_count_rev, &n), 0);
	} else {
		if (expect_current)
			fail_msg("%s %s %s not in the store: %s", unit, app, per, th_strerror(rc));
	}
	th_store_close(&s);
	return n;
}
#else
int pf_store_check(pf_fx *f, const char *path, int expect_current)
{
	(void)f;
	(void)path;
	(void)expect_current;
	skip();   /* built without the collector's store library */
	return 0;
}
#endif

void pf_coll_stop(pf_fx *f) { pf_kill_wait(&f->coll, SIGTERM); }

/* Waits until pred(status json) holds (up to ms). */
int pf_wait_status(pf_fx *f, const char *needle, int times, int ms)
{
	for (int waited = 0; waited <= ms; waited += 200) {
		char *js = pf_status_json(f);
		int n = pf_count_str(js, needle);
		free(js);
		if (n >= times)
			return 1;
		pf_msleep(200);
	}
	return 0;
}


pid_t pf_run_agent(pf_fx *f, const char *extra1)
{
	char *extra[] = {"run", "--defs", (char *)pf_defs_dir(), "--drop", f->drop, "--quiet-ms", "300",
	                 "--poll", "1", (char *)extra1, NULL};
	return pf_pub_spawn(f, extra);
}

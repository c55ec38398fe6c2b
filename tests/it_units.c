/* it_units.c -- hierarchy versions through a real collector (CURVE keys on
 * loopback): `tonghop units --versions` from the store and from the query
 * socket, and `tonghop units --submit` / the units_submit query: admin only,
 * validated with line numbers, new version id, written durably into
 * --units-dir and loaded again after a restart, bound periods untouched. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <msgpack.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "collector_fixture.h"
#include "testutil.h"
#include "th_def.h"
#include "th_report.h"
#include "th_wire.h"

/* it-1: S3 belongs to S1.  it-2 (2022): S3 moves to S2, S4 is new. */
#define UNITS_1 \
	"@version it-1\n@effective 2021-01-01\ncode\tparent\tkind\tname\n" \
	"R\t\tcity\tThành phố\n" \
	"S1\tR\tdepartment\tSở Một\n" \
	"S2\tR\tdepartment\tSở Hai\n" \
	"S3\tS1\tdepartment\tChi cục Ba\n"
#define UNITS_2 \
	"# reorganised\n@version it-2\n@effective 2022-01-01\ncode\tparent\tkind\tname\n" \
	"R\t\tcity\tThành phố\n" \
	"S1\tR\tdepartment\tSở Một\n" \
	"S2\tR\tdepartment\tSở Hai\n" \
	"S3\tS2\tdepartment\tChi cục Ba\n" \
	"S4\tR\tdepartment\tSở Bốn\n"

typedef struct {
	char pub[41], sec[41];
} keypair;

typedef struct {
	char *dir;
	char db[512], udir[512], log[512], defsdir[512], ingest[64], pubep[64], query[64];
	keypair server, admin, reader, agent;
	pid_t pid;
	void *ctx;
	th_defset *defs;
} fixture;

static void key_files(fixture *f, const char *name, const keypair *k)
{
	char path[600], text[200];
	snprintf(path, sizeof path, "%s/%s.key", f->dir, name);
	snprintf(text, sizeof text, "public %s\nsecret %s\n", k->pub, k->sec);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
	snprintf(path, sizeof path, "%s/%s.pub", f->dir, name);
	snprintf(text, sizeof text, "public %s\n", k->pub);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

static void *dealer(fixture *f, const char *ep, const keypair *k)
{
	void *s = zmq_socket(f->ctx, ZMQ_DEALER);
	int linger = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, f->server.pub, 40);
	zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, k->pub, 40);
	zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, k->sec, 40);
	assert_int_equal(zmq_connect(s, ep), 0);
	return s;
}

/* Sends buf on a new socket of key k and waits up to ms for one reply
 * (malloc'd, *olen); NULL on timeout. */
static char *request(fixture *f, const char *ep, const keypair *k, const void *buf, size_t len,
                     int ms, size_t *olen)
{
	void *s = dealer(f, ep, k);
	char *out = NULL;
	if (zmq_send(s, buf, len, 0) >= 0) {
		zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
		zmq_msg_t m;
		zmq_msg_init(&m);
		if (zmq_poll(&it, 1, ms) > 0 && zmq_msg_recv(&m, s, 0) >= 0) {
			*olen = zmq_msg_size(&m);
			out = malloc(*olen + 1);
			memcpy(out, zmq_msg_data(&m), *olen);
		}
		zmq_msg_close(&m);
	}
	zmq_close(s);
	return out;
}

#define S(pk, x) (msgpack_pack_str(pk, strlen(x)), msgpack_pack_str_body(pk, x, strlen(x)))

/* A units_submit query (QUERY.md) of text under name, from key k; the reply
 * unpacked into u (its bytes in *raw, to free). */
static void units_submit(fixture *f, const keypair *k, const char *name, const char *text,
                         msgpack_unpacked *u, char **raw)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 6);
	S(&pk, "v"); msgpack_pack_uint8(&pk, 1);
	S(&pk, "t"); S(&pk, "query");
	S(&pk, "id"); msgpack_pack_uint8(&pk, 9);
	S(&pk, "q"); S(&pk, "units_submit");
	S(&pk, "name"); S(&pk, name);
	S(&pk, "text"); S(&pk, text);
	size_t rlen = 0;
	*raw = request(f, f->query, k, sb.data, sb.size, 10000, &rlen);
	msgpack_sbuffer_destroy(&sb);
	assert_non_null(*raw);
	msgpack_unpacked_init(u);
	assert_int_equal(msgpack_unpack_next(u, *raw, rlen, NULL), MSGPACK_UNPACK_SUCCESS);
}

static const msgpack_object *field(const msgpack_object *map, const char *name)
{
	for (uint32_t i = 0; map && map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(name) &&
		    !memcmp(kv->key.via.str.ptr, name, kv->key.via.str.size))
			return &kv->val;
	}
	return NULL;
}

static int str_is(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       !memcmp(o->via.str.ptr, s, o->via.str.size);
}

/* 1 when the collector answers a stats query. */
static int answers(fixture *f)
{
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 4);
	S(&pk, "v"); msgpack_pack_uint8(&pk, 1);
	S(&pk, "t"); S(&pk, "query");
	S(&pk, "id"); msgpack_pack_uint8(&pk, 1);
	S(&pk, "q"); S(&pk, "stats");
	size_t len;
	char *rep = request(f, f->query, &f->reader, sb.data, sb.size, 200, &len);
	msgpack_sbuffer_destroy(&sb);
	free(rep);
	return rep != NULL;
}

static void start(fixture *f)
{
	char keys[600], skey[600];
	snprintf(keys, sizeof keys, "%s/keys", f->dir);
	snprintf(skey, sizeof skey, "%s/server.key", f->dir);
	char *argv[] = {(char *)tu_bin("collector/tonghop-collector"), "--db", f->db, "--units-dir",
	                f->udir, "--defs", f->defsdir, "--keys", keys,
	                "--server-key", skey, "--bind", f->ingest, "--pub", f->pubep, "--query",
	                f->query, "--allow-root", NULL};
	f->pid = tu_spawn(argv, f->log);
	assert_true(f->pid > 0);
	for (int i = 0; i < 50 && !answers(f); i++)
		assert_int_equal(tu_wait(f->pid, 0), -1);   /* still running */
	assert_true(answers(f));
}

static void stop(fixture *f)
{
	if (f->pid <= 0)
		return;
	kill(f->pid, SIGTERM);
	if (tu_wait(f->pid, 10000) < 0) {
		kill(f->pid, SIGKILL);
		tu_wait(f->pid, 5000);
	}
	f->pid = 0;
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->dir = tu_tmpdir();
	snprintf(f->db, sizeof f->db, "%s/store", f->dir);
	snprintf(f->udir, sizeof f->udir, "%s/units.d", f->dir);
	snprintf(f->log, sizeof f->log, "%s/collector.log", f->dir);
	snprintf(f->ingest, sizeof f->ingest, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(f->pubep, sizeof f->pubep, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(f->query, sizeof f->query, "tcp://127.0.0.1:%d", tu_free_port());
	keypair *kps[] = {&f->server, &f->admin, &f->reader, &f->agent};
	const char *names[] = {"server", "admin", "reader", "agent"};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(zmq_curve_keypair(kps[i]->pub, kps[i]->sec), 0);
		key_files(f, names[i], kps[i]);
	}
	char path[600], text[600];
	snprintf(path, sizeof path, "%s/keys", f->dir);
	snprintf(text, sizeof text, "%s R admin central team\n%s R reader inspector\n%s S1 agent\n",
	         f->admin.pub, f->reader.pub, f->agent.pub);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
	assert_int_equal(mkdir(f->udir, 0750), 0);
	snprintf(path, sizeof path, "%s/it-1.units", f->udir);
	assert_int_equal(tu_write_file(path, UNITS_1, strlen(UNITS_1)), 0);
	snprintf(f->defsdir, sizeof f->defsdir, "%s/defs", f->dir);
	assert_int_equal(th_defset_load_dir(cf_write_defs(f->defsdir), &f->defs, NULL), 0);
	f->ctx = zmq_ctx_new();
	start(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	stop(f);
	zmq_ctx_term(f->ctx);
	th_defset_destroy(&f->defs);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

/* Runs `tonghop ARGS` (printf-style); stdout returned (malloc'd), stderr in
 * *err when err is not NULL. */
static char *tool(fixture *f, int *status, char **err, const char *fmt, ...)
{
	char args[3000], cmd[4000], errpath[600];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof args, fmt, ap);
	va_end(ap);
	snprintf(errpath, sizeof errpath, "%s/tool.err", f->dir);
	snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s'", tu_bin("tools/tonghop"), args, errpath);
	char *out = tu_capture(cmd, status);
	assert_non_null(out);
	if (err) {
		*err = tu_read_file(errpath, NULL);
		assert_non_null(*err);
	}
	return out;
}

/* `--collector EP --key NAME.key --server-key server.pub` for the tool. */
static const char *remote(fixture *f, const char *key)
{
	static char buf[1500];
	snprintf(buf, sizeof buf, "--collector '%s' --key '%s/%s.key' --server-key '%s/server.pub'",
	         f->query, f->dir, key, f->dir);
	return buf;
}

/* A PL3 report (one task row, done of done + 1 planned) submitted with the
 * admin key; returns the ack status. */
static th_ack_status send_pl3(fixture *f, const char *unit, const char *period, uint64_t rev,
                              int64_t done)
{
	th_report *r = cf_pl3_report(f->defs, unit, period, rev, done, 1, 0);
	uint8_t *buf;
	size_t len, rlen = 0;
	assert_int_equal(th_wire_encode_submit(rev, &r, 1, f->defs, &buf, &len), 0);
	char *rep = request(f, f->ingest, &f->admin, buf, len, 10000, &rlen);
	free(buf);
	th_report_destroy(&r);
	assert_non_null(rep);
	th_ack a;
	const char *why = NULL;
	assert_int_equal(th_wire_decode_ack((uint8_t *)rep, rlen, &a, &why), 0);
	free(rep);
	assert_int_equal(a.n_results, 1);
	th_ack_status st = a.results[0].status;
	th_ack_free(&a);
	return st;
}

/* Every entry of the units directory (dot files too) with its bytes. */
static char *dir_snapshot(const char *dir)
{
	char *snap = strdup("");
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *e;
	char *names[64];
	int n = 0;
	while ((e = readdir(d)) && n < 64)
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			names[n++] = strdup(e->d_name);
	closedir(d);
	for (int i = 0; i < n; i++)
		for (int k = i + 1; k < n; k++)
			if (strcmp(names[k], names[i]) < 0) {
				char *t = names[i];
				names[i] = names[k];
				names[k] = t;
			}
	for (int i = 0; i < n; i++) {
		char path[1200];
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		char *text = tu_read_file(path, NULL), *next = NULL;
		assert_true(asprintf(&next, "%s== %s\n%s", snap, names[i], text ? text : "?") > 0);
		free(snap);
		free(text);
		free(names[i]);
		snap = next;
	}
	return snap;
}

static int log_has(fixture *f, const char *needle)
{
	char *text = tu_read_file(f->log, NULL);
	int has = text && strstr(text, needle) != NULL;
	free(text);
	return has;
}

/* Fails, showing hay, when needle is not in it. */
#define assert_has(hay, needle) assert_has_((hay), (needle), __FILE__, __LINE__)
static void assert_has_(const char *hay, const char *needle, const char *file, int line)
{
	if (hay && strstr(hay, needle))
		return;
	print_error("%s:%d: \"%s\" not in:\n%s\n", file, line, needle, hay ? hay : "(null)");
	fail();
}

/* Fails unless the csv row of unit code in out has reported and value as its
 * last two fields (code,name,expected,reported,value). */
static void row_is(const char *out, const char *code, const char *reported, const char *value)
{
	char start[80], end[80];
	snprintf(start, sizeof start, "\n%s,", code);
	snprintf(end, sizeof end, ",%s,%s", reported, value);
	const char *l = strstr(out, start);
	const char *e = l ? strchr(l + 1, '\n') : NULL;
	if (e && e[-1] == '\r')
		e--;     /* csv rows end with CRLF */
	size_t el = strlen(end);
	if (!l || !e || (size_t)(e - l) < el || memcmp(e - el, end, el) != 0) {
		print_error("row %s ...%s not in:\n%s\n", code, end, out);
		fail();
	}
}

/* --- cases ------------------------------------------------------------------ */

static void versions_same_from_store_and_socket(void **state)
{
	fixture *f = *state;
	assert_int_equal(send_pl3(f, "S1", "2021", 1, 4), TH_ACK_ACCEPTED);   /* binds 2021 */
	int st;
	char path[600];
	snprintf(path, sizeof path, "%s/v2.units", f->dir);
	assert_int_equal(tu_write_file(path, UNITS_2, strlen(UNITS_2)), 0);
	char *out = tool(f, &st, NULL, "units --submit '%s' %s", path, remote(f, "admin"));
	assert_int_equal(st, 0);
	free(out);
	assert_int_equal(send_pl3(f, "S4", "2022", 1, 2), TH_ACK_ACCEPTED);   /* binds 2022 */

	char *db = tool(f, &st, NULL, "units --versions --db '%s' --format json", f->db);
	assert_int_equal(st, 0);
	char *sock = tool(f, &st, NULL, "units --versions %s --format json", remote(f, "reader"));
	assert_int_equal(st, 0);
	assert_string_equal(db, sock);
	/* both versions, each with the period bound to it, and where it came from */
	char *v1 = strstr(db, "\"version\": \"it-1\""), *v2 = strstr(db, "\"version\": \"it-2\"");
	assert_non_null(v1);
	assert_non_null(v2);
	assert_true(v1 < v2);
	assert_has(v1, "\"effective\": \"2021-01-01\", \"units\": 4, \"levels\": 3");
	assert_has(v2, "\"effective\": \"2022-01-01\", \"units\": 5, \"levels\": 3");
	char want[800];
	snprintf(want, sizeof want, "\"origin\": \"file %s/it-1.units\", \"periods\": \"2021\"", f->udir);
	assert_has(v1, want);
	snprintf(want, sizeof want, "\"origin\": \"submitted by central team (R, admin), file "
	         "%s/it-2.units\", \"periods\": \"2022\"", f->udir);
	assert_has(v2, want);
	free(db);
	free(sock);

	/* the table names the columns; csv from both sources agrees too */
	db = tool(f, &st, NULL, "units --versions --db '%s' --format csv", f->db);
	sock = tool(f, &st, NULL, "units --versions %s --format csv", remote(f, "reader"));
	assert_string_equal(db, sock);
	free(db);
	free(sock);
}

static void admin_submit_written_and_loaded_after_restart(void **state)
{
	fixture *f = *state;
	char path[600];
	snprintf(path, sizeof path, "%s/reorg.units", f->dir);
	assert_int_equal(tu_write_file(path, UNITS_2, strlen(UNITS_2)), 0);
	/* S4 exists only in it-2; 2021 is bound to it-1, and so is 2022-Q3 (reported
	 * before it-2 came: it keeps it-1, and the submission says so) */
	assert_int_equal(send_pl3(f, "S4", "2021", 1, 2), TH_ACK_REJECTED);
	assert_int_equal(send_pl3(f, "S1", "2022-Q3", 1, 2), TH_ACK_ACCEPTED);
	int st;
	char *err = NULL;
	char *out = tool(f, &st, &err, "units --submit '%s' %s", path, remote(f, "admin"));
	assert_int_equal(st, 0);
	assert_has(err, "warning: periods already bound to an older version keep it although they "
	                "start on or after 2022-01-01: 2022-Q3 (it-1)");
	free(err);
	char want[800];
	snprintf(want, sizeof want, "hierarchy version it-2 (effective 2022-01-01, 5 units, 3 levels) "
	         "written by the collector to %s/it-2.units and loaded", f->udir);
	assert_has(out, want);
	free(out);
	/* on disk byte for byte, no temporary file left */
	snprintf(path, sizeof path, "%s/it-2.units", f->udir);
	char *text = tu_read_file(path, NULL);
	assert_non_null(text);
	assert_string_equal(text, UNITS_2);
	free(text);
	char *snap = dir_snapshot(f->udir);
	assert_null(strstr(snap, "== ."));
	free(snap);
	assert_true(log_has(f, "hierarchy it-2 (effective 2022-01-01, 5 units) submitted by central team"));
	/* in force for new periods at once */
	assert_int_equal(send_pl3(f, "S4", "2022", 1, 2), TH_ACK_ACCEPTED);
	assert_int_equal(send_pl3(f, "S4", "2021", 2, 2), TH_ACK_REJECTED);   /* 2021 is it-1's */
	assert_int_equal(send_pl3(f, "S4", "2022-Q3", 1, 2), TH_ACK_REJECTED);

	/* restart on the same store: still there */
	stop(f);
	start(f);
	out = tool(f, &st, NULL, "units --versions %s --format csv", remote(f, "reader"));
	assert_int_equal(st, 0);
	assert_has(out, "it-2,2022-01-01,5,3,R,");
	free(out);
	/* restart on an empty store: the file alone brings it back */
	stop(f);
	snprintf(f->db, sizeof f->db, "%s/store-new", f->dir);
	start(f);
	out = tool(f, &st, NULL, "units --versions %s --format csv", remote(f, "reader"));
	assert_int_equal(st, 0);
	snprintf(want, sizeof want, "it-2,2022-01-01,5,3,R,");
	assert_has(out, want);
	snprintf(want, sizeof want, "file %s/it-2.units", f->udir);
	assert_has(out, want);
	assert_null(strstr(out, "submitted by"));     /* this store took it from the file */
	free(out);
	assert_int_equal(send_pl3(f, "S4", "2022", 1, 2), TH_ACK_ACCEPTED);
}

static void reader_and_agent_keys_refused(void **state)
{
	fixture *f = *state;
	char path[600];
	snprintf(path, sizeof path, "%s/reorg.units", f->dir);
	assert_int_equal(tu_write_file(path, UNITS_2, strlen(UNITS_2)), 0);
	char *before = dir_snapshot(f->udir);
	int st;
	char *err = NULL;
	char *out = tool(f, &st, &err, "units --submit '%s' %s", path, remote(f, "reader"));
	assert_int_equal(st, 1);
	assert_has(err, "forbidden: admin role required (this key has the reader role)");
	free(out);
	free(err);
	out = tool(f, &st, &err, "units --submit '%s' %s", path, remote(f, "agent"));
	assert_int_equal(st, 1);
	assert_has(err, "forbidden: admin role required (this key has the agent role)");
	free(out);
	free(err);
	assert_true(log_has(f, "hierarchy file reorg.units from inspector (R, reader) refused: admin "
	                       "role required"));
	assert_true(log_has(f, "hierarchy file reorg.units from S1 (S1, agent) refused"));
	char *after = dir_snapshot(f->udir);
	assert_string_equal(before, after);
	free(before);
	free(after);
	out = tool(f, &st, NULL, "units --versions --db '%s' --format csv", f->db);
	assert_null(strstr(out, "it-2"));
	free(out);
}

static void broken_file_refused_with_its_line(void **state)
{
	fixture *f = *state;
	/* line 8: a parent that does not exist; line 9: a duplicate code */
	static const char broken[] =
		"@version it-2\n@effective 2022-01-01\ncode\tparent\tkind\tname\n"
		"R\t\tcity\tThành phố\n"
		"S1\tR\tdepartment\tSở Một\n"
		"S2\tR\tdepartment\tSở Hai\n"
		"S3\tS2\tdepartment\tChi cục Ba\n"
		"S5\tNOPE\tdepartment\tSở Năm\n"
		"S1\tR\tdepartment\tSở Một lần nữa\n";
	char *before = dir_snapshot(f->udir);
	int st;
	char *vbefore = tool(f, &st, NULL, "units --versions --db '%s' --format json", f->db);
	msgpack_unpacked u;
	char *raw;
	units_submit(f, &f->admin, "broken.units", broken, &u, &raw);
	const msgpack_object *ok = field(&u.data, "ok");
	assert_true(ok && ok->type == MSGPACK_OBJECT_BOOLEAN && !ok->via.boolean);
	const msgpack_object *pr = field(&u.data, "problems");
	assert_true(pr && pr->type == MSGPACK_OBJECT_ARRAY);
	for (uint32_t i = 0; i < pr->via.array.size; i++)
		if (pr->via.array.ptr[i].type == MSGPACK_OBJECT_STR)
			print_message("problem: %.*s\n", (int)pr->via.array.ptr[i].via.str.size,
			              pr->via.array.ptr[i].via.str.ptr);
	assert_int_equal(pr->via.array.size, 2);
	assert_true(str_is(&pr->via.array.ptr[0], "broken.units:9: duplicate unit code S1 (first at line 5)"));
	assert_true(str_is(&pr->via.array.ptr[1], "broken.units:8: unit S5: unknown parent NOPE"));
	msgpack_unpacked_destroy(&u);
	free(raw);
	/* the tool checks locally first and sends nothing */
	char path[600];
	snprintf(path, sizeof path, "%s/broken.units", f->dir);
	assert_int_equal(tu_write_file(path, broken, strlen(broken)), 0);
	char *err = NULL;
	char *out = tool(f, &st, &err, "units --submit '%s' %s", path, remote(f, "admin"));
	assert_int_equal(st, 1);
	char want[800];
	snprintf(want, sizeof want, "%s:8: unit S5: unknown parent NOPE", path);
	assert_has(err, want);
	assert_has(err, "nothing was sent");
	free(out);
	free(err);
	char *after = dir_snapshot(f->udir);
	assert_string_equal(before, after);
	char *vafter = tool(f, &st, NULL, "units --versions --db '%s' --format json", f->db);
	assert_string_equal(vbefore, vafter);
	free(before);
	free(after);
	free(vbefore);
	free(vafter);
}

static void duplicate_id_or_earlier_date_refused(void **state)
{
	fixture *f = *state;
	char *before = dir_snapshot(f->udir);
	msgpack_unpacked u;
	char *raw;
	/* it-1 again, with another text */
	char *changed = strdup(UNITS_1 "S4\tR\tdepartment\tSở Bốn\n");
	units_submit(f, &f->admin, "again.units", changed, &u, &raw);
	assert_true(str_is(field(&u.data, "reason"), "exists"));
	const msgpack_object *m = field(&u.data, "message");
	assert_true(m && m->type == MSGPACK_OBJECT_STR);
	assert_non_null(memmem(m->via.str.ptr, m->via.str.size, "hierarchy version it-1 exists already", 37));
	msgpack_unpacked_destroy(&u);
	free(raw);
	free(changed);
	/* a new id that would come into force before the current version */
	static const char early[] = "@version it-0\n@effective 2020-06-01\ncode\tparent\tkind\tname\n"
	                            "R\t\tcity\tThành phố\n";
	units_submit(f, &f->admin, "early.units", early, &u, &raw);
	assert_true(str_is(field(&u.data, "reason"), "range"));
	msgpack_unpacked_destroy(&u);
	free(raw);
	/* a version id that cannot name a file */
	static const char slash[] = "@version a/b\n@effective 2023-06-01\ncode\tparent\tkind\tname\n"
	                            "R\t\tcity\tThành phố\n";
	units_submit(f, &f->admin, "slash.units", slash, &u, &raw);
	assert_true(str_is(field(&u.data, "reason"), "invalid"));
	msgpack_unpacked_destroy(&u);
	free(raw);
	char *after = dir_snapshot(f->udir);
	assert_string_equal(before, after);
	free(before);
	free(after);
	/* the same file twice: the second is a duplicate */
	char path[600];
	snprintf(path, sizeof path, "%s/reorg.units", f->dir);
	assert_int_equal(tu_write_file(path, UNITS_2, strlen(UNITS_2)), 0);
	int st;
	char *err = NULL;
	char *out = tool(f, &st, NULL, "units --submit '%s' %s", path, remote(f, "admin"));
	assert_int_equal(st, 0);
	free(out);
	before = dir_snapshot(f->udir);
	out = tool(f, &st, &err, "units --submit '%s' %s", path, remote(f, "admin"));
	assert_int_equal(st, 1);
	assert_has(err, "hierarchy version it-2 exists already");
	after = dir_snapshot(f->udir);
	assert_string_equal(before, after);
	free(out);
	free(err);
	free(before);
	free(after);
}

static void bound_period_rollups_unchanged(void **state)
{
	fixture *f = *state;
	assert_int_equal(send_pl3(f, "S1", "2021", 1, 4), TH_ACK_ACCEPTED);
	assert_int_equal(send_pl3(f, "S2", "2021", 1, 2), TH_ACK_ACCEPTED);
	assert_int_equal(send_pl3(f, "S3", "2021", 1, 3), TH_ACK_ACCEPTED);
	int st;
	char *lv[3][2];
	for (int l = 1; l <= 3; l++) {
		lv[l - 1][0] = tool(f, &st, NULL, "rollup --db '%s' -a PL3 -p 2021 --level %d "
		                    "--columns da_hoan_thanh --format csv", f->db, l);
		assert_int_equal(st, 0);
	}
	/* 2021 under it-1: S1's subtree holds S3 */
	row_is(lv[1][0], "S1", "2", "7");
	row_is(lv[1][0], "S2", "1", "2");

	char path[600];
	snprintf(path, sizeof path, "%s/reorg.units", f->dir);
	assert_int_equal(tu_write_file(path, UNITS_2, strlen(UNITS_2)), 0);
	char *out = tool(f, &st, NULL, "units --submit '%s' %s", path, remote(f, "admin"));
	assert_int_equal(st, 0);
	free(out);
	assert_int_equal(send_pl3(f, "S3", "2022", 1, 3), TH_ACK_ACCEPTED);
	assert_int_equal(send_pl3(f, "S2", "2022", 1, 2), TH_ACK_ACCEPTED);
	for (int l = 1; l <= 3; l++) {
		lv[l - 1][1] = tool(f, &st, NULL, "rollup --db '%s' -a PL3 -p 2021 --level %d "
		                    "--columns da_hoan_thanh --format csv", f->db, l);
		assert_int_equal(st, 0);
		assert_string_equal(lv[l - 1][0], lv[l - 1][1]);
		free(lv[l - 1][0]);
		free(lv[l - 1][1]);
	}
	/* a 2021 correction after the new version still rolls up under it-1 */
	assert_int_equal(send_pl3(f, "S3", "2021", 2, 5), TH_ACK_ACCEPTED);
	out = tool(f, &st, NULL, "rollup --db '%s' -a PL3 -p 2021 --level 2 --columns da_hoan_thanh "
	           "--format csv", f->db);
	row_is(out, "S1", "2", "9");
	row_is(out, "S2", "1", "2");
	free(out);
	/* 2022 under it-2: S3 counts in S2's subtree */
	out = tool(f, &st, NULL, "rollup --db '%s' -a PL3 -p 2022 --level 2 --columns da_hoan_thanh "
	           "--format csv", f->db);
	row_is(out, "S2", "2", "5");
	row_is(out, "S1", "0", "");
	free(out);
	out = tool(f, &st, NULL, "check --db '%s'", f->db);
	assert_int_equal(st, 0);
	free(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(versions_same_from_store_and_socket, setup, teardown),
		cmocka_unit_test_setup_teardown(admin_submit_written_and_loaded_after_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(reader_and_agent_keys_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(broken_file_refused_with_its_line, setup, teardown),
		cmocka_unit_test_setup_teardown(duplicate_id_or_earlier_date_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(bound_period_rollups_unchanged, setup, teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

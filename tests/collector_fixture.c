/* collector_fixture.c -- a live tonghop-collector for integration tests (see the header). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "collector_fixture.h"
#include "testutil.h"

static void kp(cf_keypair *k)
{
	assert_int_equal(zmq_curve_keypair(k->pub, k->sec), 0);
}

void cf_write_keys(cf_fixture *f, const cf_keypair *omit)
{
	const struct {
		const cf_keypair *k;
		const char *rest;
	} keys[] = {{&f->snv, "SNV agent sở nội vụ"}, {&f->snvx, "SNVX agent"}, {&f->d1, "D1 agent quận 1"},
	            {&f->c1, "C1 agent"}, {&f->reader, "R reader"}, {&f->reader2, "R reader second"},
	            {&f->admin, "R admin"}};
	char path[4096], text[4096];
	size_t n = (size_t)snprintf(text, sizeof text, "# test keys\n");
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
		if (keys[i].k != omit)
			n += (size_t)snprintf(text + n, sizeof text - n, "%s %s\n", keys[i].k->pub, keys[i].rest);
	assert_true(n < sizeof text);
	snprintf(path, sizeof path, "%s/keys", f->dir);
	assert_int_equal(tu_write_file(path, text, n), 0);
}

const char *cf_write_defs(const char *dir)
{
	static const char *const files[] = {"PL1-v1.def", "PL2-v1.def", "PL3-v1.def"};
	assert_int_equal(mkdir(dir, 0700), 0);
	for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
		char src[4096], dst[4096];
		snprintf(src, sizeof src, "schema/appendices/%s", files[i]);
		snprintf(dst, sizeof dst, "%s/%s", dir, files[i]);
		size_t len = 0;
		char *text = tu_read_file(tu_src(src), &len);
		assert_non_null(text);
		if (!strcmp(files[i], "PL3-v1.def")) {
			/* "submitters = department" -> every kind below the city; the
			 * submitter_units line is commented out */
			char *subm = strstr(text, "\nsubmitters = department\n");
			char *units = strstr(text, "\nsubmitter_units =");
			assert_non_null(subm);
			assert_non_null(units);
			units[1] = '#';
			size_t head = (size_t)(subm - text) + strlen("\nsubmitters = department");
			static const char more[] = " district commune";
			char *out = malloc(len + sizeof more);
			assert_non_null(out);
			memcpy(out, text, head);
			memcpy(out + head, more, sizeof more - 1);
			memcpy(out + head + sizeof more - 1, text + head, len - head + 1);
			free(text);
			text = out;
			len += sizeof more - 1;
		}
		assert_int_equal(tu_write_file(dst, text, len), 0);
		free(text);
	}
	return dir;
}

void cf_start(cf_fixture *f)
{
	char db[4096], units[4096], keys[4096], skey[4096], log[4096];
	snprintf(db, sizeof db, "%s/store", f->dir);
	snprintf(units, sizeof units, "%s/units", f->dir);
	snprintf(keys, sizeof keys, "%s/keys", f->dir);
	snprintf(skey, sizeof skey, "%s/server.key", f->dir);
	snprintf(log, sizeof log, "%s/collector.log", f->dir);
	char *argv[24 + CF_MAX_EXTRA] = {
		(char *)tu_bin("collector/tonghop-collector"), "--db", db, "--units", units,
		"--defs", f->defsdir, "--keys", keys, "--server-key", skey,
		"--bind", f->ingest, "--pub", f->pubep, "--query", f->query, "--allow-root",
		"--group-max", "64"};
	size_t n = 20;
	for (size_t i = 0; f->extra[i]; i++)
		argv[n++] = (char *)f->extra[i];
	argv[n] = NULL;
	f->pid = tu_spawn(argv, log);
	assert_true(f->pid > 0);
	usleep(300000);
	assert_int_equal(tu_wait(f->pid, 0), -1);   /* still running */
}

int cf_setup_with(void **state, const char *const *extra)
{
	cf_fixture *f = calloc(1, sizeof *f);
	assert_non_null(f);
	for (size_t i = 0; extra && extra[i]; i++) {
		assert_true(i < CF_MAX_EXTRA);
		f->extra[i] = extra[i];
	}
	f->dir = tu_tmpdir();
	snprintf(f->ingest, sizeof f->ingest, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(f->pubep, sizeof f->pubep, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(f->query, sizeof f->query, "tcp://127.0.0.1:%d", tu_free_port());
	cf_keypair *all[] = {&f->server, &f->snv, &f->snvx, &f->d1, &f->c1, &f->reader, &f->reader2, &f->admin};
	for (size_t i = 0; i < sizeof all / sizeof *all; i++)
		kp(all[i]);
	char path[4096], text[512];
	snprintf(path, sizeof path, "%s/units", f->dir);
	assert_int_equal(tu_write_file(path, CF_UNITS_TEXT, strlen(CF_UNITS_TEXT)), 0);
	snprintf(path, sizeof path, "%s/server.key", f->dir);
	snprintf(text, sizeof text, "public %s\nsecret %s\n", f->server.pub, f->server.sec);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
	cf_write_keys(f, NULL);
	snprintf(f->defsdir, sizeof f->defsdir, "%s/defs", f->dir);
	assert_int_equal(th_defset_load_dir(cf_write_defs(f->defsdir), &f->defs, NULL), 0);
	f->ctx = zmq_ctx_new();
	cf_start(f);
	*state = f;
	return 0;
}

int cf_setup(void **state)
{
	return cf_setup_with(state, NULL);
}

static void *term_thread(void *ctx)
{
	zmq_ctx_term(ctx);
	return NULL;
}

/* Terminates ctx, or leaves it behind after 5 s: a failed assertion skips the test's
 * zmq_close calls, and zmq_ctx_term waits for every socket to be closed. */
static void term_ctx(void *ctx)
{
	pthread_t t;
	if (pthread_create(&t, NULL, term_thread, ctx) != 0)
		return;
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 5;
	if (pthread_timedjoin_np(t, NULL, &until) != 0) {
		print_message("sockets left open (a failed test?): the ZeroMQ context is left behind\n");
		pthread_detach(t);
	}
}

int cf_teardown(void **state)
{
	cf_fixture *f = *state;
	int status = 0;
	char *log = NULL;
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		if ((status = tu_wait(f->pid, 5000)) < 0) {
			kill(f->pid, SIGKILL);
			tu_wait(f->pid, 5000);
		}
		char path[4096];
		snprintf(path, sizeof path, "%s/collector.log", f->dir);
		if (status != 0)
			log = tu_read_file(path, NULL);
	}
	term_ctx(f->ctx);
	th_defset_destroy(&f->defs);
	tu_rmrf(f->dir);
	free(f);
	/* every case ends with a clean shutdown (under the sanitizers: no error, no leak) */
	if (status != 0) {
		print_message("collector exit status %d at SIGTERM; its log:\n%s\n", status, log ? log : "");
		free(log);
		return -1;
	}
	return 0;
}

void *cf_dealer(cf_fixture *f, const char *ep, const cf_keypair *k)
{
	void *s = zmq_socket(f->ctx, ZMQ_DEALER);
	assert_non_null(s);
	int linger = 0;
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
	if (k) {
		zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, f->server.pub, 40);
		zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, k->pub, 40);
		zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, k->sec, 40);
	}
	assert_int_equal(zmq_connect(s, ep), 0);
	return s;
}

uint8_t *cf_request(void *s, const uint8_t *buf, size_t len, int ms, size_t *olen)
{
	assert_true(zmq_send(s, buf, len, 0) >= 0);
	zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
	if (zmq_poll(&it, 1, ms) <= 0)
		return NULL;
	zmq_msg_t m;
	zmq_msg_init(&m);
	assert_true(zmq_msg_recv(&m, s, 0) >= 0);
	*olen = zmq_msg_size(&m);
	uint8_t *out = malloc(*olen + 1);
	assert_non_null(out);
	memcpy(out, zmq_msg_data(&m), *olen);
	zmq_msg_close(&m);
	return out;
}

int cf_hello(void *s, th_welcome *w, th_error_msg *err)
{
	th_hello h = {.agent = "it", .unit = "", .id = 1};
	uint8_t *buf, *rep;
	size_t len, rlen;
	assert_int_equal(th_wire_encode_hello(&h, &buf, &len), 0);
	rep = cf_request(s, buf, len, 3000, &rlen);
	free(buf);
	if (!rep)
		return -1;
	const char *why;
	int rc = th_wire_decode_welcome(rep, rlen, w, &why);
	if (rc && err && th_wire_decode_error(rep, rlen, err, &why) != 0)
		memset(err, 0, sizeof *err);
	free(rep);
	return rc;
}

th_report *cf_pl3(cf_fixture *f, const char *unit, uint64_t rev, int64_t done, int64_t a, int64_t b)
{
	return cf_pl3_report(f->defs, unit, "2021", rev, done, a, b);
}

th_report *cf_pl3_report(const th_defset *defs, const char *unit, const char *period, uint64_t rev,
                         int64_t done, int64_t a, int64_t b)
{
	const th_def *d = th_defset_latest(defs, "PL3");
	assert_non_null(d);
	th_report *r = th_report_new(unit, "PL3", d->version, period, rev, d->n_cols);
	assert_non_null(r);
	th_report_add_row(r);
	th_value *v = th_report_cell(r, 0, (size_t)th_def_column(d, "linh_vuc"));
	v->null = 0;
	v->i = 0;
	v = th_report_cell(r, 0, (size_t)th_def_column(d, "ma_nhiem_vu"));
	v->null = 0;
	v->s = strdup("T1");
	v->len = 2;
	const char *cols[] = {"so_nhiem_vu_ke_hoach", "da_hoan_thanh", "dang_thuc_hien", "chua_thuc_hien"};
	int64_t vals[] = {done + a + b, done, a, b};
	for (int i = 0; i < 4; i++) {
		v = th_report_cell(r, 0, (size_t)th_def_column(d, cols[i]));
		v->null = 0;
		v->i = vals[i];
	}
	return r;
}

void cf_submit(cf_fixture *f, void *s, th_report *r, th_ack *ack)
{
	uint8_t *buf, *rep;
	size_t len, rlen;
	static uint64_t id = 100;
	assert_int_equal(th_wire_encode_submit(++id, &r, 1, f->defs, &buf, &len), 0);
	rep = cf_request(s, buf, len, 5000, &rlen);
	free(buf);
	assert_non_null(rep);
	const char *why = NULL;
	int rc = th_wire_decode_ack(rep, rlen, ack, &why);
	if (rc) {
		th_error_msg e;
		if (th_wire_decode_error(rep, rlen, &e, &why) == 0) {
			print_message("error reply: %s %s\n", th_errname(e.code), e.message);
			th_error_msg_free(&e);
		}
	}
	free(rep);
	assert_int_equal(rc, 0);
	assert_int_equal(ack->id, id);
	assert_int_equal(ack->n_results, 1);
}

th_ack_status cf_submit_status(cf_fixture *f, void *s, th_report *r, int *code)
{
	th_ack a;
	cf_submit(f, s, r, &a);
	th_ack_status st = a.results[0].status;
	if (code)
		*code = a.results[0].code;
	th_ack_free(&a);
	return st;
}

static void pack_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str(pk, strlen(s));
	msgpack_pack_str_body(pk, s, strlen(s));
}

uint8_t *cf_query(cf_fixture *f, void *q, const char *what, const char *unit, size_t *len)
{
	void *own = q ? NULL : cf_dealer(f, f->query, &f->reader);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 7);
	pack_str(&pk, "v"); msgpack_pack_uint8(&pk, 1);
	pack_str(&pk, "t"); pack_str(&pk, "query");
	pack_str(&pk, "id"); msgpack_pack_uint8(&pk, 5);
	pack_str(&pk, "q"); pack_str(&pk, what);
	pack_str(&pk, "appendix"); pack_str(&pk, "PL3");
	pack_str(&pk, "period"); pack_str(&pk, "2021");
	pack_str(&pk, "unit"); pack_str(&pk, unit);
	uint8_t *rep = cf_request(q ? q : own, (uint8_t *)sb.data, sb.size, 5000, len);
	msgpack_sbuffer_destroy(&sb);
	if (own)
		zmq_close(own);
	assert_non_null(rep);
	return rep;
}

void cf_query_unpacked(cf_fixture *f, const char *what, const char *unit, msgpack_unpacked *u,
                       char **raw)
{
	size_t rlen;
	uint8_t *rep = cf_query(f, NULL, what, unit, &rlen);
	msgpack_unpacked_init(u);
	assert_int_equal(msgpack_unpack_next(u, (const char *)rep, rlen, NULL), MSGPACK_UNPACK_SUCCESS);
	*raw = (char *)rep;
}

const msgpack_object *cf_field(const msgpack_object *map, const char *name)
{
	for (uint32_t i = 0; map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(name) &&
		    !memcmp(kv->key.via.str.ptr, name, kv->key.via.str.size))
			return &kv->val;
	}
	return NULL;
}

int64_t cf_query_total(cf_fixture *f, const char *unit, const char *col, uint32_t *reported)
{
	msgpack_unpacked u;
	char *raw;
	cf_query_unpacked(f, "node", unit, &u, &raw);
	const msgpack_object *node = cf_field(&u.data, "node");
	assert_non_null(node);
	const th_def *d = th_defset_latest(f->defs, "PL3");
	const th_column *c = &d->cols[th_def_column(d, col)];
	const msgpack_object *total = cf_field(node, "total");
	assert_non_null(total);
	assert_true(total->type == MSGPACK_OBJECT_ARRAY && total->via.array.size > c->slot + 1);
	int64_t sum = total->via.array.ptr[c->slot].via.i64;
	int64_t n = total->via.array.ptr[c->slot + 1].via.i64;
	if (reported) {
		const msgpack_object *rep = cf_field(node, "reported");
		assert_non_null(rep);
		*reported = (uint32_t)rep->via.u64;
	}
	msgpack_unpacked_destroy(&u);
	free(raw);
	return n ? sum : -1;
}

uint64_t cf_stat(cf_fixture *f, const char *name)
{
	msgpack_unpacked u;
	char *raw;
	cf_query_unpacked(f, "stats", "R", &u, &raw);
	const msgpack_object *st = cf_field(&u.data, "stats");
	assert_non_null(st);
	const msgpack_object *v = cf_field(st, name);
	if (!v)
		fail_msg("stats has no counter %s", name);
	assert_int_equal(v->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	uint64_t n = v->via.u64;
	msgpack_unpacked_destroy(&u);
	free(raw);
	return n;
}

void cf_snapshot(cf_fixture *f, msgpack_sbuffer *all)
{
	static const char *const units[] = {"R", "SNV", "SNVX", "D1", "C1", "C2"};
	static const char *const what[] = {"node", "report", "history"};
	msgpack_sbuffer_init(all);
	void *q = cf_dealer(f, f->query, &f->reader);
	for (size_t u = 0; u < sizeof units / sizeof *units; u++)
		for (size_t w = 0; w < 3; w++) {
			size_t len;
			uint8_t *rep = cf_query(f, q, what[w], units[u], &len);
			msgpack_sbuffer_write(all, (const char *)rep, len);
			free(rep);
		}
	zmq_close(q);
}

void cf_assert_same_snapshot(cf_fixture *f, const msgpack_sbuffer *before)
{
	msgpack_sbuffer after;
	cf_snapshot(f, &after);
	assert_int_equal(after.size, before->size);
	assert_memory_equal(after.data, before->data, before->size);
	msgpack_sbuffer_destroy(&after);
}

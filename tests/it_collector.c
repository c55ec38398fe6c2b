/* it_collector.c -- the collector as a real process on loopback: keys, dedup,
 * validation, scope, revocation, hostile bytes, PUB prefixes, restarts. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "testutil.h"
#include "th_mp.h"
#include <msgpack.h>
#include "th_wire.h"

#define UNITS_TEXT \
	"@version it-1\n@effective 2021-01-01\ncode\tparent\tkind\tname\n" \
	"R\t\tcity\tThành phố\n" \
	"SNV\tR\tdepartment\tSở Nội vụ\n" \
	"SNVX\tR\tdepartment\tSở X\n" \
	"D1\tR\tdistrict\tQuận 1\n" \
	"C1\tD1\tcommune\tPhường 1\n" \
	"C2\tD1\tcommune\tPhường 2\n"

typedef struct {
	char pub[41], sec[41];
} keypair;

typedef struct {
	char *dir;
	char ingest[64], pubep[64], query[64];
	keypair server, snv, snvx, d1, c1, reader, admin;
	pid_t pid;
	void *ctx;
	th_defset *defs;
} fixture;

static void kp(keypair *k)
{
	assert_int_equal(zmq_curve_keypair(k->pub, k->sec), 0);
}

static void write_keys(fixture *f, int with_c1)
{
	char path[4096], text[4096];
	snprintf(path, sizeof path, "%s/keys", f->dir);
	snprintf(text, sizeof text,
	         "# test keys\n%s SNV agent sở nội vụ\n%s SNVX agent\n%s D1 agent quận 1\n%s%s%s%s R reader\n%s R admin\n",
	         f->snv.pub, f->snvx.pub, f->d1.pub, with_c1 ? f->c1.pub : "", with_c1 ? " C1 agent\n" : "",
	         "", f->reader.pub, f->admin.pub);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

static void start(fixture *f)
{
	char db[4096], units[4096], keys[4096], skey[4096], log[4096];
	snprintf(db, sizeof db, "%s/store", f->dir);
	snprintf(units, sizeof units, "%s/units", f->dir);
	snprintf(keys, sizeof keys, "%s/keys", f->dir);
	snprintf(skey, sizeof skey, "%s/server.key", f->dir);
	snprintf(log, sizeof log, "%s/collector.log", f->dir);
	char *argv[] = {(char *)tu_bin("collector/tonghop-collector"), "--db", db, "--units", units,
	                "--defs", (char *)tu_src("schema/appendices"), "--keys", keys, "--server-key", skey,
	                "--bind", f->ingest, "--pub", f->pubep, "--query", f->query, "--allow-root",
	                "--group-max", "64", NULL};
	f->pid = tu_spawn(argv, log);
	assert_true(f->pid > 0);
	usleep(300000);
	assert_int_equal(tu_wait(f->pid, 0), -1);   /* still running */
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	f->dir = tu_tmpdir();
	snprintf(f->ingest, sizeof f->ingest, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(f->pubep, sizeof f->pubep, "tcp://127.0.0.1:%d", tu_free_port());
	snprintf(f->query, sizeof f->query, "tcp://127.0.0.1:%d", tu_free_port());
	kp(&f->server);
	kp(&f->snv);
	kp(&f->snvx);
	kp(&f->d1);
	kp(&f->c1);
	kp(&f->reader);
	kp(&f->admin);
	char path[4096], text[512];
	snprintf(path, sizeof path, "%s/units", f->dir);
	tu_write_file(path, UNITS_TEXT, strlen(UNITS_TEXT));
	snprintf(path, sizeof path, "%s/server.key", f->dir);
	snprintf(text, sizeof text, "public %s\nsecret %s\n", f->server.pub, f->server.sec);
	tu_write_file(path, text, strlen(text));
	write_keys(f, 1);
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &f->defs, NULL), 0);
	f->ctx = zmq_ctx_new();
	start(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	if (f->pid > 0) {
		kill(f->pid, SIGTERM);
		if (tu_wait(f->pid, 5000) < 0) {
			kill(f->pid, SIGKILL);
			tu_wait(f->pid, 5000);
		}
	}
	zmq_ctx_term(f->ctx);
	th_defset_destroy(&f->defs);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static void *dealer(fixture *f, const char *ep, const keypair *k)
{
	void *s = zmq_socket(f->ctx, ZMQ_DEALER);
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

/* Sends buf and waits up to ms for one reply (malloc'd); NULL on timeout. */
static uint8_t *request(void *s, const uint8_t *buf, size_t len, int ms, size_t *olen)
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
	memcpy(out, zmq_msg_data(&m), *olen);
	zmq_msg_close(&m);
	return out;
}

static int hello(void *s, th_welcome *w)
{
	th_hello h = {.agent = "it", .unit = "", .id = 1};
	uint8_t *buf, *rep;
	size_t len, rlen;
	th_wire_encode_hello(&h, &buf, &len);
	rep = request(s, buf, len, 3000, &rlen);
	free(buf);
	if (!rep)
		return -1;
	const char *why;
	int rc = th_wire_decode_welcome(rep, rlen, w, &why);
	free(rep);
	return rc;
}

/* A PL3 report of unit for 2021: one row (area 0, task T1) planned = done + a + b. */
static th_report *pl3(fixture *f, const char *unit, uint64_t rev, int64_t done, int64_t a, int64_t b)
{
	const th_def *d = th_defset_latest(f->defs, "PL3");
	th_report *r = th_report_new(unit, "PL3", d->version, "2021", rev, d->n_cols);
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

/* Submits one report; returns the decoded ack (caller frees) or fails. */
static void submit(fixture *f, void *s, th_report *r, th_ack *ack)
{
	uint8_t *buf, *rep;
	size_t len, rlen;
	static uint64_t id = 100;
	assert_int_equal(th_wire_encode_submit(++id, &r, 1, f->defs, &buf, &len), 0);
	rep = request(s, buf, len, 5000, &rlen);
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

static th_ack_status submit_status(fixture *f, void *s, th_report *r, int *code)
{
	th_ack a;
	submit(f, s, r, &a);
	th_ack_status st = a.results[0].status;
	if (code)
		*code = a.results[0].code;
	th_ack_free(&a);
	return st;
}

/* The "total" sum of column col of PL3 at unit, via the query socket; -1 when null. */
static int64_t query_total(fixture *f, const char *unit, const char *col, uint32_t *reported)
{
	void *q = dealer(f, f->query, &f->reader);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
#define S(x) (msgpack_pack_str(&pk, strlen(x)), msgpack_pack_str_body(&pk, x, strlen(x)))
	msgpack_pack_map(&pk, 7);
	S("v"); msgpack_pack_uint8(&pk, 1);
	S("t"); S("query");
	S("id"); msgpack_pack_uint8(&pk, 5);
	S("q"); S("node");
	S("appendix"); S("PL3");
	S("period"); S("2021");
	S("unit"); S(unit);
#undef S
	size_t rlen;
	uint8_t *rep = request(q, (uint8_t *)sb.data, sb.size, 5000, &rlen);
	msgpack_sbuffer_destroy(&sb);
	zmq_close(q);
	assert_non_null(rep);
	/* find node.total and node.reported */
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)rep, rlen, NULL), MSGPACK_UNPACK_SUCCESS);
	const msgpack_object_map *m = &u.data.via.map;
	const msgpack_object *node = NULL;
	for (uint32_t i = 0; i < m->size; i++)
		if (m->ptr[i].key.via.str.size == 4 && !memcmp(m->ptr[i].key.via.str.ptr, "node", 4))
			node = &m->ptr[i].val;
	assert_non_null(node);
	const th_def *d = th_defset_latest(f->defs, "PL3");
	const th_column *c = &d->cols[th_def_column(d, col)];
	int64_t sum = 0, n = 0;
	for (uint32_t i = 0; i < node->via.map.size; i++) {
		const msgpack_object_kv *kv = &node->via.map.ptr[i];
		if (kv->key.via.str.size == 5 && !memcmp(kv->key.via.str.ptr, "total", 5)) {
			sum = kv->val.via.array.ptr[c->slot].via.i64;
			n = kv->val.via.array.ptr[c->slot + 1].via.i64;
		}
		if (reported && kv->key.via.str.size == 8 && !memcmp(kv->key.via.str.ptr, "reported", 8))
			*reported = (uint32_t)kv->val.via.u64;
	}
	msgpack_unpacked_destroy(&u);
	free(rep);
	return n ? sum : -1;
}


/* Sends a query q (appendix PL3, period 2021, unit) and returns the reply unpacked. */
static void query_raw(fixture *f, const char *q, const char *unit, msgpack_unpacked *u, char **raw)
{
	void *s = dealer(f, f->query, &f->reader);
	msgpack_sbuffer sb;
	msgpack_sbuffer_init(&sb);
	msgpack_packer pk;
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
#define S(x) (msgpack_pack_str(&pk, strlen(x)), msgpack_pack_str_body(&pk, x, strlen(x)))
	msgpack_pack_map(&pk, 7);
	S("v"); msgpack_pack_uint8(&pk, 1);
	S("t"); S("query");
	S("id"); msgpack_pack_uint8(&pk, 6);
	S("q"); S(q);
	S("appendix"); S("PL3");
	S("period"); S("2021");
	S("unit"); S(unit);
#undef S
	size_t rlen;
	uint8_t *rep = request(s, (uint8_t *)sb.data, sb.size, 5000, &rlen);
	msgpack_sbuffer_destroy(&sb);
	zmq_close(s);
	assert_non_null(rep);
	msgpack_unpacked_init(u);
	assert_int_equal(msgpack_unpack_next(u, (const char *)rep, rlen, NULL), MSGPACK_UNPACK_SUCCESS);
	*raw = (char *)rep;
}

static const msgpack_object *field(const msgpack_object *map, const char *name)
{
	for (uint32_t i = 0; map->type == MSGPACK_OBJECT_MAP && i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(name) &&
		    !memcmp(kv->key.via.str.ptr, name, kv->key.via.str.size))
			return &kv->val;
	}
	return NULL;
}

static void report_and_history_queries(void **state)
{
	fixture *f = *state;
	void *s = dealer(f, f->ingest, &f->snv);
	th_report *a = pl3(f, "SNV", 60, 4, 1, 0), *b = pl3(f, "SNV", 61, 5, 0, 0);
	assert_int_equal(submit_status(f, s, a, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(submit_status(f, s, b, NULL), TH_ACK_ACCEPTED);
	msgpack_unpacked u;
	char *raw;
	query_raw(f, "history", "SNV", &u, &raw);
	const msgpack_object *revs = field(&u.data, "revisions");
	assert_non_null(revs);
	assert_int_equal(revs->via.array.size, 2);
	assert_int_equal(field(&revs->via.array.ptr[0], "rev")->via.u64, 60);
	assert_int_equal(field(&revs->via.array.ptr[1], "rev")->via.u64, 61);
	assert_true(field(&revs->via.array.ptr[1], "sender")->via.str.size > 0);
	msgpack_unpacked_destroy(&u);
	free(raw);
	query_raw(f, "report", "SNV", &u, &raw);
	const msgpack_object *rep = field(&u.data, "report");
	assert_non_null(rep);
	assert_int_equal(field(rep, "rev")->via.u64, 61);
	const msgpack_object *rows = field(rep, "rows");
	assert_int_equal(rows->via.array.size, 1);
	const th_def *d = th_defset_latest(f->defs, "PL3");
	const msgpack_object *done = &rows->via.array.ptr[0].via.array.ptr[th_def_column(d, "da_hoan_thanh")];
	assert_int_equal(done->via.i64, 5);
	msgpack_unpacked_destroy(&u);
	free(raw);
	query_raw(f, "report", "C2", &u, &raw);       /* nothing stored */
	assert_false(field(&u.data, "ok")->via.boolean);
	msgpack_unpacked_destroy(&u);
	free(raw);
	th_report_destroy(&a);
	th_report_destroy(&b);
	zmq_close(s);
}

/* --- cases ------------------------------------------------------------------------- */

static void hello_welcome(void **state)
{
	fixture *f = *state;
	void *s = dealer(f, f->ingest, &f->d1);
	th_welcome w;
	assert_int_equal(hello(s, &w), 0);
	assert_string_equal(w.unit, "D1");
	assert_int_equal(w.n_defs, 3);
	uint8_t zero[16] = {0};
	assert_memory_not_equal(w.store, zero, 16);
	th_welcome_free(&w);
	zmq_close(s);
}

static void dedup_rules(void **state)
{
	fixture *f = *state;
	void *s = dealer(f, f->ingest, &f->snv);
	th_report *r = pl3(f, "SNV", 10, 5, 1, 1);
	int code = 0;
	assert_int_equal(submit_status(f, s, r, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(submit_status(f, s, r, NULL), TH_ACK_DUPLICATE);
	th_report *c = pl3(f, "SNV", 10, 6, 1, 1);
	assert_int_equal(submit_status(f, s, c, &code), TH_ACK_REJECTED);
	assert_int_equal(code, TH_ECONFLICT);
	th_report *old = pl3(f, "SNV", 5, 9, 9, 9);
	assert_int_equal(submit_status(f, s, old, NULL), TH_ACK_STALE);
	assert_int_equal(query_total(f, "SNV", "da_hoan_thanh", NULL), 5);
	assert_int_equal(query_total(f, "R", "da_hoan_thanh", NULL), 5);
	th_report *newer = pl3(f, "SNV", 11, 2, 0, 0);
	assert_int_equal(submit_status(f, s, newer, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(query_total(f, "R", "da_hoan_thanh", NULL), 2);
	th_report_destroy(&r);
	th_report_destroy(&c);
	th_report_destroy(&old);
	th_report_destroy(&newer);
	zmq_close(s);
}

static void invalid_report_rejected_with_place(void **state)
{
	fixture *f = *state;
	void *s = dealer(f, f->ingest, &f->snv);
	th_report *r = pl3(f, "SNV", 20, 5, 1, 1);
	const th_def *d = th_defset_latest(f->defs, "PL3");
	th_report_cell(r, 0, (size_t)th_def_column(d, "da_hoan_thanh"))->i = 99;   /* breaks the rule */
	th_ack a;
	submit(f, s, r, &a);
	assert_int_equal(a.results[0].status, TH_ACK_REJECTED);
	assert_int_equal(a.results[0].code, TH_ERULE);
	assert_int_equal(a.results[0].row, 1);
	assert_non_null(a.results[0].column);
	th_ack_free(&a);
	assert_int_equal(query_total(f, "SNV", "da_hoan_thanh", NULL), -1);   /* nothing stored */
	th_report_destroy(&r);
	zmq_close(s);
}

static void scope_rules(void **state)
{
	fixture *f = *state;
	int code = 0;
	void *c1 = dealer(f, f->ingest, &f->c1);
	th_report *r = pl3(f, "C2", 1, 1, 0, 0);           /* a commune for its neighbour */
	assert_int_equal(submit_status(f, c1, r, &code), TH_ACK_REJECTED);
	assert_int_equal(code, TH_ESCOPE);
	th_report *up = pl3(f, "D1", 1, 1, 0, 0);          /* a commune for its district */
	assert_int_equal(submit_status(f, c1, up, &code), TH_ACK_REJECTED);
	assert_int_equal(code, TH_ESCOPE);
	void *d1 = dealer(f, f->ingest, &f->d1);
	assert_int_equal(submit_status(f, d1, r, NULL), TH_ACK_ACCEPTED);   /* district for its commune */
	void *rd = dealer(f, f->ingest, &f->reader);
	th_report *x = pl3(f, "C1", 1, 1, 0, 0);
	assert_int_equal(submit_status(f, rd, x, &code), TH_ACK_REJECTED);
	assert_int_equal(code, TH_EAUTH);
	uint32_t reported = 0;
	assert_int_equal(query_total(f, "D1", "da_hoan_thanh", &reported), 1);
	assert_int_equal(reported, 1);
	th_report_destroy(&r);
	th_report_destroy(&up);
	th_report_destroy(&x);
	zmq_close(c1);
	zmq_close(d1);
	zmq_close(rd);
}

static void unknown_key_refused(void **state)
{
	fixture *f = *state;
	keypair stranger;
	kp(&stranger);
	void *s = dealer(f, f->ingest, &stranger);
	th_welcome w;
	assert_int_not_equal(hello(s, &w), 0);   /* no welcome: refused at the handshake */
	zmq_close(s);
}

static void revoked_after_sighup(void **state)
{
	fixture *f = *state;
	void *s = dealer(f, f->ingest, &f->c1);
	th_welcome w;
	assert_int_equal(hello(s, &w), 0);
	th_welcome_free(&w);
	write_keys(f, 0);                 /* C1 removed */
	kill(f->pid, SIGHUP);
	usleep(500000);
	th_report *r = pl3(f, "C1", 1, 1, 0, 0);
	uint8_t *buf, *rep;
	size_t len, rlen;
	th_wire_encode_submit(1, &r, 1, f->defs, &buf, &len);
	rep = request(s, buf, len, 3000, &rlen);   /* same open connection */
	assert_non_null(rep);
	th_error_msg e;
	const char *why;
	assert_int_equal(th_wire_decode_error(rep, rlen, &e, &why), 0);
	assert_int_equal(e.code, TH_EAUTH);
	th_error_msg_free(&e);
	free(rep);
	free(buf);
	th_report_destroy(&r);
	zmq_close(s);
}

static void hostile_bytes(void **state)
{
	fixture *f = *state;
	void *s = dealer(f, f->ingest, &f->snv);
	const uint8_t garbage[][12] = {
		{0xc1, 0xff, 0x00},                                     /* never-used byte */
		{0xdd, 0xff, 0xff, 0xff, 0xff},                         /* huge array */
		{0x81, 0xa1, 'v', 0xcb, 0, 0, 0, 0, 0, 0, 0xf8, 0x7f}, /* NaN as version */
		{0x93, 0x01, 0x02, 0x03},                               /* array, not map */
	};
	size_t lens[] = {3, 5, 12, 4};
	for (int i = 0; i < 4; i++) {
		size_t rlen;
		uint8_t *rep = request(s, garbage[i], lens[i], 3000, &rlen);
		assert_non_null(rep);
		th_error_msg e;
		const char *why;
		assert_int_equal(th_wire_decode_error(rep, rlen, &e, &why), 0);
		assert_int_equal(e.code, TH_EPROTO);
		th_error_msg_free(&e);
		free(rep);
	}
	/* after the garbage, a valid report on the same connection is still accepted */
	th_report *r = pl3(f, "SNV", 30, 1, 0, 0);
	th_ack a;
	submit(f, s, r, &a);
	assert_int_equal(a.results[0].status, TH_ACK_ACCEPTED);
	th_ack_free(&a);
	/* still serving */
	th_welcome w;
	assert_int_equal(hello(s, &w), 0);
	th_welcome_free(&w);
	th_report_destroy(&r);
	zmq_close(s);
}

static void pub_prefix_terminated(void **state)
{
	fixture *f = *state;
	void *sub = zmq_socket(f->ctx, ZMQ_SUB);
	int linger = 0;
	zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, f->server.pub, 40);
	zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, f->reader.pub, 40);
	zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, f->reader.sec, 40);
	zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "L2\x1fSNV\x1f", 7);
	assert_int_equal(zmq_connect(sub, f->pubep), 0);
	usleep(300000);
	void *x = dealer(f, f->ingest, &f->snvx);
	th_report *rx = pl3(f, "SNVX", 1, 1, 0, 0);
	assert_int_equal(submit_status(f, x, rx, NULL), TH_ACK_ACCEPTED);
	void *s = dealer(f, f->ingest, &f->snv);
	th_report *r = pl3(f, "SNV", 40, 3, 0, 0);
	assert_int_equal(submit_status(f, s, r, NULL), TH_ACK_ACCEPTED);
	int got_snv = 0, got_other = 0;
	for (;;) {
		zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 1000) <= 0)
			break;
		char topic[256];
		int n = zmq_recv(sub, topic, sizeof topic - 1, 0);
		assert_true(n > 0);
		topic[n] = 0;
		char body[65536];
		zmq_recv(sub, body, sizeof body, 0);
		if (strncmp(topic, "L2\x1fSNV\x1fPL3\x1f" "2021\x1f", (size_t)n) == 0)
			got_snv++;
		else
			got_other++;
	}
	assert_int_equal(got_snv, 1);
	assert_int_equal(got_other, 0);
	th_report_destroy(&r);
	th_report_destroy(&rx);
	zmq_close(s);
	zmq_close(x);
	zmq_close(sub);
}

/* Drains sub for a second; counts messages whose topic equals want, and any other. */
static void drain_topics(void *sub, const char *want, int *same, int *other)
{
	*same = *other = 0;
	for (;;) {
		zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
		if (zmq_poll(&it, 1, 1000) <= 0)
			break;
		char topic[256];
		int n = zmq_recv(sub, topic, sizeof topic - 1, 0);
		assert_true(n > 0 && n < (int)sizeof topic);
		topic[n] = 0;
		int more = 0;
		size_t ml = sizeof more;
		zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &ml);
		assert_true(more);   /* a body frame follows every topic */
		char body[65536];
		assert_true(zmq_recv(sub, body, sizeof body, 0) > 0);
		if (strcmp(topic, want) == 0)
			(*same)++;
		else
			(*other)++;
	}
}

static void *level_sub(fixture *f, const char *prefix)
{
	void *sub = zmq_socket(f->ctx, ZMQ_SUB);
	int linger = 0;
	zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(sub, ZMQ_CURVE_SERVERKEY, f->server.pub, 40);
	zmq_setsockopt(sub, ZMQ_CURVE_PUBLICKEY, f->reader.pub, 40);
	zmq_setsockopt(sub, ZMQ_CURVE_SECRETKEY, f->reader.sec, 40);
	zmq_setsockopt(sub, ZMQ_SUBSCRIBE, prefix, strlen(prefix));
	assert_int_equal(zmq_connect(sub, f->pubep), 0);
	return sub;
}

/* A report for C1 changes C1 (level 3), D1 (level 2) and R (level 1): a subscriber to
 * one level gets exactly that level's changed node. */
static void pub_level_prefix(void **state)
{
	fixture *f = *state;
	void *l3 = level_sub(f, "L3\x1f"), *l2 = level_sub(f, "L2\x1f");
	usleep(300000);
	void *d1 = dealer(f, f->ingest, &f->d1);
	th_report *r = pl3(f, "C1", 7, 2, 0, 0);
	assert_int_equal(submit_status(f, d1, r, NULL), TH_ACK_ACCEPTED);
	int same = 0, other = 0;
	drain_topics(l3, "L3\x1f" "C1\x1fPL3\x1f" "2021\x1f", &same, &other);
	assert_int_equal(same, 1);
	assert_int_equal(other, 0);
	drain_topics(l2, "L2\x1f" "D1\x1fPL3\x1f" "2021\x1f", &same, &other);
	assert_int_equal(same, 1);
	assert_int_equal(other, 0);
	th_report_destroy(&r);
	zmq_close(d1);
	zmq_close(l3);
	zmq_close(l2);
}

/* One counter of the query socket's stats answer. */
static uint64_t query_stat(fixture *f, const char *name)
{
	void *q = dealer(f, f->query, &f->reader);
	static const uint8_t req[] = {0x84, 0xa1, 'v', 0x01, 0xa1, 't', 0xa5, 'q', 'u', 'e', 'r', 'y',
	                              0xa2, 'i', 'd', 0x09, 0xa1, 'q', 0xa5, 's', 't', 'a', 't', 's'};
	size_t rlen;
	uint8_t *rep = request(q, req, sizeof req, 5000, &rlen);
	zmq_close(q);
	assert_non_null(rep);
	msgpack_unpacked u;
	msgpack_unpacked_init(&u);
	assert_int_equal(msgpack_unpack_next(&u, (const char *)rep, rlen, NULL), MSGPACK_UNPACK_SUCCESS);
	int64_t v = -1;
	const msgpack_object_map *m = &u.data.via.map;
	for (uint32_t i = 0; i < m->size; i++) {
		if (m->ptr[i].key.via.str.size != 5 || memcmp(m->ptr[i].key.via.str.ptr, "stats", 5))
			continue;
		const msgpack_object_map *st = &m->ptr[i].val.via.map;
		for (uint32_t k = 0; k < st->size; k++)
			if (st->ptr[k].key.via.str.size == strlen(name) &&
			    !memcmp(st->ptr[k].key.via.str.ptr, name, strlen(name)))
				v = (int64_t)st->ptr[k].val.via.u64;
	}
	msgpack_unpacked_destroy(&u);
	free(rep);
	if (v < 0)
		fail_msg("stats has no %s", name);
	return (uint64_t)v;
}

/* The XPUB socket knows what is subscribed: with no subscriber nothing is
 * published; with one level's subscriber, exactly that level's node per report
 * (before, every changed node was read and encoded for nobody); when it leaves,
 * publishing stops again.  Subscriptions travel asynchronously, so the test
 * waits for them by sending revisions until the effect shows (bounded). */
static void pub_builds_only_what_is_subscribed(void **state)
{
	fixture *f = *state;
	void *d1 = dealer(f, f->ingest, &f->d1);
	uint64_t rev = 7;
	th_report *r = pl3(f, "C1", rev, 2, 0, 0);
	assert_int_equal(submit_status(f, d1, r, NULL), TH_ACK_ACCEPTED);
	th_report_destroy(&r);
	assert_int_equal(query_stat(f, "published"), 0);
	void *l2 = level_sub(f, "L2\x1f");
	int same = 0, other = 0;
	for (int tries = 0; tries < 20 && !same; tries++) {
		r = pl3(f, "C1", ++rev, 2, 0, 0);
		assert_int_equal(submit_status(f, d1, r, NULL), TH_ACK_ACCEPTED);
		th_report_destroy(&r);
		drain_topics(l2, "L2\x1f" "D1\x1fPL3\x1f" "2021\x1f", &same, &other);
		assert_int_equal(other, 0);
	}
	assert_int_equal(same, 1);
	uint64_t before = query_stat(f, "published");
	r = pl3(f, "C1", ++rev, 3, 0, 0);
	assert_int_equal(submit_status(f, d1, r, NULL), TH_ACK_ACCEPTED);
	th_report_destroy(&r);
	drain_topics(l2, "L2\x1f" "D1\x1fPL3\x1f" "2021\x1f", &same, &other);
	assert_int_equal(same, 1);
	assert_int_equal(other, 0);
	assert_int_equal(query_stat(f, "published"), before + 1);   /* not L1, not L3 */
	/* the subscriber leaves: a revision eventually publishes nothing */
	zmq_close(l2);
	int quiet = 0;
	for (int tries = 0; tries < 20 && !quiet; tries++) {
		usleep(200000);
		before = query_stat(f, "published");
		r = pl3(f, "C1", ++rev, 4, 0, 0);
		assert_int_equal(submit_status(f, d1, r, NULL), TH_ACK_ACCEPTED);
		th_report_destroy(&r);
		quiet = query_stat(f, "published") == before;
	}
	assert_true(quiet);
	zmq_close(d1);
}

static void acked_survives_sigkill(void **state)
{
	fixture *f = *state;
	void *s = dealer(f, f->ingest, &f->snv);
	th_report *r = pl3(f, "SNV", 50, 7, 1, 0);
	assert_int_equal(submit_status(f, s, r, NULL), TH_ACK_ACCEPTED);
	zmq_close(s);
	kill(f->pid, SIGKILL);
	tu_wait(f->pid, 5000);
	start(f);
	assert_int_equal(query_total(f, "SNV", "da_hoan_thanh", NULL), 7);
	s = dealer(f, f->ingest, &f->snv);
	assert_int_equal(submit_status(f, s, r, NULL), TH_ACK_DUPLICATE);
	th_report_destroy(&r);
	zmq_close(s);
}

static void sigterm_exits_cleanly(void **state)
{
	fixture *f = *state;
	kill(f->pid, SIGTERM);
	assert_int_equal(tu_wait(f->pid, 5000), 0);
	f->pid = 0;
}

static void keygen_and_check(void **state)
{
	fixture *f = *state;
	char prefix[4096], cmd[8192];
	snprintf(prefix, sizeof prefix, "%s/agent", f->dir);
	char *argv[] = {(char *)tu_bin("collector/tonghop-collector"), "keygen", prefix, NULL};
	assert_int_equal(tu_run(argv, "/dev/null"), 0);
	char key[4200];
	snprintf(key, sizeof key, "%s.key", prefix);
	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_not_equal(tu_run(argv, "/dev/null"), 0);   /* refuses to overwrite */
	/* --check on the fixture's configuration */
	snprintf(cmd, sizeof cmd,
	         "'%s' --check --db %s/store --units %s/units --keys %s/keys --server-key %s/server.key "
	         "--defs '%s' 2>&1",
	         tu_bin("collector/tonghop-collector"), f->dir, f->dir, f->dir, f->dir,
	         tu_src("schema/appendices"));
	int status;
	char *out = tu_capture(cmd, &status);
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "configuration OK"));
	free(out);
	/* a broken keys file: file:line and exit 3 */
	char bad[4200];
	snprintf(bad, sizeof bad, "%s/badkeys", f->dir);
	tu_write_file(bad, "# x\nnot-a-key SNV agent\n", 23);
	snprintf(cmd, sizeof cmd,
	         "'%s' --check --db %s/store --units %s/units --keys %s --server-key %s/server.key "
	         "--defs '%s' 2>&1",
	         tu_bin("collector/tonghop-collector"), f->dir, f->dir, bad, f->dir,
	         tu_src("schema/appendices"));
	out = tu_capture(cmd, &status);
	assert_int_equal(status, 3);
	assert_non_null(strstr(out, "badkeys:2:"));
	free(out);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(hello_welcome, setup, teardown),
		cmocka_unit_test_setup_teardown(dedup_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_report_rejected_with_place, setup, teardown),
		cmocka_unit_test_setup_teardown(scope_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(unknown_key_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(revoked_after_sighup, setup, teardown),
		cmocka_unit_test_setup_teardown(hostile_bytes, setup, teardown),
		cmocka_unit_test_setup_teardown(pub_prefix_terminated, setup, teardown),
		cmocka_unit_test_setup_teardown(pub_level_prefix, setup, teardown),
		cmocka_unit_test_setup_teardown(pub_builds_only_what_is_subscribed, setup, teardown),
		cmocka_unit_test_setup_teardown(acked_survives_sigkill, setup, teardown),
		cmocka_unit_test_setup_teardown(sigterm_exits_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(keygen_and_check, setup, teardown),
		cmocka_unit_test_setup_teardown(report_and_history_queries, setup, teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

/* test_keys.c -- the authorised-keys file (collector/keys.c, KEYS.md): parsing, every
 * problem as file:line, and the ZAP handler: what it admits, and a reload that revokes
 * a key at once (the handler answers the ZAP protocol, RFC 27, as libzmq asks it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "keys.h"
#include "testutil.h"

typedef struct {
	char pub[41], sec[41];
} kp;

static kp newkey(void)
{
	kp k;
	assert_int_equal(zmq_curve_keypair(k.pub, k.sec), 0);
	return k;
}

static char *write_keys(const char *text)
{
	char *dir = tu_tmpdir();
	char path[4200];
	snprintf(path, sizeof path, "%s/keys", dir);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
	return dir;
}

static th_keys *load(const char *dir, int want_rc, th_diag *dg)
{
	char path[4200];
	snprintf(path, sizeof path, "%s/keys", dir);
	th_keys *k = NULL;
	assert_int_equal(th_keys_load(path, &k, dg), want_rc);
	return k;
}

static void file_parsed(void **state)
{
	(void)state;
	kp a = newkey(), r = newkey(), m = newkey();
	char text[1024];
	snprintf(text, sizeof text,
	         "# authorised keys\n\n"
	         "%s SNV agent Sở Nội vụ, máy chủ 2\n"
	         "   %s R reader\n"
	         "%s R admin\t\n", a.pub, r.pub, m.pub);
	char *dir = write_keys(text);
	th_diag *dg = th_diag_new();
	th_keys *k = load(dir, 0, dg);
	assert_int_equal(th_diag_count(dg), 0);
	assert_int_equal(th_keys_count(k), 3);
	const th_key *e = th_keys_find(k, a.pub);
	assert_non_null(e);
	assert_string_equal(e->unit, "SNV");
	assert_int_equal(e->role, TH_ROLE_AGENT);
	assert_string_equal(e->comment, "Sở Nội vụ, máy chủ 2");
	e = th_keys_find(k, r.pub);
	assert_int_equal(e->role, TH_ROLE_READER);
	assert_string_equal(e->comment, "");
	e = th_keys_find(k, m.pub);
	assert_int_equal(e->role, TH_ROLE_ADMIN);
	assert_string_equal(th_role_name(e->role), "admin");
	assert_null(th_keys_find(k, newkey().pub));
	th_keys_destroy(&k);
	assert_null(k);
	th_diag_destroy(&dg);
	tu_rmrf(dir);
}

/* Every bad line is reported with its line, and nothing is loaded. */
static void problems_named_by_line(void **state)
{
	(void)state;
	kp a = newkey(), b = newkey();
	char text[2048];
	snprintf(text, sizeof text,
	         "%s SNV agent\n"                    /* 1: fine */
	         "%s SNV\n"                          /* 2: no role */
	         "notakey SNV agent\n"               /* 3 */
	         "%s SNV boss\n"                     /* 4: unknown role */
	         "%s %s agent\n"                     /* 5: unit too long */
	         "%s D1 agent\n",                    /* 6: listed twice */
	         a.pub, b.pub, b.pub, b.pub,
	         "U123456789012345678901234567890123456789012345678901234567890123456789", a.pub);
	char *dir = write_keys(text);
	th_diag *dg = th_diag_new();
	th_keys *k = load(dir, TH_ESYNTAX, dg);
	assert_null(k);
	static const struct { long line; int code; const char *says; } want[] = {
		{2, TH_ESYNTAX, "expected"}, {3, TH_EKEY, "Z85"}, {4, TH_ESYNTAX, "boss"},
		{5, TH_ESYNTAX, "too long"}, {6, TH_EDUPKEY, "twice"}};
	assert_int_equal(th_diag_count(dg), 5);
	for (size_t i = 0; i < 5; i++) {
		const th_diag_entry *e = th_diag_at(dg, i);
		assert_int_equal(e->line, want[i].line);
		assert_int_equal(e->code, want[i].code);
		assert_non_null(strstr(e->msg, want[i].says));
		char where[4300];
		snprintf(where, sizeof where, "%s/keys:%ld:", dir, want[i].line);
		assert_non_null(strstr(th_diag_text(dg, i), where));
	}
	th_diag_clear(dg);
	/* no file at all */
	char path[4200];
	snprintf(path, sizeof path, "%s/none", dir);
	assert_int_equal(th_keys_load(path, &k, dg), TH_EIO);
	assert_non_null(strstr(th_diag_text(dg, 0), "cannot open"));
	th_diag_destroy(&dg);
	tu_rmrf(dir);
}

/* Sends a ZAP request for a CURVE client with public key pub (Z85) and returns the
 * status code; *user gets the user id. */
static int zap_ask(void *ctx, const char *pub, char *user, size_t cap)
{
	void *s = zmq_socket(ctx, ZMQ_REQ);
	int linger = 0, timeout = 5000;
	zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
	zmq_setsockopt(s, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
	assert_int_equal(zmq_connect(s, "inproc://zeromq.zap.01"), 0);
	uint8_t key[32];
	assert_non_null(zmq_z85_decode(key, pub));
	const char *frames[] = {"1.0", "7", "tonghop", "127.0.0.1", "", "CURVE"};
	for (int i = 0; i < 6; i++)
		zmq_send(s, frames[i], strlen(frames[i]), ZMQ_SNDMORE);
	zmq_send(s, key, 32, 0);
	char f[6][256];
	int n[6];
	for (int i = 0; i < 6; i++) {
		n[i] = zmq_recv(s, f[i], sizeof f[i] - 1, 0);
		assert_true(n[i] >= 0);
		f[i][n[i]] = 0;
	}
	zmq_close(s);
	assert_string_equal(f[0], "1.0");
	assert_string_equal(f[1], "7");
	snprintf(user, cap, "%s", f[4]);
	return atoi(f[2]);
}

static void zap_admits_and_reload_revokes(void **state)
{
	(void)state;
	kp a = newkey(), b = newkey();
	char text[512];
	snprintf(text, sizeof text, "%s SNV agent first\n", a.pub);
	char *dir = write_keys(text);
	th_keys *k = load(dir, 0, NULL);
	void *ctx = zmq_ctx_new();
	th_zap *z = NULL;
	assert_int_equal(th_zap_start(ctx, k, &z), 0);
	char user[256];
	assert_int_equal(zap_ask(ctx, a.pub, user, sizeof user), 200);
	assert_string_equal(user, a.pub);   /* the user id is the key */
	assert_int_equal(zap_ask(ctx, b.pub, user, sizeof user), 400);
	assert_string_equal(user, "");
	th_key e;
	assert_int_equal(th_zap_lookup(z, a.pub, &e), 0);
	assert_string_equal(e.unit, "SNV");
	assert_string_equal(e.comment, "first");
	/* a reload without a, with b: a is refused at its next handshake and lookup */
	snprintf(text, sizeof text, "%s D1 reader second\n", b.pub);
	char path[4200];
	snprintf(path, sizeof path, "%s/keys", dir);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
	th_zap_set_keys(z, load(dir, 0, NULL));
	assert_int_equal(th_zap_lookup(z, a.pub, &e), TH_ENOTFOUND);
	assert_int_equal(zap_ask(ctx, a.pub, user, sizeof user), 400);
	assert_int_equal(zap_ask(ctx, b.pub, user, sizeof user), 200);
	assert_int_equal(th_zap_lookup(z, b.pub, &e), 0);
	assert_int_equal(e.role, TH_ROLE_READER);
	zmq_ctx_shutdown(ctx);
	th_zap_join(&z);
	assert_null(z);
	zmq_ctx_term(ctx);
	tu_rmrf(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(file_parsed),
		cmocka_unit_test(problems_named_by_line),
		cmocka_unit_test(zap_admits_and_reload_revokes),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

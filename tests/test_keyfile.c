/* test_keyfile.c -- CURVE key files: reading, generating, CURVE set-up (common/th_keyfile.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

#include "testutil.h"
#include "th_keyfile.h"

static void write_text(const char *dir, const char *name, const char *text, char *path, size_t cap)
{
	snprintf(path, cap, "%s/%s", dir, name);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

static void generate_and_read(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	char prefix[4200], path[4300], pub[TH_Z85_LEN + 1], pub2[TH_Z85_LEN + 1], sec[TH_Z85_LEN + 1];
	const char *why = NULL;
	snprintf(prefix, sizeof prefix, "%s/agent", dir);
	assert_int_equal(th_keyfile_generate(prefix, pub, &why), 0);
	assert_true(th_z85_key_ok(pub));
	snprintf(path, sizeof path, "%s.key", prefix);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(th_keyfile_read(path, pub2, sec, &why), 0);
	assert_string_equal(pub, pub2);
	/* the secret key is the public key's partner */
	char derived[TH_Z85_LEN + 1];
	assert_int_equal(zmq_curve_public(derived, sec), 0);
	assert_string_equal(derived, pub);
	snprintf(path, sizeof path, "%s.pub", prefix);
	memset(pub2, 0, sizeof pub2);
	assert_int_equal(th_keyfile_read(path, pub2, NULL, &why), 0);
	assert_string_equal(pub, pub2);
	/* a public-key file is not a keypair */
	assert_int_equal(th_keyfile_read(path, pub2, sec, &why), TH_EKEY);
	assert_non_null(strstr(why, "secret"));
	/* never overwrites a keypair */
	assert_int_equal(th_keyfile_generate(prefix, pub2, &why), TH_EIO);
	assert_non_null(strstr(why, "exists already"));
	tu_rmrf(dir);
}

static void accepted_forms(void **state)
{
	(void)state;
	char pub[TH_Z85_LEN + 1], sec[TH_Z85_LEN + 1];
	assert_int_equal(zmq_curve_keypair(pub, sec), 0);
	char *dir = tu_tmpdir();
	char path[4200], text[512], rp[TH_Z85_LEN + 1], rs[TH_Z85_LEN + 1];
	const char *why;
	/* bare lines: public first, secret second */
	snprintf(text, sizeof text, "# an older agent's file\n%s\n  %s  \n", pub, sec);
	write_text(dir, "bare.key", text, path, sizeof path);
	assert_int_equal(th_keyfile_read(path, rp, rs, &why), 0);
	assert_string_equal(rp, pub);
	assert_string_equal(rs, sec);
	/* labels in any order, "=" and quotes */
	snprintf(text, sizeof text, "secret = \"%s\"\npublic\t%s\n", sec, pub);
	write_text(dir, "labelled.key", text, path, sizeof path);
	memset(rp, 0, sizeof rp);
	assert_int_equal(th_keyfile_read(path, rp, rs, &why), 0);
	assert_string_equal(rp, pub);
	assert_string_equal(rs, sec);
	tu_rmrf(dir);
}

static void refused(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	char path[4200], rp[TH_Z85_LEN + 1] = "untouched", rs[TH_Z85_LEN + 1];
	const char *why;
	write_text(dir, "short.key", "public abc\n", path, sizeof path);
	assert_int_equal(th_keyfile_read(path, rp, NULL, &why), TH_EKEY);
	assert_non_null(strstr(why, "not a 40-character Z85 key"));
	assert_string_equal(rp, "untouched");   /* written only on success */
	/* 40 characters outside the Z85 alphabet */
	write_text(dir, "bad.key", "public 0123456789012345678901234567890123456,,,\n", path, sizeof path);
	assert_int_equal(th_keyfile_read(path, rp, NULL, &why), TH_EKEY);
	write_text(dir, "empty.key", "# nothing\n\n", path, sizeof path);
	assert_int_equal(th_keyfile_read(path, rp, rs, &why), TH_EKEY);
	snprintf(path, sizeof path, "%s/none.key", dir);
	assert_int_equal(th_keyfile_read(path, rp, NULL, &why), TH_EIO);
	assert_non_null(strstr(why, "does not exist"));
	tu_rmrf(dir);
}

static void curve_client_from_files(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	char cp[4200], sp[4200], pub[TH_Z85_LEN + 1], spub[TH_Z85_LEN + 1], why[512];
	const char *w;
	snprintf(cp, sizeof cp, "%s/client", dir);
	snprintf(sp, sizeof sp, "%s/server", dir);
	assert_int_equal(th_keyfile_generate(cp, pub, &w), 0);
	assert_int_equal(th_keyfile_generate(sp, spub, &w), 0);
	void *ctx = zmq_ctx_new();
	void *s = zmq_socket(ctx, ZMQ_DEALER);
	char kf[4300], skf[4300];
	snprintf(kf, sizeof kf, "%s.key", cp);
	snprintf(skf, sizeof skf, "%s.pub", sp);
	assert_int_equal(th_keyfile_curve_client(s, skf, kf, why, sizeof why), 0);
	char got[TH_Z85_LEN + 1];
	size_t gl = sizeof got;
	assert_int_equal(zmq_getsockopt(s, ZMQ_CURVE_SERVERKEY, got, &gl), 0);
	assert_string_equal(got, spub);
	gl = sizeof got;
	assert_int_equal(zmq_getsockopt(s, ZMQ_CURVE_PUBLICKEY, got, &gl), 0);
	assert_string_equal(got, pub);
	/* the server's .pub given as the client's keypair: named in the message */
	assert_int_equal(th_keyfile_curve_client(s, skf, skf, why, sizeof why), TH_EKEY);
	assert_non_null(strstr(why, "server.pub"));
	zmq_close(s);
	zmq_ctx_term(ctx);
	tu_rmrf(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(generate_and_read),
		cmocka_unit_test(accepted_forms),
		cmocka_unit_test(refused),
		cmocka_unit_test(curve_client_from_files),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

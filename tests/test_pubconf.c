/* test_pubconf.c -- tonghop-publish's settings (publisher/pubconf.h): one table
 * for the options and the --config lines, ranges, defaults, the agent's
 * options and the retention derived from them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "pubconf.h"
#include "testutil.h"

static void names_values_ranges(void **state)
{
	(void)state;
	th_pubconf c;
	th_pubconf_init(&c);
	assert_true(c.timeout == 60);
	assert_int_equal(th_pubconf_set(&c, "server_key", "/k.pub"), 0);   /* '_' = '-' */
	assert_string_equal(c.server_key, "/k.pub");
	assert_int_equal(th_pubconf_set(&c, "server-key", "/other.pub"), 0);
	assert_string_equal(c.server_key, "/other.pub");
	assert_int_equal(th_pubconf_set(&c, "insecure", "yes"), 0);
	assert_int_equal(c.insecure, 1);
	assert_int_equal(th_pubconf_set(&c, "insecure", "off"), 0);
	assert_int_equal(c.insecure, 0);
	assert_int_equal(th_pubconf_set(&c, "polling", "1"), 0);
	assert_int_equal(c.force_poll, 1);
	assert_int_equal(th_pubconf_set(&c, "poll", "5"), 0);
	assert_int_equal(c.poll_s, 5);
	/* out of range or not a number: refused, the old value kept */
	assert_int_equal(th_pubconf_set(&c, "poll", "0"), TH_EINVAL);
	assert_int_equal(th_pubconf_set(&c, "poll", "3601"), TH_EINVAL);
	assert_int_equal(th_pubconf_set(&c, "poll", "5s"), TH_EINVAL);
	assert_int_equal(c.poll_s, 5);
	assert_int_equal(th_pubconf_set(&c, "timeout", "-1"), TH_EINVAL);
	assert_int_equal(th_pubconf_set(&c, "timeout", "2.5"), 0);
	assert_true(c.timeout == 2.5);
	assert_int_equal(th_pubconf_set(&c, "history_days", "0"), 0);
	assert_int_equal(c.history_days, 0);
	assert_int_equal(th_pubconf_set(&c, "history-revs", "x"), TH_EINVAL);
	assert_int_equal(c.history_revs, -1);
	assert_int_equal(th_pubconf_set(&c, "quiet-ms", "600001"), TH_EINVAL);
	assert_int_equal(th_pubconf_set(&c, "colector", "tcp://x:1"), TH_ENOTFOUND);
	assert_int_equal(th_pubconf_set(&c, "a-name-longer-than-any-option-we-have", "1"), TH_ENOTFOUND);
	/* defaults fill what is unset only */
	assert_int_equal(th_pubconf_set(&c, "outbox", "/var/lib/tonghop/outbox"), 0);
	assert_int_equal(th_pubconf_finish(&c), 0);
	assert_string_equal(c.outbox, "/var/lib/tonghop/outbox");
	assert_string_equal(c.collector, "tcp://127.0.0.1:7701");
	assert_int_equal(c.poll_s, 5);
	assert_int_equal(c.quiet_ms, 500);
	th_ob_retention rt;
	th_pubconf_retention(&c, &rt);
	assert_int_equal(rt.days, 0);
	assert_int_equal(rt.revs, TH_OB_HISTORY_REVS);
	th_pubconf_free(&c);
}

/* A --config file: the shared grammar (';' and '#' comments, bare flags), every
 * bad line reported with its number, the good ones still taken. */
static void config_file(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	char path[4200];
	snprintf(path, sizeof path, "%s/publish.conf", dir);
	static const char text[] = "; the agent of SNV\n"
	                           "# comment\n"
	                           "unit = SNV\n"
	                           "insecure\n"
	                           "poll = 0\n"
	                           "colector = tcp://x:1\n"
	                           "drop = /srv/drop#1\n";
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
	th_pubconf c;
	th_pubconf_init(&c);
	th_diag *d = th_diag_new();
	assert_int_equal(th_pubconf_load(&c, path, d), TH_ESYNTAX);
	assert_int_equal(th_diag_count(d), 2);
	char needle[4300];
	snprintf(needle, sizeof needle, "%s:5: ", path);
	assert_non_null(strstr(th_diag_text(d, 0), needle));
	snprintf(needle, sizeof needle, "%s:6: ", path);
	assert_non_null(strstr(th_diag_text(d, 1), needle));
	assert_string_equal(c.unit, "SNV");
	assert_int_equal(c.insecure, 1);
	assert_string_equal(c.drop, "/srv/drop#1");   /* no inline comments */
	th_diag_destroy(&d);
	th_pubconf_free(&c);
	tu_rmrf(dir);
}

/* The agent's options: the keys named when missing or unreadable. */
static void agent_options(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	th_pubconf c;
	th_pubconf_init(&c);
	assert_int_equal(th_pubconf_finish(&c), 0);
	th_agent_opts o;
	char why[600];
	assert_int_equal(th_pubconf_agent_opts(&c, &o, why, sizeof why), TH_EINVAL);
	assert_non_null(strstr(why, "--key FILE and --server-key FILE are required"));
	char key[4300], pub[4300], bad[4300], text[200], kp[41], ks[41], sp[41], ss[41];
	assert_int_equal(zmq_curve_keypair(kp, ks), 0);
	assert_int_equal(zmq_curve_keypair(sp, ss), 0);
	snprintf(key, sizeof key, "%s/agent.key", dir);
	snprintf(pub, sizeof pub, "%s/collector.pub", dir);
	snprintf(bad, sizeof bad, "%s/bad.pub", dir);
	snprintf(text, sizeof text, "public %s\nsecret %s\n", kp, ks);
	assert_int_equal(tu_write_file(key, text, strlen(text)), 0);
	snprintf(text, sizeof text, "public %s\n", sp);
	assert_int_equal(tu_write_file(pub, text, strlen(text)), 0);
	assert_int_equal(tu_write_file(bad, "public short\n", 13), 0);
	th_pubconf_set(&c, "key", key);
	th_pubconf_set(&c, "server-key", bad);
	assert_true(th_pubconf_agent_opts(&c, &o, why, sizeof why) < 0);
	assert_non_null(strstr(why, bad));
	th_pubconf_set(&c, "server-key", pub);
	assert_int_equal(th_pubconf_agent_opts(&c, &o, why, sizeof why), 0);
	assert_string_equal(o.public_key, kp);
	assert_string_equal(o.secret_key, ks);
	assert_string_equal(o.server_key, sp);
	assert_string_equal(o.endpoint, "tcp://127.0.0.1:7701");
	assert_int_equal(o.insecure, 0);
	/* insecure needs no keys */
	th_pubconf_set(&c, "key", "/nonexistent");
	th_pubconf_set(&c, "insecure", "yes");
	assert_int_equal(th_pubconf_agent_opts(&c, &o, why, sizeof why), 0);
	assert_int_equal(o.insecure, 1);
	th_pubconf_free(&c);
	tu_rmrf(dir);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(names_values_ranges),
		cmocka_unit_test(config_file),
		cmocka_unit_test(agent_options),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

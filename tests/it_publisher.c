/* it_publisher.c -- tonghop-publish against a real tonghop-collector on
 * loopback: delivery, crashes of either side, validation, rejections,
 * revisions, a restored collector store, CURVE scope and refusals,
 * withdrawals, status and retention (the drop folder: it_drop.c). */
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
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "outbox.h"
#include "outbox_fixture.h"
#include "publish_fixture.h"
#include "testutil.h"
#include "th_csv.h"

typedef pf_fx fx;

/* --- cases ----------------------------------------------------------------------- */

/* The collector is down: send keeps the report (exit 3); a second send of the
 * same file, with the collector starting meanwhile, delivers it once. */
static void send_collector_down_then_up(void **state)
{
	fx *f = *state;
	char file[4200];
	pf_one_file(f, "P0101", NULL, 1, 0, file);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "1", file, NULL), 3);
	char *js = pf_status_json(f);
	char *pending = pf_json_section(js, "pending");
	assert_int_equal(pf_count_str(pending, "\"unit\": \"P0101\""), 1);
	free(pending);
	free(js);
	char *extra[] = {"send", "--defs", (char *)pf_defs_dir(), "--timeout", "60", file, NULL};
	f->agent = pf_pub_spawn(f, extra);
	pf_msleep(1500);   /* the agent is retrying against nothing */
	pf_coll_start(f);
	assert_int_equal(tu_wait(f->agent, 60000), 0);
	f->agent = 0;
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "already queued"));   /* same rev, not a new one */
	free(log);
	js = pf_status_json(f);
	pending = pf_json_section(js, "pending");
	char *acked = pf_json_section(js, "acked");
	assert_int_equal(pf_count_str(pending, "\"unit\""), 0);
	assert_int_equal(pf_count_str(acked, "\"state\": \"accepted\""), 1);
	free(pending);
	free(acked);
	free(js);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, file, 1), 1);
}

/* Many files; the agent is killed -9 at some point of its send; a second send
 * of the same files ends with each report stored exactly once. */
static void kill9_agent_mid_send(void **state)
{
	fx *f = *state;
	pf_gen(f, f->files, NULL, 7, 0);
	static char paths[PF_MAXF][4200];
	int n = pf_list_files(f->files, paths);
	assert_true(n >= 5);
	pf_coll_start(f);
	char *extra[PF_MAXF + 8] = {"send", "--defs", (char *)pf_defs_dir(), "--timeout", "60"};
	int k = 5;
	for (int i = 0; i < n; i++)
		extra[k++] = paths[i];
	extra[k] = NULL;
	for (int delay = 5; delay <= 80; delay *= 4) {
		f->agent = pf_pub_spawn(f, extra);
		pf_msleep(delay);
		kill(f->agent, SIGKILL);
		tu_wait(f->agent, 5000);
		f->agent = 0;
	}
	f->agent = pf_pub_spawn(f, extra);
	assert_int_equal(tu_wait(f->agent, 60000), 0);
	f->agent = 0;
	pf_coll_stop(f);
	for (int i = 0; i < n; i++)
		assert_int_equal(pf_store_check(f, paths[i], 1), 1);
}

/* The collector is killed -9 while the agent sends; once restarted, every
 * report is stored exactly once. */
static void kill9_collector_mid_send(void **state)
{
	fx *f = *state;
	pf_gen(f, f->files, NULL, 9, 0);
	static char paths[PF_MAXF][4200];
	int n = pf_list_files(f->files, paths);
	assert_true(n >= 5);
	pf_coll_start(f);
	char *extra[PF_MAXF + 8] = {"send", "--defs", (char *)pf_defs_dir(), "--timeout", "90"};
	int k = 5;
	for (int i = 0; i < n; i++)
		extra[k++] = paths[i];
	extra[k] = NULL;
	f->agent = pf_pub_spawn(f, extra);
	pf_msleep(30);
	pf_kill_wait(&f->coll, SIGKILL);
	pf_msleep(500);
	pf_coll_start(f);
	assert_int_equal(tu_wait(f->agent, 90000), 0);
	f->agent = 0;
	pf_coll_stop(f);
	for (int i = 0; i < n; i++)
		assert_int_equal(pf_store_check(f, paths[i], 1), 1);
}

/* A file with several errors: nothing is queued, every problem is printed as
 * file:line: ..., exit 4. */
static void invalid_file_not_sent(void **state)
{
	fx *f = *state;
	char good[4200], bad[4300];
	pf_one_file(f, "Q01", "PL1", 3, 0, good);
	/* three bad cells in its one row */
	static const char bad_text[] = "#appendix: PL1\n#version: 1\n#unit: Q01\n#period: 2021\n"
	                               "co_ke_hoach_cchc,nhiem_vu_ke_hoach,nhiem_vu_hoan_thanh\n"
	                               "maybe,12a,1/2\n";
	snprintf(bad, sizeof bad, "%s/bad.csv", f->dir);
	assert_int_equal(tu_write_file(bad, bad_text, strlen(bad_text)), 0);
	pf_coll_start(f);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "10", good, bad, NULL), 4);
	char *log = pf_read_log(f);
	char needle[4400];
	snprintf(needle, sizeof needle, "%s:", bad);
	assert_true(pf_count_str(log, needle) >= 3);   /* all problems, each with its line */
	snprintf(needle, sizeof needle, "%s:6:", bad);
	assert_non_null(strstr(log, needle));
	assert_non_null(strstr(log, "nothing was sent"));
	free(log);
	char *js = pf_status_json(f);
	assert_int_equal(pf_count_str(js, "\"unit\""), 0);   /* not even the good file */
	free(js);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, good, 0), 0);
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
	pf_one_file(f, "P0102", NULL, 4, 0, file);
	snprintf(bad, sizeof bad, "%s/unknown-unit.csv", f->dir);
	retarget(file, "P0102", "ZZ999", bad);
	pf_coll_start(f);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", bad, NULL), 1);
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "rejected"));
	free(log);
	char *js = pf_status_json(f);
	char *rej = pf_json_section(js, "rejected");
	assert_int_equal(pf_count_str(rej, "\"unit\": \"ZZ999\""), 1);
	assert_null(strstr(rej, "\"message\": \"\""));   /* a reason is there */
	char *pending = pf_json_section(js, "pending");
	assert_int_equal(pf_count_str(pending, "\"unit\""), 0);
	free(pending);
	free(rej);
	free(js);
}

/* A corrected file (new content, same key) supersedes the first one. */
static void corrected_file_supersedes(void **state)
{
	fx *f = *state;
	char a[4200], b[4200];
	pf_one_file(f, "SNV", "PL1", 11, 0, a);
	pf_one_file(f, "SNV", "PL1", 11, 1, b);
	uint8_t ha[TH_HASH_LEN], hb[TH_HASH_LEN];
	pf_file_hash(a, ha, NULL, NULL, NULL);
	pf_file_hash(b, hb, NULL, NULL, NULL);
	assert_memory_not_equal(ha, hb, TH_HASH_LEN);
	pf_coll_start(f);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", a, NULL), 0);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", b, NULL), 0);
	/* the same corrected file again: no new revision */
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", b, NULL), 0);
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "already delivered"));
	free(log);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, b, 1), 2);
}

/* An older file dropped again after a newer one: the newer stays current
 * (the agent recognises old content by its hash and does not re-stamp it);
 * --force makes the old content current on purpose. */
static void older_file_after_newer(void **state)
{
	fx *f = *state;
	char a[4200], b[4200];
	pf_one_file(f, "Q01", "PL1", 12, 0, a);
	pf_one_file(f, "Q01", "PL1", 12, 1, b);
	pf_coll_start(f);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", a, NULL), 0);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", b, NULL), 0);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", a, NULL), 1);
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "superseded"));
	free(log);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, b, 1), 2);
	pf_coll_start(f);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", "--force", a, NULL), 0);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, a, 1), 3);
}






/* The collector comes back with another store (restored from an empty
 * backup): the agent sends its acknowledged reports again. */
static void store_change_resends(void **state)
{
	fx *f = *state;
	char a[4200], b[4200];
	pf_one_file(f, "P0101", NULL, 31, 0, a);
	pf_one_file(f, "P0102", NULL, 31, 0, b);
	pf_coll_start(f);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", a, NULL), 0);
	pf_coll_stop(f);
	char moved[4300];
	snprintf(moved, sizeof moved, "%s/db-old", f->dir);
	assert_int_equal(rename(f->db, moved), 0);
	pf_coll_start(f);
	assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "30", b, NULL), 0);
	/* the resend of a goes with b or right after it */
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "store"));
	free(log);
	for (int i = 0; i < 100; i++) {
		char *js = pf_status_json(f);
		char *p = pf_json_section(js, "pending");
		int n = pf_count_str(p, "\"unit\"");
		free(p);
		free(js);
		if (!n)
			break;
		f->agent = 0;
		assert_int_equal(pf_pub(f, "send", "--defs", pf_defs_dir(), "--timeout", "5", b, NULL), 0);
	}
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, a, 1), 1);
	assert_int_equal(pf_store_check(f, b, 1), 1);
}

/* Without --defs the agent takes the definitions from the collector's
 * welcome and caches them in the outbox: later files are validated offline. */
static void defs_cached_from_welcome(void **state)
{
	fx *f = *state;
	char a[4200], b[4200];
	pf_one_file(f, "SNV", NULL, 41, 0, a);
	pf_one_file(f, "Q01", NULL, 41, 0, b);
	/* nothing cached and no collector: nothing can be validated or queued */
	assert_int_equal(pf_pub(f, "send", "--timeout", "1", a, NULL), 3);
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "no definitions"));
	free(log);
	pf_coll_start(f);
	assert_int_equal(pf_pub(f, "send", "--timeout", "30", a, NULL), 0);
	pf_coll_stop(f);
	/* offline: validated with the cached definitions, queued, exit 3 */
	assert_int_equal(pf_pub(f, "send", "--timeout", "1", b, NULL), 3);
	log = pf_read_log(f);
	assert_non_null(strstr(log, "queued as rev"));
	free(log);
	pf_coll_start(f);
	assert_int_equal(pf_pub(f, "send", "--timeout", "30", b, NULL), 0);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, a, 1), 1);
	assert_int_equal(pf_store_check(f, b, 1), 1);
}

/* A CURVE server whose ZAP handler refuses every key: send says so and
 * exits 5 instead of waiting for its timeout. */
static void refused_key_exit5(void **state)
{
	fx *f = *state;
	char file[4200];
	pf_one_file(f, "P0101", NULL, 51, 0, file);
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
	                (char *)pf_defs_dir(), "--timeout", "30", file, NULL};
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
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "refused this key"));
	free(log);
	/* the report is kept for when the key is registered */
	char *js = pf_status_json(f);
	char *pending = pf_json_section(js, "pending");
	assert_int_equal(pf_count_str(pending, "\"unit\": \"P0101\""), 1);
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
	int n = pf_gen(f, dir, NULL, 61, 0);
	static char paths[PF_MAXF][4200];
	assert_int_equal(pf_list_files(dir, paths), n);
	char *argv[PF_MAXF + 16];
	int k = 0;
	argv[k++] = (char *)tu_bin("publisher/tonghop-publish");
	argv[k++] = "send";
	argv[k++] = "--outbox";
	argv[k++] = f->outbox;
	argv[k++] = "--collector";
	argv[k++] = f->ep;   /* nothing listens */
	argv[k++] = "--insecure";
	argv[k++] = "--defs";
	argv[k++] = (char *)pf_defs_dir();
	argv[k++] = "--timeout";
	argv[k++] = "1";
	for (int i = 0; i < n; i++)
		argv[k++] = paths[i];
	argv[k] = NULL;
	unlink(f->log);
	assert_int_equal(tu_run(argv, f->log), 3);
	char *log = pf_read_log(f);
	assert_int_equal(pf_count_str(log, " 2021 queued as rev"), n);
	free(log);
	char *js = pf_status_json(f);
	char *pending = pf_json_section(js, "pending");
	assert_int_equal(pf_count_str(pending, "\"unit\""), n);
	for (int i = 0; i < n; i++) {
		char needle[64];
		snprintf(needle, sizeof needle, "\"unit\": \"%s\"", pf_filers[i]);
		assert_int_equal(pf_count_str(pending, needle), 1);
	}
	free(pending);
	free(js);
	unlink(f->log);
	assert_int_equal(tu_run(argv, f->log), 3);
	log = pf_read_log(f);
	assert_int_equal(pf_count_str(log, "already queued"), n);
	assert_int_equal(pf_count_str(log, " 2021 queued as rev"), 0);
	free(log);
	/* delivered once the collector is there */
	pf_coll_start(f);
	argv[10] = "30";
	unlink(f->log);
	assert_int_equal(tu_run(argv, f->log), 0);
	pf_coll_stop(f);
	for (int i = 0; i < n; i++)
		assert_int_equal(pf_store_check(f, paths[i], 1), 1);
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
	char *js = pf_status_json(f);
	char needle[128];
	char *acked = pf_json_section(js, "acked");
	snprintf(needle, sizeof needle, "\"rev\": %llu,", (unsigned long long)c.rev[OF_LATEST_ACKED]);
	assert_int_equal(pf_count_str(acked, needle), 1);
	snprintf(needle, sizeof needle, "\"rev\": %llu,", (unsigned long long)c.grev[2]);
	assert_int_equal(pf_count_str(acked, needle), 1);
	assert_int_equal(pf_count_str(acked, "\"unit\""), 2);
	char *rej = pf_json_section(js, "rejected");
	snprintf(needle, sizeof needle, "\"rev\": %llu,", (unsigned long long)c.rev[OF_NREV - 2]);
	assert_int_equal(pf_count_str(rej, needle), 1);
	assert_non_null(strstr(rej, "bad figures"));
	char *pend = pf_json_section(js, "pending");
	snprintf(needle, sizeof needle, "\"rev\": %llu,", (unsigned long long)c.rev[OF_NREV - 1]);
	assert_int_equal(pf_count_str(pend, needle), 1);
	snprintf(needle, sizeof needle, "\"history\": %zu,", c.kept);
	assert_non_null(strstr(js, needle));
	free(acked);
	free(rej);
	free(pend);
	free(js);

	/* the strictest bounds, through the command: only what is needed stays */
	assert_int_equal(pf_pub(f, "prune", "--history-days", "0", "--history-revs", "0", NULL), 0);
	char *log = pf_read_log(f);
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
	assert_int_equal(th_outbox_enqueue(ob, r1, of_def(), h1, "/tmp/\"q\"/Phường.csv", 0, 1000, &e1), 0);
	assert_int_equal(th_outbox_enqueue(ob, r2, of_def(), h2, NULL, 0, 2000, &e2), 0);
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

	char *js = pf_status_json(f);
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
	assert_int_equal(pf_count_str(js, "\n    {\"unit\": "), 2);
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
	pf_coll_start_with(f, keysf, ids[0].key);
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
	pf_one_file(f, "P0103", NULL, 61, 0, inside);
	pf_one_file(f, "SNV", NULL, 61, 0, outside);
	char *base[] = {(char *)tu_bin("publisher/tonghop-publish"), "send", "--outbox", f->outbox,
	                "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	                (char *)pf_defs_dir(), "--timeout", "30", inside, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(base, f->log), 0);
	base[14] = outside;
	unlink(f->log);
	assert_int_equal(tu_run(base, f->log), 1);
	char *js = pf_status_json(f);
	char *rej = pf_json_section(js, "rejected");
	assert_int_equal(pf_count_str(rej, "\"unit\": \"SNV\""), 1);
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
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "refused this key"));
	free(log);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, inside, 1), 1);
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
	assert_int_equal(th_store_set_defs(s, pf_defs()), 0);
	th_report *r = NULL;
	th_revision_info info;
	memset(&info, 0, sizeof info);
	*tomb = 0;
	*nrevs = 0;
	int rc = th_store_get_report(s, unit, app, per, &r, &info);
	if (rc == 0) {
		*tomb = info.tombstone;
		th_report_destroy(&r);
		assert_int_equal(th_store_history(s, unit, app, per, pf_count_rev, nrevs), 0);
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
	pf_one_file(f, "P0103", "PL1", 71, 0, file);
	pf_one_file(f, "P0104", "PL1", 73, 0, other);
	pf_file_hash(file, h, unit, app, per);
	char *sendv[] = {(char *)tu_bin("publisher/tonghop-publish"), "send", "--outbox", f->outbox,
	                 "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	                 (char *)pf_defs_dir(), "--timeout", "30", file, other, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(sendv, f->log), 0);
	/* the agent key may not withdraw: auth, exit 1, recorded as rejected */
	char *wv[] = {(char *)tu_bin("publisher/tonghop-publish"), "withdraw", "--outbox", f->outbox,
	              "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	              (char *)pf_defs_dir(), "--timeout", "30", unit, app, per, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(wv, f->log), 1);
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "rejected"));
	assert_non_null(strstr(log, "[auth]"));
	free(log);
	char *js = pf_status_json(f);
	char *rej = pf_json_section(js, "rejected");
	assert_int_equal(pf_count_str(rej, "\"unit\": \"P0103\""), 1);
	free(rej);
	free(js);
	/* the admin key (its own outbox) withdraws it */
	char adout[4300];
	snprintf(adout, sizeof adout, "%s/outbox-admin", f->dir);
	wv[3] = adout;
	wv[7] = adkey;
	unlink(f->log);
	assert_int_equal(tu_run(wv, f->log), 0);
	log = pf_read_log(f);
	assert_non_null(strstr(log, "withdrawal: P0103"));
	assert_non_null(strstr(log, "accepted"));
	free(log);
	/* the same withdrawal again: already delivered, nothing new */
	unlink(f->log);
	assert_int_equal(tu_run(wv, f->log), 0);
	log = pf_read_log(f);
	assert_non_null(strstr(log, "already delivered"));
	free(log);
	pf_coll_stop(f);
	int tomb = 0, nrevs = 0;
	assert_int_equal(store_key(f, unit, app, per, &tomb, &nrevs), 0);
	assert_int_equal(tomb, 1);
	assert_int_equal(nrevs, 2);   /* the report, then its withdrawal; not the refused one */
	/* the rollup: Q01 counts only P0104 now, and its totals are P0104's own */
	th_store *st = NULL;
	th_store_opts so = {0};
	assert_int_equal(th_store_open(f->db, &so, &st), 0);
	assert_int_equal(th_store_set_defs(st, pf_defs()), 0);
	const th_def *def = th_defset_latest(pf_defs(), "PL1");
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
	pf_one_file(f, "P0104", NULL, 72, 0, file);
	pf_file_hash(file, h, unit, app, per);
	char *sendv[] = {(char *)tu_bin("publisher/tonghop-publish"), "send", "--outbox", f->outbox,
	                 "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	                 (char *)pf_defs_dir(), "--timeout", "30", file, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(sendv, f->log), 0);
	char *wv[] = {(char *)tu_bin("publisher/tonghop-publish"), "withdraw", "--outbox", f->outbox,
	              "--collector", f->ep, "--key", akey, "--server-key", spub, "--defs",
	              (char *)pf_defs_dir(), "--timeout", "30", unit, app, per, NULL};
	unlink(f->log);
	assert_int_equal(tu_run(wv, f->log), 1);
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "only an admin key may withdraw"));
	free(log);
	pf_coll_stop(f);
	int tomb = 1, nrevs = 0;
	assert_int_equal(store_key(f, unit, app, per, &tomb, &nrevs), 0);
	assert_int_equal(tomb, 0);
	assert_int_equal(nrevs, 1);
	assert_int_equal(pf_store_check(f, file, 1), 1);
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
		argv[n++] = (char *)pf_defs_dir();
		argv[n++] = "--timeout";
		argv[n++] = "5";
		for (int k = 0; k < cases[i].n; k++)
			argv[n++] = (char *)cases[i].a[k];
		argv[n] = NULL;
		unlink(f->log);
		assert_int_equal(tu_run(argv, f->log), 2);
		char *log = pf_read_log(f);
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
	char *log = pf_read_log(f);
	assert_non_null(strstr(log, "Z85"));
	free(log);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(send_collector_down_then_up, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(kill9_agent_mid_send, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(kill9_collector_mid_send, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(invalid_file_not_sent, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(rejected_reason_in_status, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(corrected_file_supersedes, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(older_file_after_newer, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(store_change_resends, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(defs_cached_from_welcome, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(refused_key_exit5, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(curve_scope_and_refusal, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(usage_and_keys, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(withdraw_admin_only, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(withdraw_refused_store_unchanged, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(withdraw_usage, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(send_many_files_queued, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(history_retention, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(status_json_typed, pf_setup, pf_teardown),
	};
	int rc = TH_RUN_TESTS(tests, argc, argv);
	pf_cleanup();
	of_cleanup();
	return rc;
}

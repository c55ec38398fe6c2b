/* test_committer.c -- the collector's writer thread (collector/committer.c): jobs
 * run in the order handed over and come back in it, th_committer_run waits for its
 * own job only, the fd says when a job waits to be taken, a held commit (the test
 * hook) leaves the store readable, and destroy runs what was handed over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "committer.h"
#include "store_fixture.h"
#include "testutil.h"
#include "tstore.h"

/* A checked submission of r (released by the caller). */
static th_checked check(fx *f, const th_report *r)
{
	static th_key k;   /* the submission's sender points into it */
	memset(&k, 0, sizeof k);
	k.role = TH_ROLE_ADMIN;
	th_checked c;
	th_ack_result res;
	memset(&res, 0, sizeof res);
	assert_int_equal(th_ingest_check(f->s, &k, 1, r, 0, NULL, &c, &res), 1);
	th_ack_result_free(&res);
	return c;
}

static int readable(int fd, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	return poll(&p, 1, ms) == 1;
}

static void jobs_in_order(void **state)
{
	(void)state;
	fx *f = fx_new();
	th_committer *c = NULL;
	assert_int_equal(th_committer_new(f->s, &c), 0);
	th_report *r[3] = {mk1("X1", 1, 4), mk1("X2", 1, 5), mk1("X1", 2, 6)};
	th_checked ck[3];
	th_job j[4];
	memset(j, 0, sizeof j);
	for (int i = 0; i < 3; i++) {
		ck[i] = check(f, r[i]);
		j[i].type = TH_JOB_APPLY;
		j[i].subs = &ck[i].sub;
		j[i].n = 1;
		j[i].owner = &ck[i];
	}
	j[3].type = TH_JOB_DEADLINE;
	j[3].appendix = "T";
	j[3].period = P;
	j[3].deadline = 20211231;
	assert_false(readable(th_committer_fd(c), 0));
	for (int i = 0; i < 4; i++)
		th_committer_push(c, &j[i]);
	for (int i = 0; i < 4; i++) {
		assert_true(readable(th_committer_fd(c), 10000));
		th_job *t = th_committer_take(c);
		assert_ptr_equal(t, &j[i]);
		assert_int_equal(t->rc, 0);
		if (i < 3) {
			assert_int_equal(t->commit, (uint64_t)i + 1);
			assert_true(t->n_changed > 0);
			assert_int_equal(t->subs[0].result.status, TH_STORE_ACCEPTED);
			free(t->changed);
		}
	}
	assert_null(th_committer_take(c));
	assert_false(readable(th_committer_fd(c), 0));
	assert_int_equal(th_committer_pending(c), 0);
	assert_int_equal(tot(f, "C", C_A), 6 + 5);
	/* run: waits for its own job; one finished before it stays to be taken */
	th_report *r2 = mk1("X3", 1, 7);
	th_checked c2 = check(f, r2);
	th_job a = {.type = TH_JOB_APPLY, .subs = &c2.sub, .n = 1};
	th_units *u = parse_units(UNITS_V2);
	th_job h = {.type = TH_JOB_HIERARCHY, .units = u, .origin = "test"};
	th_committer_push(c, &a);
	assert_int_equal(th_committer_run(c, &h), 0);
	assert_int_equal(th_committer_pending(c), 1);
	assert_true(readable(th_committer_fd(c), 10000));
	assert_ptr_equal(th_committer_take(c), &a);
	assert_int_equal(a.rc, 0);
	free(a.changed);
	assert_string_equal(th_units_version(th_store_current_hierarchy(f->s)), "v2");
	/* a job's error is its code */
	th_job bad = {.type = TH_JOB_DEADLINE, .appendix = "T", .period = P, .unit = NULL};
	char big[400];
	memset(big, 'u', sizeof big - 1);
	big[sizeof big - 1] = 0;
	bad.unit = big;
	assert_int_equal(th_committer_run(c, &bad), TH_ETOOBIG);
	th_committer_destroy(&c);
	assert_null(c);
	for (int i = 0; i < 3; i++) {
		th_checked_release(&ck[i]);
		th_report_destroy(&r[i]);
	}
	th_checked_release(&c2);
	th_report_destroy(&r2);
	th_units_destroy(&u);
	verify_ok(f);
	fx_free(f);
}

/* destroy runs the jobs handed over before it stops */
static void destroy_runs_what_was_handed_over(void **state)
{
	(void)state;
	fx *f = fx_new();
	th_committer *c = NULL;
	assert_int_equal(th_committer_new(f->s, &c), 0);
	th_report *r = mk1("X1", 1, 9);
	th_checked ck = check(f, r);
	th_job j = {.type = TH_JOB_APPLY, .subs = &ck.sub, .n = 1, .rc = 12345};
	th_committer_push(c, &j);
	th_committer_destroy(&c);
	assert_int_equal(j.rc, 0);
	assert_int_equal(j.subs[0].result.status, TH_STORE_ACCEPTED);
	free(j.changed);
	assert_int_equal(tot(f, "C", C_A), 9);
	th_checked_release(&ck);
	th_report_destroy(&r);
	fx_free(f);
}

/* TH_TEST_COMMIT_HOLD: the group waits, written but not committed, until the FIFO
 * gives a byte; meanwhile the store reads as before it and nothing comes back. */
static void commit_hold_hook(void **state)
{
	(void)state;
	fx *f = fx_new();
	char fifo[4200];
	snprintf(fifo, sizeof fifo, "%s/hold", f->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	must_accept(f, mk1("X1", 1, 4));   /* before the hook is installed */
	setenv("TH_TEST_COMMIT_HOLD", fifo, 1);
	th_committer *c = NULL;
	assert_int_equal(th_committer_new(f->s, &c), 0);
	unsetenv("TH_TEST_COMMIT_HOLD");
	th_report *r = mk1("X1", 2, 8);
	th_checked ck = check(f, r);
	th_job j = {.type = TH_JOB_APPLY, .subs = &ck.sub, .n = 1};
	th_committer_push(c, &j);
	int fd = -1;
	for (int i = 0; i < 2000 && fd < 0; i++) {   /* a writer can open once the hook reads */
		fd = open(fifo, O_WRONLY | O_NONBLOCK);
		if (fd < 0) {
			assert_int_equal(errno, ENXIO);
			usleep(5000);
		}
	}
	assert_true(fd >= 0);
	assert_false(readable(th_committer_fd(c), 50));
	assert_null(th_committer_take(c));
	assert_int_equal(tot(f, "C", C_A), 4);
	assert_int_equal(th_store_last_commit(f->s), 1);
	assert_int_equal(write(fd, "g", 1), 1);
	close(fd);
	assert_true(readable(th_committer_fd(c), 10000));
	assert_ptr_equal(th_committer_take(c), &j);
	assert_int_equal(j.rc, 0);
	assert_int_equal(j.commit, 2);
	free(j.changed);
	assert_int_equal(tot(f, "C", C_A), 8);
	th_committer_destroy(&c);
	th_checked_release(&ck);
	th_report_destroy(&r);
	unlink(fifo);
	fx_free(f);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(jobs_in_order),
		cmocka_unit_test(destroy_runs_what_was_handed_over),
		cmocka_unit_test(commit_hold_hook),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

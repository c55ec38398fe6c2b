/* it_drop.c -- `tonghop-publish run --drop DIR` against a real collector on
 * loopback: files written slowly, renamed into place, replaced, found by
 * polling, a scan with an invalid file among valid ones and a file left in
 * .work by a killed agent (publish_fixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "publish_fixture.h"
#include "testutil.h"

typedef pf_fx fx;

/* A file written slowly into the drop folder is read once complete. */
static void drop_slow_write(void **state)
{
	fx *f = *state;
	char file[4200], dst[4300];
	pf_one_file(f, "P0101", NULL, 21, 0, file);
	pf_coll_start(f);
	f->agent = pf_run_agent(f, NULL);
	pf_msleep(500);
	size_t len;
	char *text = tu_read_file(file, &len);
	assert_non_null(text);
	snprintf(dst, sizeof dst, "%s/slow.csv", f->drop);
	int fd = open(dst, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	size_t half = len / 2;
	assert_int_equal(write(fd, text, half), (ssize_t)half);
	pf_msleep(2500);   /* longer than the quiet period and two polls */
	assert_int_equal(write(fd, text + half, len - half), (ssize_t)(len - half));
	close(fd);
	free(text);
	assert_true(pf_wait_status(f, "\"state\": \"accepted\"", 1, 20000));
	char errs[4400];
	snprintf(errs, sizeof errs, "%s.errors.txt", dst);
	assert_int_not_equal(access(errs, F_OK), 0);   /* the half file was never read */
	pf_kill_wait(&f->agent, SIGTERM);
	char *js = pf_status_json(f);
	assert_int_equal(pf_count_str(js, "\"unit\""), 1);
	free(js);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, file, 1), 1);
}

/* A file renamed into place is picked up; an invalid one gets a sidecar
 * FILE.errors.txt and stays. */
static void drop_rename_into_place(void **state)
{
	fx *f = *state;
	char file[4200], tmp[4300], dst[4300], bad[4300];
	pf_one_file(f, "P0102", NULL, 22, 0, file);
	pf_coll_start(f);
	f->agent = pf_run_agent(f, NULL);
	pf_msleep(300);
	size_t len;
	char *text = tu_read_file(file, &len);
	snprintf(tmp, sizeof tmp, "%s/.incoming.tmp", f->drop);
	snprintf(dst, sizeof dst, "%s/report.csv", f->drop);
	assert_int_equal(tu_write_file(tmp, text, len), 0);
	assert_int_equal(rename(tmp, dst), 0);
	snprintf(bad, sizeof bad, "%s/broken.csv", f->drop);
	assert_int_equal(tu_write_file(bad, "this,is\nnot,an appendix\n", 24), 0);
	free(text);
	assert_true(pf_wait_status(f, "\"state\": \"accepted\"", 1, 20000));
	char errs[4400], done_[4400];
	snprintf(errs, sizeof errs, "%s.errors.txt", bad);
	for (int i = 0; i < 100 && access(errs, F_OK) != 0; i++)
		pf_msleep(100);
	assert_int_equal(access(errs, F_OK), 0);
	assert_int_equal(access(bad, F_OK), 0);
	snprintf(done_, sizeof done_, "%s/.done/report.csv", f->drop);
	assert_int_equal(access(done_, F_OK), 0);
	pf_kill_wait(&f->agent, SIGTERM);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, file, 1), 1);
}

/* A file replaced twice quickly under the same name ends at the last content. */
static void drop_replaced_twice(void **state)
{
	fx *f = *state;
	char v1[4200], v2[4200], v3[4200], tmp[4300], dst[4300];
	pf_one_file(f, "Q01", "PL1", 23, 0, v1);
	pf_one_file(f, "Q01", "PL1", 23, 1, v2);
	pf_one_file(f, "Q01", "PL1", 23, 2, v3);
	pf_coll_start(f);
	f->agent = pf_run_agent(f, NULL);
	pf_msleep(300);
	snprintf(tmp, sizeof tmp, "%s/.x.tmp", f->drop);
	snprintf(dst, sizeof dst, "%s/hn.csv", f->drop);
	const char *vs[3] = {v1, v2, v3};
	for (int i = 0; i < 3; i++) {
		size_t len;
		char *text = tu_read_file(vs[i], &len);
		assert_int_equal(tu_write_file(tmp, text, len), 0);
		assert_int_equal(rename(tmp, dst), 0);
		free(text);
		pf_msleep(i == 0 ? 50 : 10);
	}
	/* wait until the folder is empty and nothing is pending */
	for (int i = 0; i < 200 && access(dst, F_OK) == 0; i++)
		pf_msleep(100);
	assert_true(pf_wait_status(f, "\"state\": \"accepted\"", 1, 20000));
	for (int i = 0; i < 100; i++) {
		char *js = pf_status_json(f);
		char *p = pf_json_section(js, "pending");
		int n = pf_count_str(p, "\"unit\"");
		free(p);
		free(js);
		if (!n)
			break;
		pf_msleep(100);
	}
	pf_kill_wait(&f->agent, SIGTERM);
	pf_coll_stop(f);
	int revs = pf_store_check(f, v3, 1);
	assert_true(revs >= 1 && revs <= 3);
}

/* The polling fallback picks files up without inotify. */
static void drop_polling_fallback(void **state)
{
	fx *f = *state;
	char file[4200], dst[4300];
	pf_one_file(f, "SNV", NULL, 24, 0, file);
	pf_coll_start(f);
	f->agent = pf_run_agent(f, "--polling");
	pf_msleep(300);
	size_t len;
	char *text = tu_read_file(file, &len);
	snprintf(dst, sizeof dst, "%s/snv.csv", f->drop);
	assert_int_equal(tu_write_file(dst, text, len), 0);
	free(text);
	assert_true(pf_wait_status(f, "\"state\": \"accepted\"", 1, 20000));
	pf_kill_wait(&f->agent, SIGTERM);
	pf_coll_stop(f);
	assert_int_equal(pf_store_check(f, file, 1), 1);
}

/* A scan of the drop folder that finds several files at once: the valid
 * ones are queued together and delivered, an invalid one among them gets
 * its sidecar and holds back nothing; a file left in .work by a killed
 * agent is taken back. */
static void drop_batch_with_invalid(void **state)
{
	fx *f = *state;
	int n = pf_gen(f, f->drop, NULL, 62, 0);
	/* one file as an agent killed while handling it left it */
	char work[4300], from[4300], to[4400];
	snprintf(work, sizeof work, "%s/.work", f->drop);
	assert_int_equal(mkdir(work, 0750), 0);
	snprintf(from, sizeof from, "%s/%s-PL1-2021.csv", f->drop, pf_filers[0]);
	snprintf(to, sizeof to, "%s/%s-PL1-2021.csv", work, pf_filers[0]);
	assert_int_equal(rename(from, to), 0);
	static const char bad_text[] = "#appendix: PL1\n#version: 1\n#unit: Q01\n#period: 2021\n"
	                               "co_ke_hoach_cchc,nhiem_vu_ke_hoach,nhiem_vu_hoan_thanh\n"
	                               "maybe,12a,1/2\n";
	char bad[4300], errs[4400];
	snprintf(bad, sizeof bad, "%s/broken.csv", f->drop);
	snprintf(errs, sizeof errs, "%s/broken.csv.errors.txt", f->drop);
	assert_int_equal(tu_write_file(bad, bad_text, strlen(bad_text)), 0);
	pf_coll_start(f);
	f->agent = pf_run_agent(f, NULL);
	char data[4300];
	snprintf(data, sizeof data, "%s/data.mdb", f->outbox);
	for (int i = 0; i < 500 && access(data, F_OK) != 0; i++)
		pf_msleep(20);
	assert_true(pf_wait_status(f, "\"state\": \"accepted\"", n, 30000));
	pf_kill_wait(&f->agent, SIGTERM);
	assert_int_equal(access(errs, F_OK), 0);
	assert_int_equal(access(bad, F_OK), 0);   /* back in place for the operator */
	char *js = pf_status_json(f);
	char *acked = pf_json_section(js, "acked");
	assert_int_equal(pf_count_str(acked, "\"unit\""), n);
	free(acked);
	free(js);
	pf_coll_stop(f);
	char done[4300];
	snprintf(done, sizeof done, "%s/.done", f->drop);
	static char paths[PF_MAXF][4200];
	assert_int_equal(pf_list_files(done, paths), n);
	for (int i = 0; i < n; i++)
		assert_int_equal(pf_store_check(f, paths[i], 1), 1);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(drop_slow_write, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(drop_rename_into_place, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(drop_replaced_twice, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(drop_polling_fallback, pf_setup, pf_teardown),
		cmocka_unit_test_setup_teardown(drop_batch_with_invalid, pf_setup, pf_teardown),
	};
	int rc = TH_RUN_TESTS(tests, argc, argv);
	pf_cleanup();
	return rc;
}

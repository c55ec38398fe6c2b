/* test_store_threads.c -- the store's threading contract (th_store.h, STORAGE.md):
 * reads on another thread than the writer's, during a held commit and during map
 * growth. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store_fixture.h"
#include "testutil.h"
#include "th_rollup.h"
#include "th_store.h"
#include "tstore.h"

/* The hook of a writer held before its commit: says so on held[1], waits on go[0]. */
typedef struct {
	int held[2], go[2];
} hold;

static void hold_commit(void *ctx)
{
	hold *h = ctx;
	char c = 'h';
	if (write(h->held[1], &c, 1) != 1 || read(h->go[0], &c, 1) != 1)
		abort();
}

typedef struct {
	fx *f;
	th_submission sub;
	int rc;
} writer;

static void *write_group(void *arg)
{
	writer *w = arg;
	uint64_t cid;
	int64_t ct;
	w->rc = th_store_apply(w->f->s, &w->sub, 1, &cid, &ct, NULL, NULL);
	return NULL;
}

/* While a group is written and not yet committed (held by the commit hook), reads
 * on another thread are answered, from the store as it was before the group. */
static void reads_answered_while_a_commit_is_held(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, 4));
	th_report *r = mk1("X1", 2, 9);
	th_checked c;
	th_key k;
	memset(&k, 0, sizeof k);
	k.role = TH_ROLE_ADMIN;
	th_ack_result res;
	memset(&res, 0, sizeof res);
	assert_int_equal(th_ingest_check(f->s, &k, 1, r, 0, NULL, &c, &res), 1);
	th_ack_result_free(&res);
	hold h;
	assert_int_equal(pipe(h.held), 0);
	assert_int_equal(pipe(h.go), 0);
	th_store_set_commit_hook(f->s, hold_commit, &h);
	writer w = {f, c.sub, -1};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, write_group, &w), 0);
	char ch;
	assert_int_equal(read(h.held[0], &ch, 1), 1);   /* the group is written, not committed */
	uint64_t before = th_store_last_commit(f->s), rev = 0;
	assert_int_equal(tot(f, "C", C_A), 4);
	assert_int_equal(th_store_rev(f->s, "X1", "T", P, &rev), 0);
	assert_int_equal(rev, 1);
	th_store_stats st;
	assert_int_equal(th_store_stats_get(f->s, &st), 0);
	assert_int_equal(st.commits, before);
	int rows = 0;
	assert_int_equal(th_store_level(f->s, "T", P, 2, NULL, ignore_node, &rows), 0);
	assert_int_equal(rows, 2);
	assert_string_equal(version_for(f, P), "v1");
	assert_int_equal(write(h.go[1], "g", 1), 1);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(w.rc, 0);
	assert_int_equal(w.sub.result.status, TH_STORE_ACCEPTED);
	assert_int_equal(th_store_last_commit(f->s), before + 1);
	assert_int_equal(tot(f, "C", C_A), 9);
	th_store_set_commit_hook(f->s, NULL, NULL);
	for (int i = 0; i < 2; i++) {
		close(h.held[i]);
		close(h.go[i]);
	}
	th_checked_release(&c);
	th_report_destroy(&r);
	verify_ok(f);
	fx_free(f);
}

typedef struct {
	fx *f;
	volatile int stop;
	volatile long reads, errors;
} reader;

static void *read_loop(void *arg)
{
	reader *rd = arg;
	while (!rd->stop) {
		th_node n;
		th_store_stats st;
		int rows = 0;
		const th_units *h = NULL;
		if (th_store_get_node(rd->f->s, "T", P, "C", &n) == 0)
			th_node_free(&n);
		else
			rd->errors++;
		if (th_store_level(rd->f->s, "T", P, 3, NULL, ignore_node, &rows) != 0 || rows != 3 ||
		    th_store_stats_get(rd->f->s, &st) != 0 || th_store_hierarchy_for(rd->f->s, P, &h) != 0)
			rd->errors++;
		rd->reads++;
	}
	return NULL;
}

/* A reader thread reading without pause while the writer's groups grow the map
 * several times: every read succeeds, nothing is lost (the map moves only while no
 * read is in flight). */
static void readers_beside_a_growing_writer(void **state)
{
	(void)state;
	fx *f = fx_new_opts(64 << 10, 0, UNITS_V1);
	reader rd = {f, 0, 0, 0};
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, read_loop, &rd), 0);
	for (int i = 0; i < 10000 && !rd.reads; i++)   /* the reader is reading (a loaded machine */
		usleep(1000);                              /* may start it late) */
	assert_true(rd.reads > 0);
	static const char *units[] = {"X1", "X2", "X3", "D1", "D2"};
	for (int g = 0; g < 8; g++) {
		th_report *rs[5];
		th_ack_result res[5];
		for (int i = 0; i < 5; i++)
			rs[i] = big(units[i], (uint64_t)g + 1, 40, g + 1);
		assert_int_equal(apply_n(f, rs, 5, res, NULL, NULL, NULL), 0);
		for (int i = 0; i < 5; i++) {
			assert_int_equal(res[i].status, TH_ACK_ACCEPTED);
			th_ack_result_free(&res[i]);
		}
	}
	rd.stop = 1;
	assert_int_equal(pthread_join(t, NULL), 0);
	th_store_stats st;
	assert_int_equal(th_store_stats_get(f->s, &st), 0);
	assert_true(st.map_size >= (size_t)(64 << 10) * 8);
	assert_true(rd.reads > 0);
	assert_int_equal(rd.errors, 0);
	assert_int_equal(tot(f, "C", C_A), 5 * 40 * 8);
	verify_ok(f);
	fx_free(f);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_answered_while_a_commit_is_held),
		cmocka_unit_test(readers_beside_a_growing_writer),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

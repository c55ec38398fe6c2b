/* test_store.c -- opening a store (store/store.c): reopening, the format version,
 * the format 1 -> 2 upgrade, read-only handles (DESIGN section 7, STORAGE.md).
 * Apply, hierarchies, threads and verify have their own programs (test_store_*.c). */
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

static void reopen_keeps_everything(void **state)
{
	(void)state;
	fx *f = fx_new();
	uint8_t uuid[16];
	memcpy(uuid, th_store_uuid(f->s), 16);
	int zero = 1;
	for (int i = 0; i < 16; i++)
		zero &= uuid[i] == 0;
	assert_false(zero);
	must_accept(f, mk1("X1", 1, 4));
	must_accept(f, mk1("X3", 1, 5));
	uint64_t c = th_store_last_commit(f->s);
	th_node before = node(f, "C");
	fx_reopen(f);
	assert_memory_equal(th_store_uuid(f->s), uuid, 16);
	assert_int_equal(th_store_last_commit(f->s), c);
	th_node after = node(f, "C");
	assert_int_equal(after.version, before.version);
	assert_int_equal(after.reported, 2);
	assert_true(th_rollup_equal(f->d, after.total, before.total));
	th_node_free(&before);
	th_node_free(&after);
	int code;
	assert_int_equal(one(f, mk1("X1", 1, 4), &code, NULL), TH_ACK_DUPLICATE);
	must_accept(f, mk1("X1", 2, 1));
	assert_int_equal(th_store_last_commit(f->s), c + 2);
	assert_int_equal(tot(f, "C", C_A), 6);
	/* a second store has another uuid */
	fx *g = fx_new();
	assert_memory_not_equal(th_store_uuid(g->s), uuid, 16);
	fx_free(g);
	fx_free(f);
}

/* A format-1 store (fixed-size nodes): a reader reads it as it is; the first
 * writer re-encodes every node and sets format 2; the figures stay the same. */
static void format1_store_upgraded(void **state)
{
	(void)state;
	fx *f = fx_new();
	/* values of 1, 2 and 10 varint bytes, negative ones, the extremes */
	row r1[] = {{1, -40, -7, 1000000000000, 1}, {2, 1000, INT64_MIN + 1, INT64_MAX, 0}};
	must_accept(f, mk("X1", P, 1, r1, 2));
	must_accept(f, mk1("X2", 1, 3));
	must_accept(f, mk1("X2", 2, 6));
	must_accept(f, mk1("X3", 1, 123456789));
	static const char *units[] = {"C", "D1", "D2", "X1", "X2", "X3"};
	enum { NU = sizeof units / sizeof units[0] };
	th_node before[NU];
	for (size_t i = 0; i < NU; i++)
		before[i] = node(f, units[i]);
	th_store_close(&f->s);
	size_t ns = f->d->n_slots;
	MDB_env *env;
	MDB_dbi db, meta;
	MDB_txn *txn = raw_begin(f, "rollups", &env, &db);
	for (size_t i = 0; i < NU; i++) {
		char key[64];
		int kl = snprintf(key, sizeof key, "T%c%s%c%s", 0, P, 0, units[i]);
		MDB_val k = {(size_t)kl, key}, v;
		assert_int_equal(mdb_get(txn, db, &k, &v), 0);
		/* written as varints: own and total (enc 1), or own only when they are equal
		 * (enc 2: every leaf, the communes X1..X3) */
		assert_int_equal(((const uint8_t *)v.mv_data)[36], units[i][0] == 'X' ? 2 : 1);
		assert_true(v.mv_size < 40 + 16 * ns);
		uint8_t *b = fixed_node(v.mv_data, &before[i], ns);
		MDB_val nv = {40 + 16 * ns, b};
		assert_int_equal(mdb_put(txn, db, &k, &nv, 0), 0);
		free(b);
	}
	/* format 1 also kept every latest revision in history */
	MDB_dbi rdb, hdb;
	assert_int_equal(mdb_dbi_open(txn, "reports", 0, &rdb), 0);
	assert_int_equal(mdb_dbi_open(txn, "history", 0, &hdb), 0);
	MDB_stat hs;
	assert_int_equal(mdb_stat(txn, hdb, &hs), 0);
	assert_int_equal(hs.ms_entries, 1);   /* X2 rev 1, superseded */
	MDB_cursor *rc0;
	assert_int_equal(mdb_cursor_open(txn, rdb, &rc0), 0);
	MDB_val rk, rv;
	uint8_t hks[8][64];
	MDB_val hk[8], hv[8];
	size_t nr = 0;
	for (int x = mdb_cursor_get(rc0, &rk, &rv, MDB_FIRST); x == 0; x = mdb_cursor_get(rc0, &rk, &rv, MDB_NEXT)) {
		assert_true(nr < 8 && rk.mv_size + 9 <= sizeof hks[0]);
		uint64_t rev;
		memcpy(&rev, (const uint8_t *)rv.mv_data + 16, 8);   /* rec_header.rev */
		memcpy(hks[nr], rk.mv_data, rk.mv_size);
		hks[nr][rk.mv_size] = 0;
		for (int b = 0; b < 8; b++)
			hks[nr][rk.mv_size + 1 + b] = (uint8_t)(rev >> (56 - 8 * b));
		hk[nr] = (MDB_val){rk.mv_size + 9, hks[nr]};
		hv[nr] = (MDB_val){rv.mv_size, malloc(rv.mv_size)};
		memcpy(hv[nr].mv_data, rv.mv_data, rv.mv_size);
		nr++;
	}
	mdb_cursor_close(rc0);
	assert_int_equal(nr, 3);
	for (size_t i = 0; i < nr; i++) {
		assert_int_equal(mdb_put(txn, hdb, &hk[i], &hv[i], 0), 0);
		free(hv[i].mv_data);
	}
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	MDB_val fk = {6, "format"}, fv = {15, "tonghop-store 1"};
	assert_int_equal(mdb_put(txn, meta, &fk, &fv, 0), 0);
	raw_commit(env, txn);

	/* a reader (in a child: one environment per process) reads it unchanged */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		th_store_opts ro = {1, 0, 0};
		th_store *r = NULL;
		if (th_store_open(f->dir, &ro, &r) != 0 || th_store_set_defs(r, f->defs) != 0)
			_exit(10);
		for (size_t i = 0; i < NU; i++) {
			th_node n;
			if (th_store_get_node(r, "T", P, units[i], &n) != 0)
				_exit(11);
			if (!th_rollup_equal(f->d, n.total, before[i].total) ||
			    memcmp(n.own, before[i].own, 8 * ns) || n.version != before[i].version)
				_exit(12);
			th_node_free(&n);
		}
		/* the latest revision once, not twice */
		hist h = {0};
		if (th_store_history(r, "X2", "T", P, hist_cb, &h) != 0 || h.n != 2 || h.revs[0] != 1 ||
		    h.revs[1] != 2)
			_exit(13);
		th_store_stats st;
		if (th_store_stats_get(r, &st) != 0 || st.revisions != 4)
			_exit(14);
		if (th_store_verify(r, NULL) != 0)
			_exit(15);
		th_store_close(&r);
		_exit(0);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);

	/* the first writer upgrades: same figures, format 2, every node as varints */
	fx_open(f);
	for (size_t i = 0; i < NU; i++) {
		th_node n = node(f, units[i]);
		assert_memory_equal(n.own, before[i].own, 8 * ns);
		assert_memory_equal(n.total, before[i].total, 8 * ns);
		assert_int_equal(n.version, before[i].version);
		assert_int_equal(n.reported, before[i].reported);
		th_node_free(&n);
	}
	verify_ok(f);
	hist h = {0};
	assert_int_equal(th_store_history(f->s, "X2", "T", P, hist_cb, &h), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.revs[0], 1);
	assert_int_equal(h.revs[1], 2);
	assert_int_equal(h.a[0], 3);
	assert_int_equal(h.a[1], 6);
	th_store_stats sst;
	assert_int_equal(th_store_stats_get(f->s, &sst), 0);
	assert_int_equal(sst.revisions, 4);
	th_store_close(&f->s);
	txn = raw_begin(f, "rollups", &env, &db);
	MDB_cursor *c;
	assert_int_equal(mdb_cursor_open(txn, db, &c), 0);
	MDB_val k, v;
	size_t seen = 0;
	for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		const char *unit = (const char *)k.mv_data + 2 + strlen(P) + 1;   /* "T\0" P "\0" unit */
		assert_int_equal(((const uint8_t *)v.mv_data)[36], unit[0] == 'X' ? 2 : 1);
		seen++;
	}
	assert_int_equal(seen, NU);
	mdb_cursor_close(c);
	assert_int_equal(mdb_dbi_open(txn, "history", 0, &hdb), 0);
	assert_int_equal(mdb_stat(txn, hdb, &hs), 0);
	assert_int_equal(hs.ms_entries, 1);   /* the latest revisions left history */
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	assert_int_equal(mdb_get(txn, meta, &fk, &fv), 0);
	assert_int_equal(fv.mv_size, 15);
	assert_memory_equal(fv.mv_data, "tonghop-store 2", 15);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	/* and goes on from there */
	fx_open(f);
	must_accept(f, mk1("X3", 2, 10));
	assert_int_equal(tot(f, "D2", C_A), 10);
	assert_int_equal(tot(f, "C", C_A), -40 + 1000 + 6 + 10);
	verify_ok(f);
	for (size_t i = 0; i < NU; i++)
		th_node_free(&before[i]);
	fx_free(f);
}

static void format_version_checked(void **state)
{
	(void)state;
	fx *f = fx_new();
	th_store_close(&f->s);
	MDB_env *env;
	MDB_dbi meta;
	MDB_txn *txn = raw_begin(f, "meta", &env, &meta);
	MDB_val k = {6, "format"}, v = {15, "tonghop-store 9"};
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	raw_commit(env, txn);
	char why[256] = "";
	th_store *s = NULL;
	assert_int_equal(th_store_open_why(f->dir, &f->opts, &s, why, sizeof why), TH_ESTORE);
	assert_null(s);
	assert_non_null(strstr(why, "tonghop-store 9"));
	assert_non_null(strstr(why, "tonghop-store 2"));
	/* read-only open of a directory without a store */
	th_store_opts ro = {1, 0, 0};
	char *empty = tu_tmpdir();
	assert_int_not_equal(th_store_open(empty, &ro, &s), 0);
	assert_null(s);
	tu_rmrf(empty);
	fx_free(f);
}

/* In a child process (LMDB forbids opening one environment twice in a
 * process): opens read-only and checks C's total; exit status 0 when equal. */
static int ro_child(fx *f, int64_t want_total)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		th_store_opts ro = {1, 0, 0};
		th_store *r = NULL;
		if (th_store_open(f->dir, &ro, &r) != 0)
			_exit(10);
		th_store_set_defs(r, f->defs);
		if (memcmp(th_store_uuid(r), th_store_uuid(f->s), 16))
			_exit(11);
		th_node n;
		if (th_store_get_node(r, "T", P, "C", &n) != 0)
			_exit(12);
		if (n.total[1] != want_total)
			_exit(13);
		th_node_free(&n);
		/* writes are refused */
		th_report *x = mk1("X3", 1, 1);
		th_ack_result res;
		if (sf_submit(r, &x, 1, "t", &res, NULL, NULL, NULL) != TH_EINVAL)
			_exit(14);
		th_ack_result_free(&res);
		if (th_store_set_deadline(r, "T", P, NULL, 20210101) != TH_EINVAL)
			_exit(15);
		th_report_destroy(&x);
		th_store_close(&r);
		_exit(0);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 100;
}

static void readonly_open_reads(void **state)
{
	(void)state;
	fx *f = fx_new_opts(64 << 10, 0, UNITS_V1);
	must_accept(f, mk1("X1", 1, 4));
	assert_int_equal(ro_child(f, 4), 0);
	/* the writer goes on (and grows the map); a new reader sees it */
	for (int i = 0; i < 30; i++)
		must_accept(f, big("X2", (uint64_t)i + 1, 50, 1));
	assert_int_equal(ro_child(f, 54), 0);
	fx_free(f);
}

/* A reader opened before the writer grows the map still reads afterwards. */
static void readonly_survives_map_growth(void **state)
{
	(void)state;
	fx *f = fx_new_opts(64 << 10, 0, UNITS_V1);
	must_accept(f, mk1("X1", 1, 4));
	int up[2], down[2];
	assert_int_equal(pipe(up), 0);
	assert_int_equal(pipe(down), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		th_store_opts ro = {1, 64 << 10, 0};   /* a map smaller than the writer's will be */
		th_store *r = NULL;
		char b = 0;
		int ok = th_store_open(f->dir, &ro, &r) == 0;
		if (write(up[1], "r", 1) != 1 || read(down[0], &b, 1) != 1 || !ok)
			_exit(10);
		th_store_set_defs(r, f->defs);
		th_node n;
		if (th_store_get_node(r, "T", P, "C", &n) != 0)
			_exit(12);
		int64_t t = n.total[1];
		th_node_free(&n);
		th_store_close(&r);
		_exit(t == 4 + 30 * 50 ? 0 : 13);
	}
	char b;
	assert_int_equal(read(up[0], &b, 1), 1);
	th_store_stats st0, st1;
	assert_int_equal(th_store_stats_get(f->s, &st0), 0);
	for (int i = 0; i < 30; i++)
		must_accept(f, big("X2", (uint64_t)i + 1, 50, 1));
	assert_int_equal(th_store_stats_get(f->s, &st1), 0);
	assert_true(st1.map_size > st0.map_size);
	must_accept(f, mk1("X3", 1, 30 * 50 - 50));
	assert_int_equal(write(down[1], "g", 1), 1);
	int ws = 0;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws));
	assert_int_equal(WEXITSTATUS(ws), 0);
	close(up[0]);
	close(up[1]);
	close(down[0]);
	close(down[1]);
	fx_free(f);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reopen_keeps_everything),
		cmocka_unit_test(format_version_checked),
		cmocka_unit_test(format1_store_upgraded),
		cmocka_unit_test(readonly_open_reads),
		cmocka_unit_test(readonly_survives_map_growth),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

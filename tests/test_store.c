/* test_store.c -- the LMDB store: revisions, dedup, rollups by delta,
 * completeness, map growth, hierarchy versions, and the property that
 * incremental rollups equal a recomputation (DESIGN sections 4-7). */
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

#include "testutil.h"
#include "th_rollup.h"
#include "th_store.h"
#include "tstore.h"

/* --- cases --------------------------------------------------------------------- */

/* Opens the (closed) store's LMDB environment directly, for tests that damage or
 * age it, and begins a write transaction on database db. */
static MDB_txn *raw_begin(fx *f, const char *db, MDB_env **env, MDB_dbi *dbi)
{
	MDB_txn *txn;
	assert_int_equal(mdb_env_create(env), 0);
	mdb_env_set_maxdbs(*env, 16);
	assert_int_equal(mdb_env_open(*env, f->dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(*env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, dbi), 0);
	return txn;
}

static void raw_commit(MDB_env *env, MDB_txn *txn)
{
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void accepted_and_read_back(void **state)
{
	(void)state;
	fx *f = fx_new();
	row rows[] = {{2, 5, 7, 9, 1}, {1, 3, NUL, 4, 0}};
	must_accept(f, mk("X1", P, 10, rows, 2));
	th_report *r = NULL;
	th_revision_info info;
	assert_int_equal(th_store_get_report(f->s, "X1", "T", P, &r, &info), 0);
	assert_int_equal(info.rev, 10);
	assert_string_equal(info.sender, "test");
	assert_int_equal(info.tombstone, 0);
	assert_int_equal(r->n_rows, 2);
	/* canonical order: rows sorted by key */
	assert_string_equal(th_report_cell(r, 0, C_K)->s, "r1");
	assert_int_equal(th_report_cell(r, 0, C_A)->i, 3);
	assert_true(th_report_cell(r, 0, C_LO)->null);
	assert_int_equal(th_report_cell(r, 1, C_HI)->i, 9);
	th_report_destroy(&r);
	assert_int_equal(tot(f, "X1", C_A), 8);
	assert_int_equal(tot(f, "D1", C_A), 8);
	assert_int_equal(tot(f, "C", C_A), 8);
	assert_int_equal(tot(f, "D2", C_A), NUL);
	assert_int_equal(tot(f, "C", C_LO), 7);
	assert_int_equal(tot(f, "C", C_HI), 9);
	assert_int_equal(tot(f, "C", C_F), 1);
	assert_int_equal(th_store_get_report(f->s, "X2", "T", P, &r, &info), TH_ENOTFOUND);
	verify_ok(f);
	fx_free(f);
}

static void duplicate_changes_nothing(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 5, 4));
	uint64_t c0 = th_store_last_commit(f->s);
	th_node before = node(f, "C");
	uint64_t stored = 0;
	int code = -1;
	assert_int_equal(one(f, mk1("X1", 5, 4), &code, &stored), TH_ACK_DUPLICATE);
	assert_int_equal(code, 0);
	assert_int_equal(stored, 5);
	th_node after = node(f, "C");
	assert_int_equal(after.version, before.version);
	assert_int_equal(tot(f, "C", C_A), 4);
	assert_int_equal(th_store_last_commit(f->s), c0 + 1);   /* the group still commits */
	th_node_free(&before);
	th_node_free(&after);
	th_store_stats st;
	assert_int_equal(th_store_stats_get(f->s, &st), 0);
	assert_int_equal(st.revisions, 1);
	fx_free(f);
}

/* A checked submission for r (as ingest makes it: its definition, hierarchy,
 * canonical form and hash); release with th_checked_release. */
static void checked(fx *f, const th_report *r, th_checked *c)
{
	th_key k;
	memset(&k, 0, sizeof k);
	k.role = TH_ROLE_ADMIN;
	th_ack_result res;
	memset(&res, 0, sizeof res);
	assert_int_equal(th_ingest_check(f->s, &k, 1, r, 0, NULL, c, &res), 1);
	th_ack_result_free(&res);
}

static th_store_result apply_sub(fx *f, th_submission sub)
{
	uint64_t cid;
	int64_t ct;
	assert_int_equal(th_store_apply(f->s, &sub, 1, &cid, &ct, NULL, NULL), 0);
	return sub.result;
}

/* The store takes a checked submission as it is (its canonical form is the
 * record, its hash the record's), refuses one that does not carry what ingest
 * hands over, and answers retry_later when the definition or the hierarchy it
 * was checked against is no longer the period's: never stored under another. */
static void checked_submission_trusted(void **state)
{
	(void)state;
	fx *f = fx_new();
	th_report *r = mk1("X1", 1, 4);
	th_checked c;
	checked(f, r, &c);
	th_store_result res = apply_sub(f, c.sub);
	assert_int_equal(res.status, TH_STORE_ACCEPTED);
	assert_int_equal(res.stored_rev, 1);
	th_report *back = NULL;
	th_revision_info info;
	assert_int_equal(th_store_get_report(f->s, "X1", "T", P, &back, &info), 0);
	assert_memory_equal(info.hash, c.sub.hash, TH_HASH_LEN);
	assert_int_equal(th_report_cell(back, 0, C_A)->i, 4);
	th_report_destroy(&back);
	th_checked_release(&c);
	th_report_destroy(&r);
	/* not checked: no definition, or a canonical form without its hierarchy, or a
	 * report that does not match its definition */
	uint8_t junk[] = {0x93, 0x01, 0x02, 0x03};
	r = mk1("X2", 1, 5);
	free(r->period);
	r->period = strdup("2021-Q2");   /* a period no report has bound yet */
	th_submission bad[3] = {
		{.report = r, .sender = "t", .canon = junk, .canon_len = sizeof junk},
		{.report = r, .sender = "t", .def = f->d, .canon = junk, .canon_len = sizeof junk},
		{.report = NULL, .sender = "t", .def = f->d},
	};
	checked(f, r, &c);
	th_submission wrong = c.sub;
	th_report *other = th_report_new("X2", "T", 1, "2021-Q2", 1, 3);   /* 3 columns, not 5 */
	wrong.report = other;
	for (int i = 0; i < 4; i++) {
		res = apply_sub(f, i < 3 ? bad[i] : wrong);
		assert_int_equal(res.status, TH_STORE_REJECTED);
		assert_int_equal(res.code, TH_EINVAL);
		assert_non_null(strstr(res.message, "not checked"));
	}
	assert_int_equal(th_store_get_report(f->s, "X2", "T", "2021-Q2", &back, NULL), TH_ENOTFOUND);
	th_report_destroy(&other);
	/* checked, then the period's hierarchy changes (a version effective as early comes
	 * in) before it is applied: retry later, nothing stored under either version */
	fx_add_units(f, "@version v1b\n@effective 2021-01-01\n" UNITS_HEAD "C\t\tcity\tCity\n"
	                "D1\tC\tdistrict\tD1\nX2\tD1\tcommune\tX2\n");
	res = apply_sub(f, c.sub);
	assert_int_equal(res.status, TH_STORE_RETRY);
	assert_int_equal(res.code, TH_EBUSY);
	assert_non_null(strstr(res.message, "v1b"));
	assert_int_equal(th_store_get_report(f->s, "X2", "T", "2021-Q2", &back, NULL), TH_ENOTFOUND);
	th_checked_release(&c);
	/* checked under v1b, then another appendix version is put in force */
	checked(f, r, &c);
	assert_int_equal(th_defset_add(f->defs, parse_def(2)), 0);
	assert_int_equal(th_store_set_in_force(f->s, "T", "2021-Q2", 2), 0);
	res = apply_sub(f, c.sub);
	assert_int_equal(res.status, TH_STORE_RETRY);
	assert_int_equal(res.code, TH_EDEFCHANGED);
	assert_int_equal(res.stored_rev, 0);
	assert_int_equal(th_store_get_report(f->s, "X2", "T", "2021-Q2", &back, NULL), TH_ENOTFOUND);
	assert_int_equal(th_store_set_in_force(f->s, "T", "2021-Q2", 1), 0);
	res = apply_sub(f, c.sub);
	assert_int_equal(res.status, TH_STORE_ACCEPTED);
	th_checked_release(&c);
	th_report_destroy(&r);
	verify_ok(f);   /* re-hashes every record */
	fx_free(f);
}

static void conflict_rejected(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 5, 4));
	int code = 0;
	uint64_t stored = 0;
	assert_int_equal(one(f, mk1("X1", 5, 99), &code, &stored), TH_ACK_REJECTED);
	assert_int_equal(code, TH_ECONFLICT);
	assert_int_equal(stored, 5);
	assert_int_equal(tot(f, "C", C_A), 4);
	fx_free(f);
}

static void stale_acknowledged(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 5, 4));
	int code = 0;
	uint64_t stored = 0;
	assert_int_equal(one(f, mk1("X1", 3, 77), &code, &stored), TH_ACK_STALE);
	assert_int_equal(stored, 5);
	assert_int_equal(tot(f, "C", C_A), 4);
	fx_free(f);
}

/* A period keeps the appendix version its reports were accepted with after a newer
 * version (with another layout) is loaded, across reopening, and a store made before
 * the binding existed binds its periods from its records' versions. */
static void period_keeps_its_version(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, 4));
	assert_int_equal(tot(f, "C", C_A), 4);
	/* version 2 adds a column: another rollup layout */
	char text[2048];
	snprintf(text, sizeof text, DEF_HEAD "2" DEF_BODY
	         "[column g]\ntitle = G\ntype = integer\nrollup = sum\n");
	th_def *v2 = NULL;
	assert_int_equal(th_def_parse(text, strlen(text), "t2.def", &v2, NULL), 0);
	assert_int_not_equal(v2->n_slots, f->d->n_slots);
	assert_int_equal(th_defset_add(f->defs, v2), 0);
	assert_int_equal(th_store_def_for(f->s, "T", P)->version, 1);
	assert_int_equal(th_store_def_for(f->s, "T", "2022")->version, 2);   /* not bound yet */
	assert_int_equal(tot(f, "C", C_A), 4);                              /* still readable */
	must_accept(f, mk1("X1", 2, 6));                                    /* a v1 correction */
	assert_int_equal(tot(f, "C", C_A), 6);
	int code = 0;
	th_report *r22 = mk1("X1", 1, 3);
	free(r22->period);
	r22->period = strdup("2022");
	assert_int_equal(one(f, r22, &code, NULL), TH_ACK_RETRY_LATER);     /* 2022 takes v2 */
	assert_int_equal(code, TH_EDEFCHANGED);
	verify_ok(f);
	fx_reopen(f);
	assert_int_equal(th_store_def_for(f->s, "T", P)->version, 1);
	assert_int_equal(tot(f, "C", C_A), 6);
	/* a store from before the bindings: remove them, reopen, bound again from the records */
	th_store_close(&f->s);
	MDB_env *env;
	MDB_dbi meta;
	MDB_txn *txn = raw_begin(f, "meta", &env, &meta);
	MDB_val k1 = {10, "dv-scanned"}, k2 = {3 + 2 + 4, "dv:T\0" P};
	assert_int_equal(mdb_del(txn, meta, &k1, NULL), 0);
	assert_int_equal(mdb_del(txn, meta, &k2, NULL), 0);
	raw_commit(env, txn);
	fx_open(f);
	assert_int_equal(th_store_def_for(f->s, "T", P)->version, 1);
	assert_int_equal(tot(f, "C", C_A), 6);
	verify_ok(f);
	fx_free(f);
}

static void replace_removes_rows(void **state)
{
	(void)state;
	fx *f = fx_new();
	row r1[] = {{1, 10, NUL, NUL, 1}, {2, 20, NUL, NUL, 1}, {3, 30, NUL, NUL, 0}};
	must_accept(f, mk("X1", P, 1, r1, 3));
	assert_int_equal(tot(f, "C", C_A), 60);
	th_node n = node(f, "C");
	assert_int_equal(n.total[0], 3);   /* slot 0: rows */
	th_node_free(&n);
	row r2[] = {{2, 5, NUL, NUL, 0}};
	must_accept(f, mk("X1", P, 2, r2, 1));
	assert_int_equal(tot(f, "C", C_A), 5);
	assert_int_equal(tot(f, "D1", C_F), 0);
	n = node(f, "D1");
	assert_int_equal(n.total[0], 1);
	th_node_free(&n);
	th_report *r = NULL;
	assert_int_equal(th_store_get_report(f->s, "X1", "T", P, &r, NULL), 0);
	assert_int_equal(r->n_rows, 1);
	th_report_destroy(&r);
	verify_ok(f);
	fx_free(f);
}

typedef struct hist {
	uint64_t revs[16];
	int64_t a[16];
	size_t n;
} hist;

static int hist_cb(void *ctx, const th_revision_info *info, const th_report *r)
{
	hist *h = ctx;
	if (h->n < 16) {
		h->revs[h->n] = info->rev;
		h->a[h->n] = r->n_rows ? th_report_cell(r, 0, C_A)->i : NUL;
		h->n++;
	}
	return 0;
}

static void revisions_in_one_group_apply_in_rev_order(void **state)
{
	(void)state;
	fx *f = fx_new();
	th_report *rs[5] = {mk1("X1", 30, 3), mk1("X2", 7, 100), mk1("X1", 10, 1), mk1("X1", 20, 2),
	                    mk1("X1", 10, 1)};
	th_ack_result res[5];
	assert_int_equal(apply_n(f, rs, 5, res, NULL, NULL, NULL), 0);
	assert_int_equal(res[0].status, TH_ACK_ACCEPTED);
	assert_int_equal(res[0].rev, 30);
	assert_string_equal(res[0].unit, "X1");
	assert_string_equal(res[0].appendix, "T");
	assert_string_equal(res[0].period, P);
	assert_int_equal(res[1].status, TH_ACK_ACCEPTED);
	assert_int_equal(res[2].status + res[4].status, TH_ACK_ACCEPTED + TH_ACK_DUPLICATE);
	assert_int_equal(res[3].status, TH_ACK_ACCEPTED);
	for (int i = 0; i < 5; i++) {
		/* every answer names the key's rev after the whole group */
		assert_int_equal(res[i].stored_rev, i == 1 ? 7 : 30);
		th_ack_result_free(&res[i]);
	}
	assert_int_equal(tot(f, "X1", C_A), 3);
	assert_int_equal(tot(f, "C", C_A), 103);
	hist h = {0};
	assert_int_equal(th_store_history(f->s, "X1", "T", P, hist_cb, &h), 0);
	assert_int_equal(h.n, 3);
	assert_int_equal(h.revs[0], 10);
	assert_int_equal(h.revs[1], 20);
	assert_int_equal(h.revs[2], 30);
	assert_int_equal(h.a[0], 1);
	assert_int_equal(h.a[2], 3);
	/* a stale one in the next group */
	int code;
	uint64_t stored;
	assert_int_equal(one(f, mk1("X1", 20, 2), &code, &stored), TH_ACK_STALE);
	assert_int_equal(stored, 30);
	th_node n = node(f, "X1");
	assert_int_equal(n.corrections, 2);
	th_node_free(&n);
	verify_ok(f);
	fx_free(f);
}

static void null_differs_from_zero_through_removal(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, NUL));
	int isnull = 0;
	val(f, "C", C_A, 0, &isnull);
	assert_true(isnull);
	must_accept(f, mk1("X2", 1, 0));
	assert_int_equal(val(f, "C", C_A, 0, &isnull), 0);
	assert_false(isnull);
	must_accept(f, mk1("X2", 2, NUL));   /* the only non-null value leaves */
	val(f, "C", C_A, 0, &isnull);
	assert_true(isnull);
	val(f, "X2", C_A, 1, &isnull);
	assert_true(isnull);
	th_node n = node(f, "C");
	assert_int_equal(n.total[0], 2);     /* two rows are still counted */
	th_node_free(&n);
	verify_ok(f);
	fx_free(f);
}

static void min_max_recomputed_after_removal(void **state)
{
	(void)state;
	fx *f = fx_new();
	row a[] = {{1, NUL, 5, 50, -1}};
	row b[] = {{1, NUL, 3, 80, -1}};
	row c[] = {{1, NUL, 4, 60, -1}};
	must_accept(f, mk("X1", P, 1, a, 1));
	must_accept(f, mk("X2", P, 1, b, 1));
	must_accept(f, mk("X3", P, 1, c, 1));
	assert_int_equal(tot(f, "D1", C_LO), 3);
	assert_int_equal(tot(f, "C", C_LO), 3);
	assert_int_equal(tot(f, "C", C_HI), 80);
	row b2[] = {{1, NUL, 10, 20, -1}};
	must_accept(f, mk("X2", P, 2, b2, 1));
	assert_int_equal(tot(f, "D1", C_LO), 5);
	assert_int_equal(tot(f, "C", C_LO), 4);
	assert_int_equal(tot(f, "D1", C_HI), 50);
	assert_int_equal(tot(f, "C", C_HI), 60);
	must_accept(f, tomb("X1", 2));
	assert_int_equal(tot(f, "D1", C_LO), 10);
	assert_int_equal(tot(f, "D1", C_HI), 20);
	must_accept(f, tomb("X2", 3));
	assert_int_equal(tot(f, "D1", C_LO), NUL);   /* no values left: null */
	assert_int_equal(tot(f, "C", C_LO), 4);
	verify_ok(f);
	fx_free(f);
}

static void overflow_rejected_nothing_applied(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, INT64_MAX - 10));
	th_node before = node(f, "D1");
	th_report *rs[2] = {mk1("X2", 1, 11), mk1("X3", 1, 11)};
	th_ack_result res[2];
	assert_int_equal(apply_n(f, rs, 2, res, NULL, NULL, NULL), 0);
	assert_int_equal(res[0].status, TH_ACK_REJECTED);
	assert_int_equal(res[0].code, TH_EOVERFLOW);
	assert_int_equal(res[1].status, TH_ACK_REJECTED);   /* overflows at C */
	assert_int_equal(res[1].code, TH_EOVERFLOW);
	th_ack_result_free(&res[0]);
	th_ack_result_free(&res[1]);
	th_report *r = NULL;
	assert_int_equal(th_store_get_report(f->s, "X2", "T", P, &r, NULL), TH_ENOTFOUND);
	assert_int_equal(th_store_get_report(f->s, "X3", "T", P, &r, NULL), TH_ENOTFOUND);
	th_node after = node(f, "D1");
	assert_int_equal(after.version, before.version);
	assert_int_equal(after.reported, 1);
	assert_int_equal(tot(f, "C", C_A), INT64_MAX - 10);
	assert_int_equal(tot(f, "D2", C_A), NUL);
	th_node_free(&before);
	th_node_free(&after);
	/* fits when the big value shrinks first, in the same group */
	th_report *ok[2] = {mk1("X2", 1, 11), mk1("X1", 2, 0)};
	assert_int_equal(apply_n(f, ok, 2, res, NULL, NULL, NULL), 0);
	assert_int_equal(res[1].status, TH_ACK_ACCEPTED);
	/* X1 sorts before X2: applied first, so X2 fits */
	assert_int_equal(res[0].status, TH_ACK_ACCEPTED);
	th_ack_result_free(&res[0]);
	th_ack_result_free(&res[1]);
	assert_int_equal(tot(f, "C", C_A), 11);
	verify_ok(f);
	fx_free(f);
}

typedef struct names {
	char v[16][TH_CODE_MAX + 1];
	uint32_t exp[16], rep[16];
	int64_t a[16];
	size_t n;
} names;

static int names_cb(void *ctx, const th_unit *u, const th_node *n)
{
	names *x = ctx;
	if (x->n < 16) {
		snprintf(x->v[x->n], sizeof x->v[0], "%s", u->code);
		x->exp[x->n] = n->expected;
		x->rep[x->n] = n->reported;
		x->a[x->n] = n->total ? n->total[1] : 0;
		x->n++;
	}
	return 0;
}

static void empty_report_is_a_report(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk("X1", P, 1, NULL, 0));
	th_node n = node(f, "D1");
	assert_int_equal(n.reported, 1);
	assert_int_equal(n.total[0], 0);
	th_node_free(&n);
	assert_int_equal(tot(f, "D1", C_A), NUL);
	names m = {0};
	assert_int_equal(th_store_missing(f->s, "T", P, "D1", names_cb, &m), 0);
	assert_int_equal(m.n, 2);   /* D1 and X2, not X1 */
	assert_string_equal(m.v[0], "D1");
	assert_string_equal(m.v[1], "X2");
	verify_ok(f);
	fx_free(f);
}

static void tombstone_withdraws(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, 4));
	must_accept(f, mk1("X2", 1, 6));
	th_node n = node(f, "D1");
	assert_int_equal(n.reported, 2);
	th_node_free(&n);
	must_accept(f, tomb("X1", 2));
	assert_int_equal(tot(f, "C", C_A), 6);
	n = node(f, "D1");
	assert_int_equal(n.reported, 1);
	assert_int_equal(n.corrections, 0);
	th_node_free(&n);
	th_report *r = NULL;
	th_revision_info info;
	assert_int_equal(th_store_get_report(f->s, "X1", "T", P, &r, &info), 0);
	assert_int_equal(info.tombstone, 1);
	assert_int_equal(r->n_rows, 0);
	th_report_destroy(&r);
	names m = {0};
	assert_int_equal(th_store_missing(f->s, "T", P, "D1", names_cb, &m), 0);
	assert_int_equal(m.n, 2);
	assert_string_equal(m.v[0], "D1");
	assert_string_equal(m.v[1], "X1");
	/* a new revision after the withdrawal counts again, as a correction */
	must_accept(f, mk1("X1", 3, 1));
	n = node(f, "C");
	assert_int_equal(n.reported, 2);
	assert_int_equal(n.corrections, 1);
	th_node_free(&n);
	assert_int_equal(tot(f, "C", C_A), 7);
	verify_ok(f);
	fx_free(f);
}

static void completeness_on_time_late_corrections(void **state)
{
	(void)state;
	fx *f = fx_new();
	assert_int_equal(th_store_set_deadline(f->s, "T", P, NULL, 29991231), 0);
	assert_int_equal(th_store_set_deadline(f->s, "T", P, "X2", 20000101), 0);
	must_accept(f, mk1("X1", 1, 1));
	must_accept(f, mk1("X2", 1, 1));
	must_accept(f, mk1("D2", 1, 1));
	must_accept(f, mk1("X1", 2, 2));
	must_accept(f, mk1("X1", 3, 3));
	/* the deadline moving later does not change a decided key */
	assert_int_equal(th_store_set_deadline(f->s, "T", P, "X2", 29991231), 0);
	must_accept(f, mk1("X2", 2, 1));
	th_node n = node(f, "C");
	assert_int_equal(n.expected, 5);   /* D1 D2 X1 X2 X3; the city is not a submitter */
	assert_int_equal(n.reported, 3);
	assert_int_equal(n.on_time, 2);
	assert_int_equal(n.late, 1);
	assert_int_equal(n.corrections, 3);
	th_node_free(&n);
	n = node(f, "X2");
	assert_int_equal(n.late, 1);
	assert_int_equal(n.expected, 1);
	th_node_free(&n);
	n = node(f, "D2");
	assert_int_equal(n.expected, 2);
	assert_int_equal(n.reported, 1);
	assert_int_equal(n.on_time, 1);
	th_node_free(&n);
	names m = {0};
	assert_int_equal(th_store_missing(f->s, "T", P, NULL, names_cb, &m), 0);
	assert_int_equal(m.n, 2);
	assert_string_equal(m.v[0], "D1");
	assert_string_equal(m.v[1], "X3");
	verify_ok(f);
	/* no deadline configured: on time */
	th_report *q = mk1("X3", 1, 1);
	free(q->period);
	q->period = strdup("2021-Q2");
	must_accept(f, q);
	th_node qn;
	assert_int_equal(th_store_get_node(f->s, "T", "2021-Q2", "C", &qn), 0);
	assert_int_equal(qn.on_time, 1);
	assert_int_equal(qn.late, 0);
	th_node_free(&qn);
	fx_free(f);
}

static void level_and_children_in_order(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X2", 1, 5));
	names m = {0};
	assert_int_equal(th_store_level(f->s, "T", P, 3, NULL, names_cb, &m), 0);
	assert_int_equal(m.n, 3);
	assert_string_equal(m.v[0], "X1");
	assert_string_equal(m.v[1], "X2");
	assert_string_equal(m.v[2], "X3");
	assert_int_equal(m.a[0], 0);   /* zero node */
	assert_int_equal(m.a[1], 5);
	assert_int_equal(m.rep[1], 1);
	memset(&m, 0, sizeof m);
	assert_int_equal(th_store_level(f->s, "T", P, 0, "C", names_cb, &m), 0);
	assert_int_equal(m.n, 2);
	assert_string_equal(m.v[0], "D1");
	assert_string_equal(m.v[1], "D2");
	assert_int_equal(m.a[0], 5);
	assert_int_equal(m.exp[0], 3);
	assert_int_equal(th_store_level(f->s, "T", P, 0, "NOPE", names_cb, &m), TH_EUNIT);
	fx_free(f);
}

static void changed_nodes_and_commit_ids(void **state)
{
	(void)state;
	fx *f = fx_new();
	uint64_t c0 = th_store_last_commit(f->s);
	th_report *rs[3] = {mk1("X1", 1, 1), mk1("X2", 1, 1), mk1("X3", 1, 1)};
	th_ack_result res[3];
	th_changed_node *ch = NULL;
	size_t nch = 0;
	uint64_t cid = 0;
	assert_int_equal(apply_n(f, rs, 3, res, &ch, &nch, &cid), 0);
	assert_int_equal(cid, c0 + 1);
	for (int i = 0; i < 3; i++)
		th_ack_result_free(&res[i]);
	/* X1 X2 X3 D1 D2 C, each once */
	assert_int_equal(nch, 6);
	for (size_t i = 0; i < nch; i++) {
		if (!strcmp(ch[i].unit, "C")) {
			assert_int_equal(ch[i].level, 1);
			assert_int_equal(ch[i].node_version, 3);
		} else if (!strcmp(ch[i].unit, "D1")) {
			assert_int_equal(ch[i].level, 2);
			assert_int_equal(ch[i].node_version, 2);
		} else if (ch[i].unit[0] == 'X') {
			assert_int_equal(ch[i].level, 3);
			assert_int_equal(ch[i].node_version, 1);
		}
		assert_string_equal(ch[i].appendix, "T");
		assert_string_equal(ch[i].period, P);
		for (size_t j = 0; j < i; j++)
			assert_string_not_equal(ch[i].unit, ch[j].unit);
	}
	free(ch);
	th_node n = node(f, "C");
	assert_int_equal(n.version, 3);
	assert_int_equal(n.commit, c0 + 1);
	th_node_free(&n);
	th_report *r2 = mk1("X1", 1, 1);
	assert_int_equal(apply_n(f, &r2, 1, res, &ch, &nch, &cid), 0);
	assert_int_equal(cid, c0 + 2);
	assert_int_equal(nch, 0);   /* a duplicate changes no node */
	th_ack_result_free(&res[0]);
	free(ch);
	assert_int_equal(th_store_last_commit(f->s), c0 + 2);
	fx_free(f);
}

/* a report of n rows with long text keys, to fill pages quickly */
static th_report *big(const char *unit, uint64_t rev, int n, int64_t a)
{
	th_report *r = th_report_new(unit, "T", 1, P, rev, NCOLS);
	assert_non_null(r);
	for (int i = 0; i < n; i++) {
		long k = th_report_add_row(r);
		assert_true(k >= 0);
		for (size_t c = 0; c < NCOLS; c++)
			th_report_cell(r, (size_t)k, c)->null = 1;
		char buf[128];
		snprintf(buf, sizeof buf, "row-%04d-padding-padding-padding-padding-padding-padding", i);
		th_value *kv = th_report_cell(r, (size_t)k, C_K);
		kv->null = 0;
		kv->s = strdup(buf);
		kv->len = (uint32_t)strlen(buf);
		set_int(th_report_cell(r, (size_t)k, C_A), a);
	}
	return r;
}

static void map_full_grows_and_replays(void **state)
{
	(void)state;
	fx *f = fx_new_opts(64 << 10, 0, UNITS_V1);
	static const char *units[] = {"X1", "X2", "X3", "D1", "D2"};
	int64_t want = 0;
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
		want = 5 * 40 * (int64_t)(g + 1);
	}
	th_store_stats st;
	assert_int_equal(th_store_stats_get(f->s, &st), 0);
	assert_true(st.map_size >= (size_t)(64 << 10) * 8);   /* doubled at least three times */
	assert_int_equal(st.revisions, 40);
	assert_int_equal(st.reports, 5);
	assert_int_equal(tot(f, "C", C_A), want);
	verify_ok(f);
	fx_reopen(f);
	assert_int_equal(tot(f, "C", C_A), want);
	verify_ok(f);
	fx_free(f);
}

/* --- reads are pure, and run beside the writer ------------------------------------ */

static int count_binding(void *ctx, const char *period, const char *version)
{
	(void)period;
	(void)version;
	(*(int *)ctx)++;
	return 0;
}

static int bindings(fx *f)
{
	int n = 0;
	assert_int_equal(th_store_bindings(f->s, count_binding, &n), 0);
	return n;
}

static int ignore_node(void *ctx, const th_unit *u, const th_node *n)
{
	(void)u;
	(void)n;
	(*(int *)ctx)++;
	return 0;
}

static const char *version_for(fx *f, const char *period)
{
	const th_units *h = NULL;
	assert_int_equal(th_store_hierarchy_for(f->s, period, &h), 0);
	return th_units_version(h);
}

/* Every read of a period no report has bound answers from the version that would
 * be chosen and binds nothing (140 future months read, as a reader key's queries
 * would); a version loaded afterwards, effective at one of them, is the one the
 * period's first report is accepted under: its new unit files for it. */
static void reads_never_bind(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, 4));   /* binds 2021 */
	assert_int_equal(bindings(f), 1);
	for (int i = 0; i < 140; i++) {
		char per[8];
		snprintf(per, sizeof per, "%04d-%02d", 2040 + i / 12, i % 12 + 1);
		assert_string_equal(version_for(f, per), "v1");
		assert_ptr_equal(th_store_def_for(f->s, "T", per), f->d);
		th_node n;
		assert_int_equal(th_store_get_node(f->s, "T", per, "C", &n), 0);
		assert_int_equal(n.reported, 0);
		assert_int_equal(n.expected, 5);
		th_node_free(&n);
		int rows = 0;
		assert_int_equal(th_store_level(f->s, "T", per, 3, NULL, ignore_node, &rows), 0);
		assert_int_equal(rows, 3);
		rows = 0;
		assert_int_equal(th_store_missing(f->s, "T", per, NULL, ignore_node, &rows), 0);
		assert_int_equal(rows, 5);
		uint64_t rev = 99;
		assert_int_equal(th_store_rev(f->s, "X1", "T", per, &rev), TH_ENOTFOUND);
		assert_int_equal(rev, 99);
	}
	assert_int_equal(bindings(f), 1);
	assert_string_equal(version_for(f, "2051-08"), "v1");
	/* a reorganisation effective 2040-01-01 adds NEW1 */
	fx_add_units(f, "@version v2040\n@effective 2040-01-01\n" UNITS_HEAD "C\t\tcity\tCity\n"
	                "D1\tC\tdistrict\tD1\nX1\tD1\tcommune\tX1\nNEW1\tD1\tcommune\tNew\n");
	assert_string_equal(version_for(f, "2040-01"), "v2040");
	assert_string_equal(version_for(f, "2039-12"), "v1");
	assert_string_equal(version_for(f, P), "v1");   /* bound: stays */
	th_report *r = mk1("NEW1", 1, 8);
	free(r->period);
	r->period = strdup("2040-01");
	int code = 0;
	assert_int_equal(one(f, r, &code, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(bindings(f), 2);
	th_node n;
	assert_int_equal(th_store_get_node(f->s, "T", "2040-01", "D1", &n), 0);
	assert_int_equal(n.reported, 1);
	assert_int_equal(n.expected, 3);
	th_node_free(&n);
	/* a rejected report binds nothing: NEW1 is not in v1, which 2039-12 would use */
	r = mk1("NEW1", 1, 8);
	free(r->period);
	r->period = strdup("2039-12");
	assert_int_equal(one(f, r, &code, NULL), TH_ACK_REJECTED);
	assert_int_equal(code, TH_EUNIT);
	assert_int_equal(bindings(f), 2);
	fx_reopen(f);
	assert_int_equal(bindings(f), 2);
	assert_string_equal(version_for(f, "2040-01"), "v2040");
	verify_ok(f);
	fx_free(f);
}

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

static void map_limit_gives_retry_later(void **state)
{
	(void)state;
	fx *f = fx_new_opts(64 << 10, 128 << 10, UNITS_V1);
	uint64_t rev = 1;
	int full = 0;
	for (int g = 0; g < 200 && !full; g++, rev++) {
		th_report *rs[2] = {big("X1", rev, 60, 1), big("X2", rev, 60, 1)};
		th_ack_result res[2];
		uint64_t c0 = th_store_last_commit(f->s);
		int rc = apply_n(f, rs, 2, res, NULL, NULL, NULL);
		if (rc == TH_ENOSPC) {
			full = 1;
			for (int i = 0; i < 2; i++) {
				assert_int_equal(res[i].status, TH_ACK_RETRY_LATER);
				assert_int_equal(res[i].code, TH_ENOSPC);
			}
			assert_int_equal(th_store_last_commit(f->s), c0);
		} else {
			assert_int_equal(rc, 0);
		}
		th_ack_result_free(&res[0]);
		th_ack_result_free(&res[1]);
	}
	assert_true(full);
	/* the previous group is intact */
	th_report *r = NULL;
	th_revision_info info;
	assert_int_equal(th_store_get_report(f->s, "X1", "T", P, &r, &info), 0);
	assert_int_equal(info.rev, rev - 2);
	th_report_destroy(&r);
	assert_int_equal(tot(f, "C", C_A), 120);
	verify_ok(f);
	fx_free(f);
}

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

/* A node as store format 1 kept it (store/STORAGE.md): the 40-byte header
 * of the stored value `head` with encoding 0, then own[] and total[] as int64.
 * malloc'd. */
static uint8_t *fixed_node(const void *head, const th_node *n, size_t n_slots)
{
	uint8_t *b = malloc(40 + 16 * n_slots);
	assert_non_null(b);
	memcpy(b, head, 40);
	memset(b + 36, 0, 4);   /* enc 0: fixed */
	memcpy(b + 40, n->own, 8 * n_slots);
	memcpy(b + 40 + 8 * n_slots, n->total, 8 * n_slots);
	return b;
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

typedef struct binds {
	char p[8][TH_PERIOD_MAX + 1], v[8][32];
	size_t n;
} binds;

static int bind_cb(void *ctx, const char *period, const char *version)
{
	binds *b = ctx;
	if (b->n < 8) {
		snprintf(b->p[b->n], sizeof b->p[0], "%s", period);
		snprintf(b->v[b->n], sizeof b->v[0], "%s", version);
		b->n++;
	}
	return 0;
}

static int hier_cb(void *ctx, const th_units *u)
{
	binds *b = ctx;
	if (b->n < 8)
		snprintf(b->v[b->n++], sizeof b->v[0], "%s", th_units_version(u));
	return 0;
}

static void new_hierarchy_leaves_bound_periods(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, 4));
	must_accept(f, mk1("X3", 1, 5));
	th_node d2 = node(f, "D2");
	th_node c = node(f, "C");
	fx_add_units(f, UNITS_V2);
	/* the same version id with other text is refused */
	th_units *clash = parse_units("@version v2\n@effective 2022-01-01\n" UNITS_HEAD "C\t\tcity\tC\n");
	assert_int_equal(th_store_add_hierarchy(f->s, clash), TH_EEXIST);
	th_units_destroy(&clash);
	assert_string_equal(th_units_version(th_store_current_hierarchy(f->s)), "v2");
	/* 2021 stays on v1: same nodes, D2 still there, X4 unknown */
	th_node d2b = node(f, "D2");
	th_node cb = node(f, "C");
	assert_true(th_rollup_equal(f->d, d2b.total, d2.total));
	assert_true(th_rollup_equal(f->d, cb.total, c.total));
	assert_int_equal(cb.version, c.version);
	th_node_free(&d2);
	th_node_free(&c);
	th_node_free(&d2b);
	th_node_free(&cb);
	int code;
	assert_int_equal(one(f, mk1("X4", 1, 1), &code, NULL), TH_ACK_REJECTED);
	assert_int_equal(code, TH_EUNIT);
	must_accept(f, mk1("X3", 2, 6));
	assert_int_equal(tot(f, "D2", C_A), 6);
	assert_int_equal(tot(f, "D1", C_A), 4);
	/* 2022 binds to v2: X3 under D1, X4 exists */
	th_report *r = mk1("X3", 1, 7);
	free(r->period);
	r->period = strdup("2022");
	must_accept(f, r);
	r = mk1("X4", 1, 1);
	free(r->period);
	r->period = strdup("2022");
	must_accept(f, r);
	th_node n;
	assert_int_equal(th_store_get_node(f->s, "T", "2022", "D1", &n), 0);
	assert_int_equal(n.total[1], 8);
	assert_int_equal(n.expected, 5);
	th_node_free(&n);
	assert_int_equal(th_store_get_node(f->s, "T", "2022", "D2", &n), TH_EUNIT);
	const th_units *hu = NULL;
	assert_int_equal(th_store_hierarchy_for(f->s, "2021-Q4", &hu), 0);
	assert_string_equal(th_units_version(hu), "v1");
	/* that read did not bind 2021-Q4: only accepted reports bind (2021, 2022) */
	binds b = {0};
	assert_int_equal(th_store_bindings(f->s, bind_cb, &b), 0);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.p[0], "2021");
	assert_string_equal(b.v[0], "v1");
	assert_string_equal(b.p[1], "2022");
	assert_string_equal(b.v[1], "v2");
	memset(&b, 0, sizeof b);
	assert_int_equal(th_store_hierarchies(f->s, hier_cb, &b), 0);
	assert_int_equal(b.n, 2);
	assert_string_equal(b.v[0], "v1");
	assert_string_equal(b.v[1], "v2");
	verify_ok(f);
	/* after a reopen the versions and bindings are still there */
	fx_reopen(f);
	assert_int_equal(tot(f, "D2", C_A), 6);
	assert_int_equal(th_store_get_node(f->s, "T", "2022", "D1", &n), 0);
	assert_int_equal(n.total[1], 8);
	th_node_free(&n);
	verify_ok(f);
	fx_free(f);
}

static void hierarchy_origin_recorded_once(void **state)
{
	(void)state;
	fx *f = fx_new_opts(0, 0, NULL);
	int64_t t = 0;
	char origin[TH_ORIGIN_MAX];
	th_units *u = parse_units(UNITS_V1);
	assert_int_equal(th_store_hierarchy_origin(f->s, "v1", &t, origin, sizeof origin), TH_ENOTFOUND);
	assert_int_equal(th_store_add_hierarchy_from(f->s, u, "file /a/v1.units"), 0);
	assert_int_equal(th_store_hierarchy_origin(f->s, "v1", &t, origin, sizeof origin), 0);
	assert_string_equal(origin, "file /a/v1.units");
	assert_true(t > 0);
	/* the same text again (a reload, another path): the first record stays */
	int64_t t2 = 0;
	assert_int_equal(th_store_add_hierarchy_from(f->s, u, "file /b/v1.units"), 0);
	assert_int_equal(th_store_hierarchy_origin(f->s, "v1", &t2, origin, sizeof origin), 0);
	assert_string_equal(origin, "file /a/v1.units");
	assert_int_equal(t2, t);
	th_units_destroy(&u);
	/* a version stored without an origin has none; a short buffer truncates */
	fx_add_units(f, UNITS_V2);
	assert_int_equal(th_store_hierarchy_origin(f->s, "v2", &t2, origin, sizeof origin), 0);
	assert_string_equal(origin, "");
	char small[5];
	assert_int_equal(th_store_hierarchy_origin(f->s, "v1", NULL, small, sizeof small), 0);
	assert_string_equal(small, "file");
	/* kept in the store */
	fx_reopen(f);
	assert_int_equal(th_store_hierarchy_origin(f->s, "v1", &t2, origin, sizeof origin), 0);
	assert_string_equal(origin, "file /a/v1.units");
	assert_int_equal(t2, t);
	fx_free(f);
}

static void rebuild_and_verify_detect_damage(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, 4));
	must_accept(f, mk1("X2", 1, 6));
	th_node before = node(f, "C");
	th_node d1 = node(f, "D1");
	th_store_close(&f->s);
	/* damage D1's node directly: total[1] = 999 */
	MDB_env *env;
	MDB_dbi db;
	MDB_txn *txn = raw_begin(f, "rollups", &env, &db);
	char key[] = "T\0" P "\0D1";
	MDB_val k = {sizeof key - 1, key}, v;
	assert_int_equal(mdb_get(txn, db, &k, &v), 0);
	d1.total[1] = 999;
	uint8_t *copy = fixed_node(v.mv_data, &d1, f->d->n_slots);
	th_node_free(&d1);
	MDB_val nv = {40 + 16 * f->d->n_slots, copy};
	assert_int_equal(mdb_put(txn, db, &k, &nv, 0), 0);
	raw_commit(env, txn);
	free(copy);
	fx_open(f);
	assert_int_equal(tot(f, "D1", C_A), 999);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_store_verify(f->s, dg), TH_ESTORE);
	assert_true(th_diag_errors(dg) >= 1);
	assert_non_null(strstr(th_diag_text(dg, 0), "D1"));
	th_diag_destroy(&dg);
	assert_int_equal(th_store_rebuild(f->s), 0);
	verify_ok(f);
	assert_int_equal(tot(f, "D1", C_A), 10);
	th_node after = node(f, "C");
	assert_true(th_rollup_equal(f->d, after.total, before.total));
	assert_true(after.version > before.version);
	th_node_free(&before);
	th_node_free(&after);
	fx_free(f);
}

static void verify_detects_damaged_history(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, 4));
	must_accept(f, mk1("X1", 2, 5));
	verify_ok(f);
	th_store_close(&f->s);
	MDB_env *env;
	MDB_dbi db;
	MDB_txn *txn = raw_begin(f, "history", &env, &db);
	char key[] = "X1\0T\0" P "\0\0\0\0\0\0\0\0\1";   /* rev 1, big-endian */
	MDB_val k = {sizeof key - 1, key}, v;
	assert_int_equal(mdb_get(txn, db, &k, &v), 0);
	uint8_t *copy = malloc(v.mv_size);
	memcpy(copy, v.mv_data, v.mv_size);
	copy[v.mv_size - 1] ^= 1;   /* the last cell, nil (0xc0), becomes the invalid 0xc1 */
	MDB_val nv = {v.mv_size, copy};
	assert_int_equal(mdb_put(txn, db, &k, &nv, 0), 0);
	raw_commit(env, txn);
	free(copy);
	fx_open(f);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_store_verify(f->s, dg), TH_ESTORE);
	assert_int_equal(th_diag_errors(dg), 1);
	assert_non_null(strstr(th_diag_text(dg, 0), "history X1 T 2021 rev 1"));
	th_diag_destroy(&dg);
	fx_free(f);
}

static int scope_cb(void *ctx, const char *unit, const char *appendix, const char *period,
                    uint64_t rev)
{
	names *m = ctx;
	(void)appendix;
	(void)period;
	if (m->n < 16) {
		snprintf(m->v[m->n], sizeof m->v[0], "%s", unit);
		m->a[m->n++] = (int64_t)rev;
	}
	return 0;
}

static void revs_in_scope_lists_subtree(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 11, 1));
	must_accept(f, mk1("X3", 33, 1));
	must_accept(f, mk1("X1", 12, 1));
	must_accept(f, tomb("X3", 34));
	names m = {0};
	assert_int_equal(th_store_revs_in_scope(f->s, "D1", scope_cb, &m), 0);
	assert_int_equal(m.n, 1);
	assert_string_equal(m.v[0], "X1");
	assert_int_equal(m.a[0], 12);
	memset(&m, 0, sizeof m);
	assert_int_equal(th_store_revs_in_scope(f->s, "C", scope_cb, &m), 0);
	assert_int_equal(m.n, 2);
	assert_string_equal(m.v[1], "X3");
	assert_int_equal(m.a[1], 34);
	th_store_stats st;
	assert_int_equal(th_store_stats_get(f->s, &st), 0);
	assert_int_equal(st.reports, 2);
	assert_int_equal(st.revisions, 4);
	assert_int_equal(st.commits, 4);
	assert_true(st.used_bytes > 0 && st.used_bytes <= st.map_size);
	fx_free(f);
}

static void real_definitions_and_hanoi(void **state)
{
	(void)state;
	th_defset *defs = NULL;
	th_diag *dg = th_diag_new();
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &defs, dg), 0);
	th_diag_destroy(&dg);
	th_units *u = NULL;
	assert_int_equal(th_units_load(tu_src("data/hanoi-2021.units"), &u, NULL), 0);
	char *dir = tu_tmpdir();
	th_store *s = NULL;
	assert_int_equal(th_store_open(dir, NULL, &s), 0);
	assert_int_equal(th_store_set_defs(s, defs), 0);
	assert_int_equal(th_store_add_hierarchy(s, u), 0);
	assert_int_equal(th_store_add_hierarchy(s, u), 0);   /* same text again: fine */
	/* 2021 starts before hanoi-2021's effective date: the earliest version */
	const th_units *hu = NULL;
	assert_int_equal(th_store_hierarchy_for(s, "2021", &hu), 0);
	assert_string_equal(th_units_version(hu), "hanoi-2021");
	const th_def *d = th_defset_latest(defs, "PL1");
	assert_non_null(d);
	long col = th_def_column(d, "ho_so_truc_tiep");
	assert_true(col >= 0);
	static const char *units[] = {"00001", "00004", "00006", "001", "SNV"};
	th_ack_result res[5];
	th_report *rs[5];
	for (int i = 0; i < 5; i++) {
		rs[i] = th_report_new(units[i], "PL1", d->version, "2021", 1, d->n_cols);
		assert_non_null(rs[i]);
		assert_true(th_report_add_row(rs[i]) == 0);
		for (size_t c = 0; c < d->n_cols; c++)
			th_report_cell(rs[i], 0, c)->null = 1;
		th_report_cell(rs[i], 0, (size_t)col)->null = 0;
		th_report_cell(rs[i], 0, (size_t)col)->i = 100 + i;
	}
	assert_int_equal(sf_submit(s, rs, 5, "agent", res, NULL, NULL, NULL), 0);
	for (int i = 0; i < 5; i++) {
		if (res[i].status != TH_ACK_ACCEPTED)
			fprintf(stderr, "%s: %s\n", units[i], res[i].message ? res[i].message : "");
		assert_int_equal(res[i].status, TH_ACK_ACCEPTED);
		th_ack_result_free(&res[i]);
		th_report_destroy(&rs[i]);
	}
	th_node n;
	int isnull;
	assert_int_equal(th_store_get_node(s, "PL1", "2021", "001", &n), 0);
	assert_int_equal(th_rollup_value(d, n.total, (size_t)col, &isnull), 100 + 101 + 102 + 103);
	assert_int_equal(n.level, 2);
	assert_int_equal(n.reported, 4);
	th_node_free(&n);
	assert_int_equal(th_store_get_node(s, "PL1", "2021", "01", &n), 0);
	assert_int_equal(th_rollup_value(d, n.total, (size_t)col, &isnull), 510);
	assert_int_equal(n.expected, th_units_count(u) - 1);   /* all but the city */
	assert_int_equal(n.reported, 5);
	th_node_free(&n);
	assert_int_equal(th_store_get_node(s, "PL3", "2021", "01", &n), 0);
	assert_int_equal(n.expected, 6);                       /* the lead departments */
	assert_int_equal(n.reported, 0);
	th_node_free(&n);
	/* the real submitters: a department outside PL3's submitter_units, a commune
	 * filing PL2 and the city filing PL1 are turned away; a lead department is not
	 * (empty reports: valid, so only the rule decides) */
	static const struct {
		const char *unit, *app, *msg;
	} who[] = {
	    {"SKHDT", "PL3",
	     "SKHDT (department) is not expected to file PL3: it is filed by only SNV, STP, VP, STC, "
	     "STTTT, SKHCN"},
	    {"00001", "PL2", "00001 (commune) is not expected to file PL2: it is filed by department, district"},
	    {"01", "PL1",
	     "01 (city) is not expected to file PL1: it is filed by department, district, commune, agency"},
	    {"SNV", "PL3", NULL},
	};
	for (size_t i = 0; i < sizeof who / sizeof who[0]; i++) {
		const th_def *wd = th_defset_latest(defs, who[i].app);
		th_report *wr = th_report_new(who[i].unit, who[i].app, wd->version, "2021", 1, wd->n_cols);
		assert_non_null(wr);
		th_ack_result wres;
		assert_int_equal(sf_submit(s, &wr, 1, "agent", &wres, NULL, NULL, NULL), 0);
		if (who[i].msg) {
			assert_int_equal(wres.status, TH_ACK_REJECTED);
			assert_int_equal(wres.code, TH_ENOTEXPECTED);
			assert_string_equal(wres.message, who[i].msg);
		} else {
			assert_int_equal(wres.status, TH_ACK_ACCEPTED);
		}
		th_ack_result_free(&wres);
		th_report_destroy(&wr);
	}
	assert_int_equal(th_store_get_node(s, "PL3", "2021", "01", &n), 0);
	assert_int_equal(n.expected, 6);
	assert_int_equal(n.reported, 1);   /* SNV only */
	th_node_free(&n);
	assert_int_equal(th_store_get_node(s, "PL1", "2021", "01", &n), 0);
	assert_int_equal(n.reported, 5);   /* unchanged by the city's attempt */
	th_node_free(&n);
	names m = {0};
	assert_int_equal(th_store_level(s, "PL1", "2021", 2, NULL, names_cb, &m), 0);
	assert_int_equal(m.n, 16);   /* capped by the helper; 61 units at level 2 */
	assert_string_equal(m.v[0], "VP");
	dg = th_diag_new();
	assert_int_equal(th_store_verify(s, dg), 0);
	th_diag_destroy(&dg);
	th_store_close(&s);
	tu_rmrf(dir);
	th_units_destroy(&u);
	th_defset_destroy(&defs);
}

/* --- the property test ------------------------------------------------------------ */

#define PU_MAX 64
#define PREV_MAX 64

typedef struct prow {
	int key;
	int64_t a, lo, hi;
	int fl;
} prow;

typedef struct psent {        /* a revision the test has sent */
	uint64_t rev;
	int tomb;
	size_t n;
	prow rows[5];
} psent;

typedef struct punit {
	psent sent[PREV_MAX];     /* in rev order */
	size_t n_sent;
	long latest;              /* index into sent of the stored revision, -1 none */
	uint64_t next_rev;
} punit;

static uint64_t rng_state;
static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}
static int rndn(int n) { return (int)(rnd() % (uint64_t)n); }

static char *gen_units(int *count)
{
	size_t cap = 8192, len = 0;
	char *t = malloc(cap);
	assert_non_null(t);
	len += (size_t)snprintf(t + len, cap - len, "@version g\n@effective 2020-01-01\n" UNITS_HEAD
	                        "R\t\tcity\tRoot\n");
	int n = 1;
	for (int d = 0; d < 3; d++) {
		len += (size_t)snprintf(t + len, cap - len, "D%d\tR\tdistrict\tD%d\n", d, d);
		n++;
		for (int c = 0; c < 3; c++) {
			len += (size_t)snprintf(t + len, cap - len, "C%d%d\tD%d\tcommune\tC\n", d, c, d);
			n++;
			for (int a = 0; a < 2; a++, n++)
				len += (size_t)snprintf(t + len, cap - len, "A%d%d%d\tC%d%d\tagency\tA\n", d, c, a,
				                        d, c);
		}
	}
	*count = n;
	return t;
}

static th_report *from_sent(const char *unit, const psent *p)
{
	if (p->tomb)
		return tomb(unit, p->rev);
	row r[5];
	for (size_t i = 0; i < p->n; i++) {
		r[i].key = p->rows[i].key;
		r[i].a = p->rows[i].a;
		r[i].lo = p->rows[i].lo;
		r[i].hi = p->rows[i].hi;
		r[i].fl = p->rows[i].fl;
	}
	return mk(unit, P, p->rev, r, p->n);
}

static int64_t rv(void) { return rndn(5) == 0 ? NUL : (int64_t)rndn(2001) - 1000; }

/* checks every node against sums computed here from the latest revisions */
static void check_model(fx *f, const th_units *u, punit *pu, int late)
{
	size_t nu = th_units_count(u);
	for (size_t i = 0; i < nu; i++) {
		int64_t rows = 0, sa = 0, na = 0, lo = 0, nlo = 0, hi = 0, nhi = 0, ft = 0, nf = 0;
		uint32_t reported = 0, expected = 0;
		for (size_t j = 0; j < nu; j++) {
			if (th_units_in_subtree(u, i, j) &&
			    th_def_expects(f->d, th_units_at(u, j)->kind, th_units_at(u, j)->code))
				expected++;
		}
		for (size_t j = 0; j < nu; j++) {
			if (!th_units_in_subtree(u, i, j) || pu[j].latest < 0)
				continue;
			const psent *p = &pu[j].sent[pu[j].latest];
			if (p->tomb)
				continue;
			reported++;
			for (size_t k = 0; k < p->n; k++) {
				const prow *x = &p->rows[k];
				rows++;
				if (x->a != NUL) {
					sa += x->a;
					na++;
				}
				if (x->lo != NUL) {
					lo = nlo++ ? (x->lo < lo ? x->lo : lo) : x->lo;
				}
				if (x->hi != NUL) {
					hi = nhi++ ? (x->hi > hi ? x->hi : hi) : x->hi;
				}
				if (x->fl >= 0) {
					nf++;
					ft += x->fl;
				}
			}
		}
		const th_unit *x = th_units_at(u, i);
		th_node n;
		assert_int_equal(th_store_get_node(f->s, "T", P, x->code, &n), 0);
		int isnull;
		assert_int_equal(n.total[0], rows);
		int64_t v = th_rollup_value(f->d, n.total, C_A, &isnull);
		assert_int_equal(isnull, na == 0);
		if (na)
			assert_int_equal(v, sa);
		v = th_rollup_value(f->d, n.total, C_LO, &isnull);
		assert_int_equal(isnull, nlo == 0);
		if (nlo)
			assert_int_equal(v, lo);
		v = th_rollup_value(f->d, n.total, C_HI, &isnull);
		assert_int_equal(isnull, nhi == 0);
		if (nhi)
			assert_int_equal(v, hi);
		v = th_rollup_value(f->d, n.total, C_F, &isnull);
		assert_int_equal(isnull, nf == 0);
		if (nf)
			assert_int_equal(v, ft);
		assert_int_equal(n.reported, reported);
		assert_int_equal(n.expected, expected);
		assert_true(n.reported <= n.expected);
		assert_int_equal(late ? n.late : n.on_time, reported);
		assert_int_equal(late ? n.on_time : n.late, 0);
		th_node_free(&n);
	}
}

typedef struct pop {
	size_t unit;
	psent p;
	size_t idx;   /* submission order */
} pop;

static int cmp_pop(const void *a, const void *b)
{
	const pop *x = a, *y = b;
	if (x->unit != y->unit)
		return x->unit < y->unit ? -1 : 1;
	if (x->p.rev != y->p.rev)
		return x->p.rev < y->p.rev ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* small_map: start at 64 KiB so the map grows during the run; late: a past
 * default deadline, so every first revision is late */
static void run_property(uint64_t seed, int groups, int small_map, int late)
{
	rng_state = seed;
	int nu = 0;
	char *text = gen_units(&nu);
	assert_true(nu <= PU_MAX);
	fx *f = fx_new_opts(small_map ? 64 << 10 : 0, 0, NULL);
	fx_add_units(f, text);
	if (late)
		assert_int_equal(th_store_set_deadline(f->s, "T", P, NULL, 20000101), 0);
	th_units *u = parse_units(text);
	free(text);
	punit *pu = calloc(PU_MAX, sizeof *pu);
	assert_non_null(pu);
	for (int i = 0; i < nu; i++) {
		pu[i].latest = -1;
		pu[i].next_rev = 1;
	}
	for (int g = 0; g < groups; g++) {
		int n = 1 + rndn(8);
		pop ops[8];
		for (int i = 0; i < n; i++) {
			size_t ui = (size_t)rndn(nu);
			punit *x = &pu[ui];
			ops[i].unit = ui;
			ops[i].idx = (size_t)i;
			int kind = rndn(10);
			if (x->n_sent && kind < 3) {
				/* resend an earlier revision (duplicate or stale) */
				ops[i].p = x->sent[rndn((int)x->n_sent)];
				continue;
			}
			psent *p = &ops[i].p;
			memset(p, 0, sizeof *p);
			p->rev = x->next_rev;
			x->next_rev += 1 + (uint64_t)rndn(3);
			if (kind == 3) {
				p->tomb = 1;
			} else {
				/* distinct row keys from 0..6: rows come and go between revisions */
				int used = 0;
				p->n = (size_t)rndn(6);
				for (size_t k = 0; k < p->n; k++) {
					int key;
					do
						key = rndn(7);
					while (used & (1 << key));
					used |= 1 << key;
					p->rows[k].key = key;
					p->rows[k].a = rv();
					p->rows[k].lo = rv();
					p->rows[k].hi = rv();
					p->rows[k].fl = rndn(3) - 1;
				}
			}
			if (x->n_sent < PREV_MAX)
				x->sent[x->n_sent++] = *p;
		}
		/* expected statuses: per key in rev order */
		th_report *rs[8];
		for (int i = 0; i < n; i++)
			rs[i] = from_sent(th_units_at(u, ops[i].unit)->code, &ops[i].p);
		pop sorted[8];
		memcpy(sorted, ops, sizeof(pop) * (size_t)n);
		qsort(sorted, (size_t)n, sizeof *sorted, cmp_pop);
		th_ack_status want[8];
		int want_code[8];
		for (int i = 0; i < n; i++) {
			punit *x = &pu[sorted[i].unit];
			const th_unit *tu = th_units_at(u, sorted[i].unit);
			uint64_t cur = x->latest >= 0 ? x->sent[x->latest].rev : 0;
			th_ack_status st;
			want_code[sorted[i].idx] = 0;
			if (!sorted[i].p.tomb && !th_def_expects(f->d, tu->kind, tu->code)) {
				/* the root (a city) does not file T: turned away whatever its
				 * rev, nothing of it stored; its withdrawals still apply */
				st = TH_ACK_REJECTED;
				want_code[sorted[i].idx] = TH_ENOTEXPECTED;
			} else if (x->latest < 0 || sorted[i].p.rev > cur) {
				st = TH_ACK_ACCEPTED;
				for (size_t k = 0; k < x->n_sent; k++)
					if (x->sent[k].rev == sorted[i].p.rev)
						x->latest = (long)k;
			} else {
				st = sorted[i].p.rev == cur ? TH_ACK_DUPLICATE : TH_ACK_STALE;
			}
			want[sorted[i].idx] = st;
		}
		th_ack_result res[8];
		assert_int_equal(apply_n(f, rs, (size_t)n, res, NULL, NULL, NULL), 0);
		for (int i = 0; i < n; i++) {
			if (res[i].status != want[i])
				fprintf(stderr, "seed %llu group %d sub %d: status %d, want %d (%s)\n",
				        (unsigned long long)seed, g, i, res[i].status, want[i],
				        res[i].message ? res[i].message : "");
			assert_int_equal(res[i].status, want[i]);
			if (want[i] == TH_ACK_REJECTED)
				assert_int_equal(res[i].code, want_code[i]);
			th_ack_result_free(&res[i]);
		}
		verify_ok(f);
		check_model(f, u, pu, late);
		if (rndn(6) == 0)
			fx_reopen(f);
		if (rndn(15) == 0) {
			assert_int_equal(th_store_rebuild(f->s), 0);
			check_model(f, u, pu, late);
		}
	}
	free(pu);
	th_units_destroy(&u);
	fx_free(f);
}

static void property_incremental_equals_recomputed(void **state)
{
	(void)state;
	static const uint64_t seeds[] = {0x9e3779b97f4a7c15ull, 12345, 0xdeadbeefcafef00dull, 42,
	                                 7777777, 31337};
	for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++)
		run_property(seeds[i], 120, i % 2 == 1, i % 3 == 2);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepted_and_read_back),
		cmocka_unit_test(duplicate_changes_nothing),
		cmocka_unit_test(checked_submission_trusted),
		cmocka_unit_test(reads_never_bind),
		cmocka_unit_test(reads_answered_while_a_commit_is_held),
		cmocka_unit_test(readers_beside_a_growing_writer),
		cmocka_unit_test(conflict_rejected),
		cmocka_unit_test(stale_acknowledged),
		cmocka_unit_test(period_keeps_its_version),
		cmocka_unit_test(replace_removes_rows),
		cmocka_unit_test(revisions_in_one_group_apply_in_rev_order),
		cmocka_unit_test(null_differs_from_zero_through_removal),
		cmocka_unit_test(min_max_recomputed_after_removal),
		cmocka_unit_test(overflow_rejected_nothing_applied),
		cmocka_unit_test(empty_report_is_a_report),
		cmocka_unit_test(tombstone_withdraws),
		cmocka_unit_test(completeness_on_time_late_corrections),
		cmocka_unit_test(level_and_children_in_order),
		cmocka_unit_test(changed_nodes_and_commit_ids),
		cmocka_unit_test(map_full_grows_and_replays),
		cmocka_unit_test(map_limit_gives_retry_later),
		cmocka_unit_test(reopen_keeps_everything),
		cmocka_unit_test(format_version_checked),
		cmocka_unit_test(format1_store_upgraded),
		cmocka_unit_test(readonly_open_reads),
		cmocka_unit_test(readonly_survives_map_growth),
		cmocka_unit_test(new_hierarchy_leaves_bound_periods),
		cmocka_unit_test(hierarchy_origin_recorded_once),
		cmocka_unit_test(rebuild_and_verify_detect_damage),
		cmocka_unit_test(verify_detects_damaged_history),
		cmocka_unit_test(revs_in_scope_lists_subtree),
		cmocka_unit_test(real_definitions_and_hanoi),
		cmocka_unit_test(property_incremental_equals_recomputed),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

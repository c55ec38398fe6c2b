/* test_store_apply.c -- a group applied (store/apply.c): the checked submissions the
 * store takes, revisions and dedup, rollups by exact delta (null, min/max, overflow),
 * withdrawals, completeness, changed nodes and commit ids, map growth (DESIGN
 * sections 4-6). */
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
	static th_key k;   /* the submission's sender points into it */
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

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepted_and_read_back),
		cmocka_unit_test(duplicate_changes_nothing),
		cmocka_unit_test(checked_submission_trusted),
		cmocka_unit_test(conflict_rejected),
		cmocka_unit_test(stale_acknowledged),
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
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

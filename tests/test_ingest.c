/* test_ingest.c -- the rules a report must pass before the store takes it, each
 * written once (collector/ingest.c): roles, withdrawals, the definition in
 * force, validation (errors and warnings), the unit in the period's hierarchy,
 * the key's scope, the appendix's submitters; what a passing report becomes
 * (the checked submission the store trusts) and how every answer becomes an ack
 * (th_ingest_answer). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_canon.h"
#include "tstore.h"

static th_key key_of(const char *unit, th_role role)
{
	th_key k;
	memset(&k, 0, sizeof k);
	snprintf(k.unit, sizeof k.unit, "%s", unit);
	k.role = role;
	snprintf(k.comment, sizeof k.comment, "key of %s", unit);
	return k;
}

/* Runs th_ingest_check; returns 1 when it passed.  *res is the answer (freed by the
 * caller), *c the checked submission (released here unless keep). */
static int check(fx *f, const th_key *k, int insecure, th_report *r, th_ack_result *res)
{
	th_checked c;
	memset(res, 0, sizeof *res);
	int ok = th_ingest_check(f->s, k, insecure, r, TH_EPROTO, "bad frame", &c, res);
	if (ok)
		th_checked_release(&c);
	return ok;
}

static void roles_and_withdrawals(void **state)
{
	(void)state;
	fx *f = fx_new();
	th_ack_result res;
	th_key reader = key_of("C", TH_ROLE_READER), agent = key_of("C", TH_ROLE_AGENT),
	       admin = key_of("C", TH_ROLE_ADMIN);
	th_report *r = mk1("X1", 1, 4), *t = tomb("X1", 2);
	assert_int_equal(check(f, &reader, 0, r, &res), 0);
	assert_int_equal(res.status, TH_ACK_REJECTED);
	assert_int_equal(res.code, TH_EAUTH);
	assert_string_equal(res.message, "this key has the reader role and cannot submit");
	th_ack_result_free(&res);
	assert_int_equal(check(f, &agent, 0, r, &res), 1);
	th_ack_result_free(&res);
	assert_int_equal(check(f, &agent, 0, t, &res), 0);
	assert_int_equal(res.code, TH_EAUTH);
	assert_string_equal(res.message, "only an admin key may withdraw a report");
	th_ack_result_free(&res);
	assert_int_equal(check(f, &admin, 0, t, &res), 1);
	th_ack_result_free(&res);
	/* a report that did not decode: its decoder's reason, retry only for a definition
	 * the agent must fetch */
	th_checked c;
	memset(&res, 0, sizeof res);
	assert_int_equal(th_ingest_check(f->s, &agent, 0, NULL, TH_ETYPE, "row 2: not an integer", &c, &res), 0);
	assert_int_equal(res.status, TH_ACK_REJECTED);
	assert_int_equal(res.code, TH_ETYPE);
	assert_string_equal(res.message, "row 2: not an integer");
	th_ack_result_free(&res);
	memset(&res, 0, sizeof res);
	assert_int_equal(th_ingest_check(f->s, &agent, 0, NULL, TH_EDEFCHANGED, NULL, &c, &res), 0);
	assert_int_equal(res.status, TH_ACK_RETRY_LATER);
	assert_string_equal(res.message, th_strerror(TH_EDEFCHANGED));
	th_ack_result_free(&res);
	th_report_destroy(&r);
	th_report_destroy(&t);
	fx_free(f);
}

/* A key files for its own subtree; outside it, scope.  In insecure mode every
 * peer is an admin of everything; an admin key is scoped like any other. */
static void scope_is_the_keys_subtree(void **state)
{
	(void)state;
	fx *f = fx_new();
	th_ack_result res;
	th_key d1 = key_of("D1", TH_ROLE_AGENT), d1admin = key_of("D1", TH_ROLE_ADMIN),
	       x1 = key_of("X1", TH_ROLE_AGENT), gone = key_of("NOWHERE", TH_ROLE_AGENT);
	th_report *own = mk1("X1", 1, 4), *neighbour = mk1("X3", 1, 4), *up = mk1("D1", 1, 4);
	assert_int_equal(check(f, &d1, 0, own, &res), 1);
	th_ack_result_free(&res);
	assert_int_equal(check(f, &d1, 0, up, &res), 1);     /* itself */
	th_ack_result_free(&res);
	const th_key *refused[] = {&d1, &d1admin, &x1, &gone};
	th_report *for_[] = {neighbour, neighbour, up, own};
	for (int i = 0; i < 4; i++) {
		assert_int_equal(check(f, refused[i], 0, for_[i], &res), 0);
		assert_int_equal(res.status, TH_ACK_REJECTED);
		assert_int_equal(res.code, TH_ESCOPE);
		assert_non_null(strstr(res.message, "outside its subtree"));
		assert_non_null(strstr(res.message, for_[i]->unit));
		th_ack_result_free(&res);
	}
	assert_int_equal(check(f, &d1admin, 1, neighbour, &res), 1);   /* insecure */
	th_ack_result_free(&res);
	assert_int_equal(check(f, &d1, 1, neighbour, &res), 0);        /* insecure, not admin */
	th_ack_result_free(&res);
	th_report_destroy(&own);
	th_report_destroy(&neighbour);
	th_report_destroy(&up);
	fx_free(f);
}

/* What passes is what the store needs and trusts: the definition and hierarchy in
 * force, the canonical form and its hash, the sender. */
static void checked_submission_complete(void **state)
{
	(void)state;
	fx *f = fx_new();
	th_key k = key_of("D1", TH_ROLE_AGENT);
	th_report *r = mk1("X1", 3, 4);
	th_checked c;
	th_ack_result res;
	memset(&res, 0, sizeof res);
	assert_int_equal(th_ingest_check(f->s, &k, 0, r, 0, NULL, &c, &res), 1);
	assert_null(res.message);
	assert_int_equal(res.n_warnings, 0);
	const th_units *h = NULL;
	assert_int_equal(th_store_hierarchy_for(f->s, P, &h), 0);
	assert_ptr_equal(c.sub.report, r);
	assert_ptr_equal(c.sub.def, th_store_def_for(f->s, "T", P));
	assert_ptr_equal(c.sub.hier, h);
	assert_string_equal(c.sub.sender, "key of D1");
	uint8_t *canon = NULL, hash[TH_HASH_LEN];
	size_t len = 0;
	assert_int_equal(th_canon_encode_hash(r, f->d, &canon, &len, hash), 0);
	assert_int_equal(c.sub.canon_len, len);
	assert_memory_equal(c.sub.canon, canon, len);
	assert_memory_equal(c.sub.hash, hash, TH_HASH_LEN);
	free(canon);
	th_checked_release(&c);
	/* a key without a comment is recorded by its unit */
	k.comment[0] = 0;
	assert_int_equal(th_ingest_check(f->s, &k, 0, r, 0, NULL, &c, &res), 1);
	assert_string_equal(c.sub.sender, "D1");
	th_checked_release(&c);
	th_ack_result_free(&res);
	th_report_destroy(&r);
	fx_free(f);
}

/* Validation: the first error with its row and column and how many more; the
 * warnings of a report that passes travel to its ack, after the store took it. */
static void validation_errors_and_warnings(void **state)
{
	(void)state;
	fx *f = fx_new();
	th_report *r = mk1("X1", 1, 4);
	th_report_add_row(r);   /* a second row without its required key */
	th_report_cell(r, 0, C_F)->null = 0;
	th_report_cell(r, 0, C_F)->i = 7;   /* not a bool */
	th_ack_result res;
	th_key k = key_of("C", TH_ROLE_ADMIN);
	assert_int_equal(check(f, &k, 0, r, &res), 0);
	assert_int_equal(res.status, TH_ACK_REJECTED);
	assert_int_equal(res.row, 1);
	assert_string_equal(res.column, "f");
	assert_non_null(strstr(res.message, "(and 1 more problems)"));
	th_ack_result_free(&res);
	th_report_destroy(&r);
	fx_free(f);
	/* PL2 derives a task's status: a declared status that disagrees is a warning, the
	 * derived one is stored */
	th_defset *defs = NULL;
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &defs, NULL), 0);
	th_units *u = NULL;
	assert_int_equal(th_units_load(tu_src("data/hanoi-2021.units"), &u, NULL), 0);
	char *dir = tu_tmpdir();
	th_store *s = NULL;
	assert_int_equal(th_store_open(dir, NULL, &s), 0);
	assert_int_equal(th_store_set_defs(s, defs), 0);
	assert_int_equal(th_store_add_hierarchy(s, u), 0);
	const th_def *d = th_defset_latest(defs, "PL2");
	const th_derive *dv = d->derive;
	assert_non_null(dv);
	th_report *t = th_report_new("SNV", "PL2", d->version, "2021", 1, d->n_cols);
	t->as_of = 20210630;
	th_report_add_row(t);
	for (size_t c = 0; c < d->n_cols; c++) {
		th_value *v = th_report_cell(t, 0, c);
		if (!d->cols[c].required)
			continue;
		v->null = 0;
		if (d->cols[c].type == TH_T_TEXT) {
			v->s = strdup("NV1");
			v->len = 3;
		} else {
			v->i = d->cols[c].type == TH_T_DATE ? 20210101 : 0;
		}
	}
	th_value_clear(th_report_cell(t, 0, dv->done_col));
	set_int(th_report_cell(t, 0, dv->deadline_col), 20210301);
	set_int(th_report_cell(t, 0, dv->done_col), 20210302);   /* done late */
	set_int(th_report_cell(t, 0, dv->status_col), dv->code_of[TH_TASK_DONE_ON_TIME]);
	assert_int_equal(sf_submit(s, &t, 1, "SNV agent", &res, NULL, NULL, NULL), 0);
	assert_int_equal(res.status, TH_ACK_ACCEPTED);
	assert_int_equal(res.n_warnings, 1);
	th_report *back = NULL;
	assert_int_equal(th_store_get_report(s, "SNV", "PL2", "2021", &back, NULL), 0);
	assert_int_equal(th_report_cell(back, 0, dv->status_col)->i, dv->code_of[TH_TASK_DONE_LATE]);
	th_report_destroy(&back);
	th_ack_result_free(&res);
	th_report_destroy(&t);
	th_store_close(&s);
	th_units_destroy(&u);
	th_defset_destroy(&defs);
	tu_rmrf(dir);
}

/* The ack of a report: the store's result when it went to the store (the warnings
 * kept), the identity of a report that did not decode, and the key's stored rev
 * for a refusal. */
static void answers_become_acks(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 7, 4));
	th_ack_result res;
	memset(&res, 0, sizeof res);
	res.warnings = calloc(1, sizeof *res.warnings);
	res.warnings[0] = strdup("a warning from validation");
	res.n_warnings = 1;
	th_store_result sr = {.status = TH_STORE_STALE, .code = TH_ESTALE, .stored_rev = 9};
	snprintf(sr.message, sizeof sr.message, "a newer revision is stored");
	th_ingest_answer(f->s, &sr, "X1", "T", P, 5, &res);
	assert_int_equal(res.status, TH_ACK_STALE);
	assert_int_equal(res.code, TH_ESTALE);
	assert_int_equal(res.stored_rev, 9);
	assert_string_equal(res.message, "a newer revision is stored");
	assert_int_equal(res.n_warnings, 1);
	assert_string_equal(res.warnings[0], "a warning from validation");
	assert_string_equal(res.unit, "X1");
	assert_int_equal(res.rev, 5);
	th_ack_result_free(&res);
	/* refused by ingest: the stored rev is read */
	memset(&res, 0, sizeof res);
	res.status = TH_ACK_REJECTED;
	res.code = TH_EPROTO;
	th_ingest_answer(f->s, NULL, "X1", "T", P, 8, &res);
	assert_int_equal(res.stored_rev, 7);
	assert_string_equal(res.period, P);
	th_ack_result_free(&res);
	memset(&res, 0, sizeof res);
	th_ingest_answer(f->s, NULL, "", "", "", 0, &res);   /* nothing readable */
	assert_int_equal(res.stored_rev, 0);
	assert_string_equal(res.unit, "");
	th_ack_result_free(&res);
	fx_free(f);
}

static void definition_changed_retry(void **state)
{
	(void)state;
	fx *f = fx_new();
	assert_int_equal(th_defset_add(f->defs, parse_def(2)), 0);  /* v2 now latest */
	int code = 0;
	assert_int_equal(one(f, mk1("X1", 1, 4), &code, NULL), TH_ACK_RETRY_LATER);
	assert_int_equal(code, TH_EDEFCHANGED);
	th_report *r = NULL;
	assert_int_equal(th_store_get_report(f->s, "X1", "T", P, &r, NULL), TH_ENOTFOUND);
	/* configured in force: v1 again */
	assert_int_equal(th_store_set_in_force(f->s, "T", NULL, 1), 0);
	must_accept(f, mk1("X1", 1, 4));
	assert_int_equal(tot(f, "C", C_A), 4);
	/* a period-specific configuration wins; the retry carries the key's stored rev */
	assert_int_equal(th_store_set_in_force(f->s, "T", P, 2), 0);
	uint64_t stored = 0;
	char *m = one_msg(f, mk1("X1", 2, 4), &stored);
	assert_int_equal(stored, 1);
	assert_non_null(strstr(m, "(version 2)"));
	free(m);
	assert_int_equal(th_store_set_in_force(f->s, "T", P, 1), 0);
	assert_int_equal(th_store_set_in_force(f->s, "T", "2021-Q1", 2), 0);
	th_report *q = mk1("X1", 1, 4);
	free(q->period);
	q->period = strdup("2021-Q1");
	assert_int_equal(one(f, q, &code, NULL), TH_ACK_RETRY_LATER);
	assert_int_equal(code, TH_EDEFCHANGED);
	must_accept(f, mk1("X1", 2, 5));   /* 2021 itself: v1 */
	fx_free(f);
}

static void unknown_unit_rejected(void **state)
{
	(void)state;
	fx *f = fx_new();
	int code = 0;
	assert_int_equal(one(f, mk1("NOPE", 1, 4), &code, NULL), TH_ACK_REJECTED);
	assert_int_equal(code, TH_EUNIT);
	char *m = one_msg(f, mk1("NOPE", 1, 4), NULL);
	assert_non_null(strstr(m, "NOPE"));
	assert_non_null(strstr(m, "v1"));
	free(m);
	th_report *r = mk1("X1", 1, 4);
	free(r->appendix);
	r->appendix = strdup("ZZ");
	assert_int_equal(one(f, r, &code, NULL), TH_ACK_REJECTED);
	assert_int_equal(code, TH_EAPPENDIX);
	verify_ok(f);
	fx_free(f);
}

/* The city is not among T's submitters (district commune agency): its report
 * is turned away with not_expected, names who files T, stores nothing and
 * leaves the rollups alone; a withdrawal for it still applies; reported never
 * passes expected. */
static void not_expected_unit_rejected(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, 4));
	must_accept(f, mk1("D1", 1, 10));
	th_node before = node(f, "C");
	assert_int_equal(before.reported, 2);
	int code = 0;
	uint64_t stored = 99;
	assert_int_equal(one(f, mk1("C", 1, 1000), &code, &stored), TH_ACK_REJECTED);
	assert_int_equal(code, TH_ENOTEXPECTED);
	assert_int_equal(stored, 0);
	assert_string_equal(th_errname(code), "not_expected");
	char *m = one_msg(f, mk1("C", 2, 1000), NULL);
	assert_string_equal(m, "C (city) is not expected to file T: it is filed by district, commune, agency");
	free(m);
	/* nothing of it is stored */
	th_report *r = NULL;
	th_revision_info info;
	assert_int_equal(th_store_get_report(f->s, "C", "T", P, &r, &info), TH_ENOTFOUND);
	assert_null(r);
	th_node after = node(f, "C");
	assert_int_equal(after.reported, before.reported);
	assert_int_equal(after.expected, before.expected);
	assert_int_equal(after.version, before.version);
	assert_memory_equal(after.total, before.total, f->d->n_slots * sizeof *before.total);
	assert_memory_equal(after.own, before.own, f->d->n_slots * sizeof *before.own);
	th_node_free(&after);
	th_node_free(&before);
	/* in a group with expected units: only the city's report is turned away */
	th_report *rs[3] = {mk1("X2", 1, 5), mk1("C", 3, 7), mk1("D2", 1, 6)};
	th_ack_result res[3];
	assert_int_equal(apply_n(f, rs, 3, res, NULL, NULL, NULL), 0);
	assert_int_equal(res[0].status, TH_ACK_ACCEPTED);
	assert_int_equal(res[1].status, TH_ACK_REJECTED);
	assert_int_equal(res[1].code, TH_ENOTEXPECTED);
	assert_int_equal(res[2].status, TH_ACK_ACCEPTED);
	for (int i = 0; i < 3; i++)
		th_ack_result_free(&res[i]);
	assert_int_equal(tot(f, "C", C_A), 4 + 10 + 5 + 6);
	/* a withdrawal (what an admin sends) applies even for the city */
	assert_int_equal(one(f, tomb("C", 4), &code, &stored), TH_ACK_ACCEPTED);
	assert_int_equal(stored, 4);
	assert_int_equal(th_store_get_report(f->s, "C", "T", P, &r, &info), 0);
	assert_int_equal(info.tombstone, 1);
	th_report_destroy(&r);
	/* everyone has filed or tried to: reported == expected, never more */
	must_accept(f, mk1("X3", 1, 1));
	static const char *all[] = {"C", "D1", "D2", "X1", "X2", "X3"};
	for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
		th_node n = node(f, all[i]);
		assert_true(n.reported <= n.expected);
		th_node_free(&n);
	}
	th_node n = node(f, "C");
	assert_int_equal(n.expected, 5);
	assert_int_equal(n.reported, 5);
	th_node_free(&n);
	verify_ok(f);
	assert_int_equal(th_store_rebuild(f->s), 0);
	n = node(f, "C");
	assert_int_equal(n.reported, 5);
	assert_int_equal(tot(f, "C", C_A), 4 + 10 + 5 + 6 + 1);
	th_node_free(&n);
	fx_free(f);
}

static void garbage_never_stored(void **state)
{
	(void)state;
	fx *f = fx_new();
	must_accept(f, mk1("X1", 1, 4));
	th_report *bad[5];
	bad[0] = mk1("X2", 2, 4);
	free(bad[0]->period);
	bad[0]->period = strdup("2021-13");          /* malformed period */
	bad[1] = th_report_new("X2", "T", 1, P, 2, 3);   /* wrong column count */
	bad[2] = mk1("X2", 2, 4);
	th_report_cell(bad[2], 0, C_K)->null = 1;   /* required key is null */
	free(th_report_cell(bad[2], 0, C_K)->s);
	th_report_cell(bad[2], 0, C_K)->s = NULL;
	bad[3] = mk1("X2", 2, 4);
	th_report_cell(bad[3], 0, C_F)->null = 0;
	th_report_cell(bad[3], 0, C_F)->i = 7;      /* not a bool */
	bad[4] = mk1("X2", 3, 5);
	free(bad[4]->unit);
	bad[4]->unit = NULL;                        /* no unit at all */
	th_ack_result res[5];
	assert_int_equal(apply_n(f, bad, 5, res, NULL, NULL, NULL), 0);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(res[i].status, TH_ACK_REJECTED);
		assert_true(res[i].code < 0);
		th_ack_result_free(&res[i]);
	}
	th_report *r = NULL;
	assert_int_equal(th_store_get_report(f->s, "X2", "T", P, &r, NULL), TH_ENOTFOUND);
	assert_int_equal(tot(f, "C", C_A), 4);
	verify_ok(f);
	fx_free(f);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(roles_and_withdrawals),
		cmocka_unit_test(scope_is_the_keys_subtree),
		cmocka_unit_test(checked_submission_complete),
		cmocka_unit_test(validation_errors_and_warnings),
		cmocka_unit_test(answers_become_acks),
		cmocka_unit_test(definition_changed_retry),
		cmocka_unit_test(unknown_unit_rejected),
		cmocka_unit_test(not_expected_unit_rejected),
		cmocka_unit_test(garbage_never_stored),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

/* test_store_hierarchy.c -- hierarchy versions and period bindings (store/hierarchy.c):
 * a period keeps its versions, reads never bind, a new version leaves bound periods
 * alone, origins, revs in scope, the real definitions on the Hanoi hierarchy. */
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

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_never_bind),
		cmocka_unit_test(period_keeps_its_version),
		cmocka_unit_test(new_hierarchy_leaves_bound_periods),
		cmocka_unit_test(hierarchy_origin_recorded_once),
		cmocka_unit_test(revs_in_scope_lists_subtree),
		cmocka_unit_test(real_definitions_and_hanoi),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

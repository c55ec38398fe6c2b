/* test_store_blackbox.c -- th_store through its public API only: ingest rules,
 * random property runs against a model, map growth, crash safety, periods,
 * completeness.  Written independently of the store's own tests. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include "store_fixture.h"
#include "th_store.h"
#include "th_rollup.h"
#include "testutil.h"

static const char DEF[] =
	"[appendix]\nid = PLT\nversion = 1\ntitle = T\nsubmitters = district commune\nkey = k\n\n"
	"[column k]\ntitle = K\ntype = integer\nrollup = none\nrequired = yes\n\n"
	"[column a]\ntitle = A\ntype = integer\nrollup = sum\n\n"
	"[column m]\ntitle = M\ntype = integer\nrollup = max\n";
static const char UNITS[] =
	"@version t1\n@effective 2020-01-01\ncode\tparent\tkind\tname\n"
	"R\t\tcity\tRoot\nD1\tR\tdistrict\tD one\nD2\tR\tdistrict\tD two\n"
	"C11\tD1\tcommune\tc11\nC12\tD1\tcommune\tc12\nC21\tD2\tcommune\tc21\n";
#define NU 6
static const char *U[NU] = {"R", "D1", "D2", "C11", "C12", "C21"};
static const char *KIND[NU] = {"city", "district", "district", "commune", "commune", "commune"};
/* the units that file PLT (all but R, a city): the tests that fill the store
 * for every unit send for these */
#define NS 5
static const char *S[NS] = {"D1", "D2", "C11", "C12", "C21"};
static const int PARENT[NU] = {-1, 0, 0, 1, 1, 2};

typedef struct { int n; int64_t k[3], a[3], m[3]; int an[3], mn[3]; } content;
typedef struct { uint64_t rev; content c; int tomb; int have; } model;

static th_defset *ds;
static const th_def *def;
static th_units *units;

static void setup_defs(void)
{
	th_def *d = NULL;
	assert_int_equal(th_def_parse(DEF, sizeof DEF - 1, "t.def", &d, NULL), 0);
	ds = th_defset_new();
	assert_non_null(ds);
	assert_int_equal(th_defset_add(ds, d), 0);
	def = th_defset_latest(ds, "PLT");
	assert_int_equal(th_units_parse(UNITS, sizeof UNITS - 1, "t.units", &units, NULL), 0);
}
static void teardown_defs(void)
{
	th_defset_destroy(&ds);
	th_units_destroy(&units);
}

static th_report *mk(const char *unit, uint64_t rev, const content *c, int tomb)
{
	th_report *r = th_report_new(unit, "PLT", 1, "2021", rev, 3);
	assert_non_null(r);
	r->tombstone = (uint8_t)tomb;
	for (int i = 0; !tomb && i < c->n; i++) {
		long row = th_report_add_row(r);
		assert_true(row >= 0);
		th_value *v = th_report_cell(r, (size_t)row, 0);
		v->null = 0; v->i = c->k[i];
		v = th_report_cell(r, (size_t)row, 1);
		v->null = (uint8_t)c->an[i]; v->i = c->an[i] ? 0 : c->a[i];
		v = th_report_cell(r, (size_t)row, 2);
		v->null = (uint8_t)c->mn[i]; v->i = c->mn[i] ? 0 : c->m[i];
	}
	return r;
}

static th_store *open_store(const char *dir, size_t map)
{
	th_store *s = NULL;
	th_store_opts o = {0};
	o.map_size = map;
	assert_int_equal(th_store_open(dir, &o, &s), 0);
	assert_int_equal(th_store_set_defs(s, ds), 0);
	assert_int_equal(th_store_add_hierarchy(s, units), 0);
	return s;
}

/* One group, as the collector sends it (store_fixture.h). */
static int apply(th_store *s, th_report **rs, size_t n, th_ack_result *res)
{
	return sf_submit(s, rs, n, "test", res, NULL, NULL, NULL);
}

static void basic(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	content c = {2, {1, 2}, {5, 7}, {3, 9}, {0, 0}, {0, 0}};
	th_report *r[4];
	th_ack_result res[4];
	r[0] = mk("C11", 10, &c, 0);
	assert_int_equal(apply(s, r, 1, res), 0);
	assert_int_equal(res[0].status, TH_ACK_ACCEPTED);
	th_ack_result_free(&res[0]);
	/* duplicate */
	assert_int_equal(apply(s, r, 1, res), 0);
	assert_int_equal(res[0].status, TH_ACK_DUPLICATE);
	th_ack_result_free(&res[0]);
	/* conflict */
	content c2 = c; c2.a[0] = 6;
	r[1] = mk("C11", 10, &c2, 0);
	assert_int_equal(apply(s, r + 1, 1, res), 0);
	assert_int_equal(res[0].status, TH_ACK_REJECTED);
	assert_int_equal(res[0].code, TH_ECONFLICT);
	th_ack_result_free(&res[0]);
	/* stale */
	r[2] = mk("C11", 9, &c2, 0);
	assert_int_equal(apply(s, r + 2, 1, res), 0);
	assert_int_equal(res[0].status, TH_ACK_STALE);
	assert_int_equal(res[0].stored_rev, 10);
	th_ack_result_free(&res[0]);
	/* unknown unit */
	r[3] = mk("ZZ", 1, &c, 0);
	assert_int_equal(apply(s, r + 3, 1, res), 0);
	assert_int_equal(res[0].status, TH_ACK_REJECTED);
	assert_int_equal(res[0].code, TH_EUNIT);
	th_ack_result_free(&res[0]);
	th_node n;
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLT", "2021", "R", &n), 0);
	int isnull;
	assert_int_equal(th_rollup_value(def, n.total, 1, &isnull), 12);
	assert_int_equal(isnull, 0);
	assert_int_equal(th_rollup_value(def, n.total, 2, &isnull), 9);
	assert_int_equal(n.reported, 1);
	th_node_free(&n);
	for (int i = 0; i < 4; i++)
		th_report_destroy(&r[i]);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}

/* independent totals: sum of a, count of non-null a, rows, max of m */
typedef struct { int64_t sum, cnt, rows, max, mcnt; } tot;
static void model_totals(const model *m, int u, tot *t)
{
	memset(t, 0, sizeof *t);
	for (int x = 0; x < NU; x++) {
		int in = 0;
		for (int y = x; y >= 0; y = PARENT[y])
			if (y == u)
				in = 1;
		if (!in || !m[x].have || m[x].tomb)
			continue;
		for (int i = 0; i < m[x].c.n; i++) {
			t->rows++;
			if (!m[x].c.an[i]) { t->sum += m[x].c.a[i]; t->cnt++; }
			if (!m[x].c.mn[i]) {
				if (!t->mcnt || m[x].c.m[i] > t->max)
					t->max = m[x].c.m[i];
				t->mcnt++;
			}
		}
	}
}

static void rnd_content(content *c, unsigned *seed)
{
	c->n = rand_r(seed) % 4;
	for (int i = 0; i < c->n; i++) {
		c->k[i] = i + 1;
		c->an[i] = rand_r(seed) % 4 == 0;
		c->a[i] = rand_r(seed) % 100 - 20;
		c->mn[i] = rand_r(seed) % 4 == 0;
		c->m[i] = rand_r(seed) % 50;
	}
}

static void property(void **st)
{
	(void)st;
	setup_defs();
	for (unsigned seed0 = 1; seed0 <= 6; seed0++) {
		unsigned seed = seed0;
		char *dir = tu_tmpdir();
		th_store *s = open_store(dir, seed0 & 1 ? 65536 : 0);
		model m[NU];
		memset(m, 0, sizeof m);
		uint64_t nextrev[NU];
		for (int i = 0; i < NU; i++) nextrev[i] = 1;
		for (int g = 0; g < 60; g++) {
			size_t n = 1 + (size_t)(rand_r(&seed) % 8);
			th_report *r[8];
			th_ack_result res[8];
			int exp[8];
			model pend[NU];
			memcpy(pend, m, sizeof m);
			/* build group; expected computed in rev order per key */
			int uidx[8];
			for (size_t i = 0; i < n; i++) {
				int u = rand_r(&seed) % NU;
				uidx[i] = u;
				int kind = rand_r(&seed) % 10;
				content c;
				rnd_content(&c, &seed);
				if (kind == 0 && m[u].have) {          /* exact resend */
					r[i] = mk(U[u], m[u].rev, &m[u].c, m[u].tomb);
				} else if (kind == 1 && m[u].have && m[u].rev > 1) { /* stale */
					r[i] = mk(U[u], m[u].rev - 1, &c, 0);
				} else {
					int tomb = kind == 2;
					nextrev[u] += 1 + (uint64_t)(rand_r(&seed) % 3);
					r[i] = mk(U[u], nextrev[u], &c, tomb);
				}
			}
			/* expected statuses: process in rev order per key */
			int order[8];
			for (size_t i = 0; i < n; i++) order[i] = (int)i;
			for (size_t i = 0; i < n; i++)
				for (size_t j = i + 1; j < n; j++)
					if (uidx[order[j]] == uidx[order[i]] &&
					    r[order[j]]->rev < r[order[i]]->rev && order[j] > order[i]) {
						/* keep stable enough: we only need per-key rev order */
					}
			/* simple: for each key, sort its submissions by rev */
			for (int u = 0; u < NU; u++) {
				size_t idx[8], k = 0;
				for (size_t i = 0; i < n; i++)
					if (uidx[i] == u) idx[k++] = i;
				for (size_t a = 0; a < k; a++)
					for (size_t b = a + 1; b < k; b++)
						if (r[idx[b]]->rev < r[idx[a]]->rev) {
							size_t t = idx[a]; idx[a] = idx[b]; idx[b] = t;
						}
				for (size_t a = 0; a < k; a++) {
					th_report *x = r[idx[a]];
					if (!x->tombstone && !th_def_expects(def, KIND[u], U[u])) {
						/* R (a city) does not file PLT: turned away
						 * whatever its rev; its withdrawals apply */
						exp[idx[a]] = TH_ACK_REJECTED;
					} else if (!pend[u].have || x->rev > pend[u].rev) {
						exp[idx[a]] = TH_ACK_ACCEPTED;
						pend[u].have = 1;
						pend[u].rev = x->rev;
						pend[u].tomb = x->tombstone;
						content c = {0};
						c.n = (int)x->n_rows;
						for (int q = 0; q < c.n; q++) {
							c.k[q] = th_report_cell(x, (size_t)q, 0)->i;
							c.an[q] = th_report_cell(x, (size_t)q, 1)->null;
							c.a[q] = th_report_cell(x, (size_t)q, 1)->i;
							c.mn[q] = th_report_cell(x, (size_t)q, 2)->null;
							c.m[q] = th_report_cell(x, (size_t)q, 2)->i;
						}
						pend[u].c = c;
					} else if (x->rev == pend[u].rev) {
						exp[idx[a]] = TH_ACK_DUPLICATE; /* only exact resends share a rev */
					} else {
						exp[idx[a]] = TH_ACK_STALE;
					}
				}
			}
			assert_int_equal(apply(s, r, n, res), 0);
			for (size_t i = 0; i < n; i++) {
				if ((int)res[i].status != exp[i])
					fprintf(stderr, "seed %u group %d sub %zu unit %s rev %llu: got %d want %d (%s)\n",
					        seed0, g, i, U[uidx[i]], (unsigned long long)r[i]->rev,
					        res[i].status, exp[i], res[i].message ? res[i].message : "");
				assert_int_equal(res[i].status, exp[i]);
				if (exp[i] == TH_ACK_REJECTED)
					assert_int_equal(res[i].code, TH_ENOTEXPECTED);
				th_ack_result_free(&res[i]);
				th_report_destroy(&r[i]);
			}
			memcpy(m, pend, sizeof m);
			th_diag *dg = th_diag_new();
			int vr = th_store_verify(s, dg);
			for (size_t i = 0; i < th_diag_count(dg); i++)
				fprintf(stderr, "verify: %s\n", th_diag_text(dg, i));
			th_diag_destroy(&dg);
			assert_int_equal(vr, 0);
			for (int u = 0; u < NU; u++) {
				tot t;
				model_totals(m, u, &t);
				th_node nd;
				memset(&nd, 0, sizeof nd);
				assert_int_equal(th_store_get_node(s, "PLT", "2021", U[u], &nd), 0);
				int isnull;
				assert_int_equal(nd.total[0], t.rows);
				int64_t v = th_rollup_value(def, nd.total, 1, &isnull);
				assert_int_equal(isnull, t.cnt == 0);
				if (t.cnt) assert_int_equal(v, t.sum);
				v = th_rollup_value(def, nd.total, 2, &isnull);
				assert_int_equal(isnull, t.mcnt == 0);
				if (t.mcnt) assert_int_equal(v, t.max);
				/* completeness: reported never passes expected */
				uint32_t rep = 0, want_exp = 0;
				for (int x = 0; x < NU; x++) {
					int in = 0;
					for (int y = x; y >= 0; y = PARENT[y])
						if (y == u)
							in = 1;
					if (!in)
						continue;
					want_exp += (uint32_t)th_def_expects(def, KIND[x], U[x]);
					rep += m[x].have && !m[x].tomb;
				}
				assert_int_equal(nd.reported, rep);
				assert_int_equal(nd.expected, want_exp);
				assert_true(nd.reported <= nd.expected);
				th_node_free(&nd);
			}
			if (rand_r(&seed) % 10 == 0) {
				th_store_close(&s);
				s = open_store(dir, 0);
			}
		}
		th_store_close(&s);
		tu_rmrf(dir);
	}
	teardown_defs();
}


static void one(th_store *s, th_report *r, th_ack_status want, int code)
{
	th_ack_result res;
	assert_int_equal(apply(s, &r, 1, &res), 0);
	if ((int)res.status != (int)want || res.code != code)
		fprintf(stderr, "%s rev %llu: status %d code %d (%s)\n", r->unit,
		        (unsigned long long)r->rev, res.status, res.code, res.message ? res.message : "");
	assert_int_equal(res.status, want);
	assert_int_equal(res.code, code);
	th_ack_result_free(&res);
	th_report_destroy(&r);
}

static int64_t total_a(th_store *s, const char *period, const char *unit, int *isnull)
{
	th_node n;
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLT", period, unit, &n), 0);
	int64_t v = th_rollup_value(def, n.total, 1, isnull);
	th_node_free(&n);
	return v;
}

static void overflow(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	content c = {1, {1}, {INT64_MAX - 5}, {1}, {0}, {0}};
	one(s, mk("C11", 1, &c, 0), TH_ACK_ACCEPTED, 0);
	content c2 = {1, {1}, {10}, {1}, {0}, {0}};
	one(s, mk("C12", 1, &c2, 0), TH_ACK_REJECTED, TH_EOVERFLOW);
	th_report *r = NULL;
	th_revision_info info;
	assert_int_equal(th_store_get_report(s, "C12", "PLT", "2021", &r, &info), TH_ENOTFOUND);
	int isnull;
	assert_int_equal(total_a(s, "2021", "R", &isnull), INT64_MAX - 5);
	assert_int_equal(total_a(s, "2021", "C12", &isnull), 0);
	assert_int_equal(isnull, 1);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_store_verify(s, dg), 0);
	th_diag_destroy(&dg);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}

static void mapfull_reopen(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 65536);
	uint8_t uuid[16];
	memcpy(uuid, th_store_uuid(s), 16);
	char per[16];
	for (int g = 0; g < 40; g++) {
		th_report *r[NS];
		th_ack_result res[NS];
		snprintf(per, sizeof per, "20%02d", 10 + g % 20);
		for (int u = 0; u < NS; u++) {
			content c = {3, {1, 2, 3}, {g, u, 1}, {1, 2, 3}, {0, 0, 0}, {0, 0, 0}};
			r[u] = th_report_new(S[u], "PLT", 1, per, (uint64_t)(g + 1), 3);
			th_report *t = mk(S[u], (uint64_t)(g + 1), &c, 0);
			th_report_destroy(&r[u]);
			free(t->period);
			t->period = strdup(per);
			r[u] = t;
		}
		assert_int_equal(apply(s, r, NS, res), 0);
		for (int u = 0; u < NS; u++) {
			assert_int_equal(res[u].status, TH_ACK_ACCEPTED);
			th_ack_result_free(&res[u]);
			th_report_destroy(&r[u]);
		}
	}
	th_store_stats stats;
	assert_int_equal(th_store_stats_get(s, &stats), 0);
	assert_true(stats.map_size > 4 * 65536);
	assert_int_equal(stats.reports, 20 * NS);
	assert_int_equal(stats.revisions, 40 * NS);
	uint64_t last = th_store_last_commit(s);
	assert_int_equal(last, 40);
	th_store_close(&s);
	s = open_store(dir, 0);
	assert_memory_equal(th_store_uuid(s), uuid, 16);
	assert_int_equal(th_store_last_commit(s), 40);
	int isnull;
	/* period 2010: groups 0 and 20 -> latest g = 20: sum a over the NS units
	 * = NS*20 + (0..NS-1) + NS */
	assert_int_equal(total_a(s, "2010", "R", &isnull), NS * 20 + NS * (NS - 1) / 2 + NS);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_store_verify(s, dg), 0);
	th_diag_destroy(&dg);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}

static const char UNITS2[] =
	"@version t2\n@effective 2022-01-01\ncode\tparent\tkind\tname\n"
	"R\t\tcity\tRoot\nD1\tR\tdistrict\tD one\nD2\tR\tdistrict\tD two\n"
	"C11\tD1\tcommune\tc11\nC12\tD2\tcommune\tc12 moved\nC21\tD2\tcommune\tc21\n";

static void hier_versions(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	content c = {1, {1}, {7}, {1}, {0}, {0}};
	one(s, mk("C12", 1, &c, 0), TH_ACK_ACCEPTED, 0);   /* 2021 bound to t1 */
	th_units *u2 = NULL;
	assert_int_equal(th_units_parse(UNITS2, sizeof UNITS2 - 1, "t2.units", &u2, NULL), 0);
	assert_int_equal(th_store_add_hierarchy(s, u2), 0);
	th_report *r = mk("C12", 1, &c, 0);
	free(r->period);
	r->period = strdup("2022");
	one(s, r, TH_ACK_ACCEPTED, 0);
	int isnull;
	assert_int_equal(total_a(s, "2021", "D1", &isnull), 7);
	assert_int_equal(total_a(s, "2021", "D2", &isnull), 0);
	assert_int_equal(isnull, 1);
	assert_int_equal(total_a(s, "2022", "D2", &isnull), 7);
	assert_int_equal(total_a(s, "2022", "D1", &isnull), 0);
	assert_int_equal(isnull, 1);
	const th_units *h = NULL;
	assert_int_equal(th_store_hierarchy_for(s, "2021", &h), 0);
	assert_string_equal(th_units_version(h), "t1");
	assert_int_equal(th_store_hierarchy_for(s, "2022", &h), 0);
	assert_string_equal(th_units_version(h), "t2");
	th_store_close(&s);
	/* reopen: bindings persist */
	s = open_store(dir, 0);
	assert_int_equal(th_store_hierarchy_for(s, "2021", &h), 0);
	assert_string_equal(th_units_version(h), "t1");
	assert_int_equal(total_a(s, "2021", "D1", &isnull), 7);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_store_verify(s, dg), 0);
	th_diag_destroy(&dg);
	th_store_close(&s);
	th_units_destroy(&u2);
	tu_rmrf(dir);
	teardown_defs();
}

static void completeness(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	assert_int_equal(th_store_set_deadline(s, "PLT", "2021", NULL, 20000101), 0);
	assert_int_equal(th_store_set_deadline(s, "PLT", "2021", "C11", 29991231), 0);
	content c = {1, {1}, {7}, {1}, {0}, {0}};
	one(s, mk("C11", 1, &c, 0), TH_ACK_ACCEPTED, 0);
	one(s, mk("C12", 1, &c, 0), TH_ACK_ACCEPTED, 0);
	one(s, mk("C11", 2, &c, 0), TH_ACK_ACCEPTED, 0);
	th_node n;
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLT", "2021", "R", &n), 0);
	assert_int_equal(n.expected, 5);
	assert_int_equal(n.reported, 2);
	assert_int_equal(n.on_time, 1);
	assert_int_equal(n.late, 1);
	assert_int_equal(n.corrections, 1);
	th_node_free(&n);
	/* tombstone C12: not reported any more */
	one(s, mk("C12", 5, &c, 1), TH_ACK_ACCEPTED, 0);
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLT", "2021", "D1", &n), 0);
	assert_int_equal(n.expected, 3);
	assert_int_equal(n.reported, 1);
	assert_int_equal(n.total[0], 1);
	th_node_free(&n);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_store_verify(s, dg), 0);
	th_diag_destroy(&dg);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}

static void defchanged(void **st)
{
	(void)st;
	setup_defs();
	static const char DEF2[] =
		"[appendix]\nid = PLT\nversion = 2\ntitle = T\nsubmitters = district commune\nkey = k\n\n"
		"[column k]\ntitle = K\ntype = integer\nrollup = none\nrequired = yes\n";
	th_def *d2 = NULL;
	assert_int_equal(th_def_parse(DEF2, sizeof DEF2 - 1, "t2.def", &d2, NULL), 0);
	assert_int_equal(th_defset_add(ds, d2), 0);
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	content c = {1, {1}, {7}, {1}, {0}, {0}};
	one(s, mk("C11", 1, &c, 0), TH_ACK_RETRY_LATER, TH_EDEFCHANGED);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}


typedef struct { int n; char codes[16][8]; } lst;
static int lst_cb(void *ctx, const th_unit *u, const th_node *n)
{
	lst *l = ctx;
	(void)n;
	if (l->n < 16)
		snprintf(l->codes[l->n++], 8, "%s", u->code);
	return 0;
}
typedef struct { int n; uint64_t revs[16]; int tomb[16]; } hist;
static int hist_cb(void *ctx, const th_revision_info *info, const th_report *r)
{
	hist *h = ctx;
	(void)r;
	if (h->n < 16) {
		h->tomb[h->n] = info->tombstone;
		h->revs[h->n++] = info->rev;
	}
	return 0;
}
static int rev_cb(void *ctx, const char *unit, const char *appendix, const char *period, uint64_t rev)
{
	lst *l = ctx;
	(void)appendix; (void)period; (void)rev;
	if (l->n < 16)
		snprintf(l->codes[l->n++], 8, "%s", unit);
	return 0;
}

static void reads(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	content c = {2, {1, 2}, {7, 8}, {1, 2}, {0, 0}, {0, 0}};
	one(s, mk("C11", 3, &c, 0), TH_ACK_ACCEPTED, 0);
	content c1 = {1, {1}, {7}, {1}, {0}, {0}};
	one(s, mk("C11", 5, &c1, 0), TH_ACK_ACCEPTED, 0);
	one(s, mk("C21", 1, &c1, 0), TH_ACK_ACCEPTED, 0);
	lst l = {0};
	assert_int_equal(th_store_level(s, "PLT", "2021", 3, NULL, lst_cb, &l), 0);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.codes[0], "C11");
	assert_string_equal(l.codes[2], "C21");
	memset(&l, 0, sizeof l);
	assert_int_equal(th_store_level(s, "PLT", "2021", 0, "D1", lst_cb, &l), 0);
	assert_int_equal(l.n, 2);
	memset(&l, 0, sizeof l);
	assert_int_equal(th_store_missing(s, "PLT", "2021", "R", lst_cb, &l), 0);
	assert_int_equal(l.n, 3);   /* D1, D2, C12 */
	hist h = {0};
	assert_int_equal(th_store_history(s, "C11", "PLT", "2021", hist_cb, &h), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.revs[0], 3);
	assert_int_equal(h.revs[1], 5);
	th_report *r = NULL;
	th_revision_info info;
	assert_int_equal(th_store_get_report(s, "C11", "PLT", "2021", &r, &info), 0);
	assert_int_equal(r->n_rows, 1);
	assert_int_equal(info.rev, 5);
	assert_string_equal(info.sender, "test");
	th_report_destroy(&r);
	memset(&l, 0, sizeof l);
	assert_int_equal(th_store_revs_in_scope(s, "D1", rev_cb, &l), 0);
	assert_int_equal(l.n, 1);
	assert_string_equal(l.codes[0], "C11");
	/* readonly open (after the writer: LMDB forbids two opens in one process) */
	uint8_t uu[16];
	memcpy(uu, th_store_uuid(s), 16);
	th_store_close(&s);
	th_store *ro = NULL;
	th_store_opts o = {0};
	o.readonly = 1;
	assert_int_equal(th_store_open(dir, &o, &ro), 0);
	assert_int_equal(th_store_set_defs(ro, ds), 0);
	int isnull;
	assert_int_equal(total_a(ro, "2021", "R", &isnull), 14);
	assert_memory_equal(th_store_uuid(ro), uu, 16);
	th_report *r2 = mk("C12", 1, &c1, 0);
	th_ack_result res;
	int arc = apply(ro, &r2, 1, &res);
	assert_true(arc != 0 || res.status != TH_ACK_ACCEPTED);
	th_ack_result_free(&res);
	th_report_destroy(&r2);
	th_store_close(&ro);
	tu_rmrf(dir);
	teardown_defs();
}

static void garbage(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	content c = {1, {1}, {7}, {1}, {0}, {0}};
	one(s, mk("C11", 1, &c, 0), TH_ACK_ACCEPTED, 0);
	/* wrong column count */
	th_report *r = th_report_new("C12", "PLT", 1, "2021", 1, 2);
	th_report_add_row(r);
	th_ack_result res;
	assert_int_equal(apply(s, &r, 1, &res), 0);
	assert_int_equal(res.status, TH_ACK_REJECTED);
	th_ack_result_free(&res);
	th_report_destroy(&r);
	/* bad period, unknown appendix, absurd unit */
	r = mk("C12", 1, &c, 0);
	free(r->period);
	r->period = strdup("20x1");
	assert_int_equal(apply(s, &r, 1, &res), 0);
	assert_int_equal(res.status, TH_ACK_REJECTED);
	th_ack_result_free(&res);
	th_report_destroy(&r);
	r = mk("C12", 1, &c, 0);
	free(r->appendix);
	r->appendix = strdup("PLZ");
	assert_int_equal(apply(s, &r, 1, &res), 0);
	assert_true(res.status == TH_ACK_REJECTED || res.status == TH_ACK_RETRY_LATER);
	th_ack_result_free(&res);
	th_report_destroy(&r);
	char big[300];
	memset(big, 'A', sizeof big - 1);
	big[sizeof big - 1] = 0;
	r = mk(big, 1, &c, 0);
	assert_int_equal(apply(s, &r, 1, &res), 0);
	assert_int_equal(res.status, TH_ACK_REJECTED);
	th_ack_result_free(&res);
	th_report_destroy(&r);
	int isnull;
	assert_int_equal(total_a(s, "2021", "R", &isnull), 7);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_store_verify(s, dg), 0);
	th_diag_destroy(&dg);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}


static const char DEFM[] =
	"[appendix]\nid = PLM\nversion = 1\ntitle = T\nsubmitters = district commune agency\nkey = k\n\n"
	"[column k]\ntitle = K\ntype = integer\nrollup = none\nrequired = yes\n\n"
	"[column a]\ntitle = A\ntype = integer\nrollup = sum\n\n"
	"[column n]\ntitle = N\ntype = integer\nrollup = min\n\n"
	"[column b]\ntitle = B\ntype = bool\nrollup = count_true\n";
#define MU 40
#define MR 4
typedef struct { int have, tomb, n; uint64_t rev; int64_t a[MR], nn[MR], b[MR]; int an[MR], nnn[MR], bn[MR]; } mrep;

static void property_deep(void **st)
{
	(void)st;
	th_def *d = NULL;
	assert_int_equal(th_def_parse(DEFM, sizeof DEFM - 1, "m.def", &d, NULL), 0);
	th_defset *dset = th_defset_new();
	assert_int_equal(th_defset_add(dset, d), 0);
	const th_def *dm = th_defset_latest(dset, "PLM");
	for (unsigned seed0 = 11; seed0 <= 16; seed0++) {
		unsigned seed = seed0;
		/* generated hierarchy of depth 4 */
		int parent[MU];
		char text[8192];
		size_t tl = (size_t)snprintf(text, sizeof text, "@version g\n@effective 2000-01-01\ncode\tparent\tkind\tname\nU0\t\tcity\troot\n");
		parent[0] = -1;
		int depth[MU];
		depth[0] = 1;
		for (int i = 1; i < MU; i++) {
			int p;
			do p = rand_r(&seed) % i; while (depth[p] >= 4);
			parent[i] = p;
			depth[i] = depth[p] + 1;
			const char *kind = depth[i] == 2 ? "district" : depth[i] == 3 ? "commune" : "agency";
			tl += (size_t)snprintf(text + tl, sizeof text - tl, "U%d\tU%d\t%s\tn%d\n", i, p, kind, i);
		}
		th_units *gu = NULL;
		assert_int_equal(th_units_parse(text, tl, "g.units", &gu, NULL), 0);
		char *dir = tu_tmpdir();
		th_store *s = NULL;
		th_store_opts o = {0};
		o.map_size = 65536;
		assert_int_equal(th_store_open(dir, &o, &s), 0);
		assert_int_equal(th_store_set_defs(s, dset), 0);
		assert_int_equal(th_store_add_hierarchy(s, gu), 0);
		mrep m[MU];
		memset(m, 0, sizeof m);
		uint64_t next[MU];
		for (int i = 0; i < MU; i++) next[i] = 100;
		for (int g = 0; g < 50; g++) {
			size_t n = 1 + (size_t)(rand_r(&seed) % 12);
			th_report *r[12];
			th_ack_result res[12];
			int uix[12];
			for (size_t i = 0; i < n; i++) {
				int u = rand_r(&seed) % MU;
				uix[i] = u;
				int kind = rand_r(&seed) % 8;
				char code[8];
				snprintf(code, sizeof code, "U%d", u);
				uint64_t rev;
				int tomb = 0;
				if (kind == 0 && m[u].have && m[u].rev > 1)
					rev = m[u].rev - 1;   /* stale */
				else {
					next[u] += 1 + (uint64_t)(rand_r(&seed) % 5);
					rev = next[u];
					tomb = kind == 1;
				}
				r[i] = th_report_new(code, "PLM", 1, "2021-Q1", rev, 4);
				r[i]->tombstone = (uint8_t)tomb;
				int rows = tomb ? 0 : rand_r(&seed) % (MR + 1);
				for (int q = 0; q < rows; q++) {
					long row = th_report_add_row(r[i]);
					th_value *v = th_report_cell(r[i], (size_t)row, 0);
					v->null = 0; v->i = q;
					v = th_report_cell(r[i], (size_t)row, 1);
					v->null = rand_r(&seed) % 3 == 0; v->i = v->null ? 0 : rand_r(&seed) % 1000 - 300;
					v = th_report_cell(r[i], (size_t)row, 2);
					v->null = rand_r(&seed) % 3 == 0; v->i = v->null ? 0 : rand_r(&seed) % 20;
					v = th_report_cell(r[i], (size_t)row, 3);
					v->null = rand_r(&seed) % 3 == 0; v->i = v->null ? 0 : rand_r(&seed) % 2;
				}
			}
			uint64_t cid;
			th_changed_node *ch = NULL;
			size_t nch = 0;
			assert_int_equal(sf_submit(s, r, n, "p", res, &ch, &nch, &cid), 0);
			/* changed nodes: unique */
			for (size_t i = 0; i < nch; i++)
				for (size_t j = i + 1; j < nch; j++)
					assert_false(strcmp(ch[i].unit, ch[j].unit) == 0 &&
					             strcmp(ch[i].appendix, ch[j].appendix) == 0 &&
					             strcmp(ch[i].period, ch[j].period) == 0);
			for (size_t i = 0; i < nch; i++) {
				th_node nd;
				memset(&nd, 0, sizeof nd);
				assert_int_equal(th_store_get_node(s, "PLM", "2021-Q1", ch[i].unit, &nd), 0);
				assert_int_equal(nd.version, ch[i].node_version);
				assert_int_equal(nd.level, ch[i].level);
				th_node_free(&nd);
			}
			free(ch);
			/* model: per key in rev order */
			for (int u = 0; u < MU; u++) {
				for (;;) {
					int best = -1;
					for (size_t i = 0; i < n; i++)
						if (uix[i] == u && r[i] && (best < 0 || r[i]->rev < r[best]->rev))
							best = (int)i;
					if (best < 0)
						break;
					th_report *x = r[best];
					const th_unit *tu = th_units_at(gu, (size_t)th_units_find(gu, x->unit));
					/* U0 (a city) does not file PLM: turned away whatever its
					 * rev; its withdrawals apply */
					int want = !x->tombstone && !th_def_expects(dm, tu->kind, tu->code)
					         ? TH_ACK_REJECTED
					         : !m[u].have || x->rev > m[u].rev ? TH_ACK_ACCEPTED
					         : x->rev == m[u].rev ? TH_ACK_DUPLICATE : TH_ACK_STALE;
					assert_int_equal(res[best].status, want);
					if (want == TH_ACK_REJECTED)
						assert_int_equal(res[best].code, TH_ENOTEXPECTED);
					if (want == TH_ACK_ACCEPTED) {
						m[u].have = 1;
						m[u].rev = x->rev;
						m[u].tomb = x->tombstone;
						m[u].n = (int)x->n_rows;
						for (int q = 0; q < m[u].n; q++) {
							m[u].an[q] = th_report_cell(x, (size_t)q, 1)->null;
							m[u].a[q] = th_report_cell(x, (size_t)q, 1)->i;
							m[u].nnn[q] = th_report_cell(x, (size_t)q, 2)->null;
							m[u].nn[q] = th_report_cell(x, (size_t)q, 2)->i;
							m[u].bn[q] = th_report_cell(x, (size_t)q, 3)->null;
							m[u].b[q] = th_report_cell(x, (size_t)q, 3)->i;
						}
					}
					th_ack_result_free(&res[best]);
					th_report_destroy(&r[best]);
				}
			}
			if (g % 10 == 9)
				assert_int_equal(th_store_rebuild(s), 0);
			th_diag *dg = th_diag_new();
			int vr = th_store_verify(s, dg);
			for (size_t i = 0; i < th_diag_count(dg); i++)
				fprintf(stderr, "verify: %s\n", th_diag_text(dg, i));
			th_diag_destroy(&dg);
			assert_int_equal(vr, 0);
			for (int u = 0; u < MU; u++) {
				int64_t rows = 0, sum = 0, cnt = 0, mn = 0, mcnt = 0, tr = 0, bcnt = 0, rep = 0;
				int64_t expd = 0;
				for (int x = 0; x < MU; x++) {
					int in = 0;
					for (int y = x; y >= 0; y = parent[y])
						in |= y == u;
					if (in) {
						char xc[8];
						snprintf(xc, sizeof xc, "U%d", x);
						const th_unit *xu = th_units_at(gu, (size_t)th_units_find(gu, xc));
						expd += th_def_expects(dm, xu->kind, xu->code);
					}
					if (!in || !m[x].have || m[x].tomb)
						continue;
					rep++;
					for (int q = 0; q < m[x].n; q++) {
						rows++;
						if (!m[x].an[q]) { sum += m[x].a[q]; cnt++; }
						if (!m[x].nnn[q]) { if (!mcnt || m[x].nn[q] < mn) mn = m[x].nn[q]; mcnt++; }
						if (!m[x].bn[q]) { tr += m[x].b[q]; bcnt++; }
					}
				}
				char code[8];
				snprintf(code, sizeof code, "U%d", u);
				th_node nd;
				memset(&nd, 0, sizeof nd);
				assert_int_equal(th_store_get_node(s, "PLM", "2021-Q1", code, &nd), 0);
				int isnull;
				assert_int_equal(nd.total[0], rows);
				assert_int_equal(nd.reported, rep);
				assert_int_equal(nd.expected, expd);
				assert_true(nd.reported <= nd.expected);
				int64_t v = th_rollup_value(dm, nd.total, 1, &isnull);
				assert_int_equal(isnull, cnt == 0);
				if (cnt) assert_int_equal(v, sum);
				v = th_rollup_value(dm, nd.total, 2, &isnull);
				assert_int_equal(isnull, mcnt == 0);
				if (mcnt) assert_int_equal(v, mn);
				v = th_rollup_value(dm, nd.total, 3, &isnull);
				assert_int_equal(isnull, bcnt == 0);
				if (bcnt) assert_int_equal(v, tr);
				th_node_free(&nd);
			}
			if (rand_r(&seed) % 8 == 0) {
				th_store_close(&s);
				assert_int_equal(th_store_open(dir, &o, &s), 0);
				assert_int_equal(th_store_set_defs(s, dset), 0);
				assert_int_equal(th_store_add_hierarchy(s, gu), 0);
			}
		}
		th_store_close(&s);
		th_units_destroy(&gu);
		tu_rmrf(dir);
	}
	th_defset_destroy(&dset);
}


static void group_order(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	content c7 = {1, {1}, {7}, {1}, {0}, {0}}, c6 = {2, {1, 2}, {6, 6}, {1, 1}, {0, 0}, {0, 0}};
	content c6b = c6; c6b.a[1] = 60;
	th_report *r[5];
	th_ack_result res[5];
	r[0] = mk("C11", 7, &c7, 0);
	r[1] = mk("C11", 6, &c6, 0);
	r[2] = mk("C11", 6, &c6b, 0);  /* same rev as r[1], other content: conflict */
	r[3] = mk("C11", 6, &c6, 0);   /* identical to r[1]: duplicate */
	r[4] = mk("C11", 7, &c7, 0);   /* identical to r[0]: duplicate */
	assert_int_equal(apply(s, r, 5, res), 0);
	assert_int_equal(res[0].status, TH_ACK_ACCEPTED);
	assert_int_equal(res[1].status, TH_ACK_ACCEPTED);
	assert_int_equal(res[2].status, TH_ACK_REJECTED);
	assert_int_equal(res[2].code, TH_ECONFLICT);
	assert_int_equal(res[3].status, TH_ACK_DUPLICATE);
	assert_int_equal(res[4].status, TH_ACK_DUPLICATE);
	for (int i = 0; i < 5; i++) {
		th_ack_result_free(&res[i]);
		th_report_destroy(&r[i]);
	}
	hist h = {0};
	assert_int_equal(th_store_history(s, "C11", "PLT", "2021", hist_cb, &h), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.revs[0], 6);
	assert_int_equal(h.revs[1], 7);
	int isnull;
	assert_int_equal(total_a(s, "2021", "R", &isnull), 7);
	th_node n;
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLT", "2021", "C11", &n), 0);
	assert_int_equal(n.total[0], 1);
	assert_int_equal(n.corrections, 1);
	th_node_free(&n);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}

static void nospace(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = NULL;
	th_store_opts o = {0};
	o.map_size = 65536;
	o.max_map_size = 131072;
	assert_int_equal(th_store_open(dir, &o, &s), 0);
	assert_int_equal(th_store_set_defs(s, ds), 0);
	assert_int_equal(th_store_add_hierarchy(s, units), 0);
	int full = 0;
	uint64_t accepted = 0;
	for (int g = 0; g < 400 && !full; g++) {
		th_report *r[NS];
		th_ack_result res[NS];
		for (int u = 0; u < NS; u++) {
			content c = {3, {1, 2, 3}, {g, u, 1}, {1, 2, 3}, {0, 0, 0}, {0, 0, 0}};
			r[u] = mk(S[u], (uint64_t)(g + 1), &c, 0);
		}
		int rc = apply(s, r, NS, res);
		if (rc == TH_ENOSPC) {
			full = 1;
			for (int u = 0; u < NS; u++)
				assert_int_equal(res[u].status, TH_ACK_RETRY_LATER);
		} else {
			assert_int_equal(rc, 0);
			accepted++;
		}
		for (int u = 0; u < NS; u++) {
			th_ack_result_free(&res[u]);
			th_report_destroy(&r[u]);
		}
	}
	assert_true(full);
	assert_int_equal(th_store_last_commit(s), accepted);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_store_verify(s, dg), 0);
	th_diag_destroy(&dg);
	int isnull;
	/* the last committed group is g = accepted - 1 */
	/* a = g + u + 1 for u = 0 .. NS - 1 */
	assert_int_equal(total_a(s, "2021", "R", &isnull),
	                 (int64_t)(NS * (accepted - 1) + NS * (NS - 1) / 2 + NS));
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}


#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void edge_inputs(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	uint64_t cid = 99;
	int64_t ct;
	th_changed_node *ch = NULL;
	size_t nch = 0;
	int rc = th_store_apply(s, NULL, 0, &cid, &ct, &ch, &nch);
	assert_true(rc == 0 || rc == TH_EINVAL);
	free(ch);
	ch = NULL;
	/* a NULL report in a group of otherwise good reports */
	content c = {1, {1}, {7}, {1}, {0}, {0}};
	th_ack_result res[2];
	char sender[600];
	memset(sender, 'x', sizeof sender - 1);
	sender[sizeof sender - 1] = 0;
	th_report *two[2] = {NULL, mk("C11", 1, &c, 0)};
	rc = sf_submit(s, two, 2, sender, res, &ch, &nch, &cid);
	free(ch);
	fprintf(stderr, "apply with NULL report: rc %d, status %d %d\n", rc, res[0].status, res[1].status);
	if (rc == 0) {
		assert_int_equal(res[0].status, TH_ACK_REJECTED);
		assert_int_equal(res[1].status, TH_ACK_ACCEPTED);
		th_revision_info info;
		th_report *r = NULL;
		assert_int_equal(th_store_get_report(s, "C11", "PLT", "2021", &r, &info), 0);
		assert_true(strlen(info.sender) < sizeof info.sender);
		th_report_destroy(&r);
	}
	th_ack_result_free(&res[0]);
	th_ack_result_free(&res[1]);
	th_report_destroy(&two[1]);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}

/* A writer killed at random points: the store reopens consistent. */
static void killed_writer(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 65536);
	th_store_close(&s);
	for (int round = 0; round < 8; round++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			th_store *w = NULL;
			th_store_opts o = {0};
			o.map_size = 65536;
			if (th_store_open(dir, &o, &w) || th_store_set_defs(w, ds) ||
			    th_store_add_hierarchy(w, units))
				_exit(3);
			unsigned seed = (unsigned)round;
			for (uint64_t g = 1;; g++) {
				th_report *r[NS];
				th_ack_result res[NS];
				for (int u = 0; u < NS; u++) {
					content c;
					rnd_content(&c, &seed);
					r[u] = mk(S[u], (uint64_t)round * 1000000 + g, &c, 0);
				}
				if (apply(w, r, NS, res))
					_exit(4);
				for (int u = 0; u < NS; u++) {
					th_ack_result_free(&res[u]);
					th_report_destroy(&r[u]);
				}
			}
		}
		usleep(20000 + (useconds_t)(round * 13000));
		kill(pid, SIGKILL);
		int wst;
		assert_int_equal(waitpid(pid, &wst, 0), pid);
		assert_true(WIFSIGNALED(wst));
		s = open_store(dir, 0);
		th_diag *dg = th_diag_new();
		int vr = th_store_verify(s, dg);
		for (size_t i = 0; i < th_diag_count(dg); i++)
			fprintf(stderr, "verify: %s\n", th_diag_text(dg, i));
		th_diag_destroy(&dg);
		assert_int_equal(vr, 0);
		th_store_stats stt;
		assert_int_equal(th_store_stats_get(s, &stt), 0);
		fprintf(stderr, "round %d: commits %llu revisions %llu map %zu\n", round, (unsigned long long)stt.commits, (unsigned long long)stt.revisions, stt.map_size);
		assert_int_equal(stt.commits, th_store_last_commit(s));
		assert_int_equal(stt.revisions, NS * stt.commits);
		th_store_close(&s);
	}
	tu_rmrf(dir);
	teardown_defs();
}


#include <time.h>
static const char *bound_version(th_store *s, const char *period)
{
	const th_units *h = NULL;
	assert_int_equal(th_store_hierarchy_for(s, period, &h), 0);
	return th_units_version(h);
}

static void binding_rule(void **st)
{
	(void)st;
	setup_defs();
	static const char A[] = "@version a\n@effective 2021-02-01\ncode\tparent\tkind\tname\nR\t\tcity\tRoot\n";
	static const char B[] = "@version b\n@effective 2021-06-01\ncode\tparent\tkind\tname\nR\t\tcity\tRoot\n";
	th_units *ua = NULL, *ub = NULL;
	assert_int_equal(th_units_parse(A, sizeof A - 1, "a", &ua, NULL), 0);
	assert_int_equal(th_units_parse(B, sizeof B - 1, "b", &ub, NULL), 0);
	char *dir = tu_tmpdir();
	th_store *s = NULL;
	th_store_opts o = {0};
	assert_int_equal(th_store_open(dir, &o, &s), 0);
	assert_int_equal(th_store_set_defs(s, ds), 0);
	assert_int_equal(th_store_add_hierarchy(s, ub), 0);
	assert_int_equal(th_store_add_hierarchy(s, ua), 0);
	assert_string_equal(bound_version(s, "2021"), "a");     /* none effective: earliest */
	assert_string_equal(bound_version(s, "2021-Q1"), "a");
	assert_string_equal(bound_version(s, "2021-06"), "b");  /* effective on the start day */
	assert_string_equal(bound_version(s, "2021-05"), "a");
	assert_string_equal(bound_version(s, "2021-Q3"), "b");
	assert_string_equal(bound_version(s, "2021-H1"), "a");
	assert_string_equal(bound_version(s, "2021-H2"), "b");
	assert_string_equal(th_units_version(th_store_current_hierarchy(s)), "b");
	/* same id, other text */
	static const char A2[] = "@version a\n@effective 2021-02-01\ncode\tparent\tkind\tname\nR\t\tcity\tRoot two\n";
	th_units *ua2 = NULL;
	assert_int_equal(th_units_parse(A2, sizeof A2 - 1, "a2", &ua2, NULL), 0);
	assert_int_equal(th_store_add_hierarchy(s, ua2), TH_EEXIST);
	assert_int_equal(th_store_add_hierarchy(s, ua), 0);   /* same text again: fine */
	th_units_destroy(&ua2);
	th_store_close(&s);
	th_units_destroy(&ua);
	th_units_destroy(&ub);
	tu_rmrf(dir);
	teardown_defs();
}

static int32_t ymd(time_t t)
{
	struct tm tm;
	localtime_r(&t, &tm);
	return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

static void deadline_today(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	time_t now = time(NULL);
	assert_int_equal(th_store_set_deadline(s, "PLT", "2021", NULL, ymd(now + 86400 * 2) > ymd(now) ? ymd(now) : ymd(now)), 0);
	assert_int_equal(th_store_set_deadline(s, "PLT", "2021", "C12", ymd(now - 86400 * 2)), 0);
	content c = {1, {1}, {7}, {1}, {0}, {0}};
	one(s, mk("C11", 1, &c, 0), TH_ACK_ACCEPTED, 0);
	one(s, mk("C12", 1, &c, 0), TH_ACK_ACCEPTED, 0);
	one(s, mk("C21", 1, &c, 0), TH_ACK_ACCEPTED, 0);
	th_node n;
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLT", "2021", "R", &n), 0);
	assert_int_equal(n.reported, 3);
	assert_int_equal(n.on_time, 2);
	assert_int_equal(n.late, 1);
	th_node_free(&n);
	/* a correction of the late unit does not make it on time */
	one(s, mk("C12", 2, &c, 0), TH_ACK_ACCEPTED, 0);
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLT", "2021", "D1", &n), 0);
	assert_int_equal(n.on_time, 1);
	assert_int_equal(n.late, 1);
	assert_int_equal(n.corrections, 1);
	th_node_free(&n);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}


static void tombstone_scope(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	assert_int_equal(th_store_set_deadline(s, "PLT", "2021", NULL, 29990101), 0);
	content c = {1, {1}, {7}, {1}, {0}, {0}};
	one(s, mk("C11", 1, &c, 0), TH_ACK_ACCEPTED, 0);
	one(s, mk("C11", 2, &c, 1), TH_ACK_ACCEPTED, 0);
	one(s, mk("C11", 2, &c, 1), TH_ACK_DUPLICATE, 0);
	lst l = {0};
	assert_int_equal(th_store_revs_in_scope(s, "R", rev_cb, &l), 0);
	assert_int_equal(l.n, 1);       /* a withdrawn key still has its rev */
	memset(&l, 0, sizeof l);
	assert_int_equal(th_store_missing(s, "PLT", "2021", "D1", lst_cb, &l), 0);
	assert_int_equal(l.n, 3);       /* D1, C11 (withdrawn), C12 */
	hist h = {0};
	assert_int_equal(th_store_history(s, "C11", "PLT", "2021", hist_cb, &h), 0);
	assert_int_equal(h.n, 2);
	assert_int_equal(h.tomb[1], 1);
	one(s, mk("C11", 3, &c, 0), TH_ACK_ACCEPTED, 0);
	th_node n;
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLT", "2021", "R", &n), 0);
	assert_int_equal(n.reported, 1);
	assert_int_equal(n.on_time, 1);
	assert_int_equal(n.late, 0);
	assert_int_equal(n.total[0], 1);
	th_node_free(&n);
	assert_int_equal(th_store_rebuild(s), 0);
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLT", "2021", "R", &n), 0);
	assert_int_equal(n.reported, 1);
	assert_int_equal(n.total[0], 1);
	th_node_free(&n);
	th_diag *dg = th_diag_new();
	assert_int_equal(th_store_verify(s, dg), 0);
	th_diag_destroy(&dg);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}


static void big_group_grows(void **st)
{
	(void)st;
	static const char DEFB[] =
		"[appendix]\nid = PLB\nversion = 1\ntitle = T\nsubmitters = district commune\nkey = k\n\n"
		"[column k]\ntitle = K\ntype = integer\nrollup = none\nrequired = yes\n\n"
		"[column a]\ntitle = A\ntype = integer\nrollup = sum\n\n"
		"[column t]\ntitle = T\ntype = text\nrollup = none\n";
	th_def *d = NULL;
	assert_int_equal(th_def_parse(DEFB, sizeof DEFB - 1, "b.def", &d, NULL), 0);
	th_defset *dset = th_defset_new();
	assert_int_equal(th_defset_add(dset, d), 0);
	th_units *u = NULL;
	assert_int_equal(th_units_parse(UNITS, sizeof UNITS - 1, "t.units", &u, NULL), 0);
	char *dir = tu_tmpdir();
	th_store *s = NULL;
	th_store_opts o = {0};
	o.map_size = 65536;
	assert_int_equal(th_store_open(dir, &o, &s), 0);
	assert_int_equal(th_store_set_defs(s, dset), 0);
	assert_int_equal(th_store_add_hierarchy(s, u), 0);
	enum { NR = 30, ROWS = 400 };
	th_report *r[NR];
	th_ack_result res[NR];
	char per[8];
	int64_t want = 0;
	for (int i = 0; i < NR; i++) {
		snprintf(per, sizeof per, "20%02d", 10 + i / NS);
		r[i] = th_report_new(S[i % NS], "PLB", 1, per, 5, 3);
		for (int q = 0; q < ROWS; q++) {
			long row = th_report_add_row(r[i]);
			th_value *v = th_report_cell(r[i], (size_t)row, 0);
			v->null = 0; v->i = q;
			v = th_report_cell(r[i], (size_t)row, 1);
			v->null = 0; v->i = q;
			if (i / NS == 0) want += q;
			v = th_report_cell(r[i], (size_t)row, 2);
			v->null = 0;
			v->s = strdup("một dòng văn bản để làm đầy bản đồ");
			v->len = (uint32_t)strlen(v->s);
		}
	}
	uint64_t cid;
	th_changed_node *ch = NULL;
	size_t nch = 0;
	assert_int_equal(sf_submit(s, r, NR, "b", res, &ch, &nch, &cid), 0);
	assert_int_equal(cid, 1);
	free(ch);
	for (int i = 0; i < NR; i++) {
		assert_int_equal(res[i].status, TH_ACK_ACCEPTED);
		th_ack_result_free(&res[i]);
		th_report_destroy(&r[i]);
	}
	th_store_stats stt;
	assert_int_equal(th_store_stats_get(s, &stt), 0);
	assert_true(stt.map_size >= 8 * 65536);
	th_node n;
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLB", "2010", "R", &n), 0);
	assert_int_equal(n.total[1], want);
	assert_int_equal(n.total[0], NS * ROWS);
	th_node_free(&n);
	th_report *back = NULL;
	th_revision_info info;
	assert_int_equal(th_store_get_report(s, "C21", "PLB", "2014", &back, &info), 0);
	assert_int_equal(back->n_rows, ROWS);
	assert_string_equal(th_report_cell(back, 7, 2)->s, "một dòng văn bản để làm đầy bản đồ");
	th_report_destroy(&back);
	th_store_close(&s);
	th_units_destroy(&u);
	th_defset_destroy(&dset);
	tu_rmrf(dir);
}


/* A reader opened before the writer grows the map still reads afterwards. */
static void reader_survives_growth(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 65536);
	content c = {1, {1}, {7}, {1}, {0}, {0}};
	one(s, mk("C11", 1, &c, 0), TH_ACK_ACCEPTED, 0);
	int p1[2], p2[2];
	assert_int_equal(pipe(p1), 0);
	assert_int_equal(pipe(p2), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* only the ends it uses: when the writer (the test process) goes away
		 * early, the read below sees end of file instead of waiting for ever */
		close(p1[1]);
		close(p2[0]);
		th_store *ro = NULL;
		th_store_opts o = {0};
		o.readonly = 1;
		char b = 0;
		if (th_store_open(dir, &o, &ro))
			_exit(10);
		th_store_set_defs(ro, ds);
		if (write(p2[1], "r", 1) != 1)
			_exit(11);
		/* bounded: a writer that never signals ends this reader */
		struct pollfd pf = {p1[0], POLLIN, 0};
		if (poll(&pf, 1, 120000) != 1 || read(p1[0], &b, 1) != 1)
			_exit(11);
		th_node n;
		memset(&n, 0, sizeof n);
		if (th_store_get_node(ro, "PLT", "2021", "R", &n))
			_exit(12);
		int isnull;
		int64_t v = th_rollup_value(def, n.total, 1, &isnull);
		th_node_free(&n);
		th_report *r = NULL;
		th_revision_info info;
		if (th_store_get_report(ro, "C21", "PLT", "2029", &r, &info))
			_exit(13);
		th_report_destroy(&r);
		th_store_close(&ro);
		_exit(v == 7 + 6 * 0 ? 0 : 14);
	}
	close(p1[0]);
	close(p2[1]);
	/* a reader that dies early closes p2: read gives 0 and the test fails */
	char b;
	assert_int_equal(read(p2[0], &b, 1), 1);
	for (int g = 0; g < 40; g++) {
		th_report *r[NS];
		th_ack_result res[NS];
		char per[8];
		snprintf(per, sizeof per, "20%02d", 22 + g % 10);
		for (int u = 0; u < NS; u++) {
			content cc = {3, {1, 2, 3}, {1, 2, 3}, {1, 2, 3}, {0, 0, 0}, {0, 0, 0}};
			r[u] = mk(S[u], (uint64_t)(g + 1), &cc, 0);
			free(r[u]->period);
			r[u]->period = strdup(per);
		}
		assert_int_equal(apply(s, r, NS, res), 0);
		for (int u = 0; u < NS; u++) {
			assert_int_equal(res[u].status, TH_ACK_ACCEPTED);
			th_ack_result_free(&res[u]);
			th_report_destroy(&r[u]);
		}
	}
	th_store_stats stt;
	assert_int_equal(th_store_stats_get(s, &stt), 0);
	assert_true(stt.map_size > 65536);
	assert_int_equal(write(p1[1], "g", 1), 1);
	int wst = 0;
	assert_int_equal(waitpid(pid, &wst, 0), pid);
	assert_true(WIFEXITED(wst));
	assert_int_equal(WEXITSTATUS(wst), 0);
	close(p1[1]);
	close(p2[0]);
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}


static void expected_submitter_units(void **st)
{
	(void)st;
	static const char DEFS[] =
		"[appendix]\nid = PLS\nversion = 1\ntitle = T\nsubmitters = district commune\nsubmitter_units = C11 D2 R\nkey =\n\n"
		"[column a]\ntitle = A\ntype = integer\nrollup = sum\n";
	th_def *d = NULL;
	th_diag *dg = th_diag_new();
	int prc = th_def_parse(DEFS, sizeof DEFS - 1, "s.def", &d, dg);
	for (size_t i = 0; i < th_diag_count(dg); i++)
		fprintf(stderr, "%s\n", th_diag_text(dg, i));
	th_diag_destroy(&dg);
	assert_int_equal(prc, 0);
	th_defset *dset = th_defset_new();
	assert_int_equal(th_defset_add(dset, d), 0);
	th_units *u = NULL;
	assert_int_equal(th_units_parse(UNITS, sizeof UNITS - 1, "t.units", &u, NULL), 0);
	char *dir = tu_tmpdir();
	th_store *s = NULL;
	th_store_opts o = {0};
	assert_int_equal(th_store_open(dir, &o, &s), 0);
	assert_int_equal(th_store_set_defs(s, dset), 0);
	assert_int_equal(th_store_add_hierarchy(s, u), 0);
	th_node n;
	memset(&n, 0, sizeof n);
	assert_int_equal(th_store_get_node(s, "PLS", "2021", "R", &n), 0);
	assert_int_equal(n.expected, 2);   /* C11 and D2; R is a city, not a submitter kind */
	th_node_free(&n);
	lst l = {0};
	assert_int_equal(th_store_missing(s, "PLS", "2021", "R", lst_cb, &l), 0);
	assert_int_equal(l.n, 2);
	th_store_close(&s);
	th_units_destroy(&u);
	th_defset_destroy(&dset);
	tu_rmrf(dir);
}


static void stored_rev_after_group(void **st)
{
	(void)st;
	setup_defs();
	char *dir = tu_tmpdir();
	th_store *s = open_store(dir, 0);
	content c = {1, {1}, {7}, {1}, {0}, {0}};
	one(s, mk("C11", 4, &c, 0), TH_ACK_ACCEPTED, 0);
	th_report *r[2];
	th_ack_result res[2];
	r[0] = mk("C11", 5, &c, 0);
	r[1] = mk("C11", 3, &c, 0);
	assert_int_equal(apply(s, r, 2, res), 0);
	fprintf(stderr, "accepted stored_rev %llu, stale stored_rev %llu\n",
	        (unsigned long long)res[0].stored_rev, (unsigned long long)res[1].stored_rev);
	assert_int_equal(res[0].status, TH_ACK_ACCEPTED);
	assert_int_equal(res[0].stored_rev, 5);
	assert_int_equal(res[1].status, TH_ACK_STALE);
	assert_true(res[1].stored_rev >= 4);
	for (int i = 0; i < 2; i++) {
		th_ack_result_free(&res[i]);
		th_report_destroy(&r[i]);
	}
	th_store_close(&s);
	tu_rmrf(dir);
	teardown_defs();
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(basic),
		cmocka_unit_test(property),
		cmocka_unit_test(overflow),
		cmocka_unit_test(mapfull_reopen),
		cmocka_unit_test(hier_versions),
		cmocka_unit_test(completeness),
		cmocka_unit_test(defchanged),
		cmocka_unit_test(reads),
		cmocka_unit_test(garbage),
		cmocka_unit_test(property_deep),
		cmocka_unit_test(group_order),
		cmocka_unit_test(nospace),
		cmocka_unit_test(edge_inputs),
		cmocka_unit_test(killed_writer),
		cmocka_unit_test(binding_rule),
		cmocka_unit_test(deadline_today),
		cmocka_unit_test(tombstone_scope),
		cmocka_unit_test(big_group_grows),
		cmocka_unit_test(reader_survives_growth),
		cmocka_unit_test(expected_submitter_units),
		cmocka_unit_test(stored_rev_after_group),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

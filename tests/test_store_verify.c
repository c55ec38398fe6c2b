/* test_store_verify.c -- rebuild and verify (store/verify.c): damage found, and the
 * property every test can check: incremental rollups equal a recomputation, bit for
 * bit, over random groups of reports, revisions and withdrawals. */
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
		cmocka_unit_test(rebuild_and_verify_detect_damage),
		cmocka_unit_test(verify_detects_damaged_history),
		cmocka_unit_test(property_incremental_equals_recomputed),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

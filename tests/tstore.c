/* tstore.c -- see tstore.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_fixture.h"
#include "testutil.h"
#include "th_rollup.h"
#include "tstore.h"

const char UNITS_V1[] = "@version v1\n@effective 2021-01-01\n" UNITS_HEAD
                               "C\t\tcity\tCity\n"
                               "D1\tC\tdistrict\tD1\n"
                               "D2\tC\tdistrict\tD2\n"
                               "X1\tD1\tcommune\tX1\n"
                               "X2\tD1\tcommune\tX2\n"
                               "X3\tD2\tcommune\tX3\n";
/* a reorganisation: X3 moves under D1, D2 gone, a new commune X4 */
const char UNITS_V2[] = "@version v2\n@effective 2022-01-01\n" UNITS_HEAD
                               "C\t\tcity\tCity\n"
                               "D1\tC\tdistrict\tD1\n"
                               "X1\tD1\tcommune\tX1\n"
                               "X2\tD1\tcommune\tX2\n"
                               "X3\tD1\tcommune\tX3\n"
                               "X4\tD1\tcommune\tX4\n";


th_def *parse_def(unsigned version)
{
	char text[2048];
	snprintf(text, sizeof text, DEF_HEAD "%u" DEF_BODY, version);
	th_def *d = NULL;
	assert_int_equal(th_def_parse(text, strlen(text), "t.def", &d, NULL), 0);
	return d;
}

th_units *parse_units(const char *text)
{
	th_units *u = NULL;
	th_diag *dg = th_diag_new();
	int rc = th_units_parse(text, strlen(text), "t.units", &u, dg);
	for (size_t i = 0; i < th_diag_count(dg); i++)
		fprintf(stderr, "%s\n", th_diag_text(dg, i));
	th_diag_destroy(&dg);
	assert_int_equal(rc, 0);
	return u;
}

void fx_open(fx *f)
{
	assert_int_equal(th_store_open(f->dir, &f->opts, &f->s), 0);
	assert_int_equal(th_store_set_defs(f->s, f->defs), 0);
}

void fx_add_units(fx *f, const char *text)
{
	th_units *u = parse_units(text);
	assert_int_equal(th_store_add_hierarchy(f->s, u), 0);
	th_units_destroy(&u);
}

fx *fx_new_opts(size_t map, size_t maxmap, const char *units)
{
	fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->dir = tu_tmpdir();
	f->defs = th_defset_new();
	assert_int_equal(th_defset_add(f->defs, parse_def(1)), 0);
	f->d = th_defset_latest(f->defs, "T");
	f->opts.map_size = map;
	f->opts.max_map_size = maxmap;
	fx_open(f);
	if (units)
		fx_add_units(f, units);
	return f;
}

fx *fx_new(void) { return fx_new_opts(0, 0, UNITS_V1); }

void fx_reopen(fx *f)
{
	th_store_close(&f->s);
	assert_null(f->s);
	fx_open(f);
}

void fx_free(fx *f)
{
	th_store_close(&f->s);
	th_defset_destroy(&f->defs);
	tu_rmrf(f->dir);
	free(f);
}


void set_int(th_value *v, int64_t x)
{
	if (x == NUL) {
		v->null = 1;
		return;
	}
	v->null = 0;
	v->i = x;
}

th_report *mk(const char *unit, const char *period, uint64_t rev, const row *rows, size_t n)
{
	th_report *r = th_report_new(unit, "T", 1, period, rev, NCOLS);
	assert_non_null(r);
	for (size_t i = 0; i < n; i++) {
		long k = th_report_add_row(r);
		assert_true(k >= 0);
		for (size_t c = 0; c < NCOLS; c++)
			th_report_cell(r, (size_t)k, c)->null = 1;
		th_value *kv = th_report_cell(r, (size_t)k, C_K);
		char buf[32];
		snprintf(buf, sizeof buf, "r%d", rows[i].key);
		kv->null = 0;
		kv->s = strdup(buf);
		kv->len = (uint32_t)strlen(buf);
		set_int(th_report_cell(r, (size_t)k, C_A), rows[i].a);
		set_int(th_report_cell(r, (size_t)k, C_LO), rows[i].lo);
		set_int(th_report_cell(r, (size_t)k, C_HI), rows[i].hi);
		set_int(th_report_cell(r, (size_t)k, C_F), rows[i].fl < 0 ? NUL : rows[i].fl);
	}
	return r;
}

th_report *mk1(const char *unit, uint64_t rev, int64_t a)
{
	row x = {1, a, NUL, NUL, -1};
	return mk(unit, P, rev, &x, 1);
}

th_report *tomb(const char *unit, uint64_t rev)
{
	th_report *r = th_report_new(unit, "T", 1, P, rev, NCOLS);
	assert_non_null(r);
	r->tombstone = 1;
	return r;
}

/* Applies reports (destroyed afterwards) in one group as the collector does
 * (store_fixture.h); results to res (n). */
int apply_n(fx *f, th_report **rs, size_t n, th_ack_result *res, th_changed_node **ch,
                   size_t *nch, uint64_t *commit)
{
	int rc = sf_submit(f->s, rs, n, "test", res, ch, nch, commit);
	for (size_t i = 0; i < n; i++)
		th_report_destroy(&rs[i]);
	return rc;
}

/* One report in its own group; returns its status, code and stored rev. */
th_ack_status one(fx *f, th_report *r, int *code, uint64_t *stored)
{
	th_ack_result res;
	assert_int_equal(apply_n(f, &r, 1, &res, NULL, NULL, NULL), 0);
	th_ack_status st = res.status;
	if (code)
		*code = res.code;
	if (stored)
		*stored = res.stored_rev;
	th_ack_result_free(&res);
	return st;
}

/* One report; returns a copy of the result message ("" when none). */
char *one_msg(fx *f, th_report *r, uint64_t *stored)
{
	th_ack_result res;
	assert_int_equal(apply_n(f, &r, 1, &res, NULL, NULL, NULL), 0);
	char *m = strdup(res.message ? res.message : "");
	if (stored)
		*stored = res.stored_rev;
	th_ack_result_free(&res);
	return m;
}

void must_accept(fx *f, th_report *r)
{
	int code = 0;
	assert_int_equal(one(f, r, &code, NULL), TH_ACK_ACCEPTED);
	assert_int_equal(code, 0);
}

/* Column col of unit's total (or own) for T/P; *isnull. */
int64_t val(fx *f, const char *unit, size_t col, int own, int *isnull)
{
	th_node n;
	assert_int_equal(th_store_get_node(f->s, "T", P, unit, &n), 0);
	int64_t v = th_rollup_value(f->d, own ? n.own : n.total, col, isnull);
	th_node_free(&n);
	return v;
}

int64_t tot(fx *f, const char *unit, size_t col)
{
	int isnull;
	int64_t v = val(f, unit, col, 0, &isnull);
	return isnull ? NUL : v;
}

th_node node(fx *f, const char *unit)
{
	th_node n;
	assert_int_equal(th_store_get_node(f->s, "T", P, unit, &n), 0);
	return n;
}

void verify_ok(fx *f)
{
	th_diag *dg = th_diag_new();
	int rc = th_store_verify(f->s, dg);
	for (size_t i = 0; i < th_diag_count(dg); i++)
		fprintf(stderr, "verify: %s\n", th_diag_text(dg, i));
	th_diag_destroy(&dg);
	assert_int_equal(rc, 0);
}

/* Opens the (closed) store's LMDB environment directly, for tests that damage or
 * age it, and begins a write transaction on database db. */
MDB_txn *raw_begin(fx *f, const char *db, MDB_env **env, MDB_dbi *dbi)
{
	MDB_txn *txn;
	assert_int_equal(mdb_env_create(env), 0);
	mdb_env_set_maxdbs(*env, 16);
	assert_int_equal(mdb_env_open(*env, f->dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(*env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, dbi), 0);
	return txn;
}


void raw_commit(MDB_env *env, MDB_txn *txn)
{
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}


/* a report of n rows with long text keys, to fill pages quickly */
th_report *big(const char *unit, uint64_t rev, int n, int64_t a)
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


/* --- reads are pure, and run beside the writer ------------------------------------ */

int count_binding(void *ctx, const char *period, const char *version)
{
	(void)period;
	(void)version;
	(*(int *)ctx)++;
	return 0;
}


int bindings(fx *f)
{
	int n = 0;
	assert_int_equal(th_store_bindings(f->s, count_binding, &n), 0);
	return n;
}


int ignore_node(void *ctx, const th_unit *u, const th_node *n)
{
	(void)u;
	(void)n;
	(*(int *)ctx)++;
	return 0;
}


const char *version_for(fx *f, const char *period)
{
	const th_units *h = NULL;
	assert_int_equal(th_store_hierarchy_for(f->s, period, &h), 0);
	return th_units_version(h);
}

int hist_cb(void *ctx, const th_revision_info *info, const th_report *r)
{
	hist *h = ctx;
	if (h->n < 16) {
		h->revs[h->n] = info->rev;
		h->a[h->n] = r->n_rows ? th_report_cell(r, 0, C_A)->i : NUL;
		h->n++;
	}
	return 0;
}

int names_cb(void *ctx, const th_unit *u, const th_node *n)
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

/* A node as store format 1 kept it (store/STORAGE.md): the 40-byte header
 * of the stored value `head` with encoding 0, then own[] and total[] as int64.
 * malloc'd. */
uint8_t *fixed_node(const void *head, const th_node *n, size_t n_slots)
{
	uint8_t *b = malloc(40 + 16 * n_slots);
	assert_non_null(b);
	memcpy(b, head, 40);
	memset(b + 36, 0, 4);   /* enc 0: fixed */
	memcpy(b + 40, n->own, 8 * n_slots);
	memcpy(b + 40 + 8 * n_slots, n->total, 8 * n_slots);
	return b;
}

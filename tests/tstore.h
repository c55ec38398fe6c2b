/* tstore.h -- the store tests' fixture (test_store.c, test_ingest.c): a small
 * appendix T (a text key, a sum, a min, a max, a bool), a hierarchy v1 and its
 * reorganisation v2, a store in a temporary directory, reports made from rows,
 * and groups submitted as the collector does (store_fixture.h). */
#ifndef TH_TSTORE_H
#define TH_TSTORE_H

#include <lmdb.h>
#include <stdint.h>
#include "store_fixture.h"
#include "th_store.h"

#define NUL INT64_MIN   /* a null cell in the row helpers */
#define P "2021"

/* columns of the test definition */
enum { C_K = 0, C_A, C_LO, C_HI, C_F, NCOLS };

#define DEF_HEAD "[appendix]\nid = T\nversion = "
#define DEF_BODY                                                                         \
	"\ntitle = Thử\nsubmitters = district commune agency\nkey = k\nmax_rows = 100\n"      \
	"[column k]\ntitle = Mã\ntype = text\nrequired = yes\nrollup = none\n"                \
	"[column a]\ntitle = A\ntype = integer\nrollup = sum\n"                               \
	"[column lo]\ntitle = Lo\ntype = integer\nrollup = min\n"                             \
	"[column hi]\ntitle = Hi\ntype = integer\nrollup = max\n"                             \
	"[column f]\ntitle = F\ntype = bool\nrollup = count_true\n"

#define UNITS_HEAD "code\tparent\tkind\tname\n"

extern const char UNITS_V1[], UNITS_V2[];

typedef struct fx {
	char *dir;
	th_store *s;
	th_defset *defs;
	const th_def *d;
	th_store_opts opts;
} fx;

typedef struct row {
	int key;
	int64_t a, lo, hi;
	int fl;   /* -1 null */
} row;

/* T's definition of that version; a hierarchy from its text. */
th_def *parse_def(unsigned version);
th_units *parse_units(const char *text);
/* A store in a new temporary directory with T version 1 and hierarchy units (NULL:
 * none); map sizes 0 = defaults.  fx_new: default maps, hierarchy v1. */
void fx_open(fx *f);
void fx_add_units(fx *f, const char *text);
fx *fx_new_opts(size_t map, size_t maxmap, const char *units);
void fx_reopen(fx *f);
void fx_free(fx *f);
/* Reports of T (NUL: a null cell); one row with key 1 and a; a withdrawal. */
void set_int(th_value *v, int64_t x);
th_report *mk(const char *unit, const char *period, uint64_t rev, const row *rows, size_t n);
th_report *mk1(const char *unit, uint64_t rev, int64_t a);
th_report *tomb(const char *unit, uint64_t rev);
/* Applies reports (destroyed afterwards) in one group as the collector does; results
 * to res (n, th_ack_result_free each); ch, nch and commit may be NULL. */
int apply_n(fx *f, th_report **rs, size_t n, th_ack_result *res, th_changed_node **ch,
            size_t *nch, uint64_t *commit);
/* One report in its own group: its status (code, stored rev), message (malloc'd),
 * or that it was accepted. */
th_ack_status one(fx *f, th_report *r, int *code, uint64_t *stored);
char *one_msg(fx *f, th_report *r, uint64_t *stored);
void must_accept(fx *f, th_report *r);
/* Reads of T/P: a column of a unit's own or total; a total (NUL when null); a node;
 * th_store_verify passes. */
int64_t val(fx *f, const char *unit, size_t col, int own, int *isnull);
int64_t tot(fx *f, const char *unit, size_t col);
th_node node(fx *f, const char *unit);
void verify_ok(fx *f);
fx *fx_new(void);

/* The (closed) store's LMDB environment opened directly, for tests that damage or
 * age it: a write transaction on database db; raw_commit commits and closes. */
MDB_txn *raw_begin(fx *f, const char *db, MDB_env **env, MDB_dbi *dbi);
void raw_commit(MDB_env *env, MDB_txn *txn);
/* A report of T for P with n rows of long keys, every sum a (grows a map). */
th_report *big(const char *unit, uint64_t rev, int n, int64_t a);
/* How many periods are bound (th_store_bindings); a node callback counting *ctx; the
 * hierarchy version a period reads as. */
int count_binding(void *ctx, const char *period, const char *version);
int bindings(fx *f);
int ignore_node(void *ctx, const th_unit *u, const th_node *n);
const char *version_for(fx *f, const char *period);

/* The revisions th_store_history lists (at most 16): revs and column a of row 1. */
typedef struct hist {
	uint64_t revs[16];
	int64_t a[16];
	size_t n;
} hist;
int hist_cb(void *ctx, const th_revision_info *info, const th_report *r);

/* The units a level or missing read gave, in order, with their totals of column a. */
typedef struct names {
	char v[16][TH_CODE_MAX + 1];
	uint32_t exp[16], rep[16];
	int64_t a[16];
	size_t n;
} names;
int names_cb(void *ctx, const th_unit *u, const th_node *n);

/* A node as store format 1 kept it (STORAGE.md): the 40-byte header of the stored
 * value head with encoding 0, then own[] and total[] as int64; malloc'd. */
uint8_t *fixed_node(const void *head, const th_node *n, size_t n_slots);

#endif

/* store_private.h -- what the files of the store library share: the handle, the
 * record and node layouts of STORAGE.md, and the helpers each file provides.
 * Private to store/: nothing outside this folder includes it (th_store.h is the
 * public header). */
#ifndef TH_STORE_PRIVATE_H
#define TH_STORE_PRIVATE_H

#include <lmdb.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include "th_clock.h"
#include "th_hash.h"
#include "th_lmdb.h"
#include "th_store.h"

#define MAX_KEY 256
#define EXP_CACHE 8

struct th_store {
	char *dir;
	MDB_env *env;
	MDB_dbi meta, hier, bind, reports, history, rollups, deadlines;
	int readonly;
	size_t map_size, max_map;
	uint8_t uuid[16];
	uint64_t last_commit;     /* written by the writer after a commit, read by anyone:
	                           * __atomic builtins */
	const th_defset *defs;
	th_units **h;             /* every hierarchy version known, owned */
	size_t nh;
	struct in_force {
		char appendix[TH_CODE_MAX + 1], period[TH_PERIOD_MAX + 1]; /* period "" = all */
		uint32_t version;
	} *cfg;                   /* configured versions in force (else the latest) */
	size_t ncfg;
	struct in_force *bound;   /* versions periods are bound to (meta "dv:"), loaded at open */
	size_t nbound;
	struct {
		const th_units *u;
		const th_def *d;
		uint32_t *e;          /* expected count per unit index (subtree) */
	} exp[EXP_CACHE];
	size_t exp_next;
	int format;               /* 2, or 1 for a format-1 store opened read-only */
	struct ncache *nc;        /* the group's nodes while th_store_apply runs, else NULL */
	struct ncache *ncmem;     /* its memory, kept between groups */
	uint8_t *enc;             /* node_write_db's buffer, enc_cap bytes */
	size_t enc_cap;
	/* The threading contract (th_store.h): one writer thread, readers on others.
	 * mu guards the state in memory that a read may fill or the writer change: h/nh
	 * (versions only ever added, never freed before close, so a th_units pointer
	 * stays valid), cfg, bound, exp.  envlock is held for reading by every read
	 * transaction and for writing while the environment changes under the readers
	 * (mdb_env_set_mapsize, the reopen after MDB_PANIC); the writer's own write
	 * transaction does not take it (LMDB lets readers run beside it).  Order: envlock
	 * before mu, never the other way. */
	pthread_mutex_t mu;
	pthread_rwlock_t envlock;
	int locks;                /* 1 when mu and envlock were initialised */
	th_store_commit_hook hook;   /* th_store_set_commit_hook */
	void *hook_ctx;
};

/* --- records -------------------------------------------------------------------- */

/* A stored revision: fixed header then the canonical form (th_canon_encode). */
typedef struct {
	uint8_t fmt;          /* 1 */
	uint8_t tombstone;
	uint8_t late;         /* 1: the key's first accepted revision came after its deadline */
	uint8_t pad;
	uint32_t version;
	int32_t as_of;
	uint32_t corrections; /* accepted revisions of the key before this one */
	uint64_t rev;
	uint64_t commit;
	int64_t commit_time;  /* unix µs of this revision */
	int64_t first_time;   /* unix µs of the key's first accepted revision */
	uint8_t hash[TH_HASH_LEN];
	char sender[128];
} rec_header;

typedef struct {
	uint64_t version, commit;
	uint32_t reported, on_time, late, corrections;
	uint32_t n_slots, enc;  /* enc: NODE_FIXED, NODE_VARINT or NODE_SAME */
	/* own[n_slots], total[n_slots] follow, encoded as enc says */
} node_header;

/* NODE_FIXED: int64 each (store format 1); NODE_VARINT: zigzag LEB128 varints
 * (format 2): a PL1 node went from 2,072 bytes (an overflow page of its own)
 * to a few hundred. */
enum { NODE_FIXED = 0, NODE_VARINT = 1, NODE_SAME = 2 };   /* NODE_SAME: total == own,
                                                             * only own[] (varints) follows:
                                                             * every leaf unit's node */

/* the layout of store/STORAGE.md */
_Static_assert(sizeof(rec_header) == 208, "record header is 208 bytes");
_Static_assert(offsetof(rec_header, rev) == 16 && offsetof(rec_header, hash) == 48 &&
               offsetof(rec_header, sender) == 80, "record header offsets");
_Static_assert(sizeof(node_header) == 40, "node header is 40 bytes");

/* A decoded node: header and own[n_slots], total[n_slots] in one block. */
typedef struct {
	node_header h;
	int64_t *own, *total;
} node;

/* Keys collected under a cursor, to be written after it is closed (puts would
 * move the cursor's pages). */
typedef struct keylist {
	uint8_t (*k)[MAX_KEY + 9];
	size_t *len, n, cap;
} keylist;

/* --- lmdb.c: the environment, transactions, map growth, keys (LMDB's error codes are
 * translated by th_lmdb_error, common/th_lmdb.h) */
/* Opens the environment of s->dir (s->readonly, s->map_size); runs mdb_reader_check. */
int st_open_env(th_store *s);
/* Opens (creating when writable) every named database in txn. */
int st_open_dbis(th_store *s, MDB_txn *txn);
/* After MDB_PANIC: closes and reopens the environment (no transaction of the
 * writer may be open; readers are held off by envlock). */
int st_reopen(th_store *s);
/* A read-only transaction, with envlock held for reading until st_read_end (which
 * aborts it); picks up a map grown by another process. */
int st_read_txn(th_store *s, MDB_txn **txn);
void st_read_end(th_store *s, MDB_txn *txn);
/* Doubles the map (up to s->max_map); TH_ENOSPC past it.  The writer's
 * transactions must be closed (readers are held off by envlock). */
int st_grow(th_store *s);
/* n puts (or one) in one durable transaction, growing the map when full. */
int st_putn(th_store *s, const MDB_dbi *dbi, MDB_val *const *k, MDB_val *const *v, size_t n);
int st_put1(th_store *s, MDB_dbi dbi, MDB_val *k, MDB_val *v);
/* "a\0b\0c" into buf (MAX_KEY bytes): its length, 0 when too long or a part is NULL. */
size_t st_key3(char *buf, const char *a, const char *b, const char *c);
/* Splits a stored "a\0b\0c" key into buf (MAX_KEY + 1 bytes); TH_ESTORE when it has
 * another shape. */
int st_split3(const MDB_val *k, char *buf, const char **a, const char **b, const char **c);
/* The history key of (report key k, rev): k, NUL, rev as big-endian uint64. */
size_t st_history_key(uint8_t *hk, const MDB_val *k, uint64_t rev);
/* Room for one more key of len bytes (at most MAX_KEY + 9), or NULL. */
uint8_t *st_keylist_push(keylist *l, size_t len);
void st_keylist_free(keylist *l);

/* --- store.c: open, format upgrade -------------------------------------------- */
int st_upgrade_nodes(th_store *s);
int st_drop_latest_from_history(th_store *s, MDB_txn *txn);

/* --- hierarchy.c: versions, bindings, definitions in force, deadlines, expected */
int st_load_hierarchies(th_store *s, MDB_txn *txn);
int st_load_bindings(th_store *s, MDB_txn *txn);
int st_in_force_append(struct in_force **v, size_t *n, const char *appendix, const char *period,
                       uint32_t version);
/* Binds (appendix, period) to definition version inside txn unless it is bound
 * already; *added 1 when this put the binding.  The binding in memory is the
 * caller's to add (st_bound_add) once txn has committed. */
int st_bind_version(th_store *s, MDB_txn *txn, const char *appendix, const char *period,
                    uint32_t version, int *added);
int st_bound_add(th_store *s, const char *appendix, const char *period, uint32_t version);
/* The definition in force for (appendix, period): configured for the period, else the
 * version the period is bound to, else configured for every period, else the latest. */
const th_def *st_def_in_force(th_store *s, const char *appendix, const char *period);
/* The version with id (n bytes) in memory, or NULL; s->mu held. */
th_units *st_find_version(th_store *s, const char *id, size_t n);
/* The versions in memory now: a malloc'd copy of the pointer array (*n entries). */
th_units **st_hier_snapshot(th_store *s, size_t *n);
/* The hierarchy of a period as txn sees it: the version it is bound to (*is_bound 1),
 * else the one that would be chosen (*is_bound 0); never writes.  is_bound may be
 * NULL.  TH_ENOTFOUND when no version is loaded. */
int st_hier_lookup(th_store *s, MDB_txn *txn, const char *period, th_units **out, int *is_bound);
/* Binds an unbound period to u inside txn (the writer's, at the period's first
 * accepted report). */
int st_hier_bind(th_store *s, MDB_txn *txn, const char *period, const th_units *u);
/* 1 on time, 0 late, for a first acceptance at time t (unix µs). */
int st_on_time(th_store *s, MDB_txn *txn, const char *appendix, const char *period,
               const char *unit, int64_t t);
/* Units of a subtree expected to submit d (index = unit index), from a cache per
 * (hierarchy, definition): one unit's count, or every unit's (malloc'd copy). */
int st_expected_at(th_store *s, const th_units *u, const th_def *d, size_t i, uint32_t *out);
uint32_t *st_expected_copy(th_store *s, const th_units *u, const th_def *d);
void st_expected_clear(th_store *s);

/* --- node.c: the node codec and the group's node cache ------------------------- */
int st_node_alloc(node *n, const th_def *d);
void st_node_release(node *n);
/* A node's stored size as st_node_encode writes it. */
size_t st_node_enc_size(size_t n_slots, const int64_t *own, const int64_t *total);
/* Writes h (as NODE_SAME when total == own, else NODE_VARINT) and the values into out
 * (room for 40 + 20 * n_slots bytes); returns the length, st_node_enc_size. */
size_t st_node_encode(uint8_t *out, const node_header *h, size_t n_slots, const int64_t *own,
                      const int64_t *total);
/* A stored node's header; TH_ESTORE when the value is too short, of an unknown
 * encoding, or too short for its n_slots. */
int st_node_head(const MDB_val *v, node_header *h);
/* Its 2 * h->n_slots values (own then total) into out; h from st_node_head. */
int st_node_vals(const MDB_val *v, const node_header *h, int64_t *out);
/* A node from its stored value v (NULL: absent, zero) into n (allocated). */
int st_node_from_val(const th_def *d, const MDB_val *vp, node *n);
/* Reads a node into n (allocated; zero when absent) in a read transaction: never
 * through the group's cache, which is the writer's (st_node_read). */
int st_node_get(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                const char *period, const char *unit, node *n);
/* The writer's read of a node (same result), through the group's cache while
 * th_store_apply runs: only in the writer's transaction. */
int st_node_read(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                 const char *period, const char *unit, node *n);
/* Writes a node (into the group's cache while th_store_apply runs); the writer's. */
int st_node_write(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                  const char *period, const char *unit, const node *n);
/* An empty cache (NULL when out of memory); st_ncache_free releases it. */
struct ncache *st_ncache_new(void);
void st_ncache_clear(struct ncache *c);
void st_ncache_free(struct ncache *c);
/* Writes the group's changed nodes, in key order, into txn. */
int st_ncache_flush(th_store *s, MDB_txn *txn);

/* --- read.c ------------------------------------------------------------------- */
/* A stored record: its header into *h and its report (*out, malloc'd). */
int st_decode_record(th_store *s, const MDB_val *v, const char *unit, const char *appendix,
                     const char *period, th_report **out, rec_header *h);

#endif

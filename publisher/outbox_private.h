/* outbox_private.h -- what the outbox_*.c files share (layout in OUTBOX.md).
 * Private to the outbox: nothing outside publisher/outbox_*.c includes it.
 *
 *   outbox_env.c      the environment: open (format check), close, write
 *                     transactions with map growth, meta and contact, counts, info
 *   outbox_codec.c    byte buffers, the report blob, entries, keys
 *   outbox_records.c  stamping and queueing, listing, pending lookups
 *   outbox_acks.c     acks, agent-side rejections, sends counted, revs learned,
 *                     re-queueing after a store change
 *   outbox_history.c  the history of contents and its pruning
 *   outbox_defs.c     the definitions cache
 *   outbox_upgrade.c  format 1 outboxes brought to format 2 in place
 */
#ifndef TH_OUTBOX_PRIVATE_H
#define TH_OUTBOX_PRIVATE_H

#include <lmdb.h>
#include <stdint.h>
#include <stddef.h>

#include "outbox.h"

#define OB_KEY_MAX 480

struct th_outbox {
	MDB_env *env;
	MDB_dbi meta, pending, acked, rejected, revs, history, defs;
	size_t map_size;
};

/* --- byte buffers (outbox_codec.c) ------------------------------------------- */
typedef struct ob_buf {
	uint8_t *p;
	size_t len, cap;
	int oom;                    /* an append failed: the buffer is unusable */
} ob_buf;

void ob_put_bytes(ob_buf *b, const void *d, size_t n);
void ob_put_u64(ob_buf *b, uint64_t v);   /* little-endian */
void ob_put_u32(ob_buf *b, uint32_t v);
void ob_put_u8(ob_buf *b, uint8_t v);
void ob_put_str(ob_buf *b, const char *s); /* u32 length + bytes (NULL: "") */

/* A reader over len bytes; every read past the end sets bad and yields 0/NULL. */
typedef struct ob_rd {
	const uint8_t *p;
	size_t len, off;
	int bad;
} ob_rd;

const uint8_t *ob_take(ob_rd *r, size_t n);
uint64_t ob_get_u64(ob_rd *r);
uint32_t ob_get_u32(ob_rd *r);
uint8_t ob_get_u8(ob_rd *r);
char *ob_get_str(ob_rd *r);                /* malloc'd, NUL-terminated */

/* --- report blob and entries (outbox_codec.c) ---------------------------------- */
/* An entry's report as stored: the canonical form with the file's row order
 * (OB_BLOB_CANON, format 2), or an outbox format 1 blob that awaits its
 * definition (OB_BLOB_LEGACY, see outbox_upgrade.c).  len 0: no report. */
enum { OB_BLOB_LEGACY = 1, OB_BLOB_CANON = 2 };
typedef struct ob_blob {
	const uint8_t *p;
	size_t len;
	int format;
} ob_blob;

/* The blob of r, validated against d: u32 n + n x u32 (the file's row of each
 * canonical row; n = 0 when they are in key order already), then
 * th_canon_encode(r, d).  0, TH_EINVAL / TH_ERANGE (r does not fit d),
 * TH_ENOMEM. */
int ob_enc_blob(ob_buf *b, const th_report *r, const th_def *d);
/* The report of a canonical blob, rows in the file's order; unit, period and
 * rev from e.  TH_ESTORE when damaged or not d's. */
int ob_dec_blob(const ob_blob *blob, const th_def *d, const th_ob_entry *e, th_report **out);
/* An entry value with its blob (NULL or len 0: none).  The entry's format byte
 * is the blob's format. */
void ob_enc_entry(ob_buf *b, const th_ob_entry *e, const ob_blob *blob);
/* Decodes an entry value (e->report stays NULL); *blob (may be NULL) points at
 * the stored report inside v.  TH_ESTORE when damaged (e is then empty). */
int ob_dec_entry(const MDB_val *v, th_ob_entry *e, ob_blob *blob);
/* e->report from blob with the definitions defs: left NULL when defs is NULL,
 * the entry has no report, its (appendix, version) is not in defs, or the blob
 * awaits its definition (legacy); TH_ESTORE when the blob does not decode. */
int ob_entry_report(th_ob_entry *e, const ob_blob *blob, const th_defset *defs);
/* The byte offset of `attempts` in an entry value. */
#define OB_ENTRY_ATTEMPTS_OFF (1 + 8 + 4 + TH_HASH_LEN + 8 + 1)

/* --- keys (outbox_codec.c) ------------------------------------------------------- */
/* k = [u8 n][unit\0appendix\0period][suffix]; returns its length or TH_ETOOBIG.
 * k holds OB_KEY_MAX bytes; slen <= 40. */
int ob_key(uint8_t *k, const char *unit, const char *app, const char *per, const void *suffix,
           size_t slen);
void ob_be64(uint8_t *o, uint64_t v);
uint64_t ob_rd_be64(const uint8_t *p);
/* A u64 LE value of 8 bytes (0 when another size). */
int64_t ob_val_i64(const MDB_val *v);

/* --- environment (outbox_env.c) ---------------------------------------------------- */
/* A write transaction's body: 0 commits, 1 aborts on purpose (nothing to
 * write; ob_write returns 1), a negative TH_E* aborts with that error. */
typedef int (*ob_txn_fn)(th_outbox *ob, MDB_txn *txn, void *ctx);
/* Runs fn in a write transaction and commits durably; on MDB_MAP_FULL aborts,
 * doubles the map and runs fn again. */
int ob_write(th_outbox *ob, ob_txn_fn fn, void *ctx);
int ob_put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, const void *v, size_t vl);
int ob_get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, MDB_val *v);
int ob_del(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl);   /* absent: 0 */
int ob_put_u64_val(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, uint64_t v);
MDB_dbi ob_table_dbi(const th_outbox *ob, th_ob_table t);

/* --- shared rules ---------------------------------------------------------------- */
/* outbox_history.c: history[RK hash] = (rev, state, stamped-at). */
int ob_history_read(const MDB_val *v, uint64_t *rev, th_ob_state *st, int64_t *created);
int ob_put_history(th_outbox *ob, MDB_txn *txn, const uint8_t *prefix, size_t plen,
                   const uint8_t *hash, uint64_t rev, th_ob_state st, int64_t created);
/* outbox_defs.c: every cached definition, read in txn (TH_ENOTFOUND: none). */
int ob_cached_defs(th_outbox *ob, MDB_txn *txn, int in_force_only, th_defset **out);
/* outbox_upgrade.c: converts the format 1 entries of pending and acked whose
 * definition is cached (all of them at open when from_open; otherwise only
 * when meta "legacy" says some are left) and records how many are left. */
int ob_upgrade_entries(th_outbox *ob, MDB_txn *txn, int from_open);
/* outbox_acks.c: applies one result to the pending entry it answers; *changed
 * = 1 when there was one. */
int ob_ack_one(th_outbox *ob, MDB_txn *txn, const th_ack *a, const th_ack_result *res,
               int64_t now, int *changed);

#endif

/* outbox_env.c -- the outbox's LMDB environment: open (format check), close,
 * durable write transactions with map growth, meta and contact, counts. */
#include "outbox_private.h"
#include "th_lmdb.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define OB_DBS 7
#define OB_MAP_INITIAL (16u << 20)

int ob_write(th_outbox *ob, ob_txn_fn fn, void *ctx)
{
	for (int tries = 0; tries < 8; tries++) {
		MDB_txn *txn = NULL;
		int rc = mdb_txn_begin(ob->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED) {
			mdb_env_set_mapsize(ob->env, 0);
			rc = mdb_txn_begin(ob->env, NULL, 0, &txn);
		}
		if (rc)
			return th_lmdb_error(rc);
		rc = fn(ob, txn, ctx);
		if (rc == 0) {
			int mrc = mdb_txn_commit(txn);
			if (mrc == 0)
				return 0;
			rc = mrc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(mrc);
		} else {
			mdb_txn_abort(txn);
		}
		if (rc != TH_EMAPFULL)
			return rc;
		MDB_envinfo info;
		mdb_env_info(ob->env, &info);
		ob->map_size = info.me_mapsize * 2;
		if (mdb_env_set_mapsize(ob->env, ob->map_size))
			return TH_ENOSPC;
	}
	return TH_ENOSPC;
}

int ob_put(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, const void *v, size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	int rc = mdb_put(txn, dbi, &key, &val, 0);
	return rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
}

int ob_get(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, MDB_val *v)
{
	MDB_val key = {kl, (void *)k};
	return th_lmdb_error(mdb_get(txn, dbi, &key, v));
}

int ob_del(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl)
{
	MDB_val key = {kl, (void *)k};
	int rc = mdb_del(txn, dbi, &key, NULL);
	return rc == MDB_NOTFOUND ? 0 : th_lmdb_error(rc);
}

int ob_put_u64_val(MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl, uint64_t v)
{
	ob_buf b = {0};
	ob_put_u64(&b, v);
	int rc = b.oom ? TH_ENOMEM : ob_put(txn, dbi, k, kl, b.p, b.len);
	free(b.p);
	return rc;
}

MDB_dbi ob_table_dbi(const th_outbox *ob, th_ob_table t)
{
	return t == TH_OB_TPENDING ? ob->pending : t == TH_OB_TACKED ? ob->acked : ob->rejected;
}

/* --- open ------------------------------------------------------------------------ */
static const char not_outbox[] =
	"the directory holds an LMDB environment that is not an outbox (another program's "
	"data, such as the collector's store?): give --outbox a directory of its own";

/* Refuses an environment some other program made, before anything is created
 * in it: an outbox has a `meta` database with a numeric `format`, or nothing
 * at all (new). */
static int check_foreign(MDB_txn *txn, const char **why)
{
	MDB_dbi meta, main_db;
	int rc = mdb_dbi_open(txn, "meta", 0, &meta);
	if (rc == MDB_INCOMPATIBLE) {
		*why = not_outbox;
		return TH_ESTORE;
	}
	if (rc == MDB_NOTFOUND) {
		MDB_stat st;
		if ((rc = mdb_dbi_open(txn, NULL, 0, &main_db)) || (rc = mdb_stat(txn, main_db, &st)))
			return th_lmdb_error(rc);
		if (st.ms_entries) {
			*why = not_outbox;
			return TH_ESTORE;
		}
		return 0;   /* empty: a new outbox */
	}
	if (rc)
		return th_lmdb_error(rc);
	MDB_val v;
	rc = ob_get(txn, meta, "format", 6, &v);
	if (rc == TH_ENOTFOUND) {
		*why = not_outbox;
		return TH_ESTORE;
	}
	if (rc)
		return rc;
	const char *s = v.mv_data;
	int digits = v.mv_size > 0 && v.mv_size < 10;
	for (size_t i = 0; digits && i < v.mv_size; i++)
		digits = s[i] >= '0' && s[i] <= '9';
	if (!digits) {
		*why = not_outbox;
		return TH_ESTORE;
	}
	return 0;
}

static int ob_init(th_outbox *ob, MDB_txn *txn, void *ctx)
{
	const char **why = ctx;
	int rc = check_foreign(txn, why);
	if (rc)
		return rc;
	if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &ob->meta)) ||
	    (rc = mdb_dbi_open(txn, "pending", MDB_CREATE, &ob->pending)) ||
	    (rc = mdb_dbi_open(txn, "acked", MDB_CREATE, &ob->acked)) ||
	    (rc = mdb_dbi_open(txn, "rejected", MDB_CREATE, &ob->rejected)) ||
	    (rc = mdb_dbi_open(txn, "revs", MDB_CREATE, &ob->revs)) ||
	    (rc = mdb_dbi_open(txn, "history", MDB_CREATE, &ob->history)) ||
	    (rc = mdb_dbi_open(txn, "defs", MDB_CREATE, &ob->defs)))
		return th_lmdb_error(rc);
	MDB_val v;
	rc = ob_get(txn, ob->meta, "format", 6, &v);
	if (rc == TH_ENOTFOUND) {
		char f[16];
		int n = snprintf(f, sizeof f, "%d", TH_OUTBOX_FORMAT);
		return ob_put(txn, ob->meta, "format", 6, f, (size_t)n);
	}
	if (rc)
		return rc;
	char f[16];
	size_t n = v.mv_size < sizeof f - 1 ? v.mv_size : sizeof f - 1;
	memcpy(f, v.mv_data, n);
	f[n] = 0;
	int format = atoi(f);
	if (format == TH_OUTBOX_FORMAT)
		return 0;
	if (format == 1) {
		/* in place, in this transaction: all of it or nothing */
		rc = ob_upgrade_entries(ob, txn, 1);
		if (rc)
			return rc;
		char nf[16];
		int nn = snprintf(nf, sizeof nf, "%d", TH_OUTBOX_FORMAT);
		return ob_put(txn, ob->meta, "format", 6, nf, (size_t)nn);
	}
	*why = "the outbox was written by an agent of another format version: use the "
	       "tonghop-publish that wrote it, or move the directory aside";
	return TH_ESTORE;
}

/* Why mdb_env_open failed, for the operator. */
static const char *open_why(int rc)
{
	switch (rc) {
	case MDB_INVALID:
		return "its data.mdb is not an LMDB file (damaged, or not an outbox): move the "
		       "directory aside and start a new outbox";
	case MDB_VERSION_MISMATCH:
		return "its data.mdb was written by another LMDB version";
	case ENOTDIR:
		return "the outbox path is not a directory";
	case EACCES:
	case EPERM:
		return "permission denied (run as the user that owns the outbox)";
	case EROFS:
		return "the outbox is on a read-only file system";
	default:
		return "cannot open the outbox environment";
	}
}

int th_outbox_open(const char *dir, th_outbox **out, const char **why)
{
	const char *dummy;
	if (!why)
		why = &dummy;
	*why = NULL;
	if (!dir || !out)
		return TH_EINVAL;
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		*why = errno == EACCES ? "cannot create the outbox directory (permission denied)"
		                       : "cannot create the outbox directory";
		return TH_EIO;
	}
	th_outbox *ob = calloc(1, sizeof *ob);
	if (!ob)
		return TH_ENOMEM;
	int rc = mdb_env_create(&ob->env);
	if (rc) {
		free(ob);
		return th_lmdb_error(rc);
	}
	mdb_env_set_maxdbs(ob->env, OB_DBS + 1);
	ob->map_size = OB_MAP_INITIAL;
	mdb_env_set_mapsize(ob->env, ob->map_size);
	/* durable: no MDB_NOSYNC, no MDB_WRITEMAP */
	rc = mdb_env_open(ob->env, dir, 0, 0640);
	if (rc) {
		*why = open_why(rc);
		rc = th_lmdb_error(rc);
		goto fail;
	}
	int dead = 0;
	mdb_reader_check(ob->env, &dead);
	MDB_envinfo info;
	if (mdb_env_info(ob->env, &info) == 0 && info.me_mapsize > ob->map_size)
		ob->map_size = info.me_mapsize;
	rc = ob_write(ob, ob_init, why);
	if (rc) {
		if (!*why)
			*why = th_strerror(rc);
		goto fail;
	}
	*out = ob;
	return 0;
fail:
	mdb_env_close(ob->env);
	free(ob);
	return rc;
}

void th_outbox_close(th_outbox **pob)
{
	if (!pob || !*pob)
		return;
	mdb_env_close((*pob)->env);
	free(*pob);
	*pob = NULL;
}

/* --- counts and info ----------------------------------------------------------------- */
static size_t entries(th_outbox *ob, MDB_dbi dbi)
{
	MDB_txn *txn;
	if (mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn))
		return 0;
	MDB_stat st;
	size_t n = mdb_stat(txn, dbi, &st) == 0 ? st.ms_entries : 0;
	mdb_txn_abort(txn);
	return n;
}

size_t th_outbox_count(th_outbox *ob, th_ob_table t) { return entries(ob, ob_table_dbi(ob, t)); }
size_t th_outbox_history_count(th_outbox *ob) { return entries(ob, ob->history); }

int th_outbox_info(th_outbox *ob, th_ob_info *out)
{
	MDB_envinfo info;
	MDB_stat st;
	int rc = mdb_env_info(ob->env, &info);
	if (!rc)
		rc = mdb_env_stat(ob->env, &st);
	if (rc)
		return th_lmdb_error(rc);
	out->map_size = info.me_mapsize;
	out->used_bytes = ((size_t)info.me_last_pgno + 1) * st.ms_psize;
	out->last_txn = (uint64_t)info.me_last_txnid;
	return 0;
}

/* --- meta ---------------------------------------------------------------------------------- */
static void copy_str(char *dst, size_t cap, const MDB_val *v)
{
	size_t n = v->mv_size < cap - 1 ? v->mv_size : cap - 1;
	memcpy(dst, v->mv_data, n);
	dst[n] = 0;
}

int th_outbox_meta(th_outbox *ob, th_ob_meta *out)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return th_lmdb_error(rc);
	th_ob_meta m;
	memset(&m, 0, sizeof m);
	MDB_val v;
	if (ob_get(txn, ob->meta, "store", 5, &v) == 0 && v.mv_size == TH_STORE_UUID_LEN) {
		m.has_store = 1;
		memcpy(m.store, v.mv_data, TH_STORE_UUID_LEN);
	}
	if (ob_get(txn, ob->meta, "contact", 7, &v) == 0)
		m.last_contact = ob_val_i64(&v);
	if (ob_get(txn, ob->meta, "error", 5, &v) == 0)
		copy_str(m.last_error, sizeof m.last_error, &v);
	if (ob_get(txn, ob->meta, "collector", 9, &v) == 0)
		copy_str(m.collector, sizeof m.collector, &v);
	mdb_txn_abort(txn);
	*out = m;
	return 0;
}

typedef struct contact_ctx {
	const char *collector;
	int64_t when;
	const char *error;
} contact_ctx;

static int contact_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	contact_ctx *x = vctx;
	int rc = 0;
	if (x->collector)
		rc = ob_put(txn, ob->meta, "collector", 9, x->collector, strlen(x->collector));
	if (!rc && x->when)
		rc = ob_put_u64_val(txn, ob->meta, "contact", 7, (uint64_t)x->when);
	if (!rc && x->error)
		rc = ob_put(txn, ob->meta, "error", 5, x->error, strlen(x->error));
	return rc;
}

int th_outbox_set_contact(th_outbox *ob, const char *collector, int64_t when, const char *error)
{
	contact_ctx x = {collector, when, error};
	return ob_write(ob, contact_fn, &x);
}

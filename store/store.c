/* store.c -- opening a store: format check, creation, the format 1 -> 2 upgrade,
 * identity and configuration (layout: store/STORAGE.md). */
#include "store_private.h"

#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FORMAT "tonghop-store 2"
#define FORMAT_1 "tonghop-store 1"   /* fixed-size nodes: read, and upgraded by a writer */
#define DEFAULT_MAP ((size_t)64 << 20)

static void say(char *why, size_t cap, const char *fmt, const char *a, const char *b)
{
	if (why && cap)
		snprintf(why, cap, fmt, a, b);
}


/* Deletes history[key, rev] for every latest record (key, rev) of reports. */
int st_drop_latest_from_history(th_store *s, MDB_txn *txn)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->reports, &c);
	if (rc)
		return th_lmdb_error(rc);
	keylist l = {0};
	int ret = TH_OK;
	MDB_val k, v;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size > MAX_KEY || v.mv_size < sizeof(rec_header))
			continue;
		uint8_t *hk = st_keylist_push(&l, k.mv_size + 9);
		if (!hk) {
			ret = TH_ENOMEM;
			break;
		}
		rec_header h;
		memcpy(&h, v.mv_data, sizeof h);
		st_history_key(hk, &k, h.rev);
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < l.n && ret == TH_OK; i++) {
		MDB_val hk = {l.len[i], l.k[i]};
		rc = mdb_del(txn, s->history, &hk, NULL);
		if (rc && rc != MDB_NOTFOUND)
			ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
	}
	st_keylist_free(&l);
	return ret;
}


int th_store_open(const char *dir, const th_store_opts *opts, th_store **out)
{
	return th_store_open_why(dir, opts, out, NULL, 0);
}

int th_store_open_why(const char *dir, const th_store_opts *opts, th_store **out, char *why,
                      size_t cap)
{
	if (!dir || !out)
		return TH_EINVAL;
	th_store *s = calloc(1, sizeof *s);
	if (!s)
		return TH_ENOMEM;
	if (pthread_mutex_init(&s->mu, NULL)) {
		free(s);
		return TH_ENOMEM;
	}
	/* the writer first: a reader that keeps reading must not hold off a map growth
	 * (a thread never holds two reads, so preferring writers cannot deadlock) */
	pthread_rwlockattr_t ra;
	pthread_rwlockattr_init(&ra);
	pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	int lrc = pthread_rwlock_init(&s->envlock, &ra);
	pthread_rwlockattr_destroy(&ra);
	if (lrc) {
		pthread_mutex_destroy(&s->mu);
		free(s);
		return TH_ENOMEM;
	}
	s->locks = 1;
	s->readonly = opts && opts->readonly;
	s->map_size = opts && opts->map_size ? opts->map_size : DEFAULT_MAP;
	s->max_map = opts && opts->max_map_size ? opts->max_map_size : ((size_t)1 << 40);
	if (s->max_map < s->map_size)
		s->max_map = s->map_size;
	s->dir = strdup(dir);
	int rc;
	MDB_txn *txn = NULL;
	if (!s->dir) {
		rc = TH_ENOMEM;
		goto fail;
	}
	if (!s->readonly && mkdir(dir, 0750) != 0 && errno != EEXIST) {
		say(why, cap, "%s: cannot create the store directory: %s", dir, strerror(errno));
		rc = TH_EIO;
		goto fail;
	}
	if ((rc = st_open_env(s))) {
		say(why, cap, "%s: cannot open the LMDB environment (%s)", dir, th_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn))) {
		rc = th_lmdb_error(rc);
		say(why, cap, "%s: cannot begin a transaction (%s)", dir, th_strerror(rc));
		goto fail;
	}
	if ((rc = st_open_dbis(s, txn))) {
		say(why, cap, "%s: %s", dir, "not a tonghop store (its databases are missing)");
		goto fail;
	}
	MDB_val k = {6, "format"}, v;
	int old_format = 0;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND && !s->readonly) {
		MDB_val fv = {strlen(FORMAT), FORMAT};
		randombytes_buf(s->uuid, 16);
		MDB_val uk = {4, "uuid"}, uv = {16, s->uuid};
		if (mdb_put(txn, s->meta, &k, &fv, 0) || mdb_put(txn, s->meta, &uk, &uv, 0)) {
			rc = TH_ESTORE;
			say(why, cap, "%s: %s", dir, "cannot initialise the store");
			goto fail;
		}
	} else if (rc || ((v.mv_size != strlen(FORMAT) || memcmp(v.mv_data, FORMAT, v.mv_size)) &&
	                  (v.mv_size != strlen(FORMAT_1) || memcmp(v.mv_data, FORMAT_1, v.mv_size)))) {
		char found[64] = "none";
		if (rc == 0)
			snprintf(found, sizeof found, "%.*s", (int)(v.mv_size < 48 ? v.mv_size : 48),
			         (const char *)v.mv_data);
		if (why && cap)
			snprintf(why, cap, "%s: store format is \"%s\", this program reads \"%s\"", dir,
			         found, FORMAT);
		rc = TH_ESTORE;
		goto fail;
	} else {
		old_format = v.mv_size == strlen(FORMAT_1) && !memcmp(v.mv_data, FORMAT_1, v.mv_size);
		MDB_val uk = {4, "uuid"}, uv;
		if (mdb_get(txn, s->meta, &uk, &uv) || uv.mv_size != 16) {
			say(why, cap, "%s: %s", dir, "the store has no valid uuid");
			rc = TH_ESTORE;
			goto fail;
		}
		memcpy(s->uuid, uv.mv_data, 16);
	}
	MDB_val ck = {6, "commit"}, cv;
	if (mdb_get(txn, s->meta, &ck, &cv) == 0 && cv.mv_size == 8)
		memcpy(&s->last_commit, cv.mv_data, 8);
	if ((rc = st_load_hierarchies(s, txn)))
		goto fail;
	if ((rc = st_load_bindings(s, txn))) {
		say(why, cap, "%s: %s", dir, "cannot read the appendix versions bound to periods");
		goto fail;
	}
	/* committed even when read-only: the dbi handles opened in an aborted
	 * transaction would be closed with it */
	if ((rc = mdb_txn_commit(txn))) {
		txn = NULL;
		rc = th_lmdb_error(rc);
		say(why, cap, "%s: cannot commit (%s)", dir, th_strerror(rc));
		goto fail;
	}
	txn = NULL;
	if (old_format && !s->readonly && (rc = st_upgrade_nodes(s))) {
		say(why, cap, "%s: cannot upgrade the store's rollup nodes to format 2 (%s)", dir,
		    th_strerror(rc));
		goto fail;
	}
	s->format = old_format && s->readonly ? 1 : 2;
	*out = s;
	return TH_OK;
fail:
	if (txn)
		mdb_txn_abort(txn);
	th_store_close(&s);
	return rc;
}


void th_store_close(th_store **ps)
{
	if (!ps || !*ps)
		return;
	th_store *s = *ps;
	if (s->env)
		mdb_env_close(s->env);
	s->env = NULL;
	for (size_t i = 0; i < s->nh; i++)
		th_units_destroy(&s->h[i]);
	free(s->h);
	free(s->cfg);
	free(s->bound);
	st_expected_clear(s);
	st_ncache_free(s->ncmem);
	free(s->enc);
	free(s->dir);
	if (s->locks) {
		pthread_rwlock_destroy(&s->envlock);
		pthread_mutex_destroy(&s->mu);
	}
	free(s);
	*ps = NULL;
}

const uint8_t *th_store_uuid(const th_store *s) { return s->uuid; }
uint64_t th_store_last_commit(const th_store *s)
{
	return __atomic_load_n(&s->last_commit, __ATOMIC_ACQUIRE);
}

void th_store_set_commit_hook(th_store *s, th_store_commit_hook fn, void *ctx)
{
	s->hook = fn;
	s->hook_ctx = ctx;
}

int th_store_set_defs(th_store *s, const th_defset *defs)
{
	pthread_mutex_lock(&s->mu);
	s->defs = defs;
	st_expected_clear(s);
	pthread_mutex_unlock(&s->mu);
	return TH_OK;
}



/* Store format 1 -> 2: re-encodes every NODE_FIXED node as NODE_VARINT, drops
 * each key's latest revision from history (format 2 keeps it in reports only)
 * and sets the format, in one transaction (grown and replayed when the map is
 * full).  Nothing half-done is ever visible. */
int st_upgrade_nodes(th_store *s)
{
	for (;;) {
		MDB_txn *txn;
		MDB_cursor *c;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc)
			return th_lmdb_error(rc);
		if ((rc = mdb_cursor_open(txn, s->rollups, &c))) {
			mdb_txn_abort(txn);
			return th_lmdb_error(rc);
		}
		keylist l = {0};
		int ret = TH_OK;
		MDB_val k, v;
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == TH_OK;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			node_header h;
			if (k.mv_size > MAX_KEY || st_node_head(&v, &h) || h.enc != NODE_FIXED)
				continue;   /* damaged nodes are left for verify to report */
			uint8_t *key = st_keylist_push(&l, k.mv_size);
			if (!key) {
				ret = TH_ENOMEM;
				break;
			}
			memcpy(key, k.mv_data, k.mv_size);
		}
		mdb_cursor_close(c);
		int64_t *vals = NULL;
		size_t vcap = 0;
		for (size_t i = 0; i < l.n && ret == TH_OK; i++) {
			MDB_val kk = {l.len[i], l.k[i]}, ov, nv;
			node_header h;
			if ((rc = mdb_get(txn, s->rollups, &kk, &ov)) || st_node_head(&ov, &h)) {
				ret = rc ? th_lmdb_error(rc) : TH_ESTORE;
				break;
			}
			if (2 * (size_t)h.n_slots + 1 > vcap) {
				vcap = 2 * (size_t)h.n_slots + 1;
				int64_t *nvals = realloc(vals, vcap * sizeof *nvals);
				if (!nvals) {
					ret = TH_ENOMEM;
					break;
				}
				vals = nvals;
			}
			st_node_vals(&ov, &h, vals);
			nv.mv_size = st_node_enc_size(h.n_slots, vals, vals + h.n_slots);
			if ((rc = mdb_put(txn, s->rollups, &kk, &nv, MDB_RESERVE))) {
				ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
				break;
			}
			st_node_encode(nv.mv_data, &h, h.n_slots, vals, vals + h.n_slots);
		}
		free(vals);
		st_keylist_free(&l);
		if (ret == TH_OK)
			ret = st_drop_latest_from_history(s, txn);
		if (ret == TH_OK) {
			MDB_val fk = {6, "format"}, fv = {strlen(FORMAT), FORMAT};
			rc = mdb_put(txn, s->meta, &fk, &fv, 0);
			if (rc)
				mdb_txn_abort(txn);
			else
				rc = mdb_txn_commit(txn);
			if (rc == 0)
				return TH_OK;
			ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
		} else {
			mdb_txn_abort(txn);
		}
		if (ret != TH_EMAPFULL || (ret = st_grow(s)) != TH_OK)
			return ret;
	}
}

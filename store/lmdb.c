/* lmdb.c -- the store's LMDB environment: open and reopen, read transactions, map
 * growth and durable single puts, key helpers. */
#include "store_private.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int st_read_txn(th_store *s, MDB_txn **txn)
{
	pthread_rwlock_rdlock(&s->envlock);
	int rc = s->env ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn) : MDB_PANIC;
	if (rc == MDB_MAP_RESIZED) {
		/* another process grew the map: adopt its size, which LMDB allows only
		 * while no transaction of this process is active */
		pthread_rwlock_unlock(&s->envlock);
		pthread_rwlock_wrlock(&s->envlock);
		if (s->env)
			mdb_env_set_mapsize(s->env, 0);
		pthread_rwlock_unlock(&s->envlock);
		pthread_rwlock_rdlock(&s->envlock);
		rc = s->env ? mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn) : MDB_PANIC;
	}
	if (rc) {
		pthread_rwlock_unlock(&s->envlock);
		/* no environment: a failed reopen after MDB_PANIC */
		return th_lmdb_error(rc);
	}
	return TH_OK;
}

void st_read_end(th_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->envlock);
}


size_t st_key3(char *buf, const char *a, const char *b, const char *c)
{
	if (!a || !b || !c)
		return 0;
	size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
	if (la + lb + lc + 2 > MAX_KEY)
		return 0;
	memcpy(buf, a, la);
	buf[la] = 0;
	memcpy(buf + la + 1, b, lb);
	buf[la + lb + 1] = 0;
	memcpy(buf + la + lb + 2, c, lc);
	return la + lb + lc + 2;
}

/* Splits a stored "a\0b\0c" key into buf (MAX_KEY + 1 bytes); TH_ESTORE when
 * it does not have exactly that shape. */
int st_split3(const MDB_val *k, char *buf, const char **a, const char **b, const char **c)
{
	if (k->mv_size > MAX_KEY)
		return TH_ESTORE;
	memcpy(buf, k->mv_data, k->mv_size);
	buf[k->mv_size] = 0;
	size_t nul = 0;
	for (size_t i = 0; i < k->mv_size; i++)
		nul += buf[i] == 0;
	if (nul != 2)
		return TH_ESTORE;
	*a = buf;
	*b = buf + strlen(buf) + 1;
	*c = *b + strlen(*b) + 1;
	return TH_OK;
}

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}


int st_open_env(th_store *s)
{
	int rc = mdb_env_create(&s->env);
	if (rc)
		return th_lmdb_error(rc);
	mdb_env_set_maxdbs(s->env, 16);
	mdb_env_set_mapsize(s->env, s->map_size);
	mdb_env_set_maxreaders(s->env, 256);
	rc = mdb_env_open(s->env, s->dir, s->readonly ? MDB_RDONLY : 0, 0660);
	if (rc) {
		mdb_env_close(s->env);
		s->env = NULL;
		return rc == ENOENT ? TH_ENOTFOUND : th_lmdb_error(rc);
	}
	int dead = 0;
	mdb_reader_check(s->env, &dead);
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size)
		s->map_size = info.me_mapsize;
	return TH_OK;
}


int st_open_dbis(th_store *s, MDB_txn *txn)
{
	unsigned flags = s->readonly ? 0 : MDB_CREATE;
	if (mdb_dbi_open(txn, "meta", flags, &s->meta) || mdb_dbi_open(txn, "hier", flags, &s->hier) ||
	    mdb_dbi_open(txn, "bind", flags, &s->bind) ||
	    mdb_dbi_open(txn, "reports", flags, &s->reports) ||
	    mdb_dbi_open(txn, "history", flags, &s->history) ||
	    mdb_dbi_open(txn, "rollups", flags, &s->rollups) ||
	    mdb_dbi_open(txn, "deadlines", flags, &s->deadlines))
		return s->readonly ? TH_ENOTFOUND : TH_ESTORE;
	return TH_OK;
}

/* The history key of (report key k, rev): k, NUL, rev as big-endian uint64. */
size_t st_history_key(uint8_t *hk, const MDB_val *k, uint64_t rev)
{
	memcpy(hk, k->mv_data, k->mv_size);
	hk[k->mv_size] = 0;
	put_be64(hk + k->mv_size + 1, rev);
	return k->mv_size + 9;
}

uint8_t *st_keylist_push(keylist *l, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 1024;
		uint8_t (*nk)[MAX_KEY + 9] = realloc(l->k, cap * sizeof *nk);
		if (nk)
			l->k = nk;
		size_t *nl = realloc(l->len, cap * sizeof *nl);
		if (nl)
			l->len = nl;
		if (!nk || !nl)
			return NULL;
		l->cap = cap;
	}
	l->len[l->n] = len;
	return l->k[l->n++];
}

void st_keylist_free(keylist *l)
{
	free(l->k);
	free(l->len);
	memset(l, 0, sizeof *l);
}


/* st_reopen with the environment lock held for writing: no read of another thread
 * uses the environment while it is replaced. */
static int reopen_locked(th_store *s)
{
	if (s->env)
		mdb_env_close(s->env);
	s->env = NULL;
	int rc = st_open_env(s);
	if (rc)
		return rc;
	MDB_txn *txn;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
		return th_lmdb_error(rc);
	if ((rc = st_open_dbis(s, txn))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return th_lmdb_error(mdb_txn_commit(txn));
}

int st_reopen(th_store *s)
{
	pthread_rwlock_wrlock(&s->envlock);
	int rc = reopen_locked(s);
	pthread_rwlock_unlock(&s->envlock);
	return rc;
}

int st_grow(th_store *s)
{
	if (s->map_size >= s->max_map)
		return TH_ENOSPC;
	size_t next = s->map_size * 2;
	if (next > s->max_map)
		next = s->max_map;
	/* no read may be in flight on another thread while the map moves */
	pthread_rwlock_wrlock(&s->envlock);
	int rc = mdb_env_set_mapsize(s->env, next);
	pthread_rwlock_unlock(&s->envlock);
	if (rc)
		return th_lmdb_error(rc);
	s->map_size = next;
	return TH_OK;
}

/* n puts in one durable transaction, growing the map when full. */
int st_putn(th_store *s, const MDB_dbi *dbi, MDB_val *const *k, MDB_val *const *v, size_t n)
{
	if (s->readonly)
		return TH_EINVAL;
	if (!s->env)
		return TH_ESTORE;
	for (;;) {
		MDB_txn *txn;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc)
			return th_lmdb_error(rc);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = mdb_put(txn, dbi[i], k[i], v[i], 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc != MDB_MAP_FULL)
			return th_lmdb_error(rc);
		if ((rc = st_grow(s)))
			return rc;
	}
}

int st_put1(th_store *s, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	MDB_val *ks[1] = {k}, *vs[1] = {v};
	return st_putn(s, &dbi, ks, vs, 1);
}

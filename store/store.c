/* store.c -- the collector's LMDB store (layout: store/STORAGE.md). */
#include "th_store.h"
#include "th_mp.h"
#include "th_rollup.h"

#include <errno.h>
#include <lmdb.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#define FORMAT "tonghop-store 2"
#define FORMAT_1 "tonghop-store 1"   /* fixed-size nodes: read, and upgraded by a writer */
#define DEFAULT_MAP ((size_t)64 << 20)
#define MAX_KEY 256
#define EXP_CACHE 8

struct th_store {
	char *dir;
	MDB_env *env;
	MDB_dbi meta, hier, bind, reports, history, rollups, deadlines;
	int readonly;
	size_t map_size, max_map;
	uint8_t uuid[16];
	uint64_t last_commit;
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
};
static void expected_clear(th_store *s);
static void ncache_free(struct ncache *c);

/* --- records -------------------------------------------------------------------- */

/* A stored revision: fixed header then the canonical form (th_report_canonical). */
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

static int64_t now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000000 + tv.tv_usec;
}

static int xlate(int rc)
{
	switch (rc) {
	case 0: return TH_OK;
	case MDB_NOTFOUND: return TH_ENOTFOUND;
	case MDB_MAP_FULL: return TH_EMAPFULL;
	case ENOSPC: case EFBIG: case EDQUOT: return TH_ENOSPC;
	case ENOMEM: return TH_ENOMEM;
	case EACCES: case EROFS: return TH_EIO;
	default: return TH_ESTORE;
	}
}

/* A read-only transaction; picks up a map grown by the writer (another process). */
static int read_txn(th_store *s, MDB_txn **txn)
{
	if (!s->env)
		return TH_ESTORE;   /* a failed reopen after MDB_PANIC */
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	if (rc == MDB_MAP_RESIZED) {
		mdb_env_set_mapsize(s->env, 0);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn);
	}
	return xlate(rc);
}

static size_t key3(char *buf, const char *a, const char *b, const char *c)
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
static int split3(const MDB_val *k, char *buf, const char **a, const char **b, const char **c)
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

/* Decodes the canonical form back into a report (trusted data, still checked). */
static int decode_canonical(const uint8_t *buf, size_t len, const th_def *d, const char *unit,
                            const char *period, uint64_t rev, th_report **out)
{
	th_mp m;
	th_mp_init(&m, buf, len);
	uint32_t n, nrows;
	const char *s;
	uint32_t sn;
	uint64_t version;
	int64_t as_of;
	int tomb;
	if (th_mp_array(&m, &n) || n != 5 || th_mp_str(&m, &s, &sn) || th_mp_uint(&m, &version) ||
	    th_mp_int(&m, &as_of) || th_mp_bool(&m, &tomb) || th_mp_array(&m, &nrows))
		return TH_ESTORE;
	th_report *r = th_report_new(unit, d->id, (uint32_t)version, period, rev, d->n_cols);
	if (!r)
		return TH_ENOMEM;
	r->as_of = (int32_t)as_of;
	r->tombstone = (uint8_t)tomb;
	for (uint32_t i = 0; i < nrows; i++) {
		uint32_t nc;
		if (th_mp_array(&m, &nc) || nc != d->n_cols || th_report_add_row(r) < 0)
			goto bad;
		for (uint32_t c = 0; c < nc; c++) {
			th_value *v = th_report_cell(r, i, c);
			const th_column *col = &d->cols[c];
			if (th_mp_peek(&m) == TH_MP_NIL) {
				th_mp_nil(&m);
				continue;
			}
			v->null = 0;
			switch (col->type) {
			case TH_T_BOOL: {
				int b;
				if (th_mp_bool(&m, &b))
					goto bad;
				v->i = b;
				break;
			}
			case TH_T_ENUM:
				if (th_mp_str(&m, &s, &sn))
					goto bad;
				v->i = -1;
				for (size_t k = 0; k < col->n_values; k++)
					if (strlen(col->values[k].code) == sn && !memcmp(col->values[k].code, s, sn))
						v->i = (int64_t)k;
				if (v->i < 0)
					goto bad;
				break;
			case TH_T_TEXT:
				if (th_mp_str(&m, &s, &sn) || !(v->s = strndup(s, sn)))
					goto bad;
				v->len = sn;
				break;
			default:
				if (th_mp_int(&m, &v->i))
					goto bad;
			}
		}
	}
	*out = r;
	return TH_OK;
bad:
	th_report_destroy(&r);
	return TH_ESTORE;
}

/* --- open / close ------------------------------------------------------------------ */

static int load_hierarchies(th_store *s, MDB_txn *txn)
{
	MDB_cursor *c;
	if (mdb_cursor_open(txn, s->hier, &c))
		return TH_ESTORE;
	MDB_val k, v;
	int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		th_units *u = NULL;
		if (th_units_parse(v.mv_data, v.mv_size, "store", &u, NULL) == 0) {
			th_units **nh = realloc(s->h, (s->nh + 1) * sizeof *nh);
			if (!nh) {
				th_units_destroy(&u);
				mdb_cursor_close(c);
				return TH_ENOMEM;
			}
			s->h = nh;
			s->h[s->nh++] = u;
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	return TH_OK;
}

/* Appends (appendix, period, version) to a list of versions in force (lengths checked
 * by the caller). */
static int in_force_append(struct in_force **v, size_t *n, const char *appendix,
                           const char *period, uint32_t version)
{
	struct in_force *nv = realloc(*v, (*n + 1) * sizeof *nv);
	if (!nv)
		return TH_ENOMEM;
	*v = nv;
	snprintf(nv[*n].appendix, sizeof nv->appendix, "%s", appendix);
	snprintf(nv[*n].period, sizeof nv->period, "%s", period);
	nv[(*n)++].version = version;
	return TH_OK;
}

/* --- appendix versions bound to periods --------------------------------------------
 * meta "dv:" appendix NUL period -> uint32 version: the definition version a period's
 * reports were first accepted with.  Rollups of that period keep using it after a newer
 * version of the appendix is loaded. */
#define DV_PREFIX "dv:"

static size_t dv_key(char *key, const char *appendix, const char *period)
{
	size_t a = strlen(appendix), p = strlen(period);
	memcpy(key, DV_PREFIX, 3);
	memcpy(key + 3, appendix, a);
	key[3 + a] = 0;
	memcpy(key + 4 + a, period, p);
	return 4 + a + p;
}

static const struct in_force *bound_find(const th_store *s, const char *appendix, const char *period)
{
	for (size_t i = 0; i < s->nbound; i++)
		if (!strcmp(s->bound[i].period, period) && !strcmp(s->bound[i].appendix, appendix))
			return &s->bound[i];
	return NULL;
}

static int bound_add(th_store *s, const char *appendix, const char *period, uint32_t version)
{
	if (strlen(appendix) > TH_CODE_MAX || strlen(period) > TH_PERIOD_MAX)
		return TH_EINVAL;
	if (bound_find(s, appendix, period))
		return TH_OK;
	return in_force_append(&s->bound, &s->nbound, appendix, period, version);
}

/* Binds (appendix, period) to version inside txn unless it is bound already. */
static int bind_version(th_store *s, MDB_txn *txn, const char *appendix, const char *period,
                        uint32_t version)
{
	if (bound_find(s, appendix, period))
		return TH_OK;
	char key[4 + 2 * (TH_CODE_MAX + 1) + TH_PERIOD_MAX];
	MDB_val k = {dv_key(key, appendix, period), key}, v = {sizeof version, &version};
	int rc = mdb_put(txn, s->meta, &k, &v, MDB_NOOVERWRITE);
	if (rc && rc != MDB_KEYEXIST)
		return rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
	return bound_add(s, appendix, period, version);
}

/* Loads the bindings; a writer opening a store made before they existed binds every
 * (appendix, period) that has reports to the version of its records, once. */
static int load_bindings(th_store *s, MDB_txn *txn)
{
	MDB_cursor *c;
	if (mdb_cursor_open(txn, s->meta, &c))
		return TH_ESTORE;
	MDB_val k = {3, DV_PREFIX}, v;
	int rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size > 3 && !memcmp(k.mv_data, DV_PREFIX, 3)) {
		const char *a = (const char *)k.mv_data + 3;
		size_t al = strnlen(a, k.mv_size - 3);
		char app[TH_CODE_MAX + 1], per[TH_PERIOD_MAX + 1];
		if (al <= TH_CODE_MAX && k.mv_size - 4 - al <= TH_PERIOD_MAX && v.mv_size == 4) {
			uint32_t ver;
			memcpy(app, a, al);
			app[al] = 0;
			memcpy(per, a + al + 1, k.mv_size - 4 - al);
			per[k.mv_size - 4 - al] = 0;
			memcpy(&ver, v.mv_data, 4);
			if (bound_add(s, app, per, ver)) {
				mdb_cursor_close(c);
				return TH_ENOMEM;
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	MDB_val sk = {10, "dv-scanned"}, sv;
	if (s->readonly || mdb_get(txn, s->meta, &sk, &sv) == 0)
		return TH_OK;
	if (mdb_cursor_open(txn, s->reports, &c))
		return TH_ESTORE;
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	int ret = TH_OK;
	while (rc == 0 && ret == TH_OK) {
		/* key unit NUL appendix NUL period; value a record header first */
		const char *p = k.mv_data, *end = p + k.mv_size;
		const char *app = memchr(p, 0, k.mv_size);
		const char *per = app ? memchr(app + 1, 0, (size_t)(end - app - 1)) : NULL;
		if (per && v.mv_size >= sizeof(rec_header)) {
			char a[TH_CODE_MAX + 1], q[TH_PERIOD_MAX + 1];
			size_t al = (size_t)(per - app - 1), ql = (size_t)(end - per - 1);
			if (al <= TH_CODE_MAX && ql <= TH_PERIOD_MAX) {
				rec_header h;
				memcpy(&h, v.mv_data, sizeof h);
				memcpy(a, app + 1, al);
				a[al] = 0;
				memcpy(q, per + 1, ql);
				q[ql] = 0;
				ret = bind_version(s, txn, a, q, h.version);
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (ret == TH_OK && mdb_put(txn, s->meta, &sk, &(MDB_val){1, "1"}, 0))
		ret = TH_ESTORE;
	return ret;
}

static int open_env(th_store *s)
{
	int rc = mdb_env_create(&s->env);
	if (rc)
		return xlate(rc);
	mdb_env_set_maxdbs(s->env, 16);
	mdb_env_set_mapsize(s->env, s->map_size);
	mdb_env_set_maxreaders(s->env, 256);
	rc = mdb_env_open(s->env, s->dir, s->readonly ? MDB_RDONLY : 0, 0660);
	if (rc) {
		mdb_env_close(s->env);
		s->env = NULL;
		return rc == ENOENT ? TH_ENOTFOUND : xlate(rc);
	}
	int dead = 0;
	mdb_reader_check(s->env, &dead);
	MDB_envinfo info;
	if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size)
		s->map_size = info.me_mapsize;
	return TH_OK;
}

static void say(char *why, size_t cap, const char *fmt, const char *a, const char *b)
{
	if (why && cap)
		snprintf(why, cap, fmt, a, b);
}

static int open_dbis(th_store *s, MDB_txn *txn)
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
static size_t history_key(uint8_t *hk, const MDB_val *k, uint64_t rev)
{
	memcpy(hk, k->mv_data, k->mv_size);
	hk[k->mv_size] = 0;
	put_be64(hk + k->mv_size + 1, rev);
	return k->mv_size + 9;
}

/* Keys collected under a cursor, to be written after it is closed (puts would
 * move the cursor's pages). */
typedef struct keylist {
	uint8_t (*k)[MAX_KEY + 9];
	size_t *len, n, cap;
} keylist;

/* Room for one more key of len bytes (at most MAX_KEY + 9), or NULL. */
static uint8_t *keylist_push(keylist *l, size_t len)
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

static void keylist_free(keylist *l)
{
	free(l->k);
	free(l->len);
	memset(l, 0, sizeof *l);
}

static int upgrade_nodes(th_store *s);

/* Deletes history[key, rev] for every latest record (key, rev) of reports. */
static int drop_latest_from_history(th_store *s, MDB_txn *txn)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->reports, &c);
	if (rc)
		return xlate(rc);
	keylist l = {0};
	int ret = TH_OK;
	MDB_val k, v;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		if (k.mv_size > MAX_KEY || v.mv_size < sizeof(rec_header))
			continue;
		uint8_t *hk = keylist_push(&l, k.mv_size + 9);
		if (!hk) {
			ret = TH_ENOMEM;
			break;
		}
		rec_header h;
		memcpy(&h, v.mv_data, sizeof h);
		history_key(hk, &k, h.rev);
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < l.n && ret == TH_OK; i++) {
		MDB_val hk = {l.len[i], l.k[i]};
		rc = mdb_del(txn, s->history, &hk, NULL);
		if (rc && rc != MDB_NOTFOUND)
			ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
	}
	keylist_free(&l);
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
	if ((rc = open_env(s))) {
		say(why, cap, "%s: cannot open the LMDB environment (%s)", dir, th_strerror(rc));
		goto fail;
	}
	if ((rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn))) {
		rc = xlate(rc);
		say(why, cap, "%s: cannot begin a transaction (%s)", dir, th_strerror(rc));
		goto fail;
	}
	if ((rc = open_dbis(s, txn))) {
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
	if ((rc = load_hierarchies(s, txn)))
		goto fail;
	if ((rc = load_bindings(s, txn))) {
		say(why, cap, "%s: %s", dir, "cannot read the appendix versions bound to periods");
		goto fail;
	}
	/* committed even when read-only: the dbi handles opened in an aborted
	 * transaction would be closed with it */
	if ((rc = mdb_txn_commit(txn))) {
		txn = NULL;
		rc = xlate(rc);
		say(why, cap, "%s: cannot commit (%s)", dir, th_strerror(rc));
		goto fail;
	}
	txn = NULL;
	if (old_format && !s->readonly && (rc = upgrade_nodes(s))) {
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

/* After MDB_PANIC: closes and reopens the environment (no transaction may be open). */
static int reopen(th_store *s)
{
	if (s->env)
		mdb_env_close(s->env);
	s->env = NULL;
	int rc = open_env(s);
	if (rc)
		return rc;
	MDB_txn *txn;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)))
		return xlate(rc);
	if ((rc = open_dbis(s, txn))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return xlate(mdb_txn_commit(txn));
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
	expected_clear(s);
	ncache_free(s->ncmem);
	free(s->enc);
	free(s->dir);
	free(s);
	*ps = NULL;
}

const uint8_t *th_store_uuid(const th_store *s) { return s->uuid; }
uint64_t th_store_last_commit(const th_store *s) { return s->last_commit; }

int th_store_set_defs(th_store *s, const th_defset *defs)
{
	s->defs = defs;
	expected_clear(s);
	return TH_OK;
}

int th_store_set_in_force(th_store *s, const char *appendix, const char *period, uint32_t version)
{
	if (!appendix || strlen(appendix) > TH_CODE_MAX || (period && strlen(period) > TH_PERIOD_MAX))
		return TH_EINVAL;
	for (size_t i = 0; i < s->ncfg; i++)
		if (!strcmp(s->cfg[i].appendix, appendix) && !strcmp(s->cfg[i].period, period ? period : "")) {
			s->cfg[i].version = version;
			return TH_OK;
		}
	return in_force_append(&s->cfg, &s->ncfg, appendix, period ? period : "", version);
}

/* The definition in force for (appendix, period): configured for the period, else the
 * version the period is bound to, else configured for every period, else the latest. */
static const th_def *def_in_force(th_store *s, const char *appendix, const char *period);

const th_def *th_store_def_for(th_store *s, const char *appendix, const char *period)
{
	return s ? def_in_force(s, appendix, period) : NULL;
}

static const th_def *def_in_force(th_store *s, const char *appendix, const char *period)
{
	if (!s->defs || !appendix)
		return NULL;
	const struct in_force *any = NULL;
	for (size_t i = 0; i < s->ncfg; i++)
		if (!strcmp(s->cfg[i].appendix, appendix)) {
			if (period && !strcmp(s->cfg[i].period, period))
				return th_defset_get(s->defs, appendix, s->cfg[i].version);
			if (!s->cfg[i].period[0])
				any = &s->cfg[i];
		}
	const struct in_force *b = period ? bound_find(s, appendix, period) : NULL;
	if (b)
		return th_defset_get(s->defs, appendix, b->version);
	if (any)
		return th_defset_get(s->defs, appendix, any->version);
	return th_defset_latest(s->defs, appendix);
}

static int grow(th_store *s)
{
	if (s->map_size >= s->max_map)
		return TH_ENOSPC;
	size_t next = s->map_size * 2;
	if (next > s->max_map)
		next = s->max_map;
	int rc = mdb_env_set_mapsize(s->env, next);
	if (rc)
		return xlate(rc);
	s->map_size = next;
	return TH_OK;
}

/* n puts in one durable transaction, growing the map when full. */
static int putn(th_store *s, const MDB_dbi *dbi, MDB_val *const *k, MDB_val *const *v, size_t n)
{
	if (s->readonly)
		return TH_EINVAL;
	if (!s->env)
		return TH_ESTORE;
	for (;;) {
		MDB_txn *txn;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc)
			return xlate(rc);
		for (size_t i = 0; i < n && rc == 0; i++)
			rc = mdb_put(txn, dbi[i], k[i], v[i], 0);
		if (rc == 0)
			rc = mdb_txn_commit(txn);
		else
			mdb_txn_abort(txn);
		if (rc != MDB_MAP_FULL)
			return xlate(rc);
		if ((rc = grow(s)))
			return rc;
	}
}

static int put1(th_store *s, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
	MDB_val *ks[1] = {k}, *vs[1] = {v};
	return putn(s, &dbi, ks, vs, 1);
}

/* --- hierarchies and periods ---------------------------------------------------------- */

static th_units *find_version(th_store *s, const char *id, size_t n)
{
	for (size_t i = 0; i < s->nh; i++)
		if (strlen(th_units_version(s->h[i])) == n && !memcmp(th_units_version(s->h[i]), id, n))
			return s->h[i];
	return NULL;
}

/* The meta key recording where hierarchy version id came from. */
static size_t origin_key(char *buf, const char *id, size_t n)
{
	if (n > MAX_KEY - 8)
		return 0;
	memcpy(buf, "origin:", 7);
	memcpy(buf + 7, id, n);
	return 7 + n;
}

int th_store_add_hierarchy(th_store *s, const th_units *u)
{
	return th_store_add_hierarchy_from(s, u, NULL);
}

int th_store_add_hierarchy_from(th_store *s, const th_units *u, const char *origin)
{
	const char *id = th_units_version(u);
	size_t len;
	const char *src = th_units_source(u, &len);
	th_units *have = find_version(s, id, strlen(id));
	if (have) {
		size_t hl;
		const char *hs = th_units_source(have, &hl);
		return hl == len && memcmp(hs, src, len) == 0 ? TH_OK : TH_EEXIST;
	}
	if (s->readonly)
		return TH_EINVAL;
	th_units *copy = NULL;
	int rc = th_units_parse(src, len, id, &copy, NULL);
	if (rc)
		return rc;
	MDB_val k = {strlen(id), (void *)id}, v = {len, (void *)src};
	/* the version and where it came from, in one transaction */
	char okey[MAX_KEY], oval[8 + TH_ORIGIN_MAX];
	size_t on = origin ? strnlen(origin, TH_ORIGIN_MAX - 1) : 0;
	int64_t now = now_us();
	memcpy(oval, &now, 8);
	memcpy(oval + 8, origin ? origin : "", on);
	MDB_val ok = {origin_key(okey, id, strlen(id)), okey}, ov = {8 + on, oval};
	MDB_dbi dbis[2] = {s->hier, s->meta};
	MDB_val *ks[2] = {&k, &ok}, *vs[2] = {&v, &ov};
	if ((rc = putn(s, dbis, ks, vs, ok.mv_size ? 2 : 1))) {
		th_units_destroy(&copy);
		return rc;
	}
	th_units **nh = realloc(s->h, (s->nh + 1) * sizeof *nh);
	if (!nh) {
		th_units_destroy(&copy);
		return TH_ENOMEM;
	}
	s->h = nh;
	s->h[s->nh++] = copy;
	return TH_OK;
}

const th_units *th_store_current_hierarchy(th_store *s)
{
	th_units *best = NULL;
	for (size_t i = 0; i < s->nh; i++)
		if (!best || th_units_effective(s->h[i]) >= th_units_effective(best))
			best = s->h[i];
	return best;
}

static int32_t period_start(const char *p)
{
	int y = atoi(p), m = 1;
	if (strlen(p) == 7) {
		if (p[5] == 'Q')
			m = (p[6] - '1') * 3 + 1;
		else if (p[5] == 'H')
			m = p[6] == '2' ? 7 : 1;
		else
			m = atoi(p + 5);
	}
	return y * 10000 + m * 100 + 1;
}

/* The version in force at the period's start: the latest effective on or before it;
 * when none is effective yet, the earliest. */
static th_units *choose_version(th_store *s, const char *period)
{
	int32_t start = period_start(period);
	th_units *best = NULL, *earliest = NULL;
	for (size_t i = 0; i < s->nh; i++) {
		int32_t e = th_units_effective(s->h[i]);
		if (!earliest || e < th_units_effective(earliest))
			earliest = s->h[i];
		if (e <= start && (!best || e >= th_units_effective(best)))
			best = s->h[i];
	}
	return best ? best : earliest;
}

/* Looks up (binding when txn is a write txn and the period is unbound). */
static int bound(th_store *s, MDB_txn *txn, int can_write, const char *period, th_units **out)
{
	MDB_val k = {strlen(period), (void *)period}, v;
	int rc = mdb_get(txn, s->bind, &k, &v);
	if (rc == 0) {
		th_units *u = find_version(s, v.mv_data, v.mv_size);
		if (!u) {
			/* added by the writer after this (read-only) handle was opened */
			MDB_val hv;
			if (mdb_get(txn, s->hier, &v, &hv) ||
			    th_units_parse(hv.mv_data, hv.mv_size, "store", &u, NULL))
				return TH_ESTORE;
			th_units **nh = realloc(s->h, (s->nh + 1) * sizeof *nh);
			if (!nh) {
				th_units_destroy(&u);
				return TH_ENOMEM;
			}
			s->h = nh;
			s->h[s->nh++] = u;
		}
		*out = u;
		return TH_OK;
	}
	if (rc != MDB_NOTFOUND)
		return xlate(rc);
	th_units *u = choose_version(s, period);
	if (!u)
		return TH_ENOTFOUND;
	if (can_write) {
		const char *id = th_units_version(u);
		MDB_val bv = {strlen(id), (void *)id};
		if ((rc = mdb_put(txn, s->bind, &k, &bv, 0)))
			return xlate(rc);
	}
	*out = u;
	return TH_OK;
}

int th_store_hierarchy_for(th_store *s, const char *period, const th_units **out)
{
	if (!period || !th_period_valid(period))
		return TH_EPERIOD;
	if (!s->env)
		return TH_ESTORE;
	MDB_txn *txn;
	int rc = s->readonly ? read_txn(s, &txn) : xlate(mdb_txn_begin(s->env, NULL, 0, &txn));
	if (rc)
		return rc;
	th_units *u = NULL;
	rc = bound(s, txn, !s->readonly, period, &u);
	if (rc == 0 && !s->readonly) {
		int c = mdb_txn_commit(txn);
		if (c)
			rc = xlate(c);
	} else {
		mdb_txn_abort(txn);
	}
	if (rc == TH_EMAPFULL) {
		if ((rc = grow(s)) != TH_OK)
			return rc;
		return th_store_hierarchy_for(s, period, out);
	}
	if (rc == 0)
		*out = u;
	return rc;
}

int th_store_set_deadline(th_store *s, const char *appendix, const char *period, const char *unit,
                          int32_t deadline)
{
	if (s->readonly)
		return TH_EINVAL;
	char key[MAX_KEY];
	size_t kl = key3(key, appendix, period, unit ? unit : "");
	if (!kl)
		return TH_ETOOBIG;
	MDB_val k = {kl, key}, v = {4, &deadline};
	return put1(s, s->deadlines, &k, &v);
}

/* 1 on time, 0 late, for a first acceptance at time t (unix µs). */
static int on_time(th_store *s, MDB_txn *txn, const char *appendix, const char *period,
                   const char *unit, int64_t t)
{
	char key[MAX_KEY];
	int32_t dl = 0;
	MDB_val v;
	size_t kl = key3(key, appendix, period, unit);
	MDB_val k = {kl, key};
	if (kl && mdb_get(txn, s->deadlines, &k, &v) == 0 && v.mv_size == 4) {
		memcpy(&dl, v.mv_data, 4);
	} else {
		kl = key3(key, appendix, period, "");
		k.mv_size = kl;
		if (kl && mdb_get(txn, s->deadlines, &k, &v) == 0 && v.mv_size == 4)
			memcpy(&dl, v.mv_data, 4);
	}
	if (!dl)
		return 1;
	time_t sec = (time_t)(t / 1000000);
	struct tm tm;
	localtime_r(&sec, &tm);
	int32_t day = (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
	return day <= dl;
}

int th_store_hierarchies(th_store *s, th_hier_cb cb, void *ctx)
{
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, s->hier, &c))) {
		mdb_txn_abort(txn);
		return xlate(rc);
	}
	MDB_val k, v;
	int ret = TH_OK;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		th_units *u = find_version(s, k.mv_data, k.mv_size);
		if (!u) {
			if (th_units_parse(v.mv_data, v.mv_size, "store", &u, NULL)) {
				ret = TH_ESTORE;
				break;
			}
			th_units **nh = realloc(s->h, (s->nh + 1) * sizeof *nh);
			if (!nh) {
				th_units_destroy(&u);
				ret = TH_ENOMEM;
				break;
			}
			s->h = nh;
			s->h[s->nh++] = u;
		}
		ret = cb(ctx, u);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return ret;
}

int th_store_hierarchy_origin(th_store *s, const char *version, int64_t *loaded_at, char *origin,
                              size_t cap)
{
	char key[MAX_KEY];
	size_t kl = version ? origin_key(key, version, strlen(version)) : 0;
	if (!kl)
		return TH_EINVAL;
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_val k = {kl, key}, v;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == 0 && v.mv_size >= 8) {
		int64_t t;
		memcpy(&t, v.mv_data, 8);
		size_t n = v.mv_size - 8;
		if (origin && cap) {
			if (n >= cap)
				n = cap - 1;
			memcpy(origin, (const char *)v.mv_data + 8, n);
			origin[n] = 0;
		}
		if (loaded_at)
			*loaded_at = t;
		rc = TH_OK;
	} else {
		rc = rc == MDB_NOTFOUND || rc == 0 ? TH_ENOTFOUND : xlate(rc);
	}
	mdb_txn_abort(txn);
	return rc;
}

int th_store_bindings(th_store *s, th_binding_cb cb, void *ctx)
{
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, s->bind, &c))) {
		mdb_txn_abort(txn);
		return xlate(rc);
	}
	MDB_val k, v;
	int ret = TH_OK;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == 0;
	     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char p[TH_PERIOD_MAX + 1], id[256];
		if (k.mv_size > TH_PERIOD_MAX || v.mv_size >= sizeof id)
			continue;
		memcpy(p, k.mv_data, k.mv_size);
		p[k.mv_size] = 0;
		memcpy(id, v.mv_data, v.mv_size);
		id[v.mv_size] = 0;
		ret = cb(ctx, p, id);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return ret;
}

/* --- nodes ----------------------------------------------------------------------------- */

typedef struct {
	node_header h;
	int64_t *own, *total;
} node;

static int node_alloc(node *n, const th_def *d)
{
	memset(n, 0, sizeof *n);
	n->own = calloc(2 * (size_t)d->n_slots, sizeof(int64_t));
	if (!n->own)
		return TH_ENOMEM;
	n->total = n->own + d->n_slots;
	th_rollup_zero(d, n->own);
	th_rollup_zero(d, n->total);
	n->h.n_slots = (uint32_t)d->n_slots;
	return TH_OK;
}

static void node_release(node *n)
{
	free(n->own);   /* total is in the same block */
	n->own = n->total = NULL;
}

static uint64_t zigzag(int64_t v)
{
	uint64_t u = (uint64_t)v;
	return (u << 1) ^ (0 - (u >> 63));
}

static int64_t unzigzag(uint64_t u)
{
	return (int64_t)((u >> 1) ^ (0 - (u & 1)));
}

static size_t varint_len(uint64_t u)
{
	size_t n = 1;
	for (; u >= 0x80; u >>= 7)
		n++;
	return n;
}

static int node_same(size_t n_slots, const int64_t *own, const int64_t *total)
{
	return memcmp(own, total, n_slots * sizeof *own) == 0;
}

/* A node's stored size as node_encode writes it. */
static size_t node_enc_size(size_t n_slots, const int64_t *own, const int64_t *total)
{
	size_t len = sizeof(node_header);
	int same = node_same(n_slots, own, total);
	for (size_t i = 0; i < n_slots; i++)
		len += varint_len(zigzag(own[i])) + (same ? 0 : varint_len(zigzag(total[i])));
	return len;
}

static uint8_t *put_varint(uint8_t *p, uint64_t u)
{
	for (; u >= 0x80; u >>= 7)
		*p++ = (uint8_t)(u | 0x80);
	*p++ = (uint8_t)u;
	return p;
}

/* Writes h (as NODE_SAME when total == own, else NODE_VARINT) and the values
 * into out (room for 40 + 20 * n_slots bytes); returns the length, node_enc_size. */
static size_t node_encode(uint8_t *out, const node_header *h, size_t n_slots, const int64_t *own,
                          const int64_t *total)
{
	node_header hh = *h;
	hh.n_slots = (uint32_t)n_slots;
	int same = node_same(n_slots, own, total);
	hh.enc = same ? NODE_SAME : NODE_VARINT;
	memcpy(out, &hh, sizeof hh);
	uint8_t *p = out + sizeof hh;
	for (size_t i = 0; i < n_slots; i++)
		p = put_varint(p, zigzag(own[i]));
	for (size_t i = 0; i < n_slots && !same; i++)
		p = put_varint(p, zigzag(total[i]));
	return (size_t)(p - out);
}

/* A stored node's header; TH_ESTORE when the value is too short, of an unknown
 * encoding, or too short for its n_slots. */
static int node_head(const MDB_val *v, node_header *h)
{
	if (v->mv_size < sizeof *h)
		return TH_ESTORE;
	memcpy(h, v->mv_data, sizeof *h);
	size_t body = v->mv_size - sizeof *h, cnt = 2 * (size_t)h->n_slots;
	if (h->enc == NODE_FIXED)
		return body == cnt * sizeof(int64_t) ? TH_OK : TH_ESTORE;
	if (h->enc == NODE_VARINT)
		return body >= cnt && body <= cnt * 10 ? TH_OK : TH_ESTORE;
	if (h->enc == NODE_SAME)
		return body >= cnt / 2 && body <= cnt / 2 * 10 ? TH_OK : TH_ESTORE;
	return TH_ESTORE;
}

/* Its 2 * h->n_slots values (own then total) into out; h from node_head. */
static int node_vals(const MDB_val *v, const node_header *h, int64_t *out)
{
	const uint8_t *p = (const uint8_t *)v->mv_data + sizeof *h;
	size_t len = v->mv_size - sizeof *h, cnt = 2 * (size_t)h->n_slots, at = 0;
	if (h->enc == NODE_FIXED) {
		memcpy(out, p, len);
		return TH_OK;
	}
	if (h->enc == NODE_SAME)
		cnt /= 2;   /* own only; total is copied from it below */
	for (size_t i = 0; i < cnt; i++) {
		/* most values take one or two bytes */
		if (at < len && p[at] < 0x80) {
			out[i] = unzigzag(p[at++]);
			continue;
		}
		if (at + 1 < len && p[at + 1] < 0x80) {
			out[i] = unzigzag((uint64_t)(p[at] & 0x7f) | (uint64_t)p[at + 1] << 7);
			at += 2;
			continue;
		}
		uint64_t u = 0;
		for (unsigned sh = 0;; sh += 7) {
			if (at >= len || (sh == 63 && p[at] > 1))
				return TH_ESTORE;
			uint8_t b = p[at++];
			u |= (uint64_t)(b & 0x7f) << sh;
			if (!(b & 0x80))
				break;
		}
		out[i] = unzigzag(u);
	}
	if (at != len)
		return TH_ESTORE;
	if (h->enc == NODE_SAME)
		memcpy(out + cnt, out, cnt * sizeof *out);
	return TH_OK;
}

static int drop_latest_from_history(th_store *s, MDB_txn *txn);

/* Store format 1 -> 2: re-encodes every NODE_FIXED node as NODE_VARINT, drops
 * each key's latest revision from history (format 2 keeps it in reports only)
 * and sets the format, in one transaction (grown and replayed when the map is
 * full).  Nothing half-done is ever visible. */
static int upgrade_nodes(th_store *s)
{
	for (;;) {
		MDB_txn *txn;
		MDB_cursor *c;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc)
			return xlate(rc);
		if ((rc = mdb_cursor_open(txn, s->rollups, &c))) {
			mdb_txn_abort(txn);
			return xlate(rc);
		}
		keylist l = {0};
		int ret = TH_OK;
		MDB_val k, v;
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == TH_OK;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			node_header h;
			if (k.mv_size > MAX_KEY || node_head(&v, &h) || h.enc != NODE_FIXED)
				continue;   /* damaged nodes are left for verify to report */
			uint8_t *key = keylist_push(&l, k.mv_size);
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
			if ((rc = mdb_get(txn, s->rollups, &kk, &ov)) || node_head(&ov, &h)) {
				ret = rc ? xlate(rc) : TH_ESTORE;
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
			node_vals(&ov, &h, vals);
			nv.mv_size = node_enc_size(h.n_slots, vals, vals + h.n_slots);
			if ((rc = mdb_put(txn, s->rollups, &kk, &nv, MDB_RESERVE))) {
				ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
				break;
			}
			node_encode(nv.mv_data, &h, h.n_slots, vals, vals + h.n_slots);
		}
		free(vals);
		keylist_free(&l);
		if (ret == TH_OK)
			ret = drop_latest_from_history(s, txn);
		if (ret == TH_OK) {
			MDB_val fk = {6, "format"}, fv = {strlen(FORMAT), FORMAT};
			rc = mdb_put(txn, s->meta, &fk, &fv, 0);
			if (rc)
				mdb_txn_abort(txn);
			else
				rc = mdb_txn_commit(txn);
			if (rc == 0)
				return TH_OK;
			ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
		} else {
			mdb_txn_abort(txn);
		}
		if (ret != TH_EMAPFULL || (ret = grow(s)) != TH_OK)
			return ret;
	}
}

/* The group's node cache.  While th_store_apply runs a group, every node it
 * reads or writes is kept here decoded, keyed like `rollups`: a report's path
 * reads its ancestors from memory, and each changed node is written to LMDB
 * once, in key order, when the group is done (ncache_flush), instead of once
 * per report (a group of 1,000 national reports changes ~1,300 nodes, but
 * wrote 4,000).  A node laid out for another definition version is cached as
 * node_read gives it (empty, keeping its version).  The cache is emptied for
 * every transaction attempt, so an aborted group leaves nothing behind. */
typedef struct {
	char key[MAX_KEY];
	uint32_t kl;
	uint8_t dirty;
	const th_def *d;
	node_header h;
	int64_t *v;           /* own[n_slots] then total[n_slots] */
} ncache_ent;

struct ncache {
	ncache_ent *e;
	size_t n, cap;
	uint32_t *slot;       /* index + 1 into e, 0 = empty; hcap entries, a power of 2 */
	size_t hcap;
};

static uint64_t key_hash(const char *k, size_t n)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a */
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)k[i]) * 1099511628211ull;
	return h;
}

static void ncache_clear(struct ncache *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->e[i].v);
	c->n = 0;
	if (c->slot)
		memset(c->slot, 0, c->hcap * sizeof *c->slot);
}

static void ncache_free(struct ncache *c)
{
	if (!c)
		return;
	ncache_clear(c);
	free(c->e);
	free(c->slot);
	free(c);
}

/* The entry for key, or NULL; *j is where a new one goes in the index. */
static ncache_ent *ncache_find(struct ncache *c, const char *key, size_t kl, size_t *j)
{
	if (!c->hcap)
		return NULL;
	size_t i = key_hash(key, kl) & (c->hcap - 1);
	for (; c->slot[i]; i = (i + 1) & (c->hcap - 1)) {
		ncache_ent *x = &c->e[c->slot[i] - 1];
		if (x->kl == kl && !memcmp(x->key, key, kl))
			return x;
	}
	*j = i;
	return NULL;
}

/* A new entry for key (not present) holding n; NULL when out of memory. */
static ncache_ent *ncache_add(struct ncache *c, const char *key, size_t kl, const th_def *d,
                              const node *n)
{
	if ((c->n + 1) * 2 > c->hcap) {
		size_t hcap = c->hcap ? c->hcap * 2 : 1024;
		uint32_t *slot = calloc(hcap, sizeof *slot);
		if (!slot)
			return NULL;
		for (size_t i = 0; i < c->n; i++) {
			size_t j = key_hash(c->e[i].key, c->e[i].kl) & (hcap - 1);
			while (slot[j])
				j = (j + 1) & (hcap - 1);
			slot[j] = (uint32_t)i + 1;
		}
		free(c->slot);
		c->slot = slot;
		c->hcap = hcap;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 512;
		ncache_ent *ne = realloc(c->e, cap * sizeof *ne);
		if (!ne)
			return NULL;
		c->e = ne;
		c->cap = cap;
	}
	size_t j = 0;
	if (ncache_find(c, key, kl, &j))
		return NULL;
	ncache_ent *x = &c->e[c->n];
	x->v = malloc(2 * d->n_slots * sizeof *x->v);
	if (!x->v)
		return NULL;
	memcpy(x->key, key, kl);
	x->kl = (uint32_t)kl;
	x->dirty = 0;
	x->d = d;
	x->h = n->h;
	memcpy(x->v, n->own, d->n_slots * sizeof *x->v);
	memcpy(x->v + d->n_slots, n->total, d->n_slots * sizeof *x->v);
	c->slot[j] = (uint32_t)++c->n;
	return x;
}

static int node_read_db(th_store *s, MDB_txn *txn, const th_def *d, const char *key, size_t kl,
                        node *n);

/* Reads a node into n (allocated); zero when absent. */
static int node_read(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                     const char *period, const char *unit, node *n)
{
	char key[MAX_KEY];
	size_t kl = key3(key, appendix, period, unit);
	if (!s->nc)
		return node_read_db(s, txn, d, key, kl, n);
	size_t j;
	ncache_ent *x = ncache_find(s->nc, key, kl, &j);
	if (x && x->d != d)
		return TH_ESTORE;   /* one group, one version per (appendix, period) */
	if (x) {
		int rc = node_alloc(n, d);
		if (rc)
			return rc;
		n->h = x->h;
		memcpy(n->own, x->v, d->n_slots * sizeof *n->own);
		memcpy(n->total, x->v + d->n_slots, d->n_slots * sizeof *n->total);
		return TH_OK;
	}
	int rc = node_read_db(s, txn, d, key, kl, n);
	if (rc == TH_OK && !x && !ncache_add(s->nc, key, kl, d, n)) {
		node_release(n);
		return TH_ENOMEM;
	}
	return rc;
}

/* A node from its stored value v (NULL: absent, zero) into n (allocated). */
static int node_from_val(const th_def *d, const MDB_val *vp, node *n)
{
	int rc = node_alloc(n, d);
	if (rc || !vp)
		return rc;
	MDB_val v = *vp;
	node_header h;
	if (node_head(&v, &h)) {
		node_release(n);
		return TH_ESTORE;
	}
	if (h.n_slots != d->n_slots) {
		/* laid out for another definition version (the version in force
		 * changed): counts as empty, keeping its version number */
		n->h.version = h.version;
		n->h.commit = h.commit;
		return TH_OK;
	}
	if (node_vals(&v, &h, n->own)) {   /* own then total: one block */
		node_release(n);
		return TH_ESTORE;
	}
	n->h = h;
	n->h.enc = NODE_VARINT;
	return TH_OK;
}

static int node_read_db(th_store *s, MDB_txn *txn, const th_def *d, const char *key, size_t kl,
                        node *n)
{
	MDB_val k = {kl, (void *)key}, v;
	int rc = mdb_get(txn, s->rollups, &k, &v);
	if (rc && rc != MDB_NOTFOUND) {
		memset(n, 0, sizeof *n);
		return xlate(rc);
	}
	return node_from_val(d, rc ? NULL : &v, n);
}

static int node_write_db(th_store *s, MDB_txn *txn, const th_def *d, const char *key, size_t kl,
                         const node *n);

static int node_write(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                      const char *period, const char *unit, const node *n)
{
	char key[MAX_KEY];
	size_t kl = key3(key, appendix, period, unit);
	if (!s->nc)
		return node_write_db(s, txn, d, key, kl, n);
	size_t j;
	ncache_ent *x = ncache_find(s->nc, key, kl, &j);
	if (x && x->d != d)
		return TH_ESTORE;   /* one group, one version per (appendix, period) */
	if (!x && !(x = ncache_add(s->nc, key, kl, d, n)))
		return TH_ENOMEM;
	x->h = n->h;
	memcpy(x->v, n->own, d->n_slots * sizeof *x->v);
	memcpy(x->v + d->n_slots, n->total, d->n_slots * sizeof *x->v);
	x->dirty = 1;
	return TH_OK;
}

static int ncache_cmp(const void *a, const void *b)
{
	const ncache_ent *x = *(ncache_ent *const *)a, *y = *(ncache_ent *const *)b;
	size_t m = x->kl < y->kl ? x->kl : y->kl;
	int c = memcmp(x->key, y->key, m);
	return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

/* Writes the group's changed nodes, in key order (LMDB's own order for these
 * NUL-separated ASCII keys), into txn. */
static int ncache_flush(th_store *s, MDB_txn *txn)
{
	struct ncache *c = s->nc;
	size_t nd = 0;
	for (size_t i = 0; i < c->n; i++)
		nd += c->e[i].dirty;
	if (!nd)
		return TH_OK;
	ncache_ent **v = malloc(nd * sizeof *v);
	if (!v)
		return TH_ENOMEM;
	nd = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].dirty)
			v[nd++] = &c->e[i];
	qsort(v, nd, sizeof *v, ncache_cmp);
	int rc = TH_OK;
	for (size_t i = 0; i < nd && rc == TH_OK; i++) {
		ncache_ent *x = v[i];
		node n = {.h = x->h, .own = x->v, .total = x->v + x->d->n_slots};
		rc = node_write_db(s, txn, x->d, x->key, x->kl, &n);
	}
	free(v);
	return rc;
}

static int node_write_db(th_store *s, MDB_txn *txn, const th_def *d, const char *key, size_t kl,
                         const node *n)
{
	size_t need = sizeof(node_header) + 20 * (size_t)d->n_slots;
	if (need > s->enc_cap) {
		uint8_t *b = realloc(s->enc, need);
		if (!b)
			return TH_ENOMEM;
		s->enc = b;
		s->enc_cap = need;
	}
	/* one pass into a buffer, then LMDB copies the few hundred bytes */
	MDB_val k = {kl, (void *)key}, v = {node_encode(s->enc, &n->h, d->n_slots, n->own, n->total), s->enc};
	int rc = mdb_put(txn, s->rollups, &k, &v, 0);
	return rc == 0 ? TH_OK : rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
}

/* Sets the min/max slots of acc from own and the children's totals; the child
 * `path_child` (may be -1) uses path_total instead of its stored value. */
static int recompute_extrema(th_store *s, MDB_txn *txn, const th_def *d, const th_units *u,
                             size_t unit, const char *appendix, const char *period,
                             const int64_t *own, long path_child, const int64_t *path_total,
                             int64_t *acc)
{
	int64_t *tmp = malloc(d->n_slots * sizeof *tmp);
	if (!tmp)
		return TH_ENOMEM;
	th_rollup_zero(d, tmp);
	th_rollup_merge_extrema(d, tmp, own);
	const th_unit *x = th_units_at(u, unit);
	for (uint32_t i = 0; i < x->n_children; i++) {
		size_t c = x->children[i];
		if ((long)c == path_child) {
			th_rollup_merge_extrema(d, tmp, path_total);
			continue;
		}
		node cn;
		int rc = node_read(s, txn, d, appendix, period, th_units_at(u, c)->code, &cn);
		if (rc) {
			free(tmp);
			return rc;
		}
		th_rollup_merge_extrema(d, tmp, cn.total);
		node_release(&cn);
	}
	for (size_t c = 0; c < d->n_cols; c++)
		if (d->cols[c].rollup == TH_ROLL_MIN || d->cols[c].rollup == TH_ROLL_MAX) {
			acc[d->cols[c].slot] = tmp[d->cols[c].slot];
			acc[d->cols[c].slot + 1] = tmp[d->cols[c].slot + 1];
		}
	free(tmp);
	return TH_OK;
}

/* --- apply ------------------------------------------------------------------------------ */

static const char *str_or(const char *p) { return p ? p : ""; }

static int cmp_sub(const void *a, const void *b)
{
	const th_submission *x = *(th_submission *const *)a, *y = *(th_submission *const *)b;
	if (!x->report || !y->report)
		return !x->report - !y->report;
	int c = strcmp(str_or(x->report->unit), str_or(y->report->unit));
	if (!c)
		c = strcmp(str_or(x->report->appendix), str_or(y->report->appendix));
	if (!c)
		c = strcmp(str_or(x->report->period), str_or(y->report->period));
	if (!c)
		c = x->report->rev < y->report->rev ? -1 : x->report->rev > y->report->rev;
	if (!c)
		c = x < y ? -1 : x > y;
	return c;
}

static void result_set(th_ack_result *r, th_ack_status st, int code, uint64_t stored,
                       const char *msg)
{
	r->status = st;
	r->code = code;
	r->stored_rev = stored;
	free(r->message);
	r->message = msg ? strdup(msg) : NULL;
}

static void result_reset(th_submission *sub)
{
	th_ack_result *r = sub->result;
	/* the caller's warnings (from its own validation) are kept */
	char **w = r->warnings;
	size_t nw = r->n_warnings;
	r->warnings = NULL;
	r->n_warnings = 0;
	th_ack_result_free(r);
	r->warnings = w;
	r->n_warnings = nw;
	if (!sub->report)
		return;
	r->unit = strdup(str_or(sub->report->unit));
	r->appendix = strdup(str_or(sub->report->appendix));
	r->period = strdup(str_or(sub->report->period));
	r->rev = sub->report->rev;
}

/* The nodes a group changed, each once: a list in first-change order and an
 * open-addressing index over it (a group of 1,000 reports changes ~4,000 path
 * nodes; a linear search per note was most of the strcmp time of a commit). */
typedef struct {
	th_changed_node *v;
	size_t n, cap;
	uint32_t *slot;     /* index + 1 into v, 0 = empty; hcap entries */
	size_t hcap;
} changes;

static void copy_bounded(char *dst, size_t cap, const char *src)
{
	size_t n = strnlen(src, cap - 1);
	memcpy(dst, src, n);
	dst[n] = 0;
}

static uint64_t change_hash(const char *unit, const char *appendix, const char *period)
{
	uint64_t h = 1469598103934665603ull;   /* FNV-1a over the three strings */
	for (const char *p[3] = {unit, appendix, period}, **q = p; q < p + 3; q++) {
		for (const unsigned char *c = (const unsigned char *)*q; *c; c++)
			h = (h ^ *c) * 1099511628211ull;
		h = (h ^ 0x1f) * 1099511628211ull;
	}
	return h;
}

static int change_index_grow(changes *c)
{
	size_t hcap = c->hcap ? c->hcap * 2 : 128;
	uint32_t *slot = calloc(hcap, sizeof *slot);
	if (!slot)
		return -1;
	for (size_t i = 0; i < c->n; i++) {
		const th_changed_node *x = &c->v[i];
		size_t j = change_hash(x->unit, x->appendix, x->period) & (hcap - 1);
		while (slot[j])
			j = (j + 1) & (hcap - 1);
		slot[j] = (uint32_t)i + 1;
	}
	free(c->slot);
	c->slot = slot;
	c->hcap = hcap;
	return 0;
}

static void changes_free_index(changes *c)
{
	free(c->slot);
	c->slot = NULL;
	c->hcap = 0;
}

static void note_change(changes *c, const char *unit, const char *appendix, const char *period,
                        uint32_t level, uint64_t version)
{
	if ((c->n + 1) * 2 > c->hcap && change_index_grow(c))
		return;
	size_t j = change_hash(unit, appendix, period) & (c->hcap - 1);
	for (; c->slot[j]; j = (j + 1) & (c->hcap - 1)) {
		th_changed_node *x = &c->v[c->slot[j] - 1];
		if (!strcmp(x->unit, unit) && !strcmp(x->appendix, appendix) && !strcmp(x->period, period)) {
			x->node_version = version;
			return;
		}
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		th_changed_node *nv = realloc(c->v, cap * sizeof *nv);
		if (!nv)
			return;
		c->v = nv;
		c->cap = cap;
	}
	th_changed_node *x = &c->v[c->n];
	copy_bounded(x->unit, sizeof x->unit, unit);
	copy_bounded(x->appendix, sizeof x->appendix, appendix);
	copy_bounded(x->period, sizeof x->period, period);
	x->level = level;
	x->node_version = version;
	c->slot[j] = (uint32_t)++c->n;
}

/* Moves the latest record of report key k (rev) into history before a newer
 * revision replaces it.  The record is copied out first: a put may spill the
 * page it lives on. */
static int supersede(th_store *s, MDB_txn *txn, MDB_val *k, uint64_t rev)
{
	MDB_val v;
	int rc = mdb_get(txn, s->reports, k, &v);
	if (rc)
		return xlate(rc);
	void *copy = malloc(v.mv_size ? v.mv_size : 1);
	if (!copy)
		return TH_ENOMEM;
	memcpy(copy, v.mv_data, v.mv_size);
	uint8_t hk[MAX_KEY + 9];
	MDB_val hkv = {history_key(hk, k, rev), hk}, hv = {v.mv_size, copy};
	rc = mdb_put(txn, s->history, &hkv, &hv, 0);
	free(copy);
	return rc == 0 ? TH_OK : rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
}

/* Applies one submission inside txn.  Returns TH_OK (result set, maybe a
 * rejection), or TH_EMAPFULL / other store errors that abort the group. */
static int apply_one(th_store *s, MDB_txn *txn, th_submission *sub, uint64_t commit, int64_t now,
                     changes *ch)
{
	th_report *r = sub->report;
	th_ack_result *res = sub->result;
	if (!r || !r->unit || !r->appendix || !r->period || !*r->unit ||
	    strlen(r->unit) > TH_CODE_MAX || strlen(r->appendix) > TH_CODE_MAX ||
	    !th_period_valid(r->period) || (r->n_rows && !r->cells)) {
		result_set(res, TH_ACK_REJECTED, TH_EINVAL, 0, "malformed report (unit, appendix or period)");
		return TH_OK;
	}
	/* the key's stored rev, for every answer (0 when none) */
	uint64_t cur_rev = 0;
	{
		char ck[MAX_KEY];
		size_t ckl = key3(ck, r->unit, r->appendix, r->period);
		MDB_val k0 = {ckl, ck}, v0;
		int g = ckl ? mdb_get(txn, s->reports, &k0, &v0) : MDB_NOTFOUND;
		if (g == 0 && v0.mv_size >= sizeof(rec_header)) {
			rec_header h0;
			memcpy(&h0, v0.mv_data, sizeof h0);
			cur_rev = h0.rev;
		} else if (g && g != MDB_NOTFOUND) {
			return xlate(g);
		}
	}
	const th_def *d = def_in_force(s, r->appendix, r->period);
	if (!d) {
		char m[128];
		snprintf(m, sizeof m, "unknown appendix %s", r->appendix);
		result_set(res, TH_ACK_REJECTED, TH_EAPPENDIX, cur_rev, m);
		return TH_OK;
	}
	if (d->version != r->version) {
		char m[192];
		snprintf(m, sizeof m,
		         "%s version %u is not the one in force for %s (version %u): fetch the current "
		         "definitions and check the file again",
		         r->appendix, (unsigned)r->version, r->period, (unsigned)d->version);
		result_set(res, TH_ACK_RETRY_LATER, TH_EDEFCHANGED, cur_rev, m);
		return TH_OK;
	}
	if (r->n_cols != d->n_cols) {
		result_set(res, TH_ACK_REJECTED, TH_EINVAL, cur_rev, "report does not match its definition");
		return TH_OK;
	}
	if (sub->validated != d) {
		/* the store checks again what the caller did not: garbage never gets in */
		th_diag *vd = th_diag_new();
		int vrc = vd ? th_report_validate(r, d, vd) : TH_ENOMEM;
		if (vrc == TH_ENOMEM) {
			th_diag_destroy(&vd);
			return TH_ENOMEM;
		}
		if (vrc) {
			const th_diag_entry *e = NULL;
			size_t ei = 0;
			for (size_t i = 0; i < th_diag_count(vd) && !e; i++)
				if (th_diag_at(vd, i)->sev == TH_SEV_ERROR)
					e = th_diag_at(vd, ei = i);
			result_set(res, TH_ACK_REJECTED, e ? e->code : vrc, cur_rev,
			           e ? th_diag_text(vd, ei) : "report does not validate");
			if (e) {
				res->row = e->row;
				free(res->column);
				res->column = e->column ? strdup(e->column) : NULL;
			}
			th_diag_destroy(&vd);
			return TH_OK;
		}
		th_diag_destroy(&vd);
	}
	th_units *u = NULL;
	int rc = bound(s, txn, 1, r->period, &u);
	if (rc == TH_ENOTFOUND) {
		result_set(res, TH_ACK_RETRY_LATER, TH_ESTORE, cur_rev, "no hierarchy is loaded");
		return TH_OK;
	}
	if (rc)
		return rc;
	long ui = th_units_find(u, r->unit);
	if (ui < 0) {
		char m[256];
		snprintf(m, sizeof m, "unit %s is not in hierarchy %s, to which period %s is bound",
		         r->unit, th_units_version(u), r->period);
		result_set(res, TH_ACK_REJECTED, TH_EUNIT, cur_rev, m);
		return TH_OK;
	}
	/* completeness counts only the appendix's submitters: a unit that is not
	 * expected to file it is turned away (a withdrawal still applies, so an
	 * admin can remove what came in before this rule) */
	const th_unit *un = th_units_at(u, (size_t)ui);
	if (!r->tombstone && !th_def_expects(d, un->kind, un->code)) {
		char who[160], m[320];
		th_def_submitters_text(d, who, sizeof who);
		snprintf(m, sizeof m, "%s (%s) is not expected to file %s: it is filed by %s", un->code,
		         un->kind, d->id, who);
		result_set(res, TH_ACK_REJECTED, TH_ENOTEXPECTED, cur_rev, m);
		return TH_OK;
	}
	uint8_t hash[TH_HASH_LEN];
	uint8_t *canon = NULL;     /* owned: computed here */
	const uint8_t *cf;         /* the canonical form used */
	size_t clen = 0;
	if (sub->validated == d && sub->canon && sub->hash) {
		/* the caller made them with the version in force (off the committer thread) */
		cf = sub->canon;
		clen = sub->canon_len;
		memcpy(hash, sub->hash, TH_HASH_LEN);
	} else if (th_report_canonical_hash(r, d, &canon, &clen, hash) != 0) {
		result_set(res, TH_ACK_REJECTED, TH_EINVAL, cur_rev, "report cannot be encoded");
		return TH_OK;
	} else {
		cf = canon;
	}
	char key[MAX_KEY];
	size_t kl = key3(key, r->unit, r->appendix, r->period);
	if (!kl) {
		free(canon);
		result_set(res, TH_ACK_REJECTED, TH_ETOOBIG, cur_rev, "key too long");
		return TH_OK;
	}
	MDB_val k = {kl, key}, v;
	rec_header old;
	int have_old = 0;
	rc = mdb_get(txn, s->reports, &k, &v);
	if (rc == 0 && v.mv_size >= sizeof old) {
		memcpy(&old, v.mv_data, sizeof old);
		have_old = 1;
	} else if (rc && rc != MDB_NOTFOUND) {
		free(canon);
		return xlate(rc);
	}
	if (have_old) {
		if (r->rev == old.rev) {
			free(canon);
			if (!memcmp(hash, old.hash, TH_HASH_LEN))
				result_set(res, TH_ACK_DUPLICATE, 0, old.rev, NULL);
			else
				result_set(res, TH_ACK_REJECTED, TH_ECONFLICT, old.rev,
				           "the same revision was stored with other content; a new revision needs a higher rev");
			return TH_OK;
		}
		if (r->rev < old.rev) {
			free(canon);
			result_set(res, TH_ACK_STALE, TH_ESTALE, old.rev, "a newer revision is stored");
			return TH_OK;
		}
	}
	/* contributions */
	int64_t *cnew = calloc(d->n_slots, sizeof *cnew), *oldtot = NULL;
	node *path = NULL;
	size_t depth = th_units_at(u, (size_t)ui)->depth;
	int ret = TH_OK;
	if (!cnew) {
		ret = TH_ENOMEM;
		goto out;
	}
	if (th_rollup_contrib(d, r, cnew) != 0) {
		result_set(res, TH_ACK_REJECTED, TH_EOVERFLOW, have_old ? old.rev : 0,
		           "a sum of this report overflows 64 bits");
		goto out;
	}
	/* the old revision's contribution is the unit node's own vector (the same
	 * numbers th_rollup_contrib gave when it was applied): no need to decode it */
	/* completeness deltas */
	int was = have_old && !old.tombstone, is = !r->tombstone;
	int64_t first = have_old ? old.first_time : now;
	/* decided once, at the key's first accepted revision, and kept in the record */
	int ot = have_old ? !old.late : on_time(s, txn, r->appendix, r->period, r->unit, now);
	int d_rep = is - was;
	int d_corr = (have_old && is) ? 1 : 0;
	/* compute every node on the path in memory first */
	path = calloc(depth, sizeof *path);
	if (!path) {
		ret = TH_ENOMEM;
		goto out;
	}
	long cur = ui, child = -1;
	/* each level replaces the child's total as it was before this report (kept
	 * from the level below: nothing is written until the whole path is done) */
	oldtot = malloc(2 * d->n_slots * sizeof *oldtot);
	if (!oldtot) {
		ret = TH_ENOMEM;
		goto out;
	}
	int64_t *was_child = oldtot, *was_this = oldtot + d->n_slots;
	for (size_t i = 0; i < depth && cur >= 0; i++) {
		const th_unit *x = th_units_at(u, (size_t)cur);
		if ((rc = node_read(s, txn, d, r->appendix, r->period, x->code, &path[i]))) {
			ret = rc;
			goto out;
		}
		node *n = &path[i];
		int need = 0;
		memcpy(was_this, n->total, d->n_slots * sizeof *was_this);
		if (i == 0) {
			if (th_rollup_replace(d, n->total, n->own, cnew, &need)) {
				result_set(res, TH_ACK_REJECTED, TH_EOVERFLOW, have_old ? old.rev : 0,
				           "a rollup sum would overflow 64 bits");
				goto out;
			}
			memcpy(n->own, cnew, d->n_slots * sizeof *cnew);
		} else {
			int bad = th_rollup_replace(d, n->total, was_child, path[i - 1].total, &need);
			if (bad) {
				result_set(res, TH_ACK_REJECTED, TH_EOVERFLOW, have_old ? old.rev : 0,
				           "a rollup sum would overflow 64 bits");
				goto out;
			}
		}
		if (need) {
			if ((rc = recompute_extrema(s, txn, d, u, (size_t)cur, r->appendix, r->period, n->own,
			                            child, i ? path[i - 1].total : NULL, n->total))) {
				ret = rc;
				goto out;
			}
		}
		n->h.reported = (uint32_t)((int64_t)n->h.reported + d_rep);
		if (d_rep) {
			if (ot)
				n->h.on_time = (uint32_t)((int64_t)n->h.on_time + d_rep);
			else
				n->h.late = (uint32_t)((int64_t)n->h.late + d_rep);
		}
		n->h.corrections += (uint32_t)d_corr;
		n->h.version++;
		n->h.commit = commit;
		n->h.n_slots = (uint32_t)d->n_slots;
		int64_t *t = was_child;   /* this level's old total is the next level's child's */
		was_child = was_this;
		was_this = t;
		child = cur;
		cur = x->parent;
	}
	/* write: nodes, report, history */
	cur = ui;
	for (size_t i = 0; i < depth && cur >= 0; i++) {
		const th_unit *x = th_units_at(u, (size_t)cur);
		if ((rc = node_write(s, txn, d, r->appendix, r->period, x->code, &path[i]))) {
			ret = rc;
			goto out;
		}
		note_change(ch, x->code, r->appendix, r->period, x->depth, path[i].h.version);
		cur = x->parent;
	}
	rec_header h;
	memset(&h, 0, sizeof h);
	h.fmt = 1;
	h.tombstone = r->tombstone;
	h.version = r->version;
	h.as_of = r->as_of;
	h.late = (uint8_t)!ot;
	h.corrections = have_old ? old.corrections + (uint32_t)d_corr : 0;
	h.rev = r->rev;
	h.commit = commit;
	h.commit_time = now;
	h.first_time = first;
	memcpy(h.hash, hash, TH_HASH_LEN);
	snprintf(h.sender, sizeof h.sender, "%s", sub->sender ? sub->sender : "");
	/* the revision it replaces becomes history (the latest lives only in reports) */
	if (have_old && (rc = supersede(s, txn, &k, old.rev))) {
		ret = rc;
		goto out;
	}
	MDB_val rv;
	rv.mv_size = sizeof h + clen;
	if ((rc = mdb_put(txn, s->reports, &k, &rv, MDB_RESERVE))) {
		ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
		goto out;
	}
	memcpy(rv.mv_data, &h, sizeof h);
	memcpy((char *)rv.mv_data + sizeof h, cf, clen);
	/* the period keeps this version after a newer one is loaded */
	if ((rc = bind_version(s, txn, r->appendix, r->period, d->version))) {
		ret = rc;
		goto out;
	}
	result_set(res, TH_ACK_ACCEPTED, 0, r->rev, NULL);
out:
	for (size_t i = 0; path && i < depth; i++)
		node_release(&path[i]);
	free(path);
	free(cnew);
	free(oldtot);
	free(canon);
	return ret;
}

int th_store_apply(th_store *s, th_submission *subs, size_t n, uint64_t *commit_id,
                   int64_t *commit_time, th_changed_node **changed, size_t *n_changed)
{
	if (s->readonly || (n && !subs))
		return TH_EINVAL;
	if (!s->env)
		return TH_ESTORE;
	for (size_t i = 0; i < n; i++)
		if (!subs[i].result)
			return TH_EINVAL;
	if (n == 0) {
		*commit_id = s->last_commit;
		*commit_time = now_us();
		if (changed) {
			*changed = NULL;
			*n_changed = 0;
		}
		return TH_OK;
	}
	th_submission **order = malloc((n ? n : 1) * sizeof *order);
	if (!order)
		return TH_ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = &subs[i];
	qsort(order, n, sizeof *order, cmp_sub);
	if (!s->ncmem && !(s->ncmem = calloc(1, sizeof *s->ncmem))) {
		free(order);
		return TH_ENOMEM;
	}
	int ret, reopened = 0;
	for (;;) {
		changes ch = {0};
		ncache_clear(s->ncmem);
		s->nc = s->ncmem;
		uint64_t commit = s->last_commit + 1;
		int64_t now = now_us();
		MDB_txn *txn;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc == MDB_PANIC && !reopened) {
			reopened = 1;
			if ((ret = reopen(s)) == TH_OK)
				continue;
			break;
		}
		if (rc) {
			ret = xlate(rc);
			break;
		}
		ret = TH_OK;
		for (size_t i = 0; i < n && ret == TH_OK; i++) {
			result_reset(order[i]);
			ret = apply_one(s, txn, order[i], commit, now, &ch);
		}
		if (ret == TH_OK)
			ret = ncache_flush(s, txn);
		s->nc = NULL;
		/* every result names the key's rev after the whole group */
		for (size_t i = 0; i < n && ret == TH_OK; i++) {
			const th_report *r = order[i]->report;
			char key[MAX_KEY];
			size_t kl = r ? key3(key, r->unit, r->appendix, r->period) : 0;
			MDB_val k = {kl, key}, v;
			if (kl && mdb_get(txn, s->reports, &k, &v) == 0 && v.mv_size >= sizeof(rec_header)) {
				rec_header h;
				memcpy(&h, v.mv_data, sizeof h);
				order[i]->result->stored_rev = h.rev;
			}
		}
		if (ret == TH_OK) {
			MDB_val k = {6, "commit"}, v = {8, &commit};
			rc = mdb_put(txn, s->meta, &k, &v, 0);
			if (rc == 0)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
			if (rc == 0) {
				changes_free_index(&ch);
				s->last_commit = commit;
				*commit_id = commit;
				*commit_time = now;
				if (changed) {
					*changed = ch.v;
					*n_changed = ch.n;
				} else {
					free(ch.v);
				}
				break;
			}
			/* a short write at commit (disk full, a file-size limit) is EIO in
			 * LMDB: the store cannot take the group now; retry later */
			ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : rc == EIO ? TH_ENOSPC : xlate(rc);
		} else {
			mdb_txn_abort(txn);
		}
		free(ch.v);
		changes_free_index(&ch);
		if (ret == TH_ESTORE && !reopened) {
			/* MDB_PANIC: the environment must be reopened; replay the group once */
			MDB_txn *probe;
			int pr = mdb_txn_begin(s->env, NULL, 0, &probe);
			if (pr == 0) {
				mdb_txn_abort(probe);
			} else if (pr == MDB_PANIC) {
				reopened = 1;
				if ((ret = reopen(s)) == TH_OK)
					continue;
				break;
			}
		}
		if (ret != TH_EMAPFULL)
			break;
		/* abort, grow, replay the whole group */
		if ((ret = grow(s)) != TH_OK)
			break;
	}
	s->nc = NULL;
	ncache_clear(s->ncmem);
	if (ret != TH_OK)
		for (size_t i = 0; i < n; i++) {
			result_reset(&subs[i]);
			result_set(subs[i].result, TH_ACK_RETRY_LATER, ret == TH_ENOSPC ? TH_ENOSPC : ret, 0,
			           ret == TH_ENOSPC ? "the collector's store is full" : "store error");
		}
	free(order);
	return ret;
}

/* --- reads --------------------------------------------------------------------------- */

void th_node_free(th_node *n)
{
	free(n->own);
	free(n->total);
	n->own = n->total = NULL;
}

/* expected[i] = units in i's subtree expected to submit d. malloc'd. */
static uint32_t *expected_counts(const th_units *u, const th_def *d)
{
	size_t n = th_units_count(u);
	uint32_t *e = calloc(n ? n : 1, sizeof *e);
	size_t *order = malloc((n ? n : 1) * sizeof *order);
	if (!e || !order) {
		free(e);
		free(order);
		return NULL;
	}
	/* deepest first */
	size_t k = 0;
	for (uint32_t depth = th_units_max_depth(u); depth >= 1; depth--)
		for (size_t i = 0; i < n; i++)
			if (th_units_at(u, i)->depth == depth)
				order[k++] = i;
	for (size_t j = 0; j < k; j++) {
		const th_unit *x = th_units_at(u, order[j]);
		e[order[j]] += (uint32_t)th_def_expects(d, x->kind, x->code);
		if (x->parent >= 0)
			e[x->parent] += e[order[j]];
	}
	free(order);
	return e;
}

/* expected_counts, cached per (hierarchy, definition); owned by the store. */
static const uint32_t *expected_cached(th_store *s, const th_units *u, const th_def *d)
{
	for (size_t i = 0; i < EXP_CACHE; i++)
		if (s->exp[i].e && s->exp[i].u == u && s->exp[i].d == d)
			return s->exp[i].e;
	uint32_t *e = expected_counts(u, d);
	if (!e)
		return NULL;
	size_t slot = s->exp_next++ % EXP_CACHE;
	free(s->exp[slot].e);
	s->exp[slot].u = u;
	s->exp[slot].d = d;
	s->exp[slot].e = e;
	return e;
}

static void expected_clear(th_store *s)
{
	for (size_t i = 0; i < EXP_CACHE; i++) {
		free(s->exp[i].e);
		s->exp[i].e = NULL;
	}
}

static int fill_from(const th_def *d, const th_unit *x, uint32_t expected, node n, th_node *out);

static int fill_node(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                     const char *period, const th_unit *x, uint32_t expected, th_node *out)
{
	node n;
	int rc = node_read(s, txn, d, appendix, period, x->code, &n);
	if (rc)
		return rc;
	return fill_from(d, x, expected, n, out);
}

/* out from a node read (n is handed over). */
static int fill_from(const th_def *d, const th_unit *x, uint32_t expected, node n, th_node *out)
{
	memset(out, 0, sizeof *out);
	/* th_node's own and total are separate blocks (th_node_free) */
	if (!(out->total = malloc(d->n_slots * sizeof *out->total))) {
		node_release(&n);
		return TH_ENOMEM;
	}
	memcpy(out->total, n.total, d->n_slots * sizeof *out->total);
	snprintf(out->unit, sizeof out->unit, "%s", x->code);
	out->level = x->depth;
	out->own = n.own;
	out->expected = expected;
	out->reported = n.h.reported;
	out->on_time = n.h.on_time;
	out->late = n.h.late;
	out->corrections = n.h.corrections;
	out->version = n.h.version;
	out->commit = n.h.commit;
	return TH_OK;
}


int th_store_get_node(th_store *s, const char *appendix, const char *period, const char *unit,
                      th_node *out)
{
	if (!unit || !out)
		return TH_EINVAL;
	const th_def *d = def_in_force(s, appendix, period);
	if (!d)
		return TH_EAPPENDIX;
	if (!period || !th_period_valid(period))
		return TH_EPERIOD;
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	th_units *u = NULL;
	if ((rc = bound(s, txn, 0, period, &u)) == 0) {
		long i = th_units_find(u, unit);
		if (i < 0) {
			rc = TH_EUNIT;
		} else {
			const uint32_t *e = expected_cached(s, u, d);
			rc = e ? fill_node(s, txn, d, appendix, period, th_units_at(u, (size_t)i), e[i], out)
			       : TH_ENOMEM;
		}
	}
	mdb_txn_abort(txn);
	return rc;
}

int th_store_level(th_store *s, const char *appendix, const char *period, uint32_t level,
                   const char *parent, th_node_cb cb, void *ctx)
{
	const th_def *d = def_in_force(s, appendix, period);
	if (!d)
		return TH_EAPPENDIX;
	if (!period || !th_period_valid(period))
		return TH_EPERIOD;
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	th_units *u = NULL;
	const uint32_t *e = NULL;
	MDB_val *val = NULL;
	if ((rc = bound(s, txn, 0, period, &u)))
		goto out;
	if (!(e = expected_cached(s, u, d))) {
		rc = TH_ENOMEM;
		goto out;
	}
	long pi = -1;
	if (parent && (pi = th_units_find(u, parent)) < 0) {
		rc = TH_EUNIT;
		goto out;
	}
	/* one cursor pass over the appendix and period's nodes (a contiguous key
	 * range) instead of a B-tree lookup per unit; values stay valid until the
	 * read transaction ends */
	size_t nu = th_units_count(u);
	val = calloc(nu ? nu : 1, sizeof *val);
	MDB_cursor *c = NULL;
	char key[MAX_KEY];
	size_t pl = key3(key, appendix, period, "");
	if (!val || !pl) {
		rc = val ? TH_ETOOBIG : TH_ENOMEM;
		goto out;
	}
	if ((rc = mdb_cursor_open(txn, s->rollups, &c))) {
		rc = xlate(rc);
		goto out;
	}
	MDB_val k = {pl, key}, v;
	for (int g = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); g == 0 && k.mv_size >= pl &&
	     !memcmp(k.mv_data, key, pl); g = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char code[TH_CODE_MAX + 1];
		size_t cl = k.mv_size - pl;
		if (cl > TH_CODE_MAX)
			continue;
		memcpy(code, (const char *)k.mv_data + pl, cl);
		code[cl] = 0;
		long i = th_units_find(u, code);
		if (i >= 0)
			val[i] = v;
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < nu && rc == 0; i++) {
		const th_unit *x = th_units_at(u, i);
		if (parent ? x->parent != pi : x->depth != level)
			continue;
		node n;
		th_node tn;
		if ((rc = node_from_val(d, val[i].mv_data ? &val[i] : NULL, &n)) ||
		    (rc = fill_from(d, x, e[i], n, &tn)))
			break;
		rc = cb(ctx, x, &tn);
		th_node_free(&tn);
	}
out:
	free(val);
	mdb_txn_abort(txn);
	return rc;
}

static int live_report(th_store *s, MDB_txn *txn, const char *unit, const char *appendix,
                       const char *period)
{
	char key[MAX_KEY];
	size_t kl = key3(key, unit, appendix, period);
	MDB_val k = {kl, key}, v;
	if (!kl || mdb_get(txn, s->reports, &k, &v) || v.mv_size < sizeof(rec_header))
		return 0;
	rec_header h;
	memcpy(&h, v.mv_data, sizeof h);
	return !h.tombstone;
}

int th_store_missing(th_store *s, const char *appendix, const char *period, const char *unit,
                     th_node_cb cb, void *ctx)
{
	const th_def *d = def_in_force(s, appendix, period);
	if (!d)
		return TH_EAPPENDIX;
	if (!period || !th_period_valid(period))
		return TH_EPERIOD;
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	th_units *u = NULL;
	if ((rc = bound(s, txn, 0, period, &u)) == 0) {
		long top = unit ? th_units_find(u, unit) : (long)th_units_root(u);
		if (top < 0)
			rc = TH_EUNIT;
		for (size_t i = 0; top >= 0 && i < th_units_count(u) && rc == 0; i++) {
			const th_unit *x = th_units_at(u, i);
			if (!th_def_expects(d, x->kind, x->code) || !th_units_in_subtree(u, (size_t)top, i) ||
			    live_report(s, txn, x->code, appendix, period))
				continue;
			th_node n;
			memset(&n, 0, sizeof n);
			snprintf(n.unit, sizeof n.unit, "%s", x->code);
			n.level = x->depth;
			rc = cb(ctx, x, &n);
		}
	}
	mdb_txn_abort(txn);
	return rc;
}

static void info_from(const rec_header *h, th_revision_info *info)
{
	memset(info, 0, sizeof *info);
	info->rev = h->rev;
	info->commit_time = h->commit_time;
	info->commit = h->commit;
	snprintf(info->sender, sizeof info->sender, "%s", h->sender);
	memcpy(info->hash, h->hash, TH_HASH_LEN);
	info->tombstone = h->tombstone;
}

static int decode_value(th_store *s, const MDB_val *v, const char *unit, const char *appendix,
                        const char *period, th_report **out, rec_header *h)
{
	if (v->mv_size < sizeof *h)
		return TH_ESTORE;
	memcpy(h, v->mv_data, sizeof *h);
	const th_def *d = s->defs ? th_defset_get(s->defs, appendix, h->version) : NULL;
	if (!d)
		return TH_EAPPENDIX;
	return decode_canonical((const uint8_t *)v->mv_data + sizeof *h, v->mv_size - sizeof *h, d, unit,
	                        period, h->rev, out);
}

int th_store_get_report(th_store *s, const char *unit, const char *appendix, const char *period,
                        th_report **out, th_revision_info *info)
{
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	char key[MAX_KEY];
	size_t kl = key3(key, unit, appendix, period);
	MDB_val k = {kl, key}, v;
	rc = kl ? mdb_get(txn, s->reports, &k, &v) : MDB_NOTFOUND;
	if (rc) {
		mdb_txn_abort(txn);
		return xlate(rc);
	}
	rec_header h;
	th_report *r = NULL;
	rc = decode_value(s, &v, unit, appendix, period, &r, &h);
	mdb_txn_abort(txn);
	if (rc)
		return rc;
	if (info)
		info_from(&h, info);
	*out = r;
	return TH_OK;
}

int th_store_history(th_store *s, const char *unit, const char *appendix, const char *period,
                     th_revision_cb cb, void *ctx)
{
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	char key[MAX_KEY + 1];
	size_t kl = key3(key, unit, appendix, period);
	if (!kl) {
		mdb_txn_abort(txn);
		return TH_ETOOBIG;
	}
	key[kl++] = 0;
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, s->history, &c))) {
		mdb_txn_abort(txn);
		return xlate(rc);
	}
	MDB_val k = {kl, key}, v;
	int found = 0;
	uint64_t last = 0;
	/* the superseded revisions in rev order, then the latest (from reports) */
	rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size == kl + 8 && memcmp(k.mv_data, key, kl) == 0) {
		rec_header h;
		th_report *r = NULL;
		if (decode_value(s, &v, unit, appendix, period, &r, &h) == 0) {
			th_revision_info info;
			info_from(&h, &info);
			int cr = cb(ctx, &info, r);
			th_report_destroy(&r);
			found++;
			last = h.rev;
			if (cr) {
				rc = cr;
				break;
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	if (rc == MDB_NOTFOUND || rc == 0) {
		MDB_val rk = {kl - 1, key}, rv;
		rc = mdb_get(txn, s->reports, &rk, &rv);
		rec_header h;
		th_report *r = NULL;
		/* a format-1 store not yet upgraded also keeps the latest in history */
		if (rc == 0 && decode_value(s, &rv, unit, appendix, period, &r, &h) == 0 &&
		    (!found || h.rev > last)) {
			th_revision_info info;
			info_from(&h, &info);
			rc = cb(ctx, &info, r);
			found++;
		}
		th_report_destroy(&r);
	}
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc)
		return rc < 0 ? rc : xlate(rc);
	return found ? TH_OK : TH_ENOTFOUND;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int th_store_revs_in_scope(th_store *s, const char *unit, th_rev_cb cb, void *ctx)
{
	if (!unit || !cb)
		return TH_EINVAL;
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	int ret = TH_OK;
	/* the root of every version (an admin or the insecure demo peer): every
	 * stored report is in scope; one sequential scan */
	int all = s->nh > 0;
	for (size_t h = 0; h < s->nh && all; h++)
		all = th_units_find(s->h[h], unit) == (long)th_units_root(s->h[h]);
	if (all) {
		MDB_cursor *ac;
		if ((rc = mdb_cursor_open(txn, s->reports, &ac))) {
			mdb_txn_abort(txn);
			return xlate(rc);
		}
		MDB_val k, v;
		for (rc = mdb_cursor_get(ac, &k, &v, MDB_FIRST); rc == 0 && ret == TH_OK;
		     rc = mdb_cursor_get(ac, &k, &v, MDB_NEXT)) {
			char key[MAX_KEY + 1];
			const char *ru, *ra, *rp;
			if (split3(&k, key, &ru, &ra, &rp) || v.mv_size < sizeof(rec_header))
				continue;
			rec_header h;
			memcpy(&h, v.mv_data, sizeof h);
			ret = cb(ctx, ru, ra, rp, h.rev);
		}
		if (rc && rc != MDB_NOTFOUND && ret == TH_OK)
			ret = xlate(rc);
		mdb_cursor_close(ac);
		mdb_txn_abort(txn);
		return ret;
	}
	/* candidate units: the subtree of unit in any known hierarchy version; each
	 * is a prefix scan of `reports` (keys start with the unit) */
	const char **codes = NULL;
	size_t nc = 0, cap = 0;
	for (size_t h = 0; h < s->nh && ret == TH_OK; h++) {
		long top = th_units_find(s->h[h], unit);
		for (size_t i = 0; top >= 0 && i < th_units_count(s->h[h]); i++) {
			if (!th_units_in_subtree(s->h[h], (size_t)top, i))
				continue;
			if (nc == cap) {
				cap = cap ? cap * 2 : 64;
				const char **n = realloc(codes, cap * sizeof *n);
				if (!n) {
					ret = TH_ENOMEM;
					break;
				}
				codes = n;
			}
			codes[nc++] = th_units_at(s->h[h], i)->code;
		}
	}
	if (nc)
		qsort(codes, nc, sizeof *codes, cmp_str);
	MDB_cursor *c = NULL;
	if (ret == TH_OK && (rc = mdb_cursor_open(txn, s->reports, &c)))
		ret = xlate(rc);
	for (size_t i = 0; i < nc && ret == TH_OK; i++) {
		if (i && !strcmp(codes[i], codes[i - 1]))
			continue;
		size_t pl = strlen(codes[i]) + 1;   /* "code\0" */
		MDB_val k = {pl, (void *)codes[i]}, v;
		for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
		     rc == 0 && k.mv_size > pl && !memcmp(k.mv_data, codes[i], pl) && ret == TH_OK;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			char key[MAX_KEY + 1];
			const char *ru, *ra, *rp;
			if (split3(&k, key, &ru, &ra, &rp) || v.mv_size < sizeof(rec_header))
				continue;
			th_units *u = NULL;
			if (bound(s, txn, 0, rp, &u) != 0)
				continue;
			long top = th_units_find(u, unit), me = th_units_find(u, ru);
			if (top < 0 || me < 0 || !th_units_in_subtree(u, (size_t)top, (size_t)me))
				continue;
			rec_header h;
			memcpy(&h, v.mv_data, sizeof h);
			ret = cb(ctx, ru, ra, rp, h.rev);
		}
		if (rc && rc != MDB_NOTFOUND && ret == TH_OK)
			ret = xlate(rc);
	}
	if (c)
		mdb_cursor_close(c);
	free(codes);
	mdb_txn_abort(txn);
	return ret;
}

/* --- recomputation, rebuild, verify ------------------------------------------------------- */

typedef struct {
	char appendix[TH_CODE_MAX + 1], period[TH_PERIOD_MAX + 1];
} pair;

/* For every (appendix, period) with reports: computes own, total and counts of
 * every unit from the latest revisions, and calls emit for units with state. */
typedef int (*emit_fn)(void *ctx, MDB_txn *txn, const th_def *d, const char *appendix,
                       const char *period, const th_unit *x, const node *computed);

static int recompute_all(th_store *s, MDB_txn *txn, emit_fn emit, void *ctx, th_diag *diag)
{
	pair *pairs = NULL;
	size_t np = 0;
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->reports, &c);
	if (rc)
		return xlate(rc);
	MDB_val k, v;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char key[MAX_KEY + 1];
		const char *ru, *ra, *rp;
		if (split3(&k, key, &ru, &ra, &rp)) {
			th_diag_add(diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL, "a malformed report key");
			continue;
		}
		int seen = 0;
		for (size_t i = 0; i < np && !seen; i++)
			seen = !strcmp(pairs[i].appendix, ra) && !strcmp(pairs[i].period, rp);
		if (!seen) {
			pair *npairs = realloc(pairs, (np + 1) * sizeof *npairs);
			if (!npairs) {
				free(pairs);
				mdb_cursor_close(c);
				return TH_ENOMEM;
			}
			pairs = npairs;
			snprintf(pairs[np].appendix, sizeof pairs[np].appendix, "%.64s", ra);
			snprintf(pairs[np].period, sizeof pairs[np].period, "%.16s", rp);
			np++;
		}
	}
	int ret = TH_OK;
	for (size_t p = 0; p < np && ret == TH_OK; p++) {
		const th_def *d = def_in_force(s, pairs[p].appendix, pairs[p].period);
		th_units *u = NULL;
		if (!d || bound(s, txn, 0, pairs[p].period, &u) != 0) {
			th_diag_add(diag, TH_SEV_ERROR, TH_EAPPENDIX, NULL, 0, 0, NULL,
			            "%s %s: no definition or hierarchy to recompute with", pairs[p].appendix,
			            pairs[p].period);
			ret = TH_ESTORE;
			break;
		}
		size_t nu = th_units_count(u);
		node *nodes = calloc(nu, sizeof *nodes);
		char *has = calloc(nu, 1);
		if (!nodes || !has) {
			free(nodes);
			free(has);
			ret = TH_ENOMEM;
			break;
		}
		for (size_t i = 0; i < nu && ret == TH_OK; i++)
			ret = node_alloc(&nodes[i], d);
		for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && ret == TH_OK;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			char key[MAX_KEY + 1];
			const char *ru, *ra, *rp;
			if (split3(&k, key, &ru, &ra, &rp))
				continue;
			if (strcmp(ra, pairs[p].appendix) || strcmp(rp, pairs[p].period))
				continue;
			long ui = th_units_find(u, ru);
			rec_header h;
			th_report *r = NULL;
			int drc = decode_value(s, &v, ru, ra, rp, &r, &h);
			if (ui < 0 || drc) {
				th_diag_add(diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
				            "report %s %s %s: %s", ru, ra, rp,
				            ui < 0 ? "unit not in the bound hierarchy" : "cannot be decoded");
				th_report_destroy(&r);
				continue;
			}
			const th_def *rd = th_defset_get(s->defs, ra, h.version);
			uint8_t hh[TH_HASH_LEN];
			if (diag && rd && (th_report_hash(r, rd, hh) || memcmp(hh, h.hash, TH_HASH_LEN)))
				th_diag_add(diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
				            "report %s %s %s rev %llu: stored content does not match its hash",
				            ru, ra, rp, (unsigned long long)h.rev);
			if (diag && rd) {
				th_diag *vd = th_diag_new();
				if (th_report_validate(r, rd, vd) != 0)
					th_diag_add(diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
					            "report %s %s %s rev %llu no longer validates: %s", ru, ra, rp,
					            (unsigned long long)h.rev, th_diag_count(vd) ? th_diag_text(vd, 0) : "");
				th_diag_destroy(&vd);
			}
			node *n = &nodes[ui];
			has[ui] = 1;
			if (!h.tombstone && rd == d)
				th_rollup_contrib(d, r, n->own);
			if (!h.tombstone) {
				n->h.reported = 1;
				if (!h.late)
					n->h.on_time = 1;
				else
					n->h.late = 1;
			}
			n->h.corrections = h.corrections;
			th_report_destroy(&r);
		}
		/* totals: deepest first */
		for (size_t i = 0; i < nu; i++)
			memcpy(nodes[i].total, nodes[i].own, d->n_slots * sizeof(int64_t));
		for (uint32_t depth = th_units_max_depth(u); depth >= 2 && ret == TH_OK; depth--)
			for (size_t i = 0; i < nu; i++) {
				const th_unit *x = th_units_at(u, i);
				if (x->depth != depth || x->parent < 0)
					continue;
				node *pn = &nodes[x->parent];
				if (th_rollup_add(d, pn->total, nodes[i].total))
					ret = TH_EOVERFLOW;
				pn->h.reported += nodes[i].h.reported;
				pn->h.on_time += nodes[i].h.on_time;
				pn->h.late += nodes[i].h.late;
				pn->h.corrections += nodes[i].h.corrections;
				if (has[i])
					has[x->parent] = 1;
			}
		for (size_t i = 0; i < nu && ret == TH_OK; i++)
			if (has[i])
				ret = emit(ctx, txn, d, pairs[p].appendix, pairs[p].period, th_units_at(u, i), &nodes[i]);
		for (size_t i = 0; i < nu; i++)
			node_release(&nodes[i]);
		free(nodes);
		free(has);
	}
	mdb_cursor_close(c);
	free(pairs);
	return ret;
}

typedef struct {
	th_store *s;
	uint64_t commit;
} rebuild_ctx;

static int rebuild_emit(void *ctx, MDB_txn *txn, const th_def *d, const char *appendix,
                        const char *period, const th_unit *x, const node *computed)
{
	rebuild_ctx *c = ctx;
	node n = *computed;
	node old;
	/* keep version numbers increasing for subscribers */
	if (node_read(c->s, txn, d, appendix, period, x->code, &old) == 0) {
		n.h.version = old.h.version + 1;
		node_release(&old);
	}
	n.h.commit = c->commit;
	n.h.n_slots = (uint32_t)d->n_slots;
	return node_write(c->s, txn, d, appendix, period, x->code, &n);
}

/* Clears every stored node (keeping, and bumping, its version) so that nodes no
 * report explains any more end up zero. */
static int zero_nodes(th_store *s, MDB_txn *txn, uint64_t commit)
{
	/* collect first, write after the cursor is closed */
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->rollups, &c);
	if (rc)
		return xlate(rc);
	MDB_val k, v;
	struct zn { char key[MAX_KEY]; size_t kl; node_header h; } *all = NULL;
	size_t n = 0, cap = 0;
	int ret = TH_OK;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		node_header h;
		if (node_head(&v, &h) || k.mv_size > MAX_KEY)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			struct zn *na = realloc(all, cap * sizeof *na);
			if (!na) {
				ret = TH_ENOMEM;
				break;
			}
			all = na;
		}
		memcpy(all[n].key, k.mv_data, k.mv_size);
		all[n].kl = k.mv_size;
		all[n].h = h;
		n++;
	}
	mdb_cursor_close(c);
	for (size_t i = 0; i < n && ret == TH_OK; i++) {
		node_header h = all[i].h;
		h.version++;
		h.commit = commit;
		h.reported = h.on_time = h.late = h.corrections = 0;
		h.enc = NODE_SAME;   /* own == total == 0: one byte each */
		MDB_val kk = {all[i].kl, all[i].key}, nv = {sizeof h + (size_t)h.n_slots, NULL};
		if ((rc = mdb_put(txn, s->rollups, &kk, &nv, MDB_RESERVE))) {
			ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
			break;
		}
		memset(nv.mv_data, 0, nv.mv_size);
		memcpy(nv.mv_data, &h, sizeof h);
	}
	free(all);
	return ret;
}

int th_store_rebuild(th_store *s)
{
	if (s->readonly)
		return TH_EINVAL;
	if (!s->env)
		return TH_ESTORE;
	for (;;) {
		MDB_txn *txn;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc)
			return xlate(rc);
		/* node versions survive: read them before dropping (copy into a scratch db is
		 * not needed: rebuild_emit reads the old node before overwriting) */
		rebuild_ctx c = {s, s->last_commit};
		rc = zero_nodes(s, txn, s->last_commit);
		if (rc == TH_OK)
			rc = recompute_all(s, txn, rebuild_emit, &c, NULL);
		if (rc == TH_OK) {
			rc = mdb_txn_commit(txn);
			if (rc == 0)
				return TH_OK;
			rc = rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
		} else {
			mdb_txn_abort(txn);
		}
		if (rc != TH_EMAPFULL || grow(s) != TH_OK)
			return rc;
	}
}

typedef struct {
	th_store *s;
	th_diag *diag;
	size_t problems, nodes;
	char **keys;           /* rollup keys the recomputation produced, NUL-separated parts */
	size_t *klen, nkeys, cap;
} verify_ctx;

typedef struct {
	const char *p;
	size_t n;
} bkey;

static int cmp_bkey(const void *a, const void *b)
{
	const bkey *x = a, *y = b;
	int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
	return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int verify_emit(void *ctx, MDB_txn *txn, const th_def *d, const char *appendix,
                       const char *period, const th_unit *x, const node *computed)
{
	verify_ctx *c = ctx;
	node stored;
	if (c->nkeys == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 64;
		char **nk = realloc(c->keys, cap * sizeof *nk);
		if (!nk)
			return TH_ENOMEM;
		c->keys = nk;
		size_t *nl = realloc(c->klen, cap * sizeof *nl);
		if (!nl)
			return TH_ENOMEM;
		c->klen = nl;
		c->cap = cap;
	}
	char key[MAX_KEY];
	size_t kl = key3(key, appendix, period, x->code);
	if (!kl || !(c->keys[c->nkeys] = malloc(kl)))
		return TH_ENOMEM;
	memcpy(c->keys[c->nkeys], key, kl);
	c->klen[c->nkeys++] = kl;
	int rc = node_read(c->s, txn, d, appendix, period, x->code, &stored);
	if (rc)
		return rc;
	c->nodes++;
	if (!th_rollup_equal(d, stored.own, computed->own) ||
	    !th_rollup_equal(d, stored.total, computed->total) ||
	    stored.h.reported != computed->h.reported || stored.h.on_time != computed->h.on_time ||
	    stored.h.late != computed->h.late || stored.h.corrections != computed->h.corrections) {
		c->problems++;
		th_diag_add(c->diag, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
		            "rollup %s %s %s differs from a recomputation", appendix, period, x->code);
	}
	node_release(&stored);
	return TH_OK;
}

/* Every history entry decodes and matches its hash, and is older than its
 * key's latest record (history holds the superseded revisions; a format-1
 * store not yet upgraded also holds the latest). */
static int verify_history(th_store *s, MDB_txn *txn, th_diag *dg)
{
	MDB_cursor *c;
	int rc = mdb_cursor_open(txn, s->history, &c);
	if (rc)
		return xlate(rc);
	MDB_val k, v;
	for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		char key[MAX_KEY + 1];
		const char *ru, *ra, *rp;
		MDB_val pk = {k.mv_size >= 9 ? k.mv_size - 9 : 0, k.mv_data};
		if (k.mv_size < 9 || ((const char *)k.mv_data)[k.mv_size - 9] != 0 ||
		    split3(&pk, key, &ru, &ra, &rp)) {
			th_diag_add(dg, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL, "a malformed history key");
			continue;
		}
		uint64_t krev = 0;
		for (size_t i = k.mv_size - 8; i < k.mv_size; i++)
			krev = krev << 8 | ((const uint8_t *)k.mv_data)[i];
		rec_header h;
		th_report *r = NULL;
		uint8_t hh[TH_HASH_LEN];
		int drc = decode_value(s, &v, ru, ra, rp, &r, &h);
		if (drc == TH_EAPPENDIX)
			continue;   /* a definition no longer loaded: cannot check */
		const th_def *d = drc ? NULL : th_defset_get(s->defs, ra, h.version);
		if (drc || h.rev != krev || !d || th_report_hash(r, d, hh) ||
		    memcmp(hh, h.hash, TH_HASH_LEN))
			th_diag_add(dg, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
			            "history %s %s %s rev %llu: damaged (does not decode or match its hash)",
			            ru, ra, rp, (unsigned long long)krev);
		th_report_destroy(&r);
		MDB_val lv;
		rec_header lh;
		if (mdb_get(txn, s->reports, &pk, &lv) || lv.mv_size < sizeof lh ||
		    (memcpy(&lh, lv.mv_data, sizeof lh), lh.rev < krev || (lh.rev == krev && s->format != 1)))
			th_diag_add(dg, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
			            "history %s %s %s rev %llu: no newer latest revision stands for it", ru, ra,
			            rp, (unsigned long long)krev);
	}
	mdb_cursor_close(c);
	return TH_OK;
}

int th_store_verify(th_store *s, th_diag *diag)
{
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	th_diag *local = diag ? NULL : th_diag_new();
	th_diag *dg = diag ? diag : local;
	size_t before = th_diag_errors(dg);
	verify_ctx c = {s, dg, 0, 0, NULL, NULL, 0, 0};
	rc = recompute_all(s, txn, verify_emit, &c, dg);
	if (rc == TH_OK)
		rc = verify_history(s, txn, dg);
	/* stored nodes with state that the recomputation does not produce */
	MDB_cursor *cur;
	bkey *bk = NULL;
	if (rc == TH_OK && !(bk = malloc((c.nkeys ? c.nkeys : 1) * sizeof *bk)))
		rc = TH_ENOMEM;
	if (rc == TH_OK && mdb_cursor_open(txn, s->rollups, &cur) == 0) {
		for (size_t i = 0; i < c.nkeys; i++) {
			bk[i].p = c.keys[i];
			bk[i].n = c.klen[i];
		}
		qsort(bk, c.nkeys, sizeof *bk, cmp_bkey);
		MDB_val k, v;
		for (int r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0; r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			node_header h;
			int nonzero = 1;   /* a malformed node is a problem too */
			int64_t *vals = NULL;
			if (node_head(&v, &h) == 0 && (vals = malloc((2 * (size_t)h.n_slots + 1) * sizeof *vals)) &&
			    node_vals(&v, &h, vals) == 0) {
				nonzero = h.reported || h.on_time || h.late || h.corrections;
				for (size_t i = 0; i < 2 * (size_t)h.n_slots && !nonzero; i++)
					nonzero = vals[i] != 0;
			}
			free(vals);
			bkey want = {k.mv_data, k.mv_size};
			if (nonzero && !bsearch(&want, bk, c.nkeys, sizeof *bk, cmp_bkey)) {
				c.problems++;
				th_diag_add(dg, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
				            "a stored rollup node (%.*s) holds data that no report explains",
				            (int)strnlen(k.mv_data, k.mv_size), (const char *)k.mv_data);
			}
		}
		mdb_cursor_close(cur);
	}
	free(bk);
	for (size_t i = 0; i < c.nkeys; i++)
		free(c.keys[i]);
	free(c.keys);
	free(c.klen);
	mdb_txn_abort(txn);
	size_t errs = th_diag_errors(dg) - before;
	th_diag_destroy(&local);
	if (rc)
		return rc;
	return errs ? TH_ESTORE : TH_OK;
}

int th_store_stats_get(th_store *s, th_store_stats *out)
{
	memset(out, 0, sizeof *out);
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_stat st;
	if (mdb_stat(txn, s->reports, &st) == 0)
		out->reports = st.ms_entries;
	if (mdb_stat(txn, s->history, &st) == 0)   /* superseded ones (format 1: all) */
		out->revisions = st.ms_entries + (s->format == 1 ? 0 : out->reports);
	MDB_val k = {6, "commit"}, v;
	if (mdb_get(txn, s->meta, &k, &v) == 0 && v.mv_size == 8)
		memcpy(&out->commits, v.mv_data, 8);
	mdb_txn_abort(txn);
	MDB_envinfo info;
	MDB_stat es;
	if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &es) == 0) {
		out->map_size = info.me_mapsize;
		out->used_bytes = (info.me_last_pgno + 1) * (size_t)es.ms_psize;
	}
	return TH_OK;
}

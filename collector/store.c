/* store.c -- the collector's LMDB store (layout: collector/STORAGE.md). */
#include "th_store.h"
#include "th_mp.h"
#include "th_rollup.h"

#include <errno.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>

#define FORMAT "tonghop-store 1"
#define DEFAULT_MAP ((size_t)64 << 20)
#define MAX_KEY 256

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
};

/* --- records -------------------------------------------------------------------- */

/* A stored revision: fixed header then the canonical form (th_report_canonical). */
typedef struct {
	uint8_t fmt;          /* 1 */
	uint8_t tombstone;
	uint8_t pad[2];
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
	uint32_t n_slots, pad;
	/* int64 own[n_slots], total[n_slots] follow */
} node_header;

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
	case ENOSPC: return TH_ENOSPC;
	case ENOMEM: return TH_ENOMEM;
	case EACCES: case EROFS: return TH_EIO;
	default: return TH_ESTORE;
	}
}

static size_t key3(char *buf, const char *a, const char *b, const char *c)
{
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

static int open_env(th_store *s)
{
	int rc = mdb_env_create(&s->env);
	if (rc)
		return xlate(rc);
	mdb_env_set_maxdbs(s->env, 16);
	mdb_env_set_mapsize(s->env, s->map_size);
	mdb_env_set_maxreaders(s->env, 256);
	rc = mdb_env_open(s->env, s->dir, s->readonly ? MDB_RDONLY : 0, 0640);
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

int th_store_open(const char *dir, const th_store_opts *opts, th_store **out)
{
	th_store *s = calloc(1, sizeof *s);
	if (!s)
		return TH_ENOMEM;
	s->readonly = opts && opts->readonly;
	s->map_size = opts && opts->map_size ? opts->map_size : DEFAULT_MAP;
	s->max_map = opts && opts->max_map_size ? opts->max_map_size : ((size_t)1 << 40);
	s->dir = strdup(dir);
	int rc;
	if (!s->dir) {
		rc = TH_ENOMEM;
		goto fail;
	}
	if (!s->readonly && mkdir(dir, 0750) != 0 && errno != EEXIST) {
		rc = TH_EIO;
		goto fail;
	}
	if ((rc = open_env(s)))
		goto fail;
	MDB_txn *txn;
	unsigned flags = s->readonly ? 0 : MDB_CREATE;
	if ((rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn))) {
		rc = xlate(rc);
		goto fail;
	}
	if (mdb_dbi_open(txn, "meta", flags, &s->meta) || mdb_dbi_open(txn, "hier", flags, &s->hier) ||
	    mdb_dbi_open(txn, "bind", flags, &s->bind) ||
	    mdb_dbi_open(txn, "reports", flags, &s->reports) ||
	    mdb_dbi_open(txn, "history", flags, &s->history) ||
	    mdb_dbi_open(txn, "rollups", flags, &s->rollups) ||
	    mdb_dbi_open(txn, "deadlines", flags, &s->deadlines)) {
		mdb_txn_abort(txn);
		rc = s->readonly ? TH_ENOTFOUND : TH_ESTORE;
		goto fail;
	}
	MDB_val k = {6, "format"}, v;
	rc = mdb_get(txn, s->meta, &k, &v);
	if (rc == MDB_NOTFOUND && !s->readonly) {
		MDB_val fv = {strlen(FORMAT), FORMAT};
		randombytes_buf(s->uuid, 16);
		MDB_val uk = {4, "uuid"}, uv = {16, s->uuid};
		if (mdb_put(txn, s->meta, &k, &fv, 0) || mdb_put(txn, s->meta, &uk, &uv, 0)) {
			mdb_txn_abort(txn);
			rc = TH_ESTORE;
			goto fail;
		}
	} else if (rc || v.mv_size != strlen(FORMAT) || memcmp(v.mv_data, FORMAT, v.mv_size)) {
		mdb_txn_abort(txn);
		rc = TH_ESTORE;   /* not a tonghop store, or another format version */
		goto fail;
	} else {
		MDB_val uk = {4, "uuid"}, uv;
		if (mdb_get(txn, s->meta, &uk, &uv) || uv.mv_size != 16) {
			mdb_txn_abort(txn);
			rc = TH_ESTORE;
			goto fail;
		}
		memcpy(s->uuid, uv.mv_data, 16);
	}
	MDB_val ck = {6, "commit"}, cv;
	if (mdb_get(txn, s->meta, &ck, &cv) == 0 && cv.mv_size == 8)
		memcpy(&s->last_commit, cv.mv_data, 8);
	if ((rc = load_hierarchies(s, txn))) {
		mdb_txn_abort(txn);
		goto fail;
	}
	if (s->readonly)
		mdb_txn_abort(txn);
	else if ((rc = mdb_txn_commit(txn))) {
		rc = xlate(rc);
		goto fail;
	}
	*out = s;
	return TH_OK;
fail:
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
	for (size_t i = 0; i < s->nh; i++)
		th_units_destroy(&s->h[i]);
	free(s->h);
	free(s->dir);
	free(s);
	*ps = NULL;
}

const uint8_t *th_store_uuid(const th_store *s) { return s->uuid; }
uint64_t th_store_last_commit(const th_store *s) { return s->last_commit; }

int th_store_set_defs(th_store *s, const th_defset *defs)
{
	s->defs = defs;
	return TH_OK;
}

/* --- hierarchies and periods ---------------------------------------------------------- */

static th_units *find_version(th_store *s, const char *id, size_t n)
{
	for (size_t i = 0; i < s->nh; i++)
		if (strlen(th_units_version(s->h[i])) == n && !memcmp(th_units_version(s->h[i]), id, n))
			return s->h[i];
	return NULL;
}

int th_store_add_hierarchy(th_store *s, const th_units *u)
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
	MDB_txn *txn;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn))) {
		th_units_destroy(&copy);
		return xlate(rc);
	}
	MDB_val k = {strlen(id), (void *)id}, v = {len, (void *)src};
	rc = mdb_put(txn, s->hier, &k, &v, 0);
	if (rc == MDB_MAP_FULL) {
		mdb_txn_abort(txn);
		th_units_destroy(&copy);
		return TH_ENOSPC;
	}
	if (rc || (rc = mdb_txn_commit(txn))) {
		if (rc != 0)
			mdb_txn_abort(txn);
		th_units_destroy(&copy);
		return xlate(rc);
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
		if (!u)
			return TH_ESTORE;
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
	if (!th_period_valid(period))
		return TH_EPERIOD;
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, s->readonly ? MDB_RDONLY : 0, &txn);
	if (rc)
		return xlate(rc);
	th_units *u = NULL;
	rc = bound(s, txn, !s->readonly, period, &u);
	if (rc == 0 && !s->readonly) {
		int c = mdb_txn_commit(txn);
		if (c)
			return xlate(c);
	} else {
		mdb_txn_abort(txn);
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
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc)
		return xlate(rc);
	MDB_val k = {kl, key}, v = {4, &deadline};
	if ((rc = mdb_put(txn, s->deadlines, &k, &v, 0))) {
		mdb_txn_abort(txn);
		return xlate(rc);
	}
	return xlate(mdb_txn_commit(txn));
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

/* --- nodes ----------------------------------------------------------------------------- */

typedef struct {
	node_header h;
	int64_t *own, *total;
} node;

static int node_alloc(node *n, const th_def *d)
{
	memset(n, 0, sizeof *n);
	n->own = calloc(d->n_slots, sizeof(int64_t));
	n->total = calloc(d->n_slots, sizeof(int64_t));
	if (!n->own || !n->total) {
		free(n->own);
		free(n->total);
		return TH_ENOMEM;
	}
	th_rollup_zero(d, n->own);
	th_rollup_zero(d, n->total);
	n->h.n_slots = (uint32_t)d->n_slots;
	return TH_OK;
}

static void node_release(node *n)
{
	free(n->own);
	free(n->total);
	n->own = n->total = NULL;
}

/* Reads a node into n (allocated); zero when absent. */
static int node_read(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                     const char *period, const char *unit, node *n)
{
	int rc = node_alloc(n, d);
	if (rc)
		return rc;
	char key[MAX_KEY];
	size_t kl = key3(key, appendix, period, unit);
	MDB_val k = {kl, key}, v;
	rc = mdb_get(txn, s->rollups, &k, &v);
	if (rc == MDB_NOTFOUND)
		return TH_OK;
	if (rc) {
		node_release(n);
		return xlate(rc);
	}
	if (v.mv_size != sizeof(node_header) + 2 * d->n_slots * sizeof(int64_t)) {
		node_release(n);
		return TH_ESTORE;
	}
	memcpy(&n->h, v.mv_data, sizeof n->h);
	memcpy(n->own, (char *)v.mv_data + sizeof n->h, d->n_slots * sizeof(int64_t));
	memcpy(n->total, (char *)v.mv_data + sizeof n->h + d->n_slots * sizeof(int64_t),
	       d->n_slots * sizeof(int64_t));
	return TH_OK;
}

static int node_write(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                      const char *period, const char *unit, const node *n)
{
	char key[MAX_KEY];
	size_t kl = key3(key, appendix, period, unit);
	MDB_val k = {kl, key}, v;
	v.mv_size = sizeof(node_header) + 2 * d->n_slots * sizeof(int64_t);
	int rc = mdb_put(txn, s->rollups, &k, &v, MDB_RESERVE);
	if (rc)
		return rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
	memcpy(v.mv_data, &n->h, sizeof n->h);
	memcpy((char *)v.mv_data + sizeof n->h, n->own, d->n_slots * sizeof(int64_t));
	memcpy((char *)v.mv_data + sizeof n->h + d->n_slots * sizeof(int64_t), n->total,
	       d->n_slots * sizeof(int64_t));
	return TH_OK;
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
	th_rollup_add(d, tmp, own);
	const th_unit *x = th_units_at(u, unit);
	for (uint32_t i = 0; i < x->n_children; i++) {
		size_t c = x->children[i];
		if ((long)c == path_child) {
			th_rollup_add(d, tmp, path_total);
			continue;
		}
		node cn;
		int rc = node_read(s, txn, d, appendix, period, th_units_at(u, c)->code, &cn);
		if (rc) {
			free(tmp);
			return rc;
		}
		th_rollup_add(d, tmp, cn.total);
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

static int cmp_sub(const void *a, const void *b)
{
	const th_submission *x = *(th_submission *const *)a, *y = *(th_submission *const *)b;
	int c = strcmp(x->report->unit, y->report->unit);
	if (!c)
		c = strcmp(x->report->appendix, y->report->appendix);
	if (!c)
		c = strcmp(x->report->period, y->report->period);
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
	th_ack_result_free(r);
	r->unit = strdup(sub->report->unit);
	r->appendix = strdup(sub->report->appendix);
	r->period = strdup(sub->report->period);
	r->rev = sub->report->rev;
}

typedef struct {
	th_changed_node *v;
	size_t n, cap;
} changes;

static void note_change(changes *c, const char *unit, const char *appendix, const char *period,
                        uint32_t level, uint64_t version)
{
	for (size_t i = 0; i < c->n; i++)
		if (!strcmp(c->v[i].unit, unit) && !strcmp(c->v[i].appendix, appendix) &&
		    !strcmp(c->v[i].period, period)) {
			c->v[i].node_version = version;
			return;
		}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		th_changed_node *nv = realloc(c->v, cap * sizeof *nv);
		if (!nv)
			return;
		c->v = nv;
		c->cap = cap;
	}
	th_changed_node *x = &c->v[c->n++];
	snprintf(x->unit, sizeof x->unit, "%s", unit);
	snprintf(x->appendix, sizeof x->appendix, "%s", appendix);
	snprintf(x->period, sizeof x->period, "%s", period);
	x->level = level;
	x->node_version = version;
}

/* Applies one submission inside txn.  Returns TH_OK (result set, maybe a
 * rejection), or TH_EMAPFULL / other store errors that abort the group. */
static int apply_one(th_store *s, MDB_txn *txn, th_submission *sub, uint64_t commit, int64_t now,
                     changes *ch)
{
	th_report *r = sub->report;
	th_ack_result *res = sub->result;
	const th_def *d = s->defs ? th_defset_get(s->defs, r->appendix, r->version) : NULL;
	if (!d || th_defset_latest(s->defs, r->appendix) != d) {
		result_set(res, TH_ACK_RETRY_LATER, TH_EDEFCHANGED, 0,
		           "the appendix version is not the one in force; fetch the current definitions");
		return TH_OK;
	}
	if (r->n_cols != d->n_cols || !th_period_valid(r->period)) {
		result_set(res, TH_ACK_REJECTED, TH_EINVAL, 0, "report does not match its definition");
		return TH_OK;
	}
	th_units *u = NULL;
	int rc = bound(s, txn, 1, r->period, &u);
	if (rc == TH_ENOTFOUND) {
		result_set(res, TH_ACK_RETRY_LATER, TH_ESTORE, 0, "no hierarchy is loaded");
		return TH_OK;
	}
	if (rc)
		return rc;
	long ui = th_units_find(u, r->unit);
	if (ui < 0) {
		result_set(res, TH_ACK_REJECTED, TH_EUNIT, 0, "unknown unit in the hierarchy bound to the period");
		return TH_OK;
	}
	uint8_t hash[TH_HASH_LEN];
	uint8_t *canon = NULL;
	size_t clen = 0;
	if (th_report_canonical(r, d, &canon, &clen) != 0) {
		result_set(res, TH_ACK_REJECTED, TH_EINVAL, 0, "report cannot be encoded");
		return TH_OK;
	}
	crypto_generichash(hash, TH_HASH_LEN, canon, clen, NULL, 0);
	char key[MAX_KEY];
	size_t kl = key3(key, r->unit, r->appendix, r->period);
	if (!kl) {
		free(canon);
		result_set(res, TH_ACK_REJECTED, TH_ETOOBIG, 0, "key too long");
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
	int64_t *cnew = calloc(d->n_slots, sizeof *cnew), *cold = calloc(d->n_slots, sizeof *cold);
	node *path = NULL;
	size_t depth = th_units_at(u, (size_t)ui)->depth;
	int ret = TH_OK;
	if (!cnew || !cold) {
		ret = TH_ENOMEM;
		goto out;
	}
	th_rollup_zero(d, cold);
	if (th_rollup_contrib(d, r, cnew) != 0) {
		result_set(res, TH_ACK_REJECTED, TH_EOVERFLOW, have_old ? old.rev : 0,
		           "a sum of this report overflows 64 bits");
		goto out;
	}
	if (have_old && !old.tombstone) {
		th_report *or = NULL;
		if (decode_canonical((uint8_t *)v.mv_data + sizeof old, v.mv_size - sizeof old,
		                     th_defset_get(s->defs, r->appendix, old.version) ? th_defset_get(s->defs, r->appendix, old.version) : d,
		                     r->unit, r->period, old.rev, &or) == 0) {
			const th_def *od = th_defset_get(s->defs, r->appendix, old.version);
			if (od == d)
				th_rollup_contrib(d, or, cold);
			th_report_destroy(&or);
		}
	}
	/* completeness deltas */
	int was = have_old && !old.tombstone, is = !r->tombstone;
	int64_t first = have_old ? old.first_time : now;
	int ot = on_time(s, txn, r->appendix, r->period, r->unit, first);
	int d_rep = is - was;
	int d_corr = (have_old && is) ? 1 : 0;
	/* compute every node on the path in memory first */
	path = calloc(depth, sizeof *path);
	if (!path) {
		ret = TH_ENOMEM;
		goto out;
	}
	long cur = ui, child = -1;
	for (size_t i = 0; i < depth && cur >= 0; i++) {
		const th_unit *x = th_units_at(u, (size_t)cur);
		if ((rc = node_read(s, txn, d, r->appendix, r->period, x->code, &path[i]))) {
			ret = rc;
			goto out;
		}
		node *n = &path[i];
		int need = 0;
		if (i == 0) {
			memcpy(n->own, cnew, d->n_slots * sizeof *cnew);
			if (th_rollup_sub(d, n->total, cold, &need) || th_rollup_add(d, n->total, cnew)) {
				result_set(res, TH_ACK_REJECTED, TH_EOVERFLOW, have_old ? old.rev : 0,
				           "a rollup sum would overflow 64 bits");
				goto out;
			}
		} else {
			node prev_child;
			if ((rc = node_read(s, txn, d, r->appendix, r->period, th_units_at(u, (size_t)child)->code,
			                    &prev_child))) {
				ret = rc;
				goto out;
			}
			int bad = th_rollup_sub(d, n->total, prev_child.total, &need) ||
			          th_rollup_add(d, n->total, path[i - 1].total);
			node_release(&prev_child);
			if (bad) {
				result_set(res, TH_ACK_REJECTED, TH_EOVERFLOW, have_old ? old.rev : 0,
				           "a rollup sum would overflow 64 bits");
				goto out;
			}
		}
		if (need || i == 0) {
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
	h.corrections = have_old ? old.corrections + 1 : 0;
	h.rev = r->rev;
	h.commit = commit;
	h.commit_time = now;
	h.first_time = first;
	memcpy(h.hash, hash, TH_HASH_LEN);
	snprintf(h.sender, sizeof h.sender, "%s", sub->sender ? sub->sender : "");
	MDB_val rv;
	rv.mv_size = sizeof h + clen;
	if ((rc = mdb_put(txn, s->reports, &k, &rv, MDB_RESERVE))) {
		ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
		goto out;
	}
	memcpy(rv.mv_data, &h, sizeof h);
	memcpy((char *)rv.mv_data + sizeof h, canon, clen);
	char hk[MAX_KEY + 9];
	memcpy(hk, key, kl);
	hk[kl] = 0;
	put_be64((uint8_t *)hk + kl + 1, r->rev);
	MDB_val hkv = {kl + 9, hk};
	rv.mv_size = sizeof h + clen;
	if ((rc = mdb_put(txn, s->history, &hkv, &rv, MDB_RESERVE))) {
		ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
		goto out;
	}
	memcpy(rv.mv_data, &h, sizeof h);
	memcpy((char *)rv.mv_data + sizeof h, canon, clen);
	result_set(res, TH_ACK_ACCEPTED, 0, r->rev, NULL);
out:
	for (size_t i = 0; path && i < depth; i++)
		node_release(&path[i]);
	free(path);
	free(cnew);
	free(cold);
	free(canon);
	return ret;
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

int th_store_apply(th_store *s, th_submission *subs, size_t n, uint64_t *commit_id,
                   int64_t *commit_time, th_changed_node **changed, size_t *n_changed)
{
	if (s->readonly)
		return TH_EINVAL;
	th_submission **order = malloc((n ? n : 1) * sizeof *order);
	if (!order)
		return TH_ENOMEM;
	for (size_t i = 0; i < n; i++)
		order[i] = &subs[i];
	qsort(order, n, sizeof *order, cmp_sub);
	int ret;
	for (;;) {
		changes ch = {0};
		uint64_t commit = s->last_commit + 1;
		int64_t now = now_us();
		MDB_txn *txn;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc) {
			ret = xlate(rc);
			free(ch.v);
			break;
		}
		ret = TH_OK;
		for (size_t i = 0; i < n && ret == TH_OK; i++) {
			result_reset(order[i]);
			ret = apply_one(s, txn, order[i], commit, now, &ch);
		}
		if (ret == TH_OK) {
			MDB_val k = {6, "commit"}, v = {8, &commit};
			rc = mdb_put(txn, s->meta, &k, &v, 0);
			if (rc == 0)
				rc = mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
			if (rc == 0) {
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
			ret = rc == MDB_MAP_FULL ? TH_EMAPFULL : xlate(rc);
		} else {
			mdb_txn_abort(txn);
		}
		free(ch.v);
		if (ret != TH_EMAPFULL)
			break;
		/* abort, grow, replay the whole group */
		if ((ret = grow(s)) != TH_OK)
			break;
	}
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

static int fill_node(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                     const char *period, const th_unit *x, uint32_t expected, th_node *out)
{
	node n;
	int rc = node_read(s, txn, d, appendix, period, x->code, &n);
	if (rc)
		return rc;
	memset(out, 0, sizeof *out);
	snprintf(out->unit, sizeof out->unit, "%s", x->code);
	out->level = x->depth;
	out->own = n.own;
	out->total = n.total;
	out->expected = expected;
	out->reported = n.h.reported;
	out->on_time = n.h.on_time;
	out->late = n.h.late;
	out->corrections = n.h.corrections;
	out->version = n.h.version;
	out->commit = n.h.commit;
	return TH_OK;
}

static int read_txn(th_store *s, MDB_txn **txn)
{
	return xlate(mdb_txn_begin(s->env, NULL, MDB_RDONLY, txn));
}

int th_store_get_node(th_store *s, const char *appendix, const char *period, const char *unit,
                      th_node *out)
{
	const th_def *d = s->defs ? th_defset_latest(s->defs, appendix) : NULL;
	if (!d)
		return TH_EAPPENDIX;
	if (!th_period_valid(period))
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
			uint32_t *e = expected_counts(u, d);
			rc = e ? fill_node(s, txn, d, appendix, period, th_units_at(u, (size_t)i), e[i], out)
			       : TH_ENOMEM;
			free(e);
		}
	}
	mdb_txn_abort(txn);
	return rc;
}

int th_store_level(th_store *s, const char *appendix, const char *period, uint32_t level,
                   const char *parent, th_node_cb cb, void *ctx)
{
	const th_def *d = s->defs ? th_defset_latest(s->defs, appendix) : NULL;
	if (!d)
		return TH_EAPPENDIX;
	if (!th_period_valid(period))
		return TH_EPERIOD;
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	th_units *u = NULL;
	uint32_t *e = NULL;
	if ((rc = bound(s, txn, 0, period, &u)))
		goto out;
	if (!(e = expected_counts(u, d))) {
		rc = TH_ENOMEM;
		goto out;
	}
	long pi = -1;
	if (parent && (pi = th_units_find(u, parent)) < 0) {
		rc = TH_EUNIT;
		goto out;
	}
	for (size_t i = 0; i < th_units_count(u) && rc == 0; i++) {
		const th_unit *x = th_units_at(u, i);
		if (parent ? x->parent != pi : x->depth != level)
			continue;
		th_node n;
		if ((rc = fill_node(s, txn, d, appendix, period, x, e[i], &n)))
			break;
		rc = cb(ctx, x, &n);
		th_node_free(&n);
	}
out:
	free(e);
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
	return !((const rec_header *)v.mv_data)->tombstone;
}

int th_store_missing(th_store *s, const char *appendix, const char *period, const char *unit,
                     th_node_cb cb, void *ctx)
{
	const th_def *d = s->defs ? th_defset_latest(s->defs, appendix) : NULL;
	if (!d)
		return TH_EAPPENDIX;
	if (!th_period_valid(period))
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
			if (cr) {
				rc = cr;
				break;
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	if (rc)
		return rc < 0 ? rc : xlate(rc);
	return found ? TH_OK : TH_ENOTFOUND;
}

int th_store_revs_in_scope(th_store *s, const char *unit, th_rev_cb cb, void *ctx)
{
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	MDB_cursor *c;
	if ((rc = mdb_cursor_open(txn, s->reports, &c))) {
		mdb_txn_abort(txn);
		return xlate(rc);
	}
	MDB_val k, v;
	rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
	while (rc == 0) {
		char key[MAX_KEY + 1];
		if (k.mv_size <= MAX_KEY && v.mv_size >= sizeof(rec_header)) {
			memcpy(key, k.mv_data, k.mv_size);
			key[k.mv_size] = 0;
			const char *ru = key, *ra = ru + strlen(ru) + 1, *rp = ra + strlen(ra) + 1;
			th_units *u = NULL;
			if (bound(s, txn, 0, rp, &u) == 0) {
				long top = th_units_find(u, unit), me = th_units_find(u, ru);
				if (top >= 0 && me >= 0 && th_units_in_subtree(u, (size_t)top, (size_t)me)) {
					rec_header h;
					memcpy(&h, v.mv_data, sizeof h);
					int cr = cb(ctx, ru, ra, rp, h.rev);
					if (cr) {
						rc = cr;
						break;
					}
				}
			}
		}
		rc = mdb_cursor_get(c, &k, &v, MDB_NEXT);
	}
	mdb_cursor_close(c);
	mdb_txn_abort(txn);
	return rc == MDB_NOTFOUND || rc == 0 ? TH_OK : (rc < 0 ? rc : xlate(rc));
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
		if (k.mv_size > MAX_KEY)
			continue;
		memcpy(key, k.mv_data, k.mv_size);
		key[k.mv_size] = 0;
		const char *ra = key + strlen(key) + 1, *rp = ra + strlen(ra) + 1;
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
		const th_def *d = s->defs ? th_defset_latest(s->defs, pairs[p].appendix) : NULL;
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
			if (k.mv_size > MAX_KEY)
				continue;
			memcpy(key, k.mv_data, k.mv_size);
			key[k.mv_size] = 0;
			const char *ru = key, *ra = ru + strlen(ru) + 1, *rp = ra + strlen(ra) + 1;
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
				if (on_time(s, txn, ra, rp, ru, h.first_time))
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

int th_store_rebuild(th_store *s)
{
	if (s->readonly)
		return TH_EINVAL;
	for (;;) {
		MDB_txn *txn;
		int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
		if (rc)
			return xlate(rc);
		/* node versions survive: read them before dropping (copy into a scratch db is
		 * not needed: rebuild_emit reads the old node before overwriting) */
		rebuild_ctx c = {s, s->last_commit};
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
} verify_ctx;

static int verify_emit(void *ctx, MDB_txn *txn, const th_def *d, const char *appendix,
                       const char *period, const th_unit *x, const node *computed)
{
	verify_ctx *c = ctx;
	node stored;
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

int th_store_verify(th_store *s, th_diag *diag)
{
	MDB_txn *txn;
	int rc = read_txn(s, &txn);
	if (rc)
		return rc;
	th_diag *local = diag ? NULL : th_diag_new();
	th_diag *dg = diag ? diag : local;
	size_t before = th_diag_errors(dg);
	verify_ctx c = {s, dg, 0, 0};
	rc = recompute_all(s, txn, verify_emit, &c, dg);
	/* stored nodes with state that the recomputation does not produce */
	MDB_cursor *cur;
	if (rc == TH_OK && mdb_cursor_open(txn, s->rollups, &cur) == 0) {
		MDB_val k, v;
		size_t stored_nodes = 0;
		for (int r = mdb_cursor_get(cur, &k, &v, MDB_FIRST); r == 0; r = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			const node_header *h = v.mv_data;
			if (v.mv_size < sizeof *h)
				continue;
			const int64_t *vals = (const int64_t *)((const char *)v.mv_data + sizeof *h);
			int nonzero = h->reported || h->corrections;
			for (size_t i = 0; i < 2 * (size_t)h->n_slots && !nonzero; i++)
				nonzero = vals[i] != 0;
			stored_nodes += nonzero;
		}
		mdb_cursor_close(cur);
		if (stored_nodes > c.nodes) {
			c.problems++;
			th_diag_add(dg, TH_SEV_ERROR, TH_ESTORE, NULL, 0, 0, NULL,
			            "%zu stored rollup nodes hold data that no report explains",
			            stored_nodes - c.nodes);
		}
	}
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
	if (mdb_stat(txn, s->history, &st) == 0)
		out->revisions = st.ms_entries;
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

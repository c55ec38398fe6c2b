/* node.c -- rollup nodes: the node codec (STORAGE.md, "Node") and the group's
 * node cache. */
#include "store_private.h"
#include "th_rollup.h"

#include <stdlib.h>
#include <string.h>

/* --- nodes ----------------------------------------------------------------------------- */


int st_node_alloc(node *n, const th_def *d)
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

void st_node_release(node *n)
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
size_t st_node_enc_size(size_t n_slots, const int64_t *own, const int64_t *total)
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
size_t st_node_encode(uint8_t *out, const node_header *h, size_t n_slots, const int64_t *own,
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
int st_node_head(const MDB_val *v, node_header *h)
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
int st_node_vals(const MDB_val *v, const node_header *h, int64_t *out)
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


/* The group's node cache.  While th_store_apply runs a group, every node it
 * reads or writes is kept here decoded, keyed like `rollups`: a report's path
 * reads its ancestors from memory, and each changed node is written to LMDB
 * once, in key order, when the group is done (st_ncache_flush), instead of once
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

struct ncache *st_ncache_new(void)
{
	return calloc(1, sizeof(struct ncache));
}

void st_ncache_clear(struct ncache *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->e[i].v);
	c->n = 0;
	if (c->slot)
		memset(c->slot, 0, c->hcap * sizeof *c->slot);
}

void st_ncache_free(struct ncache *c)
{
	if (!c)
		return;
	st_ncache_clear(c);
	free(c->e);
	free(c->slot);
	free(c);
}

/* The entry for key, or NULL; *j is where a new one goes in the index. */
static ncache_ent *ncache_find(struct ncache *c, const char *key, size_t kl, size_t *j)
{
	if (!c->hcap)
		return NULL;
	size_t i = th_fnv1a(key, kl) & (c->hcap - 1);
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
			size_t j = th_fnv1a(c->e[i].key, c->e[i].kl) & (hcap - 1);
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
int st_node_get(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                const char *period, const char *unit, node *n)
{
	char key[MAX_KEY];
	size_t kl = st_key3(key, appendix, period, unit);
	return node_read_db(s, txn, d, key, kl, n);
}

int st_node_read(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                     const char *period, const char *unit, node *n)
{
	char key[MAX_KEY];
	size_t kl = st_key3(key, appendix, period, unit);
	if (!s->nc)
		return node_read_db(s, txn, d, key, kl, n);
	size_t j;
	ncache_ent *x = ncache_find(s->nc, key, kl, &j);
	if (x && x->d != d)
		return TH_ESTORE;   /* one group, one version per (appendix, period) */
	if (x) {
		int rc = st_node_alloc(n, d);
		if (rc)
			return rc;
		n->h = x->h;
		memcpy(n->own, x->v, d->n_slots * sizeof *n->own);
		memcpy(n->total, x->v + d->n_slots, d->n_slots * sizeof *n->total);
		return TH_OK;
	}
	int rc = node_read_db(s, txn, d, key, kl, n);
	if (rc == TH_OK && !x && !ncache_add(s->nc, key, kl, d, n)) {
		st_node_release(n);
		return TH_ENOMEM;
	}
	return rc;
}

/* A node from its stored value v (NULL: absent, zero) into n (allocated). */
int st_node_from_val(const th_def *d, const MDB_val *vp, node *n)
{
	int rc = st_node_alloc(n, d);
	if (rc || !vp)
		return rc;
	MDB_val v = *vp;
	node_header h;
	if (st_node_head(&v, &h)) {
		st_node_release(n);
		return TH_ESTORE;
	}
	if (h.n_slots != d->n_slots) {
		/* laid out for another definition version (the version in force
		 * changed): counts as empty, keeping its version number */
		n->h.version = h.version;
		n->h.commit = h.commit;
		return TH_OK;
	}
	if (st_node_vals(&v, &h, n->own)) {   /* own then total: one block */
		st_node_release(n);
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
		return th_lmdb_error(rc);
	}
	return st_node_from_val(d, rc ? NULL : &v, n);
}

static int node_write_db(th_store *s, MDB_txn *txn, const th_def *d, const char *key, size_t kl,
                         const node *n);

int st_node_write(th_store *s, MDB_txn *txn, const th_def *d, const char *appendix,
                      const char *period, const char *unit, const node *n)
{
	char key[MAX_KEY];
	size_t kl = st_key3(key, appendix, period, unit);
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
int st_ncache_flush(th_store *s, MDB_txn *txn)
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
	MDB_val k = {kl, (void *)key}, v = {st_node_encode(s->enc, &n->h, d->n_slots, n->own, n->total), s->enc};
	int rc = mdb_put(txn, s->rollups, &k, &v, 0);
	return rc == 0 ? TH_OK : rc == MDB_MAP_FULL ? TH_EMAPFULL : th_lmdb_error(rc);
}

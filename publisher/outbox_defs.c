/* outbox_defs.c -- the definitions cache (OUTBOX.md "Keys": defs, meta
 * inforce): every definition text a welcome brought, and which of them the
 * last welcome named as in force. */
#include "outbox_private.h"
#include "th_lmdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct defs_ctx {
	char *const *texts;
	size_t n;
} defs_ctx;

static int defs_fn(th_outbox *ob, MDB_txn *txn, void *vctx)
{
	defs_ctx *x = vctx;
	ob_buf list = {0};
	for (size_t i = 0; i < x->n; i++) {
		th_def *d = NULL;
		if (!x->texts[i] || th_def_parse(x->texts[i], strlen(x->texts[i]), "welcome", &d, NULL))
			continue;   /* the agent cannot read it: not cached */
		char k[TH_CODE_MAX + 8];
		size_t il = strlen(d->id);
		if (il > TH_CODE_MAX) {
			th_def_destroy(&d);
			continue;
		}
		memcpy(k, d->id, il + 1);
		uint8_t *vk = (uint8_t *)k + il + 1;
		for (int j = 0; j < 4; j++)
			vk[j] = (uint8_t)(d->version >> (24 - 8 * j));
		int rc = ob_put(txn, ob->defs, k, il + 5, x->texts[i], strlen(x->texts[i]));
		char line[TH_CODE_MAX + 24];
		int ln = snprintf(line, sizeof line, "%s\t%u\n", d->id, d->version);
		ob_put_bytes(&list, line, (size_t)ln);
		th_def_destroy(&d);
		if (rc) {
			free(list.p);
			return rc;
		}
	}
	int rc = list.oom ? TH_ENOMEM
	                  : ob_put(txn, ob->meta, "inforce", 7, list.p ? (void *)list.p : "", list.len);
	free(list.p);
	/* entries of a format 1 outbox that waited for one of these definitions */
	if (!rc)
		rc = ob_upgrade_entries(ob, txn, 0);
	return rc;
}

int th_outbox_set_defs(th_outbox *ob, char *const *texts, size_t n)
{
	defs_ctx x = {texts, n};
	return ob_write(ob, defs_fn, &x);
}

static int in_force(const char *list, size_t len, const char *id, uint32_t version)
{
	char line[TH_CODE_MAX + 24];
	int ln = snprintf(line, sizeof line, "%s\t%u\n", id, version);
	if (ln <= 0 || (size_t)ln >= sizeof line)
		return 0;
	for (size_t off = 0; off + (size_t)ln <= len;) {
		if (memcmp(list + off, line, (size_t)ln) == 0)
			return 1;
		const char *nl = memchr(list + off, '\n', len - off);
		if (!nl)
			break;
		off = (size_t)(nl - list) + 1;
	}
	return 0;
}

int ob_cached_defs(th_outbox *ob, MDB_txn *txn, int in_force_only, th_defset **out)
{
	th_defset *set = th_defset_new();
	MDB_cursor *c = NULL;
	char *list = NULL;
	size_t list_len = 0;
	int rc = 0;
	if (!set) {
		rc = TH_ENOMEM;
		goto done;
	}
	MDB_val v;
	if (ob_get(txn, ob->meta, "inforce", 7, &v) == 0) {
		list = malloc(v.mv_size + 1);
		if (!list) {
			rc = TH_ENOMEM;
			goto done;
		}
		memcpy(list, v.mv_data, v.mv_size);
		list_len = v.mv_size;
		list[list_len] = 0;
	}
	rc = th_lmdb_error(mdb_cursor_open(txn, ob->defs, &c));
	if (rc)
		goto done;
	MDB_val k;
	int mrc;
	for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
	     mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
		th_def *d = NULL;
		if (th_def_parse(v.mv_data, v.mv_size, "cached definition", &d, NULL) != 0)
			continue;
		if (in_force_only && !in_force(list ? list : "", list_len, d->id, d->version)) {
			th_def_destroy(&d);
			continue;
		}
		if (th_defset_add(set, d) != 0)
			th_def_destroy(&d);
	}
	if (th_defset_count(set) == 0)
		rc = TH_ENOTFOUND;
done:
	if (c)
		mdb_cursor_close(c);
	free(list);
	if (rc == 0)
		*out = set;
	else
		th_defset_destroy(&set);
	return rc;
}

int th_outbox_load_defs(th_outbox *ob, int in_force_only, th_defset **out)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(ob->env, NULL, MDB_RDONLY, &txn);
	if (rc)
		return th_lmdb_error(rc);
	rc = ob_cached_defs(ob, txn, in_force_only, out);
	mdb_txn_abort(txn);
	return rc;
}

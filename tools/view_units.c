/* view_units.c -- the hierarchy: its units as a list or a tree, and its
 * versions (th_view.h). */
#include "view_private.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int th_view_units(const th_units *u, th_doc **out)
{
	static const char *keys[] = {"code", "parent", "kind", "level", "name", "person", "phone",
	                             "email"};
	static const char *titles[] = {"Mã", "Cấp trên", "Loại", "Cấp", "Tên", "Người liên hệ",
	                               "Điện thoại", "Thư điện tử"};
	th_table *t = th_table_new(8);
	if (!t)
		return TH_ENOMEM;
	for (size_t c = 0; c < 8; c++)
		th_table_column(t, c, keys[c], titles[c], NULL, c == 3);
	th_table_heads(t, TH_HEAD_KEY);
	for (size_t i = 0; i < th_units_count(u); i++) {
		const th_unit *n = th_units_at(u, i);
		long row = th_table_row(t);
		if (row < 0)
			break;
		th_table_set(t, (size_t)row, 0, n->code);
		th_table_set(t, (size_t)row, 1, n->parent_code);
		th_table_set(t, (size_t)row, 2, n->kind);
		th_table_set_int(t, (size_t)row, 3, n->depth);
		th_table_set(t, (size_t)row, 4, n->name);
		th_table_set(t, (size_t)row, 5, n->person);
		th_table_set(t, (size_t)row, 6, n->phone);
		th_table_set(t, (size_t)row, 7, n->email);
	}
	return (*out = th_doc_of(t)) ? 0 : TH_ENOMEM;
}

static void draw_tree(const th_units *u, size_t i, char *prefix, size_t plen, size_t cap, int last,
                      int root, FILE *f)
{
	const th_unit *n = th_units_at(u, i);
	fprintf(f, "%s%s%s (%s, %s)", prefix, root ? "" : (last ? "└─ " : "├─ "), n->name, n->code, n->kind);
	if (n->person && *n->person)
		fprintf(f, " — %s", n->person);
	if (n->phone && *n->phone)
		fprintf(f, ", %s", n->phone);
	if (n->email && *n->email)
		fprintf(f, ", %s", n->email);
	fprintf(f, "\n");
	size_t add = root ? 0 : strlen(last ? "   " : "│  ");
	if (plen + add + 1 > cap)
		return;
	if (!root)
		memcpy(prefix + plen, last ? "   " : "│  ", add + 1);
	for (uint32_t k = 0; k < n->n_children; k++)
		draw_tree(u, n->children[k], prefix, plen + add, cap, k + 1 == n->n_children, 0, f);
	prefix[plen] = 0;
}

int th_view_tree(const th_units *u, const char *code, FILE *f)
{
	long i = th_units_find(u, code);
	if (i < 0)
		return TH_EUNIT;
	char prefix[1024] = "";
	draw_tree(u, (size_t)i, prefix, 0, sizeof prefix, 1, 1, f);
	return fflush(f) == 0 && !ferror(f) ? 0 : TH_EIO;
}

#define VCOLS 8

static int vrow_cb(void *ctx, const th_hier_row *r)
{
	th_table *t = ctx;
	long row = th_table_row(t);
	if (row < 0)
		return TH_ENOMEM;
	char buf[64];
	int32_t e = r->effective;
	th_table_set(t, (size_t)row, 0, r->version);
	th_table_setf(t, (size_t)row, 1, "%04d-%02d-%02d", (int)(e / 10000), (int)(e / 100 % 100),
	              (int)(e % 100));
	th_table_set_int(t, (size_t)row, 2, (int64_t)r->units);
	th_table_set_int(t, (size_t)row, 3, r->levels);
	th_table_set(t, (size_t)row, 4, r->root);
	if (r->loaded) {
		th_view_time(r->loaded, buf, sizeof buf);
		th_table_set(t, (size_t)row, 5, buf);
	}
	if (r->origin[0])
		th_table_set(t, (size_t)row, 6, r->origin);
	size_t len = 1;
	for (size_t i = 0; i < r->n_periods; i++)
		len += strlen(r->periods[i]) + 2;
	char *list = calloc(len, 1);
	if (!list)
		return TH_ENOMEM;
	for (size_t i = 0; i < r->n_periods; i++) {
		if (i)
			strcat(list, ", ");
		strcat(list, r->periods[i]);
	}
	if (r->n_periods)
		th_table_set(t, (size_t)row, 7, list);
	free(list);
	return 0;
}

int th_view_versions(th_source *src, th_doc **out, th_diag *diag)
{
	static const char *keys[VCOLS] = {"version", "effective", "units", "levels", "root", "loaded",
	                                  "origin", "periods"};
	static const char *titles[VCOLS] = {"Phiên bản", "Hiệu lực", "Số đơn vị", "Số cấp", "Gốc",
	                                    "Nạp lúc", "Nguồn", "Các kỳ gắn với phiên bản"};
	th_table *t = th_table_new(VCOLS);
	if (!t)
		return th_view_fail(diag, TH_ENOMEM, "out of memory");
	for (size_t c = 0; c < VCOLS; c++)
		th_table_column(t, c, keys[c], titles[c], NULL, c == 2 || c == 3);
	th_table_heads(t, TH_HEAD_KEY);
	int rc = th_source_hierarchies(src, vrow_cb, t);
	if (rc) {
		th_table_destroy(&t);
		return th_view_fail(diag, rc, "%s: %s", th_source_name(src), th_source_error(src));
	}
	if (!(*out = th_doc_of(t)))
		return th_view_fail(diag, TH_ENOMEM, "out of memory");
	return 0;
}

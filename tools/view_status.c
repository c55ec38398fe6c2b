/* view_status.c -- completeness per unit and the units that have not
 * reported, with their contacts (th_view.h). */
#include "view_private.h"

#include <string.h>

static void status_row(th_table *t, long row, const char *code, const char *name, const th_node *n)
{
	th_table_set(t, (size_t)row, 0, code);
	th_table_set(t, (size_t)row, 1, name);
	th_table_set_int(t, (size_t)row, 2, n->expected);
	th_table_set_int(t, (size_t)row, 3, n->reported);
	th_table_set_int(t, (size_t)row, 4, n->on_time);
	th_table_set_int(t, (size_t)row, 5, n->late);
	th_table_set_int(t, (size_t)row, 6, n->expected > n->reported ? n->expected - n->reported : 0);
	th_table_set_int(t, (size_t)row, 7, n->corrections);
}

static int status_cb(void *ctx, const th_unit *u, const th_node *n)
{
	th_table *t = ctx;
	long row = th_table_row(t);
	if (row < 0)
		return TH_ENOMEM;
	status_row(t, row, u->code, u->name, n);
	return 0;
}

static const char *or_null(const char *s)
{
	return s && *s ? s : NULL;
}

static int missing_cb(void *ctx, const th_unit *u, const char *parent_name)
{
	th_table *t = ctx;
	long row = th_table_row(t);
	if (row < 0)
		return TH_ENOMEM;
	th_table_set(t, (size_t)row, 0, u->code);
	th_table_set(t, (size_t)row, 1, u->name);
	th_table_set(t, (size_t)row, 2, u->parent_code);
	th_table_set(t, (size_t)row, 3, parent_name);
	th_table_set(t, (size_t)row, 4, or_null(u->person));
	th_table_set(t, (size_t)row, 5, or_null(u->phone));
	th_table_set(t, (size_t)row, 6, or_null(u->email));
	return 0;
}

/* A table of n columns keyed and titled by keys and titles, headed by the keys in CSV. */
static th_table *keyed_table(size_t n, const char *const *keys, const char *const *titles,
                             size_t first_numeric)
{
	th_table *t = th_table_new(n);
	for (size_t i = 0; t && i < n; i++)
		th_table_column(t, i, keys[i], titles[i], NULL, i >= first_numeric);
	if (t)
		th_table_heads(t, TH_HEAD_KEY);
	return t;
}

int th_view_status(th_source *src, const th_status_req *req, th_doc **out, th_diag *diag)
{
	static const char *const skeys[] = {"unit", "name", "expected", "reported", "on_time", "late",
	                                    "missing", "corrections"};
	static const char *const stitles[] = {"Mã", "Đơn vị", "Phải nộp", "Đã nộp", "Đúng hạn",
	                                      "Trễ hạn", "Chưa nộp", "Sửa đổi"};
	static const char *const mkeys[] = {"unit", "name", "parent", "parent_name", "person", "phone",
	                                    "email"};
	static const char *const mtitles[] = {"Mã", "Đơn vị chưa nộp", "Cấp trên", "Tên cấp trên",
	                                      "Người liên hệ", "Điện thoại", "Thư điện tử"};
	th_table *t = NULL, *m = NULL;
	th_doc *doc = NULL;
	th_source_unit top;
	uint32_t level = req->level;
	int rc;
	const th_def *d = th_view_def(src, req->appendix, req->period, diag);
	if (!d)
		return TH_EAPPENDIX;
	if ((rc = th_view_top(src, d, req->appendix, req->period, req->unit, &level, &top, diag)))
		return rc;
	t = keyed_table(8, skeys, stitles, 2);
	m = keyed_table(7, mkeys, mtitles, 7);
	doc = th_doc_new();
	if (!t || !m || !doc) {
		rc = th_view_fail(diag, TH_ENOMEM, "out of memory");
		goto out;
	}
	rc = th_source_level(src, d, req->appendix, req->period, level, req->unit, status_cb, t);
	if (rc == 0) {
		th_node tn;
		rc = th_source_node(src, d, req->appendix, req->period, top.code, &tn);
		long row = rc == 0 ? th_table_row(t) : -1;
		if (row >= 0) {
			char label[600];
			snprintf(label, sizeof label, "Tổng %s", top.name);
			status_row(t, row, top.code, label, &tn);
		}
		if (rc == 0)
			th_node_free(&tn);
	}
	if (rc == 0)
		rc = th_source_missing(src, req->appendix, req->period, top.code, missing_cb, m);
	if (rc != 0) {
		rc = th_view_fail(diag, rc, "reading completeness: %s", th_source_error(src));
		goto out;
	}
	th_table_add_title(t, "Tình hình nộp %s kỳ %s, cấp %u%s%s", req->appendix, req->period, level,
	                   req->unit ? " của " : "", req->unit ? top.name : "");
	th_table_add_title(m, "Đơn vị chưa nộp (%zu):", th_table_rows(m));
	th_table_set_empty(m, "(none)");
	int e = th_doc_field(doc, "appendix", req->appendix);
	if (!e)
		e = th_doc_field(doc, "period", req->period);
	if (!e) {
		e = th_doc_add(doc, "units", t);    /* takes t, also on failure */
		t = NULL;
	}
	if (!e) {
		e = th_doc_add(doc, "missing", m);
		m = NULL;
	}
	if (e) {
		rc = th_view_fail(diag, e, "out of memory");
		goto out;
	}
	*out = doc;
	return 0;
out:
	th_table_destroy(&t);
	th_table_destroy(&m);
	th_doc_destroy(&doc);
	return rc;
}

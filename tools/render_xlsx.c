/* render_xlsx.c -- a table as an .xlsx workbook of one sheet (th_render.h),
 * with libxlsxwriter when the build has it. */
#include "render_private.h"
#include "th_error.h"

#include <stdlib.h>
#ifdef TH_HAVE_XLSX
#include <xlsxwriter.h>

/* The number a cell stands for in a sheet; 0 when it is not a number there. */
static int cell_number(const th_cell *c, int numeric, double *out)
{
	switch (c->kind) {
	case TH_CELL_INT:
		*out = (double)c->v;
		return 1;
	case TH_CELL_DEC: {
		double p = 1;
		for (int i = 0; i < c->scale; i++)
			p *= 10;
		*out = (double)c->v / p;
		return 1;
	}
	case TH_CELL_RATIO:
		if (!c->den)
			return 0;
		*out = (double)th_ratio_tenths(c->v, c->den) / 10.0;
		return 1;
	case TH_CELL_TEXT:
		if (!numeric || !th_text_is_number(c->s))
			return 0;
		*out = strtod(c->s, NULL);
		return 1;
	default:
		return 0;
	}
}

int th_render_xlsx(const th_table *t, const th_render_opts *o, char *why, size_t cap)
{
	if (!o->path) {
		snprintf(why, cap, "--format xlsx needs -o FILE");
		return TH_EINVAL;
	}
	lxw_workbook *wb = workbook_new(o->path);
	if (!wb) {
		snprintf(why, cap, "cannot create %s", o->path);
		return TH_EIO;
	}
	size_t nc = th_table_cols(t), nr = th_table_rows(t);
	int keys = th_table_sheet_heads(t) == TH_HEAD_KEY;
	char buf[64];
	lxw_worksheet *ws = workbook_add_worksheet(wb, o->sheet ? o->sheet : "tonghop");
	lxw_format *bold = workbook_add_format(wb);
	format_set_bold(bold);
	for (size_t c = 0; c < nc; c++) {
		const char *head = keys ? th_table_key(t, c) : th_table_title(t, c);
		worksheet_write_string(ws, 0, (lxw_col_t)c, head, bold);
		/* a readable width: the widest cell, bounded */
		size_t w = th_table_numeric(t, c) ? 8 : th_render_width(head);
		for (size_t r = 0; r < nr; r++) {
			size_t x = th_render_width(th_cell_text(th_table_cell(t, r, c), 0, buf));
			if (x > w)
				w = x;
		}
		worksheet_set_column(ws, (lxw_col_t)c, (lxw_col_t)c, (double)(w > 60 ? 60 : w) + 2, NULL);
	}
	for (size_t r = 0; r < nr; r++)
		for (size_t c = 0; c < nc; c++) {
			const th_cell *cell = th_table_cell(t, r, c);
			const char *s = th_cell_text(cell, 0, buf);
			double num;
			if (!s)
				continue;
			if (cell_number(cell, th_table_numeric(t, c), &num))
				worksheet_write_number(ws, (lxw_row_t)(r + 1), (lxw_col_t)c, num, NULL);
			else
				worksheet_write_string(ws, (lxw_row_t)(r + 1), (lxw_col_t)c, s, NULL);
		}
	if (workbook_close(wb) != LXW_NO_ERROR) {
		snprintf(why, cap, "cannot write %s", o->path);
		return TH_EIO;
	}
	return 0;
}

#else

int th_render_xlsx(const th_table *t, const th_render_opts *o, char *why, size_t cap)
{
	(void)t;
	(void)o;
	snprintf(why, cap, "built without libxlsxwriter; use --format csv");
	return TH_EINVAL;
}

#endif

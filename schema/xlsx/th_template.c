/* th_template.c -- the fillable .xlsx template of an appendix (th_template.h;
 * the layout is schema/APPENDIX-FILES.md's, which th_xlsx.c reads back). */
#include "th_template.h"
#include "th_xlsx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xlsxwriter.h>

/* Rows of the data sheet (0-based). */
enum {
	R_TITLE = 0, R_UNIT, R_PERIOD, R_DEADLINE, R_APPENDIX, R_VERSION, R_ASOF, R_HINT,
	R_IDS = 9, R_HEAD, R_DATA
};

enum { K_STT, K_UNIT, K_NAME, K_COL };

typedef struct {
	int kind;
	size_t dc;        /* K_COL: definition column */
	double width;
} tcol;

typedef struct {
	lxw_format *title, *meta, *hint, *head, *id, *ident, *ident_left;
	lxw_format *f_int, *f_dec[10], *f_date, *f_text, *f_long, *f_list, *f_bool;
	lxw_format *i_title, *i_head, *i_cell;
} formats;

typedef struct {
	const th_def *d;
	const th_template_opts *o;
	th_diag *diag;
	lxw_workbook *wb;
	lxw_worksheet *ws, *help, *meta;
	formats f;
	tcol *cols;
	size_t n_cols;
	const char *const *units;
	size_t n_units;
	int multi;        /* a unit column */
	int many_rows;    /* the appendix has a row key */
	size_t *enum_at;  /* definition column -> column of its label list in the meta sheet */
	lxw_error err;
} tpl;

static const char *unit_name(const tpl *t, const char *code)
{
	const th_units *u = t->o->hierarchy;
	long i = u ? th_units_find(u, code) : -1;
	return i >= 0 ? th_units_at(u, (size_t)i)->name : NULL;
}

static void keep(tpl *t, lxw_error e)
{
	if (e != LXW_NO_ERROR && t->err == LXW_NO_ERROR)
		t->err = e;
}

static lxw_format *fmt(tpl *t, const char *num, int unlocked, int wrap)
{
	lxw_format *f = workbook_add_format(t->wb);
	format_set_border(f, LXW_BORDER_THIN);
	format_set_border_color(f, 0xA6A6A6);
	format_set_align(f, LXW_ALIGN_VERTICAL_TOP);
	if (num)
		format_set_num_format(f, num);
	if (unlocked)
		format_set_unlocked(f);
	if (wrap)
		format_set_text_wrap(f);
	return f;
}

static void make_formats(tpl *t)
{
	formats *f = &t->f;
	f->title = workbook_add_format(t->wb);
	format_set_bold(f->title);
	format_set_font_size(f->title, 13);
	f->meta = workbook_add_format(t->wb);
	format_set_font_size(f->meta, 11);
	f->hint = workbook_add_format(t->wb);
	format_set_italic(f->hint);
	format_set_font_color(f->hint, 0x595959);
	f->head = fmt(t, NULL, 0, 1);
	format_set_bold(f->head);
	format_set_align(f->head, LXW_ALIGN_CENTER);
	format_set_align(f->head, LXW_ALIGN_VERTICAL_CENTER);
	format_set_bg_color(f->head, 0xD9E1F2);
	f->id = workbook_add_format(t->wb);
	format_set_font_color(f->id, 0x808080);
	format_set_font_size(f->id, 8);
	f->ident = fmt(t, "@", 0, 0);
	format_set_bg_color(f->ident, 0xF2F2F2);
	format_set_align(f->ident, LXW_ALIGN_CENTER);
	f->ident_left = fmt(t, "@", 0, 1);
	format_set_bg_color(f->ident_left, 0xF2F2F2);
	f->f_int = fmt(t, "#,##0", 1, 0);
	for (int s = 0; s <= 9; s++) {
		char nf[24] = "#,##0";
		if (s) {
			strcat(nf, ".");
			for (int k = 0; k < s; k++)
				strcat(nf, "0");
		}
		f->f_dec[s] = fmt(t, nf, 1, 0);
	}
	f->f_date = fmt(t, "dd/mm/yyyy", 1, 0);
	format_set_align(f->f_date, LXW_ALIGN_CENTER);
	f->f_text = fmt(t, "@", 1, 0);
	f->f_long = fmt(t, "@", 1, 1);
	f->f_list = fmt(t, "@", 1, 1);
	f->f_bool = fmt(t, "@", 1, 0);
	format_set_align(f->f_bool, LXW_ALIGN_CENTER);
	f->i_title = workbook_add_format(t->wb);
	format_set_bold(f->i_title);
	format_set_font_size(f->i_title, 13);
	f->i_head = fmt(t, NULL, 0, 1);
	format_set_bold(f->i_head);
	format_set_bg_color(f->i_head, 0xD9E1F2);
	f->i_cell = fmt(t, NULL, 0, 1);
}

static lxw_format *cell_format(const tpl *t, const th_column *c)
{
	switch (c->type) {
	case TH_T_INT:
		return t->f.f_int;
	case TH_T_DEC:
		return t->f.f_dec[c->scale >= 0 && c->scale <= 9 ? c->scale : 0];
	case TH_T_DATE:
		return t->f.f_date;
	case TH_T_TEXT:
		return c->max_len > 200 ? t->f.f_long : t->f.f_text;
	case TH_T_BOOL:
		return t->f.f_bool;
	default:
		return t->f.f_list;
	}
}

static double col_width(const th_column *c)
{
	switch (c->type) {
	case TH_T_INT:
	case TH_T_DEC:
		return 15;
	case TH_T_DATE:
		return 13;
	case TH_T_BOOL:
		return 11;
	case TH_T_ENUM: {
		size_t w = 12;
		for (size_t i = 0; i < c->n_values; i++)
			if (th_utf8_width(c->values[i].title) > w)
				w = th_utf8_width(c->values[i].title);
		return w > 36 ? 36 : (double)w + 2;
	}
	default:
		return c->max_len > 1000 ? 42 : c->max_len > 100 ? 28 : 16;
	}
}

/* --- the data sheet's validations ----------------------------------------------------- */

static double scaled(int64_t v, int scale)
{
	double d = (double)v;
	for (int i = 0; i < scale; i++)
		d /= 10;
	return d;
}

static lxw_datetime ymd_dt(int64_t ymd)
{
	lxw_datetime dt = {(int)(ymd / 10000), (int)(ymd / 100 % 100), (int)(ymd % 100), 0, 0, 0};
	return dt;
}

/* "từ 0 đến 100", "từ 0 trở lên" ... */
static void range_text(const th_column *c, char *buf, size_t cap)
{
	char a[40], b[40];
	if (c->type == TH_T_DATE) {
		th_fmt_date((int32_t)c->min, 0, a);
		th_fmt_date((int32_t)c->max, 0, b);
	} else if (c->type == TH_T_DEC) {
		th_fmt_dec(c->min, c->scale, 1, a);
		th_fmt_dec(c->max, c->scale, 1, b);
	} else {
		th_fmt_int(c->min, a);
		th_fmt_int(c->max, b);
	}
	if (c->has_min && c->has_max)
		snprintf(buf, cap, "từ %s đến %s", a, b);
	else if (c->has_min)
		snprintf(buf, cap, "từ %s trở lên", a);
	else if (c->has_max)
		snprintf(buf, cap, "đến %s", b);
	else
		buf[0] = 0;
}

static void validate_column(tpl *t, size_t dc, lxw_col_t col, lxw_row_t first, lxw_row_t last)
{
	const th_column *c = &t->d->cols[dc];
	lxw_data_validation v;
	memset(&v, 0, sizeof v);
	char msg[240], range[96], formula[64];
	char *yesno[] = {"Có", "Không", NULL};
	range_text(c, range, sizeof range);
	const char *empty = c->required ? "Bắt buộc." : "Để trống nếu không có số liệu (khác 0).";
	v.show_input = LXW_VALIDATION_ON;
	v.show_error = LXW_VALIDATION_ON;
	v.error_type = LXW_VALIDATION_ERROR_TYPE_STOP;
	v.error_title = "Giá trị không hợp lệ";
	switch (c->type) {
	case TH_T_INT:
	case TH_T_DEC:
		v.validate = c->type == TH_T_INT ? LXW_VALIDATION_TYPE_INTEGER : LXW_VALIDATION_TYPE_DECIMAL;
		v.criteria = LXW_VALIDATION_CRITERIA_BETWEEN;
		v.minimum_number = c->has_min ? scaled(c->min, c->type == TH_T_DEC ? c->scale : 0) : -1e15;
		v.maximum_number = c->has_max ? scaled(c->max, c->type == TH_T_DEC ? c->scale : 0) : 1e15;
		v.input_title = c->type == TH_T_INT ? "Số nguyên" : "Số thập phân";
		if (c->type == TH_T_INT)
			snprintf(msg, sizeof msg, "Nhập số nguyên %s. %s", range, empty);
		else
			snprintf(msg, sizeof msg, "Nhập số, tối đa %d chữ số thập phân, %s. %s", c->scale,
			         range, empty);
		break;
	case TH_T_DATE:
		v.validate = LXW_VALIDATION_TYPE_DATE;
		v.criteria = LXW_VALIDATION_CRITERIA_BETWEEN;
		v.minimum_datetime = ymd_dt(c->has_min ? c->min : 19000101);
		v.maximum_datetime = ymd_dt(c->has_max ? c->max : 29991231);
		v.input_title = "Ngày (dd/mm/yyyy)";
		snprintf(msg, sizeof msg, "Nhập ngày dạng ngày/tháng/năm%s%s. %s", *range ? ", " : "",
		         range, empty);
		break;
	case TH_T_BOOL:
		v.validate = LXW_VALIDATION_TYPE_LIST;
		v.value_list = yesno;
		v.input_title = "Có / Không";
		snprintf(msg, sizeof msg, "Chọn Có hoặc Không. %s", empty);
		break;
	case TH_T_ENUM: {
		char rng[40];
		size_t at = t->enum_at[dc];
		lxw_rowcol_to_range_abs(rng, 1, (lxw_col_t)at, (lxw_row_t)c->n_values, (lxw_col_t)at);
		snprintf(formula, sizeof formula, "='%s'!%s", TH_XLSX_META_SHEET, rng);
		v.validate = LXW_VALIDATION_TYPE_LIST_FORMULA;
		v.value_formula = formula;
		v.input_title = "Chọn trong danh sách";
		snprintf(msg, sizeof msg, "Chọn một giá trị trong danh sách. %s", empty);
		break;
	}
	case TH_T_TEXT:
		v.validate = LXW_VALIDATION_TYPE_LENGTH;
		v.criteria = LXW_VALIDATION_CRITERIA_LESS_THAN_OR_EQUAL_TO;
		v.value_number = c->max_len && c->max_len < 32767 ? c->max_len : 32767;
		v.input_title = "Văn bản";
		snprintf(msg, sizeof msg, "Tối đa %u byte. %s", c->max_len ? c->max_len : 2000, empty);
		break;
	}
	v.input_message = msg;
	v.error_message = msg;
	keep(t, worksheet_data_validation_range(t->ws, first, col, last, col, &v));
}

/* --- the data sheet ---------------------------------------------------------------------- */

static void write_value(tpl *t, lxw_row_t row, lxw_col_t col, const th_column *c, const th_value *v)
{
	lxw_format *f = cell_format(t, c);
	char b[64];
	if (v->null)
		return;
	switch (c->type) {
	case TH_T_INT:
	case TH_T_DEC:
		if (v->i > (INT64_C(1) << 53) || v->i < -(INT64_C(1) << 53)) {
			/* beyond a double's exact integers: as text, which the reader takes */
			if (c->type == TH_T_INT)
				th_fmt_int(v->i, b);
			else
				th_fmt_dec(v->i, c->scale, 1, b);
			keep(t, worksheet_write_string(t->ws, row, col, b, f));
		} else {
			keep(t, worksheet_write_number(t->ws, row, col,
			                               scaled(v->i, c->type == TH_T_DEC ? c->scale : 0), f));
		}
		break;
	case TH_T_DATE: {
		lxw_datetime dt = ymd_dt(v->i);
		keep(t, worksheet_write_datetime(t->ws, row, col, &dt, f));
		break;
	}
	case TH_T_BOOL:
		keep(t, worksheet_write_string(t->ws, row, col, v->i ? "Có" : "Không", f));
		break;
	case TH_T_ENUM:
		if (v->i >= 0 && (size_t)v->i < c->n_values)
			keep(t, worksheet_write_string(t->ws, row, col, c->values[v->i].title, f));
		break;
	case TH_T_TEXT:
		keep(t, worksheet_write_string(t->ws, row, col, v->s ? v->s : "", f));
		break;
	}
}

static const th_report *filled_for(const tpl *t, const char *unit)
{
	for (size_t i = 0; i < t->o->n_filled; i++)
		if (strcmp(t->o->filled[i]->unit, unit) == 0)
			return t->o->filled[i];
	return NULL;
}

static void title_block(tpl *t, lxw_col_t last)
{
	const th_template_opts *o = t->o;
	const th_def *d = t->d;
	char b[600], dl[32];
	const char *nm = unit_name(t, o->unit);
	keep(t, worksheet_merge_range(t->ws, R_TITLE, 0, R_TITLE, last > 0 ? last : 1, d->title,
	                              t->f.title));
	keep(t, worksheet_set_row(t->ws, R_TITLE, 34, NULL));
	if (t->multi)
		snprintf(b, sizeof b, "Đơn vị lập báo cáo: %s%s%s (lập cho %zu đơn vị, mỗi đơn vị các dòng "
		         "có mã của mình)", o->unit, nm ? " - " : "", nm ? nm : "", t->n_units);
	else
		snprintf(b, sizeof b, "Đơn vị: %s%s%s", o->unit, nm ? " - " : "", nm ? nm : "");
	keep(t, worksheet_write_string(t->ws, R_UNIT, 0, b, t->f.meta));
	snprintf(b, sizeof b, "Kỳ báo cáo: %s", o->period);
	keep(t, worksheet_write_string(t->ws, R_PERIOD, 0, b, t->f.meta));
	if (o->deadline)
		snprintf(b, sizeof b, "Hạn nộp: %s", th_fmt_date(o->deadline, 0, dl));
	else
		snprintf(b, sizeof b, "Hạn nộp: theo thông báo của cơ quan tổng hợp");
	keep(t, worksheet_write_string(t->ws, R_DEADLINE, 0, b, t->f.meta));
	snprintf(b, sizeof b, "Phụ lục: %s", d->id);
	keep(t, worksheet_write_string(t->ws, R_APPENDIX, 0, b, t->f.meta));
	snprintf(b, sizeof b, "Phiên bản: %u", d->version);
	keep(t, worksheet_write_string(t->ws, R_VERSION, 0, b, t->f.meta));
	{
		/* the report's date (task statuses are derived from it): optional */
		size_t kc = 0;
		while (kc + 1 < t->n_cols && t->cols[kc].kind != K_COL)
			kc++;
		keep(t, worksheet_write_string(t->ws, R_ASOF, (lxw_col_t)kc, "Ngày báo cáo:", t->f.meta));
		keep(t, worksheet_write_blank(t->ws, R_ASOF, (lxw_col_t)(kc + 1), t->f.f_date));
		const th_report *r = t->n_units ? filled_for(t, t->units[0]) : NULL;
		if (r && r->as_of) {
			lxw_datetime dt = ymd_dt(r->as_of);
			keep(t, worksheet_write_datetime(t->ws, R_ASOF, (lxw_col_t)(kc + 1), &dt, t->f.f_date));
		}
		lxw_data_validation v;
		memset(&v, 0, sizeof v);
		v.validate = LXW_VALIDATION_TYPE_DATE;
		v.criteria = LXW_VALIDATION_CRITERIA_BETWEEN;
		v.minimum_datetime = ymd_dt(19000101);
		v.maximum_datetime = ymd_dt(29991231);
		v.input_title = "Ngày báo cáo";
		v.input_message = d->derive ? "Ngày số liệu được chốt (dd/mm/yyyy): tình trạng nhiệm vụ "
		                              "được tính theo ngày này."
		                            : "Ngày số liệu được chốt (dd/mm/yyyy), nếu có.";
		keep(t, worksheet_data_validation_cell(t->ws, R_ASOF, (lxw_col_t)(kc + 1), &v));
	}
	keep(t, worksheet_write_string(t->ws, R_HINT, 0,
	                               "Điền vào các ô nền trắng; ô để trống là không có số liệu (khác "
	                               "với số 0). Cách điền và cách gửi: xem trang «Hướng dẫn».",
	                               t->f.hint));
}

static void header_rows(tpl *t)
{
	double lines = 1;
	for (size_t i = 0; i < t->n_cols; i++) {
		const tcol *c = &t->cols[i];
		const char *id = c->kind == K_STT ? "stt" : c->kind == K_UNIT ? "unit"
		                 : c->kind == K_NAME ? "unit_name" : t->d->cols[c->dc].id;
		const char *title = c->kind == K_STT ? "STT" : c->kind == K_UNIT ? "Mã đơn vị"
		                    : c->kind == K_NAME ? "Tên đơn vị" : t->d->cols[c->dc].title;
		keep(t, worksheet_write_string(t->ws, R_IDS, (lxw_col_t)i, id, t->f.id));
		keep(t, worksheet_write_string(t->ws, R_HEAD, (lxw_col_t)i, title, t->f.head));
		keep(t, worksheet_set_column(t->ws, (lxw_col_t)i, (lxw_col_t)i, c->width, NULL));
		double l = (double)th_utf8_width(title) / (c->width * 0.95) + 1;
		if (l > lines)
			lines = l;
	}
	lxw_row_col_options hidden = {.hidden = 1};
	keep(t, worksheet_set_row_opt(t->ws, R_IDS, LXW_DEF_ROW_HEIGHT, NULL, &hidden));
	keep(t, worksheet_set_row(t->ws, R_HEAD, (lines > 9 ? 9 : (int)lines) * 15.0, NULL));
}

/* Rows to fill for unit u: the block it gets. */
static size_t block_rows(const tpl *t, const char *u)
{
	if (!t->many_rows)
		return 1;
	size_t n = t->o->rows ? t->o->rows : t->multi ? 10 : 50;
	const th_report *r = filled_for(t, u);
	if (r && r->n_rows > n)
		n = r->n_rows;
	if (n > t->d->max_rows)
		n = t->d->max_rows > 0 ? t->d->max_rows : 1;
	if (r && r->n_rows > n)
		n = r->n_rows;
	return n;
}

static int data_rows(tpl *t, lxw_row_t *last_row)
{
	lxw_row_t row = R_DATA;
	size_t stt = 0;
	for (size_t ui = 0; ui < t->n_units; ui++) {
		const char *u = t->units[ui];
		const char *nm = unit_name(t, u);
		const th_report *r = filled_for(t, u);
		size_t n = block_rows(t, u);
		for (size_t k = 0; k < n; k++, row++) {
			if (row >= LXW_ROW_MAX - 1)
				return th_diag_add(t->diag, TH_SEV_ERROR, TH_ETOOBIG, NULL, 0, 0, NULL,
				                   "the template would need more rows than a sheet has");
			stt++;
			for (size_t i = 0; i < t->n_cols; i++) {
				const tcol *c = &t->cols[i];
				if (c->kind == K_STT)
					keep(t, worksheet_write_number(t->ws, row, (lxw_col_t)i, (double)stt,
					                               t->f.ident));
				else if (c->kind == K_UNIT)
					keep(t, worksheet_write_string(t->ws, row, (lxw_col_t)i, u, t->f.ident));
				else if (c->kind == K_NAME)
					keep(t, worksheet_write_string(t->ws, row, (lxw_col_t)i, nm ? nm : "",
					                               t->f.ident_left));
				else if (r && k < r->n_rows)
					write_value(t, row, (lxw_col_t)i, &t->d->cols[c->dc],
					            th_report_cell(r, k, c->dc));
				if (c->kind == K_COL && (!r || k >= r->n_rows ||
				                         th_report_cell(r, k, c->dc)->null))
					keep(t, worksheet_write_blank(t->ws, row, (lxw_col_t)i,
					                              cell_format(t, &t->d->cols[c->dc])));
			}
		}
	}
	*last_row = row > R_DATA ? row - 1 : R_DATA;
	return TH_OK;
}

/* --- the instructions and the hidden record ----------------------------------------------- */

static const char *type_vn(const th_column *c)
{
	switch (c->type) {
	case TH_T_INT: return "số nguyên";
	case TH_T_DEC: return "số thập phân";
	case TH_T_DATE: return "ngày (dd/mm/yyyy)";
	case TH_T_BOOL: return "Có / Không";
	case TH_T_ENUM: return "chọn trong danh sách";
	default: return "văn bản";
	}
}

static void help_sheet(tpl *t)
{
	lxw_worksheet *h = t->help;
	const th_def *d = t->d;
	char b[1200], dl[32];
	lxw_row_t r = 0;
	keep(t, worksheet_set_column(h, 0, 0, 6, NULL));
	keep(t, worksheet_set_column(h, 1, 1, 60, NULL));
	keep(t, worksheet_set_column(h, 2, 2, 26, NULL));
	keep(t, worksheet_set_column(h, 3, 3, 20, NULL));
	keep(t, worksheet_set_column(h, 4, 4, 10, NULL));
	keep(t, worksheet_set_column(h, 5, 5, 50, NULL));
	worksheet_set_landscape(h);
	worksheet_set_paper(h, 9);
	worksheet_fit_to_pages(h, 1, 0);
	snprintf(b, sizeof b, "HƯỚNG DẪN ĐIỀN %s (phiên bản %u), kỳ %s", d->id, d->version,
	         t->o->period);
	keep(t, worksheet_write_string(h, r++, 0, b, t->f.i_title));
	keep(t, worksheet_write_string(h, r++, 0, d->title, t->f.meta));
	r++;
	const char *lines[16];
	size_t nl = 0;
	char l1[300], l2[300], l3[300], l9[300];
	snprintf(l1, sizeof l1, "Điền số liệu vào trang «%s», vào các ô nền trắng. Các ô nền xám "
	         "(tiêu đề, STT, mã và tên đơn vị) được khóa.", d->id);
	lines[nl++] = l1;
	if (t->multi)
		snprintf(l2, sizeof l2, "Tệp này dành cho %zu đơn vị: mỗi dòng thuộc đơn vị ghi ở cột «Mã "
		         "đơn vị». Đơn vị chưa điền số liệu thì để trống các dòng của đơn vị đó: không có "
		         "báo cáo nào được gửi cho đơn vị ấy.", t->n_units);
	else if (t->many_rows)
		snprintf(l2, sizeof l2, "Mỗi dòng là một mục (nhiệm vụ); các dòng không dùng thì để trống. "
		         "Cần thêm dòng: chèn dòng trong vùng dữ liệu.");
	else
		snprintf(l2, sizeof l2, "Điền một dòng: các số liệu của đơn vị.");
	lines[nl++] = l2;
	lines[nl++] = "Ô để trống nghĩa là không có số liệu; số liệu bằng không thì ghi 0. Khi tổng "
	              "hợp, ô trống không được tính là 0.";
	lines[nl++] = "Số liệu là của riêng đơn vị, không cộng các đơn vị cấp dưới: hệ thống tự tổng "
	              "hợp theo từng cấp.";
	lines[nl++] = "Số: nhập trực tiếp vào ô (ô đã định dạng số). Nếu nhập dạng chữ: 1.234 là một "
	              "nghìn hai trăm ba mươi tư, 1,5 là một phẩy năm.";
	lines[nl++] = "Ngày: nhập theo dạng ngày/tháng/năm, ví dụ 05/04/2021.";
	lines[nl++] = "Cột có danh sách: chọn một giá trị trong danh sách thả xuống.";
	lines[nl++] = "Không đổi tên các trang, không thêm, xóa hay đổi thứ tự cột, không sửa các ô "
	              "tiêu đề.";
	if (t->o->deadline) {
		snprintf(l3, sizeof l3, "Hạn nộp: %s.", th_fmt_date(t->o->deadline, 0, dl));
		lines[nl++] = l3;
	}
	snprintf(l9, sizeof l9, "Gửi: lưu tệp dạng Excel Workbook (.xlsx), rồi gửi bằng lệnh "
	         "«tonghop-publish send %s-%s.xlsx» hoặc chép tệp vào thư mục nhận của "
	         "tonghop-publish. Tệp được kiểm tra trước khi gửi; mỗi lỗi được báo theo ô, ví dụ "
	         "%s!D%d.", d->id, t->o->period, d->id, R_DATA + 1);
	lines[nl++] = l9;
	for (size_t i = 0; i < nl; i++, r++) {
		keep(t, worksheet_write_number(h, r, 0, (double)(i + 1), t->f.i_cell));
		keep(t, worksheet_merge_range(h, r, 1, r, 5, lines[i], t->f.i_cell));
		keep(t, worksheet_set_row(h, r, 31, NULL));
	}
	r++;
	for (size_t k = 0; k < d->n_rules; k++, r++) {
		snprintf(b, sizeof b, "Ràng buộc: %s", d->rules[k].title);
		keep(t, worksheet_merge_range(h, r, 1, r, 5, b, t->f.i_cell));
	}
	r++;
	static const char *heads[] = {"Cột", "Tiêu đề", "Mã cột", "Kiểu", "Bắt buộc", "Giá trị"};
	for (lxw_col_t c = 0; c < 6; c++)
		keep(t, worksheet_write_string(h, r, c, heads[c], t->f.i_head));
	r++;
	for (size_t i = 0; i < t->n_cols; i++) {
		if (t->cols[i].kind != K_COL)
			continue;
		const th_column *c = &d->cols[t->cols[i].dc];
		char letters[8], range[96];
		lxw_col_to_name(letters, (lxw_col_t)i, 0);
		range_text(c, range, sizeof range);
		if (c->type == TH_T_ENUM) {
			size_t o = 0;
			b[0] = 0;
			for (size_t k = 0; k < c->n_values && o + 120 < sizeof b; k++)
				o += (size_t)snprintf(b + o, sizeof b - o, "%s%s", k ? "; " : "",
				                      c->values[k].title);
		} else if (c->type == TH_T_DEC) {
			snprintf(b, sizeof b, "%d chữ số thập phân%s%s", c->scale, *range ? ", " : "", range);
		} else if (c->type == TH_T_TEXT) {
			snprintf(b, sizeof b, "tối đa %u byte", c->max_len ? c->max_len : 2000);
		} else {
			snprintf(b, sizeof b, "%s", range);
		}
		keep(t, worksheet_write_string(h, r, 0, letters, t->f.i_cell));
		keep(t, worksheet_write_string(h, r, 1, c->title, t->f.i_cell));
		keep(t, worksheet_write_string(h, r, 2, c->id, t->f.i_cell));
		keep(t, worksheet_write_string(h, r, 3, type_vn(c), t->f.i_cell));
		keep(t, worksheet_write_string(h, r, 4, c->required ? "có" : "", t->f.i_cell));
		keep(t, worksheet_write_string(h, r, 5, b, t->f.i_cell));
		r++;
	}
}

static int meta_sheet(tpl *t)
{
	lxw_worksheet *m = t->meta;
	const th_template_opts *o = t->o;
	char b[64];
	lxw_row_t r = 0;
	snprintf(b, sizeof b, "tonghop-template %d", TH_XLSX_TEMPLATE_FORMAT);
	keep(t, worksheet_write_string(m, r, 0, "format", NULL));
	keep(t, worksheet_write_string(m, r++, 1, b, NULL));
	keep(t, worksheet_write_string(m, r, 0, "appendix", NULL));
	keep(t, worksheet_write_string(m, r++, 1, t->d->id, NULL));
	snprintf(b, sizeof b, "%u", t->d->version);
	keep(t, worksheet_write_string(m, r, 0, "version", NULL));
	keep(t, worksheet_write_string(m, r++, 1, b, NULL));
	if (t->multi) {
		size_t len = 1;
		for (size_t i = 0; i < t->n_units; i++)
			len += strlen(t->units[i]) + 1;
		char *list = malloc(len);
		if (!list)
			return TH_ENOMEM;
		list[0] = 0;
		for (size_t i = 0; i < t->n_units; i++) {
			if (i)
				strcat(list, " ");
			strcat(list, t->units[i]);
		}
		keep(t, worksheet_write_string(m, r, 0, "filer", NULL));
		keep(t, worksheet_write_string(m, r++, 1, o->unit, NULL));
		keep(t, worksheet_write_string(m, r, 0, "units", NULL));
		keep(t, worksheet_write_string(m, r++, 1, list, NULL));
		free(list);
	} else {
		keep(t, worksheet_write_string(m, r, 0, "unit", NULL));
		keep(t, worksheet_write_string(m, r++, 1, o->unit, NULL));
	}
	keep(t, worksheet_write_string(m, r, 0, "period", NULL));
	keep(t, worksheet_write_string(m, r++, 1, o->period, NULL));
	keep(t, worksheet_write_string(m, r, 0, "sheet", NULL));
	keep(t, worksheet_write_string(m, r++, 1, t->d->id, NULL));
	if (o->deadline) {
		keep(t, worksheet_write_string(m, r, 0, "deadline", NULL));
		keep(t, worksheet_write_string(m, r++, 1, th_fmt_date(o->deadline, 1, b), NULL));
	}
	/* the enum label lists, one column each from D */
	size_t at = 3;
	for (size_t dc = 0; dc < t->d->n_cols; dc++) {
		const th_column *c = &t->d->cols[dc];
		if (c->type != TH_T_ENUM)
			continue;
		t->enum_at[dc] = at;
		keep(t, worksheet_write_string(m, 0, (lxw_col_t)at, c->id, NULL));
		for (size_t k = 0; k < c->n_values; k++)
			keep(t, worksheet_write_string(m, (lxw_row_t)(k + 1), (lxw_col_t)at,
			                               c->values[k].title, NULL));
		at++;
	}
	worksheet_hide(m);
	return TH_OK;
}

/* --- the whole workbook ---------------------------------------------------------------- */

static int check_opts(const th_def *d, const th_template_opts *o, th_diag *diag)
{
	if (!o || !o->period || !th_period_valid(o->period))
		return th_diag_add(diag, TH_SEV_ERROR, TH_EPERIOD, NULL, 0, 0, NULL,
		                   "period \"%s\" is not yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm",
		                   o && o->period ? o->period : "");
	if (!o->unit || !*o->unit || strlen(o->unit) > TH_CODE_MAX || strpbrk(o->unit, " \t"))
		return th_diag_add(diag, TH_SEV_ERROR, TH_EUNIT, NULL, 0, 0, NULL,
		                   "unit code \"%s\" is empty, too long or has blanks",
		                   o->unit ? o->unit : "");
	for (size_t i = 0; i < o->n_filled; i++) {
		const th_report *r = o->filled[i];
		int covered = o->n_units == 0 ? strcmp(r->unit, o->unit) == 0 : 0;
		for (size_t k = 0; k < o->n_units && !covered; k++)
			covered = strcmp(r->unit, o->units[k]) == 0;
		if (strcmp(r->appendix, d->id) != 0 || r->version != d->version || r->n_cols != d->n_cols ||
		    !covered)
			return th_diag_add(diag, TH_SEV_ERROR, TH_EINVAL, NULL, 0, 0, NULL,
			                   "filled report %s %s v%u is not one of this template's (%s v%u, "
			                   "units covered)", r->unit, r->appendix, r->version, d->id,
			                   d->version);
	}
	return TH_OK;
}

int th_template_write(const char *path, const th_def *d, const th_template_opts *o,
                      th_diag *diag)
{
	int rc = check_opts(d, o, diag);
	if (rc)
		return rc;
	tpl t = {0};
	t.d = d;
	t.o = o;
	t.diag = diag;
	t.units = o->n_units ? o->units : &o->unit;
	t.n_units = o->n_units ? o->n_units : 1;
	t.multi = !(t.n_units == 1 && strcmp(t.units[0], o->unit) == 0);
	t.many_rows = d->n_key > 0;
	t.cols = calloc(d->n_cols + 3, sizeof *t.cols);
	t.enum_at = calloc(d->n_cols ? d->n_cols : 1, sizeof *t.enum_at);
	char *tmp = NULL;
	if (!t.cols || !t.enum_at || asprintf(&tmp, "%s.tmp%ld", path, (long)getpid()) < 0) {
		tmp = NULL;
		rc = TH_ENOMEM;
		goto out;
	}
	if (t.many_rows || t.multi)
		t.cols[t.n_cols++] = (tcol){K_STT, 0, 6};
	if (t.multi) {
		t.cols[t.n_cols++] = (tcol){K_UNIT, 0, 11};
		t.cols[t.n_cols++] = (tcol){K_NAME, 0, 26};
	}
	for (size_t c = 0; c < d->n_cols; c++)
		t.cols[t.n_cols++] = (tcol){K_COL, c, col_width(&d->cols[c])};
	lxw_workbook_options wo = {.constant_memory = LXW_FALSE, .tmpdir = NULL};
	t.wb = workbook_new_opt(tmp, &wo);
	if (!t.wb) {
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot create the workbook");
		goto out;
	}
	lxw_doc_properties props = {.title = d->title, .subject = "tonghop template",
	                            .author = "tonghop", .comments = (char *)o->period};
	keep(&t, workbook_set_properties(t.wb, &props));
	make_formats(&t);
	t.ws = workbook_add_worksheet(t.wb, d->id);
	t.help = workbook_add_worksheet(t.wb, "Hướng dẫn");
	t.meta = workbook_add_worksheet(t.wb, TH_XLSX_META_SHEET);
	if (!t.ws || !t.help || !t.meta) {
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_EINVAL, path, 0, 0, NULL,
		                 "cannot add the sheets (appendix id \"%s\" is not a sheet name)", d->id);
		workbook_close(t.wb);
		remove(tmp);
		goto out;
	}
	if ((rc = meta_sheet(&t)))
		goto close;
	lxw_col_t last = (lxw_col_t)(t.n_cols ? t.n_cols - 1 : 0);
	title_block(&t, last);
	header_rows(&t);
	lxw_row_t last_row = R_DATA;
	if ((rc = data_rows(&t, &last_row)))
		goto close;
	for (size_t i = 0; i < t.n_cols; i++)
		if (t.cols[i].kind == K_COL)
			validate_column(&t, t.cols[i].dc, (lxw_col_t)i, R_DATA, last_row);
	lxw_col_t frozen = 0;
	while (frozen < t.n_cols && t.cols[frozen].kind != K_COL)
		frozen++;
	worksheet_freeze_panes(t.ws, R_DATA, frozen);
	worksheet_set_landscape(t.ws);
	worksheet_set_paper(t.ws, 9);   /* A4 */
	double width = 0;
	for (size_t i = 0; i < t.n_cols; i++)
		width += t.cols[i].width;
	if (width <= 220)
		worksheet_fit_to_pages(t.ws, 1, 0);   /* a narrow table prints one page wide */
	else if (frozen > 0)
		keep(&t, worksheet_repeat_columns(t.ws, 0, frozen - 1));
	keep(&t, worksheet_repeat_rows(t.ws, R_HEAD, R_HEAD));
	lxw_protection prot = {0};
	prot.format_columns = 1;
	prot.format_rows = 1;
	prot.insert_rows = 1;
	prot.delete_rows = 1;
	worksheet_protect(t.ws, NULL, &prot);
	worksheet_activate(t.ws);
	help_sheet(&t);
close:;
	lxw_error e = workbook_close(t.wb);
	if (rc == TH_OK && (e != LXW_NO_ERROR || t.err != LXW_NO_ERROR))
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot write the workbook: %s",
		                 lxw_strerror(e != LXW_NO_ERROR ? e : t.err));
	if (rc == TH_OK && rename(tmp, path) != 0)
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot write: %s",
		                 strerror(errno));
	if (rc)
		remove(tmp);
out:
	free(tmp);
	free(t.cols);
	free(t.enum_at);
	return rc;
}

/* --- who a workbook covers --------------------------------------------------------------- */

int th_template_units_for(const th_def *d, const th_units *u, const char *unit,
                          const char ***codes, size_t *n)
{
	long root = th_units_find(u, unit);
	if (root < 0)
		return TH_EUNIT;
	/* preorder walk of the subtree with an explicit stack (a deep chain must
	 * not exhaust the C stack) */
	size_t total = th_units_count(u);
	const char **v = malloc((total ? total : 1) * sizeof *v);
	size_t *stack = malloc((total ? total : 1) * sizeof *stack);
	size_t k = 0, top = 0;
	if (!v || !stack) {
		free(v);
		free(stack);
		return TH_ENOMEM;
	}
	stack[top++] = (size_t)root;
	while (top > 0) {
		const th_unit *un = th_units_at(u, stack[--top]);
		if (th_def_expects(d, un->kind, un->code))
			v[k++] = un->code;
		for (uint32_t c = un->n_children; c-- > 0;)
			stack[top++] = un->children[c];
	}
	free(stack);
	*codes = v;
	*n = k;
	return TH_OK;
}

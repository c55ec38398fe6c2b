/* test_xlsx.c -- the .xlsx reader (schema/xlsx/th_xlsx.c) and the entry point
 * that tells file kinds apart (th_input.c), on hand-made workbooks: every
 * kind of cell, both date systems, a sheet a unit made itself, every error
 * at once with SHEET!CELL and the column's title, and hostile files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "xlsxutil.h"
#include "th_csv.h"
#include "th_input.h"
#include "th_xlsx.h"

static th_defset *defs;

static th_defset *load_defs(void)
{
	if (!defs) {
		th_diag *d = th_diag_new();
		assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &defs, d), 0);
		th_diag_destroy(&d);
	}
	return defs;
}

typedef struct {
	int rc;
	th_report **r;
	size_t n;
	size_t errors;
	char msgs[32768];
} result;

static void read_into(const char *path, const th_read_opts *o, result *x)
{
	th_diag *d = th_diag_new();
	memset(x, 0, sizeof *x);
	x->rc = th_input_read_reports(path, load_defs(), o, &x->r, &x->n, d);
	for (size_t i = 0; i < th_diag_count(d); i++) {
		strncat(x->msgs, th_diag_text(d, i), sizeof x->msgs - strlen(x->msgs) - 2);
		strcat(x->msgs, "\n");
	}
	x->errors = th_diag_errors(d);
	th_diag_destroy(&d);
}

static void done(result *x)
{
	if (x->rc == 0)
		th_reports_free(&x->r, x->n);
}

static void expect(const result *x, const char *needle)
{
	if (!strstr(x->msgs, needle))
		print_message("expected \"%s\" in:\n%s", needle, x->msgs);
	assert_non_null(strstr(x->msgs, needle));
}

/* A workbook of one sheet (name, rows), shared strings (or NULL), written
 * under a fresh temporary directory; returns the file's path (static). */
static char *tmp;
static const char *book(const char *file, const char *sheet, const char *rows, const char *sst,
                        const char *numfmts, const char *xfs, int date1904)
{
	static char path[4096];
	if (!tmp)
		tmp = tu_tmpdir();
	snprintf(path, sizeof path, "%s/%s", tmp, file);
	xu_sheet s = {sheet, rows, NULL};
	xu_book b = {&s, 1, sst, numfmts, xfs, date1904, NULL, 0};
	assert_int_equal(xu_book_write(path, &b), 0);
	return path;
}

static long col(const char *app, const char *id)
{
	long c = th_def_column(th_defset_latest(load_defs(), app), id);
	assert_true(c >= 0);
	return c;
}

static const th_value *cell(const th_report *r, size_t row, const char *id)
{
	return th_report_cell(r, row, (size_t)col(r->appendix, id));
}

#define IS(ref, text) "<c r=\"" ref "\" t=\"inlineStr\"><is><t>" text "</t></is></c>"
#define N(ref, num) "<c r=\"" ref "\"><v>" num "</v></c>"
#define NS(ref, style, num) "<c r=\"" ref "\" s=\"" style "\"><v>" num "</v></c>"
#define S(ref, idx) "<c r=\"" ref "\" t=\"s\"><v>" idx "</v></c>"

#define PL3_META \
	"<row r=\"1\">" IS("A1", "Phụ lục: PL3") "</row>" \
	"<row r=\"2\">" IS("A2", "Đơn vị: SNV - Sở Nội vụ") "</row>" \
	"<row r=\"3\">" IS("A3", "Kỳ: 2021") "</row>"

/* --- cells ------------------------------------------------------------------------ */

static void shared_and_inline_strings(void **state)
{
	(void)state;
	/* header from the shared strings (one of them rich text with a phonetic
	 * run), data inline; the enum by its label split over two runs */
	const char *sst =
		"<si><t>linh_vuc</t></si>"
		"<si><t>ma_nhiem_vu</t></si>"
		"<si><r><t>so_nhiem_vu_</t></r><r><rPr><b/></rPr><t>ke_hoach</t></r>"
		"<rPh sb=\"0\" eb=\"1\"><t>XX</t></rPh></si>"
		"<si><t>da_hoan_thanh</t></si><si><t>dang_thuc_hien</t></si><si><t>chua_thuc_hien</t></si>"
		"<si><r><t xml:space=\"preserve\">Cải cách </t></r><r><rPr><i/></rPr><t>thể chế</t></r></si>";
	const char *rows = PL3_META
		"<row r=\"5\">" S("A5", "0") S("B5", "1") S("C5", "2") S("D5", "3") S("E5", "4") S("F5", "5")
		"</row>"
		"<row r=\"6\">" S("A6", "6") IS("B6", "NV_1") N("C6", "10") N("D6", "4") N("E6", "3")
		N("F6", "3") "</row>"
		"<row r=\"7\">" IS("A7", "chinh_quyen_dien_tu") IS("B7", "NV&lt;2&gt;") N("C7", "2")
		N("D7", "2") N("E7", "0") N("F7", "0") "</row>";
	result x;
	read_into(book("pl3.xlsx", "Sheet1", rows, sst, NULL, NULL, 0), NULL, &x);
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	assert_int_equal(x.n, 1);
	const th_report *r = x.r[0];
	assert_string_equal(r->unit, "SNV");
	assert_string_equal(r->period, "2021");
	assert_int_equal(r->n_rows, 2);
	assert_int_equal(cell(r, 0, "linh_vuc")->i, 1);   /* the_che */
	assert_int_equal(cell(r, 1, "linh_vuc")->i, 6);
	assert_string_equal(cell(r, 0, "ma_nhiem_vu")->s, "NV_1");
	assert_string_equal(cell(r, 1, "ma_nhiem_vu")->s, "NV<2>");
	assert_int_equal(cell(r, 0, "so_nhiem_vu_ke_hoach")->i, 10);
	assert_true(cell(r, 0, "noi_dung")->null);
	done(&x);
}

static void numbers_booleans_formulas(void **state)
{
	(void)state;
	const char *rows =
		"<row r=\"1\">" IS("A1", "Phụ lục: PL1") IS("C1", "Đơn vị: SNV") IS("E1", "Kỳ: 2021") "</row>"
		"<row r=\"3\">" IS("A3", "co_ke_hoach_cchc") IS("B3", "nhiem_vu_ke_hoach")
		IS("C3", "nhiem_vu_hoan_thanh") IS("D3", "diem_tu_danh_gia") IS("E3", "kinh_phi_cchc")
		IS("F3", "ap_dung_iso") IS("G3", "vbqppl_du_thao") IS("H3", "co_de_an_vi_tri_viec_lam")
		"</row>"
		"<row r=\"4\"><c r=\"A4\" t=\"b\"><v>1</v></c>"
		"<c r=\"B4\"><f>SUM(X1:X3)</f><v>12</v></c>"
		IS("C4", "1.234")
		N("D4", "91.230000000000004")
		N("E4", "1.5E8")
		"<c r=\"F4\" t=\"b\"><v>0</v></c>"
		"<c r=\"G4\" t=\"str\"><f>\"7\"</f><v>7</v></c>"
		IS("H4", "Có")
		"</row>";
	result x;
	read_into(book("pl1.xlsx", "Sheet1", rows, NULL, NULL, NULL, 0), NULL, &x);
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	const th_report *r = x.r[0];
	assert_int_equal(cell(r, 0, "co_ke_hoach_cchc")->i, 1);
	assert_int_equal(cell(r, 0, "nhiem_vu_ke_hoach")->i, 12);     /* the formula's cached value */
	assert_int_equal(cell(r, 0, "nhiem_vu_hoan_thanh")->i, 1234); /* Vietnamese thousands */
	assert_int_equal(cell(r, 0, "diem_tu_danh_gia")->i, 9123);    /* 15 significant digits */
	assert_int_equal(cell(r, 0, "kinh_phi_cchc")->i, 150000000);
	assert_int_equal(cell(r, 0, "ap_dung_iso")->i, 0);
	assert_int_equal(cell(r, 0, "vbqppl_du_thao")->i, 7);         /* a formula's string result */
	assert_int_equal(cell(r, 0, "co_de_an_vi_tri_viec_lam")->i, 1);
	assert_true(cell(r, 0, "ngay_ban_hanh_ke_hoach")->null);
	done(&x);
}

/* The same date three ways: a serial with a built-in date format (14), a
 * serial with a custom format, dd/mm/yyyy text; and another in its own
 * row of PL2. */
static void date_rows(int date1904, const char *serial, result *x)
{
	char rows[4096];
	snprintf(rows, sizeof rows,
	         "<row r=\"1\">" IS("A1", "#appendix: PL2") "</row>"
	         "<row r=\"2\">" IS("A2", "#unit: SNV") "</row>"
	         "<row r=\"3\">" IS("A3", "#period: 2021") "</row>"
	         "<row r=\"4\">" IS("A4", "ma_nhiem_vu") IS("B4", "noi_dung") IS("C4", "ngay_van_ban")
	         IS("D4", "han_hoan_thanh") IS("E4", "ngay_hoan_thanh") "</row>"
	         "<row r=\"5\">" IS("A5", "T1") IS("B5", "x") NS("C5", "1", "%s") NS("D5", "2", "%s")
	         IS("E5", "05/04/2021") "</row>",
	         serial, serial);
	read_into(book(date1904 ? "d1904.xlsx" : "d1900.xlsx", "PL2", rows, NULL,
	               "<numFmt numFmtId=\"164\" formatCode=\"[$-42A]dd/mm/yyyy;@\"/>",
	               "<xf numFmtId=\"0\"/><xf numFmtId=\"14\"/><xf numFmtId=\"164\"/>", date1904),
	          NULL, x);
}

static void dates_1900_system(void **state)
{
	(void)state;
	result x;
	date_rows(0, "44291", &x);
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	assert_int_equal(cell(x.r[0], 0, "ngay_van_ban")->i, 20210405);
	assert_int_equal(cell(x.r[0], 0, "han_hoan_thanh")->i, 20210405);
	assert_int_equal(cell(x.r[0], 0, "ngay_hoan_thanh")->i, 20210405);
	done(&x);
}

static void dates_1904_system(void **state)
{
	(void)state;
	result x;
	date_rows(1, "42829", &x);   /* 44291 - 1462 */
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	assert_int_equal(cell(x.r[0], 0, "ngay_van_ban")->i, 20210405);
	assert_int_equal(cell(x.r[0], 0, "han_hoan_thanh")->i, 20210405);
	done(&x);
	/* the same serial read in the other system is four years and a day off */
	date_rows(0, "42829", &x);
	assert_int_equal(x.rc, 0);
	assert_int_equal(cell(x.r[0], 0, "ngay_van_ban")->i, 20170404);
	done(&x);
}

static void date_1900_leap_bug(void **state)
{
	(void)state;
	result x;
	date_rows(0, "60", &x);
	assert_int_not_equal(x.rc, 0);
	expect(&x, "PL2!C5 (Ngày văn bản giao nhiệm vụ): the date is 29/02/1900, a day that does not "
	           "exist");
	done(&x);
	/* 61 is 1900-03-01: a real date, refused only by the column's range */
	date_rows(0, "61", &x);
	expect(&x, "date 19000301 outside the allowed range");
	done(&x);
	/* a time of day in a date column */
	date_rows(0, "44291.5", &x);
	expect(&x, "has a time of day");
	done(&x);
}

static void errors_and_formulas_without_values(void **state)
{
	(void)state;
	const char *rows =
		"<row r=\"1\">" IS("A1", "Phụ lục: PL1") IS("B1", "Đơn vị: SNV") IS("C1", "Kỳ: 2021") "</row>"
		"<row r=\"2\">" IS("A2", "nhiem_vu_ke_hoach") IS("B2", "nhiem_vu_hoan_thanh")
		IS("C2", "ho_so_truc_tuyen") "</row>"
		"<row r=\"3\"><c r=\"A3\" t=\"e\"><v>#N/A</v></c>"
		"<c r=\"B3\"><f>A3*2</f></c>"
		"<c r=\"C3\" t=\"b\"><v>1</v></c></row>";
	result x;
	read_into(book("err.xlsx", "PL1", rows, NULL, NULL, NULL, 0), NULL, &x);
	assert_int_not_equal(x.rc, 0);
	expect(&x, "err.xlsx: PL1!A3 (Số nhiệm vụ trong Kế hoạch CCHC năm 2021 của đơn vị (của riêng "
	           "đơn vị)): the cell shows the error #N/A");
	expect(&x, "PL1!B3 (Số nhiệm vụ trong Kế hoạch CCHC đã hoàn thành (của riêng đơn vị)): the "
	           "formula =A3*2 has no saved result");
	expect(&x, "PL1!C3 (Số hồ sơ tiếp nhận trực tuyến (của riêng đơn vị)): is TRUE, a yes/no value, not a number");
	assert_int_equal(x.errors, 3);
	done(&x);
}

/* Some writers prefix every element (x:row, x:c): the names are the same. */
static void prefixed_elements(void **state)
{
	(void)state;
	const char *sheet =
		"<?xml version=\"1.0\"?><x:worksheet xmlns:x=\"http://schemas.openxmlformats.org/"
		"spreadsheetml/2006/main\"><x:sheetData>"
		"<x:row r=\"1\"><x:c r=\"A1\" t=\"inlineStr\"><x:is><x:t>Phụ lục: PL3</x:t></x:is></x:c></x:row>"
		"<x:row r=\"2\"><x:c r=\"A2\" t=\"inlineStr\"><x:is><x:t>Đơn vị: SNV</x:t></x:is></x:c>"
		"<x:c r=\"B2\" t=\"inlineStr\"><x:is><x:t>Kỳ: 2021</x:t></x:is></x:c></x:row>"
		"<x:row r=\"3\"><x:c r=\"A3\" t=\"inlineStr\"><x:is><x:t>linh_vuc</x:t></x:is></x:c>"
		"<x:c r=\"B3\" t=\"inlineStr\"><x:is><x:t>ma_nhiem_vu</x:t></x:is></x:c>"
		"<x:c r=\"C3\" t=\"inlineStr\"><x:is><x:t>so_nhiem_vu_ke_hoach</x:t></x:is></x:c></x:row>"
		"<x:row r=\"4\"><x:c r=\"A4\" t=\"inlineStr\"><x:is><x:t>the_che</x:t></x:is></x:c>"
		"<x:c r=\"B4\" t=\"inlineStr\"><x:is><x:t>T1</x:t></x:is></x:c><x:c r=\"C4\"><x:v>3</x:v></x:c>"
		"</x:row></x:sheetData></x:worksheet>";
	xu_part p = {"xl/worksheets/sheet1.xml", sheet, 0};
	if (!tmp)
		tmp = tu_tmpdir();
	char path[4096];
	snprintf(path, sizeof path, "%s/prefixed.xlsx", tmp);
	xu_sheet s = {"PL3", "", NULL};
	xu_book b = {&s, 1, NULL, NULL, NULL, 0, &p, 1};
	assert_int_equal(xu_book_write(path, &b), 0);
	result x;
	read_into(path, NULL, &x);
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	assert_int_equal(cell(x.r[0], 0, "so_nhiem_vu_ke_hoach")->i, 3);
	done(&x);
}

/* --- a sheet a unit made itself ------------------------------------------------------ */

#define SELF_TITLE \
	"<row r=\"1\">" IS("A1", "ỦY BAN NHÂN DÂN THÀNH PHỐ HÀ NỘI") IS("F1", "CỘNG HÒA XÃ HỘI CHỦ NGHĨA " \
	"VIỆT NAM") "</row>" \
	"<row r=\"2\">" IS("A2", "SỞ NỘI VỤ") "</row>" \
	"<row r=\"4\">" IS("A4", "BÁO CÁO TỔNG HỢP KẾT QUẢ THỰC HIỆN NHIỆM VỤ CCHC NĂM 2021") "</row>" \
	"<row r=\"5\">" IS("A5", "Phu luc: PL3") IS("D5", "Don vi: SNV - Sở Nội vụ") \
	IS("G5", "Ky bao cao: 2021") "</row>" \
	"<row r=\"7\">" IS("A7", "STT") IS("B7", "Lĩnh vực cải cách hành chính") \
	IS("C7", "Mã nhiệm vụ trong Kế hoạch") IS("D7", "Nội dung nhiệm vụ") \
	IS("E7", "Số nhiệm vụ theo Kế hoạch") IS("F7", "Số nhiệm vụ đã hoàn thành") \
	IS("G7", "Số nhiệm vụ đang thực hiện") IS("H7", "SỐ NHIỆM VỤ CHƯA THỰC HIỆN") "</row>" \
	"<row r=\"8\">" IS("A8", "(1)") IS("B8", "(2)") IS("C8", "(3)") IS("D8", "(4)") IS("E8", "(5)") \
	IS("F8", "(6)") IS("G8", "(7)") IS("H8", "(8)") "</row>"

static void self_made_sheet(void **state)
{
	(void)state;
	const char *rows = SELF_TITLE
		"<row r=\"9\">" N("A9", "1") IS("B9", "Cải cách thể chế") IS("C9", "TC-01")
		IS("D9", "Rà soát văn bản") IS("E9", "1.234") IS("F9", "1.000") N("G9", "200")
		IS("H9", "34") "</row>"
		"<row r=\"10\">" N("A10", "2") "</row>"   /* a numbered row left empty */
		"<row r=\"11\">" N("A11", "3") IS("B11", "che_do_cong_vu") IS("C11", "CV-02")
		N("E11", "5") N("F11", "5") N("G11", "0") N("H11", "0") "</row>";
	result x;
	read_into(book("self.xlsx", "Báo cáo", rows, NULL, NULL, NULL, 0), NULL, &x);
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	const th_report *r = x.r[0];
	assert_string_equal(r->unit, "SNV");
	assert_string_equal(r->appendix, "PL3");
	assert_int_equal(r->n_rows, 2);
	assert_int_equal(cell(r, 0, "so_nhiem_vu_ke_hoach")->i, 1234);
	assert_int_equal(cell(r, 0, "da_hoan_thanh")->i, 1000);
	assert_int_equal(cell(r, 0, "chua_thuc_hien")->i, 34);
	assert_int_equal(cell(r, 1, "linh_vuc")->i, 4);
	done(&x);
}

static void every_error_at_once(void **state)
{
	(void)state;
	const char *rows = SELF_TITLE
		"<row r=\"9\">" N("A9", "1") IS("B9", "Cải cách thể chế") IS("C9", "TC-01")
		IS("E9", "abc") N("F9", "1") N("G9", "0") N("H9", "0") "</row>"
		"<row r=\"10\">" N("A10", "2") IS("B10", "Cải cách lạ") IS("C10", "TC-02") N("E10", "1")
		N("F10", "1") N("G10", "0") N("H10", "0") "</row>"
		"<row r=\"11\">" N("A11", "3") IS("B11", "the_che") IS("C11", "TC-03") N("E11", "1")
		IS("F11", "1,234") N("G11", "0") N("H11", "0") IS("J11", "ghi chú") "</row>"
		"<row r=\"12\">" N("A12", "4") IS("B12", "the_che") IS("C12", "TC-04") N("E12", "1")
		NS("F12", "1", "44291") N("G12", "0") N("H12", "0") "</row>"
		"<row r=\"13\">" N("A13", "5") IS("C13", "TC-05") N("E13", "2") N("F13", "1.5")
		"</row>";
	result x;
	read_into(book("PL3-2021.xlsx", "Báo cáo", rows, NULL, NULL,
	               "<xf numFmtId=\"0\"/><xf numFmtId=\"14\"/>", 0), NULL, &x);
	assert_int_not_equal(x.rc, 0);
	assert_null(x.r);
	expect(&x, "PL3-2021.xlsx: 'Báo cáo'!E9 (Số nhiệm vụ theo Kế hoạch): \"abc\" not a number");
	expect(&x, "'Báo cáo'!B10 (Lĩnh vực cải cách hành chính): \"Cải cách lạ\" is not one of its "
	           "values (choose from the list, e.g. \"Công tác chỉ đạo, điều hành\")");
	expect(&x, "'Báo cáo'!F11 (Số nhiệm vụ đã hoàn thành): \"1,234\" ambiguous");
	expect(&x, "'Báo cáo'!J11: a value in a column that has no header above it");
	expect(&x, "'Báo cáo'!F12 (Số nhiệm vụ đã hoàn thành): is a date (05/04/2021), not a number");
	expect(&x, "'Báo cáo'!F13 (Số nhiệm vụ đã hoàn thành): 1.5 is not a whole number");
	expect(&x, "'Báo cáo'!B13 (Lĩnh vực cải cách hành chính): a value is required");
	assert_int_equal(x.errors, 7);
	done(&x);
}

static void rule_and_duplicate_key_placed(void **state)
{
	(void)state;
	const char *rows = SELF_TITLE
		"<row r=\"9\">" N("A9", "1") IS("B9", "the_che") IS("C9", "TC-01") N("E9", "10")
		N("F9", "1") N("G9", "1") N("H9", "1") "</row>"
		"<row r=\"10\">" N("A10", "2") IS("B10", "the_che") IS("C10", "TC-02") "</row>"
		"<row r=\"11\">" N("A11", "3") IS("B11", "Cải cách thể chế") IS("C11", "TC-02") "</row>";
	result x;
	read_into(book("rule.xlsx", "PL3", rows, NULL, NULL, NULL, 0), NULL, &x);
	assert_int_not_equal(x.rc, 0);
	expect(&x, "rule.xlsx: PL3!E9 (Số nhiệm vụ theo Kế hoạch): rule can_doi_nhiem_vu");
	expect(&x, "10 on the left, 3 on the right");
	done(&x);
	rows = SELF_TITLE
		"<row r=\"10\">" N("A10", "2") IS("B10", "the_che") IS("C10", "TC-02") "</row>"
		"<row r=\"11\">" N("A11", "3") IS("B11", "Cải cách thể chế") IS("C11", "TC-02") "</row>";
	read_into(book("dup.xlsx", "PL3", rows, NULL, NULL, NULL, 0), NULL, &x);
	assert_int_not_equal(x.rc, 0);
	expect(&x, "PL3!B11 (Lĩnh vực cải cách hành chính): the same row key as row 10");
	done(&x);
}

static void unit_column_one_report_per_unit(void **state)
{
	(void)state;
	const char *rows =
		"<row r=\"1\">" IS("A1", "Phụ lục: PL1") IS("C1", "Kỳ: 2021") "</row>"
		"<row r=\"2\">" IS("A2", "STT") IS("B2", "Mã đơn vị") IS("C2", "Tên đơn vị")
		IS("D2", "nhiem_vu_ke_hoach") "</row>"
		"<row r=\"3\">" N("A3", "1") IS("B3", "00001") IS("C3", "Phường Phúc Xá") N("D3", "5") "</row>"
		"<row r=\"4\">" N("A4", "2") IS("B4", "00004") IS("C4", "Phường Trúc Bạch") "</row>"
		"<row r=\"5\">" N("A5", "3") IS("B5", "00006") IS("C5", "Phường Vĩnh Phúc") N("D5", "7") "</row>";
	result x;
	read_into(book("units.xlsx", "PL1", rows, NULL, NULL, NULL, 0), NULL, &x);
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	assert_int_equal(x.n, 2);   /* the unit with nothing filled gets no report */
	assert_string_equal(x.r[0]->unit, "00001");
	assert_string_equal(x.r[1]->unit, "00006");
	assert_int_equal(cell(x.r[1], 0, "nhiem_vu_ke_hoach")->i, 7);
	done(&x);
	/* one unit picked; the single-report call refuses the whole */
	th_read_opts o = {.unit = "00006"};
	read_into(book("units.xlsx", "PL1", rows, NULL, NULL, NULL, 0), &o, &x);
	assert_int_equal(x.rc, 0);
	assert_int_equal(x.n, 1);
	assert_string_equal(x.r[0]->unit, "00006");
	done(&x);
	th_diag *d = th_diag_new();
	th_report *one = NULL;
	assert_int_not_equal(th_input_read_report(book("units.xlsx", "PL1", rows, NULL, NULL, NULL, 0),
	                                          load_defs(), NULL, &one, d), 0);
	assert_non_null(strstr(th_diag_text(d, 0), "holds the reports of 2 units (00001, 00006)"));
	th_diag_destroy(&d);
	/* a unit code typed as a number lost its zeros */
	rows = "<row r=\"1\">" IS("A1", "Phụ lục: PL1") IS("C1", "Kỳ: 2021") "</row>"
	       "<row r=\"2\">" IS("B2", "Mã đơn vị") IS("D2", "nhiem_vu_ke_hoach") "</row>"
	       "<row r=\"3\">" N("B3", "1") N("D3", "5") "</row>";
	read_into(book("units2.xlsx", "PL1", rows, NULL, NULL, NULL, 0), NULL, &x);
	expect(&x, "PL1!B3 (Mã đơn vị): unit code 1 is a number");
	done(&x);
}

/* --- the template's hidden sheet and the choice of sheet -------------------------------- */

#define META_ROWS(unit) \
	"<row r=\"1\">" IS("A1", "format") IS("B1", "tonghop-template 1") "</row>" \
	"<row r=\"2\">" IS("A2", "appendix") IS("B2", "PL3") "</row>" \
	"<row r=\"3\">" IS("A3", "version") IS("B3", "1") "</row>" \
	"<row r=\"4\">" IS("A4", "unit") IS("B4", unit) "</row>" \
	"<row r=\"5\">" IS("A5", "period") IS("B5", "2021") "</row>" \
	"<row r=\"6\">" IS("A6", "sheet") IS("B6", "PL3") "</row>"

#define PL3_DATA \
	"<row r=\"4\">" IS("A4", "linh_vuc") IS("B4", "ma_nhiem_vu") "</row>" \
	"<row r=\"5\">" IS("A5", "the_che") IS("B5", "T1") "</row>"

static const char *two_sheets(const char *file, const char *meta, const char *data,
                              const char *data_name)
{
	static char path[4096];
	if (!tmp)
		tmp = tu_tmpdir();
	snprintf(path, sizeof path, "%s/%s", tmp, file);
	xu_sheet s[3] = {{"Ghi chú", "<row r=\"1\">" IS("A1", "Ghi chú của đơn vị") "</row>", NULL},
	                 {data_name, data, NULL},
	                 {TH_XLSX_META_SHEET, meta, "hidden"}};
	xu_book b = {s, meta ? 3 : 2, NULL, NULL, NULL, 0, NULL, 0};
	assert_int_equal(xu_book_write(path, &b), 0);
	return path;
}

static void hidden_sheet_metadata(void **state)
{
	(void)state;
	result x;
	read_into(two_sheets("meta.xlsx", META_ROWS("SNV"), PL3_DATA, "PL3"), NULL, &x);
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	assert_string_equal(x.r[0]->unit, "SNV");
	assert_string_equal(x.r[0]->period, "2021");
	done(&x);
	/* a cell that says otherwise */
	read_into(two_sheets("meta2.xlsx", META_ROWS("SNV"),
	                     "<row r=\"1\">" IS("A1", "Đơn vị: STP") "</row>" PL3_DATA, "PL3"), NULL, &x);
	assert_int_not_equal(x.rc, 0);
	expect(&x, "meta2.xlsx: PL3!A1: the sheet says unit STP but the workbook's own record "
	           "(_tonghop!B4) says SNV");
	done(&x);
	/* the data sheet renamed */
	read_into(two_sheets("meta3.xlsx", META_ROWS("SNV"), PL3_DATA, "Số liệu"), NULL, &x);
	expect(&x, "names the data sheet \"PL3\", which is not in the workbook");
	done(&x);
	/* asked for another unit than the record's */
	th_read_opts o = {.unit = "STP"};
	read_into(two_sheets("meta.xlsx", META_ROWS("SNV"), PL3_DATA, "PL3"), &o, &x);
	expect(&x, "_tonghop!B4: the file says unit SNV but STP was asked for");
	done(&x);
}

static void first_visible_sheet_with_a_header(void **state)
{
	(void)state;
	result x;
	/* no record: the notes sheet has no header, the second one has */
	read_into(two_sheets("choice.xlsx", NULL, PL3_META PL3_DATA, "Số liệu"), NULL, &x);
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	assert_int_equal(x.r[0]->n_rows, 1);
	done(&x);
	/* no sheet has one */
	read_into(two_sheets("none.xlsx", NULL, PL3_META "<row r=\"6\">" IS("A6", "x") "</row>",
	                     "Số liệu"), NULL, &x);
	assert_int_not_equal(x.rc, 0);
	expect(&x, "none of the sheets \"Ghi chú\", \"Số liệu\" has a header row");
	done(&x);
}

/* --- files that are not workbooks ---------------------------------------------------- */

static void legacy_xls_refused_by_name(void **state)
{
	(void)state;
	if (!tmp)
		tmp = tu_tmpdir();
	char path[4096];
	snprintf(path, sizeof path, "%s/PL1-2021.xls", tmp);
	unsigned char ole[512] = {0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1};
	assert_int_equal(tu_write_file(path, ole, sizeof ole), 0);
	result x;
	read_into(path, NULL, &x);
	assert_int_not_equal(x.rc, 0);
	expect(&x, "is an Excel 97-2003 .xls file");
	expect(&x, "libreoffice --headless --convert-to xlsx");
	assert_null(strstr(x.msgs, "CP1258"));
	done(&x);
	/* the CSV reader alone says the same, not "not UTF-8" */
	th_diag *d = th_diag_new();
	th_report *r = NULL;
	assert_int_not_equal(th_csv_read_report(path, load_defs(), NULL, &r, d), 0);
	assert_non_null(strstr(th_diag_text(d, 0), ".xls file"));
	th_diag_destroy(&d);
}

static void xlsx_never_called_not_utf8(void **state)
{
	(void)state;
	const char *path = book("PL3-2021.xlsx", "PL3", PL3_META PL3_DATA, NULL, NULL, NULL, 0);
	/* the CSV reader (what the agent called before) names the kind */
	th_diag *d = th_diag_new();
	th_report *r = NULL;
	assert_int_not_equal(th_csv_read_report(path, load_defs(), NULL, &r, d), 0);
	assert_null(strstr(th_diag_text(d, 0), "CP1258"));
	assert_non_null(strstr(th_diag_text(d, 0), "is an Excel workbook (.xlsx"));
	th_diag_destroy(&d);
	/* and the entry point reads it */
	result x;
	read_into(path, NULL, &x);
	assert_int_equal(x.rc, 0);
	done(&x);
}

static void other_zip_formats_named(void **state)
{
	(void)state;
	if (!tmp)
		tmp = tu_tmpdir();
	char path[4096];
	snprintf(path, sizeof path, "%s/b.ods", tmp);
	xu_part ods[] = {{"mimetype", "application/vnd.oasis.opendocument.spreadsheet", 0},
	                 {"content.xml", "<office:document-content/>", 0}};
	assert_int_equal(xu_zip(path, ods, 2), 0);
	result x;
	read_into(path, NULL, &x);
	expect(&x, "is an OpenDocument spreadsheet (.ods)");
	snprintf(path, sizeof path, "%s/c.docx", tmp);
	xu_part docx[] = {{"word/document.xml", "<w:document/>", 0}};
	assert_int_equal(xu_zip(path, docx, 1), 0);
	read_into(path, NULL, &x);
	expect(&x, "is a Word document");
	snprintf(path, sizeof path, "%s/d.pdf", tmp);
	assert_int_equal(tu_write_file(path, "%PDF-1.4\n", 9), 0);
	read_into(path, NULL, &x);
	expect(&x, "is a PDF document");
}

static void csv_through_the_same_entry(void **state)
{
	(void)state;
	if (!tmp)
		tmp = tu_tmpdir();
	char path[4096];
	snprintf(path, sizeof path, "%s/PL3.csv", tmp);
	const char *csv = "#appendix: PL3\n#unit: SNV\n#period: 2021\nlinh_vuc,ma_nhiem_vu\nthe_che,T1\n";
	assert_int_equal(tu_write_file(path, csv, strlen(csv)), 0);
	result x;
	read_into(path, NULL, &x);
	assert_int_equal(x.rc, 0);
	/* the same cells as the workbook give the same report */
	result y;
	read_into(book("same.xlsx", "PL3", PL3_META PL3_DATA, NULL, NULL, NULL, 0), NULL, &y);
	assert_int_equal(y.rc, 0);
	const th_def *d = th_defset_get(defs, "PL3", 1);
	uint8_t h1[TH_HASH_LEN], h2[TH_HASH_LEN];
	assert_int_equal(th_report_hash(x.r[0], d, h1), 0);
	assert_int_equal(th_report_hash(y.r[0], d, h2), 0);
	assert_memory_equal(h1, h2, TH_HASH_LEN);
	done(&x);
	done(&y);
}

/* --- hostile files ------------------------------------------------------------------------ */

static const char *hostile(const char *file, const xu_part *extra, size_t n_extra,
                           const char *rows, const char *sst)
{
	static char path[4096];
	if (!tmp)
		tmp = tu_tmpdir();
	snprintf(path, sizeof path, "%s/%s", tmp, file);
	xu_sheet s = {"PL3", rows ? rows : PL3_META PL3_DATA, NULL};
	xu_book b = {&s, 1, sst, NULL, NULL, 0, extra, n_extra};
	assert_int_equal(xu_book_write(path, &b), 0);
	return path;
}

static void refused(const char *path, const char *needle)
{
	result x;
	read_into(path, NULL, &x);
	assert_int_not_equal(x.rc, 0);
	expect(&x, needle);
	done(&x);
}

static void zip_bomb_refused(void **state)
{
	(void)state;
	/* a worksheet that inflates past the bound: 129 MiB of blanks inside
	 * <sheetData>, a few hundred KiB compressed */
	size_t big = (size_t)TH_XLSX_MAX_PART + (1u << 20);
	const char *head = "<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">"
	                   "<sheetData>";
	char *x = malloc(big + 200);
	assert_non_null(x);
	size_t hl = strlen(head);
	memcpy(x, head, hl);
	memset(x + hl, ' ', big);
	strcpy(x + hl + big, "</sheetData></worksheet>");
	xu_part p = {"xl/worksheets/sheet1.xml", x, 0};
	const char *path = hostile("bomb.xlsx", &p, 1, NULL, NULL);
	refused(path, "xl/worksheets/sheet1.xml: declares 129 MiB uncompressed, more than the 128 MiB");
	/* the same with the declared sizes forged small: the real inflated bytes count */
	unsigned char from[4], to[4] = {0x10, 0, 0, 0};
	uint32_t sz = (uint32_t)strlen(x);
	for (int i = 0; i < 4; i++)
		from[i] = (unsigned char)(sz >> (8 * i));
	assert_int_equal(xu_patch(path, from, to, 4), 2);   /* the local and the central header */
	result r;
	read_into(path, NULL, &r);
	assert_int_not_equal(r.rc, 0);
	assert_null(strstr(r.msgs, "declares"));
	if (!strstr(r.msgs, "inflates to more than 128 MiB") && !strstr(r.msgs, "cannot be inflated"))
		print_message("%s", r.msgs);
	assert_true(strstr(r.msgs, "inflates to more than 128 MiB") || strstr(r.msgs, "cannot be inflated"));
	done(&r);
	free(x);
}

static void too_many_parts_refused(void **state)
{
	(void)state;
	size_t n = TH_XLSX_MAX_PARTS + 1;
	xu_part *p = calloc(n, sizeof *p);
	char (*names)[32] = calloc(n, 32);
	assert_non_null(p);
	assert_non_null(names);
	for (size_t i = 0; i < n; i++) {
		snprintf(names[i], 32, "xl/media/p%zu.bin", i);
		p[i] = (xu_part){names[i], "x", 1};
	}
	refused(hostile("parts.xlsx", p, n, NULL, NULL), "has 10007 parts, more than the 10000 allowed");
	free(p);
	free(names);
}

static void odd_part_names_refused(void **state)
{
	(void)state;
	xu_part up = {"xl/../../etc/passwd", "x", 1};
	refused(hostile("up.xlsx", &up, 1, NULL, NULL),
	        "part name \"xl/../../etc/passwd\" climbs out of the archive");
	xu_part abs = {"/etc/cron.d/x", "x", 1};
	refused(hostile("abs.xlsx", &abs, 1, NULL, NULL), "part name \"/etc/cron.d/x\" is an absolute path");
	xu_part bs = {"xl\\worksheets\\x.xml", "x", 1};
	refused(hostile("bs.xlsx", &bs, 1, NULL, NULL), "holds a backslash");
	xu_part nul = {"xl/worksheets/sheet1.xmlQevil", "x", 1};
	const char *path = hostile("nul.xlsx", &nul, 1, NULL, NULL);
	assert_int_equal(xu_patch(path, "xmlQevil", "xml\0evil", 8), 2);
	refused(path, "part name \"xl/worksheets/sheet1.xml\\x00evil\" holds a NUL byte");
}

static void dtd_and_entities_refused(void **state)
{
	(void)state;
	/* a billion laughs in the shared strings: refused at the DOCTYPE */
	const char *lol =
		"<?xml version=\"1.0\"?>\n<!DOCTYPE sst [<!ENTITY a \"aaaaaaaaaa\">"
		"<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">"
		"<!ENTITY d \"&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;\"><!ENTITY e \"&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;\">"
		"<!ENTITY f \"&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;\"><!ENTITY g \"&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;\">]>"
		"<sst xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><si><t>&g;</t></si></sst>";
	xu_part p = {"xl/sharedStrings.xml", lol, 0};
	refused(hostile("lol.xlsx", &p, 1, PL3_META PL3_DATA, "<si><t>x</t></si>"),
	        "xl/sharedStrings.xml: has a document type declaration (<!DOCTYPE sst>)");
	/* an external entity in the workbook */
	const char *xxe = "<?xml version=\"1.0\"?><!DOCTYPE w [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>"
	                  "<workbook><sheets/></workbook>";
	xu_part q = {"xl/workbook.xml", xxe, 0};
	refused(hostile("xxe.xlsx", &q, 1, NULL, NULL), "xl/workbook.xml: has a document type declaration");
}

static void huge_shared_string_tables_refused(void **state)
{
	(void)state;
	/* more strings than allowed */
	size_t n = TH_XLSX_MAX_STRINGS + 1;
	char *sst = malloc(n * 9 + 1);
	assert_non_null(sst);
	for (size_t i = 0; i < n; i++)
		memcpy(sst + i * 9, "<si></si>", 9);
	sst[n * 9] = 0;
	refused(hostile("sstn.xlsx", NULL, 0, NULL, sst), "more than 1000000 shared strings: refused");
	free(sst);
	/* more bytes than allowed: 65 strings of 1,000,000 bytes */
	size_t each = 1000000, k = (TH_XLSX_MAX_STRING_BYTES / each) + 1;
	sst = malloc(k * (each + 16) + 1);
	assert_non_null(sst);
	size_t o = 0;
	for (size_t i = 0; i < k; i++) {
		memcpy(sst + o, "<si><t>", 7);
		o += 7;
		memset(sst + o, 'a', each);
		o += each;
		memcpy(sst + o, "</t></si>", 9);
		o += 9;
	}
	sst[o] = 0;
	refused(hostile("sstb.xlsx", NULL, 0, NULL, sst), "more than 64 MiB of shared strings: refused");
	/* one string over the cell bound */
	memcpy(sst, "<si><t>", 7);
	memset(sst + 7, 'b', TH_XLSX_MAX_CELL + 1);
	strcpy(sst + 7 + TH_XLSX_MAX_CELL + 1, "</t></si>");
	refused(hostile("sst1.xlsx", NULL, 0, NULL, sst), "shared string 0 is longer than 1 MiB");
	free(sst);
}

static void cells_out_of_range_refused(void **state)
{
	(void)state;
	refused(hostile("xfe.xlsx", NULL, 0, PL3_META "<row r=\"4\">" IS("XFE4", "x") "</row>", NULL),
	        "PL3!4:4: cell XFE4 is beyond XFD1048576");
	refused(hostile("row.xlsx", NULL, 0, PL3_META "<row r=\"1048577\">" IS("A1048577", "x") "</row>",
	                NULL),
	        "row 1048577 is beyond row 1048576");
	refused(hostile("order.xlsx", NULL, 0, PL3_META "<row r=\"2\">" IS("A2", "x") "</row>", NULL),
	        "rows are out of order (row 2 after row 3)");
	refused(hostile("corder.xlsx", NULL, 0,
	                PL3_META "<row r=\"4\">" IS("B4", "x") IS("A4", "y") "</row>", NULL),
	        "PL3!A4: cells of the row are out of order");
	refused(hostile("wrongrow.xlsx", NULL, 0, PL3_META "<row r=\"4\">" IS("A5", "x") "</row>", NULL),
	        "cell A5 is written inside row 4");
	refused(hostile("sref.xlsx", NULL, 0, PL3_META "<row r=\"4\">" S("A4", "7") "</row>",
	                "<si><t>x</t></si>"),
	        "PL3!A4: refers to shared string \"7\" of 1");
}

static void bad_text_refused(void **state)
{
	(void)state;
	/* bytes that are not UTF-8: the XML parser refuses the part */
	refused(hostile("bytes.xlsx", NULL, 0, PL3_META PL3_DATA
	                "<row r=\"6\">" IS("A6", "the_che") IS("B6", "T\xff\xfe") "</row>", NULL),
	        "xl/worksheets/sheet1.xml: XML error at line");
	/* a control character written as an OOXML escape: placed at its cell */
	refused(hostile("ctl.xlsx", NULL, 0, PL3_META PL3_DATA
	                "<row r=\"6\">" IS("A6", "the_che") IS("B6", "T_x0001_2") "</row>", NULL),
	        "PL3!B6 (Mã nhiệm vụ trong Kế hoạch): the text is not valid UTF-8 or holds a control "
	        "character");
	/* deep nesting */
	char deep[2000] = "<row r=\"6\"><c r=\"A6\" t=\"inlineStr\"><is>";
	for (int i = 0; i < 70; i++)
		strcat(deep, "<r>");
	strcat(deep, "</is></c></row>");
	refused(hostile("deep.xlsx", NULL, 0, deep, NULL), "elements nested more than 64 deep");
	/* an escape of an ordinary character is just that character */
	result x;
	read_into(hostile("esc.xlsx", NULL, 0, PL3_META PL3_DATA
	                  "<row r=\"6\">" IS("A6", "the_che") IS("B6", "T_x005F_2_x0041_") "</row>", NULL),
	          NULL, &x);
	if (x.rc)
		print_message("%s", x.msgs);
	assert_int_equal(x.rc, 0);
	assert_string_equal(cell(x.r[0], 1, "ma_nhiem_vu")->s, "T_2A");
	done(&x);
}

static void not_a_zip_or_broken(void **state)
{
	(void)state;
	if (!tmp)
		tmp = tu_tmpdir();
	char path[4096];
	snprintf(path, sizeof path, "%s/trunc.xlsx", tmp);
	const char *good = book("good.xlsx", "PL3", PL3_META PL3_DATA, NULL, NULL, NULL, 0);
	size_t len;
	char *d = tu_read_file(good, &len);
	assert_non_null(d);
	assert_int_equal(tu_write_file(path, d, len / 2), 0);   /* cut in half */
	free(d);
	refused(path, "is not a readable ZIP archive");
}

static void teardown_all(void)
{
	tu_rmrf(tmp);
	tmp = NULL;
	th_defset_destroy(&defs);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(shared_and_inline_strings),
		cmocka_unit_test(numbers_booleans_formulas),
		cmocka_unit_test(dates_1900_system),
		cmocka_unit_test(dates_1904_system),
		cmocka_unit_test(date_1900_leap_bug),
		cmocka_unit_test(errors_and_formulas_without_values),
		cmocka_unit_test(prefixed_elements),
		cmocka_unit_test(self_made_sheet),
		cmocka_unit_test(every_error_at_once),
		cmocka_unit_test(rule_and_duplicate_key_placed),
		cmocka_unit_test(unit_column_one_report_per_unit),
		cmocka_unit_test(hidden_sheet_metadata),
		cmocka_unit_test(first_visible_sheet_with_a_header),
		cmocka_unit_test(legacy_xls_refused_by_name),
		cmocka_unit_test(xlsx_never_called_not_utf8),
		cmocka_unit_test(other_zip_formats_named),
		cmocka_unit_test(csv_through_the_same_entry),
		cmocka_unit_test(zip_bomb_refused),
		cmocka_unit_test(too_many_parts_refused),
		cmocka_unit_test(odd_part_names_refused),
		cmocka_unit_test(dtd_and_entities_refused),
		cmocka_unit_test(huge_shared_string_tables_refused),
		cmocka_unit_test(cells_out_of_range_refused),
		cmocka_unit_test(bad_text_refused),
		cmocka_unit_test(not_a_zip_or_broken),
	};
	int rc = TH_RUN_TESTS(tests, argc, argv);
	teardown_all();
	return rc;
}

/* test_csv.c -- the appendix-file reader (schema/th_csv.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "th_csv.h"
#include "th_wire.h"

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

/* Parses text; returns rc; *diag_out receives the joined diagnostics. */
static int parse(const char *text, th_report **r, char *msgs, size_t cap)
{
	th_diag *d = th_diag_new();
	int rc = th_csv_parse_report(text, strlen(text), "f.csv", load_defs(), NULL, r, d);
	msgs[0] = 0;
	for (size_t i = 0; i < th_diag_count(d); i++) {
		strncat(msgs, th_diag_text(d, i), cap - strlen(msgs) - 2);
		strcat(msgs, "\n");
	}
	th_diag_destroy(&d);
	return rc;
}

#define PL3_HEAD "#appendix: PL3\n#unit: SNV\n#period: 2021\n"

static void pl3_basic(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse(PL3_HEAD
	               "linh_vuc,ma_nhiem_vu,noi_dung,so_nhiem_vu_ke_hoach,da_hoan_thanh,dang_thuc_hien,chua_thuc_hien\n"
	               "the_che,T1,\"Nội dung, có dấu phẩy\",10,4,3,3\n",
	               &r, msgs, sizeof msgs);
	if (rc)
		print_message("%s", msgs);
	assert_int_equal(rc, 0);
	assert_non_null(r);
	assert_string_equal(r->unit, "SNV");
	assert_int_equal(r->n_rows, 1);
	th_report_destroy(&r);
}

static void semicolon_bom_crlf(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse("\xEF\xBB\xBF#appendix: PL3\r\n#unit: SNV\r\n#period: 2021\r\n"
	               "linh_vuc;ma_nhiem_vu;so_nhiem_vu_ke_hoach;da_hoan_thanh;dang_thuc_hien;chua_thuc_hien\r\n"
	               "the_che;T1;1.234;1.000;200;34\r\n",
	               &r, msgs, sizeof msgs);
	if (rc)
		print_message("%s", msgs);
	assert_int_equal(rc, 0);
	long c = th_def_column(th_defset_latest(defs, "PL3"), "so_nhiem_vu_ke_hoach");
	assert_int_equal(th_report_cell(r, 0, (size_t)c)->i, 1234);
	th_report_destroy(&r);
}

static void quoted_newline_and_quotes(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse(PL3_HEAD
	               "linh_vuc,ma_nhiem_vu,noi_dung,so_nhiem_vu_ke_hoach,da_hoan_thanh,dang_thuc_hien,chua_thuc_hien\n"
	               "the_che,T1,\"dòng một\ndòng \"\"hai\"\"\",1,1,0,0\n"
	               "the_che,T2,x,1,oops,0,0\n",
	               &r, msgs, sizeof msgs);
	/* the error on the row after a multi-line field names its real line (7) */
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(msgs, "f.csv:7: da_hoan_thanh:"));
}

static void header_by_title(void **state)
{
	(void)state;
	const th_def *d = th_defset_latest(load_defs(), "PL3");
	char text[4096];
	int n = snprintf(text, sizeof text, PL3_HEAD);
	const char *ids[] = {"linh_vuc", "ma_nhiem_vu", "so_nhiem_vu_ke_hoach", "da_hoan_thanh",
	                     "dang_thuc_hien", "chua_thuc_hien"};
	for (int i = 0; i < 6; i++)
		n += snprintf(text + n, sizeof text - (size_t)n, "%s\"%s\"", i ? "," : "",
		              d->cols[th_def_column(d, ids[i])].title);
	snprintf(text + n, sizeof text - (size_t)n, "\nthe_che,T1,5,5,0,0\n");
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse(text, &r, msgs, sizeof msgs);
	if (rc)
		print_message("%s", msgs);
	assert_int_equal(rc, 0);
	th_report_destroy(&r);
}

static void all_errors_at_once(void **state)
{
	(void)state;
	char msgs[8192];
	th_report *r = NULL;
	int rc = parse(PL3_HEAD
	               "linh_vuc,ma_nhiem_vu,so_nhiem_vu_ke_hoach,da_hoan_thanh,dang_thuc_hien,chua_thuc_hien\n"
	               "the_che,T1,abc,1,0,0\n"
	               "khong_co,T2,1,1,0,0\n"
	               "the_che,T3,1,\"1,234\",0,0\n",
	               &r, msgs, sizeof msgs);
	assert_int_not_equal(rc, 0);
	assert_null(r);
	assert_non_null(strstr(msgs, "f.csv:5: so_nhiem_vu_ke_hoach:"));
	assert_non_null(strstr(msgs, "f.csv:6: linh_vuc:"));
	assert_non_null(strstr(msgs, "f.csv:7: da_hoan_thanh:"));
	assert_non_null(strstr(msgs, "ambiguous"));
}

static void rule_error_has_line(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse(PL3_HEAD
	               "linh_vuc,ma_nhiem_vu,so_nhiem_vu_ke_hoach,da_hoan_thanh,dang_thuc_hien,chua_thuc_hien\n"
	               "the_che,T1,10,1,1,1\n",
	               &r, msgs, sizeof msgs);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(msgs, "f.csv:5:"));
}

static void unknown_column(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse(PL3_HEAD "linh_vuc,ma_nhiem_vu,cot_la\nthe_che,T1,1\n", &r, msgs, sizeof msgs);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(msgs, "f.csv:4:"));
	assert_non_null(strstr(msgs, "cot_la"));
}

static void unknown_column_suggests_nearest(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse(PL3_HEAD "linh_vuc,Ma_Nhiem_Vuu\nthe_che,T1\n", &r, msgs, sizeof msgs);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(msgs, "did you mean \"ma_nhiem_vu\"?"));
}

static void unterminated_quote(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse(PL3_HEAD "linh_vuc,ma_nhiem_vu\nthe_che,\"T1\n", &r, msgs, sizeof msgs);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(msgs, "f.csv:5:"));
	assert_non_null(strstr(msgs, "never closed"));
}

static void not_utf8_refused_by_name(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	/* "Hà Nội" in Windows-1258: H \xE0 N \xF4 \xF2 i */
	int rc = parse(PL3_HEAD "linh_vuc,ma_nhiem_vu,noi_dung\nthe_che,T1,H\xE0 N\xF4\xF2i\n", &r,
	               msgs, sizeof msgs);
	assert_int_equal(rc, TH_EENCODING);
	assert_non_null(strstr(msgs, "CP1258"));
}

static void forced_cp1258(void **state)
{
	(void)state;
	const char *text = PL3_HEAD
		"linh_vuc,ma_nhiem_vu,noi_dung,so_nhiem_vu_ke_hoach,da_hoan_thanh,dang_thuc_hien,chua_thuc_hien\n"
		"the_che,T1,H\xE0 N\xF4\xF2i,1,1,0,0\n";
	th_csv_opts o = {.encoding = "CP1258"};
	th_diag *d = th_diag_new();
	th_report *r = NULL;
	int rc = th_csv_parse_report(text, strlen(text), "f.csv", load_defs(), &o, &r, d);
	for (size_t i = 0; i < th_diag_count(d); i++)
		print_message("%s\n", th_diag_text(d, i));
	assert_int_equal(rc, 0);
	long c = th_def_column(th_defset_latest(defs, "PL3"), "noi_dung");
	assert_string_equal(th_report_cell(r, 0, (size_t)c)->s, "H\xC3\xA0 N\xE1\xBB\x99i");
	th_report_destroy(&r);
	th_diag_destroy(&d);
}

static void utf16le_bom_converted(void **state)
{
	(void)state;
	/* Latin-1-range text only, so each character is one UTF-16 unit: byte, 0. */
	const char *text = PL3_HEAD
		"linh_vuc,ma_nhiem_vu,noi_dung,so_nhiem_vu_ke_hoach,da_hoan_thanh,dang_thuc_hien,chua_thuc_hien\r\n"
		"the_che,T1,H\xE0,1,1,0,0\r\n";
	size_t n = strlen(text);
	char *buf = malloc(2 * n + 2);
	assert_non_null(buf);
	buf[0] = (char)0xFF;
	buf[1] = (char)0xFE;
	for (size_t i = 0; i < n; i++) {
		buf[2 + 2 * i] = text[i];
		buf[3 + 2 * i] = 0;
	}
	th_diag *d = th_diag_new();
	th_report *r = NULL;
	int rc = th_csv_parse_report(buf, 2 * n + 2, "f.csv", load_defs(), NULL, &r, d);
	for (size_t i = 0; i < th_diag_count(d); i++)
		print_message("%s\n", th_diag_text(d, i));
	assert_int_equal(rc, 0);
	long c = th_def_column(th_defset_latest(defs, "PL3"), "noi_dung");
	assert_string_equal(th_report_cell(r, 0, (size_t)c)->s, "H\xC3\xA0");
	th_report_destroy(&r);
	th_diag_destroy(&d);
	free(buf);
}

static void opts_conflict_with_metadata(void **state)
{
	(void)state;
	const char *text = PL3_HEAD "linh_vuc,ma_nhiem_vu\n";
	th_csv_opts o = {.unit = "STP"};
	th_diag *d = th_diag_new();
	th_report *r = NULL;
	int rc = th_csv_parse_report(text, strlen(text), "f.csv", load_defs(), &o, &r, d);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(th_diag_text(d, 0), "STP"));
	th_diag_destroy(&d);
}

struct tok_ctx {
	int calls;
	size_t n[4];
	long line[4];
};

static int tok_on(void *p, char **f, size_t n, long line)
{
	struct tok_ctx *x = p;
	(void)f;
	if (x->calls < 4) {
		x->n[x->calls] = n;
		x->line[x->calls] = line;
	}
	x->calls++;
	return 0;
}

static void tokenizer_counts(void **state)
{
	(void)state;
	const char *t = "a,b,\"c,d\"\n\n1,,3\n";
	struct tok_ctx c = {0};
	assert_int_equal(th_csv_tokenize(t, strlen(t), ',', tok_on, &c, "t", NULL), 0);
	assert_int_equal(c.calls, 3);
	assert_int_equal(c.n[0], 3);
	assert_int_equal(c.n[1], 1);   /* the empty line is one empty field */
	assert_int_equal(c.n[2], 3);
	assert_int_equal(c.line[2], 3);
}

/* Every generated file of a Hanoi subset reads back, validates, survives
 * write -> read unchanged (same hash), and survives the wire codec. */
static void generated_round_trip(void **state)
{
	(void)state;
	char *dir = tu_tmpdir();
	char cmd[8192];
	snprintf(cmd, sizeof cmd,
	         "'%s' --units '%s' --defs '%s' --out '%s' --seed 7 --quiet "
	         "--unit SNV --unit 001 --unit 00001 --unit SNV.BTG --unit VP",
	         tu_bin("tools/th-gen"), tu_src("data/hanoi-2021.units"), tu_src("schema/appendices"), dir);
	int st;
	free(tu_capture(cmd, &st));
	assert_int_equal(st, 0);
	const char *files[] = {"SNV/PL1-2021.csv", "SNV/PL2-2021.csv", "SNV/PL3-2021.csv",
	                       "001/PL1-2021.csv", "001/PL2-2021.csv", "00001/PL1-2021.csv",
	                       "SNV.BTG/PL1-2021.csv", "VP/PL3-2021.csv"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char path[4096], path2[4200];
		snprintf(path, sizeof path, "%s/%s", dir, files[i]);
		th_diag *d = th_diag_new();
		th_report *r = NULL, *r2 = NULL;
		int rc = th_csv_read_report(path, load_defs(), NULL, &r, d);
		for (size_t k = 0; k < th_diag_count(d); k++)
			if (th_diag_at(d, k)->sev == TH_SEV_ERROR)
				print_message("%s\n", th_diag_text(d, k));
		assert_int_equal(rc, 0);
		const th_def *def = th_defset_get(defs, r->appendix, r->version);
		snprintf(path2, sizeof path2, "%s.again", path);
		assert_int_equal(th_csv_write_report(path2, r, def), 0);
		assert_int_equal(th_csv_read_report(path2, defs, NULL, &r2, d), 0);
		uint8_t h1[TH_HASH_LEN], h2[TH_HASH_LEN], h3[TH_HASH_LEN];
		assert_int_equal(th_report_hash(r, def, h1), 0);
		assert_int_equal(th_report_hash(r2, def, h2), 0);
		assert_memory_equal(h1, h2, TH_HASH_LEN);
		/* wire */
		uint8_t *buf;
		size_t len;
		r->rev = 42;
		assert_int_equal(th_wire_encode_submit(9, &r, 1, defs, &buf, &len), 0);
		th_submit_decoded s;
		const char *why = NULL;
		assert_int_equal(th_wire_decode_submit(buf, len, defs, NULL, &s, &why), 0);
		assert_int_equal(s.n_reports, 1);
		assert_non_null(s.reports[0]);
		assert_int_equal(th_report_validate(s.reports[0], def, NULL), 0);
		assert_int_equal(th_report_hash(s.reports[0], def, h3), 0);
		assert_memory_equal(h1, h3, TH_HASH_LEN);
		assert_int_equal(s.reports[0]->rev, 42);
		th_submit_decoded_free(&s);
		free(buf);
		th_report_destroy(&r);
		th_report_destroy(&r2);
		th_diag_destroy(&d);
	}
	tu_rmrf(dir);
}

static void decimal_write_read_unambiguous(void **state)
{
	(void)state;
	/* a decimal column written by the writer always reads back */
	int64_t vals[] = {0, 1, 5, 1500, 1234, -1, -1234, 999999, 1000000};
	for (int scale = 0; scale <= 4; scale++)
		for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
			char b[64];
			th_fmt_dec(vals[i], scale, 1, b);
			char *comma = strchr(b, ',');
			if (comma && strlen(comma + 1) == 3)
				strcat(b, "0");
			int64_t back = 0;
			const char *why = NULL;
			int rc = th_parse_dec(b, scale, &back, &why);
			if (rc)
				print_message("scale %d value %lld text %s: %s\n", scale, (long long)vals[i], b, why);
			assert_int_equal(rc, 0);
			assert_int_equal(back, vals[i]);
		}
}

/* The table reader's rules hold for CSV too: title rows and "key: value"
 * cells above the header, an STT column, a numbering row. */
static void title_rows_stt_and_key_value_cells(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse("SỞ NỘI VỤ HÀ NỘI,,\n"
	               "BÁO CÁO TỔNG HỢP,,\n"
	               "\"Phụ lục: PL3\",\"Don vi: SNV - Sở Nội vụ\",\"Kỳ: 2021\"\n"
	               "STT,Lĩnh vực cải cách hành chính,Mã nhiệm vụ trong Kế hoạch\n"
	               "(1),(2),(3)\n"
	               "1,Cải cách thể chế,T1\n"
	               "2,,\n"
	               "3,the_che,T2\n",
	               &r, msgs, sizeof msgs);
	if (rc)
		print_message("%s", msgs);
	assert_int_equal(rc, 0);
	assert_string_equal(r->unit, "SNV");
	assert_int_equal(r->n_rows, 2);
	th_report_destroy(&r);
}

/* A unit column: one report per unit; the single-report call refuses it
 * unless a unit is asked for. */
static void unit_column_reports(void **state)
{
	(void)state;
	const char *text = "#appendix: PL1\n#period: 2021\n"
	                   "unit,nhiem_vu_ke_hoach\n00001,5\n00004,\n00006,7\n";
	th_diag *d = th_diag_new();
	th_report **v = NULL;
	size_t n = 0;
	assert_int_equal(th_csv_parse_reports(text, strlen(text), "f.csv", load_defs(), NULL, &v, &n, d), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[1]->unit, "00006");
	th_reports_free(&v, n);
	th_report *r = NULL;
	assert_int_not_equal(th_csv_parse_report(text, strlen(text), "f.csv", defs, NULL, &r, d), 0);
	th_csv_opts o = {.unit = "00001"};
	assert_int_equal(th_csv_parse_report(text, strlen(text), "f.csv", defs, &o, &r, d), 0);
	assert_string_equal(r->unit, "00001");
	th_report_destroy(&r);
	th_diag_destroy(&d);
}

static void no_header_row_says_so(void **state)
{
	(void)state;
	char msgs[4096];
	th_report *r = NULL;
	int rc = parse(PL3_HEAD "foo,bar\n1,2\n", &r, msgs, sizeof msgs);
	assert_int_not_equal(rc, 0);
	assert_non_null(strstr(msgs, "no header row naming the columns of PL3 version 1"));
	assert_non_null(strstr(msgs, "line 4"));
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pl3_basic),
		cmocka_unit_test(semicolon_bom_crlf),
		cmocka_unit_test(quoted_newline_and_quotes),
		cmocka_unit_test(header_by_title),
		cmocka_unit_test(all_errors_at_once),
		cmocka_unit_test(rule_error_has_line),
		cmocka_unit_test(unknown_column),
		cmocka_unit_test(unknown_column_suggests_nearest),
		cmocka_unit_test(unterminated_quote),
		cmocka_unit_test(not_utf8_refused_by_name),
		cmocka_unit_test(forced_cp1258),
		cmocka_unit_test(utf16le_bom_converted),
		cmocka_unit_test(opts_conflict_with_metadata),
		cmocka_unit_test(tokenizer_counts),
		cmocka_unit_test(generated_round_trip),
		cmocka_unit_test(decimal_write_read_unambiguous),
		cmocka_unit_test(title_rows_stt_and_key_value_cells),
		cmocka_unit_test(unit_column_reports),
		cmocka_unit_test(no_header_row_says_so),
	};
	int rc = TH_RUN_TESTS(tests, argc, argv);
	th_defset_destroy(&defs);
	return rc;
}

/* test_template.c -- the fillable template (schema/xlsx/th_template.c): made
 * for PL1, PL2, PL3 and for a district covering its communes, filled by
 * openpyxl (tests/xlsx_fill.py) as a person would, read back by the agent's
 * reader: the reports equal the same values read from CSV; the same through
 * files saved by LibreOffice (committed fixtures, and live when soffice is
 * installed). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include "testutil.h"
#include "th_csv.h"
#include "th_input.h"
#include "th_template.h"
#include "th_units.h"
#include "th_xlsx.h"

static th_defset *defs;
static th_units *units;
static char *gen;       /* th-gen's CSV files */
static char *tmp;

static void setup_data(void)
{
	if (defs)
		return;
	th_diag *d = th_diag_new();
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &defs, d), 0);
	assert_int_equal(th_units_load(tu_src("data/hanoi-2021.units"), &units, d), 0);
	th_diag_destroy(&d);
	tmp = tu_tmpdir();
	gen = tu_tmpdir();
	/* SNV files PL1-PL3; district 001 and its communes file PL1 */
	const char **codes;
	size_t n;
	assert_int_equal(th_template_units_for(th_defset_latest(defs, "PL1"), units, "001", &codes, &n), 0);
	char cmd[8192];
	int o = snprintf(cmd, sizeof cmd, "'%s' --units '%s' --defs '%s' --out '%s' --seed 11 --quiet "
	                 "--unit SNV", tu_bin("tools/th-gen"), tu_src("data/hanoi-2021.units"),
	                 tu_src("schema/appendices"), gen);
	for (size_t i = 0; i < n; i++)
		o += snprintf(cmd + o, sizeof cmd - (size_t)o, " --unit %s", codes[i]);
	free(codes);
	int st;
	free(tu_capture(cmd, &st));
	assert_int_equal(st, 0);
}

static const char *python(void)
{
	/* Debian's interpreter, where python3-openpyxl installs */
	return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

static th_report *read_one(const char *path, const char *unit)
{
	th_diag *d = th_diag_new();
	th_report *r = NULL;
	th_read_opts o = {.unit = unit};
	int rc = th_input_read_report(path, defs, &o, &r, d);
	for (size_t i = 0; rc && i < th_diag_count(d); i++)
		print_message("%s\n", th_diag_text(d, i));
	assert_int_equal(rc, 0);
	th_diag_destroy(&d);
	return r;
}

static th_report *gen_report(const char *unit, const char *app)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s/%s-2021.csv", gen, unit, app);
	return read_one(path, NULL);
}

/* The two reports are the same: every cell, and the content hash. */
static void same_report(const th_report *a, const th_report *b)
{
	const th_def *d = th_defset_get(defs, a->appendix, a->version);
	assert_non_null(d);
	assert_string_equal(a->unit, b->unit);
	assert_string_equal(a->appendix, b->appendix);
	assert_string_equal(a->period, b->period);
	assert_int_equal(a->version, b->version);
	assert_int_equal(a->n_rows, b->n_rows);
	assert_int_equal(a->as_of, b->as_of);
	for (size_t i = 0; i < a->n_rows; i++)
		for (size_t c = 0; c < d->n_cols; c++) {
			const th_value *x = th_report_cell(a, i, c), *y = th_report_cell(b, i, c);
			if (th_value_cmp(x, y, d->cols[c].type) != 0)
				print_message("%s row %zu %s: %lld%s%s vs %lld%s%s\n", a->unit, i + 1,
				              d->cols[c].id, (long long)x->i, x->null ? " (null)" : "",
				              x->s ? x->s : "", (long long)y->i, y->null ? " (null)" : "",
				              y->s ? y->s : "");
			assert_int_equal(th_value_cmp(x, y, d->cols[c].type), 0);
		}
	uint8_t h1[TH_HASH_LEN], h2[TH_HASH_LEN];
	assert_int_equal(th_report_hash(a, d, h1), 0);
	assert_int_equal(th_report_hash(b, d, h2), 0);
	assert_memory_equal(h1, h2, TH_HASH_LEN);
}

/* --- the values, as a person types them (xlsx_fill.py's input) -------------------------- */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", (unsigned char)*s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

/* Rows of r: enums by label on even rows and by code on odd ones, yes/no as
 * real booleans on even rows and as "Có"/"Không" on odd ones. */
static void json_rows(FILE *f, const th_report *r, int with_unit, int *first)
{
	const th_def *d = th_defset_get(defs, r->appendix, r->version);
	char b[64];
	for (size_t i = 0; i < r->n_rows; i++) {
		fprintf(f, "%s{", *first ? "" : ",\n");
		*first = 0;
		if (with_unit) {
			fprintf(f, "\"unit\": ");
			json_str(f, r->unit);
			fprintf(f, ", ");
		}
		fprintf(f, "\"cells\": {");
		int fc = 1;
		for (size_t c = 0; c < d->n_cols; c++) {
			const th_column *col = &d->cols[c];
			const th_value *v = th_report_cell(r, i, c);
			if (v->null)
				continue;
			fprintf(f, "%s\"%s\": ", fc ? "" : ", ", col->id);
			fc = 0;
			switch (col->type) {
			case TH_T_INT:
				fprintf(f, "{\"int\": %lld}", (long long)v->i);
				break;
			case TH_T_DEC:
				fprintf(f, "{\"num\": \"%s\"}", th_fmt_dec(v->i, col->scale, 0, b));
				break;
			case TH_T_DATE:
				fprintf(f, "{\"date\": \"%s\"}", th_fmt_date((int32_t)v->i, 1, b));
				break;
			case TH_T_BOOL:
				if (i % 2 == 0)
					fprintf(f, "{\"bool\": %s}", v->i ? "true" : "false");
				else
					fprintf(f, "{\"str\": \"%s\"}", v->i ? "Có" : "Không");
				break;
			case TH_T_ENUM:
				fprintf(f, "{\"str\": ");
				json_str(f, i % 2 == 0 ? col->values[v->i].title : col->values[v->i].code);
				fprintf(f, "}");
				break;
			case TH_T_TEXT:
				fprintf(f, "{\"str\": ");
				json_str(f, v->s);
				fprintf(f, "}");
				break;
			}
		}
		fprintf(f, "}}");
	}
}

static void fill(const char *template, const char *out, th_report **r, size_t n, int multi,
                 int epoch1904)
{
	char js[4200];
	snprintf(js, sizeof js, "%s.json", out);
	FILE *f = fopen(js, "w");
	assert_non_null(f);
	char b[32];
	fprintf(f, "{\"sheet\": \"%s\", \"epoch1904\": %s", r[0]->appendix, epoch1904 ? "true" : "false");
	if (r[0]->as_of)
		fprintf(f, ", \"as_of\": \"%s\"", th_fmt_date(r[0]->as_of, 1, b));
	fprintf(f, ", \"rows\": [\n");
	int first = 1;
	for (size_t i = 0; i < n; i++)
		json_rows(f, r[i], multi, &first);
	fprintf(f, "]}\n");
	fclose(f);
	char *argv[] = {(char *)python(), (char *)tu_src("tests/xlsx_fill.py"), (char *)template,
	                (char *)out, js, NULL};
	char log[4200];
	snprintf(log, sizeof log, "%s.log", out);
	int st = tu_run(argv, log);
	if (st != 0) {
		char *t = tu_read_file(log, NULL);
		print_message("xlsx_fill.py failed (%d): %s\n(python3-openpyxl comes with scripts/deps.sh)\n",
		              st, t ? t : "");
		free(t);
	}
	assert_int_equal(st, 0);
}

static void write_template(const char *path, const char *app, const char *unit,
                           const char *const *cover, size_t n_cover, const th_report *const *filled,
                           size_t n_filled)
{
	th_template_opts o = {.period = "2021", .unit = unit, .units = cover, .n_units = n_cover,
	                      .deadline = 20220115, .hierarchy = units, .filled = filled,
	                      .n_filled = n_filled};
	th_diag *d = th_diag_new();
	int rc = th_template_write(path, th_defset_latest(defs, app), &o, d);
	for (size_t i = 0; rc && i < th_diag_count(d); i++)
		print_message("%s\n", th_diag_text(d, i));
	assert_int_equal(rc, 0);
	th_diag_destroy(&d);
}

/* Keeps a file made by a test as a fixture (TH_XLSX_FIXTURES=dir, see
 * tests/data/xlsx/README.md): the workbook and the CSV of its values, one
 * file with a unit column when it holds several units. */
static void keep_fixture(const char *xlsx, const char *name, th_report **r, size_t n,
                         const char *csvname)
{
	const char *dir = getenv("TH_XLSX_FIXTURES");
	if (!dir)
		return;
	char cmd[9000], path[4300], one[4300];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s/%s'", xlsx, dir, name);
	assert_int_equal(system(cmd), 0);
	snprintf(path, sizeof path, "%s/%s", dir, csvname);
	const th_def *d = th_defset_get(defs, r[0]->appendix, r[0]->version);
	if (n == 1) {
		assert_int_equal(th_csv_write_report(path, r[0], d), 0);
		return;
	}
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "#appendix: %s\n#version: %u\n#period: %s\n", r[0]->appendix, r[0]->version,
	        r[0]->period);
	for (size_t i = 0; i < n; i++) {
		snprintf(one, sizeof one, "%s/one.csv", tmp);
		assert_int_equal(th_csv_write_report(one, r[i], d), 0);
		char *t = tu_read_file(one, NULL);
		assert_non_null(t);
		int header = 0;
		for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
			if (line[0] == '#' && strncmp(line, "#as_of", 6) != 0)
				continue;
			if (line[0] == '#') {
				if (i == 0)
					fprintf(f, "%s\n", line);
				continue;
			}
			if (!header++) {
				if (i == 0)
					fprintf(f, "unit,%s\n", line);
				continue;
			}
			fprintf(f, "%s,%s\n", r[i]->unit, line);
		}
		free(t);
	}
	fclose(f);
}

/* Template for SNV, filled with th-gen's values by openpyxl, read back. */
static void openpyxl_round_trip(const char *app, int epoch1904)
{
	setup_data();
	char t[4096], f[4096];
	snprintf(t, sizeof t, "%s/%s-template.xlsx", tmp, app);
	snprintf(f, sizeof f, "%s/%s-2021%s.xlsx", tmp, app, epoch1904 ? "-1904" : "");
	write_template(t, app, "SNV", NULL, 0, NULL, 0);
	th_report *want = gen_report("SNV", app);
	fill(t, f, &want, 1, 0, epoch1904);
	th_report *got = read_one(f, NULL);
	same_report(want, got);
	if (strcmp(app, "PL3") == 0 && !epoch1904)
		keep_fixture(f, "pl3-snv-openpyxl.xlsx", &want, 1, "pl3-snv.csv");
	th_report_destroy(&want);
	th_report_destroy(&got);
}

static void pl1_filled_by_openpyxl(void **state)
{
	(void)state;
	openpyxl_round_trip("PL1", 0);
}

static void pl2_filled_by_openpyxl(void **state)
{
	(void)state;
	openpyxl_round_trip("PL2", 0);
}

static void pl3_filled_by_openpyxl(void **state)
{
	(void)state;
	openpyxl_round_trip("PL3", 0);
}

static void pl2_saved_with_1904_dates(void **state)
{
	(void)state;
	openpyxl_round_trip("PL2", 1);
	/* the file really is in the 1904 system */
	char f[4096];
	snprintf(f, sizeof f, "%s/PL2-2021-1904.xlsx", tmp);
	char *cmd;
	assert_true(asprintf(&cmd, "unzip -p '%s' xl/workbook.xml", f) > 0);
	int st;
	char *out = tu_capture(cmd, &st);
	free(cmd);
	assert_non_null(out);
	assert_true(strstr(out, "date1904=\"1\"") || strstr(out, "date1904=\"true\""));
	free(out);
}

/* A district fills PL1 for itself and its communes in one workbook; one
 * commune is left empty and gets no report. */
static void district_covers_its_communes(void **state)
{
	(void)state;
	setup_data();
	const th_def *d = th_defset_latest(defs, "PL1");
	const char **codes;
	size_t n;
	assert_int_equal(th_template_units_for(d, units, "001", &codes, &n), 0);
	assert_int_equal(n, 15);   /* Quận Ba Đình and its 14 wards */
	assert_string_equal(codes[0], "001");
	char t[4096], f[4096];
	snprintf(t, sizeof t, "%s/PL1-001-template.xlsx", tmp);
	snprintf(f, sizeof f, "%s/PL1-001-2021.xlsx", tmp);
	write_template(t, "PL1", "001", codes, n, NULL, 0);
	th_report **want = calloc(n, sizeof *want);
	assert_non_null(want);
	for (size_t i = 0; i < n; i++)
		want[i] = gen_report(codes[i], "PL1");
	fill(t, f, want, n - 1, 1, 0);
	th_diag *dg = th_diag_new();
	th_report **got = NULL;
	size_t ng = 0;
	int rc = th_input_read_reports(f, defs, NULL, &got, &ng, dg);
	for (size_t i = 0; i < th_diag_count(dg); i++)
		print_message("%s\n", th_diag_text(dg, i));
	assert_int_equal(rc, 0);
	assert_int_equal(ng, n - 1);
	assert_int_equal(th_diag_errors(dg), 0);
	assert_int_equal(th_diag_count(dg), 1);   /* the warning: one unit not filled in */
	assert_non_null(strstr(th_diag_text(dg, 0), codes[n - 1]));
	/* every report as filled, and the totals the collector will add up */
	int64_t tw = 0, tg = 0;
	long c = th_def_column(d, "ho_so_truc_tiep");
	for (size_t i = 0; i < ng; i++) {
		same_report(want[i], got[i]);
		if (!th_report_cell(want[i], 0, (size_t)c)->null)
			tw += th_report_cell(want[i], 0, (size_t)c)->i;
		if (!th_report_cell(got[i], 0, (size_t)c)->null)
			tg += th_report_cell(got[i], 0, (size_t)c)->i;
	}
	assert_true(tw > 0);
	assert_int_equal(tw, tg);
	/* the agent reading for one unit only */
	th_report *one = read_one(f, codes[3]);
	same_report(want[3], one);
	th_report_destroy(&one);
	th_reports_free(&got, ng);
	th_diag_destroy(&dg);
	for (size_t i = 0; i < n; i++)
		th_report_destroy(&want[i]);
	free(want);
	free(codes);
}

/* th-gen's path: the writer fills the template itself. */
static void filled_by_the_writer(void **state)
{
	(void)state;
	setup_data();
	const char *apps[] = {"PL1", "PL2", "PL3"};
	for (size_t k = 0; k < 3; k++) {
		th_report *want = gen_report("SNV", apps[k]);
		char f[4096];
		snprintf(f, sizeof f, "%s/%s-written.xlsx", tmp, apps[k]);
		const th_report *filled[] = {want};
		write_template(f, apps[k], "SNV", NULL, 0, filled, 1);
		th_report *got = read_one(f, NULL);
		same_report(want, got);
		th_report_destroy(&want);
		th_report_destroy(&got);
	}
}

/* --- what the template holds ----------------------------------------------------------------- */

static char *part(const char *path, const char *name)
{
	int err;
	zip_t *z = zip_open(path, ZIP_RDONLY, &err);
	assert_non_null(z);
	zip_stat_t st;
	assert_int_equal(zip_stat(z, name, 0, &st), 0);
	char *buf = calloc(1, st.size + 1);
	zip_file_t *zf = zip_fopen(z, name, 0);
	assert_non_null(zf);
	assert_int_equal(zip_fread(zf, buf, st.size), (zip_int64_t)st.size);
	zip_fclose(zf);
	zip_discard(z);
	return buf;
}

static void template_structure(void **state)
{
	(void)state;
	setup_data();
	char t[4096];
	snprintf(t, sizeof t, "%s/PL2-structure.xlsx", tmp);
	write_template(t, "PL2", "SNV", NULL, 0, NULL, 0);
	char *wb = part(t, "xl/workbook.xml");
	assert_non_null(strstr(wb, "name=\"PL2\""));
	assert_non_null(strstr(wb, "name=\"Hướng dẫn\""));
	assert_non_null(strstr(wb, "name=\"_tonghop\" sheetId=\"3\" state=\"hidden\""));
	free(wb);
	char *ws = part(t, "xl/worksheets/sheet1.xml");
	assert_non_null(strstr(ws, "<sheetProtection"));                   /* locked identity cells */
	assert_non_null(strstr(ws, "ySplit=\"11\""));                 /* frozen header */
	assert_non_null(strstr(ws, "<row r=\"10\""));
	assert_non_null(strstr(strstr(ws, "<row r=\"10\""), "hidden=\"1\""));   /* the ids row */
	assert_non_null(strstr(ws, "type=\"list\""));                       /* enums by label */
	assert_non_null(strstr(ws, "_tonghop'!$D$2:$D$4"));                 /* nguon: 3 labels */
	assert_non_null(strstr(ws, "type=\"date\""));
	assert_non_null(strstr(ws, "type=\"textLength\""));
	free(ws);
	char *st = part(t, "xl/styles.xml");
	assert_non_null(strstr(st, "locked=\"0\""));                         /* data cells editable */
	assert_non_null(strstr(st, "formatCode=\"dd/mm/yyyy\""));
	free(st);
	/* PL1: integer ranges, decimals of scale 2, yes/no lists */
	snprintf(t, sizeof t, "%s/PL1-structure.xlsx", tmp);
	write_template(t, "PL1", "SNV", NULL, 0, NULL, 0);
	ws = part(t, "xl/worksheets/sheet1.xml");
	assert_non_null(strstr(ws, "type=\"whole\""));
	assert_non_null(strstr(ws, "type=\"decimal\""));
	assert_non_null(strstr(ws, "\"Có,Không\""));
	free(ws);
	st = part(t, "xl/styles.xml");
	assert_non_null(strstr(st, "formatCode=\"#,##0.00\""));
	free(st);
	char *ss = part(t, "xl/sharedStrings.xml");
	assert_non_null(strstr(ss, "Đơn vị: SNV - Sở Nội vụ"));
	assert_non_null(strstr(ss, "Hạn nộp: 15/01/2022"));
	assert_non_null(strstr(ss, "Ô để trống nghĩa là không có số liệu"));
	free(ss);
}

static void units_covered(void **state)
{
	(void)state;
	setup_data();
	const char **codes;
	size_t n;
	/* PL2 is not filed by communes: the district alone */
	assert_int_equal(th_template_units_for(th_defset_latest(defs, "PL2"), units, "001", &codes, &n), 0);
	assert_int_equal(n, 1);
	assert_string_equal(codes[0], "001");
	free(codes);
	/* PL3: only the lead departments */
	assert_int_equal(th_template_units_for(th_defset_latest(defs, "PL3"), units, "SNV", &codes, &n), 0);
	assert_int_equal(n, 1);
	free(codes);
	assert_int_equal(th_template_units_for(th_defset_latest(defs, "PL3"), units, "SYT", &codes, &n), 0);
	assert_int_equal(n, 0);
	free(codes);
	assert_int_equal(th_template_units_for(th_defset_latest(defs, "PL1"), units, "NOPE", &codes, &n),
	                 TH_EUNIT);
}

static void bad_options_refused(void **state)
{
	(void)state;
	setup_data();
	char t[4096];
	snprintf(t, sizeof t, "%s/bad.xlsx", tmp);
	th_diag *d = th_diag_new();
	th_template_opts o = {.period = "2021-13", .unit = "SNV"};
	assert_int_equal(th_template_write(t, th_defset_latest(defs, "PL1"), &o, d), TH_EPERIOD);
	o.period = "2021";
	o.unit = "S N V";
	assert_int_equal(th_template_write(t, th_defset_latest(defs, "PL1"), &o, d), TH_EUNIT);
	th_report *other = gen_report("SNV", "PL2");
	const th_report *filled[] = {other};
	o.unit = "SNV";
	o.filled = filled;
	o.n_filled = 1;
	assert_int_equal(th_template_write(t, th_defset_latest(defs, "PL1"), &o, d), TH_EINVAL);
	assert_int_equal(access(t, F_OK), -1);   /* nothing written */
	th_report_destroy(&other);
	th_diag_destroy(&d);
}

/* --- LibreOffice ---------------------------------------------------------------------------- */

/* Committed files saved by LibreOffice 7.4 (and one by openpyxl), each with
 * the CSV of the values it holds (tests/data/xlsx/README.md). */
static void saved_by_libreoffice_fixtures(void **state)
{
	(void)state;
	setup_data();
	static const char *files[][2] = {
		{"pl2-snv-libreoffice.xlsx", "pl2-snv.csv"},
		{"pl1-001-libreoffice.xlsx", "pl1-001.csv"},
		{"pl3-snv-openpyxl.xlsx", "pl3-snv.csv"},
	};
	for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
		char x[4096], c[4096];
		snprintf(x, sizeof x, "%s/tests/data/xlsx/%s", tu_source_dir(), files[k][0]);
		snprintf(c, sizeof c, "%s/tests/data/xlsx/%s", tu_source_dir(), files[k][1]);
		th_diag *d = th_diag_new();
		th_report **a = NULL, **b = NULL;
		size_t na = 0, nb = 0;
		int rc = th_input_read_reports(x, defs, NULL, &a, &na, d);
		rc = rc ? rc : th_input_read_reports(c, defs, NULL, &b, &nb, d);
		for (size_t i = 0; i < th_diag_count(d); i++)
			print_message("%s\n", th_diag_text(d, i));
		assert_int_equal(rc, 0);
		assert_int_equal(na, nb);
		assert_true(na >= 1);
		for (size_t i = 0; i < na; i++)
			same_report(b[i], a[i]);
		th_reports_free(&a, na);
		th_reports_free(&b, nb);
		th_diag_destroy(&d);
	}
}

static const char *soffice(void)
{
	static const char *c[] = {"/usr/bin/soffice", "/usr/bin/libreoffice", "/usr/lib/libreoffice/program/soffice"};
	for (size_t i = 0; i < 3; i++)
		if (access(c[i], X_OK) == 0)
			return c[i];
	return NULL;
}

/* openpyxl's file opened and saved again by LibreOffice (headless). */
static void saved_by_libreoffice_live(void **state)
{
	(void)state;
	const char *lo = soffice();
	if (!lo) {
		print_message("LibreOffice is not installed: the committed fixtures cover this\n");
		skip();
	}
	setup_data();
	char profile[4200], outdir[4200], src[4200], saved[4300], t[4200];
	snprintf(profile, sizeof profile, "file://%s/lo-profile", tmp);
	snprintf(outdir, sizeof outdir, "%s/lo-out", tmp);
	mkdir(outdir, 0700);
	struct { const char *app, *unit; int multi; } cases[] = {{"PL2", "SNV", 0}, {"PL1", "001", 1}};
	for (size_t k = 0; k < 2; k++) {
		const char **codes = NULL;
		size_t n = 1;
		const char *one = cases[k].unit;
		if (cases[k].multi)
			assert_int_equal(th_template_units_for(th_defset_latest(defs, cases[k].app), units,
			                                       cases[k].unit, &codes, &n), 0);
		snprintf(t, sizeof t, "%s/lo-%s-template.xlsx", tmp, cases[k].app);
		snprintf(src, sizeof src, "%s/%s-%s.xlsx", tmp, cases[k].app, cases[k].unit);
		write_template(t, cases[k].app, cases[k].unit, codes, codes ? n : 0, NULL, 0);
		th_report **want = calloc(n, sizeof *want);
		for (size_t i = 0; i < n; i++)
			want[i] = gen_report(codes ? codes[i] : one, cases[k].app);
		fill(t, src, want, n, cases[k].multi, 0);
		char env[4300];
		snprintf(env, sizeof env, "-env:UserInstallation=%s", profile);
		char *argv[] = {(char *)lo, env, "--headless", "--convert-to", "xlsx", "--outdir", outdir, src,
		                NULL};
		char log[4300];
		snprintf(log, sizeof log, "%s/lo.log", tmp);
		assert_int_equal(tu_run(argv, log), 0);
		snprintf(saved, sizeof saved, "%s/%s-%s.xlsx", outdir, cases[k].app, cases[k].unit);
		th_diag *d = th_diag_new();
		th_report **got = NULL;
		size_t ng = 0;
		int rc = th_input_read_reports(saved, defs, NULL, &got, &ng, d);
		for (size_t i = 0; i < th_diag_count(d); i++)
			print_message("%s\n", th_diag_text(d, i));
		assert_int_equal(rc, 0);
		assert_int_equal(ng, n);
		for (size_t i = 0; i < n; i++)
			same_report(want[i], got[i]);
		char name[200], csv[200];
		snprintf(name, sizeof name, "%s-%s-libreoffice.xlsx", cases[k].app, cases[k].unit);
		snprintf(csv, sizeof csv, "%s-%s.csv", cases[k].app, cases[k].unit);
		for (char *p = name; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		for (char *p = csv; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		keep_fixture(saved, name, want, n, csv);
		th_reports_free(&got, ng);
		th_diag_destroy(&d);
		for (size_t i = 0; i < n; i++)
			th_report_destroy(&want[i]);
		free(want);
		free(codes);
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pl1_filled_by_openpyxl),
		cmocka_unit_test(pl2_filled_by_openpyxl),
		cmocka_unit_test(pl3_filled_by_openpyxl),
		cmocka_unit_test(pl2_saved_with_1904_dates),
		cmocka_unit_test(district_covers_its_communes),
		cmocka_unit_test(filled_by_the_writer),
		cmocka_unit_test(template_structure),
		cmocka_unit_test(units_covered),
		cmocka_unit_test(bad_options_refused),
		cmocka_unit_test(saved_by_libreoffice_fixtures),
		cmocka_unit_test(saved_by_libreoffice_live),
	};
	int rc = TH_RUN_TESTS(tests, argc, argv);
	tu_rmrf(tmp);
	tu_rmrf(gen);
	th_units_destroy(&units);
	th_defset_destroy(&defs);
	return rc;
}

/* th-gen -- writes plausible, internally consistent appendix files for the
 * units of a hierarchy, for tests, the demo and benchmarks.
 *
 * Deterministic: the same arguments give the same bytes (splitmix64 seeded
 * from the seed, the unit code and the appendix id).  Values respect every
 * constraint and cross-field rule of the definitions, read generically from
 * the definition files (rules: the side with more terms is generated and its
 * total split over the other side; ratios of plain columns stay <= 1), so
 * next year's templates need no change here; a few tables keyed by 2021
 * column ids only make magnitudes plausible and are skipped for unknown ids.
 * Task appendices (a [derive] section) get assignment dates, deadlines and
 * completion dates before the as-of date, the status left to the derivation
 * (or "not started" for some open tasks, which agrees with it).  Every report
 * is validated with th_report_validate before it is written.
 *
 * Expected totals: there is no sidecar; read the files back with
 * th_csv_read_report (tests/test_gen.c does) and add them up.
 */
#include "th_csv.h"
#include "th_def.h"
#include "th_hash.h"
#include "th_report.h"
#include "th_units.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct { uint64_t s; } rng;

static uint64_t next(rng *r)
{
	/* splitmix64 */
	uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static int64_t between(rng *r, int64_t lo, int64_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + (int64_t)(next(r) % (uint64_t)(hi - lo + 1));
}

static uint64_t hstr(uint64_t h, const char *s)
{
	return th_fnv1a_step(h, s, strlen(s)) * 1099511628211ULL;
}

static int32_t add_days(int32_t ymd, long days)
{
	long d0 = th_date_days(ymd) + days;
	/* civil from days */
	long z = d0 + 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	long doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long y = yoe + era * 400;
	long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long mp = (5 * doy + 2) / 153;
	long d = doy - (153 * mp + 2) / 5 + 1;
	long m = mp + (mp < 10 ? 3 : -9);
	y += m <= 2;
	return (int32_t)(y * 10000 + m * 100 + d);
}

static const char *phrases[] = {
	"Rà soát, đơn giản hóa thủ tục hành chính",
	"Triển khai dịch vụ công trực tuyến mức độ 3, 4",
	"Kiện toàn bộ phận một cửa",
	"Tự kiểm tra công tác cải cách hành chính",
	"Số hóa hồ sơ, kết quả giải quyết thủ tục hành chính",
	"Tuyên truyền cải cách hành chính",
	"Đánh giá sự hài lòng của người dân",
	"Áp dụng ISO 9001:2015",
	"Xây dựng Đề án vị trí việc làm",
	"Rà soát văn bản quy phạm pháp luật",
	"Triển khai chữ ký số, gửi nhận văn bản điện tử",
	"Sắp xếp, kiện toàn các đơn vị sự nghiệp công lập",
};
#define N_PHRASES (sizeof phrases / sizeof phrases[0])

static const char *narrative[] = {
	"Hoàn thành đúng tiến độ các nhiệm vụ trọng tâm của Kế hoạch",
	"Tỷ lệ hồ sơ giải quyết đúng hạn tăng so với cùng kỳ",
	"Một số hồ sơ còn giải quyết trễ hạn do phải lấy ý kiến nhiều cơ quan",
	"Cơ sở hạ tầng công nghệ thông tin chưa đồng bộ",
	"Nhân lực làm công tác CCHC còn kiêm nhiệm",
	"Đề nghị Thành phố bố trí kinh phí nâng cấp phần mềm một cửa điện tử",
	"Đẩy mạnh tuyên truyền để người dân sử dụng dịch vụ công trực tuyến",
};
#define N_NARRATIVE (sizeof narrative / sizeof narrative[0])

/* Plausible magnitudes for the 2021 columns, per kind of unit (ranges for a
 * commune; a district x 6, a department x 4, an agency x 1).  A column not
 * listed gets a generic small count, so next year's templates still work. */
static const struct { const char *id; int64_t lo, hi; int fixed; } mag[] = {
	{"nhiem_vu_ke_hoach", 8, 40, 1},   {"don_vi_tu_kiem_tra", 1, 12, 0},
	{"ton_tai_phat_hien", 0, 8, 0},     {"hoat_dong_tuyen_truyen", 2, 20, 0},
	{"vbqppl_du_thao", 0, 3, 0},        {"vbqppl_ra_soat", 0, 15, 0},
	{"tthc_tham_quyen", 90, 130, 1},    {"tthc_sua_doi", 0, 5, 0},
	{"tthc_bai_bo", 0, 3, 0},           {"ho_so_ton_ky_truoc", 0, 60, 0},
	{"giai_quyet_truoc_han", 200, 2000, 0}, {"giai_quyet_dung_han", 500, 6000, 0},
	{"giai_quyet_tre_han", 0, 40, 0},   {"dang_giai_quyet_trong_han", 10, 200, 0},
	{"dang_giai_quyet_qua_han", 0, 10, 0}, {"rut_tra_lai", 0, 30, 0},
	{"dvc_muc_3", 30, 90, 1},           {"dvc_muc_4", 5, 40, 1},
	{"pakn_tiep_nhan", 5, 80, 0},       {"phieu_khao_sat", 50, 600, 0},
	{"phong_ban", 3, 8, 1},             {"don_vi_su_nghiep", 0, 6, 0},
	{"cap_pho_vuot_quy_dinh", 0, 2, 1}, {"bien_che_giao", 20, 45, 0},
	{"tuyen_dung", 0, 4, 0},            {"ky_luat", 0, 2, 1},
	{"luot_dao_tao", 10, 80, 0},        {"kinh_phi_cchc", 20000000, 300000000, 0},
	{"van_ban_di_tong_so", 400, 3000, 0}, {"tthc_ap_dung_iso", 50, 120, 1},
	{"so_nhiem_vu_ke_hoach", 2, 15, 1}, {"don_vi_trien_khai", 5, 60, 0},
	{"da_hoan_thanh", 1, 9, 1},         {"dang_thuc_hien", 0, 5, 1},
	{"chua_thuc_hien", 0, 2, 1},
	{"diem_tu_danh_gia", 7000, 9600, 1},
};

/* a <= b (both of the definition, when present): kept plausible. */
/* a = b * (lo..hi)% (both of the definition, when present), in this order. */
static const struct { const char *a, *b; int lo, hi; } leq[] = {
	{"nhiem_vu_hoan_thanh", "nhiem_vu_ke_hoach", 40, 100},
	{"ton_tai_da_khac_phuc", "ton_tai_phat_hien", 50, 100},
	{"vbqppl_trai_phap_luat", "vbqppl_ra_soat", 0, 20},
	{"vbqppl_da_xu_ly", "vbqppl_trai_phap_luat", 50, 100},
	{"dvc_muc_4", "dvc_muc_3", 10, 60},
	{"thu_xin_loi", "giai_quyet_tre_han", 30, 100},
	{"ho_so_dvc_muc_3_4", "ho_so_truc_tuyen", 60, 100},
	{"thanh_toan_truc_tuyen", "ho_so_dvc_muc_3_4", 5, 40},
	{"phieu_hai_long", "phieu_khao_sat", 80, 100},
	{"bien_che_co_mat", "bien_che_giao", 85, 100},
	{"van_ban_di_dien_tu", "van_ban_di_tong_so", 70, 100},
	{"van_ban_ky_so", "van_ban_di_dien_tu", 60, 100},
	{"tthc_ap_dung_iso", "tthc_tham_quyen", 50, 100},
};

/* bool column false -> the dependent column is empty */
static const struct { const char *flag, *dep; } needs[] = {
	{"co_ke_hoach_cchc", "ngay_ban_hanh_ke_hoach"},
	{"co_ke_hoach_cchc", "nhiem_vu_ke_hoach"},
	{"co_ke_hoach_cchc", "nhiem_vu_hoan_thanh"},
	{"co_ke_hoach_tu_kiem_tra", "don_vi_tu_kiem_tra"},
	{"ap_dung_iso", "tthc_ap_dung_iso"},
};

static int in_rules(const th_def *d, size_t c)
{
	for (size_t k = 0; k < d->n_rules; k++) {
		for (size_t j = 0; j < d->rules[k].n_left; j++)
			if (d->rules[k].left[j] == c)
				return 1;
		for (size_t j = 0; j < d->rules[k].n_right; j++)
			if (d->rules[k].right[j] == c)
				return 1;
	}
	return 0;
}

static int is_key(const th_def *d, size_t c)
{
	for (size_t k = 0; k < d->n_key; k++)
		if (d->key_cols[k] == c)
			return 1;
	return 0;
}

static int is_derive(const th_def *d, size_t c)
{
	return d->derive && (c == d->derive->status_col || c == d->derive->deadline_col ||
	                     c == d->derive->done_col);
}

static void set_text(th_value *v, const th_column *col, const char *text)
{
	th_value_clear(v);
	size_t max = col->max_len ? col->max_len : 2000;
	size_t n = strlen(text);
	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)text[n] & 0xC0) == 0x80)
			n--;   /* never cut a UTF-8 sequence */
	}
	v->s = strndup(text, n);
	if (v->s) {
		v->null = 0;
		v->len = (uint32_t)n;
	}
}

static int64_t clamp(const th_column *col, int64_t v)
{
	if (col->has_min && v < col->min)
		v = col->min;
	if (col->has_max && v > col->max)
		v = col->max;
	return v;
}

typedef struct {
	rng *r;
	const th_def *d;
	const th_unit *u;
	int32_t as_of, year_start;
	int mult;      /* size of the unit */
} genctx;

static void gen_cell(genctx *g, size_t c, size_t row, th_value *v)
{
	const th_def *d = g->d;
	const th_column *col = &d->cols[c];
	rng *r = g->r;
	th_value_clear(v);
	if (!col->required && !is_key(d, c) && !in_rules(d, c) && !is_derive(d, c) &&
	    next(r) % 25 == 0)
		return;   /* a null now and then, where allowed */
	v->null = 0;
	switch (col->type) {
	case TH_T_INT:
	case TH_T_DEC: {
		int64_t unit = 1;
		for (int i = 0; col->type == TH_T_DEC && i < col->scale && i < 18; i++)
			unit *= 10;
		int64_t lo = 0, hi = 20;
		int fixed = 0;
		for (size_t k = 0; k < sizeof mag / sizeof mag[0]; k++)
			if (strcmp(mag[k].id, col->id) == 0) {
				lo = mag[k].lo;
				hi = mag[k].hi;
				fixed = mag[k].fixed;
				if (col->type == TH_T_DEC)
					unit = 1;   /* the table gives scaled values */
				break;
			}
		if (!fixed) {
			lo *= g->mult;
			hi *= g->mult;
		}
		v->i = clamp(col, between(r, lo * unit, hi * unit));
		break;
	}
	case TH_T_ENUM:
		if (strcmp(col->id, "muc_tu_chu") == 0 && strcmp(g->u->kind, "agency") != 0) {
			v->null = 1;   /* only public service units declare their autonomy level */
			break;
		}
		v->i = is_key(d, c) ? (int64_t)(row % col->n_values) : between(r, 0, (int64_t)col->n_values - 1);
		break;
	case TH_T_DATE: {
		/* in the first months of the period's year, within the column's bounds */
		int32_t lo = add_days(g->year_start, -30), hi = add_days(g->year_start, 120);
		if (col->has_min && lo < col->min)
			lo = (int32_t)col->min;
		if (col->has_max && hi > col->max)
			hi = (int32_t)col->max;
		if (col->has_max && lo > col->max)
			lo = (int32_t)col->max;   /* a period outside the definition's years */
		if (col->has_min && hi < col->min)
			hi = (int32_t)col->min;
		if (hi < lo)
			hi = lo;
		v->i = add_days(lo, (long)between(r, 0, th_date_days(hi) - th_date_days(lo)));
		break;
	}
	case TH_T_BOOL:
		v->i = next(r) % 8 != 0;
		break;
	case TH_T_TEXT: {
		char buf[512];
		const char *id = col->id;
		if (is_key(d, c))
			snprintf(buf, sizeof buf, "NV%03zu", row + 1);
		else if (strncmp(id, "so_", 3) == 0)
			snprintf(buf, sizeof buf, "%d/%s-UBND", (int)between(r, 12, 480),
			         next(r) % 2 ? "KH" : "QĐ");
		else if (strstr(id, "don_vi"))
			snprintf(buf, sizeof buf, "%s", g->u->name);
		else if (strstr(id, "minh_chung"))
			snprintf(buf, sizeof buf, "Báo cáo số %d/BC-%s", (int)between(r, 5, 300), g->u->code);
		else if (strstr(id, "ly_do")) {
			v->null = 1;   /* set with the status below */
			break;
		} else if (d->n_key == 0 || strstr(id, "ket_qua") || strstr(id, "vuong_mac") ||
		           strstr(id, "de_xuat") || strstr(id, "nguyen_nhan") || strstr(id, "ton_tai"))
			snprintf(buf, sizeof buf, "%s.", narrative[next(r) % N_NARRATIVE]);
		else
			snprintf(buf, sizeof buf, "%s", phrases[(row + next(r) % 3) % N_PHRASES]);
		set_text(v, col, buf);
		break;
	}
	}
}

/* Splits total over the terms (random weights), respecting their minimums. */
static void split_total(rng *r, const th_def *d, th_report *rep, size_t row, const size_t *terms,
                        size_t n, int64_t total)
{
	uint64_t w[100], sum = 0;
	if (n == 0 || n > 100)
		return;
	int64_t mins = 0;
	for (size_t j = 0; j < n; j++) {
		const th_column *c = &d->cols[terms[j]];
		mins += c->has_min && c->min > 0 ? c->min : 0;
		w[j] = 1 + next(r) % 100;
		if (j == (n > 2 ? 1 : 0))
			w[j] += 150;   /* one dominant term, as in real figures */
		sum += w[j];
	}
	int64_t rest = total - mins, given = 0;
	for (size_t j = 0; j < n; j++) {
		const th_column *c = &d->cols[terms[j]];
		th_value *v = th_report_cell(rep, row, terms[j]);
		int64_t share = j + 1 == n ? rest - given : (int64_t)((double)rest * (double)w[j] / (double)sum);
		if (share < 0)
			share = 0;
		given += share;
		v->null = 0;
		v->i = share + (c->has_min && c->min > 0 ? c->min : 0);
	}
}

/* Makes every rule hold: the side with more terms (the breakdown) is
 * generated, its total split over the other side. */
static void fix_rules(rng *r, const th_def *d, th_report *rep, size_t row)
{
	for (size_t k = 0; k < d->n_rules; k++) {
		const th_rule *ru = &d->rules[k];
		const size_t *src = ru->right, *dst = ru->left;
		size_t ns = ru->n_right, nd = ru->n_left;
		if (ns < nd) {
			src = ru->left;
			dst = ru->right;
			ns = ru->n_left;
			nd = ru->n_right;
		}
		int64_t total = 0;
		for (size_t j = 0; j < ns; j++) {
			th_value *v = th_report_cell(rep, row, src[j]);
			if (v->null) {
				v->null = 0;
				v->i = 0;
			}
			total += v->i;
		}
		split_total(r, d, rep, row, dst, nd, total);
	}
}

static long col_of(const th_def *d, const char *id)
{
	for (size_t c = 0; c < d->n_cols; c++)
		if (strcmp(d->cols[c].id, id) == 0)
			return (long)c;
	return -1;
}

/* Plausibility beyond the rules: ratios of plain columns stay <= 1, the
 * known pairs a <= b, flags and what depends on them. */
static void fix_plausible(rng *r, const th_def *d, th_report *rep, size_t row)
{
	for (size_t k = 0; k < sizeof needs / sizeof needs[0]; k++) {
		long f = col_of(d, needs[k].flag), x = col_of(d, needs[k].dep);
		if (f < 0 || x < 0 || in_rules(d, (size_t)x))
			continue;
		th_value *fv = th_report_cell(rep, row, (size_t)f);
		if (!fv->null && fv->i == 0 && !d->cols[x].required)
			th_value_clear(th_report_cell(rep, row, (size_t)x));
	}
	for (size_t k = 0; k < sizeof leq / sizeof leq[0]; k++) {
		long a = col_of(d, leq[k].a), b = col_of(d, leq[k].b);
		if (a < 0 || b < 0 || in_rules(d, (size_t)a))
			continue;
		th_value *va = th_report_cell(rep, row, (size_t)a), *vb = th_report_cell(rep, row, (size_t)b);
		if (va->null || vb->null)
			continue;
		va->i = clamp(&d->cols[a], vb->i * between(r, leq[k].lo, leq[k].hi) / 100);
	}
	/* generic: a ratio whose numerator terms are plain columns outside the
	 * denominator and the rules gets numerator <= denominator */
	for (size_t k = 0; k < d->n_ratios; k++) {
		const th_ratio *ra = &d->ratios[k];
		int ok = 1;
		int64_t num = 0, den = 0;
		for (size_t j = 0; j < ra->n_num && ok; j++) {
			th_value *v = th_report_cell(rep, row, ra->num[j]);
			ok = ra->num_code[j] < 0 && !in_rules(d, ra->num[j]) && d->cols[ra->num[j]].type == TH_T_INT;
			for (size_t m = 0; m < ra->n_den && ok; m++)
				ok = ra->den[m] != ra->num[j];
			if (ok && !v->null)
				num += v->i;
		}
		for (size_t m = 0; m < ra->n_den && ok; m++) {
			th_value *v = th_report_cell(rep, row, ra->den[m]);
			ok = ra->den_code[m] < 0 && d->cols[ra->den[m]].type == TH_T_INT;
			if (ok && !v->null)
				den += v->i;
		}
		if (!ok || num <= den)
			continue;
		int64_t target = den * between(r, 50, 100) / 100;
		split_total(r, d, rep, row, ra->num, ra->n_num, target);
	}
}

/* PL2-like tasks: dates that tell a story, status from the derivation. */
static void gen_task(genctx *g, th_report *rep, size_t row)
{
	const th_derive *dv = g->d->derive;
	rng *r = g->r;
	th_value *dl = th_report_cell(rep, row, dv->deadline_col);
	th_value *dn = th_report_cell(rep, row, dv->done_col);
	th_value *st = th_report_cell(rep, row, dv->status_col);
	const th_column *dlc = &g->d->cols[dv->deadline_col];
	/* assigned in the first months of the year (or late the year before) */
	int32_t assigned = add_days(g->year_start, (long)between(r, -20, 110));
	if (assigned > g->as_of)
		assigned = add_days(g->as_of, -(long)between(r, 0, 60));   /* short periods */
	long c_doc = col_of(g->d, "ngay_van_ban");
	if (c_doc >= 0 && g->d->cols[c_doc].type == TH_T_DATE) {
		th_value *v = th_report_cell(rep, row, (size_t)c_doc);
		v->null = 0;
		v->i = assigned;
	}
	st->null = 1;   /* derived by th_report_validate */
	th_value_clear(dn);
	if (next(r) % 10 == 0) {
		th_value_clear(dl);
	} else {
		dl->null = 0;
		dl->i = clamp(dlc, add_days(assigned, (long)between(r, 30, 300)));
	}
	uint64_t p = next(r) % 100;
	if (p < 60) {
		/* done: usually before the deadline, sometimes after */
		int32_t when = dl->null ? add_days(assigned, (long)between(r, 10, 150))
		                        : add_days((int32_t)dl->i, (long)(p < 48 ? -between(r, 0, 40)
		                                                                   : between(r, 1, 45)));
		if (when < assigned)
			when = assigned;
		if (when <= g->as_of) {
			dn->null = 0;
			dn->i = when;
		}
	}
	if (dn->null) {
		if (!dl->null && dl->i >= g->as_of && p >= 90 && dv->code_of[TH_TASK_NOT_STARTED] >= 0) {
			st->null = 0;   /* declared: not started (agrees with "in progress") */
			st->i = dv->code_of[TH_TASK_NOT_STARTED];
		}
	}
	int late = (!dn->null && !dl->null && dn->i > dl->i) || (dn->null && !dl->null && g->as_of > dl->i);
	long c_why = col_of(g->d, "ly_do_cham");
	if (late && c_why >= 0 && g->d->cols[c_why].type == TH_T_TEXT)
		set_text(th_report_cell(rep, row, (size_t)c_why), &g->d->cols[c_why],
		         narrative[2 + next(r) % 3]);
}

static int in_rule_count(const th_def *d, size_t c)
{
	int n = 0;
	for (size_t k = 0; k < d->n_rules; k++) {
		for (size_t j = 0; j < d->rules[k].n_left; j++)
			n += d->rules[k].left[j] == c;
		for (size_t j = 0; j < d->rules[k].n_right; j++)
			n += d->rules[k].right[j] == c;
	}
	return n;
}

/* Revision K >= 2: the same report with a few figures corrected, every rule
 * still holding: two figures outside the rules go up, one pair of terms on
 * both sides of a rule goes up by the same amount; in a task list, one open
 * task is reported done and (even K) the last task is dropped. */
static void correct(const th_def *d, th_report *rep, uint64_t seed, int revision, int32_t as_of,
                    const char *code)
{
	rng m = {hstr(seed ^ (uint64_t)revision * 0x9E3779B97F4A7C15ULL, code)};
	if (rep->n_rows == 0)
		return;
	int changed = 0;
	for (int k = 0; k < 2; k++) {
		size_t row = (size_t)between(&m, 0, (int64_t)rep->n_rows - 1);
		for (size_t tries = 0; tries < 4 * d->n_cols; tries++) {
			size_t c = (size_t)between(&m, 0, (int64_t)d->n_cols - 1);
			const th_column *col = &d->cols[c];
			if (col->type != TH_T_INT || is_key(d, c) || in_rules(d, c))
				continue;
			th_value *v = th_report_cell(rep, row, c);
			int64_t nv = (v->null ? 0 : v->i) + between(&m, 1, 9) * revision;
			if ((col->has_max && nv > col->max) || (col->has_min && nv < col->min))
				continue;
			v->null = 0;
			v->i = nv;
			changed++;
			break;
		}
	}
	if (d->n_rules) {
		const th_rule *ru = &d->rules[next(&m) % d->n_rules];
		size_t row = (size_t)between(&m, 0, (int64_t)rep->n_rows - 1);
		long a = -1, b = -1;
		for (size_t j = 0; j < ru->n_left && a < 0; j++)
			if (in_rule_count(d, ru->left[j]) == 1 && d->cols[ru->left[j]].type == TH_T_INT)
				a = (long)ru->left[j];
		for (size_t j = ru->n_right; j-- > 0 && b < 0;)
			if (in_rule_count(d, ru->right[j]) == 1 && d->cols[ru->right[j]].type == TH_T_INT)
				b = (long)ru->right[j];
		th_value *va = a >= 0 ? th_report_cell(rep, row, (size_t)a) : NULL;
		th_value *vb = b >= 0 ? th_report_cell(rep, row, (size_t)b) : NULL;
		int64_t delta = between(&m, 1, 5) * revision;
		if (va && vb && !va->null && !vb->null &&
		    !(d->cols[a].has_max && va->i + delta > d->cols[a].max) &&
		    !(d->cols[b].has_max && vb->i + delta > d->cols[b].max)) {
			va->i += delta;
			vb->i += delta;
			changed++;
		}
	}
	if (d->derive) {
		const th_derive *dv = d->derive;
		for (size_t row = 0; row < rep->n_rows; row++) {
			th_value *dn = th_report_cell(rep, row, dv->done_col);
			if (!dn->null)
				continue;
			dn->null = 0;
			dn->i = add_days(as_of, -(long)between(&m, 0, 10));
			th_value *dl = th_report_cell(rep, row, dv->deadline_col);
			th_value *st = th_report_cell(rep, row, dv->status_col);
			st->null = 1;   /* derived again */
			if (!dl->null && dn->i <= dl->i) {
				long why = col_of(d, "ly_do_cham");
				if (why >= 0)
					th_value_clear(th_report_cell(rep, row, (size_t)why));
			}
			changed++;
			break;
		}
		if (rep->n_rows > 3 && revision % 2 == 0) {
			/* a task removed in the correction: free its text cells first */
			for (size_t c = 0; c < rep->n_cols; c++)
				th_value_clear(th_report_cell(rep, rep->n_rows - 1, c));
			rep->n_rows--;
			changed++;
		}
	}
	if (!changed) {
		/* nothing numeric to correct: amend a text */
		for (size_t c = 0; c < d->n_cols; c++) {
			th_value *v = th_report_cell(rep, 0, c);
			if (d->cols[c].type != TH_T_TEXT || is_key(d, c) || v->null)
				continue;
			char buf[4200];
			snprintf(buf, sizeof buf, "%.4000s (bổ sung lần %d)", v->s, revision);
			set_text(v, &d->cols[c], buf);
			break;
		}
	}
}

static th_report *generate(const th_def *d, const th_unit *u, const char *period, uint64_t seed,
                           int revision, int32_t as_of, int attempt)
{
	rng r = {hstr(hstr(seed * 0x100000001B3ULL + (uint64_t)attempt, u->code), d->id)};
	genctx g = {&r, d, u, as_of, (int32_t)(atoi(period) * 10000 + 101), 1};
	g.mult = strcmp(u->kind, "commune") == 0 ? 1 : strcmp(u->kind, "agency") == 0 ? 1
	         : strcmp(u->kind, "department") == 0 ? 4 : 6;
	th_report *rep = th_report_new(u->code, d->id, d->version, period, 0, d->n_cols);
	if (!rep)
		return NULL;
	rep->as_of = as_of;
	size_t nrows = d->n_key == 0 ? 1 : (size_t)between(&r, 4, 16);
	if (nrows > d->max_rows)
		nrows = d->max_rows;
	for (size_t i = 0; i < nrows; i++) {
		long row = th_report_add_row(rep);
		if (row < 0)
			goto fail;
		for (size_t c = 0; c < d->n_cols; c++)
			gen_cell(&g, c, (size_t)row, th_report_cell(rep, (size_t)row, c));
		if (d->derive)
			gen_task(&g, rep, (size_t)row);
		fix_rules(&r, d, rep, (size_t)row);
		fix_plausible(&r, d, rep, (size_t)row);
	}
	if (revision >= 2)
		correct(d, rep, seed, revision, as_of, u->code);
	return rep;
fail:
	th_report_destroy(&rep);
	return NULL;
}

static int mkdirs(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, 0755) && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: th-gen --units FILE --defs DIR --out DIR [options]\n"
	        "Writes generated appendix files OUT/<unit>/<appendix>-<period>.csv for every unit\n"
	        "that must submit each appendix.\n\n"
	        "  --units FILE      hierarchy file (schema/UNITS.md)\n"
	        "  --defs DIR        appendix definitions (schema/appendices)\n"
	        "  --out DIR         where to write\n"
	        "  --period P        period (default 2021)\n"
	        "  --seed N          seed (default 1)\n"
	        "  --unit CODE       only this unit (repeatable); default every unit\n"
	        "  --appendix LIST   comma-separated appendix ids (default all)\n"
	        "  --revision K      K >= 2 writes a corrected version (default 1)\n"
	        "  --as-of DATE      report date yyyy-mm-dd (default: 30 June for a year, else the\n"
	        "                    period's last day)\n"
	        "  --quiet           no summary line\n"
	        "  --help\n");
}

int main(int argc, char **argv)
{
	const char *units_path = NULL, *defs_dir = NULL, *out = NULL, *period = "2021", *apps = NULL;
	const char *as_of_s = NULL;
	uint64_t seed = 1;
	int revision = 1, quiet = 0;
	const char **only = calloc((size_t)argc + 1, sizeof *only);
	size_t n_only = 0;
	if (!only)
		return 1;
	static const struct option opts[] = {
		{"units", 1, 0, 'u'}, {"defs", 1, 0, 'd'}, {"out", 1, 0, 'o'}, {"period", 1, 0, 'p'},
		{"seed", 1, 0, 's'}, {"unit", 1, 0, 'U'}, {"appendix", 1, 0, 'a'}, {"revision", 1, 0, 'r'},
		{"as-of", 1, 0, 'A'}, {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "u:d:o:p:s:U:a:r:A:qh", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': units_path = optarg; break;
		case 'd': defs_dir = optarg; break;
		case 'o': out = optarg; break;
		case 'p': period = optarg; break;
		case 's': {
			char *end = NULL;
			errno = 0;
			seed = strtoull(optarg, &end, 10);
			if (errno || !end || *end || !*optarg) {
				fprintf(stderr, "th-gen: --seed %s: not a number\n", optarg);
				free(only);
				return 2;
			}
			break;
		}
		case 'U': only[n_only++] = optarg; break;
		case 'a': apps = optarg; break;
		case 'r':
			revision = atoi(optarg);
			if (revision < 1 || revision > 1000000) {
				fprintf(stderr, "th-gen: --revision %s: expected 1, 2, 3 ...\n", optarg);
				free(only);
				return 2;
			}
			break;
		case 'A': as_of_s = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); free(only); return 0;
		default: usage(stderr); free(only); return 2;
		}
	}
	if (!units_path || !out || optind != argc) {
		usage(stderr);
		free(only);
		return 2;
	}
	if (!defs_dir)
		defs_dir = th_def_default_dir();
	if (!th_period_valid(period)) {
		fprintf(stderr, "th-gen: period %s is not yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm\n", period);
		free(only);
		return 2;
	}
	/* default as-of: 30 June for a year (the mid-year inspection), else the
	 * period's last day */
	int year = atoi(period);
	int32_t as_of = (int32_t)(year * 10000 + 630);
	if (period[4] == '-') {
		int n = atoi(period + (period[5] == 'Q' || period[5] == 'H' ? 6 : 5));
		int month = period[5] == 'Q' ? n * 3 : period[5] == 'H' ? n * 6 : n;
		static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
		int day = mdays[(month - 1) % 12];
		if (month == 2 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)))
			day = 29;
		as_of = (int32_t)(year * 10000 + month * 100 + day);
	}
	if (as_of_s) {
		const char *why;
		if (th_parse_date(as_of_s, &as_of, &why)) {
			fprintf(stderr, "th-gen: --as-of %s: %s\n", as_of_s, why);
			free(only);
			return 2;
		}
	}
	th_diag *diag = th_diag_new();
	th_units *u = NULL;
	th_defset *defs = NULL;
	int rc = 1;
	if (th_units_load(units_path, &u, diag) || th_defset_load_dir(defs_dir, &defs, diag)) {
		for (size_t i = 0; i < th_diag_count(diag); i++)
			fprintf(stderr, "th-gen: %s\n", th_diag_text(diag, i));
		goto done;
	}
	if (apps) {
		/* every id of the list must name a known appendix */
		char list[256];
		snprintf(list, sizeof list, "%s", apps);
		for (char *save = NULL, *id = strtok_r(list, ",", &save); id; id = strtok_r(NULL, ",", &save))
			if (!th_defset_latest(defs, id)) {
				fprintf(stderr, "th-gen: --appendix: no definition of %s in %s\n", id, defs_dir);
				goto done;
			}
	}
	size_t files = 0, rows = 0;
	for (size_t k = 0; k < n_only; k++)
		if (th_units_find(u, only[k]) < 0) {
			fprintf(stderr, "th-gen: unknown unit %s in %s\n", only[k], units_path);
			goto done;
		}
	for (size_t i = 0; i < th_units_count(u); i++) {
		const th_unit *un = th_units_at(u, i);
		if (n_only) {
			int want = 0;
			for (size_t k = 0; k < n_only; k++)
				if (strcmp(only[k], un->code) == 0)
					want = 1;
			if (!want)
				continue;
		}
		for (size_t j = 0; j < th_defset_count(defs); j++) {
			const th_def *d = th_defset_at(defs, j);
			if (th_defset_latest(defs, d->id) != d || !th_def_expects(d, un->kind, un->code))
				continue;
			if (apps) {
				char list[256];
				snprintf(list, sizeof list, ",%s,", apps);
				char needle[80];
				snprintf(needle, sizeof needle, ",%s,", d->id);
				if (!strstr(list, needle))
					continue;
			}
			th_report *rep = NULL;
			th_diag *vd = th_diag_new();
			for (int attempt = 0; attempt < 50; attempt++) {
				th_diag_clear(vd);
				rep = generate(d, un, period, seed, revision, as_of, attempt);
				if (rep && th_report_validate(rep, d, vd) == 0)
					break;
				th_report_destroy(&rep);
			}
			if (!rep) {
				fprintf(stderr, "th-gen: could not generate a valid %s for %s:\n", d->id, un->code);
				for (size_t e = 0; e < th_diag_count(vd) && e < 10; e++)
					fprintf(stderr, "  %s\n", th_diag_text(vd, e));
				th_diag_destroy(&vd);
				goto done;
			}
			th_diag_destroy(&vd);
			char dir[4096], path[4200];
			snprintf(dir, sizeof dir, "%s/%s", out, un->code);
			snprintf(path, sizeof path, "%s/%s-%s.csv", dir, d->id, period);
			if (mkdirs(dir) || th_csv_write_report(path, rep, d)) {
				fprintf(stderr, "th-gen: cannot write %s: %s\n", path, strerror(errno));
				th_report_destroy(&rep);
				goto done;
			}
			files++;
			rows += rep->n_rows;
			th_report_destroy(&rep);
		}
	}
	if (!quiet)
		printf("th-gen: wrote %zu files (%zu rows) under %s\n", files, rows, out);
	rc = 0;
done:
	th_units_destroy(&u);
	th_defset_destroy(&defs);
	th_diag_destroy(&diag);
	free(only);
	return rc;
}

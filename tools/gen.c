/* th-gen -- writes plausible, internally consistent appendix files for the
 * units of a hierarchy, for tests, the demo and benchmarks.
 *
 * Deterministic: the same arguments give the same bytes.  Values respect
 * every constraint and cross-field rule of the definitions, read generically
 * from the definition files, so next year's templates need no change here.
 */
#include "th_csv.h"
#include "th_def.h"
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
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h * 1099511628211ULL;
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

static void gen_cell(rng *r, const th_def *d, size_t c, size_t row, int32_t as_of, int scale_hint,
                     th_value *v)
{
	const th_column *col = &d->cols[c];
	th_value_clear(v);
	if (!col->required && !is_key(d, c) && !in_rules(d, c) && next(r) % 20 == 0)
		return;   /* a null now and then */
	v->null = 0;
	int64_t lo, hi;
	switch (col->type) {
	case TH_T_INT:
	case TH_T_DEC: {
		int64_t unit = 1;
		for (int i = 0; col->type == TH_T_DEC && i < col->scale; i++)
			unit *= 10;
		lo = col->has_min ? col->min : 0;
		hi = col->has_max ? col->max : lo + (int64_t)scale_hint * 40 * unit;
		if (hi - lo > (int64_t)scale_hint * 60 * unit && !col->has_max)
			hi = lo + (int64_t)scale_hint * 60 * unit;
		if (col->has_max && col->max > lo + 1000000000LL)
			hi = lo + (int64_t)scale_hint * 1000000LL;
		v->i = between(r, lo, hi);
		break;
	}
	case TH_T_ENUM:
		v->i = is_key(d, c) ? (int64_t)(row % col->n_values) : between(r, 0, (int64_t)col->n_values - 1);
		break;
	case TH_T_DATE: {
		lo = col->has_min ? col->min : 20210101;
		hi = col->has_max ? col->max : 20211231;
		if (lo < 20201001 && hi > 20201001)
			lo = 20201001;
		if (hi > 20211231 && lo < 20211231)
			hi = 20211231;
		long span = th_date_days((int32_t)hi) - th_date_days((int32_t)lo);
		v->i = add_days((int32_t)lo, (long)between(r, 0, span));
		(void)as_of;
		break;
	}
	case TH_T_BOOL:
		v->i = next(r) % 4 != 0;
		break;
	case TH_T_TEXT: {
		char buf[256];
		if (is_key(d, c))
			snprintf(buf, sizeof buf, "NV%03zu", row + 1);
		else
			snprintf(buf, sizeof buf, "%s (%zu)", phrases[next(r) % 8], row + 1);
		size_t max = col->max_len ? col->max_len : 2000;
		if (strlen(buf) > max)
			buf[max] = 0;
		v->s = strdup(buf);
		v->len = v->s ? (uint32_t)strlen(v->s) : 0;
		if (!v->s)
			v->null = 1;
		break;
	}
	}
}

/* Makes every rule hold by setting the last left term. */
static void fix_rules(rng *r, const th_def *d, th_report *rep, size_t row)
{
	for (size_t k = 0; k < d->n_rules; k++) {
		const th_rule *ru = &d->rules[k];
		int64_t right = 0, left = 0;
		for (size_t j = 0; j < ru->n_right; j++)
			right += th_report_cell(rep, row, ru->right[j])->i;
		for (size_t j = 0; j + 1 < ru->n_left; j++)
			left += th_report_cell(rep, row, ru->left[j])->i;
		th_value *last = th_report_cell(rep, row, ru->left[ru->n_left - 1]);
		const th_column *lc = &d->cols[ru->left[ru->n_left - 1]];
		int64_t need = right - left;
		int64_t min = lc->has_min ? lc->min : 0;
		if (need < min) {
			/* grow the first right term */
			th_value *rt = th_report_cell(rep, row, ru->right[0]);
			rt->i += min - need + between(r, 0, 5);
			right = 0;
			for (size_t j = 0; j < ru->n_right; j++)
				right += th_report_cell(rep, row, ru->right[j])->i;
			need = right - left;
		}
		last->null = 0;
		last->i = need;
	}
}

static th_report *generate(const th_def *d, const th_unit *u, const char *period, uint64_t seed,
                           int revision, int32_t as_of, int attempt)
{
	rng r = {hstr(hstr(seed * 0x100000001B3ULL + (uint64_t)attempt, u->code), d->id)};
	int scale = strcmp(u->kind, "commune") == 0 ? 2 : strcmp(u->kind, "agency") == 0 ? 1 : 8;
	th_report *rep = th_report_new(u->code, d->id, d->version, period, 0, d->n_cols);
	if (!rep)
		return NULL;
	rep->as_of = as_of;
	size_t nrows = d->n_key == 0 ? 1 : (size_t)between(&r, 3, 14);
	if (nrows > d->max_rows)
		nrows = d->max_rows;
	for (size_t i = 0; i < nrows; i++) {
		long row = th_report_add_row(rep);
		if (row < 0)
			goto fail;
		for (size_t c = 0; c < d->n_cols; c++)
			gen_cell(&r, d, c, (size_t)row, as_of, scale, th_report_cell(rep, (size_t)row, c));
		if (d->derive) {
			th_value *dl = th_report_cell(rep, (size_t)row, d->derive->deadline_col);
			th_value *dn = th_report_cell(rep, (size_t)row, d->derive->done_col);
			th_value *st = th_report_cell(rep, (size_t)row, d->derive->status_col);
			st->null = 1;   /* derived by validation */
			if (next(&r) % 10 == 0)
				dl->null = 1;
			if (next(&r) % 3 == 0) {
				dn->null = 1;
			} else if (!dl->null) {
				dn->null = 0;
				dn->i = add_days((int32_t)dl->i, (long)between(&r, -60, 20));
				if (dn->i > as_of)
					dn->i = as_of;
			}
		}
		fix_rules(&r, d, rep, (size_t)row);
	}
	if (revision >= 2) {
		/* a correction: a few figures outside rules change */
		rng m = {hstr(seed ^ (uint64_t)revision * 0x9E3779B97F4A7C15ULL, u->code)};
		for (int k = 0; k < 3; k++) {
			size_t row = (size_t)between(&m, 0, (int64_t)rep->n_rows - 1);
			for (size_t tries = 0; tries < d->n_cols; tries++) {
				size_t c = (size_t)between(&m, 0, (int64_t)d->n_cols - 1);
				const th_column *col = &d->cols[c];
				if (col->type != TH_T_INT || is_key(d, c) || in_rules(d, c))
					continue;
				th_value *v = th_report_cell(rep, row, c);
				int64_t nv = (v->null ? 0 : v->i) + between(&m, 1, 9);
				if (col->has_max && nv > col->max)
					nv = col->has_min ? col->min : 0;
				v->null = 0;
				v->i = nv;
				break;
			}
		}
		if (d->n_key && rep->n_rows > 3 && revision % 2 == 0)
			rep->n_rows--;   /* a task removed in the correction */
	}
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
	        "  --as-of DATE      report date yyyy-mm-dd (default 30 June of the period's year)\n"
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
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'U': only[n_only++] = optarg; break;
		case 'a': apps = optarg; break;
		case 'r': revision = atoi(optarg); break;
		case 'A': as_of_s = optarg; break;
		case 'q': quiet = 1; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!units_path || !out || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (!defs_dir)
		defs_dir = TH_SOURCE_APPENDICES;
	if (!th_period_valid(period)) {
		fprintf(stderr, "th-gen: period %s is not yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm\n", period);
		return 2;
	}
	int32_t as_of = (int32_t)(atoi(period) * 10000 + 630);
	if (as_of_s) {
		const char *why;
		if (th_parse_date(as_of_s, &as_of, &why)) {
			fprintf(stderr, "th-gen: --as-of %s: %s\n", as_of_s, why);
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

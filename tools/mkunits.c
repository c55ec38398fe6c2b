/* th-mkunits -- builds the bundled hierarchy files (schema/UNITS.md) from the
 * official list of administrative units (GSO, 2021-02-01) and the list of
 * Hanoi's departments:
 *   th-mkunits hanoi    [--vn FILE] [--departments FILE] > data/hanoi-2021.units
 *   th-mkunits national [--vn FILE] [--departments FILE] > data/vn-2021.units
 * Deterministic: the same input gives the same bytes.  Contact details are
 * placeholders derived from the line number (data/README.md says so).
 */
#include "th_csv.h"
#include "th_error.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VN_FIELDS 9
#define MAX_DEPTS 64

typedef struct {
	int national;
	FILE *out;
	unsigned long n;             /* units written so far (contact seed) */
	/* departments */
	char *dcode[MAX_DEPTS], *dname[MAX_DEPTS];
	size_t nd;
	int dept_header;
	/* GSO rows */
	int vn_header;
	char last_prov[16], last_dist[16];
	/* bookkeeping of codes seen (districts and provinces arrive grouped, but
	 * check anyway with a small open-addressing set) */
	char **seen;
	size_t seen_cap, seen_n;
	long errors;
	const char *vn_path;
} mk;

static const char *fam[] = {"Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ",
                            "Đặng", "Bùi", "Đỗ", "Hồ", "Ngô", "Dương"};
static const char *mid[] = {"Văn", "Thị", "Minh", "Thu", "Quang", "Thanh", "Hữu", "Ngọc"};
static const char *giv[] = {"An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hải", "Hạnh",
                            "Hùng", "Lan", "Linh", "Long", "Mai", "Nam", "Phương", "Quân",
                            "Sơn", "Tâm", "Thảo", "Trang", "Tuấn", "Yến"};

/* Agencies (chi cục, ban) reporting through a Hanoi department. */
static const struct { const char *code, *parent, *name; } agencies[] = {
	{"SNV.BTG", "SNV", "Ban Tôn giáo"},
	{"SNV.BTDKT", "SNV", "Ban Thi đua - Khen thưởng"},
	{"SNV.CCVTLT", "SNV", "Chi cục Văn thư - Lưu trữ"},
	{"SNN.CCTL", "SNN", "Chi cục Thủy lợi"},
	{"SNN.CCKL", "SNN", "Chi cục Kiểm lâm"},
	{"SYT.CCDS", "SYT", "Chi cục Dân số - Kế hoạch hóa gia đình"},
	{"SYT.CCATVSTP", "SYT", "Chi cục An toàn vệ sinh thực phẩm"},
	{"SCT.CCQLTT", "SCT", "Cục Quản lý thị trường"},
	{"STC.CCTCDN", "STC", "Chi cục Tài chính doanh nghiệp"},
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

/* 1 when code was already seen; otherwise records it. -1 on ENOMEM. */
static int seen_add(mk *m, const char *code)
{
	if (m->seen_n * 2 >= m->seen_cap) {
		size_t cap = m->seen_cap ? m->seen_cap * 2 : 4096;
		char **ns = calloc(cap, sizeof *ns);
		if (!ns)
			return -1;
		for (size_t i = 0; i < m->seen_cap; i++) {
			if (!m->seen[i])
				continue;
			size_t h = hash_str(m->seen[i]) & (cap - 1);
			while (ns[h])
				h = (h + 1) & (cap - 1);
			ns[h] = m->seen[i];
		}
		free(m->seen);
		m->seen = ns;
		m->seen_cap = cap;
	}
	size_t h = hash_str(code) & (m->seen_cap - 1);
	while (m->seen[h]) {
		if (strcmp(m->seen[h], code) == 0)
			return 1;
		h = (h + 1) & (m->seen_cap - 1);
	}
	m->seen[h] = strdup(code);
	if (!m->seen[h])
		return -1;
	m->seen_n++;
	return 0;
}

static void unit(mk *m, const char *code, const char *parent, const char *kind, const char *name)
{
	unsigned long i = ++m->n;
	char lower[128];
	size_t k = 0;
	for (; code[k] && k + 1 < sizeof lower; k++)
		lower[k] = (code[k] >= 'A' && code[k] <= 'Z') ? (char)(code[k] - 'A' + 'a') : code[k];
	lower[k] = 0;
	fprintf(m->out, "%s\t%s\t%s\t%s\t%s %s %s\t0%lu%07lu\tcchc.%s@%s\n", code, parent, kind, name,
	        fam[i % 12], mid[(i / 12) % 8], giv[(i / 7) % 22],
	        m->national ? 20 + i % 9 : 24UL, 3000000 + (i * 7919) % 6999999, lower,
	        m->national ? "gov.vn" : "hanoi.gov.vn");
}

static int on_dept(void *ctx, char **f, size_t n, long line)
{
	mk *m = ctx;
	if (!m->dept_header) {
		m->dept_header = 1;
		if (n >= 2 && strcmp(f[0], "code") == 0)
			return 0;
	}
	if (n == 1 && f[0][0] == 0)
		return 0;
	if (n != 2 || !f[0][0] || !f[1][0]) {
		fprintf(stderr, "th-mkunits: departments:%ld: expected code,name\n", line);
		m->errors++;
		return 0;
	}
	if (m->nd == MAX_DEPTS) {
		fprintf(stderr, "th-mkunits: departments:%ld: more than %d departments\n", line, MAX_DEPTS);
		return TH_ETOOBIG;
	}
	m->dcode[m->nd] = strdup(f[0]);
	m->dname[m->nd] = strdup(f[1]);
	if (!m->dcode[m->nd] || !m->dname[m->nd])
		return TH_ENOMEM;
	m->nd++;
	return 0;
}

static int on_vn(void *ctx, char **f, size_t n, long line)
{
	mk *m = ctx;
	if (!m->vn_header) {
		m->vn_header = 1;
		if (n == VN_FIELDS && strcmp(f[0], "level1_id") == 0)
			return 0;
		fprintf(stderr, "th-mkunits: %s:%ld: expected the header level1_id,...\n", m->vn_path, line);
		m->errors++;
		return 0;
	}
	if (n == 1 && f[0][0] == 0)
		return 0;
	if (n != VN_FIELDS || !f[0][0] || !f[3][0] || strlen(f[0]) >= sizeof m->last_prov ||
	    strlen(f[3]) >= sizeof m->last_dist) {
		fprintf(stderr, "th-mkunits: %s:%ld: expected %d fields with province and district codes\n",
		        m->vn_path, line, VN_FIELDS);
		m->errors++;
		return 0;
	}
	if (!m->national && strcmp(f[0], "01") != 0)
		return 0;
	int r;
	if (m->national && strcmp(f[0], m->last_prov) != 0) {
		char key[32];
		snprintf(key, sizeof key, "P:%s", f[0]);
		if ((r = seen_add(m, key)) < 0)
			return TH_ENOMEM;
		if (r == 0) {
			unit(m, f[0], "VN", "province", f[1]);
			for (size_t i = 0; i < m->nd; i++) {
				char code[160];
				snprintf(code, sizeof code, "%s.%s", f[0], m->dcode[i]);
				unit(m, code, f[0], "department", m->dname[i]);
			}
		}
		snprintf(m->last_prov, sizeof m->last_prov, "%s", f[0]);
	}
	if (strcmp(f[3], m->last_dist) != 0) {
		char key[32];
		snprintf(key, sizeof key, "D:%s", f[3]);
		if ((r = seen_add(m, key)) < 0)
			return TH_ENOMEM;
		if (r == 0)
			unit(m, f[3], m->national ? f[0] : "01", "district", f[4]);
		snprintf(m->last_dist, sizeof m->last_dist, "%s", f[3]);
	}
	if (f[6][0]) {
		char key[32];
		snprintf(key, sizeof key, "C:%.20s", f[6]);
		if ((r = seen_add(m, key)) < 0)
			return TH_ENOMEM;
		if (r) {
			fprintf(stderr, "th-mkunits: %s:%ld: commune %s listed twice\n", m->vn_path, line, f[6]);
			m->errors++;
			return 0;
		}
		unit(m, f[6], f[3], "commune", f[7]);
	}
	return 0;
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			char *nb = realloc(buf, cap);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		size_t got = fread(buf + n, 1, cap - n, f);
		n += got;
		if (!got)
			break;
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(buf);
		return NULL;
	}
	*len = n;
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: th-mkunits hanoi|national [--vn FILE] [--departments FILE] [--out FILE]\n"
	        "Writes a hierarchy file (schema/UNITS.md) built from the GSO list of administrative\n"
	        "units of 2021-02-01 and the list of Hanoi's departments:\n"
	        "  hanoi      Hà Nội 2021: city 01, 22 departments (+ 9 agencies), 30 districts, 579 communes\n"
	        "  national   Việt Nam 2021: VN, 63 provinces (each with the department list), 705\n"
	        "             districts, 10,603 communes\n"
	        "  --vn FILE           default ../shared/data/vn-units-2021-02-01.csv\n"
	        "  --departments FILE  default ../shared/data/hanoi-departments-2021.csv\n"
	        "  --out FILE          default standard output\n"
	        "The output depends only on the inputs (same bytes every run).\n");
}

int main(int argc, char **argv)
{
	const char *vn = "../shared/data/vn-units-2021-02-01.csv";
	const char *deps = "../shared/data/hanoi-departments-2021.csv";
	const char *out = NULL;
	static const struct option opts[] = {{"vn", 1, 0, 'v'}, {"departments", 1, 0, 'd'},
	                                     {"out", 1, 0, 'o'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
	int ch;
	while ((ch = getopt_long(argc, argv, "v:d:o:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'v': vn = optarg; break;
		case 'd': deps = optarg; break;
		case 'o': out = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc || (strcmp(argv[optind], "hanoi") && strcmp(argv[optind], "national"))) {
		usage(stderr);
		return 2;
	}
	mk m = {0};
	m.national = strcmp(argv[optind], "national") == 0;
	m.vn_path = vn;
	int rc = 1;
	char *dtext = NULL, *vtext = NULL;
	size_t dlen = 0, vlen = 0;
	th_diag *diag = th_diag_new();
	if (!diag)
		goto done;
	if (!(dtext = slurp(deps, &dlen))) {
		fprintf(stderr, "th-mkunits: cannot read %s (use --departments FILE)\n", deps);
		goto done;
	}
	if (!(vtext = slurp(vn, &vlen))) {
		fprintf(stderr, "th-mkunits: cannot read %s (use --vn FILE)\n", vn);
		goto done;
	}
	if (th_csv_tokenize(dtext, dlen, ',', on_dept, &m, deps, diag) || m.errors || m.nd == 0) {
		for (size_t i = 0; i < th_diag_count(diag); i++)
			fprintf(stderr, "th-mkunits: %s\n", th_diag_text(diag, i));
		fprintf(stderr, "th-mkunits: %s: no usable department list\n", deps);
		goto done;
	}
	m.out = out ? fopen(out, "w") : stdout;
	if (!m.out) {
		fprintf(stderr, "th-mkunits: cannot write %s\n", out);
		goto done;
	}
	fprintf(m.out, "# tonghop unit hierarchy (format: schema/UNITS.md)\n"
	               "# generated by `th-mkunits %s` from the GSO list of 2021-02-01\n"
	               "# and shared/data/hanoi-departments-2021.csv; contact details are placeholders.\n"
	               "@version %s\n@effective 2021-02-01\ncode\tparent\tkind\tname\tperson\tphone\temail\n",
	        m.national ? "national" : "hanoi", m.national ? "vn-2021" : "hanoi-2021");
	if (m.national) {
		unit(&m, "VN", "", "country", "Việt Nam");
	} else {
		unit(&m, "01", "", "city", "Thành phố Hà Nội");
		for (size_t i = 0; i < m.nd; i++)
			unit(&m, m.dcode[i], "01", "department", m.dname[i]);
		for (size_t i = 0; i < sizeof agencies / sizeof agencies[0]; i++)
			unit(&m, agencies[i].code, agencies[i].parent, "agency", agencies[i].name);
	}
	int trc = th_csv_tokenize(vtext, vlen, ',', on_vn, &m, vn, diag);
	for (size_t i = 0; i < th_diag_count(diag); i++)
		fprintf(stderr, "th-mkunits: %s\n", th_diag_text(diag, i));
	if (trc || m.errors) {
		fprintf(stderr, "th-mkunits: %s: errors, output incomplete\n", vn);
		goto done;
	}
	if (fflush(m.out) || ferror(m.out)) {
		fprintf(stderr, "th-mkunits: write error\n");
		goto done;
	}
	rc = 0;
done:
	if (m.out && m.out != stdout && fclose(m.out) && rc == 0) {
		fprintf(stderr, "th-mkunits: write error on %s\n", out);
		rc = 1;
	}
	for (size_t i = 0; i < m.nd; i++) {
		free(m.dcode[i]);
		free(m.dname[i]);
	}
	for (size_t i = 0; i < m.seen_cap; i++)
		free(m.seen[i]);
	free(m.seen);
	free(dtext);
	free(vtext);
	th_diag_destroy(&diag);
	return rc;
}

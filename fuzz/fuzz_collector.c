/* fuzz_collector.c -- the collector's handling of one submit message against a
 * real temporary store: th_wire_decode_submit, th_report_validate of every decoded
 * report, th_store_apply of the group (no network, no scope: keys are not fuzzed).
 * The store is created once per process under $TMPDIR and removed at exit. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "th_store.h"
#include "th_units.h"
#include "th_wire.h"

#define UNITS_TEXT \
	"@version fz-1\n@effective 2021-01-01\ncode\tparent\tkind\tname\n" \
	"R\t\tcity\tThành phố\n" \
	"SNV\tR\tdepartment\tSở Nội vụ\n" \
	"D1\tR\tdistrict\tQuận 1\n" \
	"C1\tD1\tcommune\tPhường 1\n" \
	"C2\tD1\tcommune\tPhường 2\n"

static th_defset *defs;
static th_units *units;
static th_store *store;
static char dir[4096];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void cleanup(void)
{
	th_store_close(&store);
	if (dir[0])
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void init(void)
{
	const char *src = getenv("TH_SOURCE_DIR");
	char path[4096];
	snprintf(path, sizeof path, "%s/schema/appendices", src ? src : "");
	if (th_defset_load_dir(src ? path : TH_SOURCE_APPENDICES, &defs, NULL) != 0)
		abort();
	if (th_units_parse(UNITS_TEXT, strlen(UNITS_TEXT), "fuzz", &units, NULL) != 0)
		abort();
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof dir, "%s/thfuzz.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	th_store_opts o = {.map_size = 16u << 20, .max_map_size = 512u << 20};
	if (th_store_open(dir, &o, &store) != 0 || th_store_set_defs(store, defs) != 0 ||
	    th_store_add_hierarchy(store, units) != 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!store)
		init();
	th_submit_decoded s;
	const char *why;
	if (th_wire_decode_submit(data, size, defs, &th_limits_default, &s, &why) != 0)
		return 0;
	th_submission *subs = calloc(s.n_reports ? s.n_reports : 1, sizeof *subs);
	th_ack_result *res = calloc(s.n_reports ? s.n_reports : 1, sizeof *res);
	size_t n = 0;
	for (size_t i = 0; subs && res && i < s.n_reports; i++) {
		th_report *r = s.reports[i];
		if (!r || s.err[i])
			continue;
		const th_def *d = th_defset_get(defs, r->appendix, r->version);
		if (!d || th_report_validate(r, d, NULL) != 0)
			continue;
		subs[n].report = r;
		subs[n].sender = "fuzz";
		subs[n].result = &res[n];
		n++;
	}
	if (n) {
		uint64_t commit;
		int64_t when;
		th_changed_node *changed = NULL;
		size_t n_changed = 0;
		th_store_apply(store, subs, n, &commit, &when, &changed, &n_changed);
		free(changed);
	}
	for (size_t i = 0; res && i < n; i++)
		th_ack_result_free(&res[i]);
	free(res);
	free(subs);
	th_submit_decoded_free(&s);
	return 0;
}

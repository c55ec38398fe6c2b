/* fuzz_collector.c -- the collector's handling of one submit message against a
 * real temporary store, through its real modules: th_wire_decode_submit, the
 * ingest checks of every report (collector/ingest.h) under an agent key of the
 * root and under an admin key, th_store_apply of what passes, the answers
 * (th_ingest_answer) encoded as the ack.  No network; keys are not fuzzed.
 * The store is created once per process under $TMPDIR and removed at exit. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingest.h"
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
	/* the first byte of the id picks the key: an agent of the root or an admin */
	th_key key;
	memset(&key, 0, sizeof key);
	key.role = s.id & 1 ? TH_ROLE_ADMIN : TH_ROLE_AGENT;
	snprintf(key.unit, sizeof key.unit, "R");
	snprintf(key.comment, sizeof key.comment, "fuzz");
	size_t nr = s.n_reports ? s.n_reports : 1;
	th_checked *c = calloc(nr, sizeof *c);
	th_submission *subs = calloc(nr, sizeof *subs);
	th_ack_result *res = calloc(nr, sizeof *res);
	size_t *from = calloc(nr, sizeof *from), n = 0;
	for (size_t i = 0; c && subs && res && from && i < s.n_reports; i++)
		if (th_ingest_check(store, &key, 0, s.reports[i], s.err[i], s.why[i], &c[i], &res[i])) {
			from[n] = i;
			subs[n++] = c[i].sub;
		}
	if (n) {
		uint64_t commit;
		int64_t when;
		th_changed_node *changed = NULL;
		size_t n_changed = 0;
		th_store_apply(store, subs, n, &commit, &when, &changed, &n_changed);
		free(changed);
		for (size_t j = 0; j < n; j++) {
			th_ingest_answer(store, &subs[j].result, NULL, NULL, NULL, 0, &res[from[j]]);
			th_checked_release(&c[from[j]]);
		}
	}
	if (c && subs && res && from) {
		th_ack a = {.id = s.id, .results = res, .n_results = s.n_reports};
		for (size_t i = 0; i < s.n_reports; i++)
			th_ingest_answer(store, NULL, s.unit[i], s.appendix[i], s.period[i], s.rev[i], &res[i]);
		uint8_t *out = NULL;
		size_t olen = 0;
		if (th_wire_encode_ack(&a, &out, &olen) == 0)
			free(out);
	}
	for (size_t i = 0; res && i < s.n_reports; i++)
		th_ack_result_free(&res[i]);
	free(res);
	free(subs);
	free(c);
	free(from);
	th_submit_decoded_free(&s);
	return 0;
}

/* fuzz_csv.c -- the appendix-file reader and tokenizer over arbitrary bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "th_csv.h"

static th_defset *defs;

static int count(void *ctx, char **f, size_t n, long line)
{
	(void)f;
	(void)line;
	*(size_t *)ctx += n;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!defs) {
		const char *dir = getenv("TH_SOURCE_DIR");
		char path[4096];
		snprintf(path, sizeof path, "%s/schema/appendices", dir ? dir : "");
		if (th_defset_load_dir(dir ? path : TH_SOURCE_APPENDICES, &defs, NULL) != 0)
			abort();
	}
	size_t fields = 0;
	th_csv_tokenize((const char *)data, size, 0, count, &fields, "fuzz", NULL);
	th_diag *d = th_diag_new();
	th_report *r = NULL;
	if (th_csv_parse_report((const char *)data, size, "fuzz.csv", defs, NULL, &r, d) == 0)
		th_report_destroy(&r);
	for (size_t i = 0; i < th_diag_count(d); i++)
		th_diag_text(d, i);
	th_diag_destroy(&d);
	return 0;
}

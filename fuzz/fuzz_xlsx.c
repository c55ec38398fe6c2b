/* fuzz_xlsx.c -- the .xlsx reader (schema/xlsx/th_xlsx.c) over arbitrary bytes:
 * whatever the archive and its XML hold, it reads or refuses, never crashes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "th_input.h"
#include "th_xlsx.h"

static th_defset *defs;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!defs) {
		const char *dir = getenv("TH_SOURCE_DIR");
		char path[4096];
		snprintf(path, sizeof path, "%s/schema/appendices", dir ? dir : "");
		if (th_defset_load_dir(dir ? path : TH_SOURCE_APPENDICES, &defs, NULL) != 0)
			abort();
	}
	th_diag *d = th_diag_new();
	th_report **r = NULL;
	size_t n = 0;
	if (th_input_parse_reports(data, size, "fuzz.xlsx", defs, NULL, &r, &n, d) == 0)
		th_reports_free(&r, n);
	for (size_t i = 0; i < th_diag_count(d); i++)
		th_diag_text(d, i);
	th_diag_destroy(&d);
	return 0;
}

/* fuzz_wire.c -- every protocol decoder over arbitrary bytes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "th_wire.h"

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
	th_msg_type t;
	const char *why;
	th_wire_type(data, size, &t, &why);
	th_hello h;
	if (th_wire_decode_hello(data, size, &h, &why) == 0)
		th_hello_free(&h);
	th_welcome w;
	if (th_wire_decode_welcome(data, size, &w, &why) == 0)
		th_welcome_free(&w);
	th_ack a;
	if (th_wire_decode_ack(data, size, &a, &why) == 0)
		th_ack_free(&a);
	th_error_msg e;
	if (th_wire_decode_error(data, size, &e, &why) == 0)
		th_error_msg_free(&e);
	th_submit_decoded s;
	if (th_wire_decode_submit(data, size, defs, NULL, &s, &why) == 0) {
		for (size_t i = 0; i < s.n_reports; i++)
			if (s.reports[i]) {
				const th_def *d = th_defset_get(defs, s.reports[i]->appendix, s.reports[i]->version);
				if (d && th_report_validate(s.reports[i], d, NULL) == 0) {
					uint8_t hash[TH_HASH_LEN];
					th_report_hash(s.reports[i], d, hash);
				}
			}
		th_submit_decoded_free(&s);
	}
	return 0;
}

/* store_fixture.c -- see store_fixture.h. */
#include "store_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sf_submit(th_store *s, th_report *const *rs, size_t n, const char *sender, th_ack_result *res,
              th_changed_node **ch, size_t *nch, uint64_t *commit)
{
	th_key key;
	memset(&key, 0, sizeof key);
	key.role = TH_ROLE_ADMIN;
	snprintf(key.comment, sizeof key.comment, "%s", sender ? sender : "test");
	th_checked *c = calloc(n ? n : 1, sizeof *c);
	th_submission *subs = calloc(n ? n : 1, sizeof *subs);
	size_t *from = calloc(n ? n : 1, sizeof *from), ns = 0;
	if (!c || !subs || !from) {
		free(c);
		free(subs);
		free(from);
		return TH_ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		memset(&res[i], 0, sizeof res[i]);
		if (th_ingest_check(s, &key, 1, rs[i], TH_EPROTO, "did not decode", &c[i], &res[i])) {
			from[ns] = i;
			subs[ns++] = c[i].sub;
		}
	}
	uint64_t cid = 0;
	int64_t ct = 0;
	th_changed_node *chl = NULL;
	size_t nc = 0;
	int rc = ns ? th_store_apply(s, subs, ns, &cid, &ct, &chl, &nc) : TH_OK;
	for (size_t j = 0; j < ns; j++) {
		th_ingest_answer(s, &subs[j].result, NULL, NULL, NULL, 0, &res[from[j]]);
		th_checked_release(&c[from[j]]);
	}
	for (size_t i = 0; i < n; i++) {
		const th_report *r = rs[i];
		th_ingest_answer(s, NULL, r ? r->unit : NULL, r ? r->appendix : NULL,
		                 r ? r->period : NULL, r ? r->rev : 0, &res[i]);
	}
	if (commit)
		*commit = cid;
	if (ch) {
		*ch = chl;
		*nch = nc;
	} else {
		free(chl);
	}
	free(c);
	free(subs);
	free(from);
	return rc;
}

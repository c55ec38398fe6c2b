/* store_fixture.h -- reports into a store the way the collector sends them: each
 * through the collector's ingest checks (collector/ingest.h) under an admin key
 * whose scope is not checked, those that pass through th_store_apply in one group,
 * every answer through th_ingest_answer. */
#ifndef TH_STORE_FIXTURE_H
#define TH_STORE_FIXTURE_H

#include "ingest.h"

/* Submits rs[0..n) (not taken; a NULL entry is a report that did not decode,
 * TH_EPROTO) in one group with sender as the key's comment (NULL: "test").
 * res[0..n) are zeroed first, then hold each report's ack result (release each
 * with th_ack_result_free).  *ch / *nch (may be NULL) get the changed nodes,
 * *commit (may be NULL) the commit id.  Returns th_store_apply's code, 0 when
 * no report reached the store. */
int sf_submit(th_store *s, th_report *const *rs, size_t n, const char *sender, th_ack_result *res,
              th_changed_node **ch, size_t *nch, uint64_t *commit);

#endif

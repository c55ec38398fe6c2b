/* ingest.h -- every rule a report must pass before the store takes it, each
 * written once, where reports enter (DESIGN sections 4 and 8).
 *
 * In order: the report decoded; the key's role may submit, and only an admin
 * withdraws; the appendix version in force for the period (looked up once)
 * is the report's; the report validates against it; its canonical form and
 * hash; its unit is in the period's hierarchy; the key may file for that unit
 * (its subtree); the unit is among the appendix's submitters (withdrawals
 * exempt).  A report that passes becomes a th_submission the store trusts
 * (store/th_store.h); one that does not gets its answer here.  The store
 * decides the rest (dedup, revisions, overflow) and th_ingest_answer turns its
 * result into the report's ack.
 *
 * Uses the store through its read functions only (read transactions), so it
 * runs on the network thread while the committer writes. */
#ifndef TH_INGEST_H
#define TH_INGEST_H

#include "keys.h"
#include "th_store.h"
#include "th_wire.h"

/* A report that passed, and what its submission points to. */
typedef struct th_checked {
	th_submission sub;          /* for th_store_apply (may be copied) */
	uint8_t *canon;             /* owned: the canonical form sub.canon points to */
} th_checked;

/* Checks report r, sent under key; r NULL: it did not decode, derr (TH_E*) and
 * dwhy (may be NULL) say why.  insecure: every peer is an admin of the root and
 * scope is not checked.  Returns 1 when r passes: *c is filled (its sub.report
 * is r, its sub.sender points to key's comment, or to its unit when the comment
 * is empty, so key and r must outlive the submission; release with
 * th_checked_release) and res holds only the validation's warnings.  Returns 0
 * when r is refused: res holds the answer (status, code, message, row, column)
 * and *c is untouched.  res must be zeroed or hold an earlier result of this
 * report. */
int th_ingest_check(th_store *s, const th_key *key, int insecure, const th_report *r, int derr,
                    const char *dwhy, th_checked *c, th_ack_result *res);
/* Frees what th_ingest_check allocated in c. */
void th_checked_release(th_checked *c);

/* The ack result of a report once its group is done.  sr: the store's result of
 * its submission (th_store_apply), NULL when it did not go to the store (res
 * holds ingest's refusal then).  The warnings in res are kept.  The report's
 * identity (unit, appendix, period, rev: each may be NULL / 0) is filled where
 * res has none, and, when sr is NULL, the key's stored rev is read from the
 * store unless something set it. */
void th_ingest_answer(th_store *s, const th_store_result *sr, const char *unit,
                      const char *appendix, const char *period, uint64_t rev, th_ack_result *res);

#endif

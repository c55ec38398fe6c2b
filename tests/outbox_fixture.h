/* outbox_fixture.h -- outbox contents built through the library (publisher/
 * outbox.h) for the tests of the outbox, the agent and the drop folder.  Every
 * helper fails the running cmocka test on an unexpected outcome. */
#ifndef TH_OUTBOX_FIXTURE_H
#define TH_OUTBOX_FIXTURE_H

#include <stdint.h>

#include "outbox.h"

/* The test definitions: PL1 version 1 with the columns so (integer) and ten
 * (text), at most one row; PL8 version 1 keyed by ma (text) with the column
 * so (integer), many rows.  OF_PL1_TEXT, OF_PL8_TEXT are their texts. */
extern const char OF_PL1_TEXT[], OF_PL8_TEXT[];
const th_defset *of_defs(void);
const th_def *of_def(void);   /* PL1 */
/* Frees what of_defs keeps. */
void of_cleanup(void);
/* A one-row PL1 2021 report of unit holding v in so (ten null), fit for of_def(). */
th_report *of_report(const char *unit, int64_t v);
/* A hash whose first two bytes are a and b, the rest 0. */
void of_hash(uint8_t h[TH_HASH_LEN], uint8_t a, uint8_t b);
/* Applies one result (unit PL1 2021 rev, status st, store) as an ack, whose
 * commit and time are rev; asserts it answered a pending entry.  A rejection
 * carries code rule and the message "bad figures". */
void of_ack(th_outbox *ob, const char *unit, uint64_t rev, th_ack_status st,
            const uint8_t store[TH_STORE_UUID_LEN]);
/* Writes a valid PL1 2021 appendix file of unit to path (figures from seed). */
void of_pl1_file(const char *path, const char *unit, int seed);
/* 1 when content h of (unit, PL1, 2021) is in the history. */
int of_hist_has(th_outbox *ob, const char *unit, const uint8_t *h);

/* The retention case (history_retention in test_outbox.c and it_publisher.c):
 * U1 has OF_NREV revisions one day apart from OF_BASE (0..37 accepted, 38
 * rejected, 39 pending), U2 three old accepted ones.  Pruned with
 * OF_DAYS / OF_KEEP at OF_NOW, must[i] says which of U1's contents stay, and
 * kept how many history records in all. */
#define OF_NREV 40
#define OF_DAY_US 86400000000LL
#define OF_BASE 1600000000000000LL   /* 2020-09-13 */
#define OF_NOW (OF_BASE + 45 * OF_DAY_US)
#define OF_DAYS 10
#define OF_KEEP 3u
#define OF_LATEST_ACKED (OF_NREV - 3)

typedef struct of_retention {
	uint8_t store[TH_STORE_UUID_LEN], other[TH_STORE_UUID_LEN];
	uint8_t h[OF_NREV][TH_HASH_LEN], g[3][TH_HASH_LEN];
	uint64_t rev[OF_NREV], grev[3];
	int must[OF_NREV];
	size_t kept;
} of_retention;

/* Fills the outbox at dir (created, then closed again) with the case. */
void of_retention_fill(const char *dir, of_retention *c);

#endif

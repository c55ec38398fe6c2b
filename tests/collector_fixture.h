/* collector_fixture.h -- a live tonghop-collector with CURVE keys for integration tests:
 * hierarchy, keys and store in a temporary directory, a collector process on loopback,
 * and the client side (dealers, hello, submit, queries, a snapshot of the stored data).
 * Every helper fails the running cmocka test on an unexpected outcome. */
#ifndef TH_COLLECTOR_FIXTURE_H
#define TH_COLLECTOR_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <msgpack.h>
#include "th_wire.h"

/* The hierarchy every fixture serves: R > SNV, SNVX, D1 > C1, C2. */
#define CF_UNITS_TEXT \
	"@version it-1\n@effective 2021-01-01\ncode\tparent\tkind\tname\n" \
	"R\t\tcity\tThành phố\n" \
	"SNV\tR\tdepartment\tSở Nội vụ\n" \
	"SNVX\tR\tdepartment\tSở X\n" \
	"D1\tR\tdistrict\tQuận 1\n" \
	"C1\tD1\tcommune\tPhường 1\n" \
	"C2\tD1\tcommune\tPhường 2\n"

typedef struct cf_keypair {
	char pub[41], sec[41];
} cf_keypair;

#define CF_MAX_EXTRA 8

typedef struct cf_fixture {
	char *dir;                          /* temporary directory, removed by cf_teardown */
	char ingest[64], pubep[64], query[64];
	cf_keypair server;
	cf_keypair snv, snvx, d1, c1;       /* agents of their units */
	cf_keypair reader, reader2, admin;  /* readers and the admin of R */
	pid_t pid;                          /* the collector, 0 when not running */
	void *ctx;                          /* the test's ZeroMQ context */
	th_defset *defs;                    /* loaded from defsdir (cf_write_defs) */
	char defsdir[4096];
	const char *extra[CF_MAX_EXTRA + 1];   /* further collector options, NULL-terminated */
} cf_fixture;

/* The definitions the fixtures serve, written to dir (created): schema/appendices
 * with PL3 filed by every department, district and commune (no submitter_units), so
 * that the fixture's units D1, C1, C2 and SNVX may file the PL3 reports the tests are
 * built on; R (a city) files nothing, PL1 and PL2 are as shipped.  Returns dir. */
const char *cf_write_defs(const char *dir);

/* cmocka setup: a fixture whose collector also gets the options extra (NULL-terminated,
 * may be NULL; the strings must outlive the fixture), running when it returns. */
int cf_setup_with(void **state, const char *const *extra);
/* cf_setup_with(state, NULL). */
int cf_setup(void **state);
/* Stops the collector (SIGTERM, then SIGKILL), removes the directory, frees. */
int cf_teardown(void **state);

/* Writes the keys file with every fixture key except omit (NULL: all). */
void cf_write_keys(cf_fixture *f, const cf_keypair *omit);
/* Starts the collector on the fixture's directory; it must still run 0.3 s later. */
void cf_start(cf_fixture *f);

/* A DEALER (linger 0) connected to ep with key k (NULL: no CURVE). */
void *cf_dealer(cf_fixture *f, const char *ep, const cf_keypair *k);
/* Sends buf and waits up to ms for one reply (malloc'd, *olen bytes); NULL on timeout. */
uint8_t *cf_request(void *s, const uint8_t *buf, size_t len, int ms, size_t *olen);
/* Sends a hello; 0 with the decoded welcome (caller frees), -1 on no reply, or the decoder's
 * error when the reply is not a welcome (*err gets it decoded when err != NULL: free it). */
int cf_hello(void *s, th_welcome *w, th_error_msg *err);

/* A PL3 report of unit for 2021: one row (area 0, task T1), planned = done + a + b. */
th_report *cf_pl3(cf_fixture *f, const char *unit, uint64_t rev, int64_t done, int64_t a, int64_t b);
/* The same for any definition set and period (for tests with a fixture of their own). */
th_report *cf_pl3_report(const th_defset *defs, const char *unit, const char *period, uint64_t rev,
                         int64_t done, int64_t a, int64_t b);
/* Submits one report and decodes its one-result ack (caller frees); fails on anything else. */
void cf_submit(cf_fixture *f, void *s, th_report *r, th_ack *ack);
/* cf_submit's first result status (and its code when code != NULL). */
th_ack_status cf_submit_status(cf_fixture *f, void *s, th_report *r, int *code);

/* Query what ("node", "report", "history", "stats"...) of PL3/2021 at unit over the query
 * socket q (NULL: a new reader connection); the raw reply, malloc'd. */
uint8_t *cf_query(cf_fixture *f, void *q, const char *what, const char *unit, size_t *len);
/* Like cf_query, unpacked into u (destroy it and free *raw after use). */
void cf_query_unpacked(cf_fixture *f, const char *what, const char *unit, msgpack_unpacked *u,
                       char **raw);
/* The value of key name in a msgpack map, or NULL. */
const msgpack_object *cf_field(const msgpack_object *map, const char *name);
/* The total sum of column col of PL3/2021 at unit (-1 when null); *reported when not NULL. */
int64_t cf_query_total(cf_fixture *f, const char *unit, const char *col, uint32_t *reported);
/* One counter of the `stats` query; fails when absent. */
uint64_t cf_stat(cf_fixture *f, const char *name);

/* Every node, report and history of PL3/2021 as the query socket returns them, concatenated
 * into all (initialised here; destroy it). */
void cf_snapshot(cf_fixture *f, msgpack_sbuffer *all);
/* Fails unless a new snapshot is byte-identical to before. */
void cf_assert_same_snapshot(cf_fixture *f, const msgpack_sbuffer *before);

#endif

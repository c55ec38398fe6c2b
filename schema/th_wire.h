/* th_wire.h -- the agent <-> collector protocol (schema/PROTOCOL.md).
 *
 * Every message is one ZeroMQ frame holding one msgpack map with string keys;
 * "v" is the protocol version (TH_WIRE_VERSION) and "t" the message type.
 * Agents use DEALER sockets, the collector a ROUTER (the ROUTER's routing
 * frame is not part of the message).  Several submits may be in flight;
 * each carries an id the ack repeats.
 *
 * Decoders validate everything (types, lengths, UTF-8, limits, depth) and
 * never read past the buffer; they return TH_EPROTO / TH_ETOOBIG / TH_EUTF8 /
 * TH_ETYPE ... and a message in *why (static or in the out struct).
 * Decoded strings are copied; the out structs own them and are released with
 * the matching _free function.
 */
#ifndef TH_WIRE_H
#define TH_WIRE_H

#include <stdint.h>
#include <stddef.h>
#include "th_error.h"
#include "th_def.h"
#include "th_report.h"
#include "th_units.h"

#define TH_WIRE_VERSION 1
#define TH_STORE_UUID_LEN 16

typedef enum {
	TH_MSG_HELLO = 1,    /* agent -> collector */
	TH_MSG_WELCOME,      /* collector -> agent */
	TH_MSG_SUBMIT,       /* agent -> collector */
	TH_MSG_ACK,          /* collector -> agent */
	TH_MSG_ERROR,        /* collector -> agent: the whole message was refused */
	TH_MSG_QUERY,        /* tool -> collector */
	TH_MSG_RESULT        /* collector -> tool */
} th_msg_type;

typedef struct th_limits {
	uint32_t max_msg_bytes;     /* frame size (ZMQ_MAXMSGSIZE) */
	uint32_t max_reports;       /* reports per submit */
	uint32_t max_rows;          /* rows per report */
	uint32_t max_text;          /* bytes per text cell */
	uint32_t max_inflight;      /* unacknowledged submits per connection */
} th_limits;

/* Default limits (also the decoder's when NULL is passed). */
extern const th_limits th_limits_default;

/* Peeks at a frame: its type, or TH_EPROTO when it is not a tonghop message
 * of a supported version. */
int th_wire_type(const uint8_t *buf, size_t len, th_msg_type *type, const char **why);
/* The message's top-level "id" (an unsigned integer) without decoding the rest, for
 * answering a message refused before decoding (busy, limits) under its own id.
 * 0 when the message is not a map or has no such id. */
uint64_t th_wire_peek_id(const uint8_t *buf, size_t len);

/* --- hello / welcome ------------------------------------------------------ */
typedef struct th_hello {
	char *agent;          /* software name and version, informative */
	char *unit;           /* the unit the agent believes it is (checked against the key) */
	uint64_t id;
} th_hello;

typedef struct th_rev_entry {
	char *unit, *appendix, *period;
	uint64_t rev;
} th_rev_entry;

typedef struct th_welcome {
	uint64_t id;                          /* the hello's id */
	uint8_t store[TH_STORE_UUID_LEN];
	char *unit;                           /* the unit bound to the key */
	th_limits limits;
	char **defs;                          /* definition file texts in force */
	size_t n_defs;
	th_rev_entry *revs;                   /* highest stored rev of every key in scope */
	size_t n_revs;
} th_welcome;

int th_wire_encode_hello(const th_hello *h, uint8_t **out, size_t *len);
int th_wire_decode_hello(const uint8_t *buf, size_t len, th_hello *h, const char **why);
void th_hello_free(th_hello *h);
int th_wire_encode_welcome(const th_welcome *w, uint8_t **out, size_t *len);
int th_wire_decode_welcome(const uint8_t *buf, size_t len, th_welcome *w, const char **why);
void th_welcome_free(th_welcome *w);

/* --- submit ---------------------------------------------------------------- */
typedef struct th_submit {
	uint64_t id;          /* chosen by the agent, echoed in the ack */
	th_report **reports;
	size_t n_reports;
} th_submit;

/* Encodes reports with their definitions (cells by column type). */
int th_wire_encode_submit(uint64_t id, th_report *const *reports, size_t n,
                          const th_defset *defs, uint8_t **out, size_t *len);
/* Decodes a submit.  Each report is decoded against defs (its appendix and
 * version); a report that cannot be decoded does not fail the whole message:
 * its slot gets NULL and per-report errors go to report_err[i] / report_why[i]
 * (arrays of n_reports allocated by the decoder, owned by s).  A message
 * whose envelope is broken fails as a whole (TH_EPROTO ...).  Strings are
 * validated as UTF-8 and normalised to NFC. */
typedef struct th_submit_decoded {
	uint64_t id;
	size_t n_reports;
	th_report **reports;     /* NULL entries: see err/why */
	int *err;                /* TH_E* per report, 0 when decoded */
	char **why;              /* message per report, NULL when decoded */
	/* the identity fields of each report even when its body failed, so the
	 * ack can name it ("" when unreadable) */
	char **unit, **appendix, **period;
	uint64_t *rev;
} th_submit_decoded;
int th_wire_decode_submit(const uint8_t *buf, size_t len, const th_defset *defs,
                          const th_limits *lim, th_submit_decoded *s, const char **why);
void th_submit_decoded_free(th_submit_decoded *s);

/* --- ack ------------------------------------------------------------------- */
typedef enum {
	TH_ACK_ACCEPTED = 0,
	TH_ACK_DUPLICATE,
	TH_ACK_STALE,
	TH_ACK_RETRY_LATER,
	TH_ACK_REJECTED
} th_ack_status;
const char *th_ack_status_name(th_ack_status s);   /* "accepted", ... */

typedef struct th_ack_result {
	th_ack_status status;
	int code;                 /* TH_E* reason (0 for accepted/duplicate) */
	char *message;            /* human-readable reason, may be NULL */
	long row;                 /* 1-based row, 0 = none */
	char *column;             /* column id, may be NULL */
	uint64_t stored_rev;      /* the collector's rev for the key after this message */
	char *unit, *appendix, *period;
	uint64_t rev;             /* the rev this result answers */
	char **warnings;          /* e.g. derived status disagreements */
	size_t n_warnings;
} th_ack_result;

typedef struct th_ack {
	uint64_t id;
	uint8_t store[TH_STORE_UUID_LEN];
	uint64_t commit;          /* commit id of the group (0 when nothing was committed) */
	int64_t commit_time;      /* unix microseconds */
	th_ack_result *results;
	size_t n_results;
} th_ack;

int th_wire_encode_ack(const th_ack *a, uint8_t **out, size_t *len);
int th_wire_decode_ack(const uint8_t *buf, size_t len, th_ack *a, const char **why);
void th_ack_free(th_ack *a);
/* Frees the strings of one result and zeroes it. */
void th_ack_result_free(th_ack_result *r);

/* --- error ----------------------------------------------------------------- */
typedef struct th_error_msg {
	uint64_t id;              /* the refused message's id, 0 when unknown */
	int code;
	char *message;
	int retry;                /* 1 when the agent should retry later */
} th_error_msg;
int th_wire_encode_error(const th_error_msg *e, uint8_t **out, size_t *len);
int th_wire_decode_error(const uint8_t *buf, size_t len, th_error_msg *e, const char **why);
void th_error_msg_free(th_error_msg *e);

/* --- query socket and rollup stream (collector/QUERY.md) ---------------------
 * Code: schema/th_wire_query.c.  A query is a message like the others; a result
 * is {v, t: "result", id, ok, ...}; the rollup stream's body is a node map, the
 * same map the node and level answers hold. */
typedef struct th_query {
	uint64_t id;
	char q[16];                  /* "node", "level"... ("" when absent) */
	char appendix[TH_CODE_MAX + 1], period[TH_PERIOD_MAX + 1];
	char unit[TH_CODE_MAX + 1], parent[TH_CODE_MAX + 1];
	uint64_t level;              /* 0 when absent */
	char name[256];              /* units_submit: the file's name */
	const char *text;            /* units_submit: the file's bytes (str or bin), inside the
	                              * decoded frame, or NULL; not NUL-terminated */
	uint32_t text_len;
} th_query;
/* Encodes q (fields left empty / 0 / NULL are left out). */
int th_wire_encode_query(const th_query *q, uint8_t **out, size_t *len);
/* Decodes a query: the envelope as for every message, the fields above (a string
 * longer than its field, or of the wrong type, is TH_EPROTO "a field has the wrong
 * type or is too long"); unknown fields are skipped. */
int th_wire_decode_query(const uint8_t *buf, size_t len, th_query *q, const char **why);

/* A rollup node as both send it: unit, name, appendix, period, level, version (+1
 * at every change), commit, own, total (n_slots int64 each, laid out by the
 * definition), expected, reported, on_time, late, corrections. */
typedef struct th_wire_node {
	const char *unit, *name, *appendix, *period;   /* name "" when not known */
	uint32_t level;
	uint64_t version, commit;
	const int64_t *own, *total;                    /* NULL: an empty array */
	size_t n_slots;
	uint32_t expected, reported, on_time, late, corrections;
} th_wire_node;
/* The node map alone: the rollup stream's message body. */
int th_wire_encode_node(const th_wire_node *n, uint8_t **out, size_t *len);
/* A node map decoded (for subscribers): strings and vectors owned by it. */
typedef struct th_node_msg {
	char *unit, *name, *appendix, *period;
	uint32_t level;
	uint64_t version, commit;
	int64_t *own, *total;
	size_t n_slots;
	uint32_t expected, reported, on_time, late, corrections;
} th_node_msg;
/* Decodes a node map: unit, appendix, period, level, version, commit, own and total
 * are required (own and total of one length), the counts and name default to 0
 * and "", unknown fields are skipped.  TH_EPROTO / TH_EUTF8 / TH_ETOOBIG. */
int th_wire_decode_node(const uint8_t *buf, size_t len, th_node_msg *n, const char **why);
void th_node_msg_free(th_node_msg *n);

/* One revision of a report, as the history and report answers give it. */
typedef struct th_wire_revision {
	uint64_t rev, commit;
	int64_t time;                /* unix µs of its commit */
	const char *sender;
	int tombstone;
	const uint8_t *hash;         /* TH_HASH_LEN bytes, sent as hex */
} th_wire_revision;
/* A hierarchy version, as the hierarchies and units_submit answers give it. */
typedef struct th_wire_version {
	const char *version, *root, *origin;
	int32_t effective;           /* yyyymmdd */
	uint64_t units;
	uint32_t levels;
	int64_t loaded;              /* unix µs, 0 = unknown */
	const char *const *periods;  /* the periods bound to it */
	size_t n_periods;
} th_wire_version;

/* A list of maps (or strings) of one kind, built before the answer that holds it. */
typedef struct th_wire_list th_wire_list;
th_wire_list *th_wire_list_new(void);                          /* NULL: out of memory */
void th_wire_list_destroy(th_wire_list **l);
size_t th_wire_list_count(const th_wire_list *l);
void th_wire_list_node(th_wire_list *l, const th_wire_node *n);
/* A missing unit: {unit, name, parent, kind, person, phone, email}. */
void th_wire_list_unit(th_wire_list *l, const th_unit *u);
void th_wire_list_revision(th_wire_list *l, const th_wire_revision *v);
void th_wire_list_version(th_wire_list *l, const th_wire_version *v);
void th_wire_list_str(th_wire_list *l, const char *s);

/* An answer with ok true, its fields added in order, then th_result_finish. */
typedef struct th_result th_result;
th_result *th_result_new(uint64_t id);                        /* NULL: out of memory */
void th_result_destroy(th_result **r);
void th_result_str(th_result *r, const char *key, const char *val);
void th_result_uint(th_result *r, const char *key, uint64_t val);
void th_result_node(th_result *r, const char *key, const th_wire_node *n);
void th_result_version(th_result *r, const char *key, const th_wire_version *v);
void th_result_list(th_result *r, const char *key, const th_wire_list *l);
/* A map of counters: names[i] -> values[i]. */
void th_result_counters(th_result *r, const char *key, const char *const *names,
                        const uint64_t *values, size_t n);
/* {rev, commit, time, sender, tombstone, hash, version, as_of, columns: [ids], rows:
 * [[cells as in a submit]]}: rep read with its definition d. */
void th_result_report(th_result *r, const char *key, const th_wire_revision *info,
                      const th_report *rep, const th_def *d);
/* The frame (*out malloc'd); r stays the caller's to destroy. */
int th_result_finish(th_result *r, uint8_t **out, size_t *len);
/* An answer with ok false: reason th_errname(code), message (NULL: th_strerror), and
 * problems (may be NULL: left out) as an array. */
int th_wire_encode_refusal(uint64_t id, int code, const char *message, const th_wire_list *problems,
                           uint8_t **out, size_t *len);

#endif

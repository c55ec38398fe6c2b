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

#endif

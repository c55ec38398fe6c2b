/* test_outbox.c -- the agent's outbox (publisher/outbox.h) against the rules of
 * publisher/OUTBOX.md: a report is stamped and queued in one durable
 * transaction, leaves `pending` only on an ack, rejected reports are kept, the
 * latest acknowledged revision of every key is kept, the history's retention,
 * the re-sends after a store change, map growth, and damaged or foreign
 * environments refused with a clear error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "outbox.h"
#include "outbox_fixture.h"
#include "th_canon.h"
#include "testutil.h"

typedef struct fx {
	char *dir;
	char outbox[4200];
} fx;

/* A value being written by the format 1 writer below. */
typedef struct ob_bytes {
	uint8_t p[4096];
	size_t len;
} ob_bytes;

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->dir = tu_tmpdir();
	assert_non_null(f->dir);
	snprintf(f->outbox, sizeof f->outbox, "%s/outbox", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static uint64_t last_txn(th_outbox *ob)
{
	th_ob_info info;
	assert_int_equal(th_outbox_info(ob, &info), 0);
	return info.last_txn;
}

static int count_cb(void *ctx, const th_ob_entry *e)
{
	(void)e;
	(*(int *)ctx)++;
	return 0;
}

/* The outbox's rules without any process: rev stamping, same content,
 * acks, stale is final, old content is not re-stamped, rejected entries
 * cleared by a newer accepted rev, the store-change resend, reopening. */
static void outbox_rules(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	const char *why = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, &why), 0);
	th_report *r = th_report_new("U1", "PL1", 1, "2021", 0, 2);
	assert_non_null(r);
	assert_true(th_report_add_row(r) >= 0);
	th_report_cell(r, 0, 0)->null = 0;
	th_report_cell(r, 0, 0)->i = 5;
	th_value *t = th_report_cell(r, 0, 1);
	t->null = 0;
	t->s = strdup("Hà Nội");
	t->len = (uint32_t)strlen(t->s);
	uint8_t h1[TH_HASH_LEN] = {1}, h2[TH_HASH_LEN] = {2}, h3[TH_HASH_LEN] = {3},
	        h4[TH_HASH_LEN] = {4}, h5[TH_HASH_LEN] = {5};
	th_ob_enqueued e;
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h1, "f1", 0, 1000, &e), 0);
	assert_int_equal(e.outcome, TH_OB_NEW);
	assert_int_equal(e.rev, 1000);
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h1, "f1", 0, 500, &e), 0);
	assert_int_equal(e.outcome, TH_OB_SAME_PENDING);
	assert_int_equal(e.rev, 1000);
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h2, "f2", 0, 500, &e), 0);
	assert_int_equal(e.outcome, TH_OB_NEW);
	assert_int_equal(e.rev, 1001);   /* clock behind: last + 1 */
	th_ob_entry pe;
	assert_int_equal(th_outbox_get_pending(ob, "U1", "PL1", "2021", 1001, of_defs(), &pe), 0);
	assert_non_null(pe.report);
	assert_int_equal(pe.report->rev, 1001);
	assert_int_equal(pe.report->cells[0].i, 5);
	assert_string_equal(pe.report->cells[1].s, "Hà Nội");
	th_ob_entry_free(&pe);

	th_ack a;
	memset(&a, 0, sizeof a);
	a.id = 1;
	memset(a.store, 7, TH_STORE_UUID_LEN);
	a.commit = 9;
	th_ack_result res[2];
	memset(res, 0, sizeof res);
	for (int i = 0; i < 2; i++) {
		res[i].unit = "U1";
		res[i].appendix = "PL1";
		res[i].period = "2021";
		res[i].stored_rev = 1001;
	}
	res[0].status = TH_ACK_ACCEPTED;
	res[0].rev = 1001;
	res[1].status = TH_ACK_STALE;
	res[1].rev = 1000;
	a.results = res;
	a.n_results = 2;
	int oc[2];
	assert_int_equal(th_outbox_apply_ack(ob, &a, 5, oc), 0);
	assert_int_equal(oc[0], 1);
	assert_int_equal(oc[1], 1);
	assert_int_equal(th_outbox_apply_ack(ob, &a, 5, oc), 0);   /* a repeated ack */
	assert_int_equal(oc[0], 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TACKED), 1);
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h2, "f2", 0, 500, &e), 0);
	assert_int_equal(e.outcome, TH_OB_SAME_DELIVERED);
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h1, "f1", 0, 500, &e), 0);
	assert_int_equal(e.outcome, TH_OB_SAME_STALE);   /* stale is final */

	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h3, "f3", 0, 500, &e), 0);
	assert_int_equal(e.rev, 1002);
	res[0].status = TH_ACK_REJECTED;
	res[0].rev = 1002;
	res[0].code = TH_EUNIT;
	res[0].message = "unknown unit";
	a.n_results = 1;
	assert_int_equal(th_outbox_apply_ack(ob, &a, 6, oc), 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TREJECTED), 1);
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h4, "f4", 0, 500, &e), 0);
	assert_int_equal(e.rev, 1003);
	res[0].status = TH_ACK_ACCEPTED;
	res[0].rev = 1003;
	res[0].message = NULL;
	res[0].code = 0;
	assert_int_equal(th_outbox_apply_ack(ob, &a, 7, oc), 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TREJECTED), 0);
	/* older content again: not re-stamped; --force does */
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h2, "f2", 0, 500, &e), 0);
	assert_int_equal(e.outcome, TH_OB_OLD_CONTENT);
	assert_int_equal(e.rev, 1001);
	assert_int_equal(e.latest_rev, 1003);
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h2, "f2", 1, 500, &e), 0);
	assert_int_equal(e.outcome, TH_OB_NEW);
	assert_int_equal(e.rev, 1004);
	res[0].rev = 1004;
	assert_int_equal(th_outbox_apply_ack(ob, &a, 8, oc), 0);
	/* a welcome's revs raise the next stamp */
	th_rev_entry re = {"U1", "PL1", "2021", 5000};
	assert_int_equal(th_outbox_learn_revs(ob, &re, 1), 0);
	/* the same store: nothing; another store: the latest acked goes again */
	size_t rq = 99;
	uint8_t other[TH_STORE_UUID_LEN] = {9};
	assert_int_equal(th_outbox_store_seen(ob, a.store, &rq), 0);
	assert_int_equal(rq, 0);
	assert_int_equal(th_outbox_store_seen(ob, other, &rq), 0);
	assert_int_equal(rq, 1);
	int n = 0;
	assert_int_equal(th_outbox_list(ob, TH_OB_TPENDING, of_defs(), count_cb, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h5, "f5", 0, 500, &e), 0);
	assert_int_equal(e.outcome, TH_OB_NEW);
	assert_int_equal(e.rev, 5001);
	th_outbox_close(&ob);
	assert_int_equal(th_outbox_open(f->outbox, &ob, &why), 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 2);
	th_outbox_close(&ob);
	th_report_destroy(&r);
}

/* th_outbox_enqueue: the entry, the key's rev and the history record in one
 * committed transaction; a kill -9 right after it returns loses none of it. */
static void stamp_one_transaction(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	uint64_t t0 = last_txn(ob);
	th_outbox_close(&ob);
	uint8_t h[TH_HASH_LEN];
	of_hash(h, 0x42, 1);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		th_outbox *cob = NULL;
		th_report *r = of_report("U1", 7);
		th_ob_enqueued e;
		if (th_outbox_open(f->outbox, &cob, NULL) != 0 ||
		    th_outbox_enqueue(cob, r, of_def(), h, "u1.csv", 0, 123456, &e) != 0 || e.rev != 123456)
			_exit(3);
		raise(SIGKILL);   /* no close, no exit handlers */
		_exit(4);
	}
	int ws = 0;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFSIGNALED(ws));
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	assert_int_equal(last_txn(ob) - t0, 1);   /* one transaction: one fsync */
	th_ob_entry pe;
	assert_int_equal(th_outbox_get_pending(ob, "U1", "PL1", "2021", 123456, of_defs(), &pe), 0);
	assert_int_equal(pe.report->cells[0].i, 7);
	assert_int_equal(pe.report->rev, 123456);
	assert_string_equal(pe.file, "u1.csv");
	assert_memory_equal(pe.hash, h, TH_HASH_LEN);
	th_ob_entry_free(&pe);
	th_ob_hist hi;
	assert_int_equal(th_outbox_history_get(ob, "U1", "PL1", "2021", h, &hi), 0);
	assert_int_equal(hi.rev, 123456);
	assert_int_equal(hi.state, TH_OB_PENDING);
	assert_int_equal(hi.created, 123456);
	/* the key's rev was stored with it: a clock gone back still stamps above */
	uint8_t h2[TH_HASH_LEN];
	of_hash(h2, 0x42, 2);
	th_report *r = of_report("U1", 8);
	th_ob_enqueued e;
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h2, NULL, 0, 5, &e), 0);
	assert_int_equal(e.rev, 123457);
	th_report_destroy(&r);
	th_outbox_close(&ob);
}

/* th_outbox_enqueue_many: every report in one committed transaction, with
 * the answers n single calls would give; a report whose key is unusable
 * fails alone. */
static void outbox_batch_queue(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	th_report *a1 = of_report("U1", 1), *a2 = of_report("U1", 2), *b = of_report("U2", 3),
	          *bad = of_report("U3", 4);
	/* a unit code longer than any report key can hold */
	char *lng = malloc(600);
	assert_non_null(lng);
	memset(lng, 'X', 599);
	lng[599] = 0;
	free(bad->unit);
	bad->unit = lng;
	uint8_t h1[TH_HASH_LEN] = {1}, h2[TH_HASH_LEN] = {2}, h3[TH_HASH_LEN] = {3},
	        h4[TH_HASH_LEN] = {4};
	th_ob_item it[5];
	memset(it, 0, sizeof it);
	it[0].r = a1, it[0].hash = h1, it[0].file = "a1";
	it[1].r = bad, it[1].hash = h4, it[1].file = "bad";
	it[2].r = a2, it[2].hash = h2, it[2].file = "a2";   /* same key, newer content */
	it[3].r = b, it[3].hash = h3, it[3].file = "b";
	it[4].r = a1, it[4].hash = h1, it[4].file = "a1 again";
	for (int i = 0; i < 5; i++)
		it[i].def = of_def();
	uint64_t t0 = last_txn(ob);
	assert_int_equal(th_outbox_enqueue_many(ob, it, 5, 0, 1000), 0);
	assert_int_equal(last_txn(ob) - t0, 1);   /* one commit, one fsync */
	assert_int_equal(it[0].rc, 0);
	assert_int_equal(it[0].res.outcome, TH_OB_NEW);
	assert_int_equal(it[0].res.rev, 1000);
	assert_true(it[1].rc < 0);
	assert_int_equal(it[2].rc, 0);
	assert_int_equal(it[2].res.outcome, TH_OB_NEW);
	assert_int_equal(it[2].res.rev, 1001);   /* strictly increasing within the batch */
	assert_int_equal(it[3].rc, 0);
	assert_int_equal(it[3].res.rev, 1000);
	assert_int_equal(it[4].rc, 0);
	assert_int_equal(it[4].res.outcome, TH_OB_OLD_CONTENT);   /* superseded by rev 1001 */
	assert_int_equal(it[4].res.latest_rev, 1001);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 3);
	th_ob_entry pe;
	assert_int_equal(th_outbox_get_pending(ob, "U1", "PL1", "2021", 1001, of_defs(), &pe), 0);
	assert_int_equal(pe.report->cells[0].i, 2);
	assert_string_equal(pe.file, "a2");
	th_ob_entry_free(&pe);
	/* nothing new: nothing committed */
	t0 = last_txn(ob);
	assert_int_equal(th_outbox_enqueue_many(ob, it + 2, 2, 0, 2000), 0);
	assert_int_equal(it[2].res.outcome, TH_OB_SAME_PENDING);
	assert_int_equal(it[3].res.outcome, TH_OB_SAME_PENDING);
	assert_int_equal(last_txn(ob), t0);
	/* the batch survives a reopen */
	th_outbox_close(&ob);
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 3);
	th_outbox_close(&ob);
	th_report_destroy(&a1);
	th_report_destroy(&a2);
	th_report_destroy(&b);
	th_report_destroy(&bad);
}

/* What a rejected entry holds, read back through a listing. */
typedef struct rej_seen {
	int n;
	long row;
	int code;
	char message[128], column[64];
} rej_seen;

static int rej_cb(void *ctx, const th_ob_entry *e)
{
	rej_seen *s = ctx;
	s->n++;
	s->row = e->row;
	s->code = e->code;
	snprintf(s->message, sizeof s->message, "%s", e->message);
	snprintf(s->column, sizeof s->column, "%s", e->column);
	return 0;
}

/* Only an ack takes a report out of `pending`: retry_later keeps it (with the
 * reason, attempts counted), an ack for another rev or key changes nothing;
 * rejected goes to `rejected` with everything the collector said. */
static void pending_until_acked(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	uint8_t store[TH_STORE_UUID_LEN];
	memset(store, 3, sizeof store);
	uint8_t h[TH_HASH_LEN];
	of_hash(h, 9, 9);
	th_report *r = of_report("U1", 11);
	th_ob_enqueued e;
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h, "u1.csv", 0, 2000, &e), 0);
	th_ack a;
	memset(&a, 0, sizeof a);
	memcpy(a.store, store, sizeof store);
	th_ack_result res;
	memset(&res, 0, sizeof res);
	res.unit = "U1";
	res.appendix = "PL1";
	res.period = "2021";
	a.results = &res;
	a.n_results = 1;
	int oc = -1;
	/* answers about something else */
	res.status = TH_ACK_ACCEPTED;
	res.rev = 1999;
	assert_int_equal(th_outbox_apply_ack(ob, &a, 1, &oc), 0);
	assert_int_equal(oc, 0);
	res.rev = 2000;
	res.period = "2022";
	assert_int_equal(th_outbox_apply_ack(ob, &a, 1, &oc), 0);
	assert_int_equal(oc, 0);
	res.period = "2021";
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 1);
	/* retry later, twice sent */
	th_ob_entry pe;
	assert_int_equal(th_outbox_get_pending(ob, "U1", "PL1", "2021", 2000, of_defs(), &pe), 0);
	th_ob_entry *pp = &pe;
	assert_int_equal(th_outbox_note_sent(ob, &pp, 1), 0);
	assert_int_equal(th_outbox_note_sent(ob, &pp, 1), 0);
	th_ob_entry_free(&pe);
	res.status = TH_ACK_RETRY_LATER;
	res.code = TH_ENOSPC;
	res.message = "disk full";
	assert_int_equal(th_outbox_apply_ack(ob, &a, 3, &oc), 0);
	assert_int_equal(oc, 1);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 1);
	assert_int_equal(th_outbox_get_pending(ob, "U1", "PL1", "2021", 2000, of_defs(), &pe), 0);
	assert_int_equal(pe.attempts, 2);
	assert_int_equal(pe.code, TH_ENOSPC);
	assert_string_equal(pe.message, "disk full");
	assert_int_equal(pe.report->cells[0].i, 11);   /* the report is still there to send */
	th_ob_entry_free(&pe);
	/* rejected: final, with the reason, row and column */
	res.status = TH_ACK_REJECTED;
	res.code = TH_ERULE;
	res.message = "received != resolved + in progress";
	res.row = 3;
	res.column = "ho_so_truc_tiep";
	assert_int_equal(th_outbox_apply_ack(ob, &a, 4, &oc), 0);
	assert_int_equal(oc, 1);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TREJECTED), 1);
	assert_int_equal(th_outbox_count(ob, TH_OB_TACKED), 0);
	th_ob_hist hi;
	assert_int_equal(th_outbox_history_get(ob, "U1", "PL1", "2021", h, &hi), 0);
	assert_int_equal(hi.state, TH_OB_REJECTED);
	th_outbox_close(&ob);
	/* the rejection survives a reopen, every field of it */
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	rej_seen seen;
	memset(&seen, 0, sizeof seen);
	assert_int_equal(th_outbox_list(ob, TH_OB_TREJECTED, 0, rej_cb, &seen), 0);
	assert_int_equal(seen.n, 1);
	assert_int_equal(seen.code, TH_ERULE);
	assert_int_equal(seen.row, 3);
	assert_string_equal(seen.message, "received != resolved + in progress");
	assert_string_equal(seen.column, "ho_so_truc_tiep");
	/* content that was rejected may be sent again (the rules may have changed) */
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h, "u1.csv", 0, 2100, &e), 0);
	assert_int_equal(e.outcome, TH_OB_NEW);
	assert_int_equal(e.rev, 2100);
	/* the agent's own rejection: a pending entry only */
	assert_int_equal(th_outbox_reject_pending(ob, "U1", "PL1", "2021", 2100, TH_ETOOBIG,
	                                          "too big for the collector"),
	                 0);
	assert_int_equal(th_outbox_reject_pending(ob, "U1", "PL1", "2021", 2100, TH_ETOOBIG, "again"),
	                 TH_ENOTFOUND);
	assert_int_equal(th_outbox_count(ob, TH_OB_TREJECTED), 2);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 0);
	th_outbox_close(&ob);
	th_report_destroy(&r);
}

/* The rejected table keeps the collector's reason, row and column; a later
 * accepted revision of the key clears older rejections, a stale answer does
 * not. */
static void rejected_kept(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	uint8_t store[TH_STORE_UUID_LEN];
	memset(store, 4, sizeof store);
	uint8_t h1[TH_HASH_LEN], h2[TH_HASH_LEN], h3[TH_HASH_LEN];
	of_hash(h1, 1, 1);
	of_hash(h2, 1, 2);
	of_hash(h3, 1, 3);
	th_report *r = of_report("U1", 1);
	th_ob_enqueued e1, e2, e3;
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h1, NULL, 0, 100, &e1), 0);
	of_ack(ob, "U1", e1.rev, TH_ACK_REJECTED, store);
	rej_seen s;
	memset(&s, 0, sizeof s);
	assert_int_equal(th_outbox_list(ob, TH_OB_TREJECTED, 0, rej_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.code, TH_ERULE);
	assert_string_equal(s.message, "bad figures");
	/* a newer revision answered stale: the rejection stays */
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h2, NULL, 0, 200, &e2), 0);
	of_ack(ob, "U1", e2.rev, TH_ACK_STALE, store);
	assert_int_equal(th_outbox_count(ob, TH_OB_TREJECTED), 1);
	/* a newer revision accepted: the older rejection goes */
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h3, NULL, 0, 300, &e3), 0);
	of_ack(ob, "U1", e3.rev, TH_ACK_ACCEPTED, store);
	assert_int_equal(th_outbox_count(ob, TH_OB_TREJECTED), 0);
	th_outbox_close(&ob);
	th_report_destroy(&r);
}

typedef struct acked_seen {
	int n;
	uint64_t rev;
	th_ob_state state;
	int64_t v;
} acked_seen;

static int acked_cb(void *ctx, const th_ob_entry *e)
{
	acked_seen *s = ctx;
	s->n++;
	s->rev = e->rev;
	s->state = e->state;
	s->v = e->report ? e->report->cells[0].i : -1;
	return 0;
}

/* `acked` holds one entry per key: the highest acknowledged revision with its
 * report.  A late ack of an older revision does not replace it; a stale answer
 * fills it only when nothing is there. */
static void latest_acked_kept(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	uint8_t store[TH_STORE_UUID_LEN];
	memset(store, 5, sizeof store);
	uint8_t h[3][TH_HASH_LEN];
	uint64_t rev[3];
	for (int i = 0; i < 3; i++) {
		of_hash(h[i], 2, (uint8_t)i);
		th_report *r = of_report("U1", 10 + i);
		th_ob_enqueued e;
		assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h[i], NULL, 0, 1000 + i, &e), 0);
		rev[i] = e.rev;
		th_report_destroy(&r);
	}
	of_ack(ob, "U1", rev[1], TH_ACK_ACCEPTED, store);
	of_ack(ob, "U1", rev[0], TH_ACK_DUPLICATE, store);   /* late: older */
	acked_seen s = {0};
	assert_int_equal(th_outbox_list(ob, TH_OB_TACKED, of_defs(), acked_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.rev, rev[1]);
	assert_int_equal(s.state, TH_OB_ACCEPTED);
	assert_int_equal(s.v, 11);
	of_ack(ob, "U1", rev[2], TH_ACK_STALE, store);       /* does not replace an accepted one */
	memset(&s, 0, sizeof s);
	assert_int_equal(th_outbox_list(ob, TH_OB_TACKED, of_defs(), acked_cb, &s), 0);
	assert_int_equal(s.rev, rev[1]);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 0);
	/* a key whose only answer is stale keeps that answer (a receipt) */
	th_report *r = of_report("U2", 1);
	uint8_t g[TH_HASH_LEN];
	of_hash(g, 3, 0);
	th_ob_enqueued e;
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), g, NULL, 0, 5000, &e), 0);
	of_ack(ob, "U2", e.rev, TH_ACK_STALE, store);
	assert_int_equal(th_outbox_count(ob, TH_OB_TACKED), 2);
	/* stale is final: the same content is not stamped again */
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), g, NULL, 0, 6000, &e), 0);
	assert_int_equal(e.outcome, TH_OB_SAME_STALE);
	th_report_destroy(&r);
	th_outbox_close(&ob);
}

/* A welcome whose revs show an acknowledged revision missing (a backup of the
 * same store restored) queues exactly those again, same rev, with report. */
static void requeue_behind_collector(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	uint8_t store[TH_STORE_UUID_LEN];
	memset(store, 6, sizeof store);
	const char *units[3] = {"U1", "U2", "U3"};
	uint64_t rev[3];
	for (int i = 0; i < 3; i++) {
		uint8_t h[TH_HASH_LEN];
		of_hash(h, 4, (uint8_t)i);
		th_report *r = of_report(units[i], 20 + i);
		th_ob_enqueued e;
		assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h, NULL, 0, 7000, &e), 0);
		rev[i] = e.rev;
		th_report_destroy(&r);
		of_ack(ob, units[i], rev[i], TH_ACK_ACCEPTED, store);
	}
	/* U1 as stored, U2 below ours, U3 absent */
	th_rev_entry revs[2] = {{"U1", "PL1", "2021", rev[0]}, {"U2", "PL1", "2021", rev[1] - 1}};
	size_t n = 0;
	assert_int_equal(th_outbox_requeue_behind(ob, revs, 2, &n), 0);
	assert_int_equal(n, 2);
	th_ob_entry pe;
	assert_int_equal(th_outbox_get_pending(ob, "U1", "PL1", "2021", rev[0], of_defs(), &pe), TH_ENOTFOUND);
	assert_int_equal(th_outbox_get_pending(ob, "U2", "PL1", "2021", rev[1], of_defs(), &pe), 0);
	assert_int_equal(pe.resend, 1);
	assert_int_equal(pe.report->cells[0].i, 21);
	th_ob_entry_free(&pe);
	assert_int_equal(th_outbox_get_pending(ob, "U3", "PL1", "2021", rev[2], of_defs(), &pe), 0);
	th_ob_entry_free(&pe);
	/* asked again: they are pending already, nothing more */
	assert_int_equal(th_outbox_requeue_behind(ob, revs, 2, &n), 0);
	assert_int_equal(n, 0);
	th_outbox_close(&ob);
}

/* Many revisions of one key: pruning keeps the latest acknowledged one (with
 * its report), pending and rejected ones, the last K contents and those
 * younger than N days; a kill -9 between its transactions loses none of
 * that; the strictest bounds keep only what is needed; a store change still
 * resends the latest acknowledged revision. */
static int kill_after(void *ctx, const th_ob_prune_stats *st)
{
	if (st->txns >= *(size_t *)ctx)
		raise(SIGKILL);
	return 0;
}

static void history_retention(void **state)
{
	fx *f = *state;
	of_retention c;
	of_retention_fill(f->outbox, &c);

	/* a pass killed -9 after its third transaction (two deletions each) */
	th_ob_retention rt;
	memset(&rt, 0, sizeof rt);
	rt.days = OF_DAYS;
	rt.revs = OF_KEEP;
	rt.batch = 2;
	size_t kill_at = 3;
	rt.progress = kill_after;
	rt.ctx = &kill_at;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		th_outbox *cob = NULL;
		if (th_outbox_open(f->outbox, &cob, NULL) != 0)
			_exit(3);
		th_ob_prune_stats st;
		th_outbox_prune(cob, &rt, OF_NOW, &st);
		_exit(4);   /* not reached: killed */
	}
	int ws = 0;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFSIGNALED(ws));
	assert_int_equal(WTERMSIG(ws), SIGKILL);
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	assert_int_equal(th_outbox_history_count(ob), OF_NREV + 3 - kill_at * rt.batch);
	for (int i = 0; i < OF_NREV; i++)
		if (c.must[i])
			assert_true(of_hist_has(ob, "U1", c.h[i]));
	assert_int_equal(th_outbox_count(ob, TH_OB_TACKED), 2);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 1);
	assert_int_equal(th_outbox_count(ob, TH_OB_TREJECTED), 1);

	/* the next pass finishes the job; another finds nothing */
	rt.progress = NULL;
	rt.batch = 0;
	th_ob_prune_stats st;
	assert_int_equal(th_outbox_prune(ob, &rt, OF_NOW, &st), 0);
	assert_int_equal(st.pruned, OF_NREV + 3 - kill_at * 2 - c.kept);
	assert_int_equal(th_outbox_history_count(ob), c.kept);
	for (int i = 0; i < OF_NREV; i++)
		assert_int_equal(of_hist_has(ob, "U1", c.h[i]), c.must[i]);
	for (int i = 0; i < 3; i++)
		assert_true(of_hist_has(ob, "U2", c.g[i]));
	assert_int_equal(th_outbox_prune(ob, &rt, OF_NOW, &st), 0);
	assert_int_equal(st.pruned, 0);
	assert_int_equal(st.txns, 0);
	/* a kept old content is still refused */
	th_report *r = of_report("U1", 0);
	th_ob_enqueued e;
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), c.h[OF_NREV - 4], "x", 0, OF_NOW, &e), 0);
	assert_int_equal(e.outcome, TH_OB_OLD_CONTENT);
	assert_int_equal(e.rev, c.rev[OF_NREV - 4]);

	/* the strictest bounds: only what is needed stays */
	memset(&rt, 0, sizeof rt);
	assert_int_equal(th_outbox_prune(ob, &rt, OF_NOW, &st), 0);
	assert_true(st.pruned > 0);
	for (int i = 0; i < OF_NREV; i++)
		assert_int_equal(of_hist_has(ob, "U1", c.h[i]), i >= OF_LATEST_ACKED);
	assert_true(of_hist_has(ob, "U2", c.g[2]));
	assert_false(of_hist_has(ob, "U2", c.g[0]));
	assert_int_equal(th_outbox_history_count(ob), 4);

	/* a store change resends the latest acknowledged revision of each key,
	 * with its report */
	size_t nq = 0;
	assert_int_equal(th_outbox_store_seen(ob, c.other, &nq), 0);
	assert_int_equal(nq, 2);
	th_ob_entry pe;
	assert_int_equal(
		th_outbox_get_pending(ob, "U1", "PL1", "2021", c.rev[OF_LATEST_ACKED], of_defs(), &pe), 0);
	assert_int_equal(pe.resend, 1);
	assert_non_null(pe.report);
	assert_int_equal(pe.report->cells[0].i, 100 + OF_LATEST_ACKED);
	assert_int_equal(pe.report->rev, c.rev[OF_LATEST_ACKED]);
	th_ob_entry_free(&pe);
	assert_int_equal(th_outbox_get_pending(ob, "U2", "PL1", "2021", c.grev[2], of_defs(), &pe), 0);
	assert_int_equal(pe.report->cells[0].i, 202);
	th_ob_entry_free(&pe);
	/* the price of pruning, as documented: a pruned content is new again */
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), c.h[0], "x", 0, OF_NOW, &e), 0);
	assert_int_equal(e.outcome, TH_OB_NEW);
	assert_true(e.rev > c.rev[OF_NREV - 1]);
	th_report_destroy(&r);
	th_outbox_close(&ob);
}

/* The map starts at 16 MiB and doubles on MDB_MAP_FULL, replaying the
 * transaction: a batch larger than the map is queued whole, and reads back. */
static void map_growth(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	th_ob_info info;
	assert_int_equal(th_outbox_info(ob, &info), 0);
	size_t map0 = info.map_size;
	enum { N = 120, TEXT = 200 * 1024 };   /* 24 MB of reports */
	th_report *r[N];
	uint8_t h[N][TH_HASH_LEN];
	th_ob_item it[N];
	memset(it, 0, sizeof it);
	char unit[16];
	for (int i = 0; i < N; i++) {
		snprintf(unit, sizeof unit, "U%03d", i);
		r[i] = th_report_new(unit, "PL1", 1, "2021", 0, 2);
		assert_non_null(r[i]);
		assert_true(th_report_add_row(r[i]) >= 0);
		th_value *v = th_report_cell(r[i], 0, 1);
		v->null = 0;
		v->s = malloc(TEXT + 1);
		assert_non_null(v->s);
		memset(v->s, 'a' + i % 26, TEXT);
		v->s[TEXT] = 0;
		v->len = TEXT;
		of_hash(h[i], 5, (uint8_t)i);
		it[i].r = r[i];
		it[i].def = of_def();
		it[i].hash = h[i];
	}
	assert_int_equal(th_outbox_enqueue_many(ob, it, N, 0, 1000), 0);
	for (int i = 0; i < N; i++) {
		assert_int_equal(it[i].rc, 0);
		assert_int_equal(it[i].res.outcome, TH_OB_NEW);
	}
	assert_int_equal(th_outbox_info(ob, &info), 0);
	assert_true(info.map_size > map0);
	assert_true(info.used_bytes > map0);
	th_outbox_close(&ob);
	/* reopened: the grown map is kept, every report reads back */
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), N);
	for (int i = 0; i < N; i += 17) {
		th_ob_entry pe;
		assert_int_equal(th_outbox_get_pending(ob, r[i]->unit, "PL1", "2021", 1000, of_defs(), &pe), 0);
		assert_int_equal(pe.report->cells[1].len, TEXT);
		assert_memory_equal(pe.report->cells[1].s, r[i]->cells[1].s, TEXT);
		th_ob_entry_free(&pe);
	}
	/* and it grows again for single transactions */
	for (int i = 0; i < N; i++) {
		of_hash(h[i], 6, (uint8_t)i);
		th_ob_enqueued e;
		assert_int_equal(th_outbox_enqueue(ob, r[i], of_def(), h[i], NULL, 0, 2000, &e), 0);
		assert_int_equal(e.outcome, TH_OB_NEW);
	}
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 2 * N);
	th_outbox_close(&ob);
	for (int i = 0; i < N; i++)
		th_report_destroy(&r[i]);
}

/* Writes key=value into the named database dbi of the LMDB environment at
 * dir (created when absent), as another program would. */
static void lmdb_put(const char *dir, const char *dbi, const char *key, const char *value)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi d;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	mkdir(dir, 0750);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, dbi, MDB_CREATE, &d), 0);
	MDB_val k = {strlen(key), (void *)key}, v = {strlen(value), (void *)value};
	assert_int_equal(mdb_put(txn, d, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* The named databases of the environment at dir. */
static int lmdb_has_db(const char *dir, const char *name)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi d;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	int rc = mdb_dbi_open(txn, name, 0, &d);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return rc == 0;
}

/* Damaged or foreign: refused with a sentence naming the problem and the fix,
 * and nothing written into what is there. */
static void damaged_or_foreign_refused(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	const char *why = NULL;
	char dir[4300], path[4400];

	/* an outbox of another format version */
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	th_outbox_close(&ob);
	lmdb_put(f->outbox, "meta", "format", "9");
	assert_int_equal(th_outbox_open(f->outbox, &ob, &why), TH_ESTORE);
	assert_null(ob);
	assert_non_null(why);
	assert_non_null(strstr(why, "another format version"));

	/* the collector's store given as --outbox */
	snprintf(dir, sizeof dir, "%s/store", f->dir);
	lmdb_put(dir, "meta", "format", "tonghop-store 2");
	lmdb_put(dir, "reports", "k", "v");
	why = NULL;
	assert_int_equal(th_outbox_open(dir, &ob, &why), TH_ESTORE);
	assert_non_null(strstr(why, "not an outbox"));
	assert_false(lmdb_has_db(dir, "pending"));   /* nothing created in it */

	/* an environment with plain keys in its main database */
	snprintf(dir, sizeof dir, "%s/plain", f->dir);
	lmdb_put(dir, NULL, "hello", "world");
	why = NULL;
	assert_int_equal(th_outbox_open(dir, &ob, &why), TH_ESTORE);
	assert_non_null(strstr(why, "not an outbox"));

	/* a damaged data file: refused, left as it is */
	snprintf(dir, sizeof dir, "%s/damaged", f->dir);
	assert_int_equal(mkdir(dir, 0750), 0);
	snprintf(path, sizeof path, "%s/data.mdb", dir);
	char junk[8192];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (char)(i * 31 + 7);
	assert_int_equal(tu_write_file(path, junk, sizeof junk), 0);
	why = NULL;
	assert_int_equal(th_outbox_open(dir, &ob, &why), TH_ESTORE);
	assert_non_null(strstr(why, "not an LMDB file"));
	size_t len = 0;
	char *back = tu_read_file(path, &len);
	assert_non_null(back);
	assert_int_equal(len, sizeof junk);
	assert_memory_equal(back, junk, sizeof junk);
	free(back);

	/* a file where the directory should be */
	snprintf(path, sizeof path, "%s/a-file", f->dir);
	assert_int_equal(tu_write_file(path, "x", 1), 0);
	why = NULL;
	assert_int_equal(th_outbox_open(path, &ob, &why), TH_EIO);
	assert_non_null(strstr(why, "not a directory"));
}

/* An entry that does not decode is skipped by listings, never a crash; the
 * others are still listed. */
static void unreadable_entry_skipped(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	th_report *r = of_report("U1", 1);
	uint8_t h[TH_HASH_LEN];
	of_hash(h, 7, 0);
	th_ob_enqueued e;
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h, NULL, 0, 100, &e), 0);
	th_outbox_close(&ob);
	lmdb_put(f->outbox, "pending", "\x02zz", "\x01garbage");
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 2);
	int n = 0;
	assert_int_equal(th_outbox_list(ob, TH_OB_TPENDING, of_defs(), count_cb, &n), 0);
	assert_int_equal(n, 1);
	th_outbox_close(&ob);
	th_report_destroy(&r);
}

/* The definitions cache: every text a welcome brought stays; the in-force
 * set is the last welcome's; a text the agent cannot parse is not cached. */
static void definitions_cache(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	th_defset *d = NULL;
	assert_int_equal(th_outbox_load_defs(ob, 0, &d), TH_ENOTFOUND);
	char *pl1 = tu_read_file(tu_src("schema/appendices/PL1-v1.def"), NULL);
	char *pl2 = tu_read_file(tu_src("schema/appendices/PL2-v1.def"), NULL);
	assert_non_null(pl1);
	assert_non_null(pl2);
	char broken[] = "[appendix]\nid = nonsense\n";
	char *both[3] = {pl1, pl2, broken};
	assert_int_equal(th_outbox_set_defs(ob, both, 3), 0);
	assert_int_equal(th_outbox_load_defs(ob, 1, &d), 0);
	assert_int_equal(th_defset_count(d), 2);
	assert_non_null(th_defset_get(d, "PL1", 1));
	assert_non_null(th_defset_get(d, "PL2", 1));
	th_defset_destroy(&d);
	/* the next welcome has PL2 only: PL1 stays cached but not in force */
	char *one[1] = {pl2};
	assert_int_equal(th_outbox_set_defs(ob, one, 1), 0);
	th_outbox_close(&ob);
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	assert_int_equal(th_outbox_load_defs(ob, 1, &d), 0);
	assert_int_equal(th_defset_count(d), 1);
	assert_null(th_defset_get(d, "PL1", 1));
	th_defset_destroy(&d);
	assert_int_equal(th_outbox_load_defs(ob, 0, &d), 0);
	assert_int_equal(th_defset_count(d), 2);
	th_defset_destroy(&d);
	th_outbox_close(&ob);
	free(pl1);
	free(pl2);
}

/* The contact bookkeeping `status` shows, across a reopen. */
static void contact_recorded(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	th_ob_meta m;
	assert_int_equal(th_outbox_meta(ob, &m), 0);
	assert_int_equal(m.has_store, 0);
	assert_int_equal(m.last_contact, 0);
	assert_string_equal(m.collector, "");
	assert_int_equal(th_outbox_set_contact(ob, "tcp://c:7701", 1234, "refused this key"), 0);
	assert_int_equal(th_outbox_set_contact(ob, NULL, 0, NULL), 0);   /* changes nothing */
	th_outbox_close(&ob);
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	assert_int_equal(th_outbox_meta(ob, &m), 0);
	assert_string_equal(m.collector, "tcp://c:7701");
	assert_int_equal(m.last_contact, 1234);
	assert_string_equal(m.last_error, "refused this key");
	assert_int_equal(th_outbox_set_contact(ob, NULL, 0, ""), 0);     /* problem solved */
	assert_int_equal(th_outbox_meta(ob, &m), 0);
	assert_string_equal(m.last_error, "");
	th_outbox_close(&ob);
}

/* Rows come back in the file's order although the stored form is the
 * canonical one (rows by key); without the definitions an entry has no
 * report. */
static void row_order_kept(void **state)
{
	fx *f = *state;
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, NULL), 0);
	const th_def *d = th_defset_get(of_defs(), "PL8", 1);
	assert_non_null(d);
	static const char *const keys[] = {"c", "a", "d", "b"};
	th_report *r = th_report_new("U1", "PL8", 1, "2021", 0, 2);
	for (int i = 0; i < 4; i++) {
		assert_true(th_report_add_row(r) >= 0);
		th_value *k = th_report_cell(r, (size_t)i, 0), *v = th_report_cell(r, (size_t)i, 1);
		k->null = 0;
		k->s = strdup(keys[i]);
		k->len = 1;
		v->null = 0;
		v->i = 10 + i;
	}
	uint8_t h[TH_HASH_LEN];
	assert_int_equal(th_canon_hash(r, d, h), 0);
	th_ob_enqueued e;
	assert_int_equal(th_outbox_enqueue(ob, r, d, h, NULL, 0, 100, &e), 0);
	th_ob_entry pe;
	assert_int_equal(th_outbox_get_pending(ob, "U1", "PL8", "2021", e.rev, of_defs(), &pe), 0);
	assert_non_null(pe.report);
	assert_int_equal(pe.report->n_rows, 4);
	for (int i = 0; i < 4; i++) {
		assert_string_equal(th_report_cell(pe.report, (size_t)i, 0)->s, keys[i]);
		assert_int_equal(th_report_cell(pe.report, (size_t)i, 1)->i, 10 + i);
	}
	uint8_t h2[TH_HASH_LEN];
	assert_int_equal(th_canon_hash(pe.report, d, h2), 0);
	assert_memory_equal(h, h2, TH_HASH_LEN);   /* the same content */
	th_ob_entry_free(&pe);
	assert_int_equal(th_outbox_get_pending(ob, "U1", "PL8", "2021", e.rev, NULL, &pe), 0);
	assert_null(pe.report);
	th_ob_entry_free(&pe);
	/* a report that does not fit its definition is refused, nothing written */
	th_report *bad = th_report_new("U2", "PL8", 1, "2021", 0, 1);
	assert_int_equal(th_outbox_enqueue(ob, bad, d, h, NULL, 0, 100, &e), TH_EINVAL);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 1);
	th_report_destroy(&bad);
	th_report_destroy(&r);
	th_outbox_close(&ob);
}

/* --- an outbox of format 1, written as that agent wrote it (OUTBOX.md "Format
 * history") --------------------------------------------------------------------- */
typedef struct legacy_cell {
	int kind;               /* 0 null, 1 integer, 2 text */
	int64_t i;
	const char *s;
} legacy_cell;

static void le(ob_bytes *b, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		b->p[b->len++] = (uint8_t)(v >> (8 * i));
}

static void lstr(ob_bytes *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	le(b, n, 4);
	memcpy(b->p + b->len, s ? s : "", n);
	b->len += n;
}

/* A format 1 entry value: u8 1, the fields of OUTBOX.md "Entry", and the
 * format 1 report blob of rows x cols cells (none when rows < 0). */
static void legacy_entry(ob_bytes *b, const char *unit, const char *app, uint32_t version,
                         uint64_t rev, const uint8_t hash[TH_HASH_LEN], int state,
                         const uint8_t store[16], int rows, int cols, const legacy_cell *cells)
{
	b->len = 0;
	le(b, 1, 1);
	le(b, rev, 8);
	le(b, version, 4);
	memcpy(b->p + b->len, hash, TH_HASH_LEN);
	b->len += TH_HASH_LEN;
	le(b, 1000, 8);          /* created */
	le(b, (uint64_t)state, 1);
	le(b, 2, 4);             /* attempts */
	le(b, 0, 4);             /* code */
	le(b, 0, 8);             /* row */
	le(b, rev, 8);           /* stored_rev */
	memcpy(b->p + b->len, store, 16);
	b->len += 16;
	le(b, 9, 8);             /* commit */
	le(b, 2000, 8);          /* commit_time */
	le(b, 3000, 8);          /* updated */
	le(b, 0, 1);             /* resend */
	lstr(b, unit);
	lstr(b, app);
	lstr(b, "2021");
	lstr(b, "/srv/drop/.done/x.csv");
	lstr(b, "");
	lstr(b, "");
	if (rows < 0) {
		le(b, 0, 4);
		return;
	}
	size_t at = b->len;
	b->len += 4;             /* the blob's length, below */
	le(b, 1, 1);
	le(b, version, 4);
	le(b, 0, 4);             /* as_of */
	le(b, 0, 1);             /* tombstone */
	le(b, rev, 8);
	le(b, (uint64_t)rows, 4);
	le(b, (uint64_t)cols, 4);
	lstr(b, unit);
	lstr(b, app);
	lstr(b, "2021");
	for (int i = 0; i < rows * cols; i++) {
		le(b, (uint64_t)cells[i].kind, 1);
		if (cells[i].kind == 1)
			le(b, (uint64_t)cells[i].i, 8);
		else if (cells[i].kind == 2)
			lstr(b, cells[i].s);
	}
	size_t blen = b->len - at - 4;
	for (int i = 0; i < 4; i++)
		b->p[at + (size_t)i] = (uint8_t)(blen >> (8 * i));
}

static size_t rk(uint8_t *k, const char *unit, const char *app, const void *sfx, size_t sl)
{
	int n = th_report_key(unit, app, "2021", (char *)k + 1, 400);
	assert_true(n > 0);
	k[0] = (uint8_t)n;
	if (sl)
		memcpy(k + 1 + n, sfx, sl);
	return 1 + (size_t)n + sl;
}

static void be(uint8_t *o, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		o[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static void put(MDB_txn *txn, MDB_dbi d, const void *k, size_t kl, const void *v, size_t vl)
{
	MDB_val key = {kl, (void *)k}, val = {vl, (void *)v};
	assert_int_equal(mdb_put(txn, d, &key, &val, 0), 0);
}

static const char PL9_TEXT[] = "[appendix]\nid = PL9\nversion = 1\ntitle = Phụ lục chín\n"
                               "submitters = department\nkey =\n"
                               "[column so]\ntitle = Số\ntype = integer\nrollup = sum\n";

/* A format 1 outbox: pending U1 PL1 (one row), U2 PL8 (rows c, a, b) and U3
 * PL9 (a definition it never cached); acked U4 PL1; rejected U5. */
static void write_format1(const char *dir, uint8_t hashes[5][TH_HASH_LEN])
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta, pending, acked, rejected, revs, history, defs;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	mkdir(dir, 0750);
	assert_int_equal(mdb_env_open(env, dir, 0, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	const char *names[7] = {"meta", "pending", "acked", "rejected", "revs", "history", "defs"};
	MDB_dbi *dbis[7] = {&meta, &pending, &acked, &rejected, &revs, &history, &defs};
	for (int i = 0; i < 7; i++)
		assert_int_equal(mdb_dbi_open(txn, names[i], MDB_CREATE, dbis[i]), 0);
	uint8_t store[16];
	memset(store, 0x5a, sizeof store);
	put(txn, meta, "format", 6, "1", 1);
	put(txn, meta, "store", 5, store, 16);
	static const char inforce[] = "PL1\t1\nPL8\t1\n";
	put(txn, meta, "inforce", 7, inforce, strlen(inforce));
	uint8_t dk[16];
	memcpy(dk, "PL1\0\0\0\0\1", 8);
	put(txn, defs, dk, 8, OF_PL1_TEXT, strlen(OF_PL1_TEXT));
	memcpy(dk, "PL8\0\0\0\0\1", 8);
	put(txn, defs, dk, 8, OF_PL8_TEXT, strlen(OF_PL8_TEXT));
	static ob_bytes b;
	uint8_t k[512], r8[8];
	const legacy_cell c1[2] = {{1, 5, NULL}, {2, 0, "Hà Nội"}};
	const legacy_cell c2[6] = {{2, 0, "c"}, {1, 3, NULL}, {2, 0, "a"}, {1, 1, NULL},
	                           {2, 0, "b"}, {0, 0, NULL}};
	const legacy_cell c3[1] = {{1, 9, NULL}};
	const legacy_cell c4[2] = {{1, 7, NULL}, {0, 0, NULL}};
	struct {
		const char *unit, *app;
		uint64_t rev;
		int state, rows, cols;
		const legacy_cell *cells;
		MDB_dbi dbi;
		int by_rev;
	} es[5] = {
		{"U1", "PL1", 100, 0, 1, 2, c1, pending, 1},
		{"U2", "PL8", 200, 0, 3, 2, c2, pending, 1},
		{"U3", "PL9", 300, 0, 1, 1, c3, pending, 1},
		{"U4", "PL1", 50, 1, 1, 2, c4, acked, 0},
		{"U5", "PL1", 60, 4, -1, 0, NULL, rejected, 1},
	};
	for (int i = 0; i < 5; i++) {
		of_hash(hashes[i], 0xa0, (uint8_t)i);
		legacy_entry(&b, es[i].unit, es[i].app, 1, es[i].rev, hashes[i], es[i].state, store,
		             es[i].rows, es[i].cols, es[i].cells);
		be(r8, es[i].rev, 8);
		size_t kl = rk(k, es[i].unit, es[i].app, r8, es[i].by_rev ? 8 : 0);
		put(txn, es[i].dbi, k, kl, b.p, b.len);
		uint8_t v8[8];
		for (int j = 0; j < 8; j++)
			v8[j] = (uint8_t)(es[i].rev >> (8 * j));
		kl = rk(k, es[i].unit, es[i].app, NULL, 0);
		put(txn, revs, k, kl, v8, 8);
		uint8_t hv[17];
		memcpy(hv, v8, 8);
		hv[8] = (uint8_t)es[i].state;
		memset(hv + 9, 0, 8);
		kl = rk(k, es[i].unit, es[i].app, hashes[i], TH_HASH_LEN);
		put(txn, history, k, kl, hv, sizeof hv);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* The meta value of key as a string ("" when absent). */
static void lmdb_meta(const char *dir, const char *key, char *out, size_t cap)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi d;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0640), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &d), 0);
	MDB_val k = {strlen(key), (void *)key}, v;
	out[0] = 0;
	if (mdb_get(txn, d, &k, &v) == 0) {
		size_t n = v.mv_size < cap - 1 ? v.mv_size : cap - 1;
		memcpy(out, v.mv_data, n);
		out[n] = 0;
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/* Opening a format 1 outbox upgrades it in place: every report whose
 * definition it cached is rewritten in the canonical form with its row order,
 * nothing else changes (counts, hashes, revs, receipts); a report whose
 * definition it never received waits, without its report, until a welcome
 * brings the definition. */
static void upgrade_from_format_1(void **state)
{
	fx *f = *state;
	uint8_t h[5][TH_HASH_LEN];
	write_format1(f->outbox, h);
	th_outbox *ob = NULL;
	const char *why = NULL;
	assert_int_equal(th_outbox_open(f->outbox, &ob, &why), 0);
	assert_int_equal(th_outbox_count(ob, TH_OB_TPENDING), 3);
	assert_int_equal(th_outbox_count(ob, TH_OB_TACKED), 1);
	assert_int_equal(th_outbox_count(ob, TH_OB_TREJECTED), 1);
	assert_int_equal(th_outbox_history_count(ob), 5);
	th_defset *with9 = NULL;
	th_diag *dg = th_diag_new();
	th_def *d9 = NULL;
	assert_int_equal(th_def_parse(PL9_TEXT, strlen(PL9_TEXT), "pl9", &d9, dg), 0);
	th_diag_destroy(&dg);
	with9 = th_defset_new();
	assert_int_equal(th_defset_add(with9, d9), 0);
	th_ob_entry pe;
	assert_int_equal(th_outbox_get_pending(ob, "U1", "PL1", "2021", 100, of_defs(), &pe), 0);
	assert_non_null(pe.report);
	assert_int_equal(pe.report->cells[0].i, 5);
	assert_string_equal(pe.report->cells[1].s, "Hà Nội");
	assert_memory_equal(pe.hash, h[0], TH_HASH_LEN);
	assert_int_equal(pe.attempts, 2);
	assert_string_equal(pe.file, "/srv/drop/.done/x.csv");
	th_ob_entry_free(&pe);
	assert_int_equal(th_outbox_get_pending(ob, "U2", "PL8", "2021", 200, of_defs(), &pe), 0);
	assert_non_null(pe.report);
	assert_int_equal(pe.report->n_rows, 3);
	assert_string_equal(th_report_cell(pe.report, 0, 0)->s, "c");   /* the file's order */
	assert_string_equal(th_report_cell(pe.report, 1, 0)->s, "a");
	assert_string_equal(th_report_cell(pe.report, 2, 0)->s, "b");
	assert_int_equal(th_report_cell(pe.report, 0, 1)->i, 3);
	assert_true(th_report_cell(pe.report, 2, 1)->null);
	th_ob_entry_free(&pe);
	/* PL9 was never cached: the entry is kept, without its report */
	assert_int_equal(th_outbox_get_pending(ob, "U3", "PL9", "2021", 300, with9, &pe), 0);
	assert_null(pe.report);
	assert_memory_equal(pe.hash, h[2], TH_HASH_LEN);
	th_ob_entry_free(&pe);
	/* the same content again is still recognised, the revs go on */
	th_report *r = of_report("U1", 5);
	th_ob_enqueued e;
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), h[0], NULL, 0, 1, &e), 0);
	assert_int_equal(e.outcome, TH_OB_SAME_PENDING);
	uint8_t hn[TH_HASH_LEN];
	of_hash(hn, 0xb0, 0);
	assert_int_equal(th_outbox_enqueue(ob, r, of_def(), hn, NULL, 0, 1, &e), 0);
	assert_int_equal(e.rev, 101);
	th_report_destroy(&r);
	/* the receipt's report still goes again after a store change */
	uint8_t other[TH_STORE_UUID_LEN] = {1};
	size_t nq = 0;
	assert_int_equal(th_outbox_store_seen(ob, other, &nq), 0);
	assert_int_equal(nq, 1);
	assert_int_equal(th_outbox_get_pending(ob, "U4", "PL1", "2021", 50, of_defs(), &pe), 0);
	assert_non_null(pe.report);
	assert_int_equal(pe.report->cells[0].i, 7);
	th_ob_entry_free(&pe);
	th_outbox_close(&ob);
	char v[32];
	lmdb_meta(f->outbox, "format", v, sizeof v);
	assert_string_equal(v, "2");
	lmdb_meta(f->outbox, "legacy", v, sizeof v);
	assert_int_equal(v[0], 1);   /* u64 LE 1: U3 waits */
	/* a welcome brings PL9: the waiting entry is rewritten in that transaction */
	assert_int_equal(th_outbox_open(f->outbox, &ob, &why), 0);
	char *texts[3] = {(char *)OF_PL1_TEXT, (char *)OF_PL8_TEXT, (char *)PL9_TEXT};
	assert_int_equal(th_outbox_set_defs(ob, texts, 3), 0);
	assert_int_equal(th_outbox_get_pending(ob, "U3", "PL9", "2021", 300, with9, &pe), 0);
	assert_non_null(pe.report);
	assert_int_equal(pe.report->cells[0].i, 9);
	th_ob_entry_free(&pe);
	th_outbox_close(&ob);
	lmdb_meta(f->outbox, "legacy", v, sizeof v);
	assert_string_equal(v, "");
	th_defset_destroy(&with9);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(outbox_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(stamp_one_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(outbox_batch_queue, setup, teardown),
		cmocka_unit_test_setup_teardown(pending_until_acked, setup, teardown),
		cmocka_unit_test_setup_teardown(rejected_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(latest_acked_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(requeue_behind_collector, setup, teardown),
		cmocka_unit_test_setup_teardown(history_retention, setup, teardown),
		cmocka_unit_test_setup_teardown(map_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(damaged_or_foreign_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(unreadable_entry_skipped, setup, teardown),
		cmocka_unit_test_setup_teardown(definitions_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(contact_recorded, setup, teardown),
		cmocka_unit_test_setup_teardown(row_order_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(upgrade_from_format_1, setup, teardown),
	};
	int rc = TH_RUN_TESTS(tests, argc, argv);
	of_cleanup();
	return rc;
}

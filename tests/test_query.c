/* test_query.c -- the query socket's answers (collector/query.c, QUERY.md), from a
 * small store: every query, its answer's fields, the refusals (a revoked key, an
 * unknown appendix, a malformed period or query), and that answering binds nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"
#include "store_fixture.h"
#include "testutil.h"
#include "tstore.h"

typedef struct {
	fx *f;
	th_stats stats;
	th_key key;
	th_query_env env;
	msgpack_unpacked u;
	uint8_t *raw;
} qx;

static qx *qx_new(void)
{
	qx *q = calloc(1, sizeof *q);
	q->f = fx_new();
	must_accept(q->f, mk1("X1", 1, 4));
	must_accept(q->f, mk1("X1", 2, 6));
	must_accept(q->f, mk1("X3", 1, 5));
	q->stats.accepted = 3;
	q->stats.queries = 41;
	snprintf(q->key.unit, sizeof q->key.unit, "C");
	q->key.role = TH_ROLE_READER;
	q->env = (th_query_env){.store = q->f->s, .defs = q->f->defs, .stats = &q->stats, .key = &q->key};
	msgpack_unpacked_init(&q->u);
	return q;
}

static void qx_free(qx *q)
{
	msgpack_unpacked_destroy(&q->u);
	free(q->raw);
	fx_free(q->f);
	free(q);
}

static const msgpack_object *get(const msgpack_object *m, const char *key)
{
	for (uint32_t i = 0; m && m->type == MSGPACK_OBJECT_MAP && i < m->via.map.size; i++) {
		const msgpack_object_kv *kv = &m->via.map.ptr[i];
		if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == strlen(key) &&
		    !memcmp(kv->key.via.str.ptr, key, kv->key.via.str.size))
			return &kv->val;
	}
	return NULL;
}

static int str_is(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static uint64_t num(const msgpack_object *o)
{
	assert_non_null(o);
	assert_int_equal(o->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	return o->via.u64;
}

/* Answers a query frame; the decoded answer's map (id checked). */
static const msgpack_object *answer_frame(qx *q, const uint8_t *buf, size_t len, uint64_t id)
{
	free(q->raw);
	q->raw = NULL;
	size_t olen = 0;
	assert_int_equal(th_query_answer(&q->env, buf, len, &q->raw, &olen), 0);
	msgpack_unpacked_destroy(&q->u);
	msgpack_unpacked_init(&q->u);
	assert_int_equal(msgpack_unpack_next(&q->u, (const char *)q->raw, olen, NULL),
	                 MSGPACK_UNPACK_SUCCESS);
	const msgpack_object *m = &q->u.data;
	assert_true(str_is(get(m, "t"), "result"));
	assert_int_equal(num(get(m, "v")), TH_WIRE_VERSION);
	assert_int_equal(num(get(m, "id")), id);
	return m;
}

static const msgpack_object *ask(qx *q, const char *what, const char *period, const char *unit,
                                 uint64_t level, const char *parent)
{
	th_query qu;
	memset(&qu, 0, sizeof qu);
	qu.id = 17;
	snprintf(qu.q, sizeof qu.q, "%s", what);
	snprintf(qu.appendix, sizeof qu.appendix, "T");
	snprintf(qu.period, sizeof qu.period, "%s", period ? period : "");
	snprintf(qu.unit, sizeof qu.unit, "%s", unit ? unit : "");
	snprintf(qu.parent, sizeof qu.parent, "%s", parent ? parent : "");
	qu.level = level;
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_query(&qu, &buf, &len), 0);
	const msgpack_object *m = answer_frame(q, buf, len, 17);
	free(buf);
	return m;
}

static int ok(const msgpack_object *m)
{
	const msgpack_object *o = get(m, "ok");
	assert_non_null(o);
	return o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

static void refused(const msgpack_object *m, const char *reason, const char *in_message)
{
	assert_false(ok(m));
	assert_true(str_is(get(m, "reason"), reason));
	const msgpack_object *msg = get(m, "message");
	assert_non_null(msg);
	if (in_message) {
		char text[512];
		snprintf(text, sizeof text, "%.*s", (int)msg->via.str.size, msg->via.str.ptr);
		assert_non_null(strstr(text, in_message));
	}
}

static void node_level_missing(void **state)
{
	(void)state;
	qx *q = qx_new();
	const msgpack_object *m = ask(q, "node", P, "D1", 0, NULL);
	assert_true(ok(m));
	const msgpack_object *n = get(m, "node");
	assert_true(str_is(get(n, "unit"), "D1"));
	assert_true(str_is(get(n, "name"), "D1"));
	assert_true(str_is(get(n, "appendix"), "T"));
	assert_true(str_is(get(n, "period"), P));
	assert_int_equal(num(get(n, "level")), 2);
	assert_int_equal(num(get(n, "reported")), 1);
	assert_int_equal(num(get(n, "expected")), 3);
	assert_int_equal(num(get(n, "corrections")), 1);
	assert_int_equal(num(get(n, "version")), 2);
	const msgpack_object *tot = get(n, "total");
	assert_int_equal(tot->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(tot->via.array.size, q->f->d->n_slots);
	assert_int_equal(get(n, "own")->via.array.size, q->f->d->n_slots);
	/* level 3: the communes in hierarchy order */
	m = ask(q, "level", P, NULL, 3, NULL);
	assert_true(ok(m));
	const msgpack_object *rows = get(m, "rows");
	assert_int_equal(rows->via.array.size, 3);
	assert_true(str_is(get(&rows->via.array.ptr[0], "unit"), "X1"));
	assert_true(str_is(get(&rows->via.array.ptr[2], "unit"), "X3"));
	assert_int_equal(num(get(&rows->via.array.ptr[1], "reported")), 0);
	/* children of D2 */
	m = ask(q, "level", P, NULL, 0, "D2");
	rows = get(m, "rows");
	assert_int_equal(rows->via.array.size, 1);
	assert_true(str_is(get(&rows->via.array.ptr[0], "unit"), "X3"));
	/* missing: the expected units without a report, with their contacts' fields */
	m = ask(q, "missing", P, NULL, 0, NULL);
	assert_true(ok(m));
	const msgpack_object *mi = get(m, "missing");
	assert_int_equal(mi->via.array.size, 3);   /* D1, D2, X2 */
	static const char *const fields[] = {"unit", "name", "parent", "kind", "person", "phone", "email"};
	for (size_t i = 0; i < sizeof fields / sizeof *fields; i++)
		assert_non_null(get(&mi->via.array.ptr[0], fields[i]));
	m = ask(q, "missing", P, "D1", 0, NULL);
	mi = get(m, "missing");
	assert_int_equal(mi->via.array.size, 2);   /* D1 itself, X2 */
	/* a unit the hierarchy does not have */
	refused(ask(q, "node", P, "NOPE", 0, NULL), "unknown_unit", NULL);
	refused(ask(q, "level", P, NULL, 0, "NOPE"), "unknown_unit", NULL);
	qx_free(q);
}

static void report_history_definition(void **state)
{
	(void)state;
	qx *q = qx_new();
	const msgpack_object *m = ask(q, "report", P, "X1", 0, NULL);
	assert_true(ok(m));
	const msgpack_object *r = get(m, "report");
	assert_int_equal(num(get(r, "rev")), 2);
	assert_int_equal(num(get(r, "version")), 1);
	assert_true(str_is(get(r, "sender"), "test"));
	assert_int_equal(get(r, "hash")->via.str.size, 2 * TH_HASH_LEN);
	const msgpack_object *cols = get(r, "columns");
	assert_int_equal(cols->via.array.size, NCOLS);
	assert_true(str_is(&cols->via.array.ptr[C_A], "a"));
	const msgpack_object *rows = get(r, "rows");
	assert_int_equal(rows->via.array.size, 1);
	assert_true(str_is(&rows->via.array.ptr[0].via.array.ptr[C_K], "r1"));
	assert_int_equal(num(&rows->via.array.ptr[0].via.array.ptr[C_A]), 6);
	assert_int_equal(rows->via.array.ptr[0].via.array.ptr[C_LO].type, MSGPACK_OBJECT_NIL);
	m = ask(q, "history", P, "X1", 0, NULL);
	const msgpack_object *revs = get(m, "revisions");
	assert_int_equal(revs->via.array.size, 2);
	assert_int_equal(num(get(&revs->via.array.ptr[0], "rev")), 1);   /* oldest first */
	assert_int_equal(num(get(&revs->via.array.ptr[1], "rev")), 2);
	refused(ask(q, "report", P, "X2", 0, NULL), "not_found", "no such report");
	refused(ask(q, "history", P, "X2", 0, NULL), "not_found", "no such report");
	m = ask(q, "definition", "2031", NULL, 0, NULL);
	assert_true(ok(m));
	assert_true(str_is(get(m, "appendix"), "T"));
	assert_int_equal(num(get(m, "version")), 1);
	qx_free(q);
}

static void hierarchies_and_stats(void **state)
{
	(void)state;
	qx *q = qx_new();
	fx_add_units(q->f, UNITS_V2);
	const msgpack_object *m = ask(q, "hierarchies", NULL, NULL, 0, NULL);
	assert_true(ok(m));
	const msgpack_object *h = get(m, "hierarchies");
	assert_int_equal(h->via.array.size, 2);
	const msgpack_object *v1 = &h->via.array.ptr[0], *v2 = &h->via.array.ptr[1];
	assert_true(str_is(get(v1, "version"), "v1"));
	assert_int_equal(num(get(v1, "effective")), 20210101);
	assert_int_equal(num(get(v1, "units")), 6);
	assert_int_equal(num(get(v1, "levels")), 3);
	assert_true(str_is(get(v1, "root"), "C"));
	assert_int_equal(get(v1, "periods")->via.array.size, 1);
	assert_true(str_is(&get(v1, "periods")->via.array.ptr[0], P));
	assert_int_equal(get(v2, "periods")->via.array.size, 0);
	m = ask(q, "stats", NULL, NULL, 0, NULL);
	assert_true(ok(m));
	const msgpack_object *st = get(m, "stats");
	assert_int_equal(num(get(st, "accepted")), 3);
	assert_int_equal(num(get(st, "queries")), 41);
	assert_int_equal(num(get(st, "store_reports")), 2);
	assert_int_equal(num(get(st, "store_revisions")), 3);
	assert_true(num(get(st, "store_map_size")) > 0);
	qx_free(q);
}

static int refuse_units(void *ctx, th_units_submit *sub)
{
	(*(int *)ctx)++;
	th_diag_add(sub->diag, TH_SEV_ERROR, TH_EPARENT, sub->name, 3, 0, NULL, "unknown parent ZZ");
	snprintf(sub->message, sizeof sub->message, "%s is not a valid hierarchy file", sub->name);
	return TH_EPARENT;
}

static void units_submit_answers(void **state)
{
	(void)state;
	qx *q = qx_new();
	th_query qu;
	memset(&qu, 0, sizeof qu);
	qu.id = 3;
	snprintf(qu.q, sizeof qu.q, "units_submit");
	snprintf(qu.name, sizeof qu.name, "new\x01.units");
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_query(&qu, &buf, &len), 0);
	refused(answer_frame(q, buf, len, 3), "missing", "text");
	free(buf);
	qu.text = "@version x\n";
	qu.text_len = 11;
	assert_int_equal(th_wire_encode_query(&qu, &buf, &len), 0);
	refused(answer_frame(q, buf, len, 3), "invalid", "does not take hierarchy files");
	int calls = 0;
	q->env.units_submit = refuse_units;
	q->env.units_ctx = &calls;
	const msgpack_object *m = answer_frame(q, buf, len, 3);
	refused(m, "unknown_parent", "new?.units is not a valid");   /* control byte replaced */
	const msgpack_object *pr = get(m, "problems");
	assert_int_equal(pr->via.array.size, 1);
	assert_int_equal(calls, 1);
	free(buf);
	qx_free(q);
}

static void refusals(void **state)
{
	(void)state;
	qx *q = qx_new();
	refused(ask(q, "node", "2021-13", "X1", 0, NULL), "period", "period");
	refused(ask(q, "nonsense", P, "X1", 0, NULL), "invalid", "unknown query");
	th_query qu;
	memset(&qu, 0, sizeof qu);
	qu.id = 5;
	snprintf(qu.q, sizeof qu.q, "node");
	snprintf(qu.appendix, sizeof qu.appendix, "ZZ");
	snprintf(qu.period, sizeof qu.period, P);
	uint8_t *buf;
	size_t len;
	assert_int_equal(th_wire_encode_query(&qu, &buf, &len), 0);
	refused(answer_frame(q, buf, len, 5), "unknown_appendix", "appendix");
	free(buf);
	/* a key revoked since its connection was made */
	q->env.key = NULL;
	refused(ask(q, "stats", NULL, NULL, 0, NULL), "auth", "no longer");
	q->env.key = &q->key;
	/* not a query */
	static const uint8_t junk[] = {0x93, 1, 2, 3};
	refused(answer_frame(q, junk, sizeof junk, 0), "protocol", NULL);
	th_hello h = {.agent = "x", .unit = "", .id = 8};
	assert_int_equal(th_wire_encode_hello(&h, &buf, &len), 0);
	refused(answer_frame(q, buf, len, 0), "protocol", NULL);
	free(buf);
	qx_free(q);
}

static int count_bound(void *ctx, const char *period, const char *version)
{
	(void)period;
	(void)version;
	(*(int *)ctx)++;
	return 0;
}

/* Answers about periods nobody has reported for (a reader's view of the future)
 * leave the bindings as they were. */
static void answering_binds_nothing(void **state)
{
	(void)state;
	qx *q = qx_new();
	int before = 0, after = 0;
	assert_int_equal(th_store_bindings(q->f->s, count_bound, &before), 0);
	static const char *const verbs[] = {"node", "level", "missing", "definition", "report",
	                                    "history"};
	for (int y = 2030; y < 2034; y++)
		for (size_t v = 0; v < sizeof verbs / sizeof *verbs; v++) {
			char per[8];
			snprintf(per, sizeof per, "%d-Q2", y);
			ask(q, verbs[v], per, "X1", 3, NULL);
		}
	assert_int_equal(th_store_bindings(q->f->s, count_bound, &after), 0);
	assert_int_equal(after, before);
	assert_int_equal(before, 1);
	qx_free(q);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(node_level_missing),
		cmocka_unit_test(report_history_definition),
		cmocka_unit_test(hierarchies_and_stats),
		cmocka_unit_test(units_submit_answers),
		cmocka_unit_test(refusals),
		cmocka_unit_test(answering_binds_nothing),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

/* it_source.c -- the source interface (tools/source.c, client.c): a live
 * collector's query socket and its store opened read-only give the same
 * answers (definition, units, levels, nodes, missing units, hierarchy
 * versions, and the views built on them); what the socket does not serve is
 * refused with a sentence; the rollup stream is decoded. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "collector_fixture.h"
#include "testutil.h"
#include "th_client.h"
#include "th_render.h"
#include "th_source.h"
#include "th_view.h"

typedef struct sx {
	cf_fixture *f;
	th_source *remote, *local;
	char key[4096], server_pub[4096];
} sx;

static void submit(cf_fixture *f, const cf_keypair *k, const char *unit, uint64_t rev, int64_t done,
                   int64_t a, int64_t b)
{
	void *s = cf_dealer(f, f->ingest, k);
	th_report *r = cf_pl3(f, unit, rev, done, a, b);
	assert_int_equal(cf_submit_status(f, s, r, NULL), TH_ACK_ACCEPTED);
	th_report_destroy(&r);
	zmq_close(s);
}

static int setup(void **state)
{
	void *fs = NULL;
	cf_setup(&fs);
	sx *x = calloc(1, sizeof *x);
	assert_non_null(x);
	x->f = fs;
	cf_fixture *f = x->f;
	/* the reader's keypair file and the collector's public key file */
	char text[256];
	snprintf(x->key, sizeof x->key, "%s/reader.key", f->dir);
	snprintf(text, sizeof text, "public %s\nsecret %s\n", f->reader.pub, f->reader.sec);
	assert_int_equal(tu_write_file(x->key, text, strlen(text)), 0);
	snprintf(x->server_pub, sizeof x->server_pub, "%s/server.pub", f->dir);
	snprintf(text, sizeof text, "public %s\n", f->server.pub);
	assert_int_equal(tu_write_file(x->server_pub, text, strlen(text)), 0);
	/* D1 and C1 (filed by D1's agent) and SNV report; C2 and SNVX do not */
	submit(f, &f->d1, "D1", 1, 4, 1, 0);
	submit(f, &f->d1, "C1", 1, 2, 0, 3);
	submit(f, &f->snv, "SNV", 1, 7, 2, 1);
	submit(f, &f->d1, "D1", 2, 5, 0, 0);          /* a correction */

	char why[600], db[4096];
	th_source_opts ro = {.collector = f->query, .key = x->key, .server_key = x->server_pub,
	                     .defs = f->defs};
	assert_int_equal(th_source_open(&ro, &x->remote, why, sizeof why), 0);
	snprintf(db, sizeof db, "%s/store", f->dir);
	th_source_opts lo = {.db = db, .defs = f->defs};
	assert_int_equal(th_source_open(&lo, &x->local, why, sizeof why), 0);
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	sx *x = *state;
	th_source_destroy(&x->remote);
	th_source_destroy(&x->local);
	void *fs = x->f;
	free(x);
	return cf_teardown(&fs);
}

/* --- the rows a source gives, as one comparable text ----------------------------- */
typedef struct rows {
	const th_def *d;
	char *text;
	size_t len;
	FILE *f;
} rows;

static void rows_open(rows *r, const th_def *d)
{
	memset(r, 0, sizeof *r);
	r->d = d;
	r->f = open_memstream(&r->text, &r->len);
	assert_non_null(r->f);
}

static void put_node(rows *r, const th_node *n)
{
	fprintf(r->f, " level %u version %llu commit %llu expected %u reported %u on_time %u late %u "
	        "corrections %u own", n->level, (unsigned long long)n->version,
	        (unsigned long long)n->commit, n->expected, n->reported, n->on_time, n->late,
	        n->corrections);
	for (size_t i = 0; n->own && i < r->d->n_slots; i++)
		fprintf(r->f, " %lld", (long long)n->own[i]);
	fprintf(r->f, " total");
	for (size_t i = 0; n->total && i < r->d->n_slots; i++)
		fprintf(r->f, " %lld", (long long)n->total[i]);
	fputc('\n', r->f);
}

static int node_cb(void *ctx, const th_unit *u, const th_node *n)
{
	rows *r = ctx;
	fprintf(r->f, "%s|%s|%u", u->code, u->name, u->depth);
	put_node(r, n);
	return 0;
}

static int missing_cb(void *ctx, const th_unit *u, const char *parent_name)
{
	rows *r = ctx;
	(void)parent_name;     /* compared on its own: only the store knows it */
	fprintf(r->f, "%s|%s|%s|%s|%s|%s|%s\n", u->code, u->name, u->parent_code, u->kind, u->person,
	        u->phone, u->email);
	return 0;
}

static int parent_cb(void *ctx, const th_unit *u, const char *parent_name)
{
	rows *r = ctx;
	fprintf(r->f, "%s<%s\n", u->code, parent_name ? parent_name : "(unknown)");
	return 0;
}

static int hier_cb(void *ctx, const th_hier_row *h)
{
	rows *r = ctx;
	fprintf(r->f, "%s|%d|%llu|%u|%s|%s|%lld|", h->version, h->effective, (unsigned long long)h->units,
	        h->levels, h->root, h->origin, (long long)h->loaded);
	for (size_t i = 0; i < h->n_periods; i++)
		fprintf(r->f, "%s,", h->periods[i]);
	fputc('\n', r->f);
	return 0;
}

static char *rows_close(rows *r)
{
	fclose(r->f);
	assert_true(r->len > 0);
	return r->text;
}

static void assert_same_text(char *a, char *b)
{
	assert_string_equal(a, b);
	free(a);
	free(b);
}

/* --- cases ----------------------------------------------------------------------------- */
static void same_definition_units_levels_nodes(void **state)
{
	sx *x = *state;
	const th_def *dr = th_source_def(x->remote, "PL3", "2021", NULL);
	const th_def *dl = th_source_def(x->local, "PL3", "2021", NULL);
	assert_non_null(dr);
	assert_ptr_equal(dr, dl);
	assert_null(th_source_def(x->local, "PLX", "2021", NULL));

	const char *codes[] = {NULL, "D1", "C1"};
	for (size_t i = 0; i < 3; i++) {
		th_source_unit ur, ul;
		assert_int_equal(th_source_find_unit(x->remote, dr, "PL3", "2021", codes[i], &ur), 0);
		assert_int_equal(th_source_find_unit(x->local, dl, "PL3", "2021", codes[i], &ul), 0);
		assert_string_equal(ur.code, ul.code);
		assert_string_equal(ur.name, ul.name);
		assert_int_equal(ur.depth, ul.depth);
		assert_int_equal(ul.levels, 3);
		assert_int_equal(ur.levels, 0);      /* the socket does not say */
	}
	th_source_unit u;
	assert_int_equal(th_source_find_unit(x->local, dl, "PL3", "2021", "NOPE", &u), TH_EUNIT);
	assert_string_equal(th_source_error(x->local), "unknown unit NOPE");
	assert_true(th_source_find_unit(x->remote, dr, "PL3", "2021", "NOPE", &u) != 0);
	assert_non_null(strstr(th_source_error(x->remote), "NOPE: "));

	/* every level, and a parent's children: the same rows, nodes, vectors */
	for (uint32_t level = 1; level <= 3; level++) {
		rows a, b;
		rows_open(&a, dr);
		rows_open(&b, dl);
		assert_int_equal(th_source_level(x->remote, dr, "PL3", "2021", level, NULL, node_cb, &a), 0);
		assert_int_equal(th_source_level(x->local, dl, "PL3", "2021", level, NULL, node_cb, &b), 0);
		assert_same_text(rows_close(&a), rows_close(&b));
	}
	rows a, b;
	rows_open(&a, dr);
	rows_open(&b, dl);
	assert_int_equal(th_source_level(x->remote, dr, "PL3", "2021", 0, "D1", node_cb, &a), 0);
	assert_int_equal(th_source_level(x->local, dl, "PL3", "2021", 0, "D1", node_cb, &b), 0);
	char *ta = rows_close(&a);
	assert_non_null(strstr(ta, "C1|Phường 1|3 level 3 "));
	assert_non_null(strstr(ta, "C2|Phường 2|3 level 3 "));
	assert_same_text(ta, rows_close(&b));
	static const char *units[] = {"R", "SNV", "SNVX", "D1", "C1", "C2"};
	for (size_t i = 0; i < 6; i++) {
		th_node nr, nl;
		rows_open(&a, dr);
		rows_open(&b, dl);
		assert_int_equal(th_source_node(x->remote, dr, "PL3", "2021", units[i], &nr), 0);
		assert_int_equal(th_source_node(x->local, dl, "PL3", "2021", units[i], &nl), 0);
		put_node(&a, &nr);
		put_node(&b, &nl);
		th_node_free(&nr);
		th_node_free(&nl);
		assert_same_text(rows_close(&a), rows_close(&b));
	}
}

static void same_missing_and_hierarchies(void **state)
{
	sx *x = *state;
	const th_def *d = th_source_def(x->local, "PL3", "2021", NULL);
	rows a, b;
	rows_open(&a, d);
	rows_open(&b, d);
	assert_int_equal(th_source_missing(x->remote, "PL3", "2021", "R", missing_cb, &a), 0);
	assert_int_equal(th_source_missing(x->local, "PL3", "2021", "R", missing_cb, &b), 0);
	char *ta = rows_close(&a);
	assert_string_equal(ta, "SNVX|Sở X|R|department|||\nC2|Phường 2|D1|commune|||\n");
	assert_same_text(ta, rows_close(&b));
	/* the parent's name: the store knows it, the socket's answer has the code only */
	rows_open(&a, d);
	rows_open(&b, d);
	assert_int_equal(th_source_missing(x->remote, "PL3", "2021", "D1", parent_cb, &a), 0);
	assert_int_equal(th_source_missing(x->local, "PL3", "2021", "D1", parent_cb, &b), 0);
	ta = rows_close(&a);
	char *tb = rows_close(&b);
	assert_string_equal(ta, "C2<(unknown)\n");
	assert_string_equal(tb, "C2<Quận 1\n");
	free(ta);
	free(tb);

	rows_open(&a, d);
	rows_open(&b, d);
	assert_int_equal(th_source_hierarchies(x->remote, hier_cb, &a), 0);
	assert_int_equal(th_source_hierarchies(x->local, hier_cb, &b), 0);
	ta = rows_close(&a);
	assert_non_null(strstr(ta, "it-1|20210101|6|3|R|file "));
	assert_non_null(strstr(ta, "|2021,\n"));
	assert_same_text(ta, rows_close(&b));
}

static char *render(const th_doc *doc, th_format fmt)
{
	char *buf = NULL, why[200];
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	th_render_opts o = {.fmt = fmt};
	assert_int_equal(th_render_doc(doc, &o, f, why, sizeof why), 0);
	fclose(f);
	return buf;
}

/* The views on either source: the same tables, byte for byte. */
static void same_views(void **state)
{
	sx *x = *state;
	th_diag *diag = th_diag_new();
	th_source *srcs[2] = {x->remote, x->local};
	char *out[2][3];
	for (int k = 0; k < 2; k++) {
		th_doc *doc = NULL;
		th_rollup_req rq = {.appendix = "PL3", .period = "2021", .level = 2};
		assert_int_equal(th_view_rollup(srcs[k], &rq, &doc, diag), 0);
		out[k][0] = render(doc, TH_FMT_JSON);
		th_doc_destroy(&doc);
		th_rollup_req own = {.appendix = "PL3", .period = "2021", .parent = "D1", .own = 1};
		assert_int_equal(th_view_rollup(srcs[k], &own, &doc, diag), 0);
		out[k][1] = render(doc, TH_FMT_TABLE);
		th_doc_destroy(&doc);
		th_status_req sq = {.appendix = "PL3", .period = "2021", .level = 2};
		assert_int_equal(th_view_status(srcs[k], &sq, &doc, diag), 0);
		out[k][2] = render(doc, TH_FMT_CSV);
		th_doc_destroy(&doc);
	}
	assert_int_equal(th_diag_count(diag), 0);
	assert_non_null(strstr(out[0][0], "{\"unit\": \"D1\", \"name\": \"Quận 1\", \"expected\": 3, "
	                                  "\"reported\": 2, "));
	assert_non_null(strstr(out[0][1], "  Cộng Quận 1  "));
	for (int i = 0; i < 2; i++)
		assert_string_equal(out[0][i], out[1][i]);
	/* status: the same counts; the missing list differs only in the parent's name */
	char *cut0 = strstr(out[0][2], "\r\n\r\n"), *cut1 = strstr(out[1][2], "\r\n\r\n");
	assert_non_null(cut0);
	assert_non_null(cut1);
	*cut0 = *cut1 = 0;
	assert_string_equal(out[0][2], out[1][2]);
	assert_non_null(strstr(cut0 + 4, "C2,Phường 2,D1,,"));
	assert_non_null(strstr(cut1 + 4, "C2,Phường 2,D1,Quận 1,"));
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < 3; i++)
			free(out[k][i]);
	th_diag_destroy(&diag);
}

/* What the query socket does not serve is refused with a sentence naming the
 * way out; a collector without keys is refused before connecting. */
static void collector_limits(void **state)
{
	sx *x = *state;
	th_report *r = NULL;
	th_revision_info info;
	const th_units *u = NULL;
	th_store_stats st;
	assert_int_equal(th_source_report(x->remote, "D1", "PL3", "2021", &r, &info), TH_EINVAL);
	assert_string_equal(th_source_error(x->remote),
	                    "the collector's query socket does not serve report contents; use --db DIR");
	assert_int_equal(th_source_hierarchy(x->remote, "2021", &u), TH_EINVAL);
	assert_int_equal(th_source_stats(x->remote, &st), TH_EINVAL);
	assert_int_equal(th_source_verify(x->remote, NULL), TH_EINVAL);
	assert_true(th_source_is_remote(x->remote));
	assert_int_equal(th_source_report(x->local, "D1", "PL3", "2021", &r, &info), 0);
	assert_int_equal(info.rev, 2);
	th_report_destroy(&r);

	th_source *s = NULL;
	char why[600];
	th_source_opts o = {.collector = x->f->query, .defs = x->f->defs};
	assert_int_equal(th_source_open(&o, &s, why, sizeof why), TH_ENET);
	assert_null(s);
	assert_non_null(strstr(why, "give --key FILE and --server-key FILE (or --insecure)"));
}

/* The rollup stream: a correction's change of D1 at level 2, decoded. */
static void stream_decodes_rollup_changes(void **state)
{
	sx *x = *state;
	cf_fixture *f = x->f;
	th_stream *st = NULL;
	char why[600];
	assert_int_equal(th_stream_open(f->pubep, NULL, x->server_pub, 0, 2, "D1", &st, why, sizeof why),
	                 TH_EINVAL);
	assert_int_equal(th_stream_open(f->pubep, x->key, x->server_pub, 0, 2, "D1", &st, why, sizeof why), 0);
	/* the subscription reaches the collector asynchronously: correct until seen */
	th_stream_msg m;
	int got = 0;
	for (uint64_t rev = 3; rev < 40 && !got; rev++) {
		submit(f, &f->d1, "D1", rev, 5 + (int64_t)rev, 0, 0);
		for (int i = 0; i < 5 && !got; i++)
			got = th_stream_next(st, 100, &m) == 0;
	}
	assert_true(got);
	assert_string_equal(m.unit, "D1");
	assert_string_equal(m.appendix, "PL3");
	assert_string_equal(m.period, "2021");
	assert_int_equal(m.level, 2);
	th_node n;
	const th_def *d = th_source_def(x->local, "PL3", "2021", NULL);
	assert_int_equal(th_source_node(x->local, d, "PL3", "2021", "D1", &n), 0);
	assert_int_equal(m.expected, n.expected);
	assert_int_equal(m.reported, n.reported);
	assert_true(m.version >= 3 && m.version <= n.version);
	assert_true(m.commit > 0 && m.commit <= n.commit);
	th_node_free(&n);
	/* C1's changes are L3: not for this subscription */
	submit(f, &f->d1, "C1", 2, 9, 0, 0);
	while (th_stream_next(st, 300, &m) == 0)
		assert_string_equal(m.unit, "D1");
	th_stream_destroy(&st);
	assert_null(st);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(same_definition_units_levels_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(same_missing_and_hierarchies, setup, teardown),
		cmocka_unit_test_setup_teardown(same_views, setup, teardown),
		cmocka_unit_test_setup_teardown(collector_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(stream_decodes_rollup_changes, setup, teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

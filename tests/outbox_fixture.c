/* outbox_fixture.c -- outbox contents for the tests (see the header). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "outbox_fixture.h"
#include "testutil.h"

const char OF_PL1_TEXT[] = "[appendix]\nid = PL1\nversion = 1\ntitle = Phụ lục thử\n"
                          "submitters = department district commune\nkey =\n"
                          "[column so]\ntitle = Số\ntype = integer\nrollup = sum\n"
                          "[column ten]\ntitle = Tên\ntype = text\nmax_len = 1000000\n"
                          "rollup = none\n";
const char OF_PL8_TEXT[] = "[appendix]\nid = PL8\nversion = 1\ntitle = Phụ lục có khoá\n"
                          "submitters = department\nkey = ma\n"
                          "[column ma]\ntitle = Mã\ntype = text\nrequired = yes\nrollup = none\n"
                          "[column so]\ntitle = Số\ntype = integer\nrollup = sum\n";

static th_defset *g_defs;

const th_defset *of_defs(void)
{
	if (g_defs)
		return g_defs;
	g_defs = th_defset_new();
	assert_non_null(g_defs);
	const char *texts[2] = {OF_PL1_TEXT, OF_PL8_TEXT};
	for (int i = 0; i < 2; i++) {
		th_def *d = NULL;
		th_diag *dg = th_diag_new();
		int rc = th_def_parse(texts[i], strlen(texts[i]), "test", &d, dg);
		if (rc)
			fail_msg("test definition %d: %s", i, th_diag_count(dg) ? th_diag_text(dg, 0) : "?");
		th_diag_destroy(&dg);
		assert_int_equal(th_defset_add(g_defs, d), 0);
	}
	return g_defs;
}

const th_def *of_def(void) { return th_defset_get(of_defs(), "PL1", 1); }

void of_cleanup(void) { th_defset_destroy(&g_defs); }

th_report *of_report(const char *unit, int64_t v)
{
	th_report *r = th_report_new(unit, "PL1", 1, "2021", 0, 2);
	assert_non_null(r);
	assert_true(th_report_add_row(r) >= 0);
	th_report_cell(r, 0, 0)->null = 0;
	th_report_cell(r, 0, 0)->i = v;
	return r;
}

void of_hash(uint8_t h[TH_HASH_LEN], uint8_t a, uint8_t b)
{
	memset(h, 0, TH_HASH_LEN);
	h[0] = a;
	h[1] = b;
}

void of_ack(th_outbox *ob, const char *unit, uint64_t rev, th_ack_status st,
            const uint8_t store[TH_STORE_UUID_LEN])
{
	th_ack a;
	memset(&a, 0, sizeof a);
	memcpy(a.store, store, TH_STORE_UUID_LEN);
	a.commit = rev;
	th_ack_result r;
	memset(&r, 0, sizeof r);
	r.unit = (char *)unit;
	r.appendix = "PL1";
	r.period = "2021";
	r.rev = rev;
	r.status = st;
	r.stored_rev = rev;
	if (st == TH_ACK_REJECTED) {
		r.code = TH_ERULE;
		r.message = "bad figures";
	}
	a.results = &r;
	a.n_results = 1;
	int oc = 0;
	assert_int_equal(th_outbox_apply_ack(ob, &a, (int64_t)rev, &oc), 0);
	assert_int_equal(oc, 1);
}

void of_pl1_file(const char *path, const char *unit, int seed)
{
	char text[512];
	int n = snprintf(text, sizeof text,
	                 "#appendix: PL1\n#version: 1\n#unit: %s\n#period: 2021\n"
	                 "co_ke_hoach_cchc,nhiem_vu_ke_hoach,nhiem_vu_hoan_thanh\n"
	                 "có,%d,%d\n", unit, 20 + seed, 10 + seed);
	assert_int_equal(tu_write_file(path, text, (size_t)n), 0);
}

int of_hist_has(th_outbox *ob, const char *unit, const uint8_t *h)
{
	th_ob_hist hi;
	int rc = th_outbox_history_get(ob, unit, "PL1", "2021", h, &hi);
	assert_true(rc == 0 || rc == TH_ENOTFOUND);
	return rc == 0;
}

void of_retention_fill(const char *dir, of_retention *c)
{
	memset(c, 0, sizeof *c);
	memset(c->store, 7, sizeof c->store);
	memset(c->other, 8, sizeof c->other);
	th_outbox *ob = NULL;
	assert_int_equal(th_outbox_open(dir, &ob, NULL), 0);
	/* U1: revisions 0..37 accepted, 38 rejected, 39 pending; one a day */
	for (int i = 0; i < OF_NREV; i++) {
		of_hash(c->h[i], (uint8_t)(i + 1), 0);
		th_report *r = of_report("U1", 100 + i);
		th_ob_enqueued e;
		assert_int_equal(
			th_outbox_enqueue(ob, r, of_def(), c->h[i], "u1.csv", 0, OF_BASE + i * OF_DAY_US, &e), 0);
		assert_int_equal(e.outcome, TH_OB_NEW);
		c->rev[i] = e.rev;
		th_report_destroy(&r);
		if (i < OF_NREV - 2)
			of_ack(ob, "U1", c->rev[i], TH_ACK_ACCEPTED, c->store);
		else if (i == OF_NREV - 2)
			of_ack(ob, "U1", c->rev[i], TH_ACK_REJECTED, c->store);
	}
	/* U2: three old revisions, all accepted (fewer than K: all kept) */
	for (int i = 0; i < 3; i++) {
		of_hash(c->g[i], 0x80, (uint8_t)i);
		th_report *r = of_report("U2", 200 + i);
		th_ob_enqueued e;
		assert_int_equal(
			th_outbox_enqueue(ob, r, of_def(), c->g[i], "u2.csv", 0, OF_BASE + i * OF_DAY_US, &e), 0);
		c->grev[i] = e.rev;
		th_report_destroy(&r);
		of_ack(ob, "U2", c->grev[i], TH_ACK_ACCEPTED, c->store);
	}
	assert_int_equal(th_outbox_history_count(ob), OF_NREV + 3);
	/* what must stay, from the rule */
	c->kept = 3;
	for (int i = 0; i < OF_NREV; i++) {
		c->must[i] = OF_BASE + i * OF_DAY_US >= OF_NOW - OF_DAYS * OF_DAY_US ||
		             i >= OF_NREV - (int)OF_KEEP || i >= OF_LATEST_ACKED;
		c->kept += (size_t)c->must[i];
	}
	assert_true(c->kept < OF_NREV);   /* the case prunes something */
	th_outbox_close(&ob);
}

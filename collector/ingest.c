/* ingest.c -- the rules of a report, once (ingest.h). */
#include "ingest.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void refuse(th_ack_result *r, th_ack_status st, int code, long row, const char *column,
                   const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void refuse(th_ack_result *r, th_ack_status st, int code, long row, const char *column,
                   const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *m = NULL;
	if (vasprintf(&m, fmt, ap) < 0)
		m = NULL;
	va_end(ap);
	r->status = st;
	r->code = code;
	r->row = row;
	free(r->message);
	r->message = m;
	free(r->column);
	r->column = column ? strdup(column) : NULL;
}

static void add_warning(th_ack_result *r, const char *text)
{
	char **w = realloc(r->warnings, (r->n_warnings + 1) * sizeof *w);
	if (!w)
		return;
	r->warnings = w;
	if ((w[r->n_warnings] = strdup(text)))
		r->n_warnings++;
}

/* Validation against d: warnings into res; the first error (and how many more)
 * as the refusal.  1 when there is no error. */
static int validates(th_report *r, const th_def *d, th_ack_result *res)
{
	th_diag *diag = th_diag_new();
	if (!diag) {
		refuse(res, TH_ACK_RETRY_LATER, TH_ENOMEM, 0, NULL, "out of memory");
		return 0;
	}
	th_report_validate(r, d, diag);
	size_t nerr = 0;
	for (size_t k = 0; k < th_diag_count(diag); k++) {
		const th_diag_entry *e = th_diag_at(diag, k);
		if (e->sev == TH_SEV_WARNING)
			add_warning(res, th_diag_text(diag, k));
		else if (nerr++ == 0)
			refuse(res, TH_ACK_REJECTED, e->code, e->row, e->column, "%s", e->msg);
	}
	if (nerr > 1 && res->message) {
		char *m = NULL;
		if (asprintf(&m, "%s (and %zu more problems)", res->message, nerr - 1) >= 0) {
			free(res->message);
			res->message = m;
		}
	}
	th_diag_destroy(&diag);
	return nerr == 0;
}

int th_ingest_check(th_store *s, const th_key *key, int insecure, const th_report *cr, int derr,
                    const char *dwhy, th_checked *c, th_ack_result *res)
{
	/* validation may rewrite a derived status cell (th_report_validate): the
	 * report is the caller's to give, and is not changed after this */
	th_report *r = (th_report *)cr;
	if (!r) {
		refuse(res, derr == TH_EDEFCHANGED ? TH_ACK_RETRY_LATER : TH_ACK_REJECTED, derr, 0, NULL,
		       "%s", dwhy ? dwhy : th_strerror(derr));
		return 0;
	}
	if (key->role == TH_ROLE_READER) {
		refuse(res, TH_ACK_REJECTED, TH_EAUTH, 0, NULL,
		       "this key has the reader role and cannot submit");
		return 0;
	}
	if (r->tombstone && key->role != TH_ROLE_ADMIN) {
		refuse(res, TH_ACK_REJECTED, TH_EAUTH, 0, NULL, "only an admin key may withdraw a report");
		return 0;
	}
	/* the one lookup of the definition in force */
	const th_def *d = th_store_def_for(s, r->appendix, r->period);
	if (!d && !th_store_def_for(s, r->appendix, NULL)) {
		refuse(res, TH_ACK_REJECTED, TH_EAPPENDIX, 0, NULL, "unknown appendix %s",
		       r->appendix ? r->appendix : "(none)");
		return 0;
	}
	if (!d || d->version != r->version) {
		if (d)
			refuse(res, TH_ACK_RETRY_LATER, TH_EDEFCHANGED, 0, NULL,
			       "%s version %u is not the one in force for %s (version %u): fetch the "
			       "current definitions and check the file again",
			       r->appendix, (unsigned)r->version, r->period, (unsigned)d->version);
		else
			refuse(res, TH_ACK_RETRY_LATER, TH_EDEFCHANGED, 0, NULL,
			       "%s version %u is not the one in force for %s (the collector has no version "
			       "of it in force): fetch the current definitions", r->appendix,
			       (unsigned)r->version, r->period);
		return 0;
	}
	if (!validates(r, d, res))
		return 0;
	uint8_t *canon = NULL;
	size_t clen = 0;
	uint8_t hash[TH_HASH_LEN];
	int rc = th_canon_encode_hash(r, d, &canon, &clen, hash);
	if (rc) {
		refuse(res, rc == TH_ENOMEM ? TH_ACK_RETRY_LATER : TH_ACK_REJECTED, rc, 0, NULL,
		       "the report cannot be put in its canonical form: %s", th_strerror(rc));
		return 0;
	}
	const th_units *h = NULL;
	if (th_store_hierarchy_for(s, r->period, &h) != 0 || !h) {
		free(canon);
		refuse(res, TH_ACK_RETRY_LATER, TH_ESTORE, 0, NULL, "no hierarchy is loaded for period %s",
		       r->period);
		return 0;
	}
	long u = th_units_find(h, r->unit);
	if (u < 0) {
		free(canon);
		refuse(res, TH_ACK_REJECTED, TH_EUNIT, 0, NULL,
		       "unit %s is not in hierarchy %s, the one period %s uses", r->unit,
		       th_units_version(h), r->period);
		return 0;
	}
	if (!insecure || key->role != TH_ROLE_ADMIN) {
		long k = th_units_find(h, key->unit);
		if (k < 0 || !th_units_in_subtree(h, (size_t)k, (size_t)u)) {
			free(canon);
			refuse(res, TH_ACK_REJECTED, TH_ESCOPE, 0, NULL,
			       "the key of %s may not file for %s (outside its subtree)", key->unit, r->unit);
			return 0;
		}
	}
	/* only the appendix's submitters count towards completeness; an admin may
	 * still withdraw what came in before this rule */
	const th_unit *un = th_units_at(h, (size_t)u);
	if (!r->tombstone && !th_def_expects(d, un->kind, un->code)) {
		char who[160];
		th_def_submitters_text(d, who, sizeof who);
		free(canon);
		refuse(res, TH_ACK_REJECTED, TH_ENOTEXPECTED, 0, NULL,
		       "%s (%s) is not expected to file %s: it is filed by %s", un->code, un->kind, d->id,
		       who);
		return 0;
	}
	memset(&c->sub, 0, sizeof c->sub);
	c->canon = canon;
	c->sub.report = r;
	c->sub.sender = key->comment[0] ? key->comment : key->unit;
	c->sub.def = d;
	c->sub.hier = h;
	c->sub.canon = canon;
	c->sub.canon_len = clen;
	memcpy(c->sub.hash, hash, TH_HASH_LEN);
	return 1;
}

void th_checked_release(th_checked *c)
{
	if (!c)
		return;
	free(c->canon);
	c->canon = NULL;
	c->sub.canon = NULL;
}

void th_ingest_answer(th_store *s, const th_store_result *sr, const char *unit,
                      const char *appendix, const char *period, uint64_t rev, th_ack_result *res)
{
	if (sr) {
		static const th_ack_status st[] = {
			[TH_STORE_ACCEPTED] = TH_ACK_ACCEPTED, [TH_STORE_DUPLICATE] = TH_ACK_DUPLICATE,
			[TH_STORE_STALE] = TH_ACK_STALE, [TH_STORE_RETRY] = TH_ACK_RETRY_LATER,
			[TH_STORE_REJECTED] = TH_ACK_REJECTED};
		res->status = st[sr->status];
		res->code = sr->code;
		res->stored_rev = sr->stored_rev;
		res->row = 0;
		free(res->message);
		res->message = sr->message[0] ? strdup(sr->message) : NULL;
		free(res->column);
		res->column = NULL;
	}
	if (!res->unit && unit)
		res->unit = strdup(unit);
	if (!res->appendix && appendix)
		res->appendix = strdup(appendix);
	if (!res->period && period)
		res->period = strdup(period);
	if (!res->rev)
		res->rev = rev;
	if (!sr && !res->stored_rev && unit && appendix && th_period_valid(period))
		th_store_rev(s, unit, appendix, period, &res->stored_rev);
}

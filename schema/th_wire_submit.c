/* th_wire_submit.c -- the submit and ack messages (PROTOCOL.md section 3). */
#include "th_wire_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* --- submit ------------------------------------------------------------------- */

static int pack_report(packer *p, const th_report *r, const th_def *d)
{
	msgpack_pack_map(&p->pk, 8);
	pk_kstr(p, "unit", r->unit);
	pk_kstr(p, "appendix", r->appendix);
	pk_kuint(p, "version", r->version);
	pk_kstr(p, "period", r->period);
	pk_kuint(p, "rev", r->rev);
	pk_kint(p, "as_of", r->as_of);
	pk_str(p, "tomb");
	if (r->tombstone)
		msgpack_pack_true(&p->pk);
	else
		msgpack_pack_false(&p->pk);
	pk_str(p, "rows");
	msgpack_pack_array(&p->pk, r->n_rows);
	for (size_t i = 0; i < r->n_rows; i++) {
		msgpack_pack_array(&p->pk, r->n_cols);
		for (size_t c = 0; c < r->n_cols; c++) {
			const th_value *v = th_report_cell(r, i, c);
			const th_column *col = &d->cols[c];
			if (v->null) {
				msgpack_pack_nil(&p->pk);
				continue;
			}
			switch (col->type) {
			case TH_T_ENUM:
				if (v->i < 0 || (uint64_t)v->i >= col->n_values)
					return TH_ERANGE;
				pk_str(p, col->values[v->i].code);
				break;
			case TH_T_BOOL:
				if (v->i)
					msgpack_pack_true(&p->pk);
				else
					msgpack_pack_false(&p->pk);
				break;
			case TH_T_TEXT:
				msgpack_pack_str(&p->pk, v->len);
				msgpack_pack_str_body(&p->pk, v->s ? v->s : "", v->len);
				break;
			default:
				msgpack_pack_int64(&p->pk, v->i);
			}
		}
	}
	return TH_OK;
}

int th_wire_encode_submit(uint64_t id, th_report *const *reports, size_t n, const th_defset *defs,
                          uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	tw_header(&p, TH_MSG_SUBMIT, 2);
	pk_kuint(&p, "id", id);
	pk_str(&p, "reports");
	msgpack_pack_array(&p.pk, n);
	for (size_t i = 0; i < n; i++) {
		const th_def *d = th_defset_get(defs, reports[i]->appendix, reports[i]->version);
		int rc = d && d->n_cols == reports[i]->n_cols ? pack_report(&p, reports[i], d) : TH_EAPPENDIX;
		if (rc) {
			msgpack_sbuffer_destroy(&p.sb);
			return rc;
		}
	}
	return tw_done(&p, out, len);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	char *s = NULL;
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Decodes the rows array at m against d into r. Returns 0 or TH_E* with *msg. */
static int decode_rows(th_mp *m, const th_def *d, const th_limits *lim, th_report *r, char **msg)
{
	uint32_t nrows;
	if (th_mp_array(m, &nrows)) {
		*msg = fmt("rows: expected an array");
		return TH_ETYPE;
	}
	uint32_t max_rows = d->n_key == 0 ? 1 : d->max_rows;
	if (lim->max_rows < max_rows)
		max_rows = lim->max_rows;
	if (nrows > max_rows) {
		*msg = fmt("%u rows, at most %u allowed", nrows, max_rows);
		return TH_ETOOBIG;
	}
	for (uint32_t i = 0; i < nrows; i++) {
		uint32_t nc;
		if (th_mp_array(m, &nc) || nc != d->n_cols) {
			*msg = fmt("row %u: expected an array of %zu cells", i + 1, d->n_cols);
			return TH_ETYPE;
		}
		long row = th_report_add_row(r);
		if (row < 0)
			return (int)row;
		for (uint32_t c = 0; c < nc; c++) {
			const th_column *col = &d->cols[c];
			th_value *v = th_report_cell(r, (size_t)row, c);
			int k = th_mp_peek(m);
			if (k == TH_MP_NIL) {
				th_mp_nil(m);
				continue;
			}
			int rc = TH_ETYPE;
			const char *s;
			uint32_t sn;
			switch (col->type) {
			case TH_T_INT:
			case TH_T_DEC:
			case TH_T_DATE:
				if (k == TH_MP_INT)
					rc = th_mp_int(m, &v->i);
				if (rc == TH_ERANGE) {
					*msg = fmt("row %u: column %s: integer out of range", i + 1, col->id);
					return TH_ERANGE;
				}
				break;
			case TH_T_BOOL:
				if (k == TH_MP_BOOL) {
					int b;
					rc = th_mp_bool(m, &b);
					v->i = b;
				}
				break;
			case TH_T_ENUM:
				if (k == TH_MP_STR && (rc = th_mp_str(m, &s, &sn)) == 0) {
					long e = -1;
					for (size_t j = 0; j < col->n_values; j++)
						if (strlen(col->values[j].code) == sn &&
						    memcmp(col->values[j].code, s, sn) == 0)
							e = (long)j;
					if (e < 0) {
						*msg = fmt("row %u: column %s: \"%.*s\" is not one of its codes", i + 1,
						           col->id, (int)(sn > 64 ? 64 : sn), s);
						return TH_ERANGE;
					}
					v->i = e;
				}
				break;
			case TH_T_TEXT:
				if (k == TH_MP_STR && (rc = th_mp_str(m, &s, &sn)) == 0) {
					if (sn > lim->max_text) {
						*msg = fmt("row %u: column %s: text of %u bytes exceeds the limit %u",
						           i + 1, col->id, sn, lim->max_text);
						return TH_ETOOBIG;
					}
					size_t l;
					int nrc = th_utf8_nfc(s, sn, &v->s, &l);
					if (nrc == TH_EUTF8) {
						*msg = fmt("row %u: column %s: invalid UTF-8", i + 1, col->id);
						return TH_EUTF8;
					}
					if (nrc)
						return TH_ENOMEM;
					v->len = (uint32_t)l;
					v->nfc = 1;   /* validation need not check it again */
				}
				break;
			}
			if (rc) {
				if (rc == TH_ETRUNC) {
					*msg = fmt("row %u: truncated", i + 1);
					return TH_ETRUNC;
				}
				*msg = fmt("row %u: column %s: expected %s (%s), got another msgpack type", i + 1,
				           col->id, th_type_name(col->type),
				           col->type == TH_T_ENUM ? "a code string"
				           : col->type == TH_T_DATE ? "an integer yyyymmdd"
				           : col->type == TH_T_DEC ? "a scaled integer"
				           : col->type == TH_T_BOOL ? "true/false"
				           : col->type == TH_T_TEXT ? "a string" : "an integer");
				return TH_ETYPE;
			}
			v->null = 0;
		}
	}
	return TH_OK;
}

static const char *const report_names[] = {"unit", "appendix", "version", "period", "rev",
                                           "as_of", "tomb", "rows"};

/* Decodes one report map; identity is written to s's arrays at index i even
 * when the body fails.  Returns TH_OK, or a per-report error (set in s), or
 * TH_EPROTO when the envelope structure itself is broken (whole message). */
static int decode_report(th_mp *m, size_t i, const th_defset *defs, const th_limits *lim,
                         th_submit_decoded *s)
{
	uint32_t n;
	const uint8_t *start = m->p;
	if (th_mp_map(m, &n) || n > MAX_FIELDS) {
		/* not a map: skip it, error for this report only */
		m->p = start;
		if (th_mp_skip(m, MAX_DEPTH))
			return TH_EPROTO;
		s->err[i] = TH_EPROTO;
		s->why[i] = fmt("report %zu: expected a map", i + 1);
		return TH_OK;
	}
	uint64_t seen = 0;
	const uint8_t *rows_at = NULL;
	uint64_t version = 0, rev = 0;
	int64_t as_of = 0;
	int tomb = 0;
	int ferr = 0;
	char *ferrmsg = NULL;
	for (uint32_t j = 0; j < n; j++) {
		int err = 0;
		int k = tw_next_field(m, report_names, 8, &seen, &err);
		if (k == -2)
			goto proto;
		if (k == -3) {
			if (!ferr) {
				ferr = TH_EPROTO;
				ferrmsg = fmt("report %zu: duplicate field", i + 1);
			}
			if (th_mp_skip(m, MAX_DEPTH))
				goto proto;
			continue;
		}
		int rc = 0;
		const char *what = NULL;
		switch (k) {
		case -1: rc = th_mp_skip(m, MAX_DEPTH); if (rc) goto proto; break;
		case 0: rc = tw_dup_str(m, TH_CODE_MAX, &s->unit[i]); what = "unit: expected a string of at most 64 bytes"; break;
		case 1: rc = tw_dup_str(m, TH_CODE_MAX, &s->appendix[i]); what = "appendix: expected a string"; break;
		case 2: rc = th_mp_uint(m, &version); what = "version: expected an unsigned integer"; break;
		case 3: rc = tw_dup_str(m, TH_PERIOD_MAX, &s->period[i]); what = "period: expected a short string"; break;
		case 4: rc = th_mp_uint(m, &rev); what = "rev: expected an unsigned integer"; break;
		case 5: rc = th_mp_int(m, &as_of); what = "as_of: expected an integer yyyymmdd"; break;
		case 6: rc = th_mp_bool(m, &tomb); what = "tomb: expected a boolean"; break;
		case 7:
			rows_at = m->p;
			rc = th_mp_skip(m, 4);
			if (rc == TH_ETRUNC)
				goto proto;
			what = "rows: expected an array of arrays of cells";
			break;
		}
		if (rc) {
			/* skip the bad value so the envelope can go on */
			if (rc == TH_ETYPE || rc == TH_ERANGE || rc == TH_ETOOBIG || rc == TH_EUTF8) {
				if (rc == TH_ETYPE || rc == TH_ERANGE) {
					if (th_mp_skip(m, MAX_DEPTH))
						goto proto;
				}
				if (!ferr) {
					ferr = rc == TH_ERANGE ? TH_ERANGE : rc == TH_ETOOBIG ? TH_ETOOBIG
					       : rc == TH_EUTF8 ? TH_EUTF8 : TH_ETYPE;
					ferrmsg = fmt("report %zu: %s", i + 1, what);
				}
			} else if (rc == TH_EDEPTH) {
				if (!ferr) {
					ferr = TH_EDEPTH;
					ferrmsg = fmt("report %zu: %s (nesting too deep)", i + 1, what);
				}
				goto proto;
			} else {
				goto proto;
			}
		}
	}
	s->rev[i] = rev;
	if (!s->unit[i]) s->unit[i] = strdup("");
	if (!s->appendix[i]) s->appendix[i] = strdup("");
	if (!s->period[i]) s->period[i] = strdup("");
	if (!s->unit[i] || !s->appendix[i] || !s->period[i]) {
		free(ferrmsg);
		return TH_ENOMEM;
	}
	if (ferr) {
		s->err[i] = ferr;
		s->why[i] = ferrmsg;
		return TH_OK;
	}
	if ((seen & 0x9f) != 0x9f) {   /* unit appendix version period rev rows */
		s->err[i] = TH_EMISSING;
		s->why[i] = fmt("report %zu: lacks one of unit, appendix, version, period, rev, rows", i + 1);
		return TH_OK;
	}
	if (version > UINT32_MAX || as_of < 0 || as_of > INT32_MAX) {
		s->err[i] = TH_ERANGE;
		s->why[i] = fmt("report %zu: version or as_of out of range", i + 1);
		return TH_OK;
	}
	const th_def *d = th_defset_get(defs, s->appendix[i], (uint32_t)version);
	if (!d) {
		if (th_defset_latest(defs, s->appendix[i])) {
			s->err[i] = TH_EDEFCHANGED;
			s->why[i] = fmt("%s version %llu is not known here; fetch the current definitions",
			                s->appendix[i], (unsigned long long)version);
		} else {
			s->err[i] = TH_EAPPENDIX;
			s->why[i] = fmt("unknown appendix \"%s\"", s->appendix[i]);
		}
		return TH_OK;
	}
	th_report *r = th_report_new(s->unit[i], s->appendix[i], (uint32_t)version, s->period[i], rev,
	                             d->n_cols);
	if (!r)
		return TH_ENOMEM;
	r->as_of = (int32_t)as_of;
	r->tombstone = (uint8_t)tomb;
	th_mp rm = {rows_at, m->p};
	char *msg = NULL;
	int rc = decode_rows(&rm, d, lim, r, &msg);
	if (rc) {
		th_report_destroy(&r);
		if (rc == TH_ENOMEM) {
			free(msg);
			return TH_ENOMEM;
		}
		s->err[i] = rc;
		s->why[i] = msg ? msg : fmt("report %zu: rows malformed", i + 1);
		return TH_OK;
	}
	s->reports[i] = r;
	return TH_OK;
proto:
	free(ferrmsg);
	return TH_EPROTO;
}

static const char *const submit_names[] = {"id", "reports"};

int th_wire_decode_submit(const uint8_t *buf, size_t len, const th_defset *defs,
                          const th_limits *lim, th_submit_decoded *s, const char **why)
{
	memset(s, 0, sizeof *s);
	if (!lim)
		lim = &th_limits_default;
	th_mp m;
	th_msg_type t;
	uint32_t n;
	int rc = tw_envelope(&m, buf, len, &t, &n, why);
	if (rc)
		return rc;
	if (t != TH_MSG_SUBMIT)
		return tw_why(why, "expected a submit message", TH_EPROTO);
	uint64_t seen = 0;
	int have_reports = 0;
	for (uint32_t i = 0; i < n; i++) {
		int err = 0;
		int idx = tw_next_field(&m, submit_names, 2, &seen, &err);
		if (idx == -3 || idx == -2) {
			rc = tw_why(why, "duplicate or non-string key in the message", TH_EPROTO);
			goto fail;
		}
		if (idx == -1) {
			if (th_mp_skip(&m, MAX_DEPTH)) {
				rc = tw_why(why, "malformed value", TH_EPROTO);
				goto fail;
			}
		} else if (idx == 0) {
			if (th_mp_uint(&m, &s->id)) {
				rc = tw_why(why, "submit.id: expected an unsigned integer", TH_EPROTO);
				goto fail;
			}
		} else {
			uint32_t nr;
			if (th_mp_array(&m, &nr)) {
				rc = tw_why(why, "submit.reports: expected an array", TH_EPROTO);
				goto fail;
			}
			if (nr > lim->max_reports) {
				rc = tw_why(why, "submit.reports: more reports than the limit", TH_ETOOBIG);
				goto fail;
			}
			size_t cap = nr ? nr : 1;
			s->reports = calloc(cap, sizeof *s->reports);
			s->err = calloc(cap, sizeof *s->err);
			s->why = calloc(cap, sizeof *s->why);
			s->unit = calloc(cap, sizeof *s->unit);
			s->appendix = calloc(cap, sizeof *s->appendix);
			s->period = calloc(cap, sizeof *s->period);
			s->rev = calloc(cap, sizeof *s->rev);
			if (!s->reports || !s->err || !s->why || !s->unit || !s->appendix || !s->period ||
			    !s->rev) {
				rc = TH_ENOMEM;
				goto fail;
			}
			s->n_reports = nr;
			for (uint32_t j = 0; j < nr; j++) {
				rc = decode_report(&m, j, defs, lim, s);
				if (rc) {
					rc = tw_why(why, rc == TH_ENOMEM ? "out of memory"
					                                  : "submit.reports: malformed report", rc);
					goto fail;
				}
			}
			have_reports = 1;
		}
	}
	if (!have_reports || !(seen & 1)) {
		rc = tw_why(why, "submit lacks id or reports", TH_EPROTO);
		goto fail;
	}
	return TH_OK;
fail:
	th_submit_decoded_free(s);
	return rc;
}

void th_submit_decoded_free(th_submit_decoded *s)
{
	for (size_t i = 0; i < s->n_reports; i++) {
		if (s->reports)
			th_report_destroy(&s->reports[i]);
		if (s->why)
			free(s->why[i]);
		if (s->unit)
			free(s->unit[i]);
		if (s->appendix)
			free(s->appendix[i]);
		if (s->period)
			free(s->period[i]);
	}
	free(s->reports);
	free(s->err);
	free(s->why);
	free(s->unit);
	free(s->appendix);
	free(s->period);
	free(s->rev);
	memset(s, 0, sizeof *s);
}

/* --- ack ---------------------------------------------------------------------- */

int th_wire_encode_ack(const th_ack *a, uint8_t **out, size_t *len)
{
	packer p;
	pk_init(&p);
	tw_header(&p, TH_MSG_ACK, 5);
	pk_kuint(&p, "id", a->id);
	pk_str(&p, "store");
	msgpack_pack_bin(&p.pk, TH_STORE_UUID_LEN);
	msgpack_pack_bin_body(&p.pk, a->store, TH_STORE_UUID_LEN);
	pk_kuint(&p, "commit", a->commit);
	pk_kint(&p, "time", a->commit_time);
	pk_str(&p, "results");
	msgpack_pack_array(&p.pk, a->n_results);
	for (size_t i = 0; i < a->n_results; i++) {
		const th_ack_result *r = &a->results[i];
		msgpack_pack_map(&p.pk, 11);
		pk_kstr(&p, "status", th_ack_status_name(r->status));
		pk_kstr(&p, "reason", r->code ? th_errname(r->code) : "");
		pk_kstr(&p, "message", r->message ? r->message : "");
		pk_kint(&p, "row", r->row);
		pk_kstr(&p, "column", r->column ? r->column : "");
		pk_kuint(&p, "stored_rev", r->stored_rev);
		pk_kstr(&p, "unit", r->unit ? r->unit : "");
		pk_kstr(&p, "appendix", r->appendix ? r->appendix : "");
		pk_kstr(&p, "period", r->period ? r->period : "");
		pk_kuint(&p, "rev", r->rev);
		pk_str(&p, "warnings");
		msgpack_pack_array(&p.pk, r->n_warnings);
		for (size_t w = 0; w < r->n_warnings; w++)
			pk_str(&p, r->warnings[w]);
	}
	return tw_done(&p, out, len);
}

static const char *const ack_names[] = {"id", "store", "commit", "time", "results"};
static const char *const result_names[] = {"status", "reason", "message", "row", "column",
                                           "stored_rev", "unit", "appendix", "period", "rev",
                                           "warnings"};

static int opt_str(th_mp *m, uint32_t max, char **out)
{
	int rc = tw_dup_str(m, max, out);
	if (rc)
		return rc;
	if (!**out) {
		free(*out);
		*out = NULL;
	}
	return TH_OK;
}

static int decode_result(th_mp *m, th_ack_result *r)
{
	uint32_t n;
	if (th_mp_map(m, &n) || n > MAX_FIELDS)
		return TH_EPROTO;
	uint64_t seen = 0;
	for (uint32_t i = 0; i < n; i++) {
		int err = 0;
		int k = tw_next_field(m, result_names, 11, &seen, &err);
		if (k < -1)
			return TH_EPROTO;
		int rc = 0;
		const char *s;
		uint32_t sn;
		int64_t row;
		switch (k) {
		case -1: rc = th_mp_skip(m, MAX_DEPTH); break;
		case 0:
			rc = th_mp_str(m, &s, &sn);
			if (!rc)
				rc = tw_ack_status_parse(s, sn, &r->status);
			break;
		case 1: {
			rc = th_mp_str(m, &s, &sn);
			if (!rc && sn) {
				char name[64];
				snprintf(name, sizeof name, "%.*s", (int)(sn < 63 ? sn : 63), s);
				r->code = th_errcode(name);
				if (!r->code)
					r->code = TH_EINVAL;
			}
			break;
		}
		case 2: rc = opt_str(m, MAX_STR, &r->message); break;
		case 3: rc = th_mp_int(m, &row); r->row = (long)row; break;
		case 4: rc = opt_str(m, 256, &r->column); break;
		case 5: rc = th_mp_uint(m, &r->stored_rev); break;
		case 6: rc = tw_dup_str(m, TH_CODE_MAX, &r->unit); break;
		case 7: rc = tw_dup_str(m, TH_CODE_MAX, &r->appendix); break;
		case 8: rc = tw_dup_str(m, TH_PERIOD_MAX, &r->period); break;
		case 9: rc = th_mp_uint(m, &r->rev); break;
		case 10:
			rc = th_mp_array(m, &sn);
			if (rc || sn > 10000)
				return TH_EPROTO;
			r->warnings = calloc(sn ? sn : 1, sizeof *r->warnings);
			if (!r->warnings)
				return TH_ENOMEM;
			for (uint32_t w = 0; w < sn && !rc; w++)
				if (!(rc = tw_dup_str(m, MAX_STR, &r->warnings[w])))
					r->n_warnings++;
			break;
		}
		if (rc)
			return rc == TH_ENOMEM ? rc : TH_EPROTO;
	}
	if (!(seen & 1))
		return TH_EPROTO;
	return TH_OK;
}

static int ack_field(void *ctx, int idx, th_mp *m, const char **why)
{
	th_ack *a = ctx;
	uint32_t n;
	int rc;
	switch (idx) {
	case 0:
		if (th_mp_uint(m, &a->id))
			return tw_bad(why, "ack.id: expected an unsigned integer", TH_EPROTO);
		break;
	case 1: {
		const uint8_t *b;
		if (th_mp_bin(m, &b, &n) || n != TH_STORE_UUID_LEN)
			return tw_bad(why, "ack.store: expected 16 bytes", TH_EPROTO);
		memcpy(a->store, b, TH_STORE_UUID_LEN);
		break;
	}
	case 2:
		if (th_mp_uint(m, &a->commit))
			return tw_bad(why, "ack.commit: expected an unsigned integer", TH_EPROTO);
		break;
	case 3:
		if (th_mp_int(m, &a->commit_time))
			return tw_bad(why, "ack.time: expected an integer", TH_EPROTO);
		break;
	case 4:
		if (th_mp_array(m, &n) || n > 100000)
			return tw_bad(why, "ack.results: expected an array", TH_EPROTO);
		a->results = calloc(n ? n : 1, sizeof *a->results);
		if (!a->results)
			return TH_ENOMEM;
		for (uint32_t i = 0; i < n; i++) {
			a->n_results++;
			if ((rc = decode_result(m, &a->results[i])))
				return tw_bad(why, "ack.results: malformed result", rc);
		}
		break;
	}
	return TH_OK;
}

int th_wire_decode_ack(const uint8_t *buf, size_t len, th_ack *a, const char **why)
{
	memset(a, 0, sizeof *a);
	int rc = tw_decode_msg(buf, len, TH_MSG_ACK, ack_names, 5, ack_field, a, 0x13, why);
	if (rc)
		th_ack_free(a);
	return rc;
}

void th_ack_result_free(th_ack_result *r)
{
	free(r->message);
	free(r->column);
	free(r->unit);
	free(r->appendix);
	free(r->period);
	for (size_t w = 0; w < r->n_warnings; w++)
		free(r->warnings[w]);
	free(r->warnings);
	memset(r, 0, sizeof *r);
}

void th_ack_free(th_ack *a)
{
	for (size_t i = 0; i < a->n_results; i++)
		th_ack_result_free(&a->results[i]);
	free(a->results);
	memset(a, 0, sizeof *a);
}

/* th_csv.c -- appendix files from Excel / LibreOffice (APPENDIX-FILES.md). */
#include "th_csv.h"
#include "th_file.h"

#include <ctype.h>
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (64u << 20)
#define MAX_FIELDS 4096

/* --- tokenizer ------------------------------------------------------------------ */

static char detect_sep(const char *data, size_t len)
{
	/* first line that is not a '#' metadata line */
	size_t i = 0;
	while (i < len) {
		size_t e = i;
		while (e < len && data[e] != '\n')
			e++;
		if (data[i] != '#') {
			int nc = 0, ns = 0, nt = 0, q = 0;
			for (size_t k = i; k < e; k++) {
				if (data[k] == '"')
					q = !q;
				else if (!q && data[k] == ',')
					nc++;
				else if (!q && data[k] == ';')
					ns++;
				else if (!q && data[k] == '\t')
					nt++;
			}
			if (nc || ns || nt)
				return ns > nc && ns >= nt ? ';' : nt > nc ? '\t' : ',';
		}
		i = e + 1;
	}
	return ',';
}

int th_csv_tokenize(const char *data, size_t len, char sep, th_csv_record_cb cb, void *ctx,
                    const char *name, th_diag *diag)
{
	if (!sep)
		sep = detect_sep(data, len);
	char **fields = malloc(MAX_FIELDS * sizeof *fields);
	char *buf = malloc(len + 1);   /* field bytes, unquoted, NUL-separated */
	int rc = TH_OK;
	if (!fields || !buf) {
		rc = TH_ENOMEM;
		goto out;
	}
	size_t i = 0;
	long line = 1;
	while (i < len) {
		long rec_line = line;
		size_t nf = 0, o = 0;
		int end_rec = 0;
		/* a '#' line is one field, kept whole */
		if (data[i] == '#') {
			size_t e = i;
			while (e < len && data[e] != '\n')
				e++;
			size_t n = e - i;
			if (n && data[e - 1] == '\r')
				n--;
			memcpy(buf, data + i, n);
			buf[n] = 0;
			fields[0] = buf;
			i = e < len ? e + 1 : e;
			line++;
			if ((rc = cb(ctx, fields, 1, rec_line)))
				goto out;
			continue;
		}
		while (!end_rec) {
			if (nf >= MAX_FIELDS) {
				rc = th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, name, rec_line, 0, NULL,
				                 "more than %d fields in a row", MAX_FIELDS);
				goto out;
			}
			fields[nf++] = buf + o;
			if (i < len && data[i] == '"') {
				long qline = line;
				i++;
				for (;;) {
					if (i >= len) {
						rc = th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, qline, 0, NULL,
						                 "a quoted field is never closed (missing \")");
						goto out;
					}
					char c = data[i++];
					if (c == '"') {
						if (i < len && data[i] == '"') {
							buf[o++] = '"';
							i++;
							continue;
						}
						break;
					}
					if (c == '\n')
						line++;
					buf[o++] = c;
				}
				/* after the closing quote: separator, end of line or junk */
				while (i < len && data[i] != sep && data[i] != '\n' && data[i] != '\r') {
					if (data[i] != ' ') {
						rc = th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, line, 0, NULL,
						                 "text after a closing quote");
						goto out;
					}
					i++;
				}
			} else {
				while (i < len && data[i] != sep && data[i] != '\n') {
					buf[o++] = data[i];
					i++;
				}
				/* drop a CR before LF */
				if (o && buf[o - 1] == '\r' && (i >= len || data[i] == '\n'))
					o--;
			}
			buf[o++] = 0;
			if (i < len && data[i] == '\r')
				i++;
			if (i >= len) {
				end_rec = 1;
			} else if (data[i] == sep) {
				i++;
				if (i >= len) {
					fields[nf++] = buf + o;
					buf[o++] = 0;
					end_rec = 1;
				}
			} else if (data[i] == '\n') {
				i++;
				line++;
				end_rec = 1;
			}
		}
		if ((rc = cb(ctx, fields, nf, rec_line)))
			goto out;
	}
out:
	free(fields);
	free(buf);
	return rc;
}

/* --- encodings ---------------------------------------------------------------- */

static int convert(const char *from, const char *in, size_t len, char **out, size_t *outlen)
{
	iconv_t cd = iconv_open("UTF-8", from);
	if (cd == (iconv_t)-1)
		return TH_EENCODING;
	size_t cap = len * 4 + 16;
	char *buf = malloc(cap);
	if (!buf) {
		iconv_close(cd);
		return TH_ENOMEM;
	}
	char *ip = (char *)in, *op = buf;
	size_t il = len, ol = cap;
	size_t r = iconv(cd, &ip, &il, &op, &ol);
	iconv_close(cd);
	if (r == (size_t)-1) {
		free(buf);
		return TH_EENCODING;
	}
	*out = buf;
	*outlen = (size_t)(op - buf);
	return TH_OK;
}

/* Produces NFC UTF-8 text from the raw file bytes. */
static int to_utf8(const char *data, size_t len, const char *name, const char *enc, char **out,
                   size_t *outlen, th_diag *diag)
{
	char *conv = NULL;
	size_t clen = 0;
	int rc;
	if (enc && *enc) {
		rc = convert(enc, data, len, &conv, &clen);
		if (rc)
			return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL,
			                   "cannot convert from %s (unknown encoding name or bytes that are "
			                   "not %s)", enc, enc);
	} else if (len >= 2 && ((unsigned char)data[0] == 0xFF && (unsigned char)data[1] == 0xFE)) {
		if ((rc = convert("UTF-16LE", data + 2, len - 2, &conv, &clen)))
			return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL,
			                   "broken UTF-16 text");
	} else if (len >= 2 && ((unsigned char)data[0] == 0xFE && (unsigned char)data[1] == 0xFF)) {
		if ((rc = convert("UTF-16BE", data + 2, len - 2, &conv, &clen)))
			return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL,
			                   "broken UTF-16 text");
	}
	const char *t = conv ? conv : data;
	size_t tl = conv ? clen : len;
	if (tl >= 3 && memcmp(t, "\xEF\xBB\xBF", 3) == 0) {
		t += 3;
		tl -= 3;
	}
	if (!th_utf8_valid(t, tl)) {
		long line = 1;
		size_t s = 0;
		for (size_t k = 0; k <= tl; k++)
			if (k == tl || t[k] == '\n') {
				if (!th_utf8_valid(t + s, k - s))
					break;
				line++;
				s = k + 1;
			}
		free(conv);
		return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, line, 0, NULL,
		                   "the file is not UTF-8 text; if it is Windows-1258 or TCVN3 (ABC), "
		                   "give its encoding (--encoding CP1258 or --encoding TCVN5712-1) or save "
		                   "it as \"CSV UTF-8\"");
	}
	rc = th_utf8_nfc(t, tl, out, outlen);
	free(conv);
	return rc;
}

/* --- appendix files: records to the shared table reader (th_sheet.c) ---------- */

typedef struct {
	th_sheet *s;
	th_sheet_cell *cells;
} csv_ctx;

static int on_record(void *ctx, char **f, size_t n, long line)
{
	csv_ctx *c = ctx;
	for (size_t i = 0; i < n; i++) {
		c->cells[i].col = (uint32_t)i;
		c->cells[i].kind = TH_SHEET_TEXT;
		c->cells[i].date = 0;
		c->cells[i].text = f[i];
	}
	return th_sheet_row(c->s, line, c->cells, n);
}

int th_csv_parse_reports(const char *data, size_t len, const char *name, const th_defset *defs,
                         const th_csv_opts *opts, th_report ***out, size_t *n, th_diag *diag)
{
	if (!name)
		name = "input";
	char *text = NULL;
	size_t tlen = 0;
	int rc;
	if (len > MAX_FILE)
		return th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, name, 0, 0, NULL,
		                   "file larger than %u MiB", MAX_FILE >> 20);
	th_file_kind kind = th_file_sniff(data, len);
	if (kind != TH_FILE_TEXT)
		return th_file_refuse(kind, name, diag);
	rc = to_utf8(data, len, name, opts ? opts->encoding : NULL, &text, &tlen, diag);
	if (rc)
		return rc;
	csv_ctx c = {th_sheet_new(name, NULL, defs, opts), malloc(MAX_FIELDS * sizeof *c.cells)};
	if (!c.s || !c.cells) {
		rc = TH_ENOMEM;
		goto done;
	}
	rc = th_csv_tokenize(text, tlen, 0, on_record, &c, name, th_sheet_diag(c.s));
	int frc = th_sheet_finish(c.s, out, n, diag);
	if (rc == TH_OK)
		rc = frc;
	else if (frc == TH_OK)
		th_reports_free(out, *n);
done:
	th_sheet_destroy(&c.s);
	free(c.cells);
	free(text);
	return rc;
}

int th_csv_parse_report(const char *data, size_t len, const char *name, const th_defset *defs,
                        const th_csv_opts *opts, th_report **out, th_diag *diag)
{
	th_report **v = NULL;
	size_t n = 0;
	int rc = th_csv_parse_reports(data, len, name, defs, opts, &v, &n, diag);
	if (rc)
		return rc;
	return th_reports_take_one(v, n, name ? name : "input", out, diag);
}

int th_csv_read_report(const char *path, const th_defset *defs, const th_csv_opts *opts,
                       th_report **out, th_diag *diag)
{
	char *data = NULL;
	size_t len = 0;
	int rc = th_file_slurp(path, MAX_FILE, &data, &len, diag);
	if (rc)
		return rc;
	rc = th_csv_parse_report(data, len, path, defs, opts, out, diag);
	free(data);
	return rc;
}

/* --- writing ------------------------------------------------------------------- */

static void put_field(FILE *f, const char *s)
{
	if (strpbrk(s, ",;\"\n\r\t") || (s[0] == '#') || s[0] == ' ' ||
	    (*s && s[strlen(s) - 1] == ' ')) {
		fputc('"', f);
		for (; *s; s++) {
			if (*s == '"')
				fputc('"', f);
			fputc(*s, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
}

int th_csv_write_report(const char *path, const th_report *r, const th_def *d)
{
	if (r->n_cols != d->n_cols)
		return TH_EINVAL;
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f)
		return TH_EIO;
	char b[64];
	fprintf(f, "#appendix: %s\n#version: %u\n#unit: %s\n#period: %s\n", r->appendix, r->version,
	        r->unit, r->period);
	if (r->as_of)
		fprintf(f, "#as_of: %s\n", th_fmt_date(r->as_of, 1, b));
	for (size_t c = 0; c < d->n_cols; c++) {
		if (c)
			fputc(',', f);
		fputs(d->cols[c].id, f);
	}
	fputc('\n', f);
	for (size_t i = 0; i < r->n_rows; i++) {
		for (size_t c = 0; c < d->n_cols; c++) {
			if (c)
				fputc(',', f);
			const th_value *v = th_report_cell(r, i, c);
			const th_column *col = &d->cols[c];
			if (v->null)
				continue;
			switch (col->type) {
			case TH_T_INT:
				fputs(th_fmt_int(v->i, b), f);
				break;
			case TH_T_DEC: {
				/* Vietnamese decimal comma; a fraction of exactly three
				 * digits gets a trailing 0 so it cannot read as thousands */
				th_fmt_dec(v->i, col->scale, 1, b);
				char *comma = strchr(b, ',');
				if (comma && strlen(comma + 1) == 3)
					strcat(b, "0");
				put_field(f, b);
				break;
			}
			case TH_T_DATE:
				fputs(th_fmt_date((int32_t)v->i, 1, b), f);
				break;
			case TH_T_BOOL:
				fputs(v->i ? "1" : "0", f);
				break;
			case TH_T_ENUM:
				if (v->i >= 0 && (size_t)v->i < col->n_values)
					fputs(col->values[v->i].code, f);
				break;
			case TH_T_TEXT:
				put_field(f, v->s ? v->s : "");
				break;
			}
		}
		fputc('\n', f);
	}
	int rc = TH_OK;
	if (fflush(f) != 0 || ferror(f))
		rc = TH_EIO;
	if (fclose(f) != 0)
		rc = TH_EIO;
	if (rc == TH_OK && rename(tmp, path) != 0)
		rc = TH_EIO;
	if (rc)
		remove(tmp);
	return rc;
}

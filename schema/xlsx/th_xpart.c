/* th_xpart.c -- one part of a workbook archive, streamed through expat with
 * the reader's limits; part names and paths; strings (th_xpart.h). */
#include "th_xpart.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th_sheet.h"
#include "th_value.h"
#include "th_xlsx.h"

#define MAX_DEPTH 64
#define MAX_TOTAL (512u << 20)      /* inflated bytes of every part read */

static void vfail_at(th_xpart *p, int code, const char *where, const char *fmt, va_list ap)
{
	if (!p->stopped) {
		th_diag_vadd(p->diag, TH_SEV_ERROR, code, p->z->name, 0, 0, where ? where : p->path, fmt,
		             ap);
		p->stopped = 1;
		p->rc = code;
	}
	XML_StopParser(p->xp, XML_FALSE);
}

void th_xpart_fail(th_xpart *p, int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail_at(p, code, NULL, fmt, ap);
	va_end(ap);
}

void th_xpart_fail_at(th_xpart *p, int code, const char *where, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail_at(p, code, where, fmt, ap);
	va_end(ap);
}

void th_xpart_nomem(th_xpart *p)
{
	if (!p->stopped) {
		p->stopped = 1;
		p->rc = TH_ENOMEM;
	}
	XML_StopParser(p->xp, XML_FALSE);
}

/* The local name of a qualified one ("x:row" -> "row").  The parser does
 * not resolve namespaces (a tenth of the reading time); SpreadsheetML's element
 * names are unique without them, whatever prefix a writer chose. */
static const char *local_name(const char *name)
{
	const char *c = strchr(name, ':');
	return c ? c + 1 : name;
}

/* An attribute by name; prefixed: one with a namespace prefix and that
 * local name (r:id), else one without a prefix. */
const char *th_xpart_attr(const char **a, const char *name, int prefixed)
{
	for (; a[0]; a += 2) {
		const char *c = strchr(a[0], ':');
		if (prefixed ? (c && strcmp(c + 1, name) == 0) : (!c && strcmp(a[0], name) == 0))
			return a[1];
	}
	return NULL;
}

static void XMLCALL on_start(void *ud, const char *name, const char **attrs)
{
	th_xpart *p = ud;
	if (p->stopped)
		return;
	if (++p->depth > MAX_DEPTH) {
		th_xpart_fail(p, TH_EDEPTH, "elements nested more than %d deep: refused", MAX_DEPTH);
		return;
	}
	if (p->start)
		p->start(p, local_name(name), attrs);
}

static void XMLCALL on_end(void *ud, const char *name)
{
	th_xpart *p = ud;
	if (p->stopped)
		return;
	p->depth--;
	if (p->end)
		p->end(p, local_name(name));
}

static void XMLCALL on_text(void *ud, const char *s, int len)
{
	th_xpart *p = ud;
	if (p->stopped || !p->collect || len <= 0)
		return;
	if (p->tlen + (size_t)len > p->tmax) {
		p->too_long = 1;
		return;
	}
	if (p->tlen + (size_t)len + 1 > p->tcap) {
		size_t cap = p->tcap ? p->tcap : 256;
		while (cap < p->tlen + (size_t)len + 1)
			cap *= 2;
		char *nt = realloc(p->text, cap);
		if (!nt) {
			th_xpart_nomem(p);
			return;
		}
		p->text = nt;
		p->tcap = cap;
	}
	memcpy(p->text + p->tlen, s, (size_t)len);
	p->tlen += (size_t)len;
	p->text[p->tlen] = 0;
}

void th_xpart_text_reset(th_xpart *p)
{
	p->tlen = 0;
	p->too_long = 0;
	if (p->text)
		p->text[0] = 0;
}

static void XMLCALL on_doctype(void *ud, const char *name, const char *sysid, const char *pubid,
                               int has_internal)
{
	th_xpart *p = ud;
	th_xpart_fail(p, TH_ESYNTAX, "has a document type declaration (<!DOCTYPE %s>), which spreadsheets never "
	     "write; its entities are not expanded: refused", name ? name : "");
}

static void XMLCALL on_entity(void *ud, const char *name, int is_param, const char *value,
                              int vlen, const char *base, const char *sysid, const char *pubid,
                              const char *notation)
{
	th_xpart *p = ud;
	th_xpart_fail(p, TH_ESYNTAX, "declares an XML entity (%s): refused", name ? name : "");
}

/* The member of the archive, or -1. */
zip_int64_t th_xpart_member(th_xzip *z, const char *path)
{
	return zip_name_locate(z->za, path, ZIP_FL_ENC_RAW);
}

/* Streams one part through the handlers.  TH_ENOTFOUND when the archive
 * has no such part (nothing reported); else TH_OK or the problem's code
 * (reported to diag). */
int th_xpart_run(th_xzip *z, void *owner, const char *path, th_diag *diag, th_xpart *p)
{
	zip_int64_t idx = th_xpart_member(z, path);
	if (idx < 0)
		return TH_ENOTFOUND;
	p->z = z;
	p->owner = owner;
	p->path = path;
	p->diag = diag;
	zip_stat_t st;
	zip_stat_init(&st);
	if (zip_stat_index(z->za, (zip_uint64_t)idx, 0, &st) != 0)
		return th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, z->name, 0, 0, path,
		                   "cannot be read: %s", zip_strerror(z->za));
	if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, z->name, 0, 0, path,
		                   "is encrypted: remove the password and save the workbook again");
	if ((st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method != ZIP_CM_STORE &&
	    st.comp_method != ZIP_CM_DEFLATE)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, z->name, 0, 0, path,
		                   "is compressed with method %u, which spreadsheet programs do not use: "
		                   "refused", (unsigned)st.comp_method);
	if ((st.valid & ZIP_STAT_SIZE) && st.size > TH_XLSX_MAX_PART)
		return th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, z->name, 0, 0, path,
		                   "declares %llu MiB uncompressed, more than the %u MiB allowed for one "
		                   "part: refused (a ZIP bomb?)",
		                   (unsigned long long)(st.size >> 20), TH_XLSX_MAX_PART >> 20);
	zip_file_t *zf = zip_fopen_index(z->za, (zip_uint64_t)idx, 0);
	if (!zf)
		return th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, z->name, 0, 0, path,
		                   "cannot be opened: %s", zip_strerror(z->za));
	XML_Parser xp = XML_ParserCreate(NULL);
	char *buf = malloc(65536);
	int rc = TH_OK;
	if (!xp || !buf) {
		rc = TH_ENOMEM;
		goto out;
	}
	p->xp = xp;
	XML_SetUserData(xp, p);
	XML_SetElementHandler(xp, on_start, on_end);
	XML_SetCharacterDataHandler(xp, on_text);
	XML_SetStartDoctypeDeclHandler(xp, on_doctype);
	XML_SetEntityDeclHandler(xp, on_entity);
	XML_SetParamEntityParsing(xp, XML_PARAM_ENTITY_PARSING_NEVER);
	size_t total = 0;
	for (;;) {
		zip_int64_t n = zip_fread(zf, buf, 65536);
		if (n < 0) {
			rc = th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, z->name, 0, 0, path,
			                 "cannot be inflated (damaged archive): %s", zip_file_strerror(zf));
			break;
		}
		total += (size_t)n;
		z->inflated += (size_t)n;
		if (total > TH_XLSX_MAX_PART) {
			rc = th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, z->name, 0, 0, path,
			                 "inflates to more than %u MiB: refused (a ZIP bomb?)",
			                 TH_XLSX_MAX_PART >> 20);
			break;
		}
		if (z->inflated > MAX_TOTAL) {
			rc = th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, z->name, 0, 0, path,
			                 "the parts read so far inflate to more than %u MiB: refused (a ZIP "
			                 "bomb?)", MAX_TOTAL >> 20);
			break;
		}
		if (XML_Parse(xp, buf, (int)n, n == 0) == XML_STATUS_ERROR) {
			if (p->stopped)
				rc = p->rc;
			else
				rc = th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, z->name, 0, 0, path,
				                 "XML error at line %lu, column %lu: %s",
				                 (unsigned long)XML_GetCurrentLineNumber(xp),
				                 (unsigned long)XML_GetCurrentColumnNumber(xp) + 1,
				                 XML_ErrorString(XML_GetErrorCode(xp)));
			break;
		}
		if (p->stopped) {
			rc = p->rc;
			break;
		}
		if (n == 0)
			break;
	}
out:
	if (xp)
		XML_ParserFree(xp);
	p->xp = NULL;
	free(buf);
	free(p->text);
	p->text = NULL;
	p->tlen = p->tcap = 0;
	zip_fclose(zf);
	return rc;
}

/* --- part names and paths ------------------------------------------------------- */

static uint32_t le16(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
	return le16(p) | le16(p + 2) << 16;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* What is wrong with a part name, or NULL. */
static const char *bad_name(const unsigned char *s, size_t n)
{
	if (n == 0)
		return "is empty";
	if (s[0] == '/')
		return "is an absolute path";
	for (size_t i = 0; i < n; i++) {
		if (s[i] == 0)
			return "holds a NUL byte";
		if (s[i] == '\\')
			return "holds a backslash";
		if (s[i] < 0x20 || s[i] == 0x7f)
			return "holds a control character";
		if (s[i] == '.' && i + 1 < n && s[i + 1] == '.' && (i == 0 || s[i - 1] == '/') &&
		    (i + 2 == n || s[i + 2] == '/'))
			return "climbs out of the archive (\"..\")";
	}
	return NULL;
}

/* Walks the archive's central directory itself (libzip hides NULs in
 * names) and refuses odd part names and too many parts. */
int th_xpart_check_names(const unsigned char *d, size_t len, const char *name, th_diag *diag)
{
	size_t eocd = (size_t)-1;
	if (len >= 22)
		for (size_t i = len - 22 + 1; i-- > 0 && len - i <= 22 + 65535;)
			if (memcmp(d + i, "PK\x05\x06", 4) == 0) {
				eocd = i;
				break;
			}
	if (eocd == (size_t)-1)
		return th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, 0, 0, NULL,
		                   "is not a readable ZIP archive (no end of its directory: truncated?)");
	uint64_t count = le16(d + eocd + 10), off = le32(d + eocd + 16);
	if ((count == 0xFFFF || off == 0xFFFFFFFFu) && eocd >= 20 &&
	    memcmp(d + eocd - 20, "PK\x06\x07", 4) == 0) {
		uint64_t z = le64(d + eocd - 20 + 8);
		if (z > len || len - z < 56 || memcmp(d + z, "PK\x06\x06", 4) != 0)
			return th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, 0, 0, NULL,
			                   "is not a readable ZIP archive (broken ZIP64 directory)");
		count = le64(d + z + 32);
		off = le64(d + z + 48);
	}
	if (count > TH_XLSX_MAX_PARTS)
		return th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, name, 0, 0, NULL,
		                   "has %llu parts, more than the %u allowed: refused",
		                   (unsigned long long)count, TH_XLSX_MAX_PARTS);
	for (uint64_t k = 0; k < count; k++) {
		if (off > len || len - off < 46 || memcmp(d + off, "PK\x01\x02", 4) != 0)
			return th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, 0, 0, NULL,
			                   "is not a readable ZIP archive (broken directory entry %llu)",
			                   (unsigned long long)k + 1);
		size_t nl = le16(d + off + 28), el = le16(d + off + 30), cl = le16(d + off + 32);
		if (len - off - 46 < nl + el + cl)
			return th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, 0, 0, NULL,
			                   "is not a readable ZIP archive (broken directory entry %llu)",
			                   (unsigned long long)k + 1);
		const unsigned char *nm = d + off + 46;
		const char *why = bad_name(nm, nl);
		if (why) {
			char shown[120];
			size_t o = 0;
			for (size_t i = 0; i < nl && o + 5 < sizeof shown; i++)
				o += (size_t)snprintf(shown + o, sizeof shown - o,
				                      nm[i] < 0x20 || nm[i] >= 0x7f ? "\\x%02x" : "%c", nm[i]);
			return th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, 0, 0, NULL,
			                   "part name \"%s\" %s: refused (not a workbook written by a "
			                   "spreadsheet program)", shown, why);
		}
		off += 46 + nl + el + cl;
	}
	return TH_OK;
}

/* Resolves a relationship target against the directory of its source part
 * ("xl/workbook.xml" + "worksheets/sheet1.xml"); malloc'd, NULL when it
 * climbs out of the archive or on ENOMEM. */
char *th_xpart_resolve(const char *source, const char *target)
{
	char *out = malloc(strlen(source) + strlen(target) + 2);
	if (!out)
		return NULL;
	size_t o = 0;
	if (target[0] == '/') {
		target++;
	} else {
		const char *slash = strrchr(source, '/');
		if (slash) {
			memcpy(out, source, (size_t)(slash - source) + 1);
			o = (size_t)(slash - source) + 1;
		}
	}
	out[o] = 0;
	for (const char *seg = target; *seg;) {
		const char *e = strchr(seg, '/');
		size_t n = e ? (size_t)(e - seg) : strlen(seg);
		if (n == 2 && seg[0] == '.' && seg[1] == '.') {
			if (o == 0) {
				free(out);
				return NULL;
			}
			o--;   /* the '/' */
			while (o > 0 && out[o - 1] != '/')
				o--;
			out[o] = 0;
		} else if (!(n == 1 && seg[0] == '.') && n > 0) {
			memcpy(out + o, seg, n);
			o += n;
			if (e)
				out[o++] = '/';
			out[o] = 0;
		}
		seg = e ? e + 1 : seg + n;
	}
	return out;
}

/* --- text --------------------------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes the "_xHHHH_" escapes of OOXML strings in place; 0, or -1 when
 * one stands for a control character or a surrogate. */
static int unescape(char *s, size_t *len)
{
	size_t o = 0, n = *len;
	int bad = 0;
	for (size_t i = 0; i < n;) {
		if (s[i] == '_' && i + 6 < n && s[i + 1] == 'x' && s[i + 6] == '_') {
			int h0 = hexval(s[i + 2]), h1 = hexval(s[i + 3]), h2 = hexval(s[i + 4]),
			    h3 = hexval(s[i + 5]);
			if (h0 >= 0 && h1 >= 0 && h2 >= 0 && h3 >= 0) {
				unsigned cp = (unsigned)(h0 << 12 | h1 << 8 | h2 << 4 | h3);
				if ((cp < 0x20 && cp != 9 && cp != 10 && cp != 13) || cp == 0x7f ||
				    (cp >= 0xD800 && cp <= 0xDFFF))
					bad = 1;
				if (cp < 0x80) {
					s[o++] = (char)cp;
				} else if (cp < 0x800) {
					s[o++] = (char)(0xC0 | cp >> 6);
					s[o++] = (char)(0x80 | (cp & 0x3F));
				} else {
					s[o++] = (char)(0xE0 | cp >> 12);
					s[o++] = (char)(0x80 | (cp >> 6 & 0x3F));
					s[o++] = (char)(0x80 | (cp & 0x3F));
				}
				i += 7;
				continue;
			}
		}
		s[o++] = s[i++];
	}
	s[o] = 0;
	*len = o;
	return bad ? -1 : 0;
}

/* The text of a string, unescaped, checked and in NFC: *out is t itself or
 * a malloc'd NFC copy (*owned = 1).  Returns TH_SHEET_TEXT or
 * TH_SHEET_INVALID, or TH_ENOMEM. */
int th_xpart_clean_text(char *t, size_t *len, char **out, int *owned)
{
	*out = t;
	*owned = 0;
	if (unescape(t, len) < 0)
		return TH_SHEET_INVALID;
	int ok = th_utf8_check(t, *len);
	if (ok < 0)
		return TH_SHEET_INVALID;
	if (ok == 0) {
		size_t nl;
		int rc = th_utf8_nfc(t, *len, out, &nl);
		if (rc == TH_ENOMEM)
			return rc;
		if (rc) {
			*out = t;
			return TH_SHEET_INVALID;
		}
		*owned = 1;
		*len = nl;
	}
	return TH_SHEET_TEXT;
}

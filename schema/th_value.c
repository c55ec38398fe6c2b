/* th_value.c -- the value model and the parsers for spreadsheet text. */
#include "th_value.h"
#include "th_error.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistr.h>
#include <uninorm.h>
#include <uniwidth.h>

static const char *type_names[] = {NULL, "integer", "decimal", "enum", "date", "bool", "text"};

const char *th_type_name(th_type t)
{
	return t >= TH_T_INT && t <= TH_T_TEXT ? type_names[t] : "unknown";
}

th_type th_type_parse(const char *name)
{
	for (int t = TH_T_INT; name && t <= TH_T_TEXT; t++)
		if (strcmp(type_names[t], name) == 0)
			return (th_type)t;
	return 0;
}

void th_value_clear(th_value *v)
{
	free(v->s);
	memset(v, 0, sizeof *v);
	v->null = 1;
}

int th_value_copy(th_value *dst, const th_value *src)
{
	*dst = *src;
	if (src->s) {
		dst->s = malloc(src->len + 1);
		if (!dst->s) {
			dst->null = 1;
			return TH_ENOMEM;
		}
		memcpy(dst->s, src->s, src->len + 1);
	}
	return TH_OK;
}

int th_value_cmp(const th_value *a, const th_value *b, th_type t)
{
	if (a->null || b->null)
		return (int)b->null - (int)a->null;
	if (t == TH_T_TEXT) {
		size_t n = a->len < b->len ? a->len : b->len;
		int c = memcmp(a->s ? a->s : "", b->s ? b->s : "", n);
		if (c)
			return c < 0 ? -1 : 1;
		return a->len < b->len ? -1 : a->len > b->len;
	}
	return a->i < b->i ? -1 : a->i > b->i;
}

/* --- parsing helpers ------------------------------------------------------ */

/* Copies s without surrounding blanks (ASCII and NBSP) into buf. */
static int trim(const char *s, char *buf, size_t cap)
{
	while (*s == ' ' || *s == '\t' || ((unsigned char)s[0] == 0xC2 && (unsigned char)s[1] == 0xA0))
		s += (*s == ' ' || *s == '\t') ? 1 : 2;
	size_t n = strlen(s);
	for (;;) {
		if (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
			n--;
		else if (n >= 2 && (unsigned char)s[n - 2] == 0xC2 && (unsigned char)s[n - 1] == 0xA0)
			n -= 2;
		else
			break;
	}
	if (n + 1 > cap)
		return TH_ETOOBIG;
	memcpy(buf, s, n);
	buf[n] = 0;
	return TH_OK;
}

static int set_why(const char **why, const char *msg, int code)
{
	if (why)
		*why = msg;
	return code;
}

/* A number broken into sign, digits and separators.  Separators: '.', ',',
 * ' ' (NBSP is mapped to ' ').  Records positions of each separator. */
typedef struct {
	int neg;
	char digits[64];       /* all digits, in order */
	int nd;
	char sep[32];          /* separator characters in order */
	int seppos[32];        /* number of digits before each separator */
	int nsep;
} numparts;

static int split_number(const char *in, numparts *p, const char **why)
{
	char buf[128];
	if (trim(in, buf, sizeof buf))
		return set_why(why, "number too long", TH_ERANGE);
	memset(p, 0, sizeof *p);
	const char *s = buf;
	if (*s == '-' || *s == '+') {
		p->neg = *s == '-';
		s++;
	}
	if (!*s)
		return set_why(why, "not a number", TH_ETYPE);
	char prev = 0;
	while (*s) {
		unsigned char c = (unsigned char)*s;
		if (isdigit(c)) {
			if (p->nd >= (int)sizeof p->digits - 1)
				return set_why(why, "number too long", TH_ERANGE);
			p->digits[p->nd++] = (char)c;
			prev = 'd';
			s++;
			continue;
		}
		char sep;
		if (c == '.' || c == ',' || c == ' ') {
			sep = (char)c;
			s++;
		} else if (c == 0xC2 && (unsigned char)s[1] == 0xA0) {
			sep = ' ';
			s += 2;
		} else {
			return set_why(why, "not a number", TH_ETYPE);
		}
		if (prev != 'd' || p->nsep >= 32)
			return set_why(why, "not a number (misplaced separator)", TH_ETYPE);
		p->sep[p->nsep] = sep;
		p->seppos[p->nsep++] = p->nd;
		prev = 's';
	}
	if (prev != 'd')
		return set_why(why, "not a number (ends with a separator)", TH_ETYPE);
	p->digits[p->nd] = 0;
	return TH_OK;
}

/* Checks that separators at indices [from, to) are all `sep` and split the
 * digits [start, end) into a leading group of 1-3 and groups of exactly 3. */
static int groups_ok(const numparts *p, int from, int to, char sep, int end)
{
	int last = 0;
	for (int k = from; k < to; k++) {
		if (p->sep[k] != sep)
			return 0;
		int len = p->seppos[k] - last;
		if (k == from ? (len < 1 || len > 3) : len != 3)
			return 0;
		last = p->seppos[k];
	}
	return to == from || end - last == 3;
}

/* digits -> int64 scaled; frac = number of fractional digits at the end. */
static int digits_value(const numparts *p, int frac, int scale, int64_t *out, const char **why)
{
	int nd = p->nd;
	if (frac > scale) {
		/* extra fractional digits are accepted only when they are zeros */
		for (int i = nd - (frac - scale); i < nd; i++)
			if (p->digits[i] != '0')
				return set_why(why, "too many digits after the decimal separator", TH_ERANGE);
		nd -= frac - scale;
		frac = scale;
	}
	uint64_t v = 0;
	const uint64_t lim = p->neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (int i = 0; i < nd + (scale - frac); i++) {
		int d = i < nd ? p->digits[i] - '0' : 0;
		if (v > (lim - (uint64_t)d) / 10)
			return set_why(why, "number too large", TH_ERANGE);
		v = v * 10 + (uint64_t)d;
	}
	if (p->neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return TH_OK;
}

int th_parse_int(const char *s, int64_t *out, const char **why)
{
	numparts p;
	int rc = split_number(s, &p, why);
	if (rc)
		return rc;
	if (p.nsep > 0) {
		char sep = p.sep[0];
		if (sep == ',') {
			if (p.nsep == 1 && p.nd - p.seppos[0] == 3)
				return set_why(why, "ambiguous: \"1,234\" is 1.234 in Vietnamese and 1234 in "
				                    "English; write the integer without separators or with dots (1.234)",
				               TH_EAMBIGUOUS);
			return set_why(why, "not an integer (a comma is the decimal separator)", TH_ETYPE);
		}
		if (!groups_ok(&p, 0, p.nsep, sep, p.nd))
			return set_why(why, "not an integer (thousands groups must have three digits)", TH_ETYPE);
	}
	int64_t v;
	rc = digits_value(&p, 0, 0, &v, why);
	if (rc)
		return rc;
	*out = v;
	return TH_OK;
}

int th_parse_dec(const char *s, int scale, int64_t *out, const char **why)
{
	if (scale < 0 || scale > 18)
		return set_why(why, "bad scale", TH_EINVAL);
	numparts p;
	int rc = split_number(s, &p, why);
	if (rc)
		return rc;
	int frac = 0;
	if (p.nsep > 0) {
		int last = p.nsep - 1;
		char dsep = p.sep[last];
		int tail = p.nd - p.seppos[last];
		if (dsep == ' ') {
			/* only thousands groups */
			if (!groups_ok(&p, 0, p.nsep, ' ', p.nd))
				return set_why(why, "not a number (thousands groups must have three digits)", TH_ETYPE);
		} else if (p.nsep == 1 && tail == 3 && p.seppos[0] <= 3) {
			return set_why(why, dsep == '.'
			        ? "ambiguous: \"1.234\" is 1234 in Vietnamese and 1.234 in English; "
			          "write 1234 (or 1.234,0) for one thousand two hundred thirty-four, "
			          "or 1,2340 for one point two three four"
			        : "ambiguous: \"1,234\" is 1.234 in Vietnamese and 1234 in English; "
			          "write 1,2340 for one point two three four, "
			          "or 1234 (or 1.234,0) for one thousand two hundred thirty-four",
			        TH_EAMBIGUOUS);
		} else {
			/* the last separator is the decimal one when it differs from the
			 * earlier ones or appears once; earlier ones are thousands groups */
			char gsep = dsep == '.' ? ',' : '.';
			int from = 0, to = last;
			int all_same = 1;
			for (int k = 0; k < p.nsep; k++)
				if (p.sep[k] != dsep)
					all_same = 0;
			if (all_same && p.nsep > 1) {
				/* "1.234.567": thousands only */
				if (dsep == ',' || !groups_ok(&p, 0, p.nsep, dsep, p.nd))
					return set_why(why, "not a number (misplaced separators)", TH_ETYPE);
				goto value;
			}
			for (int k = from; k < to; k++)
				if (p.sep[k] != gsep && p.sep[k] != ' ')
					return set_why(why, "not a number (mixed separators)", TH_ETYPE);
			if (to > 0 && !groups_ok(&p, 0, to, p.sep[0], p.seppos[last]))
				return set_why(why, "not a number (thousands groups must have three digits)", TH_ETYPE);
			frac = tail;
		}
	}
value:
	rc = digits_value(&p, frac, scale, out, why);
	return rc;
}

int th_date_valid(int32_t ymd)
{
	int y = ymd / 10000, m = ymd / 100 % 100, d = ymd % 100;
	if (y < 1900 || y > 2999 || m < 1 || m > 12 || d < 1)
		return 0;
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	return d <= mdays[m - 1] + (m == 2 && leap);
}

long th_date_days(int32_t ymd)
{
	/* days from civil (Howard Hinnant's algorithm, public domain description) */
	int y = ymd / 10000, m = ymd / 100 % 100, d = ymd % 100;
	y -= m <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	long yoe = y - era * 400;
	long doy = (153L * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int32_t th_date_from_days(long days)
{
	/* civil from days (the inverse of the above) */
	long z = days + 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	long doe = z - era * 146097;
	long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long y = yoe + era * 400;
	long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	long mp = (5 * doy + 2) / 153;
	long d = doy - (153 * mp + 2) / 5 + 1;
	long m = mp + (mp < 10 ? 3 : -9);
	y += m <= 2;
	return (int32_t)(y * 10000 + m * 100 + d);
}

int32_t th_date_today(void)
{
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	return (tm.tm_year + 1900) * 10000 + (tm.tm_mon + 1) * 100 + tm.tm_mday;
}

static int read_uint(const char **p, int maxdigits, int *out)
{
	int v = 0, n = 0;
	while (isdigit((unsigned char)**p) && n < maxdigits) {
		v = v * 10 + (**p - '0');
		(*p)++;
		n++;
	}
	if (n == 0 || isdigit((unsigned char)**p))
		return -1;
	*out = v;
	return n;
}

int th_parse_date(const char *in, int32_t *out, const char **why)
{
	char buf[64];
	if (trim(in, buf, sizeof buf))
		return set_why(why, "not a date", TH_ETYPE);
	const char *p = buf;
	int a, b, c, na, nc;
	if ((na = read_uint(&p, 4, &a)) < 0)
		return set_why(why, "not a date (write dd/mm/yyyy or yyyy-mm-dd)", TH_ETYPE);
	char s1 = *p;
	if (s1 != '/' && s1 != '-' && s1 != '.')
		return set_why(why, "not a date (write dd/mm/yyyy or yyyy-mm-dd)", TH_ETYPE);
	p++;
	if (read_uint(&p, 2, &b) < 0 || *p != s1)
		return set_why(why, "not a date (write dd/mm/yyyy or yyyy-mm-dd)", TH_ETYPE);
	p++;
	if ((nc = read_uint(&p, 4, &c)) < 0 || *p)
		return set_why(why, "not a date (write dd/mm/yyyy or yyyy-mm-dd)", TH_ETYPE);
	int32_t ymd;
	if (na == 4 && s1 == '-' && nc <= 2)
		ymd = a * 10000 + b * 100 + c;
	else if (na <= 2 && nc == 4)
		ymd = c * 10000 + b * 100 + a;
	else
		return set_why(why, "not a date (write dd/mm/yyyy or yyyy-mm-dd)", TH_ETYPE);
	if (!th_date_valid(ymd))
		return set_why(why, "no such calendar date", TH_ERANGE);
	*out = ymd;
	return TH_OK;
}

int th_parse_bool(const char *in, int64_t *out, const char **why)
{
	char buf[32];
	if (trim(in, buf, sizeof buf))
		return set_why(why, "not a yes/no value", TH_ETYPE);
	for (char *q = buf; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	static const char *yes[] = {"1", "x", "true", "yes", "y", "co", "c\xc3\xb3", "C\xc3\xb3",
	                            "\xc4\x91\xc3\xbang", "\xc4\x90\xc3\xbang", "dung", NULL};
	static const char *no[] = {"0", "false", "no", "n", "khong", "kh\xc3\xb4ng", "Kh\xc3\xb4ng",
	                           "sai", NULL};
	for (int i = 0; yes[i]; i++)
		if (strcmp(buf, yes[i]) == 0) {
			*out = 1;
			return TH_OK;
		}
	for (int i = 0; no[i]; i++)
		if (strcmp(buf, no[i]) == 0) {
			*out = 0;
			return TH_OK;
		}
	return set_why(why, "not a yes/no value (write 1 or 0, có or không)", TH_ETYPE);
}

char *th_fmt_int(int64_t v, char *buf)
{
	snprintf(buf, 32, "%lld", (long long)v);
	return buf;
}

char *th_fmt_dec(int64_t v, int scale, int vn, char *buf)
{
	if (scale <= 0 || scale > 18) {
		snprintf(buf, 32, "%lld", (long long)v);
		return buf;
	}
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	uint64_t p = 1;
	for (int i = 0; i < scale; i++)
		p *= 10;
	char tmp[96];
	snprintf(tmp, sizeof tmp, "%s%llu%c%0*llu", v < 0 ? "-" : "", (unsigned long long)(u / p),
	         vn ? ',' : '.', scale > 18 ? 18 : scale, (unsigned long long)(u % p));
	memcpy(buf, tmp, 31);
	buf[31] = 0;
	return buf;
}

char *th_fmt_date(int32_t ymd, int iso, char *buf)
{
	if (iso)
		snprintf(buf, 32, "%04d-%02d-%02d", ymd / 10000, ymd / 100 % 100, ymd % 100);
	else
		snprintf(buf, 32, "%02d/%02d/%04d", ymd % 100, ymd / 100 % 100, ymd / 10000);
	return buf;
}

/* One pass: strict UTF-8 (no overlong forms, surrogates or code points beyond
 * U+10FFFF), no C0 control but TAB, LF, CR, no DEL; and whether every code
 * point is NFC-stable (th_nfc_stable_cp).  Returns -1, 0 (valid) or 1 (valid
 * and already NFC).  Replaces u8_check + a byte loop + a second decode: text
 * cells cost this once at the door instead of three times. */
int th_utf8_check(const char *str, size_t n)
{
	const unsigned char *p = (const unsigned char *)str, *end = p + n;
	int stable = 1;
	while (p < end) {
		/* eight plain ASCII bytes at a time: no high bit, none below 0x20, no DEL */
		while (end - p >= 8) {
			uint64_t w, hi = 0x8080808080808080ull, ones = 0x0101010101010101ull;
			memcpy(&w, p, 8);
			uint64_t del = w ^ (0x7f * ones);
			if ((w & hi) || ((w - 0x20 * ones) & ~w & hi) || ((del - ones) & ~del & hi))
				break;
			p += 8;
		}
		if (p >= end)
			break;
		unsigned char b = *p;
		if (b < 0x80) {
			if ((b < 0x20 && b != '\t' && b != '\n' && b != '\r') || b == 0x7f)
				return -1;
			p++;
			continue;
		}
		uint32_t c;
		size_t k;
		unsigned char lo = 0x80, hi = 0xBF;   /* bounds of the second byte */
		if (b >= 0xC2 && b <= 0xDF) {
			c = b & 0x1F, k = 1;
		} else if (b >= 0xE0 && b <= 0xEF) {
			c = b & 0x0F, k = 2;
			if (b == 0xE0)
				lo = 0xA0;        /* overlong */
			else if (b == 0xED)
				hi = 0x9F;        /* surrogates */
		} else if (b >= 0xF0 && b <= 0xF4) {
			c = b & 0x07, k = 3;
			if (b == 0xF0)
				lo = 0x90;        /* overlong */
			else if (b == 0xF4)
				hi = 0x8F;        /* beyond U+10FFFF */
		} else {
			return -1;            /* continuation byte, C0/C1 overlong lead, F5..FF */
		}
		if ((size_t)(end - p) <= k || p[1] < lo || p[1] > hi)
			return -1;
		c = c << 6 | (p[1] & 0x3F);
		for (size_t i = 2; i <= k; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return -1;
			c = c << 6 | (p[i] & 0x3F);
		}
		if (stable && !th_nfc_stable_cp(c))
			stable = 0;
		p += k + 1;
	}
	return stable;
}

int th_utf8_valid(const char *s, size_t n)
{
	return th_utf8_check(s, n) >= 0;
}

/* Code points that are NFC on their own and next to each other: starters
 * (combining class 0) that have no canonical singleton decomposition and are
 * never the second half of a canonical pair (NFC_Quick_Check = Yes).  The ranges
 * cover Vietnamese text: ASCII, Latin-1, Latin Extended-A/B, IPA, spacing
 * modifiers, the precomposed Latin Extended Additional block (U+1E00..U+1EFF:
 * every Vietnamese vowel with its marks) and general punctuation (dashes,
 * quotes, ellipsis, per mille).  tests/test_value.c checks the ranges against
 * libunistring's decomposition tables, code point by code point. */
int th_nfc_stable_cp(uint32_t c)
{
	return c < 0x300 || (c >= 0x1E00 && c <= 0x1EFF) || (c >= 0x2010 && c <= 0x2027) ||
	       (c >= 0x2030 && c <= 0x205E);
}

int th_utf8_nfc(const char *s, size_t n, char **out, size_t *outlen)
{
	int ok = th_utf8_check(s, n);
	if (ok < 0)
		return TH_EUTF8;
	if (ok == 1) {
		/* already NFC: skip the normaliser (a quarter of ingest CPU) */
		char *z = malloc(n + 1);
		if (!z)
			return TH_ENOMEM;
		memcpy(z, s, n);
		z[n] = 0;
		*out = z;
		if (outlen)
			*outlen = n;
		return TH_OK;
	}
	size_t len = 0;
	uint8_t *r = u8_normalize(UNINORM_NFC, (const uint8_t *)s, n, NULL, &len);
	if (!r && n > 0)
		return TH_ENOMEM;
	char *z = malloc(len + 1);
	if (!z) {
		free(r);
		return TH_ENOMEM;
	}
	if (len)
		memcpy(z, r, len);
	z[len] = 0;
	free(r);
	*out = z;
	if (outlen)
		*outlen = len;
	return TH_OK;
}

size_t th_utf8_width(const char *s)
{
	if (!s)
		return 0;
	int w = u8_strwidth((const uint8_t *)s, "UTF-8");
	return w < 0 ? strlen(s) : (size_t)w;
}

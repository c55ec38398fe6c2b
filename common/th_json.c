/* th_json.c -- JSON output conventions (th_json.h). */
#include "th_json.h"
#include "th_error.h"

#include <stdlib.h>
#include <string.h>
#include <unistr.h>

json_t *th_json_strn(const char *s, size_t n)
{
	if (!s)
		return json_null();
	if (!u8_check((const uint8_t *)s, n))
		return json_stringn(s, n);
	/* replace every byte that does not start a valid sequence with U+FFFD */
	char *out = malloc(n * 3 + 1);
	if (!out)
		return NULL;
	size_t o = 0;
	const uint8_t *p = (const uint8_t *)s, *end = p + n;
	while (p < end) {
		ucs4_t uc;
		int len = u8_mbtouc(&uc, p, (size_t)(end - p));   /* >= 1; U+FFFD when invalid */
		int bad = uc == 0xfffd && u8_check(p, (size_t)len) != NULL;
		memcpy(out + o, bad ? (const uint8_t *)"\xef\xbf\xbd" : p, bad ? 3 : (size_t)len);
		o += bad ? 3 : (size_t)len;
		p += len;
	}
	json_t *j = json_stringn(out, o);
	free(out);
	return j;
}

json_t *th_json_str(const char *s) { return s ? th_json_strn(s, strlen(s)) : json_null(); }

json_t *th_json_decimal(int64_t v, int scale)
{
	if (scale <= 0)
		return json_integer((json_int_t)v);
	double d = (double)v;
	for (int i = 0; i < scale; i++)
		d /= 10;
	return json_real(d);
}

int th_json_set(json_t *obj, const char *key, json_t *v)
{
	if (!v)
		return TH_OK;
	return json_object_set_new(obj, key, v) == 0 ? TH_OK : TH_ENOMEM;
}

/* The conventions of th_json.h (15 significant digits) and any value at the top. */
#define TH_JSON_FLAGS (JSON_REAL_PRECISION(15) | JSON_ENCODE_ANY)

int th_json_print(FILE *f, const json_t *v, int pretty)
{
	size_t flags = TH_JSON_FLAGS | (pretty ? JSON_INDENT(2) : JSON_COMPACT);
	if (json_dumpf(v, f, flags) != 0 || fputc('\n', f) == EOF)
		return TH_EIO;
	return TH_OK;
}

int th_json_print_inline(FILE *f, const json_t *v)
{
	return json_dumpf(v, f, TH_JSON_FLAGS) == 0 ? TH_OK : TH_EIO;
}

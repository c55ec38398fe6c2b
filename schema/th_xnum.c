/* th_xnum.c -- numbers and date serials as a workbook stores them (th_xnum.h). */
#include "th_xnum.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "th_error.h"
#include "th_value.h"

int th_xnum_parse(const char *s, th_xnum *x)
{
	memset(x, 0, sizeof *x);
	const char *p = s;
	int inexact = 0, any = 0, extra = 0;
	if (*p == '-' || *p == '+')
		x->neg = *p++ == '-';
	for (; isdigit((unsigned char)*p); p++) {
		any = 1;
		if (x->nd == 0 && *p == '0')
			continue;
		if (x->nd < (int)sizeof x->dig)
			x->dig[x->nd++] = *p;
		else
			extra++;
	}
	if (*p == '.') {
		inexact = 1;
		for (p++; isdigit((unsigned char)*p); p++) {
			any = 1;
			if (x->nd == 0 && *p == '0') {
				x->exp--;
				continue;
			}
			if (x->nd < (int)sizeof x->dig) {
				x->dig[x->nd++] = *p;
				x->exp--;
			}
		}
	}
	if (!any)
		return TH_ETYPE;
	if (*p == 'e' || *p == 'E') {
		inexact = 1;
		p++;
		int eneg = 0, e = 0, ed = 0;
		if (*p == '-' || *p == '+')
			eneg = *p++ == '-';
		for (; isdigit((unsigned char)*p); p++, ed++)
			if (e < 10000)
				e = e * 10 + (*p - '0');
		if (!ed)
			return TH_ETYPE;
		x->exp += eneg ? -e : e;
	}
	if (*p)
		return TH_ETYPE;
	x->exp += extra;
	if (inexact && x->nd > 15) {
		int up = x->dig[15] >= '5';
		x->exp += x->nd - 15;
		x->nd = 15;
		for (int i = 14; up && i >= 0; i--) {
			if (x->dig[i] == '9') {
				x->dig[i] = '0';
			} else {
				x->dig[i]++;
				up = 0;
			}
		}
		if (up) {
			memmove(x->dig + 1, x->dig, 14);
			x->dig[0] = '1';
			x->exp++;
		}
	}
	while (x->nd > 0 && x->dig[x->nd - 1] == '0') {
		x->nd--;
		x->exp++;
	}
	if (x->nd == 0)
		x->neg = 0;
	return TH_OK;
}

int th_xnum_scaled(const th_xnum *x, int scale, int64_t *out, const char **why)
{
	if (x->nd == 0) {
		*out = 0;
		return TH_OK;
	}
	long e = (long)x->exp + scale;
	if (e < 0) {
		*why = scale ? "has more decimals than the column allows (no silent rounding)"
		             : "is not a whole number";
		return TH_ERANGE;
	}
	if (x->nd + e > 19) {
		*why = "is too large";
		return TH_ERANGE;
	}
	uint64_t v = 0;
	for (int i = 0; i < x->nd; i++)
		v = v * 10 + (uint64_t)(x->dig[i] - '0');
	for (long i = 0; i < e; i++) {
		if (v > UINT64_MAX / 10) {
			*why = "is too large";
			return TH_ERANGE;
		}
		v *= 10;
	}
	if (v > (uint64_t)INT64_MAX + (uint64_t)x->neg) {
		*why = "is too large";
		return TH_ERANGE;
	}
	*out = x->neg ? (int64_t)(0 - v) : (int64_t)v;
	return TH_OK;
}

void th_xnum_text(const th_xnum *x, char *out, size_t cap)
{
	size_t o = 0;
	if (x->nd == 0) {
		snprintf(out, cap, "0");
		return;
	}
	if (x->exp > 20 || x->exp < -30) {
		snprintf(out, cap, "%s%.*sE%d", x->neg ? "-" : "", x->nd, x->dig, x->exp);
		return;
	}
	char tmp[96];
	if (x->neg)
		tmp[o++] = '-';
	int intd = x->nd + x->exp;   /* digits before the point */
	if (intd <= 0) {
		tmp[o++] = '0';
		tmp[o++] = '.';
		for (int i = 0; i < -intd; i++)
			tmp[o++] = '0';
		for (int i = 0; i < x->nd; i++)
			tmp[o++] = x->dig[i];
	} else {
		for (int i = 0; i < intd; i++)
			tmp[o++] = i < x->nd ? x->dig[i] : '0';
		if (intd < x->nd) {
			tmp[o++] = '.';
			for (int i = intd; i < x->nd; i++)
				tmp[o++] = x->dig[i];
		}
	}
	tmp[o] = 0;
	snprintf(out, cap, "%s", tmp);
}

int th_xnum_serial_date(const char *text, int date1904, int32_t *out, const char **why)
{
	th_xnum x;
	int64_t serial;
	if (th_xnum_parse(text, &x) || x.neg) {
		*why = "is not a date serial";
		return TH_ETYPE;
	}
	if (x.exp < 0) {
		*why = "has a time of day; a date column takes a date only";
		return TH_ETYPE;
	}
	if (x.nd + x.exp > 7 || th_xnum_scaled(&x, 0, &serial, why)) {
		*why = "is a date beyond the year 2999";
		return TH_ERANGE;
	}
	if (serial > 2000000) {
		*why = "is a date beyond the year 2999";
		return TH_ERANGE;
	}
	long days;   /* since 1970-01-01 */
	if (date1904) {
		days = th_date_days(19040101) + (long)serial;
	} else {
		if (serial == 60) {
			*why = "is 29/02/1900, a day that does not exist (a spreadsheet's 1900 leap-year "
			       "bug); type the date again";
			return TH_ERANGE;
		}
		if (serial < 1) {
			*why = "is day 0 of the 1900 date system, not a date";
			return TH_ERANGE;
		}
		days = th_date_days(19000101) + (long)serial - (serial < 60 ? 1 : 2);
	}
	int32_t ymd = th_date_from_days(days);
	if (!th_date_valid(ymd)) {
		*why = "is a date outside the years 1900 to 2999";
		return TH_ERANGE;
	}
	*out = ymd;
	return TH_OK;
}

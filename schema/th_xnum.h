/* th_xnum.h -- numbers and date serials as a workbook stores them.
 *
 * A number cell of an .xlsx holds the shortest text that round-trips a
 * binary double ("1234", "0.30000000000000004", "1.5E-3").  It is parsed
 * here exactly, as decimal digits and a power of ten, never through a
 * double: a literal with a point or an exponent is rounded to 15
 * significant digits first (what a spreadsheet keeps, so 0.1 + 0.2 reads as
 * 0.3), a plain integer is taken as written.  Date cells hold day serials of
 * the workbook's date system (schema/APPENDIX-FILES.md).
 */
#ifndef TH_XNUM_H
#define TH_XNUM_H

#include <stddef.h>
#include <stdint.h>

/* value = (neg ? -1 : 1) * digits * 10^exp; no leading or trailing zeros
 * in dig (nd 0: the value 0). */
typedef struct th_xnum {
	int neg;
	char dig[40];
	int nd;
	int exp;
} th_xnum;

/* Parses "[-]digits[.digits][E[+-]digits]"; TH_OK or TH_ETYPE. */
int th_xnum_parse(const char *s, th_xnum *x);
/* value * 10^scale as an int64 when it is a whole number that fits;
 * else TH_ERANGE with *why ("is not a whole number", "has more decimals
 * than the column allows (no silent rounding)", "is too large"). */
int th_xnum_scaled(const th_xnum *x, int scale, int64_t *out, const char **why);
/* Plain decimal text ("1234.5", "0.003"; an exponent only for huge or tiny
 * values).  Always NUL-terminates a buffer of cap > 0 bytes. */
void th_xnum_text(const th_xnum *x, char *out, size_t cap);
/* A day serial to yyyymmdd: the 1900 system (serial 1 = 1900-01-01; 60,
 * the fictitious 1900-02-29, is refused; from 61 on one day less) or, with
 * date1904, the 1904 system (serial 0 = 1904-01-01).  A fraction (a time of
 * day) and dates outside 1900..2999 are refused with *why. */
int th_xnum_serial_date(const char *text, int date1904, int32_t *out, const char **why);

#endif

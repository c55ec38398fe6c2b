/* th_value.h -- the value model and the parsers for spreadsheet text.
 *
 * A cell is a th_value: its type comes from the column definition, and null
 * is distinct from every value (null != 0, null != "").
 *   integer  int64
 *   decimal  int64 scaled by 10^scale of its column (never floating point)
 *   enum     index into the column's value list (0-based); code on the wire
 *   date     yyyymmdd as an int32 (20210405), always a real calendar date
 *   bool     0 or 1
 *   text     NFC UTF-8, owned by the value (malloc), bounded by the column
 */
#ifndef TH_VALUE_H
#define TH_VALUE_H

#include <stdint.h>
#include <stddef.h>

typedef enum {
	TH_T_INT = 1,
	TH_T_DEC = 2,
	TH_T_ENUM = 3,
	TH_T_DATE = 4,
	TH_T_BOOL = 5,
	TH_T_TEXT = 6
} th_type;

typedef struct th_value {
	uint8_t null;      /* 1: null (all other fields ignored) */
	uint8_t nfc;       /* text only, 1: s is already known to be valid, control-free NFC
	                    * UTF-8 (set by the wire decoder, which made it so);
	                    * th_report_validate skips that check.  0 = check it. */
	int64_t i;         /* int, scaled decimal, enum index, yyyymmdd date, bool */
	char *s;           /* text only: NUL-terminated NFC UTF-8, malloc'd */
	uint32_t len;      /* text only: bytes, without the NUL */
} th_value;

/* Name of a type ("integer", "decimal", "enum", "date", "bool", "text"). */
const char *th_type_name(th_type t);
/* Type from its name; 0 when unknown. */
th_type th_type_parse(const char *name);

/* Frees the text of a value and makes it null. */
void th_value_clear(th_value *v);
/* Deep copy; TH_ENOMEM. */
int th_value_copy(th_value *dst, const th_value *src);
/* Total order used for row keys: null first, then by type's natural order
 * (text: bytewise). */
int th_value_cmp(const th_value *a, const th_value *b, th_type t);

/* Spreadsheet parsers.  Each trims surrounding ASCII blanks, returns 0 and
 * writes *out only on success; on failure returns TH_E* and, when why is not
 * NULL, sets *why to a static English explanation fit for
 * "file:line: column: <why>".  An empty string is not handled here (the CSV
 * reader maps it to null). */

/* Integers: "1234", "-5", "1.234" / "1 234" / "1,234.000"? no: thousands
 * separators '.', ' ' (or NBSP) in groups of exactly three digits are
 * accepted ("1.234.567"); "1,234" is refused as ambiguous (Vietnamese decimal
 * comma vs English thousands); a fraction is refused. */
int th_parse_int(const char *s, int64_t *out, const char **why);
/* Decimals with `scale` fractional digits, to a scaled int64.  Vietnamese
 * "1,5" and "1.234,5", English "1.5" and "1,234.5" are unambiguous and
 * accepted; a lone separator followed by exactly three digits ("1.234",
 * "1,234") is refused as TH_EAMBIGUOUS; more fractional digits than scale
 * is TH_ERANGE (no silent rounding). */
int th_parse_dec(const char *s, int scale, int64_t *out, const char **why);
/* Dates: dd/mm/yyyy, d/m/yyyy, dd-mm-yyyy, dd.mm.yyyy and ISO yyyy-mm-dd. */
int th_parse_date(const char *s, int32_t *out, const char **why);
/* Booleans: 1/0, x/(empty is null), có/không, co/khong, true/false, yes/no,
 * đúng/sai, TRUE/FALSE (case-insensitive). */
int th_parse_bool(const char *s, int64_t *out, const char **why);
/* Formats: integer as digits, decimal with '.' and exactly scale digits
 * (machine form) or with ',' (vn != 0), date as yyyy-mm-dd (iso) or
 * dd/mm/yyyy.  buf must hold 32 bytes; returns buf. */
char *th_fmt_int(int64_t v, char *buf);
char *th_fmt_dec(int64_t v, int scale, int vn, char *buf);
char *th_fmt_date(int32_t ymd, int iso, char *buf);
/* 1 when yyyymmdd is a real calendar date (years 1900..2999). */
int th_date_valid(int32_t ymd);
/* Days since 1970-01-01 for a valid date (for differences). */
long th_date_days(int32_t ymd);
/* The inverse: the yyyymmdd date `days` after 1970-01-01 (proleptic
 * Gregorian; negative days are before 1970).  Not checked against
 * th_date_valid's years. */
int32_t th_date_from_days(long days);
/* Today's date in local time as yyyymmdd. */
int32_t th_date_today(void);

/* UTF-8 helpers (libunistring). */
/* 1 if [s, s+n) is valid UTF-8 without NUL bytes or C0 controls other than
 * TAB, LF, CR. */
int th_utf8_valid(const char *s, size_t n);
/* Normalise to NFC; *out is malloc'd and NUL-terminated. TH_EUTF8, TH_ENOMEM. */
int th_utf8_nfc(const char *s, size_t n, char **out, size_t *outlen);
/* th_utf8_valid's test and more, in one pass: -1 when invalid, 1 when valid
 * and every code point is in a range that is stable under NFC whatever
 * surrounds it (th_nfc_stable_cp: the string is NFC as it is), 0 when valid
 * but only the normaliser can tell ("ask", not "not NFC"). */
int th_utf8_check(const char *s, size_t n);
/* 1 for a code point that NFC leaves alone in any context (see th_value.c). */
int th_nfc_stable_cp(uint32_t c);
/* Display width in terminal columns (combining marks are 0 wide). */
size_t th_utf8_width(const char *s);

#endif

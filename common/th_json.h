/* th_json.h -- JSON output through Debian's libjansson: the few conventions every
 * program's `--format json` shares.
 *
 * - Text: always valid UTF-8 in the output; bytes that are not UTF-8 become
 *   U+FFFD (stored text is checked at the door, so this only guards output).
 * - Integers: JSON integers, exact over the whole int64 range.
 * - Decimals (fixed point: value v with scale s means v / 10^s): JSON numbers
 *   written with 15 significant digits, which reproduces every decimal of up to
 *   15 significant digits exactly; beyond that the last digits are rounded (use
 *   CSV output for exact figures of that size).
 * - Null is JSON null, never 0 or "".
 */
#ifndef TH_JSON_H
#define TH_JSON_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

/* New references (NULL only when out of memory). */
json_t *th_json_str(const char *s);                 /* NULL s -> JSON null */
json_t *th_json_strn(const char *s, size_t n);
json_t *th_json_decimal(int64_t v, int scale);      /* scale 0: an integer */

/* Sets obj[key] = v, taking v's reference (v may be NULL: nothing is set).
 * 0 or TH_ENOMEM. */
int th_json_set(json_t *obj, const char *key, json_t *v);

/* Writes v to f (indented by 2 when pretty, else one line) and a newline.
 * Does not take v's reference.  0, or TH_EIO. */
int th_json_print(FILE *f, const json_t *v, int pretty);
/* Writes v to f on one line with a blank after every ',' and ':'
 * (`{"a": 1, "b": null}`) and no newline, for output that frames values itself
 * (the tools' row-per-line arrays).  Does not take v's reference.  0, or TH_EIO. */
int th_json_print_inline(FILE *f, const json_t *v);

#endif

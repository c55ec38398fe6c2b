/* th_units.h -- the unit hierarchy (DESIGN section 2).
 *
 * A hierarchy file (format in schema/UNITS.md) is UTF-8 tab-separated text:
 *   # comments
 *   @version <id>            e.g. hanoi-2021
 *   @effective <yyyy-mm-dd>  the date it comes into force
 *   code<TAB>parent<TAB>kind<TAB>name[<TAB>person<TAB>phone<TAB>email]
 * with a header line "code\tparent\tkind\tname..." first among the data
 * lines; exactly one root (empty parent).  Names are normalised to NFC.
 * Cycles, unknown parents, duplicate codes, bad UTF-8 are errors reported
 * with file:line.  Units are stored in file order; depth 1 is the root.
 */
#ifndef TH_UNITS_H
#define TH_UNITS_H

#include <stdint.h>
#include <stddef.h>
#include "th_error.h"

typedef struct th_unit {
	char *code;
	char *parent_code;   /* "" for the root */
	char *kind;          /* city, province, department, district, commune, agency, ... */
	char *name;          /* NFC UTF-8 */
	char *person, *phone, *email;   /* "" when absent */
	long parent;         /* index of the parent, -1 for the root */
	uint32_t depth;      /* 1 = root */
	uint32_t *children;  /* child indices in file order */
	uint32_t n_children;
	long line;
} th_unit;

typedef struct th_units th_units;

int th_units_parse(const char *text, size_t len, const char *name, th_units **out, th_diag *diag);
int th_units_load(const char *path, th_units **out, th_diag *diag);
void th_units_destroy(th_units **u);

const char *th_units_version(const th_units *u);
int32_t th_units_effective(const th_units *u);    /* yyyymmdd */
size_t th_units_count(const th_units *u);
const th_unit *th_units_at(const th_units *u, size_t i);
size_t th_units_root(const th_units *u);
uint32_t th_units_max_depth(const th_units *u);
/* Index of code, or -1.  O(1) average. */
long th_units_find(const th_units *u, const char *code);
/* 1 when a is node or one of its ancestors. */
int th_units_in_subtree(const th_units *u, size_t a, size_t node);
/* The file's text (NUL-terminated), to store and ship a version. */
const char *th_units_source(const th_units *u, size_t *len);

#endif

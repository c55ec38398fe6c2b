/* th_def_private.h -- what the files of the definition module share
 * (th_def.c model and look-ups, th_defset.c sets, th_def_parse.c the file
 * parser, th_def_resolve.c cross-references and slots); nothing else
 * includes it.  Shared helpers are td_*. */
#ifndef TH_DEF_PRIVATE_H
#define TH_DEF_PRIVATE_H

#include <stddef.h>
#include <stdint.h>
#include "th_def.h"

#define DEF_MAX_FILE   (1u << 20)
#define DEF_MAX_COLS   1000
#define DEF_MAX_VALUES 1000
#define DEF_MAX_TERMS  100
#define DEF_MAX_ID     64
#define DEF_MAX_ROWS   1000000u
#define DEF_MAX_LEN    1000000u
#define DEF_MAX_ITEMS  1000   /* ratios, rules, kinds, units */

/* --- small helpers (th_def.c) --- */
char *td_dupn(const char *s, size_t n);
/* Titles equal case-insensitively after NFC (bytewise when that fails). */
int td_title_eq(const char *a, const char *b);
const char *td_type_name(th_type t);
long td_col_by_id(const th_def *d, const char *id);
long td_enum_by_code(const th_column *c, const char *code);
/* Grows *arr (element size sz) so it holds n + 1 elements; 0 or -1. */
int td_grow(void **arr, size_t *cap, size_t n, size_t sz);

/* --- the parser's state (th_def_parse.c, th_def_resolve.c) --- */
enum sec { SEC_NONE, SEC_APPENDIX, SEC_COLUMN, SEC_RATIO, SEC_RULE, SEC_DERIVE, SEC_SKIP };

enum { DV_STATUS, DV_DEADLINE, DV_DONE, DV_CODES };   /* then the 6 codes */
#define DV_N (DV_CODES + TH_TASK_NSTATUS)
extern const char *const td_dv_keys[DV_N];   /* the keys of [derive], in DV_* order */

struct raw {          /* a value kept for later resolution */
	char *s;
	long line;
};

struct colaux {
	unsigned seen;    /* bit per key */
	long line;
	struct raw min, max;
	int has_scale;
	long type_line, rollup_line, scale_line, maxlen_line, value_line;
	int has_maxlen;
	int bad_type;
};

struct itemaux {      /* ratio or rule */
	unsigned seen;
	struct raw a, b;  /* num, den / check */
};

struct parser {
	const char *name;
	th_diag *diag;
	int nerr;
	int oom;
	th_def *d;
	enum sec sec;
	const char *secid;       /* diag column for the current section */
	char secbuf[DEF_MAX_ID + 16];
	unsigned seen;           /* keys seen in [appendix] / [derive] */
	long appendix_line, derive_line;
	int have_appendix, have_derive;
	struct raw key;
	struct raw dv[DV_N];
	struct colaux *caux;
	size_t caux_cap;
	struct itemaux *raux, *uaux;   /* ratios, rules */
	size_t cols_cap, ratios_cap, rules_cap;
};

static inline int td_is_blank(char c) { return c == ' ' || c == '\t'; }
/* Blanks (and a CR) off both ends, in place. */
char *td_trim(char *s);
int td_is_snake_id(const char *s);
/* Adds an error at line (column col) and counts it. */
void td_perr(struct parser *p, int code, long line, const char *col, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
void td_oom(struct parser *p, long line);
/* Splits a blank-separated list into a new string vector (each word ok()). */
int td_split_words(struct parser *p, long line, const char *v, int (*ok)(const char *),
                   const char *what, char ***out, size_t *n);
/* Ends the current section (checks a column's keys). */
void td_end_section(struct parser *p);
/* Once the whole file is read: the sections' references (row key, ratio and
 * rule terms, derive), duplicate titles, the rollup slots (th_def_resolve.c). */
void td_resolve(struct parser *p, long last_line);

#endif

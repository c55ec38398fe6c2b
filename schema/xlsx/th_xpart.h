/* th_xpart.h -- private to schema/xlsx (th_xlsx.c): one part of a workbook
 * archive streamed through expat with the reader's limits (declared and
 * real inflated size, nesting depth, no DTD), the archive's part names
 * checked byte by byte, relationship targets resolved, strings unescaped,
 * checked and normalised.  Limits: th_xlsx.h. */
#ifndef TH_XPART_H
#define TH_XPART_H

#include <stddef.h>
#include <expat.h>
#include <zip.h>
#include "th_error.h"

/* The archive being read. */
typedef struct th_xzip {
	const char *name;         /* the file, in messages */
	zip_t *za;
	size_t inflated;          /* bytes inflated so far, every part */
} th_xzip;

/* A part being streamed: the handlers and their state.  Zero it, set
 * start/end/ud (and tmax, the bound of collected text), then th_xpart_run. */
typedef struct th_xpart th_xpart;
struct th_xpart {
	th_xzip *z;
	void *owner;              /* th_xpart_run's owner, for the handlers */
	const char *path;
	th_diag *diag;            /* where problems go */
	XML_Parser xp;
	int depth;
	int stopped;              /* a problem was reported; rc says which */
	int rc;
	void (*start)(th_xpart *, const char *name, const char **attrs);   /* local names */
	void (*end)(th_xpart *, const char *name);
	void *ud;
	int collect;              /* character data goes to text */
	char *text;               /* NUL-terminated, tlen bytes; NULL until some arrives */
	size_t tlen, tcap, tmax;
	int too_long;             /* more than tmax bytes arrived since the last reset */
};

/* A problem at the part (where NULL: its path), reported once; stops the parser. */
void th_xpart_fail(th_xpart *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void th_xpart_fail_at(th_xpart *p, int code, const char *where, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void th_xpart_nomem(th_xpart *p);
/* An attribute by name; prefixed: one with a namespace prefix and that
 * local name (r:id), else one without a prefix.  NULL when absent. */
const char *th_xpart_attr(const char **a, const char *name, int prefixed);
void th_xpart_text_reset(th_xpart *p);
/* The member's index, or -1. */
zip_int64_t th_xpart_member(th_xzip *z, const char *path);
/* Streams path through p's handlers.  TH_ENOTFOUND when the archive has
 * no such part (nothing reported); else TH_OK or the code of the problem
 * reported to diag.  Frees p's text. */
int th_xpart_run(th_xzip *z, void *owner, const char *path, th_diag *diag, th_xpart *p);
/* Walks the archive's central directory itself (libzip hides NULs in
 * names): refuses more than TH_XLSX_MAX_PARTS parts and odd part names. */
int th_xpart_check_names(const unsigned char *d, size_t len, const char *name, th_diag *diag);
/* A relationship target against the directory of its source part
 * ("xl/workbook.xml" + "worksheets/sheet1.xml"); malloc'd, NULL when it
 * climbs out of the archive or on ENOMEM. */
char *th_xpart_resolve(const char *source, const char *target);
/* The text of a string (t, len bytes, modified), "_xHHHH_" escapes decoded,
 * checked and in NFC: *out is t itself or a malloc'd copy (*owned = 1).
 * Returns TH_SHEET_TEXT or TH_SHEET_INVALID (a control character, not
 * UTF-8), or TH_ENOMEM. */
int th_xpart_clean_text(char *t, size_t *len, char **out, int *owned);

#endif

/* xlsxutil.h -- hand-made .xlsx files for the reader's tests: any XML, any
 * part, byte-level damage (libzip writes them). */
#ifndef TH_XLSXUTIL_H
#define TH_XLSXUTIL_H

#include <stddef.h>

typedef struct {
	const char *name;
	const void *data;
	size_t len;          /* 0: strlen(data) */
} xu_part;

/* Writes a ZIP archive of the parts (deflated); 0 on success. */
int xu_zip(const char *path, const xu_part *parts, size_t n);

typedef struct {
	const char *name;    /* the sheet's name */
	const char *rows;    /* what goes inside <sheetData> */
	const char *state;   /* NULL: visible; "hidden" */
} xu_sheet;

typedef struct {
	const xu_sheet *sheets;
	size_t n_sheets;
	const char *sst;     /* the <si> elements of xl/sharedStrings.xml; NULL: no such part */
	const char *numfmts; /* the <numFmt> elements; NULL: none */
	const char *xfs;     /* the <xf> elements of <cellXfs>; NULL: one plain format */
	int date1904;
	const xu_part *extra;/* more parts (or replacements: same name wins) */
	size_t n_extra;
} xu_book;

/* Writes the workbook; 0 on success. */
int xu_book_write(const char *path, const xu_book *b);

/* Replaces every occurrence of the bytes from (n bytes) by to (same
 * length) in the file; returns how many were replaced, -1 on error. */
int xu_patch(const char *path, const void *from, const void *to, size_t n);

#endif

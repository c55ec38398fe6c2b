/* th_file.h -- what an appendix file is, told by its first bytes, and
 * reading one whole with a bound.  Shared by the readers (th_csv.c refuses
 * a workbook by name, th_input.c dispatches on it). */
#ifndef TH_FILE_H
#define TH_FILE_H

#include <stddef.h>
#include "th_error.h"

/* What a file's first bytes say it is. */
typedef enum {
	TH_FILE_TEXT = 0,   /* anything else: read as CSV */
	TH_FILE_ZIP,        /* "PK\3\4": an .xlsx (or another ZIP-based format) */
	TH_FILE_OLE,        /* D0 CF 11 E0: Excel 97-2003 .xls, or a password-protected workbook */
	TH_FILE_PDF         /* "%PDF" */
} th_file_kind;
th_file_kind th_file_sniff(const void *data, size_t len);
/* Adds the error for a file of a kind no reader takes (OLE, PDF), naming
 * the kind and how to convert it; returns its code (TH_EENCODING). */
int th_file_refuse(th_file_kind k, const char *name, th_diag *diag);

/* Reads a whole file into memory (malloc'd, NUL-terminated) when it has at
 * most max bytes; else adds "file larger than ... MiB" (TH_ETOOBIG) or the
 * open/read error (TH_EIO) to diag. */
int th_file_slurp(const char *path, size_t max, char **data, size_t *len, th_diag *diag);

#endif

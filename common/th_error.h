/* th_error.h -- the project's one error space and the diagnostics list.
 *
 * Every function of the tonghop libraries returns 0 (TH_OK) on success or a
 * negative TH_E* code; th_strerror() names it.  Library errors (LMDB, libzmq,
 * msgpack, iconv) are translated at the module boundary.
 *
 * A th_diag collects problems "all at once": each entry has a severity, the
 * file and line (or report row) it concerns, the column id, the TH_E* code and
 * a human message; th_diag_text() formats "file:line: column: message".
 */
#ifndef TH_ERROR_H
#define TH_ERROR_H

#include <stddef.h>
#include <stdarg.h>

enum th_err {
	TH_OK            = 0,
	TH_ENOMEM        = -1,   /* out of memory */
	TH_EINVAL        = -2,   /* invalid argument (programmer or caller error) */
	TH_EIO           = -3,   /* I/O error reading or writing a file */
	TH_ENOTFOUND     = -4,   /* no such item */
	TH_EEXIST        = -5,   /* item exists already */
	TH_ESYNTAX       = -6,   /* syntax error in a file (definition, hierarchy, CSV) */
	TH_ETYPE         = -7,   /* value of the wrong type */
	TH_ERANGE        = -8,   /* value outside its allowed range */
	TH_EUTF8         = -9,   /* invalid UTF-8 */
	TH_ETOOBIG       = -10,  /* a limit was exceeded (size, rows, length, count) */
	TH_ETRUNC        = -11,  /* input truncated */
	TH_EDEPTH        = -12,  /* nesting too deep */
	TH_ERULE         = -13,  /* a cross-field rule does not hold */
	TH_EOVERFLOW     = -14,  /* integer overflow in an aggregate */
	TH_EENCODING     = -15,  /* unsupported or undetectable text encoding */
	TH_EAMBIGUOUS    = -16,  /* an ambiguous number such as "1.234" in a decimal column */
	TH_EUNIT         = -17,  /* unknown unit code */
	TH_EAPPENDIX     = -18,  /* unknown appendix id or version */
	TH_EPERIOD       = -19,  /* malformed period */
	TH_EDUPKEY       = -20,  /* two rows with the same row key, or duplicate code */
	TH_ECYCLE        = -21,  /* a cycle in the unit hierarchy */
	TH_EPARENT       = -22,  /* unknown parent unit */
	TH_ESCOPE        = -23,  /* unit outside the sender's scope */
	TH_ECONFLICT     = -24,  /* same rev, different content */
	TH_ESTALE        = -25,  /* lower rev than stored */
	TH_EDEFCHANGED   = -26,  /* another appendix version is in force: fetch definitions */
	TH_EPROTO        = -27,  /* malformed protocol message */
	TH_EAUTH         = -28,  /* not authenticated / not allowed for this role */
	TH_EMAPFULL      = -29,  /* store map full (grown and retried internally) */
	TH_ENOSPC        = -30,  /* disk full: retry later */
	TH_ESTORE        = -31,  /* store error (corrupt, wrong format version) */
	TH_EBUSY         = -32,  /* overloaded or shutting down: retry later */
	TH_ETIMEOUT      = -33,  /* timed out */
	TH_EMISSING      = -34,  /* a required value or column is missing */
	TH_ENET          = -35,  /* network / socket error */
	TH_EKEY          = -36,  /* bad or unknown key */
	TH_ENOTEXPECTED  = -37,  /* the unit is not among the appendix's submitters */
	TH_ERR_MIN       = -37
};

/* Static English name-and-description of an error code; never NULL. */
const char *th_strerror(int err);
/* Short stable identifier of an error code ("rule", "utf8", ...), used as the
 * reason code on the wire; never NULL. */
const char *th_errname(int err);
/* The code for a th_errname() identifier, or 0 when unknown. */
int th_errcode(const char *name);

typedef enum { TH_SEV_ERROR = 0, TH_SEV_WARNING = 1 } th_severity;

typedef struct th_diag_entry {
	th_severity sev;
	int code;          /* TH_E* */
	const char *file;  /* may be NULL */
	long line;         /* 1-based line in the file, 0 = none */
	long row;          /* 1-based data row of a report, 0 = none */
	const char *column;/* column id, may be NULL */
	const char *msg;   /* the message, never NULL */
} th_diag_entry;

typedef struct th_diag th_diag;

th_diag *th_diag_new(void);
void th_diag_destroy(th_diag **d);
/* Adds an entry; all strings are copied.  NULL d is allowed (the entry is
 * dropped).  Returns code, so callers can `return th_diag_add(...)`. */
int th_diag_add(th_diag *d, th_severity sev, int code, const char *file, long line,
                long row, const char *column, const char *fmt, ...)
	__attribute__((format(printf, 8, 9)));
int th_diag_vadd(th_diag *d, th_severity sev, int code, const char *file, long line,
                 long row, const char *column, const char *fmt, va_list ap);
size_t th_diag_count(const th_diag *d);
size_t th_diag_errors(const th_diag *d);   /* entries with TH_SEV_ERROR */
const th_diag_entry *th_diag_at(const th_diag *d, size_t i);
/* "file:line: column: msg" (parts left out when absent; "row N" when there is
 * a row but no line; "warning: " prefix for warnings). Valid until the diag is
 * changed or destroyed. */
const char *th_diag_text(th_diag *d, size_t i);
void th_diag_clear(th_diag *d);

#endif

/* view_private.h -- what the view files (view*.c) share; nothing outside
 * them includes it. */
#ifndef TH_VIEW_PRIVATE_H
#define TH_VIEW_PRIVATE_H

#include "th_view.h"

/* Adds an error entry to diag and returns code. */
int th_view_fail(th_diag *diag, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The definition appendix's rollups for period are laid out by; NULL (with
 * the error in diag) when the definitions have no such appendix. */
const th_def *th_view_def(th_source *src, const char *appendix, const char *period, th_diag *diag);

/* The unit a table is about: code (the parent of its rows), or the root when
 * code is NULL; *level becomes code's depth + 1 when code is given, and is
 * checked against the hierarchy (TH_EINVAL when the level was asked for,
 * TH_ERANGE when it follows from code). */
int th_view_top(th_source *src, const th_def *d, const char *appendix, const char *period,
                const char *code, uint32_t *level, th_source_unit *top, th_diag *diag);

#endif

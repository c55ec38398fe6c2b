/* th_conf.h -- the one configuration-file parser (collector.conf, publish.conf).
 *
 * The grammar, shared by both daemons (their man pages point here):
 *   - UTF-8 text; an optional BOM; lines end with LF (a CR before it is dropped);
 *     no limit on a line's length.
 *   - Blank lines, and lines whose first non-blank character is '#' or ';', are
 *     comments.  There are no inline comments: a '#' inside a value is kept (paths,
 *     endpoints).
 *   - Every other line is `name = value`: blanks around the name and the value are
 *     dropped; a value may be empty.  A line holding only a name means
 *     `name = yes` (a flag such as `insecure`).  Names are the long command-line
 *     options without their dashes; '_' and '-' are the same (`server_key`).
 *   - A name may repeat: the handler sees every line, in file order.
 *   - `[section]` lines are not part of the grammar and are errors.
 * Every bad line is reported, not only the first (all at once).
 */
#ifndef TH_CONF_H
#define TH_CONF_H

#include <stddef.h>
#include "th_error.h"

/* Called for each `name = value` line.  name is normalised ('_' -> '-'); value is
 * never NULL ("yes" for a bare name).  Both are valid only during the call.
 * Returns 0 when the line is taken; any other value rejects the line, with a
 * message in why (cap bytes, starts empty; empty on return means "unknown
 * setting or bad value"). */
typedef int (*th_conf_fn)(void *ctx, const char *name, const char *value, char *why,
                          size_t cap);

/* Reads the file at path, calling fn for every setting.  Every rejected or
 * malformed line goes to diag (file = path, line number, message; diag may be
 * NULL).  Returns 0 when every line was taken, TH_ESYNTAX when some were not (the
 * others were still given to fn), TH_EIO when the file cannot be read (diag says
 * why, with line 0), TH_ETOOBIG past 16 MiB, TH_ENOMEM. */
int th_conf_parse(const char *path, th_conf_fn fn, void *ctx, th_diag *diag);
/* The same over text in memory (len bytes; name is used in diagnostics). */
int th_conf_parse_text(const char *text, size_t len, const char *name, th_conf_fn fn, void *ctx,
                       th_diag *diag);

/* A boolean value: 1 for yes/true/on/1, 0 for no/false/off/0 (any case), -1
 * for anything else. */
int th_conf_bool(const char *v);

#endif

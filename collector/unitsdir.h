/* unitsdir.h -- the collector's units directory (--units-dir): hierarchy
 * files loaded at start and on SIGHUP next to the --units files, and where
 * a version submitted by an admin is written durably before it is loaded
 * (collector/QUERY.md, units_submit). */
#ifndef TH_UNITSDIR_H
#define TH_UNITSDIR_H

#include <stddef.h>
#include "th_error.h"

/* The files "*.units" of dir whose names do not start with '.', sorted by
 * name, as "dir/name" paths: *paths is a malloc'd array of malloc'd strings
 * (release with th_unitsdir_free).  TH_EIO with errno set when dir cannot be
 * read. */
int th_unitsdir_list(const char *dir, char ***paths, size_t *n);
void th_unitsdir_free(char **paths, size_t n);

/* 1 when a hierarchy version id can name a file of the directory: letters,
 * digits, '.', '_' and '-', not starting with '.'; else 0. */
int th_unitsdir_name_ok(const char *id);

/* Writes text (len bytes) as dir/<id>.units durably: a temporary file in dir,
 * fsync, a hard link to the final name (never replacing a file: TH_EEXIST),
 * the temporary name removed, fsync of dir.  The final path goes to path
 * (cap bytes).  On failure nothing is left in dir and why (why_cap bytes)
 * says what failed; TH_EEXIST, TH_ENOSPC (disk full or quota) or TH_EIO. */
int th_unitsdir_write(const char *dir, const char *id, const char *text, size_t len, char *path,
                      size_t cap, char *why, size_t why_cap);

/* Removes path (a file of dir) and fsyncs dir: undoes th_unitsdir_write. */
int th_unitsdir_remove(const char *dir, const char *path);

#endif

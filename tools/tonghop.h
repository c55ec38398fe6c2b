/* tonghop.h -- the tonghop command line: its options, the helpers every
 * command uses (cli.c), and the commands (cmd_*.c), each reading through the
 * view library (th_source.h, th_view.h, th_render.h). */
#ifndef TH_TONGHOP_H
#define TH_TONGHOP_H

#include <stdio.h>
#include "th_render.h"
#include "th_source.h"
#include "th_view.h"

#define EXIT_USAGE 2

/* The parsed command line. */
typedef struct th_opts {
	const char *cmd;
	const char *db, *defs_dir, *units_file, *appendix, *period, *parent, *columns, *out_path;
	const char *unit, *tree, *sheet, *pub, *key, *server_key, *collector, *submit;
	long level, count;
	int level_set, insecure;
	int own, history, versions, excel;
	th_format fmt;
} th_opts;

extern const char *const th_prog;   /* "tonghop" */

/* --- cli.c ---------------------------------------------------------------------- */
/* Prints "tonghop CMD: msg" and the --help hint to stderr; exits 2. */
void th_cli_usage(const char *cmd, const char *msg) __attribute__((noreturn));
/* The definitions of dir (NULL: the default directory); NULL after printing why. */
th_defset *th_cli_defs(const char *dir);
/* Opens --db (writable: for rebuild) or --collector with defs; NULL after
 * printing why ("tonghop: ..." or, writable, "tonghop CMD: ..."). */
th_source *th_cli_source(const th_opts *o, const th_defset *defs, int writable);
/* Prints diag's entries to stderr ("tonghop: ...", or "tonghop CMD: ..."
 * for a usage error rc == TH_EINVAL) and returns the exit code for rc: 0, 1,
 * or 2 for TH_EINVAL. */
int th_cli_report(const th_opts *o, th_diag *diag, int rc);
/* Where output goes: -o FILE (opened for writing) or stdout; NULL after
 * printing why.  xlsx goes to its path itself: stdout is returned. */
FILE *th_cli_out(const th_opts *o);
/* Renders d in the chosen format to f; 0, or 1 after printing why. */
int th_cli_render(const th_opts *o, const th_doc *d, FILE *f);
/* Closes f unless it is stdout (flushed); 0, or 1 after printing why. */
int th_cli_close(const th_opts *o, FILE *f);
/* th_cli_out, th_cli_render, th_cli_close. */
int th_cli_output(const th_opts *o, const th_doc *d);
/* A view command: loads the definitions, checks that --appendix names one,
 * opens the source, runs view(src, o, &doc, diag) and writes the document.
 * Returns the exit code. */
typedef int (*th_cli_view_fn)(th_source *src, const th_opts *o, th_doc **out, th_diag *diag);
int th_cli_view(const th_opts *o, th_cli_view_fn view);

/* --- commands: each returns the exit code --------------------------------------------- */
int th_cmd_rollup(const th_opts *o);                 /* cmd_rollup.c */
int th_cmd_status(const th_opts *o);                 /* cmd_status.c */
int th_cmd_report(const th_opts *o, const char *unit, const char *appendix,
                  const char *period);               /* cmd_report.c */
int th_cmd_units(const th_opts *o);                  /* cmd_units.c: list, tree, versions, submit */
int th_cmd_validate(const th_opts *o, char **files, int n);   /* cmd_check.c */
int th_cmd_check(const th_opts *o);
int th_cmd_rebuild(const th_opts *o);
int th_cmd_watch(const th_opts *o);                  /* cmd_watch.c */

#endif

/* testutil.h -- helpers shared by the test programs. */
#ifndef TH_TESTUTIL_H
#define TH_TESTUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* Runs the cmocka group, honouring argv[1] as a case filter. */
#define TH_RUN_TESTS(tests, argc, argv)                                      \
	((argc) > 1 ? cmocka_set_test_filter((argv)[1]) : (void)0,            \
	 cmocka_run_group_tests(tests, NULL, NULL))

/* Source tree root (TH_SOURCE_DIR env, else the compile-time path). */
const char *tu_source_dir(void);
/* Build tree root (TH_BUILD_DIR env, else "."). */
const char *tu_build_dir(void);
/* "<source>/<rel>" in a static rotating buffer (8 slots). */
const char *tu_src(const char *rel);
/* "<build>/<rel>". */
const char *tu_bin(const char *rel);
/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp); malloc'd. */
char *tu_tmpdir(void);
/* rm -rf dir and free it; NULL-safe. */
void tu_rmrf(char *dir);
/* Reads a whole file (malloc'd, NUL-terminated); NULL on error. */
char *tu_read_file(const char *path, size_t *len);
/* Writes a whole file; 0 on success. */
int tu_write_file(const char *path, const void *data, size_t len);
/* Spawns argv[0] (path) with argv; stdout/stderr to log (NULL: inherit).
 * Returns pid or -1. */
pid_t tu_spawn(char *const argv[], const char *log);
/* Runs argv to completion; returns exit status (or 128+signal), -1 on error. */
int tu_run(char *const argv[], const char *log);
/* Runs a shell command, captures stdout (malloc'd) and exit status. */
char *tu_capture(const char *cmd, int *status);
/* Waits up to ms for pid; returns exit status or -1 on timeout. */
int tu_wait(pid_t pid, int ms);
/* A free TCP port on 127.0.0.1. */
int tu_free_port(void);

#endif

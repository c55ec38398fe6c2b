/* publish_fixture.h -- tonghop-publish against a real tonghop-collector on
 * loopback, for it_publisher.c and it_drop.c: a temporary directory with a small
 * hierarchy, the collector started and stopped, the agent run or spawned, its
 * status read, appendix files generated, the collector's store checked after it
 * stopped.  Every helper fails the running cmocka test on an unexpected
 * outcome. */
#ifndef TH_PUBLISH_FIXTURE_H
#define TH_PUBLISH_FIXTURE_H

#include <stdint.h>
#include <sys/types.h>

#include "th_def.h"
#include "th_report.h"
#if __has_include("th_store.h")
#include "th_store.h"
#define HAVE_STORE 1
#endif

#define PF_MAXF 64
#define PF_NFILERS 12

typedef struct pf_fx {
	char *dir;
	char units[4200], db[4200], outbox[4200], files[4200], log[4200], drop[4200];
	char ep[64], pub[64], query[64];
	pid_t coll;
	pid_t agent;
} pf_fx;

/* The units that file PL1 in the fixture's hierarchy (the city does not). */
extern const char *const pf_filers[PF_NFILERS];

/* cmocka set-up / tear-down: the directory, free ports; the processes stopped
 * and the directory removed (kept and named with TH_KEEP_TMP set). */
int pf_setup(void **state);
int pf_teardown(void **state);
/* Frees what the fixture keeps between cases (the definitions). */
void pf_cleanup(void);

void pf_msleep(int ms);
/* SIGNAL, then SIGKILL after 10 s; *pid = 0. */
void pf_kill_wait(pid_t *pid, int sig);

/* The collector (insecure, or CURVE with a keys file and its key), ready on its
 * port; skips the case when it is not built.  TH_IT_COLLECTOR names another
 * binary. */
void pf_coll_start(pf_fx *f);
void pf_coll_start_with(pf_fx *f, const char *keys, const char *server_key);
void pf_coll_stop(pf_fx *f);

/* Runs tonghop-publish COMMAND --outbox --collector --insecure ARGS...
 * (NULL-terminated), output to f->log; the exit status.  A sanitizer report
 * in the output fails the case. */
int pf_pub(pf_fx *f, ...);
/* The same started in the background (extra[0] the command); its pid. */
pid_t pf_pub_spawn(pf_fx *f, char **extra);
/* `run --drop f->drop` with local definitions, quick polls (extra1 may be NULL). */
pid_t pf_run_agent(pf_fx *f, const char *extra1);
/* f->log (malloc'd, never NULL). */
char *pf_read_log(pf_fx *f);
/* `status --format json` of f->outbox (malloc'd); asserts exit 0. */
char *pf_status_json(pf_fx *f);
/* Waits up to ms until needle is in the status JSON `times` times. */
int pf_wait_status(pf_fx *f, const char *needle, int times, int ms);
int pf_count_str(const char *hay, const char *needle);
/* The JSON array "name": [...] of a status output (a copy). */
char *pf_json_section(const char *js, const char *name);

/* schema/appendices, loaded once. */
const char *pf_defs_dir(void);
const th_defset *pf_defs(void);
/* One PL1 file per filing unit (or only unit) into dir; how many. */
int pf_gen(pf_fx *f, const char *dir, const char *unit, int seed, int revision);
/* Sorted paths of the regular files of dir (at most PF_MAXF). */
int pf_list_files(const char *dir, char paths[][4200]);
/* One generated file of unit for appendix (NULL: any), into out. */
void pf_one_file(pf_fx *f, const char *unit, const char *appendix, int seed, int revision,
                 char *out);
/* The content hash and identity of a file (unit, app, period may be NULL). */
void pf_file_hash(const char *path, uint8_t hash[TH_HASH_LEN], char *unit, char *app,
                  char *period);

/* The stopped collector's store holds the file's content as the current
 * revision of its key (or not, expect_current 0); how many revisions the key
 * has.  Skips the case when the store library is not built. */
int pf_store_check(pf_fx *f, const char *path, int expect_current);
#ifdef HAVE_STORE
/* A th_store_history callback counting into *(int *)ctx. */
int pf_count_rev(void *ctx, const th_revision_info *info, const th_report *r);
#endif

#endif

/* test_drop.c -- the drop folder's workflow (publisher/drop.h): processed files
 * queued and moved to DIR/.done, an invalid file back in place with its
 * DIR/NAME.errors.txt and holding nothing back, --keep, superseded content,
 * batches, and the recovery of DIR/.work after an agent was killed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "drop.h"
#include "outbox.h"
#include "outbox_fixture.h"
#include "testutil.h"
#include "watch.h"

static const char bad_text[] = "#appendix: PL1\n#version: 1\n#unit: Q01\n#period: 2021\n"
                               "co_ke_hoach_cchc,nhiem_vu_ke_hoach,nhiem_vu_hoan_thanh\n"
                               "maybe,12a,1/2\n";

typedef struct fx {
	char *dir;
	char drop[4200], outbox[4200];
	th_outbox *ob;
	th_watch *w;
	th_drop *d;
	th_defset *defs;
	char log[65536];
	size_t log_len;
	int problem_calls;
	size_t problems;
	const char *kill_on;          /* the log line that kills the process (crash case) */
	const char *newer_on_problems; /* a file to drop under the invalid one's name */
} fx;

static void on_log(void *ctx, int level, const char *m)
{
	fx *f = ctx;
	int n = snprintf(f->log + f->log_len, sizeof f->log - f->log_len, "%d %s\n", level, m);
	if (n > 0 && f->log_len + (size_t)n < sizeof f->log)
		f->log_len += (size_t)n;
	if (f->kill_on && strstr(m, f->kill_on))
		raise(SIGKILL);
}

static void on_problems(void *ctx, th_diag *d)
{
	fx *f = ctx;
	f->problem_calls++;
	f->problems += th_diag_count(d);
	if (f->newer_on_problems)
		of_pl1_file(f->newer_on_problems, "P0199", 99);
}

static int setup(void **state)
{
	fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->dir = tu_tmpdir();
	assert_non_null(f->dir);
	snprintf(f->drop, sizeof f->drop, "%s/drop", f->dir);
	snprintf(f->outbox, sizeof f->outbox, "%s/outbox", f->dir);
	assert_int_equal(mkdir(f->drop, 0750), 0);
	assert_int_equal(th_outbox_open(f->outbox, &f->ob, NULL), 0);
	th_diag *d = th_diag_new();
	assert_int_equal(th_defset_load_dir(tu_src("schema/appendices"), &f->defs, d), 0);
	th_diag_destroy(&d);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fx *f = *state;
	th_drop_destroy(&f->d);
	th_watch_destroy(&f->w);
	th_outbox_close(&f->ob);
	th_defset_destroy(&f->defs);
	tu_rmrf(f->dir);
	free(f);
	return 0;
}

static void open_drop(fx *f, int keep, int force)
{
	th_drop_opts o = {f->drop, f->outbox, keep, force, NULL};
	th_drop_hooks h = {f, on_log, on_problems};
	assert_int_equal(th_drop_new(&o, &h, &f->d), 0);
	th_watch_opts wo = {f->drop, 0, 1, 1};
	const char *why = NULL;
	assert_int_equal(th_watch_open(&wo, &f->w, &why), 0);
}

static const char *in(fx *f, const char *sub, const char *name)
{
	static char buf[4][4400];
	static int k;
	char *p = buf[k++ % 4];
	if (sub)
		snprintf(p, 4400, "%s/%s/%s", f->drop, sub, name);
	else
		snprintf(p, 4400, "%s/%s", f->drop, name);
	return p;
}

static int exists(const char *path) { return access(path, F_OK) == 0; }

static size_t process(fx *f, const char *const *names, size_t n)
{
	return th_drop_process(f->d, f->ob, f->w, f->defs, (char **)names, n);
}

typedef struct files_seen {
	int n;
	char file[8][4400];
} files_seen;

static int file_cb(void *ctx, const th_ob_entry *e)
{
	files_seen *s = ctx;
	if (s->n < 8)
		snprintf(s->file[s->n], sizeof s->file[0], "%s", e->file);
	s->n++;
	return 0;
}

/* A valid file: queued (the entry names where it went), moved to .done. */
static void valid_queued_and_moved(void **state)
{
	fx *f = *state;
	open_drop(f, 0, 0);
	of_pl1_file(in(f, NULL, "snv.csv"), "SNV", 1);
	char *before = tu_read_file(in(f, NULL, "snv.csv"), NULL);
	const char *names[] = {"snv.csv"};
	assert_int_equal(process(f, names, 1), 1);
	assert_false(exists(in(f, NULL, "snv.csv")));
	char *after = tu_read_file(in(f, ".done", "snv.csv"), NULL);
	assert_non_null(after);
	assert_string_equal(after, before);
	assert_false(exists(in(f, ".work", "snv.csv")));
	files_seen s = {0};
	assert_int_equal(th_outbox_list(f->ob, TH_OB_TPENDING, 0, file_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.file[0], in(f, ".done", "snv.csv"));
	assert_non_null(strstr(f->log, "snv.csv: SNV PL1 2021 queued as rev"));
	free(before);
	free(after);
}

/* One invalid file among valid ones: they are queued in one transaction and
 * moved; it goes back in place with DIR/NAME.errors.txt listing every problem
 * under its drop-folder name; once fixed it is queued and the sidecar goes. */
static void invalid_holds_nothing_back(void **state)
{
	fx *f = *state;
	open_drop(f, 0, 0);
	of_pl1_file(in(f, NULL, "a.csv"), "SNV", 1);
	assert_int_equal(tu_write_file(in(f, NULL, "bad.csv"), bad_text, strlen(bad_text)), 0);
	of_pl1_file(in(f, NULL, "b.csv"), "Q01", 2);
	const char *names[] = {"a.csv", "bad.csv", "b.csv"};
	th_ob_info i0, i1;
	assert_int_equal(th_outbox_info(f->ob, &i0), 0);
	assert_int_equal(process(f, names, 3), 2);
	assert_int_equal(th_outbox_info(f->ob, &i1), 0);
	assert_int_equal(i1.last_txn - i0.last_txn, 1);   /* the valid two in one transaction */
	assert_int_equal(th_outbox_count(f->ob, TH_OB_TPENDING), 2);
	assert_true(exists(in(f, ".done", "a.csv")));
	assert_true(exists(in(f, ".done", "b.csv")));
	assert_true(exists(in(f, NULL, "bad.csv")));
	assert_false(exists(in(f, ".work", "bad.csv")));
	char *errs = tu_read_file(in(f, NULL, "bad.csv.errors.txt"), NULL);
	assert_non_null(errs);
	char needle[4500];
	snprintf(needle, sizeof needle, "%s:6: ", in(f, NULL, "bad.csv"));
	int lines = 0;
	for (char *p = errs; (p = strstr(p, needle)); p++)
		lines++;
	assert_true(lines >= 3);          /* every problem, with its line */
	assert_null(strstr(errs, ".work"));
	assert_int_equal(f->problem_calls, 1);
	assert_int_equal(f->problems, (size_t)lines);
	assert_non_null(strstr(f->log, "bad.csv: invalid, not sent"));
	free(errs);
	/* fixed */
	of_pl1_file(in(f, NULL, "bad.csv"), "Q01", 3);
	const char *again[] = {"bad.csv"};
	assert_int_equal(process(f, again, 1), 1);
	assert_false(exists(in(f, NULL, "bad.csv.errors.txt")));
	assert_true(exists(in(f, ".done", "bad.csv")));
	assert_int_equal(th_outbox_count(f->ob, TH_OB_TPENDING), 3);
}

/* An invalid file whose name a newer file took while it was read is kept as
 * DIR/.done/NAME.invalid; the newer file stays for the next scan. */
static void invalid_replaced_meanwhile(void **state)
{
	fx *f = *state;
	open_drop(f, 0, 0);
	assert_int_equal(tu_write_file(in(f, NULL, "x.csv"), bad_text, strlen(bad_text)), 0);
	char newer_path[4400];
	snprintf(newer_path, sizeof newer_path, "%s", in(f, NULL, "x.csv"));
	f->newer_on_problems = newer_path;
	const char *names[] = {"x.csv"};
	assert_int_equal(process(f, names, 1), 0);
	f->newer_on_problems = NULL;
	char *kept = tu_read_file(in(f, ".done", "x.csv.invalid"), NULL);
	assert_non_null(kept);
	assert_string_equal(kept, bad_text);
	free(kept);
	char *newer = tu_read_file(in(f, NULL, "x.csv"), NULL);
	assert_non_null(newer);
	assert_non_null(strstr(newer, "P0199"));
	free(newer);
	assert_int_equal(process(f, names, 1), 1);   /* the newer one, next scan */
}

/* --keep: files stay in place, the entry names them, the same content again
 * is recognised. */
static void keep_in_place(void **state)
{
	fx *f = *state;
	open_drop(f, 1, 0);
	of_pl1_file(in(f, NULL, "k.csv"), "SNV", 4);
	assert_int_equal(tu_write_file(in(f, NULL, "bad.csv"), bad_text, strlen(bad_text)), 0);
	const char *names[] = {"k.csv", "bad.csv"};
	assert_int_equal(process(f, names, 2), 1);
	assert_true(exists(in(f, NULL, "k.csv")));
	assert_true(exists(in(f, NULL, "bad.csv")));
	assert_true(exists(in(f, NULL, "bad.csv.errors.txt")));
	assert_false(exists(in(f, ".done", "k.csv")));
	assert_false(exists(in(f, ".work", "k.csv")));
	files_seen s = {0};
	assert_int_equal(th_outbox_list(f->ob, TH_OB_TPENDING, 0, file_cb, &s), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.file[0], in(f, NULL, "k.csv"));
	assert_int_equal(process(f, names, 1), 1);
	assert_non_null(strstr(f->log, "the same content is already queued"));
	assert_int_equal(th_outbox_count(f->ob, TH_OB_TPENDING), 1);
}

/* Content delivered before and superseded since is not queued again (a
 * warning says so and how to force it); the file still moves to .done.  With
 * force it is queued. */
static void superseded_content(void **state)
{
	fx *f = *state;
	open_drop(f, 0, 0);
	uint8_t store[TH_STORE_UUID_LEN];
	memset(store, 1, sizeof store);
	const char *names[] = {"q.csv"};
	uint64_t revs[2];
	for (int v = 0; v < 2; v++) {
		of_pl1_file(in(f, NULL, "q.csv"), "Q01", v);
		assert_int_equal(process(f, names, 1), 1);
		const char *p = strstr(f->log, "queued as rev ");
		for (int k = 0; k < v; k++)
			p = strstr(p + 1, "queued as rev ");
		assert_non_null(p);
		revs[v] = strtoull(p + 14, NULL, 10);
		th_ack a;
		memset(&a, 0, sizeof a);
		memcpy(a.store, store, sizeof store);
		th_ack_result r = {0};
		r.status = TH_ACK_ACCEPTED;
		r.unit = "Q01";
		r.appendix = "PL1";
		r.period = "2021";
		r.rev = revs[v];
		a.results = &r;
		a.n_results = 1;
		assert_int_equal(th_outbox_apply_ack(f->ob, &a, 1, NULL), 0);
	}
	of_pl1_file(in(f, NULL, "q.csv"), "Q01", 0);   /* the first content again */
	assert_int_equal(process(f, names, 1), 1);
	assert_non_null(strstr(f->log, "superseded since; not sent (send it with --force"));
	assert_int_equal(th_outbox_count(f->ob, TH_OB_TPENDING), 0);
	assert_true(exists(in(f, ".done", "q.csv")));
	th_drop_destroy(&f->d);
	th_watch_destroy(&f->w);
	open_drop(f, 0, 1);
	of_pl1_file(in(f, NULL, "q.csv"), "Q01", 0);
	assert_int_equal(process(f, names, 1), 1);
	assert_int_equal(th_outbox_count(f->ob, TH_OB_TPENDING), 1);
}

/* More files than one batch: every one queued, one transaction per batch. */
static void batches(void **state)
{
	fx *f = *state;
	open_drop(f, 0, 0);
	enum { N = TH_DROP_BATCH + 4 };
	char **names = calloc(N, sizeof *names);
	assert_non_null(names);
	for (int i = 0; i < N; i++) {
		char unit[16], name[32];
		snprintf(unit, sizeof unit, "U%04d", i);
		snprintf(name, sizeof name, "%s.csv", unit);
		names[i] = strdup(name);
		of_pl1_file(in(f, NULL, name), unit, i);
	}
	th_ob_info i0, i1;
	assert_int_equal(th_outbox_info(f->ob, &i0), 0);
	assert_int_equal(process(f, (const char *const *)names, N), N);
	assert_int_equal(th_outbox_info(f->ob, &i1), 0);
	assert_int_equal(i1.last_txn - i0.last_txn, 2);
	assert_int_equal(th_outbox_count(f->ob, TH_OB_TPENDING), N);
	for (int i = 0; i < N; i++) {
		assert_true(exists(in(f, ".done", names[i])));
		free(names[i]);
	}
	free(names);
}

/* The agent is killed -9 after a batch was committed but before its files
 * moved on: they are in DIR/.work.  At the next start they go back, are read
 * again and recognised as queued (no new revision); one whose name a newer
 * file took is kept as DIR/.done/NAME.interrupted. */
static void recovery_after_kill(void **state)
{
	fx *f = *state;
	const char *names[] = {"r1.csv", "r2.csv", "r3.csv"};
	for (int i = 0; i < 3; i++)
		of_pl1_file(in(f, NULL, names[i]), i == 0 ? "SNV" : i == 1 ? "Q01" : "P0101", i);
	th_outbox_close(&f->ob);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (th_outbox_open(f->outbox, &f->ob, NULL) != 0)
			_exit(3);
		f->kill_on = "queued as rev";   /* the first file's line, after the commit */
		open_drop(f, 0, 0);
		process(f, names, 3);
		_exit(4);   /* not reached */
	}
	int ws = 0;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFSIGNALED(ws));
	assert_int_equal(WTERMSIG(ws), SIGKILL);
	for (int i = 0; i < 3; i++) {
		assert_true(exists(in(f, ".work", names[i])));
		assert_false(exists(in(f, NULL, names[i])));
	}
	assert_int_equal(th_outbox_open(f->outbox, &f->ob, NULL), 0);
	assert_int_equal(th_outbox_count(f->ob, TH_OB_TPENDING), 3);   /* committed before the kill */
	size_t hist = th_outbox_history_count(f->ob);
	/* a newer r3.csv was dropped meanwhile */
	of_pl1_file(in(f, NULL, "r3.csv"), "P0101", 33);
	open_drop(f, 0, 0);
	th_drop_recover(f->d);
	assert_true(exists(in(f, NULL, "r1.csv")));
	assert_true(exists(in(f, NULL, "r2.csv")));
	assert_true(exists(in(f, ".done", "r3.csv.interrupted")));
	assert_false(exists(in(f, ".work", "r1.csv")));
	assert_non_null(strstr(f->log, "r1.csv: taken back from an interrupted run"));
	assert_non_null(strstr(f->log, "r3.csv: a newer file has the name"));
	assert_int_equal(process(f, names, 3), 3);
	assert_non_null(strstr(f->log, "r1.csv: SNV PL1 2021: the same content is already queued"));
	assert_non_null(strstr(f->log, "r2.csv: Q01 PL1 2021: the same content is already queued"));
	assert_int_equal(th_outbox_count(f->ob, TH_OB_TPENDING), 4);   /* + the newer r3 */
	assert_int_equal(th_outbox_history_count(f->ob), hist + 1);
	for (int i = 0; i < 3; i++)
		assert_true(exists(in(f, ".done", names[i])));
}

/* A stop request: the scan takes no further file. */
static void stop_between_files(void **state)
{
	fx *f = *state;
	volatile sig_atomic_t stop = 1;
	th_drop_opts o = {f->drop, f->outbox, 0, 0, &stop};
	assert_int_equal(th_drop_new(&o, NULL, &f->d), 0);
	th_watch_opts wo = {f->drop, 0, 1, 1};
	assert_int_equal(th_watch_open(&wo, &f->w, NULL), 0);
	of_pl1_file(in(f, NULL, "s.csv"), "SNV", 1);
	const char *names[] = {"s.csv"};
	assert_int_equal(process(f, names, 1), 0);
	assert_true(exists(in(f, NULL, "s.csv")));
	assert_int_equal(th_outbox_count(f->ob, TH_OB_TPENDING), 0);
	stop = 0;
	assert_int_equal(process(f, names, 1), 1);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(valid_queued_and_moved, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_holds_nothing_back, setup, teardown),
		cmocka_unit_test_setup_teardown(invalid_replaced_meanwhile, setup, teardown),
		cmocka_unit_test_setup_teardown(keep_in_place, setup, teardown),
		cmocka_unit_test_setup_teardown(superseded_content, setup, teardown),
		cmocka_unit_test_setup_teardown(batches, setup, teardown),
		cmocka_unit_test_setup_teardown(recovery_after_kill, setup, teardown),
		cmocka_unit_test_setup_teardown(stop_between_files, setup, teardown),
	};
	return TH_RUN_TESTS(tests, argc, argv);
}

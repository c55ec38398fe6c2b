/* testutil.c -- helpers shared by the test programs. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef TH_TEST_SOURCE_DIR
#define TH_TEST_SOURCE_DIR "."
#endif

const char *tu_source_dir(void)
{
	const char *e = getenv("TH_SOURCE_DIR");
	return e && *e ? e : TH_TEST_SOURCE_DIR;
}

const char *tu_build_dir(void)
{
	const char *e = getenv("TH_BUILD_DIR");
	return e && *e ? e : ".";
}

static const char *join(const char *a, const char *b)
{
	static char bufs[8][4096];
	static int k;
	char *buf = bufs[k++ & 7];
	snprintf(buf, sizeof bufs[0], "%s/%s", a, b);
	return buf;
}

const char *tu_src(const char *rel) { return join(tu_source_dir(), rel); }
const char *tu_bin(const char *rel) { return join(tu_build_dir(), rel); }

char *tu_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char buf[4096];
	snprintf(buf, sizeof buf, "%s/thtest.XXXXXX", t && *t ? t : "/tmp");
	if (!mkdtemp(buf))
		return NULL;
	return strdup(buf);
}

void tu_rmrf(char *dir)
{
	if (!dir)
		return;
	if (dir[0] == '/' && strlen(dir) > 5) {
		char cmd[4200];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "testutil: could not remove %s\n", dir);
	}
	free(dir);
}

char *tu_read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += got;
		if (cap - n - 1 == 0) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	fclose(f);
	if (!buf)
		return NULL;
	buf[n] = 0;
	if (len)
		*len = n;
	return buf;
}

int tu_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	int rc = fwrite(data, 1, len, f) == len ? 0 : -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

pid_t tu_spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (log) {
			int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
			if (fd >= 0) {
				dup2(fd, 1);
				dup2(fd, 2);
				close(fd);
			}
		}
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static int decode_status(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return -1;
}

int tu_run(char *const argv[], const char *log)
{
	pid_t pid = tu_spawn(argv, log);
	if (pid < 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return decode_status(st);
}

char *tu_capture(const char *cmd, int *status)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return NULL;
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	size_t got;
	while (buf && (got = fread(buf + n, 1, cap - n - 1, p)) > 0) {
		n += got;
		if (cap - n - 1 == 0) {
			char *nb = realloc(buf, cap * 2);
			if (!nb) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
	}
	int st = pclose(p);
	if (status)
		*status = decode_status(st);
	if (buf)
		buf[n] = 0;
	return buf;
}

int tu_wait(pid_t pid, int ms)
{
	for (int waited = 0; waited <= ms; waited += 10) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return decode_status(st);
		if (r < 0 && errno != EINTR)
			return -1;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return -1;
}

/* A port below the kernel's ephemeral range (so no outgoing connection of a
 * parallel test takes it between now and the bind), chosen at random, reserved
 * for this process's lifetime with a lock file (parallel test programs skip the
 * ports another one holds: a bind check alone leaves a window until the
 * collector binds), and checked free. */
int tu_free_port(void)
{
	static unsigned seed;
	if (!seed) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (unsigned)ts.tv_nsec ^ (unsigned)getpid() << 16;
	}
	const char *tmp = getenv("TMPDIR");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/th-test-ports", tmp && *tmp ? tmp : "/tmp");
	mkdir(dir, 0777);
	for (int attempt = 0; attempt < 500; attempt++) {
		int port = 20000 + (int)(rand_r(&seed) % 12000);   /* 20000..31999 */
		char path[4200];
		snprintf(path, sizeof path, "%s/%d", dir, port);
		int lock = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0666);
		if (lock >= 0 && flock(lock, LOCK_EX | LOCK_NB) != 0) {
			close(lock);   /* another test program holds it */
			continue;
		}
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		if (fd < 0) {
			if (lock >= 0)
				close(lock);
			return -1;
		}
		struct sockaddr_in a = {0};
		a.sin_family = AF_INET;
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		a.sin_port = htons((uint16_t)port);
		int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
		close(fd);
		if (ok)
			return port;   /* the lock stays held until this process exits */
		if (lock >= 0)
			close(lock);
	}
	return -1;
}

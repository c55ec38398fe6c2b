/* unitsdir.c -- hierarchy files of the collector's --units-dir (unitsdir.h). */
#include "unitsdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int th_unitsdir_list(const char *dir, char ***paths, size_t *n)
{
	DIR *d = opendir(dir);
	if (!d)
		return TH_EIO;
	char **v = NULL;
	size_t nv = 0;
	int rc = TH_OK;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		if (e->d_name[0] == '.' || l <= 6 || strcmp(e->d_name + l - 6, ".units") != 0)
			continue;
		char **nv2 = realloc(v, (nv + 1) * sizeof *v);
		char *p = NULL;
		if (!nv2 || asprintf(&p, "%s/%s", dir, e->d_name) < 0) {
			if (nv2)
				v = nv2;
			rc = TH_ENOMEM;
			break;
		}
		v = nv2;
		v[nv++] = p;
	}
	closedir(d);
	if (rc) {
		th_unitsdir_free(v, nv);
		return rc;
	}
	if (nv)
		qsort(v, nv, sizeof *v, by_name);
	*paths = v;
	*n = nv;
	return TH_OK;
}

void th_unitsdir_free(char **paths, size_t n)
{
	for (size_t i = 0; paths && i < n; i++)
		free(paths[i]);
	free(paths);
}

int th_unitsdir_name_ok(const char *id)
{
	if (!id || !*id || *id == '.' || strlen(id) > 64)
		return 0;
	for (const char *p = id; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		      *p == '.' || *p == '_' || *p == '-'))
			return 0;
	return 1;
}

static int sync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int fail(int err, char *why, size_t cap, const char *what, const char *path)
{
	int code = err == ENOSPC || err == EDQUOT || err == EFBIG ? TH_ENOSPC : TH_EIO;
	if (why && cap)
		snprintf(why, cap, "%s %s: %s", what, path, strerror(err));
	return code;
}

int th_unitsdir_write(const char *dir, const char *id, const char *text, size_t len, char *path,
                      size_t cap, char *why, size_t why_cap)
{
	char tmp[4096], final[4096];
	if (!th_unitsdir_name_ok(id) ||
	    snprintf(final, sizeof final, "%s/%s.units", dir, id) >= (int)sizeof final ||
	    snprintf(tmp, sizeof tmp, "%s/.%s.units.XXXXXX", dir, id) >= (int)sizeof tmp) {
		if (why && why_cap)
			snprintf(why, why_cap, "version id %s cannot name a file of %s", id, dir);
		return TH_EINVAL;
	}
	if (access(final, F_OK) == 0) {
		if (why && why_cap)
			snprintf(why, why_cap, "%s exists already", final);
		return TH_EEXIST;
	}
	int fd = mkstemp(tmp);
	if (fd < 0)
		return fail(errno, why, why_cap, "cannot create a file in", dir);
	int err = 0;
	const char *what = "cannot write";
	for (size_t off = 0; off < len && !err;) {
		ssize_t w = write(fd, text + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			err = w < 0 ? errno : EIO;
		else
			off += (size_t)w;
	}
	if (!err && fchmod(fd, 0640) != 0)
		err = errno;
	if (!err && fsync(fd) != 0) {
		err = errno;
		what = "cannot sync";
	}
	if (close(fd) != 0 && !err)
		err = errno;
	if (err) {
		unlink(tmp);
		return fail(err, why, why_cap, what, tmp);
	}
	if (link(tmp, final) != 0) {
		err = errno;
		unlink(tmp);
		if (err == EEXIST) {
			if (why && why_cap)
				snprintf(why, why_cap, "%s exists already", final);
			return TH_EEXIST;
		}
		return fail(err, why, why_cap, "cannot create", final);
	}
	unlink(tmp);
	if (sync_dir(dir) != 0) {
		err = errno;
		unlink(final);
		sync_dir(dir);
		return fail(err, why, why_cap, "cannot sync the directory", dir);
	}
	if (path && cap)
		snprintf(path, cap, "%s", final);
	return TH_OK;
}

int th_unitsdir_remove(const char *dir, const char *path)
{
	if (unlink(path) != 0 && errno != ENOENT)
		return TH_EIO;
	return sync_dir(dir) == 0 ? TH_OK : TH_EIO;
}

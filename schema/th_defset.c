/* th_defset.c -- sets of appendix definitions (th_def.h): a directory of
 * *.def files, look-up by id and version. */
#include "th_def_private.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct th_defset {
	th_def **defs;
	size_t n, cap;
};

th_defset *th_defset_new(void)
{
	return calloc(1, sizeof(th_defset));
}

void th_defset_destroy(th_defset **sp)
{
	th_defset *s;
	if (!sp || !(s = *sp))
		return;
	for (size_t i = 0; i < s->n; i++)
		th_def_destroy(&s->defs[i]);
	free(s->defs);
	free(s);
	*sp = NULL;
}

int th_defset_add(th_defset *s, th_def *d)
{
	if (!s || !d || !d->id)
		return TH_EINVAL;
	if (th_defset_get(s, d->id, d->version))
		return TH_EEXIST;
	if (td_grow((void **)&s->defs, &s->cap, s->n, sizeof *s->defs) != 0)
		return TH_ENOMEM;
	s->defs[s->n++] = d;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int th_defset_load_dir(const char *dir, th_defset **out, th_diag *diag)
{
	DIR *dh = NULL;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	th_defset *s = NULL;
	int rc = 0, first = 0;
	if (!dir || !out)
		return TH_EINVAL;
	dh = opendir(dir);
	if (!dh)
		return th_diag_add(diag, TH_SEV_ERROR, errno == ENOENT ? TH_ENOTFOUND : TH_EIO, dir,
		                   0, 0, NULL, "cannot open directory: %s", strerror(errno));
	while ((e = readdir(dh)) != NULL) {
		size_t l = strlen(e->d_name);
		if (l < 5 || e->d_name[0] == '.' || strcmp(e->d_name + l - 4, ".def") != 0)
			continue;
		char *nm = td_dupn(e->d_name, l);
		if (!nm || td_grow((void **)&names, &cap, n, sizeof *names) != 0) {
			free(nm);
			rc = TH_ENOMEM;
			goto out;
		}
		names[n++] = nm;
	}
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	if (!(s = th_defset_new())) {
		rc = TH_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		size_t pl = strlen(dir) + 1 + strlen(names[i]) + 1;
		char *path = malloc(pl);
		th_def *d = NULL;
		struct stat st;
		if (!path) {
			rc = TH_ENOMEM;
			goto out;
		}
		snprintf(path, pl, "%s/%s", dir, names[i]);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
			free(path);
			continue;
		}
		int r = th_def_load(path, &d, diag);
		if (r == 0) {
			const th_def *o = th_defset_get(s, d->id, d->version);
			if (o) {
				r = th_diag_add(diag, TH_SEV_ERROR, TH_EEXIST, path, 0, 0, NULL,
				                "%s version %u is also defined in %s", d->id, d->version,
				                o->file);
				th_def_destroy(&d);
			} else if ((r = th_defset_add(s, d)) != 0) {
				th_def_destroy(&d);
			}
		}
		free(path);
		if (r == TH_ENOMEM) {
			rc = r;
			goto out;
		}
		if (r != 0 && !first)
			first = r;
	}
	rc = first;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dh);
	if (rc != 0) {
		th_defset_destroy(&s);
		return rc;
	}
	*out = s;
	return 0;
}

const th_def *th_defset_get(const th_defset *s, const char *id, uint32_t version)
{
	if (!s || !id)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (s->defs[i]->version == version && strcmp(s->defs[i]->id, id) == 0)
			return s->defs[i];
	return NULL;
}

const th_def *th_defset_latest(const th_defset *s, const char *id)
{
	const th_def *best = NULL;
	if (!s || !id)
		return NULL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->defs[i]->id, id) == 0 && (!best || s->defs[i]->version > best->version))
			best = s->defs[i];
	return best;
}

size_t th_defset_count(const th_defset *s)
{
	return s ? s->n : 0;
}

const th_def *th_defset_at(const th_defset *s, size_t i)
{
	return s && i < s->n ? s->defs[i] : NULL;
}

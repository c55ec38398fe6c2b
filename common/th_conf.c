/* th_conf.c -- `name = value` configuration files (grammar in th_conf.h).
 *
 * Hand-written rather than Debian's libinih: inih's packaged build cuts lines at
 * 200 bytes, treats an indented line as the continuation of the previous value,
 * takes ';' as an inline comment inside values and passes no line number to the
 * handler, so it would change what the existing files mean and could not say
 * where every problem is.  The grammar needs forty lines. */
#include "th_conf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

int th_conf_bool(const char *v)
{
	static const char *yes[] = {"1", "yes", "true", "on"}, *no[] = {"0", "no", "false", "off"};
	for (int i = 0; i < 4; i++) {
		if (!strcasecmp(v, yes[i]))
			return 1;
		if (!strcasecmp(v, no[i]))
			return 0;
	}
	return -1;
}

/* One line (NUL-terminated, may be modified). 0, or TH_ESYNTAX with diag. */
static int one_line(char *p, const char *name, long ln, th_conf_fn fn, void *ctx, th_diag *diag)
{
	while (blank(*p))
		p++;
	size_t n = strlen(p);
	while (n && blank(p[n - 1]))
		p[--n] = 0;
	if (!*p || *p == '#' || *p == ';')
		return 0;
	char *eq = strchr(p, '='), *val = "yes";
	if (eq) {
		val = eq + 1;
		while (blank(*val))
			val++;
		while (eq > p && blank(eq[-1]))
			eq--;
		*eq = 0;
	}
	if (!*p) {
		th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, ln, 0, NULL,
		            "expected `name = value`, found a value without a name");
		return TH_ESYNTAX;
	}
	for (char *c = p; *c; c++) {
		if (*c == '_')
			*c = '-';
		if (blank(*c) || *c == '[' || *c == ']') {
			th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, ln, 0, NULL,
			            "expected `name = value`, found \"%s\"", p);
			return TH_ESYNTAX;
		}
	}
	char why[512] = "";
	if (fn(ctx, p, val, why, sizeof why) != 0) {
		if (why[0])
			th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, ln, 0, NULL, "%s", why);
		else
			th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, ln, 0, NULL,
			            "%s: unknown setting or bad value \"%s\"", p, val);
		return TH_ESYNTAX;
	}
	return 0;
}

int th_conf_parse_text(const char *text, size_t len, const char *name, th_conf_fn fn, void *ctx,
                       th_diag *diag)
{
	if (len >= 3 && !memcmp(text, "\xef\xbb\xbf", 3)) {
		text += 3;
		len -= 3;
	}
	char *line = NULL;
	size_t cap = 0;
	long ln = 0;
	int rc = 0;
	for (size_t i = 0; i < len;) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (text + i)) : len - i;
		if (n + 1 > cap) {
			char *nb = realloc(line, n + 1);
			if (!nb) {
				free(line);
				return TH_ENOMEM;
			}
			line = nb;
			cap = n + 1;
		}
		memcpy(line, text + i, n);
		line[n] = 0;
		ln++;
		if (memchr(line, 0, n)) {
			th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, name, ln, 0, NULL, "a NUL byte in the line");
			rc = TH_ESYNTAX;
		} else if (one_line(line, name, ln, fn, ctx, diag)) {
			rc = TH_ESYNTAX;
		}
		i += n + 1;
	}
	free(line);
	return rc;
}

int th_conf_parse(const char *path, th_conf_fn fn, void *ctx, th_diag *diag)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
		return TH_EIO;
	}
	char *buf = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len == cap) {
			size_t nc = cap ? cap * 2 : 4096;
			char *nb = nc > ((size_t)16 << 20) ? NULL : realloc(buf, nc);
			if (!nb) {
				free(buf);
				fclose(f);
				th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, path, 0, 0, NULL,
				            "larger than 16 MiB: not a configuration file");
				return TH_ETOOBIG;
			}
			buf = nb;
			cap = nc;
		}
		size_t r = fread(buf + len, 1, cap - len, f);
		len += r;
		if (r == 0)
			break;
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(buf);
		th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot read it");
		return TH_EIO;
	}
	int rc = th_conf_parse_text(buf ? buf : "", len, path, fn, ctx, diag);
	free(buf);
	return rc;
}

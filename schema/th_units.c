/* th_units.c -- the unit hierarchy file (format: schema/UNITS.md). */
#include "th_units.h"
#include "th_value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct th_units {
	char *name;
	char *version;
	int32_t effective;
	th_unit *u;
	size_t n, cap;
	long *hash;          /* open addressing: unit index or -1 */
	size_t hcap;
	size_t root;
	uint32_t max_depth;
	char *source;
	size_t source_len;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

long th_units_find(const th_units *u, const char *code)
{
	if (!u || !u->hcap || !code)
		return -1;
	size_t i = hash_str(code) & (u->hcap - 1);
	while (u->hash[i] >= 0) {
		if (strcmp(u->u[u->hash[i]].code, code) == 0)
			return u->hash[i];
		i = (i + 1) & (u->hcap - 1);
	}
	return -1;
}

static void unit_free(th_unit *x)
{
	free(x->code);
	free(x->parent_code);
	free(x->kind);
	free(x->name);
	free(x->person);
	free(x->phone);
	free(x->email);
	free(x->children);
}

void th_units_destroy(th_units **pu)
{
	if (!pu || !*pu)
		return;
	th_units *u = *pu;
	for (size_t i = 0; i < u->n; i++)
		unit_free(&u->u[i]);
	free(u->u);
	free(u->hash);
	free(u->name);
	free(u->version);
	free(u->source);
	free(u);
	*pu = NULL;
}

static int code_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == 0x1f)
			return 0;
	}
	return 1;
}

/* Splits line (modified in place) at TABs; returns field count (max cap). */
static size_t split_tabs(char *line, char **f, size_t cap)
{
	size_t n = 0;
	char *p = line;
	for (;;) {
		if (n < cap)
			f[n] = p;
		n++;
		char *t = strchr(p, '\t');
		if (!t)
			break;
		*t = 0;
		p = t + 1;
	}
	return n;
}

static char *trimdup(const char *s)
{
	while (*s == ' ')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\r'))
		n--;
	return strndup(s, n);
}

static int add_unit(th_units *u, th_unit *x)
{
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 64;
		th_unit *nu = realloc(u->u, cap * sizeof *nu);
		if (!nu)
			return TH_ENOMEM;
		u->u = nu;
		u->cap = cap;
	}
	u->u[u->n++] = *x;
	return TH_OK;
}

static int build_hash(th_units *u)
{
	size_t cap = 16;
	while (cap < u->n * 2 + 1)
		cap *= 2;
	u->hash = malloc(cap * sizeof *u->hash);
	if (!u->hash)
		return TH_ENOMEM;
	for (size_t i = 0; i < cap; i++)
		u->hash[i] = -1;
	u->hcap = cap;
	return TH_OK;
}

int th_units_parse(const char *text, size_t len, const char *name, th_units **out, th_diag *diag)
{
	const char *nm = name ? name : "units";
	int rc = TH_OK;
	size_t errs = 0;
#define ERR(line, ...) (errs++, th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, nm, (line), 0, NULL, __VA_ARGS__))
	th_units *u = calloc(1, sizeof *u);
	char *buf = NULL;
	if (!u)
		return TH_ENOMEM;
	u->name = strdup(nm);
	u->source = malloc(len + 1);
	if (!u->name || !u->source) {
		rc = TH_ENOMEM;
		goto fail;
	}
	memcpy(u->source, text, len);
	u->source[len] = 0;
	u->source_len = len;
	if (!th_utf8_valid(text, len) || memchr(text, 0, len)) {
		/* find the first bad line for the message */
		long line = 1;
		size_t start = 0;
		for (size_t i = 0; i <= len; i++) {
			if (i == len || text[i] == '\n') {
				if (!th_utf8_valid(text + start, i - start)) {
					th_diag_add(diag, TH_SEV_ERROR, TH_EUTF8, nm, line, 0, NULL,
					            "invalid UTF-8 (save the file as UTF-8)");
					break;
				}
				line++;
				start = i + 1;
			}
		}
		rc = TH_EUTF8;
		goto fail;
	}
	size_t off = 0;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		off = 3;
	buf = strndup(text + off, len - off);
	if (!buf) {
		rc = TH_ENOMEM;
		goto fail;
	}
	int seen_header = 0;
	long line = 0;
	char *save = NULL;
	char *p = buf;
	for (;;) {
		char *nl = strchr(p, '\n');
		if (nl)
			*nl = 0;
		line++;
		char *l = p;
		size_t ll = strlen(l);
		if (ll && l[ll - 1] == '\r')
			l[--ll] = 0;
		(void)save;
		if (ll == 0 || l[0] == '#') {
			/* blank or comment */
		} else if (l[0] == '@') {
			char *sp = l + 1;
			char *val = strpbrk(sp, " \t");
			if (val) {
				*val++ = 0;
				while (*val == ' ' || *val == '\t')
					val++;
			}
			if (strcmp(sp, "version") == 0 && val && code_ok(val)) {
				free(u->version);
				u->version = strdup(val);
			} else if (strcmp(sp, "effective") == 0 && val) {
				int32_t d;
				const char *why;
				if (th_parse_date(val, &d, &why))
					ERR(line, "@effective: %s: %s", val, why);
				else
					u->effective = d;
			} else {
				ERR(line, "unknown or malformed directive @%s (expected @version ID or @effective yyyy-mm-dd)", sp);
			}
		} else {
			char *f[8];
			size_t nf = split_tabs(l, f, 8);
			if (!seen_header) {
				if (nf < 4 || strcmp(f[0], "code") || strcmp(f[1], "parent") ||
				    strcmp(f[2], "kind") || strcmp(f[3], "name"))
					ERR(line, "expected the header line \"code<TAB>parent<TAB>kind<TAB>name[...]\"");
				seen_header = 1;
			} else if (nf < 4 || nf > 7) {
				ERR(line, "%zu tab-separated fields; expected 4 (code, parent, kind, name) to 7", nf);
			} else {
				th_unit x = {0};
				x.code = trimdup(f[0]);
				x.parent_code = trimdup(f[1]);
				x.kind = trimdup(f[2]);
				x.person = trimdup(nf > 4 ? f[4] : "");
				x.phone = trimdup(nf > 5 ? f[5] : "");
				x.email = trimdup(nf > 6 ? f[6] : "");
				char *nm0 = trimdup(f[3]);
				size_t nlen;
				if (nm0)
					th_utf8_nfc(nm0, strlen(nm0), &x.name, &nlen);
				free(nm0);
				x.line = line;
				x.parent = -1;
				if (!x.code || !x.parent_code || !x.kind || !x.name || !x.person || !x.phone ||
				    !x.email) {
					unit_free(&x);
					rc = TH_ENOMEM;
					goto fail;
				}
				int bad = 0;
				if (!code_ok(x.code)) {
					ERR(line, "unit code \"%s\" is empty, longer than 64 bytes or has blanks", x.code);
					bad = 1;
				}
				if (x.parent_code[0] && !code_ok(x.parent_code)) {
					ERR(line, "parent code \"%s\" is malformed", x.parent_code);
					bad = 1;
				}
				if (!code_ok(x.kind)) {
					ERR(line, "unit kind \"%s\" is empty or has blanks", x.kind);
					bad = 1;
				}
				if (!x.name[0]) {
					ERR(line, "unit %s has no name", x.code);
					bad = 1;
				}
				if (bad || add_unit(u, &x))
					unit_free(&x);
			}
		}
		if (!nl)
			break;
		p = nl + 1;
	}
	if (!u->version)
		ERR(0, "missing \"@version ID\" line");
	if (!u->effective)
		ERR(0, "missing \"@effective yyyy-mm-dd\" line");
	if (!seen_header)
		ERR(0, "no header line");
	/* index, duplicates */
	if ((rc = build_hash(u)))
		goto fail;
	for (size_t i = 0; i < u->n; i++) {
		size_t h = hash_str(u->u[i].code) & (u->hcap - 1);
		int dup = 0;
		while (u->hash[h] >= 0) {
			if (strcmp(u->u[u->hash[h]].code, u->u[i].code) == 0) {
				ERR(u->u[i].line, "duplicate unit code %s (first at line %ld)", u->u[i].code,
				    u->u[u->hash[h]].line);
				dup = 1;
				break;
			}
			h = (h + 1) & (u->hcap - 1);
		}
		if (!dup)
			u->hash[h] = (long)i;
	}
	/* parents and root */
	long root = -1;
	for (size_t i = 0; i < u->n; i++) {
		th_unit *x = &u->u[i];
		if (!x->parent_code[0]) {
			if (root >= 0)
				ERR(x->line, "second root %s (the root is %s at line %ld); give it a parent",
				    x->code, u->u[root].code, u->u[root].line);
			else
				root = (long)i;
			continue;
		}
		long pi = th_units_find(u, x->parent_code);
		if (pi < 0)
			ERR(x->line, "unit %s: unknown parent %s", x->code, x->parent_code);
		else if ((size_t)pi == i)
			ERR(x->line, "unit %s is its own parent", x->code);
		else
			x->parent = pi;
	}
	if (root < 0 && u->n)
		ERR(0, "no root unit (a unit with an empty parent)");
	if (u->n == 0)
		ERR(0, "no units");
	if (errs)
		goto done_err;
	u->root = (size_t)root;
	/* depths; detect cycles by walking up at most n steps */
	for (size_t i = 0; i < u->n; i++) {
		uint32_t depth = 1;
		long p2 = u->u[i].parent;
		while (p2 >= 0 && depth <= u->n) {
			depth++;
			p2 = u->u[p2].parent;
		}
		if (depth > u->n) {
			ERR(u->u[i].line, "unit %s is in a cycle of parents that never reaches the root %s",
			    u->u[i].code, u->u[root].code);
			continue;
		}
		u->u[i].depth = depth;
		if (depth > u->max_depth)
			u->max_depth = depth;
	}
	if (errs)
		goto done_err;
	/* children in file order */
	for (size_t i = 0; i < u->n; i++)
		if (u->u[i].parent >= 0)
			u->u[u->u[i].parent].n_children++;
	for (size_t i = 0; i < u->n; i++) {
		if (u->u[i].n_children) {
			u->u[i].children = malloc(u->u[i].n_children * sizeof(uint32_t));
			if (!u->u[i].children) {
				rc = TH_ENOMEM;
				goto fail;
			}
			u->u[i].n_children = 0;
		}
	}
	for (size_t i = 0; i < u->n; i++) {
		long pi = u->u[i].parent;
		if (pi >= 0)
			u->u[pi].children[u->u[pi].n_children++] = (uint32_t)i;
	}
	free(buf);
	*out = u;
	return TH_OK;
done_err:
	rc = TH_ESYNTAX;
fail:
	free(buf);
	th_units_destroy(&u);
	return rc;
#undef ERR
}

int th_units_load(const char *path, th_units **out, th_diag *diag)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot open: %m");
	char *data = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			char *nd = realloc(data, cap);
			if (!nd) {
				free(data);
				fclose(f);
				return TH_ENOMEM;
			}
			data = nd;
		}
		size_t got = fread(data + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
		if (len > (size_t)256 << 20) {
			free(data);
			fclose(f);
			return th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, path, 0, 0, NULL,
			                   "larger than 256 MiB");
		}
	}
	int err = ferror(f);
	fclose(f);
	if (err) {
		free(data);
		return th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "read error");
	}
	int rc = th_units_parse(data, len, path, out, diag);
	free(data);
	return rc;
}

const char *th_units_version(const th_units *u) { return u->version; }
int32_t th_units_effective(const th_units *u) { return u->effective; }
size_t th_units_count(const th_units *u) { return u->n; }
const th_unit *th_units_at(const th_units *u, size_t i) { return i < u->n ? &u->u[i] : NULL; }
size_t th_units_root(const th_units *u) { return u->root; }
uint32_t th_units_max_depth(const th_units *u) { return u->max_depth; }

int th_units_in_subtree(const th_units *u, size_t a, size_t node)
{
	if (a >= u->n || node >= u->n)
		return 0;
	long p = (long)node;
	while (p >= 0) {
		if ((size_t)p == a)
			return 1;
		p = u->u[p].parent;
	}
	return 0;
}

const char *th_units_source(const th_units *u, size_t *len)
{
	if (len)
		*len = u->source_len;
	return u->source;
}

/* th_units.c -- the unit hierarchy file (format: schema/UNITS.md). */
#include "th_units.h"
#include "th_hash.h"
#include "th_value.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TH_UNITS_CODE_MAX 64   /* bytes, as TH_CODE_MAX of th_report.h */

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


long th_units_find(const th_units *u, const char *code)
{
	if (!u || !u->hcap || !code)
		return -1;
	size_t i = th_fnv1a_str(code) & (u->hcap - 1);
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

/* NULL when s is a valid code (1..64 bytes of printable ASCII other than a
 * blank), else why not. */
static const char *code_problem(const char *s)
{
	size_t n = strlen(s);
	if (n == 0)
		return "is empty";
	if (n > TH_UNITS_CODE_MAX)
		return "is longer than 64 bytes";
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || c == '\t')
			return "contains a blank";
		if (c < 0x20 || c == 0x7f)
			return "contains a control character";
		if (c >= 0x80)
			return "contains a non-ASCII character (codes are ASCII: GSO digits or mnemonics)";
	}
	return NULL;
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

/* Walks every unit up to the root once (O(n)), setting depths; a unit whose
 * parent chain loops is reported with its line.  Returns the error count. */
static size_t compute_depths(th_units *u, const char *nm, th_diag *diag)
{
	size_t errs = 0;
	uint8_t *state = calloc(u->n ? u->n : 1, 1);   /* 0 new, 1 on the path, 2 done, 3 bad */
	size_t *path = malloc((u->n ? u->n : 1) * sizeof *path);
	if (!state || !path) {
		free(state);
		free(path);
		return (size_t)-1;
	}
	for (size_t i = 0; i < u->n; i++) {
		size_t np = 0;
		long p = (long)i;
		while (p >= 0 && state[p] == 0) {
			state[p] = 1;
			path[np++] = (size_t)p;
			p = u->u[p].parent;
		}
		int bad = p >= 0 && state[p] != 2;   /* met the path itself (cycle) or a bad unit */
		uint32_t depth = p >= 0 && !bad ? u->u[p].depth : 0;
		while (np > 0) {
			size_t k = path[--np];
			if (bad) {
				state[k] = 3;
				continue;
			}
			u->u[k].depth = ++depth;
			if (depth > u->max_depth)
				u->max_depth = depth;
			state[k] = 2;
		}
	}
	for (size_t i = 0; i < u->n; i++) {   /* reported in file order */
		if (state[i] != 3)
			continue;
		errs++;
		th_diag_add(diag, TH_SEV_ERROR, TH_ECYCLE, nm, u->u[i].line, 0, NULL,
		            "unit %s: its chain of parents (%s, ...) loops and never reaches the root %s",
		            u->u[i].code, u->u[i].parent_code, u->u[u->root].code);
	}
	free(state);
	free(path);
	return errs;
}

int th_units_parse(const char *text, size_t len, const char *name, th_units **out, th_diag *diag)
{
	const char *nm = name ? name : "units";
	int rc = TH_OK, first = 0;
	size_t errs = 0;
#define ERR(code, line, ...)                                                             \
	(errs++, first = first ? first : (code),                                         \
	 th_diag_add(diag, TH_SEV_ERROR, (code), nm, (line), 0, NULL, __VA_ARGS__))
	if (!out || (!text && len))
		return TH_EINVAL;
	if (!text)
		text = "";
	*out = NULL;
	th_units *u = calloc(1, sizeof *u);
	char *buf = NULL;
	if (!u)
		return TH_ENOMEM;
	u->name = strdup(nm);
	u->source = malloc(len + 1);
	buf = malloc(len + 1);
	if (!u->name || !u->source || !buf) {
		rc = TH_ENOMEM;
		goto fail;
	}
	if (len)
		memcpy(u->source, text, len);
	u->source[len] = 0;
	u->source_len = len;
	size_t off = 0;
	if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
		off = 3;
	int seen_header = 0;
	long line = 0, version_line = 0, effective_line = 0;
	while (off < len || (off == len && line == 0)) {
		const char *nlp = len > off ? memchr(text + off, '\n', len - off) : NULL;
		size_t end = nlp ? (size_t)(nlp - text) : len;
		size_t ll = end - off;
		line++;
		if (ll && text[off + ll - 1] == '\r')
			ll--;
		int valid = th_utf8_valid(text + off, ll);
		char *l = buf;
		if (ll)
			memcpy(l, text + off, ll);
		l[ll] = 0;
		off = end + 1;
		if (!valid) {
			ERR(TH_EUTF8, line, "invalid UTF-8 or a control character (save the file as UTF-8 text)");
			continue;
		}
		if (ll == 0 || l[0] == '#')
			continue;   /* blank or comment */
		if (l[0] == '@') {
			char *sp = l + 1;
			char *val = strpbrk(sp, " \t");
			if (val) {
				*val++ = 0;
				while (*val == ' ' || *val == '\t')
					val++;
				size_t vl = strlen(val);
				while (vl && (val[vl - 1] == ' ' || val[vl - 1] == '\t'))
					val[--vl] = 0;
			}
			if (strcmp(sp, "version") == 0) {
				const char *why = val ? code_problem(val) : "is missing";
				if (version_line)
					ERR(TH_ESYNTAX, line, "second @version line (the first is line %ld)", version_line);
				else if (why)
					ERR(TH_ESYNTAX, line, "@version: the id %s", why);
				else if (!(u->version = strdup(val))) {
					rc = TH_ENOMEM;
					goto fail;
				}
				version_line = version_line ? version_line : line;
			} else if (strcmp(sp, "effective") == 0) {
				int32_t d;
				const char *why = "no date given";
				if (effective_line)
					ERR(TH_ESYNTAX, line, "second @effective line (the first is line %ld)", effective_line);
				else if (!val || !*val || th_parse_date(val, &d, &why))
					ERR(TH_ESYNTAX, line, "@effective %s: %s (write yyyy-mm-dd)", val ? val : "", why);
				else
					u->effective = d;
				effective_line = effective_line ? effective_line : line;
			} else {
				ERR(TH_ESYNTAX, line,
				    "unknown directive @%s (expected @version ID or @effective yyyy-mm-dd)", sp);
			}
			continue;
		}
		char *f[8];
		size_t nf = split_tabs(l, f, 8);
		if (!seen_header) {
			seen_header = 1;
			if (nf < 4 || nf > 7 || strcmp(f[0], "code") || strcmp(f[1], "parent") ||
			    strcmp(f[2], "kind") || strcmp(f[3], "name"))
				ERR(TH_ESYNTAX, line,
				    "expected the header line \"code<TAB>parent<TAB>kind<TAB>name[<TAB>person<TAB>phone<TAB>email]\"");
			continue;
		}
		if (nf < 4 || nf > 7) {
			ERR(TH_ESYNTAX, line,
			    "%zu tab-separated fields; expected 4 (code, parent, kind, name) to 7 (+ person, phone, email)",
			    nf);
			continue;
		}
		th_unit x = {0};
		x.code = trimdup(f[0]);
		x.parent_code = trimdup(f[1]);
		x.kind = trimdup(f[2]);
		x.person = trimdup(nf > 4 ? f[4] : "");
		x.phone = trimdup(nf > 5 ? f[5] : "");
		x.email = trimdup(nf > 6 ? f[6] : "");
		char *nm0 = trimdup(f[3]);
		if (nm0 && th_utf8_nfc(nm0, strlen(nm0), &x.name, NULL) == TH_ENOMEM)
			x.name = NULL;
		free(nm0);
		x.line = line;
		x.parent = -1;
		if (!x.code || !x.parent_code || !x.kind || !x.name || !x.person || !x.phone || !x.email) {
			unit_free(&x);
			rc = TH_ENOMEM;
			goto fail;
		}
		int bad = 0;
		const char *why;
		if ((why = code_problem(x.code))) {
			ERR(TH_ESYNTAX, line, "unit code \"%s\" %s", x.code, why);
			bad = 1;
		}
		if (x.parent_code[0] && (why = code_problem(x.parent_code))) {
			ERR(TH_ESYNTAX, line, "parent code \"%s\" %s", x.parent_code, why);
			bad = 1;
		}
		if ((why = code_problem(x.kind))) {
			ERR(TH_ESYNTAX, line, "unit kind \"%s\" %s", x.kind, why);
			bad = 1;
		}
		if (!x.name[0]) {
			ERR(TH_EMISSING, line, "unit %s has no name", x.code);
			bad = 1;
		}
		if (bad) {
			unit_free(&x);
		} else if (add_unit(u, &x)) {
			unit_free(&x);
			rc = TH_ENOMEM;
			goto fail;
		}
	}
	if (!version_line)
		ERR(TH_EMISSING, 1, "missing \"@version ID\" line (e.g. @version hanoi-2021)");
	if (!effective_line)
		ERR(TH_EMISSING, 1, "missing \"@effective yyyy-mm-dd\" line");
	if (!seen_header)
		ERR(TH_EMISSING, line ? line : 1, "no header line \"code<TAB>parent<TAB>kind<TAB>name\"");
	/* index, duplicates */
	if ((rc = build_hash(u)))
		goto fail;
	for (size_t i = 0; i < u->n; i++) {
		size_t h = th_fnv1a_str(u->u[i].code) & (u->hcap - 1);
		int dup = 0;
		while (u->hash[h] >= 0) {
			if (strcmp(u->u[u->hash[h]].code, u->u[i].code) == 0) {
				ERR(TH_EDUPKEY, u->u[i].line, "duplicate unit code %s (first at line %ld)",
				    u->u[i].code, u->u[u->hash[h]].line);
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
				ERR(TH_ESYNTAX, x->line,
				    "second root %s (the root is %s at line %ld): a file has one unit with an empty parent",
				    x->code, u->u[root].code, u->u[root].line);
			else
				root = (long)i;
			continue;
		}
		long pi = th_units_find(u, x->parent_code);
		if (pi < 0)
			ERR(TH_EPARENT, x->line, "unit %s: unknown parent %s", x->code, x->parent_code);
		else if ((size_t)pi == i)
			ERR(TH_ECYCLE, x->line, "unit %s is its own parent", x->code);
		else
			x->parent = pi;
	}
	if (u->n == 0)
		ERR(TH_EMISSING, line ? line : 1, "no units");
	else if (root < 0)
		ERR(TH_ESYNTAX, u->u[0].line, "no root unit (exactly one unit must have an empty parent)");
	if (root >= 0) {
		u->root = (size_t)root;
		size_t ce = compute_depths(u, nm, diag);
		if (ce == (size_t)-1) {
			rc = TH_ENOMEM;
			goto fail;
		}
		if (ce) {
			errs += ce;
			first = first ? first : TH_ECYCLE;
		}
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
	rc = first ? first : TH_ESYNTAX;
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
		return th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot open: %s", strerror(errno));
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

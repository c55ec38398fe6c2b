/* th_xlsx.c -- .xlsx workbooks to reports: libzip + expat, streaming
 * (th_xlsx.h; layout accepted: schema/APPENDIX-FILES.md). */
#include "th_xlsx.h"
#include "th_file.h"
#include "th_xpart.h"

#include <ctype.h>
#include <expat.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

#define MAX_SHEETS 1024
#define MAX_XF 65536
#define MAX_ROW_BYTES (16u << 20)
#define MAX_ROW 1048576L
#define MAX_COL 16384L
#define MAX_FORMULA 200

/* --- the workbook ------------------------------------------------------------------- */

typedef struct {
	char *name, *rid, *path;
	int hidden;
} sheetinfo;

typedef struct {
	char *id, *type, *target;
} rel;

typedef struct {
	th_xzip zip;              /* the archive: its name in messages, inflated bytes */
	th_diag *diag;            /* workbook-level problems */
	int date1904;
	sheetinfo *sheets;
	size_t n_sheets;
	rel *rels;                /* of the part being resolved */
	size_t n_rels;
	/* styles: which cell formats show a date */
	long *fmt_id;             /* custom number formats that show a date */
	size_t n_fmt;
	uint8_t *xf_date;
	size_t n_xf;
	/* shared strings: offsets into one buffer; bad = not UTF-8 / control */
	char *sst;
	size_t sst_len, sst_cap;
	uint32_t *sst_off;
	uint8_t *sst_bad;
	size_t n_sst, sst_ocap;
} xlsx;

/* --- relationships, workbook, styles ------------------------------------------- */

static void free_rels(xlsx *x)
{
	for (size_t i = 0; i < x->n_rels; i++) {
		free(x->rels[i].id);
		free(x->rels[i].type);
		free(x->rels[i].target);
	}
	free(x->rels);
	x->rels = NULL;
	x->n_rels = 0;
}

static void rels_start(th_xpart *p, const char *name, const char **a)
{
	xlsx *x = p->owner;
	if (strcmp(name, "Relationship") != 0)
		return;
	const char *id = th_xpart_attr(a, "Id", 0), *type = th_xpart_attr(a, "Type", 0);
	const char *target = th_xpart_attr(a, "Target", 0), *mode = th_xpart_attr(a, "TargetMode", 0);
	if (!id || !type || !target || (mode && strcmp(mode, "External") == 0))
		return;
	if (x->n_rels >= TH_XLSX_MAX_PARTS) {
		th_xpart_fail(p, TH_ETOOBIG, "more than %u relationships: refused", TH_XLSX_MAX_PARTS);
		return;
	}
	rel *nr = realloc(x->rels, (x->n_rels + 1) * sizeof *nr);
	if (!nr) {
		th_xpart_nomem(p);
		return;
	}
	x->rels = nr;
	rel *r = &x->rels[x->n_rels];
	r->id = strdup(id);
	r->type = strdup(type);
	r->target = strdup(target);
	x->n_rels++;
	if (!r->id || !r->type || !r->target)
		th_xpart_nomem(p);
}

/* The target of the first relationship of a type ending in "/kind", or of id. */
static const rel *find_rel(const xlsx *x, const char *kind, const char *id)
{
	size_t kl = kind ? strlen(kind) : 0;
	for (size_t i = 0; i < x->n_rels; i++) {
		const rel *r = &x->rels[i];
		if (id ? strcmp(r->id, id) == 0
		       : (strlen(r->type) > kl && r->type[strlen(r->type) - kl - 1] == '/' &&
		          strcmp(r->type + strlen(r->type) - kl, kind) == 0))
			return r;
	}
	return NULL;
}

static int read_rels(xlsx *x, const char *path)
{
	free_rels(x);
	th_xpart p = {0};
	p.start = rels_start;
	return th_xpart_run(&x->zip, x, path, x->diag, &p);
}

static void workbook_start(th_xpart *p, const char *name, const char **a)
{
	xlsx *x = p->owner;
	if (strcmp(name, "workbookPr") == 0) {
		const char *v = th_xpart_attr(a, "date1904", 0);
		x->date1904 = v && (strcmp(v, "1") == 0 || strcmp(v, "true") == 0);
	} else if (strcmp(name, "sheet") == 0) {
		const char *nm = th_xpart_attr(a, "name", 0), *rid = th_xpart_attr(a, "id", 1);
		const char *state = th_xpart_attr(a, "state", 0);
		if (!nm || !rid)
			return;
		if (x->n_sheets >= MAX_SHEETS) {
			th_xpart_fail(p, TH_ETOOBIG, "more than %d sheets: refused", MAX_SHEETS);
			return;
		}
		sheetinfo *ns = realloc(x->sheets, (x->n_sheets + 1) * sizeof *ns);
		if (!ns) {
			th_xpart_nomem(p);
			return;
		}
		x->sheets = ns;
		sheetinfo *s = &x->sheets[x->n_sheets++];
		s->name = strdup(nm);
		s->rid = strdup(rid);
		s->path = NULL;
		s->hidden = state && strcmp(state, "visible") != 0;
		if (!s->name || !s->rid)
			th_xpart_nomem(p);
	}
}

/* A custom number format shows a date when it has a day or a year outside
 * quoted text, [brackets] and escaped characters. */
static int format_is_date(const char *f)
{
	for (const char *p = f; *p; p++) {
		if (*p == '"') {
			p = strchr(p + 1, '"');
			if (!p)
				return 0;
		} else if (*p == '[') {
			p = strchr(p + 1, ']');
			if (!p)
				return 0;
		} else if (*p == '\\' || *p == '_' || *p == '*') {
			if (!*++p)
				return 0;
		} else if (*p == 'd' || *p == 'D' || *p == 'y' || *p == 'Y') {
			return 1;
		}
	}
	return 0;
}

static int builtin_is_date(long id)
{
	return (id >= 14 && id <= 17) || id == 22 || (id >= 27 && id <= 36) || (id >= 50 && id <= 58);
}

typedef struct {
	int in_numfmts, in_cellxfs;
} styles_ctx;

static void styles_start(th_xpart *p, const char *name, const char **a)
{
	xlsx *x = p->owner;
	styles_ctx *c = p->ud;
	if (strcmp(name, "numFmts") == 0) {
		c->in_numfmts = 1;
	} else if (strcmp(name, "cellXfs") == 0) {
		c->in_cellxfs = 1;
	} else if (c->in_numfmts && strcmp(name, "numFmt") == 0) {
		const char *id = th_xpart_attr(a, "numFmtId", 0), *code = th_xpart_attr(a, "formatCode", 0);
		if (!id || !code || !format_is_date(code))
			return;
		if (x->n_fmt >= MAX_XF) {
			th_xpart_fail(p, TH_ETOOBIG, "more than %d number formats: refused", MAX_XF);
			return;
		}
		long *nf = realloc(x->fmt_id, (x->n_fmt + 1) * sizeof *nf);
		if (!nf) {
			th_xpart_nomem(p);
			return;
		}
		x->fmt_id = nf;
		x->fmt_id[x->n_fmt++] = strtol(id, NULL, 10);
	} else if (c->in_cellxfs && strcmp(name, "xf") == 0) {
		if (x->n_xf >= MAX_XF) {
			th_xpart_fail(p, TH_ETOOBIG, "more than %d cell formats: refused", MAX_XF);
			return;
		}
		uint8_t *nx = realloc(x->xf_date, x->n_xf + 1);
		if (!nx) {
			th_xpart_nomem(p);
			return;
		}
		x->xf_date = nx;
		const char *v = th_xpart_attr(a, "numFmtId", 0);
		long id = v ? strtol(v, NULL, 10) : 0;
		int date = builtin_is_date(id);
		for (size_t i = 0; i < x->n_fmt && !date; i++)
			date = x->fmt_id[i] == id;
		x->xf_date[x->n_xf++] = (uint8_t)date;
	}
}

static void styles_end(th_xpart *p, const char *name)
{
	styles_ctx *c = p->ud;
	if (strcmp(name, "numFmts") == 0)
		c->in_numfmts = 0;
	else if (strcmp(name, "cellXfs") == 0)
		c->in_cellxfs = 0;
}

/* --- shared strings ----------------------------------------------------------------- */

typedef struct {
	int in_si, in_t, in_rph;
} sst_ctx;

static int sst_add(xlsx *x, th_xpart *p)
{
	static char empty[1];
	if (x->n_sst >= TH_XLSX_MAX_STRINGS) {
		th_xpart_fail(p, TH_ETOOBIG, "more than %u shared strings: refused", TH_XLSX_MAX_STRINGS);
		return -1;
	}
	if (p->too_long) {
		th_xpart_fail(p, TH_ETOOBIG, "shared string %zu is longer than %u MiB: refused", x->n_sst,
		     TH_XLSX_MAX_CELL >> 20);
		return -1;
	}
	if (x->n_sst == x->sst_ocap) {
		size_t cap = x->sst_ocap ? x->sst_ocap * 2 : 256;
		uint32_t *no = realloc(x->sst_off, cap * sizeof *no);
		if (no)
			x->sst_off = no;
		uint8_t *nb = no ? realloc(x->sst_bad, cap) : NULL;
		if (!nb) {
			th_xpart_nomem(p);
			return -1;
		}
		x->sst_bad = nb;
		x->sst_ocap = cap;
	}
	char *t = empty;
	size_t len = 0;
	int owned = 0, kind = TH_SHEET_TEXT;
	if (p->text) {
		len = p->tlen;
		kind = th_xpart_clean_text(p->text, &len, &t, &owned);
		if (kind == TH_ENOMEM) {
			th_xpart_nomem(p);
			return -1;
		}
		if (kind == TH_SHEET_INVALID)
			len = 0;
	}
	if (x->sst_len + len + 1 > TH_XLSX_MAX_STRING_BYTES) {
		if (owned)
			free(t);
		th_xpart_fail(p, TH_ETOOBIG, "more than %u MiB of shared strings: refused",
		     TH_XLSX_MAX_STRING_BYTES >> 20);
		return -1;
	}
	if (x->sst_len + len + 1 > x->sst_cap) {
		size_t cap = x->sst_cap ? x->sst_cap : 65536;
		while (cap < x->sst_len + len + 1)
			cap *= 2;
		char *ns = realloc(x->sst, cap);
		if (!ns) {
			if (owned)
				free(t);
			th_xpart_nomem(p);
			return -1;
		}
		x->sst = ns;
		x->sst_cap = cap;
	}
	memcpy(x->sst + x->sst_len, t, len);
	x->sst[x->sst_len + len] = 0;
	x->sst_off[x->n_sst] = (uint32_t)x->sst_len;
	x->sst_bad[x->n_sst] = kind == TH_SHEET_INVALID;
	x->n_sst++;
	x->sst_len += len + 1;
	if (owned)
		free(t);
	return 0;
}

static void sst_start(th_xpart *p, const char *name, const char **a)
{
	sst_ctx *c = p->ud;
	if (strcmp(name, "si") == 0) {
		c->in_si = 1;
		th_xpart_text_reset(p);
	} else if (c->in_si && strcmp(name, "rPh") == 0) {
		c->in_rph = 1;
	} else if (c->in_si && !c->in_rph && strcmp(name, "t") == 0) {
		c->in_t = 1;
		p->collect = 1;
	}
}

static void sst_end(th_xpart *p, const char *name)
{
	sst_ctx *c = p->ud;
	if (strcmp(name, "t") == 0) {
		c->in_t = 0;
		p->collect = 0;
	} else if (strcmp(name, "rPh") == 0) {
		c->in_rph = 0;
	} else if (strcmp(name, "si") == 0 && c->in_si) {
		c->in_si = 0;
		sst_add(p->owner, p);
	}
}

/* --- worksheets ----------------------------------------------------------------------- */

typedef int (*row_fn)(void *ud, long row, const th_sheet_cell *cells, size_t n);

typedef struct {
	const char *sheet;          /* its name, for places */
	row_fn on_row;
	void *row_ud;
	int in_data;
	long row, last_row, last_col;
	/* the cell being read */
	int in_cell, in_v, in_is, in_rph, in_f;
	long col;
	char t[12];
	long style;
	int has_v, has_is, has_f;
	char formula[MAX_FORMULA + 1];
	size_t flen;
	/* the row being read: cells with texts in the arena (offsets) or shared */
	th_sheet_cell *cells;
	size_t *off;                /* arena offset, or (size_t)-1: cells[i].text is shared */
	size_t n, cap;
	char *arena;
	size_t alen, acap;
	int rc;                     /* from on_row */
} ws_ctx;

static void where_cell(th_xpart *p, ws_ctx *w, long col, char *buf, size_t cap)
{
	(void)p;
	th_sheet_cell_name(w->sheet, w->row, col, buf, cap);
}

/* Parses "D7" into a 0-based column and the row; 0 or -1. */
static int parse_ref(const char *r, long *col, long *row)
{
	long c = 0, n = 0;
	const char *p = r;
	while (*p >= 'A' && *p <= 'Z' && p - r < 4)
		c = c * 26 + (*p++ - 'A' + 1);
	if (c == 0 || !isdigit((unsigned char)*p))
		return -1;
	while (isdigit((unsigned char)*p) && n <= MAX_ROW * 10)
		n = n * 10 + (*p++ - '0');
	if (*p)
		return -1;
	*col = c - 1;
	*row = n;
	return 0;
}

static int arena_put(th_xpart *p, ws_ctx *w, const char *t, size_t len, size_t *off)
{
	if (w->alen + len + 1 > MAX_ROW_BYTES) {
		char at[200];
		where_cell(p, w, -1, at, sizeof at);
		th_xpart_fail_at(p, TH_ETOOBIG, at, "the row holds more than %u MiB of text: refused",
		        MAX_ROW_BYTES >> 20);
		return -1;
	}
	if (w->alen + len + 1 > w->acap) {
		size_t cap = w->acap ? w->acap : 4096;
		while (cap < w->alen + len + 1)
			cap *= 2;
		char *na = realloc(w->arena, cap);
		if (!na) {
			th_xpart_nomem(p);
			return -1;
		}
		w->arena = na;
		w->acap = cap;
	}
	memcpy(w->arena + w->alen, t, len);
	w->arena[w->alen + len] = 0;
	*off = w->alen;
	w->alen += len + 1;
	return 0;
}

/* Appends the cell just read to the row. */
static void add_cell(th_xpart *p, ws_ctx *w, int kind, int date, const char *shared, const char *t,
                     size_t len)
{
	if (w->n == w->cap) {
		size_t cap = w->cap ? w->cap * 2 : 64;
		th_sheet_cell *nc = realloc(w->cells, cap * sizeof *nc);
		size_t *no = nc ? realloc(w->off, cap * sizeof *no) : NULL;
		if (nc)
			w->cells = nc;
		if (!no) {
			th_xpart_nomem(p);
			return;
		}
		w->off = no;
		w->cap = cap;
	}
	th_sheet_cell *c = &w->cells[w->n];
	c->col = (uint32_t)w->col;
	c->kind = (uint8_t)kind;
	c->date = (uint8_t)date;
	if (shared) {
		c->text = shared;
		w->off[w->n] = (size_t)-1;
	} else {
		c->text = NULL;
		if (arena_put(p, w, t, len, &w->off[w->n]) < 0)
			return;
	}
	w->n++;
}

static void cell_start(th_xpart *p, ws_ctx *w, const char **a)
{
	const char *r = th_xpart_attr(a, "r", 0), *t = th_xpart_attr(a, "t", 0), *s = th_xpart_attr(a, "s", 0);
	long col = w->last_col + 1, row = w->row;
	if (r && parse_ref(r, &col, &row) < 0) {
		char at[200];
		where_cell(p, w, -1, at, sizeof at);
		th_xpart_fail_at(p, TH_ESYNTAX, at, "cell reference \"%.20s\" is not a cell name like D7", r);
		return;
	}
	if (col >= MAX_COL || row > MAX_ROW) {
		char at[200];
		th_sheet_cell_name(w->sheet, row, -1, at, sizeof at);
		th_xpart_fail_at(p, TH_ERANGE, at, "cell %.20s is beyond XFD1048576, the last cell a sheet has: "
		        "refused", r ? r : "");
		return;
	}
	if (row != w->row) {
		char at[200];
		where_cell(p, w, -1, at, sizeof at);
		th_xpart_fail_at(p, TH_ESYNTAX, at, "cell %.20s is written inside row %ld: refused", r ? r : "",
		        w->row);
		return;
	}
	if (col <= w->last_col) {
		char at[200];
		where_cell(p, w, col, at, sizeof at);
		th_xpart_fail_at(p, TH_ESYNTAX, at, "cells of the row are out of order: refused");
		return;
	}
	w->col = col;
	w->last_col = col;
	size_t tl = t ? strlen(t) : 1;
	if (tl >= sizeof w->t)
		tl = sizeof w->t - 1;
	memcpy(w->t, t ? t : "n", tl);
	w->t[tl] = 0;
	w->style = s ? strtol(s, NULL, 10) : 0;
	w->in_cell = 1;
	w->has_v = w->has_is = w->has_f = 0;
	w->flen = 0;
	th_xpart_text_reset(p);
}

static void cell_end(th_xpart *p, ws_ctx *w)
{
	xlsx *x = p->owner;
	char at[200];
	w->in_cell = 0;
	p->collect = 0;
	if (p->too_long) {
		where_cell(p, w, w->col, at, sizeof at);
		th_xpart_fail_at(p, TH_ETOOBIG, at, "the cell holds more than %u MiB of text: refused",
		        TH_XLSX_MAX_CELL >> 20);
		return;
	}
	char *t = p->text ? p->text : "";
	size_t len = p->tlen;
	const char *type = w->t;
	if (!w->has_v && !w->has_is) {
		if (w->has_f) {
			w->formula[w->flen] = 0;
			add_cell(p, w, TH_SHEET_NOVALUE, 0, NULL, w->formula, w->flen);
		}
		return;   /* an empty (formatted) cell */
	}
	if (strcmp(type, "s") == 0) {
		char *end;
		unsigned long i = strtoul(t, &end, 10);
		if (end == t || *end || i >= x->n_sst) {
			where_cell(p, w, w->col, at, sizeof at);
			th_xpart_fail_at(p, TH_ESYNTAX, at, "refers to shared string \"%.20s\" of %zu: refused", t,
			        x->n_sst);
			return;
		}
		add_cell(p, w, x->sst_bad[i] ? TH_SHEET_INVALID : TH_SHEET_TEXT, 0, x->sst + x->sst_off[i],
		         NULL, 0);
	} else if (strcmp(type, "inlineStr") == 0 || strcmp(type, "str") == 0) {
		char *ct;
		int owned;
		int k = th_xpart_clean_text(t, &len, &ct, &owned);
		if (k == TH_ENOMEM) {
			th_xpart_nomem(p);
			return;
		}
		add_cell(p, w, k, 0, NULL, k == TH_SHEET_TEXT ? ct : "", k == TH_SHEET_TEXT ? len : 0);
		if (owned)
			free(ct);
	} else if (strcmp(type, "b") == 0) {
		if (strcmp(t, "0") != 0 && strcmp(t, "1") != 0) {
			where_cell(p, w, w->col, at, sizeof at);
			th_xpart_fail_at(p, TH_ESYNTAX, at, "boolean cell holds \"%.20s\", not 0 or 1", t);
			return;
		}
		add_cell(p, w, TH_SHEET_BOOL, 0, NULL, t, len);
	} else if (strcmp(type, "e") == 0) {
		add_cell(p, w, TH_SHEET_ERROR, 0, NULL, t, len > 40 ? 40 : len);
	} else if (strcmp(type, "d") == 0) {
		/* an ISO 8601 date: the date part, when there is no time of day */
		char *tp = strchr(t, 'T');
		if (tp && strspn(tp + 1, "0:.Z") == strlen(tp + 1))
			*tp = 0;
		add_cell(p, w, TH_SHEET_TEXT, 0, NULL, t, strlen(t));
	} else if (strcmp(type, "n") == 0) {
		size_t b = 0;
		while (t[b] == ' ')
			b++;
		while (len > b && t[len - 1] == ' ')
			len--;
		int date = w->style >= 0 && (size_t)w->style < x->n_xf && x->xf_date[w->style];
		add_cell(p, w, TH_SHEET_NUMBER, date, NULL, t + b, len - b);
	} else {
		where_cell(p, w, w->col, at, sizeof at);
		th_xpart_fail_at(p, TH_ESYNTAX, at, "unknown cell type \"%.10s\"", type);
	}
}

static void ws_start(th_xpart *p, const char *name, const char **a)
{
	ws_ctx *w = p->ud;
	if (strcmp(name, "sheetData") == 0) {
		w->in_data = 1;
		return;
	}
	if (!w->in_data)
		return;
	if (w->in_cell) {
		if (strcmp(name, "v") == 0) {
			w->in_v = 1;
			w->has_v = 1;
			p->collect = 1;
		} else if (strcmp(name, "is") == 0) {
			w->in_is = 1;
			w->has_is = 1;
		} else if (w->in_is && strcmp(name, "rPh") == 0) {
			w->in_rph = 1;
		} else if (w->in_is && !w->in_rph && strcmp(name, "t") == 0) {
			p->collect = 1;
		} else if (strcmp(name, "f") == 0) {
			w->in_f = 1;
			w->has_f = 1;
		}
		return;
	}
	if (strcmp(name, "row") == 0) {
		const char *r = th_xpart_attr(a, "r", 0);
		long n = w->last_row + 1;
		if (r) {
			char *end;
			n = strtol(r, &end, 10);
			if (end == r || *end || n < 1) {
				char at[200];
				th_sheet_cell_name(w->sheet, 0, -1, at, sizeof at);
				th_xpart_fail_at(p, TH_ESYNTAX, at, "row number \"%.20s\" is not a number", r);
				return;
			}
		}
		if (n > MAX_ROW) {
			char at[200];
			th_sheet_cell_name(w->sheet, 0, -1, at, sizeof at);
			th_xpart_fail_at(p, TH_ERANGE, at, "row %ld is beyond row %ld, the last a sheet has: refused",
			        n, MAX_ROW);
			return;
		}
		if (n <= w->last_row) {
			char at[200];
			th_sheet_cell_name(w->sheet, n, -1, at, sizeof at);
			th_xpart_fail_at(p, TH_ESYNTAX, at, "rows are out of order (row %ld after row %ld): refused", n,
			        w->last_row);
			return;
		}
		w->row = n;
		w->last_col = -1;
		w->n = 0;
		w->alen = 0;
	} else if (strcmp(name, "c") == 0 && w->row > 0) {
		cell_start(p, w, a);
	}
}

static void ws_end(th_xpart *p, const char *name)
{
	ws_ctx *w = p->ud;
	if (!w->in_data)
		return;
	if (w->in_cell) {
		if (strcmp(name, "v") == 0) {
			w->in_v = 0;
			p->collect = 0;
		} else if (strcmp(name, "t") == 0) {
			p->collect = 0;
		} else if (strcmp(name, "rPh") == 0) {
			w->in_rph = 0;
		} else if (strcmp(name, "is") == 0) {
			w->in_is = 0;
		} else if (strcmp(name, "f") == 0) {
			w->in_f = 0;
		} else if (strcmp(name, "c") == 0) {
			cell_end(p, w);
		}
		return;
	}
	if (strcmp(name, "row") == 0 && w->row > 0) {
		for (size_t i = 0; i < w->n; i++)
			if (w->off[i] != (size_t)-1)
				w->cells[i].text = w->arena + w->off[i];
		int rc = w->on_row(w->row_ud, w->row, w->cells, w->n);
		if (rc) {
			w->rc = rc;
			th_xpart_nomem(p);
		}
		w->last_row = w->row;
		w->row = 0;
	} else if (strcmp(name, "sheetData") == 0) {
		w->in_data = 0;
	}
}

/* Formula text (for a formula without a saved value) is collected apart:
 * expat hands character data to one handler, so the formula is copied
 * from the cell's text when </f> ends. */
static void ws_end_wrap(th_xpart *p, const char *name)
{
	ws_ctx *w = p->ud;
	if (w->in_cell && w->in_f && strcmp(name, "f") == 0) {
		size_t n = p->tlen < MAX_FORMULA ? p->tlen : MAX_FORMULA;
		memcpy(w->formula, p->text ? p->text : "", n);
		w->flen = n;
		th_xpart_text_reset(p);
		p->collect = 0;
	}
	ws_end(p, name);
}

static void ws_start_wrap(th_xpart *p, const char *name, const char **a)
{
	ws_ctx *w = p->ud;
	ws_start(p, name, a);
	if (w->in_cell && w->in_f && strcmp(name, "f") == 0) {
		th_xpart_text_reset(p);
		p->collect = 1;
	}
}

/* Streams a worksheet's rows to on_row.  TH_OK or the problem's code. */
static int read_sheet(xlsx *x, const sheetinfo *si, th_diag *diag, row_fn on_row, void *ud)
{
	ws_ctx w = {0};
	w.sheet = si->name;
	w.on_row = on_row;
	w.row_ud = ud;
	th_xpart p = {0};
	p.start = ws_start_wrap;
	p.end = ws_end_wrap;
	p.ud = &w;
	p.tmax = TH_XLSX_MAX_CELL;
	int rc = th_xpart_run(&x->zip, x, si->path, diag, &p);
	if (rc == TH_ENOTFOUND)
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, x->zip.name, 0, 0, NULL,
		                 "sheet \"%s\" has no part %s in the archive (damaged workbook)", si->name,
		                 si->path);
	if (w.rc)
		rc = w.rc;
	free(w.cells);
	free(w.off);
	free(w.arena);
	return rc;
}

/* --- the template's hidden sheet ---------------------------------------------------------- */

typedef struct {
	char *key[32], *val[32];
	long row[32];
	size_t n;
	int nomem;
} kv_t;

static int kv_row(void *ud, long row, const th_sheet_cell *c, size_t n)
{
	kv_t *kv = ud;
	const char *k = NULL, *v = NULL;
	for (size_t i = 0; i < n; i++) {
		if (c[i].col == 0 && c[i].kind == TH_SHEET_TEXT)
			k = c[i].text;
		if (c[i].col == 1 && (c[i].kind == TH_SHEET_TEXT || c[i].kind == TH_SHEET_NUMBER))
			v = c[i].text;
	}
	if (!k || !v || kv->n >= 32)
		return TH_OK;
	kv->key[kv->n] = strdup(k);
	kv->val[kv->n] = strdup(v);
	kv->row[kv->n] = row;
	if (!kv->key[kv->n] || !kv->val[kv->n]) {
		free(kv->key[kv->n]);
		free(kv->val[kv->n]);
		return TH_ENOMEM;
	}
	kv->n++;
	return TH_OK;
}

static void kv_free(kv_t *kv)
{
	for (size_t i = 0; i < kv->n; i++) {
		free(kv->key[i]);
		free(kv->val[i]);
	}
	kv->n = 0;
}

static const char *kv_get(const kv_t *kv, const char *key)
{
	for (size_t i = 0; i < kv->n; i++)
		if (strcmp(kv->key[i], key) == 0)
			return kv->val[i];
	return NULL;
}

/* --- the whole workbook ----------------------------------------------------------------- */

static void xlsx_free(xlsx *x)
{
	for (size_t i = 0; i < x->n_sheets; i++) {
		free(x->sheets[i].name);
		free(x->sheets[i].rid);
		free(x->sheets[i].path);
	}
	free(x->sheets);
	free_rels(x);
	free(x->fmt_id);
	free(x->xf_date);
	free(x->sst);
	free(x->sst_off);
	free(x->sst_bad);
	if (x->zip.za)
		zip_discard(x->zip.za);
}

/* A ZIP that is not an .xlsx: say what it is. */
static int not_a_workbook(xlsx *x)
{
	if (th_xpart_member(&x->zip, "xl/workbook.bin") >= 0)
		return th_diag_add(x->diag, TH_SEV_ERROR, TH_EENCODING, x->zip.name, 0, 0, NULL,
		                   "is an Excel binary workbook (.xlsb); save it as .xlsx (Excel: File > "
		                   "Save As > Excel Workbook) or CSV UTF-8");
	zip_int64_t m = th_xpart_member(&x->zip, "mimetype");
	if (m >= 0) {
		char buf[80] = "";
		zip_file_t *zf = zip_fopen_index(x->zip.za, (zip_uint64_t)m, 0);
		if (zf) {
			zip_int64_t n = zip_fread(zf, buf, sizeof buf - 1);
			buf[n > 0 ? n : 0] = 0;
			zip_fclose(zf);
		}
		if (strstr(buf, "opendocument.spreadsheet"))
			return th_diag_add(x->diag, TH_SEV_ERROR, TH_EENCODING, x->zip.name, 0, 0, NULL,
			                   "is an OpenDocument spreadsheet (.ods); save it as .xlsx "
			                   "(LibreOffice: File > Save As > Excel 2007-365) or CSV UTF-8, or "
			                   "convert it with `libreoffice --headless --convert-to xlsx`");
	}
	if (th_xpart_member(&x->zip, "word/document.xml") >= 0)
		return th_diag_add(x->diag, TH_SEV_ERROR, TH_EENCODING, x->zip.name, 0, 0, NULL,
		                   "is a Word document, not a spreadsheet: fill in the appendix's .xlsx "
		                   "template or a CSV file");
	return th_diag_add(x->diag, TH_SEV_ERROR, TH_EENCODING, x->zip.name, 0, 0, NULL,
	                   "is a ZIP archive but not an Excel workbook (it has no xl/workbook.xml)");
}

/* Finds and reads the workbook's structure: sheets, date system, styles,
 * shared strings. */
static int load_workbook(xlsx *x)
{
	int rc = read_rels(x, "_rels/.rels");
	if (rc && rc != TH_ENOTFOUND)
		return rc;
	const rel *r = rc ? NULL : find_rel(x, "officeDocument", NULL);
	char *wb = r ? th_xpart_resolve("", r->target) : strdup("xl/workbook.xml");
	if (!wb)
		return TH_ENOMEM;
	if (th_xpart_member(&x->zip, wb) < 0) {
		free(wb);
		return not_a_workbook(x);
	}
	th_xpart p = {0};
	p.start = workbook_start;
	rc = th_xpart_run(&x->zip, x, wb, x->diag, &p);
	char *relpath = NULL;
	if (rc == TH_OK) {
		const char *slash = strrchr(wb, '/');
		size_t dl = slash ? (size_t)(slash - wb) + 1 : 0;
		if (asprintf(&relpath, "%.*s_rels/%s.rels", (int)dl, wb, wb + dl) < 0)
			relpath = NULL;
		rc = relpath ? read_rels(x, relpath) : TH_ENOMEM;
		if (rc == TH_ENOTFOUND)
			rc = th_diag_add(x->diag, TH_SEV_ERROR, TH_ESYNTAX, x->zip.name, 0, 0, NULL,
			                 "has no %s (damaged workbook)", relpath);
	}
	free(relpath);
	for (size_t i = 0; rc == TH_OK && i < x->n_sheets; i++) {
		const rel *sr = find_rel(x, NULL, x->sheets[i].rid);
		x->sheets[i].path = sr ? th_xpart_resolve(wb, sr->target) : NULL;
		if (!x->sheets[i].path)
			x->sheets[i].hidden = 2;   /* a chart sheet or a broken link: never read */
	}
	char *styles = NULL, *sst = NULL;
	if (rc == TH_OK) {
		const rel *st = find_rel(x, "styles", NULL), *ss = find_rel(x, "sharedStrings", NULL);
		styles = st ? th_xpart_resolve(wb, st->target) : NULL;
		sst = ss ? th_xpart_resolve(wb, ss->target) : NULL;
	}
	if (rc == TH_OK && styles) {
		styles_ctx sc = {0};
		th_xpart ps = {0};
		ps.start = styles_start;
		ps.end = styles_end;
		ps.ud = &sc;
		rc = th_xpart_run(&x->zip, x, styles, x->diag, &ps);
		if (rc == TH_ENOTFOUND)
			rc = TH_OK;
	}
	if (rc == TH_OK && sst) {
		sst_ctx sc = {0};
		th_xpart ps = {0};
		ps.start = sst_start;
		ps.end = sst_end;
		ps.ud = &sc;
		ps.tmax = TH_XLSX_MAX_CELL;
		rc = th_xpart_run(&x->zip, x, sst, x->diag, &ps);
		if (rc == TH_ENOTFOUND)
			rc = TH_OK;
	}
	free(styles);
	free(sst);
	free(wb);
	return rc;
}

static int sheet_row(void *ud, long row, const th_sheet_cell *cells, size_t n)
{
	return th_sheet_row(ud, row, cells, n);
}

/* A table reader for sheet i, with the workbook's metadata. */
static th_sheet *open_table(xlsx *x, size_t i, const th_defset *defs, const th_read_opts *opts,
                            const kv_t *meta, const char *meta_sheet)
{
	th_sheet *s = th_sheet_new(x->zip.name, x->sheets[i].name, defs, opts);
	if (!s)
		return NULL;
	th_sheet_set_date1904(s, x->date1904);
	for (size_t k = 0; k < meta->n; k++) {
		char where[200];
		th_sheet_cell_name(meta_sheet, meta->row[k], 1, where, sizeof where);
		if (th_sheet_set_meta(s, meta->key[k], meta->val[k], where) != TH_OK) {
			th_sheet_destroy(&s);
			return NULL;
		}
	}
	return s;
}

int th_xlsx_parse_reports(const void *data, size_t len, const char *name, const th_defset *defs,
                          const th_read_opts *opts, th_report ***out, size_t *n, th_diag *diag)
{
	xlsx x = {0};
	kv_t meta = {0};
	th_sheet *s = NULL, *first = NULL;
	int rc;
	x.zip.name = name ? name : "input.xlsx";
	x.diag = diag;
	th_file_kind kind = th_file_sniff(data, len);
	if (kind == TH_FILE_TEXT)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, x.zip.name, 0, 0, NULL,
		                   "is not an .xlsx workbook (it does not start as a ZIP archive does)");
	if (kind != TH_FILE_ZIP)
		return th_file_refuse(kind, x.zip.name, diag);
	if (len > TH_XLSX_MAX_FILE)
		return th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, x.zip.name, 0, 0, NULL,
		                   "file larger than %u MiB", TH_XLSX_MAX_FILE >> 20);
	if ((rc = th_xpart_check_names(data, len, x.zip.name, diag)))
		return rc;
	zip_error_t ze;
	zip_error_init(&ze);
	zip_source_t *src = zip_source_buffer_create(data, len, 0, &ze);
	if (src) {
		x.zip.za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &ze);
		if (!x.zip.za)
			zip_source_free(src);
	}
	if (!x.zip.za) {
		int zr = zip_error_code_zip(&ze);
		rc = th_diag_add(diag, TH_SEV_ERROR, zr == ZIP_ER_MEMORY ? TH_ENOMEM : TH_ESYNTAX, x.zip.name,
		                 0, 0, NULL, zr == ZIP_ER_EXISTS
		                 ? "two parts of the archive have the same name: refused"
		                 : "is not a readable ZIP archive (%s)", zip_error_strerror(&ze));
		zip_error_fini(&ze);
		return rc;
	}
	zip_error_fini(&ze);
	if ((rc = load_workbook(&x)))
		goto out;
	/* the template's own record */
	const char *meta_sheet = NULL;
	for (size_t i = 0; i < x.n_sheets; i++)
		if (strcmp(x.sheets[i].name, TH_XLSX_META_SHEET) == 0 && x.sheets[i].path) {
			meta_sheet = x.sheets[i].name;
			if ((rc = read_sheet(&x, &x.sheets[i], diag, kv_row, &meta)))
				goto out;
			break;
		}
	const char *fmt = kv_get(&meta, "format");
	if (fmt && strtol(fmt + strcspn(fmt, "0123456789"), NULL, 10) > TH_XLSX_TEMPLATE_FORMAT) {
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_EINVAL, x.zip.name, 0, 0, TH_XLSX_META_SHEET,
		                 "was made by a newer tonghop (template format \"%s\"; this one reads "
		                 "format %d): update tonghop", fmt, TH_XLSX_TEMPLATE_FORMAT);
		goto out;
	}
	const char *want = kv_get(&meta, "sheet");
	size_t tried = 0;
	char names[300] = "";
	size_t no = 0;
	for (size_t i = 0; i < x.n_sheets; i++) {
		const sheetinfo *si = &x.sheets[i];
		if (want ? strcmp(si->name, want) != 0 : (si->hidden || si->name == meta_sheet))
			continue;
		if (!si->path) {
			rc = th_diag_add(diag, TH_SEV_ERROR, TH_ESYNTAX, x.zip.name, 0, 0, NULL,
			                 "sheet \"%s\" is not a worksheet", si->name);
			goto out;
		}
		if (!(s = open_table(&x, i, defs, opts, &meta, meta_sheet))) {
			rc = TH_ENOMEM;
			goto out;
		}
		rc = read_sheet(&x, si, th_sheet_diag(s), sheet_row, s);
		if (rc == TH_ENOMEM)
			goto out;
		tried++;
		if (no + 40 < sizeof names)
			no += (size_t)snprintf(names + no, sizeof names - no, "%s\"%s\"", no ? ", " : "",
			                       si->name);
		if (want || th_sheet_has_header(s) || th_diag_errors(th_sheet_diag(s)))
			break;
		if (!first)
			first = s;
		else
			th_sheet_destroy(&s);
		s = NULL;
	}
	if (!s && want) {
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_EMISSING, x.zip.name, 0, 0, NULL,
		                 "the template's hidden sheet %s names the data sheet \"%s\", which is not "
		                 "in the workbook: give the sheet its name back", TH_XLSX_META_SHEET, want);
		goto out;
	}
	if (!s && !first) {
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_EMISSING, x.zip.name, 0, 0, NULL,
		                 "has no visible worksheet to read");
		goto out;
	}
	if (!s) {
		/* no sheet has a header: the first one says why */
		s = first;
		first = NULL;
		if (tried > 1)
			th_diag_add(th_sheet_diag(s), TH_SEV_ERROR, TH_EMISSING, x.zip.name, 0, 0, NULL,
			            "none of the sheets %s has a header row naming the appendix's columns",
			            names);
	}
	rc = th_sheet_finish(s, out, n, diag);
out:
	th_sheet_destroy(&s);
	th_sheet_destroy(&first);
	kv_free(&meta);
	xlsx_free(&x);
	return rc;
}

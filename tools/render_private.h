/* render_private.h -- what the renderer files (render*.c) share; nothing
 * outside them includes it. */
#ifndef TH_RENDER_PRIVATE_H
#define TH_RENDER_PRIVATE_H

#include <stdio.h>
#include "th_render.h"

/* The aligned table (with its titles and legend), JSON array, XLSX workbook of t.
 * 0 or TH_E* (why set by xlsx). */
int th_render_text(const th_table *t, FILE *f);
int th_render_json(const th_table *t, FILE *f);
int th_render_xlsx(const th_table *t, const th_render_opts *o, char *why, size_t cap);
/* Display width of text as the aligned table writes it (line breaks and tabs
 * count as blanks); 0 for NULL. */
size_t th_render_width(const char *s);

#endif

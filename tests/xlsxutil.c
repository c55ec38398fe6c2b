/* xlsxutil.c -- hand-made .xlsx files for the reader's tests (xlsxutil.h). */
#include "xlsxutil.h"
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zip.h>

int xu_zip(const char *path, const xu_part *parts, size_t n)
{
	int err = 0;
	remove(path);
	zip_t *z = zip_open(path, ZIP_CREATE | ZIP_TRUNCATE, &err);
	if (!z)
		return -1;
	for (size_t i = 0; i < n; i++) {
		size_t len = parts[i].len ? parts[i].len : strlen(parts[i].data);
		zip_source_t *s = zip_source_buffer(z, parts[i].data, len, 0);
		if (!s || zip_file_add(z, parts[i].name, s, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE) < 0) {
			zip_source_free(s);
			zip_discard(z);
			return -1;
		}
	}
	return zip_close(z) == 0 ? 0 : -1;
}

static char *cat(char *a, const char *b)
{
	size_t la = a ? strlen(a) : 0, lb = strlen(b);
	char *r = realloc(a, la + lb + 1);
	if (!r)
		abort();
	memcpy(r + la, b, lb + 1);
	return r;
}

int xu_book_write(const char *path, const xu_book *b)
{
	char buf[1024];
	char *wb = cat(NULL, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n"
	                     "<workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" "
	                     "xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\">");
	snprintf(buf, sizeof buf, "<workbookPr%s/><sheets>", b->date1904 ? " date1904=\"1\"" : "");
	wb = cat(wb, buf);
	char *rels = cat(NULL, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Relationships "
	                       "xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">");
	char *sheets[64];
	char names[64][40];
	size_t n = b->n_sheets < 64 ? b->n_sheets : 64;
	for (size_t i = 0; i < n; i++) {
		snprintf(buf, sizeof buf, "<sheet name=\"%s\" sheetId=\"%zu\"%s%s%s r:id=\"rId%zu\"/>",
		         b->sheets[i].name, i + 1, b->sheets[i].state ? " state=\"" : "",
		         b->sheets[i].state ? b->sheets[i].state : "", b->sheets[i].state ? "\"" : "", i + 1);
		wb = cat(wb, buf);
		snprintf(buf, sizeof buf, "<Relationship Id=\"rId%zu\" Type=\"http://schemas.openxmlformats."
		         "org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet%zu.xml\"/>",
		         i + 1, i + 1);
		rels = cat(rels, buf);
		snprintf(names[i], sizeof names[i], "xl/worksheets/sheet%zu.xml", i + 1);
		sheets[i] = cat(NULL, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<worksheet "
		                      "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">"
		                      "<sheetData>");
		sheets[i] = cat(sheets[i], b->sheets[i].rows);
		sheets[i] = cat(sheets[i], "</sheetData></worksheet>");
	}
	wb = cat(wb, "</sheets></workbook>");
	rels = cat(rels, "<Relationship Id=\"rIdS\" Type=\"http://schemas.openxmlformats.org/"
	                 "officeDocument/2006/relationships/styles\" Target=\"styles.xml\"/>");
	if (b->sst)
		rels = cat(rels, "<Relationship Id=\"rIdT\" Type=\"http://schemas.openxmlformats.org/"
		                 "officeDocument/2006/relationships/sharedStrings\" Target=\"sharedStrings.xml\"/>");
	rels = cat(rels, "</Relationships>");
	char *styles = cat(NULL, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<styleSheet "
	                         "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">");
	if (b->numfmts) {
		styles = cat(styles, "<numFmts>");
		styles = cat(styles, b->numfmts);
		styles = cat(styles, "</numFmts>");
	}
	styles = cat(styles, "<cellStyleXfs count=\"1\"><xf numFmtId=\"14\"/></cellStyleXfs><cellXfs>");
	styles = cat(styles, b->xfs ? b->xfs : "<xf numFmtId=\"0\"/>");
	styles = cat(styles, "</cellXfs></styleSheet>");
	char *sst = NULL;
	if (b->sst) {
		sst = cat(NULL, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<sst "
		                "xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\">");
		sst = cat(sst, b->sst);
		sst = cat(sst, "</sst>");
	}
	xu_part *parts = malloc((8 + n + b->n_extra) * sizeof *parts);
	if (!parts)
		abort();
	size_t k = 0;
	parts[k++] = (xu_part){"[Content_Types].xml",
	                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Types xmlns=\"http://schemas."
	                       "openxmlformats.org/package/2006/content-types\"/>", 0};
	parts[k++] = (xu_part){"_rels/.rels",
	                       "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Relationships xmlns=\"http://"
	                       "schemas.openxmlformats.org/package/2006/relationships\"><Relationship "
	                       "Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/"
	                       "relationships/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>",
	                       0};
	parts[k++] = (xu_part){"xl/workbook.xml", wb, 0};
	parts[k++] = (xu_part){"xl/_rels/workbook.xml.rels", rels, 0};
	parts[k++] = (xu_part){"xl/styles.xml", styles, 0};
	if (sst)
		parts[k++] = (xu_part){"xl/sharedStrings.xml", sst, 0};
	for (size_t i = 0; i < n; i++)
		parts[k++] = (xu_part){names[i], sheets[i], 0};
	for (size_t i = 0; i < b->n_extra; i++)
		parts[k++] = b->extra[i];
	int rc = xu_zip(path, parts, k);
	free(parts);
	free(wb);
	free(rels);
	free(styles);
	free(sst);
	for (size_t i = 0; i < n; i++)
		free(sheets[i]);
	return rc;
}

int xu_patch(const char *path, const void *from, const void *to, size_t n)
{
	size_t len;
	char *d = tu_read_file(path, &len);
	if (!d)
		return -1;
	int k = 0;
	for (size_t i = 0; i + n <= len; i++)
		if (memcmp(d + i, from, n) == 0) {
			memcpy(d + i, to, n);
			k++;
			i += n - 1;
		}
	int rc = tu_write_file(path, d, len);
	free(d);
	return rc ? -1 : k;
}

/* th_file.c -- what a file is, and reading it whole (th_file.h). */
#include "th_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

th_file_kind th_file_sniff(const void *data, size_t len)
{
	const unsigned char *p = data;
	if (len >= 4 && memcmp(p, "PK\x03\x04", 4) == 0)
		return TH_FILE_ZIP;
	if (len >= 8 && memcmp(p, "\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1", 8) == 0)
		return TH_FILE_OLE;
	if (len >= 5 && memcmp(p, "%PDF-", 5) == 0)
		return TH_FILE_PDF;
	return TH_FILE_TEXT;
}

int th_file_refuse(th_file_kind k, const char *name, th_diag *diag)
{
	if (k == TH_FILE_OLE)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL,
		                   "is an Excel 97-2003 .xls file (or a workbook protected by a password "
		                   "to open); save it as .xlsx (Excel: File > Save As > Excel Workbook) or "
		                   "CSV UTF-8, or convert it with `libreoffice --headless --convert-to xlsx`");
	if (k == TH_FILE_PDF)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL,
		                   "is a PDF document, not a spreadsheet: send the .xlsx or CSV file the "
		                   "PDF was printed from");
	if (k == TH_FILE_ZIP)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL,
		                   "is an Excel workbook (.xlsx, a ZIP archive), not CSV text: read it "
		                   "as a workbook, or save it as CSV UTF-8");
	return th_diag_add(diag, TH_SEV_ERROR, TH_EENCODING, name, 0, 0, NULL, "not a spreadsheet");
}

int th_file_slurp(const char *path, size_t max, char **out, size_t *outlen, th_diag *diag)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "cannot open: %s",
		                   strerror(errno));
	char *data = NULL;
	size_t len = 0, cap = 0;
	int rc = TH_OK;
	for (;;) {
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 65536 * 4;
			if (cap > max + 65536 * 4) {
				rc = th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, path, 0, 0, NULL,
				                 "file larger than %zu MiB", max >> 20);
				goto fail;
			}
			char *nd = realloc(data, cap + 1);
			if (!nd) {
				rc = TH_ENOMEM;
				goto fail;
			}
			data = nd;
		}
		size_t got = fread(data + len, 1, cap - len, f);
		len += got;
		if (len > max) {
			rc = th_diag_add(diag, TH_SEV_ERROR, TH_ETOOBIG, path, 0, 0, NULL,
			                 "file larger than %zu MiB", max >> 20);
			goto fail;
		}
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		rc = th_diag_add(diag, TH_SEV_ERROR, TH_EIO, path, 0, 0, NULL, "read error");
		goto fail;
	}
	fclose(f);
	data[len] = 0;
	*out = data;
	*outlen = len;
	return TH_OK;
fail:
	free(data);
	fclose(f);
	return rc;
}

/* th_input.c -- an appendix file of any kind, told by its content (th_input.h). */
#include "th_input.h"

#include <stdlib.h>

#include "th_csv.h"
#include "th_file.h"
#include "th_xlsx.h"

int th_input_parse_reports(const void *data, size_t len, const char *name, const th_defset *defs,
                           const th_read_opts *opts, th_report ***out, size_t *n, th_diag *diag)
{
	th_file_kind k = th_file_sniff(data, len);
	if (k == TH_FILE_ZIP)
		return th_xlsx_parse_reports(data, len, name, defs, opts, out, n, diag);
	if (k != TH_FILE_TEXT)
		return th_file_refuse(k, name, diag);
	return th_csv_parse_reports(data, len, name, defs, opts, out, n, diag);
}

int th_input_read_reports(const char *path, const th_defset *defs, const th_read_opts *opts,
                          th_report ***out, size_t *n, th_diag *diag)
{
	char *data = NULL;
	size_t len = 0;
	int rc = th_file_slurp(path, TH_INPUT_MAX_FILE, &data, &len, diag);
	if (rc)
		return rc;
	rc = th_input_parse_reports(data, len, path, defs, opts, out, n, diag);
	free(data);
	return rc;
}

int th_input_read_report(const char *path, const th_defset *defs, const th_read_opts *opts,
                         th_report **out, th_diag *diag)
{
	th_report **v = NULL;
	size_t n = 0;
	int rc = th_input_read_reports(path, defs, opts, &v, &n, diag);
	if (rc)
		return rc;
	return th_reports_take_one(v, n, path, out, diag);
}

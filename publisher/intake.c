/* intake.c -- appendix files and withdrawals into reports (intake.h). */
#include "intake.h"

#include <string.h>

#include "th_canon.h"
#include "th_csv.h"

int th_intake_file(const char *path, const th_defset *defs, th_report **r,
                   uint8_t hash[TH_HASH_LEN], th_diag *d)
{
	th_csv_opts co;
	memset(&co, 0, sizeof co);
	int rc = th_csv_read_report(path, defs, &co, r, d);
	if (rc) {
		if (th_diag_errors(d) == 0)
			th_diag_add(d, TH_SEV_ERROR, rc, path, 0, 0, NULL, "%s", th_strerror(rc));
		return rc;
	}
	const th_def *def = th_defset_get(defs, (*r)->appendix, (*r)->version);
	if (!def || (rc = th_canon_hash(*r, def, hash)) != 0) {
		th_diag_add(d, TH_SEV_ERROR, rc ? rc : TH_EAPPENDIX, path, 0, 0, NULL,
		            "cannot compute the content hash of %s version %u", (*r)->appendix,
		            (*r)->version);
		th_report_destroy(r);
		return rc ? rc : TH_EAPPENDIX;
	}
	return 0;
}

int th_intake_tombstone(const char *unit, const char *appendix, const char *period,
                        const th_defset *defs, th_report **r, uint8_t hash[TH_HASH_LEN],
                        th_diag *d)
{
	const th_def *def = th_defset_latest(defs, appendix);
	if (!def) {
		th_diag_add(d, TH_SEV_ERROR, TH_EAPPENDIX, NULL, 0, 0, NULL,
		            "unknown appendix \"%.64s\": the definitions in use do not have it",
		            appendix);
		return TH_EAPPENDIX;
	}
	*r = th_report_new(unit, def->id, def->version, period, 0, def->n_cols);
	if (!*r)
		return TH_ENOMEM;
	(*r)->tombstone = 1;
	int rc = th_report_validate(*r, def, d);
	if (!rc)
		rc = th_canon_hash(*r, def, hash);
	if (rc) {
		if (th_diag_errors(d) == 0)
			th_diag_add(d, TH_SEV_ERROR, rc, NULL, 0, 0, NULL, "%s", th_strerror(rc));
		th_report_destroy(r);
	}
	return rc;
}

int th_intake_defs(const char *dir, th_outbox *ob, th_defset **out, th_diag *d)
{
	if (dir)
		return th_defset_load_dir(dir, out, d);
	int rc = th_outbox_load_defs(ob, 1, out);
	if (rc == TH_ENOTFOUND)
		rc = th_outbox_load_defs(ob, 0, out);
	return rc;
}

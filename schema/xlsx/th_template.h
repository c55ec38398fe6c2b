/* th_template.h -- the fillable .xlsx template of an appendix (libxlsxwriter).
 *
 * One workbook per (appendix, period, unit that fills it in):
 *   - a data sheet named after the appendix ("PL1"): a title block
 *     (appendix title, unit code and name, period, deadline), a hidden row
 *     of column ids, the header row of wrapped Vietnamese titles (frozen),
 *     then the rows to fill: data validation from the definition (enum
 *     lists by Vietnamese label, integer and decimal ranges, dates, yes/no,
 *     text length), number formats (#,##0, decimals per scale,
 *     dd/mm/yyyy), the identity cells (titles, header, STT, unit code and
 *     name) locked by sheet protection without a password, data cells
 *     editable;
 *   - "Hướng dẫn": instructions in Vietnamese (what to fill, units of
 *     measure, empty is not 0, how to send) and the table of columns;
 *   - the hidden sheet "_tonghop" (TH_XLSX_META_SHEET): format, appendix,
 *     version, unit, period, the data sheet's name, the deadline, and the
 *     enum label lists the validations point at.
 * A unit that files for others (a district for its communes) gets one
 * workbook covering them: one data sheet with a unit column ("Mã đơn vị",
 * locked) and the covered units' rows, which th_input_read_reports turns
 * into one report per unit that has figures (schema/APPENDIX-FILES.md
 * says why one sheet rather than one sheet per unit).
 * The reader (th_xlsx.h) reads the template back exactly: filled in Excel,
 * LibreOffice or openpyxl, or as written here with th_template_opts.filled.
 */
#ifndef TH_TEMPLATE_H
#define TH_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>
#include "th_error.h"
#include "th_def.h"
#include "th_report.h"
#include "th_units.h"

typedef struct th_template_opts {
	const char *period;              /* required: "2021", "2021-Q2", ... */
	const char *unit;                /* required: the unit that fills it in */
	const char *const *units;        /* the units it covers (n_units); NULL or just unit:
	                                  * a workbook for unit alone */
	size_t n_units;
	int32_t deadline;                /* yyyymmdd, 0: none */
	const th_units *hierarchy;       /* units' names (NULL: codes only) */
	uint32_t rows;                   /* rows to fill per unit of a multi-row appendix
	                                  * (0: 50 for one unit, 10 per unit for several) */
	const th_report *const *filled;  /* values to write in (th-gen, tests); each for one
	                                  * of the covered units, of this definition */
	size_t n_filled;
} th_template_opts;

/* Writes the template of d for o to path (through a temporary file renamed
 * into place).  Problems (a bad period or unit code, a filled report of
 * another appendix or unit, libxlsxwriter failing) go to diag.  TH_OK,
 * TH_EINVAL, TH_EIO or TH_ENOMEM. */
int th_template_write(const char *path, const th_def *d, const th_template_opts *o,
                      th_diag *diag);

/* The units a workbook of unit covers for d: unit itself when d expects
 * it, then every unit of its subtree that d expects, in hierarchy order
 * (the caller drops those with an agent of their own).  *codes is a
 * malloc'd array of *n pointers into u (free the array only).
 * TH_EUNIT when unit is not in u. */
int th_template_units_for(const th_def *d, const th_units *u, const char *unit,
                          const char ***codes, size_t *n);

#endif

/* th_period.h -- reporting periods (DESIGN section 4): a year "2021", a quarter
 * "2021-Q3", a half "2021-H1" or a month "2021-06", years 1900-2999.  A period
 * starts on its first day; the hierarchy version in force at that day is the one
 * its rollups use (store/STORAGE.md). */
#ifndef TH_PERIOD_H
#define TH_PERIOD_H

#include <stdint.h>

#define TH_PERIOD_MAX 16        /* bytes of a period string, without the NUL */

/* 1 when period is well formed: yyyy, yyyy-Qn, yyyy-Hn or yyyy-mm; else 0 (NULL too). */
int th_period_valid(const char *period);
/* The first day of a period as yyyymmdd ("2021" 20210101, "2021-Q3" 20210701,
 * "2021-H2" 20210701, "2021-06" 20210601); 0 when period is not valid. */
int32_t th_period_start(const char *period);
/* The last day as yyyymmdd ("2021-Q1" 20210331, "2024-02" 20240229, "2021-H2"
 * 20211231); 0 when period is not valid. */
int32_t th_period_end(const char *period);

#endif

/* th_rollup.h -- rollup vectors: the arithmetic of DESIGN section 6.
 *
 * A rollup vector is d->n_slots int64 values laid out by th_def (see
 * th_def.h).  own(N) = contribution of N's latest report; total(N) =
 * own(N) + sum of total(children).  Additive slots (row count, sum, counts)
 * add and subtract exactly, overflow-checked; min/max slots merge, and when a
 * value leaving a node equals its current extremum the node is recomputed
 * from its parts by the caller (th_rollup_sub reports this).
 */
#ifndef TH_ROLLUP_H
#define TH_ROLLUP_H

#include <stdint.h>
#include "th_def.h"
#include "th_report.h"

/* Zeroes v (every count 0; min/max values 0 with count 0). */
void th_rollup_zero(const th_def *d, int64_t *v);
/* Contribution of one validated report: aggregates its rows.  A tombstone
 * contributes the zero vector.  TH_EOVERFLOW when a sum overflows. */
int th_rollup_contrib(const th_def *d, const th_report *r, int64_t *v);
/* acc += v.  Additive slots are added (TH_EOVERFLOW, acc unchanged, on
 * overflow); min/max slots take the better value and add the counts. */
int th_rollup_add(const th_def *d, int64_t *acc, const int64_t *v);
/* acc -= v for additive slots and for min/max counts.  Sets *need_recompute
 * to 1 when a min/max extremum of acc equals the value v removes (then the
 * caller recomputes acc's min/max values from its parts).  Counts going
 * negative is TH_ERANGE (a bug).  Same as th_rollup_replace with a zero vnew
 * (TH_ENOMEM when that cannot be allocated). */
int th_rollup_sub(const th_def *d, int64_t *acc, const int64_t *v, int *need_recompute);
/* acc = acc - vold + vnew in one step (one part of acc, e.g. a child's total,
 * changed from vold to vnew).  Checks everything first and changes nothing on
 * error (TH_EOVERFLOW; TH_ERANGE when a count of acc - vold is negative).
 * Sets *need_recompute only when a min/max value of acc came from vold and
 * vnew does not reach it (acc's extremum may now be in another part): an
 * improved or unchanged part, the common case, never needs the other parts. */
int th_rollup_replace(const th_def *d, int64_t *acc, const int64_t *vold, const int64_t *vnew,
                      int *need_recompute);
/* Merges only the min/max columns of v into acc: where v has values, acc's
 * value becomes the better of both and v's count is added to acc's.  Other
 * slots are untouched (recomputing extrema from parts needs nothing else). */
void th_rollup_merge_extrema(const th_def *d, int64_t *acc, const int64_t *v);
/* 1 when a and b are equal slot by slot, treating min/max values as equal
 * when their counts are 0. */
int th_rollup_equal(const th_def *d, const int64_t *a, const int64_t *b);
/* Column c's sum (or count_true count, or min/max value) and whether it is
 * null (count 0). */
int64_t th_rollup_value(const th_def *d, const int64_t *v, size_t col, int *is_null);
/* Ratio r of d as num/den sums; returns 0 and sets *num, *den; *den == 0
 * means undefined ("—"). */
int th_rollup_ratio(const th_def *d, const int64_t *v, size_t ratio, int64_t *num, int64_t *den);

#endif

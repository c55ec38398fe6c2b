/* th_clock.h -- the two clocks every part uses.
 *
 * th_now_us: wall-clock time (CLOCK_REALTIME) in unix microseconds: what is
 * stored (commit times) and shown.  th_mono_us: CLOCK_MONOTONIC microseconds,
 * for timeouts and durations (never goes back when the clock is set). */
#ifndef TH_CLOCK_H
#define TH_CLOCK_H

#include <stdint.h>

int64_t th_now_us(void);
int64_t th_mono_us(void);

#endif

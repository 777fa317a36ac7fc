/*
 * The monotonic clock and waits a raised cancel flag cuts short: what the HTTP
 * retry loop and the rollout poll both time themselves with.
 */
#ifndef MG_CLOCK_H
#define MG_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC: for durations and deadlines, never for dates. */
int64_t mg_clock_ms(void);

/* Sleeps in slices so a raised *cancel (NULL: none) ends the wait within 50 ms. */
void mg_clock_sleep_ms(int64_t ms, const volatile int *cancel);

#endif

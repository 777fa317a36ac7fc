/*
 * The monotonic clock and waits a raised cancel flag cuts short: what the HTTP
 * retry loop and the rollout poll both time themselves with.
 */
#ifndef MG_CLOCK_H
#define MG_CLOCK_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/*
 * A cancel flag: set from a signal handler or another thread, read by the
 * library's loops (waits, retries, rollouts, SSH), which stop soon after.
 */
typedef volatile sig_atomic_t mg_cancel;

/* Milliseconds on CLOCK_MONOTONIC: for durations and deadlines, never for dates. */
int64_t mg_clock_ms(void);

/* Sleeps in slices so a raised *cancel (NULL: none) ends the wait within 50 ms. */
void mg_clock_sleep_ms(int64_t ms, const mg_cancel *cancel);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME): for dates in records, never durations. */
int64_t mg_now_ms(void);

/* ms (Unix epoch milliseconds) as RFC 3339 UTC with milliseconds. */
void mg_time_format(char *buf, size_t size, int64_t ms);

/* The CLOCK_MONOTONIC instant ms from now, for a condition variable set to that clock. */
void mg_clock_abstime(struct timespec *ts, int64_t ms);

#endif

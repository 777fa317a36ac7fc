#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

int64_t mg_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mg_clock_sleep_ms(int64_t ms, const mg_cancel *cancel)
{
	while (ms > 0 && !(cancel && *cancel)) {
		int64_t slice = ms < 50 ? ms : 50;
		struct timespec ts = {0, (long)slice * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !(cancel && *cancel))
			;
		ms -= slice;
	}
}

int64_t mg_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mg_time_format(char *buf, size_t size, int64_t ms)
{
	/* Floor division, so times before 1970 still print a valid timestamp. */
	int64_t sec = ms / 1000, frac = ms % 1000;
	if (frac < 0) {
		frac += 1000;
		sec--;
	}
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm)) {
		snprintf(buf, size, "invalid-time");
		return;
	}
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
}

void mg_clock_abstime(struct timespec *ts, int64_t ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	ts->tv_sec += (time_t)(ms / 1000) + ts->tv_nsec / 1000000000L;
	ts->tv_nsec %= 1000000000L;
}

#include "clock.h"

#include <errno.h>
#include <time.h>

int64_t mg_clock_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mg_clock_sleep_ms(int64_t ms, const volatile int *cancel)
{
	while (ms > 0 && !(cancel && *cancel)) {
		int64_t slice = ms < 50 ? ms : 50;
		struct timespec ts = {0, (long)slice * 1000000L};
		while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !(cancel && *cancel))
			;
		ms -= slice;
	}
}

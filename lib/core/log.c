#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "secret.h"

static mg_log_fn sink;
static void *sink_ud;
static mg_log_level sink_min = MG_LOG_INFO;

void mg_log_set(mg_log_fn fn, void *ud, mg_log_level min_level)
{
	sink = fn;
	sink_ud = ud;
	sink_min = min_level;
}

void mg_log(mg_log_level level, const char *fmt, ...)
{
	if (!sink || level < sink_min)
		return;
	/* scrubbed whole, then cut: a secret cut in half would not be found */
	char buf[2048], *full = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&full, fmt, ap);
	va_end(ap);
	char *clean = n >= 0 ? mg_scrub_dup(full) : NULL;
	snprintf(buf, sizeof(buf), "%s", clean ? clean : "(a log message was lost: out of memory)");
	free(clean);
	free(n >= 0 ? full : NULL);
	sink(level, buf, sink_ud);
}

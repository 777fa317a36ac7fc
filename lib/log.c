#include "log.h"

#include <stdarg.h>
#include <stdio.h>

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
	char buf[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	sink(level, buf, sink_ud);
}

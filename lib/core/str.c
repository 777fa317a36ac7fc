#include "str.h"

#include <stdio.h>

char *mg_str_vprintf(const char *fmt, va_list ap)
{
	char *s = NULL;
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	return s;
}

char *mg_str_printf(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = mg_str_vprintf(fmt, ap);
	va_end(ap);
	return s;
}

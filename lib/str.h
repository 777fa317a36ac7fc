/*
 * Formatting into fresh memory, for the modules that build messages and
 * paths of unknown length (configmap, the Prometheus and Cloudflare clients).
 */
#ifndef MG_STR_H
#define MG_STR_H

#include <stdarg.h>

/* A malloc'd string, or NULL when out of memory. */
char *mg_str_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *mg_str_vprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

#endif

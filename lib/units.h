/*
 * Parsers for the value types plans use. Each returns 0 or MG_EINVALID and,
 * on error, writes a one-line reason (without location) into why.
 */
#ifndef MG_UNITS_H
#define MG_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* "500ms", "30s", "5m", "1h30m", "1.5h"; every component needs a unit. */
int mg_duration_parse(int64_t *out_ms, const char *s, char *why, size_t why_size);
/* Shortest exact form: 90000 -> "1m30s", 500 -> "500ms", 0 -> "0s". */
void mg_duration_format(char *buf, size_t size, int64_t ms);

/* "10%", "0.5%", or a bare number (10 means 10%). Result in percent, 0..100. */
int mg_percent_parse(double *out, const char *s, char *why, size_t why_size);
/* Shortest form with up to 3 decimals: 10 -> "10%", 0.5 -> "0.5%". */
void mg_percent_format(char *buf, size_t size, double pct);

/* "512", "64KiB", "10MB", "1GiB" (SI and IEC units, B optional). */
int mg_size_parse(uint64_t *out_bytes, const char *s, char *why, size_t why_size);

/* http(s) URL with a host; checked with libcurl's URL parser. */
int mg_url_check(const char *s, char *why, size_t why_size);

#endif

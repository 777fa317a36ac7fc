#include "units.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

/*
 * Number syntax is checked by hand rather than with strtod/strtoull: those
 * accept signs, leading spaces, hex, exponents, "inf" and "nan", and follow
 * the locale's decimal point, none of which belong in a plan. Integer
 * arithmetic also lets "1.5KiB" be exactly 1536 and "0.1s" exactly 100ms.
 */

__attribute__((format(printf, 3, 4))) static int fail(char *why, size_t size, const char *fmt, ...)
{
	if (why && size) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(why, size, fmt, ap);
		va_end(ap);
	}
	return MG_EINVALID;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool has_space(const char *s)
{
	for (; *s; s++)
		if (*s == ' ' || (*s >= '\t' && *s <= '\r'))
			return true;
	return false;
}

/*
 * Copies len bytes of s for quoting in a message. Control characters become
 * '?' so the message stays on one line, and long input is cut (at a UTF-8
 * character boundary) so the useful part of the message is not lost.
 */
static const char *show(char *buf, size_t size, const char *s, size_t len)
{
	size_t max = size - 4, n = len < max ? len : max;
	if (n < len)
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	strcpy(buf + n, n < len ? "..." : "");
	return buf;
}

#define SHOW_SIZE    68
#define SHOW(buf, s) show(buf, sizeof(buf), s, strlen(s))

/*
 * A decimal number "123" or "123.45", without sign or exponent. The integer
 * part saturates (overflow is set) so syntax errors further on are reported
 * before "too large". The fraction is kept as text: its exact value matters.
 */
typedef struct {
	uint64_t ip;
	bool overflow;
	const char *frac; /* digits after the point, trailing zeros dropped */
	size_t nfrac;
	bool bad_point; /* a point with no digit after it */
} decimal;

static const char *scan_decimal(decimal *d, const char *p)
{
	memset(d, 0, sizeof(*d));
	for (; is_digit(*p); p++) {
		unsigned v = (unsigned)(*p - '0');
		if (d->ip > (UINT64_MAX - v) / 10)
			d->overflow = true;
		else
			d->ip = d->ip * 10 + v;
	}
	if (*p != '.')
		return p;
	p++;
	if (!is_digit(*p)) {
		d->bad_point = true;
		return p;
	}
	d->frac = p;
	for (; is_digit(*p); p++)
		if (*p != '0')
			d->nfrac = (size_t)(p - d->frac) + 1;
	return p;
}

static uint64_t frac_digits(const decimal *d)
{
	uint64_t f = 0;
	for (size_t i = 0; i < d->nfrac; i++)
		f = f * 10 + (uint64_t)(d->frac[i] - '0');
	return f;
}

static uint64_t pow10u(size_t k)
{
	uint64_t r = 1;
	while (k--)
		r *= 10;
	return r;
}

/* ---- durations ---- */

static const struct {
	const char *name;
	int64_t ms;
} dur_units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};

#define NDUR_UNITS (sizeof(dur_units) / sizeof(dur_units[0]))

int mg_duration_parse(int64_t *out_ms, const char *s, char *why, size_t why_size)
{
	char q[SHOW_SIZE], u[SHOW_SIZE];
	if (!s || !*s)
		return fail(why, why_size, "empty duration; write e.g. 30s, 5m or 1h30m");
	SHOW(q, s);
	if (has_space(s))
		return fail(
		    why, why_size,
		    "\"%s\" is not a duration: write a number and a unit with no space, such as 10m, 30s or 1h30m",
		    q);
	if (*s == '-')
		return fail(why, why_size, "\"%s\" is not a duration: durations cannot be negative",
		            q);
	if (*s == '+')
		return fail(why, why_size, "\"%s\" is not a duration: write it without the sign",
		            q);

	uint64_t total = 0;
	bool overflow = false;
	size_t prev = NDUR_UNITS; /* index of the previous unit; units must follow in table order */
	const char *p = s;
	while (*p) {
		const char *num = p;
		decimal d;
		if (!is_digit(*p)) {
			if (*p == '.')
				return fail(
				    why, why_size,
				    "\"%s\" is not a duration: write a 0 before the decimal point",
				    q);
			return fail(why, why_size,
			            "\"%s\" is not a duration: expected a number at \"%s\"", q,
			            SHOW(u, p));
		}
		p = scan_decimal(&d, p);
		if (d.bad_point)
			return fail(
			    why, why_size,
			    "\"%s\" is not a duration: write a digit after the decimal point", q);
		const char *unit = p;
		while (*p && *p != '.' && !is_digit(*p))
			p++;
		size_t ulen = (size_t)(p - unit);
		if (ulen == 0 && *p == '.')
			return fail(why, why_size, "\"%s\" is not a duration: unexpected \".\"", q);
		if (ulen == 0 && num == s)
			return fail(why, why_size, "\"%s\" has no unit; write %ss, %sm or %sms", q,
			            q, q, q);
		if (ulen == 0)
			return fail(why, why_size,
			            "\"%s\" is not a duration: %s has no unit (use ms, s, m or h)",
			            q, show(u, sizeof(u), num, (size_t)(unit - num)));
		size_t i;
		for (i = 0; i < NDUR_UNITS; i++)
			if (strlen(dur_units[i].name) == ulen &&
			    !memcmp(dur_units[i].name, unit, ulen))
				break;
		if (i == NDUR_UNITS)
			return fail(
			    why, why_size,
			    "\"%s\" is not a duration: unknown unit \"%s\" (use ms, s, m or h)", q,
			    show(u, sizeof(u), unit, ulen));
		if (i == prev)
			return fail(
			    why, why_size,
			    "\"%s\" is not a duration: %s appears more than once; add them up", q,
			    dur_units[i].name);
		if (prev < NDUR_UNITS && i < prev)
			return fail(
			    why, why_size,
			    "\"%s\" is not a duration: put larger units first (h, m, s, ms), e.g. 5m30s",
			    q);
		prev = i;

		uint64_t ums = (uint64_t)dur_units[i].ms, part = 0;
		/*
		 * A fraction with more than 7 significant digits is never a
		 * whole number of milliseconds (3600000 = 2^7 * 3^2 * 5^5), so
		 * 12 leaves margin and keeps f * ums below 2^63.
		 */
		if (d.nfrac > 12 || (frac_digits(&d) * ums) % pow10u(d.nfrac) != 0)
			return fail(
			    why, why_size,
			    "\"%s\" is not a whole number of milliseconds (1ms is the smallest step)",
			    q);
		if (d.nfrac)
			part = frac_digits(&d) * ums / pow10u(d.nfrac);
		if (d.overflow || d.ip > ((uint64_t)INT64_MAX - part) / ums)
			overflow = true;
		else
			part += d.ip * ums;
		if (overflow || part > (uint64_t)INT64_MAX - total)
			overflow = true;
		else
			total += part;
	}
	if (overflow) {
		char max[32];
		mg_duration_format(max, sizeof(max), INT64_MAX);
		return fail(why, why_size, "\"%s\" is too long; the longest duration is %s", q,
		            max);
	}
	*out_ms = (int64_t)total;
	return 0;
}

void mg_duration_format(char *buf, size_t size, int64_t ms)
{
	char tmp[48];
	size_t n = 0;
	if (!buf || !size)
		return;
	/* Negative values never come from the parser, but a computed difference might. */
	uint64_t u = ms < 0 ? (uint64_t)0 - (uint64_t)ms : (uint64_t)ms;
	if (ms < 0)
		tmp[n++] = '-';
	uint64_t h = u / 3600000, m = u / 60000 % 60, sec = u / 1000 % 60, rest = u % 1000;
	if (u == 0) {
		snprintf(buf, size, "0s");
		return;
	}
	if (u < 1000) {
		snprintf(buf, size, "%s%llums", ms < 0 ? "-" : "", (unsigned long long)u);
		return;
	}
	/* Go's style: "1m1.5s" rather than "1m1s500ms"; zero components are left out. */
	if (h)
		n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%lluh", (unsigned long long)h);
	if (m)
		n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%llum", (unsigned long long)m);
	if (sec || rest) {
		n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%llu", (unsigned long long)sec);
		if (rest) {
			n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, ".%03llu",
			                      (unsigned long long)rest);
			while (tmp[n - 1] == '0')
				n--;
		}
		tmp[n++] = 's';
	}
	tmp[n] = '\0';
	snprintf(buf, size, "%s", tmp);
}

/* ---- percentages ---- */

int mg_percent_parse(double *out, const char *s, char *why, size_t why_size)
{
	char q[SHOW_SIZE];
	if (!s || !*s)
		return fail(why, why_size, "empty percentage; write e.g. 10%% or 0.5%%");
	SHOW(q, s);
	if (has_space(s))
		return fail(why, why_size, "\"%s\" is not a percentage: remove the spaces", q);
	const char *p = s;
	bool neg = *p == '-';
	if (neg)
		p++;
	decimal d;
	const char *end = is_digit(*p) ? scan_decimal(&d, p) : p;
	if (end == p || d.bad_point || (*end == '%' ? end[1] != '\0' : *end != '\0'))
		return fail(why, why_size,
		            "\"%s\" is not a percentage: write a number such as 10%% or 0.5%%", q);
	if (neg || d.overflow || d.ip > 100 || (d.ip == 100 && d.nfrac))
		return fail(why, why_size,
		            "\"%s\" is out of range: a percentage is from 0%% to 100%%", q);
	/*
	 * 15 significant digits are exact in a double and the division by a
	 * power of ten is then correctly rounded; later digits cannot matter.
	 */
	size_t k = d.nfrac < 12 ? d.nfrac : 12;
	uint64_t f = 0;
	for (size_t i = 0; i < k; i++)
		f = f * 10 + (uint64_t)(d.frac[i] - '0');
	uint64_t scale = pow10u(k);
	*out = (double)(d.ip * scale + f) / (double)scale;
	return 0;
}

void mg_percent_format(char *buf, size_t size, double pct)
{
	char tmp[400];
	if (!buf || !size)
		return;
	snprintf(tmp, sizeof(tmp), "%.3f", pct);
	char *dot = strchr(tmp, '.');
	if (dot) {
		char *e = dot + strlen(dot);
		while (e > dot + 1 && e[-1] == '0')
			e--;
		if (e == dot + 1)
			e = dot;
		*e = '\0';
	}
	/* -0.0001 rounds to "-0", which reads as a mistake. */
	snprintf(buf, size, "%s%%", strcmp(tmp, "-0") ? tmp : "0");
}

/* ---- sizes ---- */

/*
 * KB, MB... are powers of 1000 and KiB, MiB... powers of 1024, as their
 * standards say. A bare K, M, G or T (either case) is a power of 1024, as in
 * nginx and most configuration files, since that is what people mean there.
 */
static const struct {
	const char *name;
	uint64_t mult;
} size_units[] = {
    {"", 1},
    {"B", 1},
    {"KB", 1000ULL},
    {"MB", 1000000ULL},
    {"GB", 1000000000ULL},
    {"TB", 1000000000000ULL},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"TiB", 1ULL << 40},
    {"K", 1ULL << 10},
    {"M", 1ULL << 20},
    {"G", 1ULL << 30},
    {"T", 1ULL << 40},
    {"k", 1ULL << 10},
    {"m", 1ULL << 20},
    {"g", 1ULL << 30},
    {"t", 1ULL << 40},
};

#define NSIZE_UNITS (sizeof(size_units) / sizeof(size_units[0]))

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

static bool same_letters(const char *a, const char *b)
{
	for (; *a && *b; a++, b++)
		if ((*a | 0x20) != (*b | 0x20))
			return false;
	return *a == *b;
}

int mg_size_parse(uint64_t *out_bytes, const char *s, char *why, size_t why_size)
{
	char q[SHOW_SIZE], u[SHOW_SIZE];
	if (!s || !*s)
		return fail(why, why_size, "empty size; write e.g. 512, 64KiB or 10MB");
	SHOW(q, s);
	if (has_space(s))
		return fail(why, why_size, "\"%s\" is not a size: remove the spaces (write 10MB)",
		            q);
	if (*s == '-')
		return fail(why, why_size, "\"%s\" is not a size: sizes cannot be negative", q);
	decimal d;
	if (!is_digit(*s))
		return fail(
		    why, why_size,
		    "\"%s\" is not a size: write a number of bytes such as 512, 64KiB or 10MB", q);
	const char *unit = scan_decimal(&d, s);
	if (d.bad_point)
		return fail(why, why_size,
		            "\"%s\" is not a size: write a digit after the decimal point", q);
	size_t i;
	for (i = 0; i < NSIZE_UNITS; i++)
		if (!strcmp(size_units[i].name, unit))
			break;
	if (i == NSIZE_UNITS) {
		/* "kb" or "mib": say the case is what is wrong, not the unit. */
		for (size_t j = 1; j < NSIZE_UNITS; j++)
			if (strlen(size_units[j].name) > 1 &&
			    same_letters(size_units[j].name, unit))
				return fail(
				    why, why_size,
				    "\"%s\" is not a size: write the unit as %s (units are case-sensitive)",
				    q, size_units[j].name);
		if (!strcmp(unit, "b"))
			return fail(
			    why, why_size,
			    "\"%s\" is not a size: write the unit as B (units are case-sensitive)",
			    q);
		return fail(
		    why, why_size,
		    "\"%s\" is not a size: unknown unit \"%s\" (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)",
		    q, SHOW(u, unit));
	}
	uint64_t mult = size_units[i].mult, part = 0;
	if (d.nfrac) {
		/* 10^19 is the largest power of ten in a uint64_t. */
		if (d.nfrac > 19)
			return fail(why, why_size, "\"%s\" is not a whole number of bytes", q);
		uint64_t f = frac_digits(&d), den = pow10u(d.nfrac), g = gcd(f, den);
		if (mult % (den / g) != 0)
			return fail(why, why_size, "\"%s\" is not a whole number of bytes", q);
		/* f/den < 1, so this is below mult and cannot overflow. */
		part = f / g * (mult / (den / g));
	}
	if (d.overflow || d.ip > (UINT64_MAX - part) / mult)
		return fail(why, why_size, "\"%s\" is too large; the largest size is %llu bytes", q,
		            (unsigned long long)UINT64_MAX);
	*out_bytes = d.ip * mult + part;
	return 0;
}

/* ---- URLs ---- */

static bool is_scheme_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '+' ||
	       c == '-' || c == '.';
}

/*
 * Messages never quote the URL: it may hold a credential or a token in its
 * query, and the caller's message already says which key is wrong.
 */
int mg_url_check(const char *s, char *why, size_t why_size)
{
	if (!s || !*s)
		return fail(why, why_size, "empty URL; write e.g. https://example.com/health");
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return fail(
			    why, why_size,
			    "the URL contains spaces or control characters; percent-encode them (a space is %%20)");

	CURLU *h = curl_url();
	if (!h)
		return fail(why, why_size, "out of memory while checking the URL");
	char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
	int rc = MG_EINVALID;
	CURLUcode uc = curl_url_set(h, CURLUPART_URL, s, 0);
	/* libcurl does not hand back a scheme it rejected; take it from the text. */
	size_t n = 0;
	while (is_scheme_char(s[n]))
		n++;
	int shown = n < 40 ? (int)n : 40;
	if (uc == CURLUE_UNSUPPORTED_SCHEME) {
		/* "localhost:8080/health" is a host and port without a scheme. */
		if (strncmp(s + n, "://", 3))
			fail(why, why_size,
			     "the URL has no scheme; write http:// or https:// before the host");
		else
			fail(why, why_size, "the URL's scheme is \"%.*s\"; use http or https",
			     shown, s);
		goto out;
	}
	if (uc == CURLUE_BAD_SLASHES) {
		fail(why, why_size, "write the URL as %.*s://host/path", shown, s);
		goto out;
	}
	if (uc == CURLUE_BAD_SCHEME) {
		fail(why, why_size,
		     "the URL has no scheme; write http:// or https:// before the host");
		goto out;
	}
	if (uc == CURLUE_NO_HOST) {
		fail(why, why_size, "the URL has no host; write e.g. https://example.com/health");
		goto out;
	}
	if (uc != CURLUE_OK) {
		/* libcurl's texts start with a capital ("Bad hostname"); ours do not. */
		const char *msg = curl_url_strerror(uc);
		char first = msg[0] >= 'A' && msg[0] <= 'Z' ? (char)(msg[0] + 'a' - 'A') : msg[0];
		fail(why, why_size, "not a valid URL: %c%s", first, msg[0] ? msg + 1 : "");
		goto out;
	}
	if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || !scheme) {
		fail(why, why_size,
		     "the URL has no scheme; write http:// or https:// before the host");
		goto out;
	}
	if (strcmp(scheme, "http") && strcmp(scheme, "https")) {
		fail(why, why_size, "the URL's scheme is \"%s\"; use http or https", scheme);
		goto out;
	}
	/*
	 * libcurl reads "http:/h" and "http:///h" as host "h"; a plan should
	 * say what it means, so exactly two slashes must follow the scheme.
	 */
	size_t slen = strlen(scheme);
	if (strncmp(s + slen, "://", 3) || s[slen + 3] == '/') {
		fail(why, why_size, "write the URL as %s://host/path", scheme);
		goto out;
	}
	curl_url_get(h, CURLUPART_USER, &user, 0);
	curl_url_get(h, CURLUPART_PASSWORD, &password, 0);
	if (user || password) {
		fail(
		    why, why_size,
		    "the URL has a user name or password in it: credentials in URLs end up in logs; use token_env instead");
		goto out;
	}
	if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host || !*host) {
		fail(why, why_size, "the URL has no host; write e.g. https://example.com/health");
		goto out;
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(user);
	curl_free(password);
	curl_url_cleanup(h);
	return rc;
}

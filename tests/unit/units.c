#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "error.h"
#include "units.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* ---- durations ---- */

static const struct {
	const char *in;
	int64_t ms;
} dur_ok[] = {
    {"0s", 0},
    {"0ms", 0},
    {"0h0m0s0ms", 0},
    {"1ms", 1},
    {"500ms", 500},
    {"1s", 1000},
    {"30s", 30000},
    {"0.5s", 500},
    {"1.5s", 1500},
    {"0.001s", 1},
    {"1.000s", 1000},
    {"1.50000000000000000000s", 1500},
    {"007s", 7000},
    {"5m", 300000},
    {"0.1m", 6000},
    {"90m", 5400000},
    {"1h", 3600000},
    {"1.5h", 5400000},
    {"0.0001h", 360},
    {"1h30m", 5400000},
    {"2m30s", 150000},
    {"1h2m3s", 3723000},
    {"1h2m3s4ms", 3723004},
    {"1h3s", 3603000},
    {"1h500ms", 3600500},
    {"1h0.5s", 3600500},
    {"1m1.5s", 61500},
    {"1.5m30s", 120000},
    {"100h", 360000000},
    {"9223372036854775807ms", INT64_MAX},
    {"2562047788015h12m55.807s", INT64_MAX},
};

Test(duration, parses_valid)
{
	for (size_t i = 0; i < N(dur_ok); i++) {
		int64_t ms = -1;
		char why[256] = "";
		int rc = mg_duration_parse(&ms, dur_ok[i].in, why, sizeof(why));
		cr_expect_eq(rc, 0, "\"%s\": rc %d (%s)", dur_ok[i].in, rc, why);
		cr_expect_eq(ms, dur_ok[i].ms, "\"%s\": got %lld, want %lld", dur_ok[i].in,
		             (long long)ms, (long long)dur_ok[i].ms);
	}
}

static const struct {
	const char *in;
	const char *why; /* NULL: only the code is checked */
} dur_bad[] = {
    {"", "empty duration; write e.g. 30s, 5m or 1h30m"},
    {"30", "\"30\" has no unit; write 30s, 30m or 30ms"},
    {"1.5", "\"1.5\" has no unit; write 1.5s, 1.5m or 1.5ms"},
    {"5x", "\"5x\" is not a duration: unknown unit \"x\" (use ms, s, m or h)"},
    {"30s5m", "\"30s5m\" is not a duration: put larger units first (h, m, s, ms), e.g. 5m30s"},
    {"5m5m", "\"5m5m\" is not a duration: m appears more than once; add them up"},
    {"1h30", "\"1h30\" is not a duration: 30 has no unit (use ms, s, m or h)"},
    {"-5s", "\"-5s\" is not a duration: durations cannot be negative"},
    {"+5s", "\"+5s\" is not a duration: write it without the sign"},
    {"1h 30m",
     "\"1h 30m\" is not a duration: write a number and a unit with no space, such as 10m, 30s or 1h30m"},
    {".5h", "\".5h\" is not a duration: write a 0 before the decimal point"},
    {"1.s", "\"1.s\" is not a duration: write a digit after the decimal point"},
    {"1.0001s", "\"1.0001s\" is not a whole number of milliseconds (1ms is the smallest step)"},
    {"9223372036854775808ms",
     "\"9223372036854775808ms\" is too long; the longest duration is 2562047788015h12m55.807s"},
    {"h", "\"h\" is not a duration: expected a number at \"h\""},
    {"1h\n",
     "\"1h?\" is not a duration: write a number and a unit with no space, such as 10m, 30s or 1h30m"},
    {"5\x01s", "\"5?s\" is not a duration: unknown unit \"?s\" (use ms, s, m or h)"},
    {"0", NULL},
    {" 5s", NULL},
    {"5s ", NULL},
    {"\t5s", NULL},
    {"ms", NULL},
    {"1hm", NULL},
    {"1..5s", NULL},
    {"1.5.5s", NULL},
    {"5H", NULL},
    {"5M", NULL},
    {"5S", NULL},
    {"5MS", NULL},
    {"5sec", NULL},
    {"5min", NULL},
    {"5us", NULL},
    {"5ns", NULL},
    {"5\xc2\xb5s", NULL},
    {"1d", NULL},
    {"0x10s", NULL},
    {"1e3ms", NULL},
    {"nan", NULL},
    {"inf", NULL},
    {"1h1h", NULL},
    {"1s1m", NULL},
    {"1ms1s", NULL},
    {"1s1s", NULL},
    {"1m1h", NULL},
    {"5s!", NULL},
    {"5,5s", NULL},
    {"0.0005s", NULL},
    {"0.00000000000001s", NULL},
    {"0.1ms", NULL},
    {"2562047788016h", NULL},
    {"2562047788015h13m", NULL},
    {"2562047788015h12m55.808s", NULL},
    {"2562047788015h12m55s808ms", NULL},
    {"9223372036854775s808ms", NULL},
    {"100000000000000000000h", NULL},
    {"99999999999999999999999999ms", NULL},
};

Test(duration, rejects_invalid)
{
	for (size_t i = 0; i < N(dur_bad); i++) {
		int64_t ms = 42;
		char why[256] = "";
		int rc = mg_duration_parse(&ms, dur_bad[i].in, why, sizeof(why));
		cr_expect_eq(rc, MG_EINVALID, "\"%s\": rc %d", dur_bad[i].in, rc);
		cr_expect_eq(ms, 42, "\"%s\": output written on error", dur_bad[i].in);
		cr_expect_neq(why[0], '\0', "\"%s\": no reason given", dur_bad[i].in);
		cr_expect_null(strchr(why, '\n'), "\"%s\": reason is not one line", dur_bad[i].in);
		if (dur_bad[i].why)
			cr_expect_str_eq(why, dur_bad[i].why, "\"%s\"", dur_bad[i].in);
	}
}

Test(duration, null_and_empty)
{
	int64_t ms = 7;
	char why[128];
	cr_expect_eq(mg_duration_parse(&ms, NULL, why, sizeof(why)), MG_EINVALID);
	cr_expect_str_eq(why, "empty duration; write e.g. 30s, 5m or 1h30m");
	/* why is optional. */
	cr_expect_eq(mg_duration_parse(&ms, "5x", NULL, 0), MG_EINVALID);
	cr_expect_eq(mg_duration_parse(&ms, "5s", NULL, 0), 0);
	cr_expect_eq(ms, 5000);
}

Test(duration, reason_fits_small_buffer)
{
	int64_t ms;
	char why[8];
	memset(why, 'x', sizeof(why));
	cr_expect_eq(mg_duration_parse(&ms, "5x", why, 8), MG_EINVALID);
	cr_expect_str_eq(why, "\"5x\" is");
}

Test(duration, long_input_is_shortened_in_reason)
{
	char in[300], why[512];
	int64_t ms;
	memset(in, '1', sizeof(in));
	strcpy(in + sizeof(in) - 3, "xx");
	cr_expect_eq(mg_duration_parse(&ms, in, why, sizeof(why)), MG_EINVALID);
	cr_expect_lt(strlen(why), 200, "%s", why);
	cr_expect_not_null(strstr(why, "...\""), "%s", why);
}

static const struct {
	int64_t ms;
	const char *out;
} dur_fmt[] = {
    {0, "0s"},
    {1, "1ms"},
    {500, "500ms"},
    {999, "999ms"},
    {1000, "1s"},
    {1001, "1.001s"},
    {1010, "1.01s"},
    {1500, "1.5s"},
    {30000, "30s"},
    {60000, "1m"},
    {61500, "1m1.5s"},
    {90000, "1m30s"},
    {3600000, "1h"},
    {3600500, "1h0.5s"},
    {3603000, "1h3s"},
    {3723000, "1h2m3s"},
    {5400000, "1h30m"},
    {86400000, "24h"},
    {INT64_MAX, "2562047788015h12m55.807s"},
    {-500, "-500ms"},
    {-1500, "-1.5s"},
    {-5400000, "-1h30m"},
    {INT64_MIN, "-2562047788015h12m55.808s"},
};

Test(duration, formats)
{
	for (size_t i = 0; i < N(dur_fmt); i++) {
		char buf[64];
		mg_duration_format(buf, sizeof(buf), dur_fmt[i].ms);
		cr_expect_str_eq(buf, dur_fmt[i].out, "%lld", (long long)dur_fmt[i].ms);
	}
}

Test(duration, format_truncates_safely)
{
	char buf[4] = "zzz";
	mg_duration_format(buf, sizeof(buf), 90000);
	cr_expect_str_eq(buf, "1m3");
	mg_duration_format(buf, 1, 90000);
	cr_expect_str_eq(buf, "");
}

static void expect_round_trip(int64_t ms)
{
	char buf[64], why[256] = "";
	int64_t back = -1;
	mg_duration_format(buf, sizeof(buf), ms);
	int rc = mg_duration_parse(&back, buf, why, sizeof(why));
	cr_expect_eq(rc, 0, "%lld -> \"%s\": %s", (long long)ms, buf, why);
	cr_expect_eq(back, ms, "%lld -> \"%s\" -> %lld", (long long)ms, buf, (long long)back);
}

Test(duration, round_trips)
{
	for (int64_t ms = 0; ms < 200000; ms += 7)
		expect_round_trip(ms);
	/* A fixed LCG spreads the rest over the whole range without flaky seeds. */
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < 20000; i++) {
		x = x * 6364136223846793005ULL + 1442695040888963407ULL;
		expect_round_trip((int64_t)(x >> (1 + i % 50)));
	}
	expect_round_trip(INT64_MAX);

	/* Canonical text comes back unchanged. */
	for (size_t i = 0; i < N(dur_fmt); i++) {
		int64_t ms;
		char buf[64];
		if (dur_fmt[i].ms < 0)
			continue;
		cr_expect_eq(mg_duration_parse(&ms, dur_fmt[i].out, NULL, 0), 0);
		mg_duration_format(buf, sizeof(buf), ms);
		cr_expect_str_eq(buf, dur_fmt[i].out);
	}
}

/* ---- percentages ---- */

static const struct {
	const char *in;
	double pct;
} pct_ok[] = {
    {"0", 0},      {"0%", 0},           {"0.0%", 0},      {"10%", 10},       {"10", 10},
    {"0.5%", 0.5}, {"0.5", 0.5},        {"100%", 100},    {"100", 100},      {"100.000%", 100},
    {"007%", 7},   {"33.333%", 33.333}, {"0.001", 0.001}, {"99.99%", 99.99}, {"12.5%", 12.5},
};

Test(percent, parses_valid)
{
	for (size_t i = 0; i < N(pct_ok); i++) {
		double p = -1;
		char why[256] = "";
		int rc = mg_percent_parse(&p, pct_ok[i].in, why, sizeof(why));
		cr_expect_eq(rc, 0, "\"%s\": rc %d (%s)", pct_ok[i].in, rc, why);
		cr_expect_eq(p, pct_ok[i].pct, "\"%s\": got %.17g", pct_ok[i].in, p);
	}
}

static const struct {
	const char *in;
	const char *why;
} pct_bad[] = {
    {"", "empty percentage; write e.g. 10% or 0.5%"},
    {"150%", "\"150%\" is out of range: a percentage is from 0% to 100%"},
    {"-5%", "\"-5%\" is out of range: a percentage is from 0% to 100%"},
    {"ten%", "\"ten%\" is not a percentage: write a number such as 10% or 0.5%"},
    {"10 %", "\"10 %\" is not a percentage: remove the spaces"},
    {"-0", NULL},
    {"100.001", NULL},
    {"100.0000000000000000001%", NULL},
    {"101", NULL},
    {"1000%", NULL},
    {"99999999999999999999999%", NULL},
    {"nan", NULL},
    {"NaN%", NULL},
    {"inf", NULL},
    {"-inf", NULL},
    {"infinity", NULL},
    {"0x10", NULL},
    {"0x1p3", NULL},
    {"1e2", NULL},
    {"10%%", NULL},
    {"%", NULL},
    {"%10", NULL},
    {".5%", NULL},
    {"5.%", NULL},
    {"+5%", NULL},
    {"10.5.5", NULL},
    {"1,5%", NULL},
    {" 10%", NULL},
    {"10% ", NULL},
    {"10%x", NULL},
    {"-", NULL},
};

Test(percent, rejects_invalid)
{
	for (size_t i = 0; i < N(pct_bad); i++) {
		double p = 42;
		char why[256] = "";
		int rc = mg_percent_parse(&p, pct_bad[i].in, why, sizeof(why));
		cr_expect_eq(rc, MG_EINVALID, "\"%s\": rc %d", pct_bad[i].in, rc);
		cr_expect_eq(p, 42, "\"%s\": output written on error", pct_bad[i].in);
		cr_expect_neq(why[0], '\0', "\"%s\": no reason given", pct_bad[i].in);
		if (pct_bad[i].why)
			cr_expect_str_eq(why, pct_bad[i].why, "\"%s\"", pct_bad[i].in);
	}
	cr_expect_eq(mg_percent_parse(&(double){0}, NULL, NULL, 0), MG_EINVALID);
}

static const struct {
	double pct;
	const char *out;
} pct_fmt[] = {
    {0, "0%"},       {10, "10%"},       {0.5, "0.5%"},        {33.3333, "33.333%"}, {100, "100%"},
    {1.1, "1.1%"},   {0.125, "0.125%"}, {12.3456, "12.346%"}, {99.9999, "100%"},    {0.0004, "0%"},
    {-0.0001, "0%"}, {0.001, "0.001%"}, {2.50, "2.5%"},       {0.01, "0.01%"},
};

Test(percent, formats)
{
	for (size_t i = 0; i < N(pct_fmt); i++) {
		char buf[64];
		mg_percent_format(buf, sizeof(buf), pct_fmt[i].pct);
		cr_expect_str_eq(buf, pct_fmt[i].out, "%.17g", pct_fmt[i].pct);
	}
}

Test(percent, round_trips_three_decimals)
{
	/* Both sides are the correctly rounded double of i/1000, so they are equal. */
	for (int i = 0; i <= 100000; i++) {
		double pct = i / 1000.0, back = -1;
		char buf[64], why[256] = "";
		mg_percent_format(buf, sizeof(buf), pct);
		int rc = mg_percent_parse(&back, buf, why, sizeof(why));
		cr_expect_eq(rc, 0, "%d: \"%s\": %s", i, buf, why);
		if (back != pct) {
			cr_expect_eq(back, pct, "%d: \"%s\" -> %.17g", i, buf, back);
			break;
		}
	}
}

/* ---- sizes ---- */

static const struct {
	const char *in;
	uint64_t bytes;
} size_ok[] = {
    {"0", 0},
    {"512", 512},
    {"512B", 512},
    {"1KB", 1000},
    {"10MB", 10000000},
    {"1GB", 1000000000},
    {"2TB", 2000000000000ULL},
    {"1KiB", 1024},
    {"64KiB", 65536},
    {"1MiB", 1048576},
    {"1GiB", 1073741824},
    {"1TiB", 1099511627776ULL},
    {"1K", 1024},
    {"1k", 1024},
    {"2M", 2097152},
    {"2m", 2097152},
    {"1G", 1073741824},
    {"1g", 1073741824},
    {"1T", 1099511627776ULL},
    {"1t", 1099511627776ULL},
    {"1.5KiB", 1536},
    {"1.5K", 1536},
    {"0.5KB", 500},
    {"0.25k", 256},
    {"2.5MB", 2500000},
    {"0.001KB", 1},
    {"0.0009765625KiB", 1},
    {"1.0", 1},
    {"1.000B", 1},
    {"18446744073709551615", UINT64_MAX},
    {"18446744073709551615B", UINT64_MAX},
    {"16777215TiB", 16777215ULL << 40},
    {"18446744073709551.615KB", UINT64_MAX},
};

Test(size, parses_valid)
{
	for (size_t i = 0; i < N(size_ok); i++) {
		uint64_t b = 1;
		char why[256] = "";
		int rc = mg_size_parse(&b, size_ok[i].in, why, sizeof(why));
		cr_expect_eq(rc, 0, "\"%s\": rc %d (%s)", size_ok[i].in, rc, why);
		cr_expect_eq(b, size_ok[i].bytes, "\"%s\": got %llu", size_ok[i].in,
		             (unsigned long long)b);
	}
}

static const struct {
	const char *in;
	const char *why;
} size_bad[] = {
    {"", "empty size; write e.g. 512, 64KiB or 10MB"},
    {"10 MB", "\"10 MB\" is not a size: remove the spaces (write 10MB)"},
    {"10kb", "\"10kb\" is not a size: write the unit as KB (units are case-sensitive)"},
    {"10mib", "\"10mib\" is not a size: write the unit as MiB (units are case-sensitive)"},
    {"10b", "\"10b\" is not a size: write the unit as B (units are case-sensitive)"},
    {"10XB",
     "\"10XB\" is not a size: unknown unit \"XB\" (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"},
    {"1.1KiB", "\"1.1KiB\" is not a whole number of bytes"},
    {"-1", "\"-1\" is not a size: sizes cannot be negative"},
    {"KB", "\"KB\" is not a size: write a number of bytes such as 512, 64KiB or 10MB"},
    {"1.K", "\"1.K\" is not a size: write a digit after the decimal point"},
    {"18446744073709551616",
     "\"18446744073709551616\" is too large; the largest size is 18446744073709551615 bytes"},
    {"16777216TiB", NULL},
    {"18446744073709551.616KB", NULL},
    {"99999999999999999999999", NULL},
    {"1.5", NULL},
    {"0.1B", NULL},
    {"0.0001KB", NULL},
    {"1.00000000000000000001K", NULL},
    {"+1", NULL},
    {".5K", NULL},
    {"1..5K", NULL},
    {"1e3", NULL},
    {"0x10", NULL},
    {"10Kib", NULL},
    {"10kB", NULL},
    {"10 ", NULL},
    {" 10", NULL},
    {"10bytes", NULL},
    {"10PB", NULL},
    {"10KBB", NULL},
    {"nan", NULL},
    {"inf", NULL},
};

Test(size, rejects_invalid)
{
	for (size_t i = 0; i < N(size_bad); i++) {
		uint64_t b = 42;
		char why[256] = "";
		int rc = mg_size_parse(&b, size_bad[i].in, why, sizeof(why));
		cr_expect_eq(rc, MG_EINVALID, "\"%s\": rc %d", size_bad[i].in, rc);
		cr_expect_eq(b, 42, "\"%s\": output written on error", size_bad[i].in);
		cr_expect_neq(why[0], '\0', "\"%s\": no reason given", size_bad[i].in);
		if (size_bad[i].why)
			cr_expect_str_eq(why, size_bad[i].why, "\"%s\"", size_bad[i].in);
	}
}

/* ---- URLs ---- */

static const char *const url_ok[] = {
    "http://example.com",
    "https://example.com/health",
    "https://example.com:8443/a/b?c=d#e",
    "HTTPS://Example.COM/",
    "http://10.0.0.1:8080/healthz",
    "http://[::1]:9090/metrics",
    "http://localhost/",
    "https://svc.namespace.svc.cluster.local/ready",
};

Test(url, accepts_http_and_https)
{
	for (size_t i = 0; i < N(url_ok); i++) {
		char why[256] = "";
		cr_expect_eq(mg_url_check(url_ok[i], why, sizeof(why)), 0, "\"%s\": %s", url_ok[i],
		             why);
	}
}

static const struct {
	const char *in;
	const char *why;
} url_bad[] = {
    {"", "empty URL; write e.g. https://example.com/health"},
    {"ftp://example.com/x", "the URL's scheme is \"ftp\"; use http or https"},
    {"postgres://db/x", "the URL's scheme is \"postgres\"; use http or https"},
    {"file:///etc/passwd", "the URL's scheme is \"file\"; use http or https"},
    {"example.com/health", "the URL has no scheme; write http:// or https:// before the host"},
    {"localhost:8080/health", "the URL has no scheme; write http:// or https:// before the host"},
    {"http://", "the URL has no host; write e.g. https://example.com/health"},
    {"https://:8080/", "the URL has no host; write e.g. https://example.com/health"},
    {"https://user:secret@example.com/",
     "the URL has a user name or password in it: credentials in URLs end up in logs; use token_env instead"},
    {"http://exa mple.com/",
     "the URL contains spaces or control characters; percent-encode them (a space is %20)"},
    {"http:///path", "write the URL as http://host/path"},
    {"http:/host", "write the URL as http://host/path"},
    {"http://token@example.com/", NULL},
    {"http://:secret@example.com/", NULL},
    {"http://@example.com/", NULL},
    {"http:host", "write the URL as http://host/path"},
    {"http://${host}/health", "not a valid URL: bad hostname"},
    {"https://example.com:99999/",
     "not a valid URL: port number was not a decimal number between 0 and 65535"},
    {" http://h/", NULL},
    {"http://h/\n", NULL},
    {"//example.com/", NULL},
    {"https//example.com", NULL},
    {"not a url", NULL},
};

Test(url, rejects_invalid)
{
	for (size_t i = 0; i < N(url_bad); i++) {
		char why[256] = "";
		int rc = mg_url_check(url_bad[i].in, why, sizeof(why));
		cr_expect_eq(rc, MG_EINVALID, "\"%s\": rc %d", url_bad[i].in, rc);
		cr_expect_neq(why[0], '\0', "\"%s\": no reason given", url_bad[i].in);
		if (url_bad[i].why)
			cr_expect_str_eq(why, url_bad[i].why, "\"%s\"", url_bad[i].in);
		/* The URL may carry a secret, so the reason must not repeat it. */
		cr_expect_null(strstr(why, "secret"), "\"%s\": %s", url_bad[i].in, why);
	}
	cr_expect_eq(mg_url_check(NULL, NULL, 0), MG_EINVALID);
}

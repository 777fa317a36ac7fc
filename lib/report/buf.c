/*
 * The text the renderers build: a growable buffer, and the one escaping step
 * for text of other parties (the journal's reasons, operators and errors,
 * Prometheus' messages, the plan's names). It is valid in HTML text and
 * attributes and in XML (the SVG of -o svg): markup characters become
 * references, and what would be invisible or reorder the text (C0 controls
 * but tab and newline, DEL, C1 controls, the bidirectional overrides and
 * isolates, bytes that are not UTF-8) is written visibly as \xHH or \uHHHH,
 * the same rule as the terminal filter's (docs/cli.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "str.h"

static void put_n(rp_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t c = b->cap ? b->cap : 4096;
		while (c < b->len + n + 1)
			c *= 2;
		char *p = realloc(b->s, c);
		if (!p) {
			b->oom = true;
			return;
		}
		b->s = p;
		b->cap = c;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void mg_report_buf_put(rp_buf *b, const char *s)
{
	put_n(b, s, strlen(s));
}

void mg_report_buf_printf(rp_buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	char *s = mg_str_vprintf(fmt, ap);
	va_end(ap);
	if (!s) {
		b->oom = true;
		return;
	}
	mg_report_buf_put(b, s);
	free(s);
}

/* The length of the UTF-8 sequence at s and its code point, or 0 when it is not one. */
static size_t utf8(const unsigned char *s, unsigned *cp)
{
	unsigned c = s[0];
	size_t n;
	unsigned min;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if ((c & 0xe0) == 0xc0) {
		n = 2;
		*cp = c & 0x1f;
		min = 0x80;
	} else if ((c & 0xf0) == 0xe0) {
		n = 3;
		*cp = c & 0x0f;
		min = 0x800;
	} else if ((c & 0xf8) == 0xf0) {
		n = 4;
		*cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		*cp = (*cp << 6) | (s[i] & 0x3f);
	}
	if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
		return 0;
	return n;
}

void mg_report_buf_esc(rp_buf *b, const char *text)
{
	const unsigned char *s = (const unsigned char *)(text ? text : "");
	char tmp[16];
	while (*s) {
		unsigned cp;
		size_t n = utf8(s, &cp);
		if (!n) {
			snprintf(tmp, sizeof(tmp), "\\x%02x", *s);
			mg_report_buf_put(b, tmp);
			s++;
			continue;
		}
		switch (cp) {
		case '&':
			mg_report_buf_put(b, "&amp;");
			break;
		case '<':
			mg_report_buf_put(b, "&lt;");
			break;
		case '>':
			mg_report_buf_put(b, "&gt;");
			break;
		case '"':
			mg_report_buf_put(b, "&quot;");
			break;
		case '\'':
			mg_report_buf_put(b, "&#39;");
			break;
		case '\t':
		case '\n':
			put_n(b, (const char *)s, 1);
			break;
		default:
			if (cp < 0x20) {
				snprintf(tmp, sizeof(tmp), "\\x%02x", cp);
				mg_report_buf_put(b, tmp);
			} else if ((cp >= 0x7f && cp <= 0x9f) || (cp >= 0x202a && cp <= 0x202e) ||
			           (cp >= 0x2066 && cp <= 0x2069) || cp == 0xfffe || cp == 0xffff) {
				snprintf(tmp, sizeof(tmp), "\\u%04x", cp);
				mg_report_buf_put(b, tmp);
			} else {
				put_n(b, (const char *)s, n);
			}
		}
		s += n;
	}
}

void mg_report_time(char *buf, size_t size, int64_t ms)
{
	mg_time_format(buf, size, ms);
}

void mg_report_duration(char *buf, size_t size, int64_t ms)
{
	if (ms < 1000) {
		snprintf(buf, size, "%lldms", (long long)(ms < 0 ? 0 : ms));
		return;
	}
	long long s = (long long)(ms / 1000), d = s / 86400, h = s % 86400 / 3600,
	          m = s % 3600 / 60, sec = s % 60;
	size_t n = 0;
	buf[0] = '\0';
	if (d && n < size)
		n += (size_t)snprintf(buf + n, size - n, "%lldd ", d);
	if ((d || h) && n < size)
		n += (size_t)snprintf(buf + n, size - n, "%lldh ", h);
	if ((d || h || m) && n < size)
		n += (size_t)snprintf(buf + n, size - n, "%lldm ", m);
	if (n < size)
		n += (size_t)snprintf(buf + n, size - n, "%llds", sec);
	(void)n;
}

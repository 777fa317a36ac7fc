/* See fuzzutil.h. */
#include "fuzzutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http_fake.h"
#include "log.h"

/* A bound on the answers one input is cut into, so one run stays short. */
#define MAX_ANSWERS 64

typedef struct {
	const char *p;
	size_t len;
} part;

static part parts[MAX_ANSWERS];
static int nparts, next, requests;

static const char *find(const char *h, size_t hlen, const char *n, size_t nlen)
{
	for (size_t i = 0; i + nlen <= hlen; i++)
		if (!memcmp(h + i, n, nlen))
			return h + i;
	return NULL;
}

static int answer(mg_http_response *out, const mg_http_request *req, void *ud, mg_error *err)
{
	(void)ud;
	requests++;
	if (next >= nparts || (parts[next].len == 1 && parts[next].p[0] == '!')) {
		next++;
		return mg_error_set(err, MG_ERROR, "cannot reach %s: fuzz: no answer", req->url);
	}
	const char *p = parts[next].p;
	size_t len = parts[next].len;
	next++;
	long status = 200;
	const char *ct = "application/json";
	size_t ctlen = strlen(ct);
	if (len >= 3 && p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
	    p[2] <= '9' && (len == 3 || p[3] == ' ' || p[3] == '\n')) {
		status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
		const char *nl = memchr(p, '\n', len);
		size_t line = nl ? (size_t)(nl - p) : len;
		ct = line > 4 ? p + 4 : NULL;
		ctlen = line > 4 ? line - 4 : 0;
		p += nl ? line + 1 : line;
		len -= nl ? line + 1 : line;
	}
	out->status = status;
	out->body = malloc(len + 1);
	if (!out->body)
		return mg_error_oom(err);
	memcpy(out->body, p, len);
	out->body[len] = '\0';
	out->len = len;
	if (ct) {
		out->content_type = malloc(ctlen + 1);
		if (!out->content_type) {
			free(out->body);
			out->body = NULL;
			return mg_error_oom(err);
		}
		memcpy(out->content_type, ct, ctlen);
		out->content_type[ctlen] = '\0';
	}
	return 0;
}

void fz_http_start(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	nparts = next = requests = 0;
	while (nparts < MAX_ANSWERS) {
		const char *sep = find(p, (size_t)(end - p), "\n===\n", 5);
		parts[nparts].p = p;
		parts[nparts].len = sep ? (size_t)(sep - p) : (size_t)(end - p);
		nparts++;
		if (!sep)
			break;
		p = sep + 5;
	}
	mg_http_fake_set(answer, NULL);
}

int fz_http_requests(void)
{
	return requests;
}

void fz_http_stop(void)
{
	mg_http_fake_set(NULL, NULL);
	nparts = next = 0;
}

static char tmpdir[256];

static void remove_tmpdir(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char p[600];
		snprintf(p, sizeof(p), "%s/%s", tmpdir, e->d_name);
		unlink(p);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
}

const char *fz_temp_file(const char *name, const void *data, size_t size)
{
	static char path[600];
	if (!tmpdir[0]) {
		const char *t = getenv("TMPDIR");
		snprintf(tmpdir, sizeof(tmpdir), "%s/mg-fuzz-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(tmpdir)) {
			perror("fuzz: mkdtemp");
			abort();
		}
		atexit(remove_tmpdir);
	}
	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	FILE *f = fopen(path, "wb");
	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
		perror(path);
		abort();
	}
	return path;
}

static void sink(mg_log_level level, const char *msg, void *ud)
{
	(void)level, (void)ud;
	volatile size_t n = strlen(msg);
	(void)n;
}

void fz_quiet_log(void)
{
	mg_log_set(sink, NULL, MG_LOG_DEBUG);
}

void fz_report(const char *what, int rc, const mg_error *err)
{
	static int verbose = -1;
	if (verbose < 0)
		verbose = getenv("FUZZ_VERBOSE") != NULL;
	if (verbose)
		fprintf(stderr, "%s: rc %d, %d requests: %s\n", what, rc, requests,
		        rc ? err->message : "ok");
}

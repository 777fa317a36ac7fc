#include "testutil.h"

#include "journal.h"
#include "kubestore.h"
#include "log.h"
#include "plan.h"
#include "storebackend.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

void tu_tmpdir_make(char *buf, size_t size, const char *tag)
{
	umask(022);
	snprintf(buf, size, "/tmp/mg-%s-XXXXXX", tag);
	cr_assert_not_null(mkdtemp(buf), "mkdtemp: %s", strerror(errno));
}

void tu_tmpdir_remove(const char *dir)
{
	if (dir && *dir)
		nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void tu_list_dir(char *out, size_t size, const char *dir)
{
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);
	cr_assert_geq(n, 0, "scandir %s: %s", dir, strerror(errno));
	out[0] = '\0';
	for (int i = 0; i < n; i++) {
		const char *s = names[i]->d_name;
		if (strcmp(s, ".") != 0 && strcmp(s, "..") != 0) {
			if (out[0])
				strncat(out, ",", size - strlen(out) - 1);
			strncat(out, s, size - strlen(out) - 1);
		}
		free(names[i]);
	}
	free(names);
}

int64_t tu_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tu_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t len = sizeof(sa);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

const char *tu_python(void)
{
	const char *p = getenv("PYTHON");
	if (p && *p)
		return p;
	return access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
}

pid_t tu_spawn_fds(char *const argv[], int in, int out, int err)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int null = open("/dev/null", O_RDWR);
		dup2(in >= 0 ? in : null, 0);
		dup2(out >= 0 ? out : null, 1);
		if (err >= 0)
			dup2(err, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

pid_t tu_promfault_start(int *port, int *in_fd, const char *opt, ...)
{
	char *argv[16] = {(char *)tu_python(), "tests/servers/promfault.py"};
	int n = 2;
	va_list ap;
	va_start(ap, opt);
	for (const char *a = opt; a && n < 15; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	argv[n] = NULL;
	int in[2], out[2];
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	pid_t pid = tu_spawn_fds(argv, in[0], out[1], -1);
	cr_assert_gt(pid, 0, "fork: %s", strerror(errno));
	close(in[0]);
	close(out[1]);
	*in_fd = in[1];
	char buf[64] = "";
	size_t len = 0;
	int64_t end = tu_now_ms() + 10000;
	while (tu_now_ms() < end && !strchr(buf, '\n') && len + 1 < sizeof(buf)) {
		struct pollfd p = {out[0], POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t r = read(out[0], buf + len, sizeof(buf) - 1 - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		buf[len] = '\0';
	}
	close(out[0]);
	cr_assert_eq(sscanf(buf, "port %d", port), 1, "promfault.py did not start: \"%s\"", buf);
	return pid;
}

extern char **environ;

pid_t tu_spawn_piped(char **argv, int *in_fd, int *out_fd)
{
	int in[2], out[2] = {-1, -1};
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	if (out_fd)
		cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	if (out_fd)
		posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	else
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0, "%s", argv[0]);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	if (in_fd)
		*in_fd = in[1];
	else
		close(in[1]);
	if (out_fd) {
		close(out[1]);
		*out_fd = out[0];
	}
	return pid;
}

void tu_stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
	}
	*pid = 0;
}

bool tu_run_ok(const char *dir, char *const argv[], char *why, size_t size)
{
	char errlog[512], text[2048] = "";
	snprintf(errlog, sizeof(errlog), "%s/cmd.err", dir);
	int fd = open(errlog, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(why, size, "%s: %s", errlog, strerror(errno));
		return false;
	}
	pid_t pid = tu_spawn_fds(argv, -1, -1, fd);
	if (pid < 0) {
		snprintf(why, size, "fork: %s", strerror(errno));
		close(fd);
		return false;
	}
	int st;
	if (waitpid(pid, &st, 0) != pid) {
		snprintf(why, size, "waitpid: %s", strerror(errno));
		close(fd);
		return false;
	}
	ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
	text[n > 0 ? n : 0] = '\0';
	close(fd);
	if (!(WIFEXITED(st) && WEXITSTATUS(st) == 0)) {
		snprintf(why, size, "%s failed: %s", argv[0], text);
		return false;
	}
	return true;
}

static const char openssl_cnf[] = "[req]\n"
                                  "distinguished_name = dn\n"
                                  "prompt = no\n"
                                  "[dn]\n"
                                  "CN = migrate test\n"
                                  "[ca]\n"
                                  "basicConstraints = critical,CA:TRUE\n"
                                  "keyUsage = critical,keyCertSign,cRLSign\n"
                                  "subjectKeyIdentifier = hash\n"
                                  "[leaf]\n"
                                  "basicConstraints = critical,CA:FALSE\n"
                                  "keyUsage = critical,digitalSignature\n"
                                  "extendedKeyUsage = serverAuth\n"
                                  "subjectAltName = IP:127.0.0.1\n";

bool tu_write_openssl_cnf(const char *dir, char *why, size_t size)
{
	char cnf[512];
	snprintf(cnf, sizeof(cnf), "%s/openssl.cnf", dir);
	FILE *f = fopen(cnf, "w");
	if (!f) {
		snprintf(why, size, "%s: %s", cnf, strerror(errno));
		return false;
	}
	fputs(openssl_cnf, f);
	if (fclose(f) != 0) {
		snprintf(why, size, "%s: %s", cnf, strerror(errno));
		return false;
	}
	return true;
}

/*
 * `openssl req -x509` making a P-256 key and a certificate (key, pem) with
 * cnf's section ext, signed by ca/cakey or self-signed when ca is NULL; one
 * place for the options every test certificate shares.
 */
static bool openssl_req(const char *dir, const char *cnf, const char *ext, const char *ca,
                        const char *cakey, const char *key, const char *pem, const char *subj,
                        char *why, size_t size)
{
	char *argv[32];
	size_t n = 0;
	argv[n++] = "openssl";
	argv[n++] = "req";
	argv[n++] = "-x509";
	argv[n++] = "-config";
	argv[n++] = (char *)cnf;
	argv[n++] = "-extensions";
	argv[n++] = (char *)ext;
	if (ca) {
		argv[n++] = "-CA";
		argv[n++] = (char *)ca;
		argv[n++] = "-CAkey";
		argv[n++] = (char *)cakey;
	}
	argv[n++] = "-newkey";
	argv[n++] = "ec";
	argv[n++] = "-pkeyopt";
	argv[n++] = "ec_paramgen_curve:prime256v1";
	argv[n++] = "-nodes";
	argv[n++] = "-keyout";
	argv[n++] = (char *)key;
	argv[n++] = "-out";
	argv[n++] = (char *)pem;
	argv[n++] = "-days";
	argv[n++] = "2";
	argv[n++] = "-subj";
	argv[n++] = (char *)subj;
	argv[n] = NULL;
	return tu_run_ok(dir, argv, why, size);
}

bool tu_make_test_ca(const char *dir, const char *prefix, char *why, size_t size)
{
	char cnf[512], pem[512], key[512];
	snprintf(cnf, sizeof(cnf), "%s/openssl.cnf", dir);
	snprintf(pem, sizeof(pem), "%s/%s.pem", dir, prefix);
	snprintf(key, sizeof(key), "%s/%s.key", dir, prefix);
	return openssl_req(dir, cnf, "ca", NULL, NULL, key, pem, "/CN=migrate test CA", why, size);
}

bool tu_make_test_certs(const char *dir, char *why, size_t size)
{
	char cnf[512], ca[512], cakey[512], pem[512], key[512];
	snprintf(cnf, sizeof(cnf), "%s/openssl.cnf", dir);
	snprintf(ca, sizeof(ca), "%s/ca.pem", dir);
	snprintf(cakey, sizeof(cakey), "%s/ca.key", dir);
	snprintf(pem, sizeof(pem), "%s/server.pem", dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	if (!tu_write_openssl_cnf(dir, why, size) || !tu_make_test_ca(dir, "ca", why, size))
		return false;
	return openssl_req(dir, cnf, "leaf", ca, cakey, key, pem, "/CN=127.0.0.1", why, size);
}

/* Reads the "port N" and "control N" lines server prints, bounded in time (10 s). */
static bool read_port_lines(int fd, const char *server, int *port, int *control, char *why,
                            size_t size)
{
	char buf[256] = "";
	size_t len = 0;
	int64_t end = tu_now_ms() + 10000;
	while (tu_now_ms() < end && len + 1 < sizeof(buf)) {
		char *nl = strchr(buf, '\n');
		if (nl && strchr(nl + 1, '\n'))
			break;
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
	}
	if (sscanf(buf, "port %d\ncontrol %d", port, control) != 2) {
		snprintf(why, size, "%s did not start: \"%s\"", server, buf);
		return false;
	}
	return true;
}

/*
 * Starts a test server (argv) with its stdin on a pipe, *in, so it exits when
 * the test process goes away, and reads the ports it prints; on failure, false
 * with why, and *pid may still hold a process for stop_server.
 */
static bool spawn_server(char *const argv[], const char *server, pid_t *pid, int *in_fd, int *port,
                         int *control, char *why, size_t size)
{
	int in[2], out[2];
	if (pipe2(in, O_CLOEXEC) != 0) {
		snprintf(why, size, "pipe: %s", strerror(errno));
		return false;
	}
	if (pipe2(out, O_CLOEXEC) != 0) {
		snprintf(why, size, "pipe: %s", strerror(errno));
		close(in[0]);
		close(in[1]);
		return false;
	}
	pid_t p = tu_spawn_fds(argv, in[0], out[1], -1);
	close(in[0]);
	close(out[1]);
	if (p < 0) {
		snprintf(why, size, "fork: %s", strerror(errno));
		close(in[1]);
		close(out[0]);
		return false;
	}
	*pid = p;
	*in_fd = in[1];
	bool ok = read_port_lines(out[0], server, port, control, why, size);
	close(out[0]);
	return ok;
}

/* Closes its stdin, SIGTERM, SIGKILL if still there after 2 s; *pid and *in become -1. */
static void stop_server(pid_t *pid, int *in)
{
	if (*in >= 0)
		close(*in);
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		int st;
		pid_t r = 0;
		for (int i = 0; i < 200 && (r = waitpid(*pid, &st, WNOHANG)) == 0; i++)
			usleep(10000);
		if (r == 0) {
			kill(*pid, SIGKILL);
			waitpid(*pid, &st, 0);
		}
	}
	*pid = -1;
	*in = -1;
}

bool tu_cloudflare_start(tu_cloudflare *s, const char *dir, const char *token, char *why,
                         size_t size)
{
	char pem[512], key[512];
	snprintf(pem, sizeof(pem), "%s/server.pem", dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	char *argv[] = {
	    (char *)tu_python(), "tests/servers/cloudflare.py", pem, key, (char *)token, NULL};
	return spawn_server(argv, "cloudflare.py", &s->pid, &s->in, &s->api_port, &s->control_port,
	                    why, size);
}

void tu_cloudflare_stop(tu_cloudflare *s)
{
	stop_server(&s->pid, &s->in);
}

static size_t discard(char *data, size_t size, size_t n, void *ud)
{
	(void)data, (void)ud;
	return size * n;
}

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
	char **buf = ud;
	size_t old = *buf ? strlen(*buf) : 0;
	*buf = realloc(*buf, old + size * n + 1);
	cr_assert_not_null(*buf);
	memcpy(*buf + old, data, size * n);
	(*buf)[old + size * n] = '\0';
	return size * n;
}

/*
 * One request to a test server's plain-HTTP control port with libcurl, not
 * the code under test: the HTTP status and the body (malloc'd, or NULL) for
 * the caller to assert on.
 */
static CURLcode control_http(int port, const char *method, const char *path, const char *body,
                             long *status, char **text)
{
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	CURL *h = curl_easy_init();
	cr_assert_not_null(h);
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, text);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	CURLcode rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return rc;
}

json_t *tu_cloudflare_ctl(const tu_cloudflare *s, const char *method, const char *path,
                          const char *body)
{
	char *text = NULL;
	long status = 0;
	CURLcode rc = control_http(s->control_port, method, path, body, &status, &text);
	cr_assert_eq(rc, CURLE_OK, "control %s %s: %s", method, path, curl_easy_strerror(rc));
	cr_assert_eq(status, 200, "control %s %s: HTTP %ld", method, path, status);
	json_error_t je;
	json_t *doc = json_loads(text ? text : "", 0, &je);
	cr_assert_not_null(doc, "control answer is not JSON: %s", je.text);
	free(text);
	return doc;
}

static bool write_text(const char *path, const char *text, char *why, size_t size)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(text, f) < 0 || fclose(f) != 0) {
		snprintf(why, size, "%s: %s", path, strerror(errno));
		if (f)
			fclose(f);
		return false;
	}
	return true;
}

/* HTTP status of GET url with plain libcurl (0: no answer), within timeout_ms. */
static long http_status(const char *url, long timeout_ms)
{
	CURL *h = curl_easy_init();
	if (!h)
		return 0;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	long status = 0;
	if (curl_easy_perform(h) == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	return status;
}

/* The last lines of a log, for a message that says why a daemon did not come up. */
static void log_tail(char *buf, size_t size, const char *path)
{
	buf[0] = '\0';
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)size - 1 ? end - (off_t)size + 1 : 0;
	ssize_t n = pread(fd, buf, size - 1, from);
	buf[n > 0 ? n : 0] = '\0';
	close(fd);
}

bool tu_prometheus_start(tu_prometheus *p, const char *dir, const char *openmetrics, char *why,
                         size_t size)
{
	memset(p, 0, sizeof(*p));
	char om[512], tsdb[512], yml[512], logf[512];
	snprintf(om, sizeof(om), "%s/data.om", dir);
	snprintf(tsdb, sizeof(tsdb), "%s/tsdb", dir);
	snprintf(yml, sizeof(yml), "%s/prometheus.yml", dir);
	snprintf(logf, sizeof(logf), "%s/prometheus.log", dir);
	if (!write_text(om, openmetrics, why, size))
		return false;
	char *create[] = {
	    "/usr/bin/promtool", "tsdb", "create-blocks-from", "openmetrics", om, tsdb, NULL};
	if (!tu_run_ok(dir, create, why, size))
		return false;
	/* no scrape targets: the data are the blocks and nothing else */
	if (!write_text(yml, "global:\n  scrape_interval: 15s\nscrape_configs: []\n", why, size))
		return false;
	int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		snprintf(why, size, "%s: %s", logf, strerror(errno));
		return false;
	}
	p->port = tu_free_port();
	char config[600], path[600], listen[64];
	snprintf(config, sizeof(config), "--config.file=%s", yml);
	snprintf(path, sizeof(path), "--storage.tsdb.path=%s", tsdb);
	snprintf(listen, sizeof(listen), "--web.listen-address=127.0.0.1:%d", p->port);
	char *argv[] = {"/usr/bin/prometheus",
	                config,
	                path,
	                "--storage.tsdb.retention.time=100y",
	                listen,
	                NULL};
	p->pid = tu_spawn_fds(argv, -1, fd, fd);
	close(fd);
	if (p->pid < 0) {
		snprintf(why, size, "fork: %s", strerror(errno));
		p->pid = 0;
		return false;
	}
	snprintf(p->url, sizeof(p->url), "http://127.0.0.1:%d", p->port);
	char ready[96];
	snprintf(ready, sizeof(ready), "%s/-/ready", p->url);
	int64_t end = tu_now_ms() + 10000;
	while (tu_now_ms() < end) {
		if (http_status(ready, 500) == 200)
			return true;
		int st;
		if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
			p->pid = 0;
			break;
		}
		usleep(50000);
	}
	char tail[1024];
	log_tail(tail, sizeof(tail), logf);
	snprintf(why, size, "prometheus on port %d %s; %s ends: %s", p->port,
	         p->pid ? "not ready within 10 s" : "exited", logf, tail);
	tu_prometheus_stop(p);
	return false;
}

void tu_prometheus_stop(tu_prometheus *p)
{
	if (p->pid > 0) {
		kill(p->pid, SIGTERM);
		int st, i;
		for (i = 0; i < 500 && waitpid(p->pid, &st, WNOHANG) == 0; i++)
			usleep(10000);
		if (i == 500) {
			kill(p->pid, SIGKILL);
			waitpid(p->pid, &st, 0);
		}
	}
	p->pid = 0;
}

static char log_text[16384];

static void log_capture_sink(mg_log_level level, const char *msg, void *ud)
{
	(void)level; /* filtered by mg_log_set's minimum */
	(void)ud;
	size_t o = strlen(log_text);
	snprintf(log_text + o, sizeof(log_text) - o, "%s\n", msg);
}

void tu_log_capture(int min_level)
{
	log_text[0] = '\0';
	mg_log_set(log_capture_sink, NULL, (mg_log_level)min_level);
}

const char *tu_log_text(void)
{
	return log_text;
}

void tu_log_capture_stop(void)
{
	mg_log_set(NULL, NULL, MG_LOG_INFO);
}

void tu_drain(int fd, char **buf, size_t *len, size_t *cap)
{
	char chunk[4096];
	ssize_t n = read(fd, chunk, sizeof(chunk));
	if (n <= 0)
		return;
	if (*len + (size_t)n + 1 > *cap) {
		*cap = (*len + (size_t)n + 1) * 2;
		*buf = realloc(*buf, *cap);
		cr_assert_not_null(*buf);
	}
	memcpy(*buf + *len, chunk, (size_t)n);
	*len += (size_t)n;
	(*buf)[*len] = '\0';
}

/* Runs migrate with the given arguments (NULL-terminated), capturing both streams. */
tu_output tu_capture(char *const args[])
{
	int out[2], err[2];
	cr_assert_eq(pipe(out), 0);
	cr_assert_eq(pipe(err), 0);
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawn_file_actions_adddup2(&fa, err[1], 2);
	posix_spawn_file_actions_addclose(&fa, out[0]);
	posix_spawn_file_actions_addclose(&fa, err[0]);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	pid_t pid;
	cr_assert_eq(posix_spawn(&pid, args[0], &fa, NULL, args, environ), 0);
	posix_spawn_file_actions_destroy(&fa);
	close(out[1]);
	close(err[1]);
	tu_output r = {0};
	r.out = calloc(1, 1);
	r.err = calloc(1, 1);
	size_t ol = 0, oc = 1, el = 0, ec = 1;
	struct pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
	int open_fds = 2;
	/* bounded: a hung binary fails the test instead of hanging the suite */
	for (int rounds = 0; open_fds && rounds < 2000; rounds++) {
		int n = poll(p, 2, 10);
		cr_assert_geq(n, 0);
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			size_t before = i ? el : ol;
			if (i)
				tu_drain(p[i].fd, &r.err, &el, &ec);
			else
				tu_drain(p[i].fd, &r.out, &ol, &oc);
			if ((i ? el : ol) == before) {
				close(p[i].fd);
				p[i].fd = -1;
				open_fds--;
			}
		}
	}
	cr_assert_eq(open_fds, 0, "migrate did not finish within 20 s");
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	return r;
}

void tu_output_free(tu_output *r)
{
	free(r->out);
	free(r->err);
	r->out = r->err = NULL;
}

/* Reads KEY=VALUE (VALUE maybe in single quotes) from vms.sh's vms.env into out, or asserts. */
static void vms_env(const char *file, const char *key, char *out, size_t size)
{
	FILE *f = fopen(file, "r");
	cr_assert_not_null(f, "%s: %s", file, strerror(errno));
	char line[4096];
	size_t klen = strlen(key);
	bool found = false;
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) != 0 || line[klen] != '=')
			continue;
		char *s = line + klen + 1;
		s[strcspn(s, "\n")] = '\0';
		size_t len = strlen(s);
		if (len >= 2 && s[0] == '\'' && s[len - 1] == '\'') {
			s[len - 1] = '\0';
			s++;
		}
		snprintf(out, size, "%s", s);
		found = true;
	}
	fclose(f);
	cr_assert(found, "%s has no %s", file, key);
}

/* Connects to addr:port once; true if something accepted. Loopback refuses at once. */
static bool tcp_accepts(const char *addr, int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, addr, &sa.sin_addr);
	bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* Starts VM i's sshd in its own mount namespace (v->pid[i]); asserts it forked. */
static void vms_spawn(tu_vms *v, int i)
{
	char cfg[300], logf[300], vmhome[300];
	snprintf(vmhome, sizeof(vmhome), "%s/vm%d/home", v->dir, i + 1);
	snprintf(cfg, sizeof(cfg), "%s/vm%d/sshd_config", v->dir, i + 1);
	snprintf(logf, sizeof(logf), "%s/vm%d/sshd.log", v->dir, i + 1);
	int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "%s: %s", logf, strerror(errno));
	/*
	 * The mounts live as long as the namespace, that is as long as this sshd. A home
	 * of its own keeps this machine's ~/.bashrc (which may take half a second) out
	 * of every command.
	 */
	char *argv[] = {"unshare",
	                "--mount",
	                "--propagation",
	                "private",
	                "sh",
	                "-c",
	                "mount --bind \"$1\" \"$2\" && mount --bind \"$3\" \"$4\" && "
	                "exec /usr/sbin/sshd -D -f \"$5\" -E \"$6\"",
	                "sh",
	                v->root[i],
	                v->path,
	                vmhome,
	                v->home,
	                cfg,
	                logf,
	                NULL};
	v->pid[i] = tu_spawn_fds(argv, -1, -1, fd);
	close(fd);
	cr_assert_gt(v->pid[i], 0, "fork: %s", strerror(errno));
}

void tu_vms_start(tu_vms *v, const char *tmpdir, int n)
{
	memset(v, 0, sizeof(*v));
	v->health_in = -1;
	cr_assert(n >= 1 && n <= TU_VMS_MAX, "tu_vms_start: %d VMs (1 to %d)", n, TU_VMS_MAX);
	v->n = n;
	snprintf(v->dir, sizeof(v->dir), "%s/vms", tmpdir);
	char count[16], why[2048], env[300];
	snprintf(count, sizeof(count), "%d", n);
	char *prep[] = {"sh", "tests/sandbox/vms.sh", "prepare", v->dir, count, NULL};
	cr_assert(tu_run_ok(tmpdir, prep, why, sizeof(why)), "%s", why);

	snprintf(env, sizeof(env), "%s/vms.env", v->dir);
	char num[32];
	vms_env(env, "VMS_PATH", v->path, sizeof(v->path));
	vms_env(env, "VMS_HOME", v->home, sizeof(v->home));
	vms_env(env, "VMS_IDENTITY", v->identity, sizeof(v->identity));
	vms_env(env, "VMS_KNOWN_HOSTS", v->known_hosts, sizeof(v->known_hosts));
	vms_env(env, "VMS_INVENTORY", v->inventory, sizeof(v->inventory));
	vms_env(env, "VMS_PORT", num, sizeof(num));
	v->port = atoi(num);
	vms_env(env, "VMS_HEALTH_PORT", num, sizeof(num));
	v->health_port = atoi(num);
	snprintf(v->hosts_yaml, sizeof(v->hosts_yaml), "%s/hosts.yaml", v->dir);
	cr_assert(v->port > 0 && v->health_port > 0, "%s: bad ports", env);

	char *health_argv[2 * TU_VMS_MAX + 5];
	char vmarg[TU_VMS_MAX][340], hport[16];
	int h = 0;
	snprintf(hport, sizeof(hport), "%d", v->health_port);
	health_argv[h++] = (char *)tu_python();
	health_argv[h++] = "tests/servers/vmhealth.py";
	health_argv[h++] = "--port";
	health_argv[h++] = hport;
	for (int i = 0; i < n; i++) {
		snprintf(v->address[i], sizeof(v->address[i]), "127.0.1.%d", i + 1);
		snprintf(v->root[i], sizeof(v->root[i]), "%s/vm%d/root", v->dir, i + 1);
		snprintf(v->name[i], sizeof(v->name[i]), "vm-%02d", i + 1);
		vms_spawn(v, i);
		snprintf(vmarg[i], sizeof(vmarg[i]), "%s=%s", v->address[i], v->root[i]);
		health_argv[h++] = "--vm";
		health_argv[h++] = vmarg[i];
	}
	health_argv[h] = NULL;
	int in[2];
	cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
	char hlog[300];
	snprintf(hlog, sizeof(hlog), "%s/vmhealth.log", v->dir);
	int hfd = open(hlog, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(hfd, 0, "%s: %s", hlog, strerror(errno));
	v->health_pid = tu_spawn_fds(health_argv, in[0], hfd, hfd);
	close(in[0]);
	close(hfd);
	v->health_in = in[1];
	cr_assert_gt(v->health_pid, 0, "fork: %s", strerror(errno));

	/* which VMs have accepted a connection on the ssh and the health port */
	bool ssh_up[TU_VMS_MAX] = {false}, health_up[TU_VMS_MAX] = {false};
	int pending = 2 * n;
	int64_t end = tu_now_ms() + 10000;
	while (pending > 0 && tu_now_ms() < end) {
		for (int i = 0; i < n; i++) {
			if (!ssh_up[i] && tcp_accepts(v->address[i], v->port)) {
				ssh_up[i] = true;
				pending--;
			}
			if (!health_up[i] && tcp_accepts(v->address[i], v->health_port)) {
				health_up[i] = true;
				pending--;
			}
			int st;
			if (v->pid[i] > 0 && waitpid(v->pid[i], &st, WNOHANG) == v->pid[i]) {
				v->pid[i] = 0;
				char logf[300], tail[1024];
				snprintf(logf, sizeof(logf), "%s/vm%d/sshd.log", v->dir, i + 1);
				log_tail(tail, sizeof(tail), logf);
				cr_assert_fail("sshd of %s exited at start; %s ends: %s",
				               v->name[i], logf, tail);
			}
		}
		if (v->health_pid > 0 && waitpid(v->health_pid, NULL, WNOHANG) == v->health_pid) {
			v->health_pid = 0;
			char tail[1024];
			log_tail(tail, sizeof(tail), hlog);
			cr_assert_fail("vmhealth.py exited at start; %s ends: %s", hlog, tail);
		}
		if (pending > 0)
			usleep(5000);
	}
	for (int i = 0; i < n; i++) {
		char logf[300], tail[1024];
		snprintf(logf, sizeof(logf), "%s/vm%d/sshd.log", v->dir, i + 1);
		log_tail(tail, sizeof(tail), logf);
		cr_assert(ssh_up[i], "sshd of %s not listening on %s:%d within 10 s; %s ends: %s",
		          v->name[i], v->address[i], v->port, logf, tail);
		cr_assert(health_up[i], "vmhealth.py not listening on %s:%d within 10 s (log %s)",
		          v->address[i], v->health_port, hlog);
	}
}

/* SIGTERM to every pid (skipping 0), then waits; SIGKILL for what is left after 2 s. */
static void stop_all(pid_t *pids, int n)
{
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	int64_t end = tu_now_ms() + 2000;
	for (int i = 0; i < n; i++) {
		while (pids[i] > 0) {
			pid_t r = waitpid(pids[i], NULL, WNOHANG);
			if (r == pids[i] || r < 0)
				pids[i] = 0;
			else if (tu_now_ms() > end) {
				kill(pids[i], SIGKILL);
				waitpid(pids[i], NULL, 0);
				pids[i] = 0;
			} else
				usleep(2000);
		}
	}
}

void tu_vms_restart(tu_vms *v, int i)
{
	cr_assert(i >= 0 && i < v->n, "tu_vms_restart: no VM %d", i);
	stop_all(&v->pid[i], 1);
	vms_spawn(v, i);
	int64_t end = tu_now_ms() + 10000;
	while (!tcp_accepts(v->address[i], v->port)) {
		int st;
		if (waitpid(v->pid[i], &st, WNOHANG) == v->pid[i] || tu_now_ms() > end) {
			char logf[300], tail[1024];
			snprintf(logf, sizeof(logf), "%s/vm%d/sshd.log", v->dir, i + 1);
			log_tail(tail, sizeof(tail), logf);
			cr_assert_fail("sshd of %s did not come back; %s ends: %s", v->name[i],
			               logf, tail);
		}
		usleep(5000);
	}
}

void tu_vms_stop(tu_vms *v)
{
	if (v->health_in >= 0)
		close(v->health_in);
	v->health_in = -1;
	stop_all(v->pid, v->n > 0 && v->n <= TU_VMS_MAX ? v->n : 0);
	stop_all(&v->health_pid, 1);
}

/* "SHA256:..." of a public key file, from ssh-keygen -l ("256 SHA256:... comment (ED25519)"). */
static void key_fingerprint(const char *pubfile, char *out, size_t size)
{
	char *argv[] = {"/usr/bin/ssh-keygen", "-l", "-f", (char *)pubfile, NULL};
	tu_output r = tu_capture(argv);
	cr_assert_eq(r.status, 0, "ssh-keygen -l -f %s: %s", pubfile, r.err);
	char fp[128] = "";
	cr_assert_eq(sscanf(r.out, "%*d %127s", fp), 1, "ssh-keygen -l said: %s", r.out);
	cr_assert(strncmp(fp, "SHA256:", 7) == 0, "ssh-keygen -l said: %s", r.out);
	snprintf(out, size, "%s", fp);
	tu_output_free(&r);
}

void tu_vms_fingerprint(const tu_vms *v, int i, char *out, size_t size)
{
	char pub[300];
	snprintf(pub, sizeof(pub), "%s/vm%d/ssh_host_ed25519_key.pub", v->dir, i + 1);
	key_fingerprint(pub, out, size);
}

/* Rewrites known_hosts without VM i's line, adding `replacement` (a whole line) if not NULL. */
static void known_hosts_replace(const tu_vms *v, int i, const char *replacement)
{
	char host[64];
	snprintf(host, sizeof(host), v->port == 22 ? "%s " : "[%s]:", v->address[i]);
	FILE *f = fopen(v->known_hosts, "r");
	cr_assert_not_null(f, "%s: %s", v->known_hosts, strerror(errno));
	char *text = NULL;
	size_t len = 0;
	FILE *w = open_memstream(&text, &len);
	cr_assert_not_null(w);
	char line[4096];
	bool found = false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, host, strlen(host)) == 0) {
			found = true;
			if (replacement)
				fputs(replacement, w);
		} else {
			fputs(line, w);
		}
	}
	fclose(f);
	fclose(w);
	cr_assert(found, "%s has no line for %s", v->known_hosts, host);
	f = fopen(v->known_hosts, "w");
	cr_assert_not_null(f, "%s: %s", v->known_hosts, strerror(errno));
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
	free(text);
}

void tu_vms_forget_host(const tu_vms *v, int i)
{
	known_hosts_replace(v, i, NULL);
}

void tu_vms_change_host_key(const tu_vms *v, int i, char *out, size_t size)
{
	char key[300], pub[320], why[1024];
	snprintf(key, sizeof(key), "%s/vm%d/other_host_key", v->dir, i + 1);
	snprintf(pub, sizeof(pub), "%s.pub", key);
	unlink(key);
	unlink(pub);
	char *gen[] = {"ssh-keygen", "-q",    "-t", "ed25519", "-N", "",
	               "-C",         "other", "-f", key,       NULL};
	cr_assert(tu_run_ok(v->dir, gen, why, sizeof(why)), "%s", why);
	FILE *f = fopen(pub, "r");
	cr_assert_not_null(f, "%s: %s", pub, strerror(errno));
	char type[64], blob[1024];
	cr_assert_eq(fscanf(f, "%63s %1023s", type, blob), 2, "%s: not a public key", pub);
	fclose(f);
	char line[1200];
	if (v->port == 22)
		snprintf(line, sizeof(line), "%s %s %s\n", v->address[i], type, blob);
	else
		snprintf(line, sizeof(line), "[%s]:%d %s %s\n", v->address[i], v->port, type, blob);
	known_hosts_replace(v, i, line);
	key_fingerprint(pub, out, size);
}

static const char kubeapi_client_cnf[] = "[req]\n"
                                         "distinguished_name = dn\n"
                                         "prompt = no\n"
                                         "[dn]\n"
                                         "CN = admin\n"
                                         "[client]\n"
                                         "basicConstraints = critical,CA:FALSE\n"
                                         "keyUsage = critical,digitalSignature\n"
                                         "extendedKeyUsage = clientAuth\n"
                                         "[named]\n"
                                         "basicConstraints = critical,CA:FALSE\n"
                                         "keyUsage = critical,digitalSignature\n"
                                         "extendedKeyUsage = serverAuth\n"
                                         "subjectAltName = DNS:" TU_KUBEAPI_SNI_NAME "\n";

/* 16 random bytes in hex, so no two runs share a token a test might find in a log. */
static void random_hex(char *out, size_t size)
{
	unsigned char b[16] = {0};
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "/dev/urandom: %s", strerror(errno));
	cr_assert_eq(read(fd, b, sizeof(b)), (ssize_t)sizeof(b));
	close(fd);
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(b) && 2 * i + 2 < size; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

static bool kubeapi_files(tu_kubeapi *k, const char *dir, char *why, size_t size)
{
	char cnf[512], cakey[512];
	snprintf(cnf, sizeof(cnf), "%s/kubeapi-client.cnf", dir);
	snprintf(cakey, sizeof(cakey), "%s/ca.key", dir);
	snprintf(k->ca, sizeof(k->ca), "%s/ca.pem", dir);
	snprintf(k->client_cert, sizeof(k->client_cert), "%s/client.pem", dir);
	snprintf(k->client_key, sizeof(k->client_key), "%s/client.key", dir);
	snprintf(k->tokens, sizeof(k->tokens), "%s/tokens.json", dir);
	snprintf(k->kubeconfig, sizeof(k->kubeconfig), "%s/kubeconfig", dir);
	if (!tu_make_test_certs(dir, why, size) || !write_text(cnf, kubeapi_client_cnf, why, size))
		return false;
	/* extendedKeyUsage clientAuth: OpenSSL on the server side refuses a serverAuth-only one */
	if (!openssl_req(dir, cnf, "client", k->ca, cakey, k->client_key, k->client_cert,
	                 "/O=system:masters/CN=admin", why, size))
		return false;
	/* the certificate served only to a client asking for TU_KUBEAPI_SNI_NAME by SNI */
	char named[512], named_key[512];
	snprintf(named, sizeof(named), "%s/named.pem", dir);
	snprintf(named_key, sizeof(named_key), "%s/named.key", dir);
	if (!openssl_req(dir, cnf, "named", k->ca, cakey, named_key, named,
	                 "/CN=" TU_KUBEAPI_SNI_NAME, why, size))
		return false;
	char a[40], b[40], text[512];
	random_hex(a, sizeof(a));
	random_hex(b, sizeof(b));
	snprintf(k->token, sizeof(k->token), "kapi-valid-%s", a);
	snprintf(k->expired_token, sizeof(k->expired_token), "kapi-expired-%s", b);
	snprintf(text, sizeof(text),
	         "{\"%s\": {\"user\": \"ci\", \"groups\": [\"deployers\"]},\n"
	         " \"%s\": {\"user\": \"ci\", \"groups\": [\"deployers\"], \"expires\": %lld}}\n",
	         k->token, k->expired_token, (long long)time(NULL) - 3600);
	return write_text(k->tokens, text, why, size);
}

static bool kubeapi_kubeconfig(const tu_kubeapi *k, char *why, size_t size)
{
	char text[4096];
	snprintf(text, sizeof(text),
	         "apiVersion: v1\n"
	         "kind: Config\n"
	         "clusters:\n"
	         "- name: kubeapi\n"
	         "  cluster:\n"
	         "    server: %s\n"
	         "    certificate-authority: %s\n"
	         "users:\n"
	         "- name: admin\n"
	         "  user:\n"
	         "    client-certificate: %s\n"
	         "    client-key: %s\n"
	         "- name: ci\n"
	         "  user:\n"
	         "    token: %s\n"
	         "- name: expired\n"
	         "  user:\n"
	         "    token: %s\n"
	         "contexts:\n"
	         "- name: cert\n"
	         "  context: {cluster: kubeapi, user: admin, namespace: default}\n"
	         "- name: token\n"
	         "  context: {cluster: kubeapi, user: ci, namespace: default}\n"
	         "- name: expired\n"
	         "  context: {cluster: kubeapi, user: expired, namespace: default}\n"
	         "current-context: cert\n",
	         k->url, k->ca, k->client_cert, k->client_key, k->token, k->expired_token);
	return write_text(k->kubeconfig, text, why, size);
}

static bool kubeapi_spawn(tu_kubeapi *k, const char *namespaces, char *why, size_t size)
{
	char pem[512], key[512], named[512], named_key[512];
	int dlen = (int)(strlen(k->ca) - strlen("/ca.pem"));
	snprintf(pem, sizeof(pem), "%.*s/server.pem", dlen, k->ca);
	snprintf(key, sizeof(key), "%.*s/server.key", dlen, k->ca);
	snprintf(named, sizeof(named), "%.*s/named.pem", dlen, k->ca);
	snprintf(named_key, sizeof(named_key), "%.*s/named.key", dlen, k->ca);
	char *argv[] = {(char *)tu_python(),
	                "tests/servers/kubeapi.py",
	                "--cert",
	                pem,
	                "--key",
	                key,
	                "--client-ca",
	                k->ca,
	                "--tokens",
	                k->tokens,
	                "--namespaces",
	                (char *)(namespaces ? namespaces : "default"),
	                "--sni-name",
	                TU_KUBEAPI_SNI_NAME,
	                "--sni-cert",
	                named,
	                "--sni-key",
	                named_key,
	                NULL};
	bool ok = spawn_server(argv, "kubeapi.py", &k->pid, &k->in, &k->port, &k->control_port, why,
	                       size);
	if (ok)
		snprintf(k->url, sizeof(k->url), "https://127.0.0.1:%d", k->port);
	return ok;
}

void tu_kubeapi_start(tu_kubeapi *k, const char *dir, const char *namespaces)
{
	*k = (tu_kubeapi)TU_KUBEAPI_INIT;
	char why[4096];
	bool ok = kubeapi_files(k, dir, why, sizeof(why)) &&
	          kubeapi_spawn(k, namespaces, why, sizeof(why)) &&
	          kubeapi_kubeconfig(k, why, sizeof(why));
	if (!ok) {
		tu_kubeapi_stop(k);
		cr_assert_fail("kubeapi: %s", why);
	}
}

/* One request to the control port with plain libcurl; asserts HTTP 200 and a JSON answer. */
static json_t *kubeapi_ctl(const tu_kubeapi *k, const char *method, const char *path,
                           const char *body)
{
	char *text = NULL;
	long status = 0;
	CURLcode rc = control_http(k->control_port, method, path, body, &status, &text);
	cr_assert_eq(rc, CURLE_OK, "kubeapi control %s %s: %s", method, path,
	             curl_easy_strerror(rc));
	cr_assert_eq(status, 200, "kubeapi control %s %s (%s): HTTP %ld: %s", method, path,
	             body ? body : "", status, text ? text : "");
	json_error_t je;
	json_t *doc = json_loads(text ? text : "", 0, &je);
	cr_assert_not_null(doc, "kubeapi control answer is not JSON: %s", je.text);
	free(text);
	return doc;
}

json_t *tu_kubeapi_control(const tu_kubeapi *k, const char *json)
{
	return kubeapi_ctl(k, "POST", "/__control", json);
}

int tu_kubeapi_control_status(const tu_kubeapi *k, const char *json, long *status, char **text)
{
	*text = NULL;
	return control_http(k->control_port, "POST", "/__control", json, status, text) == CURLE_OK
	           ? 0
	           : -1;
}

json_t *tu_kubeapi_requests(const tu_kubeapi *k)
{
	return kubeapi_ctl(k, "GET", "/__requests", NULL);
}

void tu_kubeapi_stop(tu_kubeapi *k)
{
	stop_server(&k->pid, &k->in);
}

const char *tu_at(const char *fmt, ...)
{
	static char buf[8][1024];
	static int i;
	i = (i + 1) % 8;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf[i], sizeof(buf[i]), fmt, ap);
	va_end(ap);
	return buf[i];
}

const char *tu_migrate_bin(void)
{
	const char *b = getenv("MIGRATE_BIN");
	cr_assert_not_null(b, "MIGRATE_BIN is not set; run through `make integration`");
	return b;
}

static tu_output migrate_va(const char *plan, const char *first, va_list ap)
{
	char *args[64];
	size_t n = 0;
	args[n++] = (char *)tu_migrate_bin();
	if (plan) {
		args[n++] = "-p";
		args[n++] = (char *)plan;
	}
	for (const char *a = first; a && n < 63; a = va_arg(ap, const char *))
		args[n++] = (char *)a;
	args[n] = NULL;
	return tu_capture(args);
}

tu_output tu_migrate(const char *first, ...)
{
	va_list ap;
	va_start(ap, first);
	tu_output r = migrate_va(NULL, first, ap);
	va_end(ap);
	return r;
}

tu_output tu_migrate_plan(const char *plan, const char *first, ...)
{
	va_list ap;
	va_start(ap, first);
	tu_output r = migrate_va(plan, first, ap);
	va_end(ap);
	return r;
}

json_t *tu_json_doc(const tu_output *r)
{
	json_error_t e;
	json_t *doc = json_loads(r->out, 0, &e);
	cr_assert_not_null(doc, "stdout is not one JSON document (%s): %s\nstderr: %s", e.text,
	                   r->out, r->err);
	return doc;
}

void tu_write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

void tu_write_file_in(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	char *slash = strrchr(path, '/');
	*slash = '\0';
	char cmd[700];
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
	cr_assert_eq(system(cmd), 0);
	*slash = '/';
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	fclose(f);
}

void tu_make_artifact(const char *dir, const char *version, bool healthy)
{
	char src[512], why[2048];
	snprintf(src, sizeof(src), "%s/art/src-%s", dir, version);
	mkdir(tu_at("%s/art", dir), 0755);
	cr_assert_eq(mkdir(src, 0755), 0, "%s: %s", src, strerror(errno));
	tu_write_file(tu_at("%s/version.txt", src), version);
	if (healthy)
		tu_write_file(tu_at("%s/healthy", src), "");
	char *argv[] = {"/bin/tar", "-czf", (char *)tu_at("%s/art/app-%s.tar.gz", dir, version),
	                "-C",       src,    ".",
	                NULL};
	cr_assert(tu_run_ok(dir, argv, why, sizeof(why)), "%s", why);
}

void tu_vms_hosts_lines(const tu_vms *v, int n, char *out, size_t size)
{
	char line[256];
	out[0] = '\0';
	FILE *f = fopen(v->hosts_yaml, "r");
	cr_assert_not_null(f, "%s", v->hosts_yaml);
	for (int i = 0; (!n || i < n) && fgets(line, sizeof(line), f); i++) {
		strncat(out, "    ", size - strlen(out) - 1);
		strncat(out, line, size - strlen(out) - 1);
	}
	fclose(f);
}

const char *tu_vms_current(const tu_vms *v, int i)
{
	static char buf[4][256];
	static int k;
	k = (k + 1) % 4;
	ssize_t n = readlink(tu_at("%s/current", v->root[i]), buf[k], sizeof(buf[k]) - 1);
	buf[k][n > 0 ? n : 0] = '\0';
	return buf[k];
}

int tu_set_immutable(const char *file, bool on)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC), flags = 0, rc = -1;
	if (fd >= 0 && ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0) {
		flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
		rc = ioctl(fd, FS_IOC_SETFLAGS, &flags);
	}
	if (fd >= 0)
		close(fd);
	return rc;
}

static void *relay_main(void *ud)
{
	tu_relay *rl = ud;
	for (;;) {
		int c = accept(rl->fd, NULL, NULL);
		if (c < 0)
			return NULL; /* shut down */
		char line[8192];
		size_t n = 0;
		while (n < sizeof(line) - 1) {
			ssize_t got = read(c, line + n, sizeof(line) - 1 - n);
			if (got <= 0)
				break;
			n += (size_t)got;
			if (memchr(line, '\n', n))
				break;
		}
		line[n] = '\0';
		bool set = n && strstr(line, "set weight");
		if (set && rl->delay_ms)
			usleep((useconds_t)rl->delay_ms * 1000);
		if (set && *rl->file && !rl->hooked)
			rl->hooked = tu_set_immutable(rl->file, true) == 0 ? 1 : -1;
		int h = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un a = {.sun_family = AF_UNIX};
		snprintf(a.sun_path, sizeof(a.sun_path), "%s", rl->upstream);
		if (h >= 0 && connect(h, (struct sockaddr *)&a, sizeof(a)) == 0 &&
		    write(h, line, n) == (ssize_t)n) {
			char buf[16384];
			ssize_t got;
			while ((got = read(h, buf, sizeof(buf))) > 0)
				if (write(c, buf, (size_t)got) != got)
					break;
		}
		if (h >= 0)
			close(h);
		close(c);
	}
}

void tu_relay_start(tu_relay *rl, const char *listen_path, const char *upstream_path,
                    const char *file, int delay_ms)
{
	memset(rl, 0, sizeof(*rl));
	rl->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(rl->fd, 0);
	rl->delay_ms = delay_ms;
	snprintf(rl->upstream, sizeof(rl->upstream), "%s", upstream_path);
	if (file)
		snprintf(rl->file, sizeof(rl->file), "%s", file);
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", listen_path);
	cr_assert_eq(bind(rl->fd, (struct sockaddr *)&a, sizeof(a)), 0, "%s: %s", listen_path,
	             strerror(errno));
	cr_assert_eq(listen(rl->fd, 16), 0);
	cr_assert_eq(pthread_create(&rl->thread, NULL, relay_main, rl), 0);
}

void tu_relay_stop(tu_relay *rl)
{
	shutdown(rl->fd, SHUT_RDWR);
	pthread_join(rl->thread, NULL);
	close(rl->fd);
	rl->fd = -1;
}

void tu_edit_file(const char *path, const char *from, const char *to)
{
	char *text = NULL;
	size_t len = 0, cap = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
	for (int i = 0; i < 10000; i++) {
		size_t before = len;
		tu_drain(fd, &text, &len, &cap);
		if (len == before)
			break;
	}
	close(fd);
	cr_assert_not_null(text, "%s is empty", path);
	char *at = strstr(text, from);
	cr_assert(at && !strstr(at + 1, from), "%s is not once in %s", from, path);
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	cr_assert_eq(fclose(f), 0);
	free(text);
}

/* ------------------------------------------------------------ the state backend switch */

static tu_kubeapi state_k = TU_KUBEAPI_INIT;

bool tu_state_kube(void)
{
	const char *b = getenv("MG_TEST_STATE_BACKEND");
	if (!b || !*b || !strcmp(b, "local"))
		return false;
	cr_assert_str_eq(b, "kubernetes", "MG_TEST_STATE_BACKEND is local or kubernetes, not %s",
	                 b);
	return true;
}

const char *tu_state_backend(void)
{
	return tu_state_kube() ? "kubernetes" : "local";
}

/* text without its top-level `state:` section (the key's line and the indented ones after). */
static char *without_state_section(const char *text)
{
	size_t n = strlen(text);
	char *out = malloc(n + 1);
	cr_assert_not_null(out);
	size_t o = 0;
	bool in_state = false;
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
		bool top = *p != ' ' && *p != '\t' && *p != '\n' && *p != '#';
		if (top)
			in_state = !strncmp(p, "state:", 6);
		if (!in_state) {
			memcpy(out + o, p, len);
			o += len;
		}
		p += len;
	}
	out[o] = '\0';
	return out;
}

void tu_state_plan(const char *plan, const char *dir)
{
	if (!tu_state_kube())
		return;
	if (state_k.pid <= 0) {
		char sdir[512];
		snprintf(sdir, sizeof(sdir), "%s/kubestate", dir);
		cr_assert(mkdir(sdir, 0700) == 0 || errno == EEXIST, "%s: %s", sdir,
		          strerror(errno));
		setenv("NO_PROXY", "127.0.0.1,localhost", 1);
		unsetenv("https_proxy");
		unsetenv("HTTPS_PROXY");
		unsetenv("ALL_PROXY");
		tu_kubeapi_start(&state_k, sdir, "default");
	}
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(plan, "r");
	cr_assert_not_null(f, "%s: %s", plan, strerror(errno));
	char buf[4096];
	size_t got;
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
		text = realloc(text, len + got + 1);
		cr_assert_not_null(text);
		memcpy(text + len, buf, got);
		len += got;
	}
	fclose(f);
	if (!text)
		text = calloc(1, 1);
	text[len] = '\0';
	char *kept = without_state_section(text);
	free(text);
	size_t kl = strlen(kept);
	f = fopen(plan, "w");
	cr_assert_not_null(f, "%s: %s", plan, strerror(errno));
	fprintf(f,
	        "%s%s"
	        "state:\n"
	        "  backend: kubernetes\n"
	        "  lease: 5s\n"
	        "  kubernetes:\n"
	        "    kubeconfig: %s\n"
	        "    namespace: default\n",
	        kept, kl && kept[kl - 1] != '\n' ? "\n" : "", state_k.kubeconfig);
	cr_assert_eq(fclose(f), 0);
	free(kept);
}

void tu_state_stop(void)
{
	tu_kubeapi_stop(&state_k);
}

const tu_kubeapi *tu_state_server(void)
{
	return state_k.pid > 0 ? &state_k : NULL;
}

int tu_state_store_open(mg_store **out, const char *plan, const char *state_dir, bool existing,
                        mg_error *err)
{
	mg_plan *p = NULL;
	int rc = mg_plan_load(&p, plan, 0, err);
	if (rc)
		return rc;
	rc = mg_kube_store_open_plan(out, p, state_dir, existing, NULL, 0, err);
	mg_plan_free(p);
	return rc;
}

mg_store *tu_state_store(const char *plan, const char *state_dir, bool existing)
{
	mg_store *s = NULL;
	mg_error err = MG_ERROR_INIT;
	int rc = tu_state_store_open(&s, plan, state_dir, existing, &err);
	cr_assert_eq(rc, 0, "the %s store of %s: %s", tu_state_backend(), plan, err.message);
	mg_error_clear(&err);
	return s;
}

json_t *tu_state_journal(const char *plan, const char *state_dir)
{
	mg_store *s = tu_state_store(plan, state_dir, true);
	mg_error err = MG_ERROR_INIT;
	json_t *recs = NULL;
	size_t skipped = 0;
	cr_assert_eq(mg_journal_read(&recs, &skipped, s, 0, &err), 0, "%s", err.message);
	cr_assert_eq(skipped, 0, "%zu journal records skipped", skipped);
	mg_store_free(s);
	return recs;
}

char *tu_state_journal_text(const char *plan, const char *state_dir)
{
	json_t *recs = tu_state_journal(plan, state_dir), *rec;
	size_t i, len = 0;
	char *out = calloc(1, 1);
	cr_assert_not_null(out);
	json_array_foreach(recs, i, rec)
	{
		char *line = json_dumps(rec, JSON_COMPACT);
		cr_assert_not_null(line);
		size_t n = strlen(line);
		out = realloc(out, len + n + 2);
		cr_assert_not_null(out);
		memcpy(out + len, line, n);
		out[len + n] = '\n';
		len += n + 1;
		out[len] = '\0';
		free(line);
	}
	json_decref(recs);
	return out;
}

/* The whole file at path (malloc'd), NULL if it cannot be read. */
static char *slurp_file(const char *path)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	char *text = NULL;
	size_t len = 0, got;
	char buf[8192];
	while ((got = fread(buf, 1, sizeof(buf), f)) > 0) {
		text = realloc(text, len + got + 1);
		cr_assert_not_null(text);
		memcpy(text + len, buf, got);
		len += got;
	}
	fclose(f);
	if (!text)
		text = calloc(1, 1);
	text[len] = '\0';
	return text;
}

char *tu_state_doc_text(const char *plan, const char *state_dir, const char *name)
{
	mg_store *s = tu_state_store(plan, state_dir, false);
	char *text = NULL;
	if (mg_store_remote(s)) {
		mg_error err = MG_ERROR_INIT;
		size_t len = 0;
		char *version = NULL;
		int rc = mg_store_doc_read(s, name, &text, &len, &version, &err);
		cr_assert(rc == 0 || rc == MG_ENOTFOUND, "%s: %s", name, err.message);
		free(version);
		if (rc) {
			text = NULL;
			mg_error_clear(&err);
		}
	} else {
		text = slurp_file(tu_at("%s/%s.json", mg_store_path(s), name));
	}
	mg_store_free(s);
	return text;
}

char *tu_state_everything(const char *plan, const char *state_dir)
{
	char *out = calloc(1, 1);
	size_t len = 0;
	cr_assert_not_null(out);
	if (!tu_state_kube()) {
		mg_store *s = tu_state_store(plan, state_dir, false);
		const char *files[] = {"journal.jsonl", "state.json", "fleet.json", "lock"};
		for (size_t i = 0; i < 4; i++) {
			char *t = slurp_file(tu_at("%s/%s", mg_store_path(s), files[i]));
			if (!t)
				continue;
			size_t n = strlen(t);
			out = realloc(out, len + n + 2);
			cr_assert_not_null(out);
			memcpy(out + len, t, n);
			out[len + n] = '\n';
			len += n + 1;
			out[len] = '\0';
			free(t);
		}
		mg_store_free(s);
		return out;
	}
	if (state_k.pid <= 0)
		return out;
	json_t *reqs = tu_kubeapi_requests(&state_k), *q;
	size_t i;
	json_array_foreach(reqs, i, q)
	{
		char *t = json_dumps(json_object_get(q, "body"), JSON_ENCODE_ANY);
		if (!t)
			continue;
		size_t n = strlen(t);
		out = realloc(out, len + n + 2);
		cr_assert_not_null(out);
		memcpy(out + len, t, n);
		out[len + n] = '\n';
		len += n + 1;
		out[len] = '\0';
		free(t);
	}
	json_decref(reqs);
	return out;
}

void tu_state_write_raw(const char *plan, const char *state_dir, const char *text)
{
	mg_store *s = tu_state_store(plan, state_dir, false);
	mg_error err = MG_ERROR_INIT;
	if (mg_store_remote(s)) {
		cr_assert_eq(mg_store_doc_write(s, "state", text, strlen(text), NULL, false, &err),
		             0, "%s", err.message);
	} else {
		char file[600];
		snprintf(file, sizeof(file), "%s/state.json", mg_store_path(s));
		tu_write_file(file, text);
	}
	mg_store_free(s);
}

bool tu_state_written(const char *local_dir)
{
	if (!tu_state_kube()) {
		struct stat sb;
		return stat(local_dir, &sb) == 0;
	}
	if (state_k.pid <= 0)
		return false;
	json_t *reqs = tu_kubeapi_requests(&state_k), *q;
	size_t i;
	bool wrote = false;
	json_array_foreach(reqs, i, q)
	{
		const char *m = json_string_value(json_object_get(q, "method"));
		if (m && strcmp(m, "GET") != 0)
			wrote = true;
	}
	json_decref(reqs);
	return wrote;
}

int64_t tu_state_wait_unlocked(const char *plan, const char *state_dir)
{
	mg_store *s = tu_state_store(plan, state_dir, true);
	mg_error err = MG_ERROR_INIT;
	int64_t t0 = tu_now_ms();
	for (;;) {
		bool held = false;
		mg_lock_holder h;
		memset(&h, 0, sizeof(h));
		cr_assert_eq(mg_store_lock_probe(&held, &h, s, &err), 0, "%s", err.message);
		if (!held)
			break;
		cr_assert_lt(tu_now_ms() - t0, 15000, "the lock of %s is still held by %s pid %ld",
		             plan, h.operator_, h.pid);
		usleep(100 * 1000);
	}
	mg_store_free(s);
	return tu_now_ms() - t0;
}

void tu_state_local_only(const char *why)
{
	if (tu_state_kube())
		cr_skip_test("local state only, skipped under MG_TEST_STATE_BACKEND=kubernetes: %s",
		             why);
}

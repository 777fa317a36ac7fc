#include "testutil.h"

#include "log.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

bool tu_make_test_ca(const char *dir, const char *prefix, char *why, size_t size)
{
	char cnf[512], pem[512], key[512];
	snprintf(cnf, sizeof(cnf), "%s/openssl.cnf", dir);
	snprintf(pem, sizeof(pem), "%s/%s.pem", dir, prefix);
	snprintf(key, sizeof(key), "%s/%s.key", dir, prefix);
	char *argv[] = {"openssl",
	                "req",
	                "-x509",
	                "-config",
	                cnf,
	                "-extensions",
	                "ca",
	                "-newkey",
	                "ec",
	                "-pkeyopt",
	                "ec_paramgen_curve:prime256v1",
	                "-nodes",
	                "-keyout",
	                key,
	                "-out",
	                pem,
	                "-days",
	                "2",
	                "-subj",
	                "/CN=migrate test CA",
	                NULL};
	return tu_run_ok(dir, argv, why, size);
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
	char *argv[] = {"openssl", "req",      "-x509",
	                "-config", cnf,        "-extensions",
	                "leaf",    "-CA",      ca,
	                "-CAkey",  cakey,      "-newkey",
	                "ec",      "-pkeyopt", "ec_paramgen_curve:prime256v1",
	                "-nodes",  "-keyout",  key,
	                "-out",    pem,        "-days",
	                "2",       "-subj",    "/CN=127.0.0.1",
	                NULL};
	return tu_run_ok(dir, argv, why, size);
}

/* Reads the "port N" and "control N" lines, bounded in time. */
static bool read_ports(tu_cloudflare *s, int fd, char *why, size_t size)
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
	if (sscanf(buf, "port %d\ncontrol %d", &s->api_port, &s->control_port) != 2) {
		snprintf(why, size, "cloudflare.py did not start: \"%s\"", buf);
		return false;
	}
	return true;
}

bool tu_cloudflare_start(tu_cloudflare *s, const char *dir, const char *token, char *why,
                         size_t size)
{
	int in[2], out[2];
	if (!(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0)) {
		snprintf(why, size, "pipe: %s", strerror(errno));
		return false;
	}
	char pem[512], key[512];
	snprintf(pem, sizeof(pem), "%s/server.pem", dir);
	snprintf(key, sizeof(key), "%s/server.key", dir);
	char *argv[] = {
	    (char *)tu_python(), "tests/servers/cloudflare.py", pem, key, (char *)token, NULL};
	pid_t pid = tu_spawn_fds(argv, in[0], out[1], -1);
	if (pid < 0) {
		snprintf(why, size, "fork: %s", strerror(errno));
		return false;
	}
	s->pid = pid;
	close(in[0]);
	close(out[1]);
	s->in = in[1];
	bool ok = read_ports(s, out[0], why, size);
	close(out[0]);
	return ok;
}

void tu_cloudflare_stop(tu_cloudflare *s)
{
	if (s->in >= 0)
		close(s->in);
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		int st;
		for (int i = 0; i < 200 && waitpid(s->pid, &st, WNOHANG) == 0; i++)
			usleep(10000);
		kill(s->pid, SIGKILL);
		waitpid(s->pid, &st, WNOHANG);
	}
	s->pid = -1;
	s->in = -1;
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

json_t *tu_cloudflare_ctl(const tu_cloudflare *s, const char *method, const char *path,
                          const char *body)
{
	char url[128];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", s->control_port, path);
	CURL *h = curl_easy_init();
	cr_assert_not_null(h);
	char *text = NULL;
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &text);
	if (body)
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
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

/*
 * exec credential plugins (client.authentication.k8s.io/v1, v1beta1), run
 * as client-go runs them: the command with its args and extra env, and
 * KUBERNETES_EXEC_INFO saying we cannot prompt. Its stdout holds the
 * credential and is never shown; its stderr is what it wants the user to
 * read, so it goes to the log.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "kube.h"
#include "log.h"
#include "secret.h"

#define DEFAULT_EXEC_TIMEOUT_MS 30000
/* An ExecCredential is a few KiB; more is not one. */
#define MAX_STDOUT (1u << 20)

extern char **environ;

/* RFC 3339 ("2024-05-01T10:00:00Z", fractions and offsets allowed) to Unix time; -1 if not. */
static int64_t parse_rfc3339(const char *s)
{
	struct tm tm = {0};
	const char *p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!p)
		return -1;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++)
			;
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int h = (p[1] - '0') * 10 + (p[2] - '0'), m = (p[4] - '0') * 10 + (p[5] - '0');
		off = (int64_t)(h * 3600 + m * 60) * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -1;
	}
	if (*p)
		return -1;
	return (int64_t)timegm(&tm) - off;
}

/* Logs the complete lines in buf; flush: the buffer is full (or eof: the stream ended). */
static void log_stderr_lines(const char *cmd, char *buf, size_t *len, bool flush, bool eof)
{
	char *start = buf, *nl;
	while ((nl = memchr(start, '\n', *len - (size_t)(start - buf))) != NULL) {
		*nl = '\0';
		if (*start)
			mg_log(MG_LOG_INFO, "exec plugin %s: %s", cmd, start);
		start = nl + 1;
	}
	size_t rest = *len - (size_t)(start - buf);
	if (flush && rest) {
		/*
		 * A full buffer without a newline is logged up to its last blank, so a
		 * token is not split across two messages where neither half is recognised.
		 */
		size_t cut = rest;
		if (!eof)
			for (size_t b = rest; b > 0 && rest - b < 512; b--)
				if (start[b - 1] == ' ' || start[b - 1] == '\t') {
					cut = b - 1;
					break;
				}
		if (cut == rest || cut == 0) {
			start[rest] = '\0';
			mg_log(MG_LOG_INFO, "exec plugin %s: %s", cmd, start);
			rest = 0;
		} else {
			start[cut] = '\0';
			mg_log(MG_LOG_INFO, "exec plugin %s: %s", cmd, start);
			start += cut + 1;
			rest -= cut + 1;
		}
	}
	memmove(buf, start, rest);
	*len = rest;
}

static char **build_env(const mg_kube_exec_config *e)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + e->nenv + 2, sizeof(char *));
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "KUBERNETES_EXEC_INFO=", 21) != 0)
			env[k++] = environ[i];
	for (size_t i = 0; i < e->nenv; i++)
		env[k++] = e->env[i];
	char *info;
	/* spec.cluster only when the kubeconfig asks for it (provideClusterInfo), as client-go */
	if (asprintf(&info,
	             "KUBERNETES_EXEC_INFO={\"apiVersion\":\"%s\",\"kind\":\"ExecCredential\","
	             "\"spec\":{%s%s%s\"interactive\":false}}",
	             e->api_version, e->cluster_json ? "\"cluster\":" : "",
	             e->cluster_json ? e->cluster_json : "", e->cluster_json ? "," : "") < 0) {
		free(env);
		return NULL;
	}
	env[k++] = info;
	env[k] = NULL;
	return env;
}

static int run(const mg_kube_exec_config *e, int64_t timeout_ms, char **out, size_t *outlen,
               mg_error *err)
{
	char *cmd = NULL;
	if (strchr(e->command, '/') && e->command[0] != '/') {
		if (asprintf(&cmd, "%s/%s", e->dir, e->command) < 0)
			return mg_error_oom(err);
	} else if (!(cmd = strdup(e->command))) {
		return mg_error_oom(err);
	}
	char **argv = calloc(e->nargs + 2, sizeof(char *));
	char **env = build_env(e);
	int opipe[2] = {-1, -1}, epipe[2] = {-1, -1}, rc = 0;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	bool fa_ok = false, attr_ok = false;
	pid_t pid = -1;
	char *obuf = NULL, ebuf[4096];
	size_t olen = 0, elen = 0;
	if (!argv || !env) {
		rc = mg_error_oom(err);
		goto out;
	}
	argv[0] = cmd;
	for (size_t i = 0; i < e->nargs; i++)
		argv[i + 1] = e->args[i];
	if (pipe2(opipe, O_CLOEXEC) || pipe2(epipe, O_CLOEXEC)) {
		rc = mg_error_set(err, MG_EIO, "cannot run exec plugin %s: %s", e->command,
		                  strerror(errno));
		goto out;
	}
	fa_ok = posix_spawn_file_actions_init(&fa) == 0;
	attr_ok = posix_spawnattr_init(&attr) == 0;
	if (!fa_ok || !attr_ok ||
	    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) ||
	    posix_spawn_file_actions_adddup2(&fa, opipe[1], 1) ||
	    posix_spawn_file_actions_adddup2(&fa, epipe[1], 2) ||
	    /* its own process group, so a timeout kills whatever it started too */
	    posix_spawnattr_setpgroup(&attr, 0) ||
	    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP)) {
		rc = mg_error_oom(err);
		goto out;
	}
	int serr = posix_spawnp(&pid, cmd, &fa, &attr, argv, env);
	if (serr) {
		pid = -1;
		rc = mg_error_set(err, MG_ERROR, "cannot run exec plugin %s: %s%s%s", e->command,
		                  strerror(serr), e->install_hint ? "; " : "",
		                  e->install_hint ? e->install_hint : "");
		goto out;
	}
	close(opipe[1]);
	close(epipe[1]);
	opipe[1] = epipe[1] = -1;
	int64_t end = mg_clock_ms() + timeout_ms;
	bool ofin = false, efin = false, timed_out = false;
	while (!ofin || !efin) {
		int64_t left = end - mg_clock_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd p[2] = {{ofin ? -1 : opipe[0], POLLIN, 0},
		                      {efin ? -1 : epipe[0], POLLIN, 0}};
		int n = poll(p, 2, (int)(left > 100 ? 100 : left));
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (p[0].revents) {
			char chunk[4096];
			ssize_t r = read(opipe[0], chunk, sizeof(chunk));
			if (r <= 0) {
				ofin = true;
			} else if (olen + (size_t)r < MAX_STDOUT) {
				char *nb = realloc(obuf, olen + (size_t)r + 1);
				if (!nb) {
					ofin = true;
					continue;
				}
				obuf = nb;
				memcpy(obuf + olen, chunk, (size_t)r);
				olen += (size_t)r;
				obuf[olen] = '\0';
				explicit_bzero(chunk, sizeof(chunk));
			}
		}
		if (p[1].revents) {
			ssize_t r = read(epipe[0], ebuf + elen, sizeof(ebuf) - 1 - elen);
			if (r <= 0) {
				efin = true;
			} else {
				elen += (size_t)r;
				log_stderr_lines(e->command, ebuf, &elen, elen == sizeof(ebuf) - 1,
				                 false);
			}
		}
	}
	log_stderr_lines(e->command, ebuf, &elen, true, true);
	int status = 0;
	if (timed_out) {
		kill(-pid, SIGKILL);
		waitpid(pid, &status, 0);
		rc = mg_error_set(err, MG_ERROR,
		                  "exec plugin %s did not finish within %.1f s; it may be waiting "
		                  "for input it cannot get (migrate runs non-interactively)",
		                  e->command, (double)timeout_ms / 1000.0);
		goto out;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(status) || WEXITSTATUS(status) != 0) {
		int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
		rc = mg_error_set(err, MG_ERROR,
		                  "exec plugin %s failed (exit status %d); its messages are in the "
		                  "log%s%s",
		                  e->command, code, code == 127 && e->install_hint ? "; " : "",
		                  code == 127 && e->install_hint ? e->install_hint : "");
		goto out;
	}
	*out = obuf ? obuf : calloc(1, 1);
	*outlen = olen;
	obuf = NULL;
out:
	if (obuf) {
		explicit_bzero(obuf, olen);
		free(obuf);
	}
	for (int i = 0; i < 2; i++) {
		if (opipe[i] >= 0)
			close(opipe[i]);
		if (epipe[i] >= 0)
			close(epipe[i]);
	}
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	if (env) {
		size_t k = 0;
		while (env[k])
			k++;
		if (k)
			free(env[k - 1]); /* KUBERNETES_EXEC_INFO, the only one we allocated */
	}
	free(env);
	free(argv);
	free(cmd);
	return rc;
}

/* A copy of a credential, registered so it is masked wherever it shows up; NULL if out of memory.
 */
static char *dup_secret(const char *s)
{
	char *d = s ? strdup(s) : NULL;
	if (d && mg_secret_register(d)) {
		explicit_bzero(d, strlen(d));
		free(d);
		d = NULL;
	}
	return d;
}

int mg_kube_exec_run(const mg_kube_exec_config *e, int64_t timeout_ms, char **token,
                     char **cert_pem, char **key_pem, int64_t *expires_unix, mg_error *err)
{
	*token = *cert_pem = *key_pem = NULL;
	*expires_unix = 0;
	char *out = NULL;
	size_t len = 0;
	int rc = run(e, timeout_ms > 0 ? timeout_ms : DEFAULT_EXEC_TIMEOUT_MS, &out, &len, err);
	if (rc)
		return rc;
	json_error_t jerr;
	json_t *doc = json_loadb(out, len, 0, &jerr);
	explicit_bzero(out, len);
	free(out);
	/* nothing of stdout goes into a message: it holds the credential */
	if (!json_is_object(doc)) {
		json_decref(doc);
		return mg_error_set(err, MG_ERROR,
		                    "exec plugin %s did not print an ExecCredential (its output is "
		                    "not a JSON object)",
		                    e->command);
	}
	const char *av = json_string_value(json_object_get(doc, "apiVersion"));
	const char *kind = json_string_value(json_object_get(doc, "kind"));
	json_t *status = json_object_get(doc, "status");
	const char *tok = json_string_value(json_object_get(status, "token"));
	const char *cert = json_string_value(json_object_get(status, "clientCertificateData"));
	const char *key = json_string_value(json_object_get(status, "clientKeyData"));
	const char *exp = json_string_value(json_object_get(status, "expirationTimestamp"));
	if (!av || strcmp(av, e->api_version) != 0)
		rc = mg_error_set(
		    err, MG_ERROR,
		    "exec plugin %s returned apiVersion %s, but the kubeconfig asks for "
		    "%s; update the plugin or the kubeconfig's exec.apiVersion",
		    e->command, av ? av : "(none)", e->api_version);
	else if (!kind || strcmp(kind, "ExecCredential") != 0)
		rc = mg_error_set(err, MG_ERROR,
		                  "exec plugin %s returned kind %s, not ExecCredential", e->command,
		                  kind ? kind : "(none)");
	else if (!json_is_object(status))
		rc = mg_error_set(err, MG_ERROR,
		                  "exec plugin %s returned an ExecCredential without "
		                  "status",
		                  e->command);
	else if ((cert && *cert) != (key && *key))
		rc = mg_error_set(err, MG_ERROR,
		                  "exec plugin %s returned clientCertificateData without "
		                  "clientKeyData or the other way round; both are needed",
		                  e->command);
	else if (!(tok && *tok) && !(cert && *cert))
		rc = mg_error_set(err, MG_ERROR,
		                  "exec plugin %s returned neither status.token nor "
		                  "status.clientCertificateData",
		                  e->command);
	else if (exp && (*expires_unix = parse_rfc3339(exp)) < 0)
		rc = mg_error_set(err, MG_ERROR,
		                  "exec plugin %s returned status.expirationTimestamp %s, not an "
		                  "RFC 3339 time",
		                  e->command, exp);
	if (!rc && tok && *tok)
		for (const char *p = tok; *p; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
				rc = mg_error_set(err, MG_ERROR,
				                  "exec plugin %s returned a token with spaces or "
				                  "control characters",
				                  e->command);
				break;
			}
	if (!rc) {
		*token = tok && *tok ? dup_secret(tok) : NULL;
		*cert_pem = cert && *cert ? dup_secret(cert) : NULL;
		*key_pem = key && *key ? dup_secret(key) : NULL;
		if ((tok && *tok && !*token) || (cert && *cert && (!*cert_pem || !*key_pem)))
			rc = mg_error_oom(err);
	}
	/* jansson's copies of the credential: wipe before freeing */
	json_t *v;
	if ((v = json_object_get(status, "token")) && json_string_value(v))
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
	if ((v = json_object_get(status, "clientKeyData")) && json_string_value(v))
		explicit_bzero((char *)json_string_value(v), json_string_length(v));
	json_decref(doc);
	return rc;
}

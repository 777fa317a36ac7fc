/*
 * The rendered tree checked by the real `nginx -t`, laid out as the pod will
 * see it: root + mount path + each item's path, nginx run with the mount as
 * its prefix and with -g 'daemon off;' as the official image's CMD runs it.
 *
 * A pod has what this machine may not: the Secret's files, the image's
 * directories, cluster DNS. Those are simulated inside root, never on this
 * machine, and every difference is listed in the notes. Absolute paths are
 * moved under root in the checked copy only; line numbers are kept (a
 * dropped directive becomes blanks) so nginx's messages point at the lines
 * of the rendered files.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "fs.h"
#include "internal.h"
#include "log.h"
#include "secret.h"

#define OUTPUT_MAX (256 * 1024)

/*
 * Runs argv (no shell) with stdin on /dev/null and stdout + stderr into
 * *out (malloc'd). Returns the exit status, 128+signal, or -1 when it could
 * not start (errno set); a run past timeout_ms is killed and returns -2.
 */
static int run(char *const argv[], long timeout_ms, char **out)
{
	*out = NULL;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -1;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 2);
	posix_spawnattr_init(&at);
	sigset_t mask, def;
	sigemptyset(&mask);
	sigemptyset(&def);
	sigaddset(&def, SIGPIPE);
	sigaddset(&def, SIGINT);
	sigaddset(&def, SIGTERM);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&at, &mask);
	posix_spawnattr_setsigdefault(&at, &def);
	pid_t pid;
	int src = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	close(pfd[1]);
	if (src) {
		close(pfd[0]);
		errno = src;
		return -1;
	}
	cm_buf b = {0};
	long deadline = mg_clock_ms() + timeout_ms;
	bool timed_out = false;
	for (;;) {
		long left = deadline - mg_clock_ms();
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd pf = {pfd[0], POLLIN, 0};
		int r = poll(&pf, 1, (int)(left < 1000 ? left : 1000));
		if (r < 0 && errno != EINTR)
			break;
		if (r <= 0)
			continue;
		char chunk[4096];
		ssize_t n = read(pfd[0], chunk, sizeof(chunk));
		if (n > 0 && b.n < OUTPUT_MAX)
			mg_cm_buf_add(&b, chunk, (size_t)n);
		else if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			break;
	}
	close(pfd[0]);
	if (timed_out)
		kill(pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	*out = mg_cm_buf_take(&b);
	if (timed_out)
		return -2;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* name as given when it has a '/', else the first executable in PATH, /usr/sbin, /usr/local/sbin.
 */
static char *find_binary(const char *name)
{
	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	const char *path = getenv("PATH");
	char *dirs =
	    mg_str_printf("%s:/usr/sbin:/usr/local/sbin:/sbin", path ? path : "/usr/bin:/bin");
	char *found = NULL, *save = NULL;
	for (char *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		char *cand = mg_cm_join(*d ? d : ".", name);
		struct stat st;
		if (cand && stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
			found = cand;
		else
			free(cand);
	}
	free(dirs);
	return found;
}

typedef struct {
	mg_cm *cm;
	mg_cm_private *p;
	const char *root;
	cm_edits edits;
	char *pem;      /* placeholder certificate and key, or NULL */
	bool pem_tried; /* openssl ran (or was not found) */
	char *nginx;
	int rc;
	mg_error *err;
} verify;

static void note(verify *V, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(verify *V, const char *fmt, ...)
{
	mg_cm_verify_result *r = &V->cm->verify;
	va_list ap;
	va_start(ap, fmt);
	char *s = mg_str_vprintf(fmt, ap);
	va_end(ap);
	if (!s)
		return;
	for (size_t i = 0; i < r->nnotes; i++)
		if (!strcmp(r->notes[i], s)) {
			free(s);
			return;
		}
	char **v = realloc(r->notes, (r->nnotes + 1) * sizeof(*v));
	if (!v) {
		free(s);
		return;
	}
	r->notes = v;
	v[r->nnotes++] = s;
}

static int mkdirs(verify *V, const char *dir)
{
	int rc = mg_fs_mkdirs(dir, 0755, V->err);
	if (rc && !V->rc)
		V->rc = rc;
	return rc;
}

static int write_file(verify *V, const char *path, const void *data, size_t len, mode_t mode)
{
	char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash)
		*slash = '\0';
	int rc = dir ? mkdirs(V, dir) : MG_ENOMEM;
	free(dir);
	if (rc)
		return rc;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len) {
		if (fd >= 0)
			close(fd);
		V->rc = mg_error_set(V->err, MG_EIO, "cannot write %s: %s", path, strerror(errno));
		return V->rc;
	}
	close(fd);
	return 0;
}

/* The argument as render left it: its edit, or the parsed value. */
static char *current_value(verify *V, const mg_ngx_directive *d, uint32_t i)
{
	const char *e = mg_cm_edit_find(&V->p->edits, V->p, d, i);
	if (!e)
		return strdup(d->args[i]);
	/* an edit holds the quoted text; render only writes bare paths, so unquote simply */
	size_t n = strlen(e);
	if (n >= 2 && e[0] == '"' && e[n - 1] == '"')
		return strndup(e + 1, n - 2);
	return strdup(e);
}

/* Where a path nginx resolves against its prefix (-p) ends up in the checked copy. */
static char *under_root(verify *V, const char *v)
{
	if (v[0] == '/')
		return mg_cm_join(V->root, v);
	char *prefix = mg_cm_join(V->root, V->cm->mount_path);
	char *r = prefix ? mg_cm_join(prefix, v) : NULL;
	free(prefix);
	return r;
}

static void parent_dir(verify *V, const char *path, const char *shown, const char *why)
{
	char *dir = strdup(path);
	char *slash = dir ? strrchr(dir, '/') : NULL;
	if (slash && slash != dir) {
		*slash = '\0';
		struct stat st;
		const char *rel = dir + strlen(V->root);
		bool tmp = !strcmp(rel, "/tmp") || !strncmp(rel, "/tmp/", 5);
		if (stat(dir, &st) != 0 && !mkdirs(V, dir) && !tmp) {
			char *sd = strdup(shown);
			char *ss = sd ? strrchr(sd, '/') : NULL;
			if (ss && ss != sd)
				*ss = '\0';
			note(
			    V,
			    "%s: the image must provide this directory (%s); created for the check",
			    sd ? sd : shown, why);
			free(sd);
		}
	}
	free(dir);
}

/* Replaces the whole directive by blanks, keeping its line breaks. */
static void blank(verify *V, const mg_ngx_directive *d)
{
	cm_span term;
	size_t off = mg_cm_offset(V->p, d);
	if (off == (size_t)-1 || mg_cm_spans(V->p, d, NULL, &term))
		return;
	const mg_ngx_file *f = mg_nginxconf_file(V->p->conf, d->file);
	char *s = strndup(f->data + off, term.end - off);
	if (!s)
		return;
	for (char *c = s; *c; c++)
		if (*c != '\n')
			*c = ' ';
	mg_cm_edits_add(&V->edits, d->file, off, term.end, s);
	free(s);
}

static const char *placeholder_pem(verify *V)
{
	if (V->pem_tried)
		return V->pem;
	V->pem_tried = true;
	char *openssl = find_binary("openssl");
	if (!openssl) {
		note(V, "openssl is not installed: no placeholder certificates, so nginx -t cannot "
		        "load the Secret's certificates");
		return NULL;
	}
	char *dir = mg_cm_join(V->root, ".migrate-verify");
	char *key = mg_cm_join(V->root, ".migrate-verify/placeholder.key");
	char *crt = mg_cm_join(V->root, ".migrate-verify/placeholder.crt");
	if (!dir || !key || !crt || mkdirs(V, dir)) {
		free(dir);
		free(key);
		free(crt);
		free(openssl);
		return NULL;
	}
	free(dir);
	char *argv[] = {openssl,
	                "req",
	                "-x509",
	                "-newkey",
	                "ec",
	                "-pkeyopt",
	                "ec_paramgen_curve:prime256v1",
	                "-nodes",
	                "-days",
	                "2",
	                "-subj",
	                "/CN=migrate verify placeholder",
	                "-keyout",
	                key,
	                "-out",
	                crt,
	                NULL};
	char *out = NULL;
	int st = run(argv, 20000, &out);
	char *k = NULL, *c = NULL;
	size_t kl = 0, cl = 0;
	mg_error e = MG_ERROR_INIT;
	if (st == 0 && !mg_fs_read_all(&k, &kl, key, &e) && !mg_fs_read_all(&c, &cl, crt, &e))
		V->pem = mg_str_printf("%s%s", k, c);
	else
		note(V, "openssl could not make a placeholder certificate (%s)",
		     out && *out ? out : "no output");
	mg_error_clear(&e);
	free(k);
	free(c);
	free(out);
	free(key);
	free(crt);
	free(openssl);
	return V->pem;
}

static void placeholder(verify *V, const cm_ref *r, const char *value)
{
	char *pp = value[0] == '/' ? strdup(value) : NULL;
	if (!pp) {
		/* relative: the conf prefix, which is where the main file is mounted */
		char *main = mg_cm_join(V->cm->mount_path, V->cm->main_path);
		char *slash = main ? strrchr(main, '/') : NULL;
		if (slash)
			*slash = '\0';
		pp = main ? mg_cm_join(main, value) : NULL;
		free(main);
	}
	char *at = pp ? mg_cm_join(V->root, pp) : NULL;
	if (!at) {
		free(pp);
		return;
	}
	struct stat st;
	if (stat(at, &st) == 0)
		goto done; /* the same file named twice */
	if (r->kind == CM_REF_SECRET_PEM) {
		const char *pem = placeholder_pem(V);
		if (pem)
			write_file(V, at, pem, strlen(pem), 0600);
		if (pem)
			note(V,
			     "%s: from the Secret; a throwaway certificate and key stand in for it",
			     pp);
	} else if (r->kind == CM_REF_SECRET_DH) {
		/* RFC 7919 ffdhe2048 as openssl prints it: public parameters, not a secret */
		static const char dh[] =
		    "-----BEGIN DH PARAMETERS-----\n"
		    "MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n"
		    "+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a\n"
		    "87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7\n"
		    "YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi\n"
		    "7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD\n"
		    "ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==\n"
		    "-----END DH PARAMETERS-----\n";
		write_file(V, at, dh, sizeof(dh) - 1, 0600);
		note(V, "%s: from the Secret; standard DH parameters (ffdhe2048) stand in for it",
		     pp);
	} else {
		/* a session ticket key must be 48 or 80 bytes; the others are text files */
		static const char bytes[81] =
		    "migrate-verify-placeholder-migrate-verify-placeholder-"
		    "migrate-verify-placeholder\n";
		bool ticket = !strcmp(r->d->name, "ssl_session_ticket_key");
		write_file(V, at, bytes, ticket ? 80 : sizeof(bytes) - 1, 0600);
		note(V, "%s: from the Secret; a placeholder file stands in for it", pp);
	}
done:
	free(at);
	free(pp);
}

static void resolve_addr(verify *V, const cm_ref *r)
{
	const char *v = r->d->args[r->arg];
	char *host = strndup(v + r->host_start, r->host_end - r->host_start);
	if (!host)
		return;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	if (getaddrinfo(host, NULL, &hints, &res) == 0) {
		freeaddrinfo(res);
		free(host);
		return;
	}
	char *nv = mg_str_printf("%.*s127.0.0.1%s", (int)r->host_start, v, v + r->host_end);
	if (nv && mg_cm_edit_arg(V->p, &V->edits, r->d, r->arg, nv) == 0)
		note(V,
		     "%s does not resolve here: checked as 127.0.0.1 (in the cluster it must "
		     "resolve)",
		     host);
	free(nv);
	free(host);
}

static void apply_ref(verify *V, const cm_ref *r)
{
	const mg_ngx_directive *d = r->d;
	if (r->arg >= d->nargs || r->kind == CM_REF_INLINE)
		return;
	if (r->kind == CM_REF_ADDR) {
		resolve_addr(V, r);
		return;
	}
	if (r->kind == CM_REF_USER) {
		const char *u = d->args[0];
		const char *g = d->nargs > 1 ? d->args[1] : NULL;
		if (geteuid() == 0 && (!getpwnam(u) || (g && !getgrnam(g)))) {
			blank(V, d);
			note(V, "user %s%s%s: unknown on this machine, dropped for the check", u,
			     g ? " " : "", g ? g : "");
		}
		return;
	}
	if (r->kind == CM_REF_SECRET_DROP) {
		blank(V, d);
		note(V, "%s %s: no placeholder can stand in for it; dropped for the check", d->name,
		     d->args[0]);
		return;
	}
	char *v = current_value(V, d, r->arg);
	if (!v)
		return;
	if (r->kind == CM_REF_LOG && (!strcmp(v, "/dev/stdout") || !strcmp(v, "/dev/stderr"))) {
		free(v);
		return;
	}
	if (r->kind == CM_REF_SECRET_PEM || r->kind == CM_REF_SECRET_DH ||
	    r->kind == CM_REF_SECRET_BYTES)
		placeholder(V, r, v);
	char *moved = under_root(V, v);
	if (moved && v[0] == '/')
		mg_cm_edit_arg(V->p, &V->edits, d, r->arg, moved);
	if (moved && (r->kind == CM_REF_LOG || r->kind == CM_REF_PID || r->kind == CM_REF_TEMP)) {
		char *shown = v[0] == '/' ? strdup(v) : mg_cm_join(V->cm->mount_path, v);
		if (shown)
			parent_dir(V, moved, shown,
			           r->kind == CM_REF_LOG   ? d->name
			           : r->kind == CM_REF_PID ? "pid"
			                                   : d->name);
		free(shown);
	}
	free(moved);
	free(v);
}

/* The built-in access log and temp paths are this machine's; point them into root. */
static void http_defaults(verify *V)
{
	mg_cm_private *p = V->p;
	if (!p->http)
		return;
	cm_span term;
	if (mg_cm_spans(p, p->http, NULL, &term))
		return;
	cm_buf b = {0};
	if (!p->http_access_log) {
		char *log = mg_cm_join(V->root, "/var/log/nginx/access.log");
		if (log) {
			mg_cm_buf_printf(&b, " access_log %s;", log);
			parent_dir(V, log, "/var/log/nginx/access.log", "the built-in access_log");
		}
		free(log);
	}
	for (int i = 0; i < 5; i++) {
		if (p->http_temp & (1u << i))
			continue;
		char *t = mg_cm_join(V->root, mg_cm_http_temp[i][1]);
		if (t) {
			mg_cm_buf_printf(&b, " %s %s;", mg_cm_http_temp[i][0], t);
			parent_dir(V, t, mg_cm_http_temp[i][1], "the built-in temp paths");
		}
		free(t);
	}
	char *ins = mg_cm_buf_take(&b);
	if (ins && *ins) {
		char *text = mg_str_printf("{%s", ins);
		if (text)
			mg_cm_edits_add(&V->edits, p->http->file, term.start, term.end, text);
		free(text);
	}
	free(ins);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

/* Every occurrence of root in s replaced by with, so messages show the pod's paths. */
static char *replace_root(const char *s, const char *root, const char *with)
{
	cm_buf b = {0};
	size_t rl = strlen(root);
	while (*s) {
		const char *hit = strstr(s, root);
		if (!hit) {
			mg_cm_buf_str(&b, s);
			break;
		}
		mg_cm_buf_add(&b, s, (size_t)(hit - s));
		mg_cm_buf_str(&b, with);
		s = hit + rl;
	}
	return mg_cm_buf_take(&b);
}

static char *unroot(const char *s, const char *root)
{
	return replace_root(s, root, "");
}

static char *summary_of(const char *out, bool ok)
{
	if (ok)
		return strdup("passed");
	const char *emerg = strstr(out, "[emerg] ");
	if (!emerg)
		emerg = strstr(out, "[alert] ");
	if (emerg) {
		const char *msg = strstr(emerg, ": ");
		msg = msg ? msg + 2 : emerg + 8;
		return strndup(msg, strcspn(msg, "\n"));
	}
	/* the last non-empty line */
	const char *last = out;
	for (const char *c = out; *c; c++)
		if (*c == '\n' && c[1] && c[1] != '\n')
			last = c + 1;
	return strndup(last, strcspn(last, "\n"));
}

/* --- secrets in nginx's output ------------------------------------------------------------ */

/*
 * nginx quotes what it read (unknown directive "...", cannot load certificate
 * key "data:..."). What lint flagged as secret material must not reach the
 * output through it: the words of a file excluded as a secret, and a key or
 * secret word written in the configuration. Render keeps those files out of
 * the checked copy, so this is the second line: every place one of those
 * words appears in the output is masked. (The general scrubber is
 * lib/secret.h; this is only the check's own output.)
 */
#define MASK_MIN_BARE 4 /* shorter words are masked only where nginx quotes them whole */
#define MASK_PREFIX                                                                                \
	16                  /* a longer word is masked from this many bytes on (nginx cuts long    \
	                       lines, so the rest may be missing) */
#define MASK_MAX_WORDS 4096 /* beyond, the output is withheld rather than searched */
#define MASK_TEXT      "<secret>"

typedef struct {
	const char **v;
	size_t n, cap;
	bool too_many, oom;
} words;

static void words_add(words *w, const char *s)
{
	if (!s || !*s || w->too_many || w->oom)
		return;
	if (w->n == MASK_MAX_WORDS) {
		w->too_many = true;
		return;
	}
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 64;
		const char **v = realloc(w->v, cap * sizeof(*v));
		if (!v) {
			w->oom = true;
			return;
		}
		w->v = v;
		w->cap = cap;
	}
	w->v[w->n++] = s;
}

static void words_of(words *w, const mg_ngx_directive *d, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (d[i].is_comment)
			continue;
		words_add(w, d[i].name);
		for (uint32_t k = 0; k < d[i].nargs; k++)
			words_add(w, d[i].args[k]);
		if (d[i].has_block)
			words_of(w, d[i].block, d[i].nblock);
	}
}

/* Longest first, so a word is masked whole before a shorter one inside it could be. */
static int by_length(const void *a, const void *b)
{
	size_t la = strlen(*(const char *const *)a), lb = strlen(*(const char *const *)b);
	return la < lb ? 1 : la > lb ? -1 : 0;
}

/* How many bytes of out at i are secret word w (0: none), by the rules above. */
static size_t mask_match(const char *out, size_t i, size_t len, const char *w)
{
	size_t wl = strlen(w);
	if (wl < MASK_MIN_BARE) {
		bool quoted = i > 0 && out[i - 1] == '"' && i + wl < len && out[i + wl] == '"';
		return quoted && !memcmp(out + i, w, wl) ? wl : 0;
	}
	size_t need = wl < MASK_PREFIX ? wl : MASK_PREFIX;
	if (len - i < need || memcmp(out + i, w, need))
		return 0;
	size_t m = need;
	while (m < wl && i + m < len && out[i + m] == w[m])
		m++;
	return m;
}

/* out with every secret word masked (malloc'd; NULL when out of memory). */
static char *mask_secrets(verify *V, const char *out)
{
	mg_cm_private *p = V->p;
	words w = {0};
	size_t nfiles = mg_nginxconf_nfiles(p->conf);
	for (size_t i = 0; p->secret_file && i < nfiles; i++)
		if (p->secret_file[i]) {
			const mg_ngx_file *f = mg_nginxconf_file(p->conf, i);
			words_of(&w, f->dirs, f->ndirs);
		}
	for (size_t i = 0; i < p->nrefs; i++) {
		const cm_ref *r = &p->refs[i];
		if (r->kind != CM_REF_INLINE || r->arg >= r->d->nargs)
			continue;
		const char *v = r->d->args[r->arg];
		words_add(&w, v);
		if (!strncmp(v, "data:", 5))
			words_add(&w, v + 5);
	}
	if (w.oom) {
		free(w.v);
		return NULL;
	}
	if (w.too_many) {
		free(w.v);
		note(V,
		     "nginx's output is withheld: the files excluded as secrets hold more than %d "
		     "words, too many to mask in it",
		     MASK_MAX_WORDS);
		return strdup("(withheld: it may quote a file excluded as a secret)\n");
	}
	if (!w.n) {
		free(w.v);
		return strdup(out);
	}
	qsort(w.v, w.n, sizeof(*w.v), by_length);
	/* each word under its first byte, longest first */
	size_t first[257] = {0};
	const char **byte = malloc(w.n * sizeof(*byte));
	if (!byte) {
		free(w.v);
		return NULL;
	}
	for (size_t i = 0; i < w.n; i++)
		first[(unsigned char)w.v[i][0] + 1]++;
	for (int c = 1; c <= 256; c++)
		first[c] += first[c - 1];
	size_t fill[256];
	memcpy(fill, first, sizeof(fill));
	for (size_t i = 0; i < w.n; i++)
		byte[fill[(unsigned char)w.v[i][0]]++] = w.v[i];
	cm_buf b = {0};
	size_t len = strlen(out);
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)out[i];
		size_t m = 0;
		for (size_t k = first[c]; k < first[c + 1] && !m; k++)
			m = mask_match(out, i, len, byte[k]);
		if (m) {
			mg_cm_buf_str(&b, MASK_TEXT);
			i += m;
		} else {
			mg_cm_buf_add(&b, out + i, 1);
			i++;
		}
	}
	free(byte);
	free(w.v);
	return mg_cm_buf_take(&b);
}

/* Back to "not run", so a second check does not inherit the first one's notes. */
static void reset(mg_cm_verify_result *r)
{
	free(r->reason);
	free(r->nginx);
	free(r->version);
	free(r->command);
	free(r->output);
	free(r->summary);
	for (size_t i = 0; i < r->nnotes; i++)
		free(r->notes[i]);
	free(r->notes);
	*r = (mg_cm_verify_result){0};
}

void mg_cm_verify_skip(mg_cm *cm, const char *reason)
{
	reset(&cm->verify);
	cm->verify.reason = strdup(reason);
}

int mg_cm_verify(mg_cm *cm, const char *nginx, const char *root, long timeout_ms, mg_error *err)
{
	mg_cm_verify_result *r = &cm->verify;
	reset(r);
	verify V = {.cm = cm, .p = cm->priv, .err = err};
	V.nginx = find_binary(nginx ? nginx : "nginx");
	if (!V.nginx) {
		mg_cm_verify_skip(cm, nginx && strchr(nginx, '/')
		                          ? "nginx is not installed at the path given"
		                          : "nginx is not installed (not in PATH, /usr/sbin or "
		                            "/usr/local/sbin)");
		return 0;
	}
	r->nginx = strdup(V.nginx);

	char *out = NULL;
	char *vargv[] = {V.nginx, "-v", NULL};
	int major = 0, minor = 0, patch = 0;
	if (run(vargv, timeout_ms, &out) == 0 && out) {
		const char *v = strstr(out, "nginx/");
		if (v) {
			free(r->version);
			r->version = strndup(v, strcspn(v, " \r\n"));
			sscanf(v, "nginx/%d.%d.%d", &major, &minor, &patch);
		}
	}
	free(out);
	out = NULL;

	char tmp[4096];
	bool made = false;
	if (!root) {
		const char *t = getenv("TMPDIR");
		snprintf(tmp, sizeof(tmp), "%s/migrate-verify-XXXXXX", t && *t ? t : "/tmp");
		if (!mkdtemp(tmp)) {
			free(V.nginx);
			return mg_error_set(err, MG_EIO, "cannot make a directory for nginx -t: %s",
			                    strerror(errno));
		}
		root = tmp;
		made = true;
	}
	V.root = root;

	/* render's edits, then the check's own on top */
	for (size_t i = 0; i < V.p->edits.n; i++) {
		cm_edit *e = &V.p->edits.v[i];
		mg_cm_edits_add(&V.edits, e->file, e->start, e->end, e->text);
	}
	for (size_t i = 0; i < V.p->nrefs && !V.rc; i++)
		apply_ref(&V, &V.p->refs[i]);
	http_defaults(&V);

	char *conf_dir = mg_cm_join(root, cm->mount_path);
	for (size_t i = 0; conf_dir && i < cm->nentries && !V.rc; i++) {
		const mg_cm_entry *e = &cm->entries[i];
		const mg_ngx_file *f = mg_nginxconf_file(V.p->conf, e->file);
		bool edited = false;
		for (size_t k = 0; k < V.edits.n && !edited; k++)
			edited = V.edits.v[k].file == e->file;
		size_t len = e->len;
		char *data = edited ? mg_cm_apply(f, (uint32_t)e->file, &V.edits, &len) : NULL;
		char *at = mg_cm_join(conf_dir, e->path);
		if (at && (!edited || data))
			write_file(&V, at, edited ? data : e->data, len, 0644);
		free(at);
		free(data);
	}

	char *pid_g = NULL;
	if (!V.p->has_pid && !V.rc) {
		char *pid = mg_cm_join(root, "/var/run/nginx.pid");
		if (pid) {
			parent_dir(&V, pid, "/var/run/nginx.pid", "the built-in pid path");
			pid_g = mg_str_printf("daemon off; pid %s;", pid);
		}
		free(pid);
	}
	char *prefix = mg_str_printf("%s/", conf_dir ? conf_dir : "");
	char *main_conf = conf_dir ? mg_cm_join(conf_dir, cm->main_path) : NULL;
	bool has_e = major > 1 || (major == 1 && (minor > 19 || (minor == 19 && patch >= 5)));
	char *argv[12];
	int n = 0;
	argv[n++] = V.nginx;
	argv[n++] = "-t";
	argv[n++] = "-p";
	argv[n++] = prefix;
	argv[n++] = "-c";
	argv[n++] = main_conf;
	if (has_e) {
		/* nginx opens its built-in error log before it reads the configuration */
		argv[n++] = "-e";
		argv[n++] = "stderr";
	}
	argv[n++] = "-g";
	argv[n++] = pid_g ? pid_g : "daemon off;";
	argv[n] = NULL;
	if (pid_g)
		note(&V, "no pid directive: the built-in pid file is checked under the scratch "
		         "directory (-g 'pid ...')");

	int rc = V.rc;
	if (!rc && (!prefix || !main_conf))
		rc = mg_error_oom(err);
	if (!rc) {
		cm_buf cmd = {0};
		for (int i = 0; i < n; i++) {
			char *shown = replace_root(argv[i], root, "<root>");
			const char *s = shown ? shown : "";
			bool q = strchr(s, ' ') || strchr(s, ';');
			mg_cm_buf_printf(&cmd, "%s%s%s%s", i ? " " : "", q ? "'" : "", s,
			                 q ? "'" : "");
			free(shown);
		}
		free(r->command);
		r->command = mg_cm_buf_take(&cmd);
		mg_log(MG_LOG_DEBUG, "nginx -t in %s", root);
		int st = run(argv, timeout_ms, &out);
		if (st == -1) {
			rc = mg_error_set(err, MG_EIO, "cannot run %s: %s", V.nginx,
			                  strerror(errno));
		} else {
			r->ran = true;
			r->status = st;
			r->ok = st == 0;
			free(r->output);
			char *shown = unroot(out ? out : "", root);
			char *masked = shown ? mask_secrets(&V, shown) : NULL;
			/* and what any remote text goes through: registered secrets, tokens */
			r->output = masked ? mg_scrub_dup(masked) : NULL;
			free(masked);
			free(shown);
			free(r->summary);
			r->summary =
			    st == -2
			        ? mg_str_printf("nginx -t did not finish within %ld ms", timeout_ms)
			        : summary_of(r->output ? r->output : "", r->ok);
			if (st == -2)
				r->ok = false;
		}
		free(out);
	}
	free(prefix);
	free(main_conf);
	free(conf_dir);
	free(pid_g);
	free(V.pem);
	free(V.nginx);
	mg_cm_edits_clear(&V.edits);
	if (made)
		nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return rc;
}

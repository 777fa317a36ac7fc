/*
 * Reads the files, follows includes, and owns the result; tree.c builds the
 * tree of each file from the lexer's directives.
 *
 * Includes are read where nginx reads them (depth first,
 * while the including file is half parsed), so the first error reported is
 * the one nginx would report; a file already read is not read again, and one
 * still being read is an include cycle.
 */
#include "internal.h"
#include "str.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- errors ---- */

/* nginx's "<what> in <file>:<line>", and the diag for it. */
int mg_ngx_fail_at(mg_ngx_parser *p, uint32_t file, uint32_t line, uint32_t col, const char *fmt,
                   ...)
{
	char msg[900];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	const char *path = p->conf->files[file].path;
	mg_error_set(p->err, MG_EINVALID, "%s in %s:%u", msg, path, line);
	mg_error_diag(p->err, MG_SEV_ERROR, path, (int)line, (int)col, NULL, "%s", msg);
	return MG_EINVALID;
}

int mg_ngx_fail_nomem(mg_ngx_parser *p)
{
	return mg_error_set(p->err, MG_ENOMEM, "out of memory reading the nginx configuration");
}

/* ---- paths ---- */

/* "/a/./b//c/../d" -> "/a/b/d": lexically, as nginx names files (symlinks stay). */
static char *path_normalize(const char *abs)
{
	size_t n = strlen(abs);
	char *out = malloc(n + 2);
	if (!out)
		return NULL;
	size_t o = 0;
	const char *s = abs;
	while (*s) {
		while (*s == '/')
			s++;
		const char *e = s;
		while (*e && *e != '/')
			e++;
		size_t len = (size_t)(e - s);
		if (len == 0 || (len == 1 && s[0] == '.')) {
			/* nothing */
		} else if (len == 2 && s[0] == '.' && s[1] == '.') {
			while (o > 0 && out[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
		} else {
			out[o++] = '/';
			memcpy(out + o, s, len);
			o += len;
		}
		s = e;
	}
	if (o == 0)
		out[o++] = '/';
	out[o] = '\0';
	return out;
}

/* base + "/" + name unless name is absolute (nginx's ngx_get_full_name()), malloc'd. */
static char *full_name(const char *base, const char *name)
{
	if (name[0] == '/')
		return strdup(name);
	size_t b = strlen(base), n = strlen(name);
	bool slash = b > 0 && base[b - 1] == '/';
	char *s = malloc(b + n + 2);
	if (!s)
		return NULL;
	memcpy(s, base, b);
	if (!slash)
		s[b++] = '/';
	memcpy(s + b, name, n + 1);
	return s;
}

static char *absolute(const char *path)
{
	if (path[0] == '/')
		return path_normalize(path);
	char cwd[4096];
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	char *full = full_name(cwd, path);
	if (!full)
		return NULL;
	char *norm = path_normalize(full);
	free(full);
	return norm;
}

static const char *relative_to(const char *abs, const char *prefix)
{
	size_t n = strlen(prefix);
	if (n == 1 && prefix[0] == '/')
		return abs[1] ? abs + 1 : abs;
	if (strncmp(abs, prefix, n) == 0 && abs[n] == '/' && abs[n + 1])
		return abs + n + 1;
	return abs;
}

static char *arena_strdup(mg_ngx_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = mg_ngx_arena_str(a, n);
	if (d)
		memcpy(d, s, n);
	return d;
}

/* ---- files ---- */

static size_t id_hash(dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9E3779B97F4A7C15ull ^ (uint64_t)dev;
	return (size_t)(h ^ (h >> 29));
}

static mg_ngx_file_id *id_slot(mg_nginxconf *c, dev_t dev, ino_t ino)
{
	size_t mask = c->capids - 1;
	for (size_t i = id_hash(dev, ino) & mask;; i = (i + 1) & mask) {
		mg_ngx_file_id *s = &c->ids[i];
		if (!s->idx || (s->dev == dev && s->ino == ino))
			return s;
	}
}

static bool id_add(mg_nginxconf *c, dev_t dev, ino_t ino, uint32_t idx)
{
	if ((c->nfiles + 1) * 2 > c->capids) {
		size_t cap = c->capids ? c->capids * 2 : 64;
		mg_ngx_file_id *old = c->ids;
		size_t oldcap = c->capids;
		c->ids = calloc(cap, sizeof(*c->ids));
		if (!c->ids) {
			c->ids = old;
			return false;
		}
		c->capids = cap;
		for (size_t i = 0; i < oldcap; i++)
			if (old[i].idx)
				*id_slot(c, old[i].dev, old[i].ino) = old[i];
		free(old);
	}
	*id_slot(c, dev, ino) = (mg_ngx_file_id){.dev = dev, .ino = ino, .idx = idx + 1};
	return true;
}

/* A new file entry owning buf; its names in the arena. -1 when out of memory. */
static long add_file(mg_nginxconf *c, const char *abs, const char *path, char *buf, size_t len,
                     const struct stat *st)
{
	if (c->nfiles == c->capfiles) {
		size_t cap = c->capfiles ? c->capfiles * 2 : 8;
		mg_ngx_file *f = realloc(c->files, cap * sizeof(*f));
		if (f)
			c->files = f;
		char **b = realloc(c->bufs, cap * sizeof(*b));
		if (b)
			c->bufs = b;
		uint8_t *s = realloc(c->state, cap);
		if (s)
			c->state = s;
		if (!f || !b || !s)
			return -1;
		c->capfiles = cap;
	}
	const char *a = arena_strdup(&c->arena, abs);
	const char *p = path == abs ? a : arena_strdup(&c->arena, path);
	if (!a || !p)
		return -1;
	size_t i = c->nfiles++;
	c->files[i] = (mg_ngx_file){.path = p,
	                            .abs_path = a,
	                            .data = buf,
	                            .len = len,
	                            .dev = st ? (uint64_t)st->st_dev : 0,
	                            .ino = st ? (uint64_t)st->st_ino : 0};
	c->arena.input += len;
	c->bufs[i] = buf;
	c->state[i] = MG_NGX_FILE_PARSING;
	return (long)i;
}

/* path is root or beneath it (both absolute, without symlinks, "." or ".."). */
static bool beneath(const char *path, const char *root)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return path[0] == '/';
	return strncmp(path, root, n) == 0 && (path[n] == '/' || path[n] == '\0');
}

static const char *file_kind(mode_t m)
{
	return S_ISFIFO(m)   ? "a FIFO"
	       : S_ISCHR(m)  ? "a character device"
	       : S_ISBLK(m)  ? "a block device"
	       : S_ISSOCK(m) ? "a socket"
	       : S_ISLNK(m)  ? "a symbolic link"
	                     : "a special file";
}

typedef enum {
	OPENED,
	OPEN_FAILED, /* err: errno of open(), as nginx reports it */
	OPEN_DIR,    /* nginx opens a directory and fails to read it: EISDIR */
	OPEN_SPECIAL,
	OPEN_OUTSIDE,
} open_result;

typedef struct {
	int fd;
	struct stat st;
	int err;
	char *real; /* OPEN_OUTSIDE: where name resolves (malloc'd) */
} opened;

/*
 * The one way this parser opens a file: name must resolve, after every
 * symlink, beneath root, and be a regular file. Both are checked before
 * anything is opened (a FIFO would block, a device never end, a file outside
 * the tree may be this machine's secret), and again on the descriptor after
 * it is opened, non-blocking, without following a last symlink: a path
 * changed in between is caught there, before a byte is read.
 */
static open_result open_in_tree(const char *root, const char *name, opened *o)
{
	*o = (opened){.fd = -1};
	char *real = realpath(name, NULL);
	if (!real) {
		o->err = errno;
		return OPEN_FAILED;
	}
	if (!beneath(real, root)) {
		o->real = real;
		return OPEN_OUTSIDE;
	}
	struct stat before;
	if (stat(real, &before) != 0) {
		o->err = errno;
		free(real);
		return OPEN_FAILED;
	}
	if (!S_ISREG(before.st_mode)) {
		o->st = before;
		free(real);
		return S_ISDIR(before.st_mode) ? OPEN_DIR : OPEN_SPECIAL;
	}
	int fd = open(real, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		o->err = errno;
		free(real);
		return OPEN_FAILED;
	}
	if (fstat(fd, &o->st) != 0) {
		o->err = errno;
		close(fd);
		free(real);
		return OPEN_FAILED;
	}
	if (!S_ISREG(o->st.st_mode)) {
		close(fd);
		free(real);
		return S_ISDIR(o->st.st_mode) ? OPEN_DIR : OPEN_SPECIAL;
	}
	/* what was opened, by the descriptor; without /proc, it must be what was checked */
	char self[64], *now = NULL;
	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	char link[4096];
	ssize_t n = readlink(self, link, sizeof(link) - 1);
	if (n > 0 && (size_t)n < sizeof(link) - 1) {
		link[n] = '\0';
		if (!beneath(link, root))
			now = strdup(link);
	} else if (o->st.st_dev != before.st_dev || o->st.st_ino != before.st_ino) {
		now = strdup(real);
	}
	free(real);
	if (now) {
		close(fd);
		o->real = now;
		return OPEN_OUTSIDE;
	}
	o->fd = fd;
	return OPENED;
}

/* Why name was not opened, in nginx's words where nginx has them; NULL when out of memory. */
static char *open_error(const char *root, const char *name, open_result r, const opened *o)
{
	switch (r) {
	case OPEN_DIR:
		/* nginx opens it and its read fails: the same words, without reading */
		return mg_str_printf("pread() \"%s\" failed (%d: %s)", name, EISDIR,
		                     strerror(EISDIR));
	case OPEN_SPECIAL:
		return mg_str_printf("open() \"%s\" refused: %s, not a regular file", name,
		                     file_kind(o->st.st_mode));
	case OPEN_OUTSIDE: {
		/* where it leads only when the name does not say it (a symlink on the way) */
		char *norm = absolute(name);
		bool same = norm && o->real && !strcmp(norm, o->real);
		free(norm);
		if (same || !o->real)
			return mg_str_printf("open() \"%s\" refused: outside the tree \"%s\"", name,
			                     root);
		return mg_str_printf("open() \"%s\" refused: it resolves to \"%s\", outside the "
		                     "tree \"%s\"",
		                     name, o->real, root);
	}
	default:
		return mg_str_printf("open() \"%s\" failed (%d: %s)", name, o->err,
		                     strerror(o->err));
	}
}

static ssize_t read_some(int fd, char *buf, size_t n)
{
	ssize_t r;
	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/* The whole file, NUL-terminated, in a buffer of exactly its size + 1; -errno. */
static int read_all(int fd, const struct stat *st, char **out, size_t *len)
{
	size_t cap = st->st_size > 0 ? (size_t)st->st_size + 1 : 4096, n = 0;
	char *buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;
		if (n + 1 < cap) {
			r = read_some(fd, buf + n, cap - 1 - n);
		} else {
			/* full: the size fstat gave, unless the file grew or is not regular */
			char more[4096];
			r = read_some(fd, more, sizeof(more));
			if (r > 0) {
				size_t ncap = (cap + (size_t)r) * 2;
				char *b = realloc(buf, ncap);
				if (!b) {
					free(buf);
					return -ENOMEM;
				}
				buf = b;
				cap = ncap;
				memcpy(buf + n, more, (size_t)r);
			}
		}
		if (r < 0) {
			int e = errno;
			free(buf);
			return -e;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/*
 * Opens `name` (as nginx names it in its messages) for an include at
 * (from, line, col); reads and parses it unless it was read already.
 */
static int include_file(mg_ngx_parser *p, const char *name, uint32_t from, uint32_t line,
                        uint32_t col, uint32_t *idx)
{
	mg_nginxconf *c = p->conf;
	opened o;
	open_result r = open_in_tree(c->root, name, &o);
	if (r != OPENED) {
		char *msg = open_error(c->root, name, r, &o);
		free(o.real);
		if (!msg)
			return mg_ngx_fail_nomem(p);
		int rc = mg_ngx_fail_at(p, from, line, col, "%s", msg);
		free(msg);
		return rc;
	}
	int fd = o.fd;
	struct stat st = o.st;
	mg_ngx_file_id *seen = c->capids ? id_slot(c, st.st_dev, st.st_ino) : NULL;
	if (seen && seen->idx) {
		close(fd);
		uint32_t i = seen->idx - 1;
		if (c->state[i] == MG_NGX_FILE_DONE) {
			*idx = i;
			return 0;
		}
		/* nginx would recurse until it runs out of file descriptors */
		char chain[700] = "";
		size_t start = 0;
		while (start < p->nchain && p->chain[start].file != i)
			start++;
		for (size_t k = start; k < p->nchain; k++) {
			size_t used = strlen(chain);
			snprintf(chain + used, sizeof(chain) - used, "%s -> ",
			         c->files[p->chain[k].file].path);
		}
		size_t used = strlen(chain);
		snprintf(chain + used, sizeof(chain) - used, "%s", c->files[from].path);
		/* named as reached this time: through a symlink, not as first read */
		char *abs = path_normalize(name);
		int rc = mg_ngx_fail_at(p, from, line, col, "include cycle: %s -> %s", chain,
		                        abs ? relative_to(abs, c->prefix) : c->files[i].path);
		free(abs);
		return rc;
	}
	if (p->nchain >= MG_NGX_MAX_INCLUDE_DEPTH) {
		close(fd);
		return mg_ngx_fail_at(p, from, line, col,
		                      "too deep nesting of includes (more than %d)",
		                      MG_NGX_MAX_INCLUDE_DEPTH);
	}
	char *buf;
	size_t len;
	int rc = read_all(fd, &st, &buf, &len);
	close(fd);
	if (rc == -ENOMEM)
		return mg_ngx_fail_nomem(p);
	if (rc < 0)
		return mg_ngx_fail_at(p, from, line, col, "pread() \"%s\" failed (%d: %s)", name,
		                      -rc, strerror(-rc));
	char *abs = path_normalize(name);
	if (!abs) {
		free(buf);
		return mg_ngx_fail_nomem(p);
	}
	long i = add_file(c, abs, relative_to(abs, c->prefix), buf, len, &st);
	free(abs);
	if (i < 0 || !id_add(c, st.st_dev, st.st_ino, (uint32_t)i)) {
		if (i < 0)
			free(buf);
		return mg_ngx_fail_nomem(p);
	}
	p->chain[p->nchain++] = (mg_ngx_chain_link){.file = from, .line = line};
	rc = mg_ngx_parse_file(p, (uint32_t)i);
	p->nchain--;
	if (rc)
		return rc;
	c->state[i] = MG_NGX_FILE_DONE;
	*idx = (uint32_t)i;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ngx_conf_include(): one file, or a glob (sorted; matching nothing is fine). */
int mg_ngx_follow_include(mg_ngx_parser *p, mg_ngx_directive *d, uint32_t from, uint32_t line,
                          uint32_t col)
{
	mg_nginxconf *c = p->conf;
	char *name = full_name(c->prefix, d->args[0]);
	if (!name)
		return mg_ngx_fail_nomem(p);
	d->is_include = true;
	d->includes = NULL;
	d->nincludes = 0;
	if (!strpbrk(name, "*?[")) {
		uint32_t idx;
		int rc = include_file(p, name, from, line, col, &idx);
		free(name);
		if (rc)
			return rc;
		uint32_t *inc = mg_ngx_arena_obj(&c->arena, sizeof(*inc));
		if (!inc)
			return mg_ngx_fail_nomem(p);
		inc[0] = idx;
		d->includes = inc;
		d->nincludes = 1;
		return 0;
	}
	glob_t g;
	/* sorted here, byte-wise: nginx runs in the C locale, the caller may not */
	int grc = glob(name, GLOB_NOSORT, NULL, &g);
	if (grc == GLOB_NOMATCH) {
		free(name);
		return 0;
	}
	if (grc != 0) {
		int e = grc == GLOB_NOSPACE ? ENOMEM : errno;
		int rc = grc == GLOB_NOSPACE
		             ? mg_ngx_fail_nomem(p)
		             : mg_ngx_fail_at(p, from, line, col, "glob() \"%s\" failed (%d: %s)",
		                              name, e, strerror(e));
		free(name);
		return rc;
	}
	free(name);
	qsort(g.gl_pathv, g.gl_pathc, sizeof(char *), cmp_str);
	uint32_t *inc = g.gl_pathc ? mg_ngx_arena_obj(&c->arena, g.gl_pathc * sizeof(*inc)) : NULL;
	if (g.gl_pathc && !inc) {
		globfree(&g);
		return mg_ngx_fail_nomem(p);
	}
	for (size_t k = 0; k < g.gl_pathc; k++) {
		int rc = include_file(p, g.gl_pathv[k], from, line, col, &inc[k]);
		if (rc) {
			globfree(&g);
			return rc;
		}
	}
	d->includes = inc;
	d->nincludes = (uint32_t)g.gl_pathc;
	globfree(&g);
	return 0;
}

/* ---- API ---- */

void mg_nginxconf_free(mg_nginxconf *conf)
{
	if (!conf)
		return;
	for (size_t i = 0; i < conf->nfiles; i++)
		free(conf->bufs[i]);
	free(conf->bufs);
	free(conf->files);
	free(conf->state);
	free(conf->ids);
	free(conf->prefix);
	free(conf->root);
	for (size_t i = 0; conf->lines && i < conf->nfiles; i++)
		free(conf->lines[i]);
	free(conf->lines);
	free(conf->nlines);
	mg_ngx_arena_clear(&conf->arena);
	free(conf);
}

static int run(mg_nginxconf *c, uint32_t main_idx, const mg_nginxconf_options *opt, bool follow,
               mg_nginxconf **out, mg_error *err)
{
	mg_ngx_parser p = {.conf = c,
	                   .keep_comments = opt && opt->keep_comments,
	                   .follow = follow && !(opt && opt->no_includes),
	                   .err = err};
	int rc = mg_ngx_parse_file(&p, main_idx);
	free(p.kids);
	free(p.frames);
	free(p.words);
	free(p.arglists);
	if (rc) {
		mg_nginxconf_free(c);
		return rc;
	}
	c->state[main_idx] = MG_NGX_FILE_DONE;
	*out = c;
	return 0;
}

static char *prefix_of(const mg_nginxconf_options *opt, const char *main_abs)
{
	if (opt && opt->prefix)
		return absolute(opt->prefix);
	char *dir = strdup(main_abs);
	if (!dir)
		return NULL;
	char *slash = strrchr(dir, '/');
	if (slash == dir)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	return dir;
}

int mg_nginxconf_parse(mg_nginxconf **out, const char *main_file, const mg_nginxconf_options *opt,
                       mg_error *err)
{
	*out = NULL;
	mg_nginxconf *c = calloc(1, sizeof(*c));
	char *abs = absolute(main_file);
	if (!c || !abs || !(c->prefix = prefix_of(opt, abs))) {
		free(abs);
		mg_nginxconf_free(c);
		return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", main_file);
	}
	/* the tree: what the main file and every include must resolve beneath */
	c->root = realpath(c->prefix, NULL);
	opened o = {.fd = -1, .err = errno};
	open_result r = c->root ? open_in_tree(c->root, main_file, &o) : OPEN_FAILED;
	if (!c->root && opt && opt->prefix) {
		int e = o.err;
		free(abs);
		mg_nginxconf_free(c);
		mg_error_diag(err, MG_SEV_ERROR, opt->prefix, 0, 0, NULL,
		              "realpath() \"%s\" failed (%d: %s)", opt->prefix, e, strerror(e));
		return mg_error_set(err, e == ENOENT ? MG_ENOTFOUND : MG_EIO,
		                    "the prefix: realpath() \"%s\" failed (%d: %s)", opt->prefix, e,
		                    strerror(e));
	}
	char *buf = NULL;
	size_t len = 0;
	int e = 0;
	if (r == OPENED) {
		e = -read_all(o.fd, &o.st, &buf, &len);
		close(o.fd);
	}
	if (r != OPENED || e) {
		if (e == ENOMEM) {
			free(abs);
			free(o.real);
			mg_nginxconf_free(c);
			return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", main_file);
		}
		char *msg =
		    e ? mg_str_printf("pread() \"%s\" failed (%d: %s)", main_file, e, strerror(e))
		      : open_error(c->root ? c->root : "", main_file, r, &o);
		/* missing: ENOTFOUND, unreadable: EIO; anything that is not a file in the tree
		 * is bad input */
		int code = r == OPEN_FAILED ? (o.err == ENOENT ? MG_ENOTFOUND : MG_EIO)
		           : e              ? MG_EIO
		                            : MG_EINVALID;
		free(abs);
		free(o.real);
		mg_nginxconf_free(c);
		if (!msg)
			return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", main_file);
		mg_error_diag(err, MG_SEV_ERROR, main_file, 0, 0, NULL, "%s", msg);
		mg_error_set(err, code, "%s", msg);
		free(msg);
		return code;
	}
	long idx = add_file(c, abs, relative_to(abs, c->prefix), buf, len, &o.st);
	free(abs);
	if (idx < 0 || !id_add(c, o.st.st_dev, o.st.st_ino, (uint32_t)idx)) {
		if (idx < 0)
			free(buf);
		mg_nginxconf_free(c);
		return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", main_file);
	}
	return run(c, (uint32_t)idx, opt, true, out, err);
}

int mg_nginxconf_parse_buffer(mg_nginxconf **out, const char *data, size_t len, const char *name,
                              const mg_nginxconf_options *opt, mg_error *err)
{
	*out = NULL;
	if (!name)
		name = "nginx.conf";
	bool follow = opt && opt->prefix;
	mg_nginxconf *c = calloc(1, sizeof(*c));
	char *buf = malloc(len + 1);
	if (c && buf)
		c->prefix = follow ? absolute(opt->prefix) : strdup("");
	if (c && c->prefix && follow && !(c->root = realpath(c->prefix, NULL)) && errno != ENOMEM) {
		int e = errno;
		free(buf);
		mg_nginxconf_free(c);
		return mg_error_set(err, e == ENOENT ? MG_ENOTFOUND : MG_EIO,
		                    "the prefix: realpath() \"%s\" failed (%d: %s)", opt->prefix, e,
		                    strerror(e));
	}
	char *abs = c && c->prefix ? (follow ? full_name(c->prefix, name) : strdup(name)) : NULL;
	char *norm = abs && follow ? path_normalize(abs) : abs;
	if (norm != abs)
		free(abs);
	long idx = -1;
	if (norm && (!follow || c->root)) {
		memcpy(buf, data, len);
		buf[len] = '\0';
		idx =
		    add_file(c, norm, follow ? relative_to(norm, c->prefix) : name, buf, len, NULL);
	}
	free(norm);
	if (idx < 0) {
		free(buf);
		mg_nginxconf_free(c);
		return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", name);
	}
	return run(c, (uint32_t)idx, opt, follow, out, err);
}

size_t mg_nginxconf_nfiles(const mg_nginxconf *conf)
{
	return conf ? conf->nfiles : 0;
}

const mg_ngx_file *mg_nginxconf_file(const mg_nginxconf *conf, size_t i)
{
	return conf && i < conf->nfiles ? &conf->files[i] : NULL;
}

const char *mg_nginxconf_prefix(const mg_nginxconf *conf)
{
	return conf ? conf->prefix : NULL;
}

/* The byte offset of line:col in file fi; false when out of range or out of memory. */
static bool offset_of(mg_nginxconf *c, uint32_t fi, uint32_t line, uint32_t col, size_t *off)
{
	if (!c->lines) {
		c->lines = calloc(c->nfiles, sizeof(*c->lines));
		c->nlines = calloc(c->nfiles, sizeof(*c->nlines));
		if (!c->lines || !c->nlines) {
			free(c->lines);
			free(c->nlines);
			c->lines = NULL;
			c->nlines = NULL;
			return false;
		}
	}
	const mg_ngx_file *f = &c->files[fi];
	if (!c->lines[fi]) {
		size_t n = 1;
		for (const char *p = f->data; (p = memchr(p, '\n', (size_t)(f->data + f->len - p)));
		     p++)
			n++;
		size_t *starts = malloc(n * sizeof(*starts));
		if (!starts)
			return false;
		starts[0] = 0;
		n = 1;
		for (const char *p = f->data; (p = memchr(p, '\n', (size_t)(f->data + f->len - p)));
		     p++)
			starts[n++] = (size_t)(p - f->data) + 1;
		c->lines[fi] = starts;
		c->nlines[fi] = n;
	}
	if (line < 1 || line > c->nlines[fi] || col < 1)
		return false;
	*off = c->lines[fi][line - 1] + col - 1;
	return *off < f->len;
}

static mg_ngx_span span_of(const mg_ngx_token *t)
{
	/* a quoted word's range is inside its quotes; a Lua body's inside its braces */
	size_t q = t->quote && t->quote != '{' ? 1 : 0;
	return (mg_ngx_span){.start = t->off - q, .end = t->off + t->len + q};
}

int mg_nginxconf_spans(const mg_nginxconf *conf, const mg_ngx_directive *d, mg_ngx_span *spans,
                       mg_ngx_span *term)
{
	if (!conf || !d || d->is_comment || d->file >= conf->nfiles)
		return MG_EINVALID;
	size_t off;
	if (!offset_of((mg_nginxconf *)conf, d->file, d->line, d->col, &off))
		return MG_EINVALID;
	const mg_ngx_file *f = &conf->files[d->file];
	mg_ngx_lexer lx;
	mg_ngx_lex_init(&lx, f->data, f->len);
	lx.pos = off;
	lx.line_off = off;
	int rc = MG_EINVALID;
	int lr = mg_ngx_lex_directive(&lx);
	size_t words = d->nargs + 1 - (d->is_lua_block ? 1 : 0);
	if ((lr != MG_NGX_LEX_OK && lr != MG_NGX_LEX_BLOCK_START) || lx.ntoks != words ||
	    lx.toks[0].off - (lx.toks[0].quote ? 1 : 0) != off)
		goto done;
	for (size_t i = 0; i < lx.ntoks; i++)
		spans[i] = span_of(&lx.toks[i]);
	mg_ngx_span end = {.start = lx.pos - 1, .end = lx.pos};
	if (d->is_lua_block) {
		mg_ngx_token body;
		if (lr != MG_NGX_LEX_BLOCK_START ||
		    mg_ngx_lex_lua_block(&lx, &body) != MG_NGX_LEX_OK)
			goto done;
		spans[words] = span_of(&body);
		end = (mg_ngx_span){.start = lx.pos - 1, .end = lx.pos};
	}
	if (term)
		*term = end;
	rc = 0;
done:
	mg_ngx_lex_fini(&lx);
	return rc;
}

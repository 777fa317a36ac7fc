/*
 * nginx (open source) as the load balancer.
 *
 * Open-source nginx has no runtime API for weights: they live in its
 * configuration. A step rewrites the server lines of one upstream block in a
 * file nginx includes, checks the result with the operator's test command
 * (nginx -t) and reloads; if either fails, the previous bytes go back so the
 * file always says what nginx runs.
 *
 * The rewrite is surgical: only the `server` statements of the plan's
 * upstream change, everything else in the file (other upstreams, keepalive,
 * comments, max_fails=...) stays byte for byte. The operator creates the file
 * and the block; migrate never adds or removes a server, because a server
 * nginx knows and the plan does not would silently take part of the traffic.
 *
 * weight=0 is invalid in nginx, so weight 0 is written `down` with a mark
 * comment (ZERO_MARK) on the same line. The mark separates migrate's drain
 * from an operator's own `down` (maintenance): without it, a rollback from
 * 100% would find every VM "down" and be refused, and migrate would bring a
 * server back that an operator took out. A `down` without the mark is the
 * operator's and stays, whatever the weights.
 *
 * The test and reload commands run through command.c.
 */
#include "traffic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs.h"
#include "internal.h"
#include "log.h"
#include "weights.h"

/* nginx itself takes larger weights; anything above this in a file is a typo. */
#define READ_MAX_WEIGHT 1000000

#define HEADER_PREFIX "# Managed by migrate"
#define HEADER                                                                                     \
	HEADER_PREFIX                                                                              \
	": each traffic step rewrites the `server` lines of the upstream\n"                        \
	"# it manages (weights, `down` for weight 0); everything else here is kept as "            \
	"it is.\n"
#define ZERO_MARK "# migrate: weight 0"

/* traffic.nginx.command_timeout when the plan gives none (a plan built in code). */
#define DEFAULT_TIMEOUT_MS 30000

typedef struct {
	char *file;
	char *upstream;
	char **servers; /* VM servers, then cluster servers */
	size_t nvm, nservers;
	char *test_command;
	char *reload_command;
	long timeout_ms;
} nginx;

/* --- reading the configuration ------------------------------------------------------------ */

typedef enum { TOK_WORD, TOK_SEMI, TOK_OPEN, TOK_CLOSE } tok_kind;

typedef struct {
	tok_kind kind;
	size_t start, end; /* the raw bytes, quotes included */
	char *value;       /* a word without quotes and escapes */
	int line;
} token;

typedef struct {
	size_t start, end; /* bytes a rewrite replaces: the statement and migrate's mark after it */
	int line;
	const char *addr;
	int weight; /* as written; 1 when absent */
	bool down, marked, backup;
	char *params; /* the other parameters as written, each after a space */
	long slot;    /* index in nginx.servers, or -1 */
} entry;

typedef struct {
	char *text;
	size_t len;
	token *toks;
	size_t ntoks;
	entry *e;
	size_t ne;
	bool found; /* the upstream block */
} parsed;

static void parsed_clear(parsed *p)
{
	for (size_t i = 0; i < p->ntoks; i++)
		free(p->toks[i].value);
	for (size_t i = 0; i < p->ne; i++)
		free(p->e[i].params);
	free(p->toks);
	free(p->e);
	free(p->text);
	memset(p, 0, sizeof(*p));
}

bool mg_traffic_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* A word ends where nginx ends it: white space, ';', or a '{' that does not open "${". */
static size_t word_end(const char *s, size_t i, size_t len)
{
	size_t start = i;
	while (i < len) {
		char c = s[i];
		if (mg_traffic_is_space(c) || c == ';' ||
		    (c == '{' && !(i > start && s[i - 1] == '$')))
			break;
		i += c == '\\' && i + 1 < len ? 2 : 1;
	}
	return i;
}

static char *unescape(const char *s, size_t n)
{
	char *v = malloc(n + 1), *o = v;
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\\' && i + 1 < n)
			i++;
		*o++ = s[i];
	}
	*o = '\0';
	return v;
}

static int push_token(parsed *p, size_t *cap, tok_kind kind, size_t start, size_t end, int line,
                      const char *path, mg_error *err)
{
	if (p->ntoks == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		token *t = realloc(p->toks, ncap * sizeof(*t));
		if (!t)
			return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", path);
		p->toks = t;
		*cap = ncap;
	}
	token *t = &p->toks[p->ntoks];
	*t = (token){kind, start, end, NULL, line};
	if (kind == TOK_WORD) {
		bool quoted = p->text[start] == '"' || p->text[start] == '\'';
		size_t a = start + quoted, b = end - quoted;
		t->value = unescape(p->text + a, b - a);
		if (!t->value)
			return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", path);
	}
	p->ntoks++;
	return 0;
}

/* Splits the file into nginx's tokens; comments and white space are dropped. */
static int lex(parsed *p, const char *path, mg_error *err)
{
	const char *s = p->text;
	size_t len = p->len, cap = 0, i = 0;
	int line = 1, rc;
	while (i < len) {
		char c = s[i];
		if (c == '\n') {
			line++;
			i++;
		} else if (mg_traffic_is_space(c)) {
			i++;
		} else if (c == '#') {
			while (i < len && s[i] != '\n')
				i++;
		} else if (c == ';' || c == '{' || c == '}') {
			tok_kind k = c == ';' ? TOK_SEMI : c == '{' ? TOK_OPEN : TOK_CLOSE;
			if ((rc = push_token(p, &cap, k, i, i + 1, line, path, err)))
				return rc;
			i++;
		} else if (c == '"' || c == '\'') {
			size_t start = i++;
			int first = line;
			while (i < len && s[i] != c) {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				line += s[i] == '\n';
				i++;
			}
			if (i >= len)
				return mg_error_set(err, MG_EINVALID,
				                    "%s:%d: a quoted string is not closed", path,
				                    first);
			if ((rc = push_token(p, &cap, TOK_WORD, start, ++i, first, path, err)))
				return rc;
		} else {
			size_t end = word_end(s, i, len);
			if ((rc = push_token(p, &cap, TOK_WORD, i, end, line, path, err)))
				return rc;
			i = end;
		}
	}
	return 0;
}

/*
 * Where migrate's ZERO_MARK ends when the comment after position i (same line)
 * starts with it, else i. Only the mark is migrate's: text the operator added
 * after it stays when the line is rewritten.
 */
static size_t mark_end(const char *s, size_t i, size_t len)
{
	size_t j = i, n = strlen(ZERO_MARK);
	while (j < len && (s[j] == ' ' || s[j] == '\t'))
		j++;
	if (len - j < n || memcmp(s + j, ZERO_MARK, n))
		return i;
	size_t k = j + n;
	return k == len || mg_traffic_is_space(s[k]) ? k : i;
}

static int add_entry(parsed *p, size_t *cap, const nginx *n, size_t first, size_t semi,
                     const char *path, mg_error *err)
{
	const token *t = p->toks;
	if (semi - first < 2)
		return mg_error_set(err, MG_EINVALID, "%s:%d: `server` without an address", path,
		                    t[first].line);
	if (p->ne == *cap) {
		size_t ncap = *cap ? *cap * 2 : 8;
		entry *e = realloc(p->e, ncap * sizeof(*e));
		if (!e)
			return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", path);
		p->e = e;
		*cap = ncap;
	}
	entry *e = &p->e[p->ne++];
	*e = (entry){.start = t[first].start,
	             .line = t[first].line,
	             .addr = t[first + 1].value,
	             .weight = 1,
	             .slot = -1};
	e->end = mark_end(p->text, t[semi].end, p->len);
	e->marked = e->end != t[semi].end;
	for (size_t i = 0; i < n->nservers; i++)
		if (!strcmp(n->servers[i], e->addr))
			e->slot = (long)i;

	size_t plen = 0;
	for (size_t i = first + 2; i < semi; i++)
		plen += t[i].end - t[i].start + 1;
	e->params = calloc(1, plen + 1);
	if (!e->params)
		return mg_error_set(err, MG_ENOMEM, "out of memory reading %s", path);
	char *o = e->params;
	for (size_t i = first + 2; i < semi; i++) {
		const char *v = t[i].value;
		if (!strcmp(v, "down")) {
			e->down = true;
		} else if (!strncmp(v, "weight=", 7)) {
			char *end;
			errno = 0;
			long w = strtol(v + 7, &end, 10);
			if (errno || *end || end == v + 7 || w < 1 || w > READ_MAX_WEIGHT)
				return mg_error_set(err, MG_EINVALID,
				                    "%s:%d: \"%s\" is not a weight nginx accepts "
				                    "(1 or more)",
				                    path, t[i].line, v);
			e->weight = (int)w;
		} else {
			e->backup |= !strcmp(v, "backup");
			*o++ = ' ';
			memcpy(o, p->text + t[i].start, t[i].end - t[i].start);
			o += t[i].end - t[i].start;
		}
	}
	return 0;
}

/* Finds the upstream block and its server statements. */
static int parse(parsed *p, const nginx *n, const char *path, mg_error *err)
{
	int rc = lex(p, path, err);
	if (rc)
		return rc;
	size_t depth = 0, target = 0, stmt = 0, cap = 0;
	for (size_t i = 0; i < p->ntoks; i++) {
		const token *t = &p->toks[i];
		if (t->kind == TOK_WORD)
			continue;
		size_t nwords = i - stmt;
		const token *w = &p->toks[stmt];
		if (t->kind == TOK_OPEN) {
			if (nwords == 2 && !strcmp(w[0].value, "upstream") &&
			    !strcmp(w[1].value, n->upstream)) {
				if (p->found)
					return mg_error_set(err, MG_EINVALID,
					                    "%s:%d: a second `upstream %s` block; "
					                    "nginx refuses duplicates, keep one",
					                    path, w->line, n->upstream);
				p->found = true;
				target = depth + 1;
			}
			depth++;
		} else if (t->kind == TOK_CLOSE) {
			if (nwords)
				return mg_error_set(err, MG_EINVALID,
				                    "%s:%d: `%s` is not ended by ';' before '}'",
				                    path, w->line, w->value);
			if (!depth)
				return mg_error_set(err, MG_EINVALID, "%s:%d: unexpected '}'", path,
				                    t->line);
			if (target == depth)
				target = 0;
			depth--;
		} else if (target && depth == target && nwords && !strcmp(w->value, "server")) {
			if ((rc = add_entry(p, &cap, n, stmt, i, path, err)))
				return rc;
		}
		stmt = i + 1;
	}
	if (stmt < p->ntoks)
		return mg_error_set(err, MG_EINVALID, "%s:%d: `%s` is not ended by ';'", path,
		                    p->toks[stmt].line, p->toks[stmt].value);
	if (depth)
		return mg_error_set(err, MG_EINVALID, "%s: a block is not closed: missing '}'",
		                    path);
	return 0;
}

/* Appends ", name" to a list in buf. */
static void list_add(char *buf, size_t size, const char *name)
{
	size_t o = strlen(buf);
	if (o < size)
		snprintf(buf + o, size - o, "%s%s", o ? ", " : "", name);
}

/* The file must hold exactly the plan's servers, once each. */
static int check_servers(const parsed *p, const nginx *n, const char *path, mg_error *err)
{
	if (!p->found)
		return mg_error_set(err, MG_ENOTFOUND,
		                    "%s has no `upstream %s { ... }` block: add one with a "
		                    "`server` line for each server of traffic.nginx, then reload "
		                    "nginx",
		                    path, n->upstream);
	char names[512] = "";
	for (size_t i = 0; i < p->ne; i++)
		if (p->e[i].slot < 0)
			list_add(names, sizeof(names), p->e[i].addr);
	if (*names)
		return mg_error_set(
		    err, MG_EINVALID,
		    "upstream %s in %s has servers that are in neither vm_servers "
		    "nor k8s_servers of traffic.nginx: %s; nginx sends them traffic "
		    "too, so add them to the plan or remove them from the file",
		    n->upstream, path, names);
	for (size_t i = 0; i < p->ne; i++) {
		for (size_t j = 0; j < i; j++)
			if (p->e[j].slot == p->e[i].slot)
				return mg_error_set(err, MG_EINVALID,
				                    "%s:%d: server %s is already in upstream %s "
				                    "(line %d); keep one line per server",
				                    path, p->e[i].line, p->e[i].addr, n->upstream,
				                    p->e[j].line);
		if (p->e[i].backup)
			return mg_error_set(err, MG_EINVALID,
			                    "%s:%d: server %s is a backup server, which takes "
			                    "traffic only when the others fail, so no weight gives "
			                    "it a share; remove `backup`",
			                    path, p->e[i].line, p->e[i].addr);
	}
	for (size_t s = 0; s < n->nservers; s++) {
		bool seen = false;
		for (size_t i = 0; i < p->ne; i++)
			seen |= p->e[i].slot == (long)s;
		if (!seen)
			list_add(names, sizeof(names), n->servers[s]);
	}
	if (*names)
		return mg_error_set(err, MG_ENOTFOUND,
		                    "upstream %s in %s has no line for %s: add "
		                    "`server <host:port>;` for each, then reload nginx",
		                    n->upstream, path, names);
	return 0;
}

static int missing_file(const nginx *n, mg_error *err)
{
	return mg_error_set(err, MG_ENOTFOUND,
	                    "%s does not exist: create it with an `upstream %s { ... }` block "
	                    "that has a `server` line for each server of traffic.nginx, add "
	                    "`include %s;` to nginx's http block and reload nginx; migrate only "
	                    "changes weights",
	                    n->file, n->upstream, n->file);
}

static int load(parsed *p, const nginx *n, const char *path, mg_error *err)
{
	memset(p, 0, sizeof(*p));
	int rc = mg_fs_read_all(&p->text, &p->len, path, err);
	if (rc == MG_ENOTFOUND)
		return missing_file(n, err);
	if (!rc && memchr(p->text, '\0', p->len))
		rc = mg_error_set(err, MG_EINVALID, "%s is not a text file", path);
	if (!rc)
		rc = parse(p, n, path, err);
	if (!rc)
		rc = check_servers(p, n, path, err);
	if (rc)
		parsed_clear(p);
	return rc;
}

/* The operator's own `down` (maintenance), as opposed to migrate's weight 0. */
static bool operator_down(const entry *e)
{
	return e->down && !e->marked;
}

static int nginx_read(void *drv, mg_traffic_state *out, mg_error *err)
{
	nginx *n = drv;
	parsed p;
	int rc = load(&p, n, n->file, err);
	if (rc)
		return rc;
	out->servers = calloc(n->nservers, sizeof(*out->servers));
	if (!out->servers) {
		parsed_clear(&p);
		return mg_error_oom(err);
	}
	out->nservers = n->nservers;
	double total = 0, k8s = 0;
	for (size_t i = 0; i < p.ne; i++) {
		const entry *e = &p.e[i];
		mg_traffic_server *s = &out->servers[e->slot];
		snprintf(s->name, sizeof(s->name), "%s", e->addr);
		s->k8s = (size_t)e->slot >= n->nvm;
		/* a down server gets no request, whatever its weight= says */
		s->weight = e->down ? 0 : e->weight;
		s->health = operator_down(e) ? MG_HEALTH_MAINT : MG_HEALTH_UNKNOWN;
		snprintf(s->detail, sizeof(s->detail), "%s",
		         operator_down(e) ? "down in the upstream file"
		         : e->down ? "weight 0 (down, by migrate); nginx does not report health"
		                   : "open-source nginx does not report upstream health");
		total += s->weight;
		if (s->k8s)
			k8s += s->weight;
	}
	parsed_clear(&p);
	if (total > 0)
		out->k8s_percent = 100 * k8s / total;
	else
		mg_log(MG_LOG_WARN,
		       "every server of upstream %s in %s is down: nginx answers 502 to every "
		       "request",
		       n->upstream, n->file);
	return 0;
}

/* --- writing ------------------------------------------------------------------------------ */

/* The file as apply would write it for these weights. */
static int render(const nginx *n, const parsed *p, const mg_weights *w, char **out, size_t *len,
                  const char *path, mg_error *err)
{
	*out = NULL;
	FILE *f = open_memstream(out, len);
	if (!f)
		return mg_error_oom(err);
	if (strncmp(p->text, HEADER_PREFIX, strlen(HEADER_PREFIX)))
		fputs(HEADER, f);
	size_t at = 0;
	for (size_t i = 0; i < p->ne; i++) {
		const entry *e = &p->e[i];
		int weight = (size_t)e->slot < n->nvm ? w->vm_weight : w->k8s_weight;
		fwrite(p->text + at, 1, e->start - at, f);
		fprintf(f, "server %s", n->servers[e->slot]);
		if (weight)
			fprintf(f, " weight=%d", weight);
		fputs(e->params, f);
		if (operator_down(e))
			fputs(" down;", f);
		else if (!weight)
			fputs(" down; " ZERO_MARK, f);
		else
			fputs(";", f);
		at = e->end;
	}
	fwrite(p->text + at, 1, p->len - at, f);
	bool failed = ferror(f);
	if (fclose(f) || failed) {
		free(*out);
		*out = NULL;
		return mg_error_set(err, MG_ENOMEM, "out of memory writing %s", path);
	}
	return 0;
}

/*
 * An operator's `down` stays at every step, so such a server takes no share
 * whatever weight it is given. When that leaves the cluster another share
 * than the weights', the step could only fail its read-back after the
 * file was rewritten and nginx reloaded: refuse it before, naming the
 * servers and how to hand them to migrate. --force cannot help: migrate
 * never lifts an operator's `down`.
 */
static int check_operator_down(const nginx *n, const parsed *p, const mg_weights *w,
                               const char *path, mg_error *err)
{
	double total = 0, k8s = 0;
	char names[512] = "", lines[512] = "";
	size_t nnames = 0;
	for (size_t i = 0; i < p->ne; i++) {
		const entry *e = &p->e[i];
		bool is_k8s = (size_t)e->slot >= n->nvm;
		int weight = is_k8s ? w->k8s_weight : w->vm_weight;
		if (operator_down(e)) {
			if (weight) {
				char at[64];
				snprintf(at, sizeof(at), "line %d", e->line);
				list_add(names, sizeof(names), e->addr);
				list_add(lines, sizeof(lines), at);
				nnames++;
			}
			continue;
		}
		total += weight;
		if (is_k8s)
			k8s += weight;
	}
	double share = total > 0 ? 100 * k8s / total : 0;
	if (!nnames || mg_traffic_same_share(share, w->effective_percent))
		return 0;
	const entry *first = NULL;
	for (size_t i = 0; i < p->ne && !first; i++)
		if (operator_down(&p->e[i]) &&
		    ((size_t)p->e[i].slot >= n->nvm ? w->k8s_weight : w->vm_weight))
			first = &p->e[i];
	bool many = nnames > 1;
	return mg_error_set(
	    err, MG_ERROR,
	    "%s %s %s `down` in %s (%s) without migrate's mark: that is an operator's `down`, "
	    "which migrate keeps at every step (--force does not lift it), so the cluster would "
	    "get %.3g%% instead of %.3g%%; nothing was changed. To hand %s to migrate, add "
	    "migrate's weight-0 mark after the ';' of %s line (`server %s down; %s`): the next "
	    "step then gives %s %s weight",
	    many ? "servers" : "server", names, many ? "are" : "is", path, lines, share,
	    w->effective_percent, many ? "them" : "it", many ? "each" : "its", first->addr,
	    ZERO_MARK, many ? "them" : "it", many ? "their" : "its");
}

/* Loads the file at path and renders it for k8s_percent. */
static int prepare(const nginx *n, double k8s_percent, const char *path, parsed *p, mg_weights *w,
                   char **out, size_t *len, mg_error *err)
{
	int rc = mg_weights_split(w, k8s_percent, n->nvm, n->nservers - n->nvm,
	                          MG_WEIGHTS_BALANCER_MAX, err);
	if (rc)
		return rc;
	if ((rc = load(p, n, path, err)))
		return rc;
	if ((rc = check_operator_down(n, p, w, path, err)) ||
	    (rc = render(n, p, w, out, len, path, err)))
		parsed_clear(p);
	return rc;
}

/* --- the driver --------------------------------------------------------------------------- */

/*
 * The new file is a new inode owned by whoever runs migrate; give it the old
 * owner back so a later `chown`-based setup keeps working. Only root can, and
 * only matters when it differs.
 */
static void keep_owner(const char *path, const struct stat *old)
{
	if ((old->st_uid != geteuid() || old->st_gid != getegid()) &&
	    chown(path, old->st_uid, old->st_gid) < 0)
		mg_log(MG_LOG_WARN, "cannot give %s back its owner (uid %ld, gid %ld): %s", path,
		       (long)old->st_uid, (long)old->st_gid, strerror(errno));
}

/* Puts the previous bytes back; says in err what happened either way. */
static int restore(const char *path, const char *old, size_t len, const struct stat *sb,
                   const char *why, mg_error *err)
{
	mg_error werr = MG_ERROR_INIT;
	if (mg_fs_write_atomic(path, old, len, sb->st_mode & 07777, &werr))
		return mg_error_set(err, MG_ERROR,
		                    "%s; restoring the previous %s failed too (%s): it now holds "
		                    "weights nginx does not run, put it back by hand",
		                    why, path, werr.message);
	keep_owner(path, sb);
	return mg_error_set(err, MG_ERROR, "%s; %s is back to its previous content", why, path);
}

static int nginx_apply(void *drv, double k8s_percent, mg_error *err)
{
	nginx *n = drv;
	/* a symlinked file (sites-enabled style) is rewritten where it points, not replaced */
	char *path = realpath(n->file, NULL);
	if (!path)
		return errno == ENOENT ? missing_file(n, err)
		                       : mg_error_set(err, MG_EIO, "cannot open %s: %s", n->file,
		                                      strerror(errno));
	parsed p;
	mg_weights w;
	char *text = NULL;
	size_t len = 0;
	int rc = prepare(n, k8s_percent, path, &p, &w, &text, &len, err);
	if (rc) {
		free(path);
		return rc;
	}
	/* nginx's master must read the file: 0644 unless it had its own mode */
	struct stat sb;
	if (stat(path, &sb) < 0) {
		sb.st_mode = 0644;
		sb.st_uid = geteuid();
		sb.st_gid = getegid();
	}
	bool changed = len != p.len || memcmp(text, p.text, len);
	if (changed) {
		rc = mg_fs_write_atomic(path, text, len, sb.st_mode & 07777, err);
		if (!rc)
			keep_owner(path, &sb);
	}

	char what[1024], why[1100];
	bool reload = false;
	int crc =
	    rc ? 0
	       : mg_traffic_run_command(n->test_command, n->timeout_ms, what, sizeof(what), err);
	if (!rc && !crc) {
		reload = true;
		crc = mg_traffic_run_command(n->reload_command, n->timeout_ms, what, sizeof(what),
		                             err);
	}
	if (crc) {
		/* MG_ERROR: it ran and failed, as `what` says; else it did not run, as err says */
		if (crc == MG_ERROR)
			snprintf(why, sizeof(why), "%s: %s",
			         reload ? "nginx did not reload"
			                : "nginx rejected the new upstream file",
			         what);
		else
			snprintf(why, sizeof(why), "%s: %s",
			         reload ? "could not reload nginx"
			                : "could not test the new upstream file",
			         err->message);
		rc = changed ? restore(path, p.text, p.len, &sb, why, err)
		             : mg_error_set(err, MG_ERROR, "%s", why);
	}
	parsed_clear(&p);
	free(text);
	free(path);
	return rc;
}

/*
 * A command killed between the rename and the end of the reload leaves a file
 * nginx may not run yet, and a read only sees the file: test and reload it
 * again, so that what the read reports is what nginx runs. Nothing is restored
 * on failure: the previous bytes died with that command.
 */
static int nginx_settle(void *drv, mg_error *err)
{
	nginx *n = drv;
	parsed p;
	int rc = load(&p, n, n->file, err);
	if (rc)
		return rc;
	parsed_clear(&p);
	char what[1024];
	bool reload = false;
	rc = mg_traffic_run_command(n->test_command, n->timeout_ms, what, sizeof(what), err);
	if (!rc) {
		reload = true;
		rc = mg_traffic_run_command(n->reload_command, n->timeout_ms, what, sizeof(what),
		                            err);
	}
	if (rc == MG_ERROR && reload)
		return mg_error_set(err, MG_ERROR, "nginx did not reload: %s", what);
	if (rc == MG_ERROR)
		return mg_error_set(err, MG_ERROR, "nginx rejected %s: %s", n->file, what);
	return rc;
}

static int nginx_describe(void *drv, double k8s_percent, json_t **out, mg_error *err)
{
	nginx *n = drv;
	parsed p;
	mg_weights w;
	char *text;
	size_t len;
	*out = NULL;
	int rc = prepare(n, k8s_percent, n->file, &p, &w, &text, &len, err);
	if (rc)
		return rc;
	bool changed = len != p.len || memcmp(text, p.text, len);
	/* the same shape as the other drivers: an array of calls, each with its kind */
	*out = json_pack(
	    "[{s:s, s:s, s:s, s:i, s:i, s:f, s:b, s:s%}, {s:s, s:s, s:s, s:I}, {s:s, s:s, s:s, s:I}]",
	    "kind", "file", "upstream_file", n->file, "upstream", n->upstream, "vm_weight",
	    w.vm_weight, "k8s_weight", w.k8s_weight, "effective_percent", w.effective_percent,
	    "changed", changed, "content", text, len, "kind", "command", "key", "test_command",
	    "command", n->test_command, "timeout_ms", (json_int_t)n->timeout_ms, "kind", "command",
	    "key", "reload_command", "command", n->reload_command, "timeout_ms",
	    (json_int_t)n->timeout_ms);
	parsed_clear(&p);
	free(text);
	if (!*out)
		return mg_error_oom(err);
	return 0;
}

static void nginx_free(void *drv)
{
	nginx *n = drv;
	if (!n)
		return;
	for (size_t i = 0; n->servers && i < n->nservers; i++)
		free(n->servers[i]);
	free(n->servers);
	free(n->file);
	free(n->upstream);
	free(n->test_command);
	free(n->reload_command);
	free(n);
}

/* What is written into the file unquoted: the plan allows no more, this keeps it that way. */
static bool plain(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("_.:-[]", *s)))
			return false;
	return true;
}

int mg_traffic_nginx_new(void **out, const mg_plan_nginx *cfg, mg_error *err)
{
	*out = NULL;
	if (!cfg->upstream_file || !*cfg->upstream_file)
		return mg_error_set(err, MG_EINVALID, "traffic.nginx.upstream_file is not set");
	if (!plain(cfg->upstream))
		return mg_error_set(err, MG_EINVALID,
		                    "traffic.nginx.upstream is not an nginx upstream name");
	if (!cfg->nvm_servers || !cfg->nk8s_servers)
		return mg_error_set(err, MG_EINVALID,
		                    "traffic.nginx needs at least one VM server and one cluster "
		                    "server");
	if (!cfg->test_command || !*cfg->test_command || !cfg->reload_command ||
	    !*cfg->reload_command)
		return mg_error_set(err, MG_EINVALID,
		                    "traffic.nginx needs a test_command and a reload_command");
	nginx *n = calloc(1, sizeof(*n));
	if (!n)
		return mg_error_oom(err);
	n->nvm = cfg->nvm_servers;
	n->nservers = cfg->nvm_servers + cfg->nk8s_servers;
	n->servers = calloc(n->nservers, sizeof(*n->servers));
	n->file = strdup(cfg->upstream_file);
	n->upstream = strdup(cfg->upstream);
	n->test_command = strdup(cfg->test_command);
	n->reload_command = strdup(cfg->reload_command);
	n->timeout_ms =
	    cfg->command_timeout_ms > 0 ? (long)cfg->command_timeout_ms : DEFAULT_TIMEOUT_MS;
	bool ok = n->servers && n->file && n->upstream && n->test_command && n->reload_command;
	for (size_t i = 0; ok && i < n->nservers; i++) {
		const char *s = i < n->nvm ? cfg->vm_servers[i] : cfg->k8s_servers[i - n->nvm];
		if (!plain(s)) {
			nginx_free(n);
			return mg_error_set(err, MG_EINVALID,
			                    "traffic.nginx: \"%s\" is not host:port", s);
		}
		ok = (n->servers[i] = strdup(s)) != NULL;
	}
	if (!ok) {
		nginx_free(n);
		return mg_error_oom(err);
	}
	*out = n;
	return 0;
}

const mg_traffic_ops mg_traffic_nginx_ops = {
    .name = "nginx",
    .read = nginx_read,
    .apply = nginx_apply,
    .describe = nginx_describe,
    .free = nginx_free,
    .settle = nginx_settle,
};

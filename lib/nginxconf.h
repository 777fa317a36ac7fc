/*
 * nginx configuration files read the way nginx reads them.
 *
 * The lexer follows nginx's ngx_conf_read_token(): the same quoting, escapes,
 * `${var}`, comments and the same error messages at the same line, so what
 * this parser rejects nginx rejects with the same words. It knows no
 * directive (argument counts, contexts and names are nginx's business)
 * except three: `include` is followed, `*_by_lua_block { ... }` bodies are
 * taken whole as Lua (braces in Lua strings and comments do not count), and
 * `#` comments are kept on request.
 *
 * The tree is modelled like crossplane's: a list of files, each with its own
 * top-level directives; an `include` directive lists the indexes of the files
 * it pulled in, and a file included from several places is stored once.
 * Blocks cannot span files (as in nginx), so each file's tree is complete.
 *
 * Everything below is owned by the mg_nginxconf handle and read-only; it is
 * allocated compactly (an arena) because trees of tens of MB must parse in
 * a fraction of what `nginx -t` takes and in a few times their size.
 */
#ifndef MG_NGINXCONF_H
#define MG_NGINXCONF_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

typedef struct mg_nginxconf mg_nginxconf;

/*
 * One directive (or, with keep_comments, one comment). Strings are
 * NUL-terminated with nginx's escapes applied (\" \' \\ \t \r \n; any other
 * backslash stays as written); bytes that are not UTF-8 are kept as they are.
 * A NUL byte inside a token ends the C string early (nginx would keep it).
 */
typedef struct mg_ngx_directive {
	const char *name;        /* "location"; "#" for a comment */
	const char *const *args; /* nargs entries; see mg_ngx_arg_quote() */
	union {
		/* has_block: the directives between the braces, in order */
		const struct mg_ngx_directive *block;
		/* is_include: indexes (mg_nginxconf_file) of the files it pulled in, in
		 * glob order; none for a glob that matched nothing */
		const uint32_t *includes;
	};
	uint32_t nargs;
	union {
		uint32_t nblock;
		uint32_t nincludes;
	};
	uint32_t file;     /* index of the file it is in */
	uint32_t line;     /* of its first character (the name), 1-based */
	uint32_t col;      /* byte column of its first character, 1-based */
	bool has_block;    /* ended by "{ ... }", not ";" (false for a Lua block) */
	bool is_include;   /* `include`, followed: includes/nincludes are valid */
	bool is_lua_block; /* *_by_lua_block: its last arg is the Lua code between the braces */
	bool is_comment;   /* name "#", args[0] the text after '#' (no line end), nargs 1 */
} mg_ngx_directive;

/*
 * How an argument was written: 0 bare, '"' or '\'' quoted, '{' the raw body
 * of a Lua block. A renderer that rewrites an argument uses it to write the
 * same kind back. i < d->nargs.
 */
static inline int mg_ngx_arg_quote(const mg_ngx_directive *d, size_t i)
{
	return (unsigned char)d->args[i][-1];
}
/* Same for the name (nginx allows `"listen" 80;`). */
static inline int mg_ngx_name_quote(const mg_ngx_directive *d)
{
	return (unsigned char)d->name[-1];
}

typedef struct {
	/*
	 * As named relative to the prefix ("nginx.conf", "conf.d/app.conf");
	 * the absolute path when its name is outside the prefix (it resolves
	 * beneath it through a symlink). Used in every message about the file.
	 */
	const char *path;
	const char *abs_path; /* prefix + name, lexically normalized (no symlinks resolved) */
	const char *data;     /* the bytes as read; NUL after the last one */
	size_t len;
	/* the file read (st_dev, st_ino), to tell whether another path names it; 0 for a buffer */
	uint64_t dev, ino;
	const mg_ngx_directive *dirs; /* top-level directives */
	size_t ndirs;
} mg_ngx_file;

typedef struct {
	/* Relative includes resolve against it (nginx's conf prefix); NULL: the main file's
	 * directory. For mg_nginxconf_parse_buffer, NULL means includes are not followed. */
	const char *prefix;
	bool keep_comments; /* record comments as "#" pseudo-directives */
	bool no_includes;   /* record include directives without reading what they name */
} mg_nginxconf_options;

/*
 * Parses main_file and everything it includes. opt may be NULL (defaults).
 *
 * The tree is the prefix with its symlinks resolved, and nothing outside it
 * is read: the main file and every file an include names (each match of a
 * glob too) must resolve, after every symlink, beneath it, and be a regular
 * file. Both are checked before the file is opened and again on what was
 * opened, before a byte is read, so a symlink to /etc/shadow, an `include
 * ../../x.conf`, a FIFO (which would block) or a device (which would never
 * end) is refused at once, with where the include is:
 *   open() "/srv/t/conf.d/x.conf" refused: it resolves to "/etc/shadow", outside the tree "/srv/t"
 * in nginx.conf:12 open() "/srv/t/conf.d/pipe" refused: a FIFO, not a regular file in nginx.conf:12
 *   pread() "/srv/t/conf.d" failed (21: Is a directory) in nginx.conf:12   (nginx's words)
 *
 * On a syntax error, a missing or refused include, an include cycle or an
 * unreadable file: MG_EINVALID (for the main file MG_ENOTFOUND when it does
 * not exist, MG_EIO when it cannot be read, MG_EINVALID when it is refused;
 * for a prefix that does not resolve MG_ENOTFOUND or MG_EIO; MG_ENOMEM),
 * *out NULL, err->message nginx's words with the place, e.g.
 *   unexpected "}" in conf.d/app.conf:42
 *   open() "/etc/nginx/x.conf" failed (2: No such file or directory) in nginx.conf:12
 * and one MG_SEV_ERROR diag (file = the file's path, line, col, message
 * without the " in file:line" part). Like nginx, it stops at the first error.
 *
 * On success err may still hold MG_SEV_WARNING diags for what parses here but
 * that nginx itself rejects: a parameter of 4 KB or more ("too long
 * parameter"), which nginx's fixed buffer cannot hold.
 */
int mg_nginxconf_parse(mg_nginxconf **out, const char *main_file, const mg_nginxconf_options *opt,
                       mg_error *err);

/*
 * Parses a buffer named `name` (used in messages; "nginx.conf" if NULL), for
 * tests and fuzzing. Includes are followed against opt->prefix when it is
 * set (confined to it as above), else recorded only. data need not be
 * NUL-terminated; it is copied.
 */
int mg_nginxconf_parse_buffer(mg_nginxconf **out, const char *data, size_t len, const char *name,
                              const mg_nginxconf_options *opt, mg_error *err);

void mg_nginxconf_free(mg_nginxconf *conf);

/* Where a word is in its file's data: bytes [start, end), quotes included. */
typedef struct {
	size_t start, end;
} mg_ngx_span;

/*
 * Reads directive d of conf again with the lexer, for a caller that rewrites
 * the file's bytes: spans[0] is its name, spans[1 + i] its argument i (for a
 * Lua block, the last is the code between the braces), *term the ";" or "{"
 * that ended it (the closing "}" of a Lua block). spans holds 1 + d->nargs
 * entries; term may be NULL. Comments between the words are skipped, as
 * nginx does. 0, or MG_EINVALID for a comment or a directive not of conf.
 * The first call for a file indexes its lines (not thread-safe).
 */
int mg_nginxconf_spans(const mg_nginxconf *conf, const mg_ngx_directive *d, mg_ngx_span *spans,
                       mg_ngx_span *term);

/* Files in the order first met (depth first, as nginx reads them); 0 is the main file. */
size_t mg_nginxconf_nfiles(const mg_nginxconf *conf);
const mg_ngx_file *mg_nginxconf_file(const mg_nginxconf *conf, size_t i);
/* The prefix includes were resolved against (absolute, no trailing slash except "/");
 * "" for a buffer parsed without one. */
const char *mg_nginxconf_prefix(const mg_nginxconf *conf);

/*
 * crossplane's shape:
 *   {"status": "ok", "errors": [], "config": [{"file": path, "status": "ok", "errors": [],
 *     "parsed": [{"directive", "line", "args", "includes"?, "block"?}, ...]}, ...]}
 * Comments (when parsed with keep_comments and asked for here) are
 * {"directive": "#", "line", "args": [], "comment": text}. Strings that are
 * not UTF-8 have each bad byte replaced by U+FFFD (JSON cannot carry them).
 * NULL only when out of memory.
 */
json_t *mg_nginxconf_to_json(const mg_nginxconf *conf, bool keep_comments);
/*
 * The same shape for a failed parse: {"status": "failed", "errors": [{"file",
 * "line", "error"}], "config": []}, from the diags in err (the message alone
 * when there are none).
 */
json_t *mg_nginxconf_error_json(const mg_error *err);

#endif

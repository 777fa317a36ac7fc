/*
 * Private to lib/nginx/: the configuration lexer (lexer.c), the files and
 * includes (parse.c) and the tree of each file (tree.c), the JSON writer
 * (json.c), and the ConfigMap lint, keys, render, verify, edits and report
 * (lint.c, keys.c, render.c, verify.c, edit.c, report.c). Not part of the
 * library's API.
 */
#ifndef MG_NGINX_INTERNAL_H
#define MG_NGINX_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "configmap.h"
#include "error.h"
#include "nginxconf.h"
#include "str.h"

/*
 * Bump allocator for everything the tree holds. Objects (8-aligned) grow from
 * the bottom of a chunk and strings from the top, so mixing them wastes no
 * alignment padding: the tree must stay within a few times the input size.
 */
typedef struct mg_ngx_chunk mg_ngx_chunk;
typedef struct {
	mg_ngx_chunk *head;
	size_t
	    input; /* bytes of input so far: chunks grow with it, so the unused tail stays small */
} mg_ngx_arena;

void *mg_ngx_arena_obj(mg_ngx_arena *a, size_t size);
char *mg_ngx_arena_str(mg_ngx_arena *a, size_t size);
void mg_ngx_arena_clear(mg_ngx_arena *a);

/* One word of a directive: a range of the file's bytes, before unescaping. */
typedef struct {
	size_t off, len; /* inside the quotes for a quoted word */
	uint32_t line, col;
	char quote;   /* 0, '"', '\'', or '{' for a Lua block body */
	bool escaped; /* holds a backslash: mg_ngx_unescape() it */
} mg_ngx_token;

typedef struct {
	size_t off, len; /* the text after '#', without the line end */
	uint32_t line, col;
} mg_ngx_comment;

/* What ngx_conf_read_token() returns, plus our own failures. */
enum {
	MG_NGX_LEX_OK,          /* a directive ended by ";" */
	MG_NGX_LEX_BLOCK_START, /* a directive ended by "{" */
	MG_NGX_LEX_BLOCK_DONE,  /* "}" */
	MG_NGX_LEX_FILE_DONE,
	MG_NGX_LEX_ERROR, /* syntax: errmsg, err_line, err_col */
	MG_NGX_LEX_NOMEM,
};

/* nginx reads a configuration through a buffer of this size: longer words are rejected. */
#define MG_NGX_CONF_BUFFER 4096

typedef struct {
	const char *data;
	size_t len;
	size_t pos;
	uint32_t line;   /* of data[pos], counting LF only as nginx does */
	size_t line_off; /* where that line starts */
	bool keep_comments;

	/* the words of the directive just read, and the comments met on the way */
	mg_ngx_token *toks;
	size_t ntoks, captoks;
	mg_ngx_comment *coms;
	size_t ncoms, capcoms;

	/* where the ";", "{" or "}" that ended the last read was (nginx reports there) */
	uint32_t end_line, end_col;

	/* MG_NGX_LEX_ERROR: nginx's message, without " in file:line" */
	char errmsg[512];
	uint32_t err_line, err_col;

	/* warnings about what nginx would reject, as diags naming `path` */
	mg_error *err;
	const char *path;
	unsigned *nwarnings; /* shared by every file of a parse, to bound them */
} mg_ngx_lexer;

void mg_ngx_lex_init(mg_ngx_lexer *lx, const char *data, size_t len);
void mg_ngx_lex_fini(mg_ngx_lexer *lx);
/* Reads one directive's words (ngx_conf_read_token()); comments go to lx->coms. */
int mg_ngx_lex_directive(mg_ngx_lexer *lx);
/*
 * Right after the "{" of a *_by_lua_block directive: the Lua code up to the
 * matching "}" into *body (quote '{'), lx->pos after that "}".
 */
int mg_ngx_lex_lua_block(mg_ngx_lexer *lx, mg_ngx_token *body);
/* nginx's unescaping of a word (\" \' \\ \t \r \n); dst holds len bytes; returns the length. */
size_t mg_ngx_unescape(char *dst, const char *src, size_t len);

/* Adds s (n bytes, any bytes) to a JSON value, bad UTF-8 bytes as U+FFFD. */
json_t *mg_ngx_json_string(const char *s, size_t n);

/*
 * ConfigMap: edits of the source text, and what lint
 * records for render and verify.
 *
 * The rendered files are the operator's own text with as few bytes changed
 * as possible (a log path, an include path), never a re-serialized tree, so
 * comments and layout survive. The byte ranges of a directive's arguments
 * come from the parser's own lexer (mg_nginxconf_spans).
 */
typedef struct {
	size_t start, end;
} cm_span;

/* Replace file bytes [start, end) by text (already quoted as nginx reads it). */
typedef struct {
	uint32_t file;
	size_t start, end;
	char *text;
} cm_edit;

typedef struct {
	cm_edit *v;
	size_t n, cap;
} cm_edits;

/* What verify has to simulate or move for a directive. */
typedef enum {
	CM_REF_INCLUDE,      /* an absolute include path */
	CM_REF_LOG,          /* access_log / error_log file */
	CM_REF_PID,          /* pid file */
	CM_REF_TEMP,         /* *_temp_path directory (nginx -t creates it) */
	CM_REF_SECRET_PEM,   /* certificate, key or CA bundle: a placeholder PEM */
	CM_REF_SECRET_DH,    /* ssl_dhparam: placeholder DH parameters */
	CM_REF_SECRET_BYTES, /* ticket key, password file, htpasswd: placeholder bytes */
	CM_REF_SECRET_DROP,  /* a secret file no placeholder can stand for (CRL, OCSP) */
	CM_REF_ADDR,         /* a host name or address nginx resolves when it starts */
	CM_REF_USER,         /* the user directive */
	CM_REF_INLINE,       /* a key (data:...) or secret word written in the configuration */
} cm_ref_kind;

typedef struct {
	cm_ref_kind kind;
	const mg_ngx_directive *d;
	uint32_t arg;
	/* CM_REF_ADDR: the host part of the argument, [host_start, host_end) in its value */
	size_t host_start, host_end;
} cm_ref;

struct cm_text_chunk;

struct mg_cm_private {
	const mg_nginxconf *conf;
	const char *prefix; /* the parser's, no trailing slash */
	cm_edits edits;     /* render's */
	cm_ref *refs;
	size_t nrefs, refs_cap;
	bool *excluded;    /* per file: not a key (a secret, or named outside the tree) */
	bool *secret_file; /* per file: excluded as a secret (verify masks its words) */
	char **upstreams;
	size_t nupstreams, upstreams_cap;
	bool has_pid;                 /* a pid directive in the main context */
	const mg_ngx_directive *http; /* the http block, if any */
	bool http_access_log;         /* an access_log directly in http */
	unsigned http_temp;           /* bit i: temp path i of mg_cm_http_temp set in http */
	const mg_ngx_directive *user; /* the user directive, if any */
	const mg_ngx_file *http_file; /* the file the http block is in */
	char **owned;                 /* rendered texts the entries point to */
	size_t nowned;
	char **fixes; /* the findings' fix texts, each once */
	size_t nfixes;
	size_t findings_cap;
	/* the findings' messages, packed: hundreds of findings on a large tree
	 * would otherwise each be a malloc'd block of their own */
	struct cm_text_chunk *texts;
	bool oom;
};

/* The temp directories nginx creates at start, with the official image's paths. */
extern const char *const mg_cm_http_temp[5][2];

/* Offset of d's first byte in its file, or (size_t)-1. */
size_t mg_cm_offset(mg_cm_private *p, const mg_ngx_directive *d);
/*
 * The byte ranges of d's arguments (nargs entries in args) and of the ';' or
 * '{' that ends it (term). 0, or -1 when the text does not match the parse
 * (never for a tree this parser produced; the caller then leaves it as is).
 */
int mg_cm_spans(mg_cm_private *p, const mg_ngx_directive *d, cm_span *args, cm_span *term);

/* The argument's value written back as nginx reads it: bare when it can be, else "...". */
char *mg_cm_quote(const char *value);

int mg_cm_edits_add(cm_edits *e, uint32_t file, size_t start, size_t end, const char *text);
/* Replaces argument i of d by value (quoted as needed); 0 or -1. */
int mg_cm_edit_arg(mg_cm_private *p, cm_edits *e, const mg_ngx_directive *d, uint32_t i,
                   const char *value);
/* The replacement of argument i of d in e, or NULL. */
const char *mg_cm_edit_find(const cm_edits *e, mg_cm_private *p, const mg_ngx_directive *d,
                            uint32_t i);
void mg_cm_edits_clear(cm_edits *e);
/* File fi's bytes with e's edits for it applied (malloc'd, NUL-terminated). */
char *mg_cm_apply(const mg_ngx_file *f, uint32_t fi, const cm_edits *e, size_t *len);

int mg_cm_lint(mg_cm *cm, const mg_cm_options *opt, mg_error *err);

/* Frees the findings' messages (mg_cm_free). */
void mg_cm_texts_clear(mg_cm_private *p);
/* Adds a finding; the strings are copied. */
void mg_cm_add_finding(mg_cm *cm, mg_cm_severity sev, const char *rule, const mg_ngx_directive *d,
                       const char *fix, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/*
 * A growing string; oom is sticky and the text is dropped when it is set.
 * With a sink, the text is handed to it whenever 64 KB are buffered (and by
 * mg_cm_buf_flush); a non-zero return from the sink is kept in err.
 */
typedef struct {
	char *s;
	size_t n, cap;
	bool oom;
	int (*sink)(const char *data, size_t len, void *ud);
	void *ud;
	int err;
} cm_buf;
int mg_cm_buf_flush(cm_buf *b);
void mg_cm_buf_add(cm_buf *b, const char *data, size_t len);
void mg_cm_buf_str(cm_buf *b, const char *s);
void mg_cm_buf_printf(cm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (malloc'd, the buffer is reset), or NULL after an allocation failed. */
char *mg_cm_buf_take(cm_buf *b);

/* Path helpers. */
bool mg_cm_path_under(const char *path, const char *dir); /* path is dir or inside it */
char *mg_cm_join(const char *dir, const char *rel);
char *mg_cm_strdup(const char *s);

/* ---- the parser (parse.c: files and includes; tree.c: the tree of each file) ---- */

/* Deeper than any real configuration; bounds the recursion of whoever walks the tree. */
#define MG_NGX_MAX_BLOCK_DEPTH 256
/* Includes within includes: a chain this long is a generator gone wrong, not a config. */
#define MG_NGX_MAX_INCLUDE_DEPTH 64

enum { MG_NGX_FILE_PARSING = 1, MG_NGX_FILE_DONE = 2 };

typedef struct {
	dev_t dev;
	ino_t ino;
	uint32_t idx; /* file index + 1; 0 for an empty slot */
} mg_ngx_file_id;

struct mg_nginxconf {
	mg_ngx_arena arena;
	char *prefix;
	char *root; /* the prefix with symlinks resolved: every file read is beneath it */
	mg_ngx_file *files;
	size_t nfiles, capfiles;
	char **bufs;         /* each file's data, malloc'd: not arena, it can be tens of MB */
	uint8_t *state;      /* FILE_PARSING / FILE_DONE, per file */
	mg_ngx_file_id *ids; /* open addressing by (dev, ino) */
	size_t capids;
	size_t **lines; /* per file, where each line starts: built by mg_nginxconf_spans() */
	size_t *nlines;
};

typedef struct {
	mg_ngx_directive dir; /* name and args set; block filled when it closes */
	size_t kids_base;
} mg_ngx_frame;

typedef struct {
	uint32_t file, line; /* an include being followed: where it is */
} mg_ngx_chain_link;

typedef struct {
	const char *const *args;
	size_t n;
} mg_ngx_arglist;

typedef struct {
	mg_nginxconf *conf;
	bool keep_comments;
	bool follow;
	mg_error *err;
	unsigned nwarnings;
	mg_ngx_directive *kids;
	size_t nkids, capkids;
	mg_ngx_frame *frames;
	size_t nframes, capframes;
	mg_ngx_chain_link chain[MG_NGX_MAX_INCLUDE_DEPTH + 1];
	size_t nchain;
	/* words already stored (s[-1] is the quote byte): configs repeat their
	 * directive names and short values endlessly */
	const char **words;
	size_t nwords, capwords;
	/* argument lists already stored, all of interned words: `deny all`,
	 * `keepalive 16` and their like repeat by the hundred and share one */
	mg_ngx_arglist *arglists;
	size_t narglists, caparglists;
} mg_ngx_parser;

/* nginx's "<what> in <file>:<line>" as err's message, and the diag for it; MG_EINVALID. */
int mg_ngx_fail_at(mg_ngx_parser *p, uint32_t file, uint32_t line, uint32_t col, const char *fmt,
                   ...) __attribute__((format(printf, 5, 6)));
int mg_ngx_fail_nomem(mg_ngx_parser *p);
/* Reads and parses the files an include directive names (a glob); d->includes lists them. */
int mg_ngx_follow_include(mg_ngx_parser *p, mg_ngx_directive *d, uint32_t from, uint32_t line,
                          uint32_t col);
/* Parses file idx (already read) into its tree, following includes as nginx does. */
int mg_ngx_parse_file(mg_ngx_parser *p, uint32_t idx);

#endif

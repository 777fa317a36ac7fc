/*
 * Shared between the nginx configuration lexer (lexer.c), the tree builder
 * (parse.c) and the JSON writer (json.c). Not part of the library's API.
 */
#ifndef MG_NGINXCONF_INTERNAL_H
#define MG_NGINXCONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "nginxconf.h"

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
void mg_ngx_arena_free(mg_ngx_arena *a);

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

#endif

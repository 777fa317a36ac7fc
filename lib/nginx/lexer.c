/*
 * The nginx configuration lexer: a transcription of ngx_conf_read_token()'s
 * state machine (nginx 1.22, src/core/ngx_conf_file.c), so that words,
 * lines and errors come out exactly as nginx sees them, over a file held in
 * memory instead of nginx's 4 KB buffer. The buffer's limit is reproduced as
 * a warning only: we can read any length, but an operator must know that
 * nginx -t will refuse it.
 *
 * Also the Lua scanner for *_by_lua_block bodies (as lua-nginx-module's
 * ngx_http_lua_conf_lua_block_parse() does it: Lua strings, long brackets and
 * comments hide braces) and the arena the tree lives in.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- arena ---- */

struct mg_ngx_chunk {
	mg_ngx_chunk *next;
	size_t lo, hi; /* free space is [lo, hi) of mem */
	size_t size;
	_Alignas(8) unsigned char mem[];
};

#define ARENA_MIN (16u << 10)
#define ARENA_MAX (1u << 20)

static mg_ngx_chunk *arena_grow(mg_ngx_arena *a, size_t need)
{
	/* the tree takes about 1.5x its input: an eighth of the input wastes little at the end */
	size_t size = a->input / 8;
	size = size < ARENA_MIN ? ARENA_MIN : size > ARENA_MAX ? ARENA_MAX : size;
	/* a big string (a 1 MB word) gets a chunk of its own; the current one stays in use */
	bool own = need > size / 4;
	if (own)
		size = (need + 7) & ~(size_t)7;
	mg_ngx_chunk *c = malloc(sizeof(*c) + size);
	if (!c)
		return NULL;
	c->lo = 0;
	c->hi = c->size = size;
	if (own && a->head) {
		c->next = a->head->next;
		a->head->next = c;
	} else {
		c->next = a->head;
		a->head = c;
	}
	return c;
}

void *mg_ngx_arena_obj(mg_ngx_arena *a, size_t size)
{
	size = (size + 7) & ~(size_t)7;
	mg_ngx_chunk *c = a->head;
	if (!c || c->hi - c->lo < size) {
		c = arena_grow(a, size);
		if (!c)
			return NULL;
	}
	void *p = c->mem + c->lo;
	c->lo += size;
	return p;
}

char *mg_ngx_arena_str(mg_ngx_arena *a, size_t size)
{
	mg_ngx_chunk *c = a->head;
	if (!c || c->hi - c->lo < size) {
		c = arena_grow(a, size);
		if (!c)
			return NULL;
	}
	c->hi -= size;
	return (char *)c->mem + c->hi;
}

void mg_ngx_arena_clear(mg_ngx_arena *a)
{
	mg_ngx_chunk *c = a->head;
	while (c) {
		mg_ngx_chunk *n = c->next;
		free(c);
		c = n;
	}
	a->head = NULL;
	a->input = 0;
}

/* ---- lexer ---- */

void mg_ngx_lex_init(mg_ngx_lexer *lx, const char *data, size_t len)
{
	memset(lx, 0, sizeof(*lx));
	lx->data = data;
	lx->len = len;
	lx->line = 1;
}

void mg_ngx_lex_fini(mg_ngx_lexer *lx)
{
	free(lx->toks);
	free(lx->coms);
	lx->toks = NULL;
	lx->coms = NULL;
}

static uint32_t col_of(const mg_ngx_lexer *lx, size_t off)
{
	size_t c = off - lx->line_off + 1;
	return c > UINT32_MAX ? UINT32_MAX : (uint32_t)c;
}

static int lex_error(mg_ngx_lexer *lx, size_t off, const char *msg)
{
	snprintf(lx->errmsg, sizeof(lx->errmsg), "%s", msg);
	lx->err_line = lx->line;
	lx->err_col = col_of(lx, off);
	return MG_NGX_LEX_ERROR;
}

static bool push_token(mg_ngx_lexer *lx, size_t off, size_t len, uint32_t line, uint32_t col,
                       char quote, bool escaped)
{
	if (lx->ntoks == lx->captoks) {
		size_t cap = lx->captoks ? lx->captoks * 2 : 16;
		mg_ngx_token *t = realloc(lx->toks, cap * sizeof(*t));
		if (!t)
			return false;
		lx->toks = t;
		lx->captoks = cap;
	}
	lx->toks[lx->ntoks++] = (mg_ngx_token){
	    .off = off, .len = len, .line = line, .col = col, .quote = quote, .escaped = escaped};
	return true;
}

static bool push_comment(mg_ngx_lexer *lx, size_t hash, size_t end, uint32_t line, uint32_t col)
{
	if (!lx->keep_comments)
		return true;
	if (lx->ncoms == lx->capcoms) {
		size_t cap = lx->capcoms ? lx->capcoms * 2 : 8;
		mg_ngx_comment *c = realloc(lx->coms, cap * sizeof(*c));
		if (!c)
			return false;
		lx->coms = c;
		lx->capcoms = cap;
	}
	if (end > hash + 1 && lx->data[end - 1] == '\r')
		end--;
	lx->coms[lx->ncoms++] =
	    (mg_ngx_comment){.off = hash + 1, .len = end - hash - 1, .line = line, .col = col};
	return true;
}

#define MAX_WARNINGS 100

/*
 * nginx keeps the word being read (from `start`) in a 4 KB buffer: when the
 * word has not ended by the time the buffer is full, it fails. `start` moves
 * as in ngx_conf_read_token(), including its quirks (a comment counts from
 * its '#' to the line end; after a closing quote, up to the next character).
 */
static void too_long(mg_ngx_lexer *lx, size_t start, uint32_t start_line, int quote)
{
	if (!lx->err || !lx->nwarnings || *lx->nwarnings >= MAX_WARNINGS)
		return;
	(*lx->nwarnings)++;
	char what[128];
	if (quote)
		snprintf(what, sizeof(what),
		         "too long parameter, probably missing terminating \"%c\" character",
		         quote);
	else
		snprintf(what, sizeof(what), "too long parameter \"%.10s...\" started",
		         lx->data + start);
	mg_error_diag(lx->err, MG_SEV_WARNING, lx->path, (int)start_line, 0, NULL,
	              "%s: nginx reads at most %d bytes of one parameter and will refuse this",
	              what, MG_NGX_CONF_BUFFER - 1);
}

/* nginx prints the byte as it is, whatever it is */
static int unexpected(mg_ngx_lexer *lx, size_t off, unsigned char ch)
{
	char msg[32];
	snprintf(msg, sizeof(msg), "unexpected \"%c\"", ch);
	return lex_error(lx, off, msg);
}

static inline bool is_space(unsigned char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

int mg_ngx_lex_directive(mg_ngx_lexer *lx)
{
	const unsigned char *d = (const unsigned char *)lx->data;
	size_t len = lx->len;
	size_t pos = lx->pos;
	bool need_space = false, last_space = true, sharp_comment = false, variable = false;
	bool quoted = false, escaped = false;
	int quote = 0; /* the open quote: d_quoted / s_quoted */
	size_t start = pos, tok = pos;
	uint32_t start_line = lx->line, tok_line = 0, tok_col = 0;
	size_t hash = 0;
	uint32_t hash_line = 0, hash_col = 0;
	size_t warned = SIZE_MAX;

	lx->ntoks = 0;
	lx->ncoms = 0;

	for (;;) {
		if (pos >= len) {
			lx->pos = pos;
			if (sharp_comment && !push_comment(lx, hash, pos, hash_line, hash_col))
				return MG_NGX_LEX_NOMEM;
			if (lx->ntoks > 0 || !last_space)
				return lex_error(
				    lx, pos, "unexpected end of file, expecting \";\" or \"}\"");
			return MG_NGX_LEX_FILE_DONE;
		}
		if (pos - start >= MG_NGX_CONF_BUFFER && warned != start) {
			warned = start;
			too_long(lx, start, start_line, quote);
		}

		unsigned char ch = d[pos++];

		if (ch == '\n') {
			lx->line++;
			lx->line_off = pos;
			if (sharp_comment) {
				sharp_comment = false;
				if (!push_comment(lx, hash, pos - 1, hash_line, hash_col))
					return MG_NGX_LEX_NOMEM;
			}
		}
		if (sharp_comment)
			continue;
		if (quoted) {
			quoted = false;
			continue;
		}

		if (need_space) {
			if (is_space(ch)) {
				last_space = true;
				need_space = false;
				continue;
			}
			if (ch == ';' || ch == '{') {
				lx->pos = pos;
				lx->end_line = lx->line;
				lx->end_col = col_of(lx, pos - 1);
				return ch == ';' ? MG_NGX_LEX_OK : MG_NGX_LEX_BLOCK_START;
			}
			if (ch != ')') {
				lx->pos = pos;
				return unexpected(lx, pos - 1, ch);
			}
			/* "if ($a = "b")": the ")" after a quote starts the next word */
			last_space = true;
			need_space = false;
		}

		if (last_space) {
			start = pos - 1;
			start_line = lx->line;
			if (is_space(ch))
				continue;
			tok = pos - 1;
			tok_line = lx->line;
			tok_col = col_of(lx, pos - 1);
			escaped = false;
			switch (ch) {
			case ';':
			case '{':
				lx->pos = pos;
				if (lx->ntoks == 0)
					return unexpected(lx, pos - 1, ch);
				lx->end_line = lx->line;
				lx->end_col = tok_col;
				return ch == '{' ? MG_NGX_LEX_BLOCK_START : MG_NGX_LEX_OK;
			case '}':
				lx->pos = pos;
				if (lx->ntoks != 0)
					return unexpected(lx, pos - 1, ch);
				lx->end_line = lx->line;
				lx->end_col = tok_col;
				return MG_NGX_LEX_BLOCK_DONE;
			case '#':
				sharp_comment = true;
				hash = pos - 1;
				hash_line = tok_line;
				hash_col = tok_col;
				continue;
			case '\\':
				quoted = true;
				escaped = true;
				last_space = false;
				continue;
			case '"':
			case '\'':
				tok++;
				start++;
				quote = ch;
				last_space = false;
				continue;
			case '$':
				variable = true;
				last_space = false;
				continue;
			default:
				last_space = false;
			}
			continue;
		}

		/* "${name}": the "{" after a "$" is part of the word, not a block */
		if (ch == '{' && variable)
			continue;
		variable = false;
		if (ch == '\\') {
			quoted = true;
			escaped = true;
			continue;
		}
		if (ch == '$') {
			variable = true;
			continue;
		}

		bool found = false;
		char q = 0;
		if (quote) {
			if (ch == quote) {
				q = (char)quote;
				quote = 0;
				need_space = true;
				found = true;
			}
		} else if (is_space(ch) || ch == ';' || ch == '{') {
			last_space = true;
			found = true;
		}
		if (!found)
			continue;
		if (!push_token(lx, tok, pos - 1 - tok, tok_line, tok_col, q, escaped))
			return MG_NGX_LEX_NOMEM;
		if (ch == ';' || ch == '{') {
			lx->pos = pos;
			lx->end_line = lx->line;
			lx->end_col = col_of(lx, pos - 1);
			return ch == ';' ? MG_NGX_LEX_OK : MG_NGX_LEX_BLOCK_START;
		}
	}
}

size_t mg_ngx_unescape(char *dst, const char *src, size_t len)
{
	const char *end = src + len;
	char *o = dst;
	while (src < end) {
		if (*src == '\\' && src + 1 < end) {
			switch (src[1]) {
			case '"':
			case '\'':
			case '\\':
				src++;
				break;
			case 't':
				*o++ = '\t';
				src += 2;
				continue;
			case 'r':
				*o++ = '\r';
				src += 2;
				continue;
			case 'n':
				*o++ = '\n';
				src += 2;
				continue;
			}
		}
		*o++ = *src++;
	}
	return (size_t)(o - dst);
}

/* ---- Lua blocks ---- */

/* At "[" (or "--["): the level of a long bracket "[==[", or -1 if it is not one. */
static long long_bracket(const char *d, size_t len, size_t pos)
{
	size_t i = pos + 1;
	while (i < len && d[i] == '=')
		i++;
	if (i < len && d[i] == '[')
		return (long)(i - pos - 1);
	return -1;
}

/* After the opening bracket of `level`: the offset just past its "]==]", or 0 if none. */
static size_t long_bracket_end(const char *d, size_t len, size_t from, long level)
{
	for (size_t i = from; i < len; i++) {
		if (d[i] != ']')
			continue;
		size_t j = i + 1;
		while (j < len && d[j] == '=')
			j++;
		if (j < len && d[j] == ']' && (long)(j - i - 1) == level)
			return j + 1;
	}
	return 0;
}

static void advance_lines(mg_ngx_lexer *lx, size_t from, size_t to)
{
	const char *p = lx->data + from, *end = lx->data + to;
	while ((p = memchr(p, '\n', (size_t)(end - p)))) {
		lx->line++;
		lx->line_off = (size_t)(++p - lx->data);
	}
}

int mg_ngx_lex_lua_block(mg_ngx_lexer *lx, mg_ngx_token *body)
{
	const char *d = lx->data;
	size_t len = lx->len, pos = lx->pos, depth = 0;
	size_t unclosed[2] = {0, 0}; /* per quote kind: no string opens before this */
	*body = (mg_ngx_token){.off = pos,
	                       .len = 0,
	                       .line = lx->line,
	                       .col = col_of(lx, pos),
	                       .quote = '{',
	                       .escaped = false};

	while (pos < len) {
		char ch = d[pos];
		if (ch == '-' && pos + 1 < len && d[pos + 1] == '-') {
			long level =
			    pos + 2 < len && d[pos + 2] == '[' ? long_bracket(d, len, pos + 2) : -1;
			if (level >= 0) {
				size_t end =
				    long_bracket_end(d, len, pos + 4 + (size_t)level, level);
				if (!end)
					goto unclosed_bracket;
				pos = end;
			} else {
				const char *nl = memchr(d + pos, '\n', len - pos);
				pos = nl ? (size_t)(nl - d) : len;
			}
			continue;
		}
		if (ch == '[') {
			long level = long_bracket(d, len, pos);
			if (level >= 0) {
				size_t end =
				    long_bracket_end(d, len, pos + 2 + (size_t)level, level);
				if (!end)
					goto unclosed_bracket;
				pos = end;
				continue;
			}
		} else if ((ch == '"' || ch == '\'') && pos >= unclosed[ch == '"']) {
			/* a short string ends on its line; else the quote is a lone character */
			size_t i = pos + 1;
			while (i < len && d[i] != ch && d[i] != '\n')
				i += d[i] == '\\' ? 2 : 1;
			if (i < len && d[i] == ch) {
				pos = i + 1;
				continue;
			}
			/* a later quote of this kind before i was escaped in this scan, so a
			 * scan from it would fail the same way: no quadratic rescans */
			unclosed[ch == '"'] = i;
		} else if (ch == '{') {
			depth++;
		} else if (ch == '}') {
			if (depth == 0) {
				body->len = pos - body->off;
				advance_lines(lx, lx->pos, pos);
				lx->end_line = lx->line;
				lx->end_col = col_of(lx, pos);
				lx->pos = pos + 1;
				return MG_NGX_LEX_OK;
			}
			depth--;
		}
		pos++;
	}
	advance_lines(lx, lx->pos, len);
	lx->pos = len;
	snprintf(lx->errmsg, sizeof(lx->errmsg),
	         "unexpected end of file, expecting terminating characters for lua code block");
	lx->err_line = lx->line;
	lx->err_col = col_of(lx, len);
	return MG_NGX_LEX_ERROR;

unclosed_bracket:;
	long level = long_bracket(d, len, d[pos] == '[' ? pos : pos + 2);
	advance_lines(lx, lx->pos, pos);
	lx->err_line = lx->line;
	lx->err_col = col_of(lx, pos);
	lx->pos = pos;
	char close[260];
	int n = level > 256 ? 256 : (int)level;
	close[0] = ']';
	memset(close + 1, '=', (size_t)n);
	close[n + 1] = ']';
	close[n + 2] = '\0';
	snprintf(lx->errmsg, sizeof(lx->errmsg),
	         "Lua code block missing the closing long bracket \"%s\"", close);
	return MG_NGX_LEX_ERROR;
}

/*
 * The tree of one file's directives, built from the lexer's words.
 *
 * Blocks are built bottom-up on one shared stack of finished siblings: when
 * a "}" closes a block, its children are copied once, contiguously, into the
 * arena and popped. Repeated words and argument lists are stored once.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Words up to this long are shared; longer ones are rarely repeated. */
#define INTERN_MAX_LEN 32
/* Bounds the table (a parse-time cost) on inputs of unique words. */
#define INTERN_MAX_ENTRIES (1u << 16)

static const char comment_name[] = "\0#"; /* a quote byte, then the name */

/* ---- tree ---- */

static bool push_kid(mg_ngx_parser *p, const mg_ngx_directive *d)
{
	if (p->nkids == p->capkids) {
		size_t cap = p->capkids ? p->capkids * 2 : 256;
		mg_ngx_directive *k = realloc(p->kids, cap * sizeof(*k));
		if (!k)
			return false;
		p->kids = k;
		p->capkids = cap;
	}
	p->kids[p->nkids++] = *d;
	return true;
}

/* Pops the kids above base into one arena array. */
static bool pop_kids(mg_ngx_parser *p, size_t base, const mg_ngx_directive **out, uint32_t *n)
{
	size_t count = p->nkids - base;
	*out = NULL;
	*n = (uint32_t)count;
	if (count) {
		mg_ngx_directive *arr = mg_ngx_arena_obj(&p->conf->arena, count * sizeof(*arr));
		if (!arr)
			return false;
		memcpy(arr, p->kids + base, count * sizeof(*arr));
		*out = arr;
	}
	p->nkids = base;
	return true;
}

static uint32_t word_hash(int quote, const char *s, size_t n)
{
	uint32_t h = 2166136261u ^ (uint32_t)quote;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 16777619u;
	return h;
}

static bool intern_grow(mg_ngx_parser *p)
{
	size_t cap = p->capwords ? p->capwords * 2 : 1024;
	const char **w = calloc(cap, sizeof(*w));
	if (!w)
		return false;
	for (size_t i = 0; i < p->capwords; i++) {
		const char *s = p->words[i];
		if (!s)
			continue;
		size_t j = word_hash(s[-1], s, strlen(s)) & (cap - 1);
		while (w[j])
			j = (j + 1) & (cap - 1);
		w[j] = s;
	}
	free(p->words);
	p->words = w;
	p->capwords = cap;
	return true;
}

/* A word as the tree stores it: its quote byte, then the unescaped text. */
static const char *store_word(mg_ngx_parser *p, const char *data, const mg_ngx_token *t)
{
	const char **slot = NULL;
	if (!t->escaped && t->len <= INTERN_MAX_LEN && (p->capwords || intern_grow(p))) {
		const char *src = data + t->off;
		size_t mask = p->capwords - 1;
		for (size_t j = word_hash(t->quote, src, t->len) & mask;; j = (j + 1) & mask) {
			const char *w = p->words[j];
			if (!w) {
				slot = &p->words[j];
				break;
			}
			if (w[-1] == t->quote && strnlen(w, t->len + 1) == t->len &&
			    memcmp(w, src, t->len) == 0)
				return w;
		}
	}
	char *s = mg_ngx_arena_str(&p->conf->arena, t->len + 2);
	if (!s)
		return NULL;
	s[0] = t->quote;
	size_t n = t->len;
	if (t->escaped)
		n = mg_ngx_unescape(s + 1, data + t->off, t->len);
	else
		memcpy(s + 1, data + t->off, t->len);
	s[1 + n] = '\0';
	if (slot && p->nwords < INTERN_MAX_ENTRIES) {
		*slot = s + 1;
		/* a full table is only slower, so a failed growth is not an error */
		if (++p->nwords * 2 > p->capwords && !intern_grow(p))
			p->nwords = INTERN_MAX_ENTRIES;
	}
	return s + 1;
}

/* Argument lists shorter than this are shared (longer ones rarely repeat). */
#define SHARE_MAX_ARGS    8
#define SHARE_MAX_ENTRIES (1u << 16)

static uint32_t arglist_hash(const char *const *args, size_t n)
{
	uint64_t h = n;
	for (size_t i = 0; i < n; i++)
		h = (h ^ (uint64_t)(uintptr_t)args[i]) * 0x9E3779B97F4A7C15ull;
	return (uint32_t)(h ^ (h >> 32));
}

static bool arglists_grow(mg_ngx_parser *p)
{
	size_t cap = p->caparglists ? p->caparglists * 2 : 1024;
	mg_ngx_arglist *t = calloc(cap, sizeof(*t));
	if (!t)
		return false;
	for (size_t i = 0; i < p->caparglists; i++) {
		mg_ngx_arglist l = p->arglists[i];
		if (!l.args)
			continue;
		size_t j = arglist_hash(l.args, l.n) & (cap - 1);
		while (t[j].args)
			j = (j + 1) & (cap - 1);
		t[j] = l;
	}
	free(p->arglists);
	p->arglists = t;
	p->caparglists = cap;
	return true;
}

/*
 * The tree's copy of args (n words from store_word()): a list stored before
 * with the same pointers, or a new one. Equal pointers are equal words, so
 * sharing never changes what a directive reads; a word that was not interned
 * only makes its list unshared.
 */
static const char *const *share_args(mg_ngx_parser *p, const char *const *args, size_t n)
{
	if (!p->caparglists && !arglists_grow(p))
		return NULL;
	size_t mask = p->caparglists - 1;
	size_t j = arglist_hash(args, n) & mask;
	for (;; j = (j + 1) & mask) {
		mg_ngx_arglist l = p->arglists[j];
		if (!l.args)
			break;
		if (l.n == n && memcmp(l.args, args, n * sizeof(*args)) == 0)
			return l.args;
	}
	const char **copy = mg_ngx_arena_obj(&p->conf->arena, n * sizeof(*copy));
	if (!copy)
		return NULL;
	memcpy(copy, args, n * sizeof(*args));
	if (p->narglists < SHARE_MAX_ENTRIES) {
		p->arglists[j] = (mg_ngx_arglist){.args = copy, .n = n};
		/* a full table only shares less, so a failed growth is not an error */
		if (++p->narglists * 2 > p->caparglists && !arglists_grow(p))
			p->narglists = SHARE_MAX_ENTRIES;
	}
	return copy;
}

static bool make_directive(mg_ngx_parser *p, const mg_ngx_lexer *lx, uint32_t file,
                           mg_ngx_directive *d)
{
	mg_ngx_arena *a = &p->conf->arena;
	size_t nargs = lx->ntoks - 1;
	*d = (mg_ngx_directive){.nargs = (uint32_t)nargs,
	                        .file = file,
	                        .line = lx->toks[0].line,
	                        .col = lx->toks[0].col};
	d->name = store_word(p, lx->data, &lx->toks[0]);
	if (!d->name)
		return false;
	if (!nargs)
		return true;
	bool shareable = nargs <= SHARE_MAX_ARGS;
	for (size_t i = 1; shareable && i <= nargs; i++)
		shareable = !lx->toks[i].escaped && lx->toks[i].len <= INTERN_MAX_LEN;
	if (shareable) {
		const char *tmp[SHARE_MAX_ARGS];
		for (size_t i = 0; i < nargs; i++)
			if (!(tmp[i] = store_word(p, lx->data, &lx->toks[i + 1])))
				return false;
		d->args = share_args(p, tmp, nargs);
		return d->args != NULL;
	}
	const char **args = mg_ngx_arena_obj(a, nargs * sizeof(*args));
	if (!args)
		return false;
	for (size_t i = 0; i < nargs; i++)
		if (!(args[i] = store_word(p, lx->data, &lx->toks[i + 1])))
			return false;
	d->args = args;
	return true;
}

static bool push_comments(mg_ngx_parser *p, const mg_ngx_lexer *lx, uint32_t file)
{
	for (size_t i = 0; i < lx->ncoms; i++) {
		const mg_ngx_comment *cm = &lx->coms[i];
		mg_ngx_token t = {.off = cm->off,
		                  .len = cm->len,
		                  .line = cm->line,
		                  .col = cm->col,
		                  .quote = 0,
		                  .escaped = false};
		const char **args = mg_ngx_arena_obj(&p->conf->arena, sizeof(*args));
		if (!args || !(args[0] = store_word(p, lx->data, &t)))
			return false;
		mg_ngx_directive d = {.name = comment_name + 1,
		                      .args = args,
		                      .nargs = 1,
		                      .file = file,
		                      .line = cm->line,
		                      .col = cm->col,
		                      .is_comment = true};
		if (!push_kid(p, &d))
			return false;
	}
	return true;
}

int mg_ngx_parse_file(mg_ngx_parser *p, uint32_t idx)
{
	mg_nginxconf *c = p->conf;
	mg_ngx_lexer lx;
	mg_ngx_lex_init(&lx, c->files[idx].data, c->files[idx].len);
	lx.keep_comments = p->keep_comments;
	lx.err = p->err;
	lx.path = c->files[idx].path;
	lx.nwarnings = &p->nwarnings;
	size_t kids_base = p->nkids, frames_base = p->nframes;
	int rc = 0;

	for (;;) {
		int lr = mg_ngx_lex_directive(&lx);
		if (lr == MG_NGX_LEX_NOMEM || !push_comments(p, &lx, idx)) {
			rc = mg_ngx_fail_nomem(p);
			break;
		}
		if (lr == MG_NGX_LEX_ERROR) {
			rc = mg_ngx_fail_at(p, idx, lx.err_line, lx.err_col, "%s", lx.errmsg);
			break;
		}
		if (lr == MG_NGX_LEX_FILE_DONE) {
			if (p->nframes > frames_base) {
				rc = mg_ngx_fail_at(p, idx, lx.line,
				                    (uint32_t)(lx.len - lx.line_off + 1),
				                    "unexpected end of file, expecting \"}\"");
				break;
			}
			mg_ngx_file *f = &c->files[idx];
			const mg_ngx_directive *dirs;
			uint32_t n;
			if (!pop_kids(p, kids_base, &dirs, &n)) {
				rc = mg_ngx_fail_nomem(p);
				break;
			}
			f->dirs = dirs;
			f->ndirs = n;
			break;
		}
		if (lr == MG_NGX_LEX_BLOCK_DONE) {
			if (p->nframes == frames_base) {
				rc = mg_ngx_fail_at(p, idx, lx.end_line, lx.end_col,
				                    "unexpected \"}\"");
				break;
			}
			mg_ngx_frame *fr = &p->frames[--p->nframes];
			mg_ngx_directive d = fr->dir;
			if (!pop_kids(p, fr->kids_base, &d.block, &d.nblock) || !push_kid(p, &d)) {
				rc = mg_ngx_fail_nomem(p);
				break;
			}
			continue;
		}

		/* a directive, ended by ";" or "{" */
		bool lua = false;
		mg_ngx_directive d;
		if (lr == MG_NGX_LEX_BLOCK_START) {
			/* lua-nginx-module registers every one of them under this suffix */
			const mg_ngx_token *t = &lx.toks[0];
			lua = t->len >= 13 &&
			      memcmp(lx.data + t->off + t->len - 13, "_by_lua_block", 13) == 0;
			if (lua) {
				mg_ngx_token body;
				int br = mg_ngx_lex_lua_block(&lx, &body);
				if (br == MG_NGX_LEX_ERROR) {
					rc = mg_ngx_fail_at(p, idx, lx.err_line, lx.err_col, "%s",
					                    lx.errmsg);
					break;
				}
				size_t n = lx.ntoks;
				if (lx.ntoks == lx.captoks) {
					mg_ngx_token *tk =
					    realloc(lx.toks, (lx.captoks * 2) * sizeof(*tk));
					if (!tk) {
						rc = mg_ngx_fail_nomem(p);
						break;
					}
					lx.toks = tk;
					lx.captoks *= 2;
				}
				lx.toks[n] = body;
				lx.ntoks = n + 1;
			}
		}
		if (!make_directive(p, &lx, idx, &d)) {
			rc = mg_ngx_fail_nomem(p);
			break;
		}
		if (lua) {
			d.is_lua_block = true;
			if (!push_kid(p, &d)) {
				rc = mg_ngx_fail_nomem(p);
				break;
			}
			continue;
		}
		bool include = p->follow && strcmp(d.name, "include") == 0;
		if (lr == MG_NGX_LEX_BLOCK_START) {
			if (include) {
				rc = mg_ngx_fail_at(
				    p, idx, lx.end_line, lx.end_col,
				    "directive \"include\" is not terminated by \";\"");
				break;
			}
			if (p->nframes >= MG_NGX_MAX_BLOCK_DEPTH) {
				rc = mg_ngx_fail_at(
				    p, idx, lx.end_line, lx.end_col,
				    "too deep nesting of blocks (more than %d levels)",
				    MG_NGX_MAX_BLOCK_DEPTH);
				break;
			}
			if (p->nframes == p->capframes) {
				size_t cap = p->capframes ? p->capframes * 2 : 16;
				mg_ngx_frame *f = realloc(p->frames, cap * sizeof(*f));
				if (!f) {
					rc = mg_ngx_fail_nomem(p);
					break;
				}
				p->frames = f;
				p->capframes = cap;
			}
			d.has_block = true;
			p->frames[p->nframes++] = (mg_ngx_frame){.dir = d, .kids_base = p->nkids};
			continue;
		}
		if (include) {
			if (d.nargs != 1) {
				rc = mg_ngx_fail_at(
				    p, idx, lx.end_line, lx.end_col,
				    "invalid number of arguments in \"include\" directive");
				break;
			}
			rc = mg_ngx_follow_include(p, &d, idx, lx.end_line, lx.end_col);
			if (rc)
				break;
		}
		if (!push_kid(p, &d)) {
			rc = mg_ngx_fail_nomem(p);
			break;
		}
	}
	mg_ngx_lex_fini(&lx);
	return rc;
}

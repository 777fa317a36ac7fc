/* Manifest templates: see template.h and docs/kubernetes.md. */
#include "template.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "configmap.h"
#include "fs.h"
#include "internal.h"
#include "nginxconf.h"

/* Aliases are copies: a few anchors nested in each other would otherwise grow without end. */
#define MAX_NODES 1000000
/* libyaml does not bound nesting, and the tree is built by recursion. */
#define MAX_DEPTH 512

#define CORE_TAG "tag:yaml.org,2002:"

typedef struct {
	const char *name;
	json_t *node;
} anchor;

typedef struct {
	const char *buf;
	size_t len;
	const char *file;
	const mg_template_vars *vars;
	mg_error *err;
	yaml_parser_t parser;
	size_t *lines; /* byte offset of each line's start */
	size_t nlines;
	anchor *anchors;
	size_t nanchors;
	size_t nodes;
	int errors;
	bool fatal; /* the event stream cannot be followed further */
} parse;

static void line_table(parse *p)
{
	size_t n = 1;
	for (size_t i = 0; i < p->len; i++)
		n += p->buf[i] == '\n';
	p->lines = malloc(n * sizeof(*p->lines));
	if (!p->lines)
		return;
	p->lines[0] = 0;
	p->nlines = 1;
	for (size_t i = 0; i < p->len; i++)
		if (p->buf[i] == '\n')
			p->lines[p->nlines++] = i + 1;
}

/* libyaml counts columns in characters: the byte offset of (line, column). */
static size_t mark_offset(const parse *p, yaml_mark_t m)
{
	if (!p->lines || m.line >= p->nlines)
		return p->len;
	size_t o = p->lines[m.line];
	for (size_t c = 0; c < m.column && o < p->len && p->buf[o] != '\n';) {
		o++;
		if (o >= p->len || ((unsigned char)p->buf[o] & 0xc0) != 0x80)
			c++;
	}
	return o;
}

/* 1-based line and column (in characters) of a byte offset. */
static void offset_pos(const parse *p, size_t off, int *line, int *col)
{
	size_t lo = 0, hi = p->nlines;
	while (hi - lo > 1) {
		size_t mid = (lo + hi) / 2;
		if (p->lines[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	int c = 1;
	for (size_t o = p->lines ? p->lines[lo] : 0; o < off; o++)
		if (((unsigned char)p->buf[o] & 0xc0) != 0x80)
			c++;
	*line = (int)lo + 1;
	*col = c;
}

static void diag(parse *p, mg_severity sev, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void diag(parse *p, mg_severity sev, int line, int col, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mg_error_diag(p->err, sev, p->file, line, col, NULL, "%s", msg);
	if (sev == MG_SEV_ERROR)
		p->errors++;
}

#define ERR_AT(p, mark, ...)                                                                       \
	diag(p, MG_SEV_ERROR, (int)(mark).line + 1, (int)(mark).column + 1, __VA_ARGS__)
#define WARN_AT(p, mark, ...)                                                                      \
	diag(p, MG_SEV_WARNING, (int)(mark).line + 1, (int)(mark).column + 1, __VA_ARGS__)

/*
 * Where the occurrence-th "${name}" of a scalar is in the file: searched in
 * the scalar's source text, which holds it verbatim unless an escape or a
 * line fold split it; then the scalar's start.
 */
static void ref_pos(const parse *p, const yaml_event_t *ev, const char *needle, int occurrence,
                    int *line, int *col)
{
	size_t a = mark_offset(p, ev->start_mark), b = mark_offset(p, ev->end_mark);
	size_t nl = strlen(needle);
	int seen = 0;
	for (size_t o = a; o + nl <= b && o + nl <= p->len; o++) {
		if (memcmp(p->buf + o, needle, nl))
			continue;
		if (seen++ == occurrence) {
			offset_pos(p, o, line, col);
			return;
		}
	}
	*line = (int)ev->start_mark.line + 1;
	*col = (int)ev->start_mark.column + 1;
}

/* --- the YAML 1.2 core schema ------------------------------------------------------------- */

static bool all_in(const char *s, const char *set)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!strchr(set, *s))
			return false;
	return true;
}

static bool is_core_int(const char *s)
{
	if (!strncmp(s, "0o", 2))
		return all_in(s + 2, "01234567");
	if (!strncmp(s, "0x", 2))
		return all_in(s + 2, "0123456789abcdefABCDEF");
	if (*s == '-' || *s == '+')
		s++;
	return all_in(s, "0123456789");
}

static bool is_core_float(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	bool digits = false;
	while (isdigit((unsigned char)*s))
		s++, digits = true;
	if (*s == '.') {
		s++;
		while (isdigit((unsigned char)*s))
			s++, digits = true;
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

static bool is_one_of(const char *s, const char *const *words)
{
	for (; *words; words++)
		if (!strcmp(s, *words))
			return true;
	return false;
}

static const char *const core_nulls[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const core_trues[] = {"true", "True", "TRUE", NULL};
static const char *const core_falses[] = {"false", "False", "FALSE", NULL};
static const char *const core_specials[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                            "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                            ".NaN",  ".NAN",  NULL};
/* What go-yaml (YAML 1.1), and so kubectl and the API server's YAML, reads as booleans. */
static const char *const yaml11_bools[] = {"y",  "Y",   "yes", "Yes", "YES", "n",
                                           "N",  "no",  "No",  "NO",  "on",  "On",
                                           "ON", "off", "Off", "OFF", NULL};

typedef enum { R_STR, R_NULL, R_BOOL, R_INT, R_FLOAT, R_SPECIAL } resolved;

static resolved core_type(const char *s)
{
	if (is_one_of(s, core_nulls))
		return R_NULL;
	if (is_one_of(s, core_trues) || is_one_of(s, core_falses))
		return R_BOOL;
	if (is_core_int(s))
		return R_INT;
	if (is_core_float(s))
		return R_FLOAT;
	if (is_one_of(s, core_specials))
		return R_SPECIAL;
	return R_STR;
}

/* The JSON value of a core-schema scalar of type t (not R_SPECIAL). */
static json_t *core_value(const char *s, resolved t)
{
	switch (t) {
	case R_NULL:
		return json_null();
	case R_BOOL:
		return json_boolean(is_one_of(s, core_trues));
	case R_INT: {
		int base = 10;
		const char *d = s;
		if (!strncmp(s, "0o", 2))
			base = 8, d = s + 2;
		else if (!strncmp(s, "0x", 2))
			base = 16, d = s + 2;
		errno = 0;
		long long v = strtoll(d, NULL, base);
		if (errno == ERANGE)
			return json_real(strtod(s, NULL));
		return json_integer(v);
	}
	case R_FLOAT:
		return json_real(strtod(s, NULL));
	default:
		return json_string(s);
	}
}

/* --- references --------------------------------------------------------------------------- */

/* A plan value with the type it was written with. */
static json_t *value_typed(const mg_plan_value *v)
{
	if (v->is_string)
		return json_string(v->value);
	if (!strcmp(v->value, "true") || !strcmp(v->value, "false"))
		return json_boolean(!strcmp(v->value, "true"));
	resolved t = core_type(v->value);
	if (t == R_INT || t == R_FLOAT)
		return core_value(v->value, t);
	return json_string(v->value);
}

static const mg_template_configmap *find_cm(const mg_template_vars *vars, const char *name,
                                            size_t len)
{
	for (size_t i = 0; i < vars->nconfigmaps; i++)
		if (strlen(vars->configmaps[i].name) == len &&
		    !memcmp(vars->configmaps[i].name, name, len))
			return &vars->configmaps[i];
	return NULL;
}

/*
 * The value of reference name (new reference), or NULL with why. Strings for
 * everything but values (their type) and configmap items (a list).
 */
static json_t *lookup(const mg_template_vars *v, const char *name, bool typed, char *why,
                      size_t size)
{
	const char *s = NULL, *missing = NULL;
	if (!strcmp(name, "version")) {
		s = v->version, missing = "no release version was given";
	} else if (!strcmp(name, "image")) {
		s = v->image, missing = "the plan has no build.image";
	} else if (!strcmp(name, "plan.name")) {
		s = v->plan_name, missing = "the plan has no name";
	} else if (!strcmp(name, "namespace")) {
		s = v->namespace_, missing = "the plan has no kubernetes.namespace";
	} else if (!strncmp(name, "values.", 7)) {
		for (size_t i = 0; i < v->nvalues; i++)
			if (!strcmp(v->values[i].key, name + 7))
				return typed ? value_typed(&v->values[i])
				             : json_string(v->values[i].value); /* as written */
		snprintf(why, size, "the plan has no kubernetes.values.%s", name + 7);
		return NULL;
	} else if (!strncmp(name, "configmap.", 10)) {
		const char *n = name + 10, *dot = strrchr(n, '.');
		const char *field = dot ? dot + 1 : "";
		if (!dot || dot == n ||
		    (strcmp(field, "name") && strcmp(field, "checksum") &&
		     strcmp(field, "items"))) {
			snprintf(why, size,
			         "unknown reference: write ${configmap.NAME.name}, "
			         "${configmap.NAME.checksum} or ${configmap.NAME.items}");
			return NULL;
		}
		const mg_template_configmap *cm = find_cm(v, n, (size_t)(dot - n));
		if (!cm) {
			snprintf(why, size,
			         "the plan has no kubernetes.configmaps entry named \"%.*s\"",
			         (int)(dot - n), n);
			return NULL;
		}
		if (!strcmp(field, "items")) {
			if (!cm->items) {
				snprintf(why, size, "the items of ConfigMap %s are not known",
				         cm->name);
				return NULL;
			}
			return json_deep_copy(cm->items);
		}
		s = !strcmp(field, "name") ? cm->cm_name : cm->checksum;
		missing = "not known";
	} else {
		snprintf(why, size,
		         "unknown reference (known: ${version}, ${image}, ${plan.name}, "
		         "${namespace}, ${values.KEY}, ${configmap.NAME.name}, "
		         "${configmap.NAME.checksum}, ${configmap.NAME.items})");
		return NULL;
	}
	if (!s) {
		snprintf(why, size, "%s", missing);
		return NULL;
	}
	return json_string(s);
}

void mg_kube_sb_add(mg_kube_sbuf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 64;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *t = realloc(b->s, cap);
		if (!t) {
			b->oom = true;
			return;
		}
		b->s = t, b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* A value interpolated into text: as written. */
static bool value_text(mg_kube_sbuf *b, json_t *v)
{
	if (json_is_string(v)) {
		mg_kube_sb_add(b, json_string_value(v), json_string_length(v));
		return true;
	}
	if (json_is_array(v) || json_is_object(v))
		return false;
	char *t = json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
	if (t)
		mg_kube_sb_add(b, t, strlen(t));
	free(t);
	return true;
}

/*
 * Substitutes the references of one scalar. Returns the value when the
 * scalar is exactly one reference and typed is set (the caller keeps
 * the reference's type), else sets *text (malloc'd) with every reference
 * as text; *changed when there was a reference or an escape. NULL and
 * *text NULL after an error (reported).
 */
static json_t *substitute(parse *p, const yaml_event_t *ev, bool typed, char **text, bool *changed)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t n = ev->data.scalar.length;
	*text = NULL;
	*changed = false;
	if (!memchr(s, '$', n)) {
		*text = strndup(s, n);
		return NULL;
	}
	mg_kube_sbuf b = {0};
	mg_kube_sb_add(&b, "", 0);
	bool failed = false;
	for (size_t i = 0; i < n;) {
		if (s[i] == '$' && i + 2 < n && s[i + 1] == '$' && s[i + 2] == '{') {
			mg_kube_sb_add(&b, "${", 2);
			*changed = true;
			i += 3;
			continue;
		}
		if (!(s[i] == '$' && i + 1 < n && s[i + 1] == '{')) {
			mg_kube_sb_add(&b, s + i, 1);
			i++;
			continue;
		}
		*changed = true;
		const char *close = memchr(s + i + 2, '}', n - i - 2);
		int line, col;
		if (!close) {
			ref_pos(p, ev, "${", 0, &line, &col);
			diag(p, MG_SEV_ERROR, line, col,
			     "unterminated ${ in \"%.*s\" (write $${ for a literal ${)",
			     (int)(n > 80 ? 80 : n), s);
			failed = true;
			break;
		}
		size_t rlen = (size_t)(close - s) + 1 - i;
		char *ref = strndup(s + i, rlen);
		char *name = strndup(s + i + 2, rlen - 3);
		/* which occurrence of this same reference text, for its position */
		int occ = 0;
		for (size_t j = 0; j + rlen <= i; j++)
			occ += !memcmp(s + j, ref, rlen);
		char why[512];
		bool exact = typed && i == 0 && rlen == n;
		json_t *v = ref && name ? lookup(p->vars, name, exact, why, sizeof(why)) : NULL;
		if (!v) {
			ref_pos(p, ev, ref ? ref : "${", occ, &line, &col);
			diag(p, MG_SEV_ERROR, line, col, "%s: %s", ref ? ref : "${", why);
			failed = true;
		} else if (exact) {
			free(ref), free(name), free(b.s);
			*changed = true;
			return v;
		} else if (!value_text(&b, v)) {
			ref_pos(p, ev, ref, occ, &line, &col);
			diag(p, MG_SEV_ERROR, line, col,
			     "%s is a list: it can only be a whole unquoted value (key: %s)", ref,
			     ref);
			failed = true;
		}
		json_decref(v);
		free(ref), free(name);
		i += rlen;
	}
	if (failed || b.oom) {
		free(b.s);
		return NULL;
	}
	*text = b.s;
	return NULL;
}

/* --- the tree ------------------------------------------------------------------------------ */

static bool next(parse *p, yaml_event_t *ev)
{
	if (yaml_parser_parse(&p->parser, ev))
		return true;
	yaml_mark_t m = p->parser.problem_mark;
	diag(p, MG_SEV_ERROR, (int)m.line + 1, (int)m.column + 1, "YAML: %s%s%s",
	     p->parser.problem ? p->parser.problem : "syntax error", p->parser.context ? " " : "",
	     p->parser.context ? p->parser.context : "");
	p->fatal = true;
	return false;
}

static size_t count_nodes(json_t *v)
{
	size_t n = 1;
	if (json_is_array(v)) {
		for (size_t i = 0; i < json_array_size(v); i++)
			n += count_nodes(json_array_get(v, i));
	} else if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			n += count_nodes(x);
		}
	}
	return n;
}

static bool grow(parse *p, const yaml_event_t *ev, size_t n)
{
	p->nodes += n;
	if (p->nodes <= MAX_NODES)
		return true;
	ERR_AT(p, ev->start_mark, "the template expands to more than %d nodes (aliases?)",
	       MAX_NODES);
	p->fatal = true;
	return false;
}

static void remember(parse *p, const yaml_char_t *name, json_t *node)
{
	if (!name || !node)
		return;
	anchor *a = realloc(p->anchors, (p->nanchors + 1) * sizeof(*a));
	if (!a)
		return;
	p->anchors = a;
	/* a later anchor of the same name wins, as in YAML */
	p->anchors[p->nanchors++] = (anchor){strdup((const char *)name), json_incref(node)};
}

/* Checks an explicit tag; false (reported) for one that is not allowed. */
static bool tag_ok(parse *p, const yaml_event_t *ev, const yaml_char_t *tag, const char *const *ok)
{
	if (!tag || !strcmp((const char *)tag, "!"))
		return true;
	const char *t = (const char *)tag;
	if (!strncmp(t, CORE_TAG, strlen(CORE_TAG)) && is_one_of(t + strlen(CORE_TAG), ok))
		return true;
	ERR_AT(p, ev->start_mark,
	       "tag %s is not supported (templates are plain Kubernetes YAML: only the core "
	       "tags !!str, !!int, !!float, !!bool, !!null, !!map and !!seq)",
	       t);
	return false;
}

static json_t *scalar(parse *p, const yaml_event_t *ev)
{
	static const char *const ok[] = {"str", "int", "float", "bool", "null", NULL};
	const char *tag = (const char *)ev->data.scalar.tag;
	if (!tag_ok(p, ev, ev->data.scalar.tag, ok))
		return NULL;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	const char *core = tag && strcmp(tag, "!") ? tag + strlen(CORE_TAG) : NULL;
	char *text;
	bool changed;
	json_t *v = substitute(p, ev, plain && !core, &text, &changed);
	if (v)
		return v;
	if (!text)
		return NULL;
	if (core && strcmp(core, "str")) {
		resolved t = core_type(text);
		bool match = (!strcmp(core, "null") && t == R_NULL) ||
		             (!strcmp(core, "bool") && t == R_BOOL) ||
		             (!strcmp(core, "int") && t == R_INT) ||
		             (!strcmp(core, "float") && (t == R_FLOAT || t == R_INT));
		if (!match) {
			ERR_AT(p, ev->start_mark, "\"%s\" is not a valid !!%s", text, core);
			free(text);
			return NULL;
		}
		v = !strcmp(core, "float") ? json_real(strtod(text, NULL)) : core_value(text, t);
		free(text);
		return v;
	}
	if (!plain || tag || changed) {
		v = json_string(text);
		if (!v)
			v = json_stringn(text,
			                 strlen(text)); /* not UTF-8 cannot come from libyaml */
		free(text);
		return v;
	}
	resolved t = core_type(text);
	if (t == R_SPECIAL) {
		ERR_AT(p, ev->start_mark,
		       "%s: infinity and NaN cannot be sent to the Kubernetes API (JSON); quote it "
		       "for a string",
		       text);
		free(text);
		return NULL;
	}
	if (t == R_STR && is_one_of(text, yaml11_bools))
		WARN_AT(p, ev->start_mark,
		        "%s is the string \"%s\" here (YAML 1.2) but a boolean to kubectl and "
		        "Kubernetes (YAML 1.1): quote it, or write true or false",
		        text, text);
	if (t == R_INT && text[0] == '0' && text[1] && isdigit((unsigned char)text[1]))
		WARN_AT(p, ev->start_mark,
		        "%s is the decimal %s here (YAML 1.2) but octal to kubectl and Kubernetes "
		        "(YAML 1.1): write 0o%s for octal, or drop the leading zero",
		        text, text + strspn(text, "0"), text + 1);
	v = core_value(text, t);
	free(text);
	return v;
}

static json_t *node(parse *p, yaml_event_t *ev, int depth);

static json_t *sequence(parse *p, yaml_event_t *start, int depth)
{
	json_t *a = json_array();
	for (;;) {
		yaml_event_t ev;
		if (!next(p, &ev)) {
			json_decref(a);
			return NULL;
		}
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		json_t *item = node(p, &ev, depth + 1);
		if (p->fatal) {
			json_decref(item);
			json_decref(a);
			return NULL;
		}
		json_array_append_new(a, item ? item : json_null());
	}
	(void)start;
	return a;
}

static json_t *mapping(parse *p, yaml_event_t *start, int depth)
{
	json_t *m = json_object();
	(void)start;
	for (;;) {
		yaml_event_t kev;
		if (!next(p, &kev)) {
			json_decref(m);
			return NULL;
		}
		if (kev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&kev);
			break;
		}
		char *key = NULL;
		yaml_mark_t km = kev.start_mark;
		if (kev.type == YAML_SCALAR_EVENT) {
			/* keys are names the API defines: never substituted */
			key = strndup((const char *)kev.data.scalar.value, kev.data.scalar.length);
			if (kev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && key &&
			    !strcmp(key, "<<")) {
				ERR_AT(p, km,
				       "merge keys (<<) are not supported: write the keys out");
				free(key);
				key = NULL;
			}
			yaml_event_delete(&kev);
		} else {
			ERR_AT(p, km, "a key must be a plain string, not a %s",
			       kev.type == YAML_ALIAS_EVENT ? "alias" : "collection");
			json_decref(node(p, &kev, depth + 1)); /* skip it */
		}
		if (p->fatal) {
			free(key);
			json_decref(m);
			return NULL;
		}
		yaml_event_t vev;
		if (!next(p, &vev)) {
			free(key);
			json_decref(m);
			return NULL;
		}
		json_t *v = node(p, &vev, depth + 1);
		if (p->fatal) {
			free(key);
			json_decref(v);
			json_decref(m);
			return NULL;
		}
		if (key && json_object_get(m, key)) {
			ERR_AT(p, km, "duplicate key %s (Kubernetes refuses it)", key);
			json_decref(v);
		} else if (key) {
			json_object_set_new(m, key, v ? v : json_null());
		} else {
			json_decref(v);
		}
		free(key);
	}
	return m;
}

/* The node that starts with ev (which it deletes); NULL after a reported error. */
static json_t *node(parse *p, yaml_event_t *ev, int depth)
{
	json_t *v = NULL;
	if (depth > MAX_DEPTH) {
		ERR_AT(p, ev->start_mark, "nested more than %d levels deep", MAX_DEPTH);
		p->fatal = true;
		yaml_event_delete(ev);
		return NULL;
	}
	if (!grow(p, ev, 1)) {
		yaml_event_delete(ev);
		return NULL;
	}
	const yaml_char_t *anchor_name = NULL;
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		v = scalar(p, ev);
		anchor_name = ev->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT: {
		static const char *const ok[] = {"seq", NULL};
		tag_ok(p, ev, ev->data.sequence_start.tag, ok);
		v = sequence(p, ev, depth);
		anchor_name = ev->data.sequence_start.anchor;
		break;
	}
	case YAML_MAPPING_START_EVENT: {
		static const char *const ok[] = {"map", NULL};
		tag_ok(p, ev, ev->data.mapping_start.tag, ok);
		v = mapping(p, ev, depth);
		anchor_name = ev->data.mapping_start.anchor;
		break;
	}
	case YAML_ALIAS_EVENT: {
		const char *name = (const char *)ev->data.alias.anchor;
		for (size_t i = p->nanchors; i-- > 0;)
			if (!strcmp(p->anchors[i].name, name)) {
				v = json_deep_copy(p->anchors[i].node);
				break;
			}
		if (!v) {
			ERR_AT(p, ev->start_mark, "alias *%s: no anchor &%s before it", name, name);
			break;
		}
		if (!grow(p, ev, count_nodes(v))) {
			json_decref(v);
			v = NULL;
		}
		break;
	}
	default:
		ERR_AT(p, ev->start_mark, "unexpected YAML event");
		p->fatal = true;
		break;
	}
	if (v && !p->fatal)
		remember(p, anchor_name, v);
	yaml_event_delete(ev);
	return v;
}

static const char *str_field(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);
	return json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
}

static int add_doc(mg_template_output *out, json_t *obj, const char *file, int line)
{
	mg_template_doc *d = realloc(out->docs, (out->ndocs + 1) * sizeof(*d));
	if (!d)
		return MG_ENOMEM;
	out->docs = d;
	d[out->ndocs] = (mg_template_doc){.object = obj, .file = strdup(file), .line = line};
	if (!d[out->ndocs].file)
		return MG_ENOMEM;
	out->ndocs++;
	return 0;
}

/* One document: its root, checked as a Kubernetes object. */
static void document(parse *p, mg_template_output *out, mg_template_output *mine)
{
	yaml_event_t ev;
	if (!next(p, &ev))
		return;
	yaml_mark_t at = ev.start_mark;
	bool empty = ev.type == YAML_SCALAR_EVENT && ev.data.scalar.length == 0 &&
	             ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	json_t *root = node(p, &ev, 0);
	if (p->fatal) {
		json_decref(root);
		return;
	}
	yaml_event_t end;
	if (!next(p, &end)) {
		json_decref(root);
		return;
	}
	yaml_event_delete(&end);
	if (empty || json_is_null(root)) {
		json_decref(root);
		return;
	}
	if (!root) /* reported */
		return;
	if (!json_is_object(root)) {
		ERR_AT(p, at, "a document must be a Kubernetes object (a mapping), not a %s",
		       json_is_array(root) ? "list" : "scalar");
		json_decref(root);
		return;
	}
	const char *missing = !str_field(root, "apiVersion") ? "apiVersion"
	                      : !str_field(root, "kind")     ? "kind"
	                      : !str_field(json_object_get(root, "metadata"), "name")
	                          ? "metadata.name"
	                          : NULL;
	if (missing) {
		ERR_AT(p, at, "the object has no %s (a non-empty string)", missing);
		json_decref(root);
		return;
	}
	(void)out;
	if (add_doc(mine, root, p->file, (int)at.line + 1)) {
		json_decref(root);
		p->errors++;
		mg_error_oom(p->err);
	}
}

static int append_docs(mg_template_output *out, mg_template_output *mine)
{
	mg_template_doc *d = realloc(out->docs, (out->ndocs + mine->ndocs + 1) * sizeof(*d));
	if (!d)
		return MG_ENOMEM;
	out->docs = d;
	/* a template of no documents (empty, comments only) has docs NULL: memcpy must not see it
	 */
	if (mine->ndocs)
		memcpy(d + out->ndocs, mine->docs, mine->ndocs * sizeof(*d));
	out->ndocs += mine->ndocs;
	free(mine->docs);
	mine->docs = NULL;
	mine->ndocs = 0;
	return 0;
}

static int render_buffer(mg_template_output *out, const char *buf, size_t len,
                         const char *display_path, const mg_template_vars *vars, mg_error *err,
                         int *errors)
{
	parse p = {.buf = buf, .len = len, .file = display_path, .vars = vars, .err = err};
	mg_template_output mine = MG_TEMPLATE_OUTPUT_INIT;
	line_table(&p);
	if (!p.lines || !yaml_parser_initialize(&p.parser)) {
		free(p.lines);
		return mg_error_oom(err);
	}
	yaml_parser_set_input_string(&p.parser, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&p.parser, YAML_UTF8_ENCODING);
	yaml_event_t ev;
	while (!p.fatal && next(&p, &ev)) {
		yaml_event_type_t t = ev.type;
		yaml_event_delete(&ev);
		if (t == YAML_STREAM_END_EVENT)
			break;
		if (t == YAML_DOCUMENT_START_EVENT)
			document(&p, out, &mine);
	}
	yaml_parser_delete(&p.parser);
	for (size_t i = 0; i < p.nanchors; i++) {
		free((char *)p.anchors[i].name);
		json_decref(p.anchors[i].node);
	}
	free(p.anchors);
	free(p.lines);
	*errors += p.errors;
	int rc = 0;
	if (!p.errors)
		rc = append_docs(out, &mine);
	mg_template_output_clear(&mine);
	if (rc)
		return mg_error_set(err, rc, "out of memory");
	return 0;
}

static int finish(mg_error *err, int errors, const char *what)
{
	if (err->code)
		return err->code;
	if (!errors)
		return 0;
	return mg_error_set(err, MG_EINVALID, "%d error%s in %s", errors, errors == 1 ? "" : "s",
	                    what);
}

int mg_template_render_buffer(mg_template_output *out, const char *buf, size_t len,
                              const char *display_path, const mg_template_vars *vars, mg_error *err)
{
	int errors = 0;
	int rc = render_buffer(out, buf, len, display_path, vars, err, &errors);
	return rc ? rc : finish(err, errors, display_path);
}

static int read_render(mg_template_output *out, const char *path, const mg_template_vars *vars,
                       mg_error *err, int *errors)
{
	char *buf;
	size_t len;
	mg_error e = MG_ERROR_INIT;
	if (mg_fs_read_file(&buf, &len, path, MG_INPUT_MAX_BYTES, "the template", &e)) {
		mg_error_diag(err, MG_SEV_ERROR, path, 0, 0, NULL, "%s", e.message);
		mg_error_clear(&e);
		(*errors)++;
		return 0;
	}
	int rc = render_buffer(out, buf, len, path, vars, err, errors);
	free(buf);
	return rc;
}

int mg_template_render_file(mg_template_output *out, const char *path, const mg_template_vars *vars,
                            mg_error *err)
{
	int errors = 0;
	int rc = read_render(out, path, vars, err, &errors);
	return rc ? rc : finish(err, errors, path);
}

int mg_template_render_dir(mg_template_output *out, const char *dir, const mg_template_vars *vars,
                           mg_error *err)
{
	char **names = NULL;
	size_t n = 0;
	int rc = mg_template_list_dir(&names, &n, dir, err);
	if (!rc && n == 0)
		rc = mg_error_set(err, MG_EINVALID,
		                  "templates directory %s has no *.yaml or *.yml file", dir);
	int errors = 0;
	for (size_t i = 0; !rc && i < n; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s%s%s", dir,
		         dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", names[i]);
		rc = read_render(out, path, vars, err, &errors);
	}
	mg_template_list_free(names, n);
	return rc ? rc : finish(err, errors, "the templates");
}

void mg_template_output_clear(mg_template_output *out)
{
	if (!out)
		return;
	for (size_t i = 0; i < out->ndocs; i++) {
		json_decref(out->docs[i].object);
		free(out->docs[i].file);
	}
	free(out->docs);
	out->docs = NULL;
	out->ndocs = 0;
}

/* Whether a string may go out unquoted and be read back as the same string by any reader. */
bool mg_kube_plain_safe(const char *s)
{
	if (!*s || core_type(s) != R_STR || is_one_of(s, yaml11_bools))
		return false;
	/* numbers in any YAML version's spelling (1_000, 1:30, .5, -1), dates */
	if (strchr("0123456789+-.", s[0]))
		return false;
	/* go-yaml (1.1) nulls and booleans also in other cases */
	static const char *const more[] = {"Null", "NULL",  "~",     "True",
	                                   "TRUE", "False", "FALSE", NULL};
	return !is_one_of(s, more) && !strchr(s, '\n');
}

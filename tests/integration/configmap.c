/*
 * migrate configmap on the fixture trees (tests/fixtures/nginx/) as an
 * operator runs it: exit codes, what reaches stdout (only an appliable
 * manifest) and stderr, the YAML and JSON read back and compared byte for
 * byte with the files, the real nginx -t verdict, --fix-logs, --allow-errors,
 * --hash-suffix, --json, plans. The fixtures themselves pass the real nginx -t
 * as their VMs saw them (a private mount namespace with the VM network's
 * hosts file and scratch /run and /var/log/nginx).
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <yaml.h>

#include "../testutil.h"

static char tmpdir[256];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "cmi");
	unsetenv("NO_COLOR");
}

static void teardown(void)
{
	tu_tmpdir_remove(tmpdir);
}

TestSuite(configmap, .init = setup, .fini = teardown, .timeout = 60);

#define PHP   "tests/fixtures/nginx/php-app/nginx.conf"
#define MULTI "tests/fixtures/nginx/multi-site/nginx.conf"

static void sh(const char *script)
{
	char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
	tu_output r = tu_capture(argv);
	cr_assert_eq(r.status, 0, "`%s` failed: %s%s", script, r.out, r.err);
	tu_output_free(&r);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *s = malloc((size_t)n + 1);
	cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
	s[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return s;
}

/* --- YAML read back with libyaml ---------------------------------------------------------- */

typedef struct {
	char *name, *namespace_, *checksum, *verdict;
	bool immutable;
	char *keys[64];
	char *values[64];
	size_t lens[64];
	size_t n;
} cm_doc;

static char *scalar(yaml_node_t *n)
{
	cr_assert_eq(n->type, YAML_SCALAR_NODE);
	char *s = malloc(n->data.scalar.length + 1);
	memcpy(s, n->data.scalar.value, n->data.scalar.length);
	s[n->data.scalar.length] = '\0';
	return s;
}

static yaml_node_t *get(yaml_document_t *d, yaml_node_t *map, const char *key)
{
	if (!map || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = yaml_document_get_node(d, p->key);
		if (k->type == YAML_SCALAR_NODE && !strcmp((char *)k->data.scalar.value, key))
			return yaml_document_get_node(d, p->value);
	}
	return NULL;
}

/* Every document of stdout; *n of them. */
static cm_doc *load_yaml(const char *text, size_t *n)
{
	yaml_parser_t p;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
	cm_doc *docs = calloc(8, sizeof(*docs));
	*n = 0;
	for (;;) {
		yaml_document_t d;
		cr_assert(yaml_parser_load(&p, &d), "stdout is not YAML: %s (line %zu)", p.problem,
		          p.problem_mark.line + 1);
		yaml_node_t *root = yaml_document_get_root_node(&d);
		if (!root) {
			yaml_document_delete(&d);
			break;
		}
		cr_assert_lt(*n, 8);
		cm_doc *c = &docs[(*n)++];
		cr_assert_str_eq((char *)get(&d, root, "kind")->data.scalar.value, "ConfigMap");
		cr_assert_str_eq((char *)get(&d, root, "apiVersion")->data.scalar.value, "v1");
		yaml_node_t *meta = get(&d, root, "metadata");
		c->name = scalar(get(&d, meta, "name"));
		yaml_node_t *ns = get(&d, meta, "namespace");
		c->namespace_ = ns ? scalar(ns) : NULL;
		yaml_node_t *ann = get(&d, meta, "annotations");
		c->checksum = scalar(get(&d, ann, "migrate/checksum"));
		yaml_node_t *v = get(&d, ann, "migrate/nginx-test");
		c->verdict = v ? scalar(v) : NULL;
		yaml_node_t *im = get(&d, root, "immutable");
		c->immutable = im && !strcmp((char *)im->data.scalar.value, "true");
		yaml_node_t *data = get(&d, root, "data");
		for (yaml_node_pair_t *e = data->data.mapping.pairs.start;
		     e < data->data.mapping.pairs.top; e++) {
			cr_assert_lt(c->n, 64);
			yaml_node_t *val = yaml_document_get_node(&d, e->value);
			c->keys[c->n] = scalar(yaml_document_get_node(&d, e->key));
			c->values[c->n] = scalar(val);
			c->lens[c->n] = val->data.scalar.length;
			c->n++;
		}
		yaml_document_delete(&d);
	}
	yaml_parser_delete(&p);
	return docs;
}

static void docs_free(cm_doc *docs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(docs[i].name);
		free(docs[i].namespace_);
		free(docs[i].checksum);
		free(docs[i].verdict);
		for (size_t k = 0; k < docs[i].n; k++) {
			free(docs[i].keys[k]);
			free(docs[i].values[k]);
		}
	}
	free(docs);
}

/* The keys joined with ',' in the order of the document (the manifest sorts them). */
static void key_list(const cm_doc *c, char *out, size_t size)
{
	size_t o = 0;
	out[0] = '\0';
	for (size_t i = 0; i < c->n && o < size; i++)
		o += (size_t)snprintf(out + o, size - o, "%s%s", i ? "," : "", c->keys[i]);
}

/* Each key's value is the file at its path under dir, byte for byte. */
static void same_as_files(const cm_doc *c, const char *dir, const char *const (*map)[2],
                          size_t nmap)
{
	cr_assert_eq(c->n, nmap);
	for (size_t i = 0; i < nmap; i++) {
		size_t k = 0;
		while (k < c->n && strcmp(c->keys[k], map[i][0]))
			k++;
		cr_assert_lt(k, c->n, "key %s missing", map[i][0]);
		char path[512];
		snprintf(path, sizeof(path), "%s/%s", dir, map[i][1]);
		size_t len;
		char *want = slurp(path, &len);
		cr_assert_eq(c->lens[k], len, "%s: %zu bytes, the file has %zu", map[i][0],
		             c->lens[k], len);
		cr_assert(!memcmp(c->values[k], want, len), "%s differs from %s", map[i][0], path);
		free(want);
	}
}

static const char *const php_files[][2] = {
    {"conf.d_00-maps.conf", "conf.d/00-maps.conf"},
    {"conf.d_10-shop.conf", "conf.d/10-shop.conf"},
    {"conf.d_20-status.conf", "conf.d/20-status.conf"},
    {"fastcgi_params", "fastcgi_params"},
    {"maps_legacy-redirects.map", "maps/legacy-redirects.map"},
    {"mime.types", "mime.types"},
    {"nginx.conf", "nginx.conf"},
    {"snippets_php-fpm.conf", "snippets/php-fpm.conf"},
    {"snippets_static-cache.conf", "snippets/static-cache.conf"},
};

static const char *const multi_files[][2] = {
    {"mime.types", "mime.types"},
    {"nginx.conf", "nginx.conf"},
    {"sites-enabled_00-default.conf", "sites-enabled/00-default.conf"},
    {"sites-enabled_admin.example.com.conf", "sites-enabled/admin.example.com.conf"},
    {"sites-enabled_api.example.com.conf", "sites-enabled/api.example.com.conf"},
    {"sites-enabled_legacy.example.com.conf", "sites-enabled/legacy.example.com.conf"},
    {"sites-enabled_static.example.com.conf", "sites-enabled/static.example.com.conf"},
    {"snippets_proxy-headers.conf", "snippets/proxy-headers.conf"},
    {"snippets_tls.conf", "snippets/tls.conf"},
    {"uwsgi_params", "uwsgi_params"},
};

static bool matches(const char *s, const char *re)
{
	regex_t r;
	cr_assert_eq(regcomp(&r, re, REG_EXTENDED | REG_NOSUB | REG_NEWLINE), 0);
	bool ok = regexec(&r, s, 0, NULL, 0) == 0;
	regfree(&r);
	return ok;
}

/* --- the fixtures as their VMs ran them ----------------------------------------------------- */

/*
 * A copy of the fixture with throwaway certificates at the paths it names,
 * checked by nginx -t in a private mount namespace: the VM network's names
 * in /etc/hosts, and scratch directories over /run and /var/log/nginx so the
 * pid file and logs nginx -t opens are not this machine's.
 */
static void raw_nginx_t(const char *fixture, const char *certs)
{
	char script[4096];
	snprintf(
	    script, sizeof(script),
	    "set -e; d=%s/raw; rm -rf $d; mkdir -p $d/run $d/log; cp -r %s $d/conf;"
	    "mkdir -p $d/conf/ssl;"
	    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
	    "-subj /CN=fixture -keyout $d/k.pem -out $d/c.pem 2>/dev/null;"
	    "for f in %s; do cat $d/k.pem $d/c.pem > $d/conf/ssl/$f; done;"
	    "exec unshare --mount sh -c \"mount --bind $d/run /run && mount --bind $d/log "
	    "/var/log/nginx && mount --bind $PWD/tests/fixtures/nginx/vm-hosts /etc/hosts && "
	    "/usr/sbin/nginx -t -p $d/conf/ -c nginx.conf\"",
	    tmpdir, fixture, certs);
	char *argv[] = {"/bin/sh", "-c", script, NULL};
	tu_output r = tu_capture(argv);
	cr_assert_eq(r.status, 0, "nginx -t on %s failed: %s%s", fixture, r.out, r.err);
	cr_assert(strstr(r.err, "test is successful"), "%s", r.err);
	tu_output_free(&r);
}

Test(configmap, fixtures_pass_nginx_t_as_on_their_vms)
{
	raw_nginx_t("tests/fixtures/nginx/php-app", "shop.example.com.crt shop.example.com.key");
	raw_nginx_t("tests/fixtures/nginx/multi-site",
	            "api.example.com.crt api.example.com.key admin.example.com.crt "
	            "admin.example.com.key ca-chain.pem");
	char gen[512];
	snprintf(gen, sizeof(gen),
	         "/usr/bin/python3 tests/bench/gen-nginx-tree.py %s/gen --locations 300 "
	         "--upstreams 30 --files 4",
	         tmpdir);
	sh(gen);
	snprintf(gen, sizeof(gen), "%s/gen", tmpdir);
	raw_nginx_t(gen, "none");
}

/* --- the command on the fixtures ---------------------------------------------------------- */

Test(configmap, lint_errors_withhold_the_manifest)
{
	tu_output r = tu_migrate("configmap", PHP, "--name", "shop-nginx", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_str_eq(r.out, "", "nothing for kubectl apply when errors remain");
	cr_assert(strstr(r.err,
	                 "conf.d/10-shop.conf:23: error: ssl_certificate "
	                 "ssl/shop.example.com.crt: TLS material belongs in a Secret, not in a "
	                 "ConfigMap"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "conf.d/10-shop.conf:24: error: ssl_certificate_key "
	                        "ssl/shop.example.com.key: a private key belongs in a Secret"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "snippets/php-fpm.conf:10: warning: fastcgi_pass "
	                        "unix:/run/php/php8.2-fpm.sock: a unix socket"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "nginx.conf:4: warning: worker_processes 8: pinned to the VM's "
	                        "cores"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "    fix: worker_processes auto;"), "%s", r.err);
	cr_assert(matches(r.err, "^nginx -t \\(nginx/[0-9.]+\\), on the files as the pod sees them "
	                         "under /etc/nginx: passed$"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "shop-nginx: 9 files, "), "%s", r.err);
	cr_assert(strstr(r.err, "; 2 errors, 7 warnings, 5 info\n"), "%s", r.err);
	cr_assert(strstr(r.err, "no manifest printed: fix the errors above (--allow-errors prints "
	                        "it anyway)"),
	          "%s", r.err);
	/* the volumes still reach the operator */
	cr_assert(strstr(r.err, "      - {name: sockets-1, mountPath: /run/php}"), "%s", r.err);
	tu_output_free(&r);
}

Test(configmap, php_app_round_trip)
{
	tu_output r = tu_migrate("configmap", PHP, "--name", "shop-nginx", "--namespace", "shop",
	                         "--allow-errors", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	size_t n;
	cm_doc *d = load_yaml(r.out, &n);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(d[0].name, "shop-nginx");
	cr_assert_str_eq(d[0].namespace_, "shop");
	cr_assert_not(d[0].immutable);
	cr_assert(matches(d[0].checksum, "^[0-9a-f]{64}$"), "%s", d[0].checksum);
	cr_assert(matches(d[0].verdict, "^passed \\(nginx/[0-9.]+\\)$"), "%s", d[0].verdict);
	char keys[1024];
	key_list(&d[0], keys, sizeof(keys));
	cr_assert_str_eq(keys, "conf.d_00-maps.conf,conf.d_10-shop.conf,conf.d_20-status.conf,"
	                       "fastcgi_params,maps_legacy-redirects.map,mime.types,nginx.conf,"
	                       "snippets_php-fpm.conf,snippets_static-cache.conf");
	same_as_files(&d[0], "tests/fixtures/nginx/php-app", php_files, 9);
	/* the header: checksum, verdict, the projection with the Secret beside it */
	char line[200];
	snprintf(line, sizeof(line), "# checksum (sha256 of the content): %s\n", d[0].checksum);
	cr_assert(strstr(r.out, line), "%s", r.out);
	cr_assert(matches(r.out, "^# nginx -t \\(nginx/[0-9.]+\\) on the files as the pod sees "
	                         "them: passed$"),
	          "%s", r.out);
	cr_assert(strstr(r.out, "#                 - {key: conf.d_10-shop.conf, path: "
	                        "conf.d/10-shop.conf}\n"),
	          "%s", r.out);
	cr_assert(strstr(r.out, "#                 - {key: ssl_shop.example.com.key, path: "
	                        "ssl/shop.example.com.key}\n"),
	          "%s", r.out);
	cr_assert(strstr(r.out, "#   kubectl create secret generic shop-nginx-secret --namespace "
	                        "shop \\\n"),
	          "%s", r.out);
	docs_free(d, n);

	/* -o yaml is the same output */
	tu_output y = tu_migrate("configmap", PHP, "--name", "shop-nginx", "--namespace", "shop",
	                         "--allow-errors", "-o", "yaml", NULL);
	cr_assert_eq(y.status, 0, "%s", y.err);
	cr_assert_str_eq(y.out, r.out);
	tu_output_free(&y);
	tu_output_free(&r);
}

Test(configmap, secret_named_passes_without_allow_errors)
{
	tu_output r = tu_migrate("configmap", PHP, "--name", "shop-nginx", "--secret", "shop-tls",
	                         "--fix-logs", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	size_t n;
	cm_doc *d = load_yaml(r.out, &n);
	cr_assert_eq(n, 1);
	cr_assert_eq(d[0].n, 9);
	docs_free(d, n);
	cr_assert(strstr(r.err,
	                 "conf.d/10-shop.conf:24: info: ssl_certificate_key "
	                 "ssl/shop.example.com.key: from Secret shop-tls, mounted at "
	                 "/etc/nginx/ssl/shop.example.com.key (not in the ConfigMap) [secret]"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "; 0 errors, 3 warnings, 11 info\n"), "%s", r.err);
	cr_assert(strstr(r.out, "#               name: shop-tls\n"), "%s", r.out);
	tu_output_free(&r);
}

Test(configmap, multi_site_secrets_never_in_the_output)
{
	tu_output r = tu_migrate("configmap", MULTI, "--name", "edge", "--allow-errors", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	size_t n;
	cm_doc *d = load_yaml(r.out, &n);
	cr_assert_eq(n, 1);
	cr_assert_null(d[0].namespace_);
	same_as_files(&d[0], "tests/fixtures/nginx/multi-site", multi_files, 10);
	cr_assert_null(strstr(r.out, "fixture-not-a-secret"), "htpasswd content leaked");
	cr_assert_null(strstr(r.err, "fixture-not-a-secret"), "htpasswd content leaked");
	cr_assert(matches(d[0].verdict, "^passed"), "%s", d[0].verdict);
	cr_assert(strstr(r.err, "sites-enabled/admin.example.com.conf:13: error: "
	                        "auth_basic_user_file htpasswd/admin: password hashes belong in a "
	                        "Secret"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "nginx.conf:36: warning: upstream server api-vm-03.internal:8080: "
	                        "the host name api-vm-03.internal may not resolve"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "note: legacy-cms.internal does not resolve here: checked as "
	                        "127.0.0.1 (in the cluster it must resolve)"),
	          "%s", r.err);
	cr_assert(
	    strstr(r.out, "#                 - {key: htpasswd_admin, path: htpasswd/admin}\n"),
	    "%s", r.out);
	docs_free(d, n);
	tu_output_free(&r);
}

Test(configmap, fix_logs_and_json)
{
	tu_output r = tu_migrate("configmap", PHP, "--name", "shop-nginx", "--fix-logs",
	                         "--allow-errors", "-o", "json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_error_t e;
	json_t *doc = json_loads(r.out, 0, &e);
	cr_assert_not_null(doc, "%s: %s", e.text, r.out);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "apiVersion")), "v1");
	cr_assert_str_eq(json_string_value(json_object_get(doc, "kind")), "ConfigMap");
	json_t *meta = json_object_get(doc, "metadata");
	cr_assert_str_eq(json_string_value(json_object_get(meta, "name")), "shop-nginx");
	cr_assert_null(json_object_get(meta, "namespace"));
	json_t *ann = json_object_get(meta, "annotations");
	cr_assert(
	    matches(json_string_value(json_object_get(ann, "migrate/nginx-test")), "^passed"));
	json_t *data = json_object_get(doc, "data");
	cr_assert_eq(json_object_size(data), 9);
	const char *main = json_string_value(json_object_get(data, "nginx.conf"));
	cr_assert(strstr(main, "\nerror_log /dev/stderr warn;\n"), "%s", main);
	cr_assert(strstr(main, "\n    access_log /dev/stdout shop;\n"), "%s", main);
	const char *shop = json_string_value(json_object_get(data, "conf.d_10-shop.conf"));
	cr_assert(strstr(shop, "\n    access_log /dev/stdout shop;\n    error_log /dev/stderr;\n"),
	          "%s", shop);
	const char *key;
	json_t *v;
	json_object_foreach(data, key, v)
	{
		cr_assert_null(strstr(json_string_value(v), "/var/log/nginx"),
		               "%s still logs to a file", key);
	}
	cr_assert(strstr(r.err, "nginx.conf:8: info: error_log /var/log/nginx/error.log rewritten "
	                        "to /dev/stderr (--fix-logs) [log-file]"),
	          "%s", r.err);
	/* -o json puts the volumes on stderr */
	cr_assert(strstr(r.err, "          - secret:\n"), "%s", r.err);
	json_decref(doc);
	tu_output_free(&r);

	/* the same content, the same checksum, whatever the format */
	tu_output a = tu_migrate("configmap", PHP, "--name", "x", "--fix-logs", "--allow-errors",
	                         "--no-verify", "-o", "json", NULL);
	tu_output b = tu_migrate("configmap", PHP, "--name", "x", "--fix-logs", "--allow-errors",
	                         "--no-verify", NULL);
	json_t *ja = json_loads(a.out, 0, &e);
	size_t n;
	cm_doc *d = load_yaml(b.out, &n);
	cr_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(json_object_get(ja, "metadata"), "annotations"),
	                     "migrate/checksum")),
	                 d[0].checksum);
	docs_free(d, n);
	json_decref(ja);
	tu_output_free(&a);
	tu_output_free(&b);
}

Test(configmap, json_report_when_it_fails)
{
	tu_output r = tu_migrate("configmap", PHP, "--name", "shop-nginx", "-o", "json", NULL);
	cr_assert_eq(r.status, 1);
	json_error_t e;
	json_t *doc = json_loads(r.out, 0, &e);
	cr_assert_not_null(doc, "%s: %s", e.text, r.out);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "command")), "configmap");
	cr_assert(json_is_false(json_object_get(doc, "ok")));
	cr_assert_eq(json_integer_value(json_object_get(doc, "exit_code")), 1);
	cr_assert_null(json_object_get(doc, "kind"), "not something kubectl would apply");
	json_t *cm = json_array_get(json_object_get(doc, "configmaps"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(cm, "name")), "shop-nginx");
	json_t *f = json_object_get(cm, "findings");
	size_t secrets = 0, i;
	json_t *x;
	json_array_foreach(f, i, x)
	{
		if (!strcmp(json_string_value(json_object_get(x, "rule")), "secret")) {
			secrets++;
			cr_assert_str_eq(json_string_value(json_object_get(x, "severity")),
			                 "error");
			cr_assert_str_eq(json_string_value(json_object_get(x, "file")),
			                 "conf.d/10-shop.conf");
		}
	}
	cr_assert_eq(secrets, 2);
	json_t *v = json_object_get(cm, "verify");
	cr_assert(json_is_true(json_object_get(v, "ran")));
	cr_assert(json_is_true(json_object_get(v, "ok")));
	cr_assert_str_eq(json_string_value(json_object_get(v, "summary")), "passed");
	json_decref(doc);
	tu_output_free(&r);
}

Test(configmap, nginx_t_failure)
{
	tu_output r = tu_migrate("configmap", "tests/fixtures/nginx/broken-directive/nginx.conf",
	                         "--name", "b", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	cr_assert(matches(r.err, "^nginx -t \\(nginx/[0-9.]+\\), on the files as the pod sees them "
	                         "under /etc/nginx: failed$"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "unknown directive \"proxy_passs\" in /etc/nginx/nginx.conf:14"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "; 0 errors, 0 warnings, 0 info\n"), "%s", r.err);
	tu_output_free(&r);

	/* --allow-errors shows the manifest with its verdict, and still exits 1 */
	r = tu_migrate("configmap", "tests/fixtures/nginx/broken-directive/nginx.conf", "--name",
	               "b", "--allow-errors", NULL);
	cr_assert_eq(r.status, 1);
	size_t n;
	cm_doc *d = load_yaml(r.out, &n);
	cr_assert(matches(d[0].verdict, "^failed \\(nginx/[0-9.]+\\)$"), "%s", d[0].verdict);
	cr_assert(strstr(r.out, "on the files as the pod sees them: failed: unknown directive "
	                        "\"proxy_passs\" in /etc/nginx/nginx.conf:14\n"),
	          "%s", r.out);
	docs_free(d, n);
	tu_output_free(&r);

	r = tu_migrate("configmap", "tests/fixtures/nginx/broken-directive/nginx.conf", "--name",
	               "b", "-o", "json", NULL);
	cr_assert_eq(r.status, 1);
	json_t *doc = json_loads(r.out, 0, NULL);
	json_t *v =
	    json_object_get(json_array_get(json_object_get(doc, "configmaps"), 0), "verify");
	cr_assert(json_is_false(json_object_get(v, "ok")));
	cr_assert_str_eq(json_string_value(json_object_get(v, "summary")),
	                 "unknown directive \"proxy_passs\" in /etc/nginx/nginx.conf:14");
	json_decref(doc);
	tu_output_free(&r);
}

Test(configmap, parse_error_is_bad_input)
{
	tu_output r = tu_migrate("configmap", "tests/fixtures/nginx/broken-syntax/nginx.conf",
	                         "--name", "b", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert_str_eq(r.out, "");
	cr_assert(
	    strstr(r.err, "error: unexpected end of file, expecting \"}\" in nginx.conf:12\n"),
	    "%s", r.err);
	tu_output_free(&r);

	r = tu_migrate("configmap", "tests/fixtures/nginx/broken-syntax/nginx.conf", "--json",
	               NULL);
	cr_assert_eq(r.status, 2);
	json_t *doc = json_loads(r.out, 0, NULL);
	cr_assert_not_null(doc, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "status")), "failed");
	json_t *err = json_array_get(json_object_get(doc, "errors"), 0);
	cr_assert_eq(json_integer_value(json_object_get(err, "line")), 12);
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate("configmap", "tests/fixtures/nginx/nonexistent.conf", "--name", "b", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	tu_output_free(&r);
}

Test(configmap, hash_suffix)
{
	tu_output r = tu_migrate("configmap", PHP, "--name", "shop-nginx", "--hash-suffix",
	                         "--allow-errors", "--no-verify", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	size_t n;
	cm_doc *d = load_yaml(r.out, &n);
	char want[64];
	snprintf(want, sizeof(want), "shop-nginx-%.10s", d[0].checksum);
	cr_assert_str_eq(d[0].name, want);
	cr_assert(d[0].immutable);
	char items[128];
	snprintf(items, sizeof(items), "#               name: %s\n", want);
	cr_assert(strstr(r.out, items), "the projection names the suffixed ConfigMap: %s", r.out);
	cr_assert(strstr(r.out, "#               name: shop-nginx-secret\n"), "%s", r.out);
	docs_free(d, n);
	tu_output_free(&r);
}

Test(configmap, no_verify_and_no_nginx)
{
	tu_output r =
	    tu_migrate("configmap", PHP, "--name", "s", "--allow-errors", "--no-verify", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "# nginx -t: not run (--no-verify)\n"), "%s", r.out);
	cr_assert_null(strstr(r.out, "migrate/nginx-test"));
	cr_assert(strstr(r.err, "nginx -t: not run (--no-verify)\n"), "%s", r.err);
	tu_output_free(&r);

	r = tu_migrate("configmap", PHP, "--name", "s", "--allow-errors", "--nginx",
	               "/nonexistent/nginx", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	cr_assert(strstr(r.out, "# nginx -t: not run (nginx is not installed at the path given)\n"),
	          "%s", r.out);
	tu_output_free(&r);
}

Test(configmap, tree_json)
{
	tu_output r = tu_migrate("configmap", PHP, "--json", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = json_loads(r.out, 0, NULL);
	cr_assert_not_null(doc, "%s", r.out);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "status")), "ok");
	json_t *config = json_object_get(doc, "config");
	cr_assert_eq(json_array_size(config), 9);
	json_t *first = json_array_get(config, 0);
	cr_assert_str_eq(json_string_value(json_object_get(first, "file")), "nginx.conf");
	json_t *user = json_array_get(json_object_get(first, "parsed"), 0);
	cr_assert_str_eq(json_string_value(json_object_get(user, "directive")), "user");
	cr_assert_eq(json_integer_value(json_object_get(user, "line")), 3);
	json_t *f = json_object_get(doc, "findings");
	cr_assert_eq(json_array_size(f), 14);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(f, 0), "rule")), "user");
	cr_assert_null(strstr(r.out, "\"comment\""));
	json_decref(doc);
	tu_output_free(&r);

	r = tu_migrate("configmap", PHP, "--json", "--comments", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "\"comment\": \" Managed by hand since 2017; see conf.d/ for the "
	                        "sites.\""),
	          "%s", r.out);
	tu_output_free(&r);
}

Test(configmap, plan_entries)
{
	char cwd[512], plan[700], text[2048];
	cr_assert_not_null(getcwd(cwd, sizeof(cwd)));
	snprintf(plan, sizeof(plan), "%s/plan.yaml", tmpdir);
	snprintf(text, sizeof(text),
	         "version: 1\nname: shop\nkubernetes:\n  namespace: shop\n  templates: .\n"
	         "  configmaps:\n"
	         "    - { name: shop-nginx, from_nginx: %s/%s }\n"
	         "    - { name: edge, from_nginx: %s/%s }\n",
	         cwd, PHP, cwd, MULTI);
	FILE *fp = fopen(plan, "w");
	fputs(text, fp);
	fclose(fp);

	tu_output r = tu_migrate("-p", plan, "configmap", "--allow-errors", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	size_t n;
	cm_doc *d = load_yaml(r.out, &n);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(d[0].name, "shop-nginx");
	cr_assert_str_eq(d[0].namespace_, "shop");
	cr_assert_str_eq(d[1].name, "edge");
	cr_assert_str_eq(d[1].namespace_, "shop");
	same_as_files(&d[1], "tests/fixtures/nginx/multi-site", multi_files, 10);
	docs_free(d, n);
	tu_output_free(&r);

	r = tu_migrate("-p", plan, "configmap", "--allow-errors", "--no-verify", "--name", "edge",
	               "--namespace", "edge-ns", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	d = load_yaml(r.out, &n);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(d[0].name, "edge");
	cr_assert_str_eq(d[0].namespace_, "edge-ns");
	docs_free(d, n);
	tu_output_free(&r);

	r = tu_migrate("-p", plan, "configmap", "--allow-errors", "--no-verify", "-o", "json",
	               NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	json_t *doc = json_loads(r.out, 0, NULL);
	cr_assert_str_eq(json_string_value(json_object_get(doc, "kind")), "List");
	json_t *items = json_object_get(doc, "items");
	cr_assert_eq(json_array_size(items), 2);
	cr_assert_str_eq(json_string_value(json_object_get(
	                     json_object_get(json_array_get(items, 1), "metadata"), "name")),
	                 "edge");
	json_decref(doc);
	tu_output_free(&r);

	/* without --allow-errors neither is printed */
	r = tu_migrate("-p", plan, "configmap", "--no-verify", NULL);
	cr_assert_eq(r.status, 1);
	cr_assert_str_eq(r.out, "");
	tu_output_free(&r);

	r = tu_migrate("-p", plan, "configmap", "--name", "nope", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "the plan has no kubernetes.configmaps entry named \"nope\""), "%s",
	          r.err);
	tu_output_free(&r);
}

Test(configmap, usage_errors)
{
	tu_output r = tu_migrate("configmap", PHP, NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--name is required with FILE"), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate("configmap", PHP, "--name", "x", "--comments", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "--comments goes with --json"), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate("configmap", PHP, "--name", "Not_A_Name", NULL);
	cr_assert_eq(r.status, 2);
	cr_assert(strstr(r.err, "is not a DNS subdomain"), "%s", r.err);
	tu_output_free(&r);
	r = tu_migrate("configmap", PHP, "--name", "x", "-o", "xml", NULL);
	cr_assert_eq(r.status, 2);
	tu_output_free(&r);
	r = tu_migrate("configmap", PHP, PHP, "--name", "x", NULL);
	cr_assert_eq(r.status, 2);
	tu_output_free(&r);
	r = tu_migrate("help", "configmap", NULL);
	cr_assert_eq(r.status, 0);
	cr_assert(strstr(r.out, "usage: migrate configmap"), "%s", r.out);
	cr_assert(strstr(r.out, "--hash-suffix"), "%s", r.out);
	tu_output_free(&r);
}

Test(configmap, generated_tree_renders_and_checks)
{
	char gen[512], conf[512];
	snprintf(gen, sizeof(gen),
	         "/usr/bin/python3 tests/bench/gen-nginx-tree.py %s/gen --locations 400 "
	         "--upstreams 40 --files 5",
	         tmpdir);
	sh(gen);
	snprintf(conf, sizeof(conf), "%s/gen/nginx.conf", tmpdir);
	/* pid and error_log are relative: under the read-only mount in the pod */
	tu_output r = tu_migrate("configmap", conf, "--name", "gen", NULL);
	cr_assert_eq(r.status, 1);
	cr_assert(strstr(r.err, "nginx.conf:3: error: pid run/nginx.pid: under the ConfigMap's "
	                        "mount, which is read-only in the pod; nginx will not start [pid]"),
	          "%s", r.err);
	tu_output_free(&r);

	r = tu_migrate("configmap", conf, "--name", "gen", "--fix-logs", "--allow-errors", NULL);
	cr_assert_eq(r.status, 0, "%s", r.err);
	size_t n;
	cm_doc *d = load_yaml(r.out, &n);
	cr_assert_eq(d[0].n, 9);
	cr_assert(matches(d[0].verdict, "^passed"), "%s", d[0].verdict);
	char keys[1024];
	key_list(&d[0], keys, sizeof(keys));
	cr_assert_str_eq(keys, "conf.d_upstreams.conf,mime.types,nginx.conf,proxy_params,"
	                       "sites_site-00.conf,sites_site-01.conf,sites_site-02.conf,"
	                       "sites_site-03.conf,sites_site-04.conf");
	docs_free(d, n);
	tu_output_free(&r);
}

/* --- nothing outside the tree is read ----------------------------------------------------- */

Test(configmap, symlink_out_of_the_tree_is_refused_unread)
{
	char dir[300], conf[512], secret[512], link[512], want[2048];
	snprintf(dir, sizeof(dir), "%s/tree", tmpdir);
	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(secret, sizeof(secret), "%s/private.key", tmpdir);
	snprintf(link, sizeof(link), "%s/conf.d/site.conf", dir);
	tu_write_file_in(dir, "nginx.conf", "events {}\nhttp {\n  include conf.d/*.conf;\n}\n");
	tu_write_file_in(dir, "conf.d/app.conf", "server { listen 8080; }\n");
	tu_write_file_in(tmpdir, "private.key", "topsecret-key-word;\n");
	cr_assert_eq(symlink(secret, link), 0);
	snprintf(want, sizeof(want),
	         "error: open() \"%s\" refused: it resolves to \"%s\", outside the tree \"%s\" in "
	         "nginx.conf:3\n",
	         link, secret, dir);

	tu_output r = tu_migrate("configmap", conf, "--name", "x", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	cr_assert(strstr(r.err, want), "%s", r.err);
	cr_assert_null(strstr(r.err, "topsecret"), "%s", r.err);
	tu_output_free(&r);

	/* the same for --allow-errors, --json and -o json: no ConfigMap, no content */
	const char *variants[][3] = {
	    {"--allow-errors", NULL, NULL}, {"--json", NULL, NULL}, {"-o", "json", NULL}};
	for (size_t i = 0; i < 3; i++) {
		r = tu_migrate("configmap", conf, "--name", "x", variants[i][0], variants[i][1],
		               NULL);
		cr_assert_eq(r.status, 2, "%s: %s", variants[i][0], r.err);
		cr_assert_null(strstr(r.out, "topsecret"), "%s", r.out);
		cr_assert_null(strstr(r.err, "topsecret"), "%s", r.err);
		cr_assert_null(strstr(r.out, "ConfigMap"), "%s", r.out);
		tu_output_free(&r);
	}

	/* a directory of the tree that is a symlink out of it, and a plan's entry */
	cr_assert_eq(unlink(link), 0);
	char sites[512];
	snprintf(sites, sizeof(sites), "%s/sites", dir);
	tu_write_file_in(tmpdir, "elsewhere/a.conf", "topsecret-other-word;\n");
	snprintf(secret, sizeof(secret), "%s/elsewhere", tmpdir);
	cr_assert_eq(symlink(secret, sites), 0);
	tu_write_file_in(
	    dir, "nginx.conf",
	    "events {}\nhttp {\n  include conf.d/*.conf;\n  include sites/*.conf;\n}\n");
	char plan[512], text[1024];
	snprintf(plan, sizeof(plan), "%s/plan.yaml", tmpdir);
	snprintf(text, sizeof(text),
	         "version: 1\nname: shop\nkubernetes:\n  namespace: shop\n  templates: .\n"
	         "  configmaps:\n    - { name: shop-nginx, from_nginx: %s }\n",
	         conf);
	tu_write_file(plan, text);
	r = tu_migrate("-p", plan, "configmap", "--allow-errors", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	cr_assert_str_eq(r.out, "");
	cr_assert(strstr(r.err, "outside the tree"), "%s", r.err);
	cr_assert(strstr(r.err, " in nginx.conf:4\n"), "%s", r.err);
	cr_assert_null(strstr(r.err, "topsecret"), "%s", r.err);
	tu_output_free(&r);
}

/* tu_migrate bounds each run: a FIFO opened for reading would block until a writer came. */
Test(configmap, fifo_and_device_are_refused_at_once)
{
	char dir[300], conf[512], fifo[512], want[2048];
	snprintf(dir, sizeof(dir), "%s/tree", tmpdir);
	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(fifo, sizeof(fifo), "%s/conf.d/pipe.conf", dir);
	tu_write_file_in(dir, "nginx.conf", "events {}\nhttp {\n  include conf.d/*.conf;\n}\n");
	tu_write_file_in(dir, "conf.d/app.conf", "server { listen 8080; }\n");
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	tu_output r = tu_migrate("configmap", conf, "--name", "x", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	snprintf(want, sizeof(want),
	         "error: open() \"%s\" refused: a FIFO, not a regular file in nginx.conf:3\n",
	         fifo);
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);

	/* as the main file */
	r = tu_migrate("configmap", fifo, "--name", "x", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	snprintf(want, sizeof(want), "error: open() \"%s\" refused: a FIFO, not a regular file\n",
	         fifo);
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);

	/* a device that never ends (/dev/zero's numbers) */
	cr_assert_eq(unlink(fifo), 0);
	cr_assert_eq(mknod(fifo, S_IFCHR | 0600, makedev(1, 5)), 0);
	r = tu_migrate("configmap", conf, "--name", "x", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	snprintf(want, sizeof(want),
	         "error: open() \"%s\" refused: a character device, not a regular file in "
	         "nginx.conf:3\n",
	         fifo);
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);

	/* a directory: nginx's words */
	cr_assert_eq(unlink(fifo), 0);
	cr_assert_eq(mkdir(fifo, 0755), 0);
	r = tu_migrate("configmap", conf, "--name", "x", NULL);
	cr_assert_eq(r.status, 2, "%s", r.err);
	snprintf(want, sizeof(want),
	         "error: pread() \"%s\" failed (21: Is a directory) in "
	         "nginx.conf:3\n",
	         fifo);
	cr_assert(strstr(r.err, want), "%s", r.err);
	tu_output_free(&r);
}

/* nginx -t quotes what it read: never the words of a file lint flagged as secret material. */
Test(configmap, nginx_t_never_shows_a_secret_files_words)
{
	char dir[300], conf[512], link[512];
	snprintf(dir, sizeof(dir), "%s/tree", tmpdir);
	snprintf(conf, sizeof(conf), "%s/nginx.conf", dir);
	snprintf(link, sizeof(link), "%s/conf.d/pass.conf", dir);
	tu_write_file_in(dir, "nginx.conf",
	                 "events {}\nhttp {\n  include conf.d/*.conf;\n"
	                 "  server {\n    listen 8080;\n    ssl_password_file conf.d/pass.txt;\n"
	                 "  }\n}\n");
	tu_write_file_in(dir, "conf.d/pass.txt", "hunter2-tls-pass;\n");
	cr_assert_eq(symlink("pass.txt", link), 0);
	tu_write_file_in(dir, "conf.d/app.conf", "server { listen 8081; }\n");
	tu_output r = tu_migrate("configmap", conf, "--name", "x", "--allow-errors", "-v", NULL);
	cr_assert_null(strstr(r.out, "hunter2"), "%s", r.out);
	cr_assert_null(strstr(r.err, "hunter2"), "%s", r.err);
	cr_assert(strstr(r.err, "conf.d/pass.conf is both included and named by "
	                        "ssl_password_file; it stays out of the ConfigMap"),
	          "%s", r.err);
	cr_assert(strstr(r.err, "x: 2 files, "), "%s", r.err);
	tu_output_free(&r);

	/* the same word in a file that is not a secret, quoted by nginx: masked */
	tu_write_file_in(dir, "conf.d/typo.conf", "hunter2-tls-pass;\n");
	r = tu_migrate("configmap", conf, "--name", "x", "--allow-errors", NULL);
	cr_assert_eq(r.status, 1, "%s", r.err);
	cr_assert(strstr(r.err, "unknown directive \"<secret>\" in /etc/nginx/conf.d/typo.conf:1"),
	          "%s", r.err);
	cr_assert(strstr(r.out, "failed: unknown directive \"<secret>\" in "
	                        "/etc/nginx/conf.d/typo.conf:1\n"),
	          "%s", r.out);
	cr_assert_null(strstr(r.err, "hunter2-tls-pass\""), "%s", r.err);
	tu_output_free(&r);
}

/*
 * lib/configmap: each lint rule with its severity, place and words, the
 * key mapping and its collisions, the checksum's definition, the 1 MiB
 * limit, --hash-suffix, the YAML and JSON (read back with libyaml and
 * jansson), the pod snippet, and mg_cm_verify against the real nginx.
 */
#include <criterion/criterion.h>
#include <pwd.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "../testutil.h"
#include "configmap.h"
#include "nginxconf.h"

static char tmpdir[256];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "cm");
}

static void teardown(void)
{
	tu_tmpdir_remove(tmpdir);
}

TestSuite(configmap, .init = setup, .fini = teardown, .timeout = 60);

/* --- helpers ------------------------------------------------------------------------------ */

typedef struct {
	mg_nginxconf *conf;
	mg_cm *cm;
} tree;

static void tree_free(tree *t)
{
	mg_cm_free(t->cm);
	mg_nginxconf_free(t->conf);
}

/* t with the mg_cm of its parsed conf, the parse (rc, err) and the build both asserted. */
static tree built(tree t, int rc, mg_error *err, const mg_cm_options *o)
{
	cr_assert_eq(rc, 0, "parse: %s", err->message);
	mg_error_clear(err);
	rc = mg_cm_build(&t.cm, t.conf, o, err);
	cr_assert_eq(rc, 0, "build: %s", err->message);
	mg_error_clear(err);
	return t;
}

static tree lint_opt(const char *text, const mg_cm_options *o)
{
	tree t = {0};
	mg_error err = MG_ERROR_INIT;
	int rc = mg_nginxconf_parse_buffer(&t.conf, text, strlen(text), "nginx.conf", NULL, &err);
	return built(t, rc, &err, o);
}

static tree lint(const char *text)
{
	mg_cm_options o = {.name = "t"};
	return lint_opt(text, &o);
}

/* The tree under tmpdir/main, parsed from disk with includes followed. */
static tree lint_files(const char *main, const mg_cm_options *o)
{
	tree t = {0};
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", tmpdir, main);
	mg_error err = MG_ERROR_INIT;
	int rc = mg_nginxconf_parse(&t.conf, path, NULL, &err);
	return built(t, rc, &err, o);
}

static size_t count(const mg_cm *cm, const char *rule)
{
	size_t n = 0;
	for (size_t i = 0; i < cm->nfindings; i++)
		n += !strcmp(cm->findings[i].rule, rule);
	return n;
}

static const mg_cm_finding *find(const mg_cm *cm, const char *rule, int line)
{
	for (size_t i = 0; i < cm->nfindings; i++)
		if (!strcmp(cm->findings[i].rule, rule) && cm->findings[i].line == line)
			return &cm->findings[i];
	return NULL;
}

static const mg_cm_finding *must(const mg_cm *cm, const char *rule, int line, mg_cm_severity sev)
{
	const mg_cm_finding *f = find(cm, rule, line);
	cr_assert_not_null(f, "no %s finding at line %d", rule, line);
	cr_assert_eq(f->severity, sev, "%s at line %d: %s, not %s", rule, line,
	             mg_cm_severity_name(f->severity), mg_cm_severity_name(sev));
	cr_assert_str_eq(f->file, "nginx.conf");
	if (sev != MG_CM_INFO)
		cr_assert(f->fix && *f->fix, "%s at line %d has no fix", rule, line);
	return f;
}

static const mg_cm_entry *entry(const mg_cm *cm, const char *key)
{
	for (size_t i = 0; i < cm->nentries; i++)
		if (!strcmp(cm->entries[i].key, key))
			return &cm->entries[i];
	cr_assert_fail("no key %s", key);
	return NULL;
}

/* --- lint rules --------------------------------------------------------------------------- */

Test(configmap, secrets_are_errors_and_never_keys)
{
	tree t = lint("http {\n"
	              "  server {\n"
	              "    ssl_certificate /etc/ssl/site.crt;\n"
	              "    ssl_certificate_key ssl/site.key;\n"
	              "    ssl_trusted_certificate ssl/ca.pem;\n"
	              "    auth_basic_user_file htpasswd;\n"
	              "    ssl_client_certificate ssl/clients.pem;\n"
	              "    ssl_dhparam ssl/dh.pem;\n"
	              "    ssl_session_ticket_key ssl/ticket.key;\n"
	              "    ssl_crl ssl/revoked.crl;\n"
	              "    proxy_ssl_certificate_key ssl/upstream.key;\n"
	              "    ssl_certificate data:$cert;\n"
	              "    ssl_certificate $ssl_server_name.crt;\n"
	              "  }\n"
	              "}\n");
	cr_assert_eq(count(t.cm, "secret"), 11);
	cr_assert_eq(mg_cm_count(t.cm, MG_CM_ERROR), 11);
	const mg_cm_finding *f = must(t.cm, "secret", 3, MG_CM_ERROR);
	cr_assert_str_eq(
	    f->message,
	    "ssl_certificate /etc/ssl/site.crt: TLS material belongs in a Secret, not in "
	    "a ConfigMap (stored unencrypted and readable by whoever may read the "
	    "namespace's ConfigMaps)");
	cr_assert_str_eq(f->directive, "ssl_certificate");
	f = must(t.cm, "secret", 4, MG_CM_ERROR);
	cr_assert(strstr(f->message, "ssl/site.key: a private key belongs in a Secret"), "%s",
	          f->message);
	cr_assert(strstr(f->fix, "nginx finds it at /etc/nginx/ssl/site.key"), "%s", f->fix);
	f = must(t.cm, "secret", 6, MG_CM_ERROR);
	cr_assert(strstr(f->message, "htpasswd: password hashes belong in a Secret"), "%s",
	          f->message);
	f = must(t.cm, "secret", 12, MG_CM_ERROR);
	cr_assert_str_eq(f->message,
	                 "ssl_certificate data:...: the certificate or key itself is "
	                 "written in the configuration, so it would be in the ConfigMap");
	must(t.cm, "secret", 13, MG_CM_ERROR);

	/* the files the Secret must hold: the variable and the inline one name none */
	cr_assert_eq(t.cm->nsecrets, 9);
	cr_assert_str_eq(t.cm->secrets[0].pod_path, "/etc/ssl/site.crt");
	cr_assert_not(t.cm->secrets[0].in_mount);
	cr_assert_str_eq(t.cm->secrets[0].key, "etc_ssl_site.crt");
	cr_assert_str_eq(t.cm->secrets[1].pod_path, "/etc/nginx/ssl/site.key");
	cr_assert(t.cm->secrets[1].in_mount);
	cr_assert_str_eq(t.cm->secrets[1].key, "ssl_site.key");
	cr_assert_str_eq(t.cm->secrets[1].directive, "ssl_certificate_key");
	cr_assert_eq(t.cm->secrets[1].line, 4);
	cr_assert_str_eq(t.cm->secrets[3].pod_path, "/etc/nginx/htpasswd");
	tree_free(&t);
}

Test(configmap, secret_named_turns_errors_into_info)
{
	mg_cm_options o = {.name = "t", .secret = "site-tls"};
	tree t = lint_opt("http { server {\n"
	                  "  ssl_certificate ssl/site.crt;\n"
	                  "  ssl_certificate_key /etc/ssl/site.key;\n"
	                  "  ssl_certificate data:$cert;\n"
	                  "} }\n",
	                  &o);
	const mg_cm_finding *f = find(t.cm, "secret", 2);
	cr_assert_eq(f->severity, MG_CM_INFO);
	cr_assert_str_eq(f->message, "ssl_certificate ssl/site.crt: from Secret site-tls, mounted "
	                             "at /etc/nginx/ssl/site.crt (not in the ConfigMap)");
	cr_assert_eq(find(t.cm, "secret", 3)->severity, MG_CM_INFO);
	cr_assert_eq(find(t.cm, "secret", 4)->severity, MG_CM_ERROR, "inline key: still an error");
	cr_assert_eq(mg_cm_count(t.cm, MG_CM_ERROR), 1);
	cr_assert_str_eq(t.cm->secret_name, "site-tls");
	char *m = mg_cm_mount_yaml(t.cm, "");
	cr_assert(strstr(m, "kubectl create secret generic site-tls \\\n"), "%s", m);
	cr_assert(strstr(m, "        secretName: site-tls\n"), "%s", m);
	free(m);
	tree_free(&t);

	mg_nginxconf *conf = NULL;
	mg_error err = MG_ERROR_INIT;
	mg_nginxconf_parse_buffer(&conf, "events {}\n", 10, "nginx.conf", NULL, &err);
	mg_cm *cm = NULL;
	mg_cm_options bad = {.name = "t", .secret = "Site_TLS"};
	cr_assert_eq(mg_cm_build(&cm, conf, &bad, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "the Secret's name \"Site_TLS\" is not a DNS subdomain"),
	          "%s", err.message);
	mg_error_clear(&err);
	mg_nginxconf_free(conf);
}

Test(configmap, included_secret_file_stays_out)
{
	tu_write_file_in(tmpdir, "nginx.conf",
	                 "events {}\nhttp {\n  include ssl/bundle.pem;\n"
	                 "  server { ssl_certificate ssl/bundle.pem; }\n}\n");
	tu_write_file_in(tmpdir, "ssl/bundle.pem", "# not nginx syntax in real life\n");
	mg_cm_options o = {.name = "t"};
	tree t = lint_files("nginx.conf", &o);
	cr_assert_eq(t.cm->nentries, 1);
	cr_assert_str_eq(t.cm->entries[0].key, "nginx.conf");
	const mg_cm_finding *f = NULL;
	for (size_t i = 0; i < t.cm->nfindings; i++)
		if (t.cm->findings[i].severity == MG_CM_INFO &&
		    !strcmp(t.cm->findings[i].rule, "secret"))
			f = &t.cm->findings[i];
	cr_assert_not_null(f);
	cr_assert_str_eq(f->message,
	                 "ssl/bundle.pem is both included and named by ssl_certificate; "
	                 "it stays out of the ConfigMap");
	tree_free(&t);
}

static const char logs[] = "error_log /var/log/nginx/error.log warn;\n" /* 1 */
                           "error_log stderr;\n"
                           "events {}\n"
                           "http {\n"
                           "  access_log logs/access.log main;\n" /* 5 */
                           "  access_log /etc/nginx/logs/x.log;\n"
                           "  access_log off;\n"
                           "  access_log syslog:server=10.0.0.1;\n"
                           "  access_log /dev/stdout;\n"
                           "  access_log /var/log/$host.log;\n" /* 10 */
                           "}\n";

Test(configmap, log_files)
{
	tree t = lint(logs);
	cr_assert_eq(count(t.cm, "log-file"), 4);
	const mg_cm_finding *f = must(t.cm, "log-file", 1, MG_CM_WARNING);
	cr_assert_str_eq(f->message, "error_log /var/log/nginx/error.log: a log file in the "
	                             "container is lost with the pod and read by nobody");
	cr_assert_str_eq(f->fix, "error_log /dev/stderr; sends it to the container's log (kubectl "
	                         "logs); --fix-logs rewrites it");
	f = must(t.cm, "log-file", 5, MG_CM_ERROR);
	cr_assert_str_eq(f->message, "access_log logs/access.log: a file under the ConfigMap's "
	                             "mount, which is read-only in the pod; nginx will not start");
	must(t.cm, "log-file", 6, MG_CM_ERROR);
	must(t.cm, "log-file", 10, MG_CM_WARNING);
	cr_assert_not(entry(t.cm, "nginx.conf")->rewritten);
	tree_free(&t);
}

Test(configmap, fix_logs_rewrites_only_the_path)
{
	mg_cm_options o = {.name = "t", .fix_logs = true};
	tree t = lint_opt(logs, &o);
	cr_assert_eq(count(t.cm, "log-file"), 4);
	cr_assert_eq(mg_cm_count(t.cm, MG_CM_ERROR), 0);
	const mg_cm_finding *f = must(t.cm, "log-file", 5, MG_CM_INFO);
	cr_assert_str_eq(f->message,
	                 "access_log logs/access.log rewritten to /dev/stdout (--fix-logs)");
	const mg_cm_entry *e = entry(t.cm, "nginx.conf");
	cr_assert(e->rewritten);
	cr_assert_str_eq(e->data, "error_log /dev/stderr warn;\n"
	                          "error_log stderr;\n"
	                          "events {}\n"
	                          "http {\n"
	                          "  access_log /dev/stdout main;\n"
	                          "  access_log /dev/stdout;\n"
	                          "  access_log off;\n"
	                          "  access_log syslog:server=10.0.0.1;\n"
	                          "  access_log /dev/stdout;\n"
	                          "  access_log /dev/stdout;\n"
	                          "}\n");
	cr_assert_eq(e->len, strlen(e->data));
	tree_free(&t);
}

Test(configmap, fix_logs_keeps_quotes_comments_and_layout)
{
	mg_cm_options o = {.name = "t", .fix_logs = true};
	tree t = lint_opt("http {\n\taccess_log # the old one\n\t\t\"/var/log/a b.log\"   combined;"
	                  "  # trailing\n}\n",
	                  &o);
	cr_assert_str_eq(entry(t.cm, "nginx.conf")->data,
	                 "http {\n\taccess_log # the old one\n\t\t/dev/stdout   combined;"
	                 "  # trailing\n}\n");
	tree_free(&t);
}

Test(configmap, pass_targets)
{
	tree t = lint("http {\n"
	              "  upstream app { server 10.0.0.5:8080; server unix:/run/app/app.sock; "
	              "server backend.internal:80; server 127.0.0.1:9000; }\n"
	              "  server {\n"
	              "    location /a { proxy_pass http://app; }\n"
	              "    location /b { proxy_pass http://10.20.0.7:8080/x; }\n" /* 5 */
	              "    location /c { proxy_pass http://legacy.internal; }\n"
	              "    location /d { fastcgi_pass 127.0.0.1:9000; }\n"
	              "    location /e { fastcgi_pass localhost:9000; }\n"
	              "    location /f { fastcgi_pass unix:/run/php/php-fpm.sock; }\n"
	              "    location /g { proxy_pass http://$backend; }\n" /* 10 */
	              "    location /h { grpc_pass grpc://[::1]:50051; }\n"
	              "    location /i { uwsgi_pass unix:/run/uwsgi/app.sock; }\n"
	              "    location /j { proxy_pass http://unix:/run/app/app.sock:/api/; }\n"
	              "    location /k { proxy_pass https://later; }\n"
	              "  }\n"
	              "  upstream later { server 10.0.0.9; }\n"
	              "  server { location / { proxy_pass http://10.9.9.9$request_uri; } }\n"
	              "}\n");
	must(t.cm, "vm-address", 17, MG_CM_WARNING);
	cr_assert_eq(count(t.cm, "vm-address"), 6);
	cr_assert_eq(count(t.cm, "unix-socket"), 4);
	cr_assert_eq(t.cm->nfindings, 10, "%zu findings", t.cm->nfindings);
	const mg_cm_finding *f = must(t.cm, "unix-socket", 2, MG_CM_WARNING);
	cr_assert_str_eq(
	    f->message, "upstream server unix:/run/app/app.sock: a unix socket; in a pod nginx and "
	                "the application are separate containers, which share no directory unless "
	                "a volume is mounted in both");
	cr_assert(strstr(f->fix, "mount one emptyDir at /run/app in both containers"), "%s",
	          f->fix);
	f = must(t.cm, "vm-address", 5, MG_CM_WARNING);
	cr_assert_str_eq(f->message,
	                 "proxy_pass http://10.20.0.7:8080/x: an address of the VM "
	                 "network; the pod reaches it only if the cluster network routes "
	                 "there, and it will not follow the VMs' moves");
	f = must(t.cm, "vm-address", 6, MG_CM_WARNING);
	cr_assert_str_eq(
	    f->message, "proxy_pass http://legacy.internal: the host name legacy.internal may not "
	                "resolve the same way in the cluster (nginx resolves it when it starts and "
	                "will not start if it cannot)");
	must(t.cm, "unix-socket", 9, MG_CM_WARNING);
	must(t.cm, "unix-socket", 12, MG_CM_WARNING);
	must(t.cm, "unix-socket", 13, MG_CM_WARNING);
	must(t.cm, "vm-address", 16, MG_CM_WARNING);
	for (int line = 4; line <= 14; line++)
		if (line != 5 && line != 6 && line != 9 && line != 12 && line != 13)
			cr_assert_null(find(t.cm, "vm-address", line), "line %d", line);
	cr_assert_eq(t.cm->nsocket_dirs, 3);
	cr_assert_str_eq(t.cm->socket_dirs[0], "/run/app");
	cr_assert_str_eq(t.cm->socket_dirs[1], "/run/php");
	cr_assert_str_eq(t.cm->socket_dirs[2], "/run/uwsgi");
	tree_free(&t);
}

Test(configmap, stream_targets)
{
	tree t = lint("stream {\n"
	              "  upstream db { server 10.1.1.1:5432; }\n"
	              "  server { listen 5432; proxy_pass db; }\n"
	              "  server { listen 6379; proxy_pass cache.internal:6379; }\n"
	              "}\n");
	cr_assert_eq(t.cm->nfindings, 2);
	must(t.cm, "vm-address", 2, MG_CM_WARNING);
	must(t.cm, "vm-address", 4, MG_CM_WARNING);
	tree_free(&t);
}

Test(configmap, process_settings)
{
	tree t = lint("user www-data;\n"
	              "worker_processes 8;\n"
	              "worker_cpu_affinity 0001 0010;\n"
	              "daemon off;\n"
	              "load_module modules/ngx_http_geoip_module.so;\n"
	              "events {}\n");
	const mg_cm_finding *f = must(t.cm, "user", 1, MG_CM_WARNING);
	cr_assert_str_eq(f->message,
	                 "user www-data: the pod's securityContext and the image decide "
	                 "who nginx runs as; this user may not exist in the image");
	f = must(t.cm, "worker-processes", 2, MG_CM_WARNING);
	cr_assert_str_eq(f->message, "worker_processes 8: pinned to the VM's cores; a pod gets the "
	                             "CPU its resources give it");
	cr_assert(!strncmp(f->fix, "worker_processes auto;", 22), "%s", f->fix);
	must(t.cm, "worker-cpu-affinity", 3, MG_CM_WARNING);
	f = must(t.cm, "daemon", 4, MG_CM_ERROR);
	cr_assert(strstr(f->message, "\"daemon\" directive is duplicate"), "%s", f->message);
	cr_assert_str_eq(f->fix, "drop the line");
	f = must(t.cm, "load-module", 5, MG_CM_ERROR);
	cr_assert(strstr(f->message, "a shared object cannot come from a ConfigMap"));
	cr_assert_eq(t.cm->nfindings, 5);
	tree_free(&t);

	t = lint("worker_processes auto;\nworker_cpu_affinity auto;\nevents {}\n");
	cr_assert_eq(t.cm->nfindings, 0);
	tree_free(&t);
	t = lint("worker_processes 1;\nevents {}\n");
	cr_assert_eq(t.cm->nfindings, 0);
	tree_free(&t);
}

Test(configmap, pid_paths)
{
	static const struct {
		const char *path;
		int sev; /* -1: no finding */
	} cases[] = {
	    {"/tmp/nginx.pid", -1},
	    {"/run/nginx.pid", MG_CM_INFO},
	    {"/var/run/nginx.pid", MG_CM_INFO},
	    {"/var/lib/nginx/nginx.pid", MG_CM_WARNING},
	    {"nginx.pid", MG_CM_ERROR},
	    {"/etc/nginx/run/nginx.pid", MG_CM_ERROR},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char text[128];
		snprintf(text, sizeof(text), "pid %s;\nevents {}\n", cases[i].path);
		tree t = lint(text);
		if (cases[i].sev < 0)
			cr_assert_eq(count(t.cm, "pid"), 0, "%s", cases[i].path);
		else
			must(t.cm, "pid", 1, (mg_cm_severity)cases[i].sev);
		tree_free(&t);
	}
}

Test(configmap, listen_addresses)
{
	tree t = lint("http { server {\n"
	              "  listen 80;\n"
	              "  listen *:8080;\n"
	              "  listen [::]:80;\n"
	              "  listen 0.0.0.0:81 default_server;\n"
	              "  listen 127.0.0.1:8081;\n"
	              "  listen 10.20.0.5:443 ssl;\n"
	              "  listen app.internal:80;\n"
	              "  listen unix:/run/nginx.sock;\n"
	              "} }\n");
	cr_assert_eq(count(t.cm, "listen-address"), 3);
	const mg_cm_finding *f = must(t.cm, "listen-address", 6, MG_CM_INFO);
	cr_assert_str_eq(f->message, "listen 127.0.0.1:8081: reachable only from inside the pod (a "
	                             "sidecar, a probe with exec)");
	f = must(t.cm, "listen-address", 7, MG_CM_ERROR);
	cr_assert_str_eq(f->fix, "listen 443; (every address of the pod)");
	must(t.cm, "listen-address", 8, MG_CM_ERROR);
	tree_free(&t);
}

Test(configmap, resolver_paths_temp_and_inline_secret)
{
	tree t = lint("http {\n"
	              "  resolver 10.0.0.2 valid=30s;\n"
	              "  resolver 127.0.0.53;\n"
	              "  root /srv/a;\n"
	              "  server { root /srv/a; location /b/ { alias /srv/b/; } }\n"
	              "  client_body_temp_path /etc/nginx/body;\n"
	              "  proxy_temp_path /var/cache/nginx/proxy 1 2;\n"
	              "  server { secure_link_secret s3cr3t; }\n"
	              "}\n");
	must(t.cm, "resolver", 2, MG_CM_WARNING);
	cr_assert_null(find(t.cm, "resolver", 3));
	const mg_cm_finding *f = must(t.cm, "image-path", 4, MG_CM_INFO);
	cr_assert_str_eq(f->message, "root /srv/a: served from the container's file system");
	must(t.cm, "image-path", 5, MG_CM_INFO);
	cr_assert_eq(count(t.cm, "image-path"), 2, "root /srv/a is listed once");
	cr_assert_eq(t.cm->npaths, 2);
	cr_assert_str_eq(t.cm->paths[0], "/srv/a");
	cr_assert_str_eq(t.cm->paths[1], "/srv/b/");
	must(t.cm, "read-only-path", 6, MG_CM_ERROR);
	cr_assert_null(find(t.cm, "read-only-path", 7));
	must(t.cm, "inline-secret", 8, MG_CM_WARNING);
	cr_assert_eq(t.cm->nfindings, 5);
	tree_free(&t);
}

Test(configmap, map_and_types_bodies_are_data)
{
	tree t = lint("http {\n"
	              "  map $a $b { default 0; user 1; pid 2; proxy_pass 10.0.0.1; \"\" 3; }\n"
	              "  geo $c { 10.0.0.0/8 internal; }\n"
	              "  types { text/html html; }\n"
	              "}\n");
	cr_assert_eq(t.cm->nfindings, 0);
	tree_free(&t);
}

Test(configmap, includes_outside_empty_and_rewritten)
{
	char other[300];
	snprintf(other, sizeof(other), "%s-other", tmpdir);
	mkdir(other, 0755);
	char text[2048];
	snprintf(text, sizeof(text),
	         "events {}\n"
	         "http {\n"
	         "  include %s/conf.d/*.conf;\n" /* 3 */
	         "  include extra/*.conf;\n"
	         "  include %s/*.conf;\n" /* 5 */
	         "  include ../elsewhere/*.conf;\n"
	         "  include mime.types;\n"
	         "}\n",
	         tmpdir, other);
	tu_write_file_in(tmpdir, "nginx.conf", text);
	tu_write_file_in(tmpdir, "conf.d/app.conf", "server { listen 8080; }\n");
	tu_write_file_in(tmpdir, "mime.types", "types { text/html html; }\n");
	/* (a glob outside that matches a file is refused by the parser: see below) */

	mg_cm_options o = {.name = "t"};
	tree t = lint_files("nginx.conf", &o);
	const mg_cm_finding *fi = must(t.cm, "include-rewritten", 3, MG_CM_INFO);
	char want[700];
	snprintf(want, sizeof(want),
	         "include %s/conf.d/*.conf rewritten to /etc/nginx/conf.d/*.conf: the tree is "
	         "mounted at /etc/nginx",
	         tmpdir);
	cr_assert_str_eq(fi->message, want);
	must(t.cm, "empty-glob", 4, MG_CM_WARNING);
	fi = must(t.cm, "outside-tree", 5, MG_CM_ERROR);
	cr_assert(strstr(fi->message, "outside the tree"), "%s", fi->message);
	/* relative, by "..": as much outside */
	fi = must(t.cm, "outside-tree", 6, MG_CM_ERROR);
	cr_assert(strstr(fi->message, "include ../elsewhere/*.conf: outside the tree"), "%s",
	          fi->message);
	cr_assert_eq(count(t.cm, "outside-tree"), 2);
	cr_assert_eq(t.cm->nentries, 3);
	cr_assert_str_eq(t.cm->entries[0].key, "conf.d_app.conf");
	cr_assert_str_eq(t.cm->entries[0].path, "conf.d/app.conf");
	cr_assert_str_eq(t.cm->entries[1].key, "mime.types");
	const mg_cm_entry *e = entry(t.cm, "nginx.conf");
	cr_assert(e->rewritten);
	cr_assert(strstr(e->data, "  include /etc/nginx/conf.d/*.conf;\n"), "%s", e->data);
	tree_free(&t);

	/* mounted where it lives: nothing to rewrite */
	o.mount_path = tmpdir;
	t = lint_files("nginx.conf", &o);
	cr_assert_null(find(t.cm, "include-rewritten", 3));
	cr_assert_not(entry(t.cm, "nginx.conf")->rewritten);
	tree_free(&t);
	tu_tmpdir_remove(other);
}

Test(configmap, include_outside_the_tree_is_never_read)
{
	char other[300];
	snprintf(other, sizeof(other), "%s-other", tmpdir);
	mkdir(other, 0755);
	char text[1024], want[1024], path[512];
	snprintf(text, sizeof(text), "events {}\nhttp {\n  include %s/*.conf;\n}\n", other);
	tu_write_file_in(tmpdir, "nginx.conf", text);
	tu_write_file_in(other, "x.conf", "s3cret-of-this-machine on;\n");
	snprintf(path, sizeof(path), "%s/nginx.conf", tmpdir);
	mg_nginxconf *conf = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse(&conf, path, NULL, &err), MG_EINVALID);
	snprintf(want, sizeof(want),
	         "open() \"%s/x.conf\" refused: outside the tree \"%s\" in "
	         "nginx.conf:3",
	         other, tmpdir);
	cr_assert_str_eq(err.message, want);
	mg_error_clear(&err);
	tu_tmpdir_remove(other);
}

Test(configmap, main_file_not_named_nginx_conf)
{
	tu_write_file_in(tmpdir, "site.conf", "events {}\n");
	mg_cm_options o = {.name = "t"};
	tree t = lint_files("site.conf", &o);
	cr_assert_eq(t.cm->nfindings, 1);
	cr_assert_str_eq(t.cm->findings[0].rule, "main-file");
	cr_assert_str_eq(t.cm->findings[0].message,
	                 "the main file is site.conf; the image reads /etc/nginx/nginx.conf");
	cr_assert_str_eq(t.cm->main_path, "site.conf");
	tree_free(&t);
}

/* --- keys --------------------------------------------------------------------------------- */

static bool valid_key(const char *k)
{
	regex_t re;
	cr_assert_eq(regcomp(&re, "^[-._a-zA-Z0-9]+$", REG_EXTENDED | REG_NOSUB), 0);
	bool ok = regexec(&re, k, 0, NULL, 0) == 0 && strlen(k) <= 253 && strncmp(k, "..", 2);
	regfree(&re);
	return ok;
}

Test(configmap, natural_keys)
{
	static const char *const cases[][2] = {
	    {"nginx.conf", "nginx.conf"},
	    {"conf.d/app.conf", "conf.d_app.conf"},
	    {"sites-enabled/shop example.conf", "sites-enabled_shop-example.conf"},
	    {"maps/caf\xc3\xa9.map", "maps_caf--.map"},
	    {"..hidden", "_.hidden"},
	    {".htaccess", ".htaccess"},
	    {"a/b/c/d.conf", "a_b_c_d.conf"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *k = mg_cm_key(cases[i][0]);
		cr_assert_str_eq(k, cases[i][1]);
		cr_assert(valid_key(k), "%s", k);
		free(k);
	}
	char longp[400];
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	longp[100] = '/';
	char *k = mg_cm_key(longp);
	cr_assert_eq(strlen(k), 253);
	cr_assert(valid_key(k));
	char *k2 = mg_cm_key(longp + 1);
	cr_assert_str_neq(k, k2, "long paths that share 242 bytes still differ");
	free(k);
	free(k2);
}

Test(configmap, key_collisions)
{
	const char *paths[] = {"a:b.conf",      "a-b.conf",      "a b.conf", "a-b-2.conf",
	                       "conf.d/x.conf", "conf.d_x.conf", "z/y"};
	size_t n = sizeof(paths) / sizeof(paths[0]);
	char *keys[7];
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_cm_keys(keys, paths, n, &err), 0);
	/* a path that is a key keeps it; the others take -2, -3... in byte order */
	cr_assert_str_eq(keys[1], "a-b.conf");
	cr_assert_str_eq(keys[3], "a-b-2.conf");
	cr_assert_str_eq(keys[2], "a-b-3.conf");
	cr_assert_str_eq(keys[0], "a-b-4.conf");
	cr_assert_str_eq(keys[5], "conf.d_x.conf");
	cr_assert_str_eq(keys[4], "conf.d_x-2.conf");
	cr_assert_str_eq(keys[6], "z_y");
	for (size_t i = 0; i < n; i++) {
		cr_assert(valid_key(keys[i]), "%s", keys[i]);
		for (size_t j = i + 1; j < n; j++)
			cr_assert_str_neq(keys[i], keys[j]);
	}
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
}

Test(configmap, key_collision_without_extension_and_in_a_tree)
{
	const char *paths[] = {"a/b", "a_b"};
	char *keys[2];
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_cm_keys(keys, paths, 2, &err), 0);
	cr_assert_str_eq(keys[1], "a_b");
	cr_assert_str_eq(keys[0], "a_b-2");
	free(keys[0]);
	free(keys[1]);

	tu_write_file_in(tmpdir, "nginx.conf",
	                 "events {}\nhttp { include conf.d/x.conf; include conf.d_x.conf; }\n");
	tu_write_file_in(tmpdir, "conf.d/x.conf", "server_tokens off;\n");
	tu_write_file_in(tmpdir, "conf.d_x.conf", "gzip on;\n");
	mg_cm_options o = {.name = "t"};
	tree t = lint_files("nginx.conf", &o);
	cr_assert_eq(t.cm->nentries, 3);
	cr_assert_str_eq(entry(t.cm, "conf.d_x-2.conf")->path, "conf.d/x.conf");
	cr_assert_str_eq(entry(t.cm, "conf.d_x.conf")->path, "conf.d_x.conf");
	cr_assert_str_eq(entry(t.cm, "conf.d_x-2.conf")->data, "server_tokens off;\n");
	tree_free(&t);
}

/* --- checksum, size, names ---------------------------------------------------------------- */

Test(configmap, checksum_definition_and_stability)
{
	const char *k1[] = {"a.conf"};
	const char *v1[] = {"abc"};
	size_t l1[] = {3};
	char hex[65];
	/* sha256("6:a.conf,3:abc,"): netstrings of key and value, keys in byte order */
	mg_cm_checksum(hex, k1, v1, l1, 1);
	cr_assert_str_eq(hex, "f3aecd2a8d500825daeead0d54f81ffd46c99560558f90233761c6a1cb310386");

	const char *k2[] = {"nginx.conf", "a.conf"};
	const char *v2[] = {"events {}\n", "abc"};
	size_t l2[] = {10, 3};
	char h2[65], h3[65];
	mg_cm_checksum(h2, k2, v2, l2, 2);
	cr_assert_str_eq(h2, "7092349349314f6777edbac4f4ab54101cfd22e7a3fc29ac67a16939dc12651f");
	const char *k3[] = {"a.conf", "nginx.conf"};
	const char *v3[] = {"abc", "events {}\n"};
	size_t l3[] = {3, 10};
	mg_cm_checksum(h3, k3, v3, l3, 2);
	cr_assert_str_eq(h2, h3, "the order entries come in does not matter");

	/* a value's bytes moved into the next key change it */
	const char *k4[] = {"a", "b"};
	const char *v4[] = {"xy", ""};
	size_t l4[] = {2, 0};
	const char *v5[] = {"x", "y"};
	size_t l5[] = {1, 1};
	char h4[65], h5[65];
	mg_cm_checksum(h4, k4, v4, l4, 2);
	mg_cm_checksum(h5, k4, v5, l5, 2);
	cr_assert_str_neq(h4, h5);

	/* the same tree twice: the same checksum; one byte changed: another */
	tree a = lint("events {}\nhttp { gzip on; }\n"), b = lint("events {}\nhttp { gzip on; }\n"),
	     c = lint("events {}\nhttp { gzip off; }\n");
	cr_assert_str_eq(a.cm->checksum, b.cm->checksum);
	cr_assert_str_neq(a.cm->checksum, c.cm->checksum);
	char want[65];
	const char *kk[] = {"nginx.conf"};
	const char *vv[] = {"events {}\nhttp { gzip on; }\n"};
	size_t ll[] = {strlen(vv[0])};
	mg_cm_checksum(want, kk, vv, ll, 1);
	cr_assert_str_eq(a.cm->checksum, want);
	tree_free(&a);
	tree_free(&b);
	tree_free(&c);
}

static char *padded(size_t len)
{
	/* a valid configuration of exactly len bytes */
	char *s = malloc(len + 1);
	const char *head = "events {}\n#";
	memcpy(s, head, strlen(head));
	memset(s + strlen(head), 'x', len - strlen(head) - 1);
	s[len - 1] = '\n';
	s[len] = '\0';
	return s;
}

Test(configmap, size_limit)
{
	const char *k[] = {"nginx.conf", "b"};
	size_t l[] = {5, 7};
	cr_assert_eq(mg_cm_size(k, l, 2), 10 + 5 + 1 + 7);

	/* "nginx.conf" is 10 bytes: a value of 1 MiB - 10 is exactly at the limit */
	char *at = padded(MG_CM_MAX_BYTES - 10);
	tree t = lint(at);
	cr_assert_eq(t.cm->size, MG_CM_MAX_BYTES);
	tree_free(&t);
	free(at);

	char *over = padded(MG_CM_MAX_BYTES - 9);
	mg_nginxconf *conf = NULL;
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_nginxconf_parse_buffer(&conf, over, strlen(over), "nginx.conf", NULL, &err),
	             0);
	mg_cm *cm = NULL;
	mg_cm_options o = {.name = "big"};
	cr_assert_eq(mg_cm_build(&cm, conf, &o, &err), MG_ERROR);
	cr_assert_null(cm);
	cr_assert_str_eq(
	    err.message,
	    "ConfigMap big would be 1048577 bytes (keys and values, as the API server "
	    "counts them); the limit is 1048576 (1 MiB). Largest files: nginx.conf "
	    "(1048567 bytes). Split the tree into several ConfigMaps, or move large maps "
	    "into the image");
	mg_error_clear(&err);
	mg_nginxconf_free(conf);
	free(over);
}

Test(configmap, hash_suffix_and_names)
{
	mg_cm_options o = {.name = "shop-nginx", .namespace_ = "shop", .hash_suffix = true};
	tree t = lint_opt("events {}\n", &o);
	char want[64];
	snprintf(want, sizeof(want), "shop-nginx-%.10s", t.cm->checksum);
	cr_assert_str_eq(t.cm->name, want);
	cr_assert_str_eq(t.cm->base_name, "shop-nginx");
	cr_assert(t.cm->immutable);
	char *y = mg_cm_yaml(t.cm);
	cr_assert(strstr(y, "immutable: true\n"), "%s", y);
	char line[128];
	snprintf(line, sizeof(line), "  name: \"%s\"\n  namespace: \"shop\"\n", want);
	cr_assert(strstr(y, line), "%s", y);
	free(y);
	json_t *j = mg_cm_json(t.cm);
	cr_assert(json_is_true(json_object_get(j, "immutable")));
	json_decref(j);
	tree_free(&t);

	o.hash_suffix = false;
	t = lint_opt("events {}\n", &o);
	cr_assert_str_eq(t.cm->name, "shop-nginx");
	cr_assert_not(t.cm->immutable);
	y = mg_cm_yaml(t.cm);
	cr_assert_null(strstr(y, "immutable"));
	free(y);
	tree_free(&t);

	static const char *const bad[] = {"Shop", "-shop", "shop_nginx", "", "shop-"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mg_nginxconf *conf = NULL;
		mg_error err = MG_ERROR_INIT;
		mg_nginxconf_parse_buffer(&conf, "events {}\n", 10, "nginx.conf", NULL, &err);
		mg_cm *cm = NULL;
		mg_cm_options bo = {.name = bad[i]};
		cr_assert_eq(mg_cm_build(&cm, conf, &bo, &err), MG_EINVALID, "%s", bad[i]);
		cr_assert(strstr(err.message, "is not a DNS subdomain"), "%s", err.message);
		mg_error_clear(&err);
		mg_nginxconf_free(conf);
	}
	/* 243 characters: a name, but too long for the suffix */
	char name[244];
	memset(name, 'a', 243);
	name[243] = '\0';
	mg_nginxconf *conf = NULL;
	mg_error err = MG_ERROR_INIT;
	mg_nginxconf_parse_buffer(&conf, "events {}\n", 10, "nginx.conf", NULL, &err);
	mg_cm *cm = NULL;
	mg_cm_options lo = {.name = name, .hash_suffix = true};
	cr_assert_eq(mg_cm_build(&cm, conf, &lo, &err), MG_EINVALID);
	cr_assert(strstr(err.message, "at most 242 characters with the hash suffix"), "%s",
	          err.message);
	mg_error_clear(&err);
	lo.hash_suffix = false;
	cr_assert_eq(mg_cm_build(&cm, conf, &lo, &err), 0);
	mg_cm_free(cm);
	mg_nginxconf_free(conf);
}

/* --- YAML and JSON ------------------------------------------------------------------------ */

/* data[key] (or binaryData[key], still base64) of the one document in yaml, via libyaml. */
static char *yaml_value(const char *yaml, const char *section, const char *key, size_t *len)
{
	yaml_parser_t p;
	yaml_document_t doc;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, strlen(yaml));
	cr_assert(yaml_parser_load(&p, &doc), "YAML does not parse: %s at line %zu", p.problem,
	          p.problem_mark.line + 1);
	char *out = NULL;
	yaml_node_t *root = yaml_document_get_root_node(&doc);
	cr_assert_eq(root->type, YAML_MAPPING_NODE);
	for (yaml_node_pair_t *s = root->data.mapping.pairs.start; s < root->data.mapping.pairs.top;
	     s++) {
		yaml_node_t *k = yaml_document_get_node(&doc, s->key);
		if (strcmp((char *)k->data.scalar.value, section))
			continue;
		yaml_node_t *m = yaml_document_get_node(&doc, s->value);
		for (yaml_node_pair_t *e = m->data.mapping.pairs.start;
		     e < m->data.mapping.pairs.top; e++) {
			yaml_node_t *ek = yaml_document_get_node(&doc, e->key);
			yaml_node_t *ev = yaml_document_get_node(&doc, e->value);
			cr_assert_eq(ek->data.scalar.style, YAML_DOUBLE_QUOTED_SCALAR_STYLE,
			             "keys are quoted");
			if (strcmp((char *)ek->data.scalar.value, key))
				continue;
			*len = ev->data.scalar.length;
			out = malloc(*len + 1);
			memcpy(out, ev->data.scalar.value, *len);
			out[*len] = '\0';
		}
	}
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return out;
}

Test(configmap, yaml_keeps_every_byte)
{
	static const char *const texts[] = {
	    "events {}\n",
	    "\tindented with a tab;\n  two spaces first\n",
	    "  leading spaces on the first line;\n",
	    "no newline at the end;",
	    "three newlines at the end;\n\n\n",
	    "trailing spaces   \nand tabs\t\t\n",
	    "windows;\r\nline ends;\r\n",
	    "a NUL \0 inside;\n",
	    "line\xe2\x80\xa8separator and \xc2\x85 NEL;\n",
	    "\xef\xbb\xbf# a BOM first\n",
	    "---\n...\n# not a document marker\n",
	    "\"quotes\" and 'single' and \\backslash\\ and #hash: colon\n",
	    "caf\xc3\xa9 \xe2\x9c\x93 unicode\n",
	    "\n\nblank lines first\n",
	    "   \nwhitespace-only line first\n",
	    "",
	};
	static const size_t lens[] = {0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0};
	size_t n = sizeof(texts) / sizeof(texts[0]);
	mg_cm_entry entries[16];
	char keys[16][16];
	for (size_t i = 0; i < n; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%02zu.conf", i);
		entries[i] = (mg_cm_entry){.key = keys[i],
		                           .path = keys[i],
		                           .data = texts[i],
		                           .len = lens[i] ? lens[i] : strlen(texts[i])};
	}
	mg_cm cm = {.name = "t", .entries = entries, .nentries = n};
	memset(cm.checksum, 'a', 64);
	char *y = mg_cm_yaml(&cm);
	cr_assert_not_null(y);
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		char *v = yaml_value(y, "data", keys[i], &len);
		cr_assert_not_null(v, "%s missing", keys[i]);
		cr_assert_eq(len, entries[i].len, "%s: %zu bytes back, %zu in", keys[i], len,
		             entries[i].len);
		cr_assert(!memcmp(v, entries[i].data, len), "%s differs:\n%s", keys[i], y);
		free(v);
	}
	/* readable where YAML allows: a literal block with explicit indentation */
	cr_assert(strstr(y, "  \"k01.conf\": |2\n    \tindented with a tab;\n      two spaces"),
	          "%s", y);
	cr_assert(strstr(y, "  \"k03.conf\": |2-\n    no newline at the end;\n"), "%s", y);
	cr_assert(strstr(y, "  \"k04.conf\": |2+\n"), "%s", y);
	cr_assert(strstr(y, "  \"k06.conf\": \"windows;\\r\\nline ends;\\r\\n\"\n"), "%s", y);

	json_t *j = mg_cm_json(&cm);
	json_t *data = json_object_get(j, "data");
	for (size_t i = 0; i < n; i++) {
		json_t *v = json_object_get(data, keys[i]);
		cr_assert(json_is_string(v));
		cr_assert_eq(json_string_length(v), entries[i].len);
		cr_assert(!memcmp(json_string_value(v), entries[i].data, entries[i].len));
	}
	cr_assert_str_eq(json_string_value(json_object_get(j, "kind")), "ConfigMap");
	json_decref(j);
	free(y);
}

Test(configmap, non_utf8_goes_to_binary_data)
{
	tu_write_file_in(tmpdir, "nginx.conf", "events {}\nhttp { include latin1.conf; }\n");
	tu_write_file_in(tmpdir, "latin1.conf", "# caf\xe9\nserver_tokens off;\n");
	mg_cm_options o = {.name = "t"};
	tree t = lint_files("nginx.conf", &o);
	const mg_cm_entry *e = entry(t.cm, "latin1.conf");
	cr_assert(e->binary);
	cr_assert_not(entry(t.cm, "nginx.conf")->binary);
	char *y = mg_cm_yaml(t.cm);
	size_t len;
	char *v = yaml_value(y, "binaryData", "latin1.conf", &len);
	cr_assert_str_eq(v, "IyBjYWbpCnNlcnZlcl90b2tlbnMgb2ZmOwo=");
	free(v);
	cr_assert_null(yaml_value(y, "data", "latin1.conf", &len));
	json_t *j = mg_cm_json(t.cm);
	cr_assert_str_eq(
	    json_string_value(json_object_get(json_object_get(j, "binaryData"), "latin1.conf")),
	    "IyBjYWbpCnNlcnZlcl90b2tlbnMgb2ZmOwo=");
	json_decref(j);
	free(y);
	/* binaryData counts its raw bytes */
	cr_assert_eq(t.cm->size, strlen("nginx.conf") +
	                             strlen("events {}\nhttp { include "
	                                    "latin1.conf; }\n") +
	                             strlen("latin1.conf") + e->len);
	tree_free(&t);
}

Test(configmap, items_and_mount_snippet)
{
	mg_cm_options o = {.name = "shop", .namespace_ = "prod"};
	tree t = lint_opt("events {}\nhttp { server {\n"
	                  "  ssl_certificate ssl/shop.crt;\n"
	                  "  ssl_certificate_key /etc/ssl/private/shop.key;\n"
	                  "  location / { fastcgi_pass unix:/run/php/fpm.sock; }\n"
	                  "} }\n",
	                  &o);
	json_t *items = mg_cm_items_json(t.cm);
	cr_assert_eq(json_array_size(items), 1);
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "key")),
	                 "nginx.conf");
	cr_assert_str_eq(json_string_value(json_object_get(json_array_get(items, 0), "path")),
	                 "nginx.conf");
	json_decref(items);
	char *m = mg_cm_mount_yaml(t.cm, "# ");
	cr_assert(
	    strstr(m, "#   kubectl create secret generic shop-secret --namespace prod \\\n"
	              "#       --from-file=ssl_shop.crt=ssl/shop.crt \\\n"
	              "#       --from-file=etc_ssl_private_shop.key=/etc/ssl/private/shop.key\n"),
	    "%s", m);
	cr_assert(strstr(m, "#       projected:\n#         sources:\n#           - configMap:\n"
	                    "#               name: shop\n#               items:\n"
	                    "#                 - {key: nginx.conf, path: nginx.conf}\n"
	                    "#           - secret:\n#               name: shop-secret\n"
	                    "#               items:\n"
	                    "#                 - {key: ssl_shop.crt, path: ssl/shop.crt}\n"),
	          "%s", m);
	cr_assert(strstr(m, "#     - name: nginx-secret-1\n#       secret:\n"
	                    "#         secretName: shop-secret\n#         items:\n"
	                    "#           - {key: etc_ssl_private_shop.key, path: shop.key}\n"),
	          "%s", m);
	cr_assert(strstr(m, "#     - name: sockets-1\n#       emptyDir: {}\n"), "%s", m);
	cr_assert(strstr(m,
	                 "#       - {name: nginx-config, mountPath: /etc/nginx, readOnly: true}\n"
	                 "#       - {name: nginx-secret-1, mountPath: /etc/ssl/private, readOnly: "
	                 "true}\n"
	                 "#       - {name: sockets-1, mountPath: /run/php}\n"),
	          "%s", m);
	cr_assert(strstr(m, "#   the container that creates the sockets (php-fpm):\n#     "
	                    "volumeMounts:\n#       - {name: sockets-1, mountPath: /run/php}\n"),
	          "%s", m);
	free(m);
	tree_free(&t);

	/* no secret: a plain configMap volume */
	t = lint("events {}\n");
	m = mg_cm_mount_yaml(t.cm, "");
	cr_assert(strstr(m, "  volumes:\n    - name: nginx-config\n      configMap:\n"
	                    "        name: t\n        items:\n"
	                    "          - {key: nginx.conf, path: nginx.conf}\n"),
	          "%s", m);
	cr_assert_null(strstr(m, "kubectl"));
	free(m);
	tree_free(&t);
}

/* --- verify with the real nginx ----------------------------------------------------------- */

static tree verify_tree(const char *main, bool fix_logs)
{
	mg_cm_options o = {.name = "t", .fix_logs = fix_logs};
	tree t = lint_files(main, &o);
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_cm_verify(t.cm, "/usr/sbin/nginx", NULL, 20000, &err), 0, "%s",
	             err.message);
	mg_error_clear(&err);
	return t;
}

static bool has_note(const mg_cm *cm, const char *text)
{
	for (size_t i = 0; i < cm->verify.nnotes; i++)
		if (!strcmp(cm->verify.notes[i], text))
			return true;
	return false;
}

static void print_notes(const mg_cm *cm)
{
	for (size_t i = 0; i < cm->verify.nnotes; i++)
		fprintf(stderr, "note: %s\n", cm->verify.notes[i]);
	fprintf(stderr, "output: %s\n", cm->verify.output ? cm->verify.output : "");
}

Test(configmap, verify_simulates_the_pod_in_a_scratch_directory)
{
	cr_assert_eq(geteuid(), 0, "the tests run as root (the user directive is checked)");
	tu_write_file_in(tmpdir, "nginx.conf",
	                 "user nosuchuser-mg;\n"
	                 "pid /var/run/shop/nginx.pid;\n"
	                 "error_log /var/log/shop/error.log;\n"
	                 "events {}\n"
	                 "http {\n"
	                 "  include conf.d/*.conf;\n"
	                 "  upstream app { server app-vm-01.invalid:8080; }\n"
	                 "  server {\n"
	                 "    listen 8443 ssl;\n"
	                 "    ssl_certificate ssl/shop.crt;\n"
	                 "    ssl_certificate_key /etc/ssl/private/shop.key;\n"
	                 "    ssl_dhparam ssl/dh.pem;\n"
	                 "    ssl_session_ticket_key ssl/ticket.key;\n"
	                 "    ssl_crl ssl/revoked.crl;\n"
	                 "    auth_basic_user_file htpasswd;\n"
	                 "    location / { proxy_pass http://app; }\n"
	                 "    location /old { proxy_pass http://legacy.invalid; }\n"
	                 "  }\n"
	                 "}\n");
	tu_write_file_in(tmpdir, "conf.d/app.conf",
	                 "server { listen 8081; access_log /var/log/shop/app.log; }\n");
	tree t = verify_tree("nginx.conf", false);
	const mg_cm_verify_result *v = &t.cm->verify;
	if (!v->ok)
		print_notes(t.cm);
	cr_assert(v->ran);
	cr_assert(v->ok, "%s", v->summary);
	cr_assert_str_eq(v->summary, "passed");
	cr_assert_eq(v->status, 0);
	cr_assert(!strncmp(v->version, "nginx/", 6), "%s", v->version);
	cr_assert_str_eq(v->command, "/usr/sbin/nginx -t -p <root>/etc/nginx/ -c "
	                             "<root>/etc/nginx/nginx.conf -e stderr -g 'daemon off;'");
	cr_assert(strstr(v->output, "configuration file /etc/nginx/nginx.conf test is successful"),
	          "%s", v->output);
	cr_assert(has_note(t.cm, "user nosuchuser-mg: unknown on this machine, dropped for the "
	                         "check"));
	cr_assert(has_note(t.cm, "/var/run/shop: the image must provide this directory (pid); "
	                         "created for the check"));
	cr_assert(has_note(t.cm, "/var/log/shop: the image must provide this directory "
	                         "(error_log); created for the check"));
	cr_assert(has_note(t.cm, "app-vm-01.invalid does not resolve here: checked as 127.0.0.1 "
	                         "(in the cluster it must resolve)"));
	cr_assert(has_note(t.cm, "legacy.invalid does not resolve here: checked as 127.0.0.1 (in "
	                         "the cluster it must resolve)"));
	cr_assert(has_note(t.cm, "/etc/nginx/ssl/shop.crt: from the Secret; a throwaway "
	                         "certificate and key stand in for it"));
	cr_assert(has_note(t.cm, "/etc/ssl/private/shop.key: from the Secret; a throwaway "
	                         "certificate and key stand in for it"));
	cr_assert(has_note(t.cm, "/etc/nginx/ssl/dh.pem: from the Secret; standard DH parameters "
	                         "(ffdhe2048) stand in for it"));
	cr_assert(has_note(t.cm, "ssl_crl ssl/revoked.crl: no placeholder can stand in for it; "
	                         "dropped for the check"));
	cr_assert(has_note(t.cm, "/var/cache/nginx: the image must provide this directory (the "
	                         "built-in temp paths); created for the check"));
	/* nothing of the check reached this machine's directories */
	struct stat st;
	cr_assert_neq(stat("/var/log/shop", &st), 0);
	cr_assert_neq(stat("/var/run/shop", &st), 0);
	/* the rendered content itself is untouched by the check */
	cr_assert_str_eq(entry(t.cm, "conf.d_app.conf")->data,
	                 "server { listen 8081; access_log /var/log/shop/app.log; }\n");
	tree_free(&t);
}

Test(configmap, verify_follows_rewritten_absolute_includes)
{
	char text[1024];
	snprintf(text, sizeof(text),
	         "events {}\nhttp {\n  include %s/conf.d/*.conf;\n  access_log off;\n}\n", tmpdir);
	tu_write_file_in(tmpdir, "nginx.conf", text);
	tu_write_file_in(tmpdir, "conf.d/app.conf",
	                 "server {\n  listen 8080;\n  proxy_passs x;\n}\n");
	tree t = verify_tree("nginx.conf", false);
	/* the include, rewritten to /etc/nginx, reached the scratch copy of conf.d/app.conf */
	cr_assert_not(t.cm->verify.ok);
	cr_assert_str_eq(t.cm->verify.summary,
	                 "unknown directive \"proxy_passs\" in /etc/nginx/conf.d/app.conf:3");
	tree_free(&t);
	tu_write_file_in(tmpdir, "conf.d/app.conf", "server {\n  listen 8080;\n}\n");
	t = verify_tree("nginx.conf", false);
	cr_assert(t.cm->verify.ok, "%s", t.cm->verify.output);
	tree_free(&t);
}

Test(configmap, verify_reports_nginx_errors_at_the_pods_paths)
{
	tu_write_file_in(tmpdir, "nginx.conf", "events {}\nhttp {\n  include conf.d/*.conf;\n}\n");
	tu_write_file_in(tmpdir, "conf.d/app.conf",
	                 "server {\n  listen 8080;\n  location / {\n"
	                 "    proxy_passs http://127.0.0.1:9000;\n  }\n}\n");
	tree t = verify_tree("nginx.conf", false);
	const mg_cm_verify_result *v = &t.cm->verify;
	cr_assert(v->ran);
	cr_assert_not(v->ok);
	cr_assert_eq(v->status, 1);
	cr_assert_str_eq(v->summary,
	                 "unknown directive \"proxy_passs\" in /etc/nginx/conf.d/app.conf:4");
	cr_assert(strstr(v->output, "test failed"), "%s", v->output);
	cr_assert_null(strstr(v->output, "/tmp/"), "no scratch path in: %s", v->output);
	char *y = mg_cm_yaml(t.cm);
	cr_assert(strstr(y, "    migrate/nginx-test: \"failed (nginx/"), "%s", y);
	free(y);
	tree_free(&t);
}

Test(configmap, verify_catches_daemon_given_twice)
{
	tu_write_file_in(tmpdir, "nginx.conf", "daemon off;\nevents {}\n");
	tree t = verify_tree("nginx.conf", false);
	cr_assert_not(t.cm->verify.ok);
	cr_assert_str_eq(t.cm->verify.summary,
	                 "\"daemon\" directive is duplicate in /etc/nginx/nginx.conf:1");
	tree_free(&t);
}

Test(configmap, verify_skipped_without_nginx)
{
	tu_write_file_in(tmpdir, "nginx.conf", "events {}\n");
	mg_cm_options o = {.name = "t"};
	tree t = lint_files("nginx.conf", &o);
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_cm_verify(t.cm, "/nonexistent/nginx", NULL, 20000, &err), 0);
	cr_assert_not(t.cm->verify.ran);
	cr_assert_str_eq(t.cm->verify.reason, "nginx is not installed at the path given");
	char *y = mg_cm_yaml(t.cm);
	cr_assert_null(strstr(y, "nginx-test"), "no verdict without a check: %s", y);
	free(y);
	mg_cm_verify_skip(t.cm, "--no-verify");
	cr_assert_str_eq(t.cm->verify.reason, "--no-verify");
	tree_free(&t);
}

/* A secret file the tree also includes, by another name: never a key, never in nginx's output. */
Test(configmap, secret_included_by_another_name_stays_out)
{
	tu_write_file_in(tmpdir, "nginx.conf",
	                 "events {}\n"
	                 "http {\n"
	                 "  include conf.d/*.conf;\n"
	                 "  server {\n"
	                 "    listen 8080;\n"
	                 "    ssl_password_file conf.d/pass.txt;\n"
	                 "    ssl_password_file /etc/nginx/vault/tls.conf;\n"
	                 "  }\n"
	                 "  include vault/*.conf;\n"
	                 "}\n");
	tu_write_file_in(tmpdir, "conf.d/app.conf", "server { listen 8081; }\n");
	tu_write_file_in(tmpdir, "conf.d/pass.txt", "hunter2-pass-word;\n");
	/* the same file by a symlink the glob matches */
	char link[512];
	snprintf(link, sizeof(link), "%s/conf.d/pass.conf", tmpdir);
	cr_assert_eq(symlink("pass.txt", link), 0);
	/* named by where the pod sees it (the tree is not at /etc/nginx here) */
	tu_write_file_in(tmpdir, "vault/tls.conf", "hunter3-tls-word;\n");
	tree t = verify_tree("nginx.conf", false);
	cr_assert_eq(t.cm->nentries, 2, "only nginx.conf and conf.d/app.conf");
	cr_assert_str_eq(t.cm->entries[0].key, "conf.d_app.conf");
	cr_assert_str_eq(t.cm->entries[1].key, "nginx.conf");
	cr_assert_eq(count(t.cm, "secret"), 4, "2 errors and 2 infos");
	char *y = mg_cm_yaml(t.cm);
	cr_assert_null(strstr(y, "hunter2"), "%s", y);
	cr_assert_null(strstr(y, "hunter3"), "%s", y);
	free(y);
	const mg_cm_verify_result *v = &t.cm->verify;
	cr_assert(v->ran);
	cr_assert_null(strstr(v->output, "hunter2"), "%s", v->output);
	cr_assert_null(strstr(v->output, "hunter3"), "%s", v->output);
	cr_assert_null(strstr(v->summary, "hunter"), "%s", v->summary);
	tree_free(&t);
}

/* nginx quotes a key it cannot load: a key written in the configuration is masked there. */
Test(configmap, verify_masks_a_key_written_in_the_configuration)
{
	tu_write_file_in(tmpdir, "nginx.conf",
	                 "events {}\n"
	                 "http {\n"
	                 "  server {\n"
	                 "    listen 8443 ssl;\n"
	                 "    ssl_certificate ssl/site.crt;\n"
	                 "    ssl_certificate_key \"data:-----BEGIN PRIVATE KEY-----\\n"
	                 "MIIEkeyMaterialThatMustNotShow0123456789\\n"
	                 "-----END PRIVATE KEY-----\\n\";\n"
	                 "  }\n"
	                 "}\n");
	tree t = verify_tree("nginx.conf", false);
	const mg_cm_verify_result *v = &t.cm->verify;
	cr_assert(v->ran);
	cr_assert_not(v->ok);
	cr_assert_null(strstr(v->output, "keyMaterial"), "%s", v->output);
	cr_assert_null(strstr(v->output, "BEGIN PRIVATE KEY"), "%s", v->output);
	/* nginx's message stays, the key masked */
	cr_assert(strstr(v->output, "cannot load certificate key \"<secret>\""), "%s", v->output);
	const char *want = "cannot load certificate key \"<secret>\": PEM_read_bio_PrivateKey() "
	                   "failed";
	cr_assert(!strncmp(v->summary, want, strlen(want)), "%s", v->summary);
	tree_free(&t);
}

/* --- what front ends print: the YAML comments, the verdict, the JSON report ---------------- */

Test(configmap, yaml_header_names_source_size_checksum_and_verdict)
{
	tree t = lint("events {}\nhttp { server { listen 80; } }\n");
	mg_cm_verify_skip(t.cm, "--no-verify");
	char *h = mg_cm_yaml_header(t.cm, "legacy/nginx.conf");
	cr_assert_not_null(h);
	char want[256];
	snprintf(want, sizeof(want),
	         "# ConfigMap t from legacy/nginx.conf: 1 files, %zu bytes (the limit is %zu)\n"
	         "# checksum (sha256 of the content): %s\n"
	         "# nginx -t: not run (--no-verify)\n#\n",
	         t.cm->size, MG_CM_MAX_BYTES, t.cm->checksum);
	cr_assert_eq(strncmp(h, want, strlen(want)), 0, "%s", h);
	cr_assert_null(strstr(h, "# lint:"), "%s", h);
	for (const char *l = h; *l; l = strchr(l, '\n') + 1)
		cr_assert_eq(*l, '#', "every line is a comment: %s", h);
	free(h);
	tree_free(&t);
}

Test(configmap, failed_means_lint_errors_unless_allowed_or_a_failed_check)
{
	tree t = lint("events {}\nhttp { server { ssl_certificate_key /etc/ssl/k.pem; } }\n");
	cr_assert_gt(mg_cm_count(t.cm, MG_CM_ERROR), 0);
	cr_assert(mg_cm_failed(t.cm, false));
	cr_assert_not(mg_cm_failed(t.cm, true));
	json_t *r = mg_cm_report_json(t.cm, "nginx.conf");
	cr_assert_str_eq(json_string_value(json_object_get(r, "name")), "t");
	cr_assert_str_eq(json_string_value(json_object_get(r, "file")), "nginx.conf");
	cr_assert_eq(json_array_size(json_object_get(r, "findings")), t.cm->nfindings);
	cr_assert(json_is_object(json_object_get(r, "verify")));
	json_decref(r);
	tree_free(&t);

	t = lint("events {}\nhttp {}\n");
	cr_assert_not(mg_cm_failed(t.cm, false));
	t.cm->verify.ran = true; /* as mg_cm_verify leaves a failed check */
	t.cm->verify.ok = false;
	cr_assert(mg_cm_failed(t.cm, true));
	tree_free(&t);
}

Test(configmap, list_json_is_the_object_for_one_and_a_list_for_more)
{
	tree t = lint("events {}\nhttp {}\n");
	json_t *items = json_array();
	json_array_append_new(items, mg_cm_json(t.cm));
	json_t *one = mg_cm_list_json(items);
	cr_assert_str_eq(json_string_value(json_object_get(one, "kind")), "ConfigMap");
	json_decref(one);
	items = json_array();
	json_array_append_new(items, mg_cm_json(t.cm));
	json_array_append_new(items, mg_cm_json(t.cm));
	json_t *two = mg_cm_list_json(items);
	cr_assert_str_eq(json_string_value(json_object_get(two, "kind")), "List");
	cr_assert_eq(json_array_size(json_object_get(two, "items")), 2);
	json_decref(two);
	tree_free(&t);
}

/* Helpers shared by the unit and integration tests. */
#ifndef MG_TESTUTIL_H
#define MG_TESTUTIL_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "error.h"
#include "store.h"

/* A fresh directory /tmp/mg-<tag>-XXXXXX in buf (umask 022 so modes are predictable). */
void tu_tmpdir_make(char *buf, size_t size, const char *tag);
/* rm -rf, without following links. */
void tu_tmpdir_remove(const char *dir);
/* Names in dir, sorted and joined with ',', so a test can compare a whole listing. */
void tu_list_dir(char *out, size_t size, const char *dir);

/* CLOCK_MONOTONIC in ms, for bounding waits and timing what the code under test takes. */
int64_t tu_now_ms(void);
/* A loopback port nothing listens on right now (the kernel's pick for port 0). */
int tu_free_port(void);
/*
 * $PYTHON, else Debian's own python3, else the first on PATH: a version
 * manager's shim in PATH can take longer to start than the whole test.
 */
const char *tu_python(void);

/*
 * fork + exec, the child killed (PR_SET_PDEATHSIG) if this test process dies
 * first so nothing is left behind; in/out -1 mean /dev/null, err -1 keeps
 * stderr. -1 if fork fails (errno says why).
 */
pid_t tu_spawn_fds(char *const argv[], int in, int out, int err);
/*
 * Starts tests/servers/promfault.py (a Prometheus API that fails as told) with
 * the options opt... (NULL-terminated); asserts it started. *port is its port,
 * *in_fd the write end of its stdin (closing it stops the server).
 */
pid_t tu_promfault_start(int *port, int *in_fd, const char *opt, ...);
/*
 * posix_spawn of argv (a path, in environ) with stdin on a pipe whose write
 * end goes to *in_fd (closed if in_fd is NULL) and stdout on a pipe read
 * from *out_fd (/dev/null if out_fd is NULL); asserts it started.
 */
pid_t tu_spawn_piped(char **argv, int *in_fd, int *out_fd);
/* SIGTERM and wait for it (no timeout: the test's own timeout bounds it); *pid becomes 0. */
void tu_stop(pid_t *pid);
/* One read(2) from fd appended to *buf (malloc'd, NUL-terminated, *cap bytes); *len is
 * unchanged at end of file or on an error. */
void tu_drain(int fd, char **buf, size_t *len, size_t *cap);
/* What tu_capture collected. */
typedef struct {
	int status; /* exit code, or 128+signal */
	char *out;  /* all of stdout, NUL-terminated, malloc'd */
	char *err;  /* all of stderr */
} tu_output;
/*
 * Runs argv (a path; NULL-terminated) with stdin on /dev/null and both
 * streams captured; asserts it ends within about 20 s, so a hung binary
 * fails the test instead of hanging the suite.
 */
tu_output tu_capture(char *const argv[]);
void tu_output_free(tu_output *r);
/* Runs argv to completion, stderr to dir/cmd.err; false with why (incl. that stderr) if not. */
bool tu_run_ok(const char *dir, char *const argv[], char *why, size_t size);
/* Writes dir/openssl.cnf, which tu_make_test_ca and tu_make_test_certs use. */
bool tu_write_openssl_cnf(const char *dir, char *why, size_t size);
/* A self-signed CA, dir/prefix.pem and dir/prefix.key (dir/openssl.cnf must exist). */
bool tu_make_test_ca(const char *dir, const char *prefix, char *why, size_t size);
/* A throwaway CA (dir/ca.pem) and a certificate for 127.0.0.1 it signs (dir/server.pem, .key). */
bool tu_make_test_certs(const char *dir, char *why, size_t size);

/* tests/servers/cloudflare.py as started by tu_cloudflare_start. */
typedef struct {
	pid_t pid; /* -1 when not running */
	int in;    /* its stdin; -1 when closed */
	int api_port, control_port;
} tu_cloudflare;
#define TU_CLOUDFLARE_INIT                                                                         \
	{                                                                                          \
		-1, -1, 0, 0                                                                       \
	}

/*
 * Starts cloudflare.py with dir/server.pem and the token, and reads its ports
 * (10 s at most). On failure, false with why; s may still hold a process for
 * tu_cloudflare_stop, so a setup cleans up before failing.
 */
bool tu_cloudflare_start(tu_cloudflare *s, const char *dir, const char *token, char *why,
                         size_t size);
/* Closes its stdin, SIGTERM, SIGKILL if still there after 2 s; safe to call twice. */
void tu_cloudflare_stop(tu_cloudflare *s);
/* Its control API with plain libcurl, not the code under test; asserts HTTP 200 and JSON. */
json_t *tu_cloudflare_ctl(const tu_cloudflare *s, const char *method, const char *path,
                          const char *body);

/*
 * tests/servers/kubeapi.py, a strict Kubernetes API stand-in, as started by
 * tu_kubeapi_start: HTTPS with a throwaway CA, client certificates and bearer
 * tokens, a plain-HTTP control API (see the server's docstring).
 */
typedef struct {
	pid_t pid; /* -1 when not running */
	int in;    /* its stdin (it exits when this closes); -1 when closed */
	int port, control_port;
	char url[64];          /* https://127.0.0.1:<port> */
	char kubeconfig[300];  /* dir/kubeconfig: contexts "cert" (current), "token", "expired" */
	char ca[300];          /* dir/ca.pem: signs the server's and the client's certificates */
	char client_cert[300]; /* dir/client.pem, CN=admin O=system:masters */
	char client_key[300];
	char tokens[300];       /* dir/tokens.json as the server reads it */
	char token[64];         /* valid, user "ci" (groups "deployers") */
	char expired_token[64]; /* user "ci", expired an hour ago */
} tu_kubeapi;
#define TU_KUBEAPI_INIT                                                                            \
	{                                                                                          \
		.pid = -1, .in = -1                                                                \
	}

/* The one name kubeapi.py has a certificate for (DNS:kube.internal only), served when a
 * client asks for it by SNI: the tls-server-name tests' server name. */
#define TU_KUBEAPI_SNI_NAME "kube.internal"

/*
 * Makes the CA, a server certificate for 127.0.0.1 (and one for
 * TU_KUBEAPI_SNI_NAME), a client certificate, a
 * tokens file (a valid and an expired token, random) and dir/kubeconfig, then
 * starts kubeapi.py serving namespaces ("default,staging"; NULL: "default")
 * and reads its ports. Asserts (10 s at most); nothing is left running if it fails.
 */
void tu_kubeapi_start(tu_kubeapi *k, const char *dir, const char *namespaces);
/* POST /__control with json (one object with "op"); asserts HTTP 200; the answer (decref it). */
json_t *tu_kubeapi_control(const tu_kubeapi *k, const char *json);
/* The same without asserting: 0 once answered, *status and *text (malloc'd) the answer. */
int tu_kubeapi_control_status(const tu_kubeapi *k, const char *json, long *status, char **text);
/* GET /__requests: every API request so far, oldest first (decref it). */
json_t *tu_kubeapi_requests(const tu_kubeapi *k);
/* Closes its stdin, SIGTERM, SIGKILL if still there after 2 s; safe to call twice. */
void tu_kubeapi_stop(tu_kubeapi *k);

/* A real Prometheus over fixed data, as started by tu_prometheus_start. */
typedef struct {
	pid_t pid; /* 0 when not running */
	int port;
	char url[64]; /* http://127.0.0.1:<port> */
} tu_prometheus;

/*
 * Writes openmetrics (OpenMetrics text with timestamps in seconds, ending in
 * "# EOF") to dir/data.om, turns it into TSDB blocks in dir/tsdb with
 * `promtool tsdb create-blocks-from openmetrics`, and starts /usr/bin/prometheus
 * on a free loopback port with no scrape targets (log in dir/prometheus.log).
 * Returns once /-/ready answers 200 (10 s at most). Use fixed timestamps and
 * query at explicit times: the answers are then the same on every run. On
 * failure, false with why, and nothing left running.
 */
bool tu_prometheus_start(tu_prometheus *p, const char *dir, const char *openmetrics, char *why,
                         size_t size);
/* SIGTERM, SIGKILL if still there after 5 s; safe to call twice, or after a failed start. */
void tu_prometheus_stop(tu_prometheus *p);

/*
 * Collects what lib/ logs at min_level and above, one message per line, so a
 * test can look for a warning or prove a secret never reached the log.
 */
void tu_log_capture(int min_level);
const char *tu_log_text(void);
/* Back to no sink at all, as lib/ has in a program that installs none. */
void tu_log_capture_stop(void);

/*
 * A fleet of fake VMs (tests/sandbox/vms.sh): a real sshd per VM on
 * 127.0.1.<i> (one port for all), each in its own mount namespace with
 * root[i] bind-mounted over path, so every VM has the same vms.path and its
 * own files; and tests/servers/vmhealth.py answering
 * http://<address>:<health_port>/healthz with 200 and the live release's
 * name when root[i]/current/healthy exists, 503 otherwise. Log in as user
 * "root" with identity; known_hosts has every VM's host key.
 */
#define TU_VMS_MAX 64
typedef struct {
	int n;
	char dir[256];         /* <tmpdir>/vms: keys, configs, logs (vm<i>/sshd.log) */
	char path[300];        /* the deploy root every VM sees: vms.path */
	char identity[300];    /* the user's private key (ed25519, no passphrase) */
	char known_hosts[300]; /* "[127.0.1.<i>]:<port> ssh-ed25519 ..." per VM */
	char inventory[300];   /* a vms.inventory file: "127.0.1.<i>:<port>" a line */
	char hosts_yaml[300];  /* vms.hosts items: "- {name: vm-01, address: ..., port: ...}" */
	char home[300];        /* root's home, over which each VM mounts its own vm<i>/home */
	int port;              /* sshd's, on every address */
	int health_port;       /* vmhealth.py's, on every address */
	char address[TU_VMS_MAX][24]; /* "127.0.1.<i+1>" */
	char root[TU_VMS_MAX][300];   /* VM i's private files: what it sees at path */
	char name[TU_VMS_MAX][16];    /* "vm-01", ... as in hosts_yaml */
	pid_t pid[TU_VMS_MAX];        /* its sshd; 0 when stopped */
	pid_t health_pid;
	int health_in; /* vmhealth.py's stdin: it exits when this closes */
} tu_vms;

/*
 * `vms.sh prepare <tmpdir>/vms n`, then every sshd and the health server,
 * each killed if this test process dies (PR_SET_PDEATHSIG: call it from the
 * thread that runs the test, not a thread that ends before the test does);
 * returns once all accept connections. Asserts (1 <= n <= TU_VMS_MAX, all up
 * within 10 s, else the end of the failing sshd's log).
 */
void tu_vms_start(tu_vms *v, const char *tmpdir, int n);
/* Stops every sshd and the health server; safe to call twice or after a failed start. */
void tu_vms_stop(tu_vms *v);
/*
 * Stops VM i's sshd and starts it again, e.g. after a test changed its
 * dir/vm<i>/sshd_config or host keys; returns once it accepts connections.
 * Sessions already open stay up (each has its own sshd process).
 */
void tu_vms_restart(tu_vms *v, int i);
/* "SHA256:..." of VM i's host key (0-based), from ssh-keygen -l; asserts. */
void tu_vms_fingerprint(const tu_vms *v, int i, char *out, size_t size);
/* Removes VM i's line from known_hosts, as for a host never connected to before. */
void tu_vms_forget_host(const tu_vms *v, int i);
/*
 * Replaces VM i's key in known_hosts by a new key it does not have (as after
 * the host was reinstalled); the fingerprint known_hosts now has in *out.
 */
void tu_vms_change_host_key(const tu_vms *v, int i, char *out, size_t size);

/* A path or string built in one of 8 rotating 1 KiB buffers, valid until 8 more calls. */
const char *tu_at(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* $MIGRATE_BIN (set by `make integration`); asserts it is set. */
const char *tu_migrate_bin(void);
/* tu_capture of $MIGRATE_BIN with the arguments up to a NULL (at most 62). */
tu_output tu_migrate(const char *first, ...);
/* tu_migrate with "-p plan" before the arguments. */
tu_output tu_migrate_plan(const char *plan, const char *first, ...);
/* stdout as one JSON document (decref it); asserts, showing stdout and stderr if not. */
json_t *tu_json_doc(const tu_output *r);
/* Writes text to path (created or truncated); asserts. */
void tu_write_file(const char *path, const char *text);
/* Writes text to dir/name, making name's directories first (mkdir -p); asserts. */
void tu_write_file_in(const char *dir, const char *name, const char *text);
/* dir/art/app-<version>.tar.gz holding version.txt, and an empty `healthy` if healthy; asserts. */
void tu_make_artifact(const char *dir, const char *version, bool healthy);
/* The first n lines of v's hosts_yaml (0: all), each indented by 4 for a plan's vms.hosts. */
void tu_vms_hosts_lines(const tu_vms *v, int n, char *out, size_t size);
/* VM i's current link as the VM has it, "" when there is none (one of 4 rotating buffers). */
const char *tu_vms_current(const tu_vms *v, int i);

/*
 * A relay between migrate and HAProxy's runtime API (one command per
 * connection): listens on a unix socket and passes every call on to the
 * real one. Every `set weight` waits delay_ms first (a slow link); at the
 * first one, file (if set) is made immutable (chattr +i) before it is passed
 * on, so the balancer moves and the record that follows cannot be saved.
 */
typedef struct {
	int fd;
	pthread_t thread;
	char upstream[108]; /* sun_path */
	char file[512];
	int delay_ms;
	volatile int hooked; /* 1 once file was made immutable, -1 if it could not be */
} tu_relay;

/* Starts rl on listen_path; asserts. */
void tu_relay_start(tu_relay *rl, const char *listen_path, const char *upstream_path,
                    const char *file, int delay_ms);
void tu_relay_stop(tu_relay *rl);
/* chattr +i / -i of file: 0, or -1 where the file system has no such attribute. */
int tu_set_immutable(const char *file, bool on);
/* Replaces the one occurrence of from in the file at path by to; asserts. */
void tu_edit_file(const char *path, const char *from, const char *to);

/*
 * The state backend switch. MG_TEST_STATE_BACKEND=kubernetes runs the CLI
 * suites with their plans' state kept by `state: {backend: kubernetes}` in a
 * tests/servers/kubeapi.py the fixture starts (one per test, on loopback, in
 * <dir>/kubestate), instead of the local state directory; unset, "" or
 * "local": as the plans are written. Any other value fails the test.
 */
bool tu_state_kube(void);
/* "kubernetes" or "local", for messages. */
const char *tu_state_backend(void);
/*
 * Under the switch, replaces the plan file's top-level `state:` section (if
 * any) by one that keeps the state in the fixture's kubeapi.py (lease 5s),
 * started in dir/kubestate on the first call of a test; nothing otherwise.
 * Call it after writing a plan, and again after rewriting it whole.
 */
void tu_state_plan(const char *plan, const char *dir);
/* Stops the server tu_state_plan started (teardown, before removing dir); safe to call twice. */
void tu_state_stop(void);
/* The switch's server, or NULL when it is not running (for its control API). */
const tu_kubeapi *tu_state_server(void);

/*
 * The plan's store as every command opens it, wherever the plan keeps it
 * (mg_kube_store_open_plan; state_dir NULL: the plan's state.dir). The first
 * does not assert (for a forked child), the second does.
 */
int tu_state_store_open(mg_store **out, const char *plan, const char *state_dir, bool existing,
                        mg_error *err);
mg_store *tu_state_store(const char *plan, const char *state_dir, bool existing);
/* The plan's whole journal, oldest first, through its store; asserts none was skipped. */
json_t *tu_state_journal(const char *plan, const char *state_dir);
/* The journal as JSON lines, one compact record a line, oldest first (malloc'd). */
char *tu_state_journal_text(const char *plan, const char *state_dir);
/*
 * A document of the plan's store as text (malloc'd), NULL when there is
 * none: name "state", "fleet" or "manifests/<version>" (local: the file
 * <name>.json in the state directory; kubernetes: the ConfigMap's key).
 */
char *tu_state_doc_text(const char *plan, const char *state_dir, const char *name);
/*
 * Everything written to the state: local, the files of the plan's state
 * directory (journal.jsonl, state.json, fleet.json, lock) concatenated;
 * kubernetes, the body of every request that reached the fixture's server.
 * For proving a secret never reached it (malloc'd).
 */
char *tu_state_everything(const char *plan, const char *state_dir);
/* Replaces the plan's recorded state by text as it is (a damaged state.json / ConfigMap). */
void tu_state_write_raw(const char *plan, const char *state_dir, const char *text);
/*
 * Whether anything of the plan's state was written: local, whether local_dir
 * (the state directory) exists; kubernetes, whether any request but a read
 * reached the fixture's server.
 */
bool tu_state_written(const char *local_dir);
/*
 * Waits (bounded: 15 s) until no one holds the plan's lock. A holder killed
 * with SIGKILL leaves none in the state directory (the kernel drops its
 * flock) but keeps a Lease until it runs out (state.lease): a test that
 * crashes a command on purpose waits here before the next one. Returns how
 * long it waited in ms.
 */
int64_t tu_state_wait_unlocked(const char *plan, const char *state_dir);
/*
 * Under the switch, skips the test (counted by the runner's synthesis) with
 * why: it reads, damages or remounts the local state directory itself.
 */
void tu_state_local_only(const char *why);

#endif

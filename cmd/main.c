/* migrate: the command table and the entry point. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "log.h"
#include "suggest.h"

const mg_command mg_commands[] = {
    {"validate", cmd_validate, "check a plan and report every problem at once",
     "validate [options] [FILE...]", NULL,
     "Loads each plan (the operands, or -p FILE, or migrate.yaml) and reports every error "
     "and warning with file:line:col and the key path. Exit 0 when all are valid, 2 "
     "otherwise. Nothing is contacted and nothing is changed.",
     .operands = CLI_COMPLETE_PLAN},
    {"plan", cmd_plan, "show what the plan will do, changing nothing", "plan [options]", NULL,
     "Shows the hosts and batches, the templates, every traffic step with the VM and "
     "cluster weights the load balancer will be given, the gates with their expanded "
     "PromQL, and the bake times. Nothing is contacted and nothing is changed."},
    {"status", cmd_status, "show the recorded state of the migration and the live weights",
     "status [options] [--offline]",
     CLI_OPT_DOCS({.name = "offline", .help = "do not contact the balancer; the record only"}),
     "Shows the phase, the current step and weights, the versions deployed on each side, "
     "and who holds the lock, as recorded in the state directory, beside the balancer's live "
     "weights and health (a difference is shown as drift). With no state recorded (a fresh "
     "CI runner), the versions are rebuilt read-only from the hosts' current link and "
     "releases/ and the cluster's migrate/release annotations, and marked rebuilt. "
     "--offline reads only the record."},
    {"history", cmd_history, "show the journal of every action, newest last",
     "history [options] [--limit N] [--since TIME]",
     CLI_OPT_DOCS({.short_name = 'n',
                   .name = "limit",
                   .arg = "N",
                   .help = "show only the newest N records (read from the end)"},
                  {.name = "since",
                   .arg = "TIME",
                   .help = "show only records written at or after TIME (RFC 3339)"}),
     "Reads journal.jsonl: who did what, when, from which weights to which, why, and on "
     "which evidence. Torn lines left by a crash are reported as warnings and skipped. "
     "Records are read and printed one at a time, so a journal of any length costs the "
     "memory of one record; --limit reads only the end of the file."},
    {"deploy", cmd_deploy, "deploy a release to the VM fleet and the cluster at once",
     "deploy [options] [--version V] [--vms-only | --k8s-only] [--accept-new-host-keys]\n"
     "       [--reason TEXT] [--context NAME]",
     CLI_OPT_DOCS({.name = "version",
                   .arg = "V",
                   .help = "the release: build.artifact and build.image with\n"
                           "${version} = V (default: build.repo's HEAD, short id;\n"
                           "refused when tracked files have uncommitted changes)"},
                  {.name = "vms-only", .help = "deploy to the VM fleet alone"},
                  {.name = "k8s-only", .help = "deploy to the cluster alone"},
                  {.name = "accept-new-host-keys",
                   .help = "accept and record the key of a host known_hosts lacks\n"
                           "(a changed key is always refused)"},
                  {.name = "reason", .arg = "TEXT", .help = "why, for the journal"},
                  {.name = "context",
                   .arg = "NAME",
                   .help = "the kubeconfig context to use instead of kubernetes.context"}),
     "Deploys to every side the plan has, both at once. VMs: over SSH, at most vms.parallel "
     "hosts at once, batch by batch: uploads the artifact (skipped when the release is "
     "already complete on the host), checks its SHA-256, unpacks it into "
     "vms.path/releases/V, points vms.path/current at it, runs vms.activate and waits for "
     "vms.health.url; a host that fails goes back to its previous release; a batch that "
     "takes the failures above vms.max_failures stops the deploy. Cluster: renders "
     "kubernetes.configmaps and the templates for V (as `migrate configmap` and `migrate "
     "render`), applies them with server-side apply (field manager migrate; "
     "kubernetes.force_conflicts), ConfigMaps before Services, Deployments, HPAs, PDBs and "
     "Ingresses, records them under the state directory (manifests/V.json) and waits for "
     "every Deployment's, StatefulSet's and DaemonSet's rollout (kubernetes.rollout_timeout). "
     "One side failing leaves the "
     "other as it is. Exit 0 when both sides run V, 1 when a side failed, 2 for bad input "
     "(found before anything is contacted), 3 when locked. --dry-run lists each host's steps "
     "without connecting and sends each object as a server-side dry run (dryRun=All). See "
     "docs/vms.md and docs/kubernetes.md."},
    {"diff", cmd_diff, "show what a deploy would change on the cluster",
     "diff [options] [--version V] [--context NAME]",
     CLI_OPT_DOCS({.name = "version",
                   .arg = "V",
                   .help = "the release (default: build.repo's HEAD, as for deploy)"},
                  {.name = "context",
                   .arg = "NAME",
                   .help = "the kubeconfig context to use instead of kubernetes.context"}),
     "Renders the release as deploy does and sends each object as a server-side dry run "
     "(dryRun=All) against the live object; prints the fields that would change, \"(new)\" "
     "objects and \"(no changes)\". Nothing is persisted. Exit 0 when nothing would change, "
     "1 when something would (as `kubectl diff`), 2 for bad input, 4 when the cluster could "
     "not be asked."},
    {"step", cmd_step, "move traffic to the next step, after the bake, with read-back",
     "step [options] [--to PERCENT] [--force --reason TEXT] [--adopt] [--allow-skew]",
     CLI_OPT_DOCS({.name = "to",
                   .arg = "PERCENT",
                   .help = "go to this step of traffic.steps instead of the next"},
                  {.name = "force",
                   .help = "step before the bake has passed, without passing gates,\n"
                           "while paused, or towards servers the balancer reports\n"
                           "down; needs --reason"},
                  {.name = "reason", .arg = "TEXT", .help = "why, for the journal"},
                  {.name = "adopt", .help = "take weights changed by hand as the current position"},
                  {.name = "allow-skew",
                   .help = "step although the VMs and the cluster run different\n"
                           "releases (journalled)"}),
     "Journals an intent, sets the balancer's weights for the next step in one call, reads "
     "them back, and journals the result. Refuses while the current step has baked for less "
     "than traffic.bake (exit 4), while paused (exit 3), when the gates of the step it leaves "
     "fail (exit 1) or are inconclusive (exit 4; see `migrate check`), and when the weights "
     "were changed by hand since migrate last set them (exit 3; see --adopt). An "
     "interrupted step or rollback is reconciled from the balancer first. Refuses (exit 3) "
     "while the VMs and the cluster run different releases (see --allow-skew), and when "
     "the state moved while it waited for the lock (another step went first). Exit 5 when "
     "the weights moved but the result could not be recorded. --dry-run prints the exact "
     "balancer calls."},
    {"rollback", cmd_rollback, "move traffic back to the VMs in one balancer call",
     "rollback [options] [--to PERCENT] [--force] [--reason TEXT]\n"
     "       migrate rollback [options] --release [--vms-only | --k8s-only]\n"
     "       [--accept-new-host-keys] [--reason TEXT] [--context NAME]",
     CLI_OPT_DOCS(
         {.name = "to", .arg = "PERCENT", .help = "back to this earlier step instead of 0%"},
         {.name = "force", .help = "even if every VM server is reported down"},
         {.name = "reason", .arg = "TEXT", .help = "why, for the journal"},
         {.name = "release",
          .help = "switch the VM fleet and the cluster back to the release each\n"
                  "ran before the last deploy (traffic is untouched)"},
         {.name = "vms-only", .joined = true},
         {.name = "k8s-only", .help = "with --release: one side only"},
         {.name = "accept-new-host-keys", .help = "with --release: as for deploy"},
         {.name = "context",
          .arg = "NAME",
          .help = "with --release: the kubeconfig context to use instead of\n"
                  "kubernetes.context"}),
     "Sets the balancer so the VMs get all traffic (or the share of an earlier step), reads "
     "it back, then journals and records it. Never waits behind the autopilot: a `migrate "
     "run` holding the lock is told to stop first; exit 3 only when another step or "
     "rollback is in flight. Never stopped by the state directory either: when it is "
     "read-only or full, or state.json cannot be read, traffic still moves, and it exits 5 "
     "with the read-back and the record it could not write, on stderr, to keep. --dry-run prints the exact balancer calls. With --release it moves no traffic: "
     "it switches every VM back to the release recorded before the last deploy, with the "
     "deploy's batches, activate and health checks (see docs/vms.md), and applies the "
     "manifests recorded for the cluster's previous release again and waits for the "
     "rollouts; both sides at once, exit 1 when either fails. With no state recorded (a "
     "fresh CI runner), where to go back is read from the hosts' releases/ and the "
     "Deployments' migrate/previous-release annotation; what cannot be read back is exit "
     "2, naming it."},
    {"check", cmd_check, "evaluate the SLO gates once and show every check",
     "check [options] [--at TIME] [--since TIME]",
     CLI_OPT_DOCS(
         {.name = "at", .arg = "TIME", .help = "evaluate at this RFC 3339 time instead of now"},
         {.name = "since",
          .arg = "TIME",
          .help = "take this as the start of the current step (for the window)"}),
     "Queries Prometheus for every check of slo (the RED presets and slo.checks) over "
     "slo.window, clamped to the time since the current step began, and shows each value, "
     "threshold and verdict. Exit 0 when all pass, 1 when one fails, 4 when none fails but "
     "one is inconclusive (too little traffic, no data, Prometheus unreachable). Changes "
     "nothing."},
    {"run", cmd_run, "the autopilot: step to 100% while the gates pass, roll back if not",
     "run [options] [--until PERCENT] [--allow-skew] [--metrics-addr HOST:PORT]\n"
     "       [--leader-elect]",
     CLI_OPT_DOCS({.name = "until",
                   .arg = "PERCENT",
                   .help = "stop after reaching this step of traffic.steps"},
                  {.name = "allow-skew",
                   .help = "move traffic although the VMs and the cluster run different\n"
                           "releases (journalled), as step --allow-skew"},
                  {.name = "metrics-addr",
                   .arg = "HOST:PORT",
                   .help = "serve /metrics (Prometheus), /healthz and /readyz there\n"
                           "(:PORT: every IPv4 interface; [::]:PORT: every one)"},
                  {.name = "leader-elect",
                   .help = "lead, or wait as a standby and take over when the leader\n"
                           "is gone (needs the plan's state in the cluster)"}),
     "From the current step, evaluates the gates every slo.interval; after traffic.bake with "
     "passing gates it takes the next step. slo.failure_limit failed evaluations at a step "
     "apply slo.on_failure (rollback or pause) and exit 1; inconclusive for 3 x bake pauses "
     "and exits 4. SIGINT or SIGTERM stops it with the weights where they are (exit 130 or "
     "143); `migrate rollback` and `migrate pause` from another terminal take effect within "
     "a second. Exit 0 when it reaches 100% (or --until)."},
    {"pause", cmd_pause, "hold the migration (and a running autopilot) at its weights",
     "pause [options] [--reason TEXT]",
     CLI_OPT_DOCS({.name = "reason", .arg = "TEXT", .help = "why, for the journal"}),
     "Marks the migration paused: `step` and `run` refuse until `migrate resume`. A running "
     "autopilot is asked to pause and confirms within a second; it keeps running, holding the "
     "weights, until resumed or stopped. Rollback is always allowed."},
    {"resume", cmd_resume, "release a pause", "resume [options] [--reason TEXT]",
     CLI_OPT_DOCS({.name = "reason", .arg = "TEXT", .help = "why, for the journal"}),
     "Releases a pause: a running autopilot continues at once and evaluates the gates again; "
     "otherwise the migration is back to shifting, with the gate failures of the step "
     "forgotten. Exit 0 also when nothing was paused."},
    {"state", cmd_state, "copy the plan's state between a directory and the cluster",
     "state push [options] [--force]\n"
     "       migrate state pull [options] [--force] DIR",
     CLI_OPT_DOCS({.name = "force",
                   .help = "push: replace the state the cluster already has (its\n"
                           "journal is kept; the pushed records follow it);\n"
                           "pull: write into a DIR that is not empty"}),
     "For a plan with state.backend: kubernetes. push copies the local state directory "
     "(state.dir or --state-dir: state.json, fleet.json, manifests/, journal.jsonl) into "
     "the cluster, holding both locks, and journals a \"state push\" record; the records "
     "keep their time, operator and order and are numbered after the cluster's last. It "
     "refuses (exit 3, naming the revision and journal length there) when the cluster "
     "already has state for the plan, unless --force. --dry-run says what would be copied. "
     "pull copies the cluster's state into DIR (created 0700; files 0600) in the layout of a "
     "state directory, for inspection; it reads only and takes no lock. A plan whose state "
     "is local: exit 2.",
     .subcommands = "push pull", .operands = CLI_COMPLETE_DIR},
    {"unlock", cmd_unlock, "take the plan's lock from a holder that is gone (state in the cluster)",
     "unlock [options] --force --reason TEXT",
     CLI_OPT_DOCS({.name = "force", .help = "required: the holder may still be at work"},
                  {.name = "reason", .arg = "TEXT", .help = "required: why, for the journal"}),
     "As terraform force-unlock: takes the Lease migrate-<plan> over from its holder "
     "whether or not it is alive, names the holder displaced (user@host, pid, command) and "
     "journals it with the reason, then releases the lock, so the next command gets it at "
     "once. The displaced holder's next write is refused (fencing token). Nobody holding "
     "it: says so, exit 0. Without --force or --reason: exit 2. With state.backend: local, "
     "exit 2: that lock is a flock the kernel releases when its holder dies, so there is "
     "never a stale one. --dry-run names the holder and changes nothing."},
    {"configmap", cmd_configmap, "render a legacy nginx tree as a ConfigMap, linted and checked",
     "configmap [options] [FILE] [--name N] [--namespace NS]",
     CLI_OPT_DOCS(
         {.name = "name",
          .arg = "N",
          .help = "the ConfigMap's name (required with FILE; with a plan, render\n"
                  "only that kubernetes.configmaps entry)"},
         {.name = "namespace",
          .arg = "NS",
          .help = "metadata.namespace (default: the plan's kubernetes.namespace)"},
         {.name = "prefix",
          .arg = "DIR",
          .help = "where relative includes resolve (default: FILE's directory)"},
         {.name = "mount-path",
          .arg = "DIR",
          .help = "where the pod mounts the tree (default: /etc/nginx)",
          .complete = CLI_COMPLETE_NONE /* a directory in the pod, not here */},
         {.name = "secret",
          .arg = "NAME",
          .help = "the Secret that holds the files secret directives name\n"
                  "(certificates, keys, htpasswd): they are then not errors"},
         {.name = "hash-suffix", .help = "name it NAME-<hash10> and make it immutable"},
         {.name = "fix-logs", .help = "access_log/error_log files become /dev/stdout, /dev/stderr"},
         {.name = "allow-errors", .help = "print the manifest and exit 0 despite lint errors"},
         {.name = "no-verify", .help = "do not run nginx -t on the rendered files"},
         {.name = "nginx",
          .arg = "BIN",
          .help = "the nginx to check with (default: nginx in PATH or /usr/sbin)"},
         {.name = "json", .help = "print the parsed tree (crossplane's shape) and the findings"},
         {.name = "comments", .help = "with --json: keep comments"},
         {.short_name = 'o', .arg = "yaml|json", .help = "the manifest as YAML (default) or JSON"}),
     "Reads FILE and every file it includes (or each kubernetes.configmaps[].from_nginx of "
     "the plan), lints it for a pod (secrets, log files, unix sockets, VM addresses, pinned "
     "process settings, image paths; findings on stderr with their fix), renders one "
     "ConfigMap with a key per file, the volume projection and a content checksum, and "
     "checks the rendered files with the real nginx -t laid out as the pod sees them. Only "
     "the manifest goes to stdout, and only when it may be applied. Exit 0 when it may, 1 "
     "for lint errors (unless --allow-errors), a failed nginx -t or a ConfigMap over 1 MiB, "
     "2 for a parse error or bad usage. See docs/configmap.md.",
     .operands = CLI_COMPLETE_FILE},
    {"render", cmd_render, "print the plan's Kubernetes manifests for a release",
     "render [options] --version V",
     CLI_OPT_DOCS({.name = "version",
                   .arg = "V",
                   .help = "the release: ${version} in the templates and build.image"},
                  {.short_name = 'o',
                   .arg = "yaml|json",
                   .help = "YAML documents (default) or one JSON List"}),
     "Reads every *.yaml and *.yml file of kubernetes.templates in name order, fills in "
     "${version}, ${image}, ${plan.name}, ${namespace}, ${values.KEY} and "
     "${configmap.NAME.name|checksum|items} (each ConfigMap rendered from its nginx tree as "
     "`migrate configmap` does) inside the parsed YAML values, and prints the objects. "
     "Nothing is contacted. Exit 0 when every template rendered, 2 for a template error "
     "(file:line:col), a bad --version or plan. See docs/kubernetes.md."},
    {"report", cmd_report, "a page of the migration: traffic, verdicts, errors and latency",
     "report [options] [--since TIME] [--until TIME] [-o html|svg|json] [--out FILE]",
     CLI_OPT_DOCS({.name = "since",
                   .arg = "TIME",
                   .help = "from TIME (RFC 3339; default: the journal's first record)"},
                  {.name = "until", .arg = "TIME", .help = "to TIME (RFC 3339; default: now)"},
                  {.name = "out",
                   .arg = "FILE",
                   .help = "write to FILE (atomically) instead of standard output"},
                  {.short_name = 'o',
                   .arg = "html|svg|json",
                   .help = "a self-contained HTML page (default), its charts as one SVG,\n"
                           "or the report's model as one JSON document"}),
     "Reads the journal (wherever the plan keeps its state) and charts the period: the "
     "share of traffic to the cluster as applied and as read back, a marker for every step, "
     "gate verdict, pause, rollback and deploy with its reason on hover, and, from "
     "Prometheus range queries of the plan's slo.red preset, requests, error rate and "
     "latency per side; then a summary (duration, steps, rollbacks, time at each step) and "
     "every event. The page loads nothing from anywhere (no script, font or link). Without "
     "slo.red, or when Prometheus does not answer, the report is made from the journal "
     "alone and says so (exit 0). Exit 2 for a bad time or an empty period, 1 when the "
     "journal cannot be read or FILE cannot be written. Changes nothing."},
    {"help", cmd_help, "show help for migrate or one of its commands", "help [COMMAND]", NULL, NULL,
     .operands = CLI_COMPLETE_COMMAND},
    {0},
};

const mg_command *mg_command_find(const char *name)
{
	/* "state push" is the entry of "state": a subcommand's help is its command's */
	size_t n = name ? strcspn(name, " ") : 0;
	for (const mg_command *c = mg_commands; name && c->name; c++)
		if (!strncmp(c->name, name, n) && !c->name[n])
			return c;
	return NULL;
}

const cli_opt_doc cli_global_docs[] = {
    {.short_name = 'p',
     .name = "plan",
     .arg = "FILE",
     .help = "the migration plan (default: migrate.yaml)",
     .complete = CLI_COMPLETE_PLAN},
    {.name = "state-dir",
     .arg = "DIR",
     .help = "where state and journal live (default: the plan's state.dir)"},
    {.short_name = 'o',
     .name = "output",
     .arg = "FMT",
     .help = "text (default) or json: one JSON document on stdout\n"
             "(report: html (default), svg or json)",
     .values = "text json"},
    {.name = "dry-run", .help = "show what would change, change nothing"},
    {.short_name = 'v', .name = "verbose", .help = "say more on stderr (twice for debug)"},
    {.name = "no-color", .help = "no colour (also NO_COLOR=1; colour is only used on a terminal)"},
    {.short_name = 'h', .name = "help", .help = "show help"},
    {.name = "version", .help = "show migrate's version and commit", .before_command = true},
    {0},
};

const char cli_about[] = "Move a live service from a VM fleet to Kubernetes, step by step.";

const char cli_exit_help[] = "Exit status: 0 done, 1 failed, 2 bad usage or invalid input, "
                             "3 locked, paused or state moved, 4 inconclusive, 5 traffic moved "
                             "but not recorded; `run`, `deploy` "
                             "and `rollback --release` stopped by SIGINT or SIGTERM: 130 or "
                             "143.\n";

/* The label column is 22 wide; a longer label puts the help on the next line. */
#define OPT_COLUMN 22

void cli_print_opt_docs(FILE *f, const cli_opt_doc *docs)
{
	for (const cli_opt_doc *d = docs; d && (d->name || d->short_name); d++) {
		char label[128];
		size_t n = 0;
		for (;; d++) {
			if (d->short_name && d->name)
				n += (size_t)snprintf(label + n, sizeof(label) - n, "%s-%c, --%s",
				                      n ? ", " : "  ", d->short_name, d->name);
			else if (d->short_name)
				n += (size_t)snprintf(label + n, sizeof(label) - n, "%s-%c",
				                      n ? ", " : "  ", d->short_name);
			else
				n += (size_t)snprintf(label + n, sizeof(label) - n, "%s--%s",
				                      n ? ", " : "      ", d->name);
			if (d->arg)
				n += (size_t)snprintf(label + n, sizeof(label) - n, " %s", d->arg);
			if (n >= sizeof(label))
				n = sizeof(label) - 1;
			if (!d->joined || !(d[1].name || d[1].short_name))
				break;
		}
		const char *h = d->help ? d->help : "";
		if (n < OPT_COLUMN + 1)
			fprintf(f, "%-*s ", OPT_COLUMN - 1, label);
		else
			fprintf(f, "%s\n%*s", label, OPT_COLUMN, "");
		for (;;) {
			size_t len = strcspn(h, "\n");
			fprintf(f, "%.*s\n", (int)len, h);
			if (!h[len])
				break;
			h += len + 1;
			fprintf(f, "%*s", OPT_COLUMN, "");
		}
	}
}

void cli_print_overview(FILE *f)
{
	fprintf(f,
	        "usage: migrate [options] <command> [args]\n\n"
	        "%s\n\n"
	        "Commands:\n",
	        cli_about);
	for (const mg_command *c = mg_commands; c->name; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
	fprintf(f, "\nOptions (for every command):\n");
	cli_print_opt_docs(f, cli_global_docs);
	fprintf(f,
	        "\n%s"
	        "See 'migrate help <command>' and docs/cli.md.\n",
	        cli_exit_help);
}

void cli_print_command_help(FILE *f, const mg_command *cmd)
{
	if (!cmd) {
		cli_print_overview(f);
		return;
	}
	fprintf(f, "usage: migrate %s\n\n%s.\n", cmd->usage, cmd->summary);
	if (cmd->details)
		fprintf(f, "\n%s\n", cmd->details);
	if (cmd->options) {
		fprintf(f, "\nOptions:\n");
		cli_print_opt_docs(f, cmd->options);
	}
	fprintf(f, "\nGlobal options:\n");
	cli_print_opt_docs(f, cli_global_docs);
	fprintf(f, "\n%s", cli_exit_help);
}

int cmd_help(mg_cli *cli, int argc, char **argv)
{
	int exit_code = EXIT_DONE;
	int i = cli_parse(cli, argc, argv, NULL, 1, &exit_code);
	if (i < 0)
		return exit_code;
	if (i >= argc) {
		cli_print_overview(stdout);
		return EXIT_DONE;
	}
	const mg_command *c = mg_command_find(argv[i]);
	if (!c)
		return cli_usage_error(cli, "no such command \"%s\"", argv[i]);
	cli_print_command_help(stdout, c);
	return EXIT_DONE;
}

static void log_sink(mg_log_level level, const char *msg, void *ud)
{
	mg_cli *cli = ud;
	/* -v may come after the command name: decide here, not when the sink was installed */
	mg_log_level min = cli->verbose >= 2 ? MG_LOG_DEBUG
	                   : cli->verbose    ? MG_LOG_INFO
	                                     : MG_LOG_WARN;
	if (level < min)
		return;
	static const char *const names[] = {"debug", "info", "warning", "error"};
	static const char *const colors[] = {C_DIM, C_CYAN, C_YELLOW, C_RED};
	fprintf(stderr, "%s%s:%s %s\n", cli_c(cli->color_err, colors[level]), names[level],
	        cli_c(cli->color_err, C_RESET), msg);
}

static void print_version(mg_cli *cli)
{
	const char *rev = MG_GITREV;
	if (cli->json) {
		json_t *doc = json_pack("{s:s, s:s}", "command", "version", "version", MG_VERSION);
		if (*rev)
			json_object_set_new(doc, "commit", json_string(rev));
		cli_doc_emit(cli, doc, EXIT_DONE);
	} else {
		printf("migrate %s%s%s%s\n", MG_VERSION, *rev ? " (" : "", rev, *rev ? ")" : "");
	}
}

/* Out of the table, so out of help, the man page and the completions (cmd/generate.c). */
static const mg_command hidden_commands[] = {
    {"__generate", cmd_generate, "write migrate(1) or a shell completion",
     "__generate man [DATE] | bash | zsh", NULL, NULL},
    {"__complete", cmd_complete, "print the plan's traffic steps, one a line", "__complete steps",
     NULL, NULL},
    {0},
};

enum { OPT_VERSION = 2000 };

int main(int argc, char **argv)
{
	cli_output_init(); /* before anything is printed */
	mg_cli cli = {.plan_path = "migrate.yaml"};
	struct option opts[16];
	size_t n = 0;
	for (; cli_global_longopts[n].name; n++)
		opts[n] = cli_global_longopts[n];
	opts[n++] = (struct option){"version", no_argument, NULL, OPT_VERSION};
	opts[n] = (struct option){NULL, 0, NULL, 0};

	/* A usage error can come before -o json is parsed; CI still gets its JSON document. */
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--output=json") || !strcmp(argv[i], "-ojson") ||
		    ((!strcmp(argv[i], "-o") || !strcmp(argv[i], "--output")) && i + 1 < argc &&
		     !strcmp(argv[i + 1], "json")))
			cli.json = true;
	for (int i = 1; i < argc; i++)
		cli.no_color |= !strcmp(argv[i], "--no-color");
	cli.color_err = cli_color_allowed(&cli, STDERR_FILENO);

	/* Global options may come before the command; '+' stops at the command name. */
	int exit_code = EXIT_DONE;
	bool help = false, version = false;
	opterr = 0;
	for (;;) {
		int prev = optind;
		int opt = getopt_long(argc, argv, "+:" CLI_GLOBAL_SHORTOPTS, opts, NULL);
		if (opt == -1)
			break;
		if (opt == '?' || opt == ':')
			return cli_usage_error(
			    &cli, opt == '?' ? "unknown option '%s'" : "option '%s' needs a value",
			    argv[prev]);
		if (opt == 'h')
			help = true;
		else if (opt == OPT_VERSION)
			version = true;
		else if (cli_global_option(&cli, opt, optarg, &exit_code) < 0)
			return exit_code;
	}
	mg_log_set(log_sink, &cli, MG_LOG_DEBUG);
	cli.color_err = cli_color_allowed(&cli, STDERR_FILENO);
	if (version) {
		print_version(&cli);
		return EXIT_DONE;
	}
	if (optind >= argc) {
		if (help) {
			cli_print_overview(stdout);
			return EXIT_DONE;
		}
		cli_print_overview(stderr);
		return cli.json ? cli_usage_error(&cli, "no command given") : EXIT_USAGE;
	}
	const char *name = argv[optind];
	const mg_command *cmd = mg_command_find(name);
	for (const mg_command *h = hidden_commands; !cmd && h->name; h++)
		if (!strcmp(h->name, name))
			cmd = h;
	if (!cmd) {
		const char *names[32];
		size_t k = 0;
		for (const mg_command *c = mg_commands; c->name && k < 31; c++)
			names[k++] = c->name;
		names[k] = NULL;
		const char *s = mg_suggest(name, names);
		if (s)
			return cli_usage_error(
			    &cli, "'%s' is not a migrate command; did you mean '%s'?", name, s);
		return cli_usage_error(&cli, "'%s' is not a migrate command; see 'migrate help'",
		                       name);
	}
	cli.command = cmd->name;
	if (help) {
		cli_print_command_help(stdout, cmd);
		return EXIT_DONE;
	}
	return cmd->run(&cli, argc - optind, argv + optind);
}

/* What every command shares: options, output, errors. */
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "suggest.h"

enum { OPT_STATE_DIR = 1000, OPT_DRY_RUN, OPT_NO_COLOR };

const struct option cli_global_longopts[] = {
    {"plan", required_argument, NULL, 'p'},   {"state-dir", required_argument, NULL, OPT_STATE_DIR},
    {"output", required_argument, NULL, 'o'}, {"dry-run", no_argument, NULL, OPT_DRY_RUN},
    {"verbose", no_argument, NULL, 'v'},      {"no-color", no_argument, NULL, OPT_NO_COLOR},
    {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
};

mg_cancel cli_signal;

static void on_signal(int sig)
{
	cli_signal = sig;
}

int cli_signals_catch(void)
{
	struct sigaction sa = {.sa_handler = on_signal}, ign = {.sa_handler = SIG_IGN};
	sigemptyset(&sa.sa_mask);
	sigemptyset(&ign.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL) ||
	    sigaction(SIGPIPE, &ign, NULL))
		return -1;
	return 0;
}

bool cli_color_allowed(const mg_cli *cli, int fd)
{
	const char *nc = getenv("NO_COLOR"); /* no-color.org: set and non-empty */
	const char *term = getenv("TERM");
	return !cli->no_color && !(nc && *nc) && !(term && !strcmp(term, "dumb")) && isatty(fd);
}

int cli_global_option(mg_cli *cli, int opt, const char *arg, int *exit_code)
{
	switch (opt) {
	case 'p':
		cli->plan_path = arg;
		return 1;
	case OPT_STATE_DIR:
		cli->state_dir = arg;
		return 1;
	case 'o':
		if (!strcmp(arg, "json")) {
			cli->json = true;
			cli->yaml = false;
		} else if (!strcmp(arg, "text") || !strcmp(arg, "yaml") || !strcmp(arg, "html") ||
		           !strcmp(arg, "svg")) {
			/* yaml is the text output of the commands that print manifests, html and
			   svg report's; whether this command is one is checked once it is known
			   (cli_parse) */
			cli->json = false;
			cli->yaml = !strcmp(arg, "yaml");
		} else {
			*exit_code = cli_usage_error(
			    cli, "--output takes text, json, yaml, html or svg, not \"%s\"", arg);
			return -1;
		}
		cli->output = arg;
		return 1;
	case OPT_DRY_RUN:
		cli->dry_run = true;
		return 1;
	case 'v':
		cli->verbose++;
		return 1;
	case OPT_NO_COLOR:
		cli->no_color = true;
		return 1;
	}
	return 0;
}

/* getopt values of the command's options: past every global one and every byte */
#define CMD_OPT_BASE 0x1000

/* The global options and the command's, as getopt_long wants them (freed by the caller). */
static struct option *all_options(const cli_opt *opts, char *shortopts, size_t size)
{
	size_t ng = 0, nc = 0;
	while (cli_global_longopts[ng].name)
		ng++;
	while (opts && opts[nc].name)
		nc++;
	struct option *all = calloc(ng + nc + 1, sizeof(*all));
	if (!all)
		return NULL;
	memcpy(all, cli_global_longopts, ng * sizeof(*all));
	size_t n = (size_t)snprintf(shortopts, size, ":%s", CLI_GLOBAL_SHORTOPTS);
	for (size_t i = 0; i < nc; i++) {
		bool arg = opts[i].kind == CLI_OPT_STRING;
		all[ng + i] = (struct option){.name = opts[i].name,
		                              .has_arg = arg ? required_argument : no_argument,
		                              .val = opts[i].short_name ? opts[i].short_name
		                                                        : CMD_OPT_BASE + (int)i};
		if (opts[i].short_name && n + 3 < size) {
			shortopts[n++] = opts[i].short_name;
			if (arg)
				shortopts[n++] = ':';
			shortopts[n] = '\0';
		}
	}
	return all;
}

/* Stores one of the command's options; 0 if opt is not one of them. */
static int store_option(const cli_opt *opts, int opt, const char *arg)
{
	for (size_t i = 0; opts && opts[i].name; i++) {
		if (opt != (opts[i].short_name ? opts[i].short_name : CMD_OPT_BASE + (int)i))
			continue;
		if (opts[i].kind == CLI_OPT_FLAG)
			*(bool *)opts[i].value = true;
		else
			*(const char **)opts[i].value = arg;
		return 1;
	}
	return 0;
}

static void unknown_option(mg_cli *cli, const char *word, const struct option *opts)
{
	const char *names[128];
	size_t n = 0;
	for (size_t i = 0; opts[i].name && n < 127; i++)
		names[n++] = opts[i].name;
	names[n] = NULL;
	const char *bare = word;
	while (*bare == '-')
		bare++;
	char name[64];
	snprintf(name, sizeof(name), "%.*s", (int)strcspn(bare, "="), bare);
	const char *s = word[1] == '-' ? mg_suggest(name, names) : NULL;
	if (s)
		cli_usage_error(cli, "unknown option '%s'; did you mean '--%s'?", word, s);
	else
		cli_usage_error(cli, "unknown option '%s'", word);
}

static const cli_opt_doc *doc_find(const cli_opt_doc *docs, const char *name, char short_name)
{
	for (const cli_opt_doc *d = docs; d && (d->name || d->short_name); d++)
		if (name ? d->name && !strcmp(d->name, name) : d->short_name == short_name)
			return d;
	return NULL;
}

static bool global_short(char c)
{
	return c && strchr(CLI_GLOBAL_SHORTOPTS, c) && c != ':';
}

/*
 * With MG_CHECK_OPTIONS set in the environment (tests/install.sh runs every
 * command's --help so): the options a command parses (opts) and those its
 * help, man page and completions show (the table of cmd/main.c) must be the
 * same, names, short names and arguments, and so must the global ones.
 * Prints each difference; -1 if there is one.
 */
static int check_option_docs(const mg_cli *cli, const cli_opt *opts)
{
	const mg_command *cmd = mg_command_find(cli->command);
	const cli_opt_doc *docs = cmd ? cmd->options : NULL;
	int bad = 0;
	for (size_t i = 0; opts && opts[i].name; i++) {
		const cli_opt_doc *d = doc_find(docs, opts[i].name, 0);
		if (!d || d->short_name != opts[i].short_name ||
		    !d->arg != (opts[i].kind == CLI_OPT_FLAG))
			bad = fprintf(stderr, "%s: --%s is parsed but not shown as it is parsed\n",
			              cli->command, opts[i].name);
	}
	for (const cli_opt_doc *d = docs; d && (d->name || d->short_name); d++) {
		bool parsed = false;
		for (size_t i = 0; d->name && opts && opts[i].name; i++)
			parsed |= !strcmp(opts[i].name, d->name);
		/* -o yaml|json: a global option the command describes again */
		if (!parsed && !(d->name ? doc_find(cli_global_docs, d->name, 0) != NULL
		                         : global_short(d->short_name)))
			bad = fprintf(stderr, "%s: --%s is shown but not parsed\n", cli->command,
			              d->name ? d->name : "?");
	}
	for (size_t i = 0; cli_global_longopts[i].name; i++) {
		const struct option *o = &cli_global_longopts[i];
		const cli_opt_doc *d = doc_find(cli_global_docs, o->name, 0);
		if (!d || !d->arg != (o->has_arg == no_argument) ||
		    d->short_name != (o->val < 256 ? o->val : 0))
			bad =
			    fprintf(stderr, "global option --%s is parsed but not shown as it is\n",
			            o->name);
	}
	for (const cli_opt_doc *d = cli_global_docs; d->name || d->short_name; d++) {
		bool parsed = d->before_command; /* --version: main's own */
		for (size_t i = 0; cli_global_longopts[i].name; i++)
			parsed |= d->name && !strcmp(cli_global_longopts[i].name, d->name);
		if (!parsed)
			bad = fprintf(stderr, "global option --%s is shown but not parsed\n",
			              d->name ? d->name : "?");
	}
	return bad ? -1 : 0;
}

/* What -o may say for the command, for messages. */
static const char *cli_formats(const mg_cli *cli)
{
	return !strcmp(cli->command, "report") ? "html (the default), svg or json" : "text or json";
}

int cli_parse(mg_cli *cli, int argc, char **argv, const cli_opt *opts, int max_operands,
              int *exit_code)
{
	if (getenv("MG_CHECK_OPTIONS") && check_option_docs(cli, opts)) {
		*exit_code = EXIT_FAILED;
		return -1;
	}
	char shortopts[128];
	struct option *all = all_options(opts, shortopts, sizeof(shortopts));
	if (!all) {
		*exit_code = EXIT_FAILED;
		return -1;
	}

	int rc = 0;
	optind = 0; /* glibc: start over, main() already used getopt */
	opterr = 0;
	for (;;) {
		int prev = optind ? optind : 1;
		int opt = getopt_long(argc, argv, shortopts, all, NULL);
		if (opt == -1)
			break;
		if (opt == '?') {
			const char *word = optopt && optopt < 256 && argv[prev][1] != '-'
			                       ? (char[]){'-', (char)optopt, 0}
			                       : argv[prev];
			unknown_option(cli, word, all);
			rc = -1;
			*exit_code = EXIT_USAGE;
			break;
		}
		if (opt == ':') {
			cli_usage_error(cli, "option '%s' needs a value", argv[prev]);
			rc = -1;
			*exit_code = EXIT_USAGE;
			break;
		}
		if (opt == 'h') {
			cli_print_command_help(stdout, mg_command_find(cli->command));
			*exit_code = EXIT_DONE;
			rc = -1;
			break;
		}
		int g = cli_global_option(cli, opt, optarg, exit_code);
		if (g < 0) {
			rc = -1;
			break;
		}
		if (g == 0)
			store_option(opts, opt, optarg);
	}
	free(all);
	cli->color_out = cli_color_allowed(cli, STDOUT_FILENO);
	cli->color_err = cli_color_allowed(cli, STDERR_FILENO);
	if (rc == 0 && cli->yaml && strcmp(cli->command, "configmap") != 0 &&
	    strcmp(cli->command, "render") != 0) {
		*exit_code = cli_usage_error(cli,
		                             "--output yaml is for configmap and render; `migrate "
		                             "%s` prints %s",
		                             cli->command, cli_formats(cli));
		return -1;
	}
	if (rc == 0 && cli->output && strcmp(cli->command, "report") != 0 &&
	    (!strcmp(cli->output, "html") || !strcmp(cli->output, "svg"))) {
		*exit_code =
		    cli_usage_error(cli, "--output %s is for report; `migrate %s` prints %s",
		                    cli->output, cli->command, cli_formats(cli));
		return -1;
	}
	if (rc == 0 && max_operands >= 0 && argc - optind > max_operands) {
		*exit_code =
		    cli_usage_error(cli, "unexpected argument '%s'", argv[optind + max_operands]);
		return -1;
	}
	return rc < 0 ? -1 : optind;
}

int cli_exit_code(int mg_code)
{
	switch (mg_code) {
	case MG_OK:
		return EXIT_DONE;
	case MG_EINVALID:
	case MG_ENOTFOUND:
		return EXIT_USAGE;
	case MG_ELOCKED:
	case MG_ECONFLICT:
		return EXIT_LOCKED;
	case MG_EINCONCLUSIVE:
		return EXIT_INCONCLUSIVE;
	case MG_EUNRECORDED:
		return EXIT_UNRECORDED;
	default:
		return EXIT_FAILED;
	}
}

json_t *cli_doc(const mg_cli *cli)
{
	return json_pack("{s:s, s:b, s:i}", "command", cli->command ? cli->command : "migrate",
	                 "ok", 1, "exit_code", 0);
}

int cli_doc_emit(mg_cli *cli, json_t *doc, int exit_code)
{
	(void)cli;
	json_object_set_new(doc, "ok", json_boolean(exit_code == EXIT_DONE));
	json_object_set_new(doc, "exit_code", json_integer(exit_code));
	char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
	fflush(stdout);
	json_decref(doc);
	return exit_code;
}

int cli_usage_error(mg_cli *cli, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	bool c = cli->color_err;
	const char *cmd = cli->command ? cli->command : NULL;
	fprintf(stderr, "%smigrate%s%s: %serror:%s %s\n", cli_c(c, C_BOLD), cmd ? " " : "",
	        cmd ? cmd : "", cli_c(c, C_RED), cli_c(c, C_RESET), msg);
	fprintf(stderr, "Run 'migrate %s%s--help' for usage.\n", cmd ? cmd : "", cmd ? " " : "");
	if (cli->json) {
		json_t *doc = cli_doc(cli);
		json_object_set_new(doc, "error", mg_error_json(NULL, MG_EINVALID, msg));
		cli_doc_emit(cli, doc, EXIT_USAGE);
	}
	return EXIT_USAGE;
}

int cli_parse_time(mg_cli *cli, const char *name, const char *arg, int64_t *out)
{
	if (mg_time_parse(out, arg) < 0) {
		cli_usage_error(cli, "%s %s: not an RFC 3339 UTC time like 2026-11-22T03:00:00Z",
		                name, arg);
		return -1;
	}
	return 0;
}

static void print_diag(bool c, const mg_diag *d);

void cli_print_diags(mg_cli *cli, const mg_error *err)
{
	bool c = cli->color_err;
	/* a hostile or mangled file can have a million problems; the first ones say enough */
	if (err && err->ndiags > CLI_MAX_DIAGS) {
		for (size_t i = 0; i < CLI_MAX_DIAGS; i++)
			print_diag(c, &err->diags[i]);
		fprintf(stderr, "... and %zu more problems (only the first %d are shown)\n",
		        err->ndiags - CLI_MAX_DIAGS, CLI_MAX_DIAGS);
		return;
	}
	for (size_t i = 0; err && i < err->ndiags; i++)
		print_diag(c, &err->diags[i]);
}

static void print_diag(bool c, const mg_diag *d)
{
	char line[2048];
	mg_diag_format(line, sizeof(line), d);
	if (d->severity == MG_SEV_WARNING)
		fprintf(stderr, "%swarning:%s %s\n", cli_c(c, C_YELLOW), cli_c(c, C_RESET), line);
	else
		fprintf(stderr, "%s\n", line);
}

int cli_fail(mg_cli *cli, mg_error *err)
{
	return cli_fail_doc(cli, err, NULL);
}

int cli_fail_doc(mg_cli *cli, mg_error *err, json_t *doc)
{
	int exit_code = cli_exit_code(err->code ? err->code : MG_ERROR);
	bool c = cli->color_err;
	cli_print_diags(cli, err);
	fprintf(stderr, "%serror:%s %s\n", cli_c(c, C_RED), cli_c(c, C_RESET), err->message);
	if (cli->json) {
		if (!doc)
			doc = cli_doc(cli);
		json_object_set_new(doc, "error", mg_error_json(err, MG_ERROR, NULL));
		cli_doc_emit(cli, doc, exit_code);
	} else {
		json_decref(doc);
	}
	return exit_code;
}

int cli_load_plan(mg_cli *cli, mg_plan **out, unsigned needs, mg_error *err)
{
	int rc = mg_plan_load(out, cli->plan_path, 0, err);
	if (rc)
		return rc;
	cli_print_diags(cli, err); /* warnings; stderr, so JSON on stdout stays clean */
	mg_error_clear(err);
	rc = mg_plan_require(*out, needs, cli->command, err);
	if (rc) {
		mg_plan_free(*out);
		*out = NULL;
	}
	return rc;
}

const char *cli_state_dir(const mg_cli *cli, const mg_plan *plan)
{
	return cli->state_dir ? cli->state_dir : mg_plan_state_dir(plan);
}

const char *cli_state_where(const mg_cli *cli, const mg_plan *plan, char *buf, size_t size)
{
	const mg_plan_state *s = mg_plan_state_section(plan);
	if (s->backend == MG_STATE_KUBERNETES)
		snprintf(buf, size, "kubernetes %s/migrate-%s (Lease and ConfigMaps)",
		         s->namespace_ ? s->namespace_ : "(the context's namespace)",
		         mg_plan_name(plan));
	else
		snprintf(buf, size, "%s/%s", cli_state_dir(cli, plan), mg_plan_name(plan));
	return buf;
}

/*
 * The CLI front end: a git-style table of commands, one file each. Commands
 * turn lib/ results into text on a terminal or one JSON document for CI, and
 * lib/ error codes into the documented exit codes.
 */
#ifndef MG_CMD_H
#define MG_CMD_H

#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "clock.h"
#include "error.h"
#include "fleet.h"
#include "plan.h"

/* Exit codes: the same for every command (docs/cli.md). */
enum {
	EXIT_DONE = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_LOCKED = 3,
	EXIT_INCONCLUSIVE = 4,
	EXIT_UNRECORDED = 5, /* traffic moved and was read back; the record could not be written */
};

typedef struct {
	const char *plan_path; /* -p; default migrate.yaml */
	const char *state_dir; /* --state-dir; overrides the plan's state.dir */
	bool json;             /* -o json */
	bool yaml;             /* -o yaml: only the commands that print manifests take it */
	const char *output;    /* -o as given (NULL: none): report takes html and svg too */
	bool dry_run;
	int verbose;
	bool color_out; /* stdout is a terminal and colour is allowed */
	bool color_err;
	bool no_color;
	const char *command;
} mg_cli;

/*
 * What a shell completes for an option's argument or a command's operands
 * (migrate __generate bash|zsh). CLI_COMPLETE_AUTO goes by the argument's
 * name: FILE a file, DIR a directory, PERCENT one of the plan's
 * traffic.steps, BIN a program, "a|b" those words; anything else nothing.
 */
typedef enum {
	CLI_COMPLETE_AUTO = 0,
	CLI_COMPLETE_NONE,
	CLI_COMPLETE_FILE,
	CLI_COMPLETE_PLAN, /* a *.yaml or *.yml file */
	CLI_COMPLETE_DIR,
	CLI_COMPLETE_STEP, /* one of the plan's traffic.steps (migrate __complete steps) */
	CLI_COMPLETE_PROGRAM,
	CLI_COMPLETE_COMMAND, /* a migrate command */
} cli_complete;

/*
 * One option as --help, the man page and the shell completions show it: the
 * one description of an option (cli_opt, below, is how it is parsed; with
 * MG_CHECK_OPTIONS set, cli_parse checks that the two agree). A table of
 * them ends with {0}; CLI_OPT_DOCS(...) makes one in place.
 */
typedef struct {
	char short_name;    /* 0: none */
	const char *name;   /* the long name without "--"; NULL: the short one alone */
	const char *arg;    /* the argument as shown ("N", "TIME", "yaml|json"); NULL: a flag */
	const char *help;   /* as --help wraps it: lines joined by '\n', no final one */
	const char *values; /* the argument's words for completion, space-separated; NULL: from
	                       arg when it is "a|b" */
	cli_complete complete;
	bool joined;         /* shown on one line with the next entry, whose help it shares */
	bool before_command; /* only before the command's name (--version) */
} cli_opt_doc;
#define CLI_OPT_DOCS(...)                                                                          \
	(const cli_opt_doc[])                                                                      \
	{                                                                                          \
		__VA_ARGS__,                                                                       \
		{                                                                                  \
			0                                                                          \
		}                                                                                  \
	}

typedef struct mg_command {
	const char *name;
	int (*run)(mg_cli *cli, int argc, char **argv);
	const char *summary;
	const char *usage;          /* after "migrate " */
	const cli_opt_doc *options; /* the command's own options (CLI_OPT_DOCS), or NULL */
	const char *details;        /* a paragraph, or NULL */
	const char *subcommands;    /* words that follow the name ("push pull"), or NULL */
	cli_complete operands;      /* what its operands are; AUTO: it takes none */
} mg_command;

extern const mg_command mg_commands[];
const mg_command *mg_command_find(const char *name);
/* The options of every command (-p, -o, ...), as --help shows them. */
extern const cli_opt_doc cli_global_docs[];
/* The line under the usage of `migrate help`; the man page's NAME. */
extern const char cli_about[];
/* The exit status paragraph of --help. */
extern const char cli_exit_help[];
/* Prints one table of options as --help does (columns, wrapped lines). */
void cli_print_opt_docs(FILE *f, const cli_opt_doc *docs);

int cmd_validate(mg_cli *cli, int argc, char **argv);
int cmd_plan(mg_cli *cli, int argc, char **argv);
int cmd_status(mg_cli *cli, int argc, char **argv);
int cmd_history(mg_cli *cli, int argc, char **argv);
int cmd_deploy(mg_cli *cli, int argc, char **argv);
int cmd_step(mg_cli *cli, int argc, char **argv);
int cmd_rollback(mg_cli *cli, int argc, char **argv);
int cmd_check(mg_cli *cli, int argc, char **argv);
int cmd_configmap(mg_cli *cli, int argc, char **argv);
int cmd_render(mg_cli *cli, int argc, char **argv);
int cmd_diff(mg_cli *cli, int argc, char **argv);
int cmd_run(mg_cli *cli, int argc, char **argv);
int cmd_pause(mg_cli *cli, int argc, char **argv);
int cmd_resume(mg_cli *cli, int argc, char **argv);
int cmd_state(mg_cli *cli, int argc, char **argv);
int cmd_unlock(mg_cli *cli, int argc, char **argv);
int cmd_report(mg_cli *cli, int argc, char **argv);
int cmd_help(mg_cli *cli, int argc, char **argv);
/* Hidden, not in the table (cmd/generate.c): the man page and completions, the plan's steps. */
int cmd_generate(mg_cli *cli, int argc, char **argv);
int cmd_complete(mg_cli *cli, int argc, char **argv);

/*
 * deploy and rollback --release (cmd/deploy.c): both sides, or the one the
 * flags or the plan leave, through lib/release. version NULL for a deploy:
 * build.repo's HEAD. context (--context; may be NULL) replaces
 * kubernetes.context.
 */
int cmd_release(mg_cli *cli, mg_fleet_op op, const char *version, bool vms_only, bool k8s_only,
                bool accept_new, const char *reason, const char *context);

/*
 * A command's own options, as a table (git's parse-options in miniature):
 * parsing stores each value where the table says, so a command states its
 * options once and checks how they combine afterwards. The table ends with
 * {0}. A flag stores true into a bool; a string stores its argument (or
 * NULL when absent) into a const char *.
 */
typedef enum { CLI_OPT_FLAG = 1, CLI_OPT_STRING } cli_opt_kind;
typedef struct {
	const char *name; /* the long name, without "--" */
	char short_name;  /* 0: none */
	cli_opt_kind kind;
	void *value; /* bool * or const char ** */
} cli_opt;
#define CLI_FLAG(n, p)                                                                             \
	{                                                                                          \
		.name = (n), .kind = CLI_OPT_FLAG, .value = (p)                                    \
	}
#define CLI_STRING(n, p)                                                                           \
	{                                                                                          \
		.name = (n), .kind = CLI_OPT_STRING, .value = (p)                                  \
	}
#define CLI_STRING_S(n, s, p)                                                                      \
	{                                                                                          \
		.name = (n), .short_name = (s), .kind = CLI_OPT_STRING, .value = (p)               \
	}

/* Option parsing shared by every command: the global options plus the command's own (opts,
 * may be NULL). Returns the index of the first operand, or -1 with *exit_code set (after
 * --help, or on a usage error already reported, such as more than max_operands operands). */
int cli_parse(mg_cli *cli, int argc, char **argv, const cli_opt *opts, int max_operands,
              int *exit_code);
#define CLI_ANY_OPERANDS (-1)

/*
 * SIGINT and SIGTERM set cli_signal (the signal's number) instead of killing
 * the process, without SA_RESTART so a sleep or a read ends when the operator
 * asks; SIGPIPE is ignored (a host or a reader that goes away fails that
 * write, not the process). Long commands pass &cli_signal to lib/ as their
 * cancel flag and exit 128 + the signal. 0, or -1 if a handler cannot be set.
 */
extern mg_cancel cli_signal;
int cli_signals_catch(void);

/* Whether colour may be written to fd: a terminal, no NO_COLOR, TERM not dumb, no --no-color. */
bool cli_color_allowed(const mg_cli *cli, int fd);

/* Applies one global option (also used by main before the command name); 1 if it was one. */
int cli_global_option(mg_cli *cli, int opt, const char *arg, int *exit_code);
extern const struct option cli_global_longopts[];
#define CLI_GLOBAL_SHORTOPTS "p:o:vh"

/* Maps an MG_E* code to an exit code. */
int cli_exit_code(int mg_code);

/* A usage error: message on stderr (and a JSON error document with -o json); returns 2. */
int cli_usage_error(mg_cli *cli, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An RFC 3339 time given to option name; a usage error (reported, -1) otherwise. */
int cli_parse_time(mg_cli *cli, const char *name, const char *arg, int64_t *out);

/* Reports err (its diagnostics and message) and returns the matching exit code. */
int cli_fail(mg_cli *cli, mg_error *err);
/*
 * As cli_fail, but with -o json the envelope is doc (taken; may be NULL): what
 * the command learnt before it failed (the gates that refused a step) stays in
 * the output beside the error.
 */
int cli_fail_doc(mg_cli *cli, mg_error *err, json_t *doc);

/* Prints err's diagnostics to stderr (errors and warnings), at most CLI_MAX_DIAGS of them. */
#define CLI_MAX_DIAGS 100
void cli_print_diags(mg_cli *cli, const mg_error *err);

/* A JSON document with the common envelope: {"command", "ok", "exit_code", ...}. */
json_t *cli_doc(const mg_cli *cli);
/* Sets ok/exit_code, prints to stdout, frees it, returns exit_code. */
int cli_doc_emit(mg_cli *cli, json_t *doc, int exit_code);

/* Loads the plan named by -p and checks that it has the sections the command needs. */
int cli_load_plan(mg_cli *cli, mg_plan **out, unsigned needs, mg_error *err);
/* The state directory: --state-dir, or the plan's. */
const char *cli_state_dir(const mg_cli *cli, const mg_plan *plan);
/* Where the plan's state is, for people: "<dir>/<name>", or the cluster's objects. */
const char *cli_state_where(const mg_cli *cli, const mg_plan *plan, char *buf, size_t size);

/*
 * Colours and cursor moves for text output, empty when off. A marker that only
 * the output filter turns into the code: the one way our codes reach the terminal.
 */
const char *cli_c(bool on, const char *code);
/* Installs the output filter (cmd/output.c) on stdout and stderr; first thing in main. */
void cli_output_init(void);
#define C_BOLD       "\033[1m"
#define C_DIM        "\033[2m"
#define C_RED        "\033[31m"
#define C_GREEN      "\033[32m"
#define C_YELLOW     "\033[33m"
#define C_CYAN       "\033[36m"
#define C_RESET      "\033[0m"
#define C_CLEAR_LINE "\r\033[K" /* back to the start of the line and clear it */
#define C_UP         "\033[A"   /* one line up */
#define C_CLEAR_DOWN "\033[J"   /* clear to the end of the screen */

void cli_print_command_help(FILE *f, const mg_command *cmd);
void cli_print_overview(FILE *f);

#endif

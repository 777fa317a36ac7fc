/*
 * Hidden commands, kept out of the command table (so out of help, the man
 * page and the completions):
 *
 *   migrate __generate man [DATE]   migrate(1), as roff
 *   migrate __generate bash         the bash completion
 *   migrate __generate zsh          the zsh completion (_migrate)
 *   migrate [-p FILE] __complete steps
 *                                   the plan's traffic.steps, one a line, for
 *                                   the completions of --to and --until
 *
 * The three generated files come from the command table of cmd/main.c, the
 * data --help prints, so none of them can say something else: `make
 * install` runs them (docs/cli.md, "Installing").
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "buildinfo.h"
#include "cmd.h"
#include "units.h"

/* What an option's argument or a command's operands complete to, resolved from CLI_COMPLETE_AUTO;
 * WORDS: the argument's own words (d->values, or "a|b"). */
enum { KIND_WORDS = 100 };

static int arg_kind(const cli_opt_doc *d)
{
	if (d->complete != CLI_COMPLETE_AUTO)
		return (int)d->complete;
	if (!d->arg)
		return CLI_COMPLETE_NONE;
	if (d->values || strchr(d->arg, '|'))
		return KIND_WORDS;
	if (!strcmp(d->arg, "FILE"))
		return CLI_COMPLETE_FILE;
	if (!strcmp(d->arg, "DIR"))
		return CLI_COMPLETE_DIR;
	if (!strcmp(d->arg, "PERCENT"))
		return CLI_COMPLETE_STEP;
	if (!strcmp(d->arg, "BIN"))
		return CLI_COMPLETE_PROGRAM;
	return CLI_COMPLETE_NONE;
}

/* The argument's words, space-separated, into buf. */
static const char *arg_words(const cli_opt_doc *d, char *buf, size_t size)
{
	snprintf(buf, size, "%s", d->values ? d->values : d->arg ? d->arg : "");
	for (char *p = buf; *p; p++)
		if (*p == '|')
			*p = ' ';
	return buf;
}

static bool doc_end(const cli_opt_doc *d)
{
	return !d->name && !d->short_name;
}

/* A joined entry shares the help of the next that is not joined. */
static const char *doc_help(const cli_opt_doc *d)
{
	while (d->joined && !doc_end(d + 1))
		d++;
	return d->help ? d->help : "";
}

/* Whether the command's own table has an option of that short or long name (it then replaces
 * the global one: configmap's and render's -o yaml|json). */
static bool overrides(const cli_opt_doc *own, const cli_opt_doc *g)
{
	for (const cli_opt_doc *d = own; d && !doc_end(d); d++)
		if ((g->short_name && d->short_name == g->short_name) ||
		    (g->name && d->name && !strcmp(d->name, g->name)))
			return true;
	return false;
}

/* The table's shapes the generators rely on; a mistake in cmd/main.c fails the build here. */
static int check_docs(const char *where, const cli_opt_doc *docs)
{
	for (const cli_opt_doc *d = docs; d && !doc_end(d); d++) {
		if (d->joined ? doc_end(d + 1) : !d->help || !*d->help) {
			fprintf(stderr, "migrate __generate: %s: --%s has no help line\n", where,
			        d->name ? d->name : "?");
			return -1;
		}
		for (const char *p = d->name; p && *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '-') {
				fprintf(stderr, "migrate __generate: %s: bad option name \"%s\"\n",
				        where, d->name);
				return -1;
			}
	}
	return 0;
}

static int check_table(void)
{
	if (check_docs("global options", cli_global_docs))
		return -1;
	for (const mg_command *c = mg_commands; c->name; c++) {
		if (check_docs(c->name, c->options))
			return -1;
		for (const char *p = c->name; *p; p++)
			if (!islower((unsigned char)*p) && *p != '-') {
				fprintf(stderr, "migrate __generate: bad command name \"%s\"\n",
				        c->name);
				return -1;
			}
	}
	return 0;
}

/* ---- migrate(1) ------------------------------------------------------------------------- */

/*
 * Text for roff, filled: backslashes and dashes escaped, `code` in bold, line
 * breaks as spaces, the few non-ASCII characters the table has as groff's own
 * glyphs (any other fails: it would render differently with each locale).
 */
static int roff_text(FILE *f, const char *s)
{
	static const struct {
		const char *utf8, *roff;
	} glyphs[] = {{"\xe2\x80\x94", "\\(em"},
	              {"\xc3\x97", "\\(mu"},
	              {"\xe2\x80\xa6", "..."},
	              {"\xe2\x86\x92", "\\(->"},
	              {"\xe2\x88\x92", "\\-"}};
	bool code = false;
	if (*s == '.' || *s == '\'')
		fputs("\\&", f);
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '`') {
			fputs(code ? "\\fR" : "\\fB", f);
			code = !code;
		} else if (c == '\\') {
			fputs("\\e", f);
		} else if (c == '-') {
			fputs("\\-", f);
		} else if (c == '\n') {
			fputc(' ', f);
		} else if (c >= 0x80) {
			size_t i = 0, n = sizeof(glyphs) / sizeof(glyphs[0]);
			while (i < n && strncmp(p, glyphs[i].utf8, strlen(glyphs[i].utf8)))
				i++;
			if (i == n) {
				fprintf(stderr,
				        "migrate __generate: no roff glyph for the character at "
				        "\"%.20s\"\n",
				        p);
				return -1;
			}
			fputs(glyphs[i].roff, f);
			p += strlen(glyphs[i].utf8) - 1;
		} else {
			fputc(c, f);
		}
	}
	if (code) {
		fprintf(stderr, "migrate __generate: unclosed ` in \"%.40s\"\n", s);
		return -1;
	}
	return 0;
}

/* One usage form: --options and literal words bold, PLACEHOLDERS and "options" italic; an
 * option and its argument are never split over two lines. */
static void roff_usage(FILE *f, const char *s, size_t len)
{
	size_t i = 0;
	bool after_option = false;
	if (len && (*s == '.' || *s == '\''))
		fputs("\\&", f);
	while (i < len) {
		size_t n = 0;
		while (i + n < len &&
		       (isalnum((unsigned char)s[i + n]) || strchr("-_:.", s[i + n])))
			n++;
		if (!n) {
			if (s[i] == '\\')
				fputs("\\e", f);
			else if (s[i] == ' ' && after_option && i + 1 < len &&
			         isupper((unsigned char)s[i + 1]))
				fputs("\\ ", f);
			else
				fputc(s[i], f);
			after_option = false;
			i++;
			continue;
		}
		after_option = s[i] == '-';
		bool upper = false, lower = false;
		for (size_t k = 0; k < n; k++) {
			upper |= isupper((unsigned char)s[i + k]) != 0;
			lower |= islower((unsigned char)s[i + k]) != 0;
		}
		bool italic =
		    (upper && !lower && s[i] != '-') || (n == 7 && !strncmp(s + i, "options", 7));
		fputs(italic ? "\\fI" : "\\fB", f);
		for (size_t k = 0; k < n; k++)
			fputs(s[i + k] == '-' ? "\\-" : (char[]){s[i + k], 0}, f);
		fputs("\\fR", f);
		i += n;
	}
}

/* The usage of a command: each "migrate ..." form in a .SY block, its wrapped lines joined. */
static void roff_synopsis(FILE *f, const mg_command *c)
{
	const char *u = c->usage;
	while (*u) {
		/* a form ends where a line starts with "migrate " again */
		const char *end = u;
		for (;;) {
			end = strchr(end, '\n');
			if (!end) {
				end = u + strlen(u);
				break;
			}
			const char *next = end + strspn(end, "\n ");
			if (!strncmp(next, "migrate ", 8))
				break;
			end++;
		}
		/* after "NAME " (the first form) or "migrate NAME " (the others) */
		const char *rest = u;
		if (!strncmp(rest, "migrate ", 8))
			rest += 8;
		rest += strcspn(rest, " \n");
		rest += strspn(rest, " ");
		fprintf(f, ".SY \"migrate %s\"\n", c->name);
		/* the rest on one line, wrapped lines joined by one space */
		char line[1024];
		size_t n = 0;
		for (const char *p = rest; p < end && n + 1 < sizeof(line); p++) {
			if (*p == '\n') {
				line[n++] = ' ';
				p += strspn(p + 1, " ");
				continue;
			}
			line[n++] = *p;
		}
		roff_usage(f, line, n);
		fputs("\n.YS\n", f);
		u = *end ? end + 1 + strspn(end + 1, " ") : end;
	}
}

static int roff_options(FILE *f, const cli_opt_doc *docs)
{
	for (const cli_opt_doc *d = docs; d && !doc_end(d); d++) {
		fputs(".TP\n", f);
		for (;; d++) {
			if (d->short_name)
				fprintf(f, "\\fB\\-%c\\fR%s", d->short_name, d->name ? ", " : "");
			if (d->name) {
				fputs("\\fB\\-\\-", f);
				for (const char *p = d->name; *p; p++)
					fputs(*p == '-' ? "\\-" : (char[]){*p, 0}, f);
				fputs("\\fR", f);
			}
			if (d->arg)
				fprintf(f, " \\fI%s\\fR", d->arg);
			if (!d->joined || doc_end(d + 1))
				break;
			fputs(", ", f);
		}
		fputc('\n', f);
		if (roff_text(f, doc_help(d)))
			return -1;
		fputc('\n', f);
	}
	return 0;
}

/* The first letter in capitals and a full stop: the summaries are written as --help's. */
static int roff_sentence(FILE *f, const char *s)
{
	char buf[512];
	snprintf(buf, sizeof(buf), "%s", s);
	buf[0] = (char)toupper((unsigned char)buf[0]);
	if (roff_text(f, buf))
		return -1;
	fputs(".\n", f);
	return 0;
}

static int gen_man(FILE *f, const char *date)
{
	fprintf(f,
	        ".\\\" migrate(1), written by `migrate __generate man` from the command table of\n"
	        ".\\\" cmd/main.c (what --help prints): change the table, not this file.\n"
	        ".TH MIGRATE 1 \"%s\" \"migrate %s\" \"User Commands\"\n"
	        ".\\\" option names and file names are not to be hyphenated, lines not justified\n"
	        ".nr HY 0\n"
	        ".nh\n"
	        ".ad l\n"
	        ".SH NAME\n"
	        "migrate \\- ",
	        date, mg_buildinfo_version());
	char about[256];
	snprintf(about, sizeof(about), "%s", cli_about);
	about[0] = (char)tolower((unsigned char)about[0]);
	about[strcspn(about, ".")] = '\0';
	if (roff_text(f, about))
		return -1;
	fputs("\n.SH SYNOPSIS\n"
	      ".SY migrate\n"
	      "[\\fIoptions\\fR] \\fIcommand\\fR [\\fIargs\\fR]\n"
	      ".YS\n"
	      ".SH DESCRIPTION\n"
	      "\\fBmigrate\\fR moves a live, stateless service from a fleet of VMs to Kubernetes\n"
	      "without a cut\\-over: an external load balancer (HAProxy, nginx or Cloudflare)\n"
	      "sends a growing share of traffic to the cluster in steps, and each step has to\n"
	      "hold on Prometheus RED metrics (request rate, error rate, latency) before the\n"
	      "next one starts.\n"
	      "The whole migration is described in one YAML plan file,\n"
	      ".BR migrate\\-plan (5),\n"
	      "named by \\fB\\-p\\fR or \\fBmigrate.yaml\\fR in the current directory.\n"
	      ".PP\n"
	      "Options may come before or after the command's name.\n"
	      "\\fBmigrate help\\fR \\fIcommand\\fR and \\fBmigrate\\fR \\fIcommand\\fR "
	      "\\fB\\-\\-help\\fR\n"
	      "print what this page says of a command.\n"
	      ".SH OPTIONS\n"
	      "These options are taken by every command.\n",
	      f);
	if (roff_options(f, cli_global_docs))
		return -1;
	fputs(".SH COMMANDS\n", f);
	for (const mg_command *c = mg_commands; c->name; c++) {
		fprintf(f, ".SS %s\n", c->name);
		roff_synopsis(f, c);
		fputs(".PP\n", f);
		if (roff_sentence(f, c->summary))
			return -1;
		if (c->details) {
			fputs(".PP\n", f);
			if (roff_text(f, c->details))
				return -1;
			fputc('\n', f);
		}
		if (c->options && roff_options(f, c->options))
			return -1;
	}
	const char *exit_text = cli_exit_help;
	if (!strncmp(exit_text, "Exit status: ", 13))
		exit_text += 13;
	char buf[1024];
	snprintf(buf, sizeof(buf), "%s", exit_text);
	buf[strcspn(buf, "\n")] = '\0';
	fputs(".SH EXIT STATUS\n", f);
	if (roff_text(f, buf))
		return -1;
	fputs("\n.SH ENVIRONMENT\n"
	      ".TP\n"
	      ".B NO_COLOR\n"
	      "set and not empty: no colour, as \\fB\\-\\-no\\-color\\fR.\n"
	      ".SH FILES\n"
	      ".TP\n"
	      ".B migrate.yaml\n"
	      "the plan, when there is no \\fB\\-p\\fR.\n"
	      ".TP\n"
	      ".I state.dir/name/\n"
	      "the lock, the state and the journal of a plan whose state is local\n"
	      "(\\fBstate.dir\\fR defaults to \\fB.migrate\\fR beside the plan).\n"
	      ".TP\n"
	      ".I share/migrate/\n"
	      "under the installation prefix: Kubernetes manifest templates, example plans\n"
	      "and examples (CI jobs, the in\\-cluster autopilot).\n"
	      ".SH SEE ALSO\n"
	      ".BR migrate\\-plan (5)\n"
	      ".PP\n"
	      "The documentation in the \\fBdocs\\fR directory of migrate's source: cli.md (every\n"
	      "command, its output and JSON), plan.md, gates.md, vms.md, kubernetes.md,\n"
	      "configmap.md and autopilot.md.\n",
	      f);
	return 0;
}

/* ---- bash ----------------------------------------------------------------------------------- */

static const char *kind_name(int kind, const cli_opt_doc *d, char *buf, size_t size)
{
	switch (kind) {
	case CLI_COMPLETE_FILE:
		return "file";
	case CLI_COMPLETE_PLAN:
		return "plan";
	case CLI_COMPLETE_DIR:
		return "dir";
	case CLI_COMPLETE_STEP:
		return "step";
	case CLI_COMPLETE_PROGRAM:
		return "program";
	case CLI_COMPLETE_COMMAND:
		return "command";
	case KIND_WORDS: {
		char words[256];
		snprintf(buf, size, "'words %s'", arg_words(d, words, sizeof(words)));
		return buf;
	}
	default:
		return "none";
	}
}

/* "-x | --long" patterns of one option for a case arm, prefixed by "cmd:". */
static void bash_patterns(FILE *f, const char *cmd, const cli_opt_doc *d)
{
	if (d->short_name)
		fprintf(f, "%s:-%c", cmd, d->short_name);
	if (d->name)
		fprintf(f, "%s%s:--%s", d->short_name ? " | " : "", cmd, d->name);
}

/* The option words of docs, each after a space unless *first; before_command: --version too. */
static void bash_words(FILE *f, const cli_opt_doc *docs, bool *first, bool before_command)
{
	for (const cli_opt_doc *d = docs; d && !doc_end(d); d++) {
		if (d->before_command && !before_command)
			continue;
		if (d->short_name) {
			fprintf(f, "%s-%c", *first ? "" : " ", d->short_name);
			*first = false;
		}
		if (d->name) {
			fprintf(f, "%s--%s", *first ? "" : " ", d->name);
			*first = false;
		}
	}
}

static int gen_bash(FILE *f)
{
	fputs("# bash completion for migrate(1): commands, options, plan files, the plan's steps.\n"
	      "# Written by `migrate __generate bash` from the command table of cmd/main.c (what\n"
	      "# --help prints): change the table, not this file.\n\n"
	      "_migrate_commands='",
	      f);
	for (const mg_command *c = mg_commands; c->name; c++)
		fprintf(f, "%s%s", c == mg_commands ? "" : " ", c->name);
	fputs("'\n\n"
	      "# _migrate_arg CMD OPTION: _migrate_kind is what OPTION's argument completes to;\n"
	      "# fails when OPTION takes none.\n"
	      "_migrate_arg()\n{\n\tcase $1:$2 in\n",
	      f);
	char buf[300];
	for (const mg_command *c = mg_commands; c->name; c++)
		for (const cli_opt_doc *d = c->options; d && !doc_end(d); d++) {
			if (!d->arg)
				continue;
			fputs("\t", f);
			bash_patterns(f, c->name, d);
			fprintf(f, ") _migrate_kind=%s ;;\n",
			        kind_name(arg_kind(d), d, buf, sizeof(buf)));
		}
	for (const cli_opt_doc *d = cli_global_docs; !doc_end(d); d++) {
		if (!d->arg)
			continue;
		fputs("\t", f);
		bash_patterns(f, "*", d);
		fprintf(f, ") _migrate_kind=%s ;;\n", kind_name(arg_kind(d), d, buf, sizeof(buf)));
	}
	fputs(
	    "\t*) return 1 ;;\n\tesac\n}\n\n"
	    "# _migrate_words CMD: CMD's options in _migrate_opts (with no CMD: those before one),\n"
	    "# its subcommands in _migrate_sub, what its operands are in _migrate_operands.\n"
	    "_migrate_words()\n{\n"
	    "\t_migrate_sub= _migrate_operands=none\n"
	    "\tcase $1 in\n"
	    "\t'') _migrate_opts='",
	    f);
	bool first = true;
	bash_words(f, cli_global_docs, &first, true);
	fputs("' ;;\n", f);
	for (const mg_command *c = mg_commands; c->name; c++) {
		fprintf(f, "\t%s) _migrate_opts='", c->name);
		first = true;
		bash_words(f, c->options, &first, false);
		for (const cli_opt_doc *g = cli_global_docs; !doc_end(g); g++)
			if (!overrides(c->options, g))
				bash_words(f, (cli_opt_doc[]){*g, {0}}, &first, false);
		fputc('\'', f);
		if (c->subcommands)
			fprintf(f, " _migrate_sub='%s'", c->subcommands);
		if (c->operands != CLI_COMPLETE_AUTO)
			fprintf(f, " _migrate_operands=%s",
			        kind_name((int)c->operands, NULL, buf, sizeof(buf)));
		fputs(" ;;\n", f);
	}
	fputs("\t*) _migrate_opts= ;;\n\tesac\n}\n\n", f);
	fputs(
	    "# _migrate_reply KIND WORD PROGRAM: COMPREPLY from what KIND says.\n"
	    "_migrate_reply()\n{\n"
	    "\tcase $1 in\n"
	    "\tplan)\n"
	    "\t\tcompopt -o filenames 2>/dev/null\n"
	    "\t\tmapfile -t COMPREPLY < <(compgen -d -- \"$2\"; compgen -f -X '!*.yaml' -- \"$2\";\n"
	    "\t\t\tcompgen -f -X '!*.yml' -- \"$2\") ;;\n"
	    "\tfile)\n"
	    "\t\tcompopt -o filenames 2>/dev/null\n"
	    "\t\tmapfile -t COMPREPLY < <(compgen -f -- \"$2\") ;;\n"
	    "\tdir)\n"
	    "\t\tcompopt -o filenames 2>/dev/null\n"
	    "\t\tmapfile -t COMPREPLY < <(compgen -d -- \"$2\") ;;\n"
	    "\tprogram) mapfile -t COMPREPLY < <(compgen -c -- \"$2\") ;;\n"
	    "\tcommand) mapfile -t COMPREPLY < <(compgen -W \"$_migrate_commands\" -- \"$2\") ;;\n"
	    "\tstep)\n"
	    "\t\tlocal plan=${_migrate_plan/#\\~\\//$HOME/}\n"
	    "\t\tmapfile -t COMPREPLY < <(compgen -W \"$(\"$3\" ${plan:+-p \"$plan\"} __complete "
	    "steps \\\n"
	    "\t\t\t2>/dev/null)\" -- \"$2\") ;;\n"
	    "\twords\\ *) mapfile -t COMPREPLY < <(compgen -W \"${1#words }\" -- \"$2\") ;;\n"
	    "\t*) COMPREPLY=() ;;\n"
	    "\tesac\n}\n\n"
	    "_migrate()\n{\n"
	    "\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev= cmd= sub= w i\n"
	    "\tlocal _migrate_kind _migrate_opts _migrate_sub _migrate_operands _migrate_plan=\n"
	    "\tCOMPREPLY=()\n"
	    "\t# the command and its subcommand: the first words that are not options or their\n"
	    "\t# arguments (bash splits --plan=FILE into --plan, = and FILE)\n"
	    "\tfor ((i = 1; i < COMP_CWORD; i++)); do\n"
	    "\t\tw=${COMP_WORDS[i]}\n"
	    "\t\tif [[ $w == -?* ]]; then\n"
	    "\t\t\t_migrate_arg \"$cmd\" \"$w\" || continue\n"
	    "\t\t\t[[ ${COMP_WORDS[i + 1]} == = ]] && ((i++))\n"
	    "\t\t\t((i++))\n"
	    "\t\t\t[[ $w == -p || $w == --plan ]] && _migrate_plan=${COMP_WORDS[i]}\n"
	    "\t\telif [[ -z $cmd ]]; then\n"
	    "\t\t\tcmd=$w\n"
	    "\t\telif [[ -z $sub ]]; then\n"
	    "\t\t\t_migrate_words \"$cmd\"\n"
	    "\t\t\t[[ -n $_migrate_sub ]] && sub=$w\n"
	    "\t\tfi\n"
	    "\tdone\n"
	    "\t# an option's argument: after the option, or after its '='\n"
	    "\t((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}\n"
	    "\tif [[ $cur == = ]]; then\n"
	    "\t\tcur=\n"
	    "\telif [[ $prev == = ]] && ((COMP_CWORD > 1)); then\n"
	    "\t\tprev=${COMP_WORDS[COMP_CWORD - 2]}\n"
	    "\tfi\n"
	    "\tif [[ $prev == -?* ]] && _migrate_arg \"$cmd\" \"$prev\"; then\n"
	    "\t\t_migrate_reply \"$_migrate_kind\" \"$cur\" \"${1:-migrate}\"\n"
	    "\t\treturn 0\n"
	    "\tfi\n"
	    "\t_migrate_words \"$cmd\"\n"
	    "\tif [[ $cur == -* ]]; then\n"
	    "\t\tmapfile -t COMPREPLY < <(compgen -W \"$_migrate_opts\" -- \"$cur\")\n"
	    "\telif [[ -z $cmd ]]; then\n"
	    "\t\t_migrate_reply command \"$cur\"\n"
	    "\telif [[ -n $_migrate_sub && -z $sub ]]; then\n"
	    "\t\tmapfile -t COMPREPLY < <(compgen -W \"$_migrate_sub\" -- \"$cur\")\n"
	    "\telse\n"
	    "\t\t_migrate_reply \"$_migrate_operands\" \"$cur\" \"${1:-migrate}\"\n"
	    "\tfi\n"
	    "\treturn 0\n"
	    "}\n\n"
	    "complete -F _migrate migrate\n",
	    f);
	return 0;
}

/* ---- zsh ------------------------------------------------------------------------------------ */

/* Text inside a single-quoted _arguments spec, between [ and ]: one line, quotes and brackets
 * escaped. */
static void zsh_desc(FILE *f, const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			fputs("'\\''", f);
		else if (*p == '[' || *p == ']' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputc(' ', f);
		else
			fputc(*p, f);
	}
}

/* A message or a name in a spec: colons escaped. */
static void zsh_colon(FILE *f, const char *s)
{
	for (const char *p = s; *p; p++) {
		if (*p == ':')
			fputc('\\', f);
		fputc(*p, f);
	}
}

static void zsh_commands(FILE *f)
{
	for (const mg_command *c = mg_commands; c->name; c++)
		fprintf(f, "%s%s", c == mg_commands ? "" : " ", c->name);
}

static void zsh_action(FILE *f, int kind, const cli_opt_doc *d)
{
	char buf[256];
	switch (kind) {
	case CLI_COMPLETE_FILE:
		fputs("_files", f);
		break;
	case CLI_COMPLETE_PLAN:
		fputs("_files -g \"*.(yaml|yml)(-.)\"", f);
		break;
	case CLI_COMPLETE_DIR:
		fputs("_files -/", f);
		break;
	case CLI_COMPLETE_STEP:
		fputs("_migrate_steps", f);
		break;
	case CLI_COMPLETE_PROGRAM:
		fputs("_command_names -e", f);
		break;
	case CLI_COMPLETE_COMMAND:
		fputs("(", f);
		zsh_commands(f);
		fputs(")", f);
		break;
	case KIND_WORDS:
		fprintf(f, "(%s)", arg_words(d, buf, sizeof(buf)));
		break;
	default:
		fputs(" ", f); /* a message and nothing to offer */
	}
}

/* One option as _arguments takes it, on a line of its own. */
static void zsh_spec(FILE *f, const cli_opt_doc *d, const char *indent)
{
	const char *help = doc_help(d);
	fputs(indent, f);
	if (d->short_name && d->name)
		fprintf(f, "'(-%c --%s)'{-%c%s,--%s%s}'", d->short_name, d->name, d->short_name,
		        d->arg ? "+" : "", d->name, d->arg ? "=" : "");
	else if (d->short_name)
		fprintf(f, "'-%c%s", d->short_name, d->arg ? "+" : "");
	else
		fprintf(f, "'%s--%s%s", d->before_command ? "(- *)" : "", d->name,
		        d->arg ? "=" : "");
	fputc('[', f);
	zsh_desc(f, help);
	fputc(']', f);
	if (d->arg) {
		fputc(':', f);
		zsh_colon(f, d->arg);
		fputc(':', f);
		zsh_action(f, arg_kind(d), d);
	}
	fputs("' \\\n", f);
}

static void zsh_specs(FILE *f, const cli_opt_doc *own, bool before_command, const char *indent)
{
	for (const cli_opt_doc *d = own; d && !doc_end(d); d++)
		zsh_spec(f, d, indent);
	for (const cli_opt_doc *g = cli_global_docs; !doc_end(g); g++)
		if ((before_command || !g->before_command) && !overrides(own, g))
			zsh_spec(f, g, indent);
}

static const char *operand_message(cli_complete kind)
{
	switch (kind) {
	case CLI_COMPLETE_PLAN:
		return "plan file";
	case CLI_COMPLETE_DIR:
		return "directory";
	case CLI_COMPLETE_COMMAND:
		return "command";
	default:
		return "file";
	}
}

static int gen_zsh(FILE *f)
{
	fputs(
	    "#compdef migrate\n"
	    "# zsh completion for migrate(1): commands, options, plan files, the plan's steps.\n"
	    "# Written by `migrate __generate zsh` from the command table of cmd/main.c (what\n"
	    "# --help prints): change the table, not this file.\n\n"
	    "# The plan's traffic.steps, for --to and --until (the plan of -p, or migrate.yaml).\n"
	    "_migrate_steps() {\n"
	    "\tlocal plan=${opt_args[-p]:-${opt_args[--plan]:-$_migrate_plan}}\n"
	    "\tlocal -a steps expl\n"
	    "\tsteps=(${(f)\"$(_call_program steps ${(q)_migrate_prog} ${plan:+-p ${(q)plan}} "
	    "__complete steps 2>/dev/null)\"})\n"
	    "\t_wanted -V steps expl 'step (percent to the cluster)' compadd -a steps\n"
	    "}\n\n"
	    "_migrate() {\n"
	    "\tlocal curcontext=$curcontext state state_descr line ret=1\n"
	    "\tlocal -A opt_args\n"
	    "\tlocal _migrate_prog=${words[1]} _migrate_plan\n"
	    "\t_arguments -C -s : \\\n",
	    f);
	zsh_specs(f, NULL, true, "\t\t");
	fputs("\t\t'(-)1:command:->command' \\\n"
	      "\t\t'(-)*::argument:->argument' && ret=0\n"
	      "\t_migrate_plan=${opt_args[-p]:-$opt_args[--plan]}\n"
	      "\tcase $state in\n"
	      "\tcommand)\n"
	      "\t\tlocal -a commands\n"
	      "\t\tcommands=(\n",
	      f);
	for (const mg_command *c = mg_commands; c->name; c++) {
		fputs("\t\t\t'", f);
		zsh_colon(f, c->name);
		fputc(':', f);
		zsh_desc(f, c->summary);
		fputs("'\n", f);
	}
	fputs("\t\t)\n"
	      "\t\t_describe -t commands 'migrate command' commands && ret=0\n"
	      "\t\t;;\n"
	      "\targument)\n"
	      "\t\tcurcontext=${curcontext%:*:*}:migrate-$words[1]:\n"
	      "\t\tcase $words[1] in\n",
	      f);
	for (const mg_command *c = mg_commands; c->name; c++) {
		fprintf(f, "\t\t%s)\n\t\t\t_arguments -s : \\\n", c->name);
		zsh_specs(f, c->options, false, "\t\t\t\t");
		if (c->subcommands)
			fprintf(f, "\t\t\t\t'1:subcommand:(%s)' \\\n", c->subcommands);
		if (c->operands != CLI_COMPLETE_AUTO && c->operands != CLI_COMPLETE_NONE) {
			fprintf(f, "\t\t\t\t'*:%s:", operand_message(c->operands));
			zsh_action(f, (int)c->operands, NULL);
			fputs("' \\\n", f);
		}
		fputs("\t\t\t\t&& ret=0\n\t\t\t;;\n", f);
	}
	fputs("\t\tesac\n"
	      "\t\t;;\n"
	      "\tesac\n"
	      "\treturn ret\n"
	      "}\n\n"
	      "_migrate \"$@\"\n",
	      f);
	return 0;
}

int cmd_generate(mg_cli *cli, int argc, char **argv)
{
	(void)cli;
	const char *what = argc > 1 ? argv[1] : "";
	if (check_table())
		return EXIT_FAILED;
	int rc;
	if (!strcmp(what, "man") && argc <= 3)
		rc = gen_man(stdout, argc == 3 ? argv[2] : "");
	else if (!strcmp(what, "bash") && argc == 2)
		rc = gen_bash(stdout);
	else if (!strcmp(what, "zsh") && argc == 2)
		rc = gen_zsh(stdout);
	else {
		fprintf(stderr, "usage: migrate __generate man [DATE] | bash | zsh\n");
		return EXIT_USAGE;
	}
	if (fflush(stdout) || ferror(stdout))
		rc = -1;
	return rc ? EXIT_FAILED : EXIT_DONE;
}

int cmd_complete(mg_cli *cli, int argc, char **argv)
{
	if (argc != 2 || strcmp(argv[1], "steps"))
		return EXIT_USAGE;
	/* quiet whatever happens: this runs under a shell's completion */
	mg_error err = MG_ERROR_INIT;
	mg_plan *plan = NULL;
	int rc = mg_plan_load(&plan, cli->plan_path, 0, &err);
	mg_error_clear(&err);
	if (rc)
		return EXIT_FAILED;
	const mg_plan_traffic *t = mg_plan_traffic_section(plan);
	for (size_t i = 0; t && i < t->nsteps; i++) {
		char buf[32];
		mg_percent_format(buf, sizeof(buf), t->steps[i]);
		buf[strcspn(buf, "%")] = '\0';
		printf("%s\n", buf);
	}
	mg_plan_free(plan);
	return EXIT_DONE;
}

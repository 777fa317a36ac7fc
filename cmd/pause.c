/* migrate pause: hold the migration at its current weights (and a running autopilot with it). */
#include "util_shift.h"

int cmd_pause(mg_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {{"reason", required_argument, NULL, 'r'},
	                                     {NULL, 0, NULL, 0}};
	const char *reason = NULL;
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, "", shift_reason_opt, &reason, 0, &exit_code) < 0)
		return exit_code;
	return shift_hold(cli, true, reason);
}

/* migrate resume: release a pause, whether an autopilot is holding on it or not. */
#include "util_shift.h"

int cmd_resume(mg_cli *cli, int argc, char **argv)
{
	const char *reason = NULL;
	const cli_opt opts[] = {CLI_STRING("reason", &reason), {0}};
	int exit_code = EXIT_DONE;
	if (cli_parse(cli, argc, argv, opts, 0, &exit_code) < 0)
		return exit_code;
	return shift_hold(cli, false, reason);
}

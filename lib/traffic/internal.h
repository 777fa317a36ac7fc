/*
 * Private to lib/traffic/: what the drivers share. Not part of the library's API.
 */
#ifndef MG_TRAFFIC_INTERNAL_H
#define MG_TRAFFIC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* White space as nginx reads it between words (not \v or \f). */
bool mg_traffic_is_space(char c);

/*
 * Runs cmd with /bin/sh -c in a process group of its own, stopped (TERM, then
 * KILL) after timeout_ms. 0 when it exits with status 0; otherwise MG_ERROR
 * with what happened and its output in `what` (err is only for failing to
 * run it at all).
 */
int mg_traffic_run_command(const char *cmd, long timeout_ms, char *what, size_t what_size,
                           mg_error *err);

#endif

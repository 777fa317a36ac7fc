/*
 * Errors returned by every lib/ function.
 *
 * Functions return 0 or a negative MG_E* code and fill an mg_error. Input
 * errors (plan, flags, files) also carry diagnostics with file:line:col and
 * the key path, so a caller can show every problem at once instead of making
 * the operator fix them one by one.
 */
#ifndef MG_ERROR_H
#define MG_ERROR_H

#include <jansson.h>
#include <stddef.h>

enum {
	MG_OK = 0,
	MG_ERROR = -1,         /* the operation ran and failed */
	MG_EINVALID = -2,      /* bad input: plan, flags, files */
	MG_ELOCKED = -3,       /* another operator holds the plan's lock */
	MG_ECONFLICT = -4,     /* state moved underneath us */
	MG_EINCONCLUSIVE = -5, /* not enough data to decide; nothing changed */
	MG_ENOTFOUND = -6,     /* a named thing does not exist */
	MG_EIO = -7,           /* the operating system refused (disk, permissions) */
	MG_ENOMEM = -8,
	MG_ECANCELED = -9, /* stopped by a signal or another command before it finished */
	/* the balancer changed and was read back, but the state or journal could not record it */
	MG_EUNRECORDED = -10,
};

typedef enum { MG_SEV_ERROR, MG_SEV_WARNING } mg_severity;

/* One problem in an input file. file/path may be NULL; line/col are 1-based, 0 if unknown. */
typedef struct {
	mg_severity severity;
	char *file;
	int line;
	int col;
	char *path; /* key path, e.g. "traffic.steps[2]" */
	char *message;
} mg_diag;

typedef struct {
	int code;
	char message[1024];
	mg_diag *diags;
	size_t ndiags;
	size_t cap;
} mg_error;

#define MG_ERROR_INIT                                                                              \
	{                                                                                          \
		0                                                                                  \
	}

/* Sets code and message; returns code so callers can `return mg_error_set(...)`. */
int mg_error_set(mg_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* "out of memory" as MG_ENOMEM: the one message every allocation failure gives. */
int mg_error_oom(mg_error *err);

/* Records a diagnostic; does not change err->code. */
void mg_error_diag(mg_error *err, mg_severity sev, const char *file, int line, int col,
                   const char *path, const char *fmt, ...) __attribute__((format(printf, 7, 8)));

size_t mg_error_count(const mg_error *err, mg_severity sev);

/* Formats a diagnostic as "file:line:col: path: message" into buf. */
void mg_diag_format(char *buf, size_t size, const mg_diag *d);

/* Frees diagnostics and resets err to MG_ERROR_INIT. */
void mg_error_clear(mg_error *err);

/* A short name for a code ("invalid input", "locked", ...). */
const char *mg_error_name(int code);

/*
 * err's diagnostics of severity sev, as JSON for a machine reader: an array
 * of {file, line, column, path, message}. err may be NULL (an empty array).
 * New reference.
 */
json_t *mg_error_diags_json(const mg_error *err, mg_severity sev);
/*
 * An error as JSON: {kind, message, diagnostics (the errors)}. kind is the
 * name of err's code, or of code when err has none; message is err's when
 * NULL. err may be NULL. New reference.
 */
json_t *mg_error_json(const mg_error *err, int code, const char *message);

#endif

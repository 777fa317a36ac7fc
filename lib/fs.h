/* File system helpers that make writes crash-safe. */
#ifndef MG_FS_H
#define MG_FS_H

#include <stddef.h>
#include <sys/types.h>

#include "error.h"

/* Writes data to path via temp file + fsync + rename + fsync(dir), with the given mode. */
int mg_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, mg_error *err);

/* Reads a whole file; *out is NUL-terminated and malloc'd. MG_ENOTFOUND if missing. */
int mg_fs_read_all(char **out, size_t *out_len, const char *path, mg_error *err);

/* The most read of any input file without a limit of its own (docs/plan.md "Limits"). */
#define MG_INPUT_MAX_BYTES (16 << 20)

/*
 * Reads an input file the operator named (plan, inventory, token, kubeconfig...): only a
 * regular file, refused at once otherwise (a FIFO would block, /dev/zero never ends), and at
 * most limit bytes, refused beyond. *out is NUL-terminated and malloc'd. what names the file
 * in messages ("the plan"); limit_name is how the limit is documented ("4 MiB").
 * MG_ENOTFOUND if missing, MG_EINVALID if not a regular file or over the limit, MG_EIO.
 */
int mg_fs_read_file(char **out, size_t *out_len, const char *path, size_t limit, const char *what,
                    mg_error *err);

/* mkdir -p with mode for each created component. */
int mg_fs_mkdirs(const char *path, mode_t mode, mg_error *err);

/* fsync of a directory, so a rename or a new file in it survives power loss. */
int mg_fs_sync_dir(const char *dir, mg_error *err);

#endif

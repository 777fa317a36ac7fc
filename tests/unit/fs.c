#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../testutil.h"
#include "fs.h"

static char tmpdir[64];

static void setup(void)
{
	tu_tmpdir_make(tmpdir, sizeof(tmpdir), "fs");
}

static void teardown(void)
{
	tu_tmpdir_remove(tmpdir);
}

static char *path_in(const char *name)
{
	static char buf[4][256];
	static int i;
	char *p = buf[i++ % 4];
	snprintf(p, 256, "%s/%s", tmpdir, name);
	return p;
}

static mode_t mode_of(const char *path)
{
	struct stat sb;
	cr_assert_eq(stat(path, &sb), 0, "stat %s: %s", path, strerror(errno));
	return sb.st_mode & 07777;
}

Test(fs, write_atomic_creates_file_with_mode_and_no_temp_files, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	const char *path = path_in("state.json");
	cr_assert_eq(mg_fs_write_atomic(path, "hello\n", 6, 0600, &err), 0, "%s", err.message);

	char *data;
	size_t len;
	cr_assert_eq(mg_fs_read_all(&data, &len, path, &err), 0, "%s", err.message);
	cr_assert_eq(len, 6);
	cr_assert_str_eq(data, "hello\n");
	free(data);
	cr_assert_eq(mode_of(path), 0600, "mode is %o", (unsigned)mode_of(path));

	char names[512];
	tu_list_dir(names, sizeof(names), tmpdir);
	cr_assert_str_eq(names, "state.json");
}

Test(fs, write_atomic_replaces_and_resets_mode, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	const char *path = path_in("f");
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("old contents that are longer", f);
	fclose(f);
	chmod(path, 0644);

	for (int i = 0; i < 20; i++) {
		char buf[32];
		int n = snprintf(buf, sizeof(buf), "version %d", i);
		cr_assert_eq(mg_fs_write_atomic(path, buf, (size_t)n, 0600, &err), 0, "%s",
		             err.message);
	}
	char *data;
	cr_assert_eq(mg_fs_read_all(&data, NULL, path, &err), 0, "%s", err.message);
	cr_assert_str_eq(data, "version 19");
	free(data);
	cr_assert_eq(mode_of(path), 0600);

	char names[512];
	tu_list_dir(names, sizeof(names), tmpdir);
	cr_assert_str_eq(names, "f");
}

Test(fs, write_atomic_failure_names_path_and_removes_temp, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	/* rename(2) cannot replace a non-empty directory: the write fails after the temp file. */
	const char *target = path_in("target");
	cr_assert_eq(mkdir(target, 0700), 0);
	cr_assert_eq(mkdir(path_in("target/child"), 0700), 0);

	int rc = mg_fs_write_atomic(target, "x", 1, 0600, &err);
	cr_assert_eq(rc, MG_EIO, "rc %d", rc);
	cr_assert_eq(err.code, MG_EIO);
	cr_assert(strstr(err.message, target), "message: %s", err.message);
	cr_assert(strstr(err.message, "renaming"), "message: %s", err.message);

	char names[512];
	tu_list_dir(names, sizeof(names), tmpdir);
	cr_assert_str_eq(names, "target");
}

Test(fs, write_atomic_missing_directory, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	const char *path = path_in("nope/state.json");
	cr_assert_eq(mg_fs_write_atomic(path, "x", 1, 0600, &err), MG_EIO);
	cr_assert(strstr(err.message, path), "message: %s", err.message);
	cr_assert(strstr(err.message, strerror(ENOENT)), "message: %s", err.message);
}

Test(fs, read_all_missing_is_not_found, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	char *data = (char *)1;
	size_t len = 99;
	cr_assert_eq(mg_fs_read_all(&data, &len, path_in("missing"), &err), MG_ENOTFOUND);
	cr_assert_null(data);
	cr_assert_eq(len, 0);
	cr_assert(strstr(err.message, "missing"), "message: %s", err.message);
}

Test(fs, read_all_large_binary, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	size_t n = 100000;
	unsigned char *src = malloc(n);
	for (size_t i = 0; i < n; i++)
		src[i] = (unsigned char)(i * 7 + i / 251);
	const char *path = path_in("bin");
	cr_assert_eq(mg_fs_write_atomic(path, src, n, 0600, &err), 0, "%s", err.message);

	char *data;
	size_t len;
	cr_assert_eq(mg_fs_read_all(&data, &len, path, &err), 0, "%s", err.message);
	cr_assert_eq(len, n);
	cr_assert_eq(memcmp(data, src, n), 0);
	cr_assert_eq(data[n], '\0');
	free(data);
	free(src);
}

Test(fs, read_all_empty_file, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	const char *path = path_in("empty");
	cr_assert_eq(mg_fs_write_atomic(path, "", 0, 0600, &err), 0, "%s", err.message);
	char *data;
	size_t len = 5;
	cr_assert_eq(mg_fs_read_all(&data, &len, path, &err), 0, "%s", err.message);
	cr_assert_eq(len, 0);
	cr_assert_str_eq(data, "");
	free(data);
}

Test(fs, mkdirs_creates_each_component_with_mode, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	const char *deep = path_in("a/b/c");
	cr_assert_eq(mg_fs_mkdirs(deep, 0700, &err), 0, "%s", err.message);
	cr_assert_eq(mode_of(path_in("a")), 0700);
	cr_assert_eq(mode_of(path_in("a/b")), 0700);
	cr_assert_eq(mode_of(deep), 0700);
	/* Existing directories are fine, and are left as they are. */
	cr_assert_eq(chmod(path_in("a"), 0755), 0);
	cr_assert_eq(mg_fs_mkdirs(deep, 0700, &err), 0, "%s", err.message);
	cr_assert_eq(mg_fs_mkdirs(path_in("a//b/c/"), 0700, &err), 0, "%s", err.message);
	cr_assert_eq(mode_of(path_in("a")), 0755);
}

Test(fs, mkdirs_file_in_the_way, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_write_atomic(path_in("a"), "x", 1, 0600, &err), 0, "%s", err.message);
	cr_assert_eq(mg_fs_mkdirs(path_in("a/b"), 0700, &err), MG_EIO);
	cr_assert(strstr(err.message, path_in("a")), "message: %s", err.message);
	cr_assert_eq(mg_fs_mkdirs("", 0700, &err), MG_EINVALID);
}

Test(fs, sync_dir, .init = setup, .fini = teardown)
{
	mg_error err = MG_ERROR_INIT;
	cr_assert_eq(mg_fs_sync_dir(tmpdir, &err), 0, "%s", err.message);
	cr_assert_eq(mg_fs_sync_dir(path_in("missing"), &err), MG_EIO);
	cr_assert(strstr(err.message, "missing"), "message: %s", err.message);
}

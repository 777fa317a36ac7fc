/*
 * Runs the fuzz target over every file of a corpus directory with any C
 * compiler, so `make test` exercises the corpus (under the sanitizers in the
 * second pass) even where libFuzzer is not available. An argument that is a
 * file runs that one input (a crash file from build-fuzz/crashes/, say).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		return 1;
	}
	static uint8_t buf[1 << 20];
	size_t n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, n);
	return 0;
}

int main(int argc, char **argv)
{
	size_t files = 0;
	for (int a = 1; a < argc; a++) {
		struct stat st;
		if (stat(argv[a], &st) == 0 && S_ISREG(st.st_mode)) {
			if (run_file(argv[a]))
				return 1;
			files++;
			continue;
		}
		DIR *d = opendir(argv[a]);
		if (!d) {
			perror(argv[a]);
			return 1;
		}
		struct dirent *e;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", argv[a], e->d_name);
			if (run_file(path)) {
				closedir(d);
				return 1;
			}
			files++;
		}
		closedir(d);
	}
	if (!files) {
		fprintf(stderr, "fuzz-replay: no corpus files\n");
		return 1;
	}
	printf("fuzz-replay: %zu passed, 0 failed\n", files);
	return 0;
}

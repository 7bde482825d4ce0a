/* A harness without libFuzzer: runs LLVMFuzzerTestOneInput once on every
 * file named (a directory: on every file in it). The normal and sanitizer
 * builds replay each corpus this way (ctest fuzz_replay_NAME), so the seeds
 * and every input that once crashed are run by gcc's builds too. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st) != 0) {
        perror(path);
        if (f) fclose(f);
        return 1;
    }
    const size_t n = (size_t)st.st_size;
    uint8_t *buf = malloc(n ? n : 1);
    const int ok = buf && fread(buf, 1, n, f) == n;
    fclose(f);
    if (ok)
        LLVMFuzzerTestOneInput(buf, n);
    else
        fprintf(stderr, "%s: cannot read\n", path);
    free(buf);
    return !ok;
}

/* The files of a directory, in name order (the same order on every run). */
static int replay_dir(const char *dir, int *count)
{
    struct dirent **names;
    const int n = scandir(dir, &names, NULL, alphasort);
    if (n < 0) {
        perror(dir);
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        struct stat st;
        if (names[i]->d_name[0] != '.' && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            rc |= replay_file(path);
            ++*count;
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    int rc = 0, count = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode)) {
            rc |= replay_dir(argv[i], &count);
        } else {
            rc |= replay_file(argv[i]);
            count++;
        }
    }
    printf("%s: %d inputs replayed\n", argv[0], count);
    return rc || count == 0;
}

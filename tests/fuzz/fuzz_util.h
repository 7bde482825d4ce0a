/* tests/fuzz/: what the harnesses share. The readers under test take a
 * path, so each input is written to one temporary file per process
 * ($TMPDIR, else /tmp; removed at exit). */
#ifndef SEQPAR_FUZZ_UTIL_H
#define SEQPAR_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char fuzz_path[4096];
static int fuzz_fd = -1;

static inline void fuzz_remove_file(void)
{
    if (fuzz_fd >= 0) close(fuzz_fd), unlink(fuzz_path);
}

/* The input as the file's whole content; its path, or NULL (no space: the
 * input is skipped). An error creating the file ends the run. */
static inline const char *fuzz_write_file(const uint8_t *data, size_t size)
{
    if (fuzz_fd < 0) {
        const char *dir = getenv("TMPDIR");
        snprintf(fuzz_path, sizeof fuzz_path, "%s/seqpar-fuzz-XXXXXX", dir && *dir ? dir : "/tmp");
        fuzz_fd = mkstemp(fuzz_path);
        if (fuzz_fd < 0) {
            perror(fuzz_path);
            abort();
        }
        atexit(fuzz_remove_file);
    }
    if (ftruncate(fuzz_fd, 0) != 0) return NULL;
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(fuzz_fd, data + done, size - done, (off_t)done);
        if (w <= 0) return NULL;
        done += (size_t)w;
    }
    return fuzz_path;
}

/* The input as a NUL-terminated string (malloc'd; NULL when out of memory). */
static inline char *fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return NULL;
    if (size) memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif

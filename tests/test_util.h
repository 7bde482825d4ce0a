/* Helpers the CUnit suites share. */
#ifndef SEQPAR_TEST_UTIL_H
#define SEQPAR_TEST_UTIL_H

#include <stddef.h>

/* Removes path and, for a directory, everything under it (rm -rf). */
void rm_rf(const char *path);
/* A whole file (malloc'd, NUL-terminated; its length in *len), or NULL. */
char *read_all(const char *path, size_t *len);

#endif

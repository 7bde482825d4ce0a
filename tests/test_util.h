/* Helpers the CUnit suites share. */
#ifndef SEQPAR_TEST_UTIL_H
#define SEQPAR_TEST_UTIL_H

/* Removes path and, for a directory, everything under it (rm -rf). */
void rm_rf(const char *path);

#endif

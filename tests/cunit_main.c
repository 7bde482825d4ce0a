/* Shared CUnit runner: each suite file defines register_suites(). The process
 * exits non-zero when any assertion fails or a suite cannot be set up, so
 * ctest sees every failure. */
#include <CUnit/Basic.h>
#include <stdio.h>

void register_suites(void);
/* Suites that need teardown after the registry is gone (MPI) define this. */
void suite_atexit(void) __attribute__((weak));

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS) return 2;
    register_suites();
    if (CU_get_error() != CUE_SUCCESS) {
        fprintf(stderr, "CUnit registration failed: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed() +
                      CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (suite_atexit) suite_atexit();
    if (run == 0) {
        fprintf(stderr, "no test ran\n");
        return 1;
    }
    return failed ? 1 : 0;
}

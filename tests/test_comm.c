/* CUnit under MPI (ctest runs it at -np 1, 2 and 3): the comm layer's
 * collectives give every rank the same, exact results, uneven sizes
 * included. Every rank runs the suite; each exits non-zero on a failure. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"

static int init_suite(void)
{
    int argc = 0;
    char **argv = NULL;
    return comm_init(&argc, &argv) == COMM_OK ? 0 : 1;
}

static void test_world(void)
{
    CU_ASSERT(comm_world() >= 1);
    CU_ASSERT(comm_rank() >= 0 && comm_rank() < comm_world());
    CU_ASSERT(comm_local_size() >= 1 && comm_local_size() <= comm_world());
    CU_ASSERT(comm_local_rank() >= 0 && comm_local_rank() < comm_local_size());
}

static void test_allreduce(void)
{
    const int W = comm_world(), r = comm_rank();
    /* a size that is not a multiple of anything convenient */
    const size_t n = 1000003;
    float *x = malloc(n * sizeof(float));
    double d[3] = {r + 0.5, 1.0, -r};
    CU_ASSERT_FATAL(x != NULL);
    for (size_t i = 0; i < n; i++) x[i] = (float)((i % 97) + r); /* small integers: exact sums */
    CU_ASSERT_EQUAL(comm_allreduce_float(x, n), COMM_OK);
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        float want = (float)(W * (double)(i % 97) + W * (W - 1) / 2.0);
        bad += x[i] != want;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(comm_allreduce_double(d, 3), COMM_OK);
    CU_ASSERT_DOUBLE_EQUAL(d[0], W * (W - 1) / 2.0 + 0.5 * W, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(d[1], (double)W, 1e-12);
    double mx = r;
    CU_ASSERT_EQUAL(comm_allreduce_max_double(&mx, 1), COMM_OK);
    CU_ASSERT_DOUBLE_EQUAL(mx, W - 1.0, 0);
    free(x);
}

static void test_bcast(void)
{
    char buf[64];
    memset(buf, comm_rank() == 0 ? 'a' : 'z', sizeof buf);
    CU_ASSERT_EQUAL(comm_bcast(buf, sizeof buf, 0), COMM_OK);
    int bad = 0;
    for (size_t i = 0; i < sizeof buf; i++) bad += buf[i] != 'a';
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(comm_barrier(), COMM_OK);
}

void suite_atexit(void)
{
    comm_finalize();
}

void register_suites(void)
{
    CU_pSuite s = CU_add_suite("comm", init_suite, NULL);
    CU_add_test(s, "world, rank, node-local ranks", test_world);
    CU_add_test(s, "allreduce (float, double, max)", test_allreduce);
    CU_add_test(s, "broadcast and barrier", test_bcast);
}

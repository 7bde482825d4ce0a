/* CUnit under MPI (ctest runs it at -np 1, 2 and 3): the comm layer's
 * collectives give every rank the same, exact results, uneven sizes
 * included. Every rank runs the suite; each exits non-zero on a failure. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

/* A table of uneven tensors with padding between them and after the last,
 * as param_table lays them out (the tail starts after that padding: a last
 * tensor of 16k+1 floats leaves 15 floats of it). */
enum { NT = 9 };
static const size_t T_SIZE[NT] = {3, 1000, 17, 4096, 1, 250000, 64, 70000, 17};
static size_t t_off[NT], t_total;
static void make_table(void)
{
    size_t o = 0;
    for (int i = 0; i < NT; i++) {
        t_off[i] = o;
        o += (T_SIZE[i] + 15) / 16 * 16;
    }
    t_total = o;
}

/* Fills x with small integers (exact float sums) depending on the rank. */
static void fill(float *x, size_t n, int r)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 7 + (size_t)r * 3) % 101);
}

static int count_wrong(const float *x, size_t n)
{
    const int W = comm_world();
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double want = 0;
        for (int r = 0; r < W; r++) want += (double)((i * 7 + (size_t)r * 3) % 101);
        bad += x[i] != (float)want;
    }
    return bad;
}

/* Bucketed reduction = one allreduce of everything, with and without
 * overlap, for announcements in backward order, in forward order, all at
 * once, and none at all (finish reduces what was not announced). */
static void test_reducer(void)
{
    make_table();
    const size_t tail = 16, n = t_total + tail;
    float *x = malloc(n * sizeof(float));
    CU_ASSERT_FATAL(x != NULL);
    const size_t buckets_kb[] = {0, 4, 64, 1024};
    for (int overlap = 0; overlap < 2; overlap++)
        for (size_t k = 0; k < sizeof buckets_kb / sizeof *buckets_kb; k++)
            for (int order = 0; order < 4; order++) {
                comm_reducer *r;
                CU_ASSERT_EQUAL_FATAL(comm_reducer_create(&r, x, t_total, t_off, T_SIZE, NT, tail,
                                                          buckets_kb[k] * 1024, overlap),
                                      COMM_OK);
                int nb = comm_reducer_buckets(r);
                CU_ASSERT(nb >= 1 && nb <= NT);
                if (buckets_kb[k] == 0) CU_ASSERT_EQUAL(nb, 1);
                if (buckets_kb[k] == 4) CU_ASSERT(nb >= 5); /* 4 tensors exceed 4 KiB alone */
                for (int rep = 0; rep < 3; rep++) {
                    fill(x, n, comm_rank());
                    comm_reducer_begin(r);
                    if (order == 0)
                        for (int i = NT - 1; i >= 0; i--) comm_reducer_ready(r, i, i + 1);
                    else if (order == 1)
                        for (int i = 0; i < NT; i++) comm_reducer_ready(r, i, i + 1);
                    else if (order == 2)
                        comm_reducer_ready(r, 0, NT);
                    CU_ASSERT_EQUAL(comm_reducer_finish(r), COMM_OK);
                    CU_ASSERT_EQUAL(count_wrong(x, n), 0);
                }
                CU_ASSERT(comm_reducer_seconds(r) >= 0.0);
                comm_reducer_free(r);
            }
    /* tensors must be ascending and apart */
    size_t off2[2] = {0, 4}, size2[2] = {8, 8};
    comm_reducer *r = NULL;
    CU_ASSERT_NOT_EQUAL(comm_reducer_create(&r, x, 16, off2, size2, 2, 0, 0, 0), COMM_OK);
    CU_ASSERT_PTR_NULL(r);
    free(x);
}

/* Identical replicas pass; a change on the last rank is found, with its
 * tensor and rank. */
static void test_replicas(void)
{
    make_table();
    const int W = comm_world(), me = comm_rank();
    float *x = calloc(t_total, sizeof(float));
    CU_ASSERT_FATAL(x != NULL);
    fill(x, t_total, 0);
    comm_reducer *r;
    CU_ASSERT_EQUAL_FATAL(comm_reducer_create(&r, x, t_total, t_off, T_SIZE, NT, 0, 0, 0), COMM_OK);
    int tensor = 99, rank = 99;
    CU_ASSERT_EQUAL(comm_reducer_check_replicas(r, x, &tensor, &rank), 0);
    /* the last rank flips one bit of tensor 5 and of tensor 7 */
    if (me == W - 1) {
        unsigned char *b = (unsigned char *)(x + t_off[5] + 12345);
        b[0] ^= 1;
        x[t_off[7] + 1] += 1.0f;
    }
    int rc = comm_reducer_check_replicas(r, x, &tensor, &rank);
    if (W == 1) {
        CU_ASSERT_EQUAL(rc, 0); /* a world of one has nothing to compare */
    } else {
        CU_ASSERT_EQUAL(rc, 1);
        CU_ASSERT_EQUAL(tensor, 5);
        CU_ASSERT_EQUAL(rank, W - 1);
    }
    comm_reducer_free(r);
    free(x);
}

/* The pool: every worker runs once per run, the runs' writes are visible
 * to the caller when run returns, runs follow each other in order, and the
 * spinning and sleeping waits give the same. */
typedef struct {
    int calls[8];
    long sum[8];
    int round;
} pool_ctx;

static void pool_work(void *ctx, int w)
{
    pool_ctx *c = ctx;
    c->calls[w]++;
    long s = 0;
    for (int i = 0; i < 20000 * (w + 1); i++) s += i % (c->round + 2); /* uneven work */
    c->sum[w] += s;
}

static void test_pool(void)
{
    for (int spin = 0; spin <= 1; spin++)
        for (int n = 1; n <= 5; n += 2) {
            comm_pool *p = NULL;
            CU_ASSERT_EQUAL_FATAL(comm_pool_create(&p, n, spin), COMM_OK);
            CU_ASSERT_EQUAL(comm_pool_size(p), n);
            pool_ctx c = {{0}, {0}, 0};
            long want[8] = {0};
            for (c.round = 0; c.round < 200; c.round++) {
                comm_pool_run(p, pool_work, &c);
                for (int w = 0; w < n; w++) {
                    for (int i = 0; i < 20000 * (w + 1); i++) want[w] += i % (c.round + 2);
                    /* all done and visible when run returns */
                    CU_ASSERT_EQUAL(c.calls[w], c.round + 1);
                }
            }
            for (int w = 0; w < n; w++) CU_ASSERT_EQUAL(c.sum[w], want[w]);
            for (int w = n; w < 8; w++) CU_ASSERT_EQUAL(c.calls[w], 0);
            comm_pool_free(p);
        }
    /* no pool: the caller is the only worker */
    pool_ctx c = {{0}, {0}, 0};
    comm_pool_run(NULL, pool_work, &c);
    CU_ASSERT_EQUAL(c.calls[0], 1);
    CU_ASSERT_EQUAL(comm_pool_size(NULL), 1);
    comm_pool *bad = NULL;
    CU_ASSERT_EQUAL(comm_pool_create(&bad, 0, 1), COMM_ERR);
    CU_ASSERT_PTR_NULL(bad);
}

static void test_thread_plan(void)
{
    char why[256] = "";
    int n = comm_thread_plan(0, why, sizeof why);
    CU_ASSERT(n >= 1);
    CU_ASSERT(strstr(why, "on this node") != NULL);
    /* ranks on one node share its cores */
    CU_ASSERT(n * comm_local_size() <= (int)sysconf(_SC_NPROCESSORS_ONLN) || n == 1);
    CU_ASSERT_EQUAL(comm_thread_plan(3, why, sizeof why), 3);
    CU_ASSERT(strstr(why, "--threads 3") != NULL);
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
    CU_add_test(s, "bucketed reduction = allreduce (overlap on/off, any order)", test_reducer);
    CU_add_test(s, "replica check finds the tensor and the rank", test_replicas);
    CU_add_test(s, "thread placement", test_thread_plan);
    CU_add_test(s, "worker pool: every worker once per run, results visible", test_pool);
}

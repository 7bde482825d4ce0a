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
/* 16-bit conversions: to() rounds to the nearest 16-bit number (ties to
 * even), from() is exact; NaN stays NaN, beyond the range is infinity. */
static int nearest_ok(float x, uint16_t h, float (*from)(uint16_t), float maxfin)
{
    const float y = from(h);
    if (isnan(x)) return isnan(y);
    if (fabsf(x) > maxfin) return isinf(y) || fabsf(y) == maxfin;
    const double e = fabs((double)x - y);
    for (int d = -1; d <= 1; d += 2) { /* the neighbours on either side */
        const uint16_t n = (uint16_t)(h + d);
        const float z = from(n);
        if ((n & 0x7fff) == 0x7fff || isnan(z) || isinf(z) || ((n ^ h) & 0x8000)) continue;
        const double ez = fabs((double)x - z);
        if (ez < e || (ez == e && (h & 1))) return 0;
    }
    return 1;
}

static void test_compress_convert(void)
{
    int bad16 = 0, badb = 0, round = 0;
    for (uint32_t h = 0; h < 65536; h++) { /* every 16-bit number round trips */
        const float f = comm_from_fp16((uint16_t)h), b = comm_from_bf16((uint16_t)h);
        round += !isnan(f) && comm_to_fp16(f) != h;
        round += !isnan(b) && comm_to_bf16(b) != h;
        round += isnan(f) != isnan(comm_from_fp16(comm_to_fp16(f)));
    }
    CU_ASSERT_EQUAL(round, 0);
    for (uint64_t u = 0; u < (1ull << 32); u += 4093) { /* floats across the whole range */
        float x;
        const uint32_t w = (uint32_t)u;
        memcpy(&x, &w, sizeof x);
        bad16 += !nearest_ok(x, comm_to_fp16(x), comm_from_fp16, 65504.0f);
        badb += !nearest_ok(x, comm_to_bf16(x), comm_from_bf16, 3.3895314e38f);
#ifdef __FLT16_MAX__
        const _Float16 ref = (_Float16)x;
        uint16_t rb;
        memcpy(&rb, &ref, sizeof rb);
        bad16 += !isnan(x) && rb != comm_to_fp16(x);
#endif
    }
    CU_ASSERT_EQUAL(bad16, 0);
    CU_ASSERT_EQUAL(badb, 0);
    CU_ASSERT(isinf(comm_from_fp16(comm_to_fp16(70000.0f))));
    CU_ASSERT(isnan(comm_from_fp16(comm_to_fp16(NAN))) && isnan(comm_from_bf16(comm_to_bf16(NAN))));
    CU_ASSERT_EQUAL(comm_from_fp16(comm_to_fp16(-0.0f)), 0.0f);
}

/* the reducer with 16-bit buckets: within 16-bit rounding of the float sum
 * (fp16 on values whose sums would be half's subnormals without the scale,
 * bf16 on ordinary ones), every rank the same bits, the float tail exact */
static float value(size_t i, int rank, double unit)
{
    const double v = (double)((i * 7 + (size_t)rank * 3) % 101);
    return i < t_total ? (float)((v + 0.37 * rank) * unit) : (float)v;
}

static void test_compress_reduce(void)
{
    make_table();
    const int W = comm_world(), me = comm_rank();
    const size_t tail = 16, n = t_total + tail;
    float *x = malloc(n * sizeof(float));
    CU_ASSERT_FATAL(x != NULL);
    for (int mode = COMM_COMPRESS_BF16; mode <= COMM_COMPRESS_FP16; mode++)
        for (int overlap = 0; overlap < 2; overlap++) {
            const double unit = mode == COMM_COMPRESS_FP16 ? 1e-9 : 1.0;
            const double rel = (mode == COMM_COMPRESS_FP16 ? 0x1p-11 : 0x1p-8) * (W + 1);
            comm_reducer *r;
            CU_ASSERT_EQUAL_FATAL(
                comm_reducer_create(&r, x, t_total, t_off, T_SIZE, NT, tail, 64 * 1024, overlap),
                COMM_OK);
            CU_ASSERT_EQUAL_FATAL(comm_reducer_set_compress(r, mode), COMM_OK);
            for (size_t i = 0; i < n; i++) x[i] = value(i, me, unit);
            comm_reducer_begin(r);
            if (overlap)
                for (int i = NT - 1; i >= 0; i--) comm_reducer_ready(r, i, i + 1);
            CU_ASSERT_EQUAL(comm_reducer_finish(r), COMM_OK);
            int bad = 0;
            double sum = 0;
            for (size_t i = 0; i < n; i++) {
                double want = 0;
                for (int k = 0; k < W; k++) want += value(i, k, unit);
                if (i >= t_total)
                    bad += x[i] != (float)want; /* the tail: float32, exact on integers */
                else
                    bad += fabs(x[i] - want) > rel * fabs(want);
                sum += x[i] * (double)(i % 13 + 1);
            }
            CU_ASSERT_EQUAL(bad, 0);
            double lo = -sum, hi = sum; /* every rank the same result */
            comm_allreduce_max_double(&lo, 1), comm_allreduce_max_double(&hi, 1);
            CU_ASSERT_EQUAL(-lo, hi);
            comm_reducer_free(r);
        }
    free(x);
}

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
    CU_add_test(s, "16-bit conversions: nearest, ties to even, NaN, overflow",
                test_compress_convert);
    CU_add_test(s, "16-bit buckets (bf16, scaled fp16) = the float sum within rounding",
                test_compress_reduce);
    CU_add_test(s, "replica check finds the tensor and the rank", test_replicas);
    CU_add_test(s, "thread placement", test_thread_plan);
    CU_add_test(s, "worker pool: every worker once per run, results visible", test_pool);
}

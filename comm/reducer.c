/* Bucketed gradient allreduce (blocking or overlapped with backward), the
 * replica check and thread placement. MPI stays inside comm/. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "comm.h"
#include "comm_internal.h"

#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int comm_thread_plan(int requested, char *why, size_t whylen)
{
    long node = sysconf(_SC_NPROCESSORS_ONLN);
    if (node < 1) node = 1;
    int local = comm_local_size() > 0 ? comm_local_size() : 1;
    int mine = (int)node;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) mine = CPU_COUNT(&set);
    if (requested > 0) {
        if (why)
            snprintf(why, whylen, "--threads %d; %ld cores, %d rank%s on this node", requested,
                     node, local, local > 1 ? "s" : "");
        return requested;
    }
    int n = (int)(node / local);
    if (n < 1) n = 1;
    int capped = mine < n;
    if (capped) n = mine;
    if (why)
        snprintf(why, whylen, "%ld core%s, %d rank%s on this node%s", node, node > 1 ? "s" : "",
                 local, local > 1 ? "s" : "",
                 capped ? "; capped by this rank's CPU binding (mpirun --bind-to none lifts it)"
                        : "");
    return n;
}

typedef struct bucket {
    size_t lo, hi; /* float range [lo, hi) of the buffer */
    int pending;   /* tensors not yet final this step */
} bucket;

struct comm_reducer {
    float *buf;
    int n, nb, overlap, world;
    size_t total, tail;
    const size_t *off, *size; /* borrowed: the caller's table outlives the reducer */
    int *of_tensor;           /* (n) bucket of each tensor */
    int *tensor_done;         /* (n) */
    int *tensor_count;        /* (nb) tensors per bucket */
    bucket *b;
    MPI_Request *req; /* (nb + 1): the buckets, then the tail */
    int nreq;
    int next; /* buckets start in index order: the next one to start */
    double seconds;
    uint64_t *hash; /* (2n) replica check: this rank's checksums, then rank 0's */
    int compress;   /* COMM_COMPRESS_*: buckets on the wire as 16-bit numbers */
    uint16_t *h;    /* (total) their 16-bit copy */
    float *scale;   /* (nb) fp16: each bucket's power-of-two scale this step */
    MPI_Op op;      /* the 16-bit sum */
};

int comm_reducer_create(comm_reducer **out, float *buf, size_t len, const size_t *off,
                        const size_t *size, int n, size_t tail, size_t bucket_bytes, int overlap)
{
    *out = NULL;
    if (n < 1 || len < off[n - 1] + size[n - 1] || tail > (size_t)INT_MAX) return COMM_ERR;
    for (int i = 0; i < n; i++)
        if (size[i] > (size_t)INT_MAX || (i > 0 && off[i] < off[i - 1] + size[i - 1]))
            return COMM_ERR;
    comm_reducer *r = calloc(1, sizeof *r);
    if (!r) return COMM_ERR;
    r->buf = buf, r->n = n, r->overlap = overlap, r->tail = tail, r->world = comm_world();
    r->off = off, r->size = size;
    r->total = len; /* the last bucket ends here, the tail starts here */
    r->of_tensor = calloc((size_t)n, sizeof(int));
    r->tensor_done = calloc((size_t)n, sizeof(int));
    r->tensor_count = calloc((size_t)n, sizeof(int));
    r->b = calloc((size_t)n, sizeof(bucket));
    r->req = calloc((size_t)n + 1, sizeof(MPI_Request));
    r->hash = calloc(2 * (size_t)n, sizeof(uint64_t));
    if (!r->of_tensor || !r->tensor_done || !r->tensor_count || !r->b || !r->req || !r->hash) {
        comm_reducer_free(r);
        return COMM_ERR;
    }
    /* buckets from the last tensor backwards; a bucket ends at its first
     * tensor's offset, so padding between tensors rides along (it is 0) */
    const size_t limit = bucket_bytes / sizeof(float);
    int nb = 0;
    size_t hi = r->total;
    for (int i = n - 1; i >= 0; i--) {
        r->of_tensor[i] = nb;
        r->tensor_count[nb]++;
        size_t lo = i == 0 ? 0 : off[i];
        int close = i == 0 || (limit > 0 && hi - lo >= limit) ||
                    (hi - (i > 0 ? off[i - 1] : 0)) > (size_t)INT_MAX;
        if (close) {
            r->b[nb].lo = lo, r->b[nb].hi = hi;
            nb++;
            hi = lo;
        }
    }
    r->nb = nb;
    *out = r;
    return COMM_OK;
}

void comm_reducer_free(comm_reducer *r)
{
    if (!r) return;
    int finalized = 1;
    if (r->compress && MPI_Finalized(&finalized) == MPI_SUCCESS && !finalized) MPI_Op_free(&r->op);
    free(r->of_tensor), free(r->tensor_done), free(r->tensor_count), free(r->b), free(r->req);
    free(r->hash), free(r->h), free(r->scale);
    free(r);
}

/* ------------------------------------------------ 16-bit wire (compress) */

static uint32_t bits_of(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float float_of(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

uint16_t comm_to_bf16(float f)
{
    uint32_t u = bits_of(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                           /* to nearest even */
    return (uint16_t)(u >> 16);
}

float comm_from_bf16(uint16_t h)
{
    return float_of((uint32_t)h << 16);
}

/* F. Giesen's float_to_half_fast3_rtne and half_to_float (public domain):
 * IEEE arithmetic does the rounding of half's subnormals */
uint16_t comm_to_fp16(float f)
{
    const uint32_t f32infty = 255u << 23, f16max = (127u + 16u) << 23;
    const uint32_t denorm_magic = ((127u - 15u) + (23u - 10u) + 1u) << 23;
    uint32_t u = bits_of(f);
    const uint32_t sign = u & 0x80000000u;
    u ^= sign;
    uint32_t o;
    if (u >= f16max) /* beyond half's range: infinity; NaN stays (quiet) NaN */
        o = u > f32infty ? 0x7e00u : 0x7c00u;
    else if (u < (113u << 23)) /* half's subnormals and 0 */
        o = bits_of(float_of(u) + float_of(denorm_magic)) - denorm_magic;
    else {
        const uint32_t odd = (u >> 13) & 1u;
        u += (uint32_t)(15 - 127) * (1u << 23) + 0xfffu; /* rebias, round */
        u += odd;
        o = u >> 13;
    }
    return (uint16_t)(o | (sign >> 16));
}

float comm_from_fp16(uint16_t h)
{
    const uint32_t shifted_exp = 0x7c00u << 13;
    uint32_t o = ((uint32_t)h & 0x7fffu) << 13;
    const uint32_t exp = shifted_exp & o;
    o += (127u - 15u) << 23;
    if (exp == shifted_exp) /* infinity, NaN */
        o += (128u - 16u) << 23;
    else if (exp == 0) /* subnormal, 0 */
        o = bits_of(float_of(o + (1u << 23)) - float_of(113u << 23));
    return float_of(o | (((uint32_t)h & 0x8000u) << 16));
}

/* MPI_User_function: inout[i] += in[i], in 16 bits (the sum rounded once) */
static void sum_bf16(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = comm_to_bf16(comm_from_bf16(a[i]) + comm_from_bf16(b[i]));
}

static void sum_fp16(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const uint16_t *a = in;
    uint16_t *b = inout;
    for (int i = 0; i < *len; i++) b[i] = comm_to_fp16(comm_from_fp16(a[i]) + comm_from_fp16(b[i]));
}

int comm_reducer_set_compress(comm_reducer *r, int mode)
{
    if (mode == r->compress) return COMM_OK;
    if (r->compress || (mode != COMM_COMPRESS_BF16 && mode != COMM_COMPRESS_FP16)) return COMM_ERR;
    r->h = malloc(r->total * sizeof *r->h + 1);
    r->scale = malloc((size_t)r->nb * sizeof *r->scale);
    if (!r->h || !r->scale ||
        MPI_Op_create(mode == COMM_COMPRESS_FP16 ? sum_fp16 : sum_bf16, 1, &r->op) != MPI_SUCCESS) {
        free(r->h), free(r->scale);
        r->h = NULL, r->scale = NULL;
        return COMM_ERR;
    }
    for (int k = 0; k < r->nb; k++) r->scale[k] = 1.0f;
    r->compress = mode;
    return COMM_OK;
}

/* fp16: bucket k's scale, 2^e with the largest |x| over all ranks times
 * the world below 2^14 (no partial sum can overflow half's 65504), the
 * same on every rank; 1 for a bucket of zeros or a non-finite largest
 * value (which must reach the trainer's check as it is) */
static int agree_scale(comm_reducer *r, int k)
{
    const float *x = r->buf;
    float m = 0.0f;
    for (size_t i = r->b[k].lo; i < r->b[k].hi; i++) m = fmaxf(m, fabsf(x[i]));
    if (MPI_Allreduce(MPI_IN_PLACE, &m, 1, MPI_FLOAT, MPI_MAX, MPI_COMM_WORLD) != MPI_SUCCESS)
        return COMM_ERR;
    int e = 0;
    r->scale[k] = 1.0f;
    if (m > 0.0f && isfinite(m)) {
        (void)frexpf(m * (float)r->world, &e); /* m * world < 2^e */
        int s = 14 - e;
        r->scale[k] = ldexpf(1.0f, s < -100 ? -100 : s > 100 ? 100 : s);
    }
    return COMM_OK;
}

/* bucket k's 16-bit copy: made before the allreduce, read back after */
static void pack_bucket(comm_reducer *r, int k)
{
    const float *x = r->buf;
    uint16_t *h = r->h;
    const size_t lo = r->b[k].lo, hi = r->b[k].hi;
    if (r->compress == COMM_COMPRESS_BF16)
        for (size_t i = lo; i < hi; i++) h[i] = comm_to_bf16(x[i]);
    else {
        const float s = r->scale[k];
        for (size_t i = lo; i < hi; i++) h[i] = comm_to_fp16(x[i] * s);
    }
}

static void unpack_bucket(comm_reducer *r, int k)
{
    float *x = r->buf;
    const uint16_t *h = r->h;
    const size_t lo = r->b[k].lo, hi = r->b[k].hi;
    if (r->compress == COMM_COMPRESS_BF16)
        for (size_t i = lo; i < hi; i++) x[i] = comm_from_bf16(h[i]);
    else {
        const float inv = 1.0f / r->scale[k]; /* a power of two: exact */
        for (size_t i = lo; i < hi; i++) x[i] = comm_from_fp16(h[i]) * inv;
    }
}

int comm_reducer_buckets(const comm_reducer *r)
{
    return r->nb;
}

double comm_reducer_seconds(const comm_reducer *r)
{
    return r->seconds;
}

void comm_reducer_begin(comm_reducer *r)
{
    memset(r->tensor_done, 0, (size_t)r->n * sizeof(int));
    for (int k = 0; k < r->nb; k++) r->b[k].pending = r->tensor_count[k];
    r->nreq = 0;
    r->next = 0;
}

/* Reduces buf[lo, hi) across ranks: started non-blocking with overlap, at
 * once without. */
static int reduce_range(comm_reducer *r, size_t lo, size_t hi)
{
    const int n = (int)(hi - lo);
    if (r->overlap)
        return MPI_Iallreduce(MPI_IN_PLACE, r->buf + lo, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                              &r->req[r->nreq++]) == MPI_SUCCESS
                   ? COMM_OK
                   : COMM_ERR;
    return MPI_Allreduce(MPI_IN_PLACE, r->buf + lo, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) ==
                   MPI_SUCCESS
               ? COMM_OK
               : COMM_ERR;
}

static int start_bucket(comm_reducer *r, int k)
{
    if (!r->compress) return reduce_range(r, r->b[k].lo, r->b[k].hi);
    if (r->compress == COMM_COMPRESS_FP16 && agree_scale(r, k) != COMM_OK) return COMM_ERR;
    pack_bucket(r, k);
    const size_t lo = r->b[k].lo;
    const int n = (int)(r->b[k].hi - lo);
    if (r->overlap)
        return MPI_Iallreduce(MPI_IN_PLACE, r->h + lo, n, MPI_UINT16_T, r->op, MPI_COMM_WORLD,
                              &r->req[r->nreq++]) == MPI_SUCCESS
                   ? COMM_OK
                   : COMM_ERR;
    if (MPI_Allreduce(MPI_IN_PLACE, r->h + lo, n, MPI_UINT16_T, r->op, MPI_COMM_WORLD) !=
        MPI_SUCCESS)
        return COMM_ERR;
    unpack_bucket(r, k);
    return COMM_OK;
}

int comm_reducer_ready(comm_reducer *r, int first, int end)
{
    if (!r->overlap || r->world == 1) return COMM_OK;
    double t0 = MPI_Wtime();
    int rc = COMM_OK;
    for (int i = first < 0 ? 0 : first; i < end && i < r->n; i++) {
        if (r->tensor_done[i]) continue;
        r->tensor_done[i] = 1;
        r->b[r->of_tensor[i]].pending--;
    }
    /* collectives must start in the same order on every rank: buckets start
     * in index order, each once all its tensors are final, whatever order the
     * announcements came in */
    while (r->next < r->nb && r->b[r->next].pending == 0)
        if (start_bucket(r, r->next++) != COMM_OK) rc = COMM_ERR;
    /* MPI progresses non-blocking collectives inside MPI calls: give it one */
    int flag;
    if (r->nreq > 0 && MPI_Testall(r->nreq, r->req, &flag, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
        rc = COMM_ERR;
    r->seconds += MPI_Wtime() - t0;
    return rc;
}

int comm_reducer_finish(comm_reducer *r)
{
    if (r->world == 1) return COMM_OK;
    double t0 = MPI_Wtime();
    int rc = COMM_OK;
    comm_wait_enter();
    /* without overlap nothing has started yet: the loss/token tail (written
     * after backward) rides with the first bucket, which ends where the tail
     * begins, so a step makes one collective fewer */
    int tail_done = 0;
    if (!r->overlap && !r->compress && r->next == 0 && r->tail > 0 &&
        r->total + r->tail - r->b[0].lo <= (size_t)INT_MAX) {
        if (reduce_range(r, r->b[0].lo, r->total + r->tail) != COMM_OK) rc = COMM_ERR;
        r->next = 1;
        tail_done = 1;
    }
    /* what backward did not announce (or everything, without overlap), in
     * bucket order: the same order on every rank */
    while (r->next < r->nb)
        if (start_bucket(r, r->next++) != COMM_OK) rc = COMM_ERR;
    /* the loss/token tail, written after backward: last */
    if (r->tail > 0 && !tail_done && reduce_range(r, r->total, r->total + r->tail) != COMM_OK)
        rc = COMM_ERR;
    if (r->nreq > 0 && MPI_Waitall(r->nreq, r->req, MPI_STATUSES_IGNORE) != MPI_SUCCESS)
        rc = COMM_ERR;
    r->nreq = 0;
    if (r->compress && r->overlap && rc == COMM_OK)
        for (int k = 0; k < r->nb; k++) unpack_bucket(r, k);
    comm_wait_leave();
    r->seconds += MPI_Wtime() - t0;
    return rc;
}

/* 64-bit checksum of a float array's bytes: four interleaved multiply-xor
 * lanes (fast enough to run over tens of MB every few hundred steps). */
static uint64_t checksum(const float *x, size_t n)
{
    uint64_t h[4] = {0x9e3779b97f4a7c15u, 0xbf58476d1ce4e5b9u, 0x94d049bb133111ebu,
                     0x2545f4914f6cdd1du};
    const uint32_t *w = (const uint32_t *)(const void *)x;
    size_t i = 0;
    for (; i + 4 <= n; i += 4)
        for (int k = 0; k < 4; k++) h[k] = (h[k] ^ w[i + k]) * 0x100000001b3u;
    for (; i < n; i++) h[0] = (h[0] ^ w[i]) * 0x100000001b3u;
    uint64_t s = n;
    for (int k = 0; k < 4; k++) s = (s ^ h[k] ^ (h[k] >> 29)) * 0xff51afd7ed558ccdu;
    return s ^ (s >> 32);
}

int comm_reducer_check_replicas(comm_reducer *r, const float *params, int *tensor, int *rank)
{
    *tensor = -1, *rank = -1;
    if (r->world == 1) return 0;
    for (int i = 0; i < r->n; i++) r->hash[i] = checksum(params + r->off[i], r->size[i]);
    /* rank 0's sums travel to all; each rank finds its first difference */
    uint64_t *mine = r->hash, *ref = r->hash + r->n;
    int me = comm_rank(), first = INT_MAX;
    memcpy(ref, mine, (size_t)r->n * sizeof *ref);
    if (MPI_Bcast(ref, r->n, MPI_UINT64_T, 0, MPI_COMM_WORLD) != MPI_SUCCESS) return COMM_ERR;
    for (int i = 0; i < r->n; i++)
        if (ref[i] != mine[i]) {
            first = i;
            break;
        }
    int in[2] = {first, me}, outv[2];
    if (MPI_Allreduce(in, outv, 1, MPI_2INT, MPI_MINLOC, MPI_COMM_WORLD) != MPI_SUCCESS)
        return COMM_ERR;
    if (outv[0] == INT_MAX) return 0;
    *tensor = outv[0], *rank = outv[1];
    return 1;
}

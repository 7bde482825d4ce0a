/* comm/: MPI, and the metrics wire's transport and message codec (wire.h).
 * Nothing else in seqpar calls MPI. A process started without mpirun is a
 * world of one (MPI singleton), through the same interface. */
#ifndef SEQPAR_COMM_H
#define SEQPAR_COMM_H

#include <stddef.h>
#include <stdint.h>

enum { COMM_OK = 0, COMM_ERR = -1 };

/* Initialises MPI (errors return instead of aborting, so callers can print a
 * message first). */
int comm_init(int *argc, char ***argv);
void comm_finalize(void);
int comm_rank(void);
int comm_world(void);
/* Ranks sharing this node (MPI_Comm_split_type shared) and this rank's index
 * among them. */
int comm_local_size(void);
int comm_local_rank(void);
double comm_time(void); /* seconds, MPI_Wtime */
/* Whether this process is inside a blocking collective (an allreduce, a
 * broadcast, a barrier, the reducer's finish): waiting for the other ranks.
 * Safe to call from any thread. */
int comm_waiting(void);

/* In-place sums over all ranks. */
int comm_allreduce_float(float *x, size_t n);
int comm_allreduce_double(double *x, size_t n);
int comm_allreduce_max_double(double *x, size_t n);
/* Exact integer sums (the deterministic mode's fixed-point lanes), and an
 * elementwise maximum of ints. */
int comm_allreduce_int64(int64_t *x, size_t n);
int comm_allreduce_max_int(int *x, int n);
int comm_bcast(void *buf, size_t bytes, int root);
int comm_barrier(void);

/* Ends every rank of the job (MPI_Abort) with `code`; never returns. */
_Noreturn void comm_abort(int code);

/* ------------------------------------------------------ thread placement */

/* OpenBLAS threads for this rank: `requested` when > 0; otherwise the node's
 * online cores divided among the ranks on this node (MPI_Comm_split_type
 * shared), capped by the cores this process may run on (its affinity mask,
 * which mpirun's binding sets), and at least 1. `why` (may be NULL) gets a
 * short account of the choice for the start-up banner. */
int comm_thread_plan(int requested, char *why, size_t whylen);

/* ----------------------------------------------------- in-process workers
 *
 * A pool of n workers: the caller is worker 0 and n − 1 threads are the
 * others. comm_pool_run calls fn(ctx, w) once on every worker w and returns
 * when all have returned (the runs' effects are then visible to the
 * caller). Workers never call MPI. A NULL pool, or one of 1, runs fn(ctx, 0)
 * on the caller. With `spin`, a waiting worker (or the caller) spins for a
 * fraction of a millisecond before it sleeps: right when each has a core of
 * its own, wrong when threads outnumber cores. */
typedef struct comm_pool comm_pool;
typedef void (*comm_pool_fn)(void *ctx, int w);
int comm_pool_create(comm_pool **out, int n, int spin);
int comm_pool_size(const comm_pool *p);
void comm_pool_run(comm_pool *p, comm_pool_fn fn, void *ctx);
void comm_pool_free(comm_pool *p);

/* ------------------------------------------------- gradient reduction
 *
 * The gradient buffer holds n tensors (float offsets off[i], sizes size[i],
 * ascending, non-overlapping) within its first `len` floats (padding after a
 * tensor included), then `tail` floats of per-step sums (loss, token count)
 * at buf + len. Tensors are grouped into buckets: contiguous runs of
 * about `bucket_bytes`, formed from the last tensor backwards, which is the
 * order in which backward finishes them (PyTorch DDP's and Horovod's
 * scheme). bucket_bytes 0 makes one bucket.
 *
 * Per step: comm_reducer_begin; comm_reducer_ready as backward finishes
 * tensors; comm_reducer_finish. With `overlap`, a bucket's non-blocking
 * allreduce starts as soon as its last tensor is final and later calls let
 * it progress; without, finish reduces the buckets one after another, the
 * tail together with the first (they are adjacent). With overlap the tail
 * is reduced last. Every rank must announce the same tensors in the
 * same order (the model does: its backward is the same on every rank). */
typedef struct comm_reducer comm_reducer;

int comm_reducer_create(comm_reducer **out, float *buf, size_t len, const size_t *off,
                        const size_t *size, int n, size_t tail, size_t bucket_bytes, int overlap);
void comm_reducer_free(comm_reducer *r);
int comm_reducer_buckets(const comm_reducer *r);
void comm_reducer_begin(comm_reducer *r);
int comm_reducer_ready(comm_reducer *r, int first, int end);
int comm_reducer_finish(comm_reducer *r);
/* Gradient compression on the wire (--grad-compress): buckets travel as
 * 16-bit numbers and are summed in 16 bits (each partial sum rounded), the
 * loss/token tail stays float32. COMM_COMPRESS_BF16: bfloat16 (float32's
 * range, 8 significant bits). COMM_COMPRESS_FP16: IEEE half (11 bits) with
 * each bucket scaled by a power of two agreed across ranks first (one
 * small MPI_MAX allreduce per bucket) so that the sum's largest element is
 * near 2^14: no overflow, little underflow. Off (COMM_COMPRESS_NONE, the
 * default) the reducer is what it was, bit for bit. COMM_ERR when memory
 * for the 16-bit copy cannot be had. */
enum { COMM_COMPRESS_NONE = 0, COMM_COMPRESS_BF16 = 1, COMM_COMPRESS_FP16 = 2 };
int comm_reducer_set_compress(comm_reducer *r, int mode);
/* The conversions it uses (round to nearest even; NaN stays NaN, float
 * beyond half's range becomes infinity), for the tests. */
uint16_t comm_to_bf16(float f);
float comm_from_bf16(uint16_t h);
uint16_t comm_to_fp16(float f);
float comm_from_fp16(uint16_t h);
/* Seconds spent inside the reducer's calls (communication not hidden behind
 * compute, including waiting for slower ranks) since creation. */
double comm_reducer_seconds(const comm_reducer *r);

/* Replica check (collective): compares a 64-bit checksum of every tensor of
 * `params` (same layout as the reducer's buffer) across ranks. Returns 0
 * when all ranks hold identical bytes; 1 when not, with *tensor = the first
 * tensor that differs on some rank and *rank = the lowest rank whose copy of
 * it differs from rank 0's; COMM_ERR when the collective fails. */
int comm_reducer_check_replicas(comm_reducer *r, const float *params, int *tensor, int *rank);

/* printf on rank 0 only (stdout), flushed. */
void comm_printf0(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

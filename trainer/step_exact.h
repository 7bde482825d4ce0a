/* The deterministic mode's step (--deterministic, issue 27): the same bits
 * at any world size and any --workers.
 *
 * Every global batch of R rows is cut into S = ceil(R / 8) shards of 8 rows
 * (the last may be shorter), fixed by the global row order, never by the
 * rank. Rank r of W holds shards [S·r/W, S·(r+1)/W), each of its --workers
 * a contiguous share of those. A shard's forward and backward run on a
 * replica sized for 8 rows with one OpenBLAS thread, so the same shard gives
 * the same gradient bits wherever it runs. Shard gradients are then summed
 * exactly (comm/exact_sum.h): per tensor, the largest magnitude over every
 * shard of every rank (an integer MPI_MAX of exponents) fixes one scale, each
 * shard becomes int64 lanes at that scale, and lanes are added on the worker,
 * over workers and over ranks (MPI_SUM over int64), all exact, so the
 * grouping never shows. The loss sum rides in one lane at a fixed scale, the
 * token count and the stop request as integers. The summed gradient is
 * converted to float once; the norm, clipping and update that follow (the
 * step engine's) are elementwise or in a fixed chunk order, the same on
 * every rank.
 *
 * Memory: each rank keeps its shards' float gradients until the scale is
 * known (ceil(S / W) × the parameters), plus int64 lanes per worker. */
#ifndef SEQPAR_TRAINER_STEP_EXACT_H
#define SEQPAR_TRAINER_STEP_EXACT_H

#include <stddef.h>

#include "config.h"
#include "model.h"
#include "position.h"
#include "train_data.h"

enum { EXACT_SHARD_ROWS = 8 };
/* A shard's loss sum (nats) stays below 2^40: it would take 8 rows of 10^5
 * tokens at over 10^6 nats each to reach it. Its lane's resolution is then
 * 2^(40 + ceil(log2 shards) − 62) nats: 2^-19, about 2e-6, for a batch of 64 rows. */
enum { EXACT_LOSS_EXPONENT = 40 };

typedef struct step_exact step_exact;

typedef struct exact_result {
    double loss_sum, tokens; /* global: exact sums */
    double local_loss;       /* this rank's shards' */
    long local_tokens;
    double fp, fe; /* this rank's matmul work */
    double data_s; /* seconds taking and filling the rows (the workers' mean) */
    int stop;      /* some rank asked to stop */
    int nonfinite; /* some shard's loss or gradient was not finite: the gradient is not summed */
    int bad_grad, bad_loss; /* which (loss_sum is NaN only for a non-finite loss) */
} exact_result;

/* Rows [lo, hi) of a full global batch of `batch` rows that rank `rank` of
 * `world` holds: its whole shards. */
void step_exact_rows(int batch, int rank, int world, int *lo, int *hi);

/* m: the rank's model, whose parameters the shard replicas read and whose
 * gradient buffer receives the sum. 0, or -1 with one line in err. */
int step_exact_create(step_exact **out, const train_config *c, const train_data *d, model *m,
                      int rank, int world, char *err, size_t n);
void step_exact_free(step_exact *x);

/* The step at pos (inject_nan: the test-only SEQPAR_FAULT_NAN, a NaN in
 * this rank's first shard's gradient): this rank's shards (LM carried state: the rank's rows
 * state_h/state_c, (L, rows, H), whose first row is global row row_lo; NULL
 * for none), the exact sums over workers and ranks, the gradient written to
 * m's buffer (unless nonfinite). STEP_OK (0), STEP_EBATCH, STEP_ECOMM. */
int step_exact_run(step_exact *x, const train_pos *pos, int stop, int inject_nan, float *state_h,
                   float *state_c, int row_lo, int rows, exact_result *r);

double step_exact_comm_seconds(const step_exact *x);

#endif

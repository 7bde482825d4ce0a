/* The step engine: one training step, from a position in the sample order
 * to the update applied on every rank.
 *
 *   step_run(engine, pos) →
 *     1. each in-process worker (--workers W; one: the caller) takes its rows
 *        of the global batch at pos, as virtual rank rank·W + w of world·W,
 *        and runs forward and backward, adding Σ-loss gradients (--accum K:
 *        K micro-batches, parts of the global batch, one after the other,
 *        adding into the same gradient; with --overlap on only the last
 *        announces its gradients);
 *     2. the workers' gradients are summed into the rank's buffer, in worker
 *        order (two workers give a two-rank allreduce's bits);
 *     3. the loss sum and token count ride in the gradient buffer's tail
 *        (layout below), so one allreduce (bucketed, optionally overlapped
 *        with backward: comm_reducer) sums gradients and counts over ranks;
 *     4. the global norm of the token-averaged gradient, the clipping factor,
 *        and the optimizer's update with the gradient zeroed, shared out over
 *        the workers by ranges of the buffer — one update path for any W.
 *   A batch with no target tokens leaves the parameters as they were.
 *
 * The engine owns the workers, their replicas and batch buffers, the
 * reducer, the optimizer and an LM's carried hidden state. It allocates
 * nothing once created. */
#ifndef SEQPAR_TRAINER_STEP_H
#define SEQPAR_TRAINER_STEP_H

#include "config.h"
#include "model.h"
#include "position.h"
#include "train_data.h"

typedef struct step_engine step_engine;

enum { STEP_OK = 0, STEP_EBATCH = -1, STEP_ECOMM = -2 };

typedef struct step_result {
    double loss_sum, tokens; /* global sums, as reduced (float) */
    double grad_norm;        /* of the averaged gradient before clipping: this step's when it
                                was measured (NaN for a non-finite one), else the last update's */
    double local_loss;       /* this rank's loss sum and tokens (double) */
    long local_tokens;
    int updated;   /* 0: no update (no target tokens, or nonfinite); nothing changed */
    int nonfinite; /* the global loss or gradient norm was not finite: not applied */
    int stop;      /* some rank asked to stop (step_run's stop): every rank learns it here */
} step_result;

/* m: this rank's model (its parameters are the replica every worker
 * shares). Returns 0, or -1 with one line in err (out of memory, a tensor
 * too large for the reducer, threads). */
int step_create(step_engine **out, const train_config *c, const train_data *d, model *m, int rank,
                int world, char *err, size_t n);
void step_free(step_engine *e);

/* The training step at pos (pos->step steps so far). `stop`: this rank was
 * asked to stop (a signal); the request rides in the allreduce, so every
 * rank learns from res->stop whether any was. A global loss or gradient norm
 * that is not finite is found before the update, which is then not applied
 * (res->nonfinite; every rank decides alike). STEP_OK; STEP_EBATCH when a
 * batch holds a token id outside the vocabulary; STEP_ECOMM when the
 * allreduce failed. */
int step_run(step_engine *e, const train_pos *pos, int stop, step_result *res);

optimizer *step_optimizer(step_engine *e);
/* The rate of the next update (the schedule's, schedule.h). */
void step_set_lr(step_engine *e, double lr);

/* Test-only faults: SEQPAR_TEST_SLOW_RANK=RANK:MS, that rank sleeps MS
 * milliseconds in every step (counted as compute: a straggler for the
 * monitor's timeline); SEQPAR_FAULT_PERTURB=RANK:STEP:TENSOR, that rank nudges
 * that tensor after that step, so the replica check has something to find;
 * SEQPAR_FAULT_NAN=RANK:STEP, that rank's gradient holds a NaN at that step
 * (its loss stays finite). 0, or -1 with the line in err when a variable is
 * malformed. */
int step_fault_from_env(step_engine *e, char *err, size_t n);
/* After the update of step `step`: the fault, if due, then (every
 * --replica-check steps, over several ranks) the check that every rank holds
 * the same bytes: 0 when they do, 1 with the first differing *tensor and
 * *rank, -1 when the collective failed. */
int step_check_replicas(step_engine *e, long step, int *tensor, int *rank);

/* An LM's hidden state carried across batches (sequential sampler). */
int step_carries_state(const step_engine *e);
/* Zeroes it (an epoch's first batch). */
void step_reset_state(step_engine *e);
/* The global state (L, batch, H), h and c: gathered from every rank's rows
 * (collective; 0 or -1 when the allreduce fails), or scattered back to the
 * rows after the caller filled it (a resume). */
int step_gather_state(step_engine *e);
void step_scatter_state(step_engine *e);
float *step_global_state(step_engine *e, int c);

/* Matmul work of this rank's steps so far: padded, executed (FLOP). */
void step_work(const step_engine *e, double flops[2]);
/* Seconds of this rank's steps so far by phase: forward and backward (and
 * the norm, clipping and update), waiting in the allreduce's finish (what
 * backward did not hide), taking and filling the batch. */
enum { STEP_COMPUTE, STEP_WAIT, STEP_DATA, STEP_PHASES };
void step_seconds(const step_engine *e, double s[STEP_PHASES]);
/* Seconds in the reducer's calls, and its bucket count. */
double step_comm_seconds(const step_engine *e);
int step_buckets(const step_engine *e);

#endif

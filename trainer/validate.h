/* Validation (--valid N) and what follows from its figure: the best model
 * kept as DIR/best.h5, and early stopping.
 *
 * The held-out work is sharded over the ranks in contiguous blocks; the
 * loss sums, token counts and (translation) BLEU's n-gram match counts and
 * lengths are summed with one allreduce, so the figures are those of one
 * process:
 *  translation: loss on the held-out pairs, and corpus BLEU-4 of their greedy
 *               (or --eval-beam K) translations against the full references;
 *  LM:          loss on the held-out last N tokens, read as LM_EVAL_STREAMS
 *               streams (a fixed count: the figure does not depend on the
 *               world size) in chunks of num_steps with carried state. */
#ifndef SEQPAR_TRAINER_VALIDATE_H
#define SEQPAR_TRAINER_VALIDATE_H

#include "config.h"
#include "model.h"
#include "position.h"
#include "ranks.h"
#include "rundir.h"
#include "telemetry.h"
#include "train_data.h"

typedef struct validator validator;

/* 0, or -1 with one line in err (out of memory). */
int validator_create(validator **out, const train_config *c, const train_data *d, model *m,
                     int rank, int world, char *err, size_t n);
void validator_free(validator *v);

/* One evaluation (collective): figures NaN when there is nothing held out.
 * Heartbeats go to tel while it runs; a failure ends the job (r). Returns 1
 * when some rank was asked to stop (stop_signal.h) before its end: the
 * request rides in the evaluation's allreduce. */
int validator_evaluate(validator *v, telemetry *tel, ranks *r, double *loss, double *ppl,
                       double *bleu);

enum { VALID_GO_ON = 0, VALID_EARLY_STOP = 1, VALID_STOP_SIGNAL = 2 };
/* One evaluation and its consequences: printed (rank 0), sent, kept in figs
 * for checkpoints, best.h5 written when the figure improved (BLEU for
 * translation, perplexity for the LM), evaluations since the best counted
 * for --early-stop. `when` and `at` name it ("epoch", 3). Returns whether
 * training goes on, stops early, or stops because a rank was signalled. */
int validator_round(validator *v, rundir *rd, const char *when, long at);
/* The step of the last evaluation (-1: none yet). */
long validator_last_step(const validator *v);

#endif

/* The learning-rate schedule (--lr-schedule, --warmup, --lr-min,
 * --lr-factor, --lr-patience): the rate of each update, a pure function
 * of the update's number, the run's length and, for plateau, the state
 * kept in train_figs (and so in every checkpoint): a resume continues with
 * exactly the rates the run would have had. Formulas in docs/DESIGN.md. */
#ifndef SEQPAR_TRAINER_SCHEDULE_H
#define SEQPAR_TRAINER_SCHEDULE_H

#include "config.h"
#include "position.h"

/* The rate of update u (1-based: the update after u − 1 steps) of a run of
 * `total` updates (cosine's length), given plateau's state in f. With the
 * defaults (constant, no warm-up) it is --lr exactly. */
double lr_schedule_at(const train_config *c, long total, const train_figs *f, long u);

/* Plateau's state for a fresh run: the rate at --lr, no best loss yet. */
void lr_plateau_start(const train_config *c, train_figs *f);
/* An evaluation's validation loss (--lr-schedule plateau; nothing
 * otherwise): a loss lower than the best so far resets the count; the
 * --lr-patience-th evaluation in a row without one multiplies the rate by
 * --lr-factor (not below --lr-min) and resets the count. Returns 1 when the
 * rate dropped. */
int lr_plateau_observe(const train_config *c, train_figs *f, double valid_loss);

#endif

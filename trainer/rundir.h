/* The run directory (--checkpoint-dir): checkpoints written by rank 0 and
 * learnt by all, retention, resuming (--resume auto|FILE) and the best
 * model (best.h5). Nodes need no shared filesystem: rank 0 reads and
 * broadcasts. */
#ifndef SEQPAR_TRAINER_RUNDIR_H
#define SEQPAR_TRAINER_RUNDIR_H

#include "config.h"
#include "model.h"
#include "position.h"
#include "ranks.h"
#include "step.h"
#include "train_data.h"

typedef struct rundir {
    const train_config *cfg;
    ranks *r;
    const train_data *data;
    model *m;
    step_engine *eng; /* the optimizer and an LM's carried state */
    train_pos *pos;
    train_figs *figs;
    long saved_step; /* the step of the last checkpoint written (-1: none) */
} rundir;

/* Creates the directory and removes unfinished writes of killed runs (rank
 * 0); a directory that cannot be made ends the run (exit 2). */
void rundir_open(rundir *d);

/* --resume: auto (the newest checkpoint that verifies, or a fresh start
 * when there is none) or FILE. Restores parameters, optimizer, position,
 * figures and carried state on every rank; a checkpoint of another run
 * ends the run (exit 2). Then keeps a best.h5 of another run aside. */
void rundir_resume(rundir *d);

/* Every rank calls it: a checkpoint at path, written by rank 0 and learnt by
 * all. Returns 0, or -1 after a failed write (rank 0 said why and `then`:
 * what happens next; earlier checkpoints stay). */
int rundir_save(rundir *d, const char *path, const char *then);
/* The step's checkpoint DIR/ckpt-<step>.h5 (once per step), then retention;
 * as rundir_save. Nothing without --checkpoint-dir. */
int rundir_checkpoint(rundir *d, const char *then);
/* A checkpoint during training: a failed write stops the run
 * (--on-checkpoint-error stop: every rank exits 1) or is survived. */
void rundir_checkpoint_or_stop(rundir *d);
/* DIR/best.h5 of the current parameters (a validation's best). */
void rundir_save_best(rundir *d);

#endif

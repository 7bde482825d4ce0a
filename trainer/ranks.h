/* The ranks' agreement and the training program's error policy.
 *
 * Errors, by who can hit them:
 *  ranks_die0:      every rank hits it alike (options, configuration): rank 0
 *                   says it, every rank exits with `code`;
 *  ranks_agree:     a collective check of something that may fail on some
 *                   ranks only (a file missing on one node, memory): the
 *                   lowest failing rank says its message, every rank exits
 *                   with `code`;
 *  ranks_die_local: a failure of this rank alone mid-run: it says so and
 *                   ends the whole job (MPI_Abort), so no rank waits forever.
 * Every message is one line on stderr, "seqpar train: …", and an `error`
 * event on the metrics wire. */
#ifndef SEQPAR_TRAINER_RANKS_H
#define SEQPAR_TRAINER_RANKS_H

#include "config.h"
#include "telemetry.h"

typedef struct ranks {
    int rank, world;
    telemetry *tel; /* where error events go (NULL: nowhere); closed on the way out */
} ranks;

_Noreturn void ranks_die0(ranks *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void ranks_agree(ranks *r, int ok, int code, const char *msg);
_Noreturn void ranks_die_local(ranks *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The lowest rank whose ok is false, or -1 when every rank's is true
 * (collective). */
int ranks_first_failing(const ranks *r, int ok);
/* Ends every rank after the speaker has said why (collective). */
_Noreturn void ranks_stop_after(ranks *r, int speaker, int code);
/* Ends the run on every rank with `code` after a failure all of them know
 * of and one of them has reported (collective). */
_Noreturn void ranks_exit(ranks *r, int code);

/* A launcher that started N > 1 processes which MPI does not join (srun
 * without PMI, a wrong mpirun for this MPI) gives N worlds of one: N
 * trainings writing into one checkpoint directory. When SLURM_STEP_NUM_TASKS
 * (srun's, for the step), OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_SIZE
 * says N > 1 but the world is 1, the run stops here (exit 2) with one line
 * naming the variable and the likely fix. */
void ranks_check_launch(ranks *r);

/* Every rank must train with rank 0's options (only where the data lies and
 * the OpenBLAS threads may differ between nodes). */
void ranks_same_options(ranks *r, const train_config *c);
/* "rank R: " before a message about this rank's own data, over several ranks. */
const char *ranks_tag(const ranks *r, char *buf, size_t n);

#endif

/* Where a rank's training time goes (DESIGN.md, "Metrics wire"): seconds
 * computing (forward, backward, the update), waiting in the gradient
 * allreduce beyond what backward hid, reading data, validating and
 * checkpointing. The step engine measures the first three (step_seconds),
 * the loop the last two (timeline_add around validation and checkpoints);
 * every logging window's share goes on the wire (telemetry_phases), and the
 * end summary prints every rank's split (timeline_report). */
#ifndef SEQPAR_TRAINER_TIMELINE_H
#define SEQPAR_TRAINER_TIMELINE_H

#include "step.h"
#include "wire.h"

/* in wire_phase_names' order */
enum { PHASE_COMPUTE, PHASE_WAIT, PHASE_DATA, PHASE_EVAL, PHASE_CHECKPOINT, PHASES };
_Static_assert(PHASES == WIRE_PHASES, "the phases are the wire's");

typedef struct timeline {
    const step_engine *eng;
    double t0;           /* when training started (comm_time) */
    double loop[PHASES]; /* the loop's own: eval, checkpoint */
    double sent[PHASES]; /* the totals at the last window */
} timeline;

void timeline_start(timeline *tl, const step_engine *e);
/* Adds the seconds since `since` (comm_time) to phase p. */
void timeline_add(timeline *tl, int p, double since);
/* This rank's totals so far. */
void timeline_totals(const timeline *tl, double out[PHASES]);
/* The seconds of each phase since the last call (the logging window). */
void timeline_window(timeline *tl, double out[PHASES]);
/* Collective: rank 0 prints every rank's split of its time since
 * timeline_start (up to 64 ranks one a line, then the slowest and the
 * others' range). */
void timeline_report(const timeline *tl, int rank, int world);

#endif

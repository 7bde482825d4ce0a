/* trainer/monitor/collector_state.h: the collector's state, shared by the
 * collector (collector.c, which writes it) and its renderings
 * (render_json.c, render_prom.c, which read it under the lock). Private to
 * trainer/monitor/. */
#ifndef SEQPAR_MONITOR_COLLECTOR_STATE_H
#define SEQPAR_MONITOR_COLLECTOR_STATE_H

#include <pthread.h>

#include "collector.h"

#define MAX_RUNS   64
#define MAX_POINTS 20000 /* per series; beyond, every other point is dropped */
#define PENDING    64    /* steps awaiting some ranks' train messages */
#define MAX_EVENTS 500

typedef struct train_pt {
    long step;
    double loss, ppl, tps, gnorm, lr;
} train_pt;

typedef struct eval_pt {
    long step;
    double val_loss, val_ppl, bleu;
} eval_pt;

typedef struct pending_step {
    long step;
    int count; /* 0: free */
    double loss, tokens, tps, gnorm, lr;
} pending_step;

typedef struct rank_state {
    long step, last_train_step;
    double tps, last_seen;
    int done, seen;
    int waiting; /* its last message was a heartbeat saying it waits for other ranks */
    /* its time by phase (wire_phase_names): the last window's, and the sums */
    double ph_win[WIRE_PHASES], ph_total[WIRE_PHASES];
    long ph_step;                /* the step its last window ended at; -1: none sent */
    int slow_windows, straggler; /* complete windows in a row it was slow in; a straggler */
    int conn[2]; /* the connections its messages came over (-1: none); a rank has two */
    int gone;    /* they all closed before it ended: lost at once */
} rank_state;

typedef struct event_rec {
    double time;
    long step;
    int rank;
    char event[WIRE_EVENT_MAX + 1];
    char *detail;
} event_rec;

typedef struct run {
    char id[WIRE_RUN_MAX + 1];
    int world;
    char *config;
    double started, last_seen;
    int errored;
    int stopped;         /* a rank sent "stopped": ended by a signal, resumable */
    double nan_skips;    /* updates skipped (--on-nan skip), the latest count */
    double tokens_total; /* target tokens of every train message received */
    double lr;           /* the learning rate of the latest train message (NaN: none) */
    long step, epoch;
    train_pt *tr;
    int ntr, captr;
    eval_pt *ev;
    int nev, capev;
    pending_step pend[PENDING];
    rank_state *ranks;
    wire_sample *samples;
    int nsamples;
    event_rec events[MAX_EVENTS];
    int nevents, event_head; /* ring: the oldest at event_head when full */
    /* the timeline: the last COLLECTOR_TL_WINDOWS complete windows of the
     * first tl_ranks ranks, a ring (the oldest at tl_head when full) */
    long tl_step[COLLECTOR_TL_WINDOWS];
    float *tl; /* (COLLECTOR_TL_WINDOWS, tl_ranks, WIRE_PHASES) */
    int tl_ranks, tl_n, tl_head;
    int has_phases; /* some rank sent its phases */
} run;

struct collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wire_msg msg; /* the message being added (large: not on the stack) */
    int stopping; /* collector_wake was called: waiters return */
    run *runs[MAX_RUNS];
    int nruns;
    long ok, malformed, oversized, version;
    char last_run[WIRE_RUN_MAX + 1];
};

/* A run's latest figures, by name; NaN until reported. */
typedef enum {
    FIG_STEP,
    FIG_EPOCH,
    FIG_WORLD,
    FIG_RUNNING,
    FIG_LOSS,
    FIG_PPL,
    FIG_TPS,
    FIG_GNORM,
    FIG_VLOSS,
    FIG_VPPL,
    FIG_BLEU
} figure;

/* States at `now`: a rank's ok / late / lost / done, a run's running /
 * done / lost / stopped. */
const char *collector_rank_state(const rank_state *rk, double now);
const char *collector_run_state(const run *r, double now);
/* The run's latest figure f (the /api/runs summary, the /metrics gauges). */
double collector_figure(const run *r, figure f, double now);

#endif

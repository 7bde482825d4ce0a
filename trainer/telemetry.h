/* The trainer's side of the metrics wire (DESIGN.md, "Metrics wire"): what
 * a rank sends to seqpar monitor, never blocking training. Every function
 * takes NULL (no --monitor) and then does nothing. */
#ifndef SEQPAR_TRAINER_TELEMETRY_H
#define SEQPAR_TRAINER_TELEMETRY_H

#include <stddef.h>

#include "position.h"
#include "wire.h"

typedef struct telemetry telemetry;

/* Every rank calls it (collective): one run id for all (run, else rank 0's
 * date, time and pid), then a connection to endpoint (CURVE with the
 * trainers' key file of seqpar monitor --gen-keys, when keyfile is not NULL). Messages carry *pos
 * as it is when they are sent. 0, or -1 with a message in err. */
int telemetry_open(telemetry **out, const char *endpoint, const char *keyfile, const char *run,
                   const train_pos *pos, char *err, size_t n);
const char *telemetry_run_id(const telemetry *t);
void telemetry_event(telemetry *t, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* This rank's sums over a logging window of window_s seconds: the monitor
 * sums loss and tokens over ranks, so its loss is the global one printed. */
void telemetry_train(telemetry *t, double loss_sum, double tokens, double grad_norm, double lr,
                     double window_s, long nan_skips);
/* This rank's seconds by phase (wire_phase_names) over the logging window,
 * sent with the next telemetry_train. */
void telemetry_phases(telemetry *t, const double s[WIRE_PHASES]);
/* Rank 0's validation figures and sample translations. */
void telemetry_eval(telemetry *t, double val_loss, double val_ppl, double bleu,
                    const wire_sample *samples, int nsamples);
/* A heartbeat when nothing was sent for 2 s, so the monitor can tell a quiet
 * rank from a lost one. */
void telemetry_heartbeat(telemetry *t);
long telemetry_dropped(const telemetry *t);
/* Sends what is queued (waiting at most 0.5 s: a dead monitor costs that,
 * once) and closes. */
void telemetry_close(telemetry *t);

#endif

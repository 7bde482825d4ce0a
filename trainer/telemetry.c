/* The trainer's messages on the metrics wire (telemetry.h). */
#include "telemetry.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"

struct telemetry {
    wire_pub *pub;
    char run_id[WIRE_RUN_MAX + 1];
    int rank, world;
    const train_pos *pos;
    _Atomic double last_beat;   /* when this rank last sent anything */
    wire_msg msg;               /* the message being written */
    double phases[WIRE_PHASES]; /* for the next train message (NaN: none) */
    int have_phases;
    /* the beating thread: while the loop is busy (blocked in a collective, a
     * long step) it says so every 2 s, on a connection of its own */
    wire_pub *beat_pub;
    wire_msg beat;
    atomic_long step, epoch; /* the position as last sent */
    atomic_int stop;
    pthread_t thread;
    int beating;
};

/* While the loop has sent nothing for 2 s: a heartbeat saying whether this
 * rank waits in a collective for the others, or works. A rank stopped
 * (SIGSTOP, a debugger, swapped out) stays silent: the monitor can tell it
 * from the ranks that wait for it. */
static void *beat_loop(void *arg)
{
    telemetry *t = arg;
    while (!atomic_load(&t->stop)) {
        struct timespec nap = {0, 250000000L};
        nanosleep(&nap, NULL);
        const double now = wire_time();
        if (now - atomic_load(&t->last_beat) < 2.0) continue;
        wire_msg *m = &t->beat;
        wire_msg_init(m, WIRE_HEARTBEAT);
        snprintf(m->run, sizeof m->run, "%s", t->run_id);
        m->rank = t->rank, m->world = t->world, m->time = now;
        m->step = atomic_load(&t->step), m->epoch = atomic_load(&t->epoch);
        snprintf(m->state, sizeof m->state, "%s", comm_waiting() ? "waiting" : "working");
        char *s = wire_encode(m);
        if (s) wire_pub_send(t->beat_pub, s, strlen(s));
        free(s);
        atomic_store(&t->last_beat, now);
    }
    return NULL;
}

int telemetry_open(telemetry **out, const char *endpoint, const char *keyfile, const char *run,
                   const train_pos *pos, char *err, size_t n)
{
    *out = NULL;
    telemetry *t = calloc(1, sizeof *t);
    char id[WIRE_RUN_MAX + 1] = "";
    const int rank = comm_rank();
    if (run[0]) {
        snprintf(id, sizeof id, "%s", run);
    } else if (rank == 0) {
        const time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(id, sizeof id, "%s-%ld", stamp, (long)getpid());
    }
    comm_bcast(id, sizeof id, 0);
    if (!t) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    snprintf(t->run_id, sizeof t->run_id, "%s", id);
    t->rank = rank, t->world = comm_world(), t->pos = pos;
    if (wire_pub_open(&t->pub, endpoint, keyfile, err, n) != 0) {
        free(t);
        return -1;
    }
    atomic_store(&t->last_beat, wire_time());
    /* without its own connection (ZeroMQ sockets belong to one thread) the
     * loop still beats by itself between steps */
    char ignored[300];
    if (wire_pub_open(&t->beat_pub, endpoint, keyfile, ignored, sizeof ignored) == 0 &&
        pthread_create(&t->thread, NULL, beat_loop, t) == 0)
        t->beating = 1;
    *out = t;
    return 0;
}

const char *telemetry_run_id(const telemetry *t)
{
    return t ? t->run_id : "";
}

/* The message being written (large: one per trainer, not on the stack),
 * with the fields every kind has (DESIGN.md, "Metrics wire"). */
static wire_msg *msg_new(telemetry *t, wire_kind kind)
{
    wire_msg *m = &t->msg;
    wire_msg_init(m, kind);
    snprintf(m->run, sizeof m->run, "%s", t->run_id);
    m->rank = t->rank, m->world = t->world;
    m->step = t->pos->step;
    m->epoch = train_pos_epoch1(t->pos);
    atomic_store(&t->step, m->step), atomic_store(&t->epoch, m->epoch);
    m->time = wire_time();
    return m;
}

/* Encodes and queues it; `beat`: it counts as the rank's sign of life.
 * Never over WIRE_MAX_MSG, which the monitor refuses (and ZeroMQ cuts a
 * sender off past twice that, dropping what it had queued): samples go
 * first, then the detail is shortened. */
static void msg_send(telemetry *t, int beat)
{
    char *s = wire_encode(&t->msg);
    while (s && strlen(s) > WIRE_MAX_MSG && (t->msg.nsamples > 0 || t->msg.detail[0])) {
        free(s);
        if (t->msg.nsamples > 0)
            t->msg.nsamples--;
        else { /* half of it, at a character's start */
            size_t k = strlen(t->msg.detail) / 2;
            while (k > 0 && ((unsigned char)t->msg.detail[k] & 0xC0) == 0x80) k--;
            t->msg.detail[k] = '\0';
        }
        s = wire_encode(&t->msg);
    }
    if (s) wire_pub_send(t->pub, s, strlen(s));
    free(s);
    if (beat) t->last_beat = wire_time();
}

void telemetry_event(telemetry *t, const char *event, const char *fmt, ...)
{
    if (!t) return;
    wire_msg *m = msg_new(t, WIRE_EVENT);
    snprintf(m->event, sizeof m->event, "%s", event);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->detail, sizeof m->detail, fmt, ap);
    va_end(ap);
    msg_send(t, 1);
}

void telemetry_train(telemetry *t, double loss_sum, double tokens, double grad_norm, double lr,
                     double window_s, long nan_skips)
{
    if (!t) return;
    wire_msg *m = msg_new(t, WIRE_TRAIN);
    m->loss_sum = loss_sum, m->tokens = tokens, m->grad_norm = grad_norm, m->lr = lr;
    m->tok_per_s = window_s > 0 ? tokens / window_s : NAN;
    m->nan_skips = (double)nan_skips;
    if (t->have_phases) wire_msg_set_phases(m, t->phases);
    t->have_phases = 0;
    msg_send(t, 1);
}

void telemetry_phases(telemetry *t, const double s[WIRE_PHASES])
{
    if (!t) return;
    memcpy(t->phases, s, sizeof t->phases);
    t->have_phases = 1;
}

void telemetry_eval(telemetry *t, double val_loss, double val_ppl, double bleu,
                    const wire_sample *samples, int nsamples)
{
    if (!t || t->rank != 0) return;
    wire_msg *m = msg_new(t, WIRE_EVAL);
    m->val_loss = val_loss, m->val_ppl = val_ppl, m->bleu = bleu;
    m->nsamples = nsamples < WIRE_MAX_SAMPLES ? nsamples : WIRE_MAX_SAMPLES;
    memcpy(m->samples, samples, (size_t)m->nsamples * sizeof *samples);
    msg_send(t, 0);
}

void telemetry_heartbeat(telemetry *t)
{
    if (!t) return;
    const double now = wire_time();
    if (now - t->last_beat < 2.0) return;
    msg_new(t, WIRE_HEARTBEAT);
    msg_send(t, 1);
}

long telemetry_dropped(const telemetry *t)
{
    return t ? wire_pub_dropped(t->pub) : 0;
}

void telemetry_close(telemetry *t)
{
    if (!t) return;
    atomic_store(&t->stop, 1);
    if (t->beating) pthread_join(t->thread, NULL);
    wire_pub_close(t->beat_pub, 0);
    wire_pub_close(t->pub, 500);
    free(t);
}

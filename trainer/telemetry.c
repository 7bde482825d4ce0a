/* The trainer's messages on the metrics wire (telemetry.h). */
#include "telemetry.h"

#include <cjson/cJSON.h>
#include <math.h>
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
    double last_beat; /* when this rank last sent anything */
};

int telemetry_open(telemetry **out, const char *endpoint, const char *run, const train_pos *pos,
                   char *err, size_t n)
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
    if (wire_pub_open(&t->pub, endpoint, err, n) != 0) {
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

const char *telemetry_run_id(const telemetry *t)
{
    return t ? t->run_id : "";
}

/* A message with the fields every kind has (DESIGN.md, "Metrics wire"). */
static cJSON *msg_new(const telemetry *t, const char *kind)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "v", WIRE_VERSION);
    cJSON_AddStringToObject(o, "run", t->run_id);
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddNumberToObject(o, "rank", t->rank);
    cJSON_AddNumberToObject(o, "world", t->world);
    cJSON_AddNumberToObject(o, "step", (double)t->pos->step);
    cJSON_AddNumberToObject(o, "epoch", (double)train_pos_epoch1(t->pos));
    cJSON_AddNumberToObject(o, "time", wire_time());
    return o;
}

static void msg_send(telemetry *t, cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s) wire_pub_send(t->pub, s, strlen(s));
    free(s);
    cJSON_Delete(o);
    t->last_beat = wire_time();
}

void telemetry_event(telemetry *t, const char *event, const char *fmt, ...)
{
    if (!t) return;
    char detail[WIRE_TEXT_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    cJSON *o = msg_new(t, "event");
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddStringToObject(o, "detail", detail);
    msg_send(t, o);
}

void telemetry_train(telemetry *t, double loss_sum, double tokens, double grad_norm, double lr,
                     double window_s)
{
    if (!t) return;
    cJSON *o = msg_new(t, "train");
    cJSON_AddNumberToObject(o, "loss_sum", loss_sum);
    cJSON_AddNumberToObject(o, "tokens", tokens);
    cJSON_AddNumberToObject(o, "grad_norm", grad_norm);
    cJSON_AddNumberToObject(o, "lr", lr);
    cJSON_AddNumberToObject(o, "tok_per_s", window_s > 0 ? tokens / window_s : NAN);
    msg_send(t, o);
}

void telemetry_eval(telemetry *t, double val_loss, double val_ppl, double bleu,
                    const wire_sample *samples, int nsamples)
{
    if (!t || t->rank != 0) return;
    cJSON *o = msg_new(t, "eval");
    cJSON_AddNumberToObject(o, "val_loss", val_loss);
    cJSON_AddNumberToObject(o, "val_ppl", val_ppl);
    cJSON_AddNumberToObject(o, "bleu", bleu);
    wire_add_samples(o, samples, nsamples);
    char *s = cJSON_PrintUnformatted(o);
    if (s) wire_pub_send(t->pub, s, strlen(s));
    free(s);
    cJSON_Delete(o);
}

void telemetry_heartbeat(telemetry *t)
{
    if (!t) return;
    const double now = wire_time();
    if (now - t->last_beat < 2.0) return;
    msg_send(t, msg_new(t, "heartbeat"));
}

long telemetry_dropped(const telemetry *t)
{
    return t ? wire_pub_dropped(t->pub) : 0;
}

void telemetry_close(telemetry *t)
{
    if (!t) return;
    wire_pub_close(t->pub, 500);
    free(t);
}

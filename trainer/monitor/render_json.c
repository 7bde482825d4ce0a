/* The monitor's JSON API: /api/runs (every run's summary and the message
 * counts) and /api/runs/ID (one run's series, ranks, samples and events). */
#include "collector_state.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cJSON prints NaN as null */
static cJSON *run_summary(const run *r, double now)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddNumberToObject(o, "world", r->world);
    cJSON_AddNumberToObject(o, "step", (double)r->step);
    cJSON_AddNumberToObject(o, "epoch", (double)r->epoch);
    cJSON_AddNumberToObject(o, "loss", collector_figure(r, FIG_LOSS, now));
    cJSON_AddNumberToObject(o, "ppl", collector_figure(r, FIG_PPL, now));
    cJSON_AddNumberToObject(o, "val_loss", collector_figure(r, FIG_VLOSS, now));
    cJSON_AddNumberToObject(o, "val_ppl", collector_figure(r, FIG_VPPL, now));
    cJSON_AddNumberToObject(o, "bleu", collector_figure(r, FIG_BLEU, now));
    cJSON_AddNumberToObject(o, "tok_per_s", collector_figure(r, FIG_TPS, now));
    cJSON_AddStringToObject(o, "state", collector_run_state(r, now));
    cJSON_AddNumberToObject(o, "nan_skips", r->nan_skips);
    cJSON_AddNumberToObject(o, "lr", r->lr);
    cJSON *st = cJSON_AddArrayToObject(o, "stragglers");
    for (int i = 0; i < r->world; i++)
        if (r->ranks[i].straggler) cJSON_AddItemToArray(st, cJSON_CreateNumber(i));
    cJSON_AddNumberToObject(o, "started", r->started);
    cJSON_AddNumberToObject(o, "last_seen", r->last_seen);
    return o;
}

/* {"compute": s, "wait": s, ...} */
static void add_phases(cJSON *o, const char *name, const double *s)
{
    cJSON *x = cJSON_AddObjectToObject(o, name);
    for (int p = 0; p < WIRE_PHASES; p++) cJSON_AddNumberToObject(x, wire_phase_names[p], s[p]);
}

/* The run's timeline: the phases' names, the complete windows' steps, and
 * per rank (the first tl_ranks) per window its seconds by phase. */
static void add_timeline(cJSON *o, const run *r)
{
    cJSON *t = cJSON_AddObjectToObject(o, "timeline");
    char rule[200];
    snprintf(rule, sizeof rule,
             "compute above %g x the other ranks' median, by %g s or more, in %d complete "
             "windows in a row (a window at or below the ratio ends the row; one above it by "
             "less is too short to tell)",
             COLLECTOR_STRAGGLER_RATIO, COLLECTOR_STRAGGLER_MIN_S, COLLECTOR_STRAGGLER_WINDOWS);
    cJSON_AddStringToObject(t, "straggler_rule", rule);
    cJSON *names = cJSON_AddArrayToObject(t, "phases");
    for (int p = 0; p < WIRE_PHASES; p++)
        cJSON_AddItemToArray(names, cJSON_CreateString(wire_phase_names[p]));
    cJSON *steps = cJSON_AddArrayToObject(t, "step");
    cJSON *ranks = cJSON_AddArrayToObject(t, "ranks");
    for (int i = 0; i < r->tl_ranks; i++) cJSON_AddItemToArray(ranks, cJSON_CreateArray());
    for (int k = 0; k < r->tl_n; k++) {
        const int w = (r->tl_head + k) % COLLECTOR_TL_WINDOWS;
        cJSON_AddItemToArray(steps, cJSON_CreateNumber((double)r->tl_step[w]));
        const float *row = r->tl + (size_t)w * r->tl_ranks * WIRE_PHASES;
        for (int i = 0; i < r->tl_ranks; i++) {
            cJSON *v = cJSON_CreateArray();
            for (int p = 0; p < WIRE_PHASES; p++)
                cJSON_AddItemToArray(v, cJSON_CreateNumber(row[i * WIRE_PHASES + p]));
            cJSON_AddItemToArray(cJSON_GetArrayItem(ranks, i), v);
        }
    }
}

static char *print_and_free(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *collector_runs_json(collector *c, double now)
{
    pthread_mutex_lock(&c->mu);
    cJSON *o = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(o, "runs");
    for (int i = 0; i < c->nruns; i++) cJSON_AddItemToArray(a, run_summary(c->runs[i], now));
    cJSON_AddNumberToObject(o, "messages", (double)c->ok);
    cJSON_AddNumberToObject(o, "malformed", (double)c->malformed);
    cJSON_AddNumberToObject(o, "oversized", (double)c->oversized);
    cJSON_AddNumberToObject(o, "now", now);
    pthread_mutex_unlock(&c->mu);
    return print_and_free(o);
}

static void add_column(cJSON *o, const char *name, const void *base, int n, size_t stride,
                       size_t off, int is_long)
{
    cJSON *a = cJSON_AddArrayToObject(o, name);
    for (int i = 0; i < n; i++) {
        const char *p = (const char *)base + (size_t)i * stride + off;
        double v;
        if (is_long) {
            long l;
            memcpy(&l, p, sizeof l);
            v = (double)l;
        } else {
            memcpy(&v, p, sizeof v);
        }
        cJSON_AddItemToArray(a, cJSON_CreateNumber(v));
    }
}

char *collector_run_json(collector *c, const char *id, double now)
{
    pthread_mutex_lock(&c->mu);
    const run *r = NULL;
    for (int i = 0; i < c->nruns && !r; i++)
        if (strcmp(c->runs[i]->id, id) == 0) r = c->runs[i];
    if (!r) {
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    cJSON *o = run_summary(r, now);
    cJSON_AddStringToObject(o, "config", r->config ? r->config : "");
    cJSON_AddNumberToObject(o, "now", now);
    cJSON *tr = cJSON_AddObjectToObject(o, "train");
    const size_t ts = sizeof(train_pt);
    add_column(tr, "step", r->tr, r->ntr, ts, offsetof(train_pt, step), 1);
    add_column(tr, "loss", r->tr, r->ntr, ts, offsetof(train_pt, loss), 0);
    add_column(tr, "ppl", r->tr, r->ntr, ts, offsetof(train_pt, ppl), 0);
    add_column(tr, "tok_per_s", r->tr, r->ntr, ts, offsetof(train_pt, tps), 0);
    add_column(tr, "grad_norm", r->tr, r->ntr, ts, offsetof(train_pt, gnorm), 0);
    add_column(tr, "lr", r->tr, r->ntr, ts, offsetof(train_pt, lr), 0);
    cJSON *ev = cJSON_AddObjectToObject(o, "eval");
    const size_t es = sizeof(eval_pt);
    add_column(ev, "step", r->ev, r->nev, es, offsetof(eval_pt, step), 1);
    add_column(ev, "val_loss", r->ev, r->nev, es, offsetof(eval_pt, val_loss), 0);
    add_column(ev, "val_ppl", r->ev, r->nev, es, offsetof(eval_pt, val_ppl), 0);
    add_column(ev, "bleu", r->ev, r->nev, es, offsetof(eval_pt, bleu), 0);
    cJSON *ra = cJSON_AddArrayToObject(o, "ranks");
    for (int i = 0; i < r->world; i++) {
        const rank_state *rk = &r->ranks[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "rank", i);
        cJSON_AddNumberToObject(x, "step", (double)rk->step);
        cJSON_AddNumberToObject(x, "tok_per_s", rk->tps);
        cJSON_AddNumberToObject(x, "last_seen", rk->seen ? rk->last_seen : NAN);
        cJSON_AddStringToObject(x, "state", collector_rank_state(rk, now));
        if (rk->ph_step >= 0) {
            add_phases(x, "phases", rk->ph_win);
            add_phases(x, "phase_seconds", rk->ph_total);
        }
        cJSON_AddBoolToObject(x, "straggler", rk->straggler);
        cJSON_AddNumberToObject(x, "slow_windows", rk->slow_windows);
        cJSON_AddItemToArray(ra, x);
    }
    add_timeline(o, r);
    wire_add_samples(o, r->samples, r->nsamples);
    cJSON *ea = cJSON_AddArrayToObject(o, "events");
    for (int k = 0; k < r->nevents; k++) {
        const event_rec *e = &r->events[(r->event_head + k) % MAX_EVENTS];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddNumberToObject(x, "time", e->time);
        cJSON_AddNumberToObject(x, "step", (double)e->step);
        cJSON_AddNumberToObject(x, "rank", e->rank);
        cJSON_AddStringToObject(x, "event", e->event);
        cJSON_AddStringToObject(x, "detail", e->detail ? e->detail : "");
        cJSON_AddItemToArray(ea, x);
    }
    pthread_mutex_unlock(&c->mu);
    return print_and_free(o);
}

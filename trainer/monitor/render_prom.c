/* The monitor's /metrics: Prometheus text exposition (format 0.0.4) of the
 * message counts, every run's latest figures and every rank's last message. */
#include "collector_state.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

/* A growing text buffer for the Prometheus exposition. */
typedef struct text {
    char *p;
    size_t n, cap;
    int failed;
} text;

static void put(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(text *t, const char *fmt, ...)
{
    if (t->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->p ? t->p + t->n : NULL, t->p ? t->cap - t->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) {
            t->failed = 1;
            return;
        }
        if (t->p && t->n + (size_t)k < t->cap) {
            t->n += (size_t)k;
            return;
        }
        size_t nc = (t->cap ? 2 * t->cap : 4096) + (size_t)k;
        char *q = realloc(t->p, nc);
        if (!q) {
            t->failed = 1;
            return;
        }
        t->p = q, t->cap = nc;
    }
}

/* The per-run gauges of /metrics, in order. A run id is a label value as it
 * is: ids are [A-Za-z0-9._:-], nothing to escape. */
static const struct {
    const char *name, *help;
    figure fig;
} gauges[] = {
    {"seqpar_step", "Latest step reported by any rank.", FIG_STEP},
    {"seqpar_epoch", "Latest epoch reported (1-based).", FIG_EPOCH},
    {"seqpar_world_size", "Ranks in the run.", FIG_WORLD},
    {"seqpar_running", "1 while the run is running, else 0.", FIG_RUNNING},
    {"seqpar_loss",
     "Training loss (mean token cross-entropy over all ranks) of the latest complete step.",
     FIG_LOSS},
    {"seqpar_perplexity", "exp(seqpar_loss).", FIG_PPL},
    {"seqpar_tokens_per_second", "Target tokens per second, summed over ranks.", FIG_TPS},
    {"seqpar_grad_norm", "Global gradient norm before clipping.", FIG_GNORM},
    {"seqpar_valid_loss", "Validation loss of the latest evaluation.", FIG_VLOSS},
    {"seqpar_valid_perplexity", "Validation perplexity of the latest evaluation.", FIG_VPPL},
};

char *collector_metrics(collector *c, double now)
{
    text t = {0};
    pthread_mutex_lock(&c->mu);
    put(&t,
        "# HELP seqpar_monitor_messages_total Metrics-wire messages received, by outcome.\n"
        "# TYPE seqpar_monitor_messages_total counter\n"
        "seqpar_monitor_messages_total{outcome=\"accepted\"} %ld\n"
        "seqpar_monitor_messages_total{outcome=\"malformed\"} %ld\n"
        "seqpar_monitor_messages_total{outcome=\"oversized\"} %ld\n"
        "# HELP seqpar_build_info The monitor's seqpar version.\n"
        "# TYPE seqpar_build_info gauge\n"
        "seqpar_build_info{version=\"%s\"} 1\n",
        c->ok, c->malformed, c->oversized, SEQPAR_VERSION);
    for (size_t g = 0; g < sizeof gauges / sizeof *gauges; g++) {
        put(&t, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help, gauges[g].name);
        for (int i = 0; i < c->nruns; i++) {
            const double v = collector_figure(c->runs[i], gauges[g].fig, now);
            if (isfinite(v)) put(&t, "%s{run=\"%s\"} %.10g\n", gauges[g].name, c->runs[i]->id, v);
        }
    }
    put(&t, "# HELP seqpar_bleu_ratio Validation corpus BLEU (0-1) of the latest evaluation.\n"
            "# TYPE seqpar_bleu_ratio gauge\n");
    for (int i = 0; i < c->nruns; i++) {
        const double b = collector_figure(c->runs[i], FIG_BLEU, now);
        if (isfinite(b))
            put(&t, "seqpar_bleu_ratio{run=\"%s\"} %.10g\n", c->runs[i]->id, b / 100.0);
    }
    put(&t, "# HELP seqpar_tokens_total Target tokens trained on, as the ranks' train messages "
            "count them.\n# TYPE seqpar_tokens_total counter\n");
    for (int i = 0; i < c->nruns; i++)
        put(&t, "seqpar_tokens_total{run=\"%s\"} %.0f\n", c->runs[i]->id, c->runs[i]->tokens_total);
    put(&t, "# HELP seqpar_steps_total Optimizer steps taken (the latest step reported).\n"
            "# TYPE seqpar_steps_total counter\n");
    for (int i = 0; i < c->nruns; i++)
        put(&t, "seqpar_steps_total{run=\"%s\"} %ld\n", c->runs[i]->id, c->runs[i]->step);
    put(&t, "# HELP seqpar_nan_skips_total Updates skipped for a non-finite loss or gradient "
            "(--on-nan skip), as the run's ranks count them.\n"
            "# TYPE seqpar_nan_skips_total counter\n");
    for (int i = 0; i < c->nruns; i++)
        put(&t, "seqpar_nan_skips_total{run=\"%s\"} %.0f\n", c->runs[i]->id, c->runs[i]->nan_skips);
    put(&t, "# HELP seqpar_rank_last_seen_seconds Seconds since a rank's last message.\n"
            "# TYPE seqpar_rank_last_seen_seconds gauge\n");
    for (int i = 0; i < c->nruns; i++)
        for (int k = 0; k < c->runs[i]->world; k++)
            if (c->runs[i]->ranks[k].seen)
                put(&t, "seqpar_rank_last_seen_seconds{run=\"%s\",rank=\"%d\"} %.3f\n",
                    c->runs[i]->id, k, now - c->runs[i]->ranks[k].last_seen);
    put(&t, "# HELP seqpar_rank_last_message_timestamp_seconds When a rank's last message "
            "came (Unix seconds).\n# TYPE seqpar_rank_last_message_timestamp_seconds gauge\n");
    for (int i = 0; i < c->nruns; i++)
        for (int k = 0; k < c->runs[i]->world; k++)
            if (c->runs[i]->ranks[k].seen)
                put(&t, "seqpar_rank_last_message_timestamp_seconds{run=\"%s\",rank=\"%d\"} %.3f\n",
                    c->runs[i]->id, k, c->runs[i]->ranks[k].last_seen);
    static const char *const states[] = {"ok", "waiting", "late", "lost", "done"};
    put(&t, "# HELP seqpar_rank_state A rank's state: 1 for the one it is in (ok, waiting for "
            "other ranks, late, lost, done).\n# TYPE seqpar_rank_state gauge\n");
    for (int i = 0; i < c->nruns; i++)
        for (int k = 0; k < c->runs[i]->world; k++) {
            const char *now_state = collector_rank_state(&c->runs[i]->ranks[k], now);
            for (size_t s = 0; s < sizeof states / sizeof *states; s++)
                put(&t, "seqpar_rank_state{run=\"%s\",rank=\"%d\",state=\"%s\"} %d\n",
                    c->runs[i]->id, k, states[s], strcmp(now_state, states[s]) == 0);
        }
    put(&t, "# HELP seqpar_rank_seconds_total Seconds a rank spent by phase (compute: forward, "
            "backward, update; wait: in the gradient allreduce beyond what backward hid; data; "
            "eval; checkpoint), summed over its train messages.\n"
            "# TYPE seqpar_rank_seconds_total counter\n");
    for (int i = 0; i < c->nruns; i++)
        for (int k = 0; k < c->runs[i]->world; k++)
            for (int p = 0; c->runs[i]->ranks[k].ph_step >= 0 && p < WIRE_PHASES; p++)
                put(&t, "seqpar_rank_seconds_total{run=\"%s\",rank=\"%d\",phase=\"%s\"} %.6f\n",
                    c->runs[i]->id, k, wire_phase_names[p], c->runs[i]->ranks[k].ph_total[p]);
    put(&t, "# HELP seqpar_rank_straggler 1 while a rank is a straggler (its compute time well "
            "above the other ranks' median for several windows), else 0.\n"
            "# TYPE seqpar_rank_straggler gauge\n");
    for (int i = 0; i < c->nruns; i++)
        for (int k = 0; c->runs[i]->has_phases && k < c->runs[i]->world; k++)
            put(&t, "seqpar_rank_straggler{run=\"%s\",rank=\"%d\"} %d\n", c->runs[i]->id, k,
                c->runs[i]->ranks[k].straggler);
    put(&t, "# HELP seqpar_rank_step Latest step reported by a rank.\n"
            "# TYPE seqpar_rank_step gauge\n");
    for (int i = 0; i < c->nruns; i++)
        for (int k = 0; k < c->runs[i]->world; k++)
            if (c->runs[i]->ranks[k].seen)
                put(&t, "seqpar_rank_step{run=\"%s\",rank=\"%d\"} %ld\n", c->runs[i]->id, k,
                    c->runs[i]->ranks[k].step);
    pthread_mutex_unlock(&c->mu);
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

/* The collector: validated messages aggregated per run and step, every
 * rank's last message, and a version that server-sent events wait on. */
#include "collector_state.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

collector *collector_new(void)
{
    collector *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

static void run_free(run *r)
{
    if (!r) return;
    free(r->config), free(r->tr), free(r->ev), free(r->ranks), free(r->samples), free(r->tl);
    for (int i = 0; i < MAX_EVENTS; i++) free(r->events[i].detail);
    free(r);
}

void collector_free(collector *c)
{
    if (!c) return;
    for (int i = 0; i < c->nruns; i++) run_free(c->runs[i]);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* The run of id, created (evicting the least recently seen when full). */
static run *get_run(collector *c, const wire_msg *m, double now)
{
    for (int i = 0; i < c->nruns; i++)
        if (strcmp(c->runs[i]->id, m->run) == 0) return c->runs[i];
    run *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->samples = calloc(WIRE_MAX_SAMPLES, sizeof *r->samples);
    if (!r->samples) {
        free(r);
        return NULL;
    }
    snprintf(r->id, sizeof r->id, "%s", m->run);
    r->started = now;
    r->lr = NAN; /* until a train message carries one */
    if (c->nruns == MAX_RUNS) {
        int old = 0;
        for (int i = 1; i < c->nruns; i++)
            if (c->runs[i]->last_seen < c->runs[old]->last_seen) old = i;
        run_free(c->runs[old]);
        c->runs[old] = c->runs[--c->nruns];
    }
    c->runs[c->nruns++] = r;
    return r;
}

/* Sizes the rank table for world (a resumed run may change it). */
static int set_world(run *r, int world)
{
    if (r->world == world && r->ranks) return 0;
    rank_state *rs = calloc((size_t)world, sizeof *rs);
    const int tl_ranks = world < COLLECTOR_TL_RANKS ? world : COLLECTOR_TL_RANKS;
    float *tl = calloc((size_t)COLLECTOR_TL_WINDOWS * tl_ranks * WIRE_PHASES, sizeof *tl);
    if (!rs || !tl) {
        free(rs), free(tl);
        return -1;
    }
    for (int i = 0; i < world; i++) {
        rs[i].last_train_step = rs[i].ph_step = -1;
        rs[i].conn[0] = rs[i].conn[1] = -1;
    }
    free(r->ranks), free(r->tl);
    r->ranks = rs, r->tl = tl;
    r->tl_ranks = tl_ranks, r->tl_n = r->tl_head = 0;
    r->world = world;
    memset(r->pend, 0, sizeof r->pend);
    return 0;
}

/* Appends to a series, halving it (every other point) when full. */
static int grow(void **a, int *n, int *cap, size_t size)
{
    if (*n == MAX_POINTS) {
        char *p = *a;
        for (int i = 0; i < *n / 2; i++) memcpy(p + i * size, p + (2 * i + 1) * size, size);
        *n /= 2;
    }
    if (*n < *cap) return 0;
    int nc = *cap ? 2 * *cap : 256;
    void *p = realloc(*a, (size_t)nc * size);
    if (!p) return -1;
    *a = p, *cap = nc;
    return 0;
}

static void add_event(run *r, const wire_msg *m, double now)
{
    int i = r->nevents < MAX_EVENTS ? r->nevents++ : r->event_head;
    if (r->nevents == MAX_EVENTS && i == r->event_head) r->event_head = (i + 1) % MAX_EVENTS;
    event_rec *e = &r->events[i];
    free(e->detail);
    e->detail = strdup(m->detail);
    e->time = m->time > 0 && m->time < now ? m->time : now; /* never ahead of the clock */
    e->step = m->step, e->rank = m->rank;
    snprintf(e->event, sizeof e->event, "%s", m->event);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of sorted a[0..n) without one element equal to x (the
 * others' median of the rank whose value is x); NaN when none is left. */
static double median_without(const double *a, int n, double x)
{
    int p = 0; /* the element left out */
    while (p < n - 1 && a[p] < x) p++;
    const int m = n - 1;
    if (m <= 0) return NAN;
#define AT(j) ((j) < p ? a[j] : a[(j) + 1])
    return m % 2 ? AT(m / 2) : 0.5 * (AT(m / 2 - 1) + AT(m / 2));
#undef AT
}

/* Every rank reported the window ending at step: who was slow in it (the
 * straggler rule, collector.h), and the window into the timeline. */
static void window_done(run *r, long step)
{
    if (!r->has_phases) return;
    /* the window's compute seconds, sorted once: O(world log world) */
    double *sorted = malloc((size_t)r->world * sizeof *sorted);
    int n = 0;
    for (int i = 0; sorted && i < r->world; i++)
        if (r->ranks[i].ph_step == step) sorted[n++] = r->ranks[i].ph_win[0];
    if (sorted) qsort(sorted, (size_t)n, sizeof *sorted, cmp_double);
    for (int i = 0; sorted && i < r->world; i++) {
        rank_state *rk = &r->ranks[i];
        if (rk->ph_step != step) continue;
        const double c = rk->ph_win[0], med = median_without(sorted, n, c);
        if (!isfinite(med)) continue;
        /* slow; not slow; or above the ratio by too little to tell (a short
         * window: the last of a run, one after a resume), which changes nothing */
        if (c <= COLLECTOR_STRAGGLER_RATIO * med)
            rk->slow_windows = 0;
        else if (c - med >= COLLECTOR_STRAGGLER_MIN_S)
            rk->slow_windows++;
        rk->straggler = rk->slow_windows >= COLLECTOR_STRAGGLER_WINDOWS;
    }
    free(sorted);
    const int k = r->tl_n < COLLECTOR_TL_WINDOWS ? r->tl_n++ : r->tl_head;
    if (r->tl_n == COLLECTOR_TL_WINDOWS && k == r->tl_head)
        r->tl_head = (r->tl_head + 1) % COLLECTOR_TL_WINDOWS;
    r->tl_step[k] = step;
    float *row = r->tl + (size_t)k * r->tl_ranks * WIRE_PHASES;
    for (int i = 0; i < r->tl_ranks; i++)
        for (int p = 0; p < WIRE_PHASES; p++)
            row[i * WIRE_PHASES + p] =
                r->ranks[i].ph_step == step ? (float)r->ranks[i].ph_win[p] : NAN;
}

/* A train message's seconds by phase: the rank's window and sums. */
static void add_phases(run *r, rank_state *rk, const wire_msg *m)
{
    double ph[WIRE_PHASES];
    wire_msg_phases(m, ph);
    int any = 0;
    for (int p = 0; p < WIRE_PHASES; p++) any |= isfinite(ph[p]);
    if (!any) return; /* a trainer from before them */
    r->has_phases = 1;
    rk->ph_step = m->step;
    for (int p = 0; p < WIRE_PHASES; p++) {
        rk->ph_win[p] = isfinite(ph[p]) ? ph[p] : 0.0;
        rk->ph_total[p] += rk->ph_win[p];
    }
}

static void add_train(run *r, rank_state *rk, const wire_msg *m)
{
    if (m->step <= rk->last_train_step) return; /* a duplicate, or older than what we have */
    rk->last_train_step = m->step;
    rk->tps = m->tok_per_s;
    add_phases(r, rk, m);
    r->tokens_total += m->tokens;
    pending_step *p = NULL, *free_slot = NULL, *oldest = NULL;
    for (int i = 0; i < PENDING; i++) {
        pending_step *q = &r->pend[i];
        if (q->count && q->step == m->step) p = q;
        if (!q->count && !free_slot) free_slot = q;
        if (q->count && (!oldest || q->step < oldest->step)) oldest = q;
    }
    if (!p) {
        p = free_slot ? free_slot : oldest; /* full: the oldest incomplete step gives way */
        memset(p, 0, sizeof *p);
        p->step = m->step;
        p->gnorm = NAN, p->lr = NAN;
    }
    p->count++;
    p->loss += m->loss_sum, p->tokens += m->tokens;
    if (isfinite(m->tok_per_s)) p->tps += m->tok_per_s;
    if (isfinite(m->grad_norm)) p->gnorm = m->grad_norm;
    if (isfinite(m->lr)) p->lr = r->lr = m->lr;              /* every rank's rate is the same */
    if (isfinite(m->nan_skips)) r->nan_skips = m->nan_skips; /* every rank's count is the same */
    if (p->count < r->world) return;
    /* every rank reported this step: one point; older incomplete steps never will */
    if (grow((void **)&r->tr, &r->ntr, &r->captr, sizeof *r->tr) == 0) {
        double loss = p->tokens > 0 ? p->loss / p->tokens : NAN;
        r->tr[r->ntr++] = (train_pt){p->step, loss, exp(loss), p->tps, p->gnorm, p->lr};
    }
    long done_step = p->step;
    window_done(r, done_step);
    for (int i = 0; i < PENDING; i++)
        if (r->pend[i].count && r->pend[i].step <= done_step) r->pend[i].count = 0;
}

int collector_add(collector *c, const char *buf, size_t len, double now, char *why, size_t whylen)
{
    return collector_add_from(c, buf, len, now, -1, why, whylen);
}

/* The connection a rank's message came over. */
static void note_conn(rank_state *rk, int conn)
{
    if (conn < 0) return;
    rk->gone = 0;
    if (rk->conn[0] == conn || rk->conn[1] == conn) return;
    rk->conn[1] = rk->conn[0], rk->conn[0] = conn;
}

void collector_closed(collector *c, int conn)
{
    if (conn < 0) return;
    pthread_mutex_lock(&c->mu);
    for (int i = 0; i < c->nruns; i++) {
        run *r = c->runs[i];
        int changed = 0;
        for (int k = 0; k < r->world; k++) {
            rank_state *rk = &r->ranks[k];
            if (rk->conn[0] != conn && rk->conn[1] != conn) continue;
            if (rk->conn[0] == conn) rk->conn[0] = rk->conn[1];
            rk->conn[1] = -1;
            if (rk->conn[0] < 0 && !rk->done) rk->gone = changed = 1;
        }
        if (changed) { /* the page learns at once */
            c->version++;
            snprintf(c->last_run, sizeof c->last_run, "%s", r->id);
            pthread_cond_broadcast(&c->cv);
        }
    }
    pthread_mutex_unlock(&c->mu);
}

int collector_add_from(collector *c, const char *buf, size_t len, double now, int conn, char *why,
                       size_t whylen)
{
    char err[200];
    if (!why) why = err, whylen = sizeof err;
    pthread_mutex_lock(&c->mu);
    wire_msg *const m = &c->msg;
    int rc = -1;
    if (len > WIRE_MAX_MSG) {
        snprintf(why, whylen, "%zu bytes, over the %d-byte limit", len, WIRE_MAX_MSG);
        c->oversized++;
        goto out;
    }
    if (wire_parse(buf, len, m, why, whylen) != 0) {
        c->malformed++;
        goto out;
    }
    /* restoring from the log: the message's own time, but never ahead of the
     * clock (a damaged or skewed time would keep its run "ok" and first in
     * line forever) */
    if (now < 0) {
        now = wire_time();
        if (m->time < now) now = m->time;
    }
    run *r = get_run(c, m, now);
    if (!r || set_world(r, m->world) != 0) {
        snprintf(why, whylen, "out of memory for its run");
        goto out;
    }
    rank_state *rk = &r->ranks[m->rank];
    rk->last_seen = now > rk->last_seen ? now : rk->last_seen;
    rk->seen = 1;
    note_conn(rk, conn);
    rk->waiting = m->kind == WIRE_HEARTBEAT && strcmp(m->state, "waiting") == 0;
    if (m->step > rk->step) rk->step = m->step;
    if (now > r->last_seen) r->last_seen = now;
    if (m->step > r->step) r->step = m->step;
    if (m->epoch > r->epoch) r->epoch = m->epoch;
    switch (m->kind) {
    case WIRE_TRAIN:
        add_train(r, rk, m);
        break;
    case WIRE_EVAL:
        if (grow((void **)&r->ev, &r->nev, &r->capev, sizeof *r->ev) == 0)
            r->ev[r->nev++] = (eval_pt){m->step, m->val_loss, m->val_ppl, m->bleu};
        if (m->nsamples > 0) {
            memcpy(r->samples, m->samples, (size_t)m->nsamples * sizeof *r->samples);
            r->nsamples = m->nsamples;
        }
        break;
    case WIRE_EVENT:
        add_event(r, m, now);
        if (strcmp(m->event, "start") == 0 && m->rank == 0) {
            free(r->config);
            r->config = strdup(m->detail);
            r->errored = r->stopped = 0;
            for (int i = 0; i < r->world; i++) r->ranks[i].done = 0;
        } else if (strcmp(m->event, "resume") == 0) {
            /* steps start again from the checkpoint's */
            for (int i = 0; i < r->world; i++) r->ranks[i].last_train_step = -1;
            memset(r->pend, 0, sizeof r->pend);
        } else if (strcmp(m->event, "end") == 0) {
            rk->done = 1;
        } else if (strcmp(m->event, "stopped") == 0) {
            /* a signal stopped the run: stopped at once, whatever the other
             * ranks' messages still in flight */
            rk->done = 1;
            r->stopped = 1;
        } else if (strcmp(m->event, "error") == 0) {
            r->errored = 1;
        }
        break;
    case WIRE_HEARTBEAT:
        break;
    }
    c->ok++;
    c->version++;
    snprintf(c->last_run, sizeof c->last_run, "%s", r->id);
    pthread_cond_broadcast(&c->cv);
    rc = 0;
out:
    pthread_mutex_unlock(&c->mu);
    return rc;
}

void collector_counts(collector *c, long *ok, long *malformed, long *oversized)
{
    pthread_mutex_lock(&c->mu);
    *ok = c->ok, *malformed = c->malformed, *oversized = c->oversized;
    pthread_mutex_unlock(&c->mu);
}

long collector_wait(collector *c, long seen, int timeout_ms, char *runid)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&c->mu);
    while (c->version <= seen && !c->stopping)
        if (pthread_cond_timedwait(&c->cv, &c->mu, &until) != 0) break;
    long v = c->version;
    if (runid) snprintf(runid, WIRE_RUN_MAX + 1, "%s", c->last_run);
    pthread_mutex_unlock(&c->mu);
    return v;
}

void collector_wake(collector *c)
{
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* ------------------------------------------------------ states and figures */

const char *collector_rank_state(const rank_state *rk, double now)
{
    if (rk->done) return "done";
    if (!rk->seen || rk->gone) return "lost";
    double age = now - rk->last_seen;
    /* a rank blocked in a collective still beats, saying it waits: the
     * silent one is the one the others wait for */
    return age > COLLECTOR_LOST_S   ? "lost"
           : age > COLLECTOR_LATE_S ? "late"
           : rk->waiting            ? "waiting"
                                    : "ok";
}

const char *collector_run_state(const run *r, double now)
{
    if (r->errored || r->stopped) return "stopped";
    int done = 0, lost = 0;
    for (int i = 0; i < r->world; i++) {
        const char *s = collector_rank_state(&r->ranks[i], now);
        done += strcmp(s, "done") == 0;
        lost += strcmp(s, "lost") == 0;
    }
    if (done == r->world) return "done";
    if (lost + done == r->world) return "lost";
    return "running";
}

double collector_figure(const run *r, figure f, double now)
{
    const train_pt *t = r->ntr ? &r->tr[r->ntr - 1] : NULL;
    const eval_pt *e = r->nev ? &r->ev[r->nev - 1] : NULL;
    switch (f) {
    case FIG_STEP:
        return (double)r->step;
    case FIG_EPOCH:
        return (double)r->epoch;
    case FIG_WORLD:
        return r->world;
    case FIG_RUNNING:
        return strcmp(collector_run_state(r, now), "running") == 0;
    case FIG_LOSS:
        return t ? t->loss : NAN;
    case FIG_PPL:
        return t ? t->ppl : NAN;
    case FIG_TPS:
        return t ? t->tps : NAN;
    case FIG_GNORM:
        return t ? t->gnorm : NAN;
    case FIG_VLOSS:
        return e ? e->val_loss : NAN;
    case FIG_VPPL:
        return e ? e->val_ppl : NAN;
    case FIG_BLEU:
        return e ? e->bleu : NAN;
    }
    return NAN;
}

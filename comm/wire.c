/* The ZeroMQ metrics wire: publisher, message parser, collector. */
#include "wire.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

double wire_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ publisher */

struct wire_pub {
    void *ctx, *sock;
    long dropped;
};

int wire_endpoint_ok(const char *endpoint, int bind, char *err, size_t errlen)
{
    if (strncmp(endpoint, "tcp://", 6) != 0) return 1; /* ipc://, inproc://: ZeroMQ judges */
    const char *colon = strrchr(endpoint + 6, ':');
    const char *port = colon ? colon + 1 : "";
    if (bind && strcmp(port, "*") == 0) return 1;
    long v = 0;
    int digits = 0;
    for (const char *q = port; *q >= '0' && *q <= '9' && digits < 6; q++, digits++)
        v = v * 10 + (*q - '0');
    if (digits > 0 && digits == (int)strlen(port) && v >= 1 && v <= 65535) return 1;
    /* ZeroMQ takes 99999 and listens on 99999 mod 65536 */
    snprintf(err, errlen, "%s: the port must be 1..65535%s (e.g. tcp://127.0.0.1:5555)", endpoint,
             bind ? " or *" : "");
    return 0;
}

int wire_pub_open(wire_pub **out, const char *endpoint, char *err, size_t errlen)
{
    *out = NULL;
    if (!wire_endpoint_ok(endpoint, 0, err, errlen)) return -1;
    wire_pub *p = calloc(1, sizeof *p);
    if (!p || !(p->ctx = zmq_ctx_new()) || !(p->sock = zmq_socket(p->ctx, ZMQ_PUSH))) {
        snprintf(err, errlen, "cannot start ZeroMQ (%s)", zmq_strerror(zmq_errno()));
        wire_pub_close(p, 0);
        return -1;
    }
    int hwm = WIRE_QUEUE, linger = 0, ivl = 100, ivl_max = 2000;
    zmq_setsockopt(p->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(p->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    if (zmq_connect(p->sock, endpoint) != 0) {
        snprintf(err, errlen, "%s: %s (expected e.g. tcp://127.0.0.1:5555)", endpoint,
                 zmq_strerror(zmq_errno()));
        wire_pub_close(p, 0);
        return -1;
    }
    *out = p;
    return 0;
}

void wire_pub_send(wire_pub *p, const char *msg, size_t len)
{
    if (p && zmq_send(p->sock, msg, len, ZMQ_DONTWAIT) < 0) p->dropped++;
}

long wire_pub_dropped(const wire_pub *p)
{
    return p ? p->dropped : 0;
}

void wire_pub_close(wire_pub *p, int linger_ms)
{
    if (!p) return;
    if (p->sock) {
        zmq_setsockopt(p->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
        zmq_close(p->sock);
    }
    if (p->ctx) zmq_ctx_term(p->ctx);
    free(p);
}

/* --------------------------------------------------------------- parser */

static int bad(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A whole number in [lo, hi] under key k (required). */
static int get_int(const cJSON *j, const char *k, double lo, double hi, long *out, char *err,
                   size_t n)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsNumber(x)) return bad(err, n, "\"%s\" missing or not a number", k);
    double v = x->valuedouble;
    if (!(v >= lo && v <= hi) || v != floor(v))
        return bad(err, n, "\"%s\" must be a whole number in %.0f..%.0f", k, lo, hi);
    *out = (long)v;
    return 0;
}

/* An optional finite number (absent or null: NaN). */
static int get_num(const cJSON *j, const char *k, double *out, char *err, size_t n)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    *out = NAN;
    if (!x || cJSON_IsNull(x)) return 0;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return bad(err, n, "\"%s\" must be a finite number or null", k);
    *out = x->valuedouble;
    return 0;
}

/* An optional string of at most max bytes into out[max + 1]. */
static int get_str(const cJSON *j, const char *k, char *out, size_t max, int required, char *err,
                   size_t n)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    out[0] = '\0';
    if (!x && !required) return 0;
    if (!cJSON_IsString(x) || !x->valuestring) return bad(err, n, "\"%s\" must be a string", k);
    size_t len = strlen(x->valuestring);
    if (len > max) return bad(err, n, "\"%s\" is longer than %zu bytes", k, max);
    memcpy(out, x->valuestring, len + 1);
    return 0;
}

int wire_run_id_ok(const char *s)
{
    const size_t n = strlen(s);
    return n >= 1 && n <= WIRE_RUN_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

void wire_add_samples(cJSON *o, const wire_sample *s, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, "samples");
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "src", s[i].src);
        cJSON_AddStringToObject(x, "hyp", s[i].hyp);
        cJSON_AddStringToObject(x, "ref", s[i].ref);
        cJSON_AddItemToArray(a, x);
    }
}

int wire_parse(const char *buf, size_t len, wire_msg *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (len > WIRE_MAX_MSG) return bad(err, errlen, "message of %zu bytes", len);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) return bad(err, errlen, "not JSON");
    /* nothing but white space may follow the object */
    while (end && end < buf + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (!end || end != buf + len) {
        cJSON_Delete(j);
        return bad(err, errlen, "text after the JSON value");
    }
    int rc = -1;
    long v = 0, rank = 0, world = 0, step = 0, epoch = 0;
    char kind[16];
    if (!cJSON_IsObject(j)) {
        bad(err, errlen, "not a JSON object");
        goto out;
    }
    if (get_int(j, "v", 1, 1000, &v, err, errlen)) goto out;
    if (v != WIRE_VERSION) {
        bad(err, errlen, "wire version %ld (this monitor reads %d)", v, WIRE_VERSION);
        goto out;
    }
    if (get_str(j, "run", m->run, WIRE_RUN_MAX, 1, err, errlen)) goto out;
    if (!wire_run_id_ok(m->run)) {
        bad(err, errlen, "\"run\" must be 1..%d of [A-Za-z0-9._:-]", WIRE_RUN_MAX);
        goto out;
    }
    if (get_str(j, "kind", kind, sizeof kind - 1, 1, err, errlen)) goto out;
    static const char *const kinds[] = {"train", "eval", "event", "heartbeat"};
    int k = 0;
    while (k < 4 && strcmp(kind, kinds[k]) != 0) k++;
    if (k == 4) {
        bad(err, errlen, "unknown \"kind\" '%s'", kind);
        goto out;
    }
    m->kind = (wire_kind)k;
    if (get_int(j, "world", 1, WIRE_MAX_WORLD, &world, err, errlen) ||
        get_int(j, "rank", 0, (double)world - 1, &rank, err, errlen) ||
        get_int(j, "step", 0, 9e15, &step, err, errlen) ||
        get_int(j, "epoch", 0, 9e15, &epoch, err, errlen) ||
        get_num(j, "time", &m->time, err, errlen))
        goto out;
    if (!(m->time >= 0 && m->time <= WIRE_MAX_TIME)) {
        bad(err, errlen, "\"time\" missing, negative or past %.0f (Unix seconds)", WIRE_MAX_TIME);
        goto out;
    }
    m->v = (int)v, m->rank = (int)rank, m->world = (int)world, m->step = step, m->epoch = epoch;
    if (get_num(j, "loss_sum", &m->loss_sum, err, errlen) ||
        get_num(j, "tokens", &m->tokens, err, errlen) ||
        get_num(j, "grad_norm", &m->grad_norm, err, errlen) ||
        get_num(j, "lr", &m->lr, err, errlen) ||
        get_num(j, "tok_per_s", &m->tok_per_s, err, errlen) ||
        get_num(j, "val_loss", &m->val_loss, err, errlen) ||
        get_num(j, "val_ppl", &m->val_ppl, err, errlen) ||
        get_num(j, "bleu", &m->bleu, err, errlen))
        goto out;
    if (m->kind == WIRE_TRAIN && (!(m->loss_sum >= 0) || !(m->tokens >= 0))) {
        bad(err, errlen, "a train message needs \"loss_sum\" and \"tokens\" >= 0");
        goto out;
    }
    if (m->kind == WIRE_EVAL) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "samples");
        if (s && !cJSON_IsNull(s)) {
            if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) > WIRE_MAX_SAMPLES) {
                bad(err, errlen, "\"samples\" must be an array of at most %d", WIRE_MAX_SAMPLES);
                goto out;
            }
            const cJSON *e;
            cJSON_ArrayForEach(e, s)
            {
                wire_sample *w = &m->samples[m->nsamples++];
                if (!cJSON_IsObject(e) ||
                    get_str(e, "src", w->src, WIRE_TEXT_MAX, 1, err, errlen) ||
                    get_str(e, "hyp", w->hyp, WIRE_TEXT_MAX, 1, err, errlen) ||
                    get_str(e, "ref", w->ref, WIRE_TEXT_MAX, 1, err, errlen)) {
                    if (!cJSON_IsObject(e)) bad(err, errlen, "a sample must be an object");
                    goto out;
                }
            }
        }
    }
    if (m->kind == WIRE_EVENT) {
        if (get_str(j, "event", m->event, sizeof m->event - 1, 1, err, errlen)) goto out;
        if (!m->event[0]) {
            bad(err, errlen, "\"event\" is empty");
            goto out;
        }
    }
    if (get_str(j, "detail", m->detail, WIRE_TEXT_MAX, 0, err, errlen)) goto out;
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

/* ------------------------------------------------------------ collector */

#define MAX_RUNS   64
#define MAX_POINTS 20000 /* per series; beyond, every other point is dropped */
#define PENDING    64    /* steps awaiting some ranks' train messages */
#define MAX_EVENTS 500

typedef struct train_pt {
    long step;
    double loss, ppl, tps, gnorm;
} train_pt;

typedef struct eval_pt {
    long step;
    double val_loss, val_ppl, bleu;
} eval_pt;

typedef struct pending_step {
    long step;
    int count; /* 0: free */
    double loss, tokens, tps, gnorm;
} pending_step;

typedef struct rank_state {
    long step, last_train_step;
    double tps, last_seen;
    int done, seen;
} rank_state;

typedef struct event_rec {
    double time;
    long step;
    int rank;
    char event[33];
    char *detail;
} event_rec;

typedef struct run {
    char id[WIRE_RUN_MAX + 1];
    int world;
    char *config;
    double started, last_seen;
    int errored;
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
} run;

struct wire_collector {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wire_msg msg; /* the message being added (large: not on the stack) */
    int stopping; /* wire_collector_wake was called: waiters return */
    run *runs[MAX_RUNS];
    int nruns;
    long ok, malformed, oversized, version;
    char last_run[WIRE_RUN_MAX + 1];
};

wire_collector *wire_collector_new(void)
{
    wire_collector *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    return c;
}

static void run_free(run *r)
{
    if (!r) return;
    free(r->config), free(r->tr), free(r->ev), free(r->ranks), free(r->samples);
    for (int i = 0; i < MAX_EVENTS; i++) free(r->events[i].detail);
    free(r);
}

void wire_collector_free(wire_collector *c)
{
    if (!c) return;
    for (int i = 0; i < c->nruns; i++) run_free(c->runs[i]);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}

/* The run of id, created (evicting the least recently seen when full). */
static run *get_run(wire_collector *c, const wire_msg *m, double now)
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
    if (!rs) return -1;
    for (int i = 0; i < world; i++) rs[i].last_train_step = -1;
    free(r->ranks);
    r->ranks = rs;
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

static void add_train(run *r, rank_state *rk, const wire_msg *m)
{
    if (m->step <= rk->last_train_step) return; /* a duplicate, or older than what we have */
    rk->last_train_step = m->step;
    rk->tps = m->tok_per_s;
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
        p->gnorm = NAN;
    }
    p->count++;
    p->loss += m->loss_sum, p->tokens += m->tokens;
    if (isfinite(m->tok_per_s)) p->tps += m->tok_per_s;
    if (isfinite(m->grad_norm)) p->gnorm = m->grad_norm;
    if (p->count < r->world) return;
    /* every rank reported this step: one point; older incomplete steps never will */
    if (grow((void **)&r->tr, &r->ntr, &r->captr, sizeof *r->tr) == 0) {
        double loss = p->tokens > 0 ? p->loss / p->tokens : NAN;
        r->tr[r->ntr++] = (train_pt){p->step, loss, exp(loss), p->tps, p->gnorm};
    }
    long done_step = p->step;
    for (int i = 0; i < PENDING; i++)
        if (r->pend[i].count && r->pend[i].step <= done_step) r->pend[i].count = 0;
}

int wire_collector_add(wire_collector *c, const char *buf, size_t len, double now)
{
    char err[200];
    pthread_mutex_lock(&c->mu);
    wire_msg *const m = &c->msg;
    int rc = -1;
    if (len > WIRE_MAX_MSG) {
        c->oversized++;
        goto out;
    }
    if (wire_parse(buf, len, m, err, sizeof err) != 0) {
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
    if (!r || set_world(r, m->world) != 0) goto out;
    rank_state *rk = &r->ranks[m->rank];
    rk->last_seen = now > rk->last_seen ? now : rk->last_seen;
    rk->seen = 1;
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
            r->errored = 0;
            for (int i = 0; i < r->world; i++) r->ranks[i].done = 0;
        } else if (strcmp(m->event, "resume") == 0) {
            /* steps start again from the checkpoint's */
            for (int i = 0; i < r->world; i++) r->ranks[i].last_train_step = -1;
            memset(r->pend, 0, sizeof r->pend);
        } else if (strcmp(m->event, "end") == 0) {
            rk->done = 1;
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

void wire_collector_counts(wire_collector *c, long *ok, long *malformed, long *oversized)
{
    pthread_mutex_lock(&c->mu);
    *ok = c->ok, *malformed = c->malformed, *oversized = c->oversized;
    pthread_mutex_unlock(&c->mu);
}

long wire_collector_wait(wire_collector *c, long seen, int timeout_ms, char *runid)
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

void wire_collector_wake(wire_collector *c)
{
    pthread_mutex_lock(&c->mu);
    c->stopping = 1;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* -------------------------------------------------------------- renderings */

static const char *rank_state_name(const rank_state *rk, double now)
{
    if (rk->done) return "done";
    if (!rk->seen) return "lost";
    double age = now - rk->last_seen;
    return age > WIRE_LOST_S ? "lost" : age > WIRE_LATE_S ? "late" : "ok";
}

static const char *run_state_name(const run *r, double now)
{
    if (r->errored) return "stopped";
    int done = 0, lost = 0;
    for (int i = 0; i < r->world; i++) {
        const char *s = rank_state_name(&r->ranks[i], now);
        done += strcmp(s, "done") == 0;
        lost += strcmp(s, "lost") == 0;
    }
    if (done == r->world) return "done";
    if (lost + done == r->world) return "lost";
    return "running";
}

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

static double run_figure(const run *r, figure f, double now)
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
        return strcmp(run_state_name(r, now), "running") == 0;
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

/* cJSON prints NaN as null */
static cJSON *run_summary(const run *r, double now)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddNumberToObject(o, "world", r->world);
    cJSON_AddNumberToObject(o, "step", (double)r->step);
    cJSON_AddNumberToObject(o, "epoch", (double)r->epoch);
    cJSON_AddNumberToObject(o, "loss", run_figure(r, FIG_LOSS, now));
    cJSON_AddNumberToObject(o, "ppl", run_figure(r, FIG_PPL, now));
    cJSON_AddNumberToObject(o, "val_loss", run_figure(r, FIG_VLOSS, now));
    cJSON_AddNumberToObject(o, "val_ppl", run_figure(r, FIG_VPPL, now));
    cJSON_AddNumberToObject(o, "bleu", run_figure(r, FIG_BLEU, now));
    cJSON_AddNumberToObject(o, "tok_per_s", run_figure(r, FIG_TPS, now));
    cJSON_AddStringToObject(o, "state", run_state_name(r, now));
    cJSON_AddNumberToObject(o, "started", r->started);
    cJSON_AddNumberToObject(o, "last_seen", r->last_seen);
    return o;
}

static char *print_and_free(cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *wire_collector_runs_json(wire_collector *c, double now)
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

char *wire_collector_run_json(wire_collector *c, const char *id, double now)
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
        cJSON_AddStringToObject(x, "state", rank_state_name(rk, now));
        cJSON_AddItemToArray(ra, x);
    }
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
    {"seqpar_bleu", "Validation corpus BLEU (x100) of the latest evaluation.", FIG_BLEU},
};

char *wire_collector_metrics(wire_collector *c, double now)
{
    text t = {0};
    pthread_mutex_lock(&c->mu);
    put(&t,
        "# HELP seqpar_monitor_messages_total Metrics-wire messages received, by outcome.\n"
        "# TYPE seqpar_monitor_messages_total counter\n"
        "seqpar_monitor_messages_total{outcome=\"accepted\"} %ld\n"
        "seqpar_monitor_messages_total{outcome=\"malformed\"} %ld\n"
        "seqpar_monitor_messages_total{outcome=\"oversized\"} %ld\n",
        c->ok, c->malformed, c->oversized);
    for (size_t g = 0; g < sizeof gauges / sizeof *gauges; g++) {
        put(&t, "# HELP %s %s\n# TYPE %s gauge\n", gauges[g].name, gauges[g].help, gauges[g].name);
        for (int i = 0; i < c->nruns; i++) {
            const double v = run_figure(c->runs[i], gauges[g].fig, now);
            if (isfinite(v)) put(&t, "%s{run=\"%s\"} %.10g\n", gauges[g].name, c->runs[i]->id, v);
        }
    }
    put(&t, "# HELP seqpar_rank_last_seen_seconds Seconds since a rank's last message.\n"
            "# TYPE seqpar_rank_last_seen_seconds gauge\n");
    for (int i = 0; i < c->nruns; i++)
        for (int k = 0; k < c->runs[i]->world; k++)
            if (c->runs[i]->ranks[k].seen)
                put(&t, "seqpar_rank_last_seen_seconds{run=\"%s\",rank=\"%d\"} %.3f\n",
                    c->runs[i]->id, k, now - c->runs[i]->ranks[k].last_seen);
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

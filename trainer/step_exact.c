/* The deterministic mode's step: shards, exact sums (step_exact.h). */
#include "step_exact.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "exact_sum.h"
#include "step.h"

/* The lanes after the gradient's: exact sums of the step's figures. */
enum { LANE_LOSS = 0, LANE_TOKENS = 1, LANE_STOP = 2, LANES };

typedef struct shard_worker {
    model *m; /* a replica sized for one shard */
    data_slice slice;
    batch_rows rows;
    float *st_h, *st_c; /* LM: a shard's carried state (L, 8, H) */
    float *store; /* its shards' gradients: `cap` slots of `stride` floats, zero between steps */
    int cap;
    int64_t *acc; /* total + LANES lanes */
    int *emax;    /* per tensor: the largest exponent over its shards */
    int s_lo, s_hi;
    double loss, fp, fe;
    double data_s; /* seconds filling its shards' rows, this step */
    long ntok;
    int bad_grad, bad_loss; /* a non-finite gradient, loss */
    int rc;
} shard_worker;

struct step_exact {
    const train_config *cfg;
    const train_data *d;
    model *m;
    int rank, world, nw;
    long count;    /* shards of a full batch: the addends any sum can hold */
    size_t stride; /* floats per stored shard: the gradient and its tail, 64-byte aligned */
    data_sampler gs;
    data_slice gslice; /* every row of the step's batch, in global order */
    comm_pool *pool;
    shard_worker *wk;
    int nt;     /* tensors */
    int *emax;  /* nt + 2: per tensor, then the non-finite gradient and loss flags (MPI_MAX) */
    int *scale; /* per tensor, this step */
    int loss_scale;
    const train_pos *pos;
    float *state_h, *state_c;
    int row_lo, rows;
    double comm_s;
    int inject_nan; /* this step: SEQPAR_FAULT_NAN's */
};

/* shards [lo, hi) of S held by part `p` of `parts` */
static void share(long S, int p, int parts, int *lo, int *hi)
{
    *lo = (int)(S * p / parts);
    *hi = (int)(S * (p + 1) / parts);
}

void step_exact_rows(int batch, int rank, int world, int *lo, int *hi)
{
    const long S = (batch + EXACT_SHARD_ROWS - 1) / EXACT_SHARD_ROWS;
    int a, b;
    share(S, rank, world, &a, &b);
    *lo = a * EXACT_SHARD_ROWS;
    *hi = b * EXACT_SHARD_ROWS < batch ? b * EXACT_SHARD_ROWS : batch;
}

/* n rows of a (L, rows, H) state from row `off`, to or from a (L, n, H) one */
static void state_rows(const step_exact *x, float *rank_buf, int off, float *shard, int n,
                       int to_rank)
{
    const int L = x->cfg->layers, H = x->cfg->hidden;
    for (int l = 0; l < L; l++) {
        float *g = rank_buf + ((size_t)l * x->rows + off) * H;
        float *s = shard + (size_t)l * n * H;
        memcpy(to_rank ? g : s, to_rank ? s : g, (size_t)n * H * sizeof(float));
    }
}

/* One shard's forward and backward on worker k; its gradient into slot. */
static int run_shard(step_exact *x, shard_worker *k, int j, int slot)
{
    const param_table *pt = model_params(k->m);
    const int R = x->gslice.global_rows, lo = j * EXACT_SHARD_ROWS;
    const int hi = lo + EXACT_SHARD_ROWS < R ? lo + EXACT_SHARD_ROWS : R;
    k->slice = (data_slice){.global_rows = R, .lo = lo, .hi = hi, .index = x->gslice.index + lo};
    const double t0 = comm_time();
    const int B = train_data_fill(x->d, &k->slice, x->cfg->steps, &k->rows);
    k->data_s += comm_time() - t0;
    float *sh = x->state_h ? k->st_h : NULL, *sc = x->state_h ? k->st_c : NULL;
    if (sh) {
        state_rows(x, x->state_h, lo - x->row_lo, sh, B, 0);
        state_rows(x, x->state_c, lo - x->row_lo, sc, B, 0);
    }
    model_batch b = {.B = B,
                     .T = x->cfg->steps,
                     .src = k->rows.src,
                     .tgt = k->rows.tgt,
                     .tgt_valid = x->d->lm ? NULL : k->rows.valid_len,
                     .example = k->rows.example,
                     .seed = (uint64_t)x->cfg->seed,
                     .step = (uint64_t)x->pos->step,
                     .state_h = sh,
                     .state_c = sc};
    double loss = 0.0, fp = 0.0, fe = 0.0;
    long ntok = 0;
    /* backward adds into the slot (zero) instead of the replica's buffer */
    float *g = k->store + (size_t)slot * x->stride;
    model_use_grad(k->m, g);
    const int rc = model_step(k->m, &b, 1, &loss, &ntok);
    model_use_grad(k->m, NULL);
    if (rc != MODEL_OK) return -1;
    /* test-only (SEQPAR_FAULT_NAN): the rank's first shard's gradient */
    if (x->inject_nan && k == &x->wk[0] && slot == 0) g[pt->t[0].offset] = NAN;
    model_matmul_flops(k->m, &b, &fp, &fe);
    if (sh) {
        state_rows(x, x->state_h, lo - x->row_lo, sh, B, 1);
        state_rows(x, x->state_c, lo - x->row_lo, sc, B, 1);
    }
    k->loss += loss, k->ntok += ntok, k->fp += fp, k->fe += fe;
    int64_t lane = 0;
    k->bad_loss |= exact_add_double(&lane, loss, x->loss_scale, x->count) != EXACT_OK;
    k->acc[pt->total + LANE_LOSS] += lane;
    for (int i = 0; i < x->nt; i++) {
        int e;
        if (exact_exponent(g + pt->t[i].offset, pt->t[i].size, &e, NULL) != EXACT_OK)
            k->bad_grad = 1;
        else if (e > k->emax[i])
            k->emax[i] = e;
    }
    return 0;
}

/* Worker w: its shards of the step's batch. */
static void work_shards(void *ctx, int w)
{
    step_exact *x = ctx;
    shard_worker *k = &x->wk[w];
    k->loss = k->fp = k->fe = k->data_s = 0.0;
    k->ntok = 0;
    k->bad_grad = k->bad_loss = 0;
    k->rc = 0;
    for (int i = 0; i < x->nt; i++) k->emax[i] = EXACT_E_ZERO;
    for (int j = k->s_lo; j < k->s_hi && k->rc == 0; j++) k->rc = run_shard(x, k, j, j - k->s_lo);
}

/* Worker w: its stored shards as lanes at the step's scales, a block of a
 * tensor at a time over every shard (the lanes stay in cache), the slots
 * zeroed behind for the next step. */
enum { LANE_BLOCK = 4096 };
static void work_lanes(void *ctx, int w)
{
    step_exact *x = ctx;
    shard_worker *k = &x->wk[w];
    const param_table *pt = model_params(k->m);
    const int nslots = k->s_hi - k->s_lo;
    for (int i = 0; i < x->nt && k->rc == 0; i++) {
        const size_t off = pt->t[i].offset, end = off + pt->t[i].size;
        for (size_t lo = off; lo < end; lo += LANE_BLOCK) {
            const size_t len = end - lo < LANE_BLOCK ? end - lo : LANE_BLOCK;
            for (int j = 0; j < nslots; j++) {
                float *g = k->store + (size_t)j * x->stride + lo;
                if (exact_add(k->acc + lo, g, len, x->scale[i], x->count, NULL) != EXACT_OK)
                    k->rc = -2; /* beyond the global bound: cannot happen, never ignored */
                memset(g, 0, len * sizeof(float));
            }
        }
    }
}

/* Worker w after a non-finite step: its slots back to zero. */
static void work_clear(void *ctx, int w)
{
    step_exact *x = ctx;
    shard_worker *k = &x->wk[w];
    memset(k->store, 0, (size_t)(k->s_hi - k->s_lo) * x->stride * sizeof(float));
}

/* The lanes of every worker into worker 0's, then over ranks; the global
 * maxima first (they fix the scales). */
static int sum_lanes(step_exact *x, int stop, exact_result *r)
{
    const size_t total = model_params(x->m)->total;
    int64_t *acc = x->wk[0].acc;
    for (int i = 0; i < x->nt + 2; i++) x->emax[i] = i < x->nt ? EXACT_E_ZERO : 0;
    for (int w = 0; w < x->nw; w++) {
        const shard_worker *k = &x->wk[w];
        for (int i = 0; i < x->nt; i++)
            if (k->emax[i] > x->emax[i]) x->emax[i] = k->emax[i];
        x->emax[x->nt] |= k->bad_grad, x->emax[x->nt + 1] |= k->bad_loss;
        r->local_loss += k->loss, r->local_tokens += k->ntok, r->fp += k->fp, r->fe += k->fe;
        r->data_s += k->data_s / x->nw; /* the workers fill side by side */
        if (w > 0) acc[total + LANE_LOSS] += k->acc[total + LANE_LOSS];
        if (w > 0) k->acc[total + LANE_LOSS] = 0;
    }
    acc[total + LANE_TOKENS] = r->local_tokens;
    acc[total + LANE_STOP] = stop ? 1 : 0;
    double t0 = comm_time();
    if (comm_allreduce_max_int(x->emax, x->nt + 2) != COMM_OK) return STEP_ECOMM;
    x->comm_s += comm_time() - t0;
    r->bad_grad = x->emax[x->nt] != 0, r->bad_loss = x->emax[x->nt + 1] != 0;
    r->nonfinite = r->bad_grad || r->bad_loss;
    if (r->nonfinite) comm_pool_run(x->pool, work_clear, x);
    if (!r->nonfinite) {
        for (int i = 0; i < x->nt; i++)
            if (exact_scale(x->emax[i], x->count, &x->scale[i]) != EXACT_OK) return STEP_ECOMM;
        comm_pool_run(x->pool, work_lanes, x);
        for (int w = 0; w < x->nw; w++)
            if (x->wk[w].rc) return STEP_ECOMM;
        for (int w = 1; w < x->nw; w++) {
            int64_t *restrict a = x->wk[w].acc;
            for (size_t i = 0; i < total; i++) acc[i] += a[i];
            memset(a, 0, total * sizeof *a);
        }
    }
    t0 = comm_time();
    /* a non-finite step sums only its figures: every rank knows it is one */
    int rc = r->nonfinite ? comm_allreduce_int64(acc + total, LANES)
                          : comm_allreduce_int64(acc, total + LANES);
    x->comm_s += comm_time() - t0;
    return rc == COMM_OK ? STEP_OK : STEP_ECOMM;
}

int step_exact_run(step_exact *x, const train_pos *pos, int stop, int inject_nan, float *state_h,
                   float *state_c, int row_lo, int rows, exact_result *r)
{
    param_table *pt = model_params(x->m);
    *r = (exact_result){0};
    x->inject_nan = inject_nan;
    x->pos = pos, x->state_h = state_h, x->state_c = state_c, x->row_lo = row_lo, x->rows = rows;
    const double t0 = comm_time();
    if (data_sampler_slice(&x->gs, pos->epoch, pos->batch_in_epoch, &x->gslice) != DATA_OK)
        return STEP_EBATCH;
    r->data_s = comm_time() - t0;
    const long S = (x->gslice.global_rows + EXACT_SHARD_ROWS - 1) / EXACT_SHARD_ROWS;
    int a, b;
    share(S, x->rank, x->world, &a, &b);
    for (int w = 0; w < x->nw; w++) {
        int lo, hi;
        share(b - a, w, x->nw, &lo, &hi);
        x->wk[w].s_lo = a + lo, x->wk[w].s_hi = a + hi;
    }
    comm_pool_run(x->pool, work_shards, x);
    for (int w = 0; w < x->nw; w++)
        if (x->wk[w].rc) return STEP_EBATCH;
    int rc = sum_lanes(x, stop, r);
    int64_t *acc = x->wk[0].acc;
    const size_t total = pt->total;
    if (rc == STEP_OK) {
        r->tokens = (double)acc[total + LANE_TOKENS];
        r->stop = acc[total + LANE_STOP] > 0;
        r->loss_sum = r->bad_loss ? NAN : exact_to_double(acc[total + LANE_LOSS], x->loss_scale);
        for (int i = 0; i < x->nt && !r->nonfinite; i++) {
            const size_t off = pt->t[i].offset;
            if (exact_to_float(pt->grad + off, acc + off, pt->t[i].size, x->scale[i]) != EXACT_OK)
                rc = STEP_ECOMM; /* a lane beyond its bound: cannot happen, never ignored */
        }
    }
    memset(acc, 0, (total + LANES) * sizeof *acc);
    return rc;
}

/* ------------------------------------------------------------- set-up */

static int setup_worker(step_exact *x, shard_worker *k, int cap, char *err, size_t n)
{
    const train_config *c = x->cfg;
    model_config mc = *model_get_config(x->m);
    mc.max_batch = EXACT_SHARD_ROWS;
    if (model_create(&k->m, &mc, err, n) != MODEL_OK || model_share_params(k->m, x->m) != MODEL_OK)
        return -1;
    model_set_bptt(k->m, c->bptt.mode, c->bptt.k);
    model_set_label_smoothing(k->m, (float)c->label_smoothing);
    const size_t total = model_params(x->m)->total,
                 st = (size_t)c->layers * EXACT_SHARD_ROWS * c->hidden;
    const size_t bytes = ((size_t)cap > 0 ? (size_t)cap : 1) * x->stride * sizeof(float);
    k->cap = cap;
    k->store = aligned_alloc(64, bytes);
    if (k->store) memset(k->store, 0, bytes);
    k->acc = calloc(total + LANES, sizeof(int64_t));
    k->emax = calloc((size_t)x->nt, sizeof(int));
    k->st_h = calloc(st, sizeof(float));
    k->st_c = calloc(st, sizeof(float));
    if (!k->store || !k->acc || !k->emax || !k->st_h || !k->st_c ||
        batch_rows_alloc(&k->rows, EXACT_SHARD_ROWS, c->steps) != 0) {
        snprintf(err, n,
                 "out of memory for --deterministic's shard buffers (%d shard%s of %zu "
                 "parameters per worker)",
                 cap, cap == 1 ? "" : "s", total);
        return -1;
    }
    return 0;
}

int step_exact_create(step_exact **out, const train_config *c, const train_data *d, model *m,
                      int rank, int world, char *err, size_t n)
{
    step_exact *x = calloc(1, sizeof *x);
    *out = x;
    if (!x) {
        snprintf(err, n, "out of memory for --deterministic");
        return -1;
    }
    x->cfg = c, x->d = d, x->m = m, x->rank = rank, x->world = world, x->nw = c->workers;
    x->count = (c->batch + EXACT_SHARD_ROWS - 1) / EXACT_SHARD_ROWS;
    x->nt = model_params(m)->n;
    x->stride = (model_params(m)->total + PARAM_GRAD_TAIL + 15) / 16 * 16;
    if (exact_scale(EXACT_LOSS_EXPONENT, x->count, &x->loss_scale) != EXACT_OK) {
        snprintf(err, n, "--deterministic: --batch %d is too large for 62-bit lanes", c->batch);
        return -1;
    }
    x->emax = calloc((size_t)x->nt + 2, sizeof(int));
    x->scale = calloc((size_t)x->nt, sizeof(int));
    x->gslice.index = calloc((size_t)c->batch + 1, sizeof(long));
    x->wk = calloc((size_t)x->nw, sizeof *x->wk);
    if (!x->emax || !x->scale || !x->gslice.index || !x->wk) {
        snprintf(err, n, "out of memory for --deterministic");
        return -1;
    }
    /* every row of a batch, in the global order, whatever the world */
    if (data_sampler_init(&x->gs, d->lm ? DATA_TASK_LM : DATA_TASK_TRANSLATE, d->sampler.kind,
                          train_data_items(d), c->batch, c->steps, (uint64_t)c->seed, 0, 1, err,
                          n) != DATA_OK)
        return -1;
    /* the most shards one worker can hold: a share of S over world·nw
     * parts is at most ceil(S / parts), and S is at most count */
    const long per_rank = (x->count + world - 1) / world;
    const int cap = (int)((per_rank + x->nw - 1) / x->nw);
    for (int w = 0; w < x->nw; w++)
        if (setup_worker(x, &x->wk[w], cap, err, n) != 0) return -1;
    if (x->nw > 1 && comm_pool_create(&x->pool, x->nw, 0) != COMM_OK) {
        snprintf(err, n, "cannot start --deterministic's %d workers", x->nw);
        return -1;
    }
    return 0;
}

void step_exact_free(step_exact *x)
{
    if (!x) return;
    comm_pool_free(x->pool);
    for (int w = 0; x->wk && w < x->nw; w++) {
        shard_worker *k = &x->wk[w];
        model_free(k->m);
        batch_rows_free(&k->rows);
        free(k->store), free(k->acc), free(k->emax), free(k->st_h), free(k->st_c);
    }
    free(x->wk);
    data_sampler_free(&x->gs);
    free(x->gslice.index), free(x->emax), free(x->scale);
    free(x);
}

double step_exact_comm_seconds(const step_exact *x)
{
    return x->comm_s;
}

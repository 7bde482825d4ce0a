/* The step engine (step.h).
 *
 * Within a rank, --workers W splits the step once more: W threads each train
 * a replica that reads the rank's parameters (model_share_params) on the
 * rows of a virtual rank (rank·W + w of world·W, dealt as among ranks), then
 * sum their gradients into the rank's buffer and share the update out by
 * ranges of the buffer (Marian's CPU workers, synchronous). OpenBLAS runs
 * single-threaded in each, so no thread waits on another's BLAS pool. One
 * worker is the rank's own model on the calling thread. */
#include "step.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "step_exact.h"

/* The gradient buffer's tail: the step's sums, reduced with the gradient
 * (PARAM_GRAD_TAIL floats are reduced; these are the ones in use). */
enum { TAIL_LOSS = 0, TAIL_TOKENS = 1, TAIL_STOP = 2, TAIL_USED };
_Static_assert(TAIL_USED <= PARAM_GRAD_TAIL, "the step's sums must fit the gradient's tail");

/* One in-process worker's share of a step. */
typedef struct worker {
    model *m;                /* one worker: the rank's model; several: replicas */
    const data_sampler *smp; /* its sampler: the rank's for one worker */
    data_sampler sampler;    /* its own, as virtual rank rank·W + w of world·W */
    data_slice slice;
    batch_rows rows;         /* its batch */
    float *st_h, *st_c;      /* LM sequential, several workers: its rows' carried state */
    double loss_sum, fp, fe; /* the step's loss sum and matmul work */
    double data_s;           /* seconds taking and filling its rows, this step */
    long ntok;
    int rc;
    size_t lo, hi; /* its range of the parameter buffer (sums, norms, updates) */
} worker;

struct step_engine {
    const train_config *cfg;
    const train_data *data;
    int rank, world;
    model *m;
    optimizer opt;
    const train_pos *pos; /* of the step being run */
    /* workers */
    int nworkers;
    worker *wk;
    comm_pool *pool;    /* NULL for one worker */
    float step_scale;   /* the update's factor on the summed gradient */
    double *chunk_sums; /* Σ g² per GRAD_CHUNK of the gradient (the norm) */
    /* reduction */
    comm_reducer *red;
    size_t *toff, *tsize; /* the parameter table's offsets and sizes, for comm/ */
    int comm_failed;
    int grad_dirty; /* the gradient buffer was not zeroed by an update */
    double grad_norm;
    double flops[2];
    /* an LM's carried state (sequential sampler) */
    int carry_state;
    int row_lo, row_hi;         /* this rank's rows of a full global batch */
    float *state_h, *state_c;   /* (L, rows, H) this rank's rows */
    int state_cap;              /* rows the state buffers hold */
    float *gstate_h, *gstate_c; /* (L, batch, H): every rank's rows, for checkpoints */
    step_exact *ex;             /* --deterministic: the shards and exact sums */
    /* the test-only faults */
    int fault_rank, fault_tensor;
    long fault_step;
    int nan_rank; /* SEQPAR_FAULT_NAN=RANK:STEP */
    long nan_step;
    int slow_rank; /* SEQPAR_TEST_SLOW_RANK=RANK:MS: that rank computes MS longer a step */
    struct timespec slow;
    /* seconds of this rank's steps so far, by phase (step_seconds) */
    double secs[STEP_PHASES];
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Copies n rows of a carried state between a (L, n, H) buffer and rows
 * [off, off + n) of a (L, big, H) one, into the big one when `to_big`. */
static void copy_state_rows(const step_engine *e, float *bigbuf, int big, int off, float *part,
                            int n, int to_big)
{
    const int L = e->cfg->layers, H = e->cfg->hidden;
    for (int l = 0; l < L; l++) {
        float *g = bigbuf + ((size_t)l * big + off) * H;
        float *x = part + (size_t)l * n * H;
        if (to_big)
            memcpy(g, x, (size_t)n * H * sizeof(float));
        else
            memcpy(x, g, (size_t)n * H * sizeof(float));
    }
}

static void on_grad_ready(void *ctx, int first, int end);

/* ------------------------------------------------------ the workers' jobs */

/* A worker's forward and backward on its rows of micro-batch `part` of the
 * step's batch (part 0 of 1 without --accum). */
static void work_part(step_engine *e, worker *k, int part)
{
    const double t0 = now_s();
    data_sampler_slice_part(k->smp, e->pos->epoch, e->pos->batch_in_epoch, part, e->cfg->accum,
                            &k->slice);
    const int B = train_data_fill(e->data, &k->slice, e->cfg->steps, &k->rows);
    k->data_s += now_s() - t0; /* summed over --accum's parts */
    /* an LM's carried state: the rank's buffer, or with several workers a
     * copy of this worker's rows (a contiguous run of the rank's) */
    float *sh = e->carry_state ? e->state_h : NULL, *sc = e->carry_state ? e->state_c : NULL;
    const int rows = e->row_hi - e->row_lo, off = k->slice.lo - e->row_lo;
    if (sh && e->nworkers > 1) {
        sh = k->st_h, sc = k->st_c;
        copy_state_rows(e, e->state_h, rows, off, sh, B, 0);
        copy_state_rows(e, e->state_c, rows, off, sc, B, 0);
    }
    model_batch b = {.B = B,
                     .T = e->cfg->steps,
                     .src = k->rows.src,
                     .tgt = k->rows.tgt,
                     .tgt_valid = e->data->lm ? NULL : k->rows.valid_len,
                     .example = k->rows.example,
                     .seed = (uint64_t)e->cfg->seed,
                     .step = (uint64_t)e->pos->step,
                     .state_h = sh,
                     .state_c = sc};
    k->rc = model_step(k->m, &b, 1, &k->loss_sum, &k->ntok);
    model_matmul_flops(k->m, &b, &k->fp, &k->fe);
    if (sh && sh != e->state_h) {
        copy_state_rows(e, e->state_h, rows, off, sh, B, 1);
        copy_state_rows(e, e->state_c, rows, off, sc, B, 1);
    }
}

/* A worker's share of the step: one batch, or --accum K micro-batches whose
 * gradients add up in its buffer (model_step adds), their loss and token
 * sums too. With --overlap on, only the last announces its gradients to the
 * reducer: the buckets leave once, complete. */
static void work_step(void *ctx, int w)
{
    step_engine *e = ctx;
    worker *k = &e->wk[w];
    const int K = e->cfg->accum;
    if (K == 1) {
        work_part(e, k, 0);
        return;
    }
    double loss = 0.0, fp = 0.0, fe = 0.0;
    long ntok = 0;
    for (int j = 0; j < K; j++) {
        if (e->cfg->overlap) model_set_grad_hook(k->m, j == K - 1 ? on_grad_ready : NULL, e);
        work_part(e, k, j);
        if (k->rc != MODEL_OK) return;
        loss += k->loss_sum, ntok += k->ntok, fp += k->fp, fe += k->fe;
    }
    k->loss_sum = loss, k->ntok = ntok, k->fp = fp, k->fe = fe;
}

/* The rank's gradient = the workers' summed in worker order (two workers:
 * the bits of a two-rank allreduce), over this worker's range; the workers'
 * are left zeroed for the next step. A chunk at a time, and in one rank
 * also its Σ g² while the chunk is in cache (the norm, grad_norm's bits). */
static void work_sum(void *ctx, int w)
{
    step_engine *e = ctx;
    const worker *k = &e->wk[w];
    const param_table *pt = model_params(e->m);
    float *restrict sum = pt->grad;
    for (size_t a = k->lo; a < k->hi; a += GRAD_CHUNK) {
        const size_t b = k->hi - a < GRAD_CHUNK ? k->hi : a + GRAD_CHUNK;
        const float *restrict g0 = model_params(e->wk[0].m)->grad;
        const float *restrict g1 = model_params(e->wk[1].m)->grad;
        for (size_t i = a; i < b; i++) sum[i] = g0[i] + g1[i];
        for (int r = 2; r < e->nworkers; r++) {
            const float *restrict g = model_params(e->wk[r].m)->grad;
            for (size_t i = a; i < b; i++) sum[i] += g[i];
        }
        for (int r = 0; r < e->nworkers; r++)
            memset(model_params(e->wk[r].m)->grad + a, 0, (b - a) * sizeof(float));
        if (e->world == 1) grad_chunk_sums(sum, pt->total, a, b, e->chunk_sums);
    }
}

/* Σ g² of this worker's chunks (after the allreduce). */
static void work_norm(void *ctx, int w)
{
    step_engine *e = ctx;
    const param_table *pt = model_params(e->m);
    grad_chunk_sums(pt->grad, pt->total, e->wk[w].lo, e->wk[w].hi, e->chunk_sums);
}

/* The optimizer's update over this worker's range (optimizer_begin ran). */
static void work_update(void *ctx, int w)
{
    step_engine *e = ctx;
    optimizer_apply(&e->opt, model_params(e->m), e->step_scale, e->wk[w].lo, e->wk[w].hi);
}

/* ------------------------------------------------------------------ step */

static int update(step_engine *e, double gl, double gt, int chunks, step_result *res);

/* --deterministic: the rank's shards and the exact sums (step_exact.c) give
 * the gradient in the rank's buffer; then the update as always. */
static int exact_step(step_engine *e, const train_pos *pos, int stop, step_result *res)
{
    exact_result x;
    float *sh = e->carry_state ? e->state_h : NULL, *sc = e->carry_state ? e->state_c : NULL;
    const int nan = e->rank == e->nan_rank && pos->step == e->nan_step;
    const int rc =
        step_exact_run(e->ex, pos, stop, nan, sh, sc, e->row_lo, e->row_hi - e->row_lo, &x);
    if (rc != STEP_OK) return rc;
    e->flops[0] += x.fp, e->flops[1] += x.fe;
    e->wk[0].data_s = x.data_s; /* the timeline's data phase (one worker entry here) */
    *res = (step_result){.loss_sum = x.loss_sum,
                         .tokens = x.tokens,
                         .local_loss = x.local_loss,
                         .local_tokens = x.local_tokens,
                         .stop = x.stop};
    if (x.nonfinite) {
        res->nonfinite = 1;
        res->grad_norm = NAN;
        return STEP_OK;
    }
    e->grad_dirty = 1;
    return update(e, x.loss_sum, x.tokens, 1, res);
}

/* The step (step_run without its timing); *wait_s: seconds in the
 * reducer's finish, the allreduce that backward did not hide (with
 * --deterministic, its exact sums' collectives). */
static int run_step(step_engine *e, const train_pos *pos, int stop, step_result *res,
                    double *wait_s)
{
    param_table *pt = model_params(e->m);
    e->pos = pos;
    /* the optimizer leaves the gradient zeroed; only a step without an
     * update leaves it to clear here */
    if (e->grad_dirty) param_zero_grad(pt), e->grad_dirty = 0;
    if (e->rank == e->nan_rank && pos->step == e->nan_step) {
        /* backward adds into the gradient: the NaN stays, whatever the batch */
        model_params(e->wk[0].m)->grad[pt->t[0].offset] = NAN;
    }
    if (e->ex) {
        const double c0 = step_exact_comm_seconds(e->ex);
        const int rc = exact_step(e, pos, stop, res);
        *wait_s = step_exact_comm_seconds(e->ex) - c0;
        return rc;
    }
    comm_reducer_begin(e->red);
    comm_pool_run(e->pool, work_step, e);
    double loss_sum = 0.0;
    long ntok = 0;
    float tail_loss = 0.0f, tail_tok = 0.0f; /* summed as the allreduce sums ranks */
    for (int w = 0; w < e->nworkers; w++) {
        const worker *k = &e->wk[w];
        if (k->rc != MODEL_OK) return STEP_EBATCH;
        loss_sum += k->loss_sum, ntok += k->ntok;
        tail_loss += (float)k->loss_sum, tail_tok += (float)k->ntok;
        e->flops[0] += k->fp, e->flops[1] += k->fe;
    }
    if (e->nworkers > 1) comm_pool_run(e->pool, work_sum, e);
    /* the step's sums and this rank's stop request ride in the gradient
     * buffer's tail: one allreduce */
    float *tail = pt->grad + pt->total;
    tail[TAIL_LOSS] = tail_loss;
    tail[TAIL_TOKENS] = tail_tok;
    tail[TAIL_STOP] = stop ? 1.0f : 0.0f;
    const double t_wait = now_s();
    const int reduced = comm_reducer_finish(e->red);
    *wait_s = now_s() - t_wait;
    if (reduced != COMM_OK || e->comm_failed) return STEP_ECOMM;
    const double gl = tail[TAIL_LOSS], gt = tail[TAIL_TOKENS];
    *res = (step_result){.loss_sum = gl,
                         .tokens = gt,
                         .local_loss = loss_sum,
                         .local_tokens = ntok,
                         .stop = tail[TAIL_STOP] > 0};
    e->grad_dirty = 1; /* unless the update below zeroes it */
    /* the norm of the averaged gradient from the chunks' sums (summed while
     * the workers added their gradients, in one rank) */
    return update(e, gl, gt, e->world > 1 || e->nworkers == 1, res);
}

/* The norm (its chunks' sums first when `chunks`), then the clipped,
 * token-averaged update, unless the step had no tokens or is not finite. */
static int update(step_engine *e, double gl, double gt, int chunks, step_result *res)
{
    param_table *pt = model_params(e->m);
    const train_config *c = e->cfg;
    if (gt > 0) {
        if (chunks) comm_pool_run(e->pool, work_norm, e);
        const double norm = grad_norm_of_chunks(e->chunk_sums, pt->total) / gt;
        /* every rank has the same sums: every rank decides alike */
        res->nonfinite = !isfinite(gl) || !isfinite(norm);
        res->grad_norm = norm;
        if (res->nonfinite) return STEP_OK;
        /* the token average, the clipping and the update in one pass,
         * shared out over the workers, zeroing the gradient */
        e->step_scale = optimizer_update_scale(norm, gt, c->clip);
        optimizer_begin(&e->opt);
        comm_pool_run(e->pool, work_update, e);
        e->grad_norm = norm;
        e->grad_dirty = 0;
        res->updated = 1;
    }
    res->grad_norm = e->grad_norm;
    return STEP_OK;
}

/* The step, timed: waiting in the allreduce, reading data (the workers'
 * mean: they read side by side), and the rest is compute. */
int step_run(step_engine *e, const train_pos *pos, int stop, step_result *res)
{
    const double t0 = now_s();
    if (e->rank == e->slow_rank) nanosleep(&e->slow, NULL); /* test-only: a slow rank */
    double wait = 0.0, data = 0.0;
    for (int w = 0; w < e->nworkers; w++) e->wk[w].data_s = 0.0;
    const int rc = run_step(e, pos, stop, res, &wait);
    for (int w = 0; w < e->nworkers; w++) data += e->wk[w].data_s / e->nworkers;
    const double all = now_s() - t0;
    e->secs[STEP_WAIT] += wait;
    e->secs[STEP_DATA] += data;
    e->secs[STEP_COMPUTE] += all - wait - data > 0 ? all - wait - data : 0.0;
    return rc;
}

/* ------------------------------------------------------------- set-up */

static void on_grad_ready(void *ctx, int first, int end)
{
    step_engine *e = ctx;
    if (comm_reducer_ready(e->red, first, end) != COMM_OK) e->comm_failed = 1;
}

/* The reducer over the parameter table (see comm.h); the model announces
 * finished gradients to it when --overlap on. */
static int setup_reducer(step_engine *e)
{
    param_table *pt = model_params(e->m);
    e->toff = calloc((size_t)pt->n, sizeof(size_t));
    e->tsize = calloc((size_t)pt->n, sizeof(size_t));
    if (!e->toff || !e->tsize) return -1;
    for (int i = 0; i < pt->n; i++) e->toff[i] = pt->t[i].offset, e->tsize[i] = pt->t[i].size;
    /* the tail sits at grad + total, after the padding */
    if (comm_reducer_create(&e->red, pt->grad, pt->total, e->toff, e->tsize, pt->n, PARAM_GRAD_TAIL,
                            (size_t)e->cfg->bucket_kb * 1024, e->cfg->overlap) != COMM_OK)
        return -1;
    if (e->world > 1 && comm_reducer_set_compress(e->red, e->cfg->grad_compress) != COMM_OK)
        return -1;
    if (e->cfg->overlap) model_set_grad_hook(e->m, on_grad_ready, e);
    return 0;
}

/* Worker w of several: a replica sized for its rows, as a rank's model is
 * (the size picks some kernels), so W workers compute what W ranks would;
 * a virtual rank's sampler and its own buffers. */
static int setup_replica(step_engine *e, worker *k, int w, int rows, char *err, size_t n)
{
    const train_config *c = e->cfg;
    const int W = c->workers, vworld = e->world * W;
    const train_data *d = e->data;
    if (data_sampler_init(&k->sampler, d->lm ? DATA_TASK_LM : DATA_TASK_TRANSLATE, d->sampler.kind,
                          train_data_items(d), train_data_update_batch(c), c->steps,
                          (uint64_t)c->seed, e->rank * W + w, vworld, err, n) != DATA_OK ||
        (!d->lm && train_data_sampler_setup(&k->sampler, d, c) != DATA_OK))
        return -1;
    k->smp = &k->sampler;
    model_config mc = *model_get_config(e->m);
    mc.max_batch = rows;
    if (model_create(&k->m, &mc, err, n) != MODEL_OK || model_share_params(k->m, e->m) != MODEL_OK)
        return -1;
    model_set_bptt(k->m, c->bptt.mode, c->bptt.k);
    model_set_label_smoothing(k->m, (float)c->label_smoothing);
    k->slice.index = calloc((size_t)rows + 1, sizeof(long));
    if (!k->slice.index || batch_rows_alloc(&k->rows, rows, c->steps) != 0) return -1;
    if (e->carry_state) {
        k->st_h = calloc((size_t)c->layers * rows * c->hidden, sizeof(float));
        k->st_c = calloc((size_t)c->layers * rows * c->hidden, sizeof(float));
        if (!k->st_h || !k->st_c) return -1;
    }
    return 0;
}

static int setup_workers(step_engine *e, int bmax, char *err, size_t n)
{
    const train_config *c = e->cfg;
    const int W = c->deterministic ? 1 : c->workers; /* the shards have workers of their own */
    const size_t total = model_params(e->m)->total;
    const size_t chunks = (total + GRAD_CHUNK - 1) / GRAD_CHUNK;
    e->nworkers = W;
    e->wk = calloc((size_t)W, sizeof *e->wk);
    e->chunk_sums = calloc(chunks, sizeof(double));
    if (!e->wk || !e->chunk_sums) return -1;
    if (W == 1) {
        worker *k0 = &e->wk[0];
        k0->m = e->m, k0->smp = &e->data->sampler;
        k0->slice.index = calloc((size_t)bmax + 1, sizeof(long));
        k0->lo = 0, k0->hi = total;
        return k0->slice.index && batch_rows_alloc(&k0->rows, bmax, c->steps) == 0 ? 0 : -1;
    }
    /* rows of a virtual rank: at most ceil(batch / (world·W)) */
    const int vworld = e->world * W, rows = (c->batch + vworld - 1) / vworld;
    for (int w = 0; w < W; w++) {
        worker *k = &e->wk[w];
        /* whole chunks of the norm (GRAD_CHUNK floats: 64-byte aligned) */
        k->lo = chunks * (size_t)w / (size_t)W * GRAD_CHUNK;
        k->hi = chunks * (size_t)(w + 1) / (size_t)W * GRAD_CHUNK;
        if (k->hi > total) k->hi = total;
        if (setup_replica(e, k, w, rows, err, n) != 0) return -1;
    }
    /* waiting workers spin briefly unless they would take a core from
     * another thread of this node's ranks */
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const int spin = (long)W * comm_local_size() <= cores;
    return comm_pool_create(&e->pool, W, spin) == COMM_OK ? 0 : -1;
}

int step_create(step_engine **out, const train_config *c, const train_data *d, model *m, int rank,
                int world, char *err, size_t n)
{
    step_engine *e = calloc(1, sizeof *e);
    *out = e;
    if (!e) {
        snprintf(err, n, "out of memory for the step engine");
        return -1;
    }
    e->cfg = c, e->data = d, e->m = m, e->rank = rank, e->world = world;
    e->fault_rank = e->nan_rank = e->slow_rank = -1;
    int bm = (c->batch + world - 1) / world;
    const int L = c->layers, H = c->hidden;
    e->carry_state = d->lm && d->sampler.kind == DATA_SAMPLER_SEQUENTIAL;
    e->row_lo = (int)((long)c->batch * rank / world);
    e->row_hi = (int)((long)c->batch * (rank + 1) / world);
    if (c->deterministic) { /* whole shards, and the largest share sizes the buffers */
        step_exact_rows(c->batch, rank, world, &e->row_lo, &e->row_hi);
        for (int r = 0; r < world; r++) {
            int lo, hi;
            step_exact_rows(c->batch, r, world, &lo, &hi);
            if (hi - lo > bm) bm = hi - lo;
        }
    }
    if (setup_reducer(e) != 0) {
        snprintf(err, n,
                 "cannot set up the gradient reducer (out of memory, or a tensor of more than "
                 "2^31 elements)");
        return -1;
    }
    if (optimizer_init(&e->opt, (opt_kind)c->optimizer, (float)c->lr, model_params(m)) !=
        MODEL_OK) {
        snprintf(err, n, "out of memory for the optimizer state");
        return -1;
    }
    e->state_cap = bm;
    e->opt.weight_decay = (float)c->weight_decay;
    e->state_h = calloc((size_t)L * bm * H, sizeof(float));
    e->state_c = calloc((size_t)L * bm * H, sizeof(float));
    if (e->carry_state) {
        e->gstate_h = calloc((size_t)L * c->batch * H, sizeof(float));
        e->gstate_c = calloc((size_t)L * c->batch * H, sizeof(float));
    }
    if (!e->state_h || !e->state_c || (e->carry_state && (!e->gstate_h || !e->gstate_c))) {
        snprintf(err, n, "out of memory for the batch buffers");
        return -1;
    }
    if (c->deterministic && step_exact_create(&e->ex, c, d, m, rank, world, err, n) != 0) return -1;
    snprintf(err, n, "cannot set up the workers (out of memory, or no threads)");
    return setup_workers(e, bm, err, n);
}

void step_free(step_engine *e)
{
    if (!e) return;
    step_exact_free(e->ex);
    comm_pool_free(e->pool);
    for (int w = 0; e->wk && w < e->nworkers; w++) {
        worker *k = &e->wk[w];
        if (k->smp == &k->sampler) data_sampler_free(&k->sampler);
        free(k->st_h), free(k->st_c);
        free(k->slice.index);
        batch_rows_free(&k->rows);
        if (e->nworkers > 1) model_free(k->m);
    }
    free(e->wk);
    free(e->chunk_sums);
    free(e->state_h), free(e->state_c), free(e->gstate_h), free(e->gstate_c);
    optimizer_free(&e->opt);
    comm_reducer_free(e->red);
    free(e->toff), free(e->tsize);
    free(e);
}

optimizer *step_optimizer(step_engine *e)
{
    return &e->opt;
}

void step_set_lr(step_engine *e, double lr)
{
    e->opt.lr = (float)lr;
}

/* ----------------------------------------------------- replicas, faults */

int step_fault_from_env(step_engine *e, char *err, size_t n)
{
    const char *slow = getenv("SEQPAR_TEST_SLOW_RANK");
    int ms = 0;
    if (slow && *slow &&
        (sscanf(slow, "%d:%d", &e->slow_rank, &ms) != 2 || ms < 0 || ms > 100000)) {
        snprintf(err, n, "SEQPAR_TEST_SLOW_RANK: expected RANK:MS (MS 0..100000); got '%s'", slow);
        return -1;
    }
    e->slow = (struct timespec){ms / 1000, (long)(ms % 1000) * 1000000L};
    const char *nan = getenv("SEQPAR_FAULT_NAN");
    if (nan && *nan && sscanf(nan, "%d:%ld", &e->nan_rank, &e->nan_step) != 2) {
        snprintf(err, n, "SEQPAR_FAULT_NAN: expected RANK:STEP; got '%s'", nan);
        return -1;
    }
    const char *f = getenv("SEQPAR_FAULT_PERTURB");
    if (!f || !*f) return 0;
    char name[PARAM_NAME_MAX] = "";
    int rank;
    long step;
    if (sscanf(f, "%d:%ld:%95s", &rank, &step, name) != 3 ||
        (e->fault_tensor = param_table_find(model_params(e->m), name)) < 0) {
        snprintf(err, n,
                 "SEQPAR_FAULT_PERTURB: expected RANK:STEP:TENSOR with a tensor of this model; "
                 "got '%s'",
                 f);
        return -1;
    }
    e->fault_rank = rank, e->fault_step = step;
    return 0;
}

int step_check_replicas(step_engine *e, long step, int *tensor, int *rank)
{
    param_table *pt = model_params(e->m);
    if (e->rank == e->fault_rank && step == e->fault_step)
        param_data(pt, e->fault_tensor)[0] += 1e-3f;
    const long every = e->cfg->replica_check;
    if (every <= 0 || step % every != 0 || e->world == 1) return 0;
    const int rc = comm_reducer_check_replicas(e->red, pt->data, tensor, rank);
    return rc == COMM_ERR ? -1 : rc;
}

/* ------------------------------------------------------ the carried state */

int step_carries_state(const step_engine *e)
{
    return e->carry_state;
}

void step_reset_state(step_engine *e)
{
    const train_config *c = e->cfg;
    const size_t n = (size_t)c->layers * e->state_cap * c->hidden;
    memset(e->state_h, 0, n * sizeof(float));
    memset(e->state_c, 0, n * sizeof(float));
}

/* Each rank adds its rows into zeros: an exact sum. */
int step_gather_state(step_engine *e)
{
    const train_config *c = e->cfg;
    const size_t n = (size_t)c->layers * c->batch * c->hidden;
    float *global[2] = {e->gstate_h, e->gstate_c}, *local[2] = {e->state_h, e->state_c};
    for (int k = 0; k < (c->cell == CELL_LSTM ? 2 : 1); k++) {
        memset(global[k], 0, n * sizeof(float));
        copy_state_rows(e, global[k], c->batch, e->row_lo, local[k], e->row_hi - e->row_lo, 1);
        if (comm_allreduce_float(global[k], n) != COMM_OK) return -1;
    }
    return 0;
}

void step_scatter_state(step_engine *e)
{
    const int rows = e->row_hi - e->row_lo, B = e->cfg->batch;
    copy_state_rows(e, e->gstate_h, B, e->row_lo, e->state_h, rows, 0);
    copy_state_rows(e, e->gstate_c, B, e->row_lo, e->state_c, rows, 0);
}

float *step_global_state(step_engine *e, int c)
{
    return c ? e->gstate_c : e->gstate_h;
}

/* ---------------------------------------------------------------- figures */

void step_work(const step_engine *e, double flops[2])
{
    flops[0] = e->flops[0], flops[1] = e->flops[1];
}

void step_seconds(const step_engine *e, double s[STEP_PHASES])
{
    for (int i = 0; i < STEP_PHASES; i++) s[i] = e->secs[i];
}

double step_comm_seconds(const step_engine *e)
{
    return comm_reducer_seconds(e->red) + (e->ex ? step_exact_comm_seconds(e->ex) : 0.0);
}

int step_buckets(const step_engine *e)
{
    return comm_reducer_buckets(e->red);
}

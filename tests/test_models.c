/* CUnit: whole-model gradient checks (seq2seq and LM, every cell, 1 and 2
 * layers, bidirectional encoder, dropout on), decoding consistency, and the
 * rule that a training step allocates nothing. Tolerances: gradcheck.h. */
#define _GNU_SOURCE
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "model.h"

static double worst_seen = 0.0;

/* Allocation counting: the test binary is linked with --wrap for malloc,
 * calloc, realloc and aligned_alloc, so every call from seqpar's code (the
 * static libraries) is seen here. */
static long alloc_calls = 0;
void *__real_malloc(size_t n);
void *__real_calloc(size_t a, size_t b);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void *__wrap_malloc(size_t n)
{
    alloc_calls++;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t a, size_t b)
{
    alloc_calls++;
    return __real_calloc(a, b);
}
void *__wrap_realloc(void *p, size_t n)
{
    alloc_calls++;
    return __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t a, size_t n)
{
    alloc_calls++;
    return __real_aligned_alloc(a, n);
}

typedef struct {
    model *m;
    model_batch b;
    int32_t src[4 * 6], tgt[4 * 6], valid[4];
    int64_t ex[4];
    /* room for L <= 2, B <= 4, H <= 32 (setup checks) */
    float state_h[2 * 4 * 32], state_c[2 * 4 * 32], keep_h[2 * 4 * 32], keep_c[2 * 4 * 32];
    size_t LBH;
} mctx;

static double model_loss(void *p)
{
    mctx *c = p;
    double loss;
    long tok;
    /* the LM overwrites its carried state: restore it so every call sees the same */
    memcpy(c->state_h, c->keep_h, sizeof c->state_h);
    memcpy(c->state_c, c->keep_c, sizeof c->state_c);
    model_step(c->m, &c->b, 1, &loss, &tok);
    return loss;
}

static void setup(mctx *c, model_config *cfg, uint64_t seed)
{
    memset(c, 0, sizeof *c);
    char err[200];
    int rc = model_create(&c->m, cfg, err, sizeof err);
    if (rc) fprintf(stderr, "model_create: %s\n", err);
    CU_ASSERT_FATAL(rc == 0);
    model_init_params(c->m, seed);
    const int B = cfg->max_batch, T = cfg->num_steps;
    for (int i = 0; i < B * T; i++) {
        c->src[i] = 3 + (int)rng_below(
                            (uint64_t)(cfg->task == MODEL_LM ? cfg->tgt_vocab : cfg->src_vocab) - 3,
                            seed, 98, (uint64_t)i, 0, 0);
        c->tgt[i] = 2 + (int)rng_below((uint64_t)cfg->tgt_vocab - 2, seed, 97, (uint64_t)i, 0, 0);
    }
    for (int b = 0; b < B; b++) c->valid[b] = 1 + (b * 3) % T, c->ex[b] = 100 + 7 * b;
    c->LBH = (size_t)cfg->layers * B * cfg->hidden;
    CU_ASSERT_FATAL(c->LBH <= sizeof c->keep_h / sizeof *c->keep_h && B * T <= 24);
    gc_fill(c->keep_h, c->LBH, 0.7f, seed + 1);
    gc_fill(c->keep_c, c->LBH, 0.7f, seed + 2);
    c->b = (model_batch){.B = B,
                         .T = T,
                         .src = c->src,
                         .tgt = c->tgt,
                         .tgt_valid = cfg->task == MODEL_TRANSLATE ? c->valid : NULL,
                         .example = c->ex,
                         .seed = 77,
                         .step = 3,
                         .state_h = cfg->task == MODEL_LM ? c->state_h : NULL,
                         .state_c = cfg->task == MODEL_LM ? c->state_c : NULL};
}

static int check_model(model_config *cfg, const char *what)
{
    mctx c;
    setup(&c, cfg, 5);
    param_table *pt = model_params(c.m);
    param_zero_grad(pt);
    double loss = model_loss(&c);
    CU_ASSERT(isfinite(loss) && loss > 0);
    /* the analytic gradient, kept aside: the numeric passes (train = 1) add
     * into the gradient buffer */
    float *g = malloc(pt->total * sizeof(float));
    memcpy(g, pt->grad, pt->total * sizeof(float));
    int bad = 0;
    for (int i = 0; i < pt->n; i++)
        bad += gc_check(pt->t[i].name, param_data(pt, i), g + pt->t[i].offset, pt->t[i].size,
                        model_loss, &c, 200, &worst_seen);
    free(g);
    if (bad) fprintf(stderr, "%s: %d elements out of tolerance\n", what, bad);
    model_free(c.m);
    return bad;
}

static void test_seq2seq_gradients(void)
{
    for (int cell = 0; cell < 3; cell++)
        for (int L = 1; L <= 2; L++)
            for (int bidi = 0; bidi < 2; bidi++) {
                model_config cfg = {.task = MODEL_TRANSLATE,
                                    .cell = (cell_kind)cell,
                                    .layers = L,
                                    .embed = 5,
                                    .hidden = 6,
                                    .dropout = L > 1 ? 0.2f : 0.0f,
                                    .bidirectional = bidi,
                                    .src_vocab = 9,
                                    .tgt_vocab = 11,
                                    .num_steps = 6,
                                    .max_batch = 4};
                char what[80];
                snprintf(what, sizeof what, "seq2seq %s L=%d bidi=%d", cell_name(cfg.cell), L,
                         bidi);
                CU_ASSERT_EQUAL(check_model(&cfg, what), 0);
            }
    /* one-hot inputs (embed 0) */
    model_config oh = {MODEL_TRANSLATE, CELL_GRU, 2, 0, 6, 0.0f, 0, 9, 11, 6, 4, 0};
    CU_ASSERT_EQUAL(check_model(&oh, "seq2seq one-hot"), 0);
}

static void test_lm_gradients(void)
{
    for (int cell = 0; cell < 3; cell++)
        for (int L = 1; L <= 2; L++)
            for (int embed = 0; embed <= 5; embed += 5) {
                model_config cfg = {.task = MODEL_LM,
                                    .cell = (cell_kind)cell,
                                    .layers = L,
                                    .embed = embed,
                                    .hidden = 8,
                                    .dropout = L > 1 ? 0.25f : 0.0f,
                                    .tgt_vocab = 10,
                                    .num_steps = 6,
                                    .max_batch = 4};
                char what[80];
                snprintf(what, sizeof what, "lm %s L=%d embed=%d", cell_name(cfg.cell), L, embed);
                CU_ASSERT_EQUAL(check_model(&cfg, what), 0);
            }
}

/* The carried LM state: the final state of one step is the initial state of
 * the next, and equals running both chunks as one sequence. */
static void test_lm_state_carry(void)
{
    model_config cfg = {MODEL_LM, CELL_LSTM, 2, 4, 8, 0.0f, 0, 0, 10, 6, 2, 0};
    mctx c;
    setup(&c, &cfg, 9);
    memset(c.state_h, 0, sizeof c.state_h);
    memset(c.state_c, 0, sizeof c.state_c);
    double l1, l2;
    long t1, t2;
    model_batch b = c.b;
    b.T = 3;
    int32_t s1[6], s2[6], y1[6], y2[6];
    for (int r = 0; r < 2; r++)
        for (int t = 0; t < 3; t++) {
            s1[r * 3 + t] = c.src[r * 6 + t], s2[r * 3 + t] = c.src[r * 6 + 3 + t];
            y1[r * 3 + t] = c.tgt[r * 6 + t], y2[r * 3 + t] = c.tgt[r * 6 + 3 + t];
        }
    b.src = s1, b.tgt = y1;
    model_step(c.m, &b, 0, &l1, &t1);
    b.src = s2, b.tgt = y2;
    model_step(c.m, &b, 0, &l2, &t2);
    float h_split[2 * 2 * 8];
    memcpy(h_split, c.state_h, sizeof h_split);
    memset(c.state_h, 0, sizeof c.state_h);
    memset(c.state_c, 0, sizeof c.state_c);
    double lf;
    long tf;
    model_step(c.m, &c.b, 0, &lf, &tf);
    CU_ASSERT_EQUAL(t1 + t2, tf);
    CU_ASSERT_DOUBLE_EQUAL(l1 + l2, lf, 1e-4);
    for (int i = 0; i < 2 * 2 * 8; i++) CU_ASSERT_DOUBLE_EQUAL(h_split[i], c.state_h[i], 1e-5);
    model_free(c.m);
}

/* Truncated BPTT: a fixed span >= T is the full gradient; a span of 1 is
 * different; the randomized scheme with keep probability → 1 is the full
 * gradient. */
static void test_bptt_modes(void)
{
    model_config cfg = {MODEL_LM, CELL_GRU, 1, 4, 8, 0.0f, 0, 0, 10, 6, 4, 0};
    mctx c;
    setup(&c, &cfg, 13);
    param_table *pt = model_params(c.m);
    float *full = malloc(pt->total * sizeof(float)), *g = malloc(pt->total * sizeof(float));
    param_zero_grad(pt);
    model_loss(&c);
    memcpy(full, pt->grad, pt->total * sizeof(float));

    model_set_bptt(c.m, BPTT_FIXED, 6);
    param_zero_grad(pt);
    model_loss(&c);
    CU_ASSERT_EQUAL(memcmp(full, pt->grad, pt->total * sizeof(float)), 0);

    model_set_bptt(c.m, BPTT_FIXED, 1);
    param_zero_grad(pt);
    model_loss(&c);
    memcpy(g, pt->grad, pt->total * sizeof(float));
    int whh = param_table_find(pt, "rnn.weight_hh_l0");
    CU_ASSERT_FATAL(whh >= 0);
    double diff = 0;
    for (size_t k = 0; k < pt->t[whh].size; k++)
        diff += fabs(g[pt->t[whh].offset + k] - full[pt->t[whh].offset + k]);
    CU_ASSERT(diff > 1e-3);
    /* the dense layer's gradient does not depend on truncation */
    int dw = param_table_find(pt, "dense.weight");
    CU_ASSERT_EQUAL(
        memcmp(g + pt->t[dw].offset, full + pt->t[dw].offset, pt->t[dw].size * sizeof(float)), 0);

    /* randomized: the average over many keys approaches the full gradient */
    model_set_bptt(c.m, BPTT_RANDOM, 3);
    double *acc = calloc(pt->total, sizeof(double));
    const int R = 400;
    for (int r = 0; r < R; r++) {
        c.b.step = (uint64_t)r;
        param_zero_grad(pt);
        model_loss(&c);
        for (size_t k = 0; k < pt->total; k++) acc[k] += pt->grad[k];
    }
    double num = 0, den = 0, num_trunc = 0;
    for (size_t k = 0; k < pt->t[whh].size; k++) {
        size_t o = pt->t[whh].offset + k;
        num += fabs(acc[o] / R - full[o]);
        num_trunc += fabs(g[o] - full[o]);
        den += fabs(full[o]);
    }
    printf("\n  randomized truncation: mean |E[g] - g| / |g| over W_hh = %.3f "
           "(fixed span 1: %.3f)\n",
           num / den, num_trunc / den);
    CU_ASSERT(num / den < 0.5 * num_trunc / den);
    free(acc);
    free(full);
    free(g);
    model_free(c.m);
}

/* Greedy decoding runs the decoder one step at a time; feeding its own output
 * back through the full-sequence (teacher-forced) path must give the same
 * argmax at every step: the two code paths compute the same function. */
/* Training runs the decoder packed (longest target first, each step on the
 * rows still live); evaluation runs it padded. Without dropout both give the
 * same loss, and the packed gradient is the padded model's: checked against a
 * central difference of the evaluation loss along the gradient itself. */
static void test_packed_matches_padded(void)
{
    for (int cell = 0; cell < 3; cell++) {
        model_config cfg = {MODEL_TRANSLATE, (cell_kind)cell, 2, 5, 6, 0.0f, 0, 9, 11, 6, 4, 0};
        mctx c;
        setup(&c, &cfg, 31 + cell);
        const int lens[4] = {2, 6, 1, 4}; /* unsorted, one full, one a single token */
        memcpy(c.valid, lens, sizeof lens);
        param_table *pt = model_params(c.m);
        param_zero_grad(pt);
        double lt, le;
        long nt, ne;
        CU_ASSERT_EQUAL(model_step(c.m, &c.b, 1, &lt, &nt), 0);
        CU_ASSERT_EQUAL(model_step(c.m, &c.b, 0, &le, &ne), 0);
        CU_ASSERT_EQUAL(nt, 13);
        CU_ASSERT_EQUAL(ne, 13);
        CU_ASSERT(fabs(lt - le) <= 1e-5 * fabs(le));
        /* matmul work: the executed part is less (13 of 24 target positions,
         * distinct tokens projected once), and an empty slice did none */
        double fp, fe;
        CU_ASSERT_EQUAL(model_step(c.m, &c.b, 1, &lt, &nt), 0);
        model_matmul_flops(c.m, &c.b, &fp, &fe);
        CU_ASSERT(fe > 0 && fe < fp);
        model_batch empty = c.b;
        empty.B = 0;
        CU_ASSERT_EQUAL(model_step(c.m, &empty, 1, &lt, &nt), 0);
        model_matmul_flops(c.m, &empty, &fp, &fe);
        CU_ASSERT(fp == 0.0 && fe == 0.0);
        param_zero_grad(pt);
        CU_ASSERT_EQUAL(model_step(c.m, &c.b, 1, &lt, &nt), 0);
        /* d/dε loss(θ − ε g) at 0 = −‖g‖² */
        double g2 = 0;
        for (size_t i = 0; i < pt->total; i++) g2 += (double)pt->grad[i] * pt->grad[i];
        const float eps = 1e-3f / (float)sqrt(g2);
        float *keep = malloc(pt->total * sizeof(float));
        memcpy(keep, pt->data, pt->total * sizeof(float));
        double lp, lm;
        for (size_t i = 0; i < pt->total; i++) pt->data[i] = keep[i] + eps * pt->grad[i];
        model_step(c.m, &c.b, 0, &lp, &ne);
        for (size_t i = 0; i < pt->total; i++) pt->data[i] = keep[i] - eps * pt->grad[i];
        model_step(c.m, &c.b, 0, &lm, &ne);
        memcpy(pt->data, keep, pt->total * sizeof(float));
        const double slope = (lp - lm) / (2.0 * eps);
        CU_ASSERT(fabs(slope - g2) <= 2e-2 * g2);
        if (fabs(slope - g2) > 2e-2 * g2)
            fprintf(stderr, "%s: packed gradient %.6g vs padded slope %.6g\n", cell_name(cfg.cell),
                    g2, slope);
        free(keep);
        model_free(c.m);
    }
    /* one row of the full length (B + T > T·B: the row order and step counts
     * must still fit the model's workspace; ASan checks) */
    model_config one = {MODEL_TRANSLATE, CELL_LSTM, 1, 5, 6, 0.0f, 0, 9, 11, 5, 1, 0};
    mctx c;
    setup(&c, &one, 41);
    c.valid[0] = 5;
    double lt, le;
    long nt, ne;
    CU_ASSERT_EQUAL(model_step(c.m, &c.b, 1, &lt, &nt), 0);
    CU_ASSERT_EQUAL(model_step(c.m, &c.b, 0, &le, &ne), 0);
    CU_ASSERT_EQUAL(nt, 5);
    CU_ASSERT(fabs(lt - le) <= 1e-5 * fabs(le));
    model_free(c.m);
}

static void test_greedy_consistency(void)
{
    for (int cell = 0; cell < 3; cell++) {
        model_config cfg = {MODEL_TRANSLATE, (cell_kind)cell, 2, 5, 6, 0.0f, 1, 9, 11, 6, 4, 0};
        mctx c;
        setup(&c, &cfg, 21 + cell);
        int32_t out[4 * 6];
        int len[4];
        CU_ASSERT_EQUAL(model_greedy(c.m, c.src, 4, 6, MODEL_BOS, 2, 6, out, len), 0);
        /* eos = -1 never fires: six tokens per row, the same prefix */
        int32_t out2[4 * 6];
        int len2[4];
        CU_ASSERT_EQUAL(model_greedy(c.m, c.src, 4, 6, MODEL_BOS, -1, 6, out2, len2), 0);
        for (int b = 0; b < 4; b++) {
            CU_ASSERT_EQUAL(len2[b], 6);
            CU_ASSERT(len[b] <= 6);
            for (int t = 0; t < len[b]; t++) CU_ASSERT_EQUAL(out[b * 6 + t], out2[b * 6 + t]);
        }
        /* teacher-forced on its own output: argmax of every step's logits is
         * the token greedy chose there */
        model_batch b = c.b;
        b.tgt = out2;
        b.tgt_valid = NULL;
        double loss;
        long tok;
        model_step(c.m, &b, 0, &loss, &tok);
        CU_ASSERT_EQUAL(tok, 24);
        const float *z = model_last_logits(c.m);
        int agree = 0;
        for (int t = 0; t < 6; t++)
            for (int r = 0; r < 4; r++) {
                const float *row = z + ((size_t)t * 4 + r) * 11;
                int best = 0;
                for (int v = 1; v < 11; v++) best = row[v] > row[best] ? v : best;
                agree += best == out2[r * 6 + t];
            }
        CU_ASSERT_EQUAL(agree, 24);
        model_free(c.m);
    }
}

static void test_no_allocation_in_step(void)
{
    model_config cfgs[3] = {
        {MODEL_TRANSLATE, CELL_LSTM, 2, 5, 6, 0.2f, 1, 9, 11, 6, 4, 0},
        {MODEL_LM, CELL_GRU, 2, 0, 8, 0.2f, 0, 0, 10, 6, 4, 0},
        {MODEL_TRANSLATE, CELL_LSTM, 2, 5, 6, 0.2f, 1, 9, 11, 6, 4, MODEL_ATTN_ADDITIVE}};
    for (int k = 0; k < 3; k++) {
        mctx c;
        setup(&c, &cfgs[k], 31);
        optimizer o;
        CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.01f, model_params(c.m)) == 0);
        double loss;
        long tok;
        model_step(c.m, &c.b, 1, &loss, &tok); /* warm-up (BLAS buffers) */
        long before = alloc_calls;
        param_zero_grad(model_params(c.m));
        for (int s = 0; s < 5; s++) { /* the trainer's step: the update zeroes the gradient */
            model_step(c.m, &c.b, 1, &loss, &tok);
            optimizer_update(&o, model_params(c.m), (double)tok, 1.0);
        }
        CU_ASSERT_EQUAL(alloc_calls - before, 0);
        optimizer_free(&o);
        model_free(c.m);
    }
    CU_ASSERT(alloc_calls > 0); /* the wrapper does see allocations */
}

/* The gradient-ready hook: every tensor announced exactly once per training
 * step, and a tensor's gradient no longer changes once announced (what the
 * overlapped allreduce relies on). */
typedef struct {
    const param_table *pt;
    int count[64];
    float *snap; /* gradients as they were when announced */
    int calls;
} hook_rec;

static void record(void *ctx, int first, int end)
{
    hook_rec *h = ctx;
    h->calls++;
    for (int i = first; i < end; i++) {
        if (i < 0 || i >= 64) continue;
        h->count[i]++;
        memcpy(h->snap + h->pt->t[i].offset, h->pt->grad + h->pt->t[i].offset,
               h->pt->t[i].size * sizeof(float));
    }
}

static void test_grad_hook(void)
{
    model_config cfgs[] = {
        {MODEL_TRANSLATE, CELL_GRU, 2, 5, 6, 0.2f, 0, 9, 11, 6, 4, 0},
        {MODEL_TRANSLATE, CELL_LSTM, 2, 5, 6, 0.0f, 1, 9, 11, 6, 4, 0},
        {MODEL_TRANSLATE, CELL_RNN, 1, 0, 6, 0.0f, 0, 9, 11, 6, 4, 0},
        {MODEL_LM, CELL_GRU, 2, 0, 8, 0.2f, 0, 0, 10, 6, 4, 0},
        {MODEL_LM, CELL_LSTM, 1, 4, 8, 0.0f, 0, 0, 10, 6, 4, 0},
        {MODEL_TRANSLATE, CELL_GRU, 2, 5, 6, 0.2f, 0, 9, 11, 6, 4, MODEL_ATTN_ADDITIVE},
        {MODEL_TRANSLATE, CELL_LSTM, 1, 5, 6, 0.0f, 1, 9, 11, 6, 4, MODEL_ATTN_ADDITIVE}};
    for (size_t k = 0; k < sizeof cfgs / sizeof *cfgs; k++) {
        mctx c;
        setup(&c, &cfgs[k], 41);
        param_table *pt = model_params(c.m);
        CU_ASSERT_FATAL(pt->n <= 64);
        hook_rec h = {.pt = pt, .snap = calloc(pt->total, sizeof(float))};
        CU_ASSERT_FATAL(h.snap != NULL);
        model_set_grad_hook(c.m, record, &h);
        double loss;
        long tok;
        param_zero_grad(pt);
        CU_ASSERT_EQUAL(model_step(c.m, &c.b, 1, &loss, &tok), MODEL_OK);
        int once = 0;
        for (int i = 0; i < pt->n; i++) once += h.count[i] == 1;
        CU_ASSERT_EQUAL(once, pt->n);
        CU_ASSERT(h.calls > 1); /* announced as backward goes, not all at the end */
        CU_ASSERT_EQUAL(memcmp(h.snap, pt->grad, pt->total * sizeof(float)), 0);
        /* evaluation has no backward: nothing announced */
        memset(h.count, 0, sizeof h.count);
        h.calls = 0;
        model_step(c.m, &c.b, 0, &loss, &tok);
        CU_ASSERT_EQUAL(h.calls, 0);
        /* an empty slice: every tensor final (and zero) at once */
        model_batch empty = c.b;
        empty.B = 0;
        param_zero_grad(pt);
        CU_ASSERT_EQUAL(model_step(c.m, &empty, 1, &loss, &tok), MODEL_OK);
        once = 0;
        for (int i = 0; i < pt->n; i++) once += h.count[i] == 1;
        CU_ASSERT_EQUAL(once, pt->n);
        model_set_grad_hook(c.m, NULL, NULL);
        h.calls = 0;
        model_step(c.m, &c.b, 1, &loss, &tok);
        CU_ASSERT_EQUAL(h.calls, 0);
        free(h.snap);
        model_free(c.m);
    }
}

/* Beam search: k = 1 is greedy, token for token; with a beam wide enough to
 * keep every path it finds the best-scoring output of all (enumerated), with
 * and without attention. */
static void test_beam(void)
{
    model_config cfgs[] = {
        {MODEL_TRANSLATE, CELL_GRU, 2, 5, 6, 0.0f, 0, 9, 11, 6, 4, 0},
        {MODEL_TRANSLATE, CELL_LSTM, 2, 5, 6, 0.0f, 1, 9, 11, 6, 4, 0},
        {MODEL_TRANSLATE, CELL_RNN, 1, 0, 6, 0.0f, 0, 9, 11, 6, 4, 0},
        {MODEL_TRANSLATE, CELL_GRU, 2, 5, 6, 0.0f, 1, 9, 11, 6, 4, MODEL_ATTN_ADDITIVE}};
    for (size_t q = 0; q < sizeof cfgs / sizeof *cfgs; q++) {
        mctx c;
        setup(&c, &cfgs[q], 51 + q);
        /* sharper distributions than the init gives, so paths differ */
        param_table *pt = model_params(c.m);
        for (size_t i = 0; i < pt->total; i++) pt->data[i] *= 3.0f;
        int32_t g[4 * 5], bm[4 * 5];
        int gl[4], bl[4];
        CU_ASSERT_EQUAL(model_greedy(c.m, c.src, 4, 6, 1, 2, 5, g, gl), MODEL_OK);
        CU_ASSERT_EQUAL(model_beam(c.m, c.src, 4, 6, 1, 2, 5, 1, 0.75f, bm, bl), MODEL_OK);
        int same = 0;
        for (int b = 0; b < 4; b++)
            same += gl[b] == bl[b] && memcmp(g + b * 5, bm + b * 5, (size_t)gl[b] * 4) == 0;
        CU_ASSERT_EQUAL(same, 4);
        /* B·k beyond the workspace is refused */
        CU_ASSERT_EQUAL(model_beam(c.m, c.src, 4, 6, 1, 2, 5, 2, 0.75f, bm, bl), MODEL_EINVAL);
        model_free(c.m);
    }
    /* exhaustive: V = 6, max_len 3: every output is <eos> after 0–2 tokens, or
     * 3 tokens; a beam of 36 never prunes, so it must find the best score */
    int greedy_missed = 0;
    for (uint64_t seed = 1; seed <= 24; seed++) {
        /* seeds 13-24: the attention decoder */
        model_config cfg = {MODEL_TRANSLATE, CELL_GRU, 1, 4, 5, 0.0f, 0, 7, 6, 4, 36, seed > 12};
        model *m;
        char err[100];
        CU_ASSERT_FATAL(model_create(&m, &cfg, err, sizeof err) == MODEL_OK);
        model_init_params(m, seed);
        param_table *pt = model_params(m);
        for (size_t i = 0; i < pt->total; i++) pt->data[i] *= 2.5f;
        const int32_t src[4] = {4, 5, 6, 2};
        const float alpha = 0.75f;
        double best = -INFINITY;
        int32_t best_seq[3];
        int best_len = -1;
        int32_t tg[36 * 4], sr[36 * 4], va[36], seqs[36][3];
        int lens[36], n = 0, total = 0;
        /* all sequences over tokens {0,1,3,4,5} of length 0..3 */
        for (int L = 0; L <= 3; L++) {
            int count = 1;
            for (int i = 0; i < L; i++) count *= 5;
            for (int code = 0; code < count; code++) {
                static const int alphabet[5] = {0, 1, 3, 4, 5};
                int x = code;
                for (int i = 0; i < L; i++) seqs[n][i] = alphabet[x % 5], x /= 5;
                lens[n] = L;
                n++;
                total++;
                int last = L == 3 && code == count - 1;
                if (n < 36 && !last) continue;
                /* score the batch by teacher forcing */
                for (int r = 0; r < n; r++) {
                    memcpy(sr + r * 4, src, sizeof src);
                    for (int t = 0; t < 4; t++)
                        tg[r * 4 + t] = t < lens[r] && t < 3 ? seqs[r][t] : 2;
                    va[r] = lens[r] < 3 ? lens[r] + 1 : 3; /* length 3: no <eos> scored */
                }
                model_batch b = {.B = n, .T = 4, .src = sr, .tgt = tg, .tgt_valid = va};
                double ls;
                long nt;
                CU_ASSERT_EQUAL(model_step(m, &b, 0, &ls, &nt), MODEL_OK);
                const float *z = model_last_logits(m);
                for (int r = 0; r < n; r++) {
                    double sc = 0.0;
                    for (int t = 0; t < va[r]; t++) {
                        const float *zz = z + ((size_t)t * n + r) * 6;
                        double mx = zz[0], sum = 0.0;
                        for (int v = 1; v < 6; v++) mx = zz[v] > mx ? zz[v] : mx;
                        for (int v = 0; v < 6; v++) sum += exp(zz[v] - mx);
                        sc += zz[tg[r * 4 + t]] - mx - log(sum);
                    }
                    double norm = sc / pow((double)va[r], alpha);
                    if (norm > best) {
                        best = norm, best_len = lens[r];
                        memcpy(best_seq, seqs[r], sizeof best_seq);
                    }
                }
                n = 0;
            }
        }
        CU_ASSERT_EQUAL(total, 156);
        int32_t out[3];
        int ol;
        CU_ASSERT_EQUAL(model_beam(m, src, 1, 4, 1, 2, 3, 36, alpha, out, &ol), MODEL_OK);
        CU_ASSERT_EQUAL(ol, best_len);
        CU_ASSERT(ol >= 0 && ol <= 3 && memcmp(out, best_seq, (size_t)ol * sizeof(int32_t)) == 0);
        int32_t g[3];
        int gl;
        CU_ASSERT_EQUAL(model_greedy(m, src, 1, 4, 1, 2, 3, g, &gl), MODEL_OK);
        greedy_missed += gl != best_len || memcmp(g, best_seq, (size_t)gl * sizeof(int32_t)) != 0;
        model_free(m);
    }
    /* greedy misses the optimum on some of these: the test tells beam from greedy */
    CU_ASSERT(greedy_missed > 0);
    printf("\n  greedy missed the enumerated optimum on %d of 24 models (12 with attention), the "
           "full beam on none ",
           greedy_missed);
}

/* Summed log probability of out[0..len) (+ <eos> when len < max_len) for
 * source src under m, by teacher forcing (m: max_batch >= 1, T = 4). */
static double seq_logprob(model *m, const int32_t *src, const int32_t *out, int len, int max_len)
{
    int32_t tg[4], va = len < max_len ? len + 1 : len;
    for (int t = 0; t < 4; t++) tg[t] = t < len && t < 3 ? out[t] : 2;
    model_batch b = {.B = 1, .T = 4, .src = src, .tgt = tg, .tgt_valid = &va};
    double ls;
    long nt;
    model_step(m, &b, 0, &ls, &nt);
    return -ls;
}

/* With alpha = 0 (raw log probability) a beam of 4 never scores below
 * greedy, and often above: beam search searches. */
static void test_beam_beats_greedy(void)
{
    int better = 0, worse = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        model_config cfg = {MODEL_TRANSLATE, CELL_GRU, 1, 4, 5, 0.0f, 0, 7, 9, 4, 4, 0};
        model *m;
        char err[100];
        CU_ASSERT_FATAL(model_create(&m, &cfg, err, sizeof err) == MODEL_OK);
        model_init_params(m, seed);
        param_table *pt = model_params(m);
        for (size_t i = 0; i < pt->total; i++) pt->data[i] *= 2.0f;
        const int32_t src[4] = {4, 5, 6, 2};
        int32_t g[3], bm[3];
        int gl, bl;
        model_greedy(m, src, 1, 4, 1, 2, 3, g, &gl);
        model_beam(m, src, 1, 4, 1, 2, 3, 4, 0.0f, bm, &bl);
        double sg = seq_logprob(m, src, g, gl, 3), sb = seq_logprob(m, src, bm, bl, 3);
        better += sb > sg + 1e-6;
        worse += sb < sg - 1e-6;
        model_free(m);
    }
    CU_ASSERT_EQUAL(worse, 0);
    CU_ASSERT(better >= 5);
    printf("\n  beam 4 beat greedy on %d of 40 random models, lost on %d ", better, worse);
}

/* Training reduces the loss on a fixed batch (a smoke test of the whole
 * update path: step, scaling, clipping, Adam). */
static void test_training_reduces_loss(void)
{
    model_config cfg = {MODEL_TRANSLATE, CELL_GRU, 2, 8, 16, 0.0f, 0, 9, 11, 6, 4, 0};
    mctx c;
    setup(&c, &cfg, 41);
    optimizer o;
    optimizer_init(&o, OPT_ADAM, 0.01f, model_params(c.m));
    double first = 0, last = 0, loss;
    long tok;
    for (int s = 0; s < 200; s++) {
        param_zero_grad(model_params(c.m));
        model_step(c.m, &c.b, 1, &loss, &tok);
        if (s == 0) first = loss / tok;
        last = loss / tok;
        optimizer_update(&o, model_params(c.m), (double)tok, 1.0);
    }
    printf("\n  memorising one batch: loss %.3f -> %.3f\n", first, last);
    CU_ASSERT(last < 0.1 * first);
    optimizer_free(&o);
    model_free(c.m);
}

static void test_bad_configs(void)
{
    char err[200] = "";
    model *m;
    model_config bad = {MODEL_TRANSLATE, CELL_GRU, 0, 5, 6, 0.0f, 0, 9, 11, 6, 4, 0};
    CU_ASSERT(model_create(&m, &bad, err, sizeof err) != 0);
    CU_ASSERT(strstr(err, "layers") != NULL);
    bad.layers = 1, bad.dropout = 1.0f;
    CU_ASSERT(model_create(&m, &bad, err, sizeof err) != 0);
    bad.dropout = 0, bad.bidirectional = 1, bad.hidden = 7;
    CU_ASSERT(model_create(&m, &bad, err, sizeof err) != 0);
    CU_ASSERT(strstr(err, "even") != NULL);
}

static void report(void)
{
    printf("\n  worst relative difference (analytic vs numeric) in test_models: %.3g\n",
           worst_seen);
}

void register_suites(void)
{
    CU_pSuite s = CU_add_suite("models", NULL, NULL);
    CU_add_test(s, "seq2seq gradients (cells, layers, bidirectional, dropout)",
                test_seq2seq_gradients);
    CU_add_test(s, "lm gradients (cells, layers, one-hot, carried state)", test_lm_gradients);
    CU_add_test(s, "lm state carry", test_lm_state_carry);
    CU_add_test(s, "truncated bptt modes", test_bptt_modes);
    CU_add_test(s, "greedy decoding = teacher-forced path", test_greedy_consistency);
    CU_add_test(s, "packed training = padded model (loss and gradient)",
                test_packed_matches_padded);
    CU_add_test(s, "no allocation in a training step", test_no_allocation_in_step);
    CU_add_test(s, "gradient-ready hook: each tensor once, when final", test_grad_hook);
    CU_add_test(s, "beam search: k = 1 is greedy; a full beam finds the best", test_beam);
    CU_add_test(s, "beam search: a beam of 4 scores at least greedy's", test_beam_beats_greedy);
    CU_add_test(s, "training reduces loss", test_training_reduces_loss);
    CU_add_test(s, "bad configurations", test_bad_configs);
    CU_add_test(s, "report", report);
}

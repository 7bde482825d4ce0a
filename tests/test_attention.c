/* CUnit: the Bahdanau attention decoder (--attention additive).
 *
 *   - the additive attention layer's backward against central finite
 *     differences (every parameter, the queries, the keys; valid lengths 0,
 *     1, partial and full; with and without dropout);
 *   - the stack run step by step (rnn_stack_begin / _step / _backward_*)
 *     gives rnn_stack_forward's outputs and rnn_stack_backward's gradients
 *     (packed rows, dropout, every cell, 1 and 2 layers);
 *   - the whole attention model's gradients against finite differences
 *     (every cell, 1 and 2 layers, bidirectional encoder, dropout, padded
 *     sources);
 *   - the packed training loss equals the padded evaluation loss; greedy
 *     decoding agrees with the teacher-forced argmax; beam k = 1 is greedy.
 * Tolerances: gradcheck.h. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "model.h"

static double worst_seen = 0.0;

/* ------------------------------------------------------------ the layer */

#define AS 5 /* source steps */
#define AB 4 /* rows */
#define AH 6
#define AK 7

typedef struct {
    attn_layer a;
    float Wq[AH * AH], Wk[AH * AK], wv[AH], dWq[AH * AH], dWk[AH * AK], dwv[AH];
    float keys[AS * AB * AK], q[2 * AB * AH], ctx[2 * AB * AK], wctx[2 * AB * AK];
    int32_t valid[AB];
    int n[2];
    int64_t ex[AB];
    rnn_dropout_key key;
    int drop;
} actx;

/* Two steps of queries (n[0] then n[1] rows), the loss Σ wctx · ctx. */
static double attn_loss(void *p)
{
    actx *c = p;
    attn_begin(&c->a, AS, AB, c->keys, c->valid);
    size_t off = 0;
    for (int t = 0; t < 2; t++) {
        attn_forward(&c->a, off, c->n[t], c->q + off * AH, AH, c->ctx + off * AK, AK,
                     c->drop ? &c->key : NULL, t);
        off += (size_t)c->n[t];
    }
    return gc_dot(c->wctx, c->ctx, off * AK);
}

static void check_attn_layer(int drop)
{
    actx c;
    memset(&c, 0, sizeof c);
    CU_ASSERT_FATAL(attn_init(&c.a, AH, AK, AS, AB, 0.3f) == MODEL_OK);
    attn_bind(&c.a, c.Wq, c.Wk, c.wv, c.dWq, c.dWk, c.dwv);
    gc_fill(c.Wq, AH * AH, 0.6f, 1);
    gc_fill(c.Wk, AH * AK, 0.6f, 2);
    gc_fill(c.wv, AH, 0.8f, 3);
    gc_fill(c.keys, AS * AB * AK, 1.0f, 4);
    gc_fill(c.q, 2 * AB * AH, 1.0f, 5);
    gc_fill(c.wctx, 2 * AB * AK, 1.0f, 6);
    const int32_t valid[AB] = {AS, 2, 0, 1};
    memcpy(c.valid, valid, sizeof valid);
    c.n[0] = AB, c.n[1] = 3; /* packed: the second step on the first 3 rows */
    for (int b = 0; b < AB; b++) c.ex[b] = 10 + 3 * b;
    c.key = (rnn_dropout_key){99, 4, 1, c.ex};
    c.drop = drop;
    attn_loss(&c);
    const size_t N = (size_t)c.n[0] + c.n[1];
    /* weights: each row sums to 1, nothing past the valid length */
    for (size_t r = 0; r < N; r++) {
        const float *w = attn_weights(&c.a, r);
        const int b = (int)(r < (size_t)AB ? r : r - AB), v = valid[b];
        double sum = 0.0;
        for (int s = 0; s < AS; s++) {
            sum += w[s];
            if (v > 0 && s >= v) CU_ASSERT_EQUAL(w[s], 0.0f);
        }
        CU_ASSERT(fabs(sum - 1.0) < 1e-5);
    }
    float dq[2 * AB * AH] = {0}, dkeys[AS * AB * AK] = {0};
    attn_backward_begin(&c.a);
    size_t off = (size_t)c.n[0];
    attn_backward(&c.a, off, c.n[1], c.q + off * AH, AH, c.wctx + off * AK, AK, dq + off * AH, AH,
                  dkeys);
    attn_backward(&c.a, 0, c.n[0], c.q, AH, c.wctx, AK, dq, AH, dkeys);
    attn_backward_end(&c.a, dkeys);
    int bad = gc_check("W_q", c.Wq, c.dWq, AH * AH, attn_loss, &c, 0, &worst_seen);
    bad += gc_check("W_k", c.Wk, c.dWk, AH * AK, attn_loss, &c, 0, &worst_seen);
    bad += gc_check("w_v", c.wv, c.dwv, AH, attn_loss, &c, 0, &worst_seen);
    bad += gc_check("q", c.q, dq, N * AH, attn_loss, &c, 0, &worst_seen);
    bad += gc_check("keys", c.keys, dkeys, AS * AB * AK, attn_loss, &c, 0, &worst_seen);
    if (bad) fprintf(stderr, "attention layer (dropout %d): %d bad\n", drop, bad);
    CU_ASSERT_EQUAL(bad, 0);
    if (drop) {
        /* some weights dropped, the rest scaled by 1/(1 − p) */
        int zeros = 0, kept = 0;
        for (size_t r = 0; r < N; r++)
            for (int s = 0; s < AS; s++) {
                const float m = c.a.mask[r * AS + s];
                zeros += m == 0.0f;
                kept += fabsf(m - 1.0f / 0.7f) < 1e-6f;
            }
        CU_ASSERT(zeros > 0 && kept > 0 && zeros + kept == (int)N * AS);
    }
    attn_free(&c.a);
}

static void test_attn_layer(void)
{
    check_attn_layer(0);
    check_attn_layer(1);
}

/* ------------------------------------- the stack, step by step = at once */

static double max_rel(const float *a, const float *b, size_t n)
{
    double d = 0.0, s = 1e-6;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    return d / s;
}

static void check_steps(cell_kind cell, int L, float dropout)
{
    enum { T = 4, B = 3, I = 5, H = 4 };
    static const int bs[T] = {3, 3, 2, 1};
    const size_t N = 9, LBH = (size_t)L * B * H;
    rnn_stack s[2];
    param_table pt[2];
    float *x = calloc(N * I, sizeof(float)), *wy = calloc(N * H, sizeof(float));
    float *h0 = calloc(2 * LBH, sizeof(float)), *y[2], *dx[2], *dh0[2], *dc0[2];
    int64_t ex[B] = {4, 9, 1};
    rnn_dropout_key key = {5, 2, 1, ex};
    gc_fill(x, N * I, 1.0f, 80);
    gc_fill(wy, N * H, 1.0f, 81);
    gc_fill(h0, 2 * LBH, 0.8f, 82);
    for (int k = 0; k < 2; k++) {
        memset(&pt[k], 0, sizeof pt[k]);
        CU_ASSERT_FATAL(rnn_stack_init(&s[k], cell, L, 0, I, 0, H, dropout, 0, T, B) == 0);
        CU_ASSERT_FATAL(rnn_stack_register(&s[k], &pt[k], "rnn") == 0);
        CU_ASSERT_FATAL(param_table_alloc(&pt[k]) == 0);
        rnn_stack_bind(&s[k], &pt[k], 0);
        for (int i = 0; i < pt[k].n; i++)
            gc_fill(param_data(&pt[k], i), pt[k].t[i].size, 0.6f, 90 + i);
        rnn_stack_set_packed(&s[k], bs);
        y[k] = calloc(N * H, sizeof(float)), dx[k] = calloc(N * I, sizeof(float));
        dh0[k] = calloc(LBH, sizeof(float)), dc0[k] = calloc(LBH, sizeof(float));
    }
    /* at once */
    rnn_stack_forward(&s[0], T, B, x, NULL, NULL, h0, h0 + LBH, NULL, NULL, &key);
    memcpy(y[0], s[0].y[L - 1], N * H * sizeof(float));
    rnn_stack_backward(&s[0], T, B, x, NULL, NULL, wy, NULL, NULL, NULL, dx[0], NULL, dh0[0],
                       dc0[0]);
    /* step by step */
    CU_ASSERT_FATAL(rnn_stack_begin(&s[1], T, B, h0, h0 + LBH, &key) == MODEL_OK);
    size_t off = 0;
    for (int t = 0; t < T; t++) {
        rnn_stack_step(&s[1], t, B, x + off * I, I);
        off += (size_t)bs[t];
    }
    memcpy(y[1], s[1].y[L - 1], N * H * sizeof(float));
    rnn_stack_backward_begin(&s[1], B);
    for (int t = T - 1; t >= 0; t--) {
        off -= (size_t)bs[t];
        rnn_stack_backward_step(&s[1], t, B, wy + off * H, dx[1] + off * I, I);
    }
    rnn_stack_backward_end(&s[1], T, B, x, dh0[1], dc0[1]);
    double worst = fmax(max_rel(y[1], y[0], N * H), max_rel(dx[1], dx[0], N * I));
    worst = fmax(worst, max_rel(dh0[1], dh0[0], LBH));
    if (cell == CELL_LSTM) worst = fmax(worst, max_rel(dc0[1], dc0[0], LBH));
    for (int i = 0; i < pt[0].n; i++)
        worst = fmax(worst, max_rel(param_grad(&pt[1], i), param_grad(&pt[0], i), pt[0].t[i].size));
    if (!(worst < 1e-5))
        fprintf(stderr, "steps %s L=%d dropout %.1f: worst %.3g\n", cell_name(cell), L, dropout,
                worst);
    CU_ASSERT(worst < 1e-5);
    for (int k = 0; k < 2; k++) {
        rnn_stack_free(&s[k]);
        param_table_free(&pt[k]);
        free(y[k]), free(dx[k]), free(dh0[k]), free(dc0[k]);
    }
    free(x), free(wy), free(h0);
}

static void test_stack_steps(void)
{
    for (int cell = 0; cell < 3; cell++)
        for (int L = 1; L <= 2; L++) check_steps((cell_kind)cell, L, L > 1 ? 0.3f : 0.0f);
}

/* --------------------------------------------------------- the model */

enum { MB = 4, MT = 6 };

typedef struct {
    model *m;
    model_batch b;
    int32_t src[MB * MT], tgt[MB * MT], valid[MB];
    int64_t ex[MB];
} mctx;

static double model_loss(void *p)
{
    mctx *c = p;
    double loss;
    long tok;
    model_step(c->m, &c->b, 1, &loss, &tok);
    return loss;
}

/* Sources of lengths 6, 3, 1, 5 (<eos> 2 last, <pad> 0 after), targets of
 * valid lengths 1 + 3b mod 6. */
static void setup(mctx *c, const model_config *cfg, uint64_t seed)
{
    static const int slen[MB] = {6, 3, 1, 5};
    memset(c, 0, sizeof *c);
    char err[200];
    const int rc = model_create(&c->m, cfg, err, sizeof err);
    if (rc) fprintf(stderr, "model_create: %s\n", err);
    CU_ASSERT_FATAL(rc == 0);
    model_init_params(c->m, seed);
    for (int b = 0; b < MB; b++) {
        for (int t = 0; t < MT; t++) {
            const int i = b * MT + t;
            c->src[i] = t < slen[b] - 1 ? 3 + (int)rng_below((uint64_t)cfg->src_vocab - 3, seed, 98,
                                                             (uint64_t)i, 0, 0)
                        : t == slen[b] - 1 ? 2
                                           : 0;
            c->tgt[i] =
                2 + (int)rng_below((uint64_t)cfg->tgt_vocab - 2, seed, 97, (uint64_t)i, 0, 0);
        }
        c->valid[b] = 1 + (b * 3) % MT, c->ex[b] = 100 + 7 * b;
    }
    c->b = (model_batch){.B = MB,
                         .T = MT,
                         .src = c->src,
                         .tgt = c->tgt,
                         .tgt_valid = c->valid,
                         .example = c->ex,
                         .seed = 77,
                         .step = 3};
}

static model_config attn_config(cell_kind cell, int L, int bidi, float dropout)
{
    return (model_config){.task = MODEL_TRANSLATE,
                          .cell = cell,
                          .layers = L,
                          .embed = 5,
                          .hidden = 6,
                          .dropout = dropout,
                          .bidirectional = bidi,
                          .src_vocab = 9,
                          .tgt_vocab = 11,
                          .num_steps = MT,
                          .max_batch = MB,
                          .attention = MODEL_ATTN_ADDITIVE};
}

static void test_model_gradients(void)
{
    for (int cell = 0; cell < 3; cell++)
        for (int L = 1; L <= 2; L++)
            for (int bidi = 0; bidi < 2; bidi++) {
                const model_config cfg =
                    attn_config((cell_kind)cell, L, bidi, L > 1 || bidi ? 0.2f : 0.0f);
                mctx c;
                setup(&c, &cfg, 5 + (uint64_t)cell);
                param_table *pt = model_params(c.m);
                CU_ASSERT(param_table_find(pt, "decoder.attention.W_q.weight") >= 0);
                param_zero_grad(pt);
                const double loss = model_loss(&c);
                CU_ASSERT(isfinite(loss) && loss > 0);
                float *g = malloc(pt->total * sizeof(float));
                CU_ASSERT_FATAL(g != NULL);
                memcpy(g, pt->grad, pt->total * sizeof(float));
                int bad = 0;
                for (int i = 0; i < pt->n; i++)
                    bad += gc_check(pt->t[i].name, param_data(pt, i), g + pt->t[i].offset,
                                    pt->t[i].size, model_loss, &c, 120, &worst_seen);
                if (bad)
                    fprintf(stderr, "attention model %s L=%d bidi=%d: %d bad\n",
                            cell_name(cfg.cell), L, bidi, bad);
                CU_ASSERT_EQUAL(bad, 0);
                free(g);
                model_free(c.m);
            }
}

/* Without dropout the packed training loss is the padded evaluation's. */
static void test_train_equals_eval(void)
{
    for (int cell = 0; cell < 3; cell++) {
        const model_config cfg = attn_config((cell_kind)cell, 2, cell == 1, 0.0f);
        mctx c;
        setup(&c, &cfg, 11);
        double lt, le;
        long nt, ne;
        CU_ASSERT_EQUAL(model_step(c.m, &c.b, 1, &lt, &nt), MODEL_OK);
        CU_ASSERT_EQUAL(model_step(c.m, &c.b, 0, &le, &ne), MODEL_OK);
        CU_ASSERT_EQUAL(nt, ne);
        CU_ASSERT(fabs(lt - le) <= 1e-5 * fabs(le));
        model_free(c.m);
    }
}

/* Targets of length 0 (no decoder step): no loss, no tokens, no gradient
 * but a finite one, every tensor announced. */
static int announced;
static void count_hook(void *ctx, int first, int end)
{
    (void)ctx;
    announced += end - first;
}

static void test_empty_targets(void)
{
    const model_config cfg = attn_config(CELL_LSTM, 2, 0, 0.2f);
    mctx c;
    setup(&c, &cfg, 13);
    memset(c.valid, 0, sizeof c.valid);
    param_table *pt = model_params(c.m);
    param_zero_grad(pt);
    model_set_grad_hook(c.m, count_hook, NULL);
    announced = 0;
    double loss = -1.0;
    long tok = -1;
    CU_ASSERT_EQUAL(model_step(c.m, &c.b, 1, &loss, &tok), MODEL_OK);
    CU_ASSERT_EQUAL(tok, 0);
    CU_ASSERT_EQUAL(loss, 0.0);
    CU_ASSERT_EQUAL(announced, pt->n);
    int zero = 1;
    for (size_t i = 0; i < pt->total; i++) zero &= pt->grad[i] == 0.0f;
    CU_ASSERT(zero);
    model_set_grad_hook(c.m, NULL, NULL);
    model_free(c.m);
}

/* Greedy decoding: the teacher-forced argmax on its own output; beam k = 1
 * is greedy; a wider beam's result is a valid hypothesis. */
static void test_decoding(void)
{
    for (int cell = 0; cell < 3; cell++) {
        const model_config cfg = attn_config((cell_kind)cell, 2, cell == 2, 0.0f);
        mctx c;
        setup(&c, &cfg, 21 + (uint64_t)cell);
        int32_t out[MB * MT], out1[MB * MT];
        int len[MB], len1[MB];
        CU_ASSERT_EQUAL(model_greedy(c.m, c.src, MB, MT, MODEL_BOS, -1, MT, out, len), 0);
        model_batch b = c.b;
        b.tgt = out;
        b.tgt_valid = NULL;
        double loss;
        long tok;
        model_step(c.m, &b, 0, &loss, &tok);
        const float *z = model_last_logits(c.m);
        int agree = 0;
        for (int t = 0; t < MT; t++)
            for (int r = 0; r < MB; r++) {
                const float *row = z + ((size_t)t * MB + r) * cfg.tgt_vocab;
                int best = 0;
                for (int v = 1; v < cfg.tgt_vocab; v++) best = row[v] > row[best] ? v : best;
                agree += best == out[r * MT + t];
            }
        CU_ASSERT_EQUAL(agree, MB * MT);
        CU_ASSERT_EQUAL(model_greedy(c.m, c.src, MB, MT, MODEL_BOS, 2, MT, out, len), 0);
        CU_ASSERT_EQUAL(model_beam(c.m, c.src, MB, MT, MODEL_BOS, 2, MT, 1, 0.75f, out1, len1), 0);
        for (int r = 0; r < MB; r++) {
            CU_ASSERT_EQUAL(len[r], len1[r]);
            for (int t = 0; t < len[r] && t < len1[r]; t++)
                CU_ASSERT_EQUAL(out[r * MT + t], out1[r * MT + t]);
        }
        model_free(c.m);
        /* beams: B·k rows */
        model_config wide = cfg;
        wide.max_batch = 2 * 3;
        CU_ASSERT_FATAL(model_create(&c.m, &wide, NULL, 0) == 0);
        model_init_params(c.m, 21 + (uint64_t)cell);
        CU_ASSERT_EQUAL(model_beam(c.m, c.src, 2, MT, MODEL_BOS, 2, MT, 3, 0.75f, out1, len1), 0);
        for (int r = 0; r < 2; r++) {
            CU_ASSERT(len1[r] >= 0 && len1[r] <= MT);
            for (int t = 0; t < len1[r]; t++)
                CU_ASSERT(out1[r * MT + t] >= 0 && out1[r * MT + t] < cfg.tgt_vocab &&
                          out1[r * MT + t] != 2);
        }
        model_free(c.m);
    }
}

/* Rows of recorded weights: each sums to 1 over the source's valid length
 * (sources of lengths 6, 3, 1, 5) and is 0 past it. Returns the rows checked. */
static int check_rows(const float *rec, const int *len, int max_len, int *bad)
{
    static const int slen[MB] = {6, 3, 1, 5};
    int rows = 0;
    for (int b = 0; b < MB; b++)
        for (int j = 0; j < len[b] + (len[b] < max_len); j++, rows++) {
            const float *w = rec + ((size_t)b * max_len + j) * MT;
            double sum = 0.0;
            for (int s = 0; s < MT; s++) {
                sum += w[s];
                *bad += s >= slen[b] && w[s] != 0.0f;
                *bad += !(w[s] >= 0.0f);
            }
            *bad += !(fabs(sum - 1.0) < 1e-5);
        }
    return rows;
}

/* model_record_attention: greedy and beam search record one row per output
 * token (and <eos>); a beam whose result is greedy's records greedy's
 * weights; k = 1 is greedy's, bit for bit. */
static void test_record(void)
{
    const model_config cfg = attn_config(CELL_GRU, 2, 1, 0.0f);
    model_config wide = cfg;
    wide.max_batch = MB * 3;
    mctx c;
    setup(&c, &cfg, 61);
    model_free(c.m);
    CU_ASSERT_FATAL(model_create(&c.m, &wide, NULL, 0) == 0);
    model_init_params(c.m, 61);
    param_table *pt = model_params(c.m);
    for (size_t i = 0; i < pt->total; i++) pt->data[i] *= 3.0f; /* sharper */
    float *g = calloc(MB * MT * MT, sizeof(float)), *b1 = calloc(MB * MT * MT, sizeof(float));
    float *b3 = calloc(MB * MT * MT, sizeof(float));
    CU_ASSERT_FATAL(g && b1 && b3);
    int32_t og[MB * MT], o1[MB * MT], o3[MB * MT];
    int lg[MB], l1[MB], l3[MB], bad = 0;
    CU_ASSERT_EQUAL(model_record_attention(c.m, g), MODEL_OK);
    CU_ASSERT_EQUAL(model_greedy(c.m, c.src, MB, MT, MODEL_BOS, 2, MT, og, lg), 0);
    CU_ASSERT_EQUAL(model_record_attention(c.m, b1), MODEL_OK);
    CU_ASSERT_EQUAL(model_beam(c.m, c.src, MB, MT, MODEL_BOS, 2, MT, 1, 0.75f, o1, l1), 0);
    CU_ASSERT_EQUAL(model_record_attention(c.m, b3), MODEL_OK);
    CU_ASSERT_EQUAL(model_beam(c.m, c.src, MB, MT, MODEL_BOS, 2, MT, 3, 0.75f, o3, l3), 0);
    CU_ASSERT_EQUAL(model_record_attention(c.m, NULL), MODEL_OK);
    const int rows = check_rows(g, lg, MT, &bad);
    check_rows(b3, l3, MT, &bad);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(rows >= MB);
    CU_ASSERT_EQUAL(memcmp(g, b1, MB * MT * MT * sizeof(float)), 0);
    int same = 0;
    for (int b = 0; b < MB; b++) {
        if (l3[b] != lg[b] || memcmp(o3 + b * MT, og + b * MT, (size_t)lg[b] * 4) != 0) continue;
        same++;
        const size_t n = (size_t)(lg[b] + (lg[b] < MT)) * MT;
        double d = 0.0;
        for (size_t i = 0; i < n; i++)
            d = fmax(d, fabs(g[(size_t)b * MT * MT + i] - b3[(size_t)b * MT * MT + i]));
        CU_ASSERT(d < 1e-5);
    }
    CU_ASSERT(same > 0);
    free(g), free(b1), free(b3);
    model_free(c.m);
    /* a model without attention has nothing to record */
    model_config none = cfg;
    none.attention = MODEL_ATTN_NONE;
    CU_ASSERT_FATAL(model_create(&c.m, &none, NULL, 0) == 0);
    float one[MT];
    CU_ASSERT_EQUAL(model_record_attention(c.m, one), MODEL_EINVAL);
    model_free(c.m);
}

static void test_bad_configs(void)
{
    model *m = NULL;
    char err[200] = "";
    model_config one_hot = attn_config(CELL_GRU, 1, 0, 0.0f);
    one_hot.embed = 0;
    CU_ASSERT_EQUAL(model_create(&m, &one_hot, err, sizeof err), MODEL_EINVAL);
    CU_ASSERT(strstr(err, "embed") != NULL);
    model_config lm = attn_config(CELL_GRU, 1, 0, 0.0f);
    lm.task = MODEL_LM;
    CU_ASSERT_EQUAL(model_create(&m, &lm, err, sizeof err), MODEL_EINVAL);
    model_config odd = attn_config(CELL_GRU, 1, 0, 0.0f);
    odd.attention = 7;
    CU_ASSERT_EQUAL(model_create(&m, &odd, err, sizeof err), MODEL_EINVAL);
    CU_ASSERT(m == NULL);
}

static void report(void)
{
    printf("\n  attention: worst relative gradient difference %.3g\n", worst_seen);
}

void register_suites(void)
{
    CU_pSuite s = CU_add_suite("attention", NULL, NULL);
    if (!s) return;
    CU_add_test(s, "additive attention layer: finite differences", test_attn_layer);
    CU_add_test(s, "stack step by step = at once (outputs, gradients)", test_stack_steps);
    CU_add_test(s, "attention model: finite differences (cells, layers, bidi, dropout)",
                test_model_gradients);
    CU_add_test(s, "attention model: packed training loss = padded evaluation",
                test_train_equals_eval);
    CU_add_test(s, "attention model: targets of length 0", test_empty_targets);
    CU_add_test(s, "attention model: greedy, beam", test_decoding);
    CU_add_test(s, "attention model: recorded weights (greedy, beam)", test_record);
    CU_add_test(s, "attention model: bad configurations", test_bad_configs);
    CU_add_test(s, "report", report);
}

/* The two models: the book's seq2seq encoder–decoder (translation) and an RNN
 * language model, their parameter tables, initialisation, training step,
 * greedy decoding and generation. Shapes use the legend of model.h.
 *
 * Translation (d2l's Seq2SeqEncoder / Seq2SeqDecoder):
 *   encoder: embedding (Vs, E) → stacked RNN (bidirectional optional)
 *   decoder: input [embedding(y_{t−1}) ; context] at every step, context =
 *            the encoder's last-layer final h; initial state = encoder final
 *            state; dense (Vt, H) on every output.
 *   loss:    Σ masked cross-entropy over target positions t < valid length.
 * LM (d2l's RNNModel): embedding (V, E) or one-hot → stacked RNN → dense. */
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const model_config *model_get_config(const model *m)
{
    return &m->cfg;
}

const float *model_last_logits(const model *m)
{
    return m->logits;
}

param_table *model_params(model *m)
{
    return &m->pt;
}

void model_set_bptt(model *m, bptt_mode mode, int k)
{
    m->bptt = mode;
    m->bptt_k = k;
}

void model_set_label_smoothing(model *m, float eps)
{
    m->smoothing = eps;
}

/* The training loss and d(Σ loss)/d(logits) in place: plain cross-entropy
 * unless label smoothing is on. */
double model_train_xent(const model *m, float *logits, const int32_t *tgt, int N, int V,
                        long *tokens)
{
    if (m->smoothing > 0.0f)
        return xent_smooth_forward_backward(logits, tgt, N, V, m->smoothing, tokens);
    return xent_forward_backward(logits, tgt, N, V, tokens);
}

void model_set_grad_hook(model *m, model_grad_hook fn, void *ctx)
{
    m->hook = fn, m->hook_ctx = ctx;
    rnn_stack *st[3] = {&m->enc, &m->dec, &m->rnn};
    for (int i = 0; i < 3; i++) st[i]->hook = fn, st[i]->hook_ctx = ctx;
}

/* Announces tensor i final (i < 0: a tensor this model does not have). */
void mdl_grad_ready(const model *m, int i, int count)
{
    if (m->hook && i >= 0) m->hook(m->hook_ctx, i, i + count);
}

void model_free(model *m)
{
    if (!m) return;
    rnn_stack_free(&m->enc);
    rnn_stack_free(&m->dec);
    rnn_stack_free(&m->rnn);
    attn_model_free(m);
    if (m->shared_data) m->pt.data = NULL;
    if (m->grad_own) m->pt.grad = m->grad_own; /* model_use_grad lent it out */
    param_table_free(&m->pt);
    free(m->ids_a);
    free(m->rows);
    free(m->done);
    free(m->mem);
    free(m);
}

static int fail(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
    return MODEL_EINVAL;
}

int model_create(model **out, const model_config *cfg, char *err, size_t errlen)
{
    *out = NULL;
    const model_config c = *cfg;
    if (c.layers < 1 || c.layers > 16) return fail(err, errlen, "layers must be in 1..16");
    if (c.hidden < 1 || c.embed < 0) return fail(err, errlen, "hidden must be >= 1, embed >= 0");
    if (c.bidirectional && (c.task != MODEL_TRANSLATE || c.hidden % 2))
        return fail(err, errlen,
                    "a bidirectional encoder needs the translate task and an even "
                    "hidden size");
    if (c.dropout < 0.0f || c.dropout >= 1.0f)
        return fail(err, errlen, "dropout must be in [0, 1)");
    if (c.tgt_vocab < 4 || (c.task == MODEL_TRANSLATE && c.src_vocab < 4))
        return fail(err, errlen, "vocabulary too small");
    if (c.num_steps < 1 || c.max_batch < 1)
        return fail(err, errlen, "num_steps and batch must be >= 1");
    if (c.attention != MODEL_ATTN_NONE && c.attention != MODEL_ATTN_ADDITIVE)
        return fail(err, errlen, "unknown attention");
    if (c.attention && (c.task != MODEL_TRANSLATE || c.embed < 1))
        return fail(err, errlen, "attention needs the translate task and embeddings (embed >= 1)");

    model *m = calloc(1, sizeof *m);
    if (!m) return MODEL_ENOMEM;
    m->cfg = c;
    m->onehot = c.embed == 0;
    const int T = c.num_steps, B = c.max_batch, H = c.hidden, L = c.layers, E = c.embed;
    const int V = c.tgt_vocab;
    param_table *pt = &m->pt;
    m->i_enc_emb = m->i_dec_emb = m->i_emb = m->i_enc_rnn = m->i_dec_rnn = m->i_rnn = -1;
    m->i_attn = -1;

    if (c.task == MODEL_TRANSLATE) {
        const int Ie = m->onehot ? c.src_vocab : E, Id = m->onehot ? V : E;
        /* the attention decoder's input is [context ; embedding] at every
         * step (H + E); the other's [embedding ; context] with the context
         * fixed (E, and C = H) */
        if (rnn_stack_init(&m->enc, c.cell, L, c.bidirectional, Ie, 0, H, c.dropout, m->onehot, T,
                           B) ||
            (c.attention
                 ? rnn_stack_init(&m->dec, c.cell, L, 0, H + E, 0, H, c.dropout, 0, T, B)
                 : rnn_stack_init(&m->dec, c.cell, L, 0, Id, H, H, c.dropout, m->onehot, T, B)))
            goto err;
        /* embedded inputs: each distinct token is projected once per step */
        if (!m->onehot && (rnn_stack_share_inputs(&m->enc, c.src_vocab) ||
                           (!c.attention && rnn_stack_share_inputs(&m->dec, V))))
            goto err;
        if (!m->onehot)
            m->i_enc_emb = param_table_add(pt, "encoder.embedding.weight", 2, c.src_vocab, E);
        m->i_enc_rnn = rnn_stack_register(&m->enc, pt, "encoder.rnn");
        if (c.attention) {
            /* d2l's AdditiveAttention creates W_k, W_q, w_v in this order */
            m->i_attn = param_table_add(pt, "decoder.attention.W_k.weight", 2, H, H);
            if (m->i_attn < 0 || param_table_add(pt, "decoder.attention.W_q.weight", 2, H, H) < 0 ||
                param_table_add(pt, "decoder.attention.w_v.weight", 2, 1, H) < 0)
                goto err;
        }
        if (!m->onehot) m->i_dec_emb = param_table_add(pt, "decoder.embedding.weight", 2, V, E);
        m->i_dec_rnn = rnn_stack_register(&m->dec, pt, "decoder.rnn");
        m->i_dense_w = param_table_add(pt, "decoder.dense.weight", 2, V, H);
        m->i_dense_b = param_table_add(pt, "decoder.dense.bias", 1, V, 0);
        if (m->i_enc_rnn < 0 || m->i_dec_rnn < 0 || m->i_dense_w < 0 || m->i_dense_b < 0 ||
            (!m->onehot && (m->i_enc_emb < 0 || m->i_dec_emb < 0)))
            goto err;
    } else {
        const int I = m->onehot ? V : E;
        if (rnn_stack_init(&m->rnn, c.cell, L, 0, I, 0, H, c.dropout, m->onehot, T, B) ||
            (!m->onehot && rnn_stack_share_inputs(&m->rnn, V)))
            goto err;
        if (!m->onehot) m->i_emb = param_table_add(pt, "embedding.weight", 2, V, E);
        m->i_rnn = rnn_stack_register(&m->rnn, pt, "rnn");
        m->i_dense_w = param_table_add(pt, "dense.weight", 2, V, H);
        m->i_dense_b = param_table_add(pt, "dense.bias", 1, V, 0);
        if (m->i_rnn < 0 || m->i_dense_w < 0 || m->i_dense_b < 0 || (!m->onehot && m->i_emb < 0))
            goto err;
    }
    if (param_table_alloc(pt)) goto err;
    if (c.task == MODEL_TRANSLATE) {
        rnn_stack_bind(&m->enc, pt, m->i_enc_rnn);
        rnn_stack_bind(&m->dec, pt, m->i_dec_rnn);
        if (c.attention && attn_model_create(m) != MODEL_OK) goto err;
    } else {
        rnn_stack_bind(&m->rnn, pt, m->i_rnn);
    }

    const size_t TB = (size_t)T * B, LBH = (size_t)L * B * H;
    m->ids_a = calloc(3 * TB + (size_t)B + (size_t)T, sizeof(int32_t));
    m->rows = calloc(2 * (size_t)B, sizeof(int64_t)); /* fallback ids, then ordered ids */
    m->done = calloc((size_t)B, sizeof(int));
    size_t n =
        4 * TB * (size_t)E + 6 * LBH + 2 * (size_t)B * H + TB * (size_t)V + TB * (size_t)H + TB;
    m->dws_n = dense_ws_floats((int)TB, H, V);
    n += m->dws_n;
    m->mem = calloc(n, sizeof(float));
    if (!m->ids_a || !m->rows || !m->done || !m->mem) goto err;
    m->ids_b = m->ids_a + TB;
    m->ids_c = m->ids_b + TB;
    float *p = m->mem;
    m->xa = p, p += TB * E;
    m->xb = p, p += TB * E;
    m->dxa = p, p += TB * E;
    m->dxb = p, p += TB * E;
    m->st_h = p, p += LBH;
    m->st_c = p, p += LBH;
    m->dst_h = p, p += LBH;
    m->dst_c = p, p += LBH;
    m->st2_h = p, p += LBH;
    m->st2_c = p, p += LBH;
    m->ctx = p, p += (size_t)B * H;
    m->dctx = p, p += (size_t)B * H;
    m->logits = p, p += TB * V;
    m->dtop = p, p += TB * H;
    m->carry = p, p += TB;
    m->dws = m->dws_n ? p : NULL;
    m->order = m->ids_c + TB;
    m->step_rows = m->order + B;
    for (int b = 0; b < B; b++) m->rows[b] = b;
    *out = m;
    return MODEL_OK;
err:
    model_free(m);
    if (err && errlen)
        snprintf(
            err, errlen,
            "out of memory building the model (hidden %d, vocabulary %d, workspace for %d rows "
            "of %d steps)",
            c.hidden, c.tgt_vocab, c.max_batch, c.num_steps);
    return MODEL_ENOMEM;
}

/* The directions and the attention hold pointers into the parameter and
 * gradient buffers: point them again after either moved. */
static void rebind(model *m)
{
    if (m->cfg.task == MODEL_TRANSLATE) {
        rnn_stack_bind(&m->enc, &m->pt, m->i_enc_rnn);
        rnn_stack_bind(&m->dec, &m->pt, m->i_dec_rnn);
        if (m->cfg.attention) attn_model_bind(m);
    } else {
        rnn_stack_bind(&m->rnn, &m->pt, m->i_rnn);
    }
}

int model_share_params(model *replica, model *primary)
{
    const model_config *a = &replica->cfg, *b = &primary->cfg;
    if (a->task != b->task || a->cell != b->cell || a->layers != b->layers ||
        a->embed != b->embed || a->hidden != b->hidden || a->bidirectional != b->bidirectional ||
        a->src_vocab != b->src_vocab || a->tgt_vocab != b->tgt_vocab ||
        a->attention != b->attention || replica->pt.total != primary->pt.total ||
        replica == primary || replica->shared_data)
        return MODEL_EINVAL;
    param_buffer_free(replica->pt.data);
    replica->pt.data = primary->pt.data;
    replica->shared_data = 1;
    rebind(replica);
    return MODEL_OK;
}

void model_use_grad(model *m, float *grad)
{
    if (!m->grad_own) m->grad_own = m->pt.grad;
    m->pt.grad = grad ? grad : m->grad_own;
    rebind(m);
}

/* ------------------------------------------------------------ initialisation */

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

void model_init_params(model *m, uint64_t seed)
{
    const int lm = m->cfg.task == MODEL_LM;
    for (int i = 0; i < m->pt.n; i++) {
        const param_tensor *t = &m->pt.t[i];
        float *w = param_data(&m->pt, i);
        const int is_rnn = strstr(t->name, "rnn.") != NULL;
        const int is_weight = strstr(t->name, "weight") != NULL;
        if (ends_with(t->name, "embedding.weight")) {
            for (size_t k = 0; k < t->size; k++)
                w[k] = rng_normal(seed, RNG_INIT, (uint64_t)i, k, 0);
            continue;
        }
        double bound;
        if (is_weight && !lm) {
            /* d2l's init_seq2seq: Xavier-uniform for Linear and RNN weights */
            bound = sqrt(6.0 / (double)(t->shape[0] + t->shape[1]));
        } else if (is_rnn) {
            /* torch.nn.RNN/GRU/LSTM default: U(−1/√hidden, 1/√hidden) */
            int hidden =
                m->cfg.hidden / (m->cfg.bidirectional && strstr(t->name, "encoder") ? 2 : 1);
            bound = 1.0 / sqrt((double)hidden);
        } else {
            /* torch.nn.Linear default (weight and bias): U(−1/√fan_in, 1/√fan_in) */
            bound = 1.0 / sqrt((double)m->cfg.hidden);
        }
        for (size_t k = 0; k < t->size; k++)
            w[k] = (float)((2.0 * rng_uniform(seed, RNG_INIT, (uint64_t)i, k, 0) - 1.0) * bound);
    }
}

/* --------------------------------------------------------------- training */

/* Per-row truncation factors for the LM's backward (see model_set_bptt). */
static const float *make_carry(model *m, const model_batch *b)
{
    const int T = b->T, B = b->B;
    if (m->bptt == BPTT_FULL) return NULL;
    const int64_t *ex = b->example ? b->example : m->rows;
    for (int t = 0; t < T; t++)
        for (int r = 0; r < B; r++) {
            float k = 1.0f;
            if (m->bptt == BPTT_FIXED) {
                /* cut every K steps: gradients flow back at most K steps */
                k = (t % m->bptt_k == 0) ? 0.0f : 1.0f;
            } else {
                /* Tallec & Ollivier's unbiased randomized truncation (the book's
                 * ξ_t): keep with probability π = 1 − 1/K and scale by 1/π, so
                 * E[gradient] is the full gradient; K is the mean span. */
                const float pi = 1.0f - 1.0f / (float)m->bptt_k;
                float u = rng_uniform(b->seed, RNG_BPTT, b->step, (uint64_t)ex[r], (uint64_t)t);
                k = u < pi ? 1.0f / pi : 0.0f;
            }
            m->carry[(size_t)t * B + r] = k;
        }
    return m->carry;
}

void mdl_time_major(int32_t *dst, const int32_t *src, int B, int T)
{
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) dst[(size_t)t * B + b] = src[(size_t)b * T + t];
}

/* Embeds time-major ids (T·B rows) into x, or leaves the one-hot ids to the RNN. */
const float *mdl_embed(model *m, int i_emb, float *x, const int32_t *ids, size_t N)
{
    if (m->onehot) return NULL;
    embedding_forward(x, param_data(&m->pt, i_emb), ids, (int)N, m->cfg.embed);
    return x;
}

/* Row r's target length (tokens with <eos>) within [0, T]. */
int mdl_target_len(const model_batch *b, int r)
{
    const int v = b->tgt_valid ? b->tgt_valid[r] : b->T;
    return v < 0 ? 0 : v > b->T ? b->T : v;
}

/* Training: rows go longest target first, and the decoder runs as packed
 * sequences (rnn_stack_set_packed): step t only on the rows whose target is
 * longer than t, the output layer only on live positions. The steps past a
 * row's <eos> change neither the loss nor the gradient, so this is the same
 * math as the padded model, as PyTorch's pack_padded_sequence. The encoder
 * reads all T positions of every row, padding included, as the book.
 * Evaluation keeps the padded layout: model_last_logits promises (T, B, V). */
size_t mdl_pack_rows(model *m, const model_batch *b, int *Td_out)
{
    const int T = b->T, B = b->B;
    int32_t *src = m->ids_a, *din = m->ids_b, *tgt = m->ids_c;
    int32_t *perm = m->order, *bs = m->step_rows;
    int64_t *ex = m->rows + B;
    int Td = 0; /* the longest target: the decoder's steps */
    for (int r = 0; r < B; r++) {
        const int v = mdl_target_len(b, r);
        Td = v > Td ? v : Td;
    }
    int k = 0;
    for (int v = Td; v >= 0; v--)
        for (int r = 0; r < B; r++)
            if (mdl_target_len(b, r) == v) perm[k++] = r;
    size_t N = 0;
    for (int t = 0, n = B; t < Td; t++) {
        while (n > 0 && mdl_target_len(b, perm[n - 1]) <= t) n--; /* rows still live at t */
        bs[t] = n;
        for (int r = 0; r < n; r++) {
            const int32_t *row = b->tgt + (size_t)perm[r] * T;
            /* teacher forcing: <bos> then y_0 … y_{T−2} */
            din[N + r] = t == 0 ? MODEL_BOS : row[t - 1];
            tgt[N + r] = row[t];
        }
        N += (size_t)n;
    }
    for (int r = 0; r < B; r++) {
        ex[r] = b->example ? b->example[perm[r]] : perm[r];
        for (int t = 0; t < T; t++) src[(size_t)t * B + r] = b->src[(size_t)perm[r] * T + t];
    }
    *Td_out = Td;
    return N;
}

static int step_translate_train(model *m, const model_batch *b, double *loss_sum, long *tokens)
{
    const int T = b->T, B = b->B, H = m->cfg.hidden, L = m->cfg.layers, V = m->cfg.tgt_vocab;
    const int E = m->cfg.embed;
    const size_t TB = (size_t)T * B, LBH = (size_t)L * B * H;
    int32_t *src = m->ids_a, *din = m->ids_b, *tgt = m->ids_c;
    int32_t *bs = m->step_rows;
    int64_t *ex = m->rows + B;
    param_table *pt = &m->pt;
    int Td = 0;
    const size_t N = mdl_pack_rows(m, b, &Td);
    rnn_dropout_key kenc = {b->seed, b->step, 0, ex};
    rnn_dropout_key kdec = kenc;
    kdec.site = 1;

    const float *xe = mdl_embed(m, m->i_enc_emb, m->xa, src, TB);
    rnn_stack_forward(&m->enc, T, B, xe, src, NULL, NULL, NULL, m->st_h, m->st_c, &kenc);
    const float *ctx = m->st_h + (size_t)(L - 1) * B * H; /* last layer's final h */
    const float *xd = mdl_embed(m, m->i_dec_emb, m->xb, din, N);
    rnn_stack_set_packed(&m->dec, bs);
    rnn_stack_forward(&m->dec, Td, B, xd, din, ctx, m->st_h, m->st_c, NULL, NULL, &kdec);
    const float *ytop = m->dec.y[L - 1]; /* (N, H): the live positions */
    dense_forward(m->logits, ytop, param_data(pt, m->i_dense_w), param_data(pt, m->i_dense_b),
                  (int)N, H, V, m->dws, m->dws_n);
    *loss_sum = model_train_xent(m, m->logits, tgt, (int)N, V, tokens);
    memset(m->dtop, 0, N * H * sizeof(float));
    dense_backward(m->dtop, param_grad(pt, m->i_dense_w), param_grad(pt, m->i_dense_b), m->logits,
                   ytop, param_data(pt, m->i_dense_w), (int)N, H, V, m->dws != NULL);
    mdl_grad_ready(m, m->i_dense_w, 2); /* weight and bias are adjacent */
    memset(m->dst_h, 0, LBH * sizeof(float));
    memset(m->dst_c, 0, LBH * sizeof(float));
    memset(m->dctx, 0, (size_t)B * H * sizeof(float));
    int U = 0; /* the distinct tokens of a stack's input (rnn_stack_share_inputs) */
    const int32_t *uid = rnn_stack_input_ids(&m->dec, &U);
    if (!m->onehot) memset(m->dxb, 0, (size_t)U * E * sizeof(float));
    rnn_stack_backward(&m->dec, Td, B, xd, din, ctx, m->dtop, NULL, NULL, NULL,
                       m->onehot ? NULL : m->dxb, m->dctx, m->dst_h, m->dst_c);
    rnn_stack_set_packed(&m->dec, NULL);
    if (!m->onehot) embedding_backward(param_grad(pt, m->i_dec_emb), m->dxb, uid, U, E);
    mdl_grad_ready(m, m->i_dec_emb, 1);
    /* the context is the encoder's last-layer final h: its gradient joins that state's */
    float *dlast = m->dst_h + (size_t)(L - 1) * B * H;
    for (size_t i = 0; i < (size_t)B * H; i++) dlast[i] += m->dctx[i];
    uid = rnn_stack_input_ids(&m->enc, &U);
    if (!m->onehot) memset(m->dxa, 0, (size_t)U * E * sizeof(float));
    rnn_stack_backward(&m->enc, T, B, xe, src, NULL, NULL, m->dst_h, m->dst_c, NULL,
                       m->onehot ? NULL : m->dxa, NULL, NULL, NULL);
    if (!m->onehot) embedding_backward(param_grad(pt, m->i_enc_emb), m->dxa, uid, U, E);
    mdl_grad_ready(m, m->i_enc_emb, 1);
    return MODEL_OK;
}

/* Evaluation: the padded layout, all T decoder steps. */
static int step_translate_eval(model *m, const model_batch *b, double *loss_sum, long *tokens)
{
    const int T = b->T, B = b->B, H = m->cfg.hidden, L = m->cfg.layers, V = m->cfg.tgt_vocab;
    const size_t TB = (size_t)T * B;
    int32_t *src = m->ids_a, *din = m->ids_b, *tgt = m->ids_c;
    param_table *pt = &m->pt;

    mdl_time_major(src, b->src, B, T);
    for (int r = 0; r < B; r++) {
        int valid = b->tgt_valid ? b->tgt_valid[r] : T;
        for (int t = 0; t < T; t++) {
            din[(size_t)t * B + r] = t == 0 ? MODEL_BOS : b->tgt[(size_t)r * T + t - 1];
            tgt[(size_t)t * B + r] = t < valid ? b->tgt[(size_t)r * T + t] : -1;
        }
    }
    const float *xe = mdl_embed(m, m->i_enc_emb, m->xa, src, TB);
    rnn_stack_forward(&m->enc, T, B, xe, src, NULL, NULL, NULL, m->st_h, m->st_c, NULL);
    const float *ctx = m->st_h + (size_t)(L - 1) * B * H;
    const float *xd = mdl_embed(m, m->i_dec_emb, m->xb, din, TB);
    rnn_stack_forward(&m->dec, T, B, xd, din, ctx, m->st_h, m->st_c, NULL, NULL, NULL);
    dense_forward(m->logits, m->dec.y[L - 1], param_data(pt, m->i_dense_w),
                  param_data(pt, m->i_dense_b), (int)TB, H, V, m->dws, m->dws_n);
    *loss_sum = xent_forward(m->logits, tgt, (int)TB, V, tokens);
    return MODEL_OK;
}

static int step_lm(model *m, const model_batch *b, int train, double *loss_sum, long *tokens)
{
    const int T = b->T, B = b->B, H = m->cfg.hidden, L = m->cfg.layers, V = m->cfg.tgt_vocab;
    const int E = m->cfg.embed;
    const size_t TB = (size_t)T * B, LBH = (size_t)L * B * H;
    int32_t *x = m->ids_a, *y = m->ids_c;
    param_table *pt = &m->pt;
    const int lstm = m->cfg.cell == CELL_LSTM;

    mdl_time_major(x, b->src, B, T);
    mdl_time_major(y, b->tgt, B, T);
    rnn_dropout_key key = {b->seed, b->step, 2, b->example ? b->example : m->rows};
    const float *xe = mdl_embed(m, m->i_emb, m->xa, x, TB);
    rnn_stack_forward(&m->rnn, T, B, xe, x, NULL, b->state_h, lstm ? b->state_c : NULL, m->st_h,
                      lstm ? m->st_c : NULL, train ? &key : NULL);
    const float *ytop = m->rnn.y[L - 1];
    dense_forward(m->logits, ytop, param_data(pt, m->i_dense_w), param_data(pt, m->i_dense_b),
                  (int)TB, H, V, m->dws, m->dws_n);
    if (!train) {
        *loss_sum = xent_forward(m->logits, y, (int)TB, V, tokens);
    } else {
        *loss_sum = model_train_xent(m, m->logits, y, (int)TB, V, tokens);
        memset(m->dtop, 0, TB * H * sizeof(float));
        dense_backward(m->dtop, param_grad(pt, m->i_dense_w), param_grad(pt, m->i_dense_b),
                       m->logits, ytop, param_data(pt, m->i_dense_w), (int)TB, H, V,
                       m->dws != NULL);
        mdl_grad_ready(m, m->i_dense_w, 2);
        int U = 0; /* the distinct tokens of the input (rnn_stack_share_inputs) */
        const int32_t *uid = rnn_stack_input_ids(&m->rnn, &U);
        if (!m->onehot) memset(m->dxa, 0, (size_t)U * E * sizeof(float));
        /* the carried-in state is detached: no gradient flows into it */
        rnn_stack_backward(&m->rnn, T, B, xe, x, NULL, m->dtop, NULL, NULL, make_carry(m, b),
                           m->onehot ? NULL : m->dxa, NULL, NULL, NULL);
        if (!m->onehot) embedding_backward(param_grad(pt, m->i_emb), m->dxa, uid, U, E);
        mdl_grad_ready(m, m->i_emb, 1);
    }
    /* carry the final state to the next minibatch (values only: detached) */
    if (b->state_h) memcpy(b->state_h, m->st_h, LBH * sizeof(float));
    if (b->state_c && lstm) memcpy(b->state_c, m->st_c, LBH * sizeof(float));
    return MODEL_OK;
}

/* A stack's forward products over `rows` positions; `executed`: layer 0's
 * input product over the last forward's distinct ids when they are shared
 * (rnn_stack_share_inputs). */
static double stack_flops(const rnn_stack *s, double rows, int B, int executed)
{
    double f = 0.0;
    for (int i = 0; i < s->L * s->dirs; i++) {
        const rnn_dir *d = &s->d[i];
        const double GH = (double)cell_gates(d->cell) * d->H;
        const int I = d->onehot ? 0 : d->I;
        const double in_rows = executed && d->vocab > 0 ? (double)d->U : rows;
        f += 2.0 * GH * (in_rows * I + rows * d->H) + 2.0 * B * GH * d->C;
    }
    return f;
}

/* The recurrent products' rows a stack's last forward and backward skipped
 * (rnn_dir: a zero initial state, no gradient wanted for it), as FLOPs. */
static double stack_skipped(const rnn_stack *s)
{
    double f = 0.0;
    for (int i = 0; i < s->L * s->dirs; i++) {
        const rnn_dir *d = &s->d[i];
        f += 2.0 * cell_gates(d->cell) * d->H * d->H * d->skipped;
    }
    return f;
}

void model_matmul_flops(const model *m, const model_batch *b, double *padded, double *executed)
{
    const int T = b->T, B = b->B, H = m->cfg.hidden, V = m->cfg.tgt_vocab;
    const double TB = (double)T * B;
    *padded = *executed = 0.0;
    if (B <= 0) return; /* an empty slice: no forward ran */
    if (m->cfg.task == MODEL_LM) {
        *padded = 3.0 * (stack_flops(&m->rnn, TB, B, 0) + 2.0 * TB * H * V);
        *executed =
            3.0 * (stack_flops(&m->rnn, TB, B, 1) + 2.0 * TB * H * V) - stack_skipped(&m->rnn);
        return;
    }
    double live = 0.0; /* the decoder's packed (step, row) pairs = target tokens */
    for (int r = 0; r < B; r++) live += mdl_target_len(b, r);
    *padded =
        3.0 * (stack_flops(&m->enc, TB, B, 0) + stack_flops(&m->dec, TB, B, 0) + 2.0 * TB * H * V);
    *executed = 3.0 * (stack_flops(&m->enc, TB, B, 1) + stack_flops(&m->dec, live, B, 1) +
                       2.0 * live * H * V) -
                stack_skipped(&m->enc) - stack_skipped(&m->dec);
    if (m->cfg.attention) {
        /* W_k k once, and per query W_q q, the scores' and the context's
         * products over the T source steps */
        const double per_query = 2.0 * H * H + 4.0 * T * H;
        *padded += 3.0 * (2.0 * TB * H * H + TB * per_query);
        *executed += 3.0 * (2.0 * TB * H * H + live * per_query);
    }
}

int model_step(model *m, const model_batch *b, int train, double *loss_sum, long *tokens)
{
    *loss_sum = 0.0;
    *tokens = 0;
    if (b->B < 0 || b->B > m->cfg.max_batch || b->T < 1 || b->T > m->cfg.num_steps)
        return MODEL_EINVAL;
    if (b->B == 0) {
        /* an empty slice (a short last batch over many ranks): zero gradients,
         * final at once */
        if (train && m->hook) m->hook(m->hook_ctx, 0, m->pt.n);
        return MODEL_OK;
    }
    /* ids index embedding rows (or one-hot columns): out-of-range ids would
     * read outside the parameters, so they are refused here */
    const int vs = m->cfg.task == MODEL_TRANSLATE ? m->cfg.src_vocab : m->cfg.tgt_vocab;
    const size_t n = (size_t)b->B * b->T;
    for (size_t i = 0; i < n; i++)
        if (b->src[i] < 0 || b->src[i] >= vs || b->tgt[i] < 0 || b->tgt[i] >= m->cfg.tgt_vocab)
            return MODEL_EINVAL;
    if (m->cfg.task == MODEL_LM) return step_lm(m, b, train, loss_sum, tokens);
    if (m->cfg.attention)
        return train ? attn_step_train(m, b, loss_sum, tokens)
                     : attn_step_eval(m, b, loss_sum, tokens);
    return train ? step_translate_train(m, b, loss_sum, tokens)
                 : step_translate_eval(m, b, loss_sum, tokens);
}

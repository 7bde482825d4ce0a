/* The Bahdanau attention decoder (--attention additive): d2l's
 * Seq2SeqAttentionDecoder. The encoder is the seq2seq model's; the decoder
 * runs step by step, since its input at step t, [context_t ; embedding(y_{t−1})]
 * (H + E), depends through the attention's query on the state before the
 * step (rnn_stack_begin / rnn_stack_step). Training keeps the packed layout
 * of the attention-free model (models.c: rows longest target first, step t
 * on the rows still live), evaluation the padded one. Shapes use the legend
 * of model.h; S = source steps (the batch's T). */
#include "model_internal.h"

#include <stdlib.h>
#include <string.h>

void attn_model_bind(model *m)
{
    const param_table *pt = &m->pt;
    const int k = m->i_attn; /* W_k, W_q, w_v */
    attn_bind(&m->attn, param_data(pt, k + 1), param_data(pt, k), param_data(pt, k + 2),
              param_grad(pt, k + 1), param_grad(pt, k), param_grad(pt, k + 2));
}

int attn_model_create(model *m)
{
    const int T = m->cfg.num_steps, B = m->cfg.max_batch, H = m->cfg.hidden, E = m->cfg.embed;
    const size_t TB = (size_t)T * B;
    if (attn_init(&m->attn, H, H, T, B, m->cfg.dropout) != MODEL_OK) return MODEL_ENOMEM;
    attn_model_bind(m);
    m->ax = calloc(2 * TB * (size_t)(H + E) + 2 * TB * H, sizeof(float));
    m->svalid = calloc((size_t)B, sizeof(int32_t));
    m->all_rows = calloc((size_t)T, sizeof(int));
    if (!m->ax || !m->svalid || !m->all_rows) return MODEL_ENOMEM;
    m->dax = m->ax + TB * (H + E);
    m->keys = m->dax + TB * (H + E);
    m->dkeys = m->keys + TB * H;
    return MODEL_OK;
}

void attn_model_free(model *m)
{
    attn_free(&m->attn);
    free(m->ax);
    free(m->svalid);
    free(m->all_rows);
    free(m->rec_w);
    m->ax = m->dax = m->keys = m->dkeys = m->rec_w = m->rec_tmp = NULL;
    m->svalid = NULL;
    m->all_rows = NULL;
}

/* The sources' valid lengths, as the book's (X != <pad>).sum(1): src (S, B)
 * time-major. */
static void source_lengths(int32_t *valid, const int32_t *src, int S, int B)
{
    for (int b = 0; b < B; b++) {
        int v = 0;
        for (int s = 0; s < S; s++) v += src[(size_t)s * B + b] != 0;
        valid[b] = v;
    }
}

/* Decoder inputs' embedding part: row n of ax gets embedding(din[n]) at
 * columns [H, H + E). */
static void embed_inputs(model *m, const int32_t *din, size_t N)
{
    const int H = m->cfg.hidden, E = m->cfg.embed, W = H + E;
    const float *emb = param_data(&m->pt, m->i_dec_emb);
    for (size_t n = 0; n < N; n++)
        memcpy(m->ax + n * W + H, emb + (size_t)din[n] * E, (size_t)E * sizeof(float));
}

/* The decoder over Td steps of bs[t] rows (rows in key order), from the
 * encoder's state st_h/st_c, the keys its top-layer outputs: fills ax and
 * the stacks' states; the top layer's outputs are m->dec.y[L−1] (N, H). */
static int decoder_forward(model *m, int S, int B, int Td, const int *bs, const int32_t *din,
                           size_t N, const rnn_dropout_key *drop)
{
    const int H = m->cfg.hidden, W = H + m->cfg.embed;
    embed_inputs(m, din, N);
    rnn_stack_set_packed(&m->dec, bs);
    int rc =
        rnn_stack_begin(&m->dec, Td, B, m->st_h, m->cfg.cell == CELL_LSTM ? m->st_c : NULL, drop);
    if (rc != MODEL_OK) return rc;
    attn_begin(&m->attn, S, B, m->enc.y[m->cfg.layers - 1], m->svalid);
    size_t off = 0;
    for (int t = 0; t < Td; t++) {
        const float *q = rnn_stack_top_state(&m->dec, t - 1, B);
        attn_forward(&m->attn, off, bs[t], q, H, m->ax + off * W, W, drop, t);
        rnn_stack_step(&m->dec, t, B, m->ax + off * W, W);
        off += (size_t)bs[t];
    }
    return MODEL_OK;
}

/* Backward through decoder_forward from dtop (N, H), the gradient of the
 * top layer's outputs: parameter gradients (announced), the encoder's final
 * state's into dst_h/dst_c (zeroed here) and its outputs' into dkeys. */
static void decoder_backward(model *m, int S, int B, int Td, const int *bs, const int32_t *din,
                             size_t N)
{
    const int H = m->cfg.hidden, E = m->cfg.embed, W = H + E, L = m->cfg.layers;
    const size_t LBH = (size_t)L * B * H;
    memset(m->dax, 0, N * W * sizeof(float));
    memset(m->dkeys, 0, (size_t)S * B * H * sizeof(float));
    memset(m->dst_h, 0, LBH * sizeof(float));
    memset(m->dst_c, 0, LBH * sizeof(float));
    rnn_stack_backward_begin(&m->dec, B);
    attn_backward_begin(&m->attn);
    size_t off = N;
    for (int t = Td - 1; t >= 0; t--) {
        off -= (size_t)bs[t];
        rnn_stack_backward_step(&m->dec, t, B, m->dtop + off * H, m->dax + off * W, W);
        /* the context's gradient reaches the query: the top state before step t */
        attn_backward(&m->attn, off, bs[t], rnn_stack_top_state(&m->dec, t - 1, B), H,
                      m->dax + off * W, W, rnn_stack_top_dstate(&m->dec), H, m->dkeys);
    }
    rnn_stack_backward_end(&m->dec, Td, B, m->ax, m->dst_h, m->dst_c);
    attn_backward_end(&m->attn, m->dkeys);
    mdl_grad_ready(m, m->i_attn, 3);
    float *dW = param_grad(&m->pt, m->i_dec_emb);
    for (size_t n = 0; n < N; n++) {
        float *row = dW + (size_t)din[n] * E;
        const float *d = m->dax + n * W + H;
        for (int e = 0; e < E; e++) row[e] += d[e];
    }
    mdl_grad_ready(m, m->i_dec_emb, 1);
    rnn_stack_set_packed(&m->dec, NULL);
}

int attn_step_train(model *m, const model_batch *b, double *loss_sum, long *tokens)
{
    const int T = b->T, B = b->B, H = m->cfg.hidden, V = m->cfg.tgt_vocab, E = m->cfg.embed;
    const size_t TB = (size_t)T * B;
    param_table *pt = &m->pt;
    int Td = 0;
    const size_t N = mdl_pack_rows(m, b, &Td);
    const int32_t *src = m->ids_a, *din = m->ids_b, *tgt = m->ids_c;
    const int *bs = m->step_rows;
    rnn_dropout_key kenc = {b->seed, b->step, 0, m->rows + B};
    rnn_dropout_key kdec = kenc;
    kdec.site = 1;

    const float *xe = mdl_embed(m, m->i_enc_emb, m->xa, src, TB);
    rnn_stack_forward(&m->enc, T, B, xe, src, NULL, NULL, NULL, m->st_h, m->st_c, &kenc);
    source_lengths(m->svalid, src, T, B);
    int rc = decoder_forward(m, T, B, Td, bs, din, N, &kdec);
    if (rc != MODEL_OK) return rc;
    const float *ytop = m->dec.y[m->cfg.layers - 1]; /* (N, H): the live positions */
    dense_forward(m->logits, ytop, param_data(pt, m->i_dense_w), param_data(pt, m->i_dense_b),
                  (int)N, H, V, m->dws, m->dws_n);
    *loss_sum = model_train_xent(m, m->logits, tgt, (int)N, V, tokens); /* smoothing too */
    memset(m->dtop, 0, N * H * sizeof(float));
    dense_backward(m->dtop, param_grad(pt, m->i_dense_w), param_grad(pt, m->i_dense_b), m->logits,
                   ytop, param_data(pt, m->i_dense_w), (int)N, H, V, m->dws != NULL);
    mdl_grad_ready(m, m->i_dense_w, 2);
    decoder_backward(m, T, B, Td, bs, din, N);
    int U = 0;
    const int32_t *uid = rnn_stack_input_ids(&m->enc, &U);
    memset(m->dxa, 0, (size_t)U * E * sizeof(float));
    rnn_stack_backward(&m->enc, T, B, xe, src, NULL, m->dkeys, m->dst_h, m->dst_c, NULL, m->dxa,
                       NULL, NULL, NULL);
    embedding_backward(param_grad(pt, m->i_enc_emb), m->dxa, uid, U, E);
    mdl_grad_ready(m, m->i_enc_emb, 1);
    return MODEL_OK;
}

/* Evaluation: the padded layout, all T decoder steps of every row. */
int attn_step_eval(model *m, const model_batch *b, double *loss_sum, long *tokens)
{
    const int T = b->T, B = b->B, H = m->cfg.hidden, V = m->cfg.tgt_vocab;
    const size_t TB = (size_t)T * B;
    int32_t *src = m->ids_a, *din = m->ids_b, *tgt = m->ids_c;
    param_table *pt = &m->pt;
    mdl_time_major(src, b->src, B, T);
    for (int r = 0; r < B; r++) {
        const int valid = b->tgt_valid ? b->tgt_valid[r] : T;
        for (int t = 0; t < T; t++) {
            din[(size_t)t * B + r] = t == 0 ? MODEL_BOS : b->tgt[(size_t)r * T + t - 1];
            tgt[(size_t)t * B + r] = t < valid ? b->tgt[(size_t)r * T + t] : -1;
        }
    }
    for (int t = 0; t < T; t++) m->all_rows[t] = B;
    const float *xe = mdl_embed(m, m->i_enc_emb, m->xa, src, TB);
    rnn_stack_forward(&m->enc, T, B, xe, src, NULL, NULL, NULL, m->st_h, m->st_c, NULL);
    source_lengths(m->svalid, src, T, B);
    int rc = decoder_forward(m, T, B, T, m->all_rows, din, TB, NULL);
    rnn_stack_set_packed(&m->dec, NULL);
    if (rc != MODEL_OK) return rc;
    dense_forward(m->logits, m->dec.y[m->cfg.layers - 1], param_data(pt, m->i_dense_w),
                  param_data(pt, m->i_dense_b), (int)TB, H, V, m->dws, m->dws_n);
    *loss_sum = xent_forward(m->logits, tgt, (int)TB, V, tokens);
    return MODEL_OK;
}

/* ---------------------------------------------------------------- decoding */

void attn_decode_begin(model *m, const int32_t *src_tm, int B, int T, int k)
{
    const int H = m->cfg.hidden, R = B * k;
    const float *y = m->enc.y[m->cfg.layers - 1]; /* (T, B, H) */
    source_lengths(m->svalid, src_tm, T, B);
    /* sentence b's keys at rows b·k … b·k + k − 1 (from the back: svalid in place) */
    for (int r = R - 1; r >= 0; r--) m->svalid[r] = m->svalid[r / k];
    for (int s = 0; s < T; s++)
        for (int r = 0; r < R; r++)
            memcpy(m->keys + ((size_t)s * R + r) * H, y + ((size_t)s * B + r / k) * H,
                   (size_t)H * sizeof(float));
    attn_begin(&m->attn, T, R, m->keys, m->svalid);
}

void attn_decode_step(model *m, const int32_t *tok, int R, const float *h, const float *c,
                      float *h2, float *c2)
{
    const int H = m->cfg.hidden, L = m->cfg.layers, W = H + m->cfg.embed;
    /* the query: the top layer's state before the step */
    attn_forward(&m->attn, 0, R, h + (size_t)(L - 1) * R * H, H, m->ax, W, NULL, 0);
    embed_inputs(m, tok, (size_t)R);
    rnn_stack_forward(&m->dec, 1, R, m->ax, NULL, NULL, h, c, h2, c2, NULL);
    dense_forward(m->logits, m->dec.y[L - 1], param_data(&m->pt, m->i_dense_w),
                  param_data(&m->pt, m->i_dense_b), R, H, m->cfg.tgt_vocab, m->dws, m->dws_n);
}

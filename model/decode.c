/* Decoding with the translation model (greedy, beam search; with or
 * without attention) and generation with the language model. Shapes use the
 * legend of model.h. */
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- decoding */

static int argmax(const float *z, int V)
{
    int best = 0;
    for (int v = 1; v < V; v++)
        if (z[v] > z[best]) best = v;
    return best;
}

/* One decoding step for R rows: tokens tok, state (h, c) → (h2, c2), the
 * logits in m->logits (R, V); the context is m->ctx. */
static void decode_step(model *m, const int32_t *tok, int R, const float *h, const float *c,
                        float *h2, float *c2)
{
    if (m->cfg.attention) {
        attn_decode_step(m, tok, R, h, c, h2, c2);
        return;
    }
    const float *xd = mdl_embed(m, m->i_dec_emb, m->xb, tok, (size_t)R);
    rnn_stack_forward(&m->dec, 1, R, xd, tok, m->ctx, h, c, h2, c2, NULL);
    dense_forward(m->logits, m->dec.y[m->cfg.layers - 1], param_data(&m->pt, m->i_dense_w),
                  param_data(&m->pt, m->i_dense_b), R, m->cfg.hidden, m->cfg.tgt_vocab, m->dws,
                  m->dws_n);
}

int model_greedy(model *m, const int32_t *src, int B, int T, int bos, int eos, int max_len,
                 int32_t *out, int *len)
{
    const int H = m->cfg.hidden, L = m->cfg.layers, V = m->cfg.tgt_vocab;
    if (m->cfg.task != MODEL_TRANSLATE || B < 1 || B > m->cfg.max_batch || T < 1 ||
        T > m->cfg.num_steps || max_len < 1)
        return MODEL_EINVAL;
    int32_t *ids = m->ids_a, *tok = m->ids_b;
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (src[i] < 0 || src[i] >= m->cfg.src_vocab) return MODEL_EINVAL;
    if (bos < 0 || bos >= V) return MODEL_EINVAL;
    mdl_time_major(ids, src, B, T);
    const float *xe = mdl_embed(m, m->i_enc_emb, m->xa, ids, (size_t)T * B);
    float *h = m->st_h, *c = m->st_c, *h2 = m->st2_h, *c2 = m->st2_c;
    rnn_stack_forward(&m->enc, T, B, xe, ids, NULL, NULL, NULL, h, c, NULL);
    if (m->cfg.attention) attn_decode_begin(m, ids, B, T, 1);
    /* the context stays the encoder's, also while the decoder state moves on */
    memcpy(m->ctx, h + (size_t)(L - 1) * B * H, (size_t)B * H * sizeof(float));
    for (int r = 0; r < B; r++) tok[r] = bos, len[r] = 0, m->done[r] = 0;
    int alive = B;
    for (int s = 0; s < max_len && alive > 0; s++) {
        decode_step(m, tok, B, h, c, h2, c2);
        for (int r = 0; r < B; r++) {
            int y = argmax(m->logits + (size_t)r * V, V);
            tok[r] = y;
            if (m->done[r]) continue;
            if (m->rec) /* output token s of row r (<eos> too) */
                memcpy(m->rec + ((size_t)r * max_len + s) * T, attn_weights(&m->attn, (size_t)r),
                       (size_t)T * sizeof(float));
            if (y == eos) {
                m->done[r] = 1;
                alive--;
            } else {
                out[(size_t)r * max_len + len[r]++] = y;
            }
        }
        float *sw = h;
        h = h2, h2 = sw;
        sw = c, c = c2, c2 = sw;
    }
    return MODEL_OK;
}

/* One candidate extension during beam search. */
typedef struct beam_cand {
    double score; /* summed log probability */
    int parent;   /* beam row it extends */
    int token;
} beam_cand;

/* Keeps the k best of the candidates offered (best first). */
static void beam_offer(beam_cand *top, int *n, int k, double score, int parent, int token)
{
    if (*n == k && score <= top[k - 1].score) return;
    int i = *n < k ? (*n)++ : k - 1;
    while (i > 0 && top[i - 1].score < score) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = (beam_cand){score, parent, token};
}

/* A beam search in progress (model_beam): per call, histories (two
 * generations), scores, candidates, the best finished hypothesis of each
 * sentence. Beam j of sentence b is decoder row b*k + j. */
typedef struct beam_search {
    int B, k, R, max_len, eos;
    float alpha;
    int32_t *hist, *h_old, *h_new, *best_tok;
    /* model_record_attention: the weights of every output token of each
     * beam (R, max_len, S), two generations, and of each best (B, max_len, S) */
    int S;
    float *w_old, *w_new, *best_w;
    double *score, *best;
    int *live, *best_len, *parent;
    int *nlive; /* a sentence's beam width: k less its finished hypotheses (0: done) */
    beam_cand *top;
} beam_search;

static void beam_free(beam_search *bs)
{
    free(bs->hist), free(bs->best_tok), free(bs->score), free(bs->best), free(bs->live);
    free(bs->best_len), free(bs->nlive), free(bs->parent), free(bs->top);
    free(bs->w_old), free(bs->w_new), free(bs->best_w);
}

static int beam_alloc(beam_search *bs)
{
    const size_t R = (size_t)bs->R, B = (size_t)bs->B;
    bs->hist = malloc(2 * R * bs->max_len * sizeof(int32_t));
    bs->best_tok = malloc(B * bs->max_len * sizeof(int32_t));
    bs->score = malloc(R * sizeof(double)), bs->best = malloc(B * sizeof(double));
    bs->live = malloc(R * sizeof(int)), bs->best_len = malloc(B * sizeof(int));
    bs->nlive = malloc(B * sizeof(int)), bs->parent = malloc(R * sizeof(int));
    bs->top = malloc((size_t)bs->k * sizeof(beam_cand));
    const size_t rows = (size_t)bs->max_len * bs->S;
    bs->w_old = bs->S ? malloc(R * rows * sizeof(float)) : NULL;
    bs->w_new = bs->S ? malloc(R * rows * sizeof(float)) : NULL;
    bs->best_w = bs->S ? calloc(B * rows, sizeof(float)) : NULL;
    if (bs->hist && bs->best_tok && bs->score && bs->best && bs->live && bs->best_len &&
        bs->nlive && bs->parent && bs->top && (!bs->S || (bs->w_old && bs->w_new && bs->best_w))) {
        bs->h_old = bs->hist, bs->h_new = bs->hist + R * bs->max_len;
        return MODEL_OK;
    }
    beam_free(bs);
    return MODEL_ENOMEM;
}

/* Beam row r's weights history (max_len rows of S) in generation g. */
static float *beam_w(const beam_search *bs, float *g, int r)
{
    return g + (size_t)r * bs->max_len * bs->S;
}

/* Sentence b's hypothesis of length len (its tokens at from) competes for
 * its best with its score normalised by norm_len^alpha. Recording: its
 * weights are the first `len` rows of parent row p's history, and `last`
 * (S) for its <eos> when not NULL. */
static void beam_consider(beam_search *bs, int b, double score, int norm_len, const int32_t *from,
                          int len, int p, const float *last)
{
    const double norm = score / pow((double)norm_len, (double)bs->alpha);
    if (!(norm > bs->best[b])) return; /* (a NaN score never wins) */
    bs->best[b] = norm;
    bs->best_len[b] = len;
    memcpy(bs->best_tok + (size_t)b * bs->max_len, from, (size_t)len * sizeof(int32_t));
    if (!bs->S) return;
    float *w = beam_w(bs, bs->best_w, b);
    memcpy(w, beam_w(bs, bs->w_old, p), (size_t)len * bs->S * sizeof(float));
    if (last) memcpy(w + (size_t)len * bs->S, last, (size_t)bs->S * sizeof(float));
}

/* Step s of sentence b: its live beams' extensions by log probability
 * (logits of the step just decoded), the best nlive[b] of which become its
 * beams; one that ends in <eos> is set aside as finished. */
static void beam_advance(model *m, beam_search *bs, int b, int s, int32_t *tok)
{
    const int k = bs->k, V = m->cfg.tgt_vocab, max_len = bs->max_len;
    int nt = 0;
    const int want = bs->nlive[b]; /* finished hypotheses shrink the beam */
    for (int j = 0; j < k; j++) {
        const int r = b * k + j;
        if (!bs->live[r]) continue;
        const float *z = m->logits + (size_t)r * V;
        const double lse = row_logsumexp(z, V);
        for (int v = 0; v < V; v++)
            beam_offer(bs->top, &nt, want, bs->score[r] + ((double)z[v] - lse), r, v);
    }
    /* the chosen extensions become this sentence's beams */
    int j = 0;
    for (int q = 0; q < nt; q++) {
        const beam_cand *cd = &bs->top[q];
        const int pl = s; /* parent's length */
        const int32_t *from = bs->h_old + (size_t)cd->parent * max_len;
        const float *wlast = bs->S ? attn_weights(&m->attn, (size_t)cd->parent) : NULL;
        if (cd->token == bs->eos) {
            beam_consider(bs, b, cd->score, pl + 1, from, pl, cd->parent, wlast);
            bs->nlive[b]--;
            continue;
        }
        const int r = b * k + j++;
        memcpy(bs->h_new + (size_t)r * max_len, from, (size_t)pl * sizeof(int32_t));
        bs->h_new[(size_t)r * max_len + pl] = cd->token;
        if (bs->S) {
            float *w = beam_w(bs, bs->w_new, r);
            memcpy(w, beam_w(bs, bs->w_old, cd->parent), (size_t)pl * bs->S * sizeof(float));
            memcpy(w + (size_t)pl * bs->S, wlast, (size_t)bs->S * sizeof(float));
        }
        bs->parent[r] = cd->parent; /* state to copy */
        bs->score[r] = cd->score;
        tok[r] = cd->token;
    }
    for (int q = j; q < k; q++) bs->live[b * k + q] = 0, bs->parent[b * k + q] = -1;
    for (int q = 0; q < j; q++) bs->live[b * k + q] = 1;
    if (j == 0) bs->nlive[b] = 0; /* every extension chosen ended */
}

/* Copies rows of (L, rows, H) states: dst row r from src row map[r] (rows
 * whose map is negative are left). */
static void copy_state_rows(const model *m, float *dh, float *dc, const float *sh, const float *sc,
                            int dst_rows, int src_rows, const int *map, int div)
{
    const int H = m->cfg.hidden, L = m->cfg.layers, lstm = m->cfg.cell == CELL_LSTM;
    for (int l = 0; l < L; l++)
        for (int r = 0; r < dst_rows; r++) {
            const int p = map ? map[r] : r / div;
            if (p < 0) continue;
            const size_t from = ((size_t)l * src_rows + p) * H, to = ((size_t)l * dst_rows + r) * H;
            memcpy(dh + to, sh + from, (size_t)H * sizeof(float));
            if (lstm) memcpy(dc + to, sc + from, (size_t)H * sizeof(float));
        }
}

int model_beam(model *m, const int32_t *src, int B, int T, int bos, int eos, int max_len, int k,
               float alpha, int32_t *out, int *len)
{
    const int H = m->cfg.hidden, L = m->cfg.layers, V = m->cfg.tgt_vocab;
    if (m->cfg.task != MODEL_TRANSLATE || B < 1 || k < 1 || (long)B * k > m->cfg.max_batch ||
        T < 1 || T > m->cfg.num_steps || max_len < 1 || bos < 0 || bos >= V || eos < 0 || eos >= V)
        return MODEL_EINVAL;
    for (size_t i = 0; i < (size_t)B * T; i++)
        if (src[i] < 0 || src[i] >= m->cfg.src_vocab) return MODEL_EINVAL;
    if (k == 1) return model_greedy(m, src, B, T, bos, eos, max_len, out, len);
    const int R = B * k;
    beam_search bs = {.B = B,
                      .k = k,
                      .R = R,
                      .max_len = max_len,
                      .eos = eos,
                      .alpha = alpha,
                      .S = m->rec ? T : 0};
    if (beam_alloc(&bs) != MODEL_OK) return MODEL_ENOMEM;
    int32_t *ids = m->ids_a, *tok = m->ids_b;
    mdl_time_major(ids, src, B, T);
    const float *xe = mdl_embed(m, m->i_enc_emb, m->xa, ids, (size_t)T * B);
    float *h = m->st_h, *c = m->st_c, *h2 = m->st2_h, *c2 = m->st2_c;
    rnn_stack_forward(&m->enc, T, B, xe, ids, NULL, NULL, NULL, h2, c2, NULL);
    if (m->cfg.attention) attn_decode_begin(m, ids, B, T, k);
    /* every beam of a sentence starts from its encoder state and context */
    copy_state_rows(m, h, c, h2, c2, R, B, NULL, k);
    for (int r = 0; r < R; r++)
        memcpy(m->ctx + (size_t)r * H, h2 + ((size_t)(L - 1) * B + r / k) * H,
               (size_t)H * sizeof(float));
    for (int r = 0; r < R; r++) {
        tok[r] = bos;
        bs.score[r] = 0.0;
        bs.live[r] = r % k == 0; /* identical beams: only the first starts */
    }
    for (int b = 0; b < B; b++) bs.best[b] = -INFINITY, bs.best_len[b] = 0, bs.nlive[b] = k;
    int alive = B;
    for (int s = 0; s < max_len && alive > 0; s++) {
        decode_step(m, tok, R, h, c, h2, c2);
        for (int b = 0; b < B; b++) {
            if (bs.nlive[b] == 0) continue;
            beam_advance(m, &bs, b, s, tok);
            if (bs.nlive[b] == 0) alive--;
        }
        /* reorder the new states by parent row (h2, c2 → h, c) */
        copy_state_rows(m, h, c, h2, c2, R, R, bs.parent, 1);
        int32_t *sw = bs.h_old;
        bs.h_old = bs.h_new, bs.h_new = sw;
        float *ws = bs.w_old;
        bs.w_old = bs.w_new, bs.w_new = ws;
    }
    /* hypotheses still live at max_len compete too, with their length */
    for (int b = 0; b < B; b++) {
        for (int j = 0; j < k; j++) {
            const int r = b * k + j;
            if (!bs.live[r] || bs.nlive[b] == 0) continue;
            beam_consider(&bs, b, bs.score[r], max_len, bs.h_old + (size_t)r * max_len, max_len, r,
                          NULL);
        }
        len[b] = bs.best_len[b];
        memcpy(out + (size_t)b * max_len, bs.best_tok + (size_t)b * max_len,
               (size_t)bs.best_len[b] * sizeof(int32_t));
        if (bs.S) /* its tokens' rows, and its <eos>'s when it ended */
            memcpy(m->rec + (size_t)b * max_len * T, beam_w(&bs, bs.best_w, b),
                   (size_t)(len[b] + (len[b] < max_len)) * T * sizeof(float));
    }
    beam_free(&bs);
    return MODEL_OK;
}

int model_lm_generate(model *m, const int32_t *prefix, int n, int len, float temperature,
                      uint64_t seed, int32_t *out)
{
    const int H = m->cfg.hidden, L = m->cfg.layers, V = m->cfg.tgt_vocab;
    if (m->cfg.task != MODEL_LM || n < 1 || len < 0) return MODEL_EINVAL;
    for (int i = 0; i < n; i++)
        if (prefix[i] < 0 || prefix[i] >= V) return MODEL_EINVAL;
    param_table *pt = &m->pt;
    float *h = m->st2_h, *c = m->st2_c;
    memset(h, 0, (size_t)L * H * sizeof(float));
    memset(c, 0, (size_t)L * H * sizeof(float));
    int32_t tok;
    const int lstm = m->cfg.cell == CELL_LSTM;
    for (int s = 0; s < n + len - 1; s++) {
        tok = s < n ? prefix[s] : out[s - n];
        const float *xe = mdl_embed(m, m->i_emb, m->xa, &tok, 1);
        rnn_stack_forward(&m->rnn, 1, 1, xe, &tok, NULL, h, lstm ? c : NULL, m->st_h,
                          lstm ? m->st_c : NULL, NULL);
        memcpy(h, m->st_h, (size_t)L * H * sizeof(float));
        if (lstm) memcpy(c, m->st_c, (size_t)L * H * sizeof(float));
        if (s < n - 1) continue;
        dense_forward(m->logits, m->rnn.y[L - 1], param_data(pt, m->i_dense_w),
                      param_data(pt, m->i_dense_b), 1, H, V, m->dws, m->dws_n);
        int y;
        if (temperature <= 0.0f) {
            y = argmax(m->logits, V);
        } else {
            /* sample from softmax(z / temperature) */
            float mx = m->logits[0];
            for (int v = 1; v < V; v++) mx = m->logits[v] > mx ? m->logits[v] : mx;
            double sum = 0.0;
            for (int v = 0; v < V; v++) sum += exp((m->logits[v] - mx) / temperature);
            double u = rng_uniform(seed, RNG_SAMPLE, (uint64_t)s, 0, 0) * sum, acc = 0.0;
            y = V - 1;
            for (int v = 0; v < V; v++) {
                acc += exp((m->logits[v] - mx) / temperature);
                if (acc > u) {
                    y = v;
                    break;
                }
            }
        }
        out[s - n + 1] = y;
    }
    return MODEL_OK;
}

int model_record_attention(model *m, float *buf)
{
    if (buf && !m->cfg.attention) return MODEL_EINVAL;
    m->rec = buf;
    return MODEL_OK;
}

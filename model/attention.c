/* Additive (Bahdanau) attention: d2l's AdditiveAttention (num_hiddens H, no
 * biases), one decoder step's queries at a time. Shapes use the legend of
 * model.h, and here S = source steps, K = key / value size, n = a step's
 * query rows.
 *
 *   kp (S, B, H)   = keys · W_k^T                 once per batch (attn_begin)
 *   qp (n, H)      = q · W_q^T
 *   f_s (H)        = tanh(qp_b + kp_{s,b})        per row b and source s
 *   score_s        = w_v · f_s
 *   w (S)          = softmax over s < valid[b]    (0 past it)
 *   wd (S)         = w ⊙ dropout mask             (training)
 *   ctx_b (K)      = Σ_s wd_s · keys_{s,b}        (values = keys)
 *
 * The features f are not kept (S·H floats per query row): the backward
 * computes them again, the same bits. */
#include "model.h"

#include "blas_private.h"
#include "vmath.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int attn_init(attn_layer *a, int H, int K, int Tmax, int Bmax, float dropout)
{
    memset(a, 0, sizeof *a);
    if (H < 1 || K < 1 || Tmax < 1 || Bmax < 1 || dropout < 0.0f || dropout >= 1.0f)
        return MODEL_EINVAL;
    a->H = H, a->K = K, a->Tmax = Tmax, a->Bmax = Bmax, a->dropout = dropout;
    const size_t TB = (size_t)Tmax * Bmax;
    const size_t n = 2 * TB * H      /* kp, dkp */
                     + 2 * TB * H    /* qp, dqp */
                     + 2 * TB * Tmax /* w, mask */
                     + (size_t)Tmax * H + 2 * (size_t)Tmax;
    a->mem = calloc(n, sizeof(float));
    a->valid = calloc((size_t)Bmax, sizeof(int32_t));
    if (!a->mem || !a->valid) {
        attn_free(a);
        return MODEL_ENOMEM;
    }
    float *p = a->mem;
    a->kp = p, p += TB * H;
    a->dkp = p, p += TB * H;
    a->qp = p, p += TB * H;
    a->dqp = p, p += TB * H;
    a->w = p, p += TB * Tmax;
    a->mask = p, p += TB * Tmax;
    a->f = p, p += (size_t)Tmax * H;
    a->ds = p, p += Tmax;
    a->dwd = p;
    return MODEL_OK;
}

void attn_free(attn_layer *a)
{
    free(a->mem);
    free(a->valid);
    memset(a, 0, sizeof *a);
}

void attn_bind(attn_layer *a, const float *W_q, const float *W_k, const float *w_v, float *dW_q,
               float *dW_k, float *dw_v)
{
    a->W_q = W_q, a->W_k = W_k, a->w_v = w_v;
    a->dW_q = dW_q, a->dW_k = dW_k, a->dw_v = dw_v;
}

void attn_begin(attn_layer *a, int S, int B, const float *keys, const int32_t *valid)
{
    a->S = S, a->B = B, a->keys = keys;
    for (int b = 0; b < B; b++) a->valid[b] = valid[b] < 0 ? 0 : valid[b] > S ? S : valid[b];
    /* kp (S·B, H) = keys (S·B, K) · W_k^T */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S * B, a->H, a->K, 1.0f, keys, a->K,
                a->W_k, a->K, 0.0f, a->kp, a->H);
}

const float *attn_weights(const attn_layer *a, size_t row)
{
    return a->w + row * a->Tmax;
}

/* w_v · tanh(qp + kp), the features f (H) kept; the tanh loop vectorises
 * (vmath.h: the same bits at every vector width), the dot product runs in
 * order. */
VM_CLONES static float score(const float *restrict w_v, const float *restrict qp,
                             const float *restrict kp, float *restrict f, int H)
{
    for (int j = 0; j < H; j++) f[j] = vm_tanhf(qp[j] + kp[j]);
    float s = 0.0f;
    for (int j = 0; j < H; j++) s += w_v[j] * f[j];
    return s;
}

void attn_forward(attn_layer *a, size_t row0, int n, const float *q, int ldq, float *ctx, int ldc,
                  const rnn_dropout_key *drop, int t)
{
    const int H = a->H, K = a->K, S = a->S, B = a->B;
    if (n == 0) return;
    float *qp = a->qp + row0 * H;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, H, H, 1.0f, q, ldq, a->W_q, H, 0.0f, qp,
                H);
    a->dropped = drop != NULL && a->dropout > 0.0f;
    const float scale = 1.0f / (1.0f - a->dropout);
    for (int b = 0; b < n; b++) {
        float *w = a->w + (row0 + (size_t)b) * a->Tmax;
        const int v = a->valid[b];
        if (v == 0) {
            /* every score masked alike: the book's softmax is uniform */
            for (int s = 0; s < S; s++) w[s] = 1.0f / (float)S;
        } else {
            float mx = -INFINITY;
            for (int s = 0; s < v; s++) {
                w[s] = score(a->w_v, qp + (size_t)b * H, a->kp + ((size_t)s * B + b) * H, a->f, H);
                mx = w[s] > mx ? w[s] : mx;
            }
            double sum = 0.0;
            for (int s = 0; s < v; s++) sum += (double)(w[s] = expf(w[s] - mx));
            const float inv = (float)(1.0 / sum);
            for (int s = 0; s < v; s++) w[s] *= inv;
            for (int s = v; s < S; s++) w[s] = 0.0f;
        }
        float *mask = a->mask + (row0 + (size_t)b) * a->Tmax;
        if (a->dropped) {
            const uint64_t site = ((uint64_t)drop->site * 64 + 63) * (uint64_t)a->Tmax + t;
            const uint64_t key =
                rng_u64(drop->seed, RNG_DROPOUT, drop->step, (uint64_t)drop->example[b], site);
            for (int s = 0; s < S; s++)
                mask[s] = rng_stream_uniform(key, (uint64_t)s) < a->dropout ? 0.0f : scale;
        }
        /* ctx_b (K) = Σ_s wd_s keys_{s,b} */
        float *c = ctx + (size_t)b * ldc;
        memset(c, 0, (size_t)K * sizeof(float));
        for (int s = 0; s < S; s++) {
            const float ws = a->dropped ? w[s] * mask[s] : w[s];
            if (ws == 0.0f) continue;
            const float *k = a->keys + ((size_t)s * B + b) * K;
            for (int j = 0; j < K; j++) c[j] += ws * k[j];
        }
    }
}

void attn_backward_begin(attn_layer *a)
{
    memset(a->dkp, 0, (size_t)a->S * a->B * a->H * sizeof(float));
}

void attn_backward(attn_layer *a, size_t row0, int n, const float *q, int ldq, const float *dctx,
                   int lddc, float *dq, int lddq, float *dkeys)
{
    const int H = a->H, K = a->K, S = a->S, B = a->B;
    if (n == 0) return;
    const float *qp = a->qp + row0 * H;
    float *dqp = a->dqp;
    memset(dqp, 0, (size_t)n * H * sizeof(float));
    for (int b = 0; b < n; b++) {
        const float *w = a->w + (row0 + (size_t)b) * a->Tmax;
        const float *mask = a->mask + (row0 + (size_t)b) * a->Tmax;
        const float *dc = dctx + (size_t)b * lddc;
        /* through the weighted sum: d wd_s = dctx · v_s, d v_s += wd_s dctx */
        for (int s = 0; s < S; s++) {
            const size_t kr = ((size_t)s * B + b) * K;
            const float *k = a->keys + kr;
            float d = 0.0f;
            for (int j = 0; j < K; j++) d += dc[j] * k[j];
            const float m = a->dropped ? mask[s] : 1.0f;
            a->dwd[s] = d * m; /* d w_s */
            const float ws = w[s] * m;
            if (ws != 0.0f)
                for (int j = 0; j < K; j++) dkeys[kr + j] += ws * dc[j];
        }
        const int v = a->valid[b];
        if (v == 0) continue; /* constant scores: no gradient reaches them */
        /* softmax: d score_s = w_s (d w_s − Σ_r w_r d w_r) */
        double dot = 0.0;
        for (int s = 0; s < v; s++) dot += (double)w[s] * a->dwd[s];
        float *dq_b = dqp + (size_t)b * H;
        for (int s = 0; s < v; s++) {
            const float dsc = w[s] * (a->dwd[s] - (float)dot);
            float *dk = a->dkp + ((size_t)s * B + b) * H;
            score(a->w_v, qp + (size_t)b * H, a->kp + ((size_t)s * B + b) * H, a->f, H);
            for (int j = 0; j < H; j++) {
                const float f = a->f[j];
                a->dw_v[j] += dsc * f;
                const float g = dsc * a->w_v[j] * (1.0f - f * f);
                dq_b[j] += g;
                dk[j] += g;
            }
        }
    }
    /* dW_q (H, H) += dqp^T (H, n) · q (n, H) ; dq (n, H) += dqp · W_q */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, H, n, 1.0f, dqp, H, q, ldq, 1.0f,
                a->dW_q, H);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, H, H, 1.0f, dqp, H, a->W_q, H, 1.0f,
                dq, lddq);
}

void attn_backward_end(attn_layer *a, float *dkeys)
{
    const int H = a->H, K = a->K, SB = a->S * a->B;
    /* dW_k (H, K) += dkp^T (H, S·B) · keys (S·B, K) ; dkeys += dkp · W_k */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, H, K, SB, 1.0f, a->dkp, H, a->keys, K,
                1.0f, a->dW_k, K);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, SB, K, H, 1.0f, a->dkp, H, a->W_k, K,
                1.0f, dkeys, K);
}

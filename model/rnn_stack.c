/* Stacks of recurrent layers (rnn.c has one direction of one layer):
 * dropout between layers and an optional reverse direction per layer,
 * whose two halves are concatenated (OpenNMT's convention). Shapes use the
 * legend of model.h. */
#include "model.h"

#include "blas_private.h"
#include "vmath.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ================================================================ stacks */

int rnn_stack_init(rnn_stack *s, cell_kind cell, int L, int bidirectional, int I, int C, int H,
                   float dropout, int onehot, int Tmax, int Bmax)
{
    memset(s, 0, sizeof *s);
    const int dirs = bidirectional ? 2 : 1;
    if (L <= 0 || H <= 0 || H % dirs != 0 || dropout < 0.0f || dropout >= 1.0f) return MODEL_EINVAL;
    s->cell = cell, s->L = L, s->dirs = dirs, s->I = I, s->C = C, s->H = H, s->Hd = H / dirs;
    s->onehot = onehot, s->Tmax = Tmax, s->Bmax = Bmax, s->dropout = dropout;
    s->d = calloc((size_t)L * dirs, sizeof *s->d);
    s->y = calloc((size_t)L, sizeof(float *));
    s->xin = calloc((size_t)L, sizeof(float *));
    s->mask = calloc((size_t)L, sizeof(float *));
    s->dy = calloc((size_t)L, sizeof(float *));
    s->dxin = calloc((size_t)L, sizeof(float *));
    if (!s->d || !s->y || !s->xin || !s->mask || !s->dy || !s->dxin) goto err;
    for (int l = 0; l < L; l++)
        for (int k = 0; k < dirs; k++) {
            int rc = rnn_dir_init(&s->d[l * dirs + k], cell, l == 0 ? I : H, l == 0 ? C : 0, s->Hd,
                                  k == 1, l == 0 && onehot, Tmax, Bmax);
            if (rc != MODEL_OK) goto err;
        }
    /* per layer: dy; for layers >= 1 also xin, mask, dxin. Two directions
     * also need y (one direction's output is a view of its states) and 4
     * (B, H) scratch blocks for packing a direction's state. */
    const size_t TBH = (size_t)Tmax * Bmax * H;
    const int two = dirs > 1;
    size_t n =
        (size_t)L * (1 + two) * TBH + (size_t)(L - 1) * 3 * TBH + (two ? 4 * (size_t)Bmax * H : 0);
    s->mem = calloc(n, sizeof(float));
    if (!s->mem) goto err;
    float *p = s->mem;
    for (int l = 0; l < L; l++) {
        if (two) s->y[l] = p, p += TBH;
        s->dy[l] = p, p += TBH;
        if (l > 0) {
            s->xin[l] = p, p += TBH;
            s->mask[l] = p, p += TBH;
            s->dxin[l] = p, p += TBH;
        }
    }
    s->scratch = two ? p : NULL;
    return MODEL_OK;
err:
    rnn_stack_free(s);
    return MODEL_ENOMEM;
}

void rnn_stack_free(rnn_stack *s)
{
    if (s->d)
        for (int i = 0; i < s->L * s->dirs; i++) rnn_dir_free(&s->d[i]);
    free(s->d);
    free(s->y);
    free(s->xin);
    free(s->mask);
    free(s->dy);
    free(s->dxin);
    free(s->mem);
    memset(s, 0, sizeof *s);
}

int rnn_stack_set_packed(rnn_stack *s, const int *bs)
{
    if (bs && s->dirs != 1) return MODEL_EINVAL;
    for (int i = 0; i < s->L * s->dirs; i++) s->d[i].bs = bs;
    return MODEL_OK;
}

int rnn_stack_share_inputs(rnn_stack *s, int vocab)
{
    for (int k = 0; k < s->dirs; k++) {
        int rc = rnn_dir_share_inputs(&s->d[k], vocab);
        if (rc != MODEL_OK) return rc;
    }
    return MODEL_OK;
}

const int32_t *rnn_stack_input_ids(const rnn_stack *s, int *U)
{
    *U = s->d[0].U;
    return s->d[0].uniq;
}

/* One row's inverted-dropout mask (0 or 1/(1−p), unit j from draw j of the
 * row's key) and the masked input; compiled per instruction set. */
VM_CLONES static void dropout_row(int H, uint64_t key, float p, float scale,
                                  const float *restrict y, float *restrict mask,
                                  float *restrict out)
{
    for (int j = 0; j < H; j++) {
        const float u = rng_stream_uniform(key, (uint64_t)j);
        mask[j] = u < p ? 0.0f : scale;
        out[j] = y[j] * mask[j];
    }
}

/* scratch (B, Hd) block k (two directions only) */
static float *stack_scratch(const rnn_stack *s, int k)
{
    return s->scratch + (size_t)k * s->Bmax * s->H;
}

int rnn_stack_register(const rnn_stack *s, param_table *pt, const char *prefix)
{
    const int GH = cell_gates(s->cell) * s->Hd;
    int first = -1;
    char name[PARAM_NAME_MAX];
    for (int l = 0; l < s->L; l++)
        for (int k = 0; k < s->dirs; k++) {
            const rnn_dir *d = &s->d[l * s->dirs + k];
            const char *sfx = k ? "_reverse" : "";
            int idx;
            snprintf(name, sizeof name, "%s.weight_ih_l%d%s", prefix, l, sfx);
            idx = param_table_add(pt, name, 2, GH, d->I + d->C);
            if (idx < 0) return -1;
            if (first < 0) first = idx;
            snprintf(name, sizeof name, "%s.weight_hh_l%d%s", prefix, l, sfx);
            if (param_table_add(pt, name, 2, GH, s->Hd) < 0) return -1;
            snprintf(name, sizeof name, "%s.bias_ih_l%d%s", prefix, l, sfx);
            if (param_table_add(pt, name, 1, GH, 0) < 0) return -1;
            snprintf(name, sizeof name, "%s.bias_hh_l%d%s", prefix, l, sfx);
            if (param_table_add(pt, name, 1, GH, 0) < 0) return -1;
        }
    return first;
}

void rnn_stack_bind(rnn_stack *s, const param_table *pt, int first)
{
    s->first = first;
    for (int i = 0; i < s->L * s->dirs; i++) {
        int k = first + 4 * i;
        rnn_dir_bind(&s->d[i], param_data(pt, k), param_data(pt, k + 1), param_data(pt, k + 2),
                     param_data(pt, k + 3), param_grad(pt, k), param_grad(pt, k + 1),
                     param_grad(pt, k + 2), param_grad(pt, k + 3));
    }
}

/* Copies columns [off, off+w) of a (B, ld) matrix into a packed (B, w) one, or back
 * (adding when `add`). */
static void pack_cols(float *dst, const float *src, int B, int ld, int off, int w)
{
    for (int b = 0; b < B; b++)
        memcpy(dst + (size_t)b * w, src + (size_t)b * ld + off, (size_t)w * sizeof(float));
}
static void unpack_cols(float *dst, const float *src, int B, int ld, int off, int w, int add)
{
    for (int b = 0; b < B; b++) {
        float *d = dst + (size_t)b * ld + off;
        const float *s = src + (size_t)b * w;
        if (add)
            for (int j = 0; j < w; j++) d[j] += s[j];
        else
            memcpy(d, s, (size_t)w * sizeof(float));
    }
}

/* Direction k's slice of a (B, H) state: direct for one direction, packed into
 * scratch block `slot` otherwise. */
static const float *dir_state_in(const rnn_stack *s, const float *st, int B, int k, int slot)
{
    if (!st) return NULL;
    if (s->dirs == 1) return st;
    float *p = stack_scratch(s, slot);
    pack_cols(p, st, B, s->H, k * s->Hd, s->Hd);
    return p;
}

void rnn_stack_forward(rnn_stack *s, int T, int B, const float *x, const int32_t *ids,
                       const float *ctx, const float *h0, const float *c0, float *hT, float *cT,
                       const rnn_dropout_key *drop)
{
    const int H = s->H, Hd = s->Hd;
    const size_t BH = (size_t)B * H;
    s->use_dropout = drop != NULL && s->dropout > 0.0f;
    if (B == 0) return;
    for (int l = 0; l < s->L; l++) {
        const float *in = x;
        int ldx = s->I;
        if (l > 0) {
            ldx = H;
            if (s->use_dropout) {
                /* inverted dropout on the previous layer's output, keyed by example */
                const float keep = 1.0f - s->dropout, scale = 1.0f / keep;
                float *m = s->mask[l], *xi = s->xin[l];
                const float *yp = s->y[l - 1];
                const rnn_dir *d0 = &s->d[0]; /* its forward laid out the steps' rows */
                for (int t = 0; t < T; t++)
                    for (int b = 0; b < d0->n[t]; b++) {
                        size_t row = (d0->off[t] + b) * H;
                        uint64_t site = ((uint64_t)drop->site * 64 + (uint64_t)l) * s->Tmax + t;
                        uint64_t key = rng_u64(drop->seed, RNG_DROPOUT, drop->step,
                                               (uint64_t)drop->example[b], site);
                        dropout_row(H, key, s->dropout, scale, yp + row, m + row, xi + row);
                    }
                in = xi;
            } else {
                in = s->y[l - 1];
            }
        }
        for (int k = 0; k < s->dirs; k++) {
            rnn_dir *d = &s->d[l * s->dirs + k];
            const float *h0k = dir_state_in(s, h0 ? h0 + l * BH : NULL, B, k, 0);
            const float *c0k = dir_state_in(s, c0 ? c0 + l * BH : NULL, B, k, 1);
            float *hTk = hT ? (s->dirs == 1 ? hT + l * BH : stack_scratch(s, 2)) : NULL;
            float *cTk = cT ? (s->dirs == 1 ? cT + l * BH : stack_scratch(s, 3)) : NULL;
            /* one direction: its states after each step already are the
             * layer's output, rows in step order (packed or not): no copy */
            if (s->dirs == 1) s->y[l] = d->hs + BH;
            rnn_dir_forward(d, T, B, in, ldx, l == 0 ? ids : NULL, l == 0 ? ctx : NULL, h0k, c0k,
                            s->dirs == 1 ? NULL : s->y[l] + k * Hd, H, hTk, cTk);
            if (s->dirs > 1) {
                if (hT) unpack_cols(hT + l * BH, hTk, B, H, k * Hd, Hd, 0);
                if (cT && s->cell == CELL_LSTM) unpack_cols(cT + l * BH, cTk, B, H, k * Hd, Hd, 0);
            }
        }
    }
}

void rnn_stack_backward(rnn_stack *s, int T, int B, const float *x, const int32_t *ids,
                        const float *ctx, const float *dy_top, const float *dhT, const float *dcT,
                        const float *carry, float *dx, float *dctx, float *dh0, float *dc0)
{
    const int H = s->H, Hd = s->Hd, L = s->L;
    const size_t BH = (size_t)B * H, TBH = s->d[0].off[T] * H; /* rows of the last forward */
    if (B == 0) return;
    const float *dyl = dy_top;
    for (int l = L - 1; l >= 0; l--) {
        const float *in = l == 0 ? x : (s->use_dropout ? s->xin[l] : s->y[l - 1]);
        const int ldx = l == 0 ? s->I : H;
        float *dxl = NULL;
        if (l > 0) {
            dxl = s->dxin[l];
            memset(dxl, 0, TBH * sizeof(float));
        } else {
            dxl = dx;
        }
        for (int k = 0; k < s->dirs; k++) {
            rnn_dir *d = &s->d[l * s->dirs + k];
            const float *dhTk = dir_state_in(s, dhT ? dhT + l * BH : NULL, B, k, 0);
            const float *dcTk = dir_state_in(s, dcT ? dcT + l * BH : NULL, B, k, 1);
            float *dh0k = NULL, *dc0k = NULL;
            if (dh0) {
                dh0k = s->dirs == 1 ? dh0 + l * BH : stack_scratch(s, 2);
                if (s->dirs > 1) memset(dh0k, 0, (size_t)B * Hd * sizeof(float));
            }
            if (dc0 && s->cell == CELL_LSTM) {
                dc0k = s->dirs == 1 ? dc0 + l * BH : stack_scratch(s, 3);
                if (s->dirs > 1) memset(dc0k, 0, (size_t)B * Hd * sizeof(float));
            }
            rnn_dir_backward(d, T, B, in, ldx, l == 0 ? ids : NULL, l == 0 ? ctx : NULL,
                             dyl ? dyl + k * Hd : NULL, H, dhTk, dcTk, carry, dxl, ldx,
                             l == 0 ? dctx : NULL, dh0k, dc0k);
            if (s->dirs > 1) {
                if (dh0k) unpack_cols(dh0 + l * BH, dh0k, B, H, k * Hd, Hd, 1);
                if (dc0k) unpack_cols(dc0 + l * BH, dc0k, B, H, k * Hd, Hd, 1);
            }
        }
        /* this layer's weights are final: 4 tensors per direction */
        if (s->hook)
            s->hook(s->hook_ctx, s->first + 4 * l * s->dirs, s->first + 4 * (l + 1) * s->dirs);
        if (l > 0) {
            /* gradient of the previous layer's output: through the dropout mask */
            float *dyp = s->dy[l - 1];
            if (s->use_dropout) {
                const float *m = s->mask[l];
                for (size_t i = 0; i < TBH; i++) dyp[i] = dxl[i] * m[i];
            } else {
                memcpy(dyp, dxl, TBH * sizeof(float));
            }
            dyl = dyp;
        }
    }
}

/* ========================================================= step by step */

int rnn_stack_begin(rnn_stack *s, int T, int B, const float *h0, const float *c0,
                    const rnn_dropout_key *drop)
{
    const size_t BH = (size_t)B * s->H;
    if (s->dirs != 1) return MODEL_EINVAL;
    s->use_dropout = drop != NULL && s->dropout > 0.0f;
    s->key = drop;
    for (int l = 0; l < s->L; l++) {
        rnn_dir *d = &s->d[l];
        const int rc = rnn_dir_begin(d, T, B, h0 ? h0 + l * BH : NULL, c0 ? c0 + l * BH : NULL);
        if (rc != MODEL_OK) return rc;
        s->y[l] = d->hs + BH; /* as rnn_stack_forward: the states are the output */
    }
    return MODEL_OK;
}

void rnn_stack_step(rnn_stack *s, int t, int B, const float *x, int ldx)
{
    const int H = s->H;
    const rnn_dir *d0 = &s->d[0];
    const size_t row0 = d0->off[t] * H;
    const int n = d0->n[t];
    for (int l = 0; l < s->L; l++) {
        const float *in = x;
        int ld = ldx;
        if (l > 0) {
            ld = H;
            in = s->y[l - 1] + row0;
            if (s->use_dropout) {
                /* the masks of rnn_stack_forward: keyed by example, layer and step */
                const rnn_dropout_key *drop = s->key;
                const float scale = 1.0f / (1.0f - s->dropout);
                const uint64_t site = ((uint64_t)drop->site * 64 + (uint64_t)l) * s->Tmax + t;
                for (int b = 0; b < n; b++) {
                    const size_t row = row0 + (size_t)b * H;
                    uint64_t key = rng_u64(drop->seed, RNG_DROPOUT, drop->step,
                                           (uint64_t)drop->example[b], site);
                    dropout_row(H, key, s->dropout, scale, s->y[l - 1] + row, s->mask[l] + row,
                                s->xin[l] + row);
                }
                in = s->xin[l] + row0;
            }
        }
        rnn_dir_step(&s->d[l], t, B, in, ld);
    }
}

const float *rnn_stack_top_state(const rnn_stack *s, int t, int B)
{
    return rnn_dir_state(&s->d[s->L - 1], t, B);
}

void rnn_stack_backward_begin(rnn_stack *s, int B)
{
    for (int l = 0; l < s->L; l++) rnn_dir_backward_begin(&s->d[l], B);
}

void rnn_stack_backward_step(rnn_stack *s, int t, int B, const float *dy_top, float *dx, int lddx)
{
    const int H = s->H;
    const size_t row0 = s->d[0].off[t] * H, NH = (size_t)s->d[0].n[t] * H;
    const float *dyl = dy_top;
    for (int l = s->L - 1; l >= 0; l--) {
        float *dxl = dx;
        if (l > 0) {
            dxl = s->dxin[l] + row0;
            memset(dxl, 0, NH * sizeof(float));
        }
        rnn_dir_backward_step(&s->d[l], t, B, dyl, H, dxl, l > 0 ? H : lddx);
        if (l > 0) {
            /* the previous layer's output gradient at step t, through the mask */
            float *dyp = s->dy[l - 1] + row0;
            if (s->use_dropout) {
                const float *m = s->mask[l] + row0;
                for (size_t i = 0; i < NH; i++) dyp[i] = dxl[i] * m[i];
            } else {
                memcpy(dyp, dxl, NH * sizeof(float));
            }
            dyl = dyp;
        }
    }
}

float *rnn_stack_top_dstate(const rnn_stack *s)
{
    return rnn_dir_dstate(&s->d[s->L - 1]);
}

void rnn_stack_backward_end(rnn_stack *s, int T, int B, const float *x, float *dh0, float *dc0)
{
    const size_t BH = (size_t)B * s->H;
    for (int l = s->L - 1; l >= 0; l--) {
        const float *in = l == 0 ? x : (s->use_dropout ? s->xin[l] : s->y[l - 1]);
        rnn_dir_backward_end(&s->d[l], T, B, in, l == 0 ? s->I : s->H, dh0 ? dh0 + l * BH : NULL,
                             dc0 ? dc0 + l * BH : NULL);
        if (s->hook) s->hook(s->hook_ctx, s->first + 4 * l, s->first + 4 * (l + 1));
    }
    s->key = NULL;
}

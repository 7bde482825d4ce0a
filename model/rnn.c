/* Recurrent layers: RNN (tanh), GRU and LSTM cells, one direction of a layer
 * with backpropagation through time, and stacks of layers with dropout and
 * an optional reverse direction. Shapes use the legend of model.h.
 *
 * The input-to-hidden products of all T steps are one GEMM (T·B rows), and so
 * are the weight gradients in the backward pass; only the hidden-to-hidden
 * product h·W_hh^T (and its transpose in backward) is done step by step. */
#include "model.h"

#include "blas_private.h"
#include "vmath.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cell_gates(cell_kind c)
{
    return c == CELL_GRU ? 3 : c == CELL_LSTM ? 4 : 1;
}

const char *cell_name(cell_kind c)
{
    return c == CELL_GRU ? "gru" : c == CELL_LSTM ? "lstm" : "rnn";
}

int cell_parse(const char *s, cell_kind *out)
{
    if (strcmp(s, "rnn") == 0)
        *out = CELL_RNN;
    else if (strcmp(s, "gru") == 0)
        *out = CELL_GRU;
    else if (strcmp(s, "lstm") == 0)
        *out = CELL_LSTM;
    else
        return MODEL_EINVAL;
    return MODEL_OK;
}

/* ======================================================== one direction */

/* The fewest rows of a step in the last layout (the last step's, packed). */
static int fewest_rows(const rnn_dir *d, int T)
{
    int m = d->n[0];
    for (int t = 1; t < T; t++) m = d->n[t] < m ? d->n[t] : m;
    return m;
}

/* W_hh laid out for the steps' products: packed for rgemm (W_hh^T in the
 * forward, W_hh in the backward) or, without it, W_hh^T (H, GH). */
static size_t wp_floats(size_t GH, size_t H)
{
    size_t f = rgemm_packed_size((int)H, (int)GH), b = rgemm_packed_size((int)GH, (int)H);
    size_t n = f > b ? f : b;
    return n > GH * H ? n : GH * H;
}

/* A small direction's input-side and weight-gradient products run on rgemm
 * too (OpenBLAS's per-call packing dominates them at these sizes), the
 * forward's W_ih^T packed in bp: its size, or 0 for a direction that is not
 * small (more than 2^24 multiply-adds in its largest such product). */
static size_t bp_floats(int I, int C, int H, size_t GH, size_t TB)
{
    const int K = I > C ? I : C, W = K > H ? K : H;
    if (!rgemm_available() || (double)TB * GH * W > RG_SMALL) return 0;
    return rgemm_packed_size(K, (int)GH); /* W_ih[:, :I]^T or W_ih[:, I:]^T */
}

int rnn_dir_init(rnn_dir *d, cell_kind cell, int I, int C, int H, int reverse, int onehot, int Tmax,
                 int Bmax)
{
    memset(d, 0, sizeof *d);
    if (I <= 0 || C < 0 || H <= 0 || Tmax <= 0 || Bmax <= 0) return MODEL_EINVAL;
    d->cell = cell;
    d->I = I;
    d->C = C;
    d->H = H;
    d->reverse = reverse;
    d->onehot = onehot;
    d->Tmax = Tmax;
    d->Bmax = Bmax;
    const size_t GH = (size_t)cell_gates(cell) * H;
    const size_t TBG = (size_t)Tmax * Bmax * GH;
    const size_t SBH = (size_t)(Tmax + 1) * Bmax * H;
    const size_t BH = (size_t)Bmax * H;
    d->bp_n = onehot ? 0 : bp_floats(I, C, H, GH, (size_t)Tmax * Bmax);
    size_t n = 4 * TBG                             /* xw, hw, gates, dxw */
               + (cell == CELL_GRU ? TBG : 0)      /* dhw */
               + SBH * (cell == CELL_LSTM ? 2 : 1) /* hs, cs */
               + 2 * (size_t)Bmax * GH             /* ctxw, dctxw (sum of dxw over t) */
               + wp_floats(GH, H) + 16             /* wp, 64-byte aligned */
               + 3 * BH                            /* dh, dc, dtmp */
               + d->bp_n;                          /* bp */
    d->mem = calloc(n, sizeof(float));
    d->n = calloc((size_t)Tmax + 1, sizeof *d->n);
    d->off = calloc((size_t)Tmax + 1, sizeof *d->off);
    if (!d->mem || !d->n || !d->off) {
        rnn_dir_free(d);
        return MODEL_ENOMEM;
    }
    float *p = d->mem;
    d->xw = p, p += TBG;
    d->hw = p, p += TBG;
    d->gates = p, p += TBG;
    d->dxw = p, p += TBG;
    if (cell == CELL_GRU) d->dhw = p, p += TBG;
    d->hs = p, p += SBH;
    if (cell == CELL_LSTM) d->cs = p, p += SBH;
    d->ctxw = p, p += (size_t)Bmax * GH;
    p += (size_t)Bmax * GH; /* dctxw lives right after ctxw: see rnn_dir_backward */
    p += (16 - ((uintptr_t)p / sizeof(float)) % 16) % 16;
    d->wp = p, p += wp_floats(GH, H);
    d->dh = p, p += BH;
    d->dc = p, p += BH;
    d->dtmp = p, p += BH;
    d->bp = d->bp_n ? p : NULL;
    return MODEL_OK;
}

void rnn_dir_free(rnn_dir *d)
{
    free(d->mem);
    free(d->n);
    free(d->off);
    free(d->slot_of);
    free(d->slot);
    free(d->uniq);
    free(d->xu);
    memset(d, 0, sizeof *d);
}

int rnn_dir_share_inputs(rnn_dir *d, int vocab)
{
    if (d->onehot || vocab < 1 || d->vocab > 0) return MODEL_EINVAL;
    const size_t rows = (size_t)d->Tmax * d->Bmax;
    d->slot_of = malloc((size_t)vocab * sizeof *d->slot_of);
    d->slot = malloc(rows * sizeof *d->slot);
    d->uniq = malloc(rows * sizeof *d->uniq);
    d->xu = malloc(rows * d->I * sizeof *d->xu);
    if (!d->slot_of || !d->slot || !d->uniq || !d->xu) return MODEL_ENOMEM;
    for (int v = 0; v < vocab; v++) d->slot_of[v] = -1;
    d->vocab = vocab;
    return MODEL_OK;
}

/* Whether a small direction's product (M, N, K) runs on rgemm (bp_floats). */
static int small_rg(const rnn_dir *d, int threads, int M, int N, int K)
{
    return d->bp && rgemm_suits(threads, M, N, K);
}

/* C (M, GH) = A (M, K) · W^T for W (GH, K), a column block of W_ih (stride
 * I + C): a small direction packs W^T into bp for rgemm. */
static void input_product(rnn_dir *d, int threads, int M, int K, const float *A, const float *W,
                          float *C)
{
    const int GH = cell_gates(d->cell) * d->H, IC = d->I + d->C;
    if (small_rg(d, threads, M, GH, K)) {
        rgemm_pack(d->bp, W, K, GH, IC, 1);
        memset(C, 0, (size_t)M * GH * sizeof(float));
        rgemm(M, GH, K, A, K, d->bp, NULL, C, GH);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, GH, K, 1.0f, A, K, W, IC, 0.0f, C,
                    GH);
    }
}

/* dst (n) += src (n); dst (n) = a (n) + b (n): the element-wise loops of a
 * direction, compiled per instruction set like the cells. */
VM_CLONES static void vadd(float *restrict dst, const float *restrict src, size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}
VM_CLONES static void vsum(float *restrict dst, const float *restrict a, const float *restrict b,
                           size_t n)
{
    for (size_t i = 0; i < n; i++) dst[i] = a[i] + b[i];
}

/* Shared inputs: numbers the distinct ids of N rows (slot, uniq, U) and
 * gathers their input rows into xu. The ids were checked by the caller
 * (model_step refuses ids outside the vocabulary). */
static void share_rows(rnn_dir *d, size_t N, const float *x, int ldx, const int32_t *ids)
{
    int U = 0;
    for (size_t n = 0; n < N; n++) {
        const int32_t id = ids[n];
        int32_t u = d->slot_of[id];
        if (u < 0) {
            u = d->slot_of[id] = U++;
            d->uniq[u] = id;
            memcpy(d->xu + (size_t)u * d->I, x + n * ldx, (size_t)d->I * sizeof(float));
        }
        d->slot[n] = u;
    }
    for (int u = 0; u < U; u++) d->slot_of[d->uniq[u]] = -1;
    d->U = U;
}

void rnn_dir_bind(rnn_dir *d, float *W_ih, float *W_hh, float *b_ih, float *b_hh, float *dW_ih,
                  float *dW_hh, float *db_ih, float *db_hh)
{
    d->W_ih = W_ih, d->W_hh = W_hh, d->b_ih = b_ih, d->b_hh = b_hh;
    d->dW_ih = dW_ih, d->dW_hh = dW_hh, d->db_ih = db_ih, d->db_hh = db_hh;
}

/* One time step of the cell, element-wise, per cell kind. xw, hw, gates:
 * (B, GH); hp, cp: the state before (B, H); ho, co: the state after. The
 * gate loops vectorise (vmath.h); each kind is compiled per instruction set. */
VM_CLONES static void rnn_cell_forward(int B, int H, const float *restrict xw,
                                       const float *restrict hw, float *restrict gates,
                                       float *restrict ho)
{
    for (size_t k = 0; k < (size_t)B * H; k++) ho[k] = gates[k] = vm_tanhf(xw[k] + hw[k]);
}

VM_CLONES static void gru_cell_forward(int B, int H, const float *restrict xw,
                                       const float *restrict hw, float *restrict gates,
                                       const float *restrict hp, float *restrict ho)
{
    const size_t GH = 3 * (size_t)H;
    for (int b = 0; b < B; b++) {
        const float *restrict x = xw + b * GH, *restrict h = hw + b * GH;
        float *restrict g = gates + b * GH;
        const float *restrict hprev = hp + (size_t)b * H;
        float *restrict hout = ho + (size_t)b * H;
        for (int j = 0; j < 2 * H; j++) g[j] = vm_sigmoidf(x[j] + h[j]); /* r, z */
        for (int j = 0; j < H; j++) {
            const float r = g[j], z = g[H + j];
            const float n = vm_tanhf(x[2 * H + j] + r * h[2 * H + j]);
            g[2 * H + j] = n;
            hout[j] = (1.0f - z) * n + z * hprev[j];
        }
    }
}

VM_CLONES static void lstm_cell_forward(int B, int H, const float *restrict xw,
                                        const float *restrict hw, float *restrict gates,
                                        const float *restrict cp, float *restrict ho,
                                        float *restrict co)
{
    const size_t GH = 4 * (size_t)H;
    for (int b = 0; b < B; b++) {
        const float *restrict x = xw + b * GH, *restrict h = hw + b * GH;
        float *restrict g = gates + b * GH;
        const float *restrict cprev = cp + (size_t)b * H;
        float *restrict cout = co + (size_t)b * H, *restrict hout = ho + (size_t)b * H;
        for (int j = 0; j < 2 * H; j++) g[j] = vm_sigmoidf(x[j] + h[j]);     /* i, f */
        for (int j = 2 * H; j < 3 * H; j++) g[j] = vm_tanhf(x[j] + h[j]);    /* g */
        for (int j = 3 * H; j < 4 * H; j++) g[j] = vm_sigmoidf(x[j] + h[j]); /* o */
        for (int j = 0; j < H; j++) {
            const float c = g[H + j] * cprev[j] + g[j] * g[2 * H + j];
            cout[j] = c;
            hout[j] = g[3 * H + j] * vm_tanhf(c);
        }
    }
}

static void cell_forward(cell_kind cell, int B, int H, const float *xw, const float *hw,
                         float *gates, const float *hp, const float *cp, float *ho, float *co)
{
    if (cell == CELL_RNN)
        rnn_cell_forward(B, H, xw, hw, gates, ho);
    else if (cell == CELL_GRU)
        gru_cell_forward(B, H, xw, hw, gates, hp, ho);
    else
        lstm_cell_forward(B, H, xw, hw, gates, cp, ho, co);
}

/* Backward of one step. dh (B, H): gradient of the step's output h (including
 * what flows from later steps); dc (B, H): gradient of the cell state after
 * the step (LSTM), replaced by the gradient of the state before. Writes
 * dxw (B, GH), dhw (B, GH, GRU only) and dhp (B, H) = the part of d(prev h)
 * that does not go through W_hh. */
VM_CLONES static void gru_cell_backward(int B, int H, const float *restrict dh,
                                        const float *restrict gates, const float *restrict hw,
                                        const float *restrict hp, float *restrict dxw,
                                        float *restrict dhw, float *restrict dhp)
{
    const size_t GH = 3 * (size_t)H;
    for (int b = 0; b < B; b++) {
        const float *restrict g = gates + b * GH, *restrict hn = hw + b * GH + 2 * H;
        const float *restrict d = dh + (size_t)b * H, *restrict hprev = hp + (size_t)b * H;
        float *restrict dx = dxw + b * GH, *restrict dr_ = dhw + b * GH;
        float *restrict direct = dhp + (size_t)b * H;
        for (int j = 0; j < H; j++) {
            const float r = g[j], z = g[H + j], n = g[2 * H + j];
            const float dn = d[j] * (1.0f - z);
            const float dz = d[j] * (hprev[j] - n);
            direct[j] = d[j] * z;
            const float dnp = dn * (1.0f - n * n);
            const float dzp = dz * z * (1.0f - z);
            const float drp = dnp * hn[j] * r * (1.0f - r);
            dx[j] = drp, dx[H + j] = dzp, dx[2 * H + j] = dnp;
            dr_[j] = drp, dr_[H + j] = dzp, dr_[2 * H + j] = dnp * r;
        }
    }
}

VM_CLONES static void lstm_cell_backward(int B, int H, const float *restrict dh, float *restrict dc,
                                         const float *restrict gates, const float *restrict cp,
                                         const float *restrict co, float *restrict dxw)
{
    const size_t GH = 4 * (size_t)H;
    for (int b = 0; b < B; b++) {
        const float *restrict g = gates + b * GH, *restrict d = dh + (size_t)b * H;
        const float *restrict cprev = cp + (size_t)b * H, *restrict c = co + (size_t)b * H;
        float *restrict dx = dxw + b * GH, *restrict dcb = dc + (size_t)b * H;
        for (int j = 0; j < H; j++) {
            const float i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
            const float tc = vm_tanhf(c[j]);
            const float dct = dcb[j] + d[j] * o * (1.0f - tc * tc);
            dx[j] = dct * gg * i * (1.0f - i);
            dx[H + j] = dct * cprev[j] * f * (1.0f - f);
            dx[2 * H + j] = dct * i * (1.0f - gg * gg);
            dx[3 * H + j] = d[j] * tc * o * (1.0f - o);
            dcb[j] = dct * f;
        }
    }
}

static void cell_backward(cell_kind cell, int B, int H, const float *dh, float *dc,
                          const float *gates, const float *hw, const float *hp, const float *cp,
                          const float *co, float *dxw, float *dhw, float *dhp)
{
    if (cell == CELL_GRU) {
        gru_cell_backward(B, H, dh, gates, hw, hp, dxw, dhw, dhp);
        return;
    }
    if (cell == CELL_RNN)
        for (size_t k = 0; k < (size_t)B * H; k++) dxw[k] = dh[k] * (1.0f - gates[k] * gates[k]);
    else
        lstm_cell_backward(B, H, dh, dc, gates, cp, co, dxw);
    memset(dhp, 0, (size_t)B * H * sizeof(float));
}

/* Rows and packed row offsets of every step: n[t] = bs[t] and off[t] = Σ_{s<t}
 * bs[s] in packed mode, B and t·B otherwise. Returns the total off[T]. */
static size_t step_layout(rnn_dir *d, int T, int B)
{
    size_t o = 0;
    for (int t = 0; t < T; t++) {
        int n = d->bs ? d->bs[t] : B;
        d->n[t] = n;
        d->off[t] = o;
        o += (size_t)n;
    }
    d->off[T] = o;
    return o;
}

/* The state after step t, and the state step t starts from. Forward
 * direction: [h0 (B rows) ; h(0) (n[0] rows) ; h(1) …] (packed or not).
 * Reverse (never packed): [h(0) … h(T−1), h0], B rows each. */
static float *state_out(const rnn_dir *d, float *s, int t, int B)
{
    return d->reverse ? s + (size_t)t * B * d->H : s + ((size_t)B + d->off[t]) * d->H;
}
static float *state_prev(const rnn_dir *d, float *s, int t, int B)
{
    if (d->reverse) return s + (size_t)(t + 1) * B * d->H;
    return t == 0 ? s : state_out(d, s, t - 1, B);
}

void rnn_dir_forward(rnn_dir *d, int T, int B, const float *x, int ldx, const int32_t *ids,
                     const float *ctx, const float *h0, const float *c0, float *y, int ldy,
                     float *hT, float *cT)
{
    const int H = d->H, I = d->I, C = d->C, IC = I + C;
    const int GH = cell_gates(d->cell) * H;
    d->U = 0, d->shared = 0;
    if (B == 0 || T == 0) return;
    const size_t N = step_layout(d, T, B);
    d->skipped = 0;

    /* xw (N, GH) = x · W_ih[:, :I]^T + b_ih (+ ctx · W_ih[:, I:]^T, once per row) */
    const int shared = d->shared = d->vocab > 0 && ids;
    const int threads = openblas_get_num_threads();
    /* over several steps, on rgemm too where it suits and W_ih^T fits the
     * packing buffer (free until the steps' W_hh is packed) */
    const int rg_in = T > 1 && !shared && !d->onehot && rgemm_suits(threads, (int)N, GH, I) &&
                      rgemm_packed_size(I, GH) <= wp_floats((size_t)GH, (size_t)H);
    if (!shared && !rg_in)
        for (size_t n = 0; n < N; n++) memcpy(d->xw + n * GH, d->b_ih, (size_t)GH * sizeof(float));
    if (rg_in) {
        rgemm_pack(d->wp, d->W_ih, I, GH, IC, 1);
        rgemm((int)N, GH, I, x, ldx, d->wp, d->b_ih, d->xw, GH);
    } else if (shared) {
        /* each distinct id once: P (U, GH) = xu · W_ih[:, :I]^T, in dxw
         * (free until the backward), then row n = b_ih + P[slot[n]] */
        share_rows(d, N, x, ldx, ids);
        float *P = d->dxw;
        input_product(d, threads, d->U, I, d->xu, d->W_ih, P);
        for (size_t n = 0; n < N; n++) {
            float *row = d->xw + n * GH;
            const float *pu = P + (size_t)d->slot[n] * GH;
            vsum(row, d->b_ih, pu, (size_t)GH);
        }
    } else if (d->onehot) {
        /* one-hot input: row n adds column ids[n] of W_ih (a lookup, not a product) */
        for (size_t n = 0; n < N; n++) {
            float *row = d->xw + n * GH;
            const float *col = d->W_ih + ids[n];
            for (int k = 0; k < GH; k++) row[k] += col[(size_t)k * IC];
        }
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, GH, I, 1.0f, x, ldx, d->W_ih,
                    IC, 1.0f, d->xw, GH);
    }
    if (C > 0) {
        input_product(d, threads, B, C, ctx, d->W_ih + I, d->ctxw);
        for (int t = 0; t < T; t++) {
            float *xt = d->xw + d->off[t] * GH;
            vadd(xt, d->ctxw, (size_t)d->n[t] * GH);
        }
    }

    /* initial state */
    float *hinit = d->reverse ? d->hs + (size_t)T * B * H : d->hs;
    if (h0)
        memcpy(hinit, h0, (size_t)B * H * sizeof(float));
    else
        memset(hinit, 0, (size_t)B * H * sizeof(float));
    if (d->cell == CELL_LSTM) {
        float *cinit = d->reverse ? d->cs + (size_t)T * B * H : d->cs;
        if (c0)
            memcpy(cinit, c0, (size_t)B * H * sizeof(float));
        else
            memset(cinit, 0, (size_t)B * H * sizeof(float));
    }

    /* Over several steps W_hh is laid out once for the steps' products
     * prev · W_hh^T: packed for rgemm (AVX-512), else copied as W_hh^T, which
     * OpenBLAS (0.3.21) packs faster than W_hh (tests/bench/README.md). */
    const int packed = T > 1 && rgemm_suits(threads, fewest_rows(d, T), GH, H);
    const int transposed = T > 1 && !packed;
    if (packed) rgemm_pack(d->wp, d->W_hh, H, GH, H, 1);
    if (transposed) cblas_somatcopy(CblasRowMajor, CblasTrans, GH, H, 1.0f, d->W_hh, H, d->wp, GH);
    for (int s = 0; s < T; s++) {
        const int t = d->reverse ? T - 1 - s : s;
        const int n = d->n[t];
        const float *hp = state_prev(d, d->hs, t, B);
        float *ho = state_out(d, d->hs, t, B);
        float *hw = d->hw + d->off[t] * GH;
        /* hw (n, GH) = prev · W_hh^T + b_hh (rgemm adds b_hh itself); from
         * a zero initial state just b_hh */
        const int zero = s == 0 && !h0;
        const int rg = !zero && packed && rgemm_suits(threads, n, GH, H);
        if (!rg)
            for (int b = 0; b < n; b++)
                memcpy(hw + (size_t)b * GH, d->b_hh, (size_t)GH * sizeof(float));
        if (zero)
            d->skipped += n;
        else if (rg)
            rgemm(n, GH, H, hp, H, d->wp, d->b_hh, hw, GH);
        else if (transposed)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, GH, H, 1.0f, hp, H, d->wp, GH,
                        1.0f, hw, GH);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, GH, H, 1.0f, hp, H, d->W_hh, H,
                        1.0f, hw, GH);
        const float *cp = d->cs ? state_prev(d, d->cs, t, B) : NULL;
        float *co = d->cs ? state_out(d, d->cs, t, B) : NULL;
        cell_forward(d->cell, n, H, d->xw + d->off[t] * GH, hw, d->gates + d->off[t] * GH, hp, cp,
                     ho, co);
        if (y)
            for (int b = 0; b < n; b++)
                memcpy(y + (d->off[t] + b) * ldy, ho + (size_t)b * H, (size_t)H * sizeof(float));
    }
    /* the final state (not defined in packed mode: rows end at different steps) */
    const int tl = d->reverse ? 0 : T - 1;
    if (hT && !d->bs) memcpy(hT, state_out(d, d->hs, tl, B), (size_t)B * H * sizeof(float));
    if (cT && d->cs && !d->bs)
        memcpy(cT, state_out(d, d->cs, tl, B), (size_t)B * H * sizeof(float));
}

/* Σ over rows of a (N, K) matrix added into out (K), four rows a pass (out
 * is loaded and stored once per four rows, not once per row). */
VM_CLONES static void add_row_sums(float *restrict out, const float *restrict a, size_t N, int K)
{
    size_t n = 0;
    for (; n + 4 <= N; n += 4) {
        const float *r0 = a + n * K, *r1 = r0 + K, *r2 = r1 + K, *r3 = r2 + K;
        for (int k = 0; k < K; k++) out[k] += (r0[k] + r1[k]) + (r2[k] + r3[k]);
    }
    for (; n < N; n++) {
        const float *r = a + n * K;
        for (int k = 0; k < K; k++) out[k] += r[k];
    }
}

/* Backward through the time steps, last to first: dh (B, H) holds the
 * gradient of the last state on entry; d->dxw (and dhw for a GRU) get every
 * step's gate gradients. Returns the buffer holding d h_0 (dh and dtmp swap
 * at every step); rows that never ran are zeroed. */
static float *backward_steps(rnn_dir *d, int T, int B, const float *dy, int ldy, const float *carry,
                             int want_dh0, int threads)
{
    const int H = d->H, GH = cell_gates(d->cell) * H;
    const int lstm = d->cell == CELL_LSTM;
    float *dh = d->dh, *dtmp = d->dtmp, *dc = d->dc;
    float *dhw_all = d->cell == CELL_GRU ? d->dhw : d->dxw;
    const int packed = T > 1 && rgemm_suits(threads, fewest_rows(d, T), H, GH);
    if (packed) rgemm_pack(d->wp, d->W_hh, GH, H, H, 0); /* W_hh packed for the steps (rgemm) */
    int live = B;                                        /* rows whose dh is meaningful so far */
    for (int s = T - 1; s >= 0; s--) {
        const int t = d->reverse ? T - 1 - s : s;
        const int n = d->n[t];
        /* packed: rows [live, n) join here with nothing from later steps */
        if (n > live) memset(dh + (size_t)live * H, 0, (size_t)(n - live) * H * sizeof(float));
        live = n;
        if (dy)
            for (int b = 0; b < n; b++)
                vadd(dh + (size_t)b * H, dy + (d->off[t] + b) * ldy, (size_t)H);
        const size_t off = d->off[t] * GH;
        cell_backward(d->cell, n, H, dh, dc, d->gates + off, d->hw + off,
                      state_prev(d, d->hs, t, B), lstm ? state_prev(d, d->cs, t, B) : NULL,
                      lstm ? state_out(d, d->cs, t, B) : NULL, d->dxw + off,
                      d->cell == CELL_GRU ? d->dhw + off : NULL, dtmp);
        /* d prev (n, H) = direct part + dhw_t (n, GH) · W_hh (GH, H); the
         * last step's is the initial state's, wanted only with dh0 */
        if (s == 0 && !want_dh0)
            d->skipped += n;
        else if (packed && rgemm_suits(threads, n, H, GH))
            rgemm(n, H, GH, dhw_all + off, GH, d->wp, NULL, dtmp, H);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, H, GH, 1.0f, dhw_all + off,
                        GH, d->W_hh, H, 1.0f, dtmp, H);
        float *sw = dh;
        dh = dtmp, dtmp = sw;
        if (carry)
            for (int b = 0; b < n; b++) {
                float k = carry[d->off[t] + b];
                if (k == 1.0f) continue;
                for (int j = 0; j < H; j++) dh[(size_t)b * H + j] *= k;
                if (lstm)
                    for (int j = 0; j < H; j++) dc[(size_t)b * H + j] *= k;
            }
    }
    if (live < B) memset(dh + (size_t)live * H, 0, (size_t)(B - live) * H * sizeof(float));
    return dh;
}

/* The input side's gradients over all N rows at once, from the steps' gate
 * gradients: dW_ih and db_ih (shared inputs summed per distinct id first,
 * one-hot inputs by column), the context's, and dx. */
static void input_grads(rnn_dir *d, int T, int B, const float *x, int ldx, const int32_t *ids,
                        const float *ctx, float *dx, int lddx, float *dctx, int threads)
{
    const int H = d->H, I = d->I, C = d->C, IC = I + C, GH = cell_gates(d->cell) * H;
    const size_t N = d->off[T]; /* the layout of the last forward */
    const int shared = d->shared;
    float *dsh = d->xw; /* shared inputs: (U, GH) Σ of dxw per distinct id (xw is free now) */
    if (shared) {
        memset(dsh, 0, (size_t)d->U * GH * sizeof(float));
        for (size_t n = 0; n < N; n++)
            vadd(dsh + (size_t)d->slot[n] * GH, d->dxw + n * GH, (size_t)GH);
        /* dW_ih[:, :I] (GH, I) += dsh^T (GH, U) · xu (U, I) */
        gemm_tn_acc(small_rg(d, threads, GH, I, d->U), GH, I, d->U, dsh, GH, d->xu, I, d->dW_ih,
                    IC);
        add_row_sums(d->db_ih, dsh, (size_t)d->U, GH);
    } else if (d->onehot) {
        for (size_t n = 0; n < N; n++) {
            const float *row = d->dxw + n * GH;
            float *col = d->dW_ih + ids[n];
            for (int k = 0; k < GH; k++) col[(size_t)k * IC] += row[k];
        }
    } else {
        /* dW_ih[:, :I] (GH, I) += dxw^T (GH, N) · x (N, I) */
        gemm_tn_acc(small_rg(d, threads, GH, I, (int)N), GH, I, (int)N, d->dxw, GH, x, ldx,
                    d->dW_ih, IC);
    }
    if (!shared) add_row_sums(d->db_ih, d->dxw, N, GH);
    if (C > 0) {
        /* the context enters every step: its gradient is Σ_t dxw_t (B, GH) */
        float *dsum = d->ctxw + (size_t)d->Bmax * GH;
        memset(dsum, 0, (size_t)B * GH * sizeof(float));
        for (int t = 0; t < T; t++) {
            const float *r = d->dxw + d->off[t] * GH;
            vadd(dsum, r, (size_t)d->n[t] * GH);
        }
        gemm_tn_acc(small_rg(d, threads, GH, C, B), GH, C, B, dsum, GH, ctx, C, d->dW_ih + I, IC);
        if (dctx)
            gemm_nn_acc(small_rg(d, threads, B, C, GH), B, C, GH, dsum, GH, d->W_ih + I, IC, dctx,
                        C);
    }
    /* dx (N, I) += dxw (N, GH) · W_ih[:, :I] (GH, I); shared inputs: (U, I) from dsh */
    const int rows = shared ? d->U : (int)N;
    const float *dxs = shared ? dsh : d->dxw;
    if (dx && !d->onehot)
        gemm_nn_acc(small_rg(d, threads, rows, I, GH), rows, I, GH, dxs, GH, d->W_ih, IC, dx, lddx);
}

void rnn_dir_backward(rnn_dir *d, int T, int B, const float *x, int ldx, const int32_t *ids,
                      const float *ctx, const float *dy, int ldy, const float *dhT,
                      const float *dcT, const float *carry, float *dx, int lddx, float *dctx,
                      float *dh0, float *dc0)
{
    const int H = d->H, GH = cell_gates(d->cell) * H;
    const size_t BH = (size_t)B * H;
    const int lstm = d->cell == CELL_LSTM;
    if (B == 0 || T == 0) return;
    const size_t N = d->off[T]; /* the layout of the last forward */
    float *dhw_all = d->cell == CELL_GRU ? d->dhw : d->dxw;
    if (dhT)
        memcpy(d->dh, dhT, BH * sizeof(float));
    else
        memset(d->dh, 0, BH * sizeof(float));
    if (lstm) {
        if (dcT)
            memcpy(d->dc, dcT, BH * sizeof(float));
        else
            memset(d->dc, 0, BH * sizeof(float));
    }
    const int threads = openblas_get_num_threads();
    const float *dh = backward_steps(d, T, B, dy, ldy, carry, dh0 != NULL, threads);
    if (dh0) vadd(dh0, dh, BH);
    if (dc0 && lstm) vadd(dc0, d->dc, BH);
    /* parameter gradients over all N rows at once. dW_hh (GH, H) += dhw^T
     * (GH, N) · prev (N, H): unpacked, prev(t) are consecutive blocks;
     * packed, step t uses the first n[t] rows of a block of n[t−1], so they
     * are gathered first (into hw, no longer needed). The input side's
     * gradients come first: shared inputs reuse xw, which hw does not
     * alias. */
    input_grads(d, T, B, x, ldx, ids, ctx, dx, lddx, dctx, threads);
    const float *prev = d->reverse ? d->hs + BH : d->hs;
    if (d->bs) {
        float *g = d->hw;
        for (int t = 0; t < T; t++)
            memcpy(g + d->off[t] * H, state_prev(d, d->hs, t, B),
                   (size_t)d->n[t] * H * sizeof(float));
        prev = g;
    }
    gemm_tn_acc(small_rg(d, threads, GH, H, (int)N), GH, H, (int)N, dhw_all, GH, prev, H, d->dW_hh,
                H);
    add_row_sums(d->db_hh, dhw_all, N, GH);
}

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

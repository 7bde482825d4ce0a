/* Recurrent layers: RNN (tanh), GRU and LSTM cells and one direction of a
 * layer with backpropagation through time (rnn_stack.c stacks them, with
 * dropout and an optional reverse direction). Shapes use the legend of
 * model.h.
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

/* dW_hh (GH, H) += dhw^T (GH, N) · prev (N, H) and db_hh over all N rows of
 * the last layout: unpacked, prev(t) are consecutive blocks; packed, step t
 * uses the first n[t] rows of a block of n[t−1], so they are gathered first
 * (into hw, no longer needed). */
static void hh_grads(rnn_dir *d, int T, int B, int threads)
{
    const int H = d->H, GH = cell_gates(d->cell) * H;
    const size_t BH = (size_t)B * H, N = d->off[T];
    const float *dhw_all = d->cell == CELL_GRU ? d->dhw : d->dxw;
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

void rnn_dir_backward(rnn_dir *d, int T, int B, const float *x, int ldx, const int32_t *ids,
                      const float *ctx, const float *dy, int ldy, const float *dhT,
                      const float *dcT, const float *carry, float *dx, int lddx, float *dctx,
                      float *dh0, float *dc0)
{
    const int H = d->H;
    const size_t BH = (size_t)B * H;
    const int lstm = d->cell == CELL_LSTM;
    if (B == 0 || T == 0) return;
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
    /* parameter gradients over all N rows at once (hh_grads). The input
     * side's gradients come first: shared inputs reuse xw, which hw does
     * not alias. */
    input_grads(d, T, B, x, ldx, ids, ctx, dx, lddx, dctx, threads);
    hh_grads(d, T, B, threads);
}

/* ========================================================= step by step */

int rnn_dir_begin(rnn_dir *d, int T, int B, const float *h0, const float *c0)
{
    const int H = d->H;
    if (d->reverse || d->C > 0 || d->onehot || T > d->Tmax || B > d->Bmax) return MODEL_EINVAL;
    const int GH = cell_gates(d->cell) * H;
    d->U = 0, d->shared = 0, d->skipped = 0, d->sT = 0;
    if (B == 0 || T == 0) return MODEL_OK;
    step_layout(d, T, B);
    /* the steps' products on rgemm where they suit, their B operands packed
     * once: W_hh^T in wp, W_ih^T in bp (a small direction's) */
    d->sT = T, d->sthreads = openblas_get_num_threads();
    d->srg_hh = rgemm_suits(d->sthreads, fewest_rows(d, T), GH, H);
    d->srg_ih = d->bp && rgemm_packed_size(d->I, GH) <= d->bp_n &&
                rgemm_suits(d->sthreads, fewest_rows(d, T), GH, d->I);
    if (d->srg_hh) rgemm_pack(d->wp, d->W_hh, H, GH, H, 1);
    if (d->srg_ih) rgemm_pack(d->bp, d->W_ih, d->I, GH, d->I, 1);
    if (h0)
        memcpy(d->hs, h0, (size_t)B * H * sizeof(float));
    else
        memset(d->hs, 0, (size_t)B * H * sizeof(float));
    if (d->cell == CELL_LSTM) {
        if (c0)
            memcpy(d->cs, c0, (size_t)B * H * sizeof(float));
        else
            memset(d->cs, 0, (size_t)B * H * sizeof(float));
    }
    return MODEL_OK;
}

void rnn_dir_step(rnn_dir *d, int t, int B, const float *x, int ldx)
{
    const int H = d->H, I = d->I, GH = cell_gates(d->cell) * H, n = d->n[t];
    if (n == 0) return;
    float *xw = d->xw + d->off[t] * GH, *hw = d->hw + d->off[t] * GH;
    const float *hp = state_prev(d, d->hs, t, B);
    /* xw (n, GH) = x · W_ih^T + b_ih ; hw (n, GH) = prev · W_hh^T + b_hh
     * (rgemm adds the bias itself) */
    if (d->srg_ih && rgemm_suits(d->sthreads, n, GH, I)) {
        rgemm(n, GH, I, x, ldx, d->bp, d->b_ih, xw, GH);
    } else {
        for (int b = 0; b < n; b++)
            memcpy(xw + (size_t)b * GH, d->b_ih, (size_t)GH * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, GH, I, 1.0f, x, ldx, d->W_ih, I,
                    1.0f, xw, GH);
    }
    if (d->srg_hh && rgemm_suits(d->sthreads, n, GH, H)) {
        rgemm(n, GH, H, hp, H, d->wp, d->b_hh, hw, GH);
    } else {
        for (int b = 0; b < n; b++)
            memcpy(hw + (size_t)b * GH, d->b_hh, (size_t)GH * sizeof(float));
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, GH, H, 1.0f, hp, H, d->W_hh, H,
                    1.0f, hw, GH);
    }
    const float *cp = d->cs ? state_prev(d, d->cs, t, B) : NULL;
    float *co = d->cs ? state_out(d, d->cs, t, B) : NULL;
    cell_forward(d->cell, n, H, xw, hw, d->gates + d->off[t] * GH, hp, cp,
                 state_out(d, d->hs, t, B), co);
}

const float *rnn_dir_state(const rnn_dir *d, int t, int B)
{
    return t < 0 ? d->hs : state_out(d, d->hs, t, B);
}

void rnn_dir_backward_begin(rnn_dir *d, int B)
{
    const size_t BH = (size_t)B * d->H;
    const int GH = cell_gates(d->cell) * d->H;
    d->dcur = d->dh, d->dnext = d->dtmp, d->live = B;
    /* the steps' d prev = dhw · W_hh on rgemm: W_hh packed in wp */
    d->srg_hh = d->sT > 0 && rgemm_suits(d->sthreads, fewest_rows(d, d->sT), d->H, GH);
    if (d->srg_hh) rgemm_pack(d->wp, d->W_hh, GH, d->H, d->H, 0);
    memset(d->dh, 0, BH * sizeof(float));
    if (d->cell == CELL_LSTM) memset(d->dc, 0, BH * sizeof(float));
}

void rnn_dir_backward_step(rnn_dir *d, int t, int B, const float *dy, int ldy, float *dx, int lddx)
{
    const int H = d->H, I = d->I, GH = cell_gates(d->cell) * H, n = d->n[t];
    const int lstm = d->cell == CELL_LSTM;
    (void)B;
    if (n == 0) return;
    float *dh = d->dcur, *dtmp = d->dnext;
    /* packed: rows [live, n) join here with nothing from later steps */
    if (n > d->live) memset(dh + (size_t)d->live * H, 0, (size_t)(n - d->live) * H * sizeof(float));
    d->live = n;
    if (dy)
        for (int b = 0; b < n; b++) vadd(dh + (size_t)b * H, dy + (size_t)b * ldy, (size_t)H);
    const size_t off = d->off[t] * GH;
    float *dhw = (d->cell == CELL_GRU ? d->dhw : d->dxw) + off;
    cell_backward(d->cell, n, H, dh, d->dc, d->gates + off, d->hw + off, state_prev(d, d->hs, t, B),
                  lstm ? state_prev(d, d->cs, t, B) : NULL, lstm ? state_out(d, d->cs, t, B) : NULL,
                  d->dxw + off, d->cell == CELL_GRU ? d->dhw + off : NULL, dtmp);
    /* d prev (n, H) = direct part + dhw (n, GH) · W_hh (GH, H) */
    if (d->srg_hh && rgemm_suits(d->sthreads, n, H, GH))
        rgemm(n, H, GH, dhw, GH, d->wp, NULL, dtmp, H);
    else
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, H, GH, 1.0f, dhw, GH, d->W_hh, H,
                    1.0f, dtmp, H);
    d->dcur = dtmp, d->dnext = dh;
    /* dx (n, I) += dxw (n, GH) · W_ih (GH, I) */
    if (dx)
        gemm_nn_acc(small_rg(d, d->sthreads, n, I, GH), n, I, GH, d->dxw + off, GH, d->W_ih, I, dx,
                    lddx);
}

float *rnn_dir_dstate(const rnn_dir *d)
{
    return d->dcur;
}

void rnn_dir_backward_end(rnn_dir *d, int T, int B, const float *x, int ldx, float *dh0, float *dc0)
{
    const int H = d->H;
    if (B == 0 || T == 0) return;
    float *dh = d->dcur;
    if (d->live < B) memset(dh + (size_t)d->live * H, 0, (size_t)(B - d->live) * H * sizeof(float));
    if (dh0) vadd(dh0, dh, (size_t)B * H);
    if (dc0 && d->cell == CELL_LSTM) vadd(dc0, d->dc, (size_t)B * H);
    const int threads = openblas_get_num_threads();
    input_grads(d, T, B, x, ldx, NULL, NULL, NULL, 0, NULL, threads);
    hh_grads(d, T, B, threads);
}

/* CUnit: every layer's backward against central finite differences, and the
 * optimizers and clipping against their formulas. See gradcheck.h for the
 * tolerance. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "model.h"
#include "vmath.h" /* model/'s private element-wise functions */

static double worst_seen = 0.0;

/* ------------------------------------------------------------ embedding */

typedef struct {
    float *W, *w;
    int32_t *ids;
    int N, E;
    float *out;
} emb_ctx;

static double emb_loss(void *p)
{
    emb_ctx *c = p;
    embedding_forward(c->out, c->W, c->ids, c->N, c->E);
    return gc_dot(c->w, c->out, (size_t)c->N * c->E);
}

static void test_embedding(void)
{
    enum { V = 6, E = 4, N = 7 };
    float W[V * E], dW[V * E] = {0}, w[N * E], out[N * E];
    int32_t ids[N] = {0, 3, 3, 5, 1, 3, 0}; /* repeats: gradients must add */
    gc_fill(W, V * E, 1.0f, 1);
    gc_fill(w, N * E, 1.0f, 2);
    emb_ctx c = {W, w, ids, N, E, out};
    embedding_backward(dW, w, ids, N, E);
    CU_ASSERT_EQUAL(gc_check("embedding.W", W, dW, V * E, emb_loss, &c, 0, &worst_seen), 0);
    /* row 2 and 4 are never used: exactly zero gradient */
    for (int e = 0; e < E; e++) CU_ASSERT_EQUAL(dW[2 * E + e], 0.0f);
}

/* ---------------------------------------------------------------- dense */

typedef struct {
    float *in, *W, *b, *w, *out;
    int N, I, O;
    float *ws;
    size_t ws_n;
} dense_ctx;

static double dense_loss(void *p)
{
    dense_ctx *c = p;
    dense_forward(c->out, c->in, c->W, c->b, c->N, c->I, c->O, c->ws, c->ws_n);
    return gc_dot(c->w, c->out, (size_t)c->N * c->O);
}

/* One shape, with or without a bias, on OpenBLAS (ws NULL) or on rgemm (a
 * workspace, where AVX-512 has it). */
static void check_dense(int N, int I, int O, int bias, int rg)
{
    float *in = malloc(sizeof(float) * (size_t)N * I), *W = malloc(sizeof(float) * (size_t)O * I);
    float *b = malloc(sizeof(float) * (size_t)O), *w = malloc(sizeof(float) * (size_t)N * O);
    float *out = malloc(sizeof(float) * (size_t)N * O);
    float *din = calloc((size_t)N * I, sizeof(float)), *dW = calloc((size_t)O * I, sizeof(float));
    float *db = calloc((size_t)O, sizeof(float));
    const size_t ws_n = rg ? dense_ws_floats(N, I, O) : 0;
    float *ws = ws_n ? malloc(sizeof(float) * ws_n) : NULL;
    gc_fill(in, (size_t)N * I, 1.0f, 3);
    gc_fill(W, (size_t)O * I, 1.0f, 4);
    gc_fill(b, (size_t)O, 1.0f, 5);
    gc_fill(w, (size_t)N * O, 1.0f, 6);
    dense_ctx c = {in, W, bias ? b : NULL, w, out, N, I, O, ws, ws_n};
    dense_backward(din, dW, bias ? db : NULL, w, in, W, N, I, O, ws != NULL);
    CU_ASSERT_EQUAL(gc_check("dense.W", W, dW, O * I, dense_loss, &c, 0, &worst_seen), 0);
    if (bias) CU_ASSERT_EQUAL(gc_check("dense.b", b, db, O, dense_loss, &c, 0, &worst_seen), 0);
    CU_ASSERT_EQUAL(gc_check("dense.in", in, din, N * I, dense_loss, &c, 0, &worst_seen), 0);
    /* forward value: out[N-1][O-1] = in[N-1]·W[O-1] (+ b[O-1]) */
    gc_fill(out, (size_t)N * O, 1.0f, 7); /* whatever was there must not count */
    dense_forward(out, in, W, bias ? b : NULL, N, I, O, ws, ws_n);
    double ref = bias ? b[O - 1] : 0.0;
    for (int i = 0; i < I; i++)
        ref += (double)in[(size_t)(N - 1) * I + i] * W[(size_t)(O - 1) * I + i];
    CU_ASSERT_DOUBLE_EQUAL(out[(size_t)N * O - 1], ref, 1e-5);
    free(in), free(W), free(b), free(w), free(out), free(din), free(dW), free(db), free(ws);
}

static void test_dense(void)
{
    CU_ASSERT(!rgemm_available() || dense_ws_floats(13, 7, 37) > 0);
    for (int rg = 0; rg < 2; rg++)
        for (int bias = 0; bias < 2; bias++) {
            check_dense(5, 4, 3, bias, rg);
            check_dense(13, 7, 37, bias, rg); /* rgemm: a row block and a half, two panels */
        }
}

/* -------------------------------------------------------- cross-entropy */

typedef struct {
    float *z;
    int32_t *y;
    int N, V;
} xent_ctx;

static double xent_loss(void *p)
{
    xent_ctx *c = p;
    long cnt;
    return xent_forward(c->z, c->y, c->N, c->V, &cnt);
}

static void test_xent(void)
{
    enum { N = 6, V = 5 };
    float z[N * V], g[N * V];
    int32_t y[N] = {1, -1, 4, 0, -1, 2};
    gc_fill(z, N * V, 3.0f, 7);
    memcpy(g, z, sizeof z);
    long cnt = 0, cnt2 = 0;
    double l1 = xent_forward_backward(g, y, N, V, &cnt);
    double l2 = xent_forward(z, y, N, V, &cnt2);
    CU_ASSERT_EQUAL(cnt, 4);
    CU_ASSERT_EQUAL(cnt2, 4);
    CU_ASSERT_DOUBLE_EQUAL(l1, l2, 1e-5);
    xent_ctx c = {z, y, N, V};
    CU_ASSERT_EQUAL(gc_check("xent.logits", z, g, N * V, xent_loss, &c, 0, &worst_seen), 0);
    for (int v = 0; v < V; v++) CU_ASSERT_EQUAL(g[1 * V + v], 0.0f); /* masked row */
    /* uniform logits: loss log V per counted row, rows of g sum to zero */
    float u[2 * V] = {0};
    int32_t yy[2] = {3, 0};
    double lu = xent_forward_backward(u, yy, 2, V, &cnt);
    CU_ASSERT_DOUBLE_EQUAL(lu, 2 * log((double)V), 1e-6);
    double s = 0;
    for (int v = 0; v < V; v++) s += u[v];
    CU_ASSERT_DOUBLE_EQUAL(s, 0.0, 1e-6);
    /* large logits stay finite (max subtraction) */
    float big[V] = {1000.0f, -1000.0f, 0.0f, 999.0f, 5.0f};
    int32_t yb = 1;
    double lb = xent_forward_backward(big, &yb, 1, V, &cnt);
    CU_ASSERT(isfinite(lb));
    CU_ASSERT_DOUBLE_EQUAL(lb, 2000.0 + log(1.0 + exp(-1.0)), 1e-3);
    /* rows of 16-lane blocks and a tail (37 = 2·16 + 5, 48 = 3·16), the
     * maximum in the tail or in a block: loss and gradient as above */
    enum { W = 48 };
    for (int Vw = 37; Vw <= W; Vw += W - 37) {
        float zw[3 * W], gw[3 * W];
        int32_t yw[3] = {Vw - 1, 0, 17};
        gc_fill(zw, (size_t)3 * Vw, 3.0f, 8);
        zw[Vw - 2] = 9.0f;  /* row 0: the maximum in the tail */
        zw[Vw + 20] = 9.0f; /* row 1: in a block */
        memcpy(gw, zw, sizeof zw);
        double lw = xent_forward_backward(gw, yw, 3, Vw, &cnt);
        CU_ASSERT_DOUBLE_EQUAL(lw, xent_forward(zw, yw, 3, Vw, &cnt2), 1e-5);
        xent_ctx cw = {zw, yw, 3, Vw};
        CU_ASSERT_EQUAL(
            gc_check("xent.logits (wide)", zw, gw, 3 * Vw, xent_loss, &cw, 0, &worst_seen), 0);
    }
}

/* ------------------------------------------------------- one direction */

/* A direction's four tensors (W_ih, W_hh, b_ih, b_hh at d's sizes) in pt,
 * filled with gc_fill(scale, seed + i) and bound to d (parameters and
 * gradients). */
static void dir_params(rnn_dir *d, param_table *pt, float scale, uint64_t seed)
{
    const int GH = cell_gates(d->cell) * d->H;
    param_table_add(pt, "w_ih", 2, GH, d->I + d->C);
    param_table_add(pt, "w_hh", 2, GH, d->H);
    param_table_add(pt, "b_ih", 1, GH, 0);
    param_table_add(pt, "b_hh", 1, GH, 0);
    CU_ASSERT_FATAL(param_table_alloc(pt) == 0);
    for (int i = 0; i < 4; i++) gc_fill(param_data(pt, i), pt->t[i].size, scale, seed + i);
    rnn_dir_bind(d, param_data(pt, 0), param_data(pt, 1), param_data(pt, 2), param_data(pt, 3),
                 param_grad(pt, 0), param_grad(pt, 1), param_grad(pt, 2), param_grad(pt, 3));
}

typedef struct {
    rnn_dir d;
    param_table pt;
    int T, B, I, C, H;
    float *x, *ctx, *h0, *c0, *y, *hT, *cT, *wy, *wh, *wc;
    int32_t *ids;
} dir_ctx;

static double dir_loss(void *p)
{
    dir_ctx *c = p;
    rnn_dir_forward(&c->d, c->T, c->B, c->x, c->I, c->ids, c->ctx, c->h0, c->c0, c->y, c->H, c->hT,
                    c->cT);
    size_t BH = (size_t)c->B * c->H;
    double l = gc_dot(c->wy, c->y, (size_t)c->T * BH) + gc_dot(c->wh, c->hT, BH);
    if (c->d.cell == CELL_LSTM) l += gc_dot(c->wc, c->cT, BH);
    return l;
}

static void check_dir(cell_kind cell, int reverse, int with_ctx, int onehot)
{
    dir_ctx c;
    memset(&c, 0, sizeof c);
    c.T = 4, c.B = 3, c.I = 5, c.C = with_ctx ? 3 : 0, c.H = 4;
    const size_t TB = (size_t)c.T * c.B, BH = (size_t)c.B * c.H;
    CU_ASSERT_FATAL(rnn_dir_init(&c.d, cell, c.I, c.C, c.H, reverse, onehot, c.T, c.B) == 0);
    dir_params(&c.d, &c.pt, 0.6f, 10);
    float *buf =
        calloc(TB * c.I * 2 + BH * 10 + TB * c.H * 2 + (size_t)c.B * c.C * 2, sizeof(float));
    float *p = buf;
    c.x = p, p += TB * c.I;
    float *dx = p;
    p += TB * c.I;
    c.y = p, p += TB * c.H;
    c.wy = p, p += TB * c.H;
    c.h0 = p, p += BH;
    c.c0 = p, p += BH;
    c.hT = p, p += BH;
    c.cT = p, p += BH;
    c.wh = p, p += BH;
    c.wc = p, p += BH;
    float *dh0 = p;
    p += BH;
    float *dc0 = p;
    p += BH;
    c.ctx = c.C ? p : NULL;
    p += (size_t)c.B * c.C;
    float *dctx = p;
    int32_t ids[12];
    for (int i = 0; i < 12; i++) ids[i] = (i * 7 + 3) % c.I;
    c.ids = onehot ? ids : NULL;
    gc_fill(c.x, TB * c.I, 1.0f, 20);
    gc_fill(c.h0, BH, 0.8f, 21);
    gc_fill(c.c0, BH, 0.8f, 22);
    gc_fill(c.wy, TB * c.H, 1.0f, 23);
    gc_fill(c.wh, BH, 1.0f, 24);
    gc_fill(c.wc, BH, 1.0f, 25);
    if (c.C) gc_fill(c.ctx, (size_t)c.B * c.C, 1.0f, 26);

    dir_loss(&c);
    rnn_dir_backward(&c.d, c.T, c.B, c.x, c.I, c.ids, c.ctx, c.wy, c.H, c.wh,
                     cell == CELL_LSTM ? c.wc : NULL, NULL, dx, c.I, c.C ? dctx : NULL, dh0, dc0);
    int bad = 0;
    const char *nm[4] = {"W_ih", "W_hh", "b_ih", "b_hh"};
    for (int i = 0; i < 4; i++)
        bad += gc_check(nm[i], param_data(&c.pt, i), param_grad(&c.pt, i), c.pt.t[i].size, dir_loss,
                        &c, 0, &worst_seen);
    if (!onehot) bad += gc_check("x", c.x, dx, TB * c.I, dir_loss, &c, 0, &worst_seen);
    if (c.C) bad += gc_check("ctx", c.ctx, dctx, (size_t)c.B * c.C, dir_loss, &c, 0, &worst_seen);
    bad += gc_check("h0", c.h0, dh0, BH, dir_loss, &c, 0, &worst_seen);
    if (cell == CELL_LSTM) bad += gc_check("c0", c.c0, dc0, BH, dir_loss, &c, 0, &worst_seen);
    if (bad)
        fprintf(stderr, "rnn_dir %s reverse=%d ctx=%d onehot=%d: %d bad\n", cell_name(cell),
                reverse, with_ctx, onehot, bad);
    CU_ASSERT_EQUAL(bad, 0);

    /* T calls of one step each (how decoding runs: the product with W_hh^T)
     * give the outputs of one call of T steps (the product with a copy of
     * W_hh^T): the two layouts agree to rounding. */
    dir_loss(&c);
    float *h = calloc(BH * 5, sizeof(float)), *cc = h + BH, *hn = cc + BH, *cn = hn + BH,
          *yt = cn + BH;
    memcpy(h, c.h0, BH * sizeof(float));
    memcpy(cc, c.c0, BH * sizeof(float));
    double worst = 0;
    for (int s = 0; s < c.T; s++) {
        const int t = reverse ? c.T - 1 - s : s;
        rnn_dir_forward(&c.d, 1, c.B, c.x + (size_t)t * c.B * c.I, c.I,
                        onehot ? ids + (size_t)t * c.B : NULL, c.ctx, h, cc, yt, c.H, hn, cn);
        for (size_t k = 0; k < BH; k++) {
            double e = fabs((double)yt[k] - c.y[(size_t)t * BH + k]);
            if (e > worst) worst = e;
        }
        memcpy(h, hn, BH * sizeof(float));
        memcpy(cc, cn, BH * sizeof(float));
    }
    CU_ASSERT(worst < 1e-5);
    if (!(worst < 1e-5))
        fprintf(stderr, "rnn_dir %s reverse=%d: one-step calls differ by %g\n", cell_name(cell),
                reverse, worst);
    free(h);
    rnn_dir_free(&c.d);
    param_table_free(&c.pt);
    free(buf);
}

static void test_rnn_dir(void)
{
    for (int cell = 0; cell < 3; cell++)
        for (int rev = 0; rev < 2; rev++)
            for (int ctx = 0; ctx < 2; ctx++)
                for (int oh = 0; oh < 2; oh++) check_dir((cell_kind)cell, rev, ctx, oh);
}

/* The largest |a − b| / (1 + |a|) over n elements. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++)
        w = fmax(w, fabs((double)a[i] - b[i]) / (1.0 + fabs((double)a[i])));
    return w;
}

/* Shared input rows (rnn_dir_share_inputs): a direction whose x rows are an
 * embedding of ids gives the outputs and gradients of a plain direction on
 * the same rows, and its (U, I) dx, summed into the embedding by id, gives
 * the plain dx summed the same way. */
static void check_shared(cell_kind cell, int reverse, int C)
{
    enum { T = 4, B = 3, I = 5, H = 4, V = 6, N = T * B };
    rnn_dir d[2];
    param_table pt[2] = {{0}, {0}};
    for (int k = 0; k < 2; k++) {
        CU_ASSERT_FATAL(rnn_dir_init(&d[k], cell, I, C, H, reverse, 0, T, B) == 0);
        dir_params(&d[k], &pt[k], 0.6f, 60);
    }
    CU_ASSERT_FATAL(rnn_dir_share_inputs(&d[1], V) == 0);
    int32_t ids[N];
    int seen[V] = {0}, distinct = 0;
    for (int n = 0; n < N; n++) {
        ids[n] = (n * 5 + n / 4) % V == 1 ? 0 : (n * 5 + n / 4) % V; /* repeats; id 1 unused */
        distinct += !seen[ids[n]]++;
    }
    float E[V * I], x[N * I], ctx[B * 3], y[2][N * H], hT[2][B * H], cT[2][B * H], wy[N * H],
        wh[B * H], dx[2][N * I], dctx[2][B * 3], dE[2][V * I];
    gc_fill(E, V * I, 1.0f, 70);
    gc_fill(ctx, B * 3, 1.0f, 71);
    gc_fill(wy, N * H, 1.0f, 72);
    gc_fill(wh, B * H, 1.0f, 73);
    embedding_forward(x, E, ids, N, I);
    memset(dx, 0, sizeof dx);
    memset(dctx, 0, sizeof dctx);
    memset(dE, 0, sizeof dE);
    for (int k = 0; k < 2; k++) {
        rnn_dir_forward(&d[k], T, B, x, I, ids, C ? ctx : NULL, NULL, NULL, y[k], H, hT[k], cT[k]);
        rnn_dir_backward(&d[k], T, B, x, I, ids, C ? ctx : NULL, wy, H, wh, NULL, NULL, dx[k], I,
                         C ? dctx[k] : NULL, NULL, NULL);
    }
    CU_ASSERT_EQUAL(d[1].U, distinct);
    embedding_backward(dE[0], dx[0], ids, N, I);
    embedding_backward(dE[1], dx[1], d[1].uniq, d[1].U, I);
    double worst = rel_diff(y[0], y[1], N * H);
    worst = fmax(worst, rel_diff(hT[0], hT[1], B * H));
    worst = fmax(worst, rel_diff(dE[0], dE[1], V * I));
    if (C) worst = fmax(worst, rel_diff(dctx[0], dctx[1], B * C));
    for (int i = 0; i < 4; i++)
        worst =
            fmax(worst, rel_diff(param_grad(&pt[0], i), param_grad(&pt[1], i), pt[0].t[i].size));
    CU_ASSERT(worst < 1e-5);
    if (!(worst < 1e-5))
        fprintf(stderr, "shared inputs %s reverse=%d C=%d: differ by %g\n", cell_name(cell),
                reverse, C, worst);
    for (int k = 0; k < 2; k++) {
        rnn_dir_free(&d[k]);
        param_table_free(&pt[k]);
    }
}

static void test_rnn_dir_shared(void)
{
    for (int cell = 0; cell < 3; cell++)
        for (int rev = 0; rev < 2; rev++)
            for (int C = 0; C <= 3; C += 3) check_shared((cell_kind)cell, rev, C);
}

/* rgemm (the steps' product with B packed once) against a double-precision
 * product, over edge shapes (rows not a multiple of 12 or across the
 * 192-row chunks, columns of 32, k of the 256- and 2048-slices), both packings, adding
 * to C or to a bias row, and rgemm_nn / rgemm_tn (B unpacked; A stored
 * transposed), every operand at a stride wider than its rows; C's padding
 * columns and the rows past M must stay untouched. */
static void test_rgemm(void)
{
    if (!rgemm_available()) {
        printf("\n  rgemm: no AVX-512 here (or SEQPAR_RGEMM=0): OpenBLAS serves the steps\n");
        return;
    }
    const int Ms[] = {1, 5, 13, 25, 200}, Ns[] = {1, 31, 32, 33, 70};
    const int Ks[] = {1, 7, 256, 257, 300, 2100};
    double worst = 0;
    int untouched = 1;
    /* mode 0: rgemm, B stored (K, N); 1: rgemm, B stored as its transpose
     * (N, K); 2: rgemm_nn; 3: rgemm_tn, A stored (K, M) */
    for (int mode = 0; mode < 4; mode++)
        for (int mi = 0; mi < 5; mi++)
            for (int ni = 0; ni < 5; ni++)
                for (int ki = 0; ki < 6; ki++) {
                    const int M = Ms[mi], N = Ns[ni], K = Ks[ki], ldc = N + 3;
                    const int trans = mode == 1, at = mode == 3;
                    const int lda = (at ? M : K) + 1, ldb = (trans ? K : N) + 2;
                    float *A = malloc(sizeof(float) * (size_t)(at ? K : M) * lda);
                    float *B = malloc(sizeof(float) * (size_t)(trans ? N : K) * ldb);
                    float *C = malloc(sizeof(float) * (size_t)(M + 1) * ldc);
                    float *P = malloc(sizeof(float) * rgemm_packed_size(K, N));
                    gc_fill(A, (size_t)(at ? K : M) * lda, 1.0f, 80 + mi);
                    gc_fill(B, (size_t)(trans ? N : K) * ldb, 1.0f, 90 + ni);
                    gc_fill(C, (size_t)(M + 1) * ldc, 1.0f, 100 + ki);
                    float *C0 = malloc(sizeof(float) * (size_t)(M + 1) * ldc);
                    memcpy(C0, C, sizeof(float) * (size_t)(M + 1) * ldc);
                    /* every other packed shape: C = bias + A·B, C's old values unread */
                    const int with_bias = mode < 2 && (mi + ni + ki) % 2;
                    float bias[70];
                    gc_fill(bias, (size_t)N, 1.0f, 110 + ni);
                    if (mode < 2) {
                        rgemm_pack(P, B, K, N, ldb, trans);
                        rgemm(M, N, K, A, lda, P, with_bias ? bias : NULL, C, ldc);
                    } else if (mode == 2) {
                        rgemm_nn(M, N, K, A, lda, B, ldb, C, ldc);
                    } else {
                        rgemm_tn(M, N, K, A, lda, B, ldb, C, ldc);
                    }
                    for (int i = 0; i < M + 1; i++)
                        for (int j = 0; j < ldc; j++) {
                            const size_t ix = (size_t)i * ldc + j;
                            if (i >= M || j >= N) {
                                untouched &= C[ix] == C0[ix];
                                continue;
                            }
                            double ref = with_bias ? bias[j] : C0[ix], mag = fabs(ref);
                            for (int k = 0; k < K; k++) {
                                const double b =
                                    trans ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                                const double a =
                                    at ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                                ref += a * b;
                                mag += fabs(a * b);
                            }
                            worst = fmax(worst, fabs(C[ix] - ref) / (mag + 1e-30));
                        }
                    free(A), free(B), free(C), free(C0), free(P);
                }
    printf("\n  rgemm: worst error relative to the sum of |terms|: %.2g\n", worst);
    CU_ASSERT(worst < 1e-6);
    CU_ASSERT(untouched);
}

/* Carry factors of 1 change nothing; a carry of 0 at step 2 stops every
 * gradient that losses at steps >= 2 send to states before step 2: with
 * losses only at steps >= 2, h0 gets none. */
static void test_rnn_dir_carry(void)
{
    enum { T = 5, B = 2, I = 3, H = 4, GH = 12 };
    rnn_dir d;
    param_table pt = {0};
    CU_ASSERT_FATAL(rnn_dir_init(&d, CELL_GRU, I, 0, H, 0, 0, T, B) == 0);
    dir_params(&d, &pt, 0.5f, 40);
    float x[T * B * I], y[T * B * H], wy[T * B * H], h0[B * H],
        dh0a[B * H] = {0}, dh0b[B * H] = {0}, ones[T * B], cut[T * B];
    gc_fill(x, sizeof x / sizeof *x, 1.0f, 50);
    gc_fill(wy, sizeof wy / sizeof *wy, 1.0f, 51);
    gc_fill(h0, B * H, 1.0f, 52);
    for (int i = 0; i < T * B; i++) ones[i] = 1.0f, cut[i] = (i / B == 2) ? 0.0f : 1.0f;
    rnn_dir_forward(&d, T, B, x, I, NULL, NULL, h0, NULL, y, H, NULL, NULL);
    rnn_dir_backward(&d, T, B, x, I, NULL, NULL, wy, H, NULL, NULL, NULL, NULL, I, NULL, dh0a,
                     NULL);
    float g_full[GH * H];
    memcpy(g_full, param_grad(&pt, 1), sizeof g_full);
    param_zero_grad(&pt);
    rnn_dir_backward(&d, T, B, x, I, NULL, NULL, wy, H, NULL, NULL, ones, NULL, I, NULL, dh0b,
                     NULL);
    CU_ASSERT_EQUAL(memcmp(g_full, param_grad(&pt, 1), sizeof g_full), 0);
    CU_ASSERT_EQUAL(memcmp(dh0a, dh0b, sizeof dh0a), 0);
    float wlate[T * B * H];
    memcpy(wlate, wy, sizeof wy);
    memset(wlate, 0, 2 * B * H * sizeof(float)); /* no loss at steps 0, 1 */
    memset(dh0a, 0, sizeof dh0a);
    memset(dh0b, 0, sizeof dh0b);
    rnn_dir_backward(&d, T, B, x, I, NULL, NULL, wlate, H, NULL, NULL, NULL, NULL, I, NULL, dh0a,
                     NULL);
    rnn_dir_backward(&d, T, B, x, I, NULL, NULL, wlate, H, NULL, NULL, cut, NULL, I, NULL, dh0b,
                     NULL);
    for (int i = 0; i < B * H; i++) CU_ASSERT_EQUAL(dh0b[i], 0.0f);
    double n0 = 0;
    for (int i = 0; i < B * H; i++) n0 += fabs(dh0a[i]);
    CU_ASSERT(n0 > 1e-3);
    rnn_dir_free(&d);
    param_table_free(&pt);
}

/* A zero initial state given as NULL (no product at the first step) and
 * no dh0 wanted (none at the last step of the backward) give exactly the
 * outputs and gradients of zeros given as a state and dh0 taken, with the
 * two products' rows counted as skipped; packed steps (rows ending at
 * different steps) included. */
static void check_zero_state(cell_kind cell, int reverse, int packed)
{
    enum { T = 5, B = 3, I = 4, H = 4, N = T * B };
    static const int bs[T] = {3, 2, 2, 1, 1};
    const int rows = packed ? 9 : N, n0 = packed ? bs[0] : B;
    rnn_dir d;
    param_table pt = {0};
    CU_ASSERT_FATAL(rnn_dir_init(&d, cell, I, 0, H, reverse, 0, T, B) == 0);
    dir_params(&d, &pt, 0.6f, 80);
    if (packed) d.bs = bs;
    float x[N * I], wy[N * H], zeros[B * H] = {0}, dh0[B * H] = {0}, y[2][N * H], dx[2][N * I];
    float *g[2][4];
    gc_fill(x, N * I, 1.0f, 90);
    gc_fill(wy, N * H, 1.0f, 91);
    memset(dx, 0, sizeof dx);
    int skipped[2];
    for (int k = 0; k < 2; k++) { /* k = 0: zeros given; k = 1: NULL */
        param_zero_grad(&pt);
        rnn_dir_forward(&d, T, B, x, I, NULL, NULL, k ? NULL : zeros, NULL, y[k], H, NULL, NULL);
        rnn_dir_backward(&d, T, B, x, I, NULL, NULL, wy, H, NULL, NULL, NULL, dx[k], I, NULL,
                         k ? NULL : dh0, NULL);
        skipped[k] = d.skipped;
        for (int i = 0; i < 4; i++) {
            g[k][i] = malloc(pt.t[i].size * sizeof(float));
            CU_ASSERT_FATAL(g[k][i] != NULL);
            memcpy(g[k][i], param_grad(&pt, i), pt.t[i].size * sizeof(float));
        }
    }
    int differ = 0;
    for (int r = 0; r < rows * H; r++) differ += y[0][r] != y[1][r];
    for (int r = 0; r < rows * I; r++) differ += dx[0][r] != dx[1][r];
    for (int i = 0; i < 4; i++)
        for (size_t j = 0; j < pt.t[i].size; j++) differ += g[0][i][j] != g[1][i][j];
    CU_ASSERT_EQUAL(differ, 0);
    CU_ASSERT_EQUAL(skipped[0], 0);
    CU_ASSERT_EQUAL(skipped[1], 2 * n0);
    if (differ || skipped[0] != 0 || skipped[1] != 2 * n0)
        fprintf(stderr, "zero state %s reverse=%d packed=%d: %d values differ, skipped %d / %d\n",
                cell_name(cell), reverse, packed, differ, skipped[0], skipped[1]);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 4; i++) free(g[k][i]);
    rnn_dir_free(&d);
    param_table_free(&pt);
}

static void test_rnn_dir_zero_state(void)
{
    for (int cell = 0; cell < 3; cell++)
        for (int rev = 0; rev < 2; rev++)
            for (int packed = 0; packed < 2 - rev; packed++) /* reverse is never packed */
                check_zero_state((cell_kind)cell, rev, packed);
}

/* ------------------------------------------------------------- stacks */

typedef struct {
    rnn_stack s;
    param_table pt;
    int T, B, I, C, H, L;
    float *x, *ctx, *h0, *c0, *hT, *cT, *wy, *wh, *wc;
    rnn_dropout_key key;
    int64_t ex[3];
} stack_ctx;

static double stack_loss(void *p)
{
    stack_ctx *c = p;
    rnn_stack_forward(&c->s, c->T, c->B, c->x, NULL, c->ctx, c->h0, c->c0, c->hT, c->cT, &c->key);
    size_t BH = (size_t)c->B * c->H, LBH = (size_t)c->L * BH;
    double l = gc_dot(c->wy, c->s.y[c->L - 1], (size_t)c->T * BH) + gc_dot(c->wh, c->hT, LBH);
    if (c->s.cell == CELL_LSTM) l += gc_dot(c->wc, c->cT, LBH);
    return l;
}

static void check_stack(cell_kind cell, int L, int bidi, float dropout)
{
    stack_ctx c;
    memset(&c, 0, sizeof c);
    c.T = 4, c.B = 3, c.I = 5, c.C = bidi ? 0 : 3, c.H = 4, c.L = L;
    const size_t TB = (size_t)c.T * c.B, BH = (size_t)c.B * c.H, LBH = (size_t)L * BH;
    CU_ASSERT_FATAL(rnn_stack_init(&c.s, cell, L, bidi, c.I, c.C, c.H, dropout, 0, c.T, c.B) == 0);
    int first = rnn_stack_register(&c.s, &c.pt, "rnn");
    CU_ASSERT_FATAL(first == 0);
    CU_ASSERT_EQUAL(c.pt.n, 4 * L * (bidi ? 2 : 1));
    CU_ASSERT_FATAL(param_table_alloc(&c.pt) == 0);
    rnn_stack_bind(&c.s, &c.pt, first);
    for (int i = 0; i < c.pt.n; i++) gc_fill(param_data(&c.pt, i), c.pt.t[i].size, 0.6f, 60 + i);
    float *buf = calloc(TB * c.I * 2 + TB * c.H + LBH * 9 + (size_t)c.B * c.C * 2, sizeof(float));
    float *p = buf;
    c.x = p, p += TB * c.I;
    float *dx = p;
    p += TB * c.I;
    c.wy = p, p += TB * c.H;
    c.h0 = p, p += LBH;
    c.c0 = p, p += LBH;
    c.hT = p, p += LBH;
    c.cT = p, p += LBH;
    c.wh = p, p += LBH;
    c.wc = p, p += LBH;
    float *dh0 = p;
    p += LBH;
    float *dc0 = p;
    p += LBH;
    float *dctx = p;
    p += (size_t)c.B * c.C;
    c.ctx = c.C ? p : NULL;
    gc_fill(c.x, TB * c.I, 1.0f, 70);
    gc_fill(c.h0, LBH, 0.8f, 71);
    gc_fill(c.c0, LBH, 0.8f, 72);
    gc_fill(c.wy, TB * c.H, 1.0f, 73);
    gc_fill(c.wh, LBH, 1.0f, 74);
    gc_fill(c.wc, LBH, 1.0f, 75);
    if (c.C) gc_fill(c.ctx, (size_t)c.B * c.C, 1.0f, 76);
    c.ex[0] = 11, c.ex[1] = 5, c.ex[2] = 42;
    c.key = (rnn_dropout_key){1234, 7, 0, c.ex};

    stack_loss(&c);
    rnn_stack_backward(&c.s, c.T, c.B, c.x, NULL, c.ctx, c.wy, c.wh,
                       cell == CELL_LSTM ? c.wc : NULL, NULL, dx, c.C ? dctx : NULL, dh0, dc0);
    int bad = 0;
    for (int i = 0; i < c.pt.n; i++)
        bad += gc_check(c.pt.t[i].name, param_data(&c.pt, i), param_grad(&c.pt, i), c.pt.t[i].size,
                        stack_loss, &c, 0, &worst_seen);
    bad += gc_check("x", c.x, dx, TB * c.I, stack_loss, &c, 0, &worst_seen);
    if (c.C) bad += gc_check("ctx", c.ctx, dctx, (size_t)c.B * c.C, stack_loss, &c, 0, &worst_seen);
    bad += gc_check("h0", c.h0, dh0, LBH, stack_loss, &c, 0, &worst_seen);
    if (cell == CELL_LSTM) bad += gc_check("c0", c.c0, dc0, LBH, stack_loss, &c, 0, &worst_seen);
    if (bad)
        fprintf(stderr, "rnn_stack %s L=%d bidi=%d dropout=%.1f: %d bad\n", cell_name(cell), L,
                bidi, dropout, bad);
    CU_ASSERT_EQUAL(bad, 0);
    if (dropout > 0 && L > 1) {
        /* the mask drops about p of the units and scales the rest by 1/(1−p) */
        size_t zeros = 0, n = TB * c.H;
        for (size_t i = 0; i < n; i++) {
            float m = c.s.mask[1][i];
            CU_ASSERT(m == 0.0f || fabsf(m - 1.0f / (1.0f - dropout)) < 1e-6f);
            zeros += m == 0.0f;
        }
        CU_ASSERT(zeros > 0 && zeros < n);
    }
    rnn_stack_free(&c.s);
    param_table_free(&c.pt);
    free(buf);
}

static void test_rnn_stack(void)
{
    for (int cell = 0; cell < 3; cell++)
        for (int L = 1; L <= 2; L++)
            for (int bidi = 0; bidi < 2; bidi++) {
                check_stack((cell_kind)cell, L, bidi, 0.0f);
                if (L == 2) check_stack((cell_kind)cell, L, bidi, 0.3f);
            }
}

/* ----------------------------------------------------------- optimizers */

static void test_optimizers(void)
{
    param_table pt = {0};
    param_table_add(&pt, "p", 1, 5, 0);
    param_table_add(&pt, "q", 2, 2, 3);
    CU_ASSERT_FATAL(param_table_alloc(&pt) == 0);
    CU_ASSERT_EQUAL(pt.t[1].offset % 16, 0);
    CU_ASSERT_EQUAL(param_table_find(&pt, "q"), 1);
    CU_ASSERT_EQUAL(param_table_find(&pt, "r"), -1);
    CU_ASSERT_EQUAL(param_table_add(&pt, "late", 1, 1, 0), -1); /* table is frozen */
    float *p = param_data(&pt, 0), *g = param_grad(&pt, 0);
    float p0[5] = {1, -2, 3, 0.5f, 0}, g0[5] = {0.1f, -0.2f, 0.3f, 1.0f, -4.0f};

    /* SGD: p − lr g */
    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_SGD, 0.5f, &pt) == 0);
    memcpy(p, p0, sizeof p0);
    memcpy(g, g0, sizeof g0);
    optimizer_step(&o, &pt);
    for (int i = 0; i < 5; i++) CU_ASSERT_DOUBLE_EQUAL(p[i], p0[i] - 0.5 * g0[i], 1e-6);
    optimizer_free(&o);

    /* Adam, two steps, against the formula in double */
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.01f, &pt) == 0);
    memcpy(p, p0, sizeof p0);
    double m[5] = {0}, v[5] = {0}, ref[5];
    for (int i = 0; i < 5; i++) ref[i] = p0[i];
    for (int t = 1; t <= 2; t++) {
        for (int i = 0; i < 5; i++) g[i] = g0[i] * (float)t;
        optimizer_step(&o, &pt);
        for (int i = 0; i < 5; i++) {
            double gi = (double)g0[i] * t;
            m[i] = 0.9 * m[i] + 0.1 * gi;
            v[i] = 0.999 * v[i] + 0.001 * gi * gi;
            double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
            ref[i] -= 0.01 * mh / (sqrt(vh) + 1e-8);
        }
    }
    for (int i = 0; i < 5; i++) CU_ASSERT_DOUBLE_EQUAL(p[i], ref[i], 1e-6);
    CU_ASSERT_EQUAL(o.t, 2);
    optimizer_free(&o);

    /* the training step's fused form: update from scale·g (here 1/8 of a
     * gradient 8× too large), then the gradient buffer is zero */
    for (int kind = 0; kind < 2; kind++) {
        optimizer o1, o2;
        CU_ASSERT_FATAL(optimizer_init(&o1, (opt_kind)kind, 0.01f, &pt) == 0);
        CU_ASSERT_FATAL(optimizer_init(&o2, (opt_kind)kind, 0.01f, &pt) == 0);
        float a[5];
        memcpy(p, p0, sizeof p0);
        for (int t = 1; t <= 3; t++) {
            for (int i = 0; i < 5; i++) g[i] = g0[i] * (float)t;
            optimizer_step(&o1, &pt);
        }
        memcpy(a, p, sizeof a);
        memcpy(p, p0, sizeof p0);
        for (int t = 1; t <= 3; t++) {
            for (int i = 0; i < 5; i++) g[i] = 8.0f * g0[i] * (float)t;
            optimizer_step_scaled(&o2, &pt, 0.125f);
            for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(g[i], 0.0f);
        }
        for (int i = 0; i < 5; i++) CU_ASSERT_EQUAL(p[i], a[i]); /* ×8 then ×1/8 is exact */
        optimizer_free(&o1);
        optimizer_free(&o2);
    }
    /* the trainer's update: average over tokens, clip, step; returns the
     * averaged gradient's norm (here ‖g0‖ = 4.14, clipped to 1) */
    {
        optimizer o1;
        CU_ASSERT_FATAL(optimizer_init(&o1, OPT_SGD, 0.5f, &pt) == 0);
        param_zero_grad(&pt);
        double n2 = 0;
        for (int i = 0; i < 5; i++) n2 += (double)g0[i] * g0[i];
        memcpy(p, p0, sizeof p0);
        for (int i = 0; i < 5; i++) g[i] = 8.0f * g0[i];
        CU_ASSERT_DOUBLE_EQUAL(optimizer_update(&o1, &pt, 8.0, 1.0), sqrt(n2), 1e-6);
        for (int i = 0; i < 5; i++) {
            CU_ASSERT_EQUAL(g[i], 0.0f);
            CU_ASSERT_DOUBLE_EQUAL(p[i], p0[i] - 0.5 * g0[i] / sqrt(n2), 1e-6);
        }
        optimizer_free(&o1);
    }
    /* the clipping factor, and the norm against a double sum over many elements */
    CU_ASSERT_DOUBLE_EQUAL(grad_clip_factor(4.0, 2.0), 0.5, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(grad_clip_factor(1.0, 2.0), 1.0, 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(grad_clip_factor(9.0, 0.0), 1.0, 1e-15);
    {
        param_table big = {0};
        param_table_add(&big, "w", 1, 100003, 0);
        CU_ASSERT_FATAL(param_table_alloc(&big) == 0);
        double ref2 = 0.0;
        for (int i = 0; i < 100003; i++) {
            big.grad[i] = (float)rng_normal(4, RNG_INIT, 0, (uint64_t)i, 0);
            ref2 += (double)big.grad[i] * big.grad[i];
        }
        CU_ASSERT_DOUBLE_EQUAL(grad_norm(&big), sqrt(ref2), 1e-9 * sqrt(ref2));
        /* threads summing whole chunks (two ranges, a chunk boundary apart)
         * give grad_norm's very bits; chunks of very different sizes make
         * the order of their sums show in the last bits */
        for (int i = 0; i < 100003; i++) big.grad[i] *= (float)(1 + (i / GRAD_CHUNK) * 997);
        const size_t n = big.total, split = 3 * GRAD_CHUNK;
        double sums[8] = {0};
        CU_ASSERT_FATAL(n > split && (n + GRAD_CHUNK - 1) / GRAD_CHUNK <= 8);
        grad_chunk_sums(big.grad, n, split, n, sums);
        grad_chunk_sums(big.grad, n, 0, split, sums);
        CU_ASSERT_EQUAL(grad_norm_of_chunks(sums, n), grad_norm(&big));
        param_table_free(&big);
    }

    /* clipping: global norm over both tensors */
    param_zero_grad(&pt);
    g[0] = 3.0f;
    param_grad(&pt, 1)[5] = 4.0f;
    CU_ASSERT_DOUBLE_EQUAL(grad_norm(&pt), 5.0, 1e-9);
    double before = grad_clip(&pt, 1.0);
    CU_ASSERT_DOUBLE_EQUAL(before, 5.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(grad_norm(&pt), 1.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(g[0], 0.6, 1e-6);
    grad_clip(&pt, 10.0); /* below the threshold: unchanged */
    CU_ASSERT_DOUBLE_EQUAL(g[0], 0.6, 1e-6);
    param_table_free(&pt);
}

static void test_rng(void)
{
    /* keyed, stateless: same key same value, other key other value; uniform-ish */
    CU_ASSERT_EQUAL(rng_u64(1, RNG_INIT, 2, 3, 4), rng_u64(1, RNG_INIT, 2, 3, 4));
    CU_ASSERT_NOT_EQUAL(rng_u64(1, RNG_INIT, 2, 3, 4), rng_u64(1, RNG_DROPOUT, 2, 3, 4));
    CU_ASSERT_NOT_EQUAL(rng_u64(1, RNG_INIT, 2, 3, 4), rng_u64(2, RNG_INIT, 2, 3, 4));
    double s = 0, s2 = 0;
    int n = 100000, hist[10] = {0};
    for (int i = 0; i < n; i++) {
        float u = rng_uniform(9, RNG_SHUFFLE, 0, (uint64_t)i, 0);
        CU_ASSERT(u >= 0.0f && u < 1.0f);
        hist[(int)(u * 10)]++;
        double z = rng_normal(9, RNG_INIT, 0, (uint64_t)i, 0);
        s += z, s2 += z * z;
    }
    for (int k = 0; k < 10; k++) CU_ASSERT(abs(hist[k] - n / 10) < 600); /* ~6 sigma */
    CU_ASSERT(fabs(s / n) < 0.02);
    CU_ASSERT(fabs(s2 / n - 1.0) < 0.03);
    for (int i = 0; i < 1000; i++) CU_ASSERT(rng_below(7, 3, RNG_OFFSET, (uint64_t)i, 0, 0) < 7);
}

/* vm_expf, vm_sigmoidf, vm_tanhf against double precision: relative error
 * over a dense sweep of the range the cells see, and beyond (saturation). */
static void test_vmath(void)
{
    double we = 0, ws = 0, wt = 0;
    for (int i = -2000000; i <= 2000000; i++) {
        const float x = (float)i * 4.3e-5f; /* ±86 */
        const double e = exp((double)x), sg = 1.0 / (1.0 + exp(-(double)x));
        const double th = tanh((double)x);
        we = fmax(we, fabs(vm_expf(x) - e) / e);
        ws = fmax(ws, fabs(vm_sigmoidf(x) - sg) / sg);
        if (th != 0.0) wt = fmax(wt, fabs(vm_tanhf(x) - th) / fabs(th));
    }
    /* tiny arguments, where tanh x ≈ x must stay relative */
    for (float x = 1e-30f; x < 1e-2f; x *= 1.01f) {
        wt = fmax(wt, fabs(vm_tanhf(x) - tanh((double)x)) / tanh((double)x));
        wt = fmax(wt, fabs(vm_tanhf(-x) + tanh((double)x)) / tanh((double)x));
    }
    printf("\n  vmath worst relative error: exp %.2g, sigmoid %.2g, tanh %.2g\n", we, ws, wt);
    CU_ASSERT(we < 4e-7);
    CU_ASSERT(ws < 4e-7);
    CU_ASSERT(wt < 4e-7);
    /* saturation, signs, exact points, NaN */
    CU_ASSERT_EQUAL(vm_tanhf(0.0f), 0.0f);
    CU_ASSERT_EQUAL(vm_tanhf(30.0f), 1.0f);
    CU_ASSERT_EQUAL(vm_tanhf(-INFINITY), -1.0f);
    CU_ASSERT_EQUAL(vm_sigmoidf(INFINITY), 1.0f);
    CU_ASSERT(vm_sigmoidf(-INFINITY) >= 0.0f && vm_sigmoidf(-INFINITY) < 1e-37f);
    CU_ASSERT(vm_expf(-1000.0f) >= 0.0f && vm_expf(-1000.0f) < 1e-37f);
    CU_ASSERT(isfinite(vm_expf(1000.0f)));
    CU_ASSERT(isnan(vm_expf(NAN)) && isnan(vm_sigmoidf(NAN)) && isnan(vm_tanhf(NAN)));
}

/* the keyed stream behind dropout masks: deterministic, uniform, and
 * uncorrelated between neighbouring keys and draws */
static void test_rng_stream(void)
{
    CU_ASSERT_EQUAL(rng_stream_uniform(42, 7), rng_stream_uniform(42, 7));
    int hist[10] = {0}, n = 0, same = 0;
    double sxy = 0, sx = 0, sy = 0;
    for (uint64_t k = 0; k < 1000; k++) {
        uint64_t key = rng_u64(5, RNG_DROPOUT, 1, k, 3);
        for (uint64_t j = 0; j < 100; j++) {
            float u = rng_stream_uniform(key, j), v = rng_stream_uniform(key, j + 1);
            CU_ASSERT(u >= 0.0f && u < 1.0f);
            hist[(int)(u * 10)]++;
            sxy += (double)u * v, sx += u, sy += v, n++;
            same += u == rng_stream_uniform(rng_u64(5, RNG_DROPOUT, 1, k + 1, 3), j);
        }
    }
    for (int b = 0; b < 10; b++) CU_ASSERT(abs(hist[b] - n / 10) < 600);
    const double cov = sxy / n - (sx / n) * (sy / n); /* var of U(0,1) is 1/12 */
    CU_ASSERT(fabs(cov * 12.0) < 0.02);
    CU_ASSERT(same < 10);
}

static void report(void)
{
    printf("\n  worst relative difference (analytic vs numeric) in test_layers: %.3g\n",
           worst_seen);
}

void register_suites(void)
{
    CU_pSuite s = CU_add_suite("layers", NULL, NULL);
    CU_add_test(s, "rng", test_rng);
    CU_add_test(s, "rng stream (dropout masks)", test_rng_stream);
    CU_add_test(s, "vectorised exp, sigmoid, tanh", test_vmath);
    CU_add_test(s, "embedding gradient", test_embedding);
    CU_add_test(s, "dense gradient", test_dense);
    CU_add_test(s, "masked softmax cross-entropy", test_xent);
    CU_add_test(s, "rnn/gru/lstm direction gradients", test_rnn_dir);
    CU_add_test(s, "shared input rows (one product per distinct id)", test_rnn_dir_shared);
    CU_add_test(s, "recurrent product with B packed once (rgemm)", test_rgemm);
    CU_add_test(s, "truncation carry factors", test_rnn_dir_carry);
    CU_add_test(s, "zero initial state: first and last products skipped", test_rnn_dir_zero_state);
    CU_add_test(s, "stacked, bidirectional, dropout gradients", test_rnn_stack);
    CU_add_test(s, "sgd, adam, clipping", test_optimizers);
    CU_add_test(s, "report", report);
}

/* Row-wise layers: embedding, dense (torch.nn.Linear), fused masked softmax
 * cross-entropy. Shapes use the legend of model.h. */
#include "model.h"

#include "blas_private.h"
#include "vmath.h"
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- embedding */

void embedding_forward(float *out, const float *W, const int32_t *ids, int N, int E)
{
    for (int n = 0; n < N; n++)
        memcpy(out + (size_t)n * E, W + (size_t)ids[n] * E, (size_t)E * sizeof(float));
}

void embedding_backward(float *dW, const float *dout, const int32_t *ids, int N, int E)
{
    for (int n = 0; n < N; n++) {
        float *row = dW + (size_t)ids[n] * E;
        const float *d = dout + (size_t)n * E;
        for (int e = 0; e < E; e++) row[e] += d[e];
    }
}

/* -------------------------------------------------------------------- dense */

size_t dense_ws_floats(int Nmax, int I, int O)
{
    if (!rgemm_available() || (double)Nmax * I * O > RG_SMALL) return 0;
    return rgemm_packed_size(I, O);
}

/* Whether the product (M, N, K) runs on rgemm (rg: the layer has a workspace). */
static int dense_rg(int rg, int M, int N, int K)
{
    return rg && rgemm_suits(openblas_get_num_threads(), M, N, K);
}

void dense_forward(float *out, const float *in, const float *W, const float *b, int N, int I, int O,
                   float *ws, size_t ws_n)
{
    if (N == 0) return;
    if (dense_rg(ws != NULL, N, O, I) && rgemm_packed_size(I, O) <= ws_n) {
        rgemm_pack(ws, W, I, O, I, 1); /* W^T (I, O) */
        if (!b) memset(out, 0, (size_t)N * O * sizeof(float));
        rgemm(N, O, I, in, I, ws, b, out, O);
        return;
    }
    /* out = in · W^T (+ b broadcast over rows): seed out with b, then beta = 1 */
    float beta = 0.0f;
    if (b) {
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * O, b, (size_t)O * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, I, 1.0f, in, I, W, I, beta, out, O);
}

void dense_backward(float *din, float *dW, float *db, const float *dout, const float *in,
                    const float *W, int N, int I, int O, int rg)
{
    if (N == 0) return;
    /* dW (O, I) += dout^T (O, N) · in (N, I) */
    gemm_tn_acc(dense_rg(rg, O, I, N), O, I, N, dout, O, in, I, dW, I);
    if (db)
        for (int n = 0; n < N; n++) {
            const float *d = dout + (size_t)n * O;
            for (int o = 0; o < O; o++) db[o] += d[o];
        }
    /* din (N, I) += dout (N, O) · W (O, I) */
    if (din) gemm_nn_acc(dense_rg(rg, N, I, O), N, I, O, dout, O, W, I, din, I);
}

/* ---------------------------------------------------- softmax cross-entropy */

/* A row's softmax numerators in place: z ← e^(z − max z), returning Σ e in
 * double. The max and the sum run in XL fixed lanes combined in a fixed order,
 * so they vectorise and still give the same bits at every vector width. The
 * last V mod XL values go through a padded block of XL lanes too (a scalar
 * tail of vm_expf calls cost as much as the vectorised rest at V = 201). */
#define XL 16
VM_CLONES static double softmax_numerators(float *restrict z, int V, float *max_out)
{
    const int Vb = V - V % XL, r = V - Vb;
    float m[XL], t[XL];
    for (int l = 0; l < XL; l++) m[l] = z[0];
    for (int v = 0; v < Vb; v += XL)
        for (int l = 0; l < XL; l++) m[l] = z[v + l] > m[l] ? z[v + l] : m[l];
    /* the tail, padded with z[0] (which changes neither the max nor, below, the sum) */
    for (int l = 0; l < XL; l++) t[l] = l < r ? z[Vb + l] : z[0];
    for (int l = 0; l < XL; l++) m[l] = t[l] > m[l] ? t[l] : m[l];
    float mx = m[0];
    for (int l = 1; l < XL; l++) mx = m[l] > mx ? m[l] : mx;
    for (int v = 0; v < Vb; v += XL)
        for (int l = 0; l < XL; l++) z[v + l] = vm_expf(z[v + l] - mx);
    for (int l = 0; l < XL; l++) t[l] = vm_expf(t[l] - mx);
    for (int l = 0; l < r; l++) z[Vb + l] = t[l];
    double s[XL] = {0};
    for (int v = 0; v < Vb; v += XL)
        for (int l = 0; l < XL; l++) s[l] += (double)z[v + l];
    for (int l = 0; l < XL; l++) s[l] += l < r ? (double)t[l] : 0.0;
    double sum = 0.0;
    for (int l = 0; l < XL; l++) sum += s[l];
    *max_out = mx;
    return sum;
}

VM_CLONES static void scale_row(float *restrict z, int V, float k)
{
    for (int v = 0; v < V; v++) z[v] *= k;
}

/* loss_n = logsumexp(z_n) − z_n[y_n] ; d loss_n / d z_n = softmax(z_n) − onehot(y_n).
 * Max-subtracted, with the exponent sum in double for long rows. */
double xent_forward_backward(float *logits, const int32_t *targets, int N, int V, long *count)
{
    double loss = 0.0;
    long cnt = 0;
    *count = 0;
    if (V < 1) return 0.0;
    for (int n = 0; n < N; n++) {
        float *z = logits + (size_t)n * V;
        int y = targets[n];
        if (y < 0) {
            memset(z, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float zy = z[y];
        float mx;
        double s = softmax_numerators(z, V, &mx);
        s = s < 1.0 ? 1.0 : s; /* >= 1: the maximum contributes e^0 */
        loss += log(s) - (double)(zy - mx);
        scale_row(z, V, (float)(1.0 / s));
        z[y] -= 1.0f;
        cnt++;
    }
    *count = cnt;
    return loss;
}

/* Label smoothing (model.h): Σ_v z_v is taken before the row is overwritten,
 * in double, and each row's loss is lse − (1 − eps)·z_y − (eps/V)·Σ z. */
double xent_smooth_forward_backward(float *logits, const int32_t *targets, int N, int V, float eps,
                                    long *count)
{
    double loss = 0.0;
    long cnt = 0;
    *count = 0;
    if (V < 1) return 0.0;
    const float uniform = eps / (float)V, keep = 1.0f - eps;
    for (int n = 0; n < N; n++) {
        float *z = logits + (size_t)n * V;
        int y = targets[n];
        if (y < 0) {
            memset(z, 0, (size_t)V * sizeof(float));
            continue;
        }
        const float zy = z[y];
        double zsum = 0.0;
        for (int v = 0; v < V; v++) zsum += (double)z[v];
        float mx;
        double s = softmax_numerators(z, V, &mx);
        s = s < 1.0 ? 1.0 : s;
        const double lse = log(s) + (double)mx;
        loss += lse - (double)keep * (double)zy - (double)uniform * zsum;
        scale_row(z, V, (float)(1.0 / s));
        for (int v = 0; v < V; v++) z[v] -= uniform;
        z[y] -= keep;
        cnt++;
    }
    *count = cnt;
    return loss;
}

double row_logsumexp(const float *z, int V)
{
    float mx = z[0];
    for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
    double s = 0.0; /* >= 1: the maximum contributes exp(0) */
    for (int v = 0; v < V; v++) s += exp((double)(z[v] - mx));
    s = s < 1.0 ? 1.0 : s;
    return (double)mx + log(s);
}

double xent_forward(const float *logits, const int32_t *targets, int N, int V, long *count)
{
    double loss = 0.0;
    long cnt = 0;
    *count = 0;
    if (V < 1) return 0.0;
    for (int n = 0; n < N; n++) {
        const float *z = logits + (size_t)n * V;
        int y = targets[n];
        if (y < 0) continue;
        loss += row_logsumexp(z, V) - (double)z[y];
        cnt++;
    }
    *count = cnt;
    return loss;
}

/* SGD, Adam and AdamW over the flat parameter buffer, gradient scaling and
 * global-norm clipping. One loop each over the whole buffer: alignment padding
 * between tensors holds zeros in parameters, gradients and moments alike, so
 * it stays zero. */
#include "model.h"

#include "vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int opt_parse(const char *s, opt_kind *out)
{
    if (strcmp(s, "sgd") == 0)
        *out = OPT_SGD;
    else if (strcmp(s, "adam") == 0)
        *out = OPT_ADAM;
    else if (strcmp(s, "adamw") == 0)
        *out = OPT_ADAMW;
    else
        return MODEL_EINVAL;
    return MODEL_OK;
}

const char *opt_name(opt_kind k)
{
    return k == OPT_ADAMW ? "adamw" : k == OPT_ADAM ? "adam" : "sgd";
}

int opt_has_moments(opt_kind k)
{
    return k == OPT_ADAM || k == OPT_ADAMW;
}

int optimizer_init(optimizer *o, opt_kind kind, float lr, const param_table *pt)
{
    memset(o, 0, sizeof *o);
    o->kind = kind;
    o->lr = lr;
    o->beta1 = 0.9f; /* torch.optim.Adam defaults */
    o->beta2 = 0.999f;
    o->eps = 1e-8f;
    o->n = pt->total;
    if (opt_has_moments(kind)) {
        o->m = param_buffer_alloc(pt);
        o->v = param_buffer_alloc(pt);
        if (!o->m || !o->v) {
            optimizer_free(o);
            return MODEL_ENOMEM;
        }
    }
    return MODEL_OK;
}

void optimizer_free(optimizer *o)
{
    param_buffer_free(o->m);
    param_buffer_free(o->v);
    o->m = o->v = NULL;
}

/* The update with g·scale for g, zeroing the gradient as it goes (one pass
 * over parameters, gradient and moments instead of four; model/CMakeLists.txt
 * keeps GCC from splitting the zeroing out into a memset). Compiled per
 * instruction set; element-wise, so every width gives the same bits. */
VM_CLONES static void sgd_update(size_t n, float *restrict p, float *restrict g, float lr,
                                 float scale)
{
    for (size_t i = 0; i < n; i++) {
        p[i] -= lr * (g[i] * scale);
        g[i] = 0.0f;
    }
}

/* torch.optim.Adam (amsgrad off, no weight decay):
 *   m = β1 m + (1−β1) g ; v = β2 v + (1−β2) g²
 *   p -= lr / (1−β1^t) · m / (√v / √(1−β2^t) + ε) */
VM_CLONES static void adam_update(size_t n, float *restrict p, float *restrict g, float *restrict m,
                                  float *restrict v, float b1, float b2, float step, float rbc2,
                                  float eps, float scale)
{
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] * scale;
        g[i] = 0.0f;
        m[i] = b1 * m[i] + (1.0f - b1) * gi;
        v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
        p[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
    }
}

/* torch.optim.AdamW: p ← p·(1 − lr·λ), then Adam's step on the decayed p.
 * As torch, 1 − β and the bias corrections come from the betas in double
 * (adam_update's 1.0f − b is torch's value to 1e-5 relative, kept for
 * Adam's bits). */
VM_CLONES static void adamw_update(size_t n, float *restrict p, float *restrict g,
                                   float *restrict m, float *restrict v, const float k[7])
{
    const float b1 = k[0], b2 = k[1], c1 = k[2], c2 = k[3], step = k[4], rbc2 = k[5], eps = k[6];
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i];
        g[i] = 0.0f;
        m[i] = b1 * m[i] + c1 * gi;
        v[i] = b2 * v[i] + c2 * gi * gi;
        p[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
    }
}

/* AdamW's decay and update over [lo, hi): the decay is its own pass, as
 * torch's mul_, so p·(1 − lr·λ) is rounded before the step. The scale is
 * folded into g first (g·scale, as adam_update). */
static void adamw_apply(const optimizer *o, param_table *pt, float scale, size_t lo, size_t hi)
{
    const double b1 = 0.9, b2 = 0.999; /* torch's defaults, in double as torch holds them */
    const double bc1 = 1.0 - pow(b1, (double)o->t), bc2 = 1.0 - pow(b2, (double)o->t);
    const float k[7] = {(float)b1,
                        (float)b2,
                        (float)(1.0 - b1),
                        (float)(1.0 - b2),
                        (float)(o->lr / bc1),
                        (float)(1.0 / sqrt(bc2)),
                        o->eps};
    const float decay = (float)(1.0 - (double)o->lr * (double)o->weight_decay);
    float *p = pt->data + lo, *g = pt->grad + lo;
    for (size_t i = 0; i < hi - lo; i++) p[i] *= decay, g[i] *= scale;
    adamw_update(hi - lo, p, g, o->m + lo, o->v + lo, k);
}

void optimizer_begin(optimizer *o)
{
    o->t++;
}

void optimizer_apply(const optimizer *o, param_table *pt, float scale, size_t lo, size_t hi)
{
    if (hi > o->n) hi = o->n;
    if (lo >= hi) return;
    if (o->kind == OPT_SGD) {
        sgd_update(hi - lo, pt->data + lo, pt->grad + lo, o->lr, scale);
        return;
    }
    if (o->kind == OPT_ADAMW) {
        adamw_apply(o, pt, scale, lo, hi);
        return;
    }
    const double bc1 = 1.0 - pow(o->beta1, (double)o->t);
    const double bc2 = 1.0 - pow(o->beta2, (double)o->t);
    adam_update(hi - lo, pt->data + lo, pt->grad + lo, o->m + lo, o->v + lo, o->beta1, o->beta2,
                (float)(o->lr / bc1), (float)(1.0 / sqrt(bc2)), o->eps, scale);
}

void optimizer_step_scaled(optimizer *o, param_table *pt, float scale)
{
    optimizer_begin(o);
    optimizer_apply(o, pt, scale, 0, o->n);
}

float optimizer_update_scale(double norm, double tokens, double clip)
{
    return (float)(grad_clip_factor(norm, clip) / tokens);
}

double optimizer_update(optimizer *o, param_table *pt, double tokens, double clip)
{
    const double norm = grad_norm(pt) / tokens; /* the norm of g/tokens */
    optimizer_step_scaled(o, pt, optimizer_update_scale(norm, tokens, clip));
    return norm;
}

void optimizer_step(optimizer *o, param_table *pt)
{
    optimizer_step_scaled(o, pt, 1.0f);
}

void grad_scale(param_table *pt, float scale)
{
    float *g = pt->grad;
    for (size_t i = 0; i < pt->total; i++) g[i] *= scale;
}

/* Σ g² in 16 double lanes combined in a fixed order: vectorised, and the same
 * bits at every vector width (a single running sum is a 4-cycle chain per
 * element: 17 ms a step on 10M parameters). */
VM_CLONES static double sum_squares(const float *restrict g, size_t n)
{
    double s[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; l++) s[l] += (double)g[i + l] * g[i + l];
    for (; i < n; i++) s[0] += (double)g[i] * g[i];
    double t = 0.0;
    for (int l = 0; l < 16; l++) t += s[l];
    return t;
}

/* Σ g² of chunk c of g (n floats): the norm's unit of work. */
static double chunk_squares(const float *g, size_t n, size_t c)
{
    const size_t a = c * GRAD_CHUNK;
    return sum_squares(g + a, n - a < GRAD_CHUNK ? n - a : GRAD_CHUNK);
}

void grad_chunk_sums(const float *g, size_t n, size_t lo, size_t hi, double *out)
{
    for (size_t c = lo / GRAD_CHUNK; c * GRAD_CHUNK < hi && c * GRAD_CHUNK < n; c++)
        out[c] = chunk_squares(g, n, c);
}

double grad_norm_of_chunks(const double *sums, size_t n)
{
    double s = 0.0;
    for (size_t c = 0; c * GRAD_CHUNK < n; c++) s += sums[c];
    return sqrt(s);
}

double grad_norm(const param_table *pt)
{
    double s = 0.0;
    for (size_t c = 0; c * GRAD_CHUNK < pt->total; c++) s += chunk_squares(pt->grad, pt->total, c);
    return sqrt(s);
}

double grad_clip_factor(double norm, double theta)
{
    return theta > 0 && norm > theta ? theta / norm : 1.0;
}

double grad_clip(param_table *pt, double theta)
{
    const double norm = grad_norm(pt), f = grad_clip_factor(norm, theta);
    if (f < 1.0) grad_scale(pt, (float)f);
    return norm;
}

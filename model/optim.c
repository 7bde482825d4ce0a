/* SGD and Adam over the flat parameter buffer, gradient scaling and
 * global-norm clipping. One loop each over the whole buffer: alignment padding
 * between tensors holds zeros in parameters, gradients and moments alike, so
 * it stays zero. */
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int opt_parse(const char *s, opt_kind *out)
{
    if (strcmp(s, "sgd") == 0)
        *out = OPT_SGD;
    else if (strcmp(s, "adam") == 0)
        *out = OPT_ADAM;
    else
        return MODEL_EINVAL;
    return MODEL_OK;
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
    if (kind == OPT_ADAM) {
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

void optimizer_step(optimizer *o, param_table *pt)
{
    float *p = pt->data;
    const float *g = pt->grad;
    size_t n = o->n;
    o->t++;
    if (o->kind == OPT_SGD) {
        for (size_t i = 0; i < n; i++) p[i] -= o->lr * g[i];
        return;
    }
    /* torch.optim.Adam (amsgrad off, no weight decay):
     *   m = β1 m + (1−β1) g ; v = β2 v + (1−β2) g²
     *   p -= lr / (1−β1^t) · m / (√v / √(1−β2^t) + ε) */
    const float b1 = o->beta1, b2 = o->beta2;
    const double bc1 = 1.0 - pow(b1, (double)o->t);
    const double bc2 = 1.0 - pow(b2, (double)o->t);
    const float step = (float)(o->lr / bc1);
    const float rbc2 = (float)(1.0 / sqrt(bc2));
    const float eps = o->eps;
    /* distinct buffers: the loop vectorises (sqrtf inline: -fno-math-errno),
     * with the same IEEE results element by element */
    float *restrict pw = p, *restrict m = o->m, *restrict v = o->v;
    const float *restrict gr = g;
    for (size_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1.0f - b1) * gr[i];
        v[i] = b2 * v[i] + (1.0f - b2) * gr[i] * gr[i];
        pw[i] -= step * m[i] / (sqrtf(v[i]) * rbc2 + eps);
    }
}

void grad_scale(param_table *pt, float scale)
{
    float *g = pt->grad;
    for (size_t i = 0; i < pt->total; i++) g[i] *= scale;
}

double grad_norm(const param_table *pt)
{
    double s = 0.0;
    const float *g = pt->grad;
    for (size_t i = 0; i < pt->total; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

double grad_clip(param_table *pt, double theta)
{
    double norm = grad_norm(pt);
    if (theta > 0 && norm > theta) grad_scale(pt, (float)(theta / norm));
    return norm;
}

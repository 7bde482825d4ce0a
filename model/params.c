/* The parameter table: one contiguous buffer for every parameter, one for
 * every gradient, and a table of named tensors into them. */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ALIGN_FLOATS 16 /* 64 bytes */

int param_table_add(param_table *pt, const char *name, int ndim, int d0, int d1)
{
    if (pt->data || ndim < 1 || ndim > PARAM_MAX_DIMS || d0 <= 0 || (ndim == 2 && d1 <= 0))
        return -1;
    if (strlen(name) >= PARAM_NAME_MAX || param_table_find(pt, name) >= 0) return -1;
    if (pt->n == pt->cap) {
        int cap = pt->cap ? 2 * pt->cap : 32;
        param_tensor *t = realloc(pt->t, (size_t)cap * sizeof *t);
        if (!t) return -1;
        pt->t = t;
        pt->cap = cap;
    }
    param_tensor *t = &pt->t[pt->n];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = d0;
    t->shape[1] = ndim == 2 ? d1 : 1;
    t->size = (size_t)d0 * (size_t)t->shape[1];
    t->offset = pt->total;
    pt->total += (t->size + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    return pt->n++;
}

float *param_buffer_alloc(const param_table *pt)
{
    size_t bytes = (pt->total ? pt->total : ALIGN_FLOATS) * sizeof(float);
    float *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

void param_buffer_free(float *p)
{
    free(p);
}

int param_table_alloc(param_table *pt)
{
    pt->data = param_buffer_alloc(pt);
    /* the gradient buffer has PARAM_GRAD_TAIL floats past `total` for the
     * trainer's per-step sums (loss, tokens), so one allreduce carries both */
    size_t bytes = (pt->total + PARAM_GRAD_TAIL) * sizeof(float);
    pt->grad = aligned_alloc(64, bytes);
    if (pt->grad) memset(pt->grad, 0, bytes);
    if (!pt->data || !pt->grad) {
        free(pt->data);
        free(pt->grad);
        pt->data = pt->grad = NULL;
        return MODEL_ENOMEM;
    }
    return MODEL_OK;
}

int param_table_find(const param_table *pt, const char *name)
{
    for (int i = 0; i < pt->n; i++)
        if (strcmp(pt->t[i].name, name) == 0) return i;
    return -1;
}

void param_table_free(param_table *pt)
{
    free(pt->t);
    free(pt->data);
    free(pt->grad);
    memset(pt, 0, sizeof *pt);
}

void param_zero_grad(param_table *pt)
{
    memset(pt->grad, 0, (pt->total + PARAM_GRAD_TAIL) * sizeof(float));
}

/* The parameter table: one contiguous buffer for every parameter, one for
 * every gradient, and a table of named tensors into them. */
#include "model.h"

#include <stdint.h>
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

/* n zeroed floats at a 64-byte boundary. From calloc, not aligned_alloc and
 * memset: a large block comes as fresh pages that nothing has touched, so a
 * model too large for the node is refused by its size before any page is
 * written (the trainer compares what was reserved with the memory
 * available), instead of being killed when the pages fill. The block's
 * start is kept just below the aligned pointer, for param_buffer_free. */
static float *zeroed_floats(size_t n)
{
    const size_t extra = 64 + sizeof(void *);
    if (n > (SIZE_MAX - extra) / sizeof(float)) return NULL;
    void *base = calloc(1, n * sizeof(float) + extra);
    if (!base) return NULL;
    const uintptr_t a = ((uintptr_t)base + sizeof(void *) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = base;
    return (float *)a;
}

float *param_buffer_alloc(const param_table *pt)
{
    return zeroed_floats(pt->total ? pt->total : ALIGN_FLOATS);
}

void param_buffer_free(float *p)
{
    if (p) free(((void **)p)[-1]);
}

int param_table_alloc(param_table *pt)
{
    pt->data = param_buffer_alloc(pt);
    /* the gradient buffer has PARAM_GRAD_TAIL floats past `total` for the
     * trainer's per-step sums (loss, tokens), so one allreduce carries both */
    pt->grad = zeroed_floats(pt->total + PARAM_GRAD_TAIL);
    if (!pt->data || !pt->grad) {
        param_buffer_free(pt->data);
        param_buffer_free(pt->grad);
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
    param_buffer_free(pt->data);
    param_buffer_free(pt->grad);
    memset(pt, 0, sizeof *pt);
}

void param_zero_grad(param_table *pt)
{
    memset(pt->grad, 0, (pt->total + PARAM_GRAD_TAIL) * sizeof(float));
}

/* Samplers: which examples (translation) or token offsets (LM) make up each
 * global batch, and which rows of it a rank takes. Every draw is keyed by
 * (seed, purpose, epoch, position) through model/rng.h, so the global batch is
 * the same for any world size and needs no saved generator state.
 *
 * Letters: n examples/tokens, B global batch, T num_steps, W world, off the
 * epoch's random offset (LM), L = stream length (LM sequential). */
#include "data_internal.h"
#include "rng.h"

#include <stdlib.h>
#include <string.h>

struct data_sampler_cache {
    long *perm; /* (cap) the permutation of epoch `epoch`, first len entries */
    long cap;
    long len;
    long epoch; /* -1: nothing cached */
};

/* Translation rows dealt by target length (data_sampler_set_lengths). */
struct data_sampler_deal {
    const int32_t *len; /* (n) target length of each pair */
    int max_len;
    long *whole; /* (B) the global batch's pairs */
    int *start;  /* (max_len + 2) counting sort: first position of each length */
};

/* Translation batches of about N target tokens (data_sampler_set_tokens):
 * the plan of epoch `epoch`, built from its permutation. */
struct data_sampler_plan {
    long tokens, window;
    long *sorted; /* (n) the permutation, each window sorted longest target first */
    long *start;  /* (n + 1) where each bucketed batch starts in sorted; start[nb] = n */
    long *order;  /* (n) the epoch's batch order: batch b is bucket order[b] */
    int *count;   /* (max_len + 2) counting sort */
    long nb;
    long epoch; /* -1: none built */
};

/* LM: the epoch's offset, in [0, T) for random, [0, T] for sequential. */
static long lm_offset(const data_sampler *s, long epoch)
{
    uint64_t range = (uint64_t)s->num_steps + (s->kind == DATA_SAMPLER_SEQUENTIAL);
    return (long)rng_below(range, s->seed, RNG_OFFSET, (uint64_t)epoch, 0, 0);
}

int data_sampler_init(data_sampler *s, data_task task, data_sampler_kind kind, long n, int batch,
                      int num_steps, uint64_t seed, int rank, int world, char *err, size_t errlen)
{
    if (!s) return data_fail(err, errlen, DATA_EINVAL, "data_sampler_init: s is NULL");
    memset(s, 0, sizeof *s);
    if (task != DATA_TASK_TRANSLATE && task != DATA_TASK_LM)
        return data_fail(err, errlen, DATA_EINVAL, "sampler: unknown task %d", (int)task);
    if (kind != DATA_SAMPLER_RANDOM && kind != DATA_SAMPLER_SEQUENTIAL)
        return data_fail(err, errlen, DATA_EINVAL, "sampler: unknown kind %d", (int)kind);
    if (batch < 1) return data_fail(err, errlen, DATA_EINVAL, "batch %d: must be >= 1", batch);
    if (world < 1 || rank < 0 || rank >= world)
        return data_fail(err, errlen, DATA_EINVAL, "rank %d of world %d: invalid", rank, world);
    if (world > batch)
        return data_fail(err, errlen, DATA_EINVAL,
                         "world size %d exceeds the global batch %d: every rank needs a row", world,
                         batch);
    if (n < 1) return data_fail(err, errlen, DATA_EINVAL, "sampler: empty corpus (n = %ld)", n);
    long cap = 0;
    if (task == DATA_TASK_LM) {
        if (num_steps < 1)
            return data_fail(err, errlen, DATA_EINVAL, "num_steps %d: must be >= 1", num_steps);
        /* Enough tokens for one batch at the largest offset, so no epoch is empty. */
        long long need = ((long long)batch + 1) * num_steps + (kind == DATA_SAMPLER_SEQUENTIAL);
        if ((long long)n < need)
            return data_fail(err, errlen, DATA_EINVAL,
                             "corpus of %ld tokens is too short for --batch %d x --steps %d "
                             "(needs at least %lld)",
                             n, batch, num_steps, need);
        if (kind == DATA_SAMPLER_RANDOM) cap = (n - 1) / num_steps; /* subsequences at off 0 */
    } else if (kind == DATA_SAMPLER_RANDOM) {
        cap = n;
    }
    s->task = task;
    s->kind = kind;
    s->n = n;
    s->batch = batch;
    s->num_steps = num_steps;
    s->seed = seed;
    s->rank = rank;
    s->world = world;
    if (cap > 0) {
        s->cache = calloc(1, sizeof *s->cache);
        if (!s->cache) goto nomem;
        s->cache->perm = malloc((size_t)cap * sizeof *s->cache->perm);
        if (!s->cache->perm) goto nomem;
        s->cache->cap = cap;
        s->cache->epoch = -1;
    }
    return DATA_OK;
nomem:
    data_sampler_free(s);
    return data_fail(err, errlen, DATA_ENOMEM, "sampler: out of memory for %ld indices", cap);
}

void data_sampler_free(data_sampler *s)
{
    if (!s) return;
    if (s->cache) free(s->cache->perm);
    free(s->cache);
    s->cache = NULL;
    if (s->deal) free(s->deal->whole), free(s->deal->start);
    free(s->deal);
    s->deal = NULL;
    if (s->plan) free(s->plan->sorted), free(s->plan->start), free(s->plan->order);
    if (s->plan) free(s->plan->count);
    free(s->plan);
    s->plan = NULL;
}

int data_sampler_set_lengths(data_sampler *s, const int32_t *len, int max_len)
{
    if (!s || !len || max_len < 1 || s->task != DATA_TASK_TRANSLATE || s->deal) return DATA_EINVAL;
    struct data_sampler_deal *d = calloc(1, sizeof *d);
    if (d) {
        d->whole = malloc((size_t)s->batch * sizeof *d->whole);
        d->start = malloc(((size_t)max_len + 2) * sizeof *d->start);
    }
    if (!d || !d->whole || !d->start) {
        if (d) free(d->whole), free(d->start);
        free(d);
        return DATA_ENOMEM;
    }
    d->len = len;
    d->max_len = max_len;
    s->deal = d;
    return DATA_OK;
}

static void fill_perm(const data_sampler *s, long epoch, long m);
static long build_plan(const data_sampler *s, long epoch);

long data_sampler_batches(const data_sampler *s, long epoch)
{
    if (!s || s->batch < 1 || epoch < 0) return 0;
    if (s->plan) return build_plan(s, epoch);
    long B = s->batch;
    if (s->task == DATA_TASK_TRANSLATE) return (s->n + B - 1) / B;
    long T = s->num_steps, off = lm_offset(s, epoch);
    if (s->kind == DATA_SAMPLER_RANDOM) return ((s->n - off - 1) / T) / B; /* full batches */
    return ((s->n - off - 1) / B) / T;
}

/* Fisher-Yates over [0, m), swap partner of position i keyed by (epoch, i). */
static void fill_perm(const data_sampler *s, long epoch, long m)
{
    struct data_sampler_cache *c = s->cache;
    if (c->epoch == epoch && c->len == m) return;
    for (long i = 0; i < m; i++) c->perm[i] = i;
    for (long i = m - 1; i > 0; i--) {
        long j =
            (long)rng_below((uint64_t)i + 1, s->seed, RNG_SHUFFLE, (uint64_t)epoch, (uint64_t)i, 0);
        long t = c->perm[i];
        c->perm[i] = c->perm[j];
        c->perm[j] = t;
    }
    c->epoch = epoch;
    c->len = m;
}

/* A pair's target length within [0, max_len]. */
static int clamp_len(const struct data_sampler_deal *d, long i)
{
    const int v = d->len[i];
    return v < 0 ? 0 : v > d->max_len ? d->max_len : v;
}

/* Deals a translation batch of `rows` pairs (order[r], or first + r) out by
 * target length: sorted longest first (stable), position p goes to rank
 * p mod world in even rounds of `world` positions, backwards in odd ones.
 * Every rank gets ⌊rows/W⌋ or ⌈rows/W⌉ pairs and, give or take one pair,
 * the same target tokens. */
static int deal_slice(const data_sampler *s, const long *order, long first, long rows,
                      data_slice *sl)
{
    struct data_sampler_deal *d = s->deal;
    const int T = d->max_len;
    for (long r = 0; r < rows; r++) d->whole[r] = order ? order[r] : first + r;
    memset(d->start, 0, ((size_t)T + 2) * sizeof *d->start);
    for (long r = 0; r < rows; r++) d->start[T - clamp_len(d, d->whole[r]) + 1]++;
    for (int v = 1; v <= T + 1; v++) d->start[v] += d->start[v - 1];
    int n = 0;
    for (long r = 0; r < rows; r++) {
        const int pos = d->start[T - clamp_len(d, d->whole[r])]++;
        /* serpentine: rounds of `world` positions, every other one dealt
         * backwards, so that no rank always takes the longer row of a round */
        const int round = pos / s->world, seat = pos % s->world;
        if ((round % 2 ? s->world - 1 - seat : seat) == s->rank) sl->index[n++] = d->whole[r];
    }
    sl->lo = 0, sl->hi = n;
    return DATA_OK;
}

int data_sampler_slice(const data_sampler *s, long epoch, long b, data_slice *sl)
{
    return data_sampler_slice_part(s, epoch, b, 0, 1, sl);
}

int data_sampler_slice_part(const data_sampler *s, long epoch, long b, int part, int parts,
                            data_slice *sl)
{
    if (!s || !sl || !sl->index || s->batch < 1 || s->world < 1) return DATA_EINVAL;
    if (parts < 1 || part < 0 || part >= parts) return DATA_EINVAL;
    long nb = data_sampler_batches(s, epoch);
    if (epoch < 0 || b < 0 || b >= nb) return DATA_EINVAL;
    long B = s->batch, first = b * B;
    long rows = B;
    if (s->task == DATA_TASK_TRANSLATE && s->n - b * B < B) rows = s->n - b * B;
    if (s->plan) { /* a token batch: bucket order[b] of the plan */
        const long k = s->plan->order[b];
        first = s->plan->start[k], rows = s->plan->start[k + 1] - first;
    }
    sl->global_rows = (int)rows;
    /* the part's rows [p0, p1) of the batch (all of them for one part) */
    const long p0 = rows * part / parts, pn = rows * (part + 1) / parts - p0;
    /* the rows of this batch (fewer than B in a short last batch) are shared
     * out as evenly as the world size allows */
    long lo = p0 + pn * s->rank / s->world, hi = p0 + pn * (s->rank + 1) / s->world;
    sl->lo = (int)lo;
    sl->hi = (int)hi;

    if (s->task == DATA_TASK_TRANSLATE) {
        /* row r of the batch: corpus order, or the epoch's permutation (a
         * token batch: its bucket of the sorted permutation) */
        const long *order = NULL;
        if (s->plan) {
            order = s->plan->sorted + first;
        } else if (s->kind == DATA_SAMPLER_RANDOM) {
            if (!s->cache) return DATA_EINVAL;
            fill_perm(s, epoch, s->n);
            order = s->cache->perm + b * B;
        }
        if (s->deal && s->world > 1)
            return deal_slice(s, order ? order + p0 : NULL, first + p0, pn, sl);
        for (long r = lo; r < hi; r++) sl->index[r - lo] = order ? order[r] : first + r;
        return DATA_OK;
    }

    long T = s->num_steps, off = lm_offset(s, epoch);
    if (s->kind == DATA_SAMPLER_RANDOM) {
        /* seq_data_iter_random: subsequence k starts at off + k*T; batch b takes
         * the shuffled subsequences [b*B, (b+1)*B). */
        long m = (s->n - off - 1) / T;
        if (!s->cache || m > s->cache->cap) return DATA_EINVAL;
        fill_perm(s, epoch, m);
        for (long r = lo; r < hi; r++) sl->index[r - lo] = off + s->cache->perm[b * B + r] * T;
    } else {
        /* seq_data_iter_sequential: B streams of L tokens from off; row r of
         * batch b starts at off + r*L + b*T. */
        long L = (s->n - off - 1) / B;
        for (long r = lo; r < hi; r++) sl->index[r - lo] = off + r * L + b * T;
    }
    return DATA_OK;
}

/* ------------------------------------------------------- token batches */

int data_sampler_set_tokens(data_sampler *s, long tokens, long window)
{
    if (!s || tokens < 1 || window < 0 || s->task != DATA_TASK_TRANSLATE ||
        s->kind != DATA_SAMPLER_RANDOM || !s->deal || !s->cache || s->plan)
        return DATA_EINVAL;
    struct data_sampler_plan *p = calloc(1, sizeof *p);
    if (!p) return DATA_ENOMEM;
    s->plan = p;
    p->tokens = tokens;
    p->window = window > 0 ? window : 32L * s->batch;
    p->epoch = -1;
    p->sorted = malloc((size_t)s->n * sizeof *p->sorted);
    p->start = malloc(((size_t)s->n + 1) * sizeof *p->start);
    p->order = malloc((size_t)s->n * sizeof *p->order);
    p->count = malloc(((size_t)s->deal->max_len + 2) * sizeof *p->count);
    if (!p->sorted || !p->start || !p->order || !p->count) {
        data_sampler_free(s); /* frees the rest too: the caller fails anyway */
        return DATA_ENOMEM;
    }
    return DATA_OK;
}

/* Sorts perm[a, b) into sorted[a, b), longest target first, stable. */
static void sort_window(const data_sampler *s, const long *perm, long a, long b)
{
    struct data_sampler_plan *p = s->plan;
    const int T = s->deal->max_len;
    memset(p->count, 0, ((size_t)T + 2) * sizeof *p->count);
    for (long i = a; i < b; i++) p->count[T - clamp_len(s->deal, perm[i]) + 1]++;
    for (int v = 1; v <= T + 1; v++) p->count[v] += p->count[v - 1];
    for (long i = a; i < b; i++)
        p->sorted[a + p->count[T - clamp_len(s->deal, perm[i])]++] = perm[i];
}

/* The plan of an epoch (kept until another epoch's is asked for): its
 * number of batches. */
static long build_plan(const data_sampler *s, long epoch)
{
    struct data_sampler_plan *p = s->plan;
    if (p->epoch == epoch) return p->nb;
    fill_perm(s, epoch, s->n);
    const long *perm = s->cache->perm;
    long nb = 0;
    for (long a = 0; a < s->n; a += p->window) {
        const long b = s->n - a < p->window ? s->n : a + p->window;
        sort_window(s, perm, a, b);
        for (long i = a; i < b;) {
            long tok = 0, rows = 0;
            p->start[nb++] = i;
            while (i < b && rows < s->batch &&
                   (rows == 0 || tok + clamp_len(s->deal, p->sorted[i]) <= p->tokens))
                tok += clamp_len(s->deal, p->sorted[i++]), rows++;
        }
    }
    p->start[nb] = s->n;
    /* the batches in a random order, keyed apart from the permutation (c = 1) */
    for (long k = 0; k < nb; k++) p->order[k] = k;
    for (long k = nb - 1; k > 0; k--) {
        const long j =
            (long)rng_below((uint64_t)k + 1, s->seed, RNG_SHUFFLE, (uint64_t)epoch, (uint64_t)k, 1);
        const long t = p->order[k];
        p->order[k] = p->order[j], p->order[j] = t;
    }
    p->nb = nb;
    p->epoch = epoch;
    return nb;
}

/* Σ target tokens and Σ rows x longest target of rows [a, b) of idx. */
static void padded_sums(const data_sampler *s, const long *idx, long a, long b, double *tok,
                        double *cells)
{
    int mx = 0;
    for (long i = a; i < b; i++) {
        const int v = clamp_len(s->deal, idx[i]);
        *tok += v;
        mx = v > mx ? v : mx;
    }
    *cells += (double)mx * (double)(b - a);
}

void data_sampler_padding(const data_sampler *s, long epoch, double *bucketed, double *unsorted)
{
    *bucketed = *unsorted = 0.0;
    if (!s || !s->plan || epoch < 0) return;
    const long nb = build_plan(s, epoch);
    double tok = 0, cells = 0, tok2 = 0, cells2 = 0;
    for (long k = 0; k < nb; k++)
        padded_sums(s, s->plan->sorted, s->plan->start[k], s->plan->start[k + 1], &tok, &cells);
    /* the same pairs in nb batches of consecutive pairs of the permutation */
    for (long k = 0; k < nb; k++)
        padded_sums(s, s->cache->perm, s->n * k / nb, s->n * (k + 1) / nb, &tok2, &cells2);
    *bucketed = cells > 0 ? 1.0 - tok / cells : 0.0;
    *unsorted = cells2 > 0 ? 1.0 - tok2 / cells2 : 0.0;
}

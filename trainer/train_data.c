/* A training run's data (train_data.h). */
#include "train_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "node.h"

#define ERRLEN 512

static void load_pairs(train_data *d, const train_config *c, ranks *r)
{
    char err[ERRLEN];
    data_pairs_opts o = {.dataset = c->dataset,
                         .data_dir = c->data_dir[0] ? c->data_dir : NULL,
                         .num_examples = c->num_examples,
                         .num_steps = c->steps,
                         .min_freq = c->min_freq < 0 ? 2 : c->min_freq,
                         .valid = c->valid,
                         .seed = (uint64_t)c->seed,
                         .mem_limit = node_data_mem_limit()};
    const int rc = data_pairs_load(&d->pairs, c->valid ? &d->valid : NULL, &o, err, sizeof err);
    ranks_agree(r, rc == DATA_OK, rc == DATA_ENOMEM ? 1 : 2, err);
    d->have_valid = c->valid > 0;
    d->vsrc = &d->pairs.src_vocab;
    d->vtgt = &d->pairs.tgt_vocab;
}

static void load_stream(train_data *d, const train_config *c, ranks *r)
{
    char err[ERRLEN], tag[32];
    data_stream_opts o = {.dataset = c->dataset,
                          .data_dir = c->data_dir[0] ? c->data_dir : NULL,
                          .tokens = (data_token_kind)c->tokens,
                          .min_freq = c->min_freq < 0 ? 0 : c->min_freq,
                          .max_tokens = c->num_examples};
    const int rc = data_stream_load(&d->stream, &o, err, sizeof err);
    ranks_agree(r, rc == DATA_OK, rc == DATA_ENOMEM ? 1 : 2, err);
    if (c->valid > 0) {
        /* the held-out tokens: the stream's last N, as LM_EVAL_STREAMS
         * streams of at least one num_steps chunk each; at most one stream
         * per row of the global batch: a rank's share then fits its batch
         * buffers */
        d->eval_streams = c->batch < LM_EVAL_STREAMS ? c->batch : LM_EVAL_STREAMS;
        const long need = (long)d->eval_streams * c->steps + 1;
        /* agreed, not rank 0's alone: the corpus may differ between ranks
         * (train_data_agree comes after), and every rank must stop alike */
        const int fits = c->valid >= need && c->valid <= d->stream.n / 2;
        snprintf(err, sizeof err,
                 "%s--valid %d: an LM holds out the corpus's last N tokens; N must be at "
                 "least %ld (%d streams of --steps %d) and at most half the corpus (%ld "
                 "tokens)",
                 ranks_tag(r, tag, sizeof tag), c->valid, need, d->eval_streams, c->steps,
                 d->stream.n / 2);
        ranks_agree(r, fits, 2, err);
        d->stream.n -= c->valid;
        d->lm_valid = d->stream.ids + d->stream.n;
        d->lm_valid_n = c->valid;
        d->have_valid = 1;
    }
    d->vsrc = NULL;
    d->vtgt = &d->stream.vocab;
}

void train_data_load(train_data *d, const train_config *c, ranks *r)
{
    memset(d, 0, sizeof *d);
    d->lm = c->task == MODEL_LM;
    if (d->lm)
        load_stream(d, c, r);
    else
        load_pairs(d, c, r);
    char err[ERRLEN], tag[32];
    const long n = train_data_items(d);
    int rc = data_sampler_init(&d->sampler, d->lm ? DATA_TASK_LM : DATA_TASK_TRANSLATE,
                               (data_sampler_kind)c->sampler, n, train_data_update_batch(c),
                               c->steps, (uint64_t)c->seed, r->rank, r->world, err, sizeof err);
    char named[ERRLEN + CFG_STR + 4] = "";
    if (rc != DATA_OK) /* the sampler knows sizes only */
        snprintf(named, sizeof named, "%s: %s", c->dataset, err);
    ranks_agree(r, rc == DATA_OK, 2, named);
    /* translation over several ranks: rows dealt by target length, so every
     * rank's packed decoder gets the same work and none waits for another at
     * the allreduce (DESIGN: sharding) */
    if (!d->lm)
        ranks_agree(r, train_data_sampler_setup(&d->sampler, d, c) == DATA_OK, 1,
                    "out of memory for the sampler");
    snprintf(named, sizeof named, "%sthe corpus (%ld %s) is too small for one batch of %d%s",
             ranks_tag(r, tag, sizeof tag), n, d->lm ? "tokens" : "pairs", c->batch,
             d->lm ? " streams" : "");
    ranks_agree(r, data_sampler_batches(&d->sampler, 0) >= 1, 2, named);
}

int train_data_update_batch(const train_config *c)
{
    return c->batch * c->accum;
}

int train_data_sampler_setup(data_sampler *s, const train_data *d, const train_config *c)
{
    int rc = data_sampler_set_lengths(s, d->pairs.tgt_valid, c->steps);
    if (rc == DATA_OK && c->batch_tokens > 0)
        rc = data_sampler_set_tokens(s, c->batch_tokens * c->accum, 0);
    return rc;
}

long train_data_items(const train_data *d)
{
    return d->lm ? d->stream.n : d->pairs.n;
}

/* ------------------------------------------------- the ranks read alike */

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t vocab_hash(uint64_t h, const data_vocab *v)
{
    for (int i = 0; v && i < v->size; i++) h = fnv1a(h, v->tokens[i], strlen(v->tokens[i]) + 1);
    return h;
}

static uint64_t pairs_hash(uint64_t h, const data_pairs *p)
{
    const size_t nt = (size_t)p->n * (size_t)p->num_steps;
    if (p->n <= 0) return h;
    h = fnv1a(h, p->src, nt * sizeof *p->src);
    h = fnv1a(h, p->tgt, nt * sizeof *p->tgt);
    h = fnv1a(h, p->src_valid, (size_t)p->n * sizeof *p->src_valid);
    return fnv1a(h, p->tgt_valid, (size_t)p->n * sizeof *p->tgt_valid);
}

/* What a rank read: sizes for the message, a hash of the vocabularies and
 * every token id (training and held-out) for the comparison. */
typedef struct data_print {
    long items, held_out;
    int vsrc, vtgt;
    uint64_t hash;
} data_print;

static data_print fingerprint(const train_data *d)
{
    data_print me = {0};
    uint64_t h = 0xcbf29ce484222325ULL;
    if (d->lm) {
        me.items = d->stream.n;
        me.held_out = d->lm_valid_n;
        h = fnv1a(h, d->stream.ids, (size_t)(d->stream.n + d->lm_valid_n) * sizeof(int32_t));
    } else {
        me.items = d->pairs.n;
        me.held_out = d->have_valid ? d->valid.n : 0;
        me.vsrc = d->vsrc->size;
        h = vocab_hash(pairs_hash(h, &d->pairs), d->vsrc);
        if (d->have_valid) h = pairs_hash(h, &d->valid);
    }
    me.vtgt = d->vtgt->size;
    me.hash = vocab_hash(h, d->vtgt);
    return me;
}

/* The same options over another file on one node (another SEQPAR_DATA) once
 * overran a buffer at the parameters' broadcast, or trained silently on
 * mixed data. */
void train_data_agree(const train_data *d, const train_config *c, ranks *r)
{
    if (r->world == 1) return;
    const data_print me = fingerprint(d);
    data_print root = me;
    comm_bcast(&root, sizeof root, 0);
    const int same = me.items == root.items && me.held_out == root.held_out &&
                     me.vsrc == root.vsrc && me.vtgt == root.vtgt && me.hash == root.hash;
    char msg[1000] = "", a[128], b[128];
    const char *unit = d->lm ? "tokens" : "pairs";
    if (d->lm) {
        snprintf(a, sizeof a, "%ld %s, vocab %d", root.items, unit, root.vtgt);
        snprintf(b, sizeof b, "%ld %s, vocab %d", me.items, unit, me.vtgt);
    } else {
        snprintf(a, sizeof a, "%ld %s, vocab %d -> %d", root.items, unit, root.vsrc, root.vtgt);
        snprintf(b, sizeof b, "%ld %s, vocab %d -> %d", me.items, unit, me.vsrc, me.vtgt);
    }
    if (!same)
        snprintf(msg, sizeof msg,
                 "rank %d read other data for --dataset %s than rank 0 (%s there; %s on rank "
                 "0%s): every rank must read the same corpus (check --data-dir or SEQPAR_DATA "
                 "on each node)",
                 r->rank, c->dataset, b, a,
                 strcmp(a, b) == 0 ? ", the same sizes but other tokens" : "");
    ranks_agree(r, same, 2, msg);
}

/* ---------------------------------------------------------------- batches */

int batch_rows_alloc(batch_rows *b, int rows, int T)
{
    b->src = calloc((size_t)rows * T, sizeof(int32_t));
    b->tgt = calloc((size_t)rows * T, sizeof(int32_t));
    b->valid_len = calloc((size_t)rows, sizeof(int32_t));
    b->example = calloc((size_t)rows, sizeof(int64_t));
    return b->src && b->tgt && b->valid_len && b->example ? 0 : -1;
}

void batch_rows_free(batch_rows *b)
{
    free(b->src), free(b->tgt), free(b->valid_len), free(b->example);
    memset(b, 0, sizeof *b);
}

int train_data_fill(const train_data *d, const data_slice *sl, int T, batch_rows *b)
{
    const int B = sl->hi - sl->lo;
    for (int r = 0; r < B; r++) {
        const long idx = sl->index[r];
        if (!d->lm) {
            memcpy(b->src + (size_t)r * T, d->pairs.src + (size_t)idx * T,
                   (size_t)T * sizeof(int32_t));
            memcpy(b->tgt + (size_t)r * T, d->pairs.tgt + (size_t)idx * T,
                   (size_t)T * sizeof(int32_t));
            b->valid_len[r] = d->pairs.tgt_valid[idx];
            b->example[r] = idx;
        } else {
            const int32_t *ids = d->stream.ids + idx;
            memcpy(b->src + (size_t)r * T, ids, (size_t)T * sizeof(int32_t));
            memcpy(b->tgt + (size_t)r * T, ids + 1, (size_t)T * sizeof(int32_t));
            b->example[r] = sl->lo + r; /* the row of the global batch (an LM stream) */
        }
    }
    return B;
}

void train_data_free(train_data *d)
{
    data_sampler_free(&d->sampler);
    if (d->lm) {
        data_stream_free(&d->stream);
    } else {
        if (d->have_valid) data_pairs_free(&d->valid);
        data_pairs_free(&d->pairs);
    }
}

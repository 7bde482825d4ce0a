/* What a training run reads: the corpus (pairs or a token stream), the
 * held-out part, the sampler of this rank's rows, and their batches. Every
 * rank reads the corpus itself; they must agree on what they read. */
#ifndef SEQPAR_TRAINER_TRAIN_DATA_H
#define SEQPAR_TRAINER_TRAIN_DATA_H

#include "config.h"
#include "data.h"
#include "ranks.h"

#define LM_EVAL_STREAMS 16 /* an LM's validation streams (validate.h) */

typedef struct train_data {
    int lm;
    data_pairs pairs, valid; /* translation: training and held-out pairs */
    int have_valid;
    data_stream stream; /* LM: the token stream (its tail held out) */
    data_sampler sampler;
    const data_vocab *vsrc, *vtgt; /* vsrc NULL for an LM */
    const int32_t *lm_valid;       /* LM: the held-out tokens (the stream's tail) */
    long lm_valid_n;
    int eval_streams; /* LM: validation streams (at most one per row of the batch) */
} train_data;

/* Reads the corpus, holds out --valid, sets up this rank's sampler; every
 * failure ends every rank (ranks_agree) with one line. */
void train_data_load(train_data *d, const train_config *c, ranks *r);
/* Every rank must have read the same (sizes and a hash of the vocabularies
 * and every token id); otherwise the first that differs says so and every
 * rank exits 2. */
void train_data_agree(const train_data *d, const train_config *c, ranks *r);
/* The rows of one update's global batch, as the sampler cuts the epoch:
 * --batch x --accum (with --batch-tokens, the most a token batch holds). */
int train_data_update_batch(const train_config *c);
/* A translation sampler's deal by target length and, with --batch-tokens,
 * its token batches (--batch-tokens x --accum tokens an update). */
int train_data_sampler_setup(data_sampler *s, const train_data *d, const train_config *c);
/* Training items: pairs, or tokens of the stream. */
long train_data_items(const train_data *d);

/* One rank's (or worker's) rows of a batch, as the model takes them. */
typedef struct batch_rows {
    int32_t *src, *tgt, *valid_len; /* (rows, T), (rows, T), (rows) */
    int64_t *example;               /* (rows) */
} batch_rows;
int batch_rows_alloc(batch_rows *b, int rows, int T);
void batch_rows_free(batch_rows *b);
/* Fills b with the rows of a slice; returns the row count. */
int train_data_fill(const train_data *d, const data_slice *sl, int T, batch_rows *b);

void train_data_free(train_data *d);

#endif

/* A model rebuilt from a checkpoint alone (no corpus needed): what
 * translate, predict, score and ckpt work on. */
#ifndef SEQPAR_TRAINER_SAVED_MODEL_H
#define SEQPAR_TRAINER_SAVED_MODEL_H

#include "config.h"
#include "data.h"
#include "model.h"

typedef struct saved_model {
    train_config cfg;
    model *m;
    data_vocab src, tgt; /* an LM: tgt holds the vocabulary */
} saved_model;

/* Loads config, vocabularies and parameters, the sizes the config gives
 * checked against the stored tensors before the model is built; max_batch
 * sizes the workspace. Prints one line naming prog and returns 2 on a bad
 * file. */
int saved_model_load(saved_model *sm, const char *path, int max_batch, const char *prog);
void saved_model_free(saved_model *sm);

#endif

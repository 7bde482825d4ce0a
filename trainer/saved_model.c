/* A model rebuilt from a checkpoint alone (no corpus needed): its
 * configuration, vocabularies and parameters, checked as they are read. */
#include "saved_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints.h"

#define ERRLEN 512

void saved_model_free(saved_model *sm)
{
    model_free(sm->m);
    data_vocab_free(&sm->src);
    data_vocab_free(&sm->tgt);
    memset(sm, 0, sizeof *sm);
}

static int vocab_from_ckpt(ckpt_file *f, const char *which, data_vocab *v, const char *prog)
{
    char err[ERRLEN];
    ckpt_strings s;
    if (ckpt_read_vocab(f, which, &s, err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    int rc = data_vocab_from_list(v, (const char *const *)s.s, s.n, err, sizeof err);
    ckpt_strings_free(&s);
    if (rc != DATA_OK) {
        fprintf(stderr, "%s: vocabulary /vocab/%s: %s\n", prog, which, err);
        return 2;
    }
    return 0;
}

int saved_model_load(saved_model *sm, const char *path, int max_batch, const char *prog)
{
    memset(sm, 0, sizeof *sm);
    char err[ERRLEN];
    ckpt_file *f;
    if (ckpt_open(&f, path, err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    int rc = 2;
    char *json = NULL;
    /* the counters, as ckpt_verify checks them: a model needs none, but
     * what verify refuses is not loaded either */
    ckpt_train tr;
    if (ckpt_read_train(f, &tr, err, sizeof err) != CKPT_OK ||
        ckpt_read_config(f, &json, err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto out;
    }
    config_defaults(&sm->cfg);
    char where[1200];
    snprintf(where, sizeof where, "%s: /config", path);
    if (config_from_json(&sm->cfg, json, where, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    const int is_lm = sm->cfg.task == MODEL_LM;
    if (is_lm) {
        if (vocab_from_ckpt(f, "tokens", &sm->tgt, prog)) goto out;
    } else if (vocab_from_ckpt(f, "src", &sm->src, prog) ||
               vocab_from_ckpt(f, "tgt", &sm->tgt, prog)) {
        goto out;
    }
    model_config mc;
    config_model(&sm->cfg, is_lm ? 0 : sm->src.size, sm->tgt.size, max_batch, &mc);
    /* the sizes /config gives against the tensors stored, before a model of
     * those sizes is built (a damaged config could ask for terabytes): the
     * output layer (V, hidden) and, with embeddings, the target side's (V, embed) */
    const char *dense = is_lm ? "/model/dense/weight" : "/model/decoder/dense/weight";
    const char *emb = is_lm ? "/model/embedding/weight" : "/model/decoder/embedding/weight";
    for (int k = 0; k < (mc.embed > 0 ? 2 : 1); k++) {
        unsigned long long d[2] = {0, 0};
        int nd = 0;
        const long want = k == 0 ? mc.hidden : mc.embed;
        if (ckpt_dataset_shape(f, k == 0 ? dense : emb, d, 2, &nd, err, sizeof err) != CKPT_OK) {
            fprintf(stderr, "%s: %s\n", prog, err);
            goto out;
        }
        if (nd != 2 || d[0] != (unsigned long long)mc.tgt_vocab ||
            d[1] != (unsigned long long)want) {
            fprintf(
                stderr,
                "%s: %s: /config (%s %ld, %d target tokens) does not match %s (shape %llux%llu; "
                "corrupt?)\n",
                prog, path, k == 0 ? "hidden" : "embed", want, mc.tgt_vocab, k == 0 ? dense : emb,
                d[0], d[1]);
            goto out;
        }
    }
    if (model_create(&sm->m, &mc, err, sizeof err) != MODEL_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, err);
        goto out;
    }
    if (ckpt_read_params(f, model_params(sm->m), err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto out;
    }
    rc = 0;
out:
    free(json);
    ckpt_close(f);
    if (rc) saved_model_free(sm);
    return rc;
}

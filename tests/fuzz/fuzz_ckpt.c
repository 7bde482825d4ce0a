/* The checkpoint reader (checkpoints/) on mutated HDF5 files, through the
 * functions `seqpar ckpt verify`, `--resume` and the saved-model loader
 * (translate, score) call: ckpt_verify, then ckpt_open and every reader —
 * config (and its JSON, config_from_json), training position, vocabularies,
 * parameters of the model /config describes, Adam moments, carried LM
 * state. Seeds are small real checkpoints (tests/fuzz/README.md says how
 * they were made); a reader must load a file or refuse it with a message.
 *
 * HDF5 itself (Debian's libhdf5, not instrumented) parses the file: a crash
 * inside it is reported as such (tests/fuzz/README.md), not hidden here.
 * Models /config describes beyond the limits below are not built (a real
 * run's config is the run's own, checked against the file's first). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoints.h"
#include "config.h"
#include "fuzz_util.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the seeds' models need, with room: hidden 4, embed 4, 1-2 layers */
#define MAX_LAYERS 4
#define MAX_WIDTH  64   /* hidden, embed */
#define MAX_VOCAB  4096 /* tokens */
#define MAX_BATCH  256
#define MAX_STEPS  64

static int small(const train_config *c, int src_vocab, int tgt_vocab)
{
    return c->layers <= MAX_LAYERS && c->hidden <= MAX_WIDTH && c->embed <= MAX_WIDTH &&
           src_vocab <= MAX_VOCAB && tgt_vocab <= MAX_VOCAB && c->batch <= MAX_BATCH &&
           c->steps <= MAX_STEPS;
}

/* The model /config describes, read back as --resume reads it. */
static void read_model(ckpt_file *f, const train_config *cfg, int src_vocab, int tgt_vocab)
{
    char err[512];
    model_config mc;
    config_model(cfg, src_vocab, tgt_vocab, 1, &mc);
    model *m = NULL;
    if (model_create(&m, &mc, err, sizeof err) != MODEL_OK) return;
    param_table *pt = model_params(m);
    optimizer opt;
    if (ckpt_read_params(f, pt, err, sizeof err) == CKPT_OK &&
        optimizer_init(&opt, (opt_kind)cfg->optimizer, (float)cfg->lr, pt) == 0) {
        ckpt_read_optimizer(f, pt, &opt, err, sizeof err);
        optimizer_free(&opt);
    }
    const int dims[3] = {cfg->layers, cfg->batch, cfg->hidden};
    float *state = malloc(sizeof(float) * (size_t)dims[0] * dims[1] * dims[2]);
    int found;
    if (state && ckpt_read_state(f, "state_h", state, dims, &found, err, sizeof err) == CKPT_OK)
        ckpt_read_state(f, "state_c", state, dims, &found, err, sizeof err);
    free(state);
    model_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_write_file(data, size);
    if (!path) return 0;
    char err[512] = "";
    if (ckpt_verify(path, err, sizeof err) != CKPT_OK && !err[0]) abort();
    ckpt_file *f;
    if (ckpt_open(&f, path, err, sizeof err) != CKPT_OK) return 0;
    ckpt_train tr;
    ckpt_read_train(f, &tr, err, sizeof err);
    char *json = NULL;
    train_config cfg;
    config_defaults(&cfg);
    const int cfg_ok = ckpt_read_config(f, &json, err, sizeof err) == CKPT_OK &&
                       config_from_json(&cfg, json, "/config", err, sizeof err) == 0;
    free(json);
    /* the vocabularies: the LM's tokens, or translation's two */
    ckpt_strings v[3] = {{0}};
    const char *which[3] = {"tokens", "src", "tgt"};
    int have[3];
    for (int k = 0; k < 3; k++) have[k] = ckpt_read_vocab(f, which[k], &v[k], err, sizeof err) == 0;
    if (cfg_ok) {
        const int lm = cfg.task == MODEL_LM;
        const int src_n = lm ? 0 : v[1].n, tgt_n = lm ? v[0].n : v[2].n;
        if ((lm ? have[0] : have[1] && have[2]) && small(&cfg, src_n, tgt_n))
            read_model(f, &cfg, src_n, tgt_n);
    }
    for (int k = 0; k < 3; k++) ckpt_strings_free(&v[k]);
    ckpt_close(f);
    return 0;
}

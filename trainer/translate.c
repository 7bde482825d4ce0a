/* seqpar translate, predict and score: a saved model applied to text. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "node.h"
#include "saved_model.h"
#include "trainer.h"

static void emit(const data_vocab *v, const int32_t *ids, int n)
{
    for (int k = 0; k < n; k++) printf(k ? " %s" : "%s", v->tokens[ids[k]]);
    putchar('\n');
}

/* Greedy (beam 1) or beam-search translations of nb encoded sentences. */
static int decode(saved_model *sm, const int32_t *src, int nb, int max_len, int beam, double alpha,
                  int32_t *out, int *len)
{
    return model_beam(sm->m, src, nb, sm->cfg.steps, DATA_BOS, DATA_EOS, max_len, beam,
                      (float)alpha, out, len);
}

typedef struct translate_opts {
    char checkpoint[4096];
    long beam, max_len, batch;
    double alpha;
    char attention_weights[4096];
} translate_opts;

/* One --attention-weights line: sentence `index` (0-based, in input order),
 * its source tokens up to its valid length (<eos> included), its output
 * tokens (<eos> included when produced) and the weights, one row per output
 * token over the source tokens. Returns 0, or -1 when it cannot be written. */
static int write_weights(FILE *f, const saved_model *sm, long index, const int32_t *src, int T,
                         const int32_t *out, int len, int max_len, const float *w)
{
    int valid = 0;
    for (int s = 0; s < T; s++) valid += src[s] != DATA_PAD;
    const int rows = len + (len < max_len);
    cJSON *o = cJSON_CreateObject(), *source = cJSON_CreateArray(), *output = cJSON_CreateArray();
    cJSON *weights = cJSON_CreateArray();
    int ok = o && source && output && weights;
    if (ok) {
        cJSON_AddNumberToObject(o, "index", (double)index);
        cJSON_AddItemToObject(o, "source", source);
        cJSON_AddItemToObject(o, "output", output);
        cJSON_AddItemToObject(o, "weights", weights);
    } else {
        cJSON_Delete(source), cJSON_Delete(output), cJSON_Delete(weights);
    }
    for (int s = 0; ok && s < valid; s++)
        ok = cJSON_AddItemToArray(source, cJSON_CreateString(sm->src.tokens[src[s]]));
    for (int j = 0; ok && j < rows; j++)
        ok = cJSON_AddItemToArray(output,
                                  cJSON_CreateString(sm->tgt.tokens[j < len ? out[j] : DATA_EOS]));
    for (int j = 0; ok && j < rows; j++)
        ok = cJSON_AddItemToArray(weights, cJSON_CreateFloatArray(w + (size_t)j * T, valid));
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    ok = text && fprintf(f, "%s\n", text) >= 0;
    free(text);
    return ok ? 0 : -1;
}

/* Decodes nb sentences, prints their translations and, with wf, writes
 * their attention weights (rec: model_record_attention's buffer). */
static int translate_batch(saved_model *sm, const translate_opts *o, const int32_t *src, int nb,
                           int max_len, int32_t *out, int *len, FILE *wf, const float *rec,
                           long first)
{
    const int T = sm->cfg.steps;
    if (decode(sm, src, nb, max_len, (int)o->beam, o->alpha, out, len) != MODEL_OK) return -1;
    for (int b = 0; b < nb; b++) emit(&sm->tgt, out + (size_t)b * max_len, len[b]);
    fflush(stdout);
    for (int b = 0; wf && b < nb; b++)
        if (write_weights(wf, sm, first + b, src + (size_t)b * T, T, out + (size_t)b * max_len,
                          len[b], max_len, rec + (size_t)b * max_len * T) != 0)
            return -2;
    return 0;
}

#define F(f) CLI_FIELD(translate_opts, f)
static const cli_opt TRANSLATE_OPTS[] = {
    {"checkpoint", CLI_STR, F(checkpoint), .arg = "FILE", .help = "a translation checkpoint",
     .required = 1},
    {"beam", CLI_LONG, F(beam), 1, 64, .arg = "K", .help = "beams (1: greedy decoding)"},
    {"alpha", CLI_DOUBLE, F(alpha), 0, 10, .arg = "A",
     .help = "length normalisation: score / length^A"},
    {"max-len", CLI_LONG, F(max_len), 0, 10000, .arg = "N",
     .help = "longest translation in tokens (0: the model's num_steps)"},
    {"batch", CLI_LONG, F(batch), 1, 65536, .arg = "N", .help = "sentences decoded together"},
    {"attention-weights", CLI_STR, F(attention_weights), .arg = "FILE",
     .help = "an attention model: write each sentence's attention weights to FILE as JSON lines "
             "{index, source, output, weights} (one row per output token)"},
};
#undef F

static const translate_opts TRANSLATE_DEFAULTS = {.beam = 1, .batch = 64, .alpha = 0.75};

const cli_command translate_command = {
    .prog = "seqpar translate",
    .defaults = &TRANSLATE_DEFAULTS,
    .about = "Reads one sentence per line on stdin, writes its translation per line on stdout:\n"
             "greedy (--beam 1, the default) or beam search with K beams, scoring a hypothesis\n"
             "by its summed log probability / length^A. Sentences are normalised and tokenised\n"
             "as in training; unknown words become <unk>.",
    .opts = TRANSLATE_OPTS,
    .nopts = sizeof TRANSLATE_OPTS / sizeof *TRANSLATE_OPTS};

/* A batch's translation failed: the line, and the exit status. */
static int batch_failed(int why, const char *prog, const char *wpath)
{
    if (why == -1) {
        fprintf(stderr, "%s: out of memory for beam search\n", prog);
    } else {
        fprintf(stderr, "%s: --attention-weights %s: cannot write\n", prog, wpath);
    }
    return 1;
}

int cmd_translate(int argc, char **argv)
{
    const char *prog = "seqpar translate";
    translate_opts o = TRANSLATE_DEFAULTS;
    const int parsed = cli_parse(&translate_command, &o, argc, argv, NULL, 0, NULL);
    if (parsed) return parsed == 1 ? 0 : 2;
    const char *ckpt = o.checkpoint, *wpath = o.attention_weights;
    long max_len = o.max_len;
    const long batch = o.batch, beam = o.beam;
    node_setup_threads(0, NULL, 0);
    saved_model sm;
    if (saved_model_load(&sm, ckpt, (int)(batch * beam), prog)) return 2;
    if (sm.cfg.task != MODEL_TRANSLATE || (wpath[0] && !sm.cfg.attention)) {
        if (sm.cfg.task != MODEL_TRANSLATE)
            fprintf(stderr, "%s: %s is a language model (use seqpar predict)\n", prog, ckpt);
        else
            fprintf(
                stderr,
                "%s: --attention-weights: %s has no attention (trained with --attention none)\n",
                prog, ckpt);
        saved_model_free(&sm);
        return 2;
    }
    const int T = sm.cfg.steps;
    if (max_len == 0) max_len = T;
    FILE *wf = NULL;
    if (wpath[0] && !(wf = fopen(wpath, "w"))) {
        fprintf(stderr, "%s: --attention-weights %s: %s\n", prog, wpath, strerror(errno));
        saved_model_free(&sm);
        return 2;
    }
    int32_t *src = calloc((size_t)batch * T, sizeof(int32_t));
    int32_t *out = calloc((size_t)batch * max_len, sizeof(int32_t));
    int *len = calloc((size_t)batch, sizeof(int));
    float *rec = wf ? calloc((size_t)batch * max_len * T, sizeof(float)) : NULL;
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int nb = 0, rc = 0;
    long lineno = 0, translated = 0;
    char err[ERRLEN];
    if (!src || !out || !len || (wf && !rec)) rc = 1;
    if (rc == 0 && wf) model_record_attention(sm.m, rec);
    while (rc == 0) {
        got = getline(&line, &cap, stdin);
        if (got >= 0) {
            lineno++;
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
            /* a byte-order mark before the first line is not text (as the corpus reader) */
            const size_t bom = lineno == 1 ? data_skip_bom(line, (size_t)got) : 0;
            char *norm = NULL;
            if (data_normalize(line + bom, (size_t)got - bom, &norm, err, sizeof err) != DATA_OK) {
                /* what was read before the bad line is still translated */
                if (nb > 0)
                    translate_batch(&sm, &o, src, nb, (int)max_len, out, len, wf, rec, translated);
                fprintf(stderr, "%s: stdin:%ld: %s\n", prog, lineno, err);
                rc = 2;
                break;
            }
            data_encode_sentence(&sm.src, norm, src + (size_t)nb * T, T);
            free(norm);
            nb++;
        }
        if ((got < 0 && nb > 0) || nb == batch) {
            const int why =
                translate_batch(&sm, &o, src, nb, (int)max_len, out, len, wf, rec, translated);
            if (why != 0) {
                rc = batch_failed(why, prog, wpath);
                break;
            }
            translated += nb;
            nb = 0;
        }
        if (got < 0) break;
    }
    if (wf && (fclose(wf) != 0) && rc == 0) rc = batch_failed(-2, prog, wpath);
    free(line);
    free(src);
    free(out);
    free(len);
    free(rec);
    saved_model_free(&sm);
    return rc;
}

/* --------------------------------------------------------------- predict */

typedef struct predict_opts {
    char checkpoint[4096], prefix[1 << 16];
    long len, seed;
    double temperature;
} predict_opts;

#define F(f) CLI_FIELD(predict_opts, f)
static const cli_opt PREDICT_OPTS[] = {
    {"checkpoint", CLI_STR, F(checkpoint), .arg = "FILE", .help = "a language-model checkpoint",
     .required = 1},
    {"prefix", CLI_STR, F(prefix), .arg = "TEXT", .help = "the text to continue (not empty)",
     .required = 1},
    {"len", CLI_LONG, F(len), 0, 1000000, .arg = "N", .help = "tokens to generate"},
    {"temperature", CLI_DOUBLE, F(temperature), 0, 100, .arg = "T",
     .help = "0: greedy; above: sampled at that temperature"},
    {"seed", CLI_LONG, F(seed), 0, 0x7fffffffL, .arg = "S", .help = "seed of the sampling"},
};
#undef F

static const predict_opts PREDICT_DEFAULTS = {.len = 50};

const cli_command predict_command = {
    .prog = "seqpar predict",
    .defaults = &PREDICT_DEFAULTS,
    .about = "Generates N tokens after TEXT with a language-model checkpoint: greedy, or sampled "
             "when T > 0.",
    .opts = PREDICT_OPTS,
    .nopts = sizeof PREDICT_OPTS / sizeof *PREDICT_OPTS};

int cmd_predict(int argc, char **argv)
{
    predict_opts o = PREDICT_DEFAULTS;
    const int parsed = cli_parse(&predict_command, &o, argc, argv, NULL, 0, NULL);
    if (parsed) return parsed == 1 ? 0 : 2;
    const char *ckpt = o.checkpoint, *prefix = o.prefix;
    const long n = o.len, seed = o.seed;
    const double temperature = o.temperature;
    if (!*prefix) {
        fprintf(stderr, "seqpar predict: --checkpoint FILE and a non-empty --prefix TEXT are "
                        "required\n");
        return 2;
    }
    node_setup_threads(0, NULL, 0);
    saved_model sm;
    if (saved_model_load(&sm, ckpt, 1, "seqpar predict")) return 2;
    if (sm.cfg.task != MODEL_LM) {
        fprintf(stderr, "seqpar predict: %s is a translation model (use seqpar translate)\n", ckpt);
        saved_model_free(&sm);
        return 2;
    }
    const int words = sm.cfg.tokens == DATA_TOKENS_WORD;
    size_t plen = strlen(prefix);
    {
        /* text is UTF-8 (as translate's input): the check data_normalize makes */
        char *norm = NULL, why[160];
        const int bad = data_normalize(prefix, plen, &norm, why, sizeof why) != DATA_OK;
        free(norm);
        if (bad) {
            fprintf(stderr, "seqpar predict: --prefix: %s\n", why);
            saved_model_free(&sm);
            return 2;
        }
    }
    int32_t *ids = calloc(plen + 1, sizeof(int32_t));
    int32_t *out = calloc((size_t)n + 1, sizeof(int32_t));
    char *copy = strdup(prefix);
    int np = 0, rc = 0;
    if (!ids || !out || !copy) rc = 1;
    if (rc == 0 && words) {
        char *save = NULL;
        for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
            ids[np++] = data_vocab_id(&sm.tgt, w);
    } else if (rc == 0) {
        /* characters: one UTF-8 code point per token */
        for (size_t k = 0; k < plen;) {
            size_t l = 1;
            unsigned char ch = (unsigned char)prefix[k];
            if (ch >= 0xf0)
                l = 4;
            else if (ch >= 0xe0)
                l = 3;
            else if (ch >= 0xc0)
                l = 2;
            char tok[8] = {0};
            memcpy(tok, prefix + k, l < 5 && k + l <= plen ? l : 1);
            ids[np++] = data_vocab_id(&sm.tgt, tok);
            k += l;
        }
    }
    if (rc == 0 && np == 0) {
        fprintf(stderr, "seqpar predict: --prefix has no tokens\n");
        rc = 2;
    }
    if (rc == 0) {
        model_lm_generate(sm.m, ids, np, (int)n, (float)temperature, (uint64_t)seed, out);
        fputs(prefix, stdout);
        for (long k = 0; k < n; k++) printf(words ? " %s" : "%s", sm.tgt.tokens[out[k]]);
        putchar('\n');
    }
    free(ids);
    free(out);
    free(copy);
    saved_model_free(&sm);
    return rc;
}

/* ----------------------------------------------------------------- score */

/* seqpar score: the loss of a translation checkpoint on pairs read from
 * stdin as "source<TAB>target" lines, normalised and encoded as in training
 * (the target gets <eos> and is cut to num_steps); what the trainer's
 * validation computes, for any file (a test set, a reference). */
typedef struct score_opts {
    char checkpoint[4096];
    long batch;
} score_opts;

#define F(f) CLI_FIELD(score_opts, f)
static const cli_opt SCORE_OPTS[] = {
    {"checkpoint", CLI_STR, F(checkpoint), .arg = "FILE", .help = "a translation checkpoint",
     .required = 1},
    {"batch", CLI_LONG, F(batch), 1, 65536, .arg = "N", .help = "pairs scored together"},
};
#undef F

static const score_opts SCORE_DEFAULTS = {.batch = 64};

const cli_command score_command = {
    .prog = "seqpar score",
    .defaults = &SCORE_DEFAULTS,
    .about = "Reads source<TAB>target lines on stdin, prints the summed and mean token\n"
             "cross-entropy and the perplexity of the translation model:\n"
             "  loss=MEAN ppl=EXP(MEAN) loss_sum=SUM tokens=N sentences=M",
    .opts = SCORE_OPTS,
    .nopts = sizeof SCORE_OPTS / sizeof *SCORE_OPTS};

int cmd_score(int argc, char **argv)
{
    const char *prog = "seqpar score";
    score_opts o = SCORE_DEFAULTS;
    const int parsed = cli_parse(&score_command, &o, argc, argv, NULL, 0, NULL);
    if (parsed) return parsed == 1 ? 0 : 2;
    const char *ckpt = o.checkpoint;
    const long batch = o.batch;
    node_setup_threads(0, NULL, 0);
    saved_model sm;
    if (saved_model_load(&sm, ckpt, (int)batch, prog)) return 2;
    if (sm.cfg.task != MODEL_TRANSLATE) {
        fprintf(stderr, "%s: %s is a language model (score takes translation pairs)\n", prog, ckpt);
        saved_model_free(&sm);
        return 2;
    }
    const int T = sm.cfg.steps;
    int32_t *src = calloc((size_t)batch * T, sizeof(int32_t));
    int32_t *tgt = calloc((size_t)batch * T, sizeof(int32_t));
    int32_t *valid = calloc((size_t)batch, sizeof(int32_t));
    char *line = NULL, err[ERRLEN];
    size_t cap = 0;
    long lineno = 0, sentences = 0, tokens = 0;
    double loss_sum = 0.0;
    int nb = 0, rc = (src && tgt && valid) ? 0 : 1;
    while (rc == 0) {
        ssize_t got = getline(&line, &cap, stdin);
        if (got >= 0) {
            lineno++;
            while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = '\0';
            /* the pairs as the corpus reader takes them (a BOM, blank lines,
             * extra columns) */
            const char *s = line + (lineno == 1 ? data_skip_bom(line, (size_t)got) : 0), *t;
            size_t sl, tl;
            int f = data_pair_fields(s, (size_t)got - (size_t)(s - line), &sl, &t, &tl);
            if (f == 1) continue;
            if (f < 0) {
                fprintf(stderr, "%s: stdin:%ld: expected source<TAB>target\n", prog, lineno);
                rc = 2;
                break;
            }
            char *ns = NULL, *nt = NULL;
            if (data_normalize(s, sl, &ns, err, sizeof err) != DATA_OK ||
                data_normalize(t, tl, &nt, err, sizeof err) != DATA_OK) {
                free(ns);
                fprintf(stderr, "%s: stdin:%ld: %s\n", prog, lineno, err);
                rc = 2;
                break;
            }
            data_encode_sentence(&sm.src, ns, src + (size_t)nb * T, T);
            valid[nb] = data_encode_sentence(&sm.tgt, nt, tgt + (size_t)nb * T, T);
            free(ns), free(nt);
            nb++;
        }
        if ((got < 0 && nb > 0) || nb == batch) {
            model_batch b = {.B = nb, .T = T, .src = src, .tgt = tgt, .tgt_valid = valid};
            double l;
            long n;
            model_step(sm.m, &b, 0, &l, &n);
            loss_sum += l, tokens += n, sentences += nb;
            nb = 0;
        }
        if (got < 0) break;
    }
    if (rc == 0 && sentences == 0) {
        fprintf(stderr, "%s: no pairs on stdin\n", prog);
        rc = 2;
    }
    if (rc == 0) {
        double mean = loss_sum / (double)(tokens > 0 ? tokens : 1);
        printf("loss=%.6f ppl=%.6f loss_sum=%.6f tokens=%ld sentences=%ld\n", mean, exp(mean),
               loss_sum, tokens, sentences);
    }
    free(line), free(src), free(tgt), free(valid);
    saved_model_free(&sm);
    return rc;
}

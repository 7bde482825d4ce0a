/* Models rebuilt from checkpoints: seqpar translate and seqpar predict, and
 * the helpers shared with training (model configuration, thread setup). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "checkpoints.h"
#include "comm.h"
#include "trainer.h"

#include <cblas.h>
#undef I

int blas_kernel_advice(char *buf, size_t n)
{
    const char *core = openblas_get_corename();
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids", NULL};
    static const char *const avx2[] = {"haswell",        "zen", "skylakex", "cooperlake",
                                       "sapphirerapids", NULL};
    const char *want = NULL;
    const char *const *good = NULL;
#if defined(__x86_64__) && defined(__GNUC__)
    /* the CPU's (and the OS's) support, as the compiler's runtime reads it */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        want = "SkylakeX", good = avx512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell", good = avx2;
#endif
    if (!want || !core) return 0;
    for (int i = 0; good[i]; i++)
        if (strcasecmp(core, good[i]) == 0) return 0;
    snprintf(buf, n,
             "warning: OpenBLAS runs its %s kernel, but this CPU has %s: "
             "OPENBLAS_CORETYPE=%s makes sgemm several times faster (export it, and pass "
             "-x OPENBLAS_CORETYPE to mpirun)",
             core, strcmp(want, "SkylakeX") == 0 ? "AVX-512" : "AVX2 and FMA", want);
    return 1;
}

int setup_threads(int requested, char *why, size_t whylen)
{
    int n = comm_thread_plan(requested, why, whylen);
    openblas_set_num_threads(n);
    return n;
}

int model_config_from(model_config *mc, const train_config *c, int src_vocab, int tgt_vocab,
                      int max_batch, const char *prog)
{
    memset(mc, 0, sizeof *mc);
    mc->task = strcmp(c->task, "lm") == 0 ? MODEL_LM : MODEL_TRANSLATE;
    if (cell_parse(c->cell, &mc->cell) != MODEL_OK) {
        fprintf(stderr, "%s: unknown cell '%s'\n", prog, c->cell);
        return 2;
    }
    /* sizes and their combinations are model_create's to check */
    mc->layers = c->layers;
    mc->embed = c->embed;
    mc->hidden = c->hidden;
    mc->dropout = (float)c->dropout;
    mc->bidirectional = c->bidirectional;
    mc->src_vocab = src_vocab;
    mc->tgt_vocab = tgt_vocab;
    mc->num_steps = c->steps;
    mc->max_batch = max_batch;
    return 0;
}

void loaded_model_free(loaded_model *lm)
{
    model_free(lm->m);
    data_vocab_free(&lm->src);
    data_vocab_free(&lm->tgt);
    memset(lm, 0, sizeof *lm);
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

int load_model(loaded_model *lm, const char *path, int max_batch, const char *prog)
{
    memset(lm, 0, sizeof *lm);
    char err[ERRLEN];
    ckpt_file *f;
    if (ckpt_open(&f, path, err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return 2;
    }
    int rc = 2;
    char *json = NULL;
    if (ckpt_read_config(f, &json, err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto out;
    }
    config_defaults(&lm->cfg);
    char where[1200];
    snprintf(where, sizeof where, "%s: /config", path);
    if (config_from_json(&lm->cfg, json, where) != 0) goto out;
    int is_lm = strcmp(lm->cfg.task, "lm") == 0;
    if (is_lm) {
        if (vocab_from_ckpt(f, "tokens", &lm->tgt, prog)) goto out;
    } else if (vocab_from_ckpt(f, "src", &lm->src, prog) ||
               vocab_from_ckpt(f, "tgt", &lm->tgt, prog)) {
        goto out;
    }
    model_config mc;
    if (model_config_from(&mc, &lm->cfg, is_lm ? 0 : lm->src.size, lm->tgt.size, max_batch, prog))
        goto out;
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
    if (model_create(&lm->m, &mc, err, sizeof err) != MODEL_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, path, err);
        goto out;
    }
    if (ckpt_read_params(f, model_params(lm->m), err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "%s: %s\n", prog, err);
        goto out;
    }
    rc = 0;
out:
    free(json);
    ckpt_close(f);
    if (rc) loaded_model_free(lm);
    return rc;
}

/* ------------------------------------------------------------- translate */

static void translate_usage(FILE *f)
{
    fprintf(f, "usage: seqpar translate --checkpoint FILE [--beam K] [--alpha A] [--max-len N] "
               "[--batch N]\n"
               "Reads one sentence per line on stdin, writes its translation per line on "
               "stdout:\ngreedy (--beam 1, the default) or beam search with K beams, scoring a "
               "hypothesis\nby its summed log probability / length^A (A default 0.75).\n"
               "Sentences are normalised and tokenised as in training; unknown words become "
               "<unk>.\n--max-len defaults to the model's num_steps.\n");
}

/* ---------------------------------------- options of the small subcommands */

const char *arg_value(int argc, char **argv, int *i, const char *name)
{
    size_t n = strlen(name);
    const char *a = argv[*i];
    if (strncmp(a, name, n) != 0) return NULL;
    if (a[n] == '=') return a + n + 1;
    if (a[n] == '\0' && *i + 1 < argc) return argv[++*i];
    return NULL;
}

int arg_long(const char *prog, const char *name, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "%s: %s: expected a whole number in %ld..%ld, got '%s'\n", prog, name, lo,
                hi, v);
        return 2;
    }
    *out = x;
    return 0;
}

int arg_double(const char *prog, const char *name, const char *v, double lo, double hi, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= lo && x <= hi)) {
        if (hi < HUGE_VAL)
            fprintf(stderr, "%s: %s: expected a number in %g..%g, got '%s'\n", prog, name, lo, hi,
                    v);
        else
            fprintf(stderr, "%s: %s: expected a number >= %g, got '%s'\n", prog, name, lo, v);
        return 2;
    }
    *out = x;
    return 0;
}

static void emit(const data_vocab *v, const int32_t *ids, int n)
{
    for (int k = 0; k < n; k++) printf(k ? " %s" : "%s", v->tokens[ids[k]]);
    putchar('\n');
}

/* Greedy (beam 1) or beam-search translations of nb encoded sentences. */
static int decode(loaded_model *lm, const int32_t *src, int nb, int max_len, int beam, double alpha,
                  int32_t *out, int *len)
{
    return model_beam(lm->m, src, nb, lm->cfg.steps, DATA_BOS, DATA_EOS, max_len, beam,
                      (float)alpha, out, len);
}

int cmd_translate(int argc, char **argv)
{
    const char *prog = "seqpar translate";
    const char *ckpt = NULL;
    long max_len = 0, batch = 64, beam = 1;
    double alpha = 0.75;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            translate_usage(stdout);
            return 0;
        } else if ((v = arg_value(argc, argv, &i, "--beam"))) {
            if (arg_long(prog, "--beam", v, 1, 64, &beam)) return 2;
        } else if ((v = arg_value(argc, argv, &i, "--alpha"))) {
            if (arg_double(prog, "--alpha", v, 0.0, 10.0, &alpha)) return 2;
        } else if ((v = arg_value(argc, argv, &i, "--checkpoint"))) {
            ckpt = v;
        } else if ((v = arg_value(argc, argv, &i, "--max-len"))) {
            if (arg_long(prog, "--max-len", v, 1, 10000, &max_len)) return 2;
        } else if ((v = arg_value(argc, argv, &i, "--batch"))) {
            if (arg_long(prog, "--batch", v, 1, 65536, &batch)) return 2;
        } else {
            fprintf(stderr, "seqpar translate: unknown or incomplete option '%s' (see --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "seqpar translate: --checkpoint FILE is required\n");
        return 2;
    }
    setup_threads(0, NULL, 0);
    loaded_model lm;
    if (load_model(&lm, ckpt, (int)(batch * beam), "seqpar translate")) return 2;
    if (strcmp(lm.cfg.task, "translate") != 0) {
        fprintf(stderr, "seqpar translate: %s is a language model (use seqpar predict)\n", ckpt);
        loaded_model_free(&lm);
        return 2;
    }
    const int T = lm.cfg.steps;
    if (max_len == 0) max_len = T;
    int32_t *src = calloc((size_t)batch * T, sizeof(int32_t));
    int32_t *out = calloc((size_t)batch * max_len, sizeof(int32_t));
    int *len = calloc((size_t)batch, sizeof(int));
    char *line = NULL;
    size_t cap = 0;
    ssize_t got;
    int nb = 0, rc = 0;
    long lineno = 0;
    char err[ERRLEN];
    if (!src || !out || !len) rc = 1;
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
                if (nb > 0) {
                    decode(&lm, src, nb, (int)max_len, (int)beam, alpha, out, len);
                    for (int b = 0; b < nb; b++) emit(&lm.tgt, out + (size_t)b * max_len, len[b]);
                    fflush(stdout);
                }
                fprintf(stderr, "seqpar translate: stdin:%ld: %s\n", lineno, err);
                rc = 2;
                break;
            }
            data_encode_sentence(&lm.src, norm, src + (size_t)nb * T, T);
            free(norm);
            nb++;
        }
        if ((got < 0 && nb > 0) || nb == batch) {
            if (decode(&lm, src, nb, (int)max_len, (int)beam, alpha, out, len) != MODEL_OK) {
                fprintf(stderr, "%s: out of memory for beam search\n", prog);
                rc = 1;
                break;
            }
            for (int b = 0; b < nb; b++) emit(&lm.tgt, out + (size_t)b * max_len, len[b]);
            fflush(stdout);
            nb = 0;
        }
        if (got < 0) break;
    }
    free(line);
    free(src);
    free(out);
    free(len);
    loaded_model_free(&lm);
    return rc;
}

/* --------------------------------------------------------------- predict */

int cmd_predict(int argc, char **argv)
{
    const char *prog = "seqpar predict";
    const char *ckpt = NULL, *prefix = NULL;
    long n = 50, seed = 0;
    double temperature = 0.0;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: seqpar predict --checkpoint FILE --prefix TEXT [--len N] "
                   "[--temperature T] [--seed S]\nGenerates N tokens after TEXT with a "
                   "language-model checkpoint: greedy, or sampled when T > 0.\n");
            return 0;
        } else if ((v = arg_value(argc, argv, &i, "--checkpoint"))) {
            ckpt = v;
        } else if ((v = arg_value(argc, argv, &i, "--prefix"))) {
            prefix = v;
        } else if ((v = arg_value(argc, argv, &i, "--len"))) {
            if (arg_long(prog, "--len", v, 0, 1000000, &n)) return 2;
        } else if ((v = arg_value(argc, argv, &i, "--seed"))) {
            if (arg_long(prog, "--seed", v, 0, 0x7fffffffL, &seed)) return 2;
        } else if ((v = arg_value(argc, argv, &i, "--temperature"))) {
            if (arg_double(prog, "--temperature", v, 0.0, 100.0, &temperature)) return 2;
        } else {
            fprintf(stderr, "seqpar predict: unknown or incomplete option '%s' (see --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!ckpt || !prefix || !*prefix) {
        fprintf(stderr, "seqpar predict: --checkpoint FILE and a non-empty --prefix TEXT are "
                        "required\n");
        return 2;
    }
    setup_threads(0, NULL, 0);
    loaded_model lm;
    if (load_model(&lm, ckpt, 1, "seqpar predict")) return 2;
    if (strcmp(lm.cfg.task, "lm") != 0) {
        fprintf(stderr, "seqpar predict: %s is a translation model (use seqpar translate)\n", ckpt);
        loaded_model_free(&lm);
        return 2;
    }
    const int words = strcmp(lm.cfg.tokens, "word") == 0;
    size_t plen = strlen(prefix);
    {
        /* text is UTF-8 (as translate's input): the check data_normalize makes */
        char *norm = NULL, why[160];
        const int bad = data_normalize(prefix, plen, &norm, why, sizeof why) != DATA_OK;
        free(norm);
        if (bad) {
            fprintf(stderr, "seqpar predict: --prefix: %s\n", why);
            loaded_model_free(&lm);
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
            ids[np++] = data_vocab_id(&lm.tgt, w);
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
            ids[np++] = data_vocab_id(&lm.tgt, tok);
            k += l;
        }
    }
    if (rc == 0 && np == 0) {
        fprintf(stderr, "seqpar predict: --prefix has no tokens\n");
        rc = 2;
    }
    if (rc == 0) {
        model_lm_generate(lm.m, ids, np, (int)n, (float)temperature, (uint64_t)seed, out);
        fputs(prefix, stdout);
        for (long k = 0; k < n; k++) printf(words ? " %s" : "%s", lm.tgt.tokens[out[k]]);
        putchar('\n');
    }
    free(ids);
    free(out);
    free(copy);
    loaded_model_free(&lm);
    return rc;
}

/* ----------------------------------------------------------------- score */

/* seqpar score: the loss of a translation checkpoint on pairs read from
 * stdin as "source<TAB>target" lines, normalised and encoded as in training
 * (the target gets <eos> and is cut to num_steps); what the trainer's
 * validation computes, for any file (a test set, a reference). */
int cmd_score(int argc, char **argv)
{
    const char *prog = "seqpar score", *ckpt = NULL;
    long batch = 64;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: seqpar score --checkpoint FILE [--batch N] < pairs.tsv\n"
                   "Reads source<TAB>target lines, prints the summed and mean token "
                   "cross-entropy and the perplexity of the translation model:\n"
                   "  loss=MEAN ppl=EXP(MEAN) loss_sum=SUM tokens=N sentences=M\n");
            return 0;
        } else if ((v = arg_value(argc, argv, &i, "--checkpoint"))) {
            ckpt = v;
        } else if ((v = arg_value(argc, argv, &i, "--batch"))) {
            if (arg_long(prog, "--batch", v, 1, 65536, &batch)) return 2;
        } else {
            fprintf(stderr, "%s: unknown or incomplete option '%s' (see --help)\n", prog, argv[i]);
            return 2;
        }
    }
    if (!ckpt) {
        fprintf(stderr, "%s: --checkpoint FILE is required\n", prog);
        return 2;
    }
    setup_threads(0, NULL, 0);
    loaded_model lm;
    if (load_model(&lm, ckpt, (int)batch, prog)) return 2;
    if (strcmp(lm.cfg.task, "translate") != 0) {
        fprintf(stderr, "%s: %s is a language model (score takes translation pairs)\n", prog, ckpt);
        loaded_model_free(&lm);
        return 2;
    }
    const int T = lm.cfg.steps;
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
            data_encode_sentence(&lm.src, ns, src + (size_t)nb * T, T);
            valid[nb] = data_encode_sentence(&lm.tgt, nt, tgt + (size_t)nb * T, T);
            free(ns), free(nt);
            nb++;
        }
        if ((got < 0 && nb > 0) || nb == batch) {
            model_batch b = {.B = nb, .T = T, .src = src, .tgt = tgt, .tgt_valid = valid};
            double l;
            long n;
            model_step(lm.m, &b, 0, &l, &n);
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
    loaded_model_free(&lm);
    return rc;
}

/* trainer/: the seqpar command. The only folder that ties model/, data/,
 * comm/ and checkpoints/ together. Subcommands return the process exit code:
 * 0 success, 1 runtime failure, 2 bad usage or bad input. */
#ifndef SEQPAR_TRAINER_H
#define SEQPAR_TRAINER_H

#include "config.h"
#include "data.h"
#include "model.h"

#define ERRLEN 512

int cmd_train(int argc, char **argv);
int cmd_translate(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_bleu(int argc, char **argv);
int cmd_ckpt(int argc, char **argv);
int cmd_corpus_stats(int argc, char **argv);

/* A model rebuilt from a checkpoint alone (no corpus needed). */
typedef struct loaded_model {
    train_config cfg;
    model *m;
    data_vocab src, tgt; /* LM: tgt holds the vocabulary */
} loaded_model;

/* Loads config, vocabularies and parameters; max_batch sizes the workspace.
 * Prints one line and returns 2 on a bad file. */
int load_model(loaded_model *lm, const char *path, int max_batch, const char *prog);
void loaded_model_free(loaded_model *lm);

/* Builds a model_config from a training configuration and vocabulary sizes;
 * prints and returns 2 on a bad combination. */
int model_config_from(model_config *mc, const train_config *c, int src_vocab, int tgt_vocab,
                      int max_batch, const char *prog);

/* Options of the small subcommands: the value of "--name value" or
 * "--name=value" at argv[*i] (advancing *i past a separate value), else NULL. */
const char *arg_value(int argc, char **argv, int *i, const char *name);
/* A whole number in [lo, hi] for option `name`; else prints one line naming
 * prog and the option and returns 2. */
int arg_long(const char *prog, const char *name, const char *v, long lo, long hi, long *out);
/* The same for a number in [lo, hi] (hi may be HUGE_VAL: no upper bound). */
int arg_double(const char *prog, const char *name, const char *v, double lo, double hi,
               double *out);

/* Sets OpenBLAS threads for this rank as comm_thread_plan chooses (--threads,
 * else node cores / ranks on the node, within the rank's CPU binding);
 * returns the number set, with an account of the choice in why. */
int setup_threads(int requested, char *why, size_t whylen);
/* 1, with a one-line warning in buf, when the CPU supports a much faster
 * OpenBLAS kernel than the one in use (Debian's 0.3.21 falls back to
 * Prescott on CPUs it does not know); 0 when the kernel fits the CPU. */
int blas_kernel_advice(char *buf, size_t n);

/* Corpus BLEU (issue: decoding and evaluation) over whitespace tokens. */
typedef struct bleu_stats {
    double match[4], total[4]; /* clipped n-gram matches and hypothesis n-grams, n = 1..4 */
    double hyp_len, ref_len;
} bleu_stats;
void bleu_add(bleu_stats *s, const char *hyp, const char *ref, int max_n);
double bleu_score(const bleu_stats *s, int max_n, double *bp, double prec[4]);
/* The book's sentence score: exp(min(0, 1 − len_label/len_pred)) · Π p_n^(1/2^n). */
double bleu_d2l(const char *pred, const char *label, int k);

#endif

/* The training configuration: one struct, filled from defaults, then a JSON
 * config file (--config), then the command line; saved as JSON into every
 * checkpoint. One table of options drives parsing, range checks, the JSON
 * form and --help. */
#ifndef SEQPAR_TRAINER_CONFIG_H
#define SEQPAR_TRAINER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CFG_STR 256

typedef struct train_config {
    char task[16]; /* translate | lm */
    char dataset[CFG_STR];
    char data_dir[CFG_STR];
    long num_examples;
    char tokens[8]; /* char | word (LM) */
    int min_freq;   /* -1: task default (translate 2, lm 0) */
    char cell[8];
    int layers, embed, hidden;
    double dropout;
    int bidirectional;
    int batch, steps;
    char sampler[16];  /* random | sequential */
    char optimizer[8]; /* adam | sgd */
    double lr, clip;
    long epochs, max_steps;
    long seed;
    int threads; /* OpenBLAS threads per rank; 0 = cores / ranks on the node */
    int workers; /* in-process replicas per rank, each on one thread (1 = none) */
    char checkpoint_dir[CFG_STR];
    long checkpoint_every;
    int keep;
    char resume[CFG_STR];
    char monitor[CFG_STR];
    char run[65]; /* run id on the metrics wire ("" = generated) */
    long eval_every;
    int valid;
    int eval_beam;     /* validation BLEU: 1 = greedy, K = beam search */
    double eval_alpha; /* its length normalisation */
    long early_stop;   /* stop after N evaluations without improvement (0 = never) */
    char bptt[16];     /* full | K | random[:K] */
    long log_every;
    char overlap[4];        /* on | off: reduce gradient buckets during backward */
    int bucket_kb;          /* gradient bucket size */
    long replica_check;     /* compare parameter checksums every N steps (0 = never) */
    char on_ckpt_error[12]; /* stop | continue */
} train_config;

void config_defaults(train_config *c);

/* Parses argv (after the subcommand) into c: first --config FILE if present,
 * then every other option. Returns 0, or 2 after printing one line to stderr
 * (bad option or value), or 1 when --help was printed. */
int config_parse_args(train_config *c, int argc, char **argv, const char *prog);

/* JSON form of the whole configuration (malloc'd string). */
char *config_to_json(const train_config *c);
/* Applies a JSON object's members to c; unknown keys and bad values are
 * errors naming `where` and the key. Returns 0 or prints one line and
 * returns 2. */
int config_from_json(train_config *c, const char *json, const char *where);
/* The same, with the error line written into err instead of printed. */
int config_from_json_err(train_config *c, const char *json, const char *where, char *err, size_t n);

void config_print_help(FILE *f, const char *prog);

/* Compares the options named in `names` (NULL-terminated list of long option
 * names); on the first that differs writes a sentence into out and returns 1. */
int config_first_difference(const train_config *a, const train_config *b, const char *const *names,
                            char *out, size_t n);
/* The same over every option (names NULL) or those named, leaving out those
 * in skip (NULL-terminated, or NULL): "--NAME is A <in_a> but B <in_b>". */
int config_difference(const train_config *a, const train_config *b, const char *const *names,
                      const char *const *skip, const char *in_a, const char *in_b, char *out,
                      size_t n);

#endif

/* The training configuration: one struct, filled from defaults, then a JSON
 * config file (--config), then the command line; checked as a whole by
 * config_validate; saved as JSON into every checkpoint. Its option table
 * (config.c, one row per option) drives parsing, range and choice checks,
 * the JSON form and --help (cli.h). Choices are held as enums. */
#ifndef SEQPAR_TRAINER_CONFIG_H
#define SEQPAR_TRAINER_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "cli.h"

#define CFG_STR 256

typedef enum { CKPT_ERROR_STOP = 0, CKPT_ERROR_CONTINUE = 1 } ckpt_error_policy;
typedef enum { NAN_STOP = 0, NAN_SKIP = 1 } nan_policy;
/* --lr-schedule (schedule.h) */
typedef enum {
    LR_CONSTANT = 0,
    LR_INVERSE_SQRT = 1,
    LR_COSINE = 2,
    LR_PLATEAU = 3
} lr_schedule_kind;

/* --bptt full | K | random[:K] */
typedef struct bptt_spec {
    int mode; /* bptt_mode (model.h) */
    int k;    /* the span (fixed), or the mean span (random) */
} bptt_spec;

typedef struct train_config {
    int task; /* model_task: translate | lm */
    char dataset[CFG_STR];
    char data_dir[CFG_STR];
    long num_examples;
    int tokens;   /* data_token_kind: char | word (LM) */
    int min_freq; /* -1: task default (translate 2, lm 0) */
    int cell;     /* cell_kind */
    int layers, embed, hidden;
    double dropout;
    int bidirectional;
    int attention; /* model_attention: none | additive */
    int batch, steps;
    int sampler;   /* data_sampler_kind */
    int optimizer; /* opt_kind */
    double lr, clip;
    double weight_decay;    /* AdamW's decoupled weight decay */
    int lr_schedule;        /* lr_schedule_kind */
    long warmup;            /* linear warm-up over the first N updates (0 = none) */
    double lr_min;          /* the schedules' floor (cosine's end, plateau's least) */
    double lr_factor;       /* plateau: lr ← lr · factor */
    long lr_patience;       /* plateau: after P evaluations without a lower validation loss */
    int accum;              /* micro-batches per update (gradient accumulation) */
    double label_smoothing; /* of the training loss, as PyTorch's CrossEntropyLoss */
    long batch_tokens;      /* batches of about N target tokens (0 = --batch pairs) */
    long epochs, max_steps;
    long seed;
    int threads; /* OpenBLAS threads per rank; 0 = cores / ranks on the node */
    int workers; /* in-process replicas per rank, each on one thread (1 = none) */
    char checkpoint_dir[CFG_STR];
    long checkpoint_every;
    int keep;
    char resume[CFG_STR];
    char monitor[CFG_STR];
    char monitor_key[CFG_STR]; /* the trainers' CURVE key file ("" = none) */
    char run[65];              /* run id on the metrics wire ("" = generated) */
    long eval_every;
    int valid;
    int eval_beam;     /* validation BLEU: 1 = greedy, K = beam search */
    double eval_alpha; /* its length normalisation */
    long early_stop;   /* stop after N evaluations without improvement (0 = never) */
    bptt_spec bptt;
    long log_every;
    int overlap;        /* 1: reduce gradient buckets during backward */
    int deterministic;  /* 1: the same bits at any world size and --workers (step_exact.c) */
    int bucket_kb;      /* gradient bucket size */
    int grad_compress;  /* COMM_COMPRESS_*: gradients on the wire in 16 bits */
    long replica_check; /* compare parameter checksums every N steps (0 = never) */
    int on_ckpt_error;  /* ckpt_error_policy */
    int stop_signals;   /* signals that stop the run gracefully (stop_signal.h's mask) */
    int on_nan;         /* nan_policy: a non-finite loss or gradient norm */
    int nan_patience;   /* consecutive skipped steps before the run stops */
    int progress;       /* progress_mode (progress.h): auto | bar | lines */
} train_config;

/* The table, for the command line of seqpar train. */
extern const cli_command config_command;

void config_defaults(train_config *c);

/* Parses argv (after the subcommand) into c: first --config FILE if present,
 * then every other option. Returns 0, or 2 after printing one line to stderr
 * (bad option or value), or 1 when --help was printed. */
int config_parse_args(train_config *c, int argc, char **argv, const char *prog);

/* The rules between options (and the world size): 0, or 2 with one line in
 * err naming the options. The same on every rank, except for --threads,
 * which may differ between nodes. */
int config_validate(const train_config *c, int world, char *err, size_t n);

/* The model a configuration describes, for these vocabularies and a
 * workspace of max_batch rows (sizes are model_create's to check). */
struct model_config;
void config_model(const train_config *c, int src_vocab, int tgt_vocab, int max_batch,
                  struct model_config *mc);

/* JSON form of the whole configuration (malloc'd string). */
char *config_to_json(const train_config *c);
/* Applies a JSON object's members to c; unknown keys and bad values are
 * errors naming `where` and the key: 0, or 2 with the line in err. */
int config_from_json(train_config *c, const char *json, const char *where, char *err, size_t n);

/* An option's value as text ("gru", "on", "random:5"). */
const char *config_text(const train_config *c, const char *name, char *buf, size_t n);

/* Compares the options named in `names` (NULL: every option), leaving out
 * those in skip (NULL-terminated, or NULL); on the first that differs
 * writes "--NAME is A <in_a> but B <in_b>" into out and returns 1. */
int config_difference(const train_config *a, const train_config *b, const char *const *names,
                      const char *const *skip, const char *in_a, const char *in_b, char *out,
                      size_t n);

#endif

/* seqpar train's options: the table (one row per option), defaults, and the
 * rules between options (config_validate). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "data.h"
#include "model.h"
#include "progress.h"
#include "stop_signal.h"
#include "wire.h"

/* ------------------------------------------------------------ --bptt */

static int bptt_parse(const char *s, void *field, char *err, size_t n)
{
    bptt_spec *b = field;
    char *end;
    if (strcmp(s, "full") == 0) {
        b->mode = BPTT_FULL, b->k = 0;
        return 0;
    }
    const char *why = "expected full, a whole number K >= 1, or random[:K] with K >= 2";
    if (strncmp(s, "random", 6) == 0) {
        long v = 10;
        if (s[6] != '\0') {
            v = s[6] == ':' ? strtol(s + 7, &end, 10) : -1;
            if (s[6] != ':' || end == s + 7 || *end || v < 2 || v > 100000) {
                snprintf(err, n, "%s", why);
                return -1;
            }
        }
        b->mode = BPTT_RANDOM, b->k = (int)v;
        return 0;
    }
    const long v = strtol(s, &end, 10);
    if (end == s || *end || v < 1 || v > 100000) {
        snprintf(err, n, "%s", why);
        return -1;
    }
    b->mode = BPTT_FIXED, b->k = (int)v;
    return 0;
}

static void bptt_format(const void *field, char *buf, size_t n)
{
    const bptt_spec *b = field;
    if (b->mode == BPTT_FULL)
        snprintf(buf, n, "full");
    else if (b->mode == BPTT_FIXED)
        snprintf(buf, n, "%d", b->k);
    else if (b->k == 10)
        snprintf(buf, n, "random");
    else
        snprintf(buf, n, "random:%d", b->k);
}

static const cli_custom BPTT = {bptt_parse, bptt_format};

static int signals_parse(const char *s, void *field, char *err, size_t n)
{
    return stop_signal_parse(s, field, err, n);
}

static void signals_format(const void *field, char *buf, size_t n)
{
    stop_signal_format(*(const int *)field, buf, n);
}

static const cli_custom SIGNALS = {signals_parse, signals_format};

/* ------------------------------------------------------------- the table */

static const int CELLS[] = {CELL_GRU, CELL_LSTM, CELL_RNN};
static const int OPTIMIZERS[] = {OPT_ADAM, OPT_SGD, OPT_ADAMW};
static const int SCHEDULES[] = {LR_CONSTANT, LR_INVERSE_SQRT, LR_COSINE, LR_PLATEAU};
static const int TOKENS[] = {DATA_TOKENS_CHAR, DATA_TOKENS_WORD};
static const int SAMPLERS[] = {DATA_SAMPLER_RANDOM, DATA_SAMPLER_SEQUENTIAL};
static const int TASKS[] = {MODEL_TRANSLATE, MODEL_LM};
static const int PROGRESS[] = {PROGRESS_AUTO, PROGRESS_BAR, PROGRESS_LINES};
static const int ATTENTIONS[] = {MODEL_ATTN_NONE, MODEL_ATTN_ADDITIVE};

#define F(field) CLI_FIELD(train_config, field)
#define INT(name, field, lo, hi, h)                                                                \
    {                                                                                              \
        name, CLI_INT, F(field), lo, hi, .help = h                                                 \
    }
#define LONG(name, field, lo, hi, h)                                                               \
    {                                                                                              \
        name, CLI_LONG, F(field), lo, hi, .help = h                                                \
    }
#define DOUBLE(name, field, lo, hi, h)                                                             \
    {                                                                                              \
        name, CLI_DOUBLE, F(field), lo, hi, .help = h                                              \
    }
#define STR(name, field, a, h)                                                                     \
    {                                                                                              \
        name, CLI_STR, F(field), .arg = a, .help = h                                               \
    }
#define CHOICE(name, field, ch, vals, h)                                                           \
    {                                                                                              \
        name, CLI_CHOICE, F(field), .choices = ch, .values = vals, .help = h                       \
    }

static const cli_opt OPTS[] = {
    CHOICE("task", task, "translate|lm", TASKS, "translate (seq2seq) or lm"),
    STR("dataset", dataset, "NAME|PATH",
        "numbers | fra-eng | timemachine | PATH (default numbers: embedded, no download)"),
    STR("data-dir", data_dir, "DIR", "where corpora are (else $SEQPAR_DATA, else ~/.cache/seqpar)"),
    LONG("num-examples", num_examples, 0, 1e9,
         "first N pairs (translate) or tokens (lm) of the corpus (0 = all; numbers: 20000 "
         "pairs)"),
    CHOICE("tokens", tokens, "char|word", TOKENS, "LM tokens"),
    INT("min-freq", min_freq, -1, 1e6, "vocabulary cut-off (-1 = task default: translate 2, lm 0)"),
    CHOICE("cell", cell, "gru|lstm|rnn", CELLS, "recurrent cell"),
    INT("layers", layers, 1, 16, "stacked recurrent layers"),
    INT("embed", embed, 0, 65536, "embedding size (0 = one-hot inputs)"),
    INT("hidden", hidden, 1, 65536, "hidden units"),
    DOUBLE("dropout", dropout, 0, 0.99, "dropout between stacked layers"),
    {"bidirectional", CLI_FLAG, F(bidirectional), 0, 1,
     .help = "bidirectional encoder (H/2 units per direction)"},
    CHOICE("attention", attention, "none|additive", ATTENTIONS,
           "the decoder: none (the book's seq2seq, a fixed context) or additive (its Bahdanau "
           "attention decoder)"),
    INT("batch", batch, 1, 1 << 20,
        "global batch size (over all ranks); with --batch-tokens the most pairs a batch holds"),
    LONG("batch-tokens", batch_tokens, 0, 1e12,
         "translate: batches of about N target tokens (pairs bucketed by length in a shuffled "
         "window; at most --batch pairs), as fairseq's --max-tokens (0 = --batch pairs)"),
    INT("steps", steps, 1, 100000, "num_steps: sequence length"),
    CHOICE("sampler", sampler, "random|sequential", SAMPLERS, "minibatch sampler"),
    CHOICE("optimizer", optimizer, "adam|sgd|adamw", OPTIMIZERS,
           "optimizer (as torch.optim.Adam, SGD, AdamW)"),
    DOUBLE("lr", lr, 1e-12, 1e6, "learning rate (the schedule's peak)"),
    DOUBLE("weight-decay", weight_decay, 0, 1e6,
           "--optimizer adamw: decoupled weight decay, p <- p (1 - lr x L) each update (torch's "
           "AdamW default is 0.01; here 0 unless given)"),
    CHOICE("lr-schedule", lr_schedule, "constant|inverse-sqrt|cosine|plateau", SCHEDULES,
           "learning-rate schedule after --warmup: constant; inverse-sqrt, lr x sqrt(max(W,1) / "
           "u) at update u; cosine, from lr down to --lr-min over the run's steps (--epochs / "
           "--max-steps); plateau, lr x --lr-factor after --lr-patience evaluations without a "
           "lower validation loss"),
    LONG("warmup", warmup, 0, 1e12, "linear warm-up: update u <= N runs at lr x u / N (0 = none)"),
    DOUBLE("lr-min", lr_min, 0, 1e6,
           "the schedules' floor: cosine ends there, inverse-sqrt and plateau stop there"),
    DOUBLE("lr-factor", lr_factor, 1e-6, 0.999999, "--lr-schedule plateau: the rate's factor"),
    LONG("lr-patience", lr_patience, 1, 1e9,
         "--lr-schedule plateau: evaluations without a lower validation loss before the rate "
         "drops"),
    INT("accum", accum, 1, 1 << 16,
        "micro-batches of --batch per update: one update from K x --batch rows (gradient "
        "accumulation)"),
    DOUBLE("label-smoothing", label_smoothing, 0, 0.999,
           "label smoothing of the training loss, as torch's CrossEntropyLoss(label_smoothing) "
           "(validation stays plain cross-entropy)"),
    DOUBLE("clip", clip, 0, 1e12, "global gradient-norm clip (0 = off)"),
    LONG("epochs", epochs, 1, 1e9, "epochs to train"),
    LONG("max-steps", max_steps, 0, 1e12, "stop after N optimizer steps (0 = no limit)"),
    LONG("seed", seed, 0, 9007199254740992.0,
         "seed of every random draw (up to 2^53: exact in the JSON config)"),
    INT("threads", threads, 0, 1024,
        "OpenBLAS threads per rank (0 = node cores / ranks on the node)"),
    INT("workers", workers, 1, 256,
        "threads per rank that each train a replica on a share of the rank's rows, with "
        "single-threaded OpenBLAS (1 = none)"),
    STR("checkpoint-dir", checkpoint_dir, "DIR", "where checkpoints go"),
    LONG("checkpoint-every", checkpoint_every, 0, 1e12,
         "checkpoint every N steps (0 = only at the end)"),
    INT("keep", keep, 1, 1e6, "newest checkpoints kept"),
    CHOICE("on-checkpoint-error", on_ckpt_error, "stop|continue", NULL,
           "when a checkpoint cannot be written (disk full, no permission): stop the run (exit 1; "
           "earlier checkpoints stay) or warn and train on"),
    STR("resume", resume, "auto|FILE", "auto | FILE: continue from a checkpoint"),
    STR("monitor", monitor, "ENDPOINT",
        "ZeroMQ endpoint of a seqpar monitor to send metrics to (e.g. tcp://127.0.0.1:5555); "
        "sends never block"),
    STR("monitor-key", monitor_key, "FILE",
        "the trainers' key file of seqpar monitor --gen-keys: metrics go encrypted and "
        "authenticated (CURVE)"),
    STR("run", run, "NAME",
        "run name on the monitor ([A-Za-z0-9._:-], up to 64; default: date, time and a number)"),
    LONG("eval-every", eval_every, 0, 1e12,
         "validate every N steps as well as at epoch ends (needs --valid); best.h5 keeps the best"),
    INT("valid", valid, 0, 1e8,
        "validation: held-out pairs (translate), or the corpus's last N tokens (lm)"),
    INT("eval-beam", eval_beam, 1, 64,
        "validation BLEU from greedy (1) or beam-search (K) translations"),
    DOUBLE("eval-alpha", eval_alpha, 0, 10,
           "length normalisation of --eval-beam: score / length^alpha"),
    LONG("early-stop", early_stop, 0, 1e9,
         "stop after N evaluations without a better validation BLEU (lm: perplexity); 0 = never"),
    {"bptt", CLI_CUSTOM, F(bptt), .custom = &BPTT, .arg = "full|K|random[:K]",
     .help = "full | K (truncate every K steps) | random[:K] (unbiased random truncation, mean "
             "span K, default 10)"},
    LONG("log-every", log_every, 1, 1e12, "progress line every N steps"),
    CHOICE("overlap", overlap, "off|on", NULL,
           "allreduce gradient buckets while backward runs (on) or after it (off)"),
    {"deterministic", CLI_FLAG, F(deterministic),
     .help = "the same parameters, moments and figures, bit for bit, at any number of ranks and "
             "--workers: gradients of fixed 8-row shards summed exactly (one OpenBLAS thread "
             "per rank)"},
    INT("bucket-kb", bucket_kb, 0, 1 << 22,
        "gradient allreduce bucket size in KiB (0 = one bucket)"),
    CHOICE("grad-compress", grad_compress, "none|bf16|fp16", NULL,
           "gradient buckets on the wire as 16-bit numbers, summed in 16 bits: bfloat16, or IEEE "
           "half with a power-of-two scale per bucket agreed across ranks (half the bytes; the "
           "loss changes a little: tests/bench/README.md)"),
    LONG("replica-check", replica_check, 0, 1e12,
         "every N steps, check that all ranks hold identical parameters (0 = never)"),
    {"stop-signals", CLI_CUSTOM, F(stop_signals), .custom = &SIGNALS, .arg = "LIST",
     .help = "signals that stop the run at the next step with a checkpoint and exit status 75 "
             "(a second one stops at once): TERM,INT,USR1,USR2,HUP or none"},
    CHOICE("on-nan", on_nan, "stop|skip", NULL,
           "a non-finite loss or gradient norm, found before the update: stop the run (exit 1; "
           "no checkpoint of it) or skip the update"),
    INT("nan-patience", nan_patience, 1, 1000000,
        "--on-nan skip: the run stops at the K-th non-finite step in a row (1: at the first; "
        "K - 1 are skipped)"),
    CHOICE("progress", progress, "auto|bar|lines", PROGRESS,
           "rank 0's progress: one line updated in place on a terminal (bar), the step lines "
           "scripts parse (lines), or the bar when stdout is a terminal and no MPI launcher "
           "started seqpar (auto)"),
};

static const train_config DEFAULTS = {
    .task = MODEL_TRANSLATE,
    .dataset = "numbers",
    .tokens = DATA_TOKENS_CHAR,
    .min_freq = -1,
    .cell = CELL_GRU,
    .layers = 2,
    .embed = 32,
    .hidden = 32,
    .dropout = 0.1,
    .batch = 64,
    .steps = 10,
    .sampler = DATA_SAMPLER_RANDOM,
    .optimizer = OPT_ADAM,
    .lr = 0.005,
    .clip = 1.0,
    .lr_schedule = LR_CONSTANT,
    .lr_factor = 0.5,
    .lr_patience = 3,
    .accum = 1,
    .epochs = 10,
    .seed = 1,
    .workers = 1,
    .keep = 3,
    .eval_beam = 1,
    .eval_alpha = 0.75,
    .bptt = {.mode = BPTT_FULL},
    .log_every = 10,
    .overlap = 0,
    .bucket_kb = 1024,
    .replica_check = 100,
    .on_ckpt_error = CKPT_ERROR_STOP,
    .stop_signals = STOP_SIGNALS_DEFAULT,
    .on_nan = NAN_STOP,
    .nan_patience = 5,
    .progress = PROGRESS_AUTO,
};

const cli_command config_command = {.prog = "seqpar train",
                                    .defaults = &DEFAULTS,
                                    .opts = OPTS,
                                    .nopts = sizeof OPTS / sizeof *OPTS,
                                    .config_file = 1};

void config_defaults(train_config *c)
{
    *c = DEFAULTS;
}

int config_parse_args(train_config *c, int argc, char **argv, const char *prog)
{
    cli_command cmd = config_command;
    cmd.prog = prog;
    return cli_parse(&cmd, c, argc, argv, NULL, 0, NULL);
}

char *config_to_json(const train_config *c)
{
    return cli_to_json(&config_command, c);
}

int config_from_json(train_config *c, const char *json, const char *where, char *err, size_t n)
{
    return cli_from_json(&config_command, c, json, where, err, n);
}

const char *config_text(const train_config *c, const char *name, char *buf, size_t n)
{
    const cli_opt *o = cli_find(&config_command, name);
    if (o)
        cli_text(o, c, buf, n);
    else
        snprintf(buf, n, "?");
    return buf;
}

static int listed(const char *const *names, const char *name)
{
    for (const char *const *nm = names; nm && *nm; nm++)
        if (strcmp(*nm, name) == 0) return 1;
    return 0;
}

int config_difference(const train_config *a, const train_config *b, const char *const *names,
                      const char *const *skip, const char *in_a, const char *in_b, char *out,
                      size_t n)
{
    /* in the order of names, else of the table */
    for (size_t i = 0; names ? names[i] != NULL : i < config_command.nopts; i++) {
        const cli_opt *o = names ? cli_find(&config_command, names[i]) : &OPTS[i];
        if (!o || listed(skip, o->name)) continue;
        char va[CFG_STR + 8], vb[CFG_STR + 8];
        cli_text(o, a, va, sizeof va);
        cli_text(o, b, vb, sizeof vb);
        if (strcmp(va, vb) != 0) {
            snprintf(out, n, "--%s is %s%s %s but %s%s %s", o->name, va[0] ? "" : "''", va, in_a,
                     vb[0] ? "" : "''", vb, in_b);
            return 1;
        }
    }
    return 0;
}

void config_model(const train_config *c, int src_vocab, int tgt_vocab, int max_batch,
                  model_config *mc)
{
    memset(mc, 0, sizeof *mc);
    mc->task = (model_task)c->task;
    mc->cell = (cell_kind)c->cell;
    mc->layers = c->layers;
    mc->embed = c->embed;
    mc->hidden = c->hidden;
    mc->dropout = (float)c->dropout;
    mc->bidirectional = c->bidirectional;
    mc->src_vocab = src_vocab;
    mc->tgt_vocab = tgt_vocab;
    mc->num_steps = c->steps;
    mc->max_batch = max_batch;
    mc->attention = c->attention;
}

/* ------------------------------------------------- rules between options */

/* Each rule: when `broken`, the line. In this order: the first broken rule
 * is the one reported. */
int config_validate(const train_config *c, int world, char *err, size_t n)
{
    const int lm = c->task == MODEL_LM, per_rank = (c->batch + world - 1) / world;
#define RULE(broken, ...)                                                                          \
    do {                                                                                           \
        if (broken) {                                                                              \
            snprintf(err, n, __VA_ARGS__);                                                         \
            return 2;                                                                              \
        }                                                                                          \
    } while (0)
    RULE(c->bptt.mode != BPTT_FULL && !lm, "--bptt applies to --task lm only");
    RULE(c->batch < world,
         "--batch %d is smaller than the number of ranks (%d): every rank needs rows", c->batch,
         world);
    RULE(c->workers > 1 && c->batch < world * c->workers,
         "--batch %d is smaller than ranks x --workers (%d x %d): every worker needs rows",
         c->batch, world, c->workers);
    RULE(c->workers > 1 && c->threads > 1,
         "--workers %d runs each worker on one OpenBLAS thread: leave --threads out (or set it "
         "to 1)",
         c->workers);
    RULE(c->workers > 1 && c->overlap && !c->deterministic,
         "--overlap on needs --workers 1 (workers sum their gradients after backward)");
    RULE(c->deterministic && c->threads > 1,
         "--deterministic runs one OpenBLAS thread per rank: leave --threads out (or set it to "
         "1)");
    RULE(c->bidirectional && lm, "--bidirectional applies to --task translate only");
    RULE(c->attention && lm, "--attention applies to --task translate only");
    RULE(c->attention && c->embed == 0,
         "--attention additive needs embeddings: --embed 0 (one-hot inputs) is not supported");
    RULE(c->bidirectional && c->hidden % 2,
         "--bidirectional needs an even --hidden (H/2 units per direction)");
    RULE(c->run[0] && !wire_run_id_ok(c->run),
         "--run '%s': use 1..%d of the characters A-Z a-z 0-9 . _ : -", c->run, WIRE_RUN_MAX);
    RULE(c->eval_every > 0 && c->valid == 0, "--eval-every needs --valid N > 0");
    RULE(c->early_stop > 0 && c->valid == 0, "--early-stop needs --valid N > 0");
    RULE(c->eval_beam > 1 && lm, "--eval-beam applies to --task translate only");
    RULE(c->weight_decay > 0 && c->optimizer != OPT_ADAMW,
         "--weight-decay applies to --optimizer adamw (decoupled, as torch.optim.AdamW)");
    RULE(c->lr_schedule != LR_CONSTANT && c->lr_min >= c->lr,
         "--lr-min %g must be below --lr %g (the schedule decays from --lr towards --lr-min)",
         c->lr_min, c->lr);
    RULE(c->lr_schedule == LR_PLATEAU && c->valid == 0,
         "--lr-schedule plateau needs --valid N > 0 (it watches the validation loss)");
    RULE((long)c->batch * c->accum > (1L << 20),
         "--batch %d x --accum %d: at most 1048576 rows an update", c->batch, c->accum);
    RULE(c->accum > 1 && lm && c->sampler == DATA_SAMPLER_SEQUENTIAL,
         "--accum %d needs --sampler random for --task lm (the sequential sampler carries each "
         "stream's state from one batch to the next)",
         c->accum);
    RULE(c->batch_tokens > 0 && lm, "--batch-tokens applies to --task translate only");
    RULE(c->batch_tokens > 0 && c->sampler != DATA_SAMPLER_RANDOM,
         "--batch-tokens needs --sampler random (pairs are bucketed in shuffled windows)");
    RULE(c->deterministic && c->accum > 1,
         "--deterministic does not combine with --accum yet (its shards are one batch's)");
    RULE(c->deterministic && c->grad_compress,
         "--grad-compress does not apply with --deterministic (its sums are exact 64-bit "
         "integers)");
    RULE(c->deterministic && c->batch_tokens > 0,
         "--deterministic does not combine with --batch-tokens yet (its shards are cut from "
         "--batch rows)");
    RULE(c->eval_beam > per_rank && !c->deterministic, /* its validator has its own replica */
         "--eval-beam %d: at most the rows per rank (--batch %d over %d rank%s)", c->eval_beam,
         c->batch, world, world > 1 ? "s" : "");
#undef RULE
    return 0;
}

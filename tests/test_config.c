/* seqpar train's options: the table (parsing, choices as enums, the JSON
 * form) and config_validate, one test per rule between options, each with a
 * configuration that breaks it and one next to it that does not. */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "data.h"
#include "model.h"

static train_config base(void)
{
    train_config c;
    config_defaults(&c);
    return c;
}

/* config_validate's verdict on c at `world` ranks; msg gets its line. */
static int check(const train_config *c, int world, char *msg, size_t n)
{
    msg[0] = '\0';
    return config_validate(c, world, msg, n);
}

#define REFUSED(c, world, text)                                                                    \
    do {                                                                                           \
        char m_[600];                                                                              \
        CU_ASSERT_EQUAL(check(&(c), world, m_, sizeof m_), 2);                                     \
        CU_ASSERT_PTR_NOT_NULL(strstr(m_, text));                                                  \
        if (!strstr(m_, text)) fprintf(stderr, "\n  got '%s', wanted '%s'\n", m_, text);           \
    } while (0)
#define ACCEPTED(c, world)                                                                         \
    do {                                                                                           \
        char m_[600];                                                                              \
        CU_ASSERT_EQUAL(check(&(c), world, m_, sizeof m_), 0);                                     \
    } while (0)

static void test_defaults_valid(void)
{
    train_config c = base();
    ACCEPTED(c, 1);
    ACCEPTED(c, 64);
}

static void test_bptt_lm_only(void)
{
    train_config c = base();
    c.bptt.mode = BPTT_FIXED, c.bptt.k = 5;
    REFUSED(c, 1, "--bptt applies to --task lm only");
    c.task = MODEL_LM;
    ACCEPTED(c, 1);
}

static void test_batch_rows_per_rank(void)
{
    train_config c = base();
    c.batch = 3;
    REFUSED(c, 4, "--batch 3 is smaller than the number of ranks (4)");
    ACCEPTED(c, 3);
}

static void test_batch_rows_per_worker(void)
{
    train_config c = base();
    c.batch = 4, c.workers = 8;
    REFUSED(c, 1, "--batch 4 is smaller than ranks x --workers (1 x 8)");
    c.batch = 16;
    REFUSED(c, 3, "ranks x --workers (3 x 8)");
    ACCEPTED(c, 2);
}

static void test_workers_no_threads(void)
{
    train_config c = base();
    c.workers = 2, c.threads = 2;
    REFUSED(c, 1, "--workers 2 runs each worker on one OpenBLAS thread");
    c.threads = 1;
    ACCEPTED(c, 1);
}

static void test_workers_no_overlap(void)
{
    train_config c = base();
    c.workers = 2, c.overlap = 1;
    REFUSED(c, 1, "--overlap on needs --workers 1");
    c.workers = 1;
    ACCEPTED(c, 1);
}

static void test_deterministic_threads(void)
{
    train_config c = base();
    c.deterministic = 1, c.threads = 2;
    REFUSED(c, 3, "--deterministic runs one OpenBLAS thread per rank");
    c.threads = 1;
    ACCEPTED(c, 3);
    c.threads = 0, c.workers = 2;
    ACCEPTED(c, 3);
    c.accum = 2;
    REFUSED(c, 3, "--deterministic does not combine with --accum");
    c.accum = 1, c.batch_tokens = 500;
    REFUSED(c, 3, "--deterministic does not combine with --batch-tokens");
    c.batch_tokens = 0, c.grad_compress = 1;
    REFUSED(c, 3, "--grad-compress does not apply with --deterministic");
    c.grad_compress = 0;
    ACCEPTED(c, 3);
    /* its validator and its exact sums need neither rows per rank for the
     * beam nor a reducer for the workers */
    c.batch = 12, c.eval_beam = 5, c.valid = 10;
    ACCEPTED(c, 3);
    c.deterministic = 0;
    REFUSED(c, 3, "--eval-beam 5: at most the rows per rank");
    c.deterministic = 1, c.eval_beam = 1, c.workers = 2, c.overlap = 1;
    ACCEPTED(c, 3);
    c.deterministic = 0;
    REFUSED(c, 3, "--overlap on needs --workers 1");
}

static void test_bidirectional(void)
{
    train_config c = base();
    c.bidirectional = 1, c.task = MODEL_LM;
    REFUSED(c, 1, "--bidirectional applies to --task translate only");
    c.task = MODEL_TRANSLATE, c.hidden = 33;
    REFUSED(c, 1, "--bidirectional needs an even --hidden");
    c.hidden = 34;
    ACCEPTED(c, 1);
}

static void test_attention(void)
{
    train_config c = base();
    c.attention = MODEL_ATTN_ADDITIVE, c.task = MODEL_LM;
    REFUSED(c, 1, "--attention applies to --task translate only");
    c.task = MODEL_TRANSLATE, c.embed = 0;
    REFUSED(c, 1, "--attention additive needs embeddings");
    c.embed = 8;
    ACCEPTED(c, 1);
    c.attention = MODEL_ATTN_NONE, c.embed = 0;
    ACCEPTED(c, 1);
}

/* A checkpoint written before --attention (no "attention" key) reads as the
 * attention-free model; the key round-trips by name. */
static void test_attention_json(void)
{
    train_config c;
    config_defaults(&c);
    c.attention = MODEL_ATTN_ADDITIVE;
    char err[300];
    CU_ASSERT_EQUAL(config_from_json(&c, "{\"hidden\": 8}", "j", err, sizeof err), 0);
    config_defaults(&c);
    CU_ASSERT_EQUAL(config_from_json(&c, "{\"hidden\": 8}", "j", err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.attention, MODEL_ATTN_NONE);
    CU_ASSERT_EQUAL(config_from_json(&c, "{\"attention\": \"additive\"}", "j", err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.attention, MODEL_ATTN_ADDITIVE);
    char *json = config_to_json(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"attention\":\"additive\""));
    free(json);
    CU_ASSERT_EQUAL(config_from_json(&c, "{\"attention\": \"dot\"}", "j", err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--attention: expected one of none|additive"));
    train_config d;
    config_defaults(&d);
    char why[300];
    CU_ASSERT_EQUAL(config_difference(&c, &d, (const char *const[]){"attention", NULL}, NULL,
                                      "in the checkpoint", "in this run", why, sizeof why),
                    1);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "--attention is additive in the checkpoint but none"));
}

static void test_run_id(void)
{
    train_config c = base();
    strcpy(c.run, "my run");
    REFUSED(c, 1, "--run 'my run': use 1..64 of the characters");
    strcpy(c.run, "my-run.2:a_b");
    ACCEPTED(c, 1);
}

static void test_validation_needed(void)
{
    train_config c = base();
    c.eval_every = 10;
    REFUSED(c, 1, "--eval-every needs --valid N > 0");
    c.eval_every = 0, c.early_stop = 3;
    REFUSED(c, 1, "--early-stop needs --valid N > 0");
    c.valid = 100, c.eval_every = 10;
    ACCEPTED(c, 1);
}

static void test_eval_beam(void)
{
    train_config c = base();
    c.eval_beam = 4, c.task = MODEL_LM;
    REFUSED(c, 1, "--eval-beam applies to --task translate only");
    c.task = MODEL_TRANSLATE, c.batch = 12;
    REFUSED(c, 4, "--eval-beam 4: at most the rows per rank (--batch 12 over 4 ranks)");
    ACCEPTED(c, 3);
}

/* Two broken rules: the first in the table's order is the one reported. */
static void test_weight_decay_adamw(void)
{
    train_config c = base();
    c.weight_decay = 0.01;
    REFUSED(c, 1, "--weight-decay applies to --optimizer adamw");
    c.optimizer = OPT_ADAMW;
    ACCEPTED(c, 1);
}

static void test_lr_min_below_lr(void)
{
    train_config c = base();
    c.lr_min = 0.01; /* above --lr 0.005: fine while the rate is constant */
    ACCEPTED(c, 1);
    c.lr_schedule = LR_COSINE;
    REFUSED(c, 1, "--lr-min 0.01 must be below --lr 0.005");
    c.lr_min = 0.001;
    ACCEPTED(c, 1);
}

static void test_plateau_needs_valid(void)
{
    train_config c = base();
    c.lr_schedule = LR_PLATEAU;
    REFUSED(c, 1, "--lr-schedule plateau needs --valid N > 0");
    c.valid = 100;
    ACCEPTED(c, 1);
}

static void test_accum(void)
{
    train_config c = base();
    c.accum = 4;
    ACCEPTED(c, 2);
    c.task = MODEL_LM, c.sampler = DATA_SAMPLER_SEQUENTIAL;
    REFUSED(c, 1, "--accum 4 needs --sampler random for --task lm");
    c.sampler = DATA_SAMPLER_RANDOM;
    ACCEPTED(c, 1);
    c.batch = 1 << 20;
    REFUSED(c, 1, "--batch 1048576 x --accum 4: at most 1048576 rows an update");
    c.accum = 1;
    ACCEPTED(c, 1);
}

static void test_batch_tokens(void)
{
    train_config c = base();
    c.batch_tokens = 500;
    ACCEPTED(c, 2);
    c.sampler = DATA_SAMPLER_SEQUENTIAL;
    REFUSED(c, 1, "--batch-tokens needs --sampler random");
    c.task = MODEL_LM, c.sampler = DATA_SAMPLER_RANDOM;
    REFUSED(c, 1, "--batch-tokens applies to --task translate only");
}

static void test_first_rule_wins(void)
{
    train_config c = base();
    c.eval_every = 5, c.bidirectional = 1, c.hidden = 33;
    REFUSED(c, 1, "--bidirectional needs an even --hidden");
}

/* ------------------------------------------------------------- parsing */

static int parse(train_config *c, const char *line)
{
    char buf[512], *argv[32];
    int argc = 0;
    snprintf(buf, sizeof buf, "%s", line);
    for (char *s = strtok(buf, " "); s && argc < 32; s = strtok(NULL, " ")) argv[argc++] = s;
    config_defaults(c);
    return config_parse_args(c, argc, argv, "test_config (a refusal expected here)");
}

static void test_choices_are_enums(void)
{
    train_config c;
    CU_ASSERT_EQUAL(parse(&c, "--cell lstm --optimizer sgd --sampler sequential --task lm "
                              "--tokens word --overlap on --on-checkpoint-error continue"),
                    0);
    CU_ASSERT_EQUAL(c.cell, CELL_LSTM);
    CU_ASSERT_EQUAL(c.optimizer, OPT_SGD);
    CU_ASSERT_EQUAL(c.sampler, DATA_SAMPLER_SEQUENTIAL);
    CU_ASSERT_EQUAL(c.task, MODEL_LM);
    CU_ASSERT_EQUAL(c.tokens, DATA_TOKENS_WORD);
    CU_ASSERT_EQUAL(c.overlap, 1);
    CU_ASSERT_EQUAL(c.on_ckpt_error, CKPT_ERROR_CONTINUE);
    CU_ASSERT_EQUAL(parse(&c, "--cell=rnn"), 0);
    CU_ASSERT_EQUAL(c.cell, CELL_RNN);
    CU_ASSERT_EQUAL(parse(&c, "--cell foo"), 2);
    CU_ASSERT_EQUAL(parse(&c, "--bogus 3"), 2);
    CU_ASSERT_EQUAL(parse(&c, "--lr"), 2);
    CU_ASSERT_EQUAL(parse(&c, "--bidirectional=1"), 2);
}

static void test_bptt_syntax(void)
{
    train_config c;
    CU_ASSERT_EQUAL(parse(&c, "--bptt 7"), 0);
    CU_ASSERT(c.bptt.mode == BPTT_FIXED && c.bptt.k == 7);
    CU_ASSERT_EQUAL(parse(&c, "--bptt random"), 0);
    CU_ASSERT(c.bptt.mode == BPTT_RANDOM && c.bptt.k == 10);
    CU_ASSERT_EQUAL(parse(&c, "--bptt random:4"), 0);
    CU_ASSERT(c.bptt.mode == BPTT_RANDOM && c.bptt.k == 4);
    CU_ASSERT_EQUAL(parse(&c, "--bptt full"), 0);
    CU_ASSERT_EQUAL(c.bptt.mode, BPTT_FULL);
    CU_ASSERT_EQUAL(parse(&c, "--bptt zero"), 2);
    CU_ASSERT_EQUAL(parse(&c, "--bptt random:1"), 2);
    CU_ASSERT_EQUAL(parse(&c, "--bptt random:"), 2);
    CU_ASSERT_EQUAL(parse(&c, "--bptt 0"), 2);
}

/* The JSON form (stored in checkpoints) reads back to the same options,
 * choices and --bptt by name. */
static void test_json_round_trip(void)
{
    train_config a, b;
    CU_ASSERT_EQUAL(parse(&a, "--cell lstm --bptt random:4 --task lm --seed 9007199254740991 "
                              "--dropout 0.25 --bidirectional --run x"),
                    0);
    char *json = config_to_json(&a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(json);
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"cell\":\"lstm\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"bptt\":\"random:4\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(json, "\"seed\":9007199254740991"));
    config_defaults(&b);
    char err[300];
    CU_ASSERT_EQUAL(config_from_json(&b, json, "j", err, sizeof err), 0);
    char why[300];
    CU_ASSERT_EQUAL(config_difference(&a, &b, NULL, NULL, "a", "b", why, sizeof why), 0);
    free(json);
    CU_ASSERT_EQUAL(config_from_json(&b, "{\"cell\": \"foo\"}", "j", err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--cell: expected one of gru|lstm|rnn"));
    CU_ASSERT_EQUAL(config_from_json(&b, "{\"hidden\": 1.5}", "j", err, sizeof err), 2);
    CU_ASSERT_EQUAL(config_from_json(&b, "{\"bogus\": 1}", "j", err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "unknown key \"bogus\""));
    /* where JSON goes wrong, as people read it */
    CU_ASSERT_EQUAL(
        config_from_json(&b, "{\n \"hidden\": 8,\n \"run\": \"a,}\",\n}", "j", err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "j: line 3, column 14: trailing comma"));
    CU_ASSERT_EQUAL(config_from_json(&b, "{\"hidden\": 8} x", "j", err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "line 1, column 15: text after the JSON object (near 'x')"));
    CU_ASSERT_EQUAL(config_from_json(&b, "{\"hidden\": ", "j", err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "the text ends inside the object"));
    CU_ASSERT_EQUAL(config_from_json(&b, "[1]", "j", err, sizeof err), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "j: not a JSON object"));
}

void register_suites(void)
{
    CU_pSuite s = CU_add_suite("config_validate", NULL, NULL);
    CU_add_test(s, "defaults are valid", test_defaults_valid);
    CU_add_test(s, "--bptt: LM only", test_bptt_lm_only);
    CU_add_test(s, "--batch: rows for every rank", test_batch_rows_per_rank);
    CU_add_test(s, "--batch: rows for every worker", test_batch_rows_per_worker);
    CU_add_test(s, "--workers: one OpenBLAS thread", test_workers_no_threads);
    CU_add_test(s, "--workers: no overlap", test_workers_no_overlap);
    CU_add_test(s, "--deterministic: one OpenBLAS thread", test_deterministic_threads);
    CU_add_test(s, "--bidirectional", test_bidirectional);
    CU_add_test(s, "--attention", test_attention);
    CU_add_test(s, "--attention in the JSON config", test_attention_json);
    CU_add_test(s, "--run id", test_run_id);
    CU_add_test(s, "--eval-every/--early-stop need --valid", test_validation_needed);
    CU_add_test(s, "--eval-beam", test_eval_beam);
    CU_add_test(s, "--weight-decay needs adamw", test_weight_decay_adamw);
    CU_add_test(s, "--lr-min below --lr", test_lr_min_below_lr);
    CU_add_test(s, "--lr-schedule plateau needs --valid", test_plateau_needs_valid);
    CU_add_test(s, "--accum", test_accum);
    CU_add_test(s, "--batch-tokens", test_batch_tokens);
    CU_add_test(s, "the first broken rule is reported", test_first_rule_wins);
    CU_pSuite p = CU_add_suite("options", NULL, NULL);
    CU_add_test(p, "choices become enums", test_choices_are_enums);
    CU_add_test(p, "--bptt syntax", test_bptt_syntax);
    CU_add_test(p, "JSON round trip", test_json_round_trip);
}

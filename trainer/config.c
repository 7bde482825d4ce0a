/* Options table, command-line parsing, JSON config files. */
#include "config.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum { OPT_T_INT, OPT_T_LONG, OPT_T_DOUBLE, OPT_T_STR, OPT_T_FLAG } opt_type;

typedef struct opt_def {
    const char *name;
    opt_type type;
    size_t off;
    size_t size;         /* strings: buffer size */
    double lo, hi;       /* numeric range */
    const char *choices; /* strings: "a|b|c" or NULL for free text */
    const char *help;
} opt_def;

#define F(field) offsetof(train_config, field), sizeof(((train_config *)0)->field)

static const opt_def OPTS[] = {
    {"task", OPT_T_STR, F(task), 0, 0, "translate|lm", "translate (seq2seq) or lm"},
    {"dataset", OPT_T_STR, F(dataset), 0, 0, NULL,
     "numbers | fra-eng | timemachine | PATH (default numbers: embedded, no download)"},
    {"data-dir", OPT_T_STR, F(data_dir), 0, 0, NULL,
     "where corpora are (else $SEQPAR_DATA, else ~/.cache/seqpar)"},
    {"num-examples", OPT_T_LONG, F(num_examples), 0, 1e9, NULL,
     "first N pairs (translate) or tokens (lm) of the corpus (0 = all; numbers: 20000 "
     "pairs)"},
    {"tokens", OPT_T_STR, F(tokens), 0, 0, "char|word", "LM tokens"},
    {"min-freq", OPT_T_INT, F(min_freq), -1, 1e6, NULL,
     "vocabulary cut-off (-1 = task default: translate 2, lm 0)"},
    {"cell", OPT_T_STR, F(cell), 0, 0, "gru|lstm|rnn", "recurrent cell"},
    {"layers", OPT_T_INT, F(layers), 1, 16, NULL, "stacked recurrent layers"},
    {"embed", OPT_T_INT, F(embed), 0, 65536, NULL, "embedding size (0 = one-hot inputs)"},
    {"hidden", OPT_T_INT, F(hidden), 1, 65536, NULL, "hidden units"},
    {"dropout", OPT_T_DOUBLE, F(dropout), 0, 0.99, NULL, "dropout between stacked layers"},
    {"bidirectional", OPT_T_FLAG, F(bidirectional), 0, 1, NULL,
     "bidirectional encoder (H/2 units per direction)"},
    {"batch", OPT_T_INT, F(batch), 1, 1 << 20, NULL, "global batch size (over all ranks)"},
    {"steps", OPT_T_INT, F(steps), 1, 100000, NULL, "num_steps: sequence length"},
    {"sampler", OPT_T_STR, F(sampler), 0, 0, "random|sequential", "minibatch sampler"},
    {"optimizer", OPT_T_STR, F(optimizer), 0, 0, "adam|sgd", "optimizer"},
    {"lr", OPT_T_DOUBLE, F(lr), 1e-12, 1e6, NULL, "learning rate"},
    {"clip", OPT_T_DOUBLE, F(clip), 0, 1e12, NULL, "global gradient-norm clip (0 = off)"},
    {"epochs", OPT_T_LONG, F(epochs), 1, 1e9, NULL, "epochs to train"},
    {"max-steps", OPT_T_LONG, F(max_steps), 0, 1e12, NULL,
     "stop after N optimizer steps (0 = no limit)"},
    {"seed", OPT_T_LONG, F(seed), 0, 9007199254740992.0, NULL,
     "seed of every random draw (up to 2^53: exact in the JSON config)"},
    {"threads", OPT_T_INT, F(threads), 0, 1024, NULL,
     "OpenBLAS threads per rank (0 = node cores / ranks on the node)"},
    {"workers", OPT_T_INT, F(workers), 1, 256, NULL,
     "threads per rank that each train a replica on a share of the rank's rows, with "
     "single-threaded OpenBLAS (1 = none)"},
    {"checkpoint-dir", OPT_T_STR, F(checkpoint_dir), 0, 0, NULL, "where checkpoints go"},
    {"checkpoint-every", OPT_T_LONG, F(checkpoint_every), 0, 1e12, NULL,
     "checkpoint every N steps (0 = only at the end)"},
    {"keep", OPT_T_INT, F(keep), 1, 1e6, NULL, "newest checkpoints kept"},
    {"on-checkpoint-error", OPT_T_STR, F(on_ckpt_error), 0, 0, "stop|continue",
     "when a checkpoint cannot be written (disk full, no permission): stop the run (exit 1; "
     "earlier checkpoints stay) or warn and train on"},
    {"resume", OPT_T_STR, F(resume), 0, 0, NULL, "auto | FILE: continue from a checkpoint"},
    {"monitor", OPT_T_STR, F(monitor), 0, 0, NULL,
     "ZeroMQ endpoint of a seqpar monitor to send metrics to (e.g. tcp://127.0.0.1:5555); "
     "sends never block"},
    {"run", OPT_T_STR, F(run), 0, 0, NULL,
     "run name on the monitor ([A-Za-z0-9._:-], up to 64; default: date, time and a number)"},
    {"eval-every", OPT_T_LONG, F(eval_every), 0, 1e12, NULL,
     "validate every N steps as well as at epoch ends (needs --valid); best.h5 keeps the best"},
    {"valid", OPT_T_INT, F(valid), 0, 1e8, NULL,
     "validation: held-out pairs (translate), or the corpus's last N tokens (lm)"},
    {"eval-beam", OPT_T_INT, F(eval_beam), 1, 64, NULL,
     "validation BLEU from greedy (1) or beam-search (K) translations"},
    {"eval-alpha", OPT_T_DOUBLE, F(eval_alpha), 0, 10, NULL,
     "length normalisation of --eval-beam: score / length^alpha"},
    {"early-stop", OPT_T_LONG, F(early_stop), 0, 1e9, NULL,
     "stop after N evaluations without a better validation BLEU (lm: perplexity); 0 = never"},
    {"bptt", OPT_T_STR, F(bptt), 0, 0, NULL,
     "full | K (truncate every K steps) | random[:K] (unbiased random truncation, mean span "
     "K, default 10)"},
    {"log-every", OPT_T_LONG, F(log_every), 1, 1e12, NULL, "progress line every N steps"},
    {"overlap", OPT_T_STR, F(overlap), 0, 0, "on|off",
     "allreduce gradient buckets while backward runs (on) or after it (off)"},
    {"bucket-kb", OPT_T_INT, F(bucket_kb), 0, 1 << 22, NULL,
     "gradient allreduce bucket size in KiB (0 = one bucket)"},
    {"replica-check", OPT_T_LONG, F(replica_check), 0, 1e12, NULL,
     "every N steps, check that all ranks hold identical parameters (0 = never)"},
};
#define NOPTS (sizeof OPTS / sizeof *OPTS)

void config_defaults(train_config *c)
{
    memset(c, 0, sizeof *c);
    strcpy(c->task, "translate");
    strcpy(c->dataset, "numbers");
    strcpy(c->tokens, "char");
    c->min_freq = -1;
    strcpy(c->cell, "gru");
    c->layers = 2;
    c->embed = 32;
    c->hidden = 32;
    c->dropout = 0.1;
    c->batch = 64;
    c->steps = 10;
    strcpy(c->sampler, "random");
    strcpy(c->optimizer, "adam");
    c->lr = 0.005;
    c->clip = 1.0;
    c->epochs = 10;
    c->seed = 1;
    c->workers = 1;
    c->keep = 3;
    c->eval_beam = 1;
    c->eval_alpha = 0.75;
    strcpy(c->bptt, "full");
    c->log_every = 10;
    strcpy(c->overlap, "off");
    c->bucket_kb = 1024;
    c->replica_check = 100;
    strcpy(c->on_ckpt_error, "stop");
}

static const opt_def *find_opt(const char *name)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strcmp(OPTS[i].name, name) == 0) return &OPTS[i];
    return NULL;
}

static int in_choices(const char *choices, const char *v)
{
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Sets one option from its text form; prints the error line itself. */
static int set_opt(train_config *c, const opt_def *o, const char *val, const char *where, char *err,
                   size_t n)
{
    void *base = (char *)c + o->off;
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case OPT_T_FLAG:
        *(int *)base = 1;
        return 0;
    case OPT_T_INT:
    case OPT_T_LONG: {
        long long v = strtoll(val, &end, 10);
        /* compared as integers: as doubles, 2^53 + 1 would pass a bound of 2^53 */
        if (errno || end == val || *end || v < (long long)o->lo || v > (long long)o->hi) {
            snprintf(err, n, "%s: --%s: expected a whole number in [%.0f, %.0f], got '%s'", where,
                     o->name, o->lo, o->hi, val);
            return 2;
        }
        if (o->type == OPT_T_INT)
            *(int *)base = (int)v;
        else
            *(long *)base = (long)v;
        return 0;
    }
    case OPT_T_DOUBLE: {
        double v = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(v) || v < o->lo || v > o->hi) {
            snprintf(err, n, "%s: --%s: expected a number in [%g, %g], got '%s'", where, o->name,
                     o->lo, o->hi, val);
            return 2;
        }
        *(double *)base = v;
        return 0;
    }
    case OPT_T_STR:
        if (o->choices && !in_choices(o->choices, val)) {
            snprintf(err, n, "%s: --%s: expected one of %s, got '%s'", where, o->name, o->choices,
                     val);
            return 2;
        }
        if (strlen(val) >= o->size) {
            snprintf(err, n, "%s: --%s: value longer than %zu bytes", where, o->name, o->size - 1);
            return 2;
        }
        strcpy(base, val);
        return 0;
    }
    return 2;
}

static char *read_file(const char *path, long max)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    errno = 0;
    char *buf = malloc((size_t)max + 1);
    size_t n = buf ? fread(buf, 1, (size_t)max + 1, f) : 0;
    int failed = !buf || ferror(f) || n > (size_t)max; /* a directory fails with EISDIR */
    int e = errno;
    fclose(f);
    if (failed) {
        free(buf);
        errno = e;
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int config_from_json_err(train_config *c, const char *json, const char *where, char *err, size_t n)
{
    /* one JSON object and nothing after it but white space */
    cJSON *root = cJSON_ParseWithOpts(json, NULL, 1);
    if (!root || !cJSON_IsObject(root)) {
        const char *at = cJSON_GetErrorPtr();
        snprintf(err, n, "%s: not a JSON object%s%.20s%s", where, at ? " (near '" : "",
                 at ? at : "", at ? "')" : "");
        cJSON_Delete(root);
        return 2;
    }
    int rc = 0;
    for (cJSON *it = root->child; it && !rc; it = it->next) {
        const opt_def *o = find_opt(it->string);
        if (!o) {
            snprintf(err, n, "%s: unknown key \"%s\"", where, it->string);
            rc = 2;
            break;
        }
        char buf[64];
        const char *val = NULL;
        if (o->type == OPT_T_FLAG) {
            if (!cJSON_IsBool(it)) {
                snprintf(err, n, "%s: \"%s\" must be true or false", where, it->string);
                rc = 2;
                break;
            }
            *(int *)((char *)c + o->off) = cJSON_IsTrue(it);
            continue;
        }
        if (cJSON_IsString(it)) {
            val = it->valuestring;
        } else if (cJSON_IsNumber(it) && o->type != OPT_T_STR) {
            if (o->type == OPT_T_DOUBLE)
                snprintf(buf, sizeof buf, "%.17g", it->valuedouble);
            else if (it->valuedouble != floor(it->valuedouble))
                val = "(fraction)";
            else
                snprintf(buf, sizeof buf, "%.0f", it->valuedouble);
            if (!val) val = buf;
        } else {
            snprintf(err, n, "%s: \"%s\" has the wrong JSON type", where, it->string);
            rc = 2;
            break;
        }
        rc = set_opt(c, o, val, where, err, n);
    }
    cJSON_Delete(root);
    return rc;
}

int config_from_json(train_config *c, const char *json, const char *where)
{
    char err[CFG_STR * 2 + 128];
    int rc = config_from_json_err(c, json, where, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    return rc;
}

char *config_to_json(const train_config *c)
{
    cJSON *root = cJSON_CreateObject();
    if (!root) return NULL;
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_def *o = &OPTS[i];
        const void *base = (const char *)c + o->off;
        switch (o->type) {
        case OPT_T_FLAG:
            cJSON_AddBoolToObject(root, o->name, *(const int *)base);
            break;
        case OPT_T_INT:
            cJSON_AddNumberToObject(root, o->name, *(const int *)base);
            break;
        case OPT_T_LONG: {
            /* the digits themselves: cJSON prints numbers with 15 significant
             * digits where that reads back within its tolerance, which
             * rounds a seed near 2^53 */
            char digits[32];
            snprintf(digits, sizeof digits, "%ld", *(const long *)base);
            cJSON_AddRawToObject(root, o->name, digits);
            break;
        }
        case OPT_T_DOUBLE:
            cJSON_AddNumberToObject(root, o->name, *(const double *)base);
            break;
        case OPT_T_STR:
            cJSON_AddStringToObject(root, o->name, base);
            break;
        }
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* Text form of an option's value in c. */
static void opt_text(const opt_def *o, const train_config *c, char *buf, size_t n)
{
    const void *base = (const char *)c + o->off;
    switch (o->type) {
    case OPT_T_FLAG:
        snprintf(buf, n, "%s", *(const int *)base ? "on" : "off");
        break;
    case OPT_T_INT:
        snprintf(buf, n, "%d", *(const int *)base);
        break;
    case OPT_T_LONG:
        snprintf(buf, n, "%ld", *(const long *)base);
        break;
    case OPT_T_DOUBLE:
        snprintf(buf, n, "%.17g", *(const double *)base);
        break;
    case OPT_T_STR:
        snprintf(buf, n, "%s", (const char *)base);
        break;
    }
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
    for (size_t i = 0; names ? names[i] != NULL : i < NOPTS; i++) {
        const opt_def *o = names ? find_opt(names[i]) : &OPTS[i];
        if (!o || listed(skip, o->name)) continue;
        char va[CFG_STR + 8], vb[CFG_STR + 8];
        opt_text(o, a, va, sizeof va);
        opt_text(o, b, vb, sizeof vb);
        if (strcmp(va, vb) != 0) {
            snprintf(out, n, "--%s is %s%s %s but %s%s %s", o->name, va[0] ? "" : "''", va, in_a,
                     vb[0] ? "" : "''", vb, in_b);
            return 1;
        }
    }
    return 0;
}

int config_first_difference(const train_config *a, const train_config *b, const char *const *names,
                            char *out, size_t n)
{
    return config_difference(a, b, names, NULL, "in the checkpoint", "in this run", out, n);
}

void config_print_help(FILE *f, const char *prog)
{
    fprintf(f,
            "usage: %s [--config FILE] [options]\n\n"
            "Options (a JSON config file takes the same names as keys; the command line "
            "wins):\n",
            prog);
    train_config d;
    config_defaults(&d);
    for (size_t i = 0; i < NOPTS; i++) {
        const opt_def *o = &OPTS[i];
        const void *base = (const char *)&d + o->off;
        char def[64] = "";
        switch (o->type) {
        case OPT_T_FLAG:
            break;
        case OPT_T_INT:
            snprintf(def, sizeof def, "%d", *(const int *)base);
            break;
        case OPT_T_LONG:
            snprintf(def, sizeof def, "%ld", *(const long *)base);
            break;
        case OPT_T_DOUBLE:
            snprintf(def, sizeof def, "%g", *(const double *)base);
            break;
        case OPT_T_STR:
            snprintf(def, sizeof def, "%s", (const char *)base);
            break;
        }
        fprintf(f, "  --%-18s %s%s%s%s%s%s\n", o->name, o->help, o->choices ? ": " : "",
                o->choices ? o->choices : "", *def ? " [" : "", def, *def ? "]" : "");
    }
    fprintf(f, "  --%-18s %s\n", "config FILE",
            "JSON file of options, applied before the "
            "command line");
}

int config_parse_args(train_config *c, int argc, char **argv, const char *prog)
{
    /* --config first, so the command line overrides it wherever it stands */
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *path = NULL;
        if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "%s: --config needs a file\n", prog);
                return 2;
            }
            path = argv[i + 1];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        }
        if (!path) continue;
        errno = 0;
        char *text = read_file(path, 1 << 20);
        if (!text) {
            fprintf(stderr, "%s: --config: cannot read %s (%s)\n", prog, path,
                    errno ? strerror(errno) : "not a file, or larger than 1 MiB");
            return 2;
        }
        int rc = config_from_json(c, text, path);
        free(text);
        if (rc) return rc;
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            config_print_help(stdout, prog);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument '%s' (options start with --)\n", prog, a);
            return 2;
        }
        char name[64];
        const char *eq = strchr(a + 2, '=');
        size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, a + 2, len);
        name[len] = '\0';
        if (strcmp(name, "config") == 0) {
            if (!eq) i++;
            continue;
        }
        const opt_def *o = find_opt(name);
        if (!o) {
            fprintf(stderr, "%s: unknown option '--%s' (see --help)\n", prog, name);
            return 2;
        }
        const char *val = NULL;
        if (o->type == OPT_T_FLAG) {
            if (eq) {
                fprintf(stderr, "%s: --%s takes no value\n", prog, name);
                return 2;
            }
        } else if (eq) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            fprintf(stderr, "%s: --%s needs a value\n", prog, name);
            return 2;
        }
        char err[CFG_STR * 2 + 128];
        int rc = set_opt(c, o, val ? val : "", prog, err, sizeof err);
        if (rc) {
            fprintf(stderr, "%s\n", err);
            return rc;
        }
    }
    return 0;
}

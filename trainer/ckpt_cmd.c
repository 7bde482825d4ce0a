/* seqpar ckpt: info | verify | list | diff. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoints.h"
#include "cli.h"
#include "saved_model.h"
#include "trainer.h"

/* ------------------------------------------------------------------ ckpt */

static int ckpt_info(const char *path)
{
    saved_model sm;
    if (saved_model_load(&sm, path, 1, "seqpar ckpt info")) return 2;
    char err[ERRLEN];
    ckpt_file *f;
    ckpt_train tr = {.train_loss = NAN, .valid_loss = NAN, .valid_bleu = NAN, .best = NAN};
    if (ckpt_open(&f, path, err, sizeof err) == CKPT_OK) {
        ckpt_read_train(f, &tr, err, sizeof err);
        ckpt_close(f);
    }
    param_table *pt = model_params(sm.m);
    size_t n = 0;
    for (int i = 0; i < pt->n; i++) n += pt->t[i].size;
    const train_config *c = &sm.cfg;
    struct stat st;
    printf("file        %s (%lld bytes)\n", path,
           stat(path, &st) == 0 ? (long long)st.st_size : -1LL);
    printf("position    step %ld, epoch %ld, batch %ld (global batch %d, written by %d rank%s)\n",
           tr.step, tr.epoch, tr.batch_in_epoch, tr.global_batch, tr.world_size,
           tr.world_size == 1 ? "" : "s");
    char task[16], cell[16], tokens[16], optim[16];
    config_text(c, "task", task, sizeof task);
    config_text(c, "cell", cell, sizeof cell);
    config_text(c, "tokens", tokens, sizeof tokens);
    config_text(c, "optimizer", optim, sizeof optim);
    printf("model       %s %s, %d layer%s, embed %d, hidden %d%s%s, dropout %g, num_steps %d\n",
           task, cell, c->layers, c->layers > 1 ? "s" : "", c->embed, c->hidden,
           c->bidirectional ? ", bidirectional encoder" : "",
           c->attention ? ", attention additive" : "", c->dropout, c->steps);
    printf("parameters  %zu in %d tensors\n", n, pt->n);
    if (c->task == MODEL_LM)
        printf("vocabulary  %d tokens (%s)\n", sm.tgt.size, tokens);
    else
        printf("vocabulary  source %d, target %d\n", sm.src.size, sm.tgt.size);
    printf("data        %s, optimizer %s lr %g, clip %g, seed %ld\n", c->dataset, optim, c->lr,
           c->clip, c->seed);
    char figs[256] = "";
    size_t k = 0;
    if (isfinite(tr.train_loss))
        k += (size_t)snprintf(figs + k, sizeof figs - k, ", train loss %.4f (ppl %.3f)",
                              tr.train_loss, exp(tr.train_loss));
    if (isfinite(tr.valid_loss) && k < sizeof figs)
        k += (size_t)snprintf(figs + k, sizeof figs - k, ", valid loss %.4f (ppl %.3f)",
                              tr.valid_loss, exp(tr.valid_loss));
    if (isfinite(tr.valid_bleu) && k < sizeof figs)
        k += (size_t)snprintf(figs + k, sizeof figs - k, ", valid BLEU %.2f", tr.valid_bleu);
    if (isfinite(tr.best) && k < sizeof figs)
        snprintf(figs + k, sizeof figs - k, ", best %.4f, %ld evaluation%s since", tr.best,
                 tr.since_best, tr.since_best == 1 ? "" : "s");
    printf("figures     %s\n", figs[0] ? figs + 2 : "none recorded");
    saved_model_free(&sm);
    return 0;
}

static int ckpt_list(const char *dir)
{
    long *steps = NULL; /* every one: no cap */
    const int n = ckpt_list_all(dir, &steps);
    if (n < 0) {
        fprintf(stderr, "seqpar ckpt list: cannot open directory %s\n", dir);
        return 2;
    }
    int good = -1; /* the newest that verifies: where --resume auto continues */
    for (int i = 0; i < n; i++) {
        char path[1200], err[ERRLEN];
        ckpt_path(path, sizeof path, dir, steps[i]);
        struct stat st;
        int ok = ckpt_verify(path, err, sizeof err) == CKPT_OK;
        if (ok && good < 0) good = i;
        char status[ERRLEN + 8] = "ok";
        if (!ok || err[0]) snprintf(status, sizeof status, ok ? "ok (%s)" : "%s", err);
        printf("%s  step %ld  %lld bytes  %s\n", path, steps[i],
               stat(path, &st) == 0 ? (long long)st.st_size : -1LL, status);
    }
    if (n == 0)
        printf("no checkpoints in %s\n", dir);
    else if (good < 0)
        printf("none verifies: --resume auto would start afresh (%ld steps to redo)\n", steps[0]);
    else {
        char path[1200];
        ckpt_path(path, sizeof path, dir, steps[good]);
        if (good == 0)
            printf("--resume auto resumes from %s, the newest (0 steps to redo)\n", path);
        else
            printf("--resume auto resumes from %s, skipping %d newer that do not verify (%ld "
                   "steps to redo)\n",
                   path, good, steps[0] - steps[good]);
    }
    free(steps);
    return 0;
}

/* Largest difference between two copies of a buffer laid out as pt: per
 * tensor max|a − b| / max|a| (the relative difference in the max norm; a
 * tensor of zeros compares absolutely). Updates *worst and *worst_i. */
/* max|x − y| / max|x| over n floats (absolute when x is all zeros; a NaN
 * difference counts as infinite). */
static double rel_diff(const float *x, const float *y, size_t n)
{
    double dmax = 0.0, amax = 0.0;
    for (size_t k = 0; k < n; k++) {
        double d = fabs((double)x[k] - (double)y[k]);
        if (d > dmax || isnan(d)) dmax = isnan(d) ? INFINITY : d;
        if (fabs((double)x[k]) > amax) amax = fabs((double)x[k]);
    }
    return amax > 0 ? dmax / amax : dmax;
}

static void diff_tensors(const param_table *pt, const float *a, const float *b, double *worst,
                         int *worst_i, int *identical)
{
    for (int i = 0; i < pt->n; i++) {
        const float *x = a + pt->t[i].offset, *y = b + pt->t[i].offset;
        double rel = rel_diff(x, y, pt->t[i].size);
        *identical += memcmp(x, y, pt->t[i].size * sizeof(float)) == 0;
        if (rel > *worst || *worst_i < 0) *worst = rel, *worst_i = i;
    }
}

/* seqpar ckpt diff A B [--tolerance X]: how far apart two checkpoints of the
 * same model are (parameters, then Adam moments). Exit 0 within tolerance,
 * 1 beyond, 2 on a bad file or different models. */
typedef struct diff_opts {
    double tolerance;
} diff_opts;

static const cli_opt DIFF_OPTS[] = {
    {"tolerance", CLI_DOUBLE, CLI_FIELD(diff_opts, tolerance), 0, 1e300, .arg = "X",
     .help = "largest relative difference accepted (0: bitwise equal)"},
};

static const diff_opts DIFF_DEFAULTS = {0};

const cli_command ckpt_diff_command = {
    .prog = "seqpar ckpt diff",
    .defaults = &DIFF_DEFAULTS,
    .positional = "A B",
    .about = "Largest relative difference (per tensor max|a-b| / max|a|) of the parameters,\n"
             "Adam moments and carried LM states of two checkpoints of one model, whose\n"
             "optimizer, position and plateau schedule state must also agree; exit 1 beyond\n"
             "--tolerance.",
    .opts = DIFF_OPTS,
    .nopts = 1};

static int ckpt_diff(int argc, char **argv)
{
    const char *prog = "seqpar ckpt diff", *files[2] = {NULL, NULL};
    diff_opts o = DIFF_DEFAULTS;
    int nf = 0;
    const int parsed = cli_parse(&ckpt_diff_command, &o, argc, argv, files, 2, &nf);
    if (parsed) return parsed == 1 ? 0 : 2;
    const double tol = o.tolerance;
    if (nf != 2) {
        fprintf(stderr, "%s: usage: seqpar ckpt diff A B [--tolerance X]\n", prog);
        return 2;
    }
    saved_model a, b;
    if (saved_model_load(&a, files[0], 1, prog)) return 2;
    if (saved_model_load(&b, files[1], 1, prog)) {
        saved_model_free(&a);
        return 2;
    }
    param_table *pa = model_params(a.m), *pb = model_params(b.m);
    int same = pa->n == pb->n && pa->total == pb->total;
    for (int i = 0; same && i < pa->n; i++)
        same = strcmp(pa->t[i].name, pb->t[i].name) == 0 && pa->t[i].size == pb->t[i].size;
    if (!same) {
        fprintf(stderr, "%s: %s and %s hold different models\n", prog, files[0], files[1]);
        saved_model_free(&a), saved_model_free(&b);
        return 2;
    }
    double worst = 0.0;
    int wi = -1, identical = 0;
    diff_tensors(pa, pa->data, pb->data, &worst, &wi, &identical);
    printf("parameters  largest relative difference %.3g in %s; %d of %d tensors identical\n",
           worst, pa->t[wi].name, identical, pa->n);
    double worst_all = worst;
    /* the optimizer state and the training position must match too */
    optimizer oa = {0}, ob = {0};
    const opt_kind ka = (opt_kind)a.cfg.optimizer, kb = (opt_kind)b.cfg.optimizer;
    char err[ERRLEN] = "";
    ckpt_file *fa = NULL, *fb = NULL;
    ckpt_train ta = {0}, tb = {0};
    int rc = 0;
    if (ckpt_open(&fa, files[0], err, sizeof err) != CKPT_OK ||
        ckpt_open(&fb, files[1], err, sizeof err) != CKPT_OK ||
        ckpt_read_train(fa, &ta, err, sizeof err) != CKPT_OK ||
        ckpt_read_train(fb, &tb, err, sizeof err) != CKPT_OK) {
        rc = 2;
    } else if (ka != kb) {
        char na[16], nb[16];
        printf("optimizer   %s vs %s\n", config_text(&a.cfg, "optimizer", na, sizeof na),
               config_text(&b.cfg, "optimizer", nb, sizeof nb));
        worst_all = INFINITY;
    } else if (opt_has_moments(ka)) {
        if (optimizer_init(&oa, ka, 1.0f, pa) != MODEL_OK ||
            optimizer_init(&ob, kb, 1.0f, pb) != MODEL_OK) {
            snprintf(err, sizeof err, "out of memory");
            rc = 2;
        } else if (ckpt_read_optimizer(fa, pa, &oa, err, sizeof err) != CKPT_OK ||
                   ckpt_read_optimizer(fb, pb, &ob, err, sizeof err) != CKPT_OK) {
            rc = 2;
        } else {
            const char *which[2] = {"adam m", "adam v"};
            const float *xa[2] = {oa.m, oa.v}, *xb[2] = {ob.m, ob.v};
            for (int k = 0; k < 2; k++) {
                double w = 0.0;
                int i = -1, same_n = 0;
                diff_tensors(pa, xa[k], xb[k], &w, &i, &same_n);
                printf("%-11s largest relative difference %.3g in %s; %d of %d tensors "
                       "identical\n",
                       which[k], w, pa->t[i].name, same_n, pa->n);
                if (w > worst_all) worst_all = w;
            }
            if (oa.t != ob.t) {
                printf("adam step   %ld vs %ld\n", oa.t, ob.t);
                worst_all = INFINITY;
            }
        }
    }
    if (rc == 0 &&
        (ta.step != tb.step || ta.epoch != tb.epoch || ta.batch_in_epoch != tb.batch_in_epoch)) {
        printf("position    step %ld epoch %ld batch %ld vs step %ld epoch %ld batch %ld\n",
               ta.step, ta.epoch, ta.batch_in_epoch, tb.step, tb.epoch, tb.batch_in_epoch);
        worst_all = INFINITY;
    }
    /* --lr-schedule plateau's state (NaN, NaN, 0 in both without it) */
    const int same_nan =
        isnan(ta.lr_plateau) == isnan(tb.lr_plateau) && isnan(ta.lr_best) == isnan(tb.lr_best);
    if (rc == 0 && (!same_nan || ta.lr_since != tb.lr_since ||
                    (!isnan(ta.lr_plateau) && ta.lr_plateau != tb.lr_plateau) ||
                    (!isnan(ta.lr_best) && ta.lr_best != tb.lr_best))) {
        printf("lr plateau  rate %.17g best %.17g since %ld vs rate %.17g best %.17g since %ld\n",
               ta.lr_plateau, ta.lr_best, ta.lr_since, tb.lr_plateau, tb.lr_best, tb.lr_since);
        worst_all = INFINITY;
    }
    /* the LM's carried hidden states, when either file has them */
    const int dims[3] = {a.cfg.layers, a.cfg.batch, a.cfg.hidden};
    const size_t ns = (size_t)dims[0] * dims[1] * dims[2];
    for (int k = 0; k < 2 && rc == 0; k++) {
        const char *name = k ? "state_c" : "state_h";
        float *sa = malloc(ns * sizeof(float)), *sb = malloc(ns * sizeof(float));
        int fa_has = 0, fb_has = 0;
        if (!sa || !sb) {
            snprintf(err, sizeof err, "out of memory");
            rc = 2;
        } else if (ckpt_read_state(fa, name, sa, dims, &fa_has, err, sizeof err) != CKPT_OK ||
                   ckpt_read_state(fb, name, sb, dims, &fb_has, err, sizeof err) != CKPT_OK) {
            rc = 2;
        } else if (fa_has != fb_has) {
            printf("%-11s only in %s\n", name, fa_has ? files[0] : files[1]);
            worst_all = INFINITY;
        } else if (fa_has) {
            double w = rel_diff(sa, sb, ns);
            printf("%-11s largest relative difference %.3g\n", name, w);
            if (w > worst_all) worst_all = w;
        }
        free(sa), free(sb);
    }
    if (fa) ckpt_close(fa);
    if (fb) ckpt_close(fb);
    optimizer_free(&oa), optimizer_free(&ob);
    saved_model_free(&a), saved_model_free(&b);
    if (rc) {
        fprintf(stderr, "%s: %s\n", prog, err);
        return rc;
    }
    int ok = worst_all <= tol;
    printf("%s (tolerance %g)\n", ok ? "within tolerance" : "DIFFERENT", tol);
    return ok ? 0 : 1;
}

int cmd_ckpt(int argc, char **argv)
{
    if (argc >= 1 && strcmp(argv[0], "--help") == 0) {
        printf("usage: seqpar ckpt info FILE | verify FILE | list DIR | diff A B [--tolerance "
               "X]\n"
               "  info    what a checkpoint holds (position, model, sizes)\n"
               "  verify  reads every dataset (Fletcher-32 checksums), checks meta_sha256\n"
               "          (/config and the attributes) and the layout\n"
               "  list    the checkpoints of a directory, newest first, with their status\n"
               "  diff    largest relative difference (per tensor max|a-b| / max|a|) of the\n"
               "          parameters, Adam moments and carried LM states of two checkpoints of\n"
               "          one model, whose optimizer and position must also agree; exit 1\n"
               "          when it exceeds --tolerance (default 0: bitwise equal)\n");
        return 0;
    }
    if (argc >= 1 && strcmp(argv[0], "diff") == 0) return ckpt_diff(argc - 1, argv + 1);
    if (argc != 2) {
        fprintf(stderr,
                "seqpar ckpt: usage: seqpar ckpt info|verify FILE, list DIR, or diff A B\n");
        return 2;
    }
    if (strcmp(argv[0], "info") == 0) return ckpt_info(argv[1]);
    if (strcmp(argv[0], "list") == 0) return ckpt_list(argv[1]);
    if (strcmp(argv[0], "verify") == 0) {
        char err[ERRLEN];
        if (ckpt_verify(argv[1], err, sizeof err) != CKPT_OK) {
            fprintf(stderr, "seqpar ckpt verify: %s\n", err);
            return 2;
        }
        /* and the model it describes can be rebuilt: a known configuration,
         * vocabularies, every tensor of the right shape */
        saved_model sm;
        if (saved_model_load(&sm, argv[1], 1, "seqpar ckpt verify")) return 2;
        saved_model_free(&sm);
        if (err[0]) /* what could not be checked: a format-1 file's attributes */
            printf("%s: ok (%s)\n", argv[1], err);
        else
            printf("%s: ok\n", argv[1]);
        return 0;
    }
    char shown[200];
    fprintf(stderr, "seqpar ckpt: unknown action '%s' (info, verify, list or diff)\n",
            data_escape(argv[0], 64, shown, sizeof shown));
    return 2;
}

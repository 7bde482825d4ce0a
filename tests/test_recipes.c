/* CUnit: the training recipes of seqpar train.
 *
 *   label smoothing  xent_smooth_forward_backward (and plain cross-entropy,
 *                    eps = 0) against torch.nn.CrossEntropyLoss(label_smoothing
 *                    = eps, reduction = "sum", ignore_index = -1): the loss and
 *                    d loss / d logits, torch in float64 from the same float32
 *                    logits (tests/parity/recipes_ref.py);
 *   AdamW            five updates of OPT_ADAMW with a rate that changes every
 *                    update (as a schedule does) against torch.optim.AdamW,
 *                    parameters and both moments, both in float32;
 *   schedules        lr_schedule_at and lr_plateau_observe (trainer/schedule.c)
 *                    against the formulas of docs/DESIGN.md, written out here.
 *
 * Bounds. The loss is summed in double from float32 logits: relative 1e-6.
 * The gradient is softmax − target in float32: absolute 1e-6 (entries are
 * in [−1, 1]). AdamW: torch and seqpar do the same float32 operations up to
 * the order of two (p·(1 − lr·λ) fused into the update here): norm-wise
 * relative 1e-5 after five steps; a wrong formula (coupled decay, a missing
 * bias correction, the decay without lr) is off by 1e-3 or more.
 *
 * Environment (tests/CMakeLists.txt): SEQPAR_PYTHON (Debian's /usr/bin/python3
 * with python3-torch), SEQPAR_RECIPES_SCRIPT, SEQPAR_TEST_TMP. A missing
 * interpreter or torch is a failure, never a skip. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "model.h"
#include "rng.h"
#include "schedule.h"

extern char **environ;

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* Runs recipes_ref.py MODE IN OUT; its exit status, or -1. */
static int run_ref(const char *mode, const char *in, const char *out)
{
    char script[1024];
    const char *v = getenv("SEQPAR_RECIPES_SCRIPT");
    const char *slash = strrchr(__FILE__, '/'); /* by hand: the script next to this file */
    if (v && *v)
        snprintf(script, sizeof script, "%s", v);
    else
        snprintf(script, sizeof script, "%.*s/parity/recipes_ref.py",
                 slash ? (int)(slash - __FILE__) : 1, slash ? __FILE__ : ".");
    char *argv[] = {(char *)env_or("SEQPAR_PYTHON", "/usr/bin/python3"),
                    script,
                    (char *)mode,
                    (char *)in,
                    (char *)out,
                    NULL};
    pid_t pid;
    fflush(stdout), fflush(stderr);
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0) return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void tmp_path(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/recipes-%ld-%s", env_or("SEQPAR_TEST_TMP", "/tmp"), (long)getpid(), name);
}

static int write_parts(const char *path, const void *const *p, const size_t *bytes, int k)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int ok = 1;
    for (int i = 0; i < k; i++) ok &= fwrite(p[i], 1, bytes[i], f) == bytes[i];
    return fclose(f) == 0 && ok ? 0 : -1;
}

static int read_exact(const char *path, void *buf, size_t bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    const size_t got = fread(buf, 1, bytes, f);
    const int more = fgetc(f) != EOF;
    fclose(f);
    return got == bytes && !more ? 0 : -1;
}

/* ------------------------------------------------------ label smoothing */

enum { XN = 9, XV = 13 };

static void check_xent(float eps)
{
    float z[XN * XV], g[XN * XV];
    int32_t y[XN];
    for (int i = 0; i < XN * XV; i++)
        z[i] = 4.0f * rng_uniform(7, RNG_SAMPLE, 1, (uint64_t)i, 0) - 2;
    for (int n = 0; n < XN; n++)
        y[n] = n % 4 == 3 ? -1 : (int32_t)((n * 5) % XV); /* some ignored */
    memcpy(g, z, sizeof z);
    long cnt = 0;
    const double loss = eps > 0 ? xent_smooth_forward_backward(g, y, XN, XV, eps, &cnt)
                                : xent_forward_backward(g, y, XN, XV, &cnt);
    CU_ASSERT_EQUAL(cnt, XN - 2); /* rows 3 and 7 are ignored */
    char in[1100], out[1100];
    tmp_path(in, sizeof in, "xent.in");
    tmp_path(out, sizeof out, "xent.out");
    const int32_t nv[2] = {XN, XV};
    const void *parts[4] = {nv, &eps, z, y};
    const size_t bytes[4] = {sizeof nv, sizeof eps, sizeof z, sizeof y};
    CU_ASSERT_FATAL(write_parts(in, parts, bytes, 4) == 0);
    const int rc = run_ref("xent", in, out);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    double ref[1 + XN * XV];
    CU_ASSERT_FATAL(read_exact(out, ref, sizeof ref) == 0);
    double worst = 0.0;
    for (int i = 0; i < XN * XV; i++) {
        const double d = fabs((double)g[i] - ref[1 + i]);
        worst = d > worst ? d : worst;
    }
    printf("\n  label smoothing %.2f: loss %.9g (torch %.9g), largest gradient difference %.2g ",
           (double)eps, loss, ref[0], worst);
    CU_ASSERT(fabs(loss - ref[0]) <= 1e-6 * fabs(ref[0]));
    CU_ASSERT(worst <= 1e-6);
    unlink(in), unlink(out);
}

static void test_xent_plain(void)
{
    check_xent(0.0f);
}

static void test_xent_smoothed(void)
{
    check_xent(0.1f);
    check_xent(0.45f);
}

/* A model's training loss follows model_set_label_smoothing, its
 * evaluation stays plain cross-entropy. */
static void test_model_smoothing(void)
{
    model_config mc = {.task = MODEL_LM,
                       .cell = CELL_GRU,
                       .layers = 1,
                       .embed = 4,
                       .hidden = 6,
                       .tgt_vocab = 11,
                       .num_steps = 5,
                       .max_batch = 3};
    model *m = NULL;
    char err[200];
    CU_ASSERT_FATAL(model_create(&m, &mc, err, sizeof err) == MODEL_OK);
    model_init_params(m, 3);
    int32_t src[15], tgt[15];
    for (int i = 0; i < 15; i++) src[i] = (i * 7) % 11, tgt[i] = (i * 3 + 1) % 11;
    model_batch b = {.B = 3, .T = 5, .src = src, .tgt = tgt};
    double plain, smooth, eval;
    long t1, t2, t3;
    CU_ASSERT(model_step(m, &b, 1, &plain, &t1) == MODEL_OK);
    model_set_label_smoothing(m, 0.2f);
    CU_ASSERT(model_step(m, &b, 1, &smooth, &t2) == MODEL_OK);
    CU_ASSERT(model_step(m, &b, 0, &eval, &t3) == MODEL_OK);
    CU_ASSERT(t1 == 15 && t2 == 15 && t3 == 15);
    /* the smoothed loss adds eps·(mean −log p − (−log p_y)): not the plain one */
    CU_ASSERT(fabs(smooth - plain) > 1e-3);
    CU_ASSERT(fabs(eval - plain) <= 1e-9 * plain);
    model_free(m);
}

/* ---------------------------------------------------------------- AdamW */

enum { AN = 1000, AS = 5 };

static void test_adamw(void)
{
    param_table pt = {0};
    CU_ASSERT_FATAL(param_table_add(&pt, "w", 1, AN, 0) >= 0);
    CU_ASSERT_FATAL(param_table_alloc(&pt) == 0);
    static float p0[AN], g[AS][AN];
    const float lr[AS] = {1e-3f, 2e-3f, 3e-3f, 2e-3f, 5e-4f}, wd = 0.1f;
    for (int i = 0; i < AN; i++) p0[i] = 2 * rng_uniform(9, RNG_SAMPLE, 2, (uint64_t)i, 0) - 1;
    for (int k = 0; k < AS; k++)
        for (int i = 0; i < AN; i++)
            g[k][i] = rng_normal(9, RNG_SAMPLE, 3 + (uint64_t)k, (uint64_t)i, 0) * 0.1f;
    memcpy(pt.data, p0, sizeof p0);
    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAMW, lr[0], &pt) == MODEL_OK);
    o.weight_decay = wd;
    for (int k = 0; k < AS; k++) {
        o.lr = lr[k];
        memcpy(pt.grad, g[k], sizeof g[k]);
        optimizer_step(&o, &pt);
    }
    char in[1100], out[1100];
    tmp_path(in, sizeof in, "adamw.in");
    tmp_path(out, sizeof out, "adamw.out");
    const int32_t ns[2] = {AN, AS};
    const void *parts[5] = {ns, &wd, lr, p0, g};
    const size_t bytes[5] = {sizeof ns, sizeof wd, sizeof lr, sizeof p0, sizeof g};
    CU_ASSERT_FATAL(write_parts(in, parts, bytes, 5) == 0);
    CU_ASSERT_EQUAL_FATAL(run_ref("adamw", in, out), 0);
    static float ref[3][AN];
    CU_ASSERT_FATAL(read_exact(out, ref, sizeof ref) == 0);
    const float *mine[3] = {pt.data, o.m, o.v};
    const char *what[3] = {"parameters", "exp_avg", "exp_avg_sq"};
    for (int t = 0; t < 3; t++) {
        double dmax = 0, rmax = 0;
        for (int i = 0; i < AN; i++) {
            const double d = fabs((double)mine[t][i] - ref[t][i]);
            dmax = d > dmax ? d : dmax;
            rmax = fabs(ref[t][i]) > rmax ? fabs(ref[t][i]) : rmax;
        }
        printf("\n  adamw %s: norm-wise relative difference %.2g ", what[t], dmax / rmax);
        CU_ASSERT(dmax <= 1e-5 * rmax);
    }
    /* and the decay is there: without it the parameters differ by ~lr·λ·|p| */
    double moved = 0;
    for (int i = 0; i < AN; i++) moved += fabs((double)pt.data[i] - p0[i]);
    CU_ASSERT(moved > 0);
    optimizer_free(&o);
    unlink(in), unlink(out);
    param_table_free(&pt);
}

/* ------------------------------------------------------------ schedules */

static train_config sched(int kind, long warmup, double lr, double lo)
{
    train_config c;
    config_defaults(&c);
    c.lr_schedule = kind, c.warmup = warmup, c.lr = lr, c.lr_min = lo;
    return c;
}

static train_figs no_figs(const train_config *c)
{
    train_figs f = {NAN, NAN, NAN, NAN, 0, NAN, NAN, 0};
    lr_plateau_start(c, &f);
    return f;
}

#define NEAR(a, b) CU_ASSERT(fabs((a) - (b)) <= 1e-12 * fabs(b) + 1e-15)

static void test_constant_and_warmup(void)
{
    train_config c = sched(LR_CONSTANT, 0, 0.005, 0);
    train_figs f = no_figs(&c);
    /* the default: --lr itself at every update (the bits of seqpar before schedules) */
    for (long u = 1; u < 100000; u += 997) CU_ASSERT(lr_schedule_at(&c, 100000, &f, u) == 0.005);
    c.warmup = 4;
    NEAR(lr_schedule_at(&c, 100, &f, 1), 0.005 / 4);
    NEAR(lr_schedule_at(&c, 100, &f, 3), 0.005 * 3 / 4);
    CU_ASSERT(lr_schedule_at(&c, 100, &f, 4) == 0.005);
    CU_ASSERT(lr_schedule_at(&c, 100, &f, 5) == 0.005);
}

static void test_inverse_sqrt(void)
{
    train_config c = sched(LR_INVERSE_SQRT, 100, 1e-3, 0);
    train_figs f = no_figs(&c);
    NEAR(lr_schedule_at(&c, 0, &f, 50), 0.5e-3);  /* warm-up */
    NEAR(lr_schedule_at(&c, 0, &f, 100), 1e-3);   /* its peak */
    NEAR(lr_schedule_at(&c, 0, &f, 400), 0.5e-3); /* lr·√(W/u) */
    NEAR(lr_schedule_at(&c, 0, &f, 10000), 1e-4);
    c.lr_min = 2e-4; /* the floor */
    NEAR(lr_schedule_at(&c, 0, &f, 10000), 2e-4);
    c.warmup = 0, c.lr_min = 0; /* no warm-up: lr / √u */
    NEAR(lr_schedule_at(&c, 0, &f, 1), 1e-3);
    NEAR(lr_schedule_at(&c, 0, &f, 16), 0.25e-3);
}

static void test_cosine(void)
{
    train_config c = sched(LR_COSINE, 10, 1e-2, 1e-4);
    train_figs f = no_figs(&c);
    const long S = 110; /* 100 updates after the warm-up */
    NEAR(lr_schedule_at(&c, S, &f, 5), 0.5e-2);
    NEAR(lr_schedule_at(&c, S, &f, 11), 1e-2); /* t = 0 */
    NEAR(lr_schedule_at(&c, S, &f, 61), 1e-4 + (1e-2 - 1e-4) * 0.5);
    NEAR(lr_schedule_at(&c, S, &f, 36),
         1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + cos(3.14159265358979323846 / 4)));
    NEAR(lr_schedule_at(&c, S, &f, 111), 1e-4); /* t = T: the floor, and past it */
    NEAR(lr_schedule_at(&c, S, &f, 500), 1e-4);
    /* strictly decreasing over the run */
    for (long u = 12; u <= S; u++)
        CU_ASSERT(lr_schedule_at(&c, S, &f, u) < lr_schedule_at(&c, S, &f, u - 1));
}

static void test_plateau(void)
{
    train_config c = sched(LR_PLATEAU, 2, 0.1, 0.02);
    c.lr_patience = 2, c.lr_factor = 0.5;
    train_figs f = no_figs(&c);
    NEAR(lr_schedule_at(&c, 0, &f, 1), 0.05);        /* warm-up on the plateau's rate */
    CU_ASSERT(lr_plateau_observe(&c, &f, 3.0) == 0); /* the first is the best */
    CU_ASSERT(lr_plateau_observe(&c, &f, 2.0) == 0); /* lower */
    CU_ASSERT(lr_plateau_observe(&c, &f, 2.0) == 0); /* equal is no better: 1 */
    CU_ASSERT(f.plateau_since == 1);
    CU_ASSERT(lr_plateau_observe(&c, &f, 2.5) == 1); /* 2: halved */
    NEAR(lr_schedule_at(&c, 0, &f, 10), 0.05);
    CU_ASSERT(f.plateau_since == 0);
    CU_ASSERT(lr_plateau_observe(&c, &f, 1.5) == 0); /* better: the count restarts */
    CU_ASSERT(lr_plateau_observe(&c, &f, 1.6) == 0);
    CU_ASSERT(lr_plateau_observe(&c, &f, 1.7) == 1); /* 0.025 */
    CU_ASSERT(lr_plateau_observe(&c, &f, 1.7) == 0);
    CU_ASSERT(lr_plateau_observe(&c, &f, 1.7) == 1); /* 0.0125, floored at 0.02 */
    NEAR(lr_schedule_at(&c, 0, &f, 10), 0.02);
    CU_ASSERT(lr_plateau_observe(&c, &f, 1.7) == 0);
    CU_ASSERT(lr_plateau_observe(&c, &f, 1.7) == 0); /* at the floor: no drop to tell */
    NEAR(lr_schedule_at(&c, 0, &f, 10), 0.02);
    /* another schedule ignores evaluations */
    train_config k = sched(LR_COSINE, 0, 0.1, 0);
    train_figs g = no_figs(&k);
    CU_ASSERT(lr_plateau_observe(&k, &g, 1.0) == 0 && isnan(g.plateau_lr));
}

void register_suites(void)
{
    CU_pSuite p = CU_add_suite("recipes against PyTorch", NULL, NULL);
    CU_add_test(p, "cross-entropy (eps 0)", test_xent_plain);
    CU_add_test(p, "label smoothing", test_xent_smoothed);
    CU_add_test(p, "model_set_label_smoothing", test_model_smoothing);
    CU_add_test(p, "AdamW, five updates at changing rates", test_adamw);
    CU_pSuite s = CU_add_suite("learning-rate schedules", NULL, NULL);
    CU_add_test(s, "constant, linear warm-up", test_constant_and_warmup);
    CU_add_test(s, "inverse-sqrt", test_inverse_sqrt);
    CU_add_test(s, "cosine", test_cosine);
    CU_add_test(s, "plateau", test_plateau);
}

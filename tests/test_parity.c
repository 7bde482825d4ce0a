/* CUnit: whole-model parity with PyTorch.
 *
 * For each case (GRU, LSTM, bidirectional GRU and LSTM encoders, a one-layer
 * tanh RNN, one-hot inputs; and the Bahdanau attention decoder with GRU,
 * LSTM and RNN cells, 1 and 2 layers, bidirectional encoders) the test
 * builds the seq2seq model, initialises it
 * from a seed, runs one training step (model_step, train = 1) on a fixed batch
 * with padding, and keeps the loss sum, the token count and every gradient. It
 * saves the weights with ckpt_save and the batch in a second HDF5 file, runs
 * tests/parity/torch_ref.py, which rebuilds the model in torch.nn from the
 * checkpoint alone (load_state_dict(strict = True): every name and shape must
 * map), and compares:
 *
 *   - the token count, exactly;
 *   - the loss sum (train = 1 and train = 0), relative difference <= 1e-5;
 *   - every gradient tensor g against torch's float64 gradient r, with the
 *     norm-wise relative difference  max|g − r| / max(max|r|, 1e-6)  <= 1e-4.
 *
 * The reference runs in float64 (the float32 weights are converted exactly),
 * so the difference measures seqpar's own float32 rounding only. Why the
 * bound: float32's unit roundoff is u = 6e-8; the backward pass is a chain of
 * ~2·T·L = 28 recurrent steps of dot products of length <= E + 2H and sums
 * over T·B = 35 rows, so forward-error bounds are a few hundred u times a
 * modest condition factor of the tanh / sigmoid chain: 1e-6 .. 1e-5 at most
 * (the figures printed per case are 2e-7 .. 1e-6 with OpenBLAS). A real error
 * (a missing term, a wrong gate, a transposed product, a wrong state slice)
 * changes a gradient by O(its size), a relative difference of 1e-2 .. 1, two
 * to four orders above the bound. The norm-wise metric (scaled by the
 * tensor's largest entry) is used rather than an element-wise one because
 * elements that cancel to ~0 have no meaningful relative error. The loss (21
 * terms accumulated in double from float32 logits) is held to 1e-5. Torch's
 * own float32 result is printed next to it for comparison.
 *
 * Environment (set by tests/CMakeLists.txt): SEQPAR_PYTHON (Debian's
 * /usr/bin/python3 with python3-torch and python3-h5py), SEQPAR_PARITY_SCRIPT,
 * SEQPAR_TEST_TMP (where the HDF5 files go). A missing interpreter, torch or
 * h5py is a failure, never a skip. SEQPAR_PARITY_VERBOSE=1 prints every tensor. */
#include <CUnit/CUnit.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "checkpoints.h"
#include "model.h"

extern char **environ;

#define LOSS_RTOL   1e-5
#define GRAD_RTOL   1e-4
#define SCALE_FLOOR 1e-6
#define PATH_LEN    1024

/* The batch: B rows of T steps, ids batch-major as the data loader gives them. */
#define NB 5
#define NT 7

typedef struct parity_case {
    const char *name;
    cell_kind cell;
    int layers, embed, bidirectional;
    int spare;     /* the model is built for NB + spare rows and NT + spare steps */
    int attention; /* model_attention */
} parity_case;

/* ----------------------------------------------------------- environment */

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);
    return v && *v ? v : fallback;
}

/* The reference script next to this file when SEQPAR_PARITY_SCRIPT is unset
 * (running the binary by hand); ctest always sets it. */
static void script_path(char *out, size_t n)
{
    const char *v = getenv("SEQPAR_PARITY_SCRIPT");
    if (v && *v) {
        snprintf(out, n, "%s", v);
        return;
    }
    const char *slash = strrchr(__FILE__, '/');
    int dir = slash ? (int)(slash - __FILE__) : 1;
    snprintf(out, n, "%.*s/parity/torch_ref.py", dir, slash ? __FILE__ : ".");
}

/* Runs argv[0] (an absolute path) with argv, waits; returns its exit status,
 * or -1 when it could not be started or did not exit normally. */
static int run_process(char *const argv[])
{
    pid_t pid;
    fflush(stdout);
    fflush(stderr);
    int rc = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
    if (rc != 0) {
        fprintf(stderr, "parity: cannot start %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    int status;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "parity: waitpid: %s\n", strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        fprintf(stderr, "parity: %s killed by signal %d\n", argv[0], WTERMSIG(status));
    return -1;
}

/* ------------------------------------------------------------------- HDF5 */

static int write_i32(hid_t f, const char *name, const int32_t *v, int ndim, const hsize_t *dims)
{
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    if (sp < 0) return -1;
    hid_t ds = H5Dcreate2(f, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
    H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

static int write_batch(const char *path, const int32_t *src, const int32_t *tgt,
                       const int32_t *valid)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) return -1;
    const hsize_t bt[2] = {NB, NT}, b[1] = {NB};
    int rc = write_i32(f, "/src", src, 2, bt);
    if (rc == 0) rc = write_i32(f, "/tgt", tgt, 2, bt);
    if (rc == 0) rc = write_i32(f, "/valid", valid, 1, b);
    if (H5Fclose(f) < 0) rc = -1;
    return rc;
}

/* Reads dataset `path` of exactly n elements as `memtype` into out. */
static int read_exact(hid_t f, const char *path, hid_t memtype, void *out, hssize_t n)
{
    if (H5Lexists(f, path, H5P_DEFAULT) <= 0) {
        fprintf(stderr, "parity: reference output lacks %s\n", path);
        return -1;
    }
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds);
    hssize_t got = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    herr_t rc = -1;
    if (got == n)
        rc = H5Dread(ds, memtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    else
        fprintf(stderr, "parity: %s has %lld elements, expected %lld\n", path, (long long)got,
                (long long)n);
    if (sp >= 0) H5Sclose(sp);
    H5Dclose(ds);
    return rc < 0 ? -1 : 0;
}

/* "decoder.rnn.weight_hh_l0" → "/grad/decoder/rnn/weight_hh_l0" */
static void grad_path(char *out, size_t n, const char *group, const char *key)
{
    snprintf(out, n, "/%s/%s", group, key);
    for (char *p = out + strlen(group) + 2; *p; p++)
        if (*p == '.') *p = '/';
}

static herr_t count_datasets(hid_t obj, const char *name, const H5O_info_t *info, void *op)
{
    (void)obj, (void)name;
    if (info->type == H5O_TYPE_DATASET) (*(int *)op)++;
    return 0;
}

static int datasets_under(hid_t f, const char *group)
{
    int count = 0;
    if (H5Lexists(f, group, H5P_DEFAULT) <= 0) return 0;
    hid_t g = H5Gopen2(f, group, H5P_DEFAULT);
    if (g < 0) return -1;
    if (H5Ovisit(g, H5_INDEX_NAME, H5_ITER_NATIVE, count_datasets, &count) < 0) count = -1;
    H5Gclose(g);
    return count;
}

/* ------------------------------------------------------------ comparison */

/* max|a − r| / max(max|r|, SCALE_FLOOR); NaN / Inf anywhere gives +Inf. */
static double normwise_rel(const float *a, const double *r, size_t n)
{
    double diff = 0.0, scale = 0.0;
    for (size_t k = 0; k < n; k++) {
        if (!isfinite(a[k]) || !isfinite(r[k])) return INFINITY;
        double d = fabs((double)a[k] - r[k]);
        diff = d > diff ? d : diff;
        scale = fabs(r[k]) > scale ? fabs(r[k]) : scale;
    }
    return diff / (scale > SCALE_FLOOR ? scale : SCALE_FLOOR);
}

static double rel_diff(double a, double r)
{
    if (!isfinite(a) || !isfinite(r)) return INFINITY;
    return fabs(a - r) / (fabs(r) > SCALE_FLOOR ? fabs(r) : SCALE_FLOOR);
}

/* ------------------------------------------------------------- the batch */

/* Deterministic ids with padding: source lengths 1..T (the encoder reads all
 * T positions anyway), target valid lengths covering 1 and T, <eos> (2) at
 * the end of every target that fits it, <pad> (0) after. */
static void make_batch(const model_config *cfg, uint64_t seed, int32_t *src, int32_t *tgt,
                       int32_t *valid)
{
    static const int src_len[NB] = {5, 7, 2, 1, 6};
    static const int tgt_len[NB] = {7, 1, 4, 6, 3};
    for (int b = 0; b < NB; b++) {
        valid[b] = tgt_len[b];
        for (int t = 0; t < NT; t++) {
            const uint64_t i = (uint64_t)(b * NT + t);
            src[b * NT + t] = t < src_len[b] ? 3 + (int32_t)rng_below((uint64_t)cfg->src_vocab - 3,
                                                                      seed, 98, i, 0, 0)
                                             : 0;
            int32_t y = 0;
            if (t < tgt_len[b] - 1 || (t == NT - 1 && tgt_len[b] == NT))
                y = 3 + (int32_t)rng_below((uint64_t)cfg->tgt_vocab - 3, seed, 97, i, 0, 0);
            else if (t == tgt_len[b] - 1)
                y = 2;
            tgt[b * NT + t] = y;
        }
    }
}

/* "<pad>", "<bos>", "<eos>", "<unk>", "w4", … */
static char **make_vocab(int n)
{
    static const char *reserved[4] = {"<pad>", "<bos>", "<eos>", "<unk>"};
    char **v = calloc((size_t)n, sizeof *v);
    if (!v) return NULL;
    for (int i = 0; i < n; i++) {
        v[i] = malloc(16);
        if (!v[i]) {
            for (int k = 0; k < i; k++) free(v[k]);
            free(v);
            return NULL;
        }
        if (i < 4)
            snprintf(v[i], 16, "%s", reserved[i]);
        else
            snprintf(v[i], 16, "w%d", i);
    }
    return v;
}

static void free_vocab(char **v, int n)
{
    if (!v) return;
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* --------------------------------------------------------------- one case */

static int verbose(void)
{
    const char *v = getenv("SEQPAR_PARITY_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

/* Compares every gradient with the reference in `out`; returns the number of
 * tensors out of tolerance (or -1 on a read error) and the worst figures. */
static int compare_grads(hid_t out, const param_table *pt, const float *grad, const char *cname,
                         double *worst64, int *iworst64, double *worst32, int *iworst32)
{
    int bad = 0;
    *worst64 = *worst32 = 0.0;
    *iworst64 = *iworst32 = 0;
    size_t maxn = 0;
    for (int i = 0; i < pt->n; i++) maxn = pt->t[i].size > maxn ? pt->t[i].size : maxn;
    double *r64 = malloc(maxn * sizeof *r64), *r32 = malloc(maxn * sizeof *r32);
    if (!r64 || !r32) {
        free(r64);
        free(r32);
        return -1;
    }
    char path[PATH_LEN];
    for (int i = 0; i < pt->n; i++) {
        const param_tensor *t = &pt->t[i];
        const float *g = grad + t->offset;
        grad_path(path, sizeof path, "grad", t->name);
        if (read_exact(out, path, H5T_NATIVE_DOUBLE, r64, (hssize_t)t->size) != 0) {
            bad = -1;
            break;
        }
        grad_path(path, sizeof path, "grad_f32", t->name);
        if (read_exact(out, path, H5T_NATIVE_DOUBLE, r32, (hssize_t)t->size) != 0) {
            bad = -1;
            break;
        }
        const double e64 = normwise_rel(g, r64, t->size);
        /* torch float32 vs seqpar float32, scaled by the float64 reference */
        double d32 = 0.0, scale = 0.0;
        for (size_t k = 0; k < t->size; k++) {
            double d = fabs((double)g[k] - r32[k]);
            d32 = d > d32 ? d : d32;
            scale = fabs(r64[k]) > scale ? fabs(r64[k]) : scale;
        }
        const double e32 =
            isfinite(d32) ? d32 / (scale > SCALE_FLOOR ? scale : SCALE_FLOOR) : INFINITY;
        if (!(e64 <= *worst64)) *worst64 = e64, *iworst64 = i;
        if (!(e32 <= *worst32)) *worst32 = e32, *iworst32 = i;
        const int fail = !(e64 <= GRAD_RTOL);
        if (fail || verbose())
            fprintf(stderr,
                    "parity %s: %-32s %6zu elems, max|r| %.3e, rel vs f64 %.2e, vs f32 "
                    "%.2e%s\n",
                    cname, t->name, t->size, scale, e64, e32, fail ? "  <-- out of tolerance" : "");
        bad += fail;
    }
    free(r64);
    free(r32);
    return bad;
}

static void run_case(const parity_case *pc)
{
    const model_config cfg = {.task = MODEL_TRANSLATE,
                              .cell = pc->cell,
                              .layers = pc->layers,
                              .embed = pc->embed,
                              .hidden = 8,
                              .dropout = 0.0f,
                              .bidirectional = pc->bidirectional,
                              .src_vocab = 13,
                              .tgt_vocab = 11,
                              .num_steps = NT + pc->spare,
                              .max_batch = NB + pc->spare,
                              .attention = pc->attention};
    const uint64_t seed = 20240611u + (uint64_t)pc->cell * 10 + (uint64_t)pc->bidirectional;
    const char *python = env_or("SEQPAR_PYTHON", "/usr/bin/python3");
    const char *tmp = env_or("SEQPAR_TEST_TMP", ".");
    char script[PATH_LEN], ckpt[PATH_LEN], batch[PATH_LEN], outp[PATH_LEN], err[512] = "";
    script_path(script, sizeof script);
    snprintf(ckpt, sizeof ckpt, "%s/parity_%s.h5", tmp, pc->name);
    snprintf(batch, sizeof batch, "%s/parity_%s_batch.h5", tmp, pc->name);
    snprintf(outp, sizeof outp, "%s/parity_%s_ref.h5", tmp, pc->name);

    model *m = NULL;
    float *grad = NULL;
    char **vsrc = NULL, **vtgt = NULL;
    hid_t out = -1;
    int32_t src[NB * NT], tgt[NB * NT], valid[NB];

    if (model_create(&m, &cfg, err, sizeof err) != MODEL_OK) {
        fprintf(stderr, "parity %s: model_create: %s\n", pc->name, err);
        CU_FAIL("model_create failed");
        goto done;
    }
    model_init_params(m, seed);
    param_table *pt = model_params(m);
    /* the initial attention is nearly uniform, and its gradients (1e-6) are
     * sums that cancel: larger weights make it attend, and the comparison
     * measure something */
    for (int i = 0; i < pt->n; i++)
        if (strstr(pt->t[i].name, ".attention."))
            for (size_t k = 0; k < pt->t[i].size; k++) param_data(pt, i)[k] *= 4.0f;
    make_batch(&cfg, seed, src, tgt, valid);
    const model_batch mb = {
        .B = NB, .T = NT, .src = src, .tgt = tgt, .tgt_valid = valid, .seed = seed, .step = 0};

    /* seqpar's loss and gradients */
    double loss = 0.0, loss_eval = 0.0;
    long tokens = 0, tokens_eval = 0;
    param_zero_grad(pt);
    if (model_step(m, &mb, 1, &loss, &tokens) != MODEL_OK) {
        CU_FAIL("model_step (train = 1) failed");
        goto done;
    }
    grad = malloc(pt->total * sizeof *grad);
    if (!grad) {
        CU_FAIL("out of memory");
        goto done;
    }
    memcpy(grad, pt->grad, pt->total * sizeof *grad);
    CU_ASSERT_EQUAL(model_step(m, &mb, 0, &loss_eval, &tokens_eval), MODEL_OK);
    CU_ASSERT_EQUAL(tokens_eval, tokens);

    /* the checkpoint (weights, config, vocabularies) and the batch; the config
     * uses only the trainer's option names (trainer/config.c rejects others),
     * the vocabulary sizes are the lengths of /vocab/src and /vocab/tgt */
    char config[512];
    snprintf(config, sizeof config,
             "{\"task\": \"translate\", \"cell\": \"%s\", \"layers\": %d, \"embed\": %d, "
             "\"hidden\": %d, \"dropout\": 0, \"bidirectional\": %s, \"steps\": %d, "
             "\"batch\": %d, \"seed\": %llu, \"attention\": \"%s\"}",
             cell_name(cfg.cell), cfg.layers, cfg.embed, cfg.hidden,
             cfg.bidirectional ? "true" : "false", cfg.num_steps, cfg.max_batch,
             (unsigned long long)seed, cfg.attention ? "additive" : "none");
    vsrc = make_vocab(cfg.src_vocab);
    vtgt = make_vocab(cfg.tgt_vocab);
    if (!vsrc || !vtgt) {
        CU_FAIL("out of memory");
        goto done;
    }
    const ckpt_content content = {.config_json = config,
                                  .params = pt,
                                  .train = {.seed = seed, .global_batch = NB, .world_size = 1},
                                  .vocab_src = (const char *const *)vsrc,
                                  .vocab_src_n = cfg.src_vocab,
                                  .vocab_tgt = (const char *const *)vtgt,
                                  .vocab_tgt_n = cfg.tgt_vocab};
    if (ckpt_save(ckpt, &content, err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "parity %s: ckpt_save: %s\n", pc->name, err);
        CU_FAIL("ckpt_save failed");
        goto done;
    }
    if (ckpt_verify(ckpt, err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "parity %s: ckpt_verify: %s\n", pc->name, err);
        CU_FAIL("the checkpoint written does not verify");
        goto done;
    }
    if (write_batch(batch, src, tgt, valid) != 0) {
        fprintf(stderr, "parity %s: cannot write %s\n", pc->name, batch);
        CU_FAIL("cannot write the batch file");
        goto done;
    }

    /* the PyTorch reference */
    if (unlink(outp) != 0 && errno != ENOENT) {
        fprintf(stderr, "parity %s: cannot remove stale %s: %s\n", pc->name, outp, strerror(errno));
        CU_FAIL("stale reference output");
        goto done;
    }
    if (access(python, X_OK) != 0 || access(script, R_OK) != 0) {
        fprintf(stderr,
                "parity %s: FAILED: need the interpreter %s (SEQPAR_PYTHON) and the script %s "
                "(SEQPAR_PARITY_SCRIPT): %s\n",
                pc->name, python, script, strerror(errno));
        CU_FAIL("python3 or tests/parity/torch_ref.py not found");
        goto done;
    }
    char *argv[] = {(char *)python, script, ckpt, batch, outp, NULL};
    const int status = run_process(argv);
    if (status != 0) {
        fprintf(stderr,
                "parity %s: FAILED: %s %s exited with status %d (see its message above; 3 = "
                "torch / h5py / numpy missing: the parity test needs Debian's python3-torch and "
                "python3-h5py)\n",
                pc->name, python, script, status);
        CU_FAIL("the PyTorch reference script failed");
        goto done;
    }

    out = H5Fopen(outp, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (out < 0) {
        fprintf(stderr, "parity %s: cannot open %s\n", pc->name, outp);
        CU_FAIL("cannot open the reference output");
        goto done;
    }
    double ref_loss = NAN, ref_loss32 = NAN;
    long long ref_tokens = -1;
    if (read_exact(out, "/loss", H5T_NATIVE_DOUBLE, &ref_loss, 1) != 0 ||
        read_exact(out, "/loss_f32", H5T_NATIVE_DOUBLE, &ref_loss32, 1) != 0 ||
        read_exact(out, "/tokens", H5T_NATIVE_LLONG, &ref_tokens, 1) != 0) {
        CU_FAIL("reference output incomplete");
        goto done;
    }
    /* the reference holds exactly the model's tensors (strict loading already
     * guarantees the names; this guards the output file) */
    const int ng = datasets_under(out, "/grad"), ng32 = datasets_under(out, "/grad_f32");
    if (ng != pt->n || ng32 != pt->n)
        fprintf(stderr, "parity %s: reference has %d / %d gradients, the model %d tensors\n",
                pc->name, ng, ng32, pt->n);
    CU_ASSERT_EQUAL(ng, pt->n);
    CU_ASSERT_EQUAL(ng32, pt->n);

    CU_ASSERT_EQUAL(ref_tokens, (long long)tokens);
    const double lrel = rel_diff(loss, ref_loss), lrel_eval = rel_diff(loss_eval, ref_loss);
    const double lrel32 = rel_diff(loss, ref_loss32);
    if (ref_tokens != tokens || !(lrel <= LOSS_RTOL) || !(lrel_eval <= LOSS_RTOL))
        fprintf(stderr,
                "parity %s: loss %.9g / eval %.9g over %ld tokens, torch %.9g over %lld "
                "tokens\n",
                pc->name, loss, loss_eval, tokens, ref_loss, ref_tokens);
    CU_ASSERT(lrel <= LOSS_RTOL);
    CU_ASSERT(lrel_eval <= LOSS_RTOL);

    double w64, w32;
    int i64, i32;
    const int bad = compare_grads(out, pt, grad, pc->name, &w64, &i64, &w32, &i32);
    CU_ASSERT_EQUAL(bad, 0);
    if (bad >= 0)
        printf("\nparity %s: loss rel %.1e (eval %.1e), worst grad rel %.1e (%s) vs torch "
               "float64; vs torch float32: loss rel %.1e, worst grad rel %.1e (%s)\n",
               pc->name, lrel, lrel_eval, w64, pt->t[i64].name, lrel32, w32, pt->t[i32].name);
    fflush(stdout);

done:
    if (out >= 0) H5Fclose(out);
    free_vocab(vsrc, cfg.src_vocab);
    free_vocab(vtgt, cfg.tgt_vocab);
    free(grad);
    model_free(m);
}

/* ------------------------------------------------------------------ cases */

static void test_gru(void)
{
    run_case(&(parity_case){"gru", CELL_GRU, 2, 6, 0, 0, 0});
}

static void test_lstm(void)
{
    run_case(&(parity_case){"lstm", CELL_LSTM, 2, 6, 0, 0, 0});
}

static void test_gru_bidirectional(void)
{
    run_case(&(parity_case){"gru_bi", CELL_GRU, 2, 6, 1, 0, 0});
}

static void test_lstm_bidirectional(void)
{
    run_case(&(parity_case){"lstm_bi", CELL_LSTM, 2, 6, 1, 0, 0});
}

static void test_rnn(void)
{
    run_case(&(parity_case){"rnn", CELL_RNN, 1, 6, 0, 0, 0});
}

static void test_gru_onehot(void)
{
    run_case(&(parity_case){"gru_onehot", CELL_GRU, 2, 0, 0, 0, 0});
}

/* A slice smaller than the model's capacity (B < max_batch, T < num_steps),
 * as a rank holding an uneven share of the global batch sees it. */
static void test_lstm_slice(void)
{
    run_case(&(parity_case){"lstm_bi_slice", CELL_LSTM, 2, 6, 1, 3, 0});
}

/* The Bahdanau attention decoder (d2l's Seq2SeqAttentionDecoder): padded
 * sources (lengths 5, 7, 2, 1, 6 of 7) mask the attention. */
static void test_attn_gru(void)
{
    run_case(&(parity_case){"attn_gru1", CELL_GRU, 1, 6, 0, 0, MODEL_ATTN_ADDITIVE});
    run_case(&(parity_case){"attn_gru2", CELL_GRU, 2, 6, 0, 0, MODEL_ATTN_ADDITIVE});
}

static void test_attn_lstm(void)
{
    run_case(&(parity_case){"attn_lstm1", CELL_LSTM, 1, 6, 0, 0, MODEL_ATTN_ADDITIVE});
    run_case(&(parity_case){"attn_lstm2", CELL_LSTM, 2, 6, 0, 0, MODEL_ATTN_ADDITIVE});
}

static void test_attn_bidirectional(void)
{
    run_case(&(parity_case){"attn_gru_bi", CELL_GRU, 2, 6, 1, 0, MODEL_ATTN_ADDITIVE});
    run_case(&(parity_case){"attn_lstm_bi_slice", CELL_LSTM, 2, 6, 1, 3, MODEL_ATTN_ADDITIVE});
    run_case(&(parity_case){"attn_rnn_bi", CELL_RNN, 1, 6, 1, 0, MODEL_ATTN_ADDITIVE});
}

void register_suites(void)
{
    CU_pSuite s = CU_add_suite("parity with PyTorch", NULL, NULL);
    if (!s) return;
    CU_add_test(s, "seq2seq GRU, 2 layers", test_gru);
    CU_add_test(s, "seq2seq LSTM, 2 layers", test_lstm);
    CU_add_test(s, "seq2seq GRU, bidirectional encoder", test_gru_bidirectional);
    CU_add_test(s, "seq2seq LSTM, bidirectional encoder", test_lstm_bidirectional);
    CU_add_test(s, "seq2seq tanh RNN, 1 layer", test_rnn);
    CU_add_test(s, "seq2seq GRU, one-hot inputs", test_gru_onehot);
    CU_add_test(s, "seq2seq LSTM, bidirectional, B < max_batch, T < num_steps", test_lstm_slice);
    CU_add_test(s, "attention GRU, 1 and 2 layers, padded sources", test_attn_gru);
    CU_add_test(s, "attention LSTM, 1 and 2 layers, padded sources", test_attn_lstm);
    CU_add_test(s, "attention, bidirectional encoders (GRU, LSTM slice, RNN)",
                test_attn_bidirectional);
}

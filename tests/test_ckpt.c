/* CUnit suite for checkpoints/: a write/read round trip of every field; each
 * refusal of ckpt_verify and of the readers, on files damaged with the HDF5 C
 * API or by byte edits; atomic replacement and failed writes; temporaries of
 * dead writers; the listing of a run directory and retention.
 *
 * Every test runs in a fresh directory under $SEQPAR_TEST_TMP (else /tmp),
 * removed after it; the suite's setup first writes a good checkpoint there
 * (fx.good, step 12). */
#include "test_util.h"
#include "checkpoints.h"
#include "ckpt_internal.h" /* ckpti_meta_digest: re-sealing edited files */

#include <CUnit/CUnit.h>
#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- fixture */

typedef struct tspec {
    const char *name;
    int ndim, d0, d1;
} tspec;

/* a tiny translation model's table: 2-D weights and a 1-D bias */
static const tspec TENSORS[] = {
    {"encoder.embedding.weight", 2, 8, 3},
    {"encoder.rnn.weight_ih_l0", 2, 9, 3},
    {"decoder.dense.weight", 2, 7, 3},
    {"decoder.dense.bias", 1, 7, 0},
};
#define NT ((int)(sizeof TENSORS / sizeof *TENSORS))

/* carried state (layers, global batch, hidden) */
enum { SL = 2, SB = 4, SH = 3, SN = SL * SB * SH };

/* UTF-8 tokens of 1 to 4 bytes a character, of several lengths (the file
 * pads them with NULs to the longest): été, naïve, U+1F642; 日本語, garçon */
static const char *const SRC[] = {
    "<pad>",        "<bos>",           "<eos>", "<unk>", "go", "\xc3\xa9t\xc3\xa9",
    "na\xc3\xafve", "\xf0\x9f\x99\x82"};
static const char *const TGT[] = {"<pad>",        "<bos>", "<eos>",
                                  "<unk>",        "x",     "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                                  "gar\xc3\xa7on"};
#define NSRC ((int)(sizeof SRC / sizeof *SRC))
#define NTGT ((int)(sizeof TGT / sizeof *TGT))

static const char CONFIG[] =
    "{\"task\":\"translate\",\"hidden\":3,\"note\":\"d\xc3\xa9j\xc3\xa0 vu\"}";

static struct {
    int ok;          /* the setup succeeded */
    char dir[512];   /* this test's directory */
    char good[1024]; /* dir/ckpt-00000012.h5 */
    param_table pt;
    optimizer opt;
    float state_h[SN], state_c[SN];
    ckpt_content c;
} fx;

static int make_table(param_table *pt, const tspec *spec, int n)
{
    memset(pt, 0, sizeof *pt);
    for (int i = 0; i < n; i++)
        if (param_table_add(pt, spec[i].name, spec[i].ndim, spec[i].d0, spec[i].d1) < 0) return -1;
    return param_table_alloc(pt);
}

/* Known values (exact binary fractions) in every tensor of buf, none in the
 * alignment padding between them (which no file holds). */
static void fill(const param_table *pt, float *buf, float base)
{
    for (int i = 0; i < pt->n; i++)
        for (size_t j = 0; j < pt->t[i].size; j++)
            buf[pt->t[i].offset + j] = base + (float)i * 0.5f + (float)j * 0.03125f;
}

static void setup(void)
{
    memset(&fx, 0, sizeof fx);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the damaged files make HDF5 talk */
    const char *base = getenv("SEQPAR_TEST_TMP");
    snprintf(fx.dir, sizeof fx.dir, "%s/seqpar-test-ckpt-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(fx.dir)) {
        fprintf(stderr, "test_ckpt: mkdtemp %s: %s\n", fx.dir, strerror(errno));
        fx.dir[0] = '\0';
        return;
    }
    if (make_table(&fx.pt, TENSORS, NT) != 0) return;
    if (optimizer_init(&fx.opt, OPT_ADAM, 0.005f, &fx.pt) != MODEL_OK) return;
    fill(&fx.pt, fx.pt.data, -1.0f);
    fill(&fx.pt, fx.opt.m, -0.25f);
    fill(&fx.pt, fx.opt.v, 0.125f);
    fx.opt.t = 7;
    for (int i = 0; i < SN; i++) {
        fx.state_h[i] = (float)i * 0.125f - 1.0f;
        fx.state_c[i] = 2.0f - (float)i * 0.0625f;
    }
    fx.c = (ckpt_content){.config_json = CONFIG,
                          .params = &fx.pt,
                          .opt = &fx.opt,
                          .train = {.step = 12,
                                    .epoch = 2,
                                    .batch_in_epoch = 3,
                                    .seed = 0xFEEDFACECAFEBEEFULL,
                                    .global_batch = SB,
                                    .world_size = 2,
                                    .train_loss = 1.25,
                                    .valid_loss = 1.75,
                                    .valid_bleu = 33.5,
                                    .best = 33.5,
                                    .since_best = 2,
                                    .lr_plateau = 0.0125,
                                    .lr_best = 2.25,
                                    .lr_since = 1},
                          .state_h = fx.state_h,
                          .state_c = fx.state_c,
                          .state_dims = {SL, SB, SH},
                          .vocab_src = SRC,
                          .vocab_src_n = NSRC,
                          .vocab_tgt = TGT,
                          .vocab_tgt_n = NTGT};
    ckpt_path(fx.good, sizeof fx.good, fx.dir, 12);
    char err[1024] = "";
    if (ckpt_save(fx.good, &fx.c, err, sizeof err) != CKPT_OK) {
        fprintf(stderr, "test_ckpt: setup: %s\n", err);
        return;
    }
    fx.ok = 1;
}

static void teardown(void)
{
    if (fx.dir[0]) rm_rf(fx.dir);
    optimizer_free(&fx.opt);
    param_table_free(&fx.pt);
    memset(&fx, 0, sizeof fx);
}

#define REQUIRE_FIXTURE() CU_ASSERT_FATAL(fx.ok)

/* ---------------------------------------------------------------- helpers */

static void in_dir(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", fx.dir, name);
}

static int write_bytes(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(buf, 1, n, f) : 0;
    return fclose(f) == 0 && w == n ? 0 : -1;
}

static int copy_file(const char *from, const char *to)
{
    size_t n = 0;
    char *b = read_all(from, &n);
    int rc = b ? write_bytes(to, b, n) : -1;
    free(b);
    return rc;
}

/* Whether the file at path holds exactly n bytes of buf. */
static int same_bytes(const char *path, const char *buf, size_t n)
{
    size_t m = 0;
    char *b = read_all(path, &m);
    int same = b && m == n && memcmp(b, buf, n) == 0;
    free(b);
    return same;
}

static int exists(const char *name)
{
    char p[1024];
    in_dir(p, sizeof p, name);
    struct stat st;
    return lstat(p, &st) == 0;
}

static int touch(const char *name)
{
    char p[1024];
    in_dir(p, sizeof p, name);
    return write_bytes(p, "x", 1);
}

/* Entries of fx.dir whose name contains part. */
static int count_entries(const char *part)
{
    DIR *d = opendir(fx.dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, part)) n++;
    closedir(d);
    return n;
}

/* The status must be code, and the message name the file and what is wrong. */
#define EXPECT_ERR(rc, code, err, path, part)                                                      \
    do {                                                                                           \
        const int rc_ = (rc);                                                                      \
        CU_ASSERT_EQUAL(rc_, code);                                                                \
        CU_ASSERT_PTR_NOT_NULL(strstr(err, path));                                                 \
        CU_ASSERT_PTR_NOT_NULL(strstr(err, part));                                                 \
        if (rc_ != (code) || !strstr(err, path) || !strstr(err, part))                             \
            fprintf(stderr, "\n    status %d, message: %s\n", rc_, err);                           \
    } while (0)

#define EXPECT_VERIFY(path, code, part)                                                            \
    do {                                                                                           \
        char e_[1400] = "";                                                                        \
        EXPECT_ERR(ckpt_verify(path, e_, sizeof e_), code, e_, path, part);                        \
    } while (0)

/* A copy of the good checkpoint at dir/name (its path in path), opened for
 * writing with HDF5; < 0 when that fails. */
static hid_t open_copy(const char *name, char *path, size_t n)
{
    in_dir(path, n, name);
    if (copy_file(fx.good, path) != 0) return -1;
    return H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
}

/* Replaces the object at path by a dataset of file type ftype and shape
 * dims[nd] written from buf (memory type mtype; NULL: left unwritten):
 * contiguous when chunk is NULL, else chunked, with Fletcher-32 when
 * checksum is set. */
static int put_dataset(hid_t f, const char *path, hid_t ftype, hid_t mtype, const void *buf, int nd,
                       const hsize_t *dims, const hsize_t *chunk, int checksum)
{
    if (H5Lexists(f, path, H5P_DEFAULT) > 0 && H5Ldelete(f, path, H5P_DEFAULT) < 0) return -1;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    if (chunk) H5Pset_chunk(dcpl, nd, chunk);
    if (chunk && checksum) H5Pset_fletcher32(dcpl);
    hid_t sp = H5Screate_simple(nd, dims, NULL);
    hid_t ds = H5Dcreate2(f, path, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : buf ? H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    return rc < 0 ? -1 : 0;
}

/* Replaces /config by a string dataset holding s: scalar, or 1-D of one. */
static int put_config(hid_t f, const char *s, int scalar)
{
    if (H5Ldelete(f, "/config", H5P_DEFAULT) < 0) return -1;
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(s) + 1);
    hsize_t one = 1;
    hid_t sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &one, NULL);
    hid_t ds = H5Dcreate2(f, "/config", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, s);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Tclose(t);
    return rc < 0 ? -1 : 0;
}

/* Replaces (or adds) the scalar attribute name of object obj. */
static int put_attr(hid_t f, const char *obj, const char *name, hid_t type, const void *v)
{
    if (H5Aexists_by_name(f, obj, name, H5P_DEFAULT) > 0 &&
        H5Adelete_by_name(f, obj, name, H5P_DEFAULT) < 0)
        return -1;
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate_by_name(f, obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc < 0 ? -1 : 0;
}

static int put_attr_str(hid_t f, const char *obj, const char *name, const char *s)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(s) + 1);
    int rc = put_attr(f, obj, name, t, s);
    H5Tclose(t);
    return rc;
}

static int put_attr_ll(hid_t f, const char *obj, const char *name, long long v)
{
    return put_attr(f, obj, name, H5T_NATIVE_LLONG, &v);
}

/* Recomputes meta_sha256 after an edit: the file is consistent again, so
 * what refuses it is the check under test, not the checksum. */
static int reseal(hid_t f)
{
    char hex[CKPT_META_HEX + 1], why[200];
    if (ckpti_meta_digest(f, hex, why, sizeof why) != 0) return -1;
    return put_attr_str(f, "/", CKPT_META_ATTR, hex);
}

/* Makes an open copy a file of format 1 (seqpar before meta_sha256). */
static int make_v1(hid_t f)
{
    const int one = 1;
    if (H5Adelete_by_name(f, "/", CKPT_META_ATTR, H5P_DEFAULT) < 0) return -1;
    return put_attr(f, "/", "format_version", H5T_NATIVE_INT, &one);
}

/* Where the first chunk of a dataset lies in the file, and its stored size. */
static int chunk_location(const char *path, const char *ds_path, haddr_t *addr, hsize_t *size)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return -1;
    hid_t ds = H5Dopen2(f, ds_path, H5P_DEFAULT);
    hsize_t off[H5S_MAX_RANK];
    unsigned mask = 0;
    hid_t sp = ds < 0 ? -1 : H5Dget_space(ds);
    herr_t rc = sp < 0 ? -1 : H5Dget_chunk_info(ds, sp, 0, off, &mask, addr, size);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
    H5Fclose(f);
    return rc < 0 ? -1 : 0;
}

/* Flips the lowest bit of the byte at pos. */
static int flip_bit(const char *path, long pos)
{
    FILE *f = fopen(path, "r+b");
    if (!f) return -1;
    int c = fseek(f, pos, SEEK_SET) == 0 ? fgetc(f) : EOF;
    int ok = c != EOF && fseek(f, pos, SEEK_SET) == 0 && fputc(c ^ 1, f) != EOF;
    return fclose(f) == 0 && ok ? 0 : -1;
}

/* Opens path and reads /model into a table of spec: the status, err filled. */
static int read_params_as(const char *path, const tspec *spec, int n, char *err, size_t errlen)
{
    param_table pt;
    if (make_table(&pt, spec, n) != 0) {
        param_table_free(&pt);
        snprintf(err, errlen, "cannot build the table");
        return -100;
    }
    ckpt_file *f = NULL;
    int rc = ckpt_open(&f, path, err, errlen);
    if (rc == CKPT_OK) rc = ckpt_read_params(f, &pt, err, errlen);
    ckpt_close(f);
    param_table_free(&pt);
    return rc;
}

/* ------------------------------------------------------------- round trip */

static void check_vocab(ckpt_file *f, const char *which, const char *const *want, int n)
{
    char err[1400] = "";
    ckpt_strings v = {0, NULL};
    CU_ASSERT_EQUAL_FATAL(ckpt_read_vocab(f, which, &v, err, sizeof err), CKPT_OK);
    CU_ASSERT_EQUAL(v.n, n);
    for (int i = 0; i < n && i < v.n; i++) {
        const int same = memcmp(v.s[i], want[i], strlen(want[i]) + 1) == 0;
        CU_ASSERT(same);
        if (!same)
            fprintf(stderr, "\n    /vocab/%s[%d] = \"%s\", wrote \"%s\"\n", which, i, v.s[i],
                    want[i]);
    }
    ckpt_strings_free(&v);
    CU_ASSERT_PTR_NULL(v.s);
    CU_ASSERT_EQUAL(v.n, 0);
}

static int root_attr_str(hid_t f, const char *obj, const char *name, char *out, size_t n)
{
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a);
    size_t sz = H5Tget_size(t);
    herr_t rc = sz < n ? H5Aread(a, t, out) : -1;
    if (rc >= 0) out[sz] = '\0';
    H5Tclose(t);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

static int attr_num(hid_t f, const char *obj, const char *name, hid_t mtype, void *out)
{
    hid_t a = H5Aopen_by_name(f, obj, name, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0) return -1;
    herr_t rc = H5Aread(a, mtype, out);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

static void test_round_trip(void)
{
    REQUIRE_FIXTURE();
    char err[1400] = "";
    ckpt_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&f, fx.good, err, sizeof err), CKPT_OK);

    char *json = NULL;
    CU_ASSERT_EQUAL(ckpt_read_config(f, &json, err, sizeof err), CKPT_OK);
    CU_ASSERT(json && strcmp(json, CONFIG) == 0);
    free(json);

    check_vocab(f, "src", SRC, NSRC);
    check_vocab(f, "tgt", TGT, NTGT);

    param_table pt;
    optimizer o;
    CU_ASSERT_FATAL(make_table(&pt, TENSORS, NT) == 0);
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.1f, &pt) == MODEL_OK);
    CU_ASSERT_EQUAL(ckpt_read_params(f, &pt, err, sizeof err), CKPT_OK);
    CU_ASSERT_EQUAL(pt.total, fx.pt.total);
    CU_ASSERT(memcmp(pt.data, fx.pt.data, pt.total * sizeof(float)) == 0);
    CU_ASSERT_EQUAL(ckpt_read_optimizer(f, &pt, &o, err, sizeof err), CKPT_OK);
    CU_ASSERT_EQUAL(o.t, 7);
    CU_ASSERT(memcmp(o.m, fx.opt.m, pt.total * sizeof(float)) == 0);
    CU_ASSERT(memcmp(o.v, fx.opt.v, pt.total * sizeof(float)) == 0);
    optimizer_free(&o);
    param_table_free(&pt);

    ckpt_train tr;
    memset(&tr, 0x5a, sizeof tr);
    CU_ASSERT_EQUAL(ckpt_read_train(f, &tr, err, sizeof err), CKPT_OK);
    const ckpt_train *w = &fx.c.train;
    CU_ASSERT_EQUAL(tr.step, w->step);
    CU_ASSERT_EQUAL(tr.epoch, w->epoch);
    CU_ASSERT_EQUAL(tr.batch_in_epoch, w->batch_in_epoch);
    CU_ASSERT(tr.seed == w->seed); /* all 64 bits */
    CU_ASSERT_EQUAL(tr.global_batch, w->global_batch);
    CU_ASSERT_EQUAL(tr.world_size, w->world_size);
    CU_ASSERT(tr.train_loss == w->train_loss);
    CU_ASSERT(tr.valid_loss == w->valid_loss);
    CU_ASSERT(tr.valid_bleu == w->valid_bleu);
    CU_ASSERT(tr.best == w->best);
    CU_ASSERT_EQUAL(tr.since_best, w->since_best);
    CU_ASSERT(tr.lr_plateau == w->lr_plateau && tr.lr_best == w->lr_best); /* plateau's state */
    CU_ASSERT_EQUAL(tr.lr_since, w->lr_since);

    const int dims[3] = {SL, SB, SH};
    float h[SN], c[SN];
    int found_h = 0, found_c = 0;
    CU_ASSERT_EQUAL(ckpt_read_state(f, "state_h", h, dims, &found_h, err, sizeof err), CKPT_OK);
    CU_ASSERT_EQUAL(ckpt_read_state(f, "state_c", c, dims, &found_c, err, sizeof err), CKPT_OK);
    CU_ASSERT(found_h && found_c);
    CU_ASSERT(memcmp(h, fx.state_h, sizeof h) == 0);
    CU_ASSERT(memcmp(c, fx.state_c, sizeof c) == 0);

    unsigned long long d[4] = {0, 0, 0, 0};
    int nd = -1;
    CU_ASSERT_EQUAL(
        ckpt_dataset_shape(f, "/model/encoder/embedding/weight", d, 4, &nd, err, sizeof err),
        CKPT_OK);
    CU_ASSERT(nd == 2 && d[0] == 8 && d[1] == 3);
    CU_ASSERT_EQUAL(ckpt_dataset_shape(f, "/model/decoder/dense/bias", d, 4, &nd, err, sizeof err),
                    CKPT_OK);
    CU_ASSERT(nd == 1 && d[0] == 7);
    CU_ASSERT_EQUAL(ckpt_dataset_shape(f, "/train/state_c", d, 4, &nd, err, sizeof err), CKPT_OK);
    CU_ASSERT(nd == 3 && d[0] == SL && d[1] == SB && d[2] == SH);
    CU_ASSERT_EQUAL(ckpt_dataset_shape(f, "/vocab/src", d, 4, &nd, err, sizeof err), CKPT_OK);
    CU_ASSERT(nd == 1 && d[0] == NSRC);
    /* max below the rank: the rank in full, the first max dimensions */
    d[1] = 99;
    CU_ASSERT_EQUAL(ckpt_dataset_shape(f, "/train/state_h", d, 1, &nd, err, sizeof err), CKPT_OK);
    CU_ASSERT(nd == 3 && d[0] == SL && d[1] == 99);
    ckpt_close(f);

    char e2[1400] = "";
    CU_ASSERT_EQUAL(ckpt_verify(fx.good, e2, sizeof e2), CKPT_OK);

    /* what the readers do not return: the header and the optimizer's settings */
    hid_t h5 = H5Fopen(fx.good, H5F_ACC_RDONLY, H5P_DEFAULT);
    CU_ASSERT_FATAL(h5 >= 0);
    char s[64] = "";
    CU_ASSERT(root_attr_str(h5, "/", "format", s, sizeof s) == 0 && !strcmp(s, CKPT_FORMAT));
    CU_ASSERT(root_attr_str(h5, "/", "seqpar_version", s, sizeof s) == 0 &&
              !strcmp(s, SEQPAR_VERSION));
    CU_ASSERT(root_attr_str(h5, "/", "created", s, sizeof s) == 0 && strlen(s) == 20 &&
              s[19] == 'Z');
    CU_ASSERT(root_attr_str(h5, "/optimizer", "name", s, sizeof s) == 0 && !strcmp(s, "adam"));
    int ver = 0;
    float lr = 0, betas[2] = {0, 0}, eps = 0;
    CU_ASSERT(attr_num(h5, "/", "format_version", H5T_NATIVE_INT, &ver) == 0 &&
              ver == CKPT_FORMAT_VERSION);
    CU_ASSERT(attr_num(h5, "/optimizer", "lr", H5T_NATIVE_FLOAT, &lr) == 0 && lr == fx.opt.lr);
    CU_ASSERT(attr_num(h5, "/optimizer", "betas", H5T_NATIVE_FLOAT, betas) == 0 &&
              betas[0] == fx.opt.beta1 && betas[1] == fx.opt.beta2);
    CU_ASSERT(attr_num(h5, "/optimizer", "eps", H5T_NATIVE_FLOAT, &eps) == 0 && eps == fx.opt.eps);
    H5Fclose(h5);
}

/* The LM's layout: one vocabulary, no optimizer, no carried state, no
 * figures measured. */
static void test_round_trip_lm(void)
{
    REQUIRE_FIXTURE();
    static const char *const tokens[] = {"<unk>", "<pad>", "", " ", "\xc3\xbc", "the", "time"};
    const int ntok = (int)(sizeof tokens / sizeof *tokens);
    ckpt_content c = fx.c;
    c.opt = NULL;
    c.state_h = c.state_c = NULL;
    c.vocab_src = NULL, c.vocab_src_n = 0;
    c.vocab_tgt = tokens, c.vocab_tgt_n = ntok;
    c.train.train_loss = c.train.valid_loss = c.train.valid_bleu = c.train.best = NAN;
    c.train.since_best = 5;                         /* not written without a best figure */
    c.train.lr_plateau = NAN, c.train.lr_since = 3; /* nor plateau's state without its rate */
    char p[1024], err[1400] = "";
    in_dir(p, sizeof p, "lm.h5");
    CU_ASSERT_EQUAL_FATAL(ckpt_save(p, &c, err, sizeof err), CKPT_OK);
    CU_ASSERT_EQUAL(ckpt_verify(p, err, sizeof err), CKPT_OK);

    ckpt_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&f, p, err, sizeof err), CKPT_OK);
    check_vocab(f, "tokens", tokens, ntok);
    ckpt_strings v = {0, NULL};
    EXPECT_ERR(ckpt_read_vocab(f, "src", &v, err, sizeof err), CKPT_EFORMAT, err, p,
               "missing /vocab/src");
    CU_ASSERT(v.n == 0 && v.s == NULL);

    ckpt_train tr;
    CU_ASSERT_EQUAL(ckpt_read_train(f, &tr, err, sizeof err), CKPT_OK);
    CU_ASSERT(isnan(tr.train_loss) && isnan(tr.valid_loss) && isnan(tr.valid_bleu) &&
              isnan(tr.best));
    CU_ASSERT_EQUAL(tr.since_best, 0);
    CU_ASSERT(isnan(tr.lr_plateau) && isnan(tr.lr_best) && tr.lr_since == 0); /* no plateau */
    CU_ASSERT_EQUAL(tr.step, 12);

    float h[SN];
    const int dims[3] = {SL, SB, SH};
    int found = 1;
    CU_ASSERT_EQUAL(ckpt_read_state(f, "state_h", h, dims, &found, err, sizeof err), CKPT_OK);
    CU_ASSERT_EQUAL(found, 0);

    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.1f, &fx.pt) == MODEL_OK);
    EXPECT_ERR(ckpt_read_optimizer(f, &fx.pt, &o, err, sizeof err), CKPT_EFORMAT, err, p,
               "missing group /optimizer");
    optimizer_free(&o);
    ckpt_close(f);
}

/* ---------------------------------------------- refusals: not a checkpoint */

static void test_refuse_missing_file(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    in_dir(p, sizeof p, "ckpt-00000099.h5");
    EXPECT_VERIFY(p, CKPT_EIO, strerror(ENOENT));
}

static void test_refuse_not_hdf5(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    in_dir(p, sizeof p, "text.h5");
    static const char text[] = "{\"task\":\"translate\"}\nnot an HDF5 file at all\n";
    CU_ASSERT_FATAL(write_bytes(p, text, sizeof text - 1) == 0);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "not an HDF5 file");
}

static void test_refuse_empty_file(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    in_dir(p, sizeof p, "empty.h5");
    CU_ASSERT_FATAL(write_bytes(p, "", 0) == 0);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "not an HDF5 file");
}

static void test_refuse_directory(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    in_dir(p, sizeof p, "ckpt-00000040.h5");
    CU_ASSERT_FATAL(mkdir(p, 0755) == 0);
    EXPECT_VERIFY(p, CKPT_EIO, "not a regular file");
}

static void test_refuse_fifo(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    in_dir(p, sizeof p, "ckpt-00000041.h5");
    CU_ASSERT_FATAL(mkfifo(p, 0644) == 0);
    alarm(20); /* opening a FIFO for reading would block: fail loudly instead */
    EXPECT_VERIFY(p, CKPT_EIO, "not a regular file");
    ckpt_file *f = NULL;
    char err[1400] = "";
    EXPECT_ERR(ckpt_open(&f, p, err, sizeof err), CKPT_EIO, err, p, "not a regular file");
    CU_ASSERT_PTR_NULL(f);
    alarm(0);
}

/* Cut after 100 bytes (the superblock whole), at half and one byte short. */
static void test_refuse_truncated(void)
{
    REQUIRE_FIXTURE();
    size_t n = 0;
    char *b = read_all(fx.good, &n);
    CU_ASSERT_FATAL(b != NULL && n > 200);
    const size_t cuts[] = {100, n / 2, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        char p[1024], name[64];
        snprintf(name, sizeof name, "cut-%zu.h5", cuts[i]);
        in_dir(p, sizeof p, name);
        CU_ASSERT_FATAL(write_bytes(p, b, cuts[i]) == 0);
        EXPECT_VERIFY(p, CKPT_EFORMAT, "");
    }
    free(b);
}

static void test_refuse_format_attribute(void)
{
    REQUIRE_FIXTURE();
    char p[1024], q[1024];
    hid_t f = open_copy("other-format.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_attr_str(f, "/", "format", "pytorch-checkpoint") == 0);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "not a seqpar checkpoint");
    /* no format attribute at all */
    f = open_copy("no-format.h5", q, sizeof q);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(H5Adelete_by_name(f, "/", "format", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    EXPECT_VERIFY(q, CKPT_EFORMAT, "not a seqpar checkpoint");
}

static void test_refuse_format_version(void)
{
    REQUIRE_FIXTURE();
    const int versions[] = {CKPT_FORMAT_VERSION + 1, 0, -1};
    for (int i = 0; i < 3; i++) {
        char p[1024], name[32], want[64];
        snprintf(name, sizeof name, "version-%d.h5", i);
        snprintf(want, sizeof want, "format_version %d is not supported", versions[i]);
        hid_t f = open_copy(name, p, sizeof p);
        CU_ASSERT_FATAL(f >= 0);
        CU_ASSERT(put_attr(f, "/", "format_version", H5T_NATIVE_INT, &versions[i]) == 0);
        H5Fclose(f);
        EXPECT_VERIFY(p, CKPT_EFORMAT, want);
    }
    /* none: not a checkpoint of ours */
    char p[1024];
    hid_t f = open_copy("no-version.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(H5Adelete_by_name(f, "/", "format_version", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "not a seqpar checkpoint");
}

/* ----------------------------------------------------- refusals: layout */

static void test_refuse_missing_group(void)
{
    REQUIRE_FIXTURE();
    const char *objects[] = {"/config", "/model", "/train", "/vocab"};
    for (int i = 0; i < 4; i++) {
        char p[1024], name[32], want[64];
        snprintf(name, sizeof name, "without-%s.h5", objects[i] + 1);
        hid_t f = open_copy(name, p, sizeof p);
        CU_ASSERT_FATAL(f >= 0);
        CU_ASSERT(H5Ldelete(f, objects[i], H5P_DEFAULT) >= 0);
        H5Fclose(f);
        snprintf(want, sizeof want, "incomplete: missing %s", objects[i]);
        EXPECT_VERIFY(p, CKPT_EFORMAT, want);
    }
}

/* A tensor gone: the readers name it (verify checks the layout's groups; a
 * model's tensors are for ckpt_read_params to match). */
static void test_refuse_missing_dataset(void)
{
    REQUIRE_FIXTURE();
    char p[1024], err[1400] = "";
    hid_t f = open_copy("no-bias.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(H5Ldelete(f, "/model/decoder/dense/bias", H5P_DEFAULT) >= 0);
    CU_ASSERT(H5Ldelete(f, "/optimizer/v/decoder/dense/bias", H5P_DEFAULT) >= 0);
    H5Fclose(f);
    EXPECT_ERR(read_params_as(p, TENSORS, NT, err, sizeof err), CKPT_EMISMATCH, err, p,
               "missing dataset /model/decoder/dense/bias");
    ckpt_file *cf = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&cf, p, err, sizeof err), CKPT_OK);
    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.1f, &fx.pt) == MODEL_OK);
    EXPECT_ERR(ckpt_read_optimizer(cf, &fx.pt, &o, err, sizeof err), CKPT_EMISMATCH, err, p,
               "missing dataset /optimizer/v/decoder/dense/bias");
    optimizer_free(&o);
    unsigned long long d[3];
    int nd = 5;
    EXPECT_ERR(ckpt_dataset_shape(cf, "/model/decoder/dense/bias", d, 3, &nd, err, sizeof err),
               CKPT_EMISMATCH, err, p, "missing dataset /model/decoder/dense/bias");
    CU_ASSERT_EQUAL(nd, 0);
    /* a missing intermediate group too */
    EXPECT_ERR(ckpt_dataset_shape(cf, "/model/nowhere/weight", d, 3, &nd, err, sizeof err),
               CKPT_EMISMATCH, err, p, "missing dataset /model/nowhere/weight");
    ckpt_close(cf);
}

static void test_refuse_config(void)
{
    REQUIRE_FIXTURE();
    /* not JSON; JSON but not an object; an object cut short */
    const char *bad[] = {"not json", "[1, 2]", "{\"task\":"};
    for (int i = 0; i < 3; i++) {
        char p[1024], name[32];
        snprintf(name, sizeof name, "config-%d.h5", i);
        hid_t f = open_copy(name, p, sizeof p);
        CU_ASSERT_FATAL(f >= 0);
        CU_ASSERT(put_config(f, bad[i], 1) == 0);
        CU_ASSERT(reseal(f) == 0);
        H5Fclose(f);
        EXPECT_VERIFY(p, CKPT_EFORMAT, "/config is not a JSON object");
    }
    /* not a scalar string: meta_sha256 cannot be checked without it */
    char p[1024], err[1400] = "";
    hid_t f = open_copy("config-1d-v2.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_config(f, CONFIG, 0) == 0);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "meta_sha256 cannot be checked: cannot read /config");
    /* and in a file of format 1, the reader refuses it */
    f = open_copy("config-1d.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_config(f, CONFIG, 0) == 0);
    CU_ASSERT(make_v1(f) == 0);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "/config cannot be read");
    ckpt_file *cf = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&cf, p, err, sizeof err), CKPT_OK);
    char *json = NULL;
    EXPECT_ERR(ckpt_read_config(cf, &json, err, sizeof err), CKPT_EFORMAT, err, p,
               "cannot read /config");
    CU_ASSERT_PTR_NULL(json);
    ckpt_close(cf);
}

static void test_refuse_no_checksum(void)
{
    REQUIRE_FIXTURE();
    const float bias[7] = {1, 2, 3, 4, 5, 6, 7};
    const hsize_t dims[1] = {7}, chunk[1] = {7};
    char p[1024], q[1024];
    /* chunked, but without the filter */
    hid_t f = open_copy("chunked-no-filter.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_dataset(f, "/model/decoder/dense/bias", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, bias, 1,
                          dims, chunk, 0) == 0);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "/model/decoder/dense/bias: no Fletcher-32 checksum");
    /* contiguous (cannot carry a filter) */
    f = open_copy("contiguous.h5", q, sizeof q);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_dataset(f, "/train/state_h", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, fx.state_h, 3,
                          (const hsize_t[]){SL, SB, SH}, NULL, 0) == 0);
    H5Fclose(f);
    EXPECT_VERIFY(q, CKPT_EFORMAT, "/train/state_h: not chunked (no checksum)");
    /* the readers refuse them as verify does (translate and --resume FILE
     * read through them without verifying first) */
    char err[1400] = "";
    EXPECT_ERR(read_params_as(p, TENSORS, NT, err, sizeof err), CKPT_EFORMAT, err, p,
               "/model/decoder/dense/bias: no Fletcher-32 checksum");
    ckpt_file *cf = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&cf, q, err, sizeof err), CKPT_OK);
    float h[SN];
    int found = 0;
    EXPECT_ERR(
        ckpt_read_state(cf, "state_h", h, (const int[3]){SL, SB, SH}, &found, err, sizeof err),
        CKPT_EFORMAT, err, q, "/train/state_h: not chunked (no checksum)");
    CU_ASSERT_EQUAL(found, 0);
    ckpt_close(cf);
}

/* A vocabulary of variable-length strings: their bytes lie in HDF5's heap,
 * outside the chunks Fletcher-32 covers (HDF5 1.10 refuses the filter on
 * them). verify and the reader refuse it. */
static void test_refuse_vlen_vocab(void)
{
    REQUIRE_FIXTURE();
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    const hsize_t dims[1] = {NTGT};
    for (int chunked = 0; chunked < 2; chunked++) { /* as h5py writes a list of str; chunked */
        char p[1024], name[32], err[1400] = "";
        snprintf(name, sizeof name, "vlen-vocab-%d.h5", chunked);
        hid_t f = open_copy(name, p, sizeof p);
        CU_ASSERT_FATAL(f >= 0);
        CU_ASSERT(put_dataset(f, "/vocab/tgt", t, t, TGT, 1, dims, chunked ? dims : NULL, 0) == 0);
        H5Fclose(f);
        EXPECT_VERIFY(p, CKPT_EFORMAT, "/vocab/tgt: variable-length strings");
        ckpt_file *cf = NULL;
        CU_ASSERT_EQUAL_FATAL(ckpt_open(&cf, p, err, sizeof err), CKPT_OK);
        ckpt_strings v = {0, NULL};
        EXPECT_ERR(ckpt_read_vocab(cf, "tgt", &v, err, sizeof err), CKPT_EFORMAT, err, p,
                   "cannot read /vocab/tgt: variable-length strings");
        CU_ASSERT(v.n == 0 && v.s == NULL);
        ckpt_close(cf);
    }
    H5Tclose(t);
}

/* A tensor stored as float64: the readers want float32. */
static void test_refuse_dtype_readers(void)
{
    REQUIRE_FIXTURE();
    const double bias[7] = {1, 2, 3, 4, 5, 6, 7};
    const hsize_t dims[1] = {7};
    char p[1024], err[1400] = "";
    hid_t f = open_copy("float64.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_dataset(f, "/model/decoder/dense/bias", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, bias,
                          1, dims, dims, 1) == 0);
    H5Fclose(f);
    EXPECT_ERR(read_params_as(p, TENSORS, NT, err, sizeof err), CKPT_EFORMAT, err, p,
               "/model/decoder/dense/bias: not float32 data");
}

/* The same for verify: what passes it must load (--resume auto takes the
 * newest checkpoint that verifies). Tensors, moments and state are float32,
 * vocabularies strings. */
static void test_refuse_dtype_verify(void)
{
    REQUIRE_FIXTURE();
    const double bias[7] = {1, 2, 3, 4, 5, 6, 7};
    const int ids[7] = {0, 1, 2, 3, 4, 5, 6};
    const hsize_t dims[1] = {7};
    char p[1024], q[1024], r[1024];
    hid_t f = open_copy("float64.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_dataset(f, "/model/decoder/dense/bias", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, bias,
                          1, dims, dims, 1) == 0);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "/model/decoder/dense/bias: not float32 data");
    f = open_copy("int-moment.h5", q, sizeof q);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_dataset(f, "/optimizer/v/decoder/dense/bias", H5T_STD_I32LE, H5T_NATIVE_INT, ids,
                          1, dims, dims, 1) == 0);
    H5Fclose(f);
    EXPECT_VERIFY(q, CKPT_EFORMAT, "/optimizer/v/decoder/dense/bias: not float32 data");
    f = open_copy("int-vocab.h5", r, sizeof r);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_dataset(f, "/vocab/tgt", H5T_STD_I32LE, H5T_NATIVE_INT, ids, 1, dims, dims, 1) ==
              0);
    H5Fclose(f);
    EXPECT_VERIFY(r, CKPT_EFORMAT, "/vocab/tgt: not strings");
}

static void test_refuse_string_size(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    hid_t f = open_copy("huge-string.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, (size_t)2 << 20); /* 2 MiB a token */
    const hsize_t one[1] = {1};
    CU_ASSERT(put_dataset(f, "/vocab/src", t, t, NULL, 1, one, one, 1) == 0);
    H5Tclose(t);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "/vocab/src: a string of impossible size");
}

static void test_refuse_implausibly_large(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    hid_t f = open_copy("huge.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    /* 2^21 x 2^10 floats (8 GiB), no chunk written */
    const hsize_t dims[2] = {(hsize_t)1 << 21, 1024}, chunk[2] = {1, 1024};
    CU_ASSERT(put_dataset(f, "/train/state_h", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, NULL, 2, dims,
                          chunk, 1) == 0);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "/train/state_h: implausibly large");
}

/* ---------------------------------------------------- refusals: values */

/* Rewrites one element of a float dataset in place (the filter recomputes
 * the checksum: the file is consistent, its value is not). */
static int poke_float(hid_t f, const char *path, int index, float v)
{
    hid_t ds = H5Dopen2(f, path, H5P_DEFAULT);
    if (ds < 0) return -1;
    hid_t sp = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    float *buf = n > index ? malloc((size_t)n * sizeof *buf) : NULL;
    herr_t rc = buf ? H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : -1;
    if (rc >= 0) {
        buf[index] = v;
        rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    }
    free(buf);
    H5Sclose(sp);
    H5Dclose(ds);
    return rc < 0 ? -1 : 0;
}

static void test_refuse_nonfinite(void)
{
    REQUIRE_FIXTURE();
    const struct {
        const char *dataset;
        float v;
    } cases[] = {
        {"/model/encoder/rnn/weight_ih_l0", NAN},
        {"/optimizer/m/decoder/dense/weight", INFINITY},
        {"/train/state_c", -INFINITY},
    };
    for (int i = 0; i < 3; i++) {
        char p[1024], name[32], want[128];
        snprintf(name, sizeof name, "nonfinite-%d.h5", i);
        hid_t f = open_copy(name, p, sizeof p);
        CU_ASSERT_FATAL(f >= 0);
        CU_ASSERT(poke_float(f, cases[i].dataset, 5, cases[i].v) == 0);
        H5Fclose(f);
        snprintf(want, sizeof want, "%s: holds NaN or infinite values", cases[i].dataset);
        EXPECT_VERIFY(p, CKPT_EFORMAT, want);
        if (i == 0) {
            char err[1400] = "";
            EXPECT_ERR(read_params_as(p, TENSORS, NT, err, sizeof err), CKPT_EFORMAT, err, p,
                       "/model/encoder/rnn/weight_ih_l0 holds 1 NaN or infinite values");
        }
    }
}

/* A negative Adam second moment (written through HDF5: its checksum is
 * right): sqrt(v) would be NaN at the first update. First moments may be
 * negative (the fixture's are). */
static void test_refuse_negative_moment(void)
{
    REQUIRE_FIXTURE();
    const char *ds = "/optimizer/v/decoder/dense/weight";
    char p[1024], err[1400] = "";
    hid_t f = open_copy("negative-v.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(poke_float(f, ds, 4, -0.0625f) == 0);
    CU_ASSERT(poke_float(f, ds, 9, -3.0f) == 0);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "/optimizer/v/decoder/dense/weight: holds 2 negative values");
    ckpt_file *cf = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&cf, p, err, sizeof err), CKPT_OK);
    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.1f, &fx.pt) == MODEL_OK);
    EXPECT_ERR(ckpt_read_optimizer(cf, &fx.pt, &o, err, sizeof err), CKPT_EFORMAT, err, p,
               "/optimizer/v/decoder/dense/weight holds 2 negative values");
    CU_ASSERT_EQUAL(o.t, 0); /* left as it was */
    optimizer_free(&o);
    ckpt_close(cf);
    /* -0.0 is no negative value (and what a zero gradient leaves is +0) */
    f = open_copy("negative-zero-v.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(poke_float(f, ds, 4, -0.0f) == 0);
    H5Fclose(f);
    CU_ASSERT_EQUAL(ckpt_verify(p, err, sizeof err), CKPT_OK);
}

/* One bit of a tensor's stored chunk flipped: Fletcher-32 sees it. */
static void test_refuse_checksum(void)
{
    REQUIRE_FIXTURE();
    const char *ds = "/model/encoder/embedding/weight";
    char p[1024], err[1400] = "";
    in_dir(p, sizeof p, "flipped.h5");
    CU_ASSERT_FATAL(copy_file(fx.good, p) == 0);
    haddr_t addr = 0;
    hsize_t size = 0;
    CU_ASSERT_FATAL(chunk_location(p, ds, &addr, &size) == 0);
    CU_ASSERT_EQUAL_FATAL(size, 8 * 3 * sizeof(float) + 4); /* the floats, then the checksum */
    /* the good copy reads before the flip */
    CU_ASSERT_EQUAL(read_params_as(p, TENSORS, NT, err, sizeof err), CKPT_OK);
    CU_ASSERT_FATAL(flip_bit(p, (long)addr + 41) == 0);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "/model/encoder/embedding/weight: fails its checksum");
    EXPECT_ERR(read_params_as(p, TENSORS, NT, err, sizeof err), CKPT_EFORMAT, err, p,
               "/model/encoder/embedding/weight fails its checksum");
}

/* ---------------------------------------------------- refusals: counters */

/* A copy whose /train (or /optimizer) attribute name is v, re-sealed (as a
 * file of a buggy writer would be); verify's message must contain want. */
static void expect_counter(const char *file, const char *obj, const char *attr, long long v,
                           const char *want)
{
    char p[1024];
    hid_t f = open_copy(file, p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_attr_ll(f, obj, attr, v) == 0);
    CU_ASSERT(reseal(f) == 0); /* the range check, not the checksum, refuses it */
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, want);
}

static void test_refuse_step(void)
{
    REQUIRE_FIXTURE();
    expect_counter("step-big.h5", "/train", "step", CKPT_MAX_COUNT + 1, "step is impossible");
    expect_counter("step-neg.h5", "/train", "step", -1, "/train attributes missing or invalid");
}

static void test_refuse_epoch(void)
{
    REQUIRE_FIXTURE();
    expect_counter("epoch-big.h5", "/train", "epoch", CKPT_MAX_COUNT + 1, "epoch is impossible");
    expect_counter("epoch-neg.h5", "/train", "epoch", -3, "/train attributes missing or invalid");
}

static void test_refuse_batch_in_epoch(void)
{
    REQUIRE_FIXTURE();
    /* more batches into the epoch than steps taken */
    expect_counter("bie.h5", "/train", "batch_in_epoch", 13, "batch_in_epoch is impossible");
}

static void test_refuse_world_and_batch(void)
{
    REQUIRE_FIXTURE();
    expect_counter("world.h5", "/train", "world_size", 0, "world_size is impossible");
    expect_counter("batch.h5", "/train", "global_batch", -4, "global_batch is impossible");
}

static void test_refuse_missing_train_attribute(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    hid_t f = open_copy("no-seed.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(H5Adelete_by_name(f, "/train", "seed", H5P_DEFAULT) >= 0);
    CU_ASSERT(reseal(f) == 0);
    H5Fclose(f);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "/train attributes missing or invalid");
}

/* More optimizer updates than steps (t > step), a negative count. */
static void test_refuse_update_count(void)
{
    REQUIRE_FIXTURE();
    expect_counter("t-past-step.h5", "/optimizer", "t", 13,
                   "/optimizer t = 13 for step 12: at most one update a step");
    expect_counter("t-neg.h5", "/optimizer", "t", -1, "/optimizer t = -1 for step 12");
    /* the optimizer's reader bounds it too */
    char p[1024], err[1400] = "";
    hid_t f = open_copy("t-huge.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(put_attr_ll(f, "/optimizer", "t", CKPT_MAX_COUNT + 1) == 0);
    CU_ASSERT(reseal(f) == 0);
    H5Fclose(f);
    ckpt_file *cf = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&cf, p, err, sizeof err), CKPT_OK);
    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.1f, &fx.pt) == MODEL_OK);
    EXPECT_ERR(ckpt_read_optimizer(cf, &fx.pt, &o, err, sizeof err), CKPT_EFORMAT, err, p,
               "is not an update count");
    CU_ASSERT_EQUAL(o.t, 0); /* left as it was */
    optimizer_free(&o);
    ckpt_close(cf);
}

/* A ckpt-<step>.h5 holding another step (a renamed or copied file). */
static void test_refuse_step_name(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    ckpt_path(p, sizeof p, fx.dir, 30);
    CU_ASSERT_FATAL(copy_file(fx.good, p) == 0);
    EXPECT_VERIFY(p, CKPT_EFORMAT, "holds step 12 but is named for step 30");
    /* under a name that is not a checkpoint's, the same bytes verify */
    char q[1024], err[1400] = "";
    in_dir(q, sizeof q, "copy-of-12.h5");
    CU_ASSERT_FATAL(copy_file(fx.good, q) == 0);
    CU_ASSERT_EQUAL(ckpt_verify(q, err, sizeof err), CKPT_OK);
}

/* ---------------------------------------- refusals: the training state */

typedef struct attr_names {
    int n;
    char name[40][64];
} attr_names;

static herr_t collect_name(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)loc, (void)info;
    attr_names *a = op;
    if (a->n < 40) snprintf(a->name[a->n++], sizeof a->name[0], "%s", name);
    return 0;
}

/* Flips the lowest bit of the first byte of an attribute's value, read and
 * written in its own file type: the stored bytes, not a converted value. */
static int flip_attr_bit(hid_t f, const char *obj, const char *name)
{
    /* opened through its object: HDF5 1.10 cannot write an attribute
     * opened by path from the file */
    hid_t g = H5Oopen(f, obj, H5P_DEFAULT);
    hid_t a = g < 0 ? -1 : H5Aopen(g, name, H5P_DEFAULT);
    if (g >= 0) H5Oclose(g);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    const size_t n = (size_t)H5Sget_simple_extent_npoints(sp) * H5Tget_size(t);
    unsigned char *b = calloc(n ? n : 1, 1);
    herr_t rc = b && n ? H5Aread(a, t, b) : -1;
    if (rc >= 0) {
        b[0] ^= 1;
        rc = H5Awrite(a, t, b);
    }
    free(b);
    H5Sclose(sp);
    H5Tclose(t);
    H5Aclose(a);
    return rc < 0 ? -1 : 0;
}

/* Flips the lowest bit of byte `at` of the one place in the file holding
 * the n bytes of pat; -1 when they occur other than once. */
static int flip_unique(const char *path, const void *pat, size_t n, size_t at)
{
    size_t len = 0;
    char *b = read_all(path, &len);
    long pos = -1;
    int hits = 0;
    for (size_t i = 0; b && i + n <= len; i++)
        if (memcmp(b + i, pat, n) == 0) hits++, pos = (long)i;
    free(b);
    return hits == 1 ? flip_bit(path, pos + (long)at) : -1;
}

/* One bit flipped in any attribute of /, /train or /optimizer: each reads
 * back as a plausible value (step 13, batch_in_epoch 2, another seed, lr,
 * t or loss), which the range checks pass; meta_sha256 refuses them all,
 * and itself flipped. format and format_version are read first. */
static void test_refuse_flipped_attribute(void)
{
    REQUIRE_FIXTURE();
    static const char *const objs[] = {"/", "/train", "/optimizer"};
    int total = 0;
    for (int o = 0; o < 3; o++) {
        hid_t h5 = H5Fopen(fx.good, H5F_ACC_RDONLY, H5P_DEFAULT);
        CU_ASSERT_FATAL(h5 >= 0);
        attr_names names = {0};
        hsize_t idx = 0;
        hid_t g = H5Oopen(h5, objs[o], H5P_DEFAULT);
        CU_ASSERT(g >= 0 &&
                  H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect_name, &names) >= 0);
        H5Oclose(g);
        H5Fclose(h5);
        for (int i = 0; i < names.n; i++, total++) {
            char p[1024], file[96], want[64] = "meta_sha256 does not match";
            snprintf(file, sizeof file, "flip-%d-%s.h5", o, names.name[i]);
            hid_t f = open_copy(file, p, sizeof p);
            CU_ASSERT_FATAL(f >= 0);
            CU_ASSERT(flip_attr_bit(f, objs[o], names.name[i]) == 0);
            H5Fclose(f);
            if (o == 0 && !strcmp(names.name[i], "format"))
                snprintf(want, sizeof want, "not a seqpar checkpoint");
            if (o == 0 && !strcmp(names.name[i], "format_version"))
                snprintf(want, sizeof want, "format_version %d is not supported",
                         CKPT_FORMAT_VERSION ^ 1);
            EXPECT_VERIFY(p, CKPT_EFORMAT, want);
            char err[1400] = "";
            ckpt_file *cf = NULL;
            EXPECT_ERR(ckpt_open(&cf, p, err, sizeof err), CKPT_EFORMAT, err, p, want);
            CU_ASSERT_PTR_NULL(cf);
        }
    }
    /* 5 at the root (meta_sha256 included), 14 in /train (plateau's 3
     * included), 5 in /optimizer */
    CU_ASSERT_EQUAL(total, 24);

    /* the same as a flipped bit in the file's bytes: the seed's (its 8 bytes
     * occur once) and a character of /config (still a JSON object) */
    char p[1024], q[1024];
    in_dir(p, sizeof p, "flip-seed-bytes.h5");
    in_dir(q, sizeof q, "flip-config-bytes.h5");
    CU_ASSERT_FATAL(copy_file(fx.good, p) == 0 && copy_file(fx.good, q) == 0);
    const unsigned char seed[8] = {0xEF, 0xBE, 0xFE, 0xCA, 0xCE, 0xFA, 0xED, 0xFE};
    CU_ASSERT_FATAL(flip_unique(p, seed, 8, 3) == 0);
    CU_ASSERT_FATAL(flip_unique(q, " vu\"", 4, 1) == 0); /* "déjà vu" → "déjà wu" */
    EXPECT_VERIFY(p, CKPT_EFORMAT, "meta_sha256 does not match");
    EXPECT_VERIFY(q, CKPT_EFORMAT, "meta_sha256 does not match");
}

/* Files of format 1 (seqpar before meta_sha256) load, and verify says their
 * attributes went unchecked; a file of format 2 without meta_sha256 is
 * refused naming it. */
static void test_format_1(void)
{
    REQUIRE_FIXTURE();
    char p[1024], q[1024], err[1400] = "x";
    CU_ASSERT_EQUAL(ckpt_verify(fx.good, err, sizeof err), CKPT_OK);
    CU_ASSERT_STRING_EQUAL(err, ""); /* format 2: nothing left unchecked */
    hid_t f = open_copy("v1.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(make_v1(f) == 0);
    H5Fclose(f);
    CU_ASSERT_EQUAL(ckpt_verify(p, err, sizeof err), CKPT_OK);
    CU_ASSERT_STRING_EQUAL(err, "format 1: attributes unchecked");
    CU_ASSERT_EQUAL(read_params_as(p, TENSORS, NT, err, sizeof err), CKPT_OK);
    ckpt_file *cf = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&cf, p, err, sizeof err), CKPT_OK);
    ckpt_train tr;
    CU_ASSERT_EQUAL(ckpt_read_train(cf, &tr, err, sizeof err), CKPT_OK);
    CU_ASSERT(tr.step == 12 && tr.epoch == 2 && tr.batch_in_epoch == 3);
    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.1f, &fx.pt) == MODEL_OK);
    CU_ASSERT_EQUAL(ckpt_read_optimizer(cf, &fx.pt, &o, err, sizeof err), CKPT_OK);
    CU_ASSERT_EQUAL(o.t, 7);
    optimizer_free(&o);
    ckpt_close(cf);
    /* format 2 without its checksum */
    f = open_copy("v2-without-meta.h5", q, sizeof q);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(H5Adelete_by_name(f, "/", CKPT_META_ATTR, H5P_DEFAULT) >= 0);
    H5Fclose(f);
    EXPECT_VERIFY(q, CKPT_EFORMAT, "format_version 2 but meta_sha256 is missing");
}

/* ------------------------------------------- refusals: another model's file */

static void test_refuse_shape(void)
{
    REQUIRE_FIXTURE();
    char err[1400] = "";
    tspec wider[NT], rank1[NT];
    memcpy(wider, TENSORS, sizeof wider);
    memcpy(rank1, TENSORS, sizeof rank1);
    wider[1].d1 = 4;                            /* encoder.rnn.weight_ih_l0: 9x4 */
    rank1[3] = (tspec){rank1[3].name, 2, 7, 1}; /* the bias as 7x1 */
    EXPECT_ERR(read_params_as(fx.good, wider, NT, err, sizeof err), CKPT_EMISMATCH, err, fx.good,
               "/model/encoder/rnn/weight_ih_l0 has shape 9x3, the model needs 9x4");
    EXPECT_ERR(read_params_as(fx.good, rank1, NT, err, sizeof err), CKPT_EMISMATCH, err, fx.good,
               "/model/decoder/dense/bias has shape 7, the model needs 7x1");
    /* and the carried state */
    ckpt_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&f, fx.good, err, sizeof err), CKPT_OK);
    float h[SL * (SB + 1) * SH];
    const int dims[3] = {SL, SB + 1, SH};
    int found = 1;
    EXPECT_ERR(ckpt_read_state(f, "state_h", h, dims, &found, err, sizeof err), CKPT_EMISMATCH, err,
               fx.good, "/train/state_h has shape 2x4x3, the model needs 2x5x3");
    CU_ASSERT_EQUAL(found, 0);
    ckpt_close(f);
}

/* The model has a tensor the file lacks. */
static void test_refuse_model_tensor_missing(void)
{
    REQUIRE_FIXTURE();
    char err[1400] = "";
    tspec more[NT + 1];
    memcpy(more, TENSORS, sizeof TENSORS);
    more[NT] = (tspec){"decoder.embedding.weight", 2, 7, 3};
    EXPECT_ERR(read_params_as(fx.good, more, NT + 1, err, sizeof err), CKPT_EMISMATCH, err, fx.good,
               "missing dataset /model/decoder/embedding/weight");
}

/* The file has a tensor the model lacks: a table without the bias, and the
 * good file with one more dataset under /model. */
static void test_refuse_extra_tensor(void)
{
    REQUIRE_FIXTURE();
    char err[1400] = "";
    EXPECT_ERR(read_params_as(fx.good, TENSORS, NT - 1, err, sizeof err), CKPT_EMISMATCH, err,
               fx.good, "/model holds 4 tensors, the model has 3");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/model/decoder/dense/bias is not a tensor of the model"));
    char p[1024];
    hid_t f = open_copy("extra.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    const float x[3] = {1, 2, 3};
    const hsize_t dims[1] = {3};
    CU_ASSERT(put_dataset(f, "/model/decoder/extra/bias", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x, 1,
                          dims, dims, 1) == 0);
    H5Fclose(f);
    EXPECT_ERR(read_params_as(p, TENSORS, NT, err, sizeof err), CKPT_EMISMATCH, err, p,
               "/model holds 5 tensors, the model has 4");
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/model/decoder/extra/bias is not a tensor of the model"));
    /* and in the optimizer's moments */
    f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
    CU_ASSERT_FATAL(f >= 0);
    CU_ASSERT(H5Ldelete(f, "/model/decoder/extra", H5P_DEFAULT) >= 0);
    CU_ASSERT(put_dataset(f, "/optimizer/m/extra", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, x, 1, dims,
                          dims, 1) == 0);
    H5Fclose(f);
    CU_ASSERT_EQUAL(read_params_as(p, TENSORS, NT, err, sizeof err), CKPT_OK);
    ckpt_file *cf = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&cf, p, err, sizeof err), CKPT_OK);
    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.1f, &fx.pt) == MODEL_OK);
    EXPECT_ERR(ckpt_read_optimizer(cf, &fx.pt, &o, err, sizeof err), CKPT_EMISMATCH, err, p,
               "/optimizer/m/extra is not a tensor of the model");
    optimizer_free(&o);
    ckpt_close(cf);
    /* it is still a valid checkpoint, of another model */
    CU_ASSERT_EQUAL(ckpt_verify(p, err, sizeof err), CKPT_OK);
}

static void test_refuse_optimizer_kind(void)
{
    REQUIRE_FIXTURE();
    char err[1400] = "";
    ckpt_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&f, fx.good, err, sizeof err), CKPT_OK);
    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_SGD, 0.1f, &fx.pt) == MODEL_OK);
    EXPECT_ERR(ckpt_read_optimizer(f, &fx.pt, &o, err, sizeof err), CKPT_EMISMATCH, err, fx.good,
               "optimizer is adam, the run uses sgd");
    optimizer_free(&o);
    ckpt_close(f);
}

static void test_refuse_vocab(void)
{
    REQUIRE_FIXTURE();
    char p[1024], err[1400] = "";
    hid_t f = open_copy("int-vocab.h5", p, sizeof p);
    CU_ASSERT_FATAL(f >= 0);
    const int ids[4] = {0, 1, 2, 3};
    const hsize_t dims[1] = {4};
    CU_ASSERT(put_dataset(f, "/vocab/tgt", H5T_STD_I32LE, H5T_NATIVE_INT, ids, 1, dims, dims, 1) ==
              0);
    H5Fclose(f);
    ckpt_file *cf = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&cf, p, err, sizeof err), CKPT_OK);
    ckpt_strings v = {0, NULL};
    EXPECT_ERR(ckpt_read_vocab(cf, "tgt", &v, err, sizeof err), CKPT_EFORMAT, err, p,
               "cannot read /vocab/tgt");
    CU_ASSERT(v.n == 0 && v.s == NULL);
    /* the translation file has no LM vocabulary */
    EXPECT_ERR(ckpt_read_vocab(cf, "tokens", &v, err, sizeof err), CKPT_EFORMAT, err, p,
               "missing /vocab/tokens");
    ckpt_close(cf);
}

/* ---------------------------------------------------------- atomic writes */

static void test_replace(void)
{
    REQUIRE_FIXTURE();
    char err[1400] = "";
    size_t n_old = 0;
    char *old = read_all(fx.good, &n_old);
    CU_ASSERT_FATAL(old != NULL);
    /* other values, a smaller vocabulary, no optimizer: a different file */
    param_table pt;
    CU_ASSERT_FATAL(make_table(&pt, TENSORS, NT) == 0);
    fill(&pt, pt.data, 5.0f);
    static const char cfg[] = "{\"task\":\"translate\",\"second\":true}";
    ckpt_content c = fx.c;
    c.params = &pt;
    c.opt = NULL;
    c.config_json = cfg;
    c.vocab_tgt_n = 5;
    CU_ASSERT_EQUAL_FATAL(ckpt_save(fx.good, &c, err, sizeof err), CKPT_OK);
    CU_ASSERT_FALSE(same_bytes(fx.good, old, n_old));
    CU_ASSERT_EQUAL(ckpt_verify(fx.good, err, sizeof err), CKPT_OK);
    CU_ASSERT_EQUAL(count_entries(".tmp."), 0);
    CU_ASSERT_EQUAL(count_entries(".h5"), 1);

    param_table back;
    CU_ASSERT_FATAL(make_table(&back, TENSORS, NT) == 0);
    ckpt_file *f = NULL;
    CU_ASSERT_EQUAL_FATAL(ckpt_open(&f, fx.good, err, sizeof err), CKPT_OK);
    CU_ASSERT_EQUAL(ckpt_read_params(f, &back, err, sizeof err), CKPT_OK);
    CU_ASSERT(memcmp(back.data, pt.data, pt.total * sizeof(float)) == 0);
    char *json = NULL;
    CU_ASSERT(ckpt_read_config(f, &json, err, sizeof err) == CKPT_OK && json &&
              strcmp(json, cfg) == 0);
    free(json);
    ckpt_strings v = {0, NULL};
    CU_ASSERT(ckpt_read_vocab(f, "tgt", &v, err, sizeof err) == CKPT_OK && v.n == 5);
    ckpt_strings_free(&v);
    /* the old file's optimizer is gone with it */
    optimizer o;
    CU_ASSERT_FATAL(optimizer_init(&o, OPT_ADAM, 0.1f, &pt) == MODEL_OK);
    EXPECT_ERR(ckpt_read_optimizer(f, &pt, &o, err, sizeof err), CKPT_EFORMAT, err, fx.good,
               "missing group /optimizer");
    optimizer_free(&o);
    ckpt_close(f);
    param_table_free(&back);
    param_table_free(&pt);
    free(old);
}

/* Saves to path must fail with CKPT_EIO naming it and what went wrong,
 * leaving the good file as it was and no temporary file in the directory. */
static void expect_failed_save(const char *path, const char *why, const char *good, size_t n)
{
    char err[1400] = "";
    EXPECT_ERR(ckpt_save(path, &fx.c, err, sizeof err), CKPT_EIO, err, path, why);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "earlier checkpoints are untouched"));
    CU_ASSERT(same_bytes(fx.good, good, n));
    CU_ASSERT_EQUAL(count_entries(".tmp."), 0);
}

/* As root no permission stops a write: the directory is missing, a file
 * stands where it should be, or a directory where the file should be. */
static void test_save_unwritable(void)
{
    REQUIRE_FIXTURE();
    size_t n = 0;
    char *good = read_all(fx.good, &n);
    CU_ASSERT_FATAL(good != NULL);
    char p[1024];
    in_dir(p, sizeof p, "missing-dir/ckpt-00000013.h5");
    expect_failed_save(p, strerror(ENOENT), good, n);
    CU_ASSERT_FALSE(exists("missing-dir"));

    CU_ASSERT_FATAL(touch("file") == 0);
    in_dir(p, sizeof p, "file/ckpt-00000013.h5");
    expect_failed_save(p, strerror(ENOTDIR), good, n);

    /* the rename fails: the temporary is removed */
    in_dir(p, sizeof p, "ckpt-00000013.h5");
    CU_ASSERT_FATAL(mkdir(p, 0755) == 0);
    CU_ASSERT_FATAL(touch("ckpt-00000013.h5/keep") == 0);
    expect_failed_save(p, "cannot commit", good, n);
    CU_ASSERT(exists("ckpt-00000013.h5/keep"));
    free(good);
}

/* A write that fails half-way (a full disk, here the file size limit) over
 * an existing checkpoint: the earlier file stays byte for byte, the partial
 * temporary is removed. */
static void test_save_fails_midway(void)
{
    REQUIRE_FIXTURE();
    size_t n = 0;
    char *good = read_all(fx.good, &n);
    CU_ASSERT_FATAL(good != NULL && n > 8192);
    struct rlimit old;
    CU_ASSERT_FATAL(getrlimit(RLIMIT_FSIZE, &old) == 0);
    struct rlimit lim = old;
    lim.rlim_cur = (rlim_t)(n / 2);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG, not the signal */
    CU_ASSERT_FATAL(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    char err[1400] = "";
    const int rc = ckpt_save(fx.good, &fx.c, err, sizeof err);
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, prev);
    EXPECT_ERR(rc, CKPT_EIO, err, fx.good, strerror(EFBIG));
    CU_ASSERT(same_bytes(fx.good, good, n));
    CU_ASSERT_EQUAL(count_entries(".tmp."), 0);
    CU_ASSERT_EQUAL(ckpt_verify(fx.good, err, sizeof err), CKPT_OK);
    free(good);
}

static void test_clean_temps(void)
{
    REQUIRE_FIXTURE();
    char host[128] = "";
    if (gethostname(host, sizeof host - 1) != 0 || !host[0])
        snprintf(host, sizeof host, "localhost");
    /* a process that has ended: its PID is gone */
    pid_t child = fork();
    CU_ASSERT_FATAL(child >= 0);
    if (child == 0) _exit(0);
    CU_ASSERT_FATAL(waitpid(child, NULL, 0) == child);
    const long dead = (long)child, alive = (long)getpid();
    char dead_tmp[256], alive_tmp[256], other_host[256], not_pid[256], best_tmp[256];
    snprintf(dead_tmp, sizeof dead_tmp, "ckpt-00000010.h5.tmp.%s.%ld", host, dead);
    snprintf(alive_tmp, sizeof alive_tmp, "ckpt-00000020.h5.tmp.%s.%ld", host, alive);
    snprintf(other_host, sizeof other_host, "ckpt-00000030.h5.tmp.%s-other.%ld", host, dead);
    snprintf(not_pid, sizeof not_pid, "ckpt-00000040.h5.tmp.%s.%ldx", host, dead);
    snprintf(best_tmp, sizeof best_tmp, "notes.h5.tmp.%s.%ld", host, dead);
    const char *all[] = {dead_tmp, alive_tmp, other_host, not_pid, best_tmp};
    for (int i = 0; i < 5; i++) CU_ASSERT_FATAL(touch(all[i]) == 0);

    CU_ASSERT_EQUAL(ckpt_clean_temps(fx.dir), 1);
    CU_ASSERT_FALSE(exists(dead_tmp));
    CU_ASSERT(exists(alive_tmp));
    CU_ASSERT(exists(other_host));
    CU_ASSERT(exists(not_pid));
    CU_ASSERT(exists(best_tmp));
    CU_ASSERT(exists("ckpt-00000012.h5"));
    CU_ASSERT_EQUAL(ckpt_clean_temps(fx.dir), 0);
    char p[1024];
    in_dir(p, sizeof p, "no-such-dir");
    CU_ASSERT_EQUAL(ckpt_clean_temps(p), 0);
}

/* -------------------------------------------------- listing and retention */

static void test_path_and_list(void)
{
    REQUIRE_FIXTURE();
    char p[1024], want[1024];
    ckpt_path(p, sizeof p, "run", 12);
    CU_ASSERT_STRING_EQUAL(p, "run/ckpt-00000012.h5");
    ckpt_path(p, sizeof p, "run", 123456789);
    CU_ASSERT_STRING_EQUAL(p, "run/ckpt-123456789.h5");
    snprintf(want, sizeof want, "%s/ckpt-00000012.h5", fx.dir);
    CU_ASSERT_STRING_EQUAL(fx.good, want);

    /* created out of order, beside names that are not checkpoints' */
    const long steps[] = {30, 5, 123456789, 80, 0};
    for (int i = 0; i < 5; i++) {
        ckpt_path(p, sizeof p, fx.dir, steps[i]);
        CU_ASSERT_FATAL(write_bytes(p, "x", 1) == 0);
    }
    const char *others[] = {"best.h5",
                            "notes.txt",
                            "ckpt-7.h5",
                            "ckpt-00000009.txt",
                            "ckpt-00000011-copy.h5",
                            "ckpt-00000013.h5.tmp.h.1",
                            "ckpt-.h5"};
    for (int i = 0; i < 7; i++) CU_ASSERT_FATAL(touch(others[i]) == 0);
    in_dir(p, sizeof p, "ckpt-00000014.h5");
    CU_ASSERT_FATAL(mkfifo(p, 0644) == 0);
    in_dir(p, sizeof p, "ckpt-00000015.h5");
    CU_ASSERT_FATAL(mkdir(p, 0755) == 0);

    long got[CKPT_LIST_MAX];
    const long want_steps[] = {123456789, 80, 30, 12, 5, 0};
    const int n = ckpt_list_dir(fx.dir, got, CKPT_LIST_MAX);
    CU_ASSERT_EQUAL(n, 6);
    for (int i = 0; i < 6 && i < n; i++) CU_ASSERT_EQUAL(got[i], want_steps[i]);
    in_dir(p, sizeof p, "no-such-dir");
    CU_ASSERT_EQUAL(ckpt_list_dir(p, got, CKPT_LIST_MAX), -1);
}

/* A checkpoint of the fixture's content at step s (one that verifies). */
static int save_at(long s)
{
    char p[1024], err[1024];
    ckpt_path(p, sizeof p, fx.dir, s);
    ckpt_content c = fx.c;
    c.train.step = s;
    return ckpt_save(p, &c, err, sizeof err) == CKPT_OK ? 0 : -1;
}

/* More checkpoints than the caller has room for: the newest of them, the
 * ones --resume auto and ckpt list want, whatever the directory's order. */
static void test_list_newest_when_full(void)
{
    REQUIRE_FIXTURE();
    char p[1024];
    for (long s = 1; s <= 40; s++) {
        ckpt_path(p, sizeof p, fx.dir, s * 7 % 41); /* 1..40 shuffled (12 is the fixture's) */
        CU_ASSERT_FATAL(s * 7 % 41 == 12 || write_bytes(p, "x", 1) == 0);
    }
    long got[3] = {-1, -1, -1};
    CU_ASSERT_EQUAL(ckpt_list_dir(fx.dir, got, 3), 3);
    CU_ASSERT(got[0] == 40 && got[1] == 39 && got[2] == 38);
    if (got[0] != 40 || got[1] != 39 || got[2] != 38)
        fprintf(stderr, "\n    listed %ld %ld %ld\n", got[0], got[1], got[2]);
    long one = -1;
    CU_ASSERT_EQUAL(ckpt_list_dir(fx.dir, &one, 1), 1);
    CU_ASSERT_EQUAL(one, 40);
    CU_ASSERT_EQUAL(ckpt_list_dir(fx.dir, got, 0), 0);
}

/* Retention over more checkpoints than a listing holds (CKPT_LIST_MAX):
 * still all but the newest `keep` removed, and every later one counted. */
static void test_retain_many(void)
{
    REQUIRE_FIXTURE();
    CU_ASSERT_FATAL(unlink(fx.good) == 0);
    const long n = CKPT_LIST_MAX + 100;
    char p[1024];
    for (long s = 1; s <= n; s++) {
        ckpt_path(p, sizeof p, fx.dir, s);
        /* the newest up to n - 10 verifies: the older may go */
        CU_ASSERT_FATAL(s == n - 10 ? save_at(s) == 0 : write_bytes(p, "", 0) == 0);
    }
    int later = -1;
    /* keep the newest 4100 up to n - 10: 4096 + 100 - 10 - 4100 = 86 go */
    CU_ASSERT_EQUAL(ckpt_retain(fx.dir, 4100, n - 10, -1, &later), 86);
    CU_ASSERT_EQUAL(later, 10);
    CU_ASSERT_EQUAL(count_entries(".h5"), 4110);
    long *all = NULL; /* every one, newest first: no cap */
    CU_ASSERT_EQUAL(ckpt_list_all(fx.dir, &all), 4110);
    CU_ASSERT(all && all[0] == n && all[4109] == 87);
    free(all);
    CU_ASSERT_FALSE(exists("ckpt-00000086.h5"));
    CU_ASSERT(exists("ckpt-00000087.h5"));
}

/* Steps 10..80, keep 3, up to step 60: 10..30 go, 40..60 stay, and 70 and 80
 * (another branch of the run) stay and are counted. */
static void test_retain(void)
{
    REQUIRE_FIXTURE();
    CU_ASSERT_FATAL(unlink(fx.good) == 0);
    char p[1024];
    for (long s = 10; s <= 80; s += 10) CU_ASSERT_FATAL(save_at(s) == 0);
    /* never touched: not ckpt-%08ld.h5, or not a regular file */
    const char *others[] = {"best.h5",
                            "best-00000010.h5",
                            "notes.txt",
                            "ckpt-12.h5",
                            "ckpt-00000005.txt",
                            "ckpt-00000020-copy.h5",
                            "ckpt-00000001.h5.tmp.h.1"};
    const int nothers = (int)(sizeof others / sizeof *others);
    for (int i = 0; i < nothers; i++) CU_ASSERT_FATAL(touch(others[i]) == 0);
    in_dir(p, sizeof p, "ckpt-00000002.h5");
    CU_ASSERT_FATAL(mkfifo(p, 0644) == 0);
    in_dir(p, sizeof p, "ckpt-00000003.h5");
    CU_ASSERT_FATAL(mkdir(p, 0755) == 0);

    int later = -1;
    CU_ASSERT_EQUAL(ckpt_retain(fx.dir, 3, 60, -1, &later), 3);
    CU_ASSERT_EQUAL(later, 2);
    for (long s = 10; s <= 80; s += 10) {
        char name[32];
        snprintf(name, sizeof name, "ckpt-%08ld.h5", s);
        CU_ASSERT_EQUAL(exists(name), s >= 40);
        if (exists(name) != (s >= 40)) fprintf(stderr, "\n    %s\n", name);
    }
    for (int i = 0; i < nothers; i++) CU_ASSERT(exists(others[i]));
    struct stat st;
    in_dir(p, sizeof p, "ckpt-00000002.h5");
    CU_ASSERT(lstat(p, &st) == 0 && S_ISFIFO(st.st_mode));
    in_dir(p, sizeof p, "ckpt-00000003.h5");
    CU_ASSERT(lstat(p, &st) == 0 && S_ISDIR(st.st_mode));

    /* again: nothing more to remove; later may be NULL */
    CU_ASSERT_EQUAL(ckpt_retain(fx.dir, 3, 60, -1, NULL), 0);
    /* up to a step past them all: the newest 2 of 40..80 stay */
    CU_ASSERT_EQUAL(ckpt_retain(fx.dir, 2, 1000, -1, &later), 3);
    CU_ASSERT_EQUAL(later, 0);
    long got[CKPT_LIST_MAX];
    CU_ASSERT_EQUAL(ckpt_list_dir(fx.dir, got, CKPT_LIST_MAX), 2);
    CU_ASSERT(got[0] == 80 && got[1] == 70);
    /* everything past upto: nothing removed, all counted */
    CU_ASSERT_EQUAL(ckpt_retain(fx.dir, 1, 5, -1, &later), 0);
    CU_ASSERT_EQUAL(later, 2);
    for (int i = 0; i < nothers; i++) CU_ASSERT(exists(others[i]));

    later = 7;
    in_dir(p, sizeof p, "no-such-dir");
    CU_ASSERT_EQUAL(ckpt_retain(p, 3, 60, -1, &later), -1);
    CU_ASSERT_EQUAL(later, 0);
}

/* Retention never removes the newest checkpoint that verifies: with the
 * newest damaged (or not one at all), the one before it is kept too; with
 * none that verifies, nothing is removed. */
static void test_retain_keeps_a_good_one(void)
{
    REQUIRE_FIXTURE();
    CU_ASSERT_FATAL(unlink(fx.good) == 0);
    char p[1024];
    for (long s = 10; s <= 30; s += 10) CU_ASSERT_FATAL(save_at(s) == 0);
    ckpt_path(p, sizeof p, fx.dir, 40);
    CU_ASSERT_FATAL(write_bytes(p, "damaged", 7) == 0);
    CU_ASSERT_EQUAL(ckpt_retain(fx.dir, 1, 40, -1, NULL),
                    2); /* 40 kept, 30 verifies, 20 and 10 go */
    CU_ASSERT(exists("ckpt-00000040.h5"));
    CU_ASSERT(exists("ckpt-00000030.h5"));
    CU_ASSERT_FALSE(exists("ckpt-00000020.h5"));
    CU_ASSERT_FALSE(exists("ckpt-00000010.h5"));
    /* every one damaged: nothing is removed */
    for (long s = 50; s <= 70; s += 10) {
        ckpt_path(p, sizeof p, fx.dir, s);
        CU_ASSERT_FATAL(write_bytes(p, "x", 1) == 0);
    }
    ckpt_path(p, sizeof p, fx.dir, 30);
    CU_ASSERT_FATAL(write_bytes(p, "x", 1) == 0);
    CU_ASSERT_EQUAL(ckpt_retain(fx.dir, 1, 70, -1, NULL), 0);
    CU_ASSERT_EQUAL(count_entries("ckpt-"), 5);
    /* the caller's word that the newest verifies (it just wrote it): not read */
    CU_ASSERT_EQUAL(ckpt_retain(fx.dir, 1, 70, 70, NULL), 4);
    CU_ASSERT_EQUAL(count_entries("ckpt-"), 1);
    CU_ASSERT(exists("ckpt-00000070.h5"));
}

/* Values that are not finite are never written: the save is refused naming
 * the tensor, and the file already there stays as it was. */
static void test_refuse_nonfinite_save(void)
{
    REQUIRE_FIXTURE();
    size_t len = 0;
    char *before = read_all(fx.good, &len), err[1024] = "";
    CU_ASSERT_PTR_NOT_NULL_FATAL(before);
    float *bufs[4] = {fx.pt.data + fx.pt.t[1].offset, fx.opt.m + fx.pt.t[0].offset,
                      fx.opt.v + fx.pt.t[2].offset + 1, fx.state_h + 3};
    const char *names[4] = {"/model/", "/optimizer/m/", "/optimizer/v/", "/train/state_h"};
    const float bad[4] = {NAN, INFINITY, -INFINITY, NAN};
    for (int k = 0; k < 4; k++) {
        const float keep = *bufs[k];
        *bufs[k] = bad[k];
        CU_ASSERT_EQUAL(ckpt_save(fx.good, &fx.c, err, sizeof err), CKPT_ENONFINITE);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, names[k]));
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "not finite"));
        *bufs[k] = keep;
        CU_ASSERT(same_bytes(fx.good, before, len));
    }
    CU_ASSERT_EQUAL(count_entries(".tmp."), 0);
    free(before);
    CU_ASSERT_EQUAL(ckpt_save(fx.good, &fx.c, err, sizeof err), CKPT_OK);
}

/* ---------------------------------------------------------------- suites */

typedef struct test_def {
    const char *name;
    CU_TestFunc fn;
} test_def;

static void add_suite(const char *name, const test_def *tests, size_t n)
{
    CU_pSuite s = CU_add_suite_with_setup_and_teardown(name, NULL, NULL, setup, teardown);
    if (!s) return;
    for (size_t i = 0; i < n; i++) CU_add_test(s, tests[i].name, tests[i].fn);
}

#define ADD_SUITE(name, arr) add_suite(name, arr, sizeof arr / sizeof *arr)

void register_suites(void)
{
    static const test_def round_trip[] = {
        {"every field back as written (translation)", test_round_trip},
        {"LM layout: tokens, no optimizer, no state, no figures", test_round_trip_lm},
    };
    static const test_def not_ours[] = {
        {"a missing file", test_refuse_missing_file},
        {"not an HDF5 file", test_refuse_not_hdf5},
        {"an empty file", test_refuse_empty_file},
        {"a directory", test_refuse_directory},
        {"a FIFO (not opened)", test_refuse_fifo},
        {"a truncated file", test_refuse_truncated},
        {"a wrong or missing format attribute", test_refuse_format_attribute},
        {"an unsupported format_version", test_refuse_format_version},
    };
    static const test_def layout[] = {
        {"a missing group", test_refuse_missing_group},
        {"a missing dataset (readers)", test_refuse_missing_dataset},
        {"/config not a JSON object, not a scalar", test_refuse_config},
        {"a dataset without Fletcher-32 (verify and readers)", test_refuse_no_checksum},
        {"a vocabulary of variable-length strings", test_refuse_vlen_vocab},
        {"a float64 tensor (readers)", test_refuse_dtype_readers},
        {"a float64 tensor, int moments, int vocabulary (verify)", test_refuse_dtype_verify},
        {"a string of impossible size", test_refuse_string_size},
        {"an implausibly large dataset", test_refuse_implausibly_large},
    };
    static const test_def values[] = {
        {"NaN and infinities", test_refuse_nonfinite},
        {"a negative Adam second moment", test_refuse_negative_moment},
        {"a flipped bit in a chunk (checksum)", test_refuse_checksum},
        {"step out of bounds", test_refuse_step},
        {"epoch out of bounds", test_refuse_epoch},
        {"batch_in_epoch past the step", test_refuse_batch_in_epoch},
        {"world_size, global_batch below 1", test_refuse_world_and_batch},
        {"a /train attribute missing", test_refuse_missing_train_attribute},
        {"optimizer t past the step, negative, huge", test_refuse_update_count},
        {"ckpt-<step>.h5 holding another step", test_refuse_step_name},
    };
    static const test_def meta[] = {
        {"a bit flipped in any attribute or /config", test_refuse_flipped_attribute},
        {"format 1: loads, attributes unchecked; format 2 needs meta_sha256", test_format_1},
    };
    static const test_def mismatch[] = {
        {"wrong shapes name the tensor", test_refuse_shape},
        {"a model tensor the file lacks", test_refuse_model_tensor_missing},
        {"an extra tensor in the file", test_refuse_extra_tensor},
        {"another optimizer", test_refuse_optimizer_kind},
        {"a vocabulary that is not strings, or absent", test_refuse_vocab},
    };
    static const test_def writes[] = {
        {"a save replaces the file whole", test_replace},
        {"unwritable places: EIO, earlier file intact", test_save_unwritable},
        {"a write failing midway leaves no temporary", test_save_fails_midway},
        {"temporaries of dead writers on this host", test_clean_temps},
        {"values that are not finite are never written", test_refuse_nonfinite_save},
    };
    static const test_def dirs[] = {
        {"ckpt_path, ckpt_list_dir newest first", test_path_and_list},
        {"ckpt_retain", test_retain},
        {"ckpt_list_dir: the newest when there are more than max", test_list_newest_when_full},
        {"ckpt_retain over more than CKPT_LIST_MAX checkpoints", test_retain_many},
        {"ckpt_retain keeps the newest that verifies", test_retain_keeps_a_good_one},
    };
    ADD_SUITE("ckpt/round trip", round_trip);
    ADD_SUITE("ckpt/refused: not a checkpoint", not_ours);
    ADD_SUITE("ckpt/refused: layout", layout);
    ADD_SUITE("ckpt/refused: values", values);
    ADD_SUITE("ckpt/refused: training state (meta_sha256)", meta);
    ADD_SUITE("ckpt/refused: another model", mismatch);
    ADD_SUITE("ckpt/atomic writes", writes);
    ADD_SUITE("ckpt/run directory", dirs);
}

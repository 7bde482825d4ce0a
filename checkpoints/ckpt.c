/* HDF5 checkpoint files: see checkpoints.h for the layout. */
#include "checkpoints.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct ckpt_file {
    hid_t fid;
    char path[1024];
};

static int seterr(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int seterr(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* HDF5 prints its error stack by default; we report one line ourselves. */
static void quiet_hdf5(void)
{
    /* SEQPAR_HDF5_DEBUG=1 keeps HDF5's own error stack (for bug reports) */
    const char *dbg = getenv("SEQPAR_HDF5_DEBUG");
    if (!dbg || strcmp(dbg, "1") != 0) H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* "encoder.rnn.weight_ih_l0" → "/model/encoder/rnn/weight_ih_l0" */
static void dataset_path(char *out, size_t n, const char *group, const char *key)
{
    snprintf(out, n, "%s/%s", group, key);
    for (char *p = out + strlen(group) + 1; *p; p++)
        if (*p == '.') *p = '/';
}

/* ----------------------------------------------------------------- writing */

static herr_t attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) + 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, t, value);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

static herr_t attr_num(hid_t obj, const char *name, hid_t type, const void *v, hsize_t n)
{
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(obj, name, type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = a < 0 ? -1 : H5Awrite(a, type, v);
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return rc;
}

/* A chunked, Fletcher-32-checked float dataset; chunks of at most ~1 MiB. */
static herr_t write_floats(hid_t file, const char *path, const float *data, int ndim,
                           const hsize_t *dims)
{
    hsize_t chunk[3];
    size_t row = 1;
    for (int i = 1; i < ndim; i++) chunk[i] = dims[i], row *= dims[i];
    hsize_t rows = (hsize_t)((1u << 18) / (row ? row : 1));
    chunk[0] = rows < 1 ? 1 : rows > dims[0] ? dims[0] : rows;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, ndim, chunk);
    H5Pset_fletcher32(dcpl);
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(file, path, H5T_IEEE_F32LE, sp, lcpl, dcpl, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    return rc;
}

static herr_t write_table(hid_t file, const char *group, const param_table *pt, const float *buf)
{
    char path[256];
    for (int i = 0; i < pt->n; i++) {
        const param_tensor *t = &pt->t[i];
        hsize_t dims[3] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1], 1};
        dataset_path(path, sizeof path, group, t->name);
        if (write_floats(file, path, buf + t->offset, t->ndim, dims) < 0) return -1;
    }
    return 0;
}

/* A 1-D dataset of fixed-length UTF-8 strings (NUL-padded to the longest):
 * HDF5 filters, Fletcher-32 included, cannot apply to variable-length data. */
static herr_t write_strings(hid_t file, const char *path, const char *const *s, int n)
{
    size_t width = 1;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(s[i]);
        if (l > width) width = l;
    }
    char *buf = calloc((size_t)(n > 0 ? n : 1), width);
    if (!buf) return -1;
    for (int i = 0; i < n; i++) memcpy(buf + (size_t)i * width, s[i], strlen(s[i]));
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, width);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hsize_t dims = (hsize_t)n;
    hsize_t chunk = n < 4096 ? (hsize_t)(n > 0 ? n : 1) : 4096;
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &chunk);
    H5Pset_fletcher32(dcpl);
    hid_t sp = H5Screate_simple(1, &dims, NULL);
    hid_t ds = H5Dcreate2(file, path, t, sp, lcpl, dcpl, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
    H5Tclose(t);
    free(buf);
    return rc;
}

/* /config: a scalar UTF-8 string (a scalar cannot be chunked, so it has no
 * checksum filter; readers check that it parses as JSON). */
static herr_t write_config(hid_t file, const char *json)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(json) + 1);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t ds = H5Dcreate2(file, "/config", t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, json);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Tclose(t);
    return rc;
}

static herr_t write_all(hid_t f, const ckpt_content *c)
{
    char created[32];
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tmv);
    int ver = CKPT_FORMAT_VERSION;
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    herr_t rc = attr_str(root, "format", CKPT_FORMAT);
    rc |= attr_num(root, "format_version", H5T_NATIVE_INT, &ver, 1);
    rc |= attr_str(root, "seqpar_version", SEQPAR_VERSION);
    rc |= attr_str(root, "created", created);
    H5Gclose(root);
    if (rc < 0) return -1;
    if (write_config(f, c->config_json) < 0) return -1;
    if (write_table(f, "/model", c->params, c->params->data) < 0) return -1;

    if (c->opt) {
        hid_t g = H5Gcreate2(f, "/optimizer", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (g < 0) return -1;
        float betas[2] = {c->opt->beta1, c->opt->beta2};
        long long t = c->opt->t;
        rc = attr_str(g, "name", c->opt->kind == OPT_ADAM ? "adam" : "sgd");
        rc |= attr_num(g, "lr", H5T_NATIVE_FLOAT, &c->opt->lr, 1);
        rc |= attr_num(g, "betas", H5T_NATIVE_FLOAT, betas, 2);
        rc |= attr_num(g, "eps", H5T_NATIVE_FLOAT, &c->opt->eps, 1);
        rc |= attr_num(g, "t", H5T_NATIVE_LLONG, &t, 1);
        H5Gclose(g);
        if (rc < 0) return -1;
        if (c->opt->kind == OPT_ADAM && (write_table(f, "/optimizer/m", c->params, c->opt->m) < 0 ||
                                         write_table(f, "/optimizer/v", c->params, c->opt->v) < 0))
            return -1;
    }

    hid_t g = H5Gcreate2(f, "/train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) return -1;
    long long step = c->train.step, epoch = c->train.epoch, bie = c->train.batch_in_epoch;
    unsigned long long seed = c->train.seed;
    rc = attr_num(g, "step", H5T_NATIVE_LLONG, &step, 1);
    rc |= attr_num(g, "epoch", H5T_NATIVE_LLONG, &epoch, 1);
    rc |= attr_num(g, "batch_in_epoch", H5T_NATIVE_LLONG, &bie, 1);
    rc |= attr_num(g, "seed", H5T_NATIVE_ULLONG, &seed, 1);
    rc |= attr_num(g, "global_batch", H5T_NATIVE_INT, &c->train.global_batch, 1);
    rc |= attr_num(g, "world_size", H5T_NATIVE_INT, &c->train.world_size, 1);
    const struct {
        const char *name;
        double v;
    } figs[] = {{"train_loss", c->train.train_loss},
                {"valid_loss", c->train.valid_loss},
                {"valid_bleu", c->train.valid_bleu},
                {"best", c->train.best}};
    for (size_t i = 0; i < sizeof figs / sizeof *figs; i++)
        if (isfinite(figs[i].v)) rc |= attr_num(g, figs[i].name, H5T_NATIVE_DOUBLE, &figs[i].v, 1);
    long long since = c->train.since_best;
    if (isfinite(c->train.best)) rc |= attr_num(g, "since_best", H5T_NATIVE_LLONG, &since, 1);
    H5Gclose(g);
    if (rc < 0) return -1;
    hsize_t sd[3] = {(hsize_t)c->state_dims[0], (hsize_t)c->state_dims[1],
                     (hsize_t)c->state_dims[2]};
    if (c->state_h && write_floats(f, "/train/state_h", c->state_h, 3, sd) < 0) return -1;
    if (c->state_c && write_floats(f, "/train/state_c", c->state_c, 3, sd) < 0) return -1;

    if (c->vocab_src) {
        if (write_strings(f, "/vocab/src", c->vocab_src, c->vocab_src_n) < 0) return -1;
        if (write_strings(f, "/vocab/tgt", c->vocab_tgt, c->vocab_tgt_n) < 0) return -1;
    } else if (c->vocab_tgt) {
        if (write_strings(f, "/vocab/tokens", c->vocab_tgt, c->vocab_tgt_n) < 0) return -1;
    }
    return 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* This host's name, for temporary file names ("localhost" if unknown). */
static const char *host_name(void)
{
    static char h[128];
    if (!h[0] && (gethostname(h, sizeof h - 1) != 0 || !h[0])) snprintf(h, sizeof h, "localhost");
    return h;
}

/* Writes all of buf to a new file at path and fsyncs it; 0 or -1 (errno set). */
static int write_file(const char *path, const void *buf, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            close(fd);
            errno = e;
            return -1;
        }
        p += w, n -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return close(fd);
}

static size_t count_nonfinite(const float *x, size_t n);

/* The first buffer of c's, in file order, holding a value that is not
 * finite: 0 when there is none, else 1 with its name and count in err. */
static int nonfinite_content(const char *path, const ckpt_content *c, char *err, size_t errlen)
{
    const param_table *pt = c->params;
    static const char *const group[3] = {"/model", "/optimizer/m", "/optimizer/v"};
    const float *buf[3] = {pt->data, c->opt ? c->opt->m : NULL, c->opt ? c->opt->v : NULL};
    for (int g = 0; g < 3; g++)
        for (int i = 0; buf[g] && i < pt->n; i++) {
            const size_t k = count_nonfinite(buf[g] + pt->t[i].offset, pt->t[i].size);
            if (k == 0) continue;
            char ds[PARAM_NAME_MAX + 16];
            dataset_path(ds, sizeof ds, group[g], pt->t[i].name);
            seterr(err, errlen, CKPT_ENONFINITE,
                   "%s: not written: %s holds %zu value%s that %s not finite (NaN or "
                   "infinite); earlier checkpoints are untouched",
                   path, ds, k, k > 1 ? "s" : "", k > 1 ? "are" : "is");
            return 1;
        }
    const size_t ns = (size_t)c->state_dims[0] * c->state_dims[1] * c->state_dims[2];
    const float *st[2] = {c->state_h, c->state_c};
    for (int k = 0; k < 2; k++)
        if (st[k] && count_nonfinite(st[k], ns) > 0) {
            seterr(err, errlen, CKPT_ENONFINITE,
                   "%s: not written: /train/%s holds values that are not finite; earlier "
                   "checkpoints are untouched",
                   path, k ? "state_c" : "state_h");
            return 1;
        }
    return 0;
}

int ckpt_save(const char *path, const ckpt_content *c, char *err, size_t errlen)
{
    quiet_hdf5();
    if (!c->config_json || !c->params || !c->params->data)
        return seterr(err, errlen, CKPT_EFORMAT, "%s: nothing to save", path);
    if (nonfinite_content(path, c, err, errlen)) return CKPT_ENONFINITE;
    /* HDF5 builds the file in memory (the core driver, no backing store); the
     * bytes are then written here. So every I/O error (disk full, no
     * permission, quota) is seqpar's to see and handle, and HDF5 never holds
     * a half-closed file, which it could not release cleanly. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)4 << 20, 0) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        return seterr(err, errlen, CKPT_ENOMEM, "%s: cannot set up HDF5", path);
    }
    char tmp[1300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%s.%ld", path, host_name(), (long)getpid());
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl); /* in memory only */
    H5Pclose(fapl);
    if (f < 0) return seterr(err, errlen, CKPT_ENOMEM, "%s: HDF5 cannot build the file", path);
    herr_t rc = write_all(f, c);
    if (rc >= 0) rc = H5Fflush(f, H5F_SCOPE_GLOBAL);
    ssize_t size = rc >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    void *image = size > 0 ? malloc((size_t)size) : NULL;
    if (image && H5Fget_file_image(f, image, (size_t)size) != size) rc = -1;
    if (H5Fclose(f) < 0) rc = -1;
    if (rc < 0 || !image) {
        free(image);
        return seterr(err, errlen, rc < 0 || size < 0 ? CKPT_EFORMAT : CKPT_ENOMEM,
                      "%s: %s; earlier checkpoints are untouched", path,
                      rc < 0 || size < 0 ? "HDF5 could not build the file" : "out of memory");
    }
    if (write_file(tmp, image, (size_t)size) != 0) {
        int e = errno;
        free(image);
        unlink(tmp);
        return seterr(err, errlen, CKPT_EIO,
                      "%s: write failed (%s); earlier checkpoints are "
                      "untouched",
                      path, strerror(e));
    }
    free(image);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return seterr(err, errlen, CKPT_EIO,
                      "%s: cannot commit (%s); earlier checkpoints are "
                      "untouched",
                      path, strerror(e));
    }
    char dirbuf[1100];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    fsync_dir(dirname(dirbuf)); /* best effort: some filesystems refuse */
    return CKPT_OK;
}

/* ------------------------------------------------------------ directories */

int ckpt_clean_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    const char *host = host_name();
    const size_t hl = strlen(host);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* ckpt-<step>.h5.tmp.<host>.<pid>: only this host's writers can be
         * asked whether they still run (another node's, or another
         * container's, are left alone) */
        long step;
        int at = 0;
        if (sscanf(e->d_name, "ckpt-%ld.h5.tmp.%n", &step, &at) != 1 || at == 0) continue;
        const char *rest = e->d_name + at;
        if (strncmp(rest, host, hl) != 0 || rest[hl] != '.') continue;
        char *end;
        long pid = strtol(rest + hl + 1, &end, 10);
        if (*end || pid <= 0 || end == rest + hl + 1) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its writer still runs */
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        n += unlink(p) == 0;
    }
    closedir(d);
    return n;
}

void ckpt_path(char *out, size_t n, const char *dir, long step)
{
    snprintf(out, n, "%s/ckpt-%08ld.h5", dir, step);
}

static int cmp_desc(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Whether name is a checkpoint's name exactly as ckpt_path makes it
 * (ckpt-%08ld.h5), and its step: what a directory's list and the pruning
 * of old checkpoints may act on. Anything else (ckpt-5.txt, a copy named
 * ckpt-00000005-copy.h5, ckpt-5.h5, temporary .h5.tmp.HOST.PID files) is
 * not one: the pruning rebuilds the name from the step and unlinks it. */
static int checkpoint_name(const char *name, long *step)
{
    if (strncmp(name, "ckpt-", 5) != 0) return 0;
    const char *p = name + 5;
    long s = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 18) return 0; /* beyond any step a run reaches (and a long) */
        s = s * 10 + (*p - '0');
    }
    if (digits == 0 || strcmp(p, ".h5") != 0) return 0;
    char canon[40];
    snprintf(canon, sizeof canon, "ckpt-%08ld.h5", s);
    if (strcmp(canon, name) != 0) return 0;
    *step = s;
    return 1;
}

/* The steps of every checkpoint of dir, newest first, in *out (malloc'd,
 * NULL when there is none); how many, or -1 when dir cannot be read or
 * memory runs out. All of them: a listing that stopped at a caller's
 * capacity would hold whichever the directory's order gave first, not the
 * newest. */
static int list_steps(const char *dir, long **out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return -1;
    long *steps = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        if (!checkpoint_name(e->d_name, &s)) continue;
        /* a regular file (or a link to one): a FIFO would block its reader */
        char p[1200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            const int ncap = cap ? 2 * cap : 64; /* cap below 2^28: no overflow */
            long *grown = cap < (1 << 28) ? realloc(steps, (size_t)ncap * sizeof *steps) : NULL;
            if (!grown) {
                free(steps);
                closedir(d);
                return -1;
            }
            steps = grown, cap = ncap;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (n > 0) qsort(steps, (size_t)n, sizeof *steps, cmp_desc);
    *out = steps;
    return n;
}

int ckpt_list_dir(const char *dir, long *steps, int max)
{
    long *all;
    const int n = list_steps(dir, &all);
    if (n < 0) return -1;
    const int k = n < max ? n : max > 0 ? max : 0;
    if (k > 0) memcpy(steps, all, (size_t)k * sizeof *steps);
    free(all);
    return k;
}

int ckpt_retain(const char *dir, int keep, long upto, int *later)
{
    if (later) *later = 0;
    long *steps;
    const int n = list_steps(dir, &steps);
    if (n < 0) return -1;
    int kept = 0, removed = 0, past = 0;
    int good = -1, checked = 0; /* the newest that verifies; steps[0..checked) tried */
    for (int i = 0; i < n; i++) {
        /* a checkpoint past upto belongs to a run this one did not continue
         * (it resumed from an earlier step): not this run's to prune */
        if (steps[i] > upto) {
            past++;
            continue;
        }
        if (kept++ < keep) continue;
        /* about to remove one: only once the newest that verifies is known,
         * and never that one */
        for (; good < 0 && checked <= i; checked++) {
            char q[1200], why[512];
            ckpt_path(q, sizeof q, dir, steps[checked]);
            if (steps[checked] <= upto && ckpt_verify(q, why, sizeof why) == CKPT_OK)
                good = checked;
        }
        if (good < 0 || good == i) continue;
        char p[1200];
        ckpt_path(p, sizeof p, dir, steps[i]);
        removed += unlink(p) == 0;
    }
    free(steps);
    if (later) *later = past;
    return removed;
}

/* ----------------------------------------------------------------- reading */

static int read_attr_str(hid_t obj, const char *name, char *out, size_t n)
{
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t ft = H5Aget_type(a);
    int rc = -1;
    if (H5Tget_class(ft) == H5T_STRING && !H5Tis_variable_str(ft)) {
        size_t sz = H5Tget_size(ft);
        char *buf = calloc(sz + 1, 1);
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, sz + 1);
        H5Tset_cset(mt, H5Tget_cset(ft)); /* HDF5 converts no character sets */
        if (buf && H5Aread(a, mt, buf) >= 0) {
            snprintf(out, n, "%s", buf);
            rc = 0;
        }
        H5Tclose(mt);
        free(buf);
    }
    H5Tclose(ft);
    H5Aclose(a);
    return rc;
}

static int read_attr_num(hid_t obj, const char *name, hid_t memtype, void *out, hsize_t n)
{
    if (H5Aexists(obj, name) <= 0) return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t sp = H5Aget_space(a);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    int rc = (np == (hssize_t)n && H5Aread(a, memtype, out) >= 0) ? 0 : -1;
    H5Sclose(sp);
    H5Aclose(a);
    return rc;
}

int ckpt_open(ckpt_file **out, const char *path, char *err, size_t errlen)
{
    quiet_hdf5();
    *out = NULL;
    if (access(path, R_OK) != 0)
        return seterr(err, errlen, CKPT_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0) return seterr(err, errlen, CKPT_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) /* a FIFO would block, a directory is no file */
        return seterr(err, errlen, CKPT_EIO, "%s: not a regular file", path);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return seterr(err, errlen, CKPT_EFORMAT,
                      "%s: not an HDF5 file (empty, truncated or "
                      "not a checkpoint)",
                      path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) return seterr(err, errlen, CKPT_EFORMAT, "%s: cannot open as HDF5 (corrupt?)", path);
    char fmt[64] = "";
    int ver = 0;
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    int ok = root >= 0 && read_attr_str(root, "format", fmt, sizeof fmt) == 0 &&
             strcmp(fmt, CKPT_FORMAT) == 0 &&
             read_attr_num(root, "format_version", H5T_NATIVE_INT, &ver, 1) == 0;
    if (root >= 0) H5Gclose(root);
    if (!ok) {
        H5Fclose(f);
        return seterr(err, errlen, CKPT_EFORMAT,
                      "%s: not a seqpar checkpoint (no format "
                      "attribute \"%s\")",
                      path, CKPT_FORMAT);
    }
    if (ver < 1 || ver > CKPT_FORMAT_VERSION) {
        H5Fclose(f);
        return seterr(err, errlen, CKPT_EFORMAT,
                      "%s: format_version %d is not supported "
                      "(this seqpar reads 1..%d)",
                      path, ver, CKPT_FORMAT_VERSION);
    }
    ckpt_file *cf = calloc(1, sizeof *cf);
    if (!cf) {
        H5Fclose(f);
        return seterr(err, errlen, CKPT_ENOMEM, "%s: out of memory", path);
    }
    cf->fid = f;
    snprintf(cf->path, sizeof cf->path, "%s", path);
    *out = cf;
    return CKPT_OK;
}

void ckpt_close(ckpt_file *f)
{
    if (!f) return;
    H5Fclose(f->fid);
    free(f);
}

/* Reads a string dataset of n elements (fixed- or variable-length) into
 * n malloc'd strings. */
static int read_string_dataset(hid_t ds, hssize_t n, char **out)
{
    hid_t ft = H5Dget_type(ds);
    int rc = -1;
    if (H5Tget_class(ft) != H5T_STRING) goto done;
    if (H5Tis_variable_str(ft) > 0) {
        char **raw = calloc((size_t)n, sizeof *raw);
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, H5T_VARIABLE);
        H5Tset_cset(t, H5Tget_cset(ft));
        if (raw && H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw) >= 0) {
            rc = 0;
            for (hssize_t i = 0; i < n; i++) {
                out[i] = strdup(raw[i] ? raw[i] : "");
                if (!out[i]) rc = -1;
            }
            hid_t sp = H5Dget_space(ds);
            H5Dvlen_reclaim(t, sp, H5P_DEFAULT, raw);
            H5Sclose(sp);
        }
        H5Tclose(t);
        free(raw);
    } else {
        size_t w = H5Tget_size(ft);
        char *buf = w > 0 && w < (1u << 24) ? calloc((size_t)n, w + 1) : NULL;
        hid_t t = H5Tcopy(H5T_C_S1);
        H5Tset_size(t, w);
        H5Tset_strpad(t, H5T_STR_NULLPAD);
        H5Tset_cset(t, H5Tget_cset(ft));
        if (buf && H5Dread(ds, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0) {
            rc = 0;
            for (hssize_t i = 0; i < n; i++) {
                out[i] = strndup(buf + (size_t)i * w, w);
                if (!out[i]) rc = -1;
            }
        }
        H5Tclose(t);
        free(buf);
    }
done:
    H5Tclose(ft);
    return rc;
}

int ckpt_read_config(ckpt_file *f, char **json, char *err, size_t errlen)
{
    *json = NULL;
    if (H5Lexists(f->fid, "/config", H5P_DEFAULT) <= 0)
        return seterr(err, errlen, CKPT_EFORMAT, "%s: missing /config", f->path);
    hid_t ds = H5Dopen2(f->fid, "/config", H5P_DEFAULT);
    int rc = CKPT_EFORMAT;
    if (ds >= 0) {
        hid_t sp = H5Dget_space(ds);
        int scalar = H5Sget_simple_extent_type(sp) == H5S_SCALAR;
        H5Sclose(sp);
        if (scalar && read_string_dataset(ds, 1, json) == 0) rc = CKPT_OK;
        H5Dclose(ds);
    }
    if (rc != CKPT_OK) return seterr(err, errlen, rc, "%s: cannot read /config", f->path);
    return CKPT_OK;
}

void ckpt_strings_free(ckpt_strings *v)
{
    for (int i = 0; i < v->n; i++) free(v->s[i]);
    free(v->s);
    v->s = NULL;
    v->n = 0;
}

int ckpt_read_vocab(ckpt_file *f, const char *which, ckpt_strings *v, char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/vocab/%s", which);
    v->n = 0;
    v->s = NULL;
    if (H5Lexists(f->fid, "/vocab", H5P_DEFAULT) <= 0 || H5Lexists(f->fid, path, H5P_DEFAULT) <= 0)
        return seterr(err, errlen, CKPT_EFORMAT, "%s: missing %s", f->path, path);
    hid_t ds = H5Dopen2(f->fid, path, H5P_DEFAULT);
    if (ds < 0) return seterr(err, errlen, CKPT_EFORMAT, "%s: cannot open %s", f->path, path);
    hid_t sp = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int nd = H5Sget_simple_extent_ndims(sp);
    H5Sclose(sp);
    int rc = CKPT_EFORMAT;
    if (nd == 1 && n > 0 && n < (1 << 26)) {
        v->s = calloc((size_t)n, sizeof *v->s);
        if (v->s) {
            v->n = (int)n;
            if (read_string_dataset(ds, n, v->s) == 0) rc = CKPT_OK;
        }
    }
    H5Dclose(ds);
    if (rc != CKPT_OK) {
        ckpt_strings_free(v);
        return seterr(err, errlen, rc, "%s: cannot read %s (corrupt or empty)", f->path, path);
    }
    return CKPT_OK;
}

/* Checks the header facts HDF5 trusts when it reads a dataset: a corrupt
 * element size or chunk shape would make H5Dread write out of bounds. Returns
 * NULL when the dataset is sane, else what is wrong. `want_float` asks for
 * IEEE float32 elements; `want_checksum` for the Fletcher-32 filter on a
 * chunked layout. */
static const char *dataset_problem(hid_t ds, int want_float, int want_checksum)
{
    const char *why = NULL;
    hid_t t = H5Dget_type(ds), sp = H5Dget_space(ds), dcpl = H5Dget_create_plist(ds);
    if (t < 0 || sp < 0 || dcpl < 0) {
        why = "unreadable header";
        goto out;
    }
    H5T_class_t cls = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (want_float && (cls != H5T_FLOAT || sz != 4)) {
        why = "not float32 data";
        goto out;
    }
    if (cls == H5T_FLOAT && sz != 4 && sz != 8) {
        why = "a float of impossible size";
        goto out;
    }
    if (cls == H5T_STRING && H5Tis_variable_str(t) <= 0 && (sz == 0 || sz > (1u << 20))) {
        why = "a string of impossible size";
        goto out;
    }
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[H5S_MAX_RANK];
    if (nd < 0 || nd > H5S_MAX_RANK || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        why = "unreadable shape";
        goto out;
    }
    /* at most 2^32 bytes per dataset: more is no checkpoint of ours */
    unsigned long long bytes = sz;
    for (int i = 0; i < nd; i++) {
        if (dims[i] > 0 && bytes > (1ULL << 32) / dims[i]) {
            why = "implausibly large";
            goto out;
        }
        bytes *= dims[i];
    }
    if (H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t chunk[H5S_MAX_RANK];
        if (H5Pget_chunk(dcpl, nd, chunk) != nd) {
            why = "unreadable chunk shape";
            goto out;
        }
        for (int i = 0; i < nd; i++)
            if (chunk[i] == 0 || chunk[i] > dims[i]) {
                why = "chunk shape larger than the dataset (corrupt header)";
                goto out;
            }
        if (want_checksum) {
            unsigned flags;
            size_t ncd = 0;
            char name[32];
            if (H5Pget_filter_by_id2(dcpl, H5Z_FILTER_FLETCHER32, &flags, &ncd, NULL, sizeof name,
                                     name, NULL) < 0)
                why = "no Fletcher-32 checksum";
        }
    } else if (want_checksum && nd > 0) {
        why = "not chunked (no checksum)";
    }
out:
    if (t >= 0) H5Tclose(t);
    if (sp >= 0) H5Sclose(sp);
    if (dcpl >= 0) H5Pclose(dcpl);
    return why;
}

/* How many of n floats are NaN or infinite: a checkpoint holds none (a run
 * stops at a non-finite loss), and Fletcher-32 misses some flips (0x0000
 * and 0xFFFF sum alike) that make them. */
static size_t count_nonfinite(const float *x, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += !isfinite(x[i]);
    return k;
}

/* Opens the dataset at path: CKPT_EMISMATCH when there is none. */
static int open_dataset(ckpt_file *f, const char *path, hid_t *ds, char *err, size_t errlen)
{
    /* H5Lexists fails (< 0) rather than says no when an intermediate group is
     * missing: both mean the dataset is not there */
    if (H5Lexists(f->fid, path, H5P_DEFAULT) <= 0)
        return seterr(err, errlen, CKPT_EMISMATCH, "%s: missing dataset %s", f->path, path);
    *ds = H5Dopen2(f->fid, path, H5P_DEFAULT);
    if (*ds < 0) return seterr(err, errlen, CKPT_EFORMAT, "%s: cannot open %s", f->path, path);
    return CKPT_OK;
}

/* A dataset's rank (< 0: unreadable), and its first 8 dimensions in d. */
static int dataset_dims(hid_t ds, hsize_t d[8])
{
    hid_t sp = H5Dget_space(ds);
    const int nd = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    hsize_t all[H5S_MAX_RANK];
    if (nd > 0 && nd <= H5S_MAX_RANK && H5Sget_simple_extent_dims(sp, all, NULL) >= 0)
        for (int i = 0; i < nd && i < 8; i++) d[i] = all[i];
    if (sp >= 0) H5Sclose(sp);
    return nd;
}

/* Reads a float dataset whose shape must be exactly dims[0..ndim). */
static int read_floats(ckpt_file *f, const char *path, float *out, int ndim, const hsize_t *dims,
                       char *err, size_t errlen)
{
    hid_t ds = -1;
    int rc0 = open_dataset(f, path, &ds, err, errlen);
    if (rc0 != CKPT_OK) return rc0;
    const char *bad = dataset_problem(ds, 1, 0);
    if (bad) {
        H5Dclose(ds);
        return seterr(err, errlen, CKPT_EFORMAT, "%s: %s: %s", f->path, path, bad);
    }
    hsize_t fd[8] = {0};
    const int nd = dataset_dims(ds, fd); /* also for the message */
    int shape_ok = nd == ndim && nd <= 8;
    for (int i = 0; shape_ok && i < nd; i++) shape_ok &= fd[i] == dims[i];
    if (!shape_ok) {
        H5Dclose(ds);
        char want[64] = "", got[64] = "";
        for (int i = 0; i < ndim; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%llu", i ? "x" : "",
                     (unsigned long long)dims[i]);
        for (int i = 0; i < nd && i < 8; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%llu", i ? "x" : "",
                     (unsigned long long)fd[i]);
        return seterr(err, errlen, CKPT_EMISMATCH, "%s: %s has shape %s, the model needs %s",
                      f->path, path, nd > 0 ? got : "(scalar)", want);
    }
    herr_t rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(ds);
    if (rc < 0)
        return seterr(err, errlen, CKPT_EFORMAT,
                      "%s: %s fails its checksum or cannot be read "
                      "(corrupt file)",
                      f->path, path);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    const size_t bad_values = count_nonfinite(out, n);
    if (bad_values)
        return seterr(err, errlen, CKPT_EFORMAT,
                      "%s: %s holds %zu NaN or infinite values (corrupt?)", f->path, path,
                      bad_values);
    return CKPT_OK;
}

/* Counts the datasets below a group (recursively), and names the first one
 * that is no tensor of the table. */
typedef struct {
    const param_table *pt;
    int count;
    char extra[256]; /* relative to the group, "" when every one is a tensor */
} count_ctx;

static herr_t count_cb(hid_t obj, const char *name, const H5O_info_t *info, void *op)
{
    (void)obj;
    count_ctx *c = op;
    if (info->type != H5O_TYPE_DATASET) return 0;
    c->count++;
    if (c->extra[0]) return 0;
    char key[256]; /* "decoder/dense/bias" → "decoder.dense.bias" */
    snprintf(key, sizeof key, "%s", name);
    for (char *p = key; *p; p++)
        if (*p == '/') *p = '.';
    if (param_table_find(c->pt, key) < 0) snprintf(c->extra, sizeof c->extra, "%s", name);
    return 0;
}

static int read_table(ckpt_file *f, const char *group, const param_table *pt, float *buf, char *err,
                      size_t errlen)
{
    char path[256];
    for (int i = 0; i < pt->n; i++) {
        const param_tensor *t = &pt->t[i];
        hsize_t dims[3] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1], 1};
        dataset_path(path, sizeof path, group, t->name);
        int rc = read_floats(f, path, buf + t->offset, t->ndim, dims, err, errlen);
        if (rc != CKPT_OK) return rc;
    }
    count_ctx c = {pt, 0, ""};
    hid_t g = H5Gopen2(f->fid, group, H5P_DEFAULT);
    if (g >= 0) {
        H5Ovisit(g, H5_INDEX_NAME, H5_ITER_NATIVE, count_cb, &c);
        H5Gclose(g);
    }
    if (c.count != pt->n || c.extra[0]) {
        if (c.extra[0])
            return seterr(err, errlen, CKPT_EMISMATCH,
                          "%s: %s/%s is not a tensor of the model (%s holds %d tensors, the "
                          "model has %d)",
                          f->path, group, c.extra, group, c.count, pt->n);
        return seterr(err, errlen, CKPT_EMISMATCH, "%s: %s holds %d tensors, the model has %d",
                      f->path, group, c.count, pt->n);
    }
    return CKPT_OK;
}

int ckpt_dataset_shape(ckpt_file *f, const char *path, unsigned long long *dims, int max, int *nd,
                       char *err, size_t errlen)
{
    *nd = 0;
    hid_t ds = -1;
    int rc = open_dataset(f, path, &ds, err, errlen);
    if (rc != CKPT_OK) return rc;
    hsize_t d[8] = {0};
    const int n = dataset_dims(ds, d);
    H5Dclose(ds);
    if (n < 0 || n > 8)
        return seterr(err, errlen, CKPT_EFORMAT, "%s: %s has no usable shape", f->path, path);
    *nd = n;
    for (int i = 0; i < n && i < max; i++) dims[i] = (unsigned long long)d[i];
    return CKPT_OK;
}

int ckpt_read_params(ckpt_file *f, param_table *pt, char *err, size_t errlen)
{
    if (H5Lexists(f->fid, "/model", H5P_DEFAULT) <= 0)
        return seterr(err, errlen, CKPT_EFORMAT, "%s: missing group /model", f->path);
    return read_table(f, "/model", pt, pt->data, err, errlen);
}

int ckpt_read_optimizer(ckpt_file *f, const param_table *pt, optimizer *opt, char *err,
                        size_t errlen)
{
    if (H5Lexists(f->fid, "/optimizer", H5P_DEFAULT) <= 0)
        return seterr(err, errlen, CKPT_EFORMAT, "%s: missing group /optimizer", f->path);
    hid_t g = H5Gopen2(f->fid, "/optimizer", H5P_DEFAULT);
    char name[16] = "";
    long long t = 0;
    int ok = g >= 0 && read_attr_str(g, "name", name, sizeof name) == 0 &&
             read_attr_num(g, "t", H5T_NATIVE_LLONG, &t, 1) == 0;
    if (g >= 0) H5Gclose(g);
    if (!ok) return seterr(err, errlen, CKPT_EFORMAT, "%s: /optimizer lacks name or t", f->path);
    if (t < 0 || t > CKPT_MAX_COUNT)
        return seterr(err, errlen, CKPT_EFORMAT,
                      "%s: /optimizer t = %lld is not an update count (0..2^50; corrupt?)", f->path,
                      t);
    const char *want = opt->kind == OPT_ADAM ? "adam" : "sgd";
    if (strcmp(name, want) != 0)
        return seterr(err, errlen, CKPT_EMISMATCH, "%s: optimizer is %s, the run uses %s", f->path,
                      name, want);
    if (opt->kind == OPT_ADAM) {
        int rc = read_table(f, "/optimizer/m", pt, opt->m, err, errlen);
        if (rc == CKPT_OK) rc = read_table(f, "/optimizer/v", pt, opt->v, err, errlen);
        if (rc != CKPT_OK) return rc;
    }
    opt->t = (long)t;
    return CKPT_OK;
}

int ckpt_read_train(ckpt_file *f, ckpt_train *tr, char *err, size_t errlen)
{
    if (H5Lexists(f->fid, "/train", H5P_DEFAULT) <= 0)
        return seterr(err, errlen, CKPT_EFORMAT, "%s: missing group /train", f->path);
    hid_t g = H5Gopen2(f->fid, "/train", H5P_DEFAULT);
    long long step = 0, epoch = 0, bie = 0;
    unsigned long long seed = 0;
    int ok = g >= 0 && read_attr_num(g, "step", H5T_NATIVE_LLONG, &step, 1) == 0 &&
             read_attr_num(g, "epoch", H5T_NATIVE_LLONG, &epoch, 1) == 0 &&
             read_attr_num(g, "batch_in_epoch", H5T_NATIVE_LLONG, &bie, 1) == 0 &&
             read_attr_num(g, "seed", H5T_NATIVE_ULLONG, &seed, 1) == 0 &&
             read_attr_num(g, "global_batch", H5T_NATIVE_INT, &tr->global_batch, 1) == 0 &&
             read_attr_num(g, "world_size", H5T_NATIVE_INT, &tr->world_size, 1) == 0;
    /* optional figures: absent means not measured */
    double *figs[] = {&tr->train_loss, &tr->valid_loss, &tr->valid_bleu, &tr->best};
    const char *names[] = {"train_loss", "valid_loss", "valid_bleu", "best"};
    long long since = 0;
    for (int i = 0; i < 4; i++) {
        *figs[i] = NAN;
        if (ok && H5Aexists(g, names[i]) > 0 &&
            read_attr_num(g, names[i], H5T_NATIVE_DOUBLE, figs[i], 1) != 0)
            ok = 0;
    }
    if (ok && H5Aexists(g, "since_best") > 0 &&
        read_attr_num(g, "since_best", H5T_NATIVE_LLONG, &since, 1) != 0)
        ok = 0;
    tr->since_best = (long)since;
    if (g >= 0) H5Gclose(g);
    if (!ok || step < 0 || epoch < 0 || bie < 0)
        return seterr(err, errlen, CKPT_EFORMAT, "%s: /train attributes missing or invalid",
                      f->path);
    /* counters a run can have reached: far below where step + 1 would
     * overflow, and no more batches into an epoch than steps taken */
    const char *what = step > CKPT_MAX_COUNT    ? "step"
                       : epoch > CKPT_MAX_COUNT ? "epoch"
                       : bie > step             ? "batch_in_epoch"
                       : tr->world_size < 1     ? "world_size"
                       : tr->global_batch < 1   ? "global_batch"
                                                : NULL;
    if (what)
        return seterr(err, errlen, CKPT_EFORMAT,
                      "%s: /train: step %lld, epoch %lld, batch_in_epoch %lld, world_size %d, "
                      "global_batch %d: %s is impossible (corrupt?)",
                      f->path, step, epoch, bie, tr->world_size, tr->global_batch, what);
    /* and the optimizer's update count, when there is one: at most one a step */
    if (H5Lexists(f->fid, "/optimizer", H5P_DEFAULT) > 0) {
        hid_t og = H5Gopen2(f->fid, "/optimizer", H5P_DEFAULT);
        long long t = 0;
        int tok = og >= 0 && read_attr_num(og, "t", H5T_NATIVE_LLONG, &t, 1) == 0;
        if (og >= 0) H5Gclose(og);
        if (!tok || t < 0 || t > step)
            return seterr(err, errlen, CKPT_EFORMAT,
                          "%s: /optimizer t = %lld for step %lld: at most one update a step "
                          "(corrupt?)",
                          f->path, t, step);
    }
    tr->step = (long)step, tr->epoch = (long)epoch, tr->batch_in_epoch = (long)bie;
    tr->seed = seed;
    return CKPT_OK;
}

int ckpt_read_state(ckpt_file *f, const char *name, float *buf, const int dims[3], int *found,
                    char *err, size_t errlen)
{
    char path[64];
    snprintf(path, sizeof path, "/train/%s", name);
    *found = 0;
    if (H5Lexists(f->fid, "/train", H5P_DEFAULT) <= 0 || H5Lexists(f->fid, path, H5P_DEFAULT) <= 0)
        return CKPT_OK;
    hsize_t d[3] = {(hsize_t)dims[0], (hsize_t)dims[1], (hsize_t)dims[2]};
    int rc = read_floats(f, path, buf, 3, d, err, errlen);
    if (rc == CKPT_OK) *found = 1;
    return rc;
}

/* Reads every dataset below the root (checksums are checked on read). */
typedef struct {
    ckpt_file *f;
    int bad;
    char what[256];
} verify_ctx;

static herr_t verify_cb(hid_t obj, const char *name, const H5O_info_t *info, void *op)
{
    verify_ctx *v = op;
    if (info->type != H5O_TYPE_DATASET || v->bad) return 0;
    hid_t ds = H5Dopen2(obj, name, H5P_DEFAULT);
    if (ds < 0) {
        v->bad = 1;
        snprintf(v->what, sizeof v->what, "/%s cannot be opened", name);
        return 0;
    }
    /* /config is a scalar string (no chunks, no checksum) and /vocab/... are
     * strings; every other dataset is float32, as the readers take it (what
     * verifies must load: --resume auto trusts it), and every one but
     * /config carries its Fletcher-32 checksum */
    const int config = strcmp(name, "config") == 0;
    const int text = config || strncmp(name, "vocab/", 6) == 0;
    const char *why = dataset_problem(ds, !text, !config);
    if (!why && text) {
        hid_t t = H5Dget_type(ds);
        if (t < 0 || H5Tget_class(t) != H5T_STRING) why = "not strings";
        if (t >= 0) H5Tclose(t);
    }
    herr_t rc = why ? -1 : 0;
    if (!why) {
        hid_t t = H5Dget_type(ds);
        hid_t sp = H5Dget_space(ds);
        hssize_t n = H5Sget_simple_extent_npoints(sp);
        /* floats read as floats, to be checked finite (dataset_problem
         * allows float32 alone) */
        const int isf = H5Tget_class(t) == H5T_FLOAT;
        hid_t mt = isf ? H5T_NATIVE_FLOAT : t;
        size_t sz = isf ? sizeof(float) : H5Tget_size(t);
        /* dataset_problem bounded n * sz by 2^32 */
        void *buf = n > 0 ? malloc((size_t)n * (sz ? sz : 1)) : NULL;
        rc = -1;
        why = "fails its checksum or cannot be read";
        if (n == 0)
            rc = 0;
        else if (buf)
            rc = H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
        if (rc >= 0 && isf && buf && count_nonfinite(buf, (size_t)n) > 0) {
            rc = -1;
            why = "holds NaN or infinite values (corrupt?)";
        }
        if (rc >= 0 && H5Tis_variable_str(t) > 0 && buf) H5Dvlen_reclaim(t, sp, H5P_DEFAULT, buf);
        free(buf);
        H5Sclose(sp);
        H5Tclose(t);
    }
    H5Dclose(ds);
    if (rc < 0) {
        v->bad = 1;
        snprintf(v->what, sizeof v->what, "/%s: %s", name, why);
    }
    return 0;
}

int ckpt_verify(const char *path, char *err, size_t errlen)
{
    ckpt_file *f;
    int rc = ckpt_open(&f, path, err, errlen);
    if (rc != CKPT_OK) return rc;
    static const char *required[] = {"/config", "/model", "/train"};
    for (size_t i = 0; i < sizeof required / sizeof *required; i++)
        if (H5Lexists(f->fid, required[i], H5P_DEFAULT) <= 0) {
            ckpt_close(f);
            return seterr(err, errlen, CKPT_EFORMAT, "%s: incomplete: missing %s", path,
                          required[i]);
        }
    if (H5Lexists(f->fid, "/vocab", H5P_DEFAULT) <= 0) {
        ckpt_close(f);
        return seterr(err, errlen, CKPT_EFORMAT, "%s: incomplete: missing /vocab", path);
    }
    char *json = NULL;
    rc = ckpt_read_config(f, &json, err, errlen);
    cJSON *cfg = json ? cJSON_Parse(json) : NULL;
    int cfg_ok = cfg && cJSON_IsObject(cfg);
    cJSON_Delete(cfg);
    free(json);
    if (rc != CKPT_OK || !cfg_ok) {
        ckpt_close(f);
        return seterr(err, errlen, CKPT_EFORMAT, "%s: /config is not a JSON object (corrupt)",
                      path);
    }
    /* the position and the optimizer's update count, as a resume reads them */
    ckpt_train tr;
    rc = ckpt_read_train(f, &tr, err, errlen);
    if (rc != CKPT_OK) {
        ckpt_close(f);
        return rc;
    }
    /* a run directory's checkpoint is found, resumed and pruned by the step
     * its name gives: a renamed or copied file whose step differs would be
     * taken for another point of the run */
    const char *base = strrchr(path, '/');
    long named;
    if (checkpoint_name(base ? base + 1 : path, &named) && named != tr.step) {
        ckpt_close(f);
        return seterr(err, errlen, CKPT_EFORMAT,
                      "%s: holds step %ld but is named for step %ld (renamed or copied?)", path,
                      tr.step, named);
    }
    verify_ctx v = {f, 0, ""};
    hid_t root = H5Gopen2(f->fid, "/", H5P_DEFAULT);
    if (root < 0 || H5Ovisit(root, H5_INDEX_NAME, H5_ITER_NATIVE, verify_cb, &v) < 0) {
        v.bad = 1;
        snprintf(v.what, sizeof v.what, "object tree cannot be walked");
    }
    if (root >= 0) H5Gclose(root);
    ckpt_close(f);
    if (v.bad) return seterr(err, errlen, CKPT_EFORMAT, "%s: %s", path, v.what);
    return CKPT_OK;
}

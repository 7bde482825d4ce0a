/* Writing a checkpoint: in memory with HDF5, then atomically to disk. */
#include "checkpoints.h"
#include "ckpt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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

/* One chunked, Fletcher-32-checked dataset at `path` (intermediate groups
 * created), written from `data` in the memory type `mem`. */
static herr_t write_chunked(hid_t file, const char *path, hid_t ftype, hid_t mem, int ndim,
                            const hsize_t *dims, const hsize_t *chunk, const void *data)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, ndim, chunk);
    H5Pset_fletcher32(dcpl);
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = H5Dcreate2(file, path, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
    herr_t rc = ds < 0 ? -1 : H5Dwrite(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (ds >= 0) H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(dcpl);
    H5Pclose(lcpl);
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
    return write_chunked(file, path, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, ndim, dims, chunk, data);
}

static herr_t write_table(hid_t file, const char *group, const param_table *pt, const float *buf)
{
    char path[256];
    for (int i = 0; i < pt->n; i++) {
        const param_tensor *t = &pt->t[i];
        hsize_t dims[3] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1], 1};
        ckpti_dataset_path(path, sizeof path, group, t->name);
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
    herr_t rc = write_chunked(file, path, t, t, 1, &dims, &chunk, buf);
    H5Tclose(t);
    free(buf);
    return rc;
}

/* /config: a scalar UTF-8 string (a scalar cannot be chunked, so it has no
 * checksum filter: meta_sha256 covers it; readers check that it parses as
 * JSON). */
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
        rc = attr_str(g, "name", opt_name(c->opt->kind));
        rc |= attr_num(g, "lr", H5T_NATIVE_FLOAT, &c->opt->lr, 1);
        rc |= attr_num(g, "betas", H5T_NATIVE_FLOAT, betas, 2);
        rc |= attr_num(g, "eps", H5T_NATIVE_FLOAT, &c->opt->eps, 1);
        rc |= attr_num(g, "t", H5T_NATIVE_LLONG, &t, 1);
        if (c->opt->kind == OPT_ADAMW)
            rc |= attr_num(g, "weight_decay", H5T_NATIVE_FLOAT, &c->opt->weight_decay, 1);
        H5Gclose(g);
        if (rc < 0) return -1;
        if (opt_has_moments(c->opt->kind) &&
            (write_table(f, "/optimizer/m", c->params, c->opt->m) < 0 ||
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
    if (c->train.lr_plateau > 0) { /* --lr-schedule plateau's state (0 or NaN: none) */
        long long lsince = c->train.lr_since;
        rc |= attr_num(g, "lr_plateau", H5T_NATIVE_DOUBLE, &c->train.lr_plateau, 1);
        if (isfinite(c->train.lr_best))
            rc |= attr_num(g, "lr_best", H5T_NATIVE_DOUBLE, &c->train.lr_best, 1);
        rc |= attr_num(g, "lr_since", H5T_NATIVE_LLONG, &lsince, 1);
    }
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
    /* last: the checksum of the training state, computed from the file as
     * built (the readers' own code over the same bytes) */
    char hex[CKPT_META_HEX + 1], why[200];
    if (ckpti_meta_digest(f, hex, why, sizeof why) != 0) return -1;
    root = H5Gopen2(f, "/", H5P_DEFAULT);
    rc = root < 0 ? -1 : attr_str(root, CKPT_META_ATTR, hex);
    if (root >= 0) H5Gclose(root);
    return rc < 0 ? -1 : 0;
}

static int fsync_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
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

/* The first buffer of c's, in file order, holding a value that is not
 * finite: 0 when there is none, else 1 with its name and count in err. */
static int nonfinite_content(const char *path, const ckpt_content *c, char *err, size_t errlen)
{
    const param_table *pt = c->params;
    static const char *const group[3] = {"/model", "/optimizer/m", "/optimizer/v"};
    const float *buf[3] = {pt->data, c->opt ? c->opt->m : NULL, c->opt ? c->opt->v : NULL};
    for (int g = 0; g < 3; g++)
        for (int i = 0; buf[g] && i < pt->n; i++) {
            const size_t k = ckpti_count_nonfinite(buf[g] + pt->t[i].offset, pt->t[i].size);
            if (k == 0) continue;
            char ds[PARAM_NAME_MAX + 16];
            ckpti_dataset_path(ds, sizeof ds, group[g], pt->t[i].name);
            ckpti_seterr(err, errlen, CKPT_ENONFINITE,
                         "%s: not written: %s holds %zu value%s that %s not finite (NaN or "
                         "infinite); earlier checkpoints are untouched",
                         path, ds, k, k > 1 ? "s" : "", k > 1 ? "are" : "is");
            return 1;
        }
    const size_t ns = (size_t)c->state_dims[0] * c->state_dims[1] * c->state_dims[2];
    const float *st[2] = {c->state_h, c->state_c};
    for (int k = 0; k < 2; k++)
        if (st[k] && ckpti_count_nonfinite(st[k], ns) > 0) {
            ckpti_seterr(err, errlen, CKPT_ENONFINITE,
                         "%s: not written: /train/%s holds values that are not finite; earlier "
                         "checkpoints are untouched",
                         path, k ? "state_c" : "state_h");
            return 1;
        }
    return 0;
}

int ckpt_save(const char *path, const ckpt_content *c, char *err, size_t errlen)
{
    ckpti_quiet_hdf5();
    if (!c->config_json || !c->params || !c->params->data)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: nothing to save", path);
    if (nonfinite_content(path, c, err, errlen)) return CKPT_ENONFINITE;
    /* HDF5 builds the file in memory (the core driver, no backing store); the
     * bytes are then written here. So every I/O error (disk full, no
     * permission, quota) is seqpar's to see and handle, and HDF5 never holds
     * a half-closed file, which it could not release cleanly. */
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, (size_t)4 << 20, 0) < 0) {
        if (fapl >= 0) H5Pclose(fapl);
        return ckpti_seterr(err, errlen, CKPT_ENOMEM, "%s: cannot set up HDF5", path);
    }
    char tmp[1300], host[128];
    snprintf(tmp, sizeof tmp, "%s.tmp.%s.%ld", path, ckpti_host_name(host, sizeof host),
             (long)getpid());
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl); /* in memory only */
    H5Pclose(fapl);
    if (f < 0)
        return ckpti_seterr(err, errlen, CKPT_ENOMEM, "%s: HDF5 cannot build the file", path);
    herr_t rc = write_all(f, c);
    if (rc >= 0) rc = H5Fflush(f, H5F_SCOPE_GLOBAL);
    ssize_t size = rc >= 0 ? H5Fget_file_image(f, NULL, 0) : -1;
    void *image = size > 0 ? malloc((size_t)size) : NULL;
    if (image && H5Fget_file_image(f, image, (size_t)size) != size) rc = -1;
    if (H5Fclose(f) < 0) rc = -1;
    if (rc < 0 || !image) {
        free(image);
        return ckpti_seterr(err, errlen, rc < 0 || size < 0 ? CKPT_EFORMAT : CKPT_ENOMEM,
                            "%s: %s; earlier checkpoints are untouched", path,
                            rc < 0 || size < 0 ? "HDF5 could not build the file" : "out of memory");
    }
    if (write_file(tmp, image, (size_t)size) != 0) {
        int e = errno;
        free(image);
        unlink(tmp);
        return ckpti_seterr(err, errlen, CKPT_EIO,
                            "%s: write failed (%s); earlier checkpoints are "
                            "untouched",
                            path, strerror(e));
    }
    free(image);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return ckpti_seterr(err, errlen, CKPT_EIO,
                            "%s: cannot commit (%s); earlier checkpoints are "
                            "untouched",
                            path, strerror(e));
    }
    char dirbuf[1100];
    snprintf(dirbuf, sizeof dirbuf, "%s", path);
    fsync_dir(dirname(dirbuf)); /* best effort: some filesystems refuse */
    return CKPT_OK;
}

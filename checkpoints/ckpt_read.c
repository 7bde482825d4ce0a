/* Reading a checkpoint, with every value checked on the way in. */
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

/* meta_sha256 against what it covers: required from format 2 on (and
 * checked in a format-1 file that has one). *checked: whether it was. */
static int check_meta(hid_t f, const char *path, int ver, int *checked, char *err, size_t errlen)
{
    *checked = 0;
    const htri_t has = H5Aexists(f, CKPT_META_ATTR);
    if (has <= 0 && ver < 2) return CKPT_OK; /* format 1: none to check */
    char stored[CKPT_META_HEX + 8] = "", hex[CKPT_META_HEX + 1], why[200];
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    const int readable =
        root >= 0 && read_attr_str(root, CKPT_META_ATTR, stored, sizeof stored) == 0;
    if (root >= 0) H5Gclose(root);
    if (has <= 0 || !readable)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: format_version %d but %s %s: its training state cannot be "
                            "checked (damaged?)",
                            path, ver, CKPT_META_ATTR, has > 0 ? "is unreadable" : "is missing");
    /* what it covers and every checkpoint has: named when missing (as
     * ckpt_verify does) rather than taken for a mismatch */
    static const char *const covered[] = {"/config", "/train"};
    for (int i = 0; i < 2; i++)
        if (H5Lexists(f, covered[i], H5P_DEFAULT) <= 0)
            return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: incomplete: missing %s", path,
                                covered[i]);
    if (ckpti_meta_digest(f, hex, why, sizeof why) != 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: %s cannot be checked: %s (corrupt?)",
                            path, CKPT_META_ATTR, why);
    if (strcmp(stored, hex) != 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: %s does not match /config and the attributes of /, /train and "
                            "/optimizer: damaged metadata (a flipped bit or an edited value)",
                            path, CKPT_META_ATTR);
    *checked = 1;
    return CKPT_OK;
}

static herr_t walk_cb(hid_t obj, const char *name, const H5O_info_t *info, void *op)
{
    (void)obj, (void)name, (void)info, (void)op;
    return 0;
}

int ckpt_open(ckpt_file **out, const char *path, char *err, size_t errlen)
{
    ckpti_quiet_hdf5();
    *out = NULL;
    if (access(path, R_OK) != 0)
        return ckpti_seterr(err, errlen, CKPT_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (stat(path, &st) != 0)
        return ckpti_seterr(err, errlen, CKPT_EIO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) /* a FIFO would block, a directory is no file */
        return ckpti_seterr(err, errlen, CKPT_EIO, "%s: not a regular file", path);
    htri_t is = H5Fis_hdf5(path);
    if (is <= 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: not an HDF5 file (empty, truncated or "
                            "not a checkpoint)",
                            path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: cannot open as HDF5 (corrupt?)", path);
    char fmt[64] = "";
    int ver = 0;
    hid_t root = H5Gopen2(f, "/", H5P_DEFAULT);
    int ok = root >= 0 && read_attr_str(root, "format", fmt, sizeof fmt) == 0 &&
             strcmp(fmt, CKPT_FORMAT) == 0 &&
             read_attr_num(root, "format_version", H5T_NATIVE_INT, &ver, 1) == 0;
    if (root >= 0) H5Gclose(root);
    if (!ok) {
        H5Fclose(f);
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: not a seqpar checkpoint (no format "
                            "attribute \"%s\")",
                            path, CKPT_FORMAT);
    }
    if (ver < 1 || ver > CKPT_FORMAT_VERSION) {
        H5Fclose(f);
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: format_version %d is not supported "
                            "(this seqpar reads 1..%d)",
                            path, ver, CKPT_FORMAT_VERSION);
    }
    /* every object header read once, before any dataset is opened: a header
     * HDF5 would misread (a chunk index of zero width: a division by zero
     * in H5Dopen2, 1.10.8) fails this walk cleanly, as it fails verify's */
    hid_t top = H5Gopen2(f, "/", H5P_DEFAULT);
    const herr_t walk = top >= 0 ? H5Ovisit(top, H5_INDEX_NAME, H5_ITER_NATIVE, walk_cb, NULL) : -1;
    if (top >= 0) H5Gclose(top);
    if (walk < 0) {
        H5Fclose(f);
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: object tree cannot be walked (corrupt?)", path);
    }
    int checked = 0;
    const int rc = check_meta(f, path, ver, &checked, err, errlen);
    if (rc != CKPT_OK) {
        H5Fclose(f);
        return rc;
    }
    ckpt_file *cf = calloc(1, sizeof *cf);
    if (!cf) {
        H5Fclose(f);
        return ckpti_seterr(err, errlen, CKPT_ENOMEM, "%s: out of memory", path);
    }
    cf->fid = f;
    cf->meta_checked = checked;
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
    if (ckpti_dataset_problem(ds, 0, 0)) return -1; /* headers HDF5 would trust */
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

int ckpti_read_config(hid_t fid, char **json)
{
    *json = NULL;
    if (H5Lexists(fid, "/config", H5P_DEFAULT) <= 0) return -1;
    hid_t ds = H5Dopen2(fid, "/config", H5P_DEFAULT);
    int rc = -1;
    if (ds >= 0) {
        hid_t sp = H5Dget_space(ds);
        int scalar = H5Sget_simple_extent_type(sp) == H5S_SCALAR;
        H5Sclose(sp);
        if (scalar && read_string_dataset(ds, 1, json) == 0) rc = 0;
        H5Dclose(ds);
    }
    if (rc != 0) {
        free(*json);
        *json = NULL;
    }
    return rc;
}

int ckpt_read_config(ckpt_file *f, char **json, char *err, size_t errlen)
{
    if (H5Lexists(f->fid, "/config", H5P_DEFAULT) <= 0) {
        *json = NULL;
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: missing /config", f->path);
    }
    if (ckpti_read_config(f->fid, json) != 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: cannot read /config", f->path);
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
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: missing %s", f->path, path);
    hid_t ds = H5Dopen2(f->fid, path, H5P_DEFAULT);
    if (ds < 0) return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: cannot open %s", f->path, path);
    /* as ckpt_verify takes it: fixed-length strings carrying Fletcher-32 */
    const char *bad = ckpti_dataset_problem(ds, 0, 1);
    if (!bad) {
        hid_t t = H5Dget_type(ds);
        if (t < 0 || H5Tget_class(t) != H5T_STRING) bad = "not strings";
        if (t >= 0) H5Tclose(t);
    }
    if (bad) {
        H5Dclose(ds);
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: cannot read %s: %s", f->path, path,
                            bad);
    }
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
        return ckpti_seterr(err, errlen, rc, "%s: cannot read %s (corrupt or empty)", f->path,
                            path);
    }
    return CKPT_OK;
}

/* Checks the header facts HDF5 trusts when it reads a dataset: a corrupt
 * element size or chunk shape would make H5Dread write out of bounds. Returns
 * NULL when the dataset is sane, else what is wrong. `want_float` asks for
 * IEEE float32 elements; `want_checksum` for the Fletcher-32 filter on a
 * chunked layout. */
const char *ckpti_dataset_problem(hid_t ds, int want_float, int want_checksum)
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
    if (want_checksum && cls == H5T_STRING && H5Tis_variable_str(t) != 0) {
        why = "variable-length strings (their bytes carry no checksum)";
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
    /* HDF5 1.10 copies a compact or contiguous dataset's bytes without
     * checking that its storage holds them (a compact one of 0 bytes: a
     * memcpy from NULL; one flipped bit of /config's layout message does
     * it). Variable-length strings are stored elsewhere (the global heap). */
    const H5D_layout_t layout = H5Pget_layout(dcpl);
    if ((layout == H5D_COMPACT || layout == H5D_CONTIGUOUS) && H5Tis_variable_str(t) <= 0 &&
        cls != H5T_VLEN) {
        const hsize_t have = H5Dget_storage_size(ds);
        /* contiguous and never written is read as fill values */
        if (have != bytes && !(layout == H5D_CONTIGUOUS && have == 0)) {
            why = "storage does not hold its shape (corrupt header)";
            goto out;
        }
    }
    if (layout == H5D_CHUNKED) {
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

/* Opens the dataset at path: CKPT_EMISMATCH when there is none. */
static int open_dataset(ckpt_file *f, const char *path, hid_t *ds, char *err, size_t errlen)
{
    /* H5Lexists fails (< 0) rather than says no when an intermediate group is
     * missing: both mean the dataset is not there */
    if (H5Lexists(f->fid, path, H5P_DEFAULT) <= 0)
        return ckpti_seterr(err, errlen, CKPT_EMISMATCH, "%s: missing dataset %s", f->path, path);
    *ds = H5Dopen2(f->fid, path, H5P_DEFAULT);
    if (*ds < 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: cannot open %s", f->path, path);
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

/* Reads a float dataset whose shape must be exactly dims[0..ndim), carrying
 * Fletcher-32, every value finite (and with nonneg, none negative). */
static int read_floats(ckpt_file *f, const char *path, float *out, int ndim, const hsize_t *dims,
                       int nonneg, char *err, size_t errlen)
{
    hid_t ds = -1;
    int rc0 = open_dataset(f, path, &ds, err, errlen);
    if (rc0 != CKPT_OK) return rc0;
    const char *bad = ckpti_dataset_problem(ds, 1, 1);
    if (bad) {
        H5Dclose(ds);
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: %s: %s", f->path, path, bad);
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
        return ckpti_seterr(err, errlen, CKPT_EMISMATCH, "%s: %s has shape %s, the model needs %s",
                            f->path, path, nd > 0 ? got : "(scalar)", want);
    }
    herr_t rc = H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out);
    H5Dclose(ds);
    if (rc < 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: %s fails its checksum or cannot be read "
                            "(corrupt file)",
                            f->path, path);
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)dims[i];
    const size_t bad_values = ckpti_count_nonfinite(out, n);
    if (bad_values)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: %s holds %zu NaN or infinite values (corrupt?)", f->path, path,
                            bad_values);
    const size_t negative = nonneg ? ckpti_count_negative(out, n) : 0;
    if (negative)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: %s holds %zu negative value%s: a second moment never is "
                            "(corrupt?)",
                            f->path, path, negative, negative > 1 ? "s" : "");
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

static int read_table(ckpt_file *f, const char *group, const param_table *pt, float *buf,
                      int nonneg, char *err, size_t errlen)
{
    char path[256];
    for (int i = 0; i < pt->n; i++) {
        const param_tensor *t = &pt->t[i];
        hsize_t dims[3] = {(hsize_t)t->shape[0], (hsize_t)t->shape[1], 1};
        ckpti_dataset_path(path, sizeof path, group, t->name);
        int rc = read_floats(f, path, buf + t->offset, t->ndim, dims, nonneg, err, errlen);
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
            return ckpti_seterr(err, errlen, CKPT_EMISMATCH,
                                "%s: %s/%s is not a tensor of the model (%s holds %d tensors, the "
                                "model has %d)",
                                f->path, group, c.extra, group, c.count, pt->n);
        return ckpti_seterr(err, errlen, CKPT_EMISMATCH,
                            "%s: %s holds %d tensors, the model has %d", f->path, group, c.count,
                            pt->n);
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
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: %s has no usable shape", f->path, path);
    *nd = n;
    for (int i = 0; i < n && i < max; i++) dims[i] = (unsigned long long)d[i];
    return CKPT_OK;
}

int ckpt_read_params(ckpt_file *f, param_table *pt, char *err, size_t errlen)
{
    if (H5Lexists(f->fid, "/model", H5P_DEFAULT) <= 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: missing group /model", f->path);
    return read_table(f, "/model", pt, pt->data, 0, err, errlen);
}

int ckpt_read_optimizer(ckpt_file *f, const param_table *pt, optimizer *opt, char *err,
                        size_t errlen)
{
    if (H5Lexists(f->fid, "/optimizer", H5P_DEFAULT) <= 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: missing group /optimizer", f->path);
    hid_t g = H5Gopen2(f->fid, "/optimizer", H5P_DEFAULT);
    char name[16] = "";
    long long t = 0;
    int ok = g >= 0 && read_attr_str(g, "name", name, sizeof name) == 0 &&
             read_attr_num(g, "t", H5T_NATIVE_LLONG, &t, 1) == 0;
    if (g >= 0) H5Gclose(g);
    if (!ok)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: /optimizer lacks name or t", f->path);
    if (t < 0 || t > CKPT_MAX_COUNT)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: /optimizer t = %lld is not an update count (0..2^50; corrupt?)",
                            f->path, t);
    const char *want = opt_name(opt->kind);
    if (strcmp(name, want) != 0)
        return ckpti_seterr(err, errlen, CKPT_EMISMATCH, "%s: optimizer is %s, the run uses %s",
                            f->path, name, want);
    if (opt_has_moments(opt->kind)) {
        int rc = read_table(f, "/optimizer/m", pt, opt->m, 0, err, errlen);
        if (rc == CKPT_OK) rc = read_table(f, "/optimizer/v", pt, opt->v, 1, err, errlen);
        if (rc != CKPT_OK) return rc;
    }
    opt->t = (long)t;
    return CKPT_OK;
}

int ckpt_read_train(ckpt_file *f, ckpt_train *tr, char *err, size_t errlen)
{
    if (H5Lexists(f->fid, "/train", H5P_DEFAULT) <= 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: missing group /train", f->path);
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
    double *figs[] = {&tr->train_loss, &tr->valid_loss, &tr->valid_bleu,
                      &tr->best,       &tr->lr_plateau, &tr->lr_best};
    const char *names[] = {"train_loss", "valid_loss", "valid_bleu",
                           "best",       "lr_plateau", "lr_best"};
    long long since = 0, lsince = 0;
    for (int i = 0; i < 6; i++) {
        *figs[i] = NAN;
        if (ok && H5Aexists(g, names[i]) > 0 &&
            read_attr_num(g, names[i], H5T_NATIVE_DOUBLE, figs[i], 1) != 0)
            ok = 0;
    }
    if (ok && H5Aexists(g, "since_best") > 0 &&
        read_attr_num(g, "since_best", H5T_NATIVE_LLONG, &since, 1) != 0)
        ok = 0;
    tr->since_best = (long)since;
    if (ok && H5Aexists(g, "lr_since") > 0 &&
        read_attr_num(g, "lr_since", H5T_NATIVE_LLONG, &lsince, 1) != 0)
        ok = 0;
    tr->lr_since = (long)lsince;
    if (g >= 0) H5Gclose(g);
    if (!ok || step < 0 || epoch < 0 || bie < 0)
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: /train attributes missing or invalid",
                            f->path);
    /* counters a run can have reached: far below where step + 1 would
     * overflow, and no more batches into an epoch than steps taken */
    const char *what = step > CKPT_MAX_COUNT                               ? "step"
                       : epoch > CKPT_MAX_COUNT                            ? "epoch"
                       : bie > step                                        ? "batch_in_epoch"
                       : tr->world_size < 1                                ? "world_size"
                       : tr->global_batch < 1                              ? "global_batch"
                       : lsince < 0 || lsince > CKPT_MAX_COUNT             ? "lr_since"
                       : isfinite(tr->lr_plateau) && !(tr->lr_plateau > 0) ? "lr_plateau"
                                                                           : NULL;
    if (what)
        return ckpti_seterr(
            err, errlen, CKPT_EFORMAT,
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
            return ckpti_seterr(err, errlen, CKPT_EFORMAT,
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
    int rc = read_floats(f, path, buf, 3, d, 0, err, errlen);
    if (rc == CKPT_OK) *found = 1;
    return rc;
}

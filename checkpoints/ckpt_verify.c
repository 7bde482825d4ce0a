/* ckpt_verify: every dataset read (Fletcher-32), the layout complete. */
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

/* Reads every dataset below the root (checksums are checked on read). */
typedef struct {
    ckpt_file *f;
    int bad;
    char what[256];
    char neg[96]; /* how many negative second moments, for what */
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
    const char *why = ckpti_dataset_problem(ds, !text, !config);
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
        if (rc >= 0 && isf && buf && ckpti_count_nonfinite(buf, (size_t)n) > 0) {
            rc = -1;
            why = "holds NaN or infinite values (corrupt?)";
        }
        /* Adam's second moments, as ckpt_read_optimizer takes them */
        const size_t neg = rc >= 0 && isf && buf && strncmp(name, "optimizer/v/", 12) == 0
                               ? ckpti_count_negative(buf, (size_t)n)
                               : 0;
        if (neg) {
            rc = -1;
            snprintf(v->neg, sizeof v->neg,
                     "holds %zu negative value%s: a second moment never is (corrupt?)", neg,
                     neg > 1 ? "s" : "");
            why = v->neg;
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
            return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: incomplete: missing %s", path,
                                required[i]);
        }
    if (H5Lexists(f->fid, "/vocab", H5P_DEFAULT) <= 0) {
        ckpt_close(f);
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: incomplete: missing /vocab", path);
    }
    char *json = NULL;
    rc = ckpt_read_config(f, &json, err, errlen);
    cJSON *cfg = json ? cJSON_Parse(json) : NULL;
    int cfg_ok = cfg && cJSON_IsObject(cfg);
    cJSON_Delete(cfg);
    free(json);
    if (rc != CKPT_OK || !cfg_ok) {
        ckpt_close(f);
        return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: /config %s (corrupt)", path,
                            rc != CKPT_OK ? "cannot be read" : "is not a JSON object");
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
    if (ckpti_checkpoint_name(base ? base + 1 : path, &named) && named != tr.step) {
        ckpt_close(f);
        return ckpti_seterr(err, errlen, CKPT_EFORMAT,
                            "%s: holds step %ld but is named for step %ld (renamed or copied?)",
                            path, tr.step, named);
    }
    verify_ctx v = {f, 0, "", ""};
    hid_t root = H5Gopen2(f->fid, "/", H5P_DEFAULT);
    if (root < 0 || H5Ovisit(root, H5_INDEX_NAME, H5_ITER_NATIVE, verify_cb, &v) < 0) {
        v.bad = 1;
        snprintf(v.what, sizeof v.what, "object tree cannot be walked");
    }
    if (root >= 0) H5Gclose(root);
    const int unchecked = !f->meta_checked;
    ckpt_close(f);
    if (v.bad) return ckpti_seterr(err, errlen, CKPT_EFORMAT, "%s: %s", path, v.what);
    /* a file of seqpar before meta_sha256: its counters passed the range
     * checks, and that is all that can be said of them */
    return ckpti_seterr(err, errlen, CKPT_OK, "%s",
                        unchecked ? "format 1: attributes unchecked" : "");
}

/* The training state's own checksum (format 2): SHA-256 of /config and the
 * attributes of /, /train and /optimizer, stored as the root attribute
 * meta_sha256.
 *
 * HDF5 checksums chunks (Fletcher-32) but not attributes, nor /config (a
 * scalar, which cannot be chunked) nor, in the file layout seqpar writes,
 * the object headers holding them: a flipped bit in a counter, the seed or
 * the optimizer's t read back as another valid number. SHA-256 (OpenSSL's
 * libcrypto, already linked for the corpora's hashes) over a few kilobytes
 * costs nothing; 256 bits leave no accidental match, and Python's hashlib
 * recomputes it from h5py (DESIGN.md, "Checkpoint file", gives the
 * serialization).
 *
 * The stream, in this order (decimal numbers, "\n" a newline byte):
 *   the root's attributes but meta_sha256, then /config, then the
 *   attributes of /train, then of /optimizer. A group is announced as
 *   "/train\n" ("/train absent\n" when there is none); its attributes follow
 *   in ascending byte order of their names, each as
 *     "NAME|i64|1\n" and its 8 bytes little-endian (i, u or f, and the bits
 *                    of one element; then the element count and the
 *                    elements, little-endian),
 *     "NAME|s|LEN\n" and the string's LEN bytes, up to its first NUL (a
 *                    fixed-length string of one element);
 *   /config is "/config|s|LEN\n" and the JSON's bytes. */
#include "checkpoints.h"
#include "ckpt_internal.h"

#include <hdf5.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* attributes are small: one of more is no checkpoint's */
#define META_ATTR_MAX (1u << 20)

typedef struct meta_ctx {
    EVP_MD_CTX *md;
    int skip_digest; /* the root group: its own meta_sha256 is not hashed */
    char why[200];   /* "" while all is well */
} meta_ctx;

static void feed(meta_ctx *c, const void *p, size_t n)
{
    if (!c->why[0] && n && EVP_DigestUpdate(c->md, p, n) != 1)
        snprintf(c->why, sizeof c->why, "SHA-256 failed");
}

static void feed_head(meta_ctx *c, const char *name, const char *kind, unsigned long long n)
{
    char head[64];
    feed(c, name, strlen(name));
    const int k = snprintf(head, sizeof head, "|%s|%llu\n", kind, n);
    feed(c, head, (size_t)k);
}

/* One attribute into the stream: its name, kind and value. */
static herr_t feed_attr(hid_t loc, const char *name, const H5A_info_t *info, void *op)
{
    (void)info;
    meta_ctx *c = op;
    if (c->skip_digest && strcmp(name, CKPT_META_ATTR) == 0) return 0;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    hid_t ft = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
    const hssize_t n = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    const H5T_class_t cls = ft >= 0 ? H5Tget_class(ft) : H5T_NO_CLASS;
    const size_t sz = ft >= 0 ? H5Tget_size(ft) : 0;
    const char *bad = NULL;
    unsigned char *buf = NULL;
    hid_t mt = -1;
    if (n < 0 || sz == 0)
        bad = "cannot be read";
    else if ((unsigned long long)n * sz > META_ATTR_MAX)
        bad = "implausibly large";
    else if (cls == H5T_STRING) {
        if (H5Tis_variable_str(ft) != 0 || n != 1)
            bad = "not one fixed-length string";
        else if (!(buf = calloc(sz + 1, 1)) || H5Aread(a, ft, buf) < 0) /* as stored */
            bad = "cannot be read";
        else {
            const size_t len = strnlen((const char *)buf, sz);
            feed_head(c, name, "s", len);
            feed(c, buf, len);
        }
    } else if ((cls == H5T_INTEGER && (sz == 1 || sz == 2 || sz == 4 || sz == 8)) ||
               (cls == H5T_FLOAT && (sz == 4 || sz == 8))) {
        /* the stored values in little-endian order, whatever the file's */
        mt = H5Tcopy(ft);
        buf = malloc((size_t)n * sz + 1);
        if (mt < 0 || !buf || H5Tset_order(mt, H5T_ORDER_LE) < 0 || H5Aread(a, mt, buf) < 0)
            bad = "cannot be read";
        else {
            char kind[8];
            snprintf(kind, sizeof kind, "%c%zu",
                     cls == H5T_FLOAT                  ? 'f'
                     : H5Tget_sign(ft) == H5T_SGN_NONE ? 'u'
                                                       : 'i',
                     sz * 8);
            feed_head(c, name, kind, (unsigned long long)n);
            feed(c, buf, (size_t)n * sz);
        }
    } else {
        bad = "of a type no checkpoint holds";
    }
    if (bad && !c->why[0]) snprintf(c->why, sizeof c->why, "attribute %.64s %s", name, bad);
    free(buf);
    if (mt >= 0) H5Tclose(mt);
    if (sp >= 0) H5Sclose(sp);
    if (ft >= 0) H5Tclose(ft);
    if (a >= 0) H5Aclose(a);
    return bad ? -1 : 0;
}

static void feed_group(meta_ctx *c, hid_t fid, const char *path)
{
    char line[64];
    if (c->why[0]) return;
    const int root = strcmp(path, "/") == 0;
    if (!root && H5Lexists(fid, path, H5P_DEFAULT) <= 0) {
        snprintf(line, sizeof line, "%s absent\n", path);
        feed(c, line, strlen(line));
        return;
    }
    snprintf(line, sizeof line, "%s\n", path);
    feed(c, line, strlen(line));
    hid_t g = H5Oopen(fid, path, H5P_DEFAULT);
    if (g < 0) {
        snprintf(c->why, sizeof c->why, "%s cannot be opened", path);
        return;
    }
    c->skip_digest = root;
    hsize_t idx = 0;
    if (H5Aiterate2(g, H5_INDEX_NAME, H5_ITER_INC, &idx, feed_attr, c) < 0 && !c->why[0])
        snprintf(c->why, sizeof c->why, "the attributes of %s cannot be read", path);
    c->skip_digest = 0;
    H5Oclose(g);
}

int ckpti_meta_digest(hid_t fid, char hex[CKPT_META_HEX + 1], char *why, size_t whylen)
{
    meta_ctx c = {.md = EVP_MD_CTX_new()};
    if (!c.md || EVP_DigestInit_ex(c.md, EVP_sha256(), NULL) != 1)
        snprintf(c.why, sizeof c.why, "SHA-256 unavailable");
    feed_group(&c, fid, "/");
    if (!c.why[0]) {
        char *json = NULL;
        if (ckpti_read_config(fid, &json) != 0) {
            snprintf(c.why, sizeof c.why, "cannot read /config");
        } else {
            feed_head(&c, "/config", "s", strlen(json));
            feed(&c, json, strlen(json));
        }
        free(json);
    }
    feed_group(&c, fid, "/train");
    feed_group(&c, fid, "/optimizer");
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (!c.why[0] && (EVP_DigestFinal_ex(c.md, md, &mdlen) != 1 || mdlen * 2 != CKPT_META_HEX))
        snprintf(c.why, sizeof c.why, "SHA-256 failed");
    EVP_MD_CTX_free(c.md);
    if (c.why[0]) {
        snprintf(why, whylen, "%s", c.why);
        return -1;
    }
    for (unsigned i = 0; i < mdlen; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

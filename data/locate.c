/* Finding the corpora: data dir resolution, download from the book's data URL
 * (libcurl), SHA-1 verification (OpenSSL EVP) and fra-eng.zip extraction
 * (libzip).
 *
 * Environment: SEQPAR_DATA (data dir when --data-dir is not given),
 * SEQPAR_DATA_URL (base URL, default the book's), SEQPAR_NO_DOWNLOAD=1 (never
 * download: a missing file is an error at once), SEQPAR_FRA_ZIP_SHA1 (test
 * hook: the SHA-1 expected of fra-eng.zip instead of the book's; only a user
 * who controls the environment can set it). */
#include "data_internal.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#ifndef SEQPAR_VERSION
#define SEQPAR_VERSION "0"
#endif

#define DEFAULT_URL "http://d2l-data.s3-accelerate.amazonaws.com/"

typedef struct remote {
    const char *name;     /* as asked for, relative to the data dir */
    const char *file;     /* what to download, relative to the URL and the data dir */
    const char *sha1;     /* of `file` */
    const char *sha1_env; /* test override of sha1, or NULL */
    const char *member;   /* zip member to extract into `name`, or NULL */
} remote;

static const remote remotes[] = {
    {"timemachine.txt", "timemachine.txt", "090b5e7e70c295757f55df93cb0a180b9691891a", NULL, NULL},
    {"fra-eng/fra.txt", "fra-eng.zip", "94646ad1522d915e7b0f9296181140edcf86a4f5",
     "SEQPAR_FRA_ZIP_SHA1", "fra-eng/fra.txt"},
};

/* ----------------------------------------------------------------- SHA-1 */

int data_sha1_file(const char *path, char hex[41], char *err, size_t errlen)
{
    if (!path || !hex) return data_fail(err, errlen, DATA_EINVAL, "data_sha1_file: NULL argument");
    hex[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return data_fail(err, errlen, DATA_EIO, "%s: %s", path, strerror(errno));
    int rc = DATA_OK;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1) {
        rc = data_fail(err, errlen, DATA_ENOMEM, "%s: cannot set up SHA-1", path);
        goto out;
    }
    unsigned char chunk[1 << 16];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (EVP_DigestUpdate(ctx, chunk, got) != 1) {
            rc = data_fail(err, errlen, DATA_EIO, "%s: SHA-1 update failed", path);
            goto out;
        }
    }
    if (ferror(f)) {
        rc = data_fail(err, errlen, DATA_EIO, "%s: read error", path);
        goto out;
    }
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    if (EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 20) {
        rc = data_fail(err, errlen, DATA_EIO, "%s: SHA-1 failed", path);
        goto out;
    }
    for (unsigned i = 0; i < 20; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
out:
    EVP_MD_CTX_free(ctx);
    fclose(f);
    return rc;
}

/* --------------------------------------------------------------- helpers */

static char *join(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
    char *s = malloc(la + lb + lc + 1);
    if (!s) return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb);
    if (c) memcpy(s + la + lb, c, lc);
    s[la + lb + lc] = '\0';
    return s;
}

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* mkdir -p of the directory part of path (everything before the last '/');
 * *created gets the shallowest directory it made (malloc'd; NULL: none), for
 * remove_made_dirs. */
static int make_parent_dirs(const char *path, char **created)
{
    *created = NULL;
    char *p = join(path, "", NULL);
    if (!p) return -1;
    char *last = strrchr(p, '/');
    if (last) *last = '\0';
    for (char *c = p + 1; last && *c; c++) {
        if (*c != '/') continue;
        *c = '\0';
        if (mkdir(p, 0755) == 0 && !*created) *created = join(p, "", NULL);
        if (errno != EEXIST && !is_dir(p)) goto fail;
        *c = '/';
    }
    if (last && *p) {
        if (mkdir(p, 0755) == 0 && !*created) *created = join(p, "", NULL);
        if (!is_dir(p)) goto fail;
    }
    free(p);
    return 0;
fail:
    free(p);
    return -1;
}

/* Removes the directories make_parent_dirs made for path, deepest first, up
 * to `created` (only empty ones: rmdir). */
static void remove_made_dirs(const char *path, const char *created)
{
    if (!created) return;
    char *p = join(path, "", NULL);
    const size_t top = strlen(created);
    for (char *last = p ? strrchr(p, '/') : NULL; last; last = strrchr(p, '/')) {
        *last = '\0';
        if (strlen(p) < top || rmdir(p) != 0) break;
    }
    free(p);
}

static int env_true(const char *name)
{
    const char *v = getenv(name);
    return v && *v && strcmp(v, "0") != 0;
}

static data_fetch_progress_fn fetch_progress;

void data_set_fetch_progress(data_fetch_progress_fn fn)
{
    fetch_progress = fn;
}

/* libcurl's progress callback: the bytes so far to fetch_progress. */
static int on_progress(void *file, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ultotal, (void)ulnow;
    fetch_progress(file, (long long)dlnow, (long long)dltotal, 0);
    return 0;
}

/* Downloads url into path (`file` names it in the progress). 0 or -1 with
 * why[] filled. */
static int download(const char *url, const char *file, const char *path, char *why, size_t whylen)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(why, whylen, "%s: %s", path, strerror(errno));
        return -1;
    }
    CURL *c = curl_easy_init();
    if (!c) {
        fclose(f);
        snprintf(why, whylen, "cannot initialise libcurl");
        return -1;
    }
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 10L);
    /* a stalled transfer (under 1 byte/s for 30 s) fails rather than hangs */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "seqpar/" SEQPAR_VERSION);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#endif
    if (fetch_progress) {
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)file);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    }
    CURLcode res = curl_easy_perform(c);
    if (fetch_progress) {
        curl_off_t got = 0, total = -1;
        curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &got);
        curl_easy_getinfo(c, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total);
        fetch_progress(file, (long long)got, total > 0 ? (long long)total : 0, 1);
    }
    curl_easy_cleanup(c);
    int closed = fclose(f);
    if (res != CURLE_OK) {
        snprintf(why, whylen, "%s", cerr[0] ? cerr : curl_easy_strerror(res));
        return -1;
    }
    if (closed != 0) {
        snprintf(why, whylen, "%s: write failed", path);
        return -1;
    }
    return 0;
}

/* Extracts zip member `member` of zippath into out (via a temporary name). */
static int extract(const char *zippath, const char *member, const char *out, char *err,
                   size_t errlen)
{
    int zerr = 0, rc = DATA_OK;
    zip_t *z = zip_open(zippath, ZIP_RDONLY, &zerr);
    if (!z) {
        zip_error_t ze;
        zip_error_init_with_code(&ze, zerr);
        rc = data_fail(err, errlen, DATA_EFETCH, "%s: cannot open as zip: %s", zippath,
                       zip_error_strerror(&ze));
        zip_error_fini(&ze);
        return rc;
    }
    char *tmp = NULL;
    FILE *f = NULL;
    zip_file_t *zf = NULL;
    zip_int64_t idx = zip_name_locate(z, member, 0);
    if (idx < 0) {
        rc = data_fail(err, errlen, DATA_EFETCH, "%s: has no member %s", zippath, member);
        goto out;
    }
    zf = zip_fopen_index(z, (zip_uint64_t)idx, 0);
    if (!zf) {
        rc = data_fail(err, errlen, DATA_EFETCH, "%s: cannot read %s: %s", zippath, member,
                       zip_strerror(z));
        goto out;
    }
    char pid[32];
    snprintf(pid, sizeof pid, ".part-%ld", (long)getpid());
    tmp = join(out, pid, NULL);
    if (!tmp) {
        rc = data_fail(err, errlen, DATA_ENOMEM, "out of memory");
        goto out;
    }
    char *made = NULL; /* the extracted file's own directory (fra-eng/) is kept */
    const int made_ok = make_parent_dirs(out, &made) == 0;
    free(made);
    if (!made_ok || !(f = fopen(tmp, "wb"))) {
        rc = data_fail(err, errlen, DATA_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    char chunk[1 << 16];
    zip_int64_t got;
    while ((got = zip_fread(zf, chunk, sizeof chunk)) > 0) {
        if (fwrite(chunk, 1, (size_t)got, f) != (size_t)got) {
            rc = data_fail(err, errlen, DATA_EIO, "%s: write failed", tmp);
            goto out;
        }
    }
    if (got < 0) {
        rc = data_fail(err, errlen, DATA_EFETCH, "%s: corrupt member %s: %s", zippath, member,
                       zip_file_strerror(zf));
        goto out;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        rc = data_fail(err, errlen, DATA_EIO, "%s: write failed", tmp);
        goto out;
    }
    if (rename(tmp, out) != 0) {
        rc = data_fail(err, errlen, DATA_EIO, "%s: %s", out, strerror(errno));
        goto out;
    }
out:
    if (f) fclose(f);
    if (rc != DATA_OK && tmp) remove(tmp);
    free(tmp);
    if (zf) zip_fclose(zf);
    zip_discard(z);
    return rc;
}

static const char *expected_sha1(const remote *r)
{
    const char *o = r->sha1_env ? getenv(r->sha1_env) : NULL;
    return (o && *o) ? o : r->sha1;
}

/* ---------------------------------------------------------------- locate */

/* Where corpora are: data_dir, else $SEQPAR_DATA, else ~/.cache/seqpar,
 * without trailing slashes (malloc'd; NULL when out of memory or without
 * HOME, which the caller checks first). */
static char *data_dir_of(const char *data_dir)
{
    char *dir;
    if (data_dir && *data_dir)
        dir = join(data_dir, "", NULL);
    else if (getenv("SEQPAR_DATA") && *getenv("SEQPAR_DATA"))
        dir = join(getenv("SEQPAR_DATA"), "", NULL);
    else if (getenv("HOME") && *getenv("HOME"))
        dir = join(getenv("HOME"), "/.cache/seqpar", NULL);
    else
        return NULL;
    size_t dl = dir ? strlen(dir) : 0;
    while (dl > 1 && dir[dl - 1] == '/') dir[--dl] = '\0';
    return dir;
}

int data_locate(const char *name, const char *data_dir, char **path, char *err, size_t errlen)
{
    if (!path) return data_fail(err, errlen, DATA_EINVAL, "data_locate: path is NULL");
    *path = NULL;
    if (!name || !*name) return data_fail(err, errlen, DATA_EINVAL, "data_locate: no file name");
    char *full = NULL, *local = NULL, *tmp = NULL, *url = NULL, *made = NULL;
    int rc = DATA_OK;
    const char *home = getenv("HOME"), *env = getenv("SEQPAR_DATA");
    if (!(home && *home) && !(data_dir && *data_dir) && !(env && *env))
        return data_fail(err, errlen, DATA_EIO,
                         "%s: no data directory (HOME is unset); set SEQPAR_DATA or pass "
                         "--data-dir",
                         name);
    char *dir = data_dir_of(data_dir);
    if (!dir) goto nomem;
    full = join(dir, "/", name);
    if (!full) goto nomem;
    if (is_file(full)) {
        if (access(full, R_OK) != 0) {
            rc = data_fail(err, errlen, DATA_EIO, "%s: %s", full, strerror(errno));
            goto out;
        }
        *path = full;
        full = NULL;
        goto out;
    }

    const remote *r = NULL;
    for (size_t i = 0; i < sizeof remotes / sizeof *remotes; i++)
        if (strcmp(remotes[i].name, name) == 0) r = &remotes[i];
    if (!r) {
        rc = data_fail(err, errlen, DATA_EIO,
                       "%s not found in %s; put the file there or pass --data-dir", name, dir);
        goto out;
    }
    const char *want = expected_sha1(r);
    char got[41];
    local = join(dir, "/", r->file);
    if (!local) goto nomem;

    /* A zip already downloaded (and intact) only needs extracting. */
    int have = 0;
    if (r->member && is_file(local) && data_sha1_file(local, got, NULL, 0) == DATA_OK &&
        strcmp(got, want) == 0)
        have = 1;

    if (!have) {
        const char *base = getenv("SEQPAR_DATA_URL");
        if (!base || !*base) base = DEFAULT_URL;
        size_t bl = strlen(base);
        url = join(base, (bl && base[bl - 1] == '/') ? "" : "/", r->file);
        if (!url) goto nomem;
        if (env_true("SEQPAR_NO_DOWNLOAD")) {
            rc = data_fail(err, errlen, DATA_EIO,
                           "%s not found in %s (downloading is disabled by SEQPAR_NO_DOWNLOAD; "
                           "the book's copy is %s); put the file there or pass --data-dir",
                           name, dir, url);
            goto out;
        }
        char why[CURL_ERROR_SIZE + 128] = "";
        char pid[32];
        snprintf(pid, sizeof pid, ".part-%ld", (long)getpid());
        tmp = join(local, pid, NULL);
        if (!tmp) goto nomem;
        if (make_parent_dirs(local, &made) != 0) {
            snprintf(why, sizeof why, "cannot create %s: %s", dir, strerror(errno));
        } else if (download(url, r->file, tmp, why, sizeof why) == 0) {
            char sherr[256];
            if (data_sha1_file(tmp, got, sherr, sizeof sherr) != DATA_OK) {
                snprintf(why, sizeof why, "%s", sherr);
            } else if (strcmp(got, want) != 0) {
                remove(tmp);
                remove_made_dirs(local, made);
                rc = data_fail(err, errlen, DATA_EFETCH,
                               "%s downloaded from %s has SHA-1 %s, expected %s (checksum "
                               "mismatch; removed the download); put the file into %s or pass "
                               "--data-dir",
                               r->file, url, got, want, dir);
                goto out;
            } else if (rename(tmp, local) != 0) {
                snprintf(why, sizeof why, "%s: %s", local, strerror(errno));
            } else {
                why[0] = '\0';
            }
        }
        if (why[0]) {
            remove(tmp);
            remove_made_dirs(local, made); /* a failed download leaves no new directory */
            rc = data_fail(err, errlen, DATA_EFETCH,
                           "%s not found in %s (and download from %s failed: %s); put the file "
                           "there or pass --data-dir",
                           name, dir, url, why);
            goto out;
        }
    }
    if (r->member) {
        rc = extract(local, r->member, full, err, errlen);
        if (rc != DATA_OK) goto out;
    }
    *path = full;
    full = NULL;
    goto out;
nomem:
    rc = data_fail(err, errlen, DATA_ENOMEM, "data_locate: out of memory");
out:
    free(dir);
    free(full);
    free(local);
    free(tmp);
    free(url);
    free(made);
    return rc;
}

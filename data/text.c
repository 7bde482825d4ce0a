/* Text: UTF-8 decoding, the book's fra-eng normalisation, and the small
 * buffer / file / error helpers the rest of data/ shares. */
#include "data_internal.h"

#include <errno.h>
#include <utf8proc.h>
#include <unistd.h>
#include <poll.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* --------------------------------------------------------------- errors */

int data_fail(char *err, size_t errlen, int status, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* one line: a message built from file content must not break it */
        for (char *c = err; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
    }
    return status;
}

/* ------------------------------------------------------- growable bytes */

int data_buf_reserve(data_buf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len - 1) return DATA_ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap) return DATA_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return DATA_ENOMEM;
    b->p = p;
    b->cap = cap;
    return DATA_OK;
}

int data_buf_append(data_buf *b, const char *s, size_t n)
{
    if (data_buf_reserve(b, n) != DATA_OK) return DATA_ENOMEM;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return DATA_OK;
}

void data_buf_free(data_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static void (*fifo_notice)(const char *path);

void data_set_fifo_notice(void (*notice)(const char *path))
{
    fifo_notice = notice;
}

/* A FIFO opened without waiting for its writer (open would block until one
 * comes), then read blocking once something arrived; the notice after
 * DATA_FIFO_NOTICE_S seconds of nothing. */
static FILE *open_fifo(const char *path)
{
    const int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int r;
    while ((r = poll(&p, 1, DATA_FIFO_NOTICE_S * 1000)) == 0 || (r < 0 && errno == EINTR))
        if (r == 0 && fifo_notice) {
            fifo_notice(path);
            fifo_notice = NULL; /* once */
        }
    const int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (!f) close(fd);
    return f;
}

int data_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen)
{
    *buf = NULL;
    *len = 0;
    /* a device (/dev/zero, a disk) would be read until memory runs out, and
     * opening one can act (a tape rewinds): refused before it is opened;
     * files, pipes and process substitutions are text */
    struct stat st;
    if (stat(path, &st) == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
        return data_fail(err, errlen, DATA_EIO, "%s: a device, not a text file", path);
    const int fifo = stat(path, &st) == 0 && S_ISFIFO(st.st_mode);
    FILE *f = fifo ? open_fifo(path) : fopen(path, "rb");
    if (!f) return data_fail(err, errlen, DATA_EIO, "%s: %s", path, strerror(errno));
    data_buf b = {0};
    int rc = DATA_OK;
    for (;;) {
        if (data_buf_reserve(&b, 1 << 16) != DATA_OK) {
            rc = data_fail(err, errlen, DATA_ENOMEM, "%s: out of memory reading the file", path);
            goto err;
        }
        size_t room = b.cap - b.len - 1;
        size_t got = fread(b.p + b.len, 1, room, f);
        b.len += got;
        if (got < room) {
            if (ferror(f)) {
                /* a directory opens, and fails its first read with EISDIR */
                rc = data_fail(err, errlen, DATA_EIO, "%s: %s", path,
                               errno == EISDIR ? "is a directory, not a file" : "read error");
                goto err;
            }
            break;
        }
    }
    b.p[b.len] = '\0';
    fclose(f);
    *buf = b.p;
    *len = b.len;
    return DATA_OK;
err:
    fclose(f);
    data_buf_free(&b);
    return rc;
}

/* ----------------------------------------------------------------- UTF-8 */

size_t data_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    if (len == 0) return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0; /* continuation byte or 0xF8..0xFF as a lead */
    }
    if (len < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

int data_utf8_valid(const char *s, size_t len, size_t *bad)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0; i < len;) {
        const size_t n = data_utf8_decode(u + i, len - i, &cp);
        if (n == 0) {
            if (bad) *bad = i;
            return 0;
        }
        i += n;
    }
    return 1;
}

const char *data_escape(const char *s, size_t max, char *out, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t w = 0, used = 0;
    out[0] = '\0';
    while (p[used] && n > 0) {
        uint32_t cp;
        size_t len = strnlen(s + used, 4);
        const size_t k = data_utf8_decode(p + used, len, &cp);
        const int plain = k > 0 && cp >= 0x20 && cp != 0x7f && !(cp >= 0x80 && cp < 0xa0);
        const size_t take = plain ? k : 1, wrote = plain ? k : 4;
        if (used + take > max || w + wrote + 4 >= n) { /* room for "..." and the NUL */
            snprintf(out + w, n - w, "...");
            return out;
        }
        if (plain)
            memcpy(out + w, s + used, k);
        else
            snprintf(out + w, n - w, "\\x%02X", p[used]);
        w += wrote, used += take;
        out[w] = '\0';
    }
    return out;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------- normalisation */

/* Python's str.lower(), which the book's preprocessing uses: Unicode's
 * lowercase mapping (utf8proc's tables), and its full mapping of U+0130
 * (I with a dot above: "i" + U+0307, done by the caller) and the final
 * sigma (the caller, from is_cased). */
static uint32_t lower_cp(uint32_t c)
{
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
}

/* A cased letter (Unicode's Cased: Lu, Ll, Lt, and Other_Lowercase /
 * Other_Uppercase, which have a case mapping or are letters of a case), for
 * the final sigma. */
static int is_cased(uint32_t c)
{
    const utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL ||
           cat == UTF8PROC_CATEGORY_LT ||
           utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

int data_normalize_append(const char *in, size_t len, data_buf *b, size_t *bad)
{
    /* Worst case: every byte is a punctuation mark that gains a space. */
    if (len > SIZE_MAX / 4 || data_buf_reserve(b, 2 * len) != DATA_OK) return DATA_ENOMEM;
    const unsigned char *s = (const unsigned char *)in;
    char *out = b->p + b->len;
    uint32_t prev = 0;
    int first = 1;
    for (size_t i = 0; i < len;) {
        uint32_t c;
        size_t k = data_utf8_decode(s + i, len - i, &c);
        if (k == 0 || c == 0) {
            *bad = i;
            b->p[b->len] = '\0';
            return DATA_EFORMAT;
        }
        i += k;
        if (c == 0x202F || c == 0xA0) c = ' ';
        /* The book tests the character before, which is already replaced. */
        if (!first && prev != ' ' && (c == ',' || c == '.' || c == '!' || c == '?')) *out++ = ' ';
        if (c == 0x130) {
            *out++ = 'i';
            out += utf8_encode(0x307, out);
        } else if (c == 0x3A3) {
            /* Python's final sigma: after a cased letter and not before one
             * (case-ignorable characters in between are not skipped here) */
            uint32_t next = 0;
            int before = i < len && data_utf8_decode(s + i, len - i, &next) && is_cased(next);
            out += utf8_encode(!first && is_cased(prev) && !before ? 0x3C2 : 0x3C3, out);
        } else {
            out += utf8_encode(lower_cp(c), out);
        }
        prev = c;
        first = 0;
    }
    b->len = (size_t)(out - b->p);
    b->p[b->len] = '\0';
    return DATA_OK;
}

int data_normalize(const char *in, size_t len, char **out, char *err, size_t errlen)
{
    if (!out) return data_fail(err, errlen, DATA_EINVAL, "data_normalize: out is NULL");
    *out = NULL;
    if (!in && len) return data_fail(err, errlen, DATA_EINVAL, "data_normalize: in is NULL");
    data_buf b = {0};
    size_t bad = 0;
    int rc = data_normalize_append(in ? in : "", len, &b, &bad);
    if (rc == DATA_EFORMAT) {
        data_buf_free(&b);
        if (in[bad] == '\0') return data_fail(err, errlen, rc, "NUL byte at byte %zu", bad);
        return data_fail(err, errlen, rc, "invalid UTF-8 at byte %zu", bad);
    }
    if (rc != DATA_OK) {
        data_buf_free(&b);
        return data_fail(err, errlen, DATA_ENOMEM, "data_normalize: out of memory");
    }
    *out = b.p;
    return DATA_OK;
}

/* Private to data/: helpers shared by the .c files of data/. Nothing outside
 * data/ includes this header; the names carry the data_ prefix only because a
 * static library cannot hide cross-file symbols. */
#ifndef SEQPAR_DATA_INTERNAL_H
#define SEQPAR_DATA_INTERNAL_H

#include "data.h"

#include <stddef.h>
#include <stdint.h>

/* --------------------------------------------------------------- errors */

/* Formats one line into err (if err and errlen) and returns status. */
int data_fail(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------- growable bytes */

typedef struct data_buf {
    char *p;
    size_t len, cap;
} data_buf;

int data_buf_reserve(data_buf *b, size_t extra); /* room for len + extra + NUL */
int data_buf_append(data_buf *b, const char *s, size_t n);
void data_buf_free(data_buf *b);

/* ----------------------------------------------------------------- text */

/* Decodes one UTF-8 code point from s[0..len); returns the bytes consumed
 * (1..4) or 0 when the sequence is invalid (truncated, overlong, surrogate,
 * > U+10FFFF). */
size_t data_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* data_normalize into b (appended; b->p stays NUL-terminated). On invalid
 * UTF-8 or a NUL byte returns DATA_EFORMAT and sets *bad to the byte offset. */
int data_normalize_append(const char *in, size_t len, data_buf *b, size_t *bad);

/* ---------------------------------------------------------- string table */

/* Interning table: distinct strings in order of first appearance, with an
 * occurrence count each; open addressing on FNV-1a hashes. */
typedef struct data_strtab {
    char **strs;    /* (n) owned, NUL-terminated */
    long *counts;   /* (n) occurrences added */
    size_t n, cap;  /* strs/counts capacity */
    int32_t *slots; /* (mask + 1) index into strs, or -1 */
    size_t mask;
} data_strtab;

int data_strtab_init(data_strtab *t, size_t hint);
/* Returns the string's id (>= 0; new ids are n at the time) and counts one
 * occurrence, or DATA_ENOMEM. */
long data_strtab_add(data_strtab *t, const char *s, size_t len);
void data_strtab_free(data_strtab *t);

/* Builds v from distinct strings with counts: the reserved tokens, then every
 * string with counts[i] >= min_freq (min_freq <= 0 means 1), by descending
 * count, ties by ascending first[i] (first == NULL: by i). Strings equal to a
 * reserved token are skipped (they keep the reserved id). */
int data_vocab_from_counts(data_vocab *v, char *const *strs, const long *counts, const long *first,
                           size_t n, int min_freq, char *err, size_t errlen);
/* data_vocab_id on a token given by pointer and length (not NUL-terminated). */
int data_vocab_id_n(const data_vocab *v, const char *token, size_t len);

#endif

/* Vocabulary: id <-> token, with an open-addressing hash index (FNV-1a,
 * linear probing, load <= 1/2), and the interning table the corpus loaders
 * count tokens with. */
#include "data_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const reserved[DATA_NRESERVED] = {"<pad>", "<bos>", "<eos>", "<unk>"};

/* ------------------------------------------------------------- hashing */

static uint64_t fnv1a(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* stored (NUL-terminated) equals s[0..len) */
static int same(const char *stored, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (stored[i] == '\0' || stored[i] != s[i]) return 0;
    return stored[len] == '\0';
}

/* Slot holding s, or the empty slot where it would go. */
static size_t probe(const int32_t *slots, size_t mask, char *const *strs, const char *s, size_t len)
{
    size_t i = (size_t)fnv1a(s, len) & mask;
    while (slots[i] >= 0 && !same(strs[slots[i]], s, len)) i = (i + 1) & mask;
    return i;
}

/* Power of two >= 2n (at least 16), so probing always meets an empty slot. */
static size_t table_size(size_t n)
{
    size_t m = 16;
    while (m < 2 * n) m *= 2;
    return m;
}

static int32_t *new_slots(size_t m)
{
    int32_t *s = malloc(m * sizeof *s);
    if (s) memset(s, 0xff, m * sizeof *s); /* all -1 */
    return s;
}

/* ------------------------------------------------------- interning table */

int data_strtab_init(data_strtab *t, size_t hint)
{
    memset(t, 0, sizeof *t);
    t->cap = hint < 16 ? 16 : hint;
    size_t m = table_size(t->cap);
    t->strs = malloc(t->cap * sizeof *t->strs);
    t->counts = malloc(t->cap * sizeof *t->counts);
    t->slots = new_slots(m);
    if (!t->strs || !t->counts || !t->slots) {
        data_strtab_free(t);
        return DATA_ENOMEM;
    }
    t->mask = m - 1;
    return DATA_OK;
}

static int strtab_grow(data_strtab *t)
{
    size_t cap = t->cap * 2;
    char **strs = realloc(t->strs, cap * sizeof *strs);
    if (!strs) return DATA_ENOMEM;
    t->strs = strs;
    long *counts = realloc(t->counts, cap * sizeof *counts);
    if (!counts) return DATA_ENOMEM;
    t->counts = counts;
    size_t m = table_size(cap);
    int32_t *slots = new_slots(m);
    if (!slots) return DATA_ENOMEM;
    for (size_t i = 0; i < t->n; i++) {
        size_t len = strlen(t->strs[i]);
        slots[probe(slots, m - 1, t->strs, t->strs[i], len)] = (int32_t)i;
    }
    free(t->slots);
    t->slots = slots;
    t->mask = m - 1;
    t->cap = cap;
    return DATA_OK;
}

long data_strtab_add(data_strtab *t, const char *s, size_t len)
{
    size_t i = probe(t->slots, t->mask, t->strs, s, len);
    if (t->slots[i] >= 0) {
        t->counts[t->slots[i]]++;
        return t->slots[i];
    }
    if (t->n >= INT32_MAX) return DATA_ENOMEM;
    if (t->n == t->cap) {
        if (strtab_grow(t) != DATA_OK) return DATA_ENOMEM;
        i = probe(t->slots, t->mask, t->strs, s, len);
    }
    char *copy = malloc(len + 1);
    if (!copy) return DATA_ENOMEM;
    memcpy(copy, s, len);
    copy[len] = '\0';
    t->strs[t->n] = copy;
    t->counts[t->n] = 1;
    t->slots[i] = (int32_t)t->n;
    return (long)t->n++;
}

void data_strtab_free(data_strtab *t)
{
    if (t->strs)
        for (size_t i = 0; i < t->n; i++) free(t->strs[i]);
    free(t->strs);
    free(t->counts);
    free(t->slots);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ vocabulary */

typedef struct vocab_index {
    int32_t *slots; /* (mask + 1) token id or -1 */
    size_t mask;
} vocab_index;

void data_vocab_free(data_vocab *v)
{
    if (!v) return;
    if (v->tokens)
        for (int i = 0; i < v->size; i++) free(v->tokens[i]);
    free(v->tokens);
    vocab_index *ix = v->index;
    if (ix) free(ix->slots);
    free(ix);
    memset(v, 0, sizeof *v);
}

/* Takes ownership of tokens[0..size) (each malloc'd); checks the reserved
 * prefix and duplicates and builds the index. On failure frees them. */
static int vocab_adopt(data_vocab *v, char **tokens, int size, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    v->tokens = tokens;
    v->size = size;
    vocab_index *ix = NULL;
    int rc;
    for (int i = 0; i < DATA_NRESERVED; i++) {
        if (strcmp(tokens[i], reserved[i]) != 0) {
            char shown[200];
            rc = data_fail(err, errlen, DATA_EINVAL, "vocabulary id %d is \"%s\", expected \"%s\"",
                           i, data_escape(tokens[i], 40, shown, sizeof shown), reserved[i]);
            goto err;
        }
    }
    ix = calloc(1, sizeof *ix);
    if (!ix) goto nomem;
    v->index = ix;
    size_t m = table_size((size_t)size);
    ix->slots = new_slots(m);
    if (!ix->slots) goto nomem;
    ix->mask = m - 1;
    for (int i = 0; i < size; i++) {
        size_t len = strlen(tokens[i]);
        size_t s = probe(ix->slots, ix->mask, tokens, tokens[i], len);
        if (ix->slots[s] >= 0) {
            char shown[200];
            rc = data_fail(err, errlen, DATA_EINVAL,
                           "vocabulary token \"%s\" appears twice (ids %d and %d)",
                           data_escape(tokens[i], 40, shown, sizeof shown), ix->slots[s], i);
            goto err;
        }
        ix->slots[s] = i;
    }
    return DATA_OK;
nomem:
    rc = data_fail(err, errlen, DATA_ENOMEM, "vocabulary: out of memory");
err:
    data_vocab_free(v);
    return rc;
}

int data_vocab_from_list(data_vocab *v, const char *const *tokens, int size, char *err,
                         size_t errlen)
{
    if (!v) return data_fail(err, errlen, DATA_EINVAL, "data_vocab_from_list: v is NULL");
    memset(v, 0, sizeof *v);
    if (!tokens || size < DATA_NRESERVED)
        return data_fail(err, errlen, DATA_EINVAL,
                         "vocabulary list has %d tokens; needs at least the %d reserved ones", size,
                         DATA_NRESERVED);
    char **copy = calloc((size_t)size, sizeof *copy);
    if (!copy) return data_fail(err, errlen, DATA_ENOMEM, "vocabulary: out of memory");
    for (int i = 0; i < size; i++) {
        if (!tokens[i]) {
            for (int j = 0; j < i; j++) free(copy[j]);
            free(copy);
            return data_fail(err, errlen, DATA_EINVAL, "vocabulary token %d is NULL", i);
        }
        size_t len = strlen(tokens[i]);
        copy[i] = malloc(len + 1);
        if (!copy[i]) {
            for (int j = 0; j < i; j++) free(copy[j]);
            free(copy);
            return data_fail(err, errlen, DATA_ENOMEM, "vocabulary: out of memory");
        }
        memcpy(copy[i], tokens[i], len + 1);
    }
    return vocab_adopt(v, copy, size, err, errlen);
}

typedef struct rank_key {
    long count, first;
    size_t i;
} rank_key;

static int by_count_then_first(const void *a, const void *b)
{
    const rank_key *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->first > y->first) - (x->first < y->first);
}

static int is_reserved(const char *s)
{
    for (int i = 0; i < DATA_NRESERVED; i++)
        if (strcmp(s, reserved[i]) == 0) return 1;
    return 0;
}

int data_vocab_from_counts(data_vocab *v, char *const *strs, const long *counts, const long *first,
                           size_t n, int min_freq, char *err, size_t errlen)
{
    memset(v, 0, sizeof *v);
    long minf = min_freq <= 0 ? 1 : min_freq;
    rank_key *keys = malloc((n ? n : 1) * sizeof *keys);
    if (!keys) return data_fail(err, errlen, DATA_ENOMEM, "vocabulary: out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (counts[i] < minf || is_reserved(strs[i])) continue;
        keys[k].count = counts[i];
        keys[k].first = first ? first[i] : (long)i;
        keys[k].i = i;
        k++;
    }
    if (k > (size_t)INT32_MAX - DATA_NRESERVED) {
        free(keys);
        return data_fail(err, errlen, DATA_EINVAL, "vocabulary: %zu tokens is too many", k);
    }
    qsort(keys, k, sizeof *keys, by_count_then_first);
    int size = (int)k + DATA_NRESERVED;
    char **tokens = calloc((size_t)size, sizeof *tokens);
    if (!tokens) goto nomem;
    for (int i = 0; i < size; i++) {
        const char *s = i < DATA_NRESERVED ? reserved[i] : strs[keys[i - DATA_NRESERVED].i];
        size_t len = strlen(s);
        tokens[i] = malloc(len + 1);
        if (!tokens[i]) {
            for (int j = 0; j < i; j++) free(tokens[j]);
            free(tokens);
            goto nomem;
        }
        memcpy(tokens[i], s, len + 1);
    }
    free(keys);
    return vocab_adopt(v, tokens, size, err, errlen);
nomem:
    free(keys);
    return data_fail(err, errlen, DATA_ENOMEM, "vocabulary: out of memory");
}

int data_vocab_build(data_vocab *v, const char *const *tokens, size_t ntokens, int min_freq,
                     char *err, size_t errlen)
{
    if (!v) return data_fail(err, errlen, DATA_EINVAL, "data_vocab_build: v is NULL");
    memset(v, 0, sizeof *v);
    if (!tokens && ntokens)
        return data_fail(err, errlen, DATA_EINVAL, "data_vocab_build: tokens is NULL");
    data_strtab t;
    if (data_strtab_init(&t, 1024) != DATA_OK)
        return data_fail(err, errlen, DATA_ENOMEM, "vocabulary: out of memory");
    for (size_t i = 0; i < ntokens; i++) {
        if (!tokens[i]) {
            data_strtab_free(&t);
            return data_fail(err, errlen, DATA_EINVAL, "data_vocab_build: token %zu is NULL", i);
        }
        if (data_strtab_add(&t, tokens[i], strlen(tokens[i])) < 0) {
            data_strtab_free(&t);
            return data_fail(err, errlen, DATA_ENOMEM, "vocabulary: out of memory");
        }
    }
    int rc = data_vocab_from_counts(v, t.strs, t.counts, NULL, t.n, min_freq, err, errlen);
    data_strtab_free(&t);
    return rc;
}

int data_vocab_id_n(const data_vocab *v, const char *token, size_t len)
{
    if (!v || !v->index || !token) return DATA_UNK;
    const vocab_index *ix = v->index;
    int32_t id = ix->slots[probe(ix->slots, ix->mask, v->tokens, token, len)];
    return id >= 0 ? id : DATA_UNK;
}

int data_vocab_id(const data_vocab *v, const char *token)
{
    if (!token) return DATA_UNK;
    return data_vocab_id_n(v, token, strlen(token));
}

/* Corpora: translation pairs (fra-eng, numbers, any tab-separated file) and
 * language-modelling token streams (timemachine, numbers, any text file),
 * loaded the way Dive into Deep Learning loads them.
 *
 * Pairs (the book's preprocess_nmt / tokenize_nmt / build_array_nmt): each
 * line "source\ttarget[\tanything]" is normalised (data_normalize), its first
 * two fields split on ' ' (empty tokens dropped), the vocabularies built from
 * the training pairs only, and each sentence encoded as ids + <eos>,
 * truncated or padded to T; valid length = count of non-<pad> ids.
 *
 * Loading is one pass over the file: tokens are interned into one string
 * table as they are read (ids in order of first appearance) and only mapped
 * to vocabulary ids once the vocabularies exist. */
#include "data_internal.h"
#include "rng.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUMBERS_DEFAULT 20000L

/* ------------------------------------------------------------- encoding */

/* Row of T ids from interned tokens tok[0..len) through remap, then <eos>,
 * then <pad>; returns the number of non-<pad> ids. */
static int32_t encode_row(const int32_t *tok, long len, const int32_t *remap, int32_t *row, int T)
{
    int32_t valid = 0;
    for (int t = 0; t < T; t++) {
        row[t] = t < len ? remap[tok[t]] : (t == len ? DATA_EOS : DATA_PAD);
        valid += row[t] != DATA_PAD;
    }
    return valid;
}

int data_encode_sentence(const data_vocab *v, const char *normalised, int32_t *ids, int T)
{
    if (!v || !normalised || !ids || T < 1) return DATA_EINVAL;
    int t = 0;
    const char *p = normalised;
    while (*p && t < T) {
        if (*p == ' ') {
            p++;
            continue;
        }
        const char *e = strchr(p, ' ');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        ids[t++] = data_vocab_id_n(v, p, len);
        p += len;
    }
    if (t < T) ids[t++] = DATA_EOS;
    while (t < T) ids[t++] = DATA_PAD;
    int valid = 0;
    for (t = 0; t < T; t++) valid += ids[t] != DATA_PAD;
    return valid;
}

/* ------------------------------------------------------ token collection */

/* Interned token ids of everything read, plus per-unit offsets. */
typedef struct collect {
    data_strtab tab;
    int32_t *tok; /* (ntok) interned ids */
    size_t ntok, captok;
    long *off; /* (noff) token offsets: pairs use 2 per pair (src, tgt) + 1 */
    size_t noff, capoff;
} collect;

static int collect_init(collect *c)
{
    memset(c, 0, sizeof *c);
    return data_strtab_init(&c->tab, 4096);
}

static void collect_free(collect *c)
{
    data_strtab_free(&c->tab);
    free(c->tok);
    free(c->off);
    memset(c, 0, sizeof *c);
}

static int push_tok(collect *c, const char *s, size_t len)
{
    long id = data_strtab_add(&c->tab, s, len);
    if (id < 0) return DATA_ENOMEM;
    if (c->ntok == c->captok) {
        size_t cap = c->captok ? 2 * c->captok : 1 << 16;
        int32_t *t = realloc(c->tok, cap * sizeof *t);
        if (!t) return DATA_ENOMEM;
        c->tok = t;
        c->captok = cap;
    }
    c->tok[c->ntok++] = (int32_t)id;
    return DATA_OK;
}

static int push_off(collect *c)
{
    if (c->noff == c->capoff) {
        size_t cap = c->capoff ? 2 * c->capoff : 1 << 12;
        long *o = realloc(c->off, cap * sizeof *o);
        if (!o) return DATA_ENOMEM;
        c->off = o;
        c->capoff = cap;
    }
    c->off[c->noff++] = (long)c->ntok;
    return DATA_OK;
}

/* Interns the tokens of s[0..len) split on ' ' (and '\t' when tabs), skipping
 * empty ones. A token over DATA_MAX_TOKEN_BYTES is a format error at where. */
static int push_words(collect *c, const char *s, size_t len, int tabs, const char *where, long line,
                      char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len) {
        if (s[i] == ' ' || (tabs && s[i] == '\t')) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < len && s[j] != ' ' && !(tabs && s[j] == '\t')) j++;
        if (j - i > DATA_MAX_TOKEN_BYTES) {
            char shown[120];
            return data_fail(err, errlen, DATA_EFORMAT,
                             "%s:%ld: token of %zu bytes (more than %d): \"%s\"", where, line,
                             j - i, DATA_MAX_TOKEN_BYTES,
                             data_escape(s + i, 24, shown, sizeof shown));
        }
        if (push_tok(c, s + i, j - i) != DATA_OK)
            return data_fail(err, errlen, DATA_ENOMEM, "%s: out of memory", where);
        i = j;
    }
    return DATA_OK;
}

/* Interns every UTF-8 character of s[0..len) (already validated). */
static int push_chars(collect *c, const char *s, size_t len, const char *where, char *err,
                      size_t errlen)
{
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = data_utf8_decode((const unsigned char *)s + i, len - i, &cp);
        if (k == 0) k = 1; /* cannot happen on validated text */
        if (push_tok(c, s + i, k) != DATA_OK)
            return data_fail(err, errlen, DATA_ENOMEM, "%s: out of memory", where);
        i += k;
    }
    return DATA_OK;
}

static int normalize_line(const char *line, size_t len, data_buf *b, const char *where, long ln,
                          char *err, size_t errlen)
{
    b->len = 0;
    size_t bad = 0;
    int rc = data_normalize_append(line, len, b, &bad);
    if (rc == DATA_EFORMAT)
        return data_fail(err, errlen, rc, "%s:%ld: %s (byte %zu of the line)", where, ln,
                         line[bad] == '\0' ? "NUL byte" : "invalid UTF-8", bad + 1);
    if (rc != DATA_OK) return data_fail(err, errlen, DATA_ENOMEM, "%s: out of memory", where);
    return DATA_OK;
}

/* Next line of buf[*pos..len) (without its '\n' or "\r\n"); 0 at the end. */
static int next_line(const char *buf, size_t len, size_t *pos, const char **line, size_t *ll)
{
    if (*pos >= len) return 0;
    const char *s = buf + *pos;
    const char *nl = memchr(s, '\n', len - *pos);
    size_t n = nl ? (size_t)(nl - s) : len - *pos;
    *pos += n + (nl != NULL);
    if (n && s[n - 1] == '\r') n--;
    *line = s;
    *ll = n;
    return 1;
}

static int blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t') return 0;
    return 1;
}

/* ------------------------------------------------------------------ pairs */

int data_pair_fields(const char *line, size_t len, size_t *src_len, const char **tgt,
                     size_t *tgt_len)
{
    if (blank(line, len)) return 1;
    const char *tab = memchr(line, '\t', len);
    if (!tab) return -1;
    const char *rest = tab + 1;
    const char *tab2 = memchr(rest, '\t', len - (size_t)(rest - line));
    *src_len = (size_t)(tab - line);
    *tgt = rest;
    *tgt_len = (size_t)((tab2 ? tab2 : line + len) - rest); /* extra columns are ignored */
    return 0;
}

size_t data_skip_bom(const char *text, size_t len)
{
    return len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;
}

/* One non-blank pair line: normalise the first two tab fields and intern
 * their tokens. */
static int pair_line(collect *c, data_buf *norm, const char *line, size_t len, const char *where,
                     long ln, char *err, size_t errlen)
{
    size_t sl, tl;
    const char *t;
    if (data_pair_fields(line, len, &sl, &t, &tl) != 0)
        return data_fail(err, errlen, DATA_EFORMAT, "%s:%ld: no tab between source and target",
                         where, ln);
    const size_t used = (size_t)(t - line) + tl; /* source, tab, target */
    /* a line's own CR is gone (CRLF); one inside source or target is a file
     * of CR line endings, whose lines would run together as one pair */
    if (memchr(line, '\r', used))
        return data_fail(err, errlen, DATA_EFORMAT,
                         "%s:%ld: a carriage return inside the line (a file with CR line "
                         "endings? tr '\\r' '\\n' converts it)",
                         where, ln);
    int rc = normalize_line(line, used, norm, where, ln, err, errlen);
    if (rc != DATA_OK) return rc;
    const char *ntab = memchr(norm->p, '\t', norm->len);
    size_t slen = (size_t)(ntab - norm->p);
    if (push_off(c) != DATA_OK) goto nomem;
    rc = push_words(c, norm->p, slen, 0, where, ln, err, errlen);
    if (rc != DATA_OK) return rc;
    if (push_off(c) != DATA_OK) goto nomem;
    return push_words(c, ntab + 1, norm->len - slen - 1, 0, where, ln, err, errlen);
nomem:
    return data_fail(err, errlen, DATA_ENOMEM, "%s: out of memory", where);
}

void data_size_text(char *out, size_t n, double bytes)
{
    if (bytes >= 1e9)
        snprintf(out, n, "%.1f GB", bytes / 1e9);
    else
        snprintf(out, n, "%.0f MB", bytes / 1e6 < 1 ? 1 : bytes / 1e6);
}

/* n pairs padded to num_steps: their source and target ids must fit in
 * o->mem_limit (when given), or one line names the options that ask. */
static int ids_fit(const data_pairs_opts *o, long n, const char *where, char *err, size_t errlen)
{
    const double need = (double)n * (double)o->num_steps * 2.0 * sizeof(int32_t);
    if (o->mem_limit <= 0 || need <= o->mem_limit) return DATA_OK;
    char a[32], b[32];
    data_size_text(a, sizeof a, need);
    data_size_text(b, sizeof b, o->mem_limit);
    return data_fail(err, errlen, DATA_ENOMEM,
                     "%s: --steps %d over %ld pairs needs %s for the token ids alone, but %s is "
                     "available: choose a smaller --steps or --num-examples",
                     where, o->num_steps, n, a, b);
}

/* Reads up to `limit` pairs (0 = all) of dataset into c (2 offsets per pair,
 * plus the closing one). *label names the source for messages. */
static int read_pairs(collect *c, const data_pairs_opts *o, char **label, char *err, size_t errlen)
{
    data_buf norm = {0};
    char *text = NULL;
    int rc = DATA_OK;
    long n = 0;
    if (strcmp(o->dataset, "numbers") == 0) {
        *label = NULL;
        long limit = o->num_examples ? o->num_examples : NUMBERS_DEFAULT;
        rc = ids_fit(o, limit, "numbers", err, errlen); /* before generating them */
        if (rc != DATA_OK) goto out;
        char line[512];
        for (long i = 0; i < limit; i++) {
            int len = data_numbers_pair(i, line, sizeof line);
            if (len < 0) {
                rc = data_fail(err, errlen, DATA_EINVAL, "numbers: pair %ld does not fit", i);
                goto out;
            }
            rc = pair_line(c, &norm, line, (size_t)len, "numbers", i + 1, err, errlen);
            if (rc != DATA_OK) goto out;
            n++;
        }
    } else {
        if (strcmp(o->dataset, "fra-eng") == 0) {
            rc = data_locate("fra-eng/fra.txt", o->data_dir, label, err, errlen);
            if (rc != DATA_OK) goto out;
        } else {
            *label = malloc(strlen(o->dataset) + 1);
            if (!*label) goto nomem;
            strcpy(*label, o->dataset);
        }
        size_t len, pos = 0;
        rc = data_read_file(*label, &text, &len, err, errlen);
        if (rc != DATA_OK) goto out;
        pos = data_skip_bom(text, len);
        const char *line;
        size_t ll;
        long ln = 0;
        while ((o->num_examples == 0 || n < o->num_examples) &&
               next_line(text, len, &pos, &line, &ll)) {
            ln++;
            if (blank(line, ll)) continue;
            rc = pair_line(c, &norm, line, ll, *label, ln, err, errlen);
            if (rc != DATA_OK) goto out;
            if (++n > INT_MAX - 1) {
                rc = data_fail(err, errlen, DATA_EINVAL, "%s: more than %d pairs", *label,
                               INT_MAX - 1);
                goto out;
            }
        }
        if (n == 0) {
            rc = data_fail(err, errlen, DATA_EFORMAT, "%s:%ld: no sentence pairs in the file",
                           *label, ln ? ln : 1);
            goto out;
        }
    }
    if (push_off(c) != DATA_OK) goto nomem;
    goto out;
nomem:
    rc = data_fail(err, errlen, DATA_ENOMEM, "%s: out of memory", o->dataset);
out:
    free(text);
    data_buf_free(&norm);
    return rc;
}

typedef struct keyed {
    uint64_t key;
    long i;
} keyed;

static int by_key(const void *a, const void *b)
{
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* is_valid[i] = 1 for the nvalid pairs with the smallest keys
 * rng(seed, RNG_VALID, i): a pair's key depends on nothing but seed and i. */
static int choose_valid(long n, long nvalid, uint64_t seed, unsigned char *is_valid)
{
    memset(is_valid, 0, (size_t)n);
    if (nvalid == 0) return DATA_OK;
    keyed *k = malloc((size_t)n * sizeof *k);
    if (!k) return DATA_ENOMEM;
    for (long i = 0; i < n; i++) {
        k[i].key = rng_u64(seed, RNG_VALID, (uint64_t)i, 0, 0);
        k[i].i = i;
    }
    qsort(k, (size_t)n, sizeof *k, by_key);
    for (long j = 0; j < nvalid; j++) is_valid[k[j].i] = 1;
    free(k);
    return DATA_OK;
}

static int alloc_set(data_pairs *p, long n, int T)
{
    size_t cells = (size_t)(n ? n : 1) * (size_t)T;
    p->n = (int)n;
    p->num_steps = T;
    p->src = malloc(cells * sizeof *p->src);
    p->tgt = malloc(cells * sizeof *p->tgt);
    p->src_valid = malloc((size_t)(n ? n : 1) * sizeof *p->src_valid);
    p->tgt_valid = malloc((size_t)(n ? n : 1) * sizeof *p->tgt_valid);
    return (p->src && p->tgt && p->src_valid && p->tgt_valid) ? DATA_OK : DATA_ENOMEM;
}

void data_pairs_free(data_pairs *p)
{
    if (!p) return;
    free(p->src);
    free(p->tgt);
    free(p->src_valid);
    free(p->tgt_valid);
    if (p->tgt_text)
        for (int i = 0; i < p->n; i++) free(p->tgt_text[i]);
    free(p->tgt_text);
    if (p->owns_vocab) {
        data_vocab_free(&p->src_vocab);
        data_vocab_free(&p->tgt_vocab);
    }
    memset(p, 0, sizeof *p);
}

/* A vocabulary of the reserved tokens alone would train on <unk> only. */
static int not_empty(const data_vocab *v, const long *counts, size_t n, int min_freq,
                     const char *where, const char *side, char *err, size_t errlen)
{
    if (v->size > DATA_NRESERVED) return DATA_OK;
    long most = 0;
    for (size_t i = 0; i < n; i++) most = counts[i] > most ? counts[i] : most;
    if (most == 0 || min_freq <= 1) /* no token at all, or only reserved ones */
        return data_fail(err, errlen, DATA_EFORMAT, "%s: no %s%stoken to build a vocabulary of",
                         where, side, side[0] ? " " : "");
    return data_fail(err, errlen, DATA_EFORMAT,
                     "%s: --min-freq %d leaves no %s%stoken in the vocabulary (the most frequent "
                     "occurs %ld time%s)",
                     where, min_freq, side, side[0] ? " " : "", most, most == 1 ? "" : "s");
}

/* The tokens t0..t1 of c joined by spaces (malloc'd; NULL when out of memory). */
static char *joined_text(const collect *c, long t0, long t1)
{
    size_t len = 1;
    for (long t = t0; t < t1; t++) len += strlen(c->tab.strs[c->tok[t]]) + 1;
    char *text = malloc(len), *w = text;
    if (!text) return NULL;
    for (long t = t0; t < t1; t++) {
        const size_t k = strlen(c->tab.strs[c->tok[t]]);
        if (t > t0) *w++ = ' ';
        memcpy(w, c->tab.strs[c->tok[t]], k);
        w += k;
    }
    *w = '\0';
    return text;
}

/* Every pair of c into its set, encoded with the vocabularies' ids (remap:
 * collected id → vocabulary id per side); the held-out targets also as
 * text (the references of BLEU). DATA_OK or DATA_ENOMEM. */
static int fill_sets(const collect *c, long n, const unsigned char *is_valid, int T,
                     const int32_t *remap_src, const int32_t *remap_tgt, data_pairs *train,
                     data_pairs *valid)
{
    long rt = 0, rv = 0;
    for (long p = 0; p < n; p++) {
        data_pairs *set = is_valid[p] ? valid : train;
        const long r = is_valid[p] ? rv++ : rt++;
        const long s0 = c->off[2 * p], s1 = c->off[2 * p + 1], t1 = c->off[2 * p + 2];
        set->src_valid[r] = encode_row(c->tok + s0, s1 - s0, remap_src, set->src + r * T, T);
        set->tgt_valid[r] = encode_row(c->tok + s1, t1 - s1, remap_tgt, set->tgt + r * T, T);
        if (set == valid && !(valid->tgt_text[r] = joined_text(c, s1, t1))) return DATA_ENOMEM;
    }
    return DATA_OK;
}

/* Token counts over the training pairs only, and each token's first
 * position; side 0 = source, 1 = target, nd ids a side. */
static void count_training(const collect *c, long n, const unsigned char *is_valid, size_t nd,
                           long *cnt, long *first)
{
    for (size_t i = 0; i < 2 * nd; i++) cnt[i] = 0, first[i] = -1;
    long pos = 0;
    for (long p = 0; p < n; p++) {
        if (is_valid[p]) continue;
        for (int side = 0; side < 2; side++) {
            long *cs = cnt + side * nd, *fs = first + side * nd;
            for (long t = c->off[2 * p + side]; t < c->off[2 * p + side + 1]; t++) {
                const int32_t id = c->tok[t];
                if (fs[id] < 0) fs[id] = pos;
                cs[id]++;
                pos++;
            }
        }
    }
}

int data_pairs_load(data_pairs *train, data_pairs *valid, const data_pairs_opts *o, char *err,
                    size_t errlen)
{
    if (!train || !o) return data_fail(err, errlen, DATA_EINVAL, "data_pairs_load: NULL argument");
    memset(train, 0, sizeof *train);
    if (valid) memset(valid, 0, sizeof *valid);
    if (!o->dataset || !*o->dataset)
        return data_fail(err, errlen, DATA_EINVAL, "--dataset: no dataset given");
    if (o->num_steps < 1)
        return data_fail(err, errlen, DATA_EINVAL, "num_steps %d: must be >= 1", o->num_steps);
    if (o->num_examples < 0 || o->num_examples > INT_MAX - 1)
        return data_fail(err, errlen, DATA_EINVAL, "num_examples %ld: out of range",
                         o->num_examples);
    if (o->valid < 0)
        return data_fail(err, errlen, DATA_EINVAL, "valid %d: must be >= 0", o->valid);
    if (o->valid > 0 && !valid)
        return data_fail(err, errlen, DATA_EINVAL, "valid %d pairs asked for but no set to fill",
                         o->valid);

    collect c;
    char *label = NULL;
    unsigned char *is_valid = NULL;
    long *cnt = NULL, *first = NULL;
    int32_t *remap_src = NULL, *remap_tgt = NULL;
    int rc;
    if (collect_init(&c) != DATA_OK) return data_fail(err, errlen, DATA_ENOMEM, "out of memory");
    rc = read_pairs(&c, o, &label, err, errlen);
    if (rc != DATA_OK) goto out;
    long n = (long)(c.noff - 1) / 2;
    const char *where = label ? label : o->dataset;
    if (o->valid >= n) {
        rc = data_fail(err, errlen, DATA_EINVAL,
                       "--valid %d: leaves no training pairs (%ld pairs loaded from %s)", o->valid,
                       n, where);
        goto out;
    }

    is_valid = malloc((size_t)n);
    size_t nd = c.tab.n ? c.tab.n : 1;
    cnt = malloc(2 * nd * sizeof *cnt);
    first = malloc(2 * nd * sizeof *first);
    remap_src = malloc(nd * sizeof *remap_src);
    remap_tgt = malloc(nd * sizeof *remap_tgt);
    if (!is_valid || !cnt || !first || !remap_src || !remap_tgt ||
        choose_valid(n, o->valid, o->seed, is_valid) != DATA_OK)
        goto nomem;

    count_training(&c, n, is_valid, nd, cnt, first);
    int mf = o->min_freq;
    rc =
        data_vocab_from_counts(&train->src_vocab, c.tab.strs, cnt, first, c.tab.n, mf, err, errlen);
    if (rc == DATA_OK)
        rc = not_empty(&train->src_vocab, cnt, c.tab.n, mf, where, "source", err, errlen);
    if (rc != DATA_OK) goto out;
    rc = data_vocab_from_counts(&train->tgt_vocab, c.tab.strs, cnt + nd, first + nd, c.tab.n, mf,
                                err, errlen);
    if (rc == DATA_OK)
        rc = not_empty(&train->tgt_vocab, cnt + nd, c.tab.n, mf, where, "target", err, errlen);
    if (rc != DATA_OK) goto out;
    train->owns_vocab = 1;
    for (size_t i = 0; i < c.tab.n; i++) {
        remap_src[i] = data_vocab_id(&train->src_vocab, c.tab.strs[i]);
        remap_tgt[i] = data_vocab_id(&train->tgt_vocab, c.tab.strs[i]);
    }

    int T = o->num_steps;
    rc = ids_fit(o, n, where, err, errlen);
    if (rc != DATA_OK) goto out;
    if (alloc_set(train, n - o->valid, T) != DATA_OK) goto nomem;
    if (valid) {
        if (alloc_set(valid, o->valid, T) != DATA_OK) goto nomem;
        valid->src_vocab = train->src_vocab;
        valid->tgt_vocab = train->tgt_vocab;
        valid->owns_vocab = 0;
        valid->tgt_text = calloc((size_t)(o->valid ? o->valid : 1), sizeof(char *));
        if (!valid->tgt_text) goto nomem;
    }
    if (fill_sets(&c, n, is_valid, T, remap_src, remap_tgt, train, valid) != DATA_OK) goto nomem;
    rc = DATA_OK;
    goto out;
nomem:
    rc = data_fail(err, errlen, DATA_ENOMEM, "%s: out of memory", o->dataset);
out:
    if (rc != DATA_OK) {
        if (valid) {
            valid->owns_vocab = 0;
            data_pairs_free(valid);
        }
        train->owns_vocab = 1;
        data_pairs_free(train);
    }
    collect_free(&c);
    free(label);
    free(is_valid);
    free(cnt);
    free(first);
    free(remap_src);
    free(remap_tgt);
    return rc;
}

/* ---------------------------------------------------------------- streams */

/* timemachine, as the book: per line re.sub('[^A-Za-z]+', ' ', line).strip()
 * .lower(); char tokens are the characters of all lines concatenated with no
 * separator (load_corpus_time_machine), word tokens split on spaces. */
static int stream_timemachine(collect *c, const char *text, size_t len, data_token_kind kind,
                              const char *where, char *err, size_t errlen)
{
    data_buf b = {0};
    int rc = DATA_OK;
    long ln = 0;
    size_t i = 0;
    while (i < len) {
        /* Python's universal newlines: \n, \r\n and \r end a line */
        size_t j = i;
        while (j < len && text[j] != '\n' && text[j] != '\r') j++;
        ln++;
        b.len = 0;
        if (data_buf_reserve(&b, j - i) != DATA_OK) goto nomem;
        int gap = 0;
        for (size_t k = i; k < j; k++) {
            char ch = text[k];
            if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z')) {
                if (gap && b.len) b.p[b.len++] = ' ';
                gap = 0;
                b.p[b.len++] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
            } else {
                gap = 1;
            }
        }
        if (kind == DATA_TOKENS_CHAR)
            rc = push_chars(c, b.p, b.len, where, err, errlen);
        else
            rc = push_words(c, b.p, b.len, 0, where, ln, err, errlen);
        if (rc != DATA_OK) goto out;
        i = j;
        if (i < len && text[i] == '\r' && i + 1 < len && text[i + 1] == '\n') i++;
        if (i < len) i++;
    }
    goto out;
nomem:
    rc = data_fail(err, errlen, DATA_ENOMEM, "%s: out of memory", where);
out:
    data_buf_free(&b);
    return rc;
}

/* Any text file: every line normalised (data_normalize); word tokens split on
 * spaces and tabs; char tokens are UTF-8 characters, one ' ' between lines. */
static int stream_text(collect *c, const char *text, size_t len, data_token_kind kind,
                       const char *where, char *err, size_t errlen)
{
    data_buf norm = {0};
    int rc = DATA_OK;
    size_t pos = 0, ll;
    const char *line;
    long ln = 0;
    pos = data_skip_bom(text, len);
    while (next_line(text, len, &pos, &line, &ll)) {
        ln++;
        rc = normalize_line(line, ll, &norm, where, ln, err, errlen);
        if (rc != DATA_OK) goto out;
        if (kind == DATA_TOKENS_WORD) {
            rc = push_words(c, norm.p, norm.len, 1, where, ln, err, errlen);
        } else if (norm.len) {
            if (c->ntok && (rc = push_chars(c, " ", 1, where, err, errlen)) != DATA_OK) goto out;
            rc = push_chars(c, norm.p, norm.len, where, err, errlen);
        }
        if (rc != DATA_OK) goto out;
    }
out:
    data_buf_free(&norm);
    return rc;
}

int data_stream_load(data_stream *s, const data_stream_opts *o, char *err, size_t errlen)
{
    if (!s || !o) return data_fail(err, errlen, DATA_EINVAL, "data_stream_load: NULL argument");
    memset(s, 0, sizeof *s);
    if (!o->dataset || !*o->dataset)
        return data_fail(err, errlen, DATA_EINVAL, "--dataset: no dataset given");
    if (o->tokens != DATA_TOKENS_CHAR && o->tokens != DATA_TOKENS_WORD)
        return data_fail(err, errlen, DATA_EINVAL, "unknown token kind %d", (int)o->tokens);
    if (o->max_tokens < 0)
        return data_fail(err, errlen, DATA_EINVAL, "max_tokens %ld: must be >= 0", o->max_tokens);
    if (strcmp(o->dataset, "fra-eng") == 0)
        return data_fail(err, errlen, DATA_EINVAL,
                         "fra-eng is a corpus of sentence pairs (--task translate); a text is "
                         "timemachine, numbers or a file's PATH");

    collect c;
    char *path = NULL, *text = NULL;
    int32_t *remap = NULL;
    size_t len = 0;
    int rc;
    if (collect_init(&c) != DATA_OK) return data_fail(err, errlen, DATA_ENOMEM, "out of memory");
    const char *where = o->dataset;
    if (strcmp(o->dataset, "numbers") == 0) {
        /* the English sides of the default numbers corpus, joined by " . " */
        data_buf b = {0};
        char line[512];
        for (long i = 0; i < NUMBERS_DEFAULT; i++) {
            int n = data_numbers_pair(i, line, sizeof line);
            char *tab = n > 0 ? strchr(line, '\t') : NULL;
            if (!tab || (i && data_buf_append(&b, " . ", 3) != DATA_OK) ||
                data_buf_append(&b, line, (size_t)(tab - line)) != DATA_OK) {
                data_buf_free(&b);
                goto nomem;
            }
        }
        text = b.p;
        len = b.len;
        rc = stream_text(&c, text, len, o->tokens, where, err, errlen);
    } else {
        int tm = strcmp(o->dataset, "timemachine") == 0;
        if (tm) {
            rc = data_locate("timemachine.txt", o->data_dir, &path, err, errlen);
            if (rc != DATA_OK) goto out;
        } else {
            path = malloc(strlen(o->dataset) + 1);
            if (!path) goto nomem;
            strcpy(path, o->dataset);
        }
        where = path;
        rc = data_read_file(path, &text, &len, err, errlen);
        if (rc != DATA_OK) goto out;
        if (tm)
            rc = stream_timemachine(&c, text, len, o->tokens, where, err, errlen);
        else
            rc = stream_text(&c, text, len, o->tokens, where, err, errlen);
    }
    if (rc != DATA_OK) goto out;
    if (c.ntok == 0) {
        rc = data_fail(err, errlen, DATA_EFORMAT, "%s: no tokens in the text", where);
        goto out;
    }
    if (c.ntok > (size_t)LONG_MAX / 2) goto nomem;

    /* The vocabulary counts the whole text; max_tokens then truncates the
     * stream (the book's load_corpus_time_machine). */
    rc = data_vocab_from_counts(&s->vocab, c.tab.strs, c.tab.counts, NULL, c.tab.n, o->min_freq,
                                err, errlen);
    if (rc == DATA_OK)
        rc = not_empty(&s->vocab, c.tab.counts, c.tab.n, o->min_freq, where, "", err, errlen);
    if (rc != DATA_OK) goto out;
    remap = malloc(c.tab.n * sizeof *remap);
    if (!remap) goto nomem;
    for (size_t i = 0; i < c.tab.n; i++) remap[i] = data_vocab_id(&s->vocab, c.tab.strs[i]);
    long n = (long)c.ntok;
    if (o->max_tokens > 0 && o->max_tokens < n) n = o->max_tokens;
    s->ids = malloc((size_t)n * sizeof *s->ids);
    if (!s->ids) goto nomem;
    for (long i = 0; i < n; i++) s->ids[i] = remap[c.tok[i]];
    s->n = n;
    rc = DATA_OK;
    goto out;
nomem:
    rc = data_fail(err, errlen, DATA_ENOMEM, "%s: out of memory", o->dataset);
out:
    if (rc != DATA_OK) data_stream_free(s);
    collect_free(&c);
    free(path);
    free(text);
    free(remap);
    return rc;
}

void data_stream_free(data_stream *s)
{
    if (!s) return;
    free(s->ids);
    data_vocab_free(&s->vocab);
    memset(s, 0, sizeof *s);
}

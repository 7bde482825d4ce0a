/* BLEU: standard corpus BLEU-4 (Papineni et al.) as NLTK's corpus_bleu
 * computes it without smoothing (clipped n-gram counts summed over the
 * corpus, a per-sentence precision denominator of at least 1, geometric mean,
 * brevity penalty exp(1 − r/c) when c ≤ r, 0 when c = 0), the book's sentence
 * score, and the seqpar bleu command. Tokens are split on whitespace as
 * Python's str.split() does. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bleu.h"
#include "cli.h"
#include "data.h"
#include "trainer.h"

/* Length of the whitespace character at p (0 if none): what Python's
 * str.split() splits on, so that figures agree with Python tools: ASCII
 * space, \t \n \v \f \r, \x1c-\x1f, and U+0085, U+00A0, U+1680,
 * U+2000-U+200A, U+2028, U+2029, U+202F, U+205F, U+3000 in UTF-8. */
static int ws_len(const unsigned char *p)
{
    if (*p == ' ' || (*p >= '\t' && *p <= '\r') || (*p >= 0x1c && *p <= 0x1f)) return 1;
    if (p[0] == 0xc2 && (p[1] == 0x85 || p[1] == 0xa0)) return 2;
    if (p[0] == 0xe1 && p[1] == 0x9a && p[2] == 0x80) return 3;
    if (p[0] == 0xe2 && p[1] == 0x80 &&
        ((p[2] >= 0x80 && p[2] <= 0x8a) || p[2] == 0xa8 || p[2] == 0xa9 || p[2] == 0xaf))
        return 3;
    if (p[0] == 0xe2 && p[1] == 0x81 && p[2] == 0x9f) return 3;
    if (p[0] == 0xe3 && p[1] == 0x80 && p[2] == 0x80) return 3;
    return 0;
}

/* The whitespace-separated tokens of a line, as (start, length) spans. */
typedef struct spans {
    const char **tok;
    int *len;
    uint64_t *hash; /* the n-grams' hashes, for one n at a time */
    int n;
} spans;

long bleu_count_tokens(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    int w;
    while (*p) {
        while ((w = ws_len(p)) > 0) p += w;
        if (!*p) break;
        while (*p && ws_len(p) == 0) p++;
        n++;
    }
    return n;
}

static void spans_free(spans *t)
{
    free(t->tok), free(t->len), free(t->hash);
}

/* Splits s on whitespace (at most BLEU_MAX_TOKENS tokens): 0, or -1 when out
 * of memory. */
static int spans_split(const char *s, spans *t)
{
    long count = bleu_count_tokens(s);
    if (count > BLEU_MAX_TOKENS) count = BLEU_MAX_TOKENS;
    const size_t cap = count > 0 ? (size_t)count : 1;
    t->tok = malloc(cap * sizeof *t->tok);
    t->len = malloc(cap * sizeof *t->len);
    t->hash = malloc(cap * sizeof *t->hash);
    t->n = 0;
    if (!t->tok || !t->len || !t->hash) {
        spans_free(t);
        return -1;
    }
    const unsigned char *p = (const unsigned char *)s;
    int w;
    while (*p && t->n < count) {
        while ((w = ws_len(p)) > 0) p += w;
        if (!*p) break;
        const unsigned char *b = p;
        while (*p && ws_len(p) == 0) p++;
        t->tok[t->n] = (const char *)b;
        t->len[t->n++] = (int)(p - b);
    }
    return 0;
}

/* 64-bit FNV-1a of an n-gram (tokens separated by a byte no token has). */
static uint64_t ngram_hash(const spans *t, int i, int n)
{
    uint64_t h = 1469598103934665603ULL;
    for (int k = i; k < i + n; k++) {
        for (int c = 0; c < t->len[k]; c++)
            h = (h ^ (unsigned char)t->tok[k][c]) * 1099511628211ULL;
        h = (h ^ 0x1f) * 1099511628211ULL;
    }
    return h;
}

/* The hashes of t's n-grams into t->hash; returns their count. */
static int ngrams(spans *t, int n)
{
    const int c = t->n - n + 1 > 0 ? t->n - n + 1 : 0;
    for (int i = 0; i < c; i++) t->hash[i] = ngram_hash(t, i, n);
    return c;
}

/* The first of n lines with more than BLEU_MAX_TOKENS tokens, or -1. */
static long longest_line(char **lines, long n)
{
    for (long i = 0; i < n; i++)
        if (bleu_count_tokens(lines[i]) > BLEU_MAX_TOKENS) return i;
    return -1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Clipped matches of hypothesis n-grams against reference n-grams:
 * Σ over distinct n-grams of min(count in hyp, count in ref). */
static double clipped_matches(uint64_t *h, int nh, uint64_t *r, int nr)
{
    qsort(h, (size_t)nh, sizeof *h, cmp_u64);
    qsort(r, (size_t)nr, sizeof *r, cmp_u64);
    double m = 0;
    int i = 0, j = 0;
    while (i < nh && j < nr) {
        if (h[i] < r[j])
            i++;
        else if (h[i] > r[j])
            j++;
        else {
            uint64_t v = h[i];
            int ch = 0, cr = 0;
            while (i < nh && h[i] == v) i++, ch++;
            while (j < nr && r[j] == v) j++, cr++;
            m += ch < cr ? ch : cr;
        }
    }
    return m;
}

int bleu_add(bleu_stats *s, const char *hyp, const char *ref, int max_n)
{
    spans h = {0}, r = {0};
    if (spans_split(hyp, &h) != 0 || spans_split(ref, &r) != 0) {
        spans_free(&h);
        return -1;
    }
    s->hyp_len += h.n;
    s->ref_len += r.n;
    for (int n = 1; n <= max_n && n <= 4; n++) {
        const int ch = ngrams(&h, n), cr = ngrams(&r, n);
        /* NLTK's modified_precision: the denominator is max(1, hypothesis
         * n-grams) per sentence, so an empty (or too short) hypothesis
         * still counts against the corpus precision */
        s->total[n - 1] += ch > 0 ? ch : 1;
        s->match[n - 1] += clipped_matches(h.hash, ch, r.hash, cr);
    }
    spans_free(&h), spans_free(&r);
    return 0;
}

double bleu_score(const bleu_stats *s, int max_n, double *bp, double prec[4])
{
    double logsum = 0;
    int zero = 0;
    for (int n = 0; n < max_n; n++) {
        prec[n] = s->total[n] > 0 ? s->match[n] / s->total[n] : 0.0;
        if (prec[n] <= 0)
            zero = 1;
        else
            logsum += log(prec[n]) / max_n;
    }
    double c = s->hyp_len, r = s->ref_len;
    *bp = c > r ? 1.0 : c == 0 ? 0.0 : exp(1.0 - r / c);
    return zero ? 0.0 : *bp * exp(logsum);
}

double bleu_d2l(const char *pred, const char *label, int k)
{
    spans p = {0}, l = {0};
    if (spans_split(pred, &p) != 0 || spans_split(label, &l) != 0) {
        spans_free(&p);
        return NAN;
    }
    double score = 0.0; /* the book divides by len_pred */
    if (p.n > 0) {
        score = exp(fmin(0.0, 1.0 - (double)l.n / p.n));
        for (int n = 1; n <= k && n <= p.n; n++) {
            const int cp = ngrams(&p, n), cl = ngrams(&l, n);
            const double m = clipped_matches(p.hash, cp, l.hash, cl);
            score *= pow(m / cp, pow(0.5, n));
        }
    }
    spans_free(&p), spans_free(&l);
    return score;
}

/* Reads a whole text file into lines (split in place) by the corpus
 * reader's rules: a byte-order mark before the first line is not text, and a
 * NUL byte or invalid UTF-8 is an error naming the line. Returns the line
 * count, or -1 with the message in err. */
static long read_lines(const char *path, char **buf, char ***lines, char *err, size_t errlen)
{
    char *b;
    size_t n;
    if (data_read_file(path, &b, &n, err, errlen) != DATA_OK) return -1;
    const size_t bom = data_skip_bom(b, n);
    long count = 0;
    for (size_t i = bom, start = bom; i <= n; i++) {
        if (i < n && b[i] == '\0') {
            snprintf(err, errlen, "%s:%ld: NUL byte in a text file (byte %zu of the line)", path,
                     count + 1, i - start + 1);
            free(b);
            return -1;
        }
        if (i < n ? b[i] != '\n' : i == start) continue; /* no line after a final newline */
        size_t bad;
        if (!data_utf8_valid(b + start, i - start, &bad)) {
            snprintf(err, errlen, "%s:%ld: invalid UTF-8 (byte %zu of the line)", path, count + 1,
                     bad + 1);
            free(b);
            return -1;
        }
        count++;
        start = i + 1;
    }
    char **l = calloc((size_t)count + 1, sizeof *l);
    if (!l) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(b);
        return -1;
    }
    char *p = b + bom;
    for (long k = 0; k < count; k++) {
        l[k] = p;
        char *nl = memchr(p, '\n', (size_t)(b + n - p));
        if (!nl) break; /* the last line, without a newline */
        *nl = '\0';
        p = nl + 1;
    }
    *buf = b;
    *lines = l;
    return count;
}

/* ------------------------------------------------------------ seqpar bleu */

typedef struct bleu_opts {
    char ref[4096], hyp[4096];
    int max_n, d2l;
} bleu_opts;

#define F(f) CLI_FIELD(bleu_opts, f)
static const cli_opt BLEU_OPTS[] = {
    {"ref", CLI_STR, F(ref), .arg = "FILE", .help = "reference translations, one per line",
     .required = 1},
    {"hyp", CLI_STR, F(hyp), .arg = "FILE", .help = "hypotheses, one per line", .required = 1},
    {"max-n", CLI_INT, F(max_n), 1, 4, .arg = "N", .help = "longest n-gram"},
    {"d2l", CLI_FLAG, F(d2l),
     .help = "the book's sentence score per line (k = max-n) and their mean"},
};
#undef F

static const bleu_opts BLEU_DEFAULTS = {.max_n = 4};

const cli_command bleu_command = {
    .prog = "seqpar bleu",
    .defaults = &BLEU_DEFAULTS,
    .about = "Corpus BLEU (clipped n-gram precisions over the corpus, geometric mean, brevity "
             "penalty)\non whitespace tokens, x100.",
    .opts = BLEU_OPTS,
    .nopts = sizeof BLEU_OPTS / sizeof *BLEU_OPTS};

int cmd_bleu(int argc, char **argv)
{
    bleu_opts o = BLEU_DEFAULTS;
    const int parsed = cli_parse(&bleu_command, &o, argc, argv, NULL, 0, NULL);
    if (parsed) return parsed == 1 ? 0 : 2;
    const char *ref = o.ref, *hyp = o.hyp;
    const int max_n = o.max_n;
    char *rb = NULL, *hb = NULL, **rl = NULL, **hl = NULL;
    bleu_stats s;
    long bad_r = 0, bad_h = 0;
    char err[ERRLEN];
    long nr = read_lines(ref, &rb, &rl, err, sizeof err);
    long nh = nr < 0 ? 0 : read_lines(hyp, &hb, &hl, err, sizeof err);
    int rc = 0;
    if (nr < 0 || nh < 0) {
        fprintf(stderr, "seqpar bleu: %s\n", err);
        rc = 2;
    } else if (nr != nh) {
        fprintf(stderr, "seqpar bleu: %s has %ld lines but %s has %ld\n", ref, nr, hyp, nh);
        rc = 2;
    } else if ((bad_r = longest_line(rl, nr)) >= 0 || (bad_h = longest_line(hl, nh)) >= 0) {
        /* beyond BLEU_MAX_TOKENS a line's n-grams would be cut off, silently */
        fprintf(stderr, "seqpar bleu: %s:%ld: more than %d tokens on a line\n",
                bad_r >= 0 ? ref : hyp, (bad_r >= 0 ? bad_r : bad_h) + 1, BLEU_MAX_TOKENS);
        rc = 2;
    } else if (o.d2l) {
        double sum = 0;
        for (long i = 0; i < nr; i++) {
            const double score = bleu_d2l(hl[i], rl[i], max_n);
            printf("%.3f\n", score);
            sum += score;
        }
        printf("mean %.3f over %ld sentences\n", nr ? sum / nr : 0.0, nr);
    } else {
        memset(&s, 0, sizeof s);
        for (long i = 0; i < nr && rc == 0; i++)
            if (bleu_add(&s, hl[i], rl[i], max_n) != 0) {
                fprintf(stderr, "seqpar bleu: out of memory\n");
                rc = 1;
            }
    }
    if (rc == 0 && !o.d2l) {
        double bp, p[4];
        double b = bleu_score(&s, max_n, &bp, p);
        printf("BLEU = %.2f, ", 100.0 * b);
        for (int n = 0; n < max_n; n++) printf("%s%.1f", n ? "/" : "", 100.0 * p[n]);
        printf(" (BP = %.3f, ratio = %.3f, hyp_len = %.0f, ref_len = %.0f)\n", bp,
               s.ref_len > 0 ? s.hyp_len / s.ref_len : 0.0, s.hyp_len, s.ref_len);
    }
    free(rb), free(hb), free(rl), free(hl);
    return rc;
}

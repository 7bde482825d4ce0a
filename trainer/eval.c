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

#include "trainer.h"

#define MAX_TOKENS 100000

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

/* Splits s on whitespace into (start, len) spans; returns the count. */
static int split_ws(const char *s, const char **tok, int *len, int max)
{
    const unsigned char *p = (const unsigned char *)s;
    int n = 0, w;
    while (*p && n < max) {
        while ((w = ws_len(p)) > 0) p += w;
        if (!*p) break;
        const unsigned char *b = p;
        while (*p && ws_len(p) == 0) p++;
        tok[n] = (const char *)b;
        len[n++] = (int)(p - b);
    }
    return n;
}

/* 64-bit FNV-1a of an n-gram (tokens separated by a byte no token has). */
static uint64_t ngram_hash(const char **tok, const int *len, int i, int n)
{
    uint64_t h = 1469598103934665603ULL;
    for (int k = i; k < i + n; k++) {
        for (int c = 0; c < len[k]; c++) h = (h ^ (unsigned char)tok[k][c]) * 1099511628211ULL;
        h = (h ^ 0x1f) * 1099511628211ULL;
    }
    return h;
}

/* The first of n lines with more than MAX_TOKENS tokens, or -1. */
static long longest_line(char **lines, long n)
{
    static const char *tok[MAX_TOKENS + 1];
    static int len[MAX_TOKENS + 1];
    for (long i = 0; i < n; i++)
        if (split_ws(lines[i], tok, len, MAX_TOKENS + 1) > MAX_TOKENS) return i;
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

void bleu_add(bleu_stats *s, const char *hyp, const char *ref, int max_n)
{
    static const char *ht[MAX_TOKENS], *rt[MAX_TOKENS];
    static int hl[MAX_TOKENS], rl[MAX_TOKENS];
    static uint64_t hh[MAX_TOKENS], rh[MAX_TOKENS];
    int nh = split_ws(hyp, ht, hl, MAX_TOKENS), nr = split_ws(ref, rt, rl, MAX_TOKENS);
    s->hyp_len += nh;
    s->ref_len += nr;
    for (int n = 1; n <= max_n && n <= 4; n++) {
        int ch = nh - n + 1 > 0 ? nh - n + 1 : 0, cr = nr - n + 1 > 0 ? nr - n + 1 : 0;
        for (int i = 0; i < ch; i++) hh[i] = ngram_hash(ht, hl, i, n);
        for (int i = 0; i < cr; i++) rh[i] = ngram_hash(rt, rl, i, n);
        /* NLTK's modified_precision: the denominator is max(1, hypothesis
         * n-grams) per sentence, so an empty (or too short) hypothesis
         * still counts against the corpus precision */
        s->total[n - 1] += ch > 0 ? ch : 1;
        s->match[n - 1] += clipped_matches(hh, ch, rh, cr);
    }
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
    static const char *pt[MAX_TOKENS], *lt[MAX_TOKENS];
    static int pl[MAX_TOKENS], ll[MAX_TOKENS];
    static uint64_t ph[MAX_TOKENS], lh[MAX_TOKENS];
    int np = split_ws(pred, pt, pl, MAX_TOKENS), nl = split_ws(label, lt, ll, MAX_TOKENS);
    if (np == 0) return 0.0; /* the book divides by len_pred */
    double score = exp(fmin(0.0, 1.0 - (double)nl / np));
    for (int n = 1; n <= k && n <= np; n++) {
        int cp = np - n + 1, cl = nl - n + 1 > 0 ? nl - n + 1 : 0;
        for (int i = 0; i < cp; i++) ph[i] = ngram_hash(pt, pl, i, n);
        for (int i = 0; i < cl; i++) lh[i] = ngram_hash(lt, ll, i, n);
        double m = clipped_matches(ph, cp, lh, cl);
        score *= pow(m / cp, pow(0.5, n));
    }
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

int cmd_bleu(int argc, char **argv)
{
    const char *ref = NULL, *hyp = NULL;
    int max_n = 4, d2l = 0;
    for (int i = 0; i < argc; i++) {
        const char *v;
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: seqpar bleu --ref FILE --hyp FILE [--max-n N] [--d2l]\n"
                   "Corpus BLEU (clipped n-gram precisions over the corpus, geometric mean, "
                   "brevity penalty)\non whitespace tokens, x100. --d2l prints the book's "
                   "sentence score per line (k = max-n) and their mean.\n");
            return 0;
        } else if ((v = arg_value(argc, argv, &i, "--ref"))) {
            ref = v;
        } else if ((v = arg_value(argc, argv, &i, "--hyp"))) {
            hyp = v;
        } else if ((v = arg_value(argc, argv, &i, "--max-n"))) {
            long x;
            if (arg_long("seqpar bleu", "--max-n", v, 1, 4, &x)) return 2;
            max_n = (int)x;
        } else if (strcmp(argv[i], "--d2l") == 0) {
            d2l = 1;
        } else {
            fprintf(stderr, "seqpar bleu: unknown or incomplete option '%s' (see --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (!ref || !hyp) {
        fprintf(stderr, "seqpar bleu: --ref FILE and --hyp FILE are required\n");
        return 2;
    }
    char *rb = NULL, *hb = NULL, **rl = NULL, **hl = NULL;
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
        /* beyond MAX_TOKENS a line's n-grams would be cut off, silently */
        fprintf(stderr, "seqpar bleu: %s:%ld: more than %d tokens on a line\n",
                bad_r >= 0 ? ref : hyp, (bad_r >= 0 ? bad_r : bad_h) + 1, MAX_TOKENS);
        rc = 2;
    } else if (d2l) {
        double sum = 0;
        for (long i = 0; i < nr; i++) {
            double s = bleu_d2l(hl[i], rl[i], max_n);
            printf("%.3f\n", s);
            sum += s;
        }
        printf("mean %.3f over %ld sentences\n", nr ? sum / nr : 0.0, nr);
    } else {
        bleu_stats s;
        memset(&s, 0, sizeof s);
        for (long i = 0; i < nr; i++) bleu_add(&s, hl[i], rl[i], max_n);
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

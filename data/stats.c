/* Corpus statistics: n-gram frequency tables (hash of id tuples) and the
 * Zipf plot (log-log frequency against rank) as a standalone SVG. */
#include "data_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -------------------------------------------------------------- n-grams */

typedef struct gram {
    int32_t k[3]; /* ids; unused positions 0 */
    long count;
    long first; /* position of the first occurrence */
} gram;

static uint64_t hash_gram(const int32_t *k)
{
    uint64_t h = 0x243f6a8885a308d3ULL;
    for (int i = 0; i < 3; i++) {
        h ^= (uint32_t)k[i];
        h *= 0x9e3779b97f4a7c15ULL;
        h ^= h >> 29;
    }
    return h;
}

typedef struct gram_table {
    gram *g; /* (cap) distinct n-grams in order of first appearance */
    long n, cap;
    long *slots; /* (mask + 1) index into g or -1 */
    size_t mask;
} gram_table;

static size_t gram_probe(const gram_table *t, const int32_t *k)
{
    size_t i = (size_t)hash_gram(k) & t->mask;
    while (t->slots[i] >= 0) {
        const int32_t *o = t->g[t->slots[i]].k;
        if (o[0] == k[0] && o[1] == k[1] && o[2] == k[2]) break;
        i = (i + 1) & t->mask;
    }
    return i;
}

static int gram_rehash(gram_table *t, size_t m)
{
    long *slots = malloc(m * sizeof *slots);
    if (!slots) return DATA_ENOMEM;
    for (size_t i = 0; i < m; i++) slots[i] = -1;
    free(t->slots);
    t->slots = slots;
    t->mask = m - 1;
    for (long j = 0; j < t->n; j++) t->slots[gram_probe(t, t->g[j].k)] = j;
    return DATA_OK;
}

static int gram_add(gram_table *t, const int32_t *k, long pos)
{
    size_t i = gram_probe(t, k);
    if (t->slots[i] >= 0) {
        t->g[t->slots[i]].count++;
        return DATA_OK;
    }
    if (t->n == t->cap) {
        long cap = t->cap * 2;
        gram *g = realloc(t->g, (size_t)cap * sizeof *g);
        if (!g) return DATA_ENOMEM;
        t->g = g;
        t->cap = cap;
        if (gram_rehash(t, 2 * (size_t)cap) != DATA_OK) return DATA_ENOMEM;
        i = gram_probe(t, k);
    }
    gram *e = &t->g[t->n];
    memcpy(e->k, k, sizeof e->k);
    e->count = 1;
    e->first = pos;
    t->slots[i] = t->n++;
    return DATA_OK;
}

static int by_count_desc(const void *a, const void *b)
{
    const gram *x = a, *y = b;
    if (x->count != y->count) return x->count > y->count ? -1 : 1;
    return (x->first > y->first) - (x->first < y->first);
}

void data_ngram_stats_free(data_ngram_stats *st)
{
    if (!st) return;
    free(st->freqs);
    if (st->top)
        for (int i = 0; i < st->ntop; i++) free(st->top[i]);
    free(st->top);
    free(st->top_counts);
    memset(st, 0, sizeof *st);
}

/* The n-gram's tokens joined by ' ' (ids in decimal when v is NULL). */
static char *gram_string(const gram *g, int order, const data_vocab *v)
{
    data_buf b = {0};
    for (int i = 0; i < order; i++) {
        if (i && data_buf_append(&b, " ", 1) != DATA_OK) goto nomem;
        if (v) {
            const char *t = v->tokens[g->k[i]];
            if (data_buf_append(&b, t, strlen(t)) != DATA_OK) goto nomem;
        } else {
            char num[16];
            int len = snprintf(num, sizeof num, "%d", (int)g->k[i]);
            if (data_buf_append(&b, num, (size_t)len) != DATA_OK) goto nomem;
        }
    }
    if (!b.p && data_buf_append(&b, "", 0) != DATA_OK) goto nomem;
    return b.p;
nomem:
    data_buf_free(&b);
    return NULL;
}

int data_ngram_stats_compute(data_ngram_stats *st, const int32_t *ids, long n, const data_vocab *v,
                             int order, int ntop, char *err, size_t errlen)
{
    if (!st) return data_fail(err, errlen, DATA_EINVAL, "ngram stats: st is NULL");
    memset(st, 0, sizeof *st);
    if (order < 1 || order > 3)
        return data_fail(err, errlen, DATA_EINVAL, "ngram order %d: must be 1, 2 or 3", order);
    if (n < 0 || (n > 0 && !ids) || ntop < 0)
        return data_fail(err, errlen, DATA_EINVAL, "ngram stats: bad arguments (n %ld, ntop %d)", n,
                         ntop);
    for (long i = 0; i < n; i++)
        if (ids[i] < 0 || (v && ids[i] >= v->size))
            return data_fail(err, errlen, DATA_EINVAL,
                             "ngram stats: id %d at position %ld is outside the vocabulary",
                             (int)ids[i], i);
    gram_table t = {0};
    int rc;
    t.cap = 1024;
    t.g = malloc((size_t)t.cap * sizeof *t.g);
    if (!t.g || gram_rehash(&t, 2 * (size_t)t.cap) != DATA_OK) goto nomem;
    long total = n >= order ? n - order + 1 : 0;
    for (long p = 0; p < total; p++) {
        int32_t k[3] = {0, 0, 0};
        for (int j = 0; j < order; j++) k[j] = ids[p + j];
        if (gram_add(&t, k, p) != DATA_OK) goto nomem;
    }
    free(t.slots);
    t.slots = NULL;
    qsort(t.g, (size_t)t.n, sizeof *t.g, by_count_desc);

    st->order = order;
    st->distinct = t.n;
    st->total = total;
    st->freqs = malloc((size_t)(t.n ? t.n : 1) * sizeof *st->freqs);
    if (!st->freqs) goto nomem;
    for (long i = 0; i < t.n; i++) st->freqs[i] = t.g[i].count;
    int k = ntop < t.n ? ntop : (int)t.n;
    if (k > 0) {
        st->top = calloc((size_t)k, sizeof *st->top);
        st->top_counts = malloc((size_t)k * sizeof *st->top_counts);
        if (!st->top || !st->top_counts) goto nomem;
        for (int i = 0; i < k; i++) {
            st->top[i] = gram_string(&t.g[i], order, v);
            if (!st->top[i]) goto nomem;
            st->ntop = i + 1;
            st->top_counts[i] = t.g[i].count;
        }
    }
    free(t.g);
    return DATA_OK;
nomem:
    rc = data_fail(err, errlen, DATA_ENOMEM, "ngram stats: out of memory");
    free(t.g);
    free(t.slots);
    data_ngram_stats_free(st);
    return rc;
}

/* ------------------------------------------------------------ Zipf plot */

enum { SVG_W = 640, SVG_H = 440, PAD_L = 72, PAD_R = 24, PAD_T = 44, PAD_B = 56 };

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"};
static const char *const order_names[] = {"", "unigram", "bigram", "trigram"};

static void put_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            /* control characters are not allowed in XML 1.0 */
            fputc(((unsigned char)*s < 0x20 && *s != '\t') ? ' ' : *s, f);
        }
    }
}

typedef struct axes {
    double x1;     /* decades on x: 10^0 .. 10^x1 */
    double y0, y1; /* decades on y */
} axes;

static double px(const axes *a, double rank)
{
    return PAD_L + log10(rank) / a->x1 * (SVG_W - PAD_L - PAD_R);
}

static double py(const axes *a, double freq)
{
    double h = SVG_H - PAD_T - PAD_B;
    return PAD_T + h - (log10(freq) - a->y0) / (a->y1 - a->y0) * h;
}

static void power_label(FILE *f, int k)
{
    fprintf(f, "10<tspan dy=\"-6\" font-size=\"9\">%d</tspan>", k);
}

int data_zipf_svg(const char *path, const data_ngram_stats *st, int nstats, const char *title,
                  char *err, size_t errlen)
{
    if (!path || !st || nstats < 1)
        return data_fail(err, errlen, DATA_EINVAL, "zipf plot: needs a path and >= 1 n-gram table");
    long maxrank = 1, maxfreq = 1, minfreq = -1;
    for (int i = 0; i < nstats; i++) {
        if (st[i].distinct < 0 || (st[i].distinct > 0 && !st[i].freqs))
            return data_fail(err, errlen, DATA_EINVAL, "zipf plot: table %d is not computed", i);
        if (st[i].distinct == 0) continue;
        if (st[i].distinct > maxrank) maxrank = st[i].distinct;
        if (st[i].freqs[0] > maxfreq) maxfreq = st[i].freqs[0];
        long last = st[i].freqs[st[i].distinct - 1];
        if (minfreq < 0 || last < minfreq) minfreq = last;
    }
    if (minfreq < 1) minfreq = 1;
    axes a;
    a.x1 = ceil(log10((double)maxrank) - 1e-9);
    if (a.x1 < 1) a.x1 = 1;
    a.y0 = floor(log10((double)minfreq) + 1e-9);
    a.y1 = ceil(log10((double)maxfreq) - 1e-9);
    if (a.y1 <= a.y0) a.y1 = a.y0 + 1;

    FILE *f = fopen(path, "w");
    if (!f) return data_fail(err, errlen, DATA_EIO, "%s: %s", path, strerror(errno));
    double l = PAD_L, r = SVG_W - PAD_R, t = PAD_T, b = SVG_H - PAD_B;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            SVG_W, SVG_H, SVG_W, SVG_H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">", SVG_W / 2);
    put_escaped(f, title ? title : "Zipf's law");
    fprintf(f, "</text>\n");

    /* grid, ticks and labels at powers of ten */
    fprintf(f, "<g stroke=\"#ddd\" stroke-width=\"1\">\n");
    for (int k = 0; k <= (int)a.x1; k++) {
        double x = px(&a, pow(10, k));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", x, t, x, b);
    }
    for (int k = (int)a.y0; k <= (int)a.y1; k++) {
        double y = py(&a, pow(10, k));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\"/>\n", l, y, r, y);
    }
    fprintf(f, "</g>\n");
    fprintf(f,
            "<path d=\"M%.1f %.1fV%.1fH%.1f\" fill=\"none\" stroke=\"black\" "
            "stroke-width=\"1\"/>\n",
            l, t, b, r);
    for (int k = 0; k <= (int)a.x1; k++) {
        double x = px(&a, pow(10, k));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", x,
                b, x, b + 5);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", x, b + 20);
        power_label(f, k);
        fprintf(f, "</text>\n");
    }
    for (int k = (int)a.y0; k <= (int)a.y1; k++) {
        double y = py(&a, pow(10, k));
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n",
                l - 5, y, l, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">", l - 8, y + 4);
        power_label(f, k);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">rank</text>\n", (l + r) / 2,
            SVG_H - 12);
    fprintf(f,
            "<text x=\"16\" y=\"%.1f\" text-anchor=\"middle\" "
            "transform=\"rotate(-90 16 %.1f)\">frequency</text>\n",
            (t + b) / 2, (t + b) / 2);

    /* one curve per table; every rank up to 200, then ranks 2% apart */
    for (int i = 0; i < nstats; i++) {
        const char *col = colors[i % (int)(sizeof colors / sizeof *colors)];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col);
        long d = st[i].distinct;
        for (long rank = 1; rank <= d;) {
            fprintf(f, "%s%.1f,%.1f", rank > 1 ? " " : "", px(&a, (double)rank),
                    py(&a, (double)st[i].freqs[rank - 1]));
            long next = rank < 200 ? rank + 1 : (long)((double)rank * 1.02);
            if (next <= rank) next = rank + 1;
            if (rank < d && next > d) next = d;
            rank = next;
        }
        fprintf(f, "\"/>\n");
    }

    /* legend */
    double lx = r - 190, ly = t + 8;
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"182\" height=\"%d\" fill=\"white\" "
            "stroke=\"#999\"/>\n",
            lx, ly, 8 + 18 * nstats);
    for (int i = 0; i < nstats; i++) {
        const char *col = colors[i % (int)(sizeof colors / sizeof *colors)];
        double y = ly + 16 + 18 * i;
        int o = st[i].order >= 1 && st[i].order <= 3 ? st[i].order : 0;
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                "stroke-width=\"2\"/>\n",
                lx + 8, y - 4, lx + 32, y - 4, col);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s (%ld distinct)</text>\n", lx + 40, y,
                o ? order_names[o] : "n-gram", st[i].distinct);
    }
    fprintf(f, "</svg>\n");
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        remove(path);
        return data_fail(err, errlen, DATA_EIO, "%s: write failed", path);
    }
    return DATA_OK;
}

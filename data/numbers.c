/* The embedded `numbers` corpus: pair i is a number x_i in English words and
 * the same number in French words, so the default run needs no download.
 *
 * x_i is a fixed function of i (no seed): a SplitMix64 hash of i picks one of
 * four buckets, so small numbers are well represented:
 *   1/4 of the pairs: x < 100, 1/4: x < 10 000, 1/2: x < 1 000 000.
 *
 * English: lowercase words separated by single spaces, no "and", no hyphens
 * ("three hundred forty two thousand one hundred five"; 0 is "zero").
 * French: traditional spelling (before the 1990 reform): hyphens only between
 * tens and units below 100 ("dix-sept", "soixante-dix", "quatre-vingt-dix-sept"),
 * "et un" / "et onze" for 21..71 ("vingt et un", "soixante et onze"),
 * "quatre-vingts" and "cents" plural only at the end of the number
 * ("deux cents", "deux cent un", "quatre-vingt mille", "deux cent mille"),
 * "cent" and "mille" without "un", "mille" invariable. A hyphenated group
 * is one token. No final punctuation on either side. */
#include "data_internal.h"

#include <string.h>

typedef struct words {
    char buf[256];
    size_t len;
} words;

/* Appends s, preceded by a space unless first or glued (hyphen joins). */
static void put(words *w, const char *s, int glue)
{
    size_t n = strlen(s);
    if (w->len && !glue && w->len + 1 < sizeof w->buf) w->buf[w->len++] = ' ';
    if (w->len + n >= sizeof w->buf) n = sizeof w->buf - 1 - w->len; /* cannot happen */
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

/* --------------------------------------------------------------- English */

static const char *const en_small[20] = {"zero",    "one",     "two",       "three",    "four",
                                         "five",    "six",     "seven",     "eight",    "nine",
                                         "ten",     "eleven",  "twelve",    "thirteen", "fourteen",
                                         "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"};
static const char *const en_tens[10] = {"",      "",      "twenty",  "thirty", "forty",
                                        "fifty", "sixty", "seventy", "eighty", "ninety"};

static void en_below_1000(words *w, long n) /* 1 <= n <= 999 */
{
    if (n >= 100) {
        put(w, en_small[n / 100], 0);
        put(w, "hundred", 0);
        n %= 100;
    }
    if (n >= 20) {
        put(w, en_tens[n / 10], 0);
        n %= 10;
    }
    if (n > 0) put(w, en_small[n], 0);
}

static void english(words *w, long x)
{
    if (x == 0) {
        put(w, "zero", 0);
        return;
    }
    if (x >= 1000) {
        en_below_1000(w, x / 1000);
        put(w, "thousand", 0);
    }
    if (x % 1000) en_below_1000(w, x % 1000);
}

/* ---------------------------------------------------------------- French */

static const char *const fr_small[17] = {"zéro",  "un",     "deux",     "trois",  "quatre", "cinq",
                                         "six",   "sept",   "huit",     "neuf",   "dix",    "onze",
                                         "douze", "treize", "quatorze", "quinze", "seize"};
static const char *const fr_tens[7] = {"",         "",          "vingt",   "trente",
                                       "quarante", "cinquante", "soixante"};

/* 1 <= n <= 99 as one hyphenated group (or "X et un"); final: nothing
 * follows in the number (quatre-vingts takes its s only then). glue: the
 * group continues a hyphenated word already started. */
static void fr_below_100(words *w, long n, int final, int glue)
{
    if (n < 17) {
        put(w, fr_small[n], glue);
        return;
    }
    if (n < 20) {
        put(w, "dix-", glue);
        put(w, fr_small[n - 10], 1);
        return;
    }
    long t = n / 10, u = n % 10;
    if (t <= 6) {
        put(w, fr_tens[t], glue);
        if (u == 1) {
            put(w, "et", 0);
            put(w, "un", 0);
        } else if (u > 1) {
            put(w, "-", 1);
            put(w, fr_small[u], 1);
        }
        return;
    }
    if (t == 7) { /* 60 + 10..19 */
        put(w, "soixante", glue);
        if (u == 1) {
            put(w, "et", 0);
            put(w, "onze", 0);
        } else {
            put(w, "-", 1);
            fr_below_100(w, 10 + u, final, 1);
        }
        return;
    }
    /* 80..99: quatre-vingt(s), quatre-vingt-un, ..., quatre-vingt-dix-neuf */
    if (n == 80) {
        put(w, final ? "quatre-vingts" : "quatre-vingt", glue);
        return;
    }
    put(w, "quatre-vingt-", glue);
    fr_below_100(w, n - 80, final, 1);
}

static void fr_below_1000(words *w, long n, int final) /* 1 <= n <= 999 */
{
    long h = n / 100, r = n % 100;
    if (h == 1) put(w, "cent", 0);
    if (h > 1) {
        put(w, fr_small[h], 0);
        put(w, (r == 0 && final) ? "cents" : "cent", 0);
    }
    if (r) fr_below_100(w, r, final, 0);
}

static void french(words *w, long x)
{
    if (x == 0) {
        put(w, "zéro", 0);
        return;
    }
    long th = x / 1000, r = x % 1000;
    if (th == 1) put(w, "mille", 0);
    if (th > 1) {
        fr_below_1000(w, th, 0); /* followed by mille: no plural s */
        put(w, "mille", 0);
    }
    if (r) fr_below_1000(w, r, 1);
}

/* ----------------------------------------------------------------- pairs */

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static long number_of(long i)
{
    uint64_t h = mix64((uint64_t)i ^ 0x6e756d62657273ULL); /* "numbers" */
    uint64_t r = h >> 2;
    switch (h & 3) {
    case 0:
        return (long)(r % 100);
    case 1:
        return (long)(r % 10000);
    default:
        return (long)(r % 1000000);
    }
}

int data_numbers_pair(long i, char *buf, size_t buflen)
{
    if (i < 0 || !buf) return DATA_EINVAL;
    long x = number_of(i);
    words en = {.len = 0}, fr = {.len = 0};
    english(&en, x);
    french(&fr, x);
    size_t n = en.len + 1 + fr.len;
    if (n + 1 > buflen) return DATA_EINVAL;
    memcpy(buf, en.buf, en.len);
    buf[en.len] = '\t';
    memcpy(buf + en.len + 1, fr.buf, fr.len);
    buf[n] = '\0';
    return (int)n;
}

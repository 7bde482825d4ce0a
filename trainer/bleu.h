/* BLEU: standard corpus BLEU-4 (Papineni et al.) as NLTK's corpus_bleu
 * computes it without smoothing, and the book's sentence score, over
 * whitespace tokens split as Python's str.split() does. Reentrant: every
 * call works on its own memory. */
#ifndef SEQPAR_TRAINER_BLEU_H
#define SEQPAR_TRAINER_BLEU_H

#define BLEU_MAX_TOKENS 100000 /* tokens of one line that seqpar bleu scores */

typedef struct bleu_stats {
    double match[4], total[4]; /* clipped n-gram matches and hypothesis n-grams, n = 1..4 */
    double hyp_len, ref_len;
} bleu_stats;

/* Adds one sentence pair's statistics to s (n-grams up to max_n): 0, or -1
 * when out of memory (s unchanged). */
int bleu_add(bleu_stats *s, const char *hyp, const char *ref, int max_n);
/* Corpus BLEU in [0, 1] from the sums, with the brevity penalty and the
 * precisions. */
double bleu_score(const bleu_stats *s, int max_n, double *bp, double prec[4]);
/* The book's sentence score: exp(min(0, 1 − len_label/len_pred)) · Π p_n^(1/2^n);
 * NaN when out of memory. */
double bleu_d2l(const char *pred, const char *label, int k);
/* Whitespace tokens of s. */
long bleu_count_tokens(const char *s);

#endif

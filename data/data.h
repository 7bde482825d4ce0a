/* data/: text normalisation, tokenisation, vocabulary, corpora, samplers with
 * sharding over ranks, corpus statistics.
 *
 * Conventions: functions return DATA_OK (0) or a negative DATA_E* status and,
 * on failure, write one human-readable line (no newline) into err[errlen]
 * naming the file and line or the parameter at fault. Nothing here exits or
 * prints. Token ids are int32; every array is owned by the struct that holds
 * it and released by the matching *_free. */
#ifndef SEQPAR_DATA_H
#define SEQPAR_DATA_H

#include <stddef.h>
#include <stdint.h>

enum {
    DATA_OK = 0,
    DATA_EINVAL = -1,  /* bad argument or option value */
    DATA_EIO = -2,     /* file missing / unreadable */
    DATA_EFORMAT = -3, /* bad file content (no tab, invalid UTF-8, empty, token too long) */
    DATA_ENOMEM = -4,
    DATA_EFETCH = -5, /* download failed or checksum mismatch */
};

#define DATA_MAX_TOKEN_BYTES 256 /* a longer whitespace token is a format error */

/* Reserved ids, identical in every vocabulary. */
enum { DATA_PAD = 0, DATA_BOS = 1, DATA_EOS = 2, DATA_UNK = 3, DATA_NRESERVED = 4 };

/* ------------------------------------------------------------------ text */

/* The book's fra-eng normalisation: U+202F and U+00A0 -> ' ', lowercase
 * (ASCII and Latin-1 supplement / Latin Extended-A letters), and a space
 * inserted before , . ! ? when the previous character is not a space.
 * Fails (DATA_EFORMAT) on invalid UTF-8. *out is malloc'd, NUL-terminated. */
int data_normalize(const char *in, size_t len, char **out, char *err, size_t errlen);

/* One pair line ("source<TAB>target", extra tab columns ignored, as in the
 * manythings files) split as the corpus reader splits it: 0 with the source
 * line[0..*src_len) and the target (*tgt)[0..*tgt_len); 1 for a blank line
 * (only spaces and tabs: skipped); -1 when there is no tab. A text's first
 * line may start with a UTF-8 BOM (data_skip_bom). */
int data_pair_fields(const char *line, size_t len, size_t *src_len, const char **tgt,
                     size_t *tgt_len);
/* Reads a whole file; *buf is malloc'd and NUL-terminated, *len excludes the
 * NUL. A missing file is DATA_EIO with "PATH: strerror"; a directory or a
 * device is refused as such. */
int data_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen);
/* Pipes and FIFOs (process substitution, a producer) are read like files,
 * as cat would: data_read_file waits for their writer. When nothing has come
 * after DATA_FIFO_NOTICE_S seconds it calls the notice (NULL: none) once
 * with the path, so that a program can say what it waits for instead of
 * hanging in silence. */
#define DATA_FIFO_NOTICE_S 5
void data_set_fifo_notice(void (*notice)(const char *path));
/* Corpus downloads (data_locate) report their progress to `fn` (NULL, the
 * default: nothing): the file, the bytes so far and the total (0 while the
 * server has not said), and done = 1 once at the end of each transfer. The
 * library prints nothing itself. */
typedef void (*data_fetch_progress_fn)(const char *file, long long got, long long total, int done);
void data_set_fetch_progress(data_fetch_progress_fn fn);
/* Bytes of a UTF-8 byte-order mark at text[0..len): 3 or 0. */
size_t data_skip_bom(const char *text, size_t len);
/* Whether s[0..len) is valid UTF-8; if not, *bad (when given) is the
 * offset of the first byte that does not decode. */
int data_utf8_valid(const char *s, size_t len, size_t *bad);
/* Text from input fit for an error line: at most max bytes of s (whole
 * characters), control characters and bytes that are not UTF-8 written as
 * \xHH, and "..." when cut; into out[n]. Returns out. */
const char *data_escape(const char *s, size_t max, char *out, size_t n);

/* ------------------------------------------------------------ vocabulary */

typedef struct data_vocab {
    int size;      /* number of tokens, including the reserved ones */
    char **tokens; /* (size) NUL-terminated UTF-8; tokens[DATA_PAD] = "<pad>", then
                      "<bos>", "<eos>", "<unk>", then by descending frequency, ties
                      broken by first appearance */
    void *index;   /* private lookup table */
} data_vocab;

/* Builds a vocabulary from a list of tokens with their counts taken over the
 * corpus: tokens with count >= min_freq are kept. */
int data_vocab_build(data_vocab *v, const char *const *tokens, size_t ntokens, int min_freq,
                     char *err, size_t errlen);
/* Builds a vocabulary from an explicit id -> token list (e.g. read back from a
 * checkpoint); the first DATA_NRESERVED must be the reserved tokens. */
int data_vocab_from_list(data_vocab *v, const char *const *tokens, int size, char *err,
                         size_t errlen);
int data_vocab_id(const data_vocab *v, const char *token); /* DATA_UNK when unknown */
void data_vocab_free(data_vocab *v);

/* ------------------------------------------------------------- corpora */

typedef enum { DATA_TASK_TRANSLATE = 0, DATA_TASK_LM = 1 } data_task;
typedef enum { DATA_TOKENS_CHAR = 0, DATA_TOKENS_WORD = 1 } data_token_kind;

/* Where data files are found: data_dir if non-NULL, else $SEQPAR_DATA, else
 * ~/.cache/seqpar. A missing file is fetched from $SEQPAR_DATA_URL (default
 * the book's http://d2l-data.s3-accelerate.amazonaws.com/) and its SHA-1
 * checked; offline, err says where to put the file. name is "fra-eng/fra.txt"
 * or "timemachine.txt"; *path is malloc'd. */
int data_locate(const char *name, const char *data_dir, char **path, char *err, size_t errlen);

/* SHA-1 of a file as 40 lowercase hex digits into hex[41]. */
int data_sha1_file(const char *path, char hex[41], char *err, size_t errlen);

/* Translation pairs, tokenised, as ids, each row truncated or padded to
 * num_steps with <eos> appended first (a sentence longer than num_steps loses
 * its <eos>, as in the book). */
typedef struct data_pairs {
    int n;              /* pairs */
    int num_steps;      /* T */
    int32_t *src;       /* (n, T) source ids, DATA_PAD-padded */
    int32_t *tgt;       /* (n, T) target ids, DATA_PAD-padded */
    int32_t *src_valid; /* (n) tokens before padding (<= T) */
    int32_t *tgt_valid; /* (n) */
    data_vocab src_vocab, tgt_vocab;
    int owns_vocab; /* the valid set shares the train set's vocabularies */
    /* (n) each target sentence in full, normalised, tokens joined by single
     * spaces — not cut to T, rare words kept: the references BLEU needs.
     * Held-out (validation) sets only; NULL for the training set. */
    char **tgt_text;
} data_pairs;

typedef struct data_pairs_opts {
    const char *dataset;  /* "numbers", "fra-eng" or a path to a tab-separated file */
    const char *data_dir; /* may be NULL */
    long num_examples;    /* first N pairs (0 = all; for numbers: how many to generate,
                             0 = the default 20 000) */
    int num_steps;
    int min_freq;  /* default 2 */
    int valid;     /* held-out pairs (0 = none) */
    uint64_t seed; /* keys the held-out split */
    /* bytes the padded token ids may take (0 = unchecked): more is refused
     * before the corpus is generated or its ids are written */
    double mem_limit;
} data_pairs_opts;

/* A size for messages about memory: "80.0 GB", or whole MB (at least 1). */
void data_size_text(char *out, size_t n, double bytes);

/* Loads, normalises and tokenises the first num_examples pairs, then holds
 * out `valid` of them, chosen by a seed-keyed permutation (deterministic, and
 * independent of everything but seed and the pairs loaded). The vocabularies
 * are built from the training pairs only and shared by both sets; `valid` may
 * be NULL when o->valid is 0. */
int data_pairs_load(data_pairs *train, data_pairs *valid, const data_pairs_opts *o, char *err,
                    size_t errlen);
/* Encodes one already-normalised, space-split sentence with vocabulary v,
 * appending <eos> and padding/truncating to T; returns the valid length. */
int data_encode_sentence(const data_vocab *v, const char *normalised, int32_t *ids, int T);
/* Frees arrays; vocabularies are freed only when owns_vocab (train set). */
void data_pairs_free(data_pairs *p);

/* A token stream for language modelling. */
typedef struct data_stream {
    long n;       /* tokens */
    int32_t *ids; /* (n) */
    data_vocab vocab;
} data_stream;

typedef struct data_stream_opts {
    const char *dataset; /* "timemachine", "numbers" or a path to a text file */
    const char *data_dir;
    data_token_kind tokens;
    int min_freq;    /* default 0 for chars */
    long max_tokens; /* 0 = all */
} data_stream_opts;

int data_stream_load(data_stream *s, const data_stream_opts *o, char *err, size_t errlen);
void data_stream_free(data_stream *s);

/* The embedded `numbers` corpus: pair i (0-based) is an English number in
 * words and its French translation, deterministic, numbers 0..999 999. Writes
 * "english\tfrench" into buf (NUL-terminated); returns its length. */
int data_numbers_pair(long i, char *buf, size_t buflen);

/* -------------------------------------------------------------- samplers */

typedef enum { DATA_SAMPLER_RANDOM = 0, DATA_SAMPLER_SEQUENTIAL = 1 } data_sampler_kind;

/* A sampler hands rank `rank` of `world` its slice of each global batch. The
 * global batch never depends on world: of a batch of R rows (R = B except
 * for a short final batch), rows [lo, hi) go to the rank with
 * lo = floor(R*rank/world), hi = floor(R*(rank+1)/world) (slices may be
 * uneven; a rank may get none when R < world), or, for translation with
 * data_sampler_set_lengths, the rows dealt out by target length.
 *
 * Translation: examples are pair indices. random = per-epoch permutation keyed
 * by (seed, epoch); sequential = corpus order, contiguous blocks. The final
 * batch of an epoch may be short (n not a multiple of B), as in the book.
 *
 * LM (d2l): random = seq_data_iter_random (per-epoch random offset in
 * [0, T), subsequences shuffled); sequential = seq_data_iter_sequential (the
 * corpus from a random offset in [0, T] cut into B contiguous streams, batch i
 * takes positions [i*T, (i+1)*T) of every stream; row r of every batch is
 * stream r, so a carried hidden state stays with its rank). */
typedef struct data_sampler {
    data_task task;
    data_sampler_kind kind;
    long n;        /* pairs (translate) or tokens (LM) */
    int batch;     /* global batch B */
    int num_steps; /* T (LM) */
    uint64_t seed;
    int rank, world;
    struct data_sampler_cache *cache; /* private: the last epoch's permutation (allocated by
                                         init, so slicing never allocates); not safe for
                                         concurrent slicing from several threads */
    struct data_sampler_deal *deal;   /* private: see data_sampler_set_lengths */
    struct data_sampler_plan *plan;   /* private: see data_sampler_set_tokens */
} data_sampler;

int data_sampler_init(data_sampler *s, data_task task, data_sampler_kind kind, long n, int batch,
                      int num_steps, uint64_t seed, int rank, int world, char *err, size_t errlen);
void data_sampler_free(data_sampler *s); /* releases the cache; safe on a zeroed sampler */
/* Translation: deal every batch's rows out by target length instead of the
 * contiguous cut when world > 1 — sorted longest first (stable), in rounds
 * of `world` positions, position p to rank p mod world in even rounds and to
 * world − 1 − p mod world in odd ones — so every rank gets the same target
 * tokens give or take one row, and rank 0 is not the heaviest batch after
 * batch (a packed decoder's work follows the tokens). The global
 * batch is unchanged. len (n entries, clamped to [0, max_len]) must outlive
 * the sampler. Slices are then lo = 0, hi = their row count. */
int data_sampler_set_lengths(data_sampler *s, const int32_t *len, int max_len);
long data_sampler_batches(const data_sampler *s, long epoch); /* global batches in an epoch */

/* Translation, random sampler, after data_sampler_set_lengths: batches of
 * about `tokens` target tokens instead of `batch` pairs (fairseq's
 * --max-tokens, Marian's --mini-batch-words). The epoch's permutation is cut
 * into windows of `window` pairs (0: 32 x batch); each window is sorted by
 * target length, longest first (stable), and cut into batches greedily: a
 * batch takes pairs while its target tokens stay within `tokens` and its
 * rows within `batch` (at least one pair). The batches of the epoch are
 * then shuffled (keyed by seed and epoch). Every pair is in one batch an
 * epoch; the batches never depend on the world size and are dealt over
 * ranks as any other. The number of batches varies by epoch. */
int data_sampler_set_tokens(data_sampler *s, long tokens, long window);
/* Padding of epoch `epoch`'s batches as the padded decoder counts it
 * (padding = rows x the batch's longest target − its target tokens): share
 * of padded positions with the token batches (*bucketed) and with the same
 * number of batches of pairs taken in the epoch's random order (*unsorted).
 * Both 0 without data_sampler_set_tokens. */
void data_sampler_padding(const data_sampler *s, long epoch, double *bucketed, double *unsorted);

typedef struct data_slice {
    int global_rows; /* rows in this global batch (B, or fewer for a short final batch) */
    int lo, hi;      /* this rank's rows [lo, hi) of the global batch (dealt: 0, count) */
    /* (hi - lo) entries: translation: pair index; LM: token offset of the
     * first input token (targets start one later). Caller-provided, capacity
     * >= ceil(B / world) + 1. */
    long *index;
} data_slice;

/* Fills sl for global batch `b` of epoch `epoch`; no allocation. */
int data_sampler_slice(const data_sampler *s, long epoch, long b, data_slice *sl);
/* Part `part` of `parts` of global batch b (gradient accumulation's
 * micro-batches): of the batch's R rows, in the order the batch holds them
 * (token batches: longest target first), rows [⌊R·part/parts⌋,
 * ⌊R·(part+1)/parts⌋), dealt over ranks as a batch of their own.
 * global_rows stays R. Part 0 of 1 is data_sampler_slice. */
int data_sampler_slice_part(const data_sampler *s, long epoch, long b, int part, int parts,
                            data_slice *sl);

/* ------------------------------------------------------ corpus statistics */

typedef struct data_ngram_stats {
    int order;        /* 1, 2 or 3 */
    long distinct;    /* distinct n-grams */
    long total;       /* n-gram occurrences */
    long *freqs;      /* (distinct) counts, descending */
    char **top;       /* (ntop) n-grams joined by ' ', most frequent first */
    long *top_counts; /* (ntop) */
    int ntop;
} data_ngram_stats;

int data_ngram_stats_compute(data_ngram_stats *st, const int32_t *ids, long n, const data_vocab *v,
                             int order, int ntop, char *err, size_t errlen);
void data_ngram_stats_free(data_ngram_stats *st);
/* Writes a log-log frequency-vs-rank SVG with one curve per given order. */
int data_zipf_svg(const char *path, const data_ngram_stats *st, int nstats, const char *title,
                  char *err, size_t errlen);

#endif

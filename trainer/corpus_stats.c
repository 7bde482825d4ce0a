/* seqpar corpus-stats: a corpus's vocabulary, n-gram counts and Zipf plot. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "data.h"
#include "trainer.h"

typedef struct stats_opts {
    char dataset[4096], data_dir[4096], plot[4096];
    int tokens; /* data_token_kind */
    long top;
} stats_opts;

static const int TOKENS[] = {DATA_TOKENS_WORD, DATA_TOKENS_CHAR};

#define F(f) CLI_FIELD(stats_opts, f)
static const cli_opt STATS_OPTS[] = {
    {"dataset", CLI_STR, F(dataset), .arg = "NAME", .help = "timemachine | numbers | PATH"},
    {"tokens", CLI_CHOICE, F(tokens), .choices = "word|char", .values = TOKENS, .help = "tokens"},
    {"data-dir", CLI_STR, F(data_dir), .arg = "DIR",
     .help = "where corpora are (else $SEQPAR_DATA, else ~/.cache/seqpar)"},
    {"top", CLI_LONG, F(top), 1, 1000, .arg = "N", .help = "most frequent n-grams listed"},
    {"plot", CLI_STR, F(plot), .arg = "FILE.svg", .help = "writes the Zipf plot there"},
};
#undef F

static const stats_opts STATS_DEFAULTS = {
    .dataset = "timemachine", .tokens = DATA_TOKENS_WORD, .top = 10};

const cli_command corpus_stats_command = {
    .prog = "seqpar corpus-stats",
    .defaults = &STATS_DEFAULTS,
    .about = "Vocabulary size, the most frequent tokens, distinct uni/bi/trigrams, and a log-log\n"
             "frequency-vs-rank plot (Zipf's law) per n-gram order.",
    .opts = STATS_OPTS,
    .nopts = sizeof STATS_OPTS / sizeof *STATS_OPTS};

int cmd_corpus_stats(int argc, char **argv)
{
    stats_opts so = STATS_DEFAULTS;
    const int parsed = cli_parse(&corpus_stats_command, &so, argc, argv, NULL, 0, NULL);
    if (parsed) return parsed == 1 ? 0 : 2;
    const char *dataset = so.dataset, *plot = so.plot[0] ? so.plot : NULL;
    const char *tokens = so.tokens == DATA_TOKENS_CHAR ? "char" : "word";
    const long top = so.top;
    char err[ERRLEN];
    data_stream s;
    data_stream_opts o = {.dataset = dataset,
                          .data_dir = so.data_dir[0] ? so.data_dir : NULL,
                          .tokens = (data_token_kind)so.tokens,
                          .min_freq = 0,
                          .max_tokens = 0};
    if (data_stream_load(&s, &o, err, sizeof err) != DATA_OK) {
        fprintf(stderr, "seqpar corpus-stats: %s\n", err);
        return 2;
    }
    data_ngram_stats st[3];
    memset(st, 0, sizeof st);
    int rc = 0;
    printf("%s (%s tokens): %ld tokens, vocabulary %d (with 4 reserved)\n", dataset, tokens, s.n,
           s.vocab.size);
    for (int k = 0; k < 3 && rc == 0; k++) {
        if (data_ngram_stats_compute(&st[k], s.ids, s.n, &s.vocab, k + 1, (int)top, err,
                                     sizeof err) != DATA_OK) {
            fprintf(stderr, "seqpar corpus-stats: %s\n", err);
            rc = 2;
            break;
        }
        printf("%d-grams: %ld distinct, %ld in all; most frequent:\n", k + 1, st[k].distinct,
               st[k].total);
        for (int i = 0; i < st[k].ntop; i++)
            printf("  %-30s %ld\n", st[k].top[i], st[k].top_counts[i]);
    }
    if (rc == 0 && plot) {
        char title[300];
        snprintf(title, sizeof title, "%s (%s): frequency vs rank", dataset, tokens);
        if (data_zipf_svg(plot, st, 3, title, err, sizeof err) != DATA_OK) {
            fprintf(stderr, "seqpar corpus-stats: %s\n", err);
            rc = 2;
        } else {
            printf("plot written to %s\n", plot);
        }
    }
    for (int k = 0; k < 3; k++) data_ngram_stats_free(&st[k]);
    data_stream_free(&s);
    return rc;
}

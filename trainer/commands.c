/* The table of seqpar's subcommands (trainer.h). */
#include "cli.h"
#include "config.h"
#include "trainer.h"

const seqpar_command seqpar_commands[] = {
    {"train", cmd_train, &config_command,
     "train a seq2seq translation model or an RNN language model"},
    {"translate", cmd_translate, &translate_command, "translate stdin to stdout with a checkpoint"},
    {"predict", cmd_predict, &predict_command, "generate text from a language-model checkpoint"},
    {"score", cmd_score, &score_command,
     "loss and perplexity of a checkpoint on source<TAB>target pairs"},
    {"bleu", cmd_bleu, &bleu_command, "corpus BLEU of a hypothesis file against a reference file"},
    {"ckpt", cmd_ckpt, NULL, "info | verify | list | diff checkpoints"},
    {"monitor", cmd_monitor, &monitor_command,
     "collect training metrics and serve the live dashboard"},
    {"corpus-stats", cmd_corpus_stats, &corpus_stats_command,
     "vocabulary, n-gram counts and a Zipf plot of a corpus"},
    {"supervise", cmd_supervise, &supervise_command,
     "run a training job, relaunching it from its checkpoints when it fails"},
    {"plot", cmd_plot, &plot_command,
     "training curves or attention weights as an SVG, from a monitor or training log"},
};
const int seqpar_ncommands = sizeof seqpar_commands / sizeof *seqpar_commands;

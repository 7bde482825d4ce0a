/* trainer/: the seqpar command. The only folder that ties model/, data/,
 * comm/ and checkpoints/ together. Subcommands return the process exit code:
 * 0 success, 1 runtime failure, 2 bad usage or bad input. */
#ifndef SEQPAR_TRAINER_H
#define SEQPAR_TRAINER_H

#include <stdio.h>

#define ERRLEN 512

int cmd_train(int argc, char **argv);
int cmd_translate(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_score(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_bleu(int argc, char **argv);
int cmd_ckpt(int argc, char **argv);
int cmd_corpus_stats(int argc, char **argv);
int cmd_supervise(int argc, char **argv);
int cmd_plot(int argc, char **argv);

/* The subcommands, in the order --help lists them: name, entry, option table
 * (NULL: ckpt, whose actions take files), one line. */
typedef struct seqpar_command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const struct cli_command *cli;
    const char *summary;
} seqpar_command;
extern const seqpar_command seqpar_commands[];
extern const int seqpar_ncommands;

/* The manual: a man page (roff) and a bash completion script, written from
 * the commands' option tables so that they cannot drift from --help. */
void manual_man(FILE *f);
void manual_bash_completion(FILE *f);

/* Their option tables (cli.h), for the man page and the shell completion. */
struct cli_command;
extern const struct cli_command config_command, translate_command, predict_command, score_command,
    bleu_command, corpus_stats_command, monitor_command, supervise_command, ckpt_diff_command,
    plot_command;

#endif

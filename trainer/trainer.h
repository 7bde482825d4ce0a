/* trainer/: the seqpar command. The only folder that ties model/, data/,
 * comm/ and checkpoints/ together. Subcommands return the process exit code:
 * 0 success, 1 runtime failure, 2 bad usage or bad input. */
#ifndef SEQPAR_TRAINER_H
#define SEQPAR_TRAINER_H

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

#endif

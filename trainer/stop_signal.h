/* A graceful stop on a signal (SIGTERM at a time limit, SIGINT from a
 * terminal, SIGUSR1 from a scheduler's warning): the handler only notes it;
 * the ranks agree at the next step boundary (the note rides in the step's
 * allreduce), rank 0 writes a checkpoint of that step, and every rank exits
 * with TRAIN_EXIT_STOPPED. A second signal ends the process at once, as the
 * signal's default action would, unless it comes within STOP_SIGNAL_SAME_S
 * of the first: launchers pass signals on while the job gets them too. */
#ifndef SEQPAR_TRAINER_STOP_SIGNAL_H
#define SEQPAR_TRAINER_STOP_SIGNAL_H

#include <stddef.h>

/* The exit status of a run stopped by a signal, resumable with --resume auto
 * (sysexits.h's EX_TEMPFAIL: "try again later"). */
#define TRAIN_EXIT_STOPPED 75
#define STOP_SIGNAL_SAME_S 1.0

/* A set of signals as a bit mask, from a list such as "TERM,INT,USR1" (any
 * of TERM INT USR1 USR2 HUP, with or without SIG; "none": the empty set):
 * 0, or -1 with what was expected in err. And back. */
int stop_signal_parse(const char *list, int *mask, char *err, size_t n);
void stop_signal_format(int mask, char *buf, size_t n);
/* TERM, INT and USR1 (the bits follow stop_signal.c's table) */
#define STOP_SIGNALS_DEFAULT 7

/* Whether signal sig is in mask. */
int stop_signal_in(int mask, int sig);
/* Installs the handler for the signals of mask (the others of the table get
 * their default action back). */
void stop_signal_install(int mask);
/* The signal that asked this process to stop, or 0. */
int stop_signal_pending(void);
/* Its name ("SIGTERM"). */
const char *stop_signal_name(int sig);

/* Test only: SEQPAR_FAULT_SIGNAL=RANK:STEP:PHASE[:KILL][,…] raises SIGTERM
 * (or SIGKILL: a crash) on that rank at that step while it is in PHASE
 * ("step": before the step runs, "validate": during validation,
 * "checkpoint": during a checkpoint write), once, and only in a process that
 * started before that step (a resumed run does not crash there again), so
 * the tests can signal or kill a run at a chosen moment. */
void stop_signal_fault(const char *phase, int rank, long step);
/* The step this process started from (for stop_signal_fault). */
void stop_signal_fault_start(long step);

#endif

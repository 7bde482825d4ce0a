/* trainer/progress.h: what a person watching sees of a training run, and of
 * a corpus download.
 *
 * seqpar train --progress auto|bar|lines. `lines` prints the progress
 * lines scripts parse ("step S/T epoch E loss …"); `bar` keeps one line at
 * the bottom of rank 0's terminal that updates in place (epoch bar, step of
 * total, loss, tokens/s, ETA), redrawn at most PROGRESS_HZ times a second,
 * with every other line rank 0 writes (validation, warnings, errors, on
 * stdout or stderr) printed above it; `auto` is the bar when rank 0's
 * stdout is a terminal and no MPI launcher started the process, else the
 * lines (Open MPI gives every rank's stdout a pseudo-terminal even when
 * mpirun's output goes to a pipe or a file, so under mpirun a terminal
 * says nothing about the reader: DESIGN.md, "progress").
 *
 * While the bar shows, stdout and stderr are streams of this module's own
 * (glibc's fopencookie) that clear the bar, write the text through to the
 * same file descriptors and draw the bar again: every printf and fprintf
 * of the process goes above the bar, at once (nothing is held back, so a
 * message written just before MPI_Abort is not lost). */
#ifndef SEQPAR_TRAINER_PROGRESS_H
#define SEQPAR_TRAINER_PROGRESS_H

#include <stddef.h>

typedef enum { PROGRESS_AUTO = 0, PROGRESS_BAR = 1, PROGRESS_LINES = 2 } progress_mode;

#define PROGRESS_HZ 5

/* The mode this process shows: 1 for the bar, 0 for the lines. Only rank 0
 * ever draws. `auto` as above; `bar` even when stdout is not a terminal. */
int progress_wants_bar(int mode, int rank, int world);

/* Starts the bar (when progress_wants_bar says so) for a run of
 * total_steps, from step `step`; the figures come from progress_figures.
 * Returns 1 when the bar shows: the caller then prints no progress lines. */
int progress_start(int mode, int rank, int world, long step, long total_steps);
/* The position after a step: the bar's step, and its epoch (1-based) with
 * the batches of the epoch done of nb. Cheap: draws only when due. */
void progress_tick(long step, long epoch, long batch_done, long nb);
/* What the run does between steps ("validating"; NULL: done), shown on
 * the bar in place of the ETA until it is done or the next step. */
void progress_status(const char *what);
/* A logging window's figures: loss per token, tokens per second. */
void progress_figures(double loss, double tok_per_s);
/* The logging window's line ("step S/T epoch E loss …"): printed on rank 0
 * when no bar shows, exactly as given; dropped while the bar shows it. */
void progress_window_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Clears the bar and gives stdout and stderr back (also at exit). */
void progress_end(void);

/* A duration as the progress shows it: "42s", "3m05s", "2h07m", "?". */
void progress_duration(char *buf, size_t n, double seconds);

/* The line as it would be drawn now for a terminal `cols` wide (tests). */
void progress_format(char *buf, size_t n, int cols);

/* Corpus downloads (data_set_fetch_progress): bytes of total and the rate
 * on stderr, updated in place, when stderr is a terminal; nothing else. */
void progress_fetch_install(void);

#endif

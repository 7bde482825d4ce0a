/* seqpar plot's parts: the runs read from logs (plot.c) and their drawing
 * as SVG (plot_svg.c). */
#ifndef SEQPAR_TRAINER_PLOT_H
#define SEQPAR_TRAINER_PLOT_H

#include <stdio.h>

/* The panels, as the book's Animator draws them. */
enum { PLOT_TRAIN_LOSS, PLOT_TRAIN_PPL, PLOT_VALID_PPL, PLOT_BLEU, PLOT_NPANELS };

typedef struct plot_point {
    double step, epoch, y;
} plot_point;

typedef struct plot_series {
    plot_point *p;
    int n, cap;
} plot_series;

typedef struct plot_run {
    char name[160];
    plot_series s[PLOT_NPANELS];
} plot_run;

/* The curves of nrun runs, against steps (by_epoch 0) or epochs, into f:
 * one panel for each figure some run has. 0, or -1 when no run has any. */
int plot_svg_curves(FILE *f, const plot_run *runs, int nrun, int by_epoch, const char *title);

/* One sentence's attention weights: rows (output tokens) by columns
 * (source tokens), w[r * cols + c]. */
typedef struct plot_heat {
    int rows, cols, index;
    char **row_label, **col_label;
    double *w;
} plot_heat;

void plot_svg_heatmap(FILE *f, const plot_heat *h, const char *title);

/* s as XML character data or an attribute value: & < > " ' escaped, and
 * control characters and bytes that are not UTF-8 as \xHH (data_escape),
 * cut at max bytes. */
void plot_xml_text(FILE *f, const char *s, size_t max);

#endif

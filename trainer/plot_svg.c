/* seqpar plot's drawings, as plain SVG text (plot.h): training curves in
 * panels like the book's Animator, and an attention heat map.
 *
 * What tests (and scripts) may read back: every panel is a
 * <g class="panel" id="panel-NAME">; its axes' grid lines
 * <line class="xgrid|ygrid"> are followed, in the same order, by the tick
 * labels <text class="xtick|ytick"> whose text is the value on that line;
 * each run's curve is a
 * <polyline class="series" data-run=…>; a heat map's cells are
 * <rect class="cell" data-row=R data-col=C data-w=WEIGHT>. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "data.h"
#include "plot.h"

void plot_xml_text(FILE *f, const char *s, size_t max)
{
    char shown[1200];
    data_escape(s, max < 1000 ? max : 1000, shown, sizeof shown);
    for (const char *c = shown; *c; c++) {
        switch (*c) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&apos;", f);
            break;
        default:
            fputc(*c, f);
        }
    }
}

/* ------------------------------------------------------------- axes */

/* Heckbert's nice numbers: 1, 2, 5 times a power of ten. */
static double nice(double x, int round)
{
    const double e = pow(10.0, floor(log10(x))), f = x / e;
    double nf;
    if (round)
        nf = f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10;
    else
        nf = f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10;
    return nf * e;
}

typedef struct axis {
    double lo, hi, step; /* the range shown, from tick to tick */
    int decimals;        /* of the tick labels */
} axis;

static axis make_axis(double lo, double hi)
{
    if (!(hi > lo)) { /* one value: a range around it (the figures are never negative) */
        const double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1.0;
        lo = lo >= 0 && lo - d < 0 ? 0 : lo - d, hi += d;
    }
    axis a;
    a.step = nice(nice(hi - lo, 0) / 4.0, 1);
    a.lo = floor(lo / a.step) * a.step;
    a.hi = ceil(hi / a.step) * a.step;
    const int d = (int)-floor(log10(a.step) + 1e-9);
    a.decimals = d > 0 ? d : 0;
    return a;
}

static double map(double v, const axis *a, double p0, double p1)
{
    return p0 + (v - a->lo) / (a->hi - a->lo) * (p1 - p0);
}

/* ------------------------------------------------------------ curves */

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                     "#ff7f0e", "#8c564b", "#e377c2", "#17becf"};
#define NCOLORS (int)(sizeof colors / sizeof *colors)

static const char *const panel_id[] = {"train-loss", "train-ppl", "valid-ppl", "bleu"};
static const char *const panel_title[] = {"training loss", "training perplexity",
                                          "validation perplexity", "validation BLEU"};

enum { PW = 460, PH = 300, ML = 64, MR = 16, MT = 30, MB = 44, TOP = 44 };

static double xval(const plot_point *p, int by_epoch)
{
    return by_epoch ? p->epoch : p->step;
}

static void panel(FILE *f, const plot_run *runs, int nrun, int k, int by_epoch, double ox,
                  double oy)
{
    double xl = INFINITY, xh = -INFINITY, yl = INFINITY, yh = -INFINITY;
    for (int r = 0; r < nrun; r++)
        for (int i = 0; i < runs[r].s[k].n; i++) {
            const plot_point *p = &runs[r].s[k].p[i];
            xl = fmin(xl, xval(p, by_epoch)), xh = fmax(xh, xval(p, by_epoch));
            yl = fmin(yl, p->y), yh = fmax(yh, p->y);
        }
    const axis ax = make_axis(xl, xh), ay = make_axis(yl, yh);
    const double l = ox + ML, r = ox + PW - MR, t = oy + MT, b = oy + PH - MB;
    fprintf(f, "<g class=\"panel\" id=\"panel-%s\">\n", panel_id[k]);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"14\">%s</text>\n",
            (l + r) / 2, oy + 18, panel_title[k]);
    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
            "stroke=\"#444\"/>\n",
            l, t, r - l, b - t);
    for (double v = ax.lo; v <= ax.hi + ax.step * 1e-6; v += ax.step) {
        const double x = map(v, &ax, l, r);
        fprintf(f,
                "<line class=\"xgrid\" x1=\"%.2f\" y1=\"%.1f\" x2=\"%.2f\" y2=\"%.1f\" "
                "stroke=\"#ddd\"/>\n",
                x, t, x, b);
        fprintf(f,
                "<text class=\"xtick\" x=\"%.2f\" y=\"%.1f\" text-anchor=\"middle\">%.*f</text>\n",
                x, b + 16, ax.decimals, fabs(v) < ax.step * 1e-9 ? 0.0 : v);
    }
    for (double v = ay.lo; v <= ay.hi + ay.step * 1e-6; v += ay.step) {
        const double y = map(v, &ay, b, t);
        fprintf(f,
                "<line class=\"ygrid\" x1=\"%.1f\" y1=\"%.2f\" x2=\"%.1f\" y2=\"%.2f\" "
                "stroke=\"#ddd\"/>\n",
                l, y, r, y);
        fprintf(f, "<text class=\"ytick\" x=\"%.1f\" y=\"%.2f\" text-anchor=\"end\">%.*f</text>\n",
                l - 6, y + 4, ay.decimals, fabs(v) < ay.step * 1e-9 ? 0.0 : v);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", (l + r) / 2,
            b + 34, by_epoch ? "epoch" : "step");
    for (int ri = 0; ri < nrun; ri++) {
        const plot_series *s = &runs[ri].s[k];
        if (s->n == 0) continue;
        const char *col = colors[ri % NCOLORS];
        fprintf(f, "<polyline class=\"series\" data-run=\"");
        plot_xml_text(f, runs[ri].name, sizeof runs[ri].name);
        fprintf(f, "\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", col);
        for (int i = 0; i < s->n; i++)
            fprintf(f, "%s%.2f,%.2f", i ? " " : "", map(xval(&s->p[i], by_epoch), &ax, l, r),
                    map(s->p[i].y, &ay, b, t));
        fprintf(f, "\"/>\n");
        if (k >= PLOT_VALID_PPL) /* few points: each one shown */
            for (int i = 0; i < s->n; i++)
                fprintf(f, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"3\" fill=\"%s\"/>\n",
                        map(xval(&s->p[i], by_epoch), &ax, l, r), map(s->p[i].y, &ay, b, t), col);
    }
    fprintf(f, "</g>\n");
}

int plot_svg_curves(FILE *f, const plot_run *runs, int nrun, int by_epoch, const char *title)
{
    int shown[PLOT_NPANELS], np = 0;
    for (int k = 0; k < PLOT_NPANELS; k++) {
        int n = 0;
        for (int r = 0; r < nrun; r++) n += runs[r].s[k].n;
        if (n > 0) shown[np++] = k;
    }
    if (np == 0) return -1;
    const int cols = np > 1 ? 2 : 1, rows = (np + 1) / 2;
    const int legend_rows = (nrun + 2) / 3, w = cols * PW, h = TOP + 20 * legend_rows + rows * PH;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            w, h, w, h);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"26\" text-anchor=\"middle\" font-size=\"16\">", w / 2);
    plot_xml_text(f, title, 200);
    fprintf(f, "</text>\n<g class=\"legend\">\n");
    for (int r = 0; r < nrun; r++) {
        const double x = 24 + (r % 3) * (w - 48) / 3.0, y = TOP + 20 * (r / 3);
        fprintf(f,
                "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\" "
                "stroke-width=\"3\"/>\n",
                x, (int)y, x + 24, (int)y, colors[r % NCOLORS]);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\">", x + 30, (int)y + 4);
        plot_xml_text(f, runs[r].name, 60);
        fprintf(f, "</text>\n");
    }
    fprintf(f, "</g>\n");
    for (int i = 0; i < np; i++)
        panel(f, runs, nrun, shown[i], by_epoch, (i % 2) * PW,
              TOP + 20 * legend_rows + (i / 2) * PH);
    fprintf(f, "</svg>\n");
    return 0;
}

/* ---------------------------------------------------------- heat map */

/* matplotlib's "Reds", as the book's show_heatmaps draws. */
static void reds(double v, char out[8])
{
    static const unsigned char stops[][3] = {{255, 245, 240}, {254, 224, 210}, {252, 187, 161},
                                             {252, 146, 114}, {251, 106, 74},  {239, 59, 44},
                                             {203, 24, 29},   {165, 15, 21},   {103, 0, 13}};
    const int n = (int)(sizeof stops / sizeof *stops) - 1;
    v = v < 0 ? 0 : v > 1 ? 1 : v;
    const int i = v >= 1 ? n - 1 : (int)(v * n);
    const double t = v * n - i;
    int c[3];
    for (int k = 0; k < 3; k++)
        c[k] = (int)lround(stops[i][k] + t * (stops[i + 1][k] - stops[i][k]));
    snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

static int widest(char **labels, int n)
{
    size_t m = 1;
    for (int i = 0; i < n; i++) m = strlen(labels[i]) > m ? strlen(labels[i]) : m;
    return m > 30 ? 30 : (int)m;
}

void plot_svg_heatmap(FILE *f, const plot_heat *h, const char *title)
{
    const int big = h->rows > h->cols ? h->rows : h->cols;
    const int cell = big > 0 ? (600 / big < 10 ? 10 : 600 / big > 32 ? 32 : 600 / big) : 32;
    double vmax = 0;
    for (int i = 0; i < h->rows * h->cols; i++) vmax = fmax(vmax, h->w[i]);
    if (!(vmax > 0)) vmax = 1;
    /* room for the row labels (and the axis' name above them), and for
     * the slanted column labels */
    const int wide = widest(h->row_label, h->rows);
    const int ml = 24 + 7 * (wide > 22 ? wide : 22), mt = 60 + 6 * widest(h->col_label, h->cols);
    const int gw = cell * h->cols, gh = cell * h->rows;
    const int w = ml + gw + 110, ht = mt + gh + 50;
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n",
            w, ht, w, ht);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">", w / 2);
    plot_xml_text(f, title, 200);
    fprintf(f, "</text>\n");
    for (int c = 0; c < h->cols; c++) { /* source tokens, along the top */
        const double x = ml + cell * c + cell / 2.0, y = mt - 6;
        fprintf(f, "<text class=\"col\" x=\"%.1f\" y=\"%.1f\" transform=\"rotate(-60 %.1f %.1f)\">",
                x, y, x, y);
        plot_xml_text(f, h->col_label[c], 120);
        fprintf(f, "</text>\n");
    }
    for (int r = 0; r < h->rows; r++) { /* output tokens, down the left */
        fprintf(f, "<text class=\"row\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", ml - 6,
                mt + cell * r + cell / 2.0 + 4);
        plot_xml_text(f, h->row_label[r], 120);
        fprintf(f, "</text>\n");
        for (int c = 0; c < h->cols; c++) {
            char col[8];
            const double v = h->w[r * h->cols + c];
            reds(v / vmax, col);
            fprintf(f,
                    "<rect class=\"cell\" data-row=\"%d\" data-col=\"%d\" data-w=\"%.6g\" "
                    "x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\"><title>",
                    r, c, v, ml + cell * c, mt + cell * r, cell, cell, col);
            plot_xml_text(f, h->row_label[r], 120);
            fprintf(f, " / ");
            plot_xml_text(f, h->col_label[c], 120);
            fprintf(f, ": %.4f</title></rect>\n", v);
        }
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">source tokens (keys)</text>\n",
            ml + gw / 2.0, mt + gh + 20);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">output tokens (queries)</text>\n",
            ml - 6, mt - 8);
    /* the colour scale: 0 at the bottom, the largest weight at the top */
    const int bx = ml + gw + 24, steps = 50;
    for (int i = 0; i < steps; i++) {
        char col[8];
        reds((i + 0.5) / steps, col);
        fprintf(f, "<rect x=\"%d\" y=\"%.2f\" width=\"14\" height=\"%.2f\" fill=\"%s\"/>\n", bx,
                mt + gh - (i + 1) * (double)gh / steps, (double)gh / steps + 0.3, col);
    }
    const axis a = make_axis(0, vmax);
    for (double v = 0; v <= vmax + a.step * 1e-6; v += a.step)
        fprintf(f, "<text class=\"scale\" x=\"%d\" y=\"%.1f\">%.*f</text>\n", bx + 20,
                mt + gh - v / vmax * gh + 4, a.decimals, v);
    fprintf(f, "</svg>\n");
}

/* seqpar plot: training curves and attention heat maps as SVG, without a
 * browser.
 *
 * Inputs (each file is read whole; the kind is told by its first line):
 *   - the monitor's log (seqpar monitor --log FILE.jsonl): one JSON object
 *     a line; `train` messages of one step from every rank are summed (loss
 *     = Σ loss_sum / Σ tokens, as the monitor does), `eval` messages give
 *     validation perplexity and BLEU; every `run` in it is a curve. A step
 *     logged again (a run resumed from an earlier checkpoint) replaces the
 *     first.
 *   - seqpar train's standard output (seqpar train … > train.log): its
 *     lines "step S/T epoch E loss X …", "epoch E valid loss X ppl Y [bleu
 *     Z]" and "step S valid …"; the start line's "N batches/epoch" places
 *     steps on the epoch axis. One file, one curve.
 *   - attention weights (--heatmap; translate --attention-weights): one
 *     JSON object a sentence, {"index", "source", "output", "weights"}. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "data.h"
#include "plot.h"
#include "trainer.h"

#define MAX_RUNS 64

typedef struct plot_opts {
    char out[4096], heatmap[4096], title[256];
    int by_epoch; /* --x epoch|step */
    long sentence;
} plot_opts;

static const int XAXES[] = {0, 1};

#define F(f) CLI_FIELD(plot_opts, f)
static const cli_opt PLOT_OPTS[] = {
    {"out", CLI_STR, F(out), .arg = "FILE.svg", .help = "the SVG to write", .required = 1},
    {"x", CLI_CHOICE, F(by_epoch), .choices = "step|epoch", .values = XAXES,
     .help = "the curves' x axis"},
    {"title", CLI_STR, F(title), .arg = "TEXT", .help = "the figure's title (default: the files)"},
    {"heatmap", CLI_STR, F(heatmap), .arg = "WEIGHTS.jsonl",
     .help = "draw one sentence's attention weights (translate --attention-weights) instead"},
    {"sentence", CLI_LONG, F(sentence), -1, 1e12, .arg = "N",
     .help = "--heatmap: the sentence whose \"index\" is N (-1: the file's first)"},
};
#undef F

static const plot_opts PLOT_DEFAULTS = {.by_epoch = 0, .sentence = -1};

const cli_command plot_command = {
    .prog = "seqpar plot",
    .defaults = &PLOT_DEFAULTS,
    .positional = "LOG...",
    .about = "Draws training curves as an SVG, like the book's Animator: training loss and\n"
             "perplexity, validation perplexity and BLEU, against steps or epochs, every run\n"
             "of every LOG overlaid. A LOG is seqpar monitor's --log (JSON lines) or what\n"
             "seqpar train printed on stdout. With --heatmap, one sentence's attention weights.",
    .opts = PLOT_OPTS,
    .nopts = sizeof PLOT_OPTS / sizeof *PLOT_OPTS};

/* ----------------------------------------------------------- the runs */

static int add_point(plot_series *s, double step, double epoch, double y)
{
    if (!isfinite(y) || !isfinite(step) || !isfinite(epoch)) return 0;
    if (s->n == s->cap) {
        const int cap = s->cap ? 2 * s->cap : 64;
        plot_point *p = realloc(s->p, (size_t)cap * sizeof *p);
        if (!p) return -1;
        s->p = p, s->cap = cap;
    }
    s->p[s->n++] = (plot_point){step, epoch, y};
    return 0;
}

static void free_runs(plot_run *runs, int n)
{
    for (int r = 0; r < n; r++)
        for (int k = 0; k < PLOT_NPANELS; k++) free(runs[r].s[k].p);
}

/* The "N batches/epoch" (or "1 batch/epoch") of a start line: N, or 0.
 * Token batches (--batch-tokens) say "N batches in this epoch": the first
 * epoch's count, which later epochs match to within a few batches. */
static long batches_per_epoch(const char *line)
{
    const char *m = strstr(line, " batches/epoch");
    if (!m) m = strstr(line, " batch/epoch");
    if (!m) m = strstr(line, " batches in this epoch");
    if (!m) m = strstr(line, " batch in this epoch");
    if (!m) return 0;
    const char *d = m;
    while (d > line && isdigit((unsigned char)d[-1])) d--;
    return d < m ? strtol(d, NULL, 10) : 0;
}

/* A training step of the monitor's log: the sums of one step over ranks. */
typedef struct step_sum {
    long step;
    double loss_sum, tokens, epoch;
    int msgs, world;
} step_sum;

typedef struct json_run {
    char id[80];
    long per_epoch;
    step_sum *steps;
    int n, cap;
    plot_run *out;
} json_run;

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

static step_sum *find_step(json_run *jr, long step)
{
    for (int i = jr->n - 1; i >= 0; i--)
        if (jr->steps[i].step == step) return &jr->steps[i];
    if (jr->n == jr->cap) {
        const int cap = jr->cap ? 2 * jr->cap : 64;
        step_sum *p = realloc(jr->steps, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        jr->steps = p, jr->cap = cap;
    }
    jr->steps[jr->n] = (step_sum){.step = step};
    return &jr->steps[jr->n++];
}

static int by_step(const void *a, const void *b)
{
    const long x = ((const step_sum *)a)->step, y = ((const step_sum *)b)->step;
    return (x > y) - (x < y);
}

/* One message of the monitor's log into its run: 0, 1 (not a message we
 * plot), -1 out of memory. */
static int json_message(const cJSON *m, json_run *jr)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(m, "kind");
    const double step = num(m, "step"), epoch = num(m, "epoch");
    if (!cJSON_IsString(kind) || !(step >= 0 && step < 1e15)) return 1; /* a long, exactly */
    if (strcmp(kind->valuestring, "event") == 0) {
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(m, "event");
        const cJSON *detail = cJSON_GetObjectItemCaseSensitive(m, "detail");
        if (cJSON_IsString(ev) && strcmp(ev->valuestring, "start") == 0 && cJSON_IsString(detail))
            jr->per_epoch = batches_per_epoch(detail->valuestring);
        return 0;
    }
    if (strcmp(kind->valuestring, "train") == 0) {
        const double ls = num(m, "loss_sum"), tok = num(m, "tokens"), world = num(m, "world");
        if (!isfinite(ls) || !isfinite(tok)) return 1;
        step_sum *s = find_step(jr, (long)step);
        if (!s) return -1;
        if (s->msgs > 0 && s->msgs >= s->world) /* logged again: a resumed run */
            s->loss_sum = s->tokens = 0, s->msgs = 0;
        s->loss_sum += ls, s->tokens += tok, s->msgs++, s->epoch = epoch;
        s->world = world >= 1 && world < 1e6 ? (int)world : 1;
        return 0;
    }
    if (strcmp(kind->valuestring, "eval") == 0) {
        const double e = jr->per_epoch > 0 ? step / (double)jr->per_epoch : epoch;
        if (add_point(&jr->out->s[PLOT_VALID_PPL], step, e, num(m, "val_ppl")) ||
            add_point(&jr->out->s[PLOT_BLEU], step, e, num(m, "bleu")))
            return -1;
        return 0;
    }
    return 1;
}

/* The runs of a monitor log (lines[0..n)) appended to runs[*nrun]. */
static int read_json_log(const char *path, char **lines, long n, plot_run *runs, int *nrun,
                         long *used, long *bad, long *dropped)
{
    json_run jr[MAX_RUNS];
    int nj = 0, rc = 0;
    memset(jr, 0, sizeof jr);
    *used = *bad = *dropped = 0;
    for (long i = 0; i < n && rc == 0; i++) {
        if (!lines[i][0]) continue;
        cJSON *m = cJSON_Parse(lines[i]);
        const cJSON *run = m ? cJSON_GetObjectItemCaseSensitive(m, "run") : NULL;
        if (!cJSON_IsString(run)) {
            ++*bad;
            cJSON_Delete(m);
            continue;
        }
        int j = 0;
        while (j < nj && strcmp(jr[j].id, run->valuestring) != 0) j++;
        if (j == nj && nj + *nrun < MAX_RUNS) {
            snprintf(jr[nj].id, sizeof jr[nj].id, "%s", run->valuestring);
            jr[nj].out = &runs[*nrun + nj];
            snprintf(jr[nj].out->name, sizeof jr[nj].out->name, "%s", run->valuestring);
            nj++;
        }
        *dropped += j == nj; /* a run past MAX_RUNS */
        const int r = j < nj ? json_message(m, &jr[j]) : 1;
        if (r < 0) rc = -1;
        *used += r == 0, *bad += r > 0 && !cJSON_IsString(cJSON_GetObjectItem(m, "kind"));
        cJSON_Delete(m);
    }
    for (int j = 0; j < nj; j++) {
        qsort(jr[j].steps, (size_t)jr[j].n, sizeof *jr[j].steps, by_step);
        for (int i = 0; i < jr[j].n && rc == 0; i++) {
            const step_sum *s = &jr[j].steps[i];
            if (s->tokens <= 0) continue;
            const double loss = s->loss_sum / s->tokens;
            const double e = jr[j].per_epoch > 0 ? (double)s->step / jr[j].per_epoch : s->epoch;
            if (add_point(&jr[j].out->s[PLOT_TRAIN_LOSS], (double)s->step, e, loss) ||
                add_point(&jr[j].out->s[PLOT_TRAIN_PPL], (double)s->step, e, exp(loss)))
                rc = -1;
        }
        free(jr[j].steps);
    }
    *nrun += nj;
    (void)path;
    return rc;
}

/* A training log (seqpar train's stdout) as one run. */
static int read_train_log(char **lines, long n, plot_run *run, long *used)
{
    long per_epoch = 0, last_step = 0, last_epoch = 1;
    *used = 0;
    for (long i = 0; i < n; i++) {
        const char *l = lines[i];
        long s, total, e;
        double loss, ppl, bleu = NAN;
        int rc = 0, got = 0;
        if (!per_epoch && (strstr(l, "/epoch of ") || strstr(l, " in this epoch of ")))
            per_epoch = batches_per_epoch(l);
        if (sscanf(l, "step %ld/%ld epoch %ld loss %lf", &s, &total, &e, &loss) == 4) {
            const double x = per_epoch > 0 ? (double)s / per_epoch : (double)e;
            rc = add_point(&run->s[PLOT_TRAIN_LOSS], (double)s, x, loss) ||
                 add_point(&run->s[PLOT_TRAIN_PPL], (double)s, x, exp(loss));
            last_step = s, last_epoch = e, got = 1;
        } else if ((got = sscanf(l, "epoch %ld valid loss %lf ppl %lf bleu %lf", &e, &loss, &ppl,
                                 &bleu)) >= 3) {
            const double st = per_epoch > 0 ? (double)e * (double)per_epoch : (double)last_step;
            rc = add_point(&run->s[PLOT_VALID_PPL], st, (double)e, ppl) ||
                 (got == 4 && add_point(&run->s[PLOT_BLEU], st, (double)e, bleu));
        } else if ((got = sscanf(l, "step %ld valid loss %lf ppl %lf bleu %lf", &s, &loss, &ppl,
                                 &bleu)) >= 3) {
            const double x = per_epoch > 0 ? (double)s / per_epoch : (double)last_epoch;
            rc = add_point(&run->s[PLOT_VALID_PPL], (double)s, x, ppl) ||
                 (got == 4 && add_point(&run->s[PLOT_BLEU], (double)s, x, bleu));
        } else {
            got = 0;
        }
        if (rc) return -1;
        *used += got > 0;
    }
    return 0;
}

/* ------------------------------------------------------------- input */

/* The lines of a file (data_read_file: regular files, pipes, FIFOs), cut
 * in place: *buf holds them (free it and the array). NULL with err set. */
static char **read_lines(const char *path, char **buf, long *n, char *err, size_t errlen)
{
    size_t len;
    *n = 0;
    if (data_read_file(path, buf, &len, err, errlen) != DATA_OK) return NULL;
    long cap = 1;
    for (size_t i = 0; i < len; i++) cap += (*buf)[i] == '\n';
    char **lines = malloc((size_t)cap * sizeof *lines);
    if (!lines) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(*buf);
        return NULL;
    }
    for (char *l = *buf; l && l < *buf + len;) {
        char *nl = memchr(l, '\n', (size_t)(*buf + len - l));
        if (nl) *nl = '\0';
        if (nl && nl > l && nl[-1] == '\r') nl[-1] = '\0';
        lines[(*n)++] = l;
        l = nl ? nl + 1 : NULL;
    }
    return lines;
}

static int first_is_json(char **lines, long n)
{
    for (long i = 0; i < n; i++) {
        const char *l = lines[i];
        while (*l == ' ' || *l == '\t') l++;
        if (*l) return *l == '{';
    }
    return 0;
}

/* ------------------------------------------------------------- curves */

static int write_svg(const char *path, const plot_run *runs, int nrun, const plot_heat *h,
                     int by_epoch, const char *title)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "seqpar plot: --out %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (h)
        plot_svg_heatmap(f, h, title);
    else
        plot_svg_curves(f, runs, nrun, by_epoch, title);
    const int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(stderr, "seqpar plot: --out %s: write failed (%s)\n", path, strerror(errno));
        remove(path);
        return 1;
    }
    return 0;
}

static int curves(const plot_opts *o, const char **files, int nfiles)
{
    static plot_run runs[MAX_RUNS];
    int nrun = 0, rc = 0;
    char err[ERRLEN], shown[300];
    memset(runs, 0, sizeof runs);
    for (int fi = 0; fi < nfiles && rc == 0; fi++) {
        char *buf = NULL;
        long n = 0, used = 0, bad = 0, dropped = 0;
        char **lines = read_lines(files[fi], &buf, &n, err, sizeof err);
        data_escape(files[fi], 200, shown, sizeof shown);
        if (!lines) {
            fprintf(stderr, "seqpar plot: %s\n", err);
            rc = 2;
            break;
        }
        const int before = nrun, json = first_is_json(lines, n);
        int mem = 0;
        if (nrun == MAX_RUNS) {
            fprintf(stderr, "seqpar plot: %s: more than %d runs in all\n", shown, MAX_RUNS);
            rc = 2;
        } else if (json) {
            mem = read_json_log(files[fi], lines, n, runs, &nrun, &used, &bad, &dropped);
        } else {
            const char *base = strrchr(files[fi], '/') ? strrchr(files[fi], '/') + 1 : files[fi];
            const char *ext = strrchr(base, '.'); /* the name without its extension */
            snprintf(runs[nrun].name, sizeof runs[nrun].name, "%.*s",
                     (int)(ext && ext > base ? (size_t)(ext - base) : strlen(base)), base);
            mem = read_train_log(lines, n, &runs[nrun++], &used);
        }
        free(lines);
        free(buf);
        if (mem) {
            fprintf(stderr, "seqpar plot: out of memory reading %s\n", shown);
            rc = 1;
        } else if (rc == 0 && used == 0) {
            fprintf(stderr,
                    "seqpar plot: %s: no training figures in it (expected the JSON lines of "
                    "seqpar monitor --log, or what seqpar train printed: \"step S/T epoch E "
                    "loss X ...\" lines)\n",
                    shown);
            rc = 2;
        }
        if (rc == 0 && dropped > 0)
            fprintf(stderr, "seqpar plot: %s: runs past the %dth left out (%ld messages)\n", shown,
                    MAX_RUNS, dropped);
        if (rc == 0 && bad > 0) {
            fprintf(stderr, "seqpar plot: %s: %ld line%s skipped (not a monitor message)\n", shown,
                    bad, bad > 1 ? "s" : "");
        }
        for (int r = before; r < nrun && nfiles > 1; r++) /* the same run id in two files */
            for (int q = 0; q < before; q++)
                if (strcmp(runs[q].name, runs[r].name) == 0) {
                    char name[sizeof runs[r].name];
                    snprintf(name, sizeof name, "%.60s (%.80s)", runs[r].name, shown);
                    snprintf(runs[r].name, sizeof runs[r].name, "%s", name);
                }
    }
    if (rc == 0) {
        char title[300];
        if (o->title[0])
            snprintf(title, sizeof title, "%s", o->title);
        else
            snprintf(title, sizeof title, "%.200s%s", files[0], nfiles > 1 ? ", …" : "");
        rc = write_svg(o->out, runs, nrun, NULL, o->by_epoch, title);
    }
    if (rc == 0) printf("plot of %d run%s written to %s\n", nrun, nrun == 1 ? "" : "s", o->out);
    free_runs(runs, nrun);
    return rc;
}

/* ------------------------------------------------------------ heat map */

/* A JSON array of strings as a malloc'd array of copies: its length, or -1. */
static int strings(const cJSON *a, char ***out)
{
    *out = NULL;
    const int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    if (n <= 0) return -1;
    char **s = calloc((size_t)n, sizeof *s);
    int i = 0;
    for (const cJSON *e = a->child; s && e; e = e->next, i++)
        if (!cJSON_IsString(e) || !(s[i] = strdup(e->valuestring))) break;
    if (s && i == n) {
        *out = s;
        return n;
    }
    for (int k = 0; s && k < i; k++) free(s[k]);
    free(s);
    return -1;
}

static void free_heat(plot_heat *h)
{
    for (int i = 0; h->row_label && i < h->rows; i++) free(h->row_label[i]);
    for (int i = 0; h->col_label && i < h->cols; i++) free(h->col_label[i]);
    free(h->row_label);
    free(h->col_label);
    free(h->w);
}

/* One sentence's object into h: 0, or -1 with why. */
static int heat_from_json(const cJSON *m, plot_heat *h, char *why, size_t n)
{
    memset(h, 0, sizeof *h);
    h->index = (int)num(m, "index");
    h->cols = strings(cJSON_GetObjectItemCaseSensitive(m, "source"), &h->col_label);
    h->rows = strings(cJSON_GetObjectItemCaseSensitive(m, "output"), &h->row_label);
    if (h->cols < 0 || h->rows < 0) {
        snprintf(why, n, "\"%s\" must be a non-empty array of strings",
                 h->cols < 0 ? "source" : "output");
        h->cols = h->cols < 0 ? 0 : h->cols, h->rows = h->rows < 0 ? 0 : h->rows;
        return -1;
    }
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(m, "weights");
    if (!cJSON_IsArray(w) || cJSON_GetArraySize(w) != h->rows) {
        snprintf(why, n, "\"weights\" must have one row per output token (%d)", h->rows);
        return -1;
    }
    h->w = malloc((size_t)h->rows * (size_t)h->cols * sizeof *h->w);
    if (!h->w) {
        snprintf(why, n, "out of memory");
        return -1;
    }
    int r = 0;
    for (const cJSON *row = w->child; row; row = row->next, r++) {
        if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != h->cols) {
            snprintf(why, n, "\"weights\" row %d must have one number per source token (%d)", r,
                     h->cols);
            return -1;
        }
        int c = 0;
        for (const cJSON *v = row->child; v; v = v->next, c++) {
            if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1.0 + 1e-6)) {
                snprintf(why, n, "\"weights\"[%d][%d] must be a number in [0, 1]", r, c);
                return -1;
            }
            h->w[r * h->cols + c] = v->valuedouble;
        }
    }
    return 0;
}

static int heatmap(const plot_opts *o, int npos)
{
    char err[ERRLEN], shown[300], why[200] = "";
    data_escape(o->heatmap, 200, shown, sizeof shown);
    if (npos > 0) {
        fprintf(stderr, "seqpar plot: --heatmap draws one weights file: no LOG files with it\n");
        return 2;
    }
    char *buf = NULL;
    long n = 0, line = -1;
    char **lines = read_lines(o->heatmap, &buf, &n, err, sizeof err);
    if (!lines) {
        fprintf(stderr, "seqpar plot: --heatmap %s\n", err);
        return 2;
    }
    cJSON *m = NULL;
    long first = -1, last = -1, count = 0;
    for (long i = 0; i < n && !m; i++) {
        if (!lines[i][strspn(lines[i], " \t")]) continue;
        cJSON *c = cJSON_Parse(lines[i]);
        const double idx = c ? num(c, "index") : NAN;
        if (!(idx >= 0 && idx <= 2e9 && idx == floor(idx))) {
            snprintf(why, sizeof why, "not a JSON object with a whole-number \"index\" >= 0");
            line = i + 1;
            cJSON_Delete(c);
            break;
        }
        first = count++ ? first : (long)idx, last = (long)idx;
        if (o->sentence < 0 || (long)idx == o->sentence)
            m = c, line = i + 1;
        else
            cJSON_Delete(c);
    }
    plot_heat h;
    memset(&h, 0, sizeof h);
    int rc = 0;
    if (!m && !why[0])
        snprintf(why, sizeof why, "%s",
                 count == 0 ? "no sentence in it (one JSON object a line expected)" : "");
    if (!m && !why[0]) {
        fprintf(stderr,
                "seqpar plot: --heatmap %s: no sentence with index %ld (%ld sentence%s, "
                "index %ld to %ld)\n",
                shown, o->sentence, count, count == 1 ? "" : "s", first, last);
        rc = 2;
    } else if (!m || heat_from_json(m, &h, why, sizeof why) != 0) {
        if (line > 0)
            fprintf(stderr, "seqpar plot: --heatmap %s, line %ld: %s\n", shown, line, why);
        else
            fprintf(stderr, "seqpar plot: --heatmap %s: %s\n", shown, why);
        rc = 2;
    } else {
        char title[300];
        if (o->title[0])
            snprintf(title, sizeof title, "%s", o->title);
        else
            snprintf(title, sizeof title, "attention weights, sentence %d", h.index);
        rc = write_svg(o->out, NULL, 0, &h, 0, title);
        if (rc == 0)
            printf("heat map of sentence %d (%d x %d) written to %s\n", h.index, h.rows, h.cols,
                   o->out);
    }
    free_heat(&h);
    cJSON_Delete(m);
    free(lines);
    free(buf);
    return rc;
}

int cmd_plot(int argc, char **argv)
{
    plot_opts o = PLOT_DEFAULTS;
    const char *files[MAX_RUNS];
    int npos = 0;
    const int parsed = cli_parse(&plot_command, &o, argc, argv, files, MAX_RUNS, &npos);
    if (parsed) return parsed == 1 ? 0 : 2;
    if (o.heatmap[0]) return heatmap(&o, npos);
    if (o.sentence >= 0) {
        fprintf(stderr, "seqpar plot: --sentence applies to --heatmap only\n");
        return 2;
    }
    if (npos == 0) {
        fprintf(stderr, "seqpar plot: no LOG file (seqpar plot LOG... --out FILE.svg; see "
                        "seqpar plot --help)\n");
        return 2;
    }
    return curves(&o, files, npos);
}

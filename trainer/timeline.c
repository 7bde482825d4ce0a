/* Where a rank's training time goes (timeline.h). */
#include "timeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"

void timeline_start(timeline *tl, const step_engine *e)
{
    memset(tl, 0, sizeof *tl);
    tl->eng = e;
    tl->t0 = comm_time();
    timeline_totals(tl, tl->sent); /* the first window starts now */
}

void timeline_add(timeline *tl, int p, double since)
{
    if (p >= 0 && p < PHASES) tl->loop[p] += comm_time() - since;
}

void timeline_totals(const timeline *tl, double out[PHASES])
{
    double st[STEP_PHASES];
    step_seconds(tl->eng, st);
    for (int p = 0; p < PHASES; p++) out[p] = tl->loop[p];
    out[PHASE_COMPUTE] += st[STEP_COMPUTE];
    out[PHASE_WAIT] += st[STEP_WAIT];
    out[PHASE_DATA] += st[STEP_DATA];
}

void timeline_window(timeline *tl, double out[PHASES])
{
    double now[PHASES];
    timeline_totals(tl, now);
    for (int p = 0; p < PHASES; p++) out[p] = now[p] - tl->sent[p];
    memcpy(tl->sent, now, sizeof now);
}

/* One rank's line: each phase's seconds and share of its time. */
static void print_rank(const char *who, const double *row)
{
    const double all = row[PHASES] > 0 ? row[PHASES] : 1e-9;
    double rest = row[PHASES];
    char line[400];
    int k = snprintf(line, sizeof line, "  %s:", who);
    for (int p = 0; p < PHASES && k > 0 && (size_t)k < sizeof line; p++) {
        rest -= row[p];
        k += snprintf(line + k, sizeof line - (size_t)k, " %s %.2f s (%.1f%%)%s",
                      wire_phase_names[p], row[p], 100.0 * row[p] / all, p + 1 < PHASES ? "," : "");
    }
    comm_printf0("%s; other %.2f s of %.2f s\n", line, rest > 0 ? rest : 0.0, row[PHASES]);
}

void timeline_report(const timeline *tl, int rank, int world)
{
    const size_t cols = PHASES + 1; /* the phases, then the rank's training time */
    double *rows = calloc((size_t)world * cols, sizeof *rows);
    double ok = rows != NULL;
    comm_allreduce_double(&ok, 1);
    if (ok < world) { /* out of memory somewhere: no table, alike on every rank */
        free(rows);
        return;
    }
    double *mine = rows + (size_t)rank * cols;
    timeline_totals(tl, mine);
    mine[PHASES] = comm_time() - tl->t0;
    comm_allreduce_double(rows, (size_t)world * cols); /* each rank adds its row into zeros */
    comm_printf0("time by phase (compute: forward, backward and update; wait: in the gradient "
                 "allreduce, beyond what backward hid; data: reading batches):\n");
    int slowest = 0;
    for (int r = 0; r < world; r++)
        if (rows[(size_t)r * cols + PHASE_COMPUTE] > rows[(size_t)slowest * cols + PHASE_COMPUTE])
            slowest = r;
    char who[48];
    for (int r = 0; r < world && r < 64; r++) {
        snprintf(who, sizeof who, "rank %d", r);
        print_rank(who, rows + (size_t)r * cols);
    }
    if (world > 64) {
        snprintf(who, sizeof who, "rank %d (most compute)", slowest);
        comm_printf0("  ... %d more ranks; the one computing longest:\n", world - 64);
        print_rank(who, rows + (size_t)slowest * cols);
    }
    free(rows);
}

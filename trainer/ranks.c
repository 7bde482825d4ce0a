/* The ranks' agreement and the error policy (ranks.h). */
#include "ranks.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"

static void close_wire(ranks *r)
{
    telemetry_close(r->tel);
    r->tel = NULL;
}

void ranks_die0(ranks *r, int code, const char *fmt, ...)
{
    if (r->rank == 0) {
        char msg[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "seqpar train: %s\n", msg);
        telemetry_event(r->tel, "error", "%s", msg);
    }
    ranks_exit(r, code);
}

void ranks_exit(ranks *r, int code)
{
    close_wire(r);
    comm_finalize();
    exit(code);
}

int ranks_first_failing(const ranks *r, int ok)
{
    double who = ok ? 0.0 : (double)(r->world - r->rank);
    comm_allreduce_max_double(&who, 1);
    return who == 0.0 ? -1 : r->world - (int)who;
}

void ranks_stop_after(ranks *r, int speaker, int code)
{
    close_wire(r);
    comm_finalize();
    /* the rank that spoke exits first: mpirun ends the job at the first
     * non-zero exit, and when that was another rank's it dropped the
     * speaker's line still in flight (2 runs in 20 here, a missing corpus
     * on rank 1) */
    if (r->rank != speaker) {
        struct timespec pause = {0, 500000000L};
        nanosleep(&pause, NULL);
    }
    exit(code);
}

void ranks_agree(ranks *r, int ok, int code, const char *msg)
{
    const int speaker = ranks_first_failing(r, ok);
    if (speaker < 0) return;
    if (r->rank == speaker) {
        fprintf(stderr, "seqpar train: %s\n", msg);
        telemetry_event(r->tel, "error", "rank %d: %s", r->rank, msg);
    }
    ranks_stop_after(r, speaker, code);
}

void ranks_die_local(ranks *r, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (r->world > 1)
        fprintf(stderr, "seqpar train: rank %d: %s\n", r->rank, msg);
    else
        fprintf(stderr, "seqpar train: %s\n", msg);
    telemetry_event(r->tel, "error", "rank %d: %s", r->rank, msg);
    close_wire(r);
    comm_abort(code);
}

void ranks_same_options(ranks *r, const train_config *c)
{
    if (r->world == 1) return;
    train_config root = *c;
    comm_bcast(&root, sizeof root, 0);
    static const char *const per_rank[] = {"data-dir", "threads", "monitor-key", NULL};
    char here[32], why[800], msg[1000] = "";
    snprintf(here, sizeof here, "on rank %d", r->rank);
    const int differs =
        config_difference(&root, c, NULL, per_rank, "on rank 0", here, why, sizeof why);
    if (differs) snprintf(msg, sizeof msg, "%s: every rank must be given the same options", why);
    ranks_agree(r, !differs, 2, msg);
}

const char *ranks_tag(const ranks *r, char *buf, size_t n)
{
    if (r->world > 1)
        snprintf(buf, n, "rank %d: ", r->rank);
    else if (n > 0)
        buf[0] = '\0';
    return buf;
}

void ranks_check_launch(ranks *r)
{
    if (r->world > 1) return;
    /* srun sets SLURM_STEP_NUM_TASKS for the step it starts, with or without
     * PMI; SLURM_NTASKS is the allocation's, set in a batch script that runs
     * one process too (with SLURM_PROCID=0): not a sign of a mis-launch */
    static const char *const vars[] = {"SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                       "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (!v) continue;
        char *end;
        const long n = strtol(v, &end, 10);
        if (*end || n <= 1) continue;
        ranks_die0(r, 2,
                   "%s=%ld, but MPI started a world of 1: the launcher started %ld processes "
                   "that do not know each other, each of which would train alone into the same "
                   "checkpoint directory; %s (cluster/README.md)",
                   vars[i], n, n,
                   i == 0 ? "with Slurm, launch with srun --mpi=pmix (or --mpi=pmi2; srun "
                            "--mpi=list shows what the site has), or mpirun inside the allocation"
                          : "launch with the mpirun of the MPI seqpar was built with");
    }
}

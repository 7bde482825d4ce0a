/* The node's resources (node.h): memory, the thread plan, OpenBLAS's kernel. */
#include "node.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "comm.h"
#include "data.h"

#include <cblas.h> /* openblas_get_corename, openblas_set_num_threads */
#undef I

/* ---------------------------------------------------------------- memory */

double node_vm_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    const int ok = f && fscanf(f, "%lu", &pages) == 1;
    if (f) fclose(f);
    const long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (double)pages * (double)page : -1.0;
}

/* A cgroup v2 limit's room for this process: memory.max less what the
 * group holds beyond its reclaimable file cache (inactive_file), or -1. */
static double cgroup_room(void)
{
    char rel[600] = "", line[600];
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(rel, sizeof rel, "%s", line + 3);
            rel[strcspn(rel, "\n")] = '\0';
        }
    if (f) fclose(f);
    if (!rel[0]) return -1.0; /* cgroup v1, or none */
    char path[700];
    unsigned long long max = 0, cur = 0, inactive = 0;
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", strcmp(rel, "/") ? rel : "");
    FILE *fm = fopen(path, "r");
    int ok = fm && fscanf(fm, "%llu", &max) == 1; /* "max": no limit */
    if (fm) fclose(fm);
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", strcmp(rel, "/") ? rel : "");
    FILE *fc = fopen(path, "r");
    ok = ok && fc && fscanf(fc, "%llu", &cur) == 1;
    if (fc) fclose(fc);
    if (!ok) return -1.0;
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.stat", strcmp(rel, "/") ? rel : "");
    FILE *fs = fopen(path, "r");
    while (fs && fgets(line, sizeof line, fs))
        if (sscanf(line, "inactive_file %llu", &inactive) == 1) break;
    if (fs) fclose(fs);
    const double held = (double)cur - (double)inactive;
    return (double)max > held ? (double)max - held : 0.0;
}

double node_mem_available(void)
{
    const char *env = getenv("SEQPAR_MEM_AVAILABLE_MB");
    if (env && *env) {
        char *end;
        const double mb = strtod(env, &end);
        if (*end == '\0' && mb > 0) return mb * 1e6;
    }
    double avail = -1.0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long kb;
        if (sscanf(line, "MemAvailable: %lu kB", &kb) == 1) avail = (double)kb * 1024.0;
    }
    if (f) fclose(f);
    const double room = cgroup_room();
    if (room >= 0 && (avail < 0 || room < avail)) avail = room;
    return avail;
}

double node_data_mem_limit(void)
{
    const double avail = node_mem_available();
    const int local = comm_local_size();
    return avail > 0 ? avail / (local > 0 ? local : 1) : 0.0;
}

int node_model_fits(const param_table *pt, double vm0, int adam, int workers, int rows, int steps,
                    char *msg, size_t n)
{
    const double vm1 = node_vm_bytes(), avail = node_mem_available();
    if (!(vm0 >= 0 && vm1 >= vm0 && avail > 0)) return 1;
    const int local = comm_local_size();
    const double pbytes = (double)pt->total * sizeof(float), mbytes = vm1 - vm0;
    /* --workers W: W replicas more, sharing the parameters (at most the
     * trainer's model less its parameters each: fewer rows) */
    const int W = workers > 1 ? workers : 0;
    const double need =
        mbytes + W * (mbytes > pbytes ? mbytes - pbytes : 0.0) + (adam ? 2.0 * pbytes : 0.0);
    if (need * local <= avail) return 1;
    char a[32], b[32], count_text[32];
    data_size_text(a, sizeof a, need);
    data_size_text(b, sizeof b, avail);
    size_t count = 0; /* without the alignment padding */
    for (int i = 0; i < pt->n; i++) count += pt->t[i].size;
    if (count >= 1000000)
        snprintf(count_text, sizeof count_text, "%.1f M", (double)count / 1e6);
    else
        snprintf(count_text, sizeof count_text, "%zu", count);
    snprintf(msg, n,
             "the model needs about %s per rank (%s parameters, their gradients%s and "
             "the workspace for %d rows of %d steps%s) and this node runs %d rank%s, "
             "but %s is available: choose a smaller --hidden, --embed, --batch or "
             "--steps, or fewer ranks per node",
             a, count_text, adam ? ", Adam's moments" : "", rows, steps,
             W ? ", and the workers' replicas" : "", local, local > 1 ? "s" : "", b);
    return 0;
}

/* ------------------------------------------------------ threads, kernel */

int node_setup_threads(int requested, char *why, size_t whylen)
{
    const int n = comm_thread_plan(requested, why, whylen);
    openblas_set_num_threads(n);
    return n;
}

int node_kernel_advice(char *buf, size_t n)
{
    const char *core = openblas_get_corename();
    static const char *const avx512[] = {"skylakex", "cooperlake", "sapphirerapids", NULL};
    static const char *const avx2[] = {"haswell",        "zen", "skylakex", "cooperlake",
                                       "sapphirerapids", NULL};
    const char *want = NULL;
    const char *const *good = NULL;
#if defined(__x86_64__) && defined(__GNUC__)
    /* the CPU's (and the OS's) support, as the compiler's runtime reads it */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        want = "SkylakeX", good = avx512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        want = "Haswell", good = avx2;
#endif
    if (!want || !core) return 0;
    for (int i = 0; good[i]; i++)
        if (strcasecmp(core, good[i]) == 0) return 0;
    snprintf(buf, n,
             "warning: OpenBLAS runs its %s kernel, but this CPU has %s: "
             "OPENBLAS_CORETYPE=%s makes sgemm several times faster (export it, and pass "
             "-x OPENBLAS_CORETYPE to mpirun)",
             core, strcmp(want, "SkylakeX") == 0 ? "AVX-512" : "AVX2 and FMA", want);
    return 1;
}

void node_print_plan(int threads, int workers, const char *why)
{
    char advice[400];
    /* on stdout: stderr is kept for errors, one line each */
    if (comm_rank() == 0 && node_kernel_advice(advice, sizeof advice)) comm_printf0("%s\n", advice);
    if (workers > 1)
        comm_printf0("seqpar %s: %d rank%s x %d workers x 1 OpenBLAS thread (%s; kernel %s)\n",
                     SEQPAR_VERSION, comm_world(), comm_world() > 1 ? "s" : "", workers, why,
                     openblas_get_corename());
    else
        comm_printf0("seqpar %s: %d rank%s x %d OpenBLAS thread%s (%s; kernel %s)\n",
                     SEQPAR_VERSION, comm_world(), comm_world() > 1 ? "s" : "", threads,
                     threads > 1 ? "s" : "", why, openblas_get_corename());
}

/* A run directory's checkpoints: names, listing, retention, temporaries. */
#include "checkpoints.h"
#include "ckpt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <signal.h>

/* ------------------------------------------------------------ directories */

int ckpt_clean_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    char hostbuf[128];
    const char *host = ckpti_host_name(hostbuf, sizeof hostbuf);
    const size_t hl = strlen(host);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        /* ckpt-<step>.h5.tmp.<host>.<pid>: only this host's writers can be
         * asked whether they still run (another node's, or another
         * container's, are left alone) */
        long step;
        int at = 0;
        if (sscanf(e->d_name, "ckpt-%ld.h5.tmp.%n", &step, &at) != 1 || at == 0) continue;
        const char *rest = e->d_name + at;
        if (strncmp(rest, host, hl) != 0 || rest[hl] != '.') continue;
        char *end;
        long pid = strtol(rest + hl + 1, &end, 10);
        if (*end || pid <= 0 || end == rest + hl + 1) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* its writer still runs */
        char p[1200];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        n += unlink(p) == 0;
    }
    closedir(d);
    return n;
}

void ckpt_path(char *out, size_t n, const char *dir, long step)
{
    snprintf(out, n, "%s/ckpt-%08ld.h5", dir, step);
}

static int cmp_desc(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* All of them: a listing that stopped at a caller's capacity would hold
 * whichever the directory's order gave first, not the newest. */
int ckpt_list_all(const char *dir, long **out)
{
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) return -1;
    long *steps = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long s;
        if (!ckpti_checkpoint_name(e->d_name, &s)) continue;
        /* a regular file (or a link to one): a FIFO would block its reader */
        char p[1200];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            const int ncap = cap ? 2 * cap : 64; /* cap below 2^28: no overflow */
            long *grown = cap < (1 << 28) ? realloc(steps, (size_t)ncap * sizeof *steps) : NULL;
            if (!grown) {
                free(steps);
                closedir(d);
                return -1;
            }
            steps = grown, cap = ncap;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (n > 0) qsort(steps, (size_t)n, sizeof *steps, cmp_desc);
    *out = steps;
    return n;
}

int ckpt_list_dir(const char *dir, long *steps, int max)
{
    long *all;
    const int n = ckpt_list_all(dir, &all);
    if (n < 0) return -1;
    const int k = n < max ? n : max > 0 ? max : 0;
    if (k > 0) memcpy(steps, all, (size_t)k * sizeof *steps);
    free(all);
    return k;
}

int ckpt_retain(const char *dir, int keep, long upto, long good_step, int *later)
{
    if (later) *later = 0;
    long *steps;
    const int n = ckpt_list_all(dir, &steps);
    if (n < 0) return -1;
    int kept = 0, removed = 0, past = 0;
    int good = -1, checked = 0; /* the newest that verifies; steps[0..checked) tried */
    for (int i = 0; i < n; i++) {
        /* a checkpoint past upto belongs to a run this one did not continue
         * (it resumed from an earlier step): not this run's to prune */
        if (steps[i] > upto) {
            past++;
            continue;
        }
        if (kept++ < keep) continue;
        /* about to remove one: only once the newest that verifies is known,
         * and never that one */
        for (; good < 0 && checked <= i; checked++) {
            char q[1200], why[512];
            ckpt_path(q, sizeof q, dir, steps[checked]);
            if (steps[checked] <= upto &&
                (steps[checked] == good_step || ckpt_verify(q, why, sizeof why) == CKPT_OK))
                good = checked;
        }
        if (good < 0 || good == i) continue;
        char p[1200];
        ckpt_path(p, sizeof p, dir, steps[i]);
        removed += unlink(p) == 0;
    }
    free(steps);
    if (later) *later = past;
    return removed;
}

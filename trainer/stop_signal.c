/* Graceful stop on a signal (stop_signal.h). */
#define _DEFAULT_SOURCE /* SIGUSR1 and friends' names, sigaction with SA_RESTART */
#include "stop_signal.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static volatile sig_atomic_t pending;
static struct timespec first; /* when the first came */

/* Launchers pass a signal on while the job gets it too (Slurm signals every
 * task and srun or mpirun, which forward it): copies that come within
 * STOP_SIGNAL_SAME_S of the first are the same request. A later one ends
 * the process at once, as the signal's default action would. */
static void on_stop(int sig)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now); /* async-signal-safe */
    if (!pending) {
        pending = sig, first = now;
        return;
    }
    const double since = (double)(now.tv_sec - first.tv_sec) + 1e-9 * (now.tv_nsec - first.tv_nsec);
    if (since < STOP_SIGNAL_SAME_S) return;
    signal(sig, SIG_DFL);
    raise(sig);
}

static const struct {
    const char *name;
    int sig;
} SIGNALS[] = {
    {"TERM", SIGTERM}, {"INT", SIGINT}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"HUP", SIGHUP}};

#define NSIG_KNOWN (sizeof SIGNALS / sizeof *SIGNALS)

int stop_signal_parse(const char *list, int *mask, char *err, size_t n)
{
    *mask = 0;
    if (strcasecmp(list, "none") == 0) return 0;
    char *buf = strdup(list); /* whole, however long */
    if (!buf) {
        snprintf(err, n, "out of memory");
        return -1;
    }
    char *save = NULL;
    for (char *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (strncasecmp(w, "SIG", 3) == 0) w += 3;
        size_t k = 0;
        while (k < NSIG_KNOWN && strcasecmp(w, SIGNALS[k].name) != 0) k++;
        if (k == NSIG_KNOWN) {
            snprintf(err, n,
                     "expected none, or a comma-separated list of TERM, INT, USR1, USR2, HUP");
            free(buf);
            return -1;
        }
        *mask |= 1 << k;
    }
    free(buf);
    if (*mask == 0) {
        snprintf(err, n, "expected none, or a comma-separated list of TERM, INT, USR1, USR2, HUP");
        return -1;
    }
    return 0;
}

void stop_signal_format(int mask, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < NSIG_KNOWN; k++)
        if (mask & (1 << k) && used < n)
            used +=
                (size_t)snprintf(buf + used, n - used, "%s%s", used ? "," : "", SIGNALS[k].name);
    if (!mask) snprintf(buf, n, "none");
}

int stop_signal_in(int mask, int sig)
{
    for (size_t k = 0; k < NSIG_KNOWN; k++)
        if (SIGNALS[k].sig == sig) return (mask >> k) & 1;
    return 0;
}

void stop_signal_install(int mask)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART; /* reads and writes in progress carry on */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (size_t k = 0; k < NSIG_KNOWN; k++) /* the others as the system has them */
        sigaction(SIGNALS[k].sig, mask & (1 << k) ? &sa : &dfl, NULL);
}

int stop_signal_pending(void)
{
    return pending;
}

const char *stop_signal_name(int sig)
{
    for (size_t k = 0; k < sizeof SIGNALS / sizeof *SIGNALS; k++)
        if (SIGNALS[k].sig == sig) {
            static const char *const full[] = {"SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP"};
            return full[k];
        }
    return "a signal";
}

static long fault_start;

void stop_signal_fault_start(long step)
{
    fault_start = step;
}

void stop_signal_fault(const char *phase, int rank, long step)
{
    const long start = fault_start;
    static int fired; /* once: a second signal would end the process at once */
    const char *f = fired ? NULL : getenv("SEQPAR_FAULT_SIGNAL");
    while (f && *f) {
        int r, n = 0;
        long at;
        char what[16] = "", sig[8] = "";
        const int got = sscanf(f, "%d:%ld:%15[a-z]%n:%7[A-Z]%n", &r, &at, what, &n, sig, &n);
        if (got >= 3 && r == rank && at == step && start < at && strcmp(what, phase) == 0) {
            fired = 1;
            raise(strcmp(sig, "KILL") == 0 ? SIGKILL : SIGTERM);
            return;
        }
        f = strchr(f, ',');
        if (f) f++;
    }
}

/* seqpar supervise [options] -- mpirun … seqpar train …: runs a training
 * job and, when it fails (a rank killed, a node gone), relaunches it with
 * --resume auto after a back-off, up to --max-restarts times. With
 * --hostfile the file is read again before every launch and the job gets
 * -np as the slots it lists: hosts taken out of it after a failure are left
 * out, down to --min-ranks (the trainer resumes exactly at any world size).
 *
 * Not relaunched: a job that ended well (0), one stopped by a signal
 * (exit 75, or a signal the supervisor itself got and forwarded), and one
 * refused for its options or input (2), which would only fail again. */
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "stop_signal.h"
#include "trainer.h"
#include "wire.h"

typedef struct supervise_opts {
    long max_restarts;
    double backoff;
    char hostfile[4096];
    long min_ranks;
    char monitor[256], run[WIRE_RUN_MAX + 1];
} supervise_opts;

#define F(f) CLI_FIELD(supervise_opts, f)
static const cli_opt SUPERVISE_OPTS[] = {
    {"max-restarts", CLI_LONG, F(max_restarts), 0, 1000000, .arg = "N",
     .help = "relaunches after failures before giving up"},
    {"backoff", CLI_DOUBLE, F(backoff), 0, 300, .arg = "S",
     .help = "seconds before the first relaunch, doubled after each (at most 300)"},
    {"hostfile", CLI_STR, F(hostfile), .arg = "FILE",
     .help = "Open MPI hostfile read again before every launch: -np is its slots' sum"},
    {"min-ranks", CLI_LONG, F(min_ranks), 1, 1000000, .arg = "N",
     .help = "with --hostfile: give up when fewer slots remain"},
    {"monitor", CLI_STR, F(monitor), .arg = "ENDPOINT",
     .help = "where restarts are sent (default: the command's --monitor)"},
    {"run", CLI_STR, F(run), .arg = "NAME", .help = "their run (default: the command's --run)"},
};
#undef F

static const supervise_opts SUPERVISE_DEFAULTS = {
    .max_restarts = 3, .backoff = 2.0, .min_ranks = 1};

const cli_command supervise_command = {
    .prog = "seqpar supervise",
    .defaults = &SUPERVISE_DEFAULTS,
    .positional = "-- COMMAND…",
    .about = "Runs a training job (mpirun … seqpar train … --checkpoint-dir DIR) and relaunches\n"
             "it with --resume auto when it fails; see cluster/README.md.",
    .opts = SUPERVISE_OPTS,
    .nopts = sizeof SUPERVISE_OPTS / sizeof *SUPERVISE_OPTS};

static volatile sig_atomic_t got_signal; /* a stop signal the supervisor got */
static volatile pid_t child;

static int job_stop_signals = STOP_SIGNALS_DEFAULT; /* the command's --stop-signals */

/* The signal passed on to the job: sig when the job stops on it with a
 * checkpoint; otherwise SIGTERM (SIGHUP, when the terminal closes, would
 * end a job that does not take it, without a checkpoint). */
static int forward_as(int sig)
{
    return stop_signal_in(job_stop_signals, sig) ? sig : SIGTERM;
}

static void on_signal(int sig)
{
    if (got_signal) return; /* passed on once: a second would end the job at once */
    got_signal = sig;
    if (child > 0) kill(child, forward_as(sig)); /* the job stops itself, with a checkpoint */
}

/* The value after `name` in the command (NULL: none). */
static const char *command_value(char **cmd, int n, const char *name)
{
    const size_t len = strlen(name);
    for (int i = 0; i < n; i++) {
        if (strcmp(cmd[i], name) == 0 && i + 1 < n) return cmd[i + 1];
        if (strncmp(cmd[i], name, len) == 0 && cmd[i][len] == '=') return cmd[i] + len + 1;
    }
    return NULL;
}

/* Slots of an Open MPI hostfile ("host [slots=N]" lines, # comments): their
 * sum into *slots and the host count into *hosts; -1 when it cannot be read. */
static int read_hostfile(const char *path, long *slots, int *hosts)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[1024];
    *slots = 0, *hosts = 0;
    while (fgets(line, sizeof line, f)) {
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        char host[512];
        if (sscanf(line, "%511s", host) != 1) continue;
        long n = 1; /* a host without slots= is one slot, as Open MPI counts it */
        for (const char *s = strstr(line, "slots"); s; s = strstr(s + 5, "slots")) {
            if (s > line && s[-1] != ' ' && s[-1] != '\t') continue; /* max_slots= */
            const char *v = s + 5;
            while (*v == ' ' || *v == '\t') v++;
            if (*v != '=') continue;
            n = strtol(v + 1, NULL, 10);
            break;
        }
        *slots += n > 0 ? n : 0;
        (*hosts)++;
    }
    fclose(f);
    return 0;
}

/* The launch's argv: the command, with --hostfile FILE -np N after mpirun
 * when there is a hostfile; the first launch resumes as the command says
 * (--resume auto when it says nothing), a relaunch always from the newest
 * checkpoint (--resume auto, whatever the command said). */
static char **launch_argv(char **cmd, int n, const supervise_opts *o, long np, char *npbuf,
                          int relaunch)
{
    char **a = calloc((size_t)n + 8, sizeof *a);
    if (!a) return NULL;
    int k = 0, said = 0;
    a[k++] = cmd[0];
    if (o->hostfile[0]) {
        snprintf(npbuf, 24, "%ld", np);
        a[k++] = "--hostfile", a[k++] = (char *)o->hostfile, a[k++] = "-np", a[k++] = npbuf;
    }
    for (int i = 1; i < n; i++) {
        if (!strcmp(cmd[i], "--resume") && i + 1 < n) {
            said = 1;
            a[k++] = cmd[i], a[k++] = relaunch ? "auto" : cmd[i + 1];
            i++;
        } else if (!strncmp(cmd[i], "--resume=", 9)) {
            said = 1;
            a[k++] = relaunch ? "--resume=auto" : cmd[i];
        } else {
            a[k++] = cmd[i];
        }
    }
    if (!said) a[k++] = "--resume", a[k++] = "auto";
    a[k] = NULL;
    return a;
}

/* Runs one launch to its end: its exit status (128 + N when killed by
 * signal N), or -1 when it could not be started. */
static int run_once(char **argv)
{
    const pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        /* a process group of its own: a terminal's Ctrl-C reaches the
         * supervisor alone, which passes it on once (a second one would end
         * the job at once, without its checkpoint) */
        setpgid(0, 0);
        execvp(argv[0], argv);
        fprintf(stderr, "seqpar supervise: %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* as the child does: whichever runs first */
    child = pid;
    if (got_signal) kill(pid, forward_as(got_signal)); /* one that came during the fork */
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return -1;
    child = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* An event on the metrics wire, as rank 0 of a world of `world`. */
static void send_event(wire_pub *pub, const char *run, long world, const char *event,
                       const char *detail)
{
    if (!pub) return;
    static wire_msg m; /* large: not on the stack */
    wire_msg_init(&m, WIRE_EVENT);
    snprintf(m.run, sizeof m.run, "%s", run);
    m.rank = 0, m.world = (int)(world > 0 ? world : 1);
    m.step = 0, m.epoch = 0, m.time = wire_time();
    snprintf(m.event, sizeof m.event, "%s", event);
    snprintf(m.detail, sizeof m.detail, "%s", detail);
    char *s = wire_encode(&m);
    if (s) wire_pub_send(pub, s, strlen(s));
    free(s);
}

/* Sleeps s seconds unless a signal comes: 0, or 1 when one came. */
static int wait_backoff(double s)
{
    struct timespec left = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    while (!got_signal && nanosleep(&left, &left) != 0 && errno == EINTR) continue;
    return got_signal != 0;
}

/* Checks the command and the options; 0, or 2 after one line. */
static int check_command(char **cmd, int n, const supervise_opts *o)
{
    const char *prog = supervise_command.prog;
    if (n == 0) {
        fprintf(stderr, "%s: no command after -- (see --help)\n", prog);
        return 2;
    }
    if (!command_value(cmd, n, "--checkpoint-dir") && !command_value(cmd, n, "--config")) {
        fprintf(stderr,
                "%s: the command has no --checkpoint-dir: a relaunch would start from step 0\n",
                prog);
        return 2;
    }
    char first[1024];
    snprintf(first, sizeof first, "%s", cmd[0]);
    const char *base = basename(first);
    if (o->hostfile[0] && strcmp(base, "mpirun") && strcmp(base, "mpiexec") &&
        strcmp(base, "orterun")) {
        fprintf(stderr, "%s: --hostfile needs an mpirun command (it adds --hostfile and -np)\n",
                prog);
        return 2;
    }
    /* mpirun's own options: up to the program it runs (seqpar's options after
     * it may look alike: --run -n) */
    static const char *const placement[] = {
        "-np",          "-n", "--np",   "--hostfile", "-hostfile", "--machinefile",
        "-machinefile", "-H", "--host", "-host",      NULL};
    for (int i = 1; i < n && o->hostfile[0]; i++) {
        char prog_name[1024];
        snprintf(prog_name, sizeof prog_name, "%s", cmd[i]);
        if (!strcmp(basename(prog_name), "seqpar")) break;
        int hit = 0;
        for (int k = 0; placement[k]; k++) {
            const size_t len = strlen(placement[k]);
            hit |=
                !strncmp(cmd[i], placement[k], len) && (cmd[i][len] == '\0' || cmd[i][len] == '=');
        }
        if (hit) {
            fprintf(stderr,
                    "%s: with --hostfile, leave %s out of the command: it is set from "
                    "the hostfile at every launch\n",
                    prog, cmd[i]);
            return 2;
        }
    }
    const char *ss = command_value(cmd, n, "--stop-signals");
    char why[200];
    if (ss && stop_signal_parse(ss, &job_stop_signals, why, sizeof why) != 0)
        job_stop_signals = STOP_SIGNALS_DEFAULT; /* the job will refuse it itself */
    return 0;
}

/* The slots the hostfile lists now (1 without one): -1 after one line when
 * it cannot be read or holds fewer than --min-ranks. */
static long plan_ranks(const supervise_opts *o, int *hosts)
{
    long slots = 1;
    *hosts = 1;
    if (!o->hostfile[0]) return 1;
    if (read_hostfile(o->hostfile, &slots, hosts) != 0) {
        fprintf(stderr, "seqpar supervise: --hostfile %s: cannot read (%s)\n", o->hostfile,
                strerror(errno));
        return -1;
    }
    if (slots < o->min_ranks) {
        fprintf(stderr,
                "seqpar supervise: --hostfile %s lists %ld slot%s, fewer than --min-ranks %ld: "
                "giving up\n",
                o->hostfile, slots, slots == 1 ? "" : "s", o->min_ranks);
        return -1;
    }
    return slots;
}

int cmd_supervise(int argc, char **argv)
{
    int dash = 0;
    while (dash < argc && strcmp(argv[dash], "--") != 0) dash++;
    supervise_opts o = SUPERVISE_DEFAULTS;
    const int parsed = cli_parse(&supervise_command, &o, dash, argv, NULL, 0, NULL);
    if (parsed) return parsed == 1 ? 0 : 2;
    char **cmd = argv + dash + (dash < argc);
    const int n = argc - dash - (dash < argc);
    if (check_command(cmd, n, &o)) return 2;
    const char *mon = o.monitor[0] ? o.monitor : command_value(cmd, n, "--monitor");
    const char *run = o.run[0] ? o.run : command_value(cmd, n, "--run");
    wire_pub *pub = NULL;
    char err[300];
    const char *key = command_value(cmd, n, "--monitor-key");
    if (mon && run && wire_run_id_ok(run) && wire_pub_open(&pub, mon, key, err, sizeof err) != 0) {
        fprintf(stderr, "seqpar supervise: --monitor %s\n", err);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    const int sigs[] = {SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaction(sigs[i], &sa, NULL);
    double backoff = o.backoff;
    int rc = 1;
    for (long restarts = 0;; restarts++) {
        int hosts;
        const long np = plan_ranks(&o, &hosts);
        if (np < 0) { /* before the first launch: the command line's fault */
            rc = restarts == 0 ? 2 : 1;
            break;
        }
        char npbuf[24], **a = launch_argv(cmd, n, &o, np, npbuf, restarts > 0);
        if (!a) break;
        if (o.hostfile[0])
            fprintf(stderr, "seqpar supervise: launch %ld on %ld rank%s (%s: %d host%s)\n",
                    restarts + 1, np, np == 1 ? "" : "s", o.hostfile, hosts, hosts == 1 ? "" : "s");
        rc = run_once(a);
        free(a);
        /* not relaunched: done, refused (2), cannot run (126, 127), stopped */
        if (rc == 0 || rc == 2 || rc == 126 || rc == 127 || rc == TRAIN_EXIT_STOPPED ||
            got_signal) {
            if (got_signal || rc == TRAIN_EXIT_STOPPED) {
                fprintf(stderr,
                        "seqpar supervise: the job was stopped by a signal (status %d); "
                        "not relaunched\n",
                        rc);
                rc = TRAIN_EXIT_STOPPED;
            }
            break;
        }
        if (restarts >= o.max_restarts) {
            fprintf(stderr,
                    "seqpar supervise: the job failed (status %d); %ld relaunch%s spent "
                    "(--max-restarts): giving up\n",
                    rc, restarts, restarts == 1 ? "" : "es");
            break;
        }
        char detail[400];
        snprintf(detail, sizeof detail,
                 "the job failed (status %d); relaunch %ld of %ld in %.3g s with --resume auto", rc,
                 restarts + 1, o.max_restarts, backoff);
        fprintf(stderr, "seqpar supervise: %s\n", detail);
        send_event(pub, run, np, "restart", detail);
        if (wait_backoff(backoff)) {
            rc = TRAIN_EXIT_STOPPED;
            break;
        }
        backoff = fmin(backoff * 2, 300.0);
    }
    if (pub) wire_pub_close(pub, 500);
    return rc < 0 ? 1 : rc;
}

/* The progress a person watches: the bar at the bottom of rank 0's
 * terminal, with every other line printed above it, and the corpus
 * download's progress (progress.h). */
#define _GNU_SOURCE /* fopencookie */
#include "progress.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "data.h"

/* ------------------------------------------------------------ helpers */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The terminal's width (TIOCGWINSZ), else $COLUMNS, else 80. */
static int term_cols(int fd)
{
    struct winsize ws;
    if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    const char *c = getenv("COLUMNS");
    const int v = c ? atoi(c) : 0;
    return v > 0 && v < 10000 ? v : 80;
}

/* All of buf to fd, through EINTR and short writes: 0, or -1 (errno). */
static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        const ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        buf += w, n -= (size_t)w;
    }
    return 0;
}

void progress_duration(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

/* ------------------------------------------------------------ the bar */

static struct {
    int active;      /* the bar shows; stdout and stderr are ours */
    int drawn;       /* the bar is on the screen now */
    int open_line;   /* text without its newline yet: no bar until it ends */
    int fd;          /* the bar's terminal: stdout's descriptor */
    FILE *out, *err; /* the process's own streams, given back at the end */
    FILE *my_out, *my_err;
    int out_fd, err_fd; /* the cookies: which descriptor each stream writes */
    int err_kind;       /* where stderr's text shows (err_kind) */
    pthread_mutex_t lock;
    long step, step0, total, epoch, batch_done, nb;
    double loss, tps, t0, last_draw;
    const char *status; /* between steps: what the run does (NULL: training) */
    int atexit_done;
} P = {.lock = PTHREAD_MUTEX_INITIALIZER, .loss = NAN, .tps = NAN, .epoch = 1};

int progress_wants_bar(int mode, int rank, int world)
{
    if (rank != 0 || mode == PROGRESS_LINES) return 0;
    if (mode == PROGRESS_BAR) return 1;
    /* auto: a terminal, and no launcher between it and us (Open MPI makes
     * every rank's stdout a pseudo-terminal, wherever mpirun's goes) */
    const char *term = getenv("TERM");
    if (world > 1 || getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE")) return 0;
    return isatty(STDOUT_FILENO) && !(term && strcmp(term, "dumb") == 0);
}

void progress_format(char *buf, size_t n, int cols)
{
    if (n == 0) return;
    char loss[32] = "-", tps[32] = "-", eta[32] = "?", tail[200], head[40], pct[8];
    if (isfinite(P.loss)) snprintf(loss, sizeof loss, "%.4f", P.loss);
    if (isfinite(P.tps)) snprintf(tps, sizeof tps, "%.0f", P.tps);
    const double el = now_s() - P.t0;
    if (P.step > P.step0 && el > 0)
        progress_duration(eta, sizeof eta,
                          (double)(P.total - P.step) * el / (double)(P.step - P.step0));
    snprintf(head, sizeof head, "epoch %ld ", P.epoch);
    /* fields of a steady width, so that the bar does not jump */
    char total[24];
    const int digits = snprintf(total, sizeof total, "%ld", P.total);
    char last[16]; /* the ETA, or what the run does between steps: 10 columns */
    if (P.status)
        snprintf(last, sizeof last, "%-10.10s", P.status);
    else
        snprintf(last, sizeof last, "ETA %-6s", eta);
    snprintf(tail, sizeof tail, " step %*ld/%s loss %-6s tok/s %-7s %s", digits, P.step, total,
             loss, tps, last);
    const double frac = P.nb > 0 ? (double)P.batch_done / (double)P.nb : 0.0;
    snprintf(pct, sizeof pct, " %3.0f%%", 100.0 * (frac > 1 ? 1 : frac));
    /* the bar takes what the text leaves of the line, less one column (a
     * full line would wrap on some terminals and break the redraw); on a
     * narrow terminal the percentage goes first, then the bar */
    int width = cols - 1 - (int)(strlen(head) + strlen(tail) + strlen(pct)) - 2;
    if (width < 10 && width + (int)strlen(pct) >= 10) width += (int)strlen(pct), pct[0] = '\0';
    if (width >= 10) {
        char bar[1024];
        const int w = width < (int)sizeof bar - 1 ? width : (int)sizeof bar - 1;
        const int full = (int)(frac * w + 0.5) > w ? w : (int)(frac * w + 0.5);
        for (int i = 0; i < w; i++) bar[i] = i < full ? '#' : '-';
        bar[w] = '\0';
        snprintf(buf, n, "%s[%s]%s%s", head, bar, pct, tail);
    } else {
        snprintf(buf, n, "%s%s%s", head, pct[0] ? pct + 1 : "", tail);
    }
    const size_t most = cols > 1 ? (size_t)cols - 1 : 1;
    if (strlen(buf) > most && most < n) buf[most] = '\0';
}

/* With P.lock held. */
static void clear_bar(void)
{
    if (P.drawn) write_all(P.fd, "\r\033[K", 4);
    P.drawn = 0;
}

static void draw_bar(int force)
{
    const double t = now_s();
    if (!P.active || P.open_line || (!force && t - P.last_draw < 1.0 / PROGRESS_HZ)) return;
    char line[1100] = "\r";
    progress_format(line + 1, sizeof line - 4, term_cols(P.fd));
    strcat(line, "\033[K");
    write_all(P.fd, line, strlen(line));
    P.drawn = 1, P.last_draw = t;
}

/* Where stderr's text shows, seen from here: on a terminal (ours, as a
 * rule), through a pipe or socket to a process that prints it, maybe on the
 * bar's terminal (mpirun), or elsewhere (a file: the bar is not in its way). */
enum { ERR_TERMINAL, ERR_FORWARDED, ERR_ELSEWHERE };

static int err_kind(int fd)
{
    struct stat st;
    if (isatty(fd)) return ERR_TERMINAL;
    if (fstat(fd, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) return ERR_FORWARDED;
    return ERR_ELSEWHERE;
}

static void pause_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) continue;
}

/* Until the process reading fd (a pipe) has taken what was written, at
 * most `ms`: mpirun forwards stdout and stderr on separate channels, and
 * the order in which it reads them is the order a person sees. */
static void drained(int fd, long ms)
{
    int left = 0;
    for (long waited = 0; waited < ms; waited++) {
        if (ioctl(fd, FIONREAD, &left) != 0 || left == 0) return;
        pause_ms(1);
    }
}

/* stdout's and stderr's writes while the bar shows: the bar off, the text
 * through, the bar back once the text ends its line. */
static ssize_t cookie_write(void *cookie, const char *buf, size_t size)
{
    const int fd = *(const int *)cookie;
    if (size == 0) return 0;
    pthread_mutex_lock(&P.lock);
    const int kind = fd == P.err_fd ? P.err_kind : ERR_TERMINAL;
    if (kind == ERR_ELSEWHERE) { /* not on the bar's terminal */
        const int rc = write_all(fd, buf, size);
        pthread_mutex_unlock(&P.lock);
        return rc == 0 ? (ssize_t)size : -1;
    }
    int rc;
    if (kind == ERR_FORWARDED && P.drawn && size < 4000) {
        /* the clearing rides with the text, in one write (atomic in a pipe):
         * mpirun forwards stdout and stderr on separate channels, so a
         * clearing sent on stdout could be shown after the text */
        char joined[4096] = "\r\033[K";
        memcpy(joined + 4, buf, size);
        rc = write_all(fd, joined, size + 4);
        P.drawn = 0;
    } else {
        clear_bar();
        rc = write_all(fd, buf, size);
    }
    P.open_line = buf[size - 1] != '\n';
    if (kind == ERR_FORWARDED) drained(fd, 200), pause_ms(5); /* the text before the bar */
    draw_bar(1);
    pthread_mutex_unlock(&P.lock);
    return rc == 0 ? (ssize_t)size : -1;
}

static int cookie_close(void *cookie)
{
    (void)cookie;
    return 0;
}

static void end_at_exit(void)
{
    progress_end();
}

int progress_start(int mode, int rank, int world, long step, long total_steps)
{
    P.step = P.step0 = step, P.total = total_steps, P.t0 = now_s();
    if (!progress_wants_bar(mode, rank, world) || P.active) return P.active;
    const cookie_io_functions_t io = {.write = cookie_write, .close = cookie_close};
    fflush(stdout);
    fflush(stderr);
    P.fd = P.out_fd = fileno(stdout), P.err_fd = fileno(stderr);
    P.err_kind = err_kind(P.err_fd);
    P.my_out = fopencookie(&P.out_fd, "w", io);
    P.my_err = fopencookie(&P.err_fd, "w", io);
    if (!P.my_out || !P.my_err) { /* no bar then: the lines */
        if (P.my_out) fclose(P.my_out);
        if (P.my_err) fclose(P.my_err);
        P.my_out = P.my_err = NULL;
        return 0;
    }
    setvbuf(P.my_out, NULL, _IOLBF, 0);
    setvbuf(P.my_err, NULL, _IONBF, 0); /* as stderr: nothing held back */
    pthread_mutex_lock(&P.lock);
    P.out = stdout, P.err = stderr;
    stdout = P.my_out, stderr = P.my_err;
    P.active = 1, P.open_line = 0, P.last_draw = 0;
    draw_bar(1);
    pthread_mutex_unlock(&P.lock);
    if (!P.atexit_done) atexit(end_at_exit); /* exits other than the summary */
    P.atexit_done = 1;
    return 1;
}

void progress_tick(long step, long epoch, long batch_done, long nb)
{
    if (!P.active) return;
    pthread_mutex_lock(&P.lock);
    P.step = step, P.epoch = epoch, P.batch_done = batch_done, P.nb = nb, P.status = NULL;
    draw_bar(step == P.total);
    pthread_mutex_unlock(&P.lock);
}

void progress_status(const char *what)
{
    if (!P.active) return;
    pthread_mutex_lock(&P.lock);
    P.status = what;
    if (what) draw_bar(1); /* done: the line that follows draws it again */
    pthread_mutex_unlock(&P.lock);
}

void progress_figures(double loss, double tok_per_s)
{
    if (!P.active) return;
    pthread_mutex_lock(&P.lock);
    P.loss = loss, P.tps = tok_per_s;
    draw_bar(0);
    pthread_mutex_unlock(&P.lock);
}

void progress_window_line(const char *fmt, ...)
{
    if (P.active || comm_rank() != 0) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    comm_printf0("%s", line);
}

void progress_end(void)
{
    if (!P.active) return;
    fflush(P.my_out);
    fflush(P.my_err);
    pthread_mutex_lock(&P.lock);
    clear_bar();
    stdout = P.out, stderr = P.err;
    P.active = 0;
    pthread_mutex_unlock(&P.lock);
    fclose(P.my_out);
    fclose(P.my_err);
    P.my_out = P.my_err = NULL;
}

/* ------------------------------------------------- corpus downloads */

static struct {
    double last; /* when the line was last drawn (0: not yet) */
    double t0;
    long long first;
} F;

static void fetch_progress(const char *file, long long got, long long total, int done)
{
    if (!isatty(STDERR_FILENO)) return;
    const double t = now_s();
    if (F.t0 == 0) F.t0 = t, F.first = got;
    if (!done && t - F.last < 1.0 / PROGRESS_HZ) return;
    if (done && F.last == 0) { /* nothing shown: nothing to end */
        F.t0 = 0;
        return;
    }
    const double rate = t > F.t0 ? (double)(got - F.first) / (t - F.t0) : 0.0;
    char line[600], pct[16] = "";
    if (total > 0) snprintf(pct, sizeof pct, " (%.0f%%)", 100.0 * (double)got / (double)total);
    if (total > 0)
        snprintf(line, sizeof line, "\rdownloading %s: %.1f of %.1f MB%s, %.1f MB/s\033[K%s", file,
                 (double)got / 1e6, (double)total / 1e6, pct, rate / 1e6, done ? "\n" : "");
    else
        snprintf(line, sizeof line, "\rdownloading %s: %.1f MB, %.1f MB/s\033[K%s", file,
                 (double)got / 1e6, rate / 1e6, done ? "\n" : "");
    write_all(STDERR_FILENO, line, strlen(line));
    F.last = done ? 0 : t;
    if (done) F.t0 = 0;
}

void progress_fetch_install(void)
{
    data_set_fetch_progress(fetch_progress);
}

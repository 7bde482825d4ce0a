/* seqpar monitor: collects the metrics wire from any number of ranks and
 * runs, keeps a JSON-lines log it can restore from, and serves the live
 * dashboard, a JSON API, server-sent events and Prometheus metrics over HTTP
 * (libmicrohttpd, GET only, loopback unless --http says otherwise). */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

#include "cli.h"
#include "trainer.h"
#include "collector.h"
#include "route.h"
#include "wire.h"

/* the only process-wide state: set by SIGINT / SIGTERM */
static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

/* /events streams hold a thread each, so they are bounded: below the
 * connections one address may hold, so that a client (or every local
 * browser tab: they share 127.0.0.1) with all the streams open still gets
 * its pages and figures (48 streams against 32 per address once locked a
 * single address out) */
#define MAX_STREAMS        24
#define PER_IP_CONNECTIONS 32
_Static_assert(MAX_STREAMS < PER_IP_CONNECTIONS, "streams must leave an address connections");

/* One running monitor: what the HTTP threads and the receiving loop share. */
typedef struct monitor {
    const char *prog;
    collector *c;
    int streams;      /* open /events streams (atomic) */
    double last_note; /* the receiving loop said a refused message then */
    long unsaid;      /* ... and this many refused since */
} monitor;

/* ---------------------------------------------------------------- HTTP */

typedef struct sse_state {
    monitor *mon;
    long seen;
    int hello;
} sse_state;

/* Server-sent events: "hello" first, then an "update" per change; a comment
 * every 15 s keeps proxies from closing the stream. Runs in the connection's
 * own thread (MHD_USE_THREAD_PER_CONNECTION), so waiting is fine. */
static ssize_t sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_state *s = cls;
    if (g_stop) return MHD_CONTENT_READER_END_OF_STREAM;
    char run[WIRE_RUN_MAX + 1];
    int n;
    if (!s->hello) {
        s->hello = 1;
        s->seen = collector_wait(s->mon->c, -1, 0, run);
        n = snprintf(buf, max, "retry: 2000\nevent: hello\ndata: {\"version\":%ld}\n\n", s->seen);
    } else {
        long v = collector_wait(s->mon->c, s->seen, 15000, run);
        if (g_stop) return MHD_CONTENT_READER_END_OF_STREAM;
        if (v == s->seen) {
            n = snprintf(buf, max, ": keepalive\n\n");
        } else {
            s->seen = v;
            n = snprintf(buf, max, "event: update\ndata: {\"run\":\"%s\",\"version\":%ld}\n\n", run,
                         v);
        }
    }
    return n < 0 || (size_t)n >= max ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void sse_free(void *cls)
{
    sse_state *s = cls;
    __atomic_sub_fetch(&s->mon->streams, 1, __ATOMIC_SEQ_CST);
    free(s);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             const char *body, size_t len, char *owned, int get_only)
{
    struct MHD_Response *r =
        owned ? MHD_create_response_from_buffer(len, owned, MHD_RESPMEM_MUST_FREE)
              : MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(owned);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (get_only) MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET");
    enum MHD_Result ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result plain(struct MHD_Connection *conn, unsigned code, const char *msg)
{
    return reply(conn, code, "text/plain; charset=utf-8", msg, strlen(msg), NULL, 0);
}

/* An event stream; they hold a thread each, so a bounded number
 * (MAX_STREAMS): requests for pages and figures always find one. */
static enum MHD_Result open_stream(monitor *mon, struct MHD_Connection *conn)
{
    if (__atomic_add_fetch(&mon->streams, 1, __ATOMIC_SEQ_CST) > MAX_STREAMS) {
        __atomic_sub_fetch(&mon->streams, 1, __ATOMIC_SEQ_CST);
        return plain(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "too many event streams\n");
    }
    sse_state *st = calloc(1, sizeof *st);
    if (!st) {
        __atomic_sub_fetch(&mon->streams, 1, __ATOMIC_SEQ_CST);
        return plain(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    }
    st->mon = mon;
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, sse_read, st, sse_free);
    if (!r) {
        sse_free(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

/* Every request: the answer is route.c's (libmicrohttpd has already
 * percent-decoded the path). */
static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)version, (void)upload, (void)con_cls;
    monitor *mon = cls;
    route_reply r;
    route_request(mon->c, method, url, *upload_size, wire_time(), &r);
    if (r.events) return open_stream(mon, conn);
    return reply(conn, r.status, r.type, r.body, r.len, r.owned, r.get_only);
}

/* HOST:PORT (IPv4 address or "localhost") into addr. */
static int parse_http(const char *s, struct sockaddr_in *addr)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof host) return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || port < 0 || port > 65535) return -1;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
    return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : -1;
}

/* ------------------------------------------------------------- the log */

/* Replays FILE.jsonl into the collector; returns the messages restored, or
 * -1 when the file exists but cannot be read. Only accepted messages are
 * logged, so a bad line means a damaged log: it is counted as malformed. */
static long restore(collector *c, const char *path, long *damaged)
{
    *damaged = 0;
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long ok = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if (collector_add(c, line, (size_t)n, -1.0, NULL, 0) == 0)
            ok++;
        else
            ++*damaged;
    }
    free(line);
    fclose(f);
    return ok;
}

/* Restores --log (when given) and opens it for appending: 0, or the exit
 * code after a message. */
static int open_log(monitor *mon, const char *log, FILE **logf)
{
    *logf = NULL;
    if (!log) return 0;
    long damaged = 0, n = restore(mon->c, log, &damaged);
    if (n < 0) {
        fprintf(stderr, "%s: --log %s: cannot read (%s)\n", mon->prog, log, strerror(errno));
        return 2;
    }
    *logf = fopen(log, "a");
    if (!*logf) {
        fprintf(stderr, "%s: --log %s: cannot append (%s)\n", mon->prog, log, strerror(errno));
        return 2;
    }
    if (n > 0) printf("restored %ld messages from %s\n", n, log);
    if (damaged > 0)
        fprintf(stderr, "%s: warning: --log %s: %ld damaged lines skipped\n", mon->prog, log,
                damaged);
    return 0;
}

/* ------------------------------------------------------------ receiving */

/* A message refused: why, on stderr, at most once in 10 s (a flood must
 * not flood the terminal); the counts are in /api/runs and /metrics. */
static void note_refused(monitor *mon, const char *why, double now)
{
    if (now - mon->last_note < 10.0) {
        mon->unsaid++;
        return;
    }
    fprintf(stderr, "%s: ignored a message: %s", mon->prog, why);
    if (mon->unsaid > 0) fprintf(stderr, " (and %ld more since the last note)", mon->unsaid);
    fputc('\n', stderr);
    mon->last_note = now, mon->unsaid = 0;
}

/* The ZeroMQ PULL socket trainers send to, bound to `listen`; NULL after a
 * message. */
static void *open_listener(void *ctx, const char *listen, const char *prog)
{
    void *sock = ctx ? zmq_socket(ctx, ZMQ_PULL) : NULL;
    /* a peer sending more than twice the limit is cut off by ZeroMQ; up to
     * that, oversized messages are received and counted. The queue bound
     * keeps a flood to a few hundred MB at worst. */
    int64_t maxsize = 2 * WIRE_MAX_MSG;
    int rcvhwm = 2000, linger = 0;
    if (sock) {
        zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
        zmq_setsockopt(sock, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
        zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    if (!sock || zmq_bind(sock, listen) != 0) {
        fprintf(stderr, "%s: --listen %s: %s\n", prog, listen, zmq_strerror(zmq_errno()));
        if (sock) zmq_close(sock);
        return NULL;
    }
    return sock;
}

/* Until SIGINT or SIGTERM: every message into the collector, and the
 * accepted ones into the log. */
static void receive(monitor *mon, void *sock, FILE *logf)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    char why[200];
    while (!g_stop) {
        zmq_pollitem_t it = {sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 500) <= 0) continue; /* timeout, or EINTR from a signal */
        while (!g_stop && zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) >= 0) {
            const char *p = zmq_msg_data(&msg);
            size_t n = zmq_msg_size(&msg);
            const double now = wire_time();
            if (collector_add(mon->c, p, n, now, why, sizeof why) != 0) {
                note_refused(mon, why, now);
            } else if (logf) {
                /* one message per line: a line break can only be JSON
                 * whitespace (inside strings it is escaped), so a space
                 * stands in for it */
                for (size_t k = 0; k < n; k++)
                    fputc(p[k] == '\n' || p[k] == '\r' ? ' ' : p[k], logf);
                fputc('\n', logf);
                fflush(logf);
            }
        }
    }
    zmq_msg_close(&msg);
}

/* -------------------------------------------------------------- command */

typedef struct monitor_opts {
    char listen[1024], http[256], log[1024];
} monitor_opts;

#define F(f) CLI_FIELD(monitor_opts, f)
static const cli_opt MONITOR_OPTS[] = {
    {"listen", CLI_STR, F(listen), .arg = "ENDPOINT", .help = "where trainers send (ZeroMQ PULL)"},
    {"http", CLI_STR, F(http), .arg = "HOST:PORT",
     .help = "where to serve (0.0.0.0:PORT serves every interface)"},
    {"log", CLI_STR, F(log), .arg = "FILE.jsonl",
     .help = "appends every message; a restarted monitor reads it back first"},
};
#undef F

static const cli_command MONITOR_CMD = {
    .prog = "seqpar monitor",
    .about = "Collects the metrics of seqpar train --monitor ENDPOINT (any number of ranks and "
             "runs)\nand serves the live dashboard and its data over HTTP (GET only):\n"
             "  /             the dashboard\n"
             "  /api/runs     the runs, JSON; /api/runs/ID one run's series, ranks, samples, "
             "events\n"
             "  /events       server-sent events, one per change\n"
             "  /metrics      Prometheus text exposition",
    .opts = MONITOR_OPTS,
    .nopts = sizeof MONITOR_OPTS / sizeof *MONITOR_OPTS};

/* The HTTP server, one thread per connection. */
static struct MHD_Daemon *start_http(monitor *mon, struct sockaddr_in *addr)
{
    return MHD_start_daemon(
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, handle, mon, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)128, MHD_OPTION_PER_IP_CONNECTION_LIMIT,
        (unsigned)PER_IP_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
}

/* The addresses as bound: a port given as 0 (HTTP) or * (ZeroMQ) is the
 * one the system chose. */
static void say_where(void *sock, struct MHD_Daemon *d, const char *listen, const char *http,
                      const struct sockaddr_in *addr)
{
    char bound[300], page[128];
    size_t blen = sizeof bound;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &blen) != 0 || blen == 0)
        snprintf(bound, sizeof bound, "%s", listen);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    const char *colon = strrchr(http, ':');
    snprintf(page, sizeof page, "%.*s:%u", (int)(colon - http), http,
             di && di->port ? (unsigned)di->port : (unsigned)ntohs(addr->sin_port));
    printf("seqpar monitor: metrics on %s; dashboard at http://%s/\n", bound, page);
    fflush(stdout);
}

int cmd_monitor(int argc, char **argv)
{
    const char *prog = "seqpar monitor";
    monitor_opts o = {.listen = "tcp://127.0.0.1:5555", .http = "127.0.0.1:8080"};
    const int parsed = cli_parse(&MONITOR_CMD, &o, argc, argv, NULL, 0, NULL);
    if (parsed) return parsed == 1 ? 0 : 2;
    const char *listen = o.listen, *http = o.http, *log = o.log[0] ? o.log : NULL;
    struct sockaddr_in addr;
    if (parse_http(http, &addr) != 0) {
        fprintf(stderr, "%s: --http: expected HOST:PORT with an IPv4 address, got '%s'\n", prog,
                http);
        return 2;
    }
    char why[300];
    if (!wire_endpoint_ok(listen, 1, why, sizeof why)) {
        fprintf(stderr, "%s: --listen %s\n", prog, why);
        return 2;
    }
    monitor mon = {.prog = prog, .c = collector_new(), .last_note = -1e9};
    if (!mon.c) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    FILE *logf = NULL;
    void *ctx = NULL, *sock = NULL;
    struct MHD_Daemon *d = NULL;
    int rc = open_log(&mon, log, &logf);
    if (rc != 0) goto out;
    rc = 2;
    ctx = zmq_ctx_new();
    sock = open_listener(ctx, listen, prog);
    if (!sock) goto out;
    d = start_http(&mon, &addr);
    if (!d) {
        fprintf(stderr,
                "%s: --http %s: cannot serve there (in use, or not an address of this "
                "machine)\n",
                prog, http);
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    say_where(sock, d, listen, http, &addr);
    receive(&mon, sock, logf);
    collector_wake(mon.c); /* event streams see g_stop and end */
    rc = 0;
out:
    if (d) MHD_stop_daemon(d);
    if (sock) zmq_close(sock);
    if (ctx) zmq_ctx_term(ctx);
    if (logf) fclose(logf);
    if (rc == 0) {
        long ok, bad, big;
        collector_counts(mon.c, &ok, &bad, &big);
        printf("seqpar monitor: stopped (%ld messages, %ld malformed, %ld oversized)\n", ok, bad,
               big);
    }
    collector_free(mon.c);
    return rc;
}

/* seqpar monitor: collects the metrics wire from any number of ranks and
 * runs, keeps a JSON-lines log it can restore from, and serves the live
 * dashboard, a JSON API, server-sent events and Prometheus metrics over HTTP
 * (libmicrohttpd, GET only, loopback unless --http says otherwise). */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <zmq.h>

#include "cli.h"
#include "trainer.h"
#include "collector.h"
#include "curve.h"
#include "http_addr.h"
#include "http_guard.h"
#include "msglog.h"
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
 * single address out). The other connections are guarded (http_guard.h):
 * a request must arrive within REQUEST_S, and at a limit a new connection
 * closes the oldest one waiting for a request (40 connections sending a
 * header every 5 s once kept every other local client out for 45 s). */
#define MAX_STREAMS        24
#define PER_IP_CONNECTIONS 32
#define CONNECTIONS        128
#define REQUEST_S          5.0
_Static_assert(MAX_STREAMS < PER_IP_CONNECTIONS, "streams must leave an address connections");

/* A complaint the receiving loop repeats: said at once, then at most once in
 * 10 s with the count of those unsaid since (a flood must not flood the
 * terminal). */
typedef struct note {
    double last; /* said then */
    long unsaid; /* ... and this many since */
} note;

/* One running monitor: what the HTTP threads and the receiving loop share. */
typedef struct monitor {
    const char *prog;
    collector *c;
    int streams;   /* open /events streams (atomic) */
    guard *guard;  /* the HTTP connections */
    msglog *log;   /* --log, or NULL */
    long restored; /* messages the log gave back at start */
    const char *log_path;
    note refused;      /* messages refused (the counts are in /api/runs, /metrics) */
    note unlogged;     /* messages the log could not take (a full disk) */
    int http_quiet;    /* while trying --http's addresses: their bind errors are ours to say */
    long keys_refused; /* CURVE handshakes refused (no key, another key, another mechanism) */
} monitor;

/* ---------------------------------------------------------------- HTTP */

typedef struct sse_state {
    monitor *mon;
    long seen;
    int hello;
    long resume; /* the Last-Event-ID of a reconnecting browser; -1: none */
} sse_state;

/* Server-sent events: "hello" first, then an "update" per change; a comment
 * every 15 s keeps proxies from closing the stream. Every event carries the
 * collector's version as its id: a browser that reconnects sends the last
 * one it saw (Last-Event-ID), and when this monitor is still past it (not
 * restarted), the stream resumes from there: hello says "resumed" and the
 * changes it missed follow at once as an update. Runs in the connection's
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
        const long now = collector_wait(s->mon->c, -1, 0, run);
        const int resumed = s->resume >= 0 && s->resume <= now;
        s->seen = resumed ? s->resume : now;
        n = snprintf(
            buf, max,
            "retry: 2000\nid: %ld\nevent: hello\ndata: {\"version\":%ld,\"resumed\":%s}\n\n",
            s->seen, now, resumed ? "true" : "false");
    } else {
        long v = collector_wait(s->mon->c, s->seen, 15000, run);
        if (g_stop) return MHD_CONTENT_READER_END_OF_STREAM;
        if (v == s->seen) {
            n = snprintf(buf, max, ": keepalive\n\n");
        } else {
            s->seen = v;
            n = snprintf(buf, max,
                         "id: %ld\nevent: update\ndata: {\"run\":\"%s\",\"version\":%ld}\n\n", v,
                         run, v);
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

/* The guard's record of a connection (NULL: not followed). */
static guard_conn *guarded(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *i =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

static enum MHD_Result admit(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)len;
    monitor *mon = cls;
    return guard_admit(mon->guard, addr) ? MHD_YES : MHD_NO;
}

static void connection_event(void *cls, struct MHD_Connection *conn, void **socket_context,
                             enum MHD_ConnectionNotificationCode what)
{
    monitor *mon = cls;
    if (what == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *addr =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        *socket_context = fd ? guard_opened(mon->guard, fd->connect_fd,
                                            addr ? addr->client_addr : NULL, guard_now())
                             : NULL;
    } else if (what == MHD_CONNECTION_NOTIFY_CLOSED) {
        guard_closed(mon->guard, *socket_context);
        *socket_context = NULL;
    }
}

/* A response sent: the connection, kept alive, waits for the next request. */
static void request_done(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
    (void)con_cls, (void)why;
    monitor *mon = cls;
    guard_set(mon->guard, guarded(conn), GUARD_WAITING, guard_now());
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
    st->resume = -1;
    const char *last = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    char *end = NULL;
    const long id = last ? strtol(last, &end, 10) : -1;
    if (last && *last && end && !*end && id >= 0) st->resume = id;
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
    guard_set(mon->guard, guarded(conn), GUARD_BUSY, guard_now());
    route_reply r;
    route_request(mon->c, method, url, *upload_size, wire_time(), &r);
    if (r.events) {
        const enum MHD_Result ret = open_stream(mon, conn);
        if (ret == MHD_YES) guard_set(mon->guard, guarded(conn), GUARD_STREAM, guard_now());
        return ret;
    }
    return reply(conn, r.status, r.type, r.body, r.len, r.owned, r.get_only);
}

/* ------------------------------------------------------------- the log */

/* Restores --log (when given) and opens it for appending: 0, or the exit
 * code after a message. */
static int open_log(monitor *mon, const char *path)
{
    if (!path) return 0;
    long n, damaged;
    char err[300];
    mon->log = msglog_open(path, mon->c, &n, &damaged, err, sizeof err);
    if (!mon->log) {
        fprintf(stderr, "%s: --log %s: %s\n", mon->prog, path, err);
        return 2;
    }
    mon->log_path = path, mon->restored = n;
    if (n > 0) printf("restored %ld messages from %s\n", n, path);
    if (damaged > 0)
        fprintf(stderr, "%s: warning: --log %s: %ld damaged lines skipped\n", mon->prog, path,
                damaged);
    return 0;
}

/* ------------------------------------------------------------ receiving */

/* Says what went wrong on stderr, or counts it when n said something less
 * than 10 s ago. */
__attribute__((format(printf, 4, 5))) static void say(note *n, double now, const char *prog,
                                                      const char *fmt, ...)
{
    if (now - n->last < 10.0) {
        n->unsaid++;
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (n->unsaid > 0) fprintf(stderr, " (and %ld more since the last note)", n->unsaid);
    fputc('\n', stderr);
    n->last = now, n->unsaid = 0;
}

/* The ZeroMQ PULL socket trainers send to, bound to `listen`; NULL after a
 * message. */
static void *open_listener(void *ctx, const char *listen, const char *prog, const char *keyfile,
                           curve_guard **curve)
{
    void *sock = ctx ? zmq_socket(ctx, ZMQ_PULL) : NULL;
    char why[300];
    if (sock && keyfile && curve_guard_start(curve, ctx, sock, keyfile, why, sizeof why) != 0) {
        fprintf(stderr, "%s: --curve-secret %s\n", prog, why);
        zmq_close(sock);
        return NULL;
    }
    /* anyone who reaches the port can send metrics (and read nothing back:
     * PULL) unless CURVE guards it: said when it is not loopback */
    if (sock && !keyfile && strncmp(listen, "tcp://127.", 10) != 0 &&
        strncmp(listen, "tcp://localhost:", 16) != 0 && strncmp(listen, "tcp://[::1]", 11) != 0 &&
        strncmp(listen, "tcp://", 6) == 0)
        fprintf(stderr,
                "%s: warning: --listen %s takes metrics from anyone who reaches it; "
                "seqpar monitor --gen-keys DIR and --curve-secret DIR/monitor.key admit only "
                "trainers holding DIR/trainer.key\n",
                prog, listen);
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

#define HANDSHAKE_REFUSED                                                                          \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |                  \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

/* The PULL socket's events (ZeroMQ's socket monitor, one a socket): a PAIR
 * socket that receives its closed connections and refused handshakes, or
 * NULL when ZeroMQ cannot (then only silence makes a rank lost). */
static void *watch_connections(void *ctx, void *sock)
{
    static const char *const at = "inproc://seqpar-monitor-connections";
    if (zmq_socket_monitor(sock, at, ZMQ_EVENT_DISCONNECTED | HANDSHAKE_REFUSED) != 0) return NULL;
    void *events = zmq_socket(ctx, ZMQ_PAIR);
    int linger = 0;
    if (events) zmq_setsockopt(events, ZMQ_LINGER, &linger, sizeof linger);
    if (events && zmq_connect(events, at) == 0) return events;
    if (events) zmq_close(events);
    return NULL;
}

/* Every event waiting: two frames, the event (16 bits) and its value (the
 * connection's socket, 32 bits), then the endpoint. A closed connection
 * makes its ranks lost; a refused handshake (CURVE) is counted. */
static void connections_closed(monitor *mon, void *events)
{
    zmq_msg_t head, addr;
    zmq_msg_init(&head), zmq_msg_init(&addr);
    while (zmq_msg_recv(&head, events, ZMQ_DONTWAIT) >= 0) {
        uint16_t ev = 0;
        uint32_t fd = 0;
        const int whole = zmq_msg_size(&head) >= 6;
        if (whole) {
            memcpy(&ev, zmq_msg_data(&head), 2);
            memcpy(&fd, (const char *)zmq_msg_data(&head) + 2, 4);
        }
        if (zmq_msg_more(&head)) zmq_msg_recv(&addr, events, 0);
        if (whole && ev == ZMQ_EVENT_DISCONNECTED) collector_closed(mon->c, (int)fd);
        if (whole && (ev & HANDSHAKE_REFUSED)) mon->keys_refused++;
    }
    zmq_msg_close(&head), zmq_msg_close(&addr);
}

/* Until SIGINT or SIGTERM: every message into the collector, and the
 * accepted ones into the log; closed connections make their ranks lost. */
static void receive(monitor *mon, void *sock, void *events)
{
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    char why[200];
    while (!g_stop) {
        zmq_pollitem_t it[2] = {{sock, 0, ZMQ_POLLIN, 0}, {events, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(it, events ? 2 : 1, 500) <= 0) continue; /* timeout, or EINTR */
        while (!g_stop && zmq_msg_recv(&msg, sock, ZMQ_DONTWAIT) >= 0) {
            const char *p = zmq_msg_data(&msg);
            size_t n = zmq_msg_size(&msg);
            const double now = wire_time();
            if (collector_add_from(mon->c, p, n, now, zmq_msg_get(&msg, ZMQ_SRCFD), why,
                                   sizeof why) != 0)
                say(&mon->refused, now, mon->prog, "ignored a message: %s", why);
            else if (mon->log && msglog_append(mon->log, p, n) != 0)
                say(&mon->unlogged, now, mon->prog,
                    "--log %s: cannot write (%s): a message not logged", mon->log_path,
                    strerror(errno));
        }
        /* after the messages: a rank's last words come before its close */
        if (events) connections_closed(mon, events);
    }
    zmq_msg_close(&msg);
}

/* -------------------------------------------------------------- command */

typedef struct monitor_opts {
    char listen[1024], http[256], log[4096], gen_keys[4096], curve_secret[4096];
} monitor_opts;

#define F(f) CLI_FIELD(monitor_opts, f)
static const cli_opt MONITOR_OPTS[] = {
    {"listen", CLI_STR, F(listen), .arg = "ENDPOINT", .help = "where trainers send (ZeroMQ PULL)"},
    {"http", CLI_STR, F(http), .arg = "HOST:PORT",
     .help = "where to serve: an IPv4 address, [IPv6] or a host name (0.0.0.0:PORT or "
             "[::]:PORT serves every interface; PORT 0: the system chooses)"},
    {"log", CLI_STR, F(log), .arg = "FILE.jsonl",
     .help = "appends every message; a restarted monitor reads it back first"},
    {"gen-keys", CLI_STR, F(gen_keys), .arg = "DIR",
     .help = "writes DIR/monitor.key (for --curve-secret) and DIR/trainer.key (for seqpar "
             "train --monitor-key) and exits"},
    {"curve-secret", CLI_STR, F(curve_secret), .arg = "FILE",
     .help = "DIR/monitor.key of --gen-keys: metrics only from trainers holding trainer.key, "
             "encrypted (ZeroMQ CURVE)"},
};
#undef F

static const monitor_opts MONITOR_DEFAULTS = {.listen = "tcp://127.0.0.1:5555",
                                              .http = "127.0.0.1:8080"};

const cli_command monitor_command = {
    .prog = "seqpar monitor",
    .defaults = &MONITOR_DEFAULTS,
    .about = "Collects the metrics of seqpar train --monitor ENDPOINT (any number of ranks and "
             "runs)\nand serves the live dashboard and its data over HTTP (GET only):\n"
             "  /             the dashboard\n"
             "  /api/runs     the runs, JSON; /api/runs/ID one run's series, ranks, samples, "
             "events\n"
             "  /events       server-sent events, one per change\n"
             "  /metrics      Prometheus text exposition",
    .opts = MONITOR_OPTS,
    .nopts = sizeof MONITOR_OPTS / sizeof *MONITOR_OPTS};

/* The HTTP server, one thread per connection; the guard admits them and
 * holds the limits (the server's own limit leaves room for connections the
 * guard closed and the server has not let go yet). The 30 s timeout is for
 * an answer the client does not read: above the 15 s of an event stream's
 * keepalive. */
/* libmicrohttpd's own complaints, on stderr; not while starting (a failed
 * bind is said once, by cmd_monitor) */
static void http_log(void *cls, const char *fmt, va_list ap)
{
    const monitor *mon = cls;
    if (mon->http_quiet) return;
    fprintf(stderr, "%s: HTTP: ", mon->prog);
    vfprintf(stderr, fmt, ap);
}

static struct MHD_Daemon *start_http(monitor *mon, const http_addr *a)
{
    unsigned flags =
        MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (a->family == AF_INET6) { /* [::] serves IPv4 too */
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&a->sa;
        flags |= IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr) ? MHD_USE_DUAL_STACK : MHD_USE_IPv6;
    }
    return MHD_start_daemon(flags, 0, admit, mon, handle, mon, MHD_OPTION_SOCK_ADDR,
                            (const struct sockaddr *)&a->sa, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)guard_capacity(mon->guard), MHD_OPTION_EXTERNAL_LOGGER,
                            http_log, mon, MHD_OPTION_NOTIFY_CONNECTION, connection_event, mon,
                            MHD_OPTION_NOTIFY_COMPLETED, request_done, mon,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30, MHD_OPTION_END);
}

/* The addresses as bound: a port given as 0 (HTTP) or * (ZeroMQ) is the
 * one the system chose. */
static void say_where(void *sock, struct MHD_Daemon *d, const char *listen, const char *http,
                      const http_addr *addr)
{
    char bound[300], page[128];
    size_t blen = sizeof bound;
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, bound, &blen) != 0 || blen == 0)
        snprintf(bound, sizeof bound, "%s", listen);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    const char *colon = strrchr(http, ':');
    snprintf(page, sizeof page, "%.*s:%u", (int)(colon - http), http,
             di && di->port ? (unsigned)di->port : http_addr_port(addr));
    printf("seqpar monitor: metrics on %s; dashboard at http://%s/\n", bound, page);
    fflush(stdout);
}

int cmd_monitor(int argc, char **argv)
{
    const char *prog = "seqpar monitor";
    monitor_opts o = MONITOR_DEFAULTS;
    const int parsed = cli_parse(&monitor_command, &o, argc, argv, NULL, 0, NULL);
    if (parsed) return parsed == 1 ? 0 : 2;
    const char *listen = o.listen, *http = o.http, *log = o.log[0] ? o.log : NULL;
    char why[300];
    if (o.gen_keys[0]) {
        if (wire_keys_generate(o.gen_keys, why, sizeof why) != 0) {
            fprintf(stderr, "%s: --gen-keys %s\n", prog, why);
            return 1;
        }
        printf("%s/monitor.key: for seqpar monitor --curve-secret (keep it here)\n"
               "%s/trainer.key: for seqpar train --monitor-key (copy it to the trainers' "
               "nodes)\n",
               o.gen_keys, o.gen_keys);
        return 0;
    }
    http_addr addrs[HTTP_ADDR_MAX];
    const int naddrs = http_addr_resolve(http, addrs, HTTP_ADDR_MAX, why, sizeof why);
    if (naddrs < 0) {
        fprintf(stderr, "%s: --http %s: %s\n", prog, http, why);
        return 2;
    }
    if (!wire_endpoint_ok(listen, 1, why, sizeof why)) {
        fprintf(stderr, "%s: --listen %s\n", prog, why);
        return 2;
    }
    monitor mon = {
        .prog = prog, .c = collector_new(), .refused = {.last = -1e9}, .unlogged = {.last = -1e9}};
    if (!mon.c) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return 1;
    }
    void *ctx = NULL, *sock = NULL, *events = NULL;
    curve_guard *curve = NULL;
    struct MHD_Daemon *d = NULL;
    int rc = open_log(&mon, log);
    if (rc != 0) goto out;
    rc = 2;
    ctx = zmq_ctx_new();
    sock = open_listener(ctx, listen, prog, o.curve_secret[0] ? o.curve_secret : NULL, &curve);
    if (!sock) goto out;
    events = watch_connections(ctx, sock);
    mon.guard = guard_new(PER_IP_CONNECTIONS, CONNECTIONS, REQUEST_S);
    if (!mon.guard || guard_start(mon.guard) != 0) {
        fprintf(stderr, "%s: out of memory\n", prog);
        rc = 1;
        goto out;
    }
    int at = 0; /* the first of the host's addresses that serves */
    mon.http_quiet = 1;
    while (!(d = start_http(&mon, &addrs[at])) && at + 1 < naddrs) at++;
    mon.http_quiet = 0;
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
    say_where(sock, d, listen, http, &addrs[at]);
    receive(&mon, sock, events);
    collector_wake(mon.c); /* event streams see g_stop and end */
    rc = 0;
out:
    if (d) MHD_stop_daemon(d);
    long late = 0, made_room = 0;
    if (mon.guard) guard_counts(mon.guard, &late, &made_room);
    guard_free(mon.guard); /* after the server: it reports closes to the guard */
    if (events) {
        connections_closed(&mon, events); /* the last refusals */
        zmq_socket_monitor(sock, NULL, 0);
        zmq_close(events);
    }
    if (sock) zmq_close(sock);
    const long refused_keys = mon.keys_refused;
    curve_guard_stop(curve);
    if (ctx) zmq_ctx_term(ctx);
    if (rc == 0) {
        long ok, bad, big;
        collector_counts(mon.c, &ok, &bad, &big);
        printf("seqpar monitor: stopped (%ld messages, %ld malformed, %ld oversized)\n", ok, bad,
               big);
        if (curve)
            printf("seqpar monitor: %ld connection%s refused for want of the trainers' key\n",
                   refused_keys, refused_keys == 1 ? "" : "s");
        if (late + made_room > 0)
            printf("seqpar monitor: closed %ld HTTP connections that sent no request within %g s, "
                   "%ld to make room for others\n",
                   late, REQUEST_S, made_room);
        const long lost = mon.log ? msglog_unlogged(mon.log) : 0;
        if (lost > 0)
            fprintf(stderr, "%s: warning: --log %s: %ld messages not logged (of %ld accepted)\n",
                    prog, log, lost, ok - mon.restored);
    }
    msglog_close(mon.log);
    collector_free(mon.c);
    return rc;
}

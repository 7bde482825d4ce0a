/* trainer/monitor/http_guard.h: the monitor's HTTP connections, guarded
 * against slow clients (DESIGN.md, "Metrics wire").
 *
 * A connection waiting for a request (a new one, or one kept alive after a
 * response) is closed when the request has not arrived within the
 * deadline, however slowly it trickles in. At the limit of connections from
 * one address or in all, a new connection is admitted by closing the
 * oldest waiting one: every local user shares 127.0.0.1, and 32 slow
 * connections once locked all of them out. Connections serving a request
 * or an event stream are never closed by the guard.
 *
 * It knows sockets and addresses only, not the HTTP server: it closes a
 * connection with shutdown(2), which the server's thread for it sees as
 * the client leaving. The server must not close a socket before
 * guard_closed returned for it (libmicrohttpd notifies the close first).
 * Thread-safe; times are seconds of guard_now(). */
#ifndef SEQPAR_MONITOR_HTTP_GUARD_H
#define SEQPAR_MONITOR_HTTP_GUARD_H

#include <sys/socket.h>

typedef struct guard guard;
typedef struct guard_conn guard_conn;

typedef enum {
    GUARD_WAITING, /* for a request: the deadline runs */
    GUARD_BUSY,    /* a request is being answered */
    GUARD_STREAM   /* an event stream: long-lived by design */
} guard_state;

/* At most per_addr connections from one address and total in all; a
 * request must arrive within deadline_s. NULL when out of memory. */
guard *guard_new(int per_addr, int total, double deadline_s);
/* Closes what is left to close (the server is stopped) and frees. */
void guard_free(guard *g);
/* The connections the guard can follow: total, plus room for those closed
 * and not yet gone. The server's own limit. */
int guard_capacity(const guard *g);
/* Starts the thread that closes waiting connections past the deadline
 * (guard_sweep four times a second): 0, or -1. */
int guard_start(guard *g);
double guard_now(void);

/* A connection from addr is being accepted: 1 to admit it (at a limit,
 * after closing the oldest waiting connection), 0 to refuse it (at a
 * limit, with none waiting). */
int guard_admit(guard *g, const struct sockaddr *addr);
/* The admitted connection's socket, waiting for its first request; its
 * record, or NULL (no room: the socket is shut down). */
guard_conn *guard_opened(guard *g, int fd, const struct sockaddr *addr, double now);
/* The connection's state from now (a record NULL is ignored). */
void guard_set(guard *g, guard_conn *c, guard_state s, double now);
/* The server is done with the connection: before it closes the socket. */
void guard_closed(guard *g, guard_conn *c);
/* Closes the waiting connections past the deadline at now; how many. */
int guard_sweep(guard *g, double now);
/* Connections the guard has closed: for the deadline and for room. */
void guard_counts(guard *g, long *late, long *made_room);

#endif

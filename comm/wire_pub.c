/* The metrics wire's transport: a ZeroMQ PUSH socket that never blocks
 * the trainer, endpoint checks, and the wire's clock. */
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

double wire_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------ publisher */

struct wire_pub {
    void *ctx, *sock;
    long dropped;
};

int wire_endpoint_ok(const char *endpoint, int bind, char *err, size_t errlen)
{
    if (strncmp(endpoint, "tcp://", 6) != 0) return 1; /* ipc://, inproc://: ZeroMQ judges */
    const char *colon = strrchr(endpoint + 6, ':');
    const char *port = colon ? colon + 1 : "";
    if (bind && strcmp(port, "*") == 0) return 1;
    long v = 0;
    int digits = 0;
    for (const char *q = port; *q >= '0' && *q <= '9' && digits < 6; q++, digits++)
        v = v * 10 + (*q - '0');
    if (digits > 0 && digits == (int)strlen(port) && v >= 1 && v <= 65535) return 1;
    /* ZeroMQ takes 99999 and listens on 99999 mod 65536 */
    snprintf(err, errlen, "%s: the port must be 1..65535%s (e.g. tcp://127.0.0.1:5555)", endpoint,
             bind ? " or *" : "");
    return 0;
}

int wire_pub_open(wire_pub **out, const char *endpoint, char *err, size_t errlen)
{
    *out = NULL;
    if (!wire_endpoint_ok(endpoint, 0, err, errlen)) return -1;
    wire_pub *p = calloc(1, sizeof *p);
    if (!p || !(p->ctx = zmq_ctx_new()) || !(p->sock = zmq_socket(p->ctx, ZMQ_PUSH))) {
        snprintf(err, errlen, "cannot start ZeroMQ (%s)", zmq_strerror(zmq_errno()));
        wire_pub_close(p, 0);
        return -1;
    }
    int hwm = WIRE_QUEUE, linger = 0, ivl = 100, ivl_max = 2000;
    zmq_setsockopt(p->sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(p->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
    if (zmq_connect(p->sock, endpoint) != 0) {
        snprintf(err, errlen, "%s: %s (expected e.g. tcp://127.0.0.1:5555)", endpoint,
                 zmq_strerror(zmq_errno()));
        wire_pub_close(p, 0);
        return -1;
    }
    *out = p;
    return 0;
}

void wire_pub_send(wire_pub *p, const char *msg, size_t len)
{
    if (p && zmq_send(p->sock, msg, len, ZMQ_DONTWAIT) < 0) p->dropped++;
}

long wire_pub_dropped(const wire_pub *p)
{
    return p ? p->dropped : 0;
}

void wire_pub_close(wire_pub *p, int linger_ms)
{
    if (!p) return;
    if (p->sock) {
        zmq_setsockopt(p->sock, ZMQ_LINGER, &linger_ms, sizeof linger_ms);
        zmq_close(p->sock);
    }
    if (p->ctx) zmq_ctx_term(p->ctx);
    free(p);
}

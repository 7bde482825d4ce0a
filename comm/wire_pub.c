/* The metrics wire's transport: a ZeroMQ PUSH socket that never blocks
 * the trainer, endpoint checks, and the wire's clock. */
#include "wire.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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

/* Whether the host of a tcp:// endpoint is one: an IPv4 or [IPv6] address,
 * a name that resolves, * (bind: every interface) or an interface's name
 * (bind). ZeroMQ takes tcp://256.1.1.1:5 or an unknown name and connects
 * nowhere, silently. */
static int host_ok(const char *host, int bind)
{
    if (bind && (strcmp(host, "*") == 0 || if_nametoindex(host) > 0)) return 1;
    unsigned char addr[sizeof(struct in6_addr)];
    const size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        char v6[INET6_ADDRSTRLEN + 1];
        if (n - 2 >= sizeof v6) return 0;
        memcpy(v6, host + 1, n - 2);
        v6[n - 2] = '\0';
        return inet_pton(AF_INET6, v6, addr) == 1;
    }
    if (n > 0 && strspn(host, "0123456789.") == n) return inet_pton(AF_INET, host, addr) == 1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    const int rc = n > 0 ? getaddrinfo(host, NULL, &hints, &res) : -1;
    if (res) freeaddrinfo(res);
    return rc == 0;
}

int wire_endpoint_ok(const char *endpoint, int bind, char *err, size_t errlen)
{
    if (strncmp(endpoint, "tcp://", 6) != 0) return 1; /* ipc://, inproc://: ZeroMQ judges */
    const char *colon = strrchr(endpoint + 6, ':');
    const char *port = colon ? colon + 1 : "";
    /* the host, after a source address ("tcp://SRC;HOST:PORT") if there is one */
    const char *start = strchr(endpoint + 6, ';') ? strchr(endpoint + 6, ';') + 1 : endpoint + 6;
    char host[300] = "";
    if (colon && colon > start && (size_t)(colon - start) < sizeof host) {
        memcpy(host, start, (size_t)(colon - start));
        host[colon - start] = '\0';
    }
    if (colon && !host_ok(host, bind)) {
        snprintf(err, errlen, "%s: '%s' is not an address or a name that resolves%s", endpoint,
                 host, bind ? " (nor * or an interface)" : "");
        return 0;
    }
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

int wire_pub_open(wire_pub **out, const char *endpoint, const char *keyfile, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (!wire_endpoint_ok(endpoint, 0, err, errlen)) return -1;
    char server_pub[WIRE_KEY_LEN + 1], secret[WIRE_KEY_LEN + 1], pub[WIRE_KEY_LEN + 1];
    if (keyfile) {
        if (wire_keys_read(keyfile, server_pub, secret, err, errlen) != 0) return -1;
        if (!zmq_has("curve") || zmq_curve_public(pub, secret) != 0) {
            snprintf(err, errlen, "%s: this ZeroMQ has no CURVE security", keyfile);
            return -1;
        }
    }
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
    if (keyfile) {
        zmq_setsockopt(p->sock, ZMQ_CURVE_SERVERKEY, server_pub, WIRE_KEY_LEN);
        zmq_setsockopt(p->sock, ZMQ_CURVE_PUBLICKEY, pub, WIRE_KEY_LEN);
        zmq_setsockopt(p->sock, ZMQ_CURVE_SECRETKEY, secret, WIRE_KEY_LEN);
    }
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

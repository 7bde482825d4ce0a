/* CURVE for the monitor's listening socket (curve.h): a ZAP handler (RFC 27)
 * that admits one client key, served by a thread of its own. (The refused
 * handshakes are counted by monitor.c's socket monitor: a socket has one.) */
#include "curve.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "wire.h"

struct curve_guard {
    void *zap;           /* ZAP replies */
    uint8_t allowed[32]; /* the trainers' public key */
    atomic_int stop;
    pthread_t thread;
    int running;
};

/* One ZAP request: version, id, domain, address, identity, mechanism,
 * credentials…; the reply admits the trainers' key alone. */
static void zap_reply(curve_guard *g)
{
    zmq_msg_t part[8];
    int n = 0, more = 1;
    while (more && n < 8) {
        zmq_msg_init(&part[n]);
        if (zmq_msg_recv(&part[n], g->zap, 0) < 0) break;
        more = zmq_msg_more(&part[n++]);
    }
    while (more) { /* more frames than a ZAP request has: drained */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, g->zap, 0) < 0)
            more = 0;
        else
            more = zmq_msg_more(&x);
        zmq_msg_close(&x);
    }
    const int ok =
        n >= 7 && zmq_msg_size(&part[5]) == 5 && memcmp(zmq_msg_data(&part[5]), "CURVE", 5) == 0 &&
        zmq_msg_size(&part[6]) == 32 && memcmp(zmq_msg_data(&part[6]), g->allowed, 32) == 0;
    const char *id = n >= 2 ? zmq_msg_data(&part[1]) : "";
    const size_t idlen = n >= 2 ? zmq_msg_size(&part[1]) : 0;
    zmq_send(g->zap, "1.0", 3, ZMQ_SNDMORE);
    zmq_send(g->zap, id, idlen, ZMQ_SNDMORE);
    zmq_send(g->zap, ok ? "200" : "400", 3, ZMQ_SNDMORE);
    const char *text = ok ? "OK" : "not the trainers' key";
    zmq_send(g->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(g->zap, "", 0, ZMQ_SNDMORE);
    zmq_send(g->zap, "", 0, 0);
    for (int k = 0; k < n; k++) zmq_msg_close(&part[k]);
}

static void *serve(void *arg)
{
    curve_guard *g = arg;
    while (!atomic_load(&g->stop)) {
        zmq_pollitem_t it = {g->zap, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 200) > 0 && (it.revents & ZMQ_POLLIN)) zap_reply(g);
    }
    return NULL;
}

int curve_guard_start(curve_guard **out, void *ctx, void *sock, const char *keyfile, char *err,
                      size_t n)
{
    *out = NULL;
    char secret[WIRE_KEY_LEN + 1], client[WIRE_KEY_LEN + 1];
    if (wire_keys_read(keyfile, secret, client, err, n) != 0) return -1;
    curve_guard *g = calloc(1, sizeof *g);
    if (!g || !zmq_has("curve")) {
        snprintf(err, n, "%s", g ? "this ZeroMQ has no CURVE security" : "out of memory");
        free(g);
        return -1;
    }
    zmq_z85_decode(g->allowed, client);
    const int server = 1;
    g->zap = zmq_socket(ctx, ZMQ_REP);
    const int ok = g->zap && zmq_bind(g->zap, "inproc://zeromq.zap.01") == 0 &&
                   zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &server, sizeof server) == 0 &&
                   zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret, WIRE_KEY_LEN) == 0 &&
                   pthread_create(&g->thread, NULL, serve, g) == 0;
    if (!ok) {
        snprintf(err, n, "%s: cannot set up CURVE (%s)", keyfile, zmq_strerror(zmq_errno()));
        curve_guard_stop(g);
        return -1;
    }
    g->running = 1;
    *out = g;
    return 0;
}

void curve_guard_stop(curve_guard *g)
{
    if (!g) return;
    atomic_store(&g->stop, 1);
    if (g->running) pthread_join(g->thread, NULL);
    int linger = 0;
    if (g->zap) zmq_setsockopt(g->zap, ZMQ_LINGER, &linger, sizeof linger), zmq_close(g->zap);
    free(g);
}

/* The HTTP connections' guard: a deadline for requests, room made at the
 * limits by closing the oldest waiting connection (http_guard.h). */
#include "http_guard.h"

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SWEEP_MS 250

struct guard_conn {
    int used;
    int closing; /* shut down by the guard, not yet gone: counts for no limit */
    int fd;
    uint32_t addr; /* IPv4, network order (the monitor serves IPv4 only) */
    guard_state state;
    double since; /* in this state since */
};

struct guard {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the sweeper sleeps on it; guard_free wakes it */
    pthread_t sweeper;
    int running, stop;
    int per_addr, total, cap;
    double deadline;
    long late, made_room;
    guard_conn *conns; /* (cap) */
};

double guard_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A client's address as a key: IPv4 as it is, IPv4 mapped into IPv6 (a
 * dual-stack [::] server's IPv4 clients) the same, other IPv6 addresses
 * folded (FNV-1a: distinct clients rarely share a key, and sharing one only
 * shares a limit). */
static uint32_t addr_of(const struct sockaddr *a)
{
    if (a && a->sa_family == AF_INET) return ((const struct sockaddr_in *)a)->sin_addr.s_addr;
    if (!a || a->sa_family != AF_INET6) return 0;
    const struct in6_addr *v6 = &((const struct sockaddr_in6 *)a)->sin6_addr;
    uint32_t k;
    if (IN6_IS_ADDR_V4MAPPED(v6)) {
        memcpy(&k, v6->s6_addr + 12, sizeof k);
        return k;
    }
    k = 2166136261u;
    for (int i = 0; i < 16; i++) k = (k ^ v6->s6_addr[i]) * 16777619u;
    return k;
}

guard *guard_new(int per_addr, int total, double deadline_s)
{
    guard *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->per_addr = per_addr, g->total = total, g->deadline = deadline_s;
    /* closed connections stay until the server has let them go: room for
     * as many as one address may hold */
    g->cap = total + per_addr;
    g->conns = calloc((size_t)g->cap, sizeof *g->conns);
    if (!g->conns) {
        free(g);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&g->mu, NULL);
    return g;
}

int guard_capacity(const guard *g)
{
    return g->cap;
}

/* Closes c: the server's thread for it sees the client gone. Under mu, so
 * the socket is still open (guard_closed comes first). */
static void close_conn(guard_conn *c)
{
    c->closing = 1;
    shutdown(c->fd, SHUT_RDWR);
}

int guard_sweep(guard *g, double now)
{
    int n = 0;
    pthread_mutex_lock(&g->mu);
    for (int i = 0; i < g->cap; i++) {
        guard_conn *c = &g->conns[i];
        if (c->used && !c->closing && c->state == GUARD_WAITING && now - c->since > g->deadline) {
            close_conn(c);
            n++;
        }
    }
    g->late += n;
    pthread_mutex_unlock(&g->mu);
    return n;
}

static void *sweeper(void *arg)
{
    guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        t.tv_nsec += SWEEP_MS * 1000000L;
        if (t.tv_nsec >= 1000000000L) t.tv_sec++, t.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&g->cv, &g->mu, &t);
        if (g->stop) break;
        pthread_mutex_unlock(&g->mu);
        guard_sweep(g, guard_now());
        pthread_mutex_lock(&g->mu);
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int guard_start(guard *g)
{
    if (pthread_create(&g->sweeper, NULL, sweeper, g) != 0) return -1;
    g->running = 1;
    return 0;
}

void guard_free(guard *g)
{
    if (!g) return;
    if (g->running) {
        pthread_mutex_lock(&g->mu);
        g->stop = 1;
        pthread_cond_broadcast(&g->cv);
        pthread_mutex_unlock(&g->mu);
        pthread_join(g->sweeper, NULL);
    }
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g->conns);
    free(g);
}

/* The oldest connection waiting for a request (from addr when by_addr), or
 * NULL. */
static guard_conn *oldest_waiting(guard *g, int by_addr, uint32_t addr)
{
    guard_conn *o = NULL;
    for (int i = 0; i < g->cap; i++) {
        guard_conn *c = &g->conns[i];
        if (!c->used || c->closing || c->state != GUARD_WAITING || (by_addr && c->addr != addr))
            continue;
        if (!o || c->since < o->since) o = c;
    }
    return o;
}

int guard_admit(guard *g, const struct sockaddr *addr)
{
    const uint32_t a = addr_of(addr);
    pthread_mutex_lock(&g->mu);
    int mine = 0, all = 0, slots = 0;
    for (int i = 0; i < g->cap; i++) {
        const guard_conn *c = &g->conns[i];
        slots += c->used;
        if (!c->used || c->closing) continue;
        all++;
        mine += c->addr == a;
    }
    int ok = slots < g->cap;
    for (int by_addr = 1; ok && by_addr >= 0; by_addr--) {
        if (by_addr ? mine < g->per_addr : all < g->total) continue;
        guard_conn *o = oldest_waiting(g, by_addr, a);
        if (!o) {
            ok = 0;
            break;
        }
        /* the reserve: a slow or idle client gives way to a new one */
        close_conn(o);
        g->made_room++;
        all--;
        mine -= o->addr == a;
    }
    pthread_mutex_unlock(&g->mu);
    return ok;
}

guard_conn *guard_opened(guard *g, int fd, const struct sockaddr *addr, double now)
{
    pthread_mutex_lock(&g->mu);
    guard_conn *c = NULL;
    for (int i = 0; i < g->cap && !c; i++)
        if (!g->conns[i].used) c = &g->conns[i];
    if (c)
        *c = (guard_conn){
            .used = 1, .fd = fd, .addr = addr_of(addr), .state = GUARD_WAITING, .since = now};
    else
        shutdown(fd, SHUT_RDWR);
    pthread_mutex_unlock(&g->mu);
    return c;
}

void guard_set(guard *g, guard_conn *c, guard_state s, double now)
{
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    if (c->state != s) c->state = s, c->since = now;
    pthread_mutex_unlock(&g->mu);
}

void guard_closed(guard *g, guard_conn *c)
{
    if (!c) return;
    pthread_mutex_lock(&g->mu);
    c->used = 0;
    pthread_mutex_unlock(&g->mu);
}

void guard_counts(guard *g, long *late, long *made_room)
{
    pthread_mutex_lock(&g->mu);
    *late = g->late, *made_room = g->made_room;
    pthread_mutex_unlock(&g->mu);
}

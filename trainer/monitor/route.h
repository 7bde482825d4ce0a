/* trainer/monitor/route.h: what the monitor's HTTP API answers. A request's
 * method and path (already percent-decoded) become a status, a content type
 * and a body; monitor.c serves the answer with libmicrohttpd, and the
 * fuzzer (tests/fuzz/fuzz_http.c) calls the same function without a
 * server. GET and HEAD only, no request body. */
#ifndef SEQPAR_MONITOR_ROUTE_H
#define SEQPAR_MONITOR_ROUTE_H

#include <stddef.h>

#include "collector.h"

typedef struct route_reply {
    unsigned status;  /* HTTP status code */
    const char *type; /* Content-Type */
    const char *body; /* len bytes: static text, or `owned` */
    size_t len;
    char *owned;  /* the body when it was rendered (malloc'd), else NULL */
    int events;   /* /events: the server opens an event stream (no body here) */
    int get_only; /* 405: the reply names GET in an Allow header */
} route_reply;

/* Fills r for a request at `now` (seconds since the epoch: rank states). */
void route_request(collector *c, const char *method, const char *path, size_t upload_size,
                   double now, route_reply *r);
/* Frees a rendered body (when the server did not take it). */
void route_reply_free(route_reply *r);

#endif

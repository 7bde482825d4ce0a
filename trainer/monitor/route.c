/* The monitor's HTTP routes (route.h): the page, the JSON API and the
 * Prometheus text, rendered by the collector. */
#include "route.h"

#include <stdlib.h>
#include <string.h>

extern const unsigned char seqpar_dashboard_html[];
extern const size_t seqpar_dashboard_html_len;

static void text(route_reply *r, unsigned status, const char *msg)
{
    r->status = status, r->type = "text/plain; charset=utf-8";
    r->body = msg, r->len = strlen(msg);
}

/* A rendering (malloc'd, or NULL) as the reply; `missing` when NULL. */
static void rendered(route_reply *r, const char *type, char *s, unsigned status,
                     const char *missing)
{
    if (!s) {
        text(r, status, missing);
        return;
    }
    r->status = 200, r->type = type;
    r->body = r->owned = s, r->len = strlen(s);
}

void route_request(collector *c, const char *method, const char *path, size_t upload_size,
                   double now, route_reply *r)
{
    memset(r, 0, sizeof *r);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        text(r, 405, "only GET\n");
        r->get_only = 1;
    } else if (upload_size) {
        text(r, 400, "no request body expected\n");
    } else if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
        r->status = 200, r->type = "text/html; charset=utf-8";
        r->body = (const char *)seqpar_dashboard_html, r->len = seqpar_dashboard_html_len;
    } else if (strcmp(path, "/api/runs") == 0 || strcmp(path, "/api/runs/") == 0) {
        rendered(r, "application/json", collector_runs_json(c, now), 500, "out of memory\n");
    } else if (strncmp(path, "/api/runs/", 10) == 0) {
        rendered(r, "application/json", collector_run_json(c, path + 10, now), 404,
                 "no such run\n");
    } else if (strcmp(path, "/metrics") == 0) {
        rendered(r, "text/plain; version=0.0.4; charset=utf-8", collector_metrics(c, now), 500,
                 "out of memory\n");
    } else if (strcmp(path, "/events") == 0) {
        r->status = 200, r->type = "text/event-stream", r->events = 1;
    } else {
        text(r, 404, "not found (/, /api/runs, /api/runs/ID, /events, /metrics)\n");
    }
}

void route_reply_free(route_reply *r)
{
    free(r->owned);
    r->owned = NULL, r->body = NULL, r->len = 0;
}

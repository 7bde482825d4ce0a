/* The monitor's HTTP routes (route.h): the page, the JSON API and the
 * Prometheus text, rendered by the collector. */
#include "route.h"

#include <cjson/cJSON.h>
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

/* A JSON 404 for the API: {"error": why, "path": path}. */
static void json_missing(route_reply *r, const char *why, const char *path)
{
    cJSON *o = cJSON_CreateObject();
    char *s = NULL;
    if (o && cJSON_AddStringToObject(o, "error", why) && cJSON_AddStringToObject(o, "path", path))
        s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s) {
        text(r, 500, "out of memory\n");
        return;
    }
    r->status = 404, r->type = "application/json";
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
        char *s = collector_run_json(c, path + 10, now);
        if (s)
            rendered(r, "application/json", s, 500, "out of memory\n");
        else /* (or out of memory) */
            json_missing(r, "no such run", path);
    } else if (strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0) {
        json_missing(r, "not found (/api/runs, /api/runs/ID)", path);
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

/* The monitor's HTTP routes (route_request, trainer/monitor/route.c): the
 * first line of the input is the request ("METHOD PATH", the path as
 * libmicrohttpd hands it over, percent-decoded), the other lines are wire
 * messages the collector holds when the request comes. The server's own
 * parsing of requests is libmicrohttpd's and not fuzzed here. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "fuzz_util.h"
#include "route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *in = fuzz_string(data, size);
    collector *c = in ? collector_new() : NULL;
    if (!c) {
        free(in);
        return 0;
    }
    char *request = in, *rest = strchr(in, '\n');
    if (rest) *rest++ = '\0';
    double now = 1796680300.0; /* about the seeds' times */
    while (rest && *rest) {
        char *nl = strchr(rest, '\n');
        const size_t len = nl ? (size_t)(nl - rest) : strlen(rest);
        collector_add(c, rest, len, now, NULL, 0);
        now += 5;
        rest = nl ? nl + 1 : NULL;
    }
    char *path = strchr(request, ' ');
    if (path) *path++ = '\0';
    const size_t upload = (size_t)(size % 7 == 6); /* now and then a request with a body */
    route_reply r;
    route_request(c, request, path ? path : "", upload, now, &r);
    if (r.status < 200 || r.status > 599 || !r.type || (r.len && !r.body) ||
        (r.events && (r.status != 200 || r.owned)))
        abort();
    if (r.owned && strcmp(r.type, "application/json") == 0) {
        cJSON *j = cJSON_ParseWithLength(r.body, r.len);
        if (!j) {
            fprintf(stderr, "%s answered with what is not JSON: %.*s\n", path, (int)r.len, r.body);
            abort();
        }
        cJSON_Delete(j);
    }
    route_reply_free(&r);
    collector_free(c);
    free(in);
    return 0;
}

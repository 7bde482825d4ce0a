/* The metrics wire's parser (wire_parse, comm/wire_codec.c) and the
 * monitor's collector (collector_add, trainer/monitor/collector.c) on
 * hostile messages, one per line of the input (as the monitor's log keeps
 * them). Beyond not crashing:
 *   - a message the parser accepts, encoded (wire_encode) and parsed again,
 *     encodes to the same text (the codec's promise in comm/wire.h);
 *   - whatever the collector accepted, its JSON API renders valid JSON. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "fuzz_util.h"
#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wire_msg parsed, again; /* 50 KB each: not on the stack */

/* The codec's promise: what wire_encode writes parses back to the same
 * message, so encoding that again gives the same text. (A message as
 * received may hold more: fields of other kinds are read, as seqpar 0.1's
 * parser did, and not sent on.) */
static void check_round_trip(const char *line, size_t len)
{
    char err[256];
    if (wire_parse(line, len, &parsed, err, sizeof err) != 0) return;
    char *enc = wire_encode(&parsed), *enc2 = NULL;
    if (enc && strlen(enc) <= WIRE_MAX_MSG) {
        if (wire_parse(enc, strlen(enc), &again, err, sizeof err) != 0) {
            fprintf(stderr, "wire_encode wrote what wire_parse refuses (%s): %s\n", err, enc);
            abort();
        }
        enc2 = wire_encode(&again);
        if (enc2 && strcmp(enc, enc2) != 0) {
            fprintf(stderr, "a message changed through wire_encode and wire_parse:\n%s\n%s\n", enc,
                    enc2);
            abort();
        }
    }
    free(enc2);
    free(enc);
}

static void check_json(char *s, const char *what)
{
    if (!s) return; /* no such run, or out of memory */
    cJSON *j = cJSON_Parse(s);
    if (!j) {
        fprintf(stderr, "%s is not JSON: %s\n", what, s);
        abort();
    }
    cJSON_Delete(j);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    collector *c = collector_new();
    if (!c) return 0;
    const char *p = (const char *)data, *end = p + size;
    double now = 1796680300.0; /* about the seeds' times */
    char run[WIRE_RUN_MAX + 1] = "r";
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const size_t len = (size_t)((nl ? nl : end) - p);
        check_round_trip(p, len);
        if (collector_add(c, p, len, now, NULL, 0) == 0) memcpy(run, parsed.run, sizeof run);
        now += 5; /* some ranks fall late, some get lost */
        p += len + 1;
    }
    check_json(collector_runs_json(c, now), "/api/runs");
    check_json(collector_run_json(c, run, now), "/api/runs/ID");
    free(collector_metrics(c, now));
    collector_free(c);
    return 0;
}

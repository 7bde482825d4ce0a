/* trainer/monitor/collector.h: what `seqpar monitor` knows of the runs
 * (DESIGN.md, "Metrics wire").
 *
 * The collector takes raw metrics-wire messages, validates each with the
 * wire's codec (wire_parse, comm/wire.h), aggregates per run and step
 * (loss = Σ loss_sum / Σ tokens over the ranks, perplexity = exp(loss),
 * tokens/s summed over ranks), tracks every rank's last message, and renders
 * the monitor's JSON API (render_json.c) and Prometheus text
 * (render_prom.c). It is thread-safe: one thread adds messages, HTTP
 * threads render and wait. */
#ifndef SEQPAR_MONITOR_COLLECTOR_H
#define SEQPAR_MONITOR_COLLECTOR_H

#include <stddef.h>

#include "wire.h"

#define COLLECTOR_LATE_S 10.0 /* a rank silent this long is "late" */
#define COLLECTOR_LOST_S 60.0 /* ... and this long "lost" */

/* A straggler (DESIGN.md, "Metrics wire"): a rank whose compute seconds in
 * a complete logging window (every rank reported it) are above
 * STRAGGLER_RATIO times the median of the other ranks' in that window, and
 * above it by at least STRAGGLER_MIN_S, in STRAGGLER_WINDOWS windows in a
 * row. A window at or below the ratio ends the row; one above the ratio by
 * less than STRAGGLER_MIN_S (too short to tell) neither counts nor ends it. */
#define COLLECTOR_STRAGGLER_RATIO   1.5
#define COLLECTOR_STRAGGLER_MIN_S   0.05
#define COLLECTOR_STRAGGLER_WINDOWS 3
/* Windows of every rank's phases kept for the dashboard's timeline, and the
 * ranks (the first ones) they are kept for. */
#define COLLECTOR_TL_WINDOWS 60
#define COLLECTOR_TL_RANKS   64

typedef struct collector collector;

collector *collector_new(void);
void collector_free(collector *c);
/* Adds one raw message received at `now` (seconds since the epoch; < 0:
 * restored from the log, at the message's own time but never ahead of the
 * clock): parsed, validated and aggregated, or counted as malformed /
 * oversized. Returns 0 when it was accepted; else -1 with the reason in
 * why[whylen] (why may be NULL). */
int collector_add(collector *c, const char *buf, size_t len, double now, char *why, size_t whylen);
/* collector_add for a message that came over connection `conn` (ZeroMQ's
 * ZMQ_SRCFD: the socket it came in on; -1: not known). The connections a
 * rank's messages came over are remembered, so that when all of them close
 * (collector_closed) before its "end", the rank is lost at once: a killed
 * trainer (SIGKILL, a crashed node's processes) says nothing. */
int collector_add_from(collector *c, const char *buf, size_t len, double now, int conn, char *why,
                       size_t whylen);
/* Connection `conn` closed (ZMQ_EVENT_DISCONNECTED): the ranks whose every
 * connection has closed, and who have not ended, are lost from now on
 * (until they send again). */
void collector_closed(collector *c, int conn);
/* Counters: messages accepted, malformed, oversized. */
void collector_counts(collector *c, long *ok, long *malformed, long *oversized);
/* Changes so far (for server-sent events); blocks up to timeout_ms for one
 * past `seen` and returns the current version, with the run that changed
 * last in run[WIRE_RUN_MAX + 1]. */
long collector_wait(collector *c, long seen, int timeout_ms, char *run);
/* Wakes every waiter, now and later: the collector is shutting down. */
void collector_wake(collector *c);

/* Renderings, malloc'd NUL-terminated strings (NULL when out of memory, or
 * for run_json when there is no such run). `now` decides rank states. */
char *collector_runs_json(collector *c, double now);                 /* /api/runs */
char *collector_run_json(collector *c, const char *run, double now); /* /api/runs/ID */
char *collector_metrics(collector *c, double now);                   /* /metrics */

#endif

/* comm/wire.h: the ZeroMQ metrics wire (DESIGN.md, "Metrics wire").
 *
 * Trainers publish JSON messages with a PUSH socket that connects to the
 * monitor's PULL socket: sends never block (ZMQ_DONTWAIT, a bounded queue of
 * WIRE_QUEUE messages, LINGER 0), so a missing, slow or restarted monitor
 * costs training nothing; ZeroMQ reconnects by itself, and messages queued
 * while the monitor was away are delivered when it comes back (up to the
 * queue bound; beyond it they are dropped and counted).
 *
 * The monitor validates every message with wire_parse; what it does with
 * them (aggregation, rank states, its JSON API and Prometheus text) lives
 * with it, in trainer/monitor/collector.h. */
#ifndef SEQPAR_WIRE_H
#define SEQPAR_WIRE_H

#include <stddef.h>

#define WIRE_VERSION     1
#define WIRE_QUEUE       1000        /* messages queued per trainer while the monitor is away */
#define WIRE_MAX_MSG     (64 * 1024) /* larger messages are counted as oversized and ignored */
#define WIRE_RUN_MAX     64          /* run id: 1..64 of [A-Za-z0-9._:-] */
#define WIRE_MAX_SAMPLES 8           /* sample translations per eval message */
#define WIRE_TEXT_MAX    2000        /* bytes of a sample sentence or an event detail */
#define WIRE_MAX_WORLD   4096        /* ranks per run the monitor accepts */
#define WIRE_MAX_TIME    1e10        /* latest "time" accepted: Unix seconds in the year 2286 */

/* Seconds since the Unix epoch: the wire's "time" field and the monitor's clock. */
double wire_time(void);

/* ------------------------------------------------------------ publisher */

typedef struct wire_pub wire_pub;

/* Connects to endpoint (e.g. tcp://127.0.0.1:5555); fails only on a
 * malformed endpoint or when ZeroMQ cannot start, with a message in err. */
int wire_pub_open(wire_pub **out, const char *endpoint, char *err, size_t errlen);
/* Whether a ZeroMQ endpoint's TCP port is one (1..65535, or * to bind);
 * other transports pass. 0 with a message in err. */
int wire_endpoint_ok(const char *endpoint, int bind, char *err, size_t errlen);
/* Queues one message without ever blocking; a full queue drops it (counted). */
void wire_pub_send(wire_pub *p, const char *msg, size_t len);
long wire_pub_dropped(const wire_pub *p);
/* Closes, waiting at most linger_ms for queued messages to leave (0: not at all). */
void wire_pub_close(wire_pub *p, int linger_ms);

/* ------------------------------------------------------------- messages */

typedef enum { WIRE_TRAIN, WIRE_EVAL, WIRE_EVENT, WIRE_HEARTBEAT } wire_kind;

typedef struct wire_sample {
    char src[WIRE_TEXT_MAX + 1], hyp[WIRE_TEXT_MAX + 1], ref[WIRE_TEXT_MAX + 1];
} wire_sample;

/* One decoded message; numeric fields not sent are NaN. */
typedef struct wire_msg {
    int v;
    char run[WIRE_RUN_MAX + 1];
    wire_kind kind;
    int rank, world;
    long step, epoch;
    double time;
    /* train */
    double loss_sum, tokens, grad_norm, lr, tok_per_s;
    /* eval */
    double val_loss, val_ppl, bleu;
    int nsamples;
    wire_sample samples[WIRE_MAX_SAMPLES];
    /* event */
    char event[33];
    char detail[WIRE_TEXT_MAX + 1];
} wire_msg;

/* Whether s is a valid run id: 1..WIRE_RUN_MAX of [A-Za-z0-9._:-]. */
int wire_run_id_ok(const char *s);

/* Adds "samples": [{src, hyp, ref} …] of n samples to a JSON object (an eval
 * message as the trainer sends it, a run as the monitor serves it). */
struct cJSON;
void wire_add_samples(struct cJSON *o, const wire_sample *s, int n);

/* Parses and validates buf[0..len): 0, or -1 with the reason in err. */
int wire_parse(const char *buf, size_t len, wire_msg *m, char *err, size_t errlen);

#endif

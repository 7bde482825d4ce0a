/* comm/wire.h: the ZeroMQ metrics wire's transport and message codec
 * (DESIGN.md, "Metrics wire").
 *
 * Transport (wire_pub.c): trainers publish JSON messages with a PUSH socket
 * that connects to the monitor's PULL socket: sends never block
 * (ZMQ_DONTWAIT, a bounded queue of WIRE_QUEUE messages, LINGER 0), so a
 * missing, slow or restarted monitor costs training nothing; ZeroMQ
 * reconnects by itself, and messages queued while the monitor was away are
 * delivered when it comes back (up to the queue bound; beyond it they are
 * dropped and counted).
 *
 * Codec (wire_codec.c): one table declares every field of a message, and
 * both the trainers' encoder (wire_encode) and the monitor's parser
 * (wire_parse) walk it. What the monitor does with the messages
 * (aggregation, rank states, its JSON API and Prometheus text) lives with
 * it, in trainer/monitor/collector.h. */
#ifndef SEQPAR_WIRE_H
#define SEQPAR_WIRE_H

#include <stddef.h>

#define WIRE_VERSION     1
#define WIRE_QUEUE       1000        /* messages queued per trainer while the monitor is away */
#define WIRE_MAX_MSG     (64 * 1024) /* larger messages are counted as oversized and ignored */
#define WIRE_RUN_MAX     64          /* run id: 1..64 of [A-Za-z0-9._:-] */
#define WIRE_MAX_SAMPLES 8           /* sample translations per eval message */
#define WIRE_TEXT_MAX    2000        /* bytes of a sample sentence or an event detail */
#define WIRE_EVENT_MAX   32          /* bytes of an event's name */
#define WIRE_MAX_WORLD   4096        /* ranks per run the monitor accepts */
#define WIRE_MAX_TIME    1e10        /* latest "time" accepted: Unix seconds in the year 2286 */

/* Seconds since the Unix epoch: the wire's "time" field and the monitor's clock. */
double wire_time(void);

/* ------------------------------------------------------------ publisher */

typedef struct wire_pub wire_pub;

/* Connects to endpoint (e.g. tcp://127.0.0.1:5555); fails only on a
 * malformed endpoint, an unreadable key file or when ZeroMQ cannot start,
 * with a message in err. keyfile (NULL: none) is the trainers' key file of
 * `seqpar monitor --gen-keys`: the connection is then CURVE-encrypted and
 * authenticated (a monitor with CURVE refuses a trainer without the key). */
int wire_pub_open(wire_pub **out, const char *endpoint, const char *keyfile, char *err,
                  size_t errlen);
/* Whether a ZeroMQ endpoint's TCP port is one (1..65535, or * to bind);
 * other transports pass. 0 with a message in err. */
int wire_endpoint_ok(const char *endpoint, int bind, char *err, size_t errlen);
/* Queues one message without ever blocking; a full queue drops it (counted). */
void wire_pub_send(wire_pub *p, const char *msg, size_t len);
long wire_pub_dropped(const wire_pub *p);
/* Closes, waiting at most linger_ms for queued messages to leave (0: not at all). */
void wire_pub_close(wire_pub *p, int linger_ms);

/* ----------------------------------------------------------------- keys
 *
 * ZeroMQ CURVE: `seqpar monitor --gen-keys DIR` writes DIR/monitor.key (the
 * monitor's secret key, the trainers' public key) for `seqpar monitor
 * --curve-secret`, and DIR/trainer.key (the monitor's public key, the
 * trainers' secret key) for `seqpar train --monitor-key`; Z85 text, two
 * lines, mode 0600, never overwritten. */
#define WIRE_KEY_LEN 40
int wire_keys_generate(const char *dir, char *err, size_t errlen);
/* The two keys of a key file: 0, or -1 with the reason in err. */
int wire_keys_read(const char *path, char a[WIRE_KEY_LEN + 1], char b[WIRE_KEY_LEN + 1], char *err,
                   size_t errlen);

/* ------------------------------------------------------------- messages
 *
 * Every kind carries v, run, kind, rank, world, step, epoch and time; then
 *   train      loss_sum, tokens (both required, >= 0), grad_norm, lr, tok_per_s,
 *              nan_skips (>= 0); the window's seconds by phase (each optional, >= 0:
 *              trainers before them did not send them): compute_s, wait_s, data_s,
 *              eval_s, checkpoint_s
 *   eval       val_loss, val_ppl, bleu, samples [{src, hyp, ref} …]
 *   event      event (required, not empty), detail
 *   heartbeat  state ("waiting" | "working", optional)
 * Bounds and types: the table in wire_codec.c. */

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
    double nan_skips; /* steps whose update was skipped (--on-nan skip) so far */
    /* seconds of the logging window by phase (WIRE_PHASES, in wire_phase_names'
     * order): forward/backward, waiting in the gradient allreduce beyond what
     * backward hid, reading data, validating, checkpointing */
    double compute_s, wait_s, data_s, eval_s, checkpoint_s;
    /* eval */
    double val_loss, val_ppl, bleu;
    int nsamples;
    wire_sample samples[WIRE_MAX_SAMPLES];
    /* event */
    char event[WIRE_EVENT_MAX + 1];
    char detail[WIRE_TEXT_MAX + 1];
    /* heartbeat: "waiting" (blocked in a collective, for other ranks) or
     * "working" (in a long step, validation or checkpoint); "" when not said */
    char state[16];
} wire_msg;

/* The phases of a rank's time (compute, wait, data, eval, checkpoint), as
 * /metrics labels them; wire_msg_phases reads a train message's seconds of
 * them into out[WIRE_PHASES] (NaN: not sent) and wire_msg_set_phases writes
 * them. */
#define WIRE_PHASES 5
extern const char *const wire_phase_names[WIRE_PHASES];
void wire_msg_phases(const wire_msg *m, double out[WIRE_PHASES]);
void wire_msg_set_phases(wire_msg *m, const double in[WIRE_PHASES]);

/* Whether s is a valid run id: 1..WIRE_RUN_MAX of [A-Za-z0-9._:-]. */
int wire_run_id_ok(const char *s);

/* Adds "samples": [{src, hyp, ref} …] of n samples to a JSON object (an eval
 * message as wire_encode writes it, a run as the monitor serves it): 0, or
 * -1 when out of memory. */
struct cJSON;
int wire_add_samples(struct cJSON *o, const wire_sample *s, int n);

/* A message of `kind` to fill in: v = WIRE_VERSION, every number NaN (not
 * sent), every string empty, no samples. */
void wire_msg_init(wire_msg *m, wire_kind kind);

/* One message as JSON (malloc'd, NUL-terminated; NULL when out of memory):
 * v, run, kind, rank, world, step, epoch, time, then the fields of
 * m->kind (numeric ones that are NaN are sent as null, as today), samples
 * for eval (m->nsamples of them), event and detail for events.
 * Start m with wire_msg_init (v is m->v). NULL also for a kind that is not a
 * wire_kind, or a text that does not end within its member. Nothing else is
 * checked: the parser refuses what breaks its bounds, and a message over
 * WIRE_MAX_MSG (eight samples of long texts full of escapes) is oversized. */
char *wire_encode(const wire_msg *m);

/* Parses and validates buf[0..len) into m: 0, or -1 with the reason in err.
 * A message wire_encode wrote within the bounds parses back to the same
 * wire_msg (from wire_msg_init: numbers not sent are NaN). */
int wire_parse(const char *buf, size_t len, wire_msg *m, char *err, size_t errlen);

#endif

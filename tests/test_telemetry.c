/* The trainer's metrics messages (trainer/telemetry.c) as a monitor receives
 * them: every kind parses, and none is ever over WIRE_MAX_MSG (a validation
 * with three samples of control characters encodes to about 100 KiB: the
 * samples give way, then the detail). */
#include <CUnit/CUnit.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "comm.h"
#include "telemetry.h"
#include "wire.h"

static void *ctx, *pull;
static char endpoint[64];

static int init(void)
{
    if (comm_init(NULL, NULL) != COMM_OK) return -1;
    ctx = zmq_ctx_new();
    pull = zmq_socket(ctx, ZMQ_PULL);
    int timeout = 5000;
    zmq_setsockopt(pull, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
    if (zmq_bind(pull, "tcp://127.0.0.1:*") != 0) return -1;
    size_t n = sizeof endpoint;
    return zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, endpoint, &n);
}

static int cleanup(void)
{
    zmq_close(pull);
    zmq_ctx_term(ctx);
    return 0;
}

void suite_atexit(void)
{
    comm_finalize();
}

/* The next message received, parsed into m: its length, or -1. */
static int receive(wire_msg *m)
{
    static char buf[4 * WIRE_MAX_MSG];
    const int n = zmq_recv(pull, buf, sizeof buf, 0);
    char err[200];
    if (n < 0 || n > (int)sizeof buf || wire_parse(buf, (size_t)n, m, err, sizeof err) != 0) {
        fprintf(stderr, "\n  received %d bytes: %s\n", n, n < 0 ? "nothing" : err);
        return n > 0 ? -2 : -1;
    }
    return n;
}

static void test_messages(void)
{
    static wire_msg m;
    static wire_sample s[3];
    telemetry *t = NULL;
    train_pos pos = {.step = 12, .epoch = 1, .batch_in_epoch = 3};
    char err[200];
    CU_ASSERT_EQUAL_FATAL(telemetry_open(&t, endpoint, NULL, "tel", &pos, err, sizeof err), 0);
    telemetry_train(t, 10.5, 7, 0.25, 0.005, 2.0, 1);
    CU_ASSERT(receive(&m) > 0);
    CU_ASSERT(m.kind == WIRE_TRAIN && m.step == 12 && m.epoch == 2 && m.tokens == 7);
    CU_ASSERT_DOUBLE_EQUAL(m.nan_skips, 1, 0);
    CU_ASSERT_DOUBLE_EQUAL(m.tok_per_s, 3.5, 1e-12);
    /* three samples of control characters: 6 bytes each in JSON */
    for (int k = 0; k < 3; k++) {
        memset(s[k].src, 1, WIRE_TEXT_MAX), s[k].src[WIRE_TEXT_MAX] = '\0';
        memset(s[k].hyp, 2, WIRE_TEXT_MAX), s[k].hyp[WIRE_TEXT_MAX] = '\0';
        memset(s[k].ref, 3, WIRE_TEXT_MAX), s[k].ref[WIRE_TEXT_MAX] = '\0';
    }
    telemetry_eval(t, 1.5, 4.48, 12.5, s, 3);
    const int n = receive(&m);
    CU_ASSERT(n > 0 && n <= WIRE_MAX_MSG);
    CU_ASSERT(m.kind == WIRE_EVAL && m.nsamples >= 1 && m.nsamples < 3);
    CU_ASSERT_DOUBLE_EQUAL(m.bleu, 12.5, 0);
    /* an event's detail of multi-byte characters, cut at a character */
    char detail[WIRE_TEXT_MAX + 1] = "";
    for (int k = 0; k + 3 <= WIRE_TEXT_MAX; k += 3) strcat(detail, "\xe2\x82\xac");
    telemetry_event(t, "note", "%s", detail);
    CU_ASSERT(receive(&m) > 0 && m.kind == WIRE_EVENT && strcmp(m.event, "note") == 0);
    telemetry_close(t);
}

void register_suites(void)
{
    CU_pSuite s = CU_add_suite("telemetry", init, cleanup);
    CU_add_test(s, "messages parse; none over WIRE_MAX_MSG", test_messages);
}

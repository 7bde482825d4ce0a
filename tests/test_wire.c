/* The metrics wire: message parser (valid, invalid, fuzzed and truncated
 * messages), encoder (every kind parses back to the message it was), and
 * the collector's aggregation, rank states, renderings. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h" /* rng_u64 for the fuzzer */
#include "collector.h"
#include "http_addr.h"
#include "http_guard.h"
#include "msglog.h"
#include "wire.h"

static int parse(const char *s, wire_msg *m)
{
    char err[200];
    return wire_parse(s, strlen(s), m, err, sizeof err);
}

#define HEAD "\"v\":1,\"run\":\"r1\",\"world\":2,\"epoch\":1,\"time\":1000.5"

static void test_parse_valid(void)
{
    static wire_msg m;
    CU_ASSERT_EQUAL(parse("{" HEAD ",\"kind\":\"train\",\"rank\":1,\"step\":10,\"loss_sum\":12.5,"
                          "\"tokens\":5,\"grad_norm\":0.7,\"lr\":0.005,\"tok_per_s\":1000}",
                          &m),
                    0);
    CU_ASSERT_EQUAL(m.kind, WIRE_TRAIN);
    CU_ASSERT_EQUAL(m.rank, 1);
    CU_ASSERT_EQUAL(m.world, 2);
    CU_ASSERT_EQUAL(m.step, 10);
    CU_ASSERT_DOUBLE_EQUAL(m.loss_sum, 12.5, 0);
    CU_ASSERT_DOUBLE_EQUAL(m.tokens, 5, 0);
    CU_ASSERT_STRING_EQUAL(m.run, "r1");
    CU_ASSERT(isnan(m.bleu));
    CU_ASSERT_EQUAL(parse("{" HEAD ",\"kind\":\"eval\",\"rank\":0,\"step\":10,\"val_loss\":1.5,"
                          "\"val_ppl\":4.48,\"bleu\":null,\"samples\":[{\"src\":\"a\",\"hyp\":"
                          "\"b\",\"ref\":\"c \\u00e9\"}]}",
                          &m),
                    0);
    CU_ASSERT_EQUAL(m.nsamples, 1);
    CU_ASSERT_STRING_EQUAL(m.samples[0].ref, "c \xc3\xa9");
    CU_ASSERT(isnan(m.bleu));
    CU_ASSERT_EQUAL(parse("{" HEAD ",\"kind\":\"event\",\"rank\":0,\"step\":0,\"event\":"
                          "\"checkpoint\",\"detail\":\"ck/ckpt-1.h5\"}",
                          &m),
                    0);
    CU_ASSERT_STRING_EQUAL(m.event, "checkpoint");
    CU_ASSERT_EQUAL(parse("{" HEAD ",\"kind\":\"heartbeat\",\"rank\":0,\"step\":3}", &m), 0);
}

static void test_parse_invalid(void)
{
    static wire_msg m;
    const char *bad[] = {
        "",
        "null",
        "[1,2]",
        "{}",
        "{\"v\":1}",
        "{" HEAD
        ",\"kind\":\"train\",\"rank\":2,\"step\":1,\"loss_sum\":1,\"tokens\":1}", /* rank */
        "{" HEAD ",\"kind\":\"train\",\"rank\":-1,\"step\":1,\"loss_sum\":1,\"tokens\":1}",
        "{" HEAD ",\"kind\":\"train\",\"rank\":0.5,\"step\":1,\"loss_sum\":1,\"tokens\":1}",
        "{" HEAD ",\"kind\":\"train\",\"rank\":0,\"step\":1}", /* no sums */
        "{" HEAD ",\"kind\":\"train\",\"rank\":0,\"step\":1,\"loss_sum\":\"1\",\"tokens\":1}",
        "{" HEAD ",\"kind\":\"bogus\",\"rank\":0,\"step\":1}",
        "{" HEAD ",\"kind\":\"event\",\"rank\":0,\"step\":1}",                /* no event */
        "{" HEAD ",\"kind\":\"event\",\"rank\":0,\"step\":1,\"event\":\"\"}", /* empty */
        "{" HEAD ",\"kind\":\"eval\",\"rank\":0,\"step\":1,\"samples\":{}}",
        "{" HEAD ",\"kind\":\"eval\",\"rank\":0,\"step\":1,\"samples\":[1]}",
        "{" HEAD ",\"kind\":\"eval\",\"rank\":0,\"step\":1,\"samples\":[{\"src\":\"a\"}]}",
        "{\"v\":2,\"run\":\"r1\",\"world\":2,\"epoch\":1,\"time\":1,\"kind\":\"heartbeat\","
        "\"rank\":0,\"step\":1}",
        "{\"v\":1,\"run\":\"a b\",\"world\":2,\"epoch\":1,\"time\":1,\"kind\":\"heartbeat\","
        "\"rank\":0,\"step\":1}",
        "{\"v\":1,\"run\":\"\",\"world\":2,\"epoch\":1,\"time\":1,\"kind\":\"heartbeat\","
        "\"rank\":0,\"step\":1}",
        "{\"v\":1,\"run\":\"r\",\"world\":0,\"epoch\":1,\"time\":1,\"kind\":\"heartbeat\","
        "\"rank\":0,\"step\":1}",
        "{\"v\":1,\"run\":\"r\",\"world\":2,\"epoch\":1,\"kind\":\"heartbeat\",\"rank\":0,"
        "\"step\":1}", /* no time */
        "{\"v\":1,\"run\":\"r\",\"world\":2,\"epoch\":1,\"time\":-5,\"kind\":\"heartbeat\","
        "\"rank\":0,\"step\":1}",
        "{\"v\":1,\"run\":\"r\",\"world\":2,\"epoch\":1,\"time\":1e308,\"kind\":\"heartbeat\","
        "\"rank\":0,\"step\":1}", /* far past WIRE_MAX_TIME */
        "{\"v\":1,\"run\":\"r\",\"world\":2,\"epoch\":1,\"time\":10000000001,"
        "\"kind\":\"heartbeat\",\"rank\":0,\"step\":1}",
        "{" HEAD ",\"kind\":\"heartbeat\",\"rank\":0,\"step\":1e300}",
        "{" HEAD ",\"kind\":\"heartbeat\",\"rank\":0,\"step\":1} trailing", /* text after */
        "{" HEAD ",\"kind\":\"heartbeat\",\"rank\":0,\"step\":1}{}",
        "{\"v\":1,\"run\":\"r\",\"world\":5000,\"epoch\":1,\"time\":1,\"kind\":\"heartbeat\","
        "\"rank\":0,\"step\":1}", /* world beyond WIRE_MAX_WORLD */
    };
    int accepted = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = parse(bad[i], &m);
        if (rc == 0) fprintf(stderr, "accepted: %s\n", bad[i]);
        accepted += rc == 0;
    }
    CU_ASSERT_EQUAL(accepted, 0);
    /* a run id of 65 characters, a detail over the limit */
    char buf[8000];
    snprintf(buf, sizeof buf,
             "{\"v\":1,\"run\":\"%065d\",\"world\":1,\"epoch\":1,\"time\":1,\"kind\":\"heartbeat\","
             "\"rank\":0,\"step\":1}",
             0);
    CU_ASSERT_NOT_EQUAL(parse(buf, &m), 0);
    char detail[WIRE_TEXT_MAX + 2];
    memset(detail, 'x', sizeof detail - 1);
    detail[sizeof detail - 1] = '\0';
    snprintf(buf, sizeof buf,
             "{" HEAD
             ",\"kind\":\"event\",\"rank\":0,\"step\":1,\"event\":\"e\",\"detail\":\"%s\"}",
             detail);
    CU_ASSERT_NOT_EQUAL(parse(buf, &m), 0);
}

/* Random bytes and every truncation of valid messages: never accepted by
 * mistake (a truncated message is not valid JSON), never a crash (the ASan
 * pass runs this too). */
static void test_parse_fuzz(void)
{
    static wire_msg m;
    const char *good[] = {
        "{" HEAD ",\"kind\":\"train\",\"rank\":1,\"step\":10,\"loss_sum\":12.5,\"tokens\":5}",
        "{" HEAD ",\"kind\":\"eval\",\"rank\":0,\"step\":10,\"bleu\":3,\"samples\":[{\"src\":\"a\","
        "\"hyp\":\"b\",\"ref\":\"c\"}]}",
        "{" HEAD ",\"kind\":\"event\",\"rank\":0,\"step\":0,\"event\":\"end\",\"detail\":\"x\"}"};
    char err[200];
    int wrong = 0;
    for (size_t g = 0; g < 3; g++) {
        size_t n = strlen(good[g]);
        CU_ASSERT_EQUAL(wire_parse(good[g], n, &m, err, sizeof err), 0);
        for (size_t k = 0; k < n; k++) wrong += wire_parse(good[g], k, &m, err, sizeof err) == 0;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    char buf[512];
    int accepted = 0;
    for (uint64_t i = 0; i < 20000; i++) {
        size_t n = (size_t)rng_below(sizeof buf, 7, 1, i, 0, 0);
        for (size_t k = 0; k < n; k++) buf[k] = (char)rng_below(256, 7, 2, i, k, 0);
        /* half the time: a valid message with a few bytes changed */
        if (i % 2) {
            const char *s = good[i % 3];
            n = strlen(s);
            memcpy(buf, s, n);
            for (int q = 0; q < 3; q++)
                buf[rng_below(n, 7, 3, i, (uint64_t)q, 0)] =
                    (char)rng_below(256, 7, 4, i, (uint64_t)q, 0);
        }
        accepted += wire_parse(buf, n, &m, err, sizeof err) == 0;
    }
    /* some byte changes keep a message valid (a digit for a digit): fine;
     * what matters is that nothing crashed and most were refused */
    CU_ASSERT(accepted < 2000);
}

/* Another kind's fields, as seqpar 0.1 read them: numbers and detail are
 * checked for their type on every kind and kept; samples and event are
 * only an eval's and an event's, ignored elsewhere. */
static void test_parse_other_kinds(void)
{
    static wire_msg m;
    CU_ASSERT_EQUAL(parse("{" HEAD ",\"kind\":\"heartbeat\",\"rank\":0,\"step\":1,\"bleu\":3,"
                          "\"loss_sum\":-1,\"detail\":\"d\",\"samples\":{},\"event\":5}",
                          &m),
                    0);
    CU_ASSERT_DOUBLE_EQUAL(m.bleu, 3, 0);
    CU_ASSERT_DOUBLE_EQUAL(m.loss_sum, -1, 0);
    CU_ASSERT_STRING_EQUAL(m.detail, "d");
    CU_ASSERT_EQUAL(m.nsamples, 0);
    CU_ASSERT_STRING_EQUAL(m.event, "");
    CU_ASSERT_NOT_EQUAL(
        parse("{" HEAD ",\"kind\":\"heartbeat\",\"rank\":0,\"step\":1,\"bleu\":\"x\"}", &m), 0);
    CU_ASSERT_NOT_EQUAL(
        parse("{" HEAD ",\"kind\":\"eval\",\"rank\":0,\"step\":1,\"detail\":null}", &m), 0);
}

/* The header every kind carries, as the trainer fills it in. */
static void head(wire_msg *m, wire_kind kind)
{
    wire_msg_init(m, kind);
    snprintf(m->run, sizeof m->run, "r1");
    m->rank = 1, m->world = 2, m->step = 10, m->epoch = 1, m->time = 1000.5;
}

/* wire_encode(m), parsed back: the same message, byte for byte (both start
 * from wire_msg_init, so padding and unused bytes agree too). */
static char *round_trip(const wire_msg *m, wire_msg *back)
{
    char *s = wire_encode(m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char err[200] = "";
    const int rc = wire_parse(s, strlen(s), back, err, sizeof err);
    if (rc != 0) fprintf(stderr, "refused (%s): %.200s\n", err, s);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT(memcmp(m, back, sizeof *m) == 0);
    return s;
}

static void test_encode_train(void)
{
    static wire_msg m, back;
    head(&m, WIRE_TRAIN);
    m.loss_sum = 12.5, m.tokens = 5, m.lr = 0.005, m.tok_per_s = 1000; /* grad_norm NaN */
    m.nan_skips = 2;
    char *s = round_trip(&m, &back);
    /* the fields and their order as the trainer has always sent them, then
     * the skipped updates' count */
    CU_ASSERT_STRING_EQUAL(s, "{\"v\":1,\"run\":\"r1\",\"kind\":\"train\",\"rank\":1,\"world\":2,"
                              "\"step\":10,\"epoch\":1,\"time\":1000.5,\"loss_sum\":12.5,"
                              "\"tokens\":5,\"grad_norm\":null,\"lr\":0.005,\"tok_per_s\":1000,"
                              "\"nan_skips\":2}");
    CU_ASSERT_DOUBLE_EQUAL(back.nan_skips, 2, 0);
    CU_ASSERT(isnan(back.grad_norm));
    CU_ASSERT_DOUBLE_EQUAL(back.lr, 0.005, 0);
    free(s);
    /* numbers that need all 17 digits, and the largest step */
    m.loss_sum = 0.1 + 0.2, m.tokens = 1.0 / 3.0, m.grad_norm = 1e-300, m.lr = NAN;
    m.step = 9000000000000000L, m.time = 1733000000.123456;
    free(round_trip(&m, &back));
    CU_ASSERT(back.loss_sum == 0.1 + 0.2);
    CU_ASSERT_EQUAL(back.step, 9000000000000000L);
}

static void test_encode_eval(void)
{
    static wire_msg m, back;
    head(&m, WIRE_EVAL);
    m.rank = 0, m.val_loss = 1.5, m.val_ppl = 4.48; /* bleu NaN: an LM has none */
    const char *src[] = {"go .", "\"quoted\" \\ back\\slash", "tab\there"};
    const char *ref[] = {"va !", "c'est \xc3\xa9t\xc3\xa9 \xe2\x82\xac", "\xf0\x9f\x98\x80 end"};
    m.nsamples = 3;
    for (int i = 0; i < 3; i++) {
        snprintf(m.samples[i].src, sizeof m.samples[i].src, "%s", src[i]);
        snprintf(m.samples[i].hyp, sizeof m.samples[i].hyp, "hyp %d", i);
        snprintf(m.samples[i].ref, sizeof m.samples[i].ref, "%s", ref[i]);
    }
    char *s = round_trip(&m, &back);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"bleu\":null,\"samples\":[{\"src\":\"go .\""));
    CU_ASSERT_EQUAL(back.nsamples, 3);
    CU_ASSERT(isnan(back.bleu));
    CU_ASSERT_STRING_EQUAL(back.samples[1].src, src[1]);
    CU_ASSERT_STRING_EQUAL(back.samples[1].ref, ref[1]);
    free(s);
    /* no samples: an empty array; every sample of the longest texts */
    m.nsamples = 0;
    memset(m.samples, 0, sizeof m.samples);
    s = round_trip(&m, &back);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"samples\":[]"));
    free(s);
    m.nsamples = WIRE_MAX_SAMPLES;
    for (int i = 0; i < WIRE_MAX_SAMPLES; i++) {
        memset(m.samples[i].src, 'a' + i, WIRE_TEXT_MAX);
        memset(m.samples[i].hyp, 'b', WIRE_TEXT_MAX);
        memset(m.samples[i].ref, 'c', WIRE_TEXT_MAX);
    }
    free(round_trip(&m, &back));
    CU_ASSERT_EQUAL(back.nsamples, WIRE_MAX_SAMPLES);
}

static void test_encode_event(void)
{
    static wire_msg m, back;
    head(&m, WIRE_EVENT);
    snprintf(m.event, sizeof m.event, "checkpoint");
    snprintf(m.detail, sizeof m.detail,
             "{\"path\": \"ck/ckpt-1.h5\"}\n\xc3\xa9l\xc3\xa8ve \xe2\x80\x94 \x01 \\ /");
    char *s = round_trip(&m, &back);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(s, "\"time\":1000.5,\"event\":\"checkpoint\",\"detail\":\"{\\\""));
    CU_ASSERT_STRING_EQUAL(back.detail, m.detail);
    free(s);
    /* an empty detail is sent as such; the longest one fits */
    memset(m.detail, 0, sizeof m.detail);
    s = round_trip(&m, &back);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"detail\":\"\"}"));
    free(s);
    memset(m.detail, 'x', WIRE_TEXT_MAX);
    memset(m.event, 'e', WIRE_EVENT_MAX);
    free(round_trip(&m, &back));
}

static void test_encode_heartbeat(void)
{
    static wire_msg m, back;
    head(&m, WIRE_HEARTBEAT);
    m.loss_sum = 1, m.nsamples = 1; /* not a heartbeat's: not sent */
    char *s = wire_encode(&m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_STRING_EQUAL(s,
                           "{\"v\":1,\"run\":\"r1\",\"kind\":\"heartbeat\",\"rank\":1,\"world\":2,"
                           "\"step\":10,\"epoch\":1,\"time\":1000.5}");
    free(s);
    m.loss_sum = NAN, m.nsamples = 0;
    free(round_trip(&m, &back));
    /* not a message: an unknown kind, a text that does not end in its member */
    m.kind = (wire_kind)7;
    CU_ASSERT_PTR_NULL(wire_encode(&m));
    head(&m, WIRE_EVENT);
    memset(m.event, 'e', sizeof m.event);
    CU_ASSERT_PTR_NULL(wire_encode(&m));
}

static char *msg(char *buf, size_t n, const char *run, const char *kind, int rank, int world,
                 long step, const char *extra)
{
    snprintf(buf, n,
             "{\"v\":1,\"run\":\"%s\",\"kind\":\"%s\",\"rank\":%d,\"world\":%d,\"step\":%ld,"
             "\"epoch\":1,\"time\":%ld%s%s}",
             run, kind, rank, world, step, 1000 + step, extra[0] ? "," : "", extra);
    return buf;
}

static int add(collector *c, const char *s, double now)
{
    return collector_add(c, s, strlen(s), now, NULL, 0);
}

/* The learning rate of the train messages (the schedule's): the latest in
 * the run's summary, a column of its series; a run without it shows null
 * (messages of trainers before schedules). */
static void test_collector_lr(void)
{
    collector *c = collector_new();
    CU_ASSERT_FATAL(c != NULL);
    char b[1000];
    add(c, msg(b, sizeof b, "r1", "train", 0, 1, 10, "\"loss_sum\":5,\"tokens\":2"), 100);
    char *j = collector_runs_json(c, 100);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"lr\":null"));
    free(j);
    add(c, msg(b, sizeof b, "r1", "train", 0, 1, 20, "\"loss_sum\":5,\"tokens\":2,\"lr\":0.0025"),
        101);
    add(c, msg(b, sizeof b, "r1", "train", 0, 1, 30, "\"loss_sum\":5,\"tokens\":2,\"lr\":0.005"),
        102);
    j = collector_runs_json(c, 103);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"lr\":0.005"));
    free(j);
    j = collector_run_json(c, "r1", 103);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"lr\":[null,0.0025,0.005]"));
    if (!strstr(j, "\"lr\":[null,0.0025,0.005]")) fprintf(stderr, "\n%s\n", j);
    free(j);
    collector_free(c);
}

/* A "stopped" event (a signal, resumable) shows the run as stopped at once,
 * before the other ranks have said anything; skipped updates are counted. */
static void test_collector_stopped(void)
{
    collector *c = collector_new();
    CU_ASSERT_FATAL(c != NULL);
    char b[1000];
    add(c, msg(b, sizeof b, "s1", "event", 0, 2, 0, "\"event\":\"start\",\"detail\":\"x\""), 100);
    add(c, msg(b, sizeof b, "s1", "train", 0, 2, 10, "\"loss_sum\":5,\"tokens\":2,\"nan_skips\":3"),
        101);
    add(c, msg(b, sizeof b, "s1", "train", 1, 2, 10, "\"loss_sum\":5,\"tokens\":2,\"nan_skips\":3"),
        101);
    char *j = collector_runs_json(c, 102);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"state\":\"running\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"nan_skips\":3"));
    free(j);
    char *m = collector_metrics(c, 102);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(m, "# TYPE seqpar_nan_skips_total counter\nseqpar_nan_skips_total{run=\"s1\"} 3\n"));
    free(m);
    CU_ASSERT_EQUAL(add(c, msg(b, sizeof b, "s1", "event", 0, 2, 11, "\"event\":\"stopped\""), 103),
                    0);
    j = collector_runs_json(c, 103);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"state\":\"stopped\""));
    free(j);
    /* a negative count is no count */
    CU_ASSERT_NOT_EQUAL(add(c,
                            msg(b, sizeof b, "s1", "train", 1, 2, 12,
                                "\"loss_sum\":5,\"tokens\":2,\"nan_skips\":-1"),
                            104),
                        0);
    /* the next start of the run (a resume) runs again */
    add(c, msg(b, sizeof b, "s1", "event", 0, 2, 11, "\"event\":\"start\",\"detail\":\"x\""), 105);
    j = collector_runs_json(c, 105);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"state\":\"running\""));
    free(j);
    collector_free(c);
}

/* The timeline (issue 23): a train message's seconds by phase round-trip,
 * are summed per rank into /metrics counters, and a rank computing well
 * above the others' median for COLLECTOR_STRAGGLER_WINDOWS complete windows
 * in a row is a straggler; a window within the rule resets it. */
static void timeline_window(collector *c, long step, const double *compute)
{
    char b[1000], extra[300];
    for (int r = 0; r < 3; r++) {
        snprintf(extra, sizeof extra,
                 "\"loss_sum\":1,\"tokens\":1,\"compute_s\":%g,\"wait_s\":%g,\"data_s\":0.01,"
                 "\"eval_s\":0,\"checkpoint_s\":null",
                 compute[r], 1.0 - compute[r]);
        CU_ASSERT_EQUAL(add(c, msg(b, sizeof b, "t", "train", r, 3, step, extra), 100 + step), 0);
    }
}

static int is_straggler(collector *c, int rank)
{
    char *j = collector_run_json(c, "t", 200), key[64];
    snprintf(key, sizeof key, "{\"rank\":%d,", rank);
    const char *at = j ? strstr(j, key) : NULL;
    const char *st = at ? strstr(at, "\"straggler\":true") : NULL;
    /* within this rank's object: before the next rank's */
    const char *next = at ? strstr(at + 1, "{\"rank\":") : NULL;
    const int yes = st && (!next || st < next);
    free(j);
    return yes;
}

static void test_collector_timeline(void)
{
    static wire_msg m, back;
    /* phases round-trip; a message without them is an older trainer's */
    wire_msg_init(&m, WIRE_TRAIN);
    snprintf(m.run, sizeof m.run, "t");
    m.world = 1, m.loss_sum = 1, m.tokens = 1, m.time = 5;
    const double ph[WIRE_PHASES] = {1.5, 0.25, 0.125, 0, 2};
    wire_msg_set_phases(&m, ph);
    char *s = wire_encode(&m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\"compute_s\":1.5,\"wait_s\":0.25,\"data_s\":0.125,"
                                     "\"eval_s\":0,\"checkpoint_s\":2"));
    char err[200];
    CU_ASSERT_EQUAL(wire_parse(s, strlen(s), &back, err, sizeof err), 0);
    double got[WIRE_PHASES];
    wire_msg_phases(&back, got);
    CU_ASSERT(memcmp(got, ph, sizeof ph) == 0);
    free(s);
    CU_ASSERT_NOT_EQUAL(parse("{" HEAD ",\"kind\":\"train\",\"rank\":0,\"step\":1,\"loss_sum\":1,"
                              "\"tokens\":1,\"wait_s\":-0.5}",
                              &m),
                        0);
    CU_ASSERT_NOT_EQUAL(parse("{" HEAD ",\"kind\":\"train\",\"rank\":0,\"step\":1,\"loss_sum\":1,"
                              "\"tokens\":1,\"compute_s\":\"1\"}",
                              &m),
                        0);

    collector *c = collector_new();
    CU_ASSERT_FATAL(c != NULL);
    /* rank 2 slow for two windows, then a window within the rule (1.4 x the
     * median), then three slow windows; rank 0 slower than 1 by 0.04 s only */
    const double slow[3] = {0.24, 0.2, 1.0}, near[3] = {0.24, 0.2, 0.3};
    timeline_window(c, 10, slow);
    timeline_window(c, 20, slow);
    CU_ASSERT(!is_straggler(c, 2)); /* two windows: not yet */
    timeline_window(c, 30, near);
    timeline_window(c, 40, slow);
    timeline_window(c, 50, slow);
    CU_ASSERT(!is_straggler(c, 2)); /* the third window reset the count */
    timeline_window(c, 60, slow);
    CU_ASSERT(is_straggler(c, 2));
    /* a short window (a run's last, of one step): 5 x the median, but by
     * 0.04 s only: too short to tell, the straggler stays one */
    const double brief[3] = {0.01, 0.01, 0.05};
    timeline_window(c, 61, brief);
    CU_ASSERT(is_straggler(c, 2));
    CU_ASSERT(!is_straggler(c, 0));
    CU_ASSERT(!is_straggler(c, 1));
    char *j = collector_runs_json(c, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"stragglers\":[2]"));
    free(j);
    /* counters: rank 2 computed 1.0 s in five windows, 0.3 s and 0.05 s */
    char *p = collector_metrics(c, 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(p, "# TYPE seqpar_rank_seconds_total counter\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(p, "seqpar_rank_seconds_total{run=\"t\",rank=\"2\",phase=\"compute\"} 5.350000\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(p, "seqpar_rank_seconds_total{run=\"t\",rank=\"0\",phase=\"data\"} 0.070000\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(p, "seqpar_rank_straggler{run=\"t\",rank=\"2\"} 1\n"));
    free(p);
    /* the timeline keeps the six windows, rank 2's compute last */
    j = collector_run_json(c, "t", 200);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"step\":[10,20,30,40,50,60,61]"));
    free(j);
    /* a run of trainers without phases: no counters for it */
    char b[1000];
    add(c, msg(b, sizeof b, "old", "train", 0, 1, 10, "\"loss_sum\":1,\"tokens\":1"), 300);
    p = collector_metrics(c, 300);
    CU_ASSERT_PTR_NULL(strstr(p, "seqpar_rank_seconds_total{run=\"old\""));
    CU_ASSERT_PTR_NULL(strstr(p, "seqpar_rank_straggler{run=\"old\""));
    free(p);
    collector_free(c);
}

static void test_collector(void)
{
    collector *c = collector_new();
    CU_ASSERT_FATAL(c != NULL);
    char b[1000];
    /* step 10: rank 0 then rank 1; the point exists only once both reported */
    CU_ASSERT_EQUAL(add(c,
                        msg(b, sizeof b, "r1", "event", 0, 2, 0,
                            "\"event\":\"start\","
                            "\"detail\":\"cfg\""),
                        100),
                    0);
    add(c,
        msg(b, sizeof b, "r1", "train", 0, 2, 10,
            "\"loss_sum\":30,\"tokens\":10,\"tok_per_s\":100,\"grad_norm\":0.5"),
        101);
    char *j = collector_run_json(c, "r1", 101);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"train\":{\"step\":[]"));
    free(j);
    add(c,
        msg(b, sizeof b, "r1", "train", 1, 2, 10,
            "\"loss_sum\":10,\"tokens\":30,\"tok_per_s\":300,\"grad_norm\":0.5"),
        101);
    /* a duplicate of rank 1's message changes nothing */
    add(c,
        msg(b, sizeof b, "r1", "train", 1, 2, 10,
            "\"loss_sum\":999,\"tokens\":1,\"tok_per_s\":1,\"grad_norm\":9"),
        101);
    j = collector_run_json(c, "r1", 101.5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    /* loss = (30 + 10) / (10 + 30) = 1, tokens/s = 400 */
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"train\":{\"step\":[10],\"loss\":[1],\"ppl\":[2.7182818"));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"tok_per_s\":[400]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"config\":\"cfg\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"state\":\"running\""));
    free(j);
    add(c,
        msg(b, sizeof b, "r1", "eval", 0, 2, 10,
            "\"val_loss\":2,\"val_ppl\":7.39,\"bleu\":12.5,\"samples\":[{\"src\":\"go .\","
            "\"hyp\":\"va !\",\"ref\":\"va !\"}]"),
        102);
    /* rank 1 goes quiet: late after 10 s, lost after 60 s */
    add(c, msg(b, sizeof b, "r1", "heartbeat", 0, 2, 11, ""), 150);
    j = collector_run_json(c, "r1", 150);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "{\"rank\":1,\"step\":10,\"tok_per_s\":300,\"last_seen\":101,"
                                     "\"state\":\"late\",\"straggler\":false,\"slow_windows\":0}"));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"bleu\":[12.5]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"samples\":[{\"src\":\"go .\",\"hyp\":\"va !\""));
    free(j);
    j = collector_run_json(c, "r1", 170);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"rank\":1,\"step\":10,\"tok_per_s\":300,\"last_seen\":101,"
                                     "\"state\":\"lost\""));
    free(j);
    /* both end: done */
    add(c, msg(b, sizeof b, "r1", "event", 0, 2, 20, "\"event\":\"end\""), 171);
    add(c, msg(b, sizeof b, "r1", "event", 1, 2, 20, "\"event\":\"end\""), 171);
    j = collector_runs_json(c, 172);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"state\":\"done\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"bleu\":12.5"));
    free(j);
    /* a second run; an error stops it */
    add(c, msg(b, sizeof b, "r2", "event", 0, 1, 5, "\"event\":\"error\",\"detail\":\"x\""), 180);
    j = collector_runs_json(c, 180);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"id\":\"r2\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"state\":\"stopped\""));
    free(j);
    CU_ASSERT_PTR_NULL(collector_run_json(c, "nope", 180));
    /* malformed and oversized messages are counted, not kept */
    CU_ASSERT_NOT_EQUAL(add(c, "{not json", 181), 0);
    char *big = malloc(WIRE_MAX_MSG + 10);
    CU_ASSERT_FATAL(big != NULL);
    memset(big, ' ', WIRE_MAX_MSG + 9);
    big[WIRE_MAX_MSG + 9] = '\0';
    char why[200] = "";
    CU_ASSERT_NOT_EQUAL(collector_add(c, big, WIRE_MAX_MSG + 9, 181, why, sizeof why), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "65545 bytes, over the 65536-byte limit"));
    free(big);
    long ok, mal, over;
    collector_counts(c, &ok, &mal, &over);
    CU_ASSERT_EQUAL(ok, 9); /* the duplicate counts as received */
    CU_ASSERT_EQUAL(mal, 1);
    CU_ASSERT_EQUAL(over, 1);
    /* Prometheus text */
    char *t = collector_metrics(c, 181);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "# TYPE seqpar_loss gauge\nseqpar_loss{run=\"r1\"} 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "seqpar_bleu_ratio{run=\"r1\"} 0.125\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "# TYPE seqpar_tokens_total counter\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "seqpar_steps_total{run=\"r1\"} "));
    /* both ranks of r1 have ended */
    CU_ASSERT_PTR_NOT_NULL(
        strstr(t, "seqpar_rank_state{run=\"r1\",rank=\"1\",state=\"done\"} 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "seqpar_rank_state{run=\"r1\",rank=\"1\",state=\"ok\"} 0\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(t, "seqpar_rank_last_message_timestamp_seconds{run=\"r1\",rank=\"1\"} "));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "seqpar_build_info{version=\"" SEQPAR_VERSION "\"} 1\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "seqpar_tokens_per_second{run=\"r1\"} 400\n"));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(t, "seqpar_rank_last_seen_seconds{run=\"r1\",rank=\"1\"} 10.000"));
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "seqpar_monitor_messages_total{outcome=\"malformed\"} 1\n"));
    free(t);
    /* waiting for a change: the version moved past 0 */
    char run[WIRE_RUN_MAX + 1];
    CU_ASSERT(collector_wait(c, 0, 0, run) > 0);
    CU_ASSERT_STRING_EQUAL(run, "r2");
    collector_free(c);
}

/* Restoring from a log uses the messages' own times (now < 0). */
/* TCP ports 1..65535 (and * to bind); other transports are ZeroMQ's to judge */
static void test_endpoints(void)
{
    char err[200];
    CU_ASSERT(wire_endpoint_ok("tcp://127.0.0.1:5555", 0, err, sizeof err));
    CU_ASSERT(wire_endpoint_ok("tcp://127.0.0.1:65535", 0, err, sizeof err));
    CU_ASSERT(wire_endpoint_ok("tcp://*:1", 1, err, sizeof err));
    CU_ASSERT(wire_endpoint_ok("tcp://127.0.0.1:*", 1, err, sizeof err));
    CU_ASSERT(!wire_endpoint_ok("tcp://127.0.0.1:*", 0, err, sizeof err));
    CU_ASSERT(wire_endpoint_ok("ipc:///tmp/x", 0, err, sizeof err));
    const char *bad[] = {"tcp://127.0.0.1:65536", "tcp://127.0.0.1:99999",  "tcp://127.0.0.1:0",
                         "tcp://127.0.0.1:",      "tcp://127.0.0.1",        "tcp://127.0.0.1:55x",
                         "tcp://127.0.0.1:-1",    "tcp://127.0.0.1:1000000"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        CU_ASSERT(!wire_endpoint_ok(bad[i], 1, err, sizeof err));
        CU_ASSERT(strstr(err, bad[i]) != NULL);
    }
    /* hosts: addresses, names that resolve, * and interfaces to bind */
    const char *good_hosts[] = {"tcp://localhost:5", "tcp://[::1]:5", "tcp://10.1.2.3:5",
                                "tcp://127.0.0.1;127.0.0.2:5"};
    for (size_t i = 0; i < sizeof good_hosts / sizeof *good_hosts; i++)
        CU_ASSERT(wire_endpoint_ok(good_hosts[i], 0, err, sizeof err));
    CU_ASSERT(wire_endpoint_ok("tcp://lo:5", 1, err, sizeof err));
    const char *bad_hosts[] = {"tcp://256.1.1.1:5",
                               "tcp://1.2.3:5",
                               "tcp://[::zz]:5",
                               "tcp://:5",
                               "tcp://*:5",
                               "tcp://lo:5",
                               "tcp://no-such-host.invalid:5"};
    for (size_t i = 0; i < sizeof bad_hosts / sizeof *bad_hosts; i++) {
        err[0] = '\0';
        CU_ASSERT(!wire_endpoint_ok(bad_hosts[i], 0, err, sizeof err));
        CU_ASSERT(strstr(err, "is not an address or a name that resolves") != NULL);
        if (!strstr(err, "not an address")) fprintf(stderr, "\n  %s: '%s'\n", bad_hosts[i], err);
    }
}

/* CURVE keys: generated once (never overwritten), read back, refused when
 * damaged; a publisher with a bad key file does not open. */
static void test_keys(void)
{
    char dir[] = "/tmp/seqpar-keys-XXXXXX", err[300], a[WIRE_KEY_LEN + 1], b[WIRE_KEY_LEN + 1];
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
    char sub[64], mon[128], tr[128];
    snprintf(sub, sizeof sub, "%s/k", dir);
    snprintf(mon, sizeof mon, "%s/monitor.key", sub);
    snprintf(tr, sizeof tr, "%s/trainer.key", sub);
    CU_ASSERT_EQUAL(wire_keys_generate(sub, err, sizeof err), 0);
    CU_ASSERT_EQUAL(wire_keys_read(mon, a, b, err, sizeof err), 0);
    CU_ASSERT_EQUAL(strlen(a), WIRE_KEY_LEN);
    CU_ASSERT_EQUAL(wire_keys_read(tr, a, b, err, sizeof err), 0);
    struct stat st;
    CU_ASSERT(stat(tr, &st) == 0 && (st.st_mode & 0777) == 0600);
    CU_ASSERT_EQUAL(wire_keys_generate(sub, err, sizeof err), -1); /* never overwritten */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "never overwritten"));
    FILE *f = fopen(tr, "w");
    fputs("not a key\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(wire_keys_read(tr, a, b, err, sizeof err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "not a key file"));
    wire_pub *p = NULL;
    CU_ASSERT_EQUAL(wire_pub_open(&p, "tcp://127.0.0.1:5", tr, err, sizeof err), -1);
    CU_ASSERT_PTR_NULL(p);
    unlink(tr), unlink(mon), rmdir(sub), rmdir(dir);
}

static void test_restore_times(void)
{
    collector *c = collector_new();
    char b[500];
    add(c, msg(b, sizeof b, "r", "heartbeat", 0, 1, 7, ""), -1.0); /* time 1007 */
    char *j = collector_run_json(c, "r", 1010);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"last_seen\":1007"));
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"state\":\"ok\""));
    free(j);
    collector_free(c);
    /* a logged time ahead of the clock (damaged, or another host's skew) is
     * taken as now: the run ages from there instead of staying "ok" */
    c = collector_new();
    add(c,
        "{\"v\":1,\"run\":\"f\",\"kind\":\"heartbeat\",\"rank\":0,\"world\":1,"
        "\"step\":1,\"epoch\":1,\"time\":9999999999}",
        -1.0);
    /* and an event's own time (it showed the year 2286) */
    add(c,
        "{\"v\":1,\"run\":\"f\",\"kind\":\"event\",\"rank\":0,\"world\":1,"
        "\"step\":1,\"epoch\":1,\"time\":9999999998,\"event\":\"start\"}",
        -1.0);
    const double later = wire_time() + 2 * COLLECTOR_LOST_S;
    j = collector_run_json(c, "f", later);
    CU_ASSERT_PTR_NOT_NULL(strstr(j, "\"event\":\"start\""));
    CU_ASSERT_PTR_NULL(strstr(j, "9999999999"));
    CU_ASSERT_PTR_NULL(strstr(j, "9999999998"));
    CU_ASSERT_PTR_NULL(strstr(j, "\"state\":\"ok\""));
    free(j);
    collector_free(c);
}

/* The log: a message after a partial line (a full disk, a crash) starts a
 * fresh line, so a restore loses only the partial one; a write the file
 * system refuses is counted; a device is not read back (reading /dev/full
 * never ends). */
static void test_msglog(void)
{
    char path[] = "/tmp/seqpar-test-log.XXXXXX", b[500], err[300];
    const int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    msg(b, sizeof b, "before", "heartbeat", 0, 1, 1, "");
    CU_ASSERT(write(fd, b, strlen(b)) == (ssize_t)strlen(b));
    CU_ASSERT(write(fd, "\n{\"v\":1,\"ru", 11) == 11);
    close(fd);
    long restored, damaged;
    collector *c = collector_new();
    msglog *l = msglog_open(path, c, &restored, &damaged, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(restored, 1);
    CU_ASSERT_EQUAL(damaged, 1);
    msg(b, sizeof b, "after", "heartbeat", 0, 1, 2, "");
    CU_ASSERT_EQUAL(msglog_append(l, b, strlen(b)), 0);
    CU_ASSERT_EQUAL(msglog_unlogged(l), 0);
    msglog_close(l);
    collector_free(c);
    c = collector_new();
    l = msglog_open(path, c, &restored, &damaged, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(restored, 2);
    CU_ASSERT_EQUAL(damaged, 1);
    char *j = collector_run_json(c, "after", 1010);
    CU_ASSERT_PTR_NOT_NULL(j);
    free(j);
    msglog_close(l);
    collector_free(c);
    unlink(path);

    c = collector_new();
    l = msglog_open("/dev/full", c, &restored, &damaged, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    CU_ASSERT_EQUAL(restored, 0);
    CU_ASSERT_EQUAL(msglog_append(l, b, strlen(b)), -1);
    CU_ASSERT_EQUAL(msglog_append(l, b, strlen(b)), -1);
    CU_ASSERT_EQUAL(msglog_unlogged(l), 2);
    msglog_close(l);
    CU_ASSERT_PTR_NULL(
        msglog_open("/nonexistent-dir/log.jsonl", c, &restored, &damaged, err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot append"));
    collector_free(c);
}

/* A socket pair as the guard's connection and its client; 1 when the
 * client sees its connection closed (end of file), 0 while it is open. */
static void pair(int sv[2])
{
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
}

static int closed(const int sv[2])
{
    char ch;
    return recv(sv[1], &ch, 1, MSG_DONTWAIT) == 0;
}

/* The HTTP guard: at a limit the oldest connection waiting for a request
 * makes room (never one serving a request or a stream; none waiting: the
 * new one is refused), and a request that has not arrived within the
 * deadline closes its connection. */
/* --http HOST:PORT: IPv4, [IPv6], names through getaddrinfo; bad specs
 * refused with the reason. */
static void test_http_addr(void)
{
    http_addr a[HTTP_ADDR_MAX];
    char err[300];
    CU_ASSERT_EQUAL(http_addr_resolve("127.0.0.1:8080", a, HTTP_ADDR_MAX, err, sizeof err), 1);
    CU_ASSERT_EQUAL(a[0].family, AF_INET);
    CU_ASSERT_EQUAL(http_addr_port(&a[0]), 8080);
    CU_ASSERT_EQUAL(http_addr_resolve("[::1]:0", a, HTTP_ADDR_MAX, err, sizeof err), 1);
    CU_ASSERT_EQUAL(a[0].family, AF_INET6);
    CU_ASSERT_EQUAL(http_addr_port(&a[0]), 0);
    const int n = http_addr_resolve("localhost:65535", a, HTTP_ADDR_MAX, err, sizeof err);
    CU_ASSERT(n >= 1);
    for (int i = 0; i < n; i++) CU_ASSERT_EQUAL(http_addr_port(&a[i]), 65535);
    const char *bad[] = {
        "8080",       ":8080",        "::1:8080",        "[::1:8080",     "[]:8080",
        "127.0.0.1:", "127.0.0.1:-1", "127.0.0.1:65536", "127.0.0.1:80x", "nosuch.invalid:80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        err[0] = '\0';
        CU_ASSERT_EQUAL(http_addr_resolve(bad[i], a, HTTP_ADDR_MAX, err, sizeof err), -1);
        CU_ASSERT(err[0] != '\0');
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot resolve 'nosuch.invalid'"));
}

static void test_http_guard(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET}, b = a;
    a.sin_addr.s_addr = htonl(0x7f000001), b.sin_addr.s_addr = htonl(0x0a000001);
    const struct sockaddr *A = (const struct sockaddr *)&a, *B = (const struct sockaddr *)&b;
    guard *g = guard_new(2, 3, 5.0); /* 2 an address, 3 in all, 5 s for a request */
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    int s1[2], s2[2], s3[2], s4[2], s5[2];
    pair(s1), pair(s2), pair(s3), pair(s4), pair(s5);
    CU_ASSERT(guard_admit(g, A));
    guard_conn *c1 = guard_opened(g, s1[0], A, 0);
    CU_ASSERT(guard_admit(g, A));
    guard_conn *c2 = guard_opened(g, s2[0], A, 1);
    guard_set(g, c1, GUARD_BUSY, 1.5);
    /* A at its limit: c2, waiting, makes room; c1 is answering */
    CU_ASSERT(guard_admit(g, A));
    CU_ASSERT(closed(s2));
    CU_ASSERT(!closed(s1));
    guard_closed(g, c2);
    guard_conn *c3 = guard_opened(g, s3[0], A, 2);
    guard_set(g, c3, GUARD_STREAM, 2);
    CU_ASSERT(!guard_admit(g, A)); /* nothing of A's waits */
    /* B: room for one in all, then its own waiting one makes room */
    CU_ASSERT(guard_admit(g, B));
    guard_conn *c4 = guard_opened(g, s4[0], B, 3);
    CU_ASSERT(guard_admit(g, B));
    CU_ASSERT(closed(s4));
    guard_closed(g, c4);
    guard_conn *c5 = guard_opened(g, s5[0], B, 3);
    /* the deadline: waiting since 3, closed after 8; never the stream */
    CU_ASSERT_EQUAL(guard_sweep(g, 7.9), 0);
    CU_ASSERT_EQUAL(guard_sweep(g, 8.1), 1);
    CU_ASSERT(closed(s5));
    CU_ASSERT(!closed(s1) && !closed(s3));
    CU_ASSERT_EQUAL(guard_sweep(g, 100), 0); /* c5 is closing; c1, c3 are not waiting */
    /* a response sent: c1 waits for its next request, from then */
    guard_set(g, c1, GUARD_WAITING, 100);
    CU_ASSERT_EQUAL(guard_sweep(g, 104), 0);
    CU_ASSERT_EQUAL(guard_sweep(g, 106), 1);
    long late, room;
    guard_counts(g, &late, &room);
    CU_ASSERT_EQUAL(late, 2);
    CU_ASSERT_EQUAL(room, 2);
    guard_closed(g, c1), guard_closed(g, c3), guard_closed(g, c5);
    guard_free(g);
    const int *all[] = {s1, s2, s3, s4, s5};
    for (int i = 0; i < 5; i++) close(all[i][0]), close(all[i][1]);
}

/* IPv6 clients (--http [::]:PORT) each have their own limit; an IPv4
 * client mapped into IPv6 counts as its IPv4 address (they all shared one
 * key, so one IPv6 client's connections made room among every other's). */
static void test_http_guard_ipv6(void)
{
    struct sockaddr_in6 x = {.sin6_family = AF_INET6}, y = x, m = x;
    x.sin6_addr.s6_addr[15] = 1, y.sin6_addr.s6_addr[15] = 2;
    m.sin6_addr.s6_addr[10] = m.sin6_addr.s6_addr[11] = 0xff; /* ::ffff:10.0.0.1 */
    m.sin6_addr.s6_addr[12] = 10, m.sin6_addr.s6_addr[15] = 1;
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    v4.sin_addr.s_addr = htonl(0x0a000001);
    const struct sockaddr *X = (const struct sockaddr *)&x, *Y = (const struct sockaddr *)&y,
                          *M = (const struct sockaddr *)&m, *V4 = (const struct sockaddr *)&v4;
    guard *g = guard_new(1, 10, 5.0); /* 1 an address */
    CU_ASSERT_PTR_NOT_NULL_FATAL(g);
    int sx[2], sy[2], sm[2];
    pair(sx), pair(sy), pair(sm);
    CU_ASSERT(guard_admit(g, X));
    guard_conn *cx = guard_opened(g, sx[0], X, 0);
    CU_ASSERT(guard_admit(g, Y)); /* another address: X's connection stays */
    CU_ASSERT(!closed(sx));
    guard_conn *cy = guard_opened(g, sy[0], Y, 0);
    CU_ASSERT(guard_admit(g, M));
    guard_conn *cm = guard_opened(g, sm[0], M, 0);
    CU_ASSERT(guard_admit(g, V4)); /* 10.0.0.1 is ::ffff:10.0.0.1: at its limit, room made */
    CU_ASSERT(closed(sm));
    CU_ASSERT(!closed(sx) && !closed(sy));
    guard_closed(g, cx), guard_closed(g, cy), guard_closed(g, cm);
    guard_free(g);
    const int *all[] = {sx, sy, sm};
    for (int i = 0; i < 3; i++) close(all[i][0]), close(all[i][1]);
}

void register_suites(void)
{
    CU_pSuite s = CU_add_suite("wire", NULL, NULL);
    CU_add_test(s, "parse: every kind", test_parse_valid);
    CU_add_test(s, "parse: invalid messages refused", test_parse_invalid);
    CU_add_test(s, "parse: random bytes and truncations", test_parse_fuzz);
    CU_add_test(s, "parse: other kinds' fields", test_parse_other_kinds);
    CU_add_test(s, "encode: train parses back (NaN as null)", test_encode_train);
    CU_add_test(s, "encode: eval parses back (samples, quotes, UTF-8)", test_encode_eval);
    CU_add_test(s, "encode: event parses back (detail escaped)", test_encode_event);
    CU_add_test(s, "encode: heartbeat, and what is not a message", test_encode_heartbeat);
    CU_add_test(s, "collector: aggregation, rank states, renderings", test_collector);
    CU_add_test(s, "collector: restored messages keep their times", test_restore_times);
    CU_add_test(s, "collector: a stopped run, skipped updates", test_collector_stopped);
    CU_add_test(s, "collector: the learning rate", test_collector_lr);
    CU_add_test(s, "collector: seconds by phase, stragglers", test_collector_timeline);
    CU_add_test(s, "endpoints: TCP ports in range", test_endpoints);
    CU_add_test(s, "CURVE keys", test_keys);
    CU_add_test(s, "log: a fresh line after a partial one, write errors counted", test_msglog);
    CU_add_test(s, "HTTP guard: room made at the limits, a deadline for requests", test_http_guard);
    CU_add_test(s, "--http: IPv4, [IPv6], host names, bad specs", test_http_addr);
    CU_add_test(s, "HTTP guard: IPv6 clients apart, IPv4-mapped ones as IPv4",
                test_http_guard_ipv6);
}

/* The metrics wire's messages: the parser (and validator) of what the
 * trainers send. */
#include "wire.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int bad(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

/* A whole number in [lo, hi] under key k (required). */
static int get_int(const cJSON *j, const char *k, double lo, double hi, long *out, char *err,
                   size_t n)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    if (!cJSON_IsNumber(x)) return bad(err, n, "\"%s\" missing or not a number", k);
    double v = x->valuedouble;
    if (!(v >= lo && v <= hi) || v != floor(v))
        return bad(err, n, "\"%s\" must be a whole number in %.0f..%.0f", k, lo, hi);
    *out = (long)v;
    return 0;
}

/* An optional finite number (absent or null: NaN). */
static int get_num(const cJSON *j, const char *k, double *out, char *err, size_t n)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    *out = NAN;
    if (!x || cJSON_IsNull(x)) return 0;
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return bad(err, n, "\"%s\" must be a finite number or null", k);
    *out = x->valuedouble;
    return 0;
}

/* An optional string of at most max bytes into out[max + 1]. */
static int get_str(const cJSON *j, const char *k, char *out, size_t max, int required, char *err,
                   size_t n)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k);
    out[0] = '\0';
    if (!x && !required) return 0;
    if (!cJSON_IsString(x) || !x->valuestring) return bad(err, n, "\"%s\" must be a string", k);
    size_t len = strlen(x->valuestring);
    if (len > max) return bad(err, n, "\"%s\" is longer than %zu bytes", k, max);
    memcpy(out, x->valuestring, len + 1);
    return 0;
}

int wire_run_id_ok(const char *s)
{
    const size_t n = strlen(s);
    return n >= 1 && n <= WIRE_RUN_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

void wire_add_samples(cJSON *o, const wire_sample *s, int n)
{
    cJSON *a = cJSON_AddArrayToObject(o, "samples");
    for (int i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "src", s[i].src);
        cJSON_AddStringToObject(x, "hyp", s[i].hyp);
        cJSON_AddStringToObject(x, "ref", s[i].ref);
        cJSON_AddItemToArray(a, x);
    }
}

int wire_parse(const char *buf, size_t len, wire_msg *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    if (len > WIRE_MAX_MSG) return bad(err, errlen, "message of %zu bytes", len);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) return bad(err, errlen, "not JSON");
    /* nothing but white space may follow the object */
    while (end && end < buf + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    if (!end || end != buf + len) {
        cJSON_Delete(j);
        return bad(err, errlen, "text after the JSON value");
    }
    int rc = -1;
    long v = 0, rank = 0, world = 0, step = 0, epoch = 0;
    char kind[16];
    if (!cJSON_IsObject(j)) {
        bad(err, errlen, "not a JSON object");
        goto out;
    }
    if (get_int(j, "v", 1, 1000, &v, err, errlen)) goto out;
    if (v != WIRE_VERSION) {
        bad(err, errlen, "wire version %ld (this monitor reads %d)", v, WIRE_VERSION);
        goto out;
    }
    if (get_str(j, "run", m->run, WIRE_RUN_MAX, 1, err, errlen)) goto out;
    if (!wire_run_id_ok(m->run)) {
        bad(err, errlen, "\"run\" must be 1..%d of [A-Za-z0-9._:-]", WIRE_RUN_MAX);
        goto out;
    }
    if (get_str(j, "kind", kind, sizeof kind - 1, 1, err, errlen)) goto out;
    static const char *const kinds[] = {"train", "eval", "event", "heartbeat"};
    int k = 0;
    while (k < 4 && strcmp(kind, kinds[k]) != 0) k++;
    if (k == 4) {
        bad(err, errlen, "unknown \"kind\" '%s'", kind);
        goto out;
    }
    m->kind = (wire_kind)k;
    if (get_int(j, "world", 1, WIRE_MAX_WORLD, &world, err, errlen) ||
        get_int(j, "rank", 0, (double)world - 1, &rank, err, errlen) ||
        get_int(j, "step", 0, 9e15, &step, err, errlen) ||
        get_int(j, "epoch", 0, 9e15, &epoch, err, errlen) ||
        get_num(j, "time", &m->time, err, errlen))
        goto out;
    if (!(m->time >= 0 && m->time <= WIRE_MAX_TIME)) {
        bad(err, errlen, "\"time\" missing, negative or past %.0f (Unix seconds)", WIRE_MAX_TIME);
        goto out;
    }
    m->v = (int)v, m->rank = (int)rank, m->world = (int)world, m->step = step, m->epoch = epoch;
    if (get_num(j, "loss_sum", &m->loss_sum, err, errlen) ||
        get_num(j, "tokens", &m->tokens, err, errlen) ||
        get_num(j, "grad_norm", &m->grad_norm, err, errlen) ||
        get_num(j, "lr", &m->lr, err, errlen) ||
        get_num(j, "tok_per_s", &m->tok_per_s, err, errlen) ||
        get_num(j, "val_loss", &m->val_loss, err, errlen) ||
        get_num(j, "val_ppl", &m->val_ppl, err, errlen) ||
        get_num(j, "bleu", &m->bleu, err, errlen))
        goto out;
    if (m->kind == WIRE_TRAIN && (!(m->loss_sum >= 0) || !(m->tokens >= 0))) {
        bad(err, errlen, "a train message needs \"loss_sum\" and \"tokens\" >= 0");
        goto out;
    }
    if (m->kind == WIRE_EVAL) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "samples");
        if (s && !cJSON_IsNull(s)) {
            if (!cJSON_IsArray(s) || cJSON_GetArraySize(s) > WIRE_MAX_SAMPLES) {
                bad(err, errlen, "\"samples\" must be an array of at most %d", WIRE_MAX_SAMPLES);
                goto out;
            }
            const cJSON *e;
            cJSON_ArrayForEach(e, s)
            {
                wire_sample *w = &m->samples[m->nsamples++];
                if (!cJSON_IsObject(e) ||
                    get_str(e, "src", w->src, WIRE_TEXT_MAX, 1, err, errlen) ||
                    get_str(e, "hyp", w->hyp, WIRE_TEXT_MAX, 1, err, errlen) ||
                    get_str(e, "ref", w->ref, WIRE_TEXT_MAX, 1, err, errlen)) {
                    if (!cJSON_IsObject(e)) bad(err, errlen, "a sample must be an object");
                    goto out;
                }
            }
        }
    }
    if (m->kind == WIRE_EVENT) {
        if (get_str(j, "event", m->event, sizeof m->event - 1, 1, err, errlen)) goto out;
        if (!m->event[0]) {
            bad(err, errlen, "\"event\" is empty");
            goto out;
        }
    }
    if (get_str(j, "detail", m->detail, WIRE_TEXT_MAX, 0, err, errlen)) goto out;
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}

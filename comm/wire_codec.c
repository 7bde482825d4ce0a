/* The metrics wire's messages (DESIGN.md, "Metrics wire"): one table,
 * `fields`, declares every field a message may carry, and both directions
 * walk it: wire_parse (the monitor's reader and validator) and wire_encode
 * (the trainers' writer). A new field is one line there, beside its member
 * in wire_msg (wire.h). */
#include "wire.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ the table */

/* A field's JSON type, and what its member of wire_msg is */
typedef enum {
    WHOLE,   /* a whole number in lo..hi; the member is an int or a long */
    NUMBER,  /* a finite number in lo..hi, or null; not sent (absent, null) is NaN; a double */
    STRING,  /* a string of lo..hi bytes; a char[] of at least hi + 1 */
    KIND,    /* the name of a wire_kind (kind_names); the member is a wire_kind */
    SAMPLES, /* null, or an array of at most hi {src, hyp, ref} (sample_fields); the member is
              * a wire_sample[] and its count m->nsamples */
} field_type;

/* which kinds carry a field: the encoder writes it for these */
#define KIND_BIT(k) (1u << (k))
#define TRAIN       KIND_BIT(WIRE_TRAIN)
#define EVAL        KIND_BIT(WIRE_EVAL)
#define EVENT       KIND_BIT(WIRE_EVENT)
#define BEAT        KIND_BIT(WIRE_HEARTBEAT)
#define ALL         (TRAIN | EVAL | EVENT | BEAT)

enum {
    REQ = 1, /* the kinds that carry it must send it (a number: not null either) */
    /* Read on every kind, not only on those that carry it, as the parser of
     * seqpar 0.1 did (a heartbeat's "bleu": "x" is refused, its "bleu": 3
     * kept): there only the type is checked, and the member's capacity (a
     * string's length; a whole number's bounds). Bounds, rule and REQ are
     * for the kinds that carry it. */
    ANY_KIND = 2,
    /* a string left empty, a number left NaN, is not sent (fields added after
     * seqpar 0.1's: a message without them is byte for byte an older one) */
    OMIT_EMPTY = 4,
};

typedef struct field {
    const char *name; /* the JSON key, and the member's name */
    field_type type;
    unsigned kinds, flags;
    double lo, hi; /* bounds: of the value (WHOLE, NUMBER), of the length in bytes (STRING), of
                    * the count (SAMPLES) */
    /* a check beyond type and bounds, once the field is read; it may look at
     * the fields before it in the table */
    int (*rule)(const wire_msg *m, char *err, size_t n);
    size_t off, size; /* the member of wire_msg */
} field;

static int version_ok(const wire_msg *m, char *err, size_t n);
static int run_ok(const wire_msg *m, char *err, size_t n);
static int rank_in_world(const wire_msg *m, char *err, size_t n);

/* In the order the encoder writes them. Every kind carries the first eight;
 * the parser reads those first (kind among them), then the kind's. */
// clang-format off
#define FIELD(name, type, kinds, flags, lo, hi, rule) \
    {#name, type, kinds, flags, lo, hi, rule,         \
     offsetof(wire_msg, name), sizeof(((wire_msg *)0)->name)}
static const field fields[] = {
    /*    name       type     kinds  flags           lo          hi                  rule */
    FIELD(v,         WHOLE,   ALL,   REQ,            1,          1000,               version_ok),
    FIELD(run,       STRING,  ALL,   REQ,            1,          WIRE_RUN_MAX,       run_ok),
    FIELD(kind,      KIND,    ALL,   REQ,            0,          0,                  NULL),
    FIELD(rank,      WHOLE,   ALL,   REQ,            0,          WIRE_MAX_WORLD - 1, NULL),
    FIELD(world,     WHOLE,   ALL,   REQ,            1,          WIRE_MAX_WORLD,     rank_in_world),
    FIELD(step,      WHOLE,   ALL,   REQ,            0,          9e15,               NULL),
    FIELD(epoch,     WHOLE,   ALL,   REQ,            0,          9e15,               NULL),
    FIELD(time,      NUMBER,  ALL,   REQ,            0,          WIRE_MAX_TIME,      NULL),
    FIELD(loss_sum,  NUMBER,  TRAIN, REQ | ANY_KIND, 0,          INFINITY,           NULL),
    FIELD(tokens,    NUMBER,  TRAIN, REQ | ANY_KIND, 0,          INFINITY,           NULL),
    FIELD(grad_norm, NUMBER,  TRAIN, ANY_KIND,       -INFINITY,  INFINITY,           NULL),
    FIELD(lr,        NUMBER,  TRAIN, ANY_KIND,       -INFINITY,  INFINITY,           NULL),
    FIELD(tok_per_s, NUMBER,  TRAIN, ANY_KIND,       -INFINITY,  INFINITY,           NULL),
    FIELD(nan_skips, NUMBER,  TRAIN, ANY_KIND,       0,          INFINITY,           NULL),
    FIELD(compute_s, NUMBER,  TRAIN, OMIT_EMPTY,     0,          INFINITY,           NULL),
    FIELD(wait_s,    NUMBER,  TRAIN, OMIT_EMPTY,     0,          INFINITY,           NULL),
    FIELD(data_s,    NUMBER,  TRAIN, OMIT_EMPTY,     0,          INFINITY,           NULL),
    FIELD(eval_s,    NUMBER,  TRAIN, OMIT_EMPTY,     0,          INFINITY,           NULL),
    FIELD(checkpoint_s, NUMBER, TRAIN, OMIT_EMPTY,   0,          INFINITY,           NULL),
    FIELD(val_loss,  NUMBER,  EVAL,  ANY_KIND,       -INFINITY,  INFINITY,           NULL),
    FIELD(val_ppl,   NUMBER,  EVAL,  ANY_KIND,       -INFINITY,  INFINITY,           NULL),
    FIELD(bleu,      NUMBER,  EVAL,  ANY_KIND,       -INFINITY,  INFINITY,           NULL),
    FIELD(samples,   SAMPLES, EVAL,  0,              0,          WIRE_MAX_SAMPLES,   NULL),
    FIELD(event,     STRING,  EVENT, REQ,            1,          WIRE_EVENT_MAX,     NULL),
    FIELD(detail,    STRING,  EVENT, ANY_KIND,       0,          WIRE_TEXT_MAX,      NULL),
    FIELD(state,     STRING,  BEAT,  OMIT_EMPTY,     0,          15,                 NULL),
};
// clang-format on
#define NFIELDS (sizeof fields / sizeof *fields)

static const char *const kind_names[] = {[WIRE_TRAIN] = "train",
                                         [WIRE_EVAL] = "eval",
                                         [WIRE_EVENT] = "event",
                                         [WIRE_HEARTBEAT] = "heartbeat"};
#define NKINDS (sizeof kind_names / sizeof *kind_names)

/* A sample's fields: required strings of at most WIRE_TEXT_MAX bytes. */
static const struct {
    const char *name;
    size_t off;
} sample_fields[] = {{"src", offsetof(wire_sample, src)},
                     {"hyp", offsetof(wire_sample, hyp)},
                     {"ref", offsetof(wire_sample, ref)}};
#define NSAMPLE_FIELDS (sizeof sample_fields / sizeof *sample_fields)

const char *const wire_phase_names[WIRE_PHASES] = {"compute", "wait", "data", "eval", "checkpoint"};

void wire_msg_phases(const wire_msg *m, double out[WIRE_PHASES])
{
    out[0] = m->compute_s, out[1] = m->wait_s, out[2] = m->data_s, out[3] = m->eval_s;
    out[4] = m->checkpoint_s;
}

void wire_msg_set_phases(wire_msg *m, const double in[WIRE_PHASES])
{
    m->compute_s = in[0], m->wait_s = in[1], m->data_s = in[2], m->eval_s = in[3];
    m->checkpoint_s = in[4];
}

/* ---------------------------------------------------------------- rules */

static int bad(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return -1;
}

static int version_ok(const wire_msg *m, char *err, size_t n)
{
    if (m->v == WIRE_VERSION) return 0;
    return bad(err, n, "wire version %d (this monitor reads %d)", m->v, WIRE_VERSION);
}

int wire_run_id_ok(const char *s)
{
    const size_t n = strlen(s);
    return n >= 1 && n <= WIRE_RUN_MAX &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

static int run_ok(const wire_msg *m, char *err, size_t n)
{
    if (wire_run_id_ok(m->run)) return 0;
    return bad(err, n, "\"run\" must be 1..%d of [A-Za-z0-9._:-]", WIRE_RUN_MAX);
}

static int rank_in_world(const wire_msg *m, char *err, size_t n)
{
    if (m->rank < m->world) return 0;
    return bad(err, n, "\"rank\" %d is not below \"world\" %d", m->rank, m->world);
}

/* ---------------------------------------------------------------- parse */

/* A string of lo..max bytes into out[max + 1]. */
static int read_text(const cJSON *x, const char *name, size_t lo, size_t max, char *out, char *err,
                     size_t n)
{
    if (!cJSON_IsString(x) || !x->valuestring) return bad(err, n, "\"%s\" must be a string", name);
    const size_t len = strlen(x->valuestring);
    if (len > max) return bad(err, n, "\"%s\" is longer than %zu bytes", name, max);
    if (len < lo) return bad(err, n, "\"%s\" is %s", name, len ? "too short" : "empty");
    memcpy(out, x->valuestring, len + 1);
    return 0;
}

static int read_whole(const cJSON *x, const field *f, char *dst, char *err, size_t n)
{
    const double v = cJSON_IsNumber(x) ? x->valuedouble : NAN;
    if (!(v >= f->lo && v <= f->hi) || v != floor(v))
        return bad(err, n, "\"%s\" must be a whole number in %.0f..%.0f", f->name, f->lo, f->hi);
    if (f->size == sizeof(int)) {
        const int i = (int)v;
        memcpy(dst, &i, sizeof i);
    } else {
        const long l = (long)v;
        memcpy(dst, &l, sizeof l);
    }
    return 0;
}

static int read_number(const cJSON *x, const field *f, int carried, char *dst, char *err, size_t n)
{
    if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble))
        return bad(err, n, "\"%s\" must be a finite number or null", f->name);
    const double v = x->valuedouble;
    if (carried && !(v >= f->lo && v <= f->hi)) {
        if (isinf(f->hi)) return bad(err, n, "\"%s\" must be >= %.15g", f->name, f->lo);
        if (isinf(f->lo)) return bad(err, n, "\"%s\" must be <= %.15g", f->name, f->hi);
        return bad(err, n, "\"%s\" must be in %.15g..%.15g", f->name, f->lo, f->hi);
    }
    memcpy(dst, &v, sizeof v);
    return 0;
}

static int read_kind(const cJSON *x, char *dst, char *err, size_t n)
{
    if (!cJSON_IsString(x) || !x->valuestring) return bad(err, n, "\"kind\" must be a string");
    for (size_t k = 0; k < NKINDS; k++)
        if (strcmp(x->valuestring, kind_names[k]) == 0) {
            const wire_kind kind = (wire_kind)k;
            memcpy(dst, &kind, sizeof kind);
            return 0;
        }
    return bad(err, n, "unknown \"kind\" '%.20s'", x->valuestring);
}

static int read_samples(const cJSON *x, const field *f, wire_msg *m, char *err, size_t n)
{
    wire_sample *s = (wire_sample *)((char *)m + f->off);
    const double cap = (double)(f->size / sizeof *s), max = f->hi < cap ? f->hi : cap;
    if (!cJSON_IsArray(x) || cJSON_GetArraySize(x) > max)
        return bad(err, n, "\"%s\" must be an array of at most %.0f", f->name, max);
    const cJSON *e;
    cJSON_ArrayForEach(e, x)
    {
        wire_sample *w = &s[m->nsamples++];
        if (!cJSON_IsObject(e)) return bad(err, n, "a sample must be an object");
        for (size_t i = 0; i < NSAMPLE_FIELDS; i++)
            if (read_text(cJSON_GetObjectItemCaseSensitive(e, sample_fields[i].name),
                          sample_fields[i].name, 0, WIRE_TEXT_MAX, (char *)w + sample_fields[i].off,
                          err, n))
                return -1;
    }
    return 0;
}

/* Field f of object j into m, as the table says for m->kind. */
static int read_field(const cJSON *j, const field *f, wire_msg *m, char *err, size_t n)
{
    const int carried = (f->kinds & KIND_BIT(m->kind)) != 0;
    if (!carried && !(f->flags & ANY_KIND)) return 0;
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, f->name);
    /* null is "not sent" for numbers and samples, a wrong type for the rest */
    if (!x || (cJSON_IsNull(x) && (f->type == NUMBER || f->type == SAMPLES))) {
        if (!carried || !(f->flags & REQ)) return 0;
        if (f->kinds == ALL) return bad(err, n, "\"%s\" missing", f->name);
        return bad(err, n, "a %s message needs \"%s\"", kind_names[m->kind], f->name);
    }
    char *dst = (char *)m + f->off;
    int rc = -1;
    switch (f->type) {
    case WHOLE:
        rc = read_whole(x, f, dst, err, n);
        break;
    case NUMBER:
        rc = read_number(x, f, carried, dst, err, n);
        break;
    case STRING:
        rc = read_text(x, f->name, carried ? (size_t)f->lo : 0,
                       carried && f->hi < (double)f->size ? (size_t)f->hi : f->size - 1, dst, err,
                       n);
        break;
    case KIND:
        rc = read_kind(x, dst, err, n);
        break;
    case SAMPLES:
        rc = read_samples(x, f, m, err, n);
        break;
    }
    if (rc == 0 && carried && f->rule) rc = f->rule(m, err, n);
    return rc;
}

void wire_msg_init(wire_msg *m, wire_kind kind)
{
    memset(m, 0, sizeof *m);
    m->v = WIRE_VERSION;
    m->kind = kind;
    for (size_t i = 0; i < NFIELDS; i++)
        if (fields[i].type == NUMBER) {
            const double nan = NAN;
            memcpy((char *)m + fields[i].off, &nan, sizeof nan);
        }
}

int wire_parse(const char *buf, size_t len, wire_msg *m, char *err, size_t errlen)
{
    wire_msg_init(m, WIRE_TRAIN);
    if (len > WIRE_MAX_MSG) return bad(err, errlen, "message of %zu bytes", len);
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) return bad(err, errlen, "not JSON");
    /* nothing but white space may follow the object */
    while (end && end < buf + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
        end++;
    int rc = 0;
    if (!end || end != buf + len)
        rc = bad(err, errlen, "text after the JSON value");
    else if (!cJSON_IsObject(j))
        rc = bad(err, errlen, "not a JSON object");
    /* the fields every kind carries first (kind among them), then the kind's */
    for (int pass = 0; pass < 2 && rc == 0; pass++)
        for (size_t i = 0; i < NFIELDS && rc == 0; i++)
            if ((fields[i].kinds == ALL) == (pass == 0))
                rc = read_field(j, &fields[i], m, err, errlen);
    cJSON_Delete(j);
    return rc;
}

/* --------------------------------------------------------------- encode */

/* n samples as [{src, hyp, ref} …]; NULL when out of memory or a text is
 * not a C string within its member. */
static cJSON *samples_array(const wire_sample *s, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        int ok = x && cJSON_AddItemToArray(a, x);
        if (!ok) cJSON_Delete(x); /* not the array's: ours to free */
        for (size_t k = 0; ok && k < NSAMPLE_FIELDS; k++) {
            const char *t = (const char *)&s[i] + sample_fields[k].off;
            ok = memchr(t, '\0', WIRE_TEXT_MAX + 1) &&
                 cJSON_AddStringToObject(x, sample_fields[k].name, t);
        }
        if (!ok) {
            cJSON_Delete(a);
            a = NULL;
        }
    }
    return a;
}

static int add_samples(cJSON *o, const char *name, const wire_sample *s, int n)
{
    cJSON *a = samples_array(s, n);
    if (a && cJSON_AddItemToObject(o, name, a)) return 0;
    cJSON_Delete(a);
    return -1;
}

int wire_add_samples(cJSON *o, const wire_sample *s, int n)
{
    return add_samples(o, "samples", s, n);
}

/* A number as the shortest text that reads back as the same double (cJSON
 * prints 15 significant digits when they come within an epsilon, which
 * loses the last bit of 0.1 + 0.2). "%g" is the C locale's: seqpar never
 * calls setlocale. */
static cJSON *add_exact_number(cJSON *o, const char *name, double v)
{
    char t[40];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(t, sizeof t, "%.*g", digits, v);
        if (strtod(t, NULL) == v) break;
    }
    return cJSON_AddRawToObject(o, name, t);
}

/* Whether member f of m is a C string within its bytes. */
static int terminated(const wire_msg *m, const field *f)
{
    return memchr((const char *)m + f->off, '\0', f->size) != NULL;
}

/* Field f of m into object o; 0, or -1 when out of memory or m is not a message. */
static int write_field(cJSON *o, const field *f, const wire_msg *m)
{
    const char *src = (const char *)m + f->off;
    switch (f->type) {
    case WHOLE: {
        long l;
        if (f->size == sizeof(int)) {
            int i;
            memcpy(&i, src, sizeof i);
            l = i;
        } else {
            memcpy(&l, src, sizeof l);
        }
        char t[24];
        snprintf(t, sizeof t, "%ld", l);
        return cJSON_AddRawToObject(o, f->name, t) ? 0 : -1;
    }
    case NUMBER: {
        double v;
        memcpy(&v, src, sizeof v);
        if ((f->flags & OMIT_EMPTY) && isnan(v)) return 0;
        /* not sent (NaN): null */
        return (isfinite(v) ? add_exact_number(o, f->name, v) : cJSON_AddNullToObject(o, f->name))
                   ? 0
                   : -1;
    }
    case STRING:
        if ((f->flags & OMIT_EMPTY) && !*(const char *)src) return 0;
        return terminated(m, f) && cJSON_AddStringToObject(o, f->name, src) ? 0 : -1;
    case KIND:
        return cJSON_AddStringToObject(o, f->name, kind_names[m->kind]) ? 0 : -1;
    case SAMPLES: {
        const int cap = (int)(f->size / sizeof(wire_sample));
        return add_samples(o, f->name, (const wire_sample *)src,
                           m->nsamples > cap ? cap : m->nsamples);
    }
    }
    return -1;
}

char *wire_encode(const wire_msg *m)
{
    if ((unsigned)m->kind >= NKINDS) return NULL;
    cJSON *o = cJSON_CreateObject();
    int rc = o ? 0 : -1;
    for (size_t i = 0; i < NFIELDS && rc == 0; i++)
        if (fields[i].kinds & KIND_BIT(m->kind)) rc = write_field(o, &fields[i], m);
    char *s = rc == 0 ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

/* seqpar train: the data-parallel training loop.
 *
 * Every rank holds a full replica. Per step: the sampler hands this rank its
 * slice of the global batch; forward and backward add Σ-loss gradients into
 * the gradient buffer; one allreduce sums gradients together with the loss
 * sum and token count (they ride in the buffer's tail); the gradient is
 * divided by the global token count, clipped by its global norm and applied
 * by the same optimizer on every rank, so replicas stay identical and N
 * ranks follow the trajectory of one rank with the same global batch.
 *
 * Within a rank, --workers W splits the step once more: W threads each train
 * a replica that reads the rank's parameters (model_share_params) on the
 * rows of a virtual rank (rank·W + w of world·W, dealt as among ranks), then
 * sum their gradients into the rank's buffer and share the update out by
 * ranges of the buffer (Marian's CPU workers, synchronous). OpenBLAS runs
 * single-threaded in each, so no thread waits on another's BLAS pool. */
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoints.h"
#include "comm.h"
#include "trainer.h"
#include "wire.h"

#include <cjson/cJSON.h>
#include <time.h>

#include <cblas.h> /* openblas_get_corename */
#undef I

#define LM_EVAL_STREAMS 16 /* see evaluate */
#define TAIL_LOSS       0
#define TAIL_TOKENS     1

/* One in-process worker's share of a step (see the top of the file). */
typedef struct worker {
    model *m;             /* one worker: the trainer's model; several: replicas */
    data_sampler *smp;    /* its sampler: the trainer's for one worker */
    data_sampler sampler; /* its own, as virtual rank rank·W + w of world·W */
    data_slice slice;
    int32_t *src, *tgt, *valid_len; /* its batch: the trainer's buffers for one worker */
    int64_t *example;
    float *st_h, *st_c;      /* LM sequential, several workers: its rows' carried state */
    double loss_sum, fp, fe; /* the step's loss sum and matmul work */
    long ntok;
    int rc;
    size_t lo, hi; /* its range of the parameter buffer (sums and updates) */
} worker;

typedef struct trainer {
    train_config cfg;
    int rank, world;
    int lm;
    /* data */
    data_pairs pairs, valid;
    int have_valid;
    data_stream stream;
    data_sampler sampler;
    data_slice slice;
    const data_vocab *vsrc, *vtgt;
    /* model */
    model *m;
    model_config mc;
    optimizer opt;
    bptt_mode bptt;
    int bptt_k;
    /* batch buffers (local slice) */
    int bmax;
    int32_t *src, *tgt, *valid_len;
    int64_t *example;
    float *state_h, *state_c;   /* LM sequential: (L, rows, H) carried, this rank's rows */
    float *gstate_h, *gstate_c; /* (L, batch, H): every rank's rows, for checkpoints */
    int row_lo, row_hi;         /* this rank's rows of a full global batch */
    int carry_state;            /* LM with the sequential sampler */
    /* figures kept in checkpoints */
    double last_loss, last_valid_loss, last_valid_bleu;
    double best;     /* best validation figure (BLEU, or LM perplexity); NaN: none yet */
    long since_best; /* evaluations since it */
    /* validation workspace */
    int32_t *hyp; /* (bmax, T) decoded ids */
    int *hyp_len; /* (bmax) */
    char *text;   /* a hypothesis as text */
    size_t text_cap;
    const int32_t *lm_valid; /* LM: the held-out tokens (the stream's tail) */
    long lm_valid_n;
    int eval_streams;
    float *eval_h, *eval_c; /* LM: (L, rows, H) validation state */
    long saved_step;        /* the step of the last checkpoint written (-1: none) */
    long validated_step;    /* the step of the last validation (-1: none) */
    /* in-process workers (--workers; one: the trainer's model, on this thread) */
    int nworkers;
    worker *wk;
    comm_pool *pool;
    float step_scale;   /* the update's factor on the summed gradient */
    double *chunk_sums; /* Σ g² per GRAD_CHUNK of the gradient (the norm) */
    /* gradient reduction */
    comm_reducer *red;
    size_t *toff, *tsize; /* the parameter table's offsets and sizes, for comm/ */
    int comm_failed;
    /* SEQPAR_FAULT_PERTURB=RANK:STEP:TENSOR (tests): that rank nudges that
     * tensor after that step, so the replica check has something to find */
    int fault_rank, fault_tensor;
    long fault_step;
    /* the metrics wire (--monitor) */
    wire_pub *pub;
    char run_id[WIRE_RUN_MAX + 1];
    double last_beat;
    double wl_loss, wl_tok; /* this rank's sums over the logging window */
    double grad_norm;       /* of the last step, before clipping */
    int grad_dirty;         /* the gradient buffer was not zeroed by an update */
    double flops[2];        /* matmul work of this rank's steps: padded, executed */
    wire_sample samples[3]; /* rank 0: sample translations of the last validation */
    int nsamples;
    /* position */
    long step, epoch, batch_in_epoch;
} trainer;

/* ------------------------------------------------------- metrics wire */

/* A message with the fields every kind has (DESIGN.md, "Metrics wire"). */
static cJSON *msg_new(const trainer *t, const char *kind)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "v", WIRE_VERSION);
    cJSON_AddStringToObject(o, "run", t->run_id);
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddNumberToObject(o, "rank", t->rank);
    cJSON_AddNumberToObject(o, "world", t->world);
    cJSON_AddNumberToObject(o, "step", (double)t->step);
    /* 1-based, as printed: at an epoch boundary, the epoch just finished */
    cJSON_AddNumberToObject(
        o, "epoch", (double)(t->batch_in_epoch > 0 || t->step == 0 ? t->epoch + 1 : t->epoch));
    cJSON_AddNumberToObject(o, "time", wire_time());
    return o;
}

static void msg_send(trainer *t, cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    if (s) wire_pub_send(t->pub, s, strlen(s));
    free(s);
    cJSON_Delete(o);
}

static void publish_event(trainer *t, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void publish_event(trainer *t, const char *event, const char *fmt, ...)
{
    if (!t || !t->pub) return;
    char detail[WIRE_TEXT_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    cJSON *o = msg_new(t, "event");
    cJSON_AddStringToObject(o, "event", event);
    cJSON_AddStringToObject(o, "detail", detail);
    msg_send(t, o);
    t->last_beat = wire_time();
}

/* This rank's figures of the logging window: the monitor sums loss and
 * tokens over ranks, so its loss is the global one the trainer prints. */
static void publish_train(trainer *t, double window_s)
{
    if (!t->pub) return;
    cJSON *o = msg_new(t, "train");
    cJSON_AddNumberToObject(o, "loss_sum", t->wl_loss);
    cJSON_AddNumberToObject(o, "tokens", t->wl_tok);
    cJSON_AddNumberToObject(o, "grad_norm", t->grad_norm);
    cJSON_AddNumberToObject(o, "lr", t->cfg.lr);
    cJSON_AddNumberToObject(o, "tok_per_s", window_s > 0 ? t->wl_tok / window_s : NAN);
    msg_send(t, o);
    t->last_beat = wire_time();
}

static void publish_eval(trainer *t, double vl, double vp, double bleu)
{
    if (!t->pub || t->rank != 0) return;
    cJSON *o = msg_new(t, "eval");
    cJSON_AddNumberToObject(o, "val_loss", vl);
    cJSON_AddNumberToObject(o, "val_ppl", vp);
    cJSON_AddNumberToObject(o, "bleu", bleu);
    wire_add_samples(o, t->samples, t->nsamples);
    msg_send(t, o);
}

/* A heartbeat when nothing was sent for 2 s, so the monitor can tell a
 * quiet rank from a lost one. */
static void heartbeat(trainer *t)
{
    if (!t->pub) return;
    double now = wire_time();
    if (now - t->last_beat < 2.0) return;
    msg_send(t, msg_new(t, "heartbeat"));
    t->last_beat = now;
}

/* Sends what is queued (waiting at most 0.5 s: a dead monitor costs that,
 * once) and closes. */
static void close_wire(trainer *t)
{
    if (!t || !t->pub) return;
    wire_pub_close(t->pub, 500);
    t->pub = NULL;
}

static void die0(trainer *t, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Every rank connects to --monitor under one run id (--run, else rank 0's
 * date, time and pid). */
static void open_wire(trainer *t)
{
    char id[WIRE_RUN_MAX + 1] = "";
    if (t->cfg.run[0]) {
        snprintf(id, sizeof id, "%s", t->cfg.run);
    } else if (t->rank == 0) {
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        char stamp[32];
        strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
        snprintf(id, sizeof id, "%s-%ld", stamp, (long)getpid());
    }
    comm_bcast(id, sizeof id, 0);
    snprintf(t->run_id, sizeof t->run_id, "%s", id);
    char err[ERRLEN];
    int ok = wire_pub_open(&t->pub, t->cfg.monitor, err, sizeof err) == 0;
    if (!ok) die0(t, 2, "--monitor %s", err);
    comm_printf0("metrics to %s as run %s\n", t->cfg.monitor, t->run_id);
}

/* Errors, by who can hit them:
 *  die0:      every rank hits it alike (options, configuration): rank 0 says
 *             it, every rank exits with `code`;
 *  agree:     a collective check of something that may fail on some ranks
 *             only (a file missing on one node, memory): the lowest failing
 *             rank says its message, every rank exits with `code`;
 *  die_local: a failure of this rank alone mid-run: it says so and ends the
 *             whole job (MPI_Abort), so no rank waits forever. */
static void die0(trainer *t, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void die0(trainer *t, int code, const char *fmt, ...)
{
    if (!t || t->rank == 0) {
        char msg[ERRLEN * 2];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "seqpar train: %s\n", msg);
        publish_event(t, "error", "%s", msg);
    }
    close_wire(t);
    comm_finalize();
    exit(code);
}

/* The lowest rank whose ok is false, or -1 when every rank's is true
 * (collective: every rank calls it). */
static int first_failing(trainer *t, int ok)
{
    double who = ok ? 0.0 : (double)(t->world - t->rank);
    comm_allreduce_max_double(&who, 1);
    return who == 0.0 ? -1 : t->world - (int)who;
}

/* Ends every rank after the speaker has said why (collective). */
static void stop_after(trainer *t, int speaker, int code) __attribute__((noreturn));
static void stop_after(trainer *t, int speaker, int code)
{
    close_wire(t);
    comm_finalize();
    /* the rank that spoke exits first: mpirun ends the job at the first
     * non-zero exit, and when that was another rank's it dropped the
     * speaker's line still in flight (2 runs in 20 here, a missing corpus
     * on rank 1) */
    if (t->rank != speaker) {
        struct timespec pause = {0, 500000000L};
        nanosleep(&pause, NULL);
    }
    exit(code);
}

static void agree(trainer *t, int ok, int code, const char *msg)
{
    const int speaker = first_failing(t, ok);
    if (speaker < 0) return;
    if (t->rank == speaker) {
        fprintf(stderr, "seqpar train: %s\n", msg);
        publish_event(t, "error", "rank %d: %s", t->rank, msg);
    }
    stop_after(t, speaker, code);
}

static void die_local(trainer *t, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void die_local(trainer *t, int code, const char *fmt, ...)
{
    char msg[ERRLEN * 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (t->world > 1)
        fprintf(stderr, "seqpar train: rank %d: %s\n", t->rank, msg);
    else
        fprintf(stderr, "seqpar train: %s\n", msg);
    publish_event(t, "error", "rank %d: %s", t->rank, msg);
    close_wire(t);
    va_end(ap);
    comm_abort(code);
}

static int parse_bptt(const char *s, bptt_mode *mode, int *k)
{
    char *end;
    if (strcmp(s, "full") == 0) {
        *mode = BPTT_FULL, *k = 0;
        return 0;
    }
    if (strncmp(s, "random", 6) == 0) {
        *mode = BPTT_RANDOM, *k = 10;
        if (s[6] == '\0') return 0;
        if (s[6] != ':') return -1;
        long v = strtol(s + 7, &end, 10);
        if (*end || v < 2 || v > 100000) return -1;
        *k = (int)v;
        return 0;
    }
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < 1 || v > 100000) return -1;
    *mode = BPTT_FIXED, *k = (int)v;
    return 0;
}

/* ------------------------------------------------------------------ data */

static double mem_available(void);

/* What one rank's data may take: the node's available memory over its
 * ranks (0: unknown, unchecked). */
static double data_mem_limit(void)
{
    const double avail = mem_available();
    const int local = comm_local_size();
    return avail > 0 ? avail / (local > 0 ? local : 1) : 0.0;
}

/* "rank R: " before a message about this rank's own data, over several ranks */
static const char *rank_tag(const trainer *t)
{
    static char tag[32];
    if (t->world > 1)
        snprintf(tag, sizeof tag, "rank %d: ", t->rank);
    else
        tag[0] = '\0';
    return tag;
}

static void load_data(trainer *t)
{
    char err[ERRLEN];
    train_config *c = &t->cfg;
    const char *dd = c->data_dir[0] ? c->data_dir : NULL;
    int rc;
    if (!t->lm) {
        data_pairs_opts o = {.dataset = c->dataset,
                             .data_dir = dd,
                             .num_examples = c->num_examples,
                             .num_steps = c->steps,
                             .min_freq = c->min_freq < 0 ? 2 : c->min_freq,
                             .valid = c->valid,
                             .seed = (uint64_t)c->seed,
                             .mem_limit = data_mem_limit()};
        rc = data_pairs_load(&t->pairs, c->valid ? &t->valid : NULL, &o, err, sizeof err);
        agree(t, rc == DATA_OK, rc == DATA_ENOMEM ? 1 : 2, err);
        t->have_valid = c->valid > 0;
        t->vsrc = &t->pairs.src_vocab;
        t->vtgt = &t->pairs.tgt_vocab;
    } else {
        data_stream_opts o = {.dataset = c->dataset,
                              .data_dir = dd,
                              .tokens = strcmp(c->tokens, "word") == 0 ? DATA_TOKENS_WORD
                                                                       : DATA_TOKENS_CHAR,
                              .min_freq = c->min_freq < 0 ? 0 : c->min_freq,
                              .max_tokens = c->num_examples};
        rc = data_stream_load(&t->stream, &o, err, sizeof err);
        agree(t, rc == DATA_OK, rc == DATA_ENOMEM ? 1 : 2, err);
        if (c->valid > 0) {
            /* the held-out tokens: the stream's last N, as LM_EVAL_STREAMS
             * streams of at least one num_steps chunk each */
            /* at most one stream per row of the global batch: a rank's share
             * then fits its batch buffers */
            t->eval_streams = c->batch < LM_EVAL_STREAMS ? c->batch : LM_EVAL_STREAMS;
            long need = (long)t->eval_streams * c->steps + 1;
            /* agree(), not die0(): the corpus may differ between ranks
             * (check_same_data comes after), and every rank must stop alike */
            const int fits = c->valid >= need && c->valid <= t->stream.n / 2;
            snprintf(err, sizeof err,
                     "%s--valid %d: an LM holds out the corpus's last N tokens; N must be at "
                     "least %ld (%d streams of --steps %d) and at most half the corpus (%ld "
                     "tokens)",
                     rank_tag(t), c->valid, need, t->eval_streams, c->steps, t->stream.n / 2);
            agree(t, fits, 2, err);
            t->stream.n -= c->valid;
            t->lm_valid = t->stream.ids + t->stream.n;
            t->lm_valid_n = c->valid;
            t->have_valid = 1;
        }
        t->vsrc = NULL;
        t->vtgt = &t->stream.vocab;
    }
    long n = t->lm ? t->stream.n : t->pairs.n;
    data_sampler_kind kind =
        strcmp(c->sampler, "sequential") == 0 ? DATA_SAMPLER_SEQUENTIAL : DATA_SAMPLER_RANDOM;
    rc = data_sampler_init(&t->sampler, t->lm ? DATA_TASK_LM : DATA_TASK_TRANSLATE, kind, n,
                           c->batch, c->steps, (uint64_t)c->seed, t->rank, t->world, err,
                           sizeof err);
    char named[ERRLEN + CFG_STR + 4] = "";
    if (rc != DATA_OK) /* the sampler knows sizes only */
        snprintf(named, sizeof named, "%s: %s", c->dataset, err);
    agree(t, rc == DATA_OK, 2, named);
    /* translation over several ranks: rows dealt by target length, so every
     * rank's packed decoder gets the same work and none waits for another at
     * the allreduce (DESIGN: sharding) */
    if (!t->lm)
        agree(t, data_sampler_set_lengths(&t->sampler, t->pairs.tgt_valid, c->steps) == DATA_OK, 1,
              "out of memory for the sampler");
    snprintf(named, sizeof named, "%sthe corpus (%ld %s) is too small for one batch of %d%s",
             rank_tag(t), n, t->lm ? "tokens" : "pairs", c->batch, t->lm ? " streams" : "");
    agree(t, data_sampler_batches(&t->sampler, 0) >= 1, 2, named);
}

/* ------------------------------------------------- the ranks agree */

/* Every rank must train with rank 0's options (only where the data lies and
 * the OpenBLAS threads may differ between nodes): a rank with another
 * --hidden would take rank 0's parameters into a buffer of another size. */
static void check_same_options(trainer *t)
{
    if (t->world == 1) return;
    train_config root = t->cfg;
    comm_bcast(&root, sizeof root, 0);
    static const char *const per_rank[] = {"data-dir", "threads", NULL};
    char here[32], why[800], msg[1000] = "";
    snprintf(here, sizeof here, "on rank %d", t->rank);
    const int differs =
        config_difference(&root, &t->cfg, NULL, per_rank, "on rank 0", here, why, sizeof why);
    if (differs) snprintf(msg, sizeof msg, "%s: every rank must be given the same options", why);
    agree(t, !differs, 2, msg);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static uint64_t vocab_hash(uint64_t h, const data_vocab *v)
{
    for (int i = 0; v && i < v->size; i++) h = fnv1a(h, v->tokens[i], strlen(v->tokens[i]) + 1);
    return h;
}

static uint64_t pairs_hash(uint64_t h, const data_pairs *p)
{
    const size_t nt = (size_t)p->n * (size_t)p->num_steps;
    if (p->n <= 0) return h;
    h = fnv1a(h, p->src, nt * sizeof *p->src);
    h = fnv1a(h, p->tgt, nt * sizeof *p->tgt);
    h = fnv1a(h, p->src_valid, (size_t)p->n * sizeof *p->src_valid);
    return fnv1a(h, p->tgt_valid, (size_t)p->n * sizeof *p->tgt_valid);
}

/* What a rank read: sizes for the message, a hash of the vocabularies and
 * every token id (training and held-out) for the comparison. */
typedef struct data_print {
    long items, held_out;
    int vsrc, vtgt;
    uint64_t hash;
} data_print;

/* Every rank reads the corpus itself; they must have read the same (the
 * same options over another file on one node, e.g. another SEQPAR_DATA,
 * once overran a buffer at the parameters' broadcast, or trained silently
 * on mixed data). */
static void check_same_data(trainer *t)
{
    if (t->world == 1) return;
    data_print me = {0};
    uint64_t h = 0xcbf29ce484222325ULL;
    if (t->lm) {
        me.items = t->stream.n;
        me.held_out = t->lm_valid_n;
        h = fnv1a(h, t->stream.ids, (size_t)(t->stream.n + t->lm_valid_n) * sizeof(int32_t));
    } else {
        me.items = t->pairs.n;
        me.held_out = t->have_valid ? t->valid.n : 0;
        me.vsrc = t->vsrc->size;
        h = vocab_hash(pairs_hash(h, &t->pairs), t->vsrc);
        if (t->have_valid) h = pairs_hash(h, &t->valid);
    }
    me.vtgt = t->vtgt->size;
    me.hash = vocab_hash(h, t->vtgt);
    data_print root = me;
    comm_bcast(&root, sizeof root, 0);
    const int same = me.items == root.items && me.held_out == root.held_out &&
                     me.vsrc == root.vsrc && me.vtgt == root.vtgt && me.hash == root.hash;
    char msg[1000] = "", a[128], b[128];
    const char *unit = t->lm ? "tokens" : "pairs";
    if (t->lm) {
        snprintf(a, sizeof a, "%ld %s, vocab %d", root.items, unit, root.vtgt);
        snprintf(b, sizeof b, "%ld %s, vocab %d", me.items, unit, me.vtgt);
    } else {
        snprintf(a, sizeof a, "%ld %s, vocab %d -> %d", root.items, unit, root.vsrc, root.vtgt);
        snprintf(b, sizeof b, "%ld %s, vocab %d -> %d", me.items, unit, me.vsrc, me.vtgt);
    }
    if (!same)
        snprintf(msg, sizeof msg,
                 "rank %d read other data for --dataset %s than rank 0 (%s there; %s on rank "
                 "0%s): every rank must read the same corpus (check --data-dir or SEQPAR_DATA "
                 "on each node)",
                 t->rank, t->cfg.dataset, b, a,
                 strcmp(a, b) == 0 ? ", the same sizes but other tokens" : "");
    agree(t, same, 2, msg);
}

/* ------------------------------------------------------------ checkpoints */

/* Removes all but the newest `keep` checkpoints of dir up to step `upto`.
 * Checkpoints past `upto` belong to another branch of the run (this one
 * resumed from an earlier step): they are left alone, with a warning. */
static void retain(const char *dir, int keep, long upto)
{
    long steps[CKPT_LIST_MAX];
    int n = ckpt_list_dir(dir, steps, CKPT_LIST_MAX), kept = 0;
    for (int i = 0; i < n; i++) {
        if (steps[i] > upto) {
            static int warned = 0;
            if (!warned++)
                fprintf(stderr,
                        "seqpar train: warning: %s holds checkpoints past step %ld (from a "
                        "run this one did not continue); they are kept, and --resume auto "
                        "would take them\n",
                        dir, upto);
            continue;
        }
        if (kept++ < keep) continue;
        char p[1200];
        ckpt_path(p, sizeof p, dir, steps[i]);
        unlink(p);
    }
}

/* mkdir -p; 0 on success (or when it exists). */
static int make_dirs(const char *path)
{
    char buf[CFG_STR];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) && access(buf, W_OK) == 0 ? 0 : -1;
}

/* Rank 0 writes; returns 0, or -1 after saying in one line why and `then`
 * (what happens next; earlier checkpoints stay). */
static int save_checkpoint(trainer *t, const char *path, const char *then)
{
    if (t->rank != 0) return 0;
    char err[ERRLEN];
    char *json = config_to_json(&t->cfg);
    ckpt_content c = {.config_json = json,
                      .params = model_params(t->m),
                      .opt = &t->opt,
                      .train = {.step = t->step,
                                .epoch = t->epoch,
                                .batch_in_epoch = t->batch_in_epoch,
                                .seed = (uint64_t)t->cfg.seed,
                                .global_batch = t->cfg.batch,
                                .world_size = t->world,
                                .train_loss = t->last_loss,
                                .valid_loss = t->last_valid_loss,
                                .valid_bleu = t->last_valid_bleu,
                                .best = t->best,
                                .since_best = t->since_best}};
    if (t->carry_state) {
        c.state_h = t->gstate_h;
        c.state_c = t->mc.cell == CELL_LSTM ? t->gstate_c : NULL;
        c.state_dims[0] = t->cfg.layers, c.state_dims[1] = t->cfg.batch;
        c.state_dims[2] = t->cfg.hidden;
    }
    if (t->lm) {
        c.vocab_tgt = (const char *const *)t->vtgt->tokens;
        c.vocab_tgt_n = t->vtgt->size;
    } else {
        c.vocab_src = (const char *const *)t->vsrc->tokens;
        c.vocab_src_n = t->vsrc->size;
        c.vocab_tgt = (const char *const *)t->vtgt->tokens;
        c.vocab_tgt_n = t->vtgt->size;
    }
    double t0 = comm_time();
    int rc = json ? ckpt_save(path, &c, err, sizeof err) : CKPT_ENOMEM;
    free(json);
    if (rc == CKPT_OK) {
        struct stat st;
        double mb = stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0.0, secs = comm_time() - t0;
        printf("checkpoint %s: %.1f MB in %.2f s\n", path, mb, secs);
        fflush(stdout);
        publish_event(t, "checkpoint", "%s: %.1f MB in %.2f s", path, mb, secs);
    }
    if (rc != CKPT_OK) {
        if (rc == CKPT_ENOMEM && !json) snprintf(err, sizeof err, "out of memory");
        fprintf(stderr, "seqpar train: checkpoint at step %ld failed: %s; %s\n", t->step, err,
                then);
        publish_event(t, "checkpoint_failed", "%s; %s", err, then);
        return -1;
    }
    return 0;
}

/* Copies n rows of a carried state between a (L, n, H) buffer and rows
 * [off, off + n) of a (L, big, H) one, into the big one when `to_big`. */
static void copy_state_rows(const trainer *t, float *bigbuf, int big, int off, float *part, int n,
                            int to_big)
{
    const int L = t->cfg.layers, H = t->cfg.hidden;
    for (int l = 0; l < L; l++) {
        float *g = bigbuf + ((size_t)l * big + off) * H;
        float *x = part + (size_t)l * n * H;
        if (to_big)
            memcpy(g, x, (size_t)n * H * sizeof(float));
        else
            memcpy(x, g, (size_t)n * H * sizeof(float));
    }
}

/* Copies this rank's rows of the carried state between its local (L, rows, H)
 * buffer and the global (L, batch, H) one. */
static void state_rows(trainer *t, float *global, float *local, int to_global)
{
    copy_state_rows(t, global, t->cfg.batch, t->row_lo, local, t->row_hi - t->row_lo, to_global);
}

/* Every rank calls it: the carried LM state is gathered (each rank adds its
 * rows into zeros: an exact sum), rank 0 writes, every rank learns whether
 * that worked. Returns 0, or -1 after a failed write (rank 0 said why). */
static int checkpoint_to(trainer *t, const char *path, const char *then)
{
    if (t->carry_state) {
        const size_t n = (size_t)t->cfg.layers * t->cfg.batch * t->cfg.hidden;
        float *bufs[2] = {t->gstate_h, t->gstate_c}, *loc[2] = {t->state_h, t->state_c};
        for (int k = 0; k < (t->mc.cell == CELL_LSTM ? 2 : 1); k++) {
            memset(bufs[k], 0, n * sizeof(float));
            state_rows(t, bufs[k], loc[k], 1);
            if (comm_allreduce_float(bufs[k], n) != COMM_OK)
                die_local(t, 1, "gathering the carried state failed at step %ld", t->step);
        }
    }
    int ok = save_checkpoint(t, path, then) == 0;
    heartbeat(t);
    comm_bcast(&ok, sizeof ok, 0);
    return ok ? 0 : -1;
}

/* The step's checkpoint DIR/ckpt-<step>.h5 (once per step), then retention. */
static int checkpoint(trainer *t, const char *then)
{
    if (!t->cfg.checkpoint_dir[0] || t->saved_step == t->step) return 0;
    char path[1200];
    ckpt_path(path, sizeof path, t->cfg.checkpoint_dir, t->step);
    if (checkpoint_to(t, path, then) != 0) return -1;
    t->saved_step = t->step;
    if (t->rank == 0) retain(t->cfg.checkpoint_dir, t->cfg.keep, t->step);
    return 0;
}

/* A checkpoint during training; a failed write stops the run
 * (--on-checkpoint-error stop, every rank exits 1) or is survived. */
static void checkpoint_or_stop(trainer *t)
{
    const int go_on = strcmp(t->cfg.on_ckpt_error, "continue") == 0;
    if (checkpoint(t, go_on ? "training goes on (--on-checkpoint-error continue)"
                            : "stopping (--on-checkpoint-error stop); resume from the last "
                              "checkpoint written") == 0 ||
        go_on)
        return;
    comm_finalize(); /* every rank learnt it from the same broadcast; rank 0 said why */
    exit(1);
}

/* The options that define the model, the data and the sample order must be
 * those the checkpoint was trained with; the first that differs is named. */
static int check_same_run(trainer *t, ckpt_file *f, const char *path, char *err, size_t n)
{
    static const char *const keys[] = {
        "task",    "dataset", "num-examples", "tokens",        "min-freq", "cell",
        "layers",  "embed",   "hidden",       "bidirectional", "steps",    "batch",
        "sampler", "seed",    "valid",        "optimizer",     NULL};
    char *json = NULL;
    int rc = ckpt_read_config(f, &json, err, n);
    if (rc != CKPT_OK) return rc;
    train_config saved;
    config_defaults(&saved);
    char where[1300];
    snprintf(where, sizeof where, "%s: /config", path);
    char bad[ERRLEN];
    if (config_from_json_err(&saved, json, where, bad, sizeof bad) != 0) {
        free(json);
        snprintf(err, n, "%s", bad);
        return CKPT_EFORMAT;
    }
    free(json);
    char why[600];
    if (config_first_difference(&saved, &t->cfg, keys, why, sizeof why)) {
        snprintf(err, n, "%.200s does not match this run: %.280s", path, why);
        return CKPT_EMISMATCH;
    }
    /* the same options over changed data build another vocabulary: the
     * embeddings would be trained on for the wrong tokens */
    const char *which[2] = {t->lm ? "tokens" : "src", "tgt"};
    const data_vocab *mine[2] = {t->lm ? t->vtgt : t->vsrc, t->vtgt};
    for (int k = 0; k < (t->lm ? 1 : 2); k++) {
        ckpt_strings v = {0};
        rc = ckpt_read_vocab(f, which[k], &v, err, n);
        if (rc != CKPT_OK) return rc;
        int i = 0;
        while (i < v.n && i < mine[k]->size && strcmp(v.s[i], mine[k]->tokens[i]) == 0) i++;
        if (i < v.n || i < mine[k]->size) {
            if (i < v.n && i < mine[k]->size)
                snprintf(why, sizeof why, "id %d is \"%.40s\" there and \"%.40s\" here", i, v.s[i],
                         mine[k]->tokens[i]);
            else
                snprintf(why, sizeof why, "%d tokens there, %d here", v.n, mine[k]->size);
            snprintf(err, n,
                     "%.200s does not match this run: /vocab/%s differs from the vocabulary "
                     "built from the data (%.200s; did the data change?)",
                     path, which[k], why);
            rc = CKPT_EMISMATCH;
        }
        ckpt_strings_free(&v);
        if (rc != CKPT_OK) return rc;
    }
    return CKPT_OK;
}

/* Restores parameters, optimizer and position from a checkpoint (read by
 * rank 0, broadcast to the others). */
static void resume_from(trainer *t, const char *path)
{
    char err[ERRLEN];
    param_table *pt = model_params(t->m);
    long pos[3] = {0, 0, 0};
    double figs[2] = {NAN, 0}; /* early stopping: best, evaluations since */
    int rc = CKPT_OK;
    if (t->rank == 0) {
        ckpt_file *f;
        ckpt_train tr = {0};
        rc = ckpt_open(&f, path, err, sizeof err);
        if (rc == CKPT_OK) {
            rc = check_same_run(t, f, path, err, sizeof err);
            if (rc == CKPT_OK) rc = ckpt_read_params(f, pt, err, sizeof err);
            if (rc == CKPT_OK) rc = ckpt_read_optimizer(f, pt, &t->opt, err, sizeof err);
            if (rc == CKPT_OK) rc = ckpt_read_train(f, &tr, err, sizeof err);
            if (rc == CKPT_OK && t->carry_state) {
                int dims[3] = {t->cfg.layers, t->cfg.batch, t->cfg.hidden}, fh = 0, fc = 1;
                rc = ckpt_read_state(f, "state_h", t->gstate_h, dims, &fh, err, sizeof err);
                if (rc == CKPT_OK && t->mc.cell == CELL_LSTM)
                    rc = ckpt_read_state(f, "state_c", t->gstate_c, dims, &fc, err, sizeof err);
                if (rc == CKPT_OK && tr.batch_in_epoch > 0 && !(fh && fc)) {
                    /* a checkpoint of seqpar before 0.1's issue-5 work: loadable */
                    fprintf(stderr,
                            "seqpar train: warning: %s has no carried hidden state "
                            "(/train/state_h%s); the streams restart from zeros mid-epoch, "
                            "so this resume is not exact\n",
                            path, t->mc.cell == CELL_LSTM ? ", state_c" : "");
                    memset(t->gstate_h, 0, sizeof(float) * dims[0] * dims[1] * dims[2]);
                    memset(t->gstate_c, 0, sizeof(float) * dims[0] * dims[1] * dims[2]);
                }
            }
            t->last_loss = tr.train_loss, t->last_valid_loss = tr.valid_loss;
            t->last_valid_bleu = tr.valid_bleu;
            figs[0] = tr.best, figs[1] = (double)tr.since_best;
            if (rc == CKPT_OK && tr.global_batch != t->cfg.batch) {
                snprintf(err, sizeof err, "%s: global batch %d, the run uses %d", path,
                         tr.global_batch, t->cfg.batch);
                rc = CKPT_EMISMATCH;
            }
            ckpt_close(f);
            pos[0] = tr.step, pos[1] = tr.epoch, pos[2] = tr.batch_in_epoch;
        }
    }
    comm_bcast(&rc, sizeof rc, 0);
    if (rc != CKPT_OK) die0(t, 2, "--resume: %s", err);
    comm_bcast(pt->data, pt->total * sizeof(float), 0);
    comm_bcast(pos, sizeof pos, 0);
    long ot = t->opt.t;
    comm_bcast(&ot, sizeof ot, 0);
    t->opt.t = ot;
    if (t->opt.m) {
        comm_bcast(t->opt.m, pt->total * sizeof(float), 0);
        comm_bcast(t->opt.v, pt->total * sizeof(float), 0);
    }
    t->step = pos[0], t->epoch = pos[1], t->batch_in_epoch = pos[2];
    comm_bcast(figs, sizeof figs, 0);
    t->best = figs[0], t->since_best = (long)figs[1];
    if (t->carry_state) {
        const size_t n = (size_t)t->cfg.layers * t->cfg.batch * t->cfg.hidden;
        comm_bcast(t->gstate_h, n * sizeof(float), 0);
        comm_bcast(t->gstate_c, n * sizeof(float), 0);
        state_rows(t, t->gstate_h, t->state_h, 0);
        state_rows(t, t->gstate_c, t->state_c, 0);
    }
    if (t->rank == 0) publish_event(t, "resume", "resumed from %s at step %ld", path, t->step);
    comm_printf0("resumed from %s at step %ld (epoch %ld, batch %ld)\n", path, t->step,
                 t->epoch + 1, t->batch_in_epoch); /* 1-based, as the progress lines */
}

/* ------------------------------------------------------------------ memory */

/* This process's mapped bytes (/proc/self/statm), or -1 where unknown. */
static double vm_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    const int ok = f && fscanf(f, "%lu", &pages) == 1;
    if (f) fclose(f);
    const long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (double)pages * (double)page : -1.0;
}

/* A cgroup v2 limit's room for this process: memory.max less what the
 * group holds beyond its reclaimable file cache (inactive_file), or -1. */
static double cgroup_room(void)
{
    char rel[600] = "", line[600];
    FILE *f = fopen("/proc/self/cgroup", "r");
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            snprintf(rel, sizeof rel, "%s", line + 3);
            rel[strcspn(rel, "\n")] = '\0';
        }
    if (f) fclose(f);
    if (!rel[0]) return -1.0; /* cgroup v1, or none */
    char path[700];
    unsigned long long max = 0, cur = 0, inactive = 0;
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.max", strcmp(rel, "/") ? rel : "");
    FILE *fm = fopen(path, "r");
    int ok = fm && fscanf(fm, "%llu", &max) == 1; /* "max": no limit */
    if (fm) fclose(fm);
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.current", strcmp(rel, "/") ? rel : "");
    FILE *fc = fopen(path, "r");
    ok = ok && fc && fscanf(fc, "%llu", &cur) == 1;
    if (fc) fclose(fc);
    if (!ok) return -1.0;
    snprintf(path, sizeof path, "/sys/fs/cgroup%s/memory.stat", strcmp(rel, "/") ? rel : "");
    FILE *fs = fopen(path, "r");
    while (fs && fgets(line, sizeof line, fs))
        if (sscanf(line, "inactive_file %llu", &inactive) == 1) break;
    if (fs) fclose(fs);
    const double held = (double)cur - (double)inactive;
    return (double)max > held ? (double)max - held : 0.0;
}

/* Bytes this node can still give (MemAvailable, and a cgroup v2 limit's
 * room when lower), or -1 where unknown. SEQPAR_MEM_AVAILABLE_MB (MB of
 * 10^6 bytes, for the node) replaces it: a share of a node, or a test. */
static double mem_available(void)
{
    const char *env = getenv("SEQPAR_MEM_AVAILABLE_MB");
    if (env && *env) {
        char *end;
        const double mb = strtod(env, &end);
        if (*end == '\0' && mb > 0) return mb * 1e6;
    }
    double avail = -1.0;
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long kb;
        if (sscanf(line, "MemAvailable: %lu kB", &kb) == 1) avail = (double)kb * 1024.0;
    }
    if (f) fclose(f);
    const double room = cgroup_room();
    if (room >= 0 && (avail < 0 || room < avail)) avail = room;
    return avail;
}

/* The model's buffers are reserved, not yet written (fresh pages from
 * calloc): what they and the optimizer's moments will take, times the ranks
 * of this node, must fit in the memory available, or the run stops here
 * with one line instead of being killed when the pages fill. */
static void check_memory(trainer *t, double vm0)
{
    const double vm1 = vm_bytes(), avail = mem_available();
    int fits = 1;
    char msg[ERRLEN * 2] = "";
    if (vm0 >= 0 && vm1 >= vm0 && avail > 0) {
        const param_table *pt = model_params(t->m);
        const int adam = strcmp(t->cfg.optimizer, "adam") == 0, local = comm_local_size();
        const double pbytes = (double)pt->total * sizeof(float), mbytes = vm1 - vm0;
        /* --workers W: W replicas more, sharing the parameters (at most the
         * trainer's model less its parameters each: fewer rows) */
        const int W = t->cfg.workers > 1 ? t->cfg.workers : 0;
        const double need =
            mbytes + W * (mbytes > pbytes ? mbytes - pbytes : 0.0) + (adam ? 2.0 * pbytes : 0.0);
        fits = need * local <= avail;
        if (!fits) {
            char a[32], b[32], n[32];
            data_size_text(a, sizeof a, need);
            data_size_text(b, sizeof b, avail);
            size_t count = 0; /* without the alignment padding */
            for (int i = 0; i < pt->n; i++) count += pt->t[i].size;
            if (count >= 1000000)
                snprintf(n, sizeof n, "%.1f M", (double)count / 1e6);
            else
                snprintf(n, sizeof n, "%zu", count);
            snprintf(msg, sizeof msg,
                     "the model needs about %s per rank (%s parameters, their gradients%s and "
                     "the workspace for %d rows of %d steps%s) and this node runs %d rank%s, "
                     "but %s is available: choose a smaller --hidden, --embed, --batch or "
                     "--steps, or fewer ranks per node",
                     a, n, adam ? ", Adam's moments" : "", t->bmax, t->cfg.steps,
                     W ? ", and the workers' replicas" : "", local, local > 1 ? "s" : "", b);
        }
    }
    agree(t, fits, 1, msg);
}

/* best.h5 of a run this one does not continue (a fresh start in a used
 * directory, or a resume from a step before the one best.h5 holds) would be
 * replaced at this run's first better evaluation: rank 0 keeps it as
 * best-<its step>.h5 (best-<step>-2.h5 … when taken; never replacing a
 * file), or stops the run when it cannot. */
static void keep_best_aside(trainer *t)
{
    const char *dir = t->cfg.checkpoint_dir;
    if (!dir[0] || !t->have_valid) return;
    int ok = 1;
    char msg[ERRLEN * 3] = "";
    char path[1200];
    snprintf(path, sizeof path, "%s/best.h5", dir);
    struct stat st;
    if (t->rank == 0 && lstat(path, &st) == 0) {
        long step = -1;
        double fig = NAN;
        uint64_t seed = 0;
        ckpt_file *f;
        char err[ERRLEN];
        if (ckpt_open(&f, path, err, sizeof err) == CKPT_OK) {
            ckpt_train tr;
            if (ckpt_read_train(f, &tr, err, sizeof err) == CKPT_OK)
                step = tr.step, fig = tr.best, seed = tr.seed;
            ckpt_close(f);
        }
        /* this run's own: written at or before the resumed step, by a run of
         * its seed, holding the best figure the resumed checkpoint knows */
        const int own = step >= 0 && t->step > 0 && step <= t->step && fig == t->best &&
                        seed == (uint64_t)t->cfg.seed;
        if (!own) {
            char why[120], aside[1300];
            if (step < 0)
                snprintf(why, sizeof why, "it cannot be read");
            else if (t->step == 0)
                snprintf(why, sizeof why, "it holds step %ld of an earlier run", step);
            else if (step > t->step)
                snprintf(why, sizeof why, "it holds step %ld, past the resumed step %ld", step,
                         t->step);
            else
                snprintf(why, sizeof why,
                         "it holds step %ld of another run: its seed or best differ", step);
            int moved = 0;
            for (int k = 1; k <= 1000 && !moved; k++) {
                char n[16] = "";
                if (k > 1) snprintf(n, sizeof n, "-%d", k);
                if (step >= 0)
                    snprintf(aside, sizeof aside, "%s/best-%08ld%s.h5", dir, step, n);
                else
                    snprintf(aside, sizeof aside, "%s/best-unreadable%s.h5", dir, n);
                if (lstat(aside, &st) == 0) continue; /* taken: never replaced */
                /* link then unlink never replaces a file that appeared
                 * meanwhile; rename where the file system has no links */
                if (link(path, aside) == 0) {
                    moved = unlink(path) == 0 ? 1 : -1;
                    if (moved < 0) {
                        const int e = errno;
                        unlink(aside); /* no second name left behind */
                        errno = e;
                    }
                } else if (errno != EEXIST)
                    moved = rename(path, aside) == 0 ? 1 : -1;
            }
            if (moved == 1) {
                fprintf(stderr,
                        "seqpar train: warning: %s is not from the run this one continues (%s); "
                        "kept as %s\n",
                        path, why, aside);
            } else {
                ok = 0;
                snprintf(msg, sizeof msg,
                         "%s is not from the run this one continues (%s) and cannot be kept "
                         "aside (%s): stopping rather than replace it; move it, or choose "
                         "another --checkpoint-dir",
                         path, why, moved ? strerror(errno) : "1000 names taken");
            }
        }
    }
    agree(t, ok, 1, msg);
}

/* --resume auto: the newest checkpoint of the directory that verifies
 * (rank 0 looks, warning about each one it skips). Returns 0 when there is
 * none (a fresh start). */
static int find_resume(trainer *t, char *out, size_t n)
{
    const char *dir = t->cfg.checkpoint_dir;
    if (!dir[0]) die0(t, 2, "--resume auto needs --checkpoint-dir");
    int found = 0;
    if (t->rank == 0) {
        long steps[CKPT_LIST_MAX];
        int k = ckpt_list_dir(dir, steps, CKPT_LIST_MAX);
        for (int i = 0; i < k && !found; i++) {
            char path[1200], err[ERRLEN];
            ckpt_path(path, sizeof path, dir, steps[i]);
            if (ckpt_verify(path, err, sizeof err) == CKPT_OK) {
                snprintf(out, n, "%s", path);
                found = 1;
            } else {
                fprintf(stderr, "seqpar train: warning: skipping %s\n", err);
            }
        }
    }
    comm_bcast(&found, sizeof found, 0);
    if (found) comm_bcast(out, n, 0);
    return found;
}

/* ------------------------------------------------------------------- steps */

static void on_grad_ready(void *ctx, int first, int end)
{
    trainer *t = ctx;
    if (comm_reducer_ready(t->red, first, end) != COMM_OK) t->comm_failed = 1;
}

/* The reducer over the parameter table (see comm.h); the model announces
 * finished gradients to it when --overlap on. */
static void setup_reducer(trainer *t)
{
    param_table *pt = model_params(t->m);
    t->toff = calloc((size_t)pt->n, sizeof(size_t));
    t->tsize = calloc((size_t)pt->n, sizeof(size_t));
    int ok = t->toff && t->tsize;
    for (int i = 0; ok && i < pt->n; i++) t->toff[i] = pt->t[i].offset, t->tsize[i] = pt->t[i].size;
    const int overlap = strcmp(t->cfg.overlap, "on") == 0;
    /* the tail (loss and token sums) sits at grad + total, after the padding */
    ok = ok &&
         comm_reducer_create(&t->red, pt->grad, pt->total, t->toff, t->tsize, pt->n,
                             PARAM_GRAD_TAIL, (size_t)t->cfg.bucket_kb * 1024, overlap) == COMM_OK;
    agree(t, ok, 1,
          "cannot set up the gradient reducer (out of memory, or a tensor of more than 2^31 "
          "elements)");
    if (overlap) model_set_grad_hook(t->m, on_grad_ready, t);
}

/* ------------------------------------------------------------ workers */

static int fill_batch(const trainer *t, const data_slice *sl, worker *k);

/* A worker's forward and backward on its rows of the step's batch. */
static void work_step(void *ctx, int w)
{
    trainer *t = ctx;
    worker *k = &t->wk[w];
    data_sampler_slice(k->smp, t->epoch, t->batch_in_epoch, &k->slice);
    const int B = fill_batch(t, &k->slice, k);
    /* an LM's carried state: the rank's buffer, or with several workers a
     * copy of this worker's rows (a contiguous run of the rank's) */
    float *sh = t->carry_state ? t->state_h : NULL, *sc = t->carry_state ? t->state_c : NULL;
    const int rows = t->row_hi - t->row_lo, off = k->slice.lo - t->row_lo;
    if (sh && t->nworkers > 1) {
        sh = k->st_h, sc = k->st_c;
        copy_state_rows(t, t->state_h, rows, off, sh, B, 0);
        copy_state_rows(t, t->state_c, rows, off, sc, B, 0);
    }
    model_batch b = {.B = B,
                     .T = t->cfg.steps,
                     .src = k->src,
                     .tgt = k->tgt,
                     .tgt_valid = t->lm ? NULL : k->valid_len,
                     .example = k->example,
                     .seed = (uint64_t)t->cfg.seed,
                     .step = (uint64_t)t->step,
                     .state_h = sh,
                     .state_c = sc};
    k->rc = model_step(k->m, &b, 1, &k->loss_sum, &k->ntok);
    model_matmul_flops(k->m, &b, &k->fp, &k->fe);
    if (sh && sh != t->state_h) {
        copy_state_rows(t, t->state_h, rows, off, sh, B, 1);
        copy_state_rows(t, t->state_c, rows, off, sc, B, 1);
    }
}

/* The rank's gradient = the workers' summed in worker order (two workers:
 * the bits of a two-rank allreduce), over this worker's range; the workers'
 * are left zeroed for the next step. A chunk at a time, and in one rank
 * also its Σ g² while the chunk is in cache (the norm, grad_norm's bits). */
static void work_sum(void *ctx, int w)
{
    trainer *t = ctx;
    const worker *k = &t->wk[w];
    const param_table *pt = model_params(t->m);
    float *restrict sum = pt->grad;
    for (size_t a = k->lo; a < k->hi; a += GRAD_CHUNK) {
        const size_t b = k->hi - a < GRAD_CHUNK ? k->hi : a + GRAD_CHUNK;
        const float *restrict g0 = model_params(t->wk[0].m)->grad;
        const float *restrict g1 = model_params(t->wk[1].m)->grad;
        for (size_t i = a; i < b; i++) sum[i] = g0[i] + g1[i];
        for (int r = 2; r < t->nworkers; r++) {
            const float *restrict g = model_params(t->wk[r].m)->grad;
            for (size_t i = a; i < b; i++) sum[i] += g[i];
        }
        for (int r = 0; r < t->nworkers; r++)
            memset(model_params(t->wk[r].m)->grad + a, 0, (b - a) * sizeof(float));
        if (t->world == 1) grad_chunk_sums(sum, pt->total, a, b, t->chunk_sums);
    }
}

/* Σ g² of this worker's chunks (after the allreduce, with ranks). */
static void work_norm(void *ctx, int w)
{
    trainer *t = ctx;
    const param_table *pt = model_params(t->m);
    grad_chunk_sums(pt->grad, pt->total, t->wk[w].lo, t->wk[w].hi, t->chunk_sums);
}

/* The optimizer's update over this worker's range (optimizer_begin ran). */
static void work_update(void *ctx, int w)
{
    trainer *t = ctx;
    optimizer_apply(&t->opt, model_params(t->m), t->step_scale, t->wk[w].lo, t->wk[w].hi);
}

/* One worker trains the trainer's model on the trainer's batch buffers;
 * several each get a replica, a virtual rank's sampler and their own
 * buffers. A replica is sized for its rows as a rank's model is (the size
 * picks some kernels), so W workers compute what W ranks would; the
 * trainer's model keeps the parameters, the summed gradient and validation. */
static void setup_workers(trainer *t)
{
    const train_config *c = &t->cfg;
    const int W = c->workers, T = c->steps;
    t->nworkers = W;
    t->wk = calloc((size_t)W, sizeof *t->wk);
    agree(t, t->wk != NULL, 1, "out of memory for the workers");
    const size_t total = model_params(t->m)->total;
    const size_t chunks = (total + GRAD_CHUNK - 1) / GRAD_CHUNK;
    if (W == 1) {
        worker *k0 = &t->wk[0];
        k0->m = t->m, k0->smp = &t->sampler, k0->slice.index = t->slice.index;
        k0->src = t->src, k0->tgt = t->tgt, k0->valid_len = t->valid_len;
        k0->example = t->example;
        k0->lo = 0, k0->hi = total;
        return;
    }
    /* rows of a virtual rank: at most ceil(batch / (world·W)) */
    const int vworld = t->world * W, rows = (c->batch + vworld - 1) / vworld;
    const long n = t->lm ? t->stream.n : t->pairs.n;
    const data_sampler_kind kind = t->sampler.kind; /* as load_data parsed --sampler */
    char err[ERRLEN];
    int ok = 1;
    for (int w = 0; w < W && ok; w++) {
        worker *k = &t->wk[w];
        /* whole chunks of the norm (GRAD_CHUNK floats: 64-byte aligned) */
        k->lo = chunks * (size_t)w / (size_t)W * GRAD_CHUNK;
        k->hi = chunks * (size_t)(w + 1) / (size_t)W * GRAD_CHUNK;
        if (k->hi > total) k->hi = total;
        ok = data_sampler_init(&k->sampler, t->lm ? DATA_TASK_LM : DATA_TASK_TRANSLATE, kind, n,
                               c->batch, T, (uint64_t)c->seed, t->rank * W + w, vworld, err,
                               sizeof err) == DATA_OK &&
             (t->lm || data_sampler_set_lengths(&k->sampler, t->pairs.tgt_valid, T) == DATA_OK);
        k->smp = &k->sampler;
        if (!ok) continue;
        model_config mc = t->mc;
        mc.max_batch = rows;
        ok = model_create(&k->m, &mc, err, sizeof err) == MODEL_OK &&
             model_share_params(k->m, t->m) == MODEL_OK;
        if (ok) model_set_bptt(k->m, t->bptt, t->bptt_k);
        k->slice.index = calloc((size_t)rows + 1, sizeof(long));
        k->src = calloc((size_t)rows * T, sizeof(int32_t));
        k->tgt = calloc((size_t)rows * T, sizeof(int32_t));
        k->valid_len = calloc((size_t)rows, sizeof(int32_t));
        k->example = calloc((size_t)rows, sizeof(int64_t));
        ok = ok && k->slice.index && k->src && k->tgt && k->valid_len && k->example;
    }
    for (int w = 0; w < W && ok && t->carry_state; w++) {
        worker *k = &t->wk[w];
        k->st_h = calloc((size_t)c->layers * rows * c->hidden, sizeof(float));
        k->st_c = calloc((size_t)c->layers * rows * c->hidden, sizeof(float));
        ok = k->st_h && k->st_c;
    }
    t->chunk_sums = calloc(chunks, sizeof(double));
    /* waiting workers spin briefly unless they would take a core from
     * another thread of this node's ranks */
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const int spin = (long)W * comm_local_size() <= cores;
    agree(t, ok && t->chunk_sums && comm_pool_create(&t->pool, W, spin) == COMM_OK, 1,
          "cannot set up the workers (out of memory, or no threads)");
}

static void free_workers(trainer *t)
{
    comm_pool_free(t->pool);
    for (int w = 0; t->wk && w < t->nworkers; w++) {
        worker *k = &t->wk[w];
        if (k->smp == &k->sampler) data_sampler_free(&k->sampler);
        free(k->st_h), free(k->st_c);
        if (t->nworkers == 1) continue;
        model_free(k->m);
        free(k->slice.index), free(k->src), free(k->tgt), free(k->valid_len), free(k->example);
    }
    free(t->wk);
    free(t->chunk_sums);
}

static void setup_fault(trainer *t)
{
    t->fault_rank = -1;
    const char *f = getenv("SEQPAR_FAULT_PERTURB");
    if (!f || !*f) return;
    char name[PARAM_NAME_MAX] = "";
    int rank;
    long step;
    if (sscanf(f, "%d:%ld:%95s", &rank, &step, name) != 3 ||
        (t->fault_tensor = param_table_find(model_params(t->m), name)) < 0)
        die0(t, 2,
             "SEQPAR_FAULT_PERTURB: expected RANK:STEP:TENSOR with a tensor of this model; "
             "got '%s'",
             f);
    t->fault_rank = rank, t->fault_step = step;
}

/* Every --replica-check steps: all ranks must hold the same bytes. */
static void check_replicas(trainer *t)
{
    param_table *pt = model_params(t->m);
    if (t->rank == t->fault_rank && t->step == t->fault_step)
        param_data(pt, t->fault_tensor)[0] += 1e-3f;
    if (t->cfg.replica_check <= 0 || t->step % t->cfg.replica_check != 0 || t->world == 1) return;
    int tensor, rank;
    int rc = comm_reducer_check_replicas(t->red, pt->data, &tensor, &rank);
    if (rc == COMM_ERR) die_local(t, 1, "replica check failed to communicate at step %ld", t->step);
    if (rc == 1)
        die0(t, 1,
             "replica check at step %ld: rank %d's parameters differ from rank 0's (first "
             "differing tensor: %s); the replicas diverged, stopping",
             t->step, rank, pt->t[tensor].name);
}

/* Fills a worker's batch arrays from its slice; returns the row count. */
static int fill_batch(const trainer *t, const data_slice *sl, worker *k)
{
    const int T = t->cfg.steps, B = sl->hi - sl->lo;
    for (int r = 0; r < B; r++) {
        long idx = sl->index[r];
        if (!t->lm) {
            memcpy(k->src + (size_t)r * T, t->pairs.src + (size_t)idx * T,
                   (size_t)T * sizeof(int32_t));
            memcpy(k->tgt + (size_t)r * T, t->pairs.tgt + (size_t)idx * T,
                   (size_t)T * sizeof(int32_t));
            k->valid_len[r] = t->pairs.tgt_valid[idx];
            k->example[r] = idx;
        } else {
            const int32_t *ids = t->stream.ids + idx;
            memcpy(k->src + (size_t)r * T, ids, (size_t)T * sizeof(int32_t));
            memcpy(k->tgt + (size_t)r * T, ids + 1, (size_t)T * sizeof(int32_t));
            k->example[r] = sl->lo + r; /* the row of the global batch (an LM stream) */
        }
    }
    return B;
}

/* Appends the tokens of ids[0..n) joined by spaces to *buf (grown as needed;
 * evaluation only, never in a training step). */
static const char *join_tokens(const data_vocab *v, const int32_t *ids, int n, char **buf,
                               size_t *cap)
{
    size_t need = 1;
    for (int k = 0; k < n; k++) need += strlen(v->tokens[ids[k]]) + 1;
    if (need > *cap) {
        char *p = realloc(*buf, need);
        if (!p) return "";
        *buf = p, *cap = need;
    }
    char *w = *buf;
    for (int k = 0; k < n; k++) {
        size_t len = strlen(v->tokens[ids[k]]);
        if (k) *w++ = ' ';
        memcpy(w, v->tokens[ids[k]], len);
        w += len;
    }
    *w = '\0';
    return *buf;
}

/* Validation (--valid N), sharded over the ranks in contiguous blocks; the
 * loss sums, token counts and (translation) BLEU's n-gram match counts and
 * lengths are summed with one allreduce, so the figures are those of one
 * process.
 *  translation: loss on the held-out pairs, and corpus BLEU-4 of their greedy
 *               (or --eval-beam K) translations against the full references;
 *  LM:          loss on the held-out last N tokens, read as LM_EVAL_STREAMS
 *               streams (a fixed count: the figure does not depend on the
 *               world size) in chunks of num_steps with carried state. */
/* The loss of one validation batch, added to sums[0] (loss) and sums[1]
 * (tokens). */
static void eval_loss(trainer *t, const model_batch *b, double *sums)
{
    double l;
    long n;
    if (model_step(t->m, b, 0, &l, &n) != MODEL_OK)
        die_local(t, 1, "invalid validation batch (token id outside the vocabulary)");
    heartbeat(t);
    sums[0] += l, sums[1] += (double)n;
}

static void evaluate(trainer *t, double *loss, double *ppl, double *bleu)
{
    *loss = *ppl = *bleu = NAN;
    if (!t->have_valid) return;
    const int T = t->cfg.steps;
    double sums[12] = {0}; /* loss, tokens, match[4], total[4], hyp_len, ref_len */
    if (t->lm) {
        const int S = t->eval_streams, L = t->cfg.layers, H = t->cfg.hidden;
        const long Ls = (t->lm_valid_n - 1) / S, chunks = Ls / T;
        const int lo = S * t->rank / t->world, hi = S * (t->rank + 1) / t->world, B = hi - lo;
        memset(t->eval_h, 0, (size_t)L * (B > 0 ? B : 1) * H * sizeof(float));
        memset(t->eval_c, 0, (size_t)L * (B > 0 ? B : 1) * H * sizeof(float));
        for (long ch = 0; ch < chunks; ch++) {
            for (int r = 0; r < B; r++) {
                const int32_t *ids = t->lm_valid + (lo + r) * Ls + ch * T;
                memcpy(t->src + (size_t)r * T, ids, (size_t)T * sizeof(int32_t));
                memcpy(t->tgt + (size_t)r * T, ids + 1, (size_t)T * sizeof(int32_t));
            }
            model_batch b = {.B = B,
                             .T = T,
                             .src = t->src,
                             .tgt = t->tgt,
                             .state_h = t->eval_h,
                             .state_c = t->eval_c};
            eval_loss(t, &b, sums);
        }
    } else {
        const data_pairs *v = &t->valid;
        const int k = t->cfg.eval_beam, rows = t->bmax / k, max_len = T;
        long lo = (long)v->n * t->rank / t->world, hi = (long)v->n * (t->rank + 1) / t->world;
        bleu_stats st;
        memset(&st, 0, sizeof st);
        for (long i = lo; i < hi; i += rows) {
            int B = (int)((hi - i) < rows ? (hi - i) : rows);
            model_batch b = {.B = B,
                             .T = T,
                             .src = v->src + (size_t)i * T,
                             .tgt = v->tgt + (size_t)i * T,
                             .tgt_valid = v->tgt_valid + i};
            eval_loss(t, &b, sums);
            int rc = model_beam(t->m, b.src, B, T, DATA_BOS, DATA_EOS, max_len, k,
                                (float)t->cfg.eval_alpha, t->hyp, t->hyp_len);
            if (rc != MODEL_OK) die_local(t, 1, "out of memory decoding the validation set");
            for (int r = 0; r < B; r++)
                bleu_add(&st,
                         join_tokens(t->vtgt, t->hyp + (size_t)r * max_len, t->hyp_len[r], &t->text,
                                     &t->text_cap),
                         v->tgt_text[i + r], 4);
            if (t->rank == 0 && i == lo) {
                /* the first few, for the monitor's dashboard */
                t->nsamples = B < 3 ? B : 3;
                for (int r = 0; r < t->nsamples; r++) {
                    wire_sample *w = &t->samples[r];
                    const int32_t *sid = v->src + (size_t)(i + r) * T;
                    int ns = v->src_valid[i + r];
                    if (ns > 0 && sid[ns - 1] == DATA_EOS) ns--;
                    snprintf(w->src, sizeof w->src, "%s",
                             join_tokens(t->vsrc, sid, ns, &t->text, &t->text_cap));
                    snprintf(w->hyp, sizeof w->hyp, "%s",
                             join_tokens(t->vtgt, t->hyp + (size_t)r * max_len, t->hyp_len[r],
                                         &t->text, &t->text_cap));
                    snprintf(w->ref, sizeof w->ref, "%s", v->tgt_text[i + r]);
                }
            }
        }
        for (int q = 0; q < 4; q++) sums[2 + q] = st.match[q], sums[6 + q] = st.total[q];
        sums[10] = st.hyp_len, sums[11] = st.ref_len;
    }
    comm_allreduce_double(sums, 12);
    if (sums[1] > 0) {
        *loss = sums[0] / sums[1];
        *ppl = exp(*loss);
    }
    if (!t->lm) {
        bleu_stats st;
        for (int q = 0; q < 4; q++) st.match[q] = sums[2 + q], st.total[q] = sums[6 + q];
        st.hyp_len = sums[10], st.ref_len = sums[11];
        double bp, prec[4];
        *bleu = 100.0 * bleu_score(&st, 4, &bp, prec);
    }
}

/* One evaluation: prints it (rank 0), keeps the figures for checkpoints,
 * writes best.h5 when the figure improved (BLEU for translation, perplexity
 * for the LM) and counts evaluations since the best for --early-stop.
 * Returns 1 when training should stop early. */
static int validate(trainer *t, const char *when, long at)
{
    double vl, vp, vb;
    t->validated_step = t->step;
    evaluate(t, &vl, &vp, &vb);
    t->last_valid_loss = vl, t->last_valid_bleu = vb;
    if (t->lm)
        comm_printf0("%s %ld valid loss %.4f ppl %.3f\n", when, at, vl, vp);
    else
        comm_printf0("%s %ld valid loss %.4f ppl %.3f bleu %.2f\n", when, at, vl, vp, vb);
    publish_eval(t, vl, vp, vb);
    const double fig = t->lm ? vp : vb;
    const int better =
        isfinite(fig) && (!isfinite(t->best) || (t->lm ? fig < t->best : fig > t->best));
    if (better) {
        t->best = fig, t->since_best = 0;
        if (t->cfg.checkpoint_dir[0]) {
            char path[1200];
            snprintf(path, sizeof path, "%s/best.h5", t->cfg.checkpoint_dir);
            checkpoint_to(t, path, "training goes on");
        }
    } else {
        t->since_best++;
    }
    if (t->cfg.early_stop > 0 && t->since_best >= t->cfg.early_stop) {
        comm_printf0("early stop at step %ld: no better validation %s in %ld evaluations (best "
                     "%.4g)\n",
                     t->step, t->lm ? "perplexity" : "BLEU", t->since_best, t->best);
        if (t->rank == 0)
            publish_event(t, "early_stop", "no better validation %s in %ld evaluations (best %.4g)",
                          t->lm ? "perplexity" : "BLEU", t->since_best, t->best);
        return 1;
    }
    return 0;
}

static void fmt_duration(char *buf, size_t n, double s)
{
    if (!isfinite(s) || s < 0)
        snprintf(buf, n, "?");
    else if (s < 60)
        snprintf(buf, n, "%.0fs", s);
    else if (s < 3600)
        snprintf(buf, n, "%dm%02ds", (int)s / 60, (int)s % 60);
    else
        snprintf(buf, n, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
}

static void print_kernel_info(int threads, int workers, const char *why)
{
    char advice[400];
    /* on stdout: stderr is kept for errors, one line each */
    if (comm_rank() == 0 && blas_kernel_advice(advice, sizeof advice)) comm_printf0("%s\n", advice);
    if (workers > 1)
        comm_printf0("seqpar %s: %d rank%s x %d workers x 1 OpenBLAS thread (%s; kernel %s)\n",
                     SEQPAR_VERSION, comm_world(), comm_world() > 1 ? "s" : "", workers, why,
                     openblas_get_corename());
    else
        comm_printf0("seqpar %s: %d rank%s x %d OpenBLAS thread%s (%s; kernel %s)\n",
                     SEQPAR_VERSION, comm_world(), comm_world() > 1 ? "s" : "", threads,
                     threads > 1 ? "s" : "", why, openblas_get_corename());
}

int cmd_train(int argc, char **argv)
{
    static trainer T0;
    trainer *t = &T0;
    if (comm_init(&argc, &argv) != COMM_OK) {
        fprintf(stderr, "seqpar train: MPI initialisation failed\n");
        return 1;
    }
    t->rank = comm_rank();
    t->world = comm_world();
    config_defaults(&t->cfg);
    /* only rank 0 speaks about bad options; every rank exits alike */
    int saved_err = -1;
    if (t->rank != 0) {
        fflush(stderr);
        saved_err = dup(2);
        if (!freopen("/dev/null", "w", stderr)) saved_err = -1;
    }
    int rc = config_parse_args(&t->cfg, argc, argv, "seqpar train");
    if (saved_err >= 0) {
        fflush(stderr);
        dup2(saved_err, 2);
        close(saved_err);
    }
    /* every rank's options must parse (mpirun's "A : B" form gives ranks
     * different command lines): when only others fail, the lowest of them
     * parses again aloud */
    const int speaker = first_failing(t, rc == 0);
    if (speaker >= 0) {
        if (speaker != 0 && t->rank == speaker) {
            train_config scratch;
            char prog[40];
            config_defaults(&scratch);
            snprintf(prog, sizeof prog, "seqpar train: rank %d", t->rank);
            config_parse_args(&scratch, argc, argv, prog);
        }
        stop_after(t, speaker, rc == 1 ? 0 : 2);
    }
    check_same_options(t);
    train_config *c = &t->cfg;
    t->lm = strcmp(c->task, "lm") == 0;
    if (parse_bptt(c->bptt, &t->bptt, &t->bptt_k) != 0)
        die0(t, 2,
             "--bptt: expected full, a whole number K >= 1, or random[:K] with K >= 2; "
             "got '%s'",
             c->bptt);
    if (t->bptt != BPTT_FULL && !t->lm) die0(t, 2, "--bptt applies to --task lm only");
    if (c->batch < t->world)
        die0(t, 2, "--batch %d is smaller than the number of ranks (%d): every rank needs rows",
             c->batch, t->world);
    if (c->workers > 1 && c->batch < t->world * c->workers)
        die0(t, 2,
             "--batch %d is smaller than ranks x --workers (%d x %d): every worker needs rows",
             c->batch, t->world, c->workers);
    /* --threads may differ between ranks (check_same_options): every rank
     * must stop alike */
    char why_threads[200];
    snprintf(why_threads, sizeof why_threads,
             "--workers %d runs each worker on one OpenBLAS thread: leave --threads out (or set "
             "it to 1)",
             c->workers);
    agree(t, !(c->workers > 1 && c->threads > 1), 2, why_threads);
    if (c->workers > 1 && strcmp(c->overlap, "on") == 0)
        die0(t, 2, "--overlap on needs --workers 1 (workers sum their gradients after backward)");
    if (c->bidirectional && t->lm) die0(t, 2, "--bidirectional applies to --task translate only");
    if (c->bidirectional && c->hidden % 2)
        die0(t, 2, "--bidirectional needs an even --hidden (H/2 units per direction)");
    if (c->run[0] && !wire_run_id_ok(c->run))
        die0(t, 2, "--run '%s': use 1..%d of the characters A-Z a-z 0-9 . _ : -", c->run,
             WIRE_RUN_MAX);
    if (c->eval_every > 0 && c->valid == 0) die0(t, 2, "--eval-every needs --valid N > 0");
    if (c->early_stop > 0 && c->valid == 0) die0(t, 2, "--early-stop needs --valid N > 0");
    if (c->eval_beam > 1 && t->lm) die0(t, 2, "--eval-beam applies to --task translate only");
    if (c->eval_beam > (c->batch + t->world - 1) / t->world)
        die0(t, 2, "--eval-beam %d: at most the rows per rank (--batch %d over %d rank%s)",
             c->eval_beam, c->batch, t->world, t->world > 1 ? "s" : "");
    if (c->checkpoint_dir[0]) {
        int ok = t->rank != 0 || make_dirs(c->checkpoint_dir) == 0;
        comm_bcast(&ok, sizeof ok, 0);
        if (!ok)
            die0(t, 2, "--checkpoint-dir %s: cannot create or write (%s)", c->checkpoint_dir,
                 strerror(errno));
        int gone = t->rank == 0 ? ckpt_clean_temps(c->checkpoint_dir) : 0;
        if (gone)
            fprintf(stderr,
                    "seqpar train: removed %d unfinished checkpoint write%s (temporary files "
                    "of a killed run) from %s\n",
                    gone, gone > 1 ? "s" : "", c->checkpoint_dir);
    }
    char why[256];
    int threads =
        c->workers > 1 ? setup_threads(1, NULL, 0) : setup_threads(c->threads, why, sizeof why);
    if (c->workers > 1)
        snprintf(why, sizeof why, "--workers %d: one replica and one OpenBLAS thread each",
                 c->workers);
    print_kernel_info(threads, c->workers, why);
    if (c->monitor[0]) open_wire(t);

    load_data(t);
    check_same_data(t);
    t->bmax = (c->batch + t->world - 1) / t->world;
    int rc2 = model_config_from(&t->mc, c, t->vsrc ? t->vsrc->size : 0, t->vtgt->size, t->bmax,
                                "seqpar train");
    if (rc2) die0(t, rc2, "invalid model configuration");
    char err[ERRLEN];
    const double vm0 = vm_bytes();
    agree(t, model_create(&t->m, &t->mc, err, sizeof err) == MODEL_OK, 1, err);
    check_memory(t, vm0);
    model_set_bptt(t->m, t->bptt, t->bptt_k);
    setup_reducer(t);
    setup_fault(t);
    param_table *pt = model_params(t->m);
    model_init_params(t->m, (uint64_t)c->seed);
    /* one source of truth for the initial replica */
    comm_bcast(pt->data, pt->total * sizeof(float), 0);
    opt_kind ok;
    opt_parse(c->optimizer, &ok);
    agree(t, optimizer_init(&t->opt, ok, (float)c->lr, pt) == MODEL_OK, 1,
          "out of memory for the optimizer state");

    const int T = c->steps, bm = t->bmax, L = c->layers, H = c->hidden;
    t->src = calloc((size_t)bm * T, sizeof(int32_t));
    t->tgt = calloc((size_t)bm * T, sizeof(int32_t));
    t->valid_len = calloc((size_t)bm, sizeof(int32_t));
    t->example = calloc((size_t)bm, sizeof(int64_t));
    t->slice.index = calloc((size_t)bm + 1, sizeof(long));
    t->state_h = calloc((size_t)L * bm * H, sizeof(float));
    t->state_c = calloc((size_t)L * bm * H, sizeof(float));
    t->carry_state = t->lm && t->sampler.kind == DATA_SAMPLER_SEQUENTIAL;
    t->row_lo = (int)((long)c->batch * t->rank / t->world);
    t->row_hi = (int)((long)c->batch * (t->rank + 1) / t->world);
    t->last_loss = t->last_valid_loss = t->last_valid_bleu = t->best = NAN;
    t->saved_step = t->validated_step = -1;
    t->hyp = calloc((size_t)bm * T, sizeof(int32_t));
    t->hyp_len = calloc((size_t)bm, sizeof(int));
    t->eval_h = calloc((size_t)L * LM_EVAL_STREAMS * H, sizeof(float));
    t->eval_c = calloc((size_t)L * LM_EVAL_STREAMS * H, sizeof(float));
    agree(t, t->hyp && t->hyp_len && t->eval_h && t->eval_c, 1,
          "out of memory for the validation buffers");
    if (t->carry_state) {
        t->gstate_h = calloc((size_t)L * c->batch * H, sizeof(float));
        t->gstate_c = calloc((size_t)L * c->batch * H, sizeof(float));
    }
    agree(t,
          t->src && t->tgt && t->valid_len && t->example && t->slice.index && t->state_h &&
              t->state_c && (!t->carry_state || (t->gstate_h && t->gstate_c)),
          1, "out of memory for the batch buffers");
    setup_workers(t);

    if (c->resume[0]) {
        char path[1200];
        if (strcmp(c->resume, "auto") == 0) {
            if (find_resume(t, path, sizeof path))
                resume_from(t, path);
            else
                comm_printf0("--resume auto: no checkpoint in %s, starting fresh\n",
                             c->checkpoint_dir);
        } else {
            resume_from(t, c->resume);
        }
    }
    keep_best_aside(t);

    size_t nparams = 0;
    for (int i = 0; i < pt->n; i++) nparams += pt->t[i].size;
    long per_epoch = data_sampler_batches(&t->sampler, t->epoch);
    long total_steps = c->epochs * per_epoch;
    if (c->max_steps > 0 && c->max_steps < total_steps) total_steps = c->max_steps;
    char vocab[64];
    if (t->vsrc)
        snprintf(vocab, sizeof vocab, "%d -> %d", t->vsrc->size, t->vtgt->size);
    else
        snprintf(vocab, sizeof vocab, "%d", t->vtgt->size);
    char batches[160];
    if (!t->lm && t->pairs.n < c->batch) /* the one batch is the whole corpus */
        snprintf(batches, sizeof batches, "1 batch/epoch of all %d pairs (fewer than --batch %d)",
                 t->pairs.n, c->batch);
    else
        snprintf(batches, sizeof batches, "%ld batch%s/epoch of %d", per_epoch,
                 per_epoch == 1 ? "" : "es", c->batch);
    char summary[800];
    snprintf(summary, sizeof summary,
             "%s %s: %d layer%s, embed %d, hidden %d, %zu parameters; %s %ld %s, vocab %s; "
             "%s, %ld step%s",
             t->lm ? "lm" : "seq2seq", c->cell, L, L > 1 ? "s" : "", c->embed, H, nparams,
             c->dataset, t->lm ? t->stream.n : (long)t->pairs.n, t->lm ? "tokens" : "pairs", vocab,
             batches, total_steps, total_steps == 1 ? "" : "s");
    comm_printf0("%s\n", summary);
    if (t->rank == 0)
        publish_event(t, "start", "%s; %d rank%s; %s", summary, t->world, t->world > 1 ? "s" : "",
                      t->step > 0 ? "resumed" : "fresh start");

    const int sequential_lm = t->carry_state;
    double t_start = comm_time(), t_win = t_start;
    /* loss sums: the current logging window and the current epoch */
    double win_loss = 0, win_tok = 0, ep_loss = 0, ep_tok = 0;
    double last_win_loss = NAN, last_ep_loss = NAN; /* per token */
    int ep_whole = 0; /* this process ran the current epoch from its first batch */
    double run_tok = 0;
    long start_step = t->step;
    int stop = 0; /* --max-steps reached, or early stopping mid-epoch */
    while (t->epoch < c->epochs && !stop) {
        long nb = data_sampler_batches(&t->sampler, t->epoch);
        ep_whole = t->batch_in_epoch == 0;
        if (sequential_lm && t->batch_in_epoch == 0) {
            memset(t->state_h, 0, (size_t)L * bm * H * sizeof(float));
            memset(t->state_c, 0, (size_t)L * bm * H * sizeof(float));
        }
        ep_loss = ep_tok = 0;
        while (t->batch_in_epoch < nb) {
            if (c->max_steps > 0 && t->step >= c->max_steps) {
                stop = 1;
                break;
            }
            /* the optimizer leaves the gradient zeroed; only a step without
             * tokens (no update) leaves it to clear here */
            if (t->grad_dirty) param_zero_grad(pt), t->grad_dirty = 0;
            comm_reducer_begin(t->red);
            comm_pool_run(t->pool, work_step, t);
            double loss_sum = 0.0;
            long ntok = 0;
            float tail_loss = 0.0f, tail_tok = 0.0f; /* summed as the allreduce sums ranks */
            for (int w = 0; w < t->nworkers; w++) {
                const worker *k = &t->wk[w];
                if (k->rc != MODEL_OK)
                    die_local(t, 1, "invalid batch at step %ld (token id outside the vocabulary)",
                              t->step);
                loss_sum += k->loss_sum, ntok += k->ntok;
                tail_loss += (float)k->loss_sum, tail_tok += (float)k->ntok;
                t->flops[0] += k->fp, t->flops[1] += k->fe;
            }
            if (t->nworkers > 1) comm_pool_run(t->pool, work_sum, t);
            /* the step's sums ride in the gradient buffer's tail: one allreduce */
            float *tail = pt->grad + pt->total;
            tail[TAIL_LOSS] = tail_loss;
            tail[TAIL_TOKENS] = tail_tok;
            t->wl_loss += loss_sum, t->wl_tok += (double)ntok;
            if (comm_reducer_finish(t->red) != COMM_OK || t->comm_failed)
                die_local(t, 1, "gradient allreduce failed at step %ld", t->step);
            double gl = tail[TAIL_LOSS], gt = tail[TAIL_TOKENS];
            if (gt > 0 && t->nworkers == 1) {
                /* average over the global tokens, clip, update and zero the
                 * gradient in one pass */
                t->grad_norm = optimizer_update(&t->opt, pt, gt, c->clip);
            } else if (gt > 0) {
                /* the same, shared out over the workers: the norm (grad_norm's
                 * bits) from the chunks' sums, then the update */
                if (t->world > 1) comm_pool_run(t->pool, work_norm, t);
                const double norm = grad_norm_of_chunks(t->chunk_sums, pt->total) / gt;
                t->step_scale = optimizer_update_scale(norm, gt, c->clip);
                optimizer_begin(&t->opt);
                comm_pool_run(t->pool, work_update, t);
                t->grad_norm = norm;
            } else {
                t->grad_dirty = 1;
            }
            if (!isfinite(gl))
                die0(t, 1, "loss is not finite at step %ld (lower --lr or set --clip)", t->step);
            t->step++;
            check_replicas(t);
            heartbeat(t);
            win_loss += gl, win_tok += gt, ep_loss += gl, ep_tok += gt, run_tok += gt;
            if (t->step % c->log_every == 0 || t->step == total_steps) {
                double now = comm_time();
                double tps = win_tok / (now - t_win > 1e-9 ? now - t_win : 1e-9);
                double rate = (double)(t->step - start_step) / (now - t_start);
                char eta[32];
                fmt_duration(eta, sizeof eta, (double)(total_steps - t->step) / rate);
                last_win_loss = win_loss / (win_tok > 0 ? win_tok : 1);
                t->last_loss = last_win_loss;
                comm_printf0("step %ld/%ld epoch %ld loss %.4f ppl %.3f tok/s %.0f ETA %s\n",
                             t->step, total_steps, t->epoch + 1, last_win_loss, exp(last_win_loss),
                             tps, eta);
                publish_train(t, now - t_win);
                t->wl_loss = t->wl_tok = 0;
                t_win = now, win_loss = win_tok = 0;
            }
            /* the position is always that of the next batch to take */
            t->batch_in_epoch++;
            if (c->eval_every > 0 && t->step % c->eval_every == 0 && validate(t, "step", t->step)) {
                stop = 1;
                break;
            }
            if (c->checkpoint_every > 0 && t->step % c->checkpoint_every == 0 &&
                t->batch_in_epoch < nb)
                checkpoint_or_stop(t);
        }
        if (stop) break;
        if (ep_tok > 0) last_ep_loss = ep_loss / ep_tok;
        t->epoch++;
        t->batch_in_epoch = 0;
        /* validated at the epoch's end unless --eval-every just did, on the
         * same parameters (which would count against the patience twice);
         * the position is already the next epoch's, so best.h5 resumes there */
        if (t->have_valid && t->validated_step != t->step && validate(t, "epoch", t->epoch)) break;
        if (c->checkpoint_every > 0 && t->step % c->checkpoint_every == 0) checkpoint_or_stop(t);
    }
    double elapsed = comm_time() - t_start;
    if (win_tok > 0) /* the steps since the last progress line */
        t->last_loss = last_win_loss = win_loss / win_tok;
    if (t->step > start_step) {
        /* the work done, over all ranks, and the largest rank's peak memory */
        double w[3] = {t->flops[0], t->flops[1], run_tok};
        comm_allreduce_double(w, 2);
        struct rusage ru;
        double rss[1] = {getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0};
        comm_allreduce_max_double(rss, 1);
        long steps = t->step - start_step;
        comm_printf0("matmul work: %.3g GFLOP per step as the padded model defines it, %.3g "
                     "executed (%.0f%%); %.2f GFLOP/s executed over all ranks, %.3g MFLOP per "
                     "target token; peak memory %.0f MB (largest rank)\n",
                     w[0] / steps / 1e9, w[1] / steps / 1e9, 100.0 * w[1] / (w[0] > 0 ? w[0] : 1),
                     w[1] / elapsed / 1e9, w[2] > 0 ? w[1] / w[2] / 1e6 : 0.0, rss[0]);
    }
    if (t->world > 1 && t->step > start_step) {
        /* the slowest rank's share: what the job as a whole lost to communication */
        double share[2] = {comm_reducer_seconds(t->red), elapsed};
        comm_allreduce_max_double(share, 2);
        comm_printf0("gradient allreduce (%s, %d bucket%s): %.1f%% of training time spent in "
                     "communication (%.2f s of %.2f s, slowest rank)\n",
                     strcmp(c->overlap, "on") == 0 ? "overlapped" : "after backward",
                     comm_reducer_buckets(t->red), comm_reducer_buckets(t->red) > 1 ? "s" : "",
                     100.0 * share[0] / share[1], share[0], share[1]);
    }
    int ckpt_ok = 1;
    if (t->step > start_step)
        ckpt_ok = checkpoint(t, "the steps since the last checkpoint are not saved") == 0;
    if (t->step == start_step)
        comm_printf0("nothing to train: step %ld already reaches --epochs %ld / --max-steps %ld\n",
                     t->step, c->epochs, c->max_steps);
    /* the summary's loss: the last epoch when this run ended on an epoch it ran
     * whole, else the last logging window (DESIGN.md, command line) */
    double final_loss = !stop && ep_whole && isfinite(last_ep_loss) ? last_ep_loss : last_win_loss;
    double tps = elapsed > 0 ? run_tok / elapsed : 0.0;
    /* epoch: the (1-based) epoch the last step belonged to */
    long last_epoch = stop && t->batch_in_epoch > 0 ? t->epoch + 1 : t->epoch;
    comm_printf0("done step=%ld epoch=%ld loss=%.4f ppl=%.4f tokens_per_s=%.0f\n", t->step,
                 last_epoch, final_loss, exp(final_loss), tps);
    publish_event(t, "end", "done step=%ld epoch=%ld loss=%.4f ppl=%.4f tokens_per_s=%.0f%s",
                  t->step, last_epoch, final_loss, exp(final_loss), tps,
                  ckpt_ok ? "" : "; the last checkpoint failed");
    if (t->pub && wire_pub_dropped(t->pub) > 0)
        fprintf(stderr, "seqpar train: rank %d: %ld metrics messages dropped (monitor away)\n",
                t->rank, wire_pub_dropped(t->pub));
    close_wire(t);
    int exit_code = ckpt_ok ? 0 : 1;

    free_workers(t);
    free(t->src), free(t->tgt), free(t->valid_len), free(t->example), free(t->slice.index);
    free(t->state_h), free(t->state_c), free(t->gstate_h), free(t->gstate_c);
    free(t->hyp), free(t->hyp_len), free(t->text), free(t->eval_h), free(t->eval_c);
    optimizer_free(&t->opt);
    comm_reducer_free(t->red);
    free(t->toff), free(t->tsize);
    model_free(t->m);
    data_sampler_free(&t->sampler);
    if (t->lm)
        data_stream_free(&t->stream);
    else {
        if (t->have_valid) data_pairs_free(&t->valid);
        data_pairs_free(&t->pairs);
    }
    comm_finalize();
    return exit_code;
}

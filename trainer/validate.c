/* Validation and its consequences (validate.h). */
#include "validate.h"

#include "schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bleu.h"
#include "comm.h"
#include "exact_sum.h"
#include "progress.h"
#include "step_exact.h"
#include "stop_signal.h"

struct validator {
    const train_config *cfg;
    const train_data *data;
    model *m;
    int rank, world, rows;  /* rows: this rank's batch rows, the workspace's size */
    int32_t *src, *tgt;     /* LM: (rows, T) a chunk of the held-out streams */
    float *eval_h, *eval_c; /* LM: (L, streams, H) validation state */
    int32_t *hyp;           /* (rows, T) decoded ids */
    int *hyp_len;           /* (rows) */
    char *text;             /* a hypothesis as text */
    size_t text_cap;
    wire_sample samples[3]; /* rank 0: sample translations of the last validation */
    int nsamples;
    long last_step; /* the step of the last validation (-1: none) */
    /* --deterministic: fixed 8-row shards on a replica sized for one (its
     * beams included), the loss sum in an exact lane (step_exact.h) */
    model *shard_m;
    int64_t lane;
    long lane_count;
    int lane_scale, lane_bad;
    /* the evaluation in progress */
    telemetry *tel;
    ranks *r;
};

int validator_create(validator **out, const train_config *c, const train_data *d, model *m,
                     int rank, int world, char *err, size_t n)
{
    validator *v = calloc(1, sizeof *v);
    *out = v;
    if (!v) {
        snprintf(err, n, "out of memory for the validation buffers");
        return -1;
    }
    const int T = c->steps, L = c->layers, H = c->hidden;
    int bm = (c->batch + world - 1) / world;
    v->cfg = c, v->data = d, v->m = m, v->rank = rank, v->world = world;
    if (c->deterministic) {
        model_config mc = *model_get_config(m);
        bm = mc.max_batch = EXACT_SHARD_ROWS * (d->lm ? 1 : c->eval_beam);
        if (model_create(&v->shard_m, &mc, err, n) != MODEL_OK ||
            model_share_params(v->shard_m, m) != MODEL_OK)
            return -1;
        v->m = v->shard_m;
    }
    v->rows = bm;
    v->last_step = -1;
    v->src = calloc((size_t)bm * T, sizeof(int32_t));
    v->tgt = calloc((size_t)bm * T, sizeof(int32_t));
    v->hyp = calloc((size_t)bm * T, sizeof(int32_t));
    v->hyp_len = calloc((size_t)bm, sizeof(int));
    v->eval_h = calloc((size_t)L * LM_EVAL_STREAMS * H, sizeof(float));
    v->eval_c = calloc((size_t)L * LM_EVAL_STREAMS * H, sizeof(float));
    if (v->src && v->tgt && v->hyp && v->hyp_len && v->eval_h && v->eval_c) return 0;
    snprintf(err, n, "out of memory for the validation buffers");
    return -1;
}

void validator_free(validator *v)
{
    if (!v) return;
    model_free(v->shard_m);
    free(v->src), free(v->tgt), free(v->hyp), free(v->hyp_len), free(v->text);
    free(v->eval_h), free(v->eval_c);
    free(v);
}

long validator_last_step(const validator *v)
{
    return v->last_step;
}

/* The tokens of ids[0..n) joined by spaces, in v's text buffer (grown as
 * needed; evaluation only, never in a training step). */
static const char *join_tokens(validator *v, const data_vocab *voc, const int32_t *ids, int n)
{
    size_t need = 1;
    for (int k = 0; k < n; k++) need += strlen(voc->tokens[ids[k]]) + 1;
    if (need > v->text_cap) {
        char *p = realloc(v->text, need);
        if (!p) return "";
        v->text = p, v->text_cap = need;
    }
    char *w = v->text;
    for (int k = 0; k < n; k++) {
        const size_t len = strlen(voc->tokens[ids[k]]);
        if (k) *w++ = ' ';
        memcpy(w, voc->tokens[ids[k]], len);
        w += len;
    }
    *w = '\0';
    return v->text;
}

/* The loss of one validation batch, added to sums[0] (loss) and sums[1]
 * (tokens). */
static void eval_loss(validator *v, const model_batch *b, double *sums)
{
    double l;
    long n;
    if (model_step(v->m, b, 0, &l, &n) != MODEL_OK)
        ranks_die_local(v->r, 1, "invalid validation batch (token id outside the vocabulary)");
    telemetry_heartbeat(v->tel);
    stop_signal_fault("validate", v->rank, v->last_step);
    if (v->shard_m) {
        if (exact_add_double(&v->lane, l, v->lane_scale, v->lane_count) != EXACT_OK)
            v->lane_bad = 1;
    } else {
        sums[0] += l;
    }
    sums[1] += (double)n;
}

static void eval_streams(validator *v, int lo, int hi, double *sums);

/* An LM: this rank's share of the held-out streams, in chunks of num_steps
 * with carried state. */
static void eval_lm(validator *v, double *sums)
{
    const int S = v->data->eval_streams;
    int lo = S * v->rank / v->world, hi = S * (v->rank + 1) / v->world;
    if (v->shard_m) { /* whole shards of streams, one shard at a time */
        step_exact_rows(S, v->rank, v->world, &lo, &hi);
        for (int g = lo; g < hi; g += EXACT_SHARD_ROWS)
            eval_streams(v, g, g + EXACT_SHARD_ROWS < hi ? g + EXACT_SHARD_ROWS : hi, sums);
        return;
    }
    eval_streams(v, lo, hi, sums);
}

/* Streams [lo, hi) as one batch, from zero state, chunk after chunk. */
static void eval_streams(validator *v, int lo, int hi, double *sums)
{
    const train_data *d = v->data;
    const int T = v->cfg->steps, S = d->eval_streams, L = v->cfg->layers, H = v->cfg->hidden;
    const long Ls = (d->lm_valid_n - 1) / S, chunks = Ls / T;
    const int B = hi - lo;
    memset(v->eval_h, 0, (size_t)L * (B > 0 ? B : 1) * H * sizeof(float));
    memset(v->eval_c, 0, (size_t)L * (B > 0 ? B : 1) * H * sizeof(float));
    for (long ch = 0; ch < chunks; ch++) {
        for (int r = 0; r < B; r++) {
            const int32_t *ids = d->lm_valid + (lo + r) * Ls + ch * T;
            memcpy(v->src + (size_t)r * T, ids, (size_t)T * sizeof(int32_t));
            memcpy(v->tgt + (size_t)r * T, ids + 1, (size_t)T * sizeof(int32_t));
        }
        model_batch b = {.B = B,
                         .T = T,
                         .src = v->src,
                         .tgt = v->tgt,
                         .state_h = v->eval_h,
                         .state_c = v->eval_c};
        eval_loss(v, &b, sums);
    }
}

/* Rank 0's first few translations, for the monitor's dashboard. */
static void keep_samples(validator *v, long i, int B)
{
    const data_pairs *p = &v->data->valid;
    const int T = v->cfg->steps;
    v->nsamples = B < 3 ? B : 3;
    for (int r = 0; r < v->nsamples; r++) {
        wire_sample *w = &v->samples[r];
        const int32_t *sid = p->src + (size_t)(i + r) * T;
        int ns = p->src_valid[i + r];
        if (ns > 0 && sid[ns - 1] == DATA_EOS) ns--;
        snprintf(w->src, sizeof w->src, "%s", join_tokens(v, v->data->vsrc, sid, ns));
        snprintf(w->hyp, sizeof w->hyp, "%s",
                 join_tokens(v, v->data->vtgt, v->hyp + (size_t)r * T, v->hyp_len[r]));
        snprintf(w->ref, sizeof w->ref, "%s", p->tgt_text[i + r]);
    }
}

/* Translation: loss and BLEU statistics of this rank's block of held-out
 * pairs, into sums[0..12). */
static void eval_pairs(validator *v, double *sums)
{
    const data_pairs *p = &v->data->valid;
    const int T = v->cfg->steps, k = v->cfg->eval_beam, rows = v->rows / k, max_len = T;
    long lo = (long)p->n * v->rank / v->world, hi = (long)p->n * (v->rank + 1) / v->world;
    if (v->shard_m) { /* whole shards, one at a time (rows is one shard) */
        int a, b;
        step_exact_rows(p->n, v->rank, v->world, &a, &b);
        lo = a, hi = b;
    }
    bleu_stats st;
    memset(&st, 0, sizeof st);
    for (long i = lo; i < hi; i += rows) {
        const int B = (int)((hi - i) < rows ? (hi - i) : rows);
        model_batch b = {.B = B,
                         .T = T,
                         .src = p->src + (size_t)i * T,
                         .tgt = p->tgt + (size_t)i * T,
                         .tgt_valid = p->tgt_valid + i};
        eval_loss(v, &b, sums);
        if (model_beam(v->m, b.src, B, T, DATA_BOS, DATA_EOS, max_len, k, (float)v->cfg->eval_alpha,
                       v->hyp, v->hyp_len) != MODEL_OK)
            ranks_die_local(v->r, 1, "out of memory decoding the validation set");
        for (int r = 0; r < B; r++)
            if (bleu_add(&st,
                         join_tokens(v, v->data->vtgt, v->hyp + (size_t)r * max_len, v->hyp_len[r]),
                         p->tgt_text[i + r], 4) != 0)
                ranks_die_local(v->r, 1, "out of memory scoring the validation set");
        if (v->rank == 0 && i == lo) keep_samples(v, i, B);
    }
    for (int q = 0; q < 4; q++) sums[2 + q] = st.match[q], sums[6 + q] = st.total[q];
    sums[10] = st.hyp_len, sums[11] = st.ref_len;
}

int validator_evaluate(validator *v, telemetry *tel, ranks *r, double *loss, double *ppl,
                       double *bleu)
{
    *loss = *ppl = *bleu = NAN;
    if (!v->data->have_valid) return 0;
    v->tel = tel, v->r = r;
    /* loss, tokens, match[4], total[4], hyp_len, ref_len; a stop request */
    double sums[13] = {0};
    v->lane = 0, v->lane_bad = 0;
    if (v->shard_m) { /* the addends: shards of pairs, or shards of streams × chunks */
        const train_data *d = v->data;
        const long shards =
            ((d->lm ? d->eval_streams : d->valid.n) + EXACT_SHARD_ROWS - 1) / EXACT_SHARD_ROWS;
        const long chunks = d->lm ? (d->lm_valid_n - 1) / d->eval_streams / v->cfg->steps : 1;
        v->lane_count = shards * (chunks > 0 ? chunks : 1);
        if (exact_scale(EXACT_LOSS_EXPONENT, v->lane_count, &v->lane_scale) != EXACT_OK)
            v->lane_bad = 1;
    }
    if (v->data->lm)
        eval_lm(v, sums);
    else
        eval_pairs(v, sums);
    sums[12] = stop_signal_pending() ? 1.0 : 0.0; /* asked while it ran, or before */
    comm_allreduce_double(sums, 13);
    if (v->shard_m) { /* the loss sum: exact lanes (a non-finite one is NaN) */
        int64_t lanes[2] = {v->lane, v->lane_bad};
        comm_allreduce_int64(lanes, 2);
        sums[0] = lanes[1] ? NAN : exact_to_double(lanes[0], v->lane_scale);
    }
    if (sums[1] > 0) {
        *loss = sums[0] / sums[1];
        *ppl = exp(*loss);
    }
    if (!v->data->lm) {
        bleu_stats st;
        for (int q = 0; q < 4; q++) st.match[q] = sums[2 + q], st.total[q] = sums[6 + q];
        st.hyp_len = sums[10], st.ref_len = sums[11];
        double bp, prec[4];
        *bleu = 100.0 * bleu_score(&st, 4, &bp, prec);
    }
    return sums[12] > 0;
}

int validator_round(validator *v, rundir *rd, const char *when, long at)
{
    train_figs *f = rd->figs;
    telemetry *tel = rd->r->tel;
    const int lm = v->data->lm;
    double vl, vp, vb;
    v->last_step = rd->pos->step;
    progress_status("validating"); /* on the bar, if one shows */
    const int stop = validator_evaluate(v, tel, rd->r, &vl, &vp, &vb);
    progress_status(NULL);
    f->last_valid_loss = vl, f->last_valid_bleu = vb;
    if (lm)
        comm_printf0("%s %ld valid loss %.4f ppl %.3f\n", when, at, vl, vp);
    else
        comm_printf0("%s %ld valid loss %.4f ppl %.3f bleu %.2f\n", when, at, vl, vp, vb);
    telemetry_eval(tel, vl, vp, vb, v->samples, v->nsamples);
    if (lr_plateau_observe(v->cfg, f, vl))
        comm_printf0("%s %ld lr %.4g: %ld evaluation%s without a lower validation loss (best "
                     "%.4f)\n",
                     when, at, f->plateau_lr, v->cfg->lr_patience,
                     v->cfg->lr_patience == 1 ? "" : "s", f->plateau_best);
    const double fig = lm ? vp : vb;
    const int better =
        isfinite(fig) && (!isfinite(f->best) || (lm ? fig < f->best : fig > f->best));
    if (better) {
        f->best = fig, f->since_best = 0;
        rundir_save_best(rd);
    } else {
        f->since_best++;
    }
    if (stop) return VALID_STOP_SIGNAL;
    if (v->cfg->early_stop <= 0 || f->since_best < v->cfg->early_stop) return VALID_GO_ON;
    comm_printf0("early stop at step %ld: no better validation %s in %ld evaluations (best "
                 "%.4g)\n",
                 rd->pos->step, lm ? "perplexity" : "BLEU", f->since_best, f->best);
    if (v->rank == 0)
        telemetry_event(tel, "early_stop", "no better validation %s in %ld evaluations (best %.4g)",
                        lm ? "perplexity" : "BLEU", f->since_best, f->best);
    return VALID_EARLY_STOP;
}

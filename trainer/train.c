/* seqpar train: the data-parallel training loop.
 *
 * Every rank holds a full replica. The loop walks the sample order (epochs
 * of batches), runs one step per batch (step.h: forward, backward, the
 * allreduce, clipping and the update, alike on every rank), prints and
 * sends progress, validates (validate.h) and checkpoints (rundir.h) on
 * schedule. The pieces it calls each own one thing:
 *   ranks.h       the ranks' agreement and the error policy
 *   node.h        memory, threads, OpenBLAS's kernel
 *   train_data.h  the corpus, the held-out part, this rank's sampler
 *   step.h        one training step
 *   validate.h    validation, best model, early stopping
 *   rundir.h      checkpoints, retention, resuming
 *   telemetry.h   metrics to seqpar monitor */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "comm.h"
#include "node.h"
#include "progress.h"
#include "rundir.h"
#include "schedule.h"
#include "step.h"
#include "stop_signal.h"
#include "timeline.h"
#include "train_data.h"
#include "trainer.h"
#include "validate.h"

typedef struct trainer {
    train_config cfg;
    ranks r;
    train_data data;
    model *m;
    step_engine *eng;
    validator *val;
    rundir dir;
    train_pos pos;
    train_figs figs;
    long total_steps; /* where the run ends: --epochs, or --max-steps */
} trainer;

/* What the loop measured, for the progress lines and the summary. */
typedef struct loop_stats {
    double t_start, t_win;
    double win_loss, win_tok;           /* global sums over the logging window */
    double ep_loss, ep_tok;             /* ... over the current epoch */
    double wl_loss, wl_tok;             /* this rank's sums over the window (the wire) */
    double last_win_loss, last_ep_loss; /* per token */
    double run_tok, grad_norm;
    double lr;               /* the last update's rate */
    int ep_whole;            /* this process ran the current epoch from its first batch */
    int stopped;             /* --max-steps reached, early stopping, a signal, a failure */
    int signalled;           /* ... a rank was asked to stop by a signal */
    int failed;              /* ... the loss or gradient was not finite (exit 1) */
    long nan_skips, nan_run; /* steps skipped (--on-nan skip): in all, in a row */
    long start_step;         /* the step this process started from */
    timeline tl;             /* where this rank's time goes */
} loop_stats;

/* ------------------------------------------------------------- set-up */

/* Every rank's options must parse (mpirun's "A : B" form gives ranks
 * different command lines) and equal rank 0's; only rank 0 speaks about bad
 * options unless only others fail, when the lowest of them parses again
 * aloud. */
static void parse_options(trainer *t, int argc, char **argv)
{
    config_defaults(&t->cfg);
    int saved_err = -1;
    if (t->r.rank != 0) {
        fflush(stderr);
        saved_err = dup(2);
        if (!freopen("/dev/null", "w", stderr)) saved_err = -1;
    }
    const int rc = config_parse_args(&t->cfg, argc, argv, "seqpar train");
    if (saved_err >= 0) {
        fflush(stderr);
        dup2(saved_err, 2);
        close(saved_err);
    }
    const int speaker = ranks_first_failing(&t->r, rc == 0);
    if (speaker >= 0) {
        if (speaker != 0 && t->r.rank == speaker) {
            train_config scratch;
            char prog[40];
            config_defaults(&scratch);
            snprintf(prog, sizeof prog, "seqpar train: rank %d", t->r.rank);
            config_parse_args(&scratch, argc, argv, prog);
        }
        ranks_stop_after(&t->r, speaker, rc == 1 ? 0 : 2);
    }
    ranks_same_options(&t->r, &t->cfg);
    /* the rules between options; --threads may differ between ranks, so
     * every rank checks and the lowest that fails says why */
    char why[600] = "";
    ranks_agree(&t->r, config_validate(&t->cfg, t->r.world, why, sizeof why) == 0, 2, why);
}

/* OpenBLAS threads (or workers) and the start line saying why. */
static void plan_threads(const train_config *c)
{
    char why[256];
    const int one = c->workers > 1 || c->deterministic;
    const int threads =
        one ? node_setup_threads(1, NULL, 0) : node_setup_threads(c->threads, why, sizeof why);
    if (c->workers > 1)
        snprintf(why, sizeof why, "--workers %d: one replica and one OpenBLAS thread each",
                 c->workers);
    else if (c->deterministic)
        snprintf(why, sizeof why, "--deterministic: one OpenBLAS thread");
    node_print_plan(threads, c->workers, why);
}

/* The model (refused before its pages are written when the node's memory
 * cannot hold it), its initial parameters (rank 0's are every rank's), the
 * step engine and the validator. */
static void build_model(trainer *t)
{
    const train_config *c = &t->cfg;
    const train_data *d = &t->data;
    const int bmax = (c->batch + t->r.world - 1) / t->r.world;
    model_config mc;
    config_model(c, d->vsrc ? d->vsrc->size : 0, d->vtgt->size, bmax, &mc);
    char err[ERRLEN] = "";
    const double vm0 = node_vm_bytes();
    ranks_agree(&t->r, model_create(&t->m, &mc, err, sizeof err) == MODEL_OK, 1, err);
    ranks_agree(&t->r,
                node_model_fits(model_params(t->m), vm0, opt_has_moments((opt_kind)c->optimizer),
                                c->workers, bmax, c->steps, err, sizeof err),
                1, err);
    model_set_bptt(t->m, c->bptt.mode, c->bptt.k);
    model_set_label_smoothing(t->m, (float)c->label_smoothing);
    ranks_agree(
        &t->r, step_create(&t->eng, c, &t->data, t->m, t->r.rank, t->r.world, err, sizeof err) == 0,
        1, err);
    if (step_fault_from_env(t->eng, err, sizeof err) != 0) ranks_die0(&t->r, 2, "%s", err);
    param_table *pt = model_params(t->m);
    model_init_params(t->m, (uint64_t)c->seed);
    comm_bcast(pt->data, pt->total * sizeof(float), 0); /* one source of truth */
    ranks_agree(&t->r,
                validator_create(&t->val, c, d, t->m, t->r.rank, t->r.world, err, sizeof err) == 0,
                1, err);
}

/* The run's updates: --epochs of batches (token batches: each epoch's
 * count), or --max-steps when fewer. Cosine's length, and the progress
 * lines' total. */
static long total_steps(const train_config *c, const train_data *d, long epoch)
{
    /* translation's epochs all have one count; an LM's differ by a batch or
     * so (its random offset): the current one's times --epochs serves the
     * progress lines, but another schedule than constant needs the exact
     * sum, the same at every resume; token batches: each epoch's own */
    if (!d->sampler.plan && (!d->lm || c->lr_schedule == LR_CONSTANT)) {
        const long all = c->epochs * data_sampler_batches(&d->sampler, epoch);
        return c->max_steps > 0 && c->max_steps < all ? c->max_steps : all;
    }
    long all = 0;
    for (long e = 0; e < c->epochs && (c->max_steps <= 0 || all < c->max_steps); e++)
        all += data_sampler_batches(&d->sampler, e);
    return c->max_steps > 0 && c->max_steps < all ? c->max_steps : all;
}

/* --batch-tokens: the token batches and their padding against batches of
 * as many random pairs (epoch 1's). */
static void announce_tokens(const train_config *c, const train_data *d)
{
    if (!d->sampler.plan) return;
    if (d->sampler.rank != 0) return; /* rank 0 prints; the others need not build the plan */
    const long nb = data_sampler_batches(&d->sampler, 0);
    double bucketed, unsorted;
    data_sampler_padding(&d->sampler, 0, &bucketed, &unsorted);
    long tok = 0;
    for (long i = 0; i < d->pairs.n; i++) tok += d->pairs.tgt_valid[i];
    char what[80];
    if (c->accum > 1)
        snprintf(what, sizeof what, "%ld x --accum %d", c->batch_tokens, c->accum);
    else
        snprintf(what, sizeof what, "%ld", c->batch_tokens);
    comm_printf0("batch-tokens %s: %ld batches in epoch 1, %.0f target tokens and %.1f pairs a "
                 "batch on average; padding %.1f%% of target positions before bucketing "
                 "(batches of random pairs), %.1f%% after\n",
                 what, nb, (double)tok / (double)nb, (double)d->pairs.n / (double)nb,
                 100.0 * unsorted, 100.0 * bucketed);
}

/* The line that says what is trained on what, for how long (rank 0), and
 * the start event. */
static void announce(trainer *t)
{
    const train_config *c = &t->cfg;
    const train_data *d = &t->data;
    const param_table *pt = model_params(t->m);
    size_t nparams = 0;
    for (int i = 0; i < pt->n; i++) nparams += pt->t[i].size;
    const long per_epoch = data_sampler_batches(&d->sampler, t->pos.epoch);
    t->total_steps = total_steps(c, d, t->pos.epoch);
    char vocab[64], batches[160], cell[16], summary[800];
    if (d->vsrc)
        snprintf(vocab, sizeof vocab, "%d -> %d", d->vsrc->size, d->vtgt->size);
    else
        snprintf(vocab, sizeof vocab, "%d", d->vtgt->size);
    if (!d->lm && d->pairs.n < c->batch) /* the one batch is the whole corpus */
        snprintf(batches, sizeof batches, "1 batch/epoch of all %d pairs (fewer than --batch %d)",
                 d->pairs.n, c->batch);
    else if (d->sampler.plan) /* token batches: each epoch has its own count */
        snprintf(batches, sizeof batches,
                 "%ld batch%s in this epoch of up to %ld target tokens and %d pairs", per_epoch,
                 per_epoch == 1 ? "" : "es", c->batch_tokens * c->accum, c->batch * c->accum);
    else
        snprintf(batches, sizeof batches, "%ld batch%s/epoch of %d", per_epoch,
                 per_epoch == 1 ? "" : "es", c->batch * c->accum);
    if (c->accum > 1) /* the micro-batches */
        snprintf(batches + strlen(batches), sizeof batches - strlen(batches),
                 " (--accum %d micro-batches an update)", c->accum);
    snprintf(summary, sizeof summary,
             "%s %s: %d layer%s, embed %d, hidden %d, %zu parameters; %s %ld %s, vocab %s; "
             "%s, %ld step%s",
             d->lm          ? "lm"
             : c->attention ? "seq2seq+attention"
                            : "seq2seq",
             config_text(c, "cell", cell, sizeof cell), c->layers, c->layers > 1 ? "s" : "",
             c->embed, c->hidden, nparams, c->dataset, train_data_items(d),
             d->lm ? "tokens" : "pairs", vocab, batches, t->total_steps,
             t->total_steps == 1 ? "" : "s");
    comm_printf0("%s\n", summary);
    announce_tokens(c, d);
    if (t->r.rank == 0)
        telemetry_event(t->r.tel, "start", "%s; %d rank%s; %s", summary, t->r.world,
                        t->r.world > 1 ? "s" : "", t->pos.step > 0 ? "resumed" : "fresh start");
}

/* ------------------------------------------------------------- the loop */

/* The progress line of a logging window (or the bar's figures), and its
 * train message. */
static void log_window(trainer *t, loop_stats *s)
{
    const double now = comm_time();
    const double tps = s->win_tok / (now - s->t_win > 1e-9 ? now - s->t_win : 1e-9);
    const double rate = (double)(t->pos.step - s->start_step) / (now - s->t_start);
    char eta[32];
    progress_duration(eta, sizeof eta, (double)(t->total_steps - t->pos.step) / rate);
    s->last_win_loss = s->win_loss / (s->win_tok > 0 ? s->win_tok : 1);
    t->figs.last_loss = s->last_win_loss;
    char skips[48] = "";
    if (s->nan_skips > 0) snprintf(skips, sizeof skips, " nan-skips %ld", s->nan_skips);
    progress_figures(s->last_win_loss, tps);
    /* the rate after the ETA; " nan-skips K", when there are any, stays last */
    progress_window_line("step %ld/%ld epoch %ld loss %.4f ppl %.3f tok/s %.0f ETA %s lr %.4g%s\n",
                         t->pos.step, t->total_steps, t->pos.epoch + 1, s->last_win_loss,
                         exp(s->last_win_loss), tps, eta, s->lr, skips);
    double phases[PHASES];
    timeline_window(&s->tl, phases);
    telemetry_phases(t->r.tel, phases);
    telemetry_train(t->r.tel, s->wl_loss, s->wl_tok, s->grad_norm, s->lr, now - s->t_win,
                    s->nan_skips);
    s->wl_loss = s->wl_tok = 0;
    s->t_win = now, s->win_loss = s->win_tok = 0;
}

/* A step whose global loss or gradient norm was not finite (its update was
 * not applied): skipped (--on-nan skip, up to --nan-patience in a row) or
 * the end of the run. Returns 1 when the run stops. */
static int nonfinite_step(trainer *t, loop_stats *s, const step_result *res)
{
    const train_config *c = &t->cfg;
    const char *what = isfinite(res->loss_sum) ? "the gradient norm" : "the loss";
    s->nan_skips++;
    if (c->on_nan == NAN_SKIP && ++s->nan_run < c->nan_patience) {
        if (t->r.rank == 0)
            fprintf(stderr,
                    "seqpar train: warning: step %ld: %s is not finite; its update is skipped "
                    "(%ld in a row, --nan-patience %d)\n",
                    t->pos.step, what, s->nan_run, c->nan_patience);
        return 0;
    }
    char why[200];
    if (c->on_nan == NAN_SKIP)
        snprintf(why, sizeof why, "%ld steps in a row (--nan-patience %d)", s->nan_run,
                 c->nan_patience);
    else
        snprintf(why, sizeof why, "--on-nan stop");
    if (t->r.rank == 0) {
        fprintf(stderr,
                "seqpar train: step %ld: %s is not finite; stopping (%s): the step's update "
                "is not applied and nothing of it is saved (lower --lr or set --clip; --on-nan "
                "skip skips such steps)\n",
                t->pos.step, what, why);
        telemetry_event(t->r.tel, "error", "step %ld: %s is not finite; stopping (%s)", t->pos.step,
                        what, why);
    }
    s->failed = 1;
    return 1;
}

/* One step at the current position, and what follows it: the replica
 * check, the progress line, validation and checkpoints on schedule.
 * Returns 1 when training stops early. */
static int train_step(trainer *t, loop_stats *s, long nb)
{
    const train_config *c = &t->cfg;
    step_result res;
    stop_signal_fault("step", t->r.rank, t->pos.step);
    s->lr = lr_schedule_at(c, t->total_steps, &t->figs, t->pos.step + 1);
    step_set_lr(t->eng, s->lr);
    const int rc = step_run(t->eng, &t->pos, stop_signal_pending() != 0, &res);
    if (rc == STEP_EBATCH)
        ranks_die_local(&t->r, 1, "invalid batch at step %ld (token id outside the vocabulary)",
                        t->pos.step);
    if (rc != STEP_OK)
        ranks_die_local(&t->r, 1, "gradient allreduce failed at step %ld", t->pos.step);
    if (res.nonfinite && nonfinite_step(t, s, &res)) return 1;
    if (!res.nonfinite) { /* a skipped step's sums are not figures, here or on the wire */
        s->nan_run = 0;
        s->wl_loss += res.local_loss, s->wl_tok += (double)res.local_tokens;
    }
    s->grad_norm = res.grad_norm;
    t->pos.step++;
    progress_tick(t->pos.step, t->pos.epoch + 1, t->pos.batch_in_epoch + 1, nb);
    int tensor, rank;
    const int same = step_check_replicas(t->eng, t->pos.step, &tensor, &rank);
    if (same < 0)
        ranks_die_local(&t->r, 1, "replica check failed to communicate at step %ld", t->pos.step);
    if (same > 0)
        ranks_die0(&t->r, 1,
                   "replica check at step %ld: rank %d's parameters differ from rank 0's (first "
                   "differing tensor: %s); the replicas diverged, stopping",
                   t->pos.step, rank, model_params(t->m)->t[tensor].name);
    telemetry_heartbeat(t->r.tel);
    if (!res.nonfinite) { /* a skipped step's sums are not figures */
        s->win_loss += res.loss_sum, s->win_tok += res.tokens;
        s->ep_loss += res.loss_sum, s->ep_tok += res.tokens, s->run_tok += res.tokens;
    }
    if (t->pos.step % c->log_every == 0 || t->pos.step == t->total_steps) log_window(t, s);
    /* the position is always that of the next batch to take */
    t->pos.batch_in_epoch++;
    s->signalled = res.stop;
    if (c->eval_every > 0 && t->pos.step % c->eval_every == 0) {
        const double t0 = comm_time();
        const int v = validator_round(t->val, &t->dir, "step", t->pos.step);
        timeline_add(&s->tl, PHASE_EVAL, t0);
        if (v == VALID_STOP_SIGNAL) s->signalled = 1;
        if (v != VALID_GO_ON) return 1;
    }
    if (c->checkpoint_every > 0 && t->pos.step % c->checkpoint_every == 0 &&
        t->pos.batch_in_epoch < nb) {
        const double t0 = comm_time();
        rundir_checkpoint_or_stop(&t->dir);
        timeline_add(&s->tl, PHASE_CHECKPOINT, t0);
    }
    return s->signalled;
}

static void train_loop(trainer *t, loop_stats *s)
{
    const train_config *c = &t->cfg;
    s->t_start = s->t_win = comm_time();
    s->last_win_loss = s->last_ep_loss = NAN;
    s->start_step = t->pos.step;
    timeline_start(&s->tl, t->eng);
    stop_signal_fault_start(s->start_step);
    while (t->pos.epoch < c->epochs && !s->stopped) {
        const long nb = data_sampler_batches(&t->data.sampler, t->pos.epoch);
        s->ep_whole = t->pos.batch_in_epoch == 0;
        if (step_carries_state(t->eng) && t->pos.batch_in_epoch == 0) step_reset_state(t->eng);
        s->ep_loss = s->ep_tok = 0;
        while (t->pos.batch_in_epoch < nb && !s->stopped) {
            if (c->max_steps > 0 && t->pos.step >= c->max_steps)
                s->stopped = 1;
            else
                s->stopped = train_step(t, s, nb);
        }
        if (s->stopped) break;
        if (s->ep_tok > 0) s->last_ep_loss = s->ep_loss / s->ep_tok;
        t->pos.epoch++;
        t->pos.batch_in_epoch = 0;
        /* validated at the epoch's end unless --eval-every just did, on the
         * same parameters (which would count against the patience twice);
         * the position is already the next epoch's, so best.h5 resumes there */
        if (t->data.have_valid && validator_last_step(t->val) != t->pos.step) {
            const double t0 = comm_time();
            const int v = validator_round(t->val, &t->dir, "epoch", t->pos.epoch);
            timeline_add(&s->tl, PHASE_EVAL, t0);
            s->signalled = v == VALID_STOP_SIGNAL;
            if (v != VALID_GO_ON) break; /* at an epoch's end: nothing left mid-epoch */
        }
        if (c->checkpoint_every > 0 && t->pos.step % c->checkpoint_every == 0) {
            const double t0 = comm_time();
            rundir_checkpoint_or_stop(&t->dir);
            timeline_add(&s->tl, PHASE_CHECKPOINT, t0);
        }
    }
}

/* ------------------------------------------------------------ the end */

/* The work done over all ranks, the largest rank's peak memory, and the
 * slowest rank's share of communication. */
static void report_work(trainer *t, const loop_stats *s, double elapsed)
{
    const long steps = t->pos.step - s->start_step;
    if (steps <= 0) return;
    double w[3];
    step_work(t->eng, w);
    w[2] = s->run_tok;
    comm_allreduce_double(w, 2);
    struct rusage ru;
    double rss[1] = {getrusage(RUSAGE_SELF, &ru) == 0 ? (double)ru.ru_maxrss / 1024.0 : 0};
    comm_allreduce_max_double(rss, 1);
    comm_printf0("matmul work: %.3g GFLOP per step as the padded model defines it, %.3g "
                 "executed (%.0f%%); %.2f GFLOP/s executed over all ranks, %.3g MFLOP per "
                 "target token; peak memory %.0f MB (largest rank)\n",
                 w[0] / steps / 1e9, w[1] / steps / 1e9, 100.0 * w[1] / (w[0] > 0 ? w[0] : 1),
                 w[1] / elapsed / 1e9, w[2] > 0 ? w[1] / w[2] / 1e6 : 0.0, rss[0]);
    if (t->r.world == 1) return;
    /* the slowest rank's share: what the job as a whole lost to communication */
    double share[2] = {step_comm_seconds(t->eng), elapsed};
    comm_allreduce_max_double(share, 2);
    const int nb = step_buckets(t->eng);
    static const char *const wire[] = {"", ", bf16 on the wire", ", fp16 on the wire"};
    comm_printf0("gradient allreduce (%s, %d bucket%s%s): %.1f%% of training time spent in "
                 "communication (%.2f s of %.2f s, slowest rank)\n",
                 t->cfg.overlap ? "overlapped" : "after backward", nb, nb > 1 ? "s" : "",
                 wire[t->cfg.grad_compress], 100.0 * share[0] / share[1], share[0], share[1]);
}

/* How a resume would continue: the steps since the last checkpoint this
 * run wrote (or resumed from) are the work a crash now would lose. */
static void report_resume_point(const trainer *t, const char *how)
{
    if (!t->cfg.checkpoint_dir[0]) {
        comm_printf0("%s: no --checkpoint-dir; a resume would start from step 0\n", how);
        return;
    }
    const long at = t->dir.saved_step;
    if (at < 0)
        comm_printf0("%s: no checkpoint written; --resume auto would start afresh (%ld steps to "
                     "redo)\n",
                     how, t->pos.step);
    else
        comm_printf0("%s: --resume auto continues from step %ld (%ld step%s to redo)\n", how, at,
                     t->pos.step - at, t->pos.step - at == 1 ? "" : "s");
}

/* The summary, the last checkpoint and the end event; the exit code. */
static int finish(trainer *t, loop_stats *s)
{
    const train_config *c = &t->cfg;
    const double elapsed = comm_time() - s->t_start;
    progress_end();  /* the summary below the bar's last place */
    if (s->failed) { /* nothing of the failed step is saved */
        char how[80];
        snprintf(how, sizeof how, "stopped at step %ld (not finite)", t->pos.step);
        report_resume_point(t, how);
        return 1;
    }
    if (s->win_tok > 0) /* the steps since the last progress line */
        t->figs.last_loss = s->last_win_loss = s->win_loss / s->win_tok;
    report_work(t, s, elapsed);
    int ckpt_ok = 1;
    const double t_ckpt = comm_time();
    if (t->pos.step > s->start_step)
        ckpt_ok =
            rundir_checkpoint(&t->dir, "the steps since the last checkpoint are not saved") == 0;
    timeline_add(&s->tl, PHASE_CHECKPOINT, t_ckpt);
    if (t->pos.step > s->start_step)
        timeline_report(&s->tl, t->r.rank, t->r.world);
    else
        comm_printf0("nothing to train: step %ld already reaches --epochs %ld / --max-steps %ld\n",
                     t->pos.step, c->epochs, c->max_steps);
    /* the summary's loss: the last epoch when this run ended on an epoch it
     * ran whole, else the last logging window (DESIGN.md, command line) */
    const int loss_of_epoch = !s->stopped && s->ep_whole && isfinite(s->last_ep_loss);
    const double final_loss = loss_of_epoch ? s->last_ep_loss : s->last_win_loss;
    const double tps = elapsed > 0 ? s->run_tok / elapsed : 0.0;
    /* epoch: the (1-based) epoch the last step belonged to */
    const long last_epoch =
        s->stopped && t->pos.batch_in_epoch > 0 ? t->pos.epoch + 1 : t->pos.epoch;
    char skips[48] = "";
    if (s->nan_skips > 0) snprintf(skips, sizeof skips, " nan_skips=%ld", s->nan_skips);
    /* a signal during the last step stopped nothing: the run is complete */
    if (s->signalled && t->pos.step >= t->total_steps) s->signalled = 0;
    char how[80] = "the last checkpoint failed";
    if (s->signalled)
        snprintf(how, sizeof how, "stopped at step %ld by %s", t->pos.step,
                 stop_signal_pending() ? stop_signal_name(stop_signal_pending())
                                       : "a signal to another rank");
    if (s->signalled || !ckpt_ok) report_resume_point(t, how);
    comm_printf0("done step=%ld epoch=%ld loss=%.4f ppl=%.4f tokens_per_s=%.0f%s\n", t->pos.step,
                 last_epoch, final_loss, exp(final_loss), tps, skips);
    telemetry_event(t->r.tel, s->signalled ? "stopped" : "end",
                    "done step=%ld epoch=%ld loss=%.4f ppl=%.4f tokens_per_s=%.0f%s; loss of the "
                    "last %s%s%s",
                    t->pos.step, last_epoch, final_loss, exp(final_loss), tps, skips,
                    loss_of_epoch ? "epoch" : "logging window",
                    s->signalled ? "; stopped by a signal, resumable" : "",
                    ckpt_ok ? "" : "; the last checkpoint failed");
    if (telemetry_dropped(t->r.tel) > 0)
        fprintf(stderr, "seqpar train: rank %d: %ld metrics messages dropped (monitor away)\n",
                t->r.rank, telemetry_dropped(t->r.tel));
    if (!ckpt_ok) return 1;
    return s->signalled ? TRAIN_EXIT_STOPPED : 0;
}

static void free_trainer(trainer *t)
{
    telemetry_close(t->r.tel);
    t->r.tel = NULL;
    validator_free(t->val);
    step_free(t->eng);
    model_free(t->m);
    train_data_free(&t->data);
}

int cmd_train(int argc, char **argv)
{
    static trainer T0;
    trainer *t = &T0;
    /* the default stop signals from the start (MPI start-up takes a while):
     * a signal then stops the run after its first step */
    stop_signal_install(STOP_SIGNALS_DEFAULT);
    if (comm_init(&argc, &argv) != COMM_OK) {
        fprintf(stderr, "seqpar train: MPI initialisation failed\n");
        return 1;
    }
    t->r = (ranks){.rank = comm_rank(), .world = comm_world()};
    parse_options(t, argc, argv);
    ranks_check_launch(&t->r);
    const train_config *c = &t->cfg;
    stop_signal_install(c->stop_signals);
    t->figs = (train_figs){NAN, NAN, NAN, NAN, 0, NAN, NAN, 0};
    lr_plateau_start(c, &t->figs);
    t->dir = (rundir){.cfg = c, .r = &t->r, .data = &t->data, .pos = &t->pos, .figs = &t->figs};
    rundir_open(&t->dir);
    plan_threads(c);
    if (c->monitor[0]) {
        char err[ERRLEN];
        const char *key = c->monitor_key[0] ? c->monitor_key : NULL;
        if (telemetry_open(&t->r.tel, c->monitor, key, c->run, &t->pos, err, sizeof err) != 0)
            ranks_die0(&t->r, 2, "--monitor%s %s", key ? "-key" : "", err);
        comm_printf0("metrics to %s as run %s\n", c->monitor, telemetry_run_id(t->r.tel));
    }
    train_data_load(&t->data, c, &t->r);
    train_data_agree(&t->data, c, &t->r);
    build_model(t);
    t->dir.m = t->m, t->dir.eng = t->eng;
    rundir_resume(&t->dir);
    announce(t);
    progress_start(c->progress, t->r.rank, t->r.world, t->pos.step, t->total_steps);
    loop_stats s = {0};
    train_loop(t, &s);
    const int code = finish(t, &s);
    free_trainer(t);
    comm_finalize();
    return code;
}

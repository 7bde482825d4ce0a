/* The run directory (rundir.h). */
#include "rundir.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoints.h"
#include "comm.h"
#include "stop_signal.h"

#define ERRLEN 512

/* ------------------------------------------------------------- directory */

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

void rundir_open(rundir *d)
{
    const char *dir = d->cfg->checkpoint_dir;
    d->saved_step = -1;
    if (!dir[0]) return;
    int ok = d->r->rank != 0 || make_dirs(dir) == 0;
    comm_bcast(&ok, sizeof ok, 0);
    if (!ok)
        ranks_die0(d->r, 2, "--checkpoint-dir %s: cannot create or write (%s)", dir,
                   strerror(errno));
    const int gone = d->r->rank == 0 ? ckpt_clean_temps(dir) : 0;
    if (gone)
        fprintf(stderr,
                "seqpar train: removed %d unfinished checkpoint write%s (temporary files "
                "of a killed run) from %s\n",
                gone, gone > 1 ? "s" : "", dir);
}

/* Retention (ckpt_retain): checkpoints past `upto` belong to another
 * branch of the run (this one resumed from an earlier step): they are left
 * alone, with a warning the first time. */
static void retain(const char *dir, int keep, long upto)
{
    static int warned = 0;
    int later = 0;
    ckpt_retain(dir, keep, upto, upto, &later); /* upto: just written, and verifies */
    if (later > 0 && !warned++)
        fprintf(stderr,
                "seqpar train: warning: %s holds checkpoints past step %ld (from a "
                "run this one did not continue); they are kept, and --resume auto "
                "would take them\n",
                dir, upto);
}

/* ---------------------------------------------------------------- saving */

/* Rank 0 writes; returns 0, or -1 after saying in one line why and `then`. */
static int write_checkpoint(rundir *d, const char *path, const char *then)
{
    if (d->r->rank != 0) return 0;
    const train_config *cfg = d->cfg;
    const train_data *data = d->data;
    char err[ERRLEN];
    char *json = config_to_json(cfg);
    ckpt_content c = {.config_json = json,
                      .params = model_params(d->m),
                      .opt = step_optimizer(d->eng),
                      .train = {.step = d->pos->step,
                                .epoch = d->pos->epoch,
                                .batch_in_epoch = d->pos->batch_in_epoch,
                                .seed = (uint64_t)cfg->seed,
                                .global_batch = cfg->batch,
                                .world_size = d->r->world,
                                .train_loss = d->figs->last_loss,
                                .valid_loss = d->figs->last_valid_loss,
                                .valid_bleu = d->figs->last_valid_bleu,
                                .best = d->figs->best,
                                .since_best = d->figs->since_best,
                                .lr_plateau = d->figs->plateau_lr,
                                .lr_best = d->figs->plateau_best,
                                .lr_since = d->figs->plateau_since}};
    if (step_carries_state(d->eng)) {
        c.state_h = step_global_state(d->eng, 0);
        c.state_c = cfg->cell == CELL_LSTM ? step_global_state(d->eng, 1) : NULL;
        c.state_dims[0] = cfg->layers, c.state_dims[1] = cfg->batch;
        c.state_dims[2] = cfg->hidden;
    }
    if (!data->lm) {
        c.vocab_src = (const char *const *)data->vsrc->tokens;
        c.vocab_src_n = data->vsrc->size;
    }
    c.vocab_tgt = (const char *const *)data->vtgt->tokens;
    c.vocab_tgt_n = data->vtgt->size;
    const double t0 = comm_time();
    int rc = json ? ckpt_save(path, &c, err, sizeof err) : CKPT_ENOMEM;
    free(json);
    if (rc == CKPT_OK) {
        struct stat st;
        const double mb = stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0.0;
        const double secs = comm_time() - t0;
        printf("checkpoint %s: %.1f MB in %.2f s\n", path, mb, secs);
        fflush(stdout);
        telemetry_event(d->r->tel, "checkpoint", "%s: %.1f MB in %.2f s", path, mb, secs);
        return 0;
    }
    if (rc == CKPT_ENOMEM && !json) snprintf(err, sizeof err, "out of memory");
    fprintf(stderr, "seqpar train: checkpoint at step %ld failed: %s; %s\n", d->pos->step, err,
            then);
    telemetry_event(d->r->tel, "checkpoint_failed", "%s; %s", err, then);
    return -1;
}

int rundir_save(rundir *d, const char *path, const char *then)
{
    stop_signal_fault("checkpoint", d->r->rank, d->pos->step);
    if (step_carries_state(d->eng) && step_gather_state(d->eng) != 0)
        ranks_die_local(d->r, 1, "gathering the carried state failed at step %ld", d->pos->step);
    int ok = write_checkpoint(d, path, then) == 0;
    telemetry_heartbeat(d->r->tel);
    comm_bcast(&ok, sizeof ok, 0);
    return ok ? 0 : -1;
}

int rundir_checkpoint(rundir *d, const char *then)
{
    const char *dir = d->cfg->checkpoint_dir;
    if (!dir[0] || d->saved_step == d->pos->step) return 0;
    char path[1200];
    ckpt_path(path, sizeof path, dir, d->pos->step);
    if (rundir_save(d, path, then) != 0) return -1;
    d->saved_step = d->pos->step;
    if (d->r->rank == 0) retain(dir, d->cfg->keep, d->pos->step);
    return 0;
}

void rundir_checkpoint_or_stop(rundir *d)
{
    const int go_on = d->cfg->on_ckpt_error == CKPT_ERROR_CONTINUE;
    if (rundir_checkpoint(d, go_on ? "training goes on (--on-checkpoint-error continue)"
                                   : "stopping (--on-checkpoint-error stop); resume from the "
                                     "last checkpoint written") == 0 ||
        go_on)
        return;
    /* every rank learnt it from the same broadcast; rank 0 said why */
    ranks_exit(d->r, 1);
}

void rundir_save_best(rundir *d)
{
    if (!d->cfg->checkpoint_dir[0]) return;
    char path[1200];
    snprintf(path, sizeof path, "%s/best.h5", d->cfg->checkpoint_dir);
    rundir_save(d, path, "training goes on");
}

/* -------------------------------------------------------------- resuming */

/* The options that define the model, the data and the sample order must be
 * those the checkpoint was trained with; the first that differs is named. */
static int check_same_run(const rundir *d, ckpt_file *f, const char *path, char *err, size_t n)
{
    static const char *const keys[] = {
        "task",  "dataset",   "num-examples",  "tokens",       "min-freq",  "cell",    "layers",
        "embed", "hidden",    "bidirectional", "steps",        "batch",     "sampler", "seed",
        "valid", "optimizer", "accum",         "batch-tokens", "attention", NULL};
    char *json = NULL;
    int rc = ckpt_read_config(f, &json, err, n);
    if (rc != CKPT_OK) return rc;
    train_config saved;
    config_defaults(&saved);
    char where[1300];
    snprintf(where, sizeof where, "%s: /config", path);
    char bad[ERRLEN];
    if (config_from_json(&saved, json, where, bad, sizeof bad) != 0) {
        free(json);
        snprintf(err, n, "%s", bad);
        return CKPT_EFORMAT;
    }
    free(json);
    char why[600];
    if (config_difference(&saved, d->cfg, keys, NULL, "in the checkpoint", "in this run", why,
                          sizeof why)) {
        snprintf(err, n, "%.200s does not match this run: %.280s", path, why);
        return CKPT_EMISMATCH;
    }
    /* the same options over changed data build another vocabulary: the
     * embeddings would be trained on for the wrong tokens */
    const char *which[2] = {d->data->lm ? "tokens" : "src", "tgt"};
    const data_vocab *mine[2] = {d->data->lm ? d->data->vtgt : d->data->vsrc, d->data->vtgt};
    for (int k = 0; k < (d->data->lm ? 1 : 2); k++) {
        ckpt_strings v = {0};
        rc = ckpt_read_vocab(f, which[k], &v, err, n);
        if (rc != CKPT_OK) return rc;
        int i = 0;
        while (i < v.n && i < mine[k]->size && strcmp(v.s[i], mine[k]->tokens[i]) == 0) i++;
        if (i < v.n || i < mine[k]->size) {
            if (i < v.n && i < mine[k]->size) {
                char a[200], b[200];
                snprintf(why, sizeof why, "id %d is \"%s\" there and \"%s\" here", i,
                         data_escape(v.s[i], 40, a, sizeof a),
                         data_escape(mine[k]->tokens[i], 40, b, sizeof b));
            } else
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

/* The position against the data, which the checkpoint's own checks cannot
 * see: no more epochs done than --epochs asks for, batch_in_epoch within
 * its epoch's batches, and step the batches of the epochs before it plus
 * batch_in_epoch (every batch taken is one step). A damaged counter (a
 * format-1 file's attributes carry no checksum) would otherwise resume at
 * another sample or end at once. */
static int check_position(const rundir *d, const ckpt_train *tr, const char *path, char *err,
                          size_t n)
{
    const data_sampler *s = &d->data->sampler;
    if (tr->epoch > d->cfg->epochs) {
        snprintf(err, n,
                 "%.300s: /train epoch %ld (epochs done) is past --epochs %ld (corrupt, or "
                 "--epochs lowered?)",
                 path, tr->epoch, d->cfg->epochs);
        return CKPT_EFORMAT;
    }
    const long nb = data_sampler_batches(s, tr->epoch);
    if (tr->batch_in_epoch > nb) {
        snprintf(err, n,
                 "%.300s: /train epoch %ld, batch_in_epoch %ld: that epoch has %ld batches "
                 "(corrupt, or the data changed?)",
                 path, tr->epoch, tr->batch_in_epoch, nb);
        return CKPT_EFORMAT;
    }
    long at = tr->batch_in_epoch; /* that position's step; summed no further than past tr->step */
    for (long e = 0; e < tr->epoch && at <= tr->step; e++) at += data_sampler_batches(s, e);
    if (at != tr->step) {
        char where[48] = "after that step";
        if (at < tr->step) snprintf(where, sizeof where, "step %ld", at);
        snprintf(err, n,
                 "%.300s: /train step %ld, epoch %ld, batch_in_epoch %ld: with this data that "
                 "position is %s (corrupt, or the data changed?)",
                 path, tr->step, tr->epoch, tr->batch_in_epoch, where);
        return CKPT_EFORMAT;
    }
    return CKPT_OK;
}

/* Restores parameters, optimizer and position from a checkpoint (read by
 * rank 0, broadcast to the others). */
static void resume_from(rundir *d, const char *path)
{
    char err[ERRLEN];
    param_table *pt = model_params(d->m);
    optimizer *opt = step_optimizer(d->eng);
    float *gh = step_global_state(d->eng, 0), *gc = step_global_state(d->eng, 1);
    long pos[3] = {0, 0, 0};
    /* early stopping: best, evaluations since; plateau: rate, best, since */
    double figs[5] = {NAN, 0, NAN, NAN, 0};
    int rc = CKPT_OK;
    if (d->r->rank == 0) {
        ckpt_file *f;
        ckpt_train tr = {0};
        rc = ckpt_open(&f, path, err, sizeof err);
        if (rc == CKPT_OK) {
            rc = check_same_run(d, f, path, err, sizeof err);
            if (rc == CKPT_OK) rc = ckpt_read_params(f, pt, err, sizeof err);
            if (rc == CKPT_OK) rc = ckpt_read_optimizer(f, pt, opt, err, sizeof err);
            if (rc == CKPT_OK) rc = ckpt_read_train(f, &tr, err, sizeof err);
            if (rc == CKPT_OK && step_carries_state(d->eng)) {
                int dims[3] = {d->cfg->layers, d->cfg->batch, d->cfg->hidden}, fh = 0, fc = 1;
                rc = ckpt_read_state(f, "state_h", gh, dims, &fh, err, sizeof err);
                if (rc == CKPT_OK && d->cfg->cell == CELL_LSTM)
                    rc = ckpt_read_state(f, "state_c", gc, dims, &fc, err, sizeof err);
                if (rc == CKPT_OK && tr.batch_in_epoch > 0 && !(fh && fc)) {
                    /* a checkpoint of seqpar before 0.1's issue-5 work: loadable */
                    fprintf(stderr,
                            "seqpar train: warning: %s has no carried hidden state "
                            "(/train/state_h%s); the streams restart from zeros mid-epoch, "
                            "so this resume is not exact\n",
                            path, d->cfg->cell == CELL_LSTM ? ", state_c" : "");
                    memset(gh, 0, sizeof(float) * dims[0] * dims[1] * dims[2]);
                    memset(gc, 0, sizeof(float) * dims[0] * dims[1] * dims[2]);
                }
            }
            d->figs->last_loss = tr.train_loss, d->figs->last_valid_loss = tr.valid_loss;
            d->figs->last_valid_bleu = tr.valid_bleu;
            figs[0] = tr.best, figs[1] = (double)tr.since_best;
            /* plateau's state; a checkpoint without it (another schedule,
             * or seqpar before schedules) starts plateau afresh */
            if (isfinite(tr.lr_plateau) && d->cfg->lr_schedule == LR_PLATEAU)
                figs[2] = tr.lr_plateau, figs[3] = tr.lr_best, figs[4] = (double)tr.lr_since;
            if (rc == CKPT_OK && tr.global_batch != d->cfg->batch) {
                snprintf(err, sizeof err, "%s: global batch %d, the run uses %d", path,
                         tr.global_batch, d->cfg->batch);
                rc = CKPT_EMISMATCH;
            }
            if (rc == CKPT_OK) rc = check_position(d, &tr, path, err, sizeof err);
            ckpt_close(f);
            pos[0] = tr.step, pos[1] = tr.epoch, pos[2] = tr.batch_in_epoch;
        }
    }
    comm_bcast(&rc, sizeof rc, 0);
    if (rc != CKPT_OK) ranks_die0(d->r, 2, "--resume: %s", err);
    comm_bcast(pt->data, pt->total * sizeof(float), 0);
    comm_bcast(pos, sizeof pos, 0);
    long ot = opt->t;
    comm_bcast(&ot, sizeof ot, 0);
    opt->t = ot;
    if (opt->m) {
        comm_bcast(opt->m, pt->total * sizeof(float), 0);
        comm_bcast(opt->v, pt->total * sizeof(float), 0);
    }
    d->pos->step = pos[0], d->pos->epoch = pos[1], d->pos->batch_in_epoch = pos[2];
    comm_bcast(figs, sizeof figs, 0);
    d->figs->best = figs[0], d->figs->since_best = (long)figs[1];
    if (isfinite(figs[2])) {
        d->figs->plateau_lr = figs[2], d->figs->plateau_best = figs[3];
        d->figs->plateau_since = (long)figs[4];
    }
    if (step_carries_state(d->eng)) {
        const size_t n = (size_t)d->cfg->layers * d->cfg->batch * d->cfg->hidden;
        comm_bcast(gh, n * sizeof(float), 0);
        comm_bcast(gc, n * sizeof(float), 0);
        step_scatter_state(d->eng);
    }
    if (d->r->rank == 0)
        telemetry_event(d->r->tel, "resume", "resumed from %s at step %ld", path, d->pos->step);
    comm_printf0("resumed from %s at step %ld (epoch %ld, batch %ld)\n", path, d->pos->step,
                 d->pos->epoch + 1, d->pos->batch_in_epoch); /* 1-based, as the progress lines */
}

/* best.h5 of a run this one does not continue (a fresh start in a used
 * directory, or a resume from a step before the one best.h5 holds) would be
 * replaced at this run's first better evaluation: rank 0 keeps it as
 * best-<its step>.h5 (best-<step>-2.h5 … when taken; never replacing a
 * file), or stops the run when it cannot. */
static void keep_best_aside(rundir *d)
{
    const char *dir = d->cfg->checkpoint_dir;
    if (!dir[0] || !d->data->have_valid) return;
    int ok = 1;
    char msg[ERRLEN * 3] = "";
    char path[1200];
    snprintf(path, sizeof path, "%s/best.h5", dir);
    struct stat st;
    if (d->r->rank == 0 && lstat(path, &st) == 0) {
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
        const int own = step >= 0 && d->pos->step > 0 && step <= d->pos->step &&
                        fig == d->figs->best && seed == (uint64_t)d->cfg->seed;
        if (!own) {
            char why[120], aside[1300];
            if (step < 0)
                snprintf(why, sizeof why, "it cannot be read");
            else if (d->pos->step == 0)
                snprintf(why, sizeof why, "it holds step %ld of an earlier run", step);
            else if (step > d->pos->step)
                snprintf(why, sizeof why, "it holds step %ld, past the resumed step %ld", step,
                         d->pos->step);
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
    ranks_agree(d->r, ok, 1, msg);
}

/* --resume auto: the newest checkpoint of the directory that verifies
 * (rank 0 looks, warning about each one it skips). Returns 0 when there is
 * none (a fresh start). */
static int find_resume(rundir *d, char *out, size_t n)
{
    const char *dir = d->cfg->checkpoint_dir;
    if (!dir[0]) ranks_die0(d->r, 2, "--resume auto needs --checkpoint-dir");
    int found = 0;
    if (d->r->rank == 0) {
        long *steps = NULL; /* every one, newest first */
        const int k = ckpt_list_all(dir, &steps);
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
        free(steps);
    }
    comm_bcast(&found, sizeof found, 0);
    if (found) comm_bcast(out, n, 0);
    return found;
}

void rundir_resume(rundir *d)
{
    const train_config *c = d->cfg;
    if (c->resume[0] && strcmp(c->resume, "auto") != 0) {
        resume_from(d, c->resume);
    } else if (c->resume[0]) {
        char path[1200];
        if (find_resume(d, path, sizeof path)) {
            resume_from(d, path);
            d->saved_step = d->pos->step; /* the directory holds this step's checkpoint */
        } else
            comm_printf0("--resume auto: no checkpoint in %s, starting fresh\n", c->checkpoint_dir);
    }
    keep_best_aside(d);
}

/* checkpoints/: HDF5 checkpoint files (DESIGN.md, "Checkpoint file").
 *
 *   /                attrs format="seqpar-checkpoint", format_version=2,
 *                    seqpar_version, created, meta_sha256
 *   /config          the training configuration, a JSON string
 *   /model/...       one dataset per parameter, path = state_dict key, '.' → '/'
 *   /optimizer       attrs name, lr, betas, eps, t; /optimizer/m/…, /optimizer/v/…
 *   /train           attrs step, epoch, batch_in_epoch, seed, global_batch,
 *                    world_size, and where measured train_loss, valid_loss,
 *                    valid_bleu, best, since_best, lr_plateau, lr_best, lr_since;
 *                    datasets state_h, state_c
 *                    (carried LM state, (L, global batch, H))
 *   /vocab/src, /vocab/tgt (LM: /vocab/tokens)  UTF-8 strings, index = id
 *
 * Every dataset is chunked with the Fletcher-32 checksum filter; the rest
 * (/config and the attributes of /, /train and /optimizer) is covered by
 * meta_sha256, the SHA-256 of a fixed serialization of them (ckpt_meta.c),
 * which ckpt_open checks: a file of format 2 whose meta_sha256 is missing
 * or does not match is refused. Format 1 (seqpar before it) has none: such
 * files still load, their attributes guarded by range checks alone. Writes go to
 * a temporary name in the same directory, are flushed and fsync'd, then
 * renamed over the final name, and the directory is fsync'd: a crash never
 * leaves a half-written file under a checkpoint's name.
 *
 * Status: CKPT_OK or a negative CKPT_E*, with one line in err[errlen] naming
 * the file and the object at fault. */
#ifndef SEQPAR_CHECKPOINTS_H
#define SEQPAR_CHECKPOINTS_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum {
    CKPT_OK = 0,
    CKPT_EIO = -1,       /* cannot create / open / write / rename */
    CKPT_EFORMAT = -2,   /* not a seqpar checkpoint, corrupt, missing object */
    CKPT_EMISMATCH = -3, /* valid file, but not for this model */
    CKPT_ENOMEM = -4,
    CKPT_ENONFINITE = -5, /* ckpt_save: values that are NaN or infinite, not written */
};

/* format_version 2 adds meta_sha256 (files of format 1 still load, their
 * attributes unchecked) */
#define CKPT_FORMAT         "seqpar-checkpoint"
#define CKPT_FORMAT_VERSION 2
#define CKPT_META_ATTR      "meta_sha256"
#define CKPT_META_HEX       64 /* its length: SHA-256 in lowercase hex */
/* The largest step, epoch or update count a checkpoint may hold (2^50):
 * anything above is corrupt, and far below where a counter overflows. */
#define CKPT_MAX_COUNT (1LL << 50)

typedef struct ckpt_train {
    long step, epoch, batch_in_epoch;
    uint64_t seed;
    int global_batch, world_size;
    /* figures at save time, /train attributes written only when finite (NaN:
     * not measured; older files lack them): the mean training loss of the
     * last logging window, the last validation loss and BLEU (×100) */
    double train_loss, valid_loss, valid_bleu;
    /* early stopping: the best validation figure so far and the evaluations
     * since it (NaN and 0 when not in use) */
    double best;
    long since_best;
    /* --lr-schedule plateau: the rate after warm-up, the lowest validation
     * loss and the evaluations since it (attributes lr_plateau, lr_best,
     * lr_since, written when lr_plateau > 0; NaN, NaN, 0 when absent) */
    double lr_plateau, lr_best;
    long lr_since;
} ckpt_train;

typedef struct ckpt_strings {
    int n;
    char **s; /* (n) NUL-terminated UTF-8 */
} ckpt_strings;

/* What a checkpoint holds, for writing. Pointers may be NULL where noted. */
typedef struct ckpt_content {
    const char *config_json;   /* required */
    const param_table *params; /* required */
    const optimizer *opt;      /* NULL: no /optimizer */
    ckpt_train train;
    const float *state_h, *state_c; /* (L, B, H) carried LM state, or NULL */
    int state_dims[3];
    const char *const *vocab_src; /* translation; NULL for the LM */
    int vocab_src_n;
    const char *const *vocab_tgt; /* translation target, or the LM's tokens */
    int vocab_tgt_n;
} ckpt_content;

/* Writes atomically (temporary name, fsync, rename, fsync of the directory).
 * Parameters, moments and carried state that are not all finite are never
 * written (CKPT_ENONFINITE naming the first such tensor): a checkpoint is
 * always one a run can continue from. */
int ckpt_save(const char *path, const ckpt_content *c, char *err, size_t errlen);

/* An open checkpoint for reading. */
typedef struct ckpt_file ckpt_file;

/* Checks the header: the format, its version and, from format 2 on,
 * meta_sha256 against /config and the attributes (CKPT_EFORMAT naming it).
 * The readers below check what they read as ckpt_verify does: float32
 * tensors carrying Fletcher-32, all finite, Adam's second moments not
 * negative; vocabularies of fixed-length strings carrying Fletcher-32. */
int ckpt_open(ckpt_file **f, const char *path, char *err, size_t errlen);
void ckpt_close(ckpt_file *f);
int ckpt_read_config(ckpt_file *f, char **json, char *err, size_t errlen); /* *json malloc'd */
/* which: "src", "tgt" or "tokens"; free with ckpt_strings_free. */
int ckpt_read_vocab(ckpt_file *f, const char *which, ckpt_strings *v, char *err, size_t errlen);
void ckpt_strings_free(ckpt_strings *v);
/* Fills every tensor of pt from /model; a missing tensor, a wrong shape or an
 * extra tensor in the file is CKPT_EMISMATCH naming it. */
int ckpt_read_params(ckpt_file *f, param_table *pt, char *err, size_t errlen);
/* The shape of a dataset (at most max dimensions) into dims, its rank into
 * *nd: CKPT_OK, or CKPT_EMISMATCH when there is no such dataset. */
int ckpt_dataset_shape(ckpt_file *f, const char *path, unsigned long long *dims, int max, int *nd,
                       char *err, size_t errlen);
/* Restores Adam moments and step count (opt must be initialised for pt). */
int ckpt_read_optimizer(ckpt_file *f, const param_table *pt, optimizer *opt, char *err,
                        size_t errlen);
int ckpt_read_train(ckpt_file *f, ckpt_train *t, char *err, size_t errlen);
/* Reads /train/state_h|state_c (dims must match) when present; returns
 * CKPT_OK and *found = 0 when absent. */
int ckpt_read_state(ckpt_file *f, const char *name, float *buf, const int dims[3], int *found,
                    char *err, size_t errlen);

/* Checkpoints of a run directory are named ckpt-<step, 8+ digits>.h5. */
void ckpt_path(char *out, size_t n, const char *dir, long step);
/* Steps of the checkpoints in dir, newest first: the newest max of them
 * when there are more. Returns how many (at most max; CKPT_LIST_MAX is the
 * callers' usual capacity), or -1 when dir cannot be read (or memory runs
 * out). */
#define CKPT_LIST_MAX 4096
int ckpt_list_dir(const char *dir, long *steps, int max);
/* The steps of every checkpoint of dir, newest first, in *steps (malloc'd,
 * NULL when there is none; the caller frees it): how many, or -1 when dir
 * cannot be read or memory runs out. No limit on how many. */
int ckpt_list_all(const char *dir, long **steps);

/* Removes all but the newest `keep` checkpoints of dir among those of
 * step <= upto; those past upto (another branch of the run) are left,
 * their count in *later (may be NULL). Never the newest that verifies: when
 * something would be removed, the kept ones are verified newest first until
 * one does, and none older than it is removed. `good` (-1: none) is a step
 * whose checkpoint the caller knows verifies (it just wrote it): not read. Returns how many were
 * removed, or -1 when dir cannot be read (or memory runs out). No limit on how many the directory
 * holds. */
int ckpt_retain(const char *dir, int keep, long upto, long good, int *later);

/* Removes temporary files of writers on this host that no longer run
 * (ckpt-*.h5.tmp.HOST.PID with that PID gone: a writer killed mid-write);
 * returns how many. Other hosts' temporaries are left alone. */
int ckpt_clean_temps(const char *dir);

/* Opens (checking meta_sha256) and reads every dataset (the Fletcher-32
 * filter checks each chunk) and checks the layout is complete. On CKPT_OK
 * err holds "" or a note on what could not be checked ("format 1:
 * attributes unchecked"). */
int ckpt_verify(const char *path, char *err, size_t errlen);

#endif

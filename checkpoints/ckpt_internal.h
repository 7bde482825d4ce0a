/* checkpoints/: private to the folder: what its files share. */
#ifndef SEQPAR_CKPT_INTERNAL_H
#define SEQPAR_CKPT_INTERNAL_H

#include <hdf5.h>
#include <stddef.h>

#include "checkpoints.h"

struct ckpt_file {
    hid_t fid;
    char path[1024];
    int meta_checked; /* meta_sha256 matched (format 2); 0: format 1, unchecked */
};

/* Writes the message into err (when there is room) and returns code. */
int ckpti_seterr(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* HDF5 prints its error stack by default; we report one line ourselves. */
void ckpti_quiet_hdf5(void);
/* "encoder.rnn.weight_ih_l0" in group "/model" → "/model/encoder/rnn/weight_ih_l0" */
void ckpti_dataset_path(char *out, size_t n, const char *group, const char *key);
/* How many of n floats are NaN or infinite. */
size_t ckpti_count_nonfinite(const float *x, size_t n);
/* How many of n floats are below zero (an Adam second moment never is). */
size_t ckpti_count_negative(const float *x, size_t n);
/* /config as a malloc'd string (fixed- or variable-length, scalar): 0, or -1
 * with *json NULL. */
int ckpti_read_config(hid_t fid, char **json);
/* The SHA-256 of the file's training state (ckpt_meta.c: /config and the
 * attributes of /, /train and /optimizer) in lowercase hex: 0, or -1 with
 * what could not be hashed in why. */
int ckpti_meta_digest(hid_t fid, char hex[CKPT_META_HEX + 1], char *why, size_t whylen);
/* What is wrong with a dataset as a checkpoint holds them (NULL: nothing);
 * with want_checksum, also variable-length strings (their bytes lie outside
 * the chunks the checksum covers). */
const char *ckpti_dataset_problem(hid_t ds, int want_float, int want_checksum);
/* This host's name into buf, for temporary file names ("localhost" if
 * unknown); returns buf. */
const char *ckpti_host_name(char *buf, size_t n);
/* Whether name is ckpt-<step>.h5 (its step in *step). */
int ckpti_checkpoint_name(const char *name, long *step);

#endif

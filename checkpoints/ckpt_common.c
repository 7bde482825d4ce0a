/* What the checkpoint files' writer, reader and verifier share. */
#include "checkpoints.h"
#include "ckpt_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <cjson/cJSON.h>
#include <hdf5.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <stdarg.h>

int ckpti_seterr(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* HDF5 prints its error stack by default; we report one line ourselves. */
void ckpti_quiet_hdf5(void)
{
    /* SEQPAR_HDF5_DEBUG=1 keeps HDF5's own error stack (for bug reports) */
    const char *dbg = getenv("SEQPAR_HDF5_DEBUG");
    if (!dbg || strcmp(dbg, "1") != 0) H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* "encoder.rnn.weight_ih_l0" → "/model/encoder/rnn/weight_ih_l0" */
void ckpti_dataset_path(char *out, size_t n, const char *group, const char *key)
{
    snprintf(out, n, "%s/%s", group, key);
    for (char *p = out + strlen(group) + 1; *p; p++)
        if (*p == '.') *p = '/';
}

/* How many of n floats are NaN or infinite: a checkpoint holds none (a run
 * stops at a non-finite loss), and Fletcher-32 misses some flips (0x0000
 * and 0xFFFF sum alike) that make them. */
size_t ckpti_count_nonfinite(const float *x, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += !isfinite(x[i]);
    return k;
}

/* How many of n floats are below zero: Adam's second moments are running
 * means of squares, never negative, and a negative one makes the update's
 * sqrt(v) NaN. */
size_t ckpti_count_negative(const float *x, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += x[i] < 0.0f;
    return k;
}

const char *ckpti_host_name(char *buf, size_t n)
{
    buf[0] = '\0';
    if (gethostname(buf, n - 1) != 0 || !buf[0]) snprintf(buf, n, "localhost");
    buf[n - 1] = '\0';
    return buf;
}

/* Whether name is a checkpoint's name exactly as ckpt_path makes it
 * (ckpt-%08ld.h5), and its step: what a directory's list and the pruning
 * of old checkpoints may act on. Anything else (ckpt-5.txt, a copy named
 * ckpt-00000005-copy.h5, ckpt-5.h5, temporary .h5.tmp.HOST.PID files) is
 * not one: the pruning rebuilds the name from the step and unlinks it. */
int ckpti_checkpoint_name(const char *name, long *step)
{
    if (strncmp(name, "ckpt-", 5) != 0) return 0;
    const char *p = name + 5;
    long s = 0;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 18) return 0; /* beyond any step a run reaches (and a long) */
        s = s * 10 + (*p - '0');
    }
    if (digits == 0 || strcmp(p, ".h5") != 0) return 0;
    char canon[40];
    snprintf(canon, sizeof canon, "ckpt-%08ld.h5", s);
    if (strcmp(canon, name) != 0) return 0;
    *step = s;
    return 1;
}

/* The metrics wire's keys (ZeroMQ CURVE): a monitor's key pair and the one
 * key pair its trainers share, in two files. */
#include "wire.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* Writes two Z85 keys, one a line, to a new file readable by its owner
 * only: 0, or -1 with the reason in err. */
static int write_keys(const char *path, const char *a, const char *b, char *err, size_t n)
{
    const int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0) {
        snprintf(err, n, "%s: %s%s", path, strerror(errno),
                 errno == EEXIST ? " (keys are never overwritten: remove it first)" : "");
        return -1;
    }
    char text[2 * (WIRE_KEY_LEN + 1) + 1];
    snprintf(text, sizeof text, "%s\n%s\n", a, b);
    const ssize_t len = (ssize_t)strlen(text);
    const int ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    const int e = errno;
    close(fd);
    if (!ok) {
        unlink(path);
        snprintf(err, n, "%s: %s", path, strerror(e));
        return -1;
    }
    return 0;
}

int wire_keys_generate(const char *dir, char *err, size_t n)
{
    char spub[WIRE_KEY_LEN + 1], ssec[WIRE_KEY_LEN + 1], cpub[WIRE_KEY_LEN + 1],
        csec[WIRE_KEY_LEN + 1];
    if (!zmq_has("curve") || zmq_curve_keypair(spub, ssec) != 0 ||
        zmq_curve_keypair(cpub, csec) != 0) {
        snprintf(err, n, "this ZeroMQ has no CURVE security");
        return -1;
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        snprintf(err, n, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char mon[1100], tr[1100];
    snprintf(mon, sizeof mon, "%s/monitor.key", dir);
    snprintf(tr, sizeof tr, "%s/trainer.key", dir);
    if (write_keys(mon, ssec, cpub, err, n) != 0) return -1;
    if (write_keys(tr, spub, csec, err, n) != 0) {
        unlink(mon);
        return -1;
    }
    return 0;
}

int wire_keys_read(const char *path, char a[WIRE_KEY_LEN + 1], char b[WIRE_KEY_LEN + 1], char *err,
                   size_t n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, n, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[3][128] = {"", "", ""};
    int k = 0;
    while (k < 3 && fgets(line[k], sizeof line[k], f)) {
        line[k][strcspn(line[k], "\r\n")] = '\0';
        if (line[k][0]) k++;
    }
    fclose(f);
    uint8_t raw[32];
    if (k != 2 || strlen(line[0]) != WIRE_KEY_LEN || strlen(line[1]) != WIRE_KEY_LEN ||
        !zmq_z85_decode(raw, line[0]) || !zmq_z85_decode(raw, line[1])) {
        snprintf(err, n,
                 "%s: not a key file of seqpar monitor --gen-keys (two Z85 keys of %d "
                 "characters, one a line)",
                 path, WIRE_KEY_LEN);
        return -1;
    }
    memcpy(a, line[0], WIRE_KEY_LEN + 1);
    memcpy(b, line[1], WIRE_KEY_LEN + 1);
    return 0;
}

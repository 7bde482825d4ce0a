/* The monitor's JSON-lines log: restore at start, one write(2) per message
 * after (msglog.h). */
#include "msglog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct msglog {
    int fd;
    int open_line; /* the file ends inside a line: the next message starts a fresh one */
    long unlogged;
    char *buf; /* one line: "\n" (after a partial line), the message, "\n" */
    size_t cap;
};

/* Replays the file into c: the messages restored, or -1 (errno set) when it
 * exists but cannot be read. Only accepted messages are logged, so a line
 * that is not one is damaged (a crash or a full disk cut it short). */
static long restore(collector *c, const char *path, long *damaged, int *open_line)
{
    *damaged = 0, *open_line = 0;
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        /* /dev/full, /dev/null, a pipe: nothing to read back (and reading
         * /dev/full or /dev/zero would never end) */
        fclose(f);
        return 0;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long ok = 0;
    while ((n = getline(&line, &cap, f)) >= 0) {
        *open_line = n > 0 && line[n - 1] != '\n';
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
        if (n == 0) continue;
        if (collector_add(c, line, (size_t)n, -1.0, NULL, 0) == 0)
            ok++;
        else
            ++*damaged;
    }
    const int read_error = ferror(f);
    free(line);
    fclose(f);
    if (read_error) {
        errno = EIO;
        return -1;
    }
    return ok;
}

msglog *msglog_open(const char *path, collector *c, long *restored, long *damaged, char *err,
                    size_t errlen)
{
    int open_line;
    *restored = restore(c, path, damaged, &open_line);
    if (*restored < 0) {
        snprintf(err, errlen, "cannot read (%s)", strerror(errno));
        return NULL;
    }
    msglog *l = calloc(1, sizeof *l);
    if (l) l->fd = -1, l->cap = WIRE_MAX_MSG + 2, l->buf = malloc(l->cap);
    if (!l || !l->buf) {
        snprintf(err, errlen, "out of memory");
        msglog_close(l);
        return NULL;
    }
    l->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (l->fd < 0) {
        snprintf(err, errlen, "cannot append (%s)", strerror(errno));
        msglog_close(l);
        return NULL;
    }
    l->open_line = open_line;
    return l;
}

int msglog_append(msglog *l, const char *msg, size_t len)
{
    if (len + 2 > l->cap) {
        l->unlogged++;
        errno = EMSGSIZE;
        return -1;
    }
    size_t n = 0;
    if (l->open_line) l->buf[n++] = '\n';
    for (size_t k = 0; k < len; k++) l->buf[n++] = msg[k] == '\n' || msg[k] == '\r' ? ' ' : msg[k];
    l->buf[n++] = '\n';
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(l->fd, l->buf + done, n - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            if (w == 0) errno = EIO;
            break;
        }
        done += (size_t)w;
    }
    /* what reached the file decides where it ends: a short write (a disk
     * filling up mid-line) leaves a partial line */
    if (done > 0) l->open_line = l->buf[done - 1] != '\n';
    if (done == n) return 0;
    const int e = errno;
    l->unlogged++;
    errno = e;
    return -1;
}

long msglog_unlogged(const msglog *l)
{
    return l->unlogged;
}

void msglog_close(msglog *l)
{
    if (!l) return;
    if (l->fd >= 0) close(l->fd);
    free(l->buf);
    free(l);
}

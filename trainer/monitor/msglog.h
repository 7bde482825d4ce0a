/* trainer/monitor/msglog.h: the monitor's log (--log FILE.jsonl, DESIGN.md
 * "Metrics wire"): read back into the collector at start, then every
 * accepted message appended as one line.
 *
 * A line is written by one write(2), so a full disk or a crash leaves at
 * most the last line cut short. Such a partial line is skipped (and
 * counted) by the restore, and the next message starts a fresh line after
 * it: it would otherwise be appended onto it and lost at the next restore.
 * A message the file system refused is counted, never dropped silently. */
#ifndef SEQPAR_MONITOR_MSGLOG_H
#define SEQPAR_MONITOR_MSGLOG_H

#include <stddef.h>

#include "collector.h"

typedef struct msglog msglog;

/* Replays PATH into c (nothing when it does not exist, or is not a regular
 * file: a device or a pipe has no history) and opens it for appending.
 * restored: the messages replayed; damaged: the lines that were not
 * messages. NULL with the reason in err[errlen] when PATH cannot be read or
 * appended to. */
msglog *msglog_open(const char *path, collector *c, long *restored, long *damaged, char *err,
                    size_t errlen);
/* Appends one message (at most WIRE_MAX_MSG bytes) as a line; a line break
 * inside it, JSON whitespace, becomes a space. 0, or -1 with errno set when
 * it could not be written whole (it is then counted as not logged). */
int msglog_append(msglog *l, const char *msg, size_t len);
/* Messages that msglog_append could not write. */
long msglog_unlogged(const msglog *l);
void msglog_close(msglog *l);

#endif

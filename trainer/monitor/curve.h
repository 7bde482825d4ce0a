/* The monitor's side of authenticated metrics (ZeroMQ CURVE): the listening
 * socket encrypts and authenticates with the monitor's key, a ZAP handler
 * lets in only publishers holding the trainers' key (seqpar monitor
 * --gen-keys); monitor.c counts the refused handshakes. */
#ifndef SEQPAR_MONITOR_CURVE_H
#define SEQPAR_MONITOR_CURVE_H

#include <stddef.h>

typedef struct curve_guard curve_guard;

/* Reads keyfile (monitor.key), makes sock a CURVE server with its secret
 * key and starts the handler on ctx that admits the trainers' public key
 * alone. Before sock is bound. 0, or -1 with the reason in err. */
int curve_guard_start(curve_guard **out, void *ctx, void *sock, const char *keyfile, char *err,
                      size_t n);
void curve_guard_stop(curve_guard *g);

#endif

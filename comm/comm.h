/* comm/: everything MPI (and, later, the ZeroMQ metrics wire). Nothing else in
 * seqpar calls MPI. A process started without mpirun is a world of one
 * (MPI singleton), through the same interface. */
#ifndef SEQPAR_COMM_H
#define SEQPAR_COMM_H

#include <stddef.h>
#include <stdint.h>

enum { COMM_OK = 0, COMM_ERR = -1 };

/* Initialises MPI (errors return instead of aborting, so callers can print a
 * message first). */
int comm_init(int *argc, char ***argv);
void comm_finalize(void);
int comm_rank(void);
int comm_world(void);
/* Ranks sharing this node (MPI_Comm_split_type shared) and this rank's index
 * among them. */
int comm_local_size(void);
int comm_local_rank(void);
double comm_time(void); /* seconds, MPI_Wtime */

/* In-place sums over all ranks. */
int comm_allreduce_float(float *x, size_t n);
int comm_allreduce_double(double *x, size_t n);
int comm_allreduce_max_double(double *x, size_t n);
int comm_bcast(void *buf, size_t bytes, int root);
int comm_barrier(void);

/* Ends every rank of the job (MPI_Abort) with `code`; never returns. */
_Noreturn void comm_abort(int code);

/* printf on rank 0 only (stdout), flushed. */
void comm_printf0(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

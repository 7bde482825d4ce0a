/* MPI behind comm.h. */
#include "comm.h"
#include "comm_internal.h"

#include <mpi.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

static int g_rank = 0, g_world = 1, g_local_rank = 0, g_local_size = 1;
static int g_inited = 0;

int comm_init(int *argc, char ***argv)
{
    int flag = 0;
    MPI_Initialized(&flag);
    if (!flag && MPI_Init(argc, argv) != MPI_SUCCESS) return COMM_ERR;
    g_inited = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_world);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_rank, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(local, &g_local_rank);
        MPI_Comm_size(local, &g_local_size);
        MPI_Comm_free(&local);
    }
    return COMM_OK;
}

void comm_finalize(void)
{
    int fin = 0;
    MPI_Finalized(&fin);
    if (g_inited && !fin) MPI_Finalize();
}

int comm_rank(void)
{
    return g_rank;
}
int comm_world(void)
{
    return g_world;
}
int comm_local_size(void)
{
    return g_local_size;
}
int comm_local_rank(void)
{
    return g_local_rank;
}
double comm_time(void)
{
    return MPI_Wtime();
}

/* MPI counts are int: large buffers go in chunks. */
#define CHUNK ((size_t)1 << 28)

static atomic_int g_waiting; /* blocking collectives this process is inside */

void comm_wait_enter(void)
{
    atomic_fetch_add(&g_waiting, 1);
}

void comm_wait_leave(void)
{
    atomic_fetch_sub(&g_waiting, 1);
}

int comm_waiting(void)
{
    return atomic_load(&g_waiting) > 0;
}

int comm_allreduce_float(float *x, size_t n)
{
    if (g_world == 1) return COMM_OK;
    int rc = COMM_OK;
    comm_wait_enter();
    for (size_t off = 0; off < n && rc == COMM_OK; off += CHUNK) {
        int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        if (MPI_Allreduce(MPI_IN_PLACE, x + off, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
            rc = COMM_ERR;
    }
    comm_wait_leave();
    return rc;
}

static int allreduce_d(double *x, size_t n, MPI_Op op)
{
    if (g_world == 1) return COMM_OK;
    int rc = COMM_OK;
    comm_wait_enter();
    for (size_t off = 0; off < n && rc == COMM_OK; off += CHUNK) {
        int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        if (MPI_Allreduce(MPI_IN_PLACE, x + off, c, MPI_DOUBLE, op, MPI_COMM_WORLD) != MPI_SUCCESS)
            rc = COMM_ERR;
    }
    comm_wait_leave();
    return rc;
}

/* Integer sums are exact and associative: the deterministic mode's lanes. */
int comm_allreduce_int64(int64_t *x, size_t n)
{
    if (g_world == 1) return COMM_OK;
    int rc = COMM_OK;
    comm_wait_enter();
    for (size_t off = 0; off < n && rc == COMM_OK; off += CHUNK) {
        int c = (int)(n - off < CHUNK ? n - off : CHUNK);
        if (MPI_Allreduce(MPI_IN_PLACE, x + off, c, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD) !=
            MPI_SUCCESS)
            rc = COMM_ERR;
    }
    comm_wait_leave();
    return rc;
}

int comm_allreduce_max_int(int *x, int n)
{
    if (g_world == 1) return COMM_OK;
    comm_wait_enter();
    int rc = MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_INT, MPI_MAX, MPI_COMM_WORLD) == MPI_SUCCESS
                 ? COMM_OK
                 : COMM_ERR;
    comm_wait_leave();
    return rc;
}

int comm_allreduce_double(double *x, size_t n)
{
    return allreduce_d(x, n, MPI_SUM);
}

int comm_allreduce_max_double(double *x, size_t n)
{
    return allreduce_d(x, n, MPI_MAX);
}

int comm_bcast(void *buf, size_t bytes, int root)
{
    if (g_world == 1) return COMM_OK;
    char *p = buf;
    int rc = COMM_OK;
    comm_wait_enter();
    for (size_t off = 0; off < bytes && rc == COMM_OK; off += CHUNK) {
        int c = (int)(bytes - off < CHUNK ? bytes - off : CHUNK);
        if (MPI_Bcast(p + off, c, MPI_BYTE, root, MPI_COMM_WORLD) != MPI_SUCCESS) rc = COMM_ERR;
    }
    comm_wait_leave();
    return rc;
}

int comm_barrier(void)
{
    comm_wait_enter();
    const int rc = MPI_Barrier(MPI_COMM_WORLD) == MPI_SUCCESS ? COMM_OK : COMM_ERR;
    comm_wait_leave();
    return rc;
}

_Noreturn void comm_abort(int code)
{
    fflush(stdout);
    fflush(stderr);
    if (g_inited && g_world > 1) MPI_Abort(MPI_COMM_WORLD, code);
    comm_finalize();
    exit(code);
}

void comm_printf0(const char *fmt, ...)
{
    if (g_rank != 0) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

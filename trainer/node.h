/* The node's resources as a rank sees them: memory, cores and OpenBLAS's
 * kernel. */
#ifndef SEQPAR_TRAINER_NODE_H
#define SEQPAR_TRAINER_NODE_H

#include <stddef.h>

#include "model.h"

/* This process's mapped bytes (/proc/self/statm), or -1 where unknown. */
double node_vm_bytes(void);
/* Bytes this node can still give (MemAvailable, and a cgroup v2 limit's
 * room when lower), or -1 where unknown. SEQPAR_MEM_AVAILABLE_MB (MB of
 * 10^6 bytes, for the node) replaces it: a share of a node, or a test. */
double node_mem_available(void);
/* What one rank's data may take: the node's available memory over its
 * ranks (0: unknown, unchecked). */
double node_data_mem_limit(void);

/* A model just built, whose buffers are reserved but not yet written (fresh
 * pages from calloc; the process mapped vm0 bytes before): what they, Adam's
 * moments and the workers' replicas will take, times the ranks of this
 * node, must fit in the memory available. 1 when it does (or cannot be
 * told); 0 with one line in msg naming the sizes. */
int node_model_fits(const param_table *pt, double vm0, int adam, int workers, int rows, int steps,
                    char *msg, size_t n);

/* Sets OpenBLAS threads for this rank as comm_thread_plan chooses (--threads,
 * else node cores / ranks on the node, within the rank's CPU binding);
 * returns the number set, with an account of the choice in why. */
int node_setup_threads(int requested, char *why, size_t whylen);
/* 1, with a one-line warning in buf, when the CPU supports a much faster
 * OpenBLAS kernel than the one in use (Debian's 0.3.21 falls back to
 * Prescott on CPUs it does not know); 0 when the kernel fits the CPU. */
int node_kernel_advice(char *buf, size_t n);
/* Rank 0's start line: ranks, workers, threads, why, OpenBLAS's kernel (and
 * the kernel advice first, when there is some). */
void node_print_plan(int threads, int workers, const char *why);

#endif

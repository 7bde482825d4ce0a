/* comm/: private to the folder. */
#ifndef SEQPAR_COMM_INTERNAL_H
#define SEQPAR_COMM_INTERNAL_H

/* Around every blocking collective: what comm_waiting reports. */
void comm_wait_enter(void);
void comm_wait_leave(void);

#endif

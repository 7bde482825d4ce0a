/* Where a training run stands: the position every part of the program
 * reads (the loop advances it, checkpoints save and restore it, metrics
 * carry it). */
#ifndef SEQPAR_TRAINER_POSITION_H
#define SEQPAR_TRAINER_POSITION_H

typedef struct train_pos {
    long step;           /* updates applied */
    long epoch;          /* 0-based: the epoch of the next batch */
    long batch_in_epoch; /* the next batch to take */
} train_pos;

/* The 1-based epoch as printed and sent: at an epoch boundary, the epoch
 * just finished. */
static inline long train_pos_epoch1(const train_pos *p)
{
    return p->batch_in_epoch > 0 || p->step == 0 ? p->epoch + 1 : p->epoch;
}

/* The figures a run keeps in its checkpoints (NaN: not measured). */
typedef struct train_figs {
    double last_loss, last_valid_loss, last_valid_bleu;
    double best;     /* best validation figure (BLEU, or LM perplexity); NaN: none yet */
    long since_best; /* evaluations since it */
    /* --lr-schedule plateau (schedule.h): the rate after warm-up, the lowest
     * validation loss so far and the evaluations since it (NaN, NaN, 0
     * otherwise) */
    double plateau_lr, plateau_best;
    long plateau_since;
} train_figs;

#endif

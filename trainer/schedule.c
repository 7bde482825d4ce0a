/* The learning-rate schedules (schedule.h). u counts updates from 1; W is
 * --warmup, S the run's updates, lr --lr, lr_min --lr-min. */
#include "schedule.h"

#include <math.h>

/* The warm-up's factor: u / W for u <= W, else 1. */
static double warm(const train_config *c, long u)
{
    return c->warmup > 0 && u <= c->warmup ? (double)u / (double)c->warmup : 1.0;
}

double lr_schedule_at(const train_config *c, long total, const train_figs *f, long u)
{
    const double lr = c->lr, lo = c->lr_min;
    const long W = c->warmup;
    if (u < 1) u = 1;
    switch (c->lr_schedule) {
    case LR_INVERSE_SQRT: { /* fairseq's inverse_sqrt: lr · √(W / u) after warm-up */
        if (u <= W) return lr * warm(c, u);
        const double r = lr * sqrt((double)(W > 1 ? W : 1) / (double)u);
        return r > lo ? r : lo;
    }
    case LR_COSINE: { /* torch's CosineAnnealingLR(T_max = S − W), stepped each update */
        if (u <= W) return lr * warm(c, u);
        const long span = total - W;
        if (span <= 0) return lr;
        double p = (double)(u - 1 - W) / (double)span;
        p = p > 1.0 ? 1.0 : p;
        return lo + (lr - lo) * 0.5 * (1.0 + cos(3.14159265358979323846 * p));
    }
    case LR_PLATEAU: {
        const double r = isfinite(f->plateau_lr) ? f->plateau_lr : lr;
        return r * warm(c, u);
    }
    default: /* constant: --lr itself, not a product, when there is no warm-up */
        return u <= W ? lr * warm(c, u) : lr;
    }
}

void lr_plateau_start(const train_config *c, train_figs *f)
{
    f->plateau_lr = c->lr_schedule == LR_PLATEAU ? c->lr : NAN;
    f->plateau_best = NAN;
    f->plateau_since = 0;
}

int lr_plateau_observe(const train_config *c, train_figs *f, double valid_loss)
{
    if (c->lr_schedule != LR_PLATEAU || !isfinite(valid_loss)) return 0;
    if (!isfinite(f->plateau_lr)) f->plateau_lr = c->lr;
    if (!isfinite(f->plateau_best) || valid_loss < f->plateau_best) {
        f->plateau_best = valid_loss, f->plateau_since = 0;
        return 0;
    }
    if (++f->plateau_since < c->lr_patience) return 0;
    f->plateau_since = 0;
    const double r = f->plateau_lr * c->lr_factor;
    const double next = r > c->lr_min ? r : c->lr_min;
    const int dropped = next < f->plateau_lr;
    f->plateau_lr = next;
    return dropped;
}

/* Counter-based random numbers (public part of model/).
 *
 * Every random draw in seqpar (initialisation, shuffles, dropout masks,
 * sampling offsets) is a pure function of a key: (seed, purpose, a, b, c).
 * There is no generator state, so resuming a run or changing the world size
 * needs no saved RNG state, and a dropout mask does not depend on which rank
 * holds an example.
 *
 * The mixer is SplitMix64's finaliser applied along the key; it passes
 * BigCrush as a counter-based generator when the counter is the input. */
#ifndef SEQPAR_MODEL_RNG_H
#define SEQPAR_MODEL_RNG_H

#include <stdint.h>

/* Purposes keep streams apart: the same (seed, a, b, c) under two purposes
 * gives unrelated numbers. Append only: values are part of reproducibility. */
enum rng_purpose {
    RNG_INIT = 1,    /* a = tensor index, b = element index */
    RNG_SHUFFLE = 2, /* a = epoch, b = position */
    RNG_OFFSET = 3,  /* a = epoch */
    RNG_DROPOUT = 4, /* a = step, b = global example, c = site/time/unit */
    RNG_BPTT = 5,    /* a = step, b = global example, c = time */
    RNG_SAMPLE = 6,  /* generation: a = position, b = draw */
    RNG_VALID = 7,   /* validation split: a = example */
};

uint64_t rng_u64(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b, uint64_t c);
/* Uniform in [0, 1) with 24 random bits (exactly representable floats). */
float rng_uniform(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b, uint64_t c);
/* Uniform integer in [0, n), n > 0, without modulo bias worth speaking of (64-bit
 * multiply-shift). */
uint64_t rng_below(uint64_t n, uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b, uint64_t c);
/* Standard normal (Box-Muller on two keyed uniforms). */
float rng_normal(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b, uint64_t c);

#endif

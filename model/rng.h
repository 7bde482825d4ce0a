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
    RNG_DROPOUT = 4, /* a = step, b = global example, c = site/time; a stream over units */
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
/* Draw i of the stream keyed by `key` (a value of rng_u64): SplitMix64 seeded
 * with the key, one mix per draw, for the many draws of one key (a dropout
 * mask row). Uniform in [0, 1) with 24 random bits. */
static inline float rng_stream_uniform(uint64_t key, uint64_t i)
{
    uint64_t z = key + (i + 1) * 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (float)(int32_t)(z >> 40) * (1.0f / 16777216.0f); /* 24 bits: exact either way */
}
/* Standard normal (Box-Muller on two keyed uniforms). */
float rng_normal(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b, uint64_t c);

#endif

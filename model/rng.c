#include "rng.h"

#include <math.h>

static uint64_t mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t rng_u64(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t h = mix64(seed ^ 0x5e9a7cafULL);
    h = mix64(h ^ purpose);
    h = mix64(h ^ a);
    h = mix64(h ^ b);
    return mix64(h ^ c);
}

float rng_uniform(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b, uint64_t c)
{
    return (float)(rng_u64(seed, purpose, a, b, c) >> 40) * (1.0f / 16777216.0f);
}

uint64_t rng_below(uint64_t n, uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b, uint64_t c)
{
    unsigned __int128 p = (unsigned __int128)rng_u64(seed, purpose, a, b, c) * n;
    return (uint64_t)(p >> 64);
}

float rng_normal(uint64_t seed, uint32_t purpose, uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t r = rng_u64(seed, purpose, a, b, c);
    double u1 = ((double)(r >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double u2 = (double)(mix64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

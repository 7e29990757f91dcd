/* rng.c — counter-based random numbers (Philox4x32-10, Salmon et al. 2011). A value is a pure
 * function of (seed, stream, index): the same draw comes out whatever the thread count, the batch
 * split or the order of evaluation. Normals use Box-Muller on one counter's four words (two
 * normals per counter: index i uses counter i/2, half i%2). */
#include "core/internal.h"

#include <math.h>

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

static void philox(uint64_t key, uint64_t c_hi, uint64_t c_lo, uint32_t out[4]) {
    uint32_t c0 = (uint32_t)c_lo, c1 = (uint32_t)(c_lo >> 32), c2 = (uint32_t)c_hi,
             c3 = (uint32_t)(c_hi >> 32);
    uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0, n1 = (uint32_t)p1,
                 n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1, n3 = (uint32_t)p0;
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
        k0 += PHILOX_W0;
        k1 += PHILOX_W1;
    }
    out[0] = c0, out[1] = c1, out[2] = c2, out[3] = c3;
}

/* (0, 1] from 32 bits: never 0, so log() is finite */
static double unit_open(uint32_t u) {
    return ((double)u + 1.0) / 4294967296.0;
}

void idl__rng_normal(uint64_t seed, uint64_t stream, int64_t first, int64_t n, float *out) {
    /* one counter (one Philox, one log and square root) gives both normals of its pair */
    int64_t c0 = first >> 1, c1 = n > 0 ? (first + n - 1) >> 1 : c0 - 1;
#pragma omp parallel for if (n > IDL_OMP_MIN_RNG)
    for (int64_t c = c0; c <= c1; c++) {
        uint32_t w[4];
        philox(seed, stream, (uint64_t)c, w);
        double u1 = unit_open(w[0]), u2 = unit_open(w[1]);
        double r = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
        int64_t k = 2 * c - first; /* out index of the pair's even half */
        if (k >= 0) out[k] = (float)(r * cos(th));
        if (k + 1 < n) out[k + 1] = (float)(r * sin(th));
    }
}

void idl__rng_uniform(uint64_t seed, uint64_t stream, int64_t first, int64_t n, float *out) {
#pragma omp parallel for if (n > IDL_OMP_MIN_RNG)
    for (int64_t k = 0; k < n; k++) {
        uint32_t w[4];
        philox(seed, stream, (uint64_t)(first + k), w);
        out[k] = (float)((double)w[2] / 4294967296.0); /* [0, 1) */
    }
}

uint64_t idl__rng_u64(uint64_t seed, uint64_t stream, uint64_t index) {
    uint32_t w[4];
    philox(seed, stream, index, w);
    return ((uint64_t)w[3] << 32) | w[2];
}

/* peak.c — the machine's float32 peak as this benchmark measures it: every thread runs chains of
 * independent AVX2 fused multiply-adds (12 accumulators of 8 lanes, enough to cover the FMA
 * latency on two FMA ports) for a fixed count; peak = 2 x 8 x 12 x iterations x threads / time.
 * 0 when the CPU has no AVX2 + FMA (the probe would not measure the peak of what it runs on). */
#include "bench_util.h"

#include <immintrin.h>
#include <omp.h>

#define CHAINS 12

__attribute__((target("avx2,fma"))) static float fma_chains(long iters, float seed) {
    __m256 acc[CHAINS];
    const __m256 b = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-6f);
    for (int k = 0; k < CHAINS; k++)
        acc[k] = _mm256_set1_ps(seed + (float)k);
    for (long i = 0; i < iters; i++)
        for (int k = 0; k < CHAINS; k++)
            acc[k] = _mm256_fmadd_ps(acc[k], b, c);
    __m256 s = acc[0];
    for (int k = 1; k < CHAINS; k++)
        s = _mm256_add_ps(s, acc[k]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

double bench_peak_gflops(int threads) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return 0;
    if (threads < 1) threads = omp_get_max_threads();
    const long iters = 1L << 24;
    volatile float sink = 0;
    fma_chains(iters / 16, 1.0f); /* warm the cores up */
    double t0 = bench_now_ms();
#pragma omp parallel num_threads(threads)
    {
        float r = fma_chains(iters, (float)omp_get_thread_num());
#pragma omp atomic
        sink += r;
    }
    double ms = bench_now_ms() - t0;
    (void)sink;
    return 2.0 * 8 * CHAINS * (double)iters * threads / (ms * 1e6);
}

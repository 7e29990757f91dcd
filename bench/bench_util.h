/* bench_util.h — helpers shared by the benchmark programs: a monotonic clock in milliseconds, a
 * comparison for qsort (medians), and a comma-separated list of positive integers. */
#pragma once

#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static inline double bench_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e3 * (double)ts.tv_sec + 1e-6 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* "1,8" -> {1, 8}; returns the count, or -1 on a malformed list or a value <= 0. */
static inline int bench_parse_list(const char *s, int64_t *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long long v = strtoll(s, &end, 10);
        if (end == s || v <= 0) return -1;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return n;
}

/* Peak resident set size of the process so far, KiB (Linux ru_maxrss). */
static inline long bench_peak_rss_kb(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return -1;
    return (long)ru.ru_maxrss;
}

/* The float32 FMA peak of `threads` threads (0: OpenMP's default) in GFLOP/s, measured by
 * bench/peak.c; 0 without AVX2 + FMA. */
double bench_peak_gflops(int threads);

/* vmath.h — exp and erf of a float written for the auto-vectoriser: straight-line arithmetic and
 * selects, no calls, no branches, so that a loop of them compiles to SIMD code (glibc's expf and
 * erff are calls that keep a loop scalar). Used where these dominate a kernel: Softmax, Erf and
 * Gelu (forward and backward). test_unit checks them against double precision over their range. */
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>

/* e^x for x <= 88.37 (beyond, the result stays e^88.37: callers pass x <= 0). x = n ln2 + r with
 * n = round(x / ln2) (the 1.5 * 2^23 rounding trick) and r reduced in two parts (Cody and Waite:
 * ln2 = 0.693145751953125 + 1.42860682e-6); e^r by its Taylor polynomial to r^7 (|r| <= ln2 / 2:
 * truncation 5.5e-9 relative); 2^n put in the exponent bits. Below -87.34 (where e^x is subnormal)
 * the result is 0; NaN stays NaN. Relative error below 3e-7. */
static inline float idl__vexp(float x) {
    float xc = x < -87.33654f ? -87.33654f : x;
    xc = xc > 88.37626f ? 88.37626f : xc;
    xc = x == x ? xc : 0.0f; /* keep NaN out of the integer conversion */
    const float n = (xc * 1.44269504f + 12582912.0f) - 12582912.0f;
    float r = xc - n * 0.693145751953125f;
    r = r - n * 1.42860682e-6f;
    float p = 1.98412698e-4f;
    p = p * r + 1.38888889e-3f;
    p = p * r + 8.33333333e-3f;
    p = p * r + 4.16666667e-2f;
    p = p * r + 1.66666667e-1f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = ((int32_t)n + 127) * (1 << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    y = x < -87.33654f ? 0.0f : y;
    return x == x ? y : x;
}

/* erf(x) = x P(x^2) / Q(x^2) on |x| <= 3.925 (degrees 5 and 6, fitted by iterated weighted least
 * squares against scipy's erf in double: 1.7e-9 there), odd, and 1 beyond (erf(3.925) rounds to 1
 * in float). Absolute error below 5e-7 in float arithmetic (glibc's erff: 6e-8), relative error
 * near 0 below 3e-7. */
static inline float idl__verf(float x) {
    float a = x < 0 ? -x : x;
    a = a > 3.925f ? 3.925f : a;
    const float t = a * a;
    float p = 6.821458856e-06f;
    p = p * t + 4.115963860e-04f;
    p = p * t + 4.204387526e-03f;
    p = p * t + 5.569021452e-02f;
    p = p * t + 1.922875591e-01f;
    p = p * t + 1.128379184e+00f;
    float q = 2.616683190e-07f;
    q = q * t + 7.279545241e-05f;
    q = q * t + 1.417035126e-03f;
    q = q * t + 1.625275797e-02f;
    q = q * t + 1.172677191e-01f;
    q = q * t + 5.037439872e-01f;
    q = q * t + 1.0f;
    float y = a * p / q;
    y = y > 1.0f ? 1.0f : y;
    y = a >= 3.925f ? 1.0f : y;
    return x < 0 ? -y : y;
}

/* harness.h — minimal test harness: checks print both operands and file:line; a test executable
 * ends with TEST_SUMMARY() which prints "N passed, N failed" and returns the exit status. */
#pragma once

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int th_passed, th_failed;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (cond)                                                                    \
            th_passed++;                                                             \
        else {                                                                       \
            th_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                         \
    do {                                                                             \
        if (cond)                                                                    \
            th_passed++;                                                             \
        else {                                                                       \
            th_failed++;                                                             \
            fprintf(stderr, "%s:%d: CHECK(%s) failed: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                            \
            fputc('\n', stderr);                                                     \
        }                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                         \
    do {                                                                                           \
        long long va_ = (long long)(a), vb_ = (long long)(b);                                      \
        if (va_ == vb_)                                                                            \
            th_passed++;                                                                           \
        else {                                                                                     \
            th_failed++;                                                                           \
            fprintf(stderr, "%s:%d: %s == %s failed (%lld vs %lld)\n", __FILE__, __LINE__, #a, #b, \
                    va_, vb_);                                                                     \
        }                                                                                          \
    } while (0)

/* Status check: prints idl_last_error() on failure. */
#define CHECK_OK(expr)                                                                          \
    do {                                                                                        \
        idl_status st_ = (expr);                                                                \
        if (st_ == IDL_OK)                                                                      \
            th_passed++;                                                                        \
        else {                                                                                  \
            th_failed++;                                                                        \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #expr, (int)st_, \
                    idl_last_error());                                                          \
        }                                                                                       \
    } while (0)

/* max |a-b| <= atol + rtol * max|b|; reports the max difference and the first bad index. */
static inline int th_allclose(const char *label, const float *a, const float *b, long long n,
                              double rtol, double atol) {
    double maxb = 0, maxd = 0;
    long long bad = -1;
    for (long long i = 0; i < n; i++)
        maxb = fmax(maxb, fabs((double)b[i]));
    for (long long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= atol + rtol * maxb) && bad < 0) bad = i;
        if (!(d <= maxd)) maxd = d;
    }
    if (bad >= 0) {
        fprintf(
            stderr,
            "%s: max diff %.3g (max |ref| %.3g, tol %.3g); first bad index %lld: %.7g vs %.7g\n",
            label, maxd, maxb, atol + rtol * maxb, bad, (double)a[bad], (double)b[bad]);
        th_failed++;
        return 0;
    }
    th_passed++;
    return 1;
}

#ifdef INTERPRETDL_H
/* Loads the .npy file dir/name (dir may be ""); on failure prints why, counts a failed check and
 * returns NULL. */
static inline idl_tensor *th_load_npy(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s%s%s", dir, dir[0] && dir[strlen(dir) - 1] != '/' ? "/" : "",
             name);
    idl_tensor *t = NULL;
    if (idl_npy_load(path, &t)) {
        fprintf(stderr, "cannot read %s: %s\n", path, idl_last_error());
        th_failed++;
        return NULL;
    }
    return t;
}
#endif

#define TEST_SUMMARY()                                          \
    do {                                                        \
        printf("%d passed, %d failed\n", th_passed, th_failed); \
        return th_failed ? 1 : 0;                               \
    } while (0)

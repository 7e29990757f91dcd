/* evaluate_internal.h — what the metrics (src/evaluate/) share: the explanation brought to the
 * perturbed tensor's samples, fill values, the result's scores and the trapezoid area. */
#pragma once

#include "interpret/interpret_internal.h"
#include "interpretdl/evaluate.h"

/* The explanation as ranking values per sample (N * F doubles, *vals owned): F = numel (one per
 * element: the explanation has the input's shape) or H * W (one per pixel: an (N, H, W) or
 * (N, 1, H, W) explanation, one of another 2-D size resized bilinearly, or an element-wise one
 * reduced over channels when reduce = 1 (sum of |E|), 2 (sum of E) or 3 (InterpretDL's: sum of
 * |E| when there are several channels, else E as it is)). Non-finite values are refused. Errors
 * name the metric and both shapes. */
idl_status idl__ev_values(const idl__xrun *r, const idl_tensor *E, int reduce, const char *metric,
                          double **vals, int64_t *F);
/* An error naming the metric when the perturbed input holds a non-finite value. */
idl_status idl__ev_check_input(const idl__xrun *r, const char *metric);
/* The value of element j (0..numel-1) of sample i under idl__ev_values's layout. */
static inline double idl__ev_at(const idl__xrun *r, const double *vals, int64_t F, int64_t i,
                                int64_t j) {
    return F == r->numel ? vals[i * F + j] : vals[i * F + j % F];
}
/* Checks the fill against the run (a tensor's shape). */
idl_status idl__ev_fill_check(const idl__xrun *r, const idl_fill *f, const char *metric);
/* The fill of sample i (numel floats) into dst. */
idl_status idl__ev_fill(const idl__xrun *r, const idl_fill *f, int64_t i, float *dst);
/* Allocates the result's targets, clean scores and (n, n_scores) values (NaN) with these names. */
idl_status idl__ev_result(idl_evaluation *out, int64_t n, const int64_t *targets,
                          const float *score, int n_scores, const char *const *names);
/* Trapezoid area of y_0..y_K with spacing 1/K (x in [0, 1]); y_0 for K = 0. */
double idl__ev_trapz(const double *y, int64_t K);

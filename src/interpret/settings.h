/* settings.h — "key=value" settings as the registries of methods (src/interpret/registry.c) and
 * metrics (src/evaluate/registry.c) read them: each getter leaves the default in place when the key
 * is absent, and returns an INVALID_ARG error naming the key, the value and what was expected. */
#pragma once

#include "interpret/interpret_internal.h"

#define IDL__MAX_SET 64

typedef struct idl__kv {
    char key[64];
    const char *val;
    bool used;
} idl__kv;

typedef struct idl__kvs {
    idl__kv v[IDL__MAX_SET];
    int n;
    idl_tensor *owned[8]; /* tensors loaded from files */
    int n_owned;
    const char *method;
} idl__kvs;

/* Splits settings "key=value" (a key given twice is an error); method names the caller in errors.
 */
idl_status idl__kvs_parse(idl__kvs *k, const char *method, const char *const *set, int n);
/* Releases the tensors loaded from files. */
void idl__kvs_free(idl__kvs *k);
/* The value of key (marked used), or NULL. */
const char *idl__kv_get(idl__kvs *k, const char *key);
/* Marks key unused again (a setting read for a check but meant for another consumer). */
void idl__kv_unuse(idl__kvs *k, const char *key);
/* The error "<method>: setting key=val: expected <want>". */
idl_status idl__kv_bad(idl__kvs *k, const char *key, const char *val, const char *want);
idl_status idl__kv_int(idl__kvs *k, const char *key, int *out, long lo, long hi);
idl_status idl__kv_u64(idl__kvs *k, const char *key, uint64_t *out);
idl_status idl__kv_float(idl__kvs *k, const char *key, float *out, double lo, double hi);
/* 1/true/yes or 0/false/no */
idl_status idl__kv_bool(idl__kvs *k, const char *key, int *out);
/* one of names[0..n-1]: *out receives its index */
idl_status idl__kv_enum(idl__kvs *k, const char *key, const char *const *names, int n, int *out);
/* a .npy file, loaded and owned by k */
idl_status idl__kv_npy(idl__kvs *k, const char *key, const idl_tensor **out);
/* n comma-separated numbers; fewer repeat the last */
idl_status idl__kv_floats(idl__kvs *k, const char *key, float *out, int n);
/* baseline, blur_sigma, trials, mean, std (Integrated Gradients' baselines) */
idl_status idl__kv_baseline(idl__kvs *k, idl_baseline *b);
/* "a,b,c": 1..max integers in [lo, hi]; *n receives the count. */
idl_status idl__kv_ints(idl__kvs *k, const char *key, int64_t *out, int max, int *n, long long lo,
                        long long hi);
/* Settings every method and metric takes (objective, output, internal_batch, seed, wrt, layer);
 * they override the request's fields. */
idl_status idl__kv_request(idl__kvs *k, idl_explain_request *rq);
/* LIME's sampling and segmentation settings (IDL__LIME_KEYS); p->seg points to g. */
typedef struct idl_segment_params idl_segment_params;
idl_status idl__kv_lime(idl__kvs *k, const idl_explain_request *rq, idl_lime_params *p,
                        idl_segment_params *g);
#define IDL__LIME_KEYS                                                                        \
    "num_samples, kernel_width, hide, segmentation, ratio, kernel_size, max_dist, sigma, "    \
    "convert2lab, n_segments, compactness, max_iter, grid_rows, grid_cols, segments, masks, " \
    "segments_out, masks_out"

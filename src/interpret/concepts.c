/* concepts.c — the concepts of NormLIME and G-LIME: superpixels described by a layer of the user's
 * own model and grouped by k-means. InterpretDL describes a superpixel by a fixed downloaded
 * extractor (a ResNet-vd stem) and a pretrained scikit-learn KMeans; we keep its recipe (the
 * feature at the centroid pixel next to the mean over the region, L2-normalised) on a layer of the
 * model being explained, and fit the clusters here (k-means++ seeding, Lloyd iterations), so
 * nothing is downloaded and the concepts speak the model's own language. */
#include "interpret/interpret_internal.h"

#include "tensor/tensor_internal.h"

#include <float.h>
#include <math.h>
#include <string.h>

idl_status idl__superpixel_features(const float *A, int64_t K, int64_t h, int64_t w,
                                    const int32_t *seg, int64_t H, int64_t W, int64_t S,
                                    float *out) {
    int64_t HW = H * W;
    float *U = idl__malloc(sizeof(float) * (size_t)HW);
    double *cy = idl__calloc((size_t)S, sizeof(double)),
           *cx = idl__calloc((size_t)S, sizeof(double));
    double *sum = idl__calloc((size_t)S, sizeof(double));
    int64_t *cnt = idl__calloc((size_t)S, sizeof(int64_t)),
            *at = idl__calloc((size_t)S, sizeof(int64_t));
    idl_status st =
        U && cy && cx && sum && cnt && at ? IDL_OK : idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int64_t q = 0; !st && q < HW; q++) {
        int32_t l = seg[q];
        cnt[l]++, cy[l] += (double)(q / W), cx[l] += (double)(q % W);
    }
    for (int64_t l = 0; !st && l < S; l++) { /* the pixel nearest the centroid */
        double y = cnt[l] ? rint(cy[l] / (double)cnt[l]) : 0,
               x = cnt[l] ? rint(cx[l] / (double)cnt[l]) : 0;
        at[l] = (int64_t)y * W + (int64_t)x;
    }
    for (int64_t k = 0; !st && k < K; k++) {
        st = idl__resize_map(A + k * h * w, (int)w, (int)h, U, (int)W, (int)H, "concept features");
        if (st) break;
        memset(sum, 0, sizeof(double) * (size_t)S);
        for (int64_t q = 0; q < HW; q++)
            sum[seg[q]] += U[q];
        for (int64_t l = 0; l < S; l++) {
            out[l * 2 * K + k] = U[at[l]];
            out[l * 2 * K + K + k] = cnt[l] ? (float)(sum[l] / (double)cnt[l]) : 0.0f;
        }
    }
    for (int64_t l = 0; !st && l < S; l++) {
        double n = 0;
        for (int64_t j = 0; j < 2 * K; j++)
            n += (double)out[l * 2 * K + j] * out[l * 2 * K + j];
        n = sqrt(n);
        for (int64_t j = 0; n > 0 && j < 2 * K; j++)
            out[l * 2 * K + j] = (float)(out[l * 2 * K + j] / n);
    }
    idl__free(U);
    idl__free(cy);
    idl__free(cx);
    idl__free(sum);
    idl__free(cnt);
    idl__free(at);
    return st;
}

static double dist2(const float *a, const float *b, int64_t D) {
    double s = 0;
    for (int64_t j = 0; j < D; j++) {
        double d = (double)a[j] - b[j];
        s += d * d;
    }
    return s;
}

int64_t idl__nearest_centre(const float *x, const float *centres, int64_t k, int64_t D) {
    int64_t best = 0;
    double bd = DBL_MAX;
    for (int64_t c = 0; c < k; c++) {
        double d = dist2(x, centres + c * D, D);
        if (d < bd) bd = d, best = c;
    }
    return best;
}

static double unit(uint64_t seed, uint64_t draw) {
    return (double)(idl__rng_u64(seed, IDL__STREAM(IDL__STREAM_KMEANS, 0), draw) >> 11) * 0x1p-53;
}

idl_status idl__kmeans(const float *X, int64_t n, int64_t D, int64_t k, uint64_t seed, int max_iter,
                       float *centres, int32_t *assign) {
    if (n < 1 || D < 1 || k < 1) return idl__error(IDL_ERR_INVALID_ARG, "k-means: no points");
    k = k < n ? k : n;
    double *d2 = idl__malloc(sizeof(double) * (size_t)n);
    double *acc = idl__malloc(sizeof(double) * (size_t)(k * D));
    int64_t *cnt = idl__malloc(sizeof(int64_t) * (size_t)k);
    if (!d2 || !acc || !cnt) {
        idl__free(d2);
        idl__free(acc);
        idl__free(cnt);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    /* k-means++ */
    int64_t first = (int64_t)(unit(seed, 0) * (double)n);
    memcpy(centres, X + (first < n ? first : n - 1) * D, sizeof(float) * (size_t)D);
    for (int64_t i = 0; i < n; i++)
        d2[i] = dist2(X + i * D, centres, D);
    for (int64_t c = 1; c < k; c++) {
        double tot = 0;
        for (int64_t i = 0; i < n; i++)
            tot += d2[i];
        int64_t pick = n - 1;
        if (tot > 0) {
            double u = unit(seed, (uint64_t)c) * tot, run = 0;
            for (int64_t i = 0; i < n; i++) {
                run += d2[i];
                if (run > u && d2[i] > 0) {
                    pick = i;
                    break;
                }
            }
        } else {
            pick = c; /* every point on a centre already: duplicates are harmless */
        }
        memcpy(centres + c * D, X + pick * D, sizeof(float) * (size_t)D);
        for (int64_t i = 0; i < n; i++) {
            double d = dist2(X + i * D, centres + c * D, D);
            d2[i] = d < d2[i] ? d : d2[i];
        }
    }
    /* Lloyd */
    for (int64_t i = 0; i < n; i++)
        assign[i] = -1;
    for (int it = 0; it < max_iter; it++) {
        int64_t moved = 0;
#pragma omp parallel for reduction(+ : moved) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            int32_t a = (int32_t)idl__nearest_centre(X + i * D, centres, k, D);
            moved += a != assign[i];
            assign[i] = a;
        }
        if (!moved) break;
        memset(acc, 0, sizeof(double) * (size_t)(k * D));
        memset(cnt, 0, sizeof(int64_t) * (size_t)k);
        for (int64_t i = 0; i < n; i++) {
            cnt[assign[i]]++;
            for (int64_t j = 0; j < D; j++)
                acc[assign[i] * D + j] += X[i * D + j];
        }
        for (int64_t c = 0; c < k; c++) {
            if (!cnt[c]) { /* an empty cluster takes the point farthest from its centre */
                int64_t far = 0;
                double fd = -1;
                for (int64_t i = 0; i < n; i++) {
                    double d = dist2(X + i * D, centres + assign[i] * D, D);
                    if (d > fd) fd = d, far = i;
                }
                memcpy(centres + c * D, X + far * D, sizeof(float) * (size_t)D);
                assign[far] = (int32_t)c;
                continue;
            }
            for (int64_t j = 0; j < D; j++)
                centres[c * D + j] = (float)(acc[c * D + j] / (double)cnt[c]);
        }
    }
    for (int64_t i = 0; i < n; i++)
        assign[i] = (int32_t)idl__nearest_centre(X + i * D, centres, k, D);
    idl__free(d2);
    idl__free(acc);
    idl__free(cnt);
    return IDL_OK;
}

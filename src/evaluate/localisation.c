/* localisation.c — does the explanation point at the object? The pointing game as Quantus's
 * PointingGame scores it (hit: a maximal element inside the object; Zhang et al. 2016) and the
 * scores of InterpretDL's PointGame / PointGameSegmentation (ALGORITHMS.md §6.7: precision, recall
 * and F1 of the map thresholded at a fraction of its maximum, ROC-AUC and average precision of
 * the raw map, computed as scikit-learn does, ties included). Needs no model. */
#include "evaluate/evaluate_internal.h"

#include "tensor/tensor_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

idl_point_game_params idl_point_game_params_default(void) {
    idl_point_game_params p;
    memset(&p, 0, sizeof p);
    p.threshold = 0.25f;
    return p;
}

typedef struct scored {
    double v;
    int label;
} scored;

static int by_score_desc(const void *a, const void *b) {
    const scored *x = a, *y = b;
    return x->v > y->v ? -1 : x->v < y->v;
}

/* ROC-AUC (ties count one half) and average precision (sum over distinct thresholds, from the
 * highest, of (R_k - R_{k-1}) P_k) of scores v against 0/1 labels; NaN without both classes. */
static void roc_ap(scored *s, int64_t n, double *auc, double *ap) {
    qsort(s, (size_t)n, sizeof *s, by_score_desc);
    double pos = 0;
    for (int64_t k = 0; k < n; k++)
        pos += s[k].label;
    double neg = (double)n - pos;
    *auc = *ap = NAN;
    if (pos == 0) return;
    double tp = 0, fp = 0, area = 0, prev_r = 0, sum_ap = 0;
    for (int64_t k = 0; k < n;) {
        double tp0 = tp, fp0 = fp;
        int64_t e = k;
        do /* one threshold: the whole tie group (at least one element) */
            tp += s[e].label, fp += 1 - s[e].label, e++;
        while (e < n && s[e].v == s[k].v);
        area += (fp - fp0) * (tp + tp0) / 2; /* trapezoid of the ROC step */
        double r = tp / pos;
        sum_ap += (r - prev_r) * (tp / (tp + fp));
        prev_r = r;
        k = e;
    }
    *ap = sum_ap;
    if (neg > 0) *auc = area / (pos * neg);
}

idl_status idl_eval_point_game(const idl_tensor *E, const idl_point_game_params *p,
                               idl_evaluation *out) {
    idl_point_game_params d = idl_point_game_params_default();
    if (out) memset(out, 0, sizeof *out);
    if (!out || !E) return idl__error(IDL_ERR_INVALID_ARG, "point_game: NULL argument");
    if (!p) p = &d;
    char a[128], b[128];
    if ((E->dtype != IDL_DT_F32 && E->dtype != IDL_DT_F64) || E->ndim < 2 || E->ndim > 4)
        return idl__error(IDL_ERR_SHAPE,
                          "point_game: the explanation must be float (H, W), (N, H, W) or "
                          "(N, C, H, W); it is %s %s",
                          idl_dtype_name(E->dtype), idl__shape_str(E->ndim, E->shape, a, sizeof a));
    int64_t N = E->ndim == 2 ? 1 : E->shape[0], C = E->ndim == 4 ? E->shape[1] : 1;
    int64_t H = E->shape[E->ndim - 2], W = E->shape[E->ndim - 1];
    if (idl_tensor_numel(E) == 0)
        return idl__error(IDL_ERR_SHAPE, "point_game: the explanation %s is empty",
                          idl__shape_str(E->ndim, E->shape, a, sizeof a));
    for (int64_t j = 0; j < idl_tensor_numel(E); j++)
        if (!isfinite(idl__get_f64(E, j)))
            return idl__error(IDL_ERR_INVALID_ARG,
                              "point_game: the explanation holds a non-finite value (element "
                              "%lld)",
                              (long long)j);
    if ((p->mask != NULL) == (p->n_boxes > 0))
        return idl__error(IDL_ERR_INVALID_ARG, "point_game: give the object as box= (or boxes=) "
                                               "or as mask=, one of them");
    if (p->n_boxes > 0 && p->n_boxes != 1 && p->n_boxes != N)
        return idl__error(IDL_ERR_SHAPE, "point_game: %lld boxes for %lld samples",
                          (long long)p->n_boxes, (long long)N);
    if (!(p->threshold >= 0 && p->threshold <= 1))
        return idl__error(IDL_ERR_INVALID_ARG, "point_game: threshold must be in [0, 1]");
    int64_t MH = H, MW = W;
    const idl_tensor *m = p->mask;
    if (m) {
        MH = m->ndim >= 2 ? m->shape[m->ndim - 2] : 0,
        MW = m->ndim >= 2 ? m->shape[m->ndim - 1] : 0;
        if (m->ndim < 2 || MH < 1 || MW < 1 ||
            (idl_tensor_numel(m) != MH * MW && idl_tensor_numel(m) != N * MH * MW))
            return idl__error(IDL_ERR_SHAPE,
                              "point_game: the mask %s must be (H, W) or (%lld, H, W)",
                              idl__shape_str(m->ndim, m->shape, b, sizeof b), (long long)N);
    }
    bool resize = MH != H || MW != W;
    int64_t HW = MH * MW;
    double *map = idl__malloc(sizeof(double) * (size_t)HW);
    double *emax = idl__malloc(sizeof(double) * (size_t)HW); /* max over channels per pixel */
    float *src = idl__malloc(sizeof(float) * (size_t)(H * W)),
          *dst = idl__malloc(sizeof(float) * (size_t)HW);
    unsigned char *obj = idl__malloc((size_t)HW);
    scored *sc = idl__malloc(sizeof(scored) * (size_t)HW);
    static const char *const names[] = { "hit", "precision", "recall", "f1", "roc_auc", "ap" };
    idl_status st = map && emax && src && dst && obj && sc
                        ? IDL_OK
                        : idl__error(IDL_ERR_NOMEM, "out of memory");
    if (!st) st = idl__ev_result(out, N, NULL, NULL, 6, names);
    for (int64_t i = 0; !st && i < N; i++) {
        /* the map at the object's resolution: summed over channels; emax for the hit */
        for (int pass = 0; pass < 2 && !st; pass++) {
            for (int64_t q = 0; q < H * W; q++) {
                double acc = pass ? -INFINITY : 0;
                for (int64_t c = 0; c < C; c++) {
                    double v = idl__get_f64(E, (i * C + c) * H * W + q);
                    acc = pass ? (v > acc ? v : acc) : acc + v;
                }
                src[q] = (float)acc;
                if (!resize) (pass ? emax : map)[q] = acc;
            }
            if (resize) {
                st = idl__resize_map(src, (int)W, (int)H, dst, (int)MW, (int)MH, "point_game");
                for (int64_t q = 0; !st && q < HW; q++)
                    (pass ? emax : map)[q] = dst[q];
            }
        }
        if (st) break;
        int64_t n_obj = 0;
        if (m) {
            int64_t off = idl_tensor_numel(m) == HW ? 0 : i * HW;
            for (int64_t q = 0; q < HW; q++)
                n_obj += obj[q] = idl__get_f64(m, off + q) != 0;
        } else {
            const int64_t *bx = p->boxes + (p->n_boxes == 1 ? 0 : i * 4);
            int64_t x1 = IDL_MAX(bx[0], 0), y1 = IDL_MAX(bx[1], 0);
            int64_t x2 = IDL_MIN(bx[2], MW), y2 = IDL_MIN(bx[3], MH);
            for (int64_t q = 0; q < HW; q++) {
                int64_t y = q / MW, x = q % MW;
                n_obj += obj[q] = y >= y1 && y < y2 && x >= x1 && x < x2;
            }
        }
        double *o = out->values + i * 6;
        double mx = -INFINITY, mm = -INFINITY;
        for (int64_t q = 0; q < HW; q++)
            mx = emax[q] > mx ? emax[q] : mx, mm = map[q] > mm ? map[q] : mm;
        int hit = 0;
        for (int64_t q = 0; q < HW; q++)
            hit |= obj[q] && emax[q] == mx;
        o[0] = n_obj ? hit : NAN;
        double thr = p->threshold * mm, tp = 0, pp = 0;
        for (int64_t q = 0; q < HW; q++) {
            bool pred = map[q] > thr;
            tp += pred && obj[q], pp += pred;
            sc[q].v = map[q], sc[q].label = obj[q];
        }
        double P = pp > 0 ? tp / pp : NAN, R = n_obj ? tp / (double)n_obj : NAN;
        o[1] = P, o[2] = R, o[3] = 2 * P * R / (P + R + 1e-6);
        roc_ap(sc, HW, &o[4], &o[5]);
    }
    if (st) idl_evaluation_clear(out);
    idl__free(map);
    idl__free(emax);
    idl__free(src);
    idl__free(dst);
    idl__free(obj);
    idl__free(sc);
    return st;
}

/* robustness.c — sensitivity of an explanation to small input noise (Yeh et al. 2019, the
 * max- and average-sensitivity of Quantus's MaxSensitivity / AvgSensitivity with their
 * defaults: uniform noise in [-radius, radius] on every element, the Frobenius norm of the
 * difference over that of the explanation). The method is run again by name through the
 * explanation registry, on all samples of the batch at once, with the targets of the clean pass.
 * Departures from Quantus: its default is 200 draws (ours 10; n_samples); its noise comes from
 * NumPy's global generator (ours from the counter-based one, keyed by (seed, draw, element) the
 * same for every sample; replay with noise=). */
#include "evaluate/evaluate_internal.h"

#include <math.h>
#include <string.h>

idl_sensitivity_params idl_sensitivity_params_default(void) {
    idl_sensitivity_params p;
    memset(&p, 0, sizeof p);
    p.n_samples = 10;
    p.radius = 0.2f;
    return p;
}

idl_status idl_eval_sensitivity(idl_session *s, const idl_explain_request *rq,
                                const idl_tensor *explanation, const idl_sensitivity_params *p,
                                idl_evaluation *out) {
    idl_sensitivity_params d = idl_sensitivity_params_default();
    if (out) memset(out, 0, sizeof *out);
    if (!out || !rq) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    if (!p) p = &d;
    if (!p->method || !idl_explain_help(p->method))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "sensitivity: method=%s is not an explanation method "
                          "(interpretdl explain --help lists them)",
                          p->method ? p->method : "(none)");
    if (p->n_samples < 1 || !(p->radius >= 0) || !isfinite(p->radius))
        return idl__error(IDL_ERR_INVALID_ARG, "sensitivity: n_samples >= 1 and radius >= 0");
    idl__xrun r;
    idl_status st = idl__x_begin(&r, s, rq, true);
    if (st) return st;
    if (r.wrt_input < 0) {
        idl__x_end(&r);
        return idl__error(IDL_ERR_INVALID_ARG,
                          "sensitivity adds noise to a graph input; '%s' is not one (give wrt=)",
                          r.wrt);
    }
    if ((st = idl__ev_check_input(&r, "sensitivity"))) {
        idl__x_end(&r);
        return st;
    }
    int64_t N = r.N, n = r.numel;
    const idl_tensor *nz = p->noise;
    char a[128];
    if (nz && (nz->dtype != IDL_DT_F32 || nz->ndim < 2 || nz->shape[0] < p->n_samples ||
               (idl_tensor_numel(nz) != nz->shape[0] * n &&
                idl_tensor_numel(nz) != nz->shape[0] * N * n)))
        st = idl__error(IDL_ERR_SHAPE,
                        "sensitivity: noise must be float32 (n_samples >= %d, [N,] sample "
                        "shape); it is %s",
                        p->n_samples, idl__shape_str(nz->ndim, nz->shape, a, sizeof a));
    idl_explain_request q = *rq;
    q.targets = r.targets;
    q.input_names = NULL;
    q.progress = NULL;
    const idl_tensor *ins[IDL__XMAX_IN];
    for (int k = 0; k < r.n_in; k++)
        ins[k] = r.in[k];
    q.inputs = ins;
    q.n_inputs = r.n_in;
    idl_explanation e0, e1;
    memset(&e0, 0, sizeof e0);
    memset(&e1, 0, sizeof e1);
    idl_tensor *xp = NULL;
    double *sens = idl__malloc(sizeof(double) * (size_t)(N * p->n_samples));
    float *noise = idl__malloc(sizeof(float) * (size_t)n);
    if (!st && (!sens || !noise)) st = idl__error(IDL_ERR_NOMEM, "out of memory");
    const idl_tensor *ref = explanation;
    int64_t passes = r.passes;
    if (!st && !ref) { /* the method at the clean input */
        st = idl_explain(s, p->method, &q, p->settings, p->n_settings, &e0);
        if (st) idl__error_prefix(st, "sensitivity: %s: ", p->method);
        ref = e0.attribution;
        passes += e0.passes;
    }
    int64_t m = 0; /* values per sample */
    if (!st) m = idl_tensor_numel(ref) / N;
    if (!st && (ref->dtype != IDL_DT_F32 && ref->dtype != IDL_DT_F64))
        st = idl__error(IDL_ERR_INVALID_ARG, "sensitivity: the explanation is %s",
                        idl_dtype_name(ref->dtype));
    if (!st) st = idl_tensor_new(IDL_DT_F32, r.wrt_ndim, r.wrt_shape, &xp);
    if (!st) ins[r.wrt_input] = xp;
    for (int j = 0; !st && j < p->n_samples; j++) {
        float *xv = xp->data;
        if (!nz) idl__rng_uniform(rq->seed, IDL__STREAM(IDL__STREAM_SENSITIVITY, j), 0, n, noise);
        for (int64_t i = 0; i < N; i++) {
            const float *src = NULL;
            if (nz)
                src = (const float *)nz->data +
                      (idl_tensor_numel(nz) == nz->shape[0] * n ? j * n : (j * N + i) * n);
            for (int64_t k = 0; k < n; k++)
                xv[i * n + k] =
                    r.x[i * n + k] + (nz ? src[k] : (float)(p->radius * (2.0 * noise[k] - 1.0)));
        }
        st = idl_explain(s, p->method, &q, p->settings, p->n_settings, &e1);
        if (st) {
            idl__error_prefix(st, "sensitivity: %s (draw %d): ", p->method, j);
            break;
        }
        passes += e1.passes;
        if (idl_tensor_numel(e1.attribution) != N * m) {
            char b[128];
            st = idl__error(
                IDL_ERR_SHAPE,
                "sensitivity: the explanation %s and the output of %s %s differ in "
                "size",
                idl__shape_str(ref->ndim, ref->shape, a, sizeof a), p->method,
                idl__shape_str(e1.attribution->ndim, e1.attribution->shape, b, sizeof b));
        }
        for (int64_t i = 0; !st && i < N; i++) {
            double num = 0, den = 0;
            for (int64_t k = 0; k < m; k++) {
                double e = idl__get_f64(ref, i * m + k);
                double dlt = idl__get_f64(e1.attribution, i * m + k) - e;
                num += dlt * dlt, den += e * e;
            }
            sens[i * p->n_samples + j] = den > 0 ? sqrt(num) / sqrt(den) : NAN;
        }
        idl_explanation_clear(&e1);
        if (rq->progress && rq->progress(j + 1, p->n_samples, rq->progress_user))
            st = idl__error(IDL_ERR_ABORTED, "sensitivity: aborted");
    }
    static const char *const names[] = { "max_sensitivity", "avg_sensitivity" };
    if (!st) st = idl__ev_result(out, N, r.targets, r.score, 2, names);
    for (int64_t i = 0; !st && i < N; i++) {
        double mx = NAN, sum = 0; /* NaN draws (a zero explanation) left out; all NaN: NaN */
        int k = 0;
        for (int j = 0; j < p->n_samples; j++) {
            double v = sens[i * p->n_samples + j];
            if (isnan(v)) continue;
            mx = isnan(mx) || v > mx ? v : mx, sum += v, k++;
        }
        out->values[i * 2] = mx, out->values[i * 2 + 1] = k ? sum / k : NAN;
    }
    if (!st) out->passes = passes;
    if (st) idl_evaluation_clear(out);
    idl_explanation_clear(&e0);
    idl_explanation_clear(&e1);
    idl_tensor_free(xp);
    idl__free(sens);
    idl__free(noise);
    idl__x_end(&r);
    return st;
}

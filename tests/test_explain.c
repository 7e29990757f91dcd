/* test_explain.c — the explanation methods (ctest labels `invariant` and `parity`).
 *
 * Invariants (no reference needed):
 *   - a linear model: every Integrated Gradients quadrature gives (x - b) * W[t] exactly (Captum's
 *     riemann_trapezoid (n-1)/n of it, by its weights), completeness error 0 for any baseline;
 *     SmoothGrad = W[t], VarGrad = 0, SmoothGrad-squared = W[t]^2, GradientSHAP with no noise =
 *     x * W[t]; saliency, input x gradient;
 *   - small CNN: SmoothGrad with noise 0 equals the signed gradient; IG completeness within 1% at
 *     300 Gauss-Legendre steps; N samples in one call equal N single calls (SmoothGrad, IG,
 *     GradientSHAP, Grad-CAM, noise tunnel); internal_batch does not change results; same seed,
 *     same result; Grad-CAM of the logit at the pooled layer = ReLU(CAM) / (h w); Guided Grad-CAM =
 *     guided backprop times nearest-upsampled Grad-CAM;
 *   - a text transformer: IG w.r.t. the automatically found word embedding, completeness within 1%;
 *   - errors: unknown method or setting, bad values, wrong layer, replay files of the wrong shape.
 * Parity (tests/data/explain/<case>/case.txt, written by tests/reference/make_explain.py from
 * Captum, pytorch-grad-cam and PyTorch): each line `METHOD EXPECTED.npy key=value...` runs
 * idl_explain with those settings (the same path as `interpretdl explain --set`) and compares
 * max|ours - ref| <= tol * max|ref| (tol default 1e-4). Keys read here: tol, targets (=argmax for
 * none; default targets.npy), input / input.NAME (default input.npy), r2 and intercept (a
 * surrogate's per-sample fit, comma-separated, to 1e-5 relative).
 *
 * usage: test_explain [--invariants] [--parity DIR]   (both by default; DIR = tests/data/explain)
 */
#define _POSIX_C_SOURCE 200809L

#include "interpretdl/interpretdl.h"

#include "harness.h"
#include "model_builder.h"

#include <dirent.h>
#include <unistd.h>

static idl_model *g_cnn, *g_text;
static const char *g_data = NULL;

static idl_tensor *load(const char *dir, const char *file) {
    return th_load_npy(dir, file);
}

static idl_status explain1(idl_session *s, const char *method, const idl_tensor *x,
                           const int64_t *targets, idl_objective_kind k, const char *set,
                           idl_explanation *e) {
    idl_explain_request rq = idl_explain_request_default();
    const idl_tensor *in[1] = { x };
    rq.inputs = in;
    rq.n_inputs = 1;
    rq.targets = targets;
    rq.objective = k;
    const char *sets[16];
    int n = 0;
    char buf[1024];
    if (set) {
        snprintf(buf, sizeof buf, "%s", set);
        for (char *tok = strtok(buf, " "); tok && n < 16; tok = strtok(NULL, " "))
            sets[n++] = tok;
    }
    return idl_explain(s, method, &rq, sets, n, e);
}

static double sumf(const idl_tensor *t, int64_t from, int64_t n) {
    double s = 0;
    for (int64_t j = 0; j < n; j++)
        s += ((const float *)t->data)[from + j];
    return s;
}

/* ---------------- linear model ---------------- */
static const float LW[3 * 4] = { 0.5f, -1.0f, 2.0f, 0.25f, -0.75f, 0.3f,
                                 0.1f, 1.5f,  1.0f, 1.0f,  -0.5f,  -2.0f };
static const float LB[3] = { 0.1f, -0.2f, 0.05f };

static void test_linear(void) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 2, (int64_t[]){ -1, 4 });
    tb_init_f32(b, "W", 2, (int64_t[]){ 3, 4 }, LW);
    tb_init_f32(b, "B", 1, (int64_t[]){ 3 }, LB);
    tb_node(b, "Gemm", "x,W,B", "y");
    tb_attr_int(b, "transB", 1);
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    float xv[8] = { 1.0f, 2.0f, -1.0f, 0.5f, -0.3f, 0.7f, 1.1f, -2.0f };
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 2, 4 }, xv);
    int64_t tg[2] = { 2, 0 };
    float expect[8], wt[8];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 4; j++) {
            wt[i * 4 + j] = LW[tg[i] * 4 + j];
            expect[i * 4 + j] = xv[i * 4 + j] * wt[i * 4 + j];
        }
    static const char *const methods[] = { "gausslegendre",    "riemann_left", "riemann_right",
                                           "riemann_middle",   "trapezoid",    "linspace",
                                           "riemann_trapezoid" };
    for (int k = 0; k < 7; k++) {
        char set[128];
        snprintf(set, sizeof set, "method=%s steps=7", methods[k]);
        idl_explanation e;
        CHECK_OK(explain1(s, "integrated_gradients", &x, tg, IDL_OBJ_LOGIT, set, &e));
        if (!e.attribution) continue;
        float want[8];
        double f = k == 6 ? 6.0 / 7.0 : 1.0; /* Captum's trapezoid weights sum to (n-1)/n */
        for (int j = 0; j < 8; j++)
            want[j] = (float)(expect[j] * f);
        th_allclose(methods[k], e.attribution->data, want, 8, 1e-6, 1e-7);
        if (k < 6)
            for (int i = 0; i < 2; i++)
                CHECK_MSG(fabs(e.delta[i]) < 1e-5, "%s delta %g", methods[k], e.delta[i]);
        idl_explanation_clear(&e);
    }
    /* any baseline: completeness is exact on a linear model */
    static const char *const bases[] = { "baseline=uniform", "baseline=random trials=3" };
    for (int k = 0; k < 2; k++) {
        idl_explanation e;
        CHECK_OK(explain1(s, "integrated_gradients", &x, tg, IDL_OBJ_LOGIT, bases[k], &e));
        for (int i = 0; e.delta && i < 2; i++)
            CHECK_MSG(fabs(e.delta[i]) < 1e-4, "%s delta %g", bases[k], e.delta[i]);
        idl_explanation_clear(&e);
    }
    idl_explanation e;
    CHECK_OK(explain1(s, "smoothgrad", &x, tg, IDL_OBJ_LOGIT, "n_samples=5", &e));
    if (e.attribution) th_allclose("smoothgrad linear", e.attribution->data, wt, 8, 1e-6, 1e-7);
    idl_explanation_clear(&e);
    CHECK_OK(explain1(s, "vargrad", &x, tg, IDL_OBJ_LOGIT, "n_samples=5", &e));
    float zero[8] = { 0 }, sq[8];
    if (e.attribution) th_allclose("vargrad linear", e.attribution->data, zero, 8, 0, 1e-6);
    idl_explanation_clear(&e);
    for (int j = 0; j < 8; j++)
        sq[j] = wt[j] * wt[j];
    CHECK_OK(explain1(s, "smoothgrad_sq", &x, tg, IDL_OBJ_LOGIT, "n_samples=5", &e));
    if (e.attribution) th_allclose("smoothgrad_sq linear", e.attribution->data, sq, 8, 1e-6, 1e-7);
    idl_explanation_clear(&e);
    CHECK_OK(explain1(s, "gradient_shap", &x, tg, IDL_OBJ_LOGIT, "n_samples=4", &e));
    if (e.attribution)
        th_allclose("gradient_shap linear", e.attribution->data, expect, 8, 1e-6, 1e-7);
    idl_explanation_clear(&e);
    CHECK_OK(explain1(s, "saliency", &x, tg, IDL_OBJ_LOGIT, "abs=0", &e));
    if (e.attribution) th_allclose("saliency linear", e.attribution->data, wt, 8, 1e-7, 0);
    idl_explanation_clear(&e);
    CHECK_OK(explain1(s, "input_x_gradient", &x, tg, IDL_OBJ_LOGIT, NULL, &e));
    if (e.attribution)
        th_allclose("input_x_gradient linear", e.attribution->data, expect, 8, 1e-7, 0);
    idl_explanation_clear(&e);
    /* argmax targets: sample 0 logits = W x + b */
    CHECK_OK(explain1(s, "saliency", &x, NULL, IDL_OBJ_LOGIT, "abs=0", &e));
    if (e.targets) {
        for (int i = 0; i < 2; i++) {
            int best = 0;
            float bv = -1e30f;
            for (int c = 0; c < 3; c++) {
                float z = LB[c];
                for (int j = 0; j < 4; j++)
                    z += LW[c * 4 + j] * xv[i * 4 + j];
                if (z > bv) bv = z, best = c;
            }
            CHECK_EQ_INT(e.targets[i], best);
            CHECK_MSG(fabsf(e.score[i] - bv) < 1e-5f, "score %g vs %g", e.score[i], bv);
        }
    }
    idl_explanation_clear(&e);
    /* errors */
    CHECK_EQ_INT(explain1(s, "integrated_gradient", &x, tg, IDL_OBJ_LOGIT, NULL, &e),
                 IDL_ERR_NOT_FOUND);
    CHECK(strstr(idl_last_error(), "integrated_gradients") != NULL);
    CHECK_EQ_INT(explain1(s, "integrated_gradients", &x, tg, IDL_OBJ_LOGIT, "steps=zero", &e),
                 IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "steps") != NULL);
    CHECK_EQ_INT(explain1(s, "integrated_gradients", &x, tg, IDL_OBJ_LOGIT, "stepz=3", &e),
                 IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "stepz") != NULL);
    CHECK_EQ_INT(explain1(s, "integrated_gradients", &x, tg, IDL_OBJ_LOGIT, "method=simpson", &e),
                 IDL_ERR_INVALID_ARG);
    CHECK_EQ_INT(explain1(s, "smoothgrad", &x, tg, IDL_OBJ_LOGIT, "noise=-1", &e),
                 IDL_ERR_INVALID_ARG);
    CHECK_EQ_INT(explain1(s, "saliency", &x, tg, IDL_OBJ_LOGIT, "objective=logits", &e),
                 IDL_ERR_INVALID_ARG);
    CHECK_EQ_INT(explain1(s, "saliency", &x, tg, IDL_OBJ_LOGIT, "abs", &e), IDL_ERR_INVALID_ARG);
    CHECK_EQ_INT(explain1(s, "saliency", &x, tg, IDL_OBJ_LOGIT, "layer=y", &e),
                 IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "takes no layer") != NULL);
    CHECK_EQ_INT(
        explain1(s, "smoothgrad", &x, tg, IDL_OBJ_LOGIT, "noise_file=/nonexistent/noise.npy", &e),
        IDL_ERR_IO);
    CHECK(strstr(idl_last_error(), "noise_file") != NULL);
    int64_t bad_t[2] = { 3, 0 };
    CHECK_EQ_INT(explain1(s, "saliency", &x, bad_t, IDL_OBJ_LOGIT, NULL, &e), IDL_ERR_INVALID_ARG);
    CHECK_EQ_INT(explain1(s, "gradcam", &x, tg, IDL_OBJ_LOGIT, NULL, &e), IDL_ERR_NOT_FOUND);
    CHECK_EQ_INT(explain1(s, "saliency", &x, tg, IDL_OBJ_LOGIT, "wrt=nope", &e), IDL_ERR_NOT_FOUND);
    CHECK(e.attribution == NULL);
    idl_session_free(s);
    idl_model_free(m);
}

/* ---------------- small CNN ---------------- */
static void count_retries(idl_log_level level, const char *msg, void *user) {
    if (level == IDL_LOG_INFO && strstr(msg, "retrying with")) ++*(int *)user;
}

/* A pack of rows over the session's max_memory is split, not failed: the same result. */
static void test_max_memory_split(const idl_tensor *x) {
    idl_explanation a, b;
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(g_cnn, NULL, &s));
    const char *set = "steps=9 internal_batch=16";
    CHECK_OK(explain1(s, "integrated_gradients", x, NULL, IDL_OBJ_LOGIT, set, &a));
    idl_session_free(s);
    /* the smallest budget (in powers of two) that one row a pass fits in */
    idl_session_opts o = idl_session_opts_default();
    idl_status st = IDL_ERR_NOMEM;
    for (o.max_memory = 1u << 14; st == IDL_ERR_NOMEM && o.max_memory < (1u << 30);) {
        o.max_memory *= 2;
        s = NULL;
        CHECK_OK(idl_session_new(g_cnn, &o, &s));
        st = explain1(s, "integrated_gradients", x, NULL, IDL_OBJ_LOGIT, "steps=9 internal_batch=1",
                      &b);
        if (!st) idl_explanation_clear(&b);
        idl_session_free(s);
    }
    CHECK_OK(st);
    int retries = 0;
    idl_log_set(count_retries, &retries, IDL_LOG_INFO);
    CHECK_OK(idl_session_new(g_cnn, &o, &s));
    CHECK_OK(explain1(s, "integrated_gradients", x, NULL, IDL_OBJ_LOGIT, set, &b));
    idl_log_set(NULL, NULL, IDL_LOG_ERROR);
    CHECK_MSG(retries > 0, "no pack was split under max_memory %llu",
              (unsigned long long)o.max_memory);
    if (a.attribution && b.attribution)
        th_allclose("IG under max_memory vs unconstrained", a.attribution->data,
                    b.attribution->data, idl_tensor_numel(a.attribution), 1e-5, 0);
    idl_explanation_clear(&a);
    idl_explanation_clear(&b);
    idl_session_free(s);
}

static void test_cnn(void) {
    const char *dir = "tests/data/parity/small_cnn";
    char p[1024];
    snprintf(p, sizeof p, "%s/%s/model.onnx", g_data, dir);
    if (idl_model_load(p, NULL, &g_cnn)) {
        fprintf(stderr, "%s: %s\n", p, idl_last_error());
        th_failed++;
        return;
    }
    snprintf(p, sizeof p, "%s/%s", g_data, dir);
    idl_tensor *x = load(p, "input.npy");
    if (!x) return;
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(g_cnn, NULL, &s));
    int64_t N = x->shape[0], per = idl_tensor_numel(x) / N;
    idl_explanation a, b;

    /* SmoothGrad with no noise = the signed gradient. Not to the last bit: the final Gemm's sgemm
     * rounds differently for 2 and 6 rows (logits differ by ~6e-8), and the probability's
     * gradient amplifies that to ~2e-6 of its largest value. */
    CHECK_OK(explain1(s, "smoothgrad", x, NULL, IDL_OBJ_PROBABILITY, "noise=0 n_samples=3", &a));
    CHECK_OK(explain1(s, "saliency", x, NULL, IDL_OBJ_PROBABILITY, "abs=0", &b));
    if (a.attribution && b.attribution)
        th_allclose("smoothgrad noise=0 vs gradient", a.attribution->data, b.attribution->data,
                    idl_tensor_numel(b.attribution), 1e-5, 0);
    idl_explanation_clear(&a);
    idl_explanation_clear(&b);

    /* IG completeness at 300 Gauss-Legendre steps. The logit: on this ReLU network the gradient
     * jumps at kinks along the path, and the probability gap f(x) - f(0) is only ~0.01, so the
     * quadrature error of the kinks (1.8e-4 at 300 steps, 3e-6 at 2000 trapezoid steps: the rule
     * converges, the gradient is right) is 1.8% of it; the logit gap is 20x larger. */
    CHECK_OK(explain1(s, "integrated_gradients", x, NULL, IDL_OBJ_LOGIT, "steps=300", &a));
    for (int64_t i = 0; a.attribution && i < N; i++) {
        double gap = (double)a.score[i] - a.baseline_score[i],
               sum = sumf(a.attribution, i * per, per);
        CHECK_MSG(fabs(sum - gap) <= 0.01 * fabs(gap),
                  "IG completeness sample %lld: sum %g, "
                  "f(x)-f(b) %g",
                  (long long)i, sum, gap);
        CHECK_MSG(fabs(a.delta[i] - (sum - gap)) < 1e-6, "reported delta %g vs %g", a.delta[i],
                  sum - gap);
    }
    idl_explanation_clear(&a);

    /* N samples at once = N single calls; internal_batch and the seed */
    static const char *const cases[][2] = {
        { "smoothgrad", "n_samples=6 seed=5" },
        { "integrated_gradients", "steps=9 baseline=random trials=2 seed=3" },
        { "gradient_shap", "n_samples=5 noise=0.1 baseline=uniform seed=9" },
        { "gradcam", "" },
        { "gradcam_plus_plus", "upsample=1 normalize=1" },
        { "noise_tunnel", "base=input_x_gradient n_samples=3 seed=2" },
        { "guided_gradcam", "" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        CHECK_OK(explain1(s, cases[c][0], x, NULL, IDL_OBJ_LOGIT, cases[c][1], &a));
        if (!a.attribution) continue;
        int64_t aper = idl_tensor_numel(a.attribution) / N;
        for (int64_t i = 0; i < N; i++) {
            int64_t shp[4];
            memcpy(shp, x->shape, sizeof shp);
            shp[0] = 1;
            idl_tensor xi = idl_tensor_wrap(IDL_DT_F32, x->ndim, shp, (float *)x->data + i * per);
            CHECK_OK(explain1(s, cases[c][0], &xi, &a.targets[i], IDL_OBJ_LOGIT, cases[c][1], &b));
            char label[128];
            snprintf(label, sizeof label, "%s batch vs single %lld", cases[c][0], (long long)i);
            if (b.attribution)
                th_allclose(label, (float *)a.attribution->data + i * aper, b.attribution->data,
                            aper, 1e-5, 0);
            idl_explanation_clear(&b);
        }
        char set[256];
        snprintf(set, sizeof set, "%s internal_batch=3", cases[c][1]);
        CHECK_OK(explain1(s, cases[c][0], x, NULL, IDL_OBJ_LOGIT, set, &b));
        if (b.attribution)
            th_allclose(cases[c][0], a.attribution->data, b.attribution->data, N * aper, 1e-5, 0);
        idl_explanation_clear(&b);
        idl_explanation_clear(&a);
    }
    test_max_memory_split(x);
    CHECK_OK(explain1(s, "smoothgrad", x, NULL, IDL_OBJ_LOGIT, "n_samples=4 seed=1", &a));
    CHECK_OK(explain1(s, "smoothgrad", x, NULL, IDL_OBJ_LOGIT, "n_samples=4 seed=2", &b));
    if (a.attribution && b.attribution) {
        double d = 0;
        for (int64_t j = 0; j < N * per; j++)
            d = fmax(d,
                     fabs(((float *)a.attribution->data)[j] - ((float *)b.attribution->data)[j]));
        CHECK_MSG(d > 0, "different seeds gave the same SmoothGrad");
    }
    idl_explanation_clear(&a);
    idl_explanation_clear(&b);

    /* Grad-CAM of the logit at the pooled layer = ReLU(CAM) / (h w) */
    CHECK_OK(explain1(s, "gradcam", x, NULL, IDL_OBJ_LOGIT, NULL, &a));
    CHECK_OK(explain1(s, "cam", x, NULL, IDL_OBJ_LOGIT, NULL, &b));
    if (a.attribution && b.attribution) {
        int64_t n = idl_tensor_numel(b.attribution), hw = n / N;
        float *want = calloc((size_t)n, sizeof(float));
        for (int64_t j = 0; j < n; j++) {
            float v = ((float *)b.attribution->data)[j];
            want[j] = (v > 0 ? v : 0) / (float)hw;
        }
        th_allclose("gradcam(logit) vs relu(cam)/hw", a.attribution->data, want, n, 1e-5, 0);
        CHECK(!strcmp(a.layer, b.layer));
        free(want);
    }
    idl_explanation_clear(&b);
    /* Guided Grad-CAM = guided backprop x nearest-upsampled Grad-CAM */
    idl_explanation g;
    CHECK_OK(explain1(s, "guided_backprop", x, NULL, IDL_OBJ_LOGIT, NULL, &g));
    CHECK_OK(explain1(s, "guided_gradcam", x, NULL, IDL_OBJ_LOGIT, NULL, &b));
    if (a.attribution && b.attribution && g.attribution) {
        int64_t C = x->shape[1], H = x->shape[2], W = x->shape[3];
        int64_t h = a.attribution->shape[1], w = a.attribution->shape[2];
        float *want = calloc((size_t)(N * per), sizeof(float));
        for (int64_t i = 0; i < N; i++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t y = 0; y < H; y++)
                    for (int64_t q = 0; q < W; q++) {
                        int64_t o = ((i * C + c) * H + y) * W + q;
                        float m =
                            ((float *)a.attribution->data)[(i * h + y * h / H) * w + q * w / W];
                        want[o] = ((float *)g.attribution->data)[o] * m;
                    }
        th_allclose("guided_gradcam", b.attribution->data, want, N * per, 1e-6, 0);
        free(want);
    }
    idl_explanation_clear(&a);
    idl_explanation_clear(&b);
    idl_explanation_clear(&g);

    /* consensus of a model with itself = its own normalised map: min-max of sum_c |saliency| */
    {
        char set2[1200];
        snprintf(set2, sizeof set2, "base=saliency models=%s/%s/model.onnx objective=logit", g_data,
                 dir);
        CHECK_OK(explain1(s, "consensus", x, NULL, IDL_OBJ_LOGIT, set2, &a));
        CHECK_OK(explain1(s, "saliency", x, NULL, IDL_OBJ_LOGIT, NULL, &b));
        if (a.attribution && b.attribution) {
            int64_t C = x->shape[1], HW = x->shape[2] * x->shape[3];
            float *want = calloc((size_t)(N * HW), sizeof(float));
            for (int64_t i = 0; i < N; i++) {
                float lo = 1e30f, hi = -1e30f;
                for (int64_t q = 0; q < HW; q++) {
                    float v = 0;
                    for (int64_t c = 0; c < C; c++)
                        v += fabsf(((float *)b.attribution->data)[(i * C + c) * HW + q]);
                    want[i * HW + q] = v;
                    lo = fminf(lo, v), hi = fmaxf(hi, v);
                }
                for (int64_t q = 0; q < HW; q++)
                    want[i * HW + q] = (want[i * HW + q] - lo) / (hi - lo);
            }
            CHECK_EQ_INT(a.attribution->ndim, 3);
            th_allclose("consensus of a model with itself", a.attribution->data, want, N * HW, 1e-6,
                        0);
            free(want);
        }
        idl_explanation_clear(&a);
        idl_explanation_clear(&b);
        CHECK_EQ_INT(explain1(s, "consensus", x, NULL, IDL_OBJ_LOGIT,
                              "base=saliency models=/nonexistent.onnx", &a),
                     IDL_ERR_IO);
        CHECK(strstr(idl_last_error(), "nonexistent") != NULL);
    }

    /* errors on a real model */
    CHECK_EQ_INT(explain1(s, "gradcam", x, NULL, IDL_OBJ_LOGIT, "layer=/no/such", &a),
                 IDL_ERR_NOT_FOUND);
    CHECK_EQ_INT(explain1(s, "gradcam", x, NULL, IDL_OBJ_LOGIT, "layer=/Flatten_output_0", &a),
                 IDL_ERR_SHAPE);
    int64_t nshape[5] = { 2, 1, 3, 4, 4 };
    idl_tensor *wrong = NULL;
    idl_tensor_new(IDL_DT_F32, 5, nshape, &wrong);
    char wp[256];
    snprintf(wp, sizeof wp, "/tmp/idl_test_explain_%d.npy", (int)getpid());
    idl_npy_save(wp, wrong);
    char set[400];
    snprintf(set, sizeof set, "n_samples=2 noise_file=%s", wp);
    CHECK_EQ_INT(explain1(s, "smoothgrad", x, NULL, IDL_OBJ_LOGIT, set, &a), IDL_ERR_SHAPE);
    CHECK(strstr(idl_last_error(), "noise_file") != NULL);
    remove(wp);
    idl_tensor_free(wrong);
    idl_tensor_free(x);
    idl_session_free(s);
}

/* ---------------- text ---------------- */
static void test_text(void) {
    char dir[1024], p[1100];
    snprintf(dir, sizeof dir, "%s/tests/data/parity/tiny_text", g_data);
    snprintf(p, sizeof p, "%s/model.onnx", dir);
    if (idl_model_load(p, NULL, &g_text)) {
        fprintf(stderr, "%s: %s\n", p, idl_last_error());
        th_failed++;
        return;
    }
    idl_tensor *ids = load(dir, "t8/input_ids.npy"), *tt = load(dir, "t8/token_type_ids.npy"),
               *am = load(dir, "t8/attention_mask.npy");
    if (!ids || !tt || !am) return;
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(g_text, NULL, &s));
    idl_explain_request rq = idl_explain_request_default();
    const idl_tensor *in[3] = { ids, tt, am };
    const char *names[3] = { "input_ids", "token_type_ids", "attention_mask" };
    rq.inputs = in;
    rq.input_names = names;
    rq.n_inputs = 3;
    rq.objective = IDL_OBJ_LOGIT;
    const char *set[] = { "steps=300" };
    idl_explanation e;
    CHECK_OK(idl_explain(s, "integrated_gradients", &rq, set, 1, &e));
    if (e.attribution) {
        CHECK_EQ_INT(e.attribution->ndim, 3);
        CHECK_EQ_INT(e.attribution->shape[1], ids->shape[1]);
        int found = 0;
        for (int i = 0; i < idl_model_n_nodes(g_text); i++)
            if (!strcmp(idl_model_node_output(g_text, i, 0), e.wrt))
                found = !strcmp(idl_model_node_op(g_text, i), "Gather");
        CHECK_MSG(found, "wrt '%s' is not a Gather output", e.wrt);
        int64_t per = idl_tensor_numel(e.attribution) / e.n;
        for (int64_t i = 0; i < e.n; i++) {
            double gap = (double)e.score[i] - e.baseline_score[i];
            double sum = sumf(e.attribution, i * per, per);
            CHECK_MSG(fabs(sum - gap) <= 0.01 * fabs(gap) + 1e-4,
                      "text IG completeness sample %lld: %g vs %g", (long long)i, sum, gap);
        }
    }
    idl_explanation_clear(&e);
    /* attention methods on text: one score per token; rollout's class-token row sums to 1 (a
     * product of row-stochastic matrices); generic_attention from past the last block is the
     * identity row; every method: N samples = N single calls */
    static const char *const attn[][2] = { { "rollout", "" },
                                           { "rollout", "head_fusion=max discard_ratio=0.3" },
                                           { "generic_attention", "" },
                                           { "generic_attention", "variant=interpretdl" },
                                           { "tam", "start_layer=0 steps=4" },
                                           { "bt", "steps=3" },
                                           { "bt", "mode=token steps=3" },
                                           { "attention_gradcam", "" } };
    int64_t T = ids->shape[1], NB = ids->shape[0];
    for (size_t k = 0; k < sizeof attn / sizeof *attn; k++) {
        const char *sv[4];
        char buf[128];
        int ns = 0;
        snprintf(buf, sizeof buf, "%s", attn[k][1]);
        for (char *t = strtok(buf, " "); t && ns < 4; t = strtok(NULL, " "))
            sv[ns++] = t;
        CHECK_OK(idl_explain(s, attn[k][0], &rq, sv, ns, &e));
        if (!e.attribution) continue;
        CHECK_EQ_INT(e.attribution->ndim, 2);
        CHECK_EQ_INT(e.attribution->shape[1], T);
        const float *a = e.attribution->data;
        for (int64_t i = 0; !strcmp(attn[k][0], "rollout") && i < NB; i++)
            CHECK_MSG(fabs(sumf(e.attribution, i * T, T) - 1) < 1e-5, "rollout row sum %g",
                      sumf(e.attribution, i * T, T));
        for (int64_t b = 0; b < NB; b++) { /* sample b alone */
            idl_tensor one[3];
            const idl_tensor *in1[3];
            for (int q = 0; q < 3; q++) {
                one[q] = *in[q];
                one[q].shape[0] = 1;
                one[q].data = (char *)in[q]->data + idl_tensor_numel(in[q]) / NB *
                                                        idl_dtype_size(in[q]->dtype) * (size_t)b;
                in1[q] = &one[q];
            }
            idl_explain_request r1 = rq;
            r1.inputs = in1;
            r1.targets = e.targets + b;
            idl_explanation e1;
            CHECK_OK(idl_explain(s, attn[k][0], &r1, sv, ns, &e1));
            if (e1.attribution) {
                char label[128];
                snprintf(label, sizeof label, "%s %s: sample %lld alone", attn[k][0], attn[k][1],
                         (long long)b);
                th_allclose(label, e1.attribution->data, a + b * T, T, 1e-5, 1e-7);
            }
            idl_explanation_clear(&e1);
        }
        idl_explanation_clear(&e);
    }
    const char *past[] = { "start_layer=99" };
    CHECK_OK(idl_explain(s, "generic_attention", &rq, past, 1, &e));
    for (int64_t i = 0; e.attribution && i < NB * T; i++)
        CHECK(((float *)e.attribution->data)[i] == (i % T == 0 ? 1.0f : 0.0f));
    idl_explanation_clear(&e);
    const char *badp[] = { "probs=nothing_matches*" };
    CHECK_EQ_INT(idl_explain(s, "rollout", &rq, badp, 1, &e), IDL_ERR_NOT_FOUND);
    CHECK_EQ_INT(idl_explain(s, "gradcam", &rq, NULL, 0, &e), IDL_ERR_NOT_FOUND);
    CHECK_EQ_INT(idl_explain(s, "noise_tunnel", &rq, (const char *[]){ "base=saliency" }, 1, &e),
                 IDL_ERR_INVALID_ARG);
    idl_tensor_free(ids);
    idl_tensor_free(tt);
    idl_tensor_free(am);
    idl_session_free(s);
}

/* ---------------- parity with references ---------------- */
static void parity_case(const char *dir) {
    char p[1200], line[4096];
    snprintf(p, sizeof p, "%s/case.txt", dir);
    FILE *f = fopen(p, "r");
    if (!f) {
        fprintf(stderr, "%s: no case.txt\n", dir);
        th_failed++;
        return;
    }
    snprintf(p, sizeof p, "%s/model.onnx", dir);
    idl_model *m = NULL;
    idl_session *s = NULL;
    if (idl_model_load(p, NULL, &m) || idl_session_new(m, NULL, &s)) {
        fprintf(stderr, "%s: %s\n", p, idl_last_error());
        th_failed++;
        fclose(f);
        idl_model_free(m);
        return;
    }
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        char *hash = strchr(line, '#');
        if (hash) *hash = 0;
        char *tok[64];
        int nt = 0;
        for (char *t = strtok(line, " \t"); t && nt < 64; t = strtok(NULL, " \t"))
            tok[nt++] = t;
        if (nt < 2) continue;
        lines++;
        double tol = 1e-4;
        const char *targets_file = "targets.npy", *r2_ref = NULL, *b0_ref = NULL;
        const char *sets[64], *in_names[16];
        char setbuf[64][1200];
        idl_tensor *ins[16] = { 0 };
        int ns = 0, ni = 0, named = 0;
        for (int k = 2; k < nt; k++) {
            char *eq = strchr(tok[k], '=');
            if (!eq) continue;
            *eq = 0;
            const char *key = tok[k], *val = eq + 1;
            if (!strcmp(key, "tol"))
                tol = atof(val);
            else if (!strcmp(key, "targets"))
                targets_file = val;
            else if (!strcmp(key, "r2")) /* surrogate fits */
                r2_ref = val;
            else if (!strcmp(key, "intercept"))
                b0_ref = val;
            else if (!strcmp(key, "input") || !strncmp(key, "input.", 6)) {
                ins[ni] = load(dir, val);
                in_names[ni] = key[5] ? key + 6 : NULL;
                named += key[5] != 0;
                ni++;
            } else {
                /* file-valued settings are relative to the case folder */
                int is_file = strlen(val) > 4 && !strcmp(val + strlen(val) - 4, ".npy");
                if (is_file)
                    snprintf(setbuf[ns], sizeof setbuf[ns], "%s=%s/%s", key, dir, val);
                else
                    snprintf(setbuf[ns], sizeof setbuf[ns], "%s=%s", key, val);
                sets[ns] = setbuf[ns];
                ns++;
            }
        }
        if (ni == 0) ins[ni++] = load(dir, "input.npy");
        idl_tensor *tg = strcmp(targets_file, "argmax") ? load(dir, targets_file) : NULL;
        idl_tensor *ref = load(dir, tok[1]);
        idl_explain_request rq = idl_explain_request_default();
        rq.inputs = (const idl_tensor *const *)ins;
        rq.input_names = named ? in_names : NULL;
        rq.n_inputs = ni;
        rq.targets = tg ? tg->data : NULL;
        idl_explanation e;
        char label[1400];
        snprintf(label, sizeof label, "%s: %s -> %s", strrchr(dir, '/') + 1, tok[0], tok[1]);
        idl_status st = ref ? idl_explain(s, tok[0], &rq, sets, ns, &e) : IDL_ERR_IO;
        if (st) {
            fprintf(stderr, "%s: %s\n", label, idl_last_error());
            th_failed++;
        } else if (idl_tensor_numel(e.attribution) != idl_tensor_numel(ref)) {
            fprintf(stderr, "%s: %lld values, reference %lld\n", label,
                    (long long)idl_tensor_numel(e.attribution), (long long)idl_tensor_numel(ref));
            th_failed++;
        } else if (th_allclose(label, e.attribution->data, ref->data, idl_tensor_numel(ref), tol,
                               0)) {
            double mx = 0, md = 0;
            for (int64_t j = 0; j < idl_tensor_numel(ref); j++) {
                mx = fmax(mx, fabs(((float *)ref->data)[j]));
                md = fmax(md, fabs(((float *)ref->data)[j] - ((float *)e.attribution->data)[j]));
            }
            printf("ok   %-60s rel err %.2e (tol %.0e)\n", label, mx > 0 ? md / mx : md, tol);
        }
        for (int pass = 0; !st && pass < 2; pass++) { /* r2=a,b,... intercept=a,b,...: 1e-5 */
            const char *v = pass ? b0_ref : r2_ref;
            const double *got = pass ? e.intercept : e.r2;
            for (int64_t b = 0; v && *v; b++) {
                char *end;
                double want = strtod(v, &end);
                CHECK_MSG(got && b < e.n && fabs(got[b] - want) <= 1e-5 * (1 + fabs(want)),
                          "%s: %s of sample %lld: %.9g, reference %.9g", label,
                          pass ? "intercept" : "r2", (long long)b, got && b < e.n ? got[b] : NAN,
                          want);
                v = *end == ',' ? end + 1 : end;
                if (end == v && *v) break;
            }
        }
        if (!st) idl_explanation_clear(&e);
        for (int k = 0; k < ni; k++)
            idl_tensor_free(ins[k]);
        idl_tensor_free(tg);
        idl_tensor_free(ref);
    }
    fclose(f);
    CHECK_MSG(lines > 0, "%s: case.txt has no lines", dir);
    idl_session_free(s);
    idl_model_free(m);
}

static int by_name(const struct dirent **a, const struct dirent **b) {
    return strcmp((*a)->d_name, (*b)->d_name);
}

static void test_parity(const char *root) {
    struct dirent **list = NULL;
    int n = scandir(root, &list, NULL, by_name), cases = 0;
    for (int i = 0; i < n; i++) {
        char d[1024], c[1100];
        snprintf(d, sizeof d, "%s/%s", root, list[i]->d_name);
        snprintf(c, sizeof c, "%s/case.txt", d);
        FILE *f = list[i]->d_name[0] != '.' ? fopen(c, "r") : NULL;
        if (f) {
            fclose(f);
            parity_case(d);
            cases++;
        }
        free(list[i]);
    }
    free(list);
    CHECK_MSG(cases > 0, "no parity cases under %s", root);
}

int main(int argc, char **argv) {
    int inv = 1, par = 1;
    const char *pdir = NULL;
    g_data = getenv("IDL_SOURCE_DIR") ? getenv("IDL_SOURCE_DIR") : ".";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--invariants"))
            par = 0;
        else if (!strcmp(argv[i], "--parity") && i + 1 < argc)
            inv = 0, pdir = argv[++i];
        else if (!strcmp(argv[i], "--source") && i + 1 < argc)
            g_data = argv[++i];
    }
    if (inv) {
        test_linear();
        test_cnn();
        test_text();
    }
    if (par) {
        char d[1024];
        snprintf(d, sizeof d, "%s/tests/data/explain", g_data);
        test_parity(pdir ? pdir : d);
    }
    idl_model_free(g_cnn);
    idl_model_free(g_text);
    TEST_SUMMARY();
}

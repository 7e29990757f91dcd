/* test_perturb.c — invariants of the perturbation methods (occlusion, lime, scorecam,
 * ablationcam) on models built here, where the answer follows from the model in closed form:
 *  - a linear image model y = W flatten(x) + b: occlusion with 1-element windows is W_t * x;
 *    larger windows are sums of W_t * x over each window, averaged (or summed) over the windows
 *    covering an element, computed here by brute force over window starts; LIME with mean fill
 *    is exactly linear in the mask, so weighted least squares recovers
 *    coef_s = sum_{e in s} W_t,e (x_e - mean_s,c(e)) with R^2 = 1, and ridge_alpha > 0 equals the
 *    normal equations (Z'WZ + alpha I) beta = Z'Wy solved here by Gaussian elimination;
 *  - a conv -> relu -> global average pool -> linear model: ablating channel k lowers the logit
 *    by V_t,k mean(A_k) exactly, so Ablation-CAM = relu(sum_k V_t,k mean(A_k) / f * A_k);
 *  - every method: N samples in one call equal N single calls; replayed masks reproduce a run;
 *  - bad settings are INVALID_ARG / SHAPE errors naming the setting. */
#include "interpretdl/interpretdl.h"
#include "interpretdl/segment.h"

#include "harness.h"
#include "interpret/interpret_internal.h"
#include "model_builder.h"

#define C_ 3
#define H_ 6
#define W_ 8
#define F_ (C_ * H_ * W_)
#define K_ 3
#define S_ 6 /* grid cells */

static float g_w[K_ * F_], g_b[K_];

static idl_model *linear_model(void) {
    return tb_linear_model_random(C_, H_, W_, K_, 7, 0.1f, g_w, g_b);
}

static idl_status run(idl_session *s, const char *method, const idl_tensor *x,
                      const int64_t *targets, const char *set, idl_explanation *e) {
    idl_explain_request rq = idl_explain_request_default();
    const idl_tensor *in[1] = { x };
    rq.inputs = in;
    rq.n_inputs = 1;
    rq.targets = targets;
    rq.objective = IDL_OBJ_LOGIT;
    const char *sets[16];
    int n = 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", set ? set : "");
    for (char *tok = strtok(buf, " "); tok && n < 16; tok = strtok(NULL, " "))
        sets[n++] = tok;
    return idl_explain(s, method, &rq, sets, n, e);
}

/* Occlusion by brute force: every window start on the (C, H, W) grid. */
static void occlusion_ref(const float *x, const float *w, const int64_t *win, const int64_t *str,
                          float base, int sum, float *out) {
    double acc[F_] = { 0 }, cov[F_] = { 0 };
    for (int64_t c0 = 0;; c0 += str[0]) {
        for (int64_t y0 = 0;; y0 += str[1]) {
            for (int64_t x0 = 0;; x0 += str[2]) {
                double d = 0;
                for (int j = 0; j < F_; j++) {
                    int c = j / (H_ * W_), y = j / W_ % H_, xx = j % W_;
                    if (c >= c0 && c < c0 + win[0] && y >= y0 && y < y0 + win[1] && xx >= x0 &&
                        xx < x0 + win[2])
                        d += (double)w[j] * (x[j] - base);
                }
                for (int j = 0; j < F_; j++) {
                    int c = j / (H_ * W_), y = j / W_ % H_, xx = j % W_;
                    if (c >= c0 && c < c0 + win[0] && y >= y0 && y < y0 + win[1] && xx >= x0 &&
                        xx < x0 + win[2])
                        acc[j] += d, cov[j] += 1;
                }
                if (x0 + win[2] >= W_) break;
            }
            if (y0 + win[1] >= H_) break;
        }
        if (c0 + win[0] >= C_) break;
    }
    for (int j = 0; j < F_; j++)
        out[j] = (float)(sum ? acc[j] : cov[j] ? acc[j] / cov[j] : 0);
}

static void test_occlusion(idl_session *s, const idl_tensor *x, const int64_t *tg) {
    static const struct {
        const char *set;
        int64_t win[3], str[3];
        float base;
        int sum;
    } cases[] = {
        { "window=1,1,1 stride=1", { 1, 1, 1 }, { 1, 1, 1 }, 0, 0 },
        { "window=3,2,2 stride=3,2,2 aggregate=sum", { 3, 2, 2 }, { 3, 2, 2 }, 0, 1 },
        { "window=1,3,3 stride=1,2,2", { 1, 3, 3 }, { 1, 2, 2 }, 0, 0 },
        { "window=1,3,3 stride=1,2,2 aggregate=sum baseline=0.5",
          { 1, 3, 3 },
          { 1, 2, 2 },
          0.5f,
          1 },
        { "window=2,4,5 stride=1,3,2 baseline=-1", { 2, 4, 5 }, { 1, 3, 2 }, -1, 0 },
        { "window=4,4 stride=3", { 3, 4, 4 }, { 3, 3, 3 }, 0, 0 }, /* channel axis whole */
        /* stride > window: the last windows start past the end and are empty */
        { "window=1,1,1 stride=1,4,4", { 1, 1, 1 }, { 1, 4, 4 }, 0, 0 },
        { "window=3,2,3 stride=3,5,7 aggregate=sum", { 3, 2, 3 }, { 3, 5, 7 }, 0, 1 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        idl_explanation e;
        CHECK_OK(run(s, "occlusion", x, tg, cases[c].set, &e));
        if (!e.attribution) continue;
        for (int i = 0; i < 2; i++) {
            float want[F_];
            occlusion_ref((const float *)x->data + i * F_, g_w + tg[i] * F_, cases[c].win,
                          cases[c].str, cases[c].base, cases[c].sum, want);
            th_allclose(cases[c].set, (const float *)e.attribution->data + i * F_, want, F_, 1e-5,
                        1e-6);
        }
        CHECK_EQ_INT(e.attribution->ndim, 4);
        idl_explanation_clear(&e);
    }
    /* a per-sample baseline file equals the scalar when it holds that value everywhere */
    float bv[2 * F_];
    for (int j = 0; j < 2 * F_; j++)
        bv[j] = 0.5f;
    idl_tensor bt = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, C_, H_, W_ }, bv);
    CHECK_OK(idl_npy_save("test_perturb_baseline.npy", &bt));
    idl_explanation a, b;
    CHECK_OK(run(s, "occlusion", x, tg, "window=1,3,3 stride=1,2,2 baseline=0.5", &a));
    CHECK_OK(run(s, "occlusion", x, tg,
                 "window=1,3,3 stride=1,2,2 baseline=test_perturb_baseline.npy", &b));
    if (a.attribution && b.attribution)
        th_allclose("occlusion baseline file", a.attribution->data, b.attribution->data, 2 * F_, 0,
                    0);
    idl_explanation_clear(&a);
    idl_explanation_clear(&b);
    remove("test_perturb_baseline.npy");
    /* errors */
    static const char *const bad[] = { "window=1,7,1",         "window=1,2,2 stride=1,2",
                                       "window=0,1,1",         "stride=2",
                                       "window=1,1,1,1,1",     "aggregate=max",
                                       "window=1,2,2 bogus=1", "incremental=2" };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        idl_explanation e;
        idl_status st = run(s, "occlusion", x, tg, bad[k], &e);
        CHECK_MSG(st == IDL_ERR_INVALID_ARG, "occlusion %s: status %d (%s)", bad[k], (int)st,
                  idl_last_error());
        CHECK(e.attribution == NULL);
    }
}

/* ---- occlusion through dependency cones (interpret/cone.c) ---- */
static char g_cone_log[256];
static void cone_log(idl_log_level l, const char *msg, void *u) {
    (void)l;
    (void)u;
    if (!strncmp(msg, "cone:", 5)) snprintf(g_cone_log, sizeof g_cone_log, "%s", msg);
}

static void cone_conv(tb_model *b, const char *in, const char *out, int64_t ci, int64_t co,
                      int64_t kh, int64_t kw, uint32_t *seed) {
    char w[64], bias[64], io[160];
    snprintf(w, sizeof w, "%s_w", out);
    snprintf(bias, sizeof bias, "%s_b", out);
    float wv[64 * 64 * 25], bv[64];
    tb_frand_fill(wv, (size_t)(co * ci * kh * kw), 0.6f / (float)sqrt((double)(ci * kh * kw)),
                  seed);
    tb_frand_fill(bv, (size_t)co, 0.1f, seed);
    tb_init_f32(b, w, 4, (int64_t[]){ co, ci, kh, kw }, wv);
    tb_init_f32(b, bias, 1, (int64_t[]){ co }, bv);
    snprintf(io, sizeof io, "%s,%s,%s", in, w, bias);
    tb_node(b, "Conv", io, out);
}

/* A CNN with what cone.c follows (a broadcast Sub, convolutions with asymmetric pads, strides 2
 * and a dilation, MaxPool with ceil_mode, a residual Add, a channel Concat, AveragePool) before
 * a global pool, on an input of odd size (61 x 57). */
static idl_model *cone_model(void) {
    uint32_t seed = 11;
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 4, (int64_t[]){ -1, 3, 61, 57 });
    float mean[3] = { 0.1f, -0.2f, 0.05f };
    tb_init_f32(b, "mean", 4, (int64_t[]){ 1, 3, 1, 1 }, mean);
    tb_node(b, "Sub", "x,mean", "xn");
    cone_conv(b, "xn", "c1", 3, 8, 5, 5, &seed);
    tb_attr_ints(b, "strides", 2, (int64_t[]){ 2, 2 });
    tb_attr_ints(b, "pads", 4, (int64_t[]){ 2, 1, 1, 2 });
    tb_node(b, "Relu", "c1", "r1");
    tb_node(b, "MaxPool", "r1", "p1");
    tb_attr_ints(b, "kernel_shape", 2, (int64_t[]){ 3, 3 });
    tb_attr_ints(b, "strides", 2, (int64_t[]){ 2, 2 });
    tb_attr_ints(b, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
    tb_attr_int(b, "ceil_mode", 1);
    cone_conv(b, "p1", "c2", 8, 8, 3, 3, &seed);
    tb_attr_ints(b, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
    tb_node(b, "Relu", "c2", "r2");
    cone_conv(b, "r2", "c3", 8, 8, 3, 3, &seed);
    tb_attr_ints(b, "pads", 4, (int64_t[]){ 2, 2, 2, 2 });
    tb_attr_ints(b, "dilations", 2, (int64_t[]){ 2, 2 });
    tb_node(b, "Add", "c3,p1", "a3");
    tb_node(b, "Relu", "a3", "b1");
    cone_conv(b, "b1", "c4", 8, 8, 1, 1, &seed);
    tb_node(b, "Concat", "b1,c4", "cat");
    tb_attr_int(b, "axis", 1);
    cone_conv(b, "cat", "c5", 16, 16, 3, 3, &seed);
    tb_attr_ints(b, "strides", 2, (int64_t[]){ 2, 2 });
    tb_attr_ints(b, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
    tb_node(b, "Relu", "c5", "r5");
    tb_node(b, "AveragePool", "r5", "ap");
    tb_attr_ints(b, "kernel_shape", 2, (int64_t[]){ 2, 2 });
    cone_conv(b, "ap", "c6", 16, 16, 3, 3, &seed);
    tb_attr_ints(b, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
    tb_node(b, "Relu", "c6", "r6");
    tb_node(b, "GlobalAveragePool", "r6", "g");
    tb_node(b, "Flatten", "g", "f");
    float fw[5 * 16], fb[5];
    tb_frand_fill(fw, 80, 0.5f, &seed);
    tb_frand_fill(fb, 5, 0.1f, &seed);
    tb_init_f32(b, "fw", 2, (int64_t[]){ 5, 16 }, fw);
    tb_init_f32(b, "fb", 1, (int64_t[]){ 5 }, fb);
    tb_node(b, "Gemm", "f,fw,fb", "y");
    tb_attr_int(b, "transB", 1);
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

/* Occlusion recomputing only the crops a window changes equals whole passes: windows at the
 * borders, over some channels, strides that leave the last window cut, two samples, a baseline
 * tensor, packs that do not divide the windows; and it does run on crops (the debug log names
 * the stages). */
static void test_occlusion_cone(void) {
    idl_model *m = cone_model();
    idl_session *s = NULL;
    CHECK(m != NULL);
    if (m) CHECK_OK(idl_session_new(m, NULL, &s));
    if (!s) {
        idl_model_free(m);
        return;
    }
    enum { N = 2, NUMEL = 3 * 61 * 57 };
    static float xv[N * NUMEL], bv[NUMEL];
    uint32_t seed = 5;
    tb_frand_fill(xv, N * NUMEL, 1.0f, &seed);
    tb_frand_fill(bv, NUMEL, 0.3f, &seed);
    CHECK_OK(idl_npy_save(
        "test_perturb_cone_base.npy",
        &(idl_tensor){ .dtype = IDL_DT_F32, .ndim = 3, .shape = { 3, 61, 57 }, .data = bv }));
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ N, 3, 61, 57 }, xv);
    int64_t tg[N] = { 1, 4 };
    static const char *const cases[] = {
        "window=3,5,5 stride=3,4,4",
        "window=2,7,3 stride=1,5,6 baseline=0.25 internal_batch=3",
        "window=1,1,1 stride=1,3,7 aggregate=sum internal_batch=5",
        "window=3,9,9 stride=3,8,8 baseline=test_perturb_cone_base.npy",
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char full[256], label[300];
        snprintf(full, sizeof full, "%s incremental=0", cases[c]);
        idl_explanation a, e;
        g_cone_log[0] = 0;
        idl_log_set(cone_log, NULL, IDL_LOG_DEBUG);
        CHECK_OK(run(s, "occlusion", &x, tg, cases[c], &a));
        idl_log_set(NULL, NULL, IDL_LOG_WARN);
        int stages = 0;
        CHECK_MSG(sscanf(g_cone_log, "cone: %d stages", &stages) == 1 && stages >= 2,
                  "occlusion %s: not on crops (log '%s')", cases[c], g_cone_log);
        CHECK_OK(run(s, "occlusion", &x, tg, full, &e));
        if (a.attribution && e.attribution) {
            snprintf(label, sizeof label, "occlusion on crops, %s", cases[c]);
            th_allclose(label, a.attribution->data, e.attribution->data, N * NUMEL, 1e-5, 0);
            CHECK_EQ_INT((int)a.passes, (int)e.passes);
        }
        idl_explanation_clear(&a);
        idl_explanation_clear(&e);
    }
    remove("test_perturb_cone_base.npy");
    idl_session_free(s);
    idl_model_free(m);
}

/* Solves the (S+1) normal equations of weighted ridge with an unpenalised intercept by Gaussian
 * elimination with partial pivoting (double). */
static void ridge_ref(const float *Z, int n, int S, const double *y, const double *w, double alpha,
                      double *beta, double *b0) {
    int m = S + 1;
    double A[17 * 18] = { 0 };
    for (int r = 0; r < n; r++) {
        double z[17];
        z[0] = 1;
        for (int j = 0; j < S; j++)
            z[j + 1] = Z[r * S + j];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < m; j++)
                A[i * (m + 1) + j] += w[r] * z[i] * z[j];
            A[i * (m + 1) + m] += w[r] * z[i] * y[r];
        }
    }
    for (int i = 1; i < m; i++)
        A[i * (m + 1) + i] += alpha;
    for (int c = 0; c < m; c++) {
        int p = c;
        for (int r = c + 1; r < m; r++)
            if (fabs(A[r * (m + 1) + c]) > fabs(A[p * (m + 1) + c])) p = r;
        for (int j = 0; j <= m; j++) {
            double t = A[c * (m + 1) + j];
            A[c * (m + 1) + j] = A[p * (m + 1) + j];
            A[p * (m + 1) + j] = t;
        }
        for (int r = 0; r < m; r++) {
            if (r == c) continue;
            double f = A[r * (m + 1) + c] / A[c * (m + 1) + c];
            for (int j = c; j <= m; j++)
                A[r * (m + 1) + j] -= f * A[c * (m + 1) + j];
        }
    }
    *b0 = A[m] / A[0];
    for (int j = 0; j < S; j++)
        beta[j] = A[(j + 1) * (m + 1) + m] / A[(j + 1) * (m + 1) + j + 1];
}

/* Solves the m x m system A x = b (row-major, overwritten) by Gauss-Jordan with partial pivoting.
 */
static void solve(double *A, double *b, int m) {
    for (int c = 0; c < m; c++) {
        int p = c;
        for (int r = c + 1; r < m; r++)
            if (fabs(A[r * m + c]) > fabs(A[p * m + c])) p = r;
        for (int j = 0; j < m; j++) {
            double t = A[c * m + j];
            A[c * m + j] = A[p * m + j];
            A[p * m + j] = t;
        }
        double t = b[c];
        b[c] = b[p];
        b[p] = t;
        for (int r = 0; r < m; r++) {
            if (r == c) continue;
            double f = A[r * m + c] / A[c * m + c];
            for (int j = c; j < m; j++)
                A[r * m + j] -= f * A[c * m + j];
            b[r] -= f * b[c];
        }
    }
    for (int c = 0; c < m; c++)
        b[c] /= A[c * m + c];
}

/* G-LIME's standardised ridge toward the L1-normalised prior, from its definition. */
static void glime_ref(const float *Z, int n, const double *y, const double *w, double reg,
                      const float *prior, double *beta) {
    double sw = 0, ym = 0, zm[S_] = { 0 }, nz[S_] = { 0 }, ny = 0, l1 = 0;
    for (int r = 0; r < n; r++) {
        sw += w[r], ym += w[r] * y[r];
        for (int j = 0; j < S_; j++)
            zm[j] += w[r] * Z[r * S_ + j];
    }
    ym /= sw;
    for (int j = 0; j < S_; j++)
        zm[j] /= sw;
    for (int r = 0; r < n; r++) {
        ny += (y[r] - ym) * (y[r] - ym);
        for (int j = 0; j < S_; j++)
            nz[j] += (Z[r * S_ + j] - zm[j]) * (Z[r * S_ + j] - zm[j]);
    }
    for (int j = 0; prior && j < S_; j++)
        l1 += fabs(prior[j]);
    double A[S_ * S_] = { 0 };
    for (int j = 0; j < S_; j++)
        beta[j] = prior ? reg * prior[j] / l1 : 0;
    for (int r = 0; r < n; r++) {
        double x[S_], yr = sqrt(w[r]) * (y[r] - ym) / sqrt(ny);
        for (int j = 0; j < S_; j++)
            x[j] = sqrt(w[r]) * (Z[r * S_ + j] - zm[j]) / sqrt(nz[j]);
        for (int i = 0; i < S_; i++) {
            beta[i] += x[i] * yr;
            for (int j = 0; j < S_; j++)
                A[i * S_ + j] += x[i] * x[j];
        }
    }
    for (int j = 0; j < S_; j++)
        A[j * S_ + j] += reg;
    solve(A, beta, S_);
}

static void test_lime(idl_session *s, idl_model *model, const idl_tensor *x, const int64_t *tg) {
    /* InterpretDL's grid: cells of (6/2+1) x (8/4+1) = 4 x 3 pixels, so 2 x 3 = 6 of them */
    const char *grid = "segmentation=grid grid_rows=2 grid_cols=4 num_samples=64";
    idl_explanation e;
    CHECK_OK(run(s, "lime", x, tg, grid, &e));
    if (!e.attribution) return;
    CHECK_EQ_INT(e.attribution->ndim, 3);
    CHECK_EQ_INT(e.features->shape[1], S_);
    CHECK_EQ_INT(e.masks->shape[0], 64);
    if (e.features->shape[1] != S_) return;
    const int32_t *seg = e.segments->data;
    for (int q = 0; q < H_ * W_; q++)
        CHECK_EQ_INT(seg[q], (q / W_) / 4 * 3 + (q % W_) / 3);
    const float *mk = e.masks->data;
    for (int j = 0; j < S_; j++)
        CHECK(mk[j] == 1); /* the first sample is the image itself */
    double ones = 0;
    for (int j = S_; j < 64 * S_; j++)
        ones += mk[j];
    CHECK_MSG(ones > 0.35 * 63 * S_ && ones < 0.65 * 63 * S_, "mask bits: %g of %d set", ones,
              63 * S_);
    for (int i = 0; i < 2; i++) {
        const float *xi = (const float *)x->data + i * F_, *wt = g_w + tg[i] * F_;
        double mean[S_][C_] = { { 0 } }, cnt[S_] = { 0 }, want[S_] = { 0 }, b0 = g_b[tg[i]];
        for (int q = 0; q < H_ * W_; q++) {
            cnt[seg[q]]++;
            for (int c = 0; c < C_; c++)
                mean[seg[q]][c] += xi[c * H_ * W_ + q];
        }
        for (int q = 0; q < H_ * W_; q++)
            for (int c = 0; c < C_; c++) {
                double m = mean[seg[q]][c] / cnt[seg[q]];
                want[seg[q]] += wt[c * H_ * W_ + q] * (xi[c * H_ * W_ + q] - m);
                b0 += wt[c * H_ * W_ + q] * m;
            }
        for (int j = 0; j < S_; j++)
            CHECK_MSG(fabs(((float *)e.features->data)[i * S_ + j] - want[j]) < 1e-4,
                      "lime linear sample %d feature %d: %g, exact %g", i, j,
                      (double)((float *)e.features->data)[i * S_ + j], want[j]);
        CHECK_MSG(fabs(e.intercept[i] - b0) < 1e-4, "lime intercept %g, exact %g", e.intercept[i],
                  b0);
        CHECK_MSG(fabs(e.r2[i] - 1) < 1e-6, "lime r2 %g", e.r2[i]);
        for (int q = 0; q < H_ * W_; q++)
            CHECK(((float *)e.attribution->data)[i * H_ * W_ + q] ==
                  ((float *)e.features->data)[i * S_ + seg[q]]);
    }
    /* top_k = 3: every class's coefficients are that class's exact linear ones */
    idl_explanation t3;
    CHECK_OK(run(s, "lime", x, NULL,
                 "segmentation=grid grid_rows=2 grid_cols=4 num_samples=64 top_k=3", &t3));
    if (t3.attribution) {
        CHECK_EQ_INT(t3.k, 3);
        CHECK_EQ_INT(t3.attribution->ndim, 4);
        CHECK_EQ_INT(t3.features->shape[0], 6);
        for (int i = 0; i < 2; i++) {
            const float *xi = (const float *)x->data + i * F_;
            double mean[S_][C_] = { { 0 } }, cnt[S_] = { 0 };
            for (int q = 0; q < H_ * W_; q++) {
                cnt[seg[q]]++;
                for (int c = 0; c < C_; c++)
                    mean[seg[q]][c] += xi[c * H_ * W_ + q];
            }
            bool seen[K_] = { false };
            for (int c = 0; c < 3; c++) {
                int64_t cls = t3.targets[i * 3 + c];
                CHECK(cls >= 0 && cls < K_ && !seen[cls]);
                if (cls < 0 || cls >= K_) continue;
                seen[cls] = true;
                double want[S_] = { 0 };
                for (int q = 0; q < H_ * W_; q++)
                    for (int ch = 0; ch < C_; ch++)
                        want[seg[q]] += g_w[cls * F_ + ch * H_ * W_ + q] *
                                        (xi[ch * H_ * W_ + q] - mean[seg[q]][ch] / cnt[seg[q]]);
                for (int j = 0; j < S_; j++)
                    CHECK_MSG(fabs(((float *)t3.features->data)[(i * 3 + c) * S_ + j] - want[j]) <
                                  1e-4,
                              "lime top_k sample %d class %lld feature %d", i, (long long)cls, j);
            }
            CHECK(t3.targets[i * 3] == t3.targets[i * 3] && t3.score[i] > 0);
        }
    }
    idl_explanation_clear(&t3);
    CHECK(run(s, "lime", x, tg, "segmentation=grid top_k=2", &t3) == IDL_ERR_INVALID_ARG);
    CHECK(run(s, "lime", x, NULL, "segmentation=grid top_k=4", &t3) == IDL_ERR_INVALID_ARG);

    /* replayed masks give the same result; another seed other masks */
    CHECK_OK(idl_npy_save("test_perturb_masks.npy", e.masks));
    idl_explanation r, o;
    CHECK_OK(run(s, "lime", x, tg,
                 "segmentation=grid grid_rows=2 grid_cols=4 masks=test_perturb_masks.npy", &r));
    if (r.attribution)
        th_allclose("lime replayed masks", r.attribution->data, e.attribution->data, 2 * H_ * W_, 0,
                    0);
    CHECK_OK(run(s, "lime", x, tg,
                 "segmentation=grid grid_rows=2 grid_cols=4 num_samples=64 seed=5", &o));
    if (o.masks) CHECK(memcmp(o.masks->data, e.masks->data, sizeof(float) * 64 * S_) != 0);
    idl_explanation_clear(&r);
    idl_explanation_clear(&o);

    /* ridge_alpha > 0 against the normal equations; a nonlinear target (the probability) */
    idl_explain_request rq = idl_explain_request_default();
    const idl_tensor *in[1] = { x };
    rq.inputs = in;
    rq.n_inputs = 1;
    rq.targets = tg;
    const char *sets[] = { "segmentation=grid", "grid_rows=2",
                           "grid_cols=4",       "masks=test_perturb_masks.npy",
                           "ridge_alpha=0.7",   "kernel_width=0.5" };
    CHECK_OK(idl_explain(s, "lime", &rq, sets, 6, &r));
    /* G-LIME with no prior and with a per-superpixel prior (standardised ridge, closed form) */
    float pv[S_] = { 0.5f, -1.0f, 0.25f, 0.0f, 2.0f, -0.25f };
    idl_tensor pt = idl_tensor_wrap(IDL_DT_F32, 1, (int64_t[]){ S_ }, pv);
    CHECK_OK(idl_npy_save("test_perturb_prior.npy", &pt));
    idl_explanation gl[2];
    const char *gsets[] = { "segmentation=grid",
                            "grid_rows=2",
                            "grid_cols=4",
                            "masks=test_perturb_masks.npy",
                            "kernel_width=0.5",
                            "prior_reg_force=0.7",
                            "prior=test_perturb_prior.npy" };
    CHECK_OK(idl_explain(s, "glime", &rq, gsets, 6, &gl[0]));
    CHECK_OK(idl_explain(s, "glime", &rq, gsets, 7, &gl[1]));
    for (int i = 0; r.attribution && i < 2; i++) {
        /* y from the model: the probability of the masked image */
        double y[64], w[64], beta[S_], b0;
        idl_tensor *xm = NULL;
        CHECK_OK(idl_tensor_new(IDL_DT_F32, 4, (int64_t[]){ 64, C_, H_, W_ }, &xm));
        if (!xm) break;
        const float *xi = (const float *)x->data + i * F_;
        double mean[S_][C_] = { { 0 } }, cnt[S_] = { 0 };
        for (int q = 0; q < H_ * W_; q++) {
            cnt[seg[q]]++;
            for (int c = 0; c < C_; c++)
                mean[seg[q]][c] += xi[c * H_ * W_ + q];
        }
        for (int sm = 0; sm < 64; sm++) {
            double k = 0;
            for (int j = 0; j < S_; j++)
                k += mk[sm * S_ + j];
            double d = k > 0 ? 1 - sqrt(k / S_) : 1;
            w[sm] = sqrt(exp(-d * d / 0.25));
            for (int c = 0; c < C_; c++)
                for (int q = 0; q < H_ * W_; q++)
                    ((float *)xm->data)[sm * F_ + c * H_ * W_ + q] =
                        mk[sm * S_ + seg[q]] ? xi[c * H_ * W_ + q]
                                             : (float)(mean[seg[q]][c] / cnt[seg[q]]);
        }
        idl_session *s2 = NULL;
        const idl_tensor *xin[1] = { xm };
        CHECK_OK(idl_session_new(model, NULL, &s2));
        CHECK_OK(idl_session_forward(s2, xin, NULL, 1));
        const float *yv = idl_session_output(s2, 0)->data;
        for (int sm = 0; sm < 64; sm++) {
            double mx = yv[sm * K_], z = 0;
            for (int c = 1; c < K_; c++)
                mx = fmax(mx, yv[sm * K_ + c]);
            for (int c = 0; c < K_; c++)
                z += exp(yv[sm * K_ + c] - mx);
            y[sm] = exp(yv[sm * K_ + tg[i]] - mx) / z;
        }
        ridge_ref(mk, 64, S_, y, w, 0.7, beta, &b0);
        for (int j = 0; j < S_; j++)
            CHECK_MSG(fabs(((float *)r.features->data)[i * S_ + j] - beta[j]) <
                          1e-5 * (1 + fabs(beta[j])),
                      "lime ridge sample %d feature %d: %g, normal equations %g", i, j,
                      (double)((float *)r.features->data)[i * S_ + j], beta[j]);
        CHECK_MSG(fabs(r.intercept[i] - b0) < 1e-5, "lime ridge intercept %g vs %g", r.intercept[i],
                  b0);
        for (int g = 0; g < 2; g++) {
            double want[S_];
            glime_ref(mk, 64, y, w, 0.7, g ? pv : NULL, want);
            for (int j = 0; gl[g].features && j < S_; j++)
                CHECK_MSG(fabs(((float *)gl[g].features->data)[i * S_ + j] - want[j]) <
                              1e-5 * (1 + fabs(want[j])),
                          "glime (prior %d) sample %d feature %d: %g, closed form %g", g, i, j,
                          (double)((float *)gl[g].features->data)[i * S_ + j], want[j]);
        }
        idl_session_free(s2);
        idl_tensor_free(xm);
    }
    idl_explanation_clear(&r);
    idl_explanation_clear(&gl[0]);
    idl_explanation_clear(&gl[1]);
    remove("test_perturb_prior.npy");

    /* N samples = N single calls (quickshift on the rescaled input) */
    for (int i = 0; i < 2; i++) {
        idl_tensor one =
            idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 1, C_, H_, W_ }, (float *)x->data + i * F_);
        idl_explanation a, b;
        CHECK_OK(run(s, "lime", &one, tg + i, "num_samples=40 kernel_size=1 max_dist=3", &a));
        CHECK_OK(run(s, "lime", x, tg, "num_samples=40 kernel_size=1 max_dist=3", &b));
        if (a.attribution && b.attribution)
            th_allclose("lime batch = singles", a.attribution->data,
                        (float *)b.attribution->data + i * H_ * W_, H_ * W_, 1e-5, 0);
        idl_explanation_clear(&a);
        idl_explanation_clear(&b);
    }
    /* fewer samples than superpixels: the minimum-norm fit interpolates */
    CHECK_OK(run(s, "lime", x, tg, "segmentation=grid grid_rows=2 grid_cols=4 num_samples=5", &r));
    for (int i = 0; r.attribution && i < 2; i++)
        CHECK_MSG(fabs(r.r2[i] - 1) < 1e-6, "rank-deficient lime r2 %g", r.r2[i]);
    idl_explanation_clear(&r);

    /* errors */
    float badm[2 * 8];
    for (int j = 0; j < 16; j++)
        badm[j] = j == 3 ? 2.0f : 1.0f;
    idl_tensor bm = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 2, 8 }, badm);
    CHECK_OK(idl_npy_save("test_perturb_badmasks.npy", &bm));
    int32_t segv[5 * 5] = { 0 };
    idl_tensor sg = idl_tensor_wrap(IDL_DT_I32, 2, (int64_t[]){ 5, 5 }, segv);
    CHECK_OK(idl_npy_save("test_perturb_badseg.npy", &sg));
    static const struct {
        const char *set;
        idl_status want;
    } bad[] = {
        { "segmentation=grid masks=test_perturb_badmasks.npy", IDL_ERR_SHAPE }, /* 8 < 48 cells */
        { "segmentation=grid grid_rows=2 grid_cols=4 masks=test_perturb_badmasks.npy",
          IDL_ERR_INVALID_ARG },
        { "segments=test_perturb_badseg.npy", IDL_ERR_SHAPE },
        { "segmentation=watershed", IDL_ERR_INVALID_ARG },
        { "num_samples=0", IDL_ERR_INVALID_ARG },
        { "kernel_width=-1", IDL_ERR_INVALID_ARG },
        { "hide=dark", IDL_ERR_INVALID_ARG },
        { "masks=missing_file.npy", IDL_ERR_IO },
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        idl_explanation b;
        idl_status st = run(s, "lime", x, tg, bad[k].set, &b);
        CHECK_MSG(st == bad[k].want, "lime %s: status %d, want %d (%s)", bad[k].set, (int)st,
                  (int)bad[k].want, idl_last_error());
        CHECK(b.attribution == NULL);
    }
    remove("test_perturb_badmasks.npy");
    remove("test_perturb_badseg.npy");
    remove("test_perturb_masks.npy");
    idl_explanation_clear(&e);
}

/* conv (3 -> 4, 3x3, pad 1) -> relu "A" -> global average pool -> flatten -> Gemm V (K_ x 4);
 * repeat: filter 2 is filter 0 and filter 3 is zero (A_2 = A_0, A_3 = 0) */
static float g_cw[4 * 3 * 9], g_v[K_ * 4];

static idl_model *conv_model(int repeat) {
    uint32_t seed = 11;
    for (int j = 0; j < 4 * 27; j++)
        g_cw[j] = 0.5f * tb_frand(&seed);
    for (int j = 0; repeat && j < 27; j++)
        g_cw[2 * 27 + j] = g_cw[j], g_cw[3 * 27 + j] = 0;
    for (int j = 0; j < K_ * 4; j++)
        g_v[j] = tb_frand(&seed);
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 4, (int64_t[]){ -1, C_, H_, W_ });
    tb_init_f32(b, "CW", 4, (int64_t[]){ 4, 3, 3, 3 }, g_cw);
    tb_init_f32(b, "V", 2, (int64_t[]){ K_, 4 }, g_v);
    tb_init_f32(b, "VB", 1, (int64_t[]){ K_ }, g_b);
    tb_node(b, "Conv", "x,CW", "c");
    tb_attr_ints(b, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
    tb_node(b, "Relu", "c", "A");
    tb_node(b, "GlobalAveragePool", "A", "g");
    tb_node(b, "Flatten", "g", "f");
    tb_node(b, "Gemm", "f,V,VB", "y");
    tb_attr_int(b, "transB", 1);
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

static int abort_after_one(int64_t done, int64_t total, void *user) {
    (void)total, (void)user;
    return done >= 1;
}

/* Ablation-CAM of conv_model in closed form: the classifier is linear in the pooled channels, so
 * f - f_k = V_tk mean(A_k) and the map is relu(sum_k V_tk mean(A_k) / f A_k). A: the layer (2, 4,
 * H_, W_), y: the logits (2, K_). */
static void ablation_ref(const float *A, const float *y, const int64_t *tg, float *want) {
    for (int i = 0; i < 2; i++) {
        double f = y[i * K_ + tg[i]], map[H_ * W_] = { 0 };
        for (int k = 0; k < 4; k++) {
            const float *ak = A + (i * 4 + k) * H_ * W_;
            double mean = 0;
            for (int q = 0; q < H_ * W_; q++)
                mean += ak[q];
            mean /= H_ * W_;
            for (int q = 0; q < H_ * W_; q++)
                map[q] += g_v[tg[i] * 4 + k] * mean / f * ak[q];
        }
        for (int q = 0; q < H_ * W_; q++)
            want[i * H_ * W_ + q] = (float)(map[q] > 0 ? map[q] : 0);
    }
}

static void test_cams(const idl_tensor *x, const int64_t *tg) {
    idl_model *m = conv_model(0);
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    if (!s) {
        idl_model_free(m);
        return;
    }
    const idl_tensor *in[1] = { x };
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    const idl_tensor *A = idl_session_tensor(s, "A");
    const float *y = idl_session_output(s, 0)->data;
    float want[2 * H_ * W_];
    if (A) ablation_ref(A->data, y, tg, want);
    idl_explanation e;
    CHECK_OK(run(s, "ablationcam", x, tg, "", &e));
    if (e.attribution) {
        th_allclose("ablationcam = relu(sum V_tk mean(A_k) / f A_k)", e.attribution->data, want,
                    2 * H_ * W_, 1e-5, 1e-6);
        CHECK(!strcmp(e.layer, "A"));
    }
    idl_explanation_clear(&e);
    /* Score-CAM: softmax weights sum to 1, so with relu=0 the map of a constant activation ... is
     * checked against pytorch-grad-cam in the parity fixtures; here batch = singles */
    for (int meth = 0; meth < 2; meth++)
        for (int i = 0; i < 2; i++) {
            const char *name = meth ? "scorecam" : "ablationcam";
            idl_tensor one = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 1, C_, H_, W_ },
                                             (float *)x->data + i * F_);
            idl_explanation a, b;
            CHECK_OK(run(s, name, &one, tg + i, "normalize=1 upsample=1", &a));
            CHECK_OK(run(s, name, x, tg, "normalize=1 upsample=1", &b));
            if (a.attribution && b.attribution)
                th_allclose(name, a.attribution->data, (float *)b.attribution->data + i * H_ * W_,
                            H_ * W_, 1e-6, 1e-7);
            idl_explanation_clear(&a);
            idl_explanation_clear(&b);
        }
    /* NormLIME with one concept: the weight of (class, 0) is the mean over every superpixel of
     * the images explained for that class of w^2 / sum|w| (w: the image's own LIME run; the masks
     * depend on the seed only, so each image alone sees the same) */
    const char *ls = "segmentation=grid grid_rows=2 grid_cols=4 num_samples=50";
    char nset[256];
    snprintf(nset, sizeof nset, "%s n_concepts=1", ls);
    idl_explanation nl;
    CHECK_OK(run(s, "normlime", x, tg, nset, &nl));
    if (nl.attribution) {
        CHECK_EQ_INT(nl.attribution->shape[0], K_);
        CHECK_EQ_INT(nl.attribution->shape[1], 1);
        CHECK_EQ_INT(nl.concepts->shape[1], 2 * 4); /* 2 x the channels of "A" */
        CHECK(!strcmp(nl.layer, "A"));
        double sum[K_] = { 0 }, cnt[K_] = { 0 };
        for (int i = 0; i < 2; i++) {
            idl_tensor one = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 1, C_, H_, W_ },
                                             (float *)x->data + i * F_);
            idl_explanation l;
            CHECK_OK(run(s, "lime", &one, tg + i, ls, &l));
            if (!l.attribution) continue;
            const float *w = l.features->data;
            double l1 = 0;
            for (int j = 0; j < l.n_features[0]; j++)
                l1 += fabs(w[j]);
            for (int j = 0; j < l.n_features[0]; j++)
                sum[tg[i]] += (double)w[j] * w[j] / l1, cnt[tg[i]]++;
            idl_explanation_clear(&l);
        }
        for (int c = 0; c < K_; c++) {
            double want = cnt[c] ? sum[c] / cnt[c] : 0, got = ((float *)nl.attribution->data)[c];
            CHECK_MSG(fabs(got - want) <= 1e-5 * (1 + want), "normlime class %d: %g, expected %g",
                      c, got, want);
        }
    }
    /* an aborted normlime run leaves its cache; the rerun takes it back and equals a fresh run */
    if (nl.attribution) {
        remove("test_perturb_cache.npy");
        snprintf(nset, sizeof nset, "%s n_concepts=2 cache=test_perturb_cache.npy", ls);
        idl_explanation c1, c2, c0;
        idl_explain_request rq = idl_explain_request_default();
        const idl_tensor *in1[1] = { x };
        rq.inputs = in1;
        rq.n_inputs = 1;
        rq.targets = tg;
        rq.objective = IDL_OBJ_LOGIT;
        rq.progress = abort_after_one;
        const char *sv[] = { "segmentation=grid", "grid_rows=2",  "grid_cols=4",
                             "num_samples=50",    "n_concepts=2", "cache=test_perturb_cache.npy" };
        CHECK_EQ_INT(idl_explain(s, "normlime", &rq, sv, 6, &c1), IDL_ERR_ABORTED);
        FILE *f = fopen("test_perturb_cache.npy", "rb");
        CHECK_MSG(f != NULL, "an aborted normlime run left no cache");
        if (f) fclose(f);
        rq.progress = NULL;
        CHECK_OK(idl_explain(s, "normlime", &rq, sv, 6, &c2));
        CHECK_OK(idl_explain(s, "normlime", &rq, sv, 5, &c0));
        if (c2.attribution && c0.attribution) {
            th_allclose("normlime resumed = fresh", c2.attribution->data, c0.attribution->data,
                        idl_tensor_numel(c0.attribution), 0, 0);
            CHECK_MSG(c2.passes < c0.passes, "resumed run: %lld passes, fresh %lld",
                      (long long)c2.passes, (long long)c0.passes);
        }
        idl_explanation_clear(&c2);
        idl_explanation_clear(&c0);
        remove("test_perturb_cache.npy");
    }
    /* G-LIME on normlime's output runs; FastNormLIME with one concept present everywhere has
     * nothing to regress on: all weights 0 */
    if (nl.attribution) {
        CHECK_OK(idl_npy_save("test_perturb_nl.npy", nl.attribution));
        CHECK_OK(idl_npy_save("test_perturb_c.npy", nl.concepts));
        snprintf(nset, sizeof nset, "%s prior=test_perturb_nl.npy concepts=test_perturb_c.npy", ls);
        idl_explanation g;
        CHECK_OK(run(s, "glime", x, tg, nset, &g));
        if (g.attribution) CHECK(!strcmp(g.layer, "A"));
        idl_explanation_clear(&g);
        CHECK(run(s, "glime", x, tg, "prior=test_perturb_nl.npy concepts=test_perturb_prior.npy",
                  &g) != IDL_OK);
        remove("test_perturb_nl.npy");
        remove("test_perturb_c.npy");
    }
    idl_explanation_clear(&nl);
    CHECK_OK(run(s, "fastnormlime", x, tg, "n_concepts=1", &nl));
    for (int c = 0; nl.attribution && c < K_; c++)
        CHECK(((float *)nl.attribution->data)[c] == 0);
    idl_explanation_clear(&nl);

    static const char *const bad[][2] = { { "scorecam", "layer=nope" },
                                          { "scorecam", "variant=other" },
                                          { "ablationcam", "variant=interpretdl" },
                                          { "ablationcam", "ablation_value=x" } };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        idl_status st = run(s, bad[k][0], x, tg, bad[k][1], &e);
        CHECK_MSG(st == IDL_ERR_INVALID_ARG || st == IDL_ERR_NOT_FOUND, "%s %s: status %d (%s)",
                  bad[k][0], bad[k][1], (int)st, idl_last_error());
    }
    idl_session_free(s);
    idl_model_free(m);
}

/* k-means finds three well-separated blobs whatever the seed; k is clamped to the points. */
static void test_kmeans(void) {
    float X[60 * 5], cent[3 * 5];
    int32_t as[60];
    uint32_t sd = 5;
    for (int i = 0; i < 60; i++)
        for (int j = 0; j < 5; j++)
            X[i * 5 + j] = (j == i / 20 ? 10.0f : 0.0f) + 0.1f * tb_frand(&sd);
    for (uint64_t seed = 0; seed < 4; seed++) {
        CHECK_OK(idl__kmeans(X, 60, 5, 3, seed, 50, cent, as));
        for (int i = 0; i < 60; i++)
            CHECK_MSG(as[i] == as[i / 20 * 20], "kmeans seed %d: point %d in %d, its blob in %d",
                      (int)seed, i, as[i], as[i / 20 * 20]);
        CHECK(as[0] != as[20] && as[0] != as[40] && as[20] != as[40]);
        for (int b = 0; b < 3; b++) {
            double m = 0;
            for (int i = b * 20; i < b * 20 + 20; i++)
                m += X[i * 5 + b];
            CHECK_MSG(fabs(cent[as[b * 20] * 5 + b] - m / 20) < 1e-5, "kmeans centre %g vs %g",
                      (double)cent[as[b * 20] * 5 + b], m / 20);
        }
    }
    CHECK_OK(idl__kmeans(X, 2, 5, 7, 0, 10, cent, as)); /* k > n: one cluster per point */
    CHECK(as[0] != as[1]);
}

/* Channels that repeat: Score-CAM runs one pass per distinct activation map (A_2 = A_0 shares
 * A_0's) and Ablation-CAM none for a channel already at the ablation value (A_3 = 0); the maps
 * equal the methods computed channel by channel here. */
static void test_cams_repeat(const idl_tensor *x, const int64_t *tg) {
    idl_model *m = conv_model(1);
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    if (!s) {
        idl_model_free(m);
        return;
    }
    const idl_tensor *in[1] = { x };
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    const idl_tensor *At = idl_session_tensor(s, "A");
    float A[2 * 4 * H_ * W_], want[2 * H_ * W_];
    if (At) memcpy(A, At->data, sizeof A);
    for (int i = 0; At && i < 2; i++) {
        double sc[4], mx = -1e300, z = 0, map[H_ * W_] = { 0 };
        for (int k = 0; k < 4; k++) { /* s_k = f(x * M_k), M_k = min-max normalised A_k */
            const float *ak = A + (i * 4 + k) * H_ * W_;
            float lo = ak[0], hi = ak[0], xm[F_];
            for (int q = 1; q < H_ * W_; q++)
                lo = ak[q] < lo ? ak[q] : lo, hi = ak[q] > hi ? ak[q] : hi;
            for (int j = 0; j < F_; j++)
                xm[j] = ((const float *)x->data)[i * F_ + j] *
                        ((ak[j % (H_ * W_)] - lo) / (hi - lo + 1e-8f));
            idl_tensor one = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 1, C_, H_, W_ }, xm);
            const idl_tensor *oin[1] = { &one };
            CHECK_OK(idl_session_forward(s, oin, NULL, 1));
            sc[k] = ((const float *)idl_session_output(s, 0)->data)[tg[i]];
            mx = sc[k] > mx ? sc[k] : mx;
        }
        for (int k = 0; k < 4; k++)
            z += exp(sc[k] - mx);
        for (int k = 0; k < 4; k++)
            for (int q = 0; q < H_ * W_; q++)
                map[q] += exp(sc[k] - mx) / z * A[(i * 4 + k) * H_ * W_ + q];
        for (int q = 0; q < H_ * W_; q++)
            want[i * H_ * W_ + q] = (float)(map[q] > 0 ? map[q] : 0);
    }
    idl_explanation e;
    CHECK_OK(run(s, "scorecam", x, tg, "", &e));
    if (e.attribution) {
        th_allclose("scorecam, repeated channels = channel by channel", e.attribution->data, want,
                    2 * H_ * W_, 1e-5, 1e-6);
        CHECK_EQ_INT(e.passes, 2 + 2 * 3); /* the clean pass, 3 distinct maps a sample */
    }
    idl_explanation_clear(&e);
    float y[2 * K_];
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    memcpy(y, idl_session_output(s, 0)->data, sizeof y);
    CHECK_OK(run(s, "ablationcam", x, tg, "", &e));
    if (e.attribution) {
        ablation_ref(A, y, tg, want);
        th_allclose("ablationcam, a zero channel = closed form", e.attribution->data, want,
                    2 * H_ * W_, 1e-5, 1e-6);
        CHECK_EQ_INT(e.passes, 2 + 2 * 3); /* A_3 = 0 is not ablated */
    }
    idl_explanation_clear(&e);
    idl_session_free(s);
    idl_model_free(m);
}

int main(void) {
    test_kmeans();
    test_occlusion_cone();
    idl_model *m = linear_model();
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    float xv[2 * F_];
    uint32_t seed = 3;
    for (int j = 0; j < 2 * F_; j++)
        xv[j] = tb_frand(&seed);
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, C_, H_, W_ }, xv);
    int64_t tg[2] = { 2, 0 };
    if (s) {
        test_occlusion(s, &x, tg);
        test_lime(s, m, &x, tg);
    }
    test_cams(&x, tg);
    test_cams_repeat(&x, tg);
    idl_session_free(s);
    idl_model_free(m);
    TEST_SUMMARY();
}

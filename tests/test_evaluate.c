/* test_evaluate.c — the evaluation metrics (src/evaluate/).
 *   test_evaluate --invariants    closed forms on a linear image model built here,
 *                                 y = W flatten(x) + b (objective: the logit):
 *  - deletion / insertion / MoRF / LeRF curves equal the model evaluated on the perturbed inputs
 *    computed here from the definitions (ranking, step counts, the centred patch grid, fills);
 *    the scores are the trapezoid area, the mean and AOPC of those curves;
 *  - deletion of the perfect ordering (the contributions W_t x) has an area <= any other
 *    ordering's, insertion >=;
 *  - infidelity of the exact attribution W_t is 0 (with and without scaling); of a scaled one it
 *    is 0 with optimal scaling (beta = 1 / scale) and not without;
 *  - sensitivity of saliency on a linear model is 0 (its gradient does not depend on x);
 *  - pointing game on synthetic maps and boxes: hits, misses, ties, precision / recall, ROC-AUC
 *    and average precision against pairwise and threshold-sum definitions computed here;
 *  - local fidelity with LIME's own masks equals LIME's R^2, and on the linear model it is 1 on
 *    held-out masks;
 *  - N samples in one call equal N single calls; bad input gives errors naming the problem.
 *   test_evaluate --parity DIR    the fixtures of tests/reference/make_evaluate.py (Quantus 0.6.0
 *                                 and scikit-learn), DIR/<case>/case.txt: lines
 *                                 METRIC EXPECTED.npy SCORE key=value... (see that script). */
#include "interpretdl/evaluate.h"
#include "interpretdl/interpretdl.h"

#include "harness.h"
#include "model_builder.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <unistd.h>

#define C_  3
#define H_  8
#define W_  8
#define HW_ (H_ * W_)
#define F_  (C_ * HW_)
#define K_  3
#define N_  2

static float g_w[K_ * F_], g_b[K_];

static idl_model *linear_model(void) {
    return tb_linear_model_random(C_, H_, W_, K_, 11, 0.25f, g_w, g_b);
}

static double logit(const float *x, int64_t t) {
    double y = g_b[t];
    for (int j = 0; j < F_; j++)
        y += (double)g_w[t * F_ + j] * x[j];
    return y;
}

/* Settings "a=1 b=2" split on spaces into sets (buf keeps the text). */
static int split(const char *set, char *buf, size_t cap, const char **sets) {
    int n = 0;
    snprintf(buf, cap, "%s", set ? set : "");
    for (char *tok = strtok(buf, " "); tok && n < 32; tok = strtok(NULL, " "))
        sets[n++] = tok;
    return n;
}

static idl_status eval(idl_session *s, const char *metric, const idl_tensor *x,
                       const int64_t *targets, const idl_tensor *E, const char *set,
                       idl_evaluation *ev) {
    idl_explain_request rq = idl_explain_request_default();
    const idl_tensor *in[1] = { x };
    rq.inputs = in;
    rq.n_inputs = 1;
    rq.targets = targets;
    rq.objective = IDL_OBJ_LOGIT;
    const char *sets[32];
    char buf[2048];
    int n = split(set, buf, sizeof buf, sets);
    return idl_evaluate(s, metric, &rq, E, sets, n, ev);
}

static idl_tensor *tensor(int ndim, const int64_t *shape) {
    idl_tensor *t = NULL;
    if (idl_tensor_new(IDL_DT_F32, ndim, shape, &t)) abort();
    return t;
}

/* ---- references from the definitions ---- */

/* Descending ranks, ties to the lower index. */
static void ranks(const double *v, int64_t F, bool ascending, int64_t *rank) {
    for (int64_t f = 0; f < F; f++) {
        int64_t r = 0;
        for (int64_t g = 0; g < F; g++) {
            double a = ascending ? -v[g] : v[g], b = ascending ? -v[f] : v[f];
            r += a > b || (a == b && g < f);
        }
        rank[f] = r;
    }
}

static double trapz(const double *y, int64_t K) {
    double a = 0;
    for (int64_t j = 1; j <= K; j++)
        a += (y[j - 1] + y[j]) / 2;
    return a / (double)K;
}

/* The deletion (insertion) curve of one sample: F units (F_ elements or HW_ pixels), count[j]
 * units changed after step j, fill value. */
static void curve_ref(const float *x, int64_t t, const double *v, int64_t F, const int64_t *count,
                      int64_t K, float fill, bool insertion, double *y) {
    int64_t rank[F_];
    ranks(v, F, false, rank);
    float xp[F_];
    for (int64_t j = 0; j <= K; j++) {
        for (int e = 0; e < F_; e++) {
            bool ch = rank[e % F] < count[j];
            xp[e] = ch != insertion ? fill : x[e];
        }
        y[j] = logit(xp, t);
    }
}

static float sample_min(const float *x) {
    float m = x[0];
    for (int j = 1; j < F_; j++)
        m = x[j] < m ? x[j] : m;
    return m;
}

static void test_deletion(idl_session *s, const idl_tensor *x, const int64_t *tg) {
    const float *xv = x->data;
    /* per-element explanation, steps = 7 (F_ = 192: counts floor(j * 192 / 7)) */
    idl_tensor *E = tensor(4, (int64_t[]){ N_, C_, H_, W_ });
    idl_tensor *P = tensor(3, (int64_t[]){ N_, H_, W_ });
    uint32_t seed = 5;
    for (int j = 0; j < N_ * F_; j++)
        ((float *)E->data)[j] = tb_frand(&seed);
    for (int j = 0; j < N_ * HW_; j++)
        ((float *)P->data)[j] = tb_frand(&seed);
    struct {
        const char *set;
        bool insertion, pixel;
        int64_t K, m;
        float fill; /* NAN: black */
    } cases[] = {
        { "steps=7 fill=0.5", false, false, 7, 0, 0.5f },
        { "features_in_step=50", false, false, 4, 50, NAN },
        { "steps=5 fill=-1", true, false, 5, 0, -1.0f },
        { "features_in_step=10 fill=0", false, true, 7, 10, 0.0f },
        { "features_in_step=16", true, true, 4, 16, NAN },
        { "steps=64 fill=0.25", false, true, 64, 0, 0.25f },
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        idl_evaluation ev = { 0 };
        const char *metric = cases[c].insertion ? "insertion" : "deletion";
        idl_status st = eval(s, metric, x, tg, cases[c].pixel ? P : E, cases[c].set, &ev);
        CHECK_MSG(st == IDL_OK, "%s %s: %s", metric, cases[c].set, idl_last_error());
        if (st) continue;
        int64_t K = cases[c].K, F = cases[c].pixel ? HW_ : F_;
        CHECK_EQ_INT(ev.curve->shape[1], K + 1);
        int64_t count[70];
        for (int64_t j = 0; j <= K; j++)
            count[j] = cases[c].m ? (j * cases[c].m < F ? j * cases[c].m : F) : j * F / K;
        double worst = 0;
        for (int i = 0; i < N_; i++) {
            double v[F_], y[70];
            for (int64_t f = 0; f < F; f++)
                v[f] = ((const float *)(cases[c].pixel ? P : E)->data)[i * F + f];
            float fill = isnan(cases[c].fill) ? sample_min(xv + i * F_) : cases[c].fill;
            curve_ref(xv + i * F_, tg[i], v, F, count, K, fill, cases[c].insertion, y);
            double mean = 0;
            for (int64_t j = 0; j <= K; j++) {
                double got = ((const double *)ev.curve->data)[i * (K + 1) + j];
                worst = fmax(worst, fabs(got - y[j]) / (1 + fabs(y[j])));
                mean += y[j] / (double)(K + 1);
            }
            double area = idl_evaluation_score(&ev, metric, i);
            char mname[32];
            snprintf(mname, sizeof mname, "%s_mean", metric);
            CHECK_MSG(fabs(area - trapz(y, K)) < 1e-4 * (1 + fabs(trapz(y, K))),
                      "%s %s sample %d area %g, reference %g", metric, cases[c].set, i, area,
                      trapz(y, K));
            CHECK_MSG(fabs(idl_evaluation_score(&ev, mname, i) - mean) < 1e-4 * (1 + fabs(mean)),
                      "%s %s mean", metric, cases[c].set);
        }
        CHECK_MSG(worst < 1e-4, "%s %s: curve differs from the model on the perturbed input by %g",
                  metric, cases[c].set, worst);
        idl_evaluation_clear(&ev);
    }
    /* perfect ordering (contributions W_t x, fill 0) against random orderings */
    idl_tensor *Q = tensor(4, (int64_t[]){ N_, C_, H_, W_ });
    for (int i = 0; i < N_; i++)
        for (int j = 0; j < F_; j++)
            ((float *)Q->data)[i * F_ + j] = g_w[tg[i] * F_ + j] * xv[i * F_ + j];
    idl_evaluation best = { 0 }, bins = { 0 };
    CHECK_OK(eval(s, "deletion", x, tg, Q, "steps=16 fill=0", &best));
    CHECK_OK(eval(s, "insertion", x, tg, Q, "steps=16 fill=0", &bins));
    for (int trial = 0; trial < 4; trial++) {
        for (int j = 0; j < N_ * F_; j++)
            ((float *)E->data)[j] = tb_frand(&seed);
        idl_evaluation r = { 0 }, ri = { 0 };
        CHECK_OK(eval(s, "deletion", x, tg, E, "steps=16 fill=0", &r));
        CHECK_OK(eval(s, "insertion", x, tg, E, "steps=16 fill=0", &ri));
        for (int i = 0; i < N_; i++) {
            CHECK_MSG(idl_evaluation_score(&best, "deletion", i) <=
                          idl_evaluation_score(&r, "deletion", i) + 1e-6,
                      "perfect deletion order not <= random (sample %d)", i);
            CHECK_MSG(idl_evaluation_score(&bins, "insertion", i) >=
                          idl_evaluation_score(&ri, "insertion", i) - 1e-6,
                      "perfect insertion order not >= random (sample %d)", i);
        }
        idl_evaluation_clear(&r);
        idl_evaluation_clear(&ri);
    }
    idl_evaluation_clear(&best);
    idl_evaluation_clear(&bins);
    /* a 2-D map of another size is resized (a constant 4x4 map ranks pixels by index) */
    idl_tensor *small = tensor(3, (int64_t[]){ N_, 4, 4 });
    for (int j = 0; j < N_ * 16; j++)
        ((float *)small->data)[j] = tb_frand(&seed);
    idl_evaluation ev = { 0 };
    CHECK_OK(eval(s, "deletion", x, tg, small, "steps=4", &ev));
    CHECK(ev.curve && ev.curve->shape[1] == 5);
    idl_evaluation_clear(&ev);
    idl_tensor_free(small);
    idl_tensor_free(Q);
    idl_tensor_free(E);
    idl_tensor_free(P);
}

/* InterpretDL's variant: with 64 distinct pixel values and K = 4 the percentile thresholds
 * remove 16, 32, 48 pixels and then all but the minimum (E > min); its insertion reveals the
 * same sets and ends on the input. Per-channel fills. */
static void test_deletion_interpretdl(idl_session *s, const idl_tensor *x, const int64_t *tg) {
    const float *xv = x->data;
    idl_tensor *P = tensor(3, (int64_t[]){ N_, H_, W_ });
    uint32_t seed = 77;
    for (int j = 0; j < N_ * HW_; j++)
        ((float *)P->data)[j] = tb_frand(&seed);
    const float fc[C_] = { 0.1f, -0.2f, 0.3f };
    idl_evaluation del = { 0 }, ins = { 0 };
    CHECK_OK(eval(s, "deletion", x, tg, P, "variant=interpretdl steps=4 fill=0.1,-0.2,0.3", &del));
    CHECK_OK(eval(s, "insertion", x, tg, P, "variant=interpretdl steps=4 fill=0.1,-0.2,0.3", &ins));
    for (int i = 0; i < N_ && del.curve && ins.curve; i++) {
        double v[HW_];
        int64_t rank[HW_];
        for (int q = 0; q < HW_; q++)
            v[q] = ((const float *)P->data)[i * HW_ + q];
        ranks(v, HW_, false, rank);
        const int64_t cnt[5] = { 0, 16, 32, 48, 63 };
        double worst = 0;
        for (int j = 0; j <= 4; j++) {
            float xd[F_], xi[F_];
            /* insertion point j reveals the set of deletion step j + 1; the last is x */
            int64_t ci = j < 4 ? cnt[j + 1] : HW_;
            for (int e = 0; e < F_; e++) {
                float f = fc[e / HW_], xe = xv[i * F_ + e];
                xd[e] = rank[e % HW_] < cnt[j] ? f : xe;
                xi[e] = rank[e % HW_] < ci ? xe : f;
            }
            worst =
                fmax(worst, fabs(((const double *)del.curve->data)[i * 5 + j] - logit(xd, tg[i])));
            worst =
                fmax(worst, fabs(((const double *)ins.curve->data)[i * 5 + j] - logit(xi, tg[i])));
        }
        CHECK_MSG(worst < 1e-4, "variant=interpretdl sample %d: curves off by %g", i, worst);
    }
    idl_evaluation_clear(&del);
    idl_evaluation_clear(&ins);
    /* its LeRF: step j fills E < percentile(100 (j - 1) / K): 0, 0, 16, 32, 48 pixels */
    CHECK_OK(eval(s, "lerf", x, tg, P, "variant=interpretdl steps=4 fill=0.5", &del));
    for (int i = 0; i < N_ && del.curve; i++) {
        double v[HW_];
        int64_t rank[HW_];
        for (int q = 0; q < HW_; q++)
            v[q] = ((const float *)P->data)[i * HW_ + q];
        ranks(v, HW_, true, rank);
        const int64_t cnt[5] = { 0, 0, 16, 32, 48 };
        double worst = 0, mean = 0;
        for (int j = 0; j <= 4; j++) {
            float xl[F_];
            for (int e = 0; e < F_; e++)
                xl[e] = rank[e % HW_] < cnt[j] ? 0.5f : xv[i * F_ + e];
            double y = logit(xl, tg[i]);
            worst = fmax(worst, fabs(((const double *)del.curve->data)[i * 5 + j] - y));
            mean += y / 5;
        }
        CHECK_MSG(worst < 1e-4, "lerf variant=interpretdl sample %d: curve off by %g", i, worst);
        CHECK(fabs(idl_evaluation_score(&del, "lerf_mean", i) - mean) < 1e-4);
    }
    idl_evaluation_clear(&del);
    CHECK(eval(s, "deletion", x, tg, P, "fill=0.1,0.2", &del) == IDL_ERR_SHAPE);
    CHECK(strstr(idl_last_error(), "2 fill values") != NULL);
    CHECK(eval(s, "deletion", x, tg, P, "fill=0.1,x", &del) == IDL_ERR_INVALID_ARG);
    idl_tensor_free(P);
}

/* MoRF / LeRF against the definition: Quantus's centred grid, cumulative patches. */
static void test_region(idl_session *s, const idl_tensor *x, const int64_t *tg) {
    const float *xv = x->data;
    idl_tensor *E = tensor(4, (int64_t[]){ N_, 1, H_, W_ });
    uint32_t seed = 9;
    for (int j = 0; j < N_ * HW_; j++)
        ((float *)E->data)[j] = tb_frand(&seed);
    int sizes[] = { 2, 3, 5 }, regions[] = { 100, 5, 3 };
    for (int c = 0; c < 3; c++)
        for (int order = 0; order < 3; order++) {
            static const char *const names[] = { "morf", "lerf", "abpc" };
            char set[128];
            int p = sizes[c];
            snprintf(set, sizeof set, "patch_size=%d regions=%d fill=0.5", p, regions[c]);
            idl_evaluation ev = { 0 };
            idl_status st = eval(s, names[order], x, tg, E, set, &ev);
            CHECK_MSG(st == IDL_OK, "%s %s: %s", names[order], set, idl_last_error());
            if (st) continue;
            int pad = (p - H_ % p) % p, top = pad / 2, g = (H_ + pad) / p, nP = g * g;
            int L = regions[c] < nP ? regions[c] : nP;
            for (int i = 0; i < N_; i++) {
                double rel[64] = { 0 }, curves[2][70];
                int unit[HW_];
                for (int q = 0; q < HW_; q++) {
                    unit[q] = ((q / W_ + top) / p) * g + (q % W_ + top) / p;
                    rel[unit[q]] += C_ * ((const float *)E->data)[i * HW_ + q];
                }
                for (int o = 0; o < 2; o++) {
                    int64_t rank[64];
                    ranks(rel, nP, o == 1, rank);
                    float xp[F_];
                    for (int j = 0; j <= L; j++) {
                        for (int e = 0; e < F_; e++)
                            xp[e] = rank[unit[e % HW_]] < j ? 0.5f : xv[i * F_ + e];
                        curves[o][j] = logit(xp, tg[i]);
                    }
                }
                const double *mine = order == 1 ? curves[1] : curves[0];
                double worst = 0, aopc = 0;
                for (int j = 0; j <= L; j++) {
                    worst = fmax(worst,
                                 fabs(((const double *)ev.curve->data)[i * (L + 1) + j] - mine[j]));
                    aopc += (mine[0] - mine[j]) / (L + 1);
                }
                CHECK_MSG(worst < 1e-4, "%s %s sample %d: curve off by %g", names[order], set, i,
                          worst);
                if (order < 2) {
                    CHECK_MSG(fabs(idl_evaluation_score(&ev, names[order], i) - aopc) < 1e-4,
                              "%s %s AOPC %g, reference %g", names[order], set,
                              idl_evaluation_score(&ev, names[order], i), aopc);
                } else {
                    double abpc = trapz(curves[1], L) - trapz(curves[0], L);
                    CHECK_MSG(fabs(idl_evaluation_score(&ev, "abpc", i) - abpc) < 1e-4,
                              "abpc %s: %g, reference %g", set,
                              idl_evaluation_score(&ev, "abpc", i), abpc);
                }
            }
            idl_evaluation_clear(&ev);
        }
    idl_tensor_free(E);
}

static void test_infidelity(idl_session *s, const idl_tensor *x, const int64_t *tg) {
    idl_tensor *E = tensor(4, (int64_t[]){ N_, C_, H_, W_ });
    for (int i = 0; i < N_; i++)
        for (int j = 0; j < F_; j++)
            ((float *)E->data)[i * F_ + j] = g_w[tg[i] * F_ + j];
    const char *sets[] = { "patch_sizes=2,3 stride=1 scaling=0", "patch_sizes=4 stride=2",
                           "fill=black", "patch_sizes=3 stride=2 fill=mean scaling=0" };
    for (int c = 0; c < 4; c++) {
        idl_evaluation ev = { 0 };
        CHECK_OK(eval(s, "infidelity", x, tg, E, sets[c], &ev));
        for (int i = 0; i < N_ && ev.values; i++)
            CHECK_MSG(fabs(idl_evaluation_score(&ev, "infidelity", i)) < 1e-8,
                      "infidelity of the exact attribution (%s) = %g", sets[c],
                      idl_evaluation_score(&ev, "infidelity", i));
        idl_evaluation_clear(&ev);
    }
    for (int j = 0; j < N_ * F_; j++) /* scaled by 3: optimal scaling undoes it */
        ((float *)E->data)[j] *= 3;
    idl_evaluation a = { 0 }, b = { 0 };
    CHECK_OK(eval(s, "infidelity", x, tg, E, "patch_sizes=2 stride=2", &a));
    CHECK_OK(eval(s, "infidelity", x, tg, E, "patch_sizes=2 stride=2 scaling=0", &b));
    for (int i = 0; i < N_ && a.values && b.values; i++) {
        CHECK(fabs(idl_evaluation_score(&a, "infidelity", i)) < 1e-8);
        CHECK(fabs(idl_evaluation_score(&a, "infidelity_beta", i) - 1.0 / 3) < 1e-5);
        CHECK(idl_evaluation_score(&b, "infidelity", i) > 1e-3);
    }
    idl_evaluation_clear(&a);
    idl_evaluation_clear(&b);
    /* indicator=1 with a fill that changes every element: e_p = sum of E over the square */
    idl_tensor_free(E);
}

static void test_sensitivity(idl_session *s, const idl_tensor *x, const int64_t *tg) {
    idl_evaluation ev = { 0 };
    CHECK_OK(eval(s, "sensitivity", x, tg, NULL, "method=saliency n_samples=3 radius=0.5", &ev));
    for (int i = 0; i < N_ && ev.values; i++)
        CHECK_MSG(idl_evaluation_score(&ev, "max_sensitivity", i) < 1e-6,
                  "saliency of a linear model moved: %g",
                  idl_evaluation_score(&ev, "max_sensitivity", i));
    idl_evaluation_clear(&ev);
    /* the probability's gradient does move; a replay of zero noise does not */
    CHECK_OK(eval(s, "sensitivity", x, tg, NULL,
                  "method=saliency method.abs=0 objective=probability n_samples=2", &ev));
    for (int i = 0; i < N_ && ev.values; i++)
        CHECK(idl_evaluation_score(&ev, "avg_sensitivity", i) > 1e-4);
    idl_evaluation_clear(&ev);
    CHECK(eval(s, "sensitivity", x, tg, NULL, "n_samples=2", &ev) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "method") != NULL);
    CHECK(eval(s, "sensitivity", x, tg, NULL, "method=nosuch", &ev) == IDL_ERR_INVALID_ARG);
}

/* ROC-AUC as the fraction of (positive, negative) pairs ordered right, ties one half; AP as
 * sum over distinct thresholds (descending) of (R_k - R_k-1) P_k. */
static void roc_ap_ref(const double *v, const int *lab, int n, double *auc, double *ap) {
    double good = 0, pairs = 0, pos = 0;
    for (int a = 0; a < n; a++) {
        pos += lab[a];
        for (int b = 0; b < n; b++)
            if (lab[a] && !lab[b]) good += v[a] > v[b] ? 1 : v[a] == v[b] ? 0.5 : 0, pairs++;
    }
    *auc = good / pairs;
    double prev = 0, sum = 0, thr[HW_];
    int nt = 0;
    for (int a = 0; a < n; a++) {
        bool seen = false;
        for (int k = 0; k < nt; k++)
            seen = seen || thr[k] == v[a];
        if (!seen) thr[nt++] = v[a];
    }
    for (int k = 0; k < nt; k++) /* descending thresholds */
        for (int l = k + 1; l < nt; l++)
            if (thr[l] > thr[k]) {
                double t = thr[k];
                thr[k] = thr[l], thr[l] = t;
            }
    for (int k = 0; k < nt; k++) {
        double tp = 0, pp = 0;
        for (int a = 0; a < n; a++)
            if (v[a] >= thr[k]) tp += lab[a], pp++;
        sum += (tp / pos - prev) * tp / pp;
        prev = tp / pos;
    }
    *ap = sum;
}

static void test_point_game(void) {
    idl_tensor *E = tensor(3, (int64_t[]){ 3, H_, W_ });
    float *e = E->data;
    uint32_t seed = 3;
    for (int j = 0; j < 3 * HW_; j++)
        e[j] = roundf(tb_frand(&seed) * 4) / 4;      /* ties */
    e[0 * HW_ + 2 * W_ + 3] = 5;                     /* sample 0: maximum at (row 2, col 3) */
    e[1 * HW_ + 7 * W_ + 7] = 5;                     /* sample 1: maximum at (7, 7) */
    e[2 * HW_ + 0] = 5, e[2 * HW_ + 5 * W_ + 5] = 5; /* sample 2: tied maxima, one inside */
    idl_evaluation ev = { 0 };
    const char *sets[] = { "box=2,1,6,5" }; /* columns 2..5, rows 1..4 */
    CHECK_OK(idl_evaluate(NULL, "point_game", NULL, E, sets, 1, &ev));
    if (ev.values) {
        CHECK(idl_evaluation_score(&ev, "hit", 0) == 1);
        CHECK(idl_evaluation_score(&ev, "hit", 1) == 0);
        CHECK(idl_evaluation_score(&ev, "hit", 2) == 0);
        for (int i = 0; i < 3; i++) {
            double v[HW_], auc, ap, mx = -1e30, tp = 0, pp = 0, pos = 0;
            int lab[HW_];
            for (int q = 0; q < HW_; q++) {
                v[q] = e[i * HW_ + q], mx = fmax(mx, v[q]);
                int r = q / W_, c = q % W_;
                lab[q] = r >= 1 && r < 5 && c >= 2 && c < 6;
                pos += lab[q];
            }
            for (int q = 0; q < HW_; q++)
                if (v[q] > 0.25 * mx) tp += lab[q], pp++;
            roc_ap_ref(v, lab, HW_, &auc, &ap);
            double P = tp / pp, R = tp / pos;
            CHECK_MSG(fabs(idl_evaluation_score(&ev, "precision", i) - P) < 1e-12, "precision");
            CHECK_MSG(fabs(idl_evaluation_score(&ev, "recall", i) - R) < 1e-12, "recall");
            CHECK(fabs(idl_evaluation_score(&ev, "f1", i) - 2 * P * R / (P + R + 1e-6)) < 1e-12);
            CHECK_MSG(fabs(idl_evaluation_score(&ev, "roc_auc", i) - auc) < 1e-12,
                      "roc_auc %g, pairs %g", idl_evaluation_score(&ev, "roc_auc", i), auc);
            CHECK_MSG(fabs(idl_evaluation_score(&ev, "ap", i) - ap) < 1e-12, "ap %g, reference %g",
                      idl_evaluation_score(&ev, "ap", i), ap);
        }
    }
    idl_evaluation_clear(&ev);
    /* sample 2's other maximum inside this box: a tie counts as a hit (Quantus) */
    const char *s2[] = { "box=5,5,6,6" };
    CHECK_OK(idl_evaluate(NULL, "point_game", NULL, E, s2, 1, &ev));
    if (ev.values) CHECK(idl_evaluation_score(&ev, "hit", 2) == 1);
    idl_evaluation_clear(&ev);
    /* a mask equal to the box gives the same scores; a perfect map has ROC-AUC 1 and AP 1 */
    idl_tensor *M = tensor(2, (int64_t[]){ H_, W_ });
    for (int q = 0; q < HW_; q++)
        ((float *)M->data)[q] = (q / W_ >= 1 && q / W_ < 5 && q % W_ >= 2 && q % W_ < 6);
    idl_tensor *Pm = tensor(3, (int64_t[]){ 1, H_, W_ });
    memcpy(Pm->data, M->data, sizeof(float) * HW_);
    const char *mask_set[] = { "mask=/dev/null" };
    (void)mask_set;
    idl_point_game_params pp = idl_point_game_params_default();
    pp.mask = M;
    CHECK_OK(idl_eval_point_game(Pm, &pp, &ev));
    if (ev.values) {
        CHECK(idl_evaluation_score(&ev, "roc_auc", 0) == 1);
        CHECK(idl_evaluation_score(&ev, "ap", 0) == 1);
        CHECK(idl_evaluation_score(&ev, "hit", 0) == 1);
        CHECK(idl_evaluation_score(&ev, "precision", 0) == 1);
    }
    idl_evaluation_clear(&ev);
    /* errors: a NaN (its tie groups must not hang), an empty map, no object */
    e[7] = NAN;
    CHECK(idl_evaluate(NULL, "point_game", NULL, E, sets, 1, &ev) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "non-finite") != NULL);
    e[7] = 0;
    idl_tensor *empty = tensor(3, (int64_t[]){ 1, 0, W_ });
    CHECK(idl_evaluate(NULL, "point_game", NULL, empty, sets, 1, &ev) == IDL_ERR_SHAPE);
    idl_tensor_free(empty);
    CHECK(idl_evaluate(NULL, "point_game", NULL, E, NULL, 0, &ev) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "box") != NULL);
    const char *bad[] = { "box=1,2,3" };
    CHECK(idl_evaluate(NULL, "point_game", NULL, E, bad, 1, &ev) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "box=1,2,3") != NULL);
    idl_tensor_free(M);
    idl_tensor_free(Pm);
    idl_tensor_free(E);
}

static void test_local_fidelity(idl_session *s, const idl_tensor *x, const int64_t *tg) {
    idl_explain_request rq = idl_explain_request_default();
    const idl_tensor *in[1] = { x };
    rq.inputs = in;
    rq.n_inputs = 1;
    rq.targets = tg;
    rq.objective = IDL_OBJ_PROBABILITY; /* nonlinear: LIME's R^2 < 1 */
    const char *lset[] = { "segmentation=grid", "grid_rows=2", "grid_cols=4", "num_samples=60" };
    idl_explanation e = { 0 };
    CHECK_OK(idl_explain(s, "lime", &rq, lset, 4, &e));
    if (!e.attribution) return;
    const char *fset[] = { "segmentation=grid", "grid_rows=2", "grid_cols=4", "num_samples=60",
                           "heldout=0" };
    idl_evaluation ev = { 0 };
    CHECK_OK(idl_evaluate(s, "local_fidelity", &rq, e.attribution, fset, 5, &ev));
    for (int i = 0; i < N_ && ev.values; i++)
        CHECK_MSG(fabs(idl_evaluation_score(&ev, "local_fidelity", i) - e.r2[i]) < 1e-6,
                  "local fidelity on LIME's own masks %g, LIME's R^2 %g",
                  idl_evaluation_score(&ev, "local_fidelity", i), e.r2[i]);
    idl_evaluation_clear(&ev);
    idl_explanation_clear(&e);
    /* the logit is linear in the mask: R^2 = 1 on held-out masks too */
    rq.objective = IDL_OBJ_LOGIT;
    CHECK_OK(idl_explain(s, "lime", &rq, lset, 4, &e));
    fset[4] = "heldout=1";
    CHECK_OK(idl_evaluate(s, "local_fidelity", &rq, e.attribution, fset, 5, &ev));
    for (int i = 0; i < N_ && ev.values; i++)
        CHECK_MSG(fabs(idl_evaluation_score(&ev, "local_fidelity", i) - 1) < 1e-5,
                  "held-out fidelity of the exact surrogate %g",
                  idl_evaluation_score(&ev, "local_fidelity", i));
    idl_evaluation_clear(&ev);
    idl_explanation_clear(&e);
}

/* N samples in one call equal N single calls. */
static void test_batch(idl_session *s, const idl_tensor *x, const int64_t *tg) {
    idl_tensor *E = tensor(4, (int64_t[]){ N_, C_, H_, W_ });
    uint32_t seed = 21;
    for (int j = 0; j < N_ * F_; j++)
        ((float *)E->data)[j] = tb_frand(&seed);
    struct {
        const char *metric, *set;
    } cases[] = { { "deletion", "steps=9" },
                  { "insertion", "features_in_step=30 fill=blur blur_sigma=2" },
                  { "abpc", "patch_size=3" },
                  { "infidelity", "patch_sizes=3 stride=2 objective=probability" },
                  { "sensitivity", "method=saliency objective=probability n_samples=2" } };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        idl_evaluation all = { 0 };
        CHECK_OK(eval(s, cases[c].metric, x, tg, E, cases[c].set, &all));
        for (int i = 0; i < N_ && all.values; i++) {
            idl_tensor xi = *x, ei = *E;
            xi.shape[0] = 1, ei.shape[0] = 1;
            xi.data = (float *)x->data + i * F_, ei.data = (float *)E->data + i * F_;
            idl_evaluation one = { 0 };
            CHECK_OK(eval(s, cases[c].metric, &xi, tg + i, &ei, cases[c].set, &one));
            if (c == 0) { /* one sample's explanation without its batch axis */
                idl_tensor e3 = ei;
                e3.ndim = 3;
                memmove(e3.shape, ei.shape + 1, sizeof(int64_t) * 3);
                idl_evaluation three = { 0 };
                CHECK_OK(eval(s, cases[c].metric, &xi, tg + i, &e3, cases[c].set, &three));
                CHECK(three.values && one.values && three.values[0] == one.values[0]);
                idl_evaluation_clear(&three);
            }
            for (int k = 0; k < all.n_scores && one.values; k++) {
                double a = all.values[i * all.n_scores + k], b = one.values[k];
                CHECK_MSG(fabs(a - b) <= 1e-5 * (1 + fabs(b)), "%s %s: batch %g, single %g",
                          cases[c].metric, all.names[k], a, b);
            }
            idl_evaluation_clear(&one);
        }
        idl_evaluation_clear(&all);
    }
    idl_tensor_free(E);
}

static void test_errors(idl_session *s, const idl_tensor *x, const int64_t *tg) {
    idl_evaluation ev = { 0 };
    idl_tensor *bad = tensor(3, (int64_t[]){
                                    N_,
                                    5,
                                    7,
                                });
    idl_tensor *badn = tensor(4, (int64_t[]){ 3, C_, H_, W_ });
    CHECK(eval(s, "nosuch", x, tg, bad, "", &ev) == IDL_ERR_NOT_FOUND);
    CHECK(eval(s, "deletion", x, tg, badn, "", &ev) == IDL_ERR_SHAPE);
    CHECK(strstr(idl_last_error(), "fits neither") != NULL);
    /* channels last: as many values as the input, another layout */
    idl_tensor *nhwc = tensor(4, (int64_t[]){ N_, H_, W_, C_ });
    CHECK(eval(s, "deletion", x, tg, nhwc, "", &ev) == IDL_ERR_SHAPE);
    idl_tensor_free(nhwc);
    /* a zero explanation: every sensitivity draw is undefined */
    idl_tensor *zero = tensor(4, (int64_t[]){ N_, C_, H_, W_ });
    memset(zero->data, 0, sizeof(float) * N_ * F_);
    CHECK_OK(eval(s, "sensitivity", x, tg, zero, "method=saliency n_samples=2", &ev));
    for (int i = 0; i < N_ && ev.values; i++)
        CHECK(isnan(idl_evaluation_score(&ev, "max_sensitivity", i)) &&
              isnan(idl_evaluation_score(&ev, "avg_sensitivity", i)));
    idl_evaluation_clear(&ev);
    idl_tensor_free(zero);
    CHECK(eval(s, "deletion", x, tg, NULL, "", &ev) == IDL_ERR_INVALID_ARG);
    CHECK(eval(s, "deletion", x, tg, bad, "steps=0", &ev) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "steps=0") != NULL);
    CHECK(eval(s, "morf", x, tg, bad, "window=3", &ev) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "window") != NULL);
    CHECK(eval(s, "deletion", x, tg, bad, "fill=nosuch.npy", &ev) != IDL_OK);
    CHECK(strstr(idl_last_error(), "nosuch.npy") != NULL);
    CHECK(eval(s, "deletion", x, tg, bad, "steps=65", &ev) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "64 features") != NULL);
    CHECK(eval(s, "infidelity", x, tg, bad, "patch_sizes=9", &ev) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "fits") != NULL);
    ((float *)bad->data)[3] = NAN;
    CHECK(eval(s, "deletion", x, tg, bad, "", &ev) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "non-finite") != NULL);
    CHECK(eval(s, "deletion", x, tg, bad, "layer=foo", &ev) == IDL_ERR_INVALID_ARG);
    CHECK(ev.values == NULL && ev.curve == NULL);
    idl_tensor_free(bad);
    idl_tensor_free(badn);
}

/* A one-channel input: reduce=abs_sum ranks by |E| (a signed map and its absolute value give the
 * same curve); InterpretDL's variant keeps the sign of a one-channel map (it squeezes it). */
static void test_one_channel(void) {
    float w1[K_ * HW_], b1[K_];
    uint32_t seed = 31;
    idl_model *m = tb_linear_model_random(1, H_, W_, K_, 29, 0.5f, w1, b1);
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    idl_tensor *x = tensor(4, (int64_t[]){ N_, 1, H_, W_ });
    idl_tensor *E = tensor(4, (int64_t[]){ N_, 1, H_, W_ });
    idl_tensor *A = tensor(4, (int64_t[]){ N_, 1, H_, W_ });
    for (int j = 0; j < N_ * HW_; j++) {
        ((float *)x->data)[j] = tb_frand(&seed);
        ((float *)E->data)[j] = tb_frand(&seed);
        ((float *)A->data)[j] = fabsf(((float *)E->data)[j]);
    }
    int64_t tg[N_] = { 0, 2 };
    idl_evaluation a = { 0 }, b = { 0 }, c = { 0 };
    CHECK_OK(eval(s, "deletion", x, tg, E, "steps=8 reduce=abs_sum", &a));
    CHECK_OK(eval(s, "deletion", x, tg, A, "steps=8", &b));
    CHECK_OK(eval(s, "deletion", x, tg, E, "steps=8", &c));
    for (int i = 0; i < N_ && a.values && b.values && c.values; i++) {
        CHECK(idl_evaluation_score(&a, "deletion", i) == idl_evaluation_score(&b, "deletion", i));
        CHECK(idl_evaluation_score(&a, "deletion", i) != idl_evaluation_score(&c, "deletion", i));
    }
    idl_evaluation_clear(&a);
    idl_evaluation_clear(&b);
    idl_evaluation_clear(&c);
    CHECK_OK(eval(s, "deletion", x, tg, E, "steps=8 variant=interpretdl", &a));
    CHECK_OK(eval(s, "deletion", x, tg, A, "steps=8 variant=interpretdl", &b));
    for (int i = 0; i < N_ && a.values && b.values; i++)
        CHECK(idl_evaluation_score(&a, "deletion", i) != idl_evaluation_score(&b, "deletion", i));
    idl_evaluation_clear(&a);
    idl_evaluation_clear(&b);
    idl_tensor_free(x);
    idl_tensor_free(E);
    idl_tensor_free(A);
    idl_session_free(s);
    idl_model_free(m);
}

static void invariants(void) {
    idl_model *m = linear_model();
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    idl_tensor *x = tensor(4, (int64_t[]){ N_, C_, H_, W_ });
    uint32_t seed = 1;
    for (int j = 0; j < N_ * F_; j++)
        ((float *)x->data)[j] = tb_frand(&seed);
    int64_t tg[N_] = { 1, 2 };
    test_deletion(s, x, tg);
    test_deletion_interpretdl(s, x, tg);
    test_region(s, x, tg);
    test_infidelity(s, x, tg);
    test_sensitivity(s, x, tg);
    test_point_game();
    test_local_fidelity(s, x, tg);
    test_batch(s, x, tg);
    test_errors(s, x, tg);
    test_one_channel();
    idl_tensor_free(x);
    idl_session_free(s);
    idl_model_free(m);
}

/* ---- parity with the fixtures of tests/reference/make_evaluate.py ---- */

static void parity_case(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/case.txt", dir);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "%s: no case.txt", dir);
    if (!f) return;
    idl_model *m = NULL;
    idl_session *s = NULL;
    idl_tensor *x = NULL, *tt = NULL;
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    bool have_model = idl_model_load(path, NULL, &m) == IDL_OK;
    if (have_model) CHECK_OK(idl_session_new(m, NULL, &s));
    snprintf(path, sizeof path, "%s/input.npy", dir);
    if (have_model) CHECK_OK(idl_npy_load(path, &x));
    snprintf(path, sizeof path, "%s/targets.npy", dir);
    if (have_model) CHECK_OK(idl_npy_load(path, &tt));
    int64_t tg[64];
    for (int64_t i = 0; tt && i < idl_tensor_numel(tt) && i < 64; i++)
        tg[i] = ((const int64_t *)tt->data)[i];
    char line[4096];
    int lines = 0;
    if (chdir(dir) != 0) abort(); /* settings name files relative to the case */
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        char *tok[40];
        int nt = 0;
        for (char *t = strtok(line, " "); t && nt < 40; t = strtok(NULL, " "))
            tok[nt++] = t;
        if (nt < 3) continue;
        const char *metric = tok[0], *expected = tok[1], *score = tok[2], *expl = NULL;
        const char *sets[40];
        int ns = 0;
        double tol = 1e-4;
        for (int k = 3; k < nt; k++) {
            if (!strncmp(tok[k], "explanation=", 12))
                expl = tok[k] + 12;
            else if (!strncmp(tok[k], "tol=", 4))
                tol = atof(tok[k] + 4);
            else
                sets[ns++] = tok[k];
        }
        idl_tensor *E = NULL, *want = NULL;
        CHECK_OK(idl_npy_load(expl, &E));
        CHECK_OK(idl_npy_load(expected, &want));
        if (!E || !want) continue;
        bool pg = !strcmp(metric, "point_game");
        idl_explain_request rq = idl_explain_request_default();
        const idl_tensor *in[1] = { x };
        rq.inputs = in;
        rq.n_inputs = 1;
        rq.targets = tg;
        idl_evaluation ev = { 0 };
        idl_status st = idl_evaluate(pg ? NULL : s, metric, pg ? NULL : &rq, E, sets, ns, &ev);
        CHECK_MSG(st == IDL_OK, "%s: %s %s: %s", dir, metric, expected, idl_last_error());
        lines++;
        if (!st) {
            bool curve = !strcmp(score, "curve");
            /* .npy float64 is read as float32 (npy.c): the references keep 7 digits */
            const float *w = want->data;
            int64_t cols = curve ? (ev.curve ? ev.curve->shape[1] : -1) : 1;
            CHECK_MSG(idl_tensor_numel(want) == ev.n * cols,
                      "%s %s: %lld values expected, %lld "
                      "computed",
                      metric, expected, (long long)idl_tensor_numel(want),
                      (long long)(ev.n * cols));
            double worst = 0;
            for (int64_t i = 0; i < ev.n && idl_tensor_numel(want) == ev.n * cols; i++)
                for (int64_t j = 0; j < cols; j++) {
                    double got = curve ? ((const double *)ev.curve->data)[i * cols + j]
                                       : idl_evaluation_score(&ev, score, i);
                    double ref = w[i * cols + j];
                    double err =
                        isnan(ref) && isnan(got) ? 0 : fabs(got - ref) / (1e-6 + fabs(ref));
                    if (fabs(got - ref) < 1e-7) err = 0;
                    worst = fmax(worst, isnan(err) ? INFINITY : err);
                }
            CHECK_MSG(worst <= tol, "%s %s %s: worst relative error %g > %g", metric, expected,
                      score, worst, tol);
            printf("  %-12s %-28s %-16s worst %.2g\n", metric, expected, score, worst);
        }
        idl_evaluation_clear(&ev);
        idl_tensor_free(E);
        idl_tensor_free(want);
    }
    fclose(f);
    CHECK_MSG(lines > 0, "%s: no lines", dir);
    idl_tensor_free(x);
    idl_tensor_free(tt);
    idl_session_free(s);
    idl_model_free(m);
}

static void parity(const char *root) {
    DIR *d = opendir(root);
    CHECK_MSG(d != NULL, "cannot open %s", root);
    if (!d) return;
    char cwd[4096];
    if (!getcwd(cwd, sizeof cwd)) abort();
    struct dirent *de;
    int cases = 0;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", root, de->d_name);
        printf("case %s\n", de->d_name);
        parity_case(dir);
        if (chdir(cwd) != 0) abort();
        cases++;
    }
    closedir(d);
    CHECK_MSG(cases > 0, "no cases in %s", root);
}

int main(int argc, char **argv) {
    bool inv = false;
    const char *par = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--invariants"))
            inv = true;
        else if (!strcmp(argv[i], "--parity") && i + 1 < argc)
            par = argv[++i];
    }
    if (!inv && !par) inv = true;
    if (inv) invariants();
    if (par) parity(par);
    TEST_SUMMARY();
}

/* gradcheck.c — checks every differentiable op's backward against double-precision central
 * differences of its forward, over the cases in gradcheck_*.c, and checks that every op with a
 * backward in the registry has at least one case. */
#include "gradcheck.h"
#include "harness.h"
#include "ops/op.h"
#include "session/session_internal.h" /* the lean plan's arena, poisoned */

#include <stdint.h>

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static double objective(idl_session *s, idl_tensor **in, int n_in, int out, const float *seed) {
    if (idl_session_forward(s, (const idl_tensor *const *)in, NULL, n_in) != IDL_OK) return NAN;
    const idl_tensor *y = idl_session_output(s, out);
    double acc = 0;
    const float *yv = y->data;
    for (int64_t i = 0; i < idl_tensor_numel(y); i++)
        acc += (double)yv[i] * seed[i];
    return acc;
}

static void run_case(const gc_case *c) {
    tb_model *b = tb_new(13);
    c->build(b);
    idl_model *m = tb_load(b);
    tb_free(b);
    CHECK_MSG(m != NULL, "%s: model did not load", c->name);
    if (!m) return;
    idl_session *s = NULL;
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = 1;
    if (idl_session_new(m, &so, &s) != IDL_OK) {
        CHECK_MSG(0, "%s: %s", c->name, idl_last_error());
        idl_model_free(m);
        return;
    }
    int n_in = idl_model_n_inputs(m);
    idl_tensor *in[16] = { 0 };
    for (int i = 0; i < n_in; i++) {
        idl_value_info vi;
        idl_model_input(m, i, &vi);
        idl_tensor_new(IDL_DT_F32, vi.ndim, vi.shape, &in[i]);
        float *d = in[i]->data;
        int64_t n = idl_tensor_numel(in[i]);
        for (int64_t k = 0; k < n; k++) {
            if (c->flags & GC_POSITIVE)
                d[k] = (float)(0.5 + 1.5 * urand());
            else if (c->flags & GC_SPREAD)
                d[k] = (float)(-2.0 + 4.0 * (double)k / (double)(n > 1 ? n - 1 : 1));
            else
                d[k] = (float)((urand() < 0.5 ? -1 : 1) * (0.1 + 1.9 * urand()));
        }
        if (c->flags & GC_SPREAD)
            for (int64_t k = n - 1; k > 0; k--) {
                int64_t j = (int64_t)(urand() * (double)(k + 1));
                float t = d[k];
                d[k] = d[j];
                d[j] = t;
            }
    }
    if (idl_session_forward(s, (const idl_tensor *const *)in, NULL, n_in) != IDL_OK) {
        CHECK_MSG(0, "%s: forward: %s", c->name, idl_last_error());
        goto done;
    }
    for (int o = 0; o < idl_model_n_outputs(m); o++) {
        const idl_tensor *y = idl_session_output(s, o);
        if (y->dtype != IDL_DT_F32) continue;
        int64_t ny = idl_tensor_numel(y);
        float *seed = malloc(sizeof(float) * (size_t)(ny + 1));
        for (int64_t k = 0; k < ny; k++)
            seed[k] = (float)(urand() * 2 - 1);
        idl_tensor st = idl_tensor_wrap(IDL_DT_F32, y->ndim, y->shape, seed);
        idl_objective obj = idl_objective_default();
        obj.kind = IDL_OBJ_SEED;
        obj.output = o;
        obj.seed = &st;
        const char *wrt[16];
        for (int i = 0; i < n_in; i++)
            wrt[i] = idl_model_input_name(m, i);
        if (idl_session_backward(s, &obj, wrt, n_in) != IDL_OK) {
            CHECK_MSG(0, "%s: backward: %s", c->name, idl_last_error());
            free(seed);
            goto done;
        }
        /* copy analytic gradients before the numeric forwards overwrite the session */
        for (int i = 0; i < n_in; i++) {
            const idl_tensor *g = idl_session_grad(s, wrt[i]);
            int64_t n = idl_tensor_numel(in[i]);
            float *ana = malloc(sizeof(float) * (size_t)(n + 1));
            float *num = malloc(sizeof(float) * (size_t)(n + 1));
            memcpy(ana, g->data, sizeof(float) * (size_t)n);
            float *x = in[i]->data;
            const double eps = 1e-3;
            for (int64_t k = 0; k < n; k++) {
                float x0 = x[k];
                x[k] = (float)(x0 + eps);
                double fp = objective(s, in, n_in, o, seed);
                x[k] = (float)(x0 - eps);
                double fm = objective(s, in, n_in, o, seed);
                x[k] = x0;
                num[k] = (float)((fp - fm) / (2 * eps));
            }
            char label[256];
            snprintf(label, sizeof label, "%s: d out%d / d %s", c->name, o, wrt[i]);
            double tol = c->tol > 0 ? c->tol : 1e-2;
            th_allclose(label, ana, num, n, tol, 1e-3);
            free(ana);
            free(num);
            /* restore the forward state for the next input's analytic gradient */
            idl_session_forward(s, (const idl_tensor *const *)in, NULL, n_in);
            idl_session_backward(s, &obj, wrt, n_in);
        }
        free(seed);
    }
done:
    for (int i = 0; i < n_in; i++)
        idl_tensor_free(in[i]);
    idl_session_free(s);
    idl_model_free(m);
}

/* The case's op with its inputs and outputs made intermediate values (tb_wrap_io) on a
 * save_for_backward session (a lean plan: only what its bwd_reads declares is kept, the rest lies
 * in an arena, here overwritten with NaN after the forward): the gradients w.r.t. every input
 * equal the full session's to the bit, so the op's backward reads nothing it did not declare. */
static void run_lean(const gc_case *c) {
    tb_model *b = tb_new(13);
    c->build(b);
    tb_wrap_io(b);
    idl_model *m = tb_load(b);
    tb_free(b);
    CHECK_MSG(m != NULL, "%s (wrapped): model did not load", c->name);
    if (!m) return;
    idl_session *s[2] = { NULL, NULL };
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = 1;
    for (int k = 0; k < 2; k++) {
        so.save_for_backward = k;
        CHECK_MSG(idl_session_new(m, &so, &s[k]) == IDL_OK, "%s: %s", c->name, idl_last_error());
    }
    int n_in = idl_model_n_inputs(m);
    idl_tensor *in[16] = { 0 };
    const char *wrt[16];
    for (int i = 0; i < n_in && s[1]; i++) {
        idl_value_info vi;
        idl_model_input(m, i, &vi);
        idl_tensor_new(IDL_DT_F32, vi.ndim, vi.shape, &in[i]);
        float *d = in[i]->data;
        for (int64_t k = 0; k < idl_tensor_numel(in[i]); k++)
            d[k] = (c->flags & GC_POSITIVE)
                       ? (float)(0.5 + 1.5 * urand())
                       : (float)((urand() < 0.5 ? -1 : 1) * (0.1 + 1.9 * urand()));
        wrt[i] = idl_model_input_name(m, i);
    }
    for (int o = 0; s[1] && o < idl_model_n_outputs(m); o++) {
        float *seed = NULL;
        int ok = 1;
        for (int k = 0; k < 2 && ok; k++) {
            ok = idl_session_forward(s[k], (const idl_tensor *const *)in, NULL, n_in) == IDL_OK;
            const idl_tensor *y = ok ? idl_session_output(s[k], o) : NULL;
            if (!y || y->dtype != IDL_DT_F32) break;
            int64_t ny = idl_tensor_numel(y);
            if (!seed) {
                seed = malloc(sizeof(float) * (size_t)(ny + 1));
                for (int64_t j = 0; j < ny; j++)
                    seed[j] = (float)(urand() * 2 - 1);
            }
            if (k == 1) idl__plan_poison_arena(s[1]->plan);
            idl_tensor st = idl_tensor_wrap(IDL_DT_F32, y->ndim, y->shape, seed);
            idl_objective obj = idl_objective_default();
            obj.kind = IDL_OBJ_SEED;
            obj.output = o;
            obj.seed = &st;
            ok = idl_session_backward(s[k], &obj, wrt, n_in) == IDL_OK;
        }
        CHECK_MSG(ok, "%s (save_for_backward): %s", c->name, idl_last_error());
        for (int i = 0; ok && seed && i < n_in; i++) {
            const idl_tensor *g0 = idl_session_grad(s[0], wrt[i]),
                             *g1 = idl_session_grad(s[1], wrt[i]);
            int same = g0 && g1 && idl_tensor_numel(g0) == idl_tensor_numel(g1) &&
                       !memcmp(g0->data, g1->data, sizeof(float) * (size_t)idl_tensor_numel(g0));
            CHECK_MSG(same,
                      "%s: d out%d / d %s on a save_for_backward session differs from the "
                      "full session's",
                      c->name, o, wrt[i]);
        }
        free(seed);
    }
    for (int i = 0; i < n_in; i++)
        idl_tensor_free(in[i]);
    for (int k = 0; k < 2; k++)
        idl_session_free(s[k]);
    idl_model_free(m);
}

int main(int argc, char **argv) {
    const gc_case *tables[] = { gc_cases_elementwise, gc_cases_binary,    gc_cases_softmax_reduce,
                                gc_cases_shape,       gc_cases_conv_pool, gc_cases_transformer };
    const char *only = argc > 1 ? argv[1] : NULL;
    int n_cases = 0;
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
        for (const gc_case *c = tables[t]; c->name; c++) {
            if (only && !strstr(c->name, only)) continue;
            int before = th_failed;
            run_case(c);
            run_lean(c);
            n_cases++;
            printf("%-40s %s\n", c->name, th_failed == before ? "ok" : "FAILED");
        }
    /* coverage: every op with a backward has a case */
    if (!only)
        for (int k = 0; k < idl__n_ops; k++) {
            if (!idl__ops[k]->backward) continue;
            int found = 0;
            for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++)
                for (const gc_case *c = tables[t]; c->name; c++)
                    if (!strcmp(c->op, idl__ops[k]->name)) found = 1;
            CHECK_MSG(found, "op %s has a backward but no gradcheck case", idl__ops[k]->name);
        }
    printf("%d cases\n", n_cases);
    TEST_SUMMARY();
}

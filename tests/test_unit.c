#define _DEFAULT_SOURCE
/* test_unit.c — unit tests of the public API on tiny models: .npy round trips, model queries,
 * forward, gradients (objectives checked against closed forms), gradients at intermediate and
 * parameter tensors, taps that read and replace, batch independence, abort, allocator hooks. */
#include "harness.h"
#include "interpretdl/interpretdl.h"
#include "model_builder.h"
#include "ops/op.h"
#include "ops/vmath.h"
#include "ops/winograd.h"
#include "session/session_internal.h" /* to count the values a plan keeps blocked */

#include <unistd.h>

/* y = sigmoid(relu(x)), x: (N, 3) with a symbolic batch */
static idl_model *chain_model(void) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 2, (int64_t[]){ -1, 3 });
    tb_node(b, "Relu", "x", "r");
    tb_node(b, "Sigmoid", "r", "y");
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

/* y = prelu(x, slope) with slope an initializer (C=3) */
static idl_model *prelu_model(void) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 2, (int64_t[]){ -1, 3 });
    float slope[3] = { 0.1f, 0.2f, 0.3f };
    tb_init_f32(b, "slope", 1, (int64_t[]){ 3 }, slope);
    tb_node(b, "PRelu", "x,slope", "y");
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

static void test_npy(void) {
    char dir[] = "/tmp/idl_unit_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/a.npy", dir);
    idl_tensor *t = NULL, *u = NULL;
    int64_t shape[3] = { 2, 3, 4 };
    CHECK_OK(idl_tensor_new(IDL_DT_F32, 3, shape, &t));
    for (int i = 0; i < 24; i++)
        ((float *)t->data)[i] = (float)i * 0.5f - 3;
    CHECK_OK(idl_npy_save(path, t));
    CHECK_OK(idl_npy_load(path, &u));
    CHECK(u && u->ndim == 3 && u->shape[0] == 2 && u->shape[2] == 4 && u->dtype == IDL_DT_F32);
    CHECK(u && memcmp(t->data, u->data, 24 * 4) == 0);
    idl_tensor_free(u);
    /* scalar and 1-D int64 */
    idl_tensor *s = NULL;
    CHECK_OK(idl_tensor_new(IDL_DT_I64, 1, (int64_t[]){ 5 }, &s));
    ((int64_t *)s->data)[4] = -7;
    CHECK_OK(idl_npy_save(path, s));
    CHECK_OK(idl_npy_load(path, &u));
    CHECK(u && u->ndim == 1 && u->shape[0] == 5 && ((int64_t *)u->data)[4] == -7);
    idl_tensor_free(u);
    idl_tensor_free(s);
    /* malformed */
    const char bad1[] = "\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}";
    CHECK(idl_npy_load_mem(bad1, sizeof bad1 - 1, &u) == IDL_ERR_PARSE && u == NULL);
    CHECK(idl_npy_load_mem("hello", 5, &u) == IDL_ERR_PARSE);
    char hdr[] =
        "\x93NUMPY\x01\x00\x36\x00{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }    \n";
    CHECK(idl_npy_load_mem(hdr, sizeof hdr - 1, &u) == IDL_ERR_UNSUPPORTED);
    char hdr2[] =
        "\x93NUMPY\x01\x00\x36\x00{'descr': '<f4', 'fortran_order': False, 'shape': (9,), }    \n";
    CHECK(idl_npy_load_mem(hdr2, sizeof hdr2 - 1, &u) == IDL_ERR_PARSE); /* data truncated */
    CHECK(strstr(idl_last_error(), "truncated") != NULL);
    CHECK(idl_npy_load("/nonexistent/x.npy", &u) == IDL_ERR_IO);
    idl_tensor_free(t);
    unlink(path);
    rmdir(dir);
}

static void test_model_queries(void) {
    idl_model *m = chain_model();
    CHECK(m != NULL);
    if (!m) return;
    CHECK_EQ_INT(idl_model_n_inputs(m), 1);
    CHECK_EQ_INT(idl_model_n_outputs(m), 1);
    CHECK_EQ_INT(idl_model_n_nodes(m), 2);
    CHECK(!strcmp(idl_model_node_op(m, 0), "Relu"));
    CHECK(!strcmp(idl_model_node_output(m, 0, 0), "r"));
    CHECK_EQ_INT(idl_model_opset(m), 13);
    idl_value_info vi;
    CHECK_OK(idl_model_input(m, 0, &vi));
    CHECK(vi.ndim == 2 && vi.shape[0] == -1 && vi.shape[1] == 3 && vi.dim_param[0] &&
          !strcmp(vi.dim_param[0], "d0"));
    CHECK(idl_model_has_tensor(m, "r") && !idl_model_has_tensor(m, "q"));
    CHECK(idl_op_supported("Relu", 13) && !idl_op_supported("NoSuchOp", 13));
    /* the op list is sorted and NULL-terminated */
    const char *const *ops = idl_supported_ops();
    int sorted = 1, n = 0;
    for (; ops[n]; n++)
        if (n && strcmp(ops[n - 1], ops[n]) >= 0) sorted = 0;
    CHECK(sorted && n > 40);
    idl_model_free(m);
}

static void test_forward_and_grad(void) {
    idl_model *m = chain_model();
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    float xv[6] = { 1, -2, 3, 0.5f, 2, -1 };
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 2, 3 }, xv);
    const idl_tensor *in[1] = { &x };
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    const idl_tensor *y = idl_session_output(s, 0);
    CHECK(y && y->shape[0] == 2 && y->shape[1] == 3);
    for (int i = 0; i < 6; i++) {
        float r = xv[i] > 0 ? xv[i] : 0;
        CHECK(fabsf(((float *)y->data)[i] - 1.0f / (1.0f + expf(-r))) < 1e-6f);
    }
    /* intermediate tensor read */
    const idl_tensor *r = idl_session_tensor(s, "r");
    CHECK(r && ((float *)r->data)[1] == 0.0f && ((float *)r->data)[2] == 3.0f);
    CHECK(idl_session_tensor(s, "rr") == NULL);
    CHECK(strstr(idl_last_error(), "'r'") != NULL); /* close match offered */

    /* objectives against closed forms: y is the "logits" here */
    const char *wrt[2] = { "x", "r" };
    idl_objective_kind kinds[3] = { IDL_OBJ_LOGIT, IDL_OBJ_PROBABILITY, IDL_OBJ_LOG_PROBABILITY };
    int64_t targets[2] = { 0, 1 };
    for (int k = 0; k < 3; k++) {
        idl_objective obj = idl_objective_default();
        obj.kind = kinds[k];
        obj.targets = targets;
        CHECK_OK(idl_session_backward(s, &obj, wrt, 2));
        const idl_tensor *gx = idl_session_grad(s, "x"), *gr = idl_session_grad(s, "r");
        CHECK(gx && gr);
        if (!gx || !gr) continue;
        const float *yv = y->data;
        for (int b = 0; b < 2; b++) {
            double mx = -1e30, sum = 0;
            for (int j = 0; j < 3; j++)
                mx = fmax(mx, yv[b * 3 + j]);
            for (int j = 0; j < 3; j++)
                sum += exp(yv[b * 3 + j] - mx);
            double pt = exp(yv[b * 3 + targets[b]] - mx) / sum;
            for (int j = 0; j < 3; j++) {
                double pj = exp(yv[b * 3 + j] - mx) / sum, dy;
                double delta = j == targets[b] ? 1.0 : 0.0;
                if (k == 0)
                    dy = delta;
                else if (k == 1)
                    dy = pt * (delta - pj);
                else
                    dy = delta - pj;
                double ys = yv[b * 3 + j];
                double dr = dy * ys * (1 - ys);
                double dx = xv[b * 3 + j] > 0 ? dr : 0;
                CHECK_MSG(fabs(((float *)gr->data)[b * 3 + j] - dr) < 1e-6, "kind %d dr[%d,%d]", k,
                          b, j);
                CHECK_MSG(fabs(((float *)gx->data)[b * 3 + j] - dx) < 1e-6, "kind %d dx[%d,%d]", k,
                          b, j);
            }
        }
        const idl_tensor *ov = idl_session_objective_values(s);
        CHECK(ov && ov->shape[0] == 2);
    }
    /* default target = argmax of the clean pass */
    idl_objective obj = idl_objective_default();
    CHECK_OK(idl_session_backward(s, &obj, wrt, 1));
    int64_t nt;
    const int64_t *t = idl_session_targets(s, &nt);
    CHECK(nt == 2 && t[0] == 2 && t[1] == 1);
    /* bad target, unknown wrt, seed shape */
    int64_t bad[2] = { 0, 3 };
    obj.targets = bad;
    CHECK(idl_session_backward(s, &obj, wrt, 1) == IDL_ERR_INVALID_ARG);
    obj.targets = NULL;
    const char *nowrt[1] = { "xx" };
    CHECK(idl_session_backward(s, &obj, nowrt, 1) == IDL_ERR_NOT_FOUND);
    CHECK(strstr(idl_last_error(), "'x'") != NULL);
    float sv[3] = { 1, 1, 1 };
    idl_tensor seed = idl_tensor_wrap(IDL_DT_F32, 1, (int64_t[]){ 3 }, sv);
    obj.kind = IDL_OBJ_SEED;
    obj.seed = &seed;
    CHECK(idl_session_backward(s, &obj, wrt, 1) == IDL_ERR_INVALID_ARG);

    /* batch independence: sample 1 alone gives the same gradient as in the batch */
    obj = idl_objective_default();
    obj.kind = IDL_OBJ_LOG_PROBABILITY;
    obj.targets = targets;
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    CHECK_OK(idl_session_backward(s, &obj, wrt, 1));
    float batch_g[6];
    memcpy(batch_g, idl_session_grad(s, "x")->data, sizeof batch_g);
    idl_tensor x1 = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 1, 3 }, xv + 3);
    const idl_tensor *in1[1] = { &x1 };
    int64_t t1 = targets[1];
    obj.targets = &t1;
    CHECK_OK(idl_session_forward(s, in1, NULL, 1));
    CHECK_OK(idl_session_backward(s, &obj, wrt, 1));
    CHECK(memcmp(batch_g + 3, idl_session_grad(s, "x")->data, 3 * sizeof(float)) == 0);

    /* input errors */
    float w4[8] = { 0 };
    idl_tensor xw = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 2, 4 }, w4);
    const idl_tensor *inw[1] = { &xw };
    CHECK(idl_session_forward(s, inw, NULL, 1) == IDL_ERR_SHAPE);
    CHECK(strstr(idl_last_error(), "'x'") != NULL);
    idl_tensor xr = idl_tensor_wrap(IDL_DT_F32, 1, (int64_t[]){ 3 }, w4);
    inw[0] = &xr;
    CHECK(idl_session_forward(s, inw, NULL, 1) == IDL_ERR_SHAPE);
    int64_t iv[6] = { 0 };
    idl_tensor xi = idl_tensor_wrap(IDL_DT_I64, 2, (int64_t[]){ 2, 3 }, iv);
    inw[0] = &xi;
    CHECK(idl_session_forward(s, inw, NULL, 1) == IDL_ERR_INVALID_ARG);
    CHECK(idl_session_forward(s, in, NULL, 0) == IDL_ERR_INVALID_ARG);
    const char *names[1] = { "nope" };
    CHECK(idl_session_forward(s, in, names, 1) == IDL_ERR_INVALID_ARG);
    names[0] = "x";
    CHECK_OK(idl_session_forward(s, in, names, 1));
    idl_session_free(s);
    idl_model_free(m);
}

static void scale_tap(const char *name, idl_tensor *v, void *user) {
    float f = *(float *)user;
    float *d = v->data;
    for (int64_t i = 0; i < idl_tensor_numel(v); i++)
        d[i] *= f;
    (void)name;
}

static void test_taps(void) {
    idl_model *m = chain_model();
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    float xv[3] = { 1, -2, 3 };
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 1, 3 }, xv);
    const idl_tensor *in[1] = { &x };
    float factor = 0.5f;
    CHECK(idl_session_set_tap(s, "nope", scale_tap, &factor) == IDL_ERR_NOT_FOUND);
    CHECK_OK(idl_session_set_tap(s, "r", scale_tap, &factor));
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    const float *y = idl_session_output(s, 0)->data;
    CHECK(fabsf(y[0] - 1.0f / (1.0f + expf(-0.5f))) < 1e-6f);
    CHECK(fabsf(y[2] - 1.0f / (1.0f + expf(-1.5f))) < 1e-6f);
    /* gradient at the replaced tensor: sigmoid'(r_scaled) */
    idl_objective obj = idl_objective_default();
    obj.kind = IDL_OBJ_LOGIT;
    int64_t t = 2;
    obj.targets = &t;
    const char *wrt[1] = { "r" };
    CHECK_OK(idl_session_backward(s, &obj, wrt, 1));
    float sg = 1.0f / (1.0f + expf(-1.5f));
    CHECK(fabsf(((float *)idl_session_grad(s, "r")->data)[2] - sg * (1 - sg)) < 1e-6f);
    /* a tap on the graph input */
    CHECK_OK(idl_session_set_tap(s, "r", NULL, NULL));
    CHECK_OK(idl_session_set_tap(s, "x", scale_tap, &factor));
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    y = idl_session_output(s, 0)->data;
    CHECK(fabsf(y[2] - 1.0f / (1.0f + expf(-1.5f))) < 1e-6f);
    CHECK(xv[2] == 3.0f); /* the caller's buffer is untouched */
    idl_session_free(s);
    idl_model_free(m);
}

static void test_param_grad(void) {
    idl_model *m = prelu_model();
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    float xv[6] = { -1, -2, 3, -4, 5, -6 };
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 2, 3 }, xv);
    const idl_tensor *in[1] = { &x };
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    float ones[6] = { 1, 1, 1, 1, 1, 1 };
    idl_tensor seed = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 2, 3 }, ones);
    idl_objective obj = idl_objective_default();
    obj.kind = IDL_OBJ_SEED;
    obj.seed = &seed;
    const char *wrt[1] = { "slope" };
    CHECK_OK(idl_session_backward(s, &obj, wrt, 1));
    const float *g = idl_session_grad(s, "slope")->data;
    /* d/d slope_c sum(prelu) = sum over negative x of x */
    CHECK(g[0] == -1.0f + -4.0f && g[1] == -2.0f && g[2] == -6.0f);
    idl_session_free(s);
    idl_model_free(m);
}

static int abort_after(void *user) {
    int *n = user;
    return (*n)-- <= 0;
}

static void test_abort(void) {
    idl_model *m = chain_model();
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    float xv[3] = { 1, -2, 3 };
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 1, 3 }, xv);
    const idl_tensor *in[1] = { &x };
    int budget = 1;
    idl_session_set_abort(s, abort_after, &budget);
    CHECK(idl_session_forward(s, in, NULL, 1) == IDL_ERR_ABORTED);
    CHECK(idl_session_output(s, 0) == NULL);
    idl_session_set_abort(s, NULL, NULL);
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    idl_session_free(s);
    idl_model_free(m);
}

/* allocator hooks: count, and fail the n-th allocation */
static long g_allocs, g_fail_at = -1, g_live;
static void *t_malloc(size_t n, void *u) {
    (void)u;
    if (g_allocs++ == g_fail_at) return NULL;
    g_live++;
    return malloc(n);
}
static void t_free(void *p, void *u) {
    (void)u;
    g_live--;
    free(p);
}

static idl_status full_run(const uint8_t *buf, size_t len) {
    idl_model *m = NULL;
    idl_session *s = NULL;
    idl_status st = idl_model_load_mem(buf, len, NULL, &m);
    if (!st) st = idl_session_new(m, NULL, &s);
    float xv[6] = { 1, -2, 3, 4, -5, 6 };
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 2, 3 }, xv);
    const idl_tensor *in[1] = { &x };
    if (!st) st = idl_session_forward(s, in, NULL, 1);
    idl_objective obj = idl_objective_default();
    const char *wrt[2] = { "x", "slope" };
    if (!st) st = idl_session_backward(s, &obj, wrt, 2);
    idl_session_free(s);
    idl_model_free(m);
    return st;
}

static void test_oom_sweep(void) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 2, (int64_t[]){ -1, 3 });
    float slope[3] = { 0.1f, 0.2f, 0.3f };
    tb_init_f32(b, "slope", 1, (int64_t[]){ 3 }, slope);
    tb_node(b, "PRelu", "x,slope", "p");
    tb_node(b, "Sigmoid", "p", "y");
    tb_output(b, "y");
    uint8_t *buf;
    size_t len;
    tb_pack(b, &buf, &len);
    tb_free(b);
    idl_allocator a = { t_malloc, t_free, NULL };
    idl_set_allocator(&a);
    g_fail_at = -1;
    g_allocs = 0;
    g_live = 0;
    CHECK_OK(full_run(buf, len));
    CHECK_EQ_INT(g_live, 0); /* everything allocated through the hook was freed through it */
    long total = g_allocs;
    int all_nomem = 1;
    for (long k = 0; k < total + 5; k++) {
        g_allocs = 0;
        g_fail_at = k;
        g_live = 0;
        idl_status st = full_run(buf, len);
        if (k < total && st != IDL_ERR_NOMEM) {
            all_nomem = 0;
            fprintf(stderr, "allocation %ld failed -> status %d: %s\n", k, (int)st,
                    idl_last_error());
        }
        if (g_live != 0) {
            CHECK_MSG(0, "leak after failing allocation %ld", k);
            break;
        }
    }
    CHECK_MSG(all_nomem, "every injected allocation failure is reported as IDL_ERR_NOMEM");
    idl_set_allocator(NULL);
    free(buf);
    CHECK_MSG(total > 10, "only %ld allocations seen", total);
}

/* A residual CNN whose 16-channel activations oneDNN keeps blocked: x (2,3,12,12) -> Conv 3x3 ->
 * c1 -> Relu r1 -> Conv 3x3 c2 -> Add(c2, r1) a1 -> Relu r2; r2 feeds both Identity i2 (an op
 * without blocked layouts: a plain copy, its gradient added back) then MaxPool mp, and a 1x1 Conv
 * c3, Relu r3 then MaxPool mp3 (blocked; windows of tied zeros, whose gradient goes to the first
 * tap); Add(mp, mp3) a2 mixes the two layouts; Mul by a scalar h; a 1x1
 * Conv c4, GlobalAveragePool g (of a blocked input), Flatten and Gemm to 5 classes. */
static idl_model *layout_model(void) {
    tb_model *b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 4, (int64_t[]){ 2, 3, 12, 12 });
    uint32_t seed = 7;
    float w1[16 * 3 * 9], b1[16], w2[16 * 16 * 9], w3[16 * 16], w4[16 * 16], wg[5 * 16], bg[5];
    float half = 0.5f;
    tb_frand_fill(w1, sizeof w1 / sizeof *w1, 0.4f, &seed);
    tb_frand_fill(b1, 16, 0.1f, &seed);
    tb_frand_fill(w2, sizeof w2 / sizeof *w2, 0.15f, &seed);
    tb_frand_fill(w3, sizeof w3 / sizeof *w3, 0.3f, &seed);
    tb_frand_fill(w4, sizeof w4 / sizeof *w4, 0.3f, &seed);
    tb_frand_fill(wg, sizeof wg / sizeof *wg, 1.0f, &seed);
    tb_frand_fill(bg, 5, 0.1f, &seed);
    tb_init_f32(b, "w1", 4, (int64_t[]){ 16, 3, 3, 3 }, w1);
    tb_init_f32(b, "b1", 1, (int64_t[]){ 16 }, b1);
    tb_init_f32(b, "w2", 4, (int64_t[]){ 16, 16, 3, 3 }, w2);
    tb_init_f32(b, "w3", 4, (int64_t[]){ 16, 16, 1, 1 }, w3);
    tb_init_f32(b, "w4", 4, (int64_t[]){ 16, 16, 1, 1 }, w4);
    tb_init_f32(b, "wg", 2, (int64_t[]){ 5, 16 }, wg);
    tb_init_f32(b, "bg", 1, (int64_t[]){ 5 }, bg);
    tb_init_f32(b, "half", 0, NULL, &half);
    const int64_t p1[4] = { 1, 1, 1, 1 }, k2[2] = { 2, 2 }, s2[2] = { 2, 2 };
    tb_node(b, "Conv", "x,w1,b1", "c1");
    tb_attr_ints(b, "pads", 4, p1);
    tb_node(b, "Relu", "c1", "r1");
    tb_node(b, "Conv", "r1,w2", "c2");
    tb_attr_ints(b, "pads", 4, p1);
    tb_node(b, "Add", "c2,r1", "a1");
    tb_node(b, "Relu", "a1", "r2");
    tb_node(b, "Identity", "r2", "i2");
    tb_node(b, "MaxPool", "i2", "mp");
    tb_attr_ints(b, "kernel_shape", 2, k2);
    tb_attr_ints(b, "strides", 2, s2);
    tb_node(b, "Conv", "r2,w3", "c3");
    tb_node(b, "Relu", "c3", "r3");
    tb_node(b, "MaxPool", "r3", "mp3");
    tb_attr_ints(b, "kernel_shape", 2, k2);
    tb_attr_ints(b, "strides", 2, s2);
    tb_node(b, "Add", "mp,mp3", "a2");
    tb_node(b, "Mul", "a2,half", "h");
    tb_node(b, "Conv", "h,w4", "c4");
    tb_node(b, "GlobalAveragePool", "c4", "g");
    tb_node(b, "Flatten", "g", "f");
    tb_node(b, "Gemm", "f,wg,bg", "y");
    tb_attr_int(b, "transB", 1);
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

static float max_rel_diff(const idl_tensor *a, const idl_tensor *b) {
    if (!a || !b || idl_tensor_numel(a) != idl_tensor_numel(b)) return INFINITY;
    const float *x = a->data, *y = b->data;
    float d = 0, mx = 0;
    for (int64_t i = 0; i < idl_tensor_numel(a); i++) {
        d = fmaxf(d, fabsf(x[i] - y[i]));
        mx = fmaxf(mx, fabsf(y[i]));
    }
    return d / (mx > 0 ? mx : 1);
}

/* Blocked layouts between ops are invisible: every intermediate tensor, output, gradient (w.r.t.
 * the input and a blocked intermediate) and tap gives what a plain-layout session gives. */
static void test_layouts(void) {
    idl_model *m = layout_model();
    CHECK(m != NULL);
    if (!m) return;
    idl_session *s[2] = { NULL, NULL };
    idl_session_opts o = idl_session_opts_default();
    CHECK_OK(idl_session_new(m, &o, &s[0]));
    o.plain_layout = 1;
    CHECK_OK(idl_session_new(m, &o, &s[1]));
    float xv[2 * 3 * 144];
    uint32_t seed = 3;
    tb_frand_fill(xv, sizeof xv / sizeof *xv, 1.0f, &seed);
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, 3, 12, 12 }, xv);
    const idl_tensor *in[1] = { &x };
    const char *names[] = { "c1", "r1",  "c2", "a1", "r2", "i2", "mp", "c3",
                            "r3", "mp3", "a2", "h",  "c4", "g",  "y" };
    const char *wrt[3] = { "x", "r1", "r3" };
    int64_t targets[2] = { 1, 3 };
    float factor = 1.5f;
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 2) /* a tap that rescales a blocked tensor in place */
            for (int k = 0; k < 2; k++)
                CHECK_OK(idl_session_set_tap(s[k], "r1", scale_tap, &factor));
        for (int k = 0; k < 2; k++)
            CHECK_OK(idl_session_forward(s[k], in, NULL, 1));
        int blocked[2] = { 0, 0 };
        for (int k = 0; k < 2; k++)
            for (int v = 0; v < s[k]->plan->n_values; v++)
                blocked[k] += s[k]->plan->lay[v] != NULL;
        CHECK_MSG(blocked[0] >= 6 && blocked[1] == 0, "blocked values %d and %d", blocked[0],
                  blocked[1]);
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
            float d = max_rel_diff(idl_session_tensor(s[0], names[i]),
                                   idl_session_tensor(s[1], names[i]));
            CHECK_MSG(d < 1e-5f, "pass %d: %s differs by %g", pass, names[i], (double)d);
        }
        idl_objective obj = idl_objective_default();
        obj.kind = pass == 1 ? IDL_OBJ_LOGIT : IDL_OBJ_PROBABILITY;
        obj.targets = targets;
        for (int k = 0; k < 2; k++)
            CHECK_OK(idl_session_backward(s[k], &obj, wrt, 3));
        for (int i = 0; i < 3; i++) {
            const idl_tensor *g0 = idl_session_grad(s[0], wrt[i]);
            float d = max_rel_diff(g0, idl_session_grad(s[1], wrt[i]));
            CHECK_MSG(d < 1e-5f, "pass %d: gradient w.r.t. %s differs by %g", pass, wrt[i],
                      (double)d);
            float mx = 0;
            for (int64_t j = 0; g0 && j < idl_tensor_numel(g0); j++)
                mx = fmaxf(mx, fabsf(((const float *)g0->data)[j]));
            CHECK(mx > 0); /* a real gradient, not zeros on both sides */
        }
    }
    /* the tap's effect is there: r1 read back is 1.5 x relu(c1) */
    const idl_tensor *c1 = idl_session_tensor(s[0], "c1"), *r1 = idl_session_tensor(s[0], "r1");
    float worst = 0;
    for (int64_t i = 0; c1 && r1 && i < idl_tensor_numel(c1); i++) {
        float c = ((const float *)c1->data)[i];
        worst = fmaxf(worst, fabsf(((const float *)r1->data)[i] - factor * (c > 0 ? c : 0)));
    }
    CHECK(c1 && r1 && worst < 1e-6f);
    for (int k = 0; k < 2; k++)
        idl_session_free(s[k]);
    idl_model_free(m);
}

/* x (2,8,H,W) -> 1x1 Conv a (A = 16 or 24 channels, blocked) -> 3x3 Conv b (32 channels, bias, the
 * given pads) -> Relu -> GlobalAveragePool -> Gemm to 5 classes; with two_paths, a second path from
 * a (whose gradient then accumulates instead of being written): GlobalAveragePool -> Gemm, added.
 * With A = 24, b's input channels are not a multiple of the Winograd gradient's 16 (winograd.h). */
static idl_model *wino_model_ch(int64_t H, int64_t W, const int64_t pads[4], bool two_paths,
                                int64_t A) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 4, (int64_t[]){ -1, 8, H, W }); /* free batch */
    uint32_t seed = 5;
    static float w0[24 * 8], w1[32 * 24 * 9], b1[32], wg[5 * 32], wa[5 * 24];
    tb_frand_fill(w0, (size_t)(A * 8), 0.4f, &seed);
    tb_frand_fill(w1, (size_t)(32 * A * 9), 0.2f, &seed);
    tb_frand_fill(b1, 32, 0.1f, &seed);
    tb_frand_fill(wg, sizeof wg / sizeof *wg, 1.0f, &seed);
    tb_frand_fill(wa, (size_t)(5 * A), 1.0f, &seed);
    tb_init_f32(b, "w0", 4, (int64_t[]){ A, 8, 1, 1 }, w0);
    tb_init_f32(b, "w1", 4, (int64_t[]){ 32, A, 3, 3 }, w1);
    tb_init_f32(b, "b1", 1, (int64_t[]){ 32 }, b1);
    tb_init_f32(b, "wg", 2, (int64_t[]){ 5, 32 }, wg);
    tb_init_f32(b, "wa", 2, (int64_t[]){ 5, A }, wa);
    tb_node(b, "Conv", "x,w0", "a");
    tb_node(b, "Conv", "a,w1,b1", "b");
    tb_attr_ints(b, "pads", 4, pads);
    tb_node(b, "Relu", "b", "r");
    tb_node(b, "GlobalAveragePool", "r", "g");
    tb_node(b, "Flatten", "g", "f");
    tb_node(b, "Gemm", "f,wg", two_paths ? "y1" : "y");
    tb_attr_int(b, "transB", 1);
    if (!two_paths) {
        tb_output(b, "y");
        idl_model *m = tb_load(b);
        tb_free(b);
        return m;
    }
    tb_node(b, "GlobalAveragePool", "a", "ga");
    tb_node(b, "Flatten", "ga", "fa");
    tb_node(b, "Gemm", "fa,wa", "y2");
    tb_attr_int(b, "transB", 1);
    tb_node(b, "Add", "y1,y2", "y");
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

static idl_model *wino_model(int64_t H, int64_t W, const int64_t pads[4], bool two_paths) {
    return wino_model_ch(H, W, pads, two_paths, 16);
}

/* Winograd convolutions (ops/winograd.h) against oneDNN's direct ones (direct_conv = 1): the
 * convolution's output and the gradients through it, on maps that are not multiples of the tile
 * (F(4x4,3x3), and F(2x2,3x3) on the small maps), with symmetric and asymmetric padding of 0 to 2,
 * into a gradient the convolution writes alone and into one it adds to, with 16 and 24 input
 * channels. */
static void test_winograd(void) {
    const int64_t cases[5][6] = { /* H, W, pads (top, left, bottom, right) */
                                  { 20, 20, 1, 1, 1, 1 },
                                  { 17, 23, 0, 2, 1, 0 },
                                  { 15, 14, 2, 2, 2, 2 },
                                  /* F(2x2,3x3): outputs 7x7 and 8x8 */
                                  { 7, 7, 1, 1, 1, 1 },
                                  { 9, 8, 0, 2, 1, 0 }
    };
    for (int k = 0; k < 5; k++) {
        idl_model *m = wino_model_ch(cases[k][0], cases[k][1], cases[k] + 2, k > 0, k ? 24 : 16);
        CHECK(m != NULL);
        if (!m) return;
        idl_session *s[2] = { NULL, NULL };
        idl_session_opts o = idl_session_opts_default();
        CHECK_OK(idl_session_new(m, &o, &s[0]));
        o.direct_conv = 1;
        CHECK_OK(idl_session_new(m, &o, &s[1]));
        int64_t n = 2 * 8 * cases[k][0] * cases[k][1];
        float *xv = malloc((size_t)n * sizeof *xv);
        uint32_t seed = 21 + (uint32_t)k;
        tb_frand_fill(xv, (size_t)n, 1.0f, &seed);
        idl_tensor x =
            idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, 8, cases[k][0], cases[k][1] }, xv);
        const idl_tensor *in[1] = { &x };
        for (int j = 0; j < 2; j++)
            CHECK_OK(idl_session_forward(s[j], in, NULL, 1));
        const idl_tensor *b0 = idl_session_tensor(s[0], "b"), *b1 = idl_session_tensor(s[1], "b");
        float d = max_rel_diff(b0, b1);
        CHECK_MSG(d < 1e-5f, "case %d: the convolution differs by %g", k, (double)d);
        /* the two really ran different algorithms (sums in another order differ in the last bits)
         */
        if (idl__wino_available()) CHECK_MSG(d > 0, "case %d: no Winograd convolution ran", k);
        d = max_rel_diff(idl_session_output(s[0], 0), idl_session_output(s[1], 0));
        CHECK_MSG(d < 1e-5f, "case %d: the output differs by %g", k, (double)d);
        /* case 0: a's gradient is an intermediate the convolution alone writes (a reused
         * buffer, hence two passes); otherwise it is also asked for, and accumulates */
        const char *wrt[2] = { "x", "a" };
        int n_wrt = k > 0 ? 2 : 1;
        for (int pass = 0; pass < 2; pass++) {
            int64_t targets[2] = { 1 + pass, 4 - pass };
            idl_objective obj = idl_objective_default();
            obj.kind = IDL_OBJ_LOGIT;
            obj.targets = targets;
            for (int j = 0; j < 2; j++)
                CHECK_OK(idl_session_backward(s[j], &obj, wrt, n_wrt));
            for (int i = 0; i < n_wrt; i++) {
                d = max_rel_diff(idl_session_grad(s[0], wrt[i]), idl_session_grad(s[1], wrt[i]));
                CHECK_MSG(d < 1e-5f, "case %d pass %d: the gradient w.r.t. %s differs by %g", k,
                          pass, wrt[i], (double)d);
            }
        }
        free(xv);
        for (int j = 0; j < 2; j++)
            idl_session_free(s[j]);
        idl_model_free(m);
    }
}

/* x (N, C, H, W) -> Conv (M, kernel, strides, pads) -> Relu -> GlobalAveragePool -> Gemm to 4
 * classes; with two_paths, x also -> GlobalAveragePool -> Gemm, added (x's gradient accumulates).
 */
static idl_model *narrow_model(const int64_t g[11], bool two_paths) {
    /* g: N, C, H, W, M, kh, kw, sh, sw, pad top and left (bottom and right: 0 and 1) */
    int64_t C = g[1], M = g[4], kh = g[5], kw = g[6];
    tb_model *b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 4, (int64_t[]){ g[0], C, g[2], g[3] });
    uint32_t seed = 17;
    static float w[16 * 4 * 7 * 7], bias[16], wg[4 * 16], wa[4 * 4];
    tb_frand_fill(w, (size_t)(M * C * kh * kw), 0.3f, &seed);
    tb_frand_fill(bias, (size_t)M, 0.1f, &seed);
    tb_frand_fill(wg, (size_t)(4 * M), 1.0f, &seed);
    tb_frand_fill(wa, (size_t)(4 * C), 1.0f, &seed);
    tb_init_f32(b, "w", 4, (int64_t[]){ M, C, kh, kw }, w);
    tb_init_f32(b, "b", 1, (int64_t[]){ M }, bias);
    tb_init_f32(b, "wg", 2, (int64_t[]){ 4, M }, wg);
    tb_init_f32(b, "wa", 2, (int64_t[]){ 4, C }, wa);
    tb_node(b, "Conv", "x,w,b", "c");
    tb_attr_ints(b, "strides", 2, (int64_t[]){ g[7], g[8] });
    tb_attr_ints(b, "pads", 4, (int64_t[]){ g[9], g[10], 0, 1 });
    tb_node(b, "Relu", "c", "r");
    tb_node(b, "GlobalAveragePool", "r", "p");
    tb_node(b, "Flatten", "p", "f");
    tb_node(b, "Gemm", "f,wg", two_paths ? "y1" : "y");
    tb_attr_int(b, "transB", 1);
    if (two_paths) {
        tb_node(b, "GlobalAveragePool", "x", "px");
        tb_node(b, "Flatten", "px", "fx");
        tb_node(b, "Gemm", "fx,wa", "y2");
        tb_attr_int(b, "transB", 1);
        tb_node(b, "Add", "y1,y2", "y");
    }
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

/* The input gradient of convolutions with few input channels (ops/conv_narrow.h) against oneDNN's
 * (direct_conv = 1): 1 to 4 channels, strides 1 to 4, kernels 3 to 7, square and not, padding
 * before of 0 to 3, an output gradient in nChw8c (16 or 8 channels) and plain (5), written and
 * added to. */
static void test_narrow_grad(void) {
    static const int64_t cases[5][11] = {
        /* N, C, H, W, M, kh, kw, sh, sw, pt, pl */
        { 2, 3, 23, 23, 16, 7, 7, 2, 2, 3, 3 }, /* resnet's first layer */
        { 2, 1, 10, 9, 16, 3, 3, 1, 1, 1, 1 },  /* one channel, stride 1 */
        { 1, 4, 17, 14, 5, 5, 3, 3, 2, 2, 0 },  /* dy plain (5 channels) */
        { 3, 2, 16, 16, 16, 4, 4, 4, 4, 0, 0 }, /* a patch embedding */
        { 2, 3, 12, 13, 8, 3, 5, 2, 1, 1, 2 },  /* x's gradient accumulates */
    };
    for (int k = 0; k < 5; k++) {
        const int64_t *g = cases[k];
        idl_model *m = narrow_model(g, k == 4);
        CHECK(m != NULL);
        if (!m) return;
        idl_session *s[2] = { NULL, NULL };
        idl_session_opts o = idl_session_opts_default();
        CHECK_OK(idl_session_new(m, &o, &s[0]));
        o.direct_conv = 1;
        CHECK_OK(idl_session_new(m, &o, &s[1]));
        int64_t n = g[0] * g[1] * g[2] * g[3];
        float *xv = malloc((size_t)n * sizeof *xv);
        uint32_t seed = 40 + (uint32_t)k;
        tb_frand_fill(xv, (size_t)n, 1.0f, &seed);
        idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ g[0], g[1], g[2], g[3] }, xv);
        const idl_tensor *in[1] = { &x };
        const char *wrt = "x";
        idl_objective obj = idl_objective_default();
        obj.kind = IDL_OBJ_LOGIT;
        for (int j = 0; j < 2; j++) {
            CHECK_OK(idl_session_forward(s[j], in, NULL, 1));
            CHECK_OK(idl_session_backward(s[j], &obj, &wrt, 1));
        }
        const idl_tensor *g0 = idl_session_grad(s[0], "x"), *g1 = idl_session_grad(s[1], "x");
        float d = max_rel_diff(g0, g1);
        CHECK_MSG(d < 1e-5f, "case %d: the input gradient differs by %g", k, (double)d);
        /* the two really ran different kernels (sums in another order differ in the last bits) */
        if (idl__wino_available()) CHECK_MSG(d > 0, "case %d: the narrow kernel did not run", k);
        free(xv);
        for (int j = 0; j < 2; j++)
            idl_session_free(s[j]);
        idl_model_free(m);
    }
}

typedef struct tap_copy {
    float *v;
    int64_t n, calls;
} tap_copy;
static void tap_copy_fn(const char *name, idl_tensor *t, void *user) {
    (void)name;
    tap_copy *c = user;
    c->n = idl_tensor_numel(t);
    c->calls++;
    free(c->v);
    c->v = malloc((size_t)c->n * sizeof(float));
    if (c->v) memcpy(c->v, t->data, (size_t)c->n * sizeof(float));
}

/* A session keeping every value and a forward_only one on m, each run forward on in. */
static void fo_pair(const idl_model *m, const idl_tensor *const *in, idl_session **full,
                    idl_session **fo) {
    idl_session_opts o = idl_session_opts_default();
    CHECK_OK(idl_session_new(m, &o, full));
    o.forward_only = 1;
    CHECK_OK(idl_session_new(m, &o, fo));
    if (*full) CHECK_OK(idl_session_forward(*full, in, NULL, 1));
    if (*fo) CHECK_OK(idl_session_forward(*fo, in, NULL, 1));
}

/* Output k of the two sessions is equal to the bit. */
static bool same_output(const idl_session *a, const idl_session *b, int k) {
    const idl_tensor *y = a ? idl_session_output(a, k) : NULL,
                     *yb = b ? idl_session_output(b, k) : NULL;
    return y && yb && y->dtype == yb->dtype && idl__tensor_bytes(y) == idl__tensor_bytes(yb) &&
           !memcmp(y->data, yb->data, idl__tensor_bytes(y));
}

/* x -> 1x1 Conv -> Add(., x) -> Relu -> 3x3 Conv -> Clip(0.05, 0.3) -> pooled classifier: the
 * activations a forward-only plan fuses into an Add and a Conv */
static idl_model *fuse_model(void) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 4, (int64_t[]){ -1, 8, 12, 12 });
    uint32_t seed = 9;
    static float w0[8 * 8], w1[8 * 8 * 9], wg[3 * 8];
    tb_frand_fill(w0, sizeof w0 / sizeof *w0, 0.5f, &seed);
    tb_frand_fill(w1, sizeof w1 / sizeof *w1, 0.2f, &seed);
    tb_frand_fill(wg, sizeof wg / sizeof *wg, 1.0f, &seed);
    tb_init_f32(b, "w0", 4, (int64_t[]){ 8, 8, 1, 1 }, w0);
    tb_init_f32(b, "w1", 4, (int64_t[]){ 8, 8, 3, 3 }, w1);
    tb_init_f32(b, "wg", 2, (int64_t[]){ 3, 8 }, wg);
    tb_init_f32(b, "lo", 0, NULL, (const float[]){ 0.05f });
    tb_init_f32(b, "hi", 0, NULL, (const float[]){ 0.3f });
    tb_node(b, "Conv", "x,w0", "a");
    tb_node(b, "Add", "a,x", "s");
    tb_node(b, "Relu", "s", "r");
    tb_node(b, "Conv", "r,w1", "c");
    tb_attr_ints(b, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
    tb_node(b, "Clip", "c,lo,hi", "k");
    tb_node(b, "GlobalAveragePool", "k", "g");
    tb_node(b, "Flatten", "g", "f");
    tb_node(b, "Gemm", "f,wg", "y");
    tb_attr_int(b, "transB", 1);
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

/* Add+Relu and Conv+Clip fused in a forward-only plan: both activation nodes skipped, the output
 * equal to the full session's to the bit. */
static void test_forward_only_fusions(void) {
    idl_model *m = fuse_model();
    CHECK(m != NULL);
    if (!m) return;
    int64_t n = 3 * 8 * 12 * 12;
    float *xv = malloc((size_t)n * sizeof *xv);
    uint32_t seed = 31;
    tb_frand_fill(xv, (size_t)n, 1.0f, &seed);
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 3, 8, 12, 12 }, xv);
    const idl_tensor *in[1] = { &x };
    idl_session *full = NULL, *fo = NULL;
    fo_pair(m, in, &full, &fo);
    CHECK(same_output(full, fo, 0));
    if (!full || !fo) {
        idl_session_free(full);
        idl_session_free(fo);
        free(xv);
        idl_model_free(m);
        return;
    }
    /* skipped: the activations (Relu after Add, Clip) and the Flatten, whose input the pool
     * writes straight into its output (a copy aliased away) */
    int acts = 0, copies = 0;
    for (int i = 0; fo->plan && fo->plan->skip && i < fo->plan->n_nodes; i++) {
        const char *op = m->nodes[i].op_type;
        acts += fo->plan->skip[i] && (!strcmp(op, "Relu") || !strcmp(op, "Clip"));
        copies += fo->plan->skip[i] && !strcmp(op, "Flatten");
    }
    CHECK_MSG(acts == 2 && copies == 1,
              "%d activation nodes and %d copies skipped; 2 (Relu after Add, Clip) and 1 "
              "(Flatten) expected",
              acts, copies);
    /* a tap on the Flatten's input makes the plan again with the copy: the tap sees the pooled
     * values and the output stays the same */
    tap_copy ct = { NULL, 0, 0 };
    CHECK_OK(idl_session_set_tap(fo, "g", tap_copy_fn, &ct));
    CHECK_OK(idl_session_forward(fo, in, NULL, 1));
    const idl_tensor *g = idl_session_tensor(full, "g");
    CHECK(g && ct.v && ct.calls == 1 && ct.n == idl_tensor_numel(g) &&
          !memcmp(g->data, ct.v, sizeof(float) * (size_t)ct.n));
    free(ct.v);
    CHECK(same_output(full, fo, 0));
    int flat = 0;
    for (int i = 0; fo->plan && fo->plan->skip && i < fo->plan->n_nodes; i++)
        flat += fo->plan->skip[i] && !strcmp(m->nodes[i].op_type, "Flatten");
    CHECK_MSG(flat == 0, "the Flatten is still skipped with a tap on its input");
    CHECK_OK(idl_session_set_tap(fo, "g", NULL, NULL));
    /* the Clip really clamps (some values at each bound), so a fusion that dropped it shows */
    const idl_tensor *k = idl_session_tensor(full, "k");
    int at_lo = 0, at_hi = 0;
    for (int64_t i = 0; k && i < idl_tensor_numel(k); i++) {
        at_lo += ((const float *)k->data)[i] == 0.05f;
        at_hi += ((const float *)k->data)[i] == 0.3f;
    }
    CHECK(at_lo > 0 && at_hi > 0);
    idl_session_free(full);
    idl_session_free(fo);
    free(xv);
    idl_model_free(m);
}

/* h = x + b0; LayerNorm as PyTorch exports it before opset 17 (ReduceMean, Sub, Pow, ReduceMean,
 * Add, Sqrt, Div, Mul, Add); erf GELU (Div, Erf, Add, Mul, Mul); y = gelu + h; z = MatMul(ln, W)
 * (the loader's order puts it between the LayerNorm and the GELU, so it reads ln before the
 * GELU's last node). x is (3, 7, RF_W): 21 rows of 3000, blocks of 5 rows and a last one of 1. */
#define RF_W 3000
static idl_model *rowfuse_model(void) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 3, (int64_t[]){ -1, 7, RF_W });
    static float b0[RF_W], g[RF_W], be[RF_W], w[RF_W * 4];
    uint32_t seed = 5;
    tb_frand_fill(b0, RF_W, 0.5f, &seed);
    tb_frand_fill(g, RF_W, 1.0f, &seed);
    tb_frand_fill(be, RF_W, 0.5f, &seed);
    tb_frand_fill(w, RF_W * 4, 0.1f, &seed);
    tb_init_f32(b, "b0", 1, (int64_t[]){ RF_W }, b0);
    tb_init_f32(b, "gamma", 1, (int64_t[]){ RF_W }, g);
    tb_init_f32(b, "beta", 1, (int64_t[]){ RF_W }, be);
    tb_init_f32(b, "W", 2, (int64_t[]){ RF_W, 4 }, w);
    tb_init_f32(b, "two", 0, NULL, (const float[]){ 2.0f });
    tb_init_f32(b, "eps", 0, NULL, (const float[]){ 1e-6f });
    tb_init_f32(b, "sqrt2", 0, NULL, (const float[]){ 1.4142135f });
    tb_init_f32(b, "one", 0, NULL, (const float[]){ 1.0f });
    tb_init_f32(b, "half", 0, NULL, (const float[]){ 0.5f });
    tb_node(b, "Add", "x,b0", "h");
    tb_node(b, "ReduceMean", "h", "m");
    tb_attr_ints(b, "axes", 1, (int64_t[]){ -1 });
    tb_node(b, "Sub", "h,m", "d");
    tb_node(b, "Pow", "d,two", "p");
    tb_node(b, "ReduceMean", "p", "v");
    tb_attr_ints(b, "axes", 1, (int64_t[]){ 2 });
    tb_node(b, "Add", "v,eps", "ve");
    tb_node(b, "Sqrt", "ve", "sd");
    tb_node(b, "Div", "d,sd", "nz");
    tb_node(b, "Mul", "nz,gamma", "sc");
    tb_node(b, "Add", "sc,beta", "ln");
    tb_node(b, "Div", "ln,sqrt2", "t");
    tb_node(b, "Erf", "t", "e");
    tb_node(b, "Add", "e,one", "a");
    tb_node(b, "Mul", "ln,a", "mm");
    tb_node(b, "Mul", "mm,half", "ge");
    tb_node(b, "Add", "ge,h", "y");
    tb_node(b, "MatMul", "ln,W", "z");
    tb_output(b, "y");
    tb_output(b, "z");
    tb_output(b, "h"); /* a graph output read inside the region too */
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

/* Element-wise regions run by row blocks in forward-only plans (graph/rowfuse.c): the outputs
 * equal the full session's to the bit, the regions formed are the expected ones, and a tap inside
 * a region makes the plan again without it. */
static void test_rowfuse(void) {
    int64_t n = 3 * 7 * RF_W;
    float *xv = malloc((size_t)n * sizeof *xv);
    uint32_t seed = 17;
    tb_frand_fill(xv, (size_t)n, 2.0f, &seed);
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 3, (int64_t[]){ 3, 7, RF_W }, xv);
    const idl_tensor *in[1] = { &x };
    idl_model *m = rowfuse_model();
    CHECK(m != NULL);
    idl_session *full = NULL, *fo = NULL;
    if (m) fo_pair(m, in, &full, &fo);
    for (int once = 0; full && fo && once < 1; once++) {
        for (int k = 0; k < 3; k++)
            CHECK_MSG(same_output(full, fo, k), "output %d differs from the full session's", k);
        /* every element-wise node is in a region (skipped, or its anchor), the MatMul in none; a
         * region ends before the MatMul that reads ln (it must see ln written), so two */
        int fused = 0, anchors = 0;
        for (int i = 0; fo->plan && fo->plan->skip && fo->plan->rf_anchor && i < fo->plan->n_nodes;
             i++) {
            bool mm = !strcmp(m->nodes[i].op_type, "MatMul"), a = fo->plan->rf_anchor[i] >= 0;
            CHECK(!mm || (!a && !fo->plan->skip[i]));
            fused += !mm && (fo->plan->skip[i] || a);
            anchors += a;
        }
        CHECK_MSG(fused == 16 && anchors == 2 && fo->plan->n_rf == 2,
                  "%d of 16 element-wise nodes in regions, %d regions", fused, anchors);
        /* the regions' scratch (shared by both) is counted in the plan's bytes, beside the arena */
        CHECK(fo->plan->rf_scratch && fo->plan->rf_bytes > 0 &&
              fo->plan->bytes >= fo->plan->arena_bytes + fo->plan->rf_bytes);
        /* a tap on the LayerNorm's centred values: planned again, that value kept */
        tap_copy ct = { NULL, 0, 0 };
        CHECK_OK(idl_session_set_tap(fo, "d", tap_copy_fn, &ct));
        CHECK_OK(idl_session_forward(fo, in, NULL, 1));
        const idl_tensor *d = idl_session_tensor(full, "d");
        CHECK(d && ct.v && ct.calls == 1 && ct.n == idl_tensor_numel(d) &&
              !memcmp(d->data, ct.v, sizeof(float) * (size_t)ct.n));
        CHECK(same_output(full, fo, 0));
        free(ct.v);
    }
    /* planned on one thread count and run on another: a region runs on the calling count, at
     * most the sets it prepared, to the same bits */
    float *x2v = malloc((size_t)n * sizeof *x2v);
    for (int64_t i = 0; x2v && i < n; i++)
        x2v[i] = 0.5f - xv[i];
    idl_tensor x2 = idl_tensor_wrap(IDL_DT_F32, 3, (int64_t[]){ 3, 7, RF_W }, x2v);
    const idl_tensor *in2[1] = { &x2 };
    for (int first = 1; full && m && x2v && first <= 2; first++) {
        idl_session *t = NULL;
        idl_session_opts o = idl_session_opts_default();
        o.forward_only = 1;
        o.n_threads = first;
        CHECK_OK(idl_session_new(m, &o, &t));
        if (!t) break;
        CHECK_OK(idl_session_forward(t, in2, NULL, 1)); /* other values: none left over */
        const idl__plan *p0 = t->plan;
        t->opts.n_threads = 3 - first;
        CHECK_OK(idl_session_forward(t, in, NULL, 1));
        CHECK_MSG(t->plan == p0 && p0 && p0->n_rf == 2,
                  "planned on %d threads: plan kept, %d regions", first, p0 ? p0->n_rf : -1);
        for (int k = 0; k < 3; k++)
            CHECK_MSG(same_output(full, t, k),
                      "planned on %d threads, run on %d: output %d differs", first, 3 - first, k);
        idl_session_free(t);
    }
    /* a memory budget with room for the unfused plan but not for the scratch (on 16 threads, 17
     * blocks of the largest region's values read only inside: more than those values whole): the
     * nodes run unfused, to the same bits */
    for (int once = 0; full && m && once < 1; once++) {
        idl_session *t = NULL, *u = NULL;
        idl_session_opts o = idl_session_opts_default();
        o.forward_only = 1;
        o.n_threads = 16;
        CHECK_OK(idl_session_new(m, &o, &t));
        if (t) CHECK_OK(idl_session_forward(t, in, NULL, 1));
        const idl__plan *p = t ? t->plan : NULL;
        uint64_t whole = 0; /* the values read only inside regions, whole */
        for (int v = 0; p && p->rf_tmp && v < m->n_values; v++)
            whole += p->rf_tmp[v] ? idl__tensor_bytes(&p->vals[v]) : 0;
        CHECK_MSG(p && p->n_rf == 2 && whole > 0 && whole < p->rf_bytes,
                  "16 threads: %d regions, scratch %llu bytes, their values %llu", p ? p->n_rf : -1,
                  p ? (unsigned long long)p->rf_bytes : 0ull, (unsigned long long)whole);
        if (!p || !whole || whole >= p->rf_bytes) {
            idl_session_free(t);
            break;
        }
        o.max_memory = p->bytes - p->rf_bytes + whole;
        CHECK_OK(idl_session_new(m, &o, &u));
        if (u) CHECK_OK(idl_session_forward(u, in, NULL, 1));
        const idl__plan *q = u ? u->plan : NULL;
        CHECK_MSG(q && q->n_rf == 0 && q->rf_bytes == 0 && !q->rf_scratch &&
                      q->bytes <= o.max_memory,
                  "budget %llu: %d regions, %llu bytes", (unsigned long long)o.max_memory,
                  q ? q->n_rf : -1, q ? (unsigned long long)q->bytes : 0ull);
        for (int k = 0; k < 3; k++)
            CHECK(same_output(full, u, k) && same_output(full, t, k));
        idl_session_free(t);
        idl_session_free(u);
    }
    idl_session_free(full);
    idl_session_free(fo);
    idl_model_free(m);
    free(xv);
    free(x2v);
}

/* x (R, 48) -> MatMul(x, W1 (48, 40)) + Gemm(x, W2 (40, 48), bias, transB) -> y (R, 40): products
 * by constant weights. Where oneDNN has brgemm kernels (AVX-512) their input gradients run on its
 * matmul primitive, and their forwards too at most 512 rows, sgemm otherwise (gemm.c); either way y
 * and dy/dx (which accumulates from both products) equal a double-precision reference, and a
 * forward-only session's y equals the full one's to the bit. The log says which products took the
 * primitive. */
#define CW_K 48
#define CW_N 40
static float cw_w1[CW_K * CW_N], cw_w2[CW_N * CW_K], cw_b[CW_N];

static idl_model *const_weight_model(void) {
    uint32_t seed = 21;
    tb_frand_fill(cw_w1, CW_K * CW_N, 0.5f, &seed);
    tb_frand_fill(cw_w2, CW_N * CW_K, 0.5f, &seed);
    tb_frand_fill(cw_b, CW_N, 1.0f, &seed);
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 2, (int64_t[]){ -1, CW_K });
    tb_init_f32(b, "W1", 2, (int64_t[]){ CW_K, CW_N }, cw_w1);
    tb_init_f32(b, "W2", 2, (int64_t[]){ CW_N, CW_K }, cw_w2);
    tb_init_f32(b, "bias", 1, (int64_t[]){ CW_N }, cw_b);
    tb_node(b, "MatMul", "x,W1", "p");
    tb_node(b, "Gemm", "x,W2,bias", "q");
    tb_attr_int(b, "transB", 1);
    tb_node(b, "Add", "p,q", "y");
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

static void count_matmul_log(idl_log_level lv, const char *msg, void *user) {
    (void)lv;
    if (strstr(msg, "product on oneDNN's matmul")) ((int *)user)[0]++;
    if (strstr(msg, "input gradient on oneDNN's matmul")) ((int *)user)[1]++;
}

static void test_const_weight_products(void) {
    idl_model *m = const_weight_model();
    CHECK(m != NULL);
    bool brgemm = dnnl_get_effective_cpu_isa() >= dnnl_cpu_isa_avx512_core;
    for (int rows = 40; m && rows <= 600; rows += 560) {
        int64_t R = rows;
        float *xv = malloc(sizeof(float) * (size_t)(R * CW_K)),
              *sv = malloc(sizeof(float) * (size_t)(R * CW_N));
        uint32_t seed = 3;
        tb_frand_fill(xv, (size_t)(R * CW_K), 1.0f, &seed);
        tb_frand_fill(sv, (size_t)(R * CW_N), 1.0f, &seed);
        idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ R, CW_K }, xv);
        idl_tensor sd = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ R, CW_N }, sv);
        const idl_tensor *in[1] = { &x };
        int used[2] = { 0, 0 };
        idl_log_set(count_matmul_log, used, IDL_LOG_DEBUG);
        idl_session *full = NULL, *fo = NULL;
        fo_pair(m, in, &full, &fo);
        idl_objective obj = idl_objective_default();
        obj.kind = IDL_OBJ_SEED;
        obj.seed = &sd;
        const char *wrt[1] = { "x" };
        if (full) CHECK_OK(idl_session_backward(full, &obj, wrt, 1));
        idl_log_set(NULL, NULL, IDL_LOG_ERROR);
        /* forward: two plans (full, forward-only) of two products each, at few rows; the input
         * gradient: the full session's two products, at any number of rows */
        CHECK_MSG(used[0] == (rows <= 512 && brgemm ? 4 : 0) && used[1] == (brgemm ? 2 : 0),
                  "%d rows: %d forward products and %d input gradients on the primitive", rows,
                  used[0], used[1]);
        const idl_tensor *y = full ? idl_session_output(full, 0) : NULL;
        const idl_tensor *g = full ? idl_session_grad(full, "x") : NULL;
        CHECK(y && g && same_output(full, fo, 0));
        double ey = 0, eg = 0, sy = 0, sg = 0;
        for (int64_t r = 0; y && g && r < R; r++) {
            for (int n = 0; n < CW_N; n++) {
                double a = cw_b[n];
                for (int k = 0; k < CW_K; k++)
                    a += (double)xv[r * CW_K + k] *
                         ((double)cw_w1[k * CW_N + n] + (double)cw_w2[n * CW_K + k]);
                ey = fmax(ey, fabs(a - ((float *)y->data)[r * CW_N + n]));
                sy = fmax(sy, fabs(a));
            }
            for (int k = 0; k < CW_K; k++) {
                double a = 0;
                for (int n = 0; n < CW_N; n++)
                    a += (double)sv[r * CW_N + n] *
                         ((double)cw_w1[k * CW_N + n] + (double)cw_w2[n * CW_K + k]);
                eg = fmax(eg, fabs(a - ((float *)g->data)[r * CW_K + k]));
                sg = fmax(sg, fabs(a));
            }
        }
        CHECK_MSG(ey <= 1e-5 * sy && eg <= 1e-5 * sg,
                  "%d rows: |y - ref| %g of %g, |dx - ref| %g of %g", rows, ey, sy, eg, sg);
        idl_session_free(full);
        idl_session_free(fo);
        free(xv);
        free(sv);
    }
    idl_model_free(m);
}

/* Weights derived from initializers (reordered for oneDNN, Winograd kernels and their transposes
 * for the input gradient) are the session's, shared by its plans: a second plan (another batch,
 * the first kept as the spare) takes a reference to each instead of deriving its own, and computes
 * the output and input gradient a fresh session computes, to the bit. */
static void test_derived_shared(void) {
    const int64_t pads[4] = { 1, 1, 1, 1 };
    idl_model *m = wino_model(20, 20, pads, false);
    CHECK(m != NULL);
    if (!m) return;
    for (int direct = 0; direct < 2; direct++) {
        idl_session *s = NULL, *fresh = NULL;
        idl_session_opts o = idl_session_opts_default();
        o.direct_conv = direct;
        CHECK_OK(idl_session_new(m, &o, &s));
        CHECK_OK(idl_session_new(m, &o, &fresh));
        int n_first = 0, shared = 0;
        for (int b = 1; b <= 2; b++) {
            int64_t n = b * 8 * 20 * 20;
            float *xv = malloc((size_t)n * sizeof *xv);
            uint32_t seed = 7;
            tb_frand_fill(xv, (size_t)n, 1.0f, &seed);
            idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ b, 8, 20, 20 }, xv);
            const idl_tensor *in[1] = { &x };
            idl_objective obj = idl_objective_default();
            const char *wrt = "x";
            CHECK_OK(idl_session_forward(s, in, NULL, 1));
            CHECK_OK(idl_session_backward(s, &obj, &wrt, 1));
            int entries = 0;
            for (const idl__derived *d = s->be->derived; d; d = d->next) {
                entries++;
                shared += d->refs == 2;
            }
            if (b == 1) n_first = entries;
            CHECK_MSG(entries == n_first && entries > 0,
                      "direct %d batch %d: %d derived weights (%d with the first plan)", direct, b,
                      entries, n_first);
            CHECK_OK(idl_session_forward(fresh, in, NULL, 1));
            CHECK_OK(idl_session_backward(fresh, &obj, &wrt, 1));
            const idl_tensor *y = idl_session_output(s, 0), *yf = idl_session_output(fresh, 0);
            CHECK(y && yf &&
                  !memcmp(y->data, yf->data, sizeof(float) * (size_t)idl_tensor_numel(y)));
            const idl_tensor *g = idl_session_grad(s, "x"), *gf = idl_session_grad(fresh, "x");
            CHECK(g && gf && !memcmp(g->data, gf->data, sizeof(float) * (size_t)n));
            free(xv);
        }
        CHECK_MSG(shared == n_first, "direct %d: %d of %d derived weights shared by both plans",
                  direct, shared, n_first);
        idl_session_free(s);
        idl_session_free(fresh);
    }
    idl_model_free(m);
}

/* save_for_backward sessions (lean plans: only what a backward reads is kept, the rest shares an
 * arena, a ReLU after a Conv or an Add is fused into it) against sessions that keep every value,
 * on a Conv+Relu (Winograd and oneDNN's direct convolution) and an Add+Relu: the output and the
 * input gradient to the bit, twice in a row; the ReLU's node skipped; the fused value unreadable;
 * a gradient w.r.t. a weight refused; a tap set on the fused value after a pass sees it before
 * the ReLU (the plan is made again without that fusion) and the gradient stays the same. */
static void test_save_for_backward(void) {
    const int64_t pads[4] = { 1, 1, 1, 1 };
    for (int mi = 0; mi < 3; mi++) {
        idl_model *m = mi < 2 ? wino_model(20, 20, pads, false) : fuse_model();
        CHECK(m != NULL);
        if (!m) return;
        const char *fused = mi < 2 ? "b" : "s";
        int64_t shp[4] = { 2, 8, mi < 2 ? 20 : 12, mi < 2 ? 20 : 12 };
        int64_t n = shp[0] * shp[1] * shp[2] * shp[3];
        float *xv = malloc((size_t)n * sizeof *xv);
        uint32_t seed = 123 + (uint32_t)mi;
        tb_frand_fill(xv, (size_t)n, 1.0f, &seed);
        idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, shp, xv);
        const idl_tensor *in[1] = { &x };
        idl_session *full = NULL, *lean = NULL;
        idl_session_opts o = idl_session_opts_default();
        o.direct_conv = mi == 1;
        CHECK_OK(idl_session_new(m, &o, &full));
        o.save_for_backward = 1;
        CHECK_OK(idl_session_new(m, &o, &lean));
        idl_objective obj = idl_objective_default();
        const char *wrt = "x", *wrt_w = "w1";
        CHECK_OK(idl_session_forward(full, in, NULL, 1));
        CHECK_OK(idl_session_backward(full, &obj, &wrt, 1));
        const idl_tensor *y = idl_session_output(full, 0), *gf = idl_session_grad(full, "x");
        for (int round = 0; round < 3; round++) {
            tap_copy tb = { 0 };
            if (round == 2) CHECK_OK(idl_session_set_tap(lean, fused, tap_copy_fn, &tb));
            CHECK_OK(idl_session_forward(lean, in, NULL, 1));
            CHECK_OK(idl_session_backward(lean, &obj, &wrt, 1));
            const idl_tensor *yl = idl_session_output(lean, 0), *gl = idl_session_grad(lean, "x");
            CHECK(yl && !memcmp(y->data, yl->data, sizeof(float) * (size_t)idl_tensor_numel(y)));
            CHECK_MSG(gl && !memcmp(gf->data, gl->data, sizeof(float) * (size_t)n),
                      "model %d round %d: the lean plan's input gradient differs", mi, round);
            CHECK(lean->plan && lean->plan->kind == IDL__PLAN_LEAN);
            int skipped = 0;
            for (int i = 0; lean->plan && lean->plan->skip && i < lean->plan->n_nodes; i++)
                skipped += lean->plan->skip[i];
            CHECK_MSG(skipped == (round < 2 ? 1 : 0), "model %d round %d: %d ReLU nodes skipped",
                      mi, round, skipped);
            if (round < 2) {
                CHECK(idl_session_tensor(lean, fused) == NULL &&
                      strstr(idl_last_error(), "save_for_backward"));
            } else { /* the tap saw the value before the ReLU: the full session's */
                const idl_tensor *bf = idl_session_tensor(full, fused);
                int neg = 0;
                for (int64_t i = 0; bf && tb.v && i < idl_tensor_numel(bf); i++)
                    neg += ((const float *)bf->data)[i] < 0;
                CHECK(bf && tb.v && tb.n == idl_tensor_numel(bf) && neg > 0 &&
                      !memcmp(tb.v, bf->data, sizeof(float) * (size_t)tb.n));
                CHECK_OK(idl_session_set_tap(lean, fused, NULL, NULL));
            }
            free(tb.v);
        }
        CHECK(idl_session_backward(lean, &obj, &wrt_w, 1) == IDL_ERR_INVALID_ARG &&
              strstr(idl_last_error(), "constant"));
        CHECK_OK(idl_session_backward(full, &obj, &wrt_w, 1));
        /* a gradient method's clean pass on a plain session runs on a lean plan (its wrt is a
         * graph input) and gives the full session's gradient to the bit */
        idl_session *ms = NULL;
        idl_session_opts mo = idl_session_opts_default();
        mo.direct_conv = mi == 1;
        CHECK_OK(idl_session_new(m, &mo, &ms));
        idl_explain_request rq = idl_explain_request_default();
        rq.inputs = in;
        rq.n_inputs = 1;
        rq.objective = obj.kind;
        idl_saliency_params sp = idl_saliency_params_default();
        sp.abs = 0;
        idl_explanation ex;
        CHECK_OK(idl_saliency(ms, &rq, &sp, &ex));
        CHECK(ms->plan && ms->plan->kind == IDL__PLAN_LEAN);
        CHECK_OK(idl_session_backward(full, &obj, &wrt, 1));
        gf = idl_session_grad(full, "x");
        CHECK(ex.attribution && gf && idl_tensor_numel(ex.attribution) == n &&
              !memcmp(ex.attribution->data, gf->data, sizeof(float) * (size_t)n));
        idl_explanation_clear(&ex);
        idl_session_free(ms);
        idl_session_free(full);
        idl_session_free(lean);
        free(xv);
        idl_model_free(m);
    }
}

/* forward_only sessions (an arena shared by lifetimes; Conv+Relu fused, through oneDNN's post-op
 * and through the Winograd output transform) against sessions that keep every value: the same
 * output to the bit; intermediate values unreadable, backward refused; a tap on the fused Conv's
 * output, set after a pass, sees the values before the ReLU, equal to the full session's. */
static void test_forward_only(void) {
    const int64_t pads[4] = { 1, 1, 1, 1 };
    idl_model *m = wino_model(20, 20, pads, false);
    CHECK(m != NULL);
    if (!m) return;
    int64_t n = 2 * 8 * 20 * 20;
    float *xv = malloc((size_t)n * sizeof *xv);
    uint32_t seed = 77;
    tb_frand_fill(xv, (size_t)n, 1.0f, &seed);
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, 8, 20, 20 }, xv);
    const idl_tensor *in[1] = { &x };
    for (int direct = 0; direct < 2; direct++) {
        idl_session *full = NULL, *fo = NULL;
        idl_session_opts o = idl_session_opts_default();
        o.direct_conv = direct;
        CHECK_OK(idl_session_new(m, &o, &full));
        o.forward_only = 1;
        CHECK_OK(idl_session_new(m, &o, &fo));
        CHECK_OK(idl_session_forward(full, in, NULL, 1));
        CHECK_OK(idl_session_forward(fo, in, NULL, 1));
        const idl_tensor *y = idl_session_output(full, 0), *yf = idl_session_output(fo, 0);
        CHECK(y && yf && !memcmp(y->data, yf->data, sizeof(float) * (size_t)idl_tensor_numel(y)));
        CHECK(idl_session_tensor(fo, "b") == NULL && strstr(idl_last_error(), "forward_only"));
        CHECK(idl_session_tensor(fo, "r") == NULL);
        const idl_tensor *xs = idl_session_tensor(fo, "x");
        CHECK(xs && !memcmp(xs->data, xv, sizeof(float) * (size_t)n));
        idl_objective obj = idl_objective_default();
        const char *wrt = "x";
        CHECK(idl_session_backward(fo, &obj, &wrt, 1) == IDL_ERR_INVALID_ARG);
        /* taps: on the Conv's output (fused away: the plan is made again) and the Relu's */
        tap_copy tb = { 0 }, tr = { 0 };
        CHECK_OK(idl_session_set_tap(fo, "b", tap_copy_fn, &tb));
        CHECK_OK(idl_session_set_tap(fo, "r", tap_copy_fn, &tr));
        CHECK_OK(idl_session_forward(fo, in, NULL, 1));
        const idl_tensor *b = idl_session_tensor(full, "b"), *r = idl_session_tensor(full, "r");
        yf = idl_session_output(fo, 0);
        CHECK(tb.calls == 1 && tr.calls == 1 && b && r);
        CHECK(tb.v && tb.n == idl_tensor_numel(b) &&
              !memcmp(tb.v, b->data, sizeof(float) * (size_t)tb.n));
        CHECK(tr.v && tr.n == idl_tensor_numel(r) &&
              !memcmp(tr.v, r->data, sizeof(float) * (size_t)tr.n));
        float lo = 0;
        for (int64_t i = 0; tb.v && i < tb.n; i++)
            lo = tb.v[i] < lo ? tb.v[i] : lo;
        CHECK_MSG(lo < 0, "the tap on the Conv's output saw no negative value (ReLU applied?)");
        CHECK(yf && !memcmp(y->data, yf->data, sizeof(float) * (size_t)idl_tensor_numel(y)));
        free(tb.v);
        free(tr.v);
        /* a method's forward-only packs (occlusion, 16 rows a pass on a forward-only plan) give
         * what packs of the clean pass's batch on the full plan give, and leave the session
         * usable for a backward */
        idl_explain_request rq = idl_explain_request_default();
        rq.inputs = in;
        rq.n_inputs = 1;
        rq.objective = IDL_OBJ_LOGIT;
        const char *set[] = { "window=4,4", "stride=4,4" };
        idl_explanation e[2];
        for (int j = 0; j < 2; j++) {
            rq.internal_batch = j ? 2 : 0;
            CHECK_OK(idl_explain(full, "occlusion", &rq, set, 2, &e[j]));
            /* the packs ran on a forward-only plan, the clean pass's plan kept as the spare */
            if (!j)
                CHECK(full->plan->kind == IDL__PLAN_FWD && full->spare &&
                      full->spare->kind == IDL__PLAN_FULL);
        }
        CHECK(e[0].passes == e[1].passes && e[0].passes == 2 + 2 * 25);
        float d = max_rel_diff(e[0].attribution, e[1].attribution);
        CHECK_MSG(d < 1e-5f, "occlusion on forward-only packs differs by %g", (double)d);
        for (int j = 0; j < 2; j++)
            idl_explanation_clear(&e[j]);
        CHECK_OK(idl_session_forward(full, in, NULL, 1));
        CHECK_OK(idl_session_backward(full, &obj, &wrt, 1));
        idl_session_free(full);
        idl_session_free(fo);
    }
    free(xv);
    idl_model_free(m);
}

/* The AVX2 op table (on CPUs that have it) against the portable one: same outputs and gradients,
 * to the bit (neither contracts into FMA, and the vector loops keep the scalar order). */
static void test_op_tables(void) {
    idl_model *m = layout_model();
    CHECK(m != NULL);
    if (!m) return;
    float xv[2 * 3 * 144];
    uint32_t seed = 9;
    tb_frand_fill(xv, sizeof xv / sizeof *xv, 1.0f, &seed);
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, 3, 12, 12 }, xv);
    const idl_tensor *in[1] = { &x };
    const char *wrt[1] = { "x" };
    int64_t targets[2] = { 2, 0 };
    idl_objective obj = idl_objective_default();
    obj.targets = targets;
    idl_session *s[2] = { NULL, NULL };
    const idl__op_def *cpu_relu = idl__ops[idl__op_find("Relu", "")];
    bool two_tables = idl__ops_force_portable(true);
    const idl__op_def *portable_relu = idl__ops[idl__op_find("Relu", "")];
#if defined(__x86_64__)
    if (two_tables && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CHECK(cpu_relu != portable_relu); /* the AVX2 table is the one in use */
#endif
    (void)two_tables, (void)cpu_relu, (void)portable_relu;
    for (int k = 0; k < 2; k++) {
        idl__ops_force_portable(k == 1);
        CHECK_OK(idl_session_new(m, NULL, &s[k]));
        CHECK_OK(idl_session_forward(s[k], in, NULL, 1));
        CHECK_OK(idl_session_backward(s[k], &obj, wrt, 1));
    }
    idl__ops_force_portable(false);
    const idl_tensor *y0 = idl_session_output(s[0], 0), *y1 = idl_session_output(s[1], 0);
    const idl_tensor *g0 = idl_session_grad(s[0], "x"), *g1 = idl_session_grad(s[1], "x");
    CHECK(y0 && y1 && !memcmp(y0->data, y1->data, idl__tensor_bytes(y0)));
    CHECK(g0 && g1 && !memcmp(g0->data, g1->data, idl__tensor_bytes(g0)));
    for (int k = 0; k < 2; k++)
        idl_session_free(s[k]);
    idl_model_free(m);
}

/* Writes sin(k * i) over the whole tensor. */
static void sine_tap(const char *name, idl_tensor *v, void *user) {
    float k = *(const float *)user, *d = v->data;
    for (int64_t i = 0; i < idl_tensor_numel(v); i++)
        d[i] = sinf(k * (float)i);
    (void)name;
}

/* A resumed pass (the inputs of the last one, the only tap rewriting an intermediate tensor whole)
 * runs only what follows that tensor, and gives what a full pass gives: outputs and gradients. */
static void test_resume(void) {
    idl_model *m = layout_model();
    CHECK(m != NULL);
    if (!m) return;
    idl_session *a = NULL, *b = NULL;
    CHECK_OK(idl_session_new(m, NULL, &a));
    CHECK_OK(idl_session_new(m, NULL, &b));
    float xv[2 * 3 * 144], xw[2 * 3 * 144];
    uint32_t seed = 11;
    for (size_t i = 0; i < sizeof xv / sizeof *xv; i++) {
        xv[i] = tb_frand(&seed);
        xw[i] = tb_frand(&seed);
    }
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, 3, 12, 12 }, xv);
    idl_tensor x2 = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, 3, 12, 12 }, xw);
    float ka = 1.0f, kb = 1.0f;
    CHECK_OK(idl_session_set_tap(a, "r2", sine_tap, &ka));
    CHECK_OK(idl_session_set_tap(b, "r2", sine_tap, &kb));
    CHECK_OK(idl__session_resume_from(a, "r2"));
    int r2 = idl__model_find(m, "r2");
    const char *wrt[1] = { "r2" };
    idl_objective obj = idl_objective_default();
    const float ks[4] = { 1.0f, 0.3f, 0.7f, 0.7f };
    for (int pass = 0; pass < 4; pass++) {
        ka = kb = ks[pass];
        const idl_tensor *in[1] = { pass == 3 ? &x2 : &x }; /* new inputs: a full pass again */
        a->plan ? (void)(a->plan->down_from = -1) : (void)0;
        CHECK_OK(idl_session_forward(a, in, NULL, 1));
        CHECK_OK(idl_session_forward(b, in, NULL, 1));
        bool resumed = a->plan->down_from == r2;
        CHECK_MSG(resumed == (pass == 1 || pass == 2), "pass %d resumed %d", pass, (int)resumed);
        CHECK(max_rel_diff(idl_session_output(a, 0), idl_session_output(b, 0)) == 0.0f);
        CHECK_OK(idl_session_backward(a, &obj, wrt, 1));
        CHECK_OK(idl_session_backward(b, &obj, wrt, 1));
        CHECK(max_rel_diff(idl_session_grad(a, "r2"), idl_session_grad(b, "r2")) == 0.0f);
    }
    CHECK_OK(idl__session_resume_from(a, NULL));
    CHECK(idl__session_resume_from(a, "nope") == IDL_ERR_NOT_FOUND);
    idl_session_free(a);
    idl_session_free(b);
    idl_model_free(m);
}

/* The vectorisable exp and erf against double precision over their ranges, and their edges. */
static void test_vmath(void) {
    double worst_exp = 0, worst_erf = 0, worst_erf_rel = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.0f + 87.5f * (float)i / 2000000.0f; /* [-87, 0.5] */
        double r = exp((double)x), e = fabs((double)idl__vexp(x) - r) / r;
        worst_exp = e > worst_exp ? e : worst_exp;
        float z = -5.0f + 10.0f * (float)i / 2000000.0f;
        double ez = fabs((double)idl__verf(z) - erf((double)z));
        worst_erf = ez > worst_erf ? ez : worst_erf;
        if (fabsf(z) < 1.0f && z != 0.0f) {
            double rel = ez / fabs(erf((double)z));
            worst_erf_rel = rel > worst_erf_rel ? rel : worst_erf_rel;
        }
    }
    CHECK_MSG(worst_exp < 3e-7, "exp relative error %g", worst_exp);
    CHECK_MSG(worst_erf < 5e-7, "erf absolute error %g", worst_erf);
    CHECK_MSG(worst_erf_rel < 3e-7, "erf relative error near 0 %g", worst_erf_rel);
    CHECK(idl__vexp(0.0f) == 1.0f && idl__vexp(-INFINITY) == 0.0f && idl__vexp(-100.0f) == 0.0f);
    CHECK(isnan(idl__vexp(NAN)) && isnan(idl__verf(NAN)));
    CHECK(idl__verf(0.0f) == 0.0f && idl__verf(10.0f) == 1.0f && idl__verf(-INFINITY) == -1.0f);
    CHECK(idl__verf(1e-30f) > 0.0f && idl__verf(-1e-30f) < 0.0f);
}

/* A part of a model (idl__model_sub): the nodes between two values, run as a model of its own,
 * give what the whole model computes there; a part that needs another graph input, or an output
 * that does not depend on the part's input, is refused naming the tensors. */
static void test_model_sub(void) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 4, (int64_t[]){ -1, 2, 5, 6 });
    tb_input_sym(b, "z", IDL_DT_F32, 4, (int64_t[]){ -1, 3, 5, 6 });
    float w[3 * 2 * 9], bias[3] = { 0.1f, -0.2f, 0.3f };
    uint32_t seed = 9;
    tb_frand_fill(w, sizeof w / sizeof *w, 0.5f, &seed);
    tb_init_f32(b, "w", 4, (int64_t[]){ 3, 2, 3, 3 }, w);
    tb_init_f32(b, "b", 1, (int64_t[]){ 3 }, bias);
    tb_node(b, "Relu", "x", "r");
    tb_node(b, "Conv", "r,w,b", "c");
    tb_attr_ints(b, "pads", 4, (int64_t[]){ 1, 1, 1, 1 });
    tb_node(b, "Sigmoid", "c", "sg");
    tb_node(b, "Add", "sg,z", "y");
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    CHECK(m != NULL);
    if (!m) return;
    idl_model *sub = NULL;
    CHECK_OK(idl__model_sub(m, idl__model_find(m, "r"), idl__model_find(m, "sg"), &sub));
    float xv[2 * 2 * 5 * 6], zv[2 * 3 * 5 * 6];
    tb_frand_fill(xv, sizeof xv / sizeof *xv, 1.0f, &seed);
    tb_frand_fill(zv, sizeof zv / sizeof *zv, 1.0f, &seed);
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, 2, 5, 6 }, xv);
    idl_tensor z = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 2, 3, 5, 6 }, zv);
    idl_session *s = NULL, *ss = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    if (sub) {
        CHECK_EQ_INT(idl_model_n_inputs(sub), 1);
        CHECK_EQ_INT(idl_model_n_nodes(sub), 2); /* Conv, Sigmoid */
        CHECK_OK(idl_session_new(sub, NULL, &ss));
    }
    if (s && ss) {
        const idl_tensor *in[2] = { &x, &z };
        CHECK_OK(idl_session_forward(s, in, NULL, 2));
        const idl_tensor *r = idl_session_tensor(s, "r");
        const idl_tensor *sin[1] = { r };
        CHECK_OK(idl_session_forward(ss, sin, NULL, 1));
        const idl_tensor *a = idl_session_output(ss, 0), *e = idl_session_tensor(s, "sg");
        CHECK(a && e && idl_tensor_numel(a) == idl_tensor_numel(e));
        if (a && e) th_allclose("model part", a->data, e->data, idl_tensor_numel(e), 0, 0);
    }
    idl_session_free(ss);
    idl_session_free(s);
    idl_model_free(sub);
    idl_status st = idl__model_sub(m, idl__model_find(m, "r"), idl__model_find(m, "y"), &sub);
    CHECK_MSG(st == IDL_ERR_INVALID_ARG && strstr(idl_last_error(), "'z'") && !sub,
              "a part needing another input: %d (%s)", (int)st, idl_last_error());
    st = idl__model_sub(m, idl__model_find(m, "c"), idl__model_find(m, "r"), &sub);
    CHECK_MSG(st == IDL_ERR_INVALID_ARG && strstr(idl_last_error(), "'x'") && !sub,
              "a part whose output comes before its input: %d (%s)", (int)st, idl_last_error());
    idl_model_free(m);
}

int main(void) {
    idl_log_set(NULL, NULL, IDL_LOG_ERROR);
    test_npy();
    test_model_queries();
    test_model_sub();
    test_forward_and_grad();
    test_taps();
    test_layouts();
    test_winograd();
    test_narrow_grad();
    test_forward_only();
    test_forward_only_fusions();
    test_rowfuse();
    test_const_weight_products();
    test_save_for_backward();
    test_derived_shared();
    test_op_tables();
    test_vmath();
    test_resume();
    test_param_grad();
    test_abort();
    test_oom_sweep();
    TEST_SUMMARY();
}

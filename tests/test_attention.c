/* test_attention.c — attention discovery on small transformers built in memory: two pre-norm-free
 * blocks with (N,H,S,S) attention, a class-token head; a patch-embedding variant that must yield
 * the token grid; overrides; gradients at every attention map in one backward. */
#include "harness.h"
#include "interpretdl/interpretdl.h"
#include "model_builder.h"

#define S 5 /* tokens */
#define D 6 /* width */
#define H 2 /* heads */

static float w_[D * D];

static void weights(tb_model *b, const char *name, int rows, int cols, float scale) {
    for (int i = 0; i < rows * cols; i++)
        w_[i] = scale * (float)((i * 37 + 11) % 17 - 8) / 8.0f;
    tb_init_f32(b, name, 2, (int64_t[]){ rows, cols }, w_);
}

/* one attention block reading `x`, writing `out`; names are suffixed with k */
static void block(tb_model *b, const char *x, const char *out, int k) {
    char n[32][48];
#define NM(i, fmt) snprintf(n[i], sizeof n[i], fmt "%d", k)
    NM(0, "wq"), NM(1, "wk"), NM(2, "wv"), NM(3, "wo");
    weights(b, n[0], D, D, 0.5f);
    weights(b, n[1], D, D, -0.4f);
    weights(b, n[2], D, D, 0.3f);
    weights(b, n[3], D, D, 0.2f);
    char in[160];
    const char *heads_shape = "hs";
    const char *proj[3] = { "q", "k", "v" };
    for (int j = 0; j < 3; j++) {
        char lin[16], r[16], t[16];
        snprintf(lin, sizeof lin, "%slin%d", proj[j], k);
        snprintf(r, sizeof r, "%sr%d", proj[j], k);
        snprintf(t, sizeof t, "%st%d", proj[j], k);
        snprintf(in, sizeof in, "%s,%s", x, n[j]);
        tb_node(b, "MatMul", in, lin);
        snprintf(in, sizeof in, "%s,%s", lin, heads_shape);
        tb_node(b, "Reshape", in, r);
        tb_node(b, "Transpose", r, t);
        if (j == 1)
            tb_attr_ints(b, "perm", 4, (int64_t[]){ 0, 2, 3, 1 }); /* K^T */
        else
            tb_attr_ints(b, "perm", 4, (int64_t[]){ 0, 2, 1, 3 });
    }
    NM(4, "scores"), NM(5, "scaled"), NM(6, "p"), NM(7, "ctx"), NM(8, "ctxt"), NM(9, "ctxr"),
        NM(10, "proj");
    NM(11, "projb"), NM(12, "bo");
    snprintf(in, sizeof in, "qt%d,kt%d", k, k);
    tb_node(b, "MatMul", in, n[4]);
    snprintf(in, sizeof in, "%s,scale", n[4]);
    tb_node(b, "Mul", in, n[5]);
    tb_node(b, "Softmax", n[5], n[6]);
    tb_attr_int(b, "axis", -1);
    snprintf(in, sizeof in, "%s,vt%d", n[6], k);
    tb_node(b, "MatMul", in, n[7]);
    tb_node(b, "Transpose", n[7], n[8]);
    tb_attr_ints(b, "perm", 4, (int64_t[]){ 0, 2, 1, 3 });
    snprintf(in, sizeof in, "%s,flat", n[8]);
    tb_node(b, "Reshape", in, n[9]);
    snprintf(in, sizeof in, "%s,%s", n[9], n[3]);
    tb_node(b, "MatMul", in, n[10]);
    float bias[D] = { 0.1f, -0.1f, 0.2f, 0, 0.05f, -0.2f };
    tb_init_f32(b, n[12], 1, (int64_t[]){ D }, bias);
    snprintf(in, sizeof in, "%s,%s", n[10], n[12]);
    tb_node(b, "Add", in, n[11]);
    snprintf(in, sizeof in, "%s,%s", x, n[11]);
    tb_node(b, "Add", in, out);
#undef NM
}

static void common(tb_model *b) {
    tb_init_ints(b, "hs", 4, (int64_t[]){ 0, 0, H, D / H });
    tb_init_ints(b, "flat", 3, (int64_t[]){ 0, 0, D });
    float sc = 0.57735f;
    tb_init_f32(b, "scale", 0, (int64_t[]){ 1 }, &sc);
}

static void head(tb_model *b, const char *x) {
    tb_init_i64(b, "zero", 0, (int64_t[]){ 1 }, (int64_t[]){ 0 });
    char in[64];
    snprintf(in, sizeof in, "%s,zero", x);
    tb_node(b, "Gather", in, "cls");
    tb_attr_int(b, "axis", 1);
    weights(b, "wc", D, 3, 1.0f);
    tb_node(b, "MatMul", "cls,wc", "logits");
    tb_output(b, "logits");
}

static idl_model *text_like(void) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 3, (int64_t[]){ -1, S, D });
    common(b);
    block(b, "x", "out0", 0);
    block(b, "out0", "out1", 1);
    head(b, "out1");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

/* image (N,3,4,4) -> Conv 2x2/2 -> (N,D,2,2) -> (N,4,D) -> [cls token] -> (N,5,D) -> blocks */
static idl_model *vit_like(void) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "img", IDL_DT_F32, 4, (int64_t[]){ -1, 3, 4, 4 });
    common(b);
    float cw[D * 3 * 4];
    for (int i = 0; i < D * 12; i++)
        cw[i] = (float)((i * 13 + 5) % 11 - 5) / 10.0f;
    tb_init_f32(b, "patch_w", 4, (int64_t[]){ D, 3, 2, 2 }, cw);
    tb_node(b, "Conv", "img,patch_w", "patches");
    tb_attr_ints(b, "kernel_shape", 2, (int64_t[]){ 2, 2 });
    tb_attr_ints(b, "strides", 2, (int64_t[]){ 2, 2 });
    tb_init_ints(b, "seq_shape", 3, (int64_t[]){ 0, D, 4 });
    tb_node(b, "Reshape", "patches,seq_shape", "pr");
    tb_node(b, "Transpose", "pr", "tokens");
    tb_attr_ints(b, "perm", 3, (int64_t[]){ 0, 2, 1 });
    /* class token: a slice of the tokens scaled by zero plus a constant, to keep the batch free */
    tb_init_ints(b, "s0", 1, (int64_t[]){ 0 });
    tb_init_ints(b, "s1", 1, (int64_t[]){ 1 });
    tb_init_ints(b, "ax1", 1, (int64_t[]){ 1 });
    tb_node(b, "Slice", "tokens,s0,s1,ax1", "first");
    float zero = 0.0f;
    tb_init_f32(b, "zf", 0, (int64_t[]){ 1 }, &zero);
    tb_node(b, "Mul", "first,zf", "clsz");
    float clsv[D] = { 0.1f, 0.2f, 0.3f, -0.1f, -0.2f, -0.3f };
    tb_init_f32(b, "cls_tok", 3, (int64_t[]){ 1, 1, D }, clsv);
    tb_node(b, "Add", "clsz,cls_tok", "clst");
    tb_node(b, "Concat", "clst,tokens", "emb");
    tb_attr_int(b, "axis", 1);
    block(b, "emb", "out0", 0);
    block(b, "out0", "out1", 1);
    head(b, "out1");
    idl_model *m = tb_load(b);
    tb_free(b);
    return m;
}

static void scale_tap(const char *name, idl_tensor *v, void *user) {
    (void)name;
    float f = *(const float *)user, *d = v->data;
    for (int64_t i = 0; i < idl_tensor_numel(v); i++)
        d[i] *= f;
}

/* scaling the embedding output through a tap (text Integrated Gradients) equals scaling the input
 */
static void test_embedding_tap(idl_session *s, const idl_attention_info *a, float *xv) {
    float alpha = 0.25f, ref[2 * 3], got[2 * 3];
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 3, (int64_t[]){ 2, S, D }, xv);
    const idl_tensor *in[1] = { &x };
    for (int i = 0; i < 2 * S * D; i++)
        xv[i] *= alpha;
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    memcpy(ref, idl_session_output(s, 0)->data, sizeof ref);
    for (int i = 0; i < 2 * S * D; i++)
        xv[i] /= alpha;
    CHECK_OK(idl_session_set_tap(s, a->embedding, scale_tap, &alpha));
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    memcpy(got, idl_session_output(s, 0)->data, sizeof got);
    CHECK_OK(idl_session_set_tap(s, a->embedding, NULL, NULL));
    th_allclose("embedding tap", got, ref, 6, 1e-6, 1e-7);
}

static void test_text_like(void) {
    idl_model *m = text_like();
    CHECK(m != NULL);
    if (!m) return;
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    const idl_attention_info *a = NULL;
    CHECK(idl_session_attention(s, NULL, 0, &a) == IDL_ERR_INVALID_ARG); /* no forward yet */
    float xv[2 * S * D];
    for (int i = 0; i < 2 * S * D; i++)
        xv[i] = (float)((i * 7) % 13 - 6) / 6.0f;
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 3, (int64_t[]){ 2, S, D }, xv);
    const idl_tensor *in[1] = { &x };
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    CHECK_OK(idl_session_attention(s, NULL, 0, &a));
    CHECK_EQ_INT(a->n_blocks, 2);
    if (a->n_blocks == 2) {
        CHECK(!strcmp(a->blocks[0].probs, "p0") && !strcmp(a->blocks[1].probs, "p1"));
        CHECK(!strcmp(a->blocks[0].scores, "scaled0"));
        CHECK(!strcmp(a->blocks[0].value, "vt0") && !strcmp(a->blocks[1].value, "vt1"));
        CHECK(!strcmp(a->blocks[0].context, "ctx0"));
        CHECK(a->blocks[0].out_proj_weight && !strcmp(a->blocks[0].out_proj_weight, "wo0"));
        CHECK(a->blocks[0].out_proj_transposed == 0);
        CHECK(a->blocks[0].block_input && !strcmp(a->blocks[0].block_input, "x"));
        CHECK(a->blocks[1].block_input && !strcmp(a->blocks[1].block_input, "out0"));
        CHECK(a->blocks[1].block_output && !strcmp(a->blocks[1].block_output, "out1"));
        CHECK_EQ_INT(a->blocks[0].heads, H);
        CHECK_EQ_INT(a->blocks[0].seq_len, S);
        CHECK(a->embedding && !strcmp(a->embedding, "x"));
        CHECK(a->grid_h == 0 && a->patch_conv == NULL);
        CHECK_EQ_INT(a->pooling, IDL_POOL_CLS);
        /* attention maps and their gradients in one pass */
        idl_objective obj = idl_objective_default();
        const char *wrt[3] = { a->blocks[0].probs, a->blocks[1].probs, a->embedding };
        CHECK_OK(idl_session_backward(s, &obj, wrt, 3));
        const idl_tensor *g0 = idl_session_grad(s, "p0"), *p0 = idl_session_tensor(s, "p0");
        CHECK(g0 && p0 && g0->ndim == 4 && g0->shape[1] == H && g0->shape[3] == S);
        double mag = 0;
        for (int64_t i = 0; g0 && i < idl_tensor_numel(g0); i++)
            mag += fabs(((float *)g0->data)[i]);
        CHECK(mag > 0 && isfinite(mag));
        /* rows of the attention maps sum to 1 */
        const float *pv = p0->data;
        double worst = 0;
        for (int64_t r = 0; r < idl_tensor_numel(p0) / S; r++) {
            double sum = 0;
            for (int j = 0; j < S; j++)
                sum += pv[r * S + j];
            worst = fmax(worst, fabs(sum - 1));
        }
        CHECK(worst < 1e-5);
    }
    test_embedding_tap(s, a, xv);
    /* overrides */
    const char *ov1[3] = { "pooling=mean", "probs=scores*", "prefix=1" };
    CHECK_OK(idl_session_attention(s, ov1, 3, &a));
    CHECK(a->pooling == IDL_POOL_MEAN && a->n_prefix == 1);
    CHECK(!strcmp(a->blocks[0].probs, "scores0") && !strcmp(a->blocks[1].probs, "scores1"));
    const char *bad1[1] = { "probs=nomatch*" };
    CHECK(idl_session_attention(s, bad1, 1, &a) == IDL_ERR_NOT_FOUND && a == NULL);
    const char *bad2[1] = { "probs=p0" };
    CHECK(idl_session_attention(s, bad2, 1, &a) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "matches 1 tensors but the model has 2") != NULL);
    const char *bad3[1] = { "grid=3x3" };
    CHECK(idl_session_attention(s, bad3, 1, &a) == IDL_ERR_SHAPE);
    const char *bad4[1] = { "heads=4" };
    CHECK(idl_session_attention(s, bad4, 1, &a) == IDL_ERR_INVALID_ARG);
    const char *bad5[1] = { "embedding=xx" };
    CHECK(idl_session_attention(s, bad5, 1, &a) == IDL_ERR_NOT_FOUND);
    const char *ok[2] = { "grid=2x2", "embedding=out0" };
    CHECK_OK(idl_session_attention(s, ok, 2, &a));
    CHECK(a->grid_h == 2 && a->grid_w == 2 && a->n_prefix == 1 && !strcmp(a->embedding, "out0"));
    idl_session_free(s);
    idl_model_free(m);
}

static void test_vit_like(void) {
    idl_model *m = vit_like();
    CHECK(m != NULL);
    if (!m) return;
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    float xv[3 * 16];
    for (int i = 0; i < 48; i++)
        xv[i] = (float)((i * 5) % 9 - 4) / 4.0f;
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 4, (int64_t[]){ 1, 3, 4, 4 }, xv);
    const idl_tensor *in[1] = { &x };
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    const idl_attention_info *a = NULL;
    CHECK_OK(idl_session_attention(s, NULL, 0, &a));
    CHECK_EQ_INT(a->n_blocks, 2);
    CHECK(a->embedding && !strcmp(a->embedding, "emb"));
    CHECK(a->patch_conv && !strcmp(a->patch_conv, "patches"));
    CHECK(a->grid_h == 2 && a->grid_w == 2);
    CHECK_EQ_INT(a->n_prefix, 1);
    CHECK_EQ_INT(a->pooling, IDL_POOL_CLS);
    idl_session_free(s);
    idl_model_free(m);
}

/* a CNN has no attention */
static void test_none(void) {
    tb_model *b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 2, (int64_t[]){ 1, 4 });
    tb_node(b, "Softmax", "x", "y");
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    float xv[4] = { 1, 2, 3, 4 };
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 1, 4 }, xv);
    const idl_tensor *in[1] = { &x };
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    const idl_attention_info *a = NULL;
    CHECK_OK(idl_session_attention(s, NULL, 0, &a));
    CHECK(a && a->n_blocks == 0 && a->embedding == NULL);
    idl_session_free(s);
    idl_model_free(m);
}

int main(void) {
    idl_log_set(NULL, NULL, IDL_LOG_ERROR);
    test_text_like();
    test_vit_like();
    test_none();
    TEST_SUMMARY();
}

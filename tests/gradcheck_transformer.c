/* gradcheck_transformer.c — gradient-check cases for src/ops/transformer.c: LayerNormalization
 * (axis -1 and 1, with and without B, through the Mean / InvStdDev outputs, broadcast Scale),
 * Gelu (erf and tanh), Einsum (attention products, batched matmul, transpose, reduction,
 * diagonal, broadcast batch, full contraction, transposed output, implicit form), Sin, Cos,
 * CumSum (default, exclusive + reverse, axis 0) and Trilu (upper, lower with k). The models are
 * built at opset 13: the registry is by name, so the opset-17/20 ops run there too. */
#include "gradcheck.h"

static const int64_t S234[3] = { 2, 3, 4 };

/* LayerNormalization on x (2,3,4); scale/bias of the normalized shape */
#define LN_CASE(fn, AXIS, HAS_B, STATS)                                                            \
    static void fn(tb_model *b) {                                                                  \
        const int64_t *ns = S234 + ((AXIS) < 0 ? 3 + (AXIS) : (AXIS));                             \
        int nn = 3 - ((AXIS) < 0 ? 3 + (AXIS) : (AXIS));                                           \
        tb_input(b, "x", IDL_DT_F32, 3, S234);                                                     \
        tb_input(b, "w", IDL_DT_F32, nn, ns);                                                      \
        if (HAS_B) tb_input(b, "bias", IDL_DT_F32, nn, ns);                                        \
        tb_node(b, "LayerNormalization", HAS_B ? "x,w,bias" : "x,w", STATS ? "y,mean,istd" : "y"); \
        tb_attr_int(b, "axis", AXIS);                                                              \
        tb_output(b, "y");                                                                         \
        if (STATS) {                                                                               \
            tb_output(b, "mean");                                                                  \
            tb_output(b, "istd");                                                                  \
        }                                                                                          \
    }
LN_CASE(b_ln_last_b, -1, 1, 0)
LN_CASE(b_ln_last, -1, 0, 0)
LN_CASE(b_ln_1_b, 1, 1, 0)
LN_CASE(b_ln_1, 1, 0, 0)
LN_CASE(b_ln_stats, 1, 1, 1)

static void b_ln_bcast(tb_model *b) { /* axis 1, scale (4) broadcast over (3,4), bias (1,4) */
    const int64_t ws[1] = { 4 }, bs[2] = { 1, 4 };
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_input(b, "w", IDL_DT_F32, 1, ws);
    tb_input(b, "bias", IDL_DT_F32, 2, bs);
    tb_node(b, "LayerNormalization", "x,w,bias", "y");
    tb_attr_int(b, "axis", 1);
    tb_attr_float(b, "epsilon", 1e-3f);
    tb_output(b, "y");
}

static void b_gelu(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Gelu", "x", "y");
    tb_output(b, "y");
}
static void b_gelu_tanh(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Gelu", "x", "y");
    tb_attr_str(b, "approximate", "tanh");
    tb_output(b, "y");
}
static void b_sin(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Sin", "x", "y");
    tb_output(b, "y");
}
static void b_cos(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Cos", "x", "y");
    tb_output(b, "y");
}

/* Einsum with one or two inputs of the given shapes */
static void einsum2(tb_model *b, const char *eq, int na, const int64_t *sa, int nb,
                    const int64_t *sb) {
    tb_input(b, "a", IDL_DT_F32, na, sa);
    if (sb) tb_input(b, "b", IDL_DT_F32, nb, sb);
    tb_node(b, "Einsum", sb ? "a,b" : "a", "y");
    tb_attr_str(b, "equation", eq);
    tb_output(b, "y");
}
static void b_es_qk(tb_model *b) {
    einsum2(b, "bhid,bhjd->bhij", 4, (int64_t[]){ 2, 2, 3, 4 }, 4, (int64_t[]){ 2, 2, 5, 4 });
}
static void b_es_av(tb_model *b) {
    einsum2(b, "bhij,bhjd->bhid", 4, (int64_t[]){ 2, 2, 3, 5 }, 4, (int64_t[]){ 2, 2, 5, 4 });
}
static void b_es_bmm(tb_model *b) {
    einsum2(b, "bij,bjk->bik", 3, (int64_t[]){ 2, 3, 4 }, 3, (int64_t[]){ 2, 4, 5 });
}
static void b_es_transpose(tb_model *b) {
    einsum2(b, "ij->ji", 2, (int64_t[]){ 3, 4 }, 0, NULL);
}
static void b_es_rowsum(tb_model *b) {
    einsum2(b, "ij->i", 2, (int64_t[]){ 3, 4 }, 0, NULL);
}
static void b_es_diag(tb_model *b) {
    einsum2(b, "...ii->...i", 3, (int64_t[]){ 2, 4, 4 }, 0, NULL);
}
static void b_es_bcast(tb_model *b) { /* A's batch axis (1) broadcasts against B's (3) */
    einsum2(b, "...ij,...jk->...ik", 3, (int64_t[]){ 1, 3, 4 }, 3, (int64_t[]){ 3, 4, 5 });
}
static void b_es_shared_w(tb_model *b) { /* B without batch: folds into M */
    einsum2(b, "bsd,de->bse", 3, (int64_t[]){ 2, 3, 4 }, 2, (int64_t[]){ 4, 5 });
}
static void b_es_full(tb_model *b) {
    einsum2(b, "ij,ij->", 2, (int64_t[]){ 3, 4 }, 2, (int64_t[]){ 3, 4 });
}
static void b_es_tout(tb_model *b) { /* output transposed, a label summed out of B only */
    einsum2(b, "bij,bjkl->bki", 3, (int64_t[]){ 2, 3, 4 }, 4, (int64_t[]){ 2, 4, 5, 2 });
}
static void b_es_implicit(tb_model *b) {
    einsum2(b, "ij,jk", 2, (int64_t[]){ 3, 4 }, 2, (int64_t[]){ 4, 5 });
}

static void cumsum(tb_model *b, int64_t axis, int excl, int rev) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_init_i64(b, "axis", 0, NULL, &axis);
    tb_node(b, "CumSum", "x,axis", "y");
    if (excl) tb_attr_int(b, "exclusive", 1);
    if (rev) tb_attr_int(b, "reverse", 1);
    tb_output(b, "y");
}
static void b_cumsum(tb_model *b) {
    cumsum(b, -1, 0, 0);
}
static void b_cumsum_er(tb_model *b) {
    cumsum(b, 1, 1, 1);
}
static void b_cumsum_0(tb_model *b) {
    cumsum(b, 0, 0, 1);
}

static void b_triu(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, (int64_t[]){ 2, 4, 5 });
    tb_node(b, "Trilu", "x", "y");
    tb_output(b, "y");
}
static void b_tril_k(tb_model *b) {
    int64_t k = -1;
    tb_input(b, "x", IDL_DT_F32, 3, (int64_t[]){ 2, 4, 5 });
    tb_init_i64(b, "k", 0, NULL, &k);
    tb_node(b, "Trilu", "x,k", "y");
    tb_attr_int(b, "upper", 0);
    tb_output(b, "y");
}

const gc_case gc_cases_transformer[] = {
    { "LayerNormalization/axis -1 B", "LayerNormalization", b_ln_last_b, 0, 0 },
    { "LayerNormalization/axis -1", "LayerNormalization", b_ln_last, 0, 0 },
    { "LayerNormalization/axis 1 B", "LayerNormalization", b_ln_1_b, 0, 0 },
    { "LayerNormalization/axis 1", "LayerNormalization", b_ln_1, 0, 0 },
    { "LayerNormalization/Mean InvStdDev", "LayerNormalization", b_ln_stats, 0, 0 },
    { "LayerNormalization/broadcast scale", "LayerNormalization", b_ln_bcast, 0, 0 },
    { "Gelu/erf", "Gelu", b_gelu, 0, 0 },
    { "Gelu/tanh", "Gelu", b_gelu_tanh, 0, 0 },
    { "Einsum/bhid,bhjd->bhij", "Einsum", b_es_qk, 0, 0 },
    { "Einsum/bhij,bhjd->bhid", "Einsum", b_es_av, 0, 0 },
    { "Einsum/bij,bjk->bik", "Einsum", b_es_bmm, 0, 0 },
    { "Einsum/ij->ji", "Einsum", b_es_transpose, 0, 0 },
    { "Einsum/ij->i", "Einsum", b_es_rowsum, 0, 0 },
    { "Einsum/...ii->...i", "Einsum", b_es_diag, 0, 0 },
    { "Einsum/broadcast batch", "Einsum", b_es_bcast, 0, 0 },
    { "Einsum/bsd,de->bse", "Einsum", b_es_shared_w, 0, 0 },
    { "Einsum/ij,ij->", "Einsum", b_es_full, 0, 0 },
    { "Einsum/bij,bjkl->bki", "Einsum", b_es_tout, 0, 0 },
    { "Einsum/implicit ij,jk", "Einsum", b_es_implicit, 0, 0 },
    { "Sin", "Sin", b_sin, 0, 0 },
    { "Cos", "Cos", b_cos, 0, 0 },
    { "CumSum/last axis", "CumSum", b_cumsum, 0, 0 },
    { "CumSum/exclusive reverse", "CumSum", b_cumsum_er, 0, 0 },
    { "CumSum/axis 0 reverse", "CumSum", b_cumsum_0, 0, 0 },
    { "Trilu/upper", "Trilu", b_triu, 0, 0 },
    { "Trilu/lower k=-1", "Trilu", b_tril_k, 0, 0 },
    GC_END
};

/* gradcheck_conv_pool.c — gradient-check cases for src/ops/conv.c (Conv, ConvTranspose),
 * src/ops/pool.c (MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool), src/ops/norm.c
 * (BatchNormalization) and src/ops/gemm.c (Gemm, MatMul). Every float input is a graph input
 * (differentiated) except where a value must stay positive (BatchNormalization's var). */
#include "gradcheck.h"

#define SH(...)   ((const int64_t[]){ __VA_ARGS__ })
#define INTS(...) (int)(sizeof((const int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), SH(__VA_ARGS__)

/* ---- Conv ---- */
static void b_conv_pads_strides(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(1, 2, 5, 5));
    tb_input(b, "w", IDL_DT_F32, 4, SH(3, 2, 3, 3));
    tb_input(b, "b", IDL_DT_F32, 1, SH(3));
    tb_node(b, "Conv", "x,w,b", "y");
    tb_attr_ints(b, "strides", INTS(2, 2));
    tb_attr_ints(b, "pads", INTS(1, 0, 1, 2));
    tb_output(b, "y");
}
static void b_conv_groups(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(1, 4, 4, 4));
    tb_input(b, "w", IDL_DT_F32, 4, SH(4, 2, 3, 3));
    tb_input(b, "b", IDL_DT_F32, 1, SH(4));
    tb_node(b, "Conv", "x,w,b", "y");
    tb_attr_int(b, "group", 2);
    tb_attr_ints(b, "pads", INTS(1, 1, 1, 1));
    tb_output(b, "y");
}
static void b_conv_depthwise(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(2, 3, 4, 4));
    tb_input(b, "w", IDL_DT_F32, 4, SH(3, 1, 3, 3));
    tb_input(b, "b", IDL_DT_F32, 1, SH(3));
    tb_node(b, "Conv", "x,w,b", "y");
    tb_attr_int(b, "group", 3);
    tb_attr_ints(b, "kernel_shape", INTS(3, 3));
    tb_attr_ints(b, "pads", INTS(1, 1, 1, 1));
    tb_output(b, "y");
}
static void b_conv_dilation(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(1, 2, 6, 6));
    tb_input(b, "w", IDL_DT_F32, 4, SH(2, 2, 2, 2));
    tb_input(b, "b", IDL_DT_F32, 1, SH(2));
    tb_node(b, "Conv", "x,w,b", "y");
    tb_attr_ints(b, "dilations", INTS(2, 2));
    tb_attr_ints(b, "pads", INTS(1, 0, 0, 1));
    tb_output(b, "y");
}
static void b_conv_1d(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, SH(2, 3, 7));
    tb_input(b, "w", IDL_DT_F32, 3, SH(4, 3, 3));
    tb_input(b, "b", IDL_DT_F32, 1, SH(4));
    tb_node(b, "Conv", "x,w,b", "y");
    tb_attr_ints(b, "strides", INTS(2));
    tb_attr_ints(b, "pads", INTS(1, 1));
    tb_output(b, "y");
}
static void b_conv_nobias(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(2, 2, 4, 4));
    tb_input(b, "w", IDL_DT_F32, 4, SH(3, 2, 2, 2));
    tb_node(b, "Conv", "x,w", "y");
    tb_attr_str(b, "auto_pad", "SAME_UPPER");
    tb_attr_ints(b, "strides", INTS(2, 1));
    tb_output(b, "y");
}
static void b_conv_3d(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 5, SH(1, 2, 3, 4, 3));
    tb_input(b, "w", IDL_DT_F32, 5, SH(2, 2, 2, 2, 2));
    tb_input(b, "b", IDL_DT_F32, 1, SH(2));
    tb_node(b, "Conv", "x,w,b", "y");
    tb_attr_ints(b, "pads", INTS(0, 1, 0, 1, 0, 1));
    tb_output(b, "y");
}
/* a 1x1 convolution (the plain-layout path) on a constant weight (reordered once at plan time) */
static void b_conv_1x1_const(tb_model *b) {
    static const float w[6] = { 0.5f, -1.0f, 0.25f, 1.5f, -0.75f, 2.0f };
    tb_input(b, "x", IDL_DT_F32, 4, SH(2, 2, 5, 5));
    tb_init_f32(b, "w", 4, SH(3, 2, 1, 1), w);
    tb_node(b, "Conv", "x,w", "y");
    tb_output(b, "y");
}

/* ---- ConvTranspose ---- */
static void b_convt_strides(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(1, 2, 3, 3));
    tb_input(b, "w", IDL_DT_F32, 4, SH(2, 3, 3, 3));
    tb_input(b, "b", IDL_DT_F32, 1, SH(3));
    tb_node(b, "ConvTranspose", "x,w,b", "y");
    tb_attr_ints(b, "strides", INTS(2, 2));
    tb_attr_ints(b, "output_padding", INTS(1, 1));
    tb_attr_ints(b, "pads", INTS(1, 0, 1, 1));
    tb_output(b, "y");
}
static void b_convt_groups(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(1, 4, 3, 3));
    tb_input(b, "w", IDL_DT_F32, 4, SH(4, 1, 3, 3));
    tb_input(b, "b", IDL_DT_F32, 1, SH(2));
    tb_node(b, "ConvTranspose", "x,w,b", "y");
    tb_attr_int(b, "group", 2);
    tb_attr_ints(b, "strides", INTS(2, 2));
    tb_output(b, "y");
}
static void b_convt_1d_dil(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, SH(2, 2, 4));
    tb_input(b, "w", IDL_DT_F32, 3, SH(2, 2, 3));
    tb_node(b, "ConvTranspose", "x,w", "y");
    tb_attr_ints(b, "dilations", INTS(2));
    tb_attr_ints(b, "output_shape", INTS(7));
    tb_output(b, "y");
}

/* ---- pooling ---- */
static void b_maxpool(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(1, 2, 6, 6));
    tb_node(b, "MaxPool", "x", "y");
    tb_attr_ints(b, "kernel_shape", INTS(3, 3));
    tb_attr_ints(b, "strides", INTS(2, 2));
    tb_attr_ints(b, "pads", INTS(1, 1, 1, 1));
    tb_attr_int(b, "ceil_mode", 1);
    tb_output(b, "y");
}
static void b_maxpool_1d(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, SH(2, 3, 9));
    tb_node(b, "MaxPool", "x", "y");
    tb_attr_ints(b, "kernel_shape", INTS(2));
    tb_attr_ints(b, "dilations", INTS(2));
    tb_attr_ints(b, "strides", INTS(2));
    tb_output(b, "y");
}
static void b_avgpool_excl(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(1, 2, 5, 5));
    tb_node(b, "AveragePool", "x", "y");
    tb_attr_ints(b, "kernel_shape", INTS(3, 3));
    tb_attr_ints(b, "strides", INTS(2, 2));
    tb_attr_ints(b, "pads", INTS(1, 1, 1, 1));
    tb_attr_int(b, "ceil_mode", 1);
    tb_output(b, "y");
}
static void b_avgpool_incl(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(1, 2, 5, 5));
    tb_node(b, "AveragePool", "x", "y");
    tb_attr_ints(b, "kernel_shape", INTS(3, 2));
    tb_attr_ints(b, "strides", INTS(2, 2));
    tb_attr_ints(b, "pads", INTS(1, 0, 1, 1));
    tb_attr_int(b, "count_include_pad", 1);
    tb_output(b, "y");
}
static void b_gap(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(2, 3, 3, 4));
    tb_node(b, "GlobalAveragePool", "x", "y");
    tb_output(b, "y");
}
static void b_gmp(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 4, SH(2, 3, 3, 4));
    tb_node(b, "GlobalMaxPool", "x", "y");
    tb_output(b, "y");
}

/* ---- BatchNormalization ---- */
static void b_batchnorm(tb_model *b) {
    static const float var[3] = { 0.5f, 1.25f, 2.0f };
    tb_input(b, "x", IDL_DT_F32, 4, SH(2, 3, 2, 3));
    tb_input(b, "scale", IDL_DT_F32, 1, SH(3));
    tb_input(b, "B", IDL_DT_F32, 1, SH(3));
    tb_input(b, "mean", IDL_DT_F32, 1, SH(3));
    tb_init_f32(b, "var", 1, SH(3), var);
    tb_node(b, "BatchNormalization", "x,scale,B,mean,var", "y");
    tb_attr_float(b, "epsilon", 1e-3f);
    tb_output(b, "y");
}

/* ---- Gemm, MatMul ---- */
static void b_gemm_trans(tb_model *b) {
    tb_input(b, "A", IDL_DT_F32, 2, SH(4, 3));
    tb_input(b, "B", IDL_DT_F32, 2, SH(5, 4));
    tb_input(b, "C", IDL_DT_F32, 1, SH(5));
    tb_node(b, "Gemm", "A,B,C", "y");
    tb_attr_int(b, "transA", 1);
    tb_attr_int(b, "transB", 1);
    tb_attr_float(b, "alpha", 0.7f);
    tb_attr_float(b, "beta", 1.3f);
    tb_output(b, "y");
}
static void b_gemm_plain(tb_model *b) {
    tb_input(b, "A", IDL_DT_F32, 2, SH(3, 4));
    tb_input(b, "B", IDL_DT_F32, 2, SH(4, 5));
    tb_input(b, "C", IDL_DT_F32, 2, SH(3, 1));
    tb_node(b, "Gemm", "A,B,C", "y");
    tb_attr_float(b, "beta", 0.5f);
    tb_output(b, "y");
}
static void b_matmul_2d(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 2, SH(3, 4));
    tb_input(b, "b", IDL_DT_F32, 2, SH(4, 5));
    tb_node(b, "MatMul", "a,b", "y");
    tb_output(b, "y");
}
static void b_matmul_batched(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 3, SH(2, 3, 4));
    tb_input(b, "b", IDL_DT_F32, 2, SH(4, 5));
    tb_node(b, "MatMul", "a,b", "y");
    tb_output(b, "y");
}
static void b_matmul_bcast(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 4, SH(2, 1, 3, 4));
    tb_input(b, "b", IDL_DT_F32, 3, SH(3, 4, 2));
    tb_node(b, "MatMul", "a,b", "y");
    tb_output(b, "y");
}
static void b_matmul_1d(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 1, SH(4));
    tb_input(b, "b", IDL_DT_F32, 2, SH(4, 3));
    tb_node(b, "MatMul", "a,b", "y");
    tb_output(b, "y");
}
static void b_matmul_2d1d(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 3, SH(2, 3, 4));
    tb_input(b, "b", IDL_DT_F32, 1, SH(4));
    tb_node(b, "MatMul", "a,b", "y");
    tb_output(b, "y");
}
/* constant weights with few rows: the products run on oneDNN's matmul where it has brgemm
 * (gemm.c), forward and input gradient */
static void b_gemm_const(tb_model *b) {
    static float w[6 * 4], bias[6];
    for (int i = 0; i < 24; i++)
        w[i] = 0.1f * (float)((i * 7) % 11) - 0.5f;
    for (int i = 0; i < 6; i++)
        bias[i] = 0.25f * (float)i - 0.6f;
    tb_input(b, "A", IDL_DT_F32, 2, SH(3, 4));
    tb_init_f32(b, "B", 2, SH(6, 4), w);
    tb_init_f32(b, "C", 1, SH(6), bias);
    tb_node(b, "Gemm", "A,B,C", "y");
    tb_attr_int(b, "transB", 1);
    tb_output(b, "y");
}
static void b_matmul_const(tb_model *b) {
    static float w[4 * 5];
    for (int i = 0; i < 20; i++)
        w[i] = 0.1f * (float)((i * 5) % 13) - 0.6f;
    tb_input(b, "a", IDL_DT_F32, 3, SH(2, 3, 4));
    tb_init_f32(b, "w", 2, SH(4, 5), w);
    tb_node(b, "MatMul", "a,w", "y");
    tb_output(b, "y");
}

const gc_case gc_cases_conv_pool[] = {
    { "Conv/pads+strides", "Conv", b_conv_pads_strides, 0, 0 },
    { "Conv/groups2", "Conv", b_conv_groups, 0, 0 },
    { "Conv/depthwise", "Conv", b_conv_depthwise, 0, 0 },
    { "Conv/dilation2", "Conv", b_conv_dilation, 0, 0 },
    { "Conv/1d", "Conv", b_conv_1d, 0, 0 },
    { "Conv/nobias+same_upper", "Conv", b_conv_nobias, 0, 0 },
    { "Conv/3d", "Conv", b_conv_3d, 0, 0 },
    { "Conv/1x1+const_w", "Conv", b_conv_1x1_const, 0, 0 },
    { "ConvTranspose/strides2+outpad", "ConvTranspose", b_convt_strides, 0, 0 },
    { "ConvTranspose/groups", "ConvTranspose", b_convt_groups, 0, 0 },
    { "ConvTranspose/1d+dilation+output_shape", "ConvTranspose", b_convt_1d_dil, 0, 0 },
    { "MaxPool/pads+ceil", "MaxPool", b_maxpool, GC_SPREAD, 0 },
    { "MaxPool/1d+dilation", "MaxPool", b_maxpool_1d, GC_SPREAD, 0 },
    { "AveragePool/exclude_pad+ceil", "AveragePool", b_avgpool_excl, 0, 0 },
    { "AveragePool/include_pad", "AveragePool", b_avgpool_incl, 0, 0 },
    { "GlobalAveragePool", "GlobalAveragePool", b_gap, 0, 0 },
    { "GlobalMaxPool", "GlobalMaxPool", b_gmp, GC_SPREAD, 0 },
    { "BatchNormalization", "BatchNormalization", b_batchnorm, 0, 0 },
    { "Gemm/transA+transB+bias(N)", "Gemm", b_gemm_trans, 0, 0 },
    { "Gemm/bias(M,1)", "Gemm", b_gemm_plain, 0, 0 },
    { "Gemm/const_w+transB+bias", "Gemm", b_gemm_const, 0, 0 },
    { "MatMul/2d", "MatMul", b_matmul_2d, 0, 0 },
    { "MatMul/const_w", "MatMul", b_matmul_const, 0, 0 },
    { "MatMul/batched", "MatMul", b_matmul_batched, 0, 0 },
    { "MatMul/broadcast", "MatMul", b_matmul_bcast, 0, 0 },
    { "MatMul/1d x 2d", "MatMul", b_matmul_1d, 0, 0 },
    { "MatMul/3d x 1d", "MatMul", b_matmul_2d1d, 0, 0 },
    GC_END
};

/* gradcheck_softmax_reduce.c — gradient-check cases for src/ops/softmax.c (Softmax, LogSoftmax at
 * opset 13, along a middle and the last axis) and src/ops/reduce.c (ReduceSum, ReduceMean,
 * ReduceMax, ReduceMin, ReduceL1, ReduceL2, ReduceSumSquare, ReduceLogSumExp, ReduceProd with
 * keepdims 0 and 1, inner, outer and all axes; ReduceProd also over a row holding a zero). */
#include "gradcheck.h"

static const int64_t S234[3] = { 2, 3, 4 };

#define SOFTMAX_CASE(fn, OP, AXIS)             \
    static void fn(tb_model *b) {              \
        tb_input(b, "x", IDL_DT_F32, 3, S234); \
        tb_node(b, OP, "x", "y");              \
        tb_attr_int(b, "axis", AXIS);          \
        tb_output(b, "y");                     \
    }
SOFTMAX_CASE(b_softmax_1, "Softmax", 1)
SOFTMAX_CASE(b_softmax_m1, "Softmax", -1)
SOFTMAX_CASE(b_softmax_0, "Softmax", 0)
SOFTMAX_CASE(b_logsoftmax_1, "LogSoftmax", 1)
SOFTMAX_CASE(b_logsoftmax_m1, "LogSoftmax", -1)

/* ReduceMean/Max/Min at opset 13: axes attribute (NA = 0: no attribute, reduce all) */
#define REDUCE_ATTR_CASE(fn, OP, NA, KEEP, ...)    \
    static void fn(tb_model *b) {                  \
        const int64_t axes[] = { __VA_ARGS__ };    \
        tb_input(b, "x", IDL_DT_F32, 3, S234);     \
        tb_node(b, OP, "x", "y");                  \
        if (NA) tb_attr_ints(b, "axes", NA, axes); \
        tb_attr_int(b, "keepdims", KEEP);          \
        tb_output(b, "y");                         \
    }
REDUCE_ATTR_CASE(b_mean_inner, "ReduceMean", 1, 1, 2)
REDUCE_ATTR_CASE(b_mean_outer, "ReduceMean", 2, 0, 0, 1)
REDUCE_ATTR_CASE(b_mean_all, "ReduceMean", 0, 1, 0)
REDUCE_ATTR_CASE(b_max_mid, "ReduceMax", 1, 0, 1)
REDUCE_ATTR_CASE(b_max_ends, "ReduceMax", 2, 1, 0, -1)
REDUCE_ATTR_CASE(b_min_outer, "ReduceMin", 1, 1, 0)
REDUCE_ATTR_CASE(b_min_all, "ReduceMin", 0, 0, 0)
REDUCE_ATTR_CASE(b_l1_inner, "ReduceL1", 1, 1, 2)
REDUCE_ATTR_CASE(b_l1_all, "ReduceL1", 0, 0, 0)
REDUCE_ATTR_CASE(b_l2_mid, "ReduceL2", 1, 0, 1)
REDUCE_ATTR_CASE(b_l2_ends, "ReduceL2", 2, 1, 0, -1)
REDUCE_ATTR_CASE(b_ssq_outer, "ReduceSumSquare", 2, 0, 0, 1)
REDUCE_ATTR_CASE(b_ssq_all, "ReduceSumSquare", 0, 1, 0)
REDUCE_ATTR_CASE(b_lse_inner, "ReduceLogSumExp", 1, 1, 2)
REDUCE_ATTR_CASE(b_lse_ends, "ReduceLogSumExp", 2, 0, 0, 2)
REDUCE_ATTR_CASE(b_prod_inner, "ReduceProd", 1, 0, 2)
REDUCE_ATTR_CASE(b_prod_outer, "ReduceProd", 1, 1, 0)

/* ReduceProd over rows of x (2,3,4) concatenated with a constant row (2,1,4) holding one zero per
 * output column in [0] and none in [1]: products of the others through a zero */
static void b_prod_zero(tb_model *b) {
    const int64_t zs[3] = { 2, 1, 4 };
    const float z[8] = { 0.0f, 0.0f, 0.0f, 0.0f, 1.5f, -0.7f, 1.1f, 0.9f };
    const int64_t axes[1] = { 1 };
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_init_f32(b, "z", 3, zs, z);
    tb_node(b, "Concat", "x,z", "xz");
    tb_attr_int(b, "axis", 1);
    tb_node(b, "ReduceProd", "xz", "y");
    tb_attr_ints(b, "axes", 1, axes);
    tb_output(b, "y");
}

/* ReduceSum at opset 13: axes input (NA = 0: absent, reduce all unless NOOP) */
#define REDUCE_SUM_CASE(fn, NA, KEEP, NOOP, ...)             \
    static void fn(tb_model *b) {                            \
        const int64_t axes[] = { __VA_ARGS__ };              \
        tb_input(b, "x", IDL_DT_F32, 3, S234);               \
        if (NA) tb_init_ints(b, "axes", NA, axes);           \
        tb_node(b, "ReduceSum", NA ? "x,axes" : "x", "y");   \
        tb_attr_int(b, "keepdims", KEEP);                    \
        if (NOOP) tb_attr_int(b, "noop_with_empty_axes", 1); \
        tb_output(b, "y");                                   \
    }
REDUCE_SUM_CASE(b_sum_mid, 1, 1, 0, 1)
REDUCE_SUM_CASE(b_sum_ends, 2, 0, 0, 0, 2)
REDUCE_SUM_CASE(b_sum_all, 0, 0, 0, 0)
REDUCE_SUM_CASE(b_sum_noop, 0, 1, 1, 0)

const gc_case gc_cases_softmax_reduce[] = {
    { "Softmax/axis 1", "Softmax", b_softmax_1, 0, 0 },
    { "Softmax/axis -1", "Softmax", b_softmax_m1, 0, 0 },
    { "Softmax/axis 0", "Softmax", b_softmax_0, 0, 0 },
    { "LogSoftmax/axis 1", "LogSoftmax", b_logsoftmax_1, 0, 0 },
    { "LogSoftmax/axis -1", "LogSoftmax", b_logsoftmax_m1, 0, 0 },
    { "ReduceMean/axis 2 keepdims", "ReduceMean", b_mean_inner, 0, 0 },
    { "ReduceMean/axes 0,1 no keepdims", "ReduceMean", b_mean_outer, 0, 0 },
    { "ReduceMean/all", "ReduceMean", b_mean_all, 0, 0 },
    { "ReduceSum/axis 1 keepdims", "ReduceSum", b_sum_mid, 0, 0 },
    { "ReduceSum/axes 0,2 no keepdims", "ReduceSum", b_sum_ends, 0, 0 },
    { "ReduceSum/all", "ReduceSum", b_sum_all, 0, 0 },
    { "ReduceSum/noop_with_empty_axes", "ReduceSum", b_sum_noop, 0, 0 },
    { "ReduceMax/axis 1 no keepdims", "ReduceMax", b_max_mid, GC_SPREAD, 0 },
    { "ReduceMax/axes 0,-1 keepdims", "ReduceMax", b_max_ends, GC_SPREAD, 0 },
    { "ReduceMin/axis 0 keepdims", "ReduceMin", b_min_outer, GC_SPREAD, 0 },
    { "ReduceMin/all", "ReduceMin", b_min_all, GC_SPREAD, 0 },
    { "ReduceL1/axis 2 keepdims", "ReduceL1", b_l1_inner, 0, 0 },
    { "ReduceL1/all", "ReduceL1", b_l1_all, 0, 0 },
    { "ReduceL2/axis 1 no keepdims", "ReduceL2", b_l2_mid, 0, 0 },
    { "ReduceL2/axes 0,-1 keepdims", "ReduceL2", b_l2_ends, 0, 0 },
    { "ReduceSumSquare/axes 0,1 no keepdims", "ReduceSumSquare", b_ssq_outer, 0, 0 },
    { "ReduceSumSquare/all", "ReduceSumSquare", b_ssq_all, 0, 0 },
    { "ReduceLogSumExp/axis 2 keepdims", "ReduceLogSumExp", b_lse_inner, 0, 0 },
    { "ReduceLogSumExp/axes 0,2 no keepdims", "ReduceLogSumExp", b_lse_ends, 0, 0 },
    { "ReduceProd/axis 2 no keepdims", "ReduceProd", b_prod_inner, 0, 0 },
    { "ReduceProd/axis 0 keepdims", "ReduceProd", b_prod_outer, 0, 0 },
    { "ReduceProd/with zeros", "ReduceProd", b_prod_zero, 0, 0 },
    GC_END
};

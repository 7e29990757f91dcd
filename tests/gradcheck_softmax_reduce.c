/* gradcheck_softmax_reduce.c — gradient-check cases for src/ops/softmax.c (Softmax, LogSoftmax at
 * opset 13, along a middle and the last axis) and src/ops/reduce.c (ReduceSum, ReduceMean,
 * ReduceMax, ReduceMin with keepdims 0 and 1, inner, outer and all axes). */
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
    GC_END
};

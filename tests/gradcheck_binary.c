/* gradcheck_binary.c — gradient-check cases for src/ops/binary.c: Add, Sub, Mul, Div, Pow, Where,
 * Max, Min, Sum, same-shape and broadcast (both operands reduced over their broadcast axes). */
#include "gradcheck.h"

static const int64_t S234[3] = { 2, 3, 4 }, S31[2] = { 3, 1 }, S4[1] = { 4 };
static const int64_t S214[3] = { 2, 1, 4 }, S131[3] = { 1, 3, 1 }, S34[2] = { 3, 4 };
static const int64_t S11[2] = { 1, 1 }, S111[3] = { 1, 1, 1 }, S1[1] = { 1 };

/* y = OP(a, b) with a, b graph inputs of shapes SA, SB */
#define BIN_CASE(fn, OP, NA, SA, NB, SB)      \
    static void fn(tb_model *b) {             \
        tb_input(b, "a", IDL_DT_F32, NA, SA); \
        tb_input(b, "b", IDL_DT_F32, NB, SB); \
        tb_node(b, OP, "a,b", "y");           \
        tb_output(b, "y");                    \
    }
BIN_CASE(b_add_same, "Add", 3, S234, 3, S234)
BIN_CASE(b_add_bcast, "Add", 3, S234, 2, S31)
BIN_CASE(b_add_scalar, "Add", 0, S4, 3, S234)
BIN_CASE(b_sub_bcast, "Sub", 3, S234, 1, S4)
BIN_CASE(b_sub_rev, "Sub", 2, S31, 3, S234)
BIN_CASE(b_mul_same, "Mul", 3, S234, 3, S234)
BIN_CASE(b_mul_both, "Mul", 3, S214, 3, S131)
BIN_CASE(b_div_bcast, "Div", 3, S234, 2, S31)
BIN_CASE(b_div_both, "Div", 3, S214, 3, S131)
BIN_CASE(b_pow_bcast, "Pow", 3, S234, 2, S31)
BIN_CASE(b_max2, "Max", 3, S234, 2, S31)
BIN_CASE(b_min2, "Min", 3, S214, 3, S131)
BIN_CASE(b_sum2, "Sum", 3, S234, 1, S4)
/* one-element outputs (every axis has size 1: a batch-1 LayerNorm statistic times a scalar) */
BIN_CASE(b_mul_one, "Mul", 2, S11, 0, S4)
BIN_CASE(b_add_one, "Add", 3, S111, 1, S1)
BIN_CASE(b_sub_one, "Sub", 0, S4, 2, S11)
BIN_CASE(b_div_one, "Div", 2, S11, 3, S111)
BIN_CASE(b_pow_one, "Pow", 1, S1, 0, S4)
BIN_CASE(b_max_one, "Max", 2, S11, 1, S1)
/* a one-element branch joining a larger tensor: y = x * (sum(x*x) + 1), x (1,4) */
static void b_one_branch(tb_model *b) {
    const int64_t xs[2] = { 1, 4 }, axes[1] = { -1 }, none[1] = { 0 };
    const float one = 1.0f;
    tb_input(b, "x", IDL_DT_F32, 2, xs);
    tb_init_i64(b, "axes", 1, S1, axes);
    tb_init_f32(b, "one", 0, none, &one);
    tb_node(b, "Mul", "x,x", "sq");
    tb_node(b, "ReduceSum", "sq,axes", "s");
    tb_node(b, "Add", "s,one", "t");
    tb_node(b, "Mul", "x,t", "y");
    tb_output(b, "y");
}
/* Where with a one-element output */
static void b_where_one(tb_model *b) {
    const float cv[1] = { 1 }, zero = 0;
    const int64_t none[1] = { 0 };
    tb_init_f32(b, "cv", 2, S11, cv);
    tb_init_f32(b, "zero", 0, none, &zero);
    tb_node(b, "Greater", "cv,zero", "cond");
    tb_input(b, "x", IDL_DT_F32, 2, S11);
    tb_input(b, "y", IDL_DT_F32, 0, S4);
    tb_node(b, "Where", "cond,x,y", "out");
    tb_output(b, "out");
}

/* per-channel operand: (2,3,2,2) * (3,1,1), the fast path of a bias or scale */
static void b_mul_channel(tb_model *b) {
    const int64_t xs[4] = { 2, 3, 2, 2 }, cs[3] = { 3, 1, 1 };
    tb_input(b, "x", IDL_DT_F32, 4, xs);
    tb_input(b, "s", IDL_DT_F32, 3, cs);
    tb_node(b, "Mul", "x,s", "y");
    tb_output(b, "y");
}
/* one input used twice: both gradient contributions land in one buffer */
static void b_mul_square(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_node(b, "Mul", "x,x", "y");
    tb_output(b, "y");
}
/* integer exponent (an initializer): gradient to the base only, any sign */
static void b_pow_int(tb_model *b) {
    const int64_t e[4] = { 1, 2, 3, 0 }; /* includes x^0 */
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_init_i64(b, "e", 1, S4, e);
    tb_node(b, "Pow", "x,e", "y");
    tb_output(b, "y");
}
/* cond (3,4) computed at plan time from float constants, x (2,3,4), y (3,1) */
static void b_where(tb_model *b) {
    const float cv[12] = { 1, -1, 1, 1, -1, -1, 1, -1, 1, 1, -1, 1 };
    const float zero = 0;
    const int64_t none[1] = { 0 };
    tb_init_f32(b, "cv", 2, S34, cv);
    tb_init_f32(b, "zero", 0, none, &zero);
    tb_node(b, "Greater", "cv,zero", "cond");
    tb_input(b, "x", IDL_DT_F32, 3, S234);
    tb_input(b, "y", IDL_DT_F32, 2, S31);
    tb_node(b, "Where", "cond,x,y", "out");
    tb_output(b, "out");
}
static void b_max3(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 3, S234);
    tb_input(b, "b", IDL_DT_F32, 2, S31);
    tb_input(b, "c", IDL_DT_F32, 3, S214);
    tb_node(b, "Max", "a,b,c", "y");
    tb_output(b, "y");
}
static void b_min3(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 3, S214);
    tb_input(b, "b", IDL_DT_F32, 3, S131);
    tb_input(b, "c", IDL_DT_F32, 1, S4);
    tb_node(b, "Min", "a,b,c", "y");
    tb_output(b, "y");
}
static void b_sum3(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 2, S31);
    tb_input(b, "b", IDL_DT_F32, 3, S234);
    tb_input(b, "c", IDL_DT_F32, 3, S131);
    tb_node(b, "Sum", "a,b,c", "y");
    tb_output(b, "y");
}
static void b_max1(tb_model *b) {
    tb_input(b, "a", IDL_DT_F32, 3, S234);
    tb_node(b, "Max", "a", "y");
    tb_output(b, "y");
}

const gc_case gc_cases_binary[] = { { "Add/same", "Add", b_add_same, 0, 0 },
                                    { "Add/(2,3,4)+(3,1)", "Add", b_add_bcast, 0, 0 },
                                    { "Add/scalar+(2,3,4)", "Add", b_add_scalar, 0, 0 },
                                    { "Sub/(2,3,4)-(4)", "Sub", b_sub_bcast, 0, 0 },
                                    { "Sub/(3,1)-(2,3,4)", "Sub", b_sub_rev, 0, 0 },
                                    { "Mul/same", "Mul", b_mul_same, 0, 0 },
                                    { "Mul/(2,1,4)*(1,3,1)", "Mul", b_mul_both, 0, 0 },
                                    { "Mul/per-channel", "Mul", b_mul_channel, 0, 0 },
                                    { "Mul/x*x", "Mul", b_mul_square, 0, 0 },
                                    { "Div/(2,3,4)/(3,1)", "Div", b_div_bcast, GC_POSITIVE, 0 },
                                    { "Div/(2,1,4)/(1,3,1)", "Div", b_div_both, GC_POSITIVE, 0 },
                                    { "Pow/(2,3,4)^(3,1)", "Pow", b_pow_bcast, GC_POSITIVE, 0 },
                                    { "Pow/int exponent", "Pow", b_pow_int, 0, 0 },
                                    { "Where/3-way broadcast", "Where", b_where, 0, 0 },
                                    { "Max/2 inputs", "Max", b_max2, 0, 0 },
                                    { "Max/3 inputs", "Max", b_max3, 0, 0 },
                                    { "Max/1 input", "Max", b_max1, 0, 0 },
                                    { "Min/2 inputs", "Min", b_min2, 0, 0 },
                                    { "Min/3 inputs", "Min", b_min3, 0, 0 },
                                    { "Sum/2 inputs", "Sum", b_sum2, 0, 0 },
                                    { "Sum/3 inputs", "Sum", b_sum3, 0, 0 },
                                    { "Mul/one element (1,1)*()", "Mul", b_mul_one, 0, 0 },
                                    { "Add/one element (1,1,1)+(1)", "Add", b_add_one, 0, 0 },
                                    { "Sub/one element ()-(1,1)", "Sub", b_sub_one, 0, 0 },
                                    { "Div/one element", "Div", b_div_one, GC_POSITIVE, 0 },
                                    { "Pow/one element", "Pow", b_pow_one, GC_POSITIVE, 0 },
                                    { "Max/one element", "Max", b_max_one, 0, 0 },
                                    { "Mul/one-element branch", "Mul", b_one_branch, 0, 0 },
                                    { "Where/one element", "Where", b_where_one, 0, 0 },
                                    GC_END };

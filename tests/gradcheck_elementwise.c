/* gradcheck_elementwise.c — gradient-check cases for the unary ops of src/ops/elementwise.c. */
#include "gradcheck.h"

static const int64_t S[3] = { 2, 3, 4 };

#define UNARY_CASE(fn, OP)                  \
    static void fn(tb_model *b) {           \
        tb_input(b, "x", IDL_DT_F32, 3, S); \
        tb_node(b, OP, "x", "y");           \
        tb_output(b, "y");                  \
    }
UNARY_CASE(b_relu, "Relu")
UNARY_CASE(b_sigmoid, "Sigmoid")
UNARY_CASE(b_tanh, "Tanh")
UNARY_CASE(b_hardswish, "HardSwish")
UNARY_CASE(b_softplus, "Softplus")
UNARY_CASE(b_erf, "Erf")
UNARY_CASE(b_exp, "Exp")
UNARY_CASE(b_log, "Log")
UNARY_CASE(b_sqrt, "Sqrt")
UNARY_CASE(b_neg, "Neg")
UNARY_CASE(b_abs, "Abs")
UNARY_CASE(b_recip, "Reciprocal")
UNARY_CASE(b_identity, "Identity")
UNARY_CASE(b_dropout, "Dropout")

static void b_leaky(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S);
    tb_node(b, "LeakyRelu", "x", "y");
    tb_attr_float(b, "alpha", 0.2f);
    tb_output(b, "y");
}
static void b_elu(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S);
    tb_node(b, "Elu", "x", "y");
    tb_attr_float(b, "alpha", 0.7f);
    tb_output(b, "y");
}
static void b_hsig(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S);
    tb_node(b, "HardSigmoid", "x", "y");
    tb_attr_float(b, "alpha", 0.3f);
    tb_attr_float(b, "beta", 0.45f);
    tb_output(b, "y");
}
static void b_clip(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S);
    float lo = -0.75f, hi = 1.25f;
    int64_t none[1] = { 0 };
    tb_init_f32(b, "lo", 0, none, &lo);
    tb_init_f32(b, "hi", 0, none, &hi);
    tb_node(b, "Clip", "x,lo,hi", "y");
    tb_output(b, "y");
}
static void b_prelu(tb_model *b) {
    const int64_t xs[4] = { 2, 3, 2, 2 }, ss[3] = { 3, 1, 1 };
    tb_input(b, "x", IDL_DT_F32, 4, xs);
    tb_input(b, "slope", IDL_DT_F32, 3, ss);
    tb_node(b, "PRelu", "x,slope", "y");
    tb_output(b, "y");
}

const gc_case gc_cases_elementwise[] = { { "Relu", "Relu", b_relu, 0, 0 },
                                         { "LeakyRelu", "LeakyRelu", b_leaky, 0, 0 },
                                         { "Elu", "Elu", b_elu, 0, 0 },
                                         { "PRelu/channel", "PRelu", b_prelu, 0, 0 },
                                         { "Clip", "Clip", b_clip, 0, 0 },
                                         { "Sigmoid", "Sigmoid", b_sigmoid, 0, 0 },
                                         { "HardSigmoid", "HardSigmoid", b_hsig, 0, 0 },
                                         { "HardSwish", "HardSwish", b_hardswish, 0, 0 },
                                         { "Tanh", "Tanh", b_tanh, 0, 0 },
                                         { "Softplus", "Softplus", b_softplus, 0, 0 },
                                         { "Erf", "Erf", b_erf, 0, 0 },
                                         { "Exp", "Exp", b_exp, 0, 0 },
                                         { "Log", "Log", b_log, GC_POSITIVE, 0 },
                                         { "Sqrt", "Sqrt", b_sqrt, GC_POSITIVE, 0 },
                                         { "Neg", "Neg", b_neg, 0, 0 },
                                         { "Abs", "Abs", b_abs, 0, 0 },
                                         { "Reciprocal", "Reciprocal", b_recip, GC_POSITIVE, 0 },
                                         { "Identity", "Identity", b_identity, 0, 0 },
                                         { "Dropout/inference", "Dropout", b_dropout, 0, 0 },
                                         GC_END };

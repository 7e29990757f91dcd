/* gradcheck_elementwise.c — gradient-check cases for the unary ops of src/ops/elementwise.c.
 * Ceil, Floor, Round and Sign have a zero gradient (checked away from their jumps); Acos, Asin,
 * Tan and Ceil/Floor see x * K (a constant) to stay inside (-1, 1), below pi/2, off the integers.
 */
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
UNARY_CASE(b_selu, "Selu")
UNARY_CASE(b_celu, "Celu")
UNARY_CASE(b_softsign, "Softsign")
UNARY_CASE(b_thrrelu, "ThresholdedRelu")
UNARY_CASE(b_atan, "Atan")
UNARY_CASE(b_cosh, "Cosh")
UNARY_CASE(b_sinh, "Sinh")
UNARY_CASE(b_round, "Round") /* with GC_SPREAD: no value within 0.02 of a half */
UNARY_CASE(b_sign, "Sign")   /* inputs are +-(0.1..2): never 0 */

/* y = OP(x * K) */
#define SCALED_CASE(fn, OP, K)              \
    static void fn(tb_model *b) {           \
        const float k = K;                  \
        const int64_t none[1] = { 0 };      \
        tb_input(b, "x", IDL_DT_F32, 3, S); \
        tb_init_f32(b, "k", 0, none, &k);   \
        tb_node(b, "Mul", "x,k", "xk");     \
        tb_node(b, OP, "xk", "y");          \
        tb_output(b, "y");                  \
    }
SCALED_CASE(b_acos, "Acos", 0.4f)
SCALED_CASE(b_asin, "Asin", 0.4f)
SCALED_CASE(b_tan, "Tan", 0.6f)
SCALED_CASE(b_ceil, "Ceil", 0.45f)
SCALED_CASE(b_floor, "Floor", 0.45f)

static void b_selu_attr(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S);
    tb_node(b, "Selu", "x", "y");
    tb_attr_float(b, "alpha", 1.3f);
    tb_attr_float(b, "gamma", 0.8f);
    tb_output(b, "y");
}
static void b_celu_attr(tb_model *b) {
    tb_input(b, "x", IDL_DT_F32, 3, S);
    tb_node(b, "Celu", "x", "y");
    tb_attr_float(b, "alpha", 0.6f);
    tb_output(b, "y");
}
static void b_thrrelu_attr(tb_model *b) { /* threshold below every |x| (inputs are +-(0.1..2)) */
    tb_input(b, "x", IDL_DT_F32, 3, S);
    tb_node(b, "ThresholdedRelu", "x", "y");
    tb_attr_float(b, "alpha", 0.05f);
    tb_output(b, "y");
}

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

const gc_case gc_cases_elementwise[] = {
    { "Relu", "Relu", b_relu, 0, 0 },
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
    { "Selu", "Selu", b_selu, 0, 0 },
    { "Selu/alpha,gamma", "Selu", b_selu_attr, 0, 0 },
    { "Celu", "Celu", b_celu, 0, 0 },
    { "Celu/alpha", "Celu", b_celu_attr, 0, 0 },
    { "Softsign", "Softsign", b_softsign, 0, 0 },
    { "ThresholdedRelu", "ThresholdedRelu", b_thrrelu, GC_SPREAD, 0 },
    { "ThresholdedRelu/alpha", "ThresholdedRelu", b_thrrelu_attr, 0, 0 },
    { "Acos", "Acos", b_acos, 0, 0 },
    { "Asin", "Asin", b_asin, 0, 0 },
    { "Atan", "Atan", b_atan, 0, 0 },
    { "Cosh", "Cosh", b_cosh, 0, 0 },
    { "Sinh", "Sinh", b_sinh, 0, 0 },
    { "Tan", "Tan", b_tan, 0, 0 },
    { "Ceil", "Ceil", b_ceil, 0, 0 },
    { "Floor", "Floor", b_floor, 0, 0 },
    { "Round", "Round", b_round, GC_SPREAD, 0 },
    { "Sign", "Sign", b_sign, 0, 0 },
    GC_END
};

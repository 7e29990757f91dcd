/* binary.c — PLACEHOLDER being written; every op here reports unsupported. */
#include "ops/op.h"

static idl_status todo_prepare(idl__op_ctx *c) {
    (void)c;
    return idl__error(IDL_ERR_UNSUPPORTED, "not implemented yet");
}
static void todo_forward(idl__op_ctx *c) {
    (void)c;
}

const idl__op_def idl__op_add = { "Add", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_sub = { "Sub", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_mul = { "Mul", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_div = { "Div", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_pow = { "Pow", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_equal = { "Equal", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_less = { "Less", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_greater = { "Greater", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_where = { "Where", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_max = { "Max", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_min = { "Min", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_sum = { "Sum", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };

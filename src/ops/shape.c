/* shape.c — PLACEHOLDER being written; every op here reports unsupported. */
#include "ops/op.h"

static idl_status todo_prepare(idl__op_ctx *c) {
    (void)c;
    return idl__error(IDL_ERR_UNSUPPORTED, "not implemented yet");
}
static void todo_forward(idl__op_ctx *c) {
    (void)c;
}

const idl__op_def idl__op_reshape = { "Reshape", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_flatten = { "Flatten", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_transpose = { "Transpose", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_concat = { "Concat", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_split = { "Split", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_squeeze = { "Squeeze", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_unsqueeze = { "Unsqueeze", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_gather = { "Gather", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_shape = { "Shape", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_cast = { "Cast", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_slice = { "Slice", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_constantofshape = { "ConstantOfShape", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_expand = { "Expand", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_range = { "Range", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_tile = { "Tile", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };

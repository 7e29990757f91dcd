/* softmax.c — PLACEHOLDER being written; every op here reports unsupported. */
#include "ops/op.h"

static idl_status todo_prepare(idl__op_ctx *c) {
    (void)c;
    return idl__error(IDL_ERR_UNSUPPORTED, "not implemented yet");
}
static void todo_forward(idl__op_ctx *c) {
    (void)c;
}

const idl__op_def idl__op_softmax = { "Softmax", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };
const idl__op_def idl__op_logsoftmax = { "LogSoftmax", 0, 4096, 0, 16, todo_prepare, todo_forward, NULL, NULL };

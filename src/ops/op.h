/* op.h — the contract between the planner/executor and the kernels: one idl__op_def per ONNX op,
 * listed in ops.def, with prepare (validate + infer output types/shapes + build primitives),
 * forward (cannot fail) and backward (vector-Jacobian product, accumulating into din).
 *
 * Lifecycle, per plan (a plan is made for one set of input shapes):
 *   prepare(c)  inputs have dtype/ndim/shape set; in[i]->data is valid only where in_const[i]
 *               (initializers and values folded at plan time, e.g. shape arithmetic). Must set
 *               dtype/ndim/shape of every present output, may set c->state (freed with free_state).
 *               Returns IDL_ERR_UNSUPPORTED / IDL_ERR_SHAPE / IDL_ERR_INVALID_ARG with a message;
 *               the planner prefixes the node name and op.
 *   forward(c)  all inputs hold data; outputs are allocated (zeroed, contiguous). No allocation
 *               beyond what prepare arranged, no failure.
 *   backward(c) dout[k] is the gradient of output k (NULL: none flows); din[i] is a zeroed-or-
 *               accumulating buffer of input i's shape, NULL when input i needs no gradient.
 *               Kernels ADD into din. May build backward primitives on first use (hence a status).
 * Absent optional inputs/outputs are NULL in in[]/out[].
 */
#pragma once

#include "backend/dnnl_backend.h"
#include "onnx/ir.h"
#include "tensor/tensor_internal.h"

typedef struct idl__op_ctx {
    const idl__node *node;
    int64_t opset;
    int n_in, n_out;
    idl_tensor **in;
    idl_tensor **out;
    const bool *in_const;
    idl_tensor **din;
    idl_tensor **dout;
    void *state;
    idl__backend *be;
    /* per value of the graph, during backward: this node is the only contributor to the value's
     * gradient (one input slot of one node), so a kernel may write din[k] instead of adding into
     * it: use idl__din_fresh(c, k). The buffer is zero unless the op has IDL__OP_BWD_WRITES_FRESH,
     * in which case it holds garbage and must be written whole. */
    const bool *din_fresh;
    /* Blocked activations (ops with IDL__OP_LAYOUT only; NULL arrays otherwise). in_md[k] is the
     * oneDNN layout input k's data is in (NULL: plain row-major); prepare clears it to ask for a
     * plain copy instead. prepare may set out_md[k] (a descriptor it keeps in its state) for an
     * output whose bit is set in out_blk_ok: that output's data, and its gradient's, are then in
     * that layout, which must take exactly the plain size (no padding). Gradients of an input or
     * output are in the same layout as the value. */
    const dnnl_memory_desc_t **in_md;
    const dnnl_memory_desc_t **out_md;
    unsigned out_blk_ok;
    /* Forward-only plans (Conv, Add): set before prepare when output 0's only reader is a Relu, or
     * a Clip with constant bounds: max(., 0), or min(max(., fuse_lo), fuse_hi). An op that can
     * applies it to output 0 as it writes it and sets fused_act_done; the planner then skips that
     * node (its output shares output 0's memory), or runs it (both are idempotent). */
    bool fuse_act;
    bool fused_act_done;
    float fuse_lo, fuse_hi;
} idl__op_ctx;

/* Whether backward may overwrite din[k] (it is zero and nothing else adds into it). */
static inline bool idl__din_fresh(const idl__op_ctx *c, int k) {
    return c->din_fresh && c->node->in[k] >= 0 && c->din_fresh[c->node->in[k]];
}

typedef struct idl__op_def {
    const char *name;
    int min_in, max_in;
    int min_out, max_out;
    idl_status (*prepare)(idl__op_ctx *c);
    void (*forward)(idl__op_ctx *c);
    idl_status (*backward)(idl__op_ctx *c); /* NULL: not differentiable */
    void (*free_state)(void *state);
    unsigned flags; /* IDL__OP_* */
    /* Which of its node's values backward reads (their data; shapes are always there): a mask of
     * IDL__BWD_IN(k) / IDL__BWD_OUT(k), asked once the node is prepared. Plans that keep only what
     * a backward reads (idl_session_opts.save_for_backward, an explanation method's gradient
     * passes) keep these values and let the others share memory; such plans never ask for the
     * gradient of a constant input (c->in_const[k]: an initializer or a folded value), so a value
     * needed only for that gradient (a Conv's input, for the weight gradient) need not be
     * declared when the other input is constant. NULL: every input and output is read. */
    unsigned (*bwd_reads)(const idl__op_ctx *c);
} idl__op_def;

#define IDL__BWD_IN(k)  (1u << (k))        /* input k, k < 16 */
#define IDL__BWD_OUT(k) (1u << (16 + (k))) /* output k, k < 16 */
/* Common declarations: nothing (shape ops, Add), input 0 (x), output 0 (y), and the bilinear
 * rule of Mul, MatMul, Gemm and Conv: input 0 when input 1 is not constant (its gradient reads
 * input 0), input 1 when input 0 is not constant. */
unsigned idl__bwd_reads_none(const idl__op_ctx *c);
unsigned idl__bwd_reads_in0(const idl__op_ctx *c);
unsigned idl__bwd_reads_out0(const idl__op_ctx *c);
unsigned idl__bwd_reads_bilinear(const idl__op_ctx *c);

/* The op reads only its inputs' shapes (Shape): the planner runs it at plan time even when its
 * input is data, so that shape arithmetic downstream folds. */
#define IDL__OP_SHAPE_ONLY 1u
/* Backward writes the whole of din[k] (not `+=`) whenever idl__din_fresh(c, k): the reverse pass
 * then leaves that gradient buffer unzeroed. Ops without the flag get zeroed buffers and may
 * accumulate. */
#define IDL__OP_BWD_WRITES_FRESH 2u
/* The op takes inputs in oneDNN's blocked layouts (see in_md/out_md); the planner gives the other
 * ops a plain copy. */
#define IDL__OP_LAYOUT 4u
/* The reverse pass may hand backward din[k] in dout[0]'s own buffer (same shape and layout) when
 * output 0's gradient is lent and input k's has this node as its only contributor (so din[k] is
 * fresh): the kernel reads dy[i] before it writes dx[i], and leaves a pass-through (Add) as it
 * is. Saves a buffer and a copy (Add) or a stream (Relu). */
#define IDL__OP_BWD_INPLACE 8u

/* For an element-wise op with IDL__OP_LAYOUT whose first n inputs have the output's shape: when
 * they all come in one blocked layout and the output may be blocked, the output takes it too (the
 * op then runs on the buffers as they are); otherwise every input is asked for plain. Inputs
 * beyond n must hold one element. */
void idl__layout_same(idl__op_ctx *c, int n);

/* The registry: ops.def lists X("OnnxName", stem) sorted by name; each family file defines
 * `const idl__op_def IDL__OP(stem)`. On x86-64 the family files are compiled twice, as they are
 * and with AVX2 (IDL_OPS_AVX2, the definitions then named idl__op_<stem>_avx2); idl__ops is the
 * AVX2 table on CPUs with AVX2 and FMA (chosen when the library loads), the other one elsewhere.
 * Both compile without floating-point contraction, so they give the same results. */
#ifdef IDL_OPS_AVX2
#    define IDL__OP(stem) idl__op_##stem##_avx2
#else
#    define IDL__OP(stem) idl__op_##stem
#endif
extern const idl__op_def *const *idl__ops;
extern const int idl__n_ops;
/* Tests: true runs the sessions created afterwards on the portable kernels, false back on the
 * table chosen for this CPU. Not thread-safe: only while no session runs. Returns whether this
 * build has an AVX2 table at all (not with IDL_NATIVE, nor off x86-64). */
bool idl__ops_force_portable(bool portable);
/* Index of op_type in idl__ops for the default domain, or -1. */
int idl__op_find(const char *op_type, const char *domain);

/* ---- helpers for kernels ---- */
/* Normalizes an axis in [-r, r) to [0, r); IDL_ERR_INVALID_ARG when out of range. */
idl_status idl__norm_axis(int64_t axis, int rank, int *out);
/* Sets out's type and shape. */
void idl__set_out(idl_tensor *out, idl_dtype dt, int ndim, const int64_t *shape);
/* Requires in[i] to be float32 (message names the input). */
idl_status idl__need_f32(const idl__op_ctx *c, int i);
/* Requires in[i] to be known at plan time (shape arithmetic); the message explains. */
idl_status idl__need_const(const idl__op_ctx *c, int i);
/* Reads an ints attribute of exactly `want` values, each >= min, into out; absent: every value is
 * dflt, or an error when required. Messages name the attribute. */
idl_status idl__attr_ints_n(const idl__node *n, const char *name, int want, int64_t dflt,
                            int64_t min, int64_t *out, bool required);
/* Reads a constant integer tensor (i32 or i64) into out[0..n), n <= cap. */
idl_status idl__const_ints(const idl__op_ctx *c, int i, int64_t *out, int cap, int *n);

#define IDL_OMP_MIN 16384 /* elements below which loops stay single-threaded */

/* for (T i = lo; i < hi; i++) { body }, shared out to the threads when cond, else on the calling
 * thread without entering an OpenMP region at all: `parallel for if (0)` still makes a team of
 * one (~0.5 us a call here), which dominates the small calls of row-block regions
 * (graph/rowfuse.c). */
#define IDL_PAR_FOR(cond, T, i, lo, hi, ...)                                               \
    do {                                                                                   \
        if (cond) {                                                                        \
            _Pragma("omp parallel for schedule(static)") for (T i = (lo); i < (hi); i++) { \
                __VA_ARGS__                                                                \
            }                                                                              \
        } else {                                                                           \
            for (T i = (lo); i < (hi); i++) {                                              \
                __VA_ARGS__                                                                \
            }                                                                              \
        }                                                                                  \
    } while (0)

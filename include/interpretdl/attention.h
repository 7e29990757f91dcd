/* attention.h — transformer attention found in the graph: for each block, the attention
 * probabilities, values, output projection and residual stream; the embedding output; the token
 * grid; the pooling convention. Found from the graph pattern alone (no layer names), for PyTorch
 * and Paddle exports; every field can be overridden by tensor name. */
#ifndef INTERPRETDL_ATTENTION_H
#define INTERPRETDL_ATTENTION_H

#include "interpretdl/interpretdl.h"
#include "interpretdl/session.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum idl_pooling {
    IDL_POOL_UNKNOWN = 0,
    IDL_POOL_CLS = 1,  /* the head reads token 0 (a class token) */
    IDL_POOL_MEAN = 2, /* the head averages the tokens */
} idl_pooling;

/* One attention block. Tensor names are borrowed from the model (or from the override strings the
 * caller passed); NULL when not found. */
typedef struct idl_attention_block {
    const char *probs;           /* Softmax over the key axis of QK^T: (N,H,S,S) or (N*H,S,S) */
    const char *scores;          /* the Softmax input (scaled, masked QK^T) */
    const char *value;           /* V, the other operand of probs x V */
    const char *context;         /* probs x V */
    const char *out_proj_weight; /* initializer of the output projection W_O */
    int out_proj_transposed;     /* 1: stored (out, in) (Gemm transB=1); 0: (in, out) */
    const char *block_input;     /* residual stream entering the block */
    const char *block_output;    /* the residual Add after the attention */
    int64_t heads;               /* from the shape of probs at the last forward (0 unknown) */
    int64_t seq_len;             /* S */
} idl_attention_block;

typedef struct idl_attention_info {
    int n_blocks;
    idl_attention_block *blocks; /* n_blocks, in execution order (owned by the session) */
    const char *embedding;       /* the tensor entering the first block */
    const char *patch_conv;      /* output of the patch-embedding Conv (images), NULL for text */
    int64_t grid_h, grid_w;      /* token grid of the patch embedding; 0 for text */
    int64_t n_prefix;            /* tokens before the grid (class/distillation tokens): S - h*w */
    idl_pooling pooling;
} idl_attention_info;

/* Finds the attention structure of the session's model. Needs a forward pass first (shapes: heads,
 * sequence length, grid). The result is valid until the next call on this session or its end.
 * Returns IDL_OK with n_blocks == 0 for a model with no attention (a CNN).
 * Overrides (applied after discovery, in order), each "field=value":
 *   probs=GLOB, value=GLOB, context=GLOB, block_input=GLOB, out_proj_weight=GLOB — the k-th tensor
 *     (in execution order; initializers in file order) whose name matches the shell pattern becomes
 *     block k's field; the number of matches must equal the number of blocks (or define them when
 *     none were found, for probs);
 *   embedding=NAME, grid=HxW, prefix=K, pooling=cls|mean.
 * Errors: INVALID_ARG (no forward yet, malformed override), NOT_FOUND (a pattern or name matching
 * nothing, with close names), SHAPE (a grid that does not fit the sequence length). */
IDL_API idl_status idl_session_attention(idl_session *s, const char *const *overrides,
                                         int n_overrides, const idl_attention_info **out);

#ifdef __cplusplus
}
#endif
#endif

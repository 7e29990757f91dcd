/* gradcheck.h — the gradient-check case table. Each op family has a file gradcheck_<family>.c that
 * defines `const gc_case gc_cases_<family>[]`, terminated by an entry with name == NULL.
 * A case builds a small model: float32 graph inputs (all of which are differentiated), any
 * integer operands as initializers, one or more outputs. The checker compares the library's
 * gradient of sum(output_k * seed_k) with central differences computed in double precision. */
#pragma once

#include "model_builder.h"

enum {
    GC_POSITIVE = 1, /* inputs drawn from (0.5, 2) instead of +-(0.1, 2) */
    GC_SPREAD = 2,   /* inputs are a shuffled ramp (well-separated values, for max/argmax ties) */
};

typedef struct gc_case {
    const char *name; /* "Conv/groups" */
    const char *op;   /* the ONNX op this case covers */
    void (*build)(tb_model *b);
    unsigned flags;
    double tol; /* relative tolerance, 0 = default 1e-2 */
} gc_case;

#define GC_END \
    { NULL, NULL, NULL, 0, 0 }

extern const gc_case gc_cases_elementwise[];
extern const gc_case gc_cases_binary[];
extern const gc_case gc_cases_softmax_reduce[];
extern const gc_case gc_cases_shape[];
extern const gc_case gc_cases_conv_pool[];
extern const gc_case gc_cases_transformer[];

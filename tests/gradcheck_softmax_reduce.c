/* gradcheck_softmax_reduce.c — PLACEHOLDER being written: gradient-check cases for this op family. */
#include "gradcheck.h"

const gc_case gc_cases_softmax_reduce[] = { GC_END };

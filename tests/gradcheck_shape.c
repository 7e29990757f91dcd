/* gradcheck_shape.c — PLACEHOLDER being written: gradient-check cases for this op family. */
#include "gradcheck.h"

const gc_case gc_cases_shape[] = { GC_END };

/* gradcheck_conv_pool.c — PLACEHOLDER being written: gradient-check cases for this op family. */
#include "gradcheck.h"

const gc_case gc_cases_conv_pool[] = { GC_END };

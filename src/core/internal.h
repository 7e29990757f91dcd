/* internal.h — private core services shared by every layer: errors, logging, allocation, asserts.
 */
#pragma once

#include "interpretdl/interpretdl.h"
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#    define IDL__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#    define IDL__PRINTF(a, b)
#endif

/* Records a thread-local message for idl_last_error() and returns code, so that
 * `return idl__error(IDL_ERR_SHAPE, "...")` works. */
idl_status idl__error(idl_status code, const char *fmt, ...) IDL__PRINTF(2, 3);
/* Prefixes the current thread-local message with more context ("node 'x' (Conv): " + old). */
idl_status idl__error_prefix(idl_status code, const char *fmt, ...) IDL__PRINTF(2, 3);
void idl__error_clear(void);

void idl__log(idl_log_level level, const char *fmt, ...) IDL__PRINTF(2, 3);

/* Allocation through the user's hooks. idl__free(NULL) is a no-op. idl__calloc zero-fills and
 * checks n*size for overflow. */
void *idl__malloc(size_t size);
void *idl__calloc(size_t n, size_t size);
void idl__free(void *p);
char *idl__strdup(const char *s);
/* A per-thread cap on the size of any single allocation (0 = none), set by the planner around each
 * kernel's prepare so that tables sized from a hostile shape fail as IDL_ERR_NOMEM instead of
 * exhausting the machine. Returns the previous cap. */
uint64_t idl__alloc_cap_set(uint64_t cap);
/* Large zeroed float buffers aligned to 64 bytes (for kernels). */
void *idl__aligned_alloc(size_t size);
/* The same, not zeroed (the caller writes all of it: decoded weights). */
void *idl__aligned_alloc_raw(size_t size);
void idl__aligned_free(void *p);

/* Overflow-checked size arithmetic (returns false on overflow or negative operands). */
bool idl__mul_ok(int64_t a, int64_t b, int64_t *out);

/* Invariants a bug can break (never input-dependent conditions): print and abort. */
void idl__abort(const char *file, int line, const char *fmt, ...) IDL__PRINTF(3, 4);
#define IDL_ABORT(...) idl__abort(__FILE__, __LINE__, __VA_ARGS__)
#define IDL_ASSERT(x)                                     \
    do {                                                  \
        if (!(x)) IDL_ABORT("IDL_ASSERT(%s) failed", #x); \
    } while (0)

#define IDL_MIN(a, b) ((a) < (b) ? (a) : (b))
#define IDL_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Levenshtein-based "did you mean": writes up to 5 names from cand[0..n) closest to name into buf
 * as "'a', 'b'" (empty when none is close). */
void idl__close_matches(const char *name, const char *const *cand, int n, char *buf, size_t cap);

/* Reads a whole file into an idl__malloc'd buffer (caller frees with idl__free). Files larger than
 * max_bytes give IDL_ERR_INVALID_ARG. */
idl_status idl__read_file(const char *path, uint64_t max_bytes, unsigned char **out, size_t *len);
/* Maps a whole regular file read-only (empty or larger than max_bytes: errors as
 * idl__read_file); release with idl__unmap_file. */
idl_status idl__map_file(const char *path, uint64_t max_bytes, const unsigned char **out,
                         size_t *len);
void idl__unmap_file(const unsigned char *p, size_t len);
/* Writes n pieces to path atomically: a temporary file in the same folder, fsync'd, then renamed
 * over path. On failure path is untouched. */
idl_status idl__write_atomic(const char *path, const void *const *pieces, const size_t *sizes,
                             int n);

/* Counter-based random numbers (core/rng.c, Philox4x32-10): out[k] is the value at index first+k
 * of the stream (seed, stream), the same whatever the split or thread count. Standard normal;
 * uniform in [0, 1); one 64-bit word. */
#define IDL_OMP_MIN_RNG 65536
void idl__rng_normal(uint64_t seed, uint64_t stream, int64_t first, int64_t n, float *out);
void idl__rng_uniform(uint64_t seed, uint64_t stream, int64_t first, int64_t n, float *out);
uint64_t idl__rng_u64(uint64_t seed, uint64_t stream, uint64_t index);

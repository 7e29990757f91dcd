/* interpretdl.h — umbrella header of libinterpretdl: version, export macro, status codes, logging
 * and allocator hooks. Include this one header; it pulls in tensor.h, model.h and session.h.
 *
 * Quick start:
 *
 *     idl_model *m = NULL;  idl_session *s = NULL;
 *     if (idl_model_load("net.onnx", NULL, &m) != IDL_OK) { puts(idl_last_error()); ... }
 *     idl_session_new(m, NULL, &s);
 *     const idl_tensor *in[1] = { &x };
 *     idl_session_forward(s, in, NULL, 1);
 *     const idl_tensor *logits = idl_session_output(s, 0);          // borrowed
 *     idl_objective obj = idl_objective_default();                    // probability of argmax
 *     const char *wrt[1] = { idl_model_input_name(m, 0) };
 *     idl_session_backward(s, &obj, wrt, 1);
 *     const idl_tensor *g = idl_session_grad(s, wrt[0]);              // borrowed
 *     idl_session_free(s);  idl_model_free(m);
 */
#ifndef INTERPRETDL_H
#define INTERPRETDL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(IDL_SHARED) && defined(IDL_BUILD)
#    define IDL_API __attribute__((visibility("default")))
#elif defined(IDL_BUILD)
#    define IDL_API __attribute__((visibility("default")))
#else
#    define IDL_API
#endif

#define IDL_VERSION_MAJOR  0
#define IDL_VERSION_MINOR  1
#define IDL_VERSION_PATCH  0
#define IDL_VERSION_STRING "0.1.0"

/* Returns IDL_VERSION_STRING of the library actually linked. */
IDL_API const char *idl_version(void);

/* Status codes: stable, append only, never renumbered. */
#define IDL_STATUS_MAP(X)                         \
    X(OK, 0, "success")                           \
    X(ERR_NOMEM, -1, "out of memory")             \
    X(ERR_INVALID_ARG, -2, "invalid argument")    \
    X(ERR_IO, -3, "input/output error")           \
    X(ERR_PARSE, -4, "malformed file")            \
    X(ERR_UNSUPPORTED, -5, "unsupported feature") \
    X(ERR_SHAPE, -6, "shape mismatch")            \
    X(ERR_BACKEND, -7, "backend failure")         \
    X(ERR_ABORTED, -8, "aborted")                 \
    X(ERR_INTERNAL, -9, "internal error")         \
    X(ERR_NOT_FOUND, -10, "not found")

typedef enum idl_status {
#define IDL__X(name, code, text) IDL_##name = code,
    IDL_STATUS_MAP(IDL__X)
#undef IDL__X
} idl_status;

/* Short fixed text for a status ("shape mismatch"). Never NULL. */
IDL_API const char *idl_status_str(idl_status s);

/* The detailed message of the last failure on this thread, e.g.
 * "node 'conv1' (Conv): input 1 has rank 3, expected 4". Valid until the next failing call on the
 * same thread. Never NULL ("" when nothing failed). */
IDL_API const char *idl_last_error(void);

/* Logging. The library prints nothing itself: every message goes through this callback. The default
 * writes messages at or above IDL_LOG_WARN to stderr. Set once, before other threads use the
 * library. */
typedef enum idl_log_level {
    IDL_LOG_DEBUG = 0,
    IDL_LOG_INFO,
    IDL_LOG_WARN,
    IDL_LOG_ERROR
} idl_log_level;
typedef void (*idl_log_fn)(idl_log_level level, const char *msg, void *user);
/* cb == NULL restores the default; min_level filters what reaches the callback. */
IDL_API void idl_log_set(idl_log_fn cb, void *user, idl_log_level min_level);

/* Allocator hooks. Every allocation the library makes goes through these. Set once, before any
 * other call, with all three non-NULL (or all NULL to restore malloc/calloc/free). realloc is not
 * used. */
typedef struct idl_allocator {
    void *(*malloc_fn)(size_t size, void *user);
    void (*free_fn)(void *ptr, void *user);
    void *user;
} idl_allocator;
IDL_API void idl_set_allocator(const idl_allocator *a);

#ifdef __cplusplus
}
#endif

#include "interpretdl/attention.h"
#include "interpretdl/explain.h"
#include "interpretdl/model.h"
#include "interpretdl/session.h"
#include "interpretdl/tensor.h"

#endif /* INTERPRETDL_H */

/* alloc.c — allocation through user-replaceable hooks; overflow-checked size helpers. */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>

static void *sys_malloc(size_t size, void *user) {
    (void)user;
    return malloc(size);
}
static void sys_free(void *p, void *user) {
    (void)user;
    free(p);
}

static idl_allocator g_alloc = { sys_malloc, sys_free, NULL };

void idl_set_allocator(const idl_allocator *a) {
    if (a && a->malloc_fn && a->free_fn) {
        g_alloc = *a;
    } else {
        g_alloc.malloc_fn = sys_malloc;
        g_alloc.free_fn = sys_free;
        g_alloc.user = NULL;
    }
}

static _Thread_local uint64_t g_cap;

uint64_t idl__alloc_cap_set(uint64_t cap) {
    uint64_t old = g_cap;
    g_cap = cap;
    return old;
}

void *idl__malloc(size_t size) {
    if (g_cap && (uint64_t)size > g_cap) return NULL;
    return g_alloc.malloc_fn(size ? size : 1, g_alloc.user);
}

void *idl__calloc(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t total = n * size;
    void *p = idl__malloc(total);
    if (p) memset(p, 0, total ? total : 1);
    return p;
}

void idl__free(void *p) {
    if (p) g_alloc.free_fn(p, g_alloc.user);
}

char *idl__strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = idl__malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

/* The hook has no alignment parameter, so over-allocate and keep the original pointer just below
 * the aligned block. */
void *idl__aligned_alloc_raw(size_t size) {
    if (size > SIZE_MAX - 128) return NULL;
    unsigned char *raw = idl__malloc(size + 128);
    if (!raw) return NULL;
    uintptr_t a = ((uintptr_t)raw + sizeof(void *) + 63) & ~(uintptr_t)63;
    ((void **)a)[-1] = raw;
    return (void *)a;
}

void *idl__aligned_alloc(size_t size) {
    void *a = idl__aligned_alloc_raw(size);
    if (a) memset(a, 0, size);
    return a;
}

void idl__aligned_free(void *p) {
    if (p) idl__free(((void **)p)[-1]);
}

bool idl__mul_ok(int64_t a, int64_t b, int64_t *out) {
    if (a < 0 || b < 0) return false;
    if (b != 0 && a > INT64_MAX / b) return false;
    *out = a * b;
    return true;
}

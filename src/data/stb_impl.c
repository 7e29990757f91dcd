/* stb_impl.c — the one translation unit that compiles stb_image (decoders for PNG, JPEG, BMP, TGA
 * and GIF only) and stb_image_write (its PNG encoder is the only one used), both from Debian's
 * libstb-dev (stb_image 2.27, stb_image_write 1.16, git 2022-09). Their memory goes through the
 * library's allocator (idl__malloc / idl__free), their asserts are compiled out (a corrupt file is
 * an error return, never an abort), they have no stdio (image.c reads and writes the files), and
 * images wider or taller than IDL_IMAGE_MAX_DIM are refused by stb itself while it reads the
 * header, before any pixel buffer is allocated.
 *
 * Hardening of this stb for untrusted files (found with libFuzzer + ASan/UBSan): every block stb
 * gets is zero-filled (it reads memory it never wrote), and a failed allocation inside
 * stb_image_write jumps out instead of letting it write through a failed buffer. image.c refuses
 * the JPEG and PNG structures that make stb_image 2.27 write or compute out of bounds before stb
 * sees them (jpeg_check, png_check).
 *
 * stb_image keeps its failure reason (stbi_failure_reason) in a static variable; stb_image 2.27
 * declares it STBI_THREAD_LOCAL (_Thread_local in C11), so concurrent decodes on different threads
 * do not overwrite each other's reason. The build refuses an stb_image without that support.
 *
 * CMake compiles this file with -w: stb's own code is not held to the library's warning flags. */
#include "core/internal.h"
#include "data/data_internal.h"
#include "interpretdl/image.h"

#include <setjmp.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* stb reports a failed allocation as "outofmem" only sometimes: its format probes (the JPEG
 * test allocates) turn it into "not this format". So every failed allocation is also recorded
 * here, per thread, and image.c asks after a failed decode (data_internal.h). */
static _Thread_local bool g_alloc_failed;

bool idl__stb_alloc_failed(bool reset) {
    bool v = g_alloc_failed;
    if (reset) g_alloc_failed = false;
    return v;
}

/* Every block stb gets is zero-filled: this stb_image reads memory it never wrote when a file is
 * corrupt (a progressive JPEG scan that uses a Huffman table no DHT segment defined reads the
 * table's uninitialised offsets and then indexes far outside its arrays); zeroed tables decode
 * as harmless zeros. */
static void *idl__stb_malloc(size_t size) {
    void *p = idl__calloc(1, size);
    if (!p) g_alloc_failed = true;
    return p;
}

/* stb grows buffers with STBI_REALLOC_SIZED(p, old_size, new_size); every call site in stb_image
 * 2.27 (zlib output, PNG IDAT, GIF frames and delays) and stb_image_write 1.16 (its stretchy
 * buffers) passes the true old size, so a grow is allocate + copy + free and needs no size header.
 * On failure p is left untouched (stb frees it on its error path). */
static void *idl__stb_realloc(void *p, size_t old_size, size_t new_size) {
    void *q = idl__stb_malloc(new_size);
    if (!q) return NULL;
    if (p && old_size) memcpy(q, p, old_size < new_size ? old_size : new_size); /* rest: 0 */
    idl__free(p);
    return q;
}

#define STBI_MALLOC(sz)                     idl__stb_malloc(sz)
#define STBI_FREE(p)                        idl__free(p)
#define STBI_REALLOC_SIZED(p, oldsz, newsz) idl__stb_realloc((p), (oldsz), (newsz))
#define STBI_ASSERT(x)                      ((void)0)
#define STBI_MAX_DIMENSIONS                 IDL_IMAGE_MAX_DIM
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_TGA
#define STBI_ONLY_GIF
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>

#ifndef STBI_THREAD_LOCAL
#    error "stb_image without STBI_THREAD_LOCAL: its failure reason would be shared by all threads"
#endif

/* stb_image_write cannot survive a failed allocation: its stretchy buffers go on writing through
 * the pointer they failed to grow. So its blocks are kept on a per-thread list, and a failed
 * allocation during idl__stb_write_png jumps back there, which frees the list and reports the
 * failure (stb_image_write holds nothing else). */
typedef struct wblock {
    struct wblock *prev, *next;
} wblock;
#define WHDR \
    ((sizeof(wblock) + alignof(max_align_t) - 1) / alignof(max_align_t) * alignof(max_align_t))
static _Thread_local wblock *g_wlist;
static _Thread_local jmp_buf *g_wjmp;

static void *idl__stbiw_malloc(size_t size) {
    wblock *b = size <= SIZE_MAX - WHDR ? idl__malloc(size + WHDR) : NULL;
    if (!b) {
        g_alloc_failed = true;
        if (g_wjmp) longjmp(*g_wjmp, 1);
        return NULL;
    }
    b->prev = NULL;
    b->next = g_wlist;
    if (g_wlist) g_wlist->prev = b;
    g_wlist = b;
    return (char *)b + WHDR;
}

static void idl__stbiw_free(void *p) {
    if (!p) return;
    wblock *b = (wblock *)(void *)((char *)p - WHDR);
    if (b->prev)
        b->prev->next = b->next;
    else
        g_wlist = b->next;
    if (b->next) b->next->prev = b->prev;
    idl__free(b);
}

static void *idl__stbiw_realloc(void *p, size_t old_size, size_t new_size) {
    void *q = idl__stbiw_malloc(new_size);
    if (!q) return NULL;
    if (p && old_size) memcpy(q, p, old_size < new_size ? old_size : new_size);
    idl__stbiw_free(p);
    return q;
}

#define STBIW_MALLOC(sz)                     idl__stbiw_malloc(sz)
#define STBIW_FREE(p)                        idl__stbiw_free(p)
#define STBIW_REALLOC_SIZED(p, oldsz, newsz) idl__stbiw_realloc((p), (oldsz), (newsz))
#define STBIW_ASSERT(x)                      ((void)0)
#define STBI_WRITE_NO_STDIO
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>

/* stbi_write_png_to_func with out-of-memory made an ordinary failure (data_internal.h). */
int idl__stb_write_png(idl__png_sink *func, void *context, int w, int h, int comp, const void *data,
                       int stride) {
    jmp_buf env;
    int ok = 0;
    g_wlist = NULL;
    if (setjmp(env) == 0) {
        g_wjmp = &env;
        ok = stbi_write_png_to_func(func, context, w, h, comp, data, stride);
    } else {
        ok = 0;
        while (g_wlist) {
            wblock *b = g_wlist;
            g_wlist = b->next;
            idl__free(b);
        }
    }
    g_wjmp = NULL;
    return ok;
}

/* data_internal.h — what image.c and stb_impl.c (the one stb translation unit) share. */
#pragma once

#include <stdbool.h>

/* The writer stb_image_write calls with each piece of the PNG (same type as stbi_write_func). */
typedef void idl__png_sink(void *context, void *data, int size);

/* Whether an allocation by stb failed since the last reset (stb reports a failed allocation as
 * "outofmem" only sometimes: its format probes turn it into "not this format"); per thread. */
bool idl__stb_alloc_failed(bool reset);
/* stbi_write_png_to_func with out-of-memory made an ordinary failure (returns 0). */
int idl__stb_write_png(idl__png_sink *func, void *context, int w, int h, int comp, const void *data,
                       int stride);

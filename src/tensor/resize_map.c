/* resize_map.c — bilinear resize of a float32 map, as OpenCV 4.6's cv::resize(src, dsize) with
 * INTER_LINEAR does on a one-channel float32 matrix (what InterpretDL and pytorch-grad-cam call to
 * bring a CAM to the image's size). Used by the CAM methods' upsampling, consensus and pictures.
 * Written from OpenCV's behaviour (resize.cpp read, not copied), checked bit for bit against
 * Debian's cv2 4.6 on x86-64 (tests/test_visual.c: 12 pairs; during development 4,000 random pairs,
 * sides 1..700 to 1..300, 7 x 7 to 224 x 224 and exact halves among them):
 *  - the same size is a copy;
 *  - exactly half the size on both axes (src = 2 dst) is OpenCV's switch to INTER_AREA: the mean
 *    of each 2x2 block, (a + b + c + d) * 0.25f. OpenCV adds in two orders: columns handled by its
 *    4-lane vector loop as (a + b) + (c + d), the last dw % 4 columns left to right
 *    ((a + b) + c) + d; both are reproduced since they round differently;
 *  - otherwise, per axis, the source coordinate of destination index d is
 *    f = (float)((d + 0.5) * scale - 0.5), scale = 1 / (dst / src) in double; s = floor(f) and
 *    the weights are 1 - (f - s) and f - s in float. Horizontally a position left of the first
 *    pixel becomes (pixel 0, weights 1 and 0) and one on or after the last pixel takes the last
 *    pixel as it is; vertically the two rows s and s + 1 are clamped into the image (their
 *    weights stay as computed, so an edge row is r * w0 + r * w1). Each pass computes
 *    p0 * w0 + p1 * w1 in float with two roundings (no fused multiply-add). */
#include "tensor/tensor_internal.h"

#include "core/internal.h"

#include <math.h>
#include <string.h>

static void resize_half(const float *src, int sw, float *dst, int dw, int dh) {
    int vec_end = dw - dw % 4; /* OpenCV's vector loop covers the columns before this one */
    for (int y = 0; y < dh; y++) {
        const float *r0 = src + (size_t)(2 * y) * (size_t)sw, *r1 = r0 + sw;
        float *d = dst + (size_t)y * (size_t)dw;
        for (int x = 0; x < dw; x++) {
            float a = r0[2 * x], b = r0[2 * x + 1], c = r1[2 * x], e = r1[2 * x + 1];
            float s = x < vec_end ? (a + b) + (c + e) : ((a + b) + c) + e;
            d[x] = s * 0.25f;
        }
    }
}

idl_status idl__resize_map(const float *src, int sw, int sh, float *dst, int dw, int dh,
                           const char *who) {
    if (sw == dw && sh == dh) {
        memcpy(dst, src, (size_t)sw * (size_t)sh * sizeof(float));
        return IDL_OK;
    }
    if (sw == 2 * dw && sh == 2 * dh) {
        resize_half(src, sw, dst, dw, dh);
        return IDL_OK;
    }
    /* per destination column: source column and weight of the next one; per row: two buffers */
    int *xofs = idl__malloc((size_t)dw * sizeof(int));
    float *xw = idl__malloc((size_t)dw * sizeof(float));
    float *row0 = idl__malloc((size_t)dw * sizeof(float));
    float *row1 = idl__malloc((size_t)dw * sizeof(float));
    if (!xofs || !xw || !row0 || !row1) {
        idl__free(xofs), idl__free(xw), idl__free(row0), idl__free(row1);
        return idl__error(IDL_ERR_NOMEM, "%s: out of memory resizing a %d x %d map to %d x %d", who,
                          sw, sh, dw, dh);
    }
    double scale_x = 1.0 / ((double)dw / sw), scale_y = 1.0 / ((double)dh / sh);
    for (int x = 0; x < dw; x++) {
        float f = (float)((x + 0.5) * scale_x - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (s < 0) s = 0, f = 0;
        if (s >= sw - 1) s = sw - 1, f = -1; /* -1: take the last pixel as it is */
        xofs[x] = s;
        xw[x] = f;
    }
    for (int y = 0; y < dh; y++) {
        float f = (float)((y + 0.5) * scale_y - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        int y0 = IDL_MIN(IDL_MAX(s, 0), sh - 1), y1 = IDL_MIN(IDL_MAX(s + 1, 0), sh - 1);
        for (int k = 0; k < 2; k++) {
            const float *r = src + (size_t)(k ? y1 : y0) * (size_t)sw;
            float *o = k ? row1 : row0;
            for (int x = 0; x < dw; x++) {
                int sx = xofs[x];
                float w = xw[x];
                if (w < 0) {
                    o[x] = r[sx];
                } else {
                    float p0 = r[sx] * (1.f - w), p1 = r[sx + 1] * w;
                    o[x] = p0 + p1;
                }
            }
        }
        float b0 = 1.f - f, b1 = f;
        float *d = dst + (size_t)y * (size_t)dw;
        for (int x = 0; x < dw; x++) {
            float p0 = row0[x] * b0, p1 = row1[x] * b1;
            d[x] = p0 + p1;
        }
    }
    idl__free(xofs), idl__free(xw), idl__free(row0), idl__free(row1);
    return IDL_OK;
}

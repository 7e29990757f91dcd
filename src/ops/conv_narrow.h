/* conv_narrow.h — the input gradient of a 2-D convolution with few input channels (an image
 * network's first layer: resnet50's 7x7 stride-2 convolution of 3 channels), on AVX2+FMA.
 *
 * oneDNN 2.6's backward-data kernels block the input channels by 8; with 3 of them they ran at
 * ~40% of the machine (resnet50's stem: 4.7 ms a row at batch 1, against 1.7 for its forward).
 * Here every input position's gradient is gathered instead, as one dot product:
 *   dx[c][ih][iw] = sum over the taps (kh, kw) that reach (ih, iw) and over m of
 *                   w[m][c][kh][kw] dy[m][oh][ow]
 * 8 output channels m at a time (one AVX vector; the lanes are summed at the end), for the C input
 * channels and a few neighbouring positions at once, so that each load of dy feeds C multiply-adds
 * and each load of weights several positions. The positions of a row are split by iw modulo the
 * stride (its phase): within a phase the taps are the same and consecutive positions read
 * consecutive ow. dy is first copied into blocks of 8 channels (as oneDNN's nChw8c) with zero
 * margins around each row, so that no tap needs a bounds check. A position's sum runs in a fixed
 * order (taps, then blocks of m, then lanes): its result does not depend on the batch.
 * resnet50's stem: 2.7 ms a row at batch 1, 2.3 at batch 4 (oneDNN 4.7 and 3.0).
 *
 * Only for x86-64 with AVX2 and FMA (idl__wino_available() says); C <= 4, one group, dilation 1. */
#pragma once

#include "core/internal.h"

typedef struct idl__narrow {
    int64_t N, C, M;        /* batch, input channels (1..4), output channels */
    int64_t H, W, OH, OW;   /* input and output sizes */
    int64_t kh, kw, sh, sw; /* kernel and strides */
    int64_t ph, pw;         /* padding before */
    bool dy_blocked;        /* dy in nChw8c (M a multiple of 8), else plain */
    int64_t mg, OWp;        /* zero margin each side of a copied dy row, its padded length */
} idl__narrow;

/* Whether the shapes fit; fills q. */
bool idl__narrow_fits(idl__narrow *q, int64_t N, int64_t C, int64_t M, int64_t H, int64_t W,
                      int64_t OH, int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                      int64_t ph, int64_t pw, bool dy_blocked);
/* Bytes of the work buffer idl__narrow_grad needs (32-byte aligned). */
size_t idl__narrow_buf_bytes(const idl__narrow *q);
/* dx (N, C, H, W) plain = (or += with accumulate) the gradient through the convolution with the
 * weights wt (M, C, kh, kw) of dy (N, M, OH, OW; nChw8c or plain as q says). buf: work buffer. */
void idl__narrow_grad(const idl__narrow *q, const float *wt, const float *dy, float *dx,
                      bool accumulate, float *buf);

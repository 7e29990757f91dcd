/* winograd.h — 3x3, stride-1 convolution by Winograd's minimal filtering F(4x4, 3x3) or F(2x2, 3x3)
 * on AVX2+FMA, for activations in oneDNN's nChw8c blocked layout (conv.c chooses it, and the tile,
 * where it pays; see there).
 *
 * Each 4x4 block of outputs ("tile") is computed from the 6x6 input patch around it as
 *   Y = A^T [ sum_c (G g_mc G^T) . (B^T d_c B) ] A
 * (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2016): the 3x3 kernels are
 * transformed once into 6x6 (U, 36 matrices of C x M), every input patch into 6x6 (V, 36 matrices
 * of tiles x C), the channel sums are 36 matrix products V U, and each product tile goes back to
 * 4x4 outputs. That is 36 multiply-adds per tile and channel pair instead of 144: 4x fewer. The
 * transforms use the points 0, +-1, +-2; in float32 the result differs from a direct convolution by
 * about 1e-6 of the output's scale (the tests bound it). F(2x2, 3x3) is the same with 2x2 output
 * tiles from 4x4 patches (16 matrices, 2.25x fewer multiply-adds, points 0 and +-1): for small maps
 * (7x7), where 4x4 tiles would be few and mostly padding.
 *
 * The input gradient runs the adjoint of each step in reverse order, with the same transformed
 * kernels: Z = A dY A^T per output tile, P_xi = Z_xi U_xi^T, and dX gets B P B^T added over the
 * overlapping 6x6 input patches. The products P read U transposed (Ut, made from U by
 * idl__wino_init_grad) so that they run with the forward's kernel on contiguous panels: read in
 * U's own layout, a panel's columns lie 16 x C floats apart and the products ran 1.5-3x slower
 * than the forward's.
 *
 * Only for x86-64 with AVX2 and FMA: idl__wino_available() says whether this build and CPU have
 * them; the other functions must not be called otherwise. */
#pragma once

#include "core/internal.h"

typedef struct idl__wino {
    int m, a, a2;    /* output tile m x m (4 or 2), input patch a x a (a = m + 2), a2 = a * a
                        transformed matrices (36 or 16, written 36 below) */
    int64_t N, C, M; /* batch; input channels (multiple of 8); output channels (of 16) */
    int64_t H, W;    /* input size */
    int64_t OH, OW;  /* output size */
    int64_t pt, pl;  /* padding before, rows and columns (0..2) */
    int64_t th, tw;  /* tiles per image, down and across */
    int64_t T, T6;   /* tiles in the batch; rounded up to the 6 rows of the product kernel */
    int64_t Cp;      /* C rounded up to a multiple of 16 (the columns of the gradient products) */
    int64_t mblk;    /* output channels per cache block of the products */
    int64_t cblk;    /* input channels per cache block of the gradient products */
    float *U;        /* transformed kernels: [36][M/16][C][16] */
    float *Ut;       /* the same transposed, for the input gradient: [36][Cp/16][M][16], zero for
                        the channels from C to Cp; NULL until idl__wino_init_grad */
    bool act;        /* the output transform clamps to [lo, hi] (a fused Relu or Clip; not with
                        accumulate) */
    float lo, hi;
} idl__wino;

bool idl__wino_available(void);

/* Fills w and transforms the kernels: wt is an ONNX Conv weight tensor (M, C, 3, 3), row-major;
 * tile 4 (F(4x4,3x3)) or 2 (F(2x2,3x3)); input N x C x H x W padded by pt rows and pl columns
 * before, output N x M x OH x OW. NOMEM on failure. wt NULL: w->U is left for the caller to set
 * (kernels transformed before, for the same tile, C and M). */
idl_status idl__wino_init(idl__wino *w, const float *wt, int tile, int64_t N, int64_t C, int64_t M,
                          int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t pt, int64_t pl);
/* Makes w->Ut from w->U; NOMEM on failure. (A caller that holds a Ut made before from the same
 * kernels sets w->Ut instead.) */
idl_status idl__wino_init_grad(idl__wino *w);
/* Frees w->U and w->Ut (those the caller did not take back by setting them to NULL). */
void idl__wino_free(idl__wino *w);

/* Bytes of the two work buffers idl__wino_run and idl__wino_run_grad need (the transformed input
 * and the products). */
size_t idl__wino_v_bytes(const idl__wino *w);
size_t idl__wino_m_bytes(const idl__wino *w);

/* y (N, M/8, OH, OW, 8) = conv(x (N, C/8, H, W, 8)) + bias (M floats, or NULL); accumulate adds
 * into y instead. V and Mx are work buffers of the sizes above, 32-byte aligned. */
void idl__wino_run(const idl__wino *w, const float *x, const float *bias, float *y, bool accumulate,
                   float *V, float *Mx);
/* The input gradient: dx (N, C/8, H, W, 8) = (or += with accumulate) the gradient through the
 * convolution of dy (N, M/8, OH, OW, 8). V and Mx as above; w->Ut must be set. */
void idl__wino_run_grad(const idl__wino *w, const float *dy, float *dx, bool accumulate, float *V,
                        float *Mx);

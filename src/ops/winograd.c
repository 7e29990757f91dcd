/* winograd.c — F(4x4, 3x3) and F(2x2, 3x3) Winograd convolution on nChw8c activations (see
 * winograd.h).
 *
 * Three passes per call, each parallel over independent pieces:
 *  1. input transform: every 6x6 input patch (tiles 4 apart, zero outside the input), 8 channels
 *     at a time in one AVX register, to V (36 matrices of T6 tiles x C channels, stored in blocks
 *     of 6 tiles, see transform_tiles);
 *  2. 36 products Mx_xi = V_xi U_xi ([T6 x C] by [C x M]) with a 6x16 register-blocked kernel: the
 *     6 rows of V stay in L1 while a block of U (at most 64 KiB) streams from L2;
 *  3. output transform: each tile's 36 x 8-channel products back to its 4x4 outputs, plus the bias,
 *     written (or added) into the nChw8c output, clipped at the border.
 * The tile count is padded to a multiple of 6 with zero rows, whose products are never read. The
 * input gradient has the same three passes, adjoint and in reverse order; its products are the
 * same kernel on the transposed kernels Ut. F(2x2, 3x3) (w->m == 2) is the same with 4x4 patches
 * 2 apart, 16 matrices and 2x2 outputs; the counts below are F(4x4, 3x3)'s. */
#include "ops/winograd.h"

#include <string.h>

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#    define IDL_WINO 1
#    include <immintrin.h>
#endif

void idl__wino_free(idl__wino *w) {
    if (!w) return;
    idl__aligned_free(w->U);
    idl__aligned_free(w->Ut);
    w->U = w->Ut = NULL;
}

/* V holds the transformed input (C columns) and, in the input gradient, the products P (Cp) */
size_t idl__wino_v_bytes(const idl__wino *w) {
    return (size_t)(w->a2 * w->T6 * w->Cp) * sizeof(float);
}

size_t idl__wino_m_bytes(const idl__wino *w) {
    return (size_t)(w->a2 * w->T6 * w->M) * sizeof(float);
}

/* G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1], applied to a
 * 3-vector (in double: the kernels are transformed once). */
static void g6(const double *g, int s, double *o, int os) {
    double g0 = g[0], g1 = g[s], g2 = g[2 * s];
    o[0] = g0 / 4;
    o[os] = -(g0 + g1 + g2) / 6;
    o[2 * os] = -(g0 - g1 + g2) / 6;
    o[3 * os] = g0 / 24 + g1 / 12 + g2 / 6;
    o[4 * os] = g0 / 24 - g1 / 12 + g2 / 6;
    o[5 * os] = g2;
}

/* F(2x2,3x3): G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] */
static void g4(const double *g, int s, double *o, int os) {
    double g0 = g[0], g1 = g[s], g2 = g[2 * s];
    o[0] = g0;
    o[os] = (g0 + g1 + g2) / 2;
    o[2 * os] = (g0 - g1 + g2) / 2;
    o[3 * os] = g2;
}

idl_status idl__wino_init(idl__wino *w, const float *wt, int tile, int64_t N, int64_t C, int64_t M,
                          int64_t H, int64_t W, int64_t OH, int64_t OW, int64_t pt, int64_t pl) {
    memset(w, 0, sizeof *w);
    w->m = tile == 2 ? 2 : 4;
    w->a = w->m + 2;
    w->a2 = w->a * w->a;
    const int mt = w->m, a = w->a, a2 = w->a2;
    w->N = N;
    w->C = C;
    w->M = M;
    w->H = H;
    w->W = W;
    w->OH = OH;
    w->OW = OW;
    w->pt = pt;
    w->pl = pl;
    w->th = (OH + mt - 1) / mt;
    w->tw = (OW + mt - 1) / mt;
    w->T = N * w->th * w->tw;
    w->T6 = (w->T + 5) / 6 * 6;
    w->Cp = (C + 15) / 16 * 16;
    /* the block of U (or Ut) one work item of the products reads for every 6 tiles: <= 64 KiB */
    int64_t mb = (64 * 1024 / (int64_t)sizeof(float) / w->C) / 16 * 16;
    w->mblk = IDL_MIN(w->M, IDL_MAX(16, mb));
    int64_t cb = (64 * 1024 / (int64_t)sizeof(float) / w->M) / 16 * 16;
    w->cblk = IDL_MIN(w->Cp, IDL_MAX(16, cb));
    int64_t MP = M / 16;
    if (!wt) return IDL_OK;
    size_t bytes = (size_t)(a2 * C * M) * sizeof(float);
    w->U = idl__aligned_alloc_raw(bytes); /* every element is written below */
    if (!w->U)
        return idl__error(IDL_ERR_NOMEM, "out of memory (Winograd kernels of %zu bytes)", bytes);
    /* U[x][m/16][c][m%16], built 32 input channels at a time in a buffer and copied out as one
     * run of 2 KiB per plane: plan time, but 4x the weights, so the stores must stream */
    enum { CB = 32 };
    idl__wino *wc = w;
#pragma omp parallel for schedule(static) if (MP * C > 256)
    for (int64_t b = 0; b < MP; b++)
        for (int64_t c0 = 0; c0 < C; c0 += CB) {
            float tmp[36][CB][16];
            int64_t cn = IDL_MIN(CB, C - c0);
            for (int64_t ci = 0; ci < cn; ci++)
                for (int64_t mi = 0; mi < 16; mi++) {
                    int64_t m = b * 16 + mi, c = c0 + ci;
                    double g[9], t[18], u[36];
                    for (int k = 0; k < 9; k++)
                        g[k] = wt[(m * C + c) * 9 + k];
                    for (int k = 0; k < 3; k++) /* along the columns: t[k][j] */
                        (mt == 4 ? g6 : g4)(g + k * 3, 1, t + k * a, 1);
                    for (int j = 0; j < a; j++) /* along the rows: u[i][j] */
                        (mt == 4 ? g6 : g4)(t + j, a, u + j, a);
                    for (int x = 0; x < a2; x++)
                        tmp[x][ci][mi] = (float)u[x];
                }
            for (int x = 0; x < a2; x++)
                memcpy(wc->U + ((x * MP + b) * C + c0) * 16, tmp[x],
                       sizeof(float) * 16 * (size_t)cn);
        }
    return IDL_OK;
}

idl_status idl__wino_init_grad(idl__wino *w) {
    const int64_t C = w->C, M = w->M, MP = M / 16, CQ = w->Cp / 16;
    size_t bytes = (size_t)(w->a2 * w->Cp * M) * sizeof(float);
    w->Ut = idl__aligned_alloc_raw(bytes); /* every element is written below */
    if (!w->Ut)
        return idl__error(IDL_ERR_NOMEM, "out of memory (Winograd kernels of %zu bytes)", bytes);
    const float *U = w->U;
    float *Ut = w->Ut;
    /* Ut[x][c/16][m][c%16] = U[x][m/16][c][m%16]: one output panel (M x 16) a work item */
#pragma omp parallel for schedule(static) if (CQ * M > 256)
    for (int64_t xq = 0; xq < w->a2 * CQ; xq++) {
        int64_t x = xq / CQ, q = xq % CQ;
        float *dst = Ut + xq * M * 16;
        for (int64_t m = 0; m < M; m++) {
            const float *src = U + ((x * MP + m / 16) * C) * 16 + m % 16;
            for (int64_t ci = 0; ci < 16; ci++) {
                int64_t c = q * 16 + ci;
                dst[m * 16 + ci] = c < C ? src[c * 16] : 0.f;
            }
        }
    }
    return IDL_OK;
}

#ifdef IDL_WINO

bool idl__wino_available(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0; 0 4 0 -5 0 1] */
static inline void bt6(const __m256 *x, int s, __m256 *o, int os) {
    const __m256 c2 = _mm256_set1_ps(2.f), c4 = _mm256_set1_ps(4.f), c5 = _mm256_set1_ps(5.f);
    __m256 x0 = x[0], x1 = x[s], x2 = x[2 * s], x3 = x[3 * s], x4 = x[4 * s], x5 = x[5 * s];
    o[0] = _mm256_fmadd_ps(c4, x0, _mm256_fnmadd_ps(c5, x2, x4));
    o[os] = _mm256_fnmadd_ps(c4, _mm256_add_ps(x1, x2), _mm256_add_ps(x3, x4));
    o[2 * os] = _mm256_fmadd_ps(c4, _mm256_sub_ps(x1, x2), _mm256_sub_ps(x4, x3));
    o[3 * os] = _mm256_fmadd_ps(c2, _mm256_sub_ps(x3, x1), _mm256_sub_ps(x4, x2));
    o[4 * os] = _mm256_fmadd_ps(c2, _mm256_sub_ps(x1, x3), _mm256_sub_ps(x4, x2));
    o[5 * os] = _mm256_fmadd_ps(c4, x1, _mm256_fnmadd_ps(c5, x3, x5));
}

/* A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1] */
static inline void at6(const __m256 *x, int s, __m256 *o, int os) {
    __m256 x0 = x[0], x5 = x[5 * s];
    __m256 p12 = _mm256_add_ps(x[s], x[2 * s]), m12 = _mm256_sub_ps(x[s], x[2 * s]);
    __m256 p34 = _mm256_add_ps(x[3 * s], x[4 * s]), m34 = _mm256_sub_ps(x[3 * s], x[4 * s]);
    o[0] = _mm256_add_ps(_mm256_add_ps(x0, p12), p34);
    o[os] = _mm256_fmadd_ps(_mm256_set1_ps(2.f), m34, m12);
    o[2 * os] = _mm256_fmadd_ps(_mm256_set1_ps(4.f), p34, p12);
    o[3 * os] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8.f), m34, m12), x5);
}

/* F(2x2,3x3): B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1] */
static inline void bt4(const __m256 *x, int s, __m256 *o, int os) {
    __m256 x0 = x[0], x1 = x[s], x2 = x[2 * s], x3 = x[3 * s];
    o[0] = _mm256_sub_ps(x0, x2);
    o[os] = _mm256_add_ps(x1, x2);
    o[2 * os] = _mm256_sub_ps(x2, x1);
    o[3 * os] = _mm256_sub_ps(x1, x3);
}

/* F(2x2,3x3): A^T = [1 1 1 0; 0 1 -1 -1] */
static inline void at4(const __m256 *x, int s, __m256 *o, int os) {
    __m256 x1 = x[s], x2 = x[2 * s];
    o[0] = _mm256_add_ps(_mm256_add_ps(x[0], x1), x2);
    o[os] = _mm256_sub_ps(_mm256_sub_ps(x1, x2), x[3 * s]);
}

/* A 1-D transform of a vectors' column (stride s) into b (stride os): bt6, at6, ... */
typedef void (*tf1)(const __m256 *x, int s, __m256 *o, int os);

/* o (no x no) = F x F^T for the ni x ni block x (row-major), F the 1-D transform f from ni values
 * to no: f along each row of x into q (ni x no), then along each column of q. Inlined with f. */
static inline __attribute__((always_inline)) void sep2(tf1 f, int ni, int no, const __m256 *x,
                                                       __m256 *o) {
    __m256 q[36];
    for (int i = 0; i < ni; i++)
        f(x + i * ni, 1, q + i * no, 1);
    for (int j = 0; j < no; j++)
        f(q + j, no, o + j, no);
}

/* One tile's a2 transformed vectors (8 channels each) into v. */
static inline void tile_in(const idl__wino *w, const float *x, int64_t t, int64_t cb, __m256 *v) {
    const int64_t CB = w->C / 8, H = w->H, W = w->W, tpi = w->th * w->tw;
    int64_t n = t / tpi, r = t % tpi;
    const int a = w->a;
    int64_t h0 = (r / w->tw) * w->m - w->pt, w0 = (r % w->tw) * w->m - w->pl;
    const float *src = x + (n * CB + cb) * H * W * 8;
    __m256 d[36];
    if (h0 >= 0 && w0 >= 0 && h0 + a <= H && w0 + a <= W) {
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++)
                d[i * a + j] = _mm256_loadu_ps(src + ((h0 + i) * W + w0 + j) * 8);
    } else {
        for (int i = 0; i < a; i++)
            for (int j = 0; j < a; j++) {
                int64_t h = h0 + i, ww = w0 + j;
                d[i * a + j] = h >= 0 && h < H && ww >= 0 && ww < W
                                   ? _mm256_loadu_ps(src + (h * W + ww) * 8)
                                   : _mm256_setzero_ps();
            }
    }
    if (a == 6)
        sep2(bt6, 6, 6, d, v);
    else
        sep2(bt4, 4, 4, d, v);
}

/* The a2 transformed vectors of 6 tiles (buf[k][tile][lane], 8 channels from channel c0) into a
 * work matrix of the layout [a2][T6/6][K][6] (K channels): for each matrix, blocks of 6 tiles with
 * the 6 tiles' values of a channel side by side, so that the product kernel reads its 6 rows'
 * values of one channel together. */
static inline void put_block(const float (*buf)[6][8], int a2, float *dst, int64_t TB, int64_t tb,
                             int64_t K, int64_t c0) {
    for (int k = 0; k < a2; k++) {
        float *d = dst + ((k * TB + tb) * K + c0) * 6;
        for (int l = 0; l < 8; l++)
            for (int ti = 0; ti < 6; ti++)
                d[l * 6 + ti] = buf[k][ti][l];
    }
}

/* Every tile's a2 transformed vectors (tile: tile_in of the input, tile_gout of the output
 * gradient; K channels of src) into the work matrix dst [a2][T6/6][K][6] (put_block); the padding
 * tiles are zero, so that their products are finite. */
typedef void (*tile_fn)(const idl__wino *w, const float *src, int64_t t, int64_t cb, __m256 *v);
static inline void transform_tiles(const idl__wino *w, const float *src, int64_t K, tile_fn tile,
                                   float *dst) {
    const int64_t KB = K / 8, TB = w->T6 / 6, T = w->T, n_items = TB * KB;
#    pragma omp parallel for schedule(static) if (n_items > 16)
    for (int64_t it = 0; it < n_items; it++) {
        int64_t tb = it / KB, cb = it % KB;
        float buf[36][6][8] __attribute__((aligned(32)));
        for (int ti = 0; ti < 6; ti++) {
            int64_t t = tb * 6 + ti;
            __m256 v[36];
            if (t < T)
                tile(w, src, t, cb, v);
            else
                for (int k = 0; k < w->a2; k++)
                    v[k] = _mm256_setzero_ps();
            for (int k = 0; k < w->a2; k++)
                _mm256_store_ps(buf[k][ti], v[k]);
        }
        put_block(buf, w->a2, dst, TB, tb, K, cb * 8);
    }
}

/* c[0..6) x [0..16) = a (K groups of 6 row values) times b (K rows of 16), row stride ldc */
static inline void kern6x16(const float *a, const float *b, int64_t K, float *c, int64_t ldc) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int64_t k = 0; k < K; k++, b += 16, a += 6) {
        __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8), v;
        v = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(v, b0, c00);
        c01 = _mm256_fmadd_ps(v, b1, c01);
        v = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(v, b0, c10);
        c11 = _mm256_fmadd_ps(v, b1, c11);
        v = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(v, b0, c20);
        c21 = _mm256_fmadd_ps(v, b1, c21);
        v = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(v, b0, c30);
        c31 = _mm256_fmadd_ps(v, b1, c31);
        v = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(v, b0, c40);
        c41 = _mm256_fmadd_ps(v, b1, c41);
        v = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(v, b0, c50);
        c51 = _mm256_fmadd_ps(v, b1, c51);
    }
    _mm256_store_ps(c, c00);
    _mm256_store_ps(c + 8, c01);
    _mm256_store_ps(c + ldc, c10);
    _mm256_store_ps(c + ldc + 8, c11);
    _mm256_store_ps(c + 2 * ldc, c20);
    _mm256_store_ps(c + 2 * ldc + 8, c21);
    _mm256_store_ps(c + 3 * ldc, c30);
    _mm256_store_ps(c + 3 * ldc + 8, c31);
    _mm256_store_ps(c + 4 * ldc, c40);
    _mm256_store_ps(c + 4 * ldc + 8, c41);
    _mm256_store_ps(c + 5 * ldc, c50);
    _mm256_store_ps(c + 5 * ldc + 8, c51);
}

/* The a2 products out_xi = A_xi B_xi: A [a2][T6/6][K][6] (put_block), B [a2][N/16][K][16],
 * out [T6][a2][N]. A work item is one matrix and a block of nblk columns, whose panels of B (at
 * most 64 KiB) stay in L2 while the 6-row blocks of A stream through L1. */
static void products(const float *A, const float *B, int a2, int64_t K, int64_t N, int64_t nblk,
                     int64_t T6, float *out) {
    const int64_t NP = N / 16, nnb = (N + nblk - 1) / nblk, n_items = a2 * nnb;
#    pragma omp parallel for schedule(static)
    for (int64_t it = 0; it < n_items; it++) {
        int64_t x = it / nnb, n0 = (it % nnb) * nblk, n1 = IDL_MIN(N, n0 + nblk);
        const float *Ax = A + x * T6 * K, *Bx = B + x * NP * K * 16;
        for (int64_t t = 0; t < T6; t += 6)
            for (int64_t n = n0; n < n1; n += 16)
                kern6x16(Ax + t * K, Bx + (n / 16) * K * 16, K, out + (t * a2 + x) * N + n, a2 * N);
    }
}

static void output_transform(const idl__wino *w, const float *Mx, const float *bias, float *y,
                             bool acc) {
    const int64_t M = w->M, MB = M / 8, OH = w->OH, OW = w->OW, T = w->T;
    const int64_t tpi = w->th * w->tw, n_items = T * MB;
#    pragma omp parallel for schedule(static) if (n_items > 64)
    for (int64_t it = 0; it < n_items; it++) {
        int64_t t = it / MB, mb = it % MB, n = t / tpi, r = t % tpi;
        const int mt = w->m, a2 = w->a2;
        int64_t h0 = (r / w->tw) * mt, w0 = (r % w->tw) * mt;
        const float *src = Mx + t * a2 * M + mb * 8;
        __m256 m[36], o[16];
        for (int k = 0; k < a2; k++)
            m[k] = _mm256_loadu_ps(src + k * M);
        if (mt == 4)
            sep2(at6, 6, 4, m, o);
        else
            sep2(at4, 4, 2, m, o);
        __m256 b = bias ? _mm256_loadu_ps(bias + mb * 8) : _mm256_setzero_ps();
        float *dst = y + (n * MB + mb) * OH * OW * 8;
        int hn = (int)IDL_MIN(mt, OH - h0), wn = (int)IDL_MIN(mt, OW - w0);
        for (int i = 0; i < hn; i++)
            for (int j = 0; j < wn; j++) {
                float *p = dst + ((h0 + i) * OW + w0 + j) * 8;
                __m256 v = _mm256_add_ps(o[i * mt + j], b);
                if (acc) v = _mm256_add_ps(v, _mm256_loadu_ps(p));
                if (w->act)
                    v = _mm256_min_ps(_mm256_max_ps(v, _mm256_set1_ps(w->lo)),
                                      _mm256_set1_ps(w->hi));
                _mm256_storeu_ps(p, v);
            }
    }
}

void idl__wino_run(const idl__wino *w, const float *x, const float *bias, float *y, bool accumulate,
                   float *V, float *Mx) {
    transform_tiles(w, x, w->C, tile_in, V); /* V [a2][T6/6][C][6] */
    products(V, w->U, w->a2, w->C, w->M, w->mblk, w->T6, Mx);
    output_transform(w, Mx, bias, y, accumulate);
}

/* ---- the input gradient: the three passes' adjoints, in reverse order ---- */

/* A = (A^T)^T, 4 -> 6 */
static inline void a6(const __m256 *y, int s, __m256 *o, int os) {
    __m256 y0 = y[0], y1 = y[s], y2 = y[2 * s], y3 = y[3 * s];
    __m256 p02 = _mm256_add_ps(y0, y2), p13 = _mm256_add_ps(y1, y3);
    __m256 q02 = _mm256_fmadd_ps(_mm256_set1_ps(4.f), y2, y0);
    __m256 q13 = _mm256_fmadd_ps(_mm256_set1_ps(8.f), y3, _mm256_add_ps(y1, y1));
    o[0] = y0;
    o[os] = _mm256_add_ps(p02, p13);
    o[2 * os] = _mm256_sub_ps(p02, p13);
    o[3 * os] = _mm256_add_ps(q02, q13);
    o[4 * os] = _mm256_sub_ps(q02, q13);
    o[5 * os] = y3;
}

/* B = (B^T)^T, 6 -> 6 */
static inline void b6(const __m256 *p, int s, __m256 *o, int os) {
    const __m256 c2 = _mm256_set1_ps(2.f), c4 = _mm256_set1_ps(4.f), c5 = _mm256_set1_ps(5.f);
    __m256 p0 = p[0], p1 = p[s], p2 = p[2 * s], p3 = p[3 * s], p4 = p[4 * s], p5 = p[5 * s];
    __m256 s12 = _mm256_add_ps(p1, p2), s34 = _mm256_add_ps(p3, p4);
    o[0] = _mm256_mul_ps(c4, p0);
    o[os] = _mm256_fmadd_ps(c4, _mm256_add_ps(_mm256_sub_ps(p2, p1), p5),
                            _mm256_mul_ps(c2, _mm256_sub_ps(p4, p3)));
    o[2 * os] =
        _mm256_sub_ps(_mm256_setzero_ps(), _mm256_fmadd_ps(c5, p0, _mm256_fmadd_ps(c4, s12, s34)));
    o[3 * os] =
        _mm256_fnmadd_ps(c5, p5, _mm256_fmadd_ps(c2, _mm256_sub_ps(p3, p4), _mm256_sub_ps(p1, p2)));
    o[4 * os] = _mm256_add_ps(_mm256_add_ps(p0, s12), s34);
    o[5 * os] = p5;
}

/* F(2x2,3x3): A = (A^T)^T, 2 -> 4 */
static inline void a4(const __m256 *y, int s, __m256 *o, int os) {
    __m256 y0 = y[0], y1 = y[s];
    o[0] = y0;
    o[os] = _mm256_add_ps(y0, y1);
    o[2 * os] = _mm256_sub_ps(y0, y1);
    o[3 * os] = _mm256_sub_ps(_mm256_setzero_ps(), y1);
}

/* F(2x2,3x3): B = (B^T)^T, 4 -> 4 */
static inline void b4(const __m256 *p, int s, __m256 *o, int os) {
    __m256 p0 = p[0], p1 = p[s], p2 = p[2 * s], p3 = p[3 * s];
    o[0] = p0;
    o[os] = _mm256_add_ps(_mm256_sub_ps(p1, p2), p3);
    o[2 * os] = _mm256_sub_ps(_mm256_add_ps(p1, p2), p0);
    o[3 * os] = _mm256_sub_ps(_mm256_setzero_ps(), p3);
}

/* One output tile's A dY A^T (8 channels, zero outside the output) into z. */
static inline void tile_gout(const idl__wino *w, const float *dy, int64_t t, int64_t mb,
                             __m256 *z) {
    const int64_t MB = w->M / 8, OH = w->OH, OW = w->OW, tpi = w->th * w->tw;
    int64_t n = t / tpi, r = t % tpi;
    const int mt = w->m;
    int64_t h0 = (r / w->tw) * mt, w0 = (r % w->tw) * mt;
    const float *src = dy + (n * MB + mb) * OH * OW * 8;
    __m256 d[16];
    int hn = (int)IDL_MIN(mt, OH - h0), wn = (int)IDL_MIN(mt, OW - w0);
    for (int i = 0; i < mt; i++)
        for (int j = 0; j < mt; j++)
            d[i * mt + j] = i < hn && j < wn ? _mm256_loadu_ps(src + ((h0 + i) * OW + w0 + j) * 8)
                                             : _mm256_setzero_ps();
    if (mt == 4)
        sep2(a6, 4, 6, d, z);
    else
        sep2(a4, 2, 4, d, z);
}

/* dx (+)= B P B^T of every tile, added over the overlapping 6x6 patches (dropped outside the
 * input). One image and 8 channels per work item, so no two threads add into one place. */
static void grad_in_transform(const idl__wino *w, const float *P, float *dx, bool acc) {
    const int64_t CP = w->Cp, CB = w->C / 8, H = w->H, W = w->W, N = w->N;
    const int64_t tpi = w->th * w->tw, n_items = N * CB;
#    pragma omp parallel for schedule(static) if (n_items > 1)
    for (int64_t it = 0; it < n_items; it++) {
        int64_t n = it / CB, cb = it % CB;
        float *dst = dx + (n * CB + cb) * H * W * 8;
        if (!acc) memset(dst, 0, (size_t)(H * W * 8) * sizeof(float));
        const int mt = w->m, a = w->a, a2 = w->a2;
        for (int64_t r = 0; r < tpi; r++) {
            int64_t t = n * tpi + r;
            int64_t h0 = (r / w->tw) * mt - w->pt, w0 = (r % w->tw) * mt - w->pl;
            const float *src = P + t * a2 * CP + cb * 8;
            __m256 m[36], d[36];
            for (int k = 0; k < a2; k++)
                m[k] = _mm256_loadu_ps(src + k * CP);
            if (a == 6)
                sep2(b6, 6, 6, m, d);
            else
                sep2(b4, 4, 4, m, d);
            for (int i = 0; i < a; i++) {
                int64_t h = h0 + i;
                if (h < 0 || h >= H) continue;
                for (int j = 0; j < a; j++) {
                    int64_t ww = w0 + j;
                    if (ww < 0 || ww >= W) continue;
                    float *p = dst + (h * W + ww) * 8;
                    _mm256_storeu_ps(p, _mm256_add_ps(_mm256_loadu_ps(p), d[i * a + j]));
                }
            }
        }
    }
}

void idl__wino_run_grad(const idl__wino *w, const float *dy, float *dx, bool accumulate, float *V,
                        float *Mx) {
    transform_tiles(w, dy, w->M, tile_gout, Mx);                /* Z = A dY A^T [a2][T6/6][M][6] */
    products(Mx, w->Ut, w->a2, w->M, w->Cp, w->cblk, w->T6, V); /* P [T6][a2][Cp] */
    grad_in_transform(w, V, dx, accumulate);
}

#else /* no AVX2 in this build */

bool idl__wino_available(void) {
    return false;
}

void idl__wino_run(const idl__wino *w, const float *x, const float *bias, float *y, bool accumulate,
                   float *V, float *Mx) {
    (void)w, (void)x, (void)bias, (void)y, (void)accumulate, (void)V, (void)Mx;
    IDL_ABORT("Winograd convolution without AVX2 in this build");
}

void idl__wino_run_grad(const idl__wino *w, const float *dy, float *dx, bool accumulate, float *V,
                        float *Mx) {
    (void)w, (void)dy, (void)dx, (void)accumulate, (void)V, (void)Mx;
    IDL_ABORT("Winograd convolution without AVX2 in this build");
}

#endif

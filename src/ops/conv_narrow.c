/* conv_narrow.c — the input gradient of a convolution with few input channels (see
 * conv_narrow.h). */
#include "ops/conv_narrow.h"

#include <string.h>

#if defined(__x86_64__) && defined(__AVX2__) && defined(__FMA__)
#    include <immintrin.h>
#    define IDL_NARROW 1
#endif

enum { MAXP = 4 };  /* positions summed at once: C x P accumulators */
enum { MAXC = 4 };  /* input channels */
enum { MAXT = 64 }; /* taps reaching one phase of a row */

bool idl__narrow_fits(idl__narrow *q, int64_t N, int64_t C, int64_t M, int64_t H, int64_t W,
                      int64_t OH, int64_t OW, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                      int64_t ph, int64_t pw, bool dy_blocked) {
#ifndef IDL_NARROW
    (void)q, (void)N, (void)C, (void)M, (void)H, (void)W, (void)OH, (void)OW, (void)kh, (void)kw;
    (void)sh, (void)sw, (void)ph, (void)pw, (void)dy_blocked;
    return false;
#else
    if (C < 1 || C > MAXC || M < 1 || N < 1 || kh < 1 || kw < 1 || sh < 1 || sw < 1 || ph < 0 ||
        pw < 0 || ph >= kh || pw >= kw || (dy_blocked && M % 8) ||
        kh * ((kw + sw - 1) / sw) > MAXT || H < 1 || W < 1 || OH < 1 || OW < 1)
        return false;
    *q = (idl__narrow){ N, C, M, H, W, OH, OW, kh, kw, sh, sw, ph, pw, dy_blocked, 0, 0 };
    /* a phase's position j (j < ceil(W / sw)) reads ow = j + shift with shift from
     * -((kw - 1) / sw) - 1 to (sw - 1 + pw) / sw: the margins hold every ow outside the output as
     * a zero (the last block of P positions also reads up to P - 1 past its phase's positions,
     * for discarded results) */
    int64_t left = (kw - 1) / sw + 1, right = (W + sw - 1) / sw + (sw - 1 + pw) / sw - OW;
    q->mg = (left > right ? left : right) + 1;
    q->OWp = OW + 2 * q->mg;
    return true;
#endif
}

size_t idl__narrow_buf_bytes(const idl__narrow *q) {
    size_t mp = (size_t)(q->M + 7) / 8 * 8;
    size_t rows = (size_t)(q->N * q->OH * q->OWp) * mp;
    size_t wts = (size_t)(q->C * q->kh * q->kw) * mp;
    return (rows + 8 * MAXP + wts) * sizeof(float);
}

#ifdef IDL_NARROW

/* dy into blocks of 8 channels with zero margins: dyp[n][mb][oh][mg + ow][8] (channels from M to
 * Mp = M rounded up to 8 are zero) */
static void copy_dy(const idl__narrow *q, const float *dy, float *dyp) {
    const int64_t M = q->M, MB = (M + 7) / 8, OH = q->OH, OW = q->OW, OWp = q->OWp, mg = q->mg;
    const int64_t n_items = q->N * MB * OH;
#    pragma omp parallel for schedule(static) if (n_items > 64)
    for (int64_t it = 0; it < n_items; it++) {
        int64_t oh = it % OH, nb = it / OH, n = nb / MB, mb = nb % MB;
        float *d = dyp + (nb * OH + oh) * OWp * 8;
        memset(d, 0, sizeof(float) * (size_t)(mg * 8));
        memset(d + (mg + OW) * 8, 0, sizeof(float) * (size_t)(mg * 8));
        if (q->dy_blocked) {
            memcpy(d + mg * 8, dy + (nb * OH + oh) * OW * 8, sizeof(float) * (size_t)(OW * 8));
            continue;
        }
        for (int64_t ow = 0; ow < OW; ow++)
            for (int64_t l = 0; l < 8; l++) {
                int64_t m = mb * 8 + l;
                d[(mg + ow) * 8 + l] = m < M ? dy[((n * M + m) * OH + oh) * OW + ow] : 0.f;
            }
    }
}

/* The lanes' sum of each of a[0..k) (k <= 4) into v[0..k) */
static inline void hsums(const __m256 *a, int k, float *v) {
    for (int i = 0; i < k; i++) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(a[i]), _mm256_extractf128_ps(a[i], 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        v[i] = _mm_cvtss_f32(s);
    }
}

/* The positions j of one phase of a row, P at a time: for each, the sum over the taps and the
 * channel blocks of w[c][tap][m..m+8) . dy[m..m+8)[oh][j + shift], lanes summed at the end, for
 * the C channels (constants where it is called, so that the C x P accumulators stay in registers;
 * a position's lanes sum in the same order alone or beside others). */
static inline __attribute__((always_inline)) void
block_loop(const idl__narrow *q, const float *wr, const float *dyn, int64_t ih, int64_t r,
           float *dxn, bool acc, int nt, const int64_t *t_off, const int64_t *t_w, int64_t nj,
           const int C, const int P) {
    const int64_t MB = (q->M + 7) / 8, plane = q->OH * q->OWp * 8, wc = q->kh * q->kw * MB * 8;
    for (int64_t j0 = 0; j0 < nj; j0 += P) {
        __m256 a[MAXC][MAXP];
        for (int c = 0; c < C; c++)
            for (int p = 0; p < P; p++)
                a[c][p] = _mm256_setzero_ps();
        for (int t = 0; t < nt; t++) {
            const float *d = dyn + t_off[t] + j0 * 8, *w = wr + t_w[t];
            for (int64_t mb = 0; mb < MB; mb++, d += plane, w += 8) {
                __m256 wv[MAXC];
                for (int c = 0; c < C; c++)
                    wv[c] = _mm256_loadu_ps(w + c * wc);
                for (int p = 0; p < P; p++) {
                    __m256 dv = _mm256_loadu_ps(d + p * 8);
                    for (int c = 0; c < C; c++)
                        a[c][p] = _mm256_fmadd_ps(wv[c], dv, a[c][p]);
                }
            }
        }
        int64_t jn = IDL_MIN(P, nj - j0);
        for (int c = 0; c < C; c++) {
            float v[MAXP];
            hsums(a[c], P, v);
            float *row = dxn + (c * q->H + ih) * q->W + r;
            for (int64_t j = 0; j < jn; j++) {
                float *p = row + (j0 + j) * q->sw;
                *p = acc ? *p + v[j] : v[j];
            }
        }
    }
}

/* One phase (iw = r + sw j) of one input row of one image: the C channels' gradients. */
static void phase_row(const idl__narrow *q, const float *wr, const float *dyn, int64_t ih,
                      int64_t r, float *dxn, bool acc) {
    const int64_t MB = (q->M + 7) / 8, OWp = q->OWp, mg = q->mg;
    const int64_t nj = (q->W - r + q->sw - 1) / q->sw;
    /* the taps reaching this row and phase: where (j = 0) reads dy, and the weights' offset */
    int64_t t_off[MAXT], t_w[MAXT];
    int nt = 0;
    for (int64_t kh = 0; kh < q->kh; kh++) {
        int64_t u = ih + q->ph - kh;
        if (u < 0 || u % q->sh) continue;
        int64_t oh = u / q->sh;
        if (oh >= q->OH) continue;
        for (int64_t kw = 0; kw < q->kw && nt < MAXT; kw++) {
            int64_t v = r + q->pw - kw; /* ow = j + v / sw when sw divides v */
            if (((v % q->sw) + q->sw) % q->sw) continue;
            t_off[nt] = (oh * OWp + mg + v / q->sw) * 8;
            t_w[nt] = (kh * q->kw + kw) * MB * 8;
            nt++;
        }
    }
    switch (q->C) { /* C x P accumulators, C weights and one input vector: at most 13 registers */
    case 1:
        block_loop(q, wr, dyn, ih, r, dxn, acc, nt, t_off, t_w, nj, 1, 4);
        break;
    case 2:
        block_loop(q, wr, dyn, ih, r, dxn, acc, nt, t_off, t_w, nj, 2, 4);
        break;
    case 3:
        block_loop(q, wr, dyn, ih, r, dxn, acc, nt, t_off, t_w, nj, 3, 3);
        break;
    default:
        block_loop(q, wr, dyn, ih, r, dxn, acc, nt, t_off, t_w, nj, 4, 2);
        break;
    }
}

void idl__narrow_grad(const idl__narrow *q, const float *wt, const float *dy, float *dx,
                      bool accumulate, float *buf) {
    const int64_t C = q->C, M = q->M, MB = (M + 7) / 8, KK = q->kh * q->kw;
    const int64_t per_n = MB * q->OH * q->OWp * 8;
    float *dyp = buf, *tail = dyp + q->N * per_n, *wr = tail + 8 * MAXP;
    memset(tail, 0, sizeof(float) * 8 * MAXP); /* read by the last block's discarded positions */
    for (int64_t c = 0; c < C; c++)            /* wr[c][kh][kw][Mp], zero from M to Mp */
        for (int64_t k = 0; k < KK; k++)
            for (int64_t m = 0; m < MB * 8; m++)
                wr[(c * KK + k) * MB * 8 + m] = m < M ? wt[(m * C + c) * KK + k] : 0.f;
    copy_dy(q, dy, dyp);
    const int64_t n_items = q->N * q->H;
#    pragma omp parallel for schedule(static) if (n_items > 1)
    for (int64_t it = 0; it < n_items; it++) {
        int64_t n = it / q->H, ih = it % q->H;
        for (int64_t r = 0; r < q->sw && r < q->W; r++)
            phase_row(q, wr, dyp + n * per_n, ih, r, dx + n * C * q->H * q->W, accumulate);
    }
}

#else /* no AVX2 in this build: idl__narrow_fits is always false */

void idl__narrow_grad(const idl__narrow *q, const float *wt, const float *dy, float *dx,
                      bool accumulate, float *buf) {
    (void)q, (void)wt, (void)dy, (void)dx, (void)accumulate, (void)buf;
    IDL_ABORT("narrow convolution gradient without AVX2 in this build");
}

#endif

/* segment.c — superpixels: scikit-image 0.19's quickshift and slic, and InterpretDL's grid.
 *
 * Everything after the input is double precision, as scikit-image computes (img_as_float of an
 * 8-bit image is float64, and so is every later array). Float parameters are read as the
 * shortest decimal that gives back the same float (0.2f is taken as 0.2, the Python value).
 *
 * Shared steps (scikit-image's color/colorconv.py and scipy.ndimage):
 *  - rgb2lab: sRGB linearisation v > 0.04045 ? ((v + 0.055) / 1.055)^2.4 : v / 12.92, XYZ by
 *    the sRGB matrix (rows 0.412453 0.357580 0.180423 / 0.212671 0.715160 0.072169 / 0.019334
 *    0.119193 0.950227), divided by the D65 2-degree white (0.95047, 1, 1.08883); then
 *    f(t) = t > 0.008856 ? cbrt(t) : 7.787 t + 16/116, L = 116 f(y) - 16, a = 500 (f(x) - f(y)),
 *    b = 200 (f(y) - f(z)).
 *  - Gaussian smoothing is ndimage.gaussian_filter with truncate 4: per axis (rows, then
 *    columns; SLIC's extra depth axis of length 1 first) a kernel of radius int(4 sigma + 0.5),
 *    weights exp(-0.5 / sigma^2 * x^2) divided by their sum (numpy's pairwise summation), borders
 *    'reflect' (d c b a | a b c d | d c b a, repeated for short lines), and scipy's evaluation
 *    order for symmetric kernels: out = x[0] w[0] + sum over j = -r .. -1 of (x[j] + x[-j]) w[j].
 *    Bit-exact against scipy 1.10 (checked while writing this file).
 *
 * Quickshift (segmentation/_quickshift.py, _quickshift_cy.pyx): Lab (convert2lab), smoothing
 * (sigma > 0), colour times ratio. Density of pixel p: noise + the sum over the window
 * |r' - r|, |c' - c| <= ceil(3 kernel_size) of exp(-d^2 / (2 kernel_size^2)), d^2 = colour
 * distance^2 + (r - r')^2 + (c - c')^2, summed in row-major window order, the noise first. The
 * noise is N(0, 1e-5^2) per pixel; scikit-image draws it from numpy's default_rng(42), which we do
 * not replay: ours is the core Philox generator (seed, stream "qshf"), so ties and near-ties
 * (density differences below ~1e-5) can break the other way. Parent of p: the pixel of strictly
 * higher density at the smallest d^2 in the window (the first in row-major order on equal d^2),
 * itself if none; links with sqrt(d^2) > max_dist are cut; each pixel takes the root of its tree.
 * The links point to strictly higher densities, so there are no cycles.
 *
 * SLIC (segmentation/slic_superpixels.py, _slic.pyx; no mask, not SLIC-zero, start_label 1):
 * the image is shifted and scaled to [0, 1] by its global minimum and maximum, converted to Lab,
 * smoothed, multiplied by 1 / compactness. Seeds: util.regular_grid((1, H, W), n_segments), the
 * grid of pixels start::step per axis with step ~ sqrt(HW / n) (see grid_slices); seed colours
 * start at 0 (scikit-image's zeros, not the pixel colours). Each of max_iter iterations assigns
 * every pixel in the window |y - cy| <= 2 step_y, |x - cx| <= 2 step_x of each seed (windows from
 * regular_grid on the actual seed count, ends truncated to integers) to the seed of smallest
 * ((dy^2 + dx^2) / S^2 + colour distance^2), S the largest grid step, lower seed index on ties,
 * and then moves the seeds to the means of their pixels (summed in raster order). scikit-image's
 * convergence test never fires (its distances are reset to DBL_MAX each iteration, so something
 * always "changes"): all max_iter iterations run, and so do they here. A seed that loses all its
 * pixels becomes NaN in scikit-image (0 / 0) and wins no pixel in the next round; here it gets no
 * window for that round. The
 * connectivity pass is _enforce_label_connectivity_cython: a raster scan starts a breadth-first
 * search (neighbour order x+1, x-1, y+1, y-1) from each unlabelled pixel, growing at most
 * max_size = int(3 HW / n) pixels; a component smaller than min_size = int(0.5 HW / n) takes the
 * label of the last labelled neighbour met during the search (or keeps the new label, which the
 * next component then reuses).
 *
 * Grid: InterpretDL's FastNormLIME cells, label i / (H / rows + 1) * cols + j / (W / cols + 1).
 *
 * Every method's labels are renumbered 0 .. n-1 by first pixel in raster order (scikit-image's
 * quickshift numbers by root pixel, its slic by first pixel from 1; the partitions are the same).
 */
#include "interpretdl/segment.h"
#include "core/internal.h"
#include "interpretdl/image.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOISE_SCALE  1e-5
#define NOISE_STREAM 0x71736866u /* "qshf" */
#define OMP_MIN_WORK (1 << 16)   /* pixel-window pairs below which a pass stays on one thread */

idl_segment_params idl_segment_params_default(idl_segmentation method) {
    idl_segment_params p;
    memset(&p, 0, sizeof p);
    p.method = method;
    p.ratio = 0.2f;
    p.kernel_size = 4.0f;
    p.max_dist = 200.0f;
    p.sigma = 0.0f;
    p.convert2lab = 1;
    p.seed = 42;
    p.n_segments = 100;
    p.compactness = 10.0f;
    p.max_iter = 10;
    p.enforce_connectivity = 1;
    p.grid_rows = 10;
    p.grid_cols = 10;
    return p;
}

static const char *const method_names[] = { "quickshift", "slic", "grid" };

const char *idl_segmentation_name(idl_segmentation method) {
    if ((int)method < 0 || (int)method > IDL_SEG_GRID) return "unknown";
    return method_names[method];
}

idl_status idl_segmentation_parse(const char *name, idl_segmentation *out) {
    if (!name || !out)
        return idl__error(IDL_ERR_INVALID_ARG, "idl_segmentation_parse: %s is NULL",
                          !name ? "name" : "out");
    for (int i = 0; i <= IDL_SEG_GRID; i++)
        if (strcmp(name, method_names[i]) == 0) {
            *out = (idl_segmentation)i;
            return IDL_OK;
        }
    return idl__error(IDL_ERR_INVALID_ARG,
                      "unknown segmentation '%s' (expected quickshift, slic or grid)", name);
}

/* ------------------------------------------------------------------------------------------ */
/* Parameters                                                                                 */

/* The shortest decimal that reads back as f, as a double: what a Python caller would have
 * written (0.2f -> 0.2, not 0.20000000298...). Non-finite values pass through. */
static double decimal_value(float f) {
    if (!isfinite(f)) return (double)f;
    char buf[48];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

static idl_status check_params(const idl_segment_params *p, int C) {
    const char *m = idl_segmentation_name(p->method);
    if ((int)p->method < 0 || (int)p->method > IDL_SEG_GRID)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_segment: method %d is not a segmentation (0 quickshift, 1 slic, "
                          "2 grid)",
                          (int)p->method);
    if (p->method == IDL_SEG_GRID) {
        if (p->grid_rows < 1 || p->grid_cols < 1)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "idl_segment (grid): grid_rows and grid_cols must be >= 1, got %d "
                              "x %d",
                              p->grid_rows, p->grid_cols);
        return IDL_OK;
    }
    if (p->convert2lab && C != 3)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_segment (%s): convert2lab needs an RGB image (C = 3), got C = %d; "
                          "set convert2lab = 0 for gray images",
                          m, C);
    if (!(p->sigma >= 0.0f && p->sigma <= IDL_SEGMENT_MAX_SIGMA))
        return idl__error(IDL_ERR_INVALID_ARG, "idl_segment (%s): sigma must be in 0 .. %d, got %g",
                          m, IDL_SEGMENT_MAX_SIGMA, (double)p->sigma);
    if (p->method == IDL_SEG_QUICKSHIFT) {
        if (!(p->kernel_size >= 1.0f && p->kernel_size <= IDL_SEGMENT_MAX_KERNEL))
            return idl__error(IDL_ERR_INVALID_ARG,
                              "idl_segment (quickshift): kernel_size must be in 1 .. %d, got %g",
                              IDL_SEGMENT_MAX_KERNEL, (double)p->kernel_size);
        if (!(p->ratio >= 0.0f && isfinite(p->ratio)))
            return idl__error(IDL_ERR_INVALID_ARG,
                              "idl_segment (quickshift): ratio must be finite and >= 0, got %g",
                              (double)p->ratio);
        if (!(p->max_dist >= 0.0f))
            return idl__error(IDL_ERR_INVALID_ARG,
                              "idl_segment (quickshift): max_dist must be >= 0, got %g",
                              (double)p->max_dist);
        return IDL_OK;
    }
    if (p->n_segments < 1)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_segment (slic): n_segments must be >= 1, got %d", p->n_segments);
    if (!(p->compactness > 0.0f && isfinite(p->compactness)))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_segment (slic): compactness must be finite and > 0, got %g",
                          (double)p->compactness);
    if (p->max_iter < 1 || p->max_iter > IDL_SEGMENT_MAX_ITER)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_segment (slic): max_iter must be in 1 .. %d, got %d",
                          IDL_SEGMENT_MAX_ITER, p->max_iter);
    return IDL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Colour and smoothing                                                                       */

/* In place, n pixels of 3 doubles: sRGB in [0, 1] -> CIE Lab (D65, 2 degrees), as skimage's
 * rgb2lab. */
static void rgb_to_lab(double *px, int64_t n) {
    static const double m[3][3] = { { 0.412453, 0.357580, 0.180423 },
                                    { 0.212671, 0.715160, 0.072169 },
                                    { 0.019334, 0.119193, 0.950227 } };
    static const double white[3] = { 0.95047, 1.0, 1.08883 };
#pragma omp parallel for if (n > OMP_MIN_WORK) schedule(static)
    for (int64_t i = 0; i < n; i++) {
        double *v = px + 3 * i, lin[3], f[3];
        for (int k = 0; k < 3; k++)
            lin[k] = v[k] > 0.04045 ? pow((v[k] + 0.055) / 1.055, 2.4) : v[k] / 12.92;
        for (int k = 0; k < 3; k++) {
            double t = (lin[0] * m[k][0] + lin[1] * m[k][1] + lin[2] * m[k][2]) / white[k];
            f[k] = t > 0.008856 ? cbrt(t) : 7.787 * t + 16.0 / 116.0;
        }
        v[0] = 116.0 * f[1] - 16.0;
        v[1] = 500.0 * (f[0] - f[1]);
        v[2] = 200.0 * (f[1] - f[2]);
    }
}

/* numpy's pairwise summation (what ndarray.sum does on a contiguous float64 array). */
static double pairwise_sum(const double *a, int64_t n) {
    if (n < 8) {
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += a[i];
        return s;
    }
    if (n <= 128) {
        double r[8];
        int64_t i;
        for (int k = 0; k < 8; k++)
            r[k] = a[k];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int k = 0; k < 8; k++)
                r[k] += a[i + k];
        double s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            s += a[i];
        return s;
    }
    int64_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* scipy's 1-D Gaussian: radius int(4 sigma + 0.5); w[0 .. 2 radius] (centre at radius),
 * normalised. Returns NULL on allocation failure. */
static double *gaussian_kernel(double sigma, int *radius) {
    int r = (int)(4.0 * sigma + 0.5);
    double *w = idl__malloc(sizeof(double) * (size_t)(2 * r + 1));
    if (!w) return NULL;
    double a = -0.5 / (sigma * sigma);
    for (int i = -r; i <= r; i++)
        w[i + r] = exp(a * (double)((int64_t)i * i));
    double s = pairwise_sum(w, 2 * r + 1);
    for (int i = 0; i <= 2 * r; i++)
        w[i] /= s;
    *radius = r;
    return w;
}

/* ndimage 'reflect' index of position i on a line of n (period 2n, mirrored). */
static int64_t reflect_index(int64_t i, int64_t n) {
    int64_t p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
}

/* ndimage.gaussian_filter over rows then columns of an H x W x C image (channels unsmoothed),
 * mode reflect, truncate 4, in scipy's evaluation order. depth_pass: first the filter along a
 * leading axis of length 1 (SLIC's (1, H, W, C) image), which scales each value by the kernel's
 * sum in scipy's order. */
static idl_status gaussian_smooth(double *img, int64_t H, int64_t W, int C, double sigma,
                                  bool depth_pass) {
    int r = 0;
    double *w = gaussian_kernel(sigma, &r);
    double *tmp = idl__malloc(sizeof(double) * (size_t)(H * W * C));
    if (!w || !tmp) {
        idl__free(w);
        idl__free(tmp);
        return idl__error(IDL_ERR_NOMEM, "idl_segment: out of memory (Gaussian smoothing)");
    }
    const double *wc = w + r; /* wc[j], j = -r .. r */
    int64_t row = W * C;
    if (depth_pass) {
        int64_t n = H * row;
#pragma omp parallel for if (n * r > OMP_MIN_WORK) schedule(static)
        for (int64_t i = 0; i < n; i++) {
            double x = img[i], o = x * wc[0];
            for (int j = -r; j < 0; j++)
                o += (x + x) * wc[j];
            img[i] = o;
        }
    }
    /* along rows (axis 0): img -> tmp */
#pragma omp parallel for if (H * row * r > OMP_MIN_WORK) schedule(static)
    for (int64_t y = 0; y < H; y++) {
        double *o = tmp + y * row;
        const double *x0 = img + y * row;
        for (int64_t k = 0; k < row; k++)
            o[k] = x0[k] * wc[0];
        for (int j = -r; j < 0; j++) {
            const double *xa = img + reflect_index(y + j, H) * row;
            const double *xb = img + reflect_index(y - j, H) * row;
            for (int64_t k = 0; k < row; k++)
                o[k] += (xa[k] + xb[k]) * wc[j];
        }
    }
    /* along columns (axis 1): tmp -> img */
#pragma omp parallel for if (H * row * r > OMP_MIN_WORK) schedule(static)
    for (int64_t y = 0; y < H; y++) {
        const double *x = tmp + y * row;
        double *o = img + y * row;
        for (int64_t c = 0; c < W; c++)
            for (int ch = 0; ch < C; ch++) {
                double v = x[c * C + ch] * wc[0];
                for (int j = -r; j < 0; j++)
                    v += (x[reflect_index(c + j, W) * C + ch] +
                          x[reflect_index(c - j, W) * C + ch]) *
                         wc[j];
                o[c * C + ch] = v;
            }
    }
    idl__free(w);
    idl__free(tmp);
    return IDL_OK;
}

/* Renumbers raw labels (each in 0 .. n_raw-1) to 0 .. n-1 by first pixel in raster order. */
static idl_status relabel_first_pixel(int32_t *labels, int64_t n_px, int64_t n_raw, int32_t *n) {
    int32_t *map = idl__malloc(sizeof(int32_t) * (size_t)n_raw);
    if (!map) return idl__error(IDL_ERR_NOMEM, "idl_segment: out of memory (label map)");
    for (int64_t i = 0; i < n_raw; i++)
        map[i] = -1;
    int32_t next = 0;
    for (int64_t i = 0; i < n_px; i++) {
        int32_t l = labels[i];
        IDL_ASSERT(l >= 0 && l < n_raw);
        if (map[l] < 0) map[l] = next++;
        labels[i] = map[l];
    }
    idl__free(map);
    *n = next;
    return IDL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Quickshift                                                                                 */

/* Squared 5-D distance between pixels p and q (colour, then row and column offsets), summed in
 * scikit-image's order. */
static inline double qs_dist(const double *p, const double *q, int C, double dr, double dc) {
    double dist = 0.0;
    for (int k = 0; k < C; k++) {
        double t = p[k] - q[k];
        dist += t * t;
    }
    dist += dr * dr;
    dist += dc * dc;
    return dist;
}

/* img: H x W x C features (already Lab, smoothed and scaled). Writes raw labels (root pixel
 * indices). */
static idl_status quickshift(const double *img, int64_t H, int64_t W, int C, double kernel_size,
                             double max_dist, uint64_t seed, int32_t *labels) {
    int64_t n = H * W;
    double *dens = idl__malloc(sizeof(double) * (size_t)n);
    float *noise = idl__malloc(sizeof(float) * (size_t)n);
    if (!dens || !noise) {
        idl__free(dens);
        idl__free(noise);
        return idl__error(IDL_ERR_NOMEM, "idl_segment: out of memory (%lld pixels)", (long long)n);
    }
    idl__rng_normal(seed, NOISE_STREAM, 0, n, noise);
    const double inv = -0.5 / (kernel_size * kernel_size);
    const int64_t kw = (int64_t)ceil(3.0 * kernel_size);
    const int64_t work = n * (2 * kw + 1) * (2 * kw + 1);

    /* densities */
#pragma omp parallel for if (work > OMP_MIN_WORK) schedule(dynamic, 1)
    for (int64_t r = 0; r < H; r++) {
        int64_t r0 = IDL_MAX(r - kw, 0), r1 = IDL_MIN(r + kw + 1, H);
        for (int64_t c = 0; c < W; c++) {
            int64_t c0 = IDL_MAX(c - kw, 0), c1 = IDL_MIN(c + kw + 1, W);
            const double *p = img + (r * W + c) * C;
            double d = (double)noise[r * W + c] * NOISE_SCALE;
            for (int64_t rr = r0; rr < r1; rr++) {
                const double *q = img + (rr * W + c0) * C;
                double dr = (double)(r - rr);
                for (int64_t cc = c0; cc < c1; cc++, q += C)
                    d += exp(qs_dist(p, q, C, dr, (double)(c - cc)) * inv);
            }
            dens[r * W + c] = d;
        }
    }
    idl__free(noise);

    /* links: nearest pixel of strictly higher density; cut beyond max_dist */
#pragma omp parallel for if (work > OMP_MIN_WORK) schedule(dynamic, 1)
    for (int64_t r = 0; r < H; r++) {
        int64_t r0 = IDL_MAX(r - kw, 0), r1 = IDL_MIN(r + kw + 1, H);
        for (int64_t c = 0; c < W; c++) {
            int64_t c0 = IDL_MAX(c - kw, 0), c1 = IDL_MIN(c + kw + 1, W);
            const double *p = img + (r * W + c) * C;
            double cur = dens[r * W + c], closest = DBL_MAX;
            int64_t parent = r * W + c;
            for (int64_t rr = r0; rr < r1; rr++) {
                double dr = (double)(r - rr);
                for (int64_t cc = c0; cc < c1; cc++) {
                    if (!(dens[rr * W + cc] > cur)) continue;
                    double dist = qs_dist(p, img + (rr * W + cc) * C, C, dr, (double)(c - cc));
                    if (dist < closest) {
                        closest = dist;
                        parent = rr * W + cc;
                    }
                }
            }
            if (sqrt(closest) > max_dist) parent = r * W + c;
            labels[r * W + c] = (int32_t)parent;
        }
    }
    idl__free(dens);

    /* roots: follow the links (towards strictly higher density, so acyclic), compress paths */
    for (int64_t i = 0; i < n; i++) {
        int64_t root = i;
        while (labels[root] != root)
            root = labels[root];
        for (int64_t j = i; labels[j] != root;) {
            int64_t next = labels[j];
            labels[j] = (int32_t)root;
            j = next;
        }
    }
    return IDL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* SLIC                                                                                       */

/* skimage.util.regular_grid for the shape (1, H, W) (SLIC's 2-D image with a depth axis):
 * start and step of the rows and the columns, and the largest of the three steps. */
typedef struct grid_slices {
    int64_t start_y, step_y, start_x, step_x;
    int64_t max_step;
} grid_slices;

static grid_slices regular_grid(int64_t H, int64_t W, int64_t n_points) {
    grid_slices g = { 0, 1, 0, 1, 1 };
    double space = (double)H * (double)W; /* times the depth, 1 */
    if (space <= (double)n_points) return g;
    /* dimensions sorted (stable, as argsort of argsort): depth 1 first, then the smaller side */
    int64_t dims[3] = { 1, H, W };
    int order[3] = { 0, 1, 2 };
    for (int a = 1; a < 3; a++)
        for (int b = a; b > 0 && dims[order[b]] < dims[order[b - 1]]; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    double sorted[3], steps[3];
    for (int i = 0; i < 3; i++) {
        sorted[i] = (double)dims[order[i]];
        steps[i] = pow(space / (double)n_points, 1.0 / 3.0);
    }
    bool small = false;
    for (int i = 0; i < 3; i++)
        small |= sorted[i] < steps[i];
    if (small) {
        for (int d = 0; d < 3; d++) {
            steps[d] = sorted[d];
            double rest = 1.0;
            for (int i = d + 1; i < 3; i++)
                rest *= sorted[i];
            for (int i = d + 1; i < 3; i++)
                steps[i] = pow(rest / (double)n_points, 1.0 / (double)(3 - d - 1));
            bool ok = true;
            for (int i = 0; i < 3; i++)
                ok &= sorted[i] >= steps[i];
            if (ok) break;
        }
    }
    int64_t start[3], step[3];
    for (int i = 0; i < 3; i++) {
        start[order[i]] = (int64_t)floor(steps[i] / 2.0);
        step[order[i]] = (int64_t)nearbyint(steps[i]); /* np.round: halves to even */
    }
    g.start_y = start[1];
    g.step_y = step[1];
    g.start_x = start[2];
    g.step_x = step[2];
    g.max_step = IDL_MAX(step[0], IDL_MAX(step[1], step[2]));
    return g;
}

/* Number of points start, start + step, ... below n. */
static int64_t grid_count(int64_t start, int64_t step, int64_t n) {
    return start >= n ? 0 : (n - 1 - start) / step + 1;
}

/* The k-means part of _slic_cython. img: H x W x C (scaled); seeds: n_seg x (3 + C) as
 * (z, y, x, colour...). Writes labels 0 .. n_seg-1, or -1 for a pixel no window ever reached. */
static idl_status slic_kmeans(const double *img, int64_t H, int64_t W, int C, double *seeds,
                              int64_t n_seg, double step, int max_iter, int32_t *labels) {
    const int nf = 3 + C;
    grid_slices win = regular_grid(H, W, n_seg);
    const double sw = 1.0 / (step * step);
    /* a window spans at most 4 step_y + 1 rows, so the (row, seed) lists fit in cap entries */
    const int64_t cap = n_seg * (4 * win.step_y + 1);
    double *dist = idl__malloc(sizeof(double) * (size_t)(H * W));
    int64_t *count = idl__malloc(sizeof(int64_t) * (size_t)n_seg);
    int64_t *box = idl__malloc(sizeof(int64_t) * 4 * (size_t)n_seg); /* y0, y1, x0, x1 */
    int64_t *row_start = idl__malloc(sizeof(int64_t) * (size_t)(H + 1));
    int64_t *row_fill = idl__malloc(sizeof(int64_t) * (size_t)H);
    int32_t *row_seeds = idl__malloc(sizeof(int32_t) * (size_t)cap);
    idl_status st = IDL_OK;
    if (!dist || !count || !box || !row_start || !row_fill || !row_seeds) {
        st = idl__error(IDL_ERR_NOMEM, "idl_segment: out of memory (slic, %lld seeds)",
                        (long long)n_seg);
        goto done;
    }
    for (int64_t i = 0; i < H * W; i++)
        labels[i] = -1;
    for (int64_t k = 0; k < n_seg; k++)
        count[k] = 1; /* every seed starts alive */
    for (int it = 0; it < max_iter; it++) {
        /* windows, as skimage: <Py_ssize_t>max(cy - 2 step, 0), <Py_ssize_t>min(cy + 2 step + 1,
         * H); a seed that had no pixel is NaN there and never wins: no window */
        memset(row_start, 0, sizeof(int64_t) * (size_t)(H + 1));
        for (int64_t k = 0; k < n_seg; k++) {
            double cy = seeds[k * nf + 1], cx = seeds[k * nf + 2];
            int64_t *b = box + 4 * k;
            b[0] = (int64_t)fmax(cy - 2.0 * (double)win.step_y, 0.0);
            b[1] = (int64_t)fmin(cy + 2.0 * (double)win.step_y + 1.0, (double)H);
            b[2] = (int64_t)fmax(cx - 2.0 * (double)win.step_x, 0.0);
            b[3] = (int64_t)fmin(cx + 2.0 * (double)win.step_x + 1.0, (double)W);
            if (count[k] == 0) b[1] = b[0];
            for (int64_t y = b[0]; y < b[1]; y++)
                row_start[y + 1]++;
        }
        /* per row, the seeds whose window covers it, in index order */
        for (int64_t y = 0; y < H; y++) {
            row_start[y + 1] += row_start[y];
            row_fill[y] = row_start[y];
        }
        IDL_ASSERT(row_start[H] <= cap);
        for (int64_t k = 0; k < n_seg; k++)
            for (int64_t y = box[4 * k]; y < box[4 * k + 1]; y++)
                row_seeds[row_fill[y]++] = (int32_t)k;
                /* assignment: row by row, each row visiting its seeds in index order (as skimage's
                 * loop over seeds does for every pixel), so the result does not depend on the
                 * threads */
#pragma omp parallel for if (H * W * 9 > OMP_MIN_WORK) schedule(static)
        for (int64_t y = 0; y < H; y++) {
            double *drow = dist + y * W;
            for (int64_t x = 0; x < W; x++)
                drow[x] = DBL_MAX;
            for (int64_t e = row_start[y]; e < row_start[y + 1]; e++) {
                int64_t k = row_seeds[e];
                const int64_t *b = box + 4 * k;
                const double *s = seeds + k * nf;
                double dz = 1.0 * (s[0] - 0.0);
                dz *= dz;
                double dy = 1.0 * (s[1] - (double)y);
                dy *= dy;
                for (int64_t x = b[2]; x < b[3]; x++) {
                    double dx = 1.0 * (s[2] - (double)x);
                    dx *= dx;
                    double d = (dz + dy + dx) * sw;
                    const double *v = img + (y * W + x) * C;
                    double dc = 0.0;
                    for (int ch = 0; ch < C; ch++) {
                        double t = v[ch] - s[3 + ch];
                        dc += t * t;
                    }
                    d += dc;
                    if (drow[x] > d) {
                        labels[y * W + x] = (int32_t)k;
                        drow[x] = d;
                    }
                }
            }
        }
        /* update: means in raster order (the last update's seeds are not used, as in skimage) */
        memset(count, 0, sizeof(int64_t) * (size_t)n_seg);
        for (int64_t k = 0; k < n_seg; k++)
            for (int f = 0; f < nf; f++)
                seeds[k * nf + f] = 0.0;
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) {
                int32_t k = labels[y * W + x];
                if (k < 0) continue;
                double *s = seeds + (int64_t)k * nf;
                const double *v = img + (y * W + x) * C;
                count[k]++;
                s[0] += 0.0;
                s[1] += (double)y;
                s[2] += (double)x;
                for (int ch = 0; ch < C; ch++)
                    s[3 + ch] += v[ch];
            }
        for (int64_t k = 0; k < n_seg; k++)
            if (count[k] > 0) /* 0 / 0 = NaN in skimage: see the windows above */
                for (int f = 0; f < nf; f++)
                    seeds[k * nf + f] /= (double)count[k];
    }
done:
    idl__free(dist);
    idl__free(count);
    idl__free(box);
    idl__free(row_start);
    idl__free(row_fill);
    idl__free(row_seeds);
    return st;
}

/* _enforce_label_connectivity_cython on labels (-1: never assigned, skimage's mask label; those
 * stay -1). out: raw labels 0 .. *n_out-1, -1 kept. */
static idl_status slic_connectivity(const int32_t *seg, int64_t H, int64_t W, int64_t min_size,
                                    int64_t max_size, int32_t *out, int64_t *n_out) {
    /* a search never holds more than the whole image */
    int64_t *list = idl__malloc(sizeof(int64_t) * (size_t)IDL_MIN(max_size, H * W));
    if (!list) return idl__error(IDL_ERR_NOMEM, "idl_segment: out of memory (slic connectivity)");
    static const int ddx[4] = { 1, -1, 0, 0 }, ddy[4] = { 0, 0, 1, -1 };
    for (int64_t i = 0; i < H * W; i++)
        out[i] = -1;
    int32_t current = 0;
    for (int64_t y = 0; y < H; y++)
        for (int64_t x = 0; x < W; x++) {
            int64_t i = y * W + x;
            if (seg[i] < 0 || out[i] >= 0) continue;
            int32_t adjacent = current, label = seg[i];
            out[i] = current;
            int64_t size = 1, visited = 0;
            list[0] = i;
            while (visited < size && size < max_size) {
                int64_t py = list[visited] / W, px = list[visited] % W;
                for (int d = 0; d < 4; d++) {
                    int64_t yy = py + ddy[d], xx = px + ddx[d];
                    if (xx < 0 || xx >= W || yy < 0 || yy >= H) continue;
                    int64_t j = yy * W + xx;
                    if (seg[j] == label && out[j] < 0) {
                        out[j] = current;
                        list[size++] = j;
                        if (size >= max_size) break;
                    } else if (out[j] >= 0 && out[j] != current) {
                        adjacent = out[j];
                    }
                }
                visited++;
            }
            if (size < min_size) {
                for (int64_t k = 0; k < size; k++)
                    out[list[k]] = adjacent;
            } else {
                current++;
            }
        }
    idl__free(list);
    *n_out = current + 1; /* a trailing small component may hold the label `current` */
    return IDL_OK;
}

static idl_status slic(double *img, int64_t H, int64_t W, int C, const idl_segment_params *p,
                       int32_t *labels, int64_t *n_raw) {
    int64_t n = H * W * C;
    /* rescale to [0, 1] by the global extremes */
    double lo = img[0], hi;
    for (int64_t i = 1; i < n; i++)
        lo = fmin(lo, img[i]);
    for (int64_t i = 0; i < n; i++)
        img[i] -= lo;
    hi = img[0];
    for (int64_t i = 1; i < n; i++)
        hi = fmax(hi, img[i]);
    if (hi != 0.0)
        for (int64_t i = 0; i < n; i++)
            img[i] /= hi;
    if (p->convert2lab) rgb_to_lab(img, H * W);

    grid_slices g = regular_grid(H, W, p->n_segments);
    int64_t ny = grid_count(g.start_y, g.step_y, H), nx = grid_count(g.start_x, g.step_x, W);
    int64_t n_seg = ny * nx;
    IDL_ASSERT(n_seg >= 1); /* start = floor(step / 2) < the side, for every side */
    const int nf = 3 + C;
    double sigma = decimal_value(p->sigma);
    if (sigma > 1e-15) {
        idl_status st = gaussian_smooth(img, H, W, C, sigma, true);
        if (st) return st;
    }
    const double ratio = 1.0 / decimal_value(p->compactness);
    for (int64_t i = 0; i < n; i++)
        img[i] *= ratio;

    double *seeds = idl__calloc((size_t)n_seg, sizeof(double) * (size_t)nf);
    int32_t *raw = idl__malloc(sizeof(int32_t) * (size_t)(H * W));
    if (!seeds || !raw) {
        idl__free(seeds);
        idl__free(raw);
        return idl__error(IDL_ERR_NOMEM, "idl_segment: out of memory (slic, %lld seeds)",
                          (long long)n_seg);
    }
    for (int64_t iy = 0; iy < ny; iy++)
        for (int64_t ix = 0; ix < nx; ix++) {
            double *s = seeds + (iy * nx + ix) * nf;
            s[1] = (double)(g.start_y + iy * g.step_y);
            s[2] = (double)(g.start_x + ix * g.step_x);
        }
    idl_status st =
        slic_kmeans(img, H, W, C, seeds, n_seg, (double)(float)g.max_step, p->max_iter, raw);
    idl__free(seeds);
    if (st == IDL_OK) {
        if (p->enforce_connectivity) {
            double size = (double)(H * W) / (double)n_seg;
            st = slic_connectivity(raw, H, W, (int64_t)(0.5 * size), (int64_t)(3.0 * size), labels,
                                   n_raw);
        } else {
            memcpy(labels, raw, sizeof(int32_t) * (size_t)(H * W));
            *n_raw = n_seg;
        }
    }
    idl__free(raw);
    if (st) return st;
    /* pixels no window reached (skimage's label 0) form one more raw label */
    for (int64_t i = 0; i < H * W; i++)
        if (labels[i] < 0) labels[i] = (int32_t)*n_raw;
    *n_raw += 1;
    return IDL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Entry point                                                                                */

idl_status idl_segment(const float *img, int64_t H, int64_t W, int C, const idl_segment_params *p,
                       int32_t *labels, int32_t *n_segments) {
    idl_segment_params def = idl_segment_params_default(IDL_SEG_QUICKSHIFT);
    if (!p) p = &def;
    if (!img || !labels || !n_segments)
        return idl__error(IDL_ERR_INVALID_ARG, "idl_segment: %s is NULL",
                          !img      ? "img"
                          : !labels ? "labels"
                                    : "n_segments");
    if (H < 1 || W < 1 || H > IDL_IMAGE_MAX_DIM || W > IDL_IMAGE_MAX_DIM)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_segment: image size %lld x %lld outside 1 .. %d on each side",
                          (long long)H, (long long)W, IDL_IMAGE_MAX_DIM);
    if (C != 1 && C != 3)
        return idl__error(IDL_ERR_INVALID_ARG, "idl_segment: C must be 1 or 3 channels, got %d", C);
    int64_t n_px = 0, n_val = 0;
    if (!idl__mul_ok(H, W, &n_px) || !idl__mul_ok(n_px, C, &n_val) || n_px > INT32_MAX)
        return idl__error(IDL_ERR_INVALID_ARG, "idl_segment: %lld x %lld x %d pixels is too large",
                          (long long)H, (long long)W, C);
    idl_status st = check_params(p, C);
    if (st) return st;

    if (p->method == IDL_SEG_GRID) {
        /* InterpretDL numbers cell (i, j) as i * cols + j; the cells in use are the same with the
         * used column count as the multiplier, which keeps huge grid_cols from overflowing */
        int64_t ch = H / p->grid_rows + 1, cw = W / p->grid_cols + 1;
        int64_t nx = (W - 1) / cw + 1, n_raw = ((H - 1) / ch + 1) * nx;
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++)
                labels[y * W + x] = (int32_t)(y / ch * nx + x / cw);
        return relabel_first_pixel(labels, n_px, n_raw, n_segments);
    }

    for (int64_t i = 0; i < n_val; i++)
        if (!isfinite(img[i]))
            return idl__error(
                IDL_ERR_INVALID_ARG,
                "idl_segment: pixel value %g at index %lld (row %lld, column %lld) is "
                "not finite",
                (double)img[i], (long long)i, (long long)(i / C / W), (long long)(i / C % W));
    double *x = idl__malloc(sizeof(double) * (size_t)n_val);
    if (!x)
        return idl__error(IDL_ERR_NOMEM, "idl_segment: out of memory (%lld x %lld x %d image)",
                          (long long)H, (long long)W, C);
    for (int64_t i = 0; i < n_val; i++)
        x[i] = (double)img[i];

    int64_t n_raw = n_px;
    if (p->method == IDL_SEG_QUICKSHIFT) {
        if (p->convert2lab) rgb_to_lab(x, n_px);
        double sigma = decimal_value(p->sigma);
        if (sigma > 1e-15) st = gaussian_smooth(x, H, W, C, sigma, false);
        if (st == IDL_OK) {
            double ratio = decimal_value(p->ratio);
            for (int64_t i = 0; i < n_val; i++)
                x[i] *= ratio;
            st = quickshift(x, H, W, C, decimal_value(p->kernel_size), decimal_value(p->max_dist),
                            p->seed, labels);
        }
    } else {
        st = slic(x, H, W, C, p, labels, &n_raw);
    }
    idl__free(x);
    if (st) return st;
    return relabel_first_pixel(labels, n_px, n_raw, n_segments);
}

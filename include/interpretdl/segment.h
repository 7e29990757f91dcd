/* segment.h — superpixel segmentation for LIME-style explanations: scikit-image's quickshift (the
 * segmentation of LIME and InterpretDL), scikit-image's SLIC, and InterpretDL's fixed grid
 * (FastNormLIME). An image goes in as H x W x C floats in [0, 1]; a label map comes out.
 *
 *     idl_segment_params p = idl_segment_params_default(IDL_SEG_QUICKSHIFT);
 *     p.ratio = 1, p.kernel_size = 5, p.max_dist = 10, p.sigma = 1;    // InterpretDL's settings
 *     int32_t n = 0, *labels = malloc(H * W * sizeof *labels);
 *     if (idl_segment(img, H, W, 3, &p, labels, &n) != IDL_OK) puts(idl_last_error());
 */
/* Outside the guard: the umbrella header includes explain.h, which includes this header and needs
 * its types, so when this header comes first the umbrella must be complete before our guard is
 * set. */
#include "interpretdl/interpretdl.h"

#ifndef INTERPRETDL_SEGMENT_H
#    define INTERPRETDL_SEGMENT_H

#    ifdef __cplusplus
extern "C" {
#    endif

typedef enum idl_segmentation {
    IDL_SEG_QUICKSHIFT = 0, /* skimage.segmentation.quickshift (0.19) */
    IDL_SEG_SLIC,           /* skimage.segmentation.slic (0.19), no mask, not SLIC-zero */
    IDL_SEG_GRID            /* rows x cols rectangles (InterpretDL's FastNormLIME) */
} idl_segmentation;

/* Largest accepted kernel_size and sigma (windows and filters beyond these are refused, not
 * attempted), and number of SLIC iterations. */
#    define IDL_SEGMENT_MAX_KERNEL 256
#    define IDL_SEGMENT_MAX_SIGMA  256
#    define IDL_SEGMENT_MAX_ITER   10000

typedef struct idl_segment_params {
    idl_segmentation method;
    /* quickshift, as scikit-image's quickshift. Defaults are the LIME library's: ratio 0.2,
     * kernel_size 4, max_dist 200, sigma 0; InterpretDL calls it with ratio 1, kernel_size 5,
     * max_dist 10, sigma 1. ratio (>= 0) scales the colour against position; kernel_size
     * (1 .. IDL_SEGMENT_MAX_KERNEL) is the width of the density kernel, searched over a window
     * of half-width ceil(3 * kernel_size); links longer than max_dist (>= 0, may be infinite)
     * are cut; sigma (0 .. IDL_SEGMENT_MAX_SIGMA) is a Gaussian pre-smoothing, 0 = none (also
     * used by SLIC). */
    float ratio, kernel_size, max_dist, sigma;
    int convert2lab; /* 1: RGB -> CIE Lab (D65, 2 degrees) first (scikit-image's default); needs
                        C = 3 */
    uint64_t seed;   /* quickshift's tie-breaking noise: N(0, 1e-5^2) per pixel, as scikit-image,
                        but from the library's counter-based generator (default 42) */
    /* slic: defaults are scikit-image's: n_segments 100 (>= 1, approximate), compactness 10
     * (> 0), max_iter 10 (1 .. IDL_SEGMENT_MAX_ITER), enforce_connectivity 1 (components smaller
     * than half the mean segment size join a neighbour), sigma 0, convert2lab 1 */
    int n_segments;
    float compactness;
    int max_iter;
    int enforce_connectivity;
    /* grid: grid_rows x grid_cols cells (>= 1, default 10 x 10) of (H / grid_rows + 1) x
     * (W / grid_cols + 1) pixels (integer division; InterpretDL's FastNormLIME grid), so the last
     * row and column of cells are smaller and an image may have fewer cells than rows x cols */
    int grid_rows, grid_cols;
} idl_segment_params;

/* The defaults above for `method` (every field is set, whatever the method). */
IDL_API idl_segment_params idl_segment_params_default(idl_segmentation method);

/* Segments img: H x W x C floats, channels last, rows top to bottom, values in [0, 1] (the
 * float form of an 8-bit image, value / 255); C = 1 or 3; H and W in 1 .. 16384
 * (IDL_IMAGE_MAX_DIM). Writes labels[H * W] (caller-allocated, row-major) with values 0 .. n-1,
 * numbered in increasing order of the first pixel (row-major) of each segment, and *n_segments
 * = n. p == NULL means the quickshift defaults.
 *
 * Quickshift computes what scikit-image 0.19's quickshift computes, in double precision (Lab
 * conversion, smoothing, densities, links), except for the tie-breaking noise, which cannot be
 * numpy's: where densities of neighbours differ by less than about 1e-5 the links can differ (the
 * tests measure an adjusted Rand index >= 0.98 against scikit-image). SLIC follows scikit-image's
 * slic step by step (grid seeds, k-means in (Lab / compactness, position / step) space, the
 * connectivity pass). Results do not depend on the thread count (OpenMP over rows).
 *
 * Errors: INVALID_ARG (NULL pointers, sizes, C, a parameter out of range, non-finite pixel
 * values; the message names the parameter), NOMEM. On error labels and *n_segments are
 * unspecified. Thread-safe. */
IDL_API idl_status idl_segment(const float *img, int64_t H, int64_t W, int C,
                               const idl_segment_params *p, int32_t *labels, int32_t *n_segments);

/* "quickshift", "slic" or "grid" (exact, lower case) to *out. INVALID_ARG otherwise, naming the
 * choices. */
IDL_API idl_status idl_segmentation_parse(const char *name, idl_segmentation *out);

/* The name of a method ("quickshift", ...), or "unknown". Never NULL. */
IDL_API const char *idl_segmentation_name(idl_segmentation method);

#    ifdef __cplusplus
}
#    endif
#endif

/* visual.h — pictures of explanations: an attribution reduced to one map per sample, colormaps,
 * InterpretDL's three overlay styles, a labelled grid of pictures, and PNG output (image.h). */
#ifndef INTERPRETDL_VISUAL_H
#define INTERPRETDL_VISUAL_H

#include "interpretdl/image.h"
#include "interpretdl/interpretdl.h"
#include "interpretdl/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum idl_colormap {
    IDL_CMAP_JET = 0, /* OpenCV COLORMAP_JET (InterpretDL's heatmaps) */
    IDL_CMAP_VIRIDIS, /* matplotlib */
    IDL_CMAP_INFERNO, /* matplotlib */
    IDL_CMAP_GRAY,
    IDL_CMAP_BWR, /* matplotlib 'bwr', diverging blue-white-red for signed maps: the middle
                     (0 in IDL_OVERLAY_SIGNED) is (255, 254, 254), matplotlib's colour at 0.5 */
} idl_colormap;
/* "jet", "viridis", "inferno", "gray", "bwr"; INVALID_ARG otherwise (naming close names). */
IDL_API idl_status idl_colormap_parse(const char *name, idl_colormap *out);
/* The RGB colour of v in [0, 1] (clamped; NaN as 0). JET and GRAY take entry (uint8)(255 v)
 * (InterpretDL's np.uint8(255 * x) before cv2.applyColorMap); VIRIDIS, INFERNO and BWR take entry
 * (int)(256 v), 1 giving 255, as matplotlib indexes its 256-entry tables. An unknown cm gives
 * black. */
IDL_API void idl_colormap_rgb(idl_colormap cm, float v, uint8_t rgb[3]);

typedef enum idl_reduce {
    IDL_REDUCE_ABS_SUM = 0, /* sum over channels of |a| (InterpretDL's gradient pictures) */
    IDL_REDUCE_SUM,         /* signed sum over channels */
    IDL_REDUCE_MAX_ABS,     /* max over channels of |a| (Simonyan et al.'s saliency map) */
} idl_reduce;

/* One 2-D map of sample `sample` of an attribution: (N, C, H, W) reduced over C (in channel
 * order, float32, as numpy's sum(axis=0) / max(axis=0)), or (N, H, W) as it is. *map is (H, W)
 * float32 (free with idl_tensor_free). Errors: INVALID_ARG (NULL, not float32, sample outside
 * 0 .. N-1, unknown reduction), SHAPE (rank other than 3 or 4, an empty axis), NOMEM. */
IDL_API idl_status idl_attribution_map(const idl_tensor *attribution, int sample, idl_reduce r,
                                       idl_tensor **map);

typedef enum idl_overlay_style {
    /* CAM methods, InterpretDL's overlay_heatmap: min-max to [0, 1] (a constant map gives 0),
     * bilinear resize to the image, colormap, 0.4 * heat + 0.6 * image */
    IDL_OVERLAY_HEATMAP = 0,
    /* gradient methods, InterpretDL's overlay_grayscale on the map resized to the image:
     * uint8(255 * clip((v - min) / (P99 - min), 0, 1)), P99 numpy.percentile's 99th (linear),
     * into the green channel of a black picture, 0.4 * that + 0.6 * image (where P99 = min:
     * 255 above the minimum, 0 at it, as numpy's x / 0 and 0 / 0 end) */
    IDL_OVERLAY_GRAYSCALE,
    /* LIME family, InterpretDL's overlay_threshold: pixels where the resized map is > 0
     * painted green (255), 0.6 * mask + 0.4 * image */
    IDL_OVERLAY_THRESHOLD,
    /* signed maps: s = v / max|v| (0 for an all-zero map), resized, the colour of 0.5 + 0.5 s
     * in a diverging colormap (0 is its middle), 0.4 * colour + 0.6 * image */
    IDL_OVERLAY_SIGNED,
} idl_overlay_style;

typedef struct idl_overlay_opts {
    idl_overlay_style style;
    /* HEATMAP (default JET) and SIGNED (default BWR: JET, the zero value, stands for it there,
     * JET not being diverging); the other styles ignore it */
    idl_colormap colormap;
    /* weight a of the heat layer in trunc(a * layer + (1 - a) * image), computed in double at a
     * resolution of 1e-6 (0.4f is the double 0.4); 0 = the style's default (0.4; THRESHOLD 0.6);
     * 0 .. 1, else INVALID_ARG */
    float alpha;
} idl_overlay_opts;
IDL_API idl_overlay_opts idl_overlay_opts_default(void);

/* Paints a map (H', W') over an image (any size; the map is resized bilinearly to it, half-pixel
 * centres, bit-exact with cv2.resize(INTER_LINEAR) on float32). The image may be gray (replicated)
 * or RGB(A) (alpha ignored); *out is RGB of the image's size. opts NULL: the defaults. Errors:
 * INVALID_ARG (NULL, a bad image, a map not float32 or with a non-finite value, bad options),
 * SHAPE (a map not 2-D, or a side outside 1 .. IDL_IMAGE_MAX_DIM), NOMEM. */
IDL_API idl_status idl_overlay(const idl_image *image, const idl_tensor *map,
                               const idl_overlay_opts *opts, idl_image **out);

/* Pictures side by side in a grid of `cols` columns (0, or more than n: all in one row), each with
 * its label (labels or labels[i] may be NULL; ASCII, '\n' breaks lines, other bytes drawn as '?')
 * drawn above it in dark text (stb_easy_font); pictures of other sizes are centred in cells of the
 * largest size. White background, RGB (gray replicated, RGBA composited over white).
 * Layout, in pixels: cw, ch the largest width and height; text scale t = min(4, 1 + cw / 512);
 * label band lb = 0 when labels is NULL, else t * 12 * (most lines in a label) + 4; a margin of 4
 * around and between cells. Size: cols * cw + (cols + 1) * 4 by rows * (lb + ch) + (rows + 1) * 4.
 * Errors: INVALID_ARG (n < 1, cols < 0, a NULL or bad image, a grid over IDL_IMAGE_MAX_DIM on a
 * side), NOMEM. */
IDL_API idl_status idl_image_grid(const idl_image *const *images, const char *const *labels, int n,
                                  int cols, idl_image **out);

#ifdef __cplusplus
}
#endif
#endif

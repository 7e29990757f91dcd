/* image.h — image files in, model inputs out: PNG and JPEG decoding (grayscale, RGB, alpha), 8-bit
 * images, resizing with the pixel-centre convention of OpenCV and Pillow, short-side resize and
 * centre crop, and normalisation presets that turn an image into an (1, C, H, W) or (1, H, W, C)
 * float32 tensor. The preprocessing is described as JSON so that a result can be reproduced. */
#ifndef INTERPRETDL_IMAGE_H
#define INTERPRETDL_IMAGE_H

#include "interpretdl/interpretdl.h"
#include "interpretdl/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 8-bit image, rows top to bottom, channels interleaved (HWC): 1 gray, 3 RGB, 4 RGBA. */
typedef struct idl_image {
    int width, height, channels;
    uint8_t *data; /* width * height * channels bytes, owned */
} idl_image;

/* Largest accepted width or height (a decompression bomb is refused before allocating). */
#define IDL_IMAGE_MAX_DIM 16384

/* A zero-filled image: width and height in 1 .. IDL_IMAGE_MAX_DIM, channels 1, 3 or 4
 * (INVALID_ARG otherwise). Free with idl_image_free (NULL is a no-op). */
IDL_API idl_status idl_image_new(int width, int height, int channels, idl_image **out);
IDL_API void idl_image_free(idl_image *img);

/* Converts to 1 (gray: ITU-R 601 luma, round(0.299 R + 0.587 G + 0.114 B)), 3 (RGB: gray is
 * replicated, alpha dropped) or 4 (RGBA: alpha 255 where there was none) channels. *out is a new
 * image, also when the channel count stays. Errors: INVALID_ARG, NOMEM. */
IDL_API idl_status idl_image_convert(const idl_image *src, int channels, idl_image **out);

/* Decodes a PNG or JPEG file (also BMP, TGA, GIF's first frame). channels: 0 keeps the file's
 * (gray with alpha and GIF become RGBA), 1 converts to gray, 3 to RGB, 4 to RGBA, as
 * idl_image_convert. 16-bit samples are reduced to 8 bits (the high byte). A JPEG must reach its
 * end-of-image marker. Errors: IO (cannot open), PARSE (empty, corrupt or truncated, with the
 * decoder's reason), UNSUPPORTED (not PNG, JPEG, BMP, TGA or GIF), INVALID_ARG (wider or taller
 * than IDL_IMAGE_MAX_DIM: refused from the header, before pixels are allocated), NOMEM. */
IDL_API idl_status idl_image_load(const char *path, int channels, idl_image **out);
IDL_API idl_status idl_image_load_mem(const void *data, size_t size, int channels, idl_image **out);
/* Writes a PNG atomically (temporary name, then rename). Images of more than 2^28 bytes are
 * refused (INVALID_ARG). */
IDL_API idl_status idl_image_save_png(const char *path, const idl_image *img);

typedef enum idl_resize_mode {
    IDL_RESIZE_BILINEAR = 0, /* OpenCV INTER_LINEAR: half-pixel centres, 2x2 taps (no antialias) */
    IDL_RESIZE_NEAREST,      /* OpenCV INTER_NEAREST: source index floor(d * src / dst) */
    IDL_RESIZE_ANTIALIAS,    /* Pillow Image.BILINEAR: the triangle filter widened by the
                                downscale factor (antialiasing for strong downscaling) */
} idl_resize_mode;

/* Resizes to width x height; results rounded to nearest and clamped to 0..255. Bit-exact with
 * OpenCV 4.6 (BILINEAR, NEAREST) and Pillow 9.4 (ANTIALIAS) in the tests; channels are resized
 * independently (Pillow premultiplies alpha for RGBA, ANTIALIAS does not). The same size gives a
 * copy. Errors: INVALID_ARG (bad image, size outside 1 .. IDL_IMAGE_MAX_DIM, mode), NOMEM. */
IDL_API idl_status idl_image_resize(const idl_image *src, int width, int height,
                                    idl_resize_mode mode, idl_image **out);
/* The rectangle (x, y, width, height), which must lie inside the image (INVALID_ARG). */
IDL_API idl_status idl_image_crop(const idl_image *src, int x, int y, int width, int height,
                                  idl_image **out);

/* From an image to a model input. Steps in order: convert to `channels`; resize (short side to
 * resize_short keeping the aspect ratio: s = resize_short / min(w, h), new size round(w * s) x
 * round(h * s) with halves to even, as InterpretDL's Python 3 round(); or exactly resize_w x
 * resize_h); centre crop crop_w x crop_h (start (size - crop) / 2 rounded down; a crop larger than
 * the image is an error); then per channel v = (pixel * scale - mean[c]) / std[c], where mean and
 * std are indexed by colour in RGB order (1 channel: mean[0], std[0]); "bgr" then reverses the
 * order of the tensor's channels; layout NCHW or NHWC. */
typedef struct idl_preprocess {
    int channels;           /* 1 or 3 (default 3) */
    int resize_short;       /* 0: none */
    int resize_w, resize_h; /* 0: none */
    int crop_w, crop_h;     /* 0: none */
    idl_resize_mode mode;   /* default BILINEAR (InterpretDL resizes with OpenCV) */
    float scale;            /* default 1/255 */
    float mean[4], std[4];  /* default 0 and 1 */
    int bgr;                /* 1: channel order BGR */
    int nhwc;               /* 1: (1, H, W, C) instead of (1, C, H, W) */
} idl_preprocess;

/* Presets: "imagenet" (scale 1/255, mean 0.485 0.456 0.406, std 0.229 0.224 0.225, RGB, NCHW),
 * "none" (pixel values 0..255 as floats), "scale" (1/255 only). Resize and crop stay 0 in every
 * preset; set them for the model. Errors: INVALID_ARG naming the preset. */
IDL_API idl_status idl_preprocess_preset(const char *name, idl_preprocess *out);
/* Parses a comma-separated specification, e.g. "imagenet,resize=256,crop=224",
 * "scale,size=28x28,channels=1", "mean=0.5,0.5,0.5,std=0.5,0.5,0.5", "bgr", "nhwc",
 * "antialias", "nearest". Items: a preset (imagenet, none, scale: sets scale, mean and std);
 * rgb | bgr; nchw | nhwc; gray (channels=1); bilinear | nearest | antialias (or mode=...);
 * channels=1|3; resize=N (short side) or resize=WxH (exact); size=WxH or size=N (exact);
 * crop=WxH or crop=N; scale=F or scale=A/B; mean=... and std=... with 1 value (every channel) or
 * one per channel, the numbers after the first continuing the list. Unlisted settings keep the
 * defaults of the struct; later items win; "" gives the defaults. Errors (INVALID_ARG) name the
 * bad item. */
IDL_API idl_status idl_preprocess_parse(const char *spec, idl_preprocess *out);

/* Runs the pipeline: *out is (1, C, H, W) (or NHWC) float32; *shown (optional) receives the
 * resized and cropped 8-bit image the tensor was made from (for pictures; RGB or gray, whatever
 * the channel order of the tensor). Errors: INVALID_ARG (bad settings or image, a crop larger
 * than the image), NOMEM. */
IDL_API idl_status idl_preprocess_image(const idl_image *img, const idl_preprocess *p,
                                        idl_tensor **out, idl_image **shown);
/* The pipeline as a JSON object (no trailing newline) into buf, e.g. {"channels":3,
 * "resize_short":256,"resize":null,"crop":[224,224],"mode":"bilinear","scale":0.003921569,
 * "mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225],"order":"RGB","layout":"NCHW"}; floats
 * in the fewest digits that read back exactly. Returns the length it needs without the NUL, as
 * snprintf: the text is cut (and NUL-terminated) when cap is smaller; buf may be NULL if cap
 * is 0. */
IDL_API size_t idl_preprocess_json(const idl_preprocess *p, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif

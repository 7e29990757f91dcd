/* image.c — 8-bit images: creation, decoding (stb_image, see stb_impl.c) with channel conversion,
 * PNG output (stb_image_write into memory, then an atomic file write), resizing and cropping.
 *
 * Resizing reproduces the two libraries InterpretDL and the usual preprocessing code call:
 *  - IDL_RESIZE_BILINEAR is OpenCV's cv::resize(INTER_LINEAR) on 8-bit data. Per axis, the
 *    source coordinate of destination index d is f = (d + 0.5) * scale - 0.5 with
 *    scale = 1 / (dst / src), computed in double and rounded to float; s = floor(f), and the
 *    fraction f - s becomes two weights round((1 - f) * 2048), round(f * 2048) (11-bit fixed
 *    point, halves to even). Horizontally, a tap left of the image or on/after its last pixel
 *    becomes (edge pixel, weights 2048 and 0); vertically the two rows are clamped to the image.
 *    The horizontal pass keeps exact integers (up to 255 * 2048). The vertical pass rounds as
 *    OpenCV's vector code does (VResizeLinearVec_32s8u):
 *    (((r0 >> 4) * b0 >> 16) + ((r1 >> 4) * b1 >> 16) + 2) >> 2, clamped to 0..255 (a plain
 *    (r0 * b0 + r1 * b1 + 2^21) >> 22 differs from it by one level now and then). This is
 *    bit-exact against Debian's OpenCV 4.6 on x86-64 in 12,000 random cases (sides of 1 to 140
 *    pixels, 1, 3 and 4 channels, 2x down, where OpenCV switches to INTER_AREA, and 2x up), 150
 *    with sides up to 1500 and a few extreme ratios (16384 -> 1, 3 -> 1000).
 *  - IDL_RESIZE_NEAREST is OpenCV's INTER_NEAREST: s = min(floor(d * (1 / (dst / src))), src-1)
 *    in double (bit-exact in the same check).
 *  - IDL_RESIZE_ANTIALIAS is Pillow's Image.resize(size, Image.BILINEAR): a triangle filter whose
 *    support is widened by the downscale factor (support = max(src / dst, 1)), centred at
 *    (d + 0.5) * src / dst, taps [(int)(centre - support + 0.5), (int)(centre + support + 0.5))
 *    clamped to the image, weights normalised to sum 1, converted to 22-bit fixed point
 *    ((int)(w * 2^22 + 0.5)), a horizontal pass rounded to 8 bits, then a vertical pass. Each
 *    channel is filtered on its own (Pillow premultiplies alpha for RGBA; this does not).
 *    Bit-exact against Pillow 9.4 for gray and RGB in the same check.
 *
 * Gray conversion is ITU-R 601 luma, round(0.299 R + 0.587 G + 0.114 B), with the weights in
 * 16-bit fixed point (19595, 38470, 7471; they sum to 65536). */
#include "interpretdl/image.h"
#include "core/internal.h"
#include "data/data_internal.h"

#include <stb_image.h>
#include <stb_image_write.h>

#include <limits.h>
#include <math.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Creation                                                                                   */

static bool valid_channels(int c) {
    return c == 1 || c == 3 || c == 4;
}

/* Checks an image handed in by a caller; `what` names it in the message. */
static idl_status check_image(const idl_image *img, const char *fn, const char *what) {
    if (!img) return idl__error(IDL_ERR_INVALID_ARG, "%s: %s is NULL", fn, what);
    if (img->width < 1 || img->height < 1 || img->width > IDL_IMAGE_MAX_DIM ||
        img->height > IDL_IMAGE_MAX_DIM || !valid_channels(img->channels) || !img->data)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: %s is not a valid image (%d x %d, %d channels, data %s)", fn, what,
                          img->width, img->height, img->channels, img->data ? "set" : "NULL");
    return IDL_OK;
}

static size_t image_bytes(const idl_image *img) {
    return (size_t)img->width * (size_t)img->height * (size_t)img->channels;
}

/* idl_image_new, with the pixels left uninitialised unless zero (for images about to be
 * overwritten whole). */
static idl_status image_alloc(int width, int height, int channels, bool zero, idl_image **out) {
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "idl_image_new: out is NULL");
    *out = NULL;
    if (width < 1 || height < 1 || width > IDL_IMAGE_MAX_DIM || height > IDL_IMAGE_MAX_DIM)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_image_new: size %d x %d is outside 1 .. %d on a side", width, height,
                          IDL_IMAGE_MAX_DIM);
    if (!valid_channels(channels))
        return idl__error(IDL_ERR_INVALID_ARG, "idl_image_new: channels is %d, expected 1, 3 or 4",
                          channels);
    idl_image *img = idl__calloc(1, sizeof *img);
    if (!img) return idl__error(IDL_ERR_NOMEM, "idl_image_new: out of memory");
    img->width = width;
    img->height = height;
    img->channels = channels;
    img->data = zero ? idl__calloc(image_bytes(img), 1) : idl__malloc(image_bytes(img));
    if (!img->data) {
        idl__free(img);
        return idl__error(IDL_ERR_NOMEM, "idl_image_new: out of memory for %d x %d x %d bytes",
                          width, height, channels);
    }
    *out = img;
    return IDL_OK;
}

idl_status idl_image_new(int width, int height, int channels, idl_image **out) {
    return image_alloc(width, height, channels, true, out);
}

void idl_image_free(idl_image *img) {
    if (!img) return;
    idl__free(img->data);
    idl__free(img);
}

/* ------------------------------------------------------------------------------------------ */
/* Channel conversion                                                                         */

static uint8_t luma(const uint8_t *p) {
    return (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 32768u) >> 16);
}

/* Converts n pixels of sc channels (1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) to dc channels
 * (1, 3 or 4). */
static void convert_pixels(const uint8_t *s, int sc, uint8_t *d, int dc, size_t n) {
    for (size_t i = 0; i < n; i++, s += sc, d += dc) {
        uint8_t r, g, b, a = 255, y;
        if (sc <= 2) {
            r = g = b = y = s[0];
            if (sc == 2) a = s[1];
        } else {
            r = s[0], g = s[1], b = s[2];
            if (sc == 4) a = s[3];
            y = dc == 1 ? luma(s) : 0;
        }
        if (dc == 1) {
            d[0] = y;
        } else {
            d[0] = r, d[1] = g, d[2] = b;
            if (dc == 4) d[3] = a;
        }
    }
}

idl_status idl_image_convert(const idl_image *src, int channels, idl_image **out) {
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "idl_image_convert: out is NULL");
    *out = NULL;
    idl_status st = check_image(src, "idl_image_convert", "src");
    if (st) return st;
    if (!valid_channels(channels))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_image_convert: channels is %d, expected 1, 3 or 4", channels);
    st = image_alloc(src->width, src->height, channels, false, out);
    if (st) return st;
    if (channels == src->channels)
        memcpy((*out)->data, src->data, image_bytes(src));
    else
        convert_pixels(src->data, src->channels, (*out)->data, channels,
                       (size_t)src->width * (size_t)src->height);
    return IDL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Decoding                                                                                   */

typedef enum { FMT_UNKNOWN, FMT_PNG, FMT_JPEG, FMT_BMP, FMT_GIF } image_format;

/* The offset just after a JPEG's start-of-image marker, as stb_image finds it (0xFF, any number
 * of 0xFF fill bytes, 0xD8), or 0 when the data does not start with one. */
static size_t jpeg_start(const uint8_t *d, size_t n) {
    if (n < 2 || d[0] != 0xFF) return 0;
    size_t k = 1;
    while (k < n && d[k] == 0xFF)
        k++;
    return k < n && d[k] == 0xD8 ? k + 1 : 0;
}

static image_format sniff(const uint8_t *d, size_t n) {
    if (n >= 8 && !memcmp(d, "\x89PNG\r\n\x1a\n", 8)) return FMT_PNG;
    if (jpeg_start(d, n)) return FMT_JPEG;
    if (n >= 2 && d[0] == 'B' && d[1] == 'M') return FMT_BMP;
    if (n >= 4 && !memcmp(d, "GIF8", 4)) return FMT_GIF;
    return FMT_UNKNOWN; /* TGA has no signature */
}

static const char *format_name(image_format f) {
    switch (f) {
    case FMT_PNG:
        return "PNG";
    case FMT_JPEG:
        return "JPEG";
    case FMT_BMP:
        return "BMP";
    case FMT_GIF:
        return "GIF";
    default:
        return "image";
    }
}

/* Checks a JPEG's marker structure before stb_image sees it; returns NULL or what is wrong.
 *  - The stb_image of Debian's libstb-dev (2.27, git 2022-09) does not check that a Huffman
 *    table (DHT) holds at most 256 codes, and writes past its tables when one claims more
 *    (fixed upstream later). Such files are refused here. The walk visits every DHT segment
 *    stb_image would: segments are skipped by their lengths, bytes where a marker should be are
 *    skipped up to the next 0xFF (as stb's marker search does), and scan data is skipped up to
 *    the next marker that is not a stuffed 0xFF 0x00 or a restart marker (stb stops at the same
 *    marker or earlier, and stops decoding at anything unexpected).
 *  - stb_image decodes truncated JPEG data without complaint (the missing entropy-coded bytes
 *    read as zeros), as libjpeg does with a warning. Like Pillow, which refuses such files by
 *    default, a JPEG must reach its end-of-image marker.
 * A length below 2 ends the walk: stb_image refuses every such segment. */
static const char *jpeg_check(const uint8_t *d, size_t n) {
    static const char *const truncated = "truncated JPEG (no end-of-image marker)";
    size_t pos = jpeg_start(d, n);
    for (;;) {
        while (pos < n && d[pos] != 0xFF)
            pos++; /* junk */
        while (pos + 1 < n && d[pos + 1] == 0xFF)
            pos++; /* fill bytes */
        if (pos + 1 >= n) return truncated;
        uint8_t m = d[pos + 1];
        if (m == 0xD9) return NULL;
        if (m == 0x00 || m == 0x01 || m == 0xD8 || (m >= 0xD0 && m <= 0xD7)) {
            pos += 2;
            continue;
        }
        if (pos + 4 > n) return truncated;
        size_t len = (size_t)d[pos + 2] << 8 | d[pos + 3];
        if (len < 2) return NULL;
        if (m == 0xC4) { /* DHT: tables of (class/id, 16 counts, values) */
            size_t q = pos + 4, end = pos + 2 + len;
            while (q < end) {
                size_t codes = 0;
                for (size_t i = 1; i <= 16; i++)
                    codes += q + i < n ? d[q + i] : 0;
                if (codes > 256) return "corrupt JPEG (a Huffman table with more than 256 codes)";
                q += 17 + codes;
            }
        }
        if (pos + 2 + len > n) return truncated;
        pos += 2 + len;
        if (m != 0xDA) continue;
        /* entropy-coded data of a scan */
        for (;;) {
            if (pos + 1 >= n) return truncated;
            if (d[pos] == 0xFF && d[pos + 1] != 0x00 && d[pos + 1] != 0xFF &&
                !(d[pos + 1] >= 0xD0 && d[pos + 1] <= 0xD7))
                break;
            pos++;
        }
    }
}

/* Checks a PNG's chunk list before stb_image sees it; returns NULL or what is wrong. An IDAT
 * chunk of length 0 before any IDAT data makes stb_image 2.27 compute NULL + 0 (undefined
 * behaviour that sanitizers stop on); no encoder writes one, so such files are refused. */
static const char *png_check(const uint8_t *d, size_t n) {
    if (n >= 24 && !memcmp(d + 12, "IHDR", 4) &&
        ((d[16] | d[17] | d[20] | d[21]) || (d[18] << 8 | d[19]) > IDL_IMAGE_MAX_DIM ||
         (d[22] << 8 | d[23]) > IDL_IMAGE_MAX_DIM))
        return NULL; /* too large: stb_image refuses it from the header */
    size_t pos = 8;
    while (pos + 8 <= n) {
        uint32_t len = (uint32_t)d[pos] << 24 | (uint32_t)d[pos + 1] << 16 |
                       (uint32_t)d[pos + 2] << 8 | d[pos + 3];
        const uint8_t *type = d + pos + 4;
        if (!memcmp(type, "IDAT", 4)) return len ? NULL : "PNG with an empty first IDAT chunk";
        if (!memcmp(type, "IEND", 4) || len > n) return NULL;
        pos += 12 + (size_t)len;
    }
    return NULL;
}

/* The status for an stb_image failure: out of memory, too large, or a corrupt file of a format
 * stb recognised (PARSE) or did not (UNSUPPORTED). */
static idl_status stb_failure(const char *fn, const char *what, image_format fmt, bool recognised) {
    const char *why = stbi_failure_reason();
    if (!why) why = "unknown reason";
    if (idl__stb_alloc_failed(true) || !strcmp(why, "outofmem"))
        return idl__error(IDL_ERR_NOMEM, "%s: %s: out of memory while decoding", fn, what);
    if (!strcmp(why, "too large"))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: %s: image too large (the limit is %d pixels on a side; decoder: "
                          "too large)",
                          fn, what, IDL_IMAGE_MAX_DIM);
    if (!recognised && fmt == FMT_UNKNOWN)
        return idl__error(IDL_ERR_UNSUPPORTED,
                          "%s: %s: not a PNG, JPEG, BMP, TGA or GIF image (decoder: %s)", fn, what,
                          why);
    return idl__error(IDL_ERR_PARSE, "%s: %s: corrupt or truncated %s (decoder: %s)", fn, what,
                      format_name(fmt), why);
}

/* Decodes data (`what` names it in messages: a path or "memory"). */
static idl_status decode(const uint8_t *data, size_t size, int channels, idl_image **out,
                         const char *fn, const char *what) {
    if (!valid_channels(channels) && channels != 0)
        return idl__error(IDL_ERR_INVALID_ARG, "%s: channels is %d, expected 0, 1, 3 or 4", fn,
                          channels);
    if (size == 0) return idl__error(IDL_ERR_PARSE, "%s: %s: empty (0 bytes)", fn, what);
    if (size > INT_MAX)
        return idl__error(IDL_ERR_INVALID_ARG, "%s: %s: %zu bytes, more than the decoder takes", fn,
                          what, size);
    image_format fmt = sniff(data, size);
    /* before any stb call: stbi_info already reads JPEG Huffman tables */
    const char *bad = fmt == FMT_JPEG  ? jpeg_check(data, size)
                      : fmt == FMT_PNG ? png_check(data, size)
                                       : NULL;
    if (bad) return idl__error(IDL_ERR_PARSE, "%s: %s: %s", fn, what, bad);
    int w = 0, h = 0, n = 0;
    idl__stb_alloc_failed(true);
    if (!stbi_info_from_memory(data, (int)size, &w, &h, &n)) {
        /* stbi_info's reason is always "unknown image type"; for a file with a known signature
         * the decoder says what is wrong (it checks the size against IDL_IMAGE_MAX_DIM before
         * allocating any pixels) */
        if (fmt == FMT_UNKNOWN) return stb_failure(fn, what, fmt, false);
        uint8_t *px = stbi_load_from_memory(data, (int)size, &w, &h, &n, 0);
        if (!px) return stb_failure(fn, what, fmt, true);
        stbi_image_free(px);
        idl__stb_alloc_failed(true);
        return idl__error(IDL_ERR_PARSE, "%s: %s: %s header not understood", fn, what,
                          format_name(fmt));
    }
    if (w < 1 || h < 1 || w > IDL_IMAGE_MAX_DIM || h > IDL_IMAGE_MAX_DIM)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: %s: %s of %d x %d pixels; the limit is %d on a side", fn, what,
                          format_name(fmt), w, h, IDL_IMAGE_MAX_DIM);
    uint8_t *px = stbi_load_from_memory(data, (int)size, &w, &h, &n, 0);
    if (!px) return stb_failure(fn, what, fmt, true);
    idl_status st = IDL_OK;
    if (n < 1 || n > 4 || w < 1 || h < 1) {
        st = idl__error(IDL_ERR_INTERNAL, "%s: %s: decoder returned %d x %d x %d", fn, what, w, h,
                        n);
    } else {
        /* channels 0: the file's, with gray + alpha widened to RGBA (images have 1, 3 or 4) */
        int c = channels ? channels : (n == 2 ? 4 : n);
        st = image_alloc(w, h, c, false, out);
        if (!st) {
            if (c == n)
                memcpy((*out)->data, px, image_bytes(*out));
            else
                convert_pixels(px, n, (*out)->data, c, (size_t)w * (size_t)h);
        }
    }
    stbi_image_free(px);
    return st;
}

idl_status idl_image_load_mem(const void *data, size_t size, int channels, idl_image **out) {
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "idl_image_load_mem: out is NULL");
    *out = NULL;
    if (!data && size) return idl__error(IDL_ERR_INVALID_ARG, "idl_image_load_mem: data is NULL");
    return decode(data, size, channels, out, "idl_image_load_mem", "memory");
}

/* Largest image file read: far above any PNG or JPEG within IDL_IMAGE_MAX_DIM in practice. */
#define IMAGE_FILE_MAX ((uint64_t)1 << 30)

idl_status idl_image_load(const char *path, int channels, idl_image **out) {
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "idl_image_load: out is NULL");
    *out = NULL;
    if (!path) return idl__error(IDL_ERR_INVALID_ARG, "idl_image_load: path is NULL");
    if (!valid_channels(channels) && channels != 0)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_image_load: channels is %d, expected 0, 1, 3 or 4", channels);
    unsigned char *buf = NULL;
    size_t len = 0;
    idl_status st = idl__read_file(path, IMAGE_FILE_MAX, &buf, &len);
    if (st) return idl__error_prefix(st, "idl_image_load: ");
    st = decode(buf, len, channels, out, "idl_image_load", path);
    idl__free(buf);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* PNG output                                                                                 */

typedef struct png_buffer {
    unsigned char *data;
    size_t len, cap;
    bool failed;
} png_buffer;

static void png_append(void *context, void *data, int size) {
    png_buffer *b = context;
    if (b->failed || size <= 0) return;
    size_t need = b->len + (size_t)size;
    if (need > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *p = idl__malloc(cap);
        if (!p) {
            b->failed = true;
            return;
        }
        if (b->len) memcpy(p, b->data, b->len);
        idl__free(b->data);
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, (size_t)size);
    b->len = need;
}

/* stb_image_write sizes its buffers with int arithmetic; stay well inside it. */
#define PNG_MAX_BYTES ((size_t)1 << 28)

idl_status idl_image_save_png(const char *path, const idl_image *img) {
    if (!path) return idl__error(IDL_ERR_INVALID_ARG, "idl_image_save_png: path is NULL");
    idl_status st = check_image(img, "idl_image_save_png", "img");
    if (st) return st;
    if (image_bytes(img) > PNG_MAX_BYTES)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_image_save_png: %s: %d x %d x %d is more than the PNG writer's "
                          "%zu bytes",
                          path, img->width, img->height, img->channels, PNG_MAX_BYTES);
    png_buffer b = { 0 };
    int ok = idl__stb_write_png(png_append, &b, img->width, img->height, img->channels, img->data,
                                img->width * img->channels);
    if (!ok || b.failed || !b.len) {
        idl__free(b.data);
        return idl__error(IDL_ERR_NOMEM, "idl_image_save_png: %s: out of memory while encoding",
                          path);
    }
    const void *pieces[1] = { b.data };
    size_t sizes[1] = { b.len };
    st = idl__write_atomic(path, pieces, sizes, 1);
    idl__free(b.data);
    if (st) return idl__error_prefix(st, "idl_image_save_png: ");
    return IDL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Resizing                                                                                   */

/* OpenCV INTER_LINEAR, one axis: for destination index d, the first source index ofs[d] and the
 * 11-bit weights w[2d], w[2d + 1] of ofs[d] and ofs[d] + 1. clamp_edges: the horizontal rule
 * (taps outside the image become (edge, weight 2048)); otherwise ofs may be -1 or the last index
 * and the caller clamps the rows. */
static void cv_linear_axis(int src, int dst, bool clamp_edges, int *ofs, int16_t *w) {
    double scale = 1.0 / ((double)dst / (double)src);
    for (int d = 0; d < dst; d++) {
        float f = (float)((d + 0.5) * scale - 0.5);
        int s = (int)floorf(f);
        f -= (float)s;
        if (clamp_edges) {
            if (s < 0) f = 0.f, s = 0;
            if (s >= src - 1) f = 0.f, s = src - 1;
        }
        ofs[d] = s;
        w[2 * d] = (int16_t)lrintf((1.f - f) * 2048.f);
        w[2 * d + 1] = (int16_t)lrintf(f * 2048.f);
    }
}

/* One source row through the horizontal pass: row[d * C + c] = p[s] * w0 + p[s + 1] * w1. */
static void cv_linear_row(const uint8_t *p, int sw, int C, const int *xofs, const int16_t *xw,
                          int dw, int32_t *row) {
    for (int d = 0; d < dw; d++) {
        int s0 = xofs[d], s1 = s0 + 1 < sw ? s0 + 1 : s0;
        int32_t w0 = xw[2 * d], w1 = xw[2 * d + 1];
        for (int c = 0; c < C; c++)
            row[d * C + c] = p[s0 * C + c] * w0 + p[s1 * C + c] * w1;
    }
}

static uint8_t sat_u8(int32_t v) {
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static idl_status resize_cv_linear(const idl_image *src, idl_image *dst) {
    const int sw = src->width, sh = src->height, dw = dst->width, dh = dst->height;
    const int C = src->channels, W = dw * C;
    int *xofs = idl__calloc((size_t)dw + (size_t)dh, sizeof(int));
    int16_t *wts = idl__calloc(2 * ((size_t)dw + (size_t)dh), sizeof(int16_t));
    int32_t *rows = idl__calloc(2 * (size_t)W, sizeof(int32_t));
    if (!xofs || !wts || !rows) {
        idl__free(xofs), idl__free(wts), idl__free(rows);
        return idl__error(IDL_ERR_NOMEM, "idl_image_resize: out of memory");
    }
    int *yofs = xofs + dw;
    int16_t *xw = wts, *yw = wts + 2 * (size_t)dw;
    cv_linear_axis(sw, dw, true, xofs, xw);
    cv_linear_axis(sh, dh, false, yofs, yw);
    int32_t *buf[2] = { rows, rows + W };
    int have[2] = { -1, -1 }; /* source row held in buf[k] */
    for (int d = 0; d < dh; d++) {
        int r[2] = { yofs[d], yofs[d] + 1 }, used = -1;
        const int32_t *S[2];
        for (int k = 0; k < 2; k++) {
            r[k] = r[k] < 0 ? 0 : r[k] >= sh ? sh - 1 : r[k];
        }
        for (int k = 0; k < 2; k++) {
            int slot = have[0] == r[k] ? 0 : have[1] == r[k] ? 1 : -1;
            if (slot < 0) {
                /* overwrite a buffer the other tap does not need */
                slot = k == 0 ? (have[0] == r[1] ? 1 : 0) : (used == 0 ? 1 : 0);
                cv_linear_row(src->data + (size_t)r[k] * (size_t)sw * (size_t)C, sw, C, xofs, xw,
                              dw, buf[slot]);
                have[slot] = r[k];
            }
            if (k == 0) used = slot;
            S[k] = buf[slot];
        }
        int32_t b0 = yw[2 * d], b1 = yw[2 * d + 1];
        uint8_t *o = dst->data + (size_t)d * (size_t)W;
        for (int x = 0; x < W; x++) {
            int32_t v = (((S[0][x] >> 4) * b0) >> 16) + (((S[1][x] >> 4) * b1) >> 16);
            o[x] = sat_u8((v + 2) >> 2);
        }
    }
    idl__free(xofs), idl__free(wts), idl__free(rows);
    return IDL_OK;
}

static idl_status resize_cv_nearest(const idl_image *src, idl_image *dst) {
    const int sw = src->width, sh = src->height, dw = dst->width, dh = dst->height;
    const int C = src->channels;
    int *xofs = idl__calloc((size_t)dw, sizeof(int));
    if (!xofs) return idl__error(IDL_ERR_NOMEM, "idl_image_resize: out of memory");
    double ifx = 1.0 / ((double)dw / (double)sw), ify = 1.0 / ((double)dh / (double)sh);
    for (int x = 0; x < dw; x++) {
        int s = (int)floor(x * ifx);
        xofs[x] = s < sw - 1 ? s : sw - 1;
    }
    for (int y = 0; y < dh; y++) {
        int sy = (int)floor(y * ify);
        if (sy > sh - 1) sy = sh - 1;
        const uint8_t *p = src->data + (size_t)sy * (size_t)sw * (size_t)C;
        uint8_t *o = dst->data + (size_t)y * (size_t)dw * (size_t)C;
        for (int x = 0; x < dw; x++)
            memcpy(o + (size_t)x * (size_t)C, p + (size_t)xofs[x] * (size_t)C, (size_t)C);
    }
    idl__free(xofs);
    return IDL_OK;
}

#define PIL_BITS 22

/* Pillow's BILINEAR coefficients for one axis: for output d, the taps [lo[d], lo[d] + cnt[d])
 * with fixed-point weights k[d * ksize + j]. Returns ksize, or 0 when out of memory. */
static int pil_axis(int in, int out, int **lo_cnt, int32_t **k) {
    double scale = (double)in / (double)out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale; /* the triangle's support is 1 */
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = idl__calloc((size_t)ksize, sizeof(double));
    *lo_cnt = idl__calloc(2 * (size_t)out, sizeof(int));
    *k = idl__calloc((size_t)out * (size_t)ksize, sizeof(int32_t));
    if (!w || !*lo_cnt || !*k) {
        idl__free(w), idl__free(*lo_cnt), idl__free(*k);
        *lo_cnt = NULL, *k = NULL;
        return 0;
    }
    double ss = 1.0 / filterscale;
    for (int d = 0; d < out; d++) {
        double center = (d + 0.5) * scale;
        int lo = (int)(center - support + 0.5), hi = (int)(center + support + 0.5);
        if (lo < 0) lo = 0;
        if (hi > in) hi = in;
        int cnt = hi - lo;
        double sum = 0.0;
        for (int j = 0; j < cnt; j++) {
            double t = fabs((j + lo - center + 0.5) * ss);
            w[j] = t < 1.0 ? 1.0 - t : 0.0;
            sum += w[j];
        }
        int32_t *kd = *k + (size_t)d * (size_t)ksize;
        for (int j = 0; j < cnt; j++) {
            double v = sum != 0.0 ? w[j] / sum : w[j];
            kd[j] = (int32_t)(v < 0 ? -0.5 + v * (1 << PIL_BITS) : 0.5 + v * (1 << PIL_BITS));
        }
        (*lo_cnt)[2 * d] = lo;
        (*lo_cnt)[2 * d + 1] = cnt;
    }
    idl__free(w);
    return ksize;
}

static uint8_t pil_clip(int64_t acc) {
    int64_t v = acc >> PIL_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* Pillow's resample: horizontal pass (if the width changes) into an 8-bit temporary, then the
 * vertical pass (if the height changes). */
static idl_status resize_pil(const idl_image *src, idl_image *dst) {
    const int sw = src->width, sh = src->height, dw = dst->width, dh = dst->height;
    const int C = src->channels;
    int *xb = NULL, *yb = NULL;
    int32_t *xk = NULL, *yk = NULL;
    uint8_t *tmp = NULL;
    int kx = pil_axis(sw, dw, &xb, &xk), ky = kx ? pil_axis(sh, dh, &yb, &yk) : 0;
    if (kx && ky) tmp = idl__malloc((size_t)dw * (size_t)sh * (size_t)C);
    if (!tmp) {
        idl__free(xb), idl__free(xk), idl__free(yb), idl__free(yk);
        return idl__error(IDL_ERR_NOMEM, "idl_image_resize: out of memory");
    }
    /* horizontal: src (sh x sw) -> tmp (sh x dw); a copy when the width stays */
    if (dw == sw) {
        memcpy(tmp, src->data, (size_t)sw * (size_t)sh * (size_t)C);
    } else {
        for (int y = 0; y < sh; y++) {
            const uint8_t *p = src->data + (size_t)y * (size_t)sw * (size_t)C;
            uint8_t *o = tmp + (size_t)y * (size_t)dw * (size_t)C;
            for (int d = 0; d < dw; d++) {
                const int32_t *k = xk + (size_t)d * (size_t)kx;
                int lo = xb[2 * d], cnt = xb[2 * d + 1];
                for (int c = 0; c < C; c++) {
                    int64_t acc = 1 << (PIL_BITS - 1);
                    for (int j = 0; j < cnt; j++)
                        acc += (int64_t)p[(size_t)(lo + j) * (size_t)C + (size_t)c] * k[j];
                    o[(size_t)d * (size_t)C + (size_t)c] = pil_clip(acc);
                }
            }
        }
    }
    /* vertical: tmp (sh x dw) -> dst (dh x dw) */
    const size_t W = (size_t)dw * (size_t)C;
    if (dh == sh) {
        memcpy(dst->data, tmp, W * (size_t)sh);
    } else {
        for (int d = 0; d < dh; d++) {
            const int32_t *k = yk + (size_t)d * (size_t)ky;
            int lo = yb[2 * d], cnt = yb[2 * d + 1];
            uint8_t *o = dst->data + (size_t)d * W;
            for (size_t x = 0; x < W; x++) {
                int64_t acc = 1 << (PIL_BITS - 1);
                for (int j = 0; j < cnt; j++)
                    acc += (int64_t)tmp[(size_t)(lo + j) * W + x] * k[j];
                o[x] = pil_clip(acc);
            }
        }
    }
    idl__free(xb), idl__free(xk), idl__free(yb), idl__free(yk), idl__free(tmp);
    return IDL_OK;
}

idl_status idl_image_resize(const idl_image *src, int width, int height, idl_resize_mode mode,
                            idl_image **out) {
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "idl_image_resize: out is NULL");
    *out = NULL;
    idl_status st = check_image(src, "idl_image_resize", "src");
    if (st) return st;
    if (width < 1 || height < 1 || width > IDL_IMAGE_MAX_DIM || height > IDL_IMAGE_MAX_DIM)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_image_resize: size %d x %d is outside 1 .. %d on a side", width,
                          height, IDL_IMAGE_MAX_DIM);
    if (mode != IDL_RESIZE_BILINEAR && mode != IDL_RESIZE_NEAREST && mode != IDL_RESIZE_ANTIALIAS)
        return idl__error(IDL_ERR_INVALID_ARG, "idl_image_resize: unknown mode %d", (int)mode);
    st = image_alloc(width, height, src->channels, false, out);
    if (st) return st;
    if (width == src->width && height == src->height) {
        memcpy((*out)->data, src->data, image_bytes(src)); /* as OpenCV and Pillow do */
        return IDL_OK;
    }
    st = mode == IDL_RESIZE_BILINEAR  ? resize_cv_linear(src, *out)
         : mode == IDL_RESIZE_NEAREST ? resize_cv_nearest(src, *out)
                                      : resize_pil(src, *out);
    if (st) {
        idl_image_free(*out);
        *out = NULL;
    }
    return st;
}

idl_status idl_image_crop(const idl_image *src, int x, int y, int width, int height,
                          idl_image **out) {
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "idl_image_crop: out is NULL");
    *out = NULL;
    idl_status st = check_image(src, "idl_image_crop", "src");
    if (st) return st;
    if (x < 0 || y < 0 || width < 1 || height < 1 || (int64_t)x + width > src->width ||
        (int64_t)y + height > src->height)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_image_crop: rectangle (x %d, y %d, %d x %d) is not inside the "
                          "%d x %d image",
                          x, y, width, height, src->width, src->height);
    st = image_alloc(width, height, src->channels, false, out);
    if (st) return st;
    const size_t C = (size_t)src->channels, row = (size_t)width * C;
    for (int r = 0; r < height; r++)
        memcpy((*out)->data + (size_t)r * row,
               src->data + ((size_t)(y + r) * (size_t)src->width + (size_t)x) * C, row);
    return IDL_OK;
}

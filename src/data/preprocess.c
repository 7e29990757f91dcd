/* preprocess.c — from an 8-bit image to a model input: normalisation presets, the comma-separated
 * specification parser, the pipeline (channels, resize, centre crop, normalise, channel order,
 * layout) and its description as JSON.
 *
 * The short-side resize follows InterpretDL's data_processor/readers.py (resize_short):
 * s = target / min(h, w) in double, new size int(round(w * s)) x int(round(h * s)) with Python 3's
 * round, which rounds halves to even (w = 181, h = 128, target 64: 90.5 -> 90, not 91). The
 * centre crop starts at (size - crop) / 2 rounded down (Python's //). Normalisation is
 * (pixel * scale - mean[c]) / std[c] with mean and std given for the image's colours in RGB
 * order; "bgr" only reverses the order of the tensor's channels. */
#include "core/internal.h"
#include "interpretdl/image.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------------------------ */
/* Presets                                                                                    */

static void set_defaults(idl_preprocess *p) {
    memset(p, 0, sizeof *p);
    p->channels = 3;
    p->mode = IDL_RESIZE_BILINEAR;
    p->scale = 1.0f / 255.0f;
    for (int c = 0; c < 4; c++)
        p->mean[c] = 0.0f, p->std[c] = 1.0f;
}

/* Sets the normalisation of a preset (scale, mean, std); false for an unknown name. */
static bool apply_preset(const char *name, idl_preprocess *p) {
    static const float im_mean[3] = { 0.485f, 0.456f, 0.406f },
                       im_std[3] = { 0.229f, 0.224f, 0.225f };
    if (!strcmp(name, "imagenet")) {
        p->scale = 1.0f / 255.0f;
        for (int c = 0; c < 4; c++) {
            p->mean[c] = c < 3 ? im_mean[c] : 0.0f;
            p->std[c] = c < 3 ? im_std[c] : 1.0f;
        }
        return true;
    }
    if (!strcmp(name, "none") || !strcmp(name, "scale")) {
        p->scale = name[0] == 'n' ? 1.0f : 1.0f / 255.0f;
        for (int c = 0; c < 4; c++)
            p->mean[c] = 0.0f, p->std[c] = 1.0f;
        return true;
    }
    return false;
}

idl_status idl_preprocess_preset(const char *name, idl_preprocess *out) {
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, "idl_preprocess_preset: out is NULL");
    if (!name) return idl__error(IDL_ERR_INVALID_ARG, "idl_preprocess_preset: name is NULL");
    idl_preprocess p;
    set_defaults(&p);
    if (!apply_preset(name, &p))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "idl_preprocess_preset: unknown preset '%s' (expected imagenet, none "
                          "or scale)",
                          name);
    *out = p;
    return IDL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Validation                                                                                 */

static const char *mode_name(idl_resize_mode m) {
    switch (m) {
    case IDL_RESIZE_BILINEAR:
        return "bilinear";
    case IDL_RESIZE_NEAREST:
        return "nearest";
    case IDL_RESIZE_ANTIALIAS:
        return "antialias";
    }
    return NULL;
}

static bool size_ok(int v) {
    return v >= 1 && v <= IDL_IMAGE_MAX_DIM;
}

/* Checks the settings the pipeline relies on; fn names the caller in the message. */
static idl_status check_pp(const idl_preprocess *p, const char *fn) {
    if (p->channels != 1 && p->channels != 3)
        return idl__error(IDL_ERR_INVALID_ARG, "%s: channels is %d, expected 1 or 3", fn,
                          p->channels);
    if (p->resize_short && !size_ok(p->resize_short))
        return idl__error(IDL_ERR_INVALID_ARG, "%s: resize_short %d is outside 1 .. %d", fn,
                          p->resize_short, IDL_IMAGE_MAX_DIM);
    if ((p->resize_w || p->resize_h) && !(size_ok(p->resize_w) && size_ok(p->resize_h)))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: resize %d x %d: both sides must be within 1 .. %d", fn, p->resize_w,
                          p->resize_h, IDL_IMAGE_MAX_DIM);
    if (p->resize_short && p->resize_w)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: both a short-side resize (%d) and an exact size (%d x %d) given", fn,
                          p->resize_short, p->resize_w, p->resize_h);
    if ((p->crop_w || p->crop_h) && !(size_ok(p->crop_w) && size_ok(p->crop_h)))
        return idl__error(IDL_ERR_INVALID_ARG,
                          "%s: crop %d x %d: both sides must be within 1 .. %d", fn, p->crop_w,
                          p->crop_h, IDL_IMAGE_MAX_DIM);
    if (!mode_name(p->mode))
        return idl__error(IDL_ERR_INVALID_ARG, "%s: unknown resize mode %d", fn, (int)p->mode);
    if (!isfinite(p->scale)) return idl__error(IDL_ERR_INVALID_ARG, "%s: scale is not finite", fn);
    for (int c = 0; c < p->channels; c++) {
        if (!isfinite(p->mean[c]))
            return idl__error(IDL_ERR_INVALID_ARG, "%s: mean[%d] is not finite", fn, c);
        if (!isfinite(p->std[c]) || p->std[c] == 0.0f)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "%s: std[%d] is %g, expected a finite non-zero "
                              "value",
                              fn, c, (double)p->std[c]);
    }
    return IDL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Parser                                                                                     */

#define PARSE_FN "idl_preprocess_parse"

static bool parse_int(const char *s, int *out) {
    if (!*s || *s == '+' || *s == '-' || *s == ' ') return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < 0 || v > IDL_IMAGE_MAX_DIM) return false;
    *out = (int)v;
    return true;
}

/* A finite number, or a fraction "a/b" ("1/255"). */
static bool parse_float(const char *s, float *out) {
    if (!*s || *s == ' ') return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s) return false;
    if (*end == '/') {
        const char *q = end + 1;
        if (!*q || *q == ' ') return false;
        double d = strtod(q, &end);
        if (end == q || d == 0.0) return false;
        v /= d;
    }
    if (*end || errno == ERANGE || !isfinite(v) || fabs(v) > 3.0e38) return false;
    *out = (float)v;
    return true;
}

/* "N" (N x N) or "WxH". */
static bool parse_size(const char *s, int *w, int *h) {
    char a[32];
    const char *x = strchr(s, 'x');
    if (!x) {
        if (!parse_int(s, w) || *w < 1) return false;
        *h = *w;
        return true;
    }
    size_t n = (size_t)(x - s);
    if (n == 0 || n >= sizeof a) return false;
    memcpy(a, s, n);
    a[n] = 0;
    return parse_int(a, w) && parse_int(x + 1, h) && *w >= 1 && *h >= 1;
}

static bool parse_mode(const char *s, idl_resize_mode *m) {
    if (!strcmp(s, "bilinear") || !strcmp(s, "linear"))
        *m = IDL_RESIZE_BILINEAR;
    else if (!strcmp(s, "nearest"))
        *m = IDL_RESIZE_NEAREST;
    else if (!strcmp(s, "antialias"))
        *m = IDL_RESIZE_ANTIALIAS;
    else
        return false;
    return true;
}

static const char *const g_words[] = { "imagenet",  "none",      "scale",   "rgb",      "bgr",
                                       "nchw",      "nhwc",      "gray",    "bilinear", "nearest",
                                       "antialias", "channels=", "resize=", "size=",    "crop=",
                                       "scale=",    "mean=",     "std=",    "mode=" };

static idl_status bad_item(const char *item, const char *why) {
    return idl__error(IDL_ERR_INVALID_ARG, PARSE_FN ": item '%s': %s", item, why);
}

static idl_status unknown_item(const char *item) {
    char key[40], near[160];
    size_t n = strcspn(item, "=");
    if (n >= sizeof key - 1) n = sizeof key - 2;
    memcpy(key, item, n);
    key[n] = 0;
    if (item[n] == '=') strcat(key, "=");
    idl__close_matches(key, g_words, (int)(sizeof g_words / sizeof *g_words), near, sizeof near);
    return idl__error(IDL_ERR_INVALID_ARG,
                      PARSE_FN ": unknown item '%s'%s%s (expected a preset imagenet, none or "
                               "scale; rgb, bgr, nchw, nhwc, gray, bilinear, nearest, antialias; "
                               "channels=, resize=, size=, crop=, scale=, mean=, std=, mode=)",
                      item, *near ? "; did you mean " : "", near);
}

idl_status idl_preprocess_parse(const char *spec, idl_preprocess *out) {
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, PARSE_FN ": out is NULL");
    if (!spec) return idl__error(IDL_ERR_INVALID_ARG, PARSE_FN ": spec is NULL");
    idl_preprocess p;
    set_defaults(&p);
    int n_mean = 0, n_std = 0; /* values given explicitly */
    int *list_n = NULL;        /* the list that bare numbers extend (mean= or std=) */
    float *list = NULL;
    int short_side = 0, ew = 0, eh = 0;
    char item[256];
    const char *s = spec;
    for (;;) {
        size_t len = strcspn(s, ",");
        /* trim spaces */
        const char *b = s, *e = s + len;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - b) >= sizeof item)
            return idl__error(IDL_ERR_INVALID_ARG, PARSE_FN ": item '%.40s...' is too long", b);
        memcpy(item, b, (size_t)(e - b));
        item[e - b] = 0;
        if (!*item) {
            if (!*spec) break; /* "" gives the defaults */
            return idl__error(IDL_ERR_INVALID_ARG, PARSE_FN ": empty item at offset %d in '%s'",
                              (int)(s - spec), spec);
        }
        const char *eq = strchr(item, '=');
        const char *val = eq ? eq + 1 : NULL;
        float f;
        if (!eq && list && parse_float(item, &f)) {
            if (*list_n >= 4) return bad_item(item, "more than 4 values for the list it continues");
            list[(*list_n)++] = f;
        } else {
            list = NULL, list_n = NULL;
            if (!eq) {
                idl_resize_mode m;
                if (apply_preset(item, &p))
                    n_mean = n_std = 0;
                else if (parse_mode(item, &m))
                    p.mode = m;
                else if (!strcmp(item, "rgb") || !strcmp(item, "bgr"))
                    p.bgr = item[0] == 'b';
                else if (!strcmp(item, "nchw") || !strcmp(item, "nhwc"))
                    p.nhwc = item[2] == 'w';
                else if (!strcmp(item, "gray") || !strcmp(item, "grey"))
                    p.channels = 1;
                else if (parse_float(item, &f))
                    return bad_item(item, "a number that does not follow mean= or std=");
                else
                    return unknown_item(item);
            } else if (!strncmp(item, "channels=", 9)) {
                int c;
                if (!parse_int(val, &c) || (c != 1 && c != 3))
                    return bad_item(item, "channels must be 1 or 3");
                p.channels = c;
            } else if (!strncmp(item, "resize=", 7)) {
                int w, h;
                if (strchr(val, 'x')) {
                    if (!parse_size(val, &w, &h))
                        return bad_item(item, "expected resize=N (short side) or resize=WxH, "
                                              "sizes 1 .. 16384");
                    ew = w, eh = h, short_side = 0;
                } else {
                    if (!parse_int(val, &w) || w < 1)
                        return bad_item(item, "expected resize=N (short side) or resize=WxH, "
                                              "sizes 1 .. 16384");
                    short_side = w, ew = eh = 0;
                }
            } else if (!strncmp(item, "size=", 5)) {
                int w, h;
                if (!parse_size(val, &w, &h))
                    return bad_item(item, "expected size=WxH or size=N, sizes 1 .. 16384");
                ew = w, eh = h, short_side = 0;
            } else if (!strncmp(item, "crop=", 5)) {
                int w, h;
                if (!parse_size(val, &w, &h))
                    return bad_item(item, "expected crop=WxH or crop=N, sizes 1 .. 16384");
                p.crop_w = w, p.crop_h = h;
            } else if (!strncmp(item, "scale=", 6)) {
                if (!parse_float(val, &f) || f == 0.0f)
                    return bad_item(item, "expected a non-zero number or fraction (1/255)");
                p.scale = f;
            } else if (!strncmp(item, "mean=", 5) || !strncmp(item, "std=", 4)) {
                bool is_mean = item[0] == 'm';
                list = is_mean ? p.mean : p.std;
                list_n = is_mean ? &n_mean : &n_std;
                if (!parse_float(val, &f))
                    return bad_item(item, "expected a number, then more numbers separated by "
                                          "commas (mean=0.5,0.5,0.5)");
                *list_n = 0;
                list[(*list_n)++] = f;
            } else if (!strncmp(item, "mode=", 5)) {
                idl_resize_mode m;
                if (!parse_mode(val, &m))
                    return bad_item(item, "expected mode=bilinear, nearest or antialias");
                p.mode = m;
            } else {
                return unknown_item(item);
            }
        }
        if (!s[len]) break;
        s += len + 1;
    }
    /* one value applies to every channel; otherwise one per channel */
    if (n_mean == 1)
        for (int c = 1; c < 4; c++)
            p.mean[c] = p.mean[0];
    if (n_std == 1)
        for (int c = 1; c < 4; c++)
            p.std[c] = p.std[0];
    if (n_mean > 1 && n_mean != p.channels)
        return idl__error(IDL_ERR_INVALID_ARG,
                          PARSE_FN ": item 'mean=': %d values for %d channels (give 1 or %d)",
                          n_mean, p.channels, p.channels);
    if (n_std > 1 && n_std != p.channels)
        return idl__error(IDL_ERR_INVALID_ARG,
                          PARSE_FN ": item 'std=': %d values for %d channels (give 1 or %d)", n_std,
                          p.channels, p.channels);
    for (int c = 0; c < 4; c++)
        if (p.std[c] == 0.0f)
            return idl__error(IDL_ERR_INVALID_ARG, PARSE_FN ": item 'std=': value %d is 0", c);
    p.resize_short = short_side;
    p.resize_w = ew, p.resize_h = eh;
    idl_status st = check_pp(&p, PARSE_FN);
    if (st) return st;
    *out = p;
    return IDL_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Pipeline                                                                                   */

/* Python 3's round() of a double: halves go to the even neighbour. */
static double round_half_even(double v) {
    double r = floor(v), diff = v - r;
    if (diff > 0.5) return r + 1.0;
    if (diff < 0.5) return r;
    return fmod(r, 2.0) == 0.0 ? r : r + 1.0;
}

#define PIPE_FN "idl_preprocess_image"

idl_status idl_preprocess_image(const idl_image *img, const idl_preprocess *p, idl_tensor **out,
                                idl_image **shown) {
    if (shown) *shown = NULL;
    if (!out) return idl__error(IDL_ERR_INVALID_ARG, PIPE_FN ": out is NULL");
    *out = NULL;
    if (!p) return idl__error(IDL_ERR_INVALID_ARG, PIPE_FN ": settings p is NULL");
    if (!img) return idl__error(IDL_ERR_INVALID_ARG, PIPE_FN ": img is NULL");
    if (!img->data || !size_ok(img->width) || !size_ok(img->height) ||
        (img->channels != 1 && img->channels != 3 && img->channels != 4))
        return idl__error(IDL_ERR_INVALID_ARG,
                          PIPE_FN ": img is not a valid image (%d x %d, %d channels, data %s)",
                          img->width, img->height, img->channels, img->data ? "set" : "NULL");
    idl_status st = check_pp(p, PIPE_FN);
    if (st) return st;

    /* cur: the image so far, the caller's or `owned` */
    const idl_image *cur = img;
    idl_image *owned = NULL, *next = NULL;
    if (img->channels != p->channels) {
        st = idl_image_convert(img, p->channels, &owned);
        if (st) return idl__error_prefix(st, PIPE_FN ": ");
        cur = owned;
    }

    /* resize */
    int nw = cur->width, nh = cur->height;
    if (p->resize_short) {
        double s = (double)p->resize_short / (double)(nw < nh ? nw : nh);
        double fw = round_half_even((double)cur->width * s),
               fh = round_half_even((double)cur->height * s);
        if (fw < 1.0 || fh < 1.0 || fw > IDL_IMAGE_MAX_DIM || fh > IDL_IMAGE_MAX_DIM) {
            st = idl__error(IDL_ERR_INVALID_ARG,
                            PIPE_FN ": the short side of the %d x %d image resized to %d gives "
                                    "%.0f x %.0f, outside 1 .. %d",
                            cur->width, cur->height, p->resize_short, fw, fh, IDL_IMAGE_MAX_DIM);
            goto done;
        }
        nw = (int)fw, nh = (int)fh;
    } else if (p->resize_w) {
        nw = p->resize_w, nh = p->resize_h;
    }
    if (nw != cur->width || nh != cur->height) {
        st = idl_image_resize(cur, nw, nh, p->mode, &next);
        if (st) goto done;
        idl_image_free(owned);
        cur = owned = next, next = NULL;
    }

    /* centre crop */
    if (p->crop_w) {
        if (p->crop_w > cur->width || p->crop_h > cur->height) {
            st = idl__error(
                IDL_ERR_INVALID_ARG, PIPE_FN ": crop %d x %d is larger than the %s image (%d x %d)",
                p->crop_w, p->crop_h, (p->resize_short || p->resize_w) ? "resized" : "input",
                cur->width, cur->height);
            goto done;
        }
        if (p->crop_w != cur->width || p->crop_h != cur->height) {
            st = idl_image_crop(cur, (cur->width - p->crop_w) / 2, (cur->height - p->crop_h) / 2,
                                p->crop_w, p->crop_h, &next);
            if (st) goto done;
            idl_image_free(owned);
            cur = owned = next, next = NULL;
        }
    }

    /* normalise: one table of 256 values per colour */
    {
        const int C = cur->channels, H = cur->height, W = cur->width;
        float lut[3][256];
        for (int c = 0; c < C; c++)
            for (int v = 0; v < 256; v++)
                lut[c][v] = (float)(((double)v * (double)p->scale - (double)p->mean[c]) /
                                    (double)p->std[c]);
        int64_t shape[4] = { 1, C, H, W };
        if (p->nhwc) shape[1] = H, shape[2] = W, shape[3] = C;
        st = idl_tensor_new(IDL_DT_F32, 4, shape, out);
        if (st) goto done;
        float *o = (*out)->data;
        const size_t hw = (size_t)H * (size_t)W;
        const uint8_t *px = cur->data;
        for (int k = 0; k < C; k++) {
            int c = p->bgr ? C - 1 - k : k; /* the colour tensor channel k holds */
            if (p->nhwc)
                for (size_t i = 0; i < hw; i++)
                    o[i * (size_t)C + (size_t)k] = lut[c][px[i * (size_t)C + (size_t)c]];
            else
                for (size_t i = 0; i < hw; i++)
                    o[(size_t)k * hw + i] = lut[c][px[i * (size_t)C + (size_t)c]];
        }
    }
    if (shown) {
        if (owned)
            *shown = owned, owned = NULL;
        else
            st = idl_image_convert(cur, cur->channels, shown); /* a copy of the input */
        if (st) {
            idl_tensor_free(*out);
            *out = NULL;
        }
    }
done:
    idl_image_free(owned);
    idl_image_free(next);
    return st;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON                                                                                       */

typedef struct jbuf {
    char *buf;
    size_t cap, len;
} jbuf;

static void IDL__PRINTF(2, 3) jprintf(jbuf *j, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char *dst = j->len < j->cap ? j->buf + j->len : NULL;
    size_t room = j->len < j->cap ? j->cap - j->len : 0;
    int n = vsnprintf(dst, room, fmt, ap);
    va_end(ap);
    if (n > 0) j->len += (size_t)n;
}

/* The shortest of %.6g .. %.9g that reads back as the same float; null when not finite. */
static void jfloat(jbuf *j, float v) {
    if (!isfinite(v)) {
        jprintf(j, "null");
        return;
    }
    char t[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(t, sizeof t, "%.*g", prec, (double)v);
        if (strtof(t, NULL) == v) break;
    }
    jprintf(j, "%s", t);
}

static void jfloats(jbuf *j, const float *v, int n) {
    jprintf(j, "[");
    for (int i = 0; i < n; i++) {
        if (i) jprintf(j, ",");
        jfloat(j, v[i]);
    }
    jprintf(j, "]");
}

size_t idl_preprocess_json(const idl_preprocess *p, char *buf, size_t cap) {
    jbuf j = { buf, buf ? cap : 0, 0 };
    if (j.cap) buf[0] = 0;
    if (!p) {
        jprintf(&j, "null");
        return j.len;
    }
    int C = p->channels >= 1 && p->channels <= 4 ? p->channels : 3;
    const char *mode = mode_name(p->mode);
    jprintf(&j, "{\"channels\":%d,\"resize_short\":", p->channels);
    if (p->resize_short)
        jprintf(&j, "%d", p->resize_short);
    else
        jprintf(&j, "null");
    if (p->resize_w || p->resize_h)
        jprintf(&j, ",\"resize\":[%d,%d]", p->resize_w, p->resize_h);
    else
        jprintf(&j, ",\"resize\":null");
    if (p->crop_w || p->crop_h)
        jprintf(&j, ",\"crop\":[%d,%d]", p->crop_w, p->crop_h);
    else
        jprintf(&j, ",\"crop\":null");
    jprintf(&j, ",\"mode\":\"%s\",\"scale\":", mode ? mode : "invalid");
    jfloat(&j, p->scale);
    jprintf(&j, ",\"mean\":");
    jfloats(&j, p->mean, C);
    jprintf(&j, ",\"std\":");
    jfloats(&j, p->std, C);
    jprintf(&j, ",\"order\":\"%s\",\"layout\":\"%s\"}", p->bgr ? "BGR" : "RGB",
            p->nhwc ? "NHWC" : "NCHW");
    return j.len;
}

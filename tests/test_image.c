/* test_image.c — images in (src/data): decoding against Pillow's pixels (exact for PNG, within a
 * measured bound for JPEG), channel conversion against Pillow's convert("L"), resizing against
 * cv2.resize (INTER_LINEAR, INTER_NEAREST) and Pillow's BILINEAR, crops, the preprocessing
 * pipeline against InterpretDL's read_image + preprocess_image, its NHWC / BGR / gray / custom
 * variants by invariants, the spec parser and JSON, PNG round trips, and robustness: missing,
 * empty, truncated, garbage and oversized inputs, JPEG / PNG files that break Debian's
 * stb_image 2.27 (refused or defused in src/data), bad arguments, and an out-of-memory sweep.
 * The references are written by tests/reference/make_images.py into tests/data/images; the test
 * runs from the repository root. */
#define _DEFAULT_SOURCE
#include "interpretdl/image.h"
#include "interpretdl/interpretdl.h"

#include "harness.h"

#include <limits.h>
#include <stdint.h>
#include <unistd.h>

#define DIR "tests/data/images/"

/* stb_image and libjpeg-turbo (Pillow) decode the same JPEG with different IDCT and chroma
 * upsampling: measured on rgb.jpg (4:2:0) max 3, mean 0.081; gray.jpg max 1, mean 0.010. */
#define JPEG_MAX_DIFF  4
#define JPEG_MEAN_DIFF 0.25

static unsigned char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return b;
}

static idl_tensor *npy(const char *name) {
    return th_load_npy(DIR, name);
}

static idl_image *load(const char *name, int channels) {
    char path[256];
    snprintf(path, sizeof path, DIR "%s", name);
    idl_image *img = NULL;
    CHECK_OK(idl_image_load(path, channels, &img));
    return img;
}

/* Compares an image with an (H, W, C) uint8 reference: returns the max abs difference (or 999
 * when the shapes differ) and the number of differing samples and their mean difference. */
static int img_diff(const idl_image *a, const idl_tensor *ref, long *n_diff, double *mean) {
    if (n_diff) *n_diff = 0;
    if (mean) *mean = 0;
    if (!a || !ref || ref->dtype != IDL_DT_U8 || ref->ndim != 3 || ref->shape[0] != a->height ||
        ref->shape[1] != a->width || ref->shape[2] != a->channels) {
        if (a && ref)
            fprintf(stderr, "shape: image %dx%dx%d, reference (%lld, %lld, %lld)\n", a->height,
                    a->width, a->channels, (long long)ref->shape[0],
                    (long long)(ref->ndim > 1 ? ref->shape[1] : 0),
                    (long long)(ref->ndim > 2 ? ref->shape[2] : 0));
        return 999;
    }
    const uint8_t *r = ref->data;
    size_t n = (size_t)a->width * a->height * a->channels;
    int mx = 0;
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a->data[i] - (int)r[i]);
        if (d > mx) mx = d;
        if (d && n_diff) (*n_diff)++;
        sum += d;
    }
    if (mean) *mean = sum / (double)n;
    return mx;
}

static bool same_image(const idl_image *a, const idl_image *b) {
    return a && b && a->width == b->width && a->height == b->height && a->channels == b->channels &&
           !memcmp(a->data, b->data, (size_t)a->width * a->height * a->channels);
}

/* ------------------------------------------------------------------------------------------ */

static void test_decode(void) {
    static const struct {
        const char *file;
        int channels;
    } png[] = { { "rgb.png", 3 },     { "gray.png", 1 },  { "rgba.png", 4 },  { "la.png", 4 },
                { "palette.png", 3 }, { "rgb16.png", 3 }, { "gray16.png", 1 } };
    for (size_t k = 0; k < sizeof png / sizeof *png; k++) {
        char ref_name[64];
        snprintf(ref_name, sizeof ref_name, "%s.npy", png[k].file);
        idl_image *img = load(png[k].file, 0);
        idl_tensor *ref = npy(ref_name);
        CHECK(img && img->channels == png[k].channels);
        long nd = 0;
        int d = img_diff(img, ref, &nd, NULL);
        CHECK_MSG(d == 0, "%s: max diff %d, %ld samples differ from Pillow", png[k].file, d, nd);
        idl_image_free(img);
        idl_tensor_free(ref);
    }
    static const char *const jpg[] = { "rgb.jpg", "gray.jpg" };
    for (int k = 0; k < 2; k++) {
        char ref_name[64];
        snprintf(ref_name, sizeof ref_name, "%s.npy", jpg[k]);
        idl_image *img = load(jpg[k], 0);
        idl_tensor *ref = npy(ref_name);
        long nd = 0;
        double mean = 0;
        int d = img_diff(img, ref, &nd, &mean);
        printf("decode %s vs Pillow (libjpeg-turbo): max diff %d, mean %.3f, %ld of %lld samples "
               "differ\n",
               jpg[k], d, mean, nd, ref ? (long long)idl_tensor_numel(ref) : 0LL);
        CHECK_MSG(d <= JPEG_MAX_DIFF && mean <= JPEG_MEAN_DIFF, "%s: max %d mean %.3f", jpg[k], d,
                  mean);
        idl_image_free(img);
        idl_tensor_free(ref);
    }
    /* from memory: the same pixels */
    size_t len = 0;
    unsigned char *bytes = read_all(DIR "rgb.jpg", &len);
    CHECK(bytes != NULL);
    idl_image *a = load("rgb.jpg", 0), *b = NULL;
    CHECK_OK(idl_image_load_mem(bytes, len, 0, &b));
    CHECK(same_image(a, b));
    idl_image_free(a);
    idl_image_free(b);
    free(bytes);
}

static void test_convert(void) {
    /* gray: Pillow's convert("L") */
    idl_image *g = load("rgb.png", 1), *rgb = load("rgb.png", 0), *c = NULL;
    idl_tensor *luma = npy("rgb_luma.npy");
    long nd = 0;
    int d = img_diff(g, luma, &nd, NULL);
    CHECK_MSG(d == 0, "luma vs Pillow convert('L'): max diff %d, %ld differ", d, nd);
    CHECK_OK(idl_image_convert(rgb, 1, &c));
    CHECK(same_image(c, g));
    idl_image_free(c);
    /* RGBA from RGB: alpha 255 */
    idl_image *rgba = load("rgb.png", 4);
    bool ok = rgba && rgb && rgba->channels == 4;
    for (int i = 0; ok && i < rgb->width * rgb->height; i++)
        ok = !memcmp(rgba->data + 4 * i, rgb->data + 3 * i, 3) && rgba->data[4 * i + 3] == 255;
    CHECK(ok);
    /* RGB from RGBA: alpha dropped; gray from RGBA ignores alpha */
    idl_image *a4 = load("rgba.png", 0), *a3 = load("rgba.png", 3), *a1 = load("rgba.png", 1);
    ok = a4 && a3 && a1 && a3->channels == 3 && a1->channels == 1;
    for (int i = 0; ok && i < a4->width * a4->height; i++)
        ok = !memcmp(a3->data + 3 * i, a4->data + 4 * i, 3);
    CHECK(ok);
    CHECK_OK(idl_image_convert(a3, 1, &c));
    CHECK(same_image(c, a1));
    idl_image_free(c);
    /* gray to RGB: replicated; gray + alpha to gray: alpha dropped */
    idl_image *g1 = load("gray.png", 0), *g3 = load("gray.png", 3), *la1 = load("la.png", 1);
    idl_tensor *la = npy("la.png.npy");
    ok = g1 && g3 && g3->channels == 3;
    for (int i = 0; ok && i < g1->width * g1->height; i++)
        ok = g3->data[3 * i] == g1->data[i] && g3->data[3 * i + 1] == g1->data[i] &&
             g3->data[3 * i + 2] == g1->data[i];
    CHECK(ok);
    ok = la1 && la && la1->channels == 1 && la->shape[0] == la1->height;
    for (int i = 0; ok && i < la1->width * la1->height; i++)
        ok = la1->data[i] == ((uint8_t *)la->data)[4 * i];
    CHECK(ok);
    /* the same channel count gives a copy */
    CHECK_OK(idl_image_convert(rgb, 3, &c));
    CHECK(same_image(c, rgb) && c->data != rgb->data);
    idl_image_free(c);
    CHECK(idl_image_convert(rgb, 2, &c) == IDL_ERR_INVALID_ARG && c == NULL);
    idl_image *objs[] = { g, rgb, rgba, a4, a3, a1, g1, g3, la1 };
    for (size_t i = 0; i < sizeof objs / sizeof *objs; i++)
        idl_image_free(objs[i]);
    idl_tensor_free(luma);
    idl_tensor_free(la);
}

static void test_resize(void) {
    FILE *f = fopen(DIR "resize.txt", "r");
    CHECK(f != NULL);
    if (!f) return;
    char src[64], mode[32], file[128];
    int w, h, cases = 0, exact = 0, worst = 0;
    while (fscanf(f, "%63s %31s %d %d %127s", src, mode, &w, &h, file) == 5) {
        idl_resize_mode m = !strcmp(mode, "linear")    ? IDL_RESIZE_BILINEAR
                            : !strcmp(mode, "nearest") ? IDL_RESIZE_NEAREST
                                                       : IDL_RESIZE_ANTIALIAS;
        idl_image *s = load(src, 0), *r = NULL;
        idl_tensor *ref = npy(file);
        CHECK_OK(idl_image_resize(s, w, h, m, &r));
        long nd = 0;
        int d = img_diff(r, ref, &nd, NULL);
        long n = (long)w * h * (s ? s->channels : 1);
        CHECK_MSG(d <= 1 && nd * 100 <= n, "%s: max diff %d, %ld of %ld samples differ", file, d,
                  nd, n);
        cases++;
        exact += d == 0;
        if (d > worst) worst = d;
        idl_image_free(s);
        idl_image_free(r);
        idl_tensor_free(ref);
    }
    fclose(f);
    printf("resize vs cv2.resize / Pillow: %d cases, %d bit-exact, max diff %d\n", cases, exact,
           worst);
    CHECK(cases >= 10);
    /* same size: a copy */
    idl_image *s = load("rgb.png", 0), *r = NULL;
    CHECK_OK(idl_image_resize(s, s->width, s->height, IDL_RESIZE_ANTIALIAS, &r));
    CHECK(same_image(s, r));
    idl_image_free(r);
    /* a constant image stays constant in every mode */
    idl_image *k = NULL;
    CHECK_OK(idl_image_new(13, 7, 3, &k));
    memset(k->data, 200, 13 * 7 * 3);
    for (int mo = 0; mo < 3; mo++) {
        CHECK_OK(idl_image_resize(k, 29, 3, (idl_resize_mode)mo, &r));
        bool ok = r != NULL;
        for (int i = 0; ok && i < 29 * 3 * 3; i++)
            ok = r->data[i] == 200;
        CHECK_MSG(ok, "mode %d changes a constant image", mo);
        idl_image_free(r);
    }
    idl_image_free(k);
    /* bad arguments */
    CHECK(idl_image_resize(s, 0, 5, IDL_RESIZE_BILINEAR, &r) == IDL_ERR_INVALID_ARG && !r);
    CHECK(idl_image_resize(s, 5, IDL_IMAGE_MAX_DIM + 1, IDL_RESIZE_BILINEAR, &r) ==
          IDL_ERR_INVALID_ARG);
    CHECK(idl_image_resize(s, 5, 5, (idl_resize_mode)7, &r) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_resize(NULL, 5, 5, IDL_RESIZE_BILINEAR, &r) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_resize(s, 5, 5, IDL_RESIZE_BILINEAR, NULL) == IDL_ERR_INVALID_ARG);
    idl_image bogus = { 4, 4, 2, s->data };
    CHECK(idl_image_resize(&bogus, 5, 5, IDL_RESIZE_BILINEAR, &r) == IDL_ERR_INVALID_ARG);
    idl_image_free(s);
}

static void test_crop(void) {
    idl_image *s = load("rgb.png", 0), *c = NULL;
    if (!s) return;
    CHECK_OK(idl_image_crop(s, 5, 7, 20, 11, &c));
    bool ok = c && c->width == 20 && c->height == 11 && c->channels == 3;
    for (int y = 0; ok && y < 11; y++)
        ok = !memcmp(c->data + y * 20 * 3, s->data + ((y + 7) * s->width + 5) * 3, 20 * 3);
    CHECK(ok);
    idl_image_free(c);
    CHECK_OK(idl_image_crop(s, 0, 0, s->width, s->height, &c));
    CHECK(same_image(c, s));
    idl_image_free(c);
    CHECK_OK(idl_image_crop(s, s->width - 1, s->height - 1, 1, 1, &c));
    CHECK(c && !memcmp(c->data, s->data + ((size_t)s->width * s->height - 1) * 3, 3));
    idl_image_free(c);
    const int bad[][4] = { { -1, 0, 5, 5 },  { 0, -1, 5, 5 },           { 0, 0, 0, 5 },
                           { 0, 0, 5, 0 },   { 76, 0, 5, 5 },           { 0, 56, 5, 5 },
                           { 0, 0, 81, 60 }, { INT_MAX, 0, INT_MAX, 1 } };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        c = (idl_image *)1;
        idl_status st = idl_image_crop(s, bad[k][0], bad[k][1], bad[k][2], bad[k][3], &c);
        CHECK_MSG(st == IDL_ERR_INVALID_ARG && c == NULL, "crop %d %d %d %d: status %d", bad[k][0],
                  bad[k][1], bad[k][2], bad[k][3], (int)st);
    }
    CHECK(strstr(idl_last_error(), "80 x 60") != NULL);
    CHECK(idl_image_crop(NULL, 0, 0, 1, 1, &c) == IDL_ERR_INVALID_ARG);
    idl_image_free(s);
}

/* ------------------------------------------------------------------------------------------ */

static const float IM_STD[3] = { 0.229f, 0.224f, 0.225f };

static void test_pipeline(void) {
    idl_image *img = load("rgb.png", 0), *shown = NULL, *shown2 = NULL;
    idl_tensor *ref = npy("pipeline.npy"), *ref_shown = npy("pipeline_shown.npy");
    idl_tensor *t = NULL, *u = NULL;
    idl_preprocess p;
    CHECK_OK(idl_preprocess_parse("imagenet,resize=64,crop=56", &p));
    CHECK_OK(idl_preprocess_image(img, &p, &t, &shown));
    CHECK(t && t->ndim == 4 && t->shape[0] == 1 && t->shape[1] == 3 && t->shape[2] == 56 &&
          t->shape[3] == 56 && t->dtype == IDL_DT_F32);
    long nd = 0;
    int d = img_diff(shown, ref_shown, &nd, NULL);
    CHECK_MSG(d == 0, "pipeline 8-bit crop: max diff %d, %ld differ", d, nd);
    if (t && ref && idl_tensor_numel(t) == idl_tensor_numel(ref)) {
        const float *a = t->data, *b = ref->data;
        double mx = 0;
        for (int64_t i = 0; i < idl_tensor_numel(t); i++)
            mx = fmax(mx, fabs((double)a[i] - (double)b[i]));
        printf("pipeline vs InterpretDL read_image + preprocess_image: max diff %.3g\n", mx);
        th_allclose("pipeline", a, b, idl_tensor_numel(t), 0, 1.0 / 255 / (double)IM_STD[0]);
    } else {
        CHECK(!"pipeline shape");
    }

    /* NHWC is the transpose; BGR reverses the channels; both together */
    const char *const variants[] = { "imagenet,resize=64,crop=56,nhwc",
                                     "imagenet,resize=64,crop=56,bgr",
                                     "imagenet,resize=64,crop=56,bgr,nhwc" };
    for (int v = 0; v < 3 && t; v++) {
        CHECK_OK(idl_preprocess_parse(variants[v], &p));
        CHECK_OK(idl_preprocess_image(img, &p, &u, &shown2));
        CHECK(same_image(shown, shown2)); /* the picture stays RGB */
        bool ok = u && u->ndim == 4;
        int nhwc = v != 1, bgr = v != 0;
        if (ok)
            ok = nhwc ? (u->shape[1] == 56 && u->shape[2] == 56 && u->shape[3] == 3)
                      : (u->shape[1] == 3 && u->shape[2] == 56 && u->shape[3] == 56);
        const float *a = t->data;
        for (int c = 0; ok && c < 3; c++)
            for (int i = 0; ok && i < 56 * 56; i++) {
                int k = bgr ? 2 - c : c; /* channel of u holding colour c */
                float x = nhwc ? ((float *)u->data)[i * 3 + k] : ((float *)u->data)[k * 3136 + i];
                ok = x == a[c * 3136 + i];
            }
        CHECK_MSG(ok, "variant %s", variants[v]);
        idl_tensor_free(u);
        idl_image_free(shown2);
        u = NULL, shown2 = NULL;
    }

    /* gray, exact size (the demo's settings): values are the gray picture / 255 */
    CHECK_OK(idl_preprocess_parse("scale,size=28x28,channels=1", &p));
    CHECK_OK(idl_preprocess_image(img, &p, &u, &shown2));
    idl_image *g = NULL, *gr = NULL;
    CHECK_OK(idl_image_convert(img, 1, &g));
    CHECK_OK(idl_image_resize(g, 28, 28, IDL_RESIZE_BILINEAR, &gr));
    CHECK(same_image(gr, shown2));
    bool ok = u && u->shape[1] == 1 && u->shape[2] == 28 && u->shape[3] == 28 && shown2;
    for (int i = 0; ok && i < 28 * 28; i++)
        ok = fabsf(((float *)u->data)[i] - shown2->data[i] / 255.0f) < 1e-6f;
    CHECK(ok);
    idl_tensor_free(u);
    idl_image_free(shown2);
    idl_image_free(g);
    idl_image_free(gr);

    /* "none": the pixels; mean/std 0.5: [-1, 1]; antialias and nearest reach the resize */
    CHECK_OK(idl_preprocess_parse("none", &p));
    CHECK_OK(idl_preprocess_image(img, &p, &u, &shown2));
    CHECK(same_image(shown2, img) && shown2->data != img->data);
    idl_image_free(shown2);
    shown2 = NULL;
    ok = u && u->shape[2] == img->height && u->shape[3] == img->width;
    for (int c = 0; ok && c < 3; c++)
        for (int i = 0; ok && i < img->width * img->height; i++)
            ok = ((float *)u->data)[c * img->width * img->height + i] == img->data[i * 3 + c];
    CHECK(ok);
    idl_tensor_free(u);
    CHECK_OK(idl_preprocess_parse("mean=0.5,std=0.5", &p));
    CHECK_OK(idl_preprocess_image(img, &p, &u, NULL));
    ok = u != NULL;
    for (int i = 0; ok && i < img->width * img->height; i++) {
        float x = ((float *)u->data)[i], want = (img->data[3 * i] / 255.0f - 0.5f) / 0.5f;
        ok = fabsf(x - want) < 1e-6f;
    }
    CHECK(ok);
    idl_tensor_free(u);
    idl_tensor *aa = npy("resize_rgb_antialias_17x13.npy");
    CHECK_OK(idl_preprocess_parse("scale,size=17x13,antialias", &p));
    CHECK_OK(idl_preprocess_image(img, &p, &u, &shown2));
    CHECK(img_diff(shown2, aa, NULL, NULL) == 0);
    idl_tensor_free(u);
    idl_tensor_free(aa);
    idl_image_free(shown2);
    aa = npy("resize_rgb_nearest_41x29.npy");
    CHECK_OK(idl_preprocess_parse("scale,size=41x29,nearest", &p));
    CHECK_OK(idl_preprocess_image(img, &p, &u, &shown2));
    CHECK(img_diff(shown2, aa, NULL, NULL) == 0);
    idl_tensor_free(u);
    idl_tensor_free(aa);
    idl_image_free(shown2);
    u = NULL, shown2 = NULL;

    /* Python 3 round: 181 x 128 with the short side to 64 is 90.5 x 64 -> 90 (half to even),
     * 183 -> 91.5 -> 92, 185 -> 92.5 -> 92 */
    const int widths[3] = { 181, 183, 185 }, want[3] = { 90, 92, 92 };
    for (int k = 0; k < 3; k++) {
        idl_image *big = NULL;
        CHECK_OK(idl_image_new(widths[k], 128, 3, &big));
        CHECK_OK(idl_preprocess_parse("scale,resize=64", &p));
        CHECK_OK(idl_preprocess_image(big, &p, &u, &shown2));
        CHECK_MSG(shown2 && shown2->width == want[k] && shown2->height == 64,
                  "%d x 128 -> %d x %d, expected %d x 64", widths[k], shown2 ? shown2->width : 0,
                  shown2 ? shown2->height : 0, want[k]);
        idl_tensor_free(u);
        idl_image_free(shown2);
        idl_image_free(big);
        u = NULL, shown2 = NULL;
    }

    /* errors: a crop larger than the image, bad settings */
    CHECK_OK(idl_preprocess_parse("imagenet,resize=64,crop=100", &p));
    CHECK(idl_preprocess_image(img, &p, &u, &shown2) == IDL_ERR_INVALID_ARG && !u && !shown2);
    CHECK(strstr(idl_last_error(), "crop 100 x 100") != NULL);
    CHECK_OK(idl_preprocess_preset("imagenet", &p));
    p.std[1] = 0;
    CHECK(idl_preprocess_image(img, &p, &u, NULL) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "std[1]") != NULL);
    p.std[1] = 1, p.channels = 2;
    CHECK(idl_preprocess_image(img, &p, &u, NULL) == IDL_ERR_INVALID_ARG);
    p.channels = 3, p.resize_w = 10; /* resize_h missing */
    CHECK(idl_preprocess_image(img, &p, &u, NULL) == IDL_ERR_INVALID_ARG);
    p.resize_w = 0;
    CHECK(idl_preprocess_image(NULL, &p, &u, NULL) == IDL_ERR_INVALID_ARG);
    idl_image bogus = { 5, 5, 2, img->data };
    CHECK(idl_preprocess_image(&bogus, &p, &u, NULL) == IDL_ERR_INVALID_ARG);
    bogus.channels = 3, bogus.width = IDL_IMAGE_MAX_DIM + 1;
    CHECK(idl_preprocess_image(&bogus, &p, &u, NULL) == IDL_ERR_INVALID_ARG);
    CHECK(idl_preprocess_image(img, NULL, &u, NULL) == IDL_ERR_INVALID_ARG);
    CHECK(idl_preprocess_image(img, &p, NULL, NULL) == IDL_ERR_INVALID_ARG);

    idl_tensor_free(t);
    idl_tensor_free(ref);
    idl_tensor_free(ref_shown);
    idl_image_free(shown);
    idl_image_free(img);
}

static void test_parse_and_json(void) {
    idl_preprocess p;
    CHECK_OK(idl_preprocess_parse("imagenet,resize=256,crop=224", &p));
    CHECK(p.channels == 3 && p.resize_short == 256 && p.resize_w == 0 && p.crop_w == 224 &&
          p.crop_h == 224 && p.mode == IDL_RESIZE_BILINEAR && !p.bgr && !p.nhwc);
    CHECK(p.mean[0] == 0.485f && p.mean[2] == 0.406f && p.std[1] == 0.224f &&
          p.scale == 1.0f / 255.0f);
    char json[512];
    size_t n = idl_preprocess_json(&p, json, sizeof json);
    printf("json: %s\n", json);
    CHECK(n == strlen(json));
    const char *const keys[] = { "\"channels\":3",
                                 "\"resize_short\":256",
                                 "\"resize\":null",
                                 "\"crop\":[224,224]",
                                 "\"mode\":\"bilinear\"",
                                 "\"scale\":0.003921569",
                                 "\"mean\":[0.485,0.456,0.406]",
                                 "\"std\":[0.229,0.224,0.225]",
                                 "\"order\":\"RGB\"",
                                 "\"layout\":\"NCHW\"" };
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++)
        CHECK_MSG(strstr(json, keys[k]) != NULL, "json lacks %s", keys[k]);
    CHECK(json[0] == '{' && json[n - 1] == '}');
    /* the length without a buffer, truncation with a small one */
    CHECK(idl_preprocess_json(&p, NULL, 0) == n);
    char small[10];
    CHECK(idl_preprocess_json(&p, small, sizeof small) == n);
    CHECK(strlen(small) == sizeof small - 1 && !strncmp(small, json, sizeof small - 1));

    CHECK_OK(idl_preprocess_parse("scale,size=28x28,channels=1", &p));
    CHECK(p.channels == 1 && p.resize_w == 28 && p.resize_h == 28 && p.resize_short == 0 &&
          p.scale == 1.0f / 255.0f && p.mean[0] == 0 && p.std[0] == 1);
    n = idl_preprocess_json(&p, json, sizeof json);
    CHECK(strstr(json, "\"resize\":[28,28]") && strstr(json, "\"mean\":[0]") &&
          strstr(json, "\"channels\":1"));
    CHECK_OK(idl_preprocess_parse("mean=0.5,0.5,0.5,std=0.5,0.5,0.5", &p));
    CHECK(p.mean[1] == 0.5f && p.std[2] == 0.5f);
    CHECK_OK(idl_preprocess_parse(" bgr , nhwc, antialias, crop=30x20 ,scale=1/127.5,mean=1", &p));
    CHECK(p.bgr && p.nhwc && p.mode == IDL_RESIZE_ANTIALIAS && p.crop_w == 30 && p.crop_h == 20 &&
          fabsf(p.scale - 1 / 127.5f) < 1e-9f && p.mean[0] == 1 && p.mean[2] == 1);
    idl_preprocess_json(&p, json, sizeof json);
    CHECK(strstr(json, "\"order\":\"BGR\"") && strstr(json, "\"layout\":\"NHWC\"") &&
          strstr(json, "\"mode\":\"antialias\"") && strstr(json, "\"crop\":[30,20]"));
    CHECK_OK(idl_preprocess_parse("nearest,resize=32x48", &p));
    CHECK(p.mode == IDL_RESIZE_NEAREST && p.resize_w == 32 && p.resize_h == 48);
    CHECK_OK(idl_preprocess_parse("", &p));
    CHECK(p.channels == 3 && p.scale == 1.0f / 255.0f && p.std[0] == 1);
    CHECK_OK(idl_preprocess_preset("none", &p));
    CHECK(p.scale == 1.0f && p.resize_short == 0 && p.crop_w == 0);
    CHECK(idl_preprocess_preset("imagenett", &p) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "imagenett") != NULL);

    /* bad specifications: the message names the item */
    const char *const bad[][2] = {
        { "foo", "'foo'" },
        { "imagenet,resize=abc", "'resize=abc'" },
        { "crop=0", "'crop=0'" },
        { "crop=10x", "'crop=10x'" },
        { "size=20000x10", "'size=20000x10'" },
        { "channels=2", "'channels=2'" },
        { "mean=0.5,0.5", "mean=" },
        { "std=0", "std=" },
        { "scale=abc", "'scale=abc'" },
        { "scale=1/0", "'scale=1/0'" },
        { "0.5", "'0.5'" },
        { "imagenet,,crop=3", "empty item" },
        { "imagnet", "imagenet" }, /* did you mean */
        { "mode=cubic", "'mode=cubic'" },
        { "mean=1,2,3,4,5", "'5'" },
        { "resize=-3", "'resize=-3'" },
        { "colour=red", "'colour=red'" },
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        idl_status st = idl_preprocess_parse(bad[k][0], &p);
        CHECK_MSG(st == IDL_ERR_INVALID_ARG && strstr(idl_last_error(), bad[k][1]),
                  "spec \"%s\": status %d, message \"%s\"", bad[k][0], (int)st, idl_last_error());
    }
    CHECK(idl_preprocess_parse(NULL, &p) == IDL_ERR_INVALID_ARG);
    CHECK(idl_preprocess_parse("imagenet", NULL) == IDL_ERR_INVALID_ARG);
}

/* ------------------------------------------------------------------------------------------ */

static void test_save_png(void) {
    char dir[] = "/tmp/idl_image_XXXXXX", path[300];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/out.png", dir);
    static const char *const files[] = { "rgb.png", "gray.png", "rgba.png" };
    for (int k = 0; k < 3; k++) {
        idl_image *a = load(files[k], 0), *b = NULL;
        CHECK_OK(idl_image_save_png(path, a));
        CHECK_OK(idl_image_load(path, 0, &b));
        CHECK_MSG(same_image(a, b), "%s round trip", files[k]);
        idl_image_free(a);
        idl_image_free(b);
    }
    /* the largest side accepted, and one more */
    idl_image *wide = NULL, *back = NULL;
    CHECK_OK(idl_image_new(IDL_IMAGE_MAX_DIM, 1, 1, &wide));
    for (int i = 0; wide && i < IDL_IMAGE_MAX_DIM; i++)
        wide->data[i] = (uint8_t)(i * 7);
    CHECK_OK(idl_image_save_png(path, wide));
    CHECK_OK(idl_image_load(path, 0, &back));
    CHECK(same_image(wide, back));
    idl_image_free(back);
    idl_image_free(wide);
    CHECK(idl_image_new(IDL_IMAGE_MAX_DIM + 1, 1, 1, &wide) == IDL_ERR_INVALID_ARG && !wide);
    /* errors */
    idl_image *a = load("gray.png", 0);
    CHECK(idl_image_save_png("/nonexistent/dir/x.png", a) == IDL_ERR_IO);
    CHECK(idl_image_save_png(NULL, a) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_save_png(path, NULL) == IDL_ERR_INVALID_ARG);
    idl_image bad = { 4, 4, 1, NULL };
    CHECK(idl_image_save_png(path, &bad) == IDL_ERR_INVALID_ARG);
    idl_image_free(a);
    unlink(path);
    rmdir(dir);
}

/* ------------------------------------------------------------------------------------------ */

static size_t g_max_alloc;
static long g_allocs, g_fail_at;
static void *count_malloc(size_t n, void *user) {
    (void)user;
    if (n > g_max_alloc) g_max_alloc = n;
    if (g_fail_at >= 0 && g_allocs++ >= g_fail_at) return NULL;
    return malloc(n);
}
static void count_free(void *p, void *user) {
    (void)user;
    free(p);
}

/* An allocator whose fresh memory is all 0xFF, to expose reads of memory a decoder never
 * wrote (0xFF makes stb_image's Huffman lookups take their slow path with offsets of -1). */
static void *poison_malloc(size_t n, void *user) {
    (void)user;
    void *p = malloc(n);
    if (p) memset(p, 0xFF, n);
    return p;
}

static void put32be(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8),
    p[3] = (uint8_t)v;
}

static void test_robust(void) {
    idl_image *img = (idl_image *)1;
    /* missing file, empty file, empty buffer */
    CHECK(idl_image_load("tests/data/images/no_such_file.png", 0, &img) == IDL_ERR_IO && !img);
    CHECK(strstr(idl_last_error(), "no_such_file.png") != NULL);
    char dir[] = "/tmp/idl_image_XXXXXX", path[300];
    CHECK(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/empty.png", dir);
    FILE *f = fopen(path, "wb");
    if (f) fclose(f);
    CHECK(idl_image_load(path, 0, &img) == IDL_ERR_PARSE && !img);
    CHECK(strstr(idl_last_error(), "empty") != NULL);
    unlink(path);
    rmdir(dir);
    CHECK(idl_image_load_mem("", 0, 0, &img) == IDL_ERR_PARSE);
    CHECK(idl_image_load_mem(NULL, 10, 0, &img) == IDL_ERR_INVALID_ARG);

    /* truncated PNG and JPEG: every prefix length tried is refused */
    static const char *const files[] = { "rgb.png", "rgb.jpg", "gray.jpg", "rgba.png" };
    for (int k = 0; k < 4; k++) {
        char p2[128];
        snprintf(p2, sizeof p2, DIR "%s", files[k]);
        size_t len = 0;
        unsigned char *b = read_all(p2, &len);
        CHECK(b != NULL && len > 200);
        if (!b) continue;
        /* PNG: a cut inside the final 12-byte IEND chunk leaves every pixel readable (and is
         * accepted); cut 13 bytes, into the last IDAT chunk's CRC. JPEG: lose the EOI marker. */
        bool is_png = strstr(files[k], ".png") != NULL;
        const size_t cuts[] = {
            1, 4, 8, 20, 33, 60, 120, len / 3, len / 2, len - 40, len - (is_png ? 13 : 2)
        };
        for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++) {
            img = (idl_image *)1;
            idl_status st = idl_image_load_mem(b, cuts[c], 0, &img);
            CHECK_MSG((st == IDL_ERR_PARSE || st == IDL_ERR_UNSUPPORTED) && img == NULL,
                      "%s cut to %zu of %zu bytes: status %d", files[k], cuts[c], len, (int)st);
            if (cuts[c] >= 120)
                CHECK_MSG(st == IDL_ERR_PARSE, "%s cut to %zu: %s", files[k], cuts[c],
                          idl_last_error());
        }
        if (k == 1) printf("truncated JPEG: %s\n", idl_last_error());
        /* a flipped byte never crashes (a flipped size byte gives INVALID_ARG: too large) */
        for (size_t i = 16; i < len; i += len / 23) {
            b[i] ^= 0x5A;
            img = NULL;
            idl_status st = idl_image_load_mem(b, len, 0, &img);
            CHECK_MSG(st == IDL_OK || st == IDL_ERR_PARSE || st == IDL_ERR_UNSUPPORTED ||
                          st == IDL_ERR_INVALID_ARG,
                      "%s byte %zu: %d %s", files[k], i, (int)st, idl_last_error());
            CHECK((st == IDL_OK) == (img != NULL));
            idl_image_free(img);
            b[i] ^= 0x5A;
        }
        free(b);
    }

    /* a JPEG Huffman table claiming more than 256 codes (stb_image 2.27 would write past its
     * tables) */
    size_t jl = 0;
    unsigned char *jb0 = read_all(DIR "rgb.jpg", &jl);
    size_t dht = 0;
    for (size_t i = 2; jb0 && i + 5 < jl && !dht; i++)
        if (jb0[i] == 0xFF && jb0[i + 1] == 0xC4) dht = i;
    CHECK(dht > 0);
    if (dht) {
        jb0[dht + 5 + 15] = 200; /* the count of 16-bit codes */
        jb0[dht + 5 + 14] = 200;
        img = (idl_image *)1;
        CHECK(idl_image_load_mem(jb0, jl, 0, &img) == IDL_ERR_PARSE && !img);
        CHECK(strstr(idl_last_error(), "Huffman") != NULL);
    }
    free(jb0);
    /* a scan that uses Huffman tables no DHT segment defined (table 3): stb_image 2.27 then reads
     * the tables' uninitialised memory and indexes far outside them (found by libFuzzer);
     * stb_impl.c zero-fills stb's memory, which this allocator would otherwise leave 0xFF */
    jb0 = read_all(DIR "rgb.jpg", &jl);
    size_t sos = 0;
    for (size_t i = 2; jb0 && i + 10 < jl && !sos; i++)
        if (jb0[i] == 0xFF && jb0[i + 1] == 0xDA) sos = i;
    CHECK(sos > 0);
    if (sos) {
        for (int c = 0; c < jb0[sos + 4]; c++)
            jb0[sos + 6 + 2 * c] = 0x33; /* DC and AC table 3 */
        idl_allocator poison = { poison_malloc, count_free, NULL };
        idl_set_allocator(&poison);
        img = NULL;
        idl_status fz = idl_image_load_mem(jb0, jl, 0, &img);
        idl_set_allocator(NULL);
        CHECK_MSG(fz == IDL_OK || fz == IDL_ERR_PARSE, "undefined Huffman table: %s",
                  idl_last_error());
        idl_image_free(img);
    }
    free(jb0);

    /* a PNG whose first IDAT chunk is empty (stb_image 2.27 would compute NULL + 0) */
    size_t pl = 0;
    unsigned char *pb0 = read_all(DIR "rgb.png", &pl), *pe = malloc(pl + 12);
    size_t idat = 0;
    for (size_t i = 8; pb0 && i + 8 < pl && !idat; i++)
        if (!memcmp(pb0 + i, "IDAT", 4)) idat = i - 4;
    CHECK(idat > 0 && pe != NULL);
    if (idat && pe) {
        memcpy(pe, pb0, idat);
        memcpy(pe + idat, "\0\0\0\0IDAT\x35\xAF\x06\x1E", 12);
        memcpy(pe + idat + 12, pb0 + idat, pl - idat);
        img = (idl_image *)1;
        CHECK(idl_image_load_mem(pe, pl + 12, 0, &img) == IDL_ERR_PARSE && !img);
        CHECK(strstr(idl_last_error(), "empty first IDAT") != NULL);
    }
    free(pb0);
    free(pe);

    /* garbage */
    const char garbage[] = "hello, this is not an image at all; just some text bytes.";
    CHECK(idl_image_load_mem(garbage, sizeof garbage, 0, &img) == IDL_ERR_UNSUPPORTED && !img);
    printf("garbage: %s\n", idl_last_error());

    /* headers claiming huge images: refused before any large allocation */
    uint8_t png[8 + 25 + 12];
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    put32be(png + 8, 13);
    memcpy(png + 12, "IHDR", 4);
    put32be(png + 16, 100000);
    put32be(png + 20, 100000);
    png[24] = 8, png[25] = 2, png[26] = 0, png[27] = 0, png[28] = 0; /* 8-bit RGB */
    put32be(png + 29, 0);                                            /* CRC (not checked) */
    put32be(png + 33, 0);
    memcpy(png + 37, "IDAT", 4);
    put32be(png + 41, 0);
    const uint8_t jpg[] = { 0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x4E, 0x20, 0x4E,
                            0x20, 0x03, 0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11,
                            0x01, 0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00, 0x02, 0x11,
                            0x03, 0x11, 0x00, 0x3F, 0x00, 0xFF, 0xD9 }; /* SOF0 20000 x 20000 */
    idl_allocator al = { count_malloc, count_free, NULL };
    g_fail_at = -1, g_max_alloc = 0;
    idl_set_allocator(&al);
    idl_status st1 = idl_image_load_mem(png, sizeof png, 0, &img);
    idl_status st2 = idl_image_load_mem(jpg, sizeof jpg, 0, &img);
    idl_set_allocator(NULL);
    CHECK_MSG(st1 == IDL_ERR_INVALID_ARG && st2 == IDL_ERR_INVALID_ARG, "png %d, jpeg %d", (int)st1,
              (int)st2);
    CHECK_MSG(g_max_alloc < (1u << 20), "largest allocation %zu bytes", g_max_alloc);
    printf("100000 x 100000 PNG header refused, largest allocation %zu bytes\n", g_max_alloc);
    /* just above the limit */
    put32be(png + 16, IDL_IMAGE_MAX_DIM + 1);
    put32be(png + 20, 1);
    CHECK(idl_image_load_mem(png, sizeof png, 0, &img) == IDL_ERR_INVALID_ARG);

    /* bad arguments */
    CHECK(idl_image_load(DIR "rgb.png", 2, &img) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_load(DIR "rgb.png", 5, &img) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_load(DIR "rgb.png", 0, NULL) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_load(NULL, 0, &img) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_new(0, 5, 3, &img) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_new(5, 5, 2, &img) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_new(5, 5, 3, NULL) == IDL_ERR_INVALID_ARG);
    idl_image_free(NULL);

    /* out of memory at every allocation: an error or success, never a crash or a leak (ASan) */
    size_t plen = 0, jlen = 0;
    unsigned char *pb = read_all(DIR "rgb.png", &plen), *jb = read_all(DIR "rgb.jpg", &jlen);
    idl_image *src = load("rgb.png", 0);
    idl_preprocess pp, pn;
    CHECK_OK(idl_preprocess_parse("imagenet,resize=50,crop=40", &pp));
    CHECK_OK(idl_preprocess_parse("none", &pn));
    char odir[] = "/tmp/idl_image_XXXXXX", opath[300];
    CHECK(mkdtemp(odir) != NULL);
    snprintf(opath, sizeof opath, "%s/oom.png", odir);
    int nomem = 0, ok = 0, other = 0;
    for (int what = 0; what < 7; what++) {
        /* the PNG writer allocates thousands of times: fail a spread of them */
        for (long n = 0; n < 200000; n += what == 6 && n > 40 ? n / 6 : 1) {
            g_allocs = 0, g_fail_at = n;
            idl_set_allocator(&al);
            idl_image *o = NULL, *sh = NULL;
            idl_tensor *t = NULL;
            idl_status st = what == 0   ? idl_image_load_mem(pb, plen, 1, &o)
                            : what == 1 ? idl_image_load_mem(jb, jlen, 0, &o)
                            : what == 2 ? idl_image_resize(src, 33, 21, IDL_RESIZE_BILINEAR, &o)
                            : what == 3 ? idl_image_resize(src, 11, 9, IDL_RESIZE_ANTIALIAS, &o)
                            : what == 4 ? idl_preprocess_image(src, &pp, &t, &sh)
                            : what == 5 ? idl_preprocess_image(src, &pn, &t, &sh)
                                        : idl_image_save_png(opath, src);
            long used = g_allocs;
            idl_set_allocator(NULL);
            if (st == IDL_ERR_NOMEM)
                nomem++;
            else if (st == IDL_OK)
                ok++;
            else
                other++, fprintf(stderr, "oom case %d at %ld: %s\n", what, n, idl_last_error());
            CHECK(st != IDL_OK || o || t || what == 6);
            CHECK(st == IDL_OK || (!o && !t && !sh));
            idl_image_free(o);
            idl_image_free(sh);
            idl_tensor_free(t);
            if (st == IDL_OK && used <= n) break; /* every allocation has been failed once */
        }
    }
    g_fail_at = -1;
    CHECK_MSG(other == 0 && ok == 7 && nomem > 7, "oom sweep: %d ok, %d nomem, %d other", ok, nomem,
              other);
    printf("out-of-memory sweep: %d failures injected, all reported as NOMEM\n", nomem);
    /* the PNG written after the sweep is whole */
    idl_image *back = NULL;
    CHECK_OK(idl_image_load(opath, 0, &back));
    CHECK(same_image(back, src));
    idl_image_free(back);
    unlink(opath);
    rmdir(odir);
    free(pb);
    free(jb);
    idl_image_free(src);
}

int main(void) {
    test_decode();
    test_convert();
    test_resize();
    test_crop();
    test_pipeline();
    test_parse_and_json();
    test_save_png();
    test_robust();
    TEST_SUMMARY();
}

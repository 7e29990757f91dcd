/* test_visual.c — pictures out (src/visual): colormap colours against cv2.applyColorMap (JET) and
 * matplotlib (viridis, inferno, bwr); the channel reductions against numpy; the float32 map
 * resize against cv2.resize; every overlay style against InterpretDL's visualiser formulas in
 * numpy + cv2, pixel for pixel (all exact: no tolerance is needed anywhere); invariants (constant
 * maps, alpha extremes, gray and RGBA inputs, grid arithmetic, centring, labels changing pixels
 * only in the label bands); errors; an out-of-memory sweep. The references are written by
 * tests/reference/make_visual.py into tests/data/visual; the test runs from the repository root. */
#include "interpretdl/image.h"
#include "interpretdl/interpretdl.h"
#include "interpretdl/visual.h"
#include "visual/visual_internal.h"

#include "harness.h"

#include <stdint.h>
#include <string.h>

#define DIR "tests/data/visual/"

static idl_tensor *npy(const char *name) {
    return th_load_npy(DIR, name);
}

/* An idl_image from an (H, W, C) uint8 .npy. */
static idl_image *npy_image(const char *name) {
    idl_tensor *t = npy(name);
    if (!t) return NULL;
    idl_image *img = NULL;
    if (t->dtype != IDL_DT_U8 || t->ndim != 3) {
        fprintf(stderr, "%s: expected (H, W, C) uint8\n", name);
        th_failed++;
    } else if (idl_image_new((int)t->shape[1], (int)t->shape[0], (int)t->shape[2], &img) ==
               IDL_OK) {
        memcpy(img->data, t->data, (size_t)idl_tensor_numel(t));
    }
    idl_tensor_free(t);
    return img;
}

/* Compares an RGB picture with an (H, W, 3) uint8 reference; prints the mismatches. */
static void check_pixels(const char *label, const idl_image *got, const idl_tensor *want) {
    if (!got || !want) {
        CHECK_MSG(0, "%s: missing picture or reference", label);
        return;
    }
    if (want->ndim != 3 || got->height != want->shape[0] || got->width != want->shape[1] ||
        got->channels != 3 || want->shape[2] != 3) {
        CHECK_MSG(0, "%s: %d x %d x %d vs reference %lld x %lld x %lld", label, got->height,
                  got->width, got->channels, (long long)want->shape[0], (long long)want->shape[1],
                  (long long)want->shape[2]);
        return;
    }
    const uint8_t *w = want->data;
    size_t n = (size_t)got->width * (size_t)got->height * 3, bad = 0, first = 0;
    int maxd = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)got->data[i] - (int)w[i]);
        if (d && !bad++) first = i;
        maxd = d > maxd ? d : maxd;
    }
    CHECK_MSG(
        bad == 0, "%s: %zu of %zu bytes differ (max %d); first at pixel %zu channel %zu: %d vs %d",
        label, bad, n, maxd, first / 3, first % 3, bad ? got->data[first] : 0, bad ? w[first] : 0);
}

/* ---------------------------------------------------------------------------------------- */

static void test_colormaps(void) {
    idl_tensor *v = npy("cmap_values.npy");
    const char *names[] = { "jet", "viridis", "inferno", "bwr" };
    idl_colormap ids[] = { IDL_CMAP_JET, IDL_CMAP_VIRIDIS, IDL_CMAP_INFERNO, IDL_CMAP_BWR };
    for (int m = 0; m < 4 && v; m++) {
        char file[64];
        snprintf(file, sizeof file, "cmap_%s.npy", names[m]);
        idl_tensor *ref = npy(file);
        if (!ref) continue;
        const float *vals = v->data;
        const uint8_t *want = ref->data;
        int64_t n = v->shape[0], bad = 0;
        for (int64_t i = 0; i < n; i++) {
            uint8_t rgb[3];
            idl_colormap_rgb(ids[m], vals[i], rgb);
            if (memcmp(rgb, want + i * 3, 3) && !bad++)
                fprintf(stderr, "%s(%.9g): %d %d %d vs %d %d %d\n", names[m], (double)vals[i],
                        rgb[0], rgb[1], rgb[2], want[i * 3], want[i * 3 + 1], want[i * 3 + 2]);
        }
        CHECK_MSG(bad == 0, "colormap %s: %lld of %lld colours differ", names[m], (long long)bad,
                  (long long)n);
        idl_tensor_free(ref);
    }
    idl_tensor_free(v);

    /* GRAY is the byte ramp (uint8)(255 v); values are clamped; NaN is 0 */
    uint8_t c[3];
    idl_colormap_rgb(IDL_CMAP_GRAY, 0.5f, c);
    CHECK(c[0] == 127 && c[1] == 127 && c[2] == 127);
    idl_colormap_rgb(IDL_CMAP_GRAY, 2.f, c);
    CHECK(c[0] == 255);
    idl_colormap_rgb(IDL_CMAP_JET, -3.f, c);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 128);
    idl_colormap_rgb(IDL_CMAP_JET, NAN, c);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 128);
    idl_colormap_rgb(IDL_CMAP_BWR, 1.5f, c);
    CHECK(c[0] == 255 && c[1] == 0 && c[2] == 0); /* matplotlib bwr's last entry */
    idl_colormap_rgb((idl_colormap)99, 0.5f, c);
    CHECK(c[0] == 0 && c[1] == 0 && c[2] == 0);
    idl_colormap_rgb(IDL_CMAP_JET, 0.5f, NULL); /* no crash */

    idl_colormap cm = IDL_CMAP_JET;
    CHECK_OK(idl_colormap_parse("inferno", &cm));
    CHECK(cm == IDL_CMAP_INFERNO);
    CHECK_OK(idl_colormap_parse("gray", &cm));
    CHECK(cm == IDL_CMAP_GRAY);
    CHECK(idl_colormap_parse("virdis", &cm) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "'virdis'") && strstr(idl_last_error(), "viridis"));
    CHECK(idl_colormap_parse(NULL, &cm) == IDL_ERR_INVALID_ARG);
    CHECK(idl_colormap_parse("jet", NULL) == IDL_ERR_INVALID_ARG);
}

static void test_attribution_map(void) {
    idl_tensor *a = npy("attr.npy");
    if (!a) return;
    const char *files[] = { "attr_abs_sum.npy", "attr_sum.npy", "attr_max_abs.npy" };
    idl_reduce rs[] = { IDL_REDUCE_ABS_SUM, IDL_REDUCE_SUM, IDL_REDUCE_MAX_ABS };
    for (int k = 0; k < 3; k++) {
        idl_tensor *ref = npy(files[k]), *m = NULL;
        CHECK_OK(idl_attribution_map(a, 1, rs[k], &m));
        if (m && ref) {
            CHECK(m->ndim == 2 && m->shape[0] == 4 && m->shape[1] == 5);
            CHECK_MSG(memcmp(m->data, ref->data, 20 * sizeof(float)) == 0, "%s not bit-exact",
                      files[k]);
        }
        idl_tensor_free(m);
        idl_tensor_free(ref);
    }
    /* (N, H, W) is taken as it is, whatever the reduction */
    int64_t s3[3] = { 3, 4, 5 };
    idl_tensor t3 = idl_tensor_wrap(IDL_DT_F32, 3, s3, a->data), *m = NULL;
    CHECK_OK(idl_attribution_map(&t3, 2, IDL_REDUCE_ABS_SUM, &m));
    if (m) CHECK(memcmp(m->data, (float *)a->data + 40, 20 * sizeof(float)) == 0);
    idl_tensor_free(m);

    /* errors */
    m = NULL;
    CHECK(idl_attribution_map(a, 2, IDL_REDUCE_SUM, &m) == IDL_ERR_INVALID_ARG && !m);
    CHECK(strstr(idl_last_error(), "sample 2"));
    CHECK(idl_attribution_map(a, -1, IDL_REDUCE_SUM, &m) == IDL_ERR_INVALID_ARG);
    CHECK(idl_attribution_map(a, 0, (idl_reduce)7, &m) == IDL_ERR_INVALID_ARG);
    int64_t s2[2] = { 4, 5 }, s5[5] = { 1, 1, 1, 4, 5 };
    idl_tensor t2 = idl_tensor_wrap(IDL_DT_F32, 2, s2, a->data);
    CHECK(idl_attribution_map(&t2, 0, IDL_REDUCE_SUM, &m) == IDL_ERR_SHAPE);
    CHECK(strstr(idl_last_error(), "rank 2"));
    idl_tensor t5 = idl_tensor_wrap(IDL_DT_F32, 5, s5, a->data);
    CHECK(idl_attribution_map(&t5, 0, IDL_REDUCE_SUM, &m) == IDL_ERR_SHAPE);
    int64_t s0[4] = { 1, 0, 4, 5 };
    idl_tensor t0 = idl_tensor_wrap(IDL_DT_F32, 4, s0, a->data);
    CHECK(idl_attribution_map(&t0, 0, IDL_REDUCE_SUM, &m) == IDL_ERR_SHAPE);
    idl_tensor ti = idl_tensor_wrap(IDL_DT_I64, 3, s3, a->data);
    CHECK(idl_attribution_map(&ti, 0, IDL_REDUCE_SUM, &m) == IDL_ERR_INVALID_ARG);
    CHECK(idl_attribution_map(NULL, 0, IDL_REDUCE_SUM, &m) == IDL_ERR_INVALID_ARG);
    CHECK(idl_attribution_map(a, 0, IDL_REDUCE_SUM, NULL) == IDL_ERR_INVALID_ARG);
    CHECK(!m);
    idl_tensor_free(a);
}

static void test_resize(void) {
    for (int k = 0;; k++) {
        char fs[64], fd[64], path[128];
        snprintf(fs, sizeof fs, "resize%d_src.npy", k);
        snprintf(fd, sizeof fd, "resize%d_dst.npy", k);
        snprintf(path, sizeof path, DIR "%s", fs);
        FILE *f = fopen(path, "rb");
        if (!f) {
            CHECK_MSG(k >= 12, "only %d resize cases", k);
            break;
        }
        fclose(f);
        idl_tensor *s = npy(fs), *d = npy(fd);
        if (!s || !d) break;
        int sh = (int)s->shape[0], sw = (int)s->shape[1], dh = (int)d->shape[0],
            dw = (int)d->shape[1];
        float *out = malloc((size_t)dh * (size_t)dw * sizeof(float));
        CHECK_OK(idl__resize_map(s->data, sw, sh, out, dw, dh, "test"));
        const float *want = d->data;
        int bad = 0;
        for (int i = 0; i < dh * dw; i++)
            bad += memcmp(&out[i], &want[i], sizeof(float)) != 0;
        CHECK_MSG(bad == 0, "resize %dx%d -> %dx%d: %d of %d values differ from cv2.resize", sh, sw,
                  dh, dw, bad, dh * dw);
        free(out);
        idl_tensor_free(s);
        idl_tensor_free(d);
    }
}

static void test_overlay_parity(void) {
    const char *cases[] = { "a", "b", "c", "d", "e" };
    struct {
        const char *suffix;
        idl_overlay_opts opts;
    } styles[] = {
        { "heatmap", { IDL_OVERLAY_HEATMAP, IDL_CMAP_JET, 0.f } },
        { "heatmap_viridis", { IDL_OVERLAY_HEATMAP, IDL_CMAP_VIRIDIS, 0.f } },
        { "heatmap_a07", { IDL_OVERLAY_HEATMAP, IDL_CMAP_JET, 0.7f } },
        { "grayscale", { IDL_OVERLAY_GRAYSCALE, IDL_CMAP_JET, 0.f } },
        { "threshold", { IDL_OVERLAY_THRESHOLD, IDL_CMAP_JET, 0.f } },
        { "signed", { IDL_OVERLAY_SIGNED, IDL_CMAP_JET, 0.f } }, /* JET: the default, BWR */
    };
    for (int c = 0; c < 5; c++) {
        char file[64];
        snprintf(file, sizeof file, "%s_image.npy", cases[c]);
        idl_image *img = npy_image(file);
        snprintf(file, sizeof file, "%s_map.npy", cases[c]);
        idl_tensor *map = npy(file);
        for (int s = 0; s < 6 && img && map; s++) {
            snprintf(file, sizeof file, "%s_%s.npy", cases[c], styles[s].suffix);
            idl_tensor *ref = npy(file);
            idl_image *out = NULL;
            CHECK_OK(idl_overlay(img, map, &styles[s].opts, &out));
            char label[64];
            snprintf(label, sizeof label, "case %s %s", cases[c], styles[s].suffix);
            check_pixels(label, out, ref);
            idl_image_free(out);
            idl_tensor_free(ref);
        }
        /* default options (NULL) are the heatmap */
        snprintf(file, sizeof file, "%s_heatmap.npy", cases[c]);
        idl_tensor *ref = npy(file);
        idl_image *out = NULL;
        CHECK_OK(idl_overlay(img, map, NULL, &out));
        check_pixels("default options", out, ref);
        idl_image_free(out);
        idl_tensor_free(ref);
        idl_image_free(img);
        idl_tensor_free(map);
    }
}

/* ---------------------------------------------------------------------------------------- */

static idl_image *pattern_image(int w, int h, int c, unsigned seed) {
    idl_image *img = NULL;
    if (idl_image_new(w, h, c, &img)) return NULL;
    for (size_t i = 0; i < (size_t)w * h * c; i++) {
        seed = seed * 1103515245u + 12345u;
        img->data[i] = (uint8_t)(seed >> 16);
    }
    return img;
}

static void test_overlay_invariants(void) {
    idl_image *img = pattern_image(9, 7, 3, 1), *out = NULL;
    float ones[12], zeros[12], ramp[63];
    for (int i = 0; i < 12; i++)
        ones[i] = 3.f, zeros[i] = 0.f;
    for (int i = 0; i < 63; i++)
        ramp[i] = (float)(i % 9) - 2.f;
    int64_t s34[2] = { 3, 4 }, s79[2] = { 7, 9 };
    idl_tensor cmap = idl_tensor_wrap(IDL_DT_F32, 2, s34, ones);
    idl_tensor zmap = idl_tensor_wrap(IDL_DT_F32, 2, s34, zeros);
    idl_tensor rmap = idl_tensor_wrap(IDL_DT_F32, 2, s79, ramp);
    size_t n = 9 * 7;

    /* alpha 1: the heat layer alone; a constant map is min-max'd to 0, JET's first colour */
    idl_overlay_opts o = { IDL_OVERLAY_HEATMAP, IDL_CMAP_JET, 1.f };
    CHECK_OK(idl_overlay(img, &cmap, &o, &out));
    int ok = out && out->width == 9 && out->height == 7 && out->channels == 3;
    for (size_t i = 0; ok && i < n; i++)
        ok = out->data[3 * i] == 0 && out->data[3 * i + 1] == 0 && out->data[3 * i + 2] == 128;
    CHECK_MSG(ok, "constant map, alpha 1: not JET(0) everywhere");
    idl_image_free(out);

    /* alpha 1 on a map of the image's size: the colour of each normalised value (no resize) */
    CHECK_OK(idl_overlay(img, &rmap, &o, &out));
    ok = out != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        uint8_t c[3];
        idl_colormap_rgb(IDL_CMAP_JET, (ramp[i] + 2.f) / 8.f, c);
        ok = memcmp(c, out->data + 3 * i, 3) == 0;
    }
    CHECK_MSG(ok, "alpha 1: not the colormap of the min-max'd map");
    idl_image_free(out);

    /* alpha far below 1e-6: the image itself, for every style */
    for (int s = IDL_OVERLAY_HEATMAP; s <= IDL_OVERLAY_SIGNED; s++) {
        idl_overlay_opts t = { (idl_overlay_style)s, IDL_CMAP_JET, 1e-9f };
        CHECK_OK(idl_overlay(img, &rmap, &t, &out));
        CHECK_MSG(out && memcmp(out->data, img->data, n * 3) == 0, "style %d, alpha 1e-9", s);
        idl_image_free(out);
    }

    /* constant map, grayscale: P99 == min, 0 / 0 -> 0: trunc(0.6 * image) */
    o = (idl_overlay_opts){ IDL_OVERLAY_GRAYSCALE, IDL_CMAP_JET, 0.f };
    CHECK_OK(idl_overlay(img, &cmap, &o, &out));
    ok = out != NULL;
    for (size_t i = 0; ok && i < n * 3; i++)
        ok = out->data[i] == (uint8_t)(img->data[i] * 0.6);
    CHECK_MSG(ok, "constant map, grayscale");
    idl_image_free(out);

    /* positive constant map, threshold at alpha 1: all green; zero map: all black */
    o = (idl_overlay_opts){ IDL_OVERLAY_THRESHOLD, IDL_CMAP_JET, 1.f };
    CHECK_OK(idl_overlay(img, &cmap, &o, &out));
    ok = out != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = out->data[3 * i] == 0 && out->data[3 * i + 1] == 255 && out->data[3 * i + 2] == 0;
    CHECK_MSG(ok, "positive map, threshold");
    idl_image_free(out);
    CHECK_OK(idl_overlay(img, &zmap, &o, &out));
    ok = out != NULL;
    for (size_t i = 0; ok && i < n * 3; i++)
        ok = out->data[i] == 0;
    CHECK_MSG(ok, "zero map, threshold");
    idl_image_free(out);

    /* zero map, signed at alpha 1: bwr's middle, (255, 254, 254) as matplotlib gives at 0.5 */
    o = (idl_overlay_opts){ IDL_OVERLAY_SIGNED, IDL_CMAP_BWR, 1.f };
    CHECK_OK(idl_overlay(img, &zmap, &o, &out));
    ok = out != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = out->data[3 * i] == 255 && out->data[3 * i + 1] == 254 && out->data[3 * i + 2] == 254;
    CHECK_MSG(ok, "zero map, signed");
    idl_image_free(out);
    /* signed, ramp: the extremes of a symmetric map are bwr's ends */
    float sym[2] = { -5.f, 5.f };
    int64_t s12[2] = { 1, 2 };
    idl_tensor smap = idl_tensor_wrap(IDL_DT_F32, 2, s12, sym);
    idl_image *two = pattern_image(2, 1, 3, 5);
    CHECK_OK(idl_overlay(two, &smap, &o, &out));
    CHECK(out && out->data[0] == 0 && out->data[1] == 0 && out->data[2] == 255);
    CHECK(out && out->data[3] == 255 && out->data[4] == 0 && out->data[5] == 0);
    idl_image_free(out);
    idl_image_free(two);

    /* gray and RGBA images: the same as their RGB version (replicated / alpha dropped) */
    idl_image *gray = pattern_image(9, 7, 1, 3), *rgba = pattern_image(9, 7, 4, 4);
    idl_image *g3 = NULL, *a3 = NULL, *o1 = NULL, *o2 = NULL;
    CHECK_OK(idl_image_convert(gray, 3, &g3));
    CHECK_OK(idl_image_convert(rgba, 3, &a3));
    for (int s = IDL_OVERLAY_HEATMAP; s <= IDL_OVERLAY_SIGNED; s++) {
        idl_overlay_opts t = { (idl_overlay_style)s, IDL_CMAP_INFERNO, 0.f };
        CHECK_OK(idl_overlay(gray, &rmap, &t, &o1));
        CHECK_OK(idl_overlay(g3, &rmap, &t, &o2));
        CHECK(o1 && o2 && o1->channels == 3 && memcmp(o1->data, o2->data, n * 3) == 0);
        idl_image_free(o1), idl_image_free(o2);
        CHECK_OK(idl_overlay(rgba, &cmap, &t, &o1));
        CHECK_OK(idl_overlay(a3, &cmap, &t, &o2));
        CHECK(o1 && o2 && memcmp(o1->data, o2->data, n * 3) == 0);
        idl_image_free(o1), idl_image_free(o2);
    }
    idl_image_free(gray), idl_image_free(rgba), idl_image_free(g3), idl_image_free(a3);

    /* errors */
    out = NULL;
    CHECK(idl_overlay(NULL, &cmap, NULL, &out) == IDL_ERR_INVALID_ARG && !out);
    CHECK(strstr(idl_last_error(), "image is NULL"));
    CHECK(idl_overlay(img, NULL, NULL, &out) == IDL_ERR_INVALID_ARG);
    CHECK(idl_overlay(img, &cmap, NULL, NULL) == IDL_ERR_INVALID_ARG);
    int64_t s3[3] = { 1, 3, 4 };
    idl_tensor m3 = idl_tensor_wrap(IDL_DT_F32, 3, s3, ones);
    CHECK(idl_overlay(img, &m3, NULL, &out) == IDL_ERR_SHAPE);
    CHECK(strstr(idl_last_error(), "rank 3"));
    int64_t s0[2] = { 0, 4 };
    idl_tensor m0 = idl_tensor_wrap(IDL_DT_F32, 2, s0, ones);
    CHECK(idl_overlay(img, &m0, NULL, &out) == IDL_ERR_SHAPE);
    idl_tensor mi = idl_tensor_wrap(IDL_DT_I64, 2, s34, ones);
    CHECK(idl_overlay(img, &mi, NULL, &out) == IDL_ERR_INVALID_ARG);
    float bad[12];
    memcpy(bad, ones, sizeof bad);
    bad[5] = NAN;
    idl_tensor mn = idl_tensor_wrap(IDL_DT_F32, 2, s34, bad);
    CHECK(idl_overlay(img, &mn, NULL, &out) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "not finite"));
    bad[5] = INFINITY;
    CHECK(idl_overlay(img, &mn, NULL, &out) == IDL_ERR_INVALID_ARG);
    float alphas[] = { -0.1f, 1.5f, NAN };
    for (int k = 0; k < 3; k++) {
        idl_overlay_opts t = { IDL_OVERLAY_HEATMAP, IDL_CMAP_JET, alphas[k] };
        CHECK(idl_overlay(img, &cmap, &t, &out) == IDL_ERR_INVALID_ARG);
    }
    idl_overlay_opts t = { (idl_overlay_style)9, IDL_CMAP_JET, 0.f };
    CHECK(idl_overlay(img, &cmap, &t, &out) == IDL_ERR_INVALID_ARG);
    t = (idl_overlay_opts){ IDL_OVERLAY_HEATMAP, (idl_colormap)-1, 0.f };
    CHECK(idl_overlay(img, &cmap, &t, &out) == IDL_ERR_INVALID_ARG);
    idl_image fake = { 9, 7, 2, img->data };
    CHECK(idl_overlay(&fake, &cmap, NULL, &out) == IDL_ERR_INVALID_ARG);
    fake = (idl_image){ 9, 7, 3, NULL };
    CHECK(idl_overlay(&fake, &cmap, NULL, &out) == IDL_ERR_INVALID_ARG);
    CHECK(!out);
    idl_overlay_opts d = idl_overlay_opts_default();
    CHECK(d.style == IDL_OVERLAY_HEATMAP && d.colormap == IDL_CMAP_JET && d.alpha == 0.f);
    idl_image_free(img);
}

/* ---------------------------------------------------------------------------------------- */

/* Is row y inside a label band? (the layout of visual.h: margin 4, bands of height lb) */
static int in_band(int y, int lb, int ch, int rows) {
    for (int r = 0; r < rows; r++) {
        int y0 = 4 + r * (lb + ch + 4);
        if (y >= y0 && y < y0 + lb) return 1;
    }
    return 0;
}

static void test_grid(void) {
    idl_image *a = pattern_image(10, 8, 3, 11), *b = pattern_image(6, 12, 1, 12),
              *c = pattern_image(7, 7, 4, 13), *g = NULL;
    const idl_image *imgs[3] = { a, b, c };

    /* no labels: 2 columns, 2 rows, cells 10 x 12 */
    CHECK_OK(idl_image_grid(imgs, NULL, 3, 2, &g));
    CHECK(g && g->width == 2 * 10 + 3 * 4 && g->height == 2 * 12 + 3 * 4 && g->channels == 3);
    if (g) {
        /* a is centred vertically in its 10 x 12 cell: 2 rows of white above */
        int ok = 1;
        for (int y = 0; y < 8; y++)
            ok &= memcmp(g->data + ((size_t)(4 + 2 + y) * g->width + 4) * 3,
                         a->data + (size_t)y * 10 * 3, 30) == 0;
        CHECK_MSG(ok, "picture a not at (4, 6)");
        const uint8_t *w = g->data + ((size_t)(4 + 1) * g->width + 4) * 3;
        CHECK(w[0] == 255 && w[1] == 255 && w[2] == 255);
        /* b (gray, 6 x 12) at x = 4 + 10 + 4 + 2, replicated */
        const uint8_t *p = g->data + ((size_t)4 * g->width + 20) * 3;
        CHECK(p[0] == b->data[0] && p[1] == b->data[0] && p[2] == b->data[0]);
        /* c (RGBA over white) at (4 + 1, 4 + 12 + 4 + 2) */
        p = g->data + ((size_t)22 * g->width + 5) * 3;
        unsigned al = c->data[3];
        CHECK(p[0] == (uint8_t)((c->data[0] * al + 255u * (255u - al) + 127u) / 255u));
        /* the empty fourth cell is white */
        ok = 1;
        for (int y = 20; y < 32; y++)
            for (int x = 18; x < 28; x++)
                ok &= memcmp(g->data + ((size_t)y * g->width + x) * 3, "\xff\xff\xff", 3) == 0;
        CHECK_MSG(ok, "empty cell not white");
    }
    idl_image_free(g);

    /* cols 0 and cols > n: one row */
    CHECK_OK(idl_image_grid(imgs, NULL, 3, 0, &g));
    CHECK(g && g->width == 3 * 10 + 4 * 4 && g->height == 12 + 2 * 4);
    idl_image_free(g);
    CHECK_OK(idl_image_grid(imgs, NULL, 3, 7, &g));
    CHECK(g && g->width == 3 * 10 + 4 * 4);
    idl_image_free(g);

    /* labels: a band of 12 * lines + 4 above each picture; they change pixels only there */
    const char *none[3] = { "\n", "", NULL };
    const char *some[3] = { "cat\n0.93", "Dog | 0.01 \xc3\xa9\t!",
                            "a very long label that runs "
                            "far past the cell" };
    idl_image *g0 = NULL, *g1 = NULL;
    CHECK_OK(idl_image_grid(imgs, none, 3, 2, &g0));
    CHECK_OK(idl_image_grid(imgs, some, 3, 2, &g1));
    int lb = 12 * 2 + 4;
    CHECK(g0 && g0->height == 2 * (lb + 12) + 3 * 4 && g0->width == 32);
    if (g0 && g1 && g0->width == g1->width && g0->height == g1->height) {
        int outside = 0, inside = 0;
        for (int y = 0; y < g0->height; y++)
            for (int x = 0; x < g0->width; x++) {
                size_t i = ((size_t)y * g0->width + x) * 3;
                if (memcmp(g0->data + i, g1->data + i, 3) == 0) continue;
                if (in_band(y, lb, 12, 2))
                    inside++;
                else
                    outside++;
                /* text is black on white */
                if (g1->data[i] != 0 || g1->data[i + 1] != 0 || g1->data[i + 2] != 0) outside++;
            }
        CHECK_MSG(outside == 0, "%d label pixels outside the bands or not black", outside);
        CHECK_MSG(inside > 40, "only %d label pixels", inside);
        /* each label wrote into its own cell's band, and the long one stays in its cell */
        int band2 = 0, margin = 0;
        for (int y = 4 + lb + 12 + 4; y < 4 + lb + 12 + 4 + lb; y++)
            for (int x = 0; x < g1->width; x++) {
                size_t i = ((size_t)y * g1->width + x) * 3;
                if (g1->data[i] == 0) {
                    band2++;
                    if (x < 4 || x >= 14) margin++;
                }
            }
        CHECK(band2 > 10 && margin == 0);
    }
    idl_image_free(g0), idl_image_free(g1);

    /* text scale: a 600-pixel-wide cell draws 2 x 2 pixels per font pixel, band 2 * 12 + 4 */
    idl_image *wide = pattern_image(600, 3, 3, 9);
    const idl_image *one[1] = { wide };
    const char *lab[1] = { "I" };
    CHECK_OK(idl_image_grid(one, lab, 1, 1, &g));
    CHECK(g && g->width == 608 && g->height == 3 + 28 + 8);
    if (g) {
        int black = 0;
        for (size_t i = 0; i < (size_t)g->width * g->height * 3; i += 3)
            black += g->data[i] == 0 && g->data[i + 1] == 0 && g->data[i + 2] == 0;
        CHECK_MSG(black > 0 && black % 4 == 0, "%d black pixels at scale 2", black);
    }
    idl_image_free(g);
    idl_image_free(wide);

    /* a very long label: clipped, no crash */
    char *longl = malloc(100001);
    memset(longl, 'W', 100000);
    longl[100000] = 0;
    const char *ll[1] = { longl };
    const idl_image *ia[1] = { a };
    CHECK_OK(idl_image_grid(ia, ll, 1, 1, &g));
    CHECK(g && g->width == 18);
    idl_image_free(g);
    free(longl);

    /* errors */
    g = NULL;
    CHECK(idl_image_grid(imgs, NULL, 0, 1, &g) == IDL_ERR_INVALID_ARG && !g);
    CHECK(idl_image_grid(NULL, NULL, 3, 1, &g) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_grid(imgs, NULL, 3, -1, &g) == IDL_ERR_INVALID_ARG);
    CHECK(idl_image_grid(imgs, NULL, 3, 1, NULL) == IDL_ERR_INVALID_ARG);
    const idl_image *withnull[2] = { a, NULL };
    CHECK(idl_image_grid(withnull, NULL, 2, 1, &g) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "images[1]"));
    idl_image *huge = NULL;
    CHECK_OK(idl_image_new(IDL_IMAGE_MAX_DIM, 1, 1, &huge));
    const idl_image *hs[2] = { huge, huge };
    CHECK(idl_image_grid(hs, NULL, 2, 0, &g) == IDL_ERR_INVALID_ARG);
    CHECK(strstr(idl_last_error(), "more than"));
    CHECK(!g);
    idl_image_free(huge);

    idl_image_free(a), idl_image_free(b), idl_image_free(c);
}

/* ---------------------------------------------------------------------------------------- */

static long g_allocs, g_fail_at = -1;

static void *count_malloc(size_t size, void *user) {
    (void)user;
    if (g_fail_at >= 0 && g_allocs++ == g_fail_at) return NULL;
    return malloc(size ? size : 1);
}

static void count_free(void *p, void *user) {
    (void)user;
    free(p);
}

/* Out of memory at every allocation: NOMEM or success, never a crash or a leak (ASan). */
static void test_oom(void) {
    idl_image *img = pattern_image(20, 15, 3, 21), *gray = pattern_image(9, 9, 1, 22);
    float m[35], attr[2 * 3 * 5 * 7];
    for (int i = 0; i < 35; i++)
        m[i] = (float)((i * 7) % 11) - 4.f;
    for (int i = 0; i < 210; i++)
        attr[i] = (float)((i * 5) % 13) - 6.f;
    int64_t sm[2] = { 5, 7 }, sa[4] = { 2, 3, 5, 7 };
    idl_tensor map = idl_tensor_wrap(IDL_DT_F32, 2, sm, m);
    idl_tensor at = idl_tensor_wrap(IDL_DT_F32, 4, sa, attr);
    const idl_image *imgs[2] = { img, gray };
    const char *labels[2] = { "first", "second\nline" };
    idl_allocator al = { count_malloc, count_free, NULL };
    int nomem = 0, ok = 0, other = 0;
    for (int what = 0; what < 6; what++) {
        for (long n = 0; n < 100; n++) {
            g_allocs = 0, g_fail_at = n;
            idl_set_allocator(&al);
            idl_image *o = NULL;
            idl_tensor *t = NULL;
            idl_overlay_opts opts = { (idl_overlay_style)(what < 4 ? what : 0), IDL_CMAP_JET, 0.f };
            idl_status st = what < 4    ? idl_overlay(img, &map, &opts, &o)
                            : what == 4 ? idl_image_grid(imgs, labels, 2, 0, &o)
                                        : idl_attribution_map(&at, 1, IDL_REDUCE_ABS_SUM, &t);
            long used = g_allocs;
            idl_set_allocator(NULL);
            if (st == IDL_ERR_NOMEM)
                nomem++;
            else if (st == IDL_OK)
                ok++;
            else
                other++, fprintf(stderr, "oom case %d at %ld: %s\n", what, n, idl_last_error());
            CHECK(st == IDL_OK ? (o || t) : (!o && !t));
            idl_image_free(o);
            idl_tensor_free(t);
            if (st == IDL_OK && used <= n) break; /* every allocation has been failed once */
        }
    }
    g_fail_at = -1;
    CHECK_MSG(other == 0 && ok == 6 && nomem >= 12, "oom sweep: %d ok, %d nomem, %d other", ok,
              nomem, other);
    printf("out-of-memory sweep: %d failures injected, all reported as NOMEM\n", nomem);
    idl_image_free(img);
    idl_image_free(gray);
}

int main(void) {
    test_colormaps();
    test_attribution_map();
    test_resize();
    test_overlay_parity();
    test_overlay_invariants();
    test_grid();
    test_oom();
    TEST_SUMMARY();
}

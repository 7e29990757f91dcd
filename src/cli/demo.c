/* demo.c — `interpretdl demo [--out DIR] [--imagenet MODELDIR]`: the README's first command.
 * Runs every method on the model and images embedded in the executable (a small CNN trained on
 * Fashion-MNIST, data/demo/, see its README) and writes DIR/index.html: per image the prediction,
 * per method a picture (InterpretDL's styles: green-channel grayscale for gradients, heatmap for
 * CAMs, green superpixels for LIME) and the method's time. With --imagenet, a second section does
 * the same for an ImageNet classifier on real photos with a subset of the methods sized for
 * 224x224 inputs; MODELDIR is what scripts/make_imagenet_model.py writes (model.onnx, labels.txt,
 * model.json with the preprocessing, photos/). Nothing is downloaded; files are written to
 * temporary names and renamed. A DIR that exists must be empty or an earlier demo's output (it
 * holds DIR/.interpretdl-demo). */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"

#include "interpretdl/evaluate.h"
#include "interpretdl/image.h"
#include "interpretdl/visual.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

typedef struct idl_asset {
    const char *name;
    const unsigned char *data;
    size_t size;
} idl_asset;
extern const idl_asset idl_demo_assets[];
extern const int idl_demo_n_assets;

#define MAX_IMAGES  32
#define MAX_METHODS 24
#define NAME_LEN    64
#define ZOOM        4 /* the 28x28 pictures are shown 4x larger */

typedef struct demo_method {
    const char *name;
    const char *settings[3];
    idl_overlay_style style;
} demo_method;

static const demo_method FASHION_METHODS[] = {
    { "saliency", { NULL }, IDL_OVERLAY_GRAYSCALE },
    { "input_x_gradient", { NULL }, IDL_OVERLAY_GRAYSCALE },
    { "smoothgrad", { "n_samples=50", NULL }, IDL_OVERLAY_GRAYSCALE },
    { "integrated_gradients", { "steps=50", NULL }, IDL_OVERLAY_GRAYSCALE },
    { "gradient_shap", { "n_samples=20", "noise=0.1", NULL }, IDL_OVERLAY_GRAYSCALE },
    { "guided_backprop", { NULL }, IDL_OVERLAY_GRAYSCALE },
    { "deconvnet", { NULL }, IDL_OVERLAY_GRAYSCALE },
    { "cam", { NULL }, IDL_OVERLAY_HEATMAP },
    { "gradcam", { NULL }, IDL_OVERLAY_HEATMAP },
    { "gradcam_plus_plus", { NULL }, IDL_OVERLAY_HEATMAP },
    { "xgradcam", { NULL }, IDL_OVERLAY_HEATMAP },
    { "layercam", { NULL }, IDL_OVERLAY_HEATMAP },
    { "guided_gradcam", { NULL }, IDL_OVERLAY_GRAYSCALE },
    { "occlusion", { "window=4,4", "stride=2", NULL }, IDL_OVERLAY_GRAYSCALE },
    { "scorecam", { NULL }, IDL_OVERLAY_HEATMAP },
    { "ablationcam", { NULL }, IDL_OVERLAY_HEATMAP },
    { "lime", { "segmentation=slic", "n_segments=40", NULL }, IDL_OVERLAY_THRESHOLD },
};

/* On 224x224 photos: fewer samples and steps than the defaults, occlusion with 32x32 windows
 * (169 per image), LIME on the photo's quickshift superpixels (the lime package's settings).
 * Score-CAM and Ablation-CAM are left out: one forward pass per channel of the 1280-channel
 * layer per image. */
static const demo_method IMAGENET_METHODS[] = {
    { "saliency", { NULL }, IDL_OVERLAY_GRAYSCALE },
    { "smoothgrad", { "n_samples=20", NULL }, IDL_OVERLAY_GRAYSCALE },
    { "integrated_gradients", { "steps=32", NULL }, IDL_OVERLAY_GRAYSCALE },
    { "guided_backprop", { NULL }, IDL_OVERLAY_GRAYSCALE },
    { "gradcam", { NULL }, IDL_OVERLAY_HEATMAP },
    { "gradcam_plus_plus", { NULL }, IDL_OVERLAY_HEATMAP },
    { "occlusion", { "window=3,32,32", "stride=3,16,16", NULL }, IDL_OVERLAY_GRAYSCALE },
    { "lime", { "num_samples=400", NULL }, IDL_OVERLAY_THRESHOLD },
};

#define COUNT(a) ((int)(sizeof(a) / sizeof *(a)))

/* One table of the page: images (rows) x methods (columns). */
typedef struct demo_section {
    const char *prefix; /* pictures: DIR/img/<prefix><method>_<i>.png, <prefix>input_<i>.png */
    const demo_method *methods;
    int n_methods;
    int zoom; /* pictures shown zoom x larger (nearest) */
    int n;    /* images */
    char names[MAX_IMAGES][NAME_LEN];
    char pred[MAX_IMAGES][NAME_LEN]; /* top-1 class name */
    float prob[MAX_IMAGES];          /* its softmax probability */
    double secs[MAX_METHODS];        /* for the whole batch */
    bool ok[MAX_METHODS];
    /* the explanation judged: deletion and insertion areas (10 steps, pixels by sum_c |E|,
       filled with the image's minimum); NaN when the metric failed */
    double del[MAX_METHODS][MAX_IMAGES], ins[MAX_METHODS][MAX_IMAGES];
} demo_section;

/* The ImageNet model folder, read before any work is done. */
typedef struct imagenet_dir {
    const char *dir;
    char title[256];
    char spec[256]; /* preprocessing, the library's syntax */
    idl_preprocess pp;
    int n_photos;
    char photos[MAX_IMAGES][NAME_LEN]; /* file names in DIR/photos, sorted */
} imagenet_dir;

static const idl_asset *asset(const char *name) {
    for (int i = 0; i < idl_demo_n_assets; i++)
        if (!strcmp(idl_demo_assets[i].name, name)) return &idl_demo_assets[i];
    return NULL;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* DIR must be absent, empty, or a previous demo's output. */
static int prepare_dir(const char *dir) {
    char p[4096];
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return cli_usage_error("--out %s exists and is not a folder", dir);
        snprintf(p, sizeof p, "%s/.interpretdl-demo", dir);
        bool ours = stat(p, &st) == 0;
        DIR *d = opendir(dir);
        int others = 0;
        for (struct dirent *e; d && (e = readdir(d));)
            others += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
        if (d) closedir(d);
        if (others && !ours)
            return cli_usage_error("--out %s is a folder with other files in it; give a new or "
                                   "empty folder (nothing of yours is overwritten)",
                                   dir);
    } else if (mkdir(dir, 0777) != 0) {
        fprintf(stderr, "interpretdl: cannot create %s: %s\n", dir, strerror(errno));
        return EXIT_RUNTIME;
    }
    snprintf(p, sizeof p, "%s/img", dir);
    if (mkdir(p, 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "interpretdl: cannot create %s: %s\n", p, strerror(errno));
        return EXIT_RUNTIME;
    }
    snprintf(p, sizeof p, "%s/.interpretdl-demo", dir);
    FILE *f = fopen(p, "w");
    if (!f) {
        fprintf(stderr, "interpretdl: cannot write in %s: %s\n", dir, strerror(errno));
        return EXIT_RUNTIME;
    }
    fputs("written by interpretdl demo\n", f);
    fclose(f);
    return 0;
}

static void html_escape(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if (*s == '"')
            fputs("&quot;", f);
        else
            fputc(*s, f);
    }
}

static void copy_name(char *dst, const char *src, size_t len) {
    if (len > NAME_LEN - 1) len = NAME_LEN - 1;
    memcpy(dst, src, len);
    dst[len] = 0;
}

/* A whole file (at most 64 MiB) as a NUL-terminated string; NULL if unreadable. */
static char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 65536;
            char *b = cap <= ((size_t)64 << 20) ? realloc(buf, cap) : NULL;
            if (!b) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, 4096, f);
        n += got;
        if (got < 4096) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (size) *size = n;
    return buf;
}

/* The string value of "key" in a JSON text (the first occurrence used as a key), unescaped
 * (\uXXXX outside ASCII becomes '?'). Returns 0, or -1 if absent or not a string. */
static int json_string(const char *text, const char *key, char *out, size_t cap) {
    size_t kl = strlen(key);
    for (const char *p = text; (p = strchr(p, '"')) != NULL; p++) {
        if (strncmp(p + 1, key, kl) != 0 || p[kl + 1] != '"') continue;
        const char *q = p + kl + 2;
        while (isspace((unsigned char)*q))
            q++;
        if (*q != ':') continue;
        q++;
        while (isspace((unsigned char)*q))
            q++;
        if (*q != '"') return -1;
        size_t n = 0;
        for (q++; *q && *q != '"'; q++) {
            char c = *q;
            if (c == '\\') {
                c = *++q;
                if (c == 'n')
                    c = '\n';
                else if (c == 't')
                    c = '\t';
                else if (c == 'u') {
                    unsigned v = 0;
                    for (int k = 0; k < 4 && isxdigit((unsigned char)q[1]); k++, q++)
                        v = v * 16 + (unsigned)(isdigit((unsigned char)q[1])
                                                    ? q[1] - '0'
                                                    : tolower((unsigned char)q[1]) - 'a' + 10);
                    c = v < 128 ? (char)v : '?';
                } else if (!c)
                    return -1;
            }
            if (n + 1 < cap) out[n++] = c;
        }
        if (*q != '"') return -1;
        out[n] = 0;
        return 0;
    }
    return -1;
}

static bool is_photo(const char *name) {
    const char *dot = strrchr(name, '.');
    if (!dot || name[0] == '.') return false;
    char ext[8] = { 0 };
    for (int i = 0; i < 7 && dot[i + 1]; i++)
        ext[i] = (char)tolower((unsigned char)dot[i + 1]);
    return !strcmp(ext, "png") || !strcmp(ext, "jpg") || !strcmp(ext, "jpeg");
}

static int cmp_names(const void *a, const void *b) {
    return strcmp((const char *)a, (const char *)b);
}

/* Reads MODELDIR's model.json (title, preprocess) and lists its photos; usage errors name what is
 * missing. */
static int imagenet_open(const char *dir, imagenet_dir *in) {
    char p[4096];
    struct stat st;
    in->dir = dir;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return cli_usage_error("--imagenet %s is not a folder (scripts/make_imagenet_model.py "
                               "makes one)",
                               dir);
    snprintf(p, sizeof p, "%s/model.json", dir);
    char *json = read_file(p, NULL);
    if (!json)
        return cli_usage_error("--imagenet %s has no readable model.json: not a complete folder "
                               "of scripts/make_imagenet_model.py",
                               dir);
    int bad = json_string(json, "preprocess", in->spec, sizeof in->spec);
    if (json_string(json, "title", in->title, sizeof in->title)) snprintf(in->title, 256, "?");
    free(json);
    if (bad) return cli_usage_error("%s has no \"preprocess\" string", p);
    if (idl_preprocess_parse(in->spec, &in->pp)) return cli_runtime_error(p);
    if (!(in->pp.crop_w && in->pp.crop_h) && !(in->pp.resize_w && in->pp.resize_h))
        return cli_usage_error("%s: the preprocessing \"%s\" has no crop or fixed size (the "
                               "photos must all become one size)",
                               p, in->spec);
    const char *need[2] = { "model.onnx", "labels.txt" };
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, need[i]);
        if (stat(p, &st) != 0) return cli_usage_error("--imagenet %s has no %s", dir, need[i]);
    }
    snprintf(p, sizeof p, "%s/photos", dir);
    DIR *d = opendir(p);
    in->n_photos = 0;
    for (struct dirent *e; d && (e = readdir(d)) && in->n_photos < MAX_IMAGES;)
        if (is_photo(e->d_name) && strlen(e->d_name) < NAME_LEN)
            copy_name(in->photos[in->n_photos++], e->d_name, strlen(e->d_name));
    if (d) closedir(d);
    if (in->n_photos == 0)
        return cli_usage_error("--imagenet %s has no photos (PNG or JPEG files in %s)", dir, p);
    qsort(in->photos, (size_t)in->n_photos, sizeof in->photos[0], cmp_names);
    return 0;
}

/* Stacks n (1, C, H, W) tensors into one (n, C, H, W) batch. */
static int stack(idl_tensor *const *one, int n, idl_tensor **x) {
    int64_t shp[4] = { n, one[0]->shape[1], one[0]->shape[2], one[0]->shape[3] };
    size_t per = (size_t)idl_tensor_numel(one[0]);
    if (idl_tensor_new(IDL_DT_F32, 4, shp, x)) return cli_runtime_error("memory");
    for (int i = 0; i < n; i++)
        memcpy((float *)(*x)->data + per * (size_t)i, one[i]->data, per * sizeof(float));
    return 0;
}

/* Top-1 class and its softmax probability per sample. */
static int predict(idl_session *s, const idl_tensor *x, const char *const *labels, int n_labels,
                   demo_section *sec) {
    const idl_tensor *in[1] = { x };
    if (idl_session_forward(s, in, NULL, 1)) return cli_runtime_error("forward");
    const idl_tensor *y = idl_session_output(s, 0);
    int64_t k = y->shape[y->ndim - 1];
    for (int i = 0; i < sec->n; i++) {
        const float *row = (const float *)y->data + i * k;
        int64_t best = 0;
        double sum = 0;
        for (int64_t j = 0; j < k; j++)
            if (row[j] > row[best]) best = j;
        for (int64_t j = 0; j < k; j++)
            sum += exp((double)row[j] - (double)row[best]);
        sec->prob[i] = (float)(1.0 / sum);
        const char *name = best < n_labels ? labels[best] : "?";
        copy_name(sec->pred[i], name, strlen(name));
    }
    return 0;
}

static double mean_of(const double *v, int n) {
    double sum = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(v[i])) sum += v[i], k++;
    return k ? sum / k : NAN;
}

/* Deletion and insertion of method k's explanation of every image (the page's two scores). */
static void judge(idl_session *s, const idl_explain_request *rq, const idl_tensor *attribution,
                  demo_section *sec, int k) {
    static const char *const set[] = { "steps=10", "reduce=abs_sum" };
    for (int m = 0; m < 2; m++) {
        double *dst = m ? sec->ins[k] : sec->del[k];
        idl_evaluation ev;
        for (int i = 0; i < sec->n; i++)
            dst[i] = NAN;
        if (idl_evaluate(s, m ? "insertion" : "deletion", rq, attribution, set, 2, &ev)) {
            fprintf(stderr, "interpretdl: demo: %s of %s: %s\n", m ? "insertion" : "deletion",
                    sec->methods[k].name, idl_last_error());
            continue;
        }
        for (int i = 0; i < sec->n && i < ev.n; i++)
            dst[i] = ev.values[i * ev.n_scores];
        idl_evaluation_clear(&ev);
    }
}

/* Every method of the section on the whole batch; pictures into DIR/img. A method that fails is
 * reported and marked (the page says "failed"); a picture that cannot be written stops. */
static int run_methods(idl_session *s, const idl_tensor *x, const idl_tensor *image,
                       idl_image *const *shown, const char *dir, demo_section *sec) {
    char path[4096];
    const idl_tensor *in[1] = { x };
    int rc = 0;
    for (int k = 0; !rc && k < sec->n_methods; k++) {
        const demo_method *m = &sec->methods[k];
        idl_explain_request rq = idl_explain_request_default();
        rq.inputs = in;
        rq.n_inputs = 1;
        rq.image = image;
        int ns = 0;
        while (ns < 3 && m->settings[ns])
            ns++;
        idl_explanation e;
        double t0 = now_s();
        if (idl_explain(s, m->name, &rq, m->settings, ns, &e)) {
            fprintf(stderr, "interpretdl: demo: %s: %s\n", m->name, idl_last_error());
            continue;
        }
        sec->secs[k] = now_s() - t0;
        sec->ok[k] = true;
        idl_overlay_opts oo = idl_overlay_opts_default();
        oo.style = m->style;
        for (int i = 0; !rc && i < sec->n; i++) {
            idl_tensor *map = NULL;
            idl_image *big = NULL, *pic = NULL;
            snprintf(path, sizeof path, "%s/img/%s%s_%d.png", dir, sec->prefix, m->name, i);
            if ((e.features ? idl_lime_top_mask(&e, i, 0.2f, &map)
                            : idl_attribution_map(e.attribution, i, IDL_REDUCE_ABS_SUM, &map)) ||
                idl_image_resize(shown[i], shown[i]->width * sec->zoom,
                                 shown[i]->height * sec->zoom, IDL_RESIZE_NEAREST, &big) ||
                idl_overlay(big, map, &oo, &pic) || idl_image_save_png(path, pic))
                rc = cli_runtime_error(path);
            idl_tensor_free(map);
            idl_image_free(big);
            idl_image_free(pic);
        }
        judge(s, &rq, e.attribution, sec, k);
        idl_explanation_clear(&e);
        printf("  %-22s %9.1f ms  deletion %.3f insertion %.3f\n", m->name, 1e3 * sec->secs[k],
               mean_of(sec->del[k], sec->n), mean_of(sec->ins[k], sec->n));
        fflush(stdout);
    }
    /* the input pictures */
    for (int i = 0; !rc && i < sec->n; i++) {
        idl_image *big = NULL;
        snprintf(path, sizeof path, "%s/img/%sinput_%d.png", dir, sec->prefix, i);
        if (idl_image_resize(shown[i], shown[i]->width * sec->zoom, shown[i]->height * sec->zoom,
                             IDL_RESIZE_NEAREST, &big) ||
            idl_image_save_png(path, big))
            rc = cli_runtime_error(path);
        idl_image_free(big);
    }
    return rc;
}

/* The Fashion-MNIST section: the embedded model and images. */
static int fashion_part(const char *dir, int threads, demo_section *sec) {
    const idl_asset *ma = NULL, *la = asset("labels.txt");
    for (int i = 0; i < idl_demo_n_assets && !ma; i++) {
        size_t n = strlen(idl_demo_assets[i].name);
        if (n > 5 && !strcmp(idl_demo_assets[i].name + n - 5, ".onnx")) ma = &idl_demo_assets[i];
    }
    if (!ma) {
        fprintf(stderr, "interpretdl: this build has no demo model embedded (data/demo)\n");
        return EXIT_RUNTIME;
    }
    /* labels */
    char labels[16][NAME_LEN];
    const char *label_ptr[16];
    int n_labels = 0;
    for (size_t i = 0, start = 0; la && i <= la->size && n_labels < 16; i++)
        if (i == la->size || la->data[i] == '\n') {
            if (i > start) {
                copy_name(labels[n_labels], (const char *)la->data + start, i - start);
                label_ptr[n_labels] = labels[n_labels];
                n_labels++;
            }
            start = i + 1;
        }
    /* model and images */
    idl_model *m = NULL;
    idl_session *s = NULL;
    idl_image *shown[MAX_IMAGES] = { 0 };
    idl_tensor *one[MAX_IMAGES] = { 0 }, *x = NULL;
    int rc = 0;
    if (idl_model_load_mem(ma->data, ma->size, NULL, &m)) return cli_runtime_error("demo model");
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = threads;
    if (idl_session_new(m, &so, &s)) rc = cli_runtime_error("demo model");
    idl_preprocess pp;
    if (!rc && idl_preprocess_parse("scale,channels=1,size=28x28", &pp))
        rc = cli_runtime_error("demo preprocessing");
    sec->n = 0;
    for (int i = 0; !rc && i < idl_demo_n_assets && sec->n < MAX_IMAGES; i++) {
        const idl_asset *a = &idl_demo_assets[i];
        if (strncmp(a->name, "images/", 7) != 0) continue;
        idl_image *img = NULL;
        if (idl_image_load_mem(a->data, a->size, 1, &img) ||
            idl_preprocess_image(img, &pp, &one[sec->n], &shown[sec->n]))
            rc = cli_runtime_error(a->name);
        else
            copy_name(sec->names[sec->n++], a->name + 7, strlen(a->name + 7));
        idl_image_free(img);
    }
    if (!rc && sec->n == 0) {
        fprintf(stderr, "interpretdl: no demo images embedded\n");
        rc = EXIT_RUNTIME;
    }
    if (!rc) rc = stack(one, sec->n, &x);
    if (!rc) rc = predict(s, x, label_ptr, n_labels, sec);
    if (!rc) {
        printf("Fashion-MNIST CNN, %d images:\n", sec->n);
        rc = run_methods(s, x, NULL, shown, dir, sec);
    }
    for (int i = 0; i < MAX_IMAGES; i++) {
        idl_tensor_free(one[i]);
        idl_image_free(shown[i]);
    }
    idl_tensor_free(x);
    idl_session_free(s);
    idl_model_free(m);
    return rc;
}

/* The ImageNet section: MODELDIR's model on its photos, preprocessed as model.json says; the
 * pictures are the 224x224 crops the model sees, which LIME segments (rq.image). */
static int imagenet_part(const char *dir, const imagenet_dir *in, int threads, demo_section *sec) {
    char p[4096];
    idl_model *m = NULL;
    idl_session *s = NULL;
    idl_image *shown[MAX_IMAGES] = { 0 };
    idl_tensor *one[MAX_IMAGES] = { 0 }, *x = NULL, *image = NULL;
    const char **labels = NULL;
    int n_labels = 0, rc = 0;
    /* labels: one per line */
    snprintf(p, sizeof p, "%s/labels.txt", in->dir);
    size_t size = 0;
    char *text = read_file(p, &size);
    if (!text) {
        fprintf(stderr, "interpretdl: cannot read %s: %s\n", p, strerror(errno));
        return EXIT_RUNTIME;
    }
    for (size_t i = 0; i < size; i++)
        n_labels += text[i] == '\n';
    labels = malloc(sizeof *labels * (size_t)(n_labels + 1));
    if (!labels) {
        free(text);
        fprintf(stderr, "interpretdl: out of memory\n");
        return EXIT_RUNTIME;
    }
    n_labels = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        nl = strchr(line, '\n');
        if (!nl)
            nl = line + strlen(line) - 1;
        else
            *nl = 0;
        labels[n_labels++] = line;
    }
    /* model and photos */
    snprintf(p, sizeof p, "%s/model.onnx", in->dir);
    if (idl_model_load(p, NULL, &m)) rc = cli_runtime_error(p);
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = threads;
    if (!rc && idl_session_new(m, &so, &s)) rc = cli_runtime_error(p);
    sec->n = 0;
    for (int i = 0; !rc && i < in->n_photos; i++) {
        idl_image *img = NULL;
        snprintf(p, sizeof p, "%s/photos/%s", in->dir, in->photos[i]);
        if (idl_image_load(p, 3, &img) ||
            idl_preprocess_image(img, &in->pp, &one[sec->n], &shown[sec->n]))
            rc = cli_runtime_error(p);
        else
            copy_name(sec->names[sec->n++], in->photos[i], strlen(in->photos[i]));
        idl_image_free(img);
    }
    for (int i = 1; !rc && i < sec->n; i++)
        if (shown[i]->width != shown[0]->width || shown[i]->height != shown[0]->height) {
            fprintf(stderr,
                    "interpretdl: %s: the preprocessing \"%s\" gives pictures of different "
                    "sizes (no crop or fixed size?)\n",
                    in->dir, in->spec);
            rc = EXIT_RUNTIME;
        }
    if (!rc) rc = stack(one, sec->n, &x);
    if (!rc) { /* the pictures as (N, H, W, 3) in [0, 1], for LIME's superpixels */
        int64_t shp[4] = { sec->n, shown[0]->height, shown[0]->width, 3 };
        if (idl_tensor_new(IDL_DT_F32, 4, shp, &image)) rc = cli_runtime_error("memory");
        for (int i = 0; !rc && i < sec->n; i++) {
            idl_image *rgb = NULL;
            if (idl_image_convert(shown[i], 3, &rgb)) {
                rc = cli_runtime_error("memory");
                break;
            }
            size_t per = (size_t)rgb->width * (size_t)rgb->height * 3;
            float *dst = (float *)image->data + per * (size_t)i;
            for (size_t j = 0; j < per; j++)
                dst[j] = (float)rgb->data[j] / 255.0f;
            idl_image_free(rgb);
        }
    }
    if (!rc) rc = predict(s, x, labels, n_labels, sec);
    if (!rc) {
        printf("ImageNet: %s, %d photos (%s):\n", in->title, sec->n, in->spec);
        double t0 = now_s();
        rc = run_methods(s, x, image, shown, dir, sec);
        printf("  %-22s %9.1f ms\n", "(all)", 1e3 * (now_s() - t0));
    }
    for (int i = 0; i < MAX_IMAGES; i++) {
        idl_tensor_free(one[i]);
        idl_image_free(shown[i]);
    }
    idl_tensor_free(x);
    idl_tensor_free(image);
    idl_session_free(s);
    idl_model_free(m);
    free(labels);
    free(text);
    return rc;
}

static void write_section(FILE *f, const demo_section *sec) {
    fprintf(f, "<table>\n<tr><th>image</th>");
    for (int k = 0; k < sec->n_methods; k++) {
        const demo_method *m = &sec->methods[k];
        fprintf(f, "<th>%s<br>", m->name);
        for (int j = 0; j < 3 && m->settings[j]; j++)
            fprintf(f, "<small>%s</small><br>", m->settings[j]);
        if (sec->ok[k])
            fprintf(f, "%.1f ms<br><small>deletion %.3f<br>insertion %.3f</small></th>",
                    1e3 * sec->secs[k], mean_of(sec->del[k], sec->n), mean_of(sec->ins[k], sec->n));
        else
            fprintf(f, "failed</th>");
    }
    fprintf(f, "</tr>\n");
    for (int i = 0; i < sec->n; i++) {
        fprintf(f, "<tr><td><img src=\"img/%sinput_%d.png\" alt=\"", sec->prefix, i);
        html_escape(f, sec->names[i]);
        fprintf(f, "\"><br>");
        html_escape(f, sec->names[i]);
        fprintf(f, "<br>predicted: ");
        html_escape(f, sec->pred[i]);
        fprintf(f, " (%.2f)</td>", (double)sec->prob[i]);
        for (int k = 0; k < sec->n_methods; k++) {
            if (sec->ok[k])
                fprintf(f,
                        "<td><img src=\"img/%s%s_%d.png\" alt=\"%s\"><br><small>del %.3f "
                        "ins %.3f</small></td>",
                        sec->prefix, sec->methods[k].name, i, sec->methods[k].name, sec->del[k][i],
                        sec->ins[k][i]);
            else
                fprintf(f, "<td></td>");
        }
        fprintf(f, "</tr>\n");
    }
    fprintf(f, "</table>\n");
}

static int write_page(const char *dir, const demo_section *fashion, const imagenet_dir *in,
                      const demo_section *inet) {
    char tmp[4200], fin[4200];
    snprintf(fin, sizeof fin, "%s/index.html", dir);
    snprintf(tmp, sizeof tmp, "%s/index.html.tmp", dir);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "interpretdl: cannot write %s: %s\n", tmp, strerror(errno));
        return EXIT_RUNTIME;
    }
    fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>interpretdl "
               "demo</title>\n<style>body{font-family:sans-serif;margin:16px}"
               "table{border-collapse:collapse}td,th{padding:4px;text-align:center;"
               "font-size:12px;vertical-align:top}img{image-rendering:pixelated;"
               "display:block}</style></head><body>\n");
    fprintf(f,
            "<h1>interpretdl %s demo</h1>\n<h2>Fashion-MNIST</h2>\n<p>A small CNN trained on "
            "Fashion-MNIST (embedded; data/demo in the source tree). Each column explains the "
            "predicted class of every image; the time is for the whole batch of %d "
            "images. Gradient methods: sum over channels of |attribution| in the green "
            "channel; CAM methods: heatmap; LIME: the 20%% of superpixels with the largest "
            "positive weights in green. Under each picture, the explanation judged by "
            "<code>interpretdl evaluate</code>: deletion (the probability's area as the pixels "
            "it ranks first are set to the image's minimum, 10 steps; lower is better) and "
            "insertion (pixels put back in that order; higher is better); the header gives "
            "their means.</p>\n",
            idl_version(), fashion->n);
    write_section(f, fashion);
    if (inet) {
        fprintf(f, "<h2 id=\"imagenet\">ImageNet</h2>\n<p>");
        html_escape(f, in->title);
        fprintf(f, " on %d photos, from the folder ", inet->n);
        html_escape(f, in->dir);
        fprintf(f, " (scripts/make_imagenet_model.py; its model.json gives the sources and "
                   "licences). Preprocessing <code>");
        html_escape(f, in->spec);
        fprintf(f,
                "</code>; the pictures are the 224x224 crops the model sees, and LIME "
                "segments them with quickshift. Times are for the whole batch of %d photos. "
                "Score-CAM and Ablation-CAM are left out here: they take one forward pass "
                "per channel of the last layer (1280) for every photo.</p>\n",
                inet->n);
        write_section(f, inet);
    } else {
        fprintf(f, "<p>No ImageNet section: run <code>interpretdl demo --imagenet DIR</code> "
                   "with the folder that scripts/make_imagenet_model.py makes (an "
                   "ImageNet-pretrained EfficientNet-Lite0 and real photos).</p>\n");
    }
    fprintf(f, "</body></html>\n");
    int bad = ferror(f);
    if (fclose(f) || bad || rename(tmp, fin)) {
        fprintf(stderr, "interpretdl: cannot write %s: %s\n", fin, strerror(errno));
        remove(tmp);
        return EXIT_RUNTIME;
    }
    printf("wrote %s (%d images x %d methods", fin, fashion->n, fashion->n_methods);
    if (inet) printf("; %d photos x %d methods", inet->n, inet->n_methods);
    printf(")\n");
    return 0;
}

static int demo_run(const char *dir, const char *imagenet, int threads) {
    demo_section fashion = {
        .prefix = "", .methods = FASHION_METHODS, .n_methods = COUNT(FASHION_METHODS), .zoom = ZOOM
    };
    demo_section inet = { .prefix = "imagenet_",
                          .methods = IMAGENET_METHODS,
                          .n_methods = COUNT(IMAGENET_METHODS),
                          .zoom = 1 };
    imagenet_dir in = { 0 };
    int rc = imagenet ? imagenet_open(imagenet, &in) : 0;
    if (!rc) rc = prepare_dir(dir);
    if (!rc) rc = fashion_part(dir, threads, &fashion);
    if (!rc && imagenet) rc = imagenet_part(dir, &in, threads, &inet);
    if (!rc) rc = write_page(dir, &fashion, &in, imagenet ? &inet : NULL);
    for (int k = 0; !rc && k < fashion.n_methods; k++)
        if (!fashion.ok[k]) rc = EXIT_RUNTIME;
    for (int k = 0; !rc && imagenet && k < inet.n_methods; k++)
        if (!inet.ok[k]) rc = EXIT_RUNTIME;
    return rc;
}

int cli_demo_main(int argc, char **argv) {
    const char *out = "interpretdl-demo", *imagenet = NULL;
    long threads = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--imagenet") && i + 1 < argc)
            imagenet = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            char *end;
            errno = 0;
            threads = strtol(argv[++i], &end, 10);
            if (errno || end == argv[i] || *end || threads < 0 || threads > 4096)
                return cli_usage_error("--threads needs an integer 0..4096, got '%s'", argv[i]);
        } else
            return cli_usage_error("demo takes --out DIR, --imagenet DIR and --threads N, not "
                                   "'%s'",
                                   argv[i]);
    }
    return demo_run(out, imagenet, (int)threads);
}

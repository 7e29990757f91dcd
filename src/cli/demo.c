/* demo.c — `interpretdl demo [--out DIR]`: the README's first command. Runs every gradient
 * method on the model and images embedded in the executable (a small CNN trained on Fashion-MNIST,
 * data/demo/, see its README) and writes DIR/index.html: per image the prediction, per method a
 * picture (InterpretDL's styles: green-channel grayscale for gradients, heatmap for CAMs) and the
 * method's time. Nothing is downloaded; files are written to temporary names and renamed. A DIR
 * that exists must be empty or an earlier demo's output (it holds DIR/.interpretdl-demo). */
#define _POSIX_C_SOURCE 200809L

#include "cli.h"

#include "interpretdl/image.h"
#include "interpretdl/visual.h"

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

#define MAX_IMAGES 32
#define ZOOM       4 /* the 28x28 pictures are shown 4x larger */

typedef struct demo_method {
    const char *name;
    const char *settings[3];
    idl_overlay_style style;
} demo_method;

static const demo_method METHODS[] = {
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
#define N_METHODS ((int)(sizeof METHODS / sizeof *METHODS))

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

int cli_demo(const char *dir, int threads) {
    const idl_asset *ma = NULL, *la = asset("labels.txt");
    for (int i = 0; i < idl_demo_n_assets && !ma; i++) {
        size_t n = strlen(idl_demo_assets[i].name);
        if (n > 5 && !strcmp(idl_demo_assets[i].name + n - 5, ".onnx")) ma = &idl_demo_assets[i];
    }
    if (!ma) {
        fprintf(stderr, "interpretdl: this build has no demo model embedded (data/demo)\n");
        return EXIT_RUNTIME;
    }
    int rc = prepare_dir(dir);
    if (rc) return rc;
    /* labels */
    char labels[16][64];
    int n_labels = 0;
    for (size_t i = 0, start = 0; la && i <= la->size && n_labels < 16; i++)
        if (i == la->size || la->data[i] == '\n') {
            size_t len = i - start < 63 ? i - start : 63;
            if (len) {
                memcpy(labels[n_labels], la->data + start, len);
                labels[n_labels++][len] = 0;
            }
            start = i + 1;
        }
    /* model and images */
    idl_model *m = NULL;
    idl_session *s = NULL;
    idl_image *shown[MAX_IMAGES] = { 0 };
    const char *names[MAX_IMAGES];
    idl_tensor *x = NULL;
    int n = 0;
    if (idl_model_load_mem(ma->data, ma->size, NULL, &m)) return cli_runtime_error("demo model");
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = threads;
    if (idl_session_new(m, &so, &s)) rc = cli_runtime_error("demo model");
    idl_preprocess pp;
    if (!rc && idl_preprocess_parse("scale,channels=1,size=28x28", &pp))
        rc = cli_runtime_error("demo preprocessing");
    idl_tensor *one[MAX_IMAGES] = { 0 };
    for (int i = 0; !rc && i < idl_demo_n_assets && n < MAX_IMAGES; i++) {
        const idl_asset *a = &idl_demo_assets[i];
        if (strncmp(a->name, "images/", 7) != 0) continue;
        idl_image *img = NULL;
        if (idl_image_load_mem(a->data, a->size, 1, &img) ||
            idl_preprocess_image(img, &pp, &one[n], &shown[n]))
            rc = cli_runtime_error(a->name);
        else
            names[n++] = a->name + 7;
        idl_image_free(img);
    }
    if (!rc && n == 0) {
        fprintf(stderr, "interpretdl: no demo images embedded\n");
        rc = EXIT_RUNTIME;
    }
    if (!rc) { /* one batch (n, 1, 28, 28) */
        int64_t shp[4] = { n, one[0]->shape[1], one[0]->shape[2], one[0]->shape[3] };
        size_t per = (size_t)idl_tensor_numel(one[0]);
        if (idl_tensor_new(IDL_DT_F32, 4, shp, &x)) rc = cli_runtime_error("memory");
        for (int i = 0; !rc && i < n; i++)
            memcpy((float *)x->data + per * (size_t)i, one[i]->data, per * sizeof(float));
    }
    for (int i = 0; i < n; i++)
        idl_tensor_free(one[i]);
    /* predictions */
    int64_t pred[MAX_IMAGES] = { 0 };
    float prob[MAX_IMAGES] = { 0 };
    const idl_tensor *in[1] = { x };
    if (!rc && idl_session_forward(s, in, NULL, 1)) rc = cli_runtime_error("forward");
    if (!rc) {
        const idl_tensor *y = idl_session_output(s, 0);
        int64_t k = y->shape[y->ndim - 1];
        for (int i = 0; i < n; i++) {
            const float *row = (const float *)y->data + i * k;
            double mx = row[0], sum = 0;
            for (int64_t j = 0; j < k; j++)
                if (row[j] > row[pred[i]]) pred[i] = j;
            mx = row[pred[i]];
            for (int64_t j = 0; j < k; j++)
                sum += exp((double)row[j] - mx);
            prob[i] = (float)(1.0 / sum);
        }
    }
    /* every method on the whole batch */
    double secs[N_METHODS] = { 0 };
    bool ok[N_METHODS] = { 0 };
    char path[4096];
    for (int k = 0; !rc && k < N_METHODS; k++) {
        idl_explain_request rq = idl_explain_request_default();
        rq.inputs = in;
        rq.n_inputs = 1;
        int ns = 0;
        while (ns < 3 && METHODS[k].settings[ns])
            ns++;
        idl_explanation e;
        double t0 = now_s();
        if (idl_explain(s, METHODS[k].name, &rq, METHODS[k].settings, ns, &e)) {
            fprintf(stderr, "interpretdl: demo: %s: %s\n", METHODS[k].name, idl_last_error());
            continue;
        }
        secs[k] = now_s() - t0;
        ok[k] = true;
        idl_overlay_opts oo = idl_overlay_opts_default();
        oo.style = METHODS[k].style;
        for (int i = 0; !rc && i < n; i++) {
            idl_tensor *map = NULL;
            idl_image *big = NULL, *pic = NULL;
            snprintf(path, sizeof path, "%s/img/%s_%d.png", dir, METHODS[k].name, i);
            if ((e.features ? idl_lime_top_mask(&e, i, 0.2f, &map)
                            : idl_attribution_map(e.attribution, i, IDL_REDUCE_ABS_SUM, &map)) ||
                idl_image_resize(shown[i], shown[i]->width * ZOOM, shown[i]->height * ZOOM,
                                 IDL_RESIZE_NEAREST, &big) ||
                idl_overlay(big, map, &oo, &pic) || idl_image_save_png(path, pic))
                rc = cli_runtime_error(path);
            idl_tensor_free(map);
            idl_image_free(big);
            idl_image_free(pic);
        }
        idl_explanation_clear(&e);
        printf("%-22s %8.1f ms\n", METHODS[k].name, 1e3 * secs[k]);
    }
    /* the input pictures */
    for (int i = 0; !rc && i < n; i++) {
        idl_image *big = NULL;
        snprintf(path, sizeof path, "%s/img/input_%d.png", dir, i);
        if (idl_image_resize(shown[i], shown[i]->width * ZOOM, shown[i]->height * ZOOM,
                             IDL_RESIZE_NEAREST, &big) ||
            idl_image_save_png(path, big))
            rc = cli_runtime_error(path);
        idl_image_free(big);
    }
    /* index.html */
    if (!rc) {
        char tmp[4200], fin[4200];
        snprintf(fin, sizeof fin, "%s/index.html", dir);
        snprintf(tmp, sizeof tmp, "%s/index.html.tmp", dir);
        FILE *f = fopen(tmp, "w");
        if (!f) {
            fprintf(stderr, "interpretdl: cannot write %s: %s\n", tmp, strerror(errno));
            rc = EXIT_RUNTIME;
        } else {
            fprintf(f, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>interpretdl "
                       "demo</title>\n<style>body{font-family:sans-serif;margin:16px}"
                       "table{border-collapse:collapse}td,th{padding:4px;text-align:center;"
                       "font-size:12px;vertical-align:top}img{image-rendering:pixelated;"
                       "display:block}</style></head><body>\n");
            fprintf(f,
                    "<h1>interpretdl %s demo</h1>\n<p>A small CNN trained on Fashion-MNIST "
                    "(embedded; data/demo in the source tree). Each column explains the "
                    "predicted class of every image; the time is for the whole batch of %d "
                    "images. Gradient methods: sum over channels of |attribution| in the green "
                    "channel; CAM methods: heatmap.</p>\n<table>\n<tr><th>image</th>",
                    idl_version(), n);
            for (int k = 0; k < N_METHODS; k++) {
                fprintf(f, "<th>%s<br>", METHODS[k].name);
                if (ok[k])
                    fprintf(f, "%.1f ms</th>", 1e3 * secs[k]);
                else
                    fprintf(f, "failed</th>");
            }
            fprintf(f, "</tr>\n");
            for (int i = 0; i < n; i++) {
                fprintf(f, "<tr><td><img src=\"img/input_%d.png\" alt=\"", i);
                html_escape(f, names[i]);
                fprintf(f, "\"><br>");
                html_escape(f, names[i]);
                fprintf(f, "<br>predicted: ");
                html_escape(f, pred[i] < n_labels ? labels[pred[i]] : "?");
                fprintf(f, " (%.2f)</td>", (double)prob[i]);
                for (int k = 0; k < N_METHODS; k++) {
                    if (ok[k])
                        fprintf(f, "<td><img src=\"img/%s_%d.png\" alt=\"%s\"></td>",
                                METHODS[k].name, i, METHODS[k].name);
                    else
                        fprintf(f, "<td></td>");
                }
                fprintf(f, "</tr>\n");
            }
            fprintf(f, "</table>\n</body></html>\n");
            int bad = ferror(f);
            if (fclose(f) || bad || rename(tmp, fin)) {
                fprintf(stderr, "interpretdl: cannot write %s: %s\n", fin, strerror(errno));
                remove(tmp);
                rc = EXIT_RUNTIME;
            } else {
                printf("wrote %s (%d images x %d methods)\n", fin, n, N_METHODS);
            }
        }
    }
    for (int k = 0; !rc && k < N_METHODS; k++)
        if (!ok[k]) rc = EXIT_RUNTIME;
    for (int i = 0; i < MAX_IMAGES; i++)
        idl_image_free(shown[i]);
    idl_tensor_free(x);
    idl_session_free(s);
    idl_model_free(m);
    return rc;
}

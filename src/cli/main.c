/* main.c — the interpretdl command line (public API only): info, run, grad, explain.
 * Exit status: 0 success, 1 runtime error, 2 usage error. */
#include "interpretdl/evaluate.h"
#include "interpretdl/image.h"
#include "interpretdl/interpretdl.h"
#include "interpretdl/visual.h"

#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *USAGE =
    "usage: interpretdl <command> [options]\n"
    "\n"
    "commands:\n"
    "  info MODEL.onnx [--input x.npy]...   inputs, outputs, op counts (supported?), CAM layers,\n"
    "                                       attention blocks (planned with --input shapes, or\n"
    "                                       free dims set to 1 (batch), 224 (H, W), 16 (others))\n"
    "  run MODEL --input x.npy [--input name=y.npy]... --out y.npy [--out NAME=z.npy]...\n"
    "                                       forward pass; inputs by position or name=file;\n"
    "                                       --out FILE writes output 0, NAME=FILE a named tensor\n"
    "                                       (outputs only: intermediate values share memory)\n"
    "  grad MODEL --input x.npy [--target K[,K...]|top1] [--objective "
    "logit|probability|log_probability]\n"
    "       [--seed s.npy] [--wrt input|TENSOR]... --out g.npy\n"
    "                                       gradient of the per-sample objective (summed over the\n"
    "                                       batch) w.r.t. the input or any named tensor; --seed\n"
    "                                       differentiates sum(output * s) instead (any output\n"
    "                                       shape, e.g. segmentation maps)\n"
    "  explain METHOD --model MODEL --input x.npy [--target K] [--set key=value]... --out a.npy\n"
    "                                       an explanation (saliency, smoothgrad,\n"
    "                                       integrated_gradients, gradcam, ...): `interpretdl\n"
    "                                       explain --help` lists the methods and settings;\n"
    "                                       image inputs (png, jpeg) and --overlay pictures\n"
    "  evaluate METRIC --model MODEL --input x.npy --explanation a.npy --out s.json\n"
    "                                       judges an explanation (deletion, insertion, morf,\n"
    "                                       lerf, abpc, infidelity, sensitivity, point_game,\n"
    "                                       local_fidelity): `interpretdl evaluate --help`\n"
    "  demo [--out DIR] [--imagenet DIR]    every method on the embedded Fashion-MNIST model and\n"
    "                                       images; writes DIR/index.html (default\n"
    "                                       interpretdl-demo); --imagenet adds an ImageNet model\n"
    "                                       on photos (the folder scripts/make_imagenet_model.py\n"
    "                                       makes)\n"
    "\n"
    "common options:\n"
    "  --threads N      kernel threads (default: all cores)\n"
    "  --max-memory MiB activations one pass may allocate (default: 3/4 of the RAM); explain and\n"
    "                   evaluate split their internal batches to fit, down to one row a pass\n"
    "  --output-index I objective on graph output I (grad; default 0)\n"
    "  -h, --help       this text;  --version  library version\n"
    "\n"
    "defaults: --target top1 (argmax of the clean pass), --objective probability, --wrt input\n"
    "(the first float32 graph input; for a model fed token ids, the embedding output found by\n"
    "attention discovery). With several --wrt, give as many --out files in the same order.\n";

static const char *EXPLAIN_USAGE =
    "usage: interpretdl explain METHOD --model MODEL --input x.npy [--input name=y.npy]...\n"
    "       [--target K[,K...]|top1] [--objective logit|probability|log_probability]\n"
    "       [--layer TENSOR] [--seed S] [--set key=value]... --out attribution.npy [--json "
    "run.json]\n"
    "       [--vocab vocab.txt]\n"
    "\n"
    "Explains the prediction for every sample of the batch at once. Defaults: the argmax class of\n"
    "the clean pass, the probability objective (InterpretDL's), seed 0. --json writes the "
    "targets,\n"
    "scores, completeness error (path methods), layer, settings and timing; for a token-id model\n"
    "also each token's id and score (and its text, line id of --vocab). Settings every method\n"
    "takes: objective, output, internal_batch (rows per internal pass, default 16), seed, wrt\n"
    "(tensor attributed to: default the first float32 input, or the word-embedding output of a\n"
    "token-id model), layer. Methods and their own settings (defaults shown):\n";

int cli_usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "interpretdl: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(run `interpretdl --help` for usage)\n");
    return EXIT_USAGE;
}

int cli_runtime_error(const char *what) {
    fprintf(stderr, "interpretdl: %s: %s\n", what, idl_last_error());
    return EXIT_RUNTIME;
}

#define MAX_ARGS 64

typedef struct args {
    const char *model;
    const char *inputs[MAX_ARGS];
    int n_inputs;
    const char *outs[MAX_ARGS];
    int n_outs;
    const char *wrt[MAX_ARGS];
    int n_wrt;
    const char *target;
    const char *objective;
    const char *seed;
    int threads;
    long max_memory_mib; /* 0: the library's default */
    int output_index;
    const char *sets[MAX_ARGS];
    int n_sets;
    const char *layer;
    const char *json;
    const char *method; /* explain */
    const char *preprocess, *overlay, *style, *colormap;
    const char *vocab;       /* explain: token strings, one per line (line k = id k) */
    const char *explanation; /* evaluate: the explanation judged */
    const char *csv;         /* evaluate: per-item scores as CSV */
} args;

static int parse_int(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

/* The field of an option that takes one string value (the last one given wins), or NULL. */
static const char **single_option(args *a, const char *o) {
    static const struct {
        const char *flag;
        size_t off;
    } opts[] = {
        { "--target", offsetof(args, target) },
        { "--seed", offsetof(args, seed) },
        { "--objective", offsetof(args, objective) },
        { "--layer", offsetof(args, layer) },
        { "--preprocess", offsetof(args, preprocess) },
        { "--overlay", offsetof(args, overlay) },
        { "--style", offsetof(args, style) },
        { "--colormap", offsetof(args, colormap) },
        { "--json", offsetof(args, json) },
        { "--vocab", offsetof(args, vocab) },
        { "--explanation", offsetof(args, explanation) },
        { "--csv", offsetof(args, csv) },
    };
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++)
        if (!strcmp(o, opts[i].flag)) return (const char **)(void *)((char *)a + opts[i].off);
    return NULL;
}

static int parse_args(int argc, char **argv, args *a) {
    memset(a, 0, sizeof *a);
    /* commands whose first word is a name (METHOD, METRIC) and whose model is --model */
    bool named_cmd = !strcmp(argv[1], "explain") || !strcmp(argv[1], "evaluate");
    for (int i = 2; i < argc; i++) {
        const char *o = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL                                                    \
    if (!val) return cli_usage_error("option %s needs a value", o); \
    i++;
        const char **single = single_option(a, o);
        if (single) {
            NEED_VAL
            *single = val;
        } else if (!strcmp(o, "--input")) {
            NEED_VAL
            if (a->n_inputs == MAX_ARGS) return cli_usage_error("too many %s", o);
            a->inputs[a->n_inputs++] = val;
        } else if (!strcmp(o, "--out")) {
            NEED_VAL
            if (a->n_outs == MAX_ARGS) return cli_usage_error("too many %s", o);
            a->outs[a->n_outs++] = val;
        } else if (!strcmp(o, "--wrt")) {
            NEED_VAL
            if (a->n_wrt == MAX_ARGS) return cli_usage_error("too many %s", o);
            a->wrt[a->n_wrt++] = val;
        } else if (!strcmp(o, "--set")) {
            NEED_VAL
            if (a->n_sets == MAX_ARGS) return cli_usage_error("too many %s", o);
            if (!strchr(val, '=')) return cli_usage_error("--set needs key=value, got '%s'", val);
            a->sets[a->n_sets++] = val;
        } else if (!strcmp(o, "--model") && named_cmd) {
            NEED_VAL
            if (a->model) return cli_usage_error("%s", "the model is given twice");
            a->model = val;
        } else if (!strcmp(o, "--threads")) {
            NEED_VAL
            long v;
            if (parse_int(val, 0, 4096, &v))
                return cli_usage_error("--threads needs an integer 0..4096, got '%s'", val);
            a->threads = (int)v;
        } else if (!strcmp(o, "--max-memory")) {
            NEED_VAL
            if (parse_int(val, 0, 1L << 30, &a->max_memory_mib))
                return cli_usage_error("--max-memory needs a number of MiB 0..%ld, got '%s'",
                                       1L << 30, val);
        } else if (!strcmp(o, "--output-index")) {
            NEED_VAL
            long v;
            if (parse_int(val, 0, 1 << 20, &v))
                return cli_usage_error("--output-index needs an integer >= 0, got '%s'", val);
            a->output_index = (int)v;
        } else if (o[0] == '-' && o[1]) {
            return cli_usage_error("unknown option '%s'", o);
        } else if (named_cmd && !a->method) {
            a->method = o;
        } else if (!a->model && !named_cmd) {
            a->model = o;
        } else {
            return cli_usage_error("unexpected argument '%s'", o);
        }
#undef NEED_VAL
    }
    if (named_cmd && !a->method)
        return cli_usage_error("missing %s (interpretdl %s --help lists them)",
                               strcmp(argv[1], "explain") ? "METRIC" : "METHOD", argv[1]);
    bool modelless = !strcmp(argv[1], "evaluate") && !strcmp(a->method, "point_game");
    if (!a->model && !modelless) return cli_usage_error("%s", "missing MODEL (--model)");
    return 0;
}

static void print_shape(FILE *f, const idl_value_info *vi) {
    if (vi->ndim < 0) {
        fprintf(f, "(unknown)");
        return;
    }
    fprintf(f, "(");
    for (int k = 0; k < vi->ndim; k++) {
        if (k) fprintf(f, ", ");
        if (vi->shape[k] >= 0)
            fprintf(f, "%lld", (long long)vi->shape[k]);
        else
            fprintf(f, "%s", vi->dim_param[k] ? vi->dim_param[k] : "?");
    }
    fprintf(f, ")");
}

static void print_attention(idl_session *s) {
    const idl_attention_info *a = NULL;
    if (idl_session_attention(s, NULL, 0, &a) != IDL_OK) {
        printf("attention: (discovery failed: %s)\n", idl_last_error());
        return;
    }
    if (a->n_blocks == 0) {
        printf("attention: none found\n");
        return;
    }
    static const char *pool[] = { "unknown", "class token", "mean of tokens" };
    printf("attention: %d blocks, %lld heads, %lld tokens\n", a->n_blocks,
           (long long)a->blocks[0].heads, (long long)a->blocks[0].seq_len);
    printf("  embedding output: %s\n", a->embedding ? a->embedding : "(not found)");
    if (a->grid_h)
        printf("  token grid:       %lldx%lld from %s, %lld prefix token%s\n", (long long)a->grid_h,
               (long long)a->grid_w, a->patch_conv, (long long)a->n_prefix,
               a->n_prefix == 1 ? "" : "s");
    else
        printf("  token grid:       none (text or no patch embedding found)\n");
    printf("  pooling:          %s\n", pool[a->pooling]);
    for (int i = 0; i < a->n_blocks; i++) {
        const idl_attention_block *b = &a->blocks[i];
        printf("  block %d:\n    probs        %s\n    value        %s\n    out_proj W   %s%s\n    "
               "block input  %s\n",
               i, b->probs, b->value ? b->value : "-",
               b->out_proj_weight ? b->out_proj_weight : "-",
               b->out_proj_transposed ? " (stored out x in)" : "",
               b->block_input ? b->block_input : "-");
    }
}

static int load_inputs(const args *a, const idl_model *m, idl_tensor **t, const char **names,
                       int *named);

/* ---- info ---- */
static int cmd_info(const args *a) {
    idl_model *m = NULL;
    if (idl_model_load(a->model, NULL, &m)) return cli_runtime_error("cannot load model");
    printf("model:      %s\n", a->model);
    printf("producer:   %s\n", idl_model_producer(m)[0] ? idl_model_producer(m) : "(none)");
    printf("opset:      %lld\n", (long long)idl_model_opset(m));
    printf("parameters: %lld in %d initializers\n", (long long)idl_model_n_parameters(m),
           idl_model_n_initializers(m));
    printf("inputs:\n");
    for (int i = 0; i < idl_model_n_inputs(m); i++) {
        idl_value_info vi;
        idl_model_input(m, i, &vi);
        printf("  %-24s %-8s ", vi.name, idl_dtype_name(vi.dtype));
        print_shape(stdout, &vi);
        printf("\n");
    }
    printf("outputs:\n");
    for (int i = 0; i < idl_model_n_outputs(m); i++) {
        idl_value_info vi;
        idl_model_output(m, i, &vi);
        printf("  %-24s %-8s ", vi.name, idl_dtype_name(vi.dtype));
        print_shape(stdout, &vi);
        printf("\n");
    }
    /* op histogram */
    int n = idl_model_n_nodes(m), n_types = 0, n_unsup = 0;
    const char **types = calloc((size_t)n + 1, sizeof *types);
    int *counts = calloc((size_t)n + 1, sizeof *counts);
    if (!types || !counts) {
        free(types);
        free(counts);
        idl_model_free(m);
        fprintf(stderr, "interpretdl: out of memory\n");
        return EXIT_RUNTIME;
    }
    for (int i = 0; i < n; i++) {
        const char *op = idl_model_node_op(m, i);
        int k;
        for (k = 0; k < n_types; k++)
            if (!strcmp(types[k], op)) break;
        if (k == n_types) types[n_types++] = op;
        counts[k]++;
    }
    printf("ops (%d nodes, %d types):\n", n, n_types);
    for (int k = 0; k < n_types; k++) {
        int ok = idl_op_supported(types[k], idl_model_opset(m));
        if (!ok) n_unsup++;
        printf("  %-24s %5d %s\n", types[k], counts[k], ok ? "" : "UNSUPPORTED");
    }
    if (n_unsup) {
        printf("unsupported ops:");
        for (int k = 0; k < n_types; k++)
            if (!idl_op_supported(types[k], idl_model_opset(m))) printf(" %s", types[k]);
        printf("\n");
    } else {
        printf("unsupported ops: none\n");
    }
    /* candidate layers: plan once with batch 1 (free dims set to 1) and list 4-D node outputs */
    idl_session *s = NULL;
    int ok_plan = n_unsup == 0 && idl_session_new(m, NULL, &s) == IDL_OK;
    idl_tensor *ins[64] = { 0 };
    const char *in_names[MAX_ARGS];
    int n_in = idl_model_n_inputs(m), named = 0;
    if (a->n_inputs) { /* plan with the user's inputs */
        int rc = load_inputs(a, m, ins, in_names, &named);
        if (rc) ok_plan = 0;
    }
    for (int i = 0; ok_plan && !a->n_inputs && i < n_in && i < 64; i++) {
        idl_value_info vi;
        idl_model_input(m, i, &vi);
        int64_t shp[IDL_MAX_DIMS];
        if (vi.ndim < 0) {
            ok_plan = 0;
            break;
        }
        /* free dimensions: 1 for the batch (axis 0), 224 for the height and width of an image
         * (N,C,H,W), 16 for the others (a sequence length); --input gives real shapes */
        for (int k = 0; k < vi.ndim; k++)
            shp[k] = vi.shape[k] >= 0           ? vi.shape[k]
                     : k == 0                   ? 1
                     : (vi.ndim == 4 && k >= 2) ? 224
                                                : 16;
        if (idl_tensor_new(vi.dtype == IDL_DT_UNDEFINED ? IDL_DT_F32 : vi.dtype, vi.ndim, shp,
                           &ins[i]))
            ok_plan = 0;
    }
    if (ok_plan && idl_session_forward(s, (const idl_tensor *const *)ins, named ? in_names : NULL,
                                       n_in) == IDL_OK) {
        printf("layers (4-D activations, for CAM methods; shapes at batch %lld):\n",
               (long long)(ins[0] && ins[0]->ndim ? ins[0]->shape[0] : 1));
        const char *last = NULL;
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < idl_model_node_n_outputs(m, i); k++) {
                const char *name = idl_model_node_output(m, i, k);
                const idl_tensor *t = name && *name ? idl_session_tensor(s, name) : NULL;
                if (!t || t->ndim != 4 || t->dtype != IDL_DT_F32 || t->shape[2] * t->shape[3] <= 1)
                    continue;
                printf("  %-40s %-20s (%lld, %lld, %lld, %lld)\n", name, idl_model_node_op(m, i),
                       (long long)t->shape[0], (long long)t->shape[1], (long long)t->shape[2],
                       (long long)t->shape[3]);
                last = name;
            }
        }
        if (last) printf("default CAM layer: %s\n", last);
        print_attention(s);
    } else if (n_unsup == 0) {
        printf("layers: (could not plan: %s; give real inputs with --input)\n", idl_last_error());
    }
    for (int i = 0; i < 64; i++)
        idl_tensor_free(ins[i]);
    idl_session_free(s);
    free(types);
    free(counts);
    idl_model_free(m);
    return 0;
}

/* Loads the --input files; name=file or positional. Returns 0 or an exit code. */
static int load_inputs(const args *a, const idl_model *m, idl_tensor **t, const char **names,
                       int *named) {
    *named = 0;
    if (a->n_inputs == 0) return cli_usage_error("%s", "missing --input");
    for (int i = 0; i < a->n_inputs; i++) {
        const char *spec = a->inputs[i], *eq = strchr(spec, '=');
        const char *path = spec;
        names[i] = NULL;
        if (eq) {
            static char namebuf[MAX_ARGS][256];
            size_t l = (size_t)(eq - spec);
            if (l >= sizeof namebuf[i]) return cli_usage_error("input name too long in '%s'", spec);
            memcpy(namebuf[i], spec, l);
            namebuf[i][l] = 0;
            names[i] = namebuf[i];
            path = eq + 1;
            (*named)++;
        }
        if (idl_npy_load(path, &t[i])) return cli_runtime_error("cannot read input");
    }
    if (*named && *named != a->n_inputs)
        return cli_usage_error("%s", "give every --input as name=file or none of them");
    if (a->n_inputs != idl_model_n_inputs(m)) {
        fprintf(stderr, "interpretdl: the model has %d inputs (", idl_model_n_inputs(m));
        for (int i = 0; i < idl_model_n_inputs(m); i++)
            fprintf(stderr, "%s%s", i ? ", " : "", idl_model_input_name(m, i));
        fprintf(stderr, "), %d given\n", a->n_inputs);
        return EXIT_USAGE;
    }
    return 0;
}

/* forward_only: the session's passes keep only inputs, outputs and constants (session.h) */
static int open_model_opts(const args *a, bool forward_only, idl_model **m, idl_session **s) {
    if (idl_model_load(a->model, NULL, m)) return cli_runtime_error("cannot load model");
    idl_session_opts so = idl_session_opts_default();
    so.n_threads = a->threads;
    so.max_memory = (uint64_t)a->max_memory_mib << 20;
    so.forward_only = forward_only;
    if (idl_session_new(*m, &so, s)) return cli_runtime_error("cannot run model");
    return 0;
}

static int open_model(const args *a, idl_model **m, idl_session **s) {
    return open_model_opts(a, false, m, s);
}

static void print_summary(const char *label, const idl_tensor *t) {
    printf("%s: %s (", label, idl_dtype_name(t->dtype));
    for (int k = 0; k < t->ndim; k++)
        printf("%s%lld", k ? ", " : "", (long long)t->shape[k]);
    printf(")");
    if (t->dtype == IDL_DT_F32 && t->ndim >= 1 && t->shape[0] > 0) {
        int64_t n = t->shape[0], per = idl_tensor_numel(t) / n;
        const float *d = t->data;
        printf(" top1:");
        for (int64_t b = 0; b < n && b < 16; b++) {
            int64_t best = 0;
            for (int64_t j = 1; j < per; j++)
                if (d[b * per + j] > d[b * per + best]) best = j;
            printf(" %lld", (long long)best);
        }
        if (n > 16) printf(" ...");
    }
    printf("\n");
}

/* ---- run ---- */
static int cmd_run(const args *a) {
    idl_model *m = NULL;
    idl_session *s = NULL;
    idl_tensor *in[MAX_ARGS] = { 0 };
    const char *names[MAX_ARGS];
    /* graph outputs only: the inference path (a forward-only plan: intermediate values share
     * memory); a named tensor keeps every value */
    bool outputs_only = true;
    for (int i = 0; i < a->n_outs; i++)
        outputs_only = outputs_only && !strchr(a->outs[i], '=');
    int named = 0, rc = open_model_opts(a, outputs_only, &m, &s);
    if (!rc) rc = load_inputs(a, m, in, names, &named);
    if (!rc && a->n_outs == 0) rc = cli_usage_error("%s", "missing --out");
    if (!rc &&
        idl_session_forward(s, (const idl_tensor *const *)in, named ? names : NULL, a->n_inputs))
        rc = cli_runtime_error("forward failed");
    for (int i = 0; !rc && i < a->n_outs; i++) {
        const char *spec = a->outs[i], *eq = strchr(spec, '=');
        const idl_tensor *t;
        const char *path = spec;
        if (eq) {
            char name[256];
            size_t l = (size_t)(eq - spec);
            if (l >= sizeof name) {
                rc = cli_usage_error("tensor name too long in '%s'", spec);
                break;
            }
            memcpy(name, spec, l);
            name[l] = 0;
            path = eq + 1;
            t = idl_session_tensor(s, name);
            if (!t) {
                rc = cli_runtime_error("--out");
                break;
            }
        } else {
            t = idl_session_output(s, i);
            if (!t) {
                rc = cli_usage_error("the model has no output %s (use NAME=FILE)", spec);
                break;
            }
        }
        if (idl_npy_save(path, t))
            rc = cli_runtime_error("cannot write output");
        else
            print_summary(path, t);
    }
    for (int i = 0; i < MAX_ARGS; i++)
        idl_tensor_free(in[i]);
    idl_session_free(s);
    idl_model_free(m);
    return rc;
}

/* `--wrt input`: the first float32 graph input; for a model fed only integers (token ids), the
 * embedding output found by attention discovery. Says which on stderr when there is a choice. */
static const char *resolve_input_keyword(const idl_model *m, idl_session *s) {
    int n = idl_model_n_inputs(m);
    for (int k = 0; k < n; k++) {
        const char *name = idl_model_input_name(m, k);
        const idl_tensor *t = idl_session_tensor(s, name);
        if (t && t->dtype == IDL_DT_F32) {
            if (n > 1)
                fprintf(stderr, "interpretdl: note: --wrt input means the graph input '%s'\n",
                        name);
            return name;
        }
    }
    const idl_attention_info *att = NULL;
    if (idl_session_attention(s, NULL, 0, &att) == IDL_OK && att->embedding) {
        fprintf(stderr,
                "interpretdl: note: the inputs are integers; --wrt input means the embedding "
                "output '%s'\n",
                att->embedding);
        return att->embedding;
    }
    fprintf(stderr, "interpretdl: no float32 graph input and no embedding output found; name the "
                    "tensor with --wrt (`interpretdl info` lists them)\n");
    return NULL;
}

/* --target K[,K...]: one class for every sample or one per sample. Returns 0 or an exit code. */
static int parse_targets(const char *spec, int64_t n, int64_t **out) {
    int64_t *targets = calloc((size_t)n + 1, sizeof *targets);
    const char *p = spec;
    int64_t k = 0;
    int rc = targets ? 0 : cli_runtime_error("out of memory");
    while (!rc && *p) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || v < 0)
            rc = cli_usage_error("--target needs class indices or top1, got '%s'", spec);
        else if (k < n)
            targets[k++] = v;
        else
            rc = cli_usage_error("--target gives more classes than the batch has samples: '%s'",
                                 spec);
        p = *end == ',' ? end + 1 : end;
        if (!rc && *end && *end != ',')
            rc = cli_usage_error("--target needs class indices or top1, got '%s'", spec);
    }
    if (!rc && k == 0) rc = cli_usage_error("--target needs class indices or top1, got '%s'", spec);
    if (!rc && k == 1)
        for (int64_t b = 1; b < n; b++)
            targets[b] = targets[0];
    else if (!rc && k != n)
        rc = cli_usage_error("--target gives a class for some samples only: '%s'", spec);
    if (rc) {
        free(targets);
        targets = NULL;
    }
    *out = targets;
    return rc;
}

/* ---- grad ---- */
static int cmd_grad(const args *a) {
    idl_model *m = NULL;
    idl_session *s = NULL;
    idl_tensor *in[MAX_ARGS] = { 0 };
    const char *names[MAX_ARGS];
    int64_t *targets = NULL;
    int named = 0, rc = open_model(a, &m, &s);
    if (!rc) rc = load_inputs(a, m, in, names, &named);
    idl_objective obj = idl_objective_default();
    obj.output = a->output_index;
    if (!rc && a->objective && idl_objective_kind_parse(a->objective, &obj.kind))
        rc = cli_usage_error("%s", idl_last_error());
    const char *wrt[MAX_ARGS];
    int n_wrt = a->n_wrt ? a->n_wrt : 1;
    for (int i = 0; !rc && i < n_wrt; i++) {
        const char *w = a->n_wrt ? a->wrt[i] : "input";
        /* "input" (unless a tensor has that name) is resolved after the forward pass */
        wrt[i] = !strcmp(w, "input") && !idl_model_has_tensor(m, "input") ? NULL : w;
    }
    if (!rc && a->n_outs != n_wrt) rc = cli_usage_error("%s", "give one --out per --wrt");
    idl_tensor *seed = NULL;
    if (!rc && a->seed && (a->target || a->objective))
        rc = cli_usage_error("%s",
                             "--seed replaces --target and --objective; give one or the other");
    if (!rc && a->seed) {
        if (idl_npy_load(a->seed, &seed)) rc = cli_runtime_error("cannot read --seed");
        obj.kind = IDL_OBJ_SEED;
        obj.seed = seed;
    }
    if (!rc &&
        idl_session_forward(s, (const idl_tensor *const *)in, named ? names : NULL, a->n_inputs))
        rc = cli_runtime_error("forward failed");
    for (int i = 0; !rc && i < n_wrt; i++)
        if (!wrt[i] && !(wrt[i] = resolve_input_keyword(m, s))) rc = EXIT_RUNTIME;
    if (!rc && a->target && strcmp(a->target, "top1") != 0) {
        const idl_tensor *y = idl_session_output(s, a->output_index);
        rc = parse_targets(a->target, y && y->ndim ? y->shape[0] : 1, &targets);
        obj.targets = targets;
    }
    if (!rc && idl_session_backward(s, &obj, wrt, n_wrt)) rc = cli_runtime_error("gradient failed");
    for (int i = 0; !rc && i < n_wrt; i++) {
        const idl_tensor *g = idl_session_grad(s, wrt[i]);
        if (!g || idl_npy_save(a->outs[i], g)) rc = cli_runtime_error("cannot write gradient");
    }
    if (!rc) {
        int64_t nt;
        const int64_t *t = idl_session_targets(s, &nt);
        const idl_tensor *ov = idl_session_objective_values(s);
        for (int64_t b = 0; b < nt; b++)
            printf("sample %lld: target %lld objective %.6g\n", (long long)b, (long long)t[b],
                   ov ? (double)((const float *)ov->data)[b] : 0.0);
        for (int64_t b = 0; !nt && ov && b < idl_tensor_numel(ov); b++)
            printf("sample %lld: objective %.6g\n", (long long)b,
                   (double)((const float *)ov->data)[b]);
        for (int i = 0; i < n_wrt; i++)
            printf("wrote %s (d objective / d %s)\n", a->outs[i], wrt[i]);
    }
    free(targets);
    idl_tensor_free(seed);
    for (int i = 0; i < MAX_ARGS; i++)
        idl_tensor_free(in[i]);
    idl_session_free(s);
    idl_model_free(m);
    return rc;
}

/* ---- explain ---- */
static void json_str(FILE *f, const char *v) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)v; p && *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* The opening of a run's record: what ran (key "method" or "metric"), the model, the library,
 * the settings, objective and seed. */
static void json_head(FILE *f, const args *a, const char *what) {
    fprintf(f, "{\n  \"%s\": ", what);
    json_str(f, a->method);
    fprintf(f, ",\n  \"model\": ");
    json_str(f, a->model);
    fprintf(f, ",\n  \"library\": ");
    json_str(f, idl_version());
    fprintf(f, ",\n  \"settings\": {");
    for (int i = 0; i < a->n_sets; i++) {
        const char *eq = strchr(a->sets[i], '=');
        char key[256];
        size_t l =
            (size_t)(eq - a->sets[i]) < sizeof key - 1 ? (size_t)(eq - a->sets[i]) : sizeof key - 1;
        memcpy(key, a->sets[i], l);
        key[l] = 0;
        fprintf(f, "%s", i ? ", " : "");
        json_str(f, key);
        fprintf(f, ": ");
        json_str(f, eq + 1);
    }
    /* the values in effect: a --set overrides the option */
    const char *objective = a->objective ? a->objective : "probability";
    const char *seed = a->seed ? a->seed : "0";
    for (int i = 0; i < a->n_sets; i++) {
        if (!strncmp(a->sets[i], "objective=", 10)) objective = a->sets[i] + 10;
        if (!strncmp(a->sets[i], "seed=", 5)) seed = a->sets[i] + 5;
    }
    fprintf(f, "},\n  \"objective\": ");
    json_str(f, a->model ? objective : "");
    fprintf(f, ",\n  \"seed\": %s", seed); /* checked by then: an integer */
}

/* Opens path.tmp for writing into *f; tmp_close and tmp_rename then put it over path (nothing
 * the user had is lost on failure). Returns 0, EXIT_USAGE (path too long) or EXIT_RUNTIME. */
static int tmp_open(const char *path, char *tmp, size_t cap, FILE **f) {
    *f = NULL;
    if (snprintf(tmp, cap, "%s.tmp", path) >= (int)cap)
        return cli_usage_error("output path too long: %s", path);
    *f = fopen(tmp, "w");
    if (!*f) {
        fprintf(stderr, "interpretdl: cannot write %s: %s\n", tmp, strerror(errno));
        return EXIT_RUNTIME;
    }
    return 0;
}

/* Closes a temporary file; on failure removes it. Returns 0 or EXIT_RUNTIME. */
static int tmp_close(FILE *f, const char *tmp, const char *path) {
    int bad = ferror(f);
    if (fclose(f) || bad) {
        fprintf(stderr, "interpretdl: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return EXIT_RUNTIME;
    }
    return 0;
}

static int tmp_rename(const char *tmp, const char *path) {
    if (rename(tmp, path)) {
        fprintf(stderr, "interpretdl: cannot write %s: %s\n", path, strerror(errno));
        remove(tmp);
        return EXIT_RUNTIME;
    }
    return 0;
}

/* The run's record: method, model, settings, targets, scores, completeness, shape, timing. Written
 * to a temporary name and renamed. */
/* The tokens of a token-id model, for the record: ids (N, T) and, with --vocab, their text. */
typedef struct token_info {
    const idl_tensor *ids;
    char **vocab;
    int64_t n_vocab;
} token_info;

static int64_t token_id(const idl_tensor *ids, int64_t j) {
    return ids->dtype == IDL_DT_I64 ? ((const int64_t *)ids->data)[j]
                                    : ((const int32_t *)ids->data)[j];
}

/* --vocab: one token per line; returns 0 or an exit code. */
static int load_vocab(const char *path, token_info *t) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "interpretdl: cannot read --vocab %s: %s\n", path, strerror(errno));
        return EXIT_RUNTIME;
    }
    char line[4096];
    int64_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (t->n_vocab == cap) {
            cap = cap ? 2 * cap : 1024;
            char **v = realloc(t->vocab, sizeof(char *) * (size_t)cap);
            if (!v) break;
            t->vocab = v;
        }
        size_t len = strlen(line) + 1;
        if (!(t->vocab[t->n_vocab] = malloc(len))) break;
        memcpy(t->vocab[t->n_vocab], line, len);
        t->n_vocab++;
    }
    bool bad = ferror(f) || !feof(f);
    fclose(f);
    if (bad) {
        fprintf(stderr, "interpretdl: cannot read --vocab %s\n", path);
        return EXIT_RUNTIME;
    }
    return 0;
}

static void free_vocab(token_info *t) {
    for (int64_t i = 0; i < t->n_vocab; i++)
        free(t->vocab[i]);
    free(t->vocab);
}

static int write_json(const args *a, const idl_explanation *e, const int64_t *targets_given,
                      double seconds, const token_info *tok, const char *preprocess) {
    char tmp[4096];
    FILE *f;
    int rc = tmp_open(a->json, tmp, sizeof tmp, &f);
    if (rc) return rc;
    json_head(f, a, "method");
    fprintf(f, ",\n  \"targets_given\": %s", targets_given ? "true" : "false");
    if (preprocess && *preprocess) fprintf(f, ",\n  \"preprocess\": %s", preprocess);
    fprintf(f, ",\n  \"wrt\": ");
    json_str(f, e->wrt);
    fprintf(f, ",\n  \"layer\": ");
    json_str(f, e->layer);
    fprintf(f, ",\n  \"shape\": [");
    for (int k = 0; k < e->attribution->ndim; k++)
        fprintf(f, "%s%lld", k ? ", " : "", (long long)e->attribution->shape[k]);
    fprintf(f, "],\n  \"passes\": %lld,\n  \"seconds\": %.4f,\n  \"samples\": [",
            (long long)e->passes, seconds);
    for (int64_t b = 0; b < e->n; b++) {
        int64_t k = e->k > 1 ? e->k : 1;
        fprintf(f, "%s\n    {\"target\": %lld, \"score\": %.9g", b ? "," : "",
                (long long)e->targets[b * k], (double)e->score[b]);
        if (e->baseline_score)
            fprintf(f, ", \"baseline_score\": %.9g", (double)e->baseline_score[b]);
        if (e->delta) fprintf(f, ", \"completeness_error\": %.9g", e->delta[b]);
        if (e->features) { /* surrogate methods: one coefficient per feature (per class) */
            int64_t S = e->features->shape[1];
            if (k > 1) {
                fprintf(f, ", \"targets\": [");
                for (int64_t c = 0; c < k; c++)
                    fprintf(f, "%s%lld", c ? ", " : "", (long long)e->targets[b * k + c]);
                fprintf(f, "]");
            }
            for (int64_t c = 0; c < k; c++) {
                int64_t row = b * k + c;
                fprintf(f, k > 1 ? "%s\n      {\"class\": %lld, " : "%s",
                        c       ? ","
                        : k > 1 ? ", \"classes\": ["
                                : ", ",
                        (long long)e->targets[row]);
                fprintf(f, "\"intercept\": %.9g, \"r2\": %.9g, \"features\": [", e->intercept[row],
                        e->r2[row]);
                for (int64_t j = 0; j < e->n_features[b]; j++)
                    fprintf(f, "%s%.9g", j ? ", " : "",
                            (double)((const float *)e->features->data)[row * S + j]);
                fprintf(f, k > 1 ? "]}" : "]");
            }
            if (k > 1) fprintf(f, "]");
        }
        if (tok) { /* a token-id model: (N, T, D) summed over D, or (N, T): a score per token */
            const idl_tensor *t = e->attribution;
            int64_t T = t->shape[1], D = t->ndim == 3 ? t->shape[2] : 1;
            fprintf(f, ", \"token_ids\": [");
            for (int64_t tk = 0; tk < T; tk++)
                fprintf(f, "%s%lld", tk ? ", " : "", (long long)token_id(tok->ids, b * T + tk));
            if (tok->vocab) {
                fprintf(f, "], \"tokens\": [");
                for (int64_t tk = 0; tk < T; tk++) {
                    int64_t id = token_id(tok->ids, b * T + tk);
                    fprintf(f, "%s", tk ? ", " : "");
                    json_str(f, id >= 0 && id < tok->n_vocab ? tok->vocab[id] : "[?]");
                }
            }
            fprintf(f, "], \"token_scores\": [");
            for (int64_t tk = 0; tk < T; tk++) {
                double v = 0;
                for (int64_t d = 0; d < D; d++)
                    v += ((const float *)t->data)[(b * T + tk) * D + d];
                fprintf(f, "%s%.9g", tk ? ", " : "", v);
            }
            fprintf(f, "]");
        }
        fprintf(f, "}");
    }
    fprintf(f, "\n  ]\n}\n");
    rc = tmp_close(f, tmp, a->json);
    return rc ? rc : tmp_rename(tmp, a->json);
}

static int progress_bar(int64_t done, int64_t total, void *user) {
    (void)user;
    if (total <= 0) return 0;
    int w = 40, k = (int)(w * done / total);
    fprintf(stderr, "\r[%.*s%*s] %lld/%lld", k, "########################################", w - k,
            "", (long long)done, (long long)total);
    if (done >= total) fprintf(stderr, "\n");
    return 0;
}

static bool is_image_path(const char *p) {
    static const char *const ext[] = { ".png", ".jpg", ".jpeg", ".bmp", ".PNG", ".JPG", ".JPEG" };
    size_t n = strlen(p);
    for (size_t k = 0; k < sizeof ext / sizeof *ext; k++) {
        size_t e = strlen(ext[k]);
        if (n > e && !strcmp(p + n - e, ext[k])) return true;
    }
    return false;
}

/* Image inputs: every --input is an image file; decoded, preprocessed (--preprocess, or a
 * default from the model's input: 1 channel -> "scale", else "imagenet"; fixed H x W -> short side
 * resized to max(H, W) and centre-cropped to H x W, free -> 224 x 224) and stacked into one batch.
 * shown[i] receives the 8-bit picture of sample i. Returns 0 or an exit code. */
static int load_images(const args *a, const idl_model *m, idl_tensor **batch, idl_image **shown,
                       char *pp_json, size_t json_cap) {
    idl_preprocess pp;
    if (a->preprocess) {
        if (idl_preprocess_parse(a->preprocess, &pp))
            return cli_usage_error("--preprocess: %s", idl_last_error());
    } else {
        idl_value_info vi;
        char spec[128];
        int64_t C = 3, H = -1, W = -1;
        if (idl_model_input(m, 0, &vi) == IDL_OK && vi.ndim == 4)
            C = vi.shape[1], H = vi.shape[2], W = vi.shape[3];
        if (H > 0 && W > 0)
            snprintf(spec, sizeof spec, "%s,resize=%lld,crop=%lldx%lld",
                     C == 1 ? "scale,channels=1" : "imagenet", (long long)(H > W ? H : W),
                     (long long)W, (long long)H);
        else
            snprintf(spec, sizeof spec, "%s,resize=224,crop=224x224",
                     C == 1 ? "scale,channels=1" : "imagenet");
        if (idl_preprocess_parse(spec, &pp)) return cli_runtime_error("default preprocessing");
    }
    idl_preprocess_json(&pp, pp_json, json_cap);
    for (int i = 0; i < a->n_inputs; i++) {
        idl_image *img = NULL;
        idl_tensor *t = NULL;
        if (idl_image_load(a->inputs[i], 0, &img)) return cli_runtime_error(a->inputs[i]);
        idl_status st = idl_preprocess_image(img, &pp, &t, &shown[i]);
        idl_image_free(img);
        if (st) return cli_runtime_error(a->inputs[i]);
        if (!*batch) {
            int64_t shp[IDL_MAX_DIMS];
            memcpy(shp, t->shape, sizeof(int64_t) * (size_t)t->ndim);
            shp[0] = a->n_inputs;
            if (idl_tensor_new(IDL_DT_F32, t->ndim, shp, batch)) {
                idl_tensor_free(t);
                return cli_runtime_error("memory");
            }
        }
        size_t per = (size_t)idl_tensor_numel(t);
        if ((int64_t)per * a->n_inputs != idl_tensor_numel(*batch)) {
            idl_tensor_free(t);
            return cli_usage_error("%s has another size after preprocessing than the first "
                                   "image; give --preprocess with a fixed size or crop",
                                   a->inputs[i]);
        }
        memcpy((float *)(*batch)->data + per * (size_t)i, t->data, per * sizeof(float));
        idl_tensor_free(t);
    }
    return 0;
}

/* --style / --colormap into overlay options (checked before any work is done). */
static int overlay_opts(const args *a, idl_overlay_opts *oo) {
    *oo = idl_overlay_opts_default();
    bool cam = strstr(a->method, "cam") && strcmp(a->method, "guided_gradcam") != 0;
    oo->style = cam || !strcmp(a->method, "consensus") ? IDL_OVERLAY_HEATMAP
                : strstr(a->method, "lime")            ? IDL_OVERLAY_THRESHOLD
                                                       : IDL_OVERLAY_GRAYSCALE;
    if (a->style) {
        static const char *const names[] = { "heatmap", "grayscale", "threshold", "signed" };
        int k = -1;
        for (int i = 0; i < 4; i++)
            if (!strcmp(a->style, names[i])) k = i;
        if (k < 0)
            return cli_usage_error("--style must be heatmap, grayscale, threshold or signed, got "
                                   "'%s'",
                                   a->style);
        oo->style = (idl_overlay_style)k;
    }
    if (a->colormap && idl_colormap_parse(a->colormap, &oo->colormap))
        return cli_usage_error("--colormap: %s", idl_last_error());
    return 0;
}

/* --overlay: the picture of every sample (a labelled grid when there are several). */
static int write_overlay(const args *a, const idl_explanation *e, idl_image *const *shown) {
    idl_overlay_opts oo;
    if (overlay_opts(a, &oo)) return EXIT_USAGE;
    idl_reduce red = oo.style == IDL_OVERLAY_SIGNED ? IDL_REDUCE_SUM : IDL_REDUCE_ABS_SUM;
    int n = (int)e->n, rc = 0;
    idl_image *pics[MAX_ARGS] = { 0 };
    char lab[MAX_ARGS][128];
    const char *labels[MAX_ARGS];
    for (int i = 0; !rc && i < n && i < MAX_ARGS; i++) {
        idl_tensor *map = NULL;
        idl_image *big = NULL;
        if (!shown || !shown[i]) {
            rc = cli_usage_error("%s", "--overlay needs image inputs (png or jpeg)");
        } else {
            /* small inputs (28 x 28) are shown enlarged, pixels kept square */
            int side = shown[i]->width < shown[i]->height ? shown[i]->width : shown[i]->height;
            int zoom = side > 0 && side < 224 ? 224 / side : 1;
            bool top = e->features && e->segments && oo.style == IDL_OVERLAY_THRESHOLD;
            if (idl_image_resize(shown[i], shown[i]->width * zoom, shown[i]->height * zoom,
                                 IDL_RESIZE_NEAREST, &big) ||
                (top ? idl_lime_top_mask(e, i, 0.2f, &map)
                     : idl_attribution_map(e->attribution, i, red, &map)) ||
                idl_overlay(big, map, &oo, &pics[i]))
                rc = cli_runtime_error("overlay");
        }
        idl_image_free(big);
        idl_tensor_free(map);
        snprintf(lab[i], sizeof lab[i], "class %lld  %.3g", (long long)e->targets[i],
                 (double)e->score[i]);
        labels[i] = lab[i];
    }
    if (!rc) {
        idl_image *grid = NULL;
        if (n == 1 ? idl_image_save_png(a->overlay, pics[0])
                   : (idl_image_grid((const idl_image *const *)pics, labels, n, 0, &grid) ||
                      idl_image_save_png(a->overlay, grid)))
            rc = cli_runtime_error("cannot write --overlay");
        idl_image_free(grid);
    }
    for (int i = 0; i < MAX_ARGS; i++)
        idl_image_free(pics[i]);
    if (!rc) printf("wrote %s\n", a->overlay);
    return rc;
}

/* The pictures the batch was made from as (N, H, W, C) floats in [0, 1], for methods that
 * segment them; NULL (and 0) when they do not match the input's size. */
static int pictures_tensor(const idl_tensor *x, idl_image *const *shown, idl_tensor **out) {
    *out = NULL;
    if (x->ndim != 4) return 0;
    int64_t N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    for (int64_t i = 0; i < N; i++)
        if (!shown[i] || shown[i]->width != W || shown[i]->height != H || shown[i]->channels != C)
            return 0;
    int64_t shape[4] = { N, H, W, C };
    if (idl_tensor_new(IDL_DT_F32, 4, shape, out)) return cli_runtime_error("out of memory");
    float *d = (*out)->data;
    for (int64_t i = 0; i < N; i++)
        for (int64_t j = 0; j < H * W * C; j++)
            d[i * H * W * C + j] = (float)shown[i]->data[j] / 255.0f;
    return 0;
}

/* Settings the command line acts on after the run: segments_out=F.npy (the label map, (H, W) for
 * one sample, else (N, H, W)) and masks_out=F.npy (the perturbation masks). */
static int write_extra(const args *a, const idl_explanation *e) {
    for (int i = 0; i < a->n_sets; i++) {
        const char *v = strchr(a->sets[i], '=') + 1;
        bool seg = !strncmp(a->sets[i], "segments_out=", 13);
        bool masks = !strncmp(a->sets[i], "masks_out=", 10);
        bool concepts = !strncmp(a->sets[i], "concepts_out=", 13);
        if (!seg && !masks && !concepts) continue;
        idl_tensor *t = seg ? e->segments : masks ? e->masks : e->concepts;
        if (!t)
            return cli_usage_error("%s does not produce %s", a->method,
                                   seg     ? "segments"
                                   : masks ? "masks"
                                           : "concepts");
        idl_tensor view = *t;
        if (seg && t->shape[0] == 1) { /* one image: its label map */
            view.ndim = 2;
            view.shape[0] = t->shape[1];
            view.shape[1] = t->shape[2];
        }
        if (idl_npy_save(v, &view))
            return cli_runtime_error(seg     ? "cannot write segments_out"
                                     : masks ? "cannot write masks_out"
                                             : "cannot write concepts_out");
    }
    return 0;
}

/* What explain and evaluate share: the model, its session, the inputs (.npy files, or images
 * decoded, preprocessed and stacked, with their pictures) and the request built from the options.
 */
typedef struct job {
    idl_model *m;
    idl_session *s;
    idl_tensor *in[MAX_ARGS];
    const char *names[MAX_ARGS];
    bool images;
    idl_image *shown[MAX_ARGS];
    char pp_json[1024];
    int64_t *targets;
    idl_tensor *pictures;
    idl_explain_request rq;
} job;

static void job_close(job *j) {
    idl_tensor_free(j->pictures);
    free(j->targets);
    for (int i = 0; i < MAX_ARGS; i++) {
        idl_tensor_free(j->in[i]);
        idl_image_free(j->shown[i]);
    }
    idl_session_free(j->s);
    idl_model_free(j->m);
    memset(j, 0, sizeof *j);
}

/* Opens the model and the inputs and builds the request; cmd names the command in messages.
 * Returns 0 or an exit code (then the job still has to be closed). */
static int job_open(const args *a, job *j, const char *cmd) {
    memset(j, 0, sizeof *j);
    int named = 0, rc = open_model(a, &j->m, &j->s);
    j->images = a->n_inputs > 0;
    for (int i = 0; i < a->n_inputs; i++)
        j->images = j->images && is_image_path(a->inputs[i]);
    if (!rc && j->images)
        rc = load_images(a, j->m, &j->in[0], j->shown, j->pp_json, sizeof j->pp_json);
    if (!rc && !j->images) rc = load_inputs(a, j->m, j->in, j->names, &named);
    if (!rc && a->preprocess && !j->images)
        rc = cli_usage_error("%s", "--preprocess applies to image inputs (png or jpeg)");
    idl_explain_request rq = idl_explain_request_default();
    rq.inputs = (const idl_tensor *const *)j->in;
    rq.input_names = named ? j->names : NULL;
    rq.n_inputs = j->images ? 1 : a->n_inputs;
    rq.output = a->output_index;
    rq.layer = a->layer;
    if (!rc && a->objective && idl_objective_kind_parse(a->objective, &rq.objective))
        rc = cli_usage_error("%s", idl_last_error());
    if (!rc && a->objective && rq.objective == IDL_OBJ_SEED)
        rc = cli_usage_error("%s takes --objective logit, probability or log_probability", cmd);
    if (!rc && a->seed) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(a->seed, &end, 10);
        if (errno || !*a->seed || *end || a->seed[0] == '-')
            rc = cli_usage_error("--seed needs a non-negative integer, got '%s'", a->seed);
        rq.seed = v;
    }
    if (!rc && a->target && strcmp(a->target, "top1") != 0) {
        int64_t n = 1;
        for (int i = 0; i < rq.n_inputs; i++)
            if (j->in[i]->ndim >= 1 && idl_tensor_numel(j->in[i]) > 16) {
                n = j->in[i]->shape[0];
                break;
            }
        rc = parse_targets(a->target, n, &j->targets);
        rq.targets = j->targets;
    }
    if (!rc && isatty(2)) rq.progress = progress_bar;
    if (!rc && j->images) rc = pictures_tensor(j->in[0], j->shown, &j->pictures);
    rq.image = j->pictures;
    j->rq = rq;
    return rc;
}

static int cmd_explain(const args *a) {
    const char *const *methods = idl_explain_methods();
    bool known = false;
    for (int i = 0; methods[i]; i++)
        known = known || !strcmp(methods[i], a->method);
    if (!known) {
        fprintf(stderr, "interpretdl: unknown method '%s'; methods:", a->method);
        for (int i = 0; methods[i]; i++)
            fprintf(stderr, " %s", methods[i]);
        fprintf(stderr, "\n");
        return EXIT_USAGE;
    }
    if (a->n_outs != 1) return cli_usage_error("%s", "explain needs one --out FILE.npy");
    job jb;
    int rc = job_open(a, &jb, "explain");
    if (!rc && a->overlay && !jb.images)
        rc = cli_usage_error("%s", "--overlay needs image inputs (png or jpeg)");
    idl_overlay_opts oo_check;
    if (!rc && a->overlay) rc = overlay_opts(a, &oo_check);
    idl_session *s = jb.s;
    idl_explain_request rq = jb.rq;
    idl_tensor **in = jb.in;
    idl_image **shown = jb.shown;
    bool images = jb.images;
    const int64_t *targets = jb.targets;
    const char *pp_json = jb.pp_json;
    idl_explanation e = { 0 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (!rc && idl_explain(s, a->method, &rq, a->sets, a->n_sets, &e)) {
        int code = strstr(idl_last_error(), "setting") ? EXIT_USAGE : EXIT_RUNTIME;
        fprintf(stderr, "interpretdl: explain %s: %s\n", a->method, idl_last_error());
        rc = code;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    /* a token-id model (no float input) whose map has a value per token */
    token_info tok = { 0 };
    for (int i = 0; !images && i < rq.n_inputs; i++)
        if (in[i]->dtype == IDL_DT_F32)
            tok.ids = NULL, i = rq.n_inputs;
        else if (!tok.ids && (in[i]->dtype == IDL_DT_I64 || in[i]->dtype == IDL_DT_I32) &&
                 in[i]->ndim == 2)
            tok.ids = in[i];
    bool per_token = tok.ids && e.attribution && e.attribution->ndim >= 2 &&
                     e.attribution->ndim <= 3 && e.attribution->shape[0] == tok.ids->shape[0] &&
                     e.attribution->shape[1] == tok.ids->shape[1] &&
                     (e.attribution->ndim == 2 || e.wrt[0]);
    if (!rc && a->vocab)
        rc = per_token ? load_vocab(a->vocab, &tok)
                       : cli_usage_error("%s", "--vocab applies to a token-id "
                                               "model's per-token explanation");
    if (!rc && idl_npy_save(a->outs[0], e.attribution))
        rc = cli_runtime_error("cannot write --out");
    if (!rc) rc = write_extra(a, &e);
    if (!rc && a->json) rc = write_json(a, &e, targets, secs, per_token ? &tok : NULL, pp_json);
    free_vocab(&tok);
    if (!rc && a->overlay) rc = write_overlay(a, &e, shown);
    if (!rc) {
        for (int64_t b = 0; b < e.n; b++) {
            printf("sample %lld: target %lld score %.6g", (long long)b,
                   (long long)e.targets[b * (e.k > 1 ? e.k : 1)], (double)e.score[b]);
            if (e.delta)
                printf(" baseline %.6g completeness error %.3g", (double)e.baseline_score[b],
                       e.delta[b]);
            printf("\n");
        }
        printf("wrote %s", a->outs[0]);
        print_summary("", e.attribution);
        if (e.layer[0]) printf("layer %s\n", e.layer);
        printf("%lld passes in %.3f s\n", (long long)e.passes, secs);
    }
    idl_explanation_clear(&e);
    job_close(&jb);
    return rc;
}

/* A help text, one setting per line, indented. */
static void print_help_lines(const char *h) {
    while (h && *h) {
        const char *nl = strchr(h, '\n');
        int len = nl ? (int)(nl - h) : (int)strlen(h);
        printf("    %.*s\n", len, h);
        h += len + (nl ? 1 : 0);
    }
}

/* ---- evaluate ---- */

static void json_num(FILE *f, double v) {
    if (isfinite(v))
        fprintf(f, "%.9g", v);
    else
        fprintf(f, "null");
}

/* Mean of score k over the items, NaN ones left out (NaN if none). */
static double score_mean(const idl_evaluation *ev, int k) {
    double sum = 0;
    int64_t n = 0;
    for (int64_t b = 0; b < ev->n; b++) {
        double v = ev->values[b * ev->n_scores + k];
        if (!isnan(v)) sum += v, n++;
    }
    return n ? sum / (double)n : NAN;
}

static void json_curve(FILE *f, const char *key, const idl_tensor *c, int64_t b) {
    if (!c) return;
    int64_t P = c->shape[1];
    fprintf(f, ", \"%s\": [", key);
    for (int64_t j = 0; j < P; j++) {
        fprintf(f, "%s", j ? ", " : "");
        json_num(f, ((const double *)c->data)[b * P + j]);
    }
    fprintf(f, "]");
}

static void write_eval_json(FILE *f, const args *a, const idl_evaluation *ev, double secs) {
    json_head(f, a, "metric");
    fprintf(f, ",\n  \"explanation\": ");
    json_str(f, a->explanation);
    fprintf(f, ",\n  \"items\": %lld", (long long)ev->n);
    for (int k = 0; k < ev->n_scores; k++) { /* each score by name: the mean over the items */
        fprintf(f, ",\n  \"%s\": ", ev->names[k]);
        json_num(f, score_mean(ev, k));
    }
    fprintf(f, ",\n  \"passes\": %lld,\n  \"seconds\": %.4f,\n  \"per_item\": [",
            (long long)ev->passes, secs);
    for (int64_t b = 0; b < ev->n; b++) {
        fprintf(f, "%s\n    {\"index\": %lld", b ? "," : "", (long long)b);
        if (ev->targets) fprintf(f, ", \"target\": %lld", (long long)ev->targets[b]);
        if (ev->score) {
            fprintf(f, ", \"score\": ");
            json_num(f, (double)ev->score[b]);
        }
        for (int k = 0; k < ev->n_scores; k++) {
            fprintf(f, ", \"%s\": ", ev->names[k]);
            json_num(f, ev->values[b * ev->n_scores + k]);
        }
        json_curve(f, ev->curve2 ? "curve_morf" : "curve", ev->curve, b);
        json_curve(f, "curve_lerf", ev->curve2, b);
        fprintf(f, "}");
    }
    fprintf(f, "\n  ]\n}\n");
}

static void write_eval_csv(FILE *f, const idl_evaluation *ev) {
    fprintf(f, "item,target,score");
    for (int k = 0; k < ev->n_scores; k++)
        fprintf(f, ",%s", ev->names[k]);
    fprintf(f, "\n");
    for (int64_t b = 0; b <= ev->n; b++) {
        if (b < ev->n) {
            fprintf(f, "%lld,", (long long)b);
            if (ev->targets) fprintf(f, "%lld", (long long)ev->targets[b]);
            fprintf(f, ",");
            if (ev->score) fprintf(f, "%.9g", (double)ev->score[b]);
        } else {
            fprintf(f, "mean,,");
        }
        for (int k = 0; k < ev->n_scores; k++) {
            double v = b < ev->n ? ev->values[b * ev->n_scores + k] : score_mean(ev, k);
            if (isnan(v))
                fprintf(f, ",");
            else
                fprintf(f, ",%.9g", v);
        }
        fprintf(f, "\n");
    }
}

static int cmd_evaluate(const args *a) {
    if (!idl_evaluate_help(a->method)) {
        const char *const *m = idl_evaluate_metrics();
        fprintf(stderr, "interpretdl: unknown metric '%s'; metrics:", a->method);
        for (int i = 0; m[i]; i++)
            fprintf(stderr, " %s", m[i]);
        fprintf(stderr, "\n");
        return EXIT_USAGE;
    }
    if (a->n_outs != 1) return cli_usage_error("%s", "evaluate needs one --out FILE.json");
    if (!a->explanation)
        return cli_usage_error("%s", "evaluate needs --explanation FILE.npy (the explanation "
                                     "judged; sensitivity recomputes it when --explanation none)");
    bool modelless = !strcmp(a->method, "point_game");
    if (modelless && (a->model || a->n_inputs))
        return cli_usage_error("%s", "point_game takes no --model and no --input: the object is "
                                     "--set box=x1,y1,x2,y2 or --set mask=F.npy");
    /* the outputs: temporary files opened before the work, renamed together at the end */
    char tmp_json[4096], tmp_csv[4096];
    FILE *fj = NULL, *fc = NULL;
    int ro = tmp_open(a->outs[0], tmp_json, sizeof tmp_json, &fj);
    if (ro) return ro;
    if (a->csv && (ro = tmp_open(a->csv, tmp_csv, sizeof tmp_csv, &fc))) {
        fclose(fj);
        remove(tmp_json);
        return ro;
    }
    job jb;
    memset(&jb, 0, sizeof jb);
    int rc = modelless ? 0 : job_open(a, &jb, "evaluate");
    idl_tensor *E = NULL;
    if (!rc && strcmp(a->explanation, "none") != 0 && idl_npy_load(a->explanation, &E))
        rc = cli_runtime_error("cannot read --explanation");
    if (!rc && !E && strcmp(a->method, "sensitivity") != 0)
        rc = cli_usage_error("%s", "--explanation none is for sensitivity only");
    idl_evaluation ev = { 0 };
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    idl_status st =
        rc ? IDL_OK
           : idl_evaluate(jb.s, a->method, modelless ? NULL : &jb.rq, E, a->sets, a->n_sets, &ev);
    if (st) { /* a bad setting or argument is a usage error; the rest happened at run time */
        rc = st == IDL_ERR_INVALID_ARG ? EXIT_USAGE : EXIT_RUNTIME;
        fprintf(stderr, "interpretdl: evaluate %s: %s\n", a->method, idl_last_error());
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (!rc) write_eval_json(fj, a, &ev, secs);
    if (!rc && fc) write_eval_csv(fc, &ev);
    int rj = tmp_close(fj, tmp_json, a->outs[0]), rcsv = fc ? tmp_close(fc, tmp_csv, a->csv) : 0;
    if (!rc) rc = rj ? rj : rcsv;
    if (!rc) rc = tmp_rename(tmp_json, a->outs[0]);
    if (!rc && fc) rc = tmp_rename(tmp_csv, a->csv);
    if (rc) { /* nothing of this run is left behind */
        remove(tmp_json);
        if (fc) remove(tmp_csv);
    }
    if (!rc) {
        for (int64_t b = 0; b < ev.n; b++) {
            printf("item %lld:", (long long)b);
            if (ev.targets) printf(" target %lld", (long long)ev.targets[b]);
            for (int k = 0; k < ev.n_scores; k++)
                printf(" %s %.6g", ev.names[k], ev.values[b * ev.n_scores + k]);
            printf("\n");
        }
        printf("wrote %s (%lld passes in %.3f s)\n", a->outs[0], (long long)ev.passes, secs);
    }
    idl_evaluation_clear(&ev);
    idl_tensor_free(E);
    job_close(&jb);
    return rc;
}

static const char *EVALUATE_USAGE =
    "usage: interpretdl evaluate METRIC --model MODEL --input x.npy|photo.png [--input ...]\n"
    "       --explanation a.npy [--target K[,K...]|top1] [--objective logit|probability|"
    "log_probability]\n"
    "       [--seed S] [--set key=value]... --out scores.json [--csv scores.csv]\n"
    "       interpretdl evaluate point_game --explanation a.npy --set box=x1,y1,x2,y2 --out "
    "s.json\n"
    "\n"
    "Judges an explanation of every sample of the batch. The JSON names each score after its\n"
    "metric (the mean over the items) and lists per_item scores, targets and curves; --csv\n"
    "writes one row per item and a row of means. Defaults: the argmax class of the clean pass,\n"
    "the probability objective (Quantus's softmax, InterpretDL's). The explanation: the input's\n"
    "shape (per element), (N, H, W) per pixel, or a 2-D map per sample resized to H x W.\n"
    "Settings every metric takes: objective, output, internal_batch, seed, wrt. Metrics and\n"
    "their settings (defaults shown):\n";

/* interpretdl evaluate [METRIC] --help */
static int evaluate_help(const char *metric) {
    const char *const *m = idl_evaluate_metrics();
    printf("%s", EVALUATE_USAGE);
    for (int i = 0; m[i]; i++) {
        if (metric && strcmp(metric, m[i]) != 0) continue;
        printf("\n%s\n", m[i]);
        print_help_lines(idl_evaluate_help(m[i]));
    }
    return 0;
}

/* interpretdl explain [METHOD] --help: the methods and their settings */
static int explain_help(const char *method) {
    const char *const *m = idl_explain_methods();
    printf("%s", EXPLAIN_USAGE);
    for (int i = 0; m[i]; i++) {
        if (method && strcmp(method, m[i]) != 0) continue;
        printf("\n%s\n", m[i]);
        print_help_lines(idl_explain_help(m[i]));
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("interpretdl %s\n", idl_version());
        return 0;
    }
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            if (!strcmp(argv[1], "explain")) return explain_help(i > 2 ? argv[2] : NULL);
            if (!strcmp(argv[1], "evaluate")) return evaluate_help(i > 2 ? argv[2] : NULL);
            fputs(USAGE, stdout);
            return 0;
        }
    if (!strcmp(argv[1], "demo")) return cli_demo_main(argc, argv);
    args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    if (!strcmp(argv[1], "info")) return cmd_info(&a);
    if (!strcmp(argv[1], "run")) return cmd_run(&a);
    if (!strcmp(argv[1], "grad")) return cmd_grad(&a);
    if (!strcmp(argv[1], "explain")) return cmd_explain(&a);
    if (!strcmp(argv[1], "evaluate")) return cmd_evaluate(&a);
    return cli_usage_error("unknown command '%s'", argv[1]);
}

/* conformance.c — runs the ONNX backend conformance data (Debian libonnx-testdata: node,
 * pytorch-converted, pytorch-operator, simple) through the library and counts each test as
 *   passed       every output matches (floats: |a-b| <= 1e-4 + 1e-3*|b|, others exact),
 *   failed       wrong result, wrong shape, or an unexpected error,
 *   unsupported  uses an op this library does not implement, or a tensor type it does not read,
 *   refused      an implemented op refused an attribute/type combination with IDL_ERR_UNSUPPORTED.
 * Usage: test_conformance [-v] [substring...]; data folder from $IDL_ONNX_TESTDATA (default
 * /usr/share/libonnx-testdata/data). Exit 77 (ctest skip) when the data is not installed. */
#define _DEFAULT_SOURCE
#include "harness.h"
#include "interpretdl/interpretdl.h"
#include "onnx/ir.h"

#include <dirent.h>
#include <sys/stat.h>

typedef enum { R_PASS, R_FAIL, R_UNSUPPORTED, R_REFUSED } result;

static int verbose;

static idl_status read_pb(const char *path, idl_tensor **t) {
    FILE *f = fopen(path, "rb");
    if (!f) return IDL_ERR_IO;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    idl_status st = got == (size_t)n ? idl__tensor_from_pb(buf, (size_t)n, NULL, t) : IDL_ERR_IO;
    free(buf);
    return st;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static result compare(const idl_tensor *got, const idl_tensor *want, char *why, size_t cap) {
    if (got->dtype != want->dtype) {
        snprintf(why, cap, "dtype %s, expected %s", idl_dtype_name(got->dtype),
                 idl_dtype_name(want->dtype));
        return R_FAIL;
    }
    int64_t ng = idl_tensor_numel(got), nw = idl_tensor_numel(want);
    int same = got->ndim == want->ndim;
    for (int k = 0; same && k < got->ndim; k++)
        same = got->shape[k] == want->shape[k];
    if (!same || ng != nw) {
        snprintf(why, cap, "shape mismatch (rank %d vs %d, %lld vs %lld elements)", got->ndim,
                 want->ndim, (long long)ng, (long long)nw);
        return R_FAIL;
    }
    for (int64_t i = 0; i < nw; i++) {
        if (want->dtype == IDL_DT_F32 || want->dtype == IDL_DT_F64) {
            double a = idl__get_f64(got, i), b = idl__get_f64(want, i);
            if (isnan(b) && isnan(a)) continue;
            if (isinf(b) && a == b) continue;
            if (!(fabs(a - b) <= 1e-4 + 1e-3 * fabs(b))) {
                snprintf(why, cap, "element %lld: %.7g, expected %.7g", (long long)i, a, b);
                return R_FAIL;
            }
        } else if (idl__get_i64(got, i) != idl__get_i64(want, i)) {
            snprintf(why, cap, "element %lld: %lld, expected %lld", (long long)i,
                     (long long)idl__get_i64(got, i), (long long)idl__get_i64(want, i));
            return R_FAIL;
        }
    }
    return R_PASS;
}

static result run_test(const char *dir, char *why, size_t cap) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    idl_model *m = NULL;
    idl_session *s = NULL;
    idl_tensor *in[64] = { 0 }, *want[64] = { 0 };
    result r = R_PASS;
    idl_status st = idl_model_load(path, NULL, &m);
    if (st) {
        snprintf(why, cap, "load: %s", idl_last_error());
        return st == IDL_ERR_UNSUPPORTED ? R_UNSUPPORTED : R_FAIL;
    }
    st = idl_session_new(m, NULL, &s);
    if (st) {
        snprintf(why, cap, "%s", idl_last_error());
        idl_model_free(m);
        return st == IDL_ERR_UNSUPPORTED ? R_UNSUPPORTED : R_FAIL;
    }
    int n_in = idl_model_n_inputs(m), n_out = idl_model_n_outputs(m);
    if (n_in > 64 || n_out > 64) {
        snprintf(why, cap, "too many inputs");
        r = R_UNSUPPORTED;
        goto done;
    }
    for (int set = 0; r == R_PASS; set++) {
        char sd[4096];
        snprintf(sd, sizeof sd, "%s/test_data_set_%d", dir, set);
        if (!file_exists(sd)) break;
        for (int i = 0; i < n_in; i++) {
            snprintf(path, sizeof path, "%s/input_%d.pb", sd, i);
            idl_tensor_free(in[i]);
            in[i] = NULL;
            st = read_pb(path, &in[i]);
            if (st) {
                snprintf(why, cap, "input %d: %s", i, idl_last_error());
                r = st == IDL_ERR_UNSUPPORTED ? R_UNSUPPORTED : R_FAIL;
                goto done;
            }
        }
        for (int i = 0; i < n_out; i++) {
            snprintf(path, sizeof path, "%s/output_%d.pb", sd, i);
            idl_tensor_free(want[i]);
            want[i] = NULL;
            st = read_pb(path, &want[i]);
            if (st) {
                snprintf(why, cap, "output %d: %s", i, idl_last_error());
                r = st == IDL_ERR_UNSUPPORTED ? R_UNSUPPORTED : R_FAIL;
                goto done;
            }
        }
        st = idl_session_forward(s, (const idl_tensor *const *)in, NULL, n_in);
        if (st) {
            snprintf(why, cap, "%s", idl_last_error());
            r = st == IDL_ERR_UNSUPPORTED ? R_REFUSED : R_FAIL;
            goto done;
        }
        for (int i = 0; i < n_out && r == R_PASS; i++) {
            char w[512];
            r = compare(idl_session_output(s, i), want[i], w, sizeof w);
            if (r != R_PASS) snprintf(why, cap, "output %d: %s", i, w);
        }
    }
done:
    for (int i = 0; i < 64; i++) {
        idl_tensor_free(in[i]);
        idl_tensor_free(want[i]);
    }
    idl_session_free(s);
    idl_model_free(m);
    return r;
}

static int cmpstr(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    const char *root = getenv("IDL_ONNX_TESTDATA");
    if (!root) root = "/usr/share/libonnx-testdata/data";
    const char *filters[64];
    int n_filters = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v"))
            verbose = 1;
        else if (n_filters < 64)
            filters[n_filters++] = argv[i];
    }
    const char *suites[] = { "node", "pytorch-converted", "pytorch-operator", "simple" };
    int counts[4] = { 0 }, any_suite = 0;
    idl_log_set(NULL, NULL, IDL_LOG_ERROR);
    for (size_t su = 0; su < sizeof suites / sizeof suites[0]; su++) {
        char sdir[4096];
        snprintf(sdir, sizeof sdir, "%s/%s", root, suites[su]);
        DIR *d = opendir(sdir);
        if (!d) continue;
        any_suite = 1;
        char **names = NULL;
        size_t n = 0, cap = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strncmp(e->d_name, "test_", 5) != 0) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 256;
                names = realloc(names, cap * sizeof *names);
            }
            names[n++] = strdup(e->d_name);
        }
        closedir(d);
        qsort(names, n, sizeof *names, cmpstr);
        for (size_t i = 0; i < n; i++) {
            char full[4096], why[1024] = "";
            snprintf(full, sizeof full, "%s/%s", sdir, names[i]);
            int keep = n_filters == 0;
            for (int f = 0; f < n_filters; f++)
                keep = keep || strstr(full, filters[f]) != NULL;
            if (keep) {
                result r = run_test(full, why, sizeof why);
                counts[r]++;
                if (r == R_FAIL)
                    fprintf(stderr, "FAIL %s/%s: %s\n", suites[su], names[i], why);
                else if (verbose)
                    printf("%s %s/%s%s%s\n",
                           r == R_PASS      ? "pass"
                           : r == R_REFUSED ? "refused"
                                            : "unsupported",
                           suites[su], names[i], why[0] ? ": " : "", why);
            }
            free(names[i]);
        }
        free(names);
    }
    if (!any_suite) {
        printf("ONNX test data not found under %s (install libonnx-testdata); skipping\n", root);
        return 77;
    }
    printf("conformance: %d passed, %d failed, %d unsupported (op not implemented or tensor type "
           "not read), "
           "%d refused (implemented op, unsupported attribute or type)\n",
           counts[R_PASS], counts[R_FAIL], counts[R_UNSUPPORTED], counts[R_REFUSED]);
    printf("%d passed, %d failed\n", counts[R_PASS], counts[R_FAIL]);
    return counts[R_FAIL] ? 1 : 0;
}

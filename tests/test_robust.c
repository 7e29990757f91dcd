/* test_robust.c — bad input never crashes and always gets a clear status and message: missing,
 * empty, garbage, truncated and bit-flipped model files; unsupported ops; dangling names, cycles,
 * duplicate names; bad tensor sizes; external data (missing, outside the folder, out of bounds, and
 * the valid case); file-size limits; wrong inputs. Run under ASan/UBSan in CI. */
#define _DEFAULT_SOURCE
#include "harness.h"
#include "interpretdl/interpretdl.h"
#include "model_builder.h"

#include <unistd.h>

static uint8_t *pack(tb_model *b, size_t *len) {
    uint8_t *buf;
    tb_pack(b, &buf, len);
    tb_free(b);
    return buf;
}

static uint8_t *valid_model(size_t *len) {
    tb_model *b = tb_new(13);
    tb_input_sym(b, "x", IDL_DT_F32, 2, (int64_t[]){ -1, 4 });
    float slope[4] = { 0.1f, 0.2f, 0.3f, 0.4f };
    tb_init_f32(b, "slope", 1, (int64_t[]){ 4 }, slope);
    tb_node(b, "PRelu", "x,slope", "p");
    tb_node(b, "Tanh", "p", "t");
    tb_node(b, "Sigmoid", "t", "y");
    tb_output(b, "y");
    return pack(b, len);
}

/* load, plan and run whatever loads; returns the first failing status */
static idl_status exercise(const uint8_t *buf, size_t len) {
    idl_model *m = NULL;
    idl_session *s = NULL;
    idl_status st = idl_model_load_mem(buf, len, NULL, &m);
    if (st) {
        CHECK_MSG(m == NULL && idl_last_error()[0], "failed load leaves no model and a message");
        return st;
    }
    st = idl_session_new(m, NULL, &s);
    if (!st && idl_model_n_inputs(m) == 1) {
        idl_value_info vi;
        idl_model_input(m, 0, &vi);
        int64_t shape[IDL_MAX_DIMS];
        int64_t n = 1;
        for (int k = 0; k < vi.ndim && k < IDL_MAX_DIMS; k++) {
            shape[k] = vi.shape[k] < 0 ? 2 : vi.shape[k];
            n *= shape[k];
        }
        if (vi.ndim >= 0 && n < 4096 && vi.dtype == IDL_DT_F32) {
            idl_tensor *x = NULL;
            if (idl_tensor_new(IDL_DT_F32, vi.ndim, shape, &x) == IDL_OK) {
                const idl_tensor *in[1] = { x };
                st = idl_session_forward(s, in, NULL, 1);
                idl_tensor_free(x);
            }
        }
    }
    idl_session_free(s);
    idl_model_free(m);
    return st;
}

static void test_files(void) {
    idl_model *m = NULL;
    CHECK(idl_model_load("/nonexistent/model.onnx", NULL, &m) == IDL_ERR_IO && m == NULL);
    CHECK(strstr(idl_last_error(), "/nonexistent/model.onnx") != NULL);
    CHECK(idl_model_load("/tmp", NULL, &m) == IDL_ERR_IO);
    CHECK(idl_model_load_mem("", 0, NULL, &m) == IDL_ERR_PARSE);
    const char garbage[] = "this is not an onnx file at all \xff\xff\xff\xff\x0f";
    CHECK(idl_model_load_mem(garbage, sizeof garbage - 1, NULL, &m) == IDL_ERR_PARSE);
    size_t len;
    uint8_t *buf = valid_model(&len);
    idl_load_opts o = idl_load_opts_default();
    o.max_file_bytes = 16;
    CHECK(idl_model_load_mem(buf, len, &o, &m) == IDL_ERR_INVALID_ARG);
    CHECK_OK(exercise(buf, len));
    /* every truncation: a status, never a crash; most are PARSE */
    int n_err = 0;
    for (size_t k = 0; k < len; k++)
        if (exercise(buf, k) != IDL_OK) n_err++;
    CHECK_MSG(n_err > (int)len / 2, "%d of %zu truncations rejected", n_err, len);
    /* random bit flips */
    uint64_t r = 12345;
    uint8_t *mut = malloc(len);
    for (int it = 0; it < 3000; it++) {
        memcpy(mut, buf, len);
        for (int f = 0; f < 1 + it % 4; f++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            mut[(r >> 33) % len] ^= (uint8_t)(1u << ((r >> 20) % 8));
        }
        exercise(mut, len);
    }
    th_passed++; /* reached without a crash (ASan/UBSan in CI) */
    free(mut);
    free(buf);
}

static void test_graph_errors(void) {
    size_t len;
    idl_model *m = NULL;
    /* unsupported op: named with node and opset, at session creation; info still loads */
    tb_model *b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_node(b, "Hardmax", "x", "y");
    tb_output(b, "y");
    uint8_t *buf = pack(b, &len);
    CHECK_OK(idl_model_load_mem(buf, len, NULL, &m));
    idl_session *s = NULL;
    CHECK(idl_session_new(m, NULL, &s) == IDL_ERR_UNSUPPORTED && s == NULL);
    CHECK(strstr(idl_last_error(), "Hardmax") && strstr(idl_last_error(), "'n0'") &&
          strstr(idl_last_error(), "13"));
    idl_model_free(m);
    free(buf);
    /* dangling input */
    b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_node(b, "Relu", "xx", "y");
    tb_output(b, "y");
    buf = pack(b, &len);
    CHECK(idl_model_load_mem(buf, len, NULL, &m) == IDL_ERR_PARSE);
    CHECK(strstr(idl_last_error(), "'xx'") != NULL);
    free(buf);
    /* cycle */
    b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_node(b, "Relu", "b", "a");
    tb_node(b, "Relu", "a", "b");
    tb_output(b, "b");
    buf = pack(b, &len);
    CHECK(idl_model_load_mem(buf, len, NULL, &m) == IDL_ERR_PARSE);
    CHECK(strstr(idl_last_error(), "cycle") != NULL);
    free(buf);
    /* duplicate output name */
    b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_node(b, "Relu", "x", "y");
    tb_node(b, "Tanh", "x", "y");
    tb_output(b, "y");
    buf = pack(b, &len);
    CHECK(idl_model_load_mem(buf, len, NULL, &m) == IDL_ERR_PARSE);
    CHECK(strstr(idl_last_error(), "twice") != NULL);
    free(buf);
    /* undefined graph output */
    b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_node(b, "Relu", "x", "y");
    tb_output(b, "z");
    buf = pack(b, &len);
    CHECK(idl_model_load_mem(buf, len, NULL, &m) == IDL_ERR_PARSE);
    free(buf);
    /* raw_data of the wrong size, absurd dims, unsupported dtype */
    b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_init_raw(b, "w", 1, 1, (int64_t[]){ 4 }, "abcdefgh", 8);
    tb_node(b, "PRelu", "x,w", "y");
    tb_output(b, "y");
    buf = pack(b, &len);
    CHECK(idl_model_load_mem(buf, len, NULL, &m) == IDL_ERR_PARSE);
    CHECK(strstr(idl_last_error(), "'w'") && strstr(idl_last_error(), "raw_data"));
    free(buf);
    b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_init_raw(b, "w", 1, 3, (int64_t[]){ 1 << 30, 1 << 30, 1 << 30 }, "abcd", 4);
    tb_node(b, "PRelu", "x,w", "y");
    tb_output(b, "y");
    buf = pack(b, &len);
    CHECK(idl_model_load_mem(buf, len, NULL, &m) == IDL_ERR_PARSE);
    free(buf);
    b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_init_raw(b, "w", 10, 1, (int64_t[]){ 2 }, "abcd", 4); /* float16 */
    tb_node(b, "PRelu", "x,w", "y");
    tb_output(b, "y");
    buf = pack(b, &len);
    CHECK(idl_model_load_mem(buf, len, NULL, &m) == IDL_ERR_UNSUPPORTED);
    CHECK(strstr(idl_last_error(), "'w'") != NULL);
    free(buf);
    /* wrong rank of an input against the declared shape, rank above the limit */
    b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 9, (int64_t[]){ 1, 1, 1, 1, 1, 1, 1, 1, 1 });
    tb_node(b, "Relu", "x", "y");
    tb_output(b, "y");
    buf = pack(b, &len);
    CHECK(idl_model_load_mem(buf, len, NULL, &m) == IDL_ERR_UNSUPPORTED);
    free(buf);
    /* an op given the wrong number of inputs */
    b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_node(b, "Relu", "x,x", "y");
    tb_output(b, "y");
    buf = pack(b, &len);
    CHECK_OK(idl_model_load_mem(buf, len, NULL, &m));
    CHECK(idl_session_new(m, NULL, &s) == IDL_ERR_PARSE);
    CHECK(strstr(idl_last_error(), "Relu") != NULL);
    idl_model_free(m);
    free(buf);
}

/* a tensor whose declared size has no data behind it is refused before anything is allocated */
static void *cap_malloc(size_t n, void *u) {
    (void)u;
    return n > ((size_t)1 << 28) ? NULL : malloc(n);
}
static void cap_free(void *p, void *u) {
    (void)u;
    free(p);
}

static void test_size_before_alloc(void) {
    tb_model *b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_init_raw(b, "w", 1, 2, (int64_t[]){ 1 << 20, 1 << 10 }, "abcd", 4); /* 4 GiB declared */
    tb_node(b, "PRelu", "x,w", "y");
    tb_output(b, "y");
    size_t len;
    uint8_t *buf = pack(b, &len);
    idl_allocator a = { cap_malloc, cap_free, NULL };
    idl_set_allocator(&a);
    idl_model *m = NULL;
    CHECK(idl_model_load_mem(buf, len, NULL, &m) == IDL_ERR_PARSE);
    CHECK(strstr(idl_last_error(), "raw_data") != NULL);
    idl_set_allocator(NULL);
    free(buf);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}

/* expect: the slope values the file holds at that offset */
static idl_status load_ext(const char *dir, const char *loc, long long off, long long length,
                           const float *expect) {
    tb_model *b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 2, (int64_t[]){ 1, 4 });
    tb_init_external(b, "slope", 1, (int64_t[]){ 4 }, loc, off, length);
    tb_node(b, "PRelu", "x,slope", "y");
    tb_output(b, "y");
    size_t len;
    uint8_t *buf = pack(b, &len);
    char path[512];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    write_file(path, buf, len);
    free(buf);
    idl_model *m = NULL;
    idl_status st = idl_model_load(path, NULL, &m);
    if (!st) {
        idl_session *s = NULL;
        float xv[4] = { -1, -1, -1, -1 };
        idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 1, 4 }, xv);
        const idl_tensor *in[1] = { &x };
        CHECK_OK(idl_session_new(m, NULL, &s));
        CHECK_OK(idl_session_forward(s, in, NULL, 1));
        const float *y = idl_session_output(s, 0)->data;
        for (int k = 0; k < 4; k++)
            CHECK(y[k] == -expect[k]);
        idl_session_free(s);
    }
    idl_model_free(m);
    return st;
}

static void test_external_data(void) {
    char dir[] = "/tmp/idl_robust_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[512];
    snprintf(path, sizeof path, "%s/weights.bin", dir);
    float data[6] = { 0, 0, 5, 6, 7, 8 };
    write_file(path, data, sizeof data);
    CHECK_OK(load_ext(dir, "weights.bin", 8, 16, data + 2));
    CHECK_OK(load_ext(dir, "weights.bin", -1, -1, data)); /* no offset/length keys: from 0 */
    CHECK(load_ext(dir, "missing.bin", 0, 16, data) == IDL_ERR_NOT_FOUND);
    CHECK(strstr(idl_last_error(), "missing.bin") != NULL);
    CHECK(load_ext(dir, "../weights.bin", 0, 16, data) == IDL_ERR_INVALID_ARG);
    CHECK(load_ext(dir, "/etc/passwd", 0, 16, data) == IDL_ERR_INVALID_ARG);
    CHECK(load_ext(dir, "weights.bin", 16, 16, data) == IDL_ERR_PARSE); /* past the end */
    CHECK(load_ext(dir, "weights.bin", 0, 12, data) == IDL_ERR_PARSE);  /* length != tensor size */
    unlink(path);
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    unlink(path);
    rmdir(dir);
}

/* a model whose shape arithmetic asks for a huge tensor fails cleanly against the memory budget */
static void test_memory_budget(void) {
    tb_model *b = tb_new(13);
    tb_input(b, "x", IDL_DT_F32, 1, (int64_t[]){ 4 });
    tb_init_ints(b, "shape", 2, (int64_t[]){ 200000, 200000 });
    tb_node(b, "ConstantOfShape", "shape", "big");
    tb_node(b, "Add", "big,x", "y");
    tb_output(b, "y");
    idl_model *m = tb_load(b);
    tb_free(b);
    idl_session *s = NULL;
    CHECK_OK(idl_session_new(m, NULL, &s));
    float xv[4] = { 0 };
    idl_tensor x = idl_tensor_wrap(IDL_DT_F32, 1, (int64_t[]){ 4 }, xv);
    const idl_tensor *in[1] = { &x };
    CHECK(idl_session_forward(s, in, NULL, 1) == IDL_ERR_NOMEM);
    CHECK(strstr(idl_last_error(), "'big'") && strstr(idl_last_error(), "max_memory"));
    idl_session_free(s);
    /* an explicit small budget */
    idl_model_free(m);
    size_t len;
    uint8_t *buf = valid_model(&len);
    CHECK_OK(idl_model_load_mem(buf, len, NULL, &m));
    idl_session_opts o = idl_session_opts_default();
    o.max_memory = 64;
    CHECK_OK(idl_session_new(m, &o, &s));
    float x2[16] = { 0 };
    idl_tensor xt = idl_tensor_wrap(IDL_DT_F32, 2, (int64_t[]){ 4, 4 }, x2);
    in[0] = &xt;
    CHECK(idl_session_forward(s, in, NULL, 1) == IDL_ERR_NOMEM);
    idl_session_free(s);
    o.max_memory = 1 << 20;
    CHECK_OK(idl_session_new(m, &o, &s));
    CHECK_OK(idl_session_forward(s, in, NULL, 1));
    idl_session_free(s);
    idl_model_free(m);
    free(buf);
}

int main(void) {
    idl_log_set(NULL, NULL, IDL_LOG_ERROR);
    test_files();
    test_graph_errors();
    test_external_data();
    test_memory_budget();
    test_size_before_alloc();
    TEST_SUMMARY();
}

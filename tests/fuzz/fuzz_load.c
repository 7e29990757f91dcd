/* fuzz_load.c — libFuzzer target: an arbitrary byte string as an ONNX model. Loading must return a
 * status (never crash, hang or leak); whatever loads is planned and run once on small zero inputs.
 */
#include "interpretdl/interpretdl.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int quiet;
    if (!quiet) {
        idl_log_set(NULL, NULL, IDL_LOG_ERROR);
        quiet = 1;
    }
    idl_model *m = NULL;
    if (idl_model_load_mem(data, size, NULL, &m) != IDL_OK) return 0;
    idl_session *s = NULL;
    idl_session_opts o = idl_session_opts_default();
    o.n_threads = 1;
    o.max_memory = (uint64_t)256 << 20; /* keep each run small; over-budget plans fail cleanly */
    if (idl_session_new(m, &o, &s) == IDL_OK) {
        int n = idl_model_n_inputs(m);
        idl_tensor *in[8] = { 0 };
        int ok = n <= 8;
        for (int i = 0; ok && i < n; i++) {
            idl_value_info vi;
            idl_model_input(m, i, &vi);
            int64_t shape[IDL_MAX_DIMS], numel = 1;
            if (vi.ndim < 0) ok = 0;
            for (int k = 0; ok && k < vi.ndim; k++) {
                shape[k] = vi.shape[k] < 0 ? 1 : vi.shape[k];
                numel *= shape[k] ? shape[k] : 1;
                if (numel > 65536) ok = 0;
            }
            if (ok && idl_tensor_new(vi.dtype == IDL_DT_UNDEFINED ? IDL_DT_F32 : vi.dtype, vi.ndim,
                                     shape, &in[i]))
                ok = 0;
        }
        if (ok && idl_session_forward(s, (const idl_tensor *const *)in, NULL, n) == IDL_OK &&
            idl_model_n_outputs(m) > 0) {
            const idl_tensor *y = idl_session_output(s, 0);
            if (y && y->dtype == IDL_DT_F32 && idl_tensor_numel(y) < 65536) {
                idl_tensor *seed = NULL;
                if (idl_tensor_new(IDL_DT_F32, y->ndim, y->shape, &seed) == IDL_OK) {
                    idl_objective obj = idl_objective_default();
                    obj.kind = IDL_OBJ_SEED;
                    obj.seed = seed;
                    const char *wrt[1] = { idl_model_input_name(m, 0) };
                    if (n > 0 && in[0] && in[0]->dtype == IDL_DT_F32)
                        idl_session_backward(s, &obj, wrt, 1);
                    idl_tensor_free(seed);
                }
            }
        }
        for (int i = 0; i < 8; i++)
            idl_tensor_free(in[i]);
    }
    idl_session_free(s);
    idl_model_free(m);
    return 0;
}

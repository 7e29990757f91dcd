/* session.c — the public session API: creation (op support check), forward with re-planning on new
 * input shapes, backward and gradient access, taps, abort. */
#include "session/session_internal.h"

#include <string.h>
#ifdef _OPENMP
#    include <omp.h>
#endif

idl_session_opts idl_session_opts_default(void) {
    idl_session_opts o;
    memset(&o, 0, sizeof o);
    return o;
}

idl_objective idl_objective_default(void) {
    idl_objective o;
    memset(&o, 0, sizeof o);
    o.kind = IDL_OBJ_PROBABILITY;
    return o;
}

idl_status idl_objective_kind_parse(const char *s, idl_objective_kind *out) {
    if (!s) return idl__error(IDL_ERR_INVALID_ARG, "objective is NULL");
    if (!strcmp(s, "logit"))
        *out = IDL_OBJ_LOGIT;
    else if (!strcmp(s, "probability") || !strcmp(s, "prob"))
        *out = IDL_OBJ_PROBABILITY;
    else if (!strcmp(s, "log_probability") || !strcmp(s, "logprob"))
        *out = IDL_OBJ_LOG_PROBABILITY;
    else
        return idl__error(IDL_ERR_INVALID_ARG,
                          "unknown objective '%s' (logit, probability, log_probability)", s);
    return IDL_OK;
}

idl_status idl__unknown_tensor(const idl_model *m, const char *name) {
    char close[512];
    idl__model_close_names(m, name, close, sizeof close);
    if (close[0])
        return idl__error(IDL_ERR_NOT_FOUND, "no tensor named '%s' in the model; close names: %s",
                          name, close);
    return idl__error(IDL_ERR_NOT_FOUND,
                      "no tensor named '%s' in the model (`interpretdl info` lists them)", name);
}

static idl_status session_new(const idl_model *m, const idl_session_opts *opts, idl__backend *be,
                              idl_session **out) {
    if (!out || !m) return idl__error(IDL_ERR_INVALID_ARG, "model or out is NULL");
    *out = NULL;
    /* every op must be implemented (op indices were resolved at load) */
    for (int i = 0; i < m->n_nodes; i++) {
        const idl__node *n = &m->nodes[i];
        if (n->op < 0)
            return idl__error(IDL_ERR_UNSUPPORTED,
                              "node '%s': op %s%s%s (opset %lld) is not supported", n->name,
                              *n->domain ? n->domain : "", *n->domain ? "." : "", n->op_type,
                              (long long)m->opset);
        const idl__op_def *d = idl__ops[n->op];
        if (n->n_in < d->min_in || n->n_in > d->max_in || n->n_out < d->min_out ||
            n->n_out > d->max_out)
            return idl__error(
                IDL_ERR_PARSE,
                "node '%s' (%s): %d inputs and %d outputs; expected %d..%d and %d..%d", n->name,
                n->op_type, n->n_in, n->n_out, d->min_in, d->max_in, d->min_out, d->max_out);
        /* required inputs (the first min_in) and output 0 must be named; kernels rely on it */
        for (int k = 0; k < d->min_in; k++)
            if (n->in[k] < 0)
                return idl__error(IDL_ERR_PARSE, "node '%s' (%s): required input %d is empty",
                                  n->name, n->op_type, k);
        if (n->n_out < 1 || n->out[0] < 0)
            return idl__error(IDL_ERR_PARSE, "node '%s' (%s): output 0 is empty", n->name,
                              n->op_type);
    }
    if (m->opset < 1 || m->opset > 21)
        return idl__error(IDL_ERR_UNSUPPORTED, "opset %lld is outside the supported range 1..21",
                          (long long)m->opset);
    idl_session *s = idl__calloc(1, sizeof *s);
    if (!s) return idl__error(IDL_ERR_NOMEM, "out of memory");
    s->m = m;
    s->opts = opts ? *opts : idl_session_opts_default();
    s->resume_from = -1;
    if (be) {
        s->be = be;
    } else {
        idl_status st = idl__backend_init(&s->be_own);
        if (st) {
            idl__free(s);
            return st;
        }
        s->be = &s->be_own;
        s->be->winograd = !s->opts.direct_conv;
    }
    *out = s;
    return IDL_OK;
}

idl_status idl_session_new(const idl_model *m, const idl_session_opts *opts, idl_session **out) {
    return session_new(m, opts, NULL, out);
}

idl_status idl__session_new_sub(idl_session *parent, const idl_model *m,
                                const idl_session_opts *opts, idl_session **out) {
    return session_new(m, opts, parent->be, out);
}

static void clear_backward(idl_session *s) {
    idl_tensor_free(s->obj_values);
    s->obj_values = NULL;
    idl__free(s->targets);
    s->targets = NULL;
    s->n_targets = 0;
    idl__free(s->wrt);
    s->wrt = NULL;
    s->n_wrt = 0;
    s->have_backward = false;
}

void idl_session_free(idl_session *s) {
    if (!s) return;
    clear_backward(s);
    idl__attention_clear(s);
    idl__plan_free(s->plan);
    idl__plan_free(s->spare);
    if (s->be == &s->be_own) idl__backend_destroy(&s->be_own);
    idl__free(s->taps);
    idl__free(s);
}

static void set_threads(const idl_session *s) {
#ifdef _OPENMP
    if (s->opts.n_threads > 0) omp_set_num_threads(s->opts.n_threads);
#else
    (void)s;
#endif
}

/* Denormals: activations and gradients of deep networks at inputs near zero (the start of an
 * Integrated Gradients path) underflow into subnormal floats, which x86 handles in microcode, up
 * to 10x slower (resnet50 forward+backward 1.3 s instead of 0.14 s at alpha = 0.1). Passes run with
 * flush-to-zero and denormals-are-zero on the calling thread and the OpenMP team (the caller's mode
 * is restored afterwards); the values lost are below 1.2e-38. */
#if defined(__SSE__) || defined(__x86_64__)
#    include <xmmintrin.h>
#    define IDL__FTZ_DAZ 0x8040u
static unsigned fp_enter(void) {
    unsigned old = _mm_getcsr();
#    pragma omp parallel
    _mm_setcsr(_mm_getcsr() | IDL__FTZ_DAZ);
    _mm_setcsr(old | IDL__FTZ_DAZ);
    return old;
}
static void fp_leave(unsigned old) {
#    pragma omp parallel
    _mm_setcsr((_mm_getcsr() & ~IDL__FTZ_DAZ) | (old & IDL__FTZ_DAZ));
    _mm_setcsr(old);
}
#else
static unsigned fp_enter(void) {
    return 0;
}
static void fp_leave(unsigned old) {
    (void)old;
}
#endif

idl_status idl_session_forward(idl_session *s, const idl_tensor *const *inputs,
                               const char *const *names, int n) {
    if (!s || (!inputs && n)) return idl__error(IDL_ERR_INVALID_ARG, "session or inputs is NULL");
    const idl_model *m = s->m;
    s->have_forward = false;
    clear_backward(s);
    if (n != m->n_inputs)
        return idl__error(IDL_ERR_INVALID_ARG, "model has %d input%s, %d given", m->n_inputs,
                          m->n_inputs == 1 ? "" : "s", n);
    const idl_tensor *ord[256];
    if (n > 256) return idl__error(IDL_ERR_UNSUPPORTED, "more than 256 graph inputs");
    for (int i = 0; i < n; i++)
        ord[i] = NULL;
    for (int i = 0; i < n; i++) {
        int slot = i;
        if (names) {
            slot = -1;
            for (int k = 0; k < n; k++)
                if (names[i] && !strcmp(names[i], m->values[m->inputs[k]].name)) slot = k;
            if (slot < 0) {
                char close[512];
                const char *cand[256];
                for (int k = 0; k < n; k++)
                    cand[k] = m->values[m->inputs[k]].name;
                idl__close_matches(names[i] ? names[i] : "", cand, n, close, sizeof close);
                return idl__error(IDL_ERR_INVALID_ARG, "no graph input named '%s'%s%s",
                                  names[i] ? names[i] : "(null)", close[0] ? "; inputs are " : "",
                                  close);
            }
            if (ord[slot])
                return idl__error(IDL_ERR_INVALID_ARG, "input '%s' given twice", names[i]);
        }
        ord[slot] = inputs[i];
    }
    for (int i = 0; i < n; i++) {
        const idl_tensor *t = ord[i];
        const idl__value *v = &m->values[m->inputs[i]];
        if (!t || (!t->data && idl_tensor_numel(t) > 0))
            return idl__error(IDL_ERR_INVALID_ARG, "input '%s' has no data", v->name);
        if (t->ndim < 0 || t->ndim > IDL_MAX_DIMS || idl_dtype_size(t->dtype) == 0)
            return idl__error(IDL_ERR_INVALID_ARG, "input '%s': invalid tensor description",
                              v->name);
        if (v->dtype != IDL_DT_UNDEFINED && t->dtype != v->dtype)
            return idl__error(IDL_ERR_INVALID_ARG, "input '%s' must be %s, got %s", v->name,
                              idl_dtype_name(v->dtype), idl_dtype_name(t->dtype));
        if (v->ndim >= 0) {
            char a[128], b[128];
            bool ok = t->ndim == v->ndim;
            for (int k = 0; ok && k < v->ndim; k++)
                ok = v->shape[k] < 0 || v->shape[k] == t->shape[k];
            if (!ok) {
                int64_t decl[IDL_MAX_DIMS];
                for (int k = 0; k < v->ndim; k++)
                    decl[k] = v->shape[k];
                return idl__error(IDL_ERR_SHAPE,
                                  "input '%s' has shape %s; the model expects %s (-1 = free)",
                                  v->name, idl__shape_str(t->ndim, t->shape, a, sizeof a),
                                  idl__shape_str(v->ndim, decl, b, sizeof b));
            }
        }
        for (int k = 0; k < t->ndim; k++)
            if (t->shape[k] < 0)
                return idl__error(IDL_ERR_SHAPE, "input '%s' has a negative dimension", v->name);
    }
    set_threads(s);
    idl_status st;
    bool replanned = false;
    int kind = s->opts.forward_only || s->plan_hint == IDL__PLAN_FWD         ? IDL__PLAN_FWD
               : s->opts.save_for_backward || s->plan_hint == IDL__PLAN_LEAN ? IDL__PLAN_LEAN
                                                                             : IDL__PLAN_FULL;
    if (!idl__plan_matches(s->plan, ord, n, kind)) {
        replanned = true;
        idl__plan *np = NULL;
        if (idl__plan_matches(s->spare, ord, n, kind)) {
            np = s->spare;
            s->spare = NULL;
        } else {
            /* the plan in use stays as the spare while both fit the budget; planning reads the
             * data of shape-like integer inputs only (see idl__shape_like_input) */
            idl__plan_free(s->spare);
            s->spare = NULL;
            uint64_t budget = idl__memory_budget(&s->opts);
            uint64_t kept = s->plan ? s->plan->bytes : 0;
            st = kept < budget / 2 ? idl__plan_build(s, ord, kind, budget - kept, &np)
                                   : IDL_ERR_NOMEM;
            if (st == IDL_ERR_NOMEM && s->plan) {
                idl__plan_free(s->plan);
                s->plan = NULL;
                st = idl__plan_build(s, ord, kind, budget, &np);
            }
            if (st) return st;
        }
        s->spare = s->plan;
        s->plan = np;
    }
    /* a resumed pass: the same plan and inputs as the last complete forward, the only tap on the
     * value it resumes from (see idl__session_resume_from) */
    int other_taps = 0, own_taps = 0;
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].cb) ++*(s->taps[t].value == s->resume_from ? &own_taps : &other_taps);
    bool resume = s->resume_from >= 0 && s->fwd_complete && !replanned && own_taps == 1 &&
                  other_taps == 0 && !s->plan->in_arena;
    for (int i = 0; i < n && resume; i++) {
        const idl_tensor *dst = &s->plan->vals[m->inputs[i]];
        resume =
            !idl__tensor_bytes(dst) || !memcmp(dst->data, ord[i]->data, idl__tensor_bytes(dst));
    }
    s->fwd_complete = false;
    for (int i = 0; i < n && !resume; i++) {
        idl_tensor *dst = &s->plan->vals[m->inputs[i]];
        if (idl__tensor_bytes(dst)) memcpy(dst->data, ord[i]->data, idl__tensor_bytes(dst));
    }
    unsigned fp = fp_enter();
    st = resume ? idl__plan_forward_from(s, s->resume_from) : idl__plan_forward(s);
    fp_leave(fp);
    if (st) return st;
    s->have_forward = true;
    s->fwd_complete = true;
    return IDL_OK;
}

idl_status idl__session_resume_from(idl_session *s, const char *name) {
    s->resume_from = -1;
    if (!name) return IDL_OK;
    int v = idl__model_find(s->m, name);
    if (v < 0) return idl__unknown_tensor(s->m, name);
    s->resume_from = v;
    return IDL_OK;
}

const idl_tensor *idl_session_output(const idl_session *s, int i) {
    if (!s || !s->have_forward || i < 0 || i >= s->m->n_outputs) return NULL;
    return &s->plan->vals[s->m->outputs[i]];
}

const idl_tensor *idl_session_tensor(idl_session *s, const char *name) {
    if (!s || !name) return NULL;
    int v = idl__model_find(s->m, name);
    if (v < 0) {
        idl__unknown_tensor(s->m, name);
        return NULL;
    }
    if (!s->have_forward) {
        idl__error(IDL_ERR_INVALID_ARG, "no forward pass has run");
        return NULL;
    }
    return idl__plan_value(s, v);
}

idl_status idl_session_backward(idl_session *s, const idl_objective *obj, const char *const *wrt,
                                int n_wrt) {
    if (!s || !obj || (!wrt && n_wrt)) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    if (!s->have_forward)
        return idl__error(IDL_ERR_INVALID_ARG, "backward needs a forward pass first");
    if (s->plan->kind == IDL__PLAN_FWD)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "the last forward ran on a forward-only plan (session option "
                          "forward_only, or an explanation method's forward-only passes), which "
                          "keeps no values for a backward%s",
                          s->opts.forward_only ? "" : ": run the forward again");
    clear_backward(s);
    s->wrt = idl__calloc((size_t)n_wrt + 1, sizeof(int));
    if (!s->wrt) return idl__error(IDL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n_wrt; i++) {
        int v = wrt[i] ? idl__model_find(s->m, wrt[i]) : -1;
        if (v < 0) {
            clear_backward(s);
            return idl__unknown_tensor(s->m, wrt[i] ? wrt[i] : "(null)");
        }
        if (s->plan->vals[v].dtype != IDL_DT_F32) {
            clear_backward(s);
            return idl__error(IDL_ERR_INVALID_ARG,
                              "tensor '%s' is %s; gradients exist only for float32 tensors", wrt[i],
                              idl_dtype_name(s->plan->vals[v].dtype));
        }
        s->wrt[i] = v;
    }
    s->n_wrt = n_wrt;
    for (int i = 0; i < n_wrt && s->plan->kind == IDL__PLAN_LEAN; i++)
        if (s->plan->vconst[s->wrt[i]]) {
            idl_status e = idl__error(
                IDL_ERR_INVALID_ARG,
                "tensor '%s' is a constant (an initializer, or computed from them): its gradient "
                "needs values that a lean pass does not keep (session option save_for_backward)",
                wrt[i]);
            clear_backward(s);
            return e;
        }
    set_threads(s);
    unsigned fp = fp_enter();
    idl_status st = idl__backward(s, obj, s->wrt, n_wrt);
    fp_leave(fp);
    if (st) {
        clear_backward(s);
        return st;
    }
    s->have_backward = true;
    return IDL_OK;
}

const idl_tensor *idl_session_grad(idl_session *s, const char *name) {
    if (!s || !s->have_backward || !name) return NULL;
    int v = idl__model_find(s->m, name);
    for (int i = 0; i < s->n_wrt; i++)
        if (s->wrt[i] == v) return idl__plan_grad(s, v);
    return NULL;
}

const idl_tensor *idl_session_objective_values(const idl_session *s) {
    return s && s->have_backward ? s->obj_values : NULL;
}

const int64_t *idl_session_targets(const idl_session *s, int64_t *n) {
    if (n) *n = s && s->have_backward ? s->n_targets : 0;
    return s && s->have_backward ? s->targets : NULL;
}

idl_status idl_session_set_tap(idl_session *s, const char *name, idl_tap_fn cb, void *user) {
    if (!s || !name) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    int v = idl__model_find(s->m, name);
    if (v < 0) return idl__unknown_tensor(s->m, name);
    /* a plan that fused v away (a Conv+activation of a forward-only plan), or writes it in an
     * element-wise region (graph/rowfuse.c), is made again, with v */
    idl__plan **pl[2] = { &s->plan, &s->spare };
    for (int k = 0; k < 2 && cb; k++)
        if (*pl[k] && (((*pl[k])->alias_of && (*pl[k])->alias_of[v] >= 0) ||
                       ((*pl[k])->rf_tmp && ((*pl[k])->rf_tmp[v] || (*pl[k])->rf_out[v])))) {
            if (k == 0) s->have_forward = s->fwd_complete = false;
            idl__plan_free(*pl[k]);
            *pl[k] = NULL;
        }
    for (int t = 0; t < s->n_taps; t++)
        if (s->taps[t].value == v) {
            s->taps[t].cb = cb;
            s->taps[t].user = user;
            return IDL_OK;
        }
    if (!cb) return IDL_OK;
    if (s->n_taps == s->cap_taps) {
        int cap = s->cap_taps ? 2 * s->cap_taps : 8;
        idl__tap *nt = idl__calloc((size_t)cap, sizeof *nt);
        if (!nt) return idl__error(IDL_ERR_NOMEM, "out of memory");
        if (s->n_taps) memcpy(nt, s->taps, (size_t)s->n_taps * sizeof *nt);
        idl__free(s->taps);
        s->taps = nt;
        s->cap_taps = cap;
    }
    s->taps[s->n_taps].value = v;
    s->taps[s->n_taps].cb = cb;
    s->taps[s->n_taps].user = user;
    s->n_taps++;
    return IDL_OK;
}

void idl_session_set_abort(idl_session *s, idl_abort_fn cb, void *user) {
    if (!s) return;
    s->abort_cb = cb;
    s->abort_user = user;
}

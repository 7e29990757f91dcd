/* common.c — the run context every explanation method starts from, and the batched evaluator:
 * rows (sample, point in the wrt tensor) are packed internal_batch at a time into one forward and
 * one backward. The last pack is padded by repeating its last row so that every pass has the same
 * batch (one plan). A wrt tensor that is a graph input is written into the batched input; an
 * intermediate one is replaced through a tap. */
#include "interpret/interpret_internal.h"

#include <math.h>
#include <string.h>

/* Automatic internal batch: as many rows as keep one pass's activations within a budget, between
 * 1 and 16. A pass whose tap rewrites an intermediate value whole keeps every value (it may resume
 * from that value) and stays within ~32 MB (one row for resnet50, ~100 MB a row). A pass with a
 * backward otherwise runs on a lean plan (only what the backward reads is kept, the
 * rest shares an arena: resnet50 37 MB kept and a 6 MB arena a row, against ~100 MB for every
 * value) and stays within ~192 MB: 4 rows for resnet50, one for vit_b_16 (163 MB a row); measured
 * on 2 cores, resnet50 forward + input gradient on a lean plan runs 109-117 ms a row at batch 1,
 * 99-109 at 2 and 95-106 at 4. A forward-only pack (a forward-only plan, whose values share an
 * arena sized by their lifetimes) stays within ~64 MB of arena: resnet50 forward runs 66.8 ms a
 * row at batch 1, 54.4 at 4, 53.9 at 8 and 52.3 at 16, from an arena of 9.2 MB a row (101 MB of
 * values). */
#define IDL__MAX_ROWS        16
#define IDL__ROWS_FULL_BYTES (32u << 20)
#define IDL__ROWS_BYTES      (192u << 20)
#define IDL__ROWS_FWD_BYTES  (64u << 20)

static int auto_rows(const idl_session *s, int64_t n, int kind) {
    uint64_t bytes = idl__plan_kind_bytes(s->m, s->plan, kind);
    uint64_t per = bytes / (uint64_t)(n > 0 ? n : 1);
    uint64_t budget = kind == IDL__PLAN_FWD    ? IDL__ROWS_FWD_BYTES
                      : kind == IDL__PLAN_LEAN ? IDL__ROWS_BYTES
                                               : IDL__ROWS_FULL_BYTES;
    uint64_t rows = per ? budget / per : IDL__MAX_ROWS;
    return (int)(rows < 1 ? 1 : rows > IDL__MAX_ROWS ? IDL__MAX_ROWS : rows);
}

idl_explain_request idl_explain_request_default(void) {
    idl_explain_request rq;
    memset(&rq, 0, sizeof rq);
    rq.objective = IDL_OBJ_PROBABILITY;
    return rq;
}

void idl_explanation_clear(idl_explanation *e) {
    if (!e) return;
    idl_tensor_free(e->attribution);
    idl__free(e->targets);
    idl__free(e->score);
    idl__free(e->baseline_score);
    idl__free(e->delta);
    idl_tensor_free(e->features);
    idl_tensor_free(e->segments);
    idl_tensor_free(e->masks);
    idl__free(e->n_features);
    idl__free(e->intercept);
    idl__free(e->r2);
    idl_tensor_free(e->concepts);
    memset(e, 0, sizeof *e);
}

float idl__objective_value(const float *row, int64_t nc, int64_t t, idl_objective_kind k) {
    if (k == IDL_OBJ_LOGIT) return row[t];
    double mx = row[0], sum = 0;
    for (int64_t j = 1; j < nc; j++)
        mx = row[j] > mx ? row[j] : mx;
    for (int64_t j = 0; j < nc; j++)
        sum += exp((double)row[j] - mx);
    double lp = (double)row[t] - mx - log(sum);
    return (float)(k == IDL_OBJ_LOG_PROBABILITY ? lp : exp(lp));
}

const char *idl__word_embedding(const idl_model *m) {
    int src = -1;
    for (int i = 0; i < m->n_inputs && src < 0; i++) {
        const idl__value *v = &m->values[m->inputs[i]];
        if ((v->dtype == IDL_DT_I64 || v->dtype == IDL_DT_I32) && v->ndim != 1) src = m->inputs[i];
    }
    if (src < 0) return NULL;
    bool *from = idl__calloc((size_t)m->n_values, sizeof(bool));
    if (!from) return NULL;
    from[src] = true;
    const char *found = NULL;
    static const char *const pass[] = { "Cast",    "Unsqueeze", "Squeeze",
                                        "Reshape", "Identity",  "Flatten" };
    for (int i = 0; i < m->n_nodes && !found; i++) {
        const idl__node *n = &m->nodes[i];
        if (n->n_in < 1 || n->in[0] < 0) continue;
        if (!strcmp(n->op_type, "Gather") && n->n_in == 2 && n->in[1] >= 0 && from[n->in[1]]) {
            const idl__value *d = &m->values[n->in[0]];
            if (d->kind == IDL__VAL_INIT && d->init && d->init->dtype == IDL_DT_F32 &&
                d->init->ndim == 2 && n->out[0] >= 0)
                found = m->values[n->out[0]].name;
            continue;
        }
        if (!from[n->in[0]]) continue;
        for (size_t k = 0; k < sizeof pass / sizeof *pass; k++)
            if (!strcmp(n->op_type, pass[k]) && n->out[0] >= 0) from[n->out[0]] = true;
    }
    idl__free(from);
    return found;
}

void idl__x_end(idl__xrun *r) {
    idl__free(r->targets);
    idl__free(r->score);
    idl__free(r->x);
    for (int i = 0; i < IDL__XMAX_IN; i++)
        idl_tensor_free(r->bin[i]);
    idl__free(r->pts);
    idl__free(r->btargets);
    memset(r, 0, sizeof *r);
}

static idl_status order_inputs(idl__xrun *r) {
    const idl_model *m = r->s->m;
    const idl_explain_request *rq = r->rq;
    if (!rq->inputs || rq->n_inputs != m->n_inputs)
        return idl__error(IDL_ERR_INVALID_ARG, "the model has %d input(s); %d given", m->n_inputs,
                          rq->inputs ? rq->n_inputs : 0);
    if (m->n_inputs > IDL__XMAX_IN)
        return idl__error(IDL_ERR_UNSUPPORTED, "more than %d graph inputs", IDL__XMAX_IN);
    r->n_in = m->n_inputs;
    for (int i = 0; i < r->n_in; i++) {
        int slot = i;
        if (rq->input_names) {
            slot = -1;
            for (int k = 0; k < m->n_inputs; k++)
                if (rq->input_names[i] && !strcmp(rq->input_names[i], m->values[m->inputs[k]].name))
                    slot = k;
            if (slot < 0)
                return idl__error(IDL_ERR_INVALID_ARG, "'%s' is not a graph input",
                                  rq->input_names[i] ? rq->input_names[i] : "(null)");
            if (r->in[slot])
                return idl__error(IDL_ERR_INVALID_ARG, "input '%s' given twice",
                                  rq->input_names[i]);
        }
        if (!rq->inputs[i]) return idl__error(IDL_ERR_INVALID_ARG, "input %d is NULL", i);
        r->in[slot] = rq->inputs[i];
    }
    r->N = -1;
    for (int i = 0; i < r->n_in; i++) {
        const idl_tensor *t = r->in[i];
        if (idl__shape_like_input(t) || t->ndim == 0) continue;
        if (r->N < 0) r->N = t->shape[0];
        if (t->shape[0] != r->N)
            return idl__error(
                IDL_ERR_SHAPE, "inputs disagree on the batch: '%s' has %lld samples, another %lld",
                m->values[m->inputs[i]].name, (long long)t->shape[0], (long long)r->N);
    }
    if (r->N <= 0)
        return idl__error(IDL_ERR_SHAPE, "no input with a batch axis of at least one sample");
    return IDL_OK;
}

idl_status idl__x_wrt(idl__xrun *r, const char *name) {
    const idl_model *m = r->s->m;
    idl__free(r->x);
    r->x = NULL;
    if (!name || !*name || !strcmp(name, "input")) {
        name = NULL;
        for (int i = 0; i < r->n_in && !name; i++)
            if (r->in[i]->dtype == IDL_DT_F32) name = m->values[m->inputs[i]].name;
        if (!name) name = idl__word_embedding(m);
        if (!name)
            return idl__error(IDL_ERR_INVALID_ARG,
                              "the model has no float32 input and no word-embedding Gather was "
                              "found; name the tensor to attribute to (wrt=NAME)");
    }
    const idl_tensor *v = idl_session_tensor(r->s, name);
    if (!v) return idl__error_prefix(IDL_ERR_NOT_FOUND, "wrt: ");
    if (v->dtype != IDL_DT_F32)
        return idl__error(IDL_ERR_INVALID_ARG, "wrt tensor '%s' is %s; attributions need float32",
                          name, idl_dtype_name(v->dtype));
    if (v->ndim < 1 || v->shape[0] != r->N) {
        char a[128];
        return idl__error(IDL_ERR_SHAPE,
                          "wrt tensor '%s' has shape %s; its first axis must be the batch (%lld)",
                          name, idl__shape_str(v->ndim, v->shape, a, sizeof a), (long long)r->N);
    }
    if (strlen(name) >= sizeof r->wrt) return idl__error(IDL_ERR_INVALID_ARG, "wrt name too long");
    strcpy(r->wrt, name);
    r->wrt_input = -1;
    for (int i = 0; i < r->n_in; i++)
        if (!strcmp(m->values[m->inputs[i]].name, name)) r->wrt_input = i;
    r->wrt_ndim = v->ndim;
    memcpy(r->wrt_shape, v->shape, sizeof(int64_t) * (size_t)v->ndim);
    r->numel = idl_tensor_numel(v) / r->N;
    r->x = idl__malloc(sizeof(float) * (size_t)(r->N * r->numel) + 1);
    if (!r->x) return idl__error(IDL_ERR_NOMEM, "out of memory");
    memcpy(r->x, v->data, sizeof(float) * (size_t)(r->N * r->numel));
    return IDL_OK;
}

/* lean: the clean pass may run on a lean plan (only what a backward reads kept) when the tensor
 * attributed to is a graph input (it stays readable); see idl__x_begin_grad. */
static idl_status x_begin(idl__xrun *r, idl_session *s, const idl_explain_request *rq,
                          bool need_wrt, bool lean) {
    memset(r, 0, sizeof *r);
    if (!s || !rq) return idl__error(IDL_ERR_INVALID_ARG, "NULL argument");
    r->s = s;
    r->rq = rq;
    r->kind = rq->objective;
    r->output = rq->output;
    if (r->kind != IDL_OBJ_LOGIT && r->kind != IDL_OBJ_PROBABILITY &&
        r->kind != IDL_OBJ_LOG_PROBABILITY)
        return idl__error(IDL_ERR_INVALID_ARG,
                          "objective must be logit, probability or log_probability");
    if (rq->output < 0 || rq->output >= s->m->n_outputs)
        return idl__error(IDL_ERR_INVALID_ARG, "output %d out of range (the model has %d)",
                          rq->output, s->m->n_outputs);
    if (rq->internal_batch < 0)
        return idl__error(IDL_ERR_INVALID_ARG, "internal_batch must be >= 0");
    idl_status st = order_inputs(r);
    bool dflt = !rq->wrt || !*rq->wrt || !strcmp(rq->wrt, "input"), lean_ok = false;
    for (int i = 0; !st && lean && i < r->n_in; i++)
        lean_ok = lean_ok || (r->in[i]->dtype == IDL_DT_F32 &&
                              (dflt || !strcmp(rq->wrt, s->m->values[s->m->inputs[i]].name)));
    s->plan_hint = lean_ok ? IDL__PLAN_LEAN : IDL__PLAN_FULL;
    if (!st) st = idl_session_forward(s, r->in, NULL, r->n_in);
    s->plan_hint = IDL__PLAN_FULL;
    if (st) {
        idl__x_end(r);
        return st;
    }
    r->clean_kind = s->plan->kind;
    r->rows = rq->internal_batch ? rq->internal_batch : auto_rows(s, r->N, IDL__PLAN_LEAN);
    r->rows_fwd = rq->internal_batch ? rq->internal_batch : auto_rows(s, r->N, IDL__PLAN_FWD);
    r->rows_full = rq->internal_batch ? rq->internal_batch : auto_rows(s, r->N, IDL__PLAN_FULL);
    const idl_tensor *y = idl_session_output(s, rq->output);
    int64_t nc = y->ndim >= 2 ? y->shape[y->ndim - 1] : 0;
    if (y->dtype != IDL_DT_F32 || y->ndim < 2 || y->shape[0] != r->N ||
        idl_tensor_numel(y) != r->N * nc) {
        char a[128];
        idl__x_end(r);
        return idl__error(IDL_ERR_SHAPE,
                          "output %d ('%s') must be float32 class scores of shape (N, classes); "
                          "it is %s %s",
                          rq->output, s->m->values[s->m->outputs[rq->output]].name,
                          idl_dtype_name(y->dtype), idl__shape_str(y->ndim, y->shape, a, sizeof a));
    }
    r->n_classes = nc;
    r->targets = idl__calloc((size_t)r->N, sizeof(int64_t));
    r->score = idl__calloc((size_t)r->N, sizeof(float));
    if (!r->targets || !r->score) {
        idl__x_end(r);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    const float *yv = y->data;
    for (int64_t b = 0; b < r->N; b++) {
        const float *row = yv + b * nc;
        int64_t t = 0;
        if (rq->targets) {
            t = rq->targets[b];
            if (t < 0 || t >= nc) {
                idl__x_end(r);
                return idl__error(IDL_ERR_INVALID_ARG, "target %lld of sample %lld outside 0..%lld",
                                  (long long)t, (long long)b, (long long)nc - 1);
            }
        } else {
            for (int64_t j = 1; j < nc; j++)
                if (row[j] > row[t]) t = j;
        }
        r->targets[b] = t;
        r->score[b] = idl__objective_value(row, nc, t, r->kind);
    }
    r->passes = r->N;
    if (need_wrt && (st = idl__x_wrt(r, rq->wrt))) {
        idl__x_end(r);
        return st;
    }
    return IDL_OK;
}

idl_status idl__x_begin(idl__xrun *r, idl_session *s, const idl_explain_request *rq,
                        bool need_wrt) {
    return x_begin(r, s, rq, need_wrt, false);
}

idl_status idl__x_begin_grad(idl__xrun *r, idl_session *s, const idl_explain_request *rq) {
    return x_begin(r, s, rq, true, true);
}

idl_objective idl__x_objective(const idl__xrun *r) {
    idl_objective o = idl_objective_default();
    o.kind = r->kind;
    o.output = r->output;
    o.targets = r->targets;
    return o;
}

static void tap_write(const char *name, idl_tensor *value, void *user) {
    (void)name;
    idl__xrun *r = user;
    if (idl_tensor_numel(value) == r->bin_rows * r->numel)
        memcpy(value->data, r->pts, sizeof(float) * (size_t)(r->bin_rows * r->numel));
}

static idl_status alloc_chunk(idl__xrun *r, int64_t c) {
    if (r->bin_rows == c) return IDL_OK;
    for (int i = 0; i < r->n_in; i++) {
        idl_tensor_free(r->bin[i]);
        r->bin[i] = NULL;
    }
    idl__free(r->pts);
    idl__free(r->btargets);
    r->pts = NULL;
    r->btargets = NULL;
    r->bin_rows = 0;
    for (int i = 0; i < r->n_in; i++) {
        const idl_tensor *t = r->in[i];
        if (idl__shape_like_input(t) || t->ndim == 0) continue;
        int64_t shp[IDL_MAX_DIMS];
        memcpy(shp, t->shape, sizeof(int64_t) * (size_t)t->ndim);
        shp[0] = c;
        idl_status st = idl_tensor_new(t->dtype, t->ndim, shp, &r->bin[i]);
        if (st) return st;
    }
    r->pts = idl__malloc(sizeof(float) * (size_t)(c * (r->numel ? r->numel : 1)));
    r->btargets = idl__calloc((size_t)c, sizeof(int64_t));
    if (!r->pts || !r->btargets) return idl__error(IDL_ERR_NOMEM, "out of memory");
    r->bin_rows = c;
    return IDL_OK;
}

idl_status idl__x_eval(idl__xrun *r, const idl__xrows *rows, bool want_grad) {
    if (rows->n <= 0) return IDL_OK;
    /* packs with no backward that perturb graph inputs run on a forward-only plan (a tap that
     * rewrites an intermediate value resumes from it: that needs every value kept), packs with a
     * backward on a lean plan (only what the backward reads is kept), unless they have the clean
     * pass's batch: its plan is there already, and planning costs a few passes */
    bool tapped = r->wrt[0] && r->wrt_input < 0, fwd = !want_grad && !tapped;
    int64_t per_pass = fwd ? r->rows_fwd : want_grad ? r->rows : r->rows_full;
    int64_t nchunks = (rows->n + per_pass - 1) / per_pass;
    int64_t c = (rows->n + nchunks - 1) / nchunks;
    fwd = fwd && c != r->N;
    int hint = fwd         ? IDL__PLAN_FWD
               : c != r->N ? (want_grad ? IDL__PLAN_LEAN : IDL__PLAN_FULL)
               : tapped    ? IDL__PLAN_FULL
                           : r->clean_kind; /* the clean pass's plan, of either kind */
    idl_status st = alloc_chunk(r, c);
    if (st) return st;
    const idl_tensor *bins[IDL__XMAX_IN];
    for (int i = 0; i < r->n_in; i++)
        bins[i] = r->bin[i] ? r->bin[i] : r->in[i];
    if (tapped && (st = idl_session_set_tap(r->s, r->wrt, tap_write, r))) return st;
    /* the tap rewrites the whole intermediate tensor: packs whose graph inputs repeat the last
     * pass's run only the network after it (Ablation-CAM: the layers after the CAM layer) */
    if (tapped && (st = idl__session_resume_from(r->s, r->wrt))) {
        idl_session_set_tap(r->s, r->wrt, NULL, NULL);
        return st;
    }
    const char *wrt = r->grad_at ? r->grad_at : r->wrt;
    int64_t gper = r->grad_at ? r->grad_numel : r->numel;
    for (int64_t r0 = 0; r0 < rows->n && !st; r0 += c) {
        int64_t cnt = IDL_MIN(c, rows->n - r0);
        for (int i = 0; i < r->n_in; i++)
            bins[i] = r->bin[i] ? r->bin[i] : r->in[i];
        for (int64_t j = 0; j < c; j++) {
            int64_t row = r0 + IDL_MIN(j, cnt - 1);
            int64_t smp = rows->sample(rows->u, row);
            for (int i = 0; i < r->n_in; i++) {
                if (!r->bin[i]) continue;
                size_t per = idl__tensor_bytes(r->in[i]) / (size_t)r->N;
                memcpy((char *)r->bin[i]->data + per * (size_t)j,
                       (const char *)r->in[i]->data + per * (size_t)smp, per);
            }
            float *dst = r->wrt_input >= 0 ? (float *)r->bin[r->wrt_input]->data + j * r->numel
                                           : r->pts + j * r->numel;
            if (r->wrt[0]) rows->point(rows->u, row, dst);
            r->btargets[j] = r->targets[smp];
        }
        const float *g = NULL, *ov = NULL;
        bool grad_here = want_grad;
        if (grad_here && rows->need_grad) {
            grad_here = false;
            for (int64_t j = 0; j < cnt && !grad_here; j++)
                grad_here = rows->need_grad(rows->u, r0 + j);
        }
        r->s->plan_hint = hint;
        st = idl_session_forward(r->s, bins, NULL, r->n_in);
        r->s->plan_hint = IDL__PLAN_FULL;
        if (!st && grad_here) {
            idl_objective o = idl__x_objective(r);
            o.targets = r->btargets;
            st = idl_session_backward(r->s, &o, &wrt, 1);
        }
        if (st == IDL_ERR_NOMEM && c > 1) {
            /* over the session's max_memory (or the machine's): the same rows in smaller packs
             * (results depend on the pack size only through float rounding) */
            idl__log(IDL_LOG_INFO, "%s; retrying with %lld rows a pass", idl_last_error(),
                     (long long)((c + 1) / 2));
            c = (c + 1) / 2;
            if ((st = alloc_chunk(r, c))) break;
            r0 -= c; /* the loop adds c back: this pack again */
            continue;
        }
        if (st) break;
        if (grad_here) {
            g = idl_session_grad(r->s, wrt)->data;
            ov = idl_session_objective_values(r->s)->data;
        }
        const float *yv = idl_session_output(r->s, r->output)->data;
        for (int64_t j = 0; j < cnt; j++) {
            float obj = ov ? ov[j]
                           : idl__objective_value(yv + j * r->n_classes, r->n_classes,
                                                  r->btargets[j], r->kind);
            rows->take(rows->u, r0 + j, g ? g + j * gper : NULL, obj);
            if (rows->scores) rows->scores(rows->u, r0 + j, yv + j * r->n_classes, r->n_classes);
        }
        r->passes += cnt;
        if (r->rq->progress && r->rq->progress(r->passes, r->total, r->rq->progress_user))
            st = idl__error(IDL_ERR_ABORTED, "aborted by the progress callback");
    }
    if (tapped) {
        idl__session_resume_from(r->s, NULL);
        idl_session_set_tap(r->s, r->wrt, NULL, NULL);
    }
    return st;
}

idl_status idl__x_result(const idl__xrun *r, idl_explanation *e, int ndim, const int64_t *shape) {
    memset(e, 0, sizeof *e);
    e->n = r->N;
    e->targets = idl__calloc((size_t)r->N, sizeof(int64_t));
    e->score = idl__calloc((size_t)r->N, sizeof(float));
    if (!e->targets || !e->score) {
        idl_explanation_clear(e);
        return idl__error(IDL_ERR_NOMEM, "out of memory");
    }
    memcpy(e->targets, r->targets, sizeof(int64_t) * (size_t)r->N);
    memcpy(e->score, r->score, sizeof(float) * (size_t)r->N);
    strcpy(e->wrt, r->wrt);
    e->passes = r->passes;
    idl_status st = idl_tensor_new(IDL_DT_F32, ndim, shape, &e->attribution);
    if (st) idl_explanation_clear(e);
    return st;
}

void idl__x_sigma(const idl__xrun *r, float noise, float noise_abs, float *sigma) {
    for (int64_t i = 0; i < r->N; i++) {
        if (noise_abs > 0) {
            sigma[i] = noise_abs;
            continue;
        }
        const float *x = r->x + i * r->numel;
        float lo = x[0], hi = x[0];
        for (int64_t j = 1; j < r->numel; j++) {
            lo = x[j] < lo ? x[j] : lo;
            hi = x[j] > hi ? x[j] : hi;
        }
        sigma[i] = noise * (hi - lo);
    }
}

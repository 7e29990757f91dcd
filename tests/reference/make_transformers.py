#!/usr/bin/env python3
"""make_transformers.py OUTDIR [--models a,b,...] [--threads N] [--hf-site DIR] [--fixture]

Parity references for transformers (tests/test_parity.c): vision transformers, text encoders with
several graph inputs and free batch / sequence axes, a Paddle text encoder and the pretrained
PaddleOCR text recognizer. Runs with the venv of setup_venv.sh (Debian's torch 1.13 is visible
there; onnx is imported before torch, see setup_venv.sh). Never used by the library at run time.

Cases (OUTDIR/<case>/), all described by a manifest case.txt (format below):
  vit_b_16            torchvision vit_b_16(weights=None), opset 13 (LayerNorm decomposed into
                      ReduceMean/Sub/Pow/Sqrt/Div, GELU as Erf arithmetic), input (2,3,224,224)
  vit_b_16_opset17    the same weights and references, exported at opset 17 (LayerNormalization);
                      its reference .npy files are hard links to vit_b_16's
  vit_grid12          torchvision VisionTransformer(image_size=192, patch_size=16, num_layers=4,
                      num_heads=4, hidden_dim=128, mlp_dim=256, num_classes=10): 12x12 patches,
                      opset 14
  text_postln         BERT-style classifier around torch.nn.TransformerEncoder (post-LN,
                      norm_first=False, 3 layers, d 64, 4 heads): token + learned position +
                      token-type embeddings, embedding LayerNorm, tanh pooler on the CLS token;
                      inputs input_ids, token_type_ids, attention_mask (int64, (N,T)); the mask
                      becomes an additive (N*heads,T,T) float attn_mask in the graph; opset 14
  text_preln          the same with norm_first=True (pre-LN, final LayerNorm, no embedding LN),
                      4 layers, attention_mask float32 passed as a float src_key_padding_mask;
                      opset 17 (LayerNormalization)
  hf_bert             transformers BertForSequenceClassification(BertConfig(hidden_size=64,
                      num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                      vocab_size=1000)), random init (initializer_range 0.15); opset 14. Only when
                      transformers can be imported: --hf-site DIR installs the pinned HF_PINS with
                      pip --no-deps --target DIR (no second torch; the venv itself stays as
                      setup_venv.sh pins it); without it, or when pip fails, the case is skipped
                      with a message
  paddle_text         paddle.nn.TransformerEncoder text classifier (post-LN, 2 layers, d 64,
                      4 heads, GELU), exported by paddle2onnx (opset 14, no optimiser); inputs
                      input_ids (int64) and attention_mask (float32, (N,T), additive (N,1,1,T)
                      mask in the graph); references from ONNX Runtime (see below)
  ppocr_rec           the pretrained PaddleOCR recognizer ch_PP-OCRv4_rec_infer.onnx from the
                      rapidocr-onnxruntime package, unchanged: input (N,3,48,W), output
                      (N, W/8, 6625) per-time-step character probabilities (CTC); runs at
                      (2,3,48,320) and (1,3,48,160)
The text cases (and paddle_text) run at two shapes in one session: T=16 with batch 2 and T=23 with
batch 3, each with padding (attention_mask 0, token id 0) at the end of sample 1.

PyTorch cases: references in float64 (model.double(), as make_torchvision.py): logits, and the
gradients of sum_b objective(logits[b])[t_b] (objectives logit and probability, t_b a seeded class
that is not the argmax) w.r.t.
  - the image input (ViTs), or the EMBEDDING OUTPUT of the text models: the tensor entering the
    first encoder layer (ONNX name found by value, see below);
  - EVERY attention-probability tensor: the Softmax outputs over the key axis, shape
    (N*heads, Tq, Tk) for torch.nn.MultiheadAttention, (N, heads, Tq, Tk) for BERT/Paddle.
PyTorch side: SoftmaxCapture records every torch.nn.functional.softmax result during the forward
(the models call softmax only in attention); torch.autograd.grad takes them as extra inputs.
ONNX side: the Softmax nodes of the exported graph in graph order. The mapping is checked: same
count, and ONNX Runtime's value of each Softmax output (the graph with those tensors added as
outputs) equals the captured PyTorch tensor (same shape, max abs difference <= 1e-4); the
embedding output is found the same way, as the float tensor of the graph whose ONNX Runtime value
equals PyTorch's embedding output (the last one in graph order if several do). The names go into
case.txt and meta.json ("embedding_output", "attention_probabilities", in block order).

torch.nn.MultiheadAttention (1.13) has fused fast paths (_native_multi_head_attention,
_transformer_encoder_layer_fwd) that the ONNX exporter cannot express; they are taken only in
inference without autograd. Here they are never taken: the export runs with the parameters
requiring gradients (so the "grad is enabled and ... requires_grad" condition excludes the fast
path), text_postln additionally passes an attn_mask (which always excludes it), and every export is
checked to contain one Softmax per attention block.

ONNX-only cases (paddle_text, ppocr_rec), as make_paddle.py: outputs from ONNX Runtime (float32,
1 thread), checked against a float64 evaluation of the same graph (onnx.reference, graph64.py) to
1e-4; gradients are checked along K=3 seeded random unit directions per sample against float64
central differences (fdcheck.py's step and tolerance rule) w.r.t. the embedding output and each
attention-probability tensor (paddle_text), or the image and each attention tensor (ppocr_rec,
whose objective is the probability of one (time step, character) per sample, given to the test as
a one-hot seed: the recognizer's output is (N, steps, classes), not (N, classes)).

Files of a case: model.onnx, case.txt, meta.json and per run (subfolder named by the run, or the
case folder itself for one-run cases): the graph inputs as <input name>.npy, logits.npy (graph
output 0), targets.npy, grad_<objective>.<group>.npy (group: input, emb, attn00, attn01, ...),
dir.<group>.npy / fd.<group>.npy / fd_tol.<group>.npy, seed.npy, kinks.txt.

case.txt (read by tests/test_parity.c; '#' comments; paths relative to the case folder; tensor
names without white space):
  run LABEL                          starts a run: one forward on the same session as the runs
                                     before it (a new shape makes the session re-plan)
  input NAME FILE                    graph input NAME (every graph input once per run)
  output INDEX FILE                  reference for graph output INDEX (max error <= 1e-4 * max|ref|)
  targets FILE                       int64 (N): class per sample for the objectives
  seed FILE                          float32, shape of output 0: objective `seed` = sum(out0 * seed)
  kinks FILE                         kink alignment records for this run (kinks.py)
  grad OBJECTIVE GROUP TENSOR FILE   gradient of the objective (logit | probability |
                                     log_probability | seed; of output 0, at targets) w.r.t.
                                     TENSOR (a graph input or any intermediate tensor), compared
                                     to 1e-4 * max|ref| of that array
  directional OBJECTIVE GROUP TENSOR DIR FD FD_TOL
                                     per direction k and sample b: |<grad w.r.t. TENSOR, dir[k] on
                                     sample b's part> - fd[k,b]| <= fd_tol[k,b]; dir (K,)+shape
                                     of TENSOR, fd and fd_tol (K,N); sample b's part is the b-th
                                     of N equal contiguous chunks (so (N*heads,T,T) works)
One backward per objective and run takes every tensor of that objective's grad/directional lines
as its wrt list.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["POLYGRAPHY_AUTOINSTALL_DEPS"] = "0"

import argparse  # noqa: E402
import copy  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402  (before torch: see setup_venv.sh)
import onnx.reference  # noqa: E402,F401
from onnx import helper  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fdcheck  # noqa: E402
import graph64  # noqa: E402

OBJECTIVES = ("logit", "probability")
MAP_TOL = 1e-4  # ONNX Runtime (float32) vs PyTorch float64 values when matching tensor names
ORT_TOL = 1e-4  # ONNX Runtime outputs vs the float64 reference, relative to max|ref|
OCR_REC = "ch_PP-OCRv4_rec_infer.onnx"
# transformers for hf_bert: pure-Python packages (plus regex's wheel), no torch, no tokenizers
HF_PINS = ["transformers==4.36.2", "huggingface-hub==0.20.3", "tqdm==4.66.1",
           "regex==2023.12.25", "filelock==3.13.1", "fsspec==2023.12.2"]


def seed_of(name):
    return 1000 + sum((i + 1) * ord(c) for i, c in enumerate(name))


def count_ops(model):
    ops = {}
    for n in model.graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return ops


def rel_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def check_name(name):
    if not name or any(ch.isspace() for ch in name):
        raise ValueError("tensor name %r is empty or has white space" % name)
    return name


def pick_targets(logits, rng):
    """Per sample a seeded class that is not the argmax. logits: (N, C) numpy."""
    logits = np.asarray(logits).reshape(len(logits), -1)
    top = logits.argmax(axis=1)
    t = rng.integers(0, logits.shape[1] - 1, len(logits))
    return np.where(t >= top, t + 1, t).astype(np.int64)


# ---- ONNX Runtime ----

def ort_session(model):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    data = model if isinstance(model, (bytes, str)) else model.SerializeToString()
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def ort_run(model, feeds, extra=()):
    """Runs model (ModelProto) with ONNX Runtime; returns (outputs, {extra name: value}) with
    the extra (intermediate, float32) tensors added as graph outputs."""
    m = model
    extra = [e for e in extra if e not in {o.name for o in model.graph.output}]
    if extra:
        m = onnx.ModelProto()
        m.CopyFrom(model)
        for e in extra:
            m.graph.output.append(helper.make_tensor_value_info(e, onnx.TensorProto.FLOAT, None))
    sess = ort_session(m)
    outs = sess.run(None, feeds)
    n = len(model.graph.output)
    vals = dict(zip(extra, outs[n:]))
    for o, v in zip(model.graph.output, outs[:n]):
        vals[o.name] = v
    return outs[:n], vals


def float_tensors(model):
    """Names of the float32 node outputs (from ONNX shape inference), in graph order."""
    inf = onnx.shape_inference.infer_shapes(model)
    fl = {v.name for v in list(inf.graph.value_info) + list(inf.graph.output)
          if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    return [o for n in model.graph.node for o in n.output if o in fl]


def softmax_nodes(model, exclude_outputs=True):
    outs = {o.name for o in model.graph.output}
    res = []
    for n in model.graph.node:
        if n.op_type == "Softmax" and not (exclude_outputs and n.output[0] in outs):
            res.append(check_name(n.output[0]))
    return res


def match_softmax(model, feeds, probs):
    """Checks that the Softmax outputs of the graph are the captured PyTorch softmax tensors
    (count, order, shape, values). Returns (names, max abs difference)."""
    names = softmax_nodes(model)
    if len(names) != len(probs):
        raise ValueError("%d Softmax nodes in the ONNX graph, %d softmax calls in PyTorch" %
                         (len(names), len(probs)))
    _, vals = ort_run(model, feeds, names)
    worst = 0.0
    for i, (nm, p) in enumerate(zip(names, probs)):
        v = vals[nm]
        p = p.detach().numpy()
        if v.shape != p.shape:
            raise ValueError("attention %d: ONNX %s has shape %s, PyTorch %s" %
                             (i, nm, v.shape, p.shape))
        d = float(np.abs(v.astype(np.float64) - p).max())
        if d > MAP_TOL:
            raise ValueError("attention %d: ONNX %s differs from PyTorch's softmax by %.3g" %
                             (i, nm, d))
        worst = max(worst, d)
    return names, worst


def find_tensor(model, feeds, ref, what):
    """The float tensor of the graph whose ONNX Runtime value equals ref (numpy, float64).
    Returns (name, all matching names, difference)."""
    cands = float_tensors(model)
    _, vals = ort_run(model, feeds, cands)
    scale = max(float(np.abs(ref).max()), 1e-30)
    hits = []
    for nm in cands:
        v = vals.get(nm)
        if v is not None and v.shape == ref.shape:
            d = float(np.abs(v.astype(np.float64) - ref).max()) / scale
            if d <= MAP_TOL:
                hits.append((nm, d))
    if not hits:
        raise ValueError("no tensor of the ONNX graph equals the %s %s" % (what, ref.shape))
    return check_name(hits[-1][0]), [h[0] for h in hits], hits[-1][1]


# ---- PyTorch ----

def torch_mod():
    import torch
    return torch


class SoftmaxCapture:
    """Records the result of every torch.nn.functional.softmax call while active (the function
    is replaced in its module: nn.MultiheadAttention's functional code and transformers' BERT
    look it up there at each call). A TorchFunctionMode would not see these calls:
    multi_head_attention_forward is itself dispatched as one torch function."""

    def __init__(self):
        self.probs = []
        self._orig = None

    def __enter__(self):
        import torch.nn.functional as F
        self._orig = F.softmax
        orig = self._orig

        def softmax(*args, **kwargs):
            out = orig(*args, **kwargs)
            self.probs.append(out)
            return out
        F.softmax = softmax
        return self

    def __exit__(self, *exc):
        import torch.nn.functional as F
        F.softmax = self._orig
        return False


def objective(torch, logits, targets, kind):
    z = logits if kind == "logit" else torch.softmax(logits, dim=1)
    return z.gather(1, targets.view(-1, 1)).sum()


def torch_run(model, args, wrt, targets=None, rng=None):
    """Forward of model(*args) recording the softmax tensors, then one backward per objective.
    wrt: "input" (gradient w.r.t. args[0]) or a callable returning the captured embedding output.
    targets None: picked from the logits with rng. Returns a dict."""
    torch = torch_mod()
    args = list(args)
    if wrt == "input":
        args[0] = args[0].detach().clone().requires_grad_(True)
    cap = SoftmaxCapture()
    with cap:
        out = model(*args)
    if not isinstance(out, torch.Tensor):
        out = out.logits  # transformers' SequenceClassifierOutput
    w = args[0] if wrt == "input" else wrt()
    if targets is None:
        targets = pick_targets(out.detach().numpy(), rng)
    tt = torch.from_numpy(targets)
    tensors = [w] + cap.probs
    grads = {}
    for i, k in enumerate(OBJECTIVES):
        gs = torch.autograd.grad(objective(torch, out, tt, k), tensors,
                                 retain_graph=i + 1 < len(OBJECTIVES))
        grads[k] = [g.detach().numpy() for g in gs]
    return {"out": out.detach().numpy(), "targets": targets, "wrt": w.detach().numpy(),
            "probs": [p.detach() for p in cap.probs], "grads": grads}


def torch_export(model, args, path, names, dynamic, opset):
    torch = torch_mod()
    for p in model.parameters():
        p.requires_grad_(True)  # keeps nn.MultiheadAttention off its fused fast path
    model.eval()
    torch.onnx.export(model, tuple(args), path, input_names=names, output_names=["logits"],
                      dynamic_axes=dynamic, opset_version=opset, do_constant_folding=True,
                      training=torch.onnx.TrainingMode.EVAL)
    return onnx.load(path)


def jitter_layernorms(model, gen):
    torch = torch_mod()
    n = 0
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm) and m.elementwise_affine:
            with torch.no_grad():
                m.weight.copy_(0.75 + 0.5 * torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=gen))
            n += 1
    return n


def sharpen_attention(model, gen, qk_scale=2.0):
    """nn.MultiheadAttention: q and k projections scaled (attention scores of order 1 instead of
    nearly uniform attention), biases made non-zero."""
    torch = torch_mod()
    n = 0
    for m in model.modules():
        if isinstance(m, torch.nn.MultiheadAttention):
            e = m.embed_dim
            with torch.no_grad():
                m.in_proj_weight[: 2 * e].mul_(qk_scale)
                m.in_proj_bias.copy_(0.02 * torch.randn(m.in_proj_bias.shape, generator=gen))
                m.out_proj.bias.copy_(0.02 * torch.randn(m.out_proj.bias.shape, generator=gen))
            n += 1
    return n


# ---- writing a case ----

class Run:
    """One run of a case (one forward at one shape) and its checks, for case.txt."""

    def __init__(self, label, sub):
        self.label = label
        self.sub = sub  # subfolder ("" = the case folder)
        self.lines = []

    def path(self, d, fname):
        p = os.path.join(d, self.sub, fname) if self.sub else os.path.join(d, fname)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def rel(self, fname):
        return os.path.join(self.sub, fname) if self.sub else fname

    def save(self, d, fname, arr, link_from=None):
        p = self.path(d, fname)
        if link_from is not None:
            src = os.path.join(link_from, self.rel(fname))
            if os.path.exists(p):
                os.remove(p)
            try:
                os.link(src, p)
            except OSError:
                shutil.copyfile(src, p)
        else:
            np.save(p, arr)
        return self.rel(fname)

    def add(self, *words):
        for w in words:
            check_name(str(w))
        self.lines.append(" ".join(str(w) for w in words))


def write_manifest(d, runs, note):
    with open(os.path.join(d, "case.txt"), "w") as f:
        f.write("# parity case manifest (tests/reference/make_transformers.py; format in "
                "tests/test_parity.c)\n# %s\n" % note)
        for r in runs:
            f.write("run %s\n" % r.label)
            for ln in r.lines:
                f.write(ln + "\n")


def write_meta(d, meta, t0):
    meta["seconds"] = round(time.time() - t0, 2)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)


def torch_case_run(d, run, feeds, ref, wrt_group, wrt_name, attn_names, link_from=None):
    """Writes one run of a PyTorch case: inputs, logits, targets, gradients; adds the lines."""
    for name, arr in feeds.items():
        run.add("input", name, run.save(d, name + ".npy", arr, link_from))
    run.add("output", 0, run.save(d, "logits.npy", ref["out"].astype(np.float32), link_from))
    run.add("targets", run.save(d, "targets.npy", ref["targets"].astype(np.int64), link_from))
    groups = [(wrt_group, wrt_name)] + [("attn%02d" % i, n) for i, n in enumerate(attn_names)]
    for k in OBJECTIVES:
        for (grp, nm), g in zip(groups, ref["grads"][k]):
            f = run.save(d, "grad_%s.%s.npy" % (k, grp), g.astype(np.float32), link_from)
            run.add("grad", k, grp, nm, f)


def fp32_errors(r32, r64):
    e = {"logits": rel_err(r32["out"], r64["out"])}
    for k in OBJECTIVES:
        e["grad_%s.wrt" % k] = rel_err(r32["grads"][k][0], r64["grads"][k][0])
        a = [rel_err(x, y) for x, y in zip(r32["grads"][k][1:], r64["grads"][k][1:])]
        e["grad_%s.attn_max" % k] = max(a) if a else 0.0
    return e


def summary(name, meta):
    if "fp32_vs_fp64_rel_err" in meta:
        errs = meta["fp32_vs_fp64_rel_err"]
        worst = max([v for r in errs.values() for v in r.values()] or [0.0])
        what = "torch fp32 vs fp64 (worst) %.1e" % worst
    else:
        spread = [g["max_spread_over_rms"] for r in meta["runs"].values()
                  for g in r["directional"].values()]
        what = "fd spread/rms (worst) %.1e" % max(spread or [0.0])
    print("%-20s opset %s %6.1fs  attention blocks %d  %s  ONNX Runtime vs fp64 %.1e" % (
        name, meta.get("opset"), meta["seconds"], len(meta.get("attention_probabilities", [])),
        what, meta.get("onnxruntime_vs_reference_rel_err", 0.0)), flush=True)


# ---- vision transformers ----

def make_vit(outdir, name, build, size, opsets, batch=2):
    """build(): the float32 model. opsets: [(case name, opset)]; the first case holds the
    reference files, the others link to them."""
    torch = torch_mod()
    t0 = time.time()
    seed = seed_of(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build()
    with torch.no_grad():
        model.heads.head.weight.normal_(0.0, 0.02, generator=gen)  # torchvision zero-inits it
        model.heads.head.bias.normal_(0.0, 0.02, generator=gen)
        model.class_token.normal_(0.0, 0.2, generator=gen)
    n_ln = jitter_layernorms(model, gen)
    n_mha = sharpen_attention(model, gen)
    model.eval()
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x = ((torch.rand(batch, 3, size, size, generator=gen) - mean) / std).contiguous()

    m64 = copy.deepcopy(model).double()
    for p in m64.parameters():
        p.requires_grad_(False)
    r64 = torch_run(m64, [x.double()], "input", rng=rng)
    t1 = time.time()
    m32 = copy.deepcopy(model)
    for p in m32.parameters():
        p.requires_grad_(False)
    r32 = torch_run(m32, [x], "input", targets=r64["targets"])
    errs = fp32_errors(r32, r64)
    first = None
    for case, opset in opsets:
        tc = time.time()
        d = os.path.join(outdir, case)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "model.onnx")
        om = torch_export(model, [x], path, ["input"],
                          {"input": {0: "N"}, "logits": {0: "N"}}, opset)
        feeds = {"input": x.numpy()}
        outs, _ = ort_run(om, feeds)
        ort_err = rel_err(outs[0], r64["out"])
        if ort_err > ORT_TOL:
            raise RuntimeError("%s: ONNX Runtime and the float64 reference differ by %.3g" %
                               (case, ort_err))
        attn, map_err = match_softmax(om, feeds, r64["probs"])
        run = Run("b%d" % batch, "")
        torch_case_run(d, run, feeds, r64, "input", "input", attn, link_from=first)
        write_manifest(d, [run], "%s, opset %d" % (case, opset))
        meta = {"source": build.__doc__, "seed": seed, "opset": opset,
                "torch": torch.__version__, "ops": count_ops(om),
                "graph_inputs": ["input"], "gradient_wrt": "input",
                "attention_probabilities": attn, "attention_shape": list(r64["probs"][0].shape),
                "mapping_max_abs_diff": map_err, "layernorms_jittered": n_ln,
                "attention_blocks_sharpened": n_mha, "targets": r64["targets"].tolist(),
                "argmax": r64["out"].argmax(axis=1).tolist(),
                "max_abs_logit": float(np.abs(r64["out"]).max()),
                "fp32_vs_fp64_rel_err": {"b%d" % batch: errs},
                "onnxruntime_vs_reference_rel_err": ort_err,
                "reference": "float64 (model.double()), stored as float32",
                "seconds_reference": round(t1 - t0, 2), "seconds_export_check": round(
                    time.time() - tc, 2)}
        if first:
            meta["reference_files"] = "hard links to %s (same weights and input)" % \
                os.path.basename(first)
        write_meta(d, meta, t0)
        summary(case, meta)
        first = first or d


def vit_b_16():
    """torchvision.models.vit_b_16(weights=None), head/class token/LayerNorms/attention biases
    re-initialised (make_transformers.py)"""
    import torchvision
    return torchvision.models.vit_b_16(weights=None)


def vit_grid12():
    """torchvision.models.VisionTransformer(image_size=192, patch_size=16, num_layers=4,
    num_heads=4, hidden_dim=128, mlp_dim=256, num_classes=10), re-initialised as vit_b_16"""
    import torchvision
    return torchvision.models.VisionTransformer(image_size=192, patch_size=16, num_layers=4,
                                                num_heads=4, hidden_dim=128, mlp_dim=256,
                                                num_classes=10)


# ---- text models ----

def text_model_cls():
    torch = torch_mod()
    nn = torch.nn

    class TextClassifier(nn.Module):
        """BERT-style classifier: embeddings -> nn.TransformerEncoder -> tanh pooler on the CLS
        token -> linear head. mask_mode "attn_mask": the (N,T) attention mask becomes an additive
        (N*heads, T, T) attn_mask; "key_padding": an additive float (N,T) src_key_padding_mask."""

        def __init__(self, vocab, max_len, d, heads, ff, layers, n_cls, norm_first, mask_mode):
            super().__init__()
            self.heads = heads
            self.mask_mode = mask_mode
            self.tok = nn.Embedding(vocab, d)
            self.pos = nn.Embedding(max_len, d)
            self.typ = nn.Embedding(2, d)
            self.emb_norm = None if norm_first else nn.LayerNorm(d)
            layer = nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0, activation="gelu",
                                               batch_first=True, norm_first=norm_first)
            self.encoder = nn.TransformerEncoder(layer, layers,
                                                 norm=nn.LayerNorm(d) if norm_first else None,
                                                 enable_nested_tensor=False)
            self.pool = nn.Linear(d, d)
            self.head = nn.Linear(d, n_cls)
            self.emb_out = None

        def forward(self, input_ids, token_type_ids, attention_mask):
            n, t = input_ids.shape
            pos = torch.arange(t, dtype=torch.int64, device=input_ids.device).unsqueeze(0)
            e = self.tok(input_ids) + self.pos(pos) + self.typ(token_type_ids)
            if self.emb_norm is not None:
                e = self.emb_norm(e)
            self.emb_out = e
            add = (1.0 - attention_mask.to(e.dtype)) * -10000.0  # (N, T)
            if self.mask_mode == "attn_mask":
                mask = add.view(n, 1, 1, t).expand(n, self.heads, t, t).reshape(
                    n * self.heads, t, t)
                h = self.encoder(e, mask=mask)
            else:
                h = self.encoder(e, src_key_padding_mask=add)
            return self.head(torch.tanh(self.pool(h[:, 0])))
    return TextClassifier


def text_inputs(rng, n, t, vocab, mask_dtype, pad=5):
    """input_ids (CLS id 1 first, pad id 0), token_type_ids (two segments), attention_mask with
    `pad` padded positions at the end of sample 1."""
    ids = rng.integers(2, vocab, (n, t)).astype(np.int64)
    ids[:, 0] = 1
    tt = np.zeros((n, t), np.int64)
    for b in range(n):
        tt[b, rng.integers(t // 3, t - 2):] = 1
    am = np.ones((n, t), mask_dtype)
    if n > 1:
        am[1, t - pad:] = 0
        ids[1, t - pad:] = 0
        tt[1, t - pad:] = 0
    return {"input_ids": ids, "token_type_ids": tt, "attention_mask": am}


TEXT_SHAPES = ((2, 16), (3, 23))


def make_text(outdir, name, cfg, opset, shapes=TEXT_SHAPES, mask_dtype=np.int64, hf=None):
    """A text classifier with inputs input_ids / token_type_ids / attention_mask, references at
    several (N, T). hf: a transformers model class builder (hf_bert) instead of TextClassifier."""
    torch = torch_mod()
    t0 = time.time()
    seed = seed_of(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    if hf is None:
        model = text_model_cls()(**cfg)
        n_ln = jitter_layernorms(model, gen)
        sharpen_attention(model, gen, 1.5)
        vocab = cfg["vocab"]

        def emb_of(m):
            return lambda: m.emb_out
        names = ["input_ids", "token_type_ids", "attention_mask"]
        source = ("TextClassifier(%s) around torch.nn.TransformerEncoder "
                  "(make_transformers.py)" % ", ".join("%s=%s" % kv for kv in cfg.items()))
    else:
        model, vocab, source = hf()
        n_ln = jitter_layernorms(model, gen)

        def emb_of(m):
            store = {}
            m.bert.embeddings.register_forward_hook(lambda mod, i, o: store.__setitem__("e", o))
            return lambda: store["e"]
        names = ["input_ids", "attention_mask", "token_type_ids"]  # forward's order
    model.eval()
    m64 = copy.deepcopy(model).double()
    m32 = copy.deepcopy(model)  # parameters keep requires_grad: the embedding output needs it
    get64, get32 = emb_of(m64), emb_of(m32)

    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    n0, t0_ = shapes[0]
    feeds0 = text_inputs(np.random.default_rng(seed + 7), n0, t0_, vocab, mask_dtype)
    dyn = {k: {0: "N", 1: "T"} for k in names}
    dyn["logits"] = {0: "N"}
    om = torch_export(model, [torch.from_numpy(feeds0[k]) for k in names], path, names, dyn,
                      opset)
    t_export = time.time() - t0

    runs, errs, maps, ort_errs, targets, argmax = [], {}, {}, {}, {}, {}
    emb_name = attn = None
    for i, (n, t) in enumerate(shapes):
        feeds = feeds0 if i == 0 else text_inputs(rng, n, t, vocab, mask_dtype)
        args64 = [torch.from_numpy(feeds[k]) for k in names]
        if mask_dtype != np.int64:
            args64 = [a.double() if a.is_floating_point() else a for a in args64]
        r64 = torch_run(m64, args64, get64, rng=rng)
        r32 = torch_run(m32, [torch.from_numpy(feeds[k]) for k in names], get32,
                        targets=r64["targets"])
        label = "t%d" % t
        errs[label] = fp32_errors(r32, r64)
        outs, _ = ort_run(om, feeds)
        ort_errs[label] = rel_err(outs[0], r64["out"])
        if ort_errs[label] > ORT_TOL:
            raise RuntimeError("%s %s: ONNX Runtime and the float64 reference differ by %.3g" %
                               (name, label, ort_errs[label]))
        a, map_err = match_softmax(om, feeds, r64["probs"])
        e, hits, e_err = find_tensor(om, feeds, r64["wrt"], "embedding output")
        if attn is not None and (a != attn or e != emb_name):
            raise RuntimeError("%s: tensor names differ between runs" % name)
        attn, emb_name = a, e
        maps[label] = {"softmax_max_abs_diff": map_err, "embedding_rel_diff": e_err,
                       "embedding_candidates": hits}
        targets[label] = r64["targets"].tolist()
        argmax[label] = r64["out"].argmax(axis=1).tolist()
        run = Run(label, label)
        torch_case_run(d, run, {k: feeds[k] for k in names}, r64, "emb", emb_name, attn)
        runs.append(run)
    write_manifest(d, runs, "%s, opset %d" % (name, opset))
    meta = {"source": source, "seed": seed, "opset": opset, "torch": torch.__version__,
            "ops": count_ops(om), "graph_inputs": names,
            "attention_mask_dtype": np.dtype(mask_dtype).name,
            "runs": {"t%d" % t: {"N": n, "T": t} for n, t in shapes},
            "embedding_output": emb_name, "gradient_wrt": "embedding output + attention",
            "attention_probabilities": attn, "mapping": maps, "layernorms_jittered": n_ln,
            "targets": targets, "argmax": argmax, "fp32_vs_fp64_rel_err": errs,
            "onnxruntime_vs_reference_rel_err": max(ort_errs.values()),
            "onnxruntime_vs_reference_per_run": ort_errs, "seconds_export": round(t_export, 2),
            "reference": "float64 (model.double()), stored as float32"}
    write_meta(d, meta, t0)
    summary(name, meta)


TEXT_POSTLN = dict(vocab=100, max_len=32, d=64, heads=4, ff=128, layers=3, n_cls=5,
                   norm_first=False, mask_mode="attn_mask")
TEXT_PRELN = dict(vocab=100, max_len=32, d=64, heads=4, ff=128, layers=4, n_cls=5,
                  norm_first=True, mask_mode="key_padding")
TINY = dict(vocab=50, max_len=16, d=32, heads=4, ff=64, layers=2, n_cls=4, norm_first=False,
            mask_mode="attn_mask")


def ensure_hf(site):
    """Makes transformers importable (pinned, --no-deps, into site). Returns None or why not."""
    if site:
        stamp = os.path.join(site, ".idl_stamp")
        want = " ".join(HF_PINS)
        if not (os.path.isfile(stamp) and open(stamp).read() == want):
            env = dict(os.environ)
            env.pop("PIP_NO_INDEX", None)
            env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
            shutil.rmtree(site, ignore_errors=True)
            r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                                "--target", site] + HF_PINS, env=env, capture_output=True,
                               text=True)
            if r.returncode:
                return "pip install --no-deps --target %s failed: %s" % (
                    site, (r.stderr or r.stdout).strip().splitlines()[-1:])
            with open(stamp, "w") as f:
                f.write(want)
        if site not in sys.path:
            sys.path.append(site)  # after the venv: only adds what it lacks
    try:
        import transformers  # noqa: F401
    except Exception as e:  # noqa: BLE001
        return "transformers not importable (%s); pass --hf-site DIR" % e
    return None


def hf_bert_builder():
    import transformers
    from transformers import BertConfig, BertForSequenceClassification
    cfg = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, vocab_size=1000, num_labels=5,
                     hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                     initializer_range=0.15)
    model = BertForSequenceClassification(cfg)
    return model, 1000, ("transformers %s BertForSequenceClassification(BertConfig(hidden_size=64, "
                         "num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, "
                         "vocab_size=1000, num_labels=5, initializer_range=0.15)), random init" %
                         transformers.__version__)


# ---- ONNX-only cases (ONNX Runtime + float64 directional checks) ----

def directional(f, x0, n, out_obj, seed, k=fdcheck.K, h=fdcheck.H):
    """fdcheck.directional for a tensor x0 whose first axis need not be the batch: sample b owns
    the b-th of n equal contiguous chunks. f: float64 tensor -> output 0; out_obj(out) -> (n,)
    per-sample objectives. Returns dir (k,)+x0.shape, fd (k,n), tol (k,n), info."""
    rng = np.random.default_rng(seed)
    x0 = np.asarray(x0, np.float64)
    d = rng.standard_normal((k, n, x0.size // n))
    d /= np.sqrt((d ** 2).sum(axis=2, keepdims=True))
    d = d.astype(np.float32).reshape((k,) + x0.shape)
    dh = np.zeros((k, n))
    d2h = np.zeros((k, n))
    for j in range(k):
        dj = d[j].astype(np.float64)
        for step, res in ((h, dh), (2 * h, d2h)):
            res[j] = (out_obj(f(x0 + step * dj)) - out_obj(f(x0 - step * dj))) / (2 * step)
    rms = np.sqrt((dh ** 2).mean(axis=0))
    spread = np.abs(dh - d2h)
    tol = fdcheck.RTOL_DIR * rms[None, :] + 10.0 * spread
    info = {"h": h, "directions": k, "rtol_dir": fdcheck.RTOL_DIR, "fd": dh.tolist(),
            "rms": rms.tolist(), "max_spread_over_rms": float((spread / rms[None, :]).max())}
    return d, dh.astype(np.float32), tol.astype(np.float32), info


def onnx_case_run(d, run, model, ev, feeds, out_obj, fd_tensors, seed, obj_name, kinks_ok):
    """Forward references (ONNX Runtime) and directional checks for one run of an ONNX-only
    case. fd_tensors: [(group, tensor name)]. Returns info for meta.json."""
    import kinks
    outs, _ = ort_run(model, feeds)
    out64 = ev.base(feeds)
    err = rel_err(outs[0], out64)
    if err > ORT_TOL:
        raise RuntimeError("%s: ONNX Runtime and the float64 evaluation differ by %.3g" %
                           (d, err))
    for name, arr in feeds.items():
        run.add("input", name, run.save(d, name + ".npy", arr))
    for i, o in enumerate(outs):
        run.add("output", i, run.save(d, "logits.npy" if i == 0 else "output%d.npy" % i, o))
    info = {"onnxruntime_vs_float64_rel_err": err, "directional": {}}
    n_kinks = 0
    if kinks_ok:
        recs = kinks.onnx_records(model, lambda names: [ev.value(nm) for nm in names])
        n_kinks = kinks.write(run.path(d, "kinks.txt"), recs, os.path.basename(d))
        if n_kinks:
            run.add("kinks", run.rel("kinks.txt"))
    info["kink_units"] = n_kinks
    for grp, tensor in fd_tensors:
        x0 = ev.cache[tensor]
        f = ev.tail(tensor)
        n = len(next(iter(feeds.values())))
        dvec, fd, tol, fi = directional(f, x0, n, out_obj, seed + len(info["directional"]))
        files = [run.save(d, "%s.%s.npy" % (p, grp), a)
                 for p, a in (("dir", dvec), ("fd", fd), ("fd_tol", tol))]
        run.add("directional", obj_name, grp, tensor, *files)
        info["directional"][grp] = {"tensor": tensor, "shape": list(x0.shape), **fi}
    return outs, info


def paddle_text_layer(cfg):
    import paddle

    class PaddleText(paddle.nn.Layer):
        def __init__(self, vocab, max_len, d, heads, ff, layers, n_cls):
            super().__init__()
            self.tok = paddle.nn.Embedding(vocab, d)
            self.pos = paddle.nn.Embedding(max_len, d)
            self.norm = paddle.nn.LayerNorm(d)
            layer = paddle.nn.TransformerEncoderLayer(d, heads, ff, dropout=0.0,
                                                      activation="gelu", attn_dropout=0.0,
                                                      act_dropout=0.0)
            self.encoder = paddle.nn.TransformerEncoder(layer, layers)
            self.pool = paddle.nn.Linear(d, d)
            self.head = paddle.nn.Linear(d, n_cls)

        def embed(self, input_ids):
            t = paddle.shape(input_ids)[1]
            pos = paddle.arange(t, dtype="int64").unsqueeze(0)
            return self.norm(self.tok(input_ids) + self.pos(pos))

        def forward(self, input_ids, attention_mask):
            e = self.embed(input_ids)
            mask = ((1.0 - attention_mask) * -10000.0).unsqueeze([1, 2])  # (N,1,1,T)
            h = self.encoder(e, mask)
            return self.head(paddle.tanh(self.pool(h[:, 0])))
    return PaddleText(**cfg)


PADDLE_TEXT = dict(vocab=100, max_len=32, d=64, heads=4, ff=128, layers=2, n_cls=5)


def make_paddle_text(outdir, name="paddle_text", opset=14):
    import paddle
    import paddle2onnx
    t0 = time.time()
    seed = seed_of(name)
    paddle.seed(seed)
    rng = np.random.default_rng(seed)
    layer = paddle_text_layer(PADDLE_TEXT)
    for m in layer.sublayers():
        if isinstance(m, paddle.nn.LayerNorm):
            c = m.weight.shape[0]
            m.weight.set_value(rng.uniform(0.75, 1.25, c).astype("float32"))
            m.bias.set_value(rng.normal(0, 0.05, c).astype("float32"))
    layer.eval()
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    tmp = tempfile.mkdtemp()
    old = os.environ.get("PIP_NO_INDEX")
    os.environ["PIP_NO_INDEX"] = "1"  # nothing paddle2onnx runs may install anything
    try:
        spec = [paddle.static.InputSpec([None, None], "int64", "input_ids"),
                paddle.static.InputSpec([None, None], "float32", "attention_mask")]
        paddle.jit.save(layer, os.path.join(tmp, "model"), input_spec=spec)
        mf = os.path.join(tmp, "model.json")
        if not os.path.isfile(mf):
            mf = os.path.join(tmp, "model.pdmodel")
        paddle2onnx.export(mf, os.path.join(tmp, "model.pdiparams"), path, opset,
                           auto_upgrade_opset=False, enable_onnx_checker=True,
                           optimize_tool="None")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is None:
            os.environ.pop("PIP_NO_INDEX", None)
        else:
            os.environ["PIP_NO_INDEX"] = old
    model = onnx.load(path)
    ev = graph64.Graph64(model)
    attn = softmax_nodes(model)
    if len(attn) != PADDLE_TEXT["layers"]:
        raise RuntimeError("%s: %d Softmax nodes for %d layers" % (name, len(attn),
                                                                   PADDLE_TEXT["layers"]))
    runs, infos, targets = [], {}, {}
    emb_name = None
    for i, (n, t) in enumerate(TEXT_SHAPES):
        f = text_inputs(rng, n, t, PADDLE_TEXT["vocab"], np.float32)
        feeds = {"input_ids": f["input_ids"], "attention_mask": f["attention_mask"]}
        with paddle.no_grad():
            pd_out = layer(paddle.to_tensor(feeds["input_ids"]),
                           paddle.to_tensor(feeds["attention_mask"])).numpy()
            pd_emb = layer.embed(paddle.to_tensor(feeds["input_ids"])).numpy()
        e, hits, _ = find_tensor(model, feeds, pd_emb.astype(np.float64), "embedding output")
        if emb_name not in (None, e):
            raise RuntimeError("%s: embedding tensor differs between runs" % name)
        emb_name = e
        label = "t%d" % t
        run = Run(label, label)
        ort_out, _ = ort_run(model, feeds)
        tg = pick_targets(ort_out[0], rng)
        targets[label] = tg.tolist()
        run.add("targets", run.save(d, "targets.npy", tg))
        rows = np.arange(n)

        def logit_obj(out, tg=tg, rows=rows):
            return np.asarray(out, np.float64).reshape(n, -1)[rows, tg]
        fd_tensors = [("emb", emb_name)] + [("attn%02d" % j, a) for j, a in enumerate(attn)]
        outs, info = onnx_case_run(d, run, model, ev, feeds, logit_obj, fd_tensors,
                                   seed + 100 * i, "logit", False)
        info["paddle_vs_onnxruntime_rel_err"] = rel_err(outs[0], pd_out)
        info["embedding_candidates"] = hits
        if info["paddle_vs_onnxruntime_rel_err"] > ORT_TOL:
            raise RuntimeError("%s: Paddle and ONNX Runtime differ by %.3g" %
                               (name, info["paddle_vs_onnxruntime_rel_err"]))
        infos[label] = info
        runs.append(run)
    write_manifest(d, runs, "%s, paddle2onnx opset %d" % (name, opset))
    meta = {"source": "PaddleText(%s): paddle.nn.TransformerEncoder (make_transformers.py), "
                      "paddle.jit.save + paddle2onnx.export" %
                      ", ".join("%s=%s" % kv for kv in PADDLE_TEXT.items()),
            "paddle": paddle.__version__, "paddle2onnx": paddle2onnx.__version__, "seed": seed,
            "opset": opset, "ops": count_ops(model), "graph_inputs": list(feeds),
            "embedding_output": emb_name, "attention_probabilities": attn,
            "runs": infos, "targets": targets,
            "onnxruntime_vs_reference_rel_err": max(
                v["onnxruntime_vs_float64_rel_err"] for v in infos.values()),
            "reference": "outputs: onnxruntime float32; directional: float64 onnx.reference"}
    write_meta(d, meta, t0)
    summary(name, meta)


def make_ppocr_rec(outdir, name="ppocr_rec"):
    import onnxruntime
    t0 = time.time()
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("rapidocr_onnxruntime is not installed (run setup_venv.sh)")
    src = os.path.join(list(spec.submodule_search_locations)[0], "models", OCR_REC)
    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    shutil.copyfile(src, path)
    model = onnx.load(path)
    ev = graph64.Graph64(model)
    inp = ev.inputs[0]
    attn = softmax_nodes(model)  # the output's Softmax (a graph output) is not attention
    seed = seed_of(name)
    rng = np.random.default_rng(seed)
    runs, infos, picks = [], {}, {}
    for i, (n, w) in enumerate(((2, 320), (1, 160))):
        # text-line crops as the recognizer sees them: (pixel/255 - 0.5) / 0.5
        x = ((rng.uniform(0, 1, (n, 3, 48, w)) - 0.5) / 0.5).astype(np.float32)
        feeds = {inp: x}
        out = ort_run(model, feeds)[0][0]  # (N, steps, classes)
        # objective: per sample, the probability of the second most likely character at a
        # seeded time step (well conditioned, unlike a probability near 1)
        steps = rng.integers(0, out.shape[1], n)
        cls = np.argsort(out[np.arange(n), steps], axis=1)[:, -2]
        seedt = np.zeros(out.shape, np.float32)
        seedt[np.arange(n), steps, cls] = 1.0
        flat = (steps * out.shape[2] + cls).astype(np.int64)
        label = "w%d" % w
        run = Run(label, label)
        run.add("seed", run.save(d, "seed.npy", seedt))

        def seed_obj(o, flat=flat, n=n):
            return np.asarray(o, np.float64).reshape(n, -1)[np.arange(n), flat]
        fd_tensors = [("input", inp)] + [("attn%02d" % j, a) for j, a in enumerate(attn)]
        _, info = onnx_case_run(d, run, model, ev, feeds, seed_obj, fd_tensors, seed + 100 * i,
                                "seed", True)
        info["objective"] = {"time_step": steps.tolist(), "class": cls.tolist(),
                             "probability": out[np.arange(n), steps, cls].tolist()}
        picks[label] = info["objective"]
        infos[label] = info
        runs.append(run)
    write_manifest(d, runs, "%s, pretrained PaddleOCR recognizer (unchanged)" % name)
    meta = {"source": "rapidocr-onnxruntime models/" + OCR_REC + " (pretrained PaddleOCR)",
            "onnxruntime": onnxruntime.__version__, "ops": count_ops(model),
            "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")],
            "graph_inputs": [inp], "attention_probabilities": attn, "runs": infos,
            "output": "(N, W/8, 6625) softmax over characters per time step (CTC)",
            "onnxruntime_vs_reference_rel_err": max(
                v["onnxruntime_vs_float64_rel_err"] for v in infos.values()),
            "reference": "outputs: onnxruntime float32; directional: float64 onnx.reference"}
    write_meta(d, meta, t0)
    summary(name, meta)


# ---- main ----

def case_table(hf_site):
    return {
        "vit_b_16": lambda o: make_vit(o, "vit_b_16", vit_b_16, 224,
                                       [("vit_b_16", 13), ("vit_b_16_opset17", 17)]),
        "vit_grid12": lambda o: make_vit(o, "vit_grid12", vit_grid12, 192, [("vit_grid12", 14)]),
        "text_postln": lambda o: make_text(o, "text_postln", TEXT_POSTLN, 14),
        "text_preln": lambda o: make_text(o, "text_preln", TEXT_PRELN, 17,
                                          mask_dtype=np.float32),
        "hf_bert": lambda o: make_hf(o, hf_site),
        "paddle_text": make_paddle_text,
        "ppocr_rec": make_ppocr_rec,
    }


def make_hf(outdir, site):
    why = ensure_hf(site)
    if why:
        print("make_transformers: hf_bert skipped: %s" % why, flush=True)
        return
    make_text(outdir, "hf_bert", None, 14, hf=hf_bert_builder)


def make_fixture(outdir):
    """The committed fixture tests/data/parity/tiny_text (small: d 32, 2 layers, T 8 and 11)."""
    make_text(outdir, "tiny_text", TINY, 14, shapes=((2, 8), (3, 11)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--models", default="", help="comma-separated cases (default: all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--hf-site", default="", help="folder for the pinned transformers packages")
    ap.add_argument("--fixture", action="store_true",
                    help="write only the committed fixture tiny_text into OUTDIR")
    a = ap.parse_args()
    torch = torch_mod()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    os.makedirs(a.outdir, exist_ok=True)
    t0 = time.time()
    if a.fixture:
        make_fixture(a.outdir)
        return
    table = case_table(os.path.abspath(a.hf_site) if a.hf_site else "")
    names = [n for n in a.models.split(",") if n] or list(table)
    for n in names:
        if n not in table:
            sys.exit("make_transformers: unknown case %r (known: %s)" % (n, ", ".join(table)))
    for n in names:
        table[n](a.outdir)
    print("make_transformers: %s in %.1fs -> %s" % (",".join(names), time.time() - t0,
                                                     a.outdir))


if __name__ == "__main__":
    main()

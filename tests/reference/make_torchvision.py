#!/usr/bin/python3
"""make_torchvision.py OUTDIR [--models a,b,...] [--threads N]

Reference generator for the whole-model parity test (tests/test_parity.c). Never used by the
library at run time. Runs with Debian's /usr/bin/python3 (python3-torch 1.13, python3-torchvision
0.14, python3-onnx, numpy); no PyPI package is needed.

For each torchvision classifier (random weights, weights=None, fixed seed per model) it writes
OUTDIR/<case>/:
    model.onnx            torch.onnx.export of the float32 model: input "input" (N,3,224,224),
                          output "logits" (N,1000), dynamic batch axis "N", constant folding on,
                          TrainingMode.EVAL (the exporter fuses Conv+BN) except the *_bnpreserve
                          case (TrainingMode.PRESERVE on an eval-mode model: BatchNormalization
                          nodes stay in the graph)
    input.npy             float32 (2,3,224,224): uniform [0,1) pixels normalised with the ImageNet
                          mean/std, seeded per model
    logits.npy            float32 (2,1000): PyTorch eval-mode forward, computed in float64
    targets.npy           int64 (2,): per sample a seeded random class that is NOT the argmax
    grad_logit.npy        float32 (2,3,224,224): d/d input of sum_b logits[b, t_b]
    grad_probability.npy  float32 (2,3,224,224): d/d input of sum_b softmax(logits[b])[t_b]
    kinks.txt             units within 5e-4 of a ReLU/Clip/HardSwish/HardSigmoid kink or of a
                          MaxPool tie, with their float64 values (see kinks.py for why and how)
    meta.json             opset, export mode, seed, versions, op counts, and how far PyTorch's own
                          float32 results are from the float64 reference (fp32_vs_fp64_rel_err)

References in float64: the model is exported in float32, and the same weights are run in float64
(model.double()) for logits and input gradients (torch.autograd), then stored as float32. Against
PyTorch's float32 run the comparison would mostly measure PyTorch's own rounding and kink flips
(see kinks.py); float64 gives the exact function of the float32 weights and input.

Random BatchNorm statistics: a freshly initialised torchvision model has running_mean 0 and
running_var 1, which makes every BN an identity and hides BN bugs. Before export each model is
calibrated: running statistics are recomputed (cumulative average, momentum=None) in train mode on
two seeded random batches, and the BN affine parameters are jittered (weight ~ U(0.75,1.25),
bias ~ N(0, 0.05)). The model then behaves like a trained network numerically (activations of
order one) without needing any downloaded weights.
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kinks  # noqa: E402

# case name -> (torchvision constructor, opset, export mode)
CASES = {
    "resnet18": ("resnet18", 13, "eval"),
    "resnet18_bnpreserve": ("resnet18", 13, "preserve"),
    "resnet50": ("resnet50", 13, "eval"),
    "mobilenet_v2": ("mobilenet_v2", 11, "eval"),
    "mobilenet_v3_small": ("mobilenet_v3_small", 13, "eval"),
    "mobilenet_v3_large": ("mobilenet_v3_large", 17, "eval"),
    "vgg11_bn": ("vgg11_bn", 13, "eval"),
    "densenet121": ("densenet121", 14, "eval"),
    "efficientnet_b0": ("efficientnet_b0", 13, "eval"),
    "squeezenet1_0": ("squeezenet1_0", 11, "eval"),
}
BATCH = 2
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def seed_of(name):
    # stable across runs and Python versions (no hash())
    return 1000 + sum((i + 1) * ord(c) for i, c in enumerate(name))


def image_batch(gen, n, size=224):
    return ((torch.rand(n, 3, size, size, generator=gen) - MEAN) / STD).contiguous()


def calibrate_bn(model, gen, make_batch=None):
    """Calibrates the BN layers (see above) and leaves the model in eval mode.
    make_batch(gen) -> a calibration batch (default: 4 images of 3x224x224)."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not bns:
        model.eval()
        return 0
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
        with torch.no_grad():
            m.weight.copy_(0.75 + 0.5 * torch.rand(m.weight.shape, generator=gen))
            m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=gen))
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(make_batch(gen) if make_batch else image_batch(gen, 4))
    model.eval()
    return len(bns)


def objective(logits, targets, kind):
    if kind == "logit":
        z = logits
    elif kind == "probability":
        z = torch.softmax(logits, dim=1)
    else:
        raise ValueError(kind)
    return z.gather(1, targets.view(-1, 1)).sum()


OBJECTIVES = ("logit", "probability")


def forward_and_grads(model, x, targets, with_capture=False, mode=None):
    """One forward (recording kinked ops if asked) and one backward per objective.
    targets None: chosen from the logits (seeded random class other than the argmax) via
    pick_targets. Returns logits, targets, {objective: input gradient}, calls."""
    x = x.clone().requires_grad_(True)
    calls = None
    if with_capture:
        logits, calls = kinks.capture(model, x)
    elif mode is not None:
        with mode:
            logits = model(x)
    else:
        logits = model(x)
    if callable(targets):
        targets = targets(logits.detach())
    grads = {}
    for i, k in enumerate(OBJECTIVES):
        obj = objective(logits, targets, k)
        (g,) = torch.autograd.grad(obj, x, retain_graph=i + 1 < len(OBJECTIVES))
        grads[k] = g.detach()
    return logits.detach(), targets, grads, calls


def export(model, x, path, opset, mode):
    training = (torch.onnx.TrainingMode.PRESERVE if mode == "preserve"
                else torch.onnx.TrainingMode.EVAL)
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      opset_version=opset, do_constant_folding=True, training=training)


def count_ops(path):
    try:
        import onnx
    except ImportError:
        return {}
    ops = {}
    for n in onnx.load(path, load_external_data=False).graph.node:
        ops[n.op_type] = ops.get(n.op_type, 0) + 1
    return ops


def rel_err(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def make_case(name, outdir):
    ctor, opset, mode = CASES[name]
    t0 = time.time()
    seed = seed_of(name)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = getattr(torchvision.models, ctor)(weights=None)
    n_bn = calibrate_bn(model, gen)
    x = image_batch(gen, BATCH)
    meta = {"source": "torchvision.models.%s(weights=None)" % ctor, "seed": seed,
            "batchnorm_layers_calibrated": n_bn, "torchvision": torchvision.__version__}
    write_reference(model, x, gen, os.path.join(outdir, name), opset, mode, meta, t0)


def write_reference(model, x, gen, d, opset, mode, meta, t0):
    """Exports model (eval mode, float32) to d/model.onnx and writes the float64 references for
    input x (see the module comment). gen: torch.Generator for the targets."""
    for p in model.parameters():
        p.requires_grad_(False)

    def pick_targets(logits):
        # per sample a seeded random class that is not the argmax
        top = logits.argmax(dim=1)
        t = torch.randint(0, logits.shape[1] - 1, (logits.shape[0],), generator=gen)
        return torch.where(t >= top, t + 1, t).to(torch.int64)

    # float64 reference, recording the inputs of kinked ops on the way
    m64 = copy.deepcopy(model).double()
    logits64, targets, grads64, calls = forward_and_grads(m64, x.double(), pick_targets, True)
    top = logits64.argmax(dim=1)
    t1 = time.time()

    os.makedirs(d, exist_ok=True)
    onnx_path = os.path.join(d, "model.onnx")
    export(model, x, onnx_path, opset, mode)
    t2 = time.time()
    recs = kinks.align_records(calls, onnx_path)
    n_kinks = kinks.write(os.path.join(d, "kinks.txt"), recs, os.path.basename(d))

    # PyTorch float32, plain and kink-aligned, for the record (and as a check of the records)
    logits32, _, grads32, _ = forward_and_grads(model, x, targets)
    err32 = {"logits": rel_err(logits32, logits64)}
    for k in grads64:
        err32["grad_" + k] = rel_err(grads32[k], grads64[k])
    _, _, grads32a, _ = forward_and_grads(model, x, targets, mode=kinks.Align(recs))
    for k in grads64:
        err32["grad_%s_aligned" % k] = rel_err(grads32a[k], grads64[k])
    t3 = time.time()

    np.save(os.path.join(d, "input.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(d, "logits.npy"), logits64.numpy().astype(np.float32))
    np.save(os.path.join(d, "targets.npy"), targets.numpy().astype(np.int64))
    for k, g in grads64.items():
        np.save(os.path.join(d, "grad_%s.npy" % k), g.numpy().astype(np.float32))

    meta.update({
        "opset": opset,
        "export": "TrainingMode.PRESERVE" if mode == "preserve" else "TrainingMode.EVAL",
        "torch": torch.__version__, "ops": count_ops(onnx_path),
        "targets": targets.tolist(), "argmax": top.tolist(), "kink_units": n_kinks,
        "max_abs_logit": float(logits64.abs().max()), "fp32_vs_fp64_rel_err": err32,
        "reference": "float64 (model.double()), stored as float32",
    })
    meta["seconds"] = round(time.time() - t0, 2)
    meta["seconds_fp64_export_fp32"] = [round(v, 2) for v in (t1 - t0, t2 - t1, t3 - t2)]
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    print("%-20s opset %2d %5.1fs  max|logit| %.3g  kink units %5d  torch fp32 vs fp64: %s" % (
        os.path.basename(d), opset, meta["seconds"], meta["max_abs_logit"], n_kinks,
        " ".join("%s %.1e" % (k.replace("grad_", "").replace("probability", "prob"), v)
                 for k, v in err32.items())), flush=True)
    return targets


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--models", default=",".join(CASES), help="comma-separated case names")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)
    names = [n for n in a.models.split(",") if n]
    for n in names:
        if n not in CASES:
            sys.exit("make_torchvision: unknown model %r (known: %s)" % (n, ", ".join(CASES)))
    os.makedirs(a.outdir, exist_ok=True)
    t0 = time.time()
    for n in names:
        make_case(n, a.outdir)
    print("make_torchvision: %d models in %.1fs -> %s" % (len(names), time.time() - t0, a.outdir))


if __name__ == "__main__":
    main()

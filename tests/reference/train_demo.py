#!/usr/bin/python3
"""train_demo.py [--data DIR] [--out DIR] [--epochs N] — trains the demo model committed in
data/demo (a small CNN on Fashion-MNIST) and writes it with its images. Runs with Debian's
/usr/bin/python3 (torch 1.13, numpy, onnx, PIL); about 3 minutes on 2 cores. The library and the
tests never run it; `interpretdl demo` embeds what it wrote.

Data: the IDX files of Debian's dataset-fashion-mnist package
(/usr/share/datasets/fashion-mnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz;
Fashion-MNIST, (c) 2017 Zalando SE, MIT license).

Model (1x28x28 input, preprocessing "scale": x = pixel / 255 in [0, 1], no mean/std):
    Conv(1->16, 3x3, pad 1) BN ReLU MaxPool 2x2   (16 x 14 x 14)
    Conv(16->32, 3x3, pad 1) BN ReLU MaxPool 2x2  (32 x 7 x 7)
    Conv(32->64, 3x3, pad 1) BN ReLU              (64 x 7 x 7: the CAM layer)
    GlobalAveragePool  Flatten  Gemm(64->10)
24.2k parameters (23.9k after folding). The ONNX export (eval mode) folds each BatchNorm into its
Conv, so the graph is Conv Relu MaxPool Conv Relu MaxPool Conv Relu GlobalAveragePool Flatten
Gemm (checked), and CAM and the Grad-CAM family apply to the last Relu's output. The ReLUs are
nn.ReLU modules (not in place), so hook-based tools can attach to them. (Without the BatchNorms,
or with the pooling after two unpadded convolutions, the same budget reached only 80-85% test
accuracy.)

Training: seed 20240613, Adam with a one-cycle schedule (max lr 3e-3), batch 128, 8 epochs, cross
entropy, no augmentation; 2 threads, torch.use_deterministic_algorithms(True) — the same torch
build and thread count give the same weights. About 20-30 s per epoch on 2 cores.

Writes into OUT (default data/demo next to this script's repository):
    fashion_cnn.onnx   opset 13, input "image" (N,1,28,28) float32 with a dynamic batch axis,
                       output "logits" (N,10); checked with onnx.checker and against torch's
                       logits on the test images in ONNX Runtime (this Python's onnxruntime, or
                       --ort-python's, by default build/venv/bin/python of the repository)
    labels.txt         the 10 class names in index order
    images/IIII_NAME.png  8 test images (28x28 grayscale): per class in SHOWN, the first test
                       image (index IIII, zero-padded) that the model classifies correctly
    logits.npy         (8,10) float32, torch's logits for those images in file-name order
                       (input: the PNG / 255), for comparisons with the library's forward pass
    meta.json          test accuracy (overall, per class, per epoch), timings, the images'
                       test-set indices and probabilities, the ONNX check, versions
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import gzip  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402  (before torch: see tests/reference/README.md, Gotchas)
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
DATA = "/usr/share/datasets/fashion-mnist"
SEED = 20240613
EPOCHS = 8
LR = 3e-3
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]
# the 8 classes shown (Coat and Shirt left out: they look most like Pullover / T-shirt/top)
SHOWN = [0, 1, 2, 3, 5, 7, 8, 9]
FILE_NAMES = ["tshirt_top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
              "bag", "ankle_boot"]


class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.features(x))))


def read_idx(path):
    """An IDX file (the MNIST format): magic 0x0000 0x08 NDIM, NDIM big-endian uint32 sizes,
    uint8 data."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError("%s: %d bytes of data for shape %s" % (path, data.size, dims))
    return data.reshape(dims)


def load(data_dir, split):
    x = read_idx(os.path.join(data_dir, "%s-images-idx3-ubyte.gz" % split))
    y = read_idx(os.path.join(data_dir, "%s-labels-idx1-ubyte.gz" % split))
    return x, y.astype(np.int64)


def evaluate(model, x, batch=1000):
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            out.append(model(x[i:i + batch]))
    return torch.cat(out)


def ort_logits(onnx_path, x, ort_python):
    """ONNX Runtime's logits for x: in this Python if it has onnxruntime, else in ort_python."""
    try:
        import onnxruntime as ort
        sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
        y = sess.run(["logits"], {"image": x})[0]
        return y, "onnxruntime %s (in process)" % ort.__version__
    except ImportError:
        pass
    if not ort_python or not os.path.exists(ort_python):
        return None, "no onnxruntime (give --ort-python)"
    with tempfile.TemporaryDirectory() as tmp:
        xin, yout = os.path.join(tmp, "x.npy"), os.path.join(tmp, "y.npy")
        np.save(xin, x)
        code = ("import sys, numpy as np, onnxruntime as ort\n"
                "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
                "np.save(sys.argv[3], s.run(['logits'], {'image': np.load(sys.argv[2])})[0])\n"
                "print(ort.__version__)\n")
        r = subprocess.run([ort_python, "-c", code, onnx_path, xin, yout], capture_output=True,
                           text=True, check=True)
        shown = os.path.relpath(ort_python, ROOT) if ort_python.startswith(ROOT) else ort_python
        return np.load(yout), "onnxruntime %s (%s)" % (r.stdout.strip(), shown)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=DATA, help="folder with the Fashion-MNIST IDX .gz files")
    ap.add_argument("--out", default=os.path.join(ROOT, "data", "demo"))
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--ort-python", default=os.path.join(ROOT, "build", "venv", "bin", "python"),
                    help="a Python with onnxruntime, used when this one has none")
    args = ap.parse_args()

    t_start = time.time()
    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    gen = torch.Generator().manual_seed(SEED)

    xtr, ytr = load(args.data, "train")
    xte, yte = load(args.data, "t10k")
    print("data: %s train, %s test from %s" % (xtr.shape, xte.shape, args.data))
    Xtr = torch.from_numpy(xtr.astype(np.float32) / 255.0).unsqueeze(1)
    Xte = torch.from_numpy(xte.astype(np.float32) / 255.0).unsqueeze(1)
    Ytr = torch.from_numpy(ytr)

    model = FashionCNN()
    batch = 128
    steps_per_epoch = (Xtr.shape[0] + batch - 1) // batch
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR,
                                                total_steps=args.epochs * steps_per_epoch)
    history = []
    for epoch in range(args.epochs):
        t0 = time.time()
        model.train()
        perm = torch.randperm(Xtr.shape[0], generator=gen)
        total = 0.0
        for i in range(0, Xtr.shape[0], batch):
            idx = perm[i:i + batch]
            loss = F.cross_entropy(model(Xtr[idx]), Ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.numel()
        acc = (evaluate(model, Xte).argmax(1).numpy() == yte).mean()
        history.append({"epoch": epoch + 1, "train_loss": total / Xtr.shape[0],
                        "test_accuracy": float(acc), "seconds": time.time() - t0})
        print("epoch %d: train loss %.4f, test accuracy %.4f (%.0f s)" % (
            epoch + 1, total / Xtr.shape[0], acc, time.time() - t0), flush=True)
    t_train = time.time() - t_start
    model.eval()
    logits_te = evaluate(model, Xte)
    pred = logits_te.argmax(1).numpy()
    accuracy = float((pred == yte).mean())
    per_class = {CLASSES[c]: float((pred[yte == c] == c).mean()) for c in range(10)}

    os.makedirs(os.path.join(args.out, "images"), exist_ok=True)
    for f in os.listdir(os.path.join(args.out, "images")):
        if f.endswith(".png"):
            os.remove(os.path.join(args.out, "images", f))
    # the images: first correctly classified test image of each shown class
    picked = []
    for c in SHOWN:
        i = int(np.nonzero((yte == c) & (pred == c))[0][0])
        picked.append((i, c))
    picked.sort(key=lambda t: "%04d_%s.png" % (t[0], FILE_NAMES[t[1]]))
    names = []
    for i, c in picked:
        name = "%04d_%s.png" % (i, FILE_NAMES[c])
        Image.fromarray(xte[i], mode="L").save(os.path.join(args.out, "images", name),
                                                optimize=True)
        back = np.asarray(Image.open(os.path.join(args.out, "images", name)))
        assert back.shape == (28, 28) and np.array_equal(back, xte[i]), name
        names.append(name)
    xs = Xte[[i for i, _ in picked]].contiguous()
    with torch.no_grad():
        ls = model(xs).numpy()
    np.save(os.path.join(args.out, "logits.npy"), ls.astype(np.float32))
    with open(os.path.join(args.out, "labels.txt"), "w") as f:
        f.write("".join(c + "\n" for c in CLASSES))

    # ONNX: opset 13, dynamic batch axis
    onnx_path = os.path.join(args.out, "fashion_cnn.onnx")
    torch.onnx.export(model, xs[:1], onnx_path, opset_version=13, input_names=["image"],
                      output_names=["logits"],
                      dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=True)
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m, full_check=True)
    ops = [n.op_type for n in m.graph.node]
    expect = ["Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool", "Conv", "Relu",
              "GlobalAveragePool", "Flatten", "Gemm"]
    if ops != expect:
        raise SystemExit("unexpected ONNX graph: %s" % ops)
    # ONNX Runtime against torch on the 8 images and on 256 more test images (batch 264)
    xcheck = torch.cat([xs, Xte[:256]]).numpy()
    with torch.no_grad():
        ref = model(torch.from_numpy(xcheck)).numpy()
    got, how = ort_logits(onnx_path, xcheck, args.ort_python)
    if got is None:
        raise SystemExit("cannot check the ONNX file: %s" % how)
    ort_err = float(np.abs(got - ref).max())
    print("ONNX check (%s): max |ort - torch| = %.3g over %s logits (max |logit| %.3g)" % (
        how, ort_err, ref.shape, np.abs(ref).max()))
    if ort_err > 1e-4 * max(1.0, float(np.abs(ref).max())):
        raise SystemExit("ONNX Runtime's logits differ from torch's")

    size = os.path.getsize(onnx_path)
    digest = hashlib.sha256(open(onnx_path, "rb").read()).hexdigest()
    info = {
        "test_accuracy": accuracy, "per_class_accuracy": per_class, "epochs": history,
        "train_seconds": t_train, "total_seconds": time.time() - t_start,
        "onnx_bytes": size, "onnx_sha256": digest, "onnx_ops": ops,
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "onnx_parameters": int(sum(np.prod(t.dims) for t in m.graph.initializer)),
        "images": [{"file": n, "test_index": i, "label": CLASSES[c],
                    "probability": float(torch.softmax(torch.from_numpy(ls[k]), 0)[c])}
                   for k, (n, (i, c)) in enumerate(zip(names, picked))],
        "ort_check": {"how": how, "max_abs_diff": ort_err},
        "torch": torch.__version__, "onnx": onnx.__version__, "numpy": np.__version__,
        "seed": SEED, "threads": torch.get_num_threads(),
    }
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    print(json.dumps(info, indent=1, sort_keys=True))
    print("train_demo: test accuracy %.4f, %d parameters, %s %d bytes, %.0f s -> %s" % (
        accuracy, info["parameters"], os.path.basename(onnx_path), size,
        time.time() - t_start, args.out))


if __name__ == "__main__":
    sys.exit(main())

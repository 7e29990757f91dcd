#!/usr/bin/env python3
"""bert_encoder.py — a BERT-base-sized encoder in plain PyTorch ops, random weights, for
bench/run_bench.sh (model bert_base).

  bert_encoder.py OUT.onnx     exports it (opset 14, batch axis free) to OUT.onnx (~340 MB)

Input: the embeddings (N, 128, 768) float32, as they leave BERT's embedding LayerNorm (token ids are
not differentiable: gradient methods on text attribute to this tensor). Then 12 post-LayerNorm
layers as in BERT-base: self-attention with 12 heads of 64, output projection, residual and
LayerNorm; a GELU (erf) MLP of 3072, residual and LayerNorm. Then BERT's pooler (tanh of a linear
map of the first token) and a 2-class head. bench_ref.py builds the same module (same seed) for
PyTorch. gflop() is the forward's multiply-adds x 2 per sequence (22.4 GFLOP).
"""
import math
import sys

import torch
from torch import nn

SEQ, HID, HEADS, FF, LAYERS, CLASSES = 128, 768, 12, 3072, 12, 2


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.k, self.v, self.o = (nn.Linear(HID, HID) for _ in range(4))
        self.ln1, self.ln2 = nn.LayerNorm(HID, eps=1e-12), nn.LayerNorm(HID, eps=1e-12)
        self.ff1, self.ff2 = nn.Linear(HID, FF), nn.Linear(FF, HID)

    def forward(self, x):
        n, t, _ = x.shape
        d = HID // HEADS

        def heads(y):
            return y.reshape(n, t, HEADS, d).transpose(1, 2)

        q, k, v = heads(self.q(x)), heads(self.k(x)), heads(self.v(x))
        att = torch.softmax(torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d), dim=-1)
        ctx = torch.matmul(att, v).transpose(1, 2).reshape(n, t, HID)
        x = self.ln1(x + self.o(ctx))
        return self.ln2(x + self.ff2(nn.functional.gelu(self.ff1(x))))


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.pooler = nn.Linear(HID, HID)
        self.head = nn.Linear(HID, CLASSES)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return self.head(torch.tanh(self.pooler(x[:, 0])))


def build(seed=2024):
    torch.manual_seed(seed)
    return Encoder().eval()


def shape():
    return (SEQ, HID)


def gflop():
    per_layer = 4 * SEQ * HID * HID + 2 * SEQ * HID * FF + 2 * SEQ * SEQ * HID
    return 2.0 * (LAYERS * per_layer + HID * HID + HID * CLASSES) / 1e9


def export(path):
    model = build()
    with torch.no_grad():
        torch.onnx.export(model, torch.zeros((1,) + shape()), path, input_names=["embeddings"],
                          output_names=["logits"], opset_version=14,
                          dynamic_axes={"embeddings": {0: "N"}, "logits": {0: "N"}})


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: bert_encoder.py OUT.onnx")
    export(sys.argv[1])

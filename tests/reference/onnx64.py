"""onnx64.py — runs an ONNX model in float64 with onnx.reference (the numpy reference evaluator of
onnx >= 1.13, in the venv from setup_venv.sh). Used by make_paddle.py for models that exist only as
ONNX: ONNX Runtime has no float64 Conv, and the finite differences and kink records need float64.

to_float64 rewrites every float32 in the graph (initializers, Constant values, Cast targets, value
types) as float64; integer tensors (shapes, indices) are left alone. make_paddle.py checks the
result against ONNX Runtime (float32) to 1e-4 before using it."""
import numpy as np
import onnx
from onnx import TensorProto, numpy_helper


def _tensor64(t):
    if t.data_type == TensorProto.FLOAT:
        a = numpy_helper.to_array(t).astype(np.float64)
        t.CopyFrom(numpy_helper.from_array(a, t.name))


def to_float64(model):
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for t in g.initializer:
        _tensor64(t)
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR:
                _tensor64(a.t)
            elif a.type == onnx.AttributeProto.GRAPH:
                raise NotImplementedError("control flow in %s" % n.op_type)
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.DOUBLE
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.DOUBLE
    return m


def _bn_inference_op():
    """onnx.reference (1.17) evaluates opset 9-13 BatchNormalization with batch statistics because
    it fills the absent `momentum` attribute with its default (0.9): replaced by the inference
    formula of the spec (training_mode=1 is refused)."""
    from onnx.reference.op_run import OpRun

    class BatchNormalization(OpRun):
        op_domain = ""

        def _run(self, x, scale, bias, mean, var, epsilon=None, momentum=None,
                 training_mode=None, spatial=None, is_test=None):
            if training_mode:
                raise NotImplementedError("BatchNormalization training_mode=1")
            eps = 1e-5 if epsilon is None else epsilon
            sh = (1, -1) + (1,) * (x.ndim - 2)
            y = ((x - mean.reshape(sh)) / np.sqrt(var.reshape(sh) + eps) * scale.reshape(sh) +
                 bias.reshape(sh))
            return (y.astype(x.dtype),)
    return BatchNormalization


class Evaluator:
    """Float64 evaluation of a float32 ONNX model with one graph input."""

    def __init__(self, model):
        from onnx.reference import ReferenceEvaluator
        self.model = model
        self.m64 = to_float64(model)
        self.input = model.graph.input[0].name
        self.output = model.graph.output[0].name
        self.ref = ReferenceEvaluator(self.m64, new_ops=[_bn_inference_op()])

    def run(self, x, names=None):
        names = list(names) if names else [self.output]
        outs = self.ref.run(names, {self.input: np.asarray(x, dtype=np.float64)})
        return [np.asarray(o) for o in outs]

    def forward(self, x):
        return self.run(x)[0]

"""graph64.py — float64 evaluation of an ONNX graph with several inputs, and re-evaluation of the
part downstream of an intermediate tensor (make_transformers.py). Builds on onnx64.py (the float64
rewrite of the graph and the BatchNormalization fix for onnx.reference).

Why: the directional-derivative check (see fdcheck.py) needs float64 forwards of the graph with
one tensor perturbed: a graph input (an image) or an intermediate tensor (the embedding output of a
text model, an attention-probability tensor). Perturbing an intermediate tensor X: the nodes
downstream of X are evaluated again with X replaced by X0 + h d, every other value they read is
taken from the unperturbed run (which is exact: those values do not depend on X). This makes the
check cheap for tensors near the output (attention probabilities of the last blocks)."""
import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper

import onnx64


def _attrs_have_graphs(model):
    for n in model.graph.node:
        for a in n.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                return True
    return False


class Graph64:
    """Float64 evaluation of a float32 ONNX model (all graph inputs by name)."""

    def __init__(self, model):
        from onnx.reference import ReferenceEvaluator
        if _attrs_have_graphs(model):
            raise NotImplementedError("control flow")
        self.model = model
        self.m64 = onnx64.to_float64(model)
        self._new_ops = [onnx64._bn_inference_op()]
        self.ref = ReferenceEvaluator(self.m64, new_ops=self._new_ops)
        g = self.m64.graph
        self.inits = {t.name: t for t in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in self.inits]
        self.output = g.output[0].name
        self.float_inputs = {i.name for i in g.input
                             if i.type.tensor_type.elem_type == onnx.TensorProto.DOUBLE}
        self._tails = {}
        self.cache = None

    def _feeds(self, feeds):
        out = {}
        for k, v in feeds.items():
            v = np.asarray(v)
            out[k] = v.astype(np.float64) if k in self.float_inputs else v
        return out

    def run(self, feeds, names=None):
        names = list(names) if names else [self.output]
        return [np.asarray(o) for o in self.ref.run(names, self._feeds(feeds))]

    def base(self, feeds):
        """Evaluates every node output for feeds and keeps them for tail(); returns output 0."""
        names = [o for n in self.m64.graph.node for o in n.output if o]
        vals = self.run(feeds, names)
        self.cache = dict(zip(names, vals))
        self.cache.update(self._feeds(feeds))
        return self.cache[self.output]

    def value(self, name):
        """A tensor of the last base() run, or an initializer."""
        if name in self.cache:
            return self.cache[name]
        return onnx.numpy_helper.to_array(self.inits[name])

    def _tail_model(self, cut):
        g = self.m64.graph
        down = {cut}
        nodes = []
        for n in g.node:
            if any(i in down for i in n.input if i):
                nodes.append(n)
                down.update(o for o in n.output if o)
        if self.output not in down:
            raise ValueError("graph output does not depend on %s" % cut)
        produced = {o for n in nodes for o in n.output if o}
        needed = []
        for n in nodes:
            for i in n.input:
                if i and i not in produced and i not in needed:
                    needed.append(i)
        inits = [self.inits[i] for i in needed if i in self.inits]
        ins = [i for i in needed if i not in self.inits]
        vis = [helper.make_tensor_value_info(i, self._elem_type(i), None) for i in ins]
        out = helper.make_tensor_value_info(self.output, onnx.TensorProto.DOUBLE, None)
        sub = helper.make_graph(nodes, "tail", vis, [out], initializer=inits)
        m = helper.make_model(sub, opset_imports=list(self.m64.opset_import))
        m.ir_version = self.m64.ir_version
        return m, ins

    def _elem_type(self, name):
        v = self.cache[name]
        if v.dtype == np.float64:
            return onnx.TensorProto.DOUBLE
        return helper.np_dtype_to_tensor_dtype(v.dtype)

    def tail(self, cut):
        """f(value) -> output 0 with tensor `cut` set to value (float64) and everything that does
        not depend on it as in the last base() run."""
        from onnx.reference import ReferenceEvaluator
        if self.cache is None:
            raise RuntimeError("tail() needs base() first")
        if cut not in self._tails:
            m, ins = self._tail_model(cut)
            self._tails[cut] = (ReferenceEvaluator(m, new_ops=self._new_ops), ins)
        ref, ins = self._tails[cut]

        def f(value):
            feeds = {i: self.cache[i] for i in ins}
            feeds[cut] = np.asarray(value, dtype=np.float64)
            return np.asarray(ref.run([self.output], feeds)[0])
        return f

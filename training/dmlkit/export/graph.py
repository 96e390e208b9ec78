"""torch.fx trace -> the runtime's layer graph (list of node dicts + float32 weight arrays).

BatchNorm directly after a Conv2d/Linear whose output nothing else reads is folded into that layer's
weights; every other BatchNorm becomes a ``batch_norm`` node. Ops the runtime lacks raise ``ExportError``
naming the op and the fx node.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp


class ExportError(ValueError):
    """The module cannot be expressed in the runtime's op set (the message names the op and node)."""


@dataclass
class Graph:
    """The traced model: input shape (per sample), nodes in execution order, outputs, weights."""

    input_shape: list[int]
    nodes: list[dict] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


def _pair(value) -> list[int]:
    if isinstance(value, (tuple, list)):
        if len(value) == 1:
            return [int(value[0])] * 2
        return [int(v) for v in value]
    return [int(value), int(value)]


def _array(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().cpu().to(torch.float32).numpy())


_ACTIVATION_MODULES = {nn.ReLU: "relu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh"}
_ACTIVATION_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", F.silu: "silu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", F.tanh: "tanh",
}
_IDENTITY_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout, nn.Identity)
_IDENTITY_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d}
_IDENTITY_METHODS = {"contiguous", "clone", "detach"}
_SHAPE_METHODS = {"size", "dim"}  # non-tensor helpers consumed by view/reshape


class _Converter:
    def __init__(self, module: nn.Module, example_input: torch.Tensor, fold_batchnorm: bool):
        if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
            raise ExportError("example_input must be a batched tensor [N, ...]")
        self.gm = fx.symbolic_trace(module)
        ShapeProp(self.gm).propagate(example_input)
        self.modules = dict(self.gm.named_modules())
        self.fold_batchnorm = fold_batchnorm
        self.graph = Graph(input_shape=list(example_input.shape[1:]))
        self.value: dict[fx.Node, str] = {}  # fx node -> runtime value name
        self.emitted: dict[str, dict] = {}  # value name -> node dict
        self.batch = example_input.shape[0]

    # -- helpers ---------------------------------------------------------------------------------
    def fail(self, node: fx.Node, what: str) -> ExportError:
        return ExportError(f"unsupported op {what} at node '{node.name}' (runtime ops: see DMLRuntime GraphBuilder)")

    def input_of(self, node: fx.Node, arg) -> str:
        if not isinstance(arg, fx.Node) or arg not in self.value or self.value[arg] is None:
            raise ExportError(f"node '{node.name}' reads {arg!r}, which is not a tensor the runtime computes")
        return self.value[arg]

    def shape(self, node: fx.Node) -> list[int]:
        meta = node.meta.get("tensor_meta")
        if meta is None or not hasattr(meta, "shape"):
            raise ExportError(f"node '{node.name}' does not produce a single tensor")
        return list(meta.shape)

    def emit(self, node: fx.Node, op: str, inputs, attrs=None, tensors=None) -> dict:
        entry = {"name": node.name, "op": op, "inputs": [self.input_of(node, a) for a in inputs]}
        if attrs:
            entry["attrs"] = attrs
        if tensors:
            entry["tensors"] = {}
            for role, value in tensors.items():
                if value is None:
                    continue
                key = f"{node.name}.{role}"
                self.graph.tensors[key] = _array(value)
                entry["tensors"][role] = key
        self.graph.nodes.append(entry)
        self.value[node] = node.name
        self.emitted[node.name] = entry
        return entry

    def alias(self, node: fx.Node, source) -> None:
        self.value[node] = self.input_of(node, source)

    @staticmethod
    def arg(node: fx.Node, index: int, name: str, default=None):
        if len(node.args) > index:
            return node.args[index]
        return node.kwargs.get(name, default)

    # -- conversion ------------------------------------------------------------------------------
    def run(self) -> Graph:
        placeholders = [n for n in self.gm.graph.nodes if n.op == "placeholder"]
        if len(placeholders) != 1:
            raise ExportError(f"the module must take exactly one tensor input, it takes {len(placeholders)}")
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                self.value[node] = "input"
            elif node.op == "call_module":
                self.call_module(node, self.modules[node.target])
            elif node.op == "call_function":
                self.call_function(node)
            elif node.op == "call_method":
                self.call_method(node)
            elif node.op == "output":
                result = node.args[0]
                items = result if isinstance(result, (tuple, list)) else [result]
                for item in items:
                    self.graph.outputs.append(self.input_of(node, item))
            else:  # get_attr: parameters used directly in the forward
                raise self.fail(node, f"{node.op}({node.target})")
        return self.graph

    def call_module(self, node: fx.Node, m: nn.Module) -> None:
        x = node.args[0] if node.args else None
        if isinstance(m, nn.Linear):
            self.emit(node, "linear", [x], tensors={"weight": m.weight, "bias": m.bias})
        elif isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise self.fail(node, f"Conv2d(padding_mode={m.padding_mode!r})")
            padding = m.padding
            if isinstance(padding, str):
                if padding == "valid":
                    padding = (0, 0)
                else:  # "same" with stride 1: symmetric only when the total padding is even
                    total = [d * (k - 1) for d, k in zip(m.dilation, m.kernel_size)]
                    if any(t % 2 for t in total):
                        raise self.fail(node, "Conv2d(padding='same') with asymmetric padding")
                    padding = tuple(t // 2 for t in total)
            attrs = {"stride": _pair(m.stride), "padding": _pair(padding), "dilation": _pair(m.dilation), "groups": m.groups}
            self.emit(node, "conv2d", [x], attrs, {"weight": m.weight, "bias": m.bias})
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self.batch_norm(node, m)
        elif type(m) in _ACTIVATION_MODULES:
            self.emit(node, _ACTIVATION_MODULES[type(m)], [x])
        elif isinstance(m, nn.LeakyReLU):
            self.emit(node, "leaky_relu", [x], {"negative_slope": float(m.negative_slope)})
        elif isinstance(m, nn.GELU):
            self.emit(node, "gelu", [x], {"approximate": m.approximate})
        elif isinstance(m, _IDENTITY_MODULES):
            self.alias(node, x)
        elif isinstance(m, nn.MaxPool2d):
            self.pool(node, "max_pool2d", m.kernel_size, m.stride, m.padding, m.ceil_mode, dilation=m.dilation)
        elif isinstance(m, nn.AvgPool2d):
            if m.divisor_override is not None:
                raise self.fail(node, "AvgPool2d(divisor_override=...)")
            self.pool(node, "avg_pool2d", m.kernel_size, m.stride, m.padding, m.ceil_mode, count_include_pad=m.count_include_pad)
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            if _pair(m.output_size) != [1, 1]:
                raise self.fail(node, f"{type(m).__name__}(output_size={m.output_size}) (only 1)")
            op = "global_avg_pool" if isinstance(m, nn.AdaptiveAvgPool2d) else "global_max_pool"
            self.emit(node, op, [x], {"keepdim": True})
        elif isinstance(m, nn.Flatten):
            self.flatten(node, x, m.start_dim, m.end_dim)
        elif isinstance(m, nn.LayerNorm):
            self.emit(node, "layer_norm", [x], {"normalized_shape": list(m.normalized_shape), "eps": float(m.eps)},
                      {"weight": m.weight, "bias": m.bias})
        else:
            raise self.fail(node, f"module {type(m).__name__}")

    def call_function(self, node: fx.Node) -> None:
        fn = node.target
        x = node.args[0] if node.args else None
        if fn in _ACTIVATION_FUNCTIONS:
            self.emit(node, _ACTIVATION_FUNCTIONS[fn], [x])
        elif fn is F.leaky_relu:
            self.emit(node, "leaky_relu", [x], {"negative_slope": float(self.arg(node, 1, "negative_slope", 0.01))})
        elif fn is F.gelu:
            self.emit(node, "gelu", [x], {"approximate": self.arg(node, 1, "approximate", "none")})
        elif fn in _IDENTITY_FUNCTIONS:
            self.alias(node, x)
        elif fn in (operator.add, operator.iadd, torch.add):
            y = self.arg(node, 1, "other")
            if not isinstance(y, fx.Node) or self.arg(node, 2, "alpha", 1) != 1:
                raise self.fail(node, f"{getattr(fn, '__name__', fn)} with a non-tensor operand")
            self.emit(node, "add", [x, y])
        elif fn in (torch.cat, torch.concat):
            self.emit(node, "concat", list(x), {"dim": self.batch_dim(node, self.arg(node, 1, "dim", 0))})
        elif fn is torch.flatten:
            self.flatten(node, x, self.arg(node, 1, "start_dim", 0), self.arg(node, 2, "end_dim", -1))
        elif fn is F.normalize:
            if float(self.arg(node, 1, "p", 2.0)) != 2.0:
                raise self.fail(node, "normalize with p != 2")
            dim = self.batch_dim(node, self.arg(node, 2, "dim", 1))
            self.emit(node, "l2_normalize", [x], {"dim": dim, "eps": float(self.arg(node, 3, "eps", 1e-12))})
        elif fn in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            if _pair(self.arg(node, 1, "output_size")) != [1, 1]:
                raise self.fail(node, f"{fn.__name__} with output size other than 1")
            self.emit(node, "global_avg_pool" if fn is F.adaptive_avg_pool2d else "global_max_pool", [x], {"keepdim": True})
        elif fn is F.max_pool2d:
            kernel = self.arg(node, 1, "kernel_size")
            self.pool(node, "max_pool2d", kernel, self.arg(node, 2, "stride", None), self.arg(node, 3, "padding", 0),
                      self.arg(node, 5, "ceil_mode", False), dilation=self.arg(node, 4, "dilation", 1))
        elif fn is F.avg_pool2d:
            if self.arg(node, 6, "divisor_override") is not None:
                raise self.fail(node, "avg_pool2d(divisor_override=...)")
            self.pool(node, "avg_pool2d", self.arg(node, 1, "kernel_size"), self.arg(node, 2, "stride", None),
                      self.arg(node, 3, "padding", 0), self.arg(node, 4, "ceil_mode", False),
                      count_include_pad=self.arg(node, 5, "count_include_pad", True))
        elif fn is torch.mean:
            self.mean(node, x, self.arg(node, 1, "dim"), self.arg(node, 2, "keepdim", False))
        elif fn is getattr and isinstance(x, fx.Node) and node.args[1] == "shape":
            self.value[node] = None
        elif fn is operator.getitem and isinstance(x, fx.Node) and self.value.get(x, "") is None:
            self.value[node] = None  # x.shape[0] and similar: only feeds view/reshape
        else:
            raise self.fail(node, f"function {getattr(fn, '__name__', fn)}")

    def call_method(self, node: fx.Node) -> None:
        method = node.target
        x = node.args[0]
        if method in ("relu", "sigmoid", "tanh"):
            self.emit(node, method, [x])
        elif method in _IDENTITY_METHODS:
            self.alias(node, x)
        elif method in _SHAPE_METHODS:
            self.value[node] = None
        elif method == "add":
            y = self.arg(node, 1, "other")
            if not isinstance(y, fx.Node):
                raise self.fail(node, "add with a non-tensor operand")
            self.emit(node, "add", [x, y])
        elif method == "flatten":
            self.flatten(node, x, self.arg(node, 1, "start_dim", 0), self.arg(node, 2, "end_dim", -1))
        elif method in ("view", "reshape"):
            out = self.shape(node)
            if out[0] != self.batch:
                raise self.fail(node, f"{method} that changes the batch dimension")
            self.emit(node, "reshape", [x], {"shape": out[1:]})
        elif method == "mean":
            self.mean(node, x, self.arg(node, 1, "dim"), self.arg(node, 2, "keepdim", False))
        else:
            raise self.fail(node, f"method .{method}()")

    # -- op helpers ------------------------------------------------------------------------------
    def batch_dim(self, node: fx.Node, dim: int) -> int:
        rank = len(self.shape(node))
        dim = dim + rank if dim < 0 else dim
        if dim < 1:
            raise self.fail(node, "an op along the batch dimension")
        return dim

    def flatten(self, node, x, start, end) -> None:
        rank = len(self.shape(x))
        start = start + rank if start < 0 else start
        if start < 1:
            raise self.fail(node, "flatten that merges the batch dimension (use start_dim=1)")
        self.emit(node, "flatten", [x], {"start_dim": int(start), "end_dim": int(end)})

    def pool(self, node, op, kernel, stride, padding, ceil_mode, dilation=1, count_include_pad=True) -> None:
        if ceil_mode:
            raise self.fail(node, f"{op}(ceil_mode=True)")
        stride = kernel if stride is None or stride == [] or stride == () else stride
        attrs = {"kernel_size": _pair(kernel), "stride": _pair(stride), "padding": _pair(padding)}
        if op == "max_pool2d":
            attrs["dilation"] = _pair(dilation)
        else:
            attrs["count_include_pad"] = bool(count_include_pad)
        self.emit(node, op, [node.args[0]], attrs)

    def mean(self, node, x, dim, keepdim) -> None:
        rank = len(self.shape(x))
        dims = sorted(d + rank if d < 0 else d for d in (dim if isinstance(dim, (tuple, list)) else [dim]))
        if rank != 4 or dims != [2, 3]:
            raise self.fail(node, f"mean over dims {dim} (only the spatial dims (2, 3) of NCHW)")
        self.emit(node, "global_avg_pool", [x], {"keepdim": bool(keepdim)})

    def batch_norm(self, node: fx.Node, m: nn.modules.batchnorm._BatchNorm) -> None:
        if not m.track_running_stats or m.running_mean is None:
            raise self.fail(node, "BatchNorm without running statistics")
        x = node.args[0]
        source = self.emitted.get(self.value.get(x, ""), None) if isinstance(x, fx.Node) else None
        out_shape = self.shape(node)
        foldable = (
            self.fold_batchnorm
            and source is not None
            and len(x.users) == 1
            and source["op"] in ("conv2d", "linear")
            and len(out_shape) == (2 if source["op"] == "linear" else 4)
        )
        gamma = m.weight if m.weight is not None else torch.ones_like(m.running_mean)
        beta = m.bias if m.bias is not None else torch.zeros_like(m.running_mean)
        if not foldable:
            self.emit(node, "batch_norm", [x], {"eps": float(m.eps)},
                      {"weight": gamma, "bias": beta, "running_mean": m.running_mean, "running_var": m.running_var})
            return
        # Fold in float64: W' = W * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps).
        scale = gamma.detach().double() / torch.sqrt(m.running_var.detach().double() + m.eps)
        tensors = source.setdefault("tensors", {})
        weight = torch.from_numpy(self.graph.tensors[tensors["weight"]]).double()
        bias_name = tensors.get("bias")
        bias = torch.from_numpy(self.graph.tensors[bias_name]).double() if bias_name else torch.zeros_like(scale)
        folded_w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
        folded_b = (bias - m.running_mean.detach().double()) * scale + beta.detach().double()
        self.graph.tensors[tensors["weight"]] = _array(folded_w)
        bias_name = bias_name or f"{source['name']}.bias"
        tensors["bias"] = bias_name
        self.graph.tensors[bias_name] = _array(folded_b)
        self.value[node] = source["name"]


def trace_graph(module: nn.Module, example_input: torch.Tensor, fold_batchnorm: bool = True) -> Graph:
    """Traces ``module`` (switched to eval mode) with torch.fx into the runtime's layer graph."""
    module.eval()
    with torch.no_grad():
        return _Converter(module, example_input, fold_batchnorm).run()

"""torch.fx trace -> the runtime's layer graph (list of node dicts + float32 weight arrays).

The traced module is run once on the example input (a ``torch.fx.Interpreter``), so every fx node has its real
value. A node whose result depends on the input and holds tensors becomes runtime nodes; everything else is
static and folded here: shape arithmetic (``x.shape``, ``size()``, ``//``), asserts, ``ndim``, parameters read in
forward (they become ``constant`` nodes where a runtime op reads them). Dropout and stochastic depth are the
identity at inference.

BatchNorm directly after a Conv2d/Linear whose output nothing else reads is folded into that layer's weights;
every other BatchNorm becomes a ``batch_norm`` node. Ops outside ``ops.json`` raise ``ExportError`` naming the
op and the fx node.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from .tracer import library_role, trace


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


def _has_tensor(value) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_has_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(_has_tensor(v) for v in value.values())
    return False


def _fn_name(fn) -> str:
    return getattr(fn, "__name__", str(fn))


def _optional(path: str):
    """A library function by dotted path, or None when the library is absent."""
    import importlib

    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


# Unary activations: module class or function -> (op, attrs).
_ACTIVATION_MODULES = {nn.ReLU: "relu", nn.SiLU: "silu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh",
                       nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid"}
_ACTIVATION_FUNCTIONS = {
    F.relu: "relu", torch.relu: "relu", F.silu: "silu", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    torch.tanh: "tanh", F.tanh: "tanh", F.hardswish: "hardswish", F.hardsigmoid: "hardsigmoid",
}
_ACTIVATION_METHODS = {"relu": "relu", "relu_": "relu", "sigmoid": "sigmoid", "sigmoid_": "sigmoid",
                       "tanh": "tanh", "tanh_": "tanh"}
_IDENTITY_MODULES = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
                     nn.Identity)
_IDENTITY_FUNCTIONS = {F.dropout, F.dropout1d, F.dropout2d, F.dropout3d, F.alpha_dropout, F.feature_alpha_dropout}
_IDENTITY_FUNCTIONS |= {f for f in (_optional("torchvision.ops.stochastic_depth"),
                                    _optional("timm.layers.drop_path")) if f is not None}
_IDENTITY_METHODS = {"contiguous", "clone", "detach"}
_CAST_METHODS = {"float", "to", "type_as"}
_RESHAPE_METHODS = {"view", "reshape", "unsqueeze", "squeeze", "unflatten", "view_as", "reshape_as"}
_RESHAPE_FUNCTIONS = {torch.reshape, torch.unsqueeze, torch.squeeze, torch.unflatten}
_BINARY = {
    operator.add: "add", operator.iadd: "add", torch.add: "add",
    operator.sub: "sub", operator.isub: "sub", torch.sub: "sub",
    operator.mul: "mul", operator.imul: "mul", torch.mul: "mul",
    operator.truediv: "div", operator.itruediv: "div", torch.div: "div",
}
_BINARY_METHODS = {"add": "add", "add_": "add", "sub": "sub", "sub_": "sub", "mul": "mul", "mul_": "mul",
                   "div": "div", "div_": "div"}
_INPLACE_FUNCTIONS = {operator.iadd, operator.isub, operator.imul, operator.itruediv}
# Methods whose (non-tensor) result depends on the data, not only on shapes: never folded.
_DATA_METHODS = {"item", "tolist", "numpy", "any", "all", "__bool__"}


class _Converter(fx.Interpreter):
    def __init__(self, module: nn.Module, example_input: torch.Tensor, fold_batchnorm: bool):
        if not isinstance(example_input, torch.Tensor) or example_input.dim() < 2:
            raise ExportError("example_input must be a batched tensor [N, ...]")
        if example_input.dtype != torch.float32:
            raise ExportError(f"example_input must be float32, got {example_input.dtype}")
        try:
            gm = trace(module)
        except ExportError:
            raise
        except Exception as err:  # fx cannot trace data-dependent control flow and similar
            raise ExportError(f"torch.fx cannot trace the module: {type(err).__name__}: {err}") from err
        super().__init__(gm)
        self.example = example_input
        self.modules = dict(gm.named_modules())
        self.fold_batchnorm = fold_batchnorm
        self.out = Graph(input_shape=list(example_input.shape[1:]))
        self.batch = int(example_input.shape[0])
        self.order = {node: i for i, node in enumerate(gm.graph.nodes)}
        # fx node -> runtime value: a node name, or a list for tuples (entries: name, None, or a lazy emitter).
        self.runtime: dict[fx.Node, object] = {}
        self.static: dict[fx.Node, object] = {}  # fx node -> its value, for nodes computed here
        self.shapes: dict[fx.Node, tuple[int, ...]] = {}  # batched shape of each runtime tensor
        self.emitted: dict[str, dict] = {}  # runtime name -> node dict
        self.origin: dict[str, fx.Node] = {}  # runtime name -> the fx node that emitted it
        self.used_names = {"input"}
        self.constants: dict[tuple, str] = {}
        self.placeholder_seen = False

    def convert(self) -> Graph:
        with torch.no_grad():
            self.run(self.example)
        return self.out

    # -- the interpreter hook ---------------------------------------------------------------------
    def run_node(self, n: fx.Node):
        self.n = n
        self.rargs, self.rkwargs = self.fetch_args_kwargs_from_env(n)
        try:
            result = super().run_node(n)
        except ExportError:
            raise
        except Exception as err:
            raise ExportError(f"node '{n.name}' failed while tracing: {type(err).__name__}: {err}") from err
        self.result = result
        self.convert_node(n, result)
        return result

    def convert_node(self, n: fx.Node, result) -> None:
        if n.op == "placeholder":
            if not self.placeholder_seen:
                self.placeholder_seen = True
                self.runtime[n] = "input"
                self.shapes[n] = tuple(result.shape)
            else:
                self.static[n] = result  # forward arguments fixed to their defaults
            return
        if n.op == "output":
            args = n.args[0] if isinstance(n.args[0], (tuple, list)) else [n.args[0]]
            for arg in args:
                self.out.outputs.append(self.tensor(arg))
            return
        depends = any(self.is_runtime(a) for a in n.all_input_nodes)
        if depends and n.op == "call_method" and n.target in _DATA_METHODS:
            raise self.fail(f"{self.describe(n)}: a value read from the data cannot be fixed at trace time")
        if n.op == "get_attr" or not depends or not _has_tensor(result):
            self.static[n] = result  # parameters, shape arithmetic, asserts: folded here
            return
        if isinstance(result, torch.Tensor):
            if not result.is_floating_point():
                raise self.fail(f"{self.describe(n)} producing a {result.dtype} tensor")
            if result.dim() == 0 or result.shape[0] != self.batch:
                raise self.fail(f"{self.describe(n)} that changes the batch dimension")
            self.shapes[n] = tuple(result.shape)
        self.check_inplace(n)
        if n.op == "call_module":
            self.convert_module(n, self.modules[n.target])
        elif n.op == "call_function":
            self.convert_function(n, n.target)
        elif n.op == "call_method":
            self.convert_method(n, n.target)
        else:
            raise self.fail(self.describe(n))
        if n not in self.runtime:
            raise self.fail(self.describe(n))

    # -- helpers ----------------------------------------------------------------------------------
    def describe(self, n: fx.Node) -> str:
        if n.op == "call_module":
            return f"module {type(self.modules[n.target]).__name__}"
        if n.op == "call_method":
            return f"method .{n.target}()"
        if n.op == "call_function":
            return f"function {_fn_name(n.target)}"
        return f"{n.op}({n.target})"

    def fail(self, what: str) -> ExportError:
        return ExportError(f"unsupported op {what} at node '{self.n.name}' (the runtime's ops: dmlkit/export/ops.json)")

    def is_runtime(self, arg) -> bool:
        return isinstance(arg, fx.Node) and arg in self.runtime

    def check_inplace(self, n: fx.Node) -> None:
        inplace = n.target in _INPLACE_FUNCTIONS or (n.op == "call_method" and n.target.endswith("_")
                                                     and not n.target.endswith("__"))
        target = n.args[0] if n.args else None
        if inplace and isinstance(target, fx.Node):
            later = [u for u in target.users if u is not n and self.order[u] > self.order[n]]
            if later:
                raise self.fail(f"in-place {self.describe(n)} whose input '{target.name}' is read again later")

    def arg(self, index: int, name: str, default=None):
        """The real (trace-time) value of an argument."""
        if len(self.rargs) > index:
            return self.rargs[index]
        return self.rkwargs.get(name, default)

    def node_arg(self, index: int, name: str, default=None):
        """The argument as written in the graph (an fx node for tensors)."""
        if len(self.n.args) > index:
            return self.n.args[index]
        return self.n.kwargs.get(name, default)

    def fresh(self, base: str) -> str:
        name, k = base, 1
        while name in self.used_names:
            name, k = f"{base}__{k}", k + 1
        self.used_names.add(name)
        return name

    def shape_of(self, arg) -> tuple[int, ...]:
        if not self.is_runtime(arg) or arg not in self.shapes:
            raise self.fail(f"{self.describe(self.n)} on a value that is not a tensor the runtime computes")
        return self.shapes[arg]

    def rank(self, arg) -> int:
        return len(self.shape_of(arg))

    def tensor(self, arg, rank: int | None = None) -> str:
        """The runtime name of a tensor argument; parameters and other trace-time tensors become ``constant``
        nodes, broadcast against a batched tensor of ``rank`` (default: this node's output rank)."""
        if self.is_runtime(arg):
            value = self.runtime[arg]
            if not isinstance(value, str):
                raise self.fail(f"{self.describe(self.n)} on a tuple of tensors")
            return value
        if isinstance(arg, fx.Node) and isinstance(self.static.get(arg), torch.Tensor):
            return self.constant(arg, rank if rank is not None else len(self.result.shape))
        raise ExportError(f"node '{self.n.name}' reads {arg!r}, which is not a tensor the runtime computes")

    def constant(self, source: fx.Node, rank: int) -> str:
        """A trace-time tensor as a per-sample constant: left-padded with 1s to ``rank``, batch axis dropped."""
        value = self.static[source].detach()
        if not value.is_floating_point():
            raise self.fail(f"a {value.dtype} constant '{source.name}'")
        if value.dim() > rank:
            raise self.fail(f"constant '{source.name}' of shape {list(value.shape)} against a rank-{rank} tensor")
        value = value.reshape((1,) * (rank - value.dim()) + tuple(value.shape))
        if value.shape[0] != 1:
            if value.shape[0] == self.batch and bool((value == value[:1]).all()):
                value = value[:1]  # expand(batch, ...) of a parameter: the same for every sample
            else:
                raise self.fail(f"constant '{source.name}' that differs across the batch")
        value = value[0]
        key = (source, tuple(value.shape))
        if key not in self.constants:
            name = self.fresh(source.name)
            self.add_node(name, "constant", [], {"shape": list(value.shape)}, {"value": value})
            self.constants[key] = name
        return self.constants[key]

    def add_node(self, name: str, op: str, inputs: list[str], attrs=None, tensors=None) -> dict:
        entry = {"name": name, "op": op, "inputs": list(inputs)}
        if attrs:
            entry["attrs"] = attrs
        if tensors:
            entry["tensors"] = {}
            for role, value in tensors.items():
                if value is None:
                    continue
                key = f"{name}.{role}"
                self.out.tensors[key] = _array(value)
                entry["tensors"][role] = key
        self.out.nodes.append(entry)
        self.emitted[name] = entry
        self.origin[name] = self.n
        return entry

    def emit(self, op: str, inputs: list[str], attrs=None, tensors=None) -> str:
        """Appends a runtime node for the current fx node and makes it the node's value; returns its name."""
        name = self.fresh(self.n.name)
        self.add_node(name, op, inputs, attrs, tensors)
        self.runtime[self.n] = name
        return name

    def alias(self, arg) -> None:
        self.runtime[self.n] = self.tensor(arg)

    def dim(self, dim: int, rank: int) -> int:
        """A dim of the batched tensor, made non-negative; the batch axis is refused."""
        dim = int(dim)
        dim = dim + rank if dim < 0 else dim
        if not 1 <= dim < rank:
            raise self.fail(f"{self.describe(self.n)} along dim {dim} (the batch axis or out of range)")
        return dim

    # -- modules ----------------------------------------------------------------------------------
    def convert_module(self, n: fx.Node, m: nn.Module) -> None:
        x = n.args[0] if n.args else None
        role = library_role(m)
        if role == "batch_norm_act":
            self.batch_norm(x, m)
            act = getattr(m, "act", None)
            if act is not None and not isinstance(act, nn.Identity):
                self.activation_module(act, self.runtime[n])
        elif role == "channel_layer_norm":
            if self.rank(x) != 4:
                raise self.fail("LayerNorm2d on a tensor that is not [N, C, H, W]")
            self.emit("channel_layer_norm", [self.tensor(x)], {"eps": float(m.eps)}, {"weight": m.weight, "bias": m.bias})
        elif role == "layer_norm":
            self.layer_norm(x, list(m.normalized_shape), m.weight, m.bias, m.eps)
        elif role == "linear":
            self.emit("linear", [self.tensor(x)], tensors={"weight": m.weight, "bias": m.bias})
        elif role == "timm_attention":
            self.timm_attention(n, m)
        elif role == "identity" or isinstance(m, _IDENTITY_MODULES):
            self.alias(x)
        elif isinstance(m, nn.Linear):
            self.emit("linear", [self.tensor(x)], tensors={"weight": m.weight, "bias": m.bias})
        elif isinstance(m, nn.Conv2d):
            if m.padding_mode != "zeros":
                raise self.fail(f"Conv2d(padding_mode={m.padding_mode!r})")
            self.conv2d(x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups, m.kernel_size)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            self.batch_norm(x, m)
        elif isinstance(m, nn.LeakyReLU):
            self.emit("leaky_relu", [self.tensor(x)], {"negative_slope": float(m.negative_slope)})
        elif isinstance(m, nn.GELU):
            self.emit("gelu", [self.tensor(x)], {"approximate": m.approximate})
        elif isinstance(m, nn.Hardtanh):  # ReLU6 too
            self.emit("clamp", [self.tensor(x)], {"min": float(m.min_val), "max": float(m.max_val)})
        elif type(m) in _ACTIVATION_MODULES:
            self.emit(_ACTIVATION_MODULES[type(m)], [self.tensor(x)])
        elif isinstance(m, nn.Softmax):
            self.emit("softmax", [self.tensor(x)], {"dim": self.dim(m.dim, self.rank(x))})
        elif isinstance(m, nn.MaxPool2d):
            self.pool("max_pool2d", x, m.kernel_size, m.stride, m.padding, m.ceil_mode, dilation=m.dilation)
        elif isinstance(m, nn.AvgPool2d):
            if m.divisor_override is not None:
                raise self.fail("AvgPool2d(divisor_override=...)")
            self.pool("avg_pool2d", x, m.kernel_size, m.stride, m.padding, m.ceil_mode,
                      count_include_pad=m.count_include_pad)
        elif isinstance(m, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            self.adaptive_pool(x, m.output_size, "avg" if isinstance(m, nn.AdaptiveAvgPool2d) else "max")
        elif isinstance(m, nn.Flatten):
            self.flatten(x, m.start_dim, m.end_dim)
        elif isinstance(m, nn.Unflatten):
            self.reshape(x)
        elif isinstance(m, nn.LayerNorm):
            self.layer_norm(x, list(m.normalized_shape), m.weight, m.bias, m.eps)
        elif isinstance(m, nn.MultiheadAttention):
            self.multihead_attention(n, m)
        else:
            raise self.fail(f"module {type(m).__name__}")

    def activation_module(self, act: nn.Module, source: str) -> None:
        """An activation module applied to an already-emitted value (timm's BatchNormAct2d)."""
        if type(act) in _ACTIVATION_MODULES:
            op, attrs = _ACTIVATION_MODULES[type(act)], None
        elif isinstance(act, nn.Hardtanh):
            op, attrs = "clamp", {"min": float(act.min_val), "max": float(act.max_val)}
        elif isinstance(act, nn.LeakyReLU):
            op, attrs = "leaky_relu", {"negative_slope": float(act.negative_slope)}
        elif isinstance(act, nn.GELU):
            op, attrs = "gelu", {"approximate": act.approximate}
        else:
            raise self.fail(f"activation {type(act).__name__} inside {type(self.modules[self.n.target]).__name__}")
        self.emit(op, [source], attrs)

    # -- functions --------------------------------------------------------------------------------
    def convert_function(self, n: fx.Node, fn) -> None:
        x = n.args[0] if n.args else None
        if fn in _ACTIVATION_FUNCTIONS:
            self.emit(_ACTIVATION_FUNCTIONS[fn], [self.tensor(x)])
        elif fn is F.relu6:
            self.emit("clamp", [self.tensor(x)], {"min": 0.0, "max": 6.0})
        elif fn is F.hardtanh:
            self.emit("clamp", [self.tensor(x)], {"min": float(self.arg(1, "min_val", -1.0)),
                                                  "max": float(self.arg(2, "max_val", 1.0))})
        elif fn in (torch.clamp, torch.clip):
            self.clamp(x, self.arg(1, "min"), self.arg(2, "max"))
        elif fn is F.leaky_relu:
            self.emit("leaky_relu", [self.tensor(x)], {"negative_slope": float(self.arg(1, "negative_slope", 0.01))})
        elif fn is F.gelu:
            self.emit("gelu", [self.tensor(x)], {"approximate": self.arg(1, "approximate", "none")})
        elif fn in _IDENTITY_FUNCTIONS:
            self.alias(x)
        elif fn in _BINARY:
            if fn in (torch.add, torch.sub) and self.arg(2, "alpha", 1) != 1:
                raise self.fail(f"{_fn_name(fn)}(alpha=...)")
            if fn is torch.div and self.arg(2, "rounding_mode") is not None:
                raise self.fail("div(rounding_mode=...)")
            self.binary(_BINARY[fn], x, self.node_arg(1, "other"))
        elif fn in (operator.matmul, torch.matmul, torch.bmm):
            self.matmul(x, self.node_arg(1, "other"))
        elif fn in (torch.cat, torch.concat):
            rank = len(self.result.shape)
            self.emit("concat", [self.tensor(a, rank) for a in x], {"dim": self.dim(self.arg(1, "dim", 0), rank)})
        elif fn is torch.flatten:
            self.flatten(x, self.arg(1, "start_dim", 0), self.arg(2, "end_dim", -1))
        elif fn in _RESHAPE_FUNCTIONS:
            self.reshape(x)
        elif fn is torch.permute:
            self.permute(x, self.arg(1, "dims"))
        elif fn is torch.transpose:
            self.transpose(x, self.arg(1, "dim0"), self.arg(2, "dim1"))
        elif fn in (torch.chunk, torch.split, torch.unbind, torch.tensor_split):
            select = fn is torch.unbind
            self.pieces(x, self.arg(1 if select else 2, "dim", 0), select=select)
        elif fn is operator.getitem:
            self.getitem(x, self.arg(1, "idx"))
        elif fn is F.normalize:
            if float(self.arg(1, "p", 2.0)) != 2.0:
                raise self.fail("normalize with p != 2")
            dim = self.dim(self.arg(2, "dim", 1), self.rank(x))
            self.emit("l2_normalize", [self.tensor(x)], {"dim": dim, "eps": float(self.arg(3, "eps", 1e-12))})
        elif fn in (F.adaptive_avg_pool2d, F.adaptive_max_pool2d):
            self.adaptive_pool(x, self.arg(1, "output_size"), "avg" if fn is F.adaptive_avg_pool2d else "max")
        elif fn is F.max_pool2d:
            self.pool("max_pool2d", x, self.arg(1, "kernel_size"), self.arg(2, "stride", None), self.arg(3, "padding", 0),
                      self.arg(5, "ceil_mode", False), dilation=self.arg(4, "dilation", 1))
        elif fn is F.avg_pool2d:
            if self.arg(6, "divisor_override") is not None:
                raise self.fail("avg_pool2d(divisor_override=...)")
            self.pool("avg_pool2d", x, self.arg(1, "kernel_size"), self.arg(2, "stride", None),
                      self.arg(3, "padding", 0), self.arg(4, "ceil_mode", False),
                      count_include_pad=self.arg(5, "count_include_pad", True))
        elif fn is torch.mean:
            self.mean(x, self.arg(1, "dim"), self.arg(2, "keepdim", False))
        elif fn in (torch.softmax, F.softmax):
            self.softmax(x, self.arg(1, "dim"))
        elif fn is F.layer_norm:
            self.layer_norm(x, list(self.arg(1, "normalized_shape")), self.static_tensor(2, "weight"),
                            self.static_tensor(3, "bias"), self.arg(4, "eps", 1e-5))
        elif fn is F.linear:
            self.emit("linear", [self.tensor(x)], tensors={"weight": self.static_tensor(1, "weight", required=True),
                                                           "bias": self.static_tensor(2, "bias")})
        elif fn is F.conv2d:
            weight = self.static_tensor(1, "weight", required=True)
            self.conv2d(x, weight, self.static_tensor(2, "bias"), self.arg(3, "stride", 1), self.arg(4, "padding", 0),
                        self.arg(5, "dilation", 1), self.arg(6, "groups", 1), tuple(weight.shape[2:]))
        elif fn is F.batch_norm:
            if self.arg(5, "training", False):
                raise self.fail("batch_norm(training=True)")
            mean, var = self.static_tensor(1, "running_mean", required=True), self.static_tensor(2, "running_var", required=True)
            self.emit("batch_norm", [self.tensor(x)], {"eps": float(self.arg(7, "eps", 1e-5))},
                      {"weight": self.static_tensor(3, "weight"), "bias": self.static_tensor(4, "bias"),
                       "running_mean": mean, "running_var": var})
        elif fn is F.scaled_dot_product_attention:
            self.scaled_dot_product_attention(x, self.node_arg(1, "key"), self.node_arg(2, "value"))
        else:
            raise self.fail(f"function {_fn_name(fn)}")

    def static_tensor(self, index: int, name: str, required: bool = False):
        """A weight passed to a functional call: must be computed here (a parameter), not by the runtime."""
        arg = self.node_arg(index, name)
        if self.is_runtime(arg):
            raise self.fail(f"{self.describe(self.n)} with a computed {name}")
        value = self.arg(index, name)
        if value is None and required:
            raise self.fail(f"{self.describe(self.n)} without {name}")
        if value is not None and not isinstance(value, torch.Tensor):
            raise self.fail(f"{self.describe(self.n)} with a non-tensor {name}")
        return value

    # -- methods ----------------------------------------------------------------------------------
    def convert_method(self, n: fx.Node, method: str) -> None:
        x = n.args[0]
        if method in _ACTIVATION_METHODS:
            self.emit(_ACTIVATION_METHODS[method], [self.tensor(x)])
        elif method in _IDENTITY_METHODS:
            self.alias(x)
        elif method in _CAST_METHODS:
            if self.result.dtype != torch.float32:
                raise self.fail(f"method .{method}() to {self.result.dtype}")
            self.alias(x)
        elif method in ("clamp", "clamp_", "clip"):
            self.clamp(x, self.arg(1, "min"), self.arg(2, "max"))
        elif method in _BINARY_METHODS:
            if method.startswith(("add", "sub")) and self.arg(2, "alpha", 1) != 1:
                raise self.fail(f"method .{method}(alpha=...)")
            self.binary(_BINARY_METHODS[method], x, self.node_arg(1, "other"))
        elif method == "matmul":
            self.matmul(x, self.node_arg(1, "other"))
        elif method == "flatten":
            self.flatten(x, self.arg(1, "start_dim", 0), self.arg(2, "end_dim", -1))
        elif method in _RESHAPE_METHODS:
            self.reshape(x)
        elif method == "permute":
            dims = self.rargs[1:]
            self.permute(x, dims[0] if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else self.rkwargs.get("dims", dims))
        elif method == "transpose":
            self.transpose(x, self.arg(1, "dim0"), self.arg(2, "dim1"))
        elif method in ("chunk", "split", "tensor_split"):
            self.pieces(x, self.arg(2, "dim", 0))
        elif method == "unbind":
            self.pieces(x, self.arg(1, "dim", 0), select=True)
        elif method == "expand":
            if tuple(self.result.shape) != self.shape_of(x):
                raise self.fail("method .expand() of a computed tensor (only parameters broadcast over the batch)")
            self.alias(x)
        elif method == "mean":
            self.mean(x, self.arg(1, "dim"), self.arg(2, "keepdim", False))
        elif method == "softmax":
            self.softmax(x, self.arg(1, "dim"))
        else:
            raise self.fail(f"method .{method}()")

    # -- op helpers -------------------------------------------------------------------------------
    def clamp(self, x, low, high) -> None:
        for bound in (low, high):
            if bound is not None and not isinstance(bound, (int, float)):
                raise self.fail(f"{self.describe(self.n)} with tensor bounds")
        self.emit("clamp", [self.tensor(x)], {"min": None if low is None else float(low),
                                              "max": None if high is None else float(high)})

    def scalar(self, arg):
        """A Python number, or a one-element trace-time tensor, as a float; None for anything else."""
        if self.is_runtime(arg):
            return None
        value = self.static.get(arg) if isinstance(arg, fx.Node) else arg
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
            return float(value.item())
        return None

    def binary(self, op: str, a, b) -> None:
        """Elementwise add/sub/mul/div with NumPy broadcasting, or with a scalar."""
        rank = len(self.result.shape)
        sa, sb = self.scalar(a), self.scalar(b)
        if sb is not None:
            self.emit(op, [self.tensor(a)], {"scalar": sb})
            return
        if sa is not None:
            if op in ("add", "mul"):
                self.emit(op, [self.tensor(b)], {"scalar": sa})
            elif op == "sub":  # s - x = (x * -1) + s
                negated = self.emit("mul", [self.tensor(b)], {"scalar": -1.0})
                self.emit("add", [negated], {"scalar": sa})
            else:
                raise self.fail("division of a number by a tensor")
            return
        for operand in (a, b):
            if self.is_runtime(operand) and self.rank(operand) != rank:
                raise self.fail(f"{self.describe(self.n)} broadcasting a rank-{self.rank(operand)} tensor "
                                f"against rank {rank} (the batch axis would move)")
        self.emit(op, [self.tensor(a, rank), self.tensor(b, rank)])

    def matmul(self, a, b) -> None:
        rank = len(self.result.shape)
        if rank < 3:
            raise self.fail(f"{self.describe(self.n)} that mixes samples (batched operands of rank 2)")
        for operand in (a, b):
            if self.is_runtime(operand) and self.rank(operand) != rank:
                raise self.fail(f"{self.describe(self.n)} of tensors with different ranks")
        self.emit("matmul", [self.tensor(a, rank), self.tensor(b, rank)])

    def conv2d(self, x, weight, bias, stride, padding, dilation, groups, kernel) -> None:
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0, 0)
            else:  # "same" with stride 1: symmetric only when the total padding is even
                total = [d * (k - 1) for d, k in zip(_pair(dilation), _pair(kernel))]
                if any(t % 2 for t in total):
                    raise self.fail("Conv2d(padding='same') with asymmetric padding")
                padding = tuple(t // 2 for t in total)
        attrs = {"stride": _pair(stride), "padding": _pair(padding), "dilation": _pair(dilation), "groups": int(groups)}
        self.emit("conv2d", [self.tensor(x)], attrs, {"weight": weight, "bias": bias})

    def layer_norm(self, x, shape, weight, bias, eps) -> None:
        self.emit("layer_norm", [self.tensor(x)], {"normalized_shape": [int(s) for s in shape], "eps": float(eps)},
                  {"weight": weight, "bias": bias})

    def flatten(self, x, start, end) -> None:
        rank = self.rank(x)
        start = start + rank if start < 0 else start
        if start < 1:
            raise self.fail("flatten that merges the batch dimension (use start_dim=1)")
        self.emit("flatten", [self.tensor(x)], {"start_dim": int(start), "end_dim": int(end)})

    def reshape(self, x) -> None:
        self.emit("reshape", [self.tensor(x)], {"shape": [int(s) for s in self.result.shape[1:]]})

    def permute(self, x, dims) -> None:
        rank = self.rank(x)
        dims = [int(d) + rank if int(d) < 0 else int(d) for d in dims]
        if sorted(dims) != list(range(rank)) or dims[0] != 0:
            raise self.fail(f"permute {dims} that moves the batch axis")
        if dims == list(range(rank)):
            self.alias(x)
            return
        self.emit("permute", [self.tensor(x)], {"dims": dims})

    def transpose(self, x, a, b) -> None:
        rank = self.rank(x)
        dims = list(range(rank))
        a, b = self.dim(a, rank), self.dim(b, rank)
        dims[a], dims[b] = dims[b], dims[a]
        self.permute(x, dims)

    def pieces(self, x, dim, select: bool = False) -> None:
        """chunk/split/unbind: a list of lazily emitted slices (only the pieces read become nodes)."""
        rank = self.rank(x)
        dim = self.dim(dim, rank)
        source, entries, start = self.tensor(x), [], 0
        for index, piece in enumerate(self.result):
            if select:
                attrs = {"dim": dim, "index": index}
                entries.append(("select", attrs))
            else:
                size = int(piece.shape[dim])
                attrs = {"dim": dim, "start": start, "end": start + size, "step": 1}
                start += size
                entries.append(("slice", attrs))
        self.runtime[self.n] = [(source, op, attrs) for op, attrs in entries]

    def getitem(self, x, index) -> None:
        value = self.runtime[x]
        if isinstance(value, list):  # an element of a tuple the runtime computes
            if not isinstance(index, int) or not -len(value) <= index < len(value):
                raise self.fail(f"getitem {index!r} of a tuple")
            entry = value[index]
            if entry is None:
                raise self.fail(f"element {index} of {self.describe(x)}, which the runtime does not compute")
            if isinstance(entry, str):
                self.runtime[self.n] = entry
            else:
                source, op, attrs = entry
                name = self.emit(op, [source], attrs)
                value[index] = name
            return
        self.index_tensor(x, index)

    def index_tensor(self, x, index) -> None:
        """``x[:, 0]``, ``x[:, 1:]``, ``x[..., None]``: select, slice and reshape nodes."""
        items = list(index) if isinstance(index, tuple) else [index]
        shape = list(self.shape_of(x))
        for item in items:
            if not (item is None or item is Ellipsis or isinstance(item, (int, slice))) or isinstance(item, bool):
                raise self.fail(f"indexing with {type(item).__name__} (only ints, slices, None and ...)")
        real = sum(1 for item in items if item is not None and item is not Ellipsis)
        if any(item is Ellipsis for item in items):
            k = next(i for i, item in enumerate(items) if item is Ellipsis)
            items = items[:k] + [slice(None)] * (len(shape) - real) + items[k + 1:]
        items += [slice(None)] * (len(shape) - sum(1 for item in items if item is not None))
        current, axis, source_axis, inserted = self.tensor(x), 0, 0, False
        for item in items:
            if item is None:
                inserted = True
                continue
            size = shape[source_axis]
            if isinstance(item, slice):
                start, stop, step = item.indices(size)
                if (start, stop, step) != (0, size, 1):
                    if source_axis == 0 or step < 1:
                        raise self.fail(f"slicing {item} along {'the batch axis' if source_axis == 0 else 'with a negative step'}")
                    current = self.emit("slice", [current], {"dim": axis, "start": start, "end": max(stop, start), "step": step})
                axis += 1
            else:
                if source_axis == 0:
                    raise self.fail("indexing the batch axis")
                i = item + size if item < 0 else item
                current = self.emit("select", [current], {"dim": axis, "index": int(i)})
            source_axis += 1
        if inserted:
            current = self.emit("reshape", [current], {"shape": [int(s) for s in self.result.shape[1:]]})
        self.runtime[self.n] = current

    def pool(self, op, x, kernel, stride, padding, ceil_mode, dilation=1, count_include_pad=True) -> None:
        stride = kernel if stride is None or stride == [] or stride == () else stride
        attrs = {"kernel_size": _pair(kernel), "stride": _pair(stride), "padding": _pair(padding)}
        if op == "max_pool2d":
            attrs["dilation"] = _pair(dilation)
        else:
            attrs["count_include_pad"] = bool(count_include_pad)
        attrs["ceil_mode"] = bool(ceil_mode)
        self.emit(op, [self.tensor(x)], attrs)

    def adaptive_pool(self, x, output_size, kind: str) -> None:
        shape = self.shape_of(x)
        if len(shape) != 4:
            raise self.fail(f"adaptive_{kind}_pool2d of a tensor that is not [N, C, H, W]")
        sizes = list(output_size) if isinstance(output_size, (tuple, list)) else [output_size, output_size]
        sizes = [int(shape[2 + i]) if s is None else int(s) for i, s in enumerate(sizes)]
        if sizes == [1, 1]:
            self.emit(f"global_{kind}_pool", [self.tensor(x)], {"keepdim": True})
        else:
            self.emit(f"adaptive_{kind}_pool2d", [self.tensor(x)], {"output_size": sizes})

    def mean(self, x, dim, keepdim) -> None:
        rank = self.rank(x)
        if dim is None:
            raise self.fail("mean over all dims (it includes the batch)")
        dims = sorted(self.dim(d, rank) for d in (dim if isinstance(dim, (tuple, list)) else [dim]))
        if rank == 4 and dims == [2, 3]:
            self.emit("global_avg_pool", [self.tensor(x)], {"keepdim": bool(keepdim)})
        else:
            self.emit("mean", [self.tensor(x)], {"dims": dims, "keepdim": bool(keepdim)})

    def softmax(self, x, dim) -> None:
        if dim is None:
            raise self.fail("softmax without dim")
        self.emit("softmax", [self.tensor(x)], {"dim": self.dim(dim, self.rank(x))})

    def batch_norm(self, x, m: nn.modules.batchnorm._BatchNorm) -> None:
        if not m.track_running_stats or m.running_mean is None:
            raise self.fail("BatchNorm without running statistics")
        name = self.tensor(x)
        source = self.emitted.get(name)
        foldable = (
            self.fold_batchnorm
            and source is not None
            and self.origin.get(name) is x
            and len(x.users) == 1
            and source["op"] in ("conv2d", "linear")
            and len(self.result.shape) == (2 if source["op"] == "linear" else 4)
        )
        gamma = m.weight if m.weight is not None else torch.ones_like(m.running_mean)
        beta = m.bias if m.bias is not None else torch.zeros_like(m.running_mean)
        if not foldable:
            self.emit("batch_norm", [name], {"eps": float(m.eps)},
                      {"weight": gamma, "bias": beta, "running_mean": m.running_mean, "running_var": m.running_var})
            return
        # Fold in float64: W' = W * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps).
        scale = gamma.detach().double() / torch.sqrt(m.running_var.detach().double() + m.eps)
        tensors = source.setdefault("tensors", {})
        weight = torch.from_numpy(self.out.tensors[tensors["weight"]]).double()
        bias_name = tensors.get("bias")
        bias = torch.from_numpy(self.out.tensors[bias_name]).double() if bias_name else torch.zeros_like(scale)
        folded_w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
        folded_b = (bias - m.running_mean.detach().double()) * scale + beta.detach().double()
        self.out.tensors[tensors["weight"]] = _array(folded_w)
        bias_name = bias_name or f"{source['name']}.bias"
        tensors["bias"] = bias_name
        self.out.tensors[bias_name] = _array(folded_b)
        self.runtime[self.n] = name

    # -- attention --------------------------------------------------------------------------------
    def self_attention(self, x, heads: int, in_weight, in_bias, out_weight, out_bias) -> str:
        if self.rank(x) != 3:
            raise self.fail(f"{self.describe(self.n)} on a tensor that is not tokens [N, T, D]")
        return self.emit("self_attention", [self.tensor(x)], {"num_heads": int(heads)},
                         {"in_weight": in_weight, "in_bias": in_bias, "out_weight": out_weight, "out_bias": out_bias})

    def multihead_attention(self, n: fx.Node, m: nn.MultiheadAttention) -> None:
        query, key, value = (self.node_arg(i, name) for i, name in enumerate(("query", "key", "value")))
        if not (query is key is value):
            raise self.fail("MultiheadAttention with different query, key and value (only self-attention)")
        for index, name in ((3, "key_padding_mask"), (5, "attn_mask")):
            if self.arg(index, name) is not None:
                raise self.fail(f"MultiheadAttention({name}=...)")
        if self.arg(7, "is_causal", False):
            raise self.fail("MultiheadAttention(is_causal=True)")
        if not m.batch_first or not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
            raise self.fail("MultiheadAttention other than batch_first self-attention with one in-projection")
        name = self.self_attention(query, m.num_heads, m.in_proj_weight, m.in_proj_bias, m.out_proj.weight, m.out_proj.bias)
        self.runtime[n] = [name, None]  # (output, attention weights): the weights are not computed

    def timm_attention(self, n: fx.Node, m: nn.Module) -> None:
        plain = all(isinstance(getattr(m, k, nn.Identity()), nn.Identity) for k in ("q_norm", "k_norm", "norm"))
        if not plain or getattr(m, "gate", None) is not None:
            raise self.fail("timm Attention with q/k norm, scale norm or a gate")
        if self.arg(1, "attn_mask") is not None or self.arg(2, "is_causal", False):
            raise self.fail("timm Attention with a mask")
        head_dim = m.qkv.weight.shape[0] // 3 // m.num_heads
        if m.qkv.weight.shape[0] != m.qkv.weight.shape[1] * 3 or not math.isclose(m.scale, head_dim ** -0.5):
            raise self.fail("timm Attention whose heads do not split the model width or with a custom scale")
        self.self_attention(n.args[0], m.num_heads, m.qkv.weight, m.qkv.bias, m.proj.weight, m.proj.bias)

    def scaled_dot_product_attention(self, q, k, v) -> None:
        """softmax(q k^T / sqrt(d)) v from matmul, mul, softmax nodes (no mask, no dropout, default scale)."""
        if self.arg(3, "attn_mask") is not None or self.arg(5, "is_causal", False) or self.arg(6, "scale") is not None:
            raise self.fail("scaled_dot_product_attention with a mask, causal flag or scale")
        rank = self.rank(q)
        dims = list(range(rank))
        dims[-1], dims[-2] = dims[-2], dims[-1]
        kt = self.emit("permute", [self.tensor(k)], {"dims": dims})
        scores = self.emit("matmul", [self.tensor(q), kt])
        scaled = self.emit("mul", [scores], {"scalar": 1.0 / math.sqrt(self.shape_of(q)[-1])})
        weights = self.emit("softmax", [scaled], {"dim": rank - 1})
        self.emit("matmul", [weights, self.tensor(v)])


def trace_graph(module: nn.Module, example_input: torch.Tensor, fold_batchnorm: bool = True) -> Graph:
    """Traces ``module`` (switched to eval mode) with torch.fx into the runtime's layer graph."""
    module.eval()
    with torch.no_grad():
        return _Converter(module, example_input, fold_batchnorm).convert()

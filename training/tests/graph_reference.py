"""A reference interpreter of the runtime's layer graph written with plain torch ops, and an ops.json
conformance check written independently of the exporter's own checker.

The tests run exported files through it to check the exporter (graph and weights) against the original
module without the Swift runtime.
"""

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open

OPS_JSON = Path(__file__).resolve().parents[1] / "dmlkit" / "export" / "ops.json"


def load(path):
    with safe_open(str(path), "np") as f:
        return f.metadata(), {k: f.get_tensor(k) for k in f.keys()}


def weight(tensors, name):
    """Dequantised float32 weight, as the runtime reads it."""
    value = tensors[name]
    if value.dtype == np.int8:
        scale = tensors[name + ".scale"]
        return torch.from_numpy(value.astype(np.float32) * scale.reshape(-1, *([1] * (value.ndim - 1))))
    return torch.from_numpy(value.astype(np.float32))


def _elementwise(op, xs, a):
    fn = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div}[op]
    return fn(xs[0], xs[1]) if len(xs) == 2 else fn(xs[0], a["scalar"])


def _self_attention(v, t, heads):
    n, tokens, d = v.shape
    qkv = F.linear(v, t["in_weight"], t.get("in_bias"))
    q, k, val = (z.reshape(n, tokens, heads, d // heads).transpose(1, 2) for z in qkv.split(d, dim=-1))
    w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), dim=-1)
    out = (w @ val).transpose(1, 2).reshape(n, tokens, d)
    return F.linear(out, t["out_weight"], t.get("out_bias"))


def _pool(op, v, a):
    if op == "max_pool2d":
        return F.max_pool2d(v, a["kernel_size"], a["stride"], a["padding"], a["dilation"], ceil_mode=a.get("ceil_mode", False))
    return F.avg_pool2d(v, a["kernel_size"], a["stride"], a["padding"], ceil_mode=a.get("ceil_mode", False),
                        count_include_pad=a["count_include_pad"])


def run_node(op, xs, a, t, n):
    v = xs[0] if xs else None
    unary = {"relu": torch.relu, "silu": F.silu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
             "hardswish": F.hardswish, "hardsigmoid": F.hardsigmoid, "dropout": lambda z: z, "identity": lambda z: z}
    if op in unary:
        return unary[op](v)
    if op in ("add", "sub", "mul", "div"):
        return _elementwise(op, xs, a)
    if op in ("max_pool2d", "avg_pool2d"):
        return _pool(op, v, a)
    table = {
        "linear": lambda: F.linear(v, t["weight"], t.get("bias")),
        "conv2d": lambda: F.conv2d(v, t["weight"], t.get("bias"), a["stride"], a["padding"], a["dilation"], a["groups"]),
        "batch_norm": lambda: F.batch_norm(v, t["running_mean"], t["running_var"], t.get("weight"), t.get("bias"),
                                           False, 0.0, a["eps"]),
        "leaky_relu": lambda: F.leaky_relu(v, a["negative_slope"]),
        "clamp": lambda: torch.clamp(v, a["min"], a["max"]),
        "gelu": lambda: F.gelu(v, approximate=a["approximate"]),
        "constant": lambda: t["value"].reshape(a["shape"]).expand(n, *a["shape"]),
        "adaptive_avg_pool2d": lambda: F.adaptive_avg_pool2d(v, a["output_size"]),
        "adaptive_max_pool2d": lambda: F.adaptive_max_pool2d(v, a["output_size"]),
        "global_avg_pool": lambda: v.mean((2, 3), keepdim=a["keepdim"]),
        "global_max_pool": lambda: v.amax((2, 3), keepdim=a["keepdim"]),
        "mean": lambda: v.mean(a["dims"], keepdim=a["keepdim"]),
        "flatten": lambda: torch.flatten(v, a["start_dim"], a["end_dim"]),
        "reshape": lambda: v.reshape(v.shape[0], *a["shape"]),
        "permute": lambda: v.permute(a["dims"]),
        "concat": lambda: torch.cat(xs, a["dim"]),
        "slice": lambda: v[(slice(None),) * a["dim"] + (slice(a["start"], a["end"], a["step"]),)],
        "select": lambda: v.select(a["dim"], a["index"]),
        "matmul": lambda: torch.matmul(xs[0], xs[1]),
        "softmax": lambda: torch.softmax(v, a["dim"]),
        "layer_norm": lambda: F.layer_norm(v, a["normalized_shape"], t.get("weight"), t.get("bias"), a["eps"]),
        "channel_layer_norm": lambda: F.layer_norm(v.permute(0, 2, 3, 1), [v.shape[1]], t.get("weight"), t.get("bias"),
                                                   a["eps"]).permute(0, 3, 1, 2),
        "self_attention": lambda: _self_attention(v, t, a["num_heads"]),
        "l2_normalize": lambda: F.normalize(v, dim=a["dim"], eps=a["eps"]),
    }
    if op not in table:
        raise AssertionError(f"reference interpreter lacks {op}")
    return table[op]()


def run_graph(path, x):
    """Runs the file's layer graph on ``x`` (a batched tensor of the model's input); returns [N, D] numpy."""
    meta, tensors = load(path)
    arch = json.loads(meta["dml.architecture"])
    values = {"input": x}
    with torch.no_grad():
        for node in arch["nodes"]:
            a = node.get("attrs", {})
            t = {k: weight(tensors, v) for k, v in node.get("tensors", {}).items()}
            values[node["name"]] = run_node(node["op"], [values[i] for i in node["inputs"]], a, t, x.shape[0])
    return torch.cat([values[o].reshape(x.shape[0], -1) for o in arch["outputs"]], 1).numpy()


def ops_json_problems(arch):
    """Nodes of an architecture dict that do not follow ops.json (op, arity, attribute kinds, tensor roles)."""
    ops = json.loads(OPS_JSON.read_text())["ops"]
    kinds = {
        "int": lambda v: type(v) is int,
        "float": lambda v: type(v) in (int, float),
        "bool": lambda v: type(v) is bool,
        "string": lambda v: type(v) is str,
        "pair": lambda v: type(v) is list and len(v) == 2 and all(type(i) is int for i in v),
        "ints": lambda v: type(v) is list and all(type(i) is int for i in v),
    }
    problems = []
    for node in arch["nodes"]:
        spec = ops.get(node["op"])
        if spec is None:
            problems.append((node["name"], "unknown op " + node["op"]))
            continue
        arity, count = spec["inputs"], len(node["inputs"])
        ok = {int: lambda: count == arity}.get(type(arity), lambda: (
            count >= int(arity[:-1]) if arity.endswith("+") else int(arity[0]) <= count <= int(arity[-1])))()
        if not ok:
            problems.append((node["name"], f"{count} inputs"))
        for key, value in node.get("attrs", {}).items():
            kind = spec["attrs"].get(key)
            nullable = (node["op"], key) in {("clamp", "min"), ("clamp", "max"), ("slice", "end")}
            if kind is None or not (kinds[kind](value) or (value is None and nullable)):
                problems.append((node["name"], f"attr {key}={value!r}"))
        roles = node.get("tensors", {})
        for role in roles:
            if role not in spec["tensors"]:
                problems.append((node["name"], f"role {role}"))
        for role, need in spec["tensors"].items():
            if need == "required" and role not in roles:
                problems.append((node["name"], f"missing {role}"))
    return problems

"""Parity fixtures for the runtime's op set, written without the exporter (an independent path).

    .venv/bin/python Tests/Fixtures/runtime/make_op_fixtures.py

Each case below writes its architecture JSON by hand, draws random float32 weights, computes the expected
output with PyTorch functional ops in float64, and writes ``op-NAME.safetensors`` (the model, with the
``dml.*`` metadata and fingerprint computed here from the format's definition) and ``op-NAME.golden.safetensors``
(``input`` [N, ...] and ``output`` [N, D]). Seeds are fixed: rerunning gives the same files.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

BATCH = 3
HERE = Path(__file__).resolve().parent


class Net:
    """A hand-written layer graph: nodes in order, weights as numpy float32, and the torch reference."""

    def __init__(self, name: str, input_shape: list[int], layout: str, seed: int):
        self.name, self.input_shape, self.layout = name, input_shape, layout
        self.nodes: list[dict] = []
        self.tensors: dict[str, np.ndarray] = {}
        self.rng = np.random.default_rng(seed)

    def weight(self, *shape: int, scale: float = 0.5, positive: bool = False) -> np.ndarray:
        value = self.rng.standard_normal(shape).astype(np.float32) * scale
        return np.abs(value) + 0.5 if positive else value

    def add(self, name: str, op: str, inputs: list[str], attrs: dict | None = None, **tensors: np.ndarray) -> str:
        node = {"name": name, "op": op, "inputs": inputs}
        if attrs:
            node["attrs"] = attrs
        if tensors:
            node["tensors"] = {role: f"{name}.{role}" for role in tensors}
            for role, value in tensors.items():
                self.tensors[f"{name}.{role}"] = value
        self.nodes.append(node)
        return name

    def t(self, name: str, role: str) -> torch.Tensor:
        return torch.from_numpy(self.tensors[f"{name}.{role}"]).double()


def fingerprint(architecture: str, tensors: dict[str, np.ndarray]) -> str:
    """docs/FORMATS.md: SHA-256 of the architecture JSON, then per tensor in name order
    ``\\0name\\0<numpy dtype str>\\0[shape]\\0`` and its bytes."""
    h = hashlib.sha256(architecture.encode())
    for name in sorted(tensors):
        value = np.ascontiguousarray(tensors[name])
        h.update(f"\0{name}\0{value.dtype.str}\0{list(value.shape)}\0".encode())
        h.update(value.tobytes())
    return "sha256:" + h.hexdigest()


def write(net: Net, outputs: list[str], expected: list[torch.Tensor], x: np.ndarray) -> None:
    architecture = json.dumps({
        "input": {"shape": net.input_shape, "layout": net.layout},
        "nodes": net.nodes,
        "outputs": outputs,
        "output_dim": int(sum(int(np.prod(e.shape[1:])) for e in expected)),
        "normalize": False,
    })
    metadata = {
        "dml.format_version": "1",
        "dml.architecture": architecture,
        "dml.fingerprint": fingerprint(architecture, net.tensors),
        "dml.weight_dtype": "f32",
    }
    output = torch.cat([e.reshape(e.shape[0], -1) for e in expected], dim=1).float().numpy()
    for path, tensors, meta in [
        (HERE / f"op-{net.name}.safetensors", net.tensors, metadata),
        (HERE / f"op-{net.name}.golden.safetensors", {"input": x, "output": output}, None),
    ]:
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata=meta)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)


def activations() -> None:
    """clamp (ReLU6 fused into a conv, one-sided standalone), hardswish (fused and standalone), hardsigmoid,
    one-input add/sub/mul/div."""
    n = Net("activations", [4, 6, 6], "NCHW", seed=1)
    n.add("c1", "conv2d", ["input"], {"stride": 1, "padding": 1}, weight=n.weight(8, 4, 3, 3), bias=n.weight(8))
    n.add("r6", "clamp", ["c1"], {"min": 0.0, "max": 6.0})
    n.add("c2", "conv2d", ["r6"], {}, weight=n.weight(8, 8, 1, 1), bias=n.weight(8))
    n.add("hs1", "hardswish", ["c2"])
    n.add("sum", "add", ["hs1", "r6"])
    n.add("hs2", "hardswish", ["sum"])
    n.add("hsig", "hardsigmoid", ["sum"])
    n.add("low", "clamp", ["hs2"], {"min": -0.2, "max": None})
    n.add("high", "clamp", ["hsig"], {"min": None, "max": 0.7})
    n.add("plus", "add", ["low"], {"scalar": 0.25})
    n.add("minus", "sub", ["plus"], {"scalar": 1.5})
    n.add("times", "mul", ["minus"], {"scalar": -2.0})
    n.add("over", "div", ["high"], {"scalar": 4.0})
    x = (np.random.default_rng(11).standard_normal([BATCH] + n.input_shape) * 2).astype(np.float32)
    t = torch.from_numpy(x).double()
    c1 = F.conv2d(t, n.t("c1", "weight"), n.t("c1", "bias"), padding=1)
    r6 = c1.clamp(0, 6)
    s = F.hardswish(F.conv2d(r6, n.t("c2", "weight"), n.t("c2", "bias"))) + r6
    low = F.hardswish(s).clamp(min=-0.2)
    high = F.hardsigmoid(s).clamp(max=0.7)
    write(n, ["times", "over"], [((low + 0.25) - 1.5) * -2.0, high / 4.0], x)


def broadcast() -> None:
    """Broadcasting add/sub/mul/div: squeeze-excitation [C,H,W] x [C,1,1], layer scale (constant), channels-last
    [H,W,C] + [C], [H,W,C] - [H,1,1], [H,W,C] / [1,W,1], and the smaller operand first."""
    n = Net("broadcast", [6, 5, 4], "NCHW", seed=2)
    n.add("pool", "global_avg_pool", ["input"], {"keepdim": True})
    n.add("fc", "conv2d", ["pool"], {}, weight=n.weight(6, 6, 1, 1), bias=n.weight(6))
    n.add("gate", "sigmoid", ["fc"])
    n.add("se", "mul", ["input", "gate"])
    n.add("gamma", "constant", [], {"shape": [6, 1, 1]}, value=n.weight(6, 1, 1))
    n.add("scaled", "mul", ["se", "gamma"])
    n.add("last", "permute", ["scaled"], {"dims": [0, 2, 3, 1]})
    n.add("bias", "constant", [], {"shape": [6]}, value=n.weight(6))
    n.add("biased", "add", ["last", "bias"])
    n.add("rows", "constant", [], {"shape": [5, 1, 1]}, value=n.weight(5, 1, 1))
    n.add("centred", "sub", ["biased", "rows"])
    n.add("cols", "constant", [], {"shape": [1, 4, 1]}, value=n.weight(1, 4, 1, positive=True))
    n.add("ratio", "div", ["centred", "cols"])
    n.add("front", "constant", [], {"shape": [4, 6]}, value=n.weight(4, 6))
    n.add("product", "mul", ["front", "ratio"])
    n.add("gap", "sub", ["front", "ratio"])
    x = np.random.default_rng(12).standard_normal([BATCH] + n.input_shape).astype(np.float32)
    t = torch.from_numpy(x).double()
    gate = torch.sigmoid(F.conv2d(t.mean((2, 3), keepdim=True), n.t("fc", "weight"), n.t("fc", "bias")))
    scaled = t * gate * n.t("gamma", "value")
    last = scaled.permute(0, 2, 3, 1)
    ratio = (last + n.t("bias", "value") - n.t("rows", "value")) / n.t("cols", "value")
    front = n.t("front", "value")
    write(n, ["product", "gap"], [front * ratio, front - ratio], x)


def pooling() -> None:
    """Ceil-mode max/avg pooling (with and without padding, count_include_pad both ways) and adaptive
    average/max pooling to sizes that do and do not divide the input."""
    n = Net("pooling", [3, 11, 9], "NCHW", seed=3)
    n.add("max_ceil", "max_pool2d", ["input"], {"kernel_size": 3, "stride": 2, "ceil_mode": True})
    n.add("max_ceil_pad", "max_pool2d", ["input"], {"kernel_size": [3, 2], "stride": [2, 3], "padding": [1, 1], "ceil_mode": True})
    n.add("avg_ceil_pad", "avg_pool2d", ["input"], {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": True})
    n.add("avg_ceil", "avg_pool2d", ["input"], {"kernel_size": 2, "stride": 2, "ceil_mode": True, "count_include_pad": False})
    n.add("avg_ceil_excl", "avg_pool2d", ["input"], {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": False})
    n.add("adapt_avg", "adaptive_avg_pool2d", ["input"], {"output_size": [4, 3]})
    n.add("adapt_max", "adaptive_max_pool2d", ["input"], {"output_size": [5, 2]})
    n.add("adapt_up", "adaptive_avg_pool2d", ["input"], {"output_size": [13, 10]})
    n.add("adapt_one", "adaptive_max_pool2d", ["input"], {"output_size": 1})
    x = np.random.default_rng(13).standard_normal([BATCH] + n.input_shape).astype(np.float32)
    t = torch.from_numpy(x).double()
    expected = [
        F.max_pool2d(t, 3, 2, ceil_mode=True),
        F.max_pool2d(t, (3, 2), (2, 3), padding=1, ceil_mode=True),
        F.avg_pool2d(t, 3, 2, padding=1, ceil_mode=True, count_include_pad=True),
        F.avg_pool2d(t, 2, 2, ceil_mode=True, count_include_pad=False),
        F.avg_pool2d(t, 3, 2, padding=1, ceil_mode=True, count_include_pad=False),
        F.adaptive_avg_pool2d(t, (4, 3)),
        F.adaptive_max_pool2d(t, (5, 2)),
        F.adaptive_avg_pool2d(t, (13, 10)),
        F.adaptive_max_pool2d(t, 1),
    ]
    write(n, [node["name"] for node in n.nodes], expected, x)


def shapes() -> None:
    """Channel shuffle (reshape, permute, reshape), chunk (slice), strided and negative slices, select,
    mean over contiguous and non-contiguous dims, channel_layer_norm, concat."""
    n = Net("shapes", [8, 4, 6], "NCHW", seed=4)
    n.add("split", "reshape", ["input"], {"shape": [2, 4, 4, 6]})
    n.add("swap", "permute", ["split"], {"dims": [0, 2, 1, 3, 4]})
    n.add("shuffled", "reshape", ["swap"], {"shape": [8, -1, 6]})
    n.add("left", "slice", ["shuffled"], {"dim": 1, "start": 0, "end": 4, "step": 1})
    n.add("right", "slice", ["shuffled"], {"dim": 1, "start": 4, "end": 1 << 20, "step": 1})
    n.add("joined", "concat", ["right", "left"], {"dim": 1})
    n.add("strided", "slice", ["joined"], {"dim": -1, "start": -5, "end": None, "step": 2})
    n.add("row", "select", ["joined"], {"dim": 2, "index": -1})
    n.add("spatial", "mean", ["joined"], {"dims": [2, 3], "keepdim": True})
    n.add("apart", "mean", ["joined"], {"dims": [1, -1], "keepdim": False})
    n.add("norm", "channel_layer_norm", ["joined"], {"eps": 1e-6}, weight=n.weight(8, positive=True), bias=n.weight(8))
    n.add("norm_plain", "channel_layer_norm", ["input"], {"eps": 1e-5})
    n.add("last", "permute", ["input"], {"dims": [0, 3, 1, 2]})
    x = np.random.default_rng(14).standard_normal([BATCH] + n.input_shape).astype(np.float32)
    t = torch.from_numpy(x).double()
    shuffled = t.reshape(BATCH, 2, 4, 4, 6).permute(0, 2, 1, 3, 4).reshape(BATCH, 8, 4, 6)
    left, right = shuffled.chunk(2, dim=1)
    joined = torch.cat([right, left], dim=1)

    def channel_norm(v, weight=None, bias=None, eps=1e-6):
        v = F.layer_norm(v.permute(0, 2, 3, 1), (v.shape[1],), weight, bias, eps)
        return v.permute(0, 3, 1, 2)

    expected = [
        joined[..., -5::2],
        joined.select(2, -1),
        joined.mean((2, 3), keepdim=True),
        joined.mean((1, -1)),
        channel_norm(joined, n.t("norm", "weight"), n.t("norm", "bias")),
        channel_norm(t, eps=1e-5),
        t.permute(0, 3, 1, 2),
    ]
    write(n, ["strided", "row", "spatial", "apart", "norm", "norm_plain", "last"], expected, x)


def vision_transformer() -> None:
    """A tiny ViT: patch conv, flatten + transpose to tokens, class token (constant + concat), position
    embedding, pre-norm self_attention and GELU MLP blocks, select token 0, mean over tokens, matmul +
    softmax, and a linear over channels-last [H, W, C]."""
    n = Net("vit", [3, 8, 8], "NCHW", seed=5)
    d = 16
    n.add("patch", "conv2d", ["input"], {"stride": 4}, weight=n.weight(d, 3, 4, 4), bias=n.weight(d))
    n.add("flat", "flatten", ["patch"], {"start_dim": 2})
    n.add("tokens", "permute", ["flat"], {"dims": [0, 2, 1]})
    n.add("cls", "constant", [], {"shape": [1, d]}, value=n.weight(1, 1, d))
    n.add("seq", "concat", ["cls", "tokens"], {"dim": 1})
    n.add("pos", "constant", [], {"shape": [5, d]}, value=n.weight(1, 5, d))
    n.add("embedded", "add", ["seq", "pos"])
    n.add("ln1", "layer_norm", ["embedded"], {"normalized_shape": [d], "eps": 1e-6}, weight=n.weight(d, positive=True), bias=n.weight(d))
    n.add("attn", "self_attention", ["ln1"], {"num_heads": 4}, in_weight=n.weight(3 * d, d, scale=0.3),
          in_bias=n.weight(3 * d), out_weight=n.weight(d, d, scale=0.3), out_bias=n.weight(d))
    n.add("res1", "add", ["embedded", "attn"])
    n.add("ln2", "layer_norm", ["res1"], {"normalized_shape": [d], "eps": 1e-6}, weight=n.weight(d, positive=True), bias=n.weight(d))
    n.add("fc1", "linear", ["ln2"], weight=n.weight(2 * d, d, scale=0.3), bias=n.weight(2 * d))
    n.add("act", "gelu", ["fc1"], {"approximate": "none"})
    n.add("fc2", "linear", ["act"], weight=n.weight(d, 2 * d, scale=0.3), bias=n.weight(d))
    n.add("res2", "add", ["res1", "fc2"])
    n.add("query", "linear", ["res2"], weight=n.weight(d, d, scale=0.3))
    n.add("key", "linear", ["res2"], weight=n.weight(d, d, scale=0.3))
    n.add("key_t", "permute", ["key"], {"dims": [0, 2, 1]})
    n.add("scores", "matmul", ["query", "key_t"])
    n.add("weights", "softmax", ["scores"], {"dim": -1})
    n.add("mixed", "matmul", ["weights", "res2"])
    n.add("first", "select", ["mixed"], {"dim": 1, "index": 0})
    n.add("pooled", "mean", ["res2"], {"dims": [1]})
    n.add("hwc", "permute", ["patch"], {"dims": [0, 2, 3, 1]})
    n.add("proj", "linear", ["hwc"], weight=n.weight(6, d), bias=n.weight(6))
    n.add("proj_act", "gelu", ["proj"], {"approximate": "tanh"})
    x = np.random.default_rng(15).standard_normal([BATCH] + n.input_shape).astype(np.float32)
    t = torch.from_numpy(x).double()
    patch = F.conv2d(t, n.t("patch", "weight"), n.t("patch", "bias"), stride=4)
    tokens = patch.flatten(2).transpose(1, 2)
    seq = torch.cat([n.t("cls", "value").expand(BATCH, -1, -1), tokens], dim=1) + n.t("pos", "value")
    ln1 = F.layer_norm(seq, (d,), n.t("ln1", "weight"), n.t("ln1", "bias"), 1e-6)
    attention = torch.nn.MultiheadAttention(d, 4, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        attention.in_proj_weight.copy_(n.t("attn", "in_weight"))
        attention.in_proj_bias.copy_(n.t("attn", "in_bias"))
        attention.out_proj.weight.copy_(n.t("attn", "out_weight"))
        attention.out_proj.bias.copy_(n.t("attn", "out_bias"))
        res1 = seq + attention(ln1, ln1, ln1, need_weights=False)[0]
    ln2 = F.layer_norm(res1, (d,), n.t("ln2", "weight"), n.t("ln2", "bias"), 1e-6)
    hidden = F.gelu(F.linear(ln2, n.t("fc1", "weight"), n.t("fc1", "bias")))
    res2 = res1 + F.linear(hidden, n.t("fc2", "weight"), n.t("fc2", "bias"))
    scores = F.linear(res2, n.t("query", "weight")) @ F.linear(res2, n.t("key", "weight")).transpose(1, 2)
    mixed = torch.softmax(scores, dim=-1) @ res2
    proj = F.gelu(F.linear(patch.permute(0, 2, 3, 1), n.t("proj", "weight"), n.t("proj", "bias")), approximate="tanh")
    write(n, ["first", "pooled", "mixed", "proj_act"], [mixed[:, 0], res2.mean(1), mixed, proj], x)


def token_input() -> None:
    """Token sequences as the model input (layout NTD): self_attention without biases, softmax over the token
    axis (strided), per-head batched matmul with leading axes, linear on [T, D] without bias."""
    n = Net("tokens", [6, 8], "NTD", seed=6)
    n.add("attn", "self_attention", ["input"], {"num_heads": 2}, in_weight=n.weight(24, 8, scale=0.4), out_weight=n.weight(8, 8, scale=0.4))
    n.add("over_tokens", "softmax", ["attn"], {"dim": 1})
    n.add("heads", "reshape", ["input"], {"shape": [6, 2, 4]})
    n.add("by_head", "permute", ["heads"], {"dims": [0, 2, 1, 3]})
    n.add("by_head_t", "permute", ["heads"], {"dims": [0, 2, 3, 1]})
    n.add("scores", "matmul", ["by_head", "by_head_t"])
    n.add("probs", "softmax", ["scores"], {"dim": 3})
    n.add("context", "matmul", ["probs", "by_head"])
    n.add("out", "linear", ["attn"], weight=n.weight(3, 8))
    x = np.random.default_rng(16).standard_normal([BATCH] + n.input_shape).astype(np.float32)
    t = torch.from_numpy(x).double()
    attention = torch.nn.MultiheadAttention(8, 2, bias=False, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        attention.in_proj_weight.copy_(n.t("attn", "in_weight"))
        attention.out_proj.weight.copy_(n.t("attn", "out_weight"))
        attn = attention(t, t, t, need_weights=False)[0]
    heads = t.reshape(BATCH, 6, 2, 4).permute(0, 2, 1, 3)
    context = torch.softmax(heads @ heads.transpose(2, 3), dim=3) @ heads
    write(n, ["over_tokens", "context", "out"], [torch.softmax(attn, dim=1), context, F.linear(attn, n.t("out", "weight"))], x)


def layouts() -> None:
    """What the channels-last plan rewrites: convs first, then residual sums fused into a conv (with a ReLU
    after; with the residual read again later), concat, an unfolded BatchNorm, padded ceil-mode max/avg pooling,
    adaptive and global pooling, channel LayerNorm, mean (dropping H and W; keeping dims), a broadcast gate and
    a permute out of channels-last order."""
    n = Net("layouts", [3, 10, 9], "NCHW", seed=7)
    n.add("stem", "conv2d", ["input"], {"padding": 1}, weight=n.weight(8, 3, 3, 3), bias=n.weight(8))
    n.add("c1", "conv2d", ["stem"], {"padding": 1}, weight=n.weight(8, 8, 3, 3))
    n.add("bn1", "batch_norm", ["c1"], {"eps": 1e-5}, weight=n.weight(8, positive=True), bias=n.weight(8),
          running_mean=n.weight(8), running_var=n.weight(8, positive=True))
    n.add("sum1", "add", ["bn1", "stem"])
    n.add("block1", "relu", ["sum1"])
    n.add("c2", "conv2d", ["block1"], {"padding": 1}, weight=n.weight(8, 8, 3, 3), bias=n.weight(8))
    n.add("sum2", "add", ["block1", "c2"])
    n.add("both", "concat", ["sum2", "block1"], {"dim": 1})
    n.add("affine", "batch_norm", ["both"], {"eps": 1e-5}, weight=n.weight(16, positive=True), bias=n.weight(16),
          running_mean=n.weight(16), running_var=n.weight(16, positive=True))
    n.add("act", "relu", ["affine"])
    n.add("max_pad", "max_pool2d", ["act"], {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True})
    n.add("avg_pad", "avg_pool2d", ["act"], {"kernel_size": 3, "stride": 2, "padding": 1, "ceil_mode": True, "count_include_pad": True})
    n.add("adapt", "adaptive_avg_pool2d", ["act"], {"output_size": [4, 3]})
    n.add("norm", "channel_layer_norm", ["adapt"], {"eps": 1e-6}, weight=n.weight(16, positive=True), bias=n.weight(16))
    n.add("spatial", "mean", ["max_pad"], {"dims": [2, 3], "keepdim": False})
    n.add("keep", "mean", ["avg_pad"], {"dims": [1], "keepdim": True})
    n.add("gate", "global_avg_pool", ["act"], {"keepdim": True})
    n.add("gated", "mul", ["act", "gate"])
    n.add("last", "permute", ["gated"], {"dims": [0, 2, 3, 1]})
    x = np.random.default_rng(17).standard_normal([BATCH] + n.input_shape).astype(np.float32)
    t = torch.from_numpy(x).double()

    def bn(v, name):
        return F.batch_norm(v, n.t(name, "running_mean"), n.t(name, "running_var"), n.t(name, "weight"), n.t(name, "bias"), eps=1e-5)

    stem = F.conv2d(t, n.t("stem", "weight"), n.t("stem", "bias"), padding=1)
    block1 = torch.relu(bn(F.conv2d(stem, n.t("c1", "weight"), padding=1), "bn1") + stem)
    sum2 = block1 + F.conv2d(block1, n.t("c2", "weight"), n.t("c2", "bias"), padding=1)
    act = torch.relu(bn(torch.cat([sum2, block1], dim=1), "affine"))
    adapt = F.adaptive_avg_pool2d(act, (4, 3))
    norm = F.layer_norm(adapt.permute(0, 2, 3, 1), (16,), n.t("norm", "weight"), n.t("norm", "bias"), 1e-6).permute(0, 3, 1, 2)
    expected = [
        F.max_pool2d(act, 3, 2, padding=1, ceil_mode=True).mean((2, 3)),
        F.avg_pool2d(act, 3, 2, padding=1, ceil_mode=True, count_include_pad=True).mean(1, keepdim=True),
        norm,
        (act * act.mean((2, 3), keepdim=True)).permute(0, 2, 3, 1),
    ]
    write(n, ["spatial", "keep", "norm", "last"], expected, x)


CASES = [activations, broadcast, pooling, shapes, vision_transformer, token_input, layouts]

if __name__ == "__main__":
    for case in CASES:
        case()

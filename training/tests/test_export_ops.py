"""The exporter's backbone ops on small hand-written modules, checked with the reference interpreter
(graph_reference.py) against PyTorch: gates and activations, ceil-mode and adaptive pooling, channel shuffle,
channels-last norms, parameters read in forward, tokens and attention; plus the errors for what stays
unsupported, the input layout, the trainer's input scale and ops.json as package data."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dmlkit.export import ExportError, export_model
from dmlkit.export.ops import load_ops
from graph_reference import OPS_JSON, ops_json_problems, run_graph


class Gates(nn.Module):
    """Hardswish, a squeeze-excitation gate (relu6, hardsigmoid, broadcast mul), hardtanh, one-sided clamp,
    ceil-mode max/avg pooling and adaptive pooling to sizes other than 1."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.se1, self.se2 = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1)
        self.pool = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.fc = nn.Linear(8 * 3 * 2 + 8 * 2 * 2, 16)

    def forward(self, x):  # [N, 3, 11, 9]
        x = F.hardswish(self.conv(x))
        gate = F.hardsigmoid(self.se2(F.relu6(self.se1(F.adaptive_avg_pool2d(x, 1)))))
        x = F.hardtanh(x * gate, -0.5, 0.5) + x.clamp(min=0.1)
        x = F.avg_pool2d(self.pool(x), 2, ceil_mode=True, count_include_pad=False)  # [8, 3, 2]
        a = F.adaptive_avg_pool2d(x, (3, 2)).flatten(1)
        b = F.adaptive_max_pool2d(x, (2, None)).flatten(1)
        return self.fc(torch.cat([a, b], 1))


class Shuffle(nn.Module):
    """An assert on ndim/dim(), channel shuffle from shape arithmetic, chunk and split, a channels-last LayerNorm between permutes,
    a layer-scale parameter read in forward, and scalar arithmetic on either side (1 - x, x / 2)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.LayerNorm(8)
        self.gamma = nn.Parameter(torch.rand(8, 1, 1) + 0.5)
        self.fc = nn.Linear(8, 8)

    def forward(self, x):  # [N, 3, 6, 6]
        x = self.conv(x)
        torch._assert(x.ndim == 4, "an NCHW map")  # asserts are folded at trace time
        torch._assert(x.dim() == 4, "an NCHW map")
        b, c, h, w = x.size()
        x = torch.transpose(x.view(b, 2, c // 2, h, w), 1, 2).contiguous().view(b, -1, h, w)
        left, right = x.chunk(2, dim=1)
        first, _ = torch.split(right, [3, 1], dim=1)
        x = torch.cat([left, F.silu(first), right[:, 3:]], 1)
        y = self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        x = x + self.gamma * y
        x = (1 - torch.sigmoid(x)) / 2
        return self.fc(x.mean((2, 3)))


class Tokens(nn.Module):
    """A patch embedding, a class token (expand, cat), a position embedding, nn.MultiheadAttention, attention
    written out with scaled_dot_product_attention and with matmul/softmax, token selection and token mean,
    functional linear/layer_norm with parameters, indexing with None."""

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 16, 4, stride=4)
        self.cls = nn.Parameter(torch.randn(1, 1, 16))
        self.pos = nn.Parameter(torch.randn(1, 5, 16) * 0.1)
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
        self.qkv = nn.Linear(16, 48)
        self.w = nn.Parameter(torch.randn(12, 16) * 0.2)
        self.ln_w, self.ln_b = nn.Parameter(torch.rand(16) + 0.5), nn.Parameter(torch.randn(16) * 0.1)

    def forward(self, x):  # [N, 3, 8, 8]
        x = self.patch(x).flatten(2).transpose(1, 2)  # [N, 4, 16]
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = x + self.mha(x, x, x, need_weights=False)[0]
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, 2, C // 2).permute(0, 2, 3, 1, 4).unbind(1)
        a = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, N, C)
        attn = (q @ k.transpose(-2, -1) * 0.25).softmax(dim=-1)
        b = (attn @ v).transpose(1, 2).reshape(B, N, C)
        x = F.layer_norm(x + a + b, (16,), self.ln_w, self.ln_b)
        pooled = x[:, 0] + x[:, 1:].mean(dim=1)
        return F.linear(pooled, self.w)[..., None].flatten(1)


CASES = {"gates": (Gates, (3, 11, 9), {"clamp", "hardswish", "hardsigmoid", "mul", "adaptive_avg_pool2d",
                                       "adaptive_max_pool2d"}),
         "shuffle": (Shuffle, (3, 6, 6), {"permute", "slice", "constant", "reshape", "layer_norm"}),
         "tokens": (Tokens, (3, 8, 8), {"constant", "self_attention", "select", "slice", "matmul", "softmax", "mean"})}


@pytest.mark.parametrize("name", sorted(CASES))
def test_backbone_ops_reproduce_pytorch(tmp_path, name):
    module, shape, expected_ops = CASES[name]
    torch.manual_seed(0)
    model = module().eval()
    x = torch.randn(3, *shape)
    arch = export_model(model, x, tmp_path / "m.safetensors")
    ops = {n["op"] for n in arch["nodes"]}
    assert expected_ops <= ops, expected_ops - ops
    assert ops_json_problems(arch) == []
    with torch.no_grad():
        want = model(x).numpy()
    got = run_graph(tmp_path / "m.safetensors", x)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5  # NaN fails the comparison


def test_pooling_ceil_mode_is_written(tmp_path):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.MaxPool2d(2, ceil_mode=True), nn.AvgPool2d(2))
    arch = export_model(model, torch.randn(2, 3, 9, 9), tmp_path / "m.safetensors")
    pools = [n["attrs"]["ceil_mode"] for n in arch["nodes"] if n["op"].endswith("pool2d")]
    assert pools == [True, False]


def test_parameters_read_in_forward_become_per_sample_constants(tmp_path):
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor([2.0, 3.0, 4.0]))  # broadcast over the last axis
            self.offset = nn.Parameter(torch.ones(1, 2, 3))

        def forward(self, x):  # [N, 2, 3]
            return (x * self.scale + self.offset).flatten(1)

    arch = export_model(Scaled().eval(), torch.randn(2, 2, 3), tmp_path / "m.safetensors")
    constants = {n["name"]: n["attrs"]["shape"] for n in arch["nodes"] if n["op"] == "constant"}
    assert constants == {"scale": [1, 3], "offset": [2, 3]}


@pytest.mark.parametrize("module,shape,pattern", [
    (lambda: _Fn(lambda x: torch.roll(x, 1, 2)), (3, 4, 4), r"function roll.*node 'roll'"),
    (lambda: nn.Sequential(nn.Conv2d(4, 8, 3), nn.PixelShuffle(2)), (4, 6, 6), r"module PixelShuffle.*node '_1'"),
    (lambda: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect")), (3, 6, 6),
     r"padding_mode='reflect'.*node '_0'"),
    (lambda: _Fn(lambda x: x[0:1] * 2), (4,), r"batch"),
    (lambda: _Fn(lambda x: x.permute(1, 0)), (4,), r"permute.*batch.*node 'permute'"),
    (lambda: _Fn(lambda x: 2 / x), (4,), r"division of a number"),
    (lambda: _Fn(lambda x: x.sum(1)), (4,), r"method \.sum\(\).*node 'sum_1'"),
])
def test_unsupported_ops_name_op_and_node(tmp_path, module, shape, pattern):
    with pytest.raises(ExportError, match=pattern):
        export_model(module().eval(), torch.randn(2, *shape), tmp_path / "m.safetensors")
    assert not (tmp_path / "m.safetensors").exists()


def test_values_read_from_the_data_are_not_folded(tmp_path):
    with pytest.raises(ExportError, match=r"method \.item\(\).*read from the data"):
        export_model(_Fn(lambda x: x * x.mean(1).item()), torch.randn(1, 4), tmp_path / "m.safetensors")


def test_inplace_op_whose_input_is_read_again_is_refused(tmp_path):
    class InPlace(nn.Module):
        def forward(self, x):
            y = x * 1.0
            z = y.add_(1.0)
            return torch.cat([y, z], 1)

    with pytest.raises(ExportError, match="in-place"):
        export_model(InPlace(), torch.randn(2, 4), tmp_path / "m.safetensors")


def test_swin_window_attention_is_refused_by_name(tmp_path):
    models = pytest.importorskip("torchvision.models")
    with pytest.raises(ExportError, match="function shifted_window_attention at node"):
        export_model(models.swin_t(weights=None), torch.randn(2, 3, 64, 64), tmp_path / "m.safetensors")


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("shape,layout", [((12,), "NC"), ((5, 12), "NTD"), ((3, 4, 4), "NCHW")])
def test_input_layout_is_declared(tmp_path, shape, layout):
    model = nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(shape)), 4))
    arch = export_model(model, torch.randn(2, *shape), tmp_path / "m.safetensors")
    assert arch["input"] == {"shape": list(shape), "layout": layout}


def test_input_scale_is_a_leading_node_and_the_file_takes_raw_inputs(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 8)).eval()
    raw = torch.randint(0, 17, (5, 64)).float()  # digits pixels 0..16, as the data set stores them
    arch = export_model(model, raw / 16, tmp_path / "m.safetensors", input_scale=1 / 16,
                        golden_path=tmp_path / "g.safetensors")
    first = arch["nodes"][0]
    assert first == {"name": "input_scale", "op": "mul", "inputs": ["input"], "attrs": {"scalar": 0.0625}}
    assert all("input" not in n["inputs"] for n in arch["nodes"][1:])
    with torch.no_grad():
        want = model(raw / 16).numpy()
    assert np.abs(run_graph(tmp_path / "m.safetensors", raw) - want).max() <= 1e-5
    from graph_reference import load

    _, golden = load(tmp_path / "g.safetensors")
    assert np.array_equal(golden["input"], raw.numpy())
    with pytest.raises(ExportError, match="input_scale"):
        export_model(model, raw, tmp_path / "m.safetensors", input_scale=float("nan"))


def test_ops_json_is_package_data_and_the_same_file():
    ops = load_ops()
    assert ops == json.loads(OPS_JSON.read_text())
    assert {"conv2d", "self_attention", "constant", "clamp"} <= set(ops["ops"])

"""The exporter: file format, BatchNorm folding, weight dtypes, errors, and the committed runtime fixtures.

A reference interpreter (graph_reference.py) runs the exported graph with torch ops, so the layer graph and
weights are checked against the original module independently of the Swift runtime.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from dmlkit.export import ExportError, export_model
from dmlkit.export.fixtures import CNN_PREPROCESSING, build
from dmlkit.export.writer import _fingerprint
from graph_reference import load, ops_json_problems, run_graph

FIXTURES = Path(__file__).resolve().parents[2] / "Tests" / "Fixtures" / "runtime"
MODELS = ["mlp", "cnn", "resnet", "multihead"]


def reference(model, x):
    with torch.no_grad():
        out = model(x)
    out = out if isinstance(out, tuple) else (out,)
    return torch.cat([o.reshape(x.shape[0], -1) for o in out], 1).numpy()


def min_cosine(a, b):
    return float((np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


@pytest.mark.parametrize("name", MODELS + ["ops"])
@pytest.mark.parametrize("dtype", ["f32", "f16", "int8"])
def test_exported_graph_reproduces_pytorch(tmp_path, name, dtype):
    model, x = build(name)
    path = tmp_path / "m.safetensors"
    arch = export_model(model, x, path, dtype=dtype)
    assert ops_json_problems(arch) == []
    with torch.no_grad():
        got = run_graph(path, x)
    want = reference(model, x)
    if dtype == "f32":
        assert np.abs(got - want).max() <= 1e-5
    else:
        assert min_cosine(got, want) >= 0.999


def test_file_is_plain_safetensors_with_dml_metadata(tmp_path):
    model, x = build("cnn")
    path = tmp_path / "cnn.safetensors"
    arch = export_model(model, x, path, metadata={"trained_on": "synthetic"}, preprocessing=CNN_PREPROCESSING)
    meta, tensors = load(path)
    assert meta["dml.format_version"] == "1"
    assert meta["trained_on"] == "synthetic"
    assert json.loads(meta["dml.architecture"]) == arch
    assert arch["input"]["shape"] == [3, 16, 16]
    assert arch["output_dim"] == 24
    assert arch["preprocessing"]["mean"] == CNN_PREPROCESSING["mean"]
    # The fingerprint covers architecture and weights: recomputing gives the same, changing a weight does not.
    assert meta["dml.fingerprint"] == _fingerprint(meta["dml.architecture"], tensors)
    name = sorted(tensors)[0]
    tensors[name] = tensors[name] + 1
    assert meta["dml.fingerprint"] != _fingerprint(meta["dml.architecture"], tensors)


def test_batchnorm_is_folded_only_after_conv_or_linear(tmp_path):
    ops = {}
    for name, fold in (("cnn", True), ("cnn", False), ("resnet", True), ("mlp", True)):
        model, x = build(name)
        arch = export_model(model, x, tmp_path / "m.safetensors", fold_batchnorm=fold)
        ops[(name, fold)] = [n["op"] for n in arch["nodes"]].count("batch_norm")
    assert ops[("cnn", True)] == 0
    assert ops[("cnn", False)] == 3
    assert ops[("resnet", True)] == 1  # the BatchNorm after the residual add has no conv to fold into
    assert ops[("mlp", True)] == 0


def test_int8_weights_have_per_channel_scales(tmp_path):
    model, x = build("resnet")
    path = tmp_path / "m.safetensors"
    export_model(model, x, path, dtype="int8")
    _, tensors = load(path)
    conv = tensors["stem_0.weight"]
    assert conv.dtype == np.int8 and conv.shape == (16, 3, 3, 3)
    assert tensors["stem_0.weight.scale"].shape == (16,)
    assert np.abs(conv.astype(int)).max() == 127  # symmetric range used fully
    assert tensors["stem_0.bias"].dtype == np.float32  # biases stay float32


def test_f16_weights_are_half_precision(tmp_path):
    model, x = build("mlp")
    path = tmp_path / "m.safetensors"
    export_model(model, x, path, dtype="f16")
    _, tensors = load(path)
    assert tensors["fc1.weight"].dtype == np.float16
    assert path.stat().st_size < 0.6 * export_size(tmp_path, "f32")


def export_size(tmp_path, dtype):
    model, x = build("mlp")
    export_model(model, x, tmp_path / "ref.safetensors", dtype=dtype)
    return (tmp_path / "ref.safetensors").stat().st_size


def test_reserved_metadata_and_bad_dtype_are_refused(tmp_path):
    model, x = build("mlp")
    with pytest.raises(ExportError, match="reserved"):
        export_model(model, x, tmp_path / "m.safetensors", metadata={"dml.fingerprint": "x"})
    with pytest.raises(ExportError, match="dtype"):
        export_model(model, x, tmp_path / "m.safetensors", dtype="int4")


def test_view_with_batch_size_becomes_reshape(tmp_path):
    class ViewNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.fc = nn.Linear(4 * 4 * 4, 8)

        def forward(self, x):
            return self.fc(self.conv(x).view(x.size(0), -1))

    model, x = ViewNet().eval(), torch.randn(5, 3, 6, 6)
    path = tmp_path / "m.safetensors"
    arch = export_model(model, x, path)
    assert [n["op"] for n in arch["nodes"]] == ["conv2d", "reshape", "linear"]
    with torch.no_grad():
        assert np.abs(run_graph(path, x) - reference(model, x)).max() <= 1e-5


@pytest.mark.parametrize("name", MODELS + ["ops"])
def test_committed_fixtures_match_this_exporter(tmp_path, name):
    """The Swift parity tests read committed files; they must be what this exporter writes today."""
    model, x = build(name)
    pre = CNN_PREPROCESSING if name == "cnn" else None
    arch = export_model(model, x, tmp_path / "m.safetensors", preprocessing=pre, golden_path=tmp_path / "g.safetensors")
    meta, _ = load(FIXTURES / f"{name}-f32.safetensors")
    assert json.loads(meta["dml.architecture"]) == arch
    _, golden = load(FIXTURES / f"{name}.golden.safetensors")
    _, fresh = load(tmp_path / "g.safetensors")
    assert np.abs(golden["input"] - fresh["input"]).max() == 0
    assert np.abs(golden["output"] - fresh["output"]).max() <= 1e-5


def test_training_models_export(tmp_path):
    """The embedders dmlkit.train produces export and run the same through the runtime's graph."""
    from dmlkit.models import MLPEmbedder, MultiHeadEmbedder

    torch.manual_seed(0)
    for model in (MLPEmbedder(12, hidden=(32, 16), dim=8), MultiHeadEmbedder(12, hidden=(32,), head_dims=(4, 6))):
        model.eval()
        x = torch.randn(9, 12)
        path = tmp_path / "m.safetensors"
        arch = export_model(model, x, path, dtype="f32")
        assert arch["output_dim"] == model.dim
        with torch.no_grad():
            assert np.abs(run_graph(path, x) - reference(model, x)).max() <= 1e-5


def test_architecture_keys_follow_docs_formats(tmp_path):
    """docs/FORMATS.md's architecture example has the keys this exporter writes, and its op table lists
    exactly the ops of ops.json."""
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "FORMATS.md").read_text()
    example = json.loads(re.search(r"### Architecture JSON\s+```json\n(.*?)```", doc, re.S).group(1))
    model, x = build("cnn")
    arch = export_model(model, x, tmp_path / "m.safetensors", preprocessing=CNN_PREPROCESSING)
    assert set(arch) == set(example) and set(arch["input"]) == set(example["input"])
    assert set(arch["preprocessing"]) == set(example["preprocessing"])
    documented = set(re.findall(r"^\| `([a-z0-9_]+)` \| [0-9]", doc, re.M))
    from dmlkit.export.ops import load_ops

    assert documented == set(load_ops()["ops"])

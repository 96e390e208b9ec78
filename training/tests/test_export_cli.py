"""End to end: export with dmlkit, embed with the Swift `dml embed`, compare with PyTorch.

Runs where ``DML_BIN`` names the built ``dml`` tool (``make test`` sets it); skipped otherwise.
"""

import os
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmlkit.export import export_model
from dmlkit.export.fixtures import CNN_PREPROCESSING, build

DML = os.environ.get("DML_BIN")
pytestmark = pytest.mark.skipif(not DML or not os.path.exists(DML), reason="DML_BIN does not name a built dml tool")


def dml(*args):
    return subprocess.run([DML, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name,dtype", [("resnet", "f32"), ("multihead", "int8"), ("cnn", "f16")])
def test_dml_embed_matches_pytorch(tmp_path, name, dtype):
    model, x = build(name, seed=3)
    x = torch.cat([x, x[:6] * 0.5])  # 23 samples: not a multiple of --batch
    export_model(model, x, tmp_path / "m.safetensors", dtype=dtype)
    np.save(tmp_path / "x.npy", x.numpy())
    result = dml("embed", "--model", str(tmp_path / "m.safetensors"), "--input", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "e.npy"), "--batch", "8", "--threads", "1")
    assert result.returncode == 0, result.stderr
    got = np.load(tmp_path / "e.npy")
    with torch.no_grad():
        out = model(x)
    out = torch.cat([o.reshape(len(x), -1) for o in (out if isinstance(out, tuple) else (out,))], 1)
    want = F.normalize(out, dim=1).numpy()
    assert got.shape == want.shape and got.dtype == np.float32
    if dtype == "f32":
        assert np.abs(got - want).max() <= 1e-4
    else:
        assert (got * want).sum(1).min() >= 0.999


def test_dml_embed_takes_uint8_pixels(tmp_path):
    model, x = build("cnn")
    export_model(model, x, tmp_path / "m.safetensors", preprocessing=CNN_PREPROCESSING)
    pixels = np.random.default_rng(1).integers(0, 256, size=(5, 16, 16, 3), dtype=np.uint8)
    np.save(tmp_path / "p.npy", pixels)
    result = dml("embed", "--model", str(tmp_path / "m.safetensors"), "--input", str(tmp_path / "p.npy"),
                 "--output", str(tmp_path / "e.npy"))
    assert result.returncode == 0, result.stderr
    t = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255.0
    t = (t - torch.tensor(CNN_PREPROCESSING["mean"]).view(1, 3, 1, 1)) / torch.tensor(CNN_PREPROCESSING["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        want = F.normalize(model(t), dim=1).numpy()
    assert np.abs(np.load(tmp_path / "e.npy") - want).max() <= 1e-4


def test_bad_input_exits_1_with_one_line(tmp_path):
    model, x = build("mlp")
    export_model(model, x, tmp_path / "m.safetensors")
    np.save(tmp_path / "x.npy", np.zeros((4, 31), np.float32))
    result = dml("embed", "--model", str(tmp_path / "m.safetensors"), "--input", str(tmp_path / "x.npy"),
                 "--output", str(tmp_path / "e.npy"))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "[31]" in result.stderr
    (tmp_path / "bad.safetensors").write_bytes((tmp_path / "m.safetensors").read_bytes()[:200])
    result = dml("model", "info", str(tmp_path / "bad.safetensors"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1


def test_model_info_reports_the_spec(tmp_path):
    model, x = build("resnet")
    export_model(model, x, tmp_path / "m.safetensors", dtype="int8")
    result = dml("model", "info", str(tmp_path / "m.safetensors"), "--json")
    assert result.returncode == 0, result.stderr
    import json

    info = json.loads(result.stdout)
    assert info["inputShape"] == [3, 16, 16]
    assert info["outputDimension"] == 32
    assert info["weightDTypes"] == ["F32", "I8"]
    assert info["fingerprint"].startswith("sha256:") and info["fingerprintMatches"] is True
    assert sum(layer["op"].startswith("conv2d") for layer in info["layers"]) == 7


def test_digits_model_takes_raw_pixels(tmp_path):
    """The digits loader's /16 is in the file (a leading input_scale node): dml embed takes the raw 0..16 counts."""
    from sklearn.datasets import load_digits

    from dmlkit.data.digits import DIGITS_SCALE
    from dmlkit.models import MLPEmbedder

    torch.manual_seed(0)
    model = MLPEmbedder(64, hidden=(32,), dim=8).eval()
    raw = load_digits().data[:7].astype(np.float32)
    x = torch.from_numpy(raw) * DIGITS_SCALE
    export_model(model, x, tmp_path / "m.safetensors", input_scale=DIGITS_SCALE)
    np.save(tmp_path / "raw.npy", raw)
    result = dml("embed", "--model", str(tmp_path / "m.safetensors"), "--input", str(tmp_path / "raw.npy"),
                 "--output", str(tmp_path / "e.npy"))
    assert result.returncode == 0, result.stderr
    with torch.no_grad():
        want = F.normalize(model(x), dim=1).numpy()
    assert np.abs(np.load(tmp_path / "e.npy") - want).max() <= 1e-5
    info = dml("model", "info", str(tmp_path / "m.safetensors"))
    assert info.returncode == 0 and "input_scale" in info.stdout

"""The backbone zoo (torchvision and timm architectures with a 128-d embedding head) at small input sizes:
every graph follows ops.json and reproduces PyTorch through the reference interpreter, and through the real
``dml embed`` (``DML_BIN``) for f32, f16 and int8 weights.

Models have random weights with BatchNorm statistics re-estimated on random batches (dmlkit.export.zoo).
Such networks are badly conditioned: rounding the weights to f16 in PyTorch itself moves inception_v3's
embedding to cosine ~0.996 of the f32 one (int8: ~0.64; 1e-4 relative weight noise: 0.999). So f16/int8 files
are held to the f32 tolerance against the same rounded weights run by PyTorch ops (the reference interpreter on
the file), and to the brief's bounds (f16 0.9999, int8 0.999) against the f32 embedding wherever that rounding
in PyTorch stays within them.
``make zoo`` prints the full-size table (bench/zoo).
"""

import os
import subprocess
from functools import lru_cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dmlkit.export import export_model
from dmlkit.export.zoo import ARCHITECTURES, build
from graph_reference import ops_json_problems, run_graph

pytest.importorskip("torchvision")
pytest.importorskip("timm")

DML = os.environ.get("DML_BIN")
NAMES = [a.name for a in ARCHITECTURES]
MAX_ABS, MIN_COS = 1e-4, 0.99999
# The brief's bounds for rounded weights against the f32 embedding, where the random model allows them.
ROUNDED_BOUND = {"f16": 0.9999, "int8": 0.999}


@lru_cache(maxsize=2)
def model_and_input(name):
    model, size = build(name, small=True)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want = F.normalize(model(x), dim=1).numpy()
    return model, x, want


def unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def min_cos(a, b):
    return float(np.min(np.sum(unit(a) * unit(b), axis=1)))


def max_abs(a, b):
    return float(np.max(np.abs(unit(a) - unit(b))))


def dml_embed(path, x, tmp_path):
    np.save(tmp_path / "x.npy", x.numpy())
    # The load-time SHA-256 of a 100 MB file takes a minute in the debug build make test uses; the fingerprint
    # is tested on its own (test_export.py, the Swift suites), this file tests the graph and the weights.
    result = subprocess.run([DML, "embed", "--model", str(path), "--input", str(tmp_path / "x.npy"),
                             "--output", str(tmp_path / "e.npy"), "--threads", "1", "--ignore-fingerprint"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return np.load(tmp_path / "e.npy")


@pytest.mark.parametrize("name", NAMES)
def test_zoo_exports_follow_ops_json_and_reproduce_pytorch(tmp_path, name):
    model, x, want = model_and_input(name)
    assert min_cos(want[:1], want[1:]) < 0.9999  # the two samples' embeddings differ: parity means something
    arch = export_model(model, x, tmp_path / "m.safetensors")
    assert ops_json_problems(arch) == []
    assert arch["input"] == {"shape": list(x.shape[1:]), "layout": "NCHW"} and arch["output_dim"] == 128
    got = run_graph(tmp_path / "m.safetensors", x)
    assert max_abs(got, want) <= MAX_ABS and min_cos(got, want) >= MIN_COS  # NaN fails both


@pytest.mark.skipif(not DML or not os.path.exists(DML), reason="DML_BIN does not name a built dml tool")
@pytest.mark.parametrize("name", NAMES)
def test_zoo_through_dml_embed(tmp_path, name):
    model, x, want = model_and_input(name)
    for dtype in ("f32", "f16", "int8"):
        path = tmp_path / f"{dtype}.safetensors"
        export_model(model, x, path, dtype=dtype)
        got = dml_embed(path, x, tmp_path)
        assert got.shape == want.shape and got.dtype == np.float32
        if dtype == "f32":
            assert max_abs(got, want) <= MAX_ABS and min_cos(got, want) >= MIN_COS, (dtype, max_abs(got, want))
            continue
        same_weights = run_graph(path, x)  # PyTorch ops on the file's rounded weights
        assert max_abs(got, same_weights) <= MAX_ABS and min_cos(got, same_weights) >= MIN_COS, dtype
        # The brief's bound against the f32 embedding, wherever the rounding itself (in PyTorch) stays within it.
        if min_cos(same_weights, want) >= ROUNDED_BOUND[dtype]:
            assert min_cos(got, want) >= ROUNDED_BOUND[dtype], (dtype, min_cos(got, want))

"""`dml embed` and `dml model info` on the runtime's committed op fixtures: the input contract (exact
shape, a clear line for channels-last pixels), the fingerprint check, and what `model info` reports."""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file
from safetensors import safe_open

DML = os.environ.get("DML_BIN")
pytestmark = pytest.mark.skipif(not DML or not os.path.exists(DML), reason="DML_BIN does not name a built dml tool")
FIXTURES = Path(__file__).resolve().parent.parent / "Fixtures" / "runtime"


def dml(*args):
    return subprocess.run([DML, *map(str, args)], capture_output=True, text=True, timeout=120)


def golden(name):
    g = load_file(str(FIXTURES / f"op-{name}.golden.safetensors"))
    return g["input"], g["output"]


@pytest.mark.parametrize("name", ["vit", "tokens"])
def test_embed_matches_the_golden_output(tmp_path, name):
    x, want = golden(name)
    np.save(tmp_path / "x.npy", x)
    result = dml("embed", "--model", FIXTURES / f"op-{name}.safetensors", "--input", tmp_path / "x.npy", "--output", tmp_path / "e.npy")
    assert result.returncode == 0, result.stderr
    got = np.load(tmp_path / "e.npy")  # the fixtures declare normalize: false, so these are the raw outputs
    assert got.shape == want.shape and np.abs(got - want).max() <= 1e-5 * max(1.0, np.abs(want).max())


def test_channels_last_pixels_are_refused_with_a_hint(tmp_path):
    x, _ = golden("vit")  # (3, 3, 8, 8) NCHW
    np.save(tmp_path / "x.npy", np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    result = dml("embed", "--model", FIXTURES / "op-vit.safetensors", "--input", tmp_path / "x.npy", "--output", tmp_path / "e.npy")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "channels-last" in result.stderr and "transpose(0, 3, 1, 2)" in result.stderr
    assert not (tmp_path / "e.npy").exists()


def test_same_count_in_another_shape_is_refused(tmp_path):
    x, _ = golden("tokens")  # (3, 6, 8) NTD
    np.save(tmp_path / "x.npy", x.reshape(3, 8, 6))
    result = dml("embed", "--model", FIXTURES / "op-tokens.safetensors", "--input", tmp_path / "x.npy", "--output", tmp_path / "e.npy")
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert "[8, 6]" in result.stderr and "(n, 6, 8)" in result.stderr and "NTD" in result.stderr


def test_changed_file_is_refused_unless_told(tmp_path):
    tensors = load_file(str(FIXTURES / "op-tokens.safetensors"))
    with safe_open(str(FIXTURES / "op-tokens.safetensors"), "np") as f:
        metadata = f.metadata()
    tensors["out.weight"] = tensors["out.weight"] * 2
    save_file(tensors, str(tmp_path / "m.safetensors"), metadata=metadata)
    x, _ = golden("tokens")
    np.save(tmp_path / "x.npy", x)
    args = ["embed", "--model", tmp_path / "m.safetensors", "--input", tmp_path / "x.npy", "--output", tmp_path / "e.npy"]
    result = dml(*args)
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "fingerprint" in result.stderr
    assert dml(*args, "--ignore-fingerprint").returncode == 0
    info = dml("model", "info", tmp_path / "m.safetensors")
    assert info.returncode == 0 and "DOES NOT match" in info.stdout


def test_model_info_prints_layout():
    result = dml("model", "info", FIXTURES / "op-tokens.safetensors", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["inputLayout"] == "NTD" and summary["inputShape"] == [6, 8] and summary["fingerprintMatches"] is True
    text = dml("model", "info", FIXTURES / "op-vit.safetensors").stdout
    assert "layout NCHW" in text and "(n, 3, 8, 8)" in text

"""f16 and int8 MiniLM files: model.safetensors rewritten by numpy with F16 tensors, or I8 tensors plus one F32
scale per row (`NAME.scale`, the runtime's int8 convention), loaded by `dml embed-text` as they are. They must
give what `--weights f16|int8` (rounding at load) gives, and stay close to sentence-transformers' f32 embeddings.
"""
import os
import pathlib
import subprocess

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = pathlib.Path(__file__).resolve().parents[2]
DML = os.environ.get("DML_BIN", str(REPO / ".build" / "debug" / "dml"))
MODEL = REPO / "models" / "text" / "all-MiniLM-L6-v2"
CORPUS = REPO / "Tests" / "Fixtures" / "text" / "corpus.txt"
FILES = ["config.json", "vocab.txt", "tokenizer_config.json", "sentence_bert_config.json", "1_Pooling/config.json"]


def quantise(name, array, kind):
    """Matrices (2-D weights) only; LayerNorm parameters, biases and position ids stay as they are."""
    if array.ndim != 2 or not name.endswith(".weight") or array.dtype != np.float32:
        return {name: array}
    if kind == "f16":
        return {name: array.astype(np.float16)}
    peak = np.abs(array).max(axis=1, keepdims=True)
    scale = np.where(peak > 0, peak / 127, 1).astype(np.float32)
    q = np.clip(np.round(array / scale), -127, 127).astype(np.int8)
    return {name: q, name + ".scale": scale[:, 0].copy()}


@pytest.fixture(scope="module")
def lines():
    if not (MODEL / "model.safetensors").exists():
        pytest.fail(f"{MODEL} is missing: run `make text-model`")
    all_lines = CORPUS.read_bytes().decode("utf-8").split("\n")[:-1]
    return all_lines[::20]


@pytest.fixture(scope="module")
def reference(lines):
    import torch
    from sentence_transformers import SentenceTransformer
    torch.set_num_threads(1)
    return SentenceTransformer(str(MODEL), device="cpu").encode(lines, batch_size=32, convert_to_numpy=True)


def embed(model_dir, text_file, out, *extra):
    result = subprocess.run([DML, "embed-text", "--model", model_dir, "--input", text_file, "--output", out, *extra],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return np.load(out)


@pytest.mark.parametrize("kind,floor", [("f16", 0.9999), ("int8", 0.99)])
def test_stored_variant_matches_rounding_at_load_and_stays_close(tmp_path, lines, reference, kind, floor):
    variant = tmp_path / kind
    (variant / "1_Pooling").mkdir(parents=True)
    for name in FILES:
        (variant / name).symlink_to(MODEL / name)
    tensors = {}
    for name, array in load_file(str(MODEL / "model.safetensors")).items():
        tensors.update(quantise(name, array, kind))
    save_file(tensors, str(variant / "model.safetensors"))
    size = (variant / "model.safetensors").stat().st_size / (MODEL / "model.safetensors").stat().st_size
    text = tmp_path / "lines.txt"
    text.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    stored = embed(variant, text, tmp_path / "stored.npy")
    rounded = embed(MODEL, text, tmp_path / "rounded.npy", "--weights", kind)
    # Rounding ties may break differently (numpy rounds half to even), hence a tolerance rather than equality.
    np.testing.assert_allclose(stored, rounded, atol=2e-3 if kind == "int8" else 1e-6)
    cosines = np.sum(stored * reference, axis=1)
    print(f"{kind}: file {size:.2f}x the f32 file, min cosine to sentence-transformers f32 {cosines.min():.6f}, "
          f"mean {cosines.mean():.6f} over {len(lines)} lines")
    assert cosines.min() >= floor

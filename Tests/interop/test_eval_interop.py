"""`dml eval` against the Python side's evaluation (training/dmlkit/evaluation.py, checked against
pytorch-metric-learning) on fresh random data."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

from dmlkit.evaluation import class_metrics, graded_metrics

REPO = pathlib.Path(__file__).resolve().parents[2]
DML = os.environ.get("DML_BIN", str(REPO / ".build" / "debug" / "dml"))


def dml_eval(*args):
    out = subprocess.run([DML, "eval", *map(str, args), "--json"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("seed", [0, 1])
def test_class_metrics_agree(tmp_path, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 12, 400)
    x = (rng.normal(size=(400, 16)) + labels[:, None] * 0.3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", labels.astype(np.int64))
    ours = dml_eval("--embeddings", tmp_path / "x.npy", "--labels", tmp_path / "y.npy", "--ks", "1,5,10")
    ref = class_metrics(x, labels, ks=(1, 5, 10))
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


def test_graded_metrics_agree_with_separate_reference(tmp_path):
    rng = np.random.default_rng(7)
    qy, ry = rng.normal(size=(60, 34)), rng.normal(size=(300, 34))
    proj = rng.normal(size=(34, 12))
    q = (qy @ proj + rng.normal(0, 2, (60, 12))).astype(np.float32)
    r = (ry @ proj + rng.normal(0, 2, (300, 12))).astype(np.float32)
    for name, a in dict(q=q, r=r, qy=qy, ry=ry).items():
        np.save(tmp_path / f"{name}.npy", a)
    ours = dml_eval("--embeddings", tmp_path / "q.npy", "--labels", tmp_path / "qy.npy",
                    "--reference", tmp_path / "r.npy", "--reference-labels", tmp_path / "ry.npy", "--ks", "1,10,50")
    ref = graded_metrics(q, qy, r, ry, ks=(1, 10, 50))
    for key, value in ref.items():
        assert ours[key] == pytest.approx(value, rel=1e-6, abs=1e-9), key

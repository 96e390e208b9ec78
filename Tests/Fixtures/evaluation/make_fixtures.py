"""Writes evaluation cases computed by the Python side (training/dmlkit/evaluation.py, itself checked against
pytorch-metric-learning) for the Swift DMLKit tests to reproduce.

Run from the repo root: .venv/bin/python Tests/Fixtures/evaluation/make_fixtures.py
"""
import json
import pathlib

import numpy as np

from dmlkit.evaluation import class_metrics, graded_metrics

out = pathlib.Path(__file__).parent


def f32(a):
    return np.asarray(a, dtype=np.float32)


def case_class(name, seed, n, d, classes, n_ref=None):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = f32(rng.normal(size=(n, d)) + labels[:, None] * 0.4)
    entry = {"kind": "class", "query": x.tolist(), "query_labels": labels.tolist(), "ks": [1, 2, 4, 8]}
    if n_ref:
        ref_labels = rng.integers(0, classes, n_ref)
        ref = f32(rng.normal(size=(n_ref, d)) + ref_labels[:, None] * 0.4)
        entry.update(reference=ref.tolist(), reference_labels=ref_labels.tolist())
        m = class_metrics(x, labels, ref, ref_labels, ks=entry["ks"])
    else:
        m = class_metrics(x, labels, ks=entry["ks"])
    entry["expected"] = {k: float(v) for k, v in m.items()}
    (out / f"{name}.json").write_text(json.dumps(entry))


def case_graded(name, seed, n, d, label_dim, n_ref=None):
    rng = np.random.default_rng(seed)
    y = f32(rng.normal(size=(n, label_dim)))
    x = f32(np.concatenate([y, rng.normal(size=(n, label_dim))], axis=1)[:, :d] + rng.normal(0, 0.5, (n, d)))
    entry = {"kind": "graded", "query": x.tolist(), "query_labels": y.tolist(), "ks": [1, 5, 10]}
    if n_ref:
        ry = f32(rng.normal(size=(n_ref, label_dim)))
        rx = f32(np.concatenate([ry, rng.normal(size=(n_ref, label_dim))], axis=1)[:, :d] + rng.normal(0, 0.5, (n_ref, d)))
        entry.update(reference=rx.tolist(), reference_labels=ry.tolist())
        m = graded_metrics(x, y, rx, ry, ks=entry["ks"])
    else:
        m = graded_metrics(x, y, ks=entry["ks"])
    entry["expected"] = {k: float(v) for k, v in m.items()}
    (out / f"{name}.json").write_text(json.dumps(entry))


case_class("class_leave_one_out", 0, 150, 6, 9)
case_class("class_query_reference", 1, 40, 5, 6, n_ref=120)
case_graded("graded_leave_one_out", 2, 90, 4, 3)
case_graded("graded_query_reference", 3, 30, 8, 4, n_ref=100)

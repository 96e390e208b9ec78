"""How much of the label space's distance order each people run's embedding keeps, beyond the top K.

nDCG@K and label distance@K only look at the first K results. The log-ratio loss is built to keep the
ratios of all label distances, so this measures the whole order too: per held-out query, Spearman's rho
between embedding distances and label distances to every gallery item (``spearman_all``), and among the
query's 100 label-nearest gallery items only (``spearman_near100``: the fine order of the near ones);
means over queries. Writes ``structure.json`` into each run directory.

    python -m dmlkit.experiments.people_structure RUN_DIR [RUN_DIR ...]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np


def _rowwise_spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman's rho of each row pair (average ranks for ties); NaN where a row is constant."""
    from scipy.stats import rankdata

    ra, rb = rankdata(a, axis=1), rankdata(b, axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    denom = np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (ra * rb).sum(1) / denom


def structure_metrics(query: np.ndarray, gallery: np.ndarray, label_d: np.ndarray, near: int = 100) -> dict:
    """Mean per-query Spearman between Euclidean embedding distances and ``label_d`` (queries x gallery),
    over the whole gallery and over each query's ``near`` label-nearest gallery items."""
    q, g = np.asarray(query, np.float64), np.asarray(gallery, np.float64)
    emb_d = np.maximum((q * q).sum(1)[:, None] + (g * g).sum(1)[None, :] - 2.0 * q @ g.T, 0.0)
    nearest = np.argsort(label_d, axis=1, kind="stable")[:, :near]
    rho_all = _rowwise_spearman(emb_d, label_d)
    rho_near = _rowwise_spearman(np.take_along_axis(emb_d, nearest, 1), np.take_along_axis(label_d, nearest, 1))
    return {"spearman_all": float(np.nanmean(rho_all)), f"spearman_near{near}": float(np.nanmean(rho_near))}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmlkit.experiments.people_structure", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run directories of dmlkit.experiments.people (metrics.json + model.pt)")
    a = p.parse_args(argv)
    import torch

    from ..data.people import load_people
    from .people import PeopleCNN, embed, raw_pixels
    from .people_labels import CaptionLabels, PoseLabels

    torch.set_num_threads(1)
    cache: dict[tuple, tuple] = {}  # (data, label, split) -> (query images, gallery images, label distances)
    done = 0
    for run in a.runs:
        path = os.path.join(run, "metrics.json")
        if not os.path.exists(path) or not os.path.exists(os.path.join(run, "model.pt")):
            continue
        with open(path) as f:
            c = json.load(f)["config"]
        need = c["train"] + c["queries"] + c["gallery"]
        key = (c["data"], c["label"], c["train"], c["queries"], c["gallery"], c.get("caption_label", "first"))
        if key not in cache:
            data = load_people(os.path.join(c["data"], "person_keypoints.json"), os.path.join(c["data"], "images"),
                               limit=need)
            qs, gs = np.arange(c["train"], c["train"] + c["queries"]), np.arange(c["train"] + c["queries"], need)
            if c["label"] == "pose":
                labels = PoseLabels(data.keypoints)
            else:
                mode = c.get("caption_label", "first")
                labels = CaptionLabels(np.load(os.path.join(c["data"], f"caption_minilm_{mode}_first{need}.npy")))
            images = data.images
            cache[key] = (images[qs], images[gs], labels.distances(qs, gs), {})
        q_img, g_img, label_d, bounds = cache[key]
        model = PeopleCNN(int(c["dim"]), q_img.shape[1], int(c.get("width", 32)))
        model.load_state_dict(torch.load(os.path.join(run, "model.pt")))
        out = {c["loss"]: structure_metrics(embed(model, q_img), embed(model, g_img), label_d)}
        torch.manual_seed(int(c["seed"]))
        untrained = PeopleCNN(int(c["dim"]), q_img.shape[1], int(c.get("width", 32)))
        out["random-init CNN"] = structure_metrics(embed(untrained, q_img), embed(untrained, g_img), label_d)
        if "raw" not in bounds:
            bounds["raw"] = structure_metrics(raw_pixels(q_img), raw_pixels(g_img), label_d)
        out["raw pixels (16x16)"] = bounds["raw"]
        tmp = os.path.join(run, f"structure.json.tmp{os.getpid()}")
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1)
        os.replace(tmp, os.path.join(run, "structure.json"))
        print(run, json.dumps(out[c["loss"]]), flush=True)
        done += 1
    if not done:
        print("error: no run directory with metrics.json and model.pt", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

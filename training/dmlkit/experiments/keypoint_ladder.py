"""Where do the losses cross? An information ladder without images: a keypoint MLP trained on the
people data's keypoints, from every labelled joint down to the visible joints with pixel noise,
with the same losses, batches, image budget and held-out metrics as the image rows of
:mod:`dmlkit.experiments.people` (label = pose distance of the full annotation, as there).

    python -m dmlkit.experiments.keypoint_ladder --data ../out/people/synth-s0-n18000 \
        --out ../out/keypoint-ladder --seeds 0 1 2

Each run writes ``metrics.json`` like the image runs (``config.arch`` names the rung), so
:mod:`dmlkit.experiments.people_results` tabulates them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

from ..data.people import load_coco_keypoints
from ..models import MLPEmbedder
from .people import _write_text, fit, graded_metrics_from_distances
from .people_labels import PoseLabels
from .protocols import PROTOCOLS

# rung: (lowest COCO visibility flag the input keeps, Gaussian noise on its coordinates in pixels)
RUNGS = {"labelled": (1, 0.0), "visible": (2, 0.0), "visible+noise1.5px": (2, 1.5), "visible+noise3px": (2, 3.0)}
# rows: (loss or protocol, batch); the image budget of the image rows: 96,000 samples
ROWS = {"log_ratio": ("log_ratio", 32), "binary_triplet": ("binary_triplet", 32),
        "dense_triplet": ("dense_triplet", 32), "paper_binary": ("protocol:paper_binary", 150),
        "log_ratio_first": ("protocol:log_ratio_first", 150)}


def rung_inputs(keypoints: np.ndarray, boxes: np.ndarray, min_visibility: int, noise_px: float,
                seed: int = 0) -> np.ndarray:
    """(N, 51) float32: the kept joints' coordinates relative to the person box (centre, larger side), noise
    added in pixels first, zeros for joints not kept, then the 17 kept flags."""
    k = np.asarray(keypoints, np.float64)
    b = np.asarray(boxes, np.float64)
    keep = k[:, :, 2] >= min_visibility
    xy = k[:, :, :2]
    if noise_px:
        xy = xy + np.random.default_rng(seed).normal(0.0, noise_px, xy.shape)
    side = np.maximum(b[:, 2:].max(1), 1e-6)
    rel = (xy - (b[:, :2] + b[:, 2:] / 2)[:, None, :]) / side[:, None, None]
    rel[~keep] = 0.0
    return np.concatenate([rel.reshape(len(k), 34), keep.astype(np.float64)], axis=1).astype(np.float32)


def run_one(inputs: np.ndarray, labels: PoseLabels, label_qg: np.ndarray, split: tuple[slice, slice, slice],
            row: str, dim: int, seed: int, images: int, neighbours: np.ndarray | None) -> tuple[dict, dict]:
    """Train one keypoint MLP and measure it on the held-out split; returns (metrics, training info)."""
    tr, qs, gs = split
    loss, batch = ROWS[row]
    protocol = loss.split(":", 1)[1] if loss.startswith("protocol:") else None
    normalize = PROTOCOLS[protocol].normalize if protocol else True
    torch.manual_seed(seed)
    model = MLPEmbedder(inputs.shape[1], hidden=(256, 256), dim=dim, normalize=normalize)
    x_train = torch.from_numpy(inputs[tr])
    info = fit(model, lambda idx: (x_train[idx], labels.distances(idx)), labels, max(1, images // batch), seed,
               batch=batch, loss=loss if protocol is None else "log_ratio", neighbours=neighbours,
               protocol=protocol, log=lambda m: None)
    model.eval()
    with torch.no_grad():
        q, g = model(torch.from_numpy(inputs[qs])).numpy(), model(torch.from_numpy(inputs[gs])).numpy()
    return graded_metrics_from_distances(q, g, label_qg), info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmlkit.experiments.keypoint_ladder", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="people data set (dmlkit.data.people)")
    p.add_argument("--out", required=True, help="one directory per run goes here")
    p.add_argument("--split", type=int, nargs=3, default=(8000, 2000, 8000), metavar=("TRAIN", "QUERIES", "GALLERY"))
    p.add_argument("--rungs", nargs="+", choices=list(RUNGS), default=list(RUNGS))
    p.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    p.add_argument("--dim", type=int, default=16)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--images", type=int, default=96000, help="samples per run (steps = images / batch)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    train, queries, gallery = a.split
    records = load_coco_keypoints(os.path.join(a.data, "person_keypoints.json"))
    if len(records) < train + queries + gallery:
        print(f"error: {a.data} has {len(records)} people, need {train + queries + gallery}", file=sys.stderr)
        return 1
    records = records[:train + queries + gallery]
    keypoints = np.stack([r.keypoints for r in records])
    boxes = np.stack([r.bbox for r in records])
    split = (slice(0, train), slice(train, train + queries), slice(train + queries, train + queries + gallery))
    everyone = PoseLabels(keypoints)
    label_qg = everyone.distances(np.arange(len(records))[split[1]], np.arange(len(records))[split[2]])
    labels = PoseLabels(keypoints[split[0]])
    neighbours = labels.neighbours(30)  # the paper_binary sampler needs 30, the others the first 5
    for seed in a.seeds:  # seeds outermost: a cut-short run still has every rung and row at the first seeds
        for rung in a.rungs:
            inputs = rung_inputs(keypoints, boxes, *RUNGS[rung], seed=seed)
            for row in a.rows:
                out = os.path.join(a.out, f"{rung}-{row}-d{a.dim}-s{seed}")
                if os.path.exists(os.path.join(out, "metrics.json")):
                    continue
                metrics, info = run_one(inputs, labels, label_qg, split, row, a.dim, seed, a.images,
                                        neighbours if ROWS[row][0] == "protocol:paper_binary" else neighbours[:, :5])
                loss = ROWS[row][0]
                result = {"config": {"label": "pose", "loss": loss, "dim": a.dim, "seed": seed,
                                     "arch": f"keypoint MLP ({rung})", "images": a.images},
                          "train": info, "metrics": {loss: metrics}}
                os.makedirs(out, exist_ok=True)
                _write_text(os.path.join(out, "metrics.json"), json.dumps(result, indent=1))
                print(f"{rung} {row} s{seed}: ndcg@10 {metrics['ndcg@10']:.4f} "
                      f"label_distance@1 {metrics['label_distance@1']:.4f} ({info['train_seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Distribution of the pose label under each pose normalisation (issue 15, item 1).

    python -m dmlkit.experiments.pose_label_scales --count 600 --out ../training/figures/pose-label-scales.png

Draws ``count`` synthetic people and plots, for ``torso`` (the project's pose distance),
``torso_clipped`` and ``extent``, the histogram of all pairwise pose distances and of each pose's
largest normalised joint radius (the quantity that explodes when a torso is foreshortened); prints
the quantiles it plots.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from ..data.people import sample_person
from ..data.people.distance import SCALES, normalize_poses, pose_distance_matrix


def label_statistics(keypoints: np.ndarray) -> dict:
    """Per scale: the pairwise distances (upper triangle) and each pose's largest joint radius."""
    iu = np.triu_indices(len(keypoints), 1)
    out = {}
    for scale in SCALES:
        d = pose_distance_matrix(keypoints, too_few="nan", scale=scale)[iu]
        q, labelled = normalize_poses(keypoints, scale)
        radius = np.where(labelled, np.linalg.norm(q, axis=-1), 0.0).max(1)
        out[scale] = {"pairwise": d[np.isfinite(d)], "radius": radius}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmlkit.experiments.pose_label_scales", description=__doc__.split("\n")[0])
    p.add_argument("--count", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="PNG to write")
    a = p.parse_args(argv)
    if a.count < 3:
        print("error: --count must be >= 3", file=sys.stderr)
        return 1
    kps = np.stack([sample_person(np.random.default_rng([a.seed, i]), 64).keypoints for i in range(a.count)])
    stats = label_statistics(kps)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), dpi=80)
    summary = {}
    for scale, s in stats.items():
        # each scale in its own units: divide by the median so the shapes (tails) compare
        for ax, key in zip(axes, ("pairwise", "radius")):
            v = s[key] / np.median(s[key])
            ax.hist(np.clip(v, 0, 6), bins=60, histtype="step", density=True, label=scale)
        summary[scale] = {key: {q: round(float(np.quantile(s[key], q / 100)), 3) for q in (50, 99, 100)}
                          for key in ("pairwise", "radius")}
    axes[0].set_title("pairwise pose distance / median")
    axes[1].set_title("largest joint radius per pose / median")
    for ax in axes:
        ax.set_yscale("log")
        ax.set_xlabel("clipped at 6")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(a.out)
    print(json.dumps({"count": a.count, "quantiles (50, 99, 100 %)": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

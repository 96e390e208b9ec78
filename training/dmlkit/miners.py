"""Mining for continuous labels: triplet index tuples from a batch's label distances.

* :func:`dense_triplets` and :func:`binary_triplets` turn a batch's label distances into
  pytorch-metric-learning style ``(anchors, positives, negatives)`` index tuples for the triplet
  baselines; :func:`positional_triplets` reads them from a batch's layout (anchor, positives, negatives).
* The batch samplers live in :mod:`dmlkit.samplers`; they are re-exported here so that the old import
  path ``dmlkit.miners.DenseTripletBatchSampler`` keeps working.
"""

from __future__ import annotations

import torch

from ._checks import check_distance_matrix
from .samplers import (DenseTripletBatchSampler, LabelDistance, PaperBinaryBatchSampler,  # noqa: F401 (old path)
                       euclidean_label_distance, label_neighbours)

def _anchor_rows(n: int, anchors: str) -> torch.Tensor:
    if anchors == "all":
        return torch.arange(n)
    if anchors == "first":
        return torch.zeros(1, dtype=torch.long)
    raise ValueError(f"anchors must be 'all' or 'first', got {anchors!r}")


def dense_triplets(label_distances: torch.Tensor, anchors: str = "all"):
    """All triplets (a, i, j), i, j != a, with D(y_a, y_i) < D(y_a, y_j) strictly.

    These are the dense triplets of the log-ratio loss read as a ranking: i must end up closer to a
    than j. Returns ``(anchor_idx, positive_idx, negative_idx)`` LongTensors.
    """
    n = label_distances.shape[0]
    check_distance_matrix(label_distances, n)
    rows = _anchor_rows(n, anchors)
    d = label_distances[rows].cpu()
    closer = d.unsqueeze(2) < d.unsqueeze(1)  # [a, i, j]: D(a,i) < D(a,j)
    closer[torch.arange(len(rows)), rows, :] = False
    closer[torch.arange(len(rows)), :, rows] = False
    a, i, j = torch.nonzero(closer, as_tuple=True)
    return rows[a], i, j


def binary_triplets(label_distances: torch.Tensor, k: int = 5, anchors: str = "all"):
    """Binary triplets from continuous labels: each anchor's k nearest in the batch are positives,
    every other sample a negative (the binary-supervision baseline of Kim et al.).

    Ties are broken by the lower index. Returns ``(anchor_idx, positive_idx, negative_idx)``.
    """
    n = label_distances.shape[0]
    check_distance_matrix(label_distances, n)
    if not 1 <= k <= n - 2:
        raise ValueError(f"k must be in [1, {n - 2}] for a batch of {n}, got {k}")
    rows = _anchor_rows(n, anchors)
    d = label_distances[rows].double().cpu().clone()
    d[torch.arange(len(rows)), rows] = float("inf")
    order = torch.sort(d, dim=1, stable=True).indices
    positive = torch.zeros_like(d, dtype=torch.bool)
    positive.scatter_(1, order[:, :k], True)
    negative = ~positive
    negative[torch.arange(len(rows)), rows] = False
    pair = positive.unsqueeze(2) & negative.unsqueeze(1)
    a, p, q = torch.nonzero(pair, as_tuple=True)
    return rows[a], p, q


def positional_triplets(n: int, positives: int):
    """Triplets of a batch laid out as ``[anchor, positives..., negatives...]`` (from
    :class:`dmlkit.samplers.PaperBinaryBatchSampler`): (0, p, q) for every positive p in 1..positives
    and every negative q after them, positive-major. Returns ``(anchor_idx, positive_idx, negative_idx)``."""
    if not 1 <= positives <= n - 2:
        raise ValueError(f"positives must be in [1, {n - 2}] for a batch of {n}, got {positives}")
    p = torch.arange(1, positives + 1).repeat_interleave(n - 1 - positives)
    q = torch.arange(positives + 1, n).repeat(positives)
    return torch.zeros_like(p), p, q

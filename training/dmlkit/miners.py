"""Mining for continuous labels: dense-triplet batches and triplet index tuples.

* :class:`DenseTripletBatchSampler` builds the batches of Kim et al. (CVPR 2019): an anchor, its k
  nearest neighbours in label space, and random other samples. It is a ``batch_sampler`` for a
  standard ``torch.utils.data.DataLoader``; the anchor is always the first index of a batch.
* :func:`dense_triplets` and :func:`binary_triplets` turn a batch's label distances into
  pytorch-metric-learning style ``(anchors, positives, negatives)`` index tuples for the triplet
  baselines.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from ._checks import as_label_matrix, check_distance_matrix

LabelDistance = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def euclidean_label_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between label rows of ``a`` (n, L) and ``b`` (m, L), shape (n, m)."""
    return torch.cdist(a.double(), b.double(), compute_mode="donot_use_mm_for_euclid_dist")


def label_neighbours(labels: torch.Tensor, k: int, distance: LabelDistance = euclidean_label_distance,
                     chunk: int = 1024) -> torch.Tensor:
    """Indices (N, k) of each sample's k nearest other samples in label space (self excluded).

    Ties are broken by the lower index so the result is deterministic. Computed in chunks of rows
    so that large datasets never need the full N x N matrix.
    """
    y = as_label_matrix(torch.as_tensor(labels), len(labels))
    n = len(y)
    if not 1 <= k <= n - 1:
        raise ValueError(f"k must be in [1, {n - 1}] for {n} samples, got {k}")
    out = torch.empty(n, k, dtype=torch.long)
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        d = distance(y[rows], y).double()
        d[torch.arange(len(rows)), rows] = float("inf")
        # stable sort on distance gives lowest-index-first among ties
        out[rows] = torch.sort(d, dim=1, stable=True).indices[:, :k]
    return out


class DenseTripletBatchSampler(Sampler[list]):
    """Batches of [anchor, its k label-space neighbours, batch_size - 1 - k random others].

    With ``groups`` = g > 1 a batch holds g such groups, [anchor_1, its neighbours, anchor_2, its
    neighbours, ...] then random others, so that a loss with every sample as an anchor sees g anchors
    whose near neighbours are in the batch (a neighbour already in the batch is not repeated; the
    batch is topped up with random others).

    Args:
        labels: continuous labels, (N,) or (N, L); only used to find neighbours.
        batch_size: samples per batch (>= k + 2, so every batch has at least one random other).
        k: neighbours per anchor (the paper uses 5).
        num_batches: batches per epoch; default ``N // batch_size``.
        seed: base seed; epoch e uses ``seed + e`` so runs are reproducible (call ``set_epoch``).
        distance: label distance function, Euclidean by default (pass e.g. a pose distance).
        neighbours: precomputed (N, >= k) neighbour indices, skipping the search.
        groups: anchors (each with its k neighbours) per batch; batch_size must be >= groups * (k + 1) + 1.

    Anchors are drawn without replacement within an epoch (reshuffled per epoch). Random others are
    drawn without replacement from the samples that are neither the anchor nor its neighbours.
    """

    def __init__(self, labels, batch_size: int, k: int = 5, num_batches: int | None = None, seed: int = 0,
                 distance: LabelDistance = euclidean_label_distance, neighbours: torch.Tensor | None = None,
                 groups: int = 1) -> None:
        n = len(labels)
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        if groups < 1:
            raise ValueError(f"groups must be >= 1, got {groups}")
        if batch_size < groups * (k + 1) + 1:
            raise ValueError(f"batch_size must be >= groups * (k + 1) + 1 = {groups * (k + 1) + 1}, got {batch_size}")
        if batch_size > n:
            raise ValueError(f"batch_size {batch_size} exceeds the {n} samples")
        self.n, self.batch_size, self.k, self.seed, self.epoch = n, batch_size, k, seed, 0
        self.groups = groups
        self.num_batches = num_batches if num_batches is not None else max(1, n // batch_size)
        if self.num_batches < 1:
            raise ValueError(f"num_batches must be >= 1, got {num_batches}")
        if neighbours is None:
            neighbours = label_neighbours(torch.as_tensor(labels), k, distance)
        neighbours = torch.as_tensor(neighbours, dtype=torch.long)
        if neighbours.dim() != 2 or neighbours.shape[0] != n or neighbours.shape[1] < k:
            raise ValueError(f"neighbours must have shape ({n}, >= {k}), got {tuple(neighbours.shape)}")
        self.neighbours = neighbours[:, :k].numpy()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random stream the next iteration uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list]:
        rng = np.random.default_rng(self.seed + self.epoch)
        need = self.num_batches * self.groups
        anchors = np.concatenate([rng.permutation(self.n) for _ in range(-(-need // self.n))])[:need]
        for b in range(self.num_batches):
            batch: list[int] = []
            taken = np.zeros(self.n, dtype=bool)
            for anchor in anchors[b * self.groups:(b + 1) * self.groups]:
                for i in [int(anchor)] + [int(i) for i in self.neighbours[anchor]]:
                    if not taken[i]:
                        taken[i] = True
                        batch.append(i)
            others = rng.choice(np.flatnonzero(~taken), size=self.batch_size - len(batch), replace=False)
            yield batch + [int(i) for i in others]


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

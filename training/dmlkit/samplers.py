"""Batch samplers for continuous labels: which samples a training batch holds.

* :class:`DenseTripletBatchSampler` builds the batches of Kim et al. (CVPR 2019): an anchor, its k
  nearest neighbours in label space, and random other samples (the anchor is always index 0).
* :class:`PaperBinaryBatchSampler` builds the batches of the paper's binary-supervision baseline: an
  anchor, positives drawn from its global top ``top`` in label space, negatives from beyond that rank.

Both are ``batch_sampler`` s for a standard ``torch.utils.data.DataLoader``.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from ._checks import as_label_matrix

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


class _SeededBatchSampler(Sampler[list]):
    """Batches drawn from a seeded stream per epoch: ``set_epoch`` picks the stream, ``len`` is ``num_batches``."""

    seed: int
    epoch: int
    num_batches: int

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random stream the next iteration uses."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches


class DenseTripletBatchSampler(_SeededBatchSampler):
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
        self.neighbours = _neighbour_table(labels, k, distance, neighbours)

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


def _neighbour_table(labels, k: int, distance: LabelDistance, neighbours) -> np.ndarray:
    """Given or searched (N, >= k) label-space neighbour indices, checked, cut to k columns."""
    n = len(labels)
    if neighbours is None:
        neighbours = label_neighbours(torch.as_tensor(labels), k, distance)
    neighbours = torch.as_tensor(neighbours, dtype=torch.long)
    if neighbours.dim() != 2 or neighbours.shape[0] != n or neighbours.shape[1] < k:
        raise ValueError(f"neighbours must have shape ({n}, >= {k}), got {tuple(neighbours.shape)}")
    return neighbours[:, :k].numpy()


class PaperBinaryBatchSampler(_SeededBatchSampler):
    """Batches of the paper's binary-supervision baseline (Kim et al., CVPR 2019, official code):
    ``[anchor, positives..., negatives...]`` where the ``positives`` are drawn without replacement from
    the anchor's ``top`` nearest samples in label space over the whole training set, and the
    ``batch_size - 1 - positives`` negatives from the samples beyond rank ``top``.

    Train with :func:`dmlkit.miners.positional_triplets` (anchor 0 x every positive x every negative),
    e.g. ``TripletMarginLoss(miner="positional", positives=5)``.

    Args:
        labels: continuous labels (N,) or (N, L); only used to find neighbours.
        batch_size: samples per batch (the paper: 150).
        positives: positives per batch (the paper: 5).
        top: rank in label space up to which a sample counts as a positive (the paper: 30).
        num_batches, seed, distance, neighbours: as for :class:`DenseTripletBatchSampler`
            (``neighbours`` must then hold >= ``top`` columns).
    """

    def __init__(self, labels, batch_size: int = 150, positives: int = 5, top: int = 30,
                 num_batches: int | None = None, seed: int = 0, distance: LabelDistance = euclidean_label_distance,
                 neighbours: torch.Tensor | None = None) -> None:
        n = len(labels)
        if not 1 <= positives <= top:
            raise ValueError(f"positives must be in [1, top={top}], got {positives}")
        if batch_size < positives + 2:
            raise ValueError(f"batch_size must be >= positives + 2 = {positives + 2}, got {batch_size}")
        if n - 1 - top < batch_size - 1 - positives:
            raise ValueError(f"{n} samples leave {n - 1 - top} beyond rank {top}, fewer than the "
                             f"{batch_size - 1 - positives} negatives a batch needs")
        self.n, self.batch_size, self.positives, self.top = n, batch_size, positives, top
        self.seed, self.epoch = seed, 0
        self.num_batches = num_batches if num_batches is not None else max(1, n // batch_size)
        if self.num_batches < 1:
            raise ValueError(f"num_batches must be >= 1, got {num_batches}")
        self.neighbours = _neighbour_table(labels, top, distance, neighbours)

    def __iter__(self) -> Iterator[list]:
        rng = np.random.default_rng(self.seed + self.epoch)
        anchors = np.concatenate([rng.permutation(self.n) for _ in range(-(-self.num_batches // self.n))])
        for anchor in anchors[:self.num_batches]:
            near = self.neighbours[anchor]
            pos = rng.choice(near, size=self.positives, replace=False)
            beyond = np.ones(self.n, dtype=bool)
            beyond[near] = False
            beyond[anchor] = False
            neg = rng.choice(np.flatnonzero(beyond), size=self.batch_size - 1 - self.positives, replace=False)
            yield [int(anchor)] + [int(i) for i in pos] + [int(i) for i in neg]

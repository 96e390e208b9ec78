"""Baselines for comparison.

* Class labels: :class:`ContrastiveLoss`, :class:`TripletMarginLoss`, :class:`MultiSimilarityLoss`
  and :class:`ProxyAnchorLoss` are pytorch-metric-learning's classes, re-exported unchanged.
* Continuous labels: :class:`LabelTripletLoss` mines triplet indices from label distances (or from the
  batch layout, ``dmlkit.miners``) and applies a margin hinge with a :mod:`dmlkit.distances` measure
  and a :mod:`dmlkit.reducers` reduction. :class:`BinaryTripletLoss` and
  :class:`DenseTripletMarginLoss` are its two usual miners; their defaults (Euclidean distance on
  L2-normalised embeddings, mean over violated triplets) are PML's ``TripletMarginLoss`` defaults, so
  they give the same numbers as PML on the same triplets.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.losses import ContrastiveLoss, MultiSimilarityLoss, ProxyAnchorLoss, TripletMarginLoss

from .._checks import as_label_matrix, check_distance_matrix, check_embeddings
from ..distances import Euclidean, make_distance
from ..miners import binary_triplets, dense_triplets, euclidean_label_distance, positional_triplets
from ..reducers import MeanOverPositive, make_reducer

__all__ = ["ContrastiveLoss", "TripletMarginLoss", "MultiSimilarityLoss", "ProxyAnchorLoss", "LabelTripletLoss",
           "BinaryTripletLoss", "DenseTripletMarginLoss"]

MINERS = ("binary", "dense", "positional")


class LabelTripletLoss(torch.nn.Module):
    """Triplet margin loss for continuous labels: ``[d(a, p) - d(a, n) + margin]_+`` over mined
    triplets, reduced by ``reducer``.

    Args:
        margin: the hinge margin, in the units of ``distance`` (squared units for ``SquaredEuclidean``).
        miner: ``"binary"`` (each anchor's ``k`` label-space nearest in the batch are positives, the rest
            negatives), ``"dense"`` (every (a, i, j) with D(y_a, y_i) < D(y_a, y_j)) or ``"positional"``
            (the batch is ``[anchor, positives..., negatives...]`` with ``positives`` positives, as
            :class:`dmlkit.samplers.PaperBinaryBatchSampler` lays it out; labels are not used).
        k: positives per anchor for ``"binary"``; positives: for ``"positional"``.
        anchors: ``"all"`` or ``"first"`` (binary and dense miners).
        distance: a :class:`dmlkit.distances.Distance` or a spec for ``make_distance``; default
            ``Euclidean(normalize=True)``. A similarity (dot, cosine) reverses the hinge.
        reducer: a :class:`dmlkit.reducers.Reducer` or its name; default ``MeanOverPositive()``.
    """

    def __init__(self, margin: float = 0.2, miner: str = "binary", k: int = 5, positives: int = 5,
                 anchors: str = "all", distance=None, reducer=None) -> None:
        super().__init__()
        if miner not in MINERS:
            raise ValueError(f"miner must be one of {', '.join(MINERS)}, got {miner!r}")
        if anchors not in ("all", "first"):
            raise ValueError(f"anchors must be 'all' or 'first', got {anchors!r}")
        if not margin >= 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.margin, self.miner, self.k, self.positives, self.anchors = float(margin), miner, k, positives, anchors
        self.distance = make_distance(distance) if distance is not None else Euclidean(normalize=True)
        self.reducer = make_reducer(reducer) if reducer is not None else MeanOverPositive()

    def mine(self, n: int, label_distances: torch.Tensor | None):
        """``(anchor, positive, negative)`` index tensors for a batch of ``n``."""
        if self.miner == "positional":
            return positional_triplets(n, self.positives)
        if self.miner == "binary":
            return binary_triplets(label_distances, self.k, self.anchors)
        return dense_triplets(label_distances, self.anchors)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None,
                label_distances: torch.Tensor | None = None) -> torch.Tensor:
        """Reduced hinge over the mined triplets; pass labels or a label distance matrix (the
        positional miner ignores them)."""
        check_embeddings(embeddings, min_rows=3)
        n = embeddings.shape[0]
        if (labels is None) == (label_distances is None):
            raise ValueError("pass exactly one of labels or label_distances")
        if label_distances is None:
            y = as_label_matrix(labels, n)
            label_distances = euclidean_label_distance(y, y)
        check_distance_matrix(label_distances, n)
        a, p, q = (t.to(embeddings.device) for t in self.mine(n, label_distances))
        d = self.distance.matrix(embeddings)
        return self.reducer(self.distance.margin_violation(d[a, p], d[a, q], self.margin))


class BinaryTripletLoss(LabelTripletLoss):
    """Triplet loss with binary supervision from continuous labels: the k nearest samples in label
    space within the batch are positives, the rest negatives. (This is a graded, hard-mined variant,
    not the paper's binary baseline: that one is ``LabelTripletLoss(miner="positional")`` on
    :class:`~dmlkit.samplers.PaperBinaryBatchSampler` batches, see ``dmlkit.experiments.protocols``.)"""

    def __init__(self, k: int = 5, margin: float = 0.2, anchors: str = "all", distance=None, reducer=None) -> None:
        super().__init__(margin, "binary", k=k, anchors=anchors, distance=distance, reducer=reducer)


class DenseTripletMarginLoss(LabelTripletLoss):
    """Triplet margin loss over the dense triplets the log-ratio loss uses: for every (a, i, j) with
    D(y_a, y_i) < D(y_a, y_j), embed i closer to a than j by ``margin``."""

    def __init__(self, margin: float = 0.05, anchors: str = "all", distance=None, reducer=None) -> None:
        super().__init__(margin, "dense", anchors=anchors, distance=distance, reducer=reducer)

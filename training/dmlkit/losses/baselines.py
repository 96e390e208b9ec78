"""Baselines for comparison, taken from pytorch-metric-learning (not rewritten).

* Class labels: :class:`ContrastiveLoss`, :class:`TripletMarginLoss`, :class:`MultiSimilarityLoss`
  and :class:`ProxyAnchorLoss` are PML's classes, re-exported unchanged.
* Continuous labels: :class:`BinaryTripletLoss` and :class:`DenseTripletMarginLoss` mine triplet
  indices from label distances (``dmlkit.miners``) and hand them to PML's ``TripletMarginLoss``.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning.losses import ContrastiveLoss, MultiSimilarityLoss, ProxyAnchorLoss, TripletMarginLoss

from .._checks import as_label_matrix, check_distance_matrix, check_embeddings
from ..miners import binary_triplets, dense_triplets, euclidean_label_distance

__all__ = ["ContrastiveLoss", "TripletMarginLoss", "MultiSimilarityLoss", "ProxyAnchorLoss", "BinaryTripletLoss",
           "DenseTripletMarginLoss"]


class _LabelDistanceTripletLoss(torch.nn.Module):
    """Shared plumbing: label distances -> triplet indices -> PML TripletMarginLoss."""

    def __init__(self, margin: float, anchors: str, **pml_kwargs) -> None:
        super().__init__()
        self.anchors = anchors
        self.triplet = TripletMarginLoss(margin=margin, **pml_kwargs)

    def _mine(self, label_distances: torch.Tensor):
        raise NotImplementedError

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None,
                label_distances: torch.Tensor | None = None) -> torch.Tensor:
        """Triplet margin loss over the mined triplets; pass labels or a label distance matrix."""
        check_embeddings(embeddings, min_rows=3)
        n = embeddings.shape[0]
        if (labels is None) == (label_distances is None):
            raise ValueError("pass exactly one of labels or label_distances")
        if label_distances is None:
            y = as_label_matrix(labels, n)
            label_distances = euclidean_label_distance(y, y)
        check_distance_matrix(label_distances, n)
        a, p, q = self._mine(label_distances)
        dev = embeddings.device
        # PML needs labels only for shape checks once indices are given
        dummy = torch.arange(n, device=dev)
        return self.triplet(embeddings, dummy, indices_tuple=(a.to(dev), p.to(dev), q.to(dev)))


class BinaryTripletLoss(_LabelDistanceTripletLoss):
    """Triplet loss with binary supervision from continuous labels: the k nearest samples in label
    space are positives, the rest negatives (PML ``TripletMarginLoss`` on those triplets)."""

    def __init__(self, k: int = 5, margin: float = 0.2, anchors: str = "all", **pml_kwargs) -> None:
        super().__init__(margin, anchors, **pml_kwargs)
        self.k = k

    def _mine(self, label_distances):
        return binary_triplets(label_distances, self.k, self.anchors)


class DenseTripletMarginLoss(_LabelDistanceTripletLoss):
    """Triplet margin loss over the dense triplets the log-ratio loss uses: for every (a, i, j) with
    D(y_a, y_i) < D(y_a, y_j), embed i closer to a than j by ``margin``."""

    def __init__(self, margin: float = 0.05, anchors: str = "all", **pml_kwargs) -> None:
        super().__init__(margin, anchors, **pml_kwargs)

    def _mine(self, label_distances):
        return dense_triplets(label_distances, self.anchors)

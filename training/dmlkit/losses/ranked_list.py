"""Ranked List Loss (Wang et al., "Ranked List Loss for Deep Metric Learning", TPAMI 2021).

For every anchor i of a batch (L2-normalised embeddings, Euclidean distance d):

* P*_i = positives j != i with d_ij > alpha - margin   (not yet inside the positive boundary)
* N*_i = negatives j with d_ij < alpha                 (not yet beyond the negative boundary)
* L_P(i) = sum_{j in P*} w_ij (d_ij - (alpha - margin)) / sum_{j in P*} w_ij,  w_ij = exp(Tp (d_ij - (alpha - margin)))
* L_N(i) = sum_{j in N*} w_ij (alpha - d_ij) / sum_{j in N*} w_ij,             w_ij = exp(Tn (alpha - d_ij))
* L(i) = (1 - imbalance) L_P(i) + imbalance L_N(i); the batch loss is the mean over anchors.

Hyperparameter names follow pytorch-metric-learning's ``RankedListLoss`` so configs move between them.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .._checks import check_class_labels, check_embeddings
from ..distances import euclidean


def _weighted_row_mean(values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor,
                       extra_denominator: float) -> torch.Tensor:
    """Per row: sum_mask exp(logits) * values / (sum_mask exp(logits) + extra_denominator).

    Rows with an empty mask give 0. The weights are shifted by the row maximum before exp, so large
    temperatures (Tn = 10 and beyond) cannot overflow; the shift cancels in the ratio, so detaching
    it leaves the gradient exact.
    """
    masked = torch.where(mask, logits, torch.full_like(logits, float("-inf")))
    shift = masked.max(dim=1, keepdim=True).values.detach()
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    weights = torch.exp(masked - shift)  # exactly 0 (with zero gradient) outside the mask
    numerator = (weights * values).sum(1)
    denominator = weights.sum(1)
    if extra_denominator > 0:
        denominator = denominator + extra_denominator * torch.exp(-shift.squeeze(1))
    nonempty = denominator > 0
    safe = torch.where(nonempty, denominator, torch.ones_like(denominator))
    return torch.where(nonempty, numerator / safe, torch.zeros_like(numerator))


class RankedListLoss(torch.nn.Module):
    """Ranked List Loss with the paper's defaults (margin 0.4, alpha 1.2, Tn 10, Tp 0).

    Args:
        margin: gap ``m`` between the positive boundary ``alpha - m`` and the negative boundary ``alpha``.
        Tn: temperature of the negative weights (0 gives uniform weights).
        imbalance: ``lambda``, weight of the negative part; the positive part gets ``1 - lambda``.
        alpha: negative boundary; ``None`` means ``1 + margin / 2`` (the paper's and PML's default).
        Tp: temperature of the positive weights (0, the default, gives uniform weights).
        eps: added to every entry of a weight row before normalising, as pytorch-metric-learning
            does (its denominator becomes ``sum w + batch * 1e-5``). The default 0 is the paper's
            exact normalisation; set ``eps=1e-5`` to reproduce PML's numbers.

    Differences from pytorch-metric-learning's implementation (both documented in tests):
    a negative at distance exactly 0 (a collapsed pair, e.g. all-equal embeddings) is in N* here and
    is pushed away, while PML's ``N_star > 0`` test drops it; large ``Tn`` does not overflow here.

    An anchor without positives (or negatives) in the batch contributes 0 for that part, never NaN.
    """

    def __init__(self, margin: float = 0.4, Tn: float = 10.0, imbalance: float = 0.5,
                 alpha: float | None = None, Tp: float = 0.0, eps: float = 0.0) -> None:
        super().__init__()
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if not 0.0 <= imbalance <= 1.0:
            raise ValueError(f"imbalance must be in [0, 1], got {imbalance}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.margin = float(margin)
        self.alpha = float(1.0 + margin / 2.0 if alpha is None else alpha)
        self.Tn = float(Tn)
        self.Tp = float(Tp)
        self.imbalance = float(imbalance)
        self.eps = float(eps)

    def per_anchor(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss of every anchor, shape (batch,); ``forward`` is its mean."""
        check_embeddings(embeddings)
        check_class_labels(labels, embeddings.shape[0])
        x = F.normalize(embeddings, p=2, dim=1)
        dist = euclidean(x)
        n = dist.shape[0]
        labels = labels.to(embeddings.device)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        not_self = ~torch.eye(n, dtype=torch.bool, device=dist.device)
        pos_boundary = self.alpha - self.margin
        pos_mask = same & not_self & (dist > pos_boundary)
        neg_mask = ~same & (dist < self.alpha)
        loss_p = _weighted_row_mean(dist - pos_boundary, self.Tp * (dist - pos_boundary), pos_mask, n * self.eps)
        loss_n = _weighted_row_mean(self.alpha - dist, self.Tn * (self.alpha - dist), neg_mask, n * self.eps)
        return (1.0 - self.imbalance) * loss_p + self.imbalance * loss_n

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean Ranked List Loss over the anchors of the batch (a scalar)."""
        return self.per_anchor(embeddings, labels).mean()


class MultiHeadRankedListLoss(torch.nn.Module):
    """Ranked List Loss applied to several embedding heads, averaged over heads.

    The model emits the heads concatenated, shape (batch, sum(head_dims)); each head is normalised
    and ranked on its own during training. At test time use the whole concatenated vector (see
    ``dmlkit.models.MultiHeadEmbedder``), which is the paper's multi-head ensemble.
    """

    def __init__(self, head_dims: Sequence[int], **rll_kwargs) -> None:
        super().__init__()
        head_dims = [int(d) for d in head_dims]
        if not head_dims or any(d < 1 for d in head_dims):
            raise ValueError(f"head_dims must be a non-empty list of positive sizes, got {head_dims}")
        self.head_dims = head_dims
        self.rll = RankedListLoss(**rll_kwargs)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean over heads of the Ranked List Loss of each head's slice of ``embeddings``."""
        check_embeddings(embeddings)
        if embeddings.shape[1] != sum(self.head_dims):
            raise ValueError(f"embeddings have {embeddings.shape[1]} columns but head_dims sum to {sum(self.head_dims)}")
        heads = torch.split(embeddings, self.head_dims, dim=1)
        return torch.stack([self.rll(h, labels) for h in heads]).mean()

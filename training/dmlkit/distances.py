"""Pairwise distances with gradients that stay finite at zero distance."""

from __future__ import annotations

import torch


def squared_euclidean(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Matrix of squared Euclidean distances ``||x_i - y_j||^2``, clamped at 0.

    Uses the Gram form (one matmul, O(n^2) memory) so it scales to large GPU batches; rounding can
    make tiny distances slightly negative, hence the clamp. When ``y`` is omitted the diagonal is
    exactly zero.
    """
    same = y is None
    y = x if y is None else y
    sq = (x * x).sum(1, keepdim=True) + (y * y).sum(1).unsqueeze(0) - 2.0 * (x @ y.t())
    sq = sq.clamp_min(0.0)
    if same:
        sq = sq * (1.0 - torch.eye(len(x), dtype=x.dtype, device=x.device))
    return sq


def safe_sqrt(sq: torch.Tensor) -> torch.Tensor:
    """Square root whose gradient at 0 is 0 instead of inf (0 is a valid subgradient of ``||.||``)."""
    positive = sq > 0
    return torch.where(positive, torch.sqrt(torch.where(positive, sq, torch.ones_like(sq))), torch.zeros_like(sq))


def euclidean(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Matrix of Euclidean distances ``||x_i - y_j||`` with a finite gradient everywhere."""
    return safe_sqrt(squared_euclidean(x, y))

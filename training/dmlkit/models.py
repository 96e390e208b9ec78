"""Small embedders for training: an MLP and its multi-head variant.

Both split into ``features`` (backbone) and ``embed`` (head + L2 normalisation) so that regularisers
working on head inputs (``IntraClassRankingLoss``) can reach the head.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class L2Normalize(nn.Module):
    """Row-wise L2 normalisation as a module, so it shows up in traced graphs (export)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(x, p=2, dim=1)


def _mlp(in_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    layers, prev = [], in_dim
    for h in hidden:
        layers += [nn.Linear(prev, h), nn.ReLU()]
        prev = h
    return nn.Sequential(*layers)


class MLPEmbedder(nn.Module):
    """``x -> Linear/ReLU stack -> Linear -> (L2 normalise)``.

    Args:
        in_dim: input features.
        hidden: widths of the hidden layers (at least one).
        dim: embedding size.
        normalize: L2-normalise the output (the runtime's embeddings are unit vectors).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int] = (128,), dim: int = 32, normalize: bool = True) -> None:
        super().__init__()
        hidden = list(hidden)
        if not hidden:
            raise ValueError("hidden must list at least one layer width")
        self.backbone = _mlp(in_dim, hidden)
        self.head = nn.Linear(hidden[-1], dim)
        self.norm = L2Normalize() if normalize else nn.Identity()
        self.in_dim, self.dim = in_dim, dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone output (the head's input)."""
        return self.backbone(x)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """Head + normalisation applied to backbone features."""
        return self.norm(self.head(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.features(x))


class MultiHeadEmbedder(MLPEmbedder):
    """MLP backbone with several linear heads; the output is the concatenation of the heads, each
    L2-normalised (train with ``MultiHeadRankedListLoss(head_dims)``; use the whole vector at test
    time). ``dim`` is the total size ``sum(head_dims)``."""

    def __init__(self, in_dim: int, hidden: Sequence[int] = (128,), head_dims: Sequence[int] = (16, 16)) -> None:
        head_dims = [int(d) for d in head_dims]
        if not head_dims or any(d < 1 for d in head_dims):
            raise ValueError(f"head_dims must be positive sizes, got {head_dims}")
        super().__init__(in_dim, hidden, sum(head_dims), normalize=False)
        self.head_dims = head_dims
        self.head = nn.ModuleList(nn.Linear(hidden[-1], d) for d in head_dims)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        return torch.cat([F.normalize(h(features), dim=1) for h in self.head], dim=1)

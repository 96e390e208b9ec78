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


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3/BN/ReLU, conv3x3/BN, plus the input (a 1x1 conv/BN when the stride
    or width changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class ResNetEmbedder(nn.Module):
    """A ResNet-18-style image embedder for small inputs, from the ops the runtime runs (conv, batch
    norm, ReLU, residual add, flatten, linear): a stride-2 conv3x3 stem, four stages of two
    :class:`BasicBlock` s (widths w, 2w, 4w, 8w; stride 1, 2, 2, 2), then flatten, linear to ``dim`` and
    (optionally) L2 normalisation.

    The map is flattened rather than globally pooled: a pose embedding needs to know where things are.
    ``size`` must be a multiple of 16 (the total stride); the final map is size/16 square. The default
    width 16 keeps a 112 px model near 0.15 GFLOP per image, trainable on two CPU cores.
    """

    def __init__(self, dim: int = 128, size: int = 112, width: int = 16, blocks: Sequence[int] = (2, 2, 2, 2),
                 normalize: bool = True) -> None:
        super().__init__()
        if size % 16 or size < 16:
            raise ValueError(f"size must be a positive multiple of 16, got {size}")
        if width < 1 or dim < 1 or len(blocks) != 4 or min(blocks) < 1:
            raise ValueError(f"bad ResNetEmbedder shape: dim {dim}, width {width}, blocks {tuple(blocks)}")
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU())
        layers, cin = [], width
        for stage, count in enumerate(blocks):
            cout = width * 2 ** stage
            for b in range(count):
                layers.append(BasicBlock(cin, cout, stride=2 if stage > 0 and b == 0 else 1))
                cin = cout
        self.stages = nn.Sequential(*layers)
        side = size // 16
        self.head = nn.Linear(cin * side * side, dim)
        self.norm = L2Normalize() if normalize else nn.Identity()
        self.dim, self.size = dim, size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.head(torch.flatten(self.stages(self.stem(x)), 1)))

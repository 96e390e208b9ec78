"""Intra-class ranking over synthesized samples (after Liu et al., "Deep Metric Learning Assisted by
Intra-variance in A Semi-supervised View of Learning", Eng. Appl. of AI, 2024).

Idea: a main loss (RLL, Proxy Anchor, ...) squeezes each class together and so erases the variation
inside a class. The paper synthesizes samples from a real one at increasing intensities and asks the
network to keep them ranked by intensity: the further a sample was moved, the further its embedding
must lie from the original's. The synthesized samples carry no label (the "semi-supervised view");
their order is the self-supervised signal.

Here, for a feature vector r (the input of the embedding head) and a random unit direction u:

    r_j = r + j * a * s * u,   j = 1..J,   s = ||r|| if relative_step else 1
    d_j = || g(r_j) - g(r) ||  with g = L2-normalised embedding head, d_0 = 0
    loss = mean over samples and j = 0..J-1 of max(0, d_j - d_{j+1} + margin)

Gaps in the paper and the choices made here
-------------------------------------------
* Where to synthesize: in the feature space before the embedding head. Synthesizing in the final
  embedding space would make d_j = j * a by construction, with no gradient for the network.
* Directions: one direction u per sample, drawn uniformly on the unit sphere and shared by all J
  intensities, so the samples lie on one ray and "more intense" is unambiguous. A fresh u is drawn
  every call (``generator`` makes it reproducible).
* Intensity scale: the step is relative to ||r|| by default, so it does not depend on the feature
  scale the backbone happens to learn. The scale ||r|| is detached: it sets how far to move, and
  the network should not lower the regulariser by shrinking its features.
* Which samples: every sample of the batch (the paper restricts synthesis to samples "satisfying
  certain conditions" without a precise rule usable here).
* Ranking loss: hinge on adjacent intensities with margin, including the original at d_0 = 0 so
  the first level is pushed at least ``margin`` away (otherwise a collapsed head satisfies all
  orderings with equality).
* Use: as a regulariser, ``total = main_loss + weight * IntraClassRankingLoss(...)``.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .._checks import check_embeddings
from ..distances import safe_sqrt


class IntraClassRankingLoss(torch.nn.Module):
    """Ranking regulariser over samples synthesized at J increasing intensities.

    Args:
        levels: number J of synthesized intensities per sample (>= 1).
        step: intensity increment ``a``.
        margin: required gap between the distances of consecutive intensities.
        relative_step: scale the step by each feature vector's norm.

    ``forward(head, features, generator=None)``: ``head`` maps features (batch, F) to embeddings,
    ``features`` are the head's inputs for the real samples.
    """

    def __init__(self, levels: int = 3, step: float = 0.1, margin: float = 0.02, relative_step: bool = True) -> None:
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        if not step > 0:
            raise ValueError(f"step must be > 0, got {step}")
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        self.levels = int(levels)
        self.step = float(step)
        self.margin = float(margin)
        self.relative_step = relative_step

    def synthesize(self, features: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Synthesized features, shape (J, batch, F): ``r + j * a * s * u`` for j = 1..J."""
        check_embeddings(features, name="features", min_rows=1)
        u = torch.randn(features.shape, generator=generator, dtype=features.dtype, device="cpu").to(features.device)
        u = F.normalize(u, dim=1)
        scale = features.norm(dim=1, keepdim=True).detach() if self.relative_step else 1.0
        j = torch.arange(1, self.levels + 1, dtype=features.dtype, device=features.device).view(-1, 1, 1)
        return features.unsqueeze(0) + j * self.step * scale * u.unsqueeze(0)

    def ranking_loss(self, original: torch.Tensor, synthesized: torch.Tensor) -> torch.Tensor:
        """Hinge ranking loss given the original embeddings (batch, E) and synthesized ones (J, batch, E)."""
        g0 = F.normalize(original, dim=-1)
        gj = F.normalize(synthesized, dim=-1)
        # (J+1, batch) distances to the original; d_0 = 0 by definition
        sq = (gj - g0.unsqueeze(0)).pow(2).sum(-1)
        d = torch.cat([torch.zeros_like(sq[:1]), safe_sqrt(sq)], dim=0)
        return F.relu(d[:-1] - d[1:] + self.margin).mean()

    def forward(self, head: Callable[[torch.Tensor], torch.Tensor], features: torch.Tensor,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Regulariser value for a batch of head inputs ``features`` (a scalar)."""
        synthesized = self.synthesize(features, generator)
        n, dim = features.shape
        embedded = head(torch.cat([features, synthesized.reshape(-1, dim)], dim=0))
        original, rest = embedded[:n], embedded[n:].reshape(self.levels, n, -1)
        return self.ranking_loss(original, rest)

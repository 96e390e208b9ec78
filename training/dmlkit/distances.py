"""Pairwise distances with gradients that stay finite at zero distance: plain functions for label
spaces and large matrices, and :class:`Distance` objects that losses take (like pytorch-metric-learning's
``distances``)."""

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


def _pairwise_squared(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """Squared distances from explicit differences: exact for near-duplicates (which matters inside a
    log) at O(n m d) memory, fine for training batches."""
    y = x if y is None else y
    return (x.unsqueeze(1) - y.unsqueeze(0)).pow(2).sum(-1)


class Distance:
    """A pairwise distance or similarity between embeddings, as an object a loss takes (the role of
    pytorch-metric-learning's ``distances``).

    ``normalize`` L2-normalises the rows first. ``is_similarity`` says which way is "closer": a
    distance shrinks, a similarity grows. ``matrix(x, y=None)`` returns the (n, m) matrix.
    """

    is_similarity = False

    def __init__(self, normalize: bool = False) -> None:
        self.normalize = bool(normalize)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.normalize(x, dim=1) if self.normalize else x

    def matrix(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self._compute(self._prepare(x), None if y is None else self._prepare(y))

    def _compute(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def margin_violation(self, closer: torch.Tensor, farther: torch.Tensor, margin: float) -> torch.Tensor:
        """Hinge ``[closer - farther + margin]_+`` in this measure's direction (for a similarity, the
        pair that should be closer must be more similar)."""
        gap = farther - closer if self.is_similarity else closer - farther
        return torch.relu(gap + margin)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(normalize={self.normalize})"


class SquaredEuclidean(Distance):
    """``||x_i - y_j||^2`` (PML: ``LpDistance(power=2)``)."""

    def _compute(self, x, y):
        return _pairwise_squared(x, y)


class Euclidean(Distance):
    """``||x_i - y_j||`` with a finite gradient at 0 (PML: ``LpDistance()``)."""

    def _compute(self, x, y):
        return safe_sqrt(_pairwise_squared(x, y))


class DotProduct(Distance):
    """``x_i . y_j`` as a similarity; with ``normalize=True`` it is the cosine similarity (PML:
    ``DotProductSimilarity`` / ``CosineSimilarity``)."""

    is_similarity = True

    def _compute(self, x, y):
        return x @ (x if y is None else y).t()


def Cosine() -> DotProduct:  # noqa: N802 - reads like the class it builds
    """Cosine similarity: the dot product of L2-normalised rows."""
    return DotProduct(normalize=True)


DISTANCES = {"squared_euclidean": SquaredEuclidean, "euclidean": Euclidean, "dot": DotProduct}


def make_distance(spec) -> Distance:
    """A :class:`Distance` from itself, a name (``squared_euclidean``, ``euclidean``, ``dot``, ``cosine``)
    or a dict ``{"name": ..., "normalize": bool}`` (configs)."""
    if isinstance(spec, Distance):
        return spec
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or "name" not in spec:
        raise ValueError(f"a distance is a Distance, a name or a {{name, normalize}} dict, got {spec!r}")
    name, normalize = spec["name"], bool(spec.get("normalize", False))
    if name == "cosine":
        return DotProduct(normalize=True)
    if name not in DISTANCES:
        raise ValueError(f"unknown distance {name!r} (known: {', '.join(sorted(DISTANCES))}, cosine)")
    return DISTANCES[name](normalize=normalize)

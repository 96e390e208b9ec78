"""How a loss turns its per-triplet (or per-pair) terms into one number, as an object the loss takes
(the role of pytorch-metric-learning's ``reducers``).

A reducer gets the 1-D tensor of terms and returns a scalar. An empty tensor reduces to 0 with a
gradient path (so a batch without triplets trains on, it does not crash or give NaN).
"""

from __future__ import annotations

import torch


class Reducer:
    """Base class: ``reducer(terms) -> scalar``."""

    def __call__(self, terms: torch.Tensor) -> torch.Tensor:
        if terms.dim() != 1:
            raise ValueError(f"a reducer takes a 1-D tensor of terms, got shape {tuple(terms.shape)}")
        if terms.numel() == 0:
            return terms.sum()
        return self._reduce(terms)

    def _reduce(self, terms: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def from_sum(self, total: torch.Tensor, count: int) -> torch.Tensor:
        """The reduction from the sum and number of the terms alone, for losses that compute the sum
        in closed form (log-ratio); ``NotImplementedError`` when the reducer needs the terms."""
        raise NotImplementedError(f"{type(self).__name__} needs the individual terms")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class MeanReducer(Reducer):
    """Mean over all terms, zero or not (the paper protocol's "mean over all triplets")."""

    def _reduce(self, terms):
        return terms.mean()

    def from_sum(self, total, count):
        return total / count if count else total * 0


class SumReducer(Reducer):
    """Sum of all terms."""

    def _reduce(self, terms):
        return terms.sum()

    def from_sum(self, total, count):
        return total


class MeanOverPositive(Reducer):
    """Mean over the terms that are > 0 only (violated triplets; PML's ``AvgNonZeroReducer``). Zero
    when no term is positive."""

    def _reduce(self, terms):
        positive = terms > 0
        count = positive.sum()
        if count == 0:
            return terms.sum() * 0
        return torch.where(positive, terms, torch.zeros_like(terms)).sum() / count


REDUCERS = {"mean": MeanReducer, "sum": SumReducer, "mean_over_positive": MeanOverPositive}


def make_reducer(spec) -> Reducer:
    """A :class:`Reducer` from itself or a name (``mean``, ``sum``, ``mean_over_positive``)."""
    if isinstance(spec, Reducer):
        return spec
    if spec not in REDUCERS:
        raise ValueError(f"unknown reducer {spec!r} (known: {', '.join(sorted(REDUCERS))})")
    return REDUCERS[spec]()

"""Log-ratio loss (Kim et al., "Deep Metric Learning Beyond Binary Supervision", CVPR 2019).

For an anchor a and two other samples i, j of a batch:

    l(a, i, j) = ( log D(f_a, f_i) / D(f_a, f_j)  -  log D(y_a, y_i) / D(y_a, y_j) )^2

with embeddings f and continuous labels y (any vectors with a distance: pose keypoints, caption
embeddings, scalars). The batch loss is the mean of l over all triplets a, i < j with i, j != a, for
the chosen anchors.

Which D and which epsilon
-------------------------
* D is the **squared** Euclidean distance in both spaces by default, as in the paper;
  ``distance="euclidean"`` uses the plain distance (the loss is then exactly 1/4 of the squared
  version's, because log D^2 = 2 log D).
* Every log is taken of ``D + eps`` with ``eps = 1e-6`` so that duplicate labels (D(y_a, y_i) = 0) and
  coincident embeddings give a large but finite loss instead of inf/NaN. The loss is therefore
  invariant to rescaling the labels only up to that epsilon.
* Embeddings are used as given (the log ratio is already scale invariant); pass
  ``normalize_embeddings=True`` (or a distance with ``normalize=True``) to L2-normalise them first.

``distance`` may also be a :class:`dmlkit.distances.SquaredEuclidean` or ``Euclidean`` object, and
``reducer`` a :mod:`dmlkit.reducers` object (default: the mean over all triplets, computed in closed
form; reducers that need the individual terms get them from an explicit O(n^3) evaluation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .._checks import as_label_matrix, check_distance_matrix, check_embeddings
from ..distances import Distance, Euclidean, SquaredEuclidean, safe_sqrt
from ..reducers import MeanReducer, make_reducer


def pairwise_distance_matrix(x: torch.Tensor, distance: str) -> torch.Tensor:
    """D(x_i, x_j) for all pairs, computed from explicit differences (exact for near-duplicates,
    which matters inside a log)."""
    sq = (x.unsqueeze(1) - x.unsqueeze(0)).pow(2).sum(-1)
    return sq if distance == "squared" else safe_sqrt(sq)


class LogRatioLoss(torch.nn.Module):
    """Log-ratio loss over the dense triplets of a batch.

    Args:
        distance: ``"squared"`` (default, the paper's formula) or ``"euclidean"`` (the official code's),
            or a ``SquaredEuclidean`` / ``Euclidean`` object; used for D in both spaces.
        eps: added to D inside every log (default 1e-6).
        anchors: ``"all"`` uses every sample as an anchor; ``"first"`` only sample 0, which is the
            anchor of a batch from :class:`dmlkit.miners.DenseTripletBatchSampler`.
        normalize_embeddings: L2-normalise embeddings before measuring distances.
        reducer: how the per-triplet terms become the loss (default ``MeanReducer()``).

    ``forward(embeddings, labels)`` takes labels of shape (batch,) or (batch, label_dim); or pass
    ``label_distances`` (batch, batch) holding D(y_a, y_i) directly, for labels whose distance is not
    Euclidean (for example pose distance over visible joints).
    """

    def __init__(self, distance: str = "squared", eps: float = 1e-6, anchors: str = "all",
                 normalize_embeddings: bool = False, reducer=None) -> None:
        super().__init__()
        if isinstance(distance, Distance):
            if type(distance) not in (SquaredEuclidean, Euclidean):
                raise ValueError(f"distance must be SquaredEuclidean or Euclidean, got {distance!r}")
            normalize_embeddings = normalize_embeddings or distance.normalize
            distance = "squared" if isinstance(distance, SquaredEuclidean) else "euclidean"
        if distance not in ("squared", "euclidean"):
            raise ValueError(f"distance must be 'squared' or 'euclidean', got {distance!r}")
        if anchors not in ("all", "first"):
            raise ValueError(f"anchors must be 'all' or 'first', got {anchors!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.distance = distance
        self.eps = float(eps)
        self.anchors = anchors
        self.normalize_embeddings = normalize_embeddings
        self.reducer = make_reducer(reducer) if reducer is not None else MeanReducer()

    @property
    def label_power(self) -> int:
        """The power of the label distance this loss compares embedding distances with (2 for
        ``squared``): callers that pass ``label_distances`` raise their distances to it."""
        return 2 if self.distance == "squared" else 1

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor | None = None,
                label_distances: torch.Tensor | None = None) -> torch.Tensor:
        """Mean log-ratio loss over all triplets (a, i<j) of the batch; needs a batch of >= 3."""
        check_embeddings(embeddings, min_rows=3)
        n = embeddings.shape[0]
        if (labels is None) == (label_distances is None):
            raise ValueError("pass exactly one of labels or label_distances")
        if label_distances is None:
            y = as_label_matrix(labels, n).to(embeddings.device)
            label_distances = pairwise_distance_matrix(y, self.distance)
        else:
            check_distance_matrix(label_distances, n)
        f = F.normalize(embeddings, dim=1) if self.normalize_embeddings else embeddings
        log_df = torch.log(pairwise_distance_matrix(f, self.distance) + self.eps)
        log_dy = torch.log(label_distances.to(f.device, f.dtype) + self.eps)
        # l(a,i,j) = (r_ai - r_aj)^2 with r = log D_f - log D_y; over the m = n-1 others of an anchor
        # sum_{i<j} (r_i - r_j)^2 = m * sum_i (r_i - mean r)^2, an O(n^2) form of the O(n^3) sum.
        residual = log_df - log_dy
        if self.anchors == "first":
            residual = residual[:1]
            anchor_ids = torch.zeros(1, dtype=torch.long, device=f.device)
        else:
            anchor_ids = torch.arange(n, device=f.device)
        m = n - 1
        try:
            return self._closed_form(residual, anchor_ids, m)
        except NotImplementedError:
            return self.reducer(self._terms(residual, anchor_ids))

    def _terms(self, residual: torch.Tensor, anchor_ids: torch.Tensor) -> torch.Tensor:
        """Every triplet's (r_ai - r_aj)^2, i < j, i, j != a (for reducers that need the terms)."""
        n = residual.shape[1]
        i, j = torch.triu_indices(n, n, offset=1, device=residual.device)
        out = []
        for row, a in enumerate(anchor_ids.tolist()):
            keep = (i != a) & (j != a)
            out.append((residual[row, i[keep]] - residual[row, j[keep]]).pow(2))
        return torch.cat(out)

    def _closed_form(self, residual: torch.Tensor, anchor_ids: torch.Tensor, m: int) -> torch.Tensor:
        others = torch.ones_like(residual, dtype=torch.bool)
        others[torch.arange(len(anchor_ids)), anchor_ids] = False
        r = torch.where(others, residual, torch.zeros_like(residual))
        mean = r.sum(1, keepdim=True) / m
        centred = torch.where(others, residual - mean, torch.zeros_like(residual))
        per_anchor = m * centred.pow(2).sum(1)
        count = len(anchor_ids) * m * (m - 1) // 2
        if isinstance(self.reducer, MeanReducer):  # the historical expression, kept bit for bit
            return per_anchor.sum() / (len(anchor_ids) * (m * (m - 1) / 2))
        return self.reducer.from_sum(per_anchor.sum(), count)

"""Label spaces for the people embedders: what "similar" means for a pair of people.

* :class:`PoseLabels`: COCO-17 keypoints compared by the pose distance (no mirror invariance: a
  mirrored pose looks different in an image).
* :class:`CaptionLabels`: caption embeddings (unit vectors, e.g. all-MiniLM-L6-v2) compared by
  Euclidean distance (= sqrt(2 - 2 cos) for unit vectors).

Both give label distances for index sets and each sample's k nearest neighbours (self excluded,
ties by lower index), which is what training (dense-triplet batches) and evaluation need.
"""

from __future__ import annotations

import os

import numpy as np

from ..data.people import pose_distance_matrix

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 3))
DEFAULT_TEXT_MODEL = os.path.join(_REPO, "models", "text", "all-MiniLM-L6-v2")


class _Labels:
    name = "labels"

    def __len__(self) -> int:
        raise NotImplementedError

    def distances(self, rows, cols=None) -> np.ndarray:
        """Label distances between samples ``rows`` and ``cols`` (default: ``rows``)."""
        raise NotImplementedError

    def neighbours(self, k: int, chunk: int = 256) -> np.ndarray:
        """(N, k) indices of each sample's k nearest other samples in label space."""
        n = len(self)
        if not 1 <= k < n:
            raise ValueError(f"k must be in [1, {n - 1}], got {k}")
        out = np.empty((n, k), dtype=np.int64)
        everyone = np.arange(n)
        for s in range(0, n, chunk):
            rows = everyone[s:s + chunk]
            d = self.distances(rows, everyone)
            d[np.arange(len(rows)), rows] = np.inf
            out[rows] = np.argsort(d, axis=1, kind="stable")[:, :k]
        return out


class PoseLabels(_Labels):
    """Poses (N, 17, 3) compared by :func:`dmlkit.data.people.pose_distance` without mirror
    invariance (``scale="torso_clipped"`` or ``"extent"``: normalised by another pose size). Pairs sharing too few joints count as far apart as the farthest measurable pair of
    the same block (rare: the generator keeps every torso in frame)."""

    name = "pose"

    def __init__(self, keypoints: np.ndarray, scale: str = "torso") -> None:
        self.keypoints = np.asarray(keypoints, dtype=np.float64)
        self.scale = scale  # pose normalisation: see dmlkit.data.people.distance.pose_scale_factors

    def __len__(self) -> int:
        return len(self.keypoints)

    def distances(self, rows, cols=None) -> np.ndarray:
        a = self.keypoints[rows]
        d = pose_distance_matrix(a, None if cols is None else self.keypoints[cols], mirror=False, too_few="nan",
                                 scale=self.scale)
        bad = np.isnan(d)
        if bad.any():  # too few shared joints: as far as the farthest pair we can measure
            d[bad] = np.nanmax(d) if (~bad).any() else 1.0
        return d


class CaptionLabels(_Labels):
    """Caption embeddings (N, D) compared by Euclidean distance."""

    name = "caption"

    def __init__(self, vectors: np.ndarray) -> None:
        self.vectors = np.asarray(vectors, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.vectors)

    def distances(self, rows, cols=None) -> np.ndarray:
        a = self.vectors[rows]
        b = a if cols is None else self.vectors[cols]
        sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
        return np.sqrt(np.maximum(sq, 0.0))


def embed_captions(texts: list[str], model_dir: str = DEFAULT_TEXT_MODEL, batch: int = 64) -> np.ndarray:
    """Unit-length sentence embeddings of ``texts`` with the sentence-transformers model in
    ``model_dir`` (all-MiniLM-L6-v2: mean pooling, then L2 normalisation)."""
    if not os.path.isdir(model_dir):
        raise ValueError(f"text model not found: {model_dir} (make text-model links it)")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_dir, device="cpu")
    return np.asarray(model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False),
                      dtype=np.float64)

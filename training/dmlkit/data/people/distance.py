"""Pose distance between two COCO-17 keypoint sets: the one definition the whole project uses.

Definition (the Swift side implements exactly this; ``Tests/Fixtures/pose/pose_distance_cases.json``
holds shared cases):

1. A joint is *labelled* when its visibility ``v > 0``. Occluded joints (v = 1) count: their position
   is annotated, and the pose label should not change because something hides a wrist in the image.
2. Each pose needs both hips and both shoulders labelled. Its centre is the hip midpoint
   ``h = (left_hip + right_hip) / 2`` and its torso length ``t = |s - h|``, the distance from the
   shoulder midpoint ``s = (left_shoulder + right_shoulder) / 2`` to ``h``. ``t`` must exceed
   ``MIN_TORSO_LENGTH`` (1e-6, in the input units).
3. Normalised joint positions are ``q_j = (p_j - h) / t`` (x, y only; image axes, y down). Each pose is
   normalised by its own centre and torso length, so the distance is invariant to translating and
   uniformly scaling either pose. Rotation is *not* removed: lying and standing are different poses.
4. ``d(a, b)`` is the mean over the joints labelled in both poses of the Euclidean distance
   ``|q_a,j - q_b,j|``. At least ``MIN_SHARED_JOINTS`` (5: the four torso joints and one more) must be
   shared.
5. With ``mirror=True`` the distance is ``min(d(a, b), d(a, mirror(b)))`` where ``mirror(b)`` swaps
   every left joint with its right partner (visibility included) and negates x. Orientations with
   fewer than ``MIN_SHARED_JOINTS`` shared joints are skipped; if both are, it is an error.

The distance is symmetric, zero for identical poses, and in units of torso lengths. Degenerate input
(missing hips or shoulders, zero torso length, too few shared joints) raises
:class:`PoseDistanceError`, a ``ValueError`` whose ``kind`` names the case; malformed keypoints raise
``ValueError``.
"""

from __future__ import annotations

import numpy as np

from .keypoints import FLIP_INDEX, KEYPOINT_NAMES, LEFT_HIP, LEFT_SHOULDER, RIGHT_HIP, RIGHT_SHOULDER, as_keypoints

MIN_TORSO_LENGTH = 1e-6
MIN_SHARED_JOINTS = 5
_REFERENCE_JOINTS = (LEFT_HIP, RIGHT_HIP, LEFT_SHOULDER, RIGHT_SHOULDER)


class PoseDistanceError(ValueError):
    """A pose distance that is not defined. ``kind`` says why: ``"missing_reference_joint"`` (a hip
    or shoulder unlabelled), ``"zero_torso"`` or ``"too_few_shared_joints"``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def normalize_pose(keypoints, name: str = "pose") -> tuple[np.ndarray, np.ndarray]:
    """Return ``(q, labelled)``: joint positions centred on the hip midpoint and divided by the torso
    length (shape (17, 2), zero where unlabelled) and the boolean mask of labelled joints (17,).

    Raises ``ValueError`` if a hip or shoulder is unlabelled or the torso length is (near) zero.
    """
    k = as_keypoints(keypoints, name)
    labelled = k[:, 2] > 0
    missing = [KEYPOINT_NAMES[j] for j in _REFERENCE_JOINTS if not labelled[j]]
    if missing:
        raise PoseDistanceError("missing_reference_joint", f"{name}: pose distance needs both hips and both "
                                f"shoulders; unlabelled: {', '.join(missing)}")
    xy = k[:, :2]
    hip = (xy[LEFT_HIP] + xy[RIGHT_HIP]) / 2.0
    shoulder = (xy[LEFT_SHOULDER] + xy[RIGHT_SHOULDER]) / 2.0
    torso = float(np.hypot(*(shoulder - hip)))
    if not torso > MIN_TORSO_LENGTH:
        raise PoseDistanceError("zero_torso", f"{name}: torso length (shoulder midpoint to hip midpoint) is {torso:g}, "
                         f"must be > {MIN_TORSO_LENGTH:g}")
    q = np.where(labelled[:, None], (xy - hip) / torso, 0.0)
    return q, labelled


def is_valid_pose(keypoints) -> bool:
    """True if :func:`normalize_pose` accepts the keypoints (hips and shoulders labelled, torso > 0)."""
    try:
        normalize_pose(keypoints)
    except ValueError:  # PoseDistanceError or malformed keypoints
        return False
    return True


def _mirrored(q: np.ndarray, labelled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    idx = list(FLIP_INDEX)
    qm = q[idx].copy()
    qm[:, 0] = -qm[:, 0]
    return qm, labelled[idx]


def _mean_shared(qa, la, qb, lb) -> tuple[float, int]:
    shared = la & lb
    n = int(shared.sum())
    if n < MIN_SHARED_JOINTS:
        return float("nan"), n
    return float(np.linalg.norm(qa[shared] - qb[shared], axis=1).mean()), n


def pose_distance(a, b, mirror: bool = False) -> float:
    """Pose distance between keypoints ``a`` and ``b`` (each 17 x [x, y, v] or 51 numbers); see the
    module docstring for the exact definition. ``mirror=True`` makes it left-right mirror invariant."""
    qa, la = normalize_pose(a, "pose a")
    qb, lb = normalize_pose(b, "pose b")
    d, n = _mean_shared(qa, la, qb, lb)
    if mirror:
        dm, nm = _mean_shared(qa, la, *_mirrored(qb, lb))
        if np.isnan(d) or (not np.isnan(dm) and dm < d):
            d, n = dm, nm
    if np.isnan(d):
        raise PoseDistanceError("too_few_shared_joints", f"poses share {n} labelled joints, pose distance needs "
                                f"at least {MIN_SHARED_JOINTS}")
    return d


SCALES = ("torso", "torso_clipped", "extent")
# torso_clipped: the torso length is not allowed below this fraction of the pose's extent (the
# larger side of its labelled joints' box). An upright person's torso is ~0.3 of its height, so
# only foreshortened torsos (seen from above or below, bending towards the camera) are clipped.
TORSO_CLIP_FRACTION = 0.25


def pose_scale_factors(keypoints, scale: str) -> np.ndarray:
    """Per pose, the factor ``torso / s`` that turns torso-normalised positions into positions
    normalised by the scale ``s`` of ``scale`` (1 for ``"torso"``): ``"torso_clipped"`` uses
    ``s = max(torso, TORSO_CLIP_FRACTION * extent)``, ``"extent"`` uses ``s = extent``, where
    ``extent`` is the larger side of the box around the pose's labelled joints."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    k = np.asarray(keypoints, dtype=np.float64)
    out = np.ones(len(k))
    if scale == "torso":
        return out
    for i, kp in enumerate(k):
        xy = kp[kp[:, 2] > 0, :2]
        extent = float(np.max(xy.max(0) - xy.min(0)))
        hip = (kp[LEFT_HIP, :2] + kp[RIGHT_HIP, :2]) / 2.0
        torso = float(np.hypot(*((kp[LEFT_SHOULDER, :2] + kp[RIGHT_SHOULDER, :2]) / 2.0 - hip)))
        s = max(torso, TORSO_CLIP_FRACTION * extent) if scale == "torso_clipped" else extent
        out[i] = torso / s
    return out


def normalize_poses(keypoints, scale: str = "torso") -> tuple[np.ndarray, np.ndarray]:
    """Batched :func:`normalize_pose`: (N, 17, 3) keypoints to ``(q (N, 17, 2), labelled (N, 17))``.
    The error names the first invalid row. ``scale`` other than ``"torso"`` (the project's pose
    distance) divides by another pose size instead (:func:`pose_scale_factors`): a training-label
    option that does not explode on foreshortened torsos."""
    k = np.asarray(keypoints, dtype=np.float64)
    if k.ndim != 3:
        raise ValueError(f"expected keypoints of shape (N, 17, 3), got {k.shape}")
    q = np.zeros((k.shape[0], k.shape[1], 2))
    lab = np.zeros((k.shape[0], k.shape[1]), dtype=bool)
    for i in range(k.shape[0]):
        q[i], lab[i] = normalize_pose(k[i], f"pose {i}")
    if scale != "torso":
        q *= pose_scale_factors(k, scale)[:, None, None]
    return q, lab


def pose_distance_matrix(a, b=None, mirror: bool = False, too_few: str = "raise", chunk: int = 64,
                         scale: str = "torso") -> np.ndarray:
    """All pairwise pose distances between keypoint sets ``a`` (N, 17, 3) and ``b`` (M, 17, 3)
    (``b`` defaults to ``a``), as an (N, M) float64 array equal entry by entry to :func:`pose_distance`.

    ``too_few="raise"`` (default) raises ``ValueError`` if a pair shares too few joints; ``"nan"``
    puts NaN there instead. Every pose must still be valid (hips, shoulders, torso > 0). ``scale`` is the normalisation of
    :func:`normalize_poses` (``"torso"``, the default, is the project's pose distance).
    """
    if too_few not in ("raise", "nan"):
        raise ValueError(f"too_few must be 'raise' or 'nan', got {too_few!r}")
    qa, la = normalize_poses(a, scale)
    qb, lb = (qa, la) if b is None else normalize_poses(b, scale)
    orientations = [(qb, lb)]
    if mirror:
        idx = list(FLIP_INDEX)
        qbm = qb[:, idx].copy()
        qbm[..., 0] = -qbm[..., 0]
        orientations.append((qbm, lb[:, idx]))
    out = np.empty((qa.shape[0], qb.shape[0]))
    for s in range(0, qa.shape[0], chunk):
        best = np.full((min(chunk, qa.shape[0] - s), qb.shape[0]), np.nan)
        for qo, lo in orientations:
            shared = la[s:s + chunk, None, :] & lo[None, :, :]
            n = shared.sum(-1)
            dist = np.linalg.norm(qa[s:s + chunk, None] - qo[None], axis=-1)
            with np.errstate(invalid="ignore", divide="ignore"):
                d = np.where(shared, dist, 0.0).sum(-1) / n
            d[n < MIN_SHARED_JOINTS] = np.nan
            best = np.fmin(best, d)  # fmin ignores NaN unless both are NaN
        out[s:s + chunk] = best
    if too_few == "raise" and np.isnan(out).any():
        i, j = np.argwhere(np.isnan(out))[0]
        raise PoseDistanceError("too_few_shared_joints",
                                f"poses {i} and {j} share fewer than {MIN_SHARED_JOINTS} labelled joints")
    return out

"""Training-time augmentation of people images that keeps the pose label true.

* :func:`flip_person` mirrors an image and its keypoints together: x -> width - x (pixel edges, so a
  joint in pixel column c lands in column width - 1 - c) and every left joint swapped with its right
  partner, so "left wrist" still names the person's left wrist.
* :func:`jittered_person_crop` cuts a person-centred square crop (the generator's or COCO's box) with
  random scale and translation jitter and an optional flip, returning the matching keypoints.
"""

from __future__ import annotations

import numpy as np

from .dataset import crop_person
from .keypoints import mirror_keypoints


def flip_person(image: np.ndarray, keypoints) -> tuple[np.ndarray, np.ndarray]:
    """Horizontally flipped ``image`` (H, W, C) and keypoints (17, 3) in the flipped image's pixels."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"image must be (H, W, C), got shape {image.shape}")
    return np.ascontiguousarray(image[:, ::-1]), mirror_keypoints(keypoints, width=float(image.shape[1]))


def jittered_person_crop(image: np.ndarray, keypoints, bbox, size: int, rng: np.random.Generator,
                         scale: tuple[float, float] = (0.9, 1.1), shift: float = 0.1, flip: float = 0.5,
                         margin: float = 1.25) -> tuple[np.ndarray, np.ndarray, bool]:
    """A ``size`` x ``size`` crop around ``bbox`` (x, y, w, h) whose side is ``margin`` x the box's larger
    side times a factor drawn from ``scale``, its centre moved by up to ``shift`` x the side in x and
    y, then flipped with probability ``flip``. Returns ``(crop, keypoints, flipped)``; joints that leave
    the crop become unlabelled (check :func:`~dmlkit.data.people.is_valid_pose` before using the label).
    """
    x, y, w, h = (float(v) for v in bbox)
    if not (w > 0 and h > 0 and np.isfinite([x, y, w, h]).all()):
        raise ValueError(f"bbox must be finite with positive width and height, got {bbox!r}")
    if not (0 < scale[0] <= scale[1]) or shift < 0 or not 0 <= flip <= 1:
        raise ValueError(f"bad jitter: scale {scale}, shift {shift}, flip {flip}")
    s = float(rng.uniform(*scale))
    side = max(w, h) * s
    cx = x + w / 2 + float(rng.uniform(-shift, shift)) * side * margin
    cy = y + h / 2 + float(rng.uniform(-shift, shift)) * side * margin
    crop, k = crop_person(image, keypoints, (cx - side / 2, cy - side / 2, side, side), size, margin)
    flipped = bool(rng.random() < flip)
    if flipped:
        crop, k = flip_person(crop, k)
    return crop, k, flipped

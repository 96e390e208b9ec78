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


def _usable_box(box, keypoints, image_side: int):
    """The annotation box grown to hold every labelled joint (a box from the visible figure can miss a
    hidden head or shoulder, and a crop of it would drop those joints and the pose label with them);
    the joints' box alone if the annotation has no area; the whole image if neither exists."""
    x, y, w, h = (float(v) for v in box)
    has_box = w > 0 and h > 0 and np.isfinite([x, y, w, h]).all()
    xy = np.asarray(keypoints)[np.asarray(keypoints)[:, 2] > 0, :2]
    if len(xy) and has_box:
        lo = np.minimum(xy.min(0), (x, y))
        hi = np.maximum(xy.max(0) + 1.0, (x + w, y + h))  # a joint in pixel column c needs column c inside
        return (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])
    if has_box:
        return (x, y, w, h)
    if len(xy) >= 2 and np.ptp(xy, 0).max() > 0:
        lo, hi = xy.min(0), xy.max(0)
        return (lo[0], lo[1], max(hi[0] - lo[0], 1.0), max(hi[1] - lo[1], 1.0))
    return (0.0, 0.0, float(image_side), float(image_side))


class PersonCrops:
    """Person-centred square crops of a data set's images, from each person's box.

    :meth:`fixed` gives the plain crops (evaluation, export); :meth:`batch` gives training crops with
    per-sample scale and translation jitter, and flips the whole batch together with probability
    ``flip``: mirroring every pose of a batch leaves every pairwise pose distance unchanged, so the
    batch's labels stay true without recomputing them. A sample whose hips or shoulders would leave
    its jittered crop gets its plain crop instead (so its pose label stays defined).
    """

    def __init__(self, images: np.ndarray, keypoints: np.ndarray, boxes, size: int, seed: int = 0,
                 scale: tuple[float, float] = (0.9, 1.1), shift: float = 0.1, flip: float = 0.5,
                 margin: float = 1.25) -> None:
        if len(images) != len(keypoints) or len(images) != len(boxes):
            raise ValueError(f"{len(images)} images, {len(keypoints)} keypoint sets, {len(boxes)} boxes")
        if size < 16:
            raise ValueError(f"crop size must be >= 16, got {size}")
        self.images, self.keypoints, self.size = images, np.asarray(keypoints, np.float64), size
        self.boxes = [_usable_box(b, k, images.shape[1]) for b, k in zip(boxes, self.keypoints)]
        self.scale, self.shift, self.flip, self.margin = scale, shift, flip, margin
        self.rng = np.random.default_rng(seed)

    @classmethod
    def of_people(cls, people, size: int, seed: int = 0) -> "PersonCrops":
        """Crops of a :func:`~dmlkit.data.people.load_people` result, from each record's box."""
        return cls(people.images, people.keypoints, [r.bbox for r in people.records], size, seed=seed)

    def fixed(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """Plain crops (no jitter, no flip) of samples ``idx`` and their keypoints."""
        out = [crop_person(self.images[i], self.keypoints[i], self.boxes[i], self.size, self.margin) for i in idx]
        return np.stack([c for c, _ in out]), np.stack([k for _, k in out])

    def batch(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """Jittered crops of samples ``idx`` (one flip decision for the whole batch) and their keypoints."""
        from .distance import is_valid_pose

        crops, kps = [], []
        for i in idx:
            c, k, _ = jittered_person_crop(self.images[i], self.keypoints[i], self.boxes[i], self.size, self.rng,
                                           self.scale, self.shift, 0.0, self.margin)
            if not is_valid_pose(k) and is_valid_pose(self.keypoints[i]):
                c, k = crop_person(self.images[i], self.keypoints[i], self.boxes[i], self.size, self.margin)
            crops.append(c)
            kps.append(k)
        crops, kps = np.stack(crops), np.stack(kps)
        if self.rng.random() < self.flip:
            flipped = [flip_person(c, k) for c, k in zip(crops, kps)]
            crops, kps = np.stack([c for c, _ in flipped]), np.stack([k for _, k in flipped])
        return crops, kps

"""The COCO-17 person keypoint layout: names, left/right pairs and the skeleton edges.

Keypoints are stored COCO style, ``[x, y, v]`` per joint in this order, with image coordinates
(x to the right, y down, in pixels) and visibility ``v``: 0 not labelled (absent or outside the
image, then x = y = 0), 1 labelled but occluded, 2 labelled and visible.
"""

from __future__ import annotations

import numpy as np

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)
NUM_KEYPOINTS = len(KEYPOINT_NAMES)
INDEX = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

NOSE = INDEX["nose"]
LEFT_SHOULDER, RIGHT_SHOULDER = INDEX["left_shoulder"], INDEX["right_shoulder"]
LEFT_HIP, RIGHT_HIP = INDEX["left_hip"], INDEX["right_hip"]

# Index of each joint's mirror partner (left <-> right); the nose maps to itself.
FLIP_INDEX: tuple[int, ...] = tuple(
    INDEX[n.replace("left_", "right_")] if n.startswith("left_")
    else INDEX[n.replace("right_", "left_")] if n.startswith("right_")
    else i
    for i, n in enumerate(KEYPOINT_NAMES)
)

# The COCO person category's skeleton, 1-based joint indices as in the official annotation files.
COCO_SKELETON: tuple[tuple[int, int], ...] = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)

VISIBILITY_ABSENT, VISIBILITY_OCCLUDED, VISIBILITY_VISIBLE = 0, 1, 2


def person_category() -> dict:
    """The COCO ``categories`` entry for people, with keypoint names and skeleton."""
    return {"id": 1, "name": "person", "supercategory": "person",
            "keypoints": list(KEYPOINT_NAMES), "skeleton": [list(e) for e in COCO_SKELETON]}


def as_keypoints(keypoints, name: str = "keypoints") -> np.ndarray:
    """Validate and return keypoints as a float64 array of shape (17, 3).

    Accepts a flat COCO list of 51 numbers or anything of shape (17, 3). Raises ``ValueError``
    for a wrong count, non-finite values or a visibility flag other than 0, 1 or 2.
    """
    try:
        k = np.asarray(keypoints, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name}: not numeric ({e})") from None
    if k.shape == (NUM_KEYPOINTS * 3,):
        k = k.reshape(NUM_KEYPOINTS, 3)
    if k.shape != (NUM_KEYPOINTS, 3):
        raise ValueError(f"{name}: expected {NUM_KEYPOINTS} keypoints as [x, y, v] "
                         f"({NUM_KEYPOINTS * 3} numbers), got shape {tuple(np.shape(keypoints))}")
    if not np.isfinite(k).all():
        raise ValueError(f"{name}: contains a value that is not a finite number (NaN, infinity or null)")
    if not np.isin(k[:, 2], (0, 1, 2)).all():
        raise ValueError(f"{name}: visibility flags must be 0, 1 or 2, got {sorted(set(k[:, 2].tolist()))}")
    return k


def mirror_keypoints(keypoints, width: float = 0.0) -> np.ndarray:
    """The horizontally mirrored pose: left and right joints swapped and x -> width - x.

    With ``width=0`` x is simply negated (what the pose distance uses; it is translation invariant).
    Joints with v = 0 keep x = y = 0.
    """
    k = as_keypoints(keypoints)[list(FLIP_INDEX)].copy()
    labelled = k[:, 2] > 0
    k[labelled, 0] = width - k[labelled, 0]
    return k

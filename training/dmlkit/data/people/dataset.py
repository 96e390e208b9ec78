"""Load a people data set (COCO keypoints + image folder + optional captions) into arrays.

Works for the synthetic sets ``generate`` writes (whole images) and for real COCO
(``crop="bbox"`` cuts a square around each person and maps the keypoints into it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from .coco import PersonRecord, load_captions, load_coco_keypoints
from .images import load_image


@dataclass
class PeopleArrays:
    """``images`` (N, size, size, 3) uint8, ``keypoints`` (N, 17, 3) in the images' pixels,
    ``captions`` (N,) first caption per image or None, ``records`` the source annotations."""

    images: np.ndarray
    keypoints: np.ndarray
    captions: list[str] | None
    records: list[PersonRecord]


def crop_person(image: np.ndarray, keypoints: np.ndarray, bbox, size: int, margin: float = 1.25):
    """Cut a square of side ``margin * max(bbox w, h)`` centred on ``bbox`` (x, y, w, h; padded with
    black beyond the image), resize it to ``size`` and map the keypoints into it. Keypoints that fall
    outside the crop become unlabelled (v = 0, x = y = 0)."""
    from PIL import Image

    x, y, w, h = (float(v) for v in bbox)
    side = max(w, h, 1.0) * margin
    x0, y0 = x + w / 2 - side / 2, y + h / 2 - side / 2
    crop = Image.fromarray(image).crop((int(np.floor(x0)), int(np.floor(y0)),
                                        int(np.floor(x0)) + int(np.ceil(side)), int(np.floor(y0)) + int(np.ceil(side))))
    scale = size / int(np.ceil(side))
    out = np.asarray(crop.resize((size, size), Image.BILINEAR), dtype=np.uint8)
    k = np.array(keypoints, dtype=np.float64)
    k[:, 0] = (k[:, 0] - np.floor(x0)) * scale
    k[:, 1] = (k[:, 1] - np.floor(y0)) * scale
    inside = (k[:, 0] >= 0) & (k[:, 0] < size) & (k[:, 1] >= 0) & (k[:, 1] < size)
    drop = (k[:, 2] == 0) | ~inside
    k[drop] = 0.0
    return out, k


def load_people(keypoints_json: str, image_dir: str, captions_json: str | None = None, size: int | None = None,
                crop: str = "full", min_keypoints: int = 1, limit: int | None = None) -> PeopleArrays:
    """Read annotations, images and captions into arrays.

    ``crop="full"`` uses whole images (all must then have the same size, or pass ``size`` to resize;
    keypoints are scaled along); ``crop="bbox"`` crops each person (``size`` required). ``limit`` keeps
    the first N people. Images without a caption raise ``ValueError`` when ``captions_json`` is given.
    """
    if crop not in ("full", "bbox"):
        raise ValueError(f"crop must be 'full' or 'bbox', got {crop!r}")
    if crop == "bbox" and size is None:
        raise ValueError("crop='bbox' needs size")
    records = load_coco_keypoints(keypoints_json, min_keypoints=min_keypoints)[:limit]
    caps = load_captions(captions_json) if captions_json else None
    images, keypoints, texts = [], [], []
    for r in records:
        img = load_image(os.path.join(image_dir, r.file_name))
        k = r.keypoints.copy()
        if crop == "bbox":
            img, k = crop_person(img, k, r.bbox, size)
        elif size is not None and img.shape[:2] != (size, size):
            from .images import resize

            sy, sx = size / img.shape[0], size / img.shape[1]
            img = resize(img, size, size)
            k[:, 0] *= sx
            k[:, 1] *= sy
        if images and img.shape != images[0].shape:
            raise ValueError(f"{r.file_name}: image size {img.shape[:2]} differs from {images[0].shape[:2]}; "
                             "pass size=")
        images.append(img)
        keypoints.append(k)
        if caps is not None:
            if r.image_id not in caps:
                raise ValueError(f"{captions_json}: no caption for image id {r.image_id} ({r.file_name})")
            texts.append(caps[r.image_id][0])
    arr = np.stack(images) if images else np.zeros((0, size or 0, size or 0, 3), np.uint8)
    kps = np.stack(keypoints) if keypoints else np.zeros((0, 17, 3))
    return PeopleArrays(arr, kps, texts if caps is not None else None, records)

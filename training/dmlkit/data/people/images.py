"""Reading and writing RGB images (PNG, JPEG, ... via Pillow) as uint8 numpy arrays."""

from __future__ import annotations

import os

import numpy as np


def save_png(path: str, image: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 array as PNG."""
    from PIL import Image

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.dtype} {image.shape}")
    Image.fromarray(image).save(path, format="PNG")


def load_image(path: str) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB (grey and RGBA images are converted).
    Raises ``ValueError`` naming the file if it is missing or not an image."""
    from PIL import Image, UnidentifiedImageError

    if not os.path.isfile(path):
        raise ValueError(f"image not found: {path}")
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"cannot read image {path}: {e}") from None


def resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize an (H, W, 3) uint8 image with bilinear filtering."""
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BILINEAR), dtype=np.uint8)

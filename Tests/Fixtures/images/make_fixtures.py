"""Writes small PNG/JPEG files and the pixels Pillow decodes from them, for the Swift image tests.

Run from the repo root: .venv/bin/python Tests/Fixtures/images/make_fixtures.py
"""
import pathlib

import numpy as np
from PIL import Image

out = pathlib.Path(__file__).parent
h, w = 23, 37  # odd sizes catch stride mistakes
y, x = np.mgrid[0:h, 0:w]
rgb = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x * y) % 256], axis=-1).astype(np.uint8)

Image.fromarray(rgb).save(out / "rgb.png")
Image.fromarray(rgb[..., 1]).save(out / "grey.png")
Image.fromarray(np.dstack([rgb, np.full((h, w), 255, np.uint8)])).save(out / "rgba_opaque.png")
Image.fromarray(rgb).save(out / "rgb.jpg", quality=92)
for name in ["rgb.png", "grey.png", "rgba_opaque.png", "rgb.jpg"]:
    decoded = np.asarray(Image.open(out / name).convert("RGB"))
    np.save(out / f"{name}.pixels.npy", decoded)
data = (out / "rgb.jpg").read_bytes()
(out / "truncated.jpg").write_bytes(data[: len(data) // 2])
data = (out / "rgb.png").read_bytes()
(out / "truncated.png").write_bytes(data[: len(data) // 2])

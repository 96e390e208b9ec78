"""Writes small photo-like files the way cameras and print tools make them, and the pixels Pillow shows for them
(`ImageOps.exif_transpose(...).convert("RGB")`), for the Swift image tests:

- orient_N.jpg: the same picture stored in the file's frame with EXIF Orientation N (2..8);
- cmyk.jpg: a CMYK JPEG (Pillow writes Adobe-inverted inks, as Photoshop does);
- rgb16.png: 16-bit RGB (written by hand: Pillow cannot write it); palette.png: an indexed-colour PNG.

Run from the repo root: .venv/bin/python Tests/Fixtures/images/make_photo_fixtures.py
"""
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image, ImageOps

out = pathlib.Path(__file__).parent
h, w = 23, 37  # odd, and not square: a rotation that swaps the sides shows
y, x = np.mgrid[0:h, 0:w]
rgb = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), (x * y) % 256], axis=-1).astype(np.uint8)

# The file stores the picture un-transposed: the inverse of what the viewer applies for each orientation.
stored = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270,
}
for orientation, inverse in stored.items():
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).transpose(inverse).save(out / f"orient_{orientation}.jpg", quality=95, exif=exif.tobytes())

Image.fromarray(rgb).convert("CMYK").save(out / "cmyk.jpg", quality=95)
Image.fromarray(rgb).quantize(64).save(out / "palette.png")


def png16(path, pixels):
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in pixels)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", pixels.shape[1], pixels.shape[0], 16, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


png16(out / "rgb16.png", rgb.astype(np.uint16) * 257 + (x * 7 % 200)[..., None].astype(np.uint16))

for name in [*(f"orient_{o}.jpg" for o in stored), "cmyk.jpg", "palette.png", "rgb16.png"]:
    shown = np.asarray(ImageOps.exif_transpose(Image.open(out / name)).convert("RGB"))
    np.save(out / f"{name}.pixels.npy", shown)

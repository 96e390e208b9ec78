"""Writes small crafted PNG/JPEG files whose headers promise far more than they hold (decompression bombs), and
legitimate extremely compressible images that must still decode, for the decoder-limit tests.

Run from the repo root: .venv/bin/python Tests/Fixtures/images/make_bombs.py

- bomb_progressive_huge.jpg   progressive, SOF2 patched to 65500x65500 (over the pixel limit)
- bomb_progressive_8k.jpg     progressive, 8000x8000 (under the pixel limit, far more blocks than its bytes code)
- bomb_baseline_huge.jpg      baseline, 60000x60000
- many_scans.jpg              progressive 8x8 with its last scan repeated 300 times (over the scan limit)
- bomb_huge.png               IHDR 30000x30000, one tiny IDAT
- bomb_8k.png                 IHDR 8000x8000 (under the pixel limit), one tiny IDAT
- flat_progressive.jpg        a real 1024x1024 flat grey progressive JPEG (the most compressible kind): decodes
- flat_1bit.png               a real 4000x4000 flat 1-bit PNG at maximum compression: decodes
"""
import io
import pathlib
import struct
import zlib

import numpy as np
from PIL import Image

out = pathlib.Path(__file__).parent


def jpeg(progressive, size=(16, 16)):
    y, x = np.mgrid[0:size[1], 0:size[0]]
    rgb = np.stack([x * 16 % 256, y * 16 % 256, (x + y) * 8 % 256], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=50, progressive=progressive)
    return bytearray(buffer.getvalue())


def segments(data):
    """(marker, offset of the marker, offset after the segment) for every marker segment before the first SOS data."""
    i = 2
    while i < len(data):
        assert data[i] == 0xFF
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        yield marker, i, i + 2 + length
        if marker == 0xDA:
            return
        i += 2 + length


def patch_size(data, width, height):
    for marker, start, _ in segments(data):
        if marker in (0xC0, 0xC2):  # SOF0 baseline, SOF2 progressive: P(1) Y(2) X(2)
            data[start + 5:start + 9] = struct.pack(">HH", height, width)
            return data
    raise AssertionError("no SOF marker")


def repeat_last_scan(data, times):
    """The last SOS segment and its entropy-coded data, repeated before EOI."""
    last = data.rfind(b"\xff\xda")
    end = data.rfind(b"\xff\xd9")
    scan = bytes(data[last:end])
    return bytes(data[:end]) + scan * times + b"\xff\xd9"


def png(width, height, idat):
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


(out / "bomb_progressive_huge.jpg").write_bytes(patch_size(jpeg(True), 65500, 65500))
(out / "bomb_progressive_8k.jpg").write_bytes(patch_size(jpeg(True), 8000, 8000))
(out / "bomb_baseline_huge.jpg").write_bytes(patch_size(jpeg(False), 60000, 60000))
(out / "many_scans.jpg").write_bytes(repeat_last_scan(jpeg(True, (8, 8)), 300))
tiny = zlib.compress(b"\x00" * 64, 9)
(out / "bomb_huge.png").write_bytes(png(30000, 30000, tiny))
(out / "bomb_8k.png").write_bytes(png(8000, 8000, tiny))

Image.new("L", (1024, 1024), 128).save(out / "flat_progressive.jpg", quality=75, progressive=True, optimize=True)
Image.new("1", (4000, 4000), 0).save(out / "flat_1bit.png", optimize=True, compress_level=9)
for name in sorted(out.glob("bomb_*")) + [out / "many_scans.jpg", out / "flat_progressive.jpg", out / "flat_1bit.png"]:
    print(f"{name.name}: {name.stat().st_size} bytes")

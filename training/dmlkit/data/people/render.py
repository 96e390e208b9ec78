"""Vectorised numpy rendering: shaded capsules with a z-buffer, textured backgrounds and occluders.

Everything is computed for all pixels and all capsules at once (arrays of shape (capsules, pixels)),
which keeps a 64 x 64 image at a few milliseconds on one core. Images are rendered at ``supersample``
times the output size and averaged down, which smooths the edges.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .camera import Camera

_LIGHT = np.array([-0.45, -0.6, -0.66])
_LIGHT = _LIGHT / np.linalg.norm(_LIGHT)
MIN_RADIUS_PX = 0.75  # thinner limbs would fall between pixel centres and vanish


@dataclass
class Raster:
    """Per render pixel: depth of the front surface (inf where empty), index of the capsule seen
    there (-1 where empty), Lambert shading in [0, 1] and the position ``t`` along that capsule."""

    depth: np.ndarray
    index: np.ndarray
    shade: np.ndarray
    t: np.ndarray


def pixel_centres(size: int, supersample: int) -> tuple[np.ndarray, np.ndarray]:
    """x and y of render-pixel centres in output-pixel units, each of shape (size*ss, size*ss)."""
    n = size * supersample
    c = (np.arange(n) + 0.5) / supersample
    return np.meshgrid(c, c)


def rasterize_capsules(cam: Camera, p0, p1, r0, r1, size: int, supersample: int = 2) -> Raster:
    """Z-buffered rasterisation of 3-D capsules (end points ``p0``, ``p1``, radii ``r0``, ``r1``).

    Each capsule is drawn as its projected 2-D capsule; the surface depth bulges towards the camera
    like a cylinder's, and shading uses the matching normal. Each capsule only touches the pixels of
    its own bounding box, which is what keeps this fast.
    """
    r0, r1 = np.asarray(r0, dtype=float), np.asarray(r1, dtype=float)
    a, b = cam.project(p0), cam.project(p1)              # (K, 3): u, v, depth
    ra = np.maximum(cam.focal * r0 / a[:, 2], MIN_RADIUS_PX / supersample)
    rb = np.maximum(cam.focal * r1 / b[:, 2], MIN_RADIUS_PX / supersample)
    n = size * supersample
    centres = (np.arange(n) + 0.5) / supersample
    depth = np.full((n, n), np.inf)
    index = np.full((n, n), -1)
    shade = np.zeros((n, n))
    tpos = np.zeros((n, n))
    for k in range(len(r0)):
        if a[k, 2] <= 0 or b[k, 2] <= 0:
            continue  # behind the camera
        rmax = max(ra[k], rb[k])
        lo = np.floor((np.minimum(a[k, :2], b[k, :2]) - rmax) * supersample).astype(int)
        hi = np.ceil((np.maximum(a[k, :2], b[k, :2]) + rmax) * supersample).astype(int) + 1
        x0, y0 = max(lo[0], 0), max(lo[1], 0)
        x1, y1 = min(hi[0], n), min(hi[1], n)
        if x0 >= x1 or y0 >= y1:
            continue
        px, py = centres[None, x0:x1], centres[y0:y1, None]
        ax, ay, bx, by = a[k, 0], a[k, 1], b[k, 0], b[k, 1]
        dx, dy = bx - ax, by - ay
        t = np.clip(((px - ax) * dx + (py - ay) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
        ox, oy = px - (ax + t * dx), py - (ay + t * dy)   # offset from the axis
        rad = ra[k] + t * (rb[k] - ra[k])
        u2 = (ox * ox + oy * oy) / (rad * rad)
        inside = u2 < 1.0
        bulge = np.sqrt(np.maximum(1.0 - u2, 0.0))
        d = a[k, 2] + t * (b[k, 2] - a[k, 2]) - (r0[k] + t * (r1[k] - r0[k])) * bulge
        win = inside & (d < depth[y0:y1, x0:x1])
        if not win.any():
            continue
        # normal in camera coordinates (x right, y down, z away): across the axis, towards the camera
        lam = np.clip((ox * _LIGHT[0] + oy * _LIGHT[1]) / rad - bulge * _LIGHT[2], 0.0, 1.0)
        depth[y0:y1, x0:x1][win] = d[win]
        index[y0:y1, x0:x1][win] = k
        shade[y0:y1, x0:x1][win] = lam[win]
        tpos[y0:y1, x0:x1][win] = t[win]
    return Raster(depth, index, shade, tpos)


def _smooth_noise(rng: np.random.Generator, n: int, cells: int) -> np.ndarray:
    """Value noise in [0, 1]: a random ``cells`` x ``cells`` grid bilinearly upsampled to n x n."""
    g = rng.random((cells + 1, cells + 1))
    c = np.linspace(0, cells, n, endpoint=False) + cells / (2 * n)
    i = np.minimum(c.astype(int), cells - 1)
    f = c - i
    rows = g[i] * (1 - f)[:, None] + g[i + 1] * f[:, None]
    return rows[:, i] * (1 - f)[None, :] + rows[:, i + 1] * f[None, :]


def random_colour(rng: np.random.Generator, lo: float = 0.1, hi: float = 0.95) -> np.ndarray:
    """A random RGB colour, pulled part of the way towards its own grey so that few are garish."""
    c = rng.uniform(lo, hi, 3)
    return c.mean() + rng.uniform(0.35, 1.0) * (c - c.mean())


def background(rng: np.random.Generator, cam: Camera, size: int, supersample: int = 2) -> np.ndarray:
    """A wall above the horizon and a floor below it, both textured (value noise, optional stripes
    or tiles), with random clutter shapes (boxes, discs, bars). Float RGB in [0, 1], render size."""
    n = size * supersample
    xs, ys = pixel_centres(size, supersample)
    wall, floor = random_colour(rng), random_colour(rng, 0.05, 0.8)
    below = ys > cam.horizon_row()
    img = np.where(below[..., None], floor, wall)
    tex = 0.75 + 0.5 * _smooth_noise(rng, n, int(rng.integers(2, 9)))
    img = img * tex[..., None]
    style = rng.integers(0, 4)
    if style == 1:  # striped wallpaper
        period = rng.uniform(2.0, 10.0)
        stripes = (np.floor(xs / period) % 2).astype(float)
        img = np.where(~below[..., None], img * (1 - 0.25 * stripes[..., None]), img)
    elif style == 2:  # floor tiles
        period = rng.uniform(3.0, 12.0)
        tiles = ((np.floor(xs / period) + np.floor(ys / period)) % 2).astype(float)
        img = np.where(below[..., None], img * (1 - 0.3 * tiles[..., None]), img)
    for _ in range(int(rng.integers(0, 7))):  # clutter behind the person
        img = _draw_shape(rng, img, xs, ys, size, rng.uniform(0.05, 0.45))[0]
    img = img + rng.normal(0, 0.02, img.shape)  # sensor-ish grain
    return np.clip(img, 0, 1)


def _draw_shape(rng, img, xs, ys, size, extent, centre=None):
    """Paint one random shape (box, disc or bar) of about ``extent`` x size pixels in place; return
    the image and the shape's mask. Only the shape's bounding square is computed."""
    cx, cy = centre if centre is not None else rng.uniform(0, size, 2)
    w, h = rng.uniform(0.3, 1.0, 2) * extent * size
    kind = rng.integers(0, 3)
    ang = rng.uniform(0, np.pi)
    colour = random_colour(rng)
    ss = xs.shape[0] / size
    half = max(w, h) / 2 + 1
    x0, x1 = int(max((cx - half) * ss, 0)), int(min((cx + half) * ss + 1, xs.shape[1]))
    y0, y1 = int(max((cy - half) * ss, 0)), int(min((cy + half) * ss + 1, xs.shape[0]))
    mask = np.zeros(xs.shape, dtype=bool)
    if x0 >= x1 or y0 >= y1:
        return img, mask
    X, Y = xs[y0:y1, x0:x1] - cx, ys[y0:y1, x0:x1] - cy
    if kind == 0:
        m = (np.abs(X) < w / 2) & (np.abs(Y) < h / 2)
    elif kind == 1:
        m = (X / (w / 2)) ** 2 + (Y / (h / 2)) ** 2 < 1
    else:  # a slanted bar
        along = X * np.cos(ang) + Y * np.sin(ang)
        across = -X * np.sin(ang) + Y * np.cos(ang)
        m = (np.abs(along) < max(w, h) / 2) & (np.abs(across) < min(w, h) / 4)
    shading = np.clip(0.8 + 0.2 * Y / max(h, 1e-6), 0.6, 1.1)  # light from above
    region = img[y0:y1, x0:x1]
    region[m] = colour * shading[m][:, None]
    mask[y0:y1, x0:x1] = m
    return img, mask


def occluders(rng: np.random.Generator, img: np.ndarray, bbox, size: int, supersample: int, count: int):
    """Paint ``count`` shapes in front of the person, each centred inside the person's bounding box
    ``(x0, y0, x1, y1)`` so that it hides part of them. Returns the image and the union mask."""
    xs, ys = pixel_centres(size, supersample)
    total = np.zeros(xs.shape, dtype=bool)
    x0, y0, x1, y1 = bbox
    for _ in range(count):
        centre = (rng.uniform(x0, x1), rng.uniform(y0, y1))
        extent = rng.uniform(0.15, 0.4) * max(x1 - x0, y1 - y0) / size
        img, mask = _draw_shape(rng, img, xs, ys, size, extent, centre)
        total |= mask
    return img, total


def downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Average ``factor`` x ``factor`` blocks of an (n, n, ...) array."""
    if factor == 1:
        return img
    n = img.shape[0] // factor
    return img.reshape(n, factor, n, factor, *img.shape[2:]).mean(axis=(1, 3))

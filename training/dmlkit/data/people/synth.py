"""One synthetic person: pose, body, clothing, camera, rendered image, COCO keypoints and caption.

``sample_person(seed_or_rng, size)`` is deterministic: the same seed gives the same sample, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import render
from .activities import PoseSpec, sample_pose
from .camera import Camera, frame_camera
from .captions import caption, view_name
from .keypoints import LEFT_HIP, LEFT_SHOULDER, NUM_KEYPOINTS, RIGHT_HIP, RIGHT_SHOULDER
from .skeleton import HAIR, PROP, SHIRT, SHOES, SKIN, TROUSERS, Body, BodyShape, forward_kinematics

# Named clothing colours (captions say the name; the renderer jitters the shade a little).
CLOTHING_COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.8, 0.1, 0.1), "blue": (0.15, 0.25, 0.8), "green": (0.15, 0.6, 0.2), "yellow": (0.92, 0.85, 0.15),
    "white": (0.93, 0.93, 0.93), "black": (0.08, 0.08, 0.08), "grey": (0.5, 0.5, 0.5),
    "orange": (0.95, 0.5, 0.1), "purple": (0.5, 0.2, 0.65), "pink": (0.95, 0.55, 0.7), "brown": (0.45, 0.28, 0.12),
}
_SKIN = ((0.96, 0.8, 0.69), (0.88, 0.67, 0.52), (0.72, 0.5, 0.36), (0.55, 0.36, 0.24), (0.36, 0.23, 0.15))
_HAIR = ((0.1, 0.07, 0.05), (0.35, 0.2, 0.1), (0.75, 0.6, 0.3), (0.6, 0.6, 0.6), (0.55, 0.15, 0.05))
TRUNCATION_PROBABILITY = 0.12   # samples framed so tight or off-centre that limbs leave the image
OCCLUDER_PROBABILITY = 0.25
SELF_OCCLUSION_TOLERANCE = 0.03  # metres (x body height) a surface may lie in front of a joint's own


@dataclass
class PersonSample:
    """A rendered person. ``keypoints`` (17, 3) are COCO ``[x, y, v]`` in image pixels;
    ``figure_mask`` marks pixels mostly covered by the person (not props, not occluders);
    ``occluder_coverage`` is the fraction of each pixel hidden by occluders in front of the person."""

    image: np.ndarray
    keypoints: np.ndarray
    caption: str
    pose: PoseSpec
    camera: Camera
    body: Body
    figure_mask: np.ndarray
    occluder_coverage: np.ndarray
    meta: dict = field(default_factory=dict)


def _rng(seed) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def sample_camera(rng: np.random.Generator, body: Body, lying: bool) -> Camera:
    """Random yaw (any side), pitch (-10..50 degrees; higher for lying people) and distance, aimed at
    the middle of the body's bounding box."""
    f = body.figure
    pts = np.concatenate([body.p0[f], body.p1[f]])
    target = (pts.min(0) + pts.max(0)) / 2 + rng.normal(0, 0.05, 3)
    pitch = rng.uniform(15, 60) if lying else rng.uniform(-10, 50)
    return Camera(yaw=float(rng.uniform(-180, 180)), pitch=float(pitch), distance=float(rng.uniform(2.5, 7.0)),
                  target=tuple(float(v) for v in target))


def _frame(rng, cam: Camera, body: Body, size: int) -> Camera:
    f = body.figure
    if rng.random() < TRUNCATION_PROBABILITY:
        fill, offset = rng.uniform(1.0, 1.6), rng.uniform(-0.35, 0.35, 2) * size
    else:
        fill, offset = rng.uniform(0.55, 0.9), rng.uniform(-0.08, 0.08, 2) * size
    cam = frame_camera(cam, body.p0[f], body.p1[f], body.r0[f], body.r1[f], size, fill, offset)
    # keep the torso (hips, shoulders) inside the image so every sample has a valid pose reference
    torso = cam.project(body.keypoints3d[[LEFT_HIP, RIGHT_HIP, LEFT_SHOULDER, RIGHT_SHOULDER]])[:, :2]
    margin = 1.0
    shift = np.maximum(0, margin - torso.min(0)) - np.maximum(0, torso.max(0) - (size - margin))
    return Camera(cam.yaw, cam.pitch, cam.distance, cam.target, cam.focal, cam.cx + shift[0], cam.cy + shift[1])


def _colours(rng, body: Body):
    shirt, trousers = (str(c) for c in rng.choice(list(CLOTHING_COLOURS), 2))
    table = np.zeros((6, 3))
    table[SKIN] = _SKIN[rng.integers(len(_SKIN))]
    table[SHIRT] = CLOTHING_COLOURS[shirt]
    table[TROUSERS] = CLOTHING_COLOURS[trousers]
    table[SHOES] = rng.uniform(0.05, 0.5, 3)
    table[HAIR] = _HAIR[rng.integers(len(_HAIR))]
    table[PROP] = rng.uniform(0.2, 0.7, 3)
    table = np.clip(table + rng.normal(0, 0.04, table.shape), 0, 1)
    return table[body.material], (shirt, trousers)


def keypoint_visibility(body: Body, cam: Camera, raster: render.Raster, occluded_px: np.ndarray, size: int,
                        supersample: int, tolerance: float) -> np.ndarray:
    """COCO keypoints ``(17, 3)`` for a rendered body: x, y in pixels and v = 0 outside the image
    (x = y = 0 then), 1 hidden (behind the body, a prop or an occluder), 2 visible."""
    uvz = cam.project(body.keypoints3d)
    out = np.zeros((NUM_KEYPOINTS, 3))
    n = size * supersample
    for j, (u, v, z) in enumerate(uvz):
        if not (0 <= u < size and 0 <= v < size and z > 0):
            continue
        px, py = min(int(u * supersample), n - 1), min(int(v * supersample), n - 1)
        idx = raster.index[py, px]
        seen = (idx >= 0 and bool(body.figure[idx])
                and raster.depth[py, px] >= z - body.keypoint_radius[j] - tolerance
                and not occluded_px[py, px])
        out[j] = (u, v, 2 if seen else 1)
    return out


def sample_person(seed, size: int = 64, supersample: int = 2, activity: str | None = None,
                  occluders: bool = True, plain_background: tuple[float, float, float] | None = None) -> PersonSample:
    """Generate one person. ``seed`` is an int (or sequence of ints) or a ``numpy.random.Generator``.

    ``activity`` fixes the activity; ``occluders=False`` turns off shapes in front of the person and
    ``plain_background`` replaces the textured background with one flat colour (both for tests; pose and
    camera stay the same, later draws such as the caption may differ).
    """
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    rng = _rng(seed)
    spec = sample_pose(rng, activity)
    shape = BodyShape.random(rng)
    body = forward_kinematics(spec.angles, shape, lift=spec.lift, seat=spec.seat,
                              long_sleeves=bool(rng.random() < 0.6), long_trousers=bool(rng.random() < 0.75))
    cam = _frame(rng, sample_camera(rng, body, spec.activity == "lying"), body, size)
    raster = render.rasterize_capsules(cam, body.p0, body.p1, body.r0, body.r1, size, supersample)
    colours, clothing = _colours(rng, body)

    if plain_background is not None:
        img = np.broadcast_to(np.asarray(plain_background, float), raster.depth.shape + (3,)).copy()
    else:
        img = render.background(rng, cam, size, supersample)
    hit = raster.index >= 0
    idx = np.where(hit, raster.index, 0)
    lit = colours[idx] * (0.35 + 0.65 * raster.shade)[..., None]
    if rng.random() < 0.3:  # striped shirt
        stripes = (np.floor(raster.t * rng.uniform(3, 8)) % 2)[..., None]
        lit = np.where((body.material[idx] == SHIRT)[..., None], lit * (1 - 0.3 * stripes), lit)
    img = np.where(hit[..., None], lit, img)

    figure_px = hit & body.figure[idx]
    occluded_px = np.zeros_like(hit)
    if occluders and rng.random() < OCCLUDER_PROBABILITY and figure_px.any():
        ys, xs = np.nonzero(figure_px)
        bbox = (xs.min() / supersample, ys.min() / supersample,
                (xs.max() + 1) / supersample, (ys.max() + 1) / supersample)
        img, occluded_px = render.occluders(rng, img, bbox, size, supersample, int(rng.integers(1, 3)))
    image = (np.clip(render.downsample(img, supersample), 0, 1) * 255 + 0.5).astype(np.uint8)

    keypoints = keypoint_visibility(body, cam, raster, occluded_px, size, supersample,
                                    SELF_OCCLUSION_TOLERANCE * shape.height)
    text = caption(rng, spec.activity, spec.variant, spec.arms, cam.yaw, cam.pitch, clothing)
    figure_mask = render.downsample((figure_px & ~occluded_px).astype(float), supersample) >= 0.5
    meta = {"activity": spec.activity, "variant": spec.variant, "arms": spec.arms,
            "view": view_name(cam.yaw), "camera": {"yaw": round(cam.yaw, 2), "pitch": round(cam.pitch, 2),
                                                    "distance": round(cam.distance, 3)},
            "clothing": {"top": clothing[0], "trousers": clothing[1]},
            "angles": {k: round(v, 2) for k, v in spec.angles.items()},
            "keypoints_3d": np.round(body.keypoints3d, 4).tolist()}
    return PersonSample(image, keypoints, text, spec, cam, body, figure_mask,
                        render.downsample(occluded_px.astype(float), supersample), meta)

"""A pinhole camera orbiting the person: yaw/pitch/distance, projection and framing.

Yaw is measured around the vertical axis from the person's front: 0 = camera in front of the
person, +90 = camera on the person's left side, -90 = on their right side, 180 = behind. Pitch is the
camera's elevation above the target (positive = looking down).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Camera:
    """Camera placement (degrees, metres), focal length and principal point (pixels)."""

    yaw: float
    pitch: float
    distance: float
    target: tuple[float, float, float]
    focal: float = 1.0
    cx: float = 0.0
    cy: float = 0.0

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Camera centre and its right, down and forward unit vectors (world frame)."""
        y, p = np.radians(self.yaw), np.radians(self.pitch)
        target = np.asarray(self.target, dtype=float)
        centre = target + self.distance * np.array([np.sin(y) * np.cos(p), np.sin(p), np.cos(y) * np.cos(p)])
        forward = target - centre
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 1.0, 0.0])
        right /= np.linalg.norm(right)
        down = np.cross(forward, right)
        return centre, right, down, forward

    def to_camera(self, points) -> np.ndarray:
        """World points (..., 3) to camera coordinates (x right, y down, z depth along the view)."""
        c, r, d, f = self.basis()
        rel = np.asarray(points, dtype=float) - c
        return np.stack([rel @ r, rel @ d, rel @ f], axis=-1)

    def project(self, points) -> np.ndarray:
        """World points (..., 3) to ``(u, v, depth)`` with u, v in pixels (x right, y down)."""
        pc = self.to_camera(points)
        z = pc[..., 2]
        return np.stack([self.cx + self.focal * pc[..., 0] / z, self.cy + self.focal * pc[..., 1] / z, z], axis=-1)

    def horizon_row(self) -> float:
        """Image row where the horizon (the ground plane at infinity) appears."""
        return self.cy - self.focal * np.tan(np.radians(self.pitch))


def frame_camera(cam: Camera, p0, p1, r0, r1, size: int, fill: float, offset=(0.0, 0.0)) -> Camera:
    """Return ``cam`` with focal length and principal point chosen so that the capsules' projected
    bounding box spans ``fill`` x ``size`` pixels along its longer side, centred at the image centre
    plus ``offset`` (pixels)."""
    unit = Camera(cam.yaw, cam.pitch, cam.distance, cam.target)
    pts = np.concatenate([unit.project(p0), unit.project(p1)])
    rad = np.concatenate([r0, r1]) / pts[:, 2]
    lo = (pts[:, :2] - rad[:, None]).min(0)
    hi = (pts[:, :2] + rad[:, None]).max(0)
    focal = fill * size / max(float((hi - lo).max()), 1e-9)
    centre = (lo + hi) / 2 * focal
    cx = size / 2 + offset[0] - centre[0]
    cy = size / 2 + offset[1] - centre[1]
    return Camera(cam.yaw, cam.pitch, cam.distance, cam.target, focal, cx, cy)

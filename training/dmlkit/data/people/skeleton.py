"""A 3-D kinematic skeleton: joint angles with anatomical limits -> 3-D joints and body capsules.

World frame: metres, y up, the body faces +z, the person's left is +x, the ground is y = 0.
Angles are in degrees; ``JOINT_LIMITS`` holds the allowed range of each. Conventions (positive =):

* ``spine_flex`` bend forward, ``spine_side`` lean to the person's left, ``spine_twist`` turn the
  chest to the left; ``neck_flex`` look down, ``neck_turn`` look left, ``neck_tilt`` ear to the left
  shoulder.
* ``{l,r}_shoulder_flex`` raise the arm forward (180 = straight up), ``_abd`` raise it sideways away
  from the body (negative = across the body), ``_rot`` internal rotation of the upper arm (turns the
  elbow's bending plane towards the midline), ``{l,r}_elbow`` bend the elbow (0 = straight).
* ``{l,r}_hip_flex`` swing the thigh forward, ``_abd`` spread it sideways, ``_rot`` internal
  rotation; ``{l,r}_knee`` bend the knee (0 = straight).
* ``body_pitch`` tips the whole body forward (90 = lying face down, -90 = lying on the back),
  ``body_roll`` onto its left side (positive) or right side (negative).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .keypoints import INDEX, NUM_KEYPOINTS

JOINT_LIMITS: dict[str, tuple[float, float]] = {
    "spine_flex": (-30, 90), "spine_side": (-35, 35), "spine_twist": (-45, 45),
    "neck_flex": (-45, 60), "neck_turn": (-75, 75), "neck_tilt": (-35, 35),
    "body_pitch": (-90, 90), "body_roll": (-90, 90),
}
for _s in ("l", "r"):
    JOINT_LIMITS.update({
        f"{_s}_shoulder_flex": (-60, 180), f"{_s}_shoulder_abd": (-40, 180), f"{_s}_shoulder_rot": (-90, 90),
        f"{_s}_elbow": (0, 150),
        f"{_s}_hip_flex": (-30, 130), f"{_s}_hip_abd": (-30, 70), f"{_s}_hip_rot": (-45, 45),
        f"{_s}_knee": (0, 155),
    })
ANGLE_NAMES: tuple[str, ...] = tuple(JOINT_LIMITS)

# Materials of the body capsules; the renderer gives each a colour.
SKIN, SHIRT, TROUSERS, SHOES, HAIR, PROP = range(6)


def neutral_angles() -> dict[str, float]:
    """Standing straight, arms hanging: every angle 0."""
    return {k: 0.0 for k in ANGLE_NAMES}


def clip_to_limits(angles: dict[str, float]) -> dict[str, float]:
    """A copy of ``angles`` with every value clipped into ``JOINT_LIMITS``; unknown names raise."""
    unknown = set(angles) - set(JOINT_LIMITS)
    if unknown:
        raise ValueError(f"unknown joint angles: {sorted(unknown)}")
    out = neutral_angles()
    for k, v in angles.items():
        lo, hi = JOINT_LIMITS[k]
        out[k] = float(min(max(v, lo), hi))
    return out


@dataclass(frozen=True)
class BodyShape:
    """Segment lengths (metres) and a build factor that scales limb thickness."""

    height: float = 1.0      # multiplies every length
    build: float = 1.0       # multiplies every radius
    spine: float = 0.50
    neck: float = 0.09
    head_radius: float = 0.105
    shoulder_half_width: float = 0.18
    hip_half_width: float = 0.10
    upper_arm: float = 0.30
    forearm: float = 0.26
    hand: float = 0.08
    thigh: float = 0.45
    shin: float = 0.43
    foot: float = 0.19

    @staticmethod
    def random(rng: np.random.Generator) -> "BodyShape":
        """A random adult-ish body: overall size and thickness vary, proportions a little."""
        j = lambda: float(rng.uniform(0.93, 1.07))  # noqa: E731 - per-segment proportion jitter
        return BodyShape(height=float(rng.uniform(0.85, 1.12)), build=float(rng.uniform(0.75, 1.35)),
                         spine=0.50 * j(), shoulder_half_width=0.18 * j(), hip_half_width=0.10 * j(),
                         upper_arm=0.30 * j(), forearm=0.26 * j(), thigh=0.45 * j(), shin=0.43 * j(),
                         head_radius=0.105 * float(rng.uniform(0.95, 1.1)))


def _rx(deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(deg):
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


_DOWN = np.array([0.0, -1.0, 0.0])
_UP = np.array([0.0, 1.0, 0.0])


@dataclass
class Body:
    """A posed body: named 3-D points, the COCO-17 joints, and the capsules that draw it.

    ``capsules``: ``p0``, ``p1`` (K, 3) end points, ``r0``, ``r1`` (K,) radii, ``material`` (K,);
    ``figure`` (K,) is False for props (a seat) that are not part of the person.
    ``keypoint_radius`` (17,): how far under the surface each joint may lie and still be visible.
    """

    points: dict[str, np.ndarray]
    keypoints3d: np.ndarray
    keypoint_radius: np.ndarray
    p0: np.ndarray
    p1: np.ndarray
    r0: np.ndarray
    r1: np.ndarray
    material: np.ndarray
    figure: np.ndarray

    def translate(self, t) -> None:
        t = np.asarray(t, dtype=float)
        for k in self.points:
            self.points[k] = self.points[k] + t
        self.keypoints3d = self.keypoints3d + t
        self.p0, self.p1 = self.p0 + t, self.p1 + t

    def lowest_surface(self) -> float:
        """Lowest y of any capsule surface of the figure (props excluded)."""
        f = self.figure
        return float(min((self.p0[f, 1] - self.r0[f]).min(), (self.p1[f, 1] - self.r1[f]).min()))


def forward_kinematics(angles: dict[str, float], shape: BodyShape = BodyShape(), *, lift: float = 0.0,
                       seat: bool = False, long_sleeves: bool = True, long_trousers: bool = True) -> Body:
    """Pose the skeleton. Angles are clipped to ``JOINT_LIMITS`` first.

    The body is placed with its lowest surface on the ground (y = 0), raised by ``lift`` metres (a
    jump). ``seat=True`` adds a stool under the pelvis (for sitting on a chair).
    """
    a = clip_to_limits(angles)
    L, b = shape.height, shape.build
    pts: dict[str, np.ndarray] = {}
    r_root = _rz(-a["body_roll"]) @ _rx(a["body_pitch"])
    pts["pelvis"] = np.zeros(3)
    r_spine = r_root @ _ry(a["spine_twist"]) @ _rz(-a["spine_side"]) @ _rx(a["spine_flex"])
    pts["chest"] = r_spine @ (_UP * shape.spine * L)
    pts["upper_spine"] = r_spine @ (_UP * (shape.spine - 0.1) * L)  # keeps the torso below the shoulders
    r_head = r_spine @ _ry(a["neck_turn"]) @ _rz(-a["neck_tilt"]) @ _rx(a["neck_flex"])
    hr = shape.head_radius * L
    pts["neck_top"] = pts["chest"] + r_head @ (_UP * shape.neck * L)
    hc = pts["neck_top"] + r_head @ np.array([0.0, 0.85 * hr, 0.1 * hr])
    pts["head"] = hc
    pts["hair"] = hc + r_head @ np.array([0.0, 0.2 * hr, -0.22 * hr])
    pts["nose"] = hc + r_head @ np.array([0.0, -0.15 * hr, 1.02 * hr])
    for side, s in (("left", 1.0), ("right", -1.0)):
        p = side[0]
        pts[f"{side}_eye"] = hc + r_head @ np.array([s * 0.38 * hr, 0.18 * hr, 0.88 * hr])
        pts[f"{side}_ear"] = hc + r_head @ np.array([s * 0.96 * hr, 0.0, -0.05 * hr])
        pts[f"{side}_shoulder"] = pts["chest"] + r_spine @ np.array([s * shape.shoulder_half_width * L, -0.02 * L, 0])
        r_ua = (r_spine @ _rz(s * a[f"{p}_shoulder_abd"]) @ _rx(-a[f"{p}_shoulder_flex"])
                @ _ry(-s * a[f"{p}_shoulder_rot"]))
        pts[f"{side}_elbow"] = pts[f"{side}_shoulder"] + r_ua @ (_DOWN * shape.upper_arm * L)
        r_fa = r_ua @ _rx(-a[f"{p}_elbow"])
        pts[f"{side}_wrist"] = pts[f"{side}_elbow"] + r_fa @ (_DOWN * shape.forearm * L)
        pts[f"{side}_hand"] = pts[f"{side}_wrist"] + r_fa @ (_DOWN * shape.hand * L)
        pts[f"{side}_hip"] = r_root @ np.array([s * shape.hip_half_width * L, -0.04 * L, 0])
        r_th = r_root @ _rz(s * a[f"{p}_hip_abd"]) @ _rx(-a[f"{p}_hip_flex"]) @ _ry(-s * a[f"{p}_hip_rot"])
        pts[f"{side}_knee"] = pts[f"{side}_hip"] + r_th @ (_DOWN * shape.thigh * L)
        r_sh = r_th @ _rx(a[f"{p}_knee"])
        pts[f"{side}_ankle"] = pts[f"{side}_knee"] + r_sh @ (_DOWN * shape.shin * L)
        pts[f"{side}_toe"] = pts[f"{side}_ankle"] + r_sh @ np.array([0.0, -0.05 * L, shape.foot * L])

    arm_m = SHIRT if long_sleeves else SKIN
    leg_m = TROUSERS if long_trousers else SKIN
    caps = [  # (from, to, r_from, r_to, material); radii in metres before the build factor
        ("left_hip", "right_hip", 0.085, 0.085, TROUSERS),
        ("pelvis", "upper_spine", 0.115, 0.125, SHIRT),
        ("left_hip", "left_shoulder", 0.075, 0.07, SHIRT),
        ("right_hip", "right_shoulder", 0.075, 0.07, SHIRT),
        ("left_shoulder", "right_shoulder", 0.06, 0.06, SHIRT),
        ("chest", "neck_top", 0.045, 0.042, SKIN),
        ("head", "head", hr / L / b, hr / L / b, SKIN),
        ("hair", "hair", 0.97 * hr / L / b, 0.97 * hr / L / b, HAIR),
    ]
    for side in ("left", "right"):
        caps += [
            (f"{side}_shoulder", f"{side}_elbow", 0.05, 0.04, SHIRT),
            (f"{side}_elbow", f"{side}_wrist", 0.04, 0.032, arm_m),
            (f"{side}_wrist", f"{side}_hand", 0.03, 0.028, SKIN),
            (f"{side}_hip", f"{side}_knee", 0.078, 0.055, TROUSERS),
            (f"{side}_knee", f"{side}_ankle", 0.052, 0.04, leg_m),
            (f"{side}_ankle", f"{side}_toe", 0.04, 0.034, SHOES),
        ]
    p0 = np.array([pts[c[0]] for c in caps])
    p1 = np.array([pts[c[1]] for c in caps])
    scale = L * b
    r0 = np.array([c[2] for c in caps]) * scale
    r1 = np.array([c[3] for c in caps]) * scale
    material = np.array([c[4] for c in caps])
    figure = np.ones(len(caps), dtype=bool)

    kp3 = np.array([pts[n] for n in (
        "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
        "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle")])
    # How far under the visible surface each joint may lie and still count as seen: a limb joint sits
    # on its capsule's axis; face points sit on the head's surface, which curves away from the camera.
    depth = np.full(NUM_KEYPOINTS, 0.45 * hr)
    for name, r in (("shoulder", 0.06), ("elbow", 0.042), ("wrist", 0.032), ("hip", 0.085), ("knee", 0.055),
                    ("ankle", 0.04)):
        depth[INDEX[f"left_{name}"]] = depth[INDEX[f"right_{name}"]] = r * scale
    body = Body(pts, kp3, depth, p0, p1, r0, r1, material, figure)
    body.translate([0.0, -body.lowest_surface() + lift, 0.0])
    if seat:
        _add_seat(body, shape)
    return body


def _add_seat(body: Body, shape: BodyShape) -> None:
    """A stool under the pelvis: a thick horizontal disc-like capsule and one leg down to the floor."""
    pelvis, L = body.points["pelvis"], shape.height
    top = pelvis[1] - 0.12 * L * shape.build
    if top < 0.15:  # nothing to sit on that low
        return
    centre = np.array([pelvis[0], top - 0.04, pelvis[2]])
    w = 0.2 * L
    p0 = np.array([[centre[0] - w, centre[1], centre[2]], [centre[0], centre[1], centre[2]]])
    p1 = np.array([[centre[0] + w, centre[1], centre[2]], [centre[0], 0.02, centre[2]]])
    body.p0 = np.vstack([body.p0, p0])
    body.p1 = np.vstack([body.p1, p1])
    body.r0 = np.concatenate([body.r0, [0.05, 0.035]])
    body.r1 = np.concatenate([body.r1, [0.05, 0.035]])
    body.material = np.concatenate([body.material, [PROP, PROP]])
    body.figure = np.concatenate([body.figure, [False, False]])

"""Random joint angles for named activities and arm poses.

``sample_pose(rng)`` draws an activity (what the body does: standing, kneeling, ...) with a variant
(on one knee / on both knees, ...) and an arm pose (raised, crossed, ...), then the joint angles for
them with random variation. Every angle stays inside ``skeleton.JOINT_LIMITS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .skeleton import clip_to_limits, neutral_angles

ACTIVITIES: tuple[str, ...] = ("standing", "walking", "running", "sitting", "squatting", "kneeling", "lying",
                               "jumping", "reaching", "bending")
ARM_POSES: tuple[str, ...] = ("neutral", "swinging", "left_raised", "right_raised", "both_raised", "out",
                              "crossed", "hands_on_hips", "left_forward", "right_forward", "left_up", "right_up")
VARIANTS: dict[str, tuple[str, ...]] = {
    "standing": ("plain",), "walking": ("plain",), "running": ("plain",),
    "sitting": ("stool", "ground_legs_out", "ground_knees_up", "cross_legged"),
    "squatting": ("plain",), "kneeling": ("one_knee", "both_knees"),
    "lying": ("back", "front", "left_side", "right_side"), "jumping": ("tuck", "star", "straight"),
    "reaching": ("forward", "up"), "bending": ("plain",),
}
# Which arm poses go with which activity (reaching picks its own).
_ARMS_FOR: dict[str, tuple[str, ...]] = {
    "standing": ("neutral", "left_raised", "right_raised", "both_raised", "out", "crossed", "hands_on_hips"),
    "walking": ("swinging", "swinging", "swinging", "left_raised", "right_raised", "crossed"),
    "running": ("swinging",),
    "sitting": ("neutral", "left_raised", "right_raised", "both_raised", "out", "crossed"),
    "squatting": ("neutral", "left_forward", "right_forward", "both_raised", "crossed", "out"),
    "kneeling": ("neutral", "left_raised", "right_raised", "both_raised", "out", "crossed", "hands_on_hips"),
    "lying": ("neutral", "both_raised", "out"),
    "jumping": ("neutral", "both_raised", "out"),
    "reaching": (),
    "bending": ("neutral",),
}


@dataclass
class PoseSpec:
    """What was sampled: activity, its variant, arm pose, joint angles (degrees), jump height
    (metres) and whether the person sits on a stool."""

    activity: str
    variant: str
    arms: str
    angles: dict[str, float] = field(default_factory=neutral_angles)
    lift: float = 0.0
    seat: bool = False


def _set_arm(a: dict, side: str, rng: np.random.Generator, kind: str) -> None:
    u = rng.uniform
    p = side[0]
    if kind == "neutral":
        v = (u(-10, 15), u(3, 15), u(-10, 20), u(0, 25))
    elif kind == "raised":
        v = (u(150, 180), u(0, 20), u(-10, 10), u(0, 30)) if rng.random() < 0.6 else \
            (u(0, 20), u(140, 175), u(-10, 10), u(0, 30))
    elif kind == "out":
        v = (u(-10, 20), u(75, 100), u(-20, 20), u(0, 15))
    elif kind == "crossed":
        v = (u(55, 75), u(-20, 0), u(75, 90), u(110, 130))
    elif kind == "on_hip":
        v = (u(-15, 5), u(40, 55), u(70, 90), u(95, 120))
    elif kind == "forward":
        v = (u(75, 105), u(-10, 15), u(-10, 10), u(0, 15))
    elif kind == "up":
        v = (u(155, 180), u(0, 15), u(-10, 10), u(0, 10))
    else:
        raise ValueError(f"unknown arm kind {kind!r}")
    a[f"{p}_shoulder_flex"], a[f"{p}_shoulder_abd"], a[f"{p}_shoulder_rot"], a[f"{p}_elbow"] = v


def _arms(a: dict, arms: str, rng: np.random.Generator) -> None:
    both = {"neutral": ("neutral", "neutral"), "both_raised": ("raised", "raised"), "out": ("out", "out"),
            "crossed": ("crossed", "crossed"), "hands_on_hips": ("on_hip", "on_hip"),
            "left_raised": ("raised", "neutral"), "right_raised": ("neutral", "raised"),
            "left_forward": ("forward", "neutral"), "right_forward": ("neutral", "forward"),
            "left_up": ("up", "neutral"), "right_up": ("neutral", "up")}
    if arms == "swinging":
        return  # set by the gait
    left, right = both[arms]
    _set_arm(a, "left", rng, left)
    _set_arm(a, "right", rng, right)


def _legs(a: dict, side: str, flex, abd, rot, knee) -> None:
    p = side[0]
    a[f"{p}_hip_flex"], a[f"{p}_hip_abd"], a[f"{p}_hip_rot"], a[f"{p}_knee"] = flex, abd, rot, knee


def sample_pose(rng: np.random.Generator, activity: str | None = None, variant: str | None = None,
                arms: str | None = None) -> PoseSpec:
    """Draw a pose; ``activity``, ``variant`` and ``arms`` fix those choices (``arms`` must suit the
    activity only loosely: any arm pose is accepted)."""
    u = rng.uniform
    activity = activity or str(rng.choice(ACTIVITIES))
    if activity not in VARIANTS:
        raise ValueError(f"unknown activity {activity!r}; choose from {', '.join(ACTIVITIES)}")
    variant = variant or str(rng.choice(VARIANTS[activity]))
    if variant not in VARIANTS[activity]:
        raise ValueError(f"unknown variant {variant!r} for {activity}; choose from {VARIANTS[activity]}")
    if activity == "reaching":
        hand = str(rng.choice(("left", "right")))
        arms = arms or f"{hand}_{'forward' if variant == 'forward' else 'up'}"
    arms = arms or str(rng.choice(_ARMS_FOR[activity]))
    if arms not in ARM_POSES:
        raise ValueError(f"unknown arm pose {arms!r}; choose from {', '.join(ARM_POSES)}")
    spec = PoseSpec(activity, variant, arms)
    a = spec.angles
    a.update(spine_flex=u(-5, 10), spine_side=u(-6, 6), spine_twist=u(-12, 12),
             neck_flex=u(-15, 20), neck_turn=u(-35, 35), neck_tilt=u(-10, 10))
    for s in ("left", "right"):
        _legs(a, s, u(-5, 10), u(0, 12), u(-10, 10), u(0, 10))
    lead = str(rng.choice(("left", "right")))
    trail = "right" if lead == "left" else "left"

    if activity == "walking":
        _legs(a, lead, u(15, 35), u(0, 8), u(-5, 5), u(0, 15))
        _legs(a, trail, -u(10, 25), u(0, 8), u(-5, 5), u(10, 45))
        swing = u(15, 35)
        a[f"{trail[0]}_shoulder_flex"], a[f"{lead[0]}_shoulder_flex"] = swing, -u(10, 30)
        a["l_elbow"], a["r_elbow"] = u(10, 40), u(10, 40)
        a["l_shoulder_abd"], a["r_shoulder_abd"] = u(3, 10), u(3, 10)
    elif activity == "running":
        _legs(a, lead, u(45, 85), u(0, 10), u(-5, 5), u(40, 100))
        _legs(a, trail, -u(10, 30), u(0, 10), u(-5, 5), u(50, 120))
        a["spine_flex"] = u(8, 25)
        a[f"{trail[0]}_shoulder_flex"], a[f"{lead[0]}_shoulder_flex"] = u(30, 60), -u(20, 50)
        a["l_elbow"], a["r_elbow"] = u(70, 100), u(70, 100)
        a["l_shoulder_abd"], a["r_shoulder_abd"] = u(5, 15), u(5, 15)
        spec.lift = u(0.0, 0.12)
    elif activity == "sitting":
        a["spine_flex"] = u(-10, 20)
        if variant == "stool":
            for s in ("left", "right"):
                _legs(a, s, u(80, 100), u(0, 20), u(-10, 10), u(70, 110))
            spec.seat = True
        elif variant == "ground_legs_out":
            for s in ("left", "right"):
                _legs(a, s, u(75, 95), u(0, 15), u(-10, 10), u(0, 30))
        elif variant == "ground_knees_up":
            for s in ("left", "right"):
                _legs(a, s, u(95, 120), u(5, 20), u(-10, 10), u(100, 140))
        else:
            for s in ("left", "right"):
                _legs(a, s, u(75, 100), u(40, 60), -u(25, 40), u(130, 150))
    elif activity == "squatting":
        for s in ("left", "right"):
            _legs(a, s, u(100, 128), u(10, 35), u(-15, 5), u(120, 150))
        a["spine_flex"] = u(15, 45)
    elif activity == "kneeling":
        if variant == "one_knee":
            _legs(a, lead, u(75, 100), u(0, 15), u(-5, 5), u(80, 100))
            _legs(a, trail, u(-10, 10), u(0, 10), u(-5, 5), u(85, 100))
        else:
            for s in ("left", "right"):
                _legs(a, s, u(-5, 15), u(0, 12), u(-5, 5), u(85, 110))
    elif activity == "lying":
        a["body_pitch"], a["body_roll"] = {"back": (-90, 0), "front": (90, 0), "left_side": (0, 90),
                                           "right_side": (0, -90)}[variant]
        a["spine_flex"] = u(-5, 10)
        side = variant.endswith("side")
        for s in ("left", "right"):
            _legs(a, s, u(20, 60) if side else u(-5, 20), u(0, 15), u(-10, 10), u(30, 80) if side else u(0, 30))
    elif activity == "jumping":
        spec.lift = u(0.15, 0.45)
        if variant == "tuck":
            for s in ("left", "right"):
                _legs(a, s, u(30, 80), u(0, 15), u(-5, 5), u(50, 110))
        elif variant == "star":
            for s in ("left", "right"):
                _legs(a, s, u(-5, 10), u(20, 40), u(-5, 5), u(0, 10))
            arms = spec.arms = "both_raised" if rng.random() < 0.5 else "out"
        else:
            for s in ("left", "right"):
                _legs(a, s, u(0, 20), u(0, 10), u(-5, 5), u(0, 30))
    elif activity == "reaching":
        a["spine_flex"] = u(5, 25) if variant == "forward" else u(-10, 5)
        a["spine_side"] = u(-10, 10)
    elif activity == "bending":
        a["spine_flex"] = u(55, 90)
        for s in ("left", "right"):
            _legs(a, s, u(0, 20), u(0, 10), u(-5, 5), u(0, 25))

    _arms(a, arms, rng)
    if activity == "bending":  # arms hang towards the ground rather than along the bent back
        for p in ("l", "r"):
            a[f"{p}_shoulder_flex"] = a["spine_flex"] + u(-15, 15)
    spec.angles = clip_to_limits(a)
    return spec

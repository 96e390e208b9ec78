"""Captions from pose and view, with varied wording.

A caption names the activity (always), the arm pose (when it is notable), the viewpoint (always) and
sometimes the clothing colours, in a few sentence shapes and with synonyms, e.g.
"a person kneeling on one knee with the left arm raised, seen from the right".
Left and right are the person's own.
"""

from __future__ import annotations

import numpy as np

_ACTIVITY = {
    ("standing", "plain"): ["standing", "standing upright", "standing still"],
    ("walking", "plain"): ["walking", "walking along", "taking a step while walking"],
    ("running", "plain"): ["running", "jogging", "running fast"],
    ("sitting", "stool"): ["sitting on a stool", "seated on a stool", "sitting on a seat"],
    ("sitting", "ground_legs_out"): ["sitting on the ground with legs stretched out",
                                     "sitting on the floor, legs out"],
    ("sitting", "ground_knees_up"): ["sitting on the ground with knees drawn up",
                                     "sitting on the floor hugging the knees"],
    ("sitting", "cross_legged"): ["sitting cross-legged", "sitting on the floor with legs crossed"],
    ("squatting", "plain"): ["squatting", "crouching down", "in a deep squat"],
    ("kneeling", "one_knee"): ["kneeling on one knee", "down on one knee", "kneeling on one leg"],
    ("kneeling", "both_knees"): ["kneeling", "kneeling on both knees", "on both knees"],
    ("lying", "back"): ["lying on their back", "lying face up"],
    ("lying", "front"): ["lying face down", "lying on their stomach"],
    ("lying", "left_side"): ["lying on their left side", "lying on the left side"],
    ("lying", "right_side"): ["lying on their right side", "lying on the right side"],
    ("jumping", "tuck"): ["jumping with knees tucked", "jumping up", "leaping with bent knees"],
    ("jumping", "star"): ["doing a star jump", "jumping with legs apart"],
    ("jumping", "straight"): ["jumping", "leaping into the air", "jumping straight up"],
    ("reaching", "forward"): ["reaching forward", "reaching out in front"],
    ("reaching", "up"): ["reaching up", "reaching upwards", "stretching up to reach"],
    ("bending", "plain"): ["bending forward", "bending over", "bending down at the waist"],
}
_ARMS = {
    "neutral": [""],
    "swinging": [""],
    "left_raised": ["with the left arm raised", "raising the left arm", "with the left hand up"],
    "right_raised": ["with the right arm raised", "raising the right arm", "with the right hand up"],
    "both_raised": ["with both arms raised", "with both arms up", "with arms raised above the head"],
    "out": ["with arms stretched out to the sides", "with arms out wide", "with both arms held out"],
    "crossed": ["with arms crossed", "with folded arms", "with the arms crossed over the chest"],
    "hands_on_hips": ["with hands on hips", "with both hands on the hips"],
    "left_forward": ["with the left arm forward", "holding the left arm out in front"],
    "right_forward": ["with the right arm forward", "holding the right arm out in front"],
    "left_up": ["with the left hand", "using the left arm"],
    "right_up": ["with the right hand", "using the right arm"],
}
_SUBJECT = ["a person", "someone", "a figure", "one person", "a single person"]
_SECTORS = [  # centred on the camera yaw, 45 degrees each
    (0, ["seen from the front", "facing the camera", "viewed from the front"]),
    (45, ["seen from the front left", "viewed from the front left", "seen from the left front"]),
    (90, ["seen from the left", "viewed from the left side", "in profile from the left"]),
    (135, ["seen from behind on the left", "viewed from the back left"]),
    (180, ["seen from behind", "with their back to the camera", "viewed from the back"]),
    (-135, ["seen from behind on the right", "viewed from the back right"]),
    (-90, ["seen from the right", "viewed from the right side", "in profile from the right"]),
    (-45, ["seen from the front right", "viewed from the front right", "seen from the right front"]),
]


def view_name(yaw: float) -> str:
    """The 45-degree sector of a camera yaw: front, front_left, left, back_left, back, back_right,
    right or front_right (left/right = the person's side the camera is on)."""
    names = ["front", "front_left", "left", "back_left", "back", "back_right", "right", "front_right"]
    return names[int(np.floor(((yaw + 22.5) % 360) / 45)) % 8]


def view_phrases(yaw: float) -> list[str]:
    """Ways of saying the viewpoint of a camera at ``yaw`` degrees."""
    return _SECTORS[int(np.floor(((yaw + 22.5) % 360) / 45)) % 8][1]


def caption(rng: np.random.Generator, activity: str, variant: str, arms: str, yaw: float, pitch: float,
            clothing: tuple[str, str] | None = None) -> str:
    """One caption for a pose and view; ``clothing`` = (shirt colour, trousers colour) names, used at
    random. Deterministic given ``rng``'s state."""
    pick = lambda xs: xs[int(rng.integers(len(xs)))]  # noqa: E731
    act = pick(_ACTIVITY[(activity, variant)])
    arm = pick(_ARMS[arms])
    view = pick(view_phrases(yaw))
    if pitch > 35:
        view += pick([" from above", " from a high angle"])
    elif pitch < 0:
        view += pick([" from below", " from a low angle"])
    body = f"{pick(_SUBJECT)} {act}" + (f" {arm}" if arm else "")
    if clothing is not None and rng.random() < 0.5:
        body += pick([f", wearing a {clothing[0]} top and {clothing[1]} trousers",
                      f" in a {clothing[0]} shirt"])
    shape = rng.integers(3)
    if shape == 0:
        return f"{body}, {view}"
    if shape == 1:
        return f"{view[0].upper()}{view[1:]}: {body}"
    return f"a photo of {body}, {view}"

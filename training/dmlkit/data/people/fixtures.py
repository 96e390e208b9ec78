"""Write the shared pose-distance fixtures the Swift side tests against.

    python -m dmlkit.data.people.fixtures [--out FILE]

(default: ``Tests/Fixtures/pose/pose_distance_cases.json`` in the repository holding this package).

Each case holds two poses (51 numbers each, COCO ``[x, y, v] x 17``) and what
:func:`dmlkit.data.people.pose_distance` gives for them without and with mirror invariance: either
``{"distance": float}`` or ``{"error": kind}`` (see :class:`PoseDistanceError`; ``"invalid_keypoints"``
for malformed input). Hand-made cases cover the definition's corners; the rest are generated poses.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from . import distance
from .keypoints import FLIP_INDEX, INDEX, KEYPOINT_NAMES
from .synth import sample_person

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[os.pardir] * 4))
DEFAULT_OUT = os.path.join(_REPO, "Tests", "Fixtures", "pose", "pose_distance_cases.json")


def canonical_pose() -> np.ndarray:
    """A symmetric upright pose facing the camera: hips at x = +-1, y = 0; shoulders at y = -2
    (torso length 2); every joint visible. The person's left is +x."""
    xy = {"nose": (0, -3), "left_eye": (0.3, -3.2), "right_eye": (-0.3, -3.2), "left_ear": (0.6, -3),
          "right_ear": (-0.6, -3), "left_shoulder": (1, -2), "right_shoulder": (-1, -2), "left_elbow": (1.5, -1),
          "right_elbow": (-1.5, -1), "left_wrist": (2, 0), "right_wrist": (-2, 0), "left_hip": (1, 0),
          "right_hip": (-1, 0), "left_knee": (1, 2), "right_knee": (-1, 2), "left_ankle": (1, 4),
          "right_ankle": (-1, 4)}
    return np.array([[*xy[n], 2.0] for n in KEYPOINT_NAMES])


def _with(pose, **changes) -> np.ndarray:
    p = pose.copy()
    for name, value in changes.items():
        p[INDEX[name]] = value
    return p


def _only(pose, names) -> np.ndarray:
    p = pose.copy()
    for j, n in enumerate(KEYPOINT_NAMES):
        if n not in names:
            p[j] = 0.0
    return p


TORSO = ("left_hip", "right_hip", "left_shoulder", "right_shoulder")


def hand_cases() -> list[tuple[str, np.ndarray, np.ndarray]]:
    a = canonical_pose()
    raised = _with(a, left_elbow=(1.5, -3, 2), left_wrist=(2, -4, 2))
    mirrored = raised[list(FLIP_INDEX)].copy()
    mirrored[:, 0] = -mirrored[:, 0]
    rot = a.copy()
    rot[:, 0], rot[:, 1] = -a[:, 1], a[:, 0]  # 90 degrees
    return [
        ("identical", a, a.copy()),
        ("translated_and_scaled", a, np.column_stack([a[:, :2] * 3 + (10, 20), a[:, 2]])),
        ("left_wrist_moved_one_torso_length", a, _with(a, left_wrist=(4, 0, 2))),
        ("occluded_joint_counts", a, _with(a, left_wrist=(4, 0, 1))),
        ("unlabelled_joint_ignored", a, _with(a, left_wrist=(0, 0, 0))),
        ("left_arm_raised_vs_right_arm_raised", raised, mirrored),
        ("rotated_90_degrees", a, rot),
        ("longer_torso", a, _with(a, left_shoulder=(1, -4, 2), right_shoulder=(-1, -4, 2))),
        ("five_shared_joints", _only(a, TORSO + ("nose",)), _with(_only(a, TORSO + ("nose",)), nose=(0, -1, 2))),
        ("four_shared_joints", _only(a, TORSO), a),
        ("only_mirror_shares_enough", _only(a, TORSO + ("left_wrist",)), _only(a, TORSO + ("right_wrist",))),
        ("missing_right_hip", _with(a, right_hip=(0, 0, 0)), a),
        ("missing_left_shoulder_in_b", a, _with(a, left_shoulder=(0, 0, 0))),
        ("zero_torso", _with(a, left_shoulder=(1, 0, 2), right_shoulder=(-1, 0, 2)), a),
        ("visibility_flag_3", _with(a, nose=(0, -3, 3)), a),
    ]


def generated_cases(seed: int = 2024, count: int = 6) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """All pairs of ``count`` generated poses (keypoints rounded to 1/100 pixel as in the JSON files)."""
    poses = [np.round(sample_person(np.random.default_rng([seed, i]), 64).keypoints, 2) for i in range(count)]
    return [(f"generated_{i}_{j}", poses[i], poses[j]) for i in range(count) for j in range(i + 1, count)]


def _expected(a, b, mirror: bool) -> dict:
    try:
        return {"distance": distance.pose_distance(a, b, mirror=mirror)}
    except distance.PoseDistanceError as e:
        return {"error": e.kind}
    except ValueError:
        return {"error": "invalid_keypoints"}


def build() -> dict:
    """The fixture document."""
    cases = []
    for name, a, b in hand_cases() + generated_cases():
        cases.append({"name": name, "a": [float(v) for v in np.asarray(a).ravel()],
                      "b": [float(v) for v in np.asarray(b).ravel()],
                      "expected": _expected(a, b, False), "expected_mirror": _expected(a, b, True)})
    return {
        "description": "Pose distance cases shared by dmlkit (Python) and DMLKit (Swift); written by "
                       "python -m dmlkit.data.people.fixtures. The definition is in "
                       "training/dmlkit/data/people/distance.py.",
        "keypoint_names": list(KEYPOINT_NAMES), "flip_index": list(FLIP_INDEX),
        "min_shared_joints": distance.MIN_SHARED_JOINTS, "min_torso_length": distance.MIN_TORSO_LENGTH,
        "cases": cases,
    }


def render_json(doc: dict) -> str:
    return json.dumps(doc, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m dmlkit.data.people.fixtures",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=DEFAULT_OUT,
                   help="output file (default: the repository's Tests/Fixtures/pose/pose_distance_cases.json)")
    a = p.parse_args(argv)
    text = render_json(build())  # build first: a failure must not leave a truncated file
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

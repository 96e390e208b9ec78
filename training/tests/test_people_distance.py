"""Pose distance: definition, properties, degenerate input, and the shared Swift fixtures."""

import json
import math
import os

import numpy as np
import pytest

from dmlkit.data.people import (KEYPOINT_NAMES, PoseDistanceError, mirror_keypoints, normalize_pose,
                                pose_distance, pose_distance_matrix, sample_person)
from dmlkit.data.people import fixtures

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(REPO, "Tests", "Fixtures", "pose", "pose_distance_cases.json")
J = {n: i for i, n in enumerate(KEYPOINT_NAMES)}


def upright():
    """Hips at x = +-1, y = 0, shoulders at y = -2: hip midpoint (0, 0), torso length 2."""
    xy = [(0, -3), (0.3, -3.2), (-0.3, -3.2), (0.6, -3), (-0.6, -3), (1, -2), (-1, -2), (1.5, -1), (-1.5, -1),
          (2, 0), (-2, 0), (1, 0), (-1, 0), (1, 2), (-1, 2), (1, 4), (-1, 4)]
    return np.array([[x, y, 2.0] for x, y in xy])


@pytest.fixture(scope="module")
def generated():
    """Valid generated poses (the generator keeps the torso in frame)."""
    return [sample_person(np.random.default_rng([7, i]), 48).keypoints for i in range(12)]


def test_zero_for_identical_poses(generated):
    for k in generated:
        assert pose_distance(k, k) == 0.0
        assert pose_distance(k, k.copy(), mirror=True) == 0.0


def test_one_joint_moved_by_one_torso_length_is_one_seventeenth():
    a = upright()
    b = a.copy()
    b[J["left_wrist"], 0] += 2.0  # torso length is 2
    assert pose_distance(a, b) == pytest.approx(1 / 17, abs=1e-15)


def test_each_pose_uses_its_own_centre_and_torso_length():
    a = upright()
    b = a.copy()
    b[:, :2] = a[:, :2] * 0.37 + (123.0, -45.0)
    assert pose_distance(a, b) == pytest.approx(0.0, abs=1e-12)


def test_invariant_to_translation_and_scale(generated):
    a, b = generated[0], generated[1]
    base = pose_distance(a, b)
    for scale, shift in ((2.5, (0, 0)), (0.1, (-300, 17)), (1.0, (1e4, 1e4))):
        b2 = b.copy()
        b2[:, :2] = b[:, :2] * scale + shift
        b2[b[:, 2] == 0, :2] = 0  # unlabelled joints stay at the origin, as in COCO
        assert pose_distance(a, b2) == pytest.approx(base, rel=1e-9)


def test_rotation_is_not_removed():
    a = upright()
    b = a.copy()
    b[:, 0], b[:, 1] = -a[:, 1], a[:, 0]  # 90 degrees about the origin = the hip midpoint
    # normalised q_j = p_j / 2; rotating by 90 degrees moves each by sqrt(2) |q_j|
    expected = math.sqrt(2) * np.mean([math.hypot(x / 2, y / 2) for x, y, _ in a])
    assert pose_distance(a, b) == pytest.approx(expected, rel=1e-12)


def test_symmetric(generated):
    for a, b in zip(generated[:-1], generated[1:]):
        assert pose_distance(a, b) == pose_distance(b, a)
        assert pose_distance(a, b, mirror=True) == pytest.approx(pose_distance(b, a, mirror=True), abs=1e-15)


def test_triangle_inequality_when_all_joints_are_labelled(generated):
    full = [np.column_stack([k[:, :2], np.full(17, 2.0)]) for k in generated]
    for a, b, c in zip(full, full[1:], full[2:]):
        assert pose_distance(a, c) <= pose_distance(a, b) + pose_distance(b, c) + 1e-12


def test_mirror_invariance():
    a = upright()
    a[J["left_elbow"]] = (1.5, -3, 2)
    a[J["left_wrist"]] = (2, -4, 2)  # left arm up
    b = mirror_keypoints(a, width=640)  # right arm up, mirrored in a 640-wide image
    # by hand: both elbows differ by 1 torso length, both wrists by 2 -> 6 / 17
    assert pose_distance(a, b) == pytest.approx(6 / 17, abs=1e-12)
    assert pose_distance(a, b, mirror=True) == pytest.approx(0.0, abs=1e-12)


def test_mirror_distance_never_exceeds_plain(generated):
    for a in generated[:4]:
        for b in generated[4:]:
            assert pose_distance(a, b, mirror=True) <= pose_distance(a, b) + 1e-15


def test_occluded_joints_count_and_unlabelled_ones_do_not():
    a = upright()
    b = a.copy()
    b[J["left_wrist"]] = (4, 0, 1)  # occluded but annotated: counts
    assert pose_distance(a, b) == pytest.approx(1 / 17, abs=1e-15)
    b[J["left_wrist"]] = (0, 0, 0)  # not labelled: 16 shared joints, all identical
    assert pose_distance(a, b) == 0.0


def test_mean_is_over_shared_joints_only():
    a = upright()
    keep = [J[n] for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "nose")]
    a[[i for i in range(17) if i not in keep]] = 0
    b = a.copy()
    b[J["nose"], 1] += 2.0
    assert pose_distance(a, b) == pytest.approx(1 / 5, abs=1e-15)


@pytest.mark.parametrize("joint", ["left_hip", "right_hip", "left_shoulder", "right_shoulder"])
def test_missing_reference_joint_is_a_clear_error(joint):
    a = upright()
    a[J[joint]] = 0
    with pytest.raises(PoseDistanceError, match=joint) as e:
        pose_distance(a, upright())
    assert e.value.kind == "missing_reference_joint"
    with pytest.raises(ValueError, match="pose b"):
        pose_distance(upright(), a)


def test_zero_torso_length_is_a_clear_error():
    a = upright()
    a[J["left_shoulder"]] = (1, 0, 2)
    a[J["right_shoulder"]] = (-1, 0, 2)
    with pytest.raises(PoseDistanceError, match="torso length") as e:
        pose_distance(a, upright())
    assert e.value.kind == "zero_torso"


def test_too_few_shared_joints_is_a_clear_error_unless_the_mirror_shares_enough():
    torso = [J[n] for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder")]
    a, b = upright(), upright()
    a[[i for i in range(17) if i not in torso + [J["left_wrist"]]]] = 0
    b[[i for i in range(17) if i not in torso + [J["right_wrist"]]]] = 0
    with pytest.raises(PoseDistanceError, match="share 4") as e:
        pose_distance(a, b)
    assert e.value.kind == "too_few_shared_joints"
    assert pose_distance(a, b, mirror=True) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((16, 3)), "17 keypoints"),
    ([0.0] * 50, "17 keypoints"),
    (np.where(np.arange(51).reshape(17, 3) == 2, 3, 1.0), "visibility"),
    (np.full((17, 3), np.nan), "NaN"),
    ([["a"] * 3] * 17, "not numeric"),
])
def test_malformed_keypoints_are_rejected(bad, message):
    with pytest.raises(ValueError, match=message):
        pose_distance(bad, upright())


def test_normalize_pose_centres_and_scales():
    q, labelled = normalize_pose(upright())
    assert labelled.all()
    assert np.allclose((q[J["left_hip"]] + q[J["right_hip"]]) / 2, 0)
    assert np.allclose(q[J["left_ankle"]], (0.5, 2.0))


def test_matrix_matches_pairwise_calls(generated):
    a, b = np.stack(generated[:5]), np.stack(generated[5:])
    for mirror in (False, True):
        m = pose_distance_matrix(a, b, mirror=mirror, chunk=2)
        assert m.shape == (5, 7)
        for i in range(5):
            for j in range(7):
                assert m[i, j] == pytest.approx(pose_distance(a[i], b[j], mirror=mirror), abs=1e-12)
    assert np.allclose(np.diag(pose_distance_matrix(a)), 0)


def test_matrix_marks_or_raises_on_too_few_shared_joints():
    a = upright()
    b = upright()
    b[[i for i in range(17) if i not in (5, 6, 11, 12)]] = 0
    m = pose_distance_matrix(np.stack([a, b]), too_few="nan")
    # b keeps only its four torso joints, so every pair with b shares too few
    assert m[0, 0] == 0.0 and np.isnan(m[0, 1]) and np.isnan(m[1, 0]) and np.isnan(m[1, 1])
    with pytest.raises(PoseDistanceError):
        pose_distance_matrix(np.stack([a, b]))


# --- shared fixtures for the Swift side ---

def _fixture():
    with open(FIXTURE, encoding="utf-8") as f:
        return json.load(f)


def test_fixture_values_match_the_implementation():
    doc = _fixture()
    assert doc["keypoint_names"] == list(KEYPOINT_NAMES)
    assert len(doc["cases"]) >= 25
    for case in doc["cases"]:
        for key, mirror in (("expected", False), ("expected_mirror", True)):
            exp = case[key]
            if "distance" in exp:
                assert pose_distance(case["a"], case["b"], mirror=mirror) == pytest.approx(exp["distance"], abs=1e-12)
            else:
                with pytest.raises(ValueError) as e:
                    pose_distance(case["a"], case["b"], mirror=mirror)
                assert getattr(e.value, "kind", "invalid_keypoints") == exp["error"], case["name"]


def test_fixture_hand_cases_hold_hand_computed_values():
    cases = {c["name"]: c for c in _fixture()["cases"]}
    assert cases["identical"]["expected"]["distance"] == 0.0
    assert cases["left_wrist_moved_one_torso_length"]["expected"]["distance"] == pytest.approx(1 / 17, abs=1e-15)
    assert cases["occluded_joint_counts"]["expected"]["distance"] == pytest.approx(1 / 17, abs=1e-15)
    assert cases["five_shared_joints"]["expected"]["distance"] == pytest.approx(0.2, abs=1e-15)
    assert cases["left_arm_raised_vs_right_arm_raised"]["expected"]["distance"] == pytest.approx(6 / 17, abs=1e-15)
    assert cases["left_arm_raised_vs_right_arm_raised"]["expected_mirror"]["distance"] == pytest.approx(0, abs=1e-15)
    assert cases["four_shared_joints"]["expected"] == {"error": "too_few_shared_joints"}
    assert cases["only_mirror_shares_enough"]["expected"] == {"error": "too_few_shared_joints"}
    assert cases["only_mirror_shares_enough"]["expected_mirror"]["distance"] == pytest.approx(0, abs=1e-15)
    assert cases["missing_right_hip"]["expected_mirror"] == {"error": "missing_reference_joint"}
    assert cases["zero_torso"]["expected"] == {"error": "zero_torso"}
    assert cases["visibility_flag_3"]["expected"] == {"error": "invalid_keypoints"}


def test_committed_fixture_is_up_to_date():
    with open(FIXTURE, encoding="utf-8") as f:
        committed = f.read()
    assert committed == fixtures.render_json(fixtures.build()), \
        "regenerate with: .venv/bin/python -m dmlkit.data.people.fixtures (from training/)"
